/* Topics for scripts: rt.core.topic_subscribe / unsubscribe / publish / count. */
#include "net/broker.h"
#include "lua_int.h"
#include "ws/ws.h"

static rt_conn *ws_arg(lua_State *L, rt_server *srv, int idx) {
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, idx));
  return c && rt_ws_is_ws(c) ? c : NULL;
}

/* core.topic_subscribe(name, id) -> true | nil, err */
static int l_subscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_conn *c = ws_arg(L, srv, 2);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  /* Subscribing twice is a no-op, not a second copy of every message. */
  if (!rt_broker_find(srv->broker, name, c, rt_ws_deliver) &&
      !rt_broker_subscribe(srv->broker, name, c, rt_ws_deliver, NULL))
    return luaL_error(L, "out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_unsubscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_conn *c = ws_arg(L, srv, 2);
  rt_sub *s = c ? rt_broker_find(srv->broker, name, c, rt_ws_deliver) : NULL;
  if (s) rt_broker_unsubscribe(srv->broker, s);
  lua_pushboolean(L, s != NULL);
  return 1;
}

/* core.topic_publish(name, data, binary) -> deliveries */
static int l_publish(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  size_t len;
  const char *name = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &len);
  long n = rt_broker_publish_data(srv->broker, name, data, len, rt_lua_binary_arg(L, 3, data, len));
  if (n < 0) return luaL_error(L, "out of memory");
  lua_pushinteger(L, n);
  return 1;
}

static int l_count(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  lua_pushinteger(L, (lua_Integer)rt_broker_count(srv->broker, luaL_checkstring(L, 1)));
  return 1;
}

void rt_lua_open_topic(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"topic_subscribe", l_subscribe}, {"topic_unsubscribe", l_unsubscribe},
                                 {"topic_publish", l_publish}, {"topic_count", l_count},
                                 {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
