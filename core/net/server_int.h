/* The server object: everything a running rtserver owns. Internal. */
#ifndef RT_SERVER_INT_H
#define RT_SERVER_INT_H

#include <ev.h>

#include "conn.h"
#include "base/log.h"
#include "base/map.h"
#include "rtserver.h"

typedef struct rt_broker rt_broker;
typedef struct rt_lua rt_lua;
typedef struct rt_listener rt_listener;
typedef struct rt_reload rt_reload;

typedef struct rt_metrics {
  long conns_open[RT_PROTO_COUNT];
  long conns_total;
  long msgs_in, msgs_out, deliveries;
  long slow_consumers;
  long lua_errors;
  long reloads, reload_failures;
  long http_requests;
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

  ev_prepare flush_watcher;
  rt_buf read_scratch;     /* connections read here first (conn.c) */
  int read_scratch_busy;
  rt_chunk_pool small_chunks;  /* write queues' coalescing chunks (conn.c) */
  rt_conn *flush_list;
  rt_conn *dead_list;

  rt_broker *broker;
  rt_lua *lua;
  rt_metrics metrics;
  rt_map labeled;          /* labeled counters: "name{labels}" -> double */
  rt_reload *reload;       /* file watchers for --watch */
  char *app_path;
  char *app_dir;
  int stopping;
};

#endif
