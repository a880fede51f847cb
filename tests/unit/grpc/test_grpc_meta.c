/* Unit tests for the gRPC metadata helpers (core/grpc_meta.c). Base64 is checked against
 * the output of the coreutils `base64` command, run at test time through popen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc/grpc_meta.h"

#define S(lit) (lit), sizeof(lit) - 1

/* ---- status ------------------------------------------------------------------------- */

static void test_status_names(void **state) {
  static const char *want[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
  };
  assert_int_equal(RT_GRPC_STATUS_COUNT_, 17);
  for (int i = 0; i < 17; i++) {
    assert_string_equal(rt_grpc_status_name(i), want[i]);
    assert_int_equal(rt_grpc_status_from_name(want[i], strlen(want[i])), i);
  }
  assert_null(rt_grpc_status_name(-1));
  assert_null(rt_grpc_status_name(17));
  assert_int_equal(rt_grpc_status_from_name(S("not_found")), RT_GRPC_STATUS_NOT_FOUND);
  assert_int_equal(rt_grpc_status_from_name(S("Unauthenticated")), 16);
  assert_int_equal(rt_grpc_status_from_name(S("NOT_FOUNDX")), -1);
  assert_int_equal(rt_grpc_status_from_name(S("NOT")), -1);
  assert_int_equal(rt_grpc_status_from_name(S("")), -1);
}

static void test_status_parse(void **state) {
  assert_int_equal(rt_grpc_status_parse(S("0")), 0);
  assert_int_equal(rt_grpc_status_parse(S("5")), 5);
  assert_int_equal(rt_grpc_status_parse(S("16")), 16);
  assert_int_equal(rt_grpc_status_parse(S("17")), RT_GRPC_STATUS_UNKNOWN);
  assert_int_equal(rt_grpc_status_parse(S("999999999")), RT_GRPC_STATUS_UNKNOWN);
  assert_int_equal(rt_grpc_status_parse(S("1234567890")), -1);
  assert_int_equal(rt_grpc_status_parse(S("")), -1);
  assert_int_equal(rt_grpc_status_parse(S("-1")), -1);
  assert_int_equal(rt_grpc_status_parse(S("1 ")), -1);
  assert_int_equal(rt_grpc_status_parse(S("0x1")), -1);
}

static void test_errors(void **state) {
  assert_int_equal(rt_grpc_err_status(RT_GRPC_ETOOBIG), RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_ENOMEM), RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_EENCODING), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_EFLAG), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_ECORRUPT), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_err_status(RT_GRPC_ETRUNCATED), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_err_status(0), RT_GRPC_STATUS_OK);
  for (int rc = RT_GRPC_ESPACE; rc <= RT_GRPC_EINVAL; rc++)
    assert_string_not_equal(rt_grpc_strerror(rc), "unknown error");
  assert_string_equal(rt_grpc_strerror(-100), "unknown error");
}

/* ---- grpc-timeout --------------------------------------------------------------------- */

static void check_timeout(const char *s, int64_t want_ns, int64_t want_ms) {
  int64_t ns = -7, ms = -7;
  assert_int_equal(rt_grpc_timeout_parse_ns(s, strlen(s), &ns), 0);
  assert_int_equal(rt_grpc_timeout_parse_ms(s, strlen(s), &ms), 0);
  assert_int_equal(ns, want_ns);
  assert_int_equal(ms, want_ms);
}

static void test_timeout_units(void **state) {
  check_timeout("1S", 1000000000LL, 1000);
  check_timeout("100m", 100000000LL, 100);
  check_timeout("5H", 5LL * 3600 * 1000000000LL, 5LL * 3600 * 1000);
  check_timeout("2M", 120LL * 1000000000LL, 120000);
  check_timeout("1500u", 1500000LL, 2); /* 1.5 ms rounds up */
  check_timeout("1000u", 1000000LL, 1);
  check_timeout("1n", 1, 1);           /* never rounds down to "expired" */
  check_timeout("0m", 0, 0);
  check_timeout("00000001S", 1000000000LL, 1000); /* 8 digits, leading zeros */
  check_timeout("99999999n", 99999999LL, 100);
  check_timeout(" 3S\t", 3000000000LL, 3000);
  /* 99999999 hours do not fit in int64 nanoseconds: saturate, they do fit milliseconds. */
  check_timeout("99999999H", INT64_MAX, 99999999LL * 3600 * 1000);
  check_timeout("99999999M", 99999999LL * 60 * 1000000000LL, 99999999LL * 60 * 1000);
  check_timeout("99999999S", 99999999LL * 1000000000LL, 99999999LL * 1000);
  /* The largest hour count that still fits: 2562047 H. */
  check_timeout("2562047H", 2562047LL * 3600 * 1000000000LL, 2562047LL * 3600 * 1000);
  check_timeout("2562048H", INT64_MAX, 2562048LL * 3600 * 1000);
}

