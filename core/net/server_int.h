/* The server object: everything a running rtserver owns. Internal. */
#ifndef RT_SERVER_INT_H
#define RT_SERVER_INT_H

#include <ev.h>

#include "conn.h"
#include "base/log.h"
#include "base/map.h"
#include "rtserver.h"
#include "tls.h"

typedef struct rt_broker rt_broker;
typedef struct rt_listener rt_listener;

typedef struct rt_metrics {
  long conns_open[RT_PROTO_COUNT];
  long conns_total;
  long msgs_in, msgs_out, deliveries;
  long ws_compressed_in, ws_compressed_out;  /* permessage-deflate messages */
  long ws_compressions;    /* messages compressed: a shared frame once per publish */
  long slow_consumers;
  long lua_errors;
  long reloads, reload_failures;
  long http_requests;
  long engine_published, engine_publish_failures, engine_received, engine_bad_messages;
  long engine_outages;
  long history_lost;            /* times a topic's subscribers were told they missed some */
  long history_reads_waiting;   /* recovering subscribers that waited for a history read */
  long history_reads;           /* history reads sent to the engine */
  long tls_handshakes, tls_resumed;
  long tls_failed[RT_TLS_FAIL_COUNT];  /* failed handshakes by reason */
  long tls_reloads, tls_reload_failures;
} rt_metrics;

struct rt_server {
  struct ev_loop *loop;
  rt_config cfg;
  rt_log log;
  rt_listener *listeners;
  int port;

  /* Connection handles: slot index + generation, so a stale handle finds nothing. */
  rt_conn **slots;
  uint32_t *slot_gen;
  uint32_t *free_slots;
  uint32_t nslots, nfree, cap_slots;
  int nconns;
  /* One timer ticks every connection (conn.c): runs while there are connections. */
  ev_timer conn_tick;
  double conn_tick_last;   /* when the protocols' on_tick last ran */

  ev_prepare flush_watcher;
  rt_buf read_scratch;     /* connections read here first (conn.c) */
  int read_scratch_busy;
  rt_chunk_pool small_chunks;  /* write queues' coalescing chunks (conn.c) */
  rt_buf tls_scratch;      /* TLS connections encrypt here first (tls.c) */
  int tls_scratch_busy;
  struct rt_tls_ctx *tls;  /* the listening port's certificate; NULL: plain */
  struct rt_tls_watch *tls_watch;  /* --watch on the certificate files */
  rt_conn *flush_list;
  rt_conn *dead_list;

  rt_broker *broker;
  struct rt_engine *engine;  /* behind the broker when running on several processes */
  struct rt_worker *worker;  /* this process is one of --workers (net/workers.h) */
  rt_app app;              /* who serves requests: the Lua bridge or a C host */
  /* A connection that opens with the HTTP/2 preface goes here (the layer that serves
   * HTTP/2 streams sets it: gRPC); NULL: HTTP/1.1 answers it as a bad request. */
  void (*h2_start)(rt_conn *c);
  rt_metrics metrics;
  rt_map labeled;          /* labeled counters: "name{labels}" -> double */
  /* permessage-deflate's shared zlib streams: the ws layer makes them on first need and
   * says how to free them (ws/ws_compress.c). */
  struct rt_ws_z *ws_z;
  void (*ws_z_free)(rt_server *srv);
  int stopping;
};

/* Takes l (and the listeners chained to it) into the server's list; the first one's port
 * becomes rt_server_port's answer. */
void rt_server_add_listeners(rt_server *srv, rt_listener *l);

#endif
