/* Unit tests for the gRPC client (core/grpc_client.c, core/h2_client.c) against a scripted
 * HTTP/2 peer: an nghttp2 server session in this process, on a real loopback socket, that
 * answers each request the way the test's plan says. It produces what a well-behaved
 * grpcio server never does (no trailers, wrong content-type, HTTP 503, truncated or
 * oversized messages, RST_STREAM, GOAWAY, a dropped connection, too much metadata), so
 * every failure path of the client is checked for a clear status. Also: target parsing,
 * metadata checks, gzip responses, the status mappings. */
#include <arpa/inet.h>
#include <ev.h>
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc/grpc_client.h"
#include "net/server_int.h"
#include "tnet.h"

/* ---- the scripted peer ---------------------------------------------------------------------*/

typedef struct plan {
  const char *status;       /* :status; NULL with rst/goaway/close */
  const char *ctype;        /* content-type; NULL = application/grpc */
  const char *encoding;     /* grpc-encoding or NULL */
  int trailers_only;        /* grpc-status in the response HEADERS, END_STREAM */
  const uint8_t *body;      /* DATA bytes, framed already */
  size_t body_len;
  const char *grpc_status;  /* in trailers; NULL = no trailers (END_STREAM on DATA) */
  const char *grpc_message;
  int extra_md;             /* this many extra trailer entries */
  uint32_t rst;             /* RST_STREAM with this code instead of answering */
  int goaway;               /* GOAWAY(last_stream_id 0) instead of answering */
  int close;                /* drop the TCP connection instead of answering */
} plan;

typedef struct peer {
  struct ev_loop *loop;
  int lfd, fd;
  ev_io lio, io;
  nghttp2_session *ses;
  const plan *p;
  int accepted;             /* connections accepted so far */
  int requests;
  size_t body_off;
  char md_names[300][16];
} peer;

static void peer_drop(peer *pr) {
  if (pr->fd < 0) return;
  ev_io_stop(pr->loop, &pr->io);
  close(pr->fd);
  pr->fd = -1;
  nghttp2_session_del(pr->ses);
  pr->ses = NULL;
}

static void peer_flush(peer *pr) {
  for (;;) {
    const uint8_t *d;
    ssize_t n = nghttp2_session_mem_send(pr->ses, &d);
    if (n <= 0) break;
    size_t off = 0;
    while (off < (size_t)n) {
      ssize_t w = write(pr->fd, d + off, (size_t)n - off);
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;  /* small test data */
      if (w < 0) return;
      off += (size_t)w;
    }
  }
}

#define PNV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

static void submit_trailers(peer *pr, int32_t sid) {
  nghttp2_nv nva[320];
  size_t n = 0;
  nva[n++] = (nghttp2_nv)PNV("grpc-status", pr->p->grpc_status);
  if (pr->p->grpc_message) nva[n++] = (nghttp2_nv)PNV("grpc-message", pr->p->grpc_message);
  for (int i = 0; i < pr->p->extra_md && n < 320; i++) {
    snprintf(pr->md_names[i], sizeof pr->md_names[i], "x-md-%d", i);
    nva[n++] = (nghttp2_nv)PNV(pr->md_names[i], "v");
  }
  nghttp2_submit_trailer(pr->ses, sid, nva, n);
}

static ssize_t peer_read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *ud) {
  peer *pr = ud;
  size_t left = pr->p->body_len - pr->body_off, n = left < len ? left : len;
  memcpy(buf, pr->p->body + pr->body_off, n);
  pr->body_off += n;
  if (pr->body_off == pr->p->body_len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (pr->p->grpc_status) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      submit_trailers(pr, sid);
    }
  }
  return (ssize_t)n;
}