static void test_timeout_bad(void **state) {
  static const char *bad[] = {
    "", " ", "S", "1", "12", "123456789S", "000000001S", "1s", "1h", "1x", "-1S", "+1S",
    "1 S", "1SS", "S1", "1.5S", "0x1S", "1S,2S",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = 42;
    size_t n = strlen(bad[i]);
    assert_int_equal(rt_grpc_timeout_parse_ns(bad[i], n, &v), RT_GRPC_EINVAL);
    assert_int_equal(rt_grpc_timeout_parse_ms(bad[i], n, &v), RT_GRPC_EINVAL);
    assert_true(v == 42); /* untouched on error */
  }
  int64_t v;
  assert_int_equal(rt_grpc_timeout_parse_ns("\0" "1S", 3, &v), RT_GRPC_EINVAL);
  assert_int_equal(rt_grpc_timeout_parse_ns("1S\0", 3, &v), RT_GRPC_EINVAL);
}

static void check_format(int64_t ns, const char *want) {
  char out[RT_GRPC_TIMEOUT_MAXLEN];
  int n = rt_grpc_timeout_format(ns, out, sizeof out);
  assert_int_equal(n, (int)strlen(want));
  assert_string_equal(out, want);
}

static void test_timeout_format(void **state) {
  check_format(1000000000LL, "1S");
  check_format(3600LL * 1000000000LL, "1H");
  check_format(90LL * 1000000000LL, "90S");
  check_format(120LL * 1000000000LL, "2M");
  check_format(1500000000LL, "1500m");
  check_format(100000000LL, "100m");
  check_format(1, "1n");
  check_format(0, "1n");
  check_format(-5, "1n");
  check_format(99999999LL, "99999999n");
  check_format(100000001LL, "100001u");       /* 100000.001 us rounds up */
  check_format(123456789012LL, "123457m");
  check_format(INT64_MAX, "2562048H");
  char small[RT_GRPC_TIMEOUT_MAXLEN - 1];
  assert_int_equal(rt_grpc_timeout_format(1, small, sizeof small), RT_GRPC_ESPACE);
  /* Formatting never shortens a deadline and parses back within one unit. */
  int64_t samples[] = { 7, 999, 1000001, 5555555555LL, 86400LL * 1000000000LL + 3,
                        INT64_MAX / 3, 4611686018427387904LL };
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    char out[RT_GRPC_TIMEOUT_MAXLEN];
    int64_t back;
    int n = rt_grpc_timeout_format(samples[i], out, sizeof out);
    assert_true(n >= 2 && n <= 9);
    assert_int_equal(rt_grpc_timeout_parse_ns(out, (size_t)n, &back), 0);
    assert_true(back >= samples[i]);
    assert_true(back - samples[i] < samples[i] / 1000000 + 1); /* < 8 digits of precision */
  }
}

/* ---- percent-encoding ------------------------------------------------------------------ */

static void check_pct(const char *in, size_t len, const char *want) {
  char enc[1024];
  uint8_t dec[1024];
  size_t n = rt_grpc_pct_encode_len(in, len);
  assert_int_equal(n, strlen(want));
  assert_int_equal(rt_grpc_pct_encode(in, len, enc), n);
  assert_memory_equal(enc, want, n);
  size_t m = rt_grpc_pct_decode(enc, n, dec);
  assert_int_equal(m, len);
  if (len) assert_memory_equal(dec, in, len);
}

static void test_pct_roundtrip(void **state) {
  check_pct(S("hello world"), "hello world");
  check_pct(S(""), "");
  check_pct(S("100%"), "100%25");
  check_pct(S("%%"), "%25%25");
  check_pct(S("a\nb\tc\r"), "a%0Ab%09c%0D");
  check_pct(S("~\x7f"), "~%7F");
  check_pct(S("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80"),
            "caf%C3%A9 %E2%98%83 %F0%9F%98%80"); /* é, snowman, emoji: UTF-8 bytes */
  check_pct("a\0b", 3, "a%00b");
  /* Every byte value. */
  char all[256], enc[768];
  uint8_t dec[768];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  size_t n = rt_grpc_pct_encode(all, 256, enc);
  assert_int_equal(n, rt_grpc_pct_encode_len(all, 256));
  assert_int_equal(n, 95 - 1 + 3 * (256 - 95 + 1)); /* 0x20-0x7E plain except '%' */
  for (size_t i = 0; i < n; i++) assert_true(enc[i] >= 0x20 && enc[i] <= 0x7e);
  assert_int_equal(rt_grpc_pct_decode(enc, n, dec), 256);
  assert_memory_equal(dec, all, 256);
  /* Decoding in place. */
  memcpy(dec, enc, n);
  assert_int_equal(rt_grpc_pct_decode((char *)dec, n, dec), 256);
  assert_memory_equal(dec, all, 256);
}

