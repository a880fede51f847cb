#include "stomp_broker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/server_int.h"
#include "net/stream.h"
#include "stomp_relay.h"
#include "base/utf8.h"

struct rt_stomp_qmsg {
  rt_stomp_qmsg *next;
  rt_stomp_queue *queue;
  rt_chunk *common, *body;
  uint64_t id;
  uint64_t nacked_by;   /* conn id of the last consumer that refused it: others go first */
  int text, redelivered;
};

struct rt_stomp_queue {
  char *name;
  rt_stomp_qmsg *head, *tail;
  size_t len;
  rt_stomp_sub **consumers;
  int nconsumers, cap, rr;
  size_t inflight;            /* delivered, waiting for ACK */
  int pumping, repump, pins;  /* pins: callers holding the pointer across a pump */
};

#define MAX_EXTRA 64

/* ---- the shared parts of a MESSAGE ------------------------------------------------- */

static const char *default_ctype(const rt_chunk *body, int binary) {
  if (!body->len) return NULL;
  if (binary || !rt_utf8_valid(body->data, body->len)) return "application/octet-stream";
  return "text/plain;charset=utf-8";
}

/* destination, content-type, content-length, the sender's headers, the blank line: the
 * serializer writes a whole head, we keep what follows "MESSAGE\n". */
static rt_chunk *build_common(rt_stomp_server *ss, const char *dest, const char *ctype,
                              const rt_stomp_header *extra, size_t nextra, size_t body_len,
                              uint64_t offset, const char *epoch) {
  rt_stomp_header h[MAX_EXTRA + 4];
  size_t n = 0;
  char off[24];
  h[n++] = rt_stomp_hdr("destination", dest);
  if (ctype) h[n++] = rt_stomp_hdr("content-type", ctype);
  if (offset) {
    /* The message's place in its topic's history: what a client resubscribes from. */
    snprintf(off, sizeof off, "%" PRIu64, offset);
    h[n++] = rt_stomp_hdr("x-offset", off);
    h[n++] = rt_stomp_hdr("x-epoch", epoch);
  }
  for (size_t i = 0; i < nextra && i < MAX_EXTRA; i++) h[n++] = extra[i];
  rt_stomp_buf *b = &ss->scratch;
  rt_stomp_buf_reset(b);
  if (rt_stomp_write_head(b, RT_STOMP_CMD_MESSAGE, h, n, body_len, NULL, 0) < 0) return NULL;
  const size_t skip = sizeof "MESSAGE\n" - 1;
  if (body_len == 0) {
    /* The serializer leaves content-length out of an empty frame; receivers like it. */
    b->len--;
    if (rt_stomp_buf_append(b, "content-length:0\n\n", 18) < 0) return NULL;
  }
  return rt_chunk_copy(b->data + skip, b->len - skip);
}

static int chunk_text(const rt_chunk *c) { return rt_utf8_valid(c->data, c->len); }

/* Builds what every STOMP receiver of m shares, once per publish. */
static int prepare_msg(rt_stomp_server *ss, rt_msg *m) {
  if (m->stomp_common) return 0;
  const char *dest = m->stomp_destination ? m->stomp_destination : m->destination;
  const char *ctype = m->content_type ? m->content_type : default_ctype(m->body, m->binary);
  m->stomp_common = build_common(ss, dest, ctype, m->headers, m->nheaders, m->body->len,
                                 m->offset, m->epoch);
  if (!m->stomp_common) return -1;
  m->stomp_id = ++ss->next_msg_id;
  m->stomp_text = !m->binary && chunk_text(m->stomp_common) && chunk_text(m->body);
  return 0;
}

/* ---- one delivery ------------------------------------------------------------------ */

static void pending_link(rt_stomp_session *s, rt_stomp_pending *p) {
  p->prev = s->ptail;
  p->next = NULL;
  if (s->ptail) s->ptail->next = p;
  else s->phead = p;
  s->ptail = p;
  s->npending++;
  p->sub->unacked++;
}

static void pending_unlink(rt_stomp_session *s, rt_stomp_pending *p) {
  if (p->prev) p->prev->next = p->next;
  else s->phead = p->next;
  if (p->next) p->next->prev = p->prev;
  else s->ptail = p->prev;
  s->npending--;
  p->sub->unacked--;
}

