/* Unit tests for core/map.c: the string-keyed open-addressing hash map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TFAIL_IMPLEMENT
#include "failalloc.h"
#include "base/map.h"

#define V(n) ((void *)(uintptr_t)(n))

static void test_put_get_replace_remove(void **state) {
  rt_map m = {0};
  assert_null(rt_map_get(&m, "a"));      /* empty map, no slots yet */
  assert_null(rt_map_remove(&m, "a"));
  assert_int_equal(rt_map_put(&m, "a", V(1)), 0);
  assert_int_equal(rt_map_put(&m, "b", V(2)), 0);
  assert_int_equal(m.count, 2);
  assert_ptr_equal(rt_map_get(&m, "a"), V(1));
  assert_ptr_equal(rt_map_get(&m, "b"), V(2));
  assert_null(rt_map_get(&m, "c"));
  assert_null(rt_map_get(&m, ""));

  /* Replace keeps the count. */
  assert_int_equal(rt_map_put(&m, "a", V(10)), 0);
  assert_int_equal(m.count, 2);
  assert_ptr_equal(rt_map_get(&m, "a"), V(10));

  /* The map owns a copy of the key. */
  char key[8] = "temp";
  assert_int_equal(rt_map_put(&m, key, V(3)), 0);
  strcpy(key, "XXXX");
  assert_ptr_equal(rt_map_get(&m, "temp"), V(3));
  assert_null(rt_map_get(&m, "XXXX"));

  assert_ptr_equal(rt_map_remove(&m, "a"), V(10));
  assert_null(rt_map_get(&m, "a"));
  assert_null(rt_map_remove(&m, "a"));
  assert_int_equal(m.count, 2);
  assert_ptr_equal(rt_map_get(&m, "b"), V(2));

  /* The empty key is a key like any other. */
  assert_int_equal(rt_map_put(&m, "", V(7)), 0);
  assert_ptr_equal(rt_map_get(&m, ""), V(7));
  rt_map_free(&m);
  assert_int_equal(m.cap + m.count + m.tombs, 0);
  rt_map_free(&m);  /* freeing twice is harmless */
}

/* Keys that collide into one probe chain: find some with the same home slot in a map of
 * capacity 16, by trying. */
static int same_home(const char *a, const char *b, size_t cap) {
  uint64_t ha = 1469598103934665603ull, hb = ha;
  for (const char *s = a; *s; s++) ha = (ha ^ (uint8_t)*s) * 1099511628211ull;
  for (const char *s = b; *s; s++) hb = (hb ^ (uint8_t)*s) * 1099511628211ull;
  return (ha & (cap - 1)) == (hb & (cap - 1));
}

