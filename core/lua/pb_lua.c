/* Protobuf <-> Lua: entry points, the per-state helpers, error paths and decoding.
 *
 * 64-bit integers travel as LuaJIT boxed int64_t/uint64_t cdata. The C API cannot make
 * cdata, so a few Lua helpers are compiled once per lua_State and kept in the registry: one
 * returns a fresh 0LL (or 0ULL) whose payload C then writes through lua_topointer (LuaJIT
 * returns the cdata's payload address there), one tells int64 from uint64 cdata with
 * ffi.istype. Nothing passes through a double or a string on the way. */
#include "pb_lua_int.h"
#include "base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char helpers_key = 0; /* its address keys the helper table in the registry */

static const char helpers_src[] =
    "local ffi = ...\n"
    "local i64, u64, istype = ffi.typeof('int64_t'), ffi.typeof('uint64_t'), ffi.istype\n"
    "return function() return i64() end,\n"
    "       function() return u64() end,\n"
    "       function(v)\n"
    "         if istype(i64, v) then return 1 elseif istype(u64, v) then return 2 end\n"
    "         return 0\n"
    "       end\n";

static int decode_body(lua_State *L);

/* Under lua_cpcall: builds the helper table and stores it in the registry. */
static int init_helpers(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "ffi");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushstring(L, "ffi");
    lua_call(L, 1, 1);
  }
  if (luaL_loadbuffer(L, helpers_src, sizeof helpers_src - 1, "=rt_pb_helpers") != 0)
    return lua_error(L);
  lua_insert(L, -2);
  lua_call(L, 1, 3);
  lua_createtable(L, 5, 0);
  lua_insert(L, -4);
  lua_rawseti(L, -4, PB_H_KIND);
  lua_rawseti(L, -3, PB_H_NEW_U64);
  lua_rawseti(L, -2, PB_H_NEW_I64);
  lua_pushcfunction(L, pb_lua_encode_body);
  lua_rawseti(L, -2, PB_H_ENCODE);
  lua_pushcfunction(L, decode_body);
  lua_rawseti(L, -2, PB_H_DECODE);
  lua_pushlightuserdata(L, (void *)&helpers_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 0;
}

/* Pushes the helper table, creating it on first use. */
static int push_helpers(lua_State *L, char *err, size_t errlen) {
  for (int tries = 0; tries < 2; tries++) {
    lua_pushlightuserdata(L, (void *)&helpers_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_istable(L, -1)) return 0;
    lua_pop(L, 1);
    if (tries == 0 && lua_cpcall(L, init_helpers, NULL) != 0) {
      snprintf(err, errlen, "pb: cannot set up the LuaJIT ffi helpers: %s",
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
      lua_pop(L, 1);
      return RT_PB_ENOMEM;
    }
  }
  snprintf(err, errlen, "pb: helper table missing");
  return RT_PB_ENOMEM;
}

static void opts_norm(rt_pb_lua_opts *o, const rt_pb_lua_opts *in, size_t len) {
  if (in) *o = *in;
  else memset(o, 0, sizeof *o);
  if (!o->max_size) o->max_size = RT_PB_DEFAULT_MAX_SIZE;
  if (o->max_size > INT32_MAX) o->max_size = INT32_MAX;  /* protobuf-c lengths are 32-bit */
  if (!o->max_depth) o->max_depth = RT_PB_DEFAULT_MAX_DEPTH;
  if (o->max_depth > RT_PB_MAX_DEPTH_CAP) o->max_depth = RT_PB_MAX_DEPTH_CAP;
  if (!o->max_alloc) o->max_alloc = (1u << 20) + 32 * len;
}

/* ---- errors --------------------------------------------------------------------------- */

static size_t put_key(lua_State *L, int idx, char *out, size_t cap) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return (size_t)snprintf(out, cap, "[\"%.*s%s\"]", (int)(n > 40 ? 40 : n), s,
                              n > 40 ? "..." : "");
    }
    case LUA_TNUMBER: return (size_t)snprintf(out, cap, "[%.17g]", lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
      return (size_t)snprintf(out, cap, "[%s]", lua_toboolean(L, idx) ? "true" : "false");
    default: return (size_t)snprintf(out, cap, "[%s]", luaL_typename(L, idx));
  }
}

static size_t put_step(pb_ctx *c, const pb_step *s, char *out, size_t cap) {
  if (s->kind == 'f') return (size_t)snprintf(out, cap, ".%s", s->name);
  if (s->kind == 'i') return (size_t)snprintf(out, cap, "[%ld]", (long)s->n);
  return put_key(c->L, s->n, out, cap);
}

/* The path is rendered only here, when something failed: "pkg.Msg.items[2].name". A very
 * deep one keeps its first and last steps so the message itself still fits. */