static void peer_answer(peer *pr, int32_t sid) {
  const plan *p = pr->p;
  pr->requests++;
  if (p->close) {
    peer_drop(pr);
    return;
  }
  if (p->rst) {
    nghttp2_submit_rst_stream(pr->ses, NGHTTP2_FLAG_NONE, sid, p->rst);
    return;
  }
  if (p->goaway) {
    nghttp2_submit_goaway(pr->ses, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    return;
  }
  if (!p->status) return;  /* a silent peer: the request is never answered */
  nghttp2_nv nva[8];
  size_t n = 0;
  nva[n++] = (nghttp2_nv)PNV(":status", p->status);
  nva[n++] = (nghttp2_nv)PNV("content-type", p->ctype ? p->ctype : "application/grpc");
  if (p->encoding) nva[n++] = (nghttp2_nv)PNV("grpc-encoding", p->encoding);
  if (p->trailers_only) {
    if (p->grpc_status) nva[n++] = (nghttp2_nv)PNV("grpc-status", p->grpc_status);
    if (p->grpc_message) nva[n++] = (nghttp2_nv)PNV("grpc-message", p->grpc_message);
    nghttp2_submit_response(pr->ses, sid, nva, n, NULL);
    return;
  }
  pr->body_off = 0;
  nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = peer_read_body};
  nghttp2_submit_response(pr->ses, sid, nva, n, &prd);
}

static int peer_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  /* Answer once the request is complete (the client half-closed). */
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    peer_answer(ud, f->hd.stream_id);
  return 0;
}

static void peer_on_read(struct ev_loop *loop, ev_io *w, int revents) {
  peer *pr = w->data;
  uint8_t buf[16384];
  ssize_t n = read(pr->fd, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    peer_drop(pr);
    return;
  }
  if (nghttp2_session_mem_recv(pr->ses, buf, (size_t)n) < 0) {
    peer_drop(pr);
    return;
  }
  if (pr->ses) peer_flush(pr);
}

static void peer_on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  peer *pr = w->data;
  int fd = accept4(pr->lfd, NULL, NULL, SOCK_NONBLOCK);
  if (fd < 0) return;
  peer_drop(pr);  /* one connection at a time is all these tests need */
  pr->fd = fd;
  pr->accepted++;
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, peer_on_frame);
  nghttp2_session_server_new(&pr->ses, cbs, pr);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(pr->ses, NGHTTP2_FLAG_NONE, NULL, 0);
  peer_flush(pr);
  ev_io_init(&pr->io, peer_on_read, fd, EV_READ);
  pr->io.data = pr;
  ev_io_start(loop, &pr->io);
}

static int peer_listen(peer *pr, struct ev_loop *loop) {
  memset(pr, 0, sizeof *pr);
  pr->loop = loop;
  pr->fd = -1;
  pr->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(pr->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(pr->lfd, 8) < 0) return -1;
  getsockname(pr->lfd, (struct sockaddr *)&a, &al);
  ev_io_init(&pr->lio, peer_on_accept, pr->lfd, EV_READ);
  pr->lio.data = pr;
  ev_io_start(loop, &pr->lio);
  return ntohs(a.sin_port);
}

static void peer_close(peer *pr) {
  peer_drop(pr);
  ev_io_stop(pr->loop, &pr->lio);
  close(pr->lfd);
}

/* ---- fixture -------------------------------------------------------------------------------*/

typedef struct fx {
  tsrv t;
  peer pr;
  rt_grpc_client *cli;
  rt_grpc_channel *ch;
  int notified;
  int status;
  char message[512];
  int msgs;
  uint8_t first[256];
  size_t first_len;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (tsrv_start(&f->t, NULL) < 0) {
    fprintf(stderr, "server: %s\n", f->t.err);
    return -1;
  }
  int port = peer_listen(&f->pr, f->t.loop);
  if (port < 0) return -1;
  f->cli = rt_grpc_client_new(f->t.srv);
  char target[64], err[128];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  f->ch = rt_grpc_client_channel(f->cli, target, err, sizeof err);
  if (!f->ch) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  rt_grpc_client_free(f->cli);
  peer_close(&f->pr);
  tsrv_stop(&f->t);
  free(f);
  return 0;
}

static void on_event(rt_grpc_call *c, void *ud) { ((fx *)ud)->notified++; }

