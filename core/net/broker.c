#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "engine_msg.h"
#include "history.h"
#include "presence.h"
#include "server_int.h"
#include "stream.h"

struct rt_topic {
  char *name;
  rt_sub *head;
  size_t count;
  int publishing;     /* a publish loop is walking this topic */
  int pattern;        /* lives in b->patterns and matches names */
  rt_sub *graveyard;  /* subscribers removed meanwhile */
};

struct rt_broker {
  rt_server *srv;
  rt_map topics;
  rt_map patterns;    /* few in practice: every publish tries each */
  rt_history *history;
  rt_presence *presence;
  rt_engine *engine;  /* NULL: this process alone */
  rt_streams *streams;  /* histories that live in the engine */
  rt_buf engine_out;  /* the encoding of the message being published, reused */
  rt_buf engine_in;   /* strings of the message being received, reused */
  char engine_err[256];
};

rt_broker *rt_broker_new(rt_server *srv) {
  rt_broker *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->srv = srv;
  b->history = rt_history_new(srv);
  b->presence = rt_presence_new(srv);
  b->streams = rt_streams_new(b, srv);
  if (!b->history || !b->presence || !b->streams) {
    rt_broker_free(b);
    return NULL;
  }
  return b;
}

rt_history *rt_broker_history(rt_broker *b) { return b->history; }
rt_presence *rt_broker_presence(rt_broker *b) { return b->presence; }
rt_streams *rt_broker_streams(rt_broker *b) { return b->streams; }

static void free_graveyard(rt_topic *t) {
  while (t->graveyard) {
    rt_sub *s = t->graveyard;
    t->graveyard = s->grave_next;
    free(s);
  }
}

static void topic_free(rt_topic *t) {
  free_graveyard(t);
  free(t->name);
  free(t);
}

static void topic_maybe_drop(rt_broker *b, rt_topic *t) {
  if (t->head || t->publishing) return;
  if (b->engine) b->engine->ops->unwatch(b->engine, t->name, t->pattern);
  if (!t->pattern) rt_streams_unwatch(b->streams, t->name);
  rt_map_remove(t->pattern ? &b->patterns : &b->topics, t->name);
  topic_free(t);
}

static void free_topics(rt_map *m) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(m, &i, &k, &v);) {
    rt_topic *t = v;
    while (t->head) {
      rt_sub *s = t->head;
      t->head = s->next;
      free(s);
    }
    topic_free(t);
  }
  rt_map_free(m);
}

void rt_broker_free(rt_broker *b) {
  if (!b) return;
  free_topics(&b->topics);
  free_topics(&b->patterns);
  rt_streams_free(b->streams);
  rt_history_free(b->history);
  rt_presence_free(b->presence);
  rt_buf_free(&b->engine_out);
  rt_buf_free(&b->engine_in);
  free(b);
}

static rt_sub **conn_list(rt_conn *c) { return (rt_sub **)&c->subs; }

static rt_sub *subscribe(rt_broker *b, rt_map *map, int pattern, const char *dest, rt_conn *c,
                         rt_deliver_fn deliver, void *data) {
  rt_topic *t = rt_map_get(map, dest);
  if (!t) {
    t = calloc(1, sizeof *t);
    if (t) t->pattern = pattern;
    if (!t || !(t->name = strdup(dest)) || rt_map_put(map, dest, t) < 0) {
      if (t) free(t->name);
      free(t);
      return NULL;
    }
    if (b->engine) b->engine->ops->watch(b->engine, t->name, pattern);
    if (!pattern) rt_streams_watch(b->streams, t->name);
  }
  rt_sub *s = calloc(1, sizeof *s);
  if (!s) {
    topic_maybe_drop(b, t);
    return NULL;
  }
  s->topic = t;
  s->conn = c;
  s->deliver = deliver;
  s->data = data;
  s->next = t->head;
  if (t->head) t->head->prev = s;
  t->head = s;
  t->count++;
  s->conn_next = *conn_list(c);
  *conn_list(c) = s;
  if (!pattern) rt_presence_note(b->presence, t->name, c, 1);
  return s;
}

rt_sub *rt_broker_subscribe(rt_broker *b, const char *dest, rt_conn *c, rt_deliver_fn deliver,
                            void *data) {
  return subscribe(b, &b->topics, 0, dest, c, deliver, data);
}

