#include "ws_deflate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ws_frame.h"

/* ---- negotiation ----------------------------------------------------------------------- */

/* An offer's parameters as the client wrote them (-1: absent). */
typedef struct offer {
  int server_no_takeover, client_no_takeover;
  int server_bits;   /* server_max_window_bits=N */
  int client_bits;   /* client_max_window_bits[=N]: 0 without a value */
  int bad;           /* unknown or duplicate parameter, or a value out of range */
} offer;

static int is_tchar(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

/* A token at p into out (truncated to outlen - 1); returns the end, or NULL if none. */
static const char *read_token(const char *p, char *out, size_t outlen) {
  size_t n = 0;
  while (is_tchar(*p)) {
    if (n + 1 < outlen) out[n++] = *p;
    p++;
  }
  out[n] = 0;
  return n ? p : NULL;
}

/* A token or quoted-string value (RFC 7692 allows both for the window sizes). */
static const char *read_value(const char *p, char *out, size_t outlen) {
  if (*p != '"') return read_token(p, out, outlen);
  size_t n = 0;
  for (p++; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) p++;
    if (n + 1 < outlen) out[n++] = *p;
  }
  out[n] = 0;
  return *p == '"' ? p + 1 : NULL;
}

/* 8..15, decimal, no leading zero (RFC 7692 7.1.2); -1 otherwise. */
static int window_bits(const char *v) {
  if (v[0] == '8' || v[0] == '9') return v[1] ? -1 : v[0] - '0';
  if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && !v[2]) return 10 + v[1] - '0';
  return -1;
}

static void offer_param(offer *o, const char *name, const char *value, int has_value) {
  int *slot = NULL;
  if (strcmp(name, "server_no_context_takeover") == 0) slot = &o->server_no_takeover;
  else if (strcmp(name, "client_no_context_takeover") == 0) slot = &o->client_no_takeover;
  else if (strcmp(name, "server_max_window_bits") == 0) slot = &o->server_bits;
  else if (strcmp(name, "client_max_window_bits") == 0) slot = &o->client_bits;
  if (!slot || *slot != -1) {
    o->bad = 1;
    return;
  }
  if (slot == &o->server_no_takeover || slot == &o->client_no_takeover) {
    if (has_value) o->bad = 1;
    *slot = 1;
  } else if (slot == &o->client_bits && !has_value) {
    *slot = 0;
  } else {
    *slot = has_value ? window_bits(value) : -1;
    if (*slot < 0) o->bad = 1;
  }
}

/* Can we take this offer? Fills p and the response line. */
static int accept_offer(const offer *o, int takeover, rt_ws_deflate_params *p, char *resp,
                        size_t resplen) {
  /* zlib cannot make a raw deflate stream with a 256-byte window: decline, the client
   * may have offered something else. */
  if (o->bad || o->server_bits == 8) return 0;
  memset(p, 0, sizeof *p);
  p->on = 1;
  p->server_no_takeover = !takeover || o->server_no_takeover == 1;
  p->client_no_takeover = !takeover || o->client_no_takeover == 1;
  p->server_bits = o->server_bits > 0 ? (uint8_t)o->server_bits : 15;
  p->client_bits = 15;  /* we never ask the client for a smaller window */
  char bits[40] = "";
  if (o->server_bits > 0) snprintf(bits, sizeof bits, "; server_max_window_bits=%d", o->server_bits);
  int n = snprintf(resp, resplen, "permessage-deflate%s%s%s",
                   p->server_no_takeover ? "; server_no_context_takeover" : "",
                   p->client_no_takeover ? "; client_no_context_takeover" : "", bits);
  return n > 0 && (size_t)n < resplen;
}

/* Parses one header value; returns 1 when an offer was accepted, 0 when none in it was,
 * -1 when the value is malformed (the whole negotiation is then declined). */
