/* The STOMP broker relay (Spring's enableStompBrokerRelay): destinations under the broker
 * prefixes live in an external STOMP broker (RabbitMQ), so queues, acknowledgements and
 * transactions work across every node connected to it.
 *
 * Each client session gets its own broker connection, opened once the app's auth said
 * yes; the client's CONNECTED waits for the broker's. Its SUBSCRIBE, UNSUBSCRIBE, SEND,
 * ACK, NACK, BEGIN, COMMIT, ABORT and DISCONNECT go to that connection and what the broker
 * answers comes back to the client alone, ERROR included (which also ends the session).
 * SENDs to the app prefix still run handlers here. A shared "system" connection carries
 * what the server sends on its own (stomp:send, send_to_user, session:reply) and tells
 * whether the broker is up: it reconnects with backoff, and while it is down new client
 * sessions are refused with "broker unavailable" and server sends fail.
 *
 * User destinations become broker topics (RabbitMQ's amq.topic exchange), so they reach
 * a user's sessions on every node: a session's SUBSCRIBE to <user>/queue/x listens on
 * "/topic/rtu.<user>.<rest>" (everything the user gets) and on
 * "/topic/rts.<node>.<session>.<rest>" (this session only, for session:reply), where
 * <user>, <session> and <rest> are written with every byte outside [A-Za-z0-9-] as _XX
 * (hex), so no name can reach into another's topic or act as a wildcard. */
#ifndef RT_STOMP_RELAY_H
#define RT_STOMP_RELAY_H

#include "stomp.h"

/* The client TLS context relay.tls asks for (verifying the broker; no ALPN). NULL with
 * err when its files do not load: rt.stomp checks this when the script loads. */
typedef struct rt_tls_ctx rt_tls_ctx;
rt_tls_ctx *rt_stomp_relay_tls_ctx(const rt_stomp_relay_config *c, char *err, size_t errlen);

/* Starts the system connection to ss->cfg.relay. NULL when out of memory. */
rt_stomp_relay *rt_stomp_relay_new(rt_stomp_server *ss);
/* Closes every broker connection; sessions still linked lose their link. */
void rt_stomp_relay_free(rt_stomp_relay *r);
/* Whether the system connection is up (tests, metrics). */
int rt_stomp_relay_up(const rt_stomp_relay *r);

/* s passed authentication: opens its broker connection, which ends in
 * rt_stomp_session_connected or in an ERROR to the client. -1: refused at once (ERROR
 * sent, the broker is known to be down). */
int rt_stomp_relay_session_open(rt_stomp_session *s);
/* A client frame, SEND to DISCONNECT, of a session with a broker connection. */
void rt_stomp_relay_frame(rt_stomp_session *s, const rt_stomp_frame *f);
/* The session is going away: its broker connection ends (DISCONNECT, then close). */
void rt_stomp_relay_session_end(rt_stomp_session *s);

/* Server-side sends through the system connection; 1 when handed to the broker, -1 with
 * err (the broker is down or not keeping up, or dest cannot go there). */
long rt_stomp_relay_publish(rt_stomp_relay *r, const char *dest, rt_chunk *body,
                            const char *ctype, const rt_stomp_header *extra, size_t nextra,
                            char *err, size_t errlen);
long rt_stomp_relay_publish_user(rt_stomp_relay *r, const char *user, const char *rest,
                                 rt_chunk *body, const char *ctype,
                                 const rt_stomp_header *extra, size_t nextra, char *err,
                                 size_t errlen);
/* To one session's subscriptions to a user destination (user prefix + "/queue/x"), on
 * whichever node it is; 0 for other destinations, which have no per-session topic. */
long rt_stomp_relay_send_to_session(rt_stomp_session *s, const char *dest, rt_chunk *body,
                                    const char *ctype, const rt_stomp_header *extra,
                                    size_t nextra);

#endif
