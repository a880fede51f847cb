/* Unit tests for core/broker.c: topics, subscriptions, publishing.
 *
 * The broker only needs a connection's subscription list and the server's counters, so
 * these tests use zeroed rt_server / rt_conn structs and deliver functions that record
 * what they get; no sockets. The WebSocket deliver function is covered in test_ws.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TFAIL_IMPLEMENT
#include "net/broker.h"
#include "failalloc.h"
#include "net/server_int.h"

#define NCONN 8

typedef struct fixture {
  rt_server *srv;
  rt_broker *b;
  rt_conn *conns[NCONN];
} fixture;

/* What deliver functions saw. */
static struct {
  int got[64];            /* deliveries per subscriber tag (the sub's data) */
  int total;
  const char *last_dest;
  rt_msg *last_msg;
  /* actions a delivery takes, set by a test */
  rt_broker *b;
  int action;
  int victim_tag;         /* (the victim itself is freed after the publish) */
  rt_conn *victim_conn;
  rt_sub *all[16];
  int nall;
  int depth;
} rec;

enum { ACT_NONE, ACT_SELF, ACT_NEXT, ACT_ALL, ACT_DROP_CONN, ACT_SUBSCRIBE, ACT_NESTED };

static int tag_of(rt_sub *s) { return (int)(intptr_t)s->data; }

static void deliver_rec(rt_sub *s, rt_msg *m) {
  int tag = tag_of(s);
  assert_true(tag >= 0 && tag < 64);
  assert_false(s->dead);
  rec.got[tag]++;
  rec.total++;
  rec.last_dest = m->destination;
  rec.last_msg = m;
}

static void deliver_other(rt_sub *s, rt_msg *m) { deliver_rec(s, m); }

/* Delivers, then does the test's action once. */
static void deliver_act(rt_sub *s, rt_msg *m) {
  deliver_rec(s, m);
  int act = rec.action;
  rec.action = ACT_NONE;
  switch (act) {
    case ACT_SELF: rt_broker_unsubscribe(rec.b, s); break;
    case ACT_NEXT:
      rec.victim_tag = s->next ? tag_of(s->next) : -1;
      if (s->next) rt_broker_unsubscribe(rec.b, s->next);
      break;
    case ACT_ALL:
      /* everyone on the topic, this subscriber included */
      for (int i = 0; i < rec.nall; i++) rt_broker_unsubscribe(rec.b, rec.all[i]);
      break;
    case ACT_DROP_CONN: rt_broker_drop_conn(rec.b, rec.victim_conn); break;
    case ACT_SUBSCRIBE: rt_broker_subscribe(rec.b, m->destination, s->conn, deliver_rec, (void *)(intptr_t)63); break;
    case ACT_NESTED:
      if (rec.depth++ < 1) {
        rt_msg inner = {.destination = m->destination};
        rt_broker_publish(rec.b, &inner);
      }
      break;
    default: break;
  }
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->srv = calloc(1, sizeof *f->srv);
  f->b = rt_broker_new(f->srv);
  for (int i = 0; i < NCONN; i++) f->conns[i] = calloc(1, sizeof(rt_conn));
  memset(&rec, 0, sizeof rec);
  rec.b = f->b;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rt_broker_free(f->b);
  for (int i = 0; i < NCONN; i++) free(f->conns[i]);
  free(f->srv);
  free(f);
  return 0;
}

static rt_sub *sub(fixture *f, const char *dest, int conn, rt_deliver_fn fn, int tag) {
  rt_sub *s = rt_broker_subscribe(f->b, dest, f->conns[conn], fn, (void *)(intptr_t)tag);
  assert_non_null(s);
  assert_ptr_equal(s->conn, f->conns[conn]);
  assert_ptr_equal(s->deliver, fn);
  return s;
}

