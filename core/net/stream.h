/* Histories that live in the engine (Redis): this node's view of each such topic's stream.
 *
 * With an engine that keeps history (engine.h: publish_kept, read), a topic covered by a
 * history policy gets its offsets from the engine, so every node agrees on them. A publish
 * goes to the engine only; every node, the publishing one included, delivers what comes
 * back, in offset order:
 *
 *   - the next offset is delivered (and kept in the local history, history.h, which serves
 *     as a cache of the recent part); an offset seen already is dropped;
 *   - a gap (a message lost while the pub/sub connection was down, or dropped) holds what
 *     comes next and reads the missing ones from the engine, then delivers them in order;
 *     when they are gone, the topic's subscribers are told (rt_sub.lost) and delivery
 *     goes on from the engine's latest;
 *   - another epoch (Redis restarted or flushed) tells the subscribers too.
 *
 * The node reads a topic's position when it starts watching it, and looks for a gap
 * again each time the engine confirms the channel's subscription (at first and after every
 * reconnect), so a loss is found even when nothing is published after it.
 *
 * A subscriber that recovers (rt_broker_replay) is served from the local cache when it
 * reaches back far enough; otherwise it is held (gets nothing live) while one read serves
 * every subscriber of the topic waiting at that moment (coalesced: a thousand reconnecting
 * clients cost one read), then gets what it missed and is let go. */
#ifndef RT_STREAM_H
#define RT_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_broker rt_broker;
typedef struct rt_server rt_server;
typedef struct rt_sub rt_sub;
typedef struct rt_msg rt_msg;
typedef struct rt_engine rt_engine;
typedef struct rt_streams rt_streams;
typedef struct rt_engine_msg rt_engine_msg;

#define RT_STREAM_MAX_PENDING 4096  /* messages held per topic while a read is out */
#define RT_STREAM_EARLY_ANSWERS 3   /* reads a client ahead of them may wait through */

rt_streams *rt_streams_new(rt_broker *b, rt_server *srv);
void rt_streams_free(rt_streams *ss);
/* The engine (NULL: none): only one that keeps history makes streams. */
void rt_streams_set_engine(rt_streams *ss, rt_engine *e);

/* Does name's history live in the engine? */
int rt_streams_cover(rt_streams *ss, const char *name);
/* Hands m to the engine's history. 0, or -1 with err filled (nothing was published). */
int rt_streams_publish(rt_streams *ss, rt_msg *m, char *err, size_t errlen);
/* The broker has its first / lost its last exact subscriber of a covered name. */
void rt_streams_watch(rt_streams *ss, const char *name);
void rt_streams_unwatch(rt_streams *ss, const char *name);
/* The engine's subscription to name is in place (first, or again after a reconnect). */
void rt_streams_subscribed(rt_streams *ss, const char *name);
/* A message came from the engine with its place (em, decoded from data: an "RH" message). */
void rt_streams_message(rt_streams *ss, const uint8_t *data, size_t len, const rt_engine_msg *em);

/* s wants what its topic had after (epoch, since): 1 or 0 as rt_broker_replay says, or
 * RT_STREAM_PENDING: s is held, and s->recovered(s, ok) says the outcome later. */
#define RT_STREAM_PENDING 2
int rt_streams_recover(rt_streams *ss, rt_sub *s, const char *epoch, uint64_t since);
/* Reads name's history from the engine for a script (topic:history): fn as the engine's
 * read says. -1 when name's history is not in the engine, or the engine is down. */
typedef struct rt_engine_history rt_engine_history;
int rt_streams_read(rt_streams *ss, const char *name, uint64_t since, size_t limit,
                    void (*fn)(void *ud, const rt_engine_history *h), void *ud);
/* Where this node stands in name's stream: the latest offset delivered here and its epoch
 * (0 and "" when it does not follow name, or does not know yet). */
uint64_t rt_streams_position(rt_streams *ss, const char *name, const char **epoch);
/* s is going away: forget it if it waits. */
void rt_streams_sub_gone(rt_streams *ss, rt_sub *s);

#endif
