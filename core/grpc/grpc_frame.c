/* grpc_frame.c - gRPC Length-Prefixed-Message decoder/encoder and per-message compression. */
#include "grpc_frame.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Buffers bigger than this are given back between messages, so one large message does not
 * pin its memory for the life of the stream. */
#define DEC_KEEP (64u * 1024u)

static const uint8_t empty_msg[1];

/* ---- allocation ------------------------------------------------------------------------ */

static void *libc_fn(void *ud, void *p, size_t n) {
  (void)ud;
  if (n == 0) {
    free(p);
    return NULL;
  }
  return realloc(p, n);
}

static const rt_grpc_alloc libc_alloc = { libc_fn, NULL };

static const rt_grpc_alloc *alloc_or_libc(const rt_grpc_alloc *a) {
  return a && a->fn ? a : &libc_alloc;
}

void rt_grpc_free(const rt_grpc_alloc *a, void *p) {
  if (p) alloc_or_libc(a)->fn(alloc_or_libc(a)->ud, p, 0);
}

/* Grows *buf to hold want bytes: doubling, but never past limit (want <= limit). */
static int ensure(const rt_grpc_alloc *a, uint8_t **buf, size_t *cap, size_t want,
                  size_t limit) {
  if (want <= *cap) return 0;
  size_t nc = *cap ? *cap : 256;
  while (nc < want) nc = nc > SIZE_MAX / 2 ? SIZE_MAX : nc * 2;
  if (nc > limit) nc = limit;
  uint8_t *p = a->fn(a->ud, *buf, nc);
  if (!p) return RT_GRPC_ENOMEM;
  *buf = p;
  *cap = nc;
  return 0;
}

/* ---- zlib glue ------------------------------------------------------------------------- */

/* The z_stream lives on the heap with its allocator: zlib keeps a pointer back to the
 * stream, so the caller's decoder struct may move between calls but this may not. */
typedef struct rt_grpc_zctx {
  z_stream zs;
  rt_grpc_alloc alloc;
  int inflating; /* 1 inflate, 0 deflate */
} zctx;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  const rt_grpc_alloc *a = opaque;
  if (size && items > SIZE_MAX / size) return Z_NULL;
  return a->fn(a->ud, NULL, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p) {
  const rt_grpc_alloc *a = opaque;
  if (p) a->fn(a->ud, p, 0);
}

static int wbits(rt_grpc_enc enc) { return enc == RT_GRPC_ENC_GZIP ? MAX_WBITS + 16 : MAX_WBITS; }

static void set_err(char *err, size_t errlen, const char *fmt, const char *what) {
  if (err && errlen) snprintf(err, errlen, fmt, what ? what : "");
}

/* An inflater when level is ignored (inflating), else a deflater at level (-1: default). */
static zctx *zctx_new(const rt_grpc_alloc *a, rt_grpc_enc enc, int inflating, int level) {
  zctx *z = a->fn(a->ud, NULL, sizeof *z);
  if (!z) return NULL;
  memset(z, 0, sizeof *z);
  z->alloc = *a;
  z->zs.zalloc = z_alloc;
  z->zs.zfree = z_free;
  z->zs.opaque = &z->alloc;
  z->inflating = inflating;
  int r = inflating ? inflateInit2(&z->zs, wbits(enc))
                    : deflateInit2(&z->zs, level, Z_DEFLATED, wbits(enc), 8, Z_DEFAULT_STRATEGY);
  if (r != Z_OK) {
    a->fn(a->ud, z, 0);
    return NULL;
  }
  return z;
}

static void zctx_free(zctx *z) {
  if (!z) return;
  if (z->inflating) inflateEnd(&z->zs);
  else deflateEnd(&z->zs);
  z->alloc.fn(z->alloc.ud, z, 0);
}

/* Inflates in[0..len) into *buf (grown as needed), at most max bytes. The stream must be
 * freshly reset. Concatenated gzip members are joined; anything else after the end of the
 * stream is corrupt. */
