/* Unit tests for core/net/stream.c: histories that live in the engine. A fake engine plays
 * Redis (it keeps the history, assigns offsets and answers reads when the test says so);
 * the test decides which published messages reach the node, to make gaps, and when
 * reads are answered, to make many subscribers wait on one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "net/broker.h"
#include "net/engine_msg.h"
#include "net/history.h"
#include "net/server_int.h"
#include "net/stream.h"

#define MAX_KEPT 64
#define MAX_READS 16

/* A read runs in Redis when it is sent (one connection keeps commands in order): its
 * answer is what was there then, handed over later. */
typedef struct read_req {
  void (*fn)(void *ud, const rt_engine_history *h);
  void *ud;
  uint64_t since, top, first;
  char epoch[17];
} read_req;

/* One topic's history "in Redis", and what the node has not been handed yet. */
typedef struct fake {
  rt_engine base;
  char epoch[17];
  uint64_t top;
  size_t size;
  rt_buf kept[MAX_KEPT];       /* by offset % MAX_KEPT, the last `size` */
  read_req reads[MAX_READS];
  int nreads, reads_sent;
  int down;
  int fail_answers;            /* the next answers say the connection was lost */
} fake;

static void f_watch(rt_engine *e, const char *name, int pattern) {}
static void f_unwatch(rt_engine *e, const char *name, int pattern) {}
static int f_publish(rt_engine *e, const char *name, const uint8_t *msg, size_t len, char *err,
                     size_t errlen) {
  return 0;
}
static void f_free(rt_engine *e) {}

static int f_publish_kept(rt_engine *e, const char *name, const uint8_t *msg, size_t len,
                          size_t size, double ttl, char *err, size_t errlen) {
  fake *f = (fake *)e;
  if (f->down) {
    snprintf(err, errlen, "down");
    return -1;
  }
  f->size = size;
  rt_buf *b = &f->kept[++f->top % MAX_KEPT];
  b->len = b->off = 0;
  char prefix[64];
  int n = snprintf(prefix, sizeof prefix, "RH%s:%llu\n", f->epoch, (unsigned long long)f->top);
  rt_buf_append(b, prefix, (size_t)n);
  rt_buf_append(b, msg, len);
  return 0;
}

static uint64_t first_kept(fake *f);

static int f_read(rt_engine *e, const char *name, uint64_t since, size_t limit,
                  void (*fn)(void *ud, const rt_engine_history *h), void *ud) {
  fake *f = (fake *)e;
  assert_true(f->nreads < MAX_READS);
  read_req *r = &f->reads[f->nreads++];
  *r = (read_req){fn, ud, since, f->top, first_kept(f), ""};
  snprintf(r->epoch, sizeof r->epoch, "%s", f->top ? f->epoch : "");
  f->reads_sent++;
  return 0;
}

static const rt_engine_ops fake_ops = {"fake", f_watch, f_unwatch, f_publish, f_free,
                                       f_publish_kept, f_read};

static uint64_t first_kept(fake *f) {
  uint64_t n = f->top < f->size ? f->top : f->size;
  return f->top - n + 1;
}

/* Answers the oldest read that is out, as Redis would now. */
static void answer_one_read(fake *f) {
  if (f->nreads) {
    read_req r = f->reads[0];
    memmove(f->reads, f->reads + 1, --f->nreads * sizeof *f->reads);
    const uint8_t *items[MAX_KEPT];
    size_t lens[MAX_KEPT], n = 0;
    for (uint64_t o = r.first; o <= r.top && n < MAX_KEPT; o++) {
      if (o <= r.since) continue;
      items[n] = rt_buf_start(&f->kept[o % MAX_KEPT]);
      lens[n++] = f->kept[o % MAX_KEPT].len;
    }
    rt_engine_history h = {.epoch = r.epoch, .top = r.top, .first = r.first, .n = n,
                           .items = items, .lens = lens};
    if (f->fail_answers > 0) {
      f->fail_answers--;
      h = (rt_engine_history){.err = "the connection to redis was lost"};
    }
    r.fn(r.ud, &h);
  }
}

/* Answers every read that is out, and those they start. */
static void answer_reads(fake *f) {
  while (f->nreads) answer_one_read(f);
}

typedef struct fixture {
  rt_server srv;
  rt_broker *b;
  rt_conn conns[8];
  fake eng;
} fixture;

/* What each subscriber (by tag) got: bodies in order, and notices. */
static char got[8][1024];
static int lost[8], recovered_ok[8], recovered_calls[8];

