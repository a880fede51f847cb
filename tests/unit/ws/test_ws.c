/* Unit tests for core/ws.c: the upgrade, echo, fragments, control frames, close codes,
 * fan-out through the broker and the slow-consumer close, over socketpair() with a real
 * server and a small app script. The test side speaks as a client: masked frames out,
 * unmasked frames back. */
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
#include "tnet.h"
#include "ws/ws.h"

static const char APP[] =
    "local rt = require 'rt'\n"
    "local log = {}\n"
    "rawset(_G, 'wslog', log)\n"
    "local function note(s) log[#log + 1] = s end\n"
    "rt.websocket('/echo', {\n"
    "  open = function(ws) note('open') end,\n"
    "  message = function(ws, data, binary) ws:send(data, binary) end,\n"
    "  close = function(ws, code, reason) note('close ' .. code .. ' ' .. reason) end,\n"
    "})\n"
    "rt.websocket('/small', { max_message = 64,\n"
    "  message = function(ws, data) ws:send(data) end,\n"
    "  close = function(ws, code) note('small close ' .. code) end })\n"
    "rt.websocket('/room', {\n"
    "  open = function(ws) ws:subscribe('room') end,\n"
    "  message = function(ws, data) rt.publish('room', data) end })\n"
    "rt.websocket('/fail', { message = function(ws, data) error('boom') end })\n"
    "rt.websocket('/closer', { message = function(ws, data) ws:close(4000, 'bye ' .. data) end,\n"
    "  close = function(ws, code, reason) note('closer ' .. code .. ' ' .. reason) end })\n"
    "rt.websocket('/proto', { protocols = { 'v2.chat', 'v1.chat' } })\n"
    "rt.http.get('/plain', function() return 200, 'plain' end)\n";

typedef struct fx {
  tsrv t;
} fx;

static int setup_cfg(void **state, size_t max_out) {
  fx *f = calloc(1, sizeof *f);
  rt_config cfg;
  tsrv_config(&cfg);
  if (max_out) cfg.max_output_bytes = max_out;
  if (tsrv_start(&f->t, &cfg) < 0 || tsrv_load_source(&f->t, APP) < 0) {
    fprintf(stderr, "setup: %s\n", f->t.err);
    return -1;
  }
  *state = f;
  return 0;
}
static int setup(void **state) { return setup_cfg(state, 0); }
static int setup_small_out(void **state) { return setup_cfg(state, 64 * 1024); }

static int teardown(void **state) {
  fx *f = *state;
  tsrv_stop(&f->t);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

static void send_frame(fx *f, int fd, int fin, int op, const void *p, size_t n) {
  uint8_t *buf = malloc(n + 14);
  size_t len = tws_frame(buf, fin, op, p, n, tws_mask);
  assert_int_equal(tclient_write(f->t.loop, fd, buf, len), 0);
  free(buf);
}

static void send_raw(fx *f, int fd, const void *p, size_t n) {
  assert_int_equal(tclient_write(f->t.loop, fd, p, n), 0);
}

/* Reads one frame; fails the test if none comes. */
static void expect_frame(fx *f, int fd, uint8_t *buf, size_t cap, tws_in *in, int opcode) {
  if (!tws_read_frame(f->t.loop, fd, buf, cap, in, 2.0)) fail_msg("no frame (wanted opcode %d)", opcode);
  assert_false(in->masked);  /* server frames are never masked */
  if (in->opcode != opcode) fail_msg("opcode %d, wanted %d", in->opcode, opcode);
}

static void expect_text(fx *f, int fd, const char *text) {
  static uint8_t buf[80000];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 1);
  assert_true(in.fin);
  assert_int_equal(in.len, strlen(text));
  assert_memory_equal(in.payload, text, in.len);
}

static void expect_close(fx *f, int fd, int code) {
  uint8_t buf[256];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 8);
  if (tws_close_code(&in) != code) fail_msg("close code %d, wanted %d", tws_close_code(&in), code);
}

static void expect_eof(fx *f, int fd) {
  uint8_t b[64];
  int eof = 0;
  size_t n = tclient_read(f->t.loop, fd, b, sizeof b, 2.0, &eof);
  if (n) fail_msg("%zu more bytes where the connection should end (first %02x)", n, b[0]);
  assert_true(eof);
}

