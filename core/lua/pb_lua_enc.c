/* Protobuf <-> Lua, encode side: a Lua table becomes a protobuf-c message struct allocated
 * in the call's arena, which protobuf_c_message_pack then writes. Strings and bytes point
 * straight into the Lua strings (the table keeps them alive for the call), so nothing is
 * copied twice. Every mismatch raises through pb_raise with the field path. */
#include "pb_lua_int.h"
#include "base/utf8.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *type_of(pb_ctx *c, int idx) {
  return luaL_typename(c->L, idx);
}

static void *arena(pb_ctx *c, size_t n) {
  void *p = rt_pb_arena_alloc(&c->arena, n);
  if (!p) pb_raise(c, RT_PB_ENOMEM, "out of memory");
  return p;
}

/* A Lua number that must be an integer in [lo, hi]. */
static double integral(pb_ctx *c, int idx, double lo, double hi, const char *tname) {
  double d = lua_tonumber(c->L, idx);
  if (d != d) pb_raise(c, RT_PB_EINVAL, "expected integer, got nan");
  if (floor(d) != d) pb_raise(c, RT_PB_EINVAL, "expected integer, got %.17g", d);
  if (d < lo || d > hi) pb_raise(c, RT_PB_EINVAL, "%.17g out of range for %s", d, tname);
  return d;
}

/* PB_KIND_I64 or PB_KIND_U64; any other cdata is an error. */
static int cdata_kind(pb_ctx *c, int idx) {
  lua_State *L = c->L;
  lua_rawgeti(L, c->helpers, PB_H_KIND);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  int k = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (k == PB_KIND_OTHER)
    pb_raise(c, RT_PB_EINVAL, "expected integer, got a cdata that is not int64_t or uint64_t");
  return k;
}

/* Decimal string to a 64-bit integer, all of it or an error. */
static uint64_t parse_dec(pb_ctx *c, int idx, int is_signed, const char *tname) {
  size_t n;
  const char *s = lua_tolstring(c->L, idx, &n);
  size_t i = (n && s[0] == '-') ? 1 : 0;
  uint64_t v = 0;
  if (i == n) pb_raise(c, RT_PB_EINVAL, "expected integer, got string \"%.40s\"", s);
  for (size_t j = i; j < n; j++) {
    unsigned dgt = (unsigned)(s[j] - '0');
    if (dgt > 9) pb_raise(c, RT_PB_EINVAL, "expected integer, got string \"%.40s\"", s);
    if (v > (UINT64_MAX - dgt) / 10)
      pb_raise(c, RT_PB_EINVAL, "%.40s out of range for %s", s, tname);
    v = v * 10 + dgt;
  }
  if (i) {
    if (!is_signed && v) pb_raise(c, RT_PB_EINVAL, "%.40s out of range for %s", s, tname);
    if (v > (uint64_t)INT64_MAX + 1)
      pb_raise(c, RT_PB_EINVAL, "%.40s out of range for %s", s, tname);
    return (uint64_t)0 - v;
  }
  if (is_signed && v > (uint64_t)INT64_MAX)
    pb_raise(c, RT_PB_EINVAL, "%.40s out of range for %s", s, tname);
  return v;
}

/* Any integer form (number, decimal string, int64/uint64 cdata) as 64 bits, range-checked
 * for signed or unsigned 64-bit. */
static uint64_t to_64(pb_ctx *c, int idx, int is_signed, const char *tname) {
  lua_State *L = c->L;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (is_signed)
        return (uint64_t)(int64_t)integral(c, idx, -9223372036854775808.0,
                                           nextafter(9223372036854775808.0, 0), tname);
      return (uint64_t)integral(c, idx, 0, nextafter(18446744073709551616.0, 0), tname);
    case LUA_TSTRING:
      return parse_dec(c, idx, is_signed, tname);
    case PB_LUA_TCDATA: {
      int k = cdata_kind(c, idx);
      uint64_t v;
      memcpy(&v, lua_topointer(L, idx), 8);
      if (is_signed && k == PB_KIND_U64 && v > (uint64_t)INT64_MAX)
        pb_raise(c, RT_PB_EINVAL, "%lluULL out of range for %s", (unsigned long long)v, tname);
      if (!is_signed && k == PB_KIND_I64 && (int64_t)v < 0)
        pb_raise(c, RT_PB_EINVAL, "%lldLL out of range for %s", (long long)(int64_t)v, tname);
      return v;
    }
    default:
      pb_raise(c, RT_PB_EINVAL, "expected integer, got %s", type_of(c, idx));
  }
}

