#include "grpc_server.h"
#include "metrics.h"

#include <ctype.h>
#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "h2.h"
#include "server_int.h"

/* rt_buf_start of an empty, never-allocated buffer would offset a NULL pointer. */
static inline const uint8_t *buf_bytes(const rt_buf *b) {
  return b->len ? rt_buf_start(b) : (const uint8_t *)"";
}

typedef struct in_msg {
  struct in_msg *next;
  size_t len;
  uint8_t data[];
} in_msg;

struct rt_grpc_srv_call {
  rt_server *srv;
  rt_h2 *h2;                 /* set while the stream is open */
  int32_t sid;
  int refs;                  /* the stream's, the app's, one per queued event */
  rt_grpc_srv_call *prev, *next; /* h2->calls */
  rt_grpc_srv_call *next_event;
  uint64_t conn_id;
  char peer[64];
  void *app;
  ev_timer deadline;
  double deadline_at;
  /* request headers */
  char *path, *authority;
  rt_buf meta;               /* "key\0value\0" pairs in arrival order */
  size_t header_bytes;
  rt_grpc_enc req_enc;
  unsigned accept;           /* grpc-accept-encoding as a mask */
  int64_t timeout_ms;        /* -1: none */
  int ct;                    /* RT_GRPC_CT_*, -1 not gRPC, -2 absent */
  /* input */
  rt_buf pending;            /* DATA that came before the app bound the call */
  rt_grpc_dec dec;
  in_msg *qhead, *qtail;
  size_t qbytes;             /* bytes of messages the app has not taken */
  size_t owed;               /* stream credit held back from the peer */
  unsigned nin, nout;
  /* output */
  rt_buf out;                /* framed reply messages not yet taken by nghttp2 */
  size_t head_left;          /* bytes of out's first message still to go (0: none begun) */
  rt_buf hdr_out, trl_out;   /* "key\0value\0" pairs, -bin values already base64 */
  rt_grpc_enc resp_enc;
  rt_grpc_srv_opts b;
  int status;
  char *message;
  size_t msglen;
  unsigned queued : 1, dispatched : 1, bound : 1, submitted : 1, deferred : 1,
      want_writable : 1, trailers_sent : 1, in_ended : 1, stream_closed : 1, cancelled : 1,
      expired : 1, finished : 1, failed : 1, method_post : 1, bad_timeout : 1, too_big : 1;
};

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

static int live(const rt_grpc_srv_call *call) { return call->h2 && !call->stream_closed; }

static void queue_event(rt_grpc_srv_call *call) {
  rt_h2 *h = call->h2;
  if (!h || call->queued) return;
  call->queued = 1;
  call->refs++;
  call->next_event = NULL;
  if (h->events_tail) h->events_tail->next_event = call;
  else h->events = call;
  h->events_tail = call;
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

/* ---- building responses --------------------------------------------------------------- */

typedef struct nvlist {
  nghttp2_nv *v;
  size_t n, cap;
} nvlist;

static void nv_add(nvlist *l, const char *k, const char *v, size_t vlen) {
  if (l->n == l->cap) return;  /* sized by count_pairs: cannot happen */
  l->v[l->n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, strlen(k), vlen, NGHTTP2_NV_FLAG_NONE};
}

static size_t count_pairs(const rt_buf *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->len; i++) n += buf_bytes(b)[i] == 0;
  return n / 2;
}

static void nv_add_pairs(nvlist *l, const rt_buf *b) {
  const char *p = (const char *)buf_bytes(b), *end = p + b->len;
  while (p < end) {
    const char *k = p, *v = k + strlen(k) + 1;
    nv_add(l, k, v, strlen(v));
    p = v + strlen(v) + 1;
  }
}

static int nv_init(nvlist *l, size_t extra) {
  l->n = 0;
  l->cap = extra;
  l->v = malloc(extra * sizeof *l->v);
  return l->v ? 0 : -1;
}

static const char accept_all[] = "identity,deflate,gzip";

/* Adds grpc-status and grpc-message; msgbuf must hold the percent-encoded message. */
static void nv_add_status(nvlist *l, rt_grpc_srv_call *call, char *statusbuf, char *msgbuf) {
  snprintf(statusbuf, 12, "%d", call->status);
  nv_add(l, "grpc-status", statusbuf, strlen(statusbuf));
  if (call->msglen) {
    size_t n = rt_grpc_pct_encode(call->message, call->msglen, msgbuf);
    nv_add(l, "grpc-message", msgbuf, n);
  }
}

static char *status_msgbuf(rt_grpc_srv_call *call) {
  return malloc(rt_grpc_pct_encode_len(call->message ? call->message : "", call->msglen) + 1);
}

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud);

