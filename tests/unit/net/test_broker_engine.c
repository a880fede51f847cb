/* Unit tests for the broker's side of an engine (core/broker.c with engine.h): which names
 * it watches, what it hands over on publish, how it delivers what comes back. A fake
 * engine records the calls; no sockets, no Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/broker.h"
#include "net/engine_msg.h"
#include "net/server_int.h"

static rt_header hdr(const char *n, const char *v) {
  return (rt_header){n, strlen(n), v, strlen(v)};
}

typedef struct fake {
  rt_engine base;
  char log[2048];         /* "+name " watch, "-name " unwatch, "+*pat " pattern */
  int publishes;
  rt_buf last;            /* the last message handed over */
  char last_name[256];
  int fail;               /* refuse publishes */
} fake;

static void f_watch(rt_engine *e, const char *name, int pattern) {
  fake *f = (fake *)e;
  snprintf(f->log + strlen(f->log), sizeof f->log - strlen(f->log), "+%s%s ", pattern ? "*" : "", name);
}
static void f_unwatch(rt_engine *e, const char *name, int pattern) {
  fake *f = (fake *)e;
  snprintf(f->log + strlen(f->log), sizeof f->log - strlen(f->log), "-%s%s ", pattern ? "*" : "", name);
}
static int f_publish(rt_engine *e, const char *name, const uint8_t *msg, size_t len, char *err,
                     size_t errlen) {
  fake *f = (fake *)e;
  if (f->fail) {
    snprintf(err, errlen, "fake engine is down");
    return -1;
  }
  f->publishes++;
  snprintf(f->last_name, sizeof f->last_name, "%s", name);
  f->last.len = f->last.off = 0;
  rt_buf_append(&f->last, msg, len);
  return 0;
}
static void f_free(rt_engine *e) {}
static const rt_engine_ops fake_ops = {"fake", f_watch, f_unwatch, f_publish, f_free, NULL, NULL};

typedef struct fixture {
  rt_server srv;
  rt_broker *b;
  rt_conn conns[4];
  fake eng;
} fixture;

static int got[8];
static rt_msg seen;
static void deliver(rt_sub *s, rt_msg *m) {
  got[(intptr_t)s->data]++;
  seen = *m;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->b = rt_broker_new(&f->srv);
  f->eng.base.ops = &fake_ops;
  f->eng.base.srv = &f->srv;
  f->eng.base.node_id = 42;
  f->srv.log.level = RT_LOG_OFF;
  memset(got, 0, sizeof got);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rt_broker_free(f->b);
  rt_buf_free(&f->eng.last);
  free(f);
  return 0;
}

static rt_sub *sub(fixture *f, const char *dest, int conn, int tag) {
  rt_sub *s = strchr(dest, '*')
                  ? rt_broker_subscribe_pattern(f->b, dest, &f->conns[conn], deliver, (void *)(intptr_t)tag)
                  : rt_broker_subscribe(f->b, dest, &f->conns[conn], deliver, (void *)(intptr_t)tag);
  assert_non_null(s);
  return s;
}

static void test_watches_names_not_subscribers(void **state) {
  fixture *f = *state;
  sub(f, "early", 0, 0);  /* before the engine: watched when it arrives */
  rt_broker_set_engine(f->b, &f->eng.base);
  assert_string_equal(f->eng.log, "+early ");
  rt_sub *a = sub(f, "chat", 0, 0);
  rt_sub *b = sub(f, "chat", 1, 1);
  sub(f, "/topic/a.*", 2, 2);
  assert_string_equal(f->eng.log, "+early +chat +*/topic/a.* ");
  rt_broker_unsubscribe(f->b, a);
  assert_string_equal(f->eng.log, "+early +chat +*/topic/a.* ");
  rt_broker_unsubscribe(f->b, b);
  assert_string_equal(f->eng.log, "+early +chat +*/topic/a.* -chat ");
  rt_broker_drop_conn(f->b, &f->conns[2]);
  assert_string_equal(f->eng.log, "+early +chat +*/topic/a.* -chat -*/topic/a.* ");
}

