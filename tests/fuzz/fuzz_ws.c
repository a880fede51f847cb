/* libFuzzer harness for the WebSocket input path: core/ws.c on wslay, the UTF-8 check,
 * the Lua dispatch and the broker, as a client's bytes reach them.
 *
 * Once: a server on its own loop with a small app (echo, publish to a topic the socket
 * is subscribed to, close, unsubscribe, raise). Per input: a connection on a fresh
 * socketpair, upgraded with a real handshake; then byte 0 picks a cut point and the rest
 * goes in as client data in two reads; the loop runs to flush; the connection is closed
 * and reaped. Checks: no crash, leak or UB, and everything the server wrote after the
 * 101 is a sequence of well-formed server frames (FIN set, no mask, no RSV bits, a known
 * opcode, control frames <= 125 bytes, text frames valid UTF-8, close codes sendable). */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "http/http1.h"
#include "rtserver.h"
#include "net/server_int.h"
#include "base/utf8.h"
#include "ws/ws.h"

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
      abort();                                                                   \
    }                                                                            \
  } while (0)

static const char APP[] =
    "local rt = require 'rt'\n"
    "local room = rt.topic 'fuzz'\n"
    "rt.websocket('/ws', {\n"
    "  open = function(ws) room:subscribe(ws) end,\n"
    "  message = function(ws, data, binary)\n"
    "    local op = data:sub(1, 1)\n"
    "    if op == 'p' then room:publish(data, binary)\n"
    "    elseif op == 'c' then ws:close(4000, 'bye')\n"
    "    elseif op == 'u' then room:unsubscribe(ws)\n"
    "    elseif op == 'e' then error('fuzz error')\n"
    "    else ws:send(data, binary) end\n"
    "  end,\n"
    "  close = function(ws, code, reason) end,\n"
    "})\n";

static const char UPGRADE[] =
    "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static struct ev_loop *loop;
static rt_server *srv;

static int find_lua_dir(char *out, size_t cap) {
  const char *env = getenv("RTSERVER_LUA_DIR");
  if (env) {
    snprintf(out, cap, "%s", env);
    return 0;
  }
  if (access("lua/rt.lua", R_OK) == 0) {
    snprintf(out, cap, "lua");
    return 0;
  }
  /* build/fuzz/fuzz_ws -> ../../lua */
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(out, cap, "%s/../../lua", exe);
  return 0;
}

/* LuaJIT allocates its own memory with mmap, which LeakSanitizer does not scan: what
 * only Lua objects point to looks leaked unless the server is freed before exit. */
static void cleanup(void) {
  if (srv) rt_server_free(srv);
  srv = NULL;
  if (loop) ev_loop_destroy(loop);
  loop = NULL;
}

static void init_once(void) {
  static char dir[4200];
  char err[512];
  if (find_lua_dir(dir, sizeof dir) < 0) abort();
  rt_config cfg;
  rt_config_init(&cfg);
  cfg.lua_dir = dir;
  cfg.log_level = getenv("FUZZ_LOG") ? RT_LOG_DEBUG : RT_LOG_OFF;
  cfg.max_ws_message = 1024;      /* small, so inputs can pass it */
  cfg.max_output_bytes = 256 * 1024;
  loop = ev_loop_new(EVFLAG_AUTO);
  srv = rt_server_new(loop, &cfg, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "fuzz_ws: %s\n", err);
    abort();
  }
  char path[] = "/tmp/fuzz_ws_app_XXXXXX.lua";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  CHECK(write(fd, APP, sizeof APP - 1) == (ssize_t)(sizeof APP - 1));
  close(fd);
  atexit(cleanup);
  int rc = rt_server_load_app(srv, path, err, sizeof err);
  unlink(path);
  if (rc < 0) {
    fprintf(stderr, "fuzz_ws: %s\n", err);
    abort();
  }
}