static void check_pct_decode(const char *in, const char *want) {
  uint8_t out[256];
  size_t n = rt_grpc_pct_decode(in, strlen(in), out);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static void test_pct_lenient(void **state) {
  check_pct_decode("%", "%");
  check_pct_decode("abc%", "abc%");
  check_pct_decode("%4", "%4");
  check_pct_decode("x%4", "x%4");
  check_pct_decode("%G1", "%G1");
  check_pct_decode("%1G", "%1G");
  check_pct_decode("%%41", "%A");
  check_pct_decode("%c3%a9", "\xc3\xa9"); /* lower-case hex is accepted */
  check_pct_decode("100%25 sure %zz", "100% sure %zz");
  check_pct_decode("%41%4", "A%4");
  /* the length is what counts, not a NUL: "%41" cut to 2 bytes is "%4" */
  uint8_t out[4];
  assert_int_equal(rt_grpc_pct_decode("%41", 2, out), 2);
  assert_memory_equal(out, "%4", 2);
  assert_int_equal(rt_grpc_pct_decode("x%41", 3, out), 3);
  assert_memory_equal(out, "x%4", 3);
}

/* ---- base64 ---------------------------------------------------------------------------- */

/* Runs `base64 -w0` on data; returns the output length (no newline) in out. */
static size_t coreutils_base64(const uint8_t *data, size_t len, char *out, size_t cap) {
  char path[] = "/tmp/test_grpc_meta_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "base64 -w0 %s", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, cap, p);
  assert_int_equal(pclose(p), 0);
  unlink(path);
  while (n && (out[n - 1] == '\n')) n--;
  return n;
}

static void test_b64_vs_coreutils(void **state) {
  uint8_t data[70];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37 + 11);
  data[0] = 0; data[5] = 0; data[6] = 0xff; data[7] = 0xfe; /* NULs and high bytes */
  /* Lengths 0..9 cover every padding case three times; then a longer value. */
  size_t lens[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 64, 70 };
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    size_t len = lens[k];
    char ref[256], enc[256];
    uint8_t dec[256];
    size_t rn = coreutils_base64(data, len, ref, sizeof ref);
    /* padded: identical to the tool */
    size_t n = rt_grpc_b64_encode(data, len, enc, 1);
    assert_int_equal(n, rt_grpc_b64_encode_len(len, 1));
    assert_int_equal(n, rn);
    assert_memory_equal(enc, ref, n);
    /* unpadded (what we emit by default): the tool's output without '=' */
    size_t un = rn;
    while (un && ref[un - 1] == '=') un--;
    n = rt_grpc_b64_encode(data, len, enc, 0);
    assert_int_equal(n, rt_grpc_b64_encode_len(len, 0));
    assert_int_equal(n, un);
    assert_memory_equal(enc, ref, n);
    /* both decode to the data */
    size_t dn = 999;
    assert_int_equal(rt_grpc_b64_decode(ref, rn, dec, &dn), 0);
    assert_int_equal(dn, len);
    assert_true(dn <= rt_grpc_b64_decode_bound(rn));
    if (len) assert_memory_equal(dec, data, len);
    dn = 999;
    assert_int_equal(rt_grpc_b64_decode(ref, un, dec, &dn), 0);
    assert_int_equal(dn, len);
    assert_true(dn <= rt_grpc_b64_decode_bound(un));
    if (len) assert_memory_equal(dec, data, len);
  }
}

static void test_b64_known(void **state) {
  char enc[16];
  assert_int_equal(rt_grpc_b64_encode("\0", 1, enc, 0), 2);
  assert_memory_equal(enc, "AA", 2);
  assert_int_equal(rt_grpc_b64_encode("\0", 1, enc, 1), 4);
  assert_memory_equal(enc, "AA==", 4);
  assert_int_equal(rt_grpc_b64_encode("\xfb\xff", 2, enc, 1), 4);
  assert_memory_equal(enc, "+/8=", 4);
}

