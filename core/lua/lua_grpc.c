/* gRPC for scripts: rt.core.grpc_* and the app side of grpc_server.h.
 *
 * A call reaches Lua as a full userdata (a "box") that points at the C call; the box is
 * what scripts hold. When the handler is done (core.grpc_done) the box lets go and its
 * pointer becomes NULL, so a script that keeps a call around gets "call is over" rather
 * than a dangling pointer. Protobuf happens here: requests are decoded when the handler
 * takes them and replies encoded when it sends them, with the descriptors of the method
 * the call was bound to (the box keeps their schema alive). */
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_builtin.h"
#include "grpc/grpc_frame.h"
#include "grpc/grpc_server.h"
#include "net/listen.h"
#include "lua_int.h"
#include "pb_lua.h"

#define CALL_MT "rt.grpc.call"
#define SCHEMA_MT "rt.grpc.schema"
#define MAX_INCLUDES 32
#define MAX_REFLECT_SCHEMAS 64
#define MAX_REFLECT_SERVICES 256

/* rt_buf_start of an empty, never-allocated buffer would offset a NULL pointer. */
static inline const uint8_t *buf_bytes(const rt_buf *b) {
  return b->len ? rt_buf_start(b) : (const uint8_t *)"";
}

typedef struct lschema {
  rt_pb_schema *s;
} lschema;

typedef struct lcall {
  rt_grpc_srv_call *call;                    /* NULL once the handler is done */
  rt_lua_waiter reader, writer, waiter;  /* coroutines parked on this call */
  const ProtobufCMessageDescriptor *in, *out;  /* NULL: raw bytes (built-in services) */
  rt_pb_lua_opts in_opts, out_opts;
  int schema_ref, self_ref;
} lcall;

static lcall *check_call(lua_State *L, int idx) { return luaL_checkudata(L, idx, CALL_MT); }

static int call_dead(const rt_grpc_srv_call *call) {
  return (rt_grpc_srv_flags(call) & (RT_GRPC_SRV_CANCELLED | RT_GRPC_SRV_FINISHED)) != 0;
}

