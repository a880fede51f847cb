/* What other modules of this layer may ask of the Redis engine besides pub/sub of topics
 * (engine.h): commands on a shard's command connection, a channel of their own, and word
 * when a shard is (back) up. One module attaches at a time (presence_cluster.c); everything
 * it gets goes through its ud, and nothing reaches it once it has detached, so it may go
 * before the engine does. */
#ifndef RT_ENGINE_REDIS_H
#define RT_ENGINE_REDIS_H

#include <stddef.h>

typedef struct rt_engine rt_engine;
struct redisReply;

#define RT_ENGINE_REDIS_MAX_EXT_INFLIGHT 65536  /* commands not yet answered, per shard */

typedef struct rt_engine_redis_ext {
  /* Shard came up: at start, and after every reconnect (Redis may have lost everything). */
  void (*up)(void *ud, int shard);
  /* A message on the attached channel of shard. */
  void (*message)(void *ud, int shard, const char *data, size_t len);
  void *ud;
  const char *channel;  /* subscribed on every shard while attached (copied) */
} rt_engine_redis_ext;

/* Is e the Redis engine? */
int rt_engine_is_redis(const rt_engine *e);
/* Attaches ext (up is called at once for every shard already up); NULL detaches. -1 when
 * e is not the Redis engine or the channel is too long. */
int rt_engine_redis_attach(rt_engine *e, const rt_engine_redis_ext *ext);
int rt_engine_redis_shards(const rt_engine *e);
int rt_engine_redis_shard_of(const rt_engine *e, const char *name);
int rt_engine_redis_is_up(const rt_engine *e, int shard);
/* "rt:" or "rt:db<N>:": what namespaces this deployment in a shared Redis. */
const char *rt_engine_redis_prefix(const rt_engine *e);
/* Sends a command (argv with lengths) on shard's command connection; fn, when given, gets
 * the attached ud, the reply (NULL when the connection went down first) and arg. arg is
 * NULL or malloc'd memory that the engine frees after fn (or at once on failure, or when
 * the module has detached meanwhile). -1 when the shard is down, nobody is attached, or
 * RT_ENGINE_REDIS_MAX_EXT_INFLIGHT are unanswered. */
int rt_engine_redis_command(rt_engine *e, int shard, void (*fn)(void *ud, struct redisReply *r,
                                                                void *arg),
                            void *arg, int argc, const char **argv, const size_t *lens);

#endif
