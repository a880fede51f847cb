/* gRPC server calls: a call's life from the request side (headers checked and turned
 * into a status when they are not gRPC, DATA decoded into messages with flow control held
 * back while the app lags, deadlines, cancellation) to its end, and what the app calls on
 * it; the response frames are grpc_server_resp.c's. */
#include "grpc_server.h"
#include "net/metrics.h"

#include <ctype.h>
#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "http/h2.h"
#include "grpc_server_int.h"
#include "net/server_int.h"

static void call_unref(rt_grpc_srv_call *call) {
  if (--call->refs > 0) return;
  ev_timer_stop(call->srv->loop, &call->deadline);
  free(call->path);
  free(call->authority);
  free(call->message);
  rt_buf_free(&call->meta);
  rt_buf_free(&call->pending);
  rt_buf_free(&call->out);
  rt_buf_free(&call->hdr_out);
  rt_buf_free(&call->trl_out);
  if (call->bound) rt_grpc_dec_free(&call->dec);
  while (call->qhead) {
    in_msg *m = call->qhead;
    call->qhead = m->next;
    free(m);
  }
  free(call);
}

void rt_grpc_srv_queue_event(rt_grpc_srv_call *call) {
  rt_h2 *h = call->h2;
  if (!h || call->queued) return;
  call->queued = 1;
  call->refs++;
  call->next_event = NULL;
  rt_grpc_srv_call *tail = h->news_tail;
  if (tail) tail->next_event = call;
  else h->news = call;
  h->news_tail = call;
}

/* Lets the peer send more once the app has room for it. */
static void settle(rt_grpc_srv_call *call) {
  if (!live(call) || !call->owed) return;
  if (call->qbytes + call->pending.len >= RT_GRPC_SRV_IN_HIGH) return;
  nghttp2_session_consume_stream(call->h2->session, call->sid, call->owed);
  call->owed = 0;
}

static void drop_input(rt_grpc_srv_call *call) {
  while (call->qhead) {
    in_msg *m = call->qhead;
    call->qhead = m->next;
    free(m);
  }
  call->qtail = NULL;
  call->qbytes = 0;
  rt_buf_free(&call->pending);
  settle(call);
}

/* ---- ending a call -------------------------------------------------------------------- */

/* rtserver_grpc_calls_total{method,code}. Only methods the app serves get their own label:
 * the path comes from the peer and must not grow the metrics without bound. */
static void count_call(rt_grpc_srv_call *call, int status) {
  char labels[320];
  const char *method = call->bound && call->path && strlen(call->path) < 200 ? call->path : "unknown";
  snprintf(labels, sizeof labels, "method=\"%s\",code=\"%s\"", method, rt_grpc_status_name(status));
  rt_metrics_add(call->srv, "rtserver_grpc_calls_total", labels, 1);
  call->srv->metrics.msgs_in += call->nin;
  call->srv->metrics.msgs_out += call->nout;
}

static int finish(rt_grpc_srv_call *call, int status, const char *msg, size_t msglen) {
  if (call->finished) return -1;
  call->finished = 1;
  call->status = status;
  count_call(call, status);
  if (msglen > RT_GRPC_SRV_MAX_STATUS_MSG) msglen = RT_GRPC_SRV_MAX_STATUS_MSG;
  if (msglen && (call->message = malloc(msglen))) {
    memcpy(call->message, msg, msglen);
    call->msglen = msglen;
  }
  ev_timer_stop(call->srv->loop, &call->deadline);
  if (!live(call)) return 0;
  if (!call->submitted) rt_grpc_srv_submit_trailers_only(call);
  else rt_grpc_srv_resume(call);
  return 0;
}

