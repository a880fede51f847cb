/* Which frame goes where through the broker relay: client frames to the session's broker
 * connection (with subscription ids and user destinations translated), broker frames
 * back to the client, and the server's own sends through the system connection. */
#include "stomp_relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "net/server_int.h"

/* ---- names ---------------------------------------------------------------------------- */

/* Appends s with every byte outside [A-Za-z0-9-] as _XX: a topic word that cannot hold a
 * separator, a wildcard or anything a broker treats specially. */
static int esc(char *out, size_t cap, size_t *n, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-';
    if (*n + 4 >= cap) return -1;
    if (plain) {
      out[(*n)++] = (char)*p;
    } else {
      out[(*n)++] = '_';
      out[(*n)++] = hex[*p >> 4];
      out[(*n)++] = hex[*p & 15];
    }
  }
  out[*n] = 0;
  return 0;
}

/* "/topic/rtu.<user>.<rest>": what every session of user gets at user_prefix + rest. */
static int user_topic(const char *user, const char *rest, char *out, size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "/topic/rtu.");
  if (esc(out, cap, &n, user) < 0 || n + 2 >= cap) return -1;
  out[n++] = '.';
  return esc(out, cap, &n, rest);
}

/* "/topic/rts.<node>.<session>.<rest>": what this one session gets there. */
static int session_topic(const rt_stomp_session *s, const char *rest, char *out, size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "/topic/rts.%s.", s->ss->relay->node);
  if (esc(out, cap, &n, s->id) < 0 || n + 2 >= cap) return -1;
  out[n++] = '.';
  return esc(out, cap, &n, rest);
}

/* rest of user_prefix + rest ("/queue/x"), or NULL. */
static const char *user_rest(const rt_stomp_config *cfg, const char *dest) {
  size_t n = strlen(cfg->user_prefix);
  if (!n || strncmp(dest, cfg->user_prefix, n) != 0 || dest[n] != '/' || !dest[n + 1]) return NULL;
  return dest + n;
}

/* "/user/<name>/rest" -> the user's topic. */
static int user_dest_topic(const rt_stomp_config *cfg, const char *dest, char *out, size_t cap) {
  const char *rest = user_rest(cfg, dest);
  if (!rest) return -1;
  const char *name = rest + 1, *slash = strchr(name, '/');
  if (!slash || slash == name || !slash[1] || (size_t)(slash - name) >= 512) return -1;
  char user[512];
  memcpy(user, name, (size_t)(slash - name));
  user[slash - name] = 0;
  return user_topic(user, slash, out, cap);
}

/* A /topic or /queue name as RabbitMQ takes it: the path separator is '.', not '/' (it
 * refuses "/topic/order/42"), and the multi-word wildcard is '#', not "**". So the seed's
 * "/topic/order/42" is "/topic/order.42" at the broker. Other destinations (/exchange/x/key,
 * /amq/queue/q as extra broker prefixes) have '/' in their syntax and go as they are. */
static const char *broker_name(const rt_stomp_config *cfg, const char *dest, char *out, size_t cap) {
  if (strncmp(dest, "/topic/", 7) != 0 && strncmp(dest, "/queue/", 7) != 0) return dest;
  const char *name = strchr(dest + 1, '/');
  if (!name || (!strchr(name + 1, '/') && !strstr(name, "**"))) return dest;
  size_t plen = (size_t)(name - dest), n = 0;
  if (strlen(dest) >= cap) return dest;
  memcpy(out, dest, plen + 1);
  n = plen + 1;
  for (const char *p = name + 1; *p; p++) {
    if (p[0] == '*' && p[1] == '*') {
      out[n++] = '#';
      p++;
    } else {
      out[n++] = *p == '/' ? '.' : *p;
    }
  }
  out[n] = 0;
  (void)cfg;
  return out;
}

/* ---- client frames to the broker --------------------------------------------------- */

/* f's headers with some values replaced (name -> value; value NULL drops the header). */
typedef struct override {
  const char *name, *value;
} override;

