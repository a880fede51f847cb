/* Unit tests for the STOMP session and its broker semantics (core/stomp.c,
 * core/stomp_broker.c, core/stomp_tcp.c): a real server on its own loop, connections over
 * socketpair(), the app hooks played by the test instead of Lua. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define TFAIL_IMPLEMENT
#include "net/conn.h"
#include "failalloc.h"
#include "net/server_int.h"
#include "stomp/stomp.h"
#include "stomp/stomp_broker.h"
#include "tnet.h"

typedef struct fix {
  tsrv t;
  rt_stomp_server *ss;
  rt_stomp_session *auth_pending;  /* set by the on_connect hook when it defers */
  int defer_auth;
  int sends, closed;
  char last_path[128];
  int close_on_send;
} fix;

static fix *F;

static void hook_connect(void *ud, rt_stomp_session *s, const rt_stomp_frame *f) {
  fix *x = ud;
  const char *login = rt_stomp_frame_get(f, "login");
  if (login && strcmp(login, "nobody") == 0) {
    rt_stomp_session_refuse(s, "who are you?");
    return;
  }
  if (x->defer_auth) {
    x->auth_pending = s;
    return;
  }
  rt_stomp_session_accept(s, login);
}

static void hook_send(void *ud, rt_stomp_session *s, const rt_stomp_frame *f, const char *path) {
  fix *x = ud;
  x->sends++;
  snprintf(x->last_path, sizeof x->last_path, "%s", path);
  if (x->close_on_send) rt_conn_close(s->conn);
}

static void hook_closed(void *ud, uint64_t id) { ((fix *)ud)->closed++; }

static void start(fix *x, void (*tweak)(rt_stomp_config *)) {
  assert_int_equal(tsrv_start(&x->t, NULL), 0);
  rt_stomp_config cfg;
  rt_stomp_config_init(&cfg);
  cfg.hb_send_ms = cfg.hb_recv_ms = 0;
  if (tweak) tweak(&cfg);
  rt_stomp_hooks hooks = {.on_connect = hook_connect, .on_send = hook_send,
                          .on_closed = hook_closed, .ud = x};
  x->ss = rt_stomp_server_new(x->t.srv, &cfg, &hooks);
  assert_non_null(x->ss);
}

static int setup(void **state) {
  F = calloc(1, sizeof *F);
  start(F, NULL);
  *state = F;
  return 0;
}

static int teardown(void **state) {
  fix *x = *state;
  /* Connections first (as rt_server_free does), then the STOMP server. */
  for (uint32_t i = 0; i < x->t.srv->nslots; i++)
    if (x->t.srv->slots[i]) rt_conn_close(x->t.srv->slots[i]);
  rt_conn_reap(x->t.srv);
  rt_stomp_server_free(x->ss);
  tsrv_stop(&x->t);
  free(x);
  return 0;
}

/* A client: the test's end of a socketpair whose other end is a STOMP TCP connection. */
typedef struct cli {
  int fd;
  rt_conn *c;
  char buf[1 << 17];
  size_t len;
  int eof;
} cli;

static cli *open_cli(fix *x) {
  cli *k = calloc(1, sizeof *k);
  int sfd;
  assert_int_equal(tsock_pair(&sfd, &k->fd), 0);
  k->c = rt_conn_new(x->t.srv, sfd, "unit-peer");
  assert_non_null(k->c);
  assert_non_null(rt_stomp_tcp_attach(x->ss, k->c));
  return k;
}

static void close_cli(cli *k) {
  close(k->fd);
  free(k);
}

static void put(fix *x, cli *k, const char *s, size_t n) {
  assert_int_equal(tclient_write(x->t.loop, k->fd, s, n), 0);
}
#define PUT(x, k, lit) put(x, k, lit, sizeof(lit) - 1)

/* Reads until the next whole frame (heart-beat EOLs skipped) and returns it as a string
 * with its NUL, or NULL on timeout/EOF. The frame stays valid until the next call. */
