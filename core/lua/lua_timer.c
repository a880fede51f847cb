/* Timers for scripts: rt.core.timer (after/every) and rt.core.sleep (yields). */
#include <stdlib.h>

#include "lua_int.h"

struct rt_timer {
  ev_timer w;
  rt_lua *lx;
  int fn_ref;        /* function to run in a new coroutine (after/every) */
  int thread_ref;    /* coroutine to resume (sleep) */
  lua_State *co;
  uint64_t owner;
  int handle_ref;    /* the script's handle, kept while the timer is armed */
  rt_timer *prev, *next;
};

#define TIMER_MT "rt.timer"

static void timer_link(rt_lua *lx, rt_timer *t) {
  t->prev = NULL;
  t->next = lx->timers;
  if (lx->timers) lx->timers->prev = t;
  lx->timers = t;
}

static void timer_unlink(rt_lua *lx, rt_timer *t) {
  if (t->prev) t->prev->next = t->next;
  else if (lx->timers == t) lx->timers = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

/* Disarms and lets go of everything the timer holds in the Lua registry. */
static void timer_release(rt_timer *t) {
  lua_State *L = t->lx->L;
  ev_timer_stop(t->lx->srv->loop, &t->w);
  timer_unlink(t->lx, t);
  if (t->fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
  if (t->thread_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, t->thread_ref);
  t->fn_ref = t->thread_ref = LUA_NOREF;
  int h = t->handle_ref;
  t->handle_ref = LUA_NOREF;
  if (h != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, h);  /* may free t (userdata) */
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_timer *t = w->data;
  rt_lua *lx = t->lx;
  if (t->thread_ref != LUA_NOREF) {
    lua_State *co = t->co;
    uint64_t owner = t->owner;
    int ref = t->thread_ref;
    t->thread_ref = LUA_NOREF;
    /* Keep the coroutine alive across the resume; release our anchor after. */
    timer_release(t);
    rt_lua_resume(lx, co, 0, owner);
    luaL_unref(lx->L, LUA_REGISTRYINDEX, ref);
    return;
  }
  int repeating = t->w.repeat > 0;
  lua_State *co = rt_lua_prepare(lx, "timer");
  lua_rawgeti(co, LUA_REGISTRYINDEX, t->fn_ref);
  if (!repeating) timer_release(t);
  rt_lua_start(lx, co, 1, 0);
}

/* core.timer(seconds, repeat_seconds_or_0, fn) -> handle */
static int l_timer(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  double after = luaL_checknumber(L, 1), rep = luaL_optnumber(L, 2, 0);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (after < 0 || rep < 0) return luaL_error(L, "timer intervals must not be negative");
  rt_timer *t = lua_newuserdata(L, sizeof *t);
  luaL_getmetatable(L, TIMER_MT);
  lua_setmetatable(L, -2);
  t->lx = rt_lua_get(srv);
  t->owner = 0;
  t->co = NULL;
  t->thread_ref = LUA_NOREF;
  lua_pushvalue(L, 3);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  t->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ev_timer_init(&t->w, on_timer, after, rep);
  t->w.data = t;
  ev_timer_start(srv->loop, &t->w);
  timer_link(rt_lua_get(srv), t);
  return 1;
}

static int l_timer_cancel(lua_State *L) {
  rt_timer *t = luaL_checkudata(L, 1, TIMER_MT);
  int was_armed = t->handle_ref != LUA_NOREF;
  if (was_armed) timer_release(t);
  lua_pushboolean(L, was_armed);
  return 1;
}

/* core.sleep(seconds): yields the calling coroutine until the time is up. */
static int l_sleep(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  double secs = luaL_checknumber(L, 1);
  if (lua_pushthread(L)) return luaL_error(L, "rt.sleep can only be called inside a handler");
  rt_timer *t = lua_newuserdata(L, sizeof *t);
  luaL_getmetatable(L, TIMER_MT);
  lua_setmetatable(L, -2);
  t->lx = rt_lua_get(srv);
  t->fn_ref = LUA_NOREF;
  t->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* the thread pushed above */
  t->co = L;
  t->owner = rt_lua_get(srv)->current_owner;
  ev_timer_init(&t->w, on_timer, secs < 0 ? 0 : secs, 0);
  t->w.data = t;
  ev_timer_start(srv->loop, &t->w);
  timer_link(rt_lua_get(srv), t);
  return lua_yield(L, 0);
}

static int l_now(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  lua_pushnumber(L, ev_now(srv->loop));
  return 1;
}

void rt_lua_timers_free(rt_lua *lx) {
  while (lx->timers) timer_release(lx->timers);
}

void rt_lua_open_timer(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"timer", l_timer}, {"sleep", l_sleep}, {"now", l_now}, {NULL, NULL}};
  luaL_newmetatable(L, TIMER_MT);
  lua_newtable(L);
  lua_pushcfunction(L, l_timer_cancel);
  lua_setfield(L, -2, "cancel");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  rt_lua_set_funcs(L, srv, fns);
}