/* Does the app's log (wslog in the Lua state) hold this line? Spins the loop a little
 * first: close handlers run when the connection goes. */
static int lua_logged(fx *f, const char *line) {
  lua_State *L = rt_server_lua(f->t.srv);
  for (int round = 0; round < 40; round++) {
    lua_getglobal(L, "wslog");
    int n = (int)lua_objlen(L, -1), found = 0;
    for (int i = 1; i <= n && !found; i++) {
      lua_rawgeti(L, -1, i);
      found = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), line) == 0;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (found) return 1;
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  return 0;
}

static rt_conn *open_ws(fx *f, const char *path, int *fd) {
  rt_conn *c = tconn_ws(&f->t, path, fd);
  if (!c) fail_msg("upgrade to %s failed", path);
  assert_true(rt_ws_is_ws(c));
  return c;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_handshake(void **state) {
  fx *f = *state;
  int fd;
  rt_conn *c = tconn_http(&f->t, &fd);
  assert_non_null(c);
  static const char req[] =
      "GET /proto HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: v0, v1.chat, v2.chat\r\n\r\n";
  send_raw(f, fd, req, sizeof req - 1);
  char head[1024];
  assert_true(tclient_read_head(f->t.loop, fd, head, sizeof head, 2.0) > 0);
  assert_int_equal(strncmp(head, "HTTP/1.1 101 ", 13), 0);
  assert_non_null(strstr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
  assert_non_null(strcasestr(head, "\r\nConnection: Upgrade\r\n"));
  /* the server's preference wins among what the client offers */
  assert_non_null(strstr(head, "\r\nSec-WebSocket-Protocol: v2.chat\r\n"));
  assert_true(rt_ws_is_ws(c));
  assert_int_equal(f->t.srv->metrics.conns_open[RT_PROTO_WS], 1);
  assert_int_equal(f->t.srv->metrics.conns_open[RT_PROTO_HTTP1], 0);
  close(fd);
}

static void test_handshake_refusals(void **state) {
  fx *f = *state;
  static const struct { const char *req; const char *status; } cases[] = {
      {"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 426 "},
      {"GET /echo HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int fd;
    rt_conn *c = tconn_http(&f->t, &fd);
    uint64_t id = c->id;
    send_raw(f, fd, cases[i].req, strlen(cases[i].req));
    char head[1024];
    assert_true(tclient_read_head(f->t.loop, fd, head, sizeof head, 2.0) > 0);
    if (strncmp(head, cases[i].status, strlen(cases[i].status)) != 0)
      fail_msg("case %zu: got %.40s, want %s", i, head, cases[i].status);
    /* (a refused upgrade closes the connection: look it up, it may be gone) */
    c = rt_conn_find(f->t.srv, id);
    if (c) assert_false(rt_ws_is_ws(c));
    close(fd);
    tloop_spin(f->t.loop, 2);
  }
}

static void test_echo_text_and_binary(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  assert_true(lua_logged(f, "open"));
  send_frame(f, fd, 1, 1, "hello", 5);
  expect_text(f, fd, "hello");
  send_frame(f, fd, 1, 1, "", 0);
  expect_text(f, fd, "");
  uint8_t bin[300], buf[400];
  for (int i = 0; i < 300; i++) bin[i] = (uint8_t)(255 - i);
  send_frame(f, fd, 1, 2, bin, sizeof bin);
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 2);
  assert_int_equal(in.len, 300);
  assert_memory_equal(in.payload, bin, 300);
  /* a 16-bit length on the way in and out */
  char big[70000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  send_frame(f, fd, 1, 1, big, strlen(big));
  expect_text(f, fd, big);
  assert_true(f->t.srv->metrics.msgs_in >= 4);
  close(fd);
}

static void test_fragments_and_interleaved_ping(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  /* "h\xc3\xa9llo" split inside the 2-byte character: only the whole message must be valid */
  send_frame(f, fd, 0, 1, "h\xc3", 2);
  send_frame(f, fd, 1, 9, "p1", 2);  /* a ping between fragments is allowed */
  send_frame(f, fd, 0, 0, "\xa9l", 2);
  send_frame(f, fd, 1, 0, "lo", 2);
  /* A pong with the ping's payload and the echo, in either order (RFC 6455 does not
   * order a pong against data frames). */
  int pongs = 0, texts = 0;
  for (int i = 0; i < 2; i++) {
    uint8_t buf[64];
    tws_in in;
    if (!tws_read_frame(f->t.loop, fd, buf, sizeof buf, &in, 2.0)) fail_msg("frame %d missing", i);
    if (in.opcode == 10) {
      assert_int_equal(in.len, 2);
      assert_memory_equal(in.payload, "p1", 2);
      pongs++;
    } else {
      assert_int_equal(in.opcode, 1);
      assert_int_equal(in.len, 6);
      assert_memory_equal(in.payload, "h\xc3\xa9llo", 6);
      texts++;
    }
  }
  assert_int_equal(pongs, 1);
  assert_int_equal(texts, 1);
  close(fd);
}

static void test_ping_pong(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  send_frame(f, fd, 1, 9, "are you there", 13);
  uint8_t buf[64];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 10);
  assert_int_equal(in.len, 13);
  assert_memory_equal(in.payload, "are you there", 13);
  /* an unsolicited pong is ignored */
  send_frame(f, fd, 1, 10, "x", 1);
  send_frame(f, fd, 1, 1, "still here", 10);
  expect_text(f, fd, "still here");
  close(fd);
}

static void test_byte_at_a_time(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  uint8_t frame[64];
  size_t n = tws_frame(frame, 1, 1, "slowly", 6, tws_mask);
  for (size_t i = 0; i < n; i++) {
    send_raw(f, fd, frame + i, 1);
    tloop_spin(f->t.loop, 2);
  }
  expect_text(f, fd, "slowly");
  close(fd);
}

static void test_client_close(void **state) {
  fx *f = *state;
  int fd;
  rt_conn *c = open_ws(f, "/echo", &fd);
  uint64_t id = c->id;
  send_frame(f, fd, 1, 8, "\x03\xe8" "done", 6);
  expect_close(f, fd, 1000);
  expect_eof(f, fd);
  assert_null(rt_conn_find(f->t.srv, id));
  assert_true(lua_logged(f, "close 1000 done"));
  close(fd);
}

static void test_client_close_without_code(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  send_frame(f, fd, 1, 8, NULL, 0);
  uint8_t buf[64];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 8);
  expect_eof(f, fd);
  assert_true(lua_logged(f, "close 1005 "));
  close(fd);
}

static void test_peer_vanishes_reports_1006(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/echo", &fd);
  close(fd);
  assert_true(lua_logged(f, "close 1006 "));
}

/* Each bad input must get a close frame with the right code, then the end. */
static void check_fails_with(fx *f, const char *path, const uint8_t *bytes, size_t n, int code,
                             const char *what) {
  int fd;
  open_ws(f, path, &fd);
  send_raw(f, fd, bytes, n);
  uint8_t buf[256];
  tws_in in;
  if (!tws_read_frame(f->t.loop, fd, buf, sizeof buf, &in, 2.0))
    fail_msg("%s: no close frame came back", what);
  if (in.opcode != 8 || tws_close_code(&in) != code)
    fail_msg("%s: got opcode %d code %d, wanted a close %d", what, in.opcode, tws_close_code(&in), code);
  /* Answer the close (the server may already have closed: a failed connection need not
   * wait); the server must then end the connection. */
  uint8_t reply[16];
  size_t rn = tws_frame(reply, 1, 8, "\x03\xe8", 2, tws_mask);
  int rc = tclient_write(f->t.loop, fd, reply, rn);
  assert_true(rc == 0 || rc == -2);
  expect_eof(f, fd);
  close(fd);
  tloop_spin(f->t.loop, 2);
}

static void test_protocol_errors_1002(void **state) {
  fx *f = *state;
  uint8_t b[256];
  size_t n;
  /* unmasked client frame */
  n = tws_frame(b, 1, 1, "hi", 2, NULL);
  check_fails_with(f, "/echo", b, n, 1002, "unmasked frame");
  /* reserved opcode */
  n = tws_frame(b, 1, 3, "hi", 2, tws_mask);
  check_fails_with(f, "/echo", b, n, 1002, "reserved opcode 3");
  /* RSV1 without an extension */
  n = tws_frame(b, 1, 1, "hi", 2, tws_mask);
  b[0] |= 0x40;
  check_fails_with(f, "/echo", b, n, 1002, "RSV1 set");
  /* a continuation with no message started */
  n = tws_frame(b, 1, 0, "hi", 2, tws_mask);
  check_fails_with(f, "/echo", b, n, 1002, "continuation without a start");
  /* a new data frame while a fragmented message is open */
  n = tws_frame(b, 0, 1, "a", 1, tws_mask);
  n += tws_frame(b + n, 1, 1, "b", 1, tws_mask);
  check_fails_with(f, "/echo", b, n, 1002, "new text frame inside a fragmented message");
  /* (A close with a one-byte body should get 1002 too, but wslay 1.1.1 queues its own
   * code-less close reply before the app sees the frame: not checked here.) */
}

/* Errors wslay finds while parsing a frame header (not in its event layer): the peer must
 * still get a close frame 1002 before the connection ends (RFC 6455 7.1.7), not a bare
 * disconnect. */
static void test_frame_level_errors_1002(void **state) {
  fx *f = *state;
  uint8_t b[256];
  size_t n;
  /* a fragmented control frame */
  n = tws_frame(b, 0, 9, "hi", 2, tws_mask);
  check_fails_with(f, "/echo", b, n, 1002, "fragmented ping");
  /* a control frame over 125 bytes */
  uint8_t big[126];
  memset(big, 'p', sizeof big);
  n = tws_frame(b, 1, 9, big, sizeof big, tws_mask);
  check_fails_with(f, "/echo", b, n, 1002, "126-byte ping");
  /* a length that is not in its shortest form (16-bit field holding 5) */
  static const uint8_t nonminimal[] = {0x81, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
  check_fails_with(f, "/echo", nonminimal, sizeof nonminimal, 1002, "non-minimal length");
}

static void test_bad_close_codes(void **state) {
  fx *f = *state;
  static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]}, b[32];
    size_t n = tws_frame(b, 1, 8, p, 2, tws_mask);
    int fd;
    open_ws(f, "/echo", &fd);
    send_raw(f, fd, b, n);
    uint8_t buf[64];
    tws_in in;
    expect_frame(f, fd, buf, sizeof buf, &in, 8);
    if (tws_close_code(&in) != 1002) fail_msg("close code %u answered with %d", bad[i], tws_close_code(&in));
    expect_eof(f, fd);
    close(fd);
  }
}

