/*
 * Protobuf messages <-> Lua tables, for descriptors built by rt_pb_schema.
 *
 * encode: table -> message struct (in an arena) -> protobuf_c_message_pack
 * decode: protobuf_c_message_unpack -> message struct -> table
 *
 * The mapping (README "Protobuf <-> Lua mapping"):
 *   int32 sint32 sfixed32 uint32 fixed32  Lua number (integral, in range, or error)
 *   int64 sint64 sfixed64                 int64_t cdata (1LL); encode also takes integral
 *   uint64 fixed64                        uint64_t cdata (1ULL)   numbers, decimal strings
 *                                                                  and either cdata, exactly
 *   float double                          number (float out of range is an error)
 *   bool                                  boolean
 *   string                                Lua string, valid UTF-8 both ways (proto3)
 *   bytes                                 Lua string, any bytes
 *   enum                                  decode: value name, or the number if unknown;
 *                                         encode: name or integral number
 *   message                               table; absent (nil) when not set
 *   repeated                              array table, always present ({} when empty)
 *   map<K, V>                             table keyed by K, always present; 64-bit keys are
 *                                         numbers up to 2^53, decimal strings above
 *   oneof                                 only the member that is set is present
 *   proto3 `optional`, proto2 optional    present only when set
 *   other proto3 scalars                  always present, zero value when not on the wire
 *   unknown fields                        decode: raw bytes (tag + value, wire order) under
 *                                         "_unknown"; encode writes them back as they are
 *
 * Both functions are plain C functions for the Lua bridge, not lua_CFunctions. All the
 * work that can raise a Lua error runs under lua_pcall, so they never longjmp out: they
 * return 0, or a negative RT_PB_E* code with one line in err naming the field path, e.g.
 * "user.User.id: expected integer, got string" or "rttest.Repeated.msgs[2].f_int32: 3e9
 * out of range for int32".
 */
#ifndef RT_PB_LUA_H
#define RT_PB_LUA_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include "pb/pb_schema.h"

enum {
  RT_PB_EINVAL = -1,   /* the table does not fit the message, or the bytes are not one */
  RT_PB_ELIMIT = -2,   /* over max_size, max_depth or max_alloc */
  RT_PB_ENOMEM = -3,   /* malloc or Lua ran out of memory */
};

typedef struct rt_pb_lua_opts {
  size_t max_size;    /* largest message encoded or decoded, bytes; 0 = 4 MiB */
  unsigned max_depth; /* nesting of messages, both ways; 0 = 100 (protobuf's default) */
  size_t max_alloc;   /* decode: bytes protobuf-c may allocate for the struct; 0 = 1 MiB +
                       * 32 x the message size (an empty sub-message costs its whole struct) */
  size_t headroom;    /* encode: free bytes left before the message in *out, e.g. 5 for the
                       * gRPC length prefix; *out_len does not count them */
} rt_pb_lua_opts;

#define RT_PB_DEFAULT_MAX_SIZE (4u << 20)
#define RT_PB_DEFAULT_MAX_DEPTH 100
#define RT_PB_MAX_DEPTH_CAP 200

/* Encodes the table at table_index as message d into a malloc'd buffer (*out, free it). */
int rt_pb_lua_encode(lua_State *L, int table_index, const ProtobufCMessageDescriptor *d,
                     uint8_t **out, size_t *out_len, char *err, size_t errlen);
int rt_pb_lua_encode_ex(lua_State *L, int table_index, const ProtobufCMessageDescriptor *d,
                        const rt_pb_lua_opts *opts, uint8_t **out, size_t *out_len, char *err,
                        size_t errlen);

/* Decodes bytes as message d and pushes one table; pushes nothing on error. */
int rt_pb_lua_decode(lua_State *L, const ProtobufCMessageDescriptor *d, const uint8_t *data,
                     size_t len, char *err, size_t errlen);
int rt_pb_lua_decode_ex(lua_State *L, const ProtobufCMessageDescriptor *d, const uint8_t *data,
                        size_t len, const rt_pb_lua_opts *opts, char *err, size_t errlen);

#endif