static int z_inflate(zctx *z, rt_grpc_enc enc, const uint8_t *in, size_t len, size_t max,
                     uint8_t **buf, size_t *cap, size_t *outlen, char *err, size_t errlen) {
  z_stream *zs = &z->zs;
  size_t total = 0;
  if (len == 0 || len > UINT_MAX) {
    set_err(err, errlen, "%s", len ? "compressed message too large" : "empty compressed message");
    return len ? RT_GRPC_ETOOBIG : RT_GRPC_ECORRUPT;
  }
  zs->next_in = (Bytef *)(uintptr_t)in;
  zs->avail_in = (uInt)len;
  for (;;) {
    uint8_t probe;
    int at_limit = 0;
    if (total == *cap && *cap < max) {
      /* A guess from the input size saves a few reallocations on the first message. */
      size_t want = total + (total ? total : (len < max / 4 ? len * 4 : max));
      if (want > max || want < total) want = max;
      if (ensure(&z->alloc, buf, cap, want, max) < 0) {
        set_err(err, errlen, "%s", "out of memory decompressing a message");
        return RT_GRPC_ENOMEM;
      }
    }
    if (total == *cap) {
      /* Full at the limit: one more byte of output would be too much. */
      zs->next_out = &probe;
      zs->avail_out = 1;
      at_limit = 1;
    } else {
      size_t room = *cap - total;
      zs->next_out = *buf + total;
      zs->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    }
    uInt before = zs->avail_out;
    int r = inflate(zs, Z_NO_FLUSH);
    size_t got = before - zs->avail_out;
    if (at_limit && got) {
      set_err(err, errlen, "%s", "decompressed message larger than the limit");
      return RT_GRPC_ETOOBIG;
    }
    total += got;
    if (r == Z_STREAM_END) {
      if (zs->avail_in == 0) break;
      if (enc != RT_GRPC_ENC_GZIP || inflateReset(zs) != Z_OK) {
        set_err(err, errlen, "%s", "trailing bytes after compressed message");
        return RT_GRPC_ECORRUPT;
      }
      continue;
    }
    if (r == Z_OK || (r == Z_BUF_ERROR && zs->avail_in && zs->avail_out == 0)) continue;
    if (r == Z_MEM_ERROR) {
      set_err(err, errlen, "%s", "out of memory decompressing a message");
      return RT_GRPC_ENOMEM;
    }
    set_err(err, errlen, "compressed message is corrupt: %s",
            r == Z_BUF_ERROR ? "truncated" : zs->msg ? zs->msg : "bad data");
    return RT_GRPC_ECORRUPT;
  }
  *outlen = total;
  return 0;
}

static int z_reset_inflate(zctx **zp, const rt_grpc_alloc *a, rt_grpc_enc enc) {
  if (*zp) return inflateReset2(&(*zp)->zs, wbits(enc)) == Z_OK ? 0 : RT_GRPC_ENOMEM;
  *zp = zctx_new(a, enc, 1, 0);
  return *zp ? 0 : RT_GRPC_ENOMEM;
}

static int compressing(rt_grpc_enc enc) {
  return enc == RT_GRPC_ENC_GZIP || enc == RT_GRPC_ENC_DEFLATE;
}

/* ---- one-shot compression -------------------------------------------------------------- */

size_t rt_grpc_compress_bound(size_t len) {
  /* zlib's bound for any level (stored blocks included) plus the gzip wrapper, plus the
   * prefix so that one figure serves both functions. */
  size_t extra = ((len + 7) >> 3) + ((len + 63) >> 6) + 5 + 18 + RT_GRPC_PREFIX_LEN;
  return len > SIZE_MAX - extra ? SIZE_MAX : len + extra;
}