static void test_invalid_utf8_1007(void **state) {
  fx *f = *state;
  uint8_t b[64];
  size_t n = tws_frame(b, 1, 1, "bad \xed\xa0\x80", 7, tws_mask);
  check_fails_with(f, "/echo", b, n, 1007, "surrogate in a text message");
  /* the same bytes as binary are fine */
  int fd;
  open_ws(f, "/echo", &fd);
  send_frame(f, fd, 1, 2, "bad \xed\xa0\x80", 7);
  uint8_t buf[64];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 2);
  close(fd);
  /* invalid across fragments */
  n = tws_frame(b, 0, 1, "ok \xf0\x9f", 5, tws_mask);
  n += tws_frame(b + n, 1, 0, "\x98(", 2, tws_mask);
  check_fails_with(f, "/echo", b, n, 1007, "invalid UTF-8 across fragments");
}

static void test_invalid_utf8_close_reason(void **state) {
  fx *f = *state;
  uint8_t b[64];
  /* RFC 6455 7.1.6 / 8.1: a close reason that is not UTF-8 fails the connection. */
  size_t n = tws_frame(b, 1, 8, "\x03\xe8\xff\xfe", 4, tws_mask);
  int fd;
  open_ws(f, "/echo", &fd);
  send_raw(f, fd, b, n);
  uint8_t buf[64];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 8);
  int code = tws_close_code(&in);
  if (code != 1007 && code != 1002) fail_msg("a close reason of invalid UTF-8 was answered with %d", code);
  close(fd);
}

