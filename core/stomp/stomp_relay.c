/* The broker relay's connections to the broker: dialing, the CONNECT handshake,
 * heart-beats, the system connection's reconnects, and what happens when one is lost. */
#include "stomp_relay_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/metrics.h"
#include "net/server_int.h"
#include "net/tls.h"
#include "net/tls_ctx.h"

static rt_server *srv_of(const rt_stomp_relay *r) { return r->ss->srv; }
static const rt_stomp_relay_config *cfg_of(const rt_stomp_relay *r) { return &r->ss->cfg.relay; }

void rt_relay_count(rt_stomp_relay *r, const char *name, const char *link) {
  char metric[96], labels[40];
  snprintf(metric, sizeof metric, "rtserver_stomp_relay_%s_total", name);
  snprintf(labels, sizeof labels, link ? "link=\"%s\"" : "%s", link ? link : "");
  rt_metrics_add(srv_of(r), metric, labels, 1);
}

static const char *link_kind(const rt_stomp_link *l) { return l->s ? "session" : "system"; }

int rt_stomp_relay_up(const rt_stomp_relay *r) { return r->sys && r->sys->state == LINK_UP; }

/* ---- writing to the broker ----------------------------------------------------------- */

int rt_relay_link_send(rt_stomp_link *l, rt_stomp_command cmd, const rt_stomp_header *h,
                       size_t nh, const void *body, size_t len, rt_chunk *body_chunk) {
  if (!l->conn || l->dead) return -1;
  if (body_chunk) {
    body = body_chunk->data;
    len = body_chunk->len;
  }
  rt_stomp_buf *b = &l->scratch;
  rt_stomp_buf_reset(b);
  if (rt_stomp_write_head(b, cmd, h, nh, len, NULL, 0) < 0) return -1;
  /* Small frames go whole; a large shared body is queued by reference. */
  if (!body_chunk || len < 4096) {
    if (len && rt_stomp_buf_append(b, body, len) < 0) return -1;
    if (rt_stomp_buf_append(b, "", 1) < 0) return -1;
    if (rt_conn_write(l->conn, b->data, b->len) < 0) return -1;
  } else {
    if (rt_conn_write(l->conn, b->data, b->len) < 0 || rt_conn_write_chunk(l->conn, body_chunk) < 0 ||
        rt_conn_write(l->conn, "", 1) < 0)
      return -1;
  }
  l->last_tx = ev_now(srv_of(l->r)->loop);
  /* A client sending faster than the broker reads: stop reading it until this drains. */
  if (l->s && !l->client_paused && l->conn &&
      l->conn->out.bytes > srv_of(l->r)->cfg.max_output_bytes / 4) {
    l->client_paused = 1;
    rt_conn_pause_read(l->s->conn, 1);
  }
  return 0;
}

static void send_connect(rt_stomp_link *l) {
  const rt_stomp_relay_config *c = cfg_of(l->r);
  char hb[40];
  snprintf(hb, sizeof hb, "%u,%u", c->hb_send_ms, c->hb_recv_ms);
  const char *version = l->version == 12 ? "1.2" : l->version == 11 ? "1.1" : "1.0";
  rt_stomp_header h[6];
  size_t n = 0;
  h[n++] = rt_stomp_hdr("accept-version", version);
  h[n++] = rt_stomp_hdr("host", c->vhost);
  h[n++] = rt_stomp_hdr("heart-beat", hb);
  if (c->login[0]) h[n++] = rt_stomp_hdr("login", c->login);
  if (c->passcode[0]) h[n++] = rt_stomp_hdr("passcode", c->passcode);
  rt_relay_link_send(l, RT_STOMP_CMD_CONNECT, h, n, NULL, 0, NULL);
}

/* ---- the connection's callbacks -------------------------------------------------------- */

static void link_free(rt_stomp_link *l) {
  rt_stomp_relay *r = l->r;
  ev_timer_stop(srv_of(r)->loop, &l->timer);  /* link_open may fail after starting it */
  if (l->prev) l->prev->next = l->next;
  else r->links = l->next;
  if (l->next) l->next->prev = l->prev;
  rt_relay_subs_free(l);
  rt_stomp_parser_free(l->parser);
  rt_stomp_buf_free(&l->scratch);
  free(l->disconnect_receipt);
  free(l);
}

static void link_release(rt_stomp_link *l) {
  if (--l->busy == 0 && l->dead) link_free(l);
}

