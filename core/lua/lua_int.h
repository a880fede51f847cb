/* The Lua bridge: one LuaJIT state per server, one coroutine per event.
 *
 * C calls into the script only through the dispatch functions lua/rt.lua defines
 * (rt._dispatch.http, .ws_message, .ws_close, ...). Every call runs in a fresh coroutine
 * so a handler can yield (sleep, later gRPC calls and stream reads) without blocking the
 * loop. A coroutine that raises is logged with its traceback and only its owner (the
 * connection it serves) is told, through rt_proto.on_script_error. */
#ifndef RT_LUA_INT_H
#define RT_LUA_INT_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#include "net/server_int.h"

typedef struct rt_timer rt_timer;
typedef struct rt_reload rt_reload;
typedef struct rt_lua rt_lua;

struct rt_lua {
  rt_server *srv;
  lua_State *L;
  int dispatch_ref;        /* the rt._dispatch table */
  uint64_t current_owner;  /* the connection the running coroutine serves */
  rt_timer *timers;        /* every live timer, so free can stop them */
  /* Coroutines that finished cleanly, ready for the next event: creating a thread per
   * WebSocket message costs an allocation and GC work. Each pooled thread stays anchored
   * in a registry table at a fixed slot, so taking and returning one is two array ops. */
  int pool_table;           /* registry ref: pool_table[slot + 1] = pool[slot] */
  lua_State *pool[64];
  int free_slots[64], nfree, nslots;
  int pending[256], npending;  /* slot of each coroutine prepared, not yet started (-1: new) */
  /* Dispatch functions by the address of the name a call site passes (always a string
   * literal): a pointer compare instead of interning the name on every event. */
  struct { const char *name; int ref; } fns[24];
  int nfns;
  char *app_path;          /* the script, as realpath() has it */
  rt_reload *reload;       /* file watchers for --watch */
};

/* The bridge is the server's app (rt_app, lua_app.c): created by the first
 * rt_server_load_app or rt_server_register_function, freed with the server or when a host
 * sets another app. rt_lua_get finds it, NULL when another app serves. */
void rt_lua_app_free(rt_server *srv, void *data);
static inline rt_lua *rt_lua_get(rt_server *srv) {
  return srv->app.free == rt_lua_app_free ? (rt_lua *)srv->app.data : NULL;
}
/* Makes the Lua state and runs rt.lua; the bridge must be the app already. */
int rt_lua_init(rt_lua *lx, char *err, size_t errlen);
void rt_lua_free(rt_lua *lx);
int rt_lua_load_app(rt_lua *lx, const char *path, char *err, size_t errlen);

/* What the app table's callbacks run (lua_http.c, lua_ws.c, lua_grpc.c). */
void rt_lua_http_request(rt_server *srv, void *data, uint64_t conn, const rt_http_req *req,
                         const char *peer);
void rt_lua_ws_message(rt_server *srv, void *data, uint64_t conn, const uint8_t *msg,
                       size_t len, int binary);
void rt_lua_ws_close(rt_server *srv, void *data, uint64_t conn, int code, const char *reason);
void rt_lua_grpc_call(rt_server *srv, void *data, rt_grpc_srv_call *call);
void rt_lua_grpc_event(rt_server *srv, void *data, rt_grpc_srv_call *call);

/* Starts a coroutine running rt._dispatch[name] with nargs arguments that the caller
 * pushed onto the coroutine returned by rt_lua_prepare. */
lua_State *rt_lua_prepare(rt_lua *lx, const char *name);
void rt_lua_start(rt_lua *lx, lua_State *co, int nargs, uint64_t owner);
/* Resumes a coroutine that yielded in a C function (sleep, ...). */
void rt_lua_resume(rt_lua *lx, lua_State *co, int nargs, uint64_t owner);

/* Parking a coroutine until an event (a stream message, a reply, flow-control credit):
 * a lua_CFunction ends with `return rt_lua_park(L, &waiter);`. Later the event pushes its
 * results onto waiter.co and calls rt_lua_wake(lx, &waiter, nresults); the coroutine
 * resumes with those as the C function's return values. rt_lua_unpark drops a waiter that
 * will never be woken (its coroutine is collected). */
typedef struct rt_lua_waiter {
  lua_State *co;     /* NULL when nobody waits */
  int thread_ref;
  uint64_t owner;
} rt_lua_waiter;
int rt_lua_park(lua_State *L, rt_lua_waiter *w);
void rt_lua_wake(rt_lua *lx, rt_lua_waiter *w, int nresults);
void rt_lua_unpark(rt_lua *lx, rt_lua_waiter *w);
/* opts.<field> of the table at idx as a number within [lo, hi], or def when absent;
 * anything else raises "<api>: <field> must be ...". */
double rt_lua_opt_number(lua_State *L, int idx, const char *api, const char *field, double def,
                         double lo, double hi);
/* The frame type for a message a script sends: arg idx true = binary, false = text (must
 * be UTF-8, else a Lua error), nil = text when it is valid UTF-8, binary otherwise. */
int rt_lua_binary_arg(lua_State *L, int idx, const char *data, size_t len);
/* The rt_lua a lua_CFunction runs under. */
rt_lua *rt_lua_of(lua_State *L);
/* Pushes { version, alpn, resumed, peer, subject } for a TLS connection, else nil. */
void rt_lua_push_tls(lua_State *L, const rt_conn *c);

static inline rt_server *rt_lua_server(lua_State *L) {
  return (rt_server *)lua_touserdata(L, lua_upvalueindex(1));
}
/* Sets fields of the table on top of the stack to C closures with srv as upvalue. */
void rt_lua_set_funcs(lua_State *L, rt_server *srv, const luaL_Reg *fns);

/* One per API area, each filling the rt.core table on top of the stack. */
void rt_lua_open_ws(lua_State *L, rt_server *srv);
void rt_lua_open_http(lua_State *L, rt_server *srv);
void rt_lua_open_topic(lua_State *L, rt_server *srv);
void rt_lua_open_timer(lua_State *L, rt_server *srv);
void rt_lua_open_log(lua_State *L, rt_server *srv);
void rt_lua_open_grpc(lua_State *L, rt_server *srv);
void rt_lua_open_grpc_client(lua_State *L, rt_server *srv);
void rt_lua_open_stomp(lua_State *L, rt_server *srv);
void rt_lua_open_sockjs(lua_State *L, rt_server *srv);
void rt_lua_timers_free(rt_lua *lx);

/* History events of a topic subscriber (a recovery's late outcome, a loss) go to the
 * script (rt.history's recovered / lost handlers); a recovery's result as Lua sees it:
 * true, false, or nil when it waits for the engine. */
void rt_lua_sub_events(struct rt_sub *s);
void rt_lua_push_recovered(lua_State *L, int rc);

#endif
