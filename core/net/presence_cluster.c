#include "presence_cluster.h"

#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker.h"
#include "base/map.h"
#include "engine.h"
#include "engine_msg.h"
#include "engine_redis.h"
#include "presence.h"
#include "presence_mirror.h"
#include "server_int.h"
#include "workers.h"

#define MAX_LOAD_TOPICS 100000   /* topics read from one shard's index per reload */
#define REGISTER_BATCH 512       /* members per HSET when a node writes its members again */
/* A node says it is alive every TTL/3 and the silent are looked for every TTL/10: one
 * silent for 0.9 TTL is dropped, so a dead node is gone within its TTL, and a live one
 * may be late by more than half a TTL before it is taken for dead. */
#define SILENT_AFTER 0.9

/* News kinds, in the "k" header of an engine_msg whose name is the topic ("-": none). */
#define K_JOIN "j"
#define K_LEAVE "l"
#define K_ALIVE "a"
#define K_UP "u"

struct rt_pcluster {
  rt_server *srv;
  rt_presence *p;
  rt_pmirror *mirror;
  rt_engine *e;
  int redis;               /* else the supervisor's link */
  double ttl;
  ev_timer refresh;        /* every ttl/3: alive, refresh Redis */
  ev_timer expire;         /* every ttl/10: drop the members of the silent */
  rt_buf out, scratch;
  rt_map written;          /* topics whose hash of ours Redis may hold: cleared when we come up */
  char keys[64];           /* "rt-presence:" or "rt-presence:db<N>:" */
  char channel[96];
};

/* ---- news -------------------------------------------------------------------------- */

static void send_news(rt_pcluster *c, int shard, const char *kind, const char *topic,
                      uint64_t conn, const char *user) {
  char conn_s[24], ttl_s[32];
  snprintf(conn_s, sizeof conn_s, "%" PRIu64, conn);
  snprintf(ttl_s, sizeof ttl_s, "%.3f", c->ttl);
  const char *node = rt_pmirror_self(c->mirror);
  rt_engine_msg m = {.origin = c->e->node_id, .name = topic ? topic : "-", .body = (const uint8_t *)"",
                     .body_len = 0};
  const char *hv[][2] = {{"k", kind}, {"n", node}, {"t", ttl_s}, {"c", conn_s}, {"u", user}};
  size_t nh = user ? 5 : topic ? 4 : 3;
  for (size_t i = 0; i < nh; i++)
    m.headers[i] = (rt_header){hv[i][0], 1, hv[i][1], strlen(hv[i][1])};
  m.nheaders = nh;
  c->out.len = c->out.off = 0;
  if (rt_engine_msg_encode(&c->out, &m) < 0) return;
  if (!c->redis) {
    rt_worker_send_presence(c->srv, rt_buf_start(&c->out), c->out.len);
    return;
  }
  const char *argv[3] = {"PUBLISH", c->channel, (const char *)rt_buf_start(&c->out)};
  size_t lens[3] = {7, strlen(c->channel), c->out.len};
  rt_engine_redis_command(c->e, shard, NULL, NULL, 3, argv, lens);
}

static int shard_of(rt_pcluster *c, const char *topic) {
  return c->redis ? rt_engine_redis_shard_of(c->e, topic) : 0;
}

static int shards(rt_pcluster *c) { return c->redis ? rt_engine_redis_shards(c->e) : 1; }

/* A member the mirror dropped by itself: the app hears it left. */
static void tell_gone(void *ud, const char *topic, const rt_pmember *m) {
  rt_pcluster *c = ud;
  rt_presence_tell(c->p, topic, m->node, m->conn, m->user, 0);
}

static void remote_join(rt_pcluster *c, const char *topic, const char *node, uint64_t conn,
                        const char *user) {
  if (rt_pmirror_remote_join(c->mirror, topic, node, conn, user) == 1)
    rt_presence_tell(c->p, topic, node, conn, user, 1);
}

static void answer_up(rt_pcluster *c, int shard);
static void load_shard(rt_pcluster *c, int shard);

static const char *header(const rt_engine_msg *m, const char *name) {
  for (size_t i = 0; i < m->nheaders; i++)
    if (strcmp(m->headers[i].name, name) == 0) return m->headers[i].value;
  return NULL;
}

