/* The engine: what sits behind the broker so that a publish on one process reaches the
 * subscribers of every other one (other nodes through Redis, other workers of this host
 * through the supervisor).
 *
 * The broker tells its engine which names (and patterns) this process has local
 * subscribers for (watch / unwatch, once per name, not per subscriber), and hands it every
 * local publish, encoded once (engine_msg.h). The engine hands back what other processes
 * published through rt_broker_from_engine; the broker frames it once and fans it out like a
 * local publish. Every message carries the node id of its publisher, so the publishing
 * process skips its own echo: it has already delivered locally. */
#ifndef RT_ENGINE_H
#define RT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_engine rt_engine;
typedef struct rt_engine_history rt_engine_history;

typedef struct rt_engine_ops {
  const char *kind;  /* "redis", "local" */
  /* This process has its first local subscriber to name (a pattern when pattern != 0). */
  void (*watch)(rt_engine *e, const char *name, int pattern);
  /* ...and its last one left. */
  void (*unwatch)(rt_engine *e, const char *name, int pattern);
  /* Sends msg (engine_msg.h) for name to the other processes. Never blocks, never buffers
   * without a bound: < 0 with err filled when it cannot take it now. */
  int (*publish)(rt_engine *e, const char *name, const uint8_t *msg, size_t len, char *err,
                 size_t errlen);
  void (*free)(rt_engine *e);
  /* Engines where history lives (stream.h; NULL for the others). publish_kept assigns the
   * next offset of name's history, keeps msg there (the last size messages, for ttl
   * seconds) and publishes it wrapped with its place (engine_msg.h), all in one atomic
   * step. read answers with what is kept after since (at most limit, 0: the policy's
   * size): fn is called exactly once, later, unless the engine is freed first. */
  int (*publish_kept)(rt_engine *e, const char *name, const uint8_t *msg, size_t len,
                      size_t size, double ttl, char *err, size_t errlen);
  int (*read)(rt_engine *e, const char *name, uint64_t since, size_t limit,
              void (*fn)(void *ud, const rt_engine_history *h), void *ud);
} rt_engine_ops;

/* A history read's answer. err set: the read failed (the engine is down); otherwise epoch
 * "" means name has no history there. items are "RH" messages, oldest first, offsets
 * after since; first is the oldest offset still kept (top + 1 when none is). */
struct rt_engine_history {
  const char *err;
  const char *epoch;
  uint64_t top, first;
  size_t n;
  const uint8_t *const *items;
  const size_t *lens;
};

struct rt_engine {
  const rt_engine_ops *ops;
  rt_server *srv;
  uint64_t node_id;  /* random per process: tells our own messages from the others' */
};

/* How a message from the engine is matched against local subscriptions. */
typedef enum {
  RT_ENGINE_EXACT,    /* subscribers of exactly its name */
  RT_ENGINE_PATTERN,  /* pattern subscribers whose engine glob is the given one */
  RT_ENGINE_ALL,      /* both (an engine without per-name subscriptions) */
} rt_engine_scope;

/* A fresh random node id. */
uint64_t rt_engine_new_node_id(void);
/* The Redis-style glob (PSUBSCRIBE) that matches every name a broker pattern matches: "*"
 * and "**" become "*" (the broker then checks segments itself), glob characters in the
 * literal parts are escaped. Returns the length, or -1 when out does not hold it. */
int rt_engine_glob(const char *pattern, char *out, size_t outlen);
/* A stable 64-bit hash of a name (FNV-1a), for sharding. */
uint64_t rt_engine_hash(const char *name);

/* Redis pub/sub engine. spec: "redis://host:port[/db]" URLs separated by commas (several:
 * each name goes to one of them by its hash). NULL with err on a bad spec; an unreachable
 * Redis is not an error (the engine keeps trying, and logs it). */
rt_engine *rt_engine_redis_new(rt_server *srv, const char *spec, char *err, size_t errlen);

#endif
