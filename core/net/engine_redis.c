/* The Redis engine: Redis pub/sub between the nodes of a deployment, through hiredis and
 * its libev adapter.
 *
 * Each shard (one Redis) gets two connections: one in subscribe mode, one that PUBLISHes.
 * A name goes to the shard of its hash; patterns are PSUBSCRIBEd on every shard, since the
 * names they match live on all of them. Channels are "rt:" + name ("rt:db<N>:" for a
 * database other than 0: Redis pub/sub ignores databases, so the number namespaces the
 * channels instead).
 *
 * Faults: a shard that cannot be reached (at start or later) is retried with backoff;
 * while it is down, publishes to it fail at once (the caller reports it), nothing is
 * queued; when it is back, every name this node still wants is subscribed again. The
 * outage and its end are logged once each.
 *
 * History (stream.h) lives in the shard of its topic: a list of the last messages and a
 * hash with the epoch and the latest offset. Two Lua scripts, loaded on every (re)connect
 * of the command connection, do a publish (next offset, append, trim, expire, PUBLISH the
 * message with its place) and a read atomically, so every node sees the same offsets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <openssl/sha.h>

#include "broker.h"
#include "engine.h"
#include "engine_redis.h"
#include "base/map.h"
#include "server_int.h"

#define MAX_SHARDS 64
#define MAX_INFLIGHT 65536                 /* PUBLISHes not yet answered, per shard */
#define MAX_INFLIGHT_BYTES (32u << 20)
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0
#define MAX_READ_ITEMS 100000
/* How long a topic's epoch and latest offset outlive its last publish: a client that comes
 * back later than the messages' ttl but within this still learns it missed nothing. */
#define META_TTL_MS (24 * 3600 * 1000.0)

/* KEYS: history list, meta hash. ARGV: channel, message, size, ttl ms, meta ttl ms. The
 * epoch is made from Redis's clock when the meta hash is new (first publish, or after it
 * expired or Redis lost it): a restart or a flush changes it. */
static const char PUBLISH_SCRIPT[] =
    "local e = redis.call('hget', KEYS[2], 'e')\n"
    "if not e then\n"
    "  local t = redis.call('time')\n"
    "  e = string.format('%08x%05x', tonumber(t[1]), tonumber(t[2]))\n"
    "  redis.call('hset', KEYS[2], 'e', e)\n"
    "  redis.call('del', KEYS[1])\n"
    "end\n"
    "local o = redis.call('hincrby', KEYS[2], 'o', 1)\n"
    "local m = 'RH' .. e .. ':' .. o .. '\\n' .. ARGV[2]\n"
    "redis.call('rpush', KEYS[1], m)\n"
    "redis.call('ltrim', KEYS[1], -tonumber(ARGV[3]), -1)\n"
    "redis.call('pexpire', KEYS[1], ARGV[4])\n"
    "redis.call('pexpire', KEYS[2], ARGV[5])\n"
    "redis.call('publish', ARGV[1], m)\n"
    "return o\n";

/* KEYS: history list, meta hash. ARGV: since, limit. -> { epoch, top, first, items... } */
static const char READ_SCRIPT[] =
    "local m = redis.call('hmget', KEYS[2], 'e', 'o')\n"
    "if not m[1] then return { '', 0, 1 } end\n"
    "local top = tonumber(m[2])\n"
    "local first = top - redis.call('llen', KEYS[1]) + 1\n"
    "local since = tonumber(ARGV[1])\n"
    "local from = since - first + 1\n"
    "if from < 0 then from = 0 end\n"
    "local r = { m[1], top, first }\n"
    "if since >= top then return r end\n"
    "local to = -1\n"
    "if tonumber(ARGV[2]) > 0 then to = from + tonumber(ARGV[2]) - 1 end\n"
    "for _, v in ipairs(redis.call('lrange', KEYS[1], from, to)) do r[#r + 1] = v end\n"
    "return r\n";

typedef struct redis_engine redis_engine;

