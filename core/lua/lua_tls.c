/* What TLS settled on a connection, as handlers see it: req.tls, ws.tls, a STOMP
 * session's tls and a gRPC call's tls. */
#include "lua_int.h"
#include "net/tls.h"

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

void rt_lua_push_tls(lua_State *L, const rt_conn *c) {
  if (!c || !rt_tls_established(c)) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 5);
  set_str(L, "version", rt_tls_version(c));
  set_str(L, "alpn", rt_tls_alpn(c));
  lua_pushboolean(L, rt_tls_resumed(c));
  lua_setfield(L, -2, "resumed");
  /* Only a certificate that verified (mutual TLS) names the peer. */
  set_str(L, "peer", rt_tls_peer_name(c));
  set_str(L, "subject", rt_tls_peer_subject(c));
}
