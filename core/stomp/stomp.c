/* STOMP sessions: the frame rules of STOMP 1.0-1.2 on one connection, whatever carries it. */
#include "stomp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/history.h"
#include "net/server_int.h"
#include "net/stream.h"
#include "stomp_broker.h"
#include "stomp_relay.h"
#include "base/utf8.h"

#define MAX_EXTRA 64
#define MAX_HEARTBEAT_MS 86400000u  /* a day: anything longer is as good as off */

typedef struct rt_stomp_txop {
  struct rt_stomp_txop *next;
  rt_stomp_frame f;           /* a deep copy; headers and body follow in one allocation */
} rt_stomp_txop;

struct rt_stomp_tx {
  char *name;
  rt_stomp_txop *ops, *last;
  int nops;
  size_t bytes;
  rt_stomp_tx *next;
};

static void conn_key(uint64_t id, char out[24]) { snprintf(out, 24, "%" PRIu64, id); }

rt_stomp_session *rt_stomp_server_session(rt_stomp_server *ss, uint64_t conn_id) {
  char key[24];
  conn_key(conn_id, key);
  rt_stomp_session *s = rt_map_get(&ss->sessions, key);
  return s && !s->dead ? s : NULL;
}

/* ---- sending frames ---------------------------------------------------------------- */

int rt_stomp_session_send(rt_stomp_session *s, rt_chunk *const *chunks, int n, int text) {
  if (s->dead || s->state == RT_STOMP_S_CLOSING) return -1;
  if (s->tp->send(s->conn, chunks, n, text) < 0) {
    /* The connection is on its way out (slow consumer, closing): stop sending to it. */
    s->state = RT_STOMP_S_CLOSING;
    return -1;
  }
  s->last_tx = ev_now(s->ss->srv->loop);
  return 0;
}

int rt_stomp_session_send_frame(rt_stomp_session *s, rt_stomp_command cmd,
                                const rt_stomp_header *h, size_t nh, const void *body, size_t len) {
  rt_stomp_buf *b = &s->scratch;
  rt_stomp_buf_reset(b);
  if (rt_stomp_write_frame(b, cmd, h, nh, body, len, NULL, 0) < 0) return -1;
  rt_chunk *c = rt_chunk_copy(b->data, b->len);
  if (!c) return -1;
  int rc = rt_stomp_session_send(s, &c, 1, rt_utf8_valid(b->data, b->len));
  rt_chunk_unref(c);
  return rc;
}

static void session_close(rt_stomp_session *s, int error) {
  s->state = RT_STOMP_S_CLOSING;
  ev_timer_stop(s->ss->srv->loop, &s->timer);
  s->tp->close(s->conn, error);
}

static void error_frame(rt_stomp_session *s, const rt_stomp_frame *cause, const char *message,
                        const char *detail, const rt_stomp_header *extra) {
  if (s->dead || s->state == RT_STOMP_S_CLOSING) return;
  rt_stomp_header h[4];
  size_t n = 0;
  h[n++] = rt_stomp_hdr("message", message);
  h[n++] = rt_stomp_hdr("content-type", "text/plain;charset=utf-8");
  const char *receipt = cause ? rt_stomp_frame_get(cause, "receipt") : NULL;
  if (receipt) h[n++] = rt_stomp_hdr("receipt-id", receipt);
  if (extra) h[n++] = *extra;
  char body[1024];
  int len = snprintf(body, sizeof body, "%s\n", detail ? detail : message);
  if (len >= (int)sizeof body) len = (int)sizeof body - 1;
  rt_info(&s->ss->srv->log, "%s: STOMP ERROR: %s", s->conn->peer, message);
  rt_stomp_session_send_frame(s, RT_STOMP_CMD_ERROR, h, n, body, (size_t)len);
  session_close(s, 1);
}

void rt_stomp_session_error(rt_stomp_session *s, const rt_stomp_frame *cause,
                            const char *message, const char *detail) {
  error_frame(s, cause, message, detail, NULL);
}

/* ERROR with a printf detail; returns -1 so handlers can `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static int fail(rt_stomp_session *s,
                                                      const rt_stomp_frame *f,
                                                      const char *message, const char *fmt, ...) {
  char detail[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  error_frame(s, f, message, detail, NULL);
  return -1;
}

void rt_stomp_session_shutdown(rt_stomp_session *s) {
  error_frame(s, NULL, "server shutting down", "The server is stopping; reconnect later.", NULL);
}

static void send_receipt(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *r = rt_stomp_frame_get(f, "receipt");
  if (!r || s->state != RT_STOMP_S_CONNECTED) return;
  rt_stomp_header h = rt_stomp_hdr("receipt-id", r);
  rt_stomp_session_send_frame(s, RT_STOMP_CMD_RECEIPT, &h, 1, NULL, 0);
}

/* ---- lifetime ---------------------------------------------------------------------- */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

