/* Unit tests for protobuf at run time: core/pb_schema.c, pb_build.c, pb_protoc.c (loading),
 * pb_lua.c, pb_lua_enc.c (Lua tables) and pb_wire.c.
 *
 * Most checks are Lua snippets run in a LuaJIT state that has these functions:
 *   encode(msg, table [, opts]) -> bytes | nil, err, code
 *   decode(msg, bytes [, opts]) -> table | nil, err, code
 *   protoc_encode(msg, text)    -> bytes made by `protoc --encode` (the third-party check)
 *   protoc_decode(msg, bytes)   -> text printed by `protoc --decode`
 * Tests run from the repository root and need protoc (Debian protobuf-compiler). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>

#include "descriptor.pb-c.h"
#include "lua/pb_lua.h"
#include "pb/pb_schema.h"
#include "pb/pb_wire.h"

#define PROTO_DIR "tests/unit/pb/proto"

typedef struct {
  rt_pb_schema *s;
  lua_State *L;
  char tmp[256];  /* scratch directory for protoc's input and output */
} fixture;

/* ---- helpers exposed to Lua ------------------------------------------------------------ */

static fixture *fx_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static const ProtobufCMessageDescriptor *msg_arg(lua_State *L, int i) {
  const char *name = luaL_checkstring(L, i);
  const ProtobufCMessageDescriptor *d = rt_pb_schema_message(fx_of(L)->s, name);
  if (!d) luaL_error(L, "no message %s", name);
  return d;
}

static void opts_arg(lua_State *L, int i, rt_pb_lua_opts *o) {
  memset(o, 0, sizeof *o);
  if (!lua_istable(L, i)) return;
  lua_getfield(L, i, "max_size");
  o->max_size = (size_t)lua_tonumber(L, -1);
  lua_getfield(L, i, "max_depth");
  o->max_depth = (unsigned)lua_tonumber(L, -1);
  lua_getfield(L, i, "max_alloc");
  o->max_alloc = (size_t)lua_tonumber(L, -1);
  lua_getfield(L, i, "headroom");
  o->headroom = (size_t)lua_tonumber(L, -1);
  lua_pop(L, 4);
}

static int l_encode(lua_State *L) {
  const ProtobufCMessageDescriptor *d = msg_arg(L, 1);
  rt_pb_lua_opts o;
  opts_arg(L, 3, &o);
  uint8_t *out;
  size_t n;
  char err[512];
  int top = lua_gettop(L);
  int rc = rt_pb_lua_encode_ex(L, 2, d, &o, &out, &n, err, sizeof err);
  if (lua_gettop(L) != top) return luaL_error(L, "encode changed the stack");
  if (rc < 0) {
    if (out) return luaL_error(L, "encode failed but gave a buffer");
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
  }
  lua_pushlstring(L, (const char *)out + o.headroom, n);
  free(out);
  return 1;
}

static int l_decode(lua_State *L) {
  const ProtobufCMessageDescriptor *d = msg_arg(L, 1);
  size_t n;
  const char *b = luaL_checklstring(L, 2, &n);
  rt_pb_lua_opts o;
  opts_arg(L, 3, &o);
  char err[512];
  int top = lua_gettop(L);
  int rc = rt_pb_lua_decode_ex(L, d, (const uint8_t *)b, n, &o, err, sizeof err);
  if (lua_gettop(L) != top + (rc == 0)) return luaL_error(L, "decode left the stack wrong");
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
  }
  return 1;
}

static const char *proto_for(const char *msg) {
  return strncmp(msg, "rttest.legacy.", 14) == 0 ? "legacy.proto" : "test.proto";
}

static void write_all(lua_State *L, const char *path, const char *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) luaL_error(L, "cannot write %s", path);
  fclose(f);
}

static void read_all(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) luaL_error(L, "cannot read %s", path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) luaL_addlstring(&b, tmp, n);
  fclose(f);
  luaL_pushresult(&b);
}

/* protoc --encode / --decode through files (the shell only redirects). */
static int protoc_convert(lua_State *L, const char *mode) {
  fixture *fx = fx_of(L);
  const char *msg = luaL_checkstring(L, 1);
  size_t n;
  const char *in = luaL_checklstring(L, 2, &n);
  char inp[300], outp[300], cmd[1200];
  snprintf(inp, sizeof inp, "%s/in", fx->tmp);
  snprintf(outp, sizeof outp, "%s/out", fx->tmp);
  write_all(L, inp, in, n);
  snprintf(cmd, sizeof cmd, "protoc --%s=%s -I %s %s/%s < %s > %s 2> %s/stderr", mode, msg,
           PROTO_DIR, PROTO_DIR, proto_for(msg), inp, outp, fx->tmp);
  if (system(cmd) != 0) {
    char ep[300];
    snprintf(ep, sizeof ep, "%s/stderr", fx->tmp);
    read_all(L, ep);
    return luaL_error(L, "protoc --%s %s failed: %s", mode, msg, lua_tostring(L, -1));
  }
  read_all(L, outp);
  return 1;
}

static int l_protoc_encode(lua_State *L) {
  return protoc_convert(L, "encode");
}

static int l_protoc_decode(lua_State *L) {
  return protoc_convert(L, "decode");
}

/* Lua helpers every snippet can use. */
static const char prelude[] =
    "ffi = require 'ffi'\n"
    "function eq(a, b, what)\n"
    "  if a ~= b then error((what or 'value') .. ': expected ' .. tostring(b) .. ', got ' ..\n"
    "    tostring(a), 2) end\n"
    "end\n"
    "function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end\n"
    "function fails(msg, t, pattern, code)\n"
    "  local b, err, rc = encode(msg, t)\n"
    "  if b then error('encode of ' .. msg .. ' should fail with ' .. pattern, 2) end\n"
    "  if not err:find(pattern, 1, true) then error('error \"' .. err .. '\" lacks \"' .. pattern .. '\"', 2) end\n"
    "  if code then eq(rc, code, 'error code') end\n"
    "end\n"
    "function keys(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end\n";

static void run(fixture *fx, const char *name, const char *code) {
  lua_State *L = fx->L;
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, code, strlen(code), name) != 0 || lua_pcall(L, 0, 0, 0) != 0)
    fail_msg("%s: %s", name, lua_tostring(L, -1));
  assert_int_equal(lua_gettop(L), top);
}