static void submit_headers(rt_grpc_srv_call *call) {
  if (call->submitted || !live(call)) return;
  nvlist l;
  if (nv_init(&l, 4 + count_pairs(&call->hdr_out)) < 0) return;
  nv_add(&l, ":status", "200", 3);
  nv_add(&l, "content-type", "application/grpc", 16);
  const char *enc = rt_grpc_enc_name(call->resp_enc);
  if (call->resp_enc == RT_GRPC_ENC_GZIP || call->resp_enc == RT_GRPC_ENC_DEFLATE)
    nv_add(&l, "grpc-encoding", enc, strlen(enc));
  nv_add(&l, "grpc-accept-encoding", accept_all, sizeof accept_all - 1);
  nv_add_pairs(&l, &call->hdr_out);
  nghttp2_data_provider dp = {.source = {.ptr = NULL}, .read_callback = read_cb};
  if (nghttp2_submit_response(call->h2->session, call->sid, l.v, l.n, &dp) == 0)
    call->submitted = 1;
  else
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
  free(l.v);
}

/* One HEADERS frame with END_STREAM: status, the app's headers and trailers together. */
static void submit_trailers_only(rt_grpc_srv_call *call) {
  nvlist l;
  char st[12], *msg = status_msgbuf(call);
  if (!msg || nv_init(&l, 6 + count_pairs(&call->hdr_out) + count_pairs(&call->trl_out)) < 0) {
    free(msg);
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
    return;
  }
  nv_add(&l, ":status", "200", 3);
  nv_add(&l, "content-type", "application/grpc", 16);
  nv_add(&l, "grpc-accept-encoding", accept_all, sizeof accept_all - 1);
  nv_add_status(&l, call, st, msg);
  nv_add_pairs(&l, &call->hdr_out);
  nv_add_pairs(&l, &call->trl_out);
  nghttp2_submit_response(call->h2->session, call->sid, l.v, l.n, NULL);
  call->submitted = call->trailers_sent = 1;
  free(l.v);
  free(msg);
}

static void submit_trailers(rt_grpc_srv_call *call) {
  nvlist l;
  char st[12], *msg = status_msgbuf(call);
  if (!msg || nv_init(&l, 2 + count_pairs(&call->trl_out)) < 0) {
    free(msg);
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
    return;
  }
  nv_add_status(&l, call, st, msg);
  nv_add_pairs(&l, &call->trl_out);
  nghttp2_submit_trailer(call->h2->session, call->sid, l.v, l.n);
  call->trailers_sent = 1;
  free(l.v);
  free(msg);
}

/* A plain HTTP answer for requests that are not gRPC at all. */
static void submit_http_status(rt_grpc_srv_call *call, const char *status) {
  nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE}};
  nghttp2_submit_response(call->h2->session, call->sid, nv, 1, NULL);
  call->submitted = call->trailers_sent = call->finished = 1;
}

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud) {
  rt_grpc_srv_call *call = nghttp2_session_get_stream_user_data(s, sid);
  if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = call->out.len < len ? call->out.len : len;
  memcpy(buf, buf_bytes(&call->out), n);
  /* Track where messages end, so a failing call can drop whole messages only. */
  for (size_t left = n; left;) {
    if (!call->head_left) {
      const uint8_t *p = buf_bytes(&call->out);
      call->head_left = RT_GRPC_PREFIX_LEN + ((size_t)p[1] << 24 | (size_t)p[2] << 16 |
                                              (size_t)p[3] << 8 | p[4]);
    }
    size_t take = left < call->head_left ? left : call->head_left;
    call->head_left -= take;
    left -= take;
    rt_buf_consume(&call->out, take);
  }
  if (call->want_writable && call->out.len <= RT_GRPC_SRV_OUT_LOW) {
    call->want_writable = 0;
    queue_event(call);
  }
  if (call->out.len == 0 && call->finished) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    submit_trailers(call);
    return (ssize_t)n;
  }
  if (n) return (ssize_t)n;
  call->deferred = 1;
  return NGHTTP2_ERR_DEFERRED;
}

static void resume(rt_grpc_srv_call *call) {
  if (!call->deferred || !live(call)) return;
  call->deferred = 0;
  nghttp2_session_resume_data(call->h2->session, call->sid);
}

static void kick(rt_grpc_srv_call *call) {
  if (call->h2) rt_h2_pump(call->h2);
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
  if (!call->submitted) submit_trailers_only(call);
  else resume(call);
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
  queue_event(call);
}