void pb_raise(pb_ctx *c, int code, const char *fmt, ...) {
  char path[320];
  size_t len = (size_t)snprintf(path, sizeof path, "%s", c->root->d.name);
  unsigned cap = sizeof c->path / sizeof c->path[0];
  unsigned n = c->n_path < cap ? c->n_path : cap;
  for (unsigned i = 0; i < n && len < sizeof path; i++) {
    if (n > 16 && i == 6) {
      len += (size_t)snprintf(path + len, sizeof path - len, "(...%u more...)", n - 12);
      i = n - 6;
    }
    len += put_step(c, &c->path[i], path + len, sizeof path - len);
  }
  if (len >= sizeof path) strcpy(path + sizeof path - 4, "...");
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(c->err, sizeof c->err, "%s: %s", path, what);
  c->code = code;
  lua_pushstring(c->L, c->err);
  lua_error(c->L);
  abort(); /* lua_error does not return */
}

/* ---- decode: struct -> table ---------------------------------------------------------- */


static void push_64(pb_ctx *c, uint64_t v, int which) {
  lua_State *L = c->L;
  lua_rawgeti(L, c->helpers, which);
  lua_call(L, 0, 1);
  memcpy((void *)lua_topointer(L, -1), &v, 8);
}

static void dec_msg(pb_ctx *c, const ProtobufCMessage *msg, unsigned depth);

static void dec_default(pb_ctx *c, const ProtobufCMessageDescriptor *d, unsigned depth) {
  /* an all-zero struct is a valid empty message for descriptors built by pb_build.c */
  ProtobufCMessage *m = rt_pb_arena_alloc(&c->arena, d->sizeof_message);
  if (!m) pb_raise(c, RT_PB_ENOMEM, "out of memory");
  m->descriptor = d;
  dec_msg(c, m, depth);
}

static void push_value(pb_ctx *c, const ProtobufCFieldDescriptor *f, const rt_pb_field_ext *x,
                       const void *p, unsigned depth) {
  lua_State *L = c->L;
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
      lua_pushnumber(L, *(const int32_t *)p);
      return;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
      lua_pushnumber(L, *(const uint32_t *)p);
      return;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
      push_64(c, *(const uint64_t *)p, PB_H_NEW_I64);
      return;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
      push_64(c, *(const uint64_t *)p, PB_H_NEW_U64);
      return;
    case PROTOBUF_C_TYPE_FLOAT: lua_pushnumber(L, *(const float *)p); return;
    case PROTOBUF_C_TYPE_DOUBLE: lua_pushnumber(L, *(const double *)p); return;
    case PROTOBUF_C_TYPE_BOOL: lua_pushboolean(L, *(const protobuf_c_boolean *)p); return;
    case PROTOBUF_C_TYPE_ENUM: {
      int v = *(const int *)p;
      const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
      if (ev) lua_pushstring(L, ev->name);
      else lua_pushnumber(L, v);
      return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = p;
      if ((x->flags & RT_PB_FX_UTF8) && b->len && !rt_utf8_valid(b->data, b->len))
        pb_raise(c, RT_PB_EINVAL, "string is not valid UTF-8");
      lua_pushlstring(L, b->len ? (const char *)b->data : "", b->len);
      return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
      if (m) dec_msg(c, m, depth + 1);
      else dec_default(c, f->descriptor, depth + 1);
      return;
    }
    default:
      pb_raise(c, RT_PB_EINVAL, "unsupported field type %d", (int)f->type);
  }
}

/* Map keys: 64-bit integers become numbers while exact (|k| <= 2^53) and decimal strings
 * above, because cdata keys would index a Lua table by identity, not by value. */
static void push_key(pb_ctx *c, const ProtobufCFieldDescriptor *f, const rt_pb_field_ext *x,
                     const void *p) {
  char buf[24];
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64: {
      int64_t v = *(const int64_t *)p;
      if (v >= -(INT64_C(1) << 53) && v <= (INT64_C(1) << 53)) {
        lua_pushnumber(c->L, (double)v);
      } else {
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        lua_pushstring(c->L, buf);
      }
      return;
    }
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
      uint64_t v = *(const uint64_t *)p;
      if (v <= (UINT64_C(1) << 53)) {
        lua_pushnumber(c->L, (double)v);
      } else {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
        lua_pushstring(c->L, buf);
      }
      return;
    }
    default:
      push_value(c, f, x, p, 0);
  }
}

