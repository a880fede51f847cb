/* STOMP for scripts: rt.core.stomp_* out, rt._dispatch.stomp_* in (lua/rt_stomp.lua).
 *
 * The STOMP server object (configuration, queues, sessions) lives in C and survives app
 * reloads; the registry holds it in a userdata whose __gc frees it with the Lua state.
 * Scripts name sessions by connection id, so a closed one gives nil, "closed". */
#include <string.h>

#include "lua_int.h"
#include "net/tls_ctx.h"
#include "stomp/stomp_relay.h"
#include "stomp/stomp.h"
#include "stomp/stomp_broker.h"

#define STOMP_KEY "rt.stomp.server"
#define STOMP_MT "rt.stomp.server"
#define MAX_HEADERS 64

static rt_stomp_server *server_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, STOMP_KEY);
  rt_stomp_server **ud = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ud ? *ud : NULL;
}

static rt_stomp_server *need_server(lua_State *L) {
  rt_stomp_server *ss = server_of(L);
  if (!ss) luaL_error(L, "STOMP is not set up: call rt.stomp{...} first");
  return ss;
}

/* ---- events into Lua --------------------------------------------------------------- */

static void push_headers(lua_State *co, const rt_stomp_frame *f) {
  lua_createtable(co, 0, (int)f->nheaders);
  /* STOMP: the first occurrence of a header wins. */
  for (size_t i = f->nheaders; i-- > 0;) {
    lua_pushlstring(co, f->headers[i].value, f->headers[i].value_len);
    lua_setfield(co, -2, f->headers[i].name);
  }
}

static void set_str(lua_State *co, const char *field, const char *v) {
  if (!v) return;
  lua_pushstring(co, v);
  lua_setfield(co, -2, field);
}

static void hook_connect(void *ud, rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) {
    rt_stomp_session_accept(s, NULL);
    return;
  }
  lua_State *co = rt_lua_prepare(lx, "stomp_connect");
  lua_pushnumber(co, (lua_Number)s->conn_id);
  lua_createtable(co, 0, 9);
  set_str(co, "login", rt_stomp_frame_get(f, "login"));
  set_str(co, "passcode", rt_stomp_frame_get(f, "passcode"));
  set_str(co, "host", rt_stomp_frame_get(f, "host"));
  set_str(co, "session", s->id);
  set_str(co, "peer", s->conn->peer);
  rt_lua_push_tls(co, s->conn);
  lua_setfield(co, -2, "tls");
  set_str(co, "transport", s->tp->name);
  set_str(co, "version", s->version == 12 ? "1.2" : s->version == 11 ? "1.1" : "1.0");
  push_headers(co, f);
  lua_setfield(co, -2, "headers");
  rt_lua_start(lx, co, 2, s->conn_id);
}

static void hook_send(void *ud, rt_stomp_session *s, const rt_stomp_frame *f, const char *path) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  lua_State *co = rt_lua_prepare(lx, "stomp_send");
  lua_pushnumber(co, (lua_Number)s->conn_id);
  lua_pushstring(co, rt_stomp_frame_get(f, "destination"));
  lua_pushstring(co, path);
  lua_pushlstring(co, (const char *)f->body, f->body_len);
  push_headers(co, f);
  rt_lua_start(lx, co, 5, s->conn_id);
}

static void hook_closed(void *ud, uint64_t conn_id) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  lua_State *co = rt_lua_prepare(lx, "stomp_closed");
  lua_pushnumber(co, (lua_Number)conn_id);
  rt_lua_start(lx, co, 1, 0);
}

/* ---- configuration ----------------------------------------------------------------- */

static void read_prefix(lua_State *L, const char *what, const char *v, char *out) {
  size_t n = strlen(v);
  if (n == 0) {
    out[0] = 0;
    return;
  }
  if (v[0] != '/' || n < 2 || n >= RT_STOMP_PREFIX_LEN || v[n - 1] == '/' || strchr(v, '*'))
    luaL_error(L, "rt.stomp: %s prefix '%s' must start with '/', not end with one, have no '*' "
               "and fewer than %d bytes", what, v, RT_STOMP_PREFIX_LEN);
  memcpy(out, v, n + 1);
}

