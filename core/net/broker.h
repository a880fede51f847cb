/* The in-process pub/sub broker: destinations (topics) and their subscribers.
 *
 * A message is built once (rt_msg: the body chunk, and lazily the WebSocket frame of it)
 * and handed to every subscriber's deliver function, which queues shared chunks on its
 * connection. The interface is narrow (subscribe, unsubscribe, publish, deliveries
 * coming back) so that an engine (engine.h: Redis pub/sub, the supervisor's sockets) sits
 * behind it: the broker tells it which names have local subscribers, hands it every local
 * publish, and fans out what it brings back from the other processes.
 *
 * Raw WebSocket and STOMP subscribers of the same name sit on the same topic, so one
 * publish reaches both. A subscription may also be a pattern (rt_broker_subscribe_pattern):
 * "*" matches within one name segment (segments end at '/' or '.'), "**" matches anything,
 * separators included. */
#ifndef RT_BROKER_H
#define RT_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/header.h"
#include "engine.h"

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_broker rt_broker;
typedef struct rt_topic rt_topic;
typedef struct rt_sub rt_sub;

typedef struct rt_msg {
  const char *destination;
  rt_chunk *body;
  int binary;
  /* Set when the destination keeps a history (history.h): the message's place in it. */
  uint64_t offset;       /* 0: none */
  const char *epoch;
  rt_chunk *ws_frame;  /* built by the first WebSocket delivery, shared by the rest */
  rt_chunk *ws_deflated;  /* the same, compressed (permessage-deflate, no context) */
  rt_chunk *sockjs_quoted;  /* the body as a JSON string, built by the first SockJS delivery */
  /* For STOMP subscribers. The publisher may set these (NULL = defaults)... */
  const char *stomp_destination;  /* MESSAGE destination header, if not destination */
  const char *content_type;
  const rt_header *headers;  /* extra MESSAGE headers */
  size_t nheaders;
  /* ...and the first STOMP delivery builds the shared header block, the rest reuse it. */
  rt_chunk *stomp_common;
  uint64_t stomp_id;
  int stomp_text;      /* the shared parts are valid UTF-8 (a WebSocket text frame) */
  /* Whole MESSAGE frames, wire-ready, that ack:auto subscribers with the same
   * subscription id share (stomp_broker.c owns them and says how to free them). */
  void *stomp_wires;
  void (*stomp_wires_free)(void *wires);
  /* Set by rt_broker_publish when the engine could not take the message (local
   * subscribers got it; the other processes did not). Valid until the next publish. */
  const char *engine_error;
} rt_msg;

typedef void (*rt_deliver_fn)(rt_sub *s, rt_msg *m);

struct rt_sub {
  rt_topic *topic;
  rt_conn *conn;
  rt_deliver_fn deliver;
  void *data;             /* the subscriber's own state (a STOMP subscription, ...) */
  /* Optional: touch (prefetch) what deliver will read, a delivery ahead of it. */
  void (*prefetch)(const rt_sub *s);
  rt_sub *prev, *next;    /* in the topic */
  rt_sub *conn_next;      /* in the connection's list */
  rt_sub *grave_next;     /* in the topic's graveyard (next stays valid for the walk) */
  int dead;               /* removed during a publish; freed after it */
  /* History in the engine (stream.h). held: recovering, gets nothing live until it has
   * what it missed. Optional callbacks: the outcome of a recovery that had to wait
   * (rt_broker_replay said RT_STREAM_PENDING), and "you may have missed messages" (a gap
   * that could not be filled, or the history's epoch changed). */
  int held;
  void (*recovered)(rt_sub *s, int ok);
  void (*lost)(rt_sub *s);
};

typedef struct rt_history rt_history;
typedef struct rt_presence rt_presence;

rt_broker *rt_broker_new(rt_server *srv);
/* The broker's history (history.h): every publish to a topic with history is kept there. */
rt_history *rt_broker_history(rt_broker *b);
/* The broker's presence (presence.h): joins and leaves of topics that have it. */
rt_presence *rt_broker_presence(rt_broker *b);
/* The broker's streams (stream.h): histories that live in the engine. */
struct rt_streams *rt_broker_streams(rt_broker *b);
void rt_broker_free(rt_broker *b);
/* Adds a subscriber; data is the subscriber's. Returns NULL on OOM. */
rt_sub *rt_broker_subscribe(rt_broker *b, const char *destination, rt_conn *c,
                            rt_deliver_fn deliver, void *data);
/* Like rt_broker_subscribe, but pattern (e.g. "/topic/order.*") receives
 * every publish whose destination matches it. */
rt_sub *rt_broker_subscribe_pattern(rt_broker *b, const char *pattern, rt_conn *c,
                                    rt_deliver_fn deliver, void *data);
