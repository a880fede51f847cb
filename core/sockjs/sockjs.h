/* SockJS endpoints and sessions (protocol 0.3.3, what sockjs-client 1.x speaks).
 *
 * A SockJS session outlives the HTTP requests that carry it: messages queue while no
 * request is attached, and a request that attaches ("a receiver": a streaming or polling
 * response, or a WebSocket) takes what waits. Each session owns a connection of its own
 * (rt_conn, with an eventfd that never becomes readable in place of a socket), so it has a
 * connection id that scripts hold, broker subscriptions that end with it, and STOMP's
 * transport interface works on it unchanged (sockjs_stomp.c). That costs one descriptor
 * per session; sessions are bounded per endpoint.
 *
 * Files: sockjs_frame.c (framing, I/O-free), sockjs.c (sessions: queue, receivers,
 * heartbeats, timeouts), sockjs_http.c (the endpoint's URLs and the HTTP transports),
 * sockjs_stomp.c (STOMP over SockJS), lua_sockjs.c (scripts). */
#ifndef RT_SOCKJS_H
#define RT_SOCKJS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/conn.h"
#include "http/http1_parser.h"
#include "base/map.h"
#include "sockjs_frame.h"

#define RT_SOCKJS_MAX_ORIGINS 16
#define RT_SOCKJS_MAX_ENDPOINTS 64

typedef struct rt_sockjs_config {
  double heartbeat;          /* seconds of silence on a receiver before an "h" frame */
  double disconnect_delay;   /* seconds a session lives with no receiver attached */
  size_t response_limit;     /* bytes a streaming response carries before it ends */
  int websocket;             /* the websocket transport is offered (/info says so) */
  int cookie;                /* JSESSIONID cookie, for sticky load balancers */
  int hixie76;               /* the websocket transport also speaks WebSocket draft 76 */
  size_t max_message;        /* bytes of one xhr_send/jsonp_send body or WebSocket message */
  size_t max_queue;          /* messages waiting for a receiver, per session */
  size_t max_queue_bytes;    /* their bytes */
  int max_sessions;          /* per endpoint, closed ones included until they expire */
  int stomp;                 /* sessions speak STOMP (the hooks attach them) */
  char sockjs_url[256];      /* the client library the iframe page loads */
  char origins[RT_SOCKJS_MAX_ORIGINS][128];  /* allowed Origin values; none = any */
  int norigins;
} rt_sockjs_config;

void rt_sockjs_config_init(rt_sockjs_config *cfg);

typedef struct rt_sockjs_server rt_sockjs_server;
typedef struct rt_sockjs_endpoint rt_sockjs_endpoint;
typedef struct rt_sockjs_session rt_sockjs_session;

/* What the application hears. lua_sockjs.c implements these for scripts. */
typedef struct rt_sockjs_hooks {
  /* A new session; req is the request that opened it (valid during the call only). */
  void (*on_open)(void *ud, rt_sockjs_session *s, const rt_http_req *req);
  void (*on_message)(void *ud, rt_sockjs_session *s, const uint8_t *msg, size_t len);
  /* Once per opened session, when it ends (the session's connection is closing). */
  void (*on_close)(void *ud, rt_sockjs_session *s, int code, const char *reason);
  void *ud;
} rt_sockjs_hooks;

/* Something in C that takes a session's messages instead of the hooks (STOMP). */
typedef struct rt_sockjs_sink {
  void (*on_message)(rt_sockjs_session *s, void *data, const uint8_t *msg, size_t len);
  void (*on_close)(rt_sockjs_session *s, void *data);     /* the session ended */
  void (*on_shutdown)(rt_sockjs_session *s, void *data);  /* the server stops; NULL: close */
  void *data;
} rt_sockjs_sink;

enum { RT_SOCKJS_S_OPEN, RT_SOCKJS_S_CLOSED };

struct rt_sockjs_session {
  rt_sockjs_endpoint *ep;
  char sid[RT_SOCKJS_MAX_ID + 1];  /* "" for WebSocket sessions, which are not looked up */
  int registered;            /* in ep->sessions under sid */
  rt_conn *conn;             /* the session's own connection; NULL once it closed */
  uint64_t conn_id;
  int state;
  int opened;                /* the application heard on_open: it hears on_close too */
  int first_transport;       /* the transport of the request that opened it */
  /* The receiver: a streaming or polling response, or the WebSocket. */
  rt_conn *recv;
  int recv_transport;
  size_t recv_sent;          /* body bytes on this response, for the response limit */
  char callback[RT_SOCKJS_MAX_CALLBACK + 1];
  /* Messages waiting for the receiver, each quoted once (rt_sockjs_quote). */
  rt_chunk **q;
  size_t qhead, qlen, qcap, qbytes;
  ev_timer timer;            /* heartbeat while attached, disconnect delay while not */
  int close_code;            /* the close frame later requests get */
  char close_reason[128];
  rt_sockjs_sink sink;
  int busy, dead;            /* dead: gone from everywhere, freed when busy drops to 0 */
  int shutting_down;         /* the server stops: closes say 1001 */
  int flush_queued;
  rt_sockjs_session *flush_next;
  rt_sockjs_session *all_prev, *all_next;  /* every session of the endpoint */
  char peer[64];
};

struct rt_sockjs_endpoint {
  rt_sockjs_server *sj;
  char *prefix;
  rt_sockjs_config cfg;
  rt_map sessions;           /* sid -> session (HTTP-transport sessions) */
  int nsessions;             /* all of its sessions, WebSocket ones and closed ones too */
  rt_sockjs_session *all;
  rt_buf iframe;             /* the iframe page, built from cfg.sockjs_url */
  char etag[24];
};