static int push_over(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* ---- events from grpc_server.c ---------------------------------------------------------- */

void rt_lua_grpc_call(rt_server *srv, void *data, rt_grpc_srv_call *call) {
  rt_lua *lx = data;
  static const char none[] = "this server has no gRPC services";
  if (!lx) {
    rt_grpc_srv_finish(call, RT_GRPC_STATUS_UNAVAILABLE, none, sizeof none - 1);
    return;
  }
  lua_State *co = rt_lua_prepare(lx, "grpc_call");
  if (!lua_isfunction(co, -1)) {  /* rt_grpc.lua is not installed */
    lua_pop(lx->L, 1);
    rt_grpc_srv_finish(call, RT_GRPC_STATUS_UNIMPLEMENTED, none, sizeof none - 1);
    return;
  }
  lcall *b = lua_newuserdata(co, sizeof *b);
  memset(b, 0, sizeof *b);
  b->reader.thread_ref = b->writer.thread_ref = b->waiter.thread_ref = LUA_NOREF;
  b->schema_ref = LUA_NOREF;
  luaL_getmetatable(co, CALL_MT);
  lua_setmetatable(co, -2);
  lua_pushvalue(co, -1);
  b->self_ref = luaL_ref(co, LUA_REGISTRYINDEX);
  b->call = call;
  rt_grpc_srv_set_app(call, b);
  lua_pushstring(co, rt_grpc_srv_path(call));
  rt_lua_start(lx, co, 2, rt_grpc_srv_conn_id(call));
}

/* Pushes what recv answers onto T: a message, nil (end of input) or nil, why. Returns the
 * count, or -1 when the caller must wait. wake: T is parked, so decode on the main state
 * (a suspended coroutine cannot run the decoder) and move the result over. */
static int push_recv(rt_lua *lx, lcall *b, lua_State *T, int wake) {
  const uint8_t *data;
  size_t len;
  int rc = rt_grpc_srv_recv(b->call, &data, &len);
  if (rc == RT_GRPC_SRV_RECV_WAIT) return -1;
  if (rc == RT_GRPC_SRV_RECV_END) {
    lua_pushnil(T);
    return 1;
  }
  if (rc == RT_GRPC_SRV_RECV_DEAD) {
    const char *why = rt_grpc_srv_dead_reason(b->call);
    return push_over(T, why ? why : "call is over");
  }
  if (!b->in) {
    lua_pushlstring(T, (const char *)data, len);
  } else {
    char err[512], msg[600];
    lua_State *D = wake ? lx->L : T;
    if (rt_pb_lua_decode_ex(D, b->in, data, len, &b->in_opts, err, sizeof err) < 0) {
      int n = snprintf(msg, sizeof msg, "cannot decode the request: %s", err);
      rt_grpc_srv_finish(b->call, RT_GRPC_STATUS_INTERNAL, msg, (size_t)n);
      return push_over(T, msg);
    }
    if (wake) lua_xmove(D, T, 1);
  }
  rt_grpc_srv_recv_pop(b->call);
  return 1;
}

void rt_lua_grpc_event(rt_server *srv, void *data, rt_grpc_srv_call *call) {
  rt_lua *lx = data;
  lcall *b = rt_grpc_srv_app(call);
  if (!lx || !b) return;
  if (b->reader.co) {
    int n = push_recv(lx, b, b->reader.co, 1);
    if (n >= 0) rt_lua_wake(lx, &b->reader, n);
  }
  /* Each wake runs Lua, which may end the handler: look the box up again. */
  if (!(b = rt_grpc_srv_app(call))) return;
  if (b->writer.co) {
    if (call_dead(call)) {
      const char *why = rt_grpc_srv_dead_reason(call);
      rt_lua_wake(lx, &b->writer, push_over(b->writer.co, why ? why : "call is over"));
    } else if (rt_grpc_srv_out_pending(call) <= RT_GRPC_SRV_OUT_LOW) {
      lua_pushboolean(b->writer.co, 1);
      rt_lua_wake(lx, &b->writer, 1);
    }
  }
  if (!(b = rt_grpc_srv_app(call))) return;
  if (b->waiter.co && call_dead(call)) {
    const char *why = rt_grpc_srv_dead_reason(call);
    lua_pushstring(b->waiter.co, why ? why : "call is over");
    rt_lua_wake(lx, &b->waiter, 1);
  }
}

/* ---- schemas ----------------------------------------------------------------------------- */

/* core.grpc_load(path, {include dirs}) -> schema | nil, err */
static int l_grpc_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *dirs[MAX_INCLUDES];
  size_t n = 0;
  if (lua_istable(L, 2)) {
    for (int i = 1; n < MAX_INCLUDES; i++) {
      lua_rawgeti(L, 2, i);
      if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      dirs[n++] = lua_tostring(L, -1);  /* anchored by the table */
      lua_pop(L, 1);
    }
  }
  lschema *ls = lua_newuserdata(L, sizeof *ls);
  ls->s = rt_pb_schema_new();
  luaL_getmetatable(L, SCHEMA_MT);
  lua_setmetatable(L, -2);
  char err[1024];
  if (!ls->s) return push_over(L, "out of memory");
  if (rt_pb_schema_load(ls->s, path, n ? dirs : NULL, n, err, sizeof err) < 0)
    return push_over(L, err);
  return 1;
}

static int l_schema_gc(lua_State *L) {
  lschema *ls = luaL_checkudata(L, 1, SCHEMA_MT);
  rt_pb_schema_free(ls->s);
  ls->s = NULL;
  return 0;
}

/* core.grpc_service(schema, "pkg.Service") -> { name, file, methods = { {name, path,
 * client_streaming, server_streaming, input, output}, ... } } | nil, err */
