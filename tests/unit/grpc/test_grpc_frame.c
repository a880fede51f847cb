/* Unit tests for gRPC message framing and compression (core/grpc_frame.c).
 *
 * Interop: gzip bytes are made at test time by the `gzip` command (popen), and what we
 * compress is checked by `gzip -dc`; zlib-wrapped "deflate" is checked against Python's
 * zlib module. The tests that need those tools fail (not skip) if the tools are missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc/grpc_frame.h"

/* ---- a counting allocator that can fail ------------------------------------------------ */

typedef struct counting {
  size_t live, peak, calls;
  long fail_at; /* the allocation (1-based, grows included) that fails; 0 = never */
} counting;

static void *counting_fn(void *ud, void *p, size_t n) {
  counting *c = ud;
  size_t *h = p ? (size_t *)p - 2 : NULL;
  if (n == 0) {
    if (h) {
      c->live -= h[0];
      free(h);
    }
    return NULL;
  }
  if (c->fail_at && (long)++c->calls == c->fail_at) return NULL;
  size_t old = h ? h[0] : 0;
  size_t *nh = realloc(h, n + 2 * sizeof(size_t));
  if (!nh) return NULL;
  nh[0] = n;
  c->live = c->live - old + n;
  if (c->live > c->peak) c->peak = c->live;
  return nh + 2;
}

/* ---- helpers --------------------------------------------------------------------------- */

/* Appends one framed message to a stream buffer. */
static size_t put_msg(uint8_t *s, size_t off, int flag, const uint8_t *p, size_t n) {
  size_t w;
  assert_int_equal(rt_grpc_frame_encode(s + off, SIZE_MAX - off, flag, p, n, &w), 0);
  return off + w;
}

typedef struct seen {
  size_t count;
  size_t lens[64];
  int flags[64];
  uint8_t bytes[1 << 17]; /* every payload, concatenated */
  size_t total;
} seen;

/* Feeds data[0..len) as slices of at most `slice` bytes (0 = one slice). Returns the last
 * feed result (NEED_MORE or an error). */
static int feed(rt_grpc_dec *d, const uint8_t *data, size_t len, size_t slice, seen *sn) {
  size_t pos = 0;
  if (slice == 0) slice = len ? len : 1;
  int rc = RT_GRPC_NEED_MORE;
  while (pos < len) {
    size_t n = len - pos < slice ? len - pos : slice, off = 0;
    for (;;) {
      size_t used = 999999;
      rt_grpc_msg m;
      rc = rt_grpc_dec_feed(d, data + pos + off, n - off, &used, &m);
      assert_true(used <= n - off);
      off += used;
      if (rc == RT_GRPC_MSG) {
        assert_non_null(m.data);
        assert_true(sn->count < 64 && sn->total + m.len <= sizeof sn->bytes);
        sn->lens[sn->count] = m.len;
        sn->flags[sn->count++] = m.compressed;
        if (m.len) memcpy(sn->bytes + sn->total, m.data, m.len);
        sn->total += m.len;
        continue;
      }
      if (rc < 0) return rc;
      assert_int_equal(off, n); /* NEED_MORE means all taken */
      break;
    }
    pos += n;
  }
  return rc;
}

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n ? n : 1);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    p[i] = (uint8_t)x;
  }
  return p;
}

