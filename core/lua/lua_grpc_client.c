/* The gRPC client for scripts: rt.core.grpc_client_new / grpc_call and the call object.
 * lua/rt_grpc_client.lua builds rt.grpc.client on top of these.
 *
 * Every waiting method has the usual shape: check the arguments (misuse raises), look at
 * the call, and either answer now or park the coroutine (rt_lua_park) until the call's
 * notify says the awaited thing happened; the notify pushes the same answers onto the
 * parked coroutine and wakes it. A call has two waiters, so one coroutine can block in
 * send (flow control) while another blocks in recv on the same bidi call.
 *
 * Answers: recv -> message table | nil (the stream ended OK) | nil, err; headers ->
 * table | nil, err; finish -> true | nil, err; send -> true | nil, err. err is
 * { code = 14, status = "UNAVAILABLE", message = "...", trailers = {...} }.
 *
 * Messages are decoded on the main Lua state and moved to the coroutine, because the
 * decoder runs Lua (lua_pcall), which a suspended coroutine cannot do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grpc/grpc_client.h"
#include "lua_int.h"
#include "pb_lua.h"
#include "pb/pb_schema.h"

#define CTX_KEY "rt.grpc_client.ctx"
#define SCHEMAS_KEY "rt.grpc_client.schemas"
#define CTX_MT "rt.grpc_client.ctx"
#define SCHEMA_MT "rt.grpc_client.schema"
#define CLIENT_MT "rt.grpc_client.client"
#define CALL_MT "rt.grpc_client.call"

enum { WAIT_NONE, WAIT_MSG, WAIT_HEADERS, WAIT_END };

typedef struct { rt_grpc_client *cli; } lctx;
typedef struct { rt_pb_schema *s; } lschema;

typedef struct {
  rt_grpc_channel *ch;
  const rt_pb_service *svc;
  size_t max_msg;
} lclient;

typedef struct {
  rt_grpc_call *call;
  const rt_pb_method *m;
  rt_lua *lx;
  size_t max_msg;
  int rwait;               /* what the recv-side waiter waits for */
  rt_lua_waiter rw, sw;    /* recv side (recv, headers, finish) and send side */
} lcall;

/* ---- helpers -------------------------------------------------------------------------------*/

static rt_grpc_client *get_client(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  lctx *x = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!x || !x->cli) luaL_error(L, "the gRPC client is not available");
  return x->cli;
}

static void push_md(lua_State *L, const rt_grpc_call *c, int trailers) {
  const rt_grpc_md *md;
  size_t n = rt_grpc_call_md(c, trailers, &md);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    /* A repeated key becomes an array of its values, in order. */
    lua_getfield(L, -1, md[i].key);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, (const char *)md[i].val, md[i].vallen);
    } else if (lua_istable(L, -1)) {
      lua_pushlstring(L, (const char *)md[i].val, md[i].vallen);
      lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    } else {
      lua_createtable(L, 2, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
      lua_pushlstring(L, (const char *)md[i].val, md[i].vallen);
      lua_rawseti(L, -2, 2);
    }
    lua_setfield(L, -2, md[i].key);
  }
}

static void push_err_raw(lua_State *L, int code, const char *message, const rt_grpc_call *c) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  const char *name = rt_grpc_status_name(code);
  lua_pushstring(L, name ? name : "UNKNOWN");
  lua_setfield(L, -2, "status");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  if (c) {
    push_md(L, c, 1);
    lua_setfield(L, -2, "trailers");
  }
}

/* nil, err from the call's status. */
static int push_status_err(lua_State *L, const rt_grpc_call *c) {
  const char *msg;
  int st = rt_grpc_call_status(c, &msg);
  lua_pushnil(L);
  push_err_raw(L, st, st == RT_GRPC_STATUS_OK && !*msg ? "the call has finished" : msg, c);
  return 2;
}

static int recv_ready(lcall *u, int kind) {
  rt_grpc_call *c = u->call;
  switch (kind) {
    case WAIT_MSG: return rt_grpc_call_queued(c) > 0 || rt_grpc_call_done(c);
    case WAIT_HEADERS: return rt_grpc_call_has_headers(c);
    default: return rt_grpc_call_done(c);
  }
}

