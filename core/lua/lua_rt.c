/* The LuaJIT state, the app script, and the coroutine runner. */
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_int.h"
#include "base/utf8.h"

void rt_lua_set_funcs(lua_State *L, rt_server *srv, const luaL_Reg *fns) {
  for (; fns->name; fns++) {
    lua_pushlightuserdata(L, srv);
    lua_pushcclosure(L, fns->func, 1);
    lua_setfield(L, -2, fns->name);
  }
}

/* Finds lua/rt.lua: the configured dir, $RTSERVER_LUA_DIR, next to the binary
 * (../lua from build/), then the install prefix. */
static int find_lua_dir(const rt_config *cfg, char *out, size_t outlen) {
  const char *cands[4] = {cfg->lua_dir, getenv("RTSERVER_LUA_DIR"), NULL, RT_LUA_DIR_DEFAULT};
  char exe[4096], near[4200];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(near, sizeof near, "%s/../lua", exe);
    cands[2] = near;
  }
  for (int i = 0; i < 4; i++) {
    if (!cands[i]) continue;
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/rt.lua", cands[i]);
    if (access(probe, R_OK) == 0) {
      snprintf(out, outlen, "%s", cands[i]);
      return 0;
    }
  }
  return -1;
}

int rt_lua_init(rt_lua *lx, char *err, size_t errlen) {
  rt_server *srv = lx->srv;
  char dir[4096];
  if (find_lua_dir(&srv->cfg, dir, sizeof dir) < 0) {
    snprintf(err, errlen, "cannot find rt.lua (set RTSERVER_LUA_DIR to the lua/ folder)");
    return -1;
  }
  lx->L = luaL_newstate();
  if (!lx->L) {
    snprintf(err, errlen, "cannot create a Lua state");
    return -1;
  }
  lua_State *L = lx->L;
  luaL_openlibs(L);

  /* package.path: lua/ first, so require "rt" finds ours. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s", dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);

  /* rt.core: the C side of the API, preloaded so rt.lua can require it. */
  lua_getfield(L, -1, "loaded");
  lua_newtable(L);
  rt_lua_open_ws(L, srv);
  rt_lua_open_http(L, srv);
  rt_lua_open_topic(L, srv);
  rt_lua_open_timer(L, srv);
  rt_lua_open_log(L, srv);
  rt_lua_open_grpc(L, srv);
  rt_lua_open_grpc_client(L, srv);
  rt_lua_open_stomp(L, srv);
  rt_lua_open_sockjs(L, srv);
  lua_setfield(L, -2, "rt.core");
  lua_pop(L, 2);

  lua_getglobal(L, "require");
  lua_pushstring(L, "rt");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    snprintf(err, errlen, "loading rt.lua: %s", lua_tostring(L, -1));
    return -1;
  }
  lua_getfield(L, -1, "_dispatch");
  lx->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lx->pool_table = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return 0;
}

void rt_lua_free(rt_lua *lx) {
  if (!lx) return;
  rt_lua_timers_free(lx);
  if (lx->L) lua_close(lx->L);
  free(lx->app_path);
  free(lx);
}

int rt_lua_load_app(rt_lua *lx, const char *path, char *err, size_t errlen) {
  lua_State *L = lx->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lx->dispatch_ref);
  lua_getfield(L, -1, "load_app");
  lua_pushstring(L, path);
  /* load_app returns true, or nil and a one-line message (file:line: what). */
  if (lua_pcall(L, 1, 2, 0) != 0) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return -1;
  }
  int ok = lua_toboolean(L, -2);
  if (!ok) snprintf(err, errlen, "%s", lua_tostring(L, -1));
  lua_pop(L, 3);
  return ok ? 0 : -1;
}

lua_State *rt_lua_prepare(rt_lua *lx, const char *name) {
  lua_State *L = lx->L;
  lua_State *co;
  int slot = -1;
  if (lx->nfree && lx->npending < (int)(sizeof lx->pending / sizeof lx->pending[0])) {
    slot = lx->free_slots[--lx->nfree];
    co = lx->pool[slot];
  } else {
    co = lua_newthread(L);  /* stays on L's stack (anchored) until rt_lua_start */
  }
  /* prepare/start pairs nest like calls: a stack says which slot each one took. */
  if (lx->npending < (int)(sizeof lx->pending / sizeof lx->pending[0])) lx->pending[lx->npending] = slot;
  lx->npending++;
  for (int i = 0; i < lx->nfns; i++)
    if (lx->fns[i].name == name) {
      lua_rawgeti(co, LUA_REGISTRYINDEX, lx->fns[i].ref);
      return co;
    }
  lua_rawgeti(co, LUA_REGISTRYINDEX, lx->dispatch_ref);
  lua_getfield(co, -1, name);
  lua_remove(co, -2);
  if (lx->nfns < (int)(sizeof lx->fns / sizeof lx->fns[0]) && lua_isfunction(co, -1)) {
    lua_pushvalue(co, -1);
    lx->fns[lx->nfns].name = name;
    lx->fns[lx->nfns++].ref = luaL_ref(co, LUA_REGISTRYINDEX);
  }
  return co;
}