rt_stomp_session *rt_stomp_session_new(rt_stomp_server *ss, rt_conn *c,
                                       const rt_stomp_transport *tp) {
  rt_stomp_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->ss = ss;
  s->conn = c;
  s->conn_id = c->id;
  s->tp = tp;
  s->parser = rt_stomp_parser_new(&ss->cfg.limits);
  snprintf(s->id, sizeof s->id, "rt-%" PRIx64, c->id);
  char key[24];
  conn_key(c->id, key);
  if (!s->parser || rt_map_put(&ss->sessions, key, s) < 0) {
    rt_stomp_parser_free(s->parser);
    free(s);
    return NULL;
  }
  struct ev_loop *loop = ss->srv->loop;
  s->last_rx = s->last_tx = ev_now(loop);
  ev_timer_init(&s->timer, on_timer, ss->cfg.connect_timeout, 0);
  s->timer.data = s;
  ev_timer_start(loop, &s->timer);
  return s;
}

static void tx_free(rt_stomp_tx *tx) {
  while (tx->ops) {
    rt_stomp_txop *op = tx->ops;
    tx->ops = op->next;
    free(op);
  }
  free(tx->name);
  free(tx);
}

static void session_destroy(rt_stomp_session *s) {
  rt_stomp_server *ss = s->ss;
  if (s->link) rt_stomp_relay_session_end(s);
  rt_stomp_session_drop_subs(s);
  while (s->txs) {
    rt_stomp_tx *tx = s->txs;
    s->txs = tx->next;
    tx_free(tx);
  }
  char key[24];
  conn_key(s->conn_id, key);
  rt_map_remove(&ss->sessions, key);
  ev_timer_stop(ss->srv->loop, &s->timer);
  if (s->accepted && ss->hooks.on_closed) ss->hooks.on_closed(ss->hooks.ud, s->conn_id);
  rt_stomp_parser_free(s->parser);
  rt_buf_free(&s->held);
  rt_stomp_buf_free(&s->scratch);
  free(s->user);
  free(s);
}

void rt_stomp_session_hold(rt_stomp_session *s) { s->busy++; }

int rt_stomp_session_release(rt_stomp_session *s) {
  if (--s->busy == 0 && s->dead) {
    session_destroy(s);
    return -1;
  }
  return 0;
}

void rt_stomp_session_closed(rt_stomp_session *s) {
  if (s->dead) return;
  s->dead = 1;
  s->state = RT_STOMP_S_CLOSING;
  ev_timer_stop(s->ss->srv->loop, &s->timer);
  /* Its topic subscriptions leave the broker now (idempotent: WebSocket did it already). */
  rt_broker_drop_conn(s->ss->srv->broker, s->conn);
  for (rt_stomp_sub *sub = s->subs; sub; sub = sub->next) sub->bsub = NULL;
  if (!s->busy) session_destroy(s);
}

double rt_stomp_session_last_tx(const rt_stomp_session *s) {
  double t = s->last_tx;
  for (const rt_stomp_sub *sub = s->subs; sub; sub = sub->next)
    if (sub->last_tx > t) t = sub->last_tx;
  return t;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_stomp_session *s = w->data;
  double now = ev_now(loop);
  rt_stomp_session_hold(s);
  if (s->state == RT_STOMP_S_CONNECTING) {
    fail(s, NULL, "no CONNECT frame in time", "A client must send CONNECT within %g s.",
         s->ss->cfg.connect_timeout);
  } else if (s->state == RT_STOMP_S_AUTH) {
    fail(s, NULL, "authentication timed out", "The login was not checked within %g s.",
         s->ss->cfg.connect_timeout);
  } else if (s->state == RT_STOMP_S_CONNECTED) {
    /* Overdue, unless its beat is in the socket already: a busy loop runs this timer
     * before it reads (the next turn reads it, and this timer comes again). */
    if (s->recv_iv > 0 && now - s->last_rx > s->recv_iv * 1.5 && !rt_conn_input_waiting(s->conn)) {
      fail(s, NULL, "heart-beat timeout",
           "Nothing arrived for %.0f ms; the negotiated heart-beat is %.0f ms.",
           (now - s->last_rx) * 1000, s->recv_iv * 1000);
    } else if (s->send_iv > 0 && now - rt_stomp_session_last_tx(s) >= s->send_iv / 2) {
      rt_stomp_session_send(s, &s->ss->eol, 1, 1);
    }
  }
  rt_stomp_session_release(s);
}

/* ---- CONNECT ----------------------------------------------------------------------- */

