#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "broker.h"
#include "engine.h"
#include "engine_msg.h"
#include "history.h"
#include "server_int.h"

/* A message that came while a read was out: delivered after the read's answer. */
typedef struct held_msg {
  struct held_msg *next;
  size_t len;
  uint8_t data[];
} held_msg;

/* A subscriber that recovers from a position the cache does not reach. */
typedef struct waiter {
  struct waiter *next;
  rt_sub *sub;
  uint64_t since;
  int early_answers;        /* answers whose top was below since (run before it existed) */
  char epoch[RT_ENGINE_EPOCH_MAX + 1];
} waiter;

typedef struct stream {
  char *name;
  uint64_t gen;             /* tells a read's answer for this stream from a dropped one's */
  char epoch[RT_ENGINE_EPOCH_MAX + 1];
  uint64_t last;            /* the latest offset delivered here */
  int synced;               /* epoch and last are known */
  int reading;              /* a read is out */
  uint64_t read_since;      /* ...for what came after this offset */
  int read_again;           /* ...and another is wanted after it */
  held_msg *head, *tail;
  size_t nheld;
  int dropped_held;         /* held messages were dropped: read them back */
  waiter *waiters;
} stream;

struct rt_streams {
  rt_broker *b;
  rt_server *srv;
  rt_engine *engine;
  rt_map streams;           /* name -> stream */
  uint64_t gen;
  rt_buf scratch;
};

typedef struct read_ctx {
  rt_streams *ss;
  uint64_t gen;
  uint64_t since;
  char name[];
} read_ctx;

rt_streams *rt_streams_new(rt_broker *b, rt_server *srv) {
  rt_streams *ss = calloc(1, sizeof *ss);
  if (!ss) return NULL;
  ss->b = b;
  ss->srv = srv;
  return ss;
}

static void drop_held(stream *st) {
  while (st->head) {
    held_msg *h = st->head;
    st->head = h->next;
    free(h);
  }
  st->tail = NULL;
  st->nheld = 0;
}

static void stream_free(stream *st) {
  drop_held(st);
  while (st->waiters) {
    waiter *w = st->waiters;
    st->waiters = w->next;
    free(w);
  }
  free(st->name);
  free(st);
}

void rt_streams_free(rt_streams *ss) {
  if (!ss) return;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&ss->streams, &i, &k, &v);) stream_free(v);
  rt_map_free(&ss->streams);
  rt_buf_free(&ss->scratch);
  free(ss);
}

void rt_streams_set_engine(rt_streams *ss, rt_engine *e) {
  ss->engine = e && e->ops->publish_kept && e->ops->read ? e : NULL;
}

int rt_streams_cover(rt_streams *ss, const char *name) {
  return ss->engine && rt_history_covers(rt_broker_history(ss->b), name);
}

int rt_streams_publish(rt_streams *ss, rt_msg *m, char *err, size_t errlen) {
  size_t size;
  double ttl;
  if (!rt_history_limits(rt_broker_history(ss->b), m->destination, &size, &ttl)) {
    snprintf(err, errlen, "no history policy covers %s", m->destination);
    return -1;
  }
  if (rt_msg_encode_for_engine(m, ss->engine->node_id, &ss->scratch, err, errlen) < 0) return -1;
  return ss->engine->ops->publish_kept(ss->engine, m->destination, rt_buf_start(&ss->scratch),
                                       ss->scratch.len, size, ttl, err, errlen);
}

/* ---- reads ------------------------------------------------------------------------- */

static void on_read(void *ud, const rt_engine_history *h);

/* Reads what the engine keeps after the oldest position anyone here needs: the stream's
 * own (a gap, a check) and every waiter's. Not synced and no waiter: only the position. */
static void start_read(rt_streams *ss, stream *st) {
  if (st->reading) {
    st->read_again = 1;
    return;
  }
  uint64_t since = st->synced ? st->last : UINT64_C(1) << 63;
  for (waiter *w = st->waiters; w; w = w->next)
    if (w->since < since) since = w->since;
  size_t nlen = strlen(st->name);
  read_ctx *rc = malloc(sizeof *rc + nlen + 1);
  if (!rc) return;
  *rc = (read_ctx){ss, st->gen, since};
  memcpy(rc->name, st->name, nlen + 1);
  size_t size = 0;
  double ttl;
  rt_history_limits(rt_broker_history(ss->b), st->name, &size, &ttl);
  /* A waiter far behind needs everything kept; the stream itself only what it lacks. */
  if (ss->engine->ops->read(ss->engine, st->name, since, size, on_read, rc) < 0) {
    free(rc);
    return;  /* the engine is down: its subscription's return starts another */
  }
  st->reading = 1;
  st->read_since = since;
  st->read_again = 0;
  ss->srv->metrics.history_reads++;
}