static void dec_repeated(pb_ctx *c, const ProtobufCFieldDescriptor *f, const rt_pb_field_ext *x,
                         size_t n, const char *arr, unsigned depth) {
  lua_State *L = c->L;
  if (x->flags & RT_PB_FX_MAP) {
    const rt_pb_msg *em = rt_pb_msg_of(f->descriptor);
    const ProtobufCFieldDescriptor *kf = &em->d.fields[0], *vf = &em->d.fields[1];
    lua_createtable(L, 0, n > INT32_MAX ? 0 : (int)n);
    for (size_t i = 0; i < n; i++) {
      const char *e = ((const char *const *)arr)[i];
      push_key(c, kf, &em->ext[0], e + kf->offset);
      pb_path_push(c, 'k', NULL, lua_gettop(L));
      push_value(c, vf, &em->ext[1], e + vf->offset, depth);
      pb_path_pop(c);
      lua_rawset(L, -3);  /* a key seen twice: the last one wins, as protobuf says */
    }
    return;
  }
  size_t sz = rt_pb_value_size(f->type);
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    pb_path_push(c, 'i', NULL, (long)i + 1);
    push_value(c, f, x, arr + i * sz, depth);
    pb_path_pop(c);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

static void dec_unknown(pb_ctx *c, const ProtobufCMessage *msg) {
  lua_State *L = c->L;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < msg->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &msg->unknown_fields[i];
    uint8_t tag[10];
    size_t tl = rt_pb_wire_put_varint(tag, ((uint64_t)u->tag << 3) | (unsigned)u->wire_type);
    luaL_addlstring(&b, (const char *)tag, tl);
    if (u->len) luaL_addlstring(&b, (const char *)u->data, u->len);
  }
  luaL_pushresult(&b);
  lua_setfield(L, -2, "_unknown");
}

static void dec_msg(pb_ctx *c, const ProtobufCMessage *msg, unsigned depth) {
  lua_State *L = c->L;
  const rt_pb_msg *m = rt_pb_msg_of(msg->descriptor);
  if (depth > c->o.max_depth)
    pb_raise(c, RT_PB_ELIMIT, "messages nested deeper than %u", c->o.max_depth);
  luaL_checkstack(L, 8, "pb decode");
  lua_createtable(L, 0, (int)m->d.n_fields);
  const char *base = (const char *)msg;
  for (unsigned i = 0; i < m->d.n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &m->d.fields[i];
    const rt_pb_field_ext *x = &m->ext[i];
    const void *p = base + f->offset;
    pb_path_push(c, 'f', f->name, 0);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      dec_repeated(c, f, x, *(const size_t *)(base + f->quantifier_offset),
                   *(const char *const *)p, depth);
    } else {
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) goto skip;
      } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (!*(void *const *)p) goto skip;
      } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset) {
        if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) goto skip;
      }
      push_value(c, f, x, p, depth);
    }
    lua_setfield(L, -2, f->name);
  skip:
    pb_path_pop(c);
  }
  if (msg->n_unknown_fields && m->keeps_unknown) dec_unknown(c, msg);
}

/* lua_pcall'd with (helpers, ctx); leaves the table. */
static int decode_body(lua_State *L) {
  pb_ctx *c = lua_touserdata(L, 2);
  c->helpers = 1;
  dec_msg(c, c->in_msg, 0);
  return 1;
}

/* protobuf-c allocates through this so a small hostile message cannot make it allocate
 * without bound (each empty sub-message costs a whole struct). */
typedef struct {
  size_t used, limit;
  int over;
} budget;

static void *budget_alloc(void *data, size_t size) {
  budget *b = data;
  if (size > b->limit - b->used) {
    b->over = 1;
    return NULL;
  }
  void *p = malloc(size);
  if (p) b->used += size;
  return p;
}

static void budget_free(void *data, void *p) {
  free(p);  /* the budget counts what was ever allocated, not what is live */
}

/* The walk raised: our own error (c->code and c->err say what), or one from Lua itself,
 * which only allocation failure can cause there. Pops the error value. */
static int pcall_failed(lua_State *L, pb_ctx *c, const ProtobufCMessageDescriptor *d, char *err,
                        size_t errlen) {
  int rc = c->code;
  if (rc) snprintf(err, errlen, "%s", c->err);
  else {
    snprintf(err, errlen, "%s: %s", d->name, lua_isstring(L, -1) ? lua_tostring(L, -1) : "Lua error");
    rc = RT_PB_ENOMEM;
  }
  lua_pop(L, 1);
  return rc;
}