static void deliver(rt_sub *s, rt_msg *m) {
  char *g = got[(intptr_t)s->data];
  snprintf(g + strlen(g), sizeof got[0] - strlen(g), "%.*s@%llu ", (int)m->body->len,
           (const char *)m->body->data, (unsigned long long)m->offset);
}
static void on_lost(rt_sub *s) {
  lost[(intptr_t)s->data]++;
  char *g = got[(intptr_t)s->data];
  snprintf(g + strlen(g), sizeof got[0] - strlen(g), "LOST ");
}
static void on_recovered(rt_sub *s, int ok) {
  recovered_calls[(intptr_t)s->data]++;
  recovered_ok[(intptr_t)s->data] += ok;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->srv.loop = ev_loop_new(0);
  f->srv.log.level = RT_LOG_OFF;
  f->b = rt_broker_new(&f->srv);
  f->eng.base.ops = &fake_ops;
  f->eng.base.srv = &f->srv;
  f->eng.base.node_id = 42;
  snprintf(f->eng.epoch, sizeof f->eng.epoch, "e1");
  f->eng.size = 10;
  rt_history_policy(rt_broker_history(f->b), "t", 10, 60);
  rt_broker_set_engine(f->b, &f->eng.base);
  memset(got, 0, sizeof got);
  memset(lost, 0, sizeof lost);
  memset(recovered_ok, 0, sizeof recovered_ok);
  memset(recovered_calls, 0, sizeof recovered_calls);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rt_broker_free(f->b);
  for (int i = 0; i < MAX_KEPT; i++) rt_buf_free(&f->eng.kept[i]);
  ev_loop_destroy(f->srv.loop);
  free(f);
  return 0;
}

static rt_sub *sub(fixture *f, int conn, int tag) {
  rt_sub *s = rt_broker_subscribe(f->b, "t", &f->conns[conn], deliver, (void *)(intptr_t)tag);
  assert_non_null(s);
  s->lost = on_lost;
  s->recovered = on_recovered;
  return s;
}

static void publish(fixture *f, const char *body) {
  rt_msg m = {.destination = "t", .body = rt_chunk_copy(body, strlen(body))};
  assert_true(rt_broker_publish(f->b, &m) >= 0);
  assert_null(m.engine_error);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
}

/* The node's pub/sub connection hands it message offset (kept in the fake). */
static void arrive(fixture *f, uint64_t offset) {
  rt_buf *b = &f->eng.kept[offset % MAX_KEPT];
  rt_broker_from_engine(f->b, rt_buf_start(b), b->len, RT_ENGINE_EXACT, NULL);
}

static void test_publish_goes_through_the_engine(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  assert_int_equal(f->eng.nreads, 1);  /* the position, when the node starts following */
  answer_reads(&f->eng);
  publish(f, "a");
  publish(f, "b");
  assert_string_equal(got[0], "");     /* nothing before it comes back with its offset */
  arrive(f, 1);
  arrive(f, 2);
  arrive(f, 2);                        /* a duplicate is dropped */
  assert_string_equal(got[0], "a@1 b@2 ");
  f->eng.down = 1;
  rt_msg m = {.destination = "t", .body = rt_chunk_copy("c", 1)};
  assert_int_equal(rt_broker_publish(f->b, &m), 0);
  assert_non_null(m.engine_error);     /* refused: nobody gets a message without a place */
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
}

static void test_gap_is_read_back_in_order(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  for (int i = 0; i < 5; i++) publish(f, (const char[]){(char)('a' + i), 0});
  arrive(f, 1);
  arrive(f, 4);                        /* 2 and 3 were lost on the way */
  assert_int_equal(f->eng.nreads, 1);
  assert_true(f->eng.reads[0].since == 1);
  arrive(f, 5);                        /* held while the read is out */
  assert_string_equal(got[0], "a@1 ");
  answer_reads(&f->eng);
  assert_string_equal(got[0], "a@1 b@2 c@3 d@4 e@5 ");
  assert_int_equal(lost[0], 0);
}

static void test_gap_no_longer_kept_is_told(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  f->eng.size = 2;                     /* Redis keeps only the last two */
  rt_history_policy(rt_broker_history(f->b), "t", 2, 60);
  for (int i = 0; i < 5; i++) publish(f, (const char[]){(char)('a' + i), 0});
  arrive(f, 1);
  arrive(f, 5);
  answer_reads(&f->eng);
  assert_string_equal(got[0], "a@1 LOST d@4 e@5 ");
}

static void test_new_epoch_is_told(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  publish(f, "a");
  arrive(f, 1);
  /* Redis restarted empty: a new epoch, offsets from 1 again. */
  snprintf(f->eng.epoch, sizeof f->eng.epoch, "e2");
  f->eng.top = 0;
  publish(f, "b");
  arrive(f, 1);
  assert_string_equal(got[0], "a@1 LOST b@1 ");
}

