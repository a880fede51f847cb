/*
 * Small pieces of the protobuf wire format that protobuf-c does not offer, and the arena
 * the pb_ modules allocate from. I/O-free: bytes in, bytes or facts out.
 */
#ifndef RT_PB_WIRE_H
#define RT_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#define RT_PB_MAX_FIELD_NUMBER ((1u << 29) - 1)

/* ---- arena: many small zeroed allocations, freed all at once ---------------------------- */
typedef struct rt_pb_blk rt_pb_blk;
typedef struct rt_pb_arena {
  rt_pb_blk *head;
  size_t total;   /* bytes taken from malloc so far */
  size_t limit;   /* refuse to grow past this; 0 = no limit */
} rt_pb_arena;
typedef struct rt_pb_arena_mark {
  rt_pb_blk *blk;
  size_t used;
} rt_pb_arena_mark;

/* Optional: serve the first allocations from buf (e.g. on the caller's stack); the arena
 * never frees it. Call on a zeroed arena. */
void rt_pb_arena_init_buf(rt_pb_arena *a, void *buf, size_t len);
void *rt_pb_arena_alloc(rt_pb_arena *a, size_t n); /* zeroed, 16-aligned; NULL on failure */
char *rt_pb_arena_strdup(rt_pb_arena *a, const char *s);
char *rt_pb_arena_join(rt_pb_arena *a, const char *prefix, char sep, const char *name);
rt_pb_arena_mark rt_pb_arena_mark_get(const rt_pb_arena *a);
void rt_pb_arena_reset(rt_pb_arena *a, rt_pb_arena_mark m); /* frees what came after m */
void rt_pb_arena_free(rt_pb_arena *a);

/* ---- wire format ------------------------------------------------------------------------- */
/* Reads a varint of at most 10 bytes; returns the bytes used, 0 if cut short or too long. */
size_t rt_pb_wire_varint(const uint8_t *p, size_t len, uint64_t *v);
/* Writes a varint, returns its length (at most 10). */
size_t rt_pb_wire_put_varint(uint8_t *out, uint64_t v);

/* Checks the tag structure of a message before protobuf-c unpacks it: tags, lengths and
 * wire types well formed (no groups, field numbers 1..2^29-1), and known message fields
 * nested at most max_depth deep. protobuf-c itself recurses without a bound, so a hostile
 * peer could otherwise overflow the stack with a few bytes per level. Returns 0, -1 for
 * malformed bytes, -2 for nesting over max_depth. */
int rt_pb_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                     unsigned max_depth, char *err, size_t errlen);

/* Splits bytes made of whole fields (tag + value, as rt_pb_wire_join_unknown writes them)
 * into protobuf-c unknown fields that point into p. With out == NULL only counts. Returns
 * the count, or -1 when p is not a sequence of well-formed fields. */
long rt_pb_wire_split_unknown(const uint8_t *p, size_t len, ProtobufCMessageUnknownField *out);
/* Bytes needed for, and writing of, a message's unknown fields as tag + value. */
size_t rt_pb_wire_unknown_size(const ProtobufCMessage *m);
void rt_pb_wire_join_unknown(const ProtobufCMessage *m, uint8_t *out);

/* Bytes one value of type t takes in a message struct (protobuf-c's layout rules). */
size_t rt_pb_value_size(ProtobufCType t);

#endif