static void test_publish_hands_over_once(void **state) {
  fixture *f = *state;
  rt_broker_set_engine(f->b, &f->eng.base);
  sub(f, "chat", 0, 0);
  sub(f, "chat", 1, 1);
  const rt_header h[] = {hdr("x-k", "v")};
  rt_msg m = {.destination = "chat", .body = rt_chunk_copy("hi", 2), .stomp_destination = "/d",
              .content_type = "text/x", .headers = h, .nheaders = 1};
  assert_int_equal(rt_broker_publish(f->b, &m), 2);
  assert_null(m.engine_error);
  assert_int_equal(f->eng.publishes, 1);
  assert_string_equal(f->eng.last_name, "chat");
  rt_engine_msg d;
  rt_buf scratch = {0};
  char err[128];
  assert_int_equal(rt_engine_msg_decode(rt_buf_start(&f->eng.last), f->eng.last.len, &d, &scratch, err, sizeof err), 0);
  assert_true(d.origin == 42);
  assert_string_equal(d.stomp_destination, "/d");
  assert_string_equal(d.content_type, "text/x");
  assert_string_equal(d.headers[0].value, "v");
  assert_int_equal(f->srv.metrics.engine_published, 1);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  rt_buf_free(&scratch);
}

static void test_refused_publish_is_reported(void **state) {
  fixture *f = *state;
  rt_broker_set_engine(f->b, &f->eng.base);
  sub(f, "chat", 0, 0);
  f->eng.fail = 1;
  assert_int_equal(rt_broker_publish_data(f->b, "chat", "x", 1, 0), RT_BROKER_ENGINE_FAILED);
  assert_int_equal(got[0], 1);  /* the local subscriber got it all the same */
  assert_string_equal(rt_broker_engine_error(f->b), "fake engine is down");
  assert_int_equal(f->srv.metrics.engine_publish_failures, 1);
  f->eng.fail = 0;
  assert_int_equal(rt_broker_publish_data(f->b, "chat", "x", 1, 0), 1);
}

static rt_buf message(uint64_t origin, const char *name, const char *body) {
  rt_engine_msg m = {.origin = origin, .name = name, .body = (const uint8_t *)body, .body_len = strlen(body)};
  rt_buf b = {0};
  assert_int_equal(rt_engine_msg_encode(&b, &m), 0);
  return b;
}

static void test_from_engine_scopes(void **state) {
  fixture *f = *state;
  rt_broker_set_engine(f->b, &f->eng.base);
  sub(f, "/topic/a.b", 0, 0);
  sub(f, "/topic/a.*", 1, 1);
  sub(f, "/topic/**", 2, 2);
  rt_buf m = message(7, "/topic/a.b", "hello");
  rt_broker_from_engine(f->b, rt_buf_start(&m), m.len, RT_ENGINE_EXACT, NULL);
  assert_int_equal(got[0], 1);
  assert_int_equal(got[1] + got[2], 0);
  assert_memory_equal(seen.body->data, "hello", 5);
  /* Through PSUBSCRIBE "/topic/a.*": only the pattern with that glob. */
  rt_broker_from_engine(f->b, rt_buf_start(&m), m.len, RT_ENGINE_PATTERN, "/topic/a.*");
  assert_int_equal(got[1], 1);
  assert_int_equal(got[0] + got[2], 1);
  rt_broker_from_engine(f->b, rt_buf_start(&m), m.len, RT_ENGINE_PATTERN, "/topic/*");
  assert_int_equal(got[2], 1);
  rt_broker_from_engine(f->b, rt_buf_start(&m), m.len, RT_ENGINE_ALL, NULL);
  assert_int_equal(got[0] + got[1] + got[2], 6);
  assert_int_equal(f->srv.metrics.engine_received, 4);
  /* Nothing goes back into the engine. */
  assert_int_equal(f->eng.publishes, 0);
  rt_buf_free(&m);
}

static void test_own_echo_and_garbage_dropped(void **state) {
  fixture *f = *state;
  rt_broker_set_engine(f->b, &f->eng.base);
  sub(f, "chat", 0, 0);
  rt_buf m = message(42, "chat", "mine");
  rt_broker_from_engine(f->b, rt_buf_start(&m), m.len, RT_ENGINE_EXACT, NULL);
  assert_int_equal(got[0], 0);
  rt_broker_from_engine(f->b, (const uint8_t *)"junk", 4, RT_ENGINE_EXACT, NULL);
  assert_int_equal(got[0], 0);
  assert_int_equal(f->srv.metrics.engine_bad_messages, 1);
  rt_buf_free(&m);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_watches_names_not_subscribers), T(test_publish_hands_over_once),
      T(test_refused_publish_is_reported),   T(test_from_engine_scopes),
      T(test_own_echo_and_garbage_dropped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
