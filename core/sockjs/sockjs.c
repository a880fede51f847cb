/* SockJS sessions: the queue, the receiver, heartbeats and the disconnect delay.
 *
 * A session is open until the application closes it, its client stays away longer than
 * the disconnect delay, its queue passes the bound, or the server stops. A closed session
 * registered under an id stays (without its connection) until the delay passes once more,
 * so a client that comes back hears the close frame instead of getting a new session. */
#include "sockjs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net/broker.h"
#include "http/http1.h"
#include "net/server_int.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"

static const rt_proto session_proto;

void rt_sockjs_config_init(rt_sockjs_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->heartbeat = 25;
  cfg->disconnect_delay = 5;
  cfg->response_limit = 128 * 1024;
  cfg->websocket = 1;
  cfg->max_message = 1024 * 1024;
  cfg->max_queue = 1000;
  cfg->max_queue_bytes = 1024 * 1024;
  cfg->max_sessions = 10000;
  snprintf(cfg->sockjs_url, sizeof cfg->sockjs_url, "%s",
           "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js");
}

static struct ev_loop *loop_of(const rt_sockjs_session *s) { return s->ep->sj->srv->loop; }

/* ---- lifetime ---------------------------------------------------------------------------- */

static void queue_clear(rt_sockjs_session *s) {
  for (size_t i = 0; i < s->qlen; i++) rt_chunk_unref(s->q[i]);
  s->qlen = 0;
  s->qbytes = 0;
}

void rt_sockjs_session_hold(rt_sockjs_session *s) { s->busy++; }

int rt_sockjs_session_release(rt_sockjs_session *s) {
  if (--s->busy > 0 || !s->dead) return s->dead ? -1 : 0;
  queue_clear(s);
  free(s->q);
  free(s);
  return -1;
}

static void detach(rt_sockjs_session *s, int end);