static void test_too_big_1009(void **state) {
  fx *f = *state;
  uint8_t b[200], payload[65];
  memset(payload, 'x', sizeof payload);
  size_t n = tws_frame(b, 1, 1, payload, 65, tws_mask);
  check_fails_with(f, "/small", b, n, 1009, "65 bytes over a 64-byte limit");
  assert_true(lua_logged(f, "small close 1006"));
  /* 64 is allowed */
  int fd;
  open_ws(f, "/small", &fd);
  send_frame(f, fd, 1, 1, payload, 64);
  uint8_t buf[128];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 1);
  assert_int_equal(in.len, 64);
  close(fd);
  /* fragments count together */
  n = tws_frame(b, 0, 1, payload, 40, tws_mask);
  n += tws_frame(b + n, 1, 0, payload, 40, tws_mask);
  check_fails_with(f, "/small", b, n, 1009, "two 40-byte fragments over a 64-byte limit");
}

static void test_script_error_1011(void **state) {
  fx *f = *state;
  uint8_t b[64];
  size_t n = tws_frame(b, 1, 1, "x", 1, tws_mask);
  long before = f->t.srv->metrics.lua_errors;
  check_fails_with(f, "/fail", b, n, 1011, "handler raised");
  assert_int_equal(f->t.srv->metrics.lua_errors, before + 1);
}

