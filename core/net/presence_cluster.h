/* Presence across processes: this process's joins and leaves go to the others, theirs
 * come into the mirror (presence_mirror.h), and every process says it is alive every TTL/3
 * so that the members of one that died leave everyone's mirror within the TTL.
 *
 * Two transports, by the engine the broker has:
 *  - Redis (--engine redis://): the truth lives in Redis. Per topic T and node N a hash
 *    <k>m:N:T (connection id -> user, "" for none) that expires after the TTL
 *    unless N refreshes it, a sorted set <k>n:T of the nodes with members (score: when
 *    their hash expires) and, per shard, a sorted set <k>topics of the topics (same
 *    scores); <k> is "rt-presence:" ("rt-presence:db<N>:" for database N). News (join,
 *    leave, alive, up) are published on the channel <k>news of the topic's shard, so the
 *    mirrors change at once. When a shard comes up (start, Redis restart, reconnect) the
 *    node writes its members there again, says "up" (the others reload from Redis), and
 *    reloads the shard itself; a reload drops from the mirror who is no longer there.
 *  - the supervisor's link (--workers without --engine): news are relayed to every other
 *    worker like messages; a worker that starts says "up" and the others answer with
 *    their members.
 * A handler runs on every process that hears of a join or leave (presence.c's hook). */
#ifndef RT_PRESENCE_CLUSTER_H
#define RT_PRESENCE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_engine rt_engine;
typedef struct rt_presence rt_presence;
typedef struct rt_pmirror rt_pmirror;
typedef struct rt_pcluster rt_pcluster;

/* NULL when e is neither the Redis nor the local engine (or out of memory). */
rt_pcluster *rt_pcluster_new(rt_server *srv, rt_presence *p, rt_pmirror *mirror, rt_engine *e,
                             double ttl);
void rt_pcluster_free(rt_pcluster *c);
void rt_pcluster_set_ttl(rt_pcluster *c, double ttl);
/* This process's connection joined topic (its first subscription) or left it (its last). */
void rt_pcluster_joined(rt_pcluster *c, const char *topic, uint64_t conn, const char *user);
void rt_pcluster_left(rt_pcluster *c, const char *topic, uint64_t conn, const char *user);
/* A presence frame from the supervisor's link. */
void rt_pcluster_from_link(rt_pcluster *c, const uint8_t *data, size_t len);

#endif