static int forward(rt_stomp_link *l, const rt_stomp_frame *f, const override *ov, size_t nov) {
  rt_stomp_header h[RELAY_MAX_HEADERS];
  size_t n = 0;
  int done[4] = {0};
  for (size_t i = 0; i < f->nheaders && n < RELAY_MAX_HEADERS; i++) {
    const rt_stomp_header *src = &f->headers[i];
    size_t k = 0;
    while (k < nov && strcmp(ov[k].name, src->name) != 0) k++;
    if (k == nov) {
      h[n++] = *src;
    } else if (!done[k]) {  /* the first occurrence wins; later ones go */
      done[k] = 1;
      if (ov[k].value) h[n++] = rt_stomp_hdr(ov[k].name, ov[k].value);
    }
  }
  for (size_t k = 0; k < nov; k++)
    if (!done[k] && ov[k].value && n < RELAY_MAX_HEADERS) h[n++] = rt_stomp_hdr(ov[k].name, ov[k].value);
  return rt_relay_link_send(l, f->command, h, n, f->body, f->body_len, NULL);
}

static relay_sub *find_sub(rt_stomp_link *l, const char *id) {
  for (relay_sub *sub = l->subs; sub; sub = sub->next)
    if (strcmp(sub->id, id) == 0) return sub;
  return NULL;
}

void rt_relay_subs_free(rt_stomp_link *l) {
  while (l->subs) {
    relay_sub *sub = l->subs;
    l->subs = sub->next;
    free(sub->id);
    free(sub->dest);
    free(sub);
  }
  l->nsubs = 0;
}

static void fail(rt_stomp_session *s, const rt_stomp_frame *f, const char *message, const char *detail) {
  rt_stomp_session_error(s, f, message, detail);
}

static void local_receipt(rt_stomp_session *s, const rt_stomp_frame *f) {
  const char *r = rt_stomp_frame_get(f, "receipt");
  if (!r) return;
  rt_stomp_header h = rt_stomp_hdr("receipt-id", r);
  rt_stomp_buf *b = &s->scratch;
  rt_stomp_buf_reset(b);
  if (rt_stomp_write_frame(b, RT_STOMP_CMD_RECEIPT, &h, 1, NULL, 0, NULL, 0) < 0) return;
  rt_chunk *c = rt_chunk_copy(b->data, b->len);
  if (!c) return;
  rt_stomp_session_send(s, &c, 1, rt_utf8_valid(b->data, b->len));
  rt_chunk_unref(c);
}

static void relay_send(rt_stomp_session *s, rt_stomp_link *l, const rt_stomp_frame *f) {
  rt_stomp_server *ss = s->ss;
  const char *dest = rt_stomp_frame_get(f, "destination");
  if (!dest || !*dest) return fail(s, f, "missing header", "SEND frames need a 'destination' header.");
  char topic[2048];
  switch (rt_stomp_dest_kind(&ss->cfg, dest)) {
    case RT_STOMP_DEST_APP:
      /* Handled here; what the handler sends goes to the broker through the system
       * connection. A transaction header does not hold it back: it is the broker's. */
      if (!ss->hooks.on_send) return fail(s, f, "no handler", "Nothing handles application destinations here.");
      ss->hooks.on_send(ss->hooks.ud, s, f, dest + strlen(ss->cfg.app_prefix));
      if (!s->dead && s->state == RT_STOMP_S_CONNECTED) local_receipt(s, f);
      return;
    case RT_STOMP_DEST_TOPIC:
    case RT_STOMP_DEST_QUEUE: {
      override ov = {"destination", broker_name(&ss->cfg, dest, topic, sizeof topic)};
      forward(l, f, &ov, 1);
      return;
    }
    case RT_STOMP_DEST_USER: {
      if (user_dest_topic(&ss->cfg, dest, topic, sizeof topic) < 0)
        return fail(s, f, "bad destination", "A user destination to SEND to is /user/<name>/<destination>.");
      override ov = {"destination", topic};
      forward(l, f, &ov, 1);
      return;
    }
    default:
      return fail(s, f, "unknown destination", "The destination is not under a prefix this server relays.");
  }
}