/* 32-bit integers: numbers, or 64-bit cdata whose value fits. */
static int64_t to_32(pb_ctx *c, int idx, int64_t lo, int64_t hi, const char *tname) {
  int t = lua_type(c->L, idx);
  if (t == LUA_TNUMBER) return (int64_t)integral(c, idx, (double)lo, (double)hi, tname);
  if (t == PB_LUA_TCDATA) {
    int k = cdata_kind(c, idx);
    uint64_t v;
    memcpy(&v, lua_topointer(c->L, idx), 8);
    if ((k == PB_KIND_U64 && v > (uint64_t)hi) ||
        (k == PB_KIND_I64 && ((int64_t)v < lo || (int64_t)v > hi)))
      pb_raise(c, RT_PB_EINVAL, "cdata value out of range for %s", tname);
    return (int64_t)v;
  }
  pb_raise(c, RT_PB_EINVAL, "expected integer, got %s", type_of(c, idx));
}

static ProtobufCMessage *enc_msg(pb_ctx *c, const rt_pb_msg *m, int idx, unsigned depth);

static int32_t enc_enum(pb_ctx *c, const ProtobufCFieldDescriptor *f, int idx) {
  const ProtobufCEnumDescriptor *ed = f->descriptor;
  if (lua_type(c->L, idx) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(c->L, idx, &n);
    const ProtobufCEnumValue *v =
        strlen(s) == n ? protobuf_c_enum_descriptor_get_value_by_name(ed, s) : NULL;
    if (!v) pb_raise(c, RT_PB_EINVAL, "\"%.60s\" is not a value of enum %s", s, ed->name);
    return v->value;
  }
  if (lua_type(c->L, idx) != LUA_TNUMBER)
    pb_raise(c, RT_PB_EINVAL, "expected enum %s (name or number), got %s", ed->name,
             type_of(c, idx));
  return (int32_t)integral(c, idx, INT32_MIN, INT32_MAX, "enum");
}

/* One value of field f from stack slot idx into dst (a struct member or array element). */
static void enc_value(pb_ctx *c, const ProtobufCFieldDescriptor *f, const rt_pb_field_ext *x,
                      int idx, void *dst, unsigned depth) {
  lua_State *L = c->L;
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
      *(int32_t *)dst = (int32_t)to_32(c, idx, INT32_MIN, INT32_MAX, "int32");
      return;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
      *(uint32_t *)dst = (uint32_t)to_32(c, idx, 0, UINT32_MAX, "uint32");
      return;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
      *(uint64_t *)dst = to_64(c, idx, 1, "int64");
      return;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
      *(uint64_t *)dst = to_64(c, idx, 0, "uint64");
      return;
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
      if (lua_type(L, idx) != LUA_TNUMBER)
        pb_raise(c, RT_PB_EINVAL, "expected number, got %s", type_of(c, idx));
      double d = lua_tonumber(L, idx);
      if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
        *(double *)dst = d;
        return;
      }
      if (d == d && (d > FLT_MAX || d < -FLT_MAX) && !isinf(d))
        pb_raise(c, RT_PB_EINVAL, "%.17g out of range for float", d);
      *(float *)dst = (float)d;
      return;
    }
    case PROTOBUF_C_TYPE_BOOL:
      if (lua_type(L, idx) != LUA_TBOOLEAN)
        pb_raise(c, RT_PB_EINVAL, "expected boolean, got %s", type_of(c, idx));
      *(protobuf_c_boolean *)dst = lua_toboolean(L, idx) ? 1 : 0;
      return;
    case PROTOBUF_C_TYPE_ENUM:
      *(int32_t *)dst = enc_enum(c, f, idx);
      return;
    case PROTOBUF_C_TYPE_BYTES: {
      if (lua_type(L, idx) != LUA_TSTRING)
        pb_raise(c, RT_PB_EINVAL, "expected %s, got %s",
                 (x->flags & RT_PB_FX_STRING) ? "string" : "bytes (a Lua string)",
                 type_of(c, idx));
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if ((x->flags & RT_PB_FX_UTF8) && !rt_utf8_valid((const uint8_t *)s, n))
        pb_raise(c, RT_PB_EINVAL, "string is not valid UTF-8 (use a bytes field for binary)");
      ProtobufCBinaryData *b = dst;
      b->len = n;
      b->data = n ? (uint8_t *)s : NULL;  /* NULL: an empty proto3 field is left out */
      return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
      if (lua_type(L, idx) != LUA_TTABLE)
        pb_raise(c, RT_PB_EINVAL, "expected a table for message %s, got %s",
                 ((const ProtobufCMessageDescriptor *)f->descriptor)->name, type_of(c, idx));
      *(ProtobufCMessage **)dst = enc_msg(c, rt_pb_msg_of(f->descriptor), idx, depth + 1);
      return;
    default:
      pb_raise(c, RT_PB_EINVAL, "unsupported field type %d", (int)f->type);
  }
}