/* qm: the queue message to redeliver if this delivery is NACKed (NULL: nothing to keep). */
static int deliver(rt_stomp_sub *sub, rt_chunk *common, rt_chunk *body, int text,
                   uint64_t msg_id, rt_stomp_qmsg *qm, int redelivered) {
  rt_stomp_session *s = sub->s;
  rt_stomp_server *ss = s->ss;
  if (s->state != RT_STOMP_S_CONNECTED) return -1;
  int track = sub->ack != RT_STOMP_ACK_AUTO;
  rt_stomp_pending *p = NULL;
  if (track) {
    if (s->npending >= ss->cfg.max_unacked) {
      char why[160];
      snprintf(why, sizeof why, "more than %d messages were delivered and not acknowledged; "
               "ACK them (or subscribe with ack:auto)", ss->cfg.max_unacked);
      rt_stomp_session_error(s, NULL, "too many unacknowledged messages", why);
      return -1;
    }
    if (!(p = calloc(1, sizeof *p))) return -1;
    p->sub = sub;
    p->ack_id = ++s->next_ack;
    p->msg_id = msg_id;
    p->qmsg = qm;
  }
  char ids[96];
  int k = snprintf(ids, sizeof ids, "message-id:%" PRIu64 "\n", msg_id);
  if (track && s->version >= 12) k += snprintf(ids + k, sizeof ids - k, "ack:%" PRIu64 "\n", p->ack_id);
  if (redelivered) k += snprintf(ids + k, sizeof ids - k, "redelivered:true\n");
  rt_chunk *head = rt_chunk_new(sub->prefix->len + (size_t)k);
  if (!head) {
    free(p);
    return -1;
  }
  memcpy(head->data, sub->prefix->data, sub->prefix->len);
  memcpy(head->data + sub->prefix->len, ids, (size_t)k);
  rt_chunk *parts[4];
  int n = 0;
  parts[n++] = head;
  parts[n++] = common;
  if (body->len) parts[n++] = body;
  parts[n++] = ss->nul;
  rt_stomp_session_hold(s);
  int rc = rt_stomp_session_send(s, parts, n, text && sub->prefix_text);
  rt_chunk_unref(head);
  if (rc < 0 || s->dead) {
    free(p);
    rc = -1;
  } else if (p) {
    pending_link(s, p);
  }
  rt_stomp_session_release(s);
  return rc;
}

/* Whole frames of one publish, by transport, subscription prefix and frame type. Most
 * clients name their first subscription "sub-0", so a handful of entries serve thousands
 * of subscribers; past the cap, deliveries fall back to per-subscriber heads. */
#define WIRE_CACHE 8
typedef struct wire_cache {
  double made_at;  /* the loop's time: the deliveries of one publish all happen then */
  int n;
  struct {
    const rt_stomp_transport *tp;
    rt_chunk *prefix;
    int text;
    rt_chunk *wire;
  } e[WIRE_CACHE];
} wire_cache;

static void wires_free(void *p) {
  wire_cache *wc = p;
  for (int i = 0; i < wc->n; i++) {
    rt_chunk_unref(wc->e[i].wire);
    rt_chunk_unref(wc->e[i].prefix);
  }
  free(wc);
}

/* The first delivery of a message to a subscription id builds its wire frame. Out of
 * line: the per-subscriber path stays small. */
static __attribute__((noinline)) rt_chunk *wire_build(rt_msg *m, rt_stomp_sub *sub) {
  const rt_stomp_transport *tp = sub->wire_tp;
  /* The only time a fan-out delivery reads the session. */
  rt_stomp_server *ss = sub->s->ss;
  if (prepare_msg(ss, m) < 0) return NULL;
  int text = m->stomp_text && sub->prefix_text;
  wire_cache *wc = m->stomp_wires;
  if (!wc) {
    if (!(wc = calloc(1, sizeof *wc))) return NULL;
    wc->made_at = ev_now(ss->srv->loop);
    m->stomp_wires = wc;
    m->stomp_wires_free = wires_free;
  }
  if (wc->n == WIRE_CACHE) return NULL;
  char ids[40];
  int k = snprintf(ids, sizeof ids, "message-id:%" PRIu64 "\n", m->stomp_id);
  rt_chunk *head = rt_chunk_new(sub->prefix->len + (size_t)k);
  if (!head) return NULL;
  memcpy(head->data, sub->prefix->data, sub->prefix->len);
  memcpy(head->data + sub->prefix->len, ids, (size_t)k);
  rt_chunk *parts[4] = {head, m->stomp_common, m->body, ss->nul};
  rt_chunk *wire = tp->wire(ss->srv, parts, 4, text);
  rt_chunk_unref(head);
  if (!wire) return NULL;
  /* The subscription's prefix chunk outlives the entry only while the subscriber lives:
   * keep our own reference for the comparison. */
  wc->e[wc->n].tp = tp;
  wc->e[wc->n].prefix = rt_chunk_ref(sub->prefix);
  wc->e[wc->n].text = text;
  wc->e[wc->n++].wire = wire;
  return wire;
}

