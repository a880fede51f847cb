/* libFuzzer harness for protobuf decode/encode with run-time descriptors (core/pb_*.c).
 * Input: byte 0 picks a message of tests/unit/pb/proto (loaded through protoc at start), the
 * rest is its wire bytes. Checks: no crash or leak; whatever decodes re-encodes, and the
 * re-encoded bytes decode to a table deep-equal to the first (unknown fields included).
 * Run from the repository root (or set RT_PB_FUZZ_PROTO_DIR). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/pb_lua.h"
#include "pb/pb_schema.h"

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);     \
      abort();                                                                   \
    }                                                                            \
  } while (0)

static const char *const messages[] = {
    "rttest.Scalars", "rttest.Repeated", "rttest.Maps",  "rttest.Choice",
    "rttest.Node",    "rttest.Wrapper",  "rttest.V1",    "rttest.V2",
    "rttest.User",    "rttest.RepeatedUnpacked", "rttest.legacy.Item",
};
#define N_MESSAGES (sizeof messages / sizeof messages[0])

/* The fuzzer's process-wide fixture: libFuzzer gives no other place to keep it. */
static struct {
  rt_pb_schema *schema;
  lua_State *L;
  const ProtobufCMessageDescriptor *desc[N_MESSAGES];
  int deep_eq;   /* registry ref */
  unsigned runs;
} fx;

static const char deep_eq_src[] =
    "local function eq(a, b)\n"
    "  if a == b then return true end\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then return a ~= a and b ~= b end\n"
    "  if type(a) ~= 'table' then return false end\n"
    "  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return eq\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("RT_PB_FUZZ_PROTO_DIR");
  char err[512], test[600], legacy[600];
  if (!dir) dir = "tests/unit/pb/proto";
  snprintf(test, sizeof test, "%s/test.proto", dir);
  snprintf(legacy, sizeof legacy, "%s/legacy.proto", dir);
  fx.schema = rt_pb_schema_new();
  if (rt_pb_schema_load(fx.schema, test, NULL, 0, err, sizeof err) < 0 ||
      rt_pb_schema_load(fx.schema, legacy, NULL, 0, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz_pb: %s (run from the repository root)\n", err);
    abort();
  }
  for (size_t i = 0; i < N_MESSAGES; i++)
    CHECK((fx.desc[i] = rt_pb_schema_message(fx.schema, messages[i])));
  fx.L = luaL_newstate();
  luaL_openlibs(fx.L);
  CHECK(luaL_loadstring(fx.L, deep_eq_src) == 0 && lua_pcall(fx.L, 0, 1, 0) == 0);
  fx.deep_eq = luaL_ref(fx.L, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lua_State *L = fx.L;
  const ProtobufCMessageDescriptor *d = fx.desc[data[0] % N_MESSAGES];
  char err[600];
  int top = lua_gettop(L);
  if (rt_pb_lua_decode(L, d, data + 1, size - 1, err, sizeof err) == 0) {
    uint8_t *out;
    size_t n;
    CHECK(lua_gettop(L) == top + 1);
    if (rt_pb_lua_encode(L, -1, d, &out, &n, err, sizeof err) != 0) {
      fprintf(stderr, "re-encode of a decoded %s failed: %s\n", d->name, err);
      abort();
    }
    if (rt_pb_lua_decode(L, d, out, n, err, sizeof err) != 0) {
      fprintf(stderr, "decode of a re-encoded %s failed: %s\n", d->name, err);
      abort();
    }
    free(out);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fx.deep_eq);
    lua_insert(L, -3);
    CHECK(lua_pcall(L, 2, 1, 0) == 0);
    if (!lua_toboolean(L, -1)) {
      fprintf(stderr, "%s: decode(encode(decode(x))) differs from decode(x)\n", d->name);
      abort();
    }
  }
  lua_settop(L, top);
  if (++fx.runs % 1024 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
