#include "pb_wire.h"
#include "pb_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------------------- */

struct rt_pb_blk {
  rt_pb_blk *next;
  size_t cap, used;
  int external;  /* lent by the caller: never freed */
  _Alignas(16) unsigned char data[];
};

#define BLK_MIN 8192

void rt_pb_arena_init_buf(rt_pb_arena *a, void *buf, size_t len) {
  uintptr_t p = ((uintptr_t)buf + 15) & ~(uintptr_t)15;
  size_t skip = p - (uintptr_t)buf;
  if (len < skip + sizeof(rt_pb_blk) + 64) return;
  rt_pb_blk *b = (rt_pb_blk *)p;
  b->next = a->head;
  b->cap = len - skip - sizeof(rt_pb_blk);
  b->used = 0;
  b->external = 1;
  a->head = b;
}

void *rt_pb_arena_alloc(rt_pb_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  rt_pb_blk *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > BLK_MIN ? n : BLK_MIN;
    if (cap > SIZE_MAX / 2) return NULL;
    if (a->limit && (a->total + cap > a->limit || a->total + cap < a->total)) return NULL;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->cap = cap;
    b->used = 0;
    b->external = 0;
    b->next = a->head;
    a->head = b;
    a->total += cap;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *rt_pb_arena_strdup(rt_pb_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = rt_pb_arena_alloc(a, n);
  if (p) memcpy(p, s, n);
  return p;
}

char *rt_pb_arena_join(rt_pb_arena *a, const char *prefix, char sep, const char *name) {
  if (!prefix || !*prefix) return rt_pb_arena_strdup(a, name);
  size_t lp = strlen(prefix), ln = strlen(name);
  char *p = rt_pb_arena_alloc(a, lp + ln + 2);
  if (!p) return NULL;
  memcpy(p, prefix, lp);
  p[lp] = sep;
  memcpy(p + lp + 1, name, ln + 1);
  return p;
}

rt_pb_arena_mark rt_pb_arena_mark_get(const rt_pb_arena *a) {
  rt_pb_arena_mark m = {a->head, a->head ? a->head->used : 0};
  return m;
}

void rt_pb_arena_reset(rt_pb_arena *a, rt_pb_arena_mark m) {
  while (a->head && a->head != m.blk) {
    rt_pb_blk *b = a->head;
    a->head = b->next;
    if (!b->external) {
      a->total -= b->cap;
      free(b);
    }
  }
  if (a->head) a->head->used = m.used;
}

void rt_pb_arena_free(rt_pb_arena *a) {
  rt_pb_arena_mark none = {NULL, 0};
  rt_pb_arena_reset(a, none);
}

/* ---- varints -------------------------------------------------------------------------- */

size_t rt_pb_wire_varint(const uint8_t *p, size_t len, uint64_t *v) {
  uint64_t r = 0;
  size_t max = len < 10 ? len : 10;
  for (size_t i = 0; i < max; i++) {
    r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *v = r;
      return i + 1;
    }
  }
  return 0;
}

size_t rt_pb_wire_put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* One field starting at p: its number, wire type and total length (tag included). */
typedef struct {
  uint32_t number;
  int wire_type;
  size_t tag_len, len;  /* len covers tag + value */
  size_t prefix_len;    /* length-delimited: bytes of the length varint */
} wire_field;

static const char *read_field(const uint8_t *p, size_t len, wire_field *f) {
  uint64_t tag, n;
  size_t t = rt_pb_wire_varint(p, len < 5 ? len : 5, &tag);
  if (!t) return "bad tag";
  if ((tag >> 3) == 0 || (tag >> 3) > RT_PB_MAX_FIELD_NUMBER) return "field number out of range";
  f->number = (uint32_t)(tag >> 3);
  f->wire_type = (int)(tag & 7);
  f->tag_len = t;
  f->prefix_len = 0;
  p += t;
  len -= t;
  switch (f->wire_type) {
    case PROTOBUF_C_WIRE_TYPE_VARINT: {
      size_t k = rt_pb_wire_varint(p, len, &n);
      if (!k) return "bad varint";
      f->len = t + k;
      return NULL;
    }
    case PROTOBUF_C_WIRE_TYPE_64BIT:
      if (len < 8) return "truncated fixed64";
      f->len = t + 8;
      return NULL;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
      if (len < 4) return "truncated fixed32";
      f->len = t + 4;
      return NULL;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
      /* protobuf-c reads at most a 5-byte length; so do we, and stay under 2 GiB */
      size_t k = rt_pb_wire_varint(p, len < 5 ? len : 5, &n);
      if (!k || n > INT32_MAX) return "bad length";
      if (n > len - k) return "truncated length-delimited field";
      f->prefix_len = k;
      f->len = t + k + (size_t)n;
      return NULL;
    }
    default:
      return "unsupported wire type (groups are not supported)";
  }
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int natural_wire_type(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
      return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
      return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_BYTES: case PROTOBUF_C_TYPE_MESSAGE:
      return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default:
      return PROTOBUF_C_WIRE_TYPE_VARINT;
  }
}