static int l_grpc_service(lua_State *L) {
  lschema *ls = luaL_checkudata(L, 1, SCHEMA_MT);
  const char *name = luaL_checkstring(L, 2);
  const rt_pb_service *svc = ls->s ? rt_pb_schema_service(ls->s, name) : NULL;
  if (!svc) {
    lua_pushnil(L);
    lua_pushfstring(L, "no service '%s' in the schema", name);
    return 2;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, svc->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, svc->file);
  lua_setfield(L, -2, "file");
  lua_createtable(L, (int)svc->n_methods, 0);
  for (size_t i = 0; i < svc->n_methods; i++) {
    const rt_pb_method *m = &svc->methods[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, m->path);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, m->client_streaming);
    lua_setfield(L, -2, "client_streaming");
    lua_pushboolean(L, m->server_streaming);
    lua_setfield(L, -2, "server_streaming");
    lua_pushstring(L, m->input->name);
    lua_setfield(L, -2, "input");
    lua_pushstring(L, m->output->name);
    lua_setfield(L, -2, "output");
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "methods");
  return 1;
}

/* ---- calls ------------------------------------------------------------------------------- */

static size_t opt_size(lua_State *L, int idx, const char *field) {
  lua_getfield(L, idx, field);
  lua_Number v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (v < 0) v = 0;
  if (v > RT_GRPC_MAX_MSG_LIMIT) v = RT_GRPC_MAX_MSG_LIMIT;
  return (size_t)v;
}

/* core.grpc_bind(call, { schema=, path=, client_streaming=, server_streaming=, max_recv=,
 * max_send=, compress= }) -> true | nil, err. Without a schema messages are raw bytes. */
static int l_grpc_bind(lua_State *L) {
  lcall *b = check_call(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!b->call) return push_over(L, "call is over");
  rt_grpc_srv_opts bind = {0};
  bind.max_recv = opt_size(L, 2, "max_recv");
  bind.max_send = opt_size(L, 2, "max_send");
  lua_getfield(L, 2, "compress");
  const char *comp = lua_tostring(L, -1);
  bind.compress = comp ? rt_grpc_enc_parse(comp, strlen(comp)) : RT_GRPC_ENC_NONE;
  lua_pop(L, 1);
  lua_getfield(L, 2, "schema");
  if (!lua_isnil(L, -1)) {
    lschema *ls = luaL_checkudata(L, -1, SCHEMA_MT);
    lua_getfield(L, 2, "path");
    const char *path = luaL_checkstring(L, -1);
    const rt_pb_method *m = ls->s ? rt_pb_schema_method(ls->s, path) : NULL;
    lua_pop(L, 1);
    if (!m) return push_over(L, "no such method in the schema");
    b->in = m->input;
    b->out = m->output;
    bind.client_streaming = m->client_streaming;
    bind.server_streaming = m->server_streaming;
    luaL_unref(L, LUA_REGISTRYINDEX, b->schema_ref);
    b->schema_ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* pops the schema */
  } else {
    lua_pop(L, 1);
    lua_getfield(L, 2, "client_streaming");
    bind.client_streaming = lua_toboolean(L, -1);
    lua_getfield(L, 2, "server_streaming");
    bind.server_streaming = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  /* The decoder takes what the frame layer let through; deeper limits are pb_lua's. */
  b->in_opts.max_size = bind.max_recv ? bind.max_recv : RT_GRPC_DEFAULT_MAX_MSG;
  b->out_opts.max_size = bind.max_send > RT_GRPC_DEFAULT_MAX_MSG ? bind.max_send : 0;
  if (rt_grpc_srv_bind(b->call, &bind) < 0) return push_over(L, "call is bound already");
  lua_pushboolean(L, 1);
  return 1;
}

static void push_meta_value(lua_State *L, const char *key, const char *val, size_t vlen) {
  if (!rt_grpc_meta_key_is_bin(key, strlen(key))) {
    lua_pushlstring(L, val, vlen);
    return;
  }
  /* A -bin header may hold several base64 values joined with ','; they concatenate. */
  luaL_Buffer lb;
  luaL_buffinit(L, &lb);
  size_t pos = 0, ilen;
  const char *item;
  while (rt_grpc_list_next(val, vlen, &pos, &item, &ilen)) {
    uint8_t tmp[512];
    size_t bound = rt_grpc_b64_decode_bound(ilen), outlen;
    uint8_t *dst = bound <= sizeof tmp ? tmp : malloc(bound);
    if (dst && rt_grpc_b64_decode(item, ilen, dst, &outlen) == 0)
      luaL_addlstring(&lb, (const char *)dst, outlen);
    if (dst != tmp) free(dst);
  }
  luaL_pushresult(&lb);
}

/* core.grpc_info(call) -> { path, peer, authority, deadline, encoding, metadata = {k = v},
 * metadata_list = { {k, v}, ... } } */
static int l_grpc_info(lua_State *L) {
  lcall *b = check_call(L, 1);
  if (!b->call) return push_over(L, "call is over");
  rt_grpc_srv_call *call = b->call;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, rt_grpc_srv_path(call));
  lua_setfield(L, -2, "path");
  lua_pushstring(L, rt_grpc_srv_peer(call));
  lua_setfield(L, -2, "peer");
  rt_lua_push_tls(L, rt_conn_find(rt_lua_server(L), rt_grpc_srv_conn_id(call)));
  lua_setfield(L, -2, "tls");
  lua_pushstring(L, rt_grpc_srv_authority(call));
  lua_setfield(L, -2, "authority");
  double dl = rt_grpc_srv_deadline(call);
  if (dl > 0) {
    lua_pushnumber(L, dl);
    lua_setfield(L, -2, "deadline");
  }
  const char *enc = rt_grpc_enc_name(rt_grpc_srv_req_encoding(call));
  if (enc) {
    lua_pushstring(L, enc);
    lua_setfield(L, -2, "encoding");
  }
  lua_newtable(L);  /* metadata */
  lua_newtable(L);  /* metadata_list */
  size_t pos = 0, vlen;
  const char *k, *v;
  int i = 0;
  while (rt_grpc_srv_meta_next(call, &pos, &k, &v, &vlen)) {
    push_meta_value(L, k, v, vlen);
    lua_getfield(L, -3, k);
    int first = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (first) {
      lua_pushvalue(L, -1);
      lua_setfield(L, -4, k);
    }
    lua_createtable(L, 2, 0);
    lua_pushstring(L, k);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -3, "metadata_list");
  lua_setfield(L, -2, "metadata");
  return 1;
}