static int scan_value(const char *p, int takeover, rt_ws_deflate_params *out, char *resp,
                      size_t resplen) {
  char name[64], pname[64], value[64];
  for (;;) {
    p = skip_ws(p);
    if (*p == ',') {  /* empty list elements are allowed (RFC 7230 7) */
      p++;
      continue;
    }
    if (!*p) return 0;
    if (!(p = read_token(p, name, sizeof name))) return -1;
    offer o = {-1, -1, -1, -1, 0};
    int ours = strcasecmp(name, "permessage-deflate") == 0;
    for (p = skip_ws(p); *p == ';'; p = skip_ws(p)) {
      p = skip_ws(p + 1);
      if (!(p = read_token(p, pname, sizeof pname))) return -1;
      p = skip_ws(p);
      int has_value = *p == '=';
      value[0] = 0;
      if (has_value && !(p = read_value(skip_ws(p + 1), value, sizeof value))) return -1;
      if (ours) offer_param(&o, pname, value, has_value);
    }
    if (*p && *p != ',') return -1;
    if (ours && accept_offer(&o, takeover, out, resp, resplen)) return 1;
  }
}

int rt_ws_deflate_negotiate(const char *const *values, int nvalues, int takeover,
                            rt_ws_deflate_params *out, char *resp, size_t resplen) {
  memset(out, 0, sizeof *out);
  if (resplen) resp[0] = 0;
  for (int i = 0; i < nvalues; i++) {
    int rc = scan_value(values[i], takeover, out, resp, resplen);
    if (rc == 1) return 1;
    if (rc < 0) break;
  }
  memset(out, 0, sizeof *out);
  if (resplen) resp[0] = 0;
  return 0;
}

size_t rt_ws_deflate_takeover_cost(const rt_ws_deflate_params *p) {
  size_t n = 0;
  /* zlib's own figures (zconf.h): deflate (1 << (wbits + 2)) + (1 << (memLevel + 9)),
   * inflate 1 << wbits, each plus its state structure (~6 and ~7 KiB). */
  if (p->on && !p->server_no_takeover) n += ((size_t)1 << (p->server_bits + 2)) + (1 << 17) + 6144;
  if (p->on && !p->client_no_takeover) n += ((size_t)1 << p->client_bits) + 7168;
  return n;
}

/* ---- compression ----------------------------------------------------------------------- */