typedef struct shard {
  redis_engine *e;
  int index;
  char host[256];
  int port;
  char label[300];        /* host:port, for logs and metrics */
  redisAsyncContext *pub, *sub;
  int pub_up, sub_up;     /* connected (not just connecting) */
  int was_up;             /* both were up: a loss now is an outage */
  int started;            /* tried at least once */
  ev_timer retry;
  double backoff;
  ev_tstamp down_since, up_since;
  size_t inflight, inflight_bytes;
  int scripts_loaded;     /* SCRIPT LOADs sent on this command connection */
  long refused;           /* PUBLISHes answered with an error: logged at powers of two */
  long flaps;             /* losses within 5 s of coming up: logged at powers of two */
} shard;

struct redis_engine {
  rt_engine base;
  shard shards[MAX_SHARDS];
  int nshards;
  char prefix[32];
  rt_map channels;        /* name -> (void *)1: names with local subscribers */
  rt_map patterns;        /* glob -> refs: broker patterns map onto globs many to one */
  int db;
  char publish_sha[41], read_sha[41];
  int freeing;
  struct ext_state *ext;  /* the attached module (engine_redis.h), or NULL */
};

static void ext_shard_up(shard *s);

/* ---- names ------------------------------------------------------------------------- */

static shard *shard_of(redis_engine *e, const char *name) {
  return &e->shards[rt_engine_hash(name) % (uint64_t)e->nshards];
}

/* prefix + name into buf; -1 when too long. */
static int channel_name(redis_engine *e, const char *name, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s%s", e->prefix, name);
  return n < 0 || (size_t)n >= len ? -1 : n;
}

static int pattern_glob(redis_engine *e, const char *pattern, char *buf, size_t len) {
  int p = channel_name(e, "", buf, len);  /* the prefix has no glob characters */
  if (p < 0 || rt_engine_glob(pattern, buf + p, len - (size_t)p) < 0) return -1;
  return 0;
}

/* ---- subscribe side ---------------------------------------------------------------- */

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

static void send_sub(shard *s, const char *cmd, const char *what) {
  if (!s->sub_up) return;  /* sent when the connection comes up */
  /* As two arguments: a name may hold spaces. */
  const char *argv[2] = {cmd, what};
  const size_t lens[2] = {strlen(cmd), strlen(what)};
  if (redisAsyncCommandArgv(s->sub, on_sub_reply, s, 2, argv, lens) != REDIS_OK)
    rt_warn(&s->e->base.srv->log, "engine: redis %s: %s %s failed: %s", s->label, cmd, what,
            s->sub->errstr ? s->sub->errstr : "?");
}

static void subscribe_all(shard *s, int *nch, int *npat) {
  redis_engine *e = s->e;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&e->channels, &i, &k, &v);)
    if (shard_of(e, k + strlen(e->prefix)) == s) {
      send_sub(s, "SUBSCRIBE", k);
      (*nch)++;
    }
  for (size_t i = 0; rt_map_next(&e->patterns, &i, &k, &v);) {
    send_sub(s, "PSUBSCRIBE", k);
    (*npat)++;
  }
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = privdata;
  redisReply *reply = r;
  if (!reply || s->e->freeing) return;
  rt_server *srv = s->e->base.srv;
  if (reply->type == REDIS_REPLY_ERROR) {
    rt_warn(&srv->log, "engine: redis %s answered an error: %s", s->label, reply->str);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING) {
    rt_warn(&srv->log, "engine: redis %s: unexpected reply on the subscriber connection", s->label);
    return;
  }
  const char *kind = reply->element[0]->str;
  rt_broker *b = srv->broker;
  if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
    rt_broker_from_engine(b, (const uint8_t *)reply->element[2]->str, reply->element[2]->len,
                          RT_ENGINE_EXACT, NULL);
  } else if (strcmp(kind, "pmessage") == 0 && reply->elements >= 4 &&
             reply->element[1]->type == REDIS_REPLY_STRING &&
             reply->element[3]->type == REDIS_REPLY_STRING) {
    size_t pl = strlen(s->e->prefix);
    if (strncmp(reply->element[1]->str, s->e->prefix, pl) != 0) return;
    const char *glob = reply->element[1]->str + pl;
    rt_broker_from_engine(b, (const uint8_t *)reply->element[3]->str, reply->element[3]->len,
                          RT_ENGINE_PATTERN, glob);
  } else if (strcmp(kind, "subscribe") == 0 && reply->element[1]->type == REDIS_REPLY_STRING) {
    /* From now on every message of the channel reaches us: a history's reader may look
     * at what it missed before this point. */
    size_t pl = strlen(s->e->prefix);
    if (strncmp(reply->element[1]->str, s->e->prefix, pl) == 0)
      rt_broker_engine_subscribed(b, reply->element[1]->str + pl);
  } else if ((strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "punsubscribe") == 0) &&
             reply->element[1]->type == REDIS_REPLY_STRING) {
    /* hiredis forgets a channel's callback when its UNSUBSCRIBE is answered, even when the
     * name was subscribed again meanwhile: then subscribe once more. */
    int pat = kind[0] == 'p';
    const char *name = reply->element[1]->str;
    if (rt_map_get(pat ? &s->e->patterns : &s->e->channels, name))
      send_sub(s, pat ? "PSUBSCRIBE" : "SUBSCRIBE", name);
  }
}