static void test_server_close_from_script(void **state) {
  fx *f = *state;
  int fd;
  open_ws(f, "/closer", &fd);
  send_frame(f, fd, 1, 1, "now", 3);
  uint8_t buf[64];
  tws_in in;
  expect_frame(f, fd, buf, sizeof buf, &in, 8);
  assert_int_equal(tws_close_code(&in), 4000);
  assert_int_equal(in.len, 2 + 7);
  assert_memory_equal(in.payload + 2, "bye now", 7);
  /* frames after our close are ignored; the reply completes the handshake */
  send_frame(f, fd, 1, 1, "ignored", 7);
  send_frame(f, fd, 1, 8, "\x0f\xa0", 2);
  expect_eof(f, fd);
  assert_true(lua_logged(f, "closer 4000 "));
  close(fd);
}

/* Frames right behind the upgrade request, in the same write, are not lost. */
static void test_frame_in_same_packet_as_upgrade(void **state) {
  fx *f = *state;
  int fd;
  tconn_http(&f->t, &fd);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  n += (int)tws_frame((uint8_t *)req + n, 1, 1, "early", 5, tws_mask);
  send_raw(f, fd, req, (size_t)n);
  char head[1024];
  assert_true(tclient_read_head(f->t.loop, fd, head, sizeof head, 2.0) > 0);
  assert_int_equal(strncmp(head, "HTTP/1.1 101 ", 13), 0);
  expect_text(f, fd, "early");
  close(fd);
}

static void test_fan_out_through_topic(void **state) {
  fx *f = *state;
  int a, b, c;
  rt_conn *ca = open_ws(f, "/room", &a);
  open_ws(f, "/room", &b);
  open_ws(f, "/room", &c);
  assert_int_equal(rt_broker_count(f->t.srv->broker, "room"), 3);
  send_frame(f, a, 1, 1, "to all", 6);
  expect_text(f, a, "to all");
  expect_text(f, b, "to all");
  expect_text(f, c, "to all");
  assert_int_equal(rt_server_publish(f->t.srv, "room", "from C", 6), 3);
  expect_text(f, a, "from C");
  expect_text(f, b, "from C");
  expect_text(f, c, "from C");
  /* a subscriber that leaves is no longer counted or delivered to */
  uint64_t ida = ca->id;
  close(a);
  for (int i = 0; i < 40 && rt_conn_find(f->t.srv, ida); i++) {
    tloop_spin(f->t.loop, 1);
    usleep(500);
  }
  assert_int_equal(rt_broker_count(f->t.srv->broker, "room"), 2);
  assert_int_equal(rt_server_publish(f->t.srv, "room", "two left", 8), 2);
  expect_text(f, b, "two left");
  expect_text(f, c, "two left");
  close(b);
  close(c);
}

