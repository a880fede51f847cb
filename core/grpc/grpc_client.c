/* gRPC client calls over h2_client.c connections (doc/PROTOCOL-HTTP2.md in grpc/grpc).
 *
 * A call is a request stream: HEADERS (path, te, content-type, grpc-timeout, metadata),
 * length-prefixed messages as DATA, END_STREAM at close_send. The answer is HEADERS
 * (:status 200, content-type, initial metadata), messages, and trailers with grpc-status,
 * or one "trailers-only" HEADERS block when the server fails the call at once.
 *
 * Notifications: stream events arrive inside nghttp2 callbacks, where no script may run.
 * A changed call is put on the client's notify list; the list is run (rt_grpc_client_settle)
 * after each batch of input, from timers, and otherwise from a zero-delay "kick" timer, so
 * a change made anywhere (a Lua finalizer included) is reported from the loop. */
#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client.h"
#include "grpc_client_int.h"
#include "net/server_int.h"
#include "net/tls_ctx.h"

#define USER_AGENT "grpc-rtserver/" RT_VERSION

/* ---- notifications ------------------------------------------------------------------------*/

static void queue_notify(rt_grpc_call *c) {
  rt_grpc_client *cli = c->cli;
  if (c->queued || !cli || cli->freeing) return;
  c->queued = 1;
  c->next_notify = NULL;
  if (cli->notify_tail) cli->notify_tail->next_notify = c;
  else cli->notify_head = c;
  cli->notify_tail = c;
  if (!cli->settling && !ev_is_active(&cli->kick)) ev_timer_start(cli->srv->loop, &cli->kick);
}

static void unqueue_notify(rt_grpc_call *c) {
  rt_grpc_client *cli = c->cli;
  if (!c->queued || !cli) return;
  rt_grpc_call *prev = NULL;
  for (rt_grpc_call *p = cli->notify_head; p; prev = p, p = p->next_notify) {
    if (p != c) continue;
    if (prev) prev->next_notify = c->next_notify;
    else cli->notify_head = c->next_notify;
    if (cli->notify_tail == c) cli->notify_tail = prev;
    break;
  }
  c->queued = 0;
}

void rt_grpc_client_settle(rt_grpc_client *cli) {
  if (cli->settling || cli->freeing) return;
  cli->settling = 1;
  /* A notify may queue more (its own call again, or others): the loop takes them too. */
  while (cli->notify_head) {
    rt_grpc_call *c = cli->notify_head;
    cli->notify_head = c->next_notify;
    if (!cli->notify_head) cli->notify_tail = NULL;
    c->queued = 0;
    if (c->notify) c->notify(c, c->ud);  /* may release c */
  }
  cli->settling = 0;
  ev_timer_stop(cli->srv->loop, &cli->kick);
}

void rt_grpc_call_renotify(rt_grpc_call *c) { queue_notify(c); }

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_grpc_client_settle(w->data);
}

/* ---- finishing -----------------------------------------------------------------------------*/

void rt_grpc_call_finish(rt_grpc_call *c, int status, const char *fmt, ...) {
  if (c->done) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->done = 1;
  c->got_headers = 1;  /* nobody should wait for headers any more */
  c->status = status;
  c->message = strdup(msg);
  ev_timer_stop(c->loop, &c->timer);
  rt_buf_free(&c->out);
  queue_notify(c);
}

/* Detaches a call that never got a stream from its connection. */
static void call_unattach(rt_grpc_call *c) {
  if (c->h && !c->stream_id) {
    rt_h2c_add_calls(c->h, -1);
    c->h = NULL;
  }
}

/* Ends the call from our side: the status now, RST_STREAM for a stream in flight. */
static void call_abort(rt_grpc_call *c, int status, const char *msg) {
  if (c->done) return;
  rt_grpc_call_finish(c, status, "%s", msg);
  if (c->h && c->stream_id) rt_h2c_reset(c->h, c->stream_id, NGHTTP2_CANCEL);
  else call_unattach(c);
}