rt_sub *rt_broker_subscribe_pattern(rt_broker *b, const char *pattern, rt_conn *c,
                                    rt_deliver_fn deliver, void *data) {
  return subscribe(b, &b->patterns, 1, pattern, c, deliver, data);
}

/* Dynamic programming over (pattern token, name prefix), one row at a time: linear in
 * the name for each token, so no pattern can make matching blow up. */
int rt_broker_pattern_match(const char *pat, const char *name) {
  size_t n = strlen(name);
  if (n > RT_BROKER_MAX_NAME) return 0;
  unsigned char row[RT_BROKER_MAX_NAME + 1], next[RT_BROKER_MAX_NAME + 1];
  memset(row, 0, n + 1);
  row[0] = 1;
  for (const char *p = pat; *p;) {
    if (p[0] == '*') {
      int any = p[1] == '*';
      p += any ? 2 : 1;
      next[0] = row[0];
      for (size_t j = 1; j <= n; j++) {
        char ch = name[j - 1];
        next[j] = row[j] || (next[j - 1] && (any || (ch != '/' && ch != '.')));
      }
    } else {
      next[0] = 0;
      for (size_t j = 1; j <= n; j++) next[j] = row[j - 1] && name[j - 1] == *p;
      p++;
    }
    memcpy(row, next, n + 1);
  }
  return row[n];
}

static void unlink_from_topic(rt_broker *b, rt_sub *s) {
  rt_topic *t = s->topic;
  rt_streams_sub_gone(b->streams, s);
  if (!t->pattern) rt_presence_note(b->presence, t->name, s->conn, 0);
  if (s->prev) s->prev->next = s->next;
  else t->head = s->next;
  if (s->next) s->next->prev = s->prev;
  t->count--;
  if (t->publishing) {
    /* The publish loop may hold a pointer to s, or be about to step through it: keep
     * s->next as it was and free s when the loop is done. */
    s->dead = 1;
    s->grave_next = t->graveyard;
    t->graveyard = s;
  } else {
    free(s);
    topic_maybe_drop(b, t);
  }
}

void rt_broker_unsubscribe(rt_broker *b, rt_sub *s) {
  for (rt_sub **p = conn_list(s->conn); *p; p = &(*p)->conn_next)
    if (*p == s) {
      *p = s->conn_next;
      break;
    }
  unlink_from_topic(b, s);
}

rt_sub *rt_broker_find(rt_broker *b, const char *dest, rt_conn *c, rt_deliver_fn deliver) {
  for (rt_sub *s = *conn_list(c); s; s = s->conn_next)
    if (s->deliver == deliver && strcmp(s->topic->name, dest) == 0) return s;
  return NULL;
}

void rt_broker_drop_conn(rt_broker *b, rt_conn *c) {
  rt_sub *s = *conn_list(c);
  *conn_list(c) = NULL;
  while (s) {
    rt_sub *n = s->conn_next;
    unlink_from_topic(b, s);
    s = n;
  }
}

/* Subscribers live all over the heap: with ten thousand of them a walk is a chain of
 * cache misses. Each step asks for memory the next deliveries will read, at three
 * depths, each reading only lines the previous step asked for (prefetching never faults,
 * and unlinked subscribers stay allocated until the walk ends). */
static inline void prefetch_ahead(const rt_sub *s) {
  const rt_sub *n1 = s->next, *n2 = n1 ? n1->next : NULL;
  if (n2) {
    __builtin_prefetch(n2->next);
    __builtin_prefetch(n2->data);
    __builtin_prefetch(n2->conn);
  }
  if (n1) {
    if (n1->prefetch) n1->prefetch(n1);
    else if (n1->conn) __builtin_prefetch(n1->conn->pstate);
  }
}

static long deliver_topic(rt_broker *b, rt_topic *t, rt_msg *m) {
  long n = 0;
  for (rt_sub *s = t->head, *next; s; s = next) {
    /* A delivery may close a connection and unlink subscribers; dead ones keep their
     * next pointer valid until the loop ends. */
    next = s->next;
    if (s->dead || s->held) continue;
    prefetch_ahead(s);
    s->deliver(s, m);
    n++;
  }
  t->publishing--;
  if (!t->publishing) {
    free_graveyard(t);
    topic_maybe_drop(b, t);
  }
  return n;
}