static long pub(fixture *f, const char *dest) {
  rt_msg m = {.destination = dest};
  return rt_broker_publish(f->b, &m);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_subscribe_find_unsubscribe(void **state) {
  fixture *f = *state;
  assert_int_equal(rt_broker_count(f->b, "a"), 0);
  rt_sub *s1 = sub(f, "a", 0, deliver_rec, 1);
  rt_sub *s2 = sub(f, "a", 1, deliver_rec, 2);
  rt_sub *s3 = sub(f, "b", 0, deliver_rec, 3);
  rt_sub *s4 = sub(f, "a", 0, deliver_other, 4);  /* same conn and topic, other deliver fn */
  assert_int_equal(rt_broker_count(f->b, "a"), 3);
  assert_int_equal(rt_broker_count(f->b, "b"), 1);
  assert_int_equal(rt_broker_count(f->b, "c"), 0);

  assert_ptr_equal(rt_broker_find(f->b, "a", f->conns[0], deliver_rec), s1);
  assert_ptr_equal(rt_broker_find(f->b, "a", f->conns[0], deliver_other), s4);
  assert_ptr_equal(rt_broker_find(f->b, "a", f->conns[1], deliver_rec), s2);
  assert_ptr_equal(rt_broker_find(f->b, "b", f->conns[0], deliver_rec), s3);
  assert_null(rt_broker_find(f->b, "b", f->conns[1], deliver_rec));
  assert_null(rt_broker_find(f->b, "c", f->conns[0], deliver_rec));
  assert_null(rt_broker_find(f->b, "a", f->conns[2], deliver_rec));

  rt_broker_unsubscribe(f->b, s1);
  assert_int_equal(rt_broker_count(f->b, "a"), 2);
  assert_null(rt_broker_find(f->b, "a", f->conns[0], deliver_rec));
  /* the connection's other subscriptions are still found */
  assert_ptr_equal(rt_broker_find(f->b, "b", f->conns[0], deliver_rec), s3);
  assert_ptr_equal(rt_broker_find(f->b, "a", f->conns[0], deliver_other), s4);

  assert_int_equal(pub(f, "a"), 2);
  assert_int_equal(rec.got[1], 0);
  assert_int_equal(rec.got[2], 1);
  assert_int_equal(rec.got[4], 1);
  assert_int_equal(rec.got[3], 0);

  rt_broker_unsubscribe(f->b, s4);
  rt_broker_unsubscribe(f->b, s3);
  rt_broker_unsubscribe(f->b, s2);
  assert_int_equal(rt_broker_count(f->b, "a"), 0);
  assert_int_equal(rt_broker_count(f->b, "b"), 0);
  assert_null(f->conns[0]->subs);
  assert_null(f->conns[1]->subs);
  assert_int_equal(pub(f, "a"), 0);
}

static void test_publish_counts(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 5; i++) sub(f, "news", i, deliver_rec, i);
  sub(f, "other", 5, deliver_rec, 5);
  rt_chunk *body = rt_chunk_copy("hi", 2);
  rt_msg m = {.destination = "news", .body = body};
  assert_int_equal(rt_broker_publish(f->b, &m), 5);
  for (int i = 0; i < 5; i++) assert_int_equal(rec.got[i], 1);
  assert_int_equal(rec.got[5], 0);
  assert_ptr_equal(rec.last_msg, &m);  /* everyone gets the same message, no copies */
  assert_string_equal(rec.last_dest, "news");
  assert_int_equal(f->srv->metrics.deliveries, 5);
  assert_int_equal(pub(f, "other"), 1);
  assert_int_equal(pub(f, "nobody"), 0);
  assert_int_equal(pub(f, "New"), 0);  /* names are exact, case-sensitive */
  assert_int_equal(f->srv->metrics.deliveries, 6);
  assert_int_equal(body->refs, 1);  /* the broker does not keep the body */
  rt_chunk_unref(body);
}

static void test_drop_conn(void **state) {
  fixture *f = *state;
  sub(f, "a", 0, deliver_rec, 1);
  sub(f, "b", 0, deliver_rec, 2);
  sub(f, "c", 0, deliver_other, 3);
  sub(f, "a", 1, deliver_rec, 4);
  rt_broker_drop_conn(f->b, f->conns[0]);
  assert_null(f->conns[0]->subs);
  assert_int_equal(rt_broker_count(f->b, "a"), 1);
  assert_int_equal(rt_broker_count(f->b, "b"), 0);
  assert_int_equal(rt_broker_count(f->b, "c"), 0);
  assert_int_equal(pub(f, "a"), 1);
  assert_int_equal(rec.got[4], 1);
  assert_int_equal(rec.got[1], 0);
  /* dropping a connection without subscriptions is a no-op */
  rt_broker_drop_conn(f->b, f->conns[7]);
  assert_int_equal(rt_broker_count(f->b, "a"), 1);
}

static void test_topic_disappears_when_empty(void **state) {
  if (!TFAIL_AVAILABLE) skip();
  fixture *f = *state;
  /* Warm up: the first topic allocates the map's table, which stays. */
  rt_broker_unsubscribe(f->b, sub(f, "warm", 0, deliver_rec, 1));
  long base = tfail_live();
  rt_sub *s = sub(f, "t1", 0, deliver_rec, 1);
  assert_true(tfail_live() > base);
  rt_broker_unsubscribe(f->b, s);
  if (tfail_live() != base)
    fail_msg("an emptied topic keeps %ld allocations", tfail_live() - base);
  /* and via drop_conn */
  sub(f, "t2", 2, deliver_rec, 1);
  sub(f, "t3", 2, deliver_rec, 1);
  rt_broker_drop_conn(f->b, f->conns[2]);
  assert_int_equal(tfail_live(), base);
  /* and when the last subscriber leaves during a publish: dropped after it */
  sub(f, "t4", 3, deliver_act, 1);
  rec.action = ACT_SELF;
  assert_int_equal(pub(f, "t4"), 1);
  assert_int_equal(tfail_live(), base);
  assert_int_equal(rt_broker_count(f->b, "t4"), 0);
}

