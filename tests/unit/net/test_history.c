/* Unit tests for core/net/history.c: offsets and epochs, the size, ttl and byte bounds,
 * complete and partial reads, replay to a broker subscriber, and records forgotten after
 * their ttl. A zeroed server with a real libev loop; no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/broker.h"
#include "net/history.h"
#include "net/server_int.h"

typedef struct fixture {
  rt_server *srv;
  rt_broker *b;
  rt_history *h;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->srv = calloc(1, sizeof *f->srv);
  f->srv->loop = ev_loop_new(EVFLAG_AUTO);
  f->b = rt_broker_new(f->srv);
  f->h = rt_broker_history(f->b);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rt_broker_free(f->b);
  ev_loop_destroy(f->srv->loop);
  free(f->srv);
  free(f);
  return 0;
}

static uint64_t publish(fixture *f, const char *dest, const char *text) {
  rt_msg m = {.destination = dest};
  m.body = rt_chunk_copy(text, strlen(text));
  rt_broker_publish(f->b, &m);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  return m.offset;
}

/* What a read visited. */
typedef struct seen {
  uint64_t offsets[64];
  char texts[64][32];
  int n;
  int stop_after;
} seen;

static int record_visit(void *ud, rt_msg *m) {
  seen *s = ud;
  s->offsets[s->n] = m->offset;
  snprintf(s->texts[s->n], sizeof s->texts[0], "%.*s", (int)m->body->len, (const char *)m->body->data);
  s->n++;
  return s->stop_after && s->n >= s->stop_after;
}

static void test_offsets_only_where_a_policy_covers(void **state) {
  fixture *f = *state;
  assert_int_equal(rt_history_policy(f->h, "/topic/order.*", 10, 60), 0);
  assert_int_equal(publish(f, "/topic/order.1", "a"), 1);
  assert_int_equal(publish(f, "/topic/order.1", "b"), 2);
  assert_int_equal(publish(f, "/topic/order.2", "c"), 1);  /* each topic counts alone */
  assert_int_equal(publish(f, "/topic/other", "d"), 0);
  const char *e1, *e2;
  assert_int_equal(rt_history_top(f->h, "/topic/order.1", &e1), 2);
  assert_int_equal(rt_history_top(f->h, "/topic/order.2", &e2), 1);
  assert_int_equal(strlen(e1), RT_HISTORY_EPOCH_LEN);
  assert_string_not_equal(e1, e2);  /* epochs are per topic record */
  assert_int_equal(rt_history_top(f->h, "/topic/other", &e1), 0);
  assert_string_equal(e1, "");
  /* Bad policies are refused. */
  assert_int_equal(rt_history_policy(f->h, "", 10, 60), -1);
  assert_int_equal(rt_history_policy(f->h, "x", 0, 60), -1);
  assert_int_equal(rt_history_policy(f->h, "x", 10, 0), -1);
  assert_int_equal(rt_history_policy(f->h, "x", RT_HISTORY_MAX_SIZE + 1, 60), -1);
}