static void test_tombstones_in_probe_chain(void **state) {
  rt_map m = {0};
  char keys[3][16];
  int found = 0;
  for (int i = 0; found < 3 && i < 100000; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    if (found == 0 || same_home(keys[0], k, 16)) strcpy(keys[found++], k);
  }
  assert_int_equal(found, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(rt_map_put(&m, keys[i], V(i + 1)), 0);
  assert_int_equal(m.cap, 16);
  /* Removing the middle of a chain must not cut off the key behind it. */
  assert_ptr_equal(rt_map_remove(&m, keys[1]), V(2));
  assert_int_equal(m.tombs, 1);
  assert_ptr_equal(rt_map_get(&m, keys[2]), V(3));
  assert_ptr_equal(rt_map_get(&m, keys[0]), V(1));
  /* Re-putting a key that lives behind the tombstone replaces it, no duplicate. */
  assert_int_equal(rt_map_put(&m, keys[2], V(33)), 0);
  assert_int_equal(m.count, 2);
  assert_ptr_equal(rt_map_get(&m, keys[2]), V(33));
  assert_ptr_equal(rt_map_remove(&m, keys[2]), V(33));
  assert_null(rt_map_get(&m, keys[2]));
  /* A new key reuses the tombstone. */
  size_t tombs = m.tombs;
  assert_int_equal(rt_map_put(&m, keys[1], V(22)), 0);
  assert_int_equal(m.tombs, tombs - 1);
  assert_ptr_equal(rt_map_get(&m, keys[1]), V(22));
  /* Iteration sees exactly the live keys. */
  size_t n = 0;
  const char *k;
  void *v;
  for (size_t it = 0; rt_map_next(&m, &it, &k, &v);) n++;
  assert_int_equal(n, m.count);
  assert_int_equal(n, 2);
  rt_map_free(&m);
}

static void test_churn_does_not_fill_with_tombstones(void **state) {
  rt_map m = {0};
  /* Put and remove distinct keys forever: without tombstone cleanup on growth a lookup of
   * a missing key would probe forever once every slot is a tombstone. */
  for (int i = 0; i < 20000; i++) {
    char k[32];
    snprintf(k, sizeof k, "churn-%d", i);
    assert_int_equal(rt_map_put(&m, k, V(i + 1)), 0);
    assert_ptr_equal(rt_map_remove(&m, k), V(i + 1));
    assert_true(m.count + m.tombs < m.cap);
  }
  assert_int_equal(m.count, 0);
  assert_null(rt_map_get(&m, "missing"));
  size_t cap = m.cap;
  rt_map_free(&m);
  /* Churn alone must not grow the table without bound (a server that makes and drops
   * topics for weeks would hold a table sized by every topic it ever had). */
  if (cap > 1024) fail_msg("20000 put/remove pairs grew the table to %zu slots", cap);
}

static void test_growth_with_many_keys(void **state) {
  rt_map m = {0};
  enum { N = 5000 };
  for (int i = 0; i < N; i++) {
    char k[32];
    snprintf(k, sizeof k, "key:%d", i);
    assert_int_equal(rt_map_put(&m, k, V(i + 1)), 0);
  }
  assert_int_equal(m.count, N);
  assert_true(m.cap >= N);
  assert_int_equal(m.cap & (m.cap - 1), 0);  /* a power of two: the mask depends on it */
  for (int i = 0; i < N; i++) {
    char k[32];
    snprintf(k, sizeof k, "key:%d", i);
    assert_ptr_equal(rt_map_get(&m, k), V(i + 1));
  }
  /* Remove the even ones, check the odd ones survive. */
  for (int i = 0; i < N; i += 2) {
    char k[32];
    snprintf(k, sizeof k, "key:%d", i);
    assert_ptr_equal(rt_map_remove(&m, k), V(i + 1));
  }
  assert_int_equal(m.count, N / 2);
  for (int i = 0; i < N; i++) {
    char k[32];
    snprintf(k, sizeof k, "key:%d", i);
    if (i % 2) assert_ptr_equal(rt_map_get(&m, k), V(i + 1));
    else assert_null(rt_map_get(&m, k));
  }
  rt_map_free(&m);
}

static void test_iteration_visits_each_once(void **state) {
  rt_map m = {0};
  enum { N = 300 };
  char seen[N] = {0};
  for (int i = 0; i < N; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    rt_map_put(&m, k, V(i + 1));
  }
  for (int i = 0; i < N; i += 3) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    rt_map_remove(&m, k);
  }
  const char *k;
  void *v;
  size_t n = 0;
  for (size_t it = 0; rt_map_next(&m, &it, &k, &v);) {
    int i = atoi(k);
    assert_true(i >= 0 && i < N);
    assert_int_not_equal(i % 3, 0);
    assert_ptr_equal(v, V(i + 1));
    assert_int_equal(seen[i], 0);
    seen[i] = 1;
    n++;
  }
  assert_int_equal(n, N - (N + 2) / 3);
  /* Iterating an empty map yields nothing. */
  rt_map e = {0};
  size_t it = 0;
  assert_int_equal(rt_map_next(&e, &it, &k, &v), 0);
  rt_map_free(&m);
}

static void test_out_of_memory_leaves_map_intact(void **state) {
  if (!TFAIL_AVAILABLE) skip();
  rt_map m = {0};
  for (int i = 0; i < 11; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    assert_int_equal(rt_map_put(&m, k, V(i + 1)), 0);
  }
  assert_int_equal(m.cap, 16);
  /* The 12th key needs growth: make the table allocation fail. */
  tfail_after(0);
  int rc = rt_map_put(&m, "k11", V(12));
  tfail_off();
  assert_int_equal(rc, -1);
  assert_int_equal(m.count, 11);
  assert_null(rt_map_get(&m, "k11"));
  for (int i = 0; i < 11; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    assert_ptr_equal(rt_map_get(&m, k), V(i + 1));
  }
  /* Growth succeeds, the key copy fails. */
  tfail_after(1);
  rc = rt_map_put(&m, "k11", V(12));
  tfail_off();
  assert_int_equal(rc, -1);
  assert_null(rt_map_get(&m, "k11"));
  assert_int_equal(m.count, 11);
  /* And a later put works. */
  assert_int_equal(rt_map_put(&m, "k11", V(12)), 0);
  assert_ptr_equal(rt_map_get(&m, "k11"), V(12));
  rt_map_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_replace_remove),
      cmocka_unit_test(test_tombstones_in_probe_chain),
      cmocka_unit_test(test_churn_does_not_fill_with_tombstones),
      cmocka_unit_test(test_growth_with_many_keys),
      cmocka_unit_test(test_iteration_visits_each_once),
      cmocka_unit_test(test_out_of_memory_leaves_map_intact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
