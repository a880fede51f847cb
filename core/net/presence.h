/* Presence: who is subscribed to topics whose names match a configured pattern, and the
 * news of each join and leave.
 *
 * The broker notes every subscribe and unsubscribe of such a topic here; the app hears of
 * them through a hook, on the next loop turn and in the order they happened (never from
 * inside a publish, where a delivery that closes a connection unsubscribes it). Who is
 * subscribed now is the broker's topic itself (rt_broker_each_sub): presence keeps no
 * second list. A subscriber is named by its connection: id, the user the connection
 * authenticated as (rt_conn_set_user: a STOMP login, or what a script set), and this
 * node's name. */
#ifndef RT_PRESENCE_H
#define RT_PRESENCE_H

#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_presence rt_presence;

#define RT_PRESENCE_MAX_POLICIES 64
#define RT_PRESENCE_MAX_QUEUED 100000  /* news not yet told; past it the oldest are dropped */

typedef void (*rt_presence_hook)(void *ud, const char *topic, uint64_t conn, const char *user,
                                 int joined);

rt_presence *rt_presence_new(rt_server *srv);
void rt_presence_free(rt_presence *p);
/* Topics matching pattern (broker pattern syntax) have presence. -1: bad or too many. */
int rt_presence_policy(rt_presence *p, const char *pattern);
void rt_presence_clear_policies(rt_presence *p);
int rt_presence_covers(const rt_presence *p, const char *name);
void rt_presence_set_hook(rt_presence *p, rt_presence_hook fn, void *ud);
/* The broker: c joined (1) or left (0) the topic name. */
void rt_presence_note(rt_presence *p, const char *name, const rt_conn *c, int joined);
/* This node's name in presence lists: host:pid. */
const char *rt_presence_node(const rt_presence *p);
/* News dropped because nobody took them in time (the queue bound). */
long rt_presence_dropped(const rt_presence *p);

#endif