static void relay_subscribe(rt_stomp_session *s, rt_stomp_link *l, const rt_stomp_frame *f) {
  const rt_stomp_config *cfg = &s->ss->cfg;
  const char *dest = rt_stomp_frame_get(f, "destination");
  if (!dest || !*dest) return fail(s, f, "missing header", "SUBSCRIBE frames need a 'destination' header.");
  const char *id = rt_stomp_frame_get(f, "id");
  if (!id && s->version == 10) id = dest;
  if (!id) return fail(s, f, "missing header", "SUBSCRIBE frames need an 'id' header.");
  if (strlen(id) > cfg->max_destination || strlen(dest) > cfg->max_destination)
    return fail(s, f, "destination too long", "Destinations and subscription ids are limited in length.");
  if (find_sub(l, id)) return fail(s, f, "duplicate subscription id", "This id is already in use on this connection.");
  if (l->nsubs >= cfg->max_subscriptions) return fail(s, f, "too many subscriptions", "This connection holds as many subscriptions as it may.");
  int kind = rt_stomp_dest_kind(cfg, dest);
  if (kind != RT_STOMP_DEST_TOPIC && kind != RT_STOMP_DEST_QUEUE && kind != RT_STOMP_DEST_USER)
    return fail(s, f, "cannot subscribe here", "Subscribe to a destination under a broker prefix or the user prefix.");
  relay_sub *sub = calloc(1, sizeof *sub);
  if (!sub || !(sub->id = strdup(id)) || !(sub->dest = strdup(dest))) {
    if (sub) free(sub->id);
    free(sub);
    return fail(s, f, "out of memory", "The server is out of memory.");
  }
  sub->user = kind == RT_STOMP_DEST_USER;
  sub->next = l->subs;
  l->subs = sub;
  l->nsubs++;
  char bid[600], topic[2048];
  if (!sub->user) {
    snprintf(bid, sizeof bid, "c:%s", id);
    override ov[] = {{"id", bid}, {"destination", broker_name(cfg, dest, topic, sizeof topic)}};
    forward(l, f, ov, 2);
    return;
  }
  /* The user's topic (when there is a user) and the session's own. */
  const char *rest = user_rest(cfg, dest);
  const char *receipt = rt_stomp_frame_get(f, "receipt");
  if (s->user) {
    if (user_topic(s->user, rest, topic, sizeof topic) < 0) return fail(s, f, "destination too long", "The user destination is too long.");
    snprintf(bid, sizeof bid, "u:%s", id);
    override ov[] = {{"id", bid}, {"destination", topic}, {"receipt", NULL}};
    forward(l, f, ov, 3);
  }
  if (session_topic(s, rest, topic, sizeof topic) < 0) return fail(s, f, "destination too long", "The user destination is too long.");
  snprintf(bid, sizeof bid, "s:%s", id);
  override ov[] = {{"id", bid}, {"destination", topic}, {"receipt", receipt}};
  forward(l, f, ov, 3);
}

static void relay_unsubscribe(rt_stomp_session *s, rt_stomp_link *l, const rt_stomp_frame *f) {
  const char *id = rt_stomp_frame_get(f, "id");
  if (!id && s->version == 10) id = rt_stomp_frame_get(f, "destination");
  if (!id) return fail(s, f, "missing header", "UNSUBSCRIBE frames need an 'id' header.");
  relay_sub *sub = NULL, **pp;
  for (pp = &l->subs; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->id, id) == 0) {
      sub = *pp;
      *pp = sub->next;
      l->nsubs--;
      break;
    }
  char bid[600];
  if (sub && sub->user) {
    if (s->user) {
      snprintf(bid, sizeof bid, "u:%s", id);
      override ov[] = {{"id", bid}, {"receipt", NULL}};
      forward(l, f, ov, 2);
    }
    snprintf(bid, sizeof bid, "s:%s", id);
  } else {
    snprintf(bid, sizeof bid, "c:%s", id);  /* unknown: the broker answers as it does */
  }
  override ov[] = {{"id", bid}};
  forward(l, f, ov, 1);
  if (sub) {
    free(sub->id);
    free(sub->dest);
    free(sub);
  }
}

static void relay_ack(rt_stomp_session *s, rt_stomp_link *l, const rt_stomp_frame *f) {
  /* STOMP 1.2 names the message by its ack id alone; 1.0 and 1.1 by subscription too. */
  const char *subid = rt_stomp_frame_get(f, "subscription");
  if (!subid) {
    forward(l, f, NULL, 0);
    return;
  }
  relay_sub *sub = find_sub(l, subid);
  char bid[600];
  snprintf(bid, sizeof bid, "%s:%s", sub && sub->user ? (s->user ? "u" : "s") : "c", subid);
  override ov = {"subscription", bid};
  forward(l, f, &ov, 1);
}

