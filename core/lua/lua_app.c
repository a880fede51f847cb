/* The Lua bridge as the server's app: the rt_app table that hands requests, messages and
 * calls to scripts, and the public functions that concern scripts (load, reload, C
 * functions for them, the Lua state). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_int.h"
#include "reload.h"

static void on_stop(rt_server *srv, void *data) { rt_reload_free(data); }

void rt_lua_app_free(rt_server *srv, void *data) {
  rt_lua *lx = data;
  rt_reload_free(lx);
  rt_lua_free(lx);
}

/* The bridge, made and installed as the app on first use. */
static rt_lua *attach(rt_server *srv, char *err, size_t errlen) {
  rt_lua *lx = rt_lua_get(srv);
  if (lx) return lx;
  lx = calloc(1, sizeof *lx);
  if (!lx) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  lx->srv = srv;
  const rt_app app = {
      .data = lx,
      .http_request = rt_lua_http_request,
      .ws_message = rt_lua_ws_message,
      .ws_close = rt_lua_ws_close,
      .grpc_call = rt_lua_grpc_call,
      .grpc_event = rt_lua_grpc_event,
      .stop = on_stop,
      .free = rt_lua_app_free,
  };
  /* Installed before rt.lua runs: the rt.core functions it calls find the bridge. */
  rt_server_set_app(srv, &app);
  if (rt_lua_init(lx, err, errlen) < 0) {
    rt_server_set_app(srv, NULL);
    return NULL;
  }
  return lx;
}

/* After a load: watch what the new code is made of. */
static void refresh_watch(rt_lua *lx) {
  if (!lx->srv->cfg.watch) return;
  lua_State *L = lx->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lx->dispatch_ref);
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
    rt_reload_watch(lx, files, n);
    free(files);
  }
  lua_pop(L, 2);
}

int rt_server_load_app(rt_server *srv, const char *script, char *err, size_t errlen) {
  if (access(script, R_OK) != 0) {
    snprintf(err, errlen, "cannot read app script '%s': %s", script, strerror(errno));
    return -1;
  }
  rt_lua *lx = attach(srv, err, errlen);
  if (!lx) return -1;
  char real[PATH_MAX];
  if (!realpath(script, real)) snprintf(real, sizeof real, "%s", script);
  free(lx->app_path);
  lx->app_path = strdup(real);
  if (rt_lua_load_app(lx, real, err, errlen) < 0) return -1;
  refresh_watch(lx);
  return 0;
}

int rt_server_reload(rt_server *srv, char *err, size_t errlen) {
  rt_lua *lx = rt_lua_get(srv);
  if (!lx || !lx->app_path) {
    snprintf(err, errlen, "no app loaded");
    return -1;
  }
  ev_tstamp t0 = ev_time();
  int rc = rt_lua_load_app(lx, lx->app_path, err, errlen);
  if (rc < 0) {
    srv->metrics.reload_failures++;
    rt_error(&srv->log, "reload failed, the previous code keeps serving: %s", err);
  } else {
    srv->metrics.reloads++;
    rt_info(&srv->log, "reloaded %s in %.1f ms (reload #%ld)", lx->app_path,
            (ev_time() - t0) * 1000, srv->metrics.reloads);
  }
  /* Watch again even after a failure: the fix will come in one of those files. */
  refresh_watch(lx);
  return rc;
}

int rt_server_register_function(rt_server *srv, const char *name, int (*fn)(lua_State *L)) {
  char err[256];
  rt_lua *lx = attach(srv, err, sizeof err);
  if (!lx) {
    rt_error(&srv->log, "%s", err);
    return -1;
  }
  lua_State *L = lx->L;
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

lua_State *rt_server_lua(rt_server *srv) {
  rt_lua *lx = rt_lua_get(srv);
  return lx ? lx->L : NULL;
}