/* ---- connections ------------------------------------------------------------------- */

static void connect_shard(shard *s);

static void schedule_retry(shard *s) {
  if (s->e->freeing || ev_is_active(&s->retry)) return;
  ev_timer_set(&s->retry, s->backoff, 0);
  ev_timer_start(s->e->base.srv->loop, &s->retry);
  s->backoff = s->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : s->backoff * 2;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) { connect_shard(w->data); }

/* One of the two connections went away (or never came): an outage starts if the shard
 * was up. */
static void shard_lost(shard *s, const char *why) {
  rt_server *srv = s->e->base.srv;
  /* A Redis that accepts and then drops us at once (or speaks garbage) must not get a
   * reconnect, and a log line, every 0.1 s: the backoff restarts only after a good run. */
  if (s->was_up && ev_now(srv->loop) - s->up_since > 5) {
    s->backoff = BACKOFF_MIN;
    s->flaps = 0;
  } else if (s->was_up) {
    s->flaps++;  /* it keeps dropping us (an error it answers, a password it wants) */
  }
  if (s->was_up) {
    s->was_up = 0;
    s->down_since = ev_now(srv->loop);
    srv->metrics.engine_outages++;
    if (!(s->flaps & (s->flaps - 1)))
      rt_warn(&srv->log, "engine: redis %s lost (%s)%s; local delivery goes on, publishes to it "
              "fail until it is back", s->label, why, s->flaps ? ", again soon after coming up" : "");
  }
  schedule_retry(s);
}

static void shard_maybe_up(shard *s) {
  if (!s->pub_up || !s->sub_up) return;
  rt_server *srv = s->e->base.srv;
  int nch = 0, npat = 0;
  subscribe_all(s, &nch, &npat);
  s->was_up = 1;
  ext_shard_up(s);
  s->up_since = ev_now(srv->loop);
  if (s->flaps & (s->flaps - 1)) {
    /* Flapping: said at powers of two by shard_lost. */
  } else if (s->down_since > 0)
    rt_info(&srv->log, "engine: redis %s back after %.1f s (subscribed %d channel(s), %d "
            "pattern(s) again)", s->label, ev_now(srv->loop) - s->down_since, nch, npat);
  else
    rt_info(&srv->log, "engine: redis %s connected (%d channel(s), %d pattern(s))", s->label,
            nch, npat);
  s->down_since = 0;
}

static shard *shard_of_ctx(const redisAsyncContext *ac) { return ac->data; }

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = shard_of_ctx(ac);
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_ERROR && !s->e->freeing)
    rt_warn(&s->e->base.srv->log, "engine: redis %s refused %s: %s", s->label,
            (const char *)privdata, reply->str);
}

/* Before anything else on a new command connection (Redis answers in order): the database,
 * and the history scripts. */
static void prepare_commands(shard *s) {
  if (s->e->db > 0)
    redisAsyncCommand(s->pub, on_setup_reply, "SELECT", "SELECT %d", s->e->db);
  redisAsyncCommand(s->pub, on_setup_reply, "SCRIPT LOAD", "SCRIPT LOAD %s", PUBLISH_SCRIPT);
  redisAsyncCommand(s->pub, on_setup_reply, "SCRIPT LOAD", "SCRIPT LOAD %s", READ_SCRIPT);
  s->scripts_loaded = 1;
}

