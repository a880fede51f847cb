/* SockJS for scripts: rt.core.sockjs_* out, rt._dispatch.sockjs_* in (lua/rt_sockjs.lua).
 *
 * The SockJS server (endpoints, sessions) lives in C and survives reloads; the registry
 * holds it in a userdata whose __gc frees it with the Lua state. Scripts name sessions by
 * the id of the session's own connection, so a closed one gives nil, "closed". */
#include <string.h>

#include "net/broker.h"
#include "http/http1.h"
#include "lua_int.h"
#include "sockjs/sockjs.h"
#include "stomp/stomp.h"

#define SOCKJS_KEY "rt.sockjs.server"
#define SOCKJS_MT "rt.sockjs.server"
/* Where lua_stomp.c keeps its STOMP server (a userdata holding the pointer). */
#define STOMP_KEY "rt.stomp.server"

static rt_sockjs_server *server_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, SOCKJS_KEY);
  rt_sockjs_server **ud = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ud ? *ud : NULL;
}

static rt_stomp_server *stomp_server_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, STOMP_KEY);
  rt_stomp_server **ud = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ud ? *ud : NULL;
}

/* ---- events into Lua --------------------------------------------------------------------- */

static void push_request(lua_State *co, const rt_sockjs_session *s, const rt_http_req *req) {
  lua_createtable(co, 0, 8);
  lua_pushstring(co, s->sid);
  lua_setfield(co, -2, "session");
  lua_pushstring(co, rt_sockjs_transport_name(s->first_transport));
  lua_setfield(co, -2, "transport");
  lua_pushstring(co, s->peer);
  lua_setfield(co, -2, "peer");
  if (!req) return;
  lua_pushstring(co, req->path);
  lua_setfield(co, -2, "path");
  lua_pushstring(co, req->query);
  lua_setfield(co, -2, "query");
  lua_createtable(co, 0, req->nheaders);
  for (int i = 0; i < req->nheaders; i++) {
    lua_pushstring(co, req->headers[i].value);
    lua_setfield(co, -2, req->headers[i].name);
  }
  lua_setfield(co, -2, "headers");
}

static void hook_open(void *ud, rt_sockjs_session *s, const rt_http_req *req) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  if (s->ep->cfg.stomp) {
    /* STOMP sessions never reach Lua as SockJS messages: the STOMP hooks take over. */
    if (!rt_sockjs_stomp_attach(stomp_server_of(lx->L), s)) {
      rt_error(&srv->log, "%s: cannot start STOMP on SockJS session %s (is rt.stomp set up?)", s->peer, s->sid);
      rt_sockjs_session_close(s, 1011, "STOMP is not available");
    }
    return;
  }
  lua_State *co = rt_lua_prepare(lx, "sockjs_open");
  lua_pushnumber(co, (lua_Number)s->conn_id);
  lua_pushstring(co, s->ep->prefix);
  push_request(co, s, req);
  rt_lua_start(lx, co, 3, s->conn_id);
}

static void hook_message(void *ud, rt_sockjs_session *s, const uint8_t *msg, size_t len) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  lua_State *co = rt_lua_prepare(lx, "sockjs_message");
  lua_pushnumber(co, (lua_Number)s->conn_id);
  lua_pushlstring(co, (const char *)msg, len);
  rt_lua_start(lx, co, 2, s->conn_id);
}

static void hook_close(void *ud, rt_sockjs_session *s, int code, const char *reason) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  lua_State *co = rt_lua_prepare(lx, "sockjs_close");
  lua_pushnumber(co, (lua_Number)s->conn_id);
  lua_pushinteger(co, code);
  lua_pushstring(co, reason);
  rt_lua_start(lx, co, 3, 0);
}

/* ---- configuration ----------------------------------------------------------------------- */