/* Deflates in into out; RT_GRPC_ESPACE if cap is not enough. */
static int z_deflate(rt_grpc_enc enc, int level, const void *in, size_t len, uint8_t *out,
                     size_t cap, size_t *outlen, const rt_grpc_alloc *a, char *err,
                     size_t errlen) {
  if (level < -1 || level > 9) {
    set_err(err, errlen, "%s", "compression level must be -1 or 0-9");
    return RT_GRPC_EINVAL;
  }
  if (len > UINT_MAX) {
    set_err(err, errlen, "%s", "message too large to compress");
    return RT_GRPC_ETOOBIG;
  }
  zctx *z = zctx_new(a, enc, 0, level);
  if (!z) {
    set_err(err, errlen, "%s", "out of memory starting compression");
    return RT_GRPC_ENOMEM;
  }
  z->zs.next_in = (Bytef *)(uintptr_t)in;
  z->zs.avail_in = (uInt)len;
  z->zs.next_out = out;
  z->zs.avail_out = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
  int r = deflate(&z->zs, Z_FINISH);
  size_t n = (size_t)z->zs.total_out;
  zctx_free(z);
  if (r != Z_STREAM_END) {
    set_err(err, errlen, "%s", r == Z_MEM_ERROR ? "out of memory compressing" : "no room for the compressed message");
    return r == Z_MEM_ERROR ? RT_GRPC_ENOMEM : RT_GRPC_ESPACE;
  }
  *outlen = n;
  return 0;
}

int rt_grpc_compress(rt_grpc_enc enc, int level, const void *in, size_t len, uint8_t *out,
                     size_t cap, size_t *outlen, const rt_grpc_alloc *a, char *err,
                     size_t errlen) {
  if (enc == RT_GRPC_ENC_IDENTITY) {
    if (cap < len) {
      set_err(err, errlen, "%s", "no room for the message");
      return RT_GRPC_ESPACE;
    }
    if (len) memcpy(out, in, len);
    *outlen = len;
    return 0;
  }
  if (!compressing(enc)) {
    set_err(err, errlen, "%s", "not a compression we can apply");
    return RT_GRPC_EINVAL;
  }
  return z_deflate(enc, level, in, len, out, cap, outlen, alloc_or_libc(a), err, errlen);
}

int rt_grpc_decompress(rt_grpc_enc enc, const void *in, size_t len, size_t max_out,
                       uint8_t **out, size_t *outlen, const rt_grpc_alloc *a, char *err,
                       size_t errlen) {
  a = alloc_or_libc(a);
  *out = NULL;
  *outlen = 0;
  if (enc == RT_GRPC_ENC_IDENTITY) {
    if (len > max_out) {
      set_err(err, errlen, "%s", "message larger than the limit");
      return RT_GRPC_ETOOBIG;
    }
    *out = a->fn(a->ud, NULL, len ? len : 1);
    if (!*out) return RT_GRPC_ENOMEM;
    if (len) memcpy(*out, in, len);
    *outlen = len;
    return 0;
  }
  if (!compressing(enc)) {
    set_err(err, errlen, "%s", "not a compression we can undo");
    return RT_GRPC_EENCODING;
  }
  zctx *z = zctx_new(a, enc, 1, 0);
  if (!z) {
    set_err(err, errlen, "%s", "out of memory starting decompression");
    return RT_GRPC_ENOMEM;
  }
  uint8_t *buf = NULL;
  size_t cap = 0;
  int rc = z_inflate(z, enc, in, len, max_out, &buf, &cap, outlen, err, errlen);
  zctx_free(z);
  if (rc < 0) {
    rt_grpc_free(a, buf);
    *outlen = 0;
    return rc;
  }
  if (!buf) buf = a->fn(a->ud, NULL, 1); /* an empty result is still a buffer to free */
  if (!buf) return RT_GRPC_ENOMEM;
  *out = buf;
  return 0;
}

/* ---- encoder --------------------------------------------------------------------------- */

int rt_grpc_frame_prefix(uint8_t out[RT_GRPC_PREFIX_LEN], int compressed, size_t len) {
  if (len > RT_GRPC_MAX_MSG_LIMIT) return RT_GRPC_EINVAL;
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
  return 0;
}

int rt_grpc_frame_encode(uint8_t *out, size_t cap, int compressed, const void *payload,
                         size_t len, size_t *outlen) {
  if (len > RT_GRPC_MAX_MSG_LIMIT) return RT_GRPC_EINVAL;
  if (cap < RT_GRPC_PREFIX_LEN || cap - RT_GRPC_PREFIX_LEN < len) return RT_GRPC_ESPACE;
  rt_grpc_frame_prefix(out, compressed, len);
  if (len) memcpy(out + RT_GRPC_PREFIX_LEN, payload, len);
  *outlen = RT_GRPC_PREFIX_LEN + len;
  return 0;
}

