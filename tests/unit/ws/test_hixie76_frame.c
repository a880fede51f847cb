/* Unit tests for core/ws/hixie76_frame.c: WebSocket draft 76's handshake answer and the
 * client frames, fed whole and one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws/hixie76_frame.h"

static void test_answer_drafts_example(void **state) {
  /* draft-hixie-thewebsocketprotocol-76, section 1.3 */
  uint8_t out[16];
  assert_int_equal(rt_hixie76_answer("18x 6]8vM;54 *(5:  {   U1]8  z [  8", "1_ tx7X d  <  nw  334J702) 7]o}` 0",
                                     (const uint8_t *)"Tm[K T2u", out), 0);
  assert_memory_equal(out, "fQJ,fN/4F4!~K~MH", 16);
  /* The sockjs-protocol suite's pair. */
  assert_int_equal(rt_hixie76_answer("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", (const uint8_t *)"aaaaaaaa", out), 0);
  assert_memory_equal(out, "\xca\x34\x00\xd8\xa5\x08\x47\x97\x2c\xd5\x71\x5a\xba\xbf\x43\x7b", 16);
}

static void test_answer_refuses_bad_keys(void **state) {
  uint8_t out[16];
  const uint8_t k3[8] = {0};
  static const char *const bad[] = {"12345", "1 2 3 4", "no digits ", "", "4294967296 ",
                                    "99999999999999999999 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (rt_hixie76_answer(bad[i], "1 ", k3, out) != -1) fail_msg("key '%s' accepted", bad[i]);
  assert_int_equal(rt_hixie76_answer("4294967295 ", "0 ", k3, out), 0);  /* the largest value */
  assert_int_equal(rt_hixie76_answer(NULL, "1 ", k3, out), -1);
}

typedef struct seen {
  char msgs[8][64];
  int n;
} seen;

static void collect(void *ud, const uint8_t *msg, size_t len) {
  seen *s = ud;
  assert_true(s->n < 8 && len < 64);
  memcpy(s->msgs[s->n], msg, len);
  s->msgs[s->n++][len] = 0;
}

static int feed_bytewise(rt_hixie76_parser *p, const char *data, size_t len, seen *s) {
  int rc = RT_HIXIE76_MORE;
  for (size_t i = 0; i < len && rc == RT_HIXIE76_MORE; i++)
    rc = rt_hixie76_feed(p, (const uint8_t *)data + i, 1, collect, s);
  return rc;
}

static void test_frames_whole_and_byte_by_byte(void **state) {
  static const char in[] = "\x00hello\xff\x00\xff\x00h\xc3\xa9 \xe4\xbd\xa0\xff\xff\x00\x00after";
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    rt_hixie76_parser p = {.max_message = 100};
    seen s = {0};
    int rc = bytewise ? feed_bytewise(&p, in, sizeof in - 1, &s)
                      : rt_hixie76_feed(&p, (const uint8_t *)in, sizeof in - 1, collect, &s);
    assert_int_equal(rc, RT_HIXIE76_CLOSE);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.msgs[0], "hello");
    assert_string_equal(s.msgs[1], "");
    assert_string_equal(s.msgs[2], "h\xc3\xa9 \xe4\xbd\xa0");
    rt_hixie76_parser_free(&p);
  }
}

static void test_bad_frames(void **state) {
  static const struct { const char *in; size_t len; const char *why; } bad[] = {
      {"\x80\x03" "abc", 5, "a frame type other than text"},
      {"\x01x\xff", 3, "a frame type other than text"},
      {"\xff\x01", 2, "a bad close frame"},
      {"\x00\xc3\x28\xff", 4, "invalid UTF-8"},
      {"\x00\xc3\xff", 3, "invalid UTF-8"},  /* a character cut by the end of the frame */
      {"\x00" "0123456789x\xff", 13, "a message over the limit"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      rt_hixie76_parser p = {.max_message = 10};
      seen s = {0};
      int rc = bytewise ? feed_bytewise(&p, bad[i].in, bad[i].len, &s)
                        : rt_hixie76_feed(&p, (const uint8_t *)bad[i].in, bad[i].len, collect, &s);
      assert_int_equal(rc, RT_HIXIE76_ERROR);
      assert_string_equal(p.error, bad[i].why);
      assert_int_equal(s.n, 0);
      /* Once failed, it stays failed. */
      assert_int_equal(rt_hixie76_feed(&p, (const uint8_t *)"\x00ok\xff", 4, collect, &s), RT_HIXIE76_ERROR);
      rt_hixie76_parser_free(&p);
    }
  }
  /* Exactly at the limit is fine. */
  rt_hixie76_parser p = {.max_message = 10};
  seen s = {0};
  assert_int_equal(rt_hixie76_feed(&p, (const uint8_t *)"\x00" "0123456789\xff", 12, collect, &s), RT_HIXIE76_MORE);
  assert_int_equal(s.n, 1);
  rt_hixie76_parser_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_answer_drafts_example), cmocka_unit_test(test_answer_refuses_bad_keys),
      cmocka_unit_test(test_frames_whole_and_byte_by_byte), cmocka_unit_test(test_bad_frames),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