static void test_resubscribe_finds_a_silent_gap(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  publish(f, "a");
  publish(f, "b");
  arrive(f, 1);                        /* then the connection dropped: b never came */
  rt_broker_engine_subscribed(f->b, "t");
  answer_reads(&f->eng);
  assert_string_equal(got[0], "a@1 b@2 ");
}

/* Many subscribers recovering at once, beyond the cache: one read serves them all. */
static void test_waiting_subscribers_share_one_read(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 6; i++) publish(f, (const char[]){(char)('a' + i), 0});
  rt_sub *s[6];
  for (int i = 0; i < 6; i++) {
    s[i] = sub(f, i, i);
    int rc = rt_broker_replay(f->b, s[i], "e1", 2);
    assert_int_equal(rc, RT_STREAM_PENDING);
    assert_int_equal(s[i]->held, 1);
  }
  /* The position read (on the first subscriber) is out; the waiters' read waits for it:
   * one read out per topic at a time. */
  assert_int_equal(f->eng.reads_sent, 1);
  answer_reads(&f->eng);  /* the position, then the one read for all six */
  publish(f, "g");
  arrive(f, 7);
  for (int i = 0; i < 6; i++) {
    assert_string_equal(got[i], "c@3 d@4 e@5 f@6 g@7 ");
    assert_int_equal(recovered_calls[i], 1);
    assert_int_equal(recovered_ok[i], 1);
    assert_int_equal(s[i]->held, 0);
  }
  assert_int_equal(f->eng.reads_sent, 2);
  /* Now the cache reaches back: a seventh is served at once, without a read. */
  rt_sub *late = sub(f, 6, 6);
  assert_int_equal(rt_broker_replay(f->b, late, "e1", 4), 1);
  assert_string_equal(got[6], "e@5 f@6 g@7 ");
  assert_int_equal(f->eng.reads_sent, 2);
  /* Another epoch, or a position the history no longer has: not recovered. */
  rt_sub *other = sub(f, 7, 7);
  assert_int_equal(rt_broker_replay(f->b, other, "zz", 4), RT_STREAM_PENDING);
  answer_reads(&f->eng);
  assert_int_equal(recovered_calls[7], 1);
  assert_int_equal(recovered_ok[7], 0);
  assert_string_equal(got[7], "");
}

/* A client that saw more (on another node) than this node has delivered yet: it waits for
 * a read, which brings the node up to date first; nothing comes twice. */
static void test_client_ahead_of_the_node(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  for (int i = 0; i < 5; i++) publish(f, (const char[]){(char)('a' + i), 0});
  arrive(f, 1);
  arrive(f, 2);
  rt_sub *ahead = sub(f, 1, 1);
  assert_int_equal(rt_broker_replay(f->b, ahead, "e1", 4), RT_STREAM_PENDING);
  answer_reads(&f->eng);
  assert_string_equal(got[0], "a@1 b@2 c@3 d@4 e@5 ");
  assert_string_equal(got[1], "e@5 ");
  assert_int_equal(recovered_ok[1], 1);
  arrive(f, 3);
  arrive(f, 4);
  arrive(f, 5);
  assert_string_equal(got[1], "e@5 ");
  publish(f, "f");
  arrive(f, 6);
  assert_string_equal(got[1], "e@5 f@6 ");
}

/* Subscribers that come while the waiters' read is out are served by its answer when it
 * reaches back far enough for them: a reconnect storm arriving over several loop turns
 * costs no read per wave. One from further back gets a read of its own after it. */
static void test_late_waiters_share_the_read_out(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 6; i++) publish(f, (const char[]){(char)('a' + i), 0});
  rt_sub *first = sub(f, 0, 0);
  assert_int_equal(rt_broker_replay(f->b, first, "e1", 2), RT_STREAM_PENDING);
  answer_one_read(&f->eng);  /* the position; now the read for the waiter is out */
  assert_int_equal(f->eng.nreads, 1);
  assert_true(f->eng.reads[0].since == 2);
  rt_sub *same = sub(f, 1, 1);
  assert_int_equal(rt_broker_replay(f->b, same, "e1", 3), RT_STREAM_PENDING);
  answer_one_read(&f->eng);
  assert_string_equal(got[0], "c@3 d@4 e@5 f@6 ");
  assert_string_equal(got[1], "d@4 e@5 f@6 ");
  assert_int_equal(recovered_ok[0] + recovered_ok[1], 2);
  assert_int_equal(f->eng.nreads, 0);  /* before the fix: a third read, for nobody */
  assert_int_equal(f->eng.reads_sent, 2);

  /* The cache holds 3..6 now. One from 1 waits for a read; one from 0, arriving while
   * that read is out, needs more than it brings: another read follows for it. */
  rt_sub *mid = sub(f, 2, 2), *older = sub(f, 3, 3);
  assert_int_equal(rt_broker_replay(f->b, mid, "e1", 1), RT_STREAM_PENDING);
  assert_int_equal(rt_broker_replay(f->b, older, "e1", 0), RT_STREAM_PENDING);
  answer_one_read(&f->eng);
  assert_string_equal(got[2], "b@2 c@3 d@4 e@5 f@6 ");
  assert_string_equal(got[3], "");
  assert_int_equal(f->eng.nreads, 1);
  assert_true(f->eng.reads[0].since == 0);
  answer_reads(&f->eng);
  assert_string_equal(got[3], "a@1 b@2 c@3 d@4 e@5 f@6 ");
  assert_int_equal(recovered_ok[2] + recovered_ok[3], 2);
  assert_int_equal(f->eng.reads_sent, 4);
}