void rt_stomp_relay_frame(rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_stomp_link *l = s->link;
  switch (f->command) {
    case RT_STOMP_CMD_SEND: relay_send(s, l, f); break;
    case RT_STOMP_CMD_SUBSCRIBE: relay_subscribe(s, l, f); break;
    case RT_STOMP_CMD_UNSUBSCRIBE: relay_unsubscribe(s, l, f); break;
    case RT_STOMP_CMD_ACK:
    case RT_STOMP_CMD_NACK: relay_ack(s, l, f); break;
    case RT_STOMP_CMD_DISCONNECT: {
      const char *receipt = rt_stomp_frame_get(f, "receipt");
      forward(l, f, NULL, 0);
      /* With a receipt, the client hears it once the broker has done everything before. */
      if (receipt && !l->disconnect_receipt && (l->disconnect_receipt = strdup(receipt))) break;
      rt_stomp_session_end(s, 0);
      break;
    }
    default: forward(l, f, NULL, 0); break;  /* BEGIN, COMMIT, ABORT */
  }
}

/* ---- broker frames to the client ----------------------------------------------------- */

static void to_client(rt_stomp_session *s, const rt_stomp_frame *f, const override *ov, size_t nov) {
  rt_stomp_header h[RELAY_MAX_HEADERS];
  size_t n = 0;
  for (size_t i = 0; i < f->nheaders && n < RELAY_MAX_HEADERS; i++) {
    size_t k = 0;
    while (k < nov && strcmp(ov[k].name, f->headers[i].name) != 0) k++;
    h[n++] = k < nov ? rt_stomp_hdr(ov[k].name, ov[k].value) : f->headers[i];
  }
  rt_stomp_buf *b = &s->scratch;
  rt_stomp_buf_reset(b);
  if (rt_stomp_write_frame(b, f->command, h, n, f->body, f->body_len, NULL, 0) < 0) return;
  rt_chunk *c = rt_chunk_copy(b->data, b->len);
  if (!c) return;
  rt_stomp_session_send(s, &c, 1, rt_utf8_valid(b->data, b->len));
  rt_chunk_unref(c);
}

static void message_to_client(rt_stomp_link *l, const rt_stomp_frame *f) {
  rt_stomp_session *s = l->s;
  const char *bid = rt_stomp_frame_get(f, "subscription");
  if (!bid || strlen(bid) < 2 || bid[1] != ':') return;  /* not one of ours */
  const char *id = bid + 2;
  relay_sub *sub = find_sub(l, id);
  if (bid[0] == 'c') {
    /* The name the client used (order/42, not order.42), unless it was a pattern. */
    override ov[] = {{"subscription", id}, {"destination", sub ? sub->dest : NULL}};
    to_client(s, f, ov, sub && !strchr(sub->dest, '*') ? 2 : 1);
  } else if (sub) {  /* a user destination: the client sees what it subscribed to */
    override ov[] = {{"subscription", id}, {"destination", sub->dest}};
    to_client(s, f, ov, 2);
  }
}

static void system_frame(rt_stomp_link *l, const rt_stomp_frame *f) {
  rt_stomp_relay *r = l->r;
  if (f->command == RT_STOMP_CMD_CONNECTED && l->state == LINK_CONNECTING) {
    rt_relay_link_up(l, f);
  } else if (f->command == RT_STOMP_CMD_ERROR) {
    const char *m = rt_stomp_frame_get(f, "message");
    rt_relay_count(r, "broker_errors", "system");
    char why[300];
    snprintf(why, sizeof why, "ERROR from the broker: %.200s", m ? m : "(no message)");
    rt_relay_link_lost(l, why);
  }
}

void rt_relay_broker_frame(rt_stomp_link *l, const rt_stomp_frame *f) {
  if (!l->s) {
    system_frame(l, f);
    return;
  }
  rt_stomp_session *s = l->s;
  rt_stomp_session_hold(s);
  switch (f->command) {
    case RT_STOMP_CMD_CONNECTED:
      if (l->state == LINK_CONNECTING) {
        rt_relay_link_up(l, f);
        rt_stomp_session_connected(s);
      }
      break;
    case RT_STOMP_CMD_MESSAGE: message_to_client(l, f); break;
    case RT_STOMP_CMD_RECEIPT: {
      to_client(s, f, NULL, 0);
      const char *id = rt_stomp_frame_get(f, "receipt-id");
      if (l->disconnect_receipt && id && strcmp(id, l->disconnect_receipt) == 0) rt_stomp_session_end(s, 0);
      break;
    }
    case RT_STOMP_CMD_ERROR: {
      /* The broker's own words reach this client alone, and end its session. */
      rt_stomp_relay *r = l->r;
      const char *m = rt_stomp_frame_get(f, "message");
      rt_relay_count(r, "broker_errors", "session");
      rt_info(&r->ss->srv->log, "%s: STOMP relay: ERROR from the broker: %s", s->conn->peer, m ? m : "");
      int connecting = l->state != LINK_UP;
      rt_relay_link_close(l);
      if (connecting) {
        /* The broker refused the login: the client learns it as an unavailable broker. */
        char detail[400];
        snprintf(detail, sizeof detail, "The message broker refused the connection: %.300s", m ? m : "");
        rt_stomp_session_error(s, NULL, "broker unavailable", detail);
      } else {
        to_client(s, f, NULL, 0);
        rt_stomp_session_end(s, 1);
      }
      break;
    }
    default: break;
  }
  rt_stomp_session_release(s);
}

