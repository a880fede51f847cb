/* libFuzzer harness for the SockJS codec's client-facing parsers (core/sockjs_frame.c):
 * xhr_send / websocket payloads (a JSON array of strings, or one string), jsonp_send's
 * form field, session paths and callback names. Byte 0 picks the parser.
 * Checks: no crash or leak; every decoded message is valid UTF-8, and quoting it back into
 * a[...] and parsing that again gives the same message (a round trip through the framing
 * the server sends). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockjs/sockjs_frame.h"
#include "base/utf8.h"

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

typedef struct expect {
  const uint8_t *msg;
  size_t len;
  int seen;
} expect;

static int check_same(void *ud, const uint8_t *msg, size_t len) {
  expect *e = ud;
  CHECK(e->seen == 0 && len == e->len && (len == 0 || memcmp(msg, e->msg, len) == 0));
  e->seen++;
  return 0;
}

static int round_trip(void *ud, const uint8_t *msg, size_t len) {
  CHECK(rt_utf8_valid(msg, len));
  rt_buf quoted = {0}, frame = {0}, scratch = {0};
  CHECK(rt_sockjs_quote(&quoted, msg, len) == 0);
  rt_buf_append(&frame, "[", 1);
  rt_buf_append(&frame, rt_buf_start(&quoted), quoted.len);
  rt_buf_append(&frame, "]", 1);
  expect e = {msg, len, 0};
  CHECK(rt_sockjs_parse_messages(rt_buf_start(&frame), frame.len, &scratch, check_same, &e) == 1);
  CHECK(e.seen == 1);
  rt_buf_free(&quoted);
  rt_buf_free(&frame);
  rt_buf_free(&scratch);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  rt_buf scratch = {0}, out = {0};
  switch (data[0] % 4) {
    case 0: {
      long checked = rt_sockjs_parse_messages(p, n, &scratch, NULL, NULL);
      long got = rt_sockjs_parse_messages(p, n, &scratch, round_trip, NULL);
      CHECK(checked == got);
      break;
    }
    case 1:
      if (rt_sockjs_form_field(p, n, "d", &out) == 1)
        rt_sockjs_parse_messages(rt_buf_start(&out), out.len, &scratch, round_trip, NULL);
      break;
    default: {
      char *s = malloc(n + 1);
      if (!s) return 0;
      memcpy(s, p, n);
      s[n] = 0;
      char sid[RT_SOCKJS_MAX_ID + 1];
      int t = rt_sockjs_parse_session_path(s, sid);
      if (t >= 0) CHECK(strlen(sid) <= RT_SOCKJS_MAX_ID && rt_sockjs_transport_name(t));
      rt_sockjs_callback_valid(s);
      free(s);
    }
  }
  rt_buf_free(&scratch);
  rt_buf_free(&out);
  return 0;
}
