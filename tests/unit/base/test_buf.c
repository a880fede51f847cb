/* Unit tests for core/buf.c: growable buffers, shared chunks and the write queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
}

static void test_append_consume(void **state) {
  rt_buf b = {0};
  assert_int_equal(rt_buf_append(&b, "hello ", 6), 0);
  assert_int_equal(rt_buf_append(&b, "world", 5), 0);
  assert_int_equal(b.len, 11);
  assert_memory_equal(rt_buf_start(&b), "hello world", 11);
  assert_ptr_equal(rt_buf_end(&b), rt_buf_start(&b) + 11);

  rt_buf_consume(&b, 6);
  assert_int_equal(b.len, 5);
  assert_memory_equal(rt_buf_start(&b), "world", 5);

  /* Consuming everything (or more) empties the buffer and rewinds it. */
  rt_buf_consume(&b, 100);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.off, 0);
  assert_int_equal(rt_buf_append(&b, "x", 1), 0);
  assert_int_equal(rt_buf_start(&b)[0], 'x');
  rt_buf_free(&b);
  assert_null(b.data);
  assert_int_equal(b.len + b.off + b.cap, 0);

  /* Free leaves a reusable buffer. */
  assert_int_equal(rt_buf_append(&b, "again", 5), 0);
  assert_memory_equal(rt_buf_start(&b), "again", 5);
  rt_buf_free(&b);
}