/* The call ends on its own (bad input, a limit, the deadline): the app hears of it. */
static void fail(rt_grpc_srv_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(rt_grpc_srv_call *call, int status, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  call->failed = 1;
  /* Messages not begun are no longer wanted; one half sent is finished, so the client
   * sees the status rather than a torn message. */
  call->out.len = call->head_left;
  if (!call->out.len) call->out.off = 0;
  rt_debug(&call->srv->log, "%s: gRPC %s: %s %s", call->peer, call->path ? call->path : "?",
           rt_grpc_status_name(status), msg);
  finish(call, status, msg, (size_t)n);
  /* Trailers wait behind DATA, and DATA waits for window: a peer that stopped reading
   * would never see them, so it gets RST_STREAM instead. */
  if (live(call) && call->submitted && !call->trailers_sent) {
    nghttp2_session *s = call->h2->session;
    if (nghttp2_session_get_stream_remote_window_size(s, call->sid) <= 0 ||
        nghttp2_session_get_remote_window_size(s) <= 0)
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->sid, NGHTTP2_CANCEL);
  }
  drop_input(call);
  rt_grpc_srv_queue_event(call);
}

int rt_grpc_srv_finish(rt_grpc_srv_call *call, int status, const char *msg, size_t msglen) {
  if (status < 0 || status > 16) status = RT_GRPC_STATUS_UNKNOWN;
  int rc = finish(call, status, msg, msglen);
  if (rc == 0) drop_input(call);
  rt_grpc_srv_kick(call);
  return rc;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_grpc_srv_call *call = w->data;
  call->expired = call->cancelled = 1;
  call->refs++;
  if (!call->finished) fail(call, RT_GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
  rt_grpc_srv_queue_event(call);
  rt_grpc_srv_kick(call);
  call_unref(call);
}

/* ---- request side (called by h2.c from nghttp2 callbacks) ------------------------------- */

static void *stream_open(rt_h2 *h, int32_t sid) {
  rt_grpc_srv_call *call = calloc(1, sizeof *call);
  if (!call) return NULL;
  call->srv = h->c->srv;
  call->h2 = h;
  call->sid = sid;
  call->refs = 1;
  call->conn_id = h->c->id;
  snprintf(call->peer, sizeof call->peer, "%s", h->c->peer);
  call->timeout_ms = -1;
  call->ct = -2;
  ev_timer_init(&call->deadline, on_deadline, 0, 0);
  call->deadline.data = call;
  rt_grpc_srv_call *first = h->open;
  call->next = first;
  if (first) first->prev = call;
  h->open = call;
  return call;
}

static int name_is(const uint8_t *name, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static char *dup_n(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}

static void stream_header(void *st, const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen) {
  rt_grpc_srv_call *call = st;
  size_t max = call->srv->cfg.max_header_bytes ? call->srv->cfg.max_header_bytes : 16384;
  call->header_bytes += namelen + valuelen + 32;  /* RFC 9113 6.5.2 counts 32 per field */
  if (call->too_big || call->header_bytes > max) {
    call->too_big = 1;
    return;
  }
  if (namelen && name[0] == ':') {
    if (name_is(name, namelen, ":method")) {
      call->method_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (name_is(name, namelen, ":path") && !call->path) {
      call->path = dup_n(value, valuelen > RT_GRPC_SRV_MAX_PATH ? 0 : valuelen);
    } else if (name_is(name, namelen, ":authority") && !call->authority) {
      call->authority = dup_n(value, valuelen);
    }
  } else if (name_is(name, namelen, "content-type")) {
    call->ct = rt_grpc_content_type_parse((const char *)value, valuelen, NULL, NULL);
  } else if (name_is(name, namelen, "grpc-timeout")) {
    int64_t ms;
    if (rt_grpc_timeout_parse_ms((const char *)value, valuelen, &ms) < 0) call->bad_timeout = 1;
    else call->timeout_ms = ms;
  } else if (name_is(name, namelen, "grpc-encoding")) {
    call->req_enc = rt_grpc_enc_parse((const char *)value, valuelen);
  } else if (name_is(name, namelen, "grpc-accept-encoding")) {
    call->accept |= rt_grpc_accept_encoding_parse((const char *)value, valuelen);
  } else if (!name_is(name, namelen, "te") && memchr(value, 0, valuelen) == NULL) {
    rt_buf_append(&call->meta, name, namelen);
    rt_buf_append(&call->meta, "", 1);
    rt_buf_append(&call->meta, value, valuelen);
    rt_buf_append(&call->meta, "", 1);
  }
}

static int path_ok(const char *p) {
  /* "/package.Service/Method": two non-empty parts. */
  if (!p || p[0] != '/') return 0;
  const char *slash = strchr(p + 1, '/');
  return slash && slash > p + 1 && slash[1] && !strchr(slash + 1, '/');
}

static void stream_headers_done(void *st) {
  rt_grpc_srv_call *call = st;
  static const char unimpl[] = "content-type is not application/grpc or application/grpc+proto";
  char msg[160];
  if (!call->method_post) {
    rt_grpc_srv_submit_http_status(call, "405");
  } else if (call->ct < 0) {
    rt_grpc_srv_submit_http_status(call, "415");
  } else if (call->too_big) {
    finish(call, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "request headers too large", 25);
  } else if (call->ct != RT_GRPC_CT_PROTO) {
    finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, unimpl, sizeof unimpl - 1);
  } else if (call->req_enc == RT_GRPC_ENC_UNKNOWN) {
    int n = snprintf(msg, sizeof msg, "grpc-encoding not supported (use %s)", ACCEPT_ENCODINGS);
    finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, msg, (size_t)n);
  } else if (call->bad_timeout) {
    finish(call, RT_GRPC_STATUS_INTERNAL, "malformed grpc-timeout", 22);
  } else if (!path_ok(call->path)) {
    finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, "malformed :path", 15);
  } else {
    if (call->timeout_ms >= 0) {
      double secs = (double)call->timeout_ms / 1000.0;
      call->deadline_at = ev_now(call->srv->loop) + secs;
      ev_timer_set(&call->deadline, secs, 0);
      ev_timer_start(call->srv->loop, &call->deadline);
    }
    rt_grpc_srv_queue_event(call);  /* the app hears of it once nghttp2 has returned */
  }
}

