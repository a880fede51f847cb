#include "feed.h"

#include <stdlib.h>
#include <string.h>

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

int tfeed_cuts(const void *data, size_t len, const size_t *cuts, int ncuts, tfeed_fn fn, void *ctx) {
  const uint8_t *d = data;
  size_t sorted[64];
  int n = ncuts < 64 ? ncuts : 64, pieces = 0;
  if (n > 0) memcpy(sorted, cuts, (size_t)n * sizeof *sorted);
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_size);
  size_t pos = 0;
  for (int i = 0; i < n; i++) {
    size_t cut = sorted[i];
    if (cut <= pos || cut >= len) continue;
    fn(ctx, d + pos, cut - pos);
    pieces++;
    pos = cut;
  }
  if (pos < len) {
    fn(ctx, d + pos, len - pos);
    pieces++;
  }
  return pieces;
}

int tfeed_chunked(const void *data, size_t len, size_t size, tfeed_fn fn, void *ctx) {
  const uint8_t *d = data;
  int pieces = 0;
  if (size == 0) size = len ? len : 1;
  for (size_t pos = 0; pos < len; pos += size) {
    fn(ctx, d + pos, len - pos < size ? len - pos : size);
    pieces++;
  }
  return pieces;
}

int tfeed_bytewise(const void *data, size_t len, tfeed_fn fn, void *ctx) {
  return tfeed_chunked(data, len, 1, fn, ctx);
}

int tfeed_plan_next(size_t len, size_t pair_limit, size_t *iter, size_t cuts[2]) {
  size_t i = (*iter)++;
  if (i <= len) {
    cuts[0] = i;
    return 1;
  }
  if (len > pair_limit || len < 2) return 0;
  /* Pairs 1 <= a < b <= len-1, numbered row by row. */
  i -= len + 1;
  for (size_t a = 1; a + 1 < len; a++) {
    size_t row = len - 1 - a;
    if (i < row) {
      cuts[0] = a;
      cuts[1] = a + 1 + i;
      return 2;
    }
    i -= row;
  }
  return 0;
}