static void on_news(rt_pcluster *c, int shard, const uint8_t *data, size_t len) {
  rt_engine_msg m;
  char err[128];
  if (rt_engine_msg_decode(data, len, &m, &c->scratch, err, sizeof err) < 0) {
    c->srv->metrics.engine_bad_messages++;
    return;
  }
  const char *kind = header(&m, "k"), *node = header(&m, "n"), *ttl_s = header(&m, "t");
  const char *conn_s = header(&m, "c"), *user = header(&m, "u");
  if (!kind || !node || !ttl_s || m.origin == c->e->node_id ||
      strcmp(node, rt_pmirror_self(c->mirror)) == 0)
    return;
  double ttl = strtod(ttl_s, NULL);
  if (!(ttl > 0) || ttl > 86400) return;
  int known = rt_pmirror_knows(c->mirror, node);
  rt_pmirror_heard(c->mirror, node, ev_now(c->srv->loop), ttl * SILENT_AFTER);
  if (!known && strcmp(kind, K_ALIVE) == 0) {
    /* Alive, and news to us: a node that has just started, or one we dropped for a
     * silence that was only a slow loop. Read what it has (once: it is known now). */
    if (c->redis) load_shard(c, shard);
    else send_news(c, 0, K_UP, NULL, 0, NULL);
    return;
  }
  int topical = strcmp(kind, K_JOIN) == 0 || strcmp(kind, K_LEAVE) == 0;
  if (topical) {
    if (!conn_s || !rt_presence_covers(c->p, m.name)) return;
    uint64_t conn = strtoull(conn_s, NULL, 10);
    if (kind[0] == 'j') remote_join(c, m.name, node, conn, user);
    else if (rt_pmirror_remote_leave(c->mirror, m.name, node, conn) == 1)
      rt_presence_tell(c->p, m.name, node, conn, user, 0);
  } else if (strcmp(kind, K_UP) == 0) {
    /* Someone (re)started or reconnected: with Redis, what it wrote is there to read; over
     * the link, tell it what we have. */
    if (c->redis) load_shard(c, shard);
    else answer_up(c, shard);
  }
}

static void on_redis_message(void *ud, int shard, const char *data, size_t len) {
  on_news(ud, shard, (const uint8_t *)data, len);
}

void rt_pcluster_from_link(rt_pcluster *c, const uint8_t *data, size_t len) {
  if (c && !c->redis) on_news(c, 0, data, len);
}

/* ---- Redis: keys ------------------------------------------------------------------- */

static int key_members(rt_pcluster *c, char *buf, size_t len, const char *node, const char *topic) {
  int n = snprintf(buf, len, "%sm:%s:%s", c->keys, node, topic);
  return n < 0 || (size_t)n >= len ? -1 : n;
}

static int key_nodes(rt_pcluster *c, char *buf, size_t len, const char *topic) {
  int n = snprintf(buf, len, "%sn:%s", c->keys, topic);
  return n < 0 || (size_t)n >= len ? -1 : n;
}

#define KEYLEN (RT_BROKER_MAX_NAME + 400)

static int command(rt_pcluster *c, int shard, void (*fn)(void *, redisReply *, void *), void *arg,
                   int argc, const char **argv) {
  size_t lens[8];
  if (argc > 8) return -1;
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  return rt_engine_redis_command(c->e, shard, fn, arg, argc, argv, lens);
}

/* What a reply is about: the engine frees it after the reply. */
typedef struct load_arg {
  unsigned gen;
  int shard;
  char node[256];
  char topic[];
} load_arg;

static load_arg *load_arg_new(const char *topic, const char *node, unsigned gen, int shard) {
  size_t tl = strlen(topic) + 1;
  load_arg *a = malloc(sizeof *a + tl);
  if (!a) return NULL;
  a->gen = gen;
  a->shard = shard;
  snprintf(a->node, sizeof a->node, "%s", node ? node : "");
  memcpy(a->topic, topic, tl);
  return a;
}

static void register_topic(rt_pcluster *c, int shard, const char *topic);

/* EXPIRE answered 0: our hash is gone (we were stopped, or away longer than the TTL, and
 * Redis expired it): write it again and have the others read it. */
static void on_expire_reply(void *ud, redisReply *r, void *arg) {
  rt_pcluster *c = ud;
  load_arg *a = arg;
  if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 0 ||
      !rt_pmirror_local_count(c->mirror, a->topic))
    return;
  register_topic(c, a->shard, a->topic);
  send_news(c, a->shard, K_UP, NULL, 0, NULL);
}

