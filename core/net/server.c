/* The server object: config, loop hooks, listeners, the broker and the app table. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker.h"
#include "listen.h"
#include "metrics.h"
#include "server_int.h"
#include "workers.h"
#include "tls.h"
#include "tls_server.h"

void rt_config_init(rt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = RT_LOG_INFO;
  cfg->idle_timeout = 60;
  cfg->ws_ping_interval = 30;
  cfg->ws_idle_timeout = 75;
  cfg->max_header_bytes = 16 * 1024;
  cfg->max_body_bytes = 1024 * 1024;
  cfg->max_ws_message = 1024 * 1024;
  cfg->ws_deflate = 1;
  cfg->ws_deflate_min = 256;
  cfg->max_output_bytes = 4 * 1024 * 1024;
  cfg->drain_timeout = 10;
  cfg->tls_handshake_timeout = 10;
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
  rt_server *srv = w->data;
  rt_conn_flush_all(srv);
  rt_conn_reap(srv);
}

rt_server *rt_server_new(struct ev_loop *loop, const rt_config *cfg, char *err, size_t errlen) {
  rt_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  srv->loop = loop;
  if (cfg) srv->cfg = *cfg;
  else rt_config_init(&srv->cfg);
  srv->log.level = srv->cfg.log_level;
  srv->log.json = srv->cfg.log_json;
  if (!srv->cfg.max_connections) {
    /* Leave room for files the app opens, timers' fds and the listeners. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      srv->cfg.max_connections = rl.rlim_cur > 64 ? (int)rl.rlim_cur - 32 : (int)rl.rlim_cur / 2;
  }
  rt_chunk_pool_init(&srv->small_chunks, RT_CONN_SMALL_CHUNK, RT_CONN_SPARE_CHUNKS);
  ev_prepare_init(&srv->flush_watcher, on_prepare);
  srv->flush_watcher.data = srv;
  ev_prepare_start(loop, &srv->flush_watcher);
  /* The prepare watcher must not keep ev_run alive by itself. */
  ev_unref(loop);
  if (rt_tls_server_init(srv, err, errlen) < 0) {
    rt_server_free(srv);
    return NULL;
  }
  rt_tls_server_watch(srv);
  srv->broker = rt_broker_new(srv);
  if (!srv->broker) {
    snprintf(err, errlen, "out of memory");
    rt_server_free(srv);
    return NULL;
  }
  if (srv->cfg.engine) {
    if (!(srv->engine = rt_engine_redis_new(srv, srv->cfg.engine, err, errlen))) {
      rt_server_free(srv);
      return NULL;
    }
    rt_broker_set_engine(srv->broker, srv->engine);
  }
  return srv;
}

void rt_server_add_listeners(rt_server *srv, rt_listener *l) {
  if (!srv->port) srv->port = l->port;
  rt_listener *last = l;
  while (last->next) last = last->next;
  last->next = srv->listeners;
  srv->listeners = l;
}

int rt_server_port(const rt_server *srv) { return srv->port; }

long rt_server_publish(rt_server *srv, const char *topic, const void *data, size_t len) {
  return rt_broker_publish_data(srv->broker, topic, data, len, 0);
}

void rt_server_set_app(rt_server *srv, const rt_app *app) {
  rt_app old = srv->app;
  memset(&srv->app, 0, sizeof srv->app);
  if (old.free) old.free(srv, old.data);
  if (app) srv->app = *app;
}

void rt_server_stop(rt_server *srv) {
  srv->stopping = 1;
  while (srv->listeners) {
    rt_listener *n = srv->listeners->next;
    rt_listener_close(srv->listeners);
    srv->listeners = n;
  }
  if (srv->app.stop) srv->app.stop(srv, srv->app.data);
  for (uint32_t i = 0; i < srv->nslots; i++) {
    rt_conn *c = srv->slots[i];
    if (!c || c->closing) continue;
    if (c->proto && c->proto->on_shutdown) c->proto->on_shutdown(c);
    else rt_conn_close_after_write(c);
  }
}

int rt_server_connections(const rt_server *srv) { return srv->nconns; }

size_t rt_server_metrics_text(rt_server *srv, char **out) {
  rt_buf b = {0};
  rt_metrics_render(srv, &b);
  rt_buf_append(&b, "", 1);
  *out = (char *)b.data;
  return b.len ? b.len - 1 : 0;
}

void rt_server_free(rt_server *srv) {
  if (!srv) return;
  while (srv->listeners) {
    rt_listener *n = srv->listeners->next;
    rt_listener_close(srv->listeners);
    srv->listeners = n;
  }
  for (uint32_t i = 0; i < srv->nslots; i++)
    if (srv->slots[i]) rt_conn_close(srv->slots[i]);
  rt_conn_reap(srv);
  rt_server_set_app(srv, NULL);
  if (srv->engine) {
    rt_broker_set_engine(srv->broker, NULL);
    srv->engine->ops->free(srv->engine);
  }
  rt_worker_free(srv);
  rt_tls_server_free(srv);
  rt_broker_free(srv->broker);
  ev_ref(srv->loop);
  ev_prepare_stop(srv->loop, &srv->flush_watcher);
  rt_metrics_free(srv);
  if (srv->ws_z_free) srv->ws_z_free(srv);
  rt_buf_free(&srv->read_scratch);
  rt_buf_free(&srv->tls_scratch);
  rt_chunk_pool_drain(&srv->small_chunks);  /* after every connection let go of its queue */
  free(srv->slots);
  free(srv->slot_gen);
  free(srv->free_slots);
  free(srv);
}