/* A client ahead of this node that comes while a read is out: Redis may have run that read
 * before the client's offset was published, so an answer whose top is below the client's
 * place does not decide; the next read does (found by the history benchmark). */
static void test_ahead_while_a_read_is_out(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  for (int i = 0; i < 4; i++) publish(f, (const char[]){(char)('a' + i), 0});
  arrive(f, 1);
  arrive(f, 2);
  arrive(f, 4);                 /* a gap: the node reads from 2; Redis answers top = 4 */
  assert_int_equal(f->eng.nreads, 1);
  publish(f, "e");              /* 5: published after Redis ran that read */
  rt_sub *ahead = sub(f, 1, 1); /* saw e@5 on another node, comes here before the answer */
  assert_int_equal(rt_broker_replay(f->b, ahead, "e1", 5), RT_STREAM_PENDING);
  answer_reads(&f->eng);
  arrive(f, 5);
  assert_int_equal(recovered_calls[1], 1);
  assert_int_equal(recovered_ok[1], 1);   /* fails: told not recovered */
}

/* A place this topic never reached (a bogus or stale client): a few reads, then told. */
static void test_bogus_place_is_not_recovered(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  answer_reads(&f->eng);
  publish(f, "a");
  arrive(f, 1);
  rt_sub *liar = sub(f, 1, 1);
  assert_int_equal(rt_broker_replay(f->b, liar, "e1", 1000), RT_STREAM_PENDING);
  int sent = f->eng.reads_sent;
  answer_reads(&f->eng);
  assert_int_equal(recovered_calls[1], 1);
  assert_int_equal(recovered_ok[1], 0);
  assert_int_equal(f->eng.reads_sent - sent, RT_STREAM_EARLY_ANSWERS);
  assert_int_equal(liar->held, 0);
  publish(f, "b");
  arrive(f, 2);
  assert_string_equal(got[1], "b@2 ");  /* live from here */
}

/* The first position read failed (Redis went away); messages came before the next one,
 * whose position already counts them: they are still delivered, not taken as seen. */
static void test_position_after_held_messages(void **state) {
  fixture *f = *state;
  sub(f, 0, 0);
  f->eng.fail_answers = 1;
  answer_reads(&f->eng);
  publish(f, "a");
  publish(f, "b");
  arrive(f, 1);
  arrive(f, 2);
  assert_string_equal(got[0], "");
  rt_broker_engine_subscribed(f->b, "t");
  answer_reads(&f->eng);
  assert_string_equal(got[0], "a@1 b@2 ");
}

/* A waiter that leaves before the answer is forgotten, not delivered to. */
static void test_waiter_that_leaves(void **state) {
  fixture *f = *state;
  publish(f, "a");
  rt_sub *keep = sub(f, 0, 0);
  answer_reads(&f->eng);
  rt_sub *gone = sub(f, 1, 1);
  assert_int_equal(rt_broker_replay(f->b, gone, "e1", 0), RT_STREAM_PENDING);
  rt_broker_unsubscribe(f->b, gone);
  answer_reads(&f->eng);
  assert_int_equal(recovered_calls[1], 0);
  (void)keep;
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_publish_goes_through_the_engine),
      T(test_gap_is_read_back_in_order),
      T(test_gap_no_longer_kept_is_told),
      T(test_new_epoch_is_told),
      T(test_resubscribe_finds_a_silent_gap),
      T(test_waiting_subscribers_share_one_read),
      T(test_late_waiters_share_the_read_out),
      T(test_waiter_that_leaves),
      T(test_client_ahead_of_the_node),
      T(test_ahead_while_a_read_is_out),
      T(test_bogus_place_is_not_recovered),
      T(test_position_after_held_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
