/* Unit tests for SockJS session state (core/sockjs.c, core/sockjs_http.c): a real server
 * on its own loop, HTTP over socketpair(), endpoints registered by a small app script, and
 * the application hooks played by the test (swapped in for the Lua ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "net/broker.h"
#include "net/conn.h"
#include "net/server_int.h"
#include "sockjs/sockjs.h"
#include "tnet.h"

static const char APP[] =
    "local rt = require 'rt'\n"
    "rt.sockjs('/s', { heartbeat = 0.2, disconnect_delay = 0.3, response_limit = 300,\n"
    "                  max_queue = 4, max_sessions = 3 })\n"
    "rt.sockjs('/big', { heartbeat = 0, disconnect_delay = 5, response_limit = 1e9,\n"
    "                    max_queue = 100000, max_queue_bytes = 1e9 })\n";

typedef struct fx {
  tsrv t;
  rt_sockjs_server *sj;
  int opens, closes, msgs;
  rt_sockjs_session *last_open;
  int last_code;
  char last_reason[128];
  char msg[16][256];
} fx;

static void hook_open(void *ud, rt_sockjs_session *s, const rt_http_req *req) {
  fx *f = ud;
  f->opens++;
  f->last_open = s;
  assert_non_null(req);
}

static void hook_message(void *ud, rt_sockjs_session *s, const uint8_t *m, size_t len) {
  fx *f = ud;
  if (f->msgs < 16) snprintf(f->msg[f->msgs], sizeof f->msg[0], "%.*s", (int)len, (const char *)m);
  f->msgs++;
}

static void hook_close(void *ud, rt_sockjs_session *s, int code, const char *reason) {
  fx *f = ud;
  f->closes++;
  f->last_code = code;
  snprintf(f->last_reason, sizeof f->last_reason, "%s", reason);
}

static int setup_cfg(void **state, size_t max_out) {
  fx *f = calloc(1, sizeof *f);
  rt_config cfg;
  tsrv_config(&cfg);
  if (max_out) cfg.max_output_bytes = max_out;
  if (tsrv_start(&f->t, &cfg) < 0 || tsrv_load_source(&f->t, APP) < 0) {
    fprintf(stderr, "setup: %s\n", f->t.err);
    return -1;
  }
  /* The app made the SockJS server; the test takes its events instead of Lua. */
  lua_State *L = rt_server_lua(f->t.srv);
  lua_getfield(L, LUA_REGISTRYINDEX, "rt.sockjs.server");
  f->sj = *(rt_sockjs_server **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  f->sj->hooks = (rt_sockjs_hooks){.on_open = hook_open, .on_message = hook_message,
                                   .on_close = hook_close, .ud = f};
  *state = f;
  return 0;
}
static int setup(void **state) { return setup_cfg(state, 0); }
static int setup_small_out(void **state) { return setup_cfg(state, 32 * 1024); }

static int teardown(void **state) {
  fx *f = *state;
  tsrv_stop(&f->t);
  free(f);
  return 0;
}

/* ---- an HTTP client over a socketpair ------------------------------------------------ */

typedef struct hc {
  int fd;
  rt_conn *c;
  uint8_t raw[1 << 18];
  size_t rawlen;
  char body[1 << 18];
  size_t blen;
  int status, head_done, chunked, ended, eof;
  long content_length;  /* -1: none */
} hc;

static hc *request(fx *f, const char *method, const char *path, const char *body) {
  hc *h = calloc(1, sizeof *h);
  h->c = tconn_http(&f->t, &h->fd);
  assert_non_null(h->c);
  char req[1024];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s", method,
                   path, body ? strlen(body) : 0, body ? body : "");
  assert_int_equal(tclient_write(f->t.loop, h->fd, req, (size_t)n), 0);
  return h;
}

static void hc_free(hc *h) {
  close(h->fd);
  free(h);
}