/* Runs a shell command with `in` on stdin (through a temp file); returns its stdout. */
static uint8_t *run_tool(const char *cmd, const uint8_t *in, size_t len, size_t *outlen) {
  char path[] = "/tmp/test_grpc_frame_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, in, len), (ssize_t)len);
  close(fd);
  char full[512];
  snprintf(full, sizeof full, "%s < %s", cmd, path);
  FILE *p = popen(full, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0, r;
  uint8_t *out = malloc(cap);
  while ((r = fread(out + n, 1, cap - n, p)) > 0) {
    n += r;
    if (n == cap) out = realloc(out, cap *= 2);
  }
  assert_int_equal(pclose(p), 0);
  unlink(path);
  *outlen = n;
  return out;
}

/* ---- encoder --------------------------------------------------------------------------- */

static void test_prefix_and_encode(void **state) {
  uint8_t out[16];
  assert_int_equal(rt_grpc_frame_prefix(out, 1, 0x01020304), 0);
  assert_memory_equal(out, "\x01\x01\x02\x03\x04", 5);
  assert_int_equal(rt_grpc_frame_prefix(out, 0, 0xffffffffu), 0);
  assert_memory_equal(out, "\x00\xff\xff\xff\xff", 5);
  assert_int_equal(rt_grpc_frame_prefix(out, 0, (size_t)0xffffffffu + 1), RT_GRPC_EINVAL);
  size_t n;
  assert_int_equal(rt_grpc_frame_encode(out, sizeof out, 0, "abc", 3, &n), 0);
  assert_int_equal(n, 8);
  assert_memory_equal(out, "\x00\x00\x00\x00\x03" "abc", 8);
  assert_int_equal(rt_grpc_frame_encode(out, 7, 0, "abc", 3, &n), RT_GRPC_ESPACE);
  assert_int_equal(rt_grpc_frame_encode(out, 4, 0, "", 0, &n), RT_GRPC_ESPACE);
  assert_int_equal(rt_grpc_frame_encode(out, 5, 0, NULL, 0, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(out, "\0\0\0\0\0", 5);
}

/* ---- decoder: splitting ---------------------------------------------------------------- */

static const size_t split_sizes[] = { 0, 1, 4, 5, 6, 300, 1000, 0, 70000 };
#define NSPLIT (sizeof split_sizes / sizeof split_sizes[0])

/* Builds a stream of messages of split_sizes; returns its length. */
static size_t build_stream(uint8_t *s, uint8_t **payloads) {
  size_t off = 0;
  for (size_t i = 0; i < NSPLIT; i++) {
    payloads[i] = pattern(split_sizes[i], (unsigned)i + 1);
    off = put_msg(s, off, 0, payloads[i], split_sizes[i]);
  }
  return off;
}

static void check_stream(const seen *sn, uint8_t **payloads) {
  assert_int_equal(sn->count, NSPLIT);
  size_t at = 0;
  for (size_t i = 0; i < NSPLIT; i++) {
    assert_int_equal(sn->lens[i], split_sizes[i]);
    assert_int_equal(sn->flags[i], 0);
    if (split_sizes[i]) assert_memory_equal(sn->bytes + at, payloads[i], split_sizes[i]);
    at += split_sizes[i];
  }
}

static void test_split_everywhere(void **state) {
  static uint8_t s[80000];
  static seen sn;
  uint8_t *payloads[NSPLIT];
  size_t len = build_stream(s, payloads);
  /* Two slices cut at every byte of the first ~1400 bytes (all the small messages and
   * their prefixes), then at every 97th byte through the big one. */
  for (size_t cut = 0; cut <= len; cut += cut < 1400 ? 1 : 97) {
    rt_grpc_dec d;
    rt_grpc_dec_init(&d, 0, NULL);
    memset(&sn, 0, offsetof(seen, bytes));
    sn.total = 0;
    assert_int_equal(feed(&d, s, cut, 0, &sn), RT_GRPC_NEED_MORE);
    assert_int_equal(feed(&d, s + cut, len - cut, 0, &sn), RT_GRPC_NEED_MORE);
    check_stream(&sn, payloads);
    assert_int_equal(rt_grpc_dec_finish(&d), 0);
    assert_int_equal(rt_grpc_dec_buffered(&d), 0);
    rt_grpc_dec_free(&d);
  }
  /* Slices of 1, 2, 3, 7, 4096 bytes: many DATA frames per message. */
  size_t slices[] = { 1, 2, 3, 7, 4096 };
  for (size_t k = 0; k < 5; k++) {
    rt_grpc_dec d;
    rt_grpc_dec_init(&d, 0, NULL);
    memset(&sn, 0, offsetof(seen, bytes));
    sn.total = 0;
    assert_int_equal(feed(&d, s, len, slices[k], &sn), RT_GRPC_NEED_MORE);
    check_stream(&sn, payloads);
    assert_int_equal(rt_grpc_dec_finish(&d), 0);
    rt_grpc_dec_free(&d);
  }
  for (size_t i = 0; i < NSPLIT; i++) free(payloads[i]);
}

static void test_many_in_one_slice_zero_copy(void **state) {
  uint8_t s[60 * 16];
  size_t off = 0;
  for (int i = 0; i < 60; i++) {
    uint8_t p[8];
    memset(p, i, sizeof p);
    off = put_msg(s, off, 0, p, (size_t)(i % 9));
  }
  rt_grpc_dec d;
  rt_grpc_dec_init(&d, 0, NULL);
  size_t pos = 0, used;
  rt_grpc_msg m;
  for (int i = 0; i < 60; i++) {
    assert_int_equal(rt_grpc_dec_feed(&d, s + pos, off - pos, &used, &m), RT_GRPC_MSG);
    pos += used;
    assert_int_equal(m.len, (size_t)(i % 9));
    assert_non_null(m.data);
    if (m.len) {
      /* whole in the slice: handed out in place, right after its prefix */
      assert_ptr_equal(m.data, s + pos - m.len);
      for (size_t k = 0; k < m.len; k++) assert_int_equal(m.data[k], i);
    }
  }
  assert_int_equal(pos, off);
  assert_int_equal(rt_grpc_dec_feed(&d, s + pos, 0, &used, &m), RT_GRPC_NEED_MORE);
  assert_int_equal(used, 0);
  assert_int_equal(rt_grpc_dec_feed(&d, NULL, 0, &used, &m), RT_GRPC_NEED_MORE);
  assert_int_equal(rt_grpc_dec_finish(&d), 0);
  rt_grpc_dec_free(&d);
}

static void test_empty_message(void **state) {
  const uint8_t s[] = { 0, 0, 0, 0, 0 };
  rt_grpc_dec d;
  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_msg m;
  size_t used;
  /* byte by byte: nothing until the fifth byte, then an empty message */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(rt_grpc_dec_feed(&d, s + i, 1, &used, &m), RT_GRPC_NEED_MORE);
    assert_int_equal(used, 1);
    assert_int_equal(rt_grpc_dec_buffered(&d), (size_t)i + 1);
  }
  assert_int_equal(rt_grpc_dec_feed(&d, s + 4, 1, &used, &m), RT_GRPC_MSG);
  assert_int_equal(m.len, 0);
  assert_non_null(m.data);
  assert_int_equal(m.compressed, 0);
  assert_int_equal(rt_grpc_dec_finish(&d), 0);
  rt_grpc_dec_free(&d);
}

static void test_truncated(void **state) {
  uint8_t s[32];
  size_t len = put_msg(s, 0, 0, (const uint8_t *)"hello", 5);
  for (size_t cut = 1; cut < len; cut++) {
    rt_grpc_dec d;
    seen sn = { 0 };
    rt_grpc_dec_init(&d, 0, NULL);
    assert_int_equal(feed(&d, s, cut, 0, &sn), RT_GRPC_NEED_MORE);
    assert_int_equal(sn.count, 0);
    assert_int_equal(rt_grpc_dec_buffered(&d), cut);
    assert_int_equal(rt_grpc_dec_finish(&d), RT_GRPC_ETRUNCATED);
    assert_non_null(strstr(rt_grpc_dec_error(&d), "ended inside"));
    /* sticky */
    size_t used;
    rt_grpc_msg m;
    assert_int_equal(rt_grpc_dec_feed(&d, s + cut, len - cut, &used, &m), RT_GRPC_ETRUNCATED);
    assert_int_equal(used, 0);
    rt_grpc_dec_free(&d);
  }
}

static void test_max_size(void **state) {
  static uint8_t s[512];
  uint8_t *p = pattern(101, 9);
  rt_grpc_dec d;
  seen sn = { 0 };
  size_t used;
  rt_grpc_msg m;

  /* exactly the limit: fine */
  rt_grpc_dec_init(&d, 100, NULL);
  size_t len = put_msg(s, 0, 0, p, 100);
  assert_int_equal(feed(&d, s, len, 3, &sn), RT_GRPC_NEED_MORE);
  assert_int_equal(sn.count, 1);
  assert_int_equal(sn.lens[0], 100);
  rt_grpc_dec_free(&d);

  /* one over: refused on the prefix alone, before any payload arrives */
  rt_grpc_dec_init(&d, 100, NULL);
  len = put_msg(s, 0, 0, p, 101);
  assert_int_equal(rt_grpc_dec_feed(&d, s, 4, &used, &m), RT_GRPC_NEED_MORE);
  assert_int_equal(rt_grpc_dec_feed(&d, s + 4, len - 4, &used, &m), RT_GRPC_ETOOBIG);
  assert_int_equal(used, 1);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_ETOOBIG), RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(rt_grpc_dec_error(&d), "101 bytes exceeds the limit of 100"));
  assert_int_equal(rt_grpc_dec_feed(&d, s + 5, len - 5, &used, &m), RT_GRPC_ETOOBIG);
  assert_int_equal(rt_grpc_dec_finish(&d), RT_GRPC_ETOOBIG);
  rt_grpc_dec_free(&d);

  /* a declared 4 GiB - 1 under the default limit */
  rt_grpc_dec_init(&d, 0, NULL);
  assert_int_equal(rt_grpc_dec_feed(&d, (const uint8_t *)"\0\xff\xff\xff\xff", 5, &used, &m),
                   RT_GRPC_ETOOBIG);
  rt_grpc_dec_free(&d);
  free(p);
}