static void on_connect(const redisAsyncContext *ac, int status) {
  shard *s = shard_of_ctx(ac);
  if (s->e->freeing) return;
  int is_pub = ac == s->pub;
  if (status != REDIS_OK) {
    /* hiredis frees the context after this callback. */
    if (is_pub) s->pub = NULL;
    else s->sub = NULL;
    if (!s->was_up && s->down_since == 0) {
      s->down_since = ev_now(s->e->base.srv->loop);
      rt_warn(&s->e->base.srv->log, "engine: redis %s unreachable (%s); retrying", s->label,
              ac->errstr ? ac->errstr : "connect failed");
    }
    schedule_retry(s);
    return;
  }
  if (is_pub) {
    s->pub_up = 1;
    prepare_commands(s);
  } else {
    s->sub_up = 1;
  }
  shard_maybe_up(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  shard *s = shard_of_ctx(ac);
  if (ac == s->pub) {
    s->pub = NULL;
    s->pub_up = 0;
  } else if (ac == s->sub) {
    s->sub = NULL;
    s->sub_up = 0;
  }
  if (s->e->freeing) return;
  shard_lost(s, status == REDIS_OK ? "closed" : ac->errstr && ac->errstr[0] ? ac->errstr : "connection lost");
}

static redisAsyncContext *open_ctx(shard *s) {
  rt_server *srv = s->e->base.srv;
  redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
  if (!ac) return NULL;
  if (ac->err) {
    if (s->down_since == 0) {
      s->down_since = ev_now(srv->loop);
      rt_warn(&srv->log, "engine: redis %s unreachable (%s); retrying", s->label, ac->errstr);
    }
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = s;
  if (redisLibevAttach(srv->loop, ac) != REDIS_OK) {
    redisAsyncFree(ac);
    return NULL;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

static void connect_shard(shard *s) {
  if (!s->pub && !(s->pub = open_ctx(s))) schedule_retry(s);
  if (!s->sub && !(s->sub = open_ctx(s))) schedule_retry(s);
}

/* ---- the engine -------------------------------------------------------------------- */

static void e_watch(rt_engine *base, const char *name, int pattern) {
  redis_engine *e = (redis_engine *)base;
  char ch[2 * RT_BROKER_MAX_NAME + 64];
  if (pattern) {
    if (pattern_glob(e, name, ch, sizeof ch) < 0) return;
    intptr_t refs = (intptr_t)rt_map_get(&e->patterns, ch);
    if (rt_map_put(&e->patterns, ch, (void *)(refs + 1)) < 0) return;
    if (refs == 0)
      for (int i = 0; i < e->nshards; i++) send_sub(&e->shards[i], "PSUBSCRIBE", ch);
    return;
  }
  if (channel_name(e, name, ch, sizeof ch) < 0 || rt_map_put(&e->channels, ch, (void *)1) < 0) return;
  send_sub(shard_of(e, name), "SUBSCRIBE", ch);
}

static void e_unwatch(rt_engine *base, const char *name, int pattern) {
  redis_engine *e = (redis_engine *)base;
  char ch[2 * RT_BROKER_MAX_NAME + 64];
  if (pattern) {
    if (pattern_glob(e, name, ch, sizeof ch) < 0) return;
    intptr_t refs = (intptr_t)rt_map_get(&e->patterns, ch);
    if (refs > 1) {
      rt_map_put(&e->patterns, ch, (void *)(refs - 1));
      return;
    }
    rt_map_remove(&e->patterns, ch);
    for (int i = 0; i < e->nshards; i++) send_sub(&e->shards[i], "PUNSUBSCRIBE", ch);
    return;
  }
  if (channel_name(e, name, ch, sizeof ch) < 0 || !rt_map_remove(&e->channels, ch)) return;
  send_sub(shard_of(e, name), "UNSUBSCRIBE", ch);
}

static void on_pub_reply(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = shard_of_ctx(ac);
  redisReply *reply = r;
  s->inflight--;
  s->inflight_bytes -= (size_t)(uintptr_t)privdata;
  if (s->e->freeing) return;
  rt_server *srv = s->e->base.srv;
  if (!reply) {
    /* The connection went down with this PUBLISH unanswered: it may be lost. */
    srv->metrics.engine_publish_failures++;
  } else if (reply->type != REDIS_REPLY_INTEGER) {
    srv->metrics.engine_publish_failures++;
    s->refused++;
    if (!(s->refused & (s->refused - 1)))
      rt_warn(&srv->log, "engine: redis %s refused a PUBLISH (%ld so far): %s", s->label,
              s->refused, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
  }
}

/* Is the shard up and keeping up? Otherwise err says why (down: what that means). */
static int can_publish(shard *s, size_t len, const char *down, char *err, size_t errlen) {
  if (!s->pub_up) {
    snprintf(err, errlen, "redis %s is down: %s", s->label, down);
    return 0;
  }
  if (s->inflight >= MAX_INFLIGHT || s->inflight_bytes + len > MAX_INFLIGHT_BYTES) {
    snprintf(err, errlen, "redis %s is not keeping up (%zu publishes unanswered)", s->label,
             s->inflight);
    return 0;
  }
  return 1;
}

static int e_publish(rt_engine *base, const char *name, const uint8_t *msg, size_t len,
                     char *err, size_t errlen) {
  redis_engine *e = (redis_engine *)base;
  shard *s = shard_of(e, name);
  char ch[2 * RT_BROKER_MAX_NAME + 64];
  int chlen = channel_name(e, name, ch, sizeof ch);
  if (chlen < 0) {
    snprintf(err, errlen, "name too long for the engine");
    return -1;
  }
  if (!can_publish(s, len, "the other nodes did not get this message", err, errlen)) return -1;
  if (redisAsyncCommand(s->pub, on_pub_reply, (void *)(uintptr_t)len, "PUBLISH %b %b", ch,
                        (size_t)chlen, msg, len) != REDIS_OK) {
    snprintf(err, errlen, "redis %s: %s", s->label, s->pub->errstr ? s->pub->errstr : "PUBLISH failed");
    return -1;
  }
  s->inflight++;
  s->inflight_bytes += len;
  return 0;
}

/* ---- history ----------------------------------------------------------------------- */

static int history_keys(redis_engine *e, const char *name, char *list, char *meta, size_t len) {
  int a = snprintf(list, len, "%shist:%s", e->prefix, name);
  int b = snprintf(meta, len, "%shmeta:%s", e->prefix, name);
  return a < 0 || b < 0 || (size_t)a >= len || (size_t)b >= len ? -1 : 0;
}

/* Someone flushed the scripts (SCRIPT FLUSH): load them again for the next commands. */
static void reload_if_noscript(shard *s, const redisReply *reply) {
  if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
      s->pub_up)
    prepare_commands(s);
}

static void on_kept_reply(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = shard_of_ctx(ac);
  if (!s->e->freeing) reload_if_noscript(s, r);
  on_pub_reply(ac, r, privdata);
}

static int e_publish_kept(rt_engine *base, const char *name, const uint8_t *msg, size_t len,
                          size_t size, double ttl, char *err, size_t errlen) {
  redis_engine *e = (redis_engine *)base;
  shard *s = shard_of(e, name);
  char ch[2 * RT_BROKER_MAX_NAME + 64], list[sizeof ch], meta[sizeof ch];
  if (channel_name(e, name, ch, sizeof ch) < 0 || history_keys(e, name, list, meta, sizeof ch) < 0) {
    snprintf(err, errlen, "name too long for the engine");
    return -1;
  }
  if (!can_publish(s, len, "the message was not published", err, errlen)) return -1;
  char sz[24], ttl_ms[32], meta_ms[32];
  snprintf(sz, sizeof sz, "%zu", size);
  snprintf(ttl_ms, sizeof ttl_ms, "%.0f", ttl * 1000 < 1 ? 1 : ttl * 1000);
  snprintf(meta_ms, sizeof meta_ms, "%.0f", ttl * 1000 > META_TTL_MS ? ttl * 1000 : META_TTL_MS);
  const char *argv[] = {"EVALSHA", e->publish_sha, "2", list, meta, ch, (const char *)msg, sz,
                        ttl_ms, meta_ms};
  size_t lens[10];
  for (int i = 0; i < 10; i++) lens[i] = strlen(argv[i]);
  lens[6] = len;
  if (redisAsyncCommandArgv(s->pub, on_kept_reply, (void *)(uintptr_t)len, 10, argv, lens) != REDIS_OK) {
    snprintf(err, errlen, "redis %s: %s", s->label, s->pub->errstr ? s->pub->errstr : "EVALSHA failed");
    return -1;
  }
  s->inflight++;
  s->inflight_bytes += len;
  return 0;
}

typedef struct read_req {
  void (*fn)(void *ud, const rt_engine_history *h);
  void *ud;
} read_req;

static uint64_t reply_uint(const redisReply *r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? (uint64_t)r->integer : 0;
  if (r->type == REDIS_REPLY_STRING) return strtoull(r->str, NULL, 10);
  return 0;
}

static void on_read_reply(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = shard_of_ctx(ac);
  read_req *q = privdata;
  redisReply *reply = r;
  if (s->e->freeing) {
    free(q);
    return;
  }
  reload_if_noscript(s, reply);
  rt_engine_history h = {0};
  const uint8_t **items = NULL;
  size_t *lens = NULL;
  if (!reply) {
    h.err = "the connection to redis was lost";
  } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
             reply->element[0]->type != REDIS_REPLY_STRING) {
    h.err = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply to a history read";
  } else {
    h.epoch = reply->element[0]->str;
    h.top = reply_uint(reply->element[1]);
    h.first = reply_uint(reply->element[2]);
    h.n = reply->elements - 3;
    items = h.n ? malloc(h.n * sizeof *items) : NULL;
    lens = h.n ? malloc(h.n * sizeof *lens) : NULL;
    if (h.n && (!items || !lens)) {
      h = (rt_engine_history){.err = "out of memory"};
    } else {
      for (size_t i = 0; i < h.n; i++) {
        const redisReply *it = reply->element[3 + i];
        items[i] = (const uint8_t *)(it->type == REDIS_REPLY_STRING ? it->str : "");
        lens[i] = it->type == REDIS_REPLY_STRING ? it->len : 0;
      }
      h.items = items;
      h.lens = lens;
    }
  }
  q->fn(q->ud, &h);
  free(items);
  free(lens);
  free(q);
}

static int e_read(rt_engine *base, const char *name, uint64_t since, size_t limit,
                  void (*fn)(void *ud, const rt_engine_history *h), void *ud) {
  redis_engine *e = (redis_engine *)base;
  shard *s = shard_of(e, name);
  char list[2 * RT_BROKER_MAX_NAME + 64], meta[sizeof list];
  read_req *q = malloc(sizeof *q);
  if (!q || !s->pub_up || history_keys(e, name, list, meta, sizeof list) < 0) {
    free(q);
    return -1;
  }
  *q = (read_req){fn, ud};
  char since_s[24], limit_s[24];
  snprintf(since_s, sizeof since_s, "%llu", (unsigned long long)since);
  snprintf(limit_s, sizeof limit_s, "%zu", limit > MAX_READ_ITEMS || !limit ? MAX_READ_ITEMS : limit);
  const char *argv[] = {"EVALSHA", e->read_sha, "2", list, meta, since_s, limit_s};
  size_t lens[7];
  for (int i = 0; i < 7; i++) lens[i] = strlen(argv[i]);
  if (redisAsyncCommandArgv(s->pub, on_read_reply, q, 7, argv, lens) != REDIS_OK) {
    free(q);
    return -1;
  }
  return 0;
}

static void sha1_hex(const char *text, char out[41]) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)text, strlen(text), d);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void e_free(rt_engine *base) {
  redis_engine *e = (redis_engine *)base;
  e->freeing = 1;
  for (int i = 0; i < e->nshards; i++) {
    shard *s = &e->shards[i];
    ev_timer_stop(base->srv->loop, &s->retry);
    if (s->pub) redisAsyncFree(s->pub);
    if (s->sub) redisAsyncFree(s->sub);
    s->pub = s->sub = NULL;
  }
  rt_map_free(&e->channels);
  rt_map_free(&e->patterns);
  free(e->ext);
  free(e);
}

static const rt_engine_ops redis_ops = {"redis", e_watch, e_unwatch, e_publish, e_free,
                                        e_publish_kept, e_read};

/* "redis://host[:port][/db]" */
static int parse_url(const char *url, size_t len, shard *s, int *db, char *err, size_t errlen) {
  char u[512];
  if (len >= sizeof u) goto bad;
  memcpy(u, url, len);
  u[len] = 0;
  if (strncmp(u, "redis://", 8) != 0) goto bad;
  char *h = u + 8, *path = strchr(h, '/'), *colon;
  *db = 0;
  if (path) {
    char *end;
    *path = 0;
    long v = strtol(path + 1, &end, 10);
    if (!path[1] || *end || v < 0 || v > 1000000) goto bad;
    *db = (int)v;
  }
  if (*h == '[') {  /* [v6]:port */
    char *close = strchr(h, ']');
    if (!close) goto bad;
    *close = 0;
    colon = close[1] == ':' ? close + 1 : NULL;
    if (close[1] && !colon) goto bad;
    h++;
  } else {
    colon = strchr(h, ':');
  }
  s->port = 6379;
  if (colon) {
    char *end;
    *colon = 0;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 1 || p > 65535) goto bad;
    s->port = (int)p;
  }
  if (!*h || strlen(h) >= sizeof s->host) goto bad;
  snprintf(s->host, sizeof s->host, "%s", h);
  snprintf(s->label, sizeof s->label, strchr(h, ':') ? "[%s]:%d" : "%s:%d", h, s->port);
  return 0;
bad:
  snprintf(err, errlen, "--engine: '%.*s' is not redis://HOST[:PORT][/DB]", (int)(len > 200 ? 200 : len), url);
  return -1;
}