static void test_unsubscribe_self_during_publish(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 4; i++) sub(f, "t", i, deliver_act, i);
  /* each delivery unsubscribes its own subscriber */
  for (int round = 0; round < 4; round++) {
    rec.action = ACT_SELF;
    long n = pub(f, "t");
    assert_int_equal(n, 4 - round);
  }
  /* Only the first delivery of each round acted; everyone got every message they were
   * subscribed for. */
  int total = 0;
  for (int i = 0; i < 4; i++) total += rec.got[i];
  assert_int_equal(total, 4 + 3 + 2 + 1);
  assert_int_equal(rt_broker_count(f->b, "t"), 0);
  assert_int_equal(pub(f, "t"), 0);
}

/* A delivery that unsubscribes the NEXT subscriber in the list (another connection
 * closing because of this message, say) must not cut the rest of the list off. */
static void test_unsubscribe_next_during_publish(void **state) {
  fixture *f = *state;
  enum { N = 6 };
  for (int i = 0; i < N; i++) sub(f, "t", i, deliver_act, i);
  rec.action = ACT_NEXT;
  long n = pub(f, "t");
  int victim = rec.victim_tag;
  assert_true(victim >= 0);
  assert_int_equal(rec.got[victim], 0);
  for (int i = 0; i < N; i++)
    if (i != victim && rec.got[i] != 1)
      fail_msg("subscriber %d got %d deliveries (victim %d, publish returned %ld)", i, rec.got[i], victim, n);
  assert_int_equal(n, N - 1);
  assert_int_equal(rt_broker_count(f->b, "t"), N - 1);
  /* the next publish reaches everyone left */
  memset(rec.got, 0, sizeof rec.got);
  assert_int_equal(pub(f, "t"), N - 1);
}

/* Same, with the victim further down the list, and removed through drop_conn. */
static void test_drop_conn_during_publish(void **state) {
  fixture *f = *state;
  enum { N = 6 };
  for (int i = 0; i < N; i++) sub(f, "t", i, deliver_act, i);
  sub(f, "elsewhere", 3, deliver_rec, 40);
  /* The list is newest first: 5 4 3 2 1 0. The first delivery (to 5) drops conn 3. */
  rec.action = ACT_DROP_CONN;
  rec.victim_conn = f->conns[3];
  long n = pub(f, "t");
  assert_int_equal(rec.got[3], 0);
  for (int i = 0; i < N; i++)
    if (i != 3 && rec.got[i] != 1)
      fail_msg("subscriber %d got %d deliveries (publish returned %ld)", i, rec.got[i], n);
  assert_int_equal(n, N - 1);
  assert_int_equal(rt_broker_count(f->b, "elsewhere"), 0);
  assert_null(f->conns[3]->subs);
}

static void test_unsubscribe_all_during_publish(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 5; i++) rec.all[rec.nall++] = sub(f, "t", i, deliver_act, i);
  rec.action = ACT_ALL;
  long n = pub(f, "t");
  assert_int_equal(n, 1);
  assert_int_equal(rec.total, 1);
  assert_int_equal(rt_broker_count(f->b, "t"), 0);
  assert_int_equal(pub(f, "t"), 0);
  /* the topic can be used again */
  sub(f, "t", 0, deliver_rec, 9);
  assert_int_equal(pub(f, "t"), 1);
  assert_int_equal(rec.got[9], 1);
}

static void test_subscribe_during_publish(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 3; i++) sub(f, "t", i, deliver_act, i);
  rec.action = ACT_SUBSCRIBE;
  long n = pub(f, "t");
  /* the old subscribers each got it once; the new one may or may not have */
  for (int i = 0; i < 3; i++) assert_int_equal(rec.got[i], 1);
  assert_int_equal(n, 3 + rec.got[63]);
  assert_int_equal(rt_broker_count(f->b, "t"), 4);
  memset(rec.got, 0, sizeof rec.got);
  assert_int_equal(pub(f, "t"), 4);
  assert_int_equal(rec.got[63], 1);
}

static void test_nested_publish(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 3; i++) sub(f, "t", i, deliver_act, i);
  rec.action = ACT_NESTED;
  long n = pub(f, "t");
  assert_int_equal(n, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(rec.got[i], 2);
  assert_int_equal(f->srv->metrics.deliveries, 6);
  /* the nested publish leaves the outer topic usable and intact */
  assert_int_equal(rt_broker_count(f->b, "t"), 3);
}