int rt_grpc_frame_encode_msg(rt_grpc_enc enc, int level, const void *payload, size_t len,
                             uint8_t *out, size_t cap, size_t *outlen,
                             const rt_grpc_alloc *a, char *err, size_t errlen) {
  if (len > RT_GRPC_MAX_MSG_LIMIT) {
    set_err(err, errlen, "%s", "message too large for gRPC framing");
    return RT_GRPC_EINVAL;
  }
  if (cap < RT_GRPC_PREFIX_LEN || cap - RT_GRPC_PREFIX_LEN < len) {
    set_err(err, errlen, "%s", "no room for the message");
    return RT_GRPC_ESPACE;
  }
  if (compressing(enc) && len > 0) {
    /* Room for len - 1 bytes only: if it does not shrink, send it plain. */
    size_t n;
    int rc = z_deflate(enc, level, payload, len, out + RT_GRPC_PREFIX_LEN, len - 1, &n,
                       alloc_or_libc(a), err, errlen);
    if (rc == 0) {
      rt_grpc_frame_prefix(out, 1, n);
      *outlen = RT_GRPC_PREFIX_LEN + n;
      return 0;
    }
    if (rc != RT_GRPC_ESPACE) return rc;
  }
  return rt_grpc_frame_encode(out, cap, 0, payload, len, outlen);
}

int rt_grpc_check_flag(int flag, rt_grpc_enc enc) {
  if (flag != 0 && flag != 1) return RT_GRPC_EFLAG;
  if (flag == 1 && !compressing(enc)) return RT_GRPC_EENCODING;
  return 0;
}

/* ---- decoder --------------------------------------------------------------------------- */

void rt_grpc_dec_init(rt_grpc_dec *d, size_t max_msg, const rt_grpc_alloc *a) {
  memset(d, 0, sizeof *d);
  d->max_msg = max_msg ? max_msg : RT_GRPC_DEFAULT_MAX_MSG;
  if (d->max_msg > RT_GRPC_MAX_MSG_LIMIT) d->max_msg = RT_GRPC_MAX_MSG_LIMIT;
  d->alloc = *alloc_or_libc(a);
  d->enc = RT_GRPC_ENC_NONE;
  d->inflate = 1;
}

void rt_grpc_dec_free(rt_grpc_dec *d) {
  rt_grpc_free(&d->alloc, d->buf);
  rt_grpc_free(&d->alloc, d->out);
  zctx_free(d->zs);
  d->buf = d->out = NULL;
  d->zs = NULL;
  d->cap = d->outcap = 0;
  d->hdr_have = d->have = d->need = 0;
}

void rt_grpc_dec_set_encoding(rt_grpc_dec *d, rt_grpc_enc enc, int inflate_on) {
  d->enc = enc;
  d->inflate = inflate_on;
}

const char *rt_grpc_dec_error(const rt_grpc_dec *d) { return d->err; }

size_t rt_grpc_dec_buffered(const rt_grpc_dec *d) { return d->hdr_have + d->have; }

static int dec_fail(rt_grpc_dec *d, int rc) {
  d->rc = rc;
  if (!d->err[0]) snprintf(d->err, sizeof d->err, "%s", rt_grpc_strerror(rc));
  return rc;
}

/* Reads the prefix once it is whole; checks the flag and the length. */
static int dec_header(rt_grpc_dec *d) {
  const uint8_t *h = d->hdr;
  uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
  int rc = rt_grpc_check_flag(h[0], d->enc);
  if (rc == RT_GRPC_EFLAG) {
    snprintf(d->err, sizeof d->err, "invalid compressed-flag byte 0x%02x", h[0]);
    return dec_fail(d, rc);
  }
  if (rc < 0) {
    const char *name = rt_grpc_enc_name(d->enc);
    snprintf(d->err, sizeof d->err, "compressed message but grpc-encoding is %s",
             name ? name : d->enc == RT_GRPC_ENC_NONE ? "absent" : "unknown");
    return dec_fail(d, rc);
  }
  if (n > d->max_msg) {
    snprintf(d->err, sizeof d->err, "message of %lu bytes exceeds the limit of %lu bytes",
             (unsigned long)n, (unsigned long)d->max_msg);
    return dec_fail(d, RT_GRPC_ETOOBIG);
  }
  d->need = n;
  d->have = 0;
  return 0;
}

