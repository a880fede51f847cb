/* A scripted byte feeder: hands a byte string to a consumer in pieces, so a codec test can
 * check that splitting the stream anywhere (one byte at a time, at every cut point, at
 * every pair of cut points) gives the same result as feeding it whole.
 *
 *   static void eat(void *ctx, const uint8_t *p, size_t n) { ... }
 *   for (size_t cut = 0; cut <= len; cut++) { reset(ctx); tfeed_cuts(data, len, &cut, 1, eat, ctx); }
 */
#ifndef TEST_FEED_H
#define TEST_FEED_H

#include <stddef.h>
#include <stdint.h>

typedef void (*tfeed_fn)(void *ctx, const uint8_t *piece, size_t n);

/* Pieces end at the cut points (any order, duplicates and out-of-range ones ignored), then
 * the rest. Empty pieces are never passed. Returns how many pieces fn got. */
int tfeed_cuts(const void *data, size_t len, const size_t *cuts, int ncuts, tfeed_fn fn, void *ctx);
/* Every byte its own piece. */
int tfeed_bytewise(const void *data, size_t len, tfeed_fn fn, void *ctx);
/* Pieces of `size` bytes (the last may be shorter). */
int tfeed_chunked(const void *data, size_t len, size_t size, tfeed_fn fn, void *ctx);

/* Plans for "every split": call with *iter = 0 until it returns 0; each call fills cuts
 * (up to 2) and returns how many. One-cut plans cover 0..len, then two-cut plans cover
 * every pair a < b when len <= pair_limit (they are O(len^2)). */
int tfeed_plan_next(size_t len, size_t pair_limit, size_t *iter, size_t cuts[2]);

#endif