static stream *stream_get(rt_streams *ss, const char *name, int create) {
  stream *st = rt_map_get(&ss->streams, name);
  if (st || !create) return st;
  st = calloc(1, sizeof *st);
  if (!st || !(st->name = strdup(name)) || rt_map_put(&ss->streams, name, st) < 0) {
    if (st) free(st->name);
    free(st);
    return NULL;
  }
  st->gen = ++ss->gen;
  return st;
}

void rt_streams_watch(rt_streams *ss, const char *name) {
  if (!rt_streams_cover(ss, name)) return;
  stream *st = stream_get(ss, name, 1);
  /* The position now, before any publish of ours that may follow (same connection, so
   * answered first): what comes after it is for our subscribers. */
  if (st && !st->synced) start_read(ss, st);
}

void rt_streams_unwatch(rt_streams *ss, const char *name) {
  stream *st = rt_map_remove(&ss->streams, name);
  if (!st) return;
  stream_free(st);
  /* Nobody follows the topic here any more: the cache would go stale. */
  rt_history_forget(rt_broker_history(ss->b), name);
}

void rt_streams_subscribed(rt_streams *ss, const char *name) {
  stream *st = ss->engine ? stream_get(ss, name, 0) : NULL;
  if (st) start_read(ss, st);
}

/* ---- delivery ---------------------------------------------------------------------- */

static int decode(rt_streams *ss, const uint8_t *data, size_t len, rt_engine_msg *em) {
  char err[160];
  if (rt_engine_msg_decode(data, len, em, &ss->scratch, err, sizeof err) < 0 || !em->offset) {
    ss->srv->metrics.engine_bad_messages++;
    rt_warn(&ss->srv->log, "engine: dropped a history message: %s",
            em->offset ? err : "it has no place in the history");
    return -1;
  }
  return 0;
}

static void tell_lost(rt_streams *ss, stream *st, const char *why) {
  ss->srv->metrics.history_lost++;
  rt_info(&ss->srv->log, "%s: %s; its subscribers here are told they may have missed messages",
          st->name, why);
  rt_broker_tell_lost(ss->b, st->name);
}

static void hold(rt_streams *ss, stream *st, const uint8_t *data, size_t len) {
  held_msg *h = st->nheld < RT_STREAM_MAX_PENDING ? malloc(sizeof *h + len) : NULL;
  if (!h) {
    /* The engine's history has them: dropped here, read back after the answer. */
    st->dropped_held = 1;
    return;
  }
  h->next = NULL;
  h->len = len;
  memcpy(h->data, data, len);
  if (st->tail) st->tail->next = h;
  else st->head = h;
  st->tail = h;
  st->nheld++;
}

/* One message in its place: delivered, or dropped as seen. Returns 0, or -1 when it
 * follows a gap (then it is not taken: the caller holds it, and a read is out). */
static int take(rt_streams *ss, stream *st, const rt_engine_msg *em) {
  if (strcmp(em->epoch, st->epoch) != 0) {
    if (st->epoch[0]) {
      tell_lost(ss, st, "the history's epoch changed (Redis lost it)");
      st->last = em->offset - 1;  /* what came before in the new epoch is part of the loss */
    } else {
      st->last = 0;  /* no history was known here: the epoch began after our position */
    }
    snprintf(st->epoch, sizeof st->epoch, "%s", em->epoch);
  }
  if (em->offset <= st->last) return 0;
  if (em->offset > st->last + 1) {
    start_read(ss, st);
    return -1;
  }
  st->last = em->offset;
  rt_broker_deliver_kept(ss->b, em, 1);
  return 0;
}

void rt_streams_message(rt_streams *ss, const uint8_t *data, size_t len, const rt_engine_msg *em) {
  stream *st = stream_get(ss, em->name, 0);
  if (!st) {
    /* No exact subscriber here (it just left): delivered as is, without order checks. */
    rt_broker_deliver_kept(ss->b, em, 0);
    return;
  }
  if (st->reading || !st->synced || st->head || take(ss, st, em) < 0) hold(ss, st, data, len);
}

/* ---- a read's answer --------------------------------------------------------------- */

/* The answer's items, decoded one at a time into a visitor. */
static void each_item(rt_streams *ss, const rt_engine_history *h, uint64_t after, uint64_t upto,
                      void (*fn)(rt_streams *ss, stream *st, rt_engine_msg *em, void *ud),
                      stream *st, void *ud) {
  for (size_t i = 0; i < h->n; i++) {
    rt_engine_msg em;
    if (decode(ss, h->items[i], h->lens[i], &em) < 0) continue;
    if (strcmp(em.epoch, h->epoch) != 0 || em.offset <= after || em.offset > upto) continue;
    fn(ss, st, &em, ud);
  }
}