static int send_ready(lcall *u) {
  return rt_grpc_call_done(u->call) ||
         rt_grpc_call_send_buffered(u->call) <= RT_GRPC_CLIENT_SEND_HIGH / 2;
}

/* Pushes the answer for a ready recv-side wait onto dst; returns how many values. */
static int push_recv(lua_State *dst, lcall *u, int kind) {
  lua_State *L = u->lx->L;
  rt_grpc_call *c = u->call;
  int n;
  const uint8_t *data;
  size_t len;
  if (kind == WAIT_MSG && rt_grpc_call_peek(c, &data, &len)) {
    char err[512];
    rt_pb_lua_opts o = {.max_size = u->max_msg};
    if (rt_pb_lua_decode_ex(L, u->m->output, data, len, &o, err, sizeof err) < 0) {
      char msg[600];
      snprintf(msg, sizeof msg, "the response does not decode as %s: %s",
               u->m->output->name, err);
      rt_grpc_call_pop(c);
      rt_grpc_call_cancel(c, RT_GRPC_STATUS_INTERNAL, msg);
      n = push_status_err(L, c);
    } else {
      rt_grpc_call_pop(c);
      n = 1;
    }
  } else if (kind == WAIT_HEADERS && rt_grpc_call_has_headers(c) &&
             (!rt_grpc_call_done(c) || rt_grpc_call_status(c, NULL) == RT_GRPC_STATUS_OK)) {
    push_md(L, c, 0);
    n = 1;
  } else if (rt_grpc_call_status(c, NULL) == RT_GRPC_STATUS_OK) {
    if (kind == WAIT_END) lua_pushboolean(L, 1);
    else lua_pushnil(L);  /* the stream ended cleanly */
    n = 1;
  } else {
    n = push_status_err(L, c);
  }
  lua_xmove(L, dst, n);
  return n;
}

static void on_call_event(rt_grpc_call *call, void *ud) {
  lcall *u = ud;
  int r = u->rw.co && recv_ready(u, u->rwait);
  int s = u->sw.co && send_ready(u);
  /* One wake per turn: after it the call may be gone. The other waits for the next. */
  if (r && s) rt_grpc_call_renotify(call);
  if (r) {
    int kind = u->rwait;
    u->rwait = WAIT_NONE;
    int n = push_recv(u->rw.co, u, kind);
    rt_lua_wake(u->lx, &u->rw, n);
  } else if (s) {
    int n = 1;
    if (rt_grpc_call_done(call) && rt_grpc_call_status(call, NULL) != RT_GRPC_STATUS_OK)
      n = push_status_err(u->sw.co, call);
    else
      lua_pushboolean(u->sw.co, 1);
    rt_lua_wake(u->lx, &u->sw, n);
  }
}

/* ---- the client object ---------------------------------------------------------------------*/

static int l_schema_gc(lua_State *L) {
  lschema *s = luaL_checkudata(L, 1, SCHEMA_MT);
  rt_pb_schema_free(s->s);
  s->s = NULL;
  return 0;
}

/* Pushes the schema for path, loaded once per version of the file: clients share it, and a
 * reload after the .proto changed loads the new one. */
static lschema *schema_for(lua_State *L, const char *path) {
  struct stat st;
  char key[4200];
  if (stat(path, &st) < 0) luaL_error(L, "rt.grpc.client: cannot read %s: %s", path, strerror(errno));
  snprintf(key, sizeof key, "%s|%lld|%lld", path, (long long)st.st_mtime, (long long)st.st_size);
  lua_getfield(L, LUA_REGISTRYINDEX, SCHEMAS_KEY);
  lua_getfield(L, -1, key);
  if (!lua_isnil(L, -1)) {
    lua_remove(L, -2);
    return lua_touserdata(L, -1);
  }
  lua_pop(L, 1);
  lschema *s = lua_newuserdata(L, sizeof *s);
  s->s = rt_pb_schema_new();
  luaL_getmetatable(L, SCHEMA_MT);
  lua_setmetatable(L, -2);
  if (!s->s) luaL_error(L, "out of memory");
  char err[512];
  if (rt_pb_schema_load(s->s, path, NULL, 0, err, sizeof err) < 0)
    luaL_error(L, "rt.grpc.client: %s", err);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, key);
  lua_remove(L, -2);
  return s;
}