static int l_gc(lua_State *L) {
  rt_sockjs_server **ud = lua_touserdata(L, 1);
  if (ud && *ud) {
    /* The Lua state is going away: nothing may call back into it. */
    memset(&(*ud)->hooks, 0, sizeof (*ud)->hooks);
    rt_sockjs_server_free(*ud);
    *ud = NULL;
  }
  return 0;
}

static rt_sockjs_server *need_server(lua_State *L) {
  rt_sockjs_server *sj = server_of(L);
  if (sj) return sj;
  rt_server *srv = rt_lua_server(L);
  rt_sockjs_hooks hooks = {.on_open = hook_open, .on_message = hook_message, .on_close = hook_close,
                           .ud = srv};
  rt_sockjs_server **ud = lua_newuserdata(L, sizeof *ud);
  *ud = sj = rt_sockjs_server_new(srv, &hooks);
  if (!sj) luaL_error(L, "rt.sockjs: out of memory");
  luaL_newmetatable(L, SOCKJS_MT);
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, SOCKJS_KEY);
  return sj;
}

static double opt_num(lua_State *L, const char *field, double def, double lo, double hi) {
  return rt_lua_opt_number(L, 2, "rt.sockjs", field, def, lo, hi);
}

static int opt_bool(lua_State *L, const char *field, int def) {
  lua_getfield(L, 2, field);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void read_config(lua_State *L, rt_sockjs_config *c) {
  rt_sockjs_config_init(c);
  if (!lua_istable(L, 2)) return;
  c->heartbeat = opt_num(L, "heartbeat", c->heartbeat, 0, 86400);
  c->disconnect_delay = opt_num(L, "disconnect_delay", c->disconnect_delay, 0.01, 86400);
  c->response_limit = (size_t)opt_num(L, "response_limit", (double)c->response_limit, 1, 1 << 30);
  c->max_message = (size_t)opt_num(L, "max_message", (double)c->max_message, 1, 1 << 30);
  c->max_queue = (size_t)opt_num(L, "max_queue", (double)c->max_queue, 1, 1e7);
  c->max_queue_bytes = (size_t)opt_num(L, "max_queue_bytes", (double)c->max_queue_bytes, 64, 1e12);
  c->max_sessions = (int)opt_num(L, "max_sessions", c->max_sessions, 1, 1e7);
  c->websocket = opt_bool(L, "websocket", c->websocket);
  c->cookie = opt_bool(L, "cookie", c->cookie);
  c->hixie76 = opt_bool(L, "hixie76", c->hixie76);
  c->stomp = opt_bool(L, "stomp", 0);
  lua_getfield(L, 2, "sockjs_url");
  if (!lua_isnil(L, -1)) {
    size_t n;
    const char *u = lua_tolstring(L, -1, &n);
    if (!u || n == 0 || n >= sizeof c->sockjs_url) luaL_error(L, "rt.sockjs: sockjs_url must be a URL string");
    memcpy(c->sockjs_url, u, n + 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 2, "origins");
  if (lua_istable(L, -1)) {
    for (int i = 1;; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      size_t n;
      const char *o = lua_tolstring(L, -1, &n);
      if (!o || n >= sizeof c->origins[0] || c->norigins == RT_SOCKJS_MAX_ORIGINS)
        luaL_error(L, "rt.sockjs: origins must be up to %d strings", RT_SOCKJS_MAX_ORIGINS);
      memcpy(c->origins[c->norigins++], o, n + 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* core.sockjs_endpoint(prefix, opts): adds or updates an endpoint; raises on bad options. */
static int l_endpoint(lua_State *L) {
  const char *prefix = luaL_checkstring(L, 1);
  rt_sockjs_config cfg;
  read_config(L, &cfg);
  rt_sockjs_server *sj = need_server(L);
  char err[256];
  if (!rt_sockjs_endpoint_set(sj, prefix, &cfg, err, sizeof err)) return luaL_error(L, "rt.sockjs: %s", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* core.sockjs_http(id, prefix): answers the request on connection id. */
static int l_http(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  const char *prefix = luaL_checkstring(L, 2);
  rt_sockjs_server *sj = server_of(L);
  rt_sockjs_endpoint *ep = sj ? rt_sockjs_endpoint_find(sj, prefix) : NULL;
  const rt_http_req *req = c ? rt_http1_current(c) : NULL;
  if (!req) return closed(L);
  if (!ep) return luaL_error(L, "rt.sockjs: no endpoint at %s", prefix);
  rt_sockjs_http(ep, c, req);
  lua_pushboolean(L, 1);
  return 1;
}

static rt_sockjs_session *session_arg(lua_State *L, int idx) {
  rt_conn *c = rt_conn_find(rt_lua_server(L), (uint64_t)luaL_checknumber(L, idx));
  return rt_sockjs_session_of(c);
}

/* core.sockjs_send(id, data) -> true | nil, "closed" */
static int l_send(lua_State *L) {
  rt_sockjs_session *s = session_arg(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!s || rt_sockjs_session_send(s, data, len) < 0) return closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.sockjs_close(id, code, reason) */
static int l_close(lua_State *L) {
  rt_sockjs_session *s = session_arg(L, 1);
  int code = (int)luaL_optinteger(L, 2, 3000);
  const char *reason = luaL_optstring(L, 3, "Go away!");
  if (!(code == 1000 || (code >= 3000 && code <= 4999)))
    return luaL_error(L, "SockJS close code %d may not be sent (use 1000 or 3000-4999)", code);
  if (strlen(reason) > 123) return luaL_error(L, "SockJS close reason is longer than 123 bytes");
  if (s) rt_sockjs_session_close(s, code, reason);
  return 0;
}

/* core.sockjs_subscribe(topic, id [, epoch, since]) -> true [, recovered] | nil, "closed".
 * With a position, the messages kept after it are delivered first (history). */
static int l_subscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_sockjs_session *s = session_arg(L, 2);
  const char *epoch = luaL_optstring(L, 3, NULL);
  lua_Number since = luaL_optnumber(L, 4, 0);
  if (!s) return closed(L);
  /* Subscribing twice is a no-op, not a second copy of every message. */
  rt_sub *sub = rt_broker_find(srv->broker, name, s->conn, rt_sockjs_deliver);
  if (!sub && !(sub = rt_broker_subscribe(srv->broker, name, s->conn, rt_sockjs_deliver, s)))
    return luaL_error(L, "out of memory");
  rt_lua_sub_events(sub);
  lua_pushboolean(L, 1);
  if (!epoch) return 1;
  rt_lua_push_recovered(L, since >= 0 ? rt_broker_replay(srv->broker, sub, epoch, (uint64_t)since) : 0);
  return 2;
}

static int l_unsubscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_sockjs_session *s = session_arg(L, 2);
  rt_sub *sub = s ? rt_broker_find(srv->broker, name, s->conn, rt_sockjs_deliver) : NULL;
  if (sub) rt_broker_unsubscribe(srv->broker, sub);
  lua_pushboolean(L, sub != NULL);
  return 1;
}

/* core.sockjs_sessions(prefix) -> sessions at the endpoint (closed ones until they expire) */
static int l_sessions(lua_State *L) {
  rt_sockjs_server *sj = server_of(L);
  rt_sockjs_endpoint *ep = sj ? rt_sockjs_endpoint_find(sj, luaL_checkstring(L, 1)) : NULL;
  lua_pushinteger(L, ep ? ep->nsessions : 0);
  return 1;
}

void rt_lua_open_sockjs(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"sockjs_endpoint", l_endpoint}, {"sockjs_http", l_http},
                                 {"sockjs_send", l_send},         {"sockjs_close", l_close},
                                 {"sockjs_subscribe", l_subscribe}, {"sockjs_unsubscribe", l_unsubscribe},
                                 {"sockjs_sessions", l_sessions},  {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