/* Moves what arrived into body (head parsed, chunks decoded). */
static void decode(hc *h) {
  if (!h->head_done) {
    uint8_t *end = memmem(h->raw, h->rawlen, "\r\n\r\n", 4);
    if (!end) return;
    size_t hl = (size_t)(end - h->raw) + 4;
    char head[4096];
    snprintf(head, sizeof head, "%.*s", (int)hl, (char *)h->raw);
    h->status = atoi(head + 9);
    h->chunked = strstr(head, "Transfer-Encoding: chunked") != NULL;
    const char *cl = strstr(head, "Content-Length: ");
    h->content_length = cl ? atol(cl + 16) : -1;
    memmove(h->raw, h->raw + hl, h->rawlen - hl);
    h->rawlen -= hl;
    h->head_done = 1;
  }
  if (!h->chunked) {
    memcpy(h->body + h->blen, h->raw, h->rawlen);
    h->blen += h->rawlen;
    h->rawlen = 0;
    h->body[h->blen] = 0;
    if (h->content_length >= 0 && h->blen >= (size_t)h->content_length) h->ended = 1;
    return;
  }
  for (;;) {
    uint8_t *nl = memmem(h->raw, h->rawlen, "\r\n", 2);
    if (!nl) return;
    size_t size = strtoul((char *)h->raw, NULL, 16), hl = (size_t)(nl - h->raw) + 2;
    if (h->rawlen < hl + size + 2) return;
    if (size == 0) h->ended = 1;
    memcpy(h->body + h->blen, h->raw + hl, size);
    h->blen += size;
    h->body[h->blen] = 0;
    memmove(h->raw, h->raw + hl + size + 2, h->rawlen - hl - size - 2);
    h->rawlen -= hl + size + 2;
    if (h->ended) return;
  }
}

/* Reads until the body holds needle (NULL: until the response ends). Returns 1 if so. */
static int wait_body(fx *f, hc *h, const char *needle, double timeout) {
  double deadline = ev_time() + timeout;
  for (;;) {
    decode(h);
    if (needle ? h->head_done && strstr(h->body, needle) != NULL : h->ended) return 1;
    if (h->eof || ev_time() > deadline) return 0;
    size_t n = tclient_read(f->t.loop, h->fd, h->raw + h->rawlen, sizeof h->raw - h->rawlen - 1, 0.02, &h->eof);
    h->rawlen += n;
  }
}

/* A whole response (polling, xhr_send ...): its body. */
static const char *fetch(fx *f, const char *method, const char *path, const char *body, int *status) {
  static char out[1 << 16];
  hc *h = request(f, method, path, body);
  if (!wait_body(f, h, NULL, 2.0)) fail_msg("%s %s: no complete response (%s)", method, path, h->body);
  if (status) *status = h->status;
  assert_true(h->blen < sizeof out);
  memcpy(out, h->body, h->blen + 1);
  hc_free(h);
  return out;
}

/* Runs the loop for secs of wall time: at least one turn (a process descheduled before
 * the first check must still run the loop), and one more once the time is up (one
 * descheduled in usleep must not return before the loop has seen the time it waited). */
