/*
 * tcp_echo — the baseline of `make bench`: a single-threaded libev TCP server that
 * writes back every byte it reads, with no framing at all. What rtserver does beyond
 * this (HTTP upgrade, WebSocket framing, a Lua call per message) is what the echo
 * ratio prices.
 *
 * usage: tcp_echo [--listen ADDR] [--port N]   (port 0 picks a free one)
 * Prints "tcp_echo listening on ADDR:PORT" once it accepts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)

struct echo_conn {
    ev_io io;                         /* first: the watcher pointer is the conn */
    uint8_t *pending;                 /* what a short write left; reading waits for it */
    size_t off, len;
};

struct echo_server {
    struct ev_loop *loop;
    ev_io listen_io;
    uint8_t buf[BUF_SIZE];            /* one read buffer: a conn keeps only leftovers */
};

static void conn_free(struct ev_loop *loop, struct echo_conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->pending);
    free(c);
}

static void conn_watch(struct ev_loop *loop, struct echo_conn *c, int events)
{
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Sends p[0..n); keeps what the socket did not take and stops reading until it has
 * left, so a client that does not read cannot make the server buffer without bound. */
static int conn_send(struct ev_loop *loop, struct echo_conn *c, const uint8_t *p, size_t n)
{
    ssize_t w = send(c->io.fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN)
        return -1;
    if (w < 0)
        w = 0;
    if ((size_t)w == n)
        return 0;
    c->pending = malloc(n - (size_t)w);
    if (!c->pending)
        return -1;
    memcpy(c->pending, p + w, n - (size_t)w);
    c->off = 0;
    c->len = n - (size_t)w;
    conn_watch(loop, c, EV_WRITE);
    return 0;
}

static int conn_drain(struct ev_loop *loop, struct echo_conn *c)
{
    while (c->off < c->len) {
        ssize_t w = send(c->io.fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)w;
    }
    free(c->pending);
    c->pending = NULL;
    c->off = c->len = 0;
    conn_watch(loop, c, EV_READ);
    return 0;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct echo_server *s = ev_userdata(loop);
    struct echo_conn *c = (struct echo_conn *)w;
    if (revents & EV_WRITE) {
        if (conn_drain(loop, c) < 0)
            conn_free(loop, c);
        return;
    }
    ssize_t r = recv(w->fd, s->buf, sizeof s->buf, 0);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0 || conn_send(loop, c, s->buf, (size_t)r) < 0)
        conn_free(loop, c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    int one = 1;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                perror("tcp_echo: accept");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct echo_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static int listen_on(const char *addr, int port, char *bound, size_t boundlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        close(fd);
        return -1;
    }
    snprintf(bound, boundlen, "%s:%d", addr, ntohs(sa.sin_port));
    return fd;
}

int main(int argc, char **argv)
{
    static struct echo_server server;
    const char *addr = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen"))
            addr = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char bound[64];
    int fd = listen_on(addr, port, bound, sizeof bound);
    if (fd < 0) {
        perror("tcp_echo: listen");
        return 1;
    }
    server.loop = ev_default_loop(EVBACKEND_EPOLL);
    ev_set_userdata(server.loop, &server);
    ev_io_init(&server.listen_io, accept_cb, fd, EV_READ);
    ev_io_start(server.loop, &server.listen_io);
    printf("tcp_echo listening on %s\n", bound);
    fflush(stdout);
    ev_run(server.loop, 0);
    return 0;
}
