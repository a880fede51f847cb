/* libFuzzer harness for permessage-deflate (core/ws_deflate.c): byte 0 picks the part.
 *   even: the input (rest) is a compressed message from a client. It is inflated with a
 *         limit taken from byte 1; checks: the output never passes limit + 1 bytes, an
 *         inflater that failed or was reset still inflates a known message, and what
 *         inflated, compressed again and inflated gives the same bytes (in both
 *         context modes).
 *   odd:  the input is a Sec-WebSocket-Extensions value; checks: an accepted offer's
 *         response parses back (as an offer) to the same parameters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_deflate.h"

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

static void check_inflater_alive(rt_ws_inflater *f) {
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  rt_buf out = {0};
  CHECK(rt_ws_inflate_msg(f, hello, sizeof hello, 100, 1, &out) == RT_WS_INFLATE_OK);
  CHECK(out.len == 5 && memcmp(rt_buf_start(&out), "Hello", 5) == 0);
  rt_buf_free(&out);
}

static void round_trip(const uint8_t *msg, size_t len, int reset) {
  rt_ws_deflater d;
  rt_ws_inflater f;
  CHECK(rt_ws_deflater_init(&d, 15) == 0);
  CHECK(rt_ws_inflater_init(&f, 15) == 0);
  for (int i = 0; i < 2; i++) {  /* twice: the second may refer to the first */
    rt_buf z = {0}, out = {0};
    CHECK(rt_ws_deflate_part(&d, msg, len, &z) == 0);
    CHECK(rt_ws_deflate_finish(&d, reset, &z) == 0);
    CHECK(rt_ws_inflate_msg(&f, rt_buf_start(&z), z.len, len, reset, &out) == RT_WS_INFLATE_OK);
    CHECK(out.len == len && (len == 0 || memcmp(rt_buf_start(&out), msg, len) == 0));
    rt_buf_free(&z);
    rt_buf_free(&out);
  }
  rt_ws_deflater_end(&d);
  rt_ws_inflater_end(&f);
}

static void fuzz_inflate(const uint8_t *data, size_t size) {
  if (size < 1) return;
  size_t max = (size_t)data[0] * 64;  /* 0 .. 16320: small limits get hit */
  int reset = data[0] & 1;
  rt_ws_inflater f;
  CHECK(rt_ws_inflater_init(&f, 15) == 0);
  rt_buf out = {0};
  int rc = rt_ws_inflate_msg(&f, data + 1, size - 1, max, reset, &out);
  CHECK(out.len <= max + 1);
  CHECK(rc == RT_WS_INFLATE_OK || rc == RT_WS_INFLATE_TOO_BIG || rc == RT_WS_INFLATE_CORRUPT);
  if (rc == RT_WS_INFLATE_OK) {
    round_trip(rt_buf_start(&out), out.len, 1);
    round_trip(rt_buf_start(&out), out.len, 0);
  }
  if (rc != RT_WS_INFLATE_OK || reset) check_inflater_alive(&f);
  rt_buf_free(&out);
  rt_ws_inflater_end(&f);
}

static void fuzz_negotiate(const uint8_t *data, size_t size, int takeover) {
  char *value = malloc(size + 1);
  CHECK(value);
  memcpy(value, data, size);
  value[size] = 0;
  const char *values[] = {value};
  rt_ws_deflate_params p, back;
  char resp[200], resp2[200];
  if (rt_ws_deflate_negotiate(values, 1, takeover, &p, resp, sizeof resp)) {
    CHECK(p.on && p.server_bits >= 9 && p.server_bits <= 15 && p.client_bits == 15);
    CHECK(takeover || (p.server_no_takeover && p.client_no_takeover));
    /* our answer, read as an offer, is accepted with the same terms */
    const char *again[] = {resp};
    CHECK(rt_ws_deflate_negotiate(again, 1, takeover, &back, resp2, sizeof resp2) == 1);
    CHECK(memcmp(&p, &back, sizeof p) == 0 && strcmp(resp, resp2) == 0);
  } else {
    CHECK(!p.on && resp[0] == 0);
  }
  free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) fuzz_negotiate(data + 1, size - 1, (data[0] >> 1) & 1);
  else fuzz_inflate(data + 1, size - 1);
  return 0;
}
