/* libFuzzer harness for WebSocket draft 76 (core/ws/hixie76_frame.c): byte 0 picks the
 * client frame parser (fed whole, then in two pieces: the same messages and result either
 * way; every message valid UTF-8, within the limit, without 0xFF) or the handshake answer
 * (key1 NUL key2 NUL key3: never a crash, the same answer twice). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "ws/hixie76_frame.h"

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

#define MAX 64

typedef struct log {
  rt_buf all;  /* each message, then a 0xFF */
} log_t;

static void on_message(void *ud, const uint8_t *msg, size_t len) {
  log_t *l = ud;
  CHECK(len <= MAX && rt_utf8_valid(msg, len) && !memchr(msg, 0xff, len));
  rt_buf_append(&l->all, msg, len);
  rt_buf_append(&l->all, "\xff", 1);
}

static int run(const uint8_t *p, size_t n, size_t split, log_t *l) {
  rt_hixie76_parser ps = {.max_message = MAX};
  int rc = rt_hixie76_feed(&ps, p, split, on_message, l);
  if (rc == RT_HIXIE76_MORE) rc = rt_hixie76_feed(&ps, p + split, n - split, on_message, l);
  rt_hixie76_parser_free(&ps);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (data[0] & 1) {
    log_t a = {{0}}, b = {{0}};
    int ra = run(p, n, n, &a), rb = run(p, n, n / 2, &b);
    CHECK(ra == rb);
    CHECK(a.all.len == b.all.len && (!a.all.len || memcmp(rt_buf_start(&a.all), rt_buf_start(&b.all), a.all.len) == 0));
    rt_buf_free(&a.all);
    rt_buf_free(&b.all);
  } else {
    char k1[128] = "", k2[128] = "";
    uint8_t k3[8] = {0}, out1[16], out2[16];
    const uint8_t *z1 = memchr(p, 0, n);
    if (!z1 || (size_t)(z1 - p) >= sizeof k1) return 0;
    memcpy(k1, p, (size_t)(z1 - p));
    const uint8_t *rest = z1 + 1;
    size_t rn = n - (size_t)(rest - p);
    const uint8_t *z2 = memchr(rest, 0, rn);
    if (!z2 || (size_t)(z2 - rest) >= sizeof k2) return 0;
    memcpy(k2, rest, (size_t)(z2 - rest));
    size_t k3n = rn - (size_t)(z2 + 1 - rest);
    memcpy(k3, z2 + 1, k3n < 8 ? k3n : 8);
    int r1 = rt_hixie76_answer(k1, k2, k3, out1), r2 = rt_hixie76_answer(k1, k2, k3, out2);
    CHECK(r1 == r2 && (r1 < 0 || memcmp(out1, out2, 16) == 0));
  }
  return 0;
}