rt_engine *rt_engine_redis_new(rt_server *srv, const char *spec, char *err, size_t errlen) {
  redis_engine *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  e->base.ops = &redis_ops;
  e->base.srv = srv;
  e->base.node_id = rt_engine_new_node_id();
  int db = -1;
  for (const char *p = spec; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    int this_db;
    if (e->nshards == MAX_SHARDS) {
      snprintf(err, errlen, "--engine: at most %d Redis instances", MAX_SHARDS);
      goto fail;
    }
    shard *s = &e->shards[e->nshards];
    if (parse_url(p, len, s, &this_db, err, errlen) < 0) goto fail;
    if (db >= 0 && this_db != db) {
      snprintf(err, errlen, "--engine: every Redis must use the same database number");
      goto fail;
    }
    db = this_db;
    s->e = e;
    s->index = e->nshards++;
    s->backoff = BACKOFF_MIN;
    ev_timer_init(&s->retry, on_retry, 0, 0);
    s->retry.data = s;
    p += len;
    if (*p == ',') p++;
  }
  if (!e->nshards) {
    snprintf(err, errlen, "--engine: no Redis given (redis://HOST[:PORT][/DB])");
    goto fail;
  }
  e->db = db;
  sha1_hex(PUBLISH_SCRIPT, e->publish_sha);
  sha1_hex(READ_SCRIPT, e->read_sha);
  if (db > 0) snprintf(e->prefix, sizeof e->prefix, "rt:db%d:", db);
  else snprintf(e->prefix, sizeof e->prefix, "rt:");
  for (int i = 0; i < e->nshards; i++) connect_shard(&e->shards[i]);
  return &e->base;
fail:
  free(e);
  return NULL;
}