/* Makes one call with request "abc" under plan p and runs the loop until it ends. */
static void run_call(fx *f, const plan *p, size_t max_recv) {
  f->pr.p = p;
  char err[256];
  rt_grpc_call_opts o = {.path = "/t.S/M", .timeout = 5, .max_recv_msg = max_recv};
  rt_grpc_call *c = rt_grpc_call_start(f->ch, &o, err, sizeof err);
  assert_non_null(c);
  rt_grpc_call_set_notify(c, on_event, f);
  uint8_t buf[RT_GRPC_PREFIX_LEN + 3] = {0, 0, 0, 0, 0, 'a', 'b', 'c'};
  assert_int_equal(rt_grpc_call_send(c, buf, 3, err, sizeof err), 0);
  rt_grpc_call_close_send(c);
  ev_tstamp end = ev_time() + 5;
  while (!rt_grpc_call_done(c) && ev_time() < end) ev_run(f->t.loop, EVRUN_ONCE);
  assert_true(rt_grpc_call_done(c));
  const char *m;
  f->status = rt_grpc_call_status(c, &m);
  snprintf(f->message, sizeof f->message, "%s", m);
  f->msgs = 0;
  const uint8_t *d;
  size_t len;
  while (rt_grpc_call_peek(c, &d, &len)) {
    if (f->msgs++ == 0) {
      f->first_len = len < sizeof f->first ? len : sizeof f->first;
      memcpy(f->first, d, f->first_len);
    }
    rt_grpc_call_pop(c);
  }
  rt_grpc_call_release(c);
  tloop_spin(f->t.loop, 5);
}

static const uint8_t MSG_HI[] = {0, 0, 0, 0, 2, 'h', 'i'};

/* ---- tests ---------------------------------------------------------------------------------*/

static void test_ok_with_trailers(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_OK);
  assert_int_equal(f->msgs, 1);
  assert_memory_equal(f->first, "hi", 2);
  assert_true(f->notified > 0);
}

static void test_status_and_message(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .trailers_only = 1, .grpc_status = "5",
            .grpc_message = "no %E2%9C%93 here"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_NOT_FOUND);
  assert_string_equal(f->message, "no \xe2\x9c\x93 here");
}

static void test_no_trailers(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_INTERNAL);
  assert_non_null(strstr(f->message, "without trailers"));
}

static void test_http_503(void **state) {
  fx *f = *state;
  plan p = {.status = "503", .ctype = "text/plain", .trailers_only = 1};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(f->message, "503"));
}

static void test_http_404_with_body(void **state) {
  fx *f = *state;
  plan p = {.status = "404", .ctype = "text/html", .body = (const uint8_t *)"<html>", .body_len = 6};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNIMPLEMENTED);
}

static void test_wrong_content_type(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .ctype = "text/html", .body = MSG_HI, .body_len = sizeof MSG_HI,
            .grpc_status = "0"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNKNOWN);
  assert_non_null(strstr(f->message, "content-type"));
}

static void test_truncated_message(void **state) {
  fx *f = *state;
  static const uint8_t cut[] = {0, 0, 0, 0, 10, 'a', 'b', 'c'};
  plan p = {.status = "200", .body = cut, .body_len = sizeof cut, .grpc_status = "0"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_INTERNAL);
  assert_non_null(strstr(f->message, "inside a message"));
}

static void test_message_over_limit(void **state) {
  fx *f = *state;
  static uint8_t big[5 + 2000];
  memset(big, 'x', sizeof big);
  rt_grpc_frame_prefix(big, 0, 2000);
  plan p = {.status = "200", .body = big, .body_len = sizeof big, .grpc_status = "0"};
  run_call(f, &p, 1000);
  assert_int_equal(f->status, RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(f->msgs, 0);
}

static void test_gzip_response(void **state) {
  fx *f = *state;
  uint8_t plain[200], out[400];
  memset(plain, 'z', sizeof plain);
  size_t olen;
  char err[128];
  assert_int_equal(rt_grpc_frame_encode_msg(RT_GRPC_ENC_GZIP, -1, plain, sizeof plain, out,
                                            sizeof out, &olen, NULL, err, sizeof err), 0);
  assert_int_equal(out[0], 1);  /* it did compress */
  plan p = {.status = "200", .encoding = "gzip", .body = out, .body_len = olen, .grpc_status = "0"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_OK);
  assert_int_equal(f->msgs, 1);
  assert_int_equal(f->first_len, sizeof plain);
  assert_memory_equal(f->first, plain, sizeof plain);
}

static void test_unknown_encoding(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .encoding = "snappy", .body = MSG_HI, .body_len = sizeof MSG_HI,
            .grpc_status = "0"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_INTERNAL);
  assert_non_null(strstr(f->message, "snappy"));
}