static char frame_out[1 << 17];
static const char *next_frame(fix *x, cli *k, double timeout) {
  double deadline = ev_time() + timeout;
  for (;;) {
    size_t skip = 0;
    while (skip < k->len && (k->buf[skip] == '\n' || k->buf[skip] == '\r')) skip++;
    char *z = memchr(k->buf + skip, 0, k->len - skip);
    if (z) {
      size_t n = (size_t)(z - k->buf) + 1 - skip;
      memcpy(frame_out, k->buf + skip, n);
      memmove(k->buf, z + 1, k->len - (size_t)(z + 1 - k->buf));
      k->len -= (size_t)(z + 1 - k->buf);
      return frame_out;
    }
    if (k->eof || ev_time() > deadline) return NULL;
    tloop_spin(x->t.loop, 1);
    ssize_t r = read(k->fd, k->buf + k->len, sizeof k->buf - k->len);
    if (r > 0) k->len += (size_t)r;
    else if (r == 0) k->eof = 1;
    else usleep(200);
  }
}

static int closed_by_server(fix *x, cli *k, double timeout) {
  double deadline = ev_time() + timeout;
  while (!k->eof && ev_time() < deadline) {
    tloop_spin(x->t.loop, 1);
    char tmp[4096];
    ssize_t r = read(k->fd, tmp, sizeof tmp);
    if (r == 0) k->eof = 1;
    else if (r < 0) usleep(200);
  }
  return k->eof;
}

static const char *expect(fix *x, cli *k, const char *command) {
  const char *f = next_frame(x, k, 2);
  if (!f) fail_msg("expected %s, got nothing", command);
  size_t n = strlen(command);
  if (strncmp(f, command, n) != 0 || f[n] != '\n') fail_msg("expected %s, got: %s", command, f);
  return f;
}

static void expect_header(const char *f, const char *line) {
  if (!strstr(f, line)) fail_msg("frame lacks '%s':\n%s", line, f);
}

static cli *connected(fix *x) {
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:1.2\nhost:test\n\n");
  put(x, k, "", 1);
  expect(x, k, "CONNECTED");
  return k;
}

static void quiet(fix *x, cli *k) {
  const char *f = next_frame(x, k, 0.05);
  if (f) fail_msg("unexpected frame: %s", f);
}

/* ---- tests --------------------------------------------------------------------------- */

static void tweak_hb(rt_stomp_config *c) {
  c->hb_send_ms = 200;
  c->hb_recv_ms = 300;
}

static void test_connect_negotiates_version_and_heartbeat(void **state) {
  fix *x = *state;
  teardown(state);
  x = F = calloc(1, sizeof *F);
  *state = x;
  start(x, tweak_hb);
  cli *k = open_cli(x);
  PUT(x, k, "STOMP\naccept-version:1.0,1.1\nheart-beat:500,1000\nlogin:ann\n\n\0");
  const char *f = expect(x, k, "CONNECTED");
  expect_header(f, "\nversion:1.1\n");
  /* we send every max(200, 1000), expect every max(300, 500) */
  expect_header(f, "\nheart-beat:1000,500\n");
  expect_header(f, "\nuser-name:ann\n");
  expect_header(f, "\nserver:rtserver/");
  expect_header(f, "\nsession:");
  close_cli(k);
}

static void test_no_common_version(void **state) {
  fix *x = *state;
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:9.9\n\n\0");
  const char *f = expect(x, k, "ERROR");
  expect_header(f, "\nmessage:no common protocol version\n");
  expect_header(f, "\nversion:1.0,1.1,1.2\n");
  assert_true(closed_by_server(x, k, 2));
  close_cli(k);
}

static void test_refused_login(void **state) {
  fix *x = *state;
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:1.2\nlogin:nobody\n\n\0");
  const char *f = expect(x, k, "ERROR");
  expect_header(f, "\nmessage:access refused\n");
  assert_non_null(strstr(f, "who are you?"));
  assert_true(closed_by_server(x, k, 2));
  assert_int_equal(x->closed, 0);  /* never accepted: the app is not told it ended */
  close_cli(k);
}