/* Does the pattern topic t take a message that came through engine glob? */
static int glob_is(const rt_topic *t, const char *glob) {
  char g[2 * RT_BROKER_MAX_NAME + 2];
  return rt_engine_glob(t->name, g, sizeof g) >= 0 && strcmp(g, glob) == 0;
}

static long deliver_local(rt_broker *b, rt_msg *m, rt_engine_scope scope, const char *glob) {
  long n = 0;
  rt_topic *t = scope == RT_ENGINE_PATTERN ? NULL : rt_map_get(&b->topics, m->destination);
  /* Matching patterns are collected (and pinned) before any delivery: a delivery may
   * close connections, which removes topics from the map we would be walking. */
  rt_topic *fixed[16], **hits = fixed;
  size_t nhits = 0, cap = 16;
  if (b->patterns.count && scope != RT_ENGINE_EXACT) {
    const char *k;
    void *v;
    for (size_t i = 0; rt_map_next(&b->patterns, &i, &k, &v);) {
      if (!rt_broker_pattern_match(k, m->destination)) continue;
      if (scope == RT_ENGINE_PATTERN && !glob_is(v, glob)) continue;
      if (nhits == cap) {
        rt_topic **bigger = malloc(cap * 2 * sizeof *bigger);
        if (!bigger) break;
        memcpy(bigger, hits, nhits * sizeof *hits);
        if (hits != fixed) free(hits);
        hits = bigger;
        cap *= 2;
      }
      hits[nhits++] = v;
      ((rt_topic *)v)->publishing++;
    }
  }
  if (t) {
    t->publishing++;
    n += deliver_topic(b, t, m);
  }
  for (size_t i = 0; i < nhits; i++) n += deliver_topic(b, hits[i], m);
  if (hits != fixed) free(hits);
  b->srv->metrics.deliveries += n;
  return n;
}

static int replay_one(void *ud, rt_msg *m) {
  rt_sub *s = ud;
  if (s->dead) return 1;
  s->deliver(s, m);
  return 0;
}

const char *rt_sub_name(const rt_sub *s) { return s->topic->name; }

rt_topic *rt_broker_pin(rt_broker *b, const char *name) {
  rt_topic *t = rt_map_get(&b->topics, name);
  if (t) t->publishing++;
  return t;
}

void rt_broker_unpin(rt_broker *b, rt_topic *t) {
  if (t && !--t->publishing) {
    free_graveyard(t);
    topic_maybe_drop(b, t);
  }
}

int rt_broker_replay_cached(rt_broker *b, rt_sub *s, const char *epoch, uint64_t since) {
  /* Pinned like a publish: a delivery may close the connection and unsubscribe s. */
  rt_topic *t = s->topic;
  t->publishing++;
  int ok = rt_history_read(b->history, t->name, epoch, since, 0, 0, replay_one, s);
  rt_broker_unpin(b, t);
  return ok;
}

int rt_broker_replay(rt_broker *b, rt_sub *s, const char *epoch, uint64_t since) {
  if (s->topic->pattern) return 0;
  if (rt_streams_cover(b->streams, s->topic->name))
    return rt_streams_recover(b->streams, s, epoch, since);
  return rt_broker_replay_cached(b, s, epoch, since);
}

/* An engine message as the broker's message, with its place in the history. */
static int kept_msg(const rt_engine_msg *em, rt_msg *m) {
  *m = (rt_msg){.destination = em->name, .binary = em->binary,
                .stomp_destination = em->stomp_destination, .content_type = em->content_type,
                .headers = em->headers, .nheaders = em->nheaders, .offset = em->offset,
                .epoch = em->epoch};
  return (m->body = rt_chunk_copy(em->body, em->body_len)) ? 0 : -1;
}

void rt_broker_deliver_kept(rt_broker *b, const rt_engine_msg *em, int keep) {
  rt_msg m;
  if (kept_msg(em, &m) < 0) return;
  /* The local history is the cache of the engine's: the same places. */
  if (keep && rt_history_keep_at(b->history, &m, em->epoch, em->offset) < 0)
    rt_warn(&b->srv->log, "%s: out of memory keeping history", m.destination);
  m.offset = em->offset;
  m.epoch = em->epoch;
  deliver_local(b, &m, RT_ENGINE_EXACT, NULL);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
}

