/* STOMP over plain TCP: its own listening port, the bytes straight into the session. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "net/listen.h"
#include "net/server_int.h"
#include "net/tls.h"
#include "stomp.h"

static const rt_proto stomp_tcp_proto;

static int tcp_send(rt_conn *c, rt_chunk *const *chunks, int n, int text) {
  for (int i = 0; i < n; i++)
    if (rt_conn_write_chunk(c, chunks[i]) < 0) return -1;
  c->srv->metrics.msgs_out++;
  return 0;
}

static void tcp_close(rt_conn *c, int error) { rt_conn_close_after_write(c); }

static rt_chunk *tcp_wire(rt_server *srv, rt_chunk *const *chunks, int n, int text) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += chunks[i]->len;
  rt_chunk *w = rt_chunk_new(total);
  if (!w) return NULL;
  total = 0;
  for (int i = 0; i < n; i++) {
    memcpy(w->data + total, chunks[i]->data, chunks[i]->len);
    total += chunks[i]->len;
  }
  return w;
}

static int tcp_send_wire(rt_conn *c, rt_chunk *wire) {
  /* Closing once its last frame (an ERROR, a RECEIPT for DISCONNECT) has left: no more. */
  if (c->close_after_write) return -1;
  c->srv->metrics.msgs_out++;
  return rt_conn_write_chunk(c, wire);
}

static const rt_stomp_transport tcp_transport = {.name = "tcp", .send = tcp_send, .close = tcp_close,
                                                 .wire = tcp_wire, .send_wire = tcp_send_wire};

static void on_read(rt_conn *c) {
  rt_stomp_session *s = c->pstate;
  size_t n = c->in.len;
  /* The session copies what it keeps; the buffer is consumed after, whatever happened. */
  rt_stomp_session_feed(s, rt_buf_start(&c->in), n);
  rt_buf_consume(&c->in, n);
}

static void on_overflow(rt_conn *c) {
  rt_stomp_session *s = c->pstate;
  static const char msg[] =
      "ERROR\nmessage:slow consumer\ncontent-type:text/plain;charset=utf-8\ncontent-length:63\n\n"
      "The client did not read its messages fast enough; closing now.\n";
  /* Drop what it has not started to receive, tell it why, and let it go. */
  rt_outq_drop_unstarted(&c->out);
  rt_chunk *f = rt_chunk_copy(msg, sizeof msg);  /* sizeof counts the frame's NUL */
  if (f) {
    rt_outq_push(&c->out, f);
    rt_chunk_unref(f);
  }
  s->state = RT_STOMP_S_CLOSING;
  rt_conn_close_after_write(c);
}

static void on_script_error(rt_conn *c) {
  rt_stomp_session_error(c->pstate, NULL, "internal error",
                         "A handler for this session failed; see the server log.");
}

static void on_shutdown(rt_conn *c) { rt_stomp_session_shutdown(c->pstate); }

static void on_close(rt_conn *c) {
  rt_broker_drop_conn(c->srv->broker, c);
  rt_stomp_session_closed(c->pstate);
}

static const rt_proto stomp_tcp_proto = {
    .name = "stomp",
    .on_read = on_read,
    .on_overflow = on_overflow,
    .on_script_error = on_script_error,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

rt_stomp_session *rt_stomp_tcp_attach(rt_stomp_server *ss, rt_conn *c) {
  rt_stomp_session *s = rt_stomp_session_new(ss, c, &tcp_transport);
  if (!s) {
    rt_conn_close(c);
    return NULL;
  }
  rt_conn_set_proto(c, &stomp_tcp_proto, RT_PROTO_STOMP, s);
  return s;
}

static void on_accept(rt_conn *c, void *data) {
  rt_stomp_server *ss = data;
  rt_server *srv = c->srv;
  if (ss->tcp_tls && srv->tls && rt_tls_accept(c, srv->tls, srv->cfg.tls_handshake_timeout) < 0) {
    rt_conn_close(c);
    return;
  }
  rt_stomp_tcp_attach(ss, c);
}

static void add_listeners(rt_stomp_server *ss, rt_listener *l) {
  rt_listener *last = l;
  while (last->next) last = last->next;
  last->next = ss->tcp;
  ss->tcp = l;
}

static int listen_host(rt_stomp_server *ss, const char *host, int port, char *err, size_t errlen) {
  rt_listener *l = rt_listen(ss->srv, host, port, on_accept, ss, err, errlen);
  if (!l) return -1;
  add_listeners(ss, l);
  rt_info(&ss->srv->log, "STOMP over TCP%s listening on %s%s%s:%d", ss->tcp_tls ? " (TLS)" : "",
          strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", l->port);
  return l->port;
}

/* The numeric address a main listener is bound to. */
static int listener_host(const rt_listener *l, char *out, size_t outlen) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0) return -1;
  const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                              : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
  return inet_ntop(ss.ss_family, addr, out, (socklen_t)outlen) ? 0 : -1;
}

static int listen_now(rt_stomp_server *ss, const char *host, int port, char *err, size_t errlen) {
  if (host) return listen_host(ss, host, port, err, errlen);
  if (!ss->srv->listeners) return listen_host(ss, "127.0.0.1", port, err, errlen);
  /* The same addresses as the main server; with port 0, the first picks for all. */
  int got = -1;
  for (rt_listener *l = ss->srv->listeners; l; l = l->next) {
    char h[INET6_ADDRSTRLEN];
    if (listener_host(l, h, sizeof h) < 0) continue;
    int p = listen_host(ss, h, got > 0 ? got : port, err, errlen);
    if (p < 0) return -1;
    got = p;
  }
  return got;
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_stomp_server *ss = w->data;
  char err[256];
  int p = listen_now(ss, NULL, ss->tcp_want, err, sizeof err);
  if (p < 0) rt_error(&ss->srv->log, "STOMP over TCP: %s", err);
  else ss->tcp_port = p;
}

int rt_stomp_tcp_listen(rt_stomp_server *ss, const char *host, int port, char *err, size_t errlen) {
  rt_stomp_tcp_close(ss);
  ss->tcp_want = port;
  snprintf(ss->tcp_host, sizeof ss->tcp_host, "%s", host ? host : "");
  if (!host && !ss->srv->listeners) {
    /* The app loads before the server listens: wait for the first loop turn to learn
     * the main addresses. The port is known after that (rt_stomp_server.tcp_port). */
    ev_timer_init(&ss->tcp_defer, on_defer, 0, 0);
    ss->tcp_defer.data = ss;
    ev_timer_start(ss->srv->loop, &ss->tcp_defer);
    return 0;
  }
  int p = listen_now(ss, host, port, err, errlen);
  if (p < 0) {
    rt_stomp_tcp_close(ss);
    return -1;
  }
  ss->tcp_port = p;
  return p;
}

void rt_stomp_tcp_close(rt_stomp_server *ss) {
  if (ss->tcp_defer.data) ev_timer_stop(ss->srv->loop, &ss->tcp_defer);
  while (ss->tcp) {
    rt_listener *n = ss->tcp->next;
    rt_listener_close(ss->tcp);
    ss->tcp = n;
  }
  ss->tcp_port = 0;
  ss->tcp_want = -1;
}
