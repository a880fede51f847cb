/* libFuzzer harness for the gRPC codecs: core/grpc_frame.c and core/grpc_meta.c.
 *
 * The first byte picks a mode:
 *   0, 1  decoder: bytes 1-3 choose the grpc-encoding, inflate on/off, the message limit
 *         and the slicing; the rest is a DATA stream. It is decoded whole and in random
 *         slices, and both must give the same messages and the same end.
 *   2     round trip: the rest is a payload, framed (maybe compressed) and decoded back.
 *   3     metadata parsers on the rest as a header value, with their round-trip laws. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_frame.h"
#include "grpc/grpc_meta.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const rt_grpc_enc encs[] = { RT_GRPC_ENC_NONE, RT_GRPC_ENC_IDENTITY, RT_GRPC_ENC_GZIP,
                                    RT_GRPC_ENC_DEFLATE, RT_GRPC_ENC_UNKNOWN };

typedef struct digest {
  uint64_t h;
  size_t count;
  int rc;
} digest;

static void mix(digest *d, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) d->h = (d->h ^ b[i]) * 1099511628211ull;
}

/* Feeds the stream; slice 0 = whole, else lengths from a little PRNG seeded by slice. */
static void decode(const uint8_t *s, size_t len, rt_grpc_enc enc, int inflate, size_t max,
                   unsigned slice, digest *dg) {
  rt_grpc_dec d;
  rt_grpc_dec_init(&d, max, NULL);
  rt_grpc_dec_set_encoding(&d, enc, inflate);
  dg->h = 14695981039346656037ull;
  dg->count = 0;
  dg->rc = RT_GRPC_NEED_MORE;
  uint32_t x = slice * 2654435761u | 1;
  size_t pos = 0;
  while (pos < len && dg->rc >= 0) {
    size_t n = len - pos;
    if (slice) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      size_t want = x % 8 == 0 ? 0 : x % 3 == 0 ? x % 7 : 1 + x % 64;
      if (want < n) n = want;
    }
    size_t off = 0;
    for (;;) {
      size_t used;
      rt_grpc_msg m;
      int rc = rt_grpc_dec_feed(&d, s + pos + off, n - off, &used, &m);
      CHECK(used <= n - off);
      off += used;
      if (rc == RT_GRPC_MSG) {
        CHECK(m.data != NULL && m.len <= max && (m.compressed == 0 || m.compressed == 1));
        mix(dg, &m.len, sizeof m.len);
        mix(dg, &m.compressed, sizeof m.compressed);
        mix(dg, m.data, m.len);
        if (m.compressed && !inflate) {
          /* inflate off: the caller undoes it with the one-shot function */
          uint8_t *out;
          size_t on;
          int drc = rt_grpc_decompress(enc, m.data, m.len, max, &out, &on, NULL, NULL, 0);
          CHECK(drc <= 0 && (drc < 0) == (out == NULL) && (drc == 0 || on == 0));
          mix(dg, &drc, sizeof drc);
          if (drc == 0) {
            CHECK(on <= max);
            mix(dg, out, on);
          }
          rt_grpc_free(NULL, out);
        }
        dg->count++;
        continue;
      }
      if (rc < 0) {
        CHECK(rt_grpc_dec_error(&d)[0] != '\0');
        CHECK(rt_grpc_err_status(rc) != RT_GRPC_STATUS_OK);
      } else {
        CHECK(off == n);
        CHECK(rt_grpc_dec_buffered(&d) <= RT_GRPC_PREFIX_LEN + max);
      }
      dg->rc = rc;
      break;
    }
    pos += n;
  }
  if (dg->rc >= 0) dg->rc = rt_grpc_dec_finish(&d);
  else CHECK(rt_grpc_dec_finish(&d) == dg->rc); /* sticky */
  rt_grpc_dec_free(&d);
}