/* One frame chunk is shared by every subscriber: the deliver function builds it once. */
static void test_deliver_ws_shares_one_frame(void **state) {
  fx *f = *state;
  int a, b;
  rt_conn *ca = open_ws(f, "/echo", &a), *cb = open_ws(f, "/echo", &b);
  rt_broker *br = f->t.srv->broker;
  assert_non_null(rt_broker_subscribe(br, "t", ca, rt_ws_deliver, NULL));
  assert_non_null(rt_broker_subscribe(br, "t", cb, rt_ws_deliver, NULL));
  rt_chunk *body = rt_chunk_copy("payload", 7);
  rt_msg m = {.destination = "t", .body = body};
  assert_int_equal(rt_broker_publish(br, &m), 2);
  assert_non_null(m.ws_frame);
  assert_int_equal(m.ws_frame->refs, 3);  /* ours + one per queue */
  assert_ptr_equal(ca->out.v[ca->out.tail - 1].chunk, m.ws_frame);
  assert_ptr_equal(cb->out.v[cb->out.tail - 1].chunk, m.ws_frame);
  rt_chunk_unref(m.ws_frame);
  rt_chunk_unref(body);
  expect_text(f, a, "payload");
  expect_text(f, b, "payload");
  close(a);
  close(b);
}

/* A subscriber that does not read: once its queue passes the bound it gets a 1008 close
 * after whole frames only (never a torn frame), and the others are unaffected. */
static void test_slow_consumer_1008(void **state) {
  fx *f = *state;
  int slow, fast;
  rt_conn *cs = open_ws(f, "/room", &slow);
  open_ws(f, "/room", &fast);
  uint64_t ids = cs->id;
  tsock_small_buffers(slow, 4096);
  char msg[4000];
  memset(msg, 'm', sizeof msg - 1);
  msg[sizeof msg - 1] = 0;
  uint8_t *buf = malloc(8192);
  tws_in in;
  int rounds = 0;
  /* (cs may be freed once it closes: look it up by id, never dereference it after.) */
  for (; rounds < 200 && rt_conn_find(f->t.srv, ids) && !f->t.srv->metrics.slow_consumers; rounds++) {
    rt_server_publish(f->t.srv, "room", msg, strlen(msg));
    tloop_spin(f->t.loop, 1);
    expect_frame(f, fast, buf, 8192, &in, 1);  /* the fast one keeps up */
  }
  assert_int_equal(f->t.srv->metrics.slow_consumers, 1);
  /* Now read the slow side: text frames, each whole, then a close 1008. */
  int texts = 0, closed = 0;
  while (tws_read_frame(f->t.loop, slow, buf, 8192, &in, 2.0)) {
    if (in.opcode == 1) {
      assert_int_equal(in.len, strlen(msg));
      texts++;
      continue;
    }
    assert_int_equal(in.opcode, 8);
    assert_int_equal(tws_close_code(&in), 1008);
    closed = 1;
    break;
  }
  assert_true(closed);
  assert_true(texts < rounds);
  expect_eof(f, slow);
  free(buf);
  close(slow);
  close(fast);
}

static void test_plain_http_still_served(void **state) {
  fx *f = *state;
  int fd;
  tconn_http(&f->t, &fd);
  static const char req[] = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n";
  send_raw(f, fd, req, sizeof req - 1);
  char head[1024];
  assert_true(tclient_read_head(f->t.loop, fd, head, sizeof head, 2.0) > 0);
  assert_int_equal(strncmp(head, "HTTP/1.1 200 ", 13), 0);
  close(fd);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_handshake),
      T(test_handshake_refusals),
      T(test_echo_text_and_binary),
      T(test_fragments_and_interleaved_ping),
      T(test_ping_pong),
      T(test_byte_at_a_time),
      T(test_client_close),
      T(test_client_close_without_code),
      T(test_peer_vanishes_reports_1006),
      T(test_protocol_errors_1002),
      T(test_frame_level_errors_1002),
      T(test_bad_close_codes),
      T(test_invalid_utf8_1007),
      T(test_invalid_utf8_close_reason),
      T(test_too_big_1009),
      T(test_script_error_1011),
      T(test_server_close_from_script),
      T(test_frame_in_same_packet_as_upgrade),
      T(test_fan_out_through_topic),
      T(test_deliver_ws_shares_one_frame),
      cmocka_unit_test_setup_teardown(test_slow_consumer_1008, setup_small_out, teardown),
      T(test_plain_http_still_served),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
