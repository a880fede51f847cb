/* Shared by pb_lua.c (entry points, errors, decode) and pb_lua_enc.c (encode). */
#ifndef RT_PB_LUA_INT_H
#define RT_PB_LUA_INT_H

#include "pb_lua.h"
#include "pb/pb_wire.h"

#include <lauxlib.h>

#define PB_LUA_TCDATA 10 /* lua_type of LuaJIT cdata (not in lua.h) */

/* Slots of the per-state helper table kept in the registry. */
enum { PB_H_NEW_I64 = 1, PB_H_NEW_U64, PB_H_KIND, PB_H_ENCODE, PB_H_DECODE };
enum { PB_KIND_OTHER = 0, PB_KIND_I64 = 1, PB_KIND_U64 = 2 }; /* what PB_H_KIND returns */

/* One step of the path shown in error messages: .field, [index] or [key]. */
typedef struct {
  const char *name;    /* 'f' */
  int32_t n;           /* 'i': the index (1-based, as Lua sees it); 'k': stack slot of the key */
  char kind;           /* 'f' field, 'i' index, 'k' key */
} pb_step;

typedef struct pb_ctx {
  lua_State *L;
  rt_pb_lua_opts o;
  const rt_pb_msg *root;
  int helpers;                 /* stack slot of the helper table inside the pcall */
  rt_pb_arena arena;           /* encode: message structs; decode: default instances */
  unsigned n_path;
  int code;                    /* RT_PB_E* once an error was raised */
  ProtobufCMessage *out_msg;   /* encode result */
  const ProtobufCMessage *in_msg; /* decode input */
  /* not cleared per call: */
  char err[600];
  pb_step path[2 * RT_PB_MAX_DEPTH_CAP + 8];
  _Alignas(16) unsigned char first_block[1024]; /* small messages need no malloc */
} pb_ctx;

/* Formats "<message path>: <what>", stores it in c->err and raises a Lua error that the
 * entry point's lua_pcall catches. */
void pb_raise(pb_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static inline void pb_path_push(pb_ctx *c, char kind, const char *name, long n) {
  if (c->n_path < sizeof c->path / sizeof c->path[0]) {
    pb_step *s = &c->path[c->n_path];
    s->kind = kind;
    s->name = name;
    s->n = (int32_t)n;
  }
  c->n_path++;
}

static inline void pb_path_pop(pb_ctx *c) {
  c->n_path--;
}

/* lua_CFunction run under pcall with (helpers, table, ctx): builds c->out_msg. */
int pb_lua_encode_body(lua_State *L);

#endif