static int read_prefixes(lua_State *L, const char *field, char (*out)[RT_STOMP_PREFIX_LEN]) {
  int n = 0;
  lua_getfield(L, 1, field);
  if (lua_istable(L, -1)) {
    for (int i = 1;; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      if (!lua_isstring(L, -1) || n == RT_STOMP_MAX_PREFIXES)
        luaL_error(L, "rt.stomp: %s must be up to %d strings", field, RT_STOMP_MAX_PREFIXES);
      read_prefix(L, field, lua_tostring(L, -1), out[n++]);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return n;
}

static double opt_num(lua_State *L, const char *field, double def, double lo, double hi) {
  return rt_lua_opt_number(L, 1, "rt.stomp", field, def, lo, hi);
}

static void relay_str(lua_State *L, int idx, const char *field, const char *def, char *out, size_t cap) {
  lua_getfield(L, idx, field);
  const char *v = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
  if (!v || strlen(v) >= cap) luaL_error(L, "rt.stomp: relay.%s must be a string of fewer than %d bytes", field, (int)cap);
  memcpy(out, v, strlen(v) + 1);
  lua_pop(L, 1);
}

/* relay.tls: true, or { ca =, cert =, key =, server_name =, verify = } (as rt.grpc.client's). */
static void read_relay_tls(lua_State *L, int t, rt_stomp_relay_config *r) {
  lua_getfield(L, t, "tls");
  int idx = lua_gettop(L);
  if (lua_isnil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx))) {
    lua_pop(L, 1);
    return;
  }
  r->tls = 1;
  if (lua_istable(L, idx)) {
    relay_str(L, idx, "ca", "", r->tls_ca, sizeof r->tls_ca);
    relay_str(L, idx, "cert", "", r->tls_cert, sizeof r->tls_cert);
    relay_str(L, idx, "key", "", r->tls_key, sizeof r->tls_key);
    relay_str(L, idx, "server_name", "", r->tls_server_name, sizeof r->tls_server_name);
    lua_getfield(L, idx, "verify");
    r->tls_no_verify = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!r->tls_cert[0] != !r->tls_key[0]) luaL_error(L, "rt.stomp: relay.tls needs both cert and key, or neither");
  } else if (!lua_isboolean(L, idx)) {
    luaL_error(L, "rt.stomp: relay.tls must be true or a table { ca =, cert =, key =, server_name =, verify = }");
  }
  lua_pop(L, 1);
  /* Files that do not load are the script's mistake: said now, not at the first connect. */
  char err[300];
  rt_tls_ctx *ctx = rt_stomp_relay_tls_ctx(r, err, sizeof err);
  if (!ctx) luaL_error(L, "rt.stomp: relay.tls: %s", err);
  rt_tls_ctx_unref(ctx);
}

/* relay = { host, port, login, passcode, vhost, heartbeat = { cx, cy }, connect_timeout,
 *           reconnect_min, reconnect_max, tls } */
static void read_relay(lua_State *L, rt_stomp_relay_config *r) {
  memset(r, 0, sizeof *r);
  lua_getfield(L, 1, "relay");
  if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "rt.stomp: relay must be a table");
  int t = lua_gettop(L);
  r->on = 1;
  relay_str(L, t, "host", "127.0.0.1", r->host, sizeof r->host);
  relay_str(L, t, "login", "guest", r->login, sizeof r->login);
  relay_str(L, t, "passcode", "guest", r->passcode, sizeof r->passcode);
  relay_str(L, t, "vhost", "/", r->vhost, sizeof r->vhost);
  r->port = (int)rt_lua_opt_number(L, t, "rt.stomp relay", "port", 61613, 1, 65535);
  read_relay_tls(L, t, r);
  r->connect_timeout = rt_lua_opt_number(L, t, "rt.stomp relay", "connect_timeout", 10, 0.01, 3600);
  r->reconnect_min = rt_lua_opt_number(L, t, "rt.stomp relay", "reconnect_min", 0.5, 0.01, 3600);
  r->reconnect_max = rt_lua_opt_number(L, t, "rt.stomp relay", "reconnect_max", 10, r->reconnect_min, 3600);
  r->hb_send_ms = r->hb_recv_ms = 10000;
  lua_getfield(L, t, "heartbeat");
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1) || lua_tonumber(L, -2) < 0 || lua_tonumber(L, -1) < 0)
      luaL_error(L, "rt.stomp: relay.heartbeat must be { send_ms, receive_ms }");
    r->hb_send_ms = (unsigned)lua_tonumber(L, -2);
    r->hb_recv_ms = (unsigned)lua_tonumber(L, -1);
    lua_pop(L, 2);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "rt.stomp: relay.heartbeat must be { send_ms, receive_ms }");
  }
  lua_pop(L, 2);
}