/* Reads a client's tls option: true, or { ca =, cert =, key =, server_name =, verify = }.
 * Returns 0 when the option is absent or false. The strings stay in the caller's table. */
static int read_tls(lua_State *L, int idx, rt_grpc_tls *t) {
  memset(t, 0, sizeof *t);
  if (lua_isnoneornil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx))) return 0;
  if (lua_isboolean(L, idx)) return 1;
  luaL_checktype(L, idx, LUA_TTABLE);
  const char **fields[] = {&t->ca, &t->cert, &t->key, &t->server_name};
  static const char *const names[] = {"ca", "cert", "key", "server_name"};
  for (int i = 0; i < 4; i++) {
    lua_getfield(L, idx, names[i]);
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
      luaL_error(L, "rt.grpc.client: tls.%s must be a string", names[i]);
    *fields[i] = lua_tostring(L, -1);  /* anchored by the option table */
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "verify");
  t->no_verify = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 1;
}

/* core.grpc_client_new(target, proto_path, service, max_message, tls) -> client, methods
 * methods: array of { name =, client_streaming =, server_streaming = }. Raises on a bad
 * target, a proto that does not load or a service that is not in it: those are mistakes
 * in the script, found when it loads. */
static int l_client_new(lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  const char *path = luaL_checkstring(L, 2);
  const char *svcname = luaL_checkstring(L, 3);
  lua_Number maxmsg = luaL_optnumber(L, 4, 0);
  if (maxmsg < 0 || maxmsg > RT_PB_DEFAULT_MAX_SIZE * 64.0)
    return luaL_error(L, "rt.grpc.client: max_message out of range");
  rt_grpc_client *cli = get_client(L);
  char err[512];
  rt_grpc_tls tls;
  int use_tls = read_tls(L, 5, &tls);
  rt_grpc_channel *ch = rt_grpc_client_channel_tls(cli, target, use_tls ? &tls : NULL, err, sizeof err);
  if (!ch) return luaL_error(L, "rt.grpc.client: %s", err);
  lschema *s = schema_for(L, path);  /* [schema] */
  const rt_pb_service *svc = rt_pb_schema_service(s->s, svcname);
  if (!svc) return luaL_error(L, "rt.grpc.client: no service '%s' in %s", svcname, path);
  lclient *c = lua_newuserdata(L, sizeof *c);  /* [schema, client] */
  c->ch = ch;
  c->svc = svc;
  c->max_msg = maxmsg > 0 ? (size_t)maxmsg : RT_GRPC_DEFAULT_MAX_MSG;
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2);
  /* The client keeps its schema alive: the method pointers point into it. */
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, -2);
  lua_createtable(L, (int)svc->n_methods, 0);
  for (size_t i = 0; i < svc->n_methods; i++) {
    const rt_pb_method *m = &svc->methods[i];
    lua_createtable(L, 0, 3);
    lua_pushstring(L, m->name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, m->client_streaming);
    lua_setfield(L, -2, "client_streaming");
    lua_pushboolean(L, m->server_streaming);
    lua_setfield(L, -2, "server_streaming");
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 2;
}

/* core.grpc_client_stats(client) -> { connects, connect_fails, calls, open } */
static int l_client_stats(lua_State *L) {
  lclient *c = luaL_checkudata(L, 1, CLIENT_MT);
  rt_grpc_client_stats st;
  rt_grpc_channel_stats(c->ch, &st);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, (lua_Number)st.connects);
  lua_setfield(L, -2, "connects");
  lua_pushnumber(L, (lua_Number)st.connect_fails);
  lua_setfield(L, -2, "connect_fails");
  lua_pushnumber(L, (lua_Number)st.calls);
  lua_setfield(L, -2, "calls");
  lua_pushinteger(L, st.open);
  lua_setfield(L, -2, "open");
  return 1;
}

/* ---- starting a call -----------------------------------------------------------------------*/