#define LUA(...) #__VA_ARGS__

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  char err[512];
  snprintf(fx->tmp, sizeof fx->tmp, "/tmp/test_pb.XXXXXX");
  if (!mkdtemp(fx->tmp)) return -1;
  fx->s = rt_pb_schema_new();
  if (rt_pb_schema_load_proto(fx->s, PROTO_DIR "/test.proto", NULL, 0, err, sizeof err) < 0 ||
      rt_pb_schema_load(fx->s, PROTO_DIR "/legacy.proto", NULL, 0, err, sizeof err) < 0) {
    fprintf(stderr, "load: %s\n", err);
    return -1;
  }
  fx->L = luaL_newstate();
  luaL_openlibs(fx->L);
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode},
                                 {"protoc_encode", l_protoc_encode},
                                 {"protoc_decode", l_protoc_decode}, {NULL, NULL}};
  for (const luaL_Reg *r = fns; r->name; r++) {
    lua_pushlightuserdata(fx->L, fx);
    lua_pushcclosure(fx->L, r->func, 1);
    lua_setglobal(fx->L, r->name);
  }
  if (luaL_dostring(fx->L, prelude) != 0) return -1;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  char cmd[300];
  lua_close(fx->L);
  rt_pb_schema_free(fx->s);
  snprintf(cmd, sizeof cmd, "rm -rf %s", fx->tmp);
  if (system(cmd) != 0) return -1;
  free(fx);
  return 0;
}


/* ---- schema ---------------------------------------------------------------------------- */