static void read_config(lua_State *L, rt_stomp_config *c) {
  rt_stomp_config_init(c);
  lua_getfield(L, 1, "app");
  if (lua_isstring(L, -1)) read_prefix(L, "app", lua_tostring(L, -1), c->app_prefix);
  lua_pop(L, 1);
  lua_getfield(L, 1, "user");
  if (lua_isstring(L, -1)) read_prefix(L, "user", lua_tostring(L, -1), c->user_prefix);
  lua_pop(L, 1);
  c->ntopics = read_prefixes(L, "topics", c->topics);
  c->nqueues = read_prefixes(L, "queues", c->queues);
  c->hb_send_ms = (unsigned)opt_num(L, "heartbeat_send", c->hb_send_ms, 0, 86400000);
  c->hb_recv_ms = (unsigned)opt_num(L, "heartbeat_recv", c->hb_recv_ms, 0, 86400000);
  c->limits.max_body = (size_t)opt_num(L, "max_body", (double)c->limits.max_body, 0, 1 << 30);
  c->limits.max_headers = (size_t)opt_num(L, "max_headers", (double)c->limits.max_headers, 1, 4096);
  c->limits.max_header_line = (size_t)opt_num(L, "max_header_line", (double)c->limits.max_header_line, 64, 1 << 20);
  c->max_destination = (size_t)opt_num(L, "max_destination", (double)c->max_destination, 16, 1000);
  c->max_subscriptions = (int)opt_num(L, "max_subscriptions", c->max_subscriptions, 1, 1 << 20);
  c->max_unacked = (int)opt_num(L, "max_unacked", c->max_unacked, 1, 1 << 20);
  c->max_transactions = (int)opt_num(L, "max_transactions", c->max_transactions, 1, 4096);
  c->max_tx_frames = (int)opt_num(L, "max_tx_frames", c->max_tx_frames, 1, 1 << 20);
  c->max_tx_bytes = (size_t)opt_num(L, "max_tx_bytes", (double)c->max_tx_bytes, 0, 1 << 30);
  c->max_queue_messages = (size_t)opt_num(L, "max_queue_messages", (double)c->max_queue_messages, 1, 1e9);
  c->max_queued_bytes = (size_t)opt_num(L, "max_queued_bytes", (double)c->max_queued_bytes, 0, 1e12);
  c->connect_timeout = opt_num(L, "connect_timeout", c->connect_timeout, 0.01, 3600);
  read_relay(L, &c->relay);
}

static int l_gc(lua_State *L) {
  rt_stomp_server **ud = lua_touserdata(L, 1);
  if (ud && *ud) {
    /* The Lua state is going away: nothing may call back into it. */
    memset(&(*ud)->hooks, 0, sizeof (*ud)->hooks);
    rt_stomp_server_free(*ud);
    *ud = NULL;
  }
  return 0;
}