/* ---- for other modules (engine_redis.h) -------------------------------------------- */

struct ext_state {
  rt_engine_redis_ext ext;  /* up == message == NULL: detached */
  char channel[512];
  unsigned attached;        /* counts attachments: a reply for an earlier one is not given */
  size_t inflight[MAX_SHARDS];
};

typedef struct ext_call {
  redis_engine *e;
  int shard;
  unsigned attached;
  void (*fn)(void *ud, redisReply *r, void *arg);
  void *arg;
} ext_call;

int rt_engine_is_redis(const rt_engine *e) { return e && e->ops == &redis_ops; }

static int ext_live(const redis_engine *e) { return e->ext && (e->ext->ext.up || e->ext->ext.message); }

static void ext_on_channel(redisAsyncContext *ac, void *r, void *privdata) {
  shard *s = privdata;
  redisReply *reply = r;
  redis_engine *e = s->e;
  if (!reply || e->freeing || !ext_live(e) || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
      strcmp(reply->element[0]->str, "message") != 0 || reply->element[2]->type != REDIS_REPLY_STRING)
    return;
  if (e->ext->ext.message)
    e->ext->ext.message(e->ext->ext.ud, s->index, reply->element[2]->str, reply->element[2]->len);
}

static void ext_shard_up(shard *s) {
  redis_engine *e = s->e;
  if (!ext_live(e)) return;
  if (e->ext->channel[0] && s->sub_up &&
      redisAsyncCommand(s->sub, ext_on_channel, s, "SUBSCRIBE %s", e->ext->channel) != REDIS_OK)
    rt_warn(&e->base.srv->log, "engine: redis %s: cannot subscribe %s", s->label, e->ext->channel);
  if (e->ext->ext.up) e->ext->ext.up(e->ext->ext.ud, s->index);
}