/* ---- the server's own sends -------------------------------------------------------- */

static long system_send(rt_stomp_relay *r, const char *dest, rt_chunk *body, const char *ctype,
                        const rt_stomp_header *extra, size_t nextra, char *err, size_t errlen) {
  rt_stomp_link *l = r->sys;
  const rt_stomp_relay_config *c = &r->ss->cfg.relay;
  if (!rt_stomp_relay_up(r)) {
    rt_relay_count(r, "send_failures", NULL);
    snprintf(err, errlen, "broker unavailable: %s:%d: %s", c->host, c->port, r->why);
    return -1;
  }
  if (l->conn->out.bytes > r->ss->srv->cfg.max_output_bytes / 2) {
    rt_relay_count(r, "send_failures", NULL);
    snprintf(err, errlen, "broker busy: %zu bytes wait to be sent to it", l->conn->out.bytes);
    return -1;
  }
  rt_stomp_header h[RELAY_MAX_HEADERS];
  size_t n = 0;
  h[n++] = rt_stomp_hdr("destination", dest);
  if (ctype) h[n++] = rt_stomp_hdr("content-type", ctype);
  for (size_t i = 0; i < nextra && n < RELAY_MAX_HEADERS; i++) h[n++] = extra[i];
  if (rt_relay_link_send(l, RT_STOMP_CMD_SEND, h, n, NULL, 0, body) < 0) {
    snprintf(err, errlen, "broker unavailable: the connection is closing");
    return -1;
  }
  return 1;
}

long rt_stomp_relay_publish(rt_stomp_relay *r, const char *dest, rt_chunk *body,
                            const char *ctype, const rt_stomp_header *extra, size_t nextra,
                            char *err, size_t errlen) {
  const rt_stomp_config *cfg = &r->ss->cfg;
  char topic[2048];
  switch (rt_stomp_dest_kind(cfg, dest)) {
    case RT_STOMP_DEST_TOPIC:
    case RT_STOMP_DEST_QUEUE:
      return system_send(r, broker_name(cfg, dest, topic, sizeof topic), body, ctype, extra, nextra, err, errlen);
    case RT_STOMP_DEST_USER:
      if (user_dest_topic(cfg, dest, topic, sizeof topic) < 0) {
        snprintf(err, errlen, "a user destination is %s/<user>/<destination>", cfg->user_prefix);
        return -1;
      }
      return system_send(r, topic, body, ctype, extra, nextra, err, errlen);
    case RT_STOMP_DEST_APP:
      snprintf(err, errlen, "%s is an application destination: only clients SEND there", dest);
      return -1;
    default:
      snprintf(err, errlen, "%s is not under a known prefix", dest);
      return -1;
  }
}

long rt_stomp_relay_publish_user(rt_stomp_relay *r, const char *user, const char *rest,
                                 rt_chunk *body, const char *ctype,
                                 const rt_stomp_header *extra, size_t nextra, char *err,
                                 size_t errlen) {
  char topic[2048];
  if (rest[0] != '/' || user_topic(user, rest, topic, sizeof topic) < 0) {
    snprintf(err, errlen, "bad user destination");
    return -1;
  }
  return system_send(r, topic, body, ctype, extra, nextra, err, errlen);
}

long rt_stomp_relay_send_to_session(rt_stomp_session *s, const char *dest, rt_chunk *body,
                                    const char *ctype, const rt_stomp_header *extra,
                                    size_t nextra) {
  const char *rest = user_rest(&s->ss->cfg, dest);
  char topic[2048], err[300];
  if (!rest || session_topic(s, rest, topic, sizeof topic) < 0) return 0;
  long n = system_send(s->ss->relay, topic, body, ctype, extra, nextra, err, sizeof err);
  return n < 0 ? -1 : n;
}