int rt_broker_cache_kept(rt_broker *b, const rt_engine_msg *em, int older) {
  rt_msg m;
  if (kept_msg(em, &m) < 0) return -1;
  int rc = older ? rt_history_keep_before(b->history, &m, em->epoch, em->offset)
                 : rt_history_keep_at(b->history, &m, em->epoch, em->offset);
  rt_chunk_unref(m.body);
  return rc;
}

void rt_broker_deliver_kept_to(rt_broker *b, rt_sub *s, const rt_engine_msg *em) {
  rt_msg m;
  if (s->dead || kept_msg(em, &m) < 0) return;
  s->deliver(s, &m);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
}

void rt_broker_tell_lost(rt_broker *b, const char *name) {
  rt_topic *t = rt_broker_pin(b, name);
  if (!t) return;
  for (rt_sub *s = t->head; s; s = s->next)
    if (!s->dead && !s->held && s->lost) s->lost(s);
  rt_broker_unpin(b, t);
}

void rt_broker_lost_all(rt_broker *b, const char *why) {
  /* What is kept here lacks them too: new epochs, so no one recovers across the hole. */
  rt_history_drop_all(b->history);
  /* Names copied first: telling may close connections, which changes the map. */
  size_t n = 0;
  char **names = malloc((b->topics.count + 1) * sizeof *names);
  const char *k;
  void *v;
  for (size_t i = 0; names && rt_map_next(&b->topics, &i, &k, &v);)
    if (rt_history_covers(b->history, k) && (names[n] = strdup(k))) n++;
  for (size_t j = 0; j < n; j++) {
    rt_broker_tell_lost(b, names[j]);
    free(names[j]);
  }
  free(names);
  b->srv->metrics.history_lost++;
  rt_warn(&b->srv->log, "%s; subscribers of topics with history are told they may have missed "
          "messages (%zu topic(s))", why, n);
}

void rt_broker_engine_subscribed(rt_broker *b, const char *name) {
  rt_streams_subscribed(b->streams, name);
}

/* Encodes m once and hands it to the engine; a refusal is counted and said in m. */
int rt_msg_encode_for_engine(const rt_msg *m, uint64_t origin, rt_buf *out, char *err,
                             size_t errlen) {
  rt_engine_msg em = {.origin = origin, .binary = m->binary, .name = m->destination,
                      .stomp_destination = m->stomp_destination, .content_type = m->content_type,
                      .body = m->body->data, .body_len = m->body->len};
  for (size_t i = 0; i < m->nheaders && i < RT_ENGINE_MAX_HEADERS; i++)
    em.headers[em.nheaders++] = m->headers[i];
  out->len = out->off = 0;
  if (rt_engine_msg_encode(out, &em) == 0) return 0;
  snprintf(err, errlen, "the message cannot cross the engine (out of memory, or a name or "
           "header over its limit)");
  return -1;
}

static void engine_forward(rt_broker *b, rt_msg *m) {
  rt_engine *e = b->engine;
  int rc = rt_msg_encode_for_engine(m, e->node_id, &b->engine_out, b->engine_err, sizeof b->engine_err);
  if (rc == 0)
    rc = e->ops->publish(e, m->destination, rt_buf_start(&b->engine_out), b->engine_out.len,
                         b->engine_err, sizeof b->engine_err);
  if (rc < 0) {
    m->engine_error = b->engine_err;
    b->srv->metrics.engine_publish_failures++;
  } else {
    b->srv->metrics.engine_published++;
  }
}

/* Kept before any delivery, so that every receiver sees the message's offset. */
static void keep_history(rt_broker *b, rt_msg *m) {
  if (rt_history_keep(b->history, m) < 0)
    rt_warn(&b->srv->log, "%s: out of memory keeping history", m->destination);
}