/* The wire frame for sub's subscription id (NULL: take the general path). Once the
 * message's shared header block exists, stomp_text is known, so a lookup that finds
 * nothing means this prefix has no frame yet. */
static inline rt_chunk *wire_for(rt_msg *m, rt_stomp_sub *sub) {
  const wire_cache *wc = m->stomp_wires;
  if (wc) {
    int text = m->stomp_text && sub->prefix_text;
    for (int i = 0; i < wc->n; i++)
      if (wc->e[i].prefix == sub->prefix && wc->e[i].tp == sub->wire_tp && wc->e[i].text == text)
        return wc->e[i].wire;
  }
  return wire_build(m, sub);
}

static void prefetch_sub(const rt_sub *bs) {
  const rt_stomp_sub *sub = bs->data;
  if (!sub->wire_tp) __builtin_prefetch(sub->s);
  __builtin_prefetch(bs->conn->pstate);
}

static void deliver_topic(rt_sub *bs, rt_msg *m) {
  rt_stomp_sub *sub = bs->data;
  /* ack:auto needs no per-delivery header: the frame is the same for every subscriber
   * with this subscription id, so it is built once and shared like a WebSocket frame.
   * This path reads the subscription and the connection, never the session: a session
   * that is going has its transport refuse the frame (the connection is closing, or
   * closes once its last frame has left). Nothing touches sub after the send: a full
   * queue may end the session there and then. */
  const rt_stomp_transport *tp = sub->wire_tp;
  if (tp) {
    rt_chunk *wire = wire_for(m, sub);
    if (wire) {
      sub->last_tx = ((const wire_cache *)m->stomp_wires)->made_at;
      tp->send_wire(bs->conn, wire);
      return;
    }
  }
  if (prepare_msg(sub->s->ss, m) < 0) return;
  deliver(sub, m->stomp_common, m->body, m->stomp_text, m->stomp_id, NULL, 0);
}

/* ---- queues ------------------------------------------------------------------------ */

static void qmsg_free(rt_stomp_qmsg *qm) {
  rt_chunk_unref(qm->common);
  rt_chunk_unref(qm->body);
  free(qm);
}

static rt_stomp_queue *queue_get(rt_stomp_server *ss, const char *name, int create) {
  rt_stomp_queue *q = rt_map_get(&ss->queues, name);
  if (q || !create) return q;
  q = calloc(1, sizeof *q);
  if (!q || !(q->name = strdup(name)) || rt_map_put(&ss->queues, name, q) < 0) {
    if (q) free(q->name);
    free(q);
    return NULL;
  }
  return q;
}

static void queue_maybe_drop(rt_stomp_server *ss, rt_stomp_queue *q) {
  if (q->head || q->nconsumers || q->inflight || q->pumping || q->pins) return;
  rt_map_remove(&ss->queues, q->name);
  free(q->consumers);
  free(q->name);
  free(q);
}

static void queue_push(rt_stomp_server *ss, rt_stomp_queue *q, rt_stomp_qmsg *qm, int front) {
  qm->queue = q;
  if (front) {
    qm->next = q->head;
    q->head = qm;
    if (!q->tail) q->tail = qm;
  } else {
    qm->next = NULL;
    if (q->tail) q->tail->next = qm;
    else q->head = qm;
    q->tail = qm;
  }
  q->len++;
  ss->queued_bytes += qm->body->len;
}