static void test_schema_lookup(void **state) {
  fixture *fx = *state;
  rt_pb_schema *s = fx->s;
  const ProtobufCMessageDescriptor *user = rt_pb_schema_message(s, "rttest.User");
  assert_non_null(user);
  assert_ptr_equal(rt_pb_schema_message(s, ".rttest.User"), user);
  assert_string_equal(user->name, "rttest.User");
  assert_int_equal(user->n_fields, 3);
  assert_non_null(rt_pb_schema_message(s, "rttest.Wrapper.Nested"));
  assert_non_null(rt_pb_schema_message(s, "google.protobuf.Timestamp"));
  assert_non_null(rt_pb_schema_message(s, "rttest.legacy.Item.Inner"));
  assert_null(rt_pb_schema_message(s, "rttest.Color"));
  assert_null(rt_pb_schema_message(s, "rttest.Nope"));
  const ProtobufCEnumDescriptor *color = rt_pb_schema_enum(s, "rttest.Color");
  assert_non_null(color);
  assert_int_equal(color->n_values, 4);      /* CRIMSON is an alias of RED */
  assert_int_equal(color->n_value_names, 5);
  assert_string_equal(protobuf_c_enum_descriptor_get_value(color, 1)->name, "RED");
  assert_int_equal(protobuf_c_enum_descriptor_get_value_by_name(color, "CRIMSON")->value, 1);
  assert_int_equal(protobuf_c_enum_descriptor_get_value_by_name(color, "NEGATIVE")->value, -5);
  assert_non_null(rt_pb_schema_enum(s, "rttest.Wrapper.Nested.Level"));

  const rt_pb_service *svc = rt_pb_schema_service(s, "rttest.UserService");
  assert_non_null(svc);
  assert_int_equal(rt_pb_schema_n_services(s), 1);
  assert_ptr_equal(rt_pb_schema_service_at(s, 0), svc);
  assert_null(rt_pb_schema_service_at(s, 1));
  assert_string_equal(svc->file, "test.proto");
  assert_int_equal(svc->n_methods, 4);
  const rt_pb_method *m = rt_pb_schema_method(s, "/rttest.UserService/CreateUsers");
  assert_non_null(m);
  assert_ptr_equal(m, rt_pb_service_method(svc, "CreateUsers"));
  assert_ptr_equal(m, rt_pb_schema_method(s, "rttest.UserService.CreateUsers"));
  assert_string_equal(m->path, "/rttest.UserService/CreateUsers");
  assert_string_equal(m->full_name, "rttest.UserService.CreateUsers");
  assert_ptr_equal(m->service, svc);
  assert_true(m->client_streaming);
  assert_false(m->server_streaming);
  assert_ptr_equal(m->input, user);
  assert_ptr_equal(m->output, rt_pb_schema_message(s, "rttest.Wrapper"));
  m = rt_pb_schema_method(s, "/rttest.UserService/GetUser");
  assert_false(m->client_streaming || m->server_streaming);
  m = rt_pb_schema_method(s, "/rttest.UserService/ListUsers");
  assert_true(!m->client_streaming && m->server_streaming);
  m = rt_pb_schema_method(s, "/rttest.UserService/Chat");
  assert_true(m->client_streaming && m->server_streaming);
  assert_null(rt_pb_schema_method(s, "/rttest.UserService/Nope"));
  assert_null(rt_pb_schema_method(s, "/rttest.User"));
  assert_null(rt_pb_service_method(svc, "Nope"));

  /* what server reflection needs */
  assert_string_equal(rt_pb_schema_symbol_file(s, "rttest.User"), "test.proto");
  assert_string_equal(rt_pb_schema_symbol_file(s, "rttest.UserService"), "test.proto");
  assert_string_equal(rt_pb_schema_symbol_file(s, "rttest.UserService.GetUser"), "test.proto");
  assert_string_equal(rt_pb_schema_symbol_file(s, "rttest.common.Stamp"), "common.proto");
  assert_string_equal(rt_pb_schema_symbol_file(s, "google.protobuf.Timestamp"),
                      "google/protobuf/timestamp.proto");
  assert_null(rt_pb_schema_symbol_file(s, "/rttest.UserService/GetUser"));
  assert_int_equal(rt_pb_schema_n_files(s), 4);
  assert_string_equal(rt_pb_schema_file_at(s, 0), "google/protobuf/timestamp.proto");
  assert_string_equal(rt_pb_schema_file_at(s, 3), "legacy.proto");
  const char *const *deps;
  assert_int_equal(rt_pb_schema_file_deps(s, "test.proto", &deps), 1);
  assert_string_equal(deps[0], "common.proto");
  assert_int_equal(rt_pb_schema_file_deps(s, "common.proto", &deps), 1);
  assert_string_equal(deps[0], "google/protobuf/timestamp.proto");
  size_t len;
  const uint8_t *fb = rt_pb_schema_file_bytes(s, "test.proto", &len);
  assert_non_null(fb);
  Google__Protobuf__FileDescriptorProto *fd =
      google__protobuf__file_descriptor_proto__unpack(NULL, len, fb);
  assert_non_null(fd);
  assert_string_equal(fd->name, "test.proto");
  assert_string_equal(fd->package, "rttest");
  assert_int_equal(fd->n_service, 1);
  google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
  assert_null(rt_pb_schema_file_bytes(s, "nope.proto", &len));
  assert_int_equal(len, 0);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_schema_errors(void **state) {
  fixture *fx = *state;
  rt_pb_schema *s = fx->s;
  char err[512], path[400], cmd[1200];
  size_t files = rt_pb_schema_n_files(s);

  /* protoc's own message, with file:line:column */
  assert_true(rt_pb_schema_load_proto(s, PROTO_DIR "/bad/syntax.proto", NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "protoc: syntax.proto:7:3: Expected \";\"");
  assert_true(rt_pb_schema_load(s, PROTO_DIR "/bad/group.proto", NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "groups are not supported");
  assert_true(rt_pb_schema_load(s, PROTO_DIR "/missing.proto", NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "protoc: ");
  assert_true(rt_pb_schema_load(s, PROTO_DIR "/missing.pb", NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "missing.pb: No such file");
  assert_int_equal(rt_pb_schema_set_protoc(s, "/nonexistent/protoc"), 0);
  assert_true(rt_pb_schema_load(s, PROTO_DIR "/test.proto", NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "cannot run /nonexistent/protoc");
  assert_int_equal(rt_pb_schema_set_protoc(s, NULL), 0);

  assert_true(rt_pb_schema_load_descriptor_set(s, (const uint8_t *)"\x0a\x05hello", 7, err, sizeof err) < 0);
  assert_contains(err, "not a descriptor set");
  assert_true(rt_pb_schema_load_descriptor_set(s, (const uint8_t *)"\xff", 1, err, sizeof err) < 0);

  /* a file loaded again unchanged is skipped; with other content it is refused */
  assert_int_equal(rt_pb_schema_load(s, PROTO_DIR "/test.proto", NULL, 0, err, sizeof err), 0);
  assert_int_equal(rt_pb_schema_n_files(s), files);
  snprintf(path, sizeof path, "%s/test.proto", fx->tmp);
  write_file(path, "syntax = \"proto3\"; package other; message X { int32 a = 1; }\n");
  assert_true(rt_pb_schema_load(s, path, NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "test.proto: already loaded with different content");

  /* a name defined twice: the whole load is undone */
  snprintf(path, sizeof path, "%s/dup.proto", fx->tmp);
  write_file(path, "syntax = \"proto3\"; package rttest;\n"
                   "message Extra { int32 a = 1; }\nmessage User { string x = 1; }\n"
                   "service ExtraService { rpc Get(Extra) returns (Extra); }\n");
  assert_true(rt_pb_schema_load(s, path, NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "rttest.User is already defined in test.proto");
  assert_null(rt_pb_schema_message(s, "rttest.Extra"));
  assert_null(rt_pb_schema_method(s, "/rttest.ExtraService/Get"));
  assert_null(rt_pb_schema_file_bytes(s, "dup.proto", NULL));
  assert_int_equal(rt_pb_schema_n_files(s), files);
  assert_int_equal(rt_pb_schema_n_services(s), 1);
  assert_non_null(rt_pb_schema_message(s, "rttest.User"));
  assert_int_equal(rt_pb_schema_message(s, "rttest.User")->n_fields, 3);

  /* a set made beforehand without --include_imports misses common.proto */
  rt_pb_schema *s2 = rt_pb_schema_new();
  snprintf(cmd, sizeof cmd, "protoc -o %s/noimports.pb -I %s %s/test.proto", fx->tmp, PROTO_DIR,
           PROTO_DIR);
  assert_int_equal(system(cmd), 0);
  snprintf(path, sizeof path, "%s/noimports.pb", fx->tmp);
  assert_true(rt_pb_schema_load(s2, path, NULL, 0, err, sizeof err) < 0);
  assert_contains(err, "test.proto imports common.proto, which is not in the descriptor set");
  assert_int_equal(rt_pb_schema_n_files(s2), 0);
  rt_pb_schema_free(s2);
}

/* A descriptor set made beforehand loads like the .proto, with the same file bytes. */
static void test_schema_descriptor_set(void **state) {
  fixture *fx = *state;
  char err[512], path[400], cmd[1200];
  snprintf(path, sizeof path, "%s/set.desc", fx->tmp);
  snprintf(cmd, sizeof cmd, "protoc --include_imports --descriptor_set_out=%s -I %s %s/test.proto",
           path, PROTO_DIR, PROTO_DIR);
  assert_int_equal(system(cmd), 0);
  rt_pb_schema *s2 = rt_pb_schema_new();
  if (rt_pb_schema_load(s2, path, NULL, 0, err, sizeof err) < 0) fail_msg("%s", err);
  assert_int_equal(rt_pb_schema_n_files(s2), 3);
  assert_non_null(rt_pb_schema_method(s2, "/rttest.UserService/GetUser"));
  size_t a, b;
  const uint8_t *pa = rt_pb_schema_file_bytes(fx->s, "test.proto", &a);
  const uint8_t *pb = rt_pb_schema_file_bytes(s2, "test.proto", &b);
  assert_int_equal(a, b);
  assert_memory_equal(pa, pb, a);
  /* the descriptors work: encode with one schema, decode with the other */
  lua_State *L = fx->L;
  uint8_t *out;
  size_t n;
  assert_int_equal(luaL_dostring(L, "return { id = 7, name = \"x\" }"), 0);
  assert_int_equal(rt_pb_lua_encode(L, -1, rt_pb_schema_message(s2, "rttest.User"), &out, &n, err, sizeof err), 0);
  assert_int_equal(rt_pb_lua_decode(L, rt_pb_schema_message(fx->s, "rttest.User"), out, n, err, sizeof err), 0);
  lua_getfield(L, -1, "name");
  assert_string_equal(lua_tostring(L, -1), "x");
  lua_pop(L, 3);
  free(out);
  rt_pb_schema_free(s2);
}

/* ---- scalars ------------------------------------------------------------------------- */

static void test_scalar_limits(void **state) {
  run(*state, "scalar_limits", LUA(
    local t = {
      f_double = -1.5e300, f_float = 3.5, f_int32 = -2147483648, f_int64 = -9223372036854775807LL - 1,
      f_uint32 = 4294967295, f_uint64 = 18446744073709551615ULL, f_sint32 = 2147483647,
      f_sint64 = -9223372036854775807LL - 1, f_fixed32 = 4294967295,
      f_fixed64 = 0xffffffffffffffffULL, f_sfixed32 = -2147483648,
      f_sfixed64 = 9223372036854775807LL, f_bool = true, f_string = "h\xc3\xa9llo",
      f_bytes = "a\0b\xff", f_enum = "NEGATIVE" }
    local text = "f_double: -1.5e+300\nf_float: 3.5\nf_int32: -2147483648\n" ..
      "f_int64: -9223372036854775808\nf_uint32: 4294967295\nf_uint64: 18446744073709551615\n" ..
      "f_sint32: 2147483647\nf_sint64: -9223372036854775808\nf_fixed32: 4294967295\n" ..
      "f_fixed64: 18446744073709551615\nf_sfixed32: -2147483648\n" ..
      "f_sfixed64: 9223372036854775807\nf_bool: true\nf_string: \"h\\303\\251llo\"\n" ..
      "f_bytes: \"a\\000b\\377\"\nf_enum: NEGATIVE\n"
    local b = assert(encode("rttest.Scalars", t))
    eq(protoc_decode("rttest.Scalars", b), text, "protoc --decode of our bytes")
    local p = protoc_encode("rttest.Scalars", text)
    eq(hex(p), hex(b), "protoc --encode bytes vs ours")
    for _, bytes in ipairs({ b, p }) do
      local d = assert(decode("rttest.Scalars", bytes))
      for k, v in pairs(t) do eq(d[k], v, k) end
      eq(keys(d), 16, "field count")
      assert(ffi.istype("int64_t", d.f_int64) and ffi.istype("int64_t", d.f_sint64) and
             ffi.istype("int64_t", d.f_sfixed64), "signed 64-bit as int64_t")
      assert(ffi.istype("uint64_t", d.f_uint64) and ffi.istype("uint64_t", d.f_fixed64),
             "unsigned 64-bit as uint64_t")
      eq(tostring(d.f_uint64), "18446744073709551615ULL")
      eq(tostring(d.f_int64), "-9223372036854775808LL")
      eq(type(d.f_int32), "number")
      eq(#d.f_bytes, 4, "bytes with NUL")
    end
  ));
}

static void test_scalar_forms(void **state) {
  run(*state, "scalar_forms", LUA(
    local b = assert(encode("rttest.Scalars", {
      f_int64 = "-9223372036854775808", f_uint64 = "18446744073709551615",
      f_sint64 = 9007199254740994, f_fixed64 = 9223372036854775808, f_sfixed64 = "-1",
      f_int32 = 2147483647, f_sint32 = -2147483648, f_uint32 = 0,
      f_fixed32 = 7LL, f_sfixed32 = -3LL, f_enum = 2, f_float = 1 / 0, f_double = -0.5 }))
    local d = assert(decode("rttest.Scalars", b))
    eq(d.f_int64, -9223372036854775807LL - 1, "int64 from string")
    eq(d.f_uint64, 18446744073709551615ULL, "uint64 from string")
    eq(d.f_sint64, 9007199254740994LL, "int64 from an exact number above 2^53")
    eq(d.f_fixed64, 9223372036854775808ULL, "uint64 from 2^63 as a number")
    eq(d.f_sfixed64, -1LL, "negative string")
    eq(d.f_fixed32, 7, "32-bit from int64 cdata")
    eq(d.f_sfixed32, -3)
    eq(d.f_enum, "GREEN", "enum from number")
    eq(d.f_float, 1 / 0, "float infinity")
    eq(d.f_double, -0.5)
    eq(protoc_decode("rttest.Scalars", b),
      "f_double: -0.5\nf_float: inf\nf_int32: 2147483647\nf_int64: -9223372036854775808\n" ..
      "f_uint64: 18446744073709551615\nf_sint32: -2147483648\nf_sint64: 9007199254740994\n" ..
      "f_fixed32: 7\nf_fixed64: 9223372036854775808\nf_sfixed32: -3\nf_sfixed64: -1\n" ..
      "f_enum: GREEN\n")
    local n = assert(decode("rttest.Scalars", assert(encode("rttest.Scalars", { f_float = 0 / 0 }))))
    assert(n.f_float ~= n.f_float, "NaN survives")
  ));
}

static void test_scalar_errors(void **state) {
  run(*state, "scalar_errors", LUA(
    local S = "rttest.Scalars"
    fails(S, { f_int64 = 1.5 }, "rttest.Scalars.f_int64: expected integer, got 1.5", -1)
    fails(S, { f_int32 = 3e9 }, "rttest.Scalars.f_int32: 3000000000 out of range for int32")
    fails(S, { f_int32 = -2147483649 }, "out of range for int32")
    fails(S, { f_uint32 = -1 }, "rttest.Scalars.f_uint32: -1 out of range for uint32")
    fails(S, { f_uint32 = 4294967296 }, "out of range for uint32")
    fails(S, { f_int32 = 0 / 0 }, "expected integer, got nan")
    fails(S, { f_int64 = 9223372036854775808 }, "out of range for int64")
    fails(S, { f_int64 = 18446744073709551615ULL }, "18446744073709551615ULL out of range for int64")
    fails(S, { f_int64 = "9223372036854775808" }, "out of range for int64")
    fails(S, { f_int64 = "-9223372036854775809" }, "out of range for int64")
    fails(S, { f_int64 = "12a" }, "expected integer, got string \"12a\"")
    fails(S, { f_int64 = "" }, "expected integer")
    fails(S, { f_int64 = " 1" }, "expected integer")
    fails(S, { f_int64 = true }, "rttest.Scalars.f_int64: expected integer, got boolean")
    fails(S, { f_int64 = ffi.new("int32_t", 1) }, "not int64_t or uint64_t")
    fails(S, { f_uint64 = "-1" }, "-1 out of range for uint64")
    fails(S, { f_uint64 = -1LL }, "-1LL out of range for uint64")
    fails(S, { f_uint64 = "18446744073709551616" }, "out of range for uint64")
    fails(S, { f_uint64 = -1 }, "out of range for uint64")
    fails(S, { f_int32 = 4294967296LL }, "cdata value out of range for int32")
    fails(S, { f_int32 = "1" }, "expected integer, got string")
    fails(S, { f_float = 1e39 }, "rttest.Scalars.f_float: 9.9999999999999994e+38 out of range for float")
    fails(S, { f_double = "1" }, "expected number, got string")
    fails(S, { f_bool = 1 }, "rttest.Scalars.f_bool: expected boolean, got number")
    fails(S, { f_string = 5 }, "expected string, got number")
    fails(S, { f_string = "\xff" }, "rttest.Scalars.f_string: string is not valid UTF-8")
    fails(S, { f_string = "\xed\xa0\x80" }, "not valid UTF-8")
    fails(S, { f_bytes = {} }, "expected bytes (a Lua string), got table")
    fails(S, { f_enum = "PURPLE" }, "\"PURPLE\" is not a value of enum rttest.Color")
    fails(S, { f_enum = 1.5 }, "expected integer")
    fails(S, { f_enum = true }, "expected enum rttest.Color (name or number), got boolean")
    fails(S, { f_int33 = 1 }, "rttest.Scalars: unknown field \"f_int33\"")
    fails(S, { [1] = 5 }, "expected field names, got array index 1")
    fails(S, { [true] = 5 }, "expected field names, got a boolean key")
    fails(S, { _unknown = "\xff" }, "_unknown: not a sequence of protobuf fields")
    fails(S, { _unknown = 5 }, "_unknown: expected a string")
    assert(encode(S, { f_bytes = "\xff\xfe" }), "bytes take any byte")
  ));
}

static void test_enums(void **state) {
  run(*state, "enums", LUA(
    local b = assert(encode("rttest.Scalars", { f_enum = "CRIMSON" }))
    eq(assert(decode("rttest.Scalars", b)).f_enum, "RED", "alias decodes as the first name")
    b = assert(encode("rttest.Scalars", { f_enum = 42 }))
    eq(protoc_decode("rttest.Scalars", b), "f_enum: 42\n")
    eq(assert(decode("rttest.Scalars", b)).f_enum, 42, "unknown value stays a number")
    b = assert(encode("rttest.Scalars", { f_enum = -5 }))
    eq(assert(decode("rttest.Scalars", b)).f_enum, "NEGATIVE")
    b = protoc_encode("rttest.Wrapper", "nested { level: HIGH levels: [HIGH, LOW, HIGH] }")
    local d = assert(decode("rttest.Wrapper", b))
    eq(d.nested.level, "HIGH")
    eq(table.concat(d.nested.levels, ","), "HIGH,LOW,HIGH")
    eq(protoc_decode("rttest.Wrapper", assert(encode("rttest.Wrapper", d))),
       "nested {\n  level: HIGH\n  levels: HIGH\n  levels: LOW\n  levels: HIGH\n}\n")
  ));
}

/* proto3: scalars always present with their zero value, messages and presence fields nil. */
static void test_defaults(void **state) {
  run(*state, "defaults", LUA(
    local d = assert(decode("rttest.Scalars", ""))
    eq(keys(d), 16)
    eq(d.f_double, 0) eq(d.f_float, 0) eq(d.f_int32, 0) eq(d.f_uint32, 0)
    eq(d.f_int64, 0LL) eq(d.f_uint64, 0ULL) eq(d.f_sfixed64, 0LL)
    assert(ffi.istype("int64_t", d.f_int64), "default int64 is cdata too")
    eq(d.f_bool, false) eq(d.f_string, "") eq(d.f_bytes, "") eq(d.f_enum, "COLOR_UNSPECIFIED")
    eq(#assert(encode("rttest.Scalars", d)), 0, "zero values are not written")
    local w = assert(decode("rttest.Wrapper", ""))
    eq(keys(w), 0, "absent messages are nil")
    local r = assert(decode("rttest.Repeated", ""))
    eq(keys(r), 11, "repeated fields are always there")
    eq(#r.ints, 0) eq(next(r.msgs), nil)
    local m = assert(decode("rttest.Maps", ""))
    eq(keys(m), 7) eq(next(m.by_name), nil)
    local c = assert(decode("rttest.Choice", ""))
    eq(c.num, nil) eq(c.text, nil) eq(c.opt, nil) eq(c.opt_s, nil) eq(c.other, "")
    eq(keys(c), 1)
  ));
}

/* ---- structure ----------------------------------------------------------------------- */

static void test_nested(void **state) {
  run(*state, "nested", LUA(
    local t = { user = { id = 1, name = "ann", email = "a@x" },
                stamp = { at = { seconds = 1700000000, nanos = 5 }, who = "me" },
                nested = { level = "HIGH" } }
    local b = assert(encode("rttest.Wrapper", t))
    eq(protoc_decode("rttest.Wrapper", b),
       "user {\n  id: 1\n  name: \"ann\"\n  email: \"a@x\"\n}\nstamp {\n  at {\n" ..
       "    seconds: 1700000000\n    nanos: 5\n  }\n  who: \"me\"\n}\nnested {\n  level: HIGH\n}\n")
    local d = assert(decode("rttest.Wrapper", b))
    eq(d.user.id, 1LL) eq(d.user.name, "ann") eq(d.stamp.at.seconds, 1700000000LL)
    eq(d.stamp.at.nanos, 5) eq(d.nested.level, "HIGH")
    d = assert(decode("rttest.Wrapper", assert(encode("rttest.Wrapper", { user = {} }))))
    eq(d.user.id, 0LL, "an empty sub-message is present")
    eq(d.stamp, nil)
    fails("rttest.Wrapper", { user = { id = "x" } },
          "rttest.Wrapper.user.id: expected integer, got string \"x\"")
    fails("rttest.Wrapper", { user = 5 }, "rttest.Wrapper.user: expected a table for message rttest.User, got number")
    fails("rttest.Wrapper", { stamp = { at = { nanos = 1.5 } } }, "rttest.Wrapper.stamp.at.nanos: expected integer")
    fails("rttest.User", { 1, 2 }, "expected field names, got array index 1 (a list where a message belongs?)")
    local n = { name = "loop" } n.child = n
    fails("rttest.Node", n, "rttest.Node.child.child.child.child.child.child(...89 more...).child.child", -2)
    fails("rttest.Node", n, "child: messages nested deeper than 100 (a table that contains itself?)")
  ));
}

static void test_repeated(void **state) {
  run(*state, "repeated", LUA(
    local text = "ints: [1, -2, 3]\nlongs: [-9223372036854775808, 5]\nstrs: [\"a\", \"\", \"c\"]\n" ..
      "colors: [RED, 42]\nmsgs { f_int32: 1 }\nmsgs { }\nmsgs { f_string: \"z\" }\n" ..
      "dbls: [0.5, -1]\ns64: [-1, 2]\nbools: [true, false]\nblobs: [\"\\000\", \"x\"]\n" ..
      "fx: [4294967295]\nu64: [18446744073709551615]\n"
    local b = protoc_encode("rttest.Repeated", text)
    local u = protoc_encode("rttest.RepeatedUnpacked", text:gsub("strs[^\n]*\n", ""):gsub("msgs[^\n]*\n", ""):gsub("blobs[^\n]*\n", ""))
    local function check(d, all)
      eq(table.concat(d.ints, ","), "1,-2,3")
      eq(d.longs[1], -9223372036854775807LL - 1) eq(d.longs[2], 5LL) eq(#d.longs, 2)
      eq(d.colors[1], "RED") eq(d.colors[2], 42)
      eq(d.dbls[1], 0.5) eq(d.dbls[2], -1)
      eq(d.s64[1], -1LL) eq(d.s64[2], 2LL)
      eq(d.bools[1], true) eq(d.bools[2], false)
      eq(d.fx[1], 4294967295) eq(d.u64[1], 18446744073709551615ULL)
      if all then
        eq(table.concat(d.strs, ","), "a,,c")
        eq(#d.msgs, 3) eq(d.msgs[1].f_int32, 1) eq(d.msgs[2].f_int32, 0) eq(d.msgs[3].f_string, "z")
        eq(d.blobs[1], "\0") eq(d.blobs[2], "x")
      end
    end
    local d = assert(decode("rttest.Repeated", b))
    check(d, true)
    check(assert(decode("rttest.Repeated", u)), false)
    local mine = assert(encode("rttest.Repeated", d))
    eq(hex(mine), hex(b), "packed encoding as protoc makes it")
    eq(protoc_decode("rttest.Repeated", mine), protoc_decode("rttest.Repeated", b))
    assert(hex(mine):find("^0a0c"), "ints are packed: one tag, 12 bytes")
    assert(hex(mine):find("38013804"), "s64 [packed = false] stays unpacked")
    fails("rttest.Repeated", { ints = { a = 1 } }, "rttest.Repeated.ints: expected an array (keys 1..n only)")
    fails("rttest.Repeated", { ints = { 1, nil, 3 } }, "expected an array")
    fails("rttest.Repeated", { ints = { 1, 2, x = 3 } }, "expected an array")
    fails("rttest.Repeated", { ints = 5 }, "rttest.Repeated.ints: expected a table (array), got number")
    fails("rttest.Repeated", { msgs = { {}, { f_int32 = 1.5 } } },
          "rttest.Repeated.msgs[2].f_int32: expected integer, got 1.5")
    fails("rttest.Repeated", { msgs = { { name = "x" } } }, "rttest.Repeated.msgs[1]: unknown field \"name\"")
    fails("rttest.Repeated", { strs = { "ok", "\xc0\x80" } }, "rttest.Repeated.strs[2]: string is not valid UTF-8")
    eq(#assert(encode("rttest.Repeated", { ints = {}, msgs = {} })), 0, "empty lists write nothing")
  ));
}

static void test_maps(void **state) {
  run(*state, "maps", LUA(
    local t = {
      by_name = { a = 1, b = -2 }, by_id = { [5] = "five", [-1] = "minus" },
      by_long = { [9007199254740993] = { f_int32 = 1 } },
      flags = { [true] = "RED", [false] = 2 },
      by_u64 = { ["18446744073709551615"] = "\0max", [3] = "three" },
      msgs = { k = { f_bool = true } }, by_sint = { [-7] = 0.25 } }
    t.by_long = { ["9007199254740993"] = { f_int32 = 1 }, [12] = {} }
    local b = assert(encode("rttest.Maps", t))
    eq(protoc_decode("rttest.Maps", b),
      "by_name {\n  key: \"a\"\n  value: 1\n}\nby_name {\n  key: \"b\"\n  value: -2\n}\n" ..
      "by_id {\n  key: -1\n  value: \"minus\"\n}\nby_id {\n  key: 5\n  value: \"five\"\n}\n" ..
      "by_long {\n  key: 12\n  value {\n  }\n}\n" ..
      "by_long {\n  key: 9007199254740993\n  value {\n    f_int32: 1\n  }\n}\n" ..
      "flags {\n  key: false\n  value: GREEN\n}\nflags {\n  key: true\n  value: RED\n}\n" ..
      "by_u64 {\n  key: 3\n  value: \"three\"\n}\n" ..
      "by_u64 {\n  key: 18446744073709551615\n  value: \"\\000max\"\n}\n" ..
      "msgs {\n  key: \"k\"\n  value {\n    f_bool: true\n  }\n}\n" ..
      "by_sint {\n  key: -7\n  value: 0.25\n}\n")
    local d = assert(decode("rttest.Maps", b))
    eq(d.by_name.a, 1) eq(d.by_name.b, -2) eq(keys(d.by_name), 2)
    eq(d.by_id[5], "five") eq(d.by_id[-1], "minus")
    eq(d.by_long[12].f_int32, 0, "int64 key up to 2^53 is a number")
    eq(d.by_long["9007199254740993"].f_int32, 1, "int64 key above 2^53 is a decimal string")
    eq(d.flags[true], "RED") eq(d.flags[false], "GREEN")
    eq(d.by_u64["18446744073709551615"], "\0max") eq(d.by_u64[3], "three")
    eq(d.msgs.k.f_bool, true) eq(d.by_sint[-7], 0.25)
    local p = protoc_encode("rttest.Maps",
      "by_name { key: \"x\" value: 1 }\nby_name { key: \"x\" value: 2 }\nmsgs { key: \"e\" }\nby_id { value: \"zero\" }")
    d = assert(decode("rttest.Maps", p))
    eq(d.by_name.x, 2, "the last duplicate key wins")
    eq(d.msgs.e.f_int32, 0, "an entry without value gets the default message")
    eq(d.by_id[0], "zero", "an entry without key gets the default key")
    fails("rttest.Maps", { by_name = { [1] = 1 } }, "rttest.Maps.by_name[1]: map key: expected string, got number")
    fails("rttest.Maps", { by_id = { x = "a" } }, "rttest.Maps.by_id[\"x\"]: expected integer, got string")
    fails("rttest.Maps", { by_id = { [1.5] = "a" } }, "expected integer, got 1.5")
    fails("rttest.Maps", { msgs = { k = { f_bool = 1 } } }, "rttest.Maps.msgs[\"k\"].f_bool: expected boolean")
    fails("rttest.Maps", { flags = { [1] = "RED" } }, "expected boolean, got number")
    fails("rttest.Maps", { by_name = { a = "1" } }, "rttest.Maps.by_name[\"a\"]: expected integer, got string")
    fails("rttest.Maps", { by_name = 3 }, "rttest.Maps.by_name: expected a table (map), got number")
  ));
}

static void test_oneof(void **state) {
  run(*state, "oneof", LUA(
    local C = "rttest.Choice"
    local d = assert(decode(C, assert(encode(C, { text = "hi", other = "o" }))))
    eq(d.text, "hi") eq(d.num, nil) eq(d.msg, nil) eq(d.other, "o")
    local b = assert(encode(C, { num = 0 }))
    eq(protoc_decode(C, b), "num: 0\n", "a oneof member set to zero is still sent")
    eq(assert(decode(C, b)).num, 0)
    b = assert(encode(C, { raw = "" }))
    eq(protoc_decode(C, b), "raw: \"\"\n")
    eq(assert(decode(C, b)).raw, "")
    d = assert(decode(C, assert(encode(C, { msg = { f_int32 = 3 } }))))
    eq(d.msg.f_int32, 3) eq(d.text, nil)
    d = assert(decode(C, assert(encode(C, { color = "RED" }))))
    eq(d.color, "RED")
    local two = assert(encode(C, { num = 5 })) .. assert(encode(C, { text = "last" }))
    d = assert(decode(C, two))
    eq(d.text, "last", "the last member on the wire wins") eq(d.num, nil)
    two = assert(encode(C, { msg = { f_string = "a" } })) .. assert(encode(C, { raw = "b" })) ..
          assert(encode(C, { msg = { f_int32 = 2 } }))
    d = assert(decode(C, two))
    eq(d.msg.f_int32, 2) eq(d.raw, nil)
    fails(C, { num = 1, text = "x" }, "rttest.Choice.")
    fails(C, { num = 1, text = "x" }, "oneof pick: only one of")
    b = assert(encode(C, { opt = 0, opt_s = "" }))
    eq(protoc_decode(C, b), "opt: 0\nopt_s: \"\"\n", "proto3 optional sends its zero value")
    d = assert(decode(C, b))
    eq(d.opt, 0) eq(d.opt_s, "")
    d = assert(decode(C, protoc_encode(C, "text: \"t\"\nopt: 4")))
    eq(d.text, "t") eq(d.opt, 4) eq(d.opt_s, nil)
  ));
}

static void test_unknown_fields(void **state) {
  run(*state, "unknown_fields", LUA(
    local v2 = "a: 1\nb: \"bee\"\nc: 1\nc: 2\nc: 3\nd: 18446744073709551615\ne: 1.5\nf {\n  f_int32: 9\n}\ng: -1\n"
    local b = protoc_encode("rttest.V2", v2)
    local d = assert(decode("rttest.V1", b))
    eq(d.a, 1)
    eq(type(d._unknown), "string")
    eq(hex(d._unknown), hex(b:sub(3)), "unknown fields kept byte for byte")
    local again = assert(encode("rttest.V1", d))
    eq(hex(again), hex(b), "re-encoding puts them back")
    eq(protoc_decode("rttest.V2", again), v2)
    d.a = 2
    eq(protoc_decode("rttest.V2", assert(encode("rttest.V1", d))), v2:gsub("a: 1", "a: 2"))
    local v2d = assert(decode("rttest.V2", again))
    eq(v2d.b, "bee") eq(v2d.d, 18446744073709551615ULL) eq(v2d.g, -1) eq(v2d._unknown, nil)
    local o = assert(decode("rttest.Odd", "\x0a\x01x\x10\x05"))
    eq(o._unknown, "x", "a field named _unknown wins over the unknown-field key")
    eq(protoc_decode("rttest.Odd", assert(encode("rttest.Odd", o))), "_unknown: \"x\"\n")
    local t, err = decode("rttest.Wrapper", protoc_encode("rttest.V2", "a: 5"))
    eq(err, "rttest.Wrapper.user: wire type 0 does not fit a field of type message",
       "protobuf-c refuses a field whose wire type does not match the schema")
  ));
}

/* ---- decoding hostile bytes ------------------------------------------------------------ */

static void test_decode_errors(void **state) {
  run(*state, "decode_errors", LUA(
    local function bad(msg, bytes, pattern, code, opts)
      local t, err, rc = decode(msg, bytes, opts)
      if t then error("decode should fail: " .. pattern, 2) end
      if not err:find(pattern, 1, true) then error("error \"" .. err .. "\" lacks \"" .. pattern .. "\"", 2) end
      if code then eq(rc, code, "code") end
    end
    bad("rttest.User", "\xff", "rttest.User: bad tag at offset 0", -1)
    bad("rttest.User", "\x08", "bad varint")
    bad("rttest.User", "\x12\x05ab", "truncated length-delimited field")
    bad("rttest.User", "\x00\x01", "field number out of range")
    bad("rttest.User", "\x0b\x0c", "groups are not supported")
    bad("rttest.User", "\x0a\x01a", "rttest.User.id: wire type 2 does not fit a field of type int64", -1)
    bad("rttest.User", "\x10\x01", "rttest.User.name: wire type 0 does not fit a field of type string")
    bad("rttest.Repeated", "\x52\x03abc", "rttest.Repeated: cannot parse", -1)
    bad("rttest.Scalars", "\x72\x01\xff", "rttest.Scalars.f_string: string is not valid UTF-8", -1)
    bad("rttest.Repeated", "\x1a\x01a\x1a\x01\xff", "rttest.Repeated.strs[2]: string is not valid UTF-8")
    bad("rttest.Maps", "\x0a\x03\x0a\x01\xff", "rttest.Maps.by_name", -1)
    bad("rttest.Scalars", "\x8d\x01\x01\x02", "truncated fixed32")
    assert(decode("rttest.Scalars", "\x7a\x01\xff"), "bytes need not be UTF-8")
    bad("rttest.User", "\x08\x01", "over the limit of 1", -2, { max_size = 1 })
    local function varint(n)
      local s = ""
      while n >= 128 do s = s .. string.char(n % 128 + 128) n = math.floor(n / 128) end
      return s .. string.char(n)
    end
    local function nest(n) local s = "" for i = 1, n do s = "\x12" .. varint(#s) .. s end return s end
    bad("rttest.Node", nest(101), "rttest.Node: messages nested deeper than 100", -2)
    assert(decode("rttest.Node", nest(100)), "100 levels are fine")
    bad("rttest.Node", nest(11), "nested deeper than 10", nil, { max_depth = 10 })
    local many = string.rep("\x2a\x00", 2000)
    eq(#assert(decode("rttest.Repeated", many)).msgs, 2000)
    bad("rttest.Repeated", many, "decoding needs more than 20000 bytes of memory", -2, { max_alloc = 20000 })
  ));
}

static void test_proto2(void **state) {
  run(*state, "proto2", LUA(
    local I = "rttest.legacy.Item"
    local b = assert(encode(I, { id = 0, codes = { 1, 2 }, inner = { key = "k" } }))
    eq(protoc_decode(I, b), "id: 0\ncodes: 1\ncodes: 2\ninner {\n  key: \"k\"\n}\n",
       "required zero is sent, repeated unpacked")
    local d = assert(decode(I, b))
    eq(d.id, 0) eq(d.label, nil) eq(d.count, nil) eq(d.inner.key, "k")
    d = assert(decode(I, protoc_encode(I, "id: 3 label: \"\" count: 0")))
    eq(d.label, "") eq(d.count, 0LL)
    fails(I, { label = "x" }, "rttest.legacy.Item: required field id is missing")
    fails(I, { id = 1, inner = {} }, "rttest.legacy.Item.inner: required field key is missing")
    local t, err = decode(I, "\x18\x01")
    assert(not t and err:find("missing required field", 1, true), err)
  ));
}

static void test_headroom(void **state) {
  run(*state, "headroom", LUA(
    local plain = assert(encode("rttest.User", { id = 300, name = "n" }))
    eq(assert(encode("rttest.User", { id = 300, name = "n" }, { headroom = 5 })), plain)
    local t, err, rc = encode("rttest.User", { name = string.rep("x", 100) }, { max_size = 50 })
    assert(not t and err:find("over the limit of 50", 1, true) and rc == -2, err)
  ));
}

static void test_c_api_edges(void **state) {
  fixture *fx = *state;
  lua_State *L = fx->L;
  char err[256];
  uint8_t *out = (uint8_t *)1;
  size_t n = 1;
  int top = lua_gettop(L);
  lua_newtable(L);
  /* a descriptor not built by rt_pb_schema (protoc-c generated) is refused */
  assert_int_equal(rt_pb_lua_encode(L, -1, &google__protobuf__file_descriptor_set__descriptor,
                                    &out, &n, err, sizeof err), RT_PB_EINVAL);
  assert_null(out);
  assert_int_equal(n, 0);
  assert_contains(err, "not built by rt_pb_schema");
  assert_int_equal(rt_pb_lua_decode(L, &google__protobuf__file_descriptor_set__descriptor,
                                    (const uint8_t *)"", 0, err, sizeof err), RT_PB_EINVAL);
  lua_pushnumber(L, 5);
  assert_int_equal(rt_pb_lua_encode(L, -1, rt_pb_schema_message(fx->s, "rttest.User"), &out, &n,
                                    err, sizeof err), RT_PB_EINVAL);
  assert_string_equal(err, "rttest.User: expected a table, got number");
  /* relative and absolute indexes; NULL err buffers are allowed */
  assert_int_equal(rt_pb_lua_encode(L, top + 1, rt_pb_schema_message(fx->s, "rttest.User"), &out,
                                    &n, NULL, 0), 0);
  assert_int_equal(n, 0);
  free(out);
  assert_int_equal(rt_pb_lua_decode(L, rt_pb_schema_message(fx->s, "rttest.User"), NULL, 0, NULL, 0), 0);
  lua_pop(L, 3);
  assert_int_equal(lua_gettop(L), top);
  /* a fresh state gets its helpers on first use */
  lua_State *L2 = luaL_newstate();
  luaL_openlibs(L2);
  assert_int_equal(rt_pb_lua_decode(L2, rt_pb_schema_message(fx->s, "rttest.User"),
                                    (const uint8_t *)"\x08\x07", 2, err, sizeof err), 0);
  lua_getfield(L2, -1, "id");
  assert_int_equal(lua_type(L2, -1), 10);  /* cdata */
  lua_close(L2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema_lookup),
      cmocka_unit_test(test_schema_errors),
      cmocka_unit_test(test_schema_descriptor_set),
      cmocka_unit_test(test_scalar_limits),
      cmocka_unit_test(test_scalar_forms),
      cmocka_unit_test(test_scalar_errors),
      cmocka_unit_test(test_enums),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_repeated),
      cmocka_unit_test(test_maps),
      cmocka_unit_test(test_oneof),
      cmocka_unit_test(test_unknown_fields),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_proto2),
      cmocka_unit_test(test_headroom),
      cmocka_unit_test(test_c_api_edges),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