static void set_present(const ProtobufCFieldDescriptor *f, char *base) {
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
      !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
    *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
}

static size_t count_keys(pb_ctx *c, int idx) {
  size_t n = 0;
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    n++;
    lua_pop(c->L, 1);
  }
  return n;
}

static void enc_array(pb_ctx *c, const ProtobufCFieldDescriptor *f, const rt_pb_field_ext *x,
                      int idx, char *base, unsigned depth) {
  lua_State *L = c->L;
  size_t n = lua_objlen(L, idx);
  /* a message table or a table with holes given for a list is a mistake, not an empty list */
  if (count_keys(c, idx) != n) pb_raise(c, RT_PB_EINVAL, "expected an array (keys 1..n only)");
  size_t sz = rt_pb_value_size(f->type);
  char *arr = n ? arena(c, n * sz) : NULL;
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    pb_path_push(c, 'i', NULL, (long)i + 1);
    enc_value(c, f, x, lua_gettop(L), arr + i * sz, depth);
    pb_path_pop(c);
    lua_pop(L, 1);
  }
  *(size_t *)(base + f->quantifier_offset) = n;
  *(void **)(base + f->offset) = arr;
}

static void enc_map(pb_ctx *c, const ProtobufCFieldDescriptor *f, int idx, char *base,
                    unsigned depth) {
  lua_State *L = c->L;
  const rt_pb_msg *em = rt_pb_msg_of(f->descriptor);
  const ProtobufCFieldDescriptor *kf = &em->d.fields[0], *vf = &em->d.fields[1];
  size_t n = count_keys(c, idx), i = 0;
  ProtobufCMessage **arr = n ? arena(c, n * sizeof *arr) : NULL;
  if (depth + 1 > c->o.max_depth)
    pb_raise(c, RT_PB_ELIMIT, "messages nested deeper than %u", c->o.max_depth);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    char *e = arena(c, em->d.sizeof_message);
    ((ProtobufCMessage *)e)->descriptor = &em->d;
    pb_path_push(c, 'k', NULL, top - 1);
    /* lua_next must see its key unchanged: enc_value only reads strings as strings */
    if (kf->type == PROTOBUF_C_TYPE_BYTES && lua_type(L, top - 1) != LUA_TSTRING)
      pb_raise(c, RT_PB_EINVAL, "map key: expected string, got %s", type_of(c, top - 1));
    enc_value(c, kf, &em->ext[0], top - 1, e + kf->offset, depth + 1);
    set_present(kf, e);
    enc_value(c, vf, &em->ext[1], top, e + vf->offset, depth + 1);
    set_present(vf, e);
    pb_path_pop(c);
    arr[i++] = (ProtobufCMessage *)e;
    lua_pop(L, 1);
  }
  *(size_t *)(base + f->quantifier_offset) = i;
  *(void **)(base + f->offset) = arr;
}