/* core.grpc_recv(call) -> message | nil (end of input) | nil, why. Waits for a message. */
static int l_grpc_recv(lua_State *L) {
  lcall *b = check_call(L, 1);
  if (!b->call) return push_over(L, "call is over");
  if (b->reader.co) return luaL_error(L, "another coroutine is reading this call");
  int n = push_recv(rt_lua_of(L), b, L, 0);
  if (n >= 0) return n;
  return rt_lua_park(L, &b->reader);
}

/* core.grpc_send(call, msg, nowait) -> true | nil, why [, status]. A status comes with
 * errors that are the handler's (a reply that does not fit the message); without one the
 * call is over. Waits while the call's queue is full, unless nowait. */
static int l_grpc_send(lua_State *L) {
  lcall *b = check_call(L, 1);
  int nowait = lua_toboolean(L, 3);
  if (!b->call) return push_over(L, "call is over");
  if (b->writer.co) return luaL_error(L, "another coroutine is sending on this call");
  char err[512];
  uint8_t *buf = NULL;
  const uint8_t *data;
  size_t len;
  if (b->out) {
    if (!lua_istable(L, 2)) {
      lua_pushnil(L);
      lua_pushfstring(L, "reply must be a table for %s, got %s", b->out->name,
                      luaL_typename(L, 2));
      lua_pushinteger(L, RT_GRPC_STATUS_INTERNAL);
      return 3;
    }
    int rc = rt_pb_lua_encode_ex(L, 2, b->out, &b->out_opts, &buf, &len, err, sizeof err);
    if (rc < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "reply does not fit %s: %s", b->out->name, err);
      lua_pushinteger(L, rc == RT_PB_ELIMIT ? RT_GRPC_STATUS_RESOURCE_EXHAUSTED
                                            : RT_GRPC_STATUS_INTERNAL);
      return 3;
    }
    data = buf;
  } else {
    data = (const uint8_t *)luaL_checklstring(L, 2, &len);
  }
  int rc = rt_grpc_srv_send(b->call, data, len, err, sizeof err);
  free(buf);
  switch (rc) {
    case RT_GRPC_SRV_SEND_OK:
      lua_pushboolean(L, 1);
      return 1;
    case RT_GRPC_SRV_SEND_FULL:
      if (nowait || !b->call) {
        lua_pushboolean(L, 1);
        return 1;
      }
      return rt_lua_park(L, &b->writer);
    case RT_GRPC_SRV_SEND_EINVAL:
      lua_pushnil(L);
      lua_pushstring(L, err);
      lua_pushinteger(L, RT_GRPC_STATUS_INTERNAL);
      return 3;
    default:
      return push_over(L, err);
  }
}