int rt_engine_redis_attach(rt_engine *base, const rt_engine_redis_ext *ext) {
  if (!rt_engine_is_redis(base)) return -1;
  redis_engine *e = (redis_engine *)base;
  if (!e->ext && !(e->ext = calloc(1, sizeof *e->ext))) return -1;
  if (!ext) {
    memset(&e->ext->ext, 0, sizeof e->ext->ext);
    e->ext->attached++;
    return 0;
  }
  if (ext->channel && strlen(ext->channel) >= sizeof e->ext->channel) return -1;
  e->ext->ext = *ext;
  snprintf(e->ext->channel, sizeof e->ext->channel, "%s", ext->channel ? ext->channel : "");
  e->ext->ext.channel = e->ext->channel;
  e->ext->attached++;
  for (int i = 0; i < e->nshards; i++)
    if (e->shards[i].was_up) ext_shard_up(&e->shards[i]);
  return 0;
}

int rt_engine_redis_shards(const rt_engine *e) { return ((const redis_engine *)e)->nshards; }

int rt_engine_redis_shard_of(const rt_engine *base, const char *name) {
  const redis_engine *e = (const redis_engine *)base;
  return (int)(rt_engine_hash(name) % (uint64_t)e->nshards);
}

int rt_engine_redis_is_up(const rt_engine *base, int idx) {
  const redis_engine *e = (const redis_engine *)base;
  return idx >= 0 && idx < e->nshards && e->shards[idx].was_up;
}

