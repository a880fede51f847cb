/* The relay's insides, shared by stomp_relay.c (broker connections: dial, CONNECT,
 * heart-beats, reconnecting) and stomp_relay_route.c (which frame goes where). */
#ifndef RT_STOMP_RELAY_INT_H
#define RT_STOMP_RELAY_INT_H

#include "net/dial.h"
#include "stomp_relay.h"

enum { LINK_DIALING, LINK_CONNECTING, LINK_UP, LINK_CLOSED };

/* A client subscription as the client named it; the broker knows it as "c:<id>", or for
 * a user destination as "u:<id>" (the user's topic) and "s:<id>" (the session's). */
typedef struct relay_sub {
  struct relay_sub *next;
  char *id, *dest;
  int user;
} relay_sub;

struct rt_stomp_link {
  rt_stomp_relay *r;
  rt_stomp_session *s;        /* NULL: the system connection */
  rt_stomp_link *prev, *next; /* every link of the relay */
  rt_dial *dial;
  rt_conn *conn;
  rt_stomp_parser *parser;
  int state, version;         /* version: the STOMP version spoken with the broker */
  int busy, dead;             /* freed when dead and no callback holds it */
  ev_timer timer;             /* the CONNECTED deadline, then heart-beats */
  double send_iv, recv_iv, last_rx, last_tx;
  int client_paused;          /* the client's reading waits for this link to drain */
  char *disconnect_receipt;   /* the client's DISCONNECT waits for this RECEIPT */
  relay_sub *subs;
  int nsubs;
  rt_stomp_buf scratch;
};

struct rt_stomp_relay {
  rt_stomp_server *ss;
  rt_stomp_link *sys;         /* the system connection (NULL between attempts) */
  rt_stomp_link *links;
  ev_timer retry;
  double backoff;
  int stopping;
  char node[24];              /* random: session topics are unique across nodes */
  char why[256];              /* why the system connection is down */
  rt_tls_ctx *tls;            /* to the broker, when relay.tls; made on first use */
  char tls_key[1600];         /* the settings it was made from */
};

#define RELAY_MAX_HEADERS 128

/* Writes a frame to the broker. -1: the link cannot take it. */
int rt_relay_link_send(rt_stomp_link *l, rt_stomp_command cmd, const rt_stomp_header *h,
                       size_t nh, const void *body, size_t len, rt_chunk *body_chunk);
/* A frame from the broker (stomp_relay_route.c). */
void rt_relay_broker_frame(rt_stomp_link *l, const rt_stomp_frame *f);
/* The broker said CONNECTED. */
void rt_relay_link_up(rt_stomp_link *l, const rt_stomp_frame *f);
/* The broker connection failed or went away: the session hears of it, the system link
 * retries later. */
void rt_relay_link_lost(rt_stomp_link *l, const char *why);
/* Ends the link (and its connection once what is queued has left). */
void rt_relay_link_close(rt_stomp_link *l);
void rt_relay_subs_free(rt_stomp_link *l);
void rt_relay_count(rt_stomp_relay *r, const char *name, const char *link);

#endif
