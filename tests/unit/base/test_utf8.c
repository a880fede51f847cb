/* Unit tests for core/utf8.c: whole-buffer and incremental UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "feed.h"
#include "base/utf8.h"

#define U(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* An independent reference: decode code points per RFC 3629 by arithmetic. */
static int ref_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t b = p[i], cp, min;
    int more;
    if (b < 0x80) { i++; continue; }
    if ((b & 0xe0) == 0xc0) { cp = b & 0x1f; more = 1; min = 0x80; }
    else if ((b & 0xf0) == 0xe0) { cp = b & 0x0f; more = 2; min = 0x800; }
    else if ((b & 0xf8) == 0xf0) { cp = b & 0x07; more = 3; min = 0x10000; }
    else return 0;
    if (i + (size_t)more >= n) return 0;  /* truncated */
    for (int k = 1; k <= more; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += (size_t)more + 1;
  }
  return 1;
}

static void test_valid_multibyte(void **state) {
  assert_true(rt_utf8_valid(U("")));
  assert_true(rt_utf8_valid(U("plain ascii, long enough for the 8-byte fast path")));
  assert_true(rt_utf8_valid(U("\xc2\x80")));             /* U+0080, smallest 2-byte */
  assert_true(rt_utf8_valid(U("\xdf\xbf")));             /* U+07FF */
  assert_true(rt_utf8_valid(U("\xe0\xa0\x80")));         /* U+0800, smallest 3-byte */
  assert_true(rt_utf8_valid(U("\xed\x9f\xbf")));         /* U+D7FF, just below surrogates */
  assert_true(rt_utf8_valid(U("\xee\x80\x80")));         /* U+E000, just above */
  assert_true(rt_utf8_valid(U("\xef\xbf\xbf")));         /* U+FFFF */
  assert_true(rt_utf8_valid(U("\xf0\x90\x80\x80")));     /* U+10000 */
  assert_true(rt_utf8_valid(U("\xf4\x8f\xbf\xbf")));     /* U+10FFFF, the last one */
  assert_true(rt_utf8_valid(U("h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87")));
  /* Multi-byte right after an 8-byte ASCII run (the fast path hands over mid-buffer). */
  assert_true(rt_utf8_valid(U("abcdefgh\xc3\xa9")));
  assert_true(rt_utf8_valid(U("abcdefghijklmnop\xf0\x9f\x98\x80")));
}

static void test_overlongs(void **state) {
  assert_false(rt_utf8_valid(U("\xc0\x80")));           /* overlong NUL */
  assert_false(rt_utf8_valid(U("\xc1\xbf")));
  assert_false(rt_utf8_valid(U("\xe0\x80\x80")));
  assert_false(rt_utf8_valid(U("\xe0\x9f\xbf")));       /* overlong U+07FF */
  assert_false(rt_utf8_valid(U("\xf0\x80\x80\x80")));
  assert_false(rt_utf8_valid(U("\xf0\x8f\xbf\xbf")));   /* overlong U+FFFF */
  assert_false(rt_utf8_valid(U("abcdefgh\xc0\xaf")));   /* overlong '/' after a fast run */
}

static void test_surrogates_and_range(void **state) {
  assert_false(rt_utf8_valid(U("\xed\xa0\x80")));       /* U+D800 */
  assert_false(rt_utf8_valid(U("\xed\xbf\xbf")));       /* U+DFFF */
  assert_false(rt_utf8_valid(U("\xed\xa0\xbd\xed\xb8\x80")));  /* a CESU-8 pair */
  assert_false(rt_utf8_valid(U("\xf4\x90\x80\x80")));   /* U+110000 */
  assert_false(rt_utf8_valid(U("\xf5\x80\x80\x80")));
  assert_false(rt_utf8_valid(U("\xf7\xbf\xbf\xbf")));
  assert_false(rt_utf8_valid(U("\xf8\x88\x80\x80\x80"))); /* 5-byte form */
  assert_false(rt_utf8_valid(U("\xfe")));
  assert_false(rt_utf8_valid(U("\xff")));
}

static void test_bad_sequences(void **state) {
  assert_false(rt_utf8_valid(U("\x80")));               /* lone continuation */
  assert_false(rt_utf8_valid(U("a\xbf" "b")));
  assert_false(rt_utf8_valid(U("\xc3(")));              /* continuation missing */
  assert_false(rt_utf8_valid(U("\xe2\x82(")));
  assert_false(rt_utf8_valid(U("\xf0\x9f\x98(")));
  /* Truncated at the end of the buffer: not valid as a whole message. */
  assert_false(rt_utf8_valid(U("\xc3")));
  assert_false(rt_utf8_valid(U("\xe2\x82")));
  assert_false(rt_utf8_valid(U("\xf0\x9f\x98")));
  assert_false(rt_utf8_valid(U("abcdefgh\xf0\x9f")));
  /* An empty message may come as (NULL, 0) (wslay passes NULL for an empty payload);
   * under UBSan, NULL + 0 is undefined and aborts. */
  assert_true(rt_utf8_valid(NULL, 0));
  assert_int_equal(rt_utf8_feed(RT_UTF8_ACCEPT, NULL, 0), RT_UTF8_ACCEPT);
  /* A NUL byte is valid UTF-8 (U+0000). */
  assert_true(rt_utf8_valid((const uint8_t *)"a\0b", 3));
}

