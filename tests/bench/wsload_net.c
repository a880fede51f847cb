/*
 * wsload_net.c — wsload's sockets: connects paced under the listen backlog, the HTTP
 * upgrade, reads into one shared buffer with frames parsed in place, and writes that
 * leave in one send() per connection per read. What the bytes mean is the modes'
 * business (wsload.c, wsload_stomp.c); this file reports open, frame and close.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsload_int.h"

/* The RFC 6455 sample key: its accept value is known, so no SHA-1 is needed here. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

uint32_t rng_next(struct bench *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (uint32_t)b->rng;
}

void note_error(struct bench *b, const char *what, int err)
{
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s: %s", what, strerror(err));
}

/* ---- output ------------------------------------------------------------------------ */

static ssize_t io_send(struct conn *c, const void *p, size_t n)
{
    return c->ssl ? tls_send(c, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
}

static int buf_append(uint8_t **buf, uint32_t *len, uint32_t *cap, const uint8_t *p, size_t n)
{
    if (*len + n > *cap) {
        uint32_t cap2 = *cap ? *cap : 256;
        while (cap2 < *len + n)
            cap2 *= 2;
        uint8_t *nb = realloc(*buf, cap2);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = cap2;
    }
    memcpy(*buf + *len, p, n);
    *len += (uint32_t)n;
    return 0;
}

static void conn_want(struct bench *b, struct conn *c, int events)
{
    if (c->events == events)
        return;
    ev_io_stop(b->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(b->loop, &c->io);
    c->events = events;
}

/* Sends p[0..n) now if nothing is queued; a short write queues the rest and arms
 * EV_WRITE, so order is kept and no byte waits for a later read. */
void conn_send(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
    if (c->state == S_CLOSED || !n)
        return;
    if (c->out_len == c->out_off) {
        ssize_t w = io_send(c, p, n);
        if (w < 0 && errno != EAGAIN) {
            note_error(b, "send", errno);
            conn_close(b, c);
            return;
        }
        if (w < 0)
            w = 0;
        p += w;
        n -= (size_t)w;
        if (!n)
            return;
        c->out_off = c->out_len = 0;
    }
    if (buf_append(&c->out, &c->out_len, &c->out_cap, p, n) < 0) {
        conn_close(b, c);
        return;
    }
    conn_want(b, c, EV_READ | EV_WRITE);
}

static void conn_drain(struct bench *b, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = io_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN)
                return;
            note_error(b, "send", errno);
            conn_close(b, c);
            return;
        }
        c->out_off += (uint32_t)w;
    }
    c->out_off = c->out_len = 0;
    conn_want(b, c, EV_READ);
}

/* The scratch write buffer holds output for one connection at a time. */
uint8_t *wbuf_space(struct bench *b, struct conn *c, size_t n)
{
    if (b->wlen + n > WBUF_SIZE) {
        conn_send(b, c, b->wbuf, b->wlen);
        b->wlen = 0;
    }
    return b->wbuf + b->wlen;
}

void wbuf_flush(struct bench *b, struct conn *c)
{
    if (b->wlen)
        conn_send(b, c, b->wbuf, b->wlen);
    b->wlen = 0;
}

/* ---- connection attempts ----------------------------------------------------------- */

static void start_connects(struct bench *b);

static void attempt_done(struct bench *b)
{
    b->connecting--;
    start_connects(b);
}

static void conn_opened(struct bench *b, struct conn *c)
{
    c->state = S_OPEN;
    b->open++;
    on_open(b, c);
    attempt_done(b);
}

/* ---- incoming ---------------------------------------------------------------------- */