static rt_stomp_qmsg *queue_pop(rt_stomp_server *ss, rt_stomp_queue *q) {
  rt_stomp_qmsg *qm = q->head;
  q->head = qm->next;
  if (!q->head) q->tail = NULL;
  q->len--;
  ss->queued_bytes -= qm->body->len;
  return qm;
}

static int can_take(const rt_stomp_sub *sub) {
  const rt_stomp_session *s = sub->s;
  if (s->state != RT_STOMP_S_CONNECTED || s->conn->closing || s->conn->close_after_write)
    return 0;
  if (sub->ack == RT_STOMP_ACK_AUTO) return 1;
  return sub->unacked < sub->max_unacked && s->npending < s->ss->cfg.max_unacked;
}

/* The next consumer after the last one served that can take a message; one that refused
 * this message before only when nobody else can. */
static rt_stomp_sub *queue_pick(rt_stomp_queue *q, uint64_t avoid) {
  for (int pass = avoid ? 0 : 1; pass < 2; pass++)
    for (int i = 0; i < q->nconsumers; i++) {
      int at = (q->rr + i) % q->nconsumers;
      rt_stomp_sub *sub = q->consumers[at];
      if (can_take(sub) && (pass || sub->s->conn_id != avoid)) {
        q->rr = (at + 1) % q->nconsumers;
        return sub;
      }
    }
  return NULL;
}

/* Hands waiting messages to consumers. A delivery can close connections and so remove
 * consumers or requeue messages under us: a nested call only asks for another round. */
static void queue_pump(rt_stomp_server *ss, rt_stomp_queue *q) {
  if (q->pumping) {
    q->repump = 1;
    return;
  }
  q->pumping = 1;
  do {
    q->repump = 0;
    rt_stomp_sub *sub;
    while (q->head && (sub = queue_pick(q, q->head->nacked_by))) {
      rt_stomp_qmsg *qm = queue_pop(ss, q);
      int track = sub->ack != RT_STOMP_ACK_AUTO;
      if (track) q->inflight++;
      if (deliver(sub, qm->common, qm->body, qm->text, qm->id, track ? qm : NULL, qm->redelivered) < 0) {
        if (track) q->inflight--;
        queue_push(ss, q, qm, 1);
        /* Usually that session is closing now and can_take skips it; if it is not (out
         * of memory), stop here rather than spin: the next publish or ACK pumps again. */
        if (can_take(sub)) break;
        continue;
      }
      if (!track) qmsg_free(qm);
    }
  } while (q->repump);
  q->pumping = 0;
  queue_maybe_drop(ss, q);
}

static long queue_publish(rt_stomp_server *ss, const char *dest, rt_chunk *body,
                          const char *ctype, const rt_stomp_header *extra, size_t nextra,
                          char *err, size_t errlen) {
  const rt_stomp_config *cfg = &ss->cfg;
  rt_stomp_queue *q = queue_get(ss, dest, 0);
  if (q && q->len >= cfg->max_queue_messages) {
    snprintf(err, errlen, "queue %s is full (%zu messages wait for a consumer)", dest, q->len);
    return -1;
  }
  if (ss->queued_bytes + body->len > cfg->max_queued_bytes) {
    snprintf(err, errlen, "the queues are full (%zu bytes wait for consumers)", ss->queued_bytes);
    return -1;
  }
  rt_stomp_qmsg *qm = calloc(1, sizeof *qm);
  if (!qm || !(q = queue_get(ss, dest, 1))) {
    free(qm);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  qm->common = build_common(ss, dest, ctype ? ctype : default_ctype(body, 0), extra, nextra, body->len,
                           0, NULL);
  if (!qm->common) {
    free(qm);
    queue_maybe_drop(ss, q);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  qm->body = rt_chunk_ref(body);
  qm->id = ++ss->next_msg_id;
  qm->text = chunk_text(qm->common) && chunk_text(body);
  queue_push(ss, q, qm, 0);
  queue_pump(ss, q);
  return 1;
}

static int consumer_add(rt_stomp_queue *q, rt_stomp_sub *sub) {
  if (q->nconsumers == q->cap) {
    int cap = q->cap ? q->cap * 2 : 4;
    rt_stomp_sub **v = realloc(q->consumers, (size_t)cap * sizeof *v);
    if (!v) return -1;
    q->consumers = v;
    q->cap = cap;
  }
  q->consumers[q->nconsumers++] = sub;
  return 0;
}

static void consumer_remove(rt_stomp_queue *q, rt_stomp_sub *sub) {
  for (int i = 0; i < q->nconsumers; i++)
    if (q->consumers[i] == sub) {
      memmove(q->consumers + i, q->consumers + i + 1, (size_t)(q->nconsumers - i - 1) * sizeof *q->consumers);
      q->nconsumers--;
      if (q->rr > i) q->rr--;
      if (q->rr >= q->nconsumers) q->rr = 0;
      return;
    }
}

/* A delivered queue message comes back (NACK, or its consumer went away). */
static void requeue(rt_stomp_server *ss, rt_stomp_qmsg *qm) {
  rt_stomp_queue *q = qm->queue;
  q->inflight--;
  qm->redelivered = 1;
  queue_push(ss, q, qm, 1);
}

size_t rt_stomp_queue_depth(rt_stomp_server *ss, const char *dest) {
  rt_stomp_queue *q = queue_get(ss, dest, 0);
  return q ? q->len : 0;
}

void rt_stomp_queues_free(rt_stomp_server *ss) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&ss->queues, &i, &k, &v);) {
    rt_stomp_queue *q = v;
    while (q->head) qmsg_free(queue_pop(ss, q));
    free(q->consumers);
    free(q->name);
    free(q);
  }
  rt_map_free(&ss->queues);
}