static void test_bad_grpc_status(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .trailers_only = 1, .grpc_status = "abc"};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNKNOWN);
}

static void test_rst_stream(void **state) {
  fx *f = *state;
  plan p = {.rst = NGHTTP2_REFUSED_STREAM};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNAVAILABLE);
  plan q = {.rst = NGHTTP2_CANCEL};
  run_call(f, &q, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_CANCELLED);
  plan r = {.rst = NGHTTP2_ENHANCE_YOUR_CALM};
  run_call(f, &r, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(f->pr.accepted, 1);  /* a stream error keeps the connection */
}

static void test_too_much_metadata(void **state) {
  fx *f = *state;
  plan p = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0",
            .extra_md = 300};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_RESOURCE_EXHAUSTED);
  /* the connection survives it */
  plan ok = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0"};
  run_call(f, &ok, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_OK);
  assert_int_equal(f->pr.accepted, 1);
}

static void test_goaway_then_new_connection(void **state) {
  fx *f = *state;
  plan p = {.goaway = 1};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNAVAILABLE);
  plan ok = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0"};
  run_call(f, &ok, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_OK);
  assert_int_equal(f->pr.accepted, 2);
  rt_grpc_client_stats st;
  rt_grpc_channel_stats(f->ch, &st);
  assert_int_equal(st.connects, 2);
}

static void test_connection_dropped(void **state) {
  fx *f = *state;
  plan p = {.close = 1};
  run_call(f, &p, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(f->message, "closed"));
  plan ok = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0"};
  run_call(f, &ok, 0);
  assert_int_equal(f->status, RT_GRPC_STATUS_OK);
}

static void test_reuse_one_connection(void **state) {
  fx *f = *state;
  plan ok = {.status = "200", .body = MSG_HI, .body_len = sizeof MSG_HI, .grpc_status = "0"};
  for (int i = 0; i < 20; i++) {
    run_call(f, &ok, 0);
    assert_int_equal(f->status, RT_GRPC_STATUS_OK);
  }
  assert_int_equal(f->pr.accepted, 1);
  assert_int_equal(f->pr.requests, 20);
}

