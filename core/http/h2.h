/* HTTP/2 server connections on nghttp2 (RFC 9113), cleartext with prior knowledge.
 *
 * nghttp2 parses and frames; this file feeds it the connection's bytes (mem_recv) and
 * queues what it produces (mem_send) on the connection's write queue. Every stream is a
 * gRPC call (grpc_server.c); nghttp2 callbacks only change the calls' state, and what the
 * app must hear about is delivered after nghttp2 returns (rt_h2_pump), so a Lua handler
 * never runs inside the library.
 *
 * Bounds: the write queue is filled only up to H2 high water, and refilled when it
 * drains; a stream's response bytes wait in the call and leave as the peer's flow-control
 * window allows (DEFERRED + resume_data). Inbound, window updates are sent only for bytes
 * the app has taken (see grpc_server.c), so a peer that sends faster than a handler reads
 * stalls on its window instead of growing our memory. */
#ifndef RT_H2_H
#define RT_H2_H

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/conn.h"

typedef struct rt_grpc_srv_call rt_grpc_srv_call;

/* Advertised in SETTINGS; the same numbers bound what a peer can make us hold. */
#define RT_H2_MAX_STREAMS 100          /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define RT_H2_STREAM_WINDOW (256 * 1024) /* SETTINGS_INITIAL_WINDOW_SIZE */
#define RT_H2_CONN_WINDOW (4 * 1024 * 1024)
#define RT_H2_MAX_FRAME 16384          /* SETTINGS_MAX_FRAME_SIZE (the RFC minimum) */
#define RT_H2_OUT_HIGH (256 * 1024)    /* write-queue bytes before we stop asking nghttp2 */
#define RT_H2_MAX_RESETS 200           /* RST_STREAM per second before ENHANCE_YOUR_CALM */

typedef struct rt_h2 {
  rt_conn *c;
  nghttp2_session *session;
  rt_grpc_srv_call *calls;   /* calls whose stream is open, linked through the call */
  rt_grpc_srv_call *events;  /* calls with news for the app, in order */
  rt_grpc_srv_call *events_tail;
  rt_buf stage;          /* mem_send output gathered into one chunk */
  ev_timer later;        /* pumps again next loop turn when one pump did not settle all */
  int depth;             /* rt_h2 functions on the stack: free waits for 0 */
  unsigned pumping : 1, again : 1, dead : 1, going_away : 1;
  unsigned in_lib : 1;    /* inside mem_recv/mem_send: no sending from callbacks */
  double reset_window;   /* start of the second RST_STREAMs are counted in */
  unsigned resets;
} rt_h2;

/* Takes the connection over; c->in holds the client's preface and maybe more. */
void rt_h2_start(rt_conn *c);
int rt_h2_is_h2(const rt_conn *c);
/* GOAWAY: calls in flight finish, then the connection closes. */
void rt_h2_shutdown(rt_conn *c);
/* Sends what nghttp2 has and delivers pending call events; safe to call from anywhere,
 * including from inside itself (the outer call loops again). */
void rt_h2_pump(rt_h2 *h);

#endif