/* ---- acknowledgements -------------------------------------------------------------- */

rt_stomp_pending *rt_stomp_pending_by_ack(rt_stomp_session *s, uint64_t ack_id) {
  /* Clients mostly acknowledge in order: the match is near the head. */
  for (rt_stomp_pending *p = s->phead; p; p = p->next)
    if (p->ack_id == ack_id) return p;
  return NULL;
}

rt_stomp_pending *rt_stomp_pending_by_msg(rt_stomp_session *s, uint64_t msg_id,
                                          const rt_stomp_sub *sub) {
  for (rt_stomp_pending *p = s->phead; p; p = p->next)
    if (p->msg_id == msg_id && (!sub || p->sub == sub)) return p;
  return NULL;
}

static void settle_one(rt_stomp_session *s, rt_stomp_pending *p, int nack) {
  rt_stomp_server *ss = s->ss;
  pending_unlink(s, p);
  if (p->qmsg) {
    if (nack) {
      p->qmsg->nacked_by = s->conn_id;
      requeue(ss, p->qmsg);
    } else {
      p->qmsg->queue->inflight--;
      qmsg_free(p->qmsg);
    }
  }
  free(p);
}

void rt_stomp_settle(rt_stomp_session *s, rt_stomp_pending *p, int nack) {
  rt_stomp_sub *sub = p->sub;
  rt_stomp_queue *q = p->qmsg ? p->qmsg->queue : NULL;
  if (q) q->pins++;
  if (sub->ack == RT_STOMP_ACK_CLIENT) {
    /* Cumulative: this one and every earlier delivery on the same subscription. */
    for (rt_stomp_pending *it = s->phead, *next; it; it = next) {
      next = it->next;
      int last = it == p;
      if (it->sub == sub) settle_one(s, it, nack);
      if (last) break;
    }
  } else {
    settle_one(s, p, nack);
  }
  if (q) {
    q->pins--;
    queue_pump(s->ss, q);  /* redelivers, or uses the consumer's freed capacity */
  }
}

/* ---- subscriptions ----------------------------------------------------------------- */

/* user_prefix "/" name rest, with '%' and '/' in the name escaped so that no two users'
 * keys can collide. */
static int user_key(const rt_stomp_config *cfg, const char *user, const char *rest, char *out,
                    size_t outlen) {
  size_t n = (size_t)snprintf(out, outlen, "%s/", cfg->user_prefix);
  for (const char *p = user; *p && n + 4 < outlen; p++) {
    if (*p == '/' || *p == '%') n += (size_t)snprintf(out + n, outlen - n, "%%%02X", (unsigned char)*p);
    else out[n++] = *p;
  }
  if (n + strlen(rest) + 1 > outlen) return -1;
  strcpy(out + n, rest);
  return 0;
}

/* "MESSAGE\nsubscription:<id>\n". Interned by id: subscriptions with the same id share
 * one chunk, so the fan-out cache tells them apart by pointer, without reading them. */
