/* Unit tests for the HTTP/2 server session and gRPC calls (core/h2.c, core/grpc_server.c,
 * core/lua_grpc.c, lua/rt_grpc.lua) over a socketpair: the client side is an nghttp2
 * client session in this file, so every frame is scripted. Covers the preface sniffing
 * of http1.c fed one byte at a time, outbound flow control against a client that never
 * opens its window, cancellation by RST_STREAM, rapid-reset protection, GOAWAY on
 * garbage and on shutdown (calls in flight still finish). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <lauxlib.h>
#include <nghttp2/nghttp2.h>

#include "net/conn.h"
#include "net/server_int.h"
#include "tnet.h"

typedef struct cli {
  nghttp2_session *s;
  int fd;
  int goaway, goaway_code, rst_code, closed, status;
  char grpc_status[8], grpc_message[128];
  uint8_t data[1 << 20];
  size_t ndata;
  int trickle;  /* write our bytes one at a time */
} cli;

typedef struct fx {
  tsrv t;
  cli c;
} fx;

static const char app_fmt[] =
    "local rt = require 'rt'\n"
    "local users = rt.grpc.service('%s/proto/user.proto', 'user.UserService')\n"
    "rt.state.t = rt.state.t or {}\n"
    "local st = rt.state.t\n"
    "function users.GetUser(req) return { id = req.id, name = 'n' .. tonumber(req.id) } end\n"
    "function users.ListUsers(_, s)\n"
    "  st.sent = 0\n"
    "  local ok, err = pcall(function()\n"
    "    for i = 1, 2000 do s:send { id = i, name = string.rep('x', 1000) }; st.sent = i end\n"
    "  end)\n"
    "  st.done = ok and 'completed' or (s:cancelled() and 'cancelled' or tostring(err))\n"
    "end\n";

static double state_num(fx *f, const char *key) {
  lua_State *L = rt_server_lua(f->t.srv);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "rt");
  lua_getfield(L, -1, "state");
  lua_getfield(L, -1, "t");
  lua_getfield(L, -1, key);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 6);
  return v;
}

static const char *state_str(fx *f, const char *key, char *buf, size_t cap) {
  lua_State *L = rt_server_lua(f->t.srv);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "rt");
  lua_getfield(L, -1, "state");
  lua_getfield(L, -1, "t");
  lua_getfield(L, -1, key);
  snprintf(buf, cap, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
  lua_pop(L, 6);
  return buf;
}

/* ---- the client session ------------------------------------------------------------- */

static int c_frame_recv(nghttp2_session *s, const nghttp2_frame *fr, void *ud) {
  cli *c = ud;
  if (fr->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = 1;
    c->goaway_code = (int)fr->goaway.error_code;
  }
  if (fr->hd.type == NGHTTP2_RST_STREAM) c->rst_code = (int)fr->rst_stream.error_code;
  return 0;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name,
                    size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
  cli *c = ud;
  if (nlen == 7 && memcmp(name, ":status", 7) == 0) c->status = atoi((const char *)value);
  if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0)
    snprintf(c->grpc_status, sizeof c->grpc_status, "%.*s", (int)vlen, value);
  if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0)
    snprintf(c->grpc_message, sizeof c->grpc_message, "%.*s", (int)vlen, value);
  return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t len,
                  void *ud) {
  cli *c = ud;
  if (c->ndata + len <= sizeof c->data) memcpy(c->data + c->ndata, d, len);
  c->ndata += len;
  return 0;
}

static int c_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud) {
  ((cli *)ud)->closed++;
  return 0;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  char cwd[1024], src[2048];
  if (!f || !getcwd(cwd, sizeof cwd) || tsrv_start(&f->t, NULL) < 0) return -1;
  snprintf(src, sizeof src, app_fmt, cwd);
  if (tsrv_load_source(&f->t, src) < 0) {
    fprintf(stderr, "app: %s\n", f->t.err);
    return -1;
  }
  if (!tconn_http(&f->t, &f->c.fd)) return -1;
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame_recv);
  nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
  nghttp2_option *opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  /* we open windows by hand */
  nghttp2_session_client_new2(&f->c.s, cb, &f->c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  nghttp2_session_del(f->c.s);
  close(f->c.fd);
  tsrv_stop(&f->t);
  free(f);
  return 0;
}

/* Writes what the client session has queued, without reading. */
static void client_send(fx *f) {
  const uint8_t *out;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(f->c.s, &out)) > 0)
    assert_int_equal(tclient_write(f->t.loop, f->c.fd, out, (size_t)n), 0);
}

