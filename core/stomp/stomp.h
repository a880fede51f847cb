/* STOMP 1.0/1.1/1.2 sessions, independent of the transport (WebSocket or TCP).
 *
 * A transport hands a session the bytes it reads (rt_stomp_session_feed) and tells it when
 * the connection is gone (rt_stomp_session_closed); the session answers through the
 * transport's send/close. One rt_stomp_server per rt_server holds the configuration, the
 * queues and the sessions; topics live in the shared broker (broker.c), so a Lua publish
 * and a STOMP SEND reach raw WebSocket and STOMP subscribers alike.
 *
 * The application is told about CONNECT (authentication), SEND to the app prefix and the
 * end of a session through rt_stomp_hooks; lua_stomp.c implements them. Hooks may answer
 * later (a Lua auth function that yields): the session holds its input until then. */
#ifndef RT_STOMP_H
#define RT_STOMP_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "net/broker.h"
#include "base/buf.h"
#include "net/conn.h"
#include "base/map.h"
#include "stomp_frame.h"

#define RT_STOMP_MAX_PREFIXES 8
#define RT_STOMP_PREFIX_LEN 64

/* The broker relay (stomp_relay.c): where the external broker is and how to talk to it. */
typedef struct rt_stomp_relay_config {
  int on;                     /* 0: the built-in broker serves the broker prefixes */
  char host[256];
  int port;
  char login[128], passcode[128], vhost[128];
  unsigned hb_send_ms, hb_recv_ms;  /* heart-beats with the broker: cx, cy */
  double connect_timeout;     /* seconds from dial to the broker's CONNECTED */
  double reconnect_min, reconnect_max;  /* the system connection's backoff, seconds */
  /* TLS to the broker: the server's certificate is verified against ca (empty: the
   * system's CAs) for server_name (empty: host) unless no_verify; cert/key: a client
   * certificate for brokers that ask for one. */
  int tls, tls_no_verify;
  char tls_ca[512], tls_cert[512], tls_key[512], tls_server_name[256];
} rt_stomp_relay_config;

typedef struct rt_stomp_config {
  char app_prefix[RT_STOMP_PREFIX_LEN];   /* SEND here runs a Lua handler ("/app") */
  char user_prefix[RT_STOMP_PREFIX_LEN];  /* per-user destinations ("/user") */
  char topics[RT_STOMP_MAX_PREFIXES][RT_STOMP_PREFIX_LEN];  /* broadcast ("/topic") */
  char queues[RT_STOMP_MAX_PREFIXES][RT_STOMP_PREFIX_LEN];  /* one consumer each ("/queue") */
  int ntopics, nqueues;
  unsigned hb_send_ms;        /* the server can send heart-beats this often (0 = never) */
  unsigned hb_recv_ms;        /* and wants the client's this often (0 = does not care) */
  rt_stomp_limits limits;     /* frame body, header count and line length */
  size_t max_destination;     /* bytes in a destination name */
  int max_subscriptions;      /* per session */
  int max_unacked;            /* messages awaiting ACK, per session */
  int max_transactions;       /* open at once, per session */
  int max_tx_frames;          /* SEND/ACK/NACK frames buffered in one transaction */
  size_t max_tx_bytes;        /* body bytes buffered in one transaction */
  size_t max_queue_messages;  /* waiting in one queue */
  size_t max_queued_bytes;    /* body bytes waiting in all queues together */
  double connect_timeout;     /* seconds from accept to CONNECTED (incl. authentication) */
  rt_stomp_relay_config relay;
} rt_stomp_config;

void rt_stomp_config_init(rt_stomp_config *cfg);

typedef struct rt_stomp_server rt_stomp_server;
typedef struct rt_stomp_session rt_stomp_session;
typedef struct rt_stomp_sub rt_stomp_sub;
typedef struct rt_stomp_pending rt_stomp_pending;
typedef struct rt_stomp_queue rt_stomp_queue;
typedef struct rt_stomp_qmsg rt_stomp_qmsg;
typedef struct rt_stomp_tx rt_stomp_tx;
typedef struct rt_stomp_relay rt_stomp_relay;
typedef struct rt_stomp_link rt_stomp_link;

