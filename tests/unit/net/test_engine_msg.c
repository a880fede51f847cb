/* Unit tests for core/engine_msg.c (the bytes a message crosses an engine as) and the
 * engine helpers in core/engine.c (globs, the sharding hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/engine.h"
#include "net/engine_msg.h"

static rt_buf encode(const rt_engine_msg *m) {
  rt_buf b = {0};
  assert_int_equal(rt_engine_msg_encode(&b, m), 0);
  return b;
}

static rt_header hdr(const char *n, const char *v) {
  return (rt_header){n, strlen(n), v, strlen(v)};
}

static void test_round_trip_everything(void **state) {
  const uint8_t body[] = {0, 1, 2, 0xff, 'x'};
  rt_engine_msg m = {.origin = 0x0123456789abcdefULL, .binary = 1, .name = "/user/bob/queue/x",
                     .stomp_destination = "/user/queue/x", .content_type = "application/x-y",
                     .body = body, .body_len = sizeof body};
  m.headers[0] = hdr("x-a", "1");
  m.headers[1] = hdr("x-empty", "");
  m.nheaders = 2;
  rt_buf b = encode(&m);
  rt_engine_msg d;
  rt_buf scratch = {0};
  char err[128];
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), 0);
  assert_true(d.origin == m.origin);
  assert_int_equal(d.binary, 1);
  assert_string_equal(d.name, m.name);
  assert_string_equal(d.stomp_destination, m.stomp_destination);
  assert_string_equal(d.content_type, m.content_type);
  assert_int_equal(d.nheaders, 2);
  assert_string_equal(d.headers[0].name, "x-a");
  assert_string_equal(d.headers[0].value, "1");
  assert_int_equal(d.headers[1].value_len, 0);
  assert_int_equal(d.body_len, sizeof body);
  assert_memory_equal(d.body, body, sizeof body);
  rt_buf_free(&b);
  rt_buf_free(&scratch);
}

static void test_round_trip_minimal(void **state) {
  rt_engine_msg m = {.origin = 7, .name = "chat", .body = (const uint8_t *)"", .body_len = 0};
  rt_buf b = encode(&m), scratch = {0};
  rt_engine_msg d;
  char err[128];
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), 0);
  assert_string_equal(d.name, "chat");
  assert_null(d.stomp_destination);
  assert_null(d.content_type);
  assert_int_equal(d.binary, 0);
  assert_int_equal(d.nheaders, 0);
  assert_int_equal(d.body_len, 0);
  rt_buf_free(&b);
  rt_buf_free(&scratch);
}

/* What Redis's history script prepends: the place in the history, then the message. */
static rt_buf with_prefix(const char *prefix, const rt_engine_msg *m) {
  rt_buf b = {0};
  assert_int_equal(rt_buf_append(&b, prefix, strlen(prefix)), 0);
  assert_int_equal(rt_engine_msg_encode(&b, m), 0);
  return b;
}

static void test_history_prefix(void **state) {
  rt_engine_msg m = {.origin = 7, .name = "/topic/a", .body = (const uint8_t *)"hi", .body_len = 2};
  rt_engine_msg d;
  rt_buf scratch = {0};
  char err[128];
  rt_buf b = with_prefix("RH5f3a01:42\n", &m);
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), 0);
  assert_string_equal(d.epoch, "5f3a01");
  assert_true(d.offset == 42);
  assert_string_equal(d.name, "/topic/a");
  assert_memory_equal(d.body, "hi", 2);
  rt_buf_free(&b);
  b = with_prefix("RHffffffffffffffff:9223372036854775808\n", &m);
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), 0);
  assert_true(d.offset == (UINT64_C(1) << 63));
  rt_buf_free(&b);
  /* Without the prefix: no offset, no epoch. */
  b = encode(&m);
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), 0);
  assert_true(d.offset == 0);
  assert_string_equal(d.epoch, "");
  rt_buf_free(&b);
  const char *bad[] = {"RH:1\n", "RHab:\n", "RHab:0\n", "RHab:01\n", "RHAB:1\n", "RHab1\n",
                       "RH11111111111111111:1\n", "RHab:9223372036854775809\n",
                       "RHab:99999999999999999999\n", "RHab:1", "RHab:1x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    b = with_prefix(bad[i], &m);
    assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), -1);
    assert_non_null(strstr(err, "history prefix"));
    rt_buf_free(&b);
  }
  rt_buf_free(&scratch);
}