static void test_subscribe_out_of_memory(void **state) {
  if (!TFAIL_AVAILABLE) skip();
  fixture *f = *state;
  sub(f, "exists", 0, deliver_rec, 1);
  long base = tfail_live();
  /* Every allocation a subscribe makes fails in turn: never a crash, never a half-made
   * topic left behind, and a NULL result. */
  for (long budget = 0; budget < 8; budget++) {
    tfail_after(budget);
    rt_sub *s = rt_broker_subscribe(f->b, "fresh", f->conns[1], deliver_rec, NULL);
    long refused = tfail_refused();
    tfail_off();
    if (s) {
      assert_int_equal(refused, 0);
      rt_broker_unsubscribe(f->b, s);
      break;
    }
    assert_true(refused > 0);
    assert_int_equal(rt_broker_count(f->b, "fresh"), 0);
    assert_null(f->conns[1]->subs);
    if (tfail_live() != base) fail_msg("budget %ld: %ld blocks left behind", budget, tfail_live() - base);
  }
  /* a second subscriber on an existing topic, with its allocation failing */
  tfail_after(0);
  rt_sub *s = rt_broker_subscribe(f->b, "exists", f->conns[2], deliver_rec, NULL);
  tfail_off();
  assert_null(s);
  assert_int_equal(rt_broker_count(f->b, "exists"), 1);
  assert_int_equal(pub(f, "exists"), 1);
}

static void test_many_topics_and_subscribers(void **state) {
  fixture *f = *state;
  char name[32];
  for (int t = 0; t < 200; t++) {
    snprintf(name, sizeof name, "topic/%d", t);
    for (int c = 0; c < NCONN; c++)
      if ((t + c) % 3 == 0) sub(f, name, c, deliver_rec, c);
  }
  long expect = 0;
  for (int t = 0; t < 200; t++) {
    snprintf(name, sizeof name, "topic/%d", t);
    long want = 0;
    for (int c = 0; c < NCONN; c++) want += (t + c) % 3 == 0;
    assert_int_equal(rt_broker_count(f->b, name), want);
    assert_int_equal(pub(f, name), want);
    expect += want;
  }
  assert_int_equal(rec.total, expect);
  for (int c = 0; c < NCONN; c++) rt_broker_drop_conn(f->b, f->conns[c]);
  for (int t = 0; t < 200; t++) {
    snprintf(name, sizeof name, "topic/%d", t);
    assert_int_equal(rt_broker_count(f->b, name), 0);
  }
}

static void test_pattern_match(void **state) {
  assert_true(rt_broker_pattern_match("/topic/order.*", "/topic/order.42"));
  assert_false(rt_broker_pattern_match("/topic/order.*", "/topic/order.42.x"));
  assert_false(rt_broker_pattern_match("/topic/order.*", "/topic/order/42"));
  assert_true(rt_broker_pattern_match("/topic/**", "/topic/a/b.c"));
  assert_true(rt_broker_pattern_match("exact", "exact"));
  assert_false(rt_broker_pattern_match("exact", "exactly"));
  assert_false(rt_broker_pattern_match("exact", "exac"));
  assert_true(rt_broker_pattern_match("a*b", "ab"));
  assert_true(rt_broker_pattern_match("a*b", "axxb"));
  assert_false(rt_broker_pattern_match("a*b", "axxbc"));
  /* no exponential blow-up on many stars */
  char name[1001];
  memset(name, 'a', 1000);
  name[1000] = 0;
  assert_false(rt_broker_pattern_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
}

static void test_pattern_subscribers_get_matching_publishes(void **state) {
  fixture *f = *state;
  rt_sub *p = rt_broker_subscribe_pattern(f->b, "/topic/order.*", f->conns[0], deliver_rec, (void *)1);
  assert_non_null(p);
  sub(f, "/topic/order.7", 1, deliver_rec, 2);
  assert_int_equal(pub(f, "/topic/order.7"), 2);
  assert_int_equal(pub(f, "/topic/order.8"), 1);
  assert_int_equal(pub(f, "/topic/other"), 0);
  assert_int_equal(rec.got[1], 2);
  assert_int_equal(rec.got[2], 1);
  rt_broker_drop_conn(f->b, f->conns[0]);
  assert_int_equal(pub(f, "/topic/order.8"), 0);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_subscribe_find_unsubscribe),
      T(test_publish_counts),
      T(test_drop_conn),
      T(test_topic_disappears_when_empty),
      T(test_unsubscribe_self_during_publish),
      T(test_unsubscribe_next_during_publish),
      T(test_drop_conn_during_publish),
      T(test_unsubscribe_all_during_publish),
      T(test_subscribe_during_publish),
      T(test_nested_publish),
      T(test_subscribe_out_of_memory),
      T(test_many_topics_and_subscribers),
      T(test_pattern_match),
      T(test_pattern_subscribers_get_matching_publishes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