/* Consumes the HTTP response head; returns its length, 0 if incomplete, -1 if refused. */
static long parse_handshake(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n > HDR_MAX ? -1 : 0;
    size_t hl = (size_t)(end - p) + 4;
    if (hl < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0 || !memmem(p, hl, WS_ACCEPT, 28)) {
        if (!b->first_error[0])
            snprintf(b->first_error, sizeof b->first_error, "handshake refused: %.*s",
                     (int)(memchr(p, '\r', hl) ? (const uint8_t *)memchr(p, '\r', hl) - p : 0),
                     (const char *)p);
        return -1;
    }
    if (memmem(p, hl, "permessage-deflate", 18)) {
        c->deflate = 1;
        b->deflate_conns++;
    }
    conn_opened(b, c);
    return (long)hl;
}

/* Parses what is in p; returns how many bytes were used, or -1 to drop the conn. */
static long consume(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    if (c->state == S_HANDSHAKE) {
        long hl = parse_handshake(b, c, p, n);
        if (hl <= 0)
            return hl;
        off = (size_t)hl;
    }
    if (b->o.transport == T_TCP) {     /* STOMP straight on the stream */
        long used = c->state == S_OPEN ? stomp_consume(b, c, p + off, n - off) : 0;
        return used < 0 ? -1 : (long)off + used;
    }
    while (off < n && c->state == S_OPEN) {
        struct frame f;
        long fl = ws_parse(p + off, n - off, &f);
        if (fl < 0)
            return -1;
        if (fl == 0)
            break;
        on_frame(b, c, &f);
        off += (size_t)fl;
    }
    return (long)off;
}

static void conn_read(struct bench *b, struct conn *c)
{
    for (;;) {
        size_t have = c->in_len;
        if (have)
            memcpy(b->rbuf, c->in, have);
        ssize_t r = c->ssl ? tls_recv(c, b->rbuf + have, RBUF_SIZE - have)
                           : recv(c->fd, b->rbuf + have, RBUF_SIZE - have, 0);
        if (r <= 0) {
            if (r < 0 && errno == EAGAIN)
                break;
            if (r < 0)
                note_error(b, "recv", errno);
            conn_close(b, c);
            return;
        }
        b->now_ns = mono_ns();
        if (b->phase == P_MEASURE)
            b->bytes_in += (uint64_t)r;
        size_t total = have + (size_t)r;
        long used = consume(b, c, b->rbuf, total);
        if (used < 0) {
            conn_close(b, c);
            break;
        }
        c->in_len = 0;
        if ((size_t)used < total &&
            buf_append(&c->in, &c->in_len, &c->in_cap, b->rbuf + used, total - (size_t)used)) {
            conn_close(b, c);
            break;
        }
        /* TLS hands out a record at a time: read on until it wants more from the socket. */
        if (((size_t)r < RBUF_SIZE - have && !c->ssl) || c->state == S_CLOSED)
            break;
    }
    if (c->state != S_CLOSED)
        wbuf_flush(b, c);
    b->wlen = 0;
}

/* ---- connections ------------------------------------------------------------------- */

void conn_close(struct bench *b, struct conn *c)
{
    if (c->state == S_CLOSED || c->state == S_UNUSED)
        return;
    int was = c->state;
    ev_io_stop(b->loop, &c->io);
    if (c->ssl)
        tls_end(c);
    close(c->fd);
    c->state = S_CLOSED;
    c->out_off = c->out_len = c->in_len = 0;
    if (was == S_OPEN) {
        b->closed++;
        b->open--;
        on_closed(b, c);
    } else {
        b->failed++;
        attempt_done(b);
    }
}

static void send_handshake(struct bench *b, struct conn *c)
{
    const char *path = c->role == R_SUB   ? b->o.sub_path
                       : c->role == R_PUB ? b->o.pub_path
                                          : b->o.path;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s\r\n",
                     path, b->o.host, b->o.port,
                     b->o.stomp ? "Sec-WebSocket-Protocol: v12.stomp\r\n" : "",
                     b->o.deflate ? deflate_offer : "");
    c->state = S_HANDSHAKE;
    conn_want(b, c, EV_READ);
    conn_send(b, c, (const uint8_t *)req, (size_t)n);
}