/* Highest of 1.0, 1.1, 1.2 in a comma-separated accept-version; 10 without the header;
 * 0 if nothing matches. */
static int pick_version(const char *av) {
  if (!av) return 10;
  int best = 0;
  for (const char *p = av; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    size_t n = (size_t)(t - p);
    int v = 0;
    if (n == 3 && strncmp(p, "1.0", 3) == 0) v = 10;
    else if (n == 3 && strncmp(p, "1.1", 3) == 0) v = 11;
    else if (n == 3 && strncmp(p, "1.2", 3) == 0) v = 12;
    if (v > best) best = v;
    p = e;
  }
  return best;
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

static int parse_heartbeat(const char *hb, unsigned *cx, unsigned *cy) {
  *cx = *cy = 0;
  if (!hb) return 0;
  char *end;
  errno = 0;
  unsigned long long a = strtoull(hb, &end, 10);
  if (errno || end == hb || *end != ',' || hb[0] == '-') return -1;
  const char *p = end + 1;
  unsigned long long b = strtoull(p, &end, 10);
  if (errno || end == p || *end || p[0] == '-') return -1;
  *cx = a > MAX_HEARTBEAT_MS ? MAX_HEARTBEAT_MS : (unsigned)a;
  *cy = b > MAX_HEARTBEAT_MS ? MAX_HEARTBEAT_MS : (unsigned)b;
  return 0;
}

static int on_connect(rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_stomp_server *ss = s->ss;
  const char *av = rt_stomp_frame_get(f, "accept-version");
  int v = pick_version(av);
  if (!v) {
    rt_stomp_header h = rt_stomp_hdr("version", "1.0,1.1,1.2");
    char detail[600];
    snprintf(detail, sizeof detail, "This server speaks STOMP 1.0, 1.1 and 1.2; the client "
             "accepts only %.500s.", av);
    error_frame(s, f, "no common protocol version", detail, &h);
    return -1;
  }
  s->version = v;
  unsigned cx, cy;
  if (parse_heartbeat(rt_stomp_frame_get(f, "heart-beat"), &cx, &cy) < 0)
    return fail(s, f, "bad heart-beat header",
                "heart-beat must be two numbers of milliseconds, like 10000,10000; got '%.200s'.",
                rt_stomp_frame_get(f, "heart-beat"));
  /* Each way: off if either side says 0, else the slower of the two. */
  unsigned send = ss->cfg.hb_send_ms && cy ? (ss->cfg.hb_send_ms > cy ? ss->cfg.hb_send_ms : cy) : 0;
  unsigned recv = ss->cfg.hb_recv_ms && cx ? (ss->cfg.hb_recv_ms > cx ? ss->cfg.hb_recv_ms : cx) : 0;
  s->send_iv = send / 1000.0;
  s->recv_iv = recv / 1000.0;
  s->state = RT_STOMP_S_AUTH;
  if (ss->hooks.on_connect) ss->hooks.on_connect(ss->hooks.ud, s, f);
  else rt_stomp_session_accept(s, NULL);
  return 0;
}

static void feed_bytes(rt_stomp_session *s, const uint8_t *p, size_t n);

int rt_stomp_session_accept(rt_stomp_session *s, const char *user) {
  if (s->dead || s->state != RT_STOMP_S_AUTH || s->link) return -1;
  free(s->user);
  s->user = user ? strdup(user) : NULL;
  if (s->conn) rt_conn_set_user(s->conn, s->user);  /* who this is, for presence */
  if (s->ss->relay) {
    /* CONNECTED waits for the broker's (rt_stomp_session_connected); frames keep being
     * held until then. */
    if (rt_stomp_relay_session_open(s) < 0) return -1;
    s->accepted = 1;
    return 0;
  }
  return rt_stomp_session_connected(s);
}

int rt_stomp_session_connected(rt_stomp_session *s) {
  if (s->dead || s->state != RT_STOMP_S_AUTH) return -1;
  char hb[32], server[32];
  snprintf(hb, sizeof hb, "%.0f,%.0f", s->send_iv * 1000, s->recv_iv * 1000);
  snprintf(server, sizeof server, "rtserver/%s", RT_VERSION);
  const char *version = s->version == 12 ? "1.2" : s->version == 11 ? "1.1" : "1.0";
  rt_stomp_header h[5] = {rt_stomp_hdr("version", version), rt_stomp_hdr("session", s->id),
                          rt_stomp_hdr("server", server), rt_stomp_hdr("heart-beat", hb)};
  size_t nh = 4;
  if (s->user && !strpbrk(s->user, "\r\n")) h[nh++] = rt_stomp_hdr("user-name", s->user);
  s->state = RT_STOMP_S_CONNECTED;
  s->accepted = 1;
  if (rt_stomp_session_send_frame(s, RT_STOMP_CMD_CONNECTED, h, nh, NULL, 0) < 0) return -1;
  struct ev_loop *loop = s->ss->srv->loop;
  ev_timer_stop(loop, &s->timer);
  double period = 0;
  if (s->send_iv > 0) period = s->send_iv / 2;
  if (s->recv_iv > 0 && (!period || s->recv_iv / 2 < period)) period = s->recv_iv / 2;
  if (period > 0) {
    s->last_rx = ev_now(loop);
    ev_timer_set(&s->timer, period, period);
    ev_timer_start(loop, &s->timer);
  }
  /* Frames that came in behind the CONNECT while the login was checked. */
  if (s->held.len) {
    rt_buf held = s->held;
    memset(&s->held, 0, sizeof s->held);
    rt_stomp_session_hold(s);
    feed_bytes(s, rt_buf_start(&held), held.len);
    rt_buf_free(&held);
    if (rt_stomp_session_release(s) < 0) return -1;
  }
  return 0;
}

void rt_stomp_session_end(rt_stomp_session *s, int error) {
  if (s->dead || s->state == RT_STOMP_S_CLOSING) return;
  session_close(s, error);
}

void rt_stomp_session_refuse(rt_stomp_session *s, const char *why) {
  if (s->dead || s->state != RT_STOMP_S_AUTH) return;
  fail(s, NULL, "access refused", "The server refused the login: %.500s",
       why && *why ? why : "access denied");
}

/* ---- frames ------------------------------------------------------------------------ */

static const char *need(rt_stomp_session *s, const rt_stomp_frame *f, const char *name) {
  const char *v = rt_stomp_frame_get(f, name);
  if (!v)
    fail(s, f, "missing header", "%s frames need a '%s' header.",
         rt_stomp_command_name(f->command), name);
  return v;
}

static int check_dest(rt_stomp_session *s, const rt_stomp_frame *f, const char *d) {
  const rt_stomp_config *cfg = &s->ss->cfg;
  size_t n = strlen(d);
  if (n == 0 || d[0] != '/')
    return fail(s, f, "bad destination", "A destination starts with '/', like /topic/news; got '%.200s'.", d);
  if (n > cfg->max_destination)
    return fail(s, f, "destination too long", "A destination may have up to %zu bytes.", cfg->max_destination);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
      return fail(s, f, "bad destination", "Destinations may not contain control characters.");
  if (!rt_utf8_valid((const uint8_t *)d, n))
    return fail(s, f, "bad destination", "Destinations must be UTF-8.");
  return 0;
}

static int unknown_prefix(rt_stomp_session *s, const rt_stomp_frame *f, const char *d) {
  const rt_stomp_config *cfg = &s->ss->cfg;
  char list[600] = "";
  size_t n = 0;
  for (int i = 0; i < cfg->ntopics && n < 500; i++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s/... (topic)", n ? ", " : "", cfg->topics[i]);
  for (int i = 0; i < cfg->nqueues && n < 500; i++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s/... (queue)", n ? ", " : "", cfg->queues[i]);
  if (cfg->app_prefix[0] && n < 500)
    snprintf(list + n, sizeof list - n, "%s%s/... (application)", n ? ", " : "", cfg->app_prefix);
  return fail(s, f, "unknown destination", "%.200s is not under a known prefix; use %s.", d, list);
}

static int is_forwarded(const rt_stomp_header *h) {
  static const char *const skip[] = {"destination", "content-length", "content-type", "receipt",
                                     "transaction", "message-id", "subscription", "ack",
                                     "redelivered", "id"};
  for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (strcmp(h->name, skip[i]) == 0) return 0;
  return 1;
}

static int send_now(rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_stomp_server *ss = s->ss;
  const char *dest = rt_stomp_frame_get(f, "destination");
  int kind = rt_stomp_dest_kind(&ss->cfg, dest);
  if (kind == RT_STOMP_DEST_NONE) return unknown_prefix(s, f, dest);
  if (kind == RT_STOMP_DEST_APP) {
    if (!ss->hooks.on_send)
      return fail(s, f, "no handler", "Nothing handles application destinations here.");
    ss->hooks.on_send(ss->hooks.ud, s, f, dest + strlen(ss->cfg.app_prefix));
    return 0;
  }
  rt_stomp_header extra[MAX_EXTRA];
  size_t nextra = 0;
  for (size_t i = 0; i < f->nheaders && nextra < MAX_EXTRA; i++)
    if (is_forwarded(&f->headers[i])) extra[nextra++] = f->headers[i];
  rt_chunk *body = rt_chunk_copy(f->body, f->body_len);
  if (!body) return fail(s, f, "out of memory", "The server is out of memory.");
  char err[300];
  long n = rt_stomp_publish(ss, dest, body, rt_stomp_frame_get(f, "content-type"), extra, nextra,
                            err, sizeof err);
  rt_chunk_unref(body);
  /* The engine could not pass it on (counted and logged there): a sender that asked for a
   * receipt hears it; fire-and-forget senders keep their connection. */
  if (n == RT_BROKER_ENGINE_FAILED && !rt_stomp_frame_get(f, "receipt")) return 0;
  if (n < 0) return fail(s, f, "cannot send", "%s", err);
  return 0;
}

static rt_stomp_sub *find_sub(rt_stomp_session *s, const char *id) {
  for (rt_stomp_sub *sub = s->subs; sub; sub = sub->next)
    if (strcmp(sub->id, id) == 0) return sub;
  return NULL;
}

/* x-since:<epoch>:<offset>: the epoch is hex digits, the offset a number. */
static int parse_since(const char *v, char *epoch, uint64_t *offset) {
  const char *colon = strchr(v, ':');
  size_t elen = colon ? (size_t)(colon - v) : 0;
  if (!colon || elen == 0 || elen > RT_HISTORY_EPOCH_LEN || strspn(v, "0123456789abcdef") != elen)
    return -1;
  uint64_t n;
  if (parse_u64(colon + 1, &n) < 0) return -1;
  if (epoch) {
    memcpy(epoch, v, elen);
    epoch[elen] = 0;
  }
  if (offset) *offset = n;
  return 0;
}

/* SUBSCRIBE with x-since: what the client missed comes first, then live messages; the
 * RECEIPT (when asked for) says whether that was everything (x-recovered). */
static int recover(rt_stomp_session *s, const rt_stomp_frame *f, rt_stomp_sub *sub,
                   const char *since) {
  char epoch[RT_HISTORY_EPOCH_LEN + 1];
  uint64_t offset;
  parse_since(since, epoch, &offset);
  const char *r = rt_stomp_frame_get(f, "receipt");
  rt_stomp_session_hold(s);
  int recovered = rt_stomp_sub_recover(sub, epoch, offset, r);
  if (rt_stomp_session_release(s) < 0) return 1;
  if (recovered == RT_STREAM_PENDING) return 1;  /* its RECEIPT goes out with the answer */
  if (r && s->state == RT_STOMP_S_CONNECTED) {
    rt_stomp_header h[2] = {rt_stomp_hdr("receipt-id", r),
                            rt_stomp_hdr("x-recovered", recovered ? "true" : "false")};
    rt_stomp_session_send_frame(s, RT_STOMP_CMD_RECEIPT, h, 2, NULL, 0);
  }
  if (s->state == RT_STOMP_S_CONNECTED) rt_stomp_sub_take_waiting(sub);  /* a queue's, after it */
  return 1;  /* the receipt is sent */
}

/* Returns 1 (its RECEIPT is sent already), or -1 after an ERROR. */
static int do_subscribe(rt_stomp_session *s, const rt_stomp_frame *f) {
  const rt_stomp_config *cfg = &s->ss->cfg;
  const char *dest = need(s, f, "destination");
  if (!dest || check_dest(s, f, dest) < 0) return -1;
  const char *id = rt_stomp_frame_get(f, "id");
  if (!id && s->version == 10) id = dest;  /* 1.0 made the id optional */
  if (!id && !need(s, f, "id")) return -1;
  if (!rt_utf8_valid((const uint8_t *)id, strlen(id)) || strlen(id) > cfg->max_destination)
    return fail(s, f, "bad subscription id", "A subscription id is UTF-8 of up to %zu bytes.", cfg->max_destination);
  if (find_sub(s, id))
    return fail(s, f, "duplicate subscription id", "Subscription id '%.200s' is already in use on this connection.", id);
  if (s->nsubs >= cfg->max_subscriptions)
    return fail(s, f, "too many subscriptions", "A connection may hold up to %d subscriptions.", cfg->max_subscriptions);
  const char *ack = rt_stomp_frame_get(f, "ack");
  int mode = RT_STOMP_ACK_AUTO;
  if (!ack || strcmp(ack, "auto") == 0) mode = RT_STOMP_ACK_AUTO;
  else if (strcmp(ack, "client") == 0) mode = RT_STOMP_ACK_CLIENT;
  else if (strcmp(ack, "client-individual") == 0 && s->version >= 11) mode = RT_STOMP_ACK_INDIVIDUAL;
  else return fail(s, f, "bad ack mode", "ack must be auto, client or client-individual; got '%.100s'.", ack);
  int kind = rt_stomp_dest_kind(cfg, dest);
  if (kind == RT_STOMP_DEST_NONE) return unknown_prefix(s, f, dest);
  if (kind == RT_STOMP_DEST_APP)
    return fail(s, f, "cannot subscribe here", "%.200s is an application destination: SEND to it, "
                "and subscribe to where its handler publishes.", dest);
  if (strchr(dest, '*') && kind != RT_STOMP_DEST_TOPIC)
    return fail(s, f, "bad destination", "Patterns (*, **) work on topics only.");
  const char *since = rt_stomp_frame_get(f, "x-since");
  if (since && parse_since(since, NULL, NULL) < 0)
    return fail(s, f, "bad x-since", "x-since is <epoch>:<offset>, as a MESSAGE's x-epoch and x-offset say.");
  int prefetch = cfg->max_unacked;
  const char *pc = rt_stomp_frame_get(f, "prefetch-count");
  uint64_t v;
  if (pc) {
    if (parse_u64(pc, &v) < 0 || v == 0)
      return fail(s, f, "bad prefetch-count", "prefetch-count must be a positive number.");
    if (v < (uint64_t)prefetch) prefetch = (int)v;
  }
  rt_stomp_sub *sub = calloc(1, sizeof *sub);
  if (!sub || !(sub->id = strdup(id)) || !(sub->dest = strdup(dest))) {
    if (sub) free(sub->id);
    free(sub);
    return fail(s, f, "out of memory", "The server is out of memory.");
  }
  sub->s = s;
  sub->ack = mode;
  sub->wire_tp = mode == RT_STOMP_ACK_AUTO && s->tp->wire && s->tp->send_wire ? s->tp : NULL;
  sub->kind = kind;
  sub->max_unacked = prefetch;
  /* In the list before it starts: a queue may deliver at once. */
  sub->next = s->subs;
  s->subs = sub;
  s->nsubs++;
  char err[200];
  if (rt_stomp_sub_start(sub, err, sizeof err) < 0) {
    s->subs = sub->next;
    s->nsubs--;
    rt_stomp_sub_end(sub);
    return fail(s, f, "cannot subscribe", "%s", err);
  }
  if (since) return recover(s, f, sub, since);
  /* RabbitMQ's order: the RECEIPT, then what the new subscription delivers (a queue's
   * waiting messages), so a client that waits for the receipt before it counts sees all.
   * (A recovery, above, replays first: its RECEIPT says whether that was everything.) */
  send_receipt(s, f);
  if (!s->dead && s->state == RT_STOMP_S_CONNECTED) rt_stomp_sub_take_waiting(sub);
  return 1;
}

static int do_unsubscribe(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *id = rt_stomp_frame_get(f, "id");
  if (!id && s->version == 10) id = rt_stomp_frame_get(f, "destination");
  if (!id && !need(s, f, "id")) return -1;
  for (rt_stomp_sub **pp = &s->subs; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->id, id) == 0) {
      rt_stomp_sub *sub = *pp;
      *pp = sub->next;
      s->nsubs--;
      rt_stomp_sub_end(sub);
      return 0;
    }
  return fail(s, f, "unknown subscription", "There is no subscription with id '%.200s'.", id);
}

/* The delivery an ACK/NACK names, by the rules of the session's version. */
static rt_stomp_pending *find_pending(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *cmd = rt_stomp_command_name(f->command);
  const char *subid = rt_stomp_frame_get(f, "subscription");
  rt_stomp_sub *sub = NULL;
  if (subid && !(sub = find_sub(s, subid))) {
    fail(s, f, "unknown subscription", "%s names subscription '%.200s', which does not exist.", cmd, subid);
    return NULL;
  }
  uint64_t id;
  rt_stomp_pending *p = NULL;
  if (s->version >= 12) {
    const char *v = need(s, f, "id");
    if (!v) return NULL;
    if (parse_u64(v, &id) == 0) p = rt_stomp_pending_by_ack(s, id);
    if (p && sub && p->sub != sub) p = NULL;
    if (!p)
      fail(s, f, "unknown ack id", "No message with ack id '%.100s' awaits acknowledgement "
           "(acknowledged already, or its subscription is ack:auto or gone).", v);
    return p;
  }
  if (s->version == 11 && !sub && !need(s, f, "subscription")) return NULL;
  const char *v = need(s, f, "message-id");
  if (!v) return NULL;
  if (parse_u64(v, &id) == 0) p = rt_stomp_pending_by_msg(s, id, sub);
  if (!p)
    fail(s, f, "unknown message-id", "No message with message-id '%.100s' awaits acknowledgement.", v);
  return p;
}

static rt_stomp_tx *find_tx(rt_stomp_session *s, const char *name) {
  for (rt_stomp_tx *tx = s->txs; tx; tx = tx->next)
    if (strcmp(tx->name, name) == 0) return tx;
  return NULL;
}

static rt_stomp_txop *frame_copy(const rt_stomp_frame *f) {
  size_t size = sizeof(rt_stomp_txop) + f->nheaders * sizeof(rt_stomp_header) + f->body_len + 1;
  for (size_t i = 0; i < f->nheaders; i++) size += f->headers[i].name_len + f->headers[i].value_len + 2;
  rt_stomp_txop *op = malloc(size);
  if (!op) return NULL;
  rt_stomp_header *h = (rt_stomp_header *)(op + 1);
  char *p = (char *)(h + f->nheaders);
  op->next = NULL;
  op->f = *f;
  op->f.headers = h;
  for (size_t i = 0; i < f->nheaders; i++) {
    h[i] = f->headers[i];
    memcpy(p, f->headers[i].name, f->headers[i].name_len + 1);
    h[i].name = p;
    p += f->headers[i].name_len + 1;
    memcpy(p, f->headers[i].value, f->headers[i].value_len + 1);
    h[i].value = p;
    p += f->headers[i].value_len + 1;
  }
  memcpy(p, f->body, f->body_len + 1);
  op->f.body = (const uint8_t *)p;
  return op;
}

/* A SEND, ACK or NACK inside a transaction waits for COMMIT. */
static int tx_add(rt_stomp_session *s, const rt_stomp_frame *f, const char *name) {
  const rt_stomp_config *cfg = &s->ss->cfg;
  rt_stomp_tx *tx = find_tx(s, name);
  if (!tx) return fail(s, f, "unknown transaction", "Transaction '%.200s' was not begun (BEGIN).", name);
  if (tx->nops >= cfg->max_tx_frames || tx->bytes + f->body_len > cfg->max_tx_bytes)
    return fail(s, f, "transaction too large", "A transaction may hold up to %d frames and %zu body bytes.",
                cfg->max_tx_frames, cfg->max_tx_bytes);
  rt_stomp_txop *op = frame_copy(f);
  if (!op) return fail(s, f, "out of memory", "The server is out of memory.");
  if (tx->last) tx->last->next = op;
  else tx->ops = op;
  tx->last = op;
  tx->nops++;
  tx->bytes += f->body_len;
  return 0;
}

static int do_send(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *dest = need(s, f, "destination");
  if (!dest || check_dest(s, f, dest) < 0) return -1;
  const char *tx = rt_stomp_frame_get(f, "transaction");
  return tx ? tx_add(s, f, tx) : send_now(s, f);
}

static int do_ack(rt_stomp_session *s, const rt_stomp_frame *f) {
  int nack = f->command == RT_STOMP_CMD_NACK;
  if (nack && s->version < 11) return fail(s, f, "NACK needs STOMP 1.1", "This session speaks STOMP 1.0, which has no NACK.");
  rt_stomp_pending *p = find_pending(s, f);
  if (!p) return -1;
  const char *tx = rt_stomp_frame_get(f, "transaction");
  if (tx) return tx_add(s, f, tx);
  rt_stomp_settle(s, p, nack);
  return 0;
}

static int do_tx(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *name = need(s, f, "transaction");
  if (!name) return -1;
  rt_stomp_tx *tx = find_tx(s, name);
  if (f->command == RT_STOMP_CMD_BEGIN) {
    if (tx) return fail(s, f, "transaction exists", "Transaction '%.200s' has begun already.", name);
    if (s->ntx >= s->ss->cfg.max_transactions)
      return fail(s, f, "too many transactions", "Up to %d transactions may be open at once.", s->ss->cfg.max_transactions);
    if (!(tx = calloc(1, sizeof *tx)) || !(tx->name = strdup(name))) {
      free(tx);
      return fail(s, f, "out of memory", "The server is out of memory.");
    }
    tx->next = s->txs;
    s->txs = tx;
    s->ntx++;
    return 0;
  }
  if (!tx) return fail(s, f, "unknown transaction", "Transaction '%.200s' was not begun (BEGIN).", name);
  for (rt_stomp_tx **pp = &s->txs; *pp; pp = &(*pp)->next)
    if (*pp == tx) {
      *pp = tx->next;
      break;
    }
  s->ntx--;
  if (f->command == RT_STOMP_CMD_COMMIT) {
    /* In order, as if each had come now; an ACK whose message is gone meanwhile is moot. */
    for (rt_stomp_txop *op = tx->ops; op && s->state == RT_STOMP_S_CONNECTED && !s->dead; op = op->next) {
      if (op->f.command == RT_STOMP_CMD_SEND) {
        send_now(s, &op->f);
        continue;
      }
      const char *v = rt_stomp_frame_get(&op->f, s->version >= 12 ? "id" : "message-id");
      uint64_t id;
      rt_stomp_pending *p = NULL;
      if (v && parse_u64(v, &id) == 0)
        p = s->version >= 12 ? rt_stomp_pending_by_ack(s, id) : rt_stomp_pending_by_msg(s, id, NULL);
      if (p) rt_stomp_settle(s, p, op->f.command == RT_STOMP_CMD_NACK);
    }
  }
  tx_free(tx);
  return 0;
}

static void handle_frame(rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_stomp_command cmd = f->command;
  const char *name = rt_stomp_command_name(cmd);
  if (s->state == RT_STOMP_S_CONNECTING) {
    if (cmd == RT_STOMP_CMD_CONNECT || cmd == RT_STOMP_CMD_STOMP) on_connect(s, f);
    else fail(s, f, "not connected", "The first frame must be CONNECT (or STOMP); got %s.", name);
    return;
  }
  if (f->body_len && cmd != RT_STOMP_CMD_SEND) {
    fail(s, f, "unexpected body", "%s frames must not have a body.", name);
    return;
  }
  if (s->link && cmd >= RT_STOMP_CMD_SEND && cmd <= RT_STOMP_CMD_DISCONNECT) {
    rt_stomp_relay_frame(s, f);  /* the broker's semantics, not ours */
    return;
  }
  int rc;
  switch (cmd) {
    case RT_STOMP_CMD_SEND: rc = do_send(s, f); break;
    case RT_STOMP_CMD_SUBSCRIBE: rc = do_subscribe(s, f); break;
    case RT_STOMP_CMD_UNSUBSCRIBE: rc = do_unsubscribe(s, f); break;
    case RT_STOMP_CMD_ACK:
    case RT_STOMP_CMD_NACK: rc = do_ack(s, f); break;
    case RT_STOMP_CMD_BEGIN:
    case RT_STOMP_CMD_COMMIT:
    case RT_STOMP_CMD_ABORT: rc = do_tx(s, f); break;
    case RT_STOMP_CMD_DISCONNECT:
      send_receipt(s, f);
      session_close(s, 0);
      return;
    case RT_STOMP_CMD_CONNECT:
    case RT_STOMP_CMD_STOMP:
      fail(s, f, "already connected", "This connection sent %s twice.", name);
      return;
    default:
      fail(s, f, "not a client frame", "%s is a frame only servers send.", name);
      return;
  }
  if (rc == 0) send_receipt(s, f);  /* 1: the command sent it itself */
}

static void parse_error(rt_stomp_session *s, int rc) {
  const rt_stomp_limits *lim = &s->ss->cfg.limits;
  const char *why = rt_stomp_parser_error(s->parser);
  if (rc == RT_STOMP_ELIMIT)
    fail(s, NULL, "frame too large", "%s. Limits: body %zu bytes, %zu headers, header lines of "
         "%zu bytes.", why, lim->max_body, lim->max_headers, lim->max_header_line);
  else if (rc == RT_STOMP_ENOMEM)
    fail(s, NULL, "out of memory", "The server is out of memory.");
  else
    fail(s, NULL, "malformed frame", "The frame could not be parsed: %s.", why);
}

/* Input held during authentication may not exceed one frame or so. */
static size_t held_limit(const rt_stomp_session *s) {
  const rt_stomp_limits *l = &s->ss->cfg.limits;
  return l->max_body + 65536;
}

static void feed_bytes(rt_stomp_session *s, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n && !s->dead && s->state != RT_STOMP_S_CLOSING) {
    if (s->state == RT_STOMP_S_AUTH) {
      if (s->held.len + (n - off) > held_limit(s)) {
        fail(s, NULL, "too much data", "More than %zu bytes arrived before CONNECTED.", held_limit(s));
        return;
      }
      if (rt_buf_append(&s->held, p + off, n - off) < 0) fail(s, NULL, "out of memory", "The server is out of memory.");
      return;
    }
    size_t used = 0;
    rt_stomp_frame f;
    int rc = rt_stomp_parser_feed(s->parser, p + off, n - off, &used, &f);
    off += used;
    if (rc == RT_STOMP_FRAME) {
      handle_frame(s, &f);
      continue;
    }
    if (rc < 0) parse_error(s, rc);
    return;
  }
}

void rt_stomp_session_feed(rt_stomp_session *s, const uint8_t *data, size_t len) {
  if (s->dead || s->state == RT_STOMP_S_CLOSING) return;
  s->last_rx = ev_now(s->ss->srv->loop);
  rt_stomp_session_hold(s);
  feed_bytes(s, data, len);
  rt_stomp_session_release(s);
}
