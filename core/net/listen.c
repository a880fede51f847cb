#include "listen.h"

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

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    snprintf(out, outlen, "%s:%d", host, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    snprintf(out, outlen, "[%s]:%d", host, port);
  } else {
    snprintf(out, outlen, "unix");
  }
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_listener *l = w->data;
  ev_io_start(loop, &l->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  rt_listener *l = w->data;
  rt_server *srv = l->srv;
  /* A bounded batch per wake-up keeps one busy listener from starving everyone else. */
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        rt_warn(&srv->log, "accept: %s; pausing accepts for 100 ms", strerror(errno));
        ev_io_stop(loop, &l->io);
        ev_timer_set(&l->retry, 0.1, 0);
        ev_timer_start(loop, &l->retry);
      }
      return;
    }
    if (srv->stopping || (srv->cfg.max_connections && srv->nconns >= srv->cfg.max_connections)) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char peer[64];
    format_peer(&ss, peer, sizeof peer);
    rt_conn *c = rt_conn_new(srv, fd, peer);
    if (!c) {
      close(fd);
      continue;
    }
    l->on_accept(c, l->data);
  }
}

static rt_listener *listen_one(rt_server *srv, const struct addrinfo *ai, char *err, size_t errlen) {
  char where[80];
  format_peer((const struct sockaddr_storage *)(const void *)ai->ai_addr, where, sizeof where);
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket for %s: %s", where, strerror(errno));
    return NULL;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* --workers: every worker binds the same port and the kernel spreads connections. */
  if (srv->cfg.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  /* "::" should not also claim the IPv4 port: we bind 0.0.0.0 separately when asked. */
  if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot listen on %s: %s%s", where, strerror(e),
             e == EADDRINUSE ? " (another process uses this port; pick one with --port)" : "");
    close(fd);
    return NULL;
  }
  if (listen(fd, 1024) < 0) {
    snprintf(err, errlen, "listen on %s: %s", where, strerror(errno));
    close(fd);
    return NULL;
  }
  rt_listener *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
  l->srv = srv;
  l->fd = fd;
  ev_io_init(&l->io, on_accept, fd, EV_READ);
  ev_timer_init(&l->retry, on_retry, 0.1, 0);
  l->io.data = l->retry.data = l;
  return l;
}

rt_listener *rt_listen(rt_server *srv, const char *host, int port,
                       void (*accept_cb)(rt_conn *, void *), void *data,
                       char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char portstr[16];
  if (port < 0 || port > 65535) {
    snprintf(err, errlen, "port %d is out of range (0-65535)", port);
    return NULL;
  }
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(host, portstr, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve listen address '%s': %s", host, gai_strerror(rc));
    return NULL;
  }
  rt_listener *first = NULL, *last = NULL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    /* With port 0 every address must share the port the first one got. */
    if (first && port == 0) {
      if (ai->ai_family == AF_INET) ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(first->port);
      else ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(first->port);
    }
    rt_listener *l = listen_one(srv, ai, err, errlen);
    if (!l) {
      while (first) {
        rt_listener *n = first->next;
        close(first->fd);
        free(first);
        first = n;
      }
      freeaddrinfo(res);
      return NULL;
    }
    l->on_accept = accept_cb;
    l->data = data;
    ev_io_start(srv->loop, &l->io);
    if (last) last->next = l;
    else first = l;
    last = l;
  }
  freeaddrinfo(res);
  if (!first) snprintf(err, errlen, "no address to listen on for '%s'", host);
  return first;
}

void rt_listener_close(rt_listener *l) {
  ev_io_stop(l->srv->loop, &l->io);
  ev_timer_stop(l->srv->loop, &l->retry);
  close(l->fd);
  free(l);
}