/* A prefix promising a big message must not make the decoder allocate it up front. */
static void test_growth_follows_data(void **state) {
  counting c = { 0 };
  rt_grpc_alloc a = { counting_fn, &c };
  rt_grpc_dec d;
  rt_grpc_dec_init(&d, 0, &a);
  uint8_t s[5 + 1000] = { 0, 0, 0x40, 0, 0 }; /* 4 MiB declared */
  size_t used;
  rt_grpc_msg m;
  assert_int_equal(rt_grpc_dec_feed(&d, s, sizeof s, &used, &m), RT_GRPC_NEED_MORE);
  assert_int_equal(used, sizeof s);
  assert_true(c.peak <= 2 * 1000);
  assert_int_equal(rt_grpc_dec_buffered(&d), sizeof s);
  rt_grpc_dec_free(&d);
  assert_int_equal(c.live, 0);

  /* after a big cut message, the buffer is given back before the next one */
  static uint8_t st[2 * (5 + 200000)];
  uint8_t *p = pattern(200000, 3);
  size_t len = put_msg(st, 0, 0, p, 200000);
  len = put_msg(st, len, 0, p, 10);
  rt_grpc_dec_init(&d, 0, &a);
  assert_int_equal(rt_grpc_dec_feed(&d, st, 100, &used, &m), RT_GRPC_NEED_MORE);
  assert_int_equal(rt_grpc_dec_feed(&d, st + 100, len - 100, &used, &m), RT_GRPC_MSG);
  assert_int_equal(m.len, 200000);
  assert_memory_equal(m.data, p, 200000);
  assert_true(c.live >= 200000);
  size_t off = 100 + used;
  assert_int_equal(rt_grpc_dec_feed(&d, st + off, len - off, &used, &m), RT_GRPC_MSG);
  assert_int_equal(m.len, 10);
  assert_true(c.live < 1000);
  rt_grpc_dec_free(&d);
  assert_int_equal(c.live, 0);
  free(p);
}