static void on_read(rt_conn *c) {
  rt_stomp_link *l = c->pstate;
  size_t n = c->in.len;
  if (!l) {
    rt_buf_consume(&c->in, n);
    return;
  }
  l->busy++;
  l->last_rx = ev_now(c->srv->loop);
  const uint8_t *p = rt_buf_start(&c->in);
  size_t off = 0;
  while (off < n && !l->dead) {
    size_t used = 0;
    rt_stomp_frame f;
    int rc = rt_stomp_parser_feed(l->parser, p + off, n - off, &used, &f);
    off += used;
    if (rc == RT_STOMP_FRAME) {
      rt_relay_broker_frame(l, &f);
      continue;
    }
    if (rc < 0) {
      char why[300];
      snprintf(why, sizeof why, "bad frame from the broker: %s", rt_stomp_parser_error(l->parser));
      rt_relay_link_lost(l, why);
    }
    break;
  }
  if (!c->closing) rt_buf_consume(&c->in, n);
  link_release(l);
}

static void on_drained(rt_conn *c) {
  rt_stomp_link *l = c->pstate;
  if (l && l->client_paused && l->s) {
    l->client_paused = 0;
    rt_conn_pause_read(l->s->conn, 0);
  }
}

static void on_overflow(rt_conn *c) {
  rt_stomp_link *l = c->pstate;
  if (!l) {
    rt_conn_close(c);
    return;
  }
  rt_relay_count(l->r, "overflows", link_kind(l));
  rt_relay_link_lost(l, "the broker does not read fast enough");
}

static void on_shutdown(rt_conn *c) {
  rt_stomp_link *l = c->pstate;
  if (!l) {
    rt_conn_close_after_write(c);
    return;
  }
  l->r->stopping = 1;
  /* A session's link ends with its session, which is saying goodbye now too. */
  if (!l->s) rt_relay_link_close(l);
}

static void on_close(rt_conn *c) {
  rt_stomp_link *l = c->pstate;
  if (!l) return;
  l->conn = NULL;
  const char *tls_why = rt_tls_error(c);
  char why[300];
  if (tls_why) snprintf(why, sizeof why, "TLS with the broker failed: %s", tls_why);
  rt_relay_link_lost(l, tls_why ? why : "the broker closed the connection");
}

static const rt_proto link_proto = {
    .name = "stomp-relay",
    .on_read = on_read,
    .on_drained = on_drained,
    .on_overflow = on_overflow,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

/* ---- lifetime ----------------------------------------------------------------------- */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_stomp_link *l = w->data;
  double now = ev_now(loop);
  if (l->state != LINK_UP) {
    char why[120];
    snprintf(why, sizeof why, "no CONNECTED from the broker within %g s", cfg_of(l->r)->connect_timeout);
    rt_relay_link_lost(l, why);
  } else if (l->recv_iv > 0 && now - l->last_rx > l->recv_iv * 2) {
    char why[120];
    snprintf(why, sizeof why, "no heart-beat from the broker for %.0f ms", (now - l->last_rx) * 1000);
    rt_relay_link_lost(l, why);
  } else if (l->send_iv > 0 && now - l->last_tx >= l->send_iv / 2 && l->conn) {
    if (rt_conn_write(l->conn, "\n", 1) == 0) l->last_tx = now;
  }
}

static rt_tls_ctx *relay_tls(rt_stomp_relay *r);

static void on_dialed(void *ud, rt_conn *c, const char *err) {
  rt_stomp_link *l = ud;
  l->dial = NULL;
  if (!c) {
    rt_relay_link_lost(l, err);
    return;
  }
  l->conn = c;
  rt_conn_set_proto(c, &link_proto, RT_PROTO_STOMP, l);
  const rt_stomp_relay_config *cfg = cfg_of(l->r);
  if (cfg->tls) {
    /* CONNECT is queued now and leaves when the handshake is done. */
    rt_tls_ctx *ctx = relay_tls(l->r);
    const char *name = cfg->tls_server_name[0] ? cfg->tls_server_name : cfg->host;
    if (!ctx || rt_tls_connect(c, ctx, name, cfg->connect_timeout) < 0) {
      rt_relay_link_lost(l, "TLS with the broker could not start");
      return;
    }
  }
  l->state = LINK_CONNECTING;
  send_connect(l);
}

static rt_stomp_link *link_open(rt_stomp_relay *r, rt_stomp_session *s) {
  const rt_stomp_relay_config *c = cfg_of(r);
  rt_stomp_link *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->r = r;
  l->s = s;
  l->version = s ? s->version : 12;
  /* What the broker sends is bounded like what clients send, with room for its headers. */
  rt_stomp_limits lim = r->ss->cfg.limits;
  lim.max_headers = RELAY_MAX_HEADERS;
  lim.max_body += 65536;
  if (!(l->parser = rt_stomp_parser_new(&lim))) {
    free(l);
    return NULL;
  }
  l->next = r->links;
  if (r->links) r->links->prev = l;
  r->links = l;
  struct ev_loop *loop = srv_of(r)->loop;
  ev_timer_init(&l->timer, on_timer, c->connect_timeout, 0);
  l->timer.data = l;
  ev_timer_start(loop, &l->timer);
  l->state = LINK_DIALING;
  l->last_rx = l->last_tx = ev_now(loop);
  if (!(l->dial = rt_dial_start(srv_of(r), c->host, c->port, c->connect_timeout, on_dialed, l))) {
    l->dead = 1;
    link_free(l);
    return NULL;
  }
  return l;
}