static void fuzz_decoder(const uint8_t *data, size_t size) {
  if (size < 4) return;
  rt_grpc_enc enc = encs[data[1] % 5];
  int inflate = !(data[1] & 8);
  size_t max = data[2] == 255 ? RT_GRPC_DEFAULT_MAX_MSG : 1 + (size_t)data[2] * 97;
  digest whole, cut;
  decode(data + 4, size - 4, enc, inflate, max, 0, &whole);
  decode(data + 4, size - 4, enc, inflate, max, 1u + data[3], &cut);
  CHECK(whole.count == cut.count && whole.h == cut.h && whole.rc == cut.rc);
}

static void fuzz_roundtrip(const uint8_t *data, size_t size) {
  if (size < 2) return;
  rt_grpc_enc enc = encs[data[1] % 4];
  int level = (int)(data[1] >> 4) % 11 - 1; /* -1..9 */
  const uint8_t *p = data + 2;
  size_t n = size - 2, cap = RT_GRPC_PREFIX_LEN + n, len;
  uint8_t *out = malloc(cap);
  CHECK(rt_grpc_frame_encode_msg(enc, level, p, n, out, cap, &len, NULL, NULL, 0) == 0);
  CHECK(len <= cap && (out[0] == 0 || enc == RT_GRPC_ENC_GZIP || enc == RT_GRPC_ENC_DEFLATE));
  rt_grpc_dec d;
  rt_grpc_msg m;
  size_t used;
  rt_grpc_dec_init(&d, n ? n : 1, NULL);
  rt_grpc_dec_set_encoding(&d, enc, 1);
  /* cut in two where the payload says, to cover the gathering path */
  size_t cutat = n ? p[0] % len : 0;
  int rc = rt_grpc_dec_feed(&d, out, cutat, &used, &m);
  CHECK(rc == RT_GRPC_NEED_MORE && used == cutat);
  rc = rt_grpc_dec_feed(&d, out + cutat, len - cutat, &used, &m);
  CHECK(rc == RT_GRPC_MSG && used == len - cutat && m.len == n);
  CHECK(n == 0 || memcmp(m.data, p, n) == 0);
  CHECK(rt_grpc_dec_finish(&d) == 0);
  rt_grpc_dec_free(&d);
  free(out);

  /* one-shot functions: the bound always suffices, and decompress undoes compress */
  cap = rt_grpc_compress_bound(n);
  out = malloc(cap);
  CHECK(rt_grpc_compress(enc, level, p, n, out, cap, &len, NULL, NULL, 0) ==
        (enc == RT_GRPC_ENC_NONE ? RT_GRPC_EINVAL : 0));
  if (enc != RT_GRPC_ENC_NONE) {
    uint8_t *back;
    size_t bn;
    CHECK(rt_grpc_decompress(enc, out, len, n, &back, &bn, NULL, NULL, 0) == 0);
    CHECK(bn == n && (n == 0 || memcmp(back, p, n) == 0));
    rt_grpc_free(NULL, back);
    if (n > 0) /* one byte less room than it needs */
      CHECK(rt_grpc_decompress(enc, out, len, n - 1, &back, &bn, NULL, NULL, 0) ==
            RT_GRPC_ETOOBIG && back == NULL);
  }
  free(out);
}

