/* STOMP broker semantics on top of the shared broker: topic, pattern and user
 * subscriptions (broker.c topics, so raw WebSocket subscribers see the same publishes),
 * queues with round-robin delivery and redelivery, and acknowledgements.
 *
 * A MESSAGE goes out as four chunks: a small per-delivery head (subscription, message-id,
 * ack), the header block every receiver shares (destination, content-type,
 * content-length, the sender's headers), the shared body and the shared NUL. */
#ifndef RT_STOMP_BROKER_H
#define RT_STOMP_BROKER_H

#include "stomp.h"

/* Starts delivering to sub (filled in by the caller: s, id, dest, ack, kind). Messages a
 * queue holds already wait for rt_stomp_sub_take_waiting, so the SUBSCRIBE's RECEIPT can
 * go first. */
int rt_stomp_sub_start(rt_stomp_sub *sub, char *err, size_t errlen);
/* Delivers what sub's queue held when it subscribed (nothing for a topic). */
void rt_stomp_sub_take_waiting(rt_stomp_sub *sub);
/* Stops it and frees it; its unacknowledged queue messages go back to their queue. */
void rt_stomp_sub_end(rt_stomp_sub *sub);
/* A started topic subscription gets the kept messages after since in epoch (history).
 * Returns 1 when that is all it missed, 0 when that is not known (nothing replayed), or
 * RT_STREAM_PENDING when the history lives in the engine and must be read first: then the
 * RECEIPT whose id receipt names (NULL: none) goes out when the read answers. */
int rt_stomp_sub_recover(rt_stomp_sub *sub, const char *epoch, uint64_t since,
                         const char *receipt);
/* The same for every subscription of a session whose connection is gone (the broker has
 * already dropped the connection's topic subscriptions). */
void rt_stomp_session_drop_subs(rt_stomp_session *s);

/* Sends body to a topic, queue or user destination. Returns the number of deliveries (a
 * queue: 1 once stored), or -1 with err; RT_BROKER_ENGINE_FAILED with err when the engine
 * could not pass a topic message on to the other processes (local subscribers got it). */
long rt_stomp_publish(rt_stomp_server *ss, const char *dest, rt_chunk *body, const char *ctype,
                      const rt_stomp_header *extra, size_t nextra, char *err, size_t errlen);
/* To user's sessions subscribed to user_prefix + rest ("/queue/x"). */
long rt_stomp_publish_user(rt_stomp_server *ss, const char *user, const char *rest,
                           rt_chunk *body, const char *ctype, const rt_stomp_header *extra,
                           size_t nextra, char *err, size_t errlen);
/* Only to s's own subscriptions whose destination is dest. */
long rt_stomp_send_to_session(rt_stomp_session *s, const char *dest, rt_chunk *body,
                              const char *ctype, const rt_stomp_header *extra, size_t nextra);

rt_stomp_pending *rt_stomp_pending_by_ack(rt_stomp_session *s, uint64_t ack_id);
/* sub NULL: any subscription (STOMP 1.0 ACK has none). */
rt_stomp_pending *rt_stomp_pending_by_msg(rt_stomp_session *s, uint64_t msg_id,
                                          const rt_stomp_sub *sub);
/* ACK or NACK p and, for an ack=client subscription, every earlier delivery of it. A NACK
 * sends queue messages to the next consumer and drops topic messages. */
void rt_stomp_settle(rt_stomp_session *s, rt_stomp_pending *p, int nack);

void rt_stomp_queues_free(rt_stomp_server *ss);
/* Messages waiting in the queue named dest (for tests and metrics). */
size_t rt_stomp_queue_depth(rt_stomp_server *ss, const char *dest);

#endif