int rt_ws_deflater_init(rt_ws_deflater *d, int window_bits) {
  memset(d, 0, sizeof *d);
  if (deflateInit2(&d->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  d->ready = 1;
  return 0;
}

void rt_ws_deflater_end(rt_ws_deflater *d) {
  if (d->ready) deflateEnd(&d->z);
  d->ready = 0;
}

/* Runs deflate with flush until it has taken all input and has nothing more to say. */
static int run_deflate(rt_ws_deflater *d, int flush, rt_buf *out) {
  for (;;) {
    size_t room = deflateBound(&d->z, d->z.avail_in) + 16;
    if (rt_buf_reserve(out, room) < 0) return -1;
    d->z.next_out = rt_buf_end(out);
    d->z.avail_out = (uInt)(out->cap - out->off - out->len);
    uInt before = d->z.avail_out;
    int rc = deflate(&d->z, flush);
    out->len += before - d->z.avail_out;
    if (rc == Z_STREAM_ERROR) return -1;
    /* Done when zlib left room unused: it has nothing more for this flush. */
    if (d->z.avail_in == 0 && d->z.avail_out > 0) return 0;
  }
}

int rt_ws_deflate_part(rt_ws_deflater *d, const void *data, size_t len, rt_buf *out) {
  const uint8_t *p = data;
  while (len) {
    uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
    d->z.next_in = (Bytef *)p;
    d->z.avail_in = n;
    if (run_deflate(d, Z_NO_FLUSH, out) < 0) return -1;
    p += n;
    len -= n;
  }
  return 0;
}

int rt_ws_deflate_finish(rt_ws_deflater *d, int reset, rt_buf *out) {
  d->z.next_in = NULL;
  d->z.avail_in = 0;
  int rc = run_deflate(d, Z_SYNC_FLUSH, out);
  /* A sync flush ends with an empty stored block, 00 00 ff ff: the receiver adds it back. */
  if (rc == 0 && out->len >= 4 && memcmp(rt_buf_end(out) - 4, "\0\0\xff\xff", 4) == 0)
    out->len -= 4;
  if (reset || rc < 0) deflateReset(&d->z);
  return rc;
}

rt_chunk *rt_ws_deflate_frame(rt_ws_deflater *d, int reset, int opcode, const rt_ws_part *parts,
                              int n, rt_buf *scratch) {
  rt_buf_consume(scratch, scratch->len);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) rc = rt_ws_deflate_part(d, parts[i].data, parts[i].len, scratch);
  if (rc == 0) rc = rt_ws_deflate_finish(d, reset, scratch);
  else deflateReset(&d->z);
  rt_chunk *f = NULL;
  if (rc == 0) {
    uint8_t hdr[10];
    size_t hl = rt_ws_frame_header(hdr, opcode, scratch->len);
    hdr[0] |= 0x40;  /* RSV1: this message is compressed */
    if ((f = rt_chunk_new(hl + scratch->len))) {
      memcpy(f->data, hdr, hl);
      memcpy(f->data + hl, rt_buf_start(scratch), scratch->len);
    }
  }
  rt_buf_consume(scratch, scratch->len);
  return f;
}

/* ---- decompression --------------------------------------------------------------------- */

int rt_ws_inflater_init(rt_ws_inflater *f, int window_bits) {
  memset(f, 0, sizeof *f);
  if (inflateInit2(&f->z, -window_bits) != Z_OK) return -1;
  f->ready = 1;
  return 0;
}

void rt_ws_inflater_end(rt_ws_inflater *f) {
  if (f->ready) inflateEnd(&f->z);
  f->ready = 0;
}

/* Inflates in onto out, never past max + 1 bytes of output in all. */
static int inflate_some(rt_ws_inflater *f, const uint8_t *in, size_t len, size_t start, size_t max,
                        rt_buf *out) {
  f->z.next_in = (Bytef *)in;
  f->z.avail_in = (uInt)len;
  for (;;) {
    size_t made = out->len - start;
    if (made > max) return RT_WS_INFLATE_TOO_BIG;
    /* Grow with what came out so far: a bomb's buffer doubles, it is not resized per 4 KiB. */
    size_t want = len * 4 + 256;
    if (want < 4096) want = 4096;
    if (want < made) want = made;
    if (want > max + 1 - made) want = max + 1 - made;
    if (want > (1u << 30)) want = 1u << 30;
    if (rt_buf_reserve(out, want) < 0) return RT_WS_INFLATE_NOMEM;
    f->z.next_out = rt_buf_end(out);
    f->z.avail_out = (uInt)want;
    uInt in_before = f->z.avail_in;
    int rc = inflate(&f->z, Z_SYNC_FLUSH);
    out->len += want - f->z.avail_out;
    if (out->len - start > max) return RT_WS_INFLATE_TOO_BIG;
    if (rc == Z_STREAM_END) {
      /* A final block: whatever follows must be the tail we appended. */
      inflateReset(&f->z);
      return RT_WS_INFLATE_OK;
    }
    if (rc == Z_MEM_ERROR) return RT_WS_INFLATE_NOMEM;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return RT_WS_INFLATE_CORRUPT;
    /* All input taken and room left over: zlib has nothing more to give for now. */
    if (f->z.avail_in == 0 && f->z.avail_out > 0) return RT_WS_INFLATE_OK;
    /* Room on both sides and nothing moved: zlib is stuck on this input. */
    if (f->z.avail_out > 0 && f->z.avail_in == in_before) return RT_WS_INFLATE_CORRUPT;
  }
}

int rt_ws_inflate_msg(rt_ws_inflater *f, const uint8_t *in, size_t len, size_t max, int reset,
                      rt_buf *out) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  size_t start = out->len;
  int rc = RT_WS_INFLATE_OK;
  while (len && rc == RT_WS_INFLATE_OK) {
    size_t n = len > (1u << 30) ? (1u << 30) : len;
    rc = inflate_some(f, in, n, start, max, out);
    in += n;
    len -= n;
  }
  if (rc == RT_WS_INFLATE_OK) rc = inflate_some(f, tail, sizeof tail, start, max, out);
  if (reset || rc != RT_WS_INFLATE_OK) inflateReset(&f->z);
  return rc;
}