void rt_grpc_call_cancel(rt_grpc_call *c, int status, const char *message) {
  call_abort(c, status, message ? message : "cancelled");
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_grpc_call *c = w->data;
  rt_grpc_client *cli = c->cli;
  char msg[96];
  snprintf(msg, sizeof msg, "deadline exceeded after %.3g s", c->timeout);
  call_abort(c, RT_GRPC_STATUS_DEADLINE_EXCEEDED, msg);
  if (cli) rt_grpc_client_settle(cli);
}

/* ---- the client and its channels -----------------------------------------------------------*/

rt_grpc_client *rt_grpc_client_new(rt_server *srv) {
  rt_grpc_client *cli = calloc(1, sizeof *cli);
  if (!cli) return NULL;
  cli->srv = srv;
  ev_timer_init(&cli->kick, on_kick, 0, 0);
  cli->kick.data = cli;
  return cli;
}

static void h2c_forget_conn(rt_grpc_client *cli, rt_h2c *h) {
  for (size_t i = 0; i < cli->nh2c; i++)
    if (cli->h2cs[i] == h) {
      cli->h2cs[i] = cli->h2cs[--cli->nh2c];
      return;
    }
}

static void md_list_free(md_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free((void *)l->v[i].key);
    free((void *)l->v[i].val);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static void call_free(rt_grpc_call *c) {
  rt_grpc_client *cli = c->cli;
  if (cli) {
    unqueue_notify(c);
    if (c->prev) c->prev->next = c->next;
    else cli->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    else cli->calls_tail = c->prev;
  }
  ev_timer_stop(c->loop, &c->timer);
  for (msg_node *m = c->q_head, *n; m; m = n) {
    n = m->next;
    free(m);
  }
  rt_buf_free(&c->out);
  rt_grpc_dec_free(&c->dec);
  md_list_free(&c->md[0]);
  md_list_free(&c->md[1]);
  free(c->req_md);
  free(c->path);
  free(c->grpc_message);
  free(c->message);
  free(c);
}

void rt_grpc_client_free(rt_grpc_client *cli) {
  if (!cli) return;
  cli->freeing = 1;
  ev_timer_stop(cli->srv->loop, &cli->kick);
  /* Calls outlive the client while a script holds them: they read as failed. */
  for (rt_grpc_call *c = cli->calls; c; c = c->next) {
    if (!c->done) rt_grpc_call_finish(c, RT_GRPC_STATUS_UNAVAILABLE, "the gRPC client was shut down");
    c->queued = 0;
    c->cli = NULL;
    c->h = NULL;
    c->stream_id = 0;
  }
  while (cli->nh2c) rt_h2c_free(cli->h2cs[--cli->nh2c]);
  free(cli->h2cs);
  while (cli->channels) {
    rt_grpc_channel *ch = cli->channels;
    cli->channels = ch->next;
    rt_tls_ctx_unref(ch->tls);
    free(ch->tls_key);
    free(ch->target);
    free(ch);
  }
  free(cli);
}

rt_grpc_channel *rt_grpc_client_channel(rt_grpc_client *cli, const char *target, char *err,
                                        size_t errlen) {
  return rt_grpc_client_channel_tls(cli, target, NULL, err, errlen);
}

static char *tls_key(const rt_grpc_tls *t) {
  if (!t) return strdup("");
  size_t n = 32;
  const char *parts[4] = {t->ca, t->cert, t->key, t->server_name};
  for (int i = 0; i < 4; i++) n += parts[i] ? strlen(parts[i]) + 1 : 1;
  char *k = malloc(n);
  if (k) snprintf(k, n, "tls %d\n%s\n%s\n%s\n%s", t->no_verify, t->ca ? t->ca : "", t->cert ? t->cert : "",
                  t->key ? t->key : "", t->server_name ? t->server_name : "");
  return k;
}

static int channel_tls(rt_grpc_channel *ch, const rt_grpc_tls *t, char *err, size_t errlen) {
  if (!t) return 0;
  rt_tls_ctx_opts o = {.ca = t->ca, .cert = t->cert, .key = t->key, .no_verify = t->no_verify};
  ch->tls = rt_tls_client_ctx_new(&o, err, errlen);
  if (!ch->tls) return -1;
  snprintf(ch->server_name, sizeof ch->server_name, "%s", t->server_name ? t->server_name : ch->host);
  return 0;
}

struct rt_tls_ctx *rt_grpc_channel_tls(const rt_grpc_channel *ch, const char **server_name) {
  *server_name = ch->server_name;
  return ch->tls;
}

rt_grpc_channel *rt_grpc_client_channel_tls(rt_grpc_client *cli, const char *target,
                                            const rt_grpc_tls *tls, char *err, size_t errlen) {
  char *key = tls_key(tls);
  if (!key) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  for (rt_grpc_channel *ch = cli->channels; ch; ch = ch->next)
    if (!strcmp(ch->target, target) && !strcmp(ch->tls_key, key)) {
      free(key);
      return ch;
    }
  if (cli->nchannels >= RT_GRPC_CLIENT_MAX_TARGETS) {
    snprintf(err, errlen, "more than %d gRPC targets", RT_GRPC_CLIENT_MAX_TARGETS);
    return NULL;
  }
  rt_grpc_channel *ch = calloc(1, sizeof *ch);
  if (!ch || !(ch->target = strdup(target))) {
    free(ch);
    free(key);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ch->tls_key = key;
  if (rt_h2c_parse_target(target, ch->host, sizeof ch->host, ch->port, sizeof ch->port, ch->authority,
                   sizeof ch->authority) < 0) {
    snprintf(err, errlen, "bad gRPC target '%s' (expected host:port or [v6addr]:port)", target);
    free(ch->tls_key);
    free(ch->target);
    free(ch);
    return NULL;
  }
  if (channel_tls(ch, tls, err, errlen) < 0) {
    free(ch->tls_key);
    free(ch->target);
    free(ch);
    return NULL;
  }
  ch->cli = cli;
  ch->next = cli->channels;
  cli->channels = ch;
  cli->nchannels++;
  return ch;
}

void rt_grpc_channel_stats(const rt_grpc_channel *ch, rt_grpc_client_stats *out) {
  out->connects = ch->connects;
  out->connect_fails = ch->connect_fails;
  out->calls = ch->calls;
  out->open = ch->open;
}

/* ---- sending the request -------------------------------------------------------------------*/

#define NV(n, v, vl) ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), (vl), NGHTTP2_NV_FLAG_NONE})

static void call_attach(rt_grpc_call *c);

static void call_submit(rt_grpc_call *c) {
  rt_grpc_channel *ch = c->ch;
  nghttp2_nv nva[8 + RT_GRPC_CLIENT_MAX_SEND_MD];
  size_t n = 0;
  char tmo[RT_GRPC_TIMEOUT_MAXLEN];
  nva[n++] = NV(":method", "POST", 4);
  nva[n++] = NV(":scheme", "http", 4);
  nva[n++] = NV(":path", c->path, strlen(c->path));
  nva[n++] = NV(":authority", ch->authority, strlen(ch->authority));
  nva[n++] = NV("te", "trailers", 8);
  nva[n++] = NV("content-type", "application/grpc", 16);
  nva[n++] = NV("user-agent", USER_AGENT, strlen(USER_AGENT));
  if (c->deadline > 0) {
    /* What is left of the deadline now, since the connect may have taken some of it. */
    double left = c->deadline - ev_now(c->loop);
    int64_t ns = left > 0 ? (int64_t)(left * 1e9) : 1;
    int tl = rt_grpc_timeout_format(ns, tmo, sizeof tmo);
    if (tl > 0) nva[n++] = NV("grpc-timeout", tmo, (size_t)tl);
  }
  /* -bin values go out as unpadded base64; they are encoded into one buffer. */
  size_t b64 = 0;
  for (size_t i = 0; i < c->n_req_md; i++)
    if (rt_grpc_meta_key_is_bin(c->req_md[i].key, strlen(c->req_md[i].key)))
      b64 += rt_grpc_b64_encode_len(c->req_md[i].vallen, 0);
  char *bbuf = b64 ? malloc(b64) : NULL, *bp = bbuf;
  if (b64 && !bbuf) {
    call_abort(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < c->n_req_md; i++) {
    const rt_grpc_md *m = &c->req_md[i];
    if (rt_grpc_meta_key_is_bin(m->key, strlen(m->key))) {
      size_t l = rt_grpc_b64_encode(m->val, m->vallen, bp, 0);
      nva[n++] = NV(m->key, bp, l);
      bp += l;
    } else {
      nva[n++] = NV(m->key, m->val, m->vallen);
    }
  }
  rt_h2c *h = c->h;
  int32_t sid = rt_h2c_submit(h, nva, n, c);  /* nghttp2 copies the header block */
  free(bbuf);
  if (sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || sid == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED) {
    /* This connection takes no new streams: the call goes to a fresh one. */
    if (ch->active == h) ch->active = NULL;
    call_unattach(c);
    call_attach(c);
    return;
  }
  if (sid < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot start the stream: %s", nghttp2_strerror(sid));
    call_abort(c, RT_GRPC_STATUS_INTERNAL, msg);
    return;
  }
  c->stream_id = sid;
  free(c->req_md);
  c->req_md = NULL;
  c->n_req_md = 0;
}

static void call_attach(rt_grpc_call *c) {
  rt_grpc_channel *ch = c->ch;
  rt_grpc_client *cli = c->cli;
  if (!ch->active) {
    if (cli->nh2c == cli->caph2c) {
      size_t cap = cli->caph2c ? cli->caph2c * 2 : 8;
      rt_h2c **v = realloc(cli->h2cs, cap * sizeof *v);
      if (!v) {
        rt_grpc_call_finish(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
      }
      cli->h2cs = v;
      cli->caph2c = cap;
    }
    rt_h2c *h = rt_h2c_new(cli, ch, cli->srv, ch->host, ch->port);
    if (!h || rt_h2c_connect(h, RT_GRPC_CLIENT_CONNECT_TIMEOUT) < 0) {
      rt_h2c_free(h);
      rt_grpc_call_finish(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    cli->h2cs[cli->nh2c++] = h;
    ch->active = h;
  }
  if (rt_h2c_calls(ch->active) >= RT_GRPC_CLIENT_MAX_CALLS) {
    rt_grpc_call_finish(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "more than %d calls waiting on %s",
                RT_GRPC_CLIENT_MAX_CALLS, ch->target);
    return;
  }
  c->h = ch->active;
  rt_h2c_add_calls(c->h, 1);
  if (rt_h2c_is_ready(c->h)) {
    call_submit(c);
    if (c->h) rt_h2c_flush(c->h);
  }
}

static const char *const reserved_keys[] = {"te", "content-type", "user-agent", "host",
                                            "connection", "transfer-encoding", "upgrade",
                                            "keep-alive", "proxy-connection", NULL};

int rt_grpc_md_check(const char *key, const uint8_t *val, size_t vallen, char *err,
                     size_t errlen) {
  size_t kl = strlen(key);
  if (!rt_grpc_meta_key_valid(key, kl)) {
    snprintf(err, errlen, "metadata key '%s' is not valid (lower-case letters, digits, _ - .)",
             key);
    return -1;
  }
  if (!strncmp(key, "grpc-", 5)) {
    snprintf(err, errlen, "metadata key '%s' is reserved (grpc-*)", key);
    return -1;
  }
  for (const char *const *r = reserved_keys; *r; r++)
    if (!strcmp(key, *r)) {
      snprintf(err, errlen, "metadata key '%s' is reserved", key);
      return -1;
    }
  if (!rt_grpc_meta_key_is_bin(key, kl) && vallen && !rt_grpc_meta_value_valid((const char *)val, vallen)) {
    snprintf(err, errlen, "metadata '%s': value must be printable ASCII (use a -bin key for bytes)",
             key);
    return -1;
  }
  return 0;
}

rt_grpc_call *rt_grpc_call_start(rt_grpc_channel *ch, const rt_grpc_call_opts *o, char *err,
                                 size_t errlen) {
  rt_grpc_client *cli = ch->cli;
  if (!o->path || o->path[0] != '/') {
    snprintf(err, errlen, "bad method path");
    return NULL;
  }
  if (o->n_md > RT_GRPC_CLIENT_MAX_SEND_MD) {
    snprintf(err, errlen, "more than %d metadata entries", RT_GRPC_CLIENT_MAX_SEND_MD);
    return NULL;
  }
  size_t mdsize = o->n_md * sizeof(rt_grpc_md);
  for (size_t i = 0; i < o->n_md; i++) {
    if (rt_grpc_md_check(o->md[i].key, o->md[i].val, o->md[i].vallen, err, errlen) < 0)
      return NULL;
    mdsize += strlen(o->md[i].key) + 1 + o->md[i].vallen + 1;
  }
  if (mdsize > RT_GRPC_CLIENT_MAX_MD_BYTES) {
    snprintf(err, errlen, "request metadata over %d bytes", RT_GRPC_CLIENT_MAX_MD_BYTES);
    return NULL;
  }
  rt_grpc_call *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(o->path)) || (o->n_md && !(c->req_md = malloc(mdsize)))) {
    if (c) free(c->path);
    free(c);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  /* The metadata is copied, since the request may leave after the caller returned. */
  char *sp = o->n_md ? (char *)(c->req_md + o->n_md) : NULL;
  for (size_t i = 0; i < o->n_md; i++) {
    size_t kl = strlen(o->md[i].key);
    c->req_md[i].key = memcpy(sp, o->md[i].key, kl + 1);
    sp += kl + 1;
    if (o->md[i].vallen) memcpy(sp, o->md[i].val, o->md[i].vallen);
    sp[o->md[i].vallen] = 0;
    c->req_md[i].val = (const uint8_t *)sp;
    c->req_md[i].vallen = o->md[i].vallen;
    sp += o->md[i].vallen + 1;
  }
  c->n_req_md = o->n_md;
  c->cli = cli;
  c->ch = ch;
  c->loop = cli->srv->loop;
  c->http_status = 0;
  c->grpc_status = GRPC_STATUS_NONE;
  rt_grpc_dec_init(&c->dec, o->max_recv_msg, NULL);
  ev_timer_init(&c->timer, on_deadline, 0, 0);
  c->timer.data = c;
  c->prev = cli->calls_tail;
  if (cli->calls_tail) cli->calls_tail->next = c;
  else cli->calls = c;
  cli->calls_tail = c;
  ch->calls++;
  if (o->timeout > 0) {
    c->timeout = o->timeout;
    c->deadline = ev_now(c->loop) + o->timeout;
    ev_timer_set(&c->timer, o->timeout, 0);
    ev_timer_start(c->loop, &c->timer);
  }
  call_attach(c);
  return c;
}

void rt_grpc_call_set_notify(rt_grpc_call *c, void (*fn)(rt_grpc_call *, void *), void *ud) {
  c->notify = fn;
  c->ud = ud;
}

void rt_grpc_call_release(rt_grpc_call *c) {
  c->notify = NULL;
  if (c->cli && c->h) {
    rt_h2c *h = c->h;
    int32_t sid = c->stream_id;
    c->h = NULL;
    c->stream_id = 0;
    rt_h2c_add_calls(h, -1);
    /* nghttp2 forgets the call and resets the stream if it still lives. */
    if (sid) rt_h2c_forget(h, sid);
  }
  call_free(c);
}

static void wake_sender(rt_grpc_call *c) {
  if (!c->h || !c->stream_id) return;  /* the request goes out when the stream starts */
  if (c->deferred) {
    c->deferred = 0;
    rt_h2c_resume(c->h, c->stream_id);
  } else {
    rt_h2c_flush(c->h);
  }
}

int rt_grpc_call_send(rt_grpc_call *c, uint8_t *buf, size_t len, char *err, size_t errlen) {
  if (c->done) {
    snprintf(err, errlen, "the call has finished");
    return -1;
  }
  if (c->send_closed) {
    snprintf(err, errlen, "send after close_send");
    return -1;
  }
  if (rt_grpc_frame_prefix(buf, 0, len) < 0) {
    snprintf(err, errlen, "message too large");
    return -1;
  }
  if (rt_buf_append(&c->out, buf, len + RT_GRPC_PREFIX_LEN) < 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  wake_sender(c);
  return 0;
}

void rt_grpc_call_close_send(rt_grpc_call *c) {
  if (c->send_closed || c->done) {
    c->send_closed = 1;
    return;
  }
  c->send_closed = 1;
  wake_sender(c);
}

int rt_grpc_call_send_closed(const rt_grpc_call *c) { return c->send_closed; }
size_t rt_grpc_call_send_buffered(const rt_grpc_call *c) { return c->out.len; }

ssize_t rt_grpc_call_read_body(rt_grpc_call *c, uint8_t *buf, size_t len, int *eof) {
  if (c->done) return -1;
  size_t before = c->out.len, n = before < len ? before : len;
  if (n) {
    memcpy(buf, rt_buf_start(&c->out), n);
    rt_buf_consume(&c->out, n);
  }
  if (c->out.len == 0 && c->send_closed) {
    *eof = 1;
    c->eof_sent = 1;
    rt_buf_free(&c->out);
  } else if (n == 0) {
    c->deferred = 1;
  }
  /* A writer that waits for room (above SEND_HIGH) is told once it is under half. */
  if (before > RT_GRPC_CLIENT_SEND_HIGH / 2 && c->out.len <= RT_GRPC_CLIENT_SEND_HIGH / 2)
    queue_notify(c);
  return (ssize_t)n;
}

/* ---- connection events --------------------------------------------------------------------*/

void rt_grpc_h2c_ready(rt_grpc_client *cli, rt_h2c *h) {
  rt_grpc_channel *ch = rt_h2c_channel(h);
  ch->connects++;
  ch->open++;
  for (rt_grpc_call *c = cli->calls; c; c = c->next)
    if (c->h == h && !c->stream_id && !c->done) call_submit(c);
}

void rt_grpc_h2c_draining(rt_grpc_client *cli, rt_h2c *h) {
  rt_grpc_channel *ch = rt_h2c_channel(h);
  if (ch->active == h) ch->active = NULL;
}

void rt_grpc_h2c_down(rt_grpc_client *cli, rt_h2c *h, const char *why) {
  rt_grpc_channel *ch = rt_h2c_channel(h);
  h2c_forget_conn(cli, h);
  if (ch->active == h) ch->active = NULL;
  if (rt_h2c_connected(h)) ch->open--;
  else ch->connect_fails++;
  for (rt_grpc_call *c = cli->calls; c; c = c->next) {
    if (c->h != h) continue;
    c->h = NULL;
    c->stream_id = 0;
    rt_grpc_call_finish(c, RT_GRPC_STATUS_UNAVAILABLE, "%s", why);
  }
}
