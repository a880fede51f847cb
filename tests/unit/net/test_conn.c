/* Unit tests for core/conn.c over socketpair(): write queue flushing, shared chunks,
 * the slow-consumer bound, closing, handles. A test protocol records the callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/conn.h"
#include "net/server_int.h"
#include "tnet.h"

static struct {
  int reads, drained, overflows, closes;
  rt_buf got;             /* bytes the server side read */
  int overflow_closes;    /* on_overflow closes the conn itself */
} ev;

static void p_read(rt_conn *c) {
  ev.reads++;
  rt_buf_append(&ev.got, rt_buf_start(&c->in), c->in.len);
  rt_buf_consume(&c->in, c->in.len);
}
static void p_drained(rt_conn *c) { ev.drained++; }
static void p_overflow(rt_conn *c) {
  ev.overflows++;
  if (ev.overflow_closes) rt_conn_close(c);
}
static void p_close(rt_conn *c) { ev.closes++; }

static const rt_proto test_proto = {
    .name = "test", .on_read = p_read, .on_drained = p_drained, .on_overflow = p_overflow,
    .on_close = p_close};
static const rt_proto test_proto_no_overflow = {
    .name = "test2", .on_read = p_read, .on_drained = p_drained, .on_close = p_close};

typedef struct fx {
  tsrv t;
  rt_conn *c;
  int cfd;
} fx;

static rt_conn *new_conn(fx *f, const rt_proto *p, int *cfd) {
  int sfd;
  assert_int_equal(tsock_pair(&sfd, cfd), 0);
  rt_conn *c = rt_conn_new(f->t.srv, sfd, "peer");
  assert_non_null(c);
  rt_conn_set_proto(c, p, RT_PROTO_HTTP1, NULL);
  return c;
}

static int setup_cfg(void **state, size_t max_out) {
  fx *f = calloc(1, sizeof *f);
  rt_config cfg;
  tsrv_config(&cfg);
  if (max_out) cfg.max_output_bytes = max_out;
  if (tsrv_start(&f->t, &cfg) < 0) {
    fprintf(stderr, "server: %s\n", f->t.err);
    return -1;
  }
  memset(&ev, 0, sizeof ev);
  f->c = new_conn(f, &test_proto, &f->cfd);
  *state = f;
  return 0;
}
static int setup(void **state) { return setup_cfg(state, 0); }
static int setup_small(void **state) { return setup_cfg(state, 64 * 1024); }

