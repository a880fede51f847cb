/* HTTP/2 server connections on nghttp2 (RFC 9113), cleartext with prior knowledge.
 *
 * nghttp2 parses and frames; this file feeds it the connection's bytes (mem_recv) and
 * queues what it produces (mem_send) on the connection's write queue. What the streams
 * are is the business of the layer above, through an rt_h2_streams table (gRPC calls:
 * grpc/grpc_server.c). nghttp2 callbacks only change stream state, and what the app must
 * hear about is delivered after nghttp2 returns (rt_h2_pump, through streams->run), so no
 * app code ever runs inside the library.
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

typedef struct rt_h2 rt_h2;

/* What serves the streams of a connection. A stream is the layer's own object (void *);
 * the per-connection lists below are the layer's too, kept in rt_h2 so a connection costs
 * one allocation. The stream_* functions run inside nghttp2's callbacks: they may change
 * state and queue news, never call the app. */
typedef struct rt_h2_streams {
  /* A request's HEADERS begin. NULL (out of memory) resets just this stream. */
  void *(*stream_open)(rt_h2 *h, int32_t sid);
  void (*stream_header)(void *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                        size_t valuelen);
  void (*stream_headers_done)(void *st);
  /* Flow-control credit for these bytes is the layer's to give back (no auto update). */
  void (*stream_data)(void *st, const uint8_t *data, size_t len);
  void (*stream_end)(void *st);                         /* the client ended its side */
  void (*stream_close)(void *st, uint32_t error_code);  /* the stream is gone */
  int (*stream_input_open)(const void *st);             /* the client has not ended yet */
  /* Delivers the queued news to the app (outside nghttp2). */
  void (*run)(rt_h2 *h);
  /* The connection is gone: every stream is detached and the app told at once. */
  void (*detach_all)(rt_h2 *h);
  unsigned (*open_count)(const rt_h2 *h);
} rt_h2_streams;

/* Advertised in SETTINGS; the same numbers bound what a peer can make us hold. */
#define RT_H2_MAX_STREAMS 100          /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define RT_H2_STREAM_WINDOW (256 * 1024) /* SETTINGS_INITIAL_WINDOW_SIZE */
#define RT_H2_CONN_WINDOW (4 * 1024 * 1024)
#define RT_H2_MAX_FRAME 16384          /* SETTINGS_MAX_FRAME_SIZE (the RFC minimum) */
#define RT_H2_OUT_HIGH (256 * 1024)    /* write-queue bytes before we stop asking nghttp2 */
#define RT_H2_MAX_RESETS 200           /* RST_STREAM per second before ENHANCE_YOUR_CALM */

struct rt_h2 {
  rt_conn *c;
  nghttp2_session *session;
  const rt_h2_streams *streams;
  void *open;              /* the layer's open streams (a list of its own objects) */
  void *news;              /* streams with news for the app, in order; NULL when none */
  void *news_tail;
  rt_buf stage;          /* mem_send output gathered into one chunk */
  ev_timer later;        /* pumps again next loop turn when one pump did not settle all */
  int depth;             /* rt_h2 functions on the stack: free waits for 0 */
  unsigned pumping : 1, again : 1, dead : 1, going_away : 1;
  unsigned in_lib : 1;    /* inside mem_recv/mem_send: no sending from callbacks */
  double reset_window;   /* start of the second RST_STREAMs are counted in */
  unsigned resets;
};

/* Takes the connection over, its streams served by streams; c->in holds the client's
 * preface and maybe more. */
void rt_h2_start(rt_conn *c, const rt_h2_streams *streams);
int rt_h2_is_h2(const rt_conn *c);
/* GOAWAY: calls in flight finish, then the connection closes. */
void rt_h2_shutdown(rt_conn *c);
/* Sends what nghttp2 has and delivers pending call events; safe to call from anywhere,
 * including from inside itself (the outer call loops again). */
void rt_h2_pump(rt_h2 *h);

#endif