/* core.stomp_configure(opts) -> tcp port | nil. Raises on bad options or a bind error. */
static int l_configure(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  rt_stomp_config cfg;
  read_config(L, &cfg);
  rt_stomp_server *ss = server_of(L);
  if (ss) {
    rt_stomp_server_configure(ss, &cfg);
  } else {
    rt_stomp_hooks hooks = {.on_connect = hook_connect, .on_send = hook_send,
                            .on_closed = hook_closed, .ud = srv};
    rt_stomp_server **ud = lua_newuserdata(L, sizeof *ud);
    *ud = ss = rt_stomp_server_new(srv, &cfg, &hooks);
    if (!ss) return luaL_error(L, "rt.stomp: out of memory");
    /* Said once, at start: queues need one owner, which several processes do not have. */
    if (cfg.nqueues > 0 && (srv->engine || srv->worker))
      rt_warn(&srv->log, "STOMP queue destinations (%s...) stay in this %s: they are not shared "
              "with the other %s (topics and /user destinations are)", cfg.queues[0],
              srv->worker ? "worker" : "node", srv->worker ? "workers and nodes" : "nodes");
    luaL_newmetatable(L, STOMP_MT);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, STOMP_KEY);
  }
  lua_getfield(L, 1, "tcp_port");
  int want = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  lua_getfield(L, 1, "tcp_host");
  const char *host = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
  if (want < -1 || want > 65535) return luaL_error(L, "rt.stomp: tcp_port %d is out of range", want);
  lua_getfield(L, 1, "tls");
  int tls = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (tls && !srv->tls)
    return luaL_error(L, "rt.stomp: tls = true needs the server's certificate (--tls-cert and --tls-key)");
  if (tls != ss->tcp_tls) {
    ss->tcp_tls = tls;  /* takes effect on a new listener */
    ss->tcp_want = -2;
  }
  if (want < 0) {
    rt_stomp_tcp_close(ss);
  } else if (!(ss->tcp_want == want && strcmp(ss->tcp_host, host ? host : "") == 0)) {
    char err[256];
    if (rt_stomp_tcp_listen(ss, host, want, err, sizeof err) < 0)
      return luaL_error(L, "rt.stomp: STOMP over TCP: %s", err);
  }
  lua_pop(L, 1);
  if (ss->tcp_port) lua_pushinteger(L, ss->tcp_port);
  else lua_pushnil(L);
  return 1;
}

static int l_tcp_port(lua_State *L) {
  rt_stomp_server *ss = server_of(L);
  if (ss && ss->tcp_port) lua_pushinteger(L, ss->tcp_port);
  else lua_pushnil(L);
  return 1;
}

/* ---- sessions ---------------------------------------------------------------------- */

static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

static rt_stomp_session *session_arg(lua_State *L, int idx) {
  rt_stomp_server *ss = server_of(L);
  return ss ? rt_stomp_server_session(ss, (uint64_t)luaL_checknumber(L, idx)) : NULL;
}

