/* Unit tests for core/ws_deflate.c: permessage-deflate (RFC 7692) negotiation and the
 * message codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws/ws_deflate.h"

/* Negotiates one header value; returns the response line ("" when declined). */
static const char *answer(const char *value, int takeover, rt_ws_deflate_params *p) {
  static char resp[200];
  rt_ws_deflate_params tmp;
  const char *values[] = {value};
  int ok = rt_ws_deflate_negotiate(values, 1, takeover, p ? p : &tmp, resp, sizeof resp);
  assert_int_equal(ok, resp[0] != 0);
  return resp;
}

static const char *cheap = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

static void test_offers_of_real_clients(void **state) {
  rt_ws_deflate_params p;
  /* chromium, npm ws and python3-websockets all offer exactly this by default */
  assert_string_equal(answer("permessage-deflate; client_max_window_bits", 0, &p), cheap);
  assert_int_equal(p.on, 1);
  assert_int_equal(p.server_no_takeover, 1);
  assert_int_equal(p.client_no_takeover, 1);
  assert_int_equal(p.server_bits, 15);
  assert_int_equal(p.client_bits, 15);
  assert_string_equal(answer("permessage-deflate", 0, NULL), cheap);
  /* older Firefox: no parameters at all; case of the name does not matter */
  assert_string_equal(answer("PerMessage-Deflate", 0, NULL), cheap);
}