int rt_grpc_srv_finish(rt_grpc_srv_call *call, int status, const char *msg, size_t msglen) {
  if (status < 0 || status > 16) status = RT_GRPC_STATUS_UNKNOWN;
  int rc = finish(call, status, msg, msglen);
  if (rc == 0) drop_input(call);
  kick(call);
  return rc;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_grpc_srv_call *call = w->data;
  call->expired = call->cancelled = 1;
  call->refs++;
  if (!call->finished) fail(call, RT_GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
  queue_event(call);
  kick(call);
  call_unref(call);
}

/* ---- request side (called by h2.c from nghttp2 callbacks) ------------------------------- */

rt_grpc_srv_call *rt_grpc_srv_open(rt_h2 *h, int32_t sid) {
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
  call->next = h->calls;
  if (h->calls) h->calls->prev = call;
  h->calls = call;
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

void rt_grpc_srv_on_header(rt_grpc_srv_call *call, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen) {
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

void rt_grpc_srv_on_headers_done(rt_grpc_srv_call *call) {
  static const char unimpl[] = "content-type is not application/grpc or application/grpc+proto";
  char msg[160];
  if (!call->method_post) {
    submit_http_status(call, "405");
  } else if (call->ct < 0) {
    submit_http_status(call, "415");
  } else if (call->too_big) {
    finish(call, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "request headers too large", 25);
  } else if (call->ct != RT_GRPC_CT_PROTO) {
    finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, unimpl, sizeof unimpl - 1);
  } else if (call->req_enc == RT_GRPC_ENC_UNKNOWN) {
    int n = snprintf(msg, sizeof msg, "grpc-encoding not supported (use %s)", accept_all);
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
    queue_event(call);  /* the app hears of it once nghttp2 has returned */
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
  if (got) queue_event(call);
}

static void input_ended(rt_grpc_srv_call *call) {
  if (rt_grpc_dec_finish(&call->dec) < 0)
    fail(call, RT_GRPC_STATUS_INTERNAL, "request ended inside a message");
  else
    queue_event(call);
}

void rt_grpc_srv_on_data(rt_grpc_srv_call *call, const uint8_t *data, size_t len) {
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

void rt_grpc_srv_on_end(rt_grpc_srv_call *call) {
  call->in_ended = 1;
  if (call->bound && !call->finished) input_ended(call);
}

void rt_grpc_srv_on_close(rt_grpc_srv_call *call, uint32_t error_code) {
  rt_h2 *h = call->h2;
  if (!h) return;
  if (!call->finished) {
    call->cancelled = 1;
    count_call(call, RT_GRPC_STATUS_CANCELLED);
  }
  ev_timer_stop(call->srv->loop, &call->deadline);
  if (call->dispatched || call->queued) queue_event(call);
  call->stream_closed = 1;
  call->h2 = NULL;
  if (call->prev) call->prev->next = call->next;
  else h->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  call->prev = call->next = NULL;
  call_unref(call);
}

int rt_grpc_srv_input_open(const rt_grpc_srv_call *call) { return !call->in_ended; }

/* ---- events --------------------------------------------------------------------------- */

static void deliver(rt_grpc_srv_call *call) {
  if (!call->dispatched) {
    /* Ended before the app saw it (an error answered from the headers, a reset). */
    if (call->finished || call->cancelled) return;
    call->dispatched = 1;
    rt_app_grpc_call(call->srv, call);
  } else if (call->app) {
    rt_app_grpc_event(call->srv, call);
  }
}

void rt_grpc_srv_run_events(rt_h2 *h) {
  while (h->events && !h->dead) {
    rt_grpc_srv_call *call = h->events;
    h->events = call->next_event;
    if (!h->events) h->events_tail = NULL;
    call->queued = 0;
    deliver(call);
    call_unref(call);
  }
}

void rt_grpc_srv_detach_all(rt_h2 *h) {
  rt_grpc_srv_call *list = h->events;
  h->events = h->events_tail = NULL;
  /* Detach them all first: a handler woken below may touch any of its calls. */
  while (h->calls) {
    rt_grpc_srv_call *call = h->calls;
    h->calls = call->next;
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

unsigned rt_grpc_srv_open_calls(const rt_h2 *h) {
  unsigned n = 0;
  for (const rt_grpc_srv_call *call = h->calls; call; call = call->next) n++;
  return n;
}

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
    kick(call);
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
  kick(call);
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
    kick(call);
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
    kick(call);
    return RT_GRPC_SRV_SEND_DEAD;
  }
  int zip = call->resp_enc == RT_GRPC_ENC_GZIP || call->resp_enc == RT_GRPC_ENC_DEFLATE;
  size_t cap = RT_GRPC_PREFIX_LEN + (zip ? rt_grpc_compress_bound(len) : len), n = 0;
  if (rt_buf_reserve(&call->out, cap) < 0 ||
      rt_grpc_frame_encode_msg(call->resp_enc, -1, msg, len, rt_buf_end(&call->out), cap, &n,
                               NULL, err, errlen) < 0) {
    fail(call, RT_GRPC_STATUS_INTERNAL, "cannot frame the reply");
    kick(call);
    return RT_GRPC_SRV_SEND_DEAD;
  }
  call->out.len += n;
  call->nout++;
  submit_headers(call);
  resume(call);
  kick(call);
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
  submit_headers(call);
  kick(call);
  return 0;
}