static void test_incremental_states(void **state) {
  uint32_t s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xe2"));
  assert_int_not_equal(s, RT_UTF8_ACCEPT);
  assert_int_not_equal(s, RT_UTF8_REJECT);
  s = rt_utf8_feed(s, U("\x82"));
  assert_int_not_equal(s, RT_UTF8_ACCEPT);
  assert_int_not_equal(s, RT_UTF8_REJECT);
  s = rt_utf8_feed(s, U("\xac"));
  assert_int_equal(s, RT_UTF8_ACCEPT);
  /* REJECT sticks, whatever follows. */
  s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xff"));
  assert_int_equal(s, RT_UTF8_REJECT);
  s = rt_utf8_feed(s, U("abc"));
  assert_int_equal(s, RT_UTF8_REJECT);
  /* Feeding nothing keeps the state. */
  s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xf0\x9f"));
  assert_int_equal(rt_utf8_feed(s, NULL, 0), s);
  /* The surrogate check survives a split after ED. */
  s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xed"));
  assert_int_equal(rt_utf8_feed(s, U("\xa0\x80")), RT_UTF8_REJECT);
  s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xf4"));
  assert_int_equal(rt_utf8_feed(s, U("\x90\x80\x80")), RT_UTF8_REJECT);
  s = rt_utf8_feed(RT_UTF8_ACCEPT, U("\xe0"));
  assert_int_equal(rt_utf8_feed(s, U("\x80\x80")), RT_UTF8_REJECT);
}

typedef struct {
  uint32_t state;
} feed_ctx;

static void eat(void *ctx, const uint8_t *p, size_t n) {
  feed_ctx *f = ctx;
  f->state = rt_utf8_feed(f->state, p, n);
}

/* Incremental feeding across every split (and every pair of splits) gives the same answer
 * as validating the whole buffer, for valid and invalid texts. */
static void test_every_split_equals_whole(void **state) {
  static const struct { const char *s; size_t n; } texts[] = {
#define T(lit) {lit, sizeof(lit) - 1}
      T("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80!"),
      T("\xf4\x8f\xbf\xbf\xe0\xa0\x80\xc2\x80"),
      T("ok \xed\xa0\x80 surrogate"),
      T("ok \xf4\x90\x80\x80 too high"),
      T("\xe0\x9f\xbf overlong"),
      T("truncated \xf0\x9f\x98"),
      T("\xc0\x80"),
      T("abcdefghijklmnopq\xe4\xb8\xad"),
#undef T
  };
  for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
    const uint8_t *d = (const uint8_t *)texts[t].s;
    size_t n = texts[t].n;
    int whole = rt_utf8_valid(d, n);
    assert_int_equal(whole, ref_valid(d, n));
    size_t it = 0, cuts[2];
    int k, plans = 0;
    while ((k = tfeed_plan_next(n, 64, &it, cuts)) > 0) {
      feed_ctx f = {RT_UTF8_ACCEPT};
      tfeed_cuts(d, n, cuts, k, eat, &f);
      if ((f.state == RT_UTF8_ACCEPT) != whole)
        fail_msg("text %zu: cuts %zu,%zu (%d) gave %u, whole says %d", t, cuts[0],
                 k > 1 ? cuts[1] : 0, k, f.state, whole);
      plans++;
    }
    assert_true(plans > (int)n);
    feed_ctx f = {RT_UTF8_ACCEPT};
    tfeed_bytewise(d, n, eat, &f);
    assert_int_equal(f.state == RT_UTF8_ACCEPT, whole);
  }
}

/* Every 1-, 2- and 3-byte string, and 4-byte strings over the interesting lead bytes,
 * against the arithmetic reference. */
static void test_exhaustive_short_strings(void **state) {
  uint8_t b[4];
  for (int i = 0; i < 256; i++) {
    b[0] = (uint8_t)i;
    assert_int_equal(rt_utf8_valid(b, 1), ref_valid(b, 1));
    for (int j = 0; j < 256; j++) {
      b[1] = (uint8_t)j;
      if (rt_utf8_valid(b, 2) != ref_valid(b, 2)) fail_msg("%02x %02x", i, j);
      for (int k = 0; k < 256; k += (i >= 0xe0 ? 1 : 17)) {
        b[2] = (uint8_t)k;
        if (rt_utf8_valid(b, 3) != ref_valid(b, 3)) fail_msg("%02x %02x %02x", i, j, k);
      }
    }
  }
  for (int i = 0xf0; i <= 0xf5; i++)
    for (int j = 0x70; j < 0xc8; j++)
      for (int k = 0x70; k < 0xc8; k += 7)
        for (int l = 0x70; l < 0xc8; l += 5) {
          b[0] = (uint8_t)i, b[1] = (uint8_t)j, b[2] = (uint8_t)k, b[3] = (uint8_t)l;
          if (rt_utf8_valid(b, 4) != ref_valid(b, 4)) fail_msg("%02x %02x %02x %02x", i, j, k, l);
        }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_multibyte),
      cmocka_unit_test(test_overlongs),
      cmocka_unit_test(test_surrogates_and_range),
      cmocka_unit_test(test_bad_sequences),
      cmocka_unit_test(test_incremental_states),
      cmocka_unit_test(test_every_split_equals_whole),
      cmocka_unit_test(test_exhaustive_short_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