long rt_broker_publish(rt_broker *b, rt_msg *m) {
  m->engine_error = NULL;
  if (rt_streams_cover(b->streams, m->destination)) {
    /* The history lives in the engine: it gives the offset, and every node (this one too)
     * delivers what comes back, in order. Not taken there: nobody gets it. */
    if (rt_streams_publish(b->streams, m, b->engine_err, sizeof b->engine_err) < 0) {
      m->engine_error = b->engine_err;
      b->srv->metrics.engine_publish_failures++;
      return 0;
    }
    b->srv->metrics.engine_published++;
    return (long)rt_broker_count(b, m->destination);
  }
  keep_history(b, m);
  long n = deliver_local(b, m, RT_ENGINE_ALL, NULL);
  if (b->engine) engine_forward(b, m);
  return n;
}

void rt_broker_from_engine(rt_broker *b, const uint8_t *data, size_t len, rt_engine_scope scope,
                           const char *glob) {
  rt_engine_msg em;
  char err[160];
  if (rt_engine_msg_decode(data, len, &em, &b->engine_in, err, sizeof err) < 0) {
    b->srv->metrics.engine_bad_messages++;
    rt_warn(&b->srv->log, "engine: dropped a message: %s", err);
    return;
  }
  /* Our own echo was delivered when published, except a message of a history in the
   * engine (it has an offset): every node, ours too, delivers those as they come back. */
  if (!b->engine || (!em.offset && em.origin == b->engine->node_id)) return;
  b->srv->metrics.engine_received++;
  if (em.offset && scope != RT_ENGINE_PATTERN) {
    rt_streams_message(b->streams, data, len, &em);
    return;
  }
  rt_msg m = {.destination = em.name, .binary = em.binary, .stomp_destination = em.stomp_destination,
              .content_type = em.content_type, .headers = em.headers, .nheaders = em.nheaders};
  if (!(m.body = rt_chunk_copy(em.body, em.body_len))) return;
  if (em.offset) {
    m.offset = em.offset;
    m.epoch = em.epoch;
  } else if (scope != RT_ENGINE_PATTERN) {
    /* This node's history keeps what it receives too (its own offsets), once: a message
     * that also came through a pattern's glob is not kept again. */
    keep_history(b, &m);
  }
  deliver_local(b, &m, scope, glob);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
}

void rt_broker_set_engine(rt_broker *b, rt_engine *e) {
  b->engine = e;
  rt_streams_set_engine(b->streams, e);
  rt_presence_set_engine(b->presence, e);  /* presence crosses processes with the messages */
  if (!e) return;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&b->topics, &i, &k, &v);) e->ops->watch(e, k, 0);
  for (size_t i = 0; rt_map_next(&b->patterns, &i, &k, &v);) e->ops->watch(e, k, 1);
}

const char *rt_broker_engine_error(const rt_broker *b) { return b->engine_err; }

void rt_msg_release(rt_msg *m) {
  if (m->ws_frame) rt_chunk_unref(m->ws_frame);
  if (m->ws_deflated) rt_chunk_unref(m->ws_deflated);
  if (m->stomp_common) rt_chunk_unref(m->stomp_common);
  if (m->sockjs_quoted) rt_chunk_unref(m->sockjs_quoted);
  if (m->stomp_wires) m->stomp_wires_free(m->stomp_wires);
  m->ws_frame = m->ws_deflated = m->stomp_common = m->sockjs_quoted = NULL;
  m->stomp_wires = NULL;
}

void rt_broker_each_sub(rt_broker *b, const char *dest, void (*fn)(void *ud, const rt_sub *s),
                        void *ud) {
  rt_topic *t = rt_map_get(&b->topics, dest);
  for (rt_sub *s = t ? t->head : NULL; s; s = s->next)
    if (!s->dead) fn(ud, s);
}

size_t rt_broker_count(rt_broker *b, const char *dest) {
  rt_topic *t = rt_map_get(&b->topics, dest);
  return t ? t->count : 0;
}

long rt_broker_publish_data(rt_broker *b, const char *dest, const void *data, size_t len,
                            int binary) {
  rt_msg m = {.destination = dest, .binary = binary};
  m.body = rt_chunk_copy(data, len);
  if (!m.body) return -1;
  long n = rt_broker_publish(b, &m);
  if (m.engine_error) n = RT_BROKER_ENGINE_FAILED;
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  return n;
}