static void report_error(rt_lua *lx, lua_State *co, uint64_t owner) {
  rt_server *srv = lx->srv;
  const char *msg = lua_tostring(co, -1);
  luaL_traceback(lx->L, co, msg ? msg : "(error object is not a string)", 0);
  rt_error(&srv->log, "Lua error: %s", lua_tostring(lx->L, -1));
  lua_pop(lx->L, 1);
  srv->metrics.lua_errors++;
  rt_conn *c = owner ? rt_conn_find(srv, owner) : NULL;
  if (c && c->proto->on_script_error) c->proto->on_script_error(c);
}

static int run(rt_lua *lx, lua_State *co, int nargs, uint64_t owner) {
  uint64_t saved = lx->current_owner;
  lx->current_owner = owner;
  int st = lua_resume(co, nargs);
  lx->current_owner = saved;
  if (st != 0 && st != LUA_YIELD) report_error(lx, co, owner);
  /* On yield, whoever yielded holds a reference to co (see rt_lua_park). */
  return st;
}

void rt_lua_resume(rt_lua *lx, lua_State *co, int nargs, uint64_t owner) {
  run(lx, co, nargs, owner);
}

void rt_lua_start(rt_lua *lx, lua_State *co, int nargs, uint64_t owner) {
  lua_State *L = lx->L;
  lx->npending--;
  int slot = lx->npending < (int)(sizeof lx->pending / sizeof lx->pending[0]) ? lx->pending[lx->npending] : -1;
  int st = run(lx, co, nargs, owner);
  if (slot >= 0) {
    if (st != 0) {
      /* It waits (whoever woke it later holds it) or it died: the slot gets a new thread. */
      lua_rawgeti(L, LUA_REGISTRYINDEX, lx->pool_table);
      lx->pool[slot] = lua_newthread(L);
      lua_rawseti(L, -2, slot + 1);
      lua_pop(L, 1);
    } else {
      lua_settop(co, 0);
    }
    lx->free_slots[lx->nfree++] = slot;
    return;
  }
  /* A new thread, on L's top. Keep it for the next events if it finished cleanly. */
  if (st == 0 && lx->nslots < (int)(sizeof lx->pool / sizeof lx->pool[0])) {
    lua_settop(co, 0);
    slot = lx->nslots++;
    lx->pool[slot] = co;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lx->pool_table);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, slot + 1);
    lua_pop(L, 1);
    lx->free_slots[lx->nfree++] = slot;
  }
  lua_pop(L, 1);
}

rt_lua *rt_lua_of(lua_State *L) { return rt_lua_get(rt_lua_server(L)); }

int rt_lua_park(lua_State *L, rt_lua_waiter *w) {
  rt_lua *lx = rt_lua_of(L);
  if (lua_pushthread(L)) {
    lua_pop(L, 1);
    return luaL_error(L, "this call can only be made inside a handler (it waits)");
  }
  w->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->co = L;
  w->owner = lx->current_owner;
  return lua_yield(L, 0);
}

void rt_lua_wake(rt_lua *lx, rt_lua_waiter *w, int nresults) {
  lua_State *co = w->co;
  int ref = w->thread_ref;
  if (!co) return;
  w->co = NULL;
  w->thread_ref = LUA_NOREF;
  /* The reference keeps co alive through the resume; drop it after. */
  rt_lua_resume(lx, co, nresults, w->owner);
  luaL_unref(lx->L, LUA_REGISTRYINDEX, ref);
}

void rt_lua_unpark(rt_lua *lx, rt_lua_waiter *w) {
  if (!w->co) return;
  luaL_unref(lx->L, LUA_REGISTRYINDEX, w->thread_ref);
  w->co = NULL;
  w->thread_ref = LUA_NOREF;
}

double rt_lua_opt_number(lua_State *L, int idx, const char *api, const char *field, double def,
                         double lo, double hi) {
  lua_getfield(L, idx, field);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "%s: %s must be a number", api, field);
    v = lua_tonumber(L, -1);
    if (v < lo || v > hi) luaL_error(L, "%s: %s must be from %g to %g", api, field, lo, hi);
  }
  lua_pop(L, 1);
  return v;
}

int rt_lua_binary_arg(lua_State *L, int idx, const char *data, size_t len) {
  if (lua_isnoneornil(L, idx)) return !rt_utf8_valid((const uint8_t *)data, len);
  if (lua_toboolean(L, idx)) return 1;
  /* A text frame that is not UTF-8 makes every compliant peer fail the connection. */
  if (!rt_utf8_valid((const uint8_t *)data, len))
    return luaL_error(L, "text message is not valid UTF-8 (send it as binary)");
  return 0;
}