/* Our hash of topic expires after the TTL, and the indexes say so. */
static void refresh_topic(rt_pcluster *c, const char *topic) {
  char mk[KEYLEN], nk[KEYLEN], tk[128], score[32], ttl[32], old[32];
  const char *self = rt_pmirror_self(c->mirror);
  int shard = shard_of(c, topic);
  if (key_members(c, mk, sizeof mk, self, topic) < 0 || key_nodes(c, nk, sizeof nk, topic) < 0) return;
  snprintf(tk, sizeof tk, "%stopics", c->keys);
  double now = ev_time();
  snprintf(score, sizeof score, "%.0f", now + c->ttl + 1);
  snprintf(old, sizeof old, "%.0f", now - c->ttl);
  snprintf(ttl, sizeof ttl, "%ld", (long)(c->ttl + 1));
  command(c, shard, on_expire_reply, load_arg_new(topic, NULL, 0, shard), 3,
          (const char *[]){"EXPIRE", mk, ttl});
  command(c, shard, NULL, NULL, 4, (const char *[]){"ZADD", nk, score, self});
  command(c, shard, NULL, NULL, 4, (const char *[]){"ZADD", tk, score, topic});
  command(c, shard, NULL, NULL, 4, (const char *[]){"ZREMRANGEBYSCORE", nk, "-inf", old});
}

static void hset_member(rt_pcluster *c, const char *topic, uint64_t conn, const char *user) {
  char mk[KEYLEN], conn_s[24];
  if (key_members(c, mk, sizeof mk, rt_pmirror_self(c->mirror), topic) < 0) return;
  snprintf(conn_s, sizeof conn_s, "%" PRIu64, conn);
  /* The value is the user; "" for none (an empty user name reads back as none). */
  command(c, shard_of(c, topic), NULL, NULL, 4, (const char *[]){"HSET", mk, conn_s, user ? user : ""});
  rt_map_put(&c->written, topic, (void *)1);
}

/* ---- Redis: writing our members again when a shard comes up ----------------------- */

typedef struct reg {
  rt_pcluster *c;
  int shard;
  const char **argv;
  size_t *lens;
  char (*conns)[24];
  int argc;
} reg;

static void reg_flush(reg *r) {
  if (r->argc > 2) rt_engine_redis_command(r->c->e, r->shard, NULL, NULL, r->argc, r->argv, r->lens);
  r->argc = 2;
}

static void register_member(void *ud, const char *topic, const rt_pmember *m) {
  reg *r = ud;
  if (!m->local) return;
  int i = (r->argc - 2) / 2;
  snprintf(r->conns[i], sizeof r->conns[i], "%" PRIu64, m->conn);
  r->argv[r->argc] = r->conns[i];
  r->lens[r->argc] = strlen(r->conns[i]);
  r->argc++;
  r->argv[r->argc] = m->user ? m->user : "";
  r->lens[r->argc] = m->user ? strlen(m->user) : 0;
  r->argc++;
  if (r->argc >= 2 + 2 * REGISTER_BATCH) reg_flush(r);
}

/* Our hash of topic is replaced by what we have now: a leave we could not write while
 * the shard was away must not stay behind. */
static void register_topic(rt_pcluster *c, int shard, const char *topic) {
  char mk[KEYLEN];
  if (shard_of(c, topic) != shard || key_members(c, mk, sizeof mk, rt_pmirror_self(c->mirror), topic) < 0)
    return;
  command(c, shard, NULL, NULL, 2, (const char *[]){"DEL", mk});
  if (!rt_pmirror_local_count(c->mirror, topic)) {
    rt_map_remove(&c->written, topic);
    return;
  }
  const char **argv = malloc((2 + 2 * REGISTER_BATCH) * sizeof *argv);
  size_t *lens = malloc((2 + 2 * REGISTER_BATCH) * sizeof *lens);
  char (*conns)[24] = malloc(REGISTER_BATCH * sizeof *conns);
  if (argv && lens && conns) {
    argv[0] = "HSET";
    lens[0] = 4;
    argv[1] = mk;
    lens[1] = strlen(mk);
    reg r = {c, shard, argv, lens, conns, 2};
    rt_pmirror_each(c->mirror, topic, register_member, &r);
    reg_flush(&r);
    refresh_topic(c, topic);
  }
  free(argv);
  free(lens);
  free(conns);
}

static void note_topic(void *ud, const char *topic, size_t nlocal) {
  rt_pcluster *c = ud;
  if (nlocal) rt_map_put(&c->written, topic, (void *)1);
}

/* ---- Redis: reading a shard -------------------------------------------------------- */

