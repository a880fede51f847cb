/* The server object: config, loop hooks, listeners, the broker and the Lua state. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker.h"
#include "http/http1.h"
#include "listen.h"
#include "metrics.h"
#include "lua/reload.h"
#include "lua/lua_int.h"
#include "server_int.h"
#include "ws/ws.h"

void rt_config_init(rt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = RT_LOG_INFO;
  cfg->idle_timeout = 60;
  cfg->ws_ping_interval = 30;
  cfg->ws_idle_timeout = 75;
  cfg->max_header_bytes = 16 * 1024;
  cfg->max_body_bytes = 1024 * 1024;
  cfg->max_ws_message = 1024 * 1024;
  cfg->max_output_bytes = 4 * 1024 * 1024;
  cfg->drain_timeout = 10;
}

/* After a successful load: watch what the new code is made of. */
static void refresh_watch(rt_server *srv) {
  if (!srv->cfg.watch) return;
  lua_State *L = srv->lua->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, srv->lua->dispatch_ref);
  lua_getfield(L, -1, "watched_files");
  if (lua_pcall(L, 0, 1, 0) != 0 || !lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  int n = (int)lua_objlen(L, -1);
  const char **files = calloc((size_t)n + 1, sizeof *files);
  if (files) {
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, -1, i + 1);
      files[i] = lua_tostring(L, -1);  /* anchored by the table until we pop it */
      lua_pop(L, 1);
    }
    rt_reload_watch(srv, files, n);
    free(files);
  }
  lua_pop(L, 2);
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
  srv->broker = rt_broker_new(srv);
  if (!srv->broker) {
    snprintf(err, errlen, "out of memory");
    rt_server_free(srv);
    return NULL;
  }
  srv->lua = rt_lua_new(srv, err, errlen);
  if (!srv->lua) {
    rt_server_free(srv);
    return NULL;
  }
  return srv;
}

int rt_server_load_app(rt_server *srv, const char *script, char *err, size_t errlen) {
  if (access(script, R_OK) != 0) {
    snprintf(err, errlen, "cannot read app script '%s': %s", script, strerror(errno));
    return -1;
  }
  char real[PATH_MAX];
  if (!realpath(script, real)) snprintf(real, sizeof real, "%s", script);
  free(srv->app_path);
  srv->app_path = strdup(real);
  if (rt_lua_load_app(srv->lua, real, err, errlen) < 0) return -1;
  refresh_watch(srv);
  return 0;
}

int rt_server_reload(rt_server *srv, char *err, size_t errlen) {
  if (!srv->app_path) {
    snprintf(err, errlen, "no app loaded");
    return -1;
  }
  ev_tstamp t0 = ev_time();
  int rc = rt_lua_load_app(srv->lua, srv->app_path, err, errlen);
  if (rc < 0) {
    srv->metrics.reload_failures++;
    rt_error(&srv->log, "reload failed, the previous code keeps serving: %s", err);
  } else {
    srv->metrics.reloads++;
    rt_info(&srv->log, "reloaded %s in %.1f ms (reload #%ld)", srv->app_path,
            (ev_time() - t0) * 1000, srv->metrics.reloads);
  }
  /* Watch again even after a failure: the fix will come in one of those files. */
  refresh_watch(srv);
  return rc;
}

static void on_accept(rt_conn *c, void *data) { rt_http1_start(c); }

int rt_server_listen(rt_server *srv, const char *host, int port, char *err, size_t errlen) {
  rt_listener *l = rt_listen(srv, host, port, on_accept, NULL, err, errlen);
  if (!l) return -1;
  if (!srv->port) srv->port = l->port;
  rt_listener *last = l;
  while (last->next) last = last->next;
  last->next = srv->listeners;
  srv->listeners = l;
  return 0;
}

int rt_server_port(const rt_server *srv) { return srv->port; }

long rt_server_publish(rt_server *srv, const char *topic, const void *data, size_t len) {
  return rt_broker_publish_data(srv->broker, topic, data, len, 0);
}

int rt_server_register_function(rt_server *srv, const char *name, int (*fn)(lua_State *L)) {
  lua_State *L = srv->lua->L;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "rt");
  lua_getfield(L, -1, "c");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 4);
    return -1;
  }
  lua_pushlightuserdata(L, srv);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 4);
  return 0;
}

lua_State *rt_server_lua(rt_server *srv) { return srv->lua ? srv->lua->L : NULL; }

void rt_server_stop(rt_server *srv) {
  srv->stopping = 1;
  while (srv->listeners) {
    rt_listener *n = srv->listeners->next;
    rt_listener_close(srv->listeners);
    srv->listeners = n;
  }
  rt_reload_free(srv);
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
  rt_reload_free(srv);
  if (srv->lua) rt_lua_free(srv->lua);
  srv->lua = NULL;
  rt_broker_free(srv->broker);
  ev_ref(srv->loop);
  ev_prepare_stop(srv->loop, &srv->flush_watcher);
  rt_metrics_free(srv);
  rt_buf_free(&srv->read_scratch);
  rt_chunk_pool_drain(&srv->small_chunks);  /* after every connection let go of its queue */
  free(srv->slots);
  free(srv->slot_gen);
  free(srv->free_slots);
  free(srv->app_path);
  free(srv->app_dir);
  free(srv);
}