static void deliver_item(rt_streams *ss, stream *st, rt_engine_msg *em, void *ud) {
  if (em->offset != st->last + 1) return;
  st->last = em->offset;
  rt_broker_deliver_kept(ss->b, em, 1);
}

/* The stream catches up with the answer: missed messages delivered, or the loss told. */
static void catch_up(rt_streams *ss, stream *st, const rt_engine_history *h) {
  if (!h->epoch[0]) {
    /* Nothing kept there: nothing published yet, all of it expired, or Redis lost it. */
    if (st->synced && st->epoch[0]) tell_lost(ss, st, "the history is gone from Redis");
    st->epoch[0] = 0;
    st->last = 0;
    st->synced = 1;
    return;
  }
  if (!st->synced) {  /* the position to follow from */
    snprintf(st->epoch, sizeof st->epoch, "%s", h->epoch);
    st->last = h->top;
    st->synced = 1;
    /* Messages held meanwhile that the position already counts are still ours to
     * deliver (the read ran after they were published): follow from the first of them. */
    rt_engine_msg em;
    if (st->head && decode(ss, st->head->data, st->head->len, &em) == 0 &&
        strcmp(em.epoch, h->epoch) == 0 && em.offset <= h->top)
      st->last = em.offset - 1;
    return;
  }
  if (strcmp(st->epoch, h->epoch) != 0) {
    int knew_one = st->epoch[0] != 0;
    snprintf(st->epoch, sizeof st->epoch, "%s", h->epoch);
    if (knew_one) {
      tell_lost(ss, st, "the history's epoch changed (Redis lost it)");
      st->last = h->top;
      return;
    }
    st->last = 0;  /* no history was known here: the epoch began after our position */
  }
  if (h->top <= st->last) return;
  if (st->last + 1 < h->first) {
    tell_lost(ss, st, "messages were missed and are no longer kept");
    st->last = h->first - 1;
  }
  each_item(ss, h, st->last, h->top, deliver_item, st, NULL);
  if (st->last < h->top) {
    /* The read was limited: the rest comes with the next. */
    st->read_again = 1;
  }
}

/* Held messages, in order, until one follows a gap again (it stays first). */
static void take_held(rt_streams *ss, stream *st) {
  while (st->head && !st->reading) {
    held_msg *m = st->head;
    rt_engine_msg em;
    if (decode(ss, m->data, m->len, &em) == 0 && take(ss, st, &em) < 0) return;
    st->head = m->next;
    if (!st->head) st->tail = NULL;
    st->nheld--;
    free(m);
  }
}

static void deliver_to_waiter(rt_streams *ss, stream *st, rt_engine_msg *em, void *sub) {
  rt_broker_deliver_kept_to(ss->b, sub, em);
}

/* Waiters get what they missed: from the answer up to where the stream is, then from the
 * cache; or they are told it is gone. */
static void serve_waiters(rt_streams *ss, stream *st, waiter *list, const rt_engine_history *h) {
  rt_history *cache = rt_broker_history(ss->b);
  for (waiter *w = list, *next; w; w = next) {
    next = w->next;
    rt_sub *s = w->sub;
    if (!s->dead) {
      int ok = h && !h->err && h->epoch[0] && strcmp(w->epoch, h->epoch) == 0 &&
               strcmp(st->epoch, h->epoch) == 0 && w->since <= h->top &&
               (w->since + 1 >= h->first || w->since == h->top);
      uint64_t upto = ok && h->top < st->last ? h->top : st->last;
      if (ok) {
        uint64_t oldest = rt_history_oldest(cache, st->name);
        /* The cache must reach from the answer's end to where the stream is. */
        if (upto < st->last && (!oldest || oldest > upto + 1)) ok = 0;
      }
      s->held = 0;
      if (ok) {
        each_item(ss, h, w->since, upto, deliver_to_waiter, st, s);
        if (upto < st->last && !s->dead) rt_broker_replay_cached(ss->b, s, st->epoch, upto);
      }
      if (!s->dead && s->recovered) s->recovered(s, ok);
    }
    free(w);
  }
}

/* What a read brought from further back than the cache goes into it, so the next
 * subscriber recovering from there is served here. */
static void backfill(rt_streams *ss, stream *st, const rt_engine_history *h) {
  if (!h->n || !st->synced || strcmp(h->epoch, st->epoch) != 0) return;
  rt_history *cache = rt_broker_history(ss->b);
  uint64_t oldest = rt_history_oldest(cache, st->name);
  rt_engine_msg em;
  if (!oldest) {
    /* Nothing cached: the answer is, when it ends where the stream is. */
    if (h->top != st->last) return;
    for (size_t i = 0; i < h->n; i++)
      if (decode(ss, h->items[i], h->lens[i], &em) == 0) rt_broker_cache_kept(ss->b, &em, 0);
    return;
  }
  for (size_t i = h->n; i-- > 0;) {
    if (decode(ss, h->items[i], h->lens[i], &em) < 0 || em.offset >= oldest) continue;
    if (em.offset + 1 != oldest || rt_broker_cache_kept(ss->b, &em, 1) < 0) return;
    if (rt_history_oldest(cache, st->name) != em.offset) return;  /* full: no further */
    oldest = em.offset;
  }
}