/* The whole conversation one byte at a time gives the same answers. */
static void test_bytewise_input(void **state) {
  fix *x = *state;
  cli *k = open_cli(x);
  static const char script[] =
      "\n\nCONNECT\r\naccept-version:1.2\r\n\r\n\0"
      "SUBSCRIBE\nid:s\\c1\ndestination:/topic/b\nreceipt:r1\n\n\0\n"
      "SEND\ndestination:/topic/b\ncontent-length:5\nx-h:v\\nw\n\nhe\0lo\0";
  for (size_t i = 0; i < sizeof script - 1; i++) {
    put(x, k, script + i, 1);
    tloop_spin(x->t.loop, 1);
  }
  expect(x, k, "CONNECTED");
  expect_header(expect(x, k, "RECEIPT"), "\nreceipt-id:r1\n");
  const char *f = next_frame(x, k, 2);
  assert_non_null(f);
  expect_header(f, "MESSAGE\nsubscription:s\\c1\nmessage-id:");
  expect_header(f, "\ndestination:/topic/b\n");
  expect_header(f, "\ncontent-type:text/plain;charset=utf-8\n");  /* NUL is UTF-8 too */
  expect_header(f, "\nx-h:v\\nw\n");
  expect_header(f, "\ncontent-length:5\n\nhe");
  close_cli(k);
}

/* One publish to three subscribers: the body and the shared header block are the same
 * chunks in all three write queues; only the small head differs. */
/* ack:auto subscribers with the same subscription id share one whole frame per publish
 * (like raw WebSocket fan-out); a client-ack subscriber gets its own small head (it carries
 * its ack id) in front of the shared header block, body and NUL. */
static void test_fanout_shares_the_body(void **state) {
  fix *x = *state;
  cli *k[4];
  for (int i = 0; i < 4; i++) {
    k[i] = connected(x);
    if (i < 3) PUT(x, k[i], "SUBSCRIBE\nid:f\ndestination:/topic/fan\nreceipt:ok\n\n\0");
    else PUT(x, k[i], "SUBSCRIBE\nid:g\nack:client\ndestination:/topic/fan\nreceipt:ok\n\n\0");
    expect(x, k[i], "RECEIPT");
  }
  rt_chunk *body = rt_chunk_copy("shared body", 11);
  char err[128];
  assert_int_equal(rt_stomp_publish(x->ss, "/topic/fan", body, NULL, NULL, 0, err, sizeof err), 4);
  /* Not flushed yet: inspect the queues. */
  rt_chunk *wire = NULL;
  for (int i = 0; i < 3; i++) {
    rt_outq *q = &k[i]->c->out;
    assert_int_equal(rt_outq_count(q), 1);   /* the whole frame, shared */
    if (!wire) wire = q->v[q->head].chunk;
    assert_ptr_equal(q->v[q->head].chunk, wire);
  }
  rt_outq *q = &k[3]->c->out;
  assert_int_equal(rt_outq_count(q), 4);     /* head, common, body, NUL */
  assert_true(q->v[q->head].chunk->refs == 1);
  assert_ptr_equal(q->v[q->head + 2].chunk, body);
  assert_ptr_equal(q->v[q->head + 3].chunk, x->ss->nul);
  assert_int_equal(wire->refs, 3);           /* the publish's cache let go of it */
  rt_chunk_unref(body);
  for (int i = 0; i < 4; i++) {
    const char *f = expect(x, k[i], "MESSAGE");
    expect_header(f, "\n\nshared body");
    expect_header(f, i < 3 ? "\nsubscription:f\n" : "\nsubscription:g\n");
    close_cli(k[i]);
  }
}

static void test_queue_round_robin_nack_and_close(void **state) {
  fix *x = *state;
  cli *a = connected(x), *b = connected(x);
  PUT(x, a, "SUBSCRIBE\nid:q\ndestination:/queue/w\nack:client-individual\nreceipt:r\n\n\0");
  expect(x, a, "RECEIPT");
  PUT(x, b, "SUBSCRIBE\nid:q\ndestination:/queue/w\nack:client-individual\nreceipt:r\n\n\0");
  expect(x, b, "RECEIPT");
  PUT(x, a, "SEND\ndestination:/queue/w\n\none\0SEND\ndestination:/queue/w\n\ntwo\0");
  const char *f = expect(x, a, "MESSAGE");
  expect_header(f, "\n\none");
  expect_header(f, "\nack:1\n");
  f = expect(x, b, "MESSAGE");
  expect_header(f, "\n\ntwo");
  /* a refuses "one": it goes to the next consumer, b, marked redelivered */
  PUT(x, a, "NACK\nid:1\n\n\0");
  f = expect(x, b, "MESSAGE");
  expect_header(f, "\nredelivered:true\n");
  expect_header(f, "\n\none");
  quiet(x, a);
  /* b goes away holding both unacknowledged: both come back to a */
  rt_conn_close(b->c);
  assert_int_equal(x->closed, 1);
  f = expect(x, a, "MESSAGE");
  expect_header(f, "\n\ntwo");
  f = expect(x, a, "MESSAGE");
  expect_header(f, "\n\none");
  assert_int_equal(rt_stomp_queue_depth(x->ss, "/queue/w"), 0);
  close_cli(a);
  close_cli(b);
}

