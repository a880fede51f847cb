/* Logging and counters for scripts: rt.core.log(level, msg), rt.core.script_error(). */
#include "lua_int.h"

static int l_log(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_log_level level;
  if (rt_log_level_parse(luaL_checkstring(L, 1), &level) < 0)
    return luaL_error(L, "unknown log level '%s'", lua_tostring(L, 1));
  rt_log_write(&srv->log, level, "%s", luaL_checkstring(L, 2));
  return 0;
}

static int l_log_enabled(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_log_level level;
  lua_pushboolean(L, rt_log_level_parse(luaL_checkstring(L, 1), &level) == 0 && level >= srv->log.level);
  return 1;
}

/* Called by rt.lua when it caught a handler error itself (HTTP answers 500). */
static int l_script_error(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  srv->metrics.lua_errors++;
  rt_log_write(&srv->log, RT_LOG_ERROR, "Lua error: %s", luaL_checkstring(L, 1));
  return 0;
}

void rt_lua_open_log(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"log", l_log}, {"log_enabled", l_log_enabled},
                                 {"script_error", l_script_error}, {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