static int teardown(void **state) {
  fx *f = *state;
  tsrv_stop(&f->t);
  close(f->cfd);
  rt_buf_free(&ev.got);
  free(f);
  return 0;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_writes_arrive_in_order(void **state) {
  fx *f = *state;
  assert_int_equal(rt_conn_write(f->c, "one ", 4), 0);
  assert_int_equal(rt_conn_write(f->c, "two ", 4), 0);
  rt_chunk *ch = rt_chunk_copy("three", 5);
  assert_int_equal(rt_conn_write_chunk(f->c, ch), 0);
  assert_int_equal(ch->refs, 2);
  rt_chunk_unref(ch);
  /* Queued, not written yet: the flush happens before the loop blocks. */
  assert_int_equal(f->c->out.bytes, 13);
  uint8_t buf[64];
  assert_true(read(f->cfd, buf, sizeof buf) < 0);
  tloop_spin(f->t.loop, 1);
  assert_int_equal(f->c->out.bytes, 0);
  assert_int_equal(rt_outq_count(&f->c->out), 0);
  int eof;
  size_t n = tclient_read(f->t.loop, f->cfd, buf, 13, 1.0, &eof);
  assert_int_equal(n, 13);
  assert_memory_equal(buf, "one two three", 13);
  assert_true(ev.drained >= 1);
  assert_false(f->c->write_armed);
}

static void test_reads_reach_the_protocol(void **state) {
  fx *f = *state;
  double before = f->c->last_active;
  usleep(2000);
  assert_int_equal(tclient_write(f->t.loop, f->cfd, "hello", 5), 0);
  for (int i = 0; i < 50 && ev.got.len < 5; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  assert_int_equal(ev.got.len, 5);
  assert_memory_equal(rt_buf_start(&ev.got), "hello", 5);
  assert_true(f->c->last_active >= before);
  /* Once everything is consumed the idle connection holds no read buffer. */
  assert_null(f->c->in.data);
}

static void test_large_write_partial_flushes(void **state) {
  fx *f = *state;
  tsock_small_buffers(f->cfd, 4096);
  size_t total = 1 << 20;
  uint8_t *data = malloc(total), *back = malloc(total);
  for (size_t i = 0; i < total; i++) data[i] = (uint8_t)(i * 13 + (i >> 9));
  /* many chunks, more than one writev can carry (64 iovecs) */
  for (size_t off = 0; off < total; off += 4000)
    assert_int_equal(rt_conn_write(f->c, data + off, total - off < 4000 ? total - off : 4000), 0);
  int eof;
  size_t got = tclient_read(f->t.loop, f->cfd, back, total, 10.0, &eof);
  assert_int_equal(got, total);
  assert_memory_equal(back, data, total);
  tloop_spin(f->t.loop, 2);
  assert_int_equal(f->c->out.bytes, 0);
  assert_false(f->c->write_armed);  /* the write watcher is off again */
  free(data);
  free(back);
}

static void test_shared_chunk_to_two_conns(void **state) {
  fx *f = *state;
  int cfd2;
  rt_conn *c2 = new_conn(f, &test_proto, &cfd2);
  rt_chunk *ch = rt_chunk_copy("shared frame", 12);
  assert_int_equal(rt_conn_write_chunk(f->c, ch), 0);
  assert_int_equal(rt_conn_write_chunk(c2, ch), 0);
  assert_int_equal(ch->refs, 3);
  tloop_spin(f->t.loop, 1);
  /* Both wrote it and let go; only the test's own reference is left. */
  assert_int_equal(ch->refs, 1);
  uint8_t a[16], b[16];
  int eof;
  assert_int_equal(tclient_read(f->t.loop, f->cfd, a, 12, 1.0, &eof), 12);
  assert_int_equal(tclient_read(f->t.loop, cfd2, b, 12, 1.0, &eof), 12);
  assert_memory_equal(a, "shared frame", 12);
  assert_memory_equal(b, "shared frame", 12);
  rt_chunk_unref(ch);

  /* Queued to two, one closes before writing: its reference goes at reap time. */
  ch = rt_chunk_copy("x", 1);
  rt_conn_write_chunk(f->c, ch);
  rt_conn_write_chunk(c2, ch);
  assert_int_equal(ch->refs, 3);
  rt_conn_close(c2);
  tloop_spin(f->t.loop, 1);
  assert_int_equal(ch->refs, 1);
  rt_chunk_unref(ch);
  close(cfd2);
}

/* A peer that never reads: output piles up past cfg.max_output_bytes -> on_overflow. */
static void test_slow_consumer_overflow(void **state) {
  fx *f = *state;
  tsock_small_buffers(f->cfd, 4096);
  uint8_t block[8192];
  memset(block, 'z', sizeof block);
  size_t written = 0;
  int rc = 0;
  while (!ev.overflows && written < (4u << 20)) {
    rc = rt_conn_write(f->c, block, sizeof block);
    written += sizeof block;
    tloop_spin(f->t.loop, 1);
  }
  assert_int_equal(ev.overflows, 1);
  assert_int_equal(rc, -1);  /* the write that passed the bound reports it */
  assert_true(written > 64 * 1024);
  assert_true(written < 1024 * 1024);  /* caught near the bound, not much later */
  assert_int_equal(f->t.srv->metrics.slow_consumers, 1);
  assert_true(f->c->overflowed);
  /* It is reported once, not on every later write. */
  rt_conn_write(f->c, block, sizeof block);
  assert_int_equal(ev.overflows, 1);
}

/* The same volume to a peer that reads is not a slow consumer. */
static void test_reading_peer_is_not_slow(void **state) {
  fx *f = *state;
  tsock_small_buffers(f->cfd, 4096);
  uint8_t block[8192], sink[65536];
  memset(block, 'z', sizeof block);
  for (int i = 0; i < 128; i++) {  /* 1 MB, 16x the bound */
    assert_int_equal(rt_conn_write(f->c, block, sizeof block), 0);
    tloop_spin(f->t.loop, 1);
    while (read(f->cfd, sink, sizeof sink) > 0) tloop_spin(f->t.loop, 1);
  }
  assert_int_equal(ev.overflows, 0);
  assert_int_equal(f->t.srv->metrics.slow_consumers, 0);
}

/* Without an on_overflow callback the connection is simply closed. */
static void test_slow_consumer_without_handler_closes(void **state) {
  fx *f = *state;
  int cfd2;
  rt_conn *c2 = new_conn(f, &test_proto_no_overflow, &cfd2);
  tsock_small_buffers(cfd2, 4096);
  uint64_t id = c2->id;
  uint8_t block[8192];
  memset(block, 'q', sizeof block);
  int closed = 0;
  for (int i = 0; i < 512 && !closed; i++) {
    if (rt_conn_write(c2, block, sizeof block) < 0) closed = 1;
    else tloop_spin(f->t.loop, 1);
  }
  assert_true(closed);
  assert_int_equal(ev.closes, 1);
  assert_null(rt_conn_find(f->t.srv, id));
  tloop_spin(f->t.loop, 1);
  close(cfd2);
}

static void test_close_after_write(void **state) {
  fx *f = *state;
  tsock_small_buffers(f->cfd, 4096);
  size_t total = 200000;
  uint8_t *data = malloc(total), *back = malloc(total + 16);
  for (size_t i = 0; i < total; i++) data[i] = (uint8_t)(i * 7);
  rt_conn_write(f->c, data, total);
  rt_conn_close_after_write(f->c);
  assert_int_equal(ev.closes, 0);  /* not yet: bytes are pending */
  int eof = 0;
  size_t got = tclient_read(f->t.loop, f->cfd, back, total + 16, 10.0, &eof);
  assert_int_equal(got, total);
  assert_true(eof);
  assert_memory_equal(back, data, total);
  assert_int_equal(ev.closes, 1);
  free(data);
  free(back);
}

static void test_close_after_write_with_nothing_queued(void **state) {
  fx *f = *state;
  rt_conn_close_after_write(f->c);
  assert_int_equal(ev.closes, 1);
  assert_true(f->c->closing);
  uint8_t b[4];
  int eof;
  assert_int_equal(tclient_read(f->t.loop, f->cfd, b, 4, 1.0, &eof), 0);
  assert_true(eof);
}

static void test_close_drops_queued_output(void **state) {
  fx *f = *state;
  rt_chunk *ch = rt_chunk_copy("never sent", 10);
  rt_conn_write_chunk(f->c, ch);
  rt_conn_close(f->c);
  assert_int_equal(ev.closes, 1);
  rt_conn_close(f->c);  /* twice is harmless */
  assert_int_equal(ev.closes, 1);
  assert_int_equal(rt_conn_write(f->c, "late", 4), -1);
  tloop_spin(f->t.loop, 1);  /* reaps it */
  assert_int_equal(ch->refs, 1);
  rt_chunk_unref(ch);
  uint8_t b[16];
  int eof;
  assert_int_equal(tclient_read(f->t.loop, f->cfd, b, sizeof b, 1.0, &eof), 0);
  assert_true(eof);
}

static void test_peer_close_closes_conn(void **state) {
  fx *f = *state;
  uint64_t id = f->c->id;
  assert_ptr_equal(rt_conn_find(f->t.srv, id), f->c);
  close(f->cfd);
  f->cfd = -1;
  for (int i = 0; i < 50 && !ev.closes; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  assert_int_equal(ev.closes, 1);
  assert_null(rt_conn_find(f->t.srv, id));
}

static void test_handles_are_generational(void **state) {
  fx *f = *state;
  uint64_t id = f->c->id;
  uint32_t slot = f->c->slot;
  assert_ptr_equal(rt_conn_find(f->t.srv, id), f->c);
  assert_null(rt_conn_find(f->t.srv, id + (1u << 24)));  /* same slot, other generation */
  assert_null(rt_conn_find(f->t.srv, 0xffffff));         /* a slot never used */
  rt_conn_close(f->c);
  tloop_spin(f->t.loop, 1);
  int cfd2;
  rt_conn *c2 = new_conn(f, &test_proto, &cfd2);
  assert_int_equal(c2->slot, slot);  /* the slot is reused... */
  assert_int_not_equal(c2->id, id);  /* ...under a new generation */
  assert_null(rt_conn_find(f->t.srv, id));
  assert_ptr_equal(rt_conn_find(f->t.srv, c2->id), c2);
  /* ids stay exact as Lua numbers */
  assert_true(c2->id < (1ull << 53));
  close(cfd2);
}

static void test_pause_read(void **state) {
  fx *f = *state;
  rt_conn_pause_read(f->c, 1);
  tclient_write(f->t.loop, f->cfd, "abc", 3);
  tloop_spin(f->t.loop, 5);
  assert_int_equal(ev.reads, 0);
  rt_conn_pause_read(f->c, 0);
  for (int i = 0; i < 50 && ev.got.len < 3; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  assert_int_equal(ev.got.len, 3);
  assert_memory_equal(rt_buf_start(&ev.got), "abc", 3);
}

/* Bytes waiting in the socket are seen without reading them (a paused reader leaves them). */
static void test_input_waiting(void **state) {
  fx *f = *state;
  rt_conn_pause_read(f->c, 1);
  assert_false(rt_conn_input_waiting(f->c));
  tclient_write(f->t.loop, f->cfd, "x", 1);
  for (int i = 0; i < 50 && !rt_conn_input_waiting(f->c); i++) usleep(1000);
  assert_true(rt_conn_input_waiting(f->c));
  assert_true(rt_conn_input_waiting(f->c));  /* peeked, not taken */
  rt_conn_pause_read(f->c, 0);
  for (int i = 0; i < 50 && ev.got.len < 1; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  assert_int_equal(ev.got.len, 1);
  assert_false(rt_conn_input_waiting(f->c));
}

static void test_metrics_count_open_conns(void **state) {
  fx *f = *state;
  rt_metrics *m = &f->t.srv->metrics;
  assert_int_equal(m->conns_open[RT_PROTO_HTTP1], 1);
  assert_int_equal(f->t.srv->nconns, 1);
  int cfd2;
  rt_conn *c2 = new_conn(f, &test_proto, &cfd2);
  assert_int_equal(m->conns_open[RT_PROTO_HTTP1], 2);
  rt_conn_set_proto(c2, &test_proto, RT_PROTO_WS, NULL);
  assert_int_equal(m->conns_open[RT_PROTO_HTTP1], 1);
  assert_int_equal(m->conns_open[RT_PROTO_WS], 1);
  rt_conn_close(c2);
  assert_int_equal(m->conns_open[RT_PROTO_WS], 0);
  assert_int_equal(f->t.srv->nconns, 1);
  close(cfd2);
}

/* A library server writing to a peer that went away must get EPIPE, not SIGPIPE: an
 * embedding host (rtserver.h) has no reason to know it must ignore SIGPIPE. Run in a
 * child with the default disposition so a kill shows up as a failure, not a dead test. */
static void test_write_to_vanished_peer_does_not_kill(void **state) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    tsrv t;
    rt_config cfg;
    tsrv_config(&cfg);
    if (tsrv_start(&t, &cfg) < 0) _exit(3);
    int sfd, cfd;
    if (tsock_pair(&sfd, &cfd) < 0) _exit(3);
    rt_conn *c = rt_conn_new(t.srv, sfd, "peer");
    rt_conn_set_proto(c, &test_proto, RT_PROTO_HTTP1, NULL);
    close(cfd);
    rt_conn_write(c, "into the void", 13);
    tloop_spin(t.loop, 3);
    tsrv_stop(&t);
    _exit(0);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st))
    fail_msg("writing to a closed peer killed the process with signal %d (%s)", WTERMSIG(st),
             strsignal(WTERMSIG(st)));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- ticks: one server timer for every connection ------------------------------------ */

static void p_tick(rt_conn *c, double idle) { (*(int *)c->pstate)++; }
static const rt_proto tick_proto = {.name = "tick", .on_read = p_read, .on_tick = p_tick};

/* At least one turn, and one once the time is up (see test_sockjs_session.c's). */
static void spin_for(struct ev_loop *loop, double seconds) {
  double end = ev_time() + seconds;
  do {
    tloop_spin(loop, 1);
    usleep(1000);
  } while (ev_time() < end);
  tloop_spin(loop, 1);
}

/* When each tick came, by the loop's clock. */
typedef struct tick_log {
  int n;
  double at[64];
} tick_log;

static void p_tick_logged(rt_conn *c, double idle) {
  tick_log *l = c->pstate;
  if (l->n < 64) l->at[l->n++] = ev_now(c->srv->loop);
}
static const rt_proto logged_tick_proto = {.name = "tick", .on_read = p_read,
                                           .on_tick = p_tick_logged};

/* Every open connection gets its on_tick at the interval (here 0.1 s: half the idle
 * timeout); the one timer stops with the last connection, so a loop can end. Timed by
 * the gaps between ticks, not by a count in a window: a loaded run that stalls the loop
 * loses ticks (libev does not catch up) and stretches gaps, but it never shortens one,
 * and among a few gaps one is on time. */
static void test_one_timer_ticks_every_conn(void **state) {
  tsrv t;
  rt_config cfg;
  tsrv_config(&cfg);
  cfg.idle_timeout = 0.2;
  assert_int_equal(tsrv_start(&t, &cfg), 0);
  int cfd[3], sfd;
  tick_log log[3] = {0};
  rt_conn *c[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(tsock_pair(&sfd, &cfd[i]), 0);
    c[i] = rt_conn_new(t.srv, sfd, "peer");
    assert_non_null(c[i]);
    rt_conn_set_proto(c[i], &logged_tick_proto, RT_PROTO_HTTP1, &log[i]);
    spin_for(t.loop, 0.02);
  }
  assert_true(ev_is_active(&t.srv->conn_tick));
  double until = ev_time() + 5;
  while ((log[0].n < 5 || log[1].n < 5 || log[2].n < 5) && ev_time() < until)
    spin_for(t.loop, 0.01);
  for (int i = 0; i < 3; i++) {
    assert_true(log[i].n >= 5);
    double shortest = 1e9;
    for (int k = 1; k < log[i].n; k++) {
      double gap = log[i].at[k] - log[i].at[k - 1];
      if (gap < 0.099) fail_msg("conn %d: ticks %.3f s apart, the interval is 0.1", i, gap);
      if (gap < shortest) shortest = gap;
    }
    if (shortest > 0.15) fail_msg("conn %d: no two ticks closer than %.3f s", i, shortest);
    rt_conn_close(c[i]);
    close(cfd[i]);
  }
  assert_false(ev_is_active(&t.srv->conn_tick));
  tsrv_stop(&t);
}

/* A connection that closes after its last write gives a peer that never reads 5 s of
 * grace, even when the tick interval is far longer (15 s here): the timer ticks faster
 * while one is in its grace, then goes back to the interval. */
static void test_close_grace_with_a_long_tick(void **state) {
  fx *f = *state;
  int ticks = 0;
  rt_conn_set_proto(f->c, &tick_proto, RT_PROTO_HTTP1, &ticks);
  tsock_small_buffers(f->cfd, 4096);
  size_t total = 4 << 20;
  uint8_t *data = calloc(1, total);
  rt_conn_write(f->c, data, total);
  free(data);
  /* The grace starts at the loop's cached time, which a slow (sanitized) 4 MiB write
   * above leaves behind the wall clock: measure from the same clock. */
  double start = ev_now(f->t.loop);
  rt_conn_close_after_write(f->c);
  assert_false(f->c->closing);
  assert_true(f->t.srv->conn_tick.repeat <= 0.5);
  while (!f->c->closing && ev_time() - start < 10) {
    tloop_spin(f->t.loop, 1);
    usleep(5000);
  }
  double took = ev_time() - start;
  assert_true(f->c->closing);
  /* At least the grace; well short of the 15 s tick (a busy or sanitized build runs late,
   * so the bound is loose: without the faster tick the loop above gives up at 10 s). */
  assert_true(took >= 5.0 && took < 9.0);
  assert_int_equal(ticks, 0);  /* a closing connection is not the protocol's any more */
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TS(fn) cmocka_unit_test_setup_teardown(fn, setup_small, teardown)
  const struct CMUnitTest tests[] = {
      T(test_writes_arrive_in_order),
      T(test_reads_reach_the_protocol),
      T(test_large_write_partial_flushes),
      T(test_shared_chunk_to_two_conns),
      TS(test_slow_consumer_overflow),
      TS(test_reading_peer_is_not_slow),
      TS(test_slow_consumer_without_handler_closes),
      T(test_close_after_write),
      T(test_close_after_write_with_nothing_queued),
      T(test_close_drops_queued_output),
      T(test_peer_close_closes_conn),
      T(test_handles_are_generational),
      T(test_pause_read),
      T(test_input_waiting),
      T(test_metrics_count_open_conns),
      cmocka_unit_test(test_write_to_vanished_peer_does_not_kill),
      cmocka_unit_test(test_one_timer_ticks_every_conn),
      T(test_close_grace_with_a_long_tick),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
