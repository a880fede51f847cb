/* WebSocket events into Lua and rt.core.ws_* out. Scripts hold connection ids, never
 * pointers: a closed connection's id finds nothing, so a late send fails cleanly. */
#include <string.h>

#include "http/http1.h"
#include "lua_int.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"

void rt_lua_ws_message(rt_server *srv, void *data, uint64_t conn, const uint8_t *msg,
                       size_t len, int binary) {
  rt_lua *lx = data;
  lua_State *co = rt_lua_prepare(lx, "ws_message");
  lua_pushnumber(co, (lua_Number)conn);
  lua_pushlstring(co, (const char *)msg, len);
  lua_pushboolean(co, binary);
  rt_lua_start(lx, co, 3, conn);
}

void rt_lua_ws_close(rt_server *srv, void *data, uint64_t id, int code, const char *reason) {
  rt_lua *lx = data;
  lua_State *co = rt_lua_prepare(lx, "ws_close");
  lua_pushnumber(co, (lua_Number)id);
  lua_pushinteger(co, code);
  lua_pushstring(co, reason ? reason : "");
  /* Its peer, while the connection is still there to ask (ws.peer is made on demand). */
  const char *peer = rt_conn_peer_of(srv, id);
  if (peer) lua_pushstring(co, peer);
  else lua_pushnil(co);
  rt_lua_start(lx, co, 4, 0);
}

static int read_strings(lua_State *L, int idx, const char *field, const char **out, int max) {
  int n = 0;
  lua_getfield(L, idx, field);
  if (lua_type(L, -1) == LUA_TSTRING) {
    out[n++] = lua_tostring(L, -1);
  } else if (lua_istable(L, -1)) {
    for (int i = 1; n < max; i++) {
      lua_rawgeti(L, -1, i);
      if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      out[n++] = lua_tostring(L, -1);  /* anchored by the options table */
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return n;
}

/* core.ws_accept(id, opts) -> protocol ("" if none) | nil, "refused" */
static int l_ws_accept(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  const rt_http_req *req = c ? rt_http1_current(c) : NULL;
  if (!req) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  const char *protocols[16], *origins[32];
  rt_ws_opts o = {0};
  if (lua_istable(L, 2)) {
    o.nprotocols = read_strings(L, 2, "protocols", protocols, 16);
    o.norigins = read_strings(L, 2, "origins", origins, 32);
    lua_getfield(L, 2, "max_message");
    o.max_message = (size_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "deflate");
    o.no_deflate = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  o.protocols = protocols;
  o.origins = origins;
  char chosen[64];
  if (rt_ws_accept(c, req, &o, chosen, sizeof chosen) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "refused");
    return 2;
  }
  lua_pushstring(L, chosen);
  return 1;
}

/* core.ws_send(id, data, binary) -> true | nil, "closed" */
static int l_ws_send(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  size_t len;
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = rt_lua_binary_arg(L, 3, data, len);
  if (!c || rt_ws_send(c, binary ? RT_WS_BINARY : RT_WS_TEXT, data, len) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.ws_close(id, code, reason) */
static int l_ws_close(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  int code = (int)luaL_optinteger(L, 2, 1000);
  const char *reason = luaL_optstring(L, 3, "");
  /* RFC 6455 7.4: only these codes may be sent. */
  if (!rt_ws_close_code_sendable(code))
    return luaL_error(L, "close code %d may not be sent (use 1000-1003, 1007-1011, 3000-4999)", code);
  if (c) rt_ws_close(c, code, reason);
  return 0;
}

/* core.conn_peer(id) -> peer | nil */
static int l_conn_peer(lua_State *L) {
  const char *peer = rt_conn_peer_of(rt_lua_server(L), (uint64_t)luaL_checknumber(L, 1));
  if (!peer) return 0;
  lua_pushstring(L, peer);
  return 1;
}

void rt_lua_open_ws(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"ws_accept", l_ws_accept}, {"ws_send", l_ws_send},
                                 {"ws_close", l_ws_close}, {"conn_peer", l_conn_peer},
                                 {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