typedef struct shared_prefix {
  rt_chunk *chunk;
  int users;  /* subscriptions using it; the entry goes with the last */
} shared_prefix;

static int build_prefix(rt_stomp_sub *sub) {
  rt_stomp_server *ss = sub->s->ss;
  shared_prefix *sp = rt_map_get(&ss->prefixes, sub->id);
  if (!sp) {
    rt_stomp_buf *b = &sub->s->scratch;
    rt_stomp_header h = rt_stomp_hdr("subscription", sub->id);
    rt_stomp_buf_reset(b);
    if (rt_stomp_write_head(b, RT_STOMP_CMD_MESSAGE, &h, 1, 0, NULL, 0) < 0) return -1;
    if (!(sp = calloc(1, sizeof *sp))) return -1;
    sp->chunk = rt_chunk_copy(b->data, b->len - 1);  /* without the blank line */
    if (!sp->chunk || rt_map_put(&ss->prefixes, sub->id, sp) < 0) {
      rt_chunk_unref(sp->chunk);
      free(sp);
      return -1;
    }
  }
  sp->users++;
  sub->prefix = rt_chunk_ref(sp->chunk);
  sub->prefix_text = chunk_text(sub->prefix);
  return 0;
}

static void prefix_release(rt_stomp_server *ss, rt_stomp_sub *sub) {
  if (!sub->prefix) return;
  shared_prefix *sp = rt_map_get(&ss->prefixes, sub->id);
  if (sp && sp->chunk == sub->prefix && --sp->users == 0) {
    rt_map_remove(&ss->prefixes, sub->id);
    rt_chunk_unref(sp->chunk);
    free(sp);
  }
  rt_chunk_unref(sub->prefix);
  sub->prefix = NULL;
}

void rt_stomp_prefixes_free(rt_stomp_server *ss) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&ss->prefixes, &i, &k, &v);) {
    shared_prefix *sp = v;
    rt_chunk_unref(sp->chunk);
    free(sp);
  }
  rt_map_free(&ss->prefixes);
}

/* A recovery that waited for the engine's history read: its RECEIPT says the outcome. */
static void sub_recovered(rt_sub *bs, int ok) {
  rt_stomp_sub *sub = bs->data;
  rt_stomp_session *s = sub->s;
  if (!sub->recover_receipt) return;
  rt_stomp_header h[2] = {rt_stomp_hdr("receipt-id", sub->recover_receipt),
                          rt_stomp_hdr("x-recovered", ok ? "true" : "false")};
  if (s->state == RT_STOMP_S_CONNECTED) rt_stomp_session_send_frame(s, RT_STOMP_CMD_RECEIPT, h, 2, NULL, 0);
  free(sub->recover_receipt);
  sub->recover_receipt = NULL;
}

/* Messages of the subscription's topic were missed and cannot be had (a gap the history no
 * longer covers, or the history's epoch changed): the client is told by a MESSAGE with no
 * body and x-recovered:false, so that it can reload its state. */
static void sub_lost(rt_sub *bs) {
  rt_stomp_sub *sub = bs->data;
  rt_stomp_session *s = sub->s;
  if (s->state != RT_STOMP_S_CONNECTED) return;
  char id[32];
  snprintf(id, sizeof id, "%" PRIu64, ++s->ss->next_msg_id);
  rt_stomp_header h[4] = {rt_stomp_hdr("subscription", sub->id), rt_stomp_hdr("message-id", id),
                          rt_stomp_hdr("destination", sub->dest),
                          rt_stomp_hdr("x-recovered", "false")};
  rt_stomp_session_send_frame(s, RT_STOMP_CMD_MESSAGE, h, 4, NULL, 0);
}