int rt_pb_lua_decode_ex(lua_State *L, const ProtobufCMessageDescriptor *d, const uint8_t *data,
                        size_t len, const rt_pb_lua_opts *opts, char *err, size_t errlen) {
  char scratch[8];
  if (!err || !errlen) err = scratch, errlen = sizeof scratch;
  const rt_pb_msg *m = rt_pb_msg_of(d);
  if (!m) {
    snprintf(err, errlen, "pb: descriptor was not built by rt_pb_schema");
    return RT_PB_EINVAL;
  }
  rt_pb_lua_opts o;
  opts_norm(&o, opts, len);
  if (len > o.max_size) {
    snprintf(err, errlen, "%s: message of %zu bytes is over the limit of %zu", d->name, len,
             o.max_size);
    return RT_PB_ELIMIT;
  }
  int rc = rt_pb_wire_check(d, data ? data : (const uint8_t *)"", len, o.max_depth, err, errlen);
  if (rc < 0) return rc == -2 ? RT_PB_ELIMIT : RT_PB_EINVAL;
  budget bud = {0, o.max_alloc, 0};
  ProtobufCAllocator alloc = {budget_alloc, budget_free, &bud};
  ProtobufCMessage *msg =
      protobuf_c_message_unpack(d, &alloc, len, data ? data : (const uint8_t *)"");
  if (!msg) {
    if (bud.over) {
      snprintf(err, errlen, "%s: decoding needs more than %zu bytes of memory", d->name,
               o.max_alloc);
      return RT_PB_ELIMIT;
    }
    snprintf(err, errlen, "%s: cannot parse (wrong wire type for a field, bad packed data "
             "or a missing required field)", d->name);
    return RT_PB_EINVAL;
  }
  rc = push_helpers(L, err, errlen);
  if (rc < 0) {
    protobuf_c_message_free_unpacked(msg, &alloc);
    return rc;
  }
  pb_ctx ctx, *c = &ctx;  /* about 8 KiB: no malloc per call */
  memset(c, 0, offsetof(pb_ctx, err));
  rt_pb_arena_init_buf(&c->arena, c->first_block, sizeof c->first_block);
  c->L = L;
  c->o = o;
  c->root = m;
  c->in_msg = msg;
  lua_rawgeti(L, -1, PB_H_DECODE);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, c);
  if (lua_pcall(L, 2, 1, 0) != 0) rc = pcall_failed(L, c, d, err, errlen);
  rt_pb_arena_free(&c->arena);
  protobuf_c_message_free_unpacked(msg, &alloc);
  return rc;
}

int rt_pb_lua_decode(lua_State *L, const ProtobufCMessageDescriptor *d, const uint8_t *data,
                     size_t len, char *err, size_t errlen) {
  return rt_pb_lua_decode_ex(L, d, data, len, NULL, err, errlen);
}

/* ---- encode entry point (the walk is in pb_lua_enc.c) --------------------------------- */

int rt_pb_lua_encode_ex(lua_State *L, int table_index, const ProtobufCMessageDescriptor *d,
                        const rt_pb_lua_opts *opts, uint8_t **out, size_t *out_len, char *err,
                        size_t errlen) {
  char scratch[8];
  if (!err || !errlen) err = scratch, errlen = sizeof scratch;
  *out = NULL;
  *out_len = 0;
  const rt_pb_msg *m = rt_pb_msg_of(d);
  if (!m) {
    snprintf(err, errlen, "pb: descriptor was not built by rt_pb_schema");
    return RT_PB_EINVAL;
  }
  if (table_index < 0 && table_index > LUA_REGISTRYINDEX)
    table_index = lua_gettop(L) + table_index + 1;
  if (!lua_istable(L, table_index)) {
    snprintf(err, errlen, "%s: expected a table, got %s", d->name,
             luaL_typename(L, table_index));
    return RT_PB_EINVAL;
  }
  int rc = push_helpers(L, err, errlen);
  if (rc < 0) return rc;
  pb_ctx ctx, *c = &ctx;
  memset(c, 0, offsetof(pb_ctx, err));
  rt_pb_arena_init_buf(&c->arena, c->first_block, sizeof c->first_block);
  c->L = L;
  opts_norm(&c->o, opts, 0);
  c->root = m;
  lua_rawgeti(L, -1, PB_H_ENCODE);
  lua_insert(L, -2);
  lua_pushvalue(L, table_index);
  lua_pushlightuserdata(L, c);
  if (lua_pcall(L, 3, 0, 0) != 0) {
    rc = pcall_failed(L, c, d, err, errlen);
    goto done;
  }
  size_t n = protobuf_c_message_get_packed_size(c->out_msg);
  if (n > c->o.max_size) {
    snprintf(err, errlen, "%s: encoded message of %zu bytes is over the limit of %zu", d->name,
             n, c->o.max_size);
    rc = RT_PB_ELIMIT;
    goto done;
  }
  uint8_t *buf = malloc(c->o.headroom + n + 1);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    rc = RT_PB_ENOMEM;
    goto done;
  }
  protobuf_c_message_pack(c->out_msg, buf + c->o.headroom);
  *out = buf;
  *out_len = n;
done:
  rt_pb_arena_free(&c->arena);
  return rc;
}

int rt_pb_lua_encode(lua_State *L, int table_index, const ProtobufCMessageDescriptor *d,
                     uint8_t **out, size_t *out_len, char *err, size_t errlen) {
  return rt_pb_lua_encode_ex(L, table_index, d, NULL, out, out_len, err, errlen);
}