/* Reads metadata { key = "v" | { "v1", "v2" } } at idx into md (keys lower-cased into
 * keybuf). Raises on anything that is not a string. */
static size_t read_md(lua_State *L, int idx, rt_grpc_md *md, char (*keys)[128]) {
  size_t n = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "metadata keys must be strings");
    size_t kl;
    const char *k = lua_tolstring(L, -2, &kl);
    if (kl == 0 || kl >= 128) luaL_error(L, "metadata key '%s' is empty or too long", k);
    int nv = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 1;
    for (int j = 1; j <= nv; j++) {
      if (n >= RT_GRPC_CLIENT_MAX_SEND_MD)
        luaL_error(L, "more than %d metadata entries", RT_GRPC_CLIENT_MAX_SEND_MD);
      if (lua_istable(L, -1)) lua_rawgeti(L, -1, j);
      else lua_pushvalue(L, -1);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "metadata '%s': values must be strings", k);
      size_t vl;
      const char *v = lua_tolstring(L, -1, &vl);
      lua_pop(L, 1);  /* the same string stays alive in the table until the call starts */
      for (size_t i = 0; i <= kl; i++)
        keys[n][i] = (k[i] >= 'A' && k[i] <= 'Z') ? (char)(k[i] - 'A' + 'a') : k[i];
      md[n].key = keys[n];
      md[n].val = (const uint8_t *)v;
      md[n].vallen = vl;
      n++;
    }
    lua_pop(L, 1);
  }
  return n;
}

/* core.grpc_call(client, method_name, timeout_or_nil, metadata_or_nil) -> call
 * Never yields; a call that cannot start reports it at its first recv/finish. */
static int l_call(lua_State *L) {
  lclient *c = luaL_checkudata(L, 1, CLIENT_MT);
  const char *name = luaL_checkstring(L, 2);
  lua_Number timeout = luaL_optnumber(L, 3, 0);
  const rt_pb_method *m = rt_pb_service_method(c->svc, name);
  if (!m) return luaL_error(L, "%s has no method '%s'", c->svc->name, name);
  if (timeout < 0 || timeout != timeout) return luaL_error(L, "timeout must be a positive number");
  rt_grpc_md md[RT_GRPC_CLIENT_MAX_SEND_MD];
  char keys[RT_GRPC_CLIENT_MAX_SEND_MD][128];
  size_t n = read_md(L, 4, md, keys);
  rt_grpc_call_opts o = {.path = m->path, .timeout = timeout, .max_recv_msg = c->max_msg,
                         .md = md, .n_md = n};
  char err[256];
  lcall *u = lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  luaL_getmetatable(L, CALL_MT);
  lua_setmetatable(L, -2);
  /* The call keeps its client (and so the schema) alive. */
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, -2);
  u->m = m;
  u->lx = rt_lua_of(L);
  u->max_msg = c->max_msg;
  u->rw.thread_ref = u->sw.thread_ref = LUA_NOREF;
  u->call = rt_grpc_call_start(c->ch, &o, err, sizeof err);
  if (!u->call) return luaL_error(L, "%s", err);
  rt_grpc_call_set_notify(u->call, on_call_event, u);
  return 1;
}

/* ---- the call object -----------------------------------------------------------------------*/

static lcall *check_call(lua_State *L) {
  lcall *u = luaL_checkudata(L, 1, CALL_MT);
  if (!u->call) luaL_error(L, "the call is closed");
  return u;
}