static void feed(rt_grpc_srv_call *call, const uint8_t *data, size_t len) {
  size_t off = 0, used;
  int got = 0;
  for (;;) {
    rt_grpc_msg m;
    int rc = rt_grpc_dec_feed(&call->dec, data + off, len - off, &used, &m);
    off += used;
    if (rc < 0) {
      fail(call, rt_grpc_err_status(rc), "request: %s", rt_grpc_dec_error(&call->dec));
      return;
    }
    if (rc != RT_GRPC_MSG) break;
    if (!call->b.client_streaming && call->nin >= 1) {
      fail(call, RT_GRPC_STATUS_INTERNAL, "more than one request message for a unary request");
      return;
    }
    in_msg *im = malloc(sizeof *im + m.len);
    if (!im) {
      fail(call, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    im->next = NULL;
    im->len = m.len;
    memcpy(im->data, m.data, m.len);
    if (call->qtail) call->qtail->next = im;
    else call->qhead = im;
    call->qtail = im;
    call->qbytes += m.len;
    call->nin++;
    got = 1;
  }
  if (got) rt_grpc_srv_queue_event(call);
}

static void input_ended(rt_grpc_srv_call *call) {
  if (rt_grpc_dec_finish(&call->dec) < 0)
    fail(call, RT_GRPC_STATUS_INTERNAL, "request ended inside a message");
  else
    rt_grpc_srv_queue_event(call);
}

static void stream_data(void *st, const uint8_t *data, size_t len) {
  rt_grpc_srv_call *call = st;
  call->owed += len;
  if (call->finished) {
    settle(call);  /* nobody wants it: credit it back */
    return;
  }
  if (!call->bound) {
    if (rt_buf_append(&call->pending, data, len) < 0)
      fail(call, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  feed(call, data, len);
  settle(call);
}

static void stream_end(void *st) {
  rt_grpc_srv_call *call = st;
  call->in_ended = 1;
  if (call->bound && !call->finished) input_ended(call);
}

static void stream_close(void *st, uint32_t error_code) {
  rt_grpc_srv_call *call = st;
  rt_h2 *h = call->h2;
  if (!h) return;
  if (!call->finished) {
    call->cancelled = 1;
    count_call(call, RT_GRPC_STATUS_CANCELLED);
  }
  ev_timer_stop(call->srv->loop, &call->deadline);
  if (call->dispatched || call->queued) rt_grpc_srv_queue_event(call);
  call->stream_closed = 1;
  call->h2 = NULL;
  if (call->prev) call->prev->next = call->next;
  else h->open = call->next;
  if (call->next) call->next->prev = call->prev;
  call->prev = call->next = NULL;
  call_unref(call);
}

static int stream_input_open(const void *st) {
  const rt_grpc_srv_call *call = st;
  return !call->in_ended;
}

/* ---- events --------------------------------------------------------------------------- */

static void deliver(rt_grpc_srv_call *call) {
  if (!call->dispatched) {
    /* Ended before the app saw it (an error answered from the headers, a reset). */
    if (call->finished || call->cancelled) return;
    call->dispatched = 1;
    rt_server *srv = call->srv;
    if (srv->app.grpc_call) srv->app.grpc_call(srv, srv->app.data, call);
    else rt_grpc_srv_finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, "no gRPC services", 16);
  } else if (call->app) {
    rt_server *srv = call->srv;
    if (srv->app.grpc_event) srv->app.grpc_event(srv, srv->app.data, call);
  }
}

static void run_events(rt_h2 *h) {
  while (h->news && !h->dead) {
    rt_grpc_srv_call *call = h->news;
    h->news = call->next_event;
    if (!h->news) h->news_tail = NULL;
    call->queued = 0;
    deliver(call);
    call_unref(call);
  }
}

static void detach_all(rt_h2 *h) {
  rt_grpc_srv_call *list = h->news;
  h->news = h->news_tail = NULL;
  /* Detach them all first: a handler woken below may touch any of its calls. */
  while (h->open) {
    rt_grpc_srv_call *call = h->open;
    h->open = call->next;
    call->prev = call->next = NULL;
    if (!call->finished) call->cancelled = 1;
    call->stream_closed = 1;
    call->h2 = NULL;
    ev_timer_stop(call->srv->loop, &call->deadline);
    if (!call->queued && call->dispatched) {
      call->queued = 1;
      call->refs++;
      call->next_event = list;
      list = call;
    }
    call_unref(call);  /* the stream's reference */
  }
  while (list) {
    rt_grpc_srv_call *call = list;
    list = call->next_event;
    call->queued = 0;
    deliver(call);
    call_unref(call);
  }
}

static unsigned open_count(const rt_h2 *h) {
  unsigned n = 0;
  for (const rt_grpc_srv_call *call = h->open; call; call = call->next) n++;
  return n;
}

static const rt_h2_streams grpc_streams = {
    .stream_open = stream_open,
    .stream_header = stream_header,
    .stream_headers_done = stream_headers_done,
    .stream_data = stream_data,
    .stream_end = stream_end,
    .stream_close = stream_close,
    .stream_input_open = stream_input_open,
    .run = run_events,
    .detach_all = detach_all,
    .open_count = open_count,
};

void rt_grpc_srv_start(rt_conn *c) { rt_h2_start(c, &grpc_streams); }

void rt_grpc_srv_enable(rt_server *srv) { srv->h2_start = rt_grpc_srv_start; }

/* ---- for the app ---------------------------------------------------------------------- */

void rt_grpc_srv_set_app(rt_grpc_srv_call *call, void *app) {
  if (!call->app) call->refs++;
  call->app = app;
}

void *rt_grpc_srv_app(const rt_grpc_srv_call *call) { return call->app; }

void rt_grpc_srv_release(rt_grpc_srv_call *call) {
  if (!call->app) return;
  call->app = NULL;
  if (!call->finished) {
    static const char m[] = "the handler ended without a status";
    finish(call, RT_GRPC_STATUS_UNKNOWN, m, sizeof m - 1);
    rt_grpc_srv_kick(call);
  }
  call_unref(call);
}

int rt_grpc_srv_bind(rt_grpc_srv_call *call, const rt_grpc_srv_opts *b) {
  if (call->bound) return -1;
  call->bound = 1;
  call->b = *b;
  if (!call->b.max_recv) call->b.max_recv = RT_GRPC_DEFAULT_MAX_MSG;
  if (!call->b.max_send) call->b.max_send = RT_GRPC_DEFAULT_MAX_MSG;
  rt_grpc_dec_init(&call->dec, call->b.max_recv, NULL);
  rt_grpc_dec_set_encoding(&call->dec, call->req_enc, 1);
  /* Reply the way the client wrote, if it can read that; else as the service prefers. */
  rt_grpc_enc want = call->req_enc;
  if (want != RT_GRPC_ENC_GZIP && want != RT_GRPC_ENC_DEFLATE) want = b->compress;
  if ((want == RT_GRPC_ENC_GZIP || want == RT_GRPC_ENC_DEFLATE) &&
      (call->accept & RT_GRPC_ENC_BIT(want)))
    call->resp_enc = want;
  if (call->finished) return 0;
  if (call->pending.len) {
    rt_buf p = call->pending;
    memset(&call->pending, 0, sizeof call->pending);
    feed(call, buf_bytes(&p), p.len);
    rt_buf_free(&p);
  }
  if (call->in_ended && !call->finished) input_ended(call);
  settle(call);
  rt_grpc_srv_kick(call);
  return 0;
}

const char *rt_grpc_srv_path(const rt_grpc_srv_call *call) { return call->path ? call->path : ""; }
const char *rt_grpc_srv_peer(const rt_grpc_srv_call *call) { return call->peer; }
const char *rt_grpc_srv_authority(const rt_grpc_srv_call *call) {
  return call->authority ? call->authority : "";
}
uint64_t rt_grpc_srv_conn_id(const rt_grpc_srv_call *call) { return call->conn_id; }
double rt_grpc_srv_deadline(const rt_grpc_srv_call *call) {
  return call->timeout_ms >= 0 ? call->deadline_at : 0;
}
rt_grpc_enc rt_grpc_srv_req_encoding(const rt_grpc_srv_call *call) { return call->req_enc; }

unsigned rt_grpc_srv_flags(const rt_grpc_srv_call *call) {
  return (call->cancelled ? RT_GRPC_SRV_CANCELLED : 0) |
         (call->expired ? RT_GRPC_SRV_EXPIRED : 0) |
         (call->finished ? RT_GRPC_SRV_FINISHED : 0) |
         (call->in_ended ? RT_GRPC_SRV_INPUT_END : 0);
}

const char *rt_grpc_srv_dead_reason(const rt_grpc_srv_call *call) {
  if (call->expired) return "deadline exceeded";
  if (call->cancelled) return "cancelled";
  if (call->failed) return "call failed";
  if (call->finished) return "call finished";
  return NULL;
}

int rt_grpc_srv_meta_next(const rt_grpc_srv_call *call, size_t *pos, const char **key,
                          const char **val, size_t *vlen) {
  if (*pos >= call->meta.len) return 0;
  const char *p = (const char *)buf_bytes(&call->meta) + *pos;
  *key = p;
  *val = p + strlen(p) + 1;
  *vlen = strlen(*val);
  *pos += strlen(p) + 1 + *vlen + 1;
  return 1;
}

int rt_grpc_srv_recv(rt_grpc_srv_call *call, const uint8_t **data, size_t *len) {
  if (call->finished || call->cancelled || !call->bound) return RT_GRPC_SRV_RECV_DEAD;
  if (call->qhead) {
    *data = call->qhead->data;
    *len = call->qhead->len;
    return RT_GRPC_SRV_RECV_MSG;
  }
  return call->in_ended ? RT_GRPC_SRV_RECV_END : RT_GRPC_SRV_RECV_WAIT;
}

void rt_grpc_srv_recv_pop(rt_grpc_srv_call *call) {
  in_msg *m = call->qhead;
  if (!m) return;
  call->qhead = m->next;
  if (!call->qhead) call->qtail = NULL;
  call->qbytes -= m->len;
  free(m);
  if (call->owed) {
    settle(call);
    rt_grpc_srv_kick(call);
  }
}

int rt_grpc_srv_send(rt_grpc_srv_call *call, const uint8_t *msg, size_t len, char *err,
                     size_t errlen) {
  if (call->finished || call->cancelled || !live(call)) {
    snprintf(err, errlen, "%s", rt_grpc_srv_dead_reason(call) ? rt_grpc_srv_dead_reason(call) : "closed");
    return RT_GRPC_SRV_SEND_DEAD;
  }
  if (!call->b.server_streaming && call->nout >= 1) {
    snprintf(err, errlen, "this method replies with one message");
    return RT_GRPC_SRV_SEND_EINVAL;
  }
  if (len > call->b.max_send) {
    fail(call, RT_GRPC_STATUS_RESOURCE_EXHAUSTED,
         "reply message of %zu bytes is over the limit of %zu", len, call->b.max_send);
    snprintf(err, errlen, "reply message of %zu bytes is over the limit of %zu", len,
             call->b.max_send);
    rt_grpc_srv_kick(call);
    return RT_GRPC_SRV_SEND_DEAD;
  }
  int zip = call->resp_enc == RT_GRPC_ENC_GZIP || call->resp_enc == RT_GRPC_ENC_DEFLATE;
  size_t cap = RT_GRPC_PREFIX_LEN + (zip ? rt_grpc_compress_bound(len) : len), n = 0;
  if (rt_buf_reserve(&call->out, cap) < 0 ||
      rt_grpc_frame_encode_msg(call->resp_enc, -1, msg, len, rt_buf_end(&call->out), cap, &n,
                               NULL, err, errlen) < 0) {
    fail(call, RT_GRPC_STATUS_INTERNAL, "cannot frame the reply");
    rt_grpc_srv_kick(call);
    return RT_GRPC_SRV_SEND_DEAD;
  }
  call->out.len += n;
  call->nout++;
  rt_grpc_srv_submit_headers(call);
  rt_grpc_srv_resume(call);
  rt_grpc_srv_kick(call);
  if (call->out.len >= RT_GRPC_SRV_OUT_HIGH && !call->finished) {
    call->want_writable = 1;
    return RT_GRPC_SRV_SEND_FULL;
  }
  return RT_GRPC_SRV_SEND_OK;
}

size_t rt_grpc_srv_out_pending(const rt_grpc_srv_call *call) { return call->out.len; }

static int reserved_key(const char *k) {
  static const char *const names[] = {"content-type", "te", "connection", "transfer-encoding",
                                      "upgrade", "keep-alive", "proxy-connection", "host"};
  if (strncmp(k, "grpc-", 5) == 0) return 1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(k, names[i]) == 0) return 1;
  return 0;
}

int rt_grpc_srv_add_meta(rt_grpc_srv_call *call, int trailer, const char *key,
                         const char *val, size_t vlen, char *err, size_t errlen) {
  char k[128];
  size_t klen = strlen(key);
  if (klen == 0 || klen >= sizeof k) {
    snprintf(err, errlen, "metadata key must be 1 to %zu characters", sizeof k - 1);
    return -1;
  }
  for (size_t i = 0; i <= klen; i++) k[i] = (char)tolower((unsigned char)key[i]);
  if (!rt_grpc_meta_key_valid(k, klen) || reserved_key(k)) {
    snprintf(err, errlen, "metadata key '%s' is invalid or reserved", k);
    return -1;
  }
  if (call->finished) {
    snprintf(err, errlen, "the call has ended");
    return -1;
  }
  if (!trailer && call->submitted) {
    snprintf(err, errlen, "response headers were sent already");
    return -1;
  }
  int bin = rt_grpc_meta_key_is_bin(k, klen);
  if (!bin && vlen && !rt_grpc_meta_value_valid(val, vlen)) {
    snprintf(err, errlen, "metadata '%s': value must be printable ASCII (use a -bin key)", k);
    return -1;
  }
  size_t enc = bin ? rt_grpc_b64_encode_len(vlen, 0) : vlen;
  rt_buf *b = trailer ? &call->trl_out : &call->hdr_out;
  if (b->len + klen + enc + 2 > RT_GRPC_SRV_MAX_META_OUT) {
    snprintf(err, errlen, "more than %d bytes of %s", RT_GRPC_SRV_MAX_META_OUT,
             trailer ? "trailers" : "response headers");
    return -1;
  }
  if (rt_buf_reserve(b, klen + enc + 2) < 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  rt_buf_append(b, k, klen + 1);
  if (bin) b->len += rt_grpc_b64_encode(val, vlen, (char *)rt_buf_end(b), 0);
  else rt_buf_append(b, val, vlen);
  rt_buf_append(b, "", 1);
  return 0;
}

int rt_grpc_srv_send_headers(rt_grpc_srv_call *call) {
  if (call->finished || !live(call)) return -1;
  rt_grpc_srv_submit_headers(call);
  rt_grpc_srv_kick(call);
  return 0;
}
