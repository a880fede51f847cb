#include "engine_msg.h"

#include <stdio.h>
#include <string.h>

#define F_BINARY 1
#define F_STOMP_DEST 2
#define F_CTYPE 4

static int put_u16(rt_buf *b, size_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  return rt_buf_append(b, x, 2);
}

static int put_u32(rt_buf *b, size_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  return rt_buf_append(b, x, 4);
}

static int put_str(rt_buf *b, const char *s, size_t max) {
  size_t n = strlen(s);
  if (n > max) return -1;
  if (max > 0xffff ? put_u32(b, n) : put_u16(b, n)) return -1;
  return rt_buf_append(b, s, n);
}

int rt_engine_msg_encode(rt_buf *out, const rt_engine_msg *m) {
  if (m->nheaders > RT_ENGINE_MAX_HEADERS || m->body_len > 0xffffffffu) return -1;
  uint8_t head[12] = {'R', 'T', 1, 0};
  head[3] = (uint8_t)((m->binary ? F_BINARY : 0) | (m->stomp_destination ? F_STOMP_DEST : 0) |
                      (m->content_type ? F_CTYPE : 0));
  for (int i = 0; i < 8; i++) head[4 + i] = (uint8_t)(m->origin >> (8 * i));
  if (rt_buf_append(out, head, sizeof head) < 0 || put_str(out, m->name, RT_ENGINE_MAX_NAME) < 0)
    return -1;
  if (m->stomp_destination && put_str(out, m->stomp_destination, RT_ENGINE_MAX_NAME) < 0) return -1;
  if (m->content_type && put_str(out, m->content_type, RT_ENGINE_MAX_NAME) < 0) return -1;
  if (put_u16(out, m->nheaders) < 0) return -1;
  for (size_t i = 0; i < m->nheaders; i++)
    if (put_str(out, m->headers[i].name, RT_ENGINE_MAX_NAME) < 0 ||
        put_str(out, m->headers[i].value, RT_ENGINE_MAX_VALUE) < 0)
      return -1;
  if (put_u32(out, m->body_len) < 0) return -1;
  return m->body_len ? rt_buf_append(out, m->body, m->body_len) : 0;
}

typedef struct reader {
  const uint8_t *p, *end;
  rt_buf *scratch;
  const char *why;
} reader;

static int get_uint(reader *r, int bytes, size_t *v) {
  if (r->end - r->p < bytes) {
    r->why = "truncated";
    return -1;
  }
  *v = 0;
  for (int i = 0; i < bytes; i++) *v |= (size_t)r->p[i] << (8 * i);
  r->p += bytes;
  return 0;
}

/* Copies a string into scratch (which has room reserved: no pointer moves) and NUL-ends it. */
static const char *get_str(reader *r, int wide, size_t max) {
  size_t n;
  if (get_uint(r, wide ? 4 : 2, &n) < 0) return NULL;
  if (n > max || (size_t)(r->end - r->p) < n) {
    r->why = n > max ? "string over its limit" : "truncated";
    return NULL;
  }
  if (memchr(r->p, 0, n)) {
    r->why = "NUL in a string";
    return NULL;
  }
  char *s = (char *)rt_buf_end(r->scratch);
  memcpy(s, r->p, n);
  s[n] = 0;
  r->scratch->len += n + 1;
  r->p += n;
  return s;
}

/* The "RH" epoch ":" offset "\n" prefix: its length (0 when there is none), or -1. */
static long history_prefix(const uint8_t *data, size_t len, rt_engine_msg *m, const char **why) {
  if (len < 2 || data[0] != 'R' || data[1] != 'H') return 0;
  size_t i = 2, e = 0;
  while (i < len && e <= RT_ENGINE_EPOCH_MAX &&
         ((data[i] >= '0' && data[i] <= '9') || (data[i] >= 'a' && data[i] <= 'f')))
    m->epoch[e++] = (char)data[i++];
  if (e == 0 || e > RT_ENGINE_EPOCH_MAX || i >= len || data[i] != ':') {
    *why = "bad epoch in the history prefix";
    return -1;
  }
  m->epoch[e] = 0;
  uint64_t off = 0;
  size_t digits = 0;
  for (i++; i < len && data[i] >= '0' && data[i] <= '9'; i++, digits++) {
    if (off > (UINT64_C(1) << 63) / 10) break;
    off = off * 10 + (uint64_t)(data[i] - '0');
  }
  if (digits == 0 || off == 0 || off > (UINT64_C(1) << 63) || i >= len || data[i] != '\n' ||
      (digits > 1 && data[i - digits] == '0')) {
    *why = "bad offset in the history prefix";
    return -1;
  }
  m->offset = off;
  return (long)(i + 1);
}

int rt_engine_msg_decode(const uint8_t *data, size_t len, rt_engine_msg *m, rt_buf *scratch,
                         char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  const char *why = NULL;
  long prefix = history_prefix(data, len, m, &why);
  if (prefix < 0) {
    snprintf(err, errlen, "malformed rtserver message: %s", why);
    return -1;
  }
  data += prefix;
  len -= (size_t)prefix;
  scratch->len = scratch->off = 0;
  /* Every string fits in the input plus one NUL each (at most 3 + 2 * headers). */
  if (rt_buf_reserve(scratch, len + 3 + 2 * RT_ENGINE_MAX_HEADERS) < 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  reader r = {data, data + len, scratch, NULL};
  size_t flags, nh, body_len;
  if (len < 12 || data[0] != 'R' || data[1] != 'T' || data[2] != 1) {
    snprintf(err, errlen, "not an rtserver message (bad magic or version)");
    return -1;
  }
  flags = data[3];
  for (int i = 0; i < 8; i++) m->origin |= (uint64_t)data[4 + i] << (8 * i);
  r.p += 12;
  if (flags & ~(size_t)(F_BINARY | F_STOMP_DEST | F_CTYPE)) {
    snprintf(err, errlen, "unknown flags 0x%zx", flags);
    return -1;
  }
  m->binary = (flags & F_BINARY) != 0;
  if (!(m->name = get_str(&r, 0, RT_ENGINE_MAX_NAME)) || !m->name[0]) goto bad;
  if ((flags & F_STOMP_DEST) && !(m->stomp_destination = get_str(&r, 0, RT_ENGINE_MAX_NAME))) goto bad;
  if ((flags & F_CTYPE) && !(m->content_type = get_str(&r, 0, RT_ENGINE_MAX_NAME))) goto bad;
  if (get_uint(&r, 2, &nh) < 0) goto bad;
  if (nh > RT_ENGINE_MAX_HEADERS) {
    r.why = "too many headers";
    goto bad;
  }
  for (size_t i = 0; i < nh; i++) {
    const char *k = get_str(&r, 0, RT_ENGINE_MAX_NAME), *v = k ? get_str(&r, 1, RT_ENGINE_MAX_VALUE) : NULL;
    if (!v) goto bad;
    m->headers[i] = (rt_header){k, strlen(k), v, strlen(v)};
  }
  m->nheaders = nh;
  if (get_uint(&r, 4, &body_len) < 0) goto bad;
  if ((size_t)(r.end - r.p) != body_len) {
    r.why = "body length does not match";
    goto bad;
  }
  m->body = r.p;
  m->body_len = body_len;
  return 0;
bad:
  if (!r.why) r.why = "empty name";
  snprintf(err, errlen, "malformed rtserver message: %s", r.why);
  return -1;
}
