#include "tnet.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "http/http1.h"

const uint8_t tws_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

void tsrv_config(rt_config *cfg) {
  rt_config_init(cfg);
  cfg->lua_dir = "lua";
  cfg->log_level = getenv("RT_TEST_LOG") ? RT_LOG_DEBUG : RT_LOG_OFF;
}

int tsrv_start(tsrv *t, const rt_config *cfg) {
  rt_config def;
  memset(t, 0, sizeof *t);
  if (!cfg) {
    tsrv_config(&def);
    cfg = &def;
  }
  t->loop = ev_loop_new(EVFLAG_AUTO);
  if (!t->loop) {
    snprintf(t->err, sizeof t->err, "ev_loop_new failed");
    return -1;
  }
  t->srv = rt_server_new(t->loop, cfg, t->err, sizeof t->err);
  if (!t->srv) {
    ev_loop_destroy(t->loop);
    t->loop = NULL;
    return -1;
  }
  return 0;
}

void tsrv_stop(tsrv *t) {
  if (t->srv) rt_server_free(t->srv);
  if (t->loop) ev_loop_destroy(t->loop);
  t->srv = NULL;
  t->loop = NULL;
}

const char *tsrv_temp_script(const char *name_hint, const char *source) {
  static char path[256];
  snprintf(path, sizeof path, "/tmp/rt-test-%s-XXXXXX.lua", name_hint ? name_hint : "app");
  int fd = mkstemps(path, 4);
  if (fd < 0) return NULL;
  size_t n = strlen(source);
  ssize_t w = write(fd, source, n);
  close(fd);
  if (w != (ssize_t)n) {
    unlink(path);
    return NULL;
  }
  return path;
}

int tsrv_load_source(tsrv *t, const char *source) {
  const char *path = tsrv_temp_script("app", source);
  if (!path) {
    snprintf(t->err, sizeof t->err, "cannot write a temp script");
    return -1;
  }
  char copy[256];
  snprintf(copy, sizeof copy, "%s", path);
  int rc = rt_server_load_app(t->srv, copy, t->err, sizeof t->err);
  unlink(copy);
  return rc;
}

int tsock_pair(int *server_fd, int *client_fd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    fcntl(sv[i], F_SETFD, FD_CLOEXEC);
  }
  *server_fd = sv[0];
  *client_fd = sv[1];
  return 0;
}

void tsock_small_buffers(int fd, int bytes) {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

void tloop_spin(struct ev_loop *loop, int n) {
  for (int i = 0; i < n; i++) ev_run(loop, EVRUN_NOWAIT);
}

int tclient_write(struct ev_loop *loop, int fd, const void *p, size_t n) {
  const uint8_t *d = p;
  double deadline = ev_time() + 5;
  while (n) {
    /* MSG_NOSIGNAL: a server that already closed must fail the write, not kill the test */
    ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) return -2;
      if (errno != EAGAIN || ev_time() > deadline) return -1;
      tloop_spin(loop, 1);
      usleep(200);
      continue;
    }
    d += w;
    n -= (size_t)w;
  }
  return 0;
}

size_t tclient_read(struct ev_loop *loop, int fd, uint8_t *out, size_t want, double timeout, int *eof) {
  size_t got = 0;
  double deadline = ev_time() + timeout;
  if (eof) *eof = 0;
  while (got < want) {
    ssize_t r = read(fd, out + got, want - got);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (eof) *eof = 1;
      break;
    }
    if (ev_time() > deadline) break;
    tloop_spin(loop, 1);
    usleep(100);
  }
  return got;
}

size_t tclient_read_head(struct ev_loop *loop, int fd, char *out, size_t cap, double timeout) {
  size_t got = 0;
  double deadline = ev_time() + timeout;
  /* Byte by byte, so nothing after the head (a first frame) is taken. */
  while (got + 1 < cap && ev_time() <= deadline) {
    ssize_t r = read(fd, out + got, 1);
    if (r == 1) {
      got++;
      out[got] = 0;
      if (got >= 4 && memcmp(out + got - 4, "\r\n\r\n", 4) == 0) return got;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) break;
    tloop_spin(loop, 1);
    usleep(100);
  }
  return 0;
}

rt_conn *tconn_http(tsrv *t, int *client_fd) {
  int sfd;
  if (tsock_pair(&sfd, client_fd) < 0) return NULL;
  rt_conn *c = rt_conn_new(t->srv, sfd, "test-peer");
  if (!c) {
    close(sfd);
    close(*client_fd);
    return NULL;
  }
  rt_http1_start(c);
  return c;
}

rt_conn *tconn_ws(tsrv *t, const char *path, int *client_fd) {
  rt_conn *c = tconn_http(t, client_fd);
  if (!c) return NULL;
  char req[512], head[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path);
  if (tclient_write(t->loop, *client_fd, req, (size_t)n) < 0) return NULL;
  size_t hl = tclient_read_head(t->loop, *client_fd, head, sizeof head, 2.0);
  if (hl == 0 || strncmp(head, "HTTP/1.1 101 ", 13) != 0) {
    fprintf(stderr, "tconn_ws: no 101 for %s: %s\n", path, hl ? head : "(nothing)");
    return NULL;
  }
  return c;
}

size_t tws_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                 const uint8_t mask[4]) {
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
  uint8_t mbit = mask ? 0x80 : 0;
  if (len < 126) {
    out[h++] = (uint8_t)(mbit | len);
  } else if (len <= 0xffff) {
    out[h++] = mbit | 126;
    out[h++] = (uint8_t)(len >> 8);
    out[h++] = (uint8_t)len;
  } else {
    out[h++] = mbit | 127;
    for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  if (mask) {
    memcpy(out + h, mask, 4);
    h += 4;
  }
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) out[h + i] = mask ? (uint8_t)(p[i] ^ mask[i & 3]) : p[i];
  return h + len;
}

size_t tws_parse(const uint8_t *p, size_t n, tws_in *f) {
  if (n < 2) return 0;
  size_t h = 2, len = p[1] & 0x7f;
  f->fin = p[0] >> 7;
  f->opcode = p[0] & 0x0f;
  f->masked = p[1] >> 7;
  if (len == 126) {
    if (n < 4) return 0;
    len = (size_t)p[2] << 8 | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    h = 10;
  }
  if (f->masked) h += 4;  /* a server must not mask; tests check f->masked */
  if (n < h || n - h < len) return 0;
  f->len = len;
  f->payload = p + h;
  return h + len;
}

int tws_read_frame(struct ev_loop *loop, int fd, uint8_t *buf, size_t cap, tws_in *f, double timeout) {
  size_t have = 0, need = 2, total;
  int eof = 0;
  /* Read exactly the header, then exactly the payload: never into the next frame. */
  while ((total = tws_parse(buf, have, f)) == 0) {
    if (have >= 2) {
      size_t l7 = buf[1] & 0x7f, h = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (buf[1] >> 7 ? 4 : 0);
      need = h;
      if (have >= h) {
        size_t len = l7;
        if (l7 == 126) len = (size_t)buf[2] << 8 | buf[3];
        else if (l7 == 127)
          for (int i = 0; i < 8; i++) len = (i ? len << 8 : 0) | buf[2 + i];
        need = h + len;
      }
    }
    if (need > cap) return 0;
    size_t got = tclient_read(loop, fd, buf + have, need - have, timeout, &eof);
    have += got;
    if (have < need) return 0;
  }
  return 1;
}

int tws_close_code(const tws_in *f) {
  if (f->opcode != 8 || f->len < 2) return -1;
  return f->payload[0] << 8 | f->payload[1];
}