static void test_flag_checks(void **state) {
  const uint8_t two[] = { 2, 0, 0, 0, 1, 'x' };
  const uint8_t one[] = { 1, 0, 0, 0, 1, 'x' };
  rt_grpc_dec d;
  size_t used;
  rt_grpc_msg m;

  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
  assert_int_equal(rt_grpc_dec_feed(&d, two, sizeof two, &used, &m), RT_GRPC_EFLAG);
  assert_non_null(strstr(rt_grpc_dec_error(&d), "0x02"));
  assert_int_equal(rt_grpc_err_status(RT_GRPC_EFLAG), RT_GRPC_STATUS_INTERNAL);
  rt_grpc_dec_free(&d);

  rt_grpc_enc encs[] = { RT_GRPC_ENC_NONE, RT_GRPC_ENC_IDENTITY, RT_GRPC_ENC_UNKNOWN };
  const char *why[] = { "absent", "identity", "unknown" };
  for (int i = 0; i < 3; i++) {
    rt_grpc_dec_init(&d, 0, NULL);
    rt_grpc_dec_set_encoding(&d, encs[i], 1);
    assert_int_equal(rt_grpc_dec_feed(&d, one, sizeof one, &used, &m), RT_GRPC_EENCODING);
    assert_non_null(strstr(rt_grpc_dec_error(&d), why[i]));
    assert_int_equal(rt_grpc_err_status(RT_GRPC_EENCODING), RT_GRPC_STATUS_INTERNAL);
    rt_grpc_dec_free(&d);
  }
  assert_int_equal(rt_grpc_check_flag(0, RT_GRPC_ENC_NONE), 0);
  assert_int_equal(rt_grpc_check_flag(0, RT_GRPC_ENC_UNKNOWN), 0);
  assert_int_equal(rt_grpc_check_flag(1, RT_GRPC_ENC_GZIP), 0);
  assert_int_equal(rt_grpc_check_flag(1, RT_GRPC_ENC_DEFLATE), 0);
  assert_int_equal(rt_grpc_check_flag(1, RT_GRPC_ENC_NONE), RT_GRPC_EENCODING);
  assert_int_equal(rt_grpc_check_flag(1, RT_GRPC_ENC_IDENTITY), RT_GRPC_EENCODING);
  assert_int_equal(rt_grpc_check_flag(0x80, RT_GRPC_ENC_GZIP), RT_GRPC_EFLAG);
  assert_int_equal(rt_grpc_check_flag(-1, RT_GRPC_ENC_GZIP), RT_GRPC_EFLAG);
}

/* ---- compression ----------------------------------------------------------------------- */