static void test_size_bound_and_reads(void **state) {
  fixture *f = *state;
  rt_history_policy(f->h, "t", 3, 60);
  char text[8];
  for (int i = 1; i <= 5; i++) {
    snprintf(text, sizeof text, "m%d", i);
    publish(f, "t", text);
  }
  const char *epoch;
  rt_history_top(f->h, "t", &epoch);
  char ep[RT_HISTORY_EPOCH_LEN + 1];
  strcpy(ep, epoch);
  /* From 3: 4 and 5, complete. */
  seen s = {0};
  assert_int_equal(rt_history_read(f->h, "t", ep, 3, 0, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.offsets[0], 4);
  assert_string_equal(s.texts[1], "m5");
  /* From 2 (3 is the oldest kept): still complete. */
  memset(&s, 0, sizeof s);
  assert_int_equal(rt_history_read(f->h, "t", ep, 2, 0, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 3);
  /* From 1: 2 is gone. Not complete; nothing unless partial. */
  memset(&s, 0, sizeof s);
  assert_int_equal(rt_history_read(f->h, "t", ep, 1, 0, 0, record_visit, &s), 0);
  assert_int_equal(s.n, 0);
  assert_int_equal(rt_history_read(f->h, "t", ep, 1, 0, 1, record_visit, &s), 0);
  assert_int_equal(s.n, 3);
  /* Up to date: complete, nothing to visit. */
  memset(&s, 0, sizeof s);
  assert_int_equal(rt_history_read(f->h, "t", ep, 5, 0, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 0);
  /* Beyond the latest offset, or another epoch: not this history's position. */
  assert_int_equal(rt_history_read(f->h, "t", ep, 6, 0, 1, record_visit, &s), 0);
  assert_int_equal(rt_history_read(f->h, "t", "0000000000000000", 3, 0, 1, record_visit, &s), 0);
  assert_int_equal(s.n, 0);
  /* limit, and a visitor that stops. */
  assert_int_equal(rt_history_read(f->h, "t", NULL, 2, 2, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 2);
  memset(&s, 0, sizeof s);
  s.stop_after = 1;
  rt_history_read(f->h, "t", NULL, 2, 0, 0, record_visit, &s);
  assert_int_equal(s.n, 1);
}

static void test_byte_bound_drops_oldest_of_all_topics(void **state) {
  fixture *f = *state;
  rt_history_policy(f->h, "*", 100, 60);
  char big[2000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  publish(f, "a", big);
  publish(f, "b", big);
  size_t two = rt_history_bytes(f->h);
  assert_true(two >= 2 * 1999);
  rt_history_set_max_bytes(f->h, two + 100);  /* room for two messages, not three */
  publish(f, "c", big);
  assert_true(rt_history_bytes(f->h) <= two + 100);
  seen s = {0};
  /* "a" lost its only message: not complete from 0; "b" and "c" still are. */
  assert_int_equal(rt_history_read(f->h, "a", NULL, 0, 0, 0, record_visit, &s), 0);
  assert_int_equal(rt_history_read(f->h, "b", NULL, 0, 0, 0, record_visit, &s), 1);
  assert_int_equal(rt_history_read(f->h, "c", NULL, 0, 0, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 2);
  /* The message just kept survives even when it alone passes the bound. */
  rt_history_set_max_bytes(f->h, 10);
  assert_int_equal(publish(f, "d", big), 1);
  assert_int_equal(rt_history_read(f->h, "d", NULL, 0, 0, 0, record_visit, &s), 1);
}

/* A subscriber that records each replayed message in full. */
static struct {
  int n;
  uint64_t offsets[16];
  char ctype[16][64], shown[16][64], header[16][64], body[16][32];
  int binary[16];
} replayed;

static void deliver_replay(rt_sub *s, rt_msg *m) {
  int i = replayed.n++;
  replayed.offsets[i] = m->offset;
  snprintf(replayed.ctype[i], 64, "%s", m->content_type ? m->content_type : "");
  snprintf(replayed.shown[i], 64, "%s", m->stomp_destination ? m->stomp_destination : "");
  if (m->nheaders == 2)
    snprintf(replayed.header[i], 64, "%s=%s,%s=%s", m->headers[0].name, m->headers[0].value,
             m->headers[1].name, m->headers[1].value);
  snprintf(replayed.body[i], 32, "%.*s", (int)m->body->len, (const char *)m->body->data);
  replayed.binary[i] = m->binary;
}

static void test_replay_carries_what_the_publisher_set(void **state) {
  fixture *f = *state;
  rt_history_policy(f->h, "/topic/x", 5, 60);
  char v0[] = "one";
  rt_header hs[2] = {{"a", 1, v0, 3}, {"bb", 2, "two", 3}};
  rt_msg m = {.destination = "/topic/x", .binary = 1, .content_type = "application/json",
              .stomp_destination = "/topic/x-shown", .headers = hs, .nheaders = 2};
  m.body = rt_chunk_copy("{}", 2);
  rt_broker_publish(f->b, &m);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  v0[0] = 'X';  /* the history has its own copy of the headers */
  publish(f, "/topic/x", "second");

  rt_conn *c = calloc(1, sizeof *c);
  memset(&replayed, 0, sizeof replayed);
  rt_sub *s = rt_broker_subscribe(f->b, "/topic/x", c, deliver_replay, NULL);
  const char *epoch;
  rt_history_top(f->h, "/topic/x", &epoch);
  assert_int_equal(rt_broker_replay(f->b, s, epoch, 0), 1);
  assert_int_equal(replayed.n, 2);
  assert_int_equal(replayed.offsets[0], 1);
  assert_string_equal(replayed.ctype[0], "application/json");
  assert_string_equal(replayed.shown[0], "/topic/x-shown");
  assert_string_equal(replayed.header[0], "a=one,bb=two");
  assert_string_equal(replayed.body[0], "{}");
  assert_int_equal(replayed.binary[0], 1);
  assert_int_equal(replayed.offsets[1], 2);
  assert_string_equal(replayed.body[1], "second");
  assert_string_equal(replayed.ctype[1], "");
  /* From 1: only the second. */
  memset(&replayed, 0, sizeof replayed);
  assert_int_equal(rt_broker_replay(f->b, s, epoch, 1), 1);
  assert_int_equal(replayed.n, 1);
  /* A wrong epoch, or a pattern subscriber: not recovered, nothing delivered. */
  memset(&replayed, 0, sizeof replayed);
  assert_int_equal(rt_broker_replay(f->b, s, "ffffffffffffffff", 0), 0);
  rt_sub *p = rt_broker_subscribe_pattern(f->b, "/topic/*", c, deliver_replay, NULL);
  assert_int_equal(rt_broker_replay(f->b, p, epoch, 0), 0);
  assert_int_equal(replayed.n, 0);
  rt_broker_drop_conn(f->b, c);
  free(c);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {}

static void test_ttl_expires_then_the_record_is_forgotten(void **state) {
  fixture *f = *state;
  rt_history_policy(f->h, "t", 5, 0.05);
  assert_int_equal(publish(f, "t", "a"), 1);
  const char *e;
  rt_history_top(f->h, "t", &e);
  char first[RT_HISTORY_EPOCH_LEN + 1];
  strcpy(first, e);
  usleep(80 * 1000);
  ev_now_update(f->srv->loop);
  seen s = {0};
  /* Expired: not complete from 0, nothing kept; up to date from 1 still is. */
  assert_int_equal(rt_history_read(f->h, "t", first, 0, 0, 1, record_visit, &s), 0);
  assert_int_equal(s.n, 0);
  assert_int_equal(rt_history_read(f->h, "t", first, 1, 0, 0, record_visit, &s), 1);
  /* The sweep (each second) forgets the empty record a ttl later; the next publish
   * starts a new epoch at offset 1. */
  ev_timer tick;  /* the sweep does not hold the loop: this does, while we wait for it */
  ev_timer_init(&tick, on_tick, 0.05, 0.05);
  ev_timer_start(f->srv->loop, &tick);
  for (int i = 0; i < 60 && rt_history_top(f->h, "t", &e); i++) ev_run(f->srv->loop, EVRUN_ONCE);
  ev_timer_stop(f->srv->loop, &tick);
  assert_int_equal(rt_history_top(f->h, "t", &e), 0);
  assert_int_equal(publish(f, "t", "b"), 1);
  rt_history_top(f->h, "t", &e);
  assert_string_not_equal(e, first);
}

static int lost_told;
static void count_lost(rt_sub *s) { lost_told++; }
static void ignore(rt_sub *s, rt_msg *m) {}

/* Messages dropped on the way to this process (a worker's full link): subscribers of topics
 * with history are told, and every history starts a new epoch. */
static void test_lost_all_tells_and_starts_new_epochs(void **state) {
  fixture *f = *state;
  rt_conn conns[2] = {0};
  assert_int_equal(rt_history_policy(f->h, "room", 10, 60), 0);
  rt_sub *kept = rt_broker_subscribe(f->b, "room", &conns[0], ignore, NULL);
  rt_sub *plain = rt_broker_subscribe(f->b, "other", &conns[1], ignore, NULL);
  kept->lost = plain->lost = count_lost;
  lost_told = 0;
  assert_true(publish(f, "room", "a") == 1);
  const char *e;
  rt_history_top(f->h, "room", &e);
  char before[32];
  snprintf(before, sizeof before, "%s", e);
  rt_broker_lost_all(f->b, "test");
  assert_int_equal(lost_told, 1);  /* "other" keeps no history: nothing to tell */
  assert_true(publish(f, "room", "b") == 1);
  rt_history_top(f->h, "room", &e);
  assert_string_not_equal(e, before);
  seen s = {0};
  assert_int_equal(rt_history_read(f->h, "room", before, 1, 0, 0, record_visit, &s), 0);
  rt_broker_unsubscribe(f->b, kept);
  rt_broker_unsubscribe(f->b, plain);
}

static void test_clearing_policies_stops_keeping(void **state) {
  fixture *f = *state;
  rt_history_policy(f->h, "t", 5, 60);
  assert_int_equal(publish(f, "t", "a"), 1);
  rt_history_clear_policies(f->h);
  assert_int_equal(publish(f, "t", "b"), 0);
  assert_false(rt_history_covers(f->h, "t"));
  /* what was kept stays readable */
  seen s = {0};
  assert_int_equal(rt_history_read(f->h, "t", NULL, 0, 0, 0, record_visit, &s), 1);
  assert_int_equal(s.n, 1);
  /* the same pattern twice: one policy, the new numbers */
  rt_history_policy(f->h, "t", 5, 60);
  rt_history_policy(f->h, "t", 1, 60);
  publish(f, "t", "c");
  publish(f, "t", "d");
  memset(&s, 0, sizeof s);
  rt_history_read(f->h, "t", NULL, 0, 0, 1, record_visit, &s);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.texts[0], "d");
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_offsets_only_where_a_policy_covers),
      T(test_size_bound_and_reads),
      T(test_byte_bound_drops_oldest_of_all_topics),
      T(test_replay_carries_what_the_publisher_set),
      T(test_ttl_expires_then_the_record_is_forgotten),
      T(test_clearing_policies_stops_keeping),
      T(test_lost_all_tells_and_starts_new_epochs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