void rt_relay_link_close(rt_stomp_link *l) {
  if (l->dead) return;
  rt_stomp_relay *r = l->r;
  l->dead = 1;
  l->state = LINK_CLOSED;
  ev_timer_stop(srv_of(r)->loop, &l->timer);
  if (l->dial) rt_dial_cancel(l->dial);
  l->dial = NULL;
  if (l->s) {
    if (l->client_paused && !l->s->dead) rt_conn_pause_read(l->s->conn, 0);
    l->s->link = NULL;
    l->s = NULL;
  }
  if (r->sys == l) r->sys = NULL;
  if (l->conn) {
    rt_conn *c = l->conn;
    l->conn = NULL;
    c->pstate = NULL;
    /* DISCONNECT tells the broker we are going on purpose; it needs no answer. */
    if (!c->closing) {
      rt_conn_write(c, "DISCONNECT\n\n", 13);
      rt_conn_close_after_write(c);
    }
  }
  if (!l->busy) link_free(l);
}

static void system_connect(rt_stomp_relay *r);

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) { system_connect(w->data); }

static void system_connect(rt_stomp_relay *r) {
  if (r->sys || r->stopping) return;
  if (!(r->sys = link_open(r, NULL))) {
    snprintf(r->why, sizeof r->why, "out of memory");
    ev_timer_set(&r->retry, r->backoff, 0);
    ev_timer_start(srv_of(r)->loop, &r->retry);
  }
}

void rt_relay_link_up(rt_stomp_link *l, const rt_stomp_frame *f) {
  rt_stomp_relay *r = l->r;
  const rt_stomp_relay_config *c = cfg_of(r);
  unsigned sx = 0, sy = 0;
  const char *hb = rt_stomp_frame_get(f, "heart-beat");
  if (hb && sscanf(hb, "%u,%u", &sx, &sy) != 2) sx = sy = 0;
  /* Each way: off if either side says 0, else the slower of the two. */
  unsigned send = c->hb_send_ms && sy ? (c->hb_send_ms > sy ? c->hb_send_ms : sy) : 0;
  unsigned recv = c->hb_recv_ms && sx ? (c->hb_recv_ms > sx ? c->hb_recv_ms : sx) : 0;
  l->send_iv = send / 1000.0;
  l->recv_iv = recv / 1000.0;
  l->state = LINK_UP;
  struct ev_loop *loop = srv_of(r)->loop;
  ev_timer_stop(loop, &l->timer);
  double period = 0;
  if (l->send_iv > 0) period = l->send_iv / 2;
  if (l->recv_iv > 0 && (!period || l->recv_iv / 2 < period)) period = l->recv_iv / 2;
  if (period > 0) {
    ev_timer_set(&l->timer, period, period);
    ev_timer_start(loop, &l->timer);
  }
  rt_relay_count(r, "connects", link_kind(l));
  if (!l->s) {
    rt_info(&srv_of(r)->log, "STOMP relay: connected to the broker at %s:%d", c->host, c->port);
    r->backoff = c->reconnect_min;
    r->why[0] = 0;
  }
}

void rt_relay_link_lost(rt_stomp_link *l, const char *why) {
  if (l->dead) return;
  rt_stomp_relay *r = l->r;
  rt_server *srv = srv_of(r);
  const rt_stomp_relay_config *c = cfg_of(r);
  int was_up = l->state == LINK_UP;
  rt_relay_count(r, was_up ? "lost" : "connect_failures", link_kind(l));
  if (!l->s) {
    snprintf(r->why, sizeof r->why, "%s", why);
    rt_relay_link_close(l);
    if (r->stopping) return;
    rt_warn(&srv->log, "STOMP relay: %s %s:%d: %s; retrying in %.1f s",
            was_up ? "lost the broker at" : "cannot reach the broker at", c->host, c->port, why,
            r->backoff);
    ev_timer_set(&r->retry, r->backoff, 0);
    ev_timer_start(srv->loop, &r->retry);
    r->backoff = r->backoff * 2 > c->reconnect_max ? c->reconnect_max : r->backoff * 2;
    return;
  }
  rt_stomp_session *s = l->s;
  rt_info(&srv->log, "%s: STOMP relay: broker connection %s: %s", s->conn->peer,
          was_up ? "lost" : "failed", why);
  rt_stomp_session_hold(s);
  rt_relay_link_close(l);
  char detail[400];
  snprintf(detail, sizeof detail, "The message broker %s: %s. Reconnect later.",
           was_up ? "connection was lost" : "cannot be reached", why);
  rt_stomp_session_error(s, NULL, was_up ? "broker connection lost" : "broker unavailable", detail);
  rt_stomp_session_release(s);
}

