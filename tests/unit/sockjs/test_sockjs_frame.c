/* Unit tests for core/sockjs_frame.c: quoting, client payload parsing, frames and their
 * per-transport wrapping, session paths, callbacks, the iframe page and form fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sockjs/sockjs_frame.h"
#include "base/utf8.h"

static char *quoted(const char *s, size_t n) {
  static char out[4096];
  rt_buf b = {0};
  assert_int_equal(rt_sockjs_quote(&b, (const uint8_t *)s, n), 0);
  assert_true(b.len < sizeof out);
  memcpy(out, rt_buf_start(&b), b.len);
  out[b.len] = 0;
  rt_buf_free(&b);
  return out;
}
#define Q(lit) quoted(lit, sizeof(lit) - 1)

static void test_quote(void **state) {
  assert_string_equal(Q("hello"), "\"hello\"");
  assert_string_equal(Q(""), "\"\"");
  assert_string_equal(Q("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
  assert_string_equal(Q("\n\r\t\b\x01\x1f"), "\"\\n\\r\\t\\u0008\\u0001\\u001f\"");
  /* Common scripts stay UTF-8; the characters SockJS escapes become \u. */
  assert_string_equal(Q("你好 é ж"), "\"你好 é ж\"");
  assert_string_equal(Q("\xe2\x80\xa8|\xef\xbb\xbf|\xc2\x7f"), "\"\\u2028|\\ufeff|\\ufffd\\u007f\"");
  assert_string_equal(Q("\x7f\xc2\x80\xc2\xad"), "\"\\u007f\\u0080\\u00ad\"");
  /* Above U+FFFF: a surrogate pair, as JavaScript holds it. */
  assert_string_equal(Q("\xf0\x9f\x98\x80"), "\"\\ud83d\\ude00\"");
  /* Bytes that are not UTF-8 (a lone continuation, a truncated sequence, an encoded
   * surrogate, an overlong) each arrive as U+FFFD. */
  assert_string_equal(Q("a\x80z"), "\"a\\ufffdz\"");
  assert_string_equal(Q("\xe4\xbd"), "\"\\ufffd\\ufffd\"");
  assert_string_equal(Q("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
  assert_string_equal(Q("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
  /* NUL inside a message. */
  assert_string_equal(quoted("a\0b", 3), "\"a\\u0000b\"");
}

typedef struct got {
  char msgs[16][2048];
  size_t lens[16];
  int n, stop_after;
} got;

static int collect(void *ud, const uint8_t *m, size_t len) {
  got *g = ud;
  assert_true(g->n < 16 && len < sizeof g->msgs[0]);
  memcpy(g->msgs[g->n], m, len);
  g->msgs[g->n][len] = 0;
  g->lens[g->n++] = len;
  return g->stop_after && g->n >= g->stop_after;
}

static long parse(const char *p, got *g) {
  rt_buf scratch = {0};
  memset(g, 0, sizeof *g);
  long n = rt_sockjs_parse_messages((const uint8_t *)p, strlen(p), &scratch, collect, g);
  rt_buf_free(&scratch);
  /* The check-only walk agrees. */
  assert_int_equal(rt_sockjs_parse_messages((const uint8_t *)p, strlen(p), NULL, NULL, NULL), n);
  return n;
}

static void test_parse(void **state) {
  got g;
  assert_int_equal(parse("[\"a\",\"b\"]", &g), 2);
  assert_string_equal(g.msgs[0], "a");
  assert_string_equal(g.msgs[1], "b");
  assert_int_equal(parse(" [ \"x\" ,\n\t\"y\" ] \r\n", &g), 2);
  assert_int_equal(parse("\"single\"", &g), 1);
  assert_string_equal(g.msgs[0], "single");
  assert_int_equal(parse("[]", &g), 0);
  assert_int_equal(parse("[\"\"]", &g), 1);
  assert_int_equal(g.lens[0], 0);
  assert_int_equal(parse("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", &g), 1);
  assert_string_equal(g.msgs[0], "\"\\/\b\f\n\r\t");
  assert_int_equal(parse("[\"\\u00e9\\u4F60\\ud83d\\ude00 raw: 你\"]", &g), 1);
  assert_string_equal(g.msgs[0], "é你\xf0\x9f\x98\x80 raw: 你");
  /* Escaped lone surrogates are no characters: U+FFFD. */
  assert_int_equal(parse("[\"\\ud800x\\udc00\\ud800\\u0041\"]", &g), 1);
  assert_string_equal(g.msgs[0], "\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd" "A");
  assert_int_equal(parse("[\"\\u0000\"]", &g), 1);
  assert_int_equal(g.lens[0], 1);
  assert_int_equal(g.msgs[0][0], 0);
  /* fn stops the walk. */
  rt_buf scratch = {0};
  memset(&g, 0, sizeof g);
  g.stop_after = 1;
  const char *three = "[\"1\",\"2\",\"3\"]";
  assert_int_equal(rt_sockjs_parse_messages((const uint8_t *)three, strlen(three), &scratch, collect, &g), 1);
  assert_int_equal(g.n, 1);
  rt_buf_free(&scratch);
}

static void test_parse_broken(void **state) {
  static const char *const bad[] = {
      "", " ", "[", "]", "[\"a\"", "[\"a\",]", "[,\"a\"]", "[\"a\" \"b\"]", "[\"a\"]x",
      "[\"a\"][\"b\"]", "\"a\" \"b\"", "[1]", "[null]", "[[\"a\"]]", "{\"a\":1}", "a",
      "[\"\\x\"]", "[\"\\u12\"]", "[\"\\u12g4\"]", "[\"\\\"]", "[\"a\nb\"]", "[\"tab\there\"]",
      "[\"\x80\"]", "[\"\xc3\"]", "[\"\xed\xa0\x80\"]", "'a'", "[\"a\"\0]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    got g;
    long n = parse(bad[i], &g);
    if (n != -1) fail_msg("payload %zu (%s) parsed as %ld messages", i, bad[i], n);
  }
  /* Every proper prefix of a valid payload is broken. */
  const char *ok = "[\"ab\\u00e9\",\"\\ud83d\\ude00\"]";
  for (size_t cut = 0; cut < strlen(ok); cut++) {
    char p[64];
    memcpy(p, ok, cut);
    p[cut] = 0;
    got g;
    if (parse(p, &g) != -1) fail_msg("prefix of %zu bytes parsed", cut);
  }
}

/* Whatever quote writes, parse reads back as the same text (for valid UTF-8 input). */
static void test_quote_parse_roundtrip(void **state) {
  srand(7);
  static const uint32_t picks[] = {0x00, 0x0a, 0x1f, '"', '\\', '/', 'a', 0x7f, 0xad, 0x2028, 0x4f60,
                                   0xfeff, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff, 0x0301, 0xd7ff, 0xe000};
  for (int round = 0; round < 500; round++) {
    uint8_t in[256];
    size_t n = 0;
    int chars = rand() % 20;
    for (int i = 0; i < chars; i++) {
      uint32_t cp = rand() % 3 ? picks[rand() % (sizeof picks / sizeof picks[0])] : (uint32_t)(rand() % 0x3000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 'x';
      if (cp < 0x80) in[n++] = (uint8_t)cp;
      else if (cp < 0x800) { in[n++] = (uint8_t)(0xc0 | cp >> 6); in[n++] = (uint8_t)(0x80 | (cp & 0x3f)); }
      else if (cp < 0x10000) { in[n++] = (uint8_t)(0xe0 | cp >> 12); in[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)); in[n++] = (uint8_t)(0x80 | (cp & 0x3f)); }
      else { in[n++] = (uint8_t)(0xf0 | cp >> 18); in[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)); in[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)); in[n++] = (uint8_t)(0x80 | (cp & 0x3f)); }
    }
    assert_true(rt_utf8_valid(in, n));
    rt_buf b = {0}, scratch = {0};
    assert_int_equal(rt_buf_append(&b, "[", 1), 0);
    assert_int_equal(rt_sockjs_quote(&b, in, n), 0);
    assert_int_equal(rt_buf_append(&b, "]", 1), 0);
    got g;
    memset(&g, 0, sizeof g);
    assert_int_equal(rt_sockjs_parse_messages(rt_buf_start(&b), b.len, &scratch, collect, &g), 1);
    assert_int_equal(g.lens[0], n);
    assert_memory_equal(g.msgs[0], in, n);
    rt_buf_free(&b);
    rt_buf_free(&scratch);
  }
}

static void test_session_path(void **state) {
  char sid[RT_SOCKJS_MAX_ID + 1];
  assert_int_equal(rt_sockjs_parse_session_path("/000/abc/xhr", sid), RT_SOCKJS_XHR);
  assert_string_equal(sid, "abc");
  assert_int_equal(rt_sockjs_parse_session_path("/1/s-_~!/xhr_streaming", sid), RT_SOCKJS_XHR_STREAMING);
  assert_string_equal(sid, "s-_~!");
  /* Any characters but '.' and '/': the reference suite's "/abcdefgh_i-j%20/..." decoded. */
  assert_int_equal(rt_sockjs_parse_session_path("/abcdefgh_i-j /abcdefg_i-j \xc3\xa9/xhr", sid), RT_SOCKJS_XHR);
  assert_string_equal(sid, "abcdefg_i-j \xc3\xa9");
  assert_int_equal(rt_sockjs_parse_session_path("/a/b/websocket", sid), RT_SOCKJS_WEBSOCKET);
  assert_int_equal(rt_sockjs_parse_session_path("/a/b/jsonp_send", sid), RT_SOCKJS_JSONP_SEND);
  static const char *const bad[] = {"", "/", "/a", "/a/b", "/a/b/", "/a/b/xhrx", "/a.b/c/xhr",
                                    "/a/b.c/xhr", "//b/xhr", "/a//xhr", "/a/b/xhr/", "/a/b/c/xhr",
                                    "a/b/xhr", "/a/b\nc/xhr", "/a/b\x7f/xhr", "/a/b/XHR"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (rt_sockjs_parse_session_path(bad[i], sid) != -1) fail_msg("'%s' parsed", bad[i]);
  char longer[RT_SOCKJS_MAX_ID + 16];
  snprintf(longer, sizeof longer, "/a/%0*d/xhr", RT_SOCKJS_MAX_ID, 0);
  assert_int_equal(rt_sockjs_parse_session_path(longer, sid), RT_SOCKJS_XHR);
  snprintf(longer, sizeof longer, "/a/%0*d/xhr", RT_SOCKJS_MAX_ID + 1, 0);
  assert_int_equal(rt_sockjs_parse_session_path(longer, sid), -1);
  for (int t = 0; t < RT_SOCKJS_TRANSPORTS; t++)
    assert_int_equal(rt_sockjs_transport_parse(rt_sockjs_transport_name(t)), t);
  assert_true(rt_sockjs_transport_receives(RT_SOCKJS_JSONP));
  assert_false(rt_sockjs_transport_receives(RT_SOCKJS_XHR_SEND));
  assert_true(rt_sockjs_transport_streams(RT_SOCKJS_EVENTSOURCE));
  assert_false(rt_sockjs_transport_streams(RT_SOCKJS_XHR));
}

static void test_callback(void **state) {
  assert_true(rt_sockjs_callback_valid("cb"));
  assert_true(rt_sockjs_callback_valid("_jp.a1b2-c_3"));
  assert_false(rt_sockjs_callback_valid(""));
  assert_false(rt_sockjs_callback_valid("a(b)"));
  assert_false(rt_sockjs_callback_valid("a;alert(1)"));
  assert_false(rt_sockjs_callback_valid("a b"));
  assert_false(rt_sockjs_callback_valid("<x>"));
  char big[RT_SOCKJS_MAX_CALLBACK + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_false(rt_sockjs_callback_valid(big));
  big[RT_SOCKJS_MAX_CALLBACK] = 0;
  assert_true(rt_sockjs_callback_valid(big));
}

static char *wrapped(int t, const char *cb, const char *frame) {
  static char out[4096];
  rt_buf b = {0};
  assert_int_equal(rt_sockjs_wrap(&b, t, cb, (const uint8_t *)frame, strlen(frame)), 0);
  memcpy(out, rt_buf_start(&b), b.len);
  out[b.len] = 0;
  rt_buf_free(&b);
  return out;
}

static void test_frames_and_wrapping(void **state) {
  rt_buf b = {0};
  assert_int_equal(rt_sockjs_close_frame(&b, 3000, "Go \"away\"!"), 0);
  assert_int_equal(rt_buf_append(&b, "", 1), 0);
  assert_string_equal((char *)rt_buf_start(&b), "c[3000,\"Go \\\"away\\\"!\"]");
  rt_buf_free(&b);

  rt_chunk *m[2] = {rt_chunk_copy("\"x\"", 3), rt_chunk_copy("\"y\\n\"", 5)};
  assert_int_equal(rt_sockjs_array_frame(&b, m, 2), 0);
  assert_int_equal(rt_buf_append(&b, "", 1), 0);
  assert_string_equal((char *)rt_buf_start(&b), "a[\"x\",\"y\\n\"]");
  /* The affixes around shared messages give the same bytes as wrapping the frame. */
  for (int t = RT_SOCKJS_WEBSOCKET; t <= RT_SOCKJS_EVENTSOURCE; t++) {
    const char *head, *tail;
    assert_int_equal(rt_sockjs_array_affixes(t, &head, &tail), 0);
    char joined[256];
    snprintf(joined, sizeof joined, "%sx%s", head, tail);
    char want[256];
    snprintf(want, sizeof want, "%s", wrapped(t, NULL, "a[x]"));
    assert_string_equal(joined, want);
  }
  const char *h, *tl;
  assert_int_equal(rt_sockjs_array_affixes(RT_SOCKJS_HTMLFILE, &h, &tl), -1);
  assert_int_equal(rt_sockjs_array_affixes(RT_SOCKJS_JSONP, &h, &tl), -1);
  rt_buf_free(&b);
  rt_chunk_unref(m[0]);
  rt_chunk_unref(m[1]);

  assert_string_equal(wrapped(RT_SOCKJS_WEBSOCKET, NULL, "o"), "o");
  assert_string_equal(wrapped(RT_SOCKJS_XHR, NULL, "h"), "h\n");
  assert_string_equal(wrapped(RT_SOCKJS_EVENTSOURCE, NULL, "o"), "data: o\r\n\r\n");
  assert_string_equal(wrapped(RT_SOCKJS_JSONP, "cb.x", "a[\"q\"]"), "/**/cb.x(\"a[\\\"q\\\"]\");\r\n");
  /* htmlfile: "</script>" in a message may not end the script element. */
  assert_string_equal(wrapped(RT_SOCKJS_HTMLFILE, "cb", "a[\"</script>\"]"),
                      "<script>\np(\"a[\\\"\\u003c/script>\\\"]\");\n</script>\r\n");
  assert_int_equal(rt_sockjs_wrap(&b, RT_SOCKJS_XHR_SEND, NULL, (const uint8_t *)"o", 1), -1);
  rt_buf_free(&b);
}

static void test_preludes(void **state) {
  rt_buf b = {0};
  assert_int_equal(rt_sockjs_prelude(&b, RT_SOCKJS_XHR_STREAMING, NULL), 0);
  assert_int_equal(b.len, 2049);
  assert_int_equal(rt_buf_start(&b)[0], 'h');
  assert_int_equal(rt_buf_start(&b)[2047], 'h');
  assert_int_equal(rt_buf_start(&b)[2048], '\n');
  rt_buf_free(&b);
  assert_int_equal(rt_sockjs_prelude(&b, RT_SOCKJS_EVENTSOURCE, NULL), 0);
  assert_int_equal(b.len, 2);
  rt_buf_free(&b);
  assert_int_equal(rt_sockjs_prelude(&b, RT_SOCKJS_HTMLFILE, "my_cb"), 0);
  assert_true(b.len >= 1024 + 4);
  assert_int_equal(rt_buf_append(&b, "", 1), 0);
  const char *page = (const char *)rt_buf_start(&b);
  assert_non_null(strstr(page, "var c = parent.my_cb;"));
  assert_memory_equal(page + b.len - 5, "\r\n\r\n", 4);
  rt_buf_free(&b);
  assert_int_equal(rt_sockjs_prelude(&b, RT_SOCKJS_XHR, NULL), 0);
  assert_int_equal(b.len, 0);
  rt_buf_free(&b);
}

static void test_iframe_and_etag(void **state) {
  rt_buf a = {0}, b = {0};
  assert_int_equal(rt_sockjs_iframe_page(&a, "/js/sockjs.min.js"), 0);
  assert_int_equal(rt_sockjs_iframe_page(&b, "/other.js"), 0);
  assert_int_equal(rt_buf_append(&a, "", 1), 0);
  assert_non_null(strstr((char *)rt_buf_start(&a), "<script src=\"/js/sockjs.min.js\"></script>"));
  char ea[24], ea2[24], eb[24];
  rt_sockjs_etag(rt_buf_start(&a), a.len, ea);
  rt_sockjs_etag(rt_buf_start(&a), a.len, ea2);
  rt_sockjs_etag(rt_buf_start(&b), b.len, eb);
  assert_string_equal(ea, ea2);
  assert_string_not_equal(ea, eb);
  assert_int_equal(ea[0], '"');
  assert_int_equal(strlen(ea), 18);
  rt_buf_free(&a);
  rt_buf_free(&b);
}

static void test_form_field(void **state) {
  rt_buf b = {0};
  const char *form = "x=1&d=%5B%22a+b%22%2C%22%E4%BD%A0%22%5D&y=2";
  assert_int_equal(rt_sockjs_form_field((const uint8_t *)form, strlen(form), "d", &b), 1);
  assert_int_equal(rt_buf_append(&b, "", 1), 0);
  assert_string_equal((char *)rt_buf_start(&b), "[\"a b\",\"你\"]");
  rt_buf_free(&b);
  assert_int_equal(rt_sockjs_form_field((const uint8_t *)"dd=1&xd=2", 9, "d", &b), 0);
  assert_int_equal(rt_sockjs_form_field((const uint8_t *)"d=%zz%4", 7, "d", &b), 1);
  assert_int_equal(b.len, 5);  /* bad escapes stay as they are */
  rt_buf_free(&b);
  assert_int_equal(rt_sockjs_form_field((const uint8_t *)"a=1&d", 5, "d", &b), 1);
  assert_int_equal(b.len, 0);
  rt_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote),          cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_broken),   cmocka_unit_test(test_quote_parse_roundtrip),
      cmocka_unit_test(test_session_path),   cmocka_unit_test(test_callback),
      cmocka_unit_test(test_frames_and_wrapping), cmocka_unit_test(test_preludes),
      cmocka_unit_test(test_iframe_and_etag), cmocka_unit_test(test_form_field),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