/* call:send(message_table) -> true | nil, err; waits while the send buffer is full. */
static int l_send(lua_State *L) {
  lcall *u = check_call(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (rt_grpc_call_send_closed(u->call)) return luaL_error(L, "send after close_send");
  if (rt_grpc_call_done(u->call)) return push_status_err(L, u->call);
  uint8_t *buf;
  size_t len;
  char err[512];
  rt_pb_lua_opts o = {.max_size = u->max_msg, .headroom = RT_GRPC_PREFIX_LEN};
  if (rt_pb_lua_encode_ex(L, 2, u->m->input, &o, &buf, &len, err, sizeof err) < 0)
    return luaL_error(L, "%s", err);  /* the table does not fit the request message */
  int rc = rt_grpc_call_send(u->call, buf, len, err, sizeof err);
  free(buf);
  if (rc < 0) {
    if (rt_grpc_call_done(u->call)) return push_status_err(L, u->call);
    lua_pushnil(L);
    push_err_raw(L, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, err, NULL);
    return 2;
  }
  if (rt_grpc_call_send_buffered(u->call) > RT_GRPC_CLIENT_SEND_HIGH && !rt_grpc_call_done(u->call)) {
    if (u->sw.co) return luaL_error(L, "another coroutine is already sending on this call");
    return rt_lua_park(L, &u->sw);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_close_send(lua_State *L) {
  lcall *u = check_call(L);
  rt_grpc_call_close_send(u->call);
  return 0;
}

static int recv_side(lua_State *L, int kind) {
  lcall *u = check_call(L);
  if (u->rw.co) return luaL_error(L, "another coroutine is already waiting on this call");
  if (recv_ready(u, kind)) return push_recv(L, u, kind);
  u->rwait = kind;
  return rt_lua_park(L, &u->rw);
}

/* call:recv() -> message | nil (clean end) | nil, err */
static int l_recv(lua_State *L) { return recv_side(L, WAIT_MSG); }
/* call:headers() -> initial metadata | nil, err */
static int l_headers(lua_State *L) { return recv_side(L, WAIT_HEADERS); }
/* call:finish() -> true | nil, err: waits for the status (messages stay queued). */
static int l_finish(lua_State *L) { return recv_side(L, WAIT_END); }

/* call:trailers() -> table (empty until the call ended) */
static int l_trailers(lua_State *L) {
  lcall *u = check_call(L);
  push_md(L, u->call, 1);
  return 1;
}

/* call:queued() -> messages received and not yet taken */
static int l_queued(lua_State *L) {
  lcall *u = check_call(L);
  lua_pushinteger(L, (lua_Integer)rt_grpc_call_queued(u->call));
  return 1;
}

/* call:cancel([message]): CANCELLED, RST_STREAM to the server; waiters get the error. */
static int l_cancel(lua_State *L) {
  lcall *u = check_call(L);
  rt_grpc_call_cancel(u->call, RT_GRPC_STATUS_CANCELLED, luaL_optstring(L, 2, "cancelled by the caller"));
  return 0;
}

static int l_call_gc(lua_State *L) {
  lcall *u = luaL_checkudata(L, 1, CALL_MT);
  /* A parked coroutine holds its call, so nobody waits here (except at lua_close, where
   * the registry goes anyway). */
  if (u->call) rt_grpc_call_release(u->call);
  u->call = NULL;
  return 0;
}

static int l_ctx_gc(lua_State *L) {
  lctx *x = lua_touserdata(L, 1);
  rt_grpc_client_free(x->cli);
  x->cli = NULL;
  return 0;
}

void rt_lua_open_grpc_client(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"grpc_client_new", l_client_new},
                                 {"grpc_client_stats", l_client_stats},
                                 {"grpc_call", l_call},
                                 {NULL, NULL}};
  static const luaL_Reg call_fns[] = {{"send", l_send}, {"close_send", l_close_send},
                                      {"recv", l_recv}, {"headers", l_headers},
                                      {"finish", l_finish}, {"trailers", l_trailers},
                                      {"queued", l_queued}, {"cancel", l_cancel},
                                      {NULL, NULL}};
  /* [core] */
  luaL_newmetatable(L, CTX_MT);
  lua_pushcfunction(L, l_ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lctx *x = lua_newuserdata(L, sizeof *x);
  x->cli = rt_grpc_client_new(srv);
  luaL_getmetatable(L, CTX_MT);
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  /* Weak values: a schema no client uses any more (after reloads) can go. */
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, SCHEMAS_KEY);

  luaL_newmetatable(L, SCHEMA_MT);
  lua_pushcfunction(L, l_schema_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, CLIENT_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, CALL_MT);
  lua_newtable(L);
  rt_lua_set_funcs(L, srv, call_fns);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_call_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  rt_lua_set_funcs(L, srv, fns);
}