/* protobuf-c fails the whole message on a mismatch; saying which field is kinder. Repeated
 * scalars come packed (length-delimited) or not, whatever the schema prefers. */
static int wire_type_fits(const ProtobufCFieldDescriptor *fd, int wt) {
  int nat = natural_wire_type(fd->type);
  return wt == nat || (fd->label == PROTOBUF_C_LABEL_REPEATED &&
                       wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
}

static const char *type_name(const ProtobufCMessageDescriptor *d,
                             const ProtobufCFieldDescriptor *fd) {
  const rt_pb_msg *m = rt_pb_msg_of(d);
  ProtobufCType t = fd->type;
  static const char *const names[] = {"int32", "sint32", "sfixed32", "int64", "sint64",
                                      "sfixed64", "uint32", "fixed32", "uint64", "fixed64",
                                      "float", "double", "bool", "enum", "string", "bytes",
                                      "message"};
  if (m && (m->ext[fd - d->fields].flags & RT_PB_FX_STRING)) return "string";
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static int check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                 unsigned depth, unsigned max_depth, char *err, size_t errlen) {
  if (depth > max_depth) {
    fail(err, errlen, "%s: messages nested deeper than %u", d->name, max_depth);
    return -2;
  }
  size_t off = 0;
  while (off < len) {
    wire_field f;
    const char *why = read_field(p + off, len - off, &f);
    if (why) return fail(err, errlen, "%s: %s at offset %zu", d->name, why, off);
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, f.number);
    if (fd && !wire_type_fits(fd, f.wire_type))
      return fail(err, errlen, "%s.%s: wire type %d does not fit a field of type %s", d->name,
                  fd->name, f.wire_type, type_name(d, fd));
    if (fd && f.wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
      if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        size_t start = off + f.tag_len + f.prefix_len;
        int rc = check(fd->descriptor, p + start, f.len - f.tag_len - f.prefix_len, depth + 1,
                       max_depth, err, errlen);
        if (rc < 0) return rc;
      }
    }
    off += f.len;
  }
  return 0;
}

int rt_pb_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                     unsigned max_depth, char *err, size_t errlen) {
  return check(d, p, len, 0, max_depth, err, errlen);
}

/* ---- unknown fields ------------------------------------------------------------------- */

long rt_pb_wire_split_unknown(const uint8_t *p, size_t len, ProtobufCMessageUnknownField *out) {
  long n = 0;
  size_t off = 0;
  while (off < len) {
    wire_field f;
    if (read_field(p + off, len - off, &f)) return -1;
    if (out) {
      out[n].tag = f.number;
      out[n].wire_type = (ProtobufCWireType)f.wire_type;
      out[n].len = f.len - f.tag_len;
      out[n].data = (uint8_t *)(p + off + f.tag_len);  /* protobuf-c only reads it */
    }
    n++;
    off += f.len;
  }
  return n;
}

static size_t tag_of(const ProtobufCMessageUnknownField *u, uint8_t *out) {
  uint8_t tmp[10];
  return rt_pb_wire_put_varint(out ? out : tmp, ((uint64_t)u->tag << 3) | (unsigned)u->wire_type);
}

size_t rt_pb_wire_unknown_size(const ProtobufCMessage *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->n_unknown_fields; i++)
    n += tag_of(&m->unknown_fields[i], NULL) + m->unknown_fields[i].len;
  return n;
}

void rt_pb_wire_join_unknown(const ProtobufCMessage *m, uint8_t *out) {
  for (size_t i = 0; i < m->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
    out += tag_of(u, out);
    if (u->len) memcpy(out, u->data, u->len);
    out += u->len;
  }
}