int rt_stomp_sub_start(rt_stomp_sub *sub, char *err, size_t errlen) {
  rt_stomp_session *s = sub->s;
  rt_stomp_server *ss = s->ss;
  rt_broker *b = ss->srv->broker;
  if (build_prefix(sub) < 0) goto nomem;
  if (sub->kind == RT_STOMP_DEST_TOPIC) {
    sub->bsub = strchr(sub->dest, '*')
                    ? rt_broker_subscribe_pattern(b, sub->dest, s->conn, deliver_topic, sub)
                    : rt_broker_subscribe(b, sub->dest, s->conn, deliver_topic, sub);
    if (!sub->bsub) goto nomem;
    sub->bsub->prefetch = prefetch_sub;
    sub->bsub->recovered = sub_recovered;
    sub->bsub->lost = sub_lost;
  } else if (sub->kind == RT_STOMP_DEST_USER) {
    /* "/user/queue/x" is this user's own "/user/<name>/queue/x"; an anonymous session
     * gets a name no client can write (destinations refuse control characters). */
    char key[1200], anon[40];
    snprintf(anon, sizeof anon, "\x01%s", s->id);
    const char *rest = sub->dest + strlen(ss->cfg.user_prefix);
    if (user_key(&ss->cfg, s->user ? s->user : anon, rest, key, sizeof key) < 0) {
      snprintf(err, errlen, "destination too long");
      return -1;
    }
    if (!(sub->bsub = rt_broker_subscribe(b, key, s->conn, deliver_topic, sub))) goto nomem;
  } else if (sub->kind == RT_STOMP_DEST_QUEUE) {
    rt_stomp_queue *q = queue_get(ss, sub->dest, 1);
    if (!q || consumer_add(q, sub) < 0) {
      if (q) queue_maybe_drop(ss, q);
      goto nomem;
    }
    sub->queue = q;
  } else {
    snprintf(err, errlen, "cannot subscribe to %s", sub->dest);
    return -1;
  }
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
  return -1;
}

int rt_stomp_sub_recover(rt_stomp_sub *sub, const char *epoch, uint64_t since,
                         const char *receipt) {
  if (sub->kind != RT_STOMP_DEST_TOPIC || !sub->bsub) return 0;
  int rc = rt_broker_replay(sub->s->ss->srv->broker, sub->bsub, epoch, since);
  if (rc == RT_STREAM_PENDING && receipt && !(sub->recover_receipt = strdup(receipt)))
    rt_warn(&sub->s->ss->srv->log, "out of memory: a recovery's RECEIPT will not be sent");
  return rc;
}


void rt_stomp_sub_take_waiting(rt_stomp_sub *sub) {
  if (sub->queue) queue_pump(sub->s->ss, sub->queue);
}

static void sub_free(rt_stomp_server *ss, rt_stomp_sub *sub) {
  prefix_release(ss, sub);
  free(sub->recover_receipt);
  free(sub->id);
  free(sub->dest);
  free(sub);
}

/* Requeues (in their original order) or drops what sub (NULL: every subscription) still
 * holds unacknowledged. */
static void release_pending(rt_stomp_session *s, rt_stomp_sub *sub) {
  for (rt_stomp_pending *p = s->ptail, *prev; p; p = prev) {
    prev = p->prev;
    if (sub && p->sub != sub) continue;
    pending_unlink(s, p);
    if (p->qmsg) requeue(s->ss, p->qmsg);
    free(p);
  }
}

void rt_stomp_sub_end(rt_stomp_sub *sub) {
  rt_stomp_session *s = sub->s;
  if (sub->bsub) rt_broker_unsubscribe(s->ss->srv->broker, sub->bsub);
  rt_stomp_queue *q = sub->queue;
  if (q) {
    consumer_remove(q, sub);
    q->pins++;
  }
  release_pending(s, sub);
  if (q) {
    q->pins--;
    queue_pump(s->ss, q);
  }
  sub_free(s->ss, sub);
}

void rt_stomp_session_drop_subs(rt_stomp_session *s) {
  /* Leave every queue first, so a requeued message is not handed back to us. */
  for (rt_stomp_sub *sub = s->subs; sub; sub = sub->next) {
    sub->bsub = NULL;
    if (sub->queue) {
      consumer_remove(sub->queue, sub);
      sub->queue->pins++;
    }
  }
  release_pending(s, NULL);
  while (s->subs) {
    rt_stomp_sub *sub = s->subs;
    s->subs = sub->next;
    if (sub->queue) {
      sub->queue->pins--;
      queue_pump(s->ss, sub->queue);
    }
    sub_free(s->ss, sub);
  }
  s->nsubs = 0;
}

/* ---- publishing -------------------------------------------------------------------- */

