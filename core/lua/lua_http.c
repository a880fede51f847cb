/* HTTP requests into Lua, responses out: rt.core.http_respond / http_file. */
#include <string.h>

#include "http/http1.h"
#include "lua_int.h"

static void push_request(lua_State *co, const rt_http_req *req) {
  lua_createtable(co, 0, 8);
  lua_pushstring(co, req->method);
  lua_setfield(co, -2, "method");
  lua_pushstring(co, req->path);
  lua_setfield(co, -2, "path");
  lua_pushstring(co, req->query);
  lua_setfield(co, -2, "query");
  lua_pushstring(co, req->target);
  lua_setfield(co, -2, "target");
  lua_pushlstring(co, (const char *)req->body, req->body_len);
  lua_setfield(co, -2, "body");
  lua_pushboolean(co, req->upgrade);
  lua_setfield(co, -2, "upgrade");
  lua_createtable(co, 0, req->nheaders);
  for (int i = 0; i < req->nheaders; i++) {
    /* Repeated headers are joined with ", " as RFC 9110 allows for list fields. */
    lua_getfield(co, -1, req->headers[i].name);
    if (lua_isstring(co, -1)) {
      lua_pushstring(co, ", ");
      lua_pushstring(co, req->headers[i].value);
      lua_concat(co, 3);
    } else {
      lua_pop(co, 1);
      lua_pushstring(co, req->headers[i].value);
    }
    lua_setfield(co, -2, req->headers[i].name);
  }
  lua_setfield(co, -2, "headers");
}

void rt_lua_http_request(rt_server *srv, void *data, uint64_t conn, const rt_http_req *req,
                         const char *peer) {
  rt_lua *lx = data;
  lua_State *co = rt_lua_prepare(lx, "http");
  lua_pushnumber(co, (lua_Number)conn);
  push_request(co, req);
  rt_lua_push_tls(co, rt_conn_find(srv, conn));
  lua_setfield(co, -2, "tls");
  lua_pushstring(co, peer);
  rt_lua_start(lx, co, 3, conn);
}

static rt_conn *http_conn(lua_State *L, rt_server *srv) {
  uint64_t id = (uint64_t)luaL_checknumber(L, 1);
  rt_conn *c = rt_conn_find(srv, id);
  return c && rt_http1_current(c) ? c : NULL;
}

/* core.http_respond(id, status, headers_or_nil, body) -> true | nil, err */
static int l_http_respond(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *body = luaL_optlstring(L, 4, "", &len);
  if (status < 100 || status > 599) return luaL_error(L, "HTTP status %d is out of range", status);
  rt_conn *c = http_conn(L, srv);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  const char *hdrs[64];
  int n = 0;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) && n < 32) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
        hdrs[2 * n] = lua_tostring(L, -2);
        hdrs[2 * n + 1] = lua_tostring(L, -1);  /* both stay alive in the table */
        n++;
      }
      lua_pop(L, 1);
    }
  }
  rt_http1_respond(c, status, hdrs, n, body, len);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.http_file(id, root, relpath) */
static int l_http_file(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *root = luaL_checkstring(L, 2), *rel = luaL_checkstring(L, 3);
  rt_conn *c = http_conn(L, srv);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  rt_http1_send_file(c, root, rel);
  lua_pushboolean(L, 1);
  return 1;
}

void rt_lua_open_http(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"http_respond", l_http_respond}, {"http_file", l_http_file}, {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