/* The TCP connection is up (and TLS, with --tls): the upgrade, or open at once. */
static void transport_ready(struct bench *b, struct conn *c)
{
    if (b->o.transport != T_WS) {
        conn_want(b, c, EV_READ);
        conn_opened(b, c);
        wbuf_flush(b, c);
    } else {
        send_handshake(b, c);
    }
}

static void tls_step(struct bench *b, struct conn *c)
{
    int events = 0, r = tls_handshake(c, &events);
    if (r < 0) {
        note_error(b, "TLS handshake", EPROTO);
        conn_close(b, c);
    } else if (r == 0) {
        conn_want(b, c, events);
    } else {
        c->state = S_HANDSHAKE;
        transport_ready(b, c);
    }
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct bench *b = ev_userdata(loop);
    struct conn *c = (struct conn *)w;
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            note_error(b, "connect", err);
            conn_close(b, c);
            return;
        }
        if (b->o.tls) {
            c->state = S_TLS;
            if (tls_start(c) < 0) {
                note_error(b, "TLS", ENOMEM);
                conn_close(b, c);
                return;
            }
            tls_step(b, c);
        } else {
            transport_ready(b, c);
        }
        return;
    }
    if (c->state == S_TLS) {
        tls_step(b, c);
        return;
    }
    if (revents & EV_WRITE)
        conn_drain(b, c);
    if ((revents & EV_READ) && c->state != S_CLOSED)
        conn_read(b, c);
}

/* Connection i binds to 127.0.0.2 + i % src_ips: each source address has its own
 * ephemeral ports, so tens of thousands of connections to one port stay possible.
 * IP_BIND_ADDRESS_NO_PORT leaves the port choice to connect(), which knows the peer. */
static int bind_source(struct bench *b, int fd, int i)
{
    if (b->o.src_ips <= 0)
        return 0;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % b->o.src_ips));
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

/* Connections 0..conns-1 are subscribers (fanout), consumers (queue) or echo clients;
 * those after are the publisher (fanout) or the producers (queue). */
static enum role role_of(const struct bench *b, int i)
{
    switch (b->o.mode) {
    case M_FANOUT: return i < b->o.conns ? R_SUB : R_PUB;
    case M_QUEUE: return i < b->o.conns ? R_CONS : R_PROD;
    default: return R_ECHO;
    }
}

static void conn_connect(struct bench *b, int i)
{
    struct conn *c = &b->c[i];
    int one = 1;
    c->role = (uint8_t)role_of(b, i);
    c->state = S_CONNECTING;
    b->connecting++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_error(b, "socket", errno);
        c->state = S_CLOSED;
        b->failed++;
        b->connecting--;
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* --sub-ports: subscribers go round the listed ports (nodes), the rest to --port. */
    struct sockaddr_in dst = b->dst;
    if (c->role == R_SUB && b->o.nsub_ports)
        dst.sin_port = htons((uint16_t)b->o.sub_ports[i % b->o.nsub_ports]);
    if (bind_source(b, c->fd, i) < 0 ||
        (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)) {
        note_error(b, "connect", errno);
        close(c->fd);
        c->state = S_CLOSED;
        b->failed++;
        b->connecting--;
        return;
    }
    ev_io_init(&c->io, conn_cb, c->fd, EV_WRITE);
    c->events = EV_WRITE;
    ev_io_start(b->loop, &c->io);
}

/* Keeps at most max_pending handshakes going, so the listen backlog never overflows
 * (a dropped SYN costs a one-second retransmit and would skew every figure). */
static void start_connects(struct bench *b)
{
    while (b->connecting < b->o.max_pending && b->next < b->n)
        conn_connect(b, b->next++);
    if (b->phase == P_CONNECT && b->next == b->n && b->connecting == 0)
        all_connected(b);
}

void conn_connect_all(struct bench *b) { start_connects(b); }

/* Lifts the open-files soft limit to the hard one; says so if it still falls short. */
void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need + 16 > rl.rlim_cur)
        fprintf(stderr, "wsload: %d connections need more than the %llu open files allowed\n",
                need, (unsigned long long)rl.rlim_cur);
}