/* core.stomp_ws_attach(id) -> true | nil, err */
static int l_ws_attach(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_stomp_server *ss = need_server(L);
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  if (!c) return closed(L);
  if (!rt_stomp_ws_attach(ss, c)) {
    lua_pushnil(L);
    lua_pushliteral(L, "not a WebSocket, or out of memory");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.stomp_accept(id, user_or_nil) -> true | nil, "closed" */
static int l_accept(lua_State *L) {
  rt_stomp_session *s = session_arg(L, 1);
  const char *user = luaL_optstring(L, 2, NULL);
  if (!s) return closed(L);
  rt_stomp_session_hold(s);
  int rc = rt_stomp_session_accept(s, user);
  if (rt_stomp_session_release(s) < 0 || rc < 0) return closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.stomp_refuse(id, why) */
static int l_refuse(lua_State *L) {
  rt_stomp_session *s = session_arg(L, 1);
  const char *why = luaL_optstring(L, 2, "access denied");
  if (s) {
    rt_stomp_session_hold(s);
    rt_stomp_session_refuse(s, why);
    rt_stomp_session_release(s);
  }
  return 0;
}

/* core.stomp_error(id, message, detail): ERROR frame, then the connection closes. */
static int l_error(lua_State *L) {
  rt_stomp_session *s = session_arg(L, 1);
  const char *message = luaL_checkstring(L, 2);
  const char *detail = luaL_optstring(L, 3, message);
  if (s) {
    rt_stomp_session_hold(s);
    rt_stomp_session_error(s, NULL, message, detail);
    rt_stomp_session_release(s);
  }
  return 0;
}

/* ---- sending ----------------------------------------------------------------------- */

typedef struct out_msg {
  rt_chunk *body;
  const char *ctype;
  rt_stomp_header h[MAX_HEADERS];
  size_t nh;
} out_msg;

static int reserved(const char *name) {
  static const char *const names[] = {"destination", "content-length", "content-type", "message-id",
                                      "subscription", "ack", "redelivered"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return 1;
  return 0;
}

/* body at idx, headers table at idx + 1 (strings stay anchored in the table). */
static void read_msg(lua_State *L, int idx, out_msg *m) {
  size_t len;
  const char *body = luaL_checklstring(L, idx, &len);
  m->ctype = NULL;
  m->nh = 0;
  if (lua_istable(L, idx + 1)) {
    lua_pushnil(L);
    while (lua_next(L, idx + 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_error(L, "STOMP headers must be a table of strings");
      const char *name = lua_tostring(L, -2);
      const char *value = lua_tostring(L, -1);  /* a number becomes a string in place */
      if (strcmp(name, "content-type") == 0) m->ctype = value;
      else if (!reserved(name) && name[0] && m->nh < MAX_HEADERS) m->h[m->nh++] = rt_stomp_hdr(name, value);
      lua_pop(L, 1);
    }
  }
  if (!(m->body = rt_chunk_copy(body, len))) luaL_error(L, "out of memory");
}

/* deliveries | nil, err [, "engine" when only the engine failed: local subscribers got it] */
static int publish_result(lua_State *L, long n, const char *err) {
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    if (n != RT_BROKER_ENGINE_FAILED) return 2;
    lua_pushliteral(L, "engine");
    return 3;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* core.stomp_publish(dest, body, headers) -> deliveries | nil, err */
static int l_publish(lua_State *L) {
  rt_stomp_server *ss = need_server(L);
  const char *dest = luaL_checkstring(L, 1);
  out_msg m;
  read_msg(L, 2, &m);
  char err[300];
  long n = rt_stomp_publish(ss, dest, m.body, m.ctype, m.h, m.nh, err, sizeof err);
  rt_chunk_unref(m.body);
  return publish_result(L, n, err);
}

/* core.stomp_publish_user(user, "/queue/x", body, headers) -> deliveries | nil, err */
static int l_publish_user(lua_State *L) {
  rt_stomp_server *ss = need_server(L);
  const char *user = luaL_checkstring(L, 1), *rest = luaL_checkstring(L, 2);
  out_msg m;
  read_msg(L, 3, &m);
  char err[300];
  long n = rt_stomp_publish_user(ss, user, rest, m.body, m.ctype, m.h, m.nh, err, sizeof err);
  rt_chunk_unref(m.body);
  return publish_result(L, n, err);
}

/* core.stomp_send_session(id, dest, body, headers) -> deliveries | nil, "closed" */
static int l_send_session(lua_State *L) {
  rt_stomp_session *s = session_arg(L, 1);
  const char *dest = luaL_checkstring(L, 2);
  out_msg m;
  read_msg(L, 3, &m);
  if (!s) {
    rt_chunk_unref(m.body);
    return closed(L);
  }
  rt_stomp_session_hold(s);
  long n = rt_stomp_send_to_session(s, dest, m.body, m.ctype, m.h, m.nh);
  rt_stomp_session_release(s);
  rt_chunk_unref(m.body);
  return publish_result(L, n, "out of memory");
}

static int l_queue_depth(lua_State *L) {
  rt_stomp_server *ss = need_server(L);
  lua_pushinteger(L, (lua_Integer)rt_stomp_queue_depth(ss, luaL_checkstring(L, 1)));
  return 1;
}

void rt_lua_open_stomp(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {
      {"stomp_configure", l_configure}, {"stomp_tcp_port", l_tcp_port},
      {"stomp_ws_attach", l_ws_attach}, {"stomp_accept", l_accept},
      {"stomp_refuse", l_refuse},       {"stomp_error", l_error},
      {"stomp_publish", l_publish},     {"stomp_publish_user", l_publish_user},
      {"stomp_send_session", l_send_session}, {"stomp_queue_depth", l_queue_depth},
      {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
}