static void test_gzip_from_tool(void **state) {
  char text[4000];
  for (size_t i = 0; i < sizeof text; i++) text[i] = "grpc says hello "[i % 16];
  size_t zn, out_n;
  uint8_t *z = run_tool("gzip -c -9", (const uint8_t *)text, sizeof text, &zn);
  assert_true(zn > 18 && zn < sizeof text);
  assert_memory_equal(z, "\x1f\x8b", 2);
  uint8_t *out;
  char err[128] = "";
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, 1 << 20, &out, &out_n, NULL,
                                      err, sizeof err), 0);
  assert_int_equal(out_n, sizeof text);
  assert_memory_equal(out, text, sizeof text);
  rt_grpc_free(NULL, out);

  /* through the decoder, split at every byte, with the limit exactly the size */
  static uint8_t s[8192];
  size_t len = put_msg(s, 0, 1, z, zn);
  for (size_t cut = 0; cut <= len; cut++) {
    rt_grpc_dec d;
    static seen sn;
    memset(&sn, 0, offsetof(seen, bytes));
    sn.total = 0;
    rt_grpc_dec_init(&d, sizeof text, NULL);
    rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
    assert_int_equal(feed(&d, s, cut, 0, &sn), RT_GRPC_NEED_MORE);
    assert_int_equal(feed(&d, s + cut, len - cut, 0, &sn), RT_GRPC_NEED_MORE);
    assert_int_equal(sn.count, 1);
    assert_int_equal(sn.flags[0], 1);
    assert_int_equal(sn.lens[0], sizeof text);
    assert_memory_equal(sn.bytes, text, sizeof text);
    rt_grpc_dec_free(&d);
  }

  /* two gzip members back to back (`cat a.gz b.gz`) decode as one */
  uint8_t *two = malloc(2 * zn);
  memcpy(two, z, zn);
  memcpy(two + zn, z, zn);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, two, 2 * zn, 1 << 20, &out, &out_n,
                                      NULL, err, sizeof err), 0);
  assert_int_equal(out_n, 2 * sizeof text);
  assert_memory_equal(out + sizeof text, text, sizeof text);
  rt_grpc_free(NULL, out);
  free(two);
  free(z);

  /* gzip of nothing is a valid, empty message */
  z = run_tool("gzip -c", (const uint8_t *)"", 0, &zn);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, 0, &out, &out_n, NULL, err,
                                      sizeof err), 0);
  assert_int_equal(out_n, 0);
  assert_non_null(out);
  rt_grpc_free(NULL, out);
  free(z);
}

static void test_compress_roundtrip_and_tools(void **state) {
  size_t sizes[] = { 0, 1, 100, 65536, 300000 };
  rt_grpc_enc encs[] = { RT_GRPC_ENC_GZIP, RT_GRPC_ENC_DEFLATE, RT_GRPC_ENC_IDENTITY };
  int levels[] = { -1, 0, 1, 9 };
  for (size_t si = 0; si < 5; si++) {
    /* half random, half repeated: compressible but not trivially */
    uint8_t *p = pattern(sizes[si], (unsigned)si + 7);
    for (size_t i = sizes[si] / 2; i < sizes[si]; i++) p[i] = (uint8_t)(i % 7);
    for (size_t ei = 0; ei < 3; ei++) {
      for (size_t li = 0; li < 4; li++) {
        size_t cap = rt_grpc_compress_bound(sizes[si]), zn, out_n;
        uint8_t *z = malloc(cap), *out;
        char err[128] = "";
        assert_int_equal(rt_grpc_compress(encs[ei], levels[li], p, sizes[si], z, cap, &zn,
                                          NULL, err, sizeof err), 0);
        assert_true(zn <= cap);
        assert_int_equal(rt_grpc_decompress(encs[ei], z, zn, sizes[si], &out, &out_n, NULL,
                                            err, sizeof err), 0);
        assert_int_equal(out_n, sizes[si]);
        if (out_n) assert_memory_equal(out, p, out_n);
        rt_grpc_free(NULL, out);
        /* an independent decoder reads what we wrote */
        if (li == 0 && encs[ei] != RT_GRPC_ENC_IDENTITY) {
          const char *cmd = encs[ei] == RT_GRPC_ENC_GZIP
            ? "gzip -dc"
            : "python3 -c 'import sys,zlib;"
              "sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))'";
          uint8_t *t = run_tool(cmd, z, zn, &out_n);
          assert_int_equal(out_n, sizes[si]);
          if (out_n) assert_memory_equal(t, p, out_n);
          free(t);
        }
        free(z);
      }
    }
    free(p);
  }
  /* the bound is tight enough to matter and big enough for level 0 on random data */
  uint8_t *r = pattern(100000, 5);
  size_t cap = rt_grpc_compress_bound(100000), zn;
  uint8_t *z = malloc(cap);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, 0, r, 100000, z, cap, &zn, NULL, NULL,
                                    0), 0);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, 9, r, 100000, z, 1000, &zn, NULL, NULL,
                                    0), RT_GRPC_ESPACE);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, 10, r, 10, z, cap, &zn, NULL, NULL, 0),
                   RT_GRPC_EINVAL);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_NONE, -1, r, 10, z, cap, &zn, NULL, NULL, 0),
                   RT_GRPC_EINVAL);
  free(z);
  free(r);
}