static void on_members(void *ud, redisReply *r, void *arg) {
  rt_pcluster *c = ud;
  load_arg *a = arg;
  if (!r || r->type != REDIS_REPLY_ARRAY) return;
  /* A node first seen here lives a TTL unless it says more; one we know keeps the time
   * it last said it was alive (its hash may outlive it by a TTL). */
  if (r->elements && !rt_pmirror_knows(c->mirror, a->node))
    rt_pmirror_heard(c->mirror, a->node, ev_now(c->srv->loop), c->ttl * SILENT_AFTER);
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    remote_join(c, a->topic, a->node, strtoull(f->str, NULL, 10), v->len ? v->str : NULL);
  }
  rt_pmirror_snapshot_end(c->mirror, a->topic, a->node, a->gen, tell_gone, c);
}

static void on_nodes(void *ud, redisReply *r, void *arg) {
  rt_pcluster *c = ud;
  load_arg *a = arg;
  if (!r || r->type != REDIS_REPLY_ARRAY) return;
  int shard = shard_of(c, a->topic);
  const char *self = rt_pmirror_self(c->mirror);
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *n = r->element[i];
    char mk[KEYLEN];
    if (n->type != REDIS_REPLY_STRING || strcmp(n->str, self) == 0 || n->len >= sizeof a->node ||
        key_members(c, mk, sizeof mk, n->str, a->topic) < 0)
      continue;
    command(c, shard, on_members, load_arg_new(a->topic, n->str, a->gen, shard), 2, (const char *[]){"HGETALL", mk});
  }
}

static void load_topic(rt_pcluster *c, const char *topic, unsigned gen) {
  char nk[KEYLEN];
  if (!rt_presence_covers(c->p, topic) || key_nodes(c, nk, sizeof nk, topic) < 0) return;
  command(c, shard_of(c, topic), on_nodes, load_arg_new(topic, NULL, gen, shard_of(c, topic)), 4,
          (const char *[]){"ZRANGE", nk, "0", "-1"});
}

typedef struct mirror_topics {
  rt_pcluster *c;
  int shard;
  unsigned gen;
} mirror_topics;

static void load_mirrored(void *ud, const char *topic, size_t nlocal) {
  mirror_topics *mt = ud;
  if (shard_of(mt->c, topic) == mt->shard) load_topic(mt->c, topic, mt->gen);
}

static void on_topics(void *ud, redisReply *r, void *arg) {
  rt_pcluster *c = ud;
  load_arg *a = arg;
  if (!r || r->type != REDIS_REPLY_ARRAY) return;
  int shard = a->shard;
  for (size_t i = 0; i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_STRING) load_topic(c, r->element[i]->str, a->gen);
  /* Topics that left Redis altogether (every other node gone) are read too: their remote
   * members then leave the mirror. Read twice is harmless. */
  mirror_topics mt = {c, shard, a->gen};
  rt_pmirror_each_topic(c->mirror, load_mirrored, &mt);
}

static void load_shard(rt_pcluster *c, int shard) {
  char tk[128], min[32], most[16];
  snprintf(tk, sizeof tk, "%stopics", c->keys);
  snprintf(min, sizeof min, "%.0f", ev_time() - c->ttl);
  snprintf(most, sizeof most, "%d", MAX_LOAD_TOPICS);
  unsigned gen = rt_pmirror_snapshot_begin(c->mirror);
  command(c, shard, on_topics, load_arg_new("-", NULL, gen, shard), 7,
          (const char *[]){"ZRANGEBYSCORE", tk, min, "+inf", "LIMIT", "0", most});
}

static void on_shard_up(void *ud, int shard) {
  rt_pcluster *c = ud;
  rt_pmirror_each_topic(c->mirror, note_topic, c);
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&c->written, &i, &k, &v);) register_topic(c, shard, k);
  send_news(c, shard, K_UP, NULL, 0, NULL);
  load_shard(c, shard);
}

/* ---- the link: answering a worker that came up ------------------------------------- */

static void answer_member(void *ud, const char *topic, const rt_pmember *m) {
  if (m->local) send_news(ud, 0, K_JOIN, topic, m->conn, m->user);
}

static void answer_topic(void *ud, const char *topic, size_t nlocal) {
  rt_pcluster *c = ud;
  if (nlocal) rt_pmirror_each(c->mirror, topic, answer_member, c);
}

static void answer_up(rt_pcluster *c, int shard) { rt_pmirror_each_topic(c->mirror, answer_topic, c); }

/* ---- the round every TTL/3 --------------------------------------------------------- */