/* RT_BROKER_ENGINE_FAILED with err when the engine refused it (local subscribers got it). */
static long topic_publish(rt_stomp_server *ss, const char *key, const char *display,
                          rt_chunk *body, const char *ctype, const rt_stomp_header *extra,
                          size_t nextra, char *err, size_t errlen) {
  rt_msg m = {.destination = key, .body = body, .stomp_destination = display,
              .content_type = ctype, .headers = extra, .nheaders = nextra};
  m.binary = !chunk_text(body);
  long n = rt_broker_publish(ss->srv->broker, &m);
  if (m.engine_error) {
    snprintf(err, errlen, "%s", m.engine_error);
    n = RT_BROKER_ENGINE_FAILED;
  }
  rt_msg_release(&m);
  return n;
}

long rt_stomp_publish_user(rt_stomp_server *ss, const char *user, const char *rest,
                           rt_chunk *body, const char *ctype, const rt_stomp_header *extra,
                           size_t nextra, char *err, size_t errlen) {
  if (ss->relay) return rt_stomp_relay_publish_user(ss->relay, user, rest, body, ctype, extra, nextra, err, errlen);
  char key[1200], display[1200];
  if (rest[0] != '/' || user_key(&ss->cfg, user, rest, key, sizeof key) < 0) {
    snprintf(err, errlen, "bad user destination");
    return -1;
  }
  snprintf(display, sizeof display, "%s%s", ss->cfg.user_prefix, rest);
  return topic_publish(ss, key, display, body, ctype, extra, nextra, err, errlen);
}

long rt_stomp_publish(rt_stomp_server *ss, const char *dest, rt_chunk *body, const char *ctype,
                      const rt_stomp_header *extra, size_t nextra, char *err, size_t errlen) {
  if (ss->relay) return rt_stomp_relay_publish(ss->relay, dest, body, ctype, extra, nextra, err, errlen);
  const rt_stomp_config *cfg = &ss->cfg;
  switch (rt_stomp_dest_kind(cfg, dest)) {
    case RT_STOMP_DEST_TOPIC:
      if (strchr(dest, '*')) {
        snprintf(err, errlen, "cannot send to a pattern (%s)", dest);
        return -1;
      }
      return topic_publish(ss, dest, NULL, body, ctype, extra, nextra, err, errlen);
    case RT_STOMP_DEST_QUEUE:
      return queue_publish(ss, dest, body, ctype, extra, nextra, err, errlen);
    case RT_STOMP_DEST_USER: {
      /* "/user/<name>/rest": the key is the destination itself; receivers see
       * "/user/rest", the destination they subscribed to. */
      const char *name = dest + strlen(cfg->user_prefix) + 1;
      const char *rest = strchr(name, '/');
      if (!rest || rest == name || !rest[1]) {
        snprintf(err, errlen, "a user destination is %s/<user>/<destination>", cfg->user_prefix);
        return -1;
      }
      char display[1200];
      snprintf(display, sizeof display, "%s%s", cfg->user_prefix, rest);
      return topic_publish(ss, dest, display, body, ctype, extra, nextra, err, errlen);
    }
    case RT_STOMP_DEST_APP:
      snprintf(err, errlen, "%s is an application destination: only clients SEND there", dest);
      return -1;
    default:
      snprintf(err, errlen, "%s is not under a known prefix", dest);
      return -1;
  }
}

long rt_stomp_send_to_session(rt_stomp_session *s, const char *dest, rt_chunk *body,
                              const char *ctype, const rt_stomp_header *extra, size_t nextra) {
  if (s->link) return rt_stomp_relay_send_to_session(s, dest, body, ctype, extra, nextra);
  rt_chunk *common = NULL;
  uint64_t id = 0;
  int text = 0;
  long n = 0;
  for (rt_stomp_sub *sub = s->subs, *next; sub; sub = next) {
    next = sub->next;
    if (strcmp(sub->dest, dest) != 0) continue;
    if (!common) {
      common = build_common(s->ss, dest, ctype ? ctype : default_ctype(body, 0), extra, nextra,
                            body->len, 0, NULL);
      if (!common) return -1;
      id = ++s->ss->next_msg_id;
      text = chunk_text(common) && chunk_text(body);
    }
    if (deliver(sub, common, body, text, id, NULL, 0) < 0) break;
    n++;
  }
  if (common) rt_chunk_unref(common);
  return n;
}
