/* Unit tests for core/ws_frame.c: the handshake key and server frames (RFC 6455). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/utf8.h"
#include "ws/ws_frame.h"

static void test_accept_key_rfc_example(void **state) {
  char out[29];
  memset(out, 'X', sizeof out);
  rt_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  rt_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
  assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  rt_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", out);
  assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}

static void test_key_validation(void **state) {
  assert_true(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
  assert_true(rt_ws_key_valid("YWFhYWFhYWFhYWFhYWFhYQ=="));    /* 16 x 'a' */
  assert_true(rt_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
  assert_true(rt_ws_key_valid("+/+/+/+/+/+/+/+/+/+/+w=="));
  assert_false(rt_ws_key_valid(NULL));
  assert_false(rt_ws_key_valid(""));
  /* wrong length */
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==="));
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ"));
  /* 15 bytes (20 characters, no padding) and 17 bytes (24 characters, one '=') */
  assert_false(rt_ws_key_valid("YWFhYWFhYWFhYWFhYWFh"));
  assert_false(rt_ws_key_valid("YWFhYWFhYWFhYWFhYWFhYWE="));
  /* 18 bytes: 24 characters without padding */
  assert_false(rt_ws_key_valid("YWFhYWFhYWFhYWFhYWFhYWFh"));
  /* bad base64 characters, in the body and at the padding */
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZ!=="));
  assert_false(rt_ws_key_valid("dGhl IHNhbXBsZSBub25jZQ=="));
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub2-_ZQ=="));  /* base64url is not base64 */
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=x"));
  assert_false(rt_ws_key_valid("   dGhlIHNhbXBsZSBub25jZQ=="));
  /* '=' only as the final padding: EVP_DecodeBlock alone takes it anywhere */
  assert_false(rt_ws_key_valid("dGhlIHNhbXBsZSBub25j===="));
  assert_false(rt_ws_key_valid("dGhl=HNhbXBsZSBub25jZQ=="));
  assert_false(rt_ws_key_valid("=================A======"));
}

static void check_header(size_t len, size_t want_hl, const uint8_t *want) {
  uint8_t hdr[10];
  memset(hdr, 0xee, sizeof hdr);
  size_t hl = rt_ws_frame_header(hdr, RT_WS_BINARY, len);
  if (hl != want_hl) fail_msg("length %zu: header %zu bytes, want %zu", len, hl, want_hl);
  assert_memory_equal(hdr, want, want_hl);
}

static void test_frame_header_lengths(void **state) {
  check_header(0, 2, (const uint8_t[]){0x82, 0x00});
  check_header(1, 2, (const uint8_t[]){0x82, 0x01});
  check_header(125, 2, (const uint8_t[]){0x82, 125});
  check_header(126, 4, (const uint8_t[]){0x82, 126, 0x00, 126});
  check_header(127, 4, (const uint8_t[]){0x82, 126, 0x00, 127});
  check_header(65535, 4, (const uint8_t[]){0x82, 126, 0xff, 0xff});
  check_header(65536, 10, (const uint8_t[]){0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0});
  check_header(0x123456789aULL, 10, (const uint8_t[]){0x82, 127, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a});
  /* FIN set, no RSV bits, no mask bit; the opcode is kept to 4 bits. */
  uint8_t hdr[10];
  rt_ws_frame_header(hdr, RT_WS_TEXT, 5);
  assert_int_equal(hdr[0], 0x81);
  assert_int_equal(hdr[1] & 0x80, 0);
  rt_ws_frame_header(hdr, RT_WS_PONG, 0);
  assert_int_equal(hdr[0], 0x8a);
  rt_ws_frame_header(hdr, 0x3f, 0);
  assert_int_equal(hdr[0], 0x8f);
}

