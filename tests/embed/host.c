/* A host program that embeds rtserver on its own libev loop, through the public header
 * only: creates a server, registers a C function for scripts, loads an app, listens,
 * publishes from C, reloads, stops and frees. A client thread drives it over a socket.
 * Exit status 0 means every step worked; run under valgrind by `make test`. */
#include <arpa/inet.h>
#include <ev.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtserver.h"

#define CHECK(cond, what) do { if (!(cond)) { fprintf(stderr, "embed host: FAIL: %s\n", what); exit(1); } } while (0)

typedef struct host {
  rt_server *srv;
  int port;
  const char *app_path;
  atomic_int step;     /* client -> host: 1 subscribed, 2 wants reload, 3 done */
  atomic_int acked;    /* host -> client: last step handled */
  int failed;
} host;

static int c_add(lua_State *L) {
  lua_pushnumber(L, luaL_checknumber(L, 1) + luaL_checknumber(L, 2));
  return 1;
}

static void send_frame(int fd, const char *text) {
  unsigned char f[256];
  size_t n = strlen(text);
  const unsigned char mask[4] = {1, 2, 3, 4};
  f[0] = 0x81;
  f[1] = (unsigned char)(0x80 | n);
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < n; i++) f[6 + i] = (unsigned char)text[i] ^ mask[i % 4];
  CHECK(write(fd, f, 6 + n) == (ssize_t)(6 + n), "client write");
}

/* Reads one small unmasked server frame into out. */
static void read_frame(int fd, char *out, size_t outlen) {
  unsigned char h[2];
  CHECK(recv(fd, h, 2, MSG_WAITALL) == 2, "client read header");
  size_t n = h[1] & 0x7f;
  CHECK(n < outlen && n < 126, "small frame");
  CHECK(recv(fd, out, n, MSG_WAITALL) == (ssize_t)n, "client read payload");
  out[n] = 0;
}

static void wait_ack(host *h, int step) {
  while (atomic_load(&h->acked) < step) usleep(1000);
}

static void *client(void *arg) {
  host *h = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect");
  const char *req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req), "handshake write");
  char buf[1024] = "";
  size_t got = 0;
  while (!strstr(buf, "\r\n\r\n")) {
    CHECK(got + 1 < sizeof buf, "handshake too long");
    ssize_t r = recv(fd, buf + got, 1, 0);
    CHECK(r == 1, "handshake read");
    got++;
    buf[got] = 0;
  }
  CHECK(strstr(buf, "101 Switching") && strstr(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "101 + accept key");
  char msg[256];
  send_frame(fd, "hi");
  read_frame(fd, msg, sizeof msg);
  CHECK(strcmp(msg, "v1 hi 5") == 0, "reply from the app using the host's C function");
  atomic_store(&h->step, 1);  /* open handler subscribed us: publish from C */
  read_frame(fd, msg, sizeof msg);
  CHECK(strcmp(msg, "from C") == 0, "message published by the host");
  atomic_store(&h->step, 2);  /* ask for a reload with new code */
  wait_ack(h, 2);
  send_frame(fd, "again");
  read_frame(fd, msg, sizeof msg);
  CHECK(strcmp(msg, "v2 again") == 0, "new code answers after reload, same connection");
  atomic_store(&h->step, 3);
  /* The host stops the server: we must see a close frame with 1001. */
  unsigned char cf[4];
  CHECK(recv(fd, cf, 4, MSG_WAITALL) == 4, "close frame");
  CHECK(cf[0] == 0x88 && ((cf[2] << 8) | cf[3]) == 1001, "close 1001 on stop");
  close(fd);
  return NULL;
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  host *h = w->data;
  int step = atomic_load(&h->step), acked = atomic_load(&h->acked);
  if (step == acked) return;
  char err[512];
  if (step == 1) {
    CHECK(rt_server_publish(h->srv, "news", "from C", 6) == 1, "publish reaches one subscriber");
  } else if (step == 2) {
    FILE *f = fopen(h->app_path, "w");
    CHECK(f, "rewrite app");
    fputs("local rt = require 'rt'\n"
          "rt.websocket('/ws', { message = function(ws, m) ws:send('v2 ' .. m) end })\n", f);
    fclose(f);
    CHECK(rt_server_reload(h->srv, err, sizeof err) == 0, err);
  } else if (step == 3) {
    rt_server_stop(h->srv);
    ev_timer_stop(loop, w);
  }
  atomic_store(&h->acked, step);
}

int main(int argc, char **argv) {
  const char *lua_dir = argc > 1 ? argv[1] : "lua";
  host h = {.app_path = "/tmp/rtserver-embed-app.lua"};
  /* A copy of the app, since the test rewrites it to check reload. */
  FILE *in = fopen("tests/embed/app.lua", "r"), *out = fopen(h.app_path, "w");
  CHECK(in && out, "copy app");
  char line[512];
  while (fgets(line, sizeof line, in)) fputs(line, out);
  fclose(in);
  fclose(out);

  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  rt_config cfg;
  rt_config_init(&cfg);
  cfg.lua_dir = lua_dir;
  cfg.log_level = RT_LOG_WARN;
  char err[512];
  h.srv = rt_server_new(loop, &cfg, err, sizeof err);
  CHECK(h.srv, err);
  CHECK(rt_server_register_function(h.srv, "add", c_add) == 0, "register C function");
  CHECK(rt_server_load_app(h.srv, h.app_path, err, sizeof err) == 0, err);
  CHECK(rt_server_listen(h.srv, "127.0.0.1", 0, err, sizeof err) == 0, err);
  h.port = rt_server_port(h.srv);

  ev_timer poll;
  ev_timer_init(&poll, on_poll, 0.005, 0.005);
  poll.data = &h;
  ev_timer_start(loop, &poll);
  pthread_t t;
  pthread_create(&t, NULL, client, &h);
  /* Runs until the server has stopped and every connection is gone. */
  ev_run(loop, 0);
  pthread_join(t, NULL);
  CHECK(rt_server_connections(h.srv) == 0, "no connection left after stop");
  rt_server_free(h.srv);
  ev_loop_destroy(loop);
  unlink(h.app_path);
  printf("embed host: OK (C function, app, publish from C, reload, stop, free)\n");
  return 0;
}
