/* Presence: who is subscribed to topics whose names match a configured pattern, on every
 * process of the deployment, and the news of each join and leave.
 *
 * The broker notes every subscribe and unsubscribe of such a topic here; the mirror
 * (presence_mirror.h) keeps who is subscribed, here and, once the broker has an engine,
 * on the other processes too (presence_cluster.h carries the news both ways). The app
 * hears of each join and leave, this process's and the others', through a hook, on the
 * next loop turn and in the order they were heard (never from inside a publish, where a
 * delivery that closes a connection unsubscribes it). A subscriber is named by its
 * connection: id, the user the connection authenticated as (rt_conn_set_user: a STOMP
 * login, or what a script set) and its node's name; a connection subscribed twice is one
 * member. */
#ifndef RT_PRESENCE_H
#define RT_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_presence rt_presence;
typedef struct rt_engine rt_engine;
typedef struct rt_pmember rt_pmember;

#define RT_PRESENCE_MAX_POLICIES 64
#define RT_PRESENCE_MAX_QUEUED 100000  /* news not yet told; past it the oldest are dropped */

#define RT_PRESENCE_DEFAULT_TTL 30.0     /* seconds */
#define RT_PRESENCE_MAX_MEMBERS 1000000  /* members of every topic in the mirror */

typedef void (*rt_presence_hook)(void *ud, const char *topic, uint64_t conn, const char *user,
                                 const char *node, int joined);

rt_presence *rt_presence_new(rt_server *srv);
void rt_presence_free(rt_presence *p);
/* Topics matching pattern (broker pattern syntax) have presence. -1: bad or too many. */
int rt_presence_policy(rt_presence *p, const char *pattern);
void rt_presence_clear_policies(rt_presence *p);
int rt_presence_covers(const rt_presence *p, const char *name);
void rt_presence_set_hook(rt_presence *p, rt_presence_hook fn, void *ud);
/* The broker: c joined (1) or left (0) the topic name. */
void rt_presence_note(rt_presence *p, const char *name, const rt_conn *c, int joined);
/* Who else hears of this process's members: the broker's engine (NULL: nobody). */
void rt_presence_set_engine(rt_presence *p, rt_engine *e);
/* Seconds after which the members of a process that fell silent are dropped. */
void rt_presence_set_ttl(rt_presence *p, double ttl);
/* A join or leave another process told of: queued for the hook like this one's. */
void rt_presence_tell(rt_presence *p, const char *topic, const char *node, uint64_t conn,
                      const char *user, int joined);
/* A presence frame from the supervisor's link (workers.h). */
void rt_presence_from_link(rt_presence *p, const uint8_t *data, size_t len);
/* The members of a topic that has presence, on every process: how many, and each. */
size_t rt_presence_count(const rt_presence *p, const char *topic);
void rt_presence_each(const rt_presence *p, const char *topic,
                      void (*fn)(void *ud, const char *topic, const rt_pmember *m), void *ud);
/* This node's name in presence lists: host:pid. */
const char *rt_presence_node(const rt_presence *p);
/* News dropped because nobody took them in time (the queue bound). */
long rt_presence_dropped(const rt_presence *p);

#endif