static void test_deflate_from_python(void **state) {
  const char *text = "a deflate message, a deflate message, a deflate message";
  size_t zn, out_n;
  uint8_t *z = run_tool("python3 -c 'import sys,zlib;"
                        "sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))'",
                        (const uint8_t *)text, strlen(text), &zn);
  assert_int_equal(z[0], 0x78); /* zlib header */
  uint8_t *out;
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_DEFLATE, z, zn, 1000, &out, &out_n, NULL,
                                      NULL, 0), 0);
  assert_int_equal(out_n, strlen(text));
  assert_memory_equal(out, text, out_n);
  rt_grpc_free(NULL, out);
  /* the same bytes are not gzip */
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, 1000, &out, &out_n, NULL,
                                      NULL, 0), RT_GRPC_ECORRUPT);
  free(z);
}

static void test_zip_bomb(void **state) {
  /* 16 MiB of zeros gzip to ~16 KB; a 1 MiB limit must stop it at 1 MiB of memory. */
  size_t big = 16u << 20, cap = rt_grpc_compress_bound(big), zn;
  uint8_t *zeros = calloc(1, big), *z = malloc(cap);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, 9, zeros, big, z, cap, &zn, NULL, NULL,
                                    0), 0);
  assert_true(zn < 100000);
  counting c = { 0 };
  rt_grpc_alloc a = { counting_fn, &c };
  uint8_t *out;
  size_t out_n;
  char err[128];
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, 1u << 20, &out, &out_n, &a,
                                      err, sizeof err), RT_GRPC_ETOOBIG);
  assert_null(out);
  assert_true(c.peak <= (1u << 20) + 64 * 1024); /* the output plus zlib's ~45 KB state */
  assert_int_equal(c.live, 0);

  /* the same through the decoder, which says RESOURCE_EXHAUSTED */
  uint8_t *s = malloc(zn + 5);
  size_t len = put_msg(s, 0, 1, z, zn), used;
  rt_grpc_dec d;
  rt_grpc_msg m;
  rt_grpc_dec_init(&d, 1u << 20, &a);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
  assert_int_equal(rt_grpc_dec_feed(&d, s, len, &used, &m), RT_GRPC_ETOOBIG);
  assert_non_null(strstr(rt_grpc_dec_error(&d), "decompressed"));
  assert_true(c.peak <= (1u << 20) + 64 * 1024);
  rt_grpc_dec_free(&d);
  assert_int_equal(c.live, 0);

  /* boundary: decompressed size == limit passes, limit - 1 fails */
  size_t n = 1000;
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, -1, zeros, n, z, cap, &zn, NULL, NULL,
                                    0), 0);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, n, &out, &out_n, NULL, NULL,
                                      0), 0);
  assert_int_equal(out_n, n);
  rt_grpc_free(NULL, out);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, n - 1, &out, &out_n, NULL,
                                      NULL, 0), RT_GRPC_ETOOBIG);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_IDENTITY, zeros, n, n - 1, &out, &out_n,
                                      NULL, NULL, 0), RT_GRPC_ETOOBIG);
  free(s);
  free(z);
  free(zeros);
}