static void on_read(void *ud, const rt_engine_history *h) {
  read_ctx *rc = ud;
  rt_streams *ss = rc->ss;
  stream *st = rt_map_get(&ss->streams, rc->name);
  if (!st || st->gen != rc->gen) {
    free(rc);
    return;  /* the topic was dropped meanwhile */
  }
  st->reading = 0;
  if (h->err) {
    rt_warn(&ss->srv->log, "%s: reading the history failed: %s", st->name, h->err);
  } else {
    catch_up(ss, st, h);
  }
  if (st->dropped_held) {
    st->dropped_held = 0;
    st->read_again = 1;
  }
  /* Pinned: deliveries may close connections and unsubscribe, which must not free st. */
  rt_topic *t = rt_broker_pin(ss->b, st->name);
  if (st->synced && !st->read_again) take_held(ss, st);
  /* Waiters whose since the read covered are served; the rest wait for the next. */
  waiter *ready = NULL, **tail = &ready;
  for (waiter **p = &st->waiters; *p;) {
    waiter *w = *p;
    /* A client ahead of the answer (it saw more elsewhere) may have come after Redis ran
     * this read: the next read decides, a few times at most (its place may be bogus). */
    int early = !h->err && w->since > h->top && !strcmp(w->epoch, h->epoch) &&
                w->early_answers++ < RT_STREAM_EARLY_ANSWERS;
    if (!early && (h->err || w->since >= rc->since)) {
      *p = w->next;
      w->next = NULL;
      *tail = w;
      tail = &w->next;
    } else {
      p = &w->next;
    }
  }
  if (ready) serve_waiters(ss, st, ready, h->err ? NULL : h);
  if (!h->err) backfill(ss, st, h);
  if ((st->read_again || st->waiters) && !st->reading) start_read(ss, st);
  free(rc);
  rt_broker_unpin(ss->b, t);  /* may drop the topic, and st with it */
}

/* ---- recovering subscribers --------------------------------------------------------- */

int rt_streams_recover(rt_streams *ss, rt_sub *s, const char *epoch, uint64_t since) {
  stream *st = stream_get(ss, rt_sub_name(s), 0);
  if (!st) return 0;
  if (st->synced && strcmp(st->epoch, epoch) == 0) {
    if (since == st->last) return 1;
    /* Served from the cache when it reaches back, even while a read is out: what the read
     * brings (a gap filled, a position checked) reaches it live like everyone else. */
    uint64_t oldest = rt_history_oldest(rt_broker_history(ss->b), st->name);
    if (since < st->last && oldest && oldest <= since + 1)
      return rt_broker_replay_cached(ss->b, s, epoch, since);
  }
  waiter *w = calloc(1, sizeof *w);
  if (!w || strlen(epoch) > RT_ENGINE_EPOCH_MAX) {
    free(w);
    return 0;
  }
  w->sub = s;
  w->since = since;
  snprintf(w->epoch, sizeof w->epoch, "%s", epoch);
  w->next = st->waiters;
  st->waiters = w;
  s->held = 1;
  ss->srv->metrics.history_reads_waiting++;
  /* A read out from this far back serves it too (on_read serves every waiter it covers);
   * asking for another would cost one more read per wave of a reconnect storm. */
  if (!st->reading || since < st->read_since) start_read(ss, st);
  return RT_STREAM_PENDING;
}

int rt_streams_read(rt_streams *ss, const char *name, uint64_t since, size_t limit,
                    void (*fn)(void *ud, const rt_engine_history *h), void *ud) {
  if (!rt_streams_cover(ss, name)) return -1;
  ss->srv->metrics.history_reads++;
  return ss->engine->ops->read(ss->engine, name, since, limit, fn, ud);
}

uint64_t rt_streams_position(rt_streams *ss, const char *name, const char **epoch) {
  stream *st = stream_get(ss, name, 0);
  *epoch = st && st->synced ? st->epoch : "";
  return st && st->synced ? st->last : 0;
}

void rt_streams_sub_gone(rt_streams *ss, rt_sub *s) {
  if (!s->held) return;
  stream *st = stream_get(ss, rt_sub_name(s), 0);
  for (waiter **p = st ? &st->waiters : NULL; p && *p; p = &(*p)->next)
    if ((*p)->sub == s) {
      waiter *w = *p;
      *p = w->next;
      free(w);
      break;
    }
  s->held = 0;
}