static void test_auth_later_keeps_pipelined_frames(void **state) {
  fix *x = *state;
  x->defer_auth = 1;
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:1.2\nlogin:ann\n\n\0"
            "SUBSCRIBE\nid:1\ndestination:/topic/p\nreceipt:held\n\n\0");
  quiet(x, k);
  assert_non_null(x->auth_pending);
  assert_int_equal(rt_stomp_session_accept(x->auth_pending, "ann"), 0);
  expect_header(expect(x, k, "CONNECTED"), "\nuser-name:ann\n");
  expect_header(expect(x, k, "RECEIPT"), "\nreceipt-id:held\n");
  close_cli(k);
}

/* The server beats every 20 ms and wants ours every 300 ms, so it gives up after 450 ms of
 * silence: wide enough that a loaded, sanitized run, descheduled for a few hundred ms
 * between two of our beats, is not taken for a dead client; tight enough to keep the
 * test short. */
static void tweak_hb_both_ways(rt_stomp_config *c) {
  c->hb_send_ms = 20;
  c->hb_recv_ms = 300;
}

static void test_heartbeats(void **state) {
  fix *x = *state;
  teardown(state);
  x = F = calloc(1, sizeof *F);
  *state = x;
  start(x, tweak_hb_both_ways);
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:1.2\nheart-beat:300,20\n\n\0");
  expect_header(expect(x, k, "CONNECTED"), "\nheart-beat:20,300\n");
  /* We beat every 25 ms for 1.2 s, well past the 450 ms the server waits: it stays, and
   * beats at us too. */
  size_t beats = 0;
  double last_beat = ev_time(), end = last_beat + 1.2;
  while (ev_time() < end) {
    put(x, k, "\n", 1);
    last_beat = ev_time();
    while (ev_time() < last_beat + 0.025) {
      tloop_spin(x->t.loop, 1);
      char tmp[256];
      ssize_t r = read(k->fd, tmp, sizeof tmp);
      for (ssize_t j = 0; j < r; j++) beats += tmp[j] == '\n';
      if (r == 0) k->eof = 1;
      usleep(500);
    }
    assert_false(k->eof);
  }
  assert_true(beats >= 4);
  /* Then silence: the server gives up after 1.5 x 300 ms, not before. */
  const char *f = next_frame(x, k, 5);
  if (!f) fail_msg("no ERROR within 5 s of silence");
  double silent = ev_time() - last_beat;
  if (strncmp(f, "ERROR\n", 6) != 0) fail_msg("expected ERROR, got: %s", f);
  expect_header(f, "\nmessage:heart-beat timeout\n");
  if (silent < 0.45) fail_msg("gave up after %.0f ms of silence, before 450", silent * 1000);
  assert_true(closed_by_server(x, k, 5));
  close_cli(k);
}

static void test_app_destination_and_close_in_hook(void **state) {
  fix *x = *state;
  cli *k = connected(x);
  PUT(x, k, "SEND\ndestination:/app/orders/7\nreceipt:sent\n\n{}\0");
  expect(x, k, "RECEIPT");
  assert_int_equal(x->sends, 1);
  assert_string_equal(x->last_path, "/orders/7");
  /* The app closes the connection while the session is feeding: the rest of the input
   * is dropped and nothing is used after it is freed (ASan checks). */
  x->close_on_send = 1;
  PUT(x, k, "SEND\ndestination:/app/x\n\n\0SEND\ndestination:/app/y\n\n\0");
  assert_true(closed_by_server(x, k, 2));
  assert_int_equal(x->sends, 2);
  assert_int_equal(x->closed, 1);
  close_cli(k);
}

static void tweak_small(rt_stomp_config *c) {
  c->max_tx_frames = 2;
  c->max_unacked = 2;
  c->limits.max_body = 16;
}

static void restart_small(void **state) {
  teardown(state);
  F = calloc(1, sizeof *F);
  *state = F;
  start(F, tweak_small);
}