static void test_corrupt(void **state) {
  const char *text = "corrupt me if you can, corrupt me if you can";
  size_t n = strlen(text), cap = rt_grpc_compress_bound(n), zn, out_n;
  uint8_t *z = malloc(cap + 4), *out;
  char err[128];
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, -1, text, n, z, cap, &zn, NULL, NULL, 0),
                   0);
  /* every truncation */
  for (size_t cut = 0; cut < zn; cut++)
    assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, cut, 1000, &out, &out_n, NULL,
                                        err, sizeof err), RT_GRPC_ECORRUPT);
  /* a flipped bit in the CRC trailer */
  z[zn - 6] ^= 1;
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, 1000, &out, &out_n, NULL, err,
                                      sizeof err), RT_GRPC_ECORRUPT);
  assert_non_null(strstr(err, "corrupt"));
  z[zn - 6] ^= 1;
  /* trailing garbage */
  memcpy(z + zn, "junk", 4);
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn + 4, 1000, &out, &out_n, NULL,
                                      err, sizeof err), RT_GRPC_ECORRUPT);
  /* unknown encodings cannot be undone */
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_UNKNOWN, z, zn, 1000, &out, &out_n, NULL,
                                      err, sizeof err), RT_GRPC_EENCODING);
  /* a corrupt message in the decoder is INTERNAL and sticky */
  uint8_t s[256];
  z[12] ^= 0xff;
  size_t len = put_msg(s, 0, 1, z, zn), used;
  rt_grpc_dec d;
  rt_grpc_msg m;
  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
  int rc = rt_grpc_dec_feed(&d, s, len, &used, &m);
  assert_int_equal(rc, RT_GRPC_ECORRUPT);
  assert_int_equal(rt_grpc_err_status(rc), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_dec_feed(&d, s, len, &used, &m), RT_GRPC_ECORRUPT);
  rt_grpc_dec_free(&d);
  /* an empty compressed message is not valid gzip */
  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
  assert_int_equal(rt_grpc_dec_feed(&d, (const uint8_t *)"\1\0\0\0\0", 5, &used, &m),
                   RT_GRPC_ECORRUPT);
  rt_grpc_dec_free(&d);
  free(z);
}

static void test_encode_msg(void **state) {
  size_t n = 5000, cap = 5 + n, len;
  uint8_t *text = malloc(n), *rnd = pattern(n, 11), *out = malloc(cap);
  for (size_t i = 0; i < n; i++) text[i] = "abcabcabd"[i % 9];
  char err[128];
  rt_grpc_dec d;
  rt_grpc_msg m;
  size_t used;

  /* compressible: flag 1, smaller, and decodes back */
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, -1, text, n, out, cap, &len,
                                            NULL, err, sizeof err), 0);
  assert_int_equal(out[0], 1);
  assert_true(len < n / 10);
  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
  assert_int_equal(rt_grpc_dec_feed(&d, out, len, &used, &m), RT_GRPC_MSG);
  assert_int_equal(m.compressed, 1);
  assert_int_equal(m.len, n);
  assert_memory_equal(m.data, text, n);
  rt_grpc_dec_free(&d);

  /* the same with inflate off: raw bytes out, undone by rt_grpc_decompress */
  rt_grpc_dec_init(&d, 0, NULL);
  rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 0);
  assert_int_equal(rt_grpc_dec_feed(&d, out, len, &used, &m), RT_GRPC_MSG);
  assert_int_equal(m.compressed, 1);
  assert_int_equal(m.len, len - 5);
  uint8_t *plain;
  size_t pn;
  assert_int_equal(rt_grpc_decompress(RT_GRPC_ENC_GZIP, m.data, m.len, n, &plain, &pn, NULL,
                                      err, sizeof err), 0);
  assert_int_equal(pn, n);
  assert_memory_equal(plain, text, n);
  rt_grpc_free(NULL, plain);
  rt_grpc_dec_free(&d);

  /* incompressible: sent plain even though gzip was asked for */
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_DEFLATE, 9, rnd, n, out, cap, &len,
                                            NULL, err, sizeof err), 0);
  assert_int_equal(out[0], 0);
  assert_int_equal(len, 5 + n);
  assert_memory_equal(out + 5, rnd, n);
  /* identity never compresses; too small a buffer is ESPACE */
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_IDENTITY, -1, text, n, out, cap, &len,
                                            NULL, err, sizeof err), 0);
  assert_int_equal(out[0], 0);
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, -1, text, n, out, cap - 1, &len,
                                            NULL, err, sizeof err), RT_GRPC_ESPACE);
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, -1, "", 0, out, 5, &len, NULL,
                                            err, sizeof err), 0);
  assert_int_equal(len, 5);
  assert_int_equal(out[0], 0);
  /* a compression failure other than "did not shrink" is reported, not sent plain */
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, 10, text, n, out, cap, &len,
                                            NULL, err, sizeof err), RT_GRPC_EINVAL);
  counting c = { .fail_at = 1 };
  rt_grpc_alloc a = { counting_fn, &c };
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, -1, text, n, out, cap, &len,
                                            &a, err, sizeof err), RT_GRPC_ENOMEM);
  assert_int_equal(c.live, 0);
  free(text);
  free(rnd);
  free(out);
}

/* Every allocation in turn fails: the decoder and one-shot functions report ENOMEM,
 * leak nothing, and work once memory is back. */
