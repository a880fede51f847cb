/* Unit tests for core/net/presence_mirror.c: local members join with their first
 * subscription and leave with their last; remote members join once, leave once; a node
 * not heard of within its TTL loses its members (and each is told); a snapshot drops the
 * members of a node that were not in it and keeps those of nodes it did not read; the
 * bound refuses remote members past it but never this process's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/presence_mirror.h"

static struct {
  char lines[16][96];
  int n;
} gone;

static void on_gone(void *ud, const char *topic, const rt_pmember *m) {
  if (gone.n < 16)
    snprintf(gone.lines[gone.n++], 96, "%s %s#%llu %s", topic, m->node, (unsigned long long)m->conn,
             m->user ? m->user : "-");
}

static int setup(void **state) {
  memset(&gone, 0, sizeof gone);
  *state = rt_pmirror_new("me:1", 4);
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  rt_pmirror_free(*state);
  return 0;
}

static void test_local_members_count_references(void **state) {
  rt_pmirror *m = *state;
  assert_int_equal(rt_pmirror_local_join(m, "t", 7, "ann"), 1);
  assert_int_equal(rt_pmirror_local_join(m, "t", 7, "ann"), 0);   /* a second subscription */
  assert_int_equal(rt_pmirror_local_join(m, "t", 8, NULL), 1);
  assert_int_equal(rt_pmirror_count(m, "t"), 2);
  assert_int_equal(rt_pmirror_local_count(m, "t"), 2);
  assert_int_equal(rt_pmirror_local_leave(m, "t", 7), 0);
  assert_int_equal(rt_pmirror_local_leave(m, "t", 7), 1);          /* the last one */
  assert_int_equal(rt_pmirror_local_leave(m, "t", 7), 0);          /* not a member */
  assert_int_equal(rt_pmirror_local_leave(m, "nowhere", 7), 0);
  assert_int_equal(rt_pmirror_count(m, "t"), 1);
  assert_int_equal(rt_pmirror_local_leave(m, "t", 8), 1);
  assert_int_equal(rt_pmirror_count(m, "t"), 0);
  assert_int_equal(rt_pmirror_members(m), 0);
}

static void collect(void *ud, const char *topic, const rt_pmember *mb) {
  char *out = ud;
  char one[64];
  snprintf(one, sizeof one, "%s%s#%llu=%s", *out ? "," : "", mb->node, (unsigned long long)mb->conn,
           mb->user ? mb->user : "-");
  strcat(out, one);
}

static void test_remote_members(void **state) {
  rt_pmirror *m = *state;
  rt_pmirror_local_join(m, "t", 1, "me");
  assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", 1, "bob"), 1);  /* same id, other node */
  assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", 1, "robert"), 0);
  assert_int_equal(rt_pmirror_remote_join(m, "t", "me:1", 5, NULL), -1);  /* not ourselves */
  assert_int_equal(rt_pmirror_count(m, "t"), 2);
  assert_int_equal(rt_pmirror_local_count(m, "t"), 1);
  char out[256] = "";
  rt_pmirror_each(m, "t", collect, out);
  assert_non_null(strstr(out, "b:2#1=robert"));
  assert_non_null(strstr(out, "me:1#1=me"));
  assert_int_equal(rt_pmirror_remote_leave(m, "t", "b:2", 1), 1);
  assert_int_equal(rt_pmirror_remote_leave(m, "t", "b:2", 1), 0);
  assert_int_equal(rt_pmirror_remote_leave(m, "t", "me:1", 1), 0);       /* ours stay ours */
  assert_int_equal(rt_pmirror_count(m, "t"), 1);
}

static void test_silent_nodes_expire(void **state) {
  rt_pmirror *m = *state;
  rt_pmirror_local_join(m, "t", 1, NULL);
  rt_pmirror_heard(m, "b:2", 100, 3);
  rt_pmirror_heard(m, "c:3", 100, 10);
  rt_pmirror_remote_join(m, "t", "b:2", 4, "bo");
  rt_pmirror_remote_join(m, "u", "b:2", 4, "bo");
  rt_pmirror_remote_join(m, "t", "c:3", 5, NULL);
  assert_int_equal(rt_pmirror_expire(m, 103, on_gone, NULL), 0);  /* just within */
  rt_pmirror_heard(m, "c:3", 102, 10);
  assert_int_equal(rt_pmirror_expire(m, 104, on_gone, NULL), 2);
  assert_int_equal(gone.n, 2);
  assert_true(strcmp(gone.lines[0], "t b:2#4 bo") == 0 || strcmp(gone.lines[1], "t b:2#4 bo") == 0);
  assert_false(rt_pmirror_knows(m, "b:2"));
  assert_true(rt_pmirror_knows(m, "c:3"));
  assert_int_equal(rt_pmirror_count(m, "t"), 2);  /* ours and c's */
  assert_int_equal(rt_pmirror_count(m, "u"), 0);
  /* This process never expires. */
  assert_int_equal(rt_pmirror_expire(m, 1e9, on_gone, NULL), 1);
  assert_int_equal(rt_pmirror_count(m, "t"), 1);
}

static void test_snapshot_replaces_a_nodes_members(void **state) {
  rt_pmirror *m = *state;
  rt_pmirror_remote_join(m, "t", "b:2", 1, NULL);
  rt_pmirror_remote_join(m, "t", "b:2", 2, NULL);
  rt_pmirror_remote_join(m, "t", "c:3", 3, NULL);
  unsigned gen = rt_pmirror_snapshot_begin(m);
  /* Redis holds b's 2 and 9 (9 joined while we were away; 1 left). */
  assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", 2, NULL), 0);
  assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", 9, NULL), 1);
  assert_int_equal(rt_pmirror_snapshot_end(m, "t", "b:2", gen, on_gone, NULL), 1);
  assert_string_equal(gone.lines[0], "t b:2#1 -");
  /* c was not read: its member stays. */
  assert_int_equal(rt_pmirror_count(m, "t"), 3);
  /* A later snapshot's stamps count as seen by an earlier one. */
  unsigned g2 = rt_pmirror_snapshot_begin(m);
  rt_pmirror_remote_join(m, "t", "c:3", 3, NULL);
  assert_int_equal(rt_pmirror_snapshot_end(m, "t", "c:3", gen, on_gone, NULL), 0);
  assert_int_equal(rt_pmirror_snapshot_end(m, "t", "c:3", g2 + 1, on_gone, NULL), 1);
  assert_int_equal(rt_pmirror_snapshot_end(m, "t", "me:1", g2, on_gone, NULL), 0);
}

static void test_bound_refuses_remote_only(void **state) {
  rt_pmirror *m = *state;  /* at most 4 */
  for (uint64_t i = 0; i < 4; i++) assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", i, NULL), 1);
  assert_int_equal(rt_pmirror_remote_join(m, "t", "b:2", 99, NULL), -1);
  assert_int_equal(rt_pmirror_refused(m), 1);
  assert_int_equal(rt_pmirror_local_join(m, "t", 1, NULL), 1);  /* ours are bounded by connections */
  assert_int_equal(rt_pmirror_count(m, "t"), 5);
  /* Node names are bounded too. */
  char longname[400];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(rt_pmirror_heard(m, longname, 1, 1), -1);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_local_members_count_references),
      T(test_remote_members),
      T(test_silent_nodes_expire),
      T(test_snapshot_replaces_a_nodes_members),
      T(test_bound_refuses_remote_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