static void test_limits(void **state) {
  restart_small(state);
  fix *x = *state;
  cli *k = connected(x);
  PUT(x, k, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/topic/l\ntransaction:t\n\na\0"
            "SEND\ndestination:/topic/l\ntransaction:t\n\nb\0SEND\ndestination:/topic/l\ntransaction:t\n\nc\0");
  expect_header(expect(x, k, "ERROR"), "\nmessage:transaction too large\n");
  close_cli(k);

  k = connected(x);
  PUT(x, k, "SUBSCRIBE\nid:1\ndestination:/topic/u\nack:client\nreceipt:r\n\n\0");
  expect(x, k, "RECEIPT");
  char err[100];
  for (int i = 0; i < 3; i++) {
    rt_chunk *b = rt_chunk_copy("m", 1);
    rt_stomp_publish(x->ss, "/topic/u", b, NULL, NULL, 0, err, sizeof err);
    rt_chunk_unref(b);
  }
  expect(x, k, "MESSAGE");
  expect(x, k, "MESSAGE");
  expect_header(expect(x, k, "ERROR"), "\nmessage:too many unacknowledged messages\n");
  close_cli(k);

  k = connected(x);
  PUT(x, k, "SEND\ndestination:/topic/big\n\n01234567890123456789\0");
  expect_header(expect(x, k, "ERROR"), "\nmessage:frame too large\n");
  assert_true(closed_by_server(x, k, 2));
  close_cli(k);
}

static void test_transaction_commit_and_abort(void **state) {
  fix *x = *state;
  cli *k = connected(x);
  PUT(x, k, "SUBSCRIBE\nid:1\ndestination:/topic/tx\n\n\0BEGIN\ntransaction:t\n\n\0"
            "SEND\ndestination:/topic/tx\ntransaction:t\n\nfirst\0"
            "SEND\ndestination:/topic/tx\ntransaction:t\n\nsecond\0");
  quiet(x, k);
  PUT(x, k, "COMMIT\ntransaction:t\nreceipt:c\n\n\0");
  expect_header(expect(x, k, "MESSAGE"), "\n\nfirst");
  expect_header(expect(x, k, "MESSAGE"), "\n\nsecond");
  expect(x, k, "RECEIPT");
  PUT(x, k, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/topic/tx\ntransaction:t\n\nno\0"
            "ABORT\ntransaction:t\nreceipt:a\n\n\0");
  expect_header(expect(x, k, "RECEIPT"), "\nreceipt-id:a\n");
  close_cli(k);
}

static void test_dest_kinds(void **state) {
  fix *x = *state;
  const rt_stomp_config *c = &x->ss->cfg;
  assert_int_equal(rt_stomp_dest_kind(c, "/app/chat"), RT_STOMP_DEST_APP);
  assert_int_equal(rt_stomp_dest_kind(c, "/topic/a"), RT_STOMP_DEST_TOPIC);
  assert_int_equal(rt_stomp_dest_kind(c, "/queue/a"), RT_STOMP_DEST_QUEUE);
  assert_int_equal(rt_stomp_dest_kind(c, "/user/queue/a"), RT_STOMP_DEST_USER);
  assert_int_equal(rt_stomp_dest_kind(c, "/topicx/a"), RT_STOMP_DEST_NONE);
  assert_int_equal(rt_stomp_dest_kind(c, "/topic"), RT_STOMP_DEST_NONE);
  assert_int_equal(rt_stomp_dest_kind(c, "/topic/"), RT_STOMP_DEST_NONE);
  assert_int_equal(rt_stomp_dest_kind(c, "chat"), RT_STOMP_DEST_NONE);
}

static void test_user_destinations(void **state) {
  fix *x = *state;
  cli *k = open_cli(x);
  PUT(x, k, "CONNECT\naccept-version:1.2\nlogin:a/b\n\n\0");
  expect(x, k, "CONNECTED");
  cli *m = open_cli(x);
  PUT(x, m, "CONNECT\naccept-version:1.2\nlogin:a\n\n\0");
  expect(x, m, "CONNECTED");
  PUT(x, k, "SUBSCRIBE\nid:1\ndestination:/user/queue/x\nreceipt:r\n\n\0");
  expect(x, k, "RECEIPT");
  /* user "a" subscribing to "/user/b/queue/x" must not share a key with "a/b" */
  PUT(x, m, "SUBSCRIBE\nid:1\ndestination:/user/b/queue/x\nreceipt:r\n\n\0");
  expect(x, m, "RECEIPT");
  rt_chunk *b = rt_chunk_copy("hi", 2);
  char err[100];
  assert_int_equal(rt_stomp_publish_user(x->ss, "a/b", "/queue/x", b, NULL, NULL, 0, err, sizeof err), 1);
  rt_chunk_unref(b);
  expect_header(expect(x, k, "MESSAGE"), "\ndestination:/user/queue/x\n");
  quiet(x, m);
  close_cli(k);
  close_cli(m);
}