/* Gone from the endpoint for good (its connection closed before). */
static void destroy(rt_sockjs_session *s) {
  if (s->dead) return;
  rt_sockjs_endpoint *ep = s->ep;
  s->dead = 1;
  ev_timer_stop(loop_of(s), &s->timer);
  if (s->recv) detach(s, 1);
  if (s->registered) rt_map_remove(&ep->sessions, s->sid);
  s->registered = 0;
  if (s->all_prev) s->all_prev->all_next = s->all_next;
  else ep->all = s->all_next;
  if (s->all_next) s->all_next->all_prev = s->all_prev;
  ep->nsessions--;
  s->busy++;
  rt_sockjs_session_release(s);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* Heartbeat interval while a receiver is attached, the disconnect delay while not. */
static void arm(rt_sockjs_session *s) {
  ev_timer_stop(loop_of(s), &s->timer);
  if (s->dead) return;
  double t = s->recv ? s->ep->cfg.heartbeat : s->ep->cfg.disconnect_delay;
  if (s->recv && s->state != RT_SOCKJS_S_OPEN) return;
  if (t <= 0) {
    if (s->recv) return;  /* heartbeats off */
    t = 0.001;
  }
  ev_timer_set(&s->timer, t, 0);
  ev_timer_start(loop_of(s), &s->timer);
}

rt_sockjs_session *rt_sockjs_session_new(rt_sockjs_endpoint *ep, const char *sid, const char *peer,
                                         char *err, size_t errlen) {
  rt_server *srv = ep->sj->srv;
  if (ep->nsessions >= ep->cfg.max_sessions) {
    snprintf(err, errlen, "too many SockJS sessions on %s (max_sessions %d)", ep->prefix, ep->cfg.max_sessions);
    return NULL;
  }
  if (srv->stopping) {
    snprintf(err, errlen, "the server is stopping");
    return NULL;
  }
  /* The descriptor only gives the session a connection (an id, subscriptions, STOMP's
   * transport): an eventfd nobody writes never becomes readable. */
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "no descriptor for a SockJS session: %s", strerror(errno));
    return NULL;
  }
  rt_sockjs_session *s = calloc(1, sizeof *s);
  rt_conn *c = s ? rt_conn_new(srv, fd, peer) : NULL;
  if (!c) {
    close(fd);
    free(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->ep = ep;
  snprintf(s->sid, sizeof s->sid, "%s", sid);
  snprintf(s->peer, sizeof s->peer, "%s", peer);
  if (sid[0]) {
    if (rt_map_put(&ep->sessions, sid, s) < 0) {
      rt_conn_close(c);  /* no proto yet: nothing else hears of it */
      free(s);
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    s->registered = 1;
  }
  rt_conn_set_proto(c, &session_proto, RT_PROTO_WS, s);
  s->conn = c;
  s->conn_id = c->id;
  s->state = RT_SOCKJS_S_OPEN;
  ev_timer_init(&s->timer, on_timer, 1, 0);
  s->timer.data = s;
  s->all_next = ep->all;
  if (ep->all) ep->all->all_prev = s;
  ep->all = s;
  ep->nsessions++;
  ep->sj->sessions_total++;
  arm(s);
  return s;
}

rt_sockjs_session *rt_sockjs_session_find(rt_sockjs_endpoint *ep, const char *sid) {
  rt_sockjs_session *s = rt_map_get(&ep->sessions, sid);
  return s && !s->dead ? s : NULL;
}

rt_sockjs_session *rt_sockjs_session_of(const rt_conn *c) {
  return c && c->proto == &session_proto && !c->closing ? c->pstate : NULL;
}

void rt_sockjs_session_opened(rt_sockjs_session *s, const rt_http_req *req) {
  rt_sockjs_hooks *h = &s->ep->sj->hooks;
  if (s->opened || s->state != RT_SOCKJS_S_OPEN) return;
  s->opened = 1;
  if (h->on_open) h->on_open(h->ud, s, req);
}

void rt_sockjs_session_set_sink(rt_sockjs_session *s, const rt_sockjs_sink *sink) {
  if (sink) s->sink = *sink;
  else memset(&s->sink, 0, sizeof s->sink);
}

/* ---- writing to the receiver ------------------------------------------------------------- */

/* Queues chunks as one frame on the receiver; ends a polling response after it and a
 * streaming one past the response limit. Returns -1 when the receiver went away. */
static int recv_write(rt_sockjs_session *s, rt_chunk *const *chunks, int n) {
  rt_conn *c = s->recv;
  if (!c) return -1;
  int rc;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += chunks[i]->len;
  if (s->recv_transport == RT_SOCKJS_WEBSOCKET) rc = rt_ws_send_chunks(c, RT_WS_TEXT, chunks, n);
  else rc = rt_http1_stream_write(c, chunks, n);
  if (s->recv != c) return -1;  /* the connection closed under the write (slow consumer) */
  if (rc < 0) {
    detach(s, 1);
    return -1;
  }
  s->recv_sent += total;
  if (s->recv_transport != RT_SOCKJS_WEBSOCKET &&
      (!rt_sockjs_transport_streams(s->recv_transport) || s->recv_sent >= s->ep->cfg.response_limit))
    detach(s, 1);
  else
    arm(s);  /* the next heartbeat is due a full interval after this frame */
  return 0;
}

/* A control frame (o, h, c[...]) wrapped for the receiver's transport. */
static int recv_frame(rt_sockjs_session *s, const char *frame) {
  rt_buf *b = &s->ep->sj->scratch;
  rt_buf_consume(b, b->len);
  if (rt_sockjs_wrap(b, s->recv_transport, s->callback, (const uint8_t *)frame, strlen(frame)) < 0)
    return -1;
  rt_chunk *ch = rt_chunk_copy(rt_buf_start(b), b->len);
  if (!ch) return -1;
  int rc = recv_write(s, &ch, 1);
  rt_chunk_unref(ch);
  return rc;
}

/* Everything queued, as one a[...] frame. */
static void flush_queue(rt_sockjs_session *s) {
  if (!s->recv || !s->qlen) return;
  rt_sockjs_server *sj = s->ep->sj;
  size_t n = s->qlen;
  rt_chunk **q = s->q;
  int t = s->recv_transport;
  /* The queue is handed over whatever happens to the write. */
  s->q = NULL;
  s->qlen = s->qcap = 0;
  s->qbytes = 0;
  if (t != RT_SOCKJS_WEBSOCKET) sj->srv->metrics.msgs_out += (long)n;
  if (sj->affix[t][0]) {
    /* [head, m1, ",", m2, ..., tail]: the messages' bytes are not copied. */
    rt_chunk **v = malloc((2 * n + 1) * sizeof *v);
    if (v) {
      size_t k = 0;
      v[k++] = sj->affix[t][0];
      for (size_t i = 0; i < n; i++) {
        if (i) v[k++] = sj->comma;
        v[k++] = q[i];
      }
      v[k++] = sj->affix[t][1];
      recv_write(s, v, (int)k);
      free(v);
    }
  } else {
    rt_buf frame = {0};
    rt_buf *b = &sj->scratch;
    rt_buf_consume(b, b->len);
    if (rt_sockjs_array_frame(&frame, q, n) == 0 &&
        rt_sockjs_wrap(b, t, s->callback, rt_buf_start(&frame), frame.len) == 0) {
      rt_chunk *ch = rt_chunk_copy(rt_buf_start(b), b->len);
      if (ch) {
        recv_write(s, &ch, 1);
        rt_chunk_unref(ch);
      }
    }
    rt_buf_free(&frame);
  }
  for (size_t i = 0; i < n; i++) rt_chunk_unref(q[i]);
  free(q);
}

/* Lets go of the receiver; end: finish its response (or close its WebSocket). */
static void detach(rt_sockjs_session *s, int end) {
  rt_conn *c = s->recv;
  if (!c) return;
  s->recv = NULL;
  if (s->recv_transport == RT_SOCKJS_WEBSOCKET) {
    rt_ws_set_sink(c, NULL);
    if (end) rt_ws_close(c, 1000, "");
  } else if (end) {
    rt_http1_stream_end(c);
  }
  arm(s);
}

/* What a closed session's receiver gets: what was still queued, then the close frame. */
static void tell_receiver_closed(rt_sockjs_session *s) {
  if (!s->recv) return;
  flush_queue(s);
  if (!s->recv) return;  /* a polling response ended with the messages */
  rt_buf b = {0};
  if (rt_sockjs_close_frame(&b, s->close_code, s->close_reason) == 0 && rt_buf_append(&b, "", 1) == 0)
    recv_frame(s, (const char *)rt_buf_start(&b));
  rt_buf_free(&b);
  detach(s, 1);
}

/* ---- flushing once per loop turn --------------------------------------------------------- */

static void schedule_flush(rt_sockjs_session *s) {
  if (s->flush_queued) return;
  rt_sockjs_server *sj = s->ep->sj;
  s->flush_queued = 1;
  s->busy++;  /* released by the flusher */
  s->flush_next = sj->flush_list;
  sj->flush_list = s;
}

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents) {
  rt_sockjs_server *sj = w->data;
  /* Runs before the server's own prepare watcher (higher priority), which then writes. */
  while (sj->flush_list) {
    rt_sockjs_session *list = sj->flush_list;
    sj->flush_list = NULL;
    while (list) {
      rt_sockjs_session *s = list;
      list = s->flush_next;
      s->flush_queued = 0;
      if (!s->dead) flush_queue(s);
      rt_sockjs_session_release(s);
    }
  }
}

/* ---- sending, closing -------------------------------------------------------------------- */

int rt_sockjs_session_send_quoted(rt_sockjs_session *s, rt_chunk *quoted) {
  if (s->dead || s->state != RT_SOCKJS_S_OPEN) return -1;
  const rt_sockjs_config *cfg = &s->ep->cfg;
  if (s->qlen >= cfg->max_queue || s->qbytes + quoted->len > cfg->max_queue_bytes) {
    rt_server *srv = s->ep->sj->srv;
    srv->metrics.slow_consumers++;
    rt_warn(&srv->log, "%s: SockJS session %s has %zu messages (%zu bytes) waiting; closing as a slow consumer",
            s->peer, s->sid[0] ? s->sid : "(websocket)", s->qlen, s->qbytes);
    rt_sockjs_session_close(s, 1008, "slow consumer");
    return -1;
  }
  if (s->qlen == s->qcap) {
    size_t cap = s->qcap ? s->qcap * 2 : 8;
    rt_chunk **q = realloc(s->q, cap * sizeof *q);
    if (!q) return -1;
    s->q = q;
    s->qcap = cap;
  }
  s->q[s->qlen++] = rt_chunk_ref(quoted);
  s->qbytes += quoted->len;
  if (s->recv) schedule_flush(s);
  return 0;
}

int rt_sockjs_session_send(rt_sockjs_session *s, const void *msg, size_t len) {
  if (s->dead || s->state != RT_SOCKJS_S_OPEN) return -1;
  rt_buf b = {0};
  if (rt_sockjs_quote(&b, msg, len) < 0) {
    rt_buf_free(&b);
    return -1;
  }
  rt_chunk *ch = rt_chunk_copy(rt_buf_start(&b), b.len);
  rt_buf_free(&b);
  if (!ch) return -1;
  int rc = rt_sockjs_session_send_quoted(s, ch);
  rt_chunk_unref(ch);
  return rc;
}

void rt_sockjs_deliver(rt_sub *sub, rt_msg *m) {
  if (!m->sockjs_quoted) {
    rt_buf b = {0};
    if (rt_sockjs_quote(&b, m->body->data, m->body->len) == 0)
      m->sockjs_quoted = rt_chunk_copy(rt_buf_start(&b), b.len);
    rt_buf_free(&b);
    if (!m->sockjs_quoted) return;
  }
  rt_sockjs_session_send_quoted(sub->data, m->sockjs_quoted);
}

static void mark_closed(rt_sockjs_session *s, int code, const char *reason) {
  s->state = RT_SOCKJS_S_CLOSED;
  s->close_code = code;
  snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
}

void rt_sockjs_session_close(rt_sockjs_session *s, int code, const char *reason) {
  if (s->dead || s->state != RT_SOCKJS_S_OPEN) return;
  mark_closed(s, code, reason);
  /* The rest happens as the session's connection closes (session_on_close). */
  if (s->conn) rt_conn_close(s->conn);
}

void rt_sockjs_session_deliver(rt_sockjs_session *s, const uint8_t *msg, size_t len) {
  if (s->dead || s->state != RT_SOCKJS_S_OPEN) return;
  rt_sockjs_server *sj = s->ep->sj;
  sj->srv->metrics.msgs_in++;
  if (s->sink.on_message) s->sink.on_message(s, s->sink.data, msg, len);
  else if (sj->hooks.on_message) sj->hooks.on_message(sj->hooks.ud, s, msg, len);
}

void rt_sockjs_session_shutdown(rt_sockjs_session *s) {
  if (s->dead || s->state != RT_SOCKJS_S_OPEN) return;
  rt_sockjs_session_hold(s);
  s->shutting_down = 1;
  if (s->sink.on_shutdown) s->sink.on_shutdown(s, s->sink.data);
  rt_sockjs_session_close(s, 1001, "Server shutting down");
  rt_sockjs_session_release(s);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_sockjs_session *s = w->data;
  rt_sockjs_session_hold(s);
  if (s->state == RT_SOCKJS_S_OPEN && s->recv) {
    recv_frame(s, "h");
  } else if (s->state == RT_SOCKJS_S_OPEN) {
    /* Nobody came back within the disconnect delay: the client is gone. Such a session is
     * forgotten at once, as sockjs-node does. */
    rt_debug(&s->ep->sj->srv->log, "%s: SockJS session %s timed out", s->peer, s->sid);
    rt_sockjs_session_close(s, 1006, "session timed out");
    destroy(s);
  } else {
    destroy(s);  /* a closed session's close frame has been on offer long enough */
  }
  rt_sockjs_session_release(s);
}

/* ---- receivers --------------------------------------------------------------------------- */

/* The receiving request ended before the session let it go: the client aborted it (or its
 * connection failed). What was written to it may never have arrived, so the session does
 * not carry on as if nothing happened: it closes with 1002, the application hears that,
 * and the client's next request gets c[1002,"Connection interrupted"] (as sockjs-node). */
static void http_gone(rt_conn *c, void *data) {
  rt_sockjs_session *s = data;
  if (s->recv != c) return;
  s->recv = NULL;
  rt_sockjs_session_hold(s);
  if (s->state == RT_SOCKJS_S_OPEN) {
    rt_debug(&s->ep->sj->srv->log, "%s: SockJS session %s: its %s request was interrupted; closing", s->peer,
             s->sid, rt_sockjs_transport_name(s->recv_transport));
    rt_sockjs_session_close(s, 1002, "Connection interrupted");
  }
  arm(s);
  rt_sockjs_session_release(s);
}

static void http_shutdown(rt_conn *c, void *data) { rt_sockjs_session_shutdown(data); }

void rt_sockjs_answer_frame(rt_sockjs_server *sj, rt_conn *c, int transport, const char *callback,
                            const char *const *headers, int nheaders, const char *frame) {
  if (rt_http1_stream_start(c, 200, headers, nheaders, NULL) < 0) return;
  /* The prelude and the frame go as a chunk each, as on a receiver: clients (and the
   * protocol's suite) may read a streaming response chunk by chunk. */
  rt_buf b = {0};
  if (rt_sockjs_prelude(&b, transport, callback) == 0 && rt_http1_stream_write_data(c, rt_buf_start(&b), b.len) == 0) {
    rt_buf_consume(&b, b.len);
    if (rt_sockjs_wrap(&b, transport, callback, (const uint8_t *)frame, strlen(frame)) == 0)
      rt_http1_stream_write_data(c, rt_buf_start(&b), b.len);
  }
  rt_buf_free(&b);
  rt_http1_stream_end(c);
}

void rt_sockjs_attach_http(rt_sockjs_session *s, rt_conn *c, int transport, const char *callback,
                           const char *const *headers, int nheaders, int open_frame) {
  rt_sockjs_server *sj = s->ep->sj;
  if (s->recv) {
    rt_sockjs_answer_frame(sj, c, transport, callback, headers, nheaders,
                           "c[2010,\"Another connection still open\"]");
    return;
  }
  rt_http1_stream_owner owner = {.on_close = http_gone, .on_shutdown = http_shutdown, .data = s};
  if (rt_http1_stream_start(c, 200, headers, nheaders, &owner) < 0) return;
  rt_sockjs_session_hold(s);
  s->recv = c;
  s->recv_transport = transport;
  s->recv_sent = 0;
  snprintf(s->callback, sizeof s->callback, "%s", callback ? callback : "");
  rt_buf *b = &sj->scratch;
  rt_buf_consume(b, b->len);
  if (rt_sockjs_prelude(b, transport, callback) < 0 ||
      (b->len && rt_http1_stream_write_data(c, rt_buf_start(b), b->len) < 0)) {
    if (s->recv == c) detach(s, 1);
  } else {
    /* A new session says "o" even when its open handler closed it already: the close
     * frame follows (on the next request, for polling), as sockjs-node does. */
    if (open_frame) recv_frame(s, "o");
    if (s->state != RT_SOCKJS_S_OPEN) tell_receiver_closed(s);
    else flush_queue(s);
  }
  arm(s);  /* heartbeats, or the disconnect delay (a closed session's expiry) */
  rt_sockjs_session_release(s);
}

/* Hands one client message on; stops the walk once the session closed under it. */
static int deliver_one(void *ud, const uint8_t *msg, size_t len) {
  rt_sockjs_session *s = ud;
  rt_sockjs_session_deliver(s, msg, len);
  return s->dead || s->state != RT_SOCKJS_S_OPEN;
}

void rt_sockjs_session_deliver_payload(rt_sockjs_session *s, const uint8_t *p, size_t n) {
  rt_buf scratch = {0};
  rt_sockjs_session_hold(s);
  rt_sockjs_parse_messages(p, n, &scratch, deliver_one, s);
  rt_sockjs_session_release(s);
  rt_buf_free(&scratch);
}

static void ws_message(rt_conn *c, void *data, const uint8_t *msg, size_t len, int binary) {
  rt_sockjs_session *s = data;
  if (len == 0) return;  /* sockjs-client never sends one; nothing in it */
  if (len > s->ep->cfg.max_message) {
    rt_info(&s->ep->sj->srv->log, "%s: SockJS: a %zu-byte WebSocket message is over max_message; closing", s->peer, len);
    rt_sockjs_session_close(s, 1009, "Message too big.");
  } else if (rt_sockjs_parse_messages(msg, len, NULL, NULL, NULL) < 0) {
    /* The connection ends abruptly, without a SockJS close frame (as sockjs-node): the
     * peer does not speak SockJS. */
    rt_info(&s->ep->sj->srv->log, "%s: SockJS: broken JSON framing on a WebSocket; closing", s->peer);
    detach(s, 0);
    rt_ws_close(c, 1002, "Broken framing.");
    rt_sockjs_session_close(s, 1002, "Broken framing.");
  } else {
    rt_sockjs_session_deliver_payload(s, msg, len);
  }
}

static void ws_gone(rt_conn *c, void *data) {
  rt_sockjs_session *s = data;
  if (s->recv != c) return;
  s->recv = NULL;
  /* A WebSocket session lives as long as its WebSocket. SockJS carries no close frame from
   * the client, so the application hears 1006. */
  rt_sockjs_session_close(s, 1006, "client went away");
}

void rt_sockjs_attach_ws(rt_sockjs_session *s, rt_conn *ws) {
  rt_ws_sink sink = {.on_message = ws_message, .on_close = ws_gone, .data = s};
  s->recv = ws;
  s->recv_transport = RT_SOCKJS_WEBSOCKET;
  s->recv_sent = 0;
  s->callback[0] = 0;
  rt_ws_set_sink(ws, &sink);
  rt_sockjs_session_hold(s);
  recv_frame(s, "o");
  flush_queue(s);
  arm(s);
  rt_sockjs_session_release(s);
}

/* ---- the session's own connection -------------------------------------------------------- */

static void session_on_close(rt_conn *c) {
  rt_sockjs_session *s = c->pstate;
  rt_sockjs_server *sj = s->ep->sj;
  rt_sockjs_session_hold(s);
  if (s->state == RT_SOCKJS_S_OPEN) mark_closed(s, 1001, "Server shutting down");
  tell_receiver_closed(s);
  rt_broker_drop_conn(sj->srv->broker, c);
  s->conn = NULL;
  if (s->sink.on_close) {
    rt_sockjs_sink sink = s->sink;
    memset(&s->sink, 0, sizeof s->sink);
    sink.on_close(s, sink.data);
  } else if (s->opened && sj->hooks.on_close) {
    sj->hooks.on_close(sj->hooks.ud, s, s->close_code, s->close_reason);
  }
  /* A WebSocket session is nobody's to look up again; a registered one offers its close
   * frame for one more disconnect delay. */
  if (!s->registered) destroy(s);
  else arm(s);
  rt_sockjs_session_release(s);
}

static void session_on_shutdown(rt_conn *c) { rt_sockjs_session_shutdown(c->pstate); }

static void session_on_script_error(rt_conn *c) {
  rt_sockjs_session_close(c->pstate, 1011, "internal error");
}

static const rt_proto session_proto = {
    .name = "sockjs",
    .on_script_error = session_on_script_error,
    .on_shutdown = session_on_shutdown,
    .on_close = session_on_close,
};

/* ---- server and endpoints ---------------------------------------------------------------- */

rt_sockjs_server *rt_sockjs_server_new(rt_server *srv, const rt_sockjs_hooks *hooks) {
  rt_sockjs_server *sj = calloc(1, sizeof *sj);
  if (!sj) return NULL;
  sj->srv = srv;
  if (hooks) sj->hooks = *hooks;
  int ok = (sj->comma = rt_chunk_copy(",", 1)) != NULL;
  for (int t = 0; t < RT_SOCKJS_TRANSPORTS && ok; t++) {
    const char *head, *tail;
    if (rt_sockjs_array_affixes(t, &head, &tail) < 0) continue;
    ok = (sj->affix[t][0] = rt_chunk_copy(head, strlen(head))) &&
         (sj->affix[t][1] = rt_chunk_copy(tail, strlen(tail)));
  }
  if (!ok) {
    rt_sockjs_server_free(sj);
    return NULL;
  }
  ev_prepare_init(&sj->flusher, on_flush);
  sj->flusher.data = sj;
  ev_set_priority(&sj->flusher, EV_MAXPRI);
  ev_prepare_start(srv->loop, &sj->flusher);
  ev_unref(srv->loop);  /* must not keep the loop running by itself */
  return sj;
}

static void endpoint_free(rt_sockjs_endpoint *ep) {
  while (ep->all) {
    rt_sockjs_session *s = ep->all;
    rt_sockjs_session_hold(s);
    if (s->conn) rt_conn_close(s->conn);
    destroy(s);
    rt_sockjs_session_release(s);
  }
  rt_map_free(&ep->sessions);
  rt_buf_free(&ep->iframe);
  free(ep->prefix);
  free(ep);
}

void rt_sockjs_server_free(rt_sockjs_server *sj) {
  if (!sj) return;
  /* Drop the flusher's holds first, so sessions can be freed below. */
  while (sj->flush_list) {
    rt_sockjs_session *s = sj->flush_list;
    sj->flush_list = s->flush_next;
    s->flush_queued = 0;
    rt_sockjs_session_release(s);
  }
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&sj->endpoints, &i, &k, &v);) endpoint_free(v);
  rt_map_free(&sj->endpoints);
  if (sj->flusher.data) {
    ev_ref(sj->srv->loop);
    ev_prepare_stop(sj->srv->loop, &sj->flusher);
  }
  rt_chunk_unref(sj->comma);
  for (int t = 0; t < RT_SOCKJS_TRANSPORTS; t++) {
    rt_chunk_unref(sj->affix[t][0]);
    rt_chunk_unref(sj->affix[t][1]);
  }
  rt_buf_free(&sj->scratch);
  free(sj);
}