static void test_frame_build(void **state) {
  rt_chunk *c = rt_ws_frame_build(RT_WS_TEXT, "hello", 5);
  assert_non_null(c);
  assert_int_equal(c->refs, 1);
  assert_int_equal(c->len, 7);
  assert_memory_equal(c->data, "\x81\x05hello", 7);
  rt_chunk_unref(c);

  c = rt_ws_frame_build(RT_WS_PING, NULL, 0);
  assert_int_equal(c->len, 2);
  assert_memory_equal(c->data, "\x89\x00", 2);
  rt_chunk_unref(c);

  size_t n = 70000;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (uint8_t)(i * 31);
  c = rt_ws_frame_build(RT_WS_BINARY, big, n);
  assert_int_equal(c->len, 10 + n);
  assert_memory_equal(c->data, "\x82\x7f\0\0\0\0\0\x01\x11\x70", 10);
  assert_memory_equal(c->data + 10, big, n);
  rt_chunk_unref(c);

  n = 300;
  c = rt_ws_frame_build(RT_WS_BINARY, big, n);
  assert_int_equal(c->len, 4 + n);
  assert_memory_equal(c->data, "\x82\x7e\x01\x2c", 4);
  assert_memory_equal(c->data + 4, big, n);
  rt_chunk_unref(c);
  free(big);
}

static void test_close_frame_layout(void **state) {
  rt_chunk *c = rt_ws_close_frame(1000, "bye");
  assert_int_equal(c->len, 7);
  assert_memory_equal(c->data, "\x88\x05\x03\xe8" "bye", 7);
  rt_chunk_unref(c);

  c = rt_ws_close_frame(1009, NULL);
  assert_int_equal(c->len, 4);
  assert_memory_equal(c->data, "\x88\x02\x03\xf1", 4);
  rt_chunk_unref(c);

  c = rt_ws_close_frame(4999, "");
  assert_memory_equal(c->data, "\x88\x02\x13\x87", 4);
  rt_chunk_unref(c);

  /* A control frame carries at most 125 bytes: the reason is cut to 123. */
  char reason[300];
  memset(reason, 'r', sizeof reason - 1);
  reason[sizeof reason - 1] = 0;
  c = rt_ws_close_frame(1008, reason);
  assert_int_equal(c->len, 2 + 125);
  assert_int_equal(c->data[0], 0x88);
  assert_int_equal(c->data[1], 125);
  assert_int_equal(c->data[2] << 8 | c->data[3], 1008);
  assert_memory_equal(c->data + 4, reason, 123);
  rt_chunk_unref(c);
  /* right at the edge: 123 fits, 124 and 125 are cut */
  for (size_t rl = 122; rl <= 126; rl++) {
    reason[rl] = 0;
    c = rt_ws_close_frame(1000, reason);
    size_t want = rl < 123 ? rl : 123;
    assert_int_equal(c->len, 4 + want);
    assert_int_equal(c->data[1], 2 + want);
    reason[rl] = 'r';
    rt_chunk_unref(c);
  }
}

/* The reason of a close frame must be UTF-8 (RFC 6455 5.5.1): cutting a long reason to
 * 123 bytes must not split a character, or the peer fails the connection with 1007. */
static void test_close_reason_cut_on_character_boundary(void **state) {
  char reason[200] = "";
  for (int i = 0; i < 62; i++) strcat(reason, "\xc3\xa9");  /* 124 bytes of 'é' */
  rt_chunk *c = rt_ws_close_frame(1001, reason);
  size_t plen = c->data[1];
  assert_true(plen <= 125);
  assert_true(plen >= 2 + 120);
  int valid = rt_utf8_valid(c->data + 4, plen - 2);
  uint8_t last = c->data[1 + plen];
  rt_chunk_unref(c);
  if (!valid) fail_msg("the %zu-byte reason ends in a cut character (last byte %02x)", plen - 2, last);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_key_rfc_example),
      cmocka_unit_test(test_key_validation),
      cmocka_unit_test(test_frame_header_lengths),
      cmocka_unit_test(test_frame_build),
      cmocka_unit_test(test_close_frame_layout),
      cmocka_unit_test(test_close_reason_cut_on_character_boundary),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