static void test_alloc_failures(void **state) {
  size_t n = 3000, zn, cap = rt_grpc_compress_bound(n);
  uint8_t *text = malloc(n), *z = malloc(cap), *s = malloc(cap + 10);
  for (size_t i = 0; i < n; i++) text[i] = (uint8_t)("xyz"[i % 3] + i / 500);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, -1, text, n, z, cap, &zn, NULL, NULL, 0),
                   0);
  size_t len = put_msg(s, 0, 1, z, zn);
  int saw_ok = 0;
  for (long k = 1; k < 40 && !saw_ok; k++) {
    counting c = { 0 };
    c.fail_at = k;
    rt_grpc_alloc a = { counting_fn, &c };
    rt_grpc_dec d;
    seen sn = { 0 };
    rt_grpc_dec_init(&d, 0, &a);
    rt_grpc_dec_set_encoding(&d, RT_GRPC_ENC_GZIP, 1);
    int rc = feed(&d, s, len, 1000, &sn); /* cut, so the gather buffer is needed too */
    if (rc == RT_GRPC_NEED_MORE && sn.count == 1) {
      saw_ok = 1;
      assert_memory_equal(sn.bytes, text, n);
    } else {
      assert_int_equal(rc, RT_GRPC_ENOMEM);
      assert_int_equal(rt_grpc_err_status(rc), RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
      assert_true(rt_grpc_dec_error(&d)[0] != '\0');
    }
    rt_grpc_dec_free(&d);
    assert_int_equal(c.live, 0);

    c = (counting){ .fail_at = k };
    uint8_t *out = NULL;
    size_t out_n;
    rc = rt_grpc_decompress(RT_GRPC_ENC_GZIP, z, zn, n, &out, &out_n, &a, NULL, 0);
    assert_true(rc == 0 || rc == RT_GRPC_ENOMEM);
    if (rc == 0) assert_memory_equal(out, text, n);
    else assert_null(out);
    rt_grpc_free(&a, out);
    assert_int_equal(c.live, 0);

    c = (counting){ .fail_at = k };
    uint8_t *z2 = malloc(cap);
    rc = rt_grpc_compress(RT_GRPC_ENC_DEFLATE, -1, text, n, z2, cap, &out_n, &a, NULL, 0);
    assert_true(rc == 0 || rc == RT_GRPC_ENOMEM);
    free(z2);
    assert_int_equal(c.live, 0);
  }
  assert_true(saw_ok);
  free(text);
  free(z);
  free(s);
}

/* The decoder struct may be moved (e.g. a realloc'd stream table) between feeds. */
static void test_decoder_moves(void **state) {
  uint8_t s[256];
  size_t zn, cap = rt_grpc_compress_bound(40);
  uint8_t *z = malloc(cap);
  assert_int_equal(rt_grpc_compress(RT_GRPC_ENC_GZIP, -1, "moved moved moved moved moved", 29,
                                    z, cap, &zn, NULL, NULL, 0), 0);
  size_t len = put_msg(s, 0, 1, z, zn);
  len = put_msg(s, len, 1, z, zn);
  rt_grpc_dec *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  rt_grpc_dec_init(a, 0, NULL);
  rt_grpc_dec_set_encoding(a, RT_GRPC_ENC_GZIP, 1);
  seen sn = { 0 };
  assert_int_equal(feed(a, s, zn + 5 + 3, 0, &sn), RT_GRPC_NEED_MORE);
  memcpy(b, a, sizeof *a);
  memset(a, 0xa5, sizeof *a);
  free(a);
  assert_int_equal(feed(b, s + zn + 8, len - zn - 8, 0, &sn), RT_GRPC_NEED_MORE);
  assert_int_equal(sn.count, 2);
  assert_int_equal(sn.total, 58);
  rt_grpc_dec_free(b);
  free(b);
  free(z);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_prefix_and_encode),
    cmocka_unit_test(test_split_everywhere),
    cmocka_unit_test(test_many_in_one_slice_zero_copy),
    cmocka_unit_test(test_empty_message),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_max_size),
    cmocka_unit_test(test_growth_follows_data),
    cmocka_unit_test(test_flag_checks),
    cmocka_unit_test(test_gzip_from_tool),
    cmocka_unit_test(test_compress_roundtrip_and_tools),
    cmocka_unit_test(test_deflate_from_python),
    cmocka_unit_test(test_zip_bomb),
    cmocka_unit_test(test_corrupt),
    cmocka_unit_test(test_encode_msg),
    cmocka_unit_test(test_alloc_failures),
    cmocka_unit_test(test_decoder_moves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