static void refresh_local(void *ud, const char *topic, size_t nlocal) {
  rt_pcluster *c = ud;
  if (nlocal) refresh_topic(c, topic);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_pcluster *c = w->data;
  for (int i = 0; i < shards(c); i++)
    if (!c->redis || rt_engine_redis_is_up(c->e, i)) send_news(c, i, K_ALIVE, NULL, 0, NULL);
  if (c->redis) rt_pmirror_each_topic(c->mirror, refresh_local, c);
}

static void on_expire(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_pcluster *c = w->data;
  /* While a shard is down we hear nobody's news through it: who fell silent is not known
   * to be gone. The reload when it is back settles it. */
  for (int i = 0; c->redis && i < shards(c); i++)
    if (!rt_engine_redis_is_up(c->e, i)) return;
  rt_pmirror_expire(c->mirror, ev_now(loop), tell_gone, c);
}

/* ---- this process's joins and leaves ----------------------------------------------- */

void rt_pcluster_joined(rt_pcluster *c, const char *topic, uint64_t conn, const char *user) {
  if (!c) return;
  if (c->redis) {
    hset_member(c, topic, conn, user);
    if (rt_pmirror_local_count(c->mirror, topic) == 1) refresh_topic(c, topic);
  }
  send_news(c, shard_of(c, topic), K_JOIN, topic, conn, user);
}

void rt_pcluster_left(rt_pcluster *c, const char *topic, uint64_t conn, const char *user) {
  if (!c) return;
  if (c->redis) {
    char mk[KEYLEN], conn_s[24];
    snprintf(conn_s, sizeof conn_s, "%" PRIu64, conn);
    /* Redis deletes a hash with its last field: once that went out, nothing of ours is
     * left there to clear when the shard comes back. */
    if (key_members(c, mk, sizeof mk, rt_pmirror_self(c->mirror), topic) == 0 &&
        command(c, shard_of(c, topic), NULL, NULL, 3, (const char *[]){"HDEL", mk, conn_s}) == 0 &&
        !rt_pmirror_local_count(c->mirror, topic))
      rt_map_remove(&c->written, topic);
  }
  send_news(c, shard_of(c, topic), K_LEAVE, topic, conn, user);
}

/* ---- setup ------------------------------------------------------------------------- */

void rt_pcluster_set_ttl(rt_pcluster *c, double ttl) {
  if (!c || !(ttl > 0) || ttl == c->ttl) return;
  c->ttl = ttl;
  c->refresh.repeat = ttl / 3;
  ev_timer_again(c->srv->loop, &c->refresh);
  c->expire.repeat = ttl / 10;
  ev_timer_again(c->srv->loop, &c->expire);
}

rt_pcluster *rt_pcluster_new(rt_server *srv, rt_presence *p, rt_pmirror *mirror, rt_engine *e,
                             double ttl) {
  int redis = rt_engine_is_redis(e);
  if (!e || (!redis && strcmp(e->ops->kind, "local") != 0)) return NULL;
  rt_pcluster *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  *c = (rt_pcluster){.srv = srv, .p = p, .mirror = mirror, .e = e, .redis = redis, .ttl = ttl};
  ev_timer_init(&c->refresh, on_refresh, ttl / 3, ttl / 3);
  ev_timer_init(&c->expire, on_expire, ttl / 10, ttl / 10);
  c->refresh.data = c->expire.data = c;
  ev_timer_start(srv->loop, &c->refresh);
  ev_timer_start(srv->loop, &c->expire);
  ev_unref(srv->loop);  /* the timers alone do not keep the loop running */
  ev_unref(srv->loop);
  if (redis) {
    /* "rt:" -> "rt-presence:", "rt:db3:" -> "rt-presence:db3:": never a topic's channel. */
    snprintf(c->keys, sizeof c->keys, "rt-presence:%s", rt_engine_redis_prefix(e) + 3);
    snprintf(c->channel, sizeof c->channel, "%snews", c->keys);
    rt_engine_redis_ext ext = {on_shard_up, on_redis_message, c, c->channel};
    rt_engine_redis_attach(e, &ext);
  } else {
    send_news(c, 0, K_UP, NULL, 0, NULL);
  }
  return c;
}

void rt_pcluster_free(rt_pcluster *c) {
  if (!c) return;
  if (c->redis) rt_engine_redis_attach(c->e, NULL);
  ev_ref(c->srv->loop);
  ev_ref(c->srv->loop);
  ev_timer_stop(c->srv->loop, &c->refresh);
  ev_timer_stop(c->srv->loop, &c->expire);
  rt_buf_free(&c->out);
  rt_buf_free(&c->scratch);
  rt_map_free(&c->written);
  free(c);
}