/* Sends what the client session has and feeds it what the server sent, for a while. */
static void exchange(fx *f, double seconds) {
  ev_tstamp until = ev_time() + seconds;
  do {
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(f->c.s, &out)) > 0) {
      if (f->c.trickle) {
        for (ssize_t i = 0; i < n; i++) {
          assert_int_equal(tclient_write(f->t.loop, f->c.fd, out + i, 1), 0);
          tloop_spin(f->t.loop, 1);
        }
      } else {
        assert_int_equal(tclient_write(f->t.loop, f->c.fd, out, (size_t)n), 0);
      }
    }
    uint8_t in[65536];
    int eof = 0;
    size_t got = tclient_read(f->t.loop, f->c.fd, in, sizeof in, 0.01, &eof);
    if (got) assert_true(nghttp2_session_mem_recv(f->c.s, in, got) >= 0);
    if (eof) return;
  } while (ev_time() < until);
}

static void settings(fx *f, uint32_t window) {
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
  nghttp2_submit_settings(f->c.s, NGHTTP2_FLAG_NONE, iv, 1);
}

typedef struct body {
  const uint8_t *p;
  size_t len, off;
} body;

static ssize_t body_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  body *b = src->ptr;
  size_t n = b->len - b->off < len ? b->len - b->off : len;
  memcpy(buf, b->p + b->off, n);
  b->off += n;
  if (b->off == b->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

static int32_t call_timeout(fx *f, const char *path, body *b, const char *timeout) {
  nghttp2_nv nva[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", "t"),
                      {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
                      NV("content-type", "application/grpc"), NV("te", "trailers"),
                      {(uint8_t *)"grpc-timeout", (uint8_t *)timeout, 12,
                       timeout ? strlen(timeout) : 0, 0}};
  nghttp2_data_provider dp = {.source = {.ptr = b}, .read_callback = body_read};
  size_t n = sizeof nva / sizeof nva[0] - (timeout ? 0 : 1);
  return nghttp2_submit_request(f->c.s, NULL, nva, n, &dp, NULL);
}

static int32_t call(fx *f, const char *path, body *b) { return call_timeout(f, path, b, NULL); }

static const uint8_t get7[] = {0, 0, 0, 0, 2, 0x08, 7};  /* GetUserRequest{id = 7} */
static const uint8_t empty[] = {0, 0, 0, 0, 0};

/* ---- tests ----------------------------------------------------------------------------- */

static void test_unary_one_byte_at_a_time(void **state) {
  fx *f = *state;
  f->c.trickle = 1;
  settings(f, 65535);
  body b = {get7, sizeof get7, 0};
  assert_true(call(f, "/user.UserService/GetUser", &b) > 0);
  exchange(f, 0.5);
  assert_int_equal(f->c.status, 200);
  assert_string_equal(f->c.grpc_status, "0");
  /* one message: 5-byte prefix, then User{id = 7, name = "n7"} */
  assert_int_equal(f->c.ndata, 5 + 6);
  assert_memory_equal(f->c.data + 5, "\x08\x07\x12\x02n7", 6);
}

static void test_trailers_only(void **state) {
  fx *f = *state;
  settings(f, 65535);
  body b = {empty, sizeof empty, 0};
  call(f, "/user.UserService/Nope", &b);
  exchange(f, 0.3);
  assert_string_equal(f->c.grpc_status, "12");
  assert_non_null(strstr(f->c.grpc_message, "Nope"));
  assert_int_equal(f->c.ndata, 0);
}

static void test_flow_control_bounds_the_handler(void **state) {
  fx *f = *state;
  settings(f, 16384);  /* and we never send WINDOW_UPDATE for the stream */
  body b = {empty, sizeof empty, 0};
  int32_t sid = call(f, "/user.UserService/ListUsers", &b);
  exchange(f, 0.5);
  char buf[64];
  size_t consumed = 0;
  assert_true(f->c.ndata <= 16384);
  /* The handler is parked in send: its queue is bounded, not the 2 MB it wants to send. */
  assert_true(state_num(f, "sent") * 1000 < 200 * 1000);
  assert_string_equal(state_str(f, "done", buf, sizeof buf), "");
  /* Opening the window lets the rest through. */
  for (int round = 0; round < 1000 && !f->c.closed; round++) {
    nghttp2_session_consume(f->c.s, sid, f->c.ndata - consumed);
    consumed = f->c.ndata;
    exchange(f, 0.01);
  }
  assert_string_equal(state_str(f, "done", buf, sizeof buf), "completed");
  assert_string_equal(f->c.grpc_status, "0");
  size_t want = 0;
  for (int i = 1; i <= 2000; i++) want += 5 + 1 + (i < 128 ? 1 : 2) + 1 + 2 + 1000;
  assert_int_equal(f->c.ndata, want);
}

static void test_rst_stream_cancels_the_handler(void **state) {
  fx *f = *state;
  settings(f, 16384);
  body b = {empty, sizeof empty, 0};
  int32_t sid = call(f, "/user.UserService/ListUsers", &b);
  exchange(f, 0.2);
  nghttp2_submit_rst_stream(f->c.s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
  exchange(f, 0.2);
  char buf[64];
  assert_string_equal(state_str(f, "done", buf, sizeof buf), "cancelled");
  assert_false(f->c.goaway);
}

static void test_deadline_on_a_blocked_stream_resets_it(void **state) {
  fx *f = *state;
  settings(f, 16384);  /* the window fills and stays shut: trailers could never pass */
  body b = {empty, sizeof empty, 0};
  call_timeout(f, "/user.UserService/ListUsers", &b, "200m");
  exchange(f, 0.1);
  assert_int_equal(f->c.rst_code, 0);
  exchange(f, 0.4);
  assert_int_equal(f->c.rst_code, NGHTTP2_CANCEL);
  char buf[64];
  assert_string_equal(state_str(f, "done", buf, sizeof buf), "cancelled");
}

static void test_rapid_reset_is_refused(void **state) {
  fx *f = *state;
  settings(f, 65535);
  for (int i = 0; i < 400 && !f->c.goaway; i++) {
    body b = {empty, sizeof empty, 0};
    int32_t sid = call(f, "/user.UserService/ListUsers", &b);
    client_send(f);  /* a stream reset before its HEADERS left is never sent */
    nghttp2_submit_rst_stream(f->c.s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
    client_send(f);
    if (i % 50 == 49) exchange(f, 0.01);
  }
  exchange(f, 0.2);
  assert_true(f->c.goaway);
  assert_int_equal(f->c.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
}

static void test_garbage_after_preface_gets_goaway(void **state) {
  fx *f = *state;
  static const char bad[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(tclient_write(f->t.loop, f->c.fd, bad, sizeof bad - 1), 0);
  uint8_t in[4096];
  int eof = 0;
  size_t n = 0, got;
  while (!eof && (got = tclient_read(f->t.loop, f->c.fd, in + n, sizeof in - n, 0.5, &eof)) > 0) n += got;
  assert_true(eof);
  /* Frames: SETTINGS, then a GOAWAY with an error code. */
  int goaway = 0;
  for (size_t off = 0; off + 9 <= n;) {
    size_t len = (size_t)in[off] << 16 | (size_t)in[off + 1] << 8 | in[off + 2];
    if (in[off + 3] == NGHTTP2_GOAWAY && off + 9 + 8 <= n) goaway = in[off + 9 + 7] != 0;
    off += 9 + len;
  }
  assert_true(goaway);
}

static void test_shutdown_sends_goaway_and_lets_calls_finish(void **state) {
  fx *f = *state;
  settings(f, 16384);
  body b = {empty, sizeof empty, 0};
  int32_t sid = call(f, "/user.UserService/ListUsers", &b);
  exchange(f, 0.2);
  rt_server_stop(f->t.srv);
  exchange(f, 0.2);
  assert_true(f->c.goaway);
  assert_int_equal(f->c.goaway_code, NGHTTP2_NO_ERROR);
  assert_int_equal(rt_server_connections(f->t.srv), 1);  /* the call is still running */
  size_t consumed = 0;
  for (int round = 0; round < 1000 && !f->c.closed; round++) {
    nghttp2_session_consume(f->c.s, sid, f->c.ndata - consumed);
    consumed = f->c.ndata;
    exchange(f, 0.01);
  }
  char buf[64];
  assert_string_equal(state_str(f, "done", buf, sizeof buf), "completed");
  assert_string_equal(f->c.grpc_status, "0");
  tloop_spin(f->t.loop, 5);
  assert_int_equal(rt_server_connections(f->t.srv), 0);  /* then the connection went */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unary_one_byte_at_a_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trailers_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flow_control_bounds_the_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rst_stream_cancels_the_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_on_a_blocked_stream_resets_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rapid_reset_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_after_preface_gets_goaway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_sends_goaway_and_lets_calls_finish, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