static void spin_for(fx *f, double secs) {
  double until = ev_time() + secs;
  do {
    tloop_spin(f->t.loop, 1);
    usleep(2000);
  } while (ev_time() < until);
  tloop_spin(f->t.loop, 1);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_open_poll_and_batching(void **state) {
  fx *f = *state;
  int st;
  assert_string_equal(fetch(f, "POST", "/s/0/a/xhr", NULL, &st), "o\n");
  assert_int_equal(st, 200);
  assert_int_equal(f->opens, 1);
  rt_sockjs_endpoint *ep = rt_sockjs_endpoint_find(f->sj, "/s");
  rt_sockjs_session *s = rt_sockjs_session_find(ep, "a");
  assert_non_null(s);
  assert_ptr_equal(s, f->last_open);
  assert_ptr_equal(rt_sockjs_session_of(s->conn), s);
  /* Sent in one loop turn with no receiver: queued, then one frame. */
  assert_int_equal(rt_sockjs_session_send(s, "x", 1), 0);
  assert_int_equal(rt_sockjs_session_send(s, "y\"", 2), 0);
  assert_int_equal(s->qlen, 2);
  assert_string_equal(fetch(f, "POST", "/s/0/a/xhr", NULL, NULL), "a[\"x\",\"y\\\"\"]\n");
  assert_int_equal(s->qlen, 0);
  /* An open poll takes the next sends, batched by the loop turn. */
  hc *h = request(f, "POST", "/s/0/a/xhr", NULL);
  spin_for(f, 0.02);
  assert_ptr_equal(s->recv, h->c);
  rt_sockjs_session_send(s, "1", 1);
  rt_sockjs_session_send(s, "2", 1);
  assert_true(wait_body(f, h, NULL, 1.0));
  assert_string_equal(h->body, "a[\"1\",\"2\"]\n");
  assert_null(s->recv);
  hc_free(h);
  assert_int_equal(f->opens, 1);
}

static void test_send_to_hooks_and_errors(void **state) {
  fx *f = *state;
  int st;
  fetch(f, "POST", "/s/0/b/xhr", NULL, NULL);
  fetch(f, "POST", "/s/0/b/xhr_send", "[\"m1\",\"m\\u00e92\"]", &st);
  assert_int_equal(st, 204);
  assert_int_equal(f->msgs, 2);
  assert_string_equal(f->msg[0], "m1");
  assert_string_equal(f->msg[1], "mé2");
  assert_string_equal(fetch(f, "POST", "/s/0/b/xhr_send", "[\"m3\",", &st), "Broken JSON encoding.");
  assert_int_equal(st, 500);
  assert_int_equal(f->msgs, 2);  /* nothing of a broken payload is delivered */
  fetch(f, "POST", "/s/0/nobody/xhr_send", "[\"x\"]", &st);
  assert_int_equal(st, 404);
}

static void test_second_receiver(void **state) {
  fx *f = *state;
  hc *first = request(f, "POST", "/s/0/c/xhr_streaming", NULL);
  assert_true(wait_body(f, first, "o\n", 1.0));
  assert_string_equal(fetch(f, "POST", "/s/0/c/xhr", NULL, NULL), "c[2010,\"Another connection still open\"]\n");
  rt_sockjs_session *s = rt_sockjs_session_find(rt_sockjs_endpoint_find(f->sj, "/s"), "c");
  assert_ptr_equal(s->recv, first->c);
  rt_sockjs_session_send(s, "still", 5);
  assert_true(wait_body(f, first, "a[\"still\"]\n", 1.0));
  hc_free(first);
}

static void test_heartbeat(void **state) {
  fx *f = *state;
  /* Timed from before the request (the session and its 0.2 s timer cannot start sooner),
   * not from when a descheduled test got round to reading "o": the beats come 0.2 and
   * 0.4 s after it at the earliest, however loaded the machine. */
  double t0 = ev_time();
  hc *h = request(f, "POST", "/s/0/d/xhr_streaming", NULL);
  assert_true(wait_body(f, h, "o\n", 2.0));
  assert_true(wait_body(f, h, "o\nh\n", 2.0));
  assert_true(ev_time() - t0 >= 0.19);  /* 10 ms for the wall clock against libev's */
  assert_true(wait_body(f, h, "o\nh\nh\n", 2.0));
  assert_true(ev_time() - t0 >= 0.39);
  hc_free(h);
}

static void test_disconnect_delay(void **state) {
  fx *f = *state;
  rt_sockjs_endpoint *ep = rt_sockjs_endpoint_find(f->sj, "/s");
  fetch(f, "POST", "/s/0/e/xhr", NULL, NULL);
  assert_int_equal(ep->nsessions, 1);
  spin_for(f, 0.2);
  fetch(f, "POST", "/s/0/e/xhr_send", "[\"keep\"]", NULL);  /* no receiver: does not count */
  spin_for(f, 0.2);
  assert_int_equal(f->closes, 1);
  assert_int_equal(f->last_code, 1006);
  assert_string_equal(f->last_reason, "session timed out");
  assert_null(rt_sockjs_session_find(ep, "e"));
  assert_int_equal(ep->nsessions, 0);
  /* A client that aborts its stream: what was written to it may be lost, so the session
   * closes at once with 1002, the next request hears it, and it is gone after the delay. */
  hc *h = request(f, "POST", "/s/0/f/xhr_streaming", NULL);
  assert_true(wait_body(f, h, "o\n", 1.0));
  rt_sockjs_session *s = rt_sockjs_session_find(ep, "f");
  assert_non_null(s->recv);
  hc_free(h);
  spin_for(f, 0.05);
  assert_null(s->recv);
  assert_int_equal(f->closes, 2);
  assert_int_equal(f->last_code, 1002);
  assert_string_equal(f->last_reason, "Connection interrupted");
  assert_string_equal(fetch(f, "POST", "/s/0/f/xhr", NULL, NULL), "c[1002,\"Connection interrupted\"]\n");
  spin_for(f, 0.4);
  assert_int_equal(f->closes, 2);
  assert_null(rt_sockjs_session_find(ep, "f"));
  /* The same for a poll left waiting. */
  fetch(f, "POST", "/s/0/p/xhr", NULL, NULL);
  hc *poll = request(f, "POST", "/s/0/p/xhr", NULL);
  spin_for(f, 0.05);
  assert_non_null(rt_sockjs_session_find(ep, "p")->recv);
  hc_free(poll);
  spin_for(f, 0.05);
  assert_int_equal(f->closes, 3);
  assert_int_equal(f->last_code, 1002);
}

static void test_queue_bound_and_closed_session(void **state) {
  fx *f = *state;
  rt_sockjs_endpoint *ep = rt_sockjs_endpoint_find(f->sj, "/s");
  fetch(f, "POST", "/s/0/g/xhr", NULL, NULL);
  rt_sockjs_session *s = rt_sockjs_session_find(ep, "g");
  rt_sockjs_session_hold(s);
  for (int i = 0; i < 4; i++) assert_int_equal(rt_sockjs_session_send(s, "q", 1), 0);
  assert_int_equal(rt_sockjs_session_send(s, "q", 1), -1);  /* max_queue 4 */
  assert_int_equal(s->state, RT_SOCKJS_S_CLOSED);
  assert_null(s->conn);
  assert_int_equal(f->closes, 1);
  assert_int_equal(f->last_code, 1008);
  assert_int_equal(f->t.srv->metrics.slow_consumers, 1);
  assert_int_equal(rt_sockjs_session_send(s, "late", 4), -1);
  /* What was queued still goes out, then the close frame, again and again. */
  assert_string_equal(fetch(f, "POST", "/s/0/g/xhr", NULL, NULL), "a[\"q\",\"q\",\"q\",\"q\"]\n");
  assert_string_equal(fetch(f, "POST", "/s/0/g/xhr", NULL, NULL), "c[1008,\"slow consumer\"]\n");
  assert_string_equal(fetch(f, "POST", "/s/0/g/xhr", NULL, NULL), "c[1008,\"slow consumer\"]\n");
  int st;
  fetch(f, "POST", "/s/0/g/xhr_send", "[\"x\"]", &st);
  assert_int_equal(st, 404);
  /* It expires a disconnect delay after the last request. */
  spin_for(f, 0.45);
  assert_true(s->dead);
  assert_int_equal(ep->nsessions, 0);
  assert_int_equal(f->closes, 1);
  assert_int_equal(rt_sockjs_session_release(s), -1);
}

static void test_close_flushes_first(void **state) {
  fx *f = *state;
  hc *h = request(f, "POST", "/s/0/h/xhr_streaming", NULL);
  assert_true(wait_body(f, h, "o\n", 1.0));
  rt_sockjs_session *s = rt_sockjs_session_find(rt_sockjs_endpoint_find(f->sj, "/s"), "h");
  rt_sockjs_session_send(s, "bye", 3);
  rt_sockjs_session_close(s, 3000, "Go away!");
  assert_true(wait_body(f, h, NULL, 1.0));
  const char *tail = h->body + 2049;
  assert_string_equal(tail, "o\na[\"bye\"]\nc[3000,\"Go away!\"]\n");
  assert_int_equal(f->closes, 1);
  assert_int_equal(f->last_code, 3000);
  /* The connection is free for its next request (keep-alive). */
  assert_false(h->c->closing);
  hc_free(h);
}

static void test_response_limit(void **state) {
  fx *f = *state;
  hc *h = request(f, "POST", "/s/0/i/xhr_streaming", NULL);
  assert_true(wait_body(f, h, "o\n", 1.0));
  rt_sockjs_session *s = rt_sockjs_session_find(rt_sockjs_endpoint_find(f->sj, "/s"), "i");
  char m[100];
  memset(m, 'z', sizeof m);
  int frames = 0;
  while (!h->ended && frames < 10) {
    rt_sockjs_session_send(s, m, sizeof m);
    spin_for(f, 0.01);
    frames++;
    decode(h);
    wait_body(f, h, NULL, 0.05);
  }
  /* o (2 bytes) + 106-byte frames: the third crosses 300 and ends the response. */
  assert_true(h->ended);
  assert_int_equal(frames, 3);
  assert_null(s->recv);
  hc_free(h);
}

static void test_session_bound(void **state) {
  fx *f = *state;
  int st;
  fetch(f, "POST", "/s/0/j1/xhr", NULL, &st);
  fetch(f, "POST", "/s/0/j2/xhr", NULL, &st);
  fetch(f, "POST", "/s/0/j3/xhr", NULL, &st);
  assert_int_equal(st, 200);
  fetch(f, "POST", "/s/0/j4/xhr", NULL, &st);
  assert_int_equal(st, 503);
  assert_int_equal(f->opens, 3);
  /* An existing one is still reachable. */
  fetch(f, "POST", "/s/0/j1/xhr_send", "[\"x\"]", &st);
  assert_int_equal(st, 204);
}

static void test_topic_fanout_shares_the_quoted_body(void **state) {
  fx *f = *state;
  rt_sockjs_endpoint *ep = rt_sockjs_endpoint_find(f->sj, "/big");
  hc *a = request(f, "POST", "/big/0/k1/xhr_streaming", NULL);
  hc *b = request(f, "POST", "/big/0/k2/xhr_streaming", NULL);
  assert_true(wait_body(f, a, "o\n", 1.0) && wait_body(f, b, "o\n", 1.0));
  rt_sockjs_session *s1 = rt_sockjs_session_find(ep, "k1"), *s2 = rt_sockjs_session_find(ep, "k2");
  assert_non_null(rt_broker_subscribe(f->t.srv->broker, "news", s1->conn, rt_sockjs_deliver, s1));
  assert_non_null(rt_broker_subscribe(f->t.srv->broker, "news", s2->conn, rt_sockjs_deliver, s2));
  rt_msg m = {.destination = "news"};
  m.body = rt_chunk_copy("héllo \"all\"", 12);
  assert_int_equal(rt_broker_publish(f->t.srv->broker, &m), 2);
  assert_non_null(m.sockjs_quoted);
  assert_int_equal(m.sockjs_quoted->refs, 3);  /* the message and both queues: one copy */
  assert_ptr_equal(s1->q[0], s2->q[0]);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  assert_true(wait_body(f, a, "a[\"héllo \\\"all\\\"\"]\n", 1.0));
  assert_true(wait_body(f, b, "a[\"héllo \\\"all\\\"\"]\n", 1.0));
  /* A closed session leaves the topic with its connection. */
  rt_sockjs_session_close(s1, 3000, "Go away!");
  assert_int_equal(rt_broker_count(f->t.srv->broker, "news"), 1);
  hc_free(a);
  hc_free(b);
}

static void test_slow_receiver(void **state) {
  fx *f = *state;
  hc *h = request(f, "POST", "/big/0/l/xhr_streaming", NULL);
  tsock_small_buffers(h->fd, 4096);
  assert_true(wait_body(f, h, "o\n", 1.0));
  rt_sockjs_session *s = rt_sockjs_session_find(rt_sockjs_endpoint_find(f->sj, "/big"), "l");
  uint64_t cid = h->c->id;
  char m[1000];
  memset(m, 'w', sizeof m);
  /* The client reads nothing: its connection passes the output bound (32 KiB) and is
   * closed with what it had not read; the session closes too (1002), so the loss shows. */
  for (int i = 0; i < 200 && s->recv; i++) {
    rt_sockjs_session_send(s, m, sizeof m);
    tloop_spin(f->t.loop, 1);
  }
  assert_null(s->recv);
  assert_null(rt_conn_find(f->t.srv, cid));  /* closed as a slow consumer */
  assert_true(f->t.srv->metrics.slow_consumers >= 1);
  assert_int_equal(s->state, RT_SOCKJS_S_CLOSED);
  assert_int_equal(f->closes, 1);
  assert_int_equal(f->last_code, 1002);
  hc_free(h);
}

static void test_stop(void **state) {
  fx *f = *state;
  hc *h = request(f, "POST", "/big/0/m/xhr_streaming", NULL);
  assert_true(wait_body(f, h, "o\n", 1.0));
  fetch(f, "POST", "/s/0/n/xhr", NULL, NULL);
  int before = rt_server_connections(f->t.srv);
  assert_true(before >= 3);  /* the stream, and the two sessions' own connections */
  rt_server_stop(f->t.srv);
  assert_int_equal(f->closes, 2);
  assert_int_equal(f->last_code, 1001);
  assert_true(wait_body(f, h, NULL, 1.0));
  assert_non_null(strstr(h->body, "c[1001,\"Server shutting down\"]\n"));
  hc_free(h);
  spin_for(f, 0.1);
  assert_int_equal(rt_server_connections(f->t.srv), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_poll_and_batching, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_to_hooks_and_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_second_receiver, setup, teardown),
      cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disconnect_delay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue_bound_and_closed_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_flushes_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_response_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_topic_fanout_shares_the_quoted_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_receiver, setup_small_out, teardown),
      cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
