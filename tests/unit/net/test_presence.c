/* Unit tests for core/net/presence.c: joins and leaves of covered topics reach the hook on
 * the next loop turn, in order, once each, with the connection's user; uncovered topics
 * and patterns say nothing; a connection subscribed twice is one member; the queue is
 * bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/broker.h"
#include "net/presence.h"
#include "net/server_int.h"

typedef struct fixture {
  rt_server *srv;
  rt_broker *b;
  rt_presence *p;
  rt_conn *c[3];
} fixture;

static struct {
  char lines[64][96];
  int n;
} told;

static void hook(void *ud, const char *topic, uint64_t conn, const char *user, const char *node,
                 int joined) {
  if (told.n < 64)
    snprintf(told.lines[told.n++], 96, "%s %s %llu %s", joined ? "join" : "leave", topic,
             (unsigned long long)conn, user ? user : "-");
}

static void deliver_none(rt_sub *s, rt_msg *m) {}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->srv = calloc(1, sizeof *f->srv);
  f->srv->loop = ev_loop_new(EVFLAG_AUTO);
  f->b = rt_broker_new(f->srv);
  f->p = rt_broker_presence(f->b);
  rt_presence_set_hook(f->p, hook, NULL);
  for (int i = 0; i < 3; i++) {
    f->c[i] = calloc(1, sizeof(rt_conn));
    f->c[i]->id = 100 + i;
  }
  memset(&told, 0, sizeof told);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 3; i++) {
    rt_broker_drop_conn(f->b, f->c[i]);
    free(f->c[i]->user);
    free(f->c[i]);
  }
  rt_broker_free(f->b);
  ev_loop_destroy(f->srv->loop);
  free(f->srv);
  free(f);
  return 0;
}

static void turn(fixture *f) { ev_run(f->srv->loop, EVRUN_NOWAIT); }

static void test_joins_and_leaves_in_order_next_turn(void **state) {
  fixture *f = *state;
  assert_int_equal(rt_presence_policy(f->p, "room.*"), 0);
  rt_conn_set_user(f->c[0], "ann");
  rt_sub *a = rt_broker_subscribe(f->b, "room.1", f->c[0], deliver_none, NULL);
  rt_broker_subscribe(f->b, "room.1", f->c[1], deliver_none, NULL);
  rt_broker_subscribe(f->b, "hall", f->c[2], deliver_none, NULL);           /* not covered */
  rt_broker_subscribe_pattern(f->b, "room.*", f->c[2], deliver_none, NULL);  /* a pattern */
  assert_int_equal(told.n, 0);  /* nothing from inside the broker call */
  turn(f);
  assert_int_equal(told.n, 2);
  assert_string_equal(told.lines[0], "join room.1 100 ann");
  assert_string_equal(told.lines[1], "join room.1 101 -");
  rt_broker_unsubscribe(f->b, a);
  rt_broker_drop_conn(f->b, f->c[1]);
  rt_broker_drop_conn(f->b, f->c[2]);
  turn(f);
  assert_int_equal(told.n, 4);
  assert_string_equal(told.lines[2], "leave room.1 100 ann");
  assert_string_equal(told.lines[3], "leave room.1 101 -");
}

static void collect(void *ud, const rt_sub *s) {
  int *n = ud;
  (*n)++;
}

static void test_list_and_policies(void **state) {
  fixture *f = *state;
  rt_broker_subscribe(f->b, "t", f->c[0], deliver_none, NULL);
  rt_broker_subscribe(f->b, "t", f->c[1], deliver_none, NULL);
  int n = 0;
  rt_broker_each_sub(f->b, "t", collect, &n);
  assert_int_equal(n, 2);
  n = 0;
  rt_broker_each_sub(f->b, "nobody", collect, &n);
  assert_int_equal(n, 0);
  assert_int_equal(rt_presence_policy(f->p, ""), -1);
  assert_int_equal(rt_presence_policy(f->p, "t"), 0);
  assert_int_equal(rt_presence_policy(f->p, "t"), 0);  /* once */
  assert_true(rt_presence_covers(f->p, "t"));
  rt_presence_clear_policies(f->p);
  assert_false(rt_presence_covers(f->p, "t"));
  assert_non_null(strchr(rt_presence_node(f->p), ':'));
}

static void deliver_other(rt_sub *s, rt_msg *m) {}

static void test_two_subscriptions_are_one_member(void **state) {
  fixture *f = *state;
  rt_presence_policy(f->p, "t");
  /* Two STOMP subscriptions of one connection (another deliver function) and a second
   * connection. */
  rt_sub *a = rt_broker_subscribe(f->b, "t", f->c[0], deliver_none, NULL);
  rt_sub *b = rt_broker_subscribe(f->b, "t", f->c[0], deliver_other, NULL);
  rt_broker_subscribe(f->b, "t", f->c[1], deliver_none, NULL);
  assert_int_equal(rt_presence_count(f->p, "t"), 2);
  rt_broker_unsubscribe(f->b, a);
  assert_int_equal(rt_presence_count(f->p, "t"), 2);
  turn(f);
  assert_int_equal(told.n, 2);  /* two joins, no leave yet */
  rt_broker_unsubscribe(f->b, b);
  assert_int_equal(rt_presence_count(f->p, "t"), 1);
  turn(f);
  assert_int_equal(told.n, 3);
  assert_string_equal(told.lines[2], "leave t 100 -");
}

static void test_queue_is_bounded(void **state) {
  fixture *f = *state;
  rt_presence_policy(f->p, "t");
  /* join, leave, join, ...: each is news */
  for (int i = 0; i < RT_PRESENCE_MAX_QUEUED + 10; i++) rt_presence_note(f->p, "t", f->c[0], !(i & 1));
  assert_int_equal(rt_presence_dropped(f->p), 10);
  turn(f);
  assert_int_equal(told.n, 64);  /* the hook saw them (it keeps the first 64) */
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_joins_and_leaves_in_order_next_turn),
      T(test_list_and_policies),
      T(test_two_subscriptions_are_one_member),
      T(test_queue_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