/* Reads everything the server side wrote so far. */
static void drain(int fd, uint8_t **buf, size_t *len, size_t *cap) {
  for (;;) {
    if (*cap - *len < 65536) {
      *cap = *cap * 2 + 65536;
      *buf = realloc(*buf, *cap);
      CHECK(*buf);
    }
    ssize_t r = read(fd, *buf + *len, *cap - *len);
    if (r <= 0) return;
    *len += (size_t)r;
  }
}

static int sendable_close_code(int code) {
  return code == 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

/* The server's output: the 101 head, then whole frames (the last may be cut short when
 * the connection was closed with output pending). */
static void check_output(const uint8_t *p, size_t n) {
  const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
  CHECK(end && n >= 13 && memcmp(p, "HTTP/1.1 101 ", 13) == 0);
  size_t off = (size_t)(end + 4 - p);
  int closed = 0;
  while (off < n) {
    const uint8_t *f = p + off;
    size_t left = n - off;
    if (left < 2) break;
    CHECK(f[0] & 0x80);            /* FIN: the server never fragments */
    CHECK((f[0] & 0x70) == 0);     /* no RSV bits */
    CHECK((f[1] & 0x80) == 0);     /* never masked */
    int op = f[0] & 0x0f;
    CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
    CHECK(!closed);                /* nothing after a close frame */
    size_t h = 2, len = f[1] & 0x7f;
    if (len == 126) {
      if (left < 4) break;
      len = (size_t)f[2] << 8 | f[3];
      h = 4;
      CHECK(len >= 126);
    } else if (len == 127) {
      if (left < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
      h = 10;
      CHECK(len > 0xffff);
    }
    if (op >= 8) CHECK(len <= 125);
    if (left - h < len) break;
    const uint8_t *pl = f + h;
    if (op == 1) CHECK(rt_utf8_valid(pl, len));
    if (op == 8) {
      CHECK(len != 1);
      if (len >= 2) CHECK(sendable_close_code(pl[0] << 8 | pl[1]));
      closed = 1;
    }
    off += h + len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) init_once();
  if (size < 1) return 0;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  for (int i = 0; i < 2; i++) fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
  rt_conn *c = rt_conn_new(srv, sv[0], "fuzz");
  CHECK(c);
  uint64_t id = c->id;
  rt_http1_start(c);

  /* The handshake, as bytes the client sent. */
  CHECK(rt_buf_append(&c->in, UPGRADE, sizeof UPGRADE - 1) == 0);
  c->proto->on_read(c);
  CHECK(!c->closing && rt_ws_is_ws(c));
  /* A client waits for the 101 before it sends frames. */
  uint8_t *out = NULL;
  size_t olen = 0, ocap = 0;
  ev_run(loop, EVRUN_NOWAIT);
  drain(sv[1], &out, &olen, &ocap);
  CHECK(olen > 13 && memcmp(out, "HTTP/1.1 101 ", 13) == 0);

  const uint8_t *d = data + 1;
  size_t n = size - 1, cut = n ? data[0] % (n + 1) : 0;
  const uint8_t *pieces[2] = {d, d + cut};
  size_t lens[2] = {cut, n - cut};
  for (int i = 0; i < 2; i++) {
    /* The loop frees a closed connection: look it up again every time. */
    c = rt_conn_find(srv, id);
    if (!c || !lens[i]) continue;
    CHECK(rt_buf_append(&c->in, pieces[i], lens[i]) == 0);
    c->proto->on_read(c);
    ev_run(loop, EVRUN_NOWAIT);
    drain(sv[1], &out, &olen, &ocap);
  }
  for (int i = 0; i < 3; i++) {
    ev_run(loop, EVRUN_NOWAIT);
    drain(sv[1], &out, &olen, &ocap);
  }
  c = rt_conn_find(srv, id);
  if (c) rt_conn_close(c);
  ev_run(loop, EVRUN_NOWAIT);  /* reaps it */
  drain(sv[1], &out, &olen, &ocap);
  check_output(out, olen);
  free(out);
  close(sv[1]);
  CHECK(srv->nconns == 0);
  return 0;
}