static void test_b64_bad(void **state) {
  static const char *bad[] = {
    "A", "AAAAA", "A===", "====", "AA=A", "AB=", "A=", "AB*D", "AB D", "AB\nD",
    "QR==", "QR", /* bits after the last byte are not zero */
    "QUJ", "QUJ=", "-_AA", "AAA==", "AA==AA==", "=AAA",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t out[16];
    size_t n = 77;
    assert_int_equal(rt_grpc_b64_decode(bad[i], strlen(bad[i]), out, &n), RT_GRPC_EINVAL);
  }
  uint8_t out[16];
  size_t n;
  assert_int_equal(rt_grpc_b64_decode(S("QQ"), out, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 'A');
  assert_int_equal(rt_grpc_b64_decode(S("QUI"), out, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(rt_grpc_b64_decode(S(""), out, &n), 0);
  assert_int_equal(n, 0);
}

/* ---- keys, content-type, encodings ----------------------------------------------------- */

static void test_keys_values(void **state) {
  assert_true(rt_grpc_meta_key_valid(S("x-trace_id.v2")));
  assert_false(rt_grpc_meta_key_valid(S("X-Trace")));
  assert_false(rt_grpc_meta_key_valid(S(":path")));
  assert_false(rt_grpc_meta_key_valid(S("")));
  assert_false(rt_grpc_meta_key_valid(S("a b")));
  assert_true(rt_grpc_meta_key_is_bin(S("trace-proto-bin")));
  assert_true(rt_grpc_meta_key_is_bin(S("-bin")));
  assert_false(rt_grpc_meta_key_is_bin(S("bin")));
  assert_false(rt_grpc_meta_key_is_bin(S("x-binx")));
  assert_true(rt_grpc_meta_value_valid(S("Bearer y235.wef315 ~")));
  assert_false(rt_grpc_meta_value_valid(S("")));
  assert_false(rt_grpc_meta_value_valid(S("a\tb")));
  assert_false(rt_grpc_meta_value_valid(S("caf\xc3\xa9")));
  assert_false(rt_grpc_meta_value_valid(S("\x7f")));
}

static void check_ct(const char *s, int want, const char *want_sub) {
  const char *sub = NULL;
  size_t sl = 99;
  assert_int_equal(rt_grpc_content_type_parse(s, strlen(s), &sub, &sl), want);
  if (want >= 0) {
    assert_int_equal(sl, strlen(want_sub));
    assert_memory_equal(sub, want_sub, sl);
  }
}

static void test_content_type(void **state) {
  check_ct("application/grpc", RT_GRPC_CT_PROTO, "");
  check_ct("application/grpc+proto", RT_GRPC_CT_PROTO, "proto");
  check_ct("application/grpc+json", RT_GRPC_CT_JSON, "json");
  check_ct("application/grpc+thrift", RT_GRPC_CT_OTHER, "thrift");
  check_ct("application/grpc;charset=utf-8", RT_GRPC_CT_PROTO, "");
  check_ct("application/grpc ; charset=utf-8", RT_GRPC_CT_PROTO, "");
  check_ct("application/grpc+proto; x=y", RT_GRPC_CT_PROTO, "proto");
  check_ct("Application/GRPC+Proto", RT_GRPC_CT_PROTO, "Proto");
  check_ct(" application/grpc ", RT_GRPC_CT_PROTO, "");
  check_ct("application/grpcx", -1, NULL);
  check_ct("application/grpc-web", -1, NULL);
  check_ct("application/grpc+", -1, NULL);
  check_ct("application/grpc+;a", -1, NULL);
  check_ct("application/json", -1, NULL);
  check_ct("application/grp", -1, NULL);
  check_ct("", -1, NULL);
  assert_int_equal(rt_grpc_content_type_parse(S("application/grpc"), NULL, NULL),
                   RT_GRPC_CT_PROTO);
}

static void test_encodings(void **state) {
  assert_int_equal(rt_grpc_enc_parse(S("gzip")), RT_GRPC_ENC_GZIP);
  assert_int_equal(rt_grpc_enc_parse(S(" GZip ")), RT_GRPC_ENC_GZIP);
  assert_int_equal(rt_grpc_enc_parse(S("identity")), RT_GRPC_ENC_IDENTITY);
  assert_int_equal(rt_grpc_enc_parse(S("deflate")), RT_GRPC_ENC_DEFLATE);
  assert_int_equal(rt_grpc_enc_parse(S("snappy")), RT_GRPC_ENC_UNKNOWN);
  assert_int_equal(rt_grpc_enc_parse(S("gzip,deflate")), RT_GRPC_ENC_UNKNOWN);
  assert_int_equal(rt_grpc_enc_parse(S("")), RT_GRPC_ENC_NONE);
  assert_string_equal(rt_grpc_enc_name(RT_GRPC_ENC_GZIP), "gzip");
  assert_null(rt_grpc_enc_name(RT_GRPC_ENC_NONE));
  assert_null(rt_grpc_enc_name(RT_GRPC_ENC_UNKNOWN));

  unsigned m = rt_grpc_accept_encoding_parse(S("gzip, identity ,snappy,,"));
  assert_int_equal(m, RT_GRPC_ENC_BIT(RT_GRPC_ENC_GZIP) | RT_GRPC_ENC_BIT(RT_GRPC_ENC_IDENTITY));
  assert_int_equal(rt_grpc_accept_encoding_parse(S("")), 0);
  assert_int_equal(rt_grpc_accept_encoding_parse(S(" , ,")), 0);
  assert_int_equal(rt_grpc_accept_encoding_parse(S("deflate")), RT_GRPC_ENC_BIT(RT_GRPC_ENC_DEFLATE));

  char out[32];
  assert_int_equal(rt_grpc_accept_encoding_format(RT_GRPC_ENC_ALL, out, sizeof out), 21);
  assert_string_equal(out, "identity,gzip,deflate");
  assert_int_equal(rt_grpc_accept_encoding_parse(out, strlen(out)), RT_GRPC_ENC_ALL);
  assert_int_equal(rt_grpc_accept_encoding_format(RT_GRPC_ENC_BIT(RT_GRPC_ENC_GZIP), out, 5), 4);
  assert_string_equal(out, "gzip");
  assert_int_equal(rt_grpc_accept_encoding_format(RT_GRPC_ENC_BIT(RT_GRPC_ENC_GZIP), out, 4),
                   RT_GRPC_ESPACE);
  assert_int_equal(rt_grpc_accept_encoding_format(0, out, sizeof out), 0);
  assert_string_equal(out, "");
}

static void test_list_next(void **state) {
  const char *v = " a, bb ,,\tccc\t, ";
  size_t pos = 0, n;
  const char *it;
  assert_int_equal(rt_grpc_list_next(v, strlen(v), &pos, &it, &n), 1);
  assert_int_equal(n, 1);
  assert_memory_equal(it, "a", 1);
  assert_int_equal(rt_grpc_list_next(v, strlen(v), &pos, &it, &n), 1);
  assert_memory_equal(it, "bb", n);
  assert_int_equal(rt_grpc_list_next(v, strlen(v), &pos, &it, &n), 1);
  assert_int_equal(n, 3);
  assert_memory_equal(it, "ccc", 3);
  assert_int_equal(rt_grpc_list_next(v, strlen(v), &pos, &it, &n), 0);
  assert_int_equal(rt_grpc_list_next(v, strlen(v), &pos, &it, &n), 0);
  /* joined "-bin" values split then decode separately */
  const char *bin = "AAE,/w==";
  uint8_t out[8];
  size_t dn;
  pos = 0;
  assert_int_equal(rt_grpc_list_next(bin, strlen(bin), &pos, &it, &n), 1);
  assert_int_equal(rt_grpc_b64_decode(it, n, out, &dn), 0);
  assert_int_equal(dn, 2);
  assert_memory_equal(out, "\x00\x01", 2);
  assert_int_equal(rt_grpc_list_next(bin, strlen(bin), &pos, &it, &n), 1);
  assert_int_equal(rt_grpc_b64_decode(it, n, out, &dn), 0);
  assert_int_equal(dn, 1);
  assert_int_equal(out[0], 0xff);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_status_names),  cmocka_unit_test(test_status_parse),
    cmocka_unit_test(test_errors),        cmocka_unit_test(test_timeout_units),
    cmocka_unit_test(test_timeout_bad),   cmocka_unit_test(test_timeout_format),
    cmocka_unit_test(test_pct_roundtrip), cmocka_unit_test(test_pct_lenient),
    cmocka_unit_test(test_b64_vs_coreutils), cmocka_unit_test(test_b64_known),
    cmocka_unit_test(test_b64_bad),       cmocka_unit_test(test_keys_values),
    cmocka_unit_test(test_content_type),  cmocka_unit_test(test_encodings),
    cmocka_unit_test(test_list_next),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
