/* A connection: one socket, its read buffer, its write queue and its timers.
 *
 * Only conn.c reads and writes sockets. A protocol (HTTP/1.1, WebSocket, ...) plugs in
 * through rt_proto callbacks and may be swapped while the connection lives (an HTTP
 * request upgrading to WebSocket). Writes are queued and flushed once per loop turn, so
 * several replies leave in one writev. Closing is deferred while a callback up the stack
 * still holds the connection. */
#ifndef RT_CONN_H
#define RT_CONN_H

#include <ev.h>
#include <stdint.h>

#include "base/buf.h"

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;

typedef struct rt_proto {
  const char *name;
  void (*on_read)(rt_conn *c);          /* new bytes are in c->in */
  void (*on_drained)(rt_conn *c);       /* the write queue became empty */
  void (*on_tick)(rt_conn *c, double idle);  /* periodic; idle = seconds since traffic */
  void (*on_overflow)(rt_conn *c);      /* unsent output passed the bound: slow consumer */
  void (*on_script_error)(rt_conn *c);  /* a Lua handler for this conn raised */
  void (*on_shutdown)(rt_conn *c);      /* the server is stopping: say goodbye */
  void (*on_close)(rt_conn *c);         /* free the protocol state */
} rt_proto;

enum { RT_PROTO_HTTP1, RT_PROTO_WS, RT_PROTO_STOMP, RT_PROTO_H2, RT_PROTO_COUNT };

/* Kept small (most connections are idle: README, idle memory), with what a fan-out
 * delivery reads first, on the line the broker prefetches. */
struct rt_conn {
  rt_server *srv;
  const rt_proto *proto;
  void *pstate;
  rt_outq out;
  unsigned closing : 1, close_after_write : 1, read_paused : 1, queued_flush : 1,
      write_armed : 1, overflowed : 1, input_pending : 1,
      trim_when_drained : 1;   /* give the write queue's array back once it empties */
  int fd;
  rt_conn *next_flush;
  uint64_t id;                 /* slot + generation: what scripts hold */
  ev_io io;                    /* one watcher for reading and writing, set to what is
                                  wanted: not one for each */
  double last_active;
  rt_buf in;
  rt_conn *next_dead;
  struct rt_sub *subs;         /* broker subscriptions, dropped on close */
  char *user;                  /* who the peer authenticated as (presence), or NULL */
  struct rt_tls *tls;          /* TLS between the socket and c->in/c->out; NULL: plain */
  uint32_t slot;
  uint8_t proto_kind;
  char peer[];                 /* who is at the other end ("addr:port"), up to 63 bytes,
                                  allocated with the connection: no room kept for the
                                  longest address when most are short */
};

rt_conn *rt_conn_new(rt_server *srv, int fd, const char *peer);
void rt_conn_set_proto(rt_conn *c, const rt_proto *p, int kind, void *state);
/* Queues bytes; the flush happens before the loop next blocks. Returns -1 when closing. */
int rt_conn_write_chunk(rt_conn *c, rt_chunk *chunk);
int rt_conn_write(rt_conn *c, const void *p, size_t n);
/* Asks for a flush before the loop next blocks (the TLS layer has bytes to send). */
void rt_conn_schedule_flush(rt_conn *c);
void rt_conn_pause_read(rt_conn *c, int paused);
/* The connection will likely be quiet once the queued output is out (a WebSocket after
 * its handshake): its write queue then frees its array instead of keeping it for the
 * next write. */
void rt_conn_trim_when_drained(rt_conn *c);
/* Resumes reading, but hands bytes already buffered to the protocol on the next loop
 * turn, not now: the caller (an upgrade) is not done setting the connection up. */
void rt_conn_resume_read_later(rt_conn *c);
/* Ends the connection now (queued output is dropped). */
void rt_conn_close(rt_conn *c);
/* Ends it once the queued output is written, or after a grace period. */
void rt_conn_close_after_write(rt_conn *c);
void rt_conn_touch(rt_conn *c);
/* Are bytes from the peer waiting in the socket, not read yet (a timer that runs before
 * this loop turn's reads would otherwise take a live peer for a silent one)? */
int rt_conn_input_waiting(const rt_conn *c);
/* Names who the peer is (a STOMP login, what a script decided); NULL forgets it. */
int rt_conn_set_user(rt_conn *c, const char *user);
/* Looks a script's handle up; NULL when that connection is gone. */
rt_conn *rt_conn_find(rt_server *srv, uint64_t id);
/* Who is at the other end of a connection, also while it is closing (its close handlers
 * run then); NULL when it is gone. */
const char *rt_conn_peer_of(rt_server *srv, uint64_t id);

/* Server-side plumbing for conn.c. */
/* Small writes coalesce into chunks of this size, kept in srv->small_chunks for reuse:
 * up to RT_CONN_SPARE_CHUNKS of them (1 MiB) wait between loop turns. */
#define RT_CONN_SMALL_CHUNK 4096
#define RT_CONN_SPARE_CHUNKS 256
void rt_conn_flush_all(rt_server *srv);
void rt_conn_reap(rt_server *srv);

#endif