typedef struct rt_stomp_hooks {
  /* A CONNECT/STOMP frame: must end in rt_stomp_session_accept or _refuse, now or later.
   * NULL: every client is accepted, with no user. */
  void (*on_connect)(void *ud, rt_stomp_session *s, const rt_stomp_frame *f);
  /* A SEND to the app prefix; path is the destination without the prefix. */
  void (*on_send)(void *ud, rt_stomp_session *s, const rt_stomp_frame *f, const char *path);
  /* An accepted session is gone. */
  void (*on_closed)(void *ud, uint64_t conn_id);
  void *ud;
} rt_stomp_hooks;

typedef struct rt_stomp_transport {
  const char *name;
  /* Queues chunks as one frame (WebSocket: one message; text says it is valid UTF-8).
   * Returns -1 when the connection cannot take it (closing, slow consumer). */
  int (*send)(rt_conn *c, rt_chunk *const *chunks, int n, int text);
  /* Ends the connection once what is queued has left; error: after an ERROR frame. */
  void (*close)(rt_conn *c, int error);
  /* Optional, for fan-out: one chunk holding the frame as this transport puts it on the
   * wire (WebSocket: with the message header), and a way to queue such a chunk as is, so
   * one chunk serves every ack:auto subscriber with the same subscription id. */
  rt_chunk *(*wire)(rt_server *srv, rt_chunk *const *chunks, int n, int text);
  int (*send_wire)(rt_conn *c, rt_chunk *wire);
} rt_stomp_transport;

enum { RT_STOMP_ACK_AUTO, RT_STOMP_ACK_CLIENT, RT_STOMP_ACK_INDIVIDUAL };
enum { RT_STOMP_DEST_NONE, RT_STOMP_DEST_APP, RT_STOMP_DEST_TOPIC, RT_STOMP_DEST_QUEUE,
       RT_STOMP_DEST_USER };
enum { RT_STOMP_S_CONNECTING, RT_STOMP_S_AUTH, RT_STOMP_S_CONNECTED, RT_STOMP_S_CLOSING };

struct rt_stomp_sub {
  rt_stomp_session *s;
  char *id;
  char *dest;                 /* as the client wrote it */
  int ack, kind;
  rt_sub *bsub;               /* broker subscription (topics, user destinations) */
  char *recover_receipt;      /* a recovery that waits for a history read: its RECEIPT id */
  rt_stomp_queue *queue;      /* queue consumer */
  rt_chunk *prefix;           /* "MESSAGE\nsubscription:<id>\n", built once */
  int prefix_text;
  /* ack:auto over a transport with shared wire frames: the session's transport, so a
   * fan-out delivery never reads the session; NULL otherwise. Such deliveries note when
   * they were queued here, not in the session (see rt_stomp_session_last_tx). */
  const rt_stomp_transport *wire_tp;
  double last_tx;
  int unacked, max_unacked;   /* max_unacked: prefetch-count for queues */
  rt_stomp_sub *next;
};

/* A delivery waiting for ACK/NACK, in the session's list in delivery order. */
struct rt_stomp_pending {
  rt_stomp_sub *sub;
  uint64_t ack_id, msg_id;
  rt_stomp_qmsg *qmsg;        /* a queue message to redeliver; NULL for topics */
  rt_stomp_pending *prev, *next;
};

struct rt_stomp_session {
  rt_stomp_server *ss;
  rt_conn *conn;
  uint64_t conn_id;
  const rt_stomp_transport *tp;
  rt_stomp_parser *parser;
  int state, version;         /* version: 10, 11 or 12 */
  int accepted;               /* got CONNECTED: the app hears of its end */
  char id[32];
  char *user;                 /* the authenticated name, or NULL */
  rt_buf held;                /* input that arrived while authentication runs */
  rt_stomp_sub *subs;
  int nsubs;
  rt_stomp_pending *phead, *ptail;
  int npending;
  rt_stomp_tx *txs;
  int ntx;
  uint64_t next_ack;
  ev_timer timer;             /* connect timeout, then heart-beats */
  double send_iv, recv_iv;    /* negotiated heart-beats, seconds (0 = off) */
  double last_rx, last_tx;
  int busy, dead;             /* dead: its connection is gone; freed when busy drops to 0 */
  rt_stomp_buf scratch;
  rt_stomp_link *link;        /* its broker connection when the relay is on */
};

