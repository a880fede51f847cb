/* A host program that serves with no script at all: it fills the app table (rt_app) with
 * its own C callbacks through the public header, and serves an HTTP route and a WebSocket
 * echo that also joins a topic. A client thread checks each answer over a socket, then
 * the host stops and frees the server. Exit status 0 means every step worked; run under
 * valgrind by `make test`. */
#include <arpa/inet.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtserver.h"

#define CHECK(cond, what) do { if (!(cond)) { fprintf(stderr, "C host: FAIL: %s\n", what); exit(1); } } while (0)

typedef struct host {
  rt_server *srv;
  int port;
  atomic_int step;     /* client -> host: 1 publish to the topic, 2 stop */
  atomic_int acked;
  int requests, messages, closes, freed;
  int last_close_code;
} host;

/* ---- the app: plain C callbacks ----------------------------------------------------------- */

static void on_http(rt_server *srv, void *data, uint64_t conn, const rt_http_req *req,
                    const char *peer) {
  host *h = data;
  h->requests++;
  if (strcmp(req->path, "/ws") == 0 && req->upgrade) {
    static const char *const protocols[] = {"echo"};
    if (rt_websocket_accept(srv, conn, protocols, 1) == 0)
      CHECK(rt_websocket_subscribe(srv, conn, "news") == 0, "subscribe the WebSocket");
    return;
  }
  if (strcmp(req->path, "/hello") == 0) {
    const char *agent = rt_http_req_header(req, "user-agent");
    char body[256];
    int n = snprintf(body, sizeof body, "hello %s from C (%s)\n", req->query,
                     agent ? agent : "no agent");
    static const char *const headers[] = {"content-type", "text/plain"};
    CHECK(rt_http_respond(srv, conn, 200, headers, 1, body, (size_t)n) == 0, "respond");
    /* The request is answered: a second answer finds nothing to answer. */
    CHECK(rt_http_respond(srv, conn, 200, NULL, 0, "", 0) < 0, "second answer refused");
    return;
  }
  rt_http_respond(srv, conn, 404, NULL, 0, "no such page\n", 13);
}

static void on_ws_message(rt_server *srv, void *data, uint64_t conn, const uint8_t *msg,
                          size_t len, int binary) {
  host *h = data;
  h->messages++;
  char reply[256];
  int n = snprintf(reply, sizeof reply, "echo: %.*s", (int)len, (const char *)msg);
  CHECK(rt_websocket_send(srv, conn, reply, (size_t)n, binary) == 0, "echo send");
  if (len == 3 && memcmp(msg, "bye", 3) == 0)
    CHECK(rt_websocket_close(srv, conn, 4000, "done") == 0, "close");
}

static void on_ws_close(rt_server *srv, void *data, uint64_t conn, int code, const char *reason) {
  host *h = data;
  h->closes++;
  h->last_close_code = code;
  /* The id of a connection that is gone finds nothing, cleanly. */
  CHECK(rt_websocket_send(srv, conn, "late", 4, 0) < 0, "send to a gone connection fails");
}

static void on_free(rt_server *srv, void *data) {
  host *h = data;
  h->freed++;
}

/* ---- the client ------------------------------------------------------------------------- */

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect");
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  CHECK(write(fd, p, n) == (ssize_t)n, "client write");
}

/* Reads up to the end of an HTTP head (and the body when it is short and already there). */
static void read_head(int fd, char *buf, size_t cap) {
  size_t got = 0;
  buf[0] = 0;
  while (!strstr(buf, "\r\n\r\n")) {
    CHECK(got + 1 < cap, "response too long");
    ssize_t r = recv(fd, buf + got, 1, 0);
    CHECK(r == 1, "response read");
    buf[++got] = 0;
  }
}

static void read_body(int fd, char *buf, size_t n) {
  CHECK(recv(fd, buf, n, MSG_WAITALL) == (ssize_t)n, "body read");
  buf[n] = 0;
}

static void send_frame(int fd, int opcode, const char *text) {
  unsigned char f[256];
  size_t n = strlen(text);
  const unsigned char mask[4] = {9, 8, 7, 6};
  f[0] = (unsigned char)(0x80 | opcode);
  f[1] = (unsigned char)(0x80 | n);
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < n; i++) f[6 + i] = (unsigned char)text[i] ^ mask[i % 4];
  send_all(fd, (const char *)f, 6 + n);
}

/* One small unmasked server frame: its opcode, its payload in out. */
static int read_frame(int fd, char *out, size_t outlen) {
  unsigned char hdr[2];
  CHECK(recv(fd, hdr, 2, MSG_WAITALL) == 2, "frame header");
  size_t n = hdr[1] & 0x7f;
  CHECK(n < outlen && n < 126, "small frame");
  CHECK(recv(fd, out, n, MSG_WAITALL) == (ssize_t)n, "frame payload");
  out[n] = 0;
  return hdr[0] & 0x0f;
}

static void wait_ack(host *h, int step) {
  while (atomic_load(&h->acked) < step) usleep(1000);
}