static void fuzz_meta(const char *s, size_t n) {
  int64_t ns, ms;
  int a = rt_grpc_timeout_parse_ns(s, n, &ns), b = rt_grpc_timeout_parse_ms(s, n, &ms);
  CHECK(a == b);
  if (a == 0) {
    CHECK(ns >= 0 && ms >= 0);
    if (ns < INT64_MAX) CHECK(ms == ns / 1000000 + (ns % 1000000 != 0));
    char t[RT_GRPC_TIMEOUT_MAXLEN];
    int k = rt_grpc_timeout_format(ns, t, sizeof t);
    int64_t back;
    CHECK(k >= 2 && k <= 9 && rt_grpc_timeout_parse_ns(t, (size_t)k, &back) == 0);
    CHECK(back >= (ns ? ns : 1));
  }

  /* percent: decode never grows; encode then decode is the identity */
  uint8_t *dec = malloc(n + 1);
  size_t dn = rt_grpc_pct_decode(s, n, dec);
  CHECK(dn <= n);
  size_t en = rt_grpc_pct_encode_len(s, n);
  char *enc = malloc(en + 1);
  CHECK(rt_grpc_pct_encode(s, n, enc) == en);
  for (size_t i = 0; i < en; i++) CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
  uint8_t *back = malloc(en + 1);
  CHECK(rt_grpc_pct_decode(enc, en, back) == n && (n == 0 || memcmp(back, s, n) == 0));
  free(back);
  free(enc);
  free(dec);

  /* base64: a value that decodes is canonical, so it encodes back to itself */
  size_t bound = rt_grpc_b64_decode_bound(n), bn;
  uint8_t *bin = malloc(bound + 1);
  if (rt_grpc_b64_decode(s, n, bin, &bn) == 0) {
    CHECK(bn <= bound);
    size_t strip = n;
    while (strip && s[strip - 1] == '=') strip--;
    char *re = malloc(rt_grpc_b64_encode_len(bn, 1) + 1);
    size_t rn = rt_grpc_b64_encode(bin, bn, re, 0);
    CHECK(rn == strip && memcmp(re, s, rn) == 0);
    rn = rt_grpc_b64_encode(bin, bn, re, 1);
    CHECK(rn % 4 == 0 && (strip == n ? 1 : rn == n));
    free(re);
  }
  free(bin);
  char *e64 = malloc(rt_grpc_b64_encode_len(n, 0) + 1);
  size_t e64n = rt_grpc_b64_encode(s, n, e64, 0);
  uint8_t *d64 = malloc(rt_grpc_b64_decode_bound(e64n) + 1);
  CHECK(rt_grpc_b64_decode(e64, e64n, d64, &bn) == 0 && bn == n);
  CHECK(n == 0 || memcmp(d64, s, n) == 0);
  free(d64);
  free(e64);

  const char *sub = NULL;
  size_t sl = 0;
  int ct = rt_grpc_content_type_parse(s, n, &sub, &sl);
  CHECK(ct >= -1 && ct <= RT_GRPC_CT_OTHER);
  if (ct >= 0) CHECK(sub >= s && sub + sl <= s + n);
  unsigned mask = rt_grpc_accept_encoding_parse(s, n);
  CHECK((mask & ~(unsigned)RT_GRPC_ENC_ALL) == 0);
  char ae[32];
  CHECK(rt_grpc_accept_encoding_format(mask, ae, sizeof ae) >= 0);
  rt_grpc_enc e = rt_grpc_enc_parse(s, n);
  CHECK(e >= RT_GRPC_ENC_UNKNOWN && e < RT_GRPC_ENC_COUNT_);
  int st = rt_grpc_status_parse(s, n);
  CHECK(st >= -1 && st < RT_GRPC_STATUS_COUNT_);
  int sc = rt_grpc_status_from_name(s, n);
  CHECK(sc == -1 || rt_grpc_status_name(sc) != NULL);
  size_t pos = 0, il, items = 0;
  const char *it;
  while (rt_grpc_list_next(s, n, &pos, &it, &il)) {
    CHECK(il > 0 && it >= s && it + il <= s + n && items++ <= n);
  }
  (void)rt_grpc_meta_key_valid(s, n);
  (void)rt_grpc_meta_key_is_bin(s, n);
  (void)rt_grpc_meta_value_valid(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 4) {
  case 0:
  case 1: fuzz_decoder(data, size); break;
  case 2: fuzz_roundtrip(data, size); break;
  default: fuzz_meta((const char *)data + 1, size - 1); break;
  }
  return 0;
}