static void test_appendf(void **state) {
  rt_buf b = {0};
  assert_int_equal(rt_buf_appendf(&b, "%d-%s", 42, "x"), 0);
  assert_int_equal(rt_buf_appendf(&b, "|%05d", 7), 0);
  assert_int_equal(b.len, 10);
  assert_memory_equal(rt_buf_start(&b), "42-x|00007", 10);
  /* A long formatted string forces growth mid-format. */
  char big[3000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(rt_buf_appendf(&b, "%s!", big), 0);
  assert_int_equal(b.len, 10 + 2999 + 1);
  assert_int_equal(rt_buf_start(&b)[b.len - 1], '!');
  assert_int_equal(rt_buf_start(&b)[10], 'a');
  rt_buf_free(&b);
}

static void test_reserve_slides_before_growing(void **state) {
  rt_buf b = {0};
  uint8_t data[1024];
  fill(data, sizeof data, 1);
  assert_int_equal(rt_buf_append(&b, data, sizeof data), 0);
  size_t cap = b.cap;
  assert_true(cap >= 1024);
  uint8_t *mem = b.data;
  /* Consume most of it, then ask for room that fits only if the front is reclaimed. */
  rt_buf_consume(&b, 1000);
  assert_int_equal(rt_buf_reserve(&b, cap - 24), 0);
  assert_ptr_equal(b.data, mem);  /* no reallocation */
  assert_int_equal(b.cap, cap);
  assert_int_equal(b.off, 0);
  assert_int_equal(b.len, 24);
  assert_memory_equal(rt_buf_start(&b), data + 1000, 24);
  /* The reserved room is really there. */
  assert_true(b.off + b.len + (cap - 24) <= b.cap);
  rt_buf_free(&b);
}

static void test_reserve_grows_and_keeps_bytes(void **state) {
  rt_buf b = {0};
  uint8_t data[100000];
  fill(data, sizeof data, 3);
  size_t pos = 0;
  /* Appends of odd sizes, with consumes in between, keep the byte stream intact. */
  size_t taken = 0;
  for (size_t step = 1; pos < sizeof data; step = step * 3 % 1001 + 1) {
    size_t n = sizeof data - pos < step ? sizeof data - pos : step;
    assert_int_equal(rt_buf_append(&b, data + pos, n), 0);
    pos += n;
    size_t eat = b.len / 3;
    assert_memory_equal(rt_buf_start(&b), data + taken, b.len);
    rt_buf_consume(&b, eat);
    taken += eat;
  }
  assert_int_equal(taken + b.len, sizeof data);
  assert_memory_equal(rt_buf_start(&b), data + taken, b.len);
  rt_buf_free(&b);

  /* One big reserve on an empty buffer. */
  assert_int_equal(rt_buf_reserve(&b, 70000), 0);
  assert_true(b.cap >= 70000);
  assert_int_equal(b.len, 0);
  rt_buf_free(&b);
}

static void test_chunk_refs(void **state) {
  rt_chunk *c = rt_chunk_copy("abc", 3);
  assert_non_null(c);
  assert_int_equal(c->refs, 1);
  assert_int_equal(c->len, 3);
  assert_memory_equal(c->data, "abc", 3);
  assert_ptr_equal(rt_chunk_ref(c), c);
  assert_int_equal(c->refs, 2);
  rt_chunk_unref(c);
  assert_int_equal(c->refs, 1);
  rt_chunk_unref(c);  /* freed: ASan/valgrind would flag a leak or double free */
  rt_chunk_unref(NULL);

  rt_chunk *e = rt_chunk_copy(NULL, 0);
  assert_non_null(e);
  assert_int_equal(e->len, 0);
  rt_chunk_unref(e);
}

static void test_chunk_pool_reuses_up_to_its_bound(void **state) {
  rt_chunk_pool p;
  rt_chunk_pool_init(&p, 64, 2);
  rt_chunk *a = rt_chunk_pool_get(&p, 5), *b = rt_chunk_pool_get(&p, 0), *c = rt_chunk_pool_get(&p, 64);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_int_equal(a->cap, 64);
  assert_int_equal(a->len, 5);
  assert_int_equal(a->refs, 1);
  rt_chunk_ref(a);
  rt_chunk_unref(a);
  assert_int_equal(p.nspare, 0);  /* still referenced: not back yet */
  rt_chunk_unref(a);
  rt_chunk_unref(b);
  rt_chunk_unref(c);               /* over the bound of 2: freed */
  assert_int_equal(p.nspare, 2);
  /* The last one back is the first one out, reset to the asked length and one ref. */
  rt_chunk *again = rt_chunk_pool_get(&p, 7);
  assert_ptr_equal(again, b);
  assert_int_equal(again->len, 7);
  assert_int_equal(again->refs, 1);
  assert_int_equal(p.nspare, 1);
  /* Longer than the pool's chunks: an ordinary chunk that is freed, not pooled. */
  rt_chunk *big = rt_chunk_pool_get(&p, 65);
  assert_non_null(big);
  assert_null(big->pool);
  rt_chunk_unref(big);
  assert_int_equal(p.nspare, 1);
  rt_chunk_unref(again);
  rt_chunk_pool_drain(&p);         /* leak checkers see both spares freed */
  assert_int_equal(p.nspare, 0);
  assert_null(p.spare);
}

/* A queue of chunks of sizes 3, 5, 7 (bytes 0..14). */
static void push_sizes(rt_outq *q, rt_chunk **cs, const size_t *sizes, int n) {
  uint8_t v = 0;
  for (int i = 0; i < n; i++) {
    cs[i] = rt_chunk_new(sizes[i]);
    for (size_t j = 0; j < sizes[i]; j++) cs[i]->data[j] = v++;
    assert_int_equal(rt_outq_push(q, cs[i]), 0);
    assert_int_equal(cs[i]->refs, 2);
  }
}

static void test_outq_advance_across_chunks(void **state) {
  rt_outq q = {0};
  rt_chunk *cs[3];
  const size_t sizes[] = {3, 5, 7};
  push_sizes(&q, cs, sizes, 3);
  assert_int_equal(q.bytes, 15);
  assert_int_equal(rt_outq_count(&q), 3);

  rt_outq_advance(&q, 2);  /* inside the first */
  assert_int_equal(q.bytes, 13);
  assert_int_equal(rt_outq_count(&q), 3);
  assert_int_equal(q.v[q.head].off, 2);
  assert_int_equal(q.v[q.head].chunk->data[q.v[q.head].off], 2);

  rt_outq_advance(&q, 4);  /* finishes the first, 3 into the second */
  assert_int_equal(q.bytes, 9);
  assert_int_equal(rt_outq_count(&q), 2);
  assert_int_equal(cs[0]->refs, 1);  /* the queue let go of it */
  assert_ptr_equal(q.v[q.head].chunk, cs[1]);
  assert_int_equal(q.v[q.head].off, 3);
  assert_int_equal(q.v[q.head].chunk->data[q.v[q.head].off], 6);

  rt_outq_advance(&q, 2 + 7);  /* exactly to the end */
  assert_int_equal(q.bytes, 0);
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(cs[1]->refs, 1);
  assert_int_equal(cs[2]->refs, 1);
  for (int i = 0; i < 3; i++) rt_chunk_unref(cs[i]);
  rt_outq_clear(&q);
}

static void test_outq_skips_empty_chunks(void **state) {
  rt_outq q = {0};
  rt_chunk *a = rt_chunk_copy("ab", 2), *e = rt_chunk_new(0), *b = rt_chunk_copy("c", 1);
  rt_outq_push(&q, a);
  rt_outq_push(&q, e);
  assert_int_equal(q.bytes, 2);
  rt_outq_advance(&q, 2);
  /* The empty chunk after a finished one must not make the queue look non-empty. */
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(e->refs, 1);
  rt_outq_push(&q, e);
  rt_outq_push(&q, b);
  rt_outq_advance(&q, 1);
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(q.bytes, 0);
  rt_chunk_unref(a);
  rt_chunk_unref(e);
  rt_chunk_unref(b);
  rt_outq_clear(&q);
}

static void test_outq_drop_unstarted_keeps_half_written_head(void **state) {
  rt_outq q = {0};
  rt_chunk *cs[3];
  const size_t sizes[] = {3, 5, 7};
  push_sizes(&q, cs, sizes, 3);
  rt_outq_advance(&q, 4);  /* first done, second half written */
  rt_outq_drop_unstarted(&q);
  assert_int_equal(rt_outq_count(&q), 1);
  assert_ptr_equal(q.v[q.head].chunk, cs[1]);
  assert_int_equal(q.bytes, 4);  /* the rest of the second chunk */
  assert_int_equal(cs[2]->refs, 1);
  /* Pushing after a drop and finishing the head works. */
  rt_chunk *z = rt_chunk_copy("zz", 2);
  rt_outq_push(&q, z);
  assert_int_equal(q.bytes, 6);
  rt_outq_advance(&q, 4);
  assert_ptr_equal(q.v[q.head].chunk, z);
  rt_outq_advance(&q, 2);
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(q.bytes, 0);
  for (int i = 0; i < 3; i++) assert_int_equal(cs[i]->refs, 1);
  for (int i = 0; i < 3; i++) rt_chunk_unref(cs[i]);
  rt_chunk_unref(z);
  rt_outq_clear(&q);
}

static void test_outq_drop_unstarted_untouched_head(void **state) {
  rt_outq q = {0};
  rt_chunk *cs[3];
  const size_t sizes[] = {3, 5, 7};
  push_sizes(&q, cs, sizes, 3);
  rt_outq_advance(&q, 3);  /* first done exactly: the second has not started */
  rt_outq_drop_unstarted(&q);
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(q.bytes, 0);
  for (int i = 0; i < 3; i++) assert_int_equal(cs[i]->refs, 1);
  for (int i = 0; i < 3; i++) rt_chunk_unref(cs[i]);
  rt_outq_clear(&q);
}

static void test_outq_many_pushes_wraps_and_grows(void **state) {
  rt_outq q = {0};
  rt_chunk *c = rt_chunk_copy("0123456789", 10);
  size_t expect_bytes = 0;
  /* Push two, consume one, many times: exercises reuse of the consumed front (memmove)
   * and growth; the head always shows the oldest unsent chunk. */
  size_t sent = 0, pushed = 0;
  for (int round = 0; round < 1000; round++) {
    assert_int_equal(rt_outq_push(&q, c), 0);
    assert_int_equal(rt_outq_push(&q, c), 0);
    pushed += 2;
    expect_bytes += 20;
    rt_outq_advance(&q, 7);
    rt_outq_advance(&q, 3);
    sent++;
    expect_bytes -= 10;
    assert_int_equal(q.bytes, expect_bytes);
    assert_int_equal(rt_outq_count(&q), pushed - sent);
    assert_int_equal(c->refs, 1 + (int)(pushed - sent));
    assert_true(q.tail <= q.cap);
  }
  rt_outq_advance(&q, q.bytes);
  assert_int_equal(rt_outq_count(&q), 0);
  assert_int_equal(c->refs, 1);
  rt_outq_clear(&q);
  rt_chunk_unref(c);
}

static void test_outq_clear_drops_refs(void **state) {
  rt_outq q = {0};
  rt_chunk *c = rt_chunk_copy("x", 1);
  for (int i = 0; i < 10; i++) rt_outq_push(&q, c);
  assert_int_equal(c->refs, 11);
  rt_outq_advance(&q, 3);
  assert_int_equal(c->refs, 8);
  rt_outq_clear(&q);
  assert_int_equal(c->refs, 1);
  assert_int_equal(q.bytes, 0);
  assert_int_equal(rt_outq_count(&q), 0);
  rt_chunk_unref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_consume),
      cmocka_unit_test(test_appendf),
      cmocka_unit_test(test_reserve_slides_before_growing),
      cmocka_unit_test(test_reserve_grows_and_keeps_bytes),
      cmocka_unit_test(test_chunk_refs),
      cmocka_unit_test(test_chunk_pool_reuses_up_to_its_bound),
      cmocka_unit_test(test_outq_advance_across_chunks),
      cmocka_unit_test(test_outq_skips_empty_chunks),
      cmocka_unit_test(test_outq_drop_unstarted_keeps_half_written_head),
      cmocka_unit_test(test_outq_drop_unstarted_untouched_head),
      cmocka_unit_test(test_outq_many_pushes_wraps_and_grows),
      cmocka_unit_test(test_outq_clear_drops_refs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