static void enc_unknown(pb_ctx *c, ProtobufCMessage *msg, int idx) {
  if (lua_type(c->L, idx) != LUA_TSTRING)
    pb_raise(c, RT_PB_EINVAL, "_unknown: expected a string of raw fields, got %s",
             type_of(c, idx));
  size_t len;
  const uint8_t *p = (const uint8_t *)lua_tolstring(c->L, idx, &len);
  long n = rt_pb_wire_split_unknown(p, len, NULL);
  if (n < 0) pb_raise(c, RT_PB_EINVAL, "_unknown: not a sequence of protobuf fields");
  if (n == 0) return;
  msg->unknown_fields = arena(c, (size_t)n * sizeof *msg->unknown_fields);
  msg->n_unknown_fields = (unsigned)rt_pb_wire_split_unknown(p, len, msg->unknown_fields);
}

static void enc_field(pb_ctx *c, const rt_pb_msg *m, const ProtobufCFieldDescriptor *f,
                      char *base, int idx, unsigned depth) {
  const rt_pb_field_ext *x = &m->ext[f - m->d.fields];
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (lua_type(c->L, idx) != LUA_TTABLE)
      pb_raise(c, RT_PB_EINVAL, "expected a table (%s), got %s",
               (x->flags & RT_PB_FX_MAP) ? "map" : "array", type_of(c, idx));
    if (x->flags & RT_PB_FX_MAP) enc_map(c, f, idx, base, depth);
    else enc_array(c, f, x, idx, base, depth);
    return;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
    if (*which && *which != f->id) {
      const ProtobufCFieldDescriptor *other =
          protobuf_c_message_descriptor_get_field(&m->d, *which);
      pb_raise(c, RT_PB_EINVAL, "oneof %s: only one of %s and %s may be set",
               m->oneof_names[x->oneof], other ? other->name : "?", f->name);
    }
    enc_value(c, f, x, idx, base + f->offset, depth);
    *which = f->id;
    return;
  }
  enc_value(c, f, x, idx, base + f->offset, depth);
  set_present(f, base);
}

static void check_required(pb_ctx *c, const rt_pb_msg *m, int idx) {
  for (unsigned i = 0; i < m->d.n_fields; i++) {
    if (m->d.fields[i].label != PROTOBUF_C_LABEL_REQUIRED) continue;
    lua_pushstring(c->L, m->d.fields[i].name);
    lua_rawget(c->L, idx);
    int missing = lua_isnil(c->L, -1);
    lua_pop(c->L, 1);
    if (missing) pb_raise(c, RT_PB_EINVAL, "required field %s is missing", m->d.fields[i].name);
  }
}

static ProtobufCMessage *enc_msg(pb_ctx *c, const rt_pb_msg *m, int idx, unsigned depth) {
  lua_State *L = c->L;
  if (depth > c->o.max_depth)
    pb_raise(c, RT_PB_ELIMIT, "messages nested deeper than %u (a table that contains itself?)",
             c->o.max_depth);
  luaL_checkstack(L, 8, "pb encode");
  ProtobufCMessage *msg = arena(c, m->d.sizeof_message);
  msg->descriptor = &m->d;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (lua_type(L, top - 1) != LUA_TSTRING) {
      if (lua_type(L, top - 1) == LUA_TNUMBER)
        pb_raise(c, RT_PB_EINVAL, "expected field names, got array index %.17g (a list where a "
                 "message belongs?)", lua_tonumber(L, top - 1));
      pb_raise(c, RT_PB_EINVAL, "expected field names, got a %s key", type_of(c, top - 1));
    }
    size_t n;
    const char *name = lua_tolstring(L, top - 1, &n);
    const ProtobufCFieldDescriptor *f =
        strlen(name) == n ? protobuf_c_message_descriptor_get_field_by_name(&m->d, name) : NULL;
    if (f) {
      pb_path_push(c, 'f', f->name, 0);
      enc_field(c, m, f, (char *)msg, top, depth);
      pb_path_pop(c);
    } else if (m->keeps_unknown && strcmp(name, "_unknown") == 0) {
      enc_unknown(c, msg, top);
    } else {
      pb_raise(c, RT_PB_EINVAL, "unknown field \"%.60s\"", name);
    }
    lua_pop(L, 1);
  }
  if (m->has_required) check_required(c, m, idx);
  return msg;
}

/* lua_pcall'd with (helpers, table, ctx); sets c->out_msg. */
int pb_lua_encode_body(lua_State *L) {
  pb_ctx *c = lua_touserdata(L, 3);
  c->helpers = 1;
  c->out_msg = enc_msg(c, c->root, 2, 0);
  return 0;
}