const char *rt_engine_redis_prefix(const rt_engine *e) { return ((const redis_engine *)e)->prefix; }

static void ext_on_reply(redisAsyncContext *ac, void *r, void *privdata) {
  ext_call *call = privdata;
  redis_engine *e = call->e;
  if (!e->freeing && e->ext) {
    e->ext->inflight[call->shard]--;
    if (call->fn && ext_live(e) && call->attached == e->ext->attached)
      call->fn(e->ext->ext.ud, r, call->arg);
  }
  free(call->arg);
  free(call);
}

int rt_engine_redis_command(rt_engine *base, int idx, void (*fn)(void *ud, redisReply *r, void *arg),
                            void *arg, int argc, const char **argv, const size_t *lens) {
  redis_engine *e = (redis_engine *)base;
  shard *s = idx >= 0 && idx < e->nshards ? &e->shards[idx] : NULL;
  ext_call *call = NULL;
  if (!ext_live(e) || !s || !s->pub_up || e->ext->inflight[idx] >= RT_ENGINE_REDIS_MAX_EXT_INFLIGHT ||
      !(call = malloc(sizeof *call))) {
    free(arg);
    return -1;
  }
  *call = (ext_call){e, idx, e->ext->attached, fn, arg};
  if (redisAsyncCommandArgv(s->pub, ext_on_reply, call, argc, argv, lens) != REDIS_OK) {
    free(arg);
    free(call);
    return -1;
  }
  e->ext->inflight[idx]++;
  return 0;
}
