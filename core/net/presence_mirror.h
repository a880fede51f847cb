/* The presence mirror: who is subscribed to each presence topic across the whole cluster,
 * as this process knows it. Pure bookkeeping (no I/O, no clock of its own): presence.c
 * feeds it this process's subscribes and unsubscribes, presence_cluster.c what the other
 * processes said (news, Redis snapshots, heartbeats).
 *
 * A member is one connection of one node in one topic, named "node#conn". A local
 * connection subscribed twice to a topic (two STOMP subscriptions) is one member with two
 * references: it joins with the first and leaves with the last. Every node is remembered
 * with the time it was last heard of and the TTL it announced; members of a node not heard
 * of within its TTL are dropped by rt_pmirror_expire. Bounded: at most max_members members
 * in all (past it a remote join is refused and counted) and RT_PMIRROR_MAX_NODES nodes. */
#ifndef RT_PRESENCE_MIRROR_H
#define RT_PRESENCE_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#define RT_PMIRROR_MAX_NODES 4096

typedef struct rt_pmirror rt_pmirror;

typedef struct rt_pmember {
  uint64_t conn;
  const char *node;
  const char *user;  /* NULL: none */
  int local;         /* this process's own connection */
} rt_pmember;

/* Told of each member the mirror drops by itself (expiry, a snapshot without it). */
typedef void (*rt_pmirror_fn)(void *ud, const char *topic, const rt_pmember *m);

rt_pmirror *rt_pmirror_new(const char *self, size_t max_members);
void rt_pmirror_free(rt_pmirror *m);
const char *rt_pmirror_self(const rt_pmirror *m);

/* This process's connection conn subscribed to topic: 1 when it is a new member, 0 when it
 * already was one (another reference), -1 out of memory or over the bound. */
int rt_pmirror_local_join(rt_pmirror *m, const char *topic, uint64_t conn, const char *user);
/* ...and unsubscribed: 1 when that was its last reference (it left), 0 otherwise. */
int rt_pmirror_local_leave(rt_pmirror *m, const char *topic, uint64_t conn);

/* A member of another node, stamped with the current snapshot generation: 1 new, 0 known
 * (its user is updated), -1 over a bound (counted in rt_pmirror_refused). node must not be
 * this process's own name. */
int rt_pmirror_remote_join(rt_pmirror *m, const char *topic, const char *node, uint64_t conn,
                           const char *user);
/* 1 when it was a member. */
int rt_pmirror_remote_leave(rt_pmirror *m, const char *topic, const char *node, uint64_t conn);
/* node was heard of at now and asks to be kept for ttl seconds after that. */
int rt_pmirror_heard(rt_pmirror *m, const char *node, double now, double ttl);
/* Drops every member of the nodes not heard of within their TTL at now (fn for each),
 * and forgets those nodes. Returns how many members went. */
size_t rt_pmirror_expire(rt_pmirror *m, double now, rt_pmirror_fn fn, void *ud);

/* Snapshots (a node that reloads what Redis holds): begin returns a new generation that
 * every remote join stamps from then on; after the members of node in topic were read,
 * end drops those of its members in topic not stamped since gen (fn for each): they are no
 * longer there. The members of nodes that were not read stay (a node that is alive writes
 * them again, and one that is not expires). */
unsigned rt_pmirror_snapshot_begin(rt_pmirror *m);
size_t rt_pmirror_snapshot_end(rt_pmirror *m, const char *topic, const char *node, unsigned gen,
                               rt_pmirror_fn fn, void *ud);
/* Has node been heard of (and not expired since)? */
int rt_pmirror_knows(const rt_pmirror *m, const char *node);

/* Distinct members of topic (every node). */
size_t rt_pmirror_count(const rt_pmirror *m, const char *topic);
/* This process's members of topic. */
size_t rt_pmirror_local_count(const rt_pmirror *m, const char *topic);
void rt_pmirror_each(const rt_pmirror *m, const char *topic, rt_pmirror_fn fn, void *ud);
/* Every topic the mirror holds members of, with its local count. */
void rt_pmirror_each_topic(const rt_pmirror *m, void (*fn)(void *ud, const char *topic,
                                                           size_t nlocal), void *ud);
size_t rt_pmirror_members(const rt_pmirror *m);
long rt_pmirror_refused(const rt_pmirror *m);

#endif