static void dec_trim(rt_grpc_dec *d) {
  if (d->cap > DEC_KEEP) {
    rt_grpc_free(&d->alloc, d->buf);
    d->buf = NULL;
    d->cap = 0;
  }
  if (d->outcap > DEC_KEEP) {
    rt_grpc_free(&d->alloc, d->out);
    d->out = NULL;
    d->outcap = 0;
  }
}

int rt_grpc_dec_feed(rt_grpc_dec *d, const uint8_t *data, size_t len, size_t *used,
                     rt_grpc_msg *msg) {
  size_t off = 0;
  *used = 0;
  if (d->rc) return d->rc;
  if (d->hdr_have < RT_GRPC_PREFIX_LEN) {
    if (d->hdr_have == 0) dec_trim(d); /* the last message handed out is done with */
    size_t n = RT_GRPC_PREFIX_LEN - d->hdr_have;
    if (n > len) n = len;
    if (n) memcpy(d->hdr + d->hdr_have, data, n);
    d->hdr_have += n;
    off = n;
    if (d->hdr_have < RT_GRPC_PREFIX_LEN) {
      *used = off;
      return RT_GRPC_NEED_MORE;
    }
    int rc = dec_header(d);
    if (rc < 0) {
      *used = off;
      return rc;
    }
  }
  const uint8_t *payload;
  if (d->have == 0 && len - off >= d->need) {
    payload = d->need ? data + off : empty_msg; /* whole in this slice: no copy */
    off += d->need;
  } else {
    size_t n = d->need - d->have;
    if (n > len - off) n = len - off;
    if (ensure(&d->alloc, &d->buf, &d->cap, d->have + n, d->need) < 0) {
      *used = off;
      snprintf(d->err, sizeof d->err, "out of memory buffering a %lu-byte message",
               (unsigned long)d->need);
      return dec_fail(d, RT_GRPC_ENOMEM);
    }
    if (n) memcpy(d->buf + d->have, data + off, n);
    d->have += n;
    off += n;
    if (d->have < d->need) {
      *used = off;
      return RT_GRPC_NEED_MORE;
    }
    payload = d->buf;
  }
  *used = off;
  d->hdr_have = 0;
  d->have = 0;
  msg->compressed = d->hdr[0];
  msg->data = payload;
  msg->len = d->need;
  if (msg->compressed && d->inflate) {
    int rc = z_reset_inflate(&d->zs, &d->alloc, d->enc);
    size_t n = 0;
    if (rc == 0)
      rc = z_inflate(d->zs, d->enc, payload, d->need, d->max_msg, &d->out, &d->outcap, &n,
                     d->err, sizeof d->err);
    else snprintf(d->err, sizeof d->err, "out of memory starting decompression");
    if (rc < 0) return dec_fail(d, rc);
    msg->data = n ? d->out : empty_msg;
    msg->len = n;
  }
  return RT_GRPC_MSG;
}

int rt_grpc_dec_finish(rt_grpc_dec *d) {
  if (d->rc) return d->rc;
  if (d->hdr_have == 0) return 0;
  snprintf(d->err, sizeof d->err, "stream ended inside a message (%lu of %lu bytes)",
           (unsigned long)(d->hdr_have < RT_GRPC_PREFIX_LEN ? d->hdr_have : RT_GRPC_PREFIX_LEN + d->have),
           (unsigned long)(d->hdr_have < RT_GRPC_PREFIX_LEN ? RT_GRPC_PREFIX_LEN : RT_GRPC_PREFIX_LEN + d->need));
  return dec_fail(d, RT_GRPC_ETRUNCATED);
}