/* One conversation with allocations failing after budget (-1: none fail). Returns how
 * many were refused. Queues are emptied after, so every round starts alike. */
static long oom_round(fix *x, long budget) {
  static const char script[] =
      "CONNECT\naccept-version:1.2\nlogin:ann\n\n\0"
      "SUBSCRIBE\nid:t\ndestination:/topic/oom\n\n\0"
      "SUBSCRIBE\nid:p\ndestination:/topic/o*\nack:client\n\n\0"
      "SUBSCRIBE\nid:q\ndestination:/queue/oom\nack:client-individual\n\n\0"
      "SEND\ndestination:/topic/oom\nx:y\n\nbody\0"
      "SEND\ndestination:/queue/oom\n\nq\0"
      "ACK\nid:1\n\n\0NACK\nid:2\n\n\0"
      "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/oom\ntransaction:t\n\nq2\0"
      "COMMIT\ntransaction:t\n\n\0SEND\ndestination:/app/x\nreceipt:end\n\n\0";
  cli *k = open_cli(x);
  put(x, k, script, sizeof script - 1);
  if (budget >= 0) tfail_after(budget);
  tloop_spin(x->t.loop, 4);
  long refused = budget >= 0 ? tfail_refused() : 0;
  tfail_off();
  tloop_spin(x->t.loop, 2);
  rt_conn_close(k->c);
  rt_conn_reap(x->t.srv);
  close_cli(k);
  rt_stomp_queues_free(x->ss);
  x->ss->queued_bytes = 0;
  return refused;
}

#if TFAIL_AVAILABLE
/* libev aborts when it cannot allocate: its own bookkeeping stays out of the experiment. */
static void *ev_alloc_unfailing(void *ptr, long size) {
  if (size) return __libc_realloc(ptr, (size_t)size);
  __libc_free(ptr);
  return NULL;
}
#endif

/* Every allocation that a conversation makes fails in turn: the session must end cleanly
 * (an ERROR or a closed connection), never crash, and free all it took. */
static void test_out_of_memory_anywhere(void **state) {
  fix *x = *state;
#if TFAIL_AVAILABLE
  ev_set_allocator(ev_alloc_unfailing);
#else
  skip();
#endif
  oom_round(x, -1);  /* warm-up: buffers that live on (maps, scratch) exist from here */
  long baseline = tfail_live();
  long refused = 1, n;
  for (n = 0; n < 2000 && refused; n++) {
    refused = oom_round(x, n);
    if (n == 0 && !refused) skip();  /* malloc is not ours to fail (valgrind) */
    if (tfail_live() != baseline)
      fail_msg("allocation %ld failing left %ld blocks behind", n, tfail_live() - baseline);
  }
  assert_int_equal(refused, 0);  /* the last round needed no more allocations */
  assert_true(n > 30);           /* ...and every earlier one was cut short somewhere */
  /* and the server still works */
  cli *k = connected(x);
  PUT(x, k, "SUBSCRIBE\nid:1\ndestination:/topic/after\nreceipt:fine\n\n\0");
  expect(x, k, "RECEIPT");
  close_cli(k);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_connect_negotiates_version_and_heartbeat),
      T(test_no_common_version),
      T(test_refused_login),
      T(test_bytewise_input),
      T(test_fanout_shares_the_body),
      T(test_queue_round_robin_nack_and_close),
      T(test_auth_later_keeps_pipelined_frames),
      T(test_heartbeats),
      T(test_app_destination_and_close_in_hook),
      T(test_limits),
      T(test_transaction_commit_and_abort),
      T(test_dest_kinds),
      T(test_user_destinations),
      T(test_out_of_memory_anywhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