/* Every proper prefix and every one-byte-longer input is refused, never read past. */
static void test_truncated_and_trailing_refused(void **state) {
  rt_engine_msg m = {.origin = 1, .name = "n", .content_type = "t/p", .body = (const uint8_t *)"abc",
                     .body_len = 3};
  m.headers[0] = hdr("k", "v");
  m.nheaders = 1;
  rt_buf b = encode(&m), scratch = {0};
  rt_engine_msg d;
  char err[128];
  for (size_t n = 0; n < b.len; n++) {
    uint8_t *copy = malloc(n ? n : 1);  /* exactly n bytes: ASan catches an overread */
    memcpy(copy, rt_buf_start(&b), n);
    assert_int_equal(rt_engine_msg_decode(copy, n, &d, &scratch, err, sizeof err), -1);
    free(copy);
  }
  rt_buf_append(&b, "z", 1);
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), -1);
  assert_non_null(strstr(err, "body length"));
  rt_buf_free(&b);
  rt_buf_free(&scratch);
}

static void test_garbage_refused(void **state) {
  rt_buf scratch = {0};
  rt_engine_msg d;
  char err[128];
  const char *junk = "this is not an rtserver message";
  assert_int_equal(rt_engine_msg_decode((const uint8_t *)junk, strlen(junk), &d, &scratch, err, sizeof err), -1);
  assert_non_null(strstr(err, "not an rtserver message"));
  /* Unknown flags, a NUL inside a string, an empty name. */
  rt_engine_msg m = {.origin = 1, .name = "ab", .body = (const uint8_t *)"", .body_len = 0};
  rt_buf b = encode(&m);
  uint8_t *p = rt_buf_start(&b);
  p[3] = 0x80;
  assert_int_equal(rt_engine_msg_decode(p, b.len, &d, &scratch, err, sizeof err), -1);
  p[3] = 0;
  p[14] = 0;  /* 'a' of the name */
  assert_int_equal(rt_engine_msg_decode(p, b.len, &d, &scratch, err, sizeof err), -1);
  assert_non_null(strstr(err, "NUL"));
  rt_buf_free(&b);
  rt_engine_msg empty = {.origin = 1, .name = "", .body = (const uint8_t *)"", .body_len = 0};
  b = encode(&empty);
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&b), b.len, &d, &scratch, err, sizeof err), -1);
  rt_buf_free(&b);
  rt_buf_free(&scratch);
}

static void test_limits(void **state) {
  char *long_name = malloc(RT_ENGINE_MAX_NAME + 2);
  memset(long_name, 'a', RT_ENGINE_MAX_NAME + 1);
  long_name[RT_ENGINE_MAX_NAME + 1] = 0;
  rt_engine_msg m = {.origin = 1, .name = long_name, .body = (const uint8_t *)"", .body_len = 0};
  rt_buf b = {0};
  assert_int_equal(rt_engine_msg_encode(&b, &m), -1);
  m.name = "n";
  m.nheaders = RT_ENGINE_MAX_HEADERS + 1;
  b.len = 0;
  assert_int_equal(rt_engine_msg_encode(&b, &m), -1);
  /* A decoder sees a header count over the limit. */
  m.nheaders = 0;
  b.len = b.off = 0;
  assert_int_equal(rt_engine_msg_encode(&b, &m), 0);
  uint8_t *p = rt_buf_start(&b);
  p[12 + 2 + 1] = 0xff;  /* nheaders low byte, after the 1-byte name */
  rt_buf scratch = {0};
  rt_engine_msg d;
  char err[128];
  assert_int_equal(rt_engine_msg_decode(p, b.len, &d, &scratch, err, sizeof err), -1);
  assert_non_null(strstr(err, "too many headers"));
  rt_buf_free(&b);
  rt_buf_free(&scratch);
  free(long_name);
}

static void test_glob(void **state) {
  char g[64];
  assert_int_equal(rt_engine_glob("/topic/order.*", g, sizeof g), 14);
  assert_string_equal(g, "/topic/order.*");
  rt_engine_glob("/topic/**", g, sizeof g);
  assert_string_equal(g, "/topic/*");
  rt_engine_glob("a?b[c]d\\e*", g, sizeof g);
  assert_string_equal(g, "a\\?b\\[c\\]d\\\\e*");
  assert_int_equal(rt_engine_glob("abcdef", g, 6), -1);
  assert_int_equal(rt_engine_glob("abcde", g, 6), 5);
}

static void test_hash_is_stable(void **state) {
  /* FNV-1a 64: nodes built at different times must agree on every name's shard. */
  assert_true(rt_engine_hash("") == 14695981039346656037ULL);
  assert_true(rt_engine_hash("a") == 0xaf63dc4c8601ec8cULL);
  assert_true(rt_engine_new_node_id() != rt_engine_new_node_id());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_everything),
      cmocka_unit_test(test_round_trip_minimal),
      cmocka_unit_test(test_history_prefix),
      cmocka_unit_test(test_truncated_and_trailing_refused),
      cmocka_unit_test(test_garbage_refused),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_glob),
      cmocka_unit_test(test_hash_is_stable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