struct rt_sockjs_server {
  rt_server *srv;
  rt_sockjs_hooks hooks;
  rt_map endpoints;          /* prefix -> endpoint */
  ev_prepare flusher;        /* sends what sessions queued this loop turn, in one frame */
  rt_sockjs_session *flush_list;
  rt_chunk *comma;           /* shared pieces of a[...] frames */
  rt_chunk *affix[RT_SOCKJS_TRANSPORTS][2];
  rt_buf scratch;
  long sessions_total;
};

rt_sockjs_server *rt_sockjs_server_new(rt_server *srv, const rt_sockjs_hooks *hooks);
/* Closes every session (their connections close, the hooks hear it) and frees. */
void rt_sockjs_server_free(rt_sockjs_server *sj);
/* Adds an endpoint at prefix ("/echo"), or gives an existing one the new settings (a
 * reload). Returns NULL with err on a bad prefix, too many endpoints or OOM. */
rt_sockjs_endpoint *rt_sockjs_endpoint_set(rt_sockjs_server *sj, const char *prefix,
                                           const rt_sockjs_config *cfg, char *err, size_t errlen);
rt_sockjs_endpoint *rt_sockjs_endpoint_find(rt_sockjs_server *sj, const char *prefix);

/* Answers the HTTP request c is handling, whose path is under ep's prefix (sockjs_http.c):
 * the greeting, /info, the iframe page, the session transports. */
void rt_sockjs_http(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req);
/* With --workers: passes a request of session sid to the worker that holds it
 * (sockjs_route.c); 1 when it did (c is gone), 0 to serve it here. */
int rt_sockjs_route(rt_server *srv, rt_conn *c, const rt_http_req *req, const char *sid);

/* ---- sessions (sockjs.c) --------------------------------------------------------------- */

/* A new session with its own connection; sid "" for a WebSocket session. NULL when the
 * endpoint is full, a descriptor or memory is short (err says which). */
rt_sockjs_session *rt_sockjs_session_new(rt_sockjs_endpoint *ep, const char *sid, const char *peer,
                                         char *err, size_t errlen);
rt_sockjs_session *rt_sockjs_session_find(rt_sockjs_endpoint *ep, const char *sid);
/* The session whose own connection is c, or NULL. */
rt_sockjs_session *rt_sockjs_session_of(const rt_conn *c);
/* Tells the application (hooks.on_open, once). */
void rt_sockjs_session_opened(rt_sockjs_session *s, const rt_http_req *req);
/* Queues a message (text; bytes that are not UTF-8 arrive as U+FFFD). Returns 0, or -1
 * when the session is closed or its queue is over the bound (it closes then: a slow
 * consumer). */
int rt_sockjs_session_send(rt_sockjs_session *s, const void *msg, size_t len);
/* Queues a message already quoted (shared by every session a publish reaches). */
int rt_sockjs_session_send_quoted(rt_sockjs_session *s, rt_chunk *quoted);
/* Closes the session with c[code,"reason"]: what is queued goes first when a receiver is
 * attached, the application hears on_close, and later requests get the close frame until
 * the session expires. */
void rt_sockjs_session_close(rt_sockjs_session *s, int code, const char *reason);
/* A message from the client, to the sink or the application. */
void rt_sockjs_session_deliver(rt_sockjs_session *s, const uint8_t *msg, size_t len);
/* A client payload already checked with rt_sockjs_parse_messages: each message in turn,
 * until the session closes. */
void rt_sockjs_session_deliver_payload(rt_sockjs_session *s, const uint8_t *p, size_t n);
void rt_sockjs_session_set_sink(rt_sockjs_session *s, const rt_sockjs_sink *sink);
/* The server is stopping: the sink says goodbye (STOMP ERROR), then c[1001,...]. */
void rt_sockjs_session_shutdown(rt_sockjs_session *s);
/* Broker deliver function for sessions subscribed to a topic (sub->data is the session):
 * the body is quoted once per publish and shared. */
struct rt_sub;
struct rt_msg;
void rt_sockjs_deliver(struct rt_sub *sub, struct rt_msg *m);
/* Whoever reaches a session from outside holds it across calls that may close it;
 * release returns -1 when it is gone. */
void rt_sockjs_session_hold(rt_sockjs_session *s);
int rt_sockjs_session_release(rt_sockjs_session *s);

/* Receivers. attach_http starts the response to the request c is handling (status 200 and
 * headers given), sends the prelude and, when open_frame, "o"; then what is queued. A
 * second receiver gets c[2010,"Another connection still open"]; a closed session's gets
 * its close frame. attach_ws takes a WebSocket (already accepted) as the receiver. */
void rt_sockjs_attach_http(rt_sockjs_session *s, rt_conn *c, int transport, const char *callback,
                           const char *const *headers, int nheaders, int open_frame);
void rt_sockjs_attach_ws(rt_sockjs_session *s, rt_conn *ws);
/* Writes one frame (o, h, c[...]) to a response that is not a session's receiver, and ends
 * it (the 2010 answer, a closed session's close frame). */
void rt_sockjs_answer_frame(rt_sockjs_server *sj, rt_conn *c, int transport, const char *callback,
                            const char *const *headers, int nheaders, const char *frame);

/* ---- STOMP over SockJS (sockjs_stomp.c) ------------------------------------------------- */

/* Makes s, an open session, a STOMP session of ss: the session's messages are STOMP
 * frames (a frame per SockJS message as stomp.js sends them, though the parser does not
 * care) and each frame the STOMP session sends is one SockJS message. */
struct rt_stomp_server;
struct rt_stomp_session;
struct rt_stomp_session *rt_sockjs_stomp_attach(struct rt_stomp_server *ss, rt_sockjs_session *s);

#endif