static void *client(void *arg) {
  host *h = arg;
  char buf[2048], body[256];

  /* An HTTP route served by C. */
  int fd = dial(h->port);
  const char *get = "GET /hello?world HTTP/1.1\r\nHost: x\r\nUser-Agent: host-test\r\n\r\n";
  send_all(fd, get, strlen(get));
  read_head(fd, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0, "200 from the C route");
  const char *expect = "hello world from C (host-test)\n";
  read_body(fd, body, strlen(expect));
  CHECK(strcmp(body, expect) == 0, "the C route's body");
  /* Keep-alive: a second request on the same connection, to a path with no route. */
  send_all(fd, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 31);
  read_head(fd, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 404", 12) == 0, "404 from the C app");
  close(fd);

  /* A WebSocket echo, with the subprotocol the host speaks. */
  fd = dial(h->port);
  const char *up = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: chat, echo\r\n\r\n";
  send_all(fd, up, strlen(up));
  read_head(fd, buf, sizeof buf);
  CHECK(strstr(buf, "101 Switching") && strstr(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "101 + accept key");
  CHECK(strstr(buf, "Sec-WebSocket-Protocol: echo"), "the subprotocol the host chose");
  send_frame(fd, 1, "hi");
  CHECK(read_frame(fd, buf, sizeof buf) == 1 && strcmp(buf, "echo: hi") == 0, "echo of a text message");
  send_frame(fd, 2, "raw");
  CHECK(read_frame(fd, buf, sizeof buf) == 2 && strcmp(buf, "echo: raw") == 0, "echo of a binary message");
  atomic_store(&h->step, 1);  /* the host publishes to the topic the connection joined */
  CHECK(read_frame(fd, buf, sizeof buf) == 1 && strcmp(buf, "from C") == 0, "topic publish from C");
  send_frame(fd, 1, "bye");
  CHECK(read_frame(fd, buf, sizeof buf) == 1 && strcmp(buf, "echo: bye") == 0, "echo before close");
  int op = read_frame(fd, buf, sizeof buf);
  CHECK(op == 8 && (((unsigned char)buf[0] << 8) | (unsigned char)buf[1]) == 4000, "close 4000 from C");
  /* Finish the close handshake as a client does: the same code back, then the server hangs up. */
  send_frame(fd, 8, "\x0f\xa0");
  CHECK(recv(fd, buf, 1, 0) == 0, "the server ends the connection after the handshake");
  close(fd);

  /* A gRPC client's preface gets no HTTP/2 from a host that serves no gRPC. */
  fd = dial(h->port);
  send_all(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  read_head(fd, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 505", 12) == 0, "HTTP/2 preface answered 505 in HTTP/1.1");
  close(fd);

  atomic_store(&h->step, 2);
  wait_ack(h, 2);
  return NULL;
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  host *h = w->data;
  int step = atomic_load(&h->step), acked = atomic_load(&h->acked);
  if (step == acked) return;
  if (step == 1) {
    CHECK(rt_server_publish(h->srv, "news", "from C", 6) == 1, "publish reaches the WebSocket");
  } else if (step == 2) {
    rt_server_stop(h->srv);
    ev_timer_stop(loop, w);
  }
  atomic_store(&h->acked, step);
}

int main(void) {
  host h = {0};
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  rt_config cfg;
  rt_config_init(&cfg);
  cfg.log_level = RT_LOG_WARN;
  char err[512];
  h.srv = rt_server_new(loop, &cfg, err, sizeof err);
  CHECK(h.srv, err);
  const rt_app app = {
      .data = &h,
      .http_request = on_http,
      .ws_message = on_ws_message,
      .ws_close = on_ws_close,
      .free = on_free,
  };
  rt_server_set_app(h.srv, &app);
  CHECK(rt_server_lua(h.srv) == NULL, "no Lua state in a host that loads no script");
  CHECK(rt_server_listen(h.srv, "127.0.0.1", 0, err, sizeof err) == 0, err);
  h.port = rt_server_port(h.srv);

  ev_timer poll;
  ev_timer_init(&poll, on_poll, 0.005, 0.005);
  poll.data = &h;
  ev_timer_start(loop, &poll);
  pthread_t t;
  pthread_create(&t, NULL, client, &h);
  ev_run(loop, 0);
  pthread_join(t, NULL);
  CHECK(rt_server_connections(h.srv) == 0, "no connection left after stop");
  if (h.requests != 3 || h.messages != 3 || h.closes != 1 || h.last_close_code != 4000) {
    fprintf(stderr, "C host: requests %d messages %d closes %d close code %d\n", h.requests,
            h.messages, h.closes, h.last_close_code);
    CHECK(0, "every request and message reached the C callbacks");
  }
  rt_server_free(h.srv);
  CHECK(h.freed == 1, "the app's free ran once");
  ev_loop_destroy(loop);
  printf("C host: OK (HTTP route, WebSocket echo, topic publish, close, stop, free; no Lua)\n");
  return 0;
}