static void test_deadline_on_silent_peer(void **state) {
  fx *f = *state;
  /* The peer never answers: the deadline ends the call, and the stream is reset. */
  plan silent = {.status = NULL};
  f->pr.p = &silent;
  char err[128];
  rt_grpc_call_opts o = {.path = "/t.S/M", .timeout = 0.1};
  rt_grpc_call *c = rt_grpc_call_start(f->ch, &o, err, sizeof err);
  assert_non_null(c);
  ev_tstamp t0 = ev_time();
  while (!rt_grpc_call_done(c) && ev_time() < t0 + 3) ev_run(f->t.loop, EVRUN_ONCE);
  assert_int_equal(rt_grpc_call_status(c, NULL), RT_GRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(ev_time() - t0 < 1.0);
  rt_grpc_call_release(c);
}

static void test_refused(void **state) {
  fx *f = *state;
  ev_io_stop(f->t.loop, &f->pr.lio);
  close(f->pr.lfd);  /* nothing listens on the port any more */
  f->pr.lfd = -1;
  char err[128];
  rt_grpc_call_opts o = {.path = "/t.S/M"};
  rt_grpc_call *c = rt_grpc_call_start(f->ch, &o, err, sizeof err);
  assert_non_null(c);
  assert_false(rt_grpc_call_done(c));  /* failures come from the loop, never at once */
  ev_tstamp t0 = ev_time();
  while (!rt_grpc_call_done(c) && ev_time() < t0 + 3) ev_run(f->t.loop, EVRUN_ONCE);
  const char *m;
  assert_int_equal(rt_grpc_call_status(c, &m), RT_GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(m, "Connection refused"));
  rt_grpc_call_release(c);
  rt_grpc_client_stats st;
  rt_grpc_channel_stats(f->ch, &st);
  assert_int_equal(st.connect_fails, 1);
}

static void test_release_unfinished_call(void **state) {
  fx *f = *state;
  plan silent = {.status = NULL};
  f->pr.p = &silent;
  char err[128];
  rt_grpc_call_opts o = {.path = "/t.S/M"};
  rt_grpc_call *c = rt_grpc_call_start(f->ch, &o, err, sizeof err);
  rt_grpc_call_set_notify(c, on_event, f);
  tloop_spin(f->t.loop, 20);
  rt_grpc_call_release(c);  /* cancels; nothing may call back into it */
  tloop_spin(f->t.loop, 20);
}

/* ---- no peer needed ------------------------------------------------------------------------*/

static void test_targets(void **state) {
  fx *f = *state;
  char err[160];
  const char *good[] = {"127.0.0.1:1", "localhost:50051", "[::1]:9090", "http://h:80", "h:80/"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    assert_non_null(rt_grpc_client_channel(f->cli, good[i], err, sizeof err));
  const char *bad[] = {"", "host", ":80", "host:", "host:0", "host:65536", "host:8x",
                       "::1:80", "[::1]80", "[]:80", "host:80:90"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    assert_null(rt_grpc_client_channel(f->cli, bad[i], err, sizeof err));
    assert_non_null(strstr(err, "bad gRPC target"));
  }
  /* the same target string is the same channel */
  assert_ptr_equal(rt_grpc_client_channel(f->cli, "127.0.0.1:1", err, sizeof err),
                   rt_grpc_client_channel(f->cli, "127.0.0.1:1", err, sizeof err));
}

static void test_md_check(void **state) {
  char err[160];
  assert_int_equal(rt_grpc_md_check("x-trace", (const uint8_t *)"abc", 3, err, sizeof err), 0);
  assert_int_equal(rt_grpc_md_check("x-b-bin", (const uint8_t *)"\0\1", 2, err, sizeof err), 0);
  assert_int_equal(rt_grpc_md_check("X-Up", (const uint8_t *)"a", 1, err, sizeof err), -1);
  assert_int_equal(rt_grpc_md_check("grpc-timeout", (const uint8_t *)"1S", 2, err, sizeof err), -1);
  assert_non_null(strstr(err, "reserved"));
  assert_int_equal(rt_grpc_md_check("te", (const uint8_t *)"x", 1, err, sizeof err), -1);
  assert_int_equal(rt_grpc_md_check(":path", (const uint8_t *)"/", 1, err, sizeof err), -1);
  assert_int_equal(rt_grpc_md_check("x-t", (const uint8_t *)"a\nb", 3, err, sizeof err), -1);
  assert_non_null(strstr(err, "-bin"));
}

static void test_status_maps(void **state) {
  assert_int_equal(rt_grpc_status_from_http(400), RT_GRPC_STATUS_INTERNAL);
  assert_int_equal(rt_grpc_status_from_http(401), RT_GRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(rt_grpc_status_from_http(403), RT_GRPC_STATUS_PERMISSION_DENIED);
  assert_int_equal(rt_grpc_status_from_http(404), RT_GRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(rt_grpc_status_from_http(429), RT_GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(rt_grpc_status_from_http(502), RT_GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(rt_grpc_status_from_http(500), RT_GRPC_STATUS_UNKNOWN);
  assert_int_equal(rt_grpc_status_from_h2(NGHTTP2_REFUSED_STREAM), RT_GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(rt_grpc_status_from_h2(NGHTTP2_CANCEL), RT_GRPC_STATUS_CANCELLED);
  assert_int_equal(rt_grpc_status_from_h2(NGHTTP2_PROTOCOL_ERROR), RT_GRPC_STATUS_INTERNAL);
}

static void test_bad_options(void **state) {
  fx *f = *state;
  char err[160];
  rt_grpc_call_opts o = {.path = "no-slash"};
  assert_null(rt_grpc_call_start(f->ch, &o, err, sizeof err));
  rt_grpc_md md = {.key = "grpc-x", .val = (const uint8_t *)"v", .vallen = 1};
  rt_grpc_call_opts o2 = {.path = "/t.S/M", .md = &md, .n_md = 1};
  assert_null(rt_grpc_call_start(f->ch, &o2, err, sizeof err));
  assert_non_null(strstr(err, "reserved"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ok_with_trailers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_and_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_trailers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_503, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_404_with_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_content_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_message_over_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gzip_response, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_encoding, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_grpc_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rst_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_too_much_metadata, setup, teardown),
      cmocka_unit_test_setup_teardown(test_goaway_then_new_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reuse_one_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_on_silent_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_unfinished_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_targets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_md_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_maps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