/* core.grpc_finish(call, status, message) -> true | false (it had ended) */
static int l_grpc_finish(lua_State *L) {
  lcall *b = check_call(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *msg = luaL_optlstring(L, 3, "", &len);
  lua_pushboolean(L, b->call && rt_grpc_srv_finish(b->call, status, msg, len) == 0);
  return 1;
}

/* core.grpc_meta(call, trailer, key, value): raises on a bad key or value, or too late. */
static int l_grpc_meta(lua_State *L) {
  lcall *b = check_call(L, 1);
  int trailer = lua_toboolean(L, 2);
  const char *key = luaL_checkstring(L, 3);
  size_t vlen;
  const char *val = luaL_checklstring(L, 4, &vlen);
  char err[256];
  if (!b->call) return luaL_error(L, "the call is over");
  if (rt_grpc_srv_add_meta(b->call, trailer, key, val, vlen, err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  return 0;
}

static int l_grpc_send_headers(lua_State *L) {
  lcall *b = check_call(L, 1);
  lua_pushboolean(L, b->call && rt_grpc_srv_send_headers(b->call) == 0);
  return 1;
}

/* core.grpc_state(call) -> cancelled, why: cancelled is true once the client went away or
 * the deadline passed (or the server is shutting down). */
static int l_grpc_state(lua_State *L) {
  lcall *b = check_call(L, 1);
  if (!b->call) {
    lua_pushboolean(L, 1);
    lua_pushliteral(L, "call is over");
    return 2;
  }
  unsigned f = rt_grpc_srv_flags(b->call);
  lua_pushboolean(L, (f & RT_GRPC_SRV_CANCELLED) != 0);
  const char *why = rt_grpc_srv_dead_reason(b->call);
  if (why) lua_pushstring(L, why);
  else lua_pushnil(L);
  return 2;
}

/* core.grpc_wait(call) -> why: waits until the call is cancelled, expired or finished. */
static int l_grpc_wait(lua_State *L) {
  lcall *b = check_call(L, 1);
  if (!b->call) {
    lua_pushliteral(L, "call is over");
    return 1;
  }
  if (call_dead(b->call)) {
    lua_pushstring(L, rt_grpc_srv_dead_reason(b->call));
    return 1;
  }
  if (b->waiter.co) return luaL_error(L, "another coroutine waits on this call");
  return rt_lua_park(L, &b->waiter);
}

static void box_release(rt_lua *lx, lcall *b, int unref) {
  rt_grpc_srv_call *call = b->call;
  if (!call) return;
  b->call = NULL;
  if (unref) {
    rt_lua_unpark(lx, &b->reader);
    rt_lua_unpark(lx, &b->writer);
    rt_lua_unpark(lx, &b->waiter);
    luaL_unref(lx->L, LUA_REGISTRYINDEX, b->schema_ref);
    luaL_unref(lx->L, LUA_REGISTRYINDEX, b->self_ref);
    b->schema_ref = b->self_ref = LUA_NOREF;
  }
  rt_grpc_srv_release(call);
}

/* core.grpc_done(call): the handler is over; a call with no status yet ends UNKNOWN. */
static int l_grpc_done(lua_State *L) {
  box_release(rt_lua_of(L), check_call(L, 1), 1);
  return 0;
}

/* Only at lua_close: a live box is anchored in the registry until grpc_done. */
static int l_call_gc(lua_State *L) {
  box_release(NULL, check_call(L, 1), 0);
  return 0;
}

/* ---- built-in services ------------------------------------------------------------------ */

/* core.grpc_reflect(request_bytes, {schemas}, {service names}) -> reply | nil, err */
static int l_grpc_reflect(lua_State *L) {
  size_t len;
  const uint8_t *req = (const uint8_t *)luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  const rt_pb_schema *ss[MAX_REFLECT_SCHEMAS];
  const char *names[MAX_REFLECT_SERVICES];
  size_t ns = 0, nn = 0;
  for (int i = 1; ns < MAX_REFLECT_SCHEMAS; i++) {
    lua_rawgeti(L, 2, i);
    lschema *ls = luaL_testudata(L, -1, SCHEMA_MT);
    lua_pop(L, 1);
    if (!ls) break;
    if (ls->s) ss[ns++] = ls->s;
  }
  for (int i = 1; nn < MAX_REFLECT_SERVICES; i++) {
    lua_rawgeti(L, 3, i);
    const char *s = lua_tostring(L, -1);  /* anchored by the table */
    lua_pop(L, 1);
    if (!s) break;
    names[nn++] = s;
  }
  rt_buf out = {0};
  char err[128];
  if (rt_grpc_reflection_answer(ss, ns, names, nn, req, len, &out, err, sizeof err) < 0) {
    rt_buf_free(&out);
    return push_over(L, err);
  }
  lua_pushlstring(L, (const char *)buf_bytes(&out), out.len);
  rt_buf_free(&out);
  return 1;
}

/* core.grpc_health_request(bytes) -> service | nil, err */
static int l_grpc_health_request(lua_State *L) {
  size_t len;
  const uint8_t *req = (const uint8_t *)luaL_checklstring(L, 1, &len);
  char name[512];
  int n = rt_grpc_health_request(req, len, name, sizeof name);
  if (n < 0) return push_over(L, "not a HealthCheckRequest");
  lua_pushlstring(L, name, (size_t)n);
  return 1;
}

/* core.grpc_health_response(status_number) -> bytes */
static int l_grpc_health_response(lua_State *L) {
  uint8_t out[16];
  size_t n = rt_grpc_health_response((int)luaL_checkinteger(L, 1), out);
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

/* ---- a port of its own ------------------------------------------------------------------ */

static void accept_h2(rt_conn *c, void *data) { rt_grpc_srv_start(c); }

/* core.grpc_listen(host, port) -> port | nil, err. Listening again on a port we already
 * serve (a reload) is a no-op. */
static int l_grpc_listen(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  if (port < 0 || port > 65535) return luaL_error(L, "port %d is out of range", port);
  for (rt_listener *l = srv->listeners; l && port; l = l->next)
    if (l->on_accept == accept_h2 && l->port == port) {
      lua_pushinteger(L, port);
      return 1;
    }
  char err[256];
  rt_listener *l = rt_listen(srv, host, port, accept_h2, NULL, err, sizeof err);
  if (!l) return push_over(L, err);
  int got = l->port;
  rt_listener *last = l;
  while (last->next) last = last->next;
  last->next = srv->listeners;
  srv->listeners = l;
  rt_info(&srv->log, "gRPC (HTTP/2 only) listening on %s:%d", host, got);
  lua_pushinteger(L, got);
  return 1;
}

void rt_lua_open_grpc(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {
      {"grpc_load", l_grpc_load},       {"grpc_service", l_grpc_service},
      {"grpc_bind", l_grpc_bind},       {"grpc_info", l_grpc_info},
      {"grpc_recv", l_grpc_recv},       {"grpc_send", l_grpc_send},
      {"grpc_finish", l_grpc_finish},   {"grpc_meta", l_grpc_meta},
      {"grpc_send_headers", l_grpc_send_headers}, {"grpc_state", l_grpc_state},
      {"grpc_wait", l_grpc_wait},       {"grpc_done", l_grpc_done},
      {"grpc_reflect", l_grpc_reflect}, {"grpc_health_request", l_grpc_health_request},
      {"grpc_health_response", l_grpc_health_response}, {"grpc_listen", l_grpc_listen},
      {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
  /* Scripts serve gRPC on the HTTP port too: the HTTP/2 preface leads to their services. */
  rt_grpc_srv_enable(srv);
  luaL_newmetatable(L, CALL_MT);
  lua_pushcfunction(L, l_call_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, SCHEMA_MT);
  lua_pushcfunction(L, l_schema_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