struct rt_stomp_server {
  rt_server *srv;
  rt_stomp_config cfg;
  rt_stomp_hooks hooks;
  rt_map sessions;            /* decimal conn id -> session */
  rt_map queues;              /* name -> rt_stomp_queue */
  rt_map prefixes;            /* subscription id -> its shared "MESSAGE\nsubscription:" chunk */
  size_t queued_bytes;
  uint64_t next_msg_id;
  rt_chunk *nul, *eol;        /* the frame terminator and a heart-beat, shared */
  struct rt_listener *tcp;    /* STOMP over TCP listeners */
  int tcp_port;
  ev_timer tcp_defer;         /* listens once the main server's addresses are known */
  char tcp_host[64];
  int tcp_want;               /* the port asked for, -1 = none */
  int tcp_tls;                /* the TCP port speaks TLS with the server's certificate */
  rt_stomp_buf scratch;
  rt_stomp_relay *relay;      /* the broker relay, when configured */
};

rt_stomp_server *rt_stomp_server_new(rt_server *srv, const rt_stomp_config *cfg,
                                     const rt_stomp_hooks *hooks);
/* New settings for new sessions (existing ones keep what they negotiated). */
void rt_stomp_server_configure(rt_stomp_server *ss, const rt_stomp_config *cfg);
void rt_stomp_server_free(rt_stomp_server *ss);
void rt_stomp_prefixes_free(rt_stomp_server *ss);
rt_stomp_session *rt_stomp_server_session(rt_stomp_server *ss, uint64_t conn_id);

/* Which kind of destination d is, by prefix. */
int rt_stomp_dest_kind(const rt_stomp_config *cfg, const char *d);

rt_stomp_session *rt_stomp_session_new(rt_stomp_server *ss, rt_conn *c,
                                       const rt_stomp_transport *tp);
void rt_stomp_session_feed(rt_stomp_session *s, const uint8_t *data, size_t len);
/* The connection is gone: subscriptions end, unacknowledged queue messages go back. */
void rt_stomp_session_closed(rt_stomp_session *s);
/* Ends authentication: CONNECTED (user may be NULL), or ERROR and close. */
int rt_stomp_session_accept(rt_stomp_session *s, const char *user);
void rt_stomp_session_refuse(rt_stomp_session *s, const char *why);
/* With the relay, accept waits for the broker: this sends CONNECTED when it said yes. */
int rt_stomp_session_connected(rt_stomp_session *s);
/* Ends the session once what is queued has left; error: an ERROR frame was the last. */
void rt_stomp_session_end(rt_stomp_session *s, int error);
/* ERROR frame (message header, detail as body) and close. */
void rt_stomp_session_error(rt_stomp_session *s, const rt_stomp_frame *cause,
                            const char *message, const char *detail);
/* The server is stopping. */
void rt_stomp_session_shutdown(rt_stomp_session *s);
/* When the session last queued something for its peer (heart-beats are due after that). */
double rt_stomp_session_last_tx(const rt_stomp_session *s);
/* Whoever reaches a session from outside (a transport event, a timer, a delivery, a Lua
 * call) holds it: a close meanwhile only marks it dead, and the last release frees it.
 * release returns -1 when s is gone. */
void rt_stomp_session_hold(rt_stomp_session *s);
int rt_stomp_session_release(rt_stomp_session *s);
/* Queues one frame, built by the caller, as one transport message. */
int rt_stomp_session_send(rt_stomp_session *s, rt_chunk *const *chunks, int n, int text);
/* Encodes one frame and sends it. 0, or -1 (out of memory, or the session is closing). */
int rt_stomp_session_send_frame(rt_stomp_session *s, rt_stomp_command cmd,
                                const rt_stomp_header *h, size_t nh, const void *body, size_t len);

/* STOMP over TCP: listens on host:port (port 0 picks one; host NULL = the main server's
 * addresses, or 127.0.0.1 before it listens). Returns the port or -1 with err. */
int rt_stomp_tcp_listen(rt_stomp_server *ss, const char *host, int port, char *err,
                        size_t errlen);
void rt_stomp_tcp_close(rt_stomp_server *ss);
/* Makes c, just accepted, a STOMP over TCP connection. */
rt_stomp_session *rt_stomp_tcp_attach(rt_stomp_server *ss, rt_conn *c);
/* Makes c, an open WebSocket, a STOMP over WebSocket connection. */
rt_stomp_session *rt_stomp_ws_attach(rt_stomp_server *ss, rt_conn *c);

#endif