/* Does name match pattern? Names longer than RT_BROKER_MAX_NAME never match. */
#define RT_BROKER_MAX_NAME 1024
int rt_broker_pattern_match(const char *pattern, const char *name);
void rt_broker_unsubscribe(rt_broker *b, rt_sub *s);
/* The subscription of c to destination with this deliver function, if any. */
rt_sub *rt_broker_find(rt_broker *b, const char *destination, rt_conn *c, rt_deliver_fn deliver);
/* Removes every subscription of a closing connection. */
void rt_broker_drop_conn(rt_broker *b, rt_conn *c);
/* Delivers to every local subscriber and hands the message to the engine, if any; returns
 * how many local subscribers got it (m->engine_error says whether the engine took it). */
long rt_broker_publish(rt_broker *b, rt_msg *m);
/* Delivers to s the kept messages of its topic after offset since (history.h), oldest
 * first, as if they were published now. Returns 1 when that is everything s missed (epoch
 * matches and the history reaches back), 0 when it is not known (then nothing is
 * delivered): another epoch, history gone, no history here, or s is a pattern. With the
 * history in the engine it may also return RT_STREAM_PENDING (stream.h): s is held until
 * a read answers, then s->recovered says the outcome. */
int rt_broker_replay(rt_broker *b, rt_sub *s, const char *epoch, uint64_t since);

/* For stream.c: the name s subscribes to; pinning a topic (deliveries may unsubscribe, a
 * pinned topic stays); replay from the local history only; delivering a message that has
 * its place from the engine (to all exact subscribers, kept in the local history as a
 * cache; or to one); telling a topic's subscribers they may have missed messages. */
const char *rt_sub_name(const rt_sub *s);
rt_topic *rt_broker_pin(rt_broker *b, const char *name);
void rt_broker_unpin(rt_broker *b, rt_topic *t);
int rt_broker_replay_cached(rt_broker *b, rt_sub *s, const char *epoch, uint64_t since);
struct rt_engine_msg;
void rt_broker_deliver_kept(rt_broker *b, const struct rt_engine_msg *em, int keep);
void rt_broker_deliver_kept_to(rt_broker *b, rt_sub *s, const struct rt_engine_msg *em);
/* Keeps em in the local history only: after the latest (older = 0) or before the oldest. */
int rt_broker_cache_kept(rt_broker *b, const struct rt_engine_msg *em, int older);
void rt_broker_tell_lost(rt_broker *b, const char *name);
/* Messages from other processes were dropped on the way here (worker.c: the supervisor's
 * link was full): the local histories start new epochs and the subscribers of every topic
 * with history are told (rt_sub.lost). */
void rt_broker_lost_all(rt_broker *b, const char *why);
/* The engine's subscription to name is in place (engine_redis.c). */
void rt_broker_engine_subscribed(rt_broker *b, const char *name);
/* Puts an engine behind the broker (the broker does not own it; NULL removes it) and
 * watches every name that already has subscribers. */
void rt_broker_set_engine(rt_broker *b, rt_engine *e);
/* A message another process published, as the engine received it: decoded, framed once
 * and delivered to the local subscribers scope says (glob: the engine pattern it came
 * through, for RT_ENGINE_PATTERN). Our own echo and malformed input are dropped (the
 * latter logged). */
void rt_broker_from_engine(rt_broker *b, const uint8_t *data, size_t len, rt_engine_scope scope,
                           const char *glob);
/* The bytes m crosses an engine as (engine_msg.h), from process origin, into out (reset
 * here). -1 with err when it cannot be encoded. */
int rt_msg_encode_for_engine(const rt_msg *m, uint64_t origin, rt_buf *out, char *err,
                             size_t errlen);
/* Drops what deliveries built on m (the WebSocket frame, the STOMP header block). */
void rt_msg_release(rt_msg *m);
size_t rt_broker_count(rt_broker *b, const char *destination);
/* Calls fn for each subscriber of destination (not of patterns that match it); fn must not
 * subscribe or unsubscribe. */
void rt_broker_each_sub(rt_broker *b, const char *destination,
                        void (*fn)(void *ud, const rt_sub *s), void *ud);

/* Publishes data as a text (or binary) message to destination. Returns the local
 * deliveries, -1 when out of memory, RT_BROKER_ENGINE_FAILED when the engine refused it
 * (local subscribers got it; rt_broker_engine_error says why). */
#define RT_BROKER_ENGINE_FAILED (-2)
long rt_broker_publish_data(rt_broker *b, const char *destination, const void *data, size_t len,
                            int binary);
const char *rt_broker_engine_error(const rt_broker *b);

#endif
