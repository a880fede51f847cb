/* Outgoing TCP connections (see dial.h). */
#include "dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_int.h"

struct rt_dial {
  rt_server *srv;
  rt_dial_cb cb;
  void *ud;
  struct addrinfo *ai, *ai_next;
  int fd;
  int failed;                 /* the timer reports why, not the deadline */
  double timeout;
  ev_io io;
  ev_timer timer;
  char peer[64];
  char why[240];
};

static void dial_free(rt_dial *d) {
  ev_io_stop(d->srv->loop, &d->io);
  ev_timer_stop(d->srv->loop, &d->timer);
  if (d->fd >= 0) close(d->fd);
  if (d->ai) freeaddrinfo(d->ai);
  free(d);
}

static void finish(rt_dial *d, rt_conn *c, const char *err) {
  rt_dial_cb cb = d->cb;
  void *ud = d->ud;
  char why[sizeof d->why];
  snprintf(why, sizeof why, "%s", err ? err : "");  /* err may point into d */
  dial_free(d);
  cb(ud, c, err ? why : NULL);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)sa;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(out, outlen, "%s:%d", host, ntohs(a->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    snprintf(out, outlen, "[%s]:%d", host, ntohs(a->sin6_port));
  } else {
    snprintf(out, outlen, "?");
  }
}

/* Failures are reported from the loop: the timer fires at once. */
static void fail_soon(rt_dial *d) {
  d->failed = 1;
  ev_timer_stop(d->srv->loop, &d->timer);
  ev_timer_set(&d->timer, 0, 0);
  ev_timer_start(d->srv->loop, &d->timer);
}

static void try_next(rt_dial *d) {
  while (d->ai_next) {
    struct addrinfo *a = d->ai_next;
    d->ai_next = a->ai_next;
    format_addr(a->ai_addr, d->peer, sizeof d->peer);
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      snprintf(d->why, sizeof d->why, "socket for %s: %s", d->peer, strerror(errno));
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
      /* Even an immediate success goes through the watcher: one path for both. */
      d->fd = fd;
      ev_io_set(&d->io, fd, EV_WRITE);
      ev_io_start(d->srv->loop, &d->io);
      return;
    }
    snprintf(d->why, sizeof d->why, "connect to %s: %s", d->peer, strerror(errno));
    close(fd);
  }
  fail_soon(d);
}

static void on_connectable(struct ev_loop *loop, ev_io *w, int revents) {
  rt_dial *d = w->data;
  int err = 0, one = 1;
  socklen_t len = sizeof err;
  ev_io_stop(loop, &d->io);
  if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) {
    snprintf(d->why, sizeof d->why, "connect to %s: %s", d->peer, strerror(err));
    close(d->fd);
    d->fd = -1;
    try_next(d);
    return;
  }
  setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  rt_conn *c = rt_conn_new(d->srv, d->fd, d->peer);
  if (!c) {
    snprintf(d->why, sizeof d->why, "out of memory connecting to %s", d->peer);
    finish(d, NULL, d->why);
    return;
  }
  d->fd = -1;  /* the connection owns it now */
  finish(d, c, NULL);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_dial *d = w->data;
  if (!d->failed) {
    char why[sizeof d->why];
    snprintf(why, sizeof why, "connect to %s timed out after %.3g s", d->peer, d->timeout);
    snprintf(d->why, sizeof d->why, "%s", why);
  }
  finish(d, NULL, d->why);
}

rt_dial *rt_dial_start(rt_server *srv, const char *host, int port, double timeout,
                       rt_dial_cb cb, void *ud) {
  rt_dial *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->srv = srv;
  d->cb = cb;
  d->ud = ud;
  d->fd = -1;
  d->timeout = timeout;
  snprintf(d->peer, sizeof d->peer, "%.50s:%d", host, port);
  ev_io_init(&d->io, on_connectable, -1, EV_WRITE);
  d->io.data = d;
  ev_timer_init(&d->timer, on_timer, timeout, 0);
  d->timer.data = d;
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int rc = getaddrinfo(host, service, &hints, &d->ai);
  if (rc != 0) {
    d->ai = NULL;
    snprintf(d->why, sizeof d->why, "cannot resolve %.100s: %s", host, gai_strerror(rc));
    fail_soon(d);
    return d;
  }
  d->ai_next = d->ai;
  ev_timer_start(srv->loop, &d->timer);
  try_next(d);
  return d;
}

void rt_dial_cancel(rt_dial *d) {
  if (d) dial_free(d);
}