static void test_each_parameter(void **state) {
  rt_ws_deflate_params p;
  assert_string_equal(answer("permessage-deflate; server_no_context_takeover", 0, NULL), cheap);
  assert_string_equal(answer("permessage-deflate; client_no_context_takeover", 0, NULL), cheap);
  assert_string_equal(answer("permessage-deflate; server_max_window_bits=10", 0, &p),
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=10");
  assert_int_equal(p.server_bits, 10);
  assert_string_equal(answer("permessage-deflate; client_max_window_bits=9", 0, &p), cheap);
  assert_int_equal(p.client_bits, 15);
  /* quoted-string values are allowed (RFC 7692 7.1.2) */
  assert_string_equal(answer("permessage-deflate; server_max_window_bits=\"12\"", 0, &p),
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=12");
  assert_string_equal(answer("permessage-deflate ;server_max_window_bits = 15 ; client_max_window_bits", 0, &p),
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=15");
}

static void test_takeover_mode_keeps_the_clients_terms(void **state) {
  rt_ws_deflate_params p;
  assert_string_equal(answer("permessage-deflate; client_max_window_bits", 1, &p), "permessage-deflate");
  assert_int_equal(p.server_no_takeover, 0);
  assert_int_equal(p.client_no_takeover, 0);
  assert_true(rt_ws_deflate_takeover_cost(&p) > 256 * 1024);
  assert_string_equal(answer("permessage-deflate; server_no_context_takeover", 1, &p),
                      "permessage-deflate; server_no_context_takeover");
  assert_int_equal(p.server_no_takeover, 1);
  assert_int_equal(p.client_no_takeover, 0);
  /* only the inflater's window is the connection's own */
  assert_true(rt_ws_deflate_takeover_cost(&p) < 64 * 1024);
  answer("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1, &p);
  assert_int_equal(rt_ws_deflate_takeover_cost(&p), 0);
  answer("permessage-deflate", 0, &p);
  assert_int_equal(rt_ws_deflate_takeover_cost(&p), 0);
}

static void test_declined_offers(void **state) {
  const char *bad[] = {
      "permessage-deflate; server_max_window_bits",        /* needs a value */
      "permessage-deflate; server_max_window_bits=8",      /* zlib cannot make it */
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=08",     /* leading zero */
      "permessage-deflate; client_max_window_bits=abc",
      "permessage-deflate; client_max_window_bits=",
      "permessage-deflate; server_no_context_takeover=1",  /* takes no value */
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
      "permessage-deflate; mystery",
      "permessage-deflate; client_max_window_bits=\"10",   /* unterminated quote */
      "permessage-deflate;",                                /* empty parameter */
      "permessage-deflate; =10",
      "permessage-deflate x",
      "x-webkit-deflate-frame",
      "deflate-frame; no_context_takeover",
      "",
      ",,",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rt_ws_deflate_params p;
    memset(&p, 0xaa, sizeof p);
    if (answer(bad[i], 0, &p)[0]) fail_msg("accepted: %s", bad[i]);
    assert_int_equal(p.on, 0);
  }
}

static void test_first_acceptable_offer_wins(void **state) {
  rt_ws_deflate_params p;
  /* a client may offer fallbacks, best first */
  assert_string_equal(answer("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                             "server_max_window_bits=9, permessage-deflate", 0, &p),
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=9");
  assert_string_equal(answer("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 0, NULL),
                      cheap);
  assert_string_equal(answer("permessage-deflate; mystery, permessage-deflate", 0, NULL), cheap);
  /* several header lines are one list */
  const char *values[] = {"x-foo; bar=\"a,b\"", "permessage-deflate; server_max_window_bits=11"};
  char resp[200];
  assert_int_equal(rt_ws_deflate_negotiate(values, 2, 0, &p, resp, sizeof resp), 1);
  assert_int_equal(p.server_bits, 11);
  /* a response that does not fit is no response */
  assert_int_equal(rt_ws_deflate_negotiate(values, 2, 0, &p, resp, 20), 0);
}

/* ---- codec ---------------------------------------------------------------------------- */

static size_t compress_msg(rt_ws_deflater *d, int reset, const char *msg, rt_buf *out) {
  rt_buf_consume(out, out->len);
  size_t half = strlen(msg) / 2;
  assert_int_equal(rt_ws_deflate_part(d, msg, half, out), 0);
  assert_int_equal(rt_ws_deflate_part(d, msg + half, strlen(msg) - half, out), 0);
  assert_int_equal(rt_ws_deflate_finish(d, reset, out), 0);
  return out->len;
}

static void expect_inflates_to(rt_ws_inflater *f, const uint8_t *in, size_t len, int reset,
                               const char *want) {
  rt_buf out = {0};
  assert_int_equal(rt_ws_inflate_msg(f, in, len, 1 << 20, reset, &out), RT_WS_INFLATE_OK);
  assert_int_equal(out.len, strlen(want));
  assert_memory_equal(rt_buf_start(&out), want, out.len);
  rt_buf_free(&out);
}

static void test_rfc7692_examples_inflate(void **state) {
  rt_ws_inflater f;
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  /* 7.2.3.1: "Hello" in one compressed block */
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  expect_inflates_to(&f, hello, sizeof hello, 1, "Hello");
  /* 7.2.3.2: the second "Hello" refers to the first (context takeover) */
  static const uint8_t again[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  expect_inflates_to(&f, hello, sizeof hello, 0, "Hello");
  expect_inflates_to(&f, again, sizeof again, 1, "Hello");
  /* 7.2.3.3: a stored block */
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
  expect_inflates_to(&f, stored, sizeof stored, 1, "Hello");
  /* 7.2.3.4: BFINAL set */
  static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
  expect_inflates_to(&f, final, sizeof final, 1, "Hello");
  /* 7.2.3.5: two blocks */
  static const uint8_t two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff,
                                0xca, 0xc9, 0xc9, 0x07, 0x00};
  expect_inflates_to(&f, two, sizeof two, 1, "Hello");
  /* 7.2.3.6: an empty message is a single 0x00 */
  static const uint8_t empty[] = {0x00};
  expect_inflates_to(&f, empty, 1, 1, "");
  rt_ws_inflater_end(&f);
}

static const char *json =
    "{\"type\":\"order\",\"id\":12345,\"symbol\":\"ACME\",\"side\":\"buy\",\"price\":101.25,"
    "\"qty\":300,\"account\":\"alpha-7\",\"tags\":[\"fast\",\"fast\",\"fast\"],"
    "\"note\":\"the quick brown fox jumps over the lazy dog, the quick brown fox again\"}";

static void test_round_trip_and_shared_bytes(void **state) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  assert_int_equal(rt_ws_deflater_init(&d, 15), 0);
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  rt_buf a = {0}, b = {0};
  size_t na = compress_msg(&d, 1, json, &a);
  assert_true(na < strlen(json));
  /* the 00 00 ff ff of the flush is not sent */
  assert_false(na >= 4 && memcmp(rt_buf_end(&a) - 4, "\0\0\xff\xff", 4) == 0);
  /* without context takeover the same message always compresses to the same bytes: one
   * frame can serve every subscriber */
  size_t nb = compress_msg(&d, 1, json, &b);
  assert_int_equal(na, nb);
  assert_memory_equal(rt_buf_start(&a), rt_buf_start(&b), na);
  expect_inflates_to(&f, rt_buf_start(&a), na, 1, json);
  expect_inflates_to(&f, rt_buf_start(&b), nb, 1, json);
  /* an empty message */
  compress_msg(&d, 1, "", &a);
  expect_inflates_to(&f, rt_buf_start(&a), a.len, 1, "");
  rt_buf_free(&a);
  rt_buf_free(&b);
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

static void test_context_takeover_shrinks_repeats(void **state) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  assert_int_equal(rt_ws_deflater_init(&d, 15), 0);
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  rt_buf a = {0};
  size_t first = compress_msg(&d, 0, json, &a);
  expect_inflates_to(&f, rt_buf_start(&a), a.len, 0, json);
  size_t second = compress_msg(&d, 0, json, &a);
  assert_true(second < first / 4);  /* the whole message is one back-reference now */
  expect_inflates_to(&f, rt_buf_start(&a), a.len, 0, json);
  rt_buf_free(&a);
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

static void test_small_window(void **state) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  assert_int_equal(rt_ws_deflater_init(&d, 9), 0);
  assert_int_equal(rt_ws_inflater_init(&f, 9), 0);
  char big[4000];
  for (size_t i = 0; i < sizeof big - 1; i++) big[i] = "abcdefghij"[(i * 7) % 10];
  big[sizeof big - 1] = 0;
  rt_buf a = {0};
  compress_msg(&d, 1, big, &a);
  /* a 512-byte inflater window is enough: nothing refers further back */
  expect_inflates_to(&f, rt_buf_start(&a), a.len, 1, big);
  rt_buf_free(&a);
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

static void test_frame(void **state) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  assert_int_equal(rt_ws_deflater_init(&d, 15), 0);
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  rt_buf scratch = {0};
  size_t half = strlen(json) / 2;
  rt_ws_part parts[2] = {{json, half}, {json + half, strlen(json) - half}};
  rt_chunk *c = rt_ws_deflate_frame(&d, 1, 1, parts, 2, &scratch);
  assert_non_null(c);
  assert_int_equal(c->data[0], 0xc1);  /* FIN, RSV1, text */
  assert_int_equal(c->data[1], 126);  /* compressed, it is still over 125 bytes */
  size_t plen = (size_t)c->data[2] << 8 | c->data[3];
  assert_true(plen < strlen(json));
  assert_int_equal(c->len, 4 + plen);
  assert_int_equal(scratch.len, 0);
  expect_inflates_to(&f, c->data + 4, plen, 1, json);
  rt_chunk_unref(c);
  rt_buf_free(&scratch);
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

/* A megabyte of zeros compresses to about a kilobyte: inflating it must stop at the limit. */
static void test_bomb_stops_at_the_limit(void **state) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  assert_int_equal(rt_ws_deflater_init(&d, 15), 0);
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  size_t n = 1 << 20;
  char *zeros = calloc(1, n);
  assert_non_null(zeros);
  rt_buf z = {0}, out = {0};
  assert_int_equal(rt_ws_deflate_part(&d, zeros, n, &z), 0);
  assert_int_equal(rt_ws_deflate_finish(&d, 1, &z), 0);
  assert_true(z.len < 2048);
  assert_int_equal(rt_ws_inflate_msg(&f, rt_buf_start(&z), z.len, 10000, 1, &out), RT_WS_INFLATE_TOO_BIG);
  assert_true(out.len <= 10001);
  assert_true(out.cap <= 32768);
  /* exactly at the limit is fine, one past it is not */
  rt_buf_consume(&out, out.len);
  assert_int_equal(rt_ws_inflate_msg(&f, rt_buf_start(&z), z.len, n, 1, &out), RT_WS_INFLATE_OK);
  assert_int_equal(out.len, n);
  rt_buf_consume(&out, out.len);
  assert_int_equal(rt_ws_inflate_msg(&f, rt_buf_start(&z), z.len, n - 1, 1, &out), RT_WS_INFLATE_TOO_BIG);
  /* and the inflater is ready for the next message */
  rt_buf a = {0};
  compress_msg(&d, 1, json, &a);
  expect_inflates_to(&f, rt_buf_start(&a), a.len, 1, json);
  free(zeros);
  rt_buf_free(&a);
  rt_buf_free(&z);
  rt_buf_free(&out);
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

static void test_corrupt_streams(void **state) {
  rt_ws_inflater f;
  assert_int_equal(rt_ws_inflater_init(&f, 15), 0);
  static const uint8_t reserved_block[] = {0xff, 0xff, 0xff, 0xff};  /* BTYPE 11 */
  static const uint8_t bad_stored[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H'};  /* LEN != ~NLEN */
  /* RFC 7692 7.2.3.2's second message: a distance back into nothing, in a fresh context */
  static const uint8_t far_back[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  const struct { const uint8_t *p; size_t n; } cases[] = {
      {reserved_block, sizeof reserved_block}, {bad_stored, sizeof bad_stored}, {far_back, sizeof far_back}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rt_buf out = {0};
    int rc = rt_ws_inflate_msg(&f, cases[i].p, cases[i].n, 1 << 20, 1, &out);
    if (rc != RT_WS_INFLATE_CORRUPT) fail_msg("case %zu: %d", i, rc);
    rt_buf_free(&out);
  }
  /* after a corrupt message the shared inflater still works for the next connection */
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  expect_inflates_to(&f, hello, sizeof hello, 1, "Hello");
  rt_ws_inflater_end(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_offers_of_real_clients),
      cmocka_unit_test(test_each_parameter),
      cmocka_unit_test(test_takeover_mode_keeps_the_clients_terms),
      cmocka_unit_test(test_declined_offers),
      cmocka_unit_test(test_first_acceptable_offer_wins),
      cmocka_unit_test(test_rfc7692_examples_inflate),
      cmocka_unit_test(test_round_trip_and_shared_bytes),
      cmocka_unit_test(test_context_takeover_shrinks_repeats),
      cmocka_unit_test(test_small_window),
      cmocka_unit_test(test_frame),
      cmocka_unit_test(test_bomb_stops_at_the_limit),
      cmocka_unit_test(test_corrupt_streams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
