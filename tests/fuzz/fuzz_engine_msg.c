/* libFuzzer harness for the engine message codec (core/engine_msg.c): what arrives from
 * Redis or another worker. Checks: no crash, overread or leak on any input; whatever
 * decodes encodes back to the same bytes (the history prefix, "RH" epoch:offset, too). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/engine_msg.h"

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);     \
      abort();                                                                   \
    }                                                                            \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rt_buf scratch = {0}, again = {0};
  rt_engine_msg m;
  char err[160];
  if (rt_engine_msg_decode(data, size, &m, &scratch, err, sizeof err) == 0) {
    if (m.offset) {  /* the history prefix has one spelling: it comes back the same */
      char prefix[64];
      int n = snprintf(prefix, sizeof prefix, "RH%s:%llu\n", m.epoch, (unsigned long long)m.offset);
      CHECK(rt_buf_append(&again, prefix, (size_t)n) == 0);
    }
    CHECK(rt_engine_msg_encode(&again, &m) == 0);
    CHECK(again.len == size && memcmp(rt_buf_start(&again), data, size) == 0);
  } else {
    CHECK(err[0]);
  }
  rt_buf_free(&scratch);
  rt_buf_free(&again);
  return 0;
}