rt_sockjs_endpoint *rt_sockjs_endpoint_find(rt_sockjs_server *sj, const char *prefix) {
  return rt_map_get(&sj->endpoints, prefix);
}

rt_sockjs_endpoint *rt_sockjs_endpoint_set(rt_sockjs_server *sj, const char *prefix,
                                           const rt_sockjs_config *cfg, char *err, size_t errlen) {
  size_t pl = strlen(prefix);
  if (pl < 2 || pl > 200 || prefix[0] != '/' || prefix[pl - 1] == '/' || strpbrk(prefix, "?#*: ")) {
    snprintf(err, errlen, "SockJS prefix '%s' must start with '/', not end with one, and be a plain path", prefix);
    return NULL;
  }
  if (strpbrk(cfg->sockjs_url, "\"'<> \t\r\n")) {
    snprintf(err, errlen, "sockjs_url may not hold quotes, '<', '>' or spaces");
    return NULL;
  }
  rt_sockjs_endpoint *ep = rt_map_get(&sj->endpoints, prefix);
  if (!ep) {
    if (sj->endpoints.count >= RT_SOCKJS_MAX_ENDPOINTS) {
      snprintf(err, errlen, "too many SockJS endpoints (at most %d)", RT_SOCKJS_MAX_ENDPOINTS);
      return NULL;
    }
    ep = calloc(1, sizeof *ep);
    if (!ep || !(ep->prefix = strdup(prefix)) || rt_map_put(&sj->endpoints, prefix, ep) < 0) {
      if (ep) free(ep->prefix);
      free(ep);
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    ep->sj = sj;
  }
  ep->cfg = *cfg;
  rt_buf_consume(&ep->iframe, ep->iframe.len);
  if (rt_sockjs_iframe_page(&ep->iframe, cfg->sockjs_url) < 0) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  rt_sockjs_etag(rt_buf_start(&ep->iframe), ep->iframe.len, ep->etag);
  return ep;
}