/* ---- the relay ---------------------------------------------------------------------- */

static void node_id(char *out, size_t n) {
  uint64_t v = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v)
    v = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 32;
  if (fd >= 0) close(fd);
  snprintf(out, n, "%016" PRIx64, v);
}

/* The client TLS context for the broker, made from the settings of the moment (a reload
 * may change them: the next connection uses the new ones). NULL when the files do not
 * load (logged). */
static rt_tls_ctx *relay_tls(rt_stomp_relay *r) {
  const rt_stomp_relay_config *c = cfg_of(r);
  char key[sizeof r->tls_key];
  snprintf(key, sizeof key, "%d\n%s\n%s\n%s", c->tls_no_verify, c->tls_ca, c->tls_cert, c->tls_key);
  if (r->tls && strcmp(key, r->tls_key) == 0) return r->tls;
  char err[300];
  rt_tls_ctx *ctx = rt_stomp_relay_tls_ctx(c, err, sizeof err);
  if (!ctx) {
    rt_error(&srv_of(r)->log, "STOMP relay: TLS to the broker: %s", err);
    return NULL;
  }
  rt_tls_ctx_unref(r->tls);
  r->tls = ctx;
  snprintf(r->tls_key, sizeof r->tls_key, "%s", key);
  return ctx;
}

rt_tls_ctx *rt_stomp_relay_tls_ctx(const rt_stomp_relay_config *c, char *err, size_t errlen) {
  rt_tls_ctx_opts o = {.ca = c->tls_ca[0] ? c->tls_ca : NULL,
                       .cert = c->tls_cert[0] ? c->tls_cert : NULL,
                       .key = c->tls_key[0] ? c->tls_key : NULL,
                       .no_verify = c->tls_no_verify, .no_alpn = 1};
  return rt_tls_client_ctx_new(&o, err, errlen);
}

rt_stomp_relay *rt_stomp_relay_new(rt_stomp_server *ss) {
  rt_stomp_relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->ss = ss;
  node_id(r->node, sizeof r->node);
  ev_timer_init(&r->retry, on_retry, 0, 0);
  r->retry.data = r;
  r->backoff = ss->cfg.relay.reconnect_min;
  snprintf(r->why, sizeof r->why, "not connected yet");
  system_connect(r);
  return r;
}

void rt_stomp_relay_free(rt_stomp_relay *r) {
  if (!r) return;
  r->stopping = 1;
  ev_timer_stop(srv_of(r)->loop, &r->retry);
  while (r->links) {
    rt_stomp_link *l = r->links;
    /* Closed but not yet freed: only a link's own on_read holds one, and the relay is
     * freed from the loop (a reload turning it off) or at teardown, never under it. */
    if (l->dead) {
      l->busy = 0;
      link_free(l);
      continue;
    }
    rt_stomp_session *s = l->s;
    if (!s || s->dead) {
      rt_relay_link_close(l);
      continue;
    }
    /* A reload turned the relay off: the session's subscriptions were the broker's, so
     * it ends, and its client reconnects to whatever serves the prefixes now. */
    rt_stomp_session_hold(s);
    rt_relay_link_close(l);
    rt_stomp_session_error(s, NULL, "broker relay stopped",
                           "The server no longer relays to a message broker; reconnect.");
    rt_stomp_session_release(s);
  }
  rt_tls_ctx_unref(r->tls);
  free(r);
}

int rt_stomp_relay_session_open(rt_stomp_session *s) {
  rt_stomp_relay *r = s->ss->relay;
  const rt_stomp_relay_config *c = cfg_of(r);
  if (!rt_stomp_relay_up(r)) {
    char detail[700];
    snprintf(detail, sizeof detail, "The message broker at %s:%d cannot be reached right now "
             "(%.150s). Reconnect later.", c->host, c->port, r->why);
    rt_relay_count(r, "unavailable", NULL);
    rt_stomp_session_error(s, NULL, "broker unavailable", detail);
    return -1;
  }
  rt_stomp_link *l = link_open(r, s);
  if (!l) {
    rt_stomp_session_error(s, NULL, "out of memory", "The server is out of memory.");
    return -1;
  }
  s->link = l;
  return 0;
}

void rt_stomp_relay_session_end(rt_stomp_session *s) {
  if (s->link) rt_relay_link_close(s->link);
}
