/*
 * wsload — the WebSocket load generator behind `make bench`.
 *
 * One libev thread drives every connection, because the generator shares two cores
 * with the server it measures. Bytes are read into one shared buffer and frames are
 * parsed in place; what a connection has to send after a read leaves in one send().
 * Client frames are masked as RFC 6455 asks.
 *
 * Modes (the first argument):
 *   echo    -c N connections to --path, -k messages in flight on each; the latency of
 *           a message comes from the send timestamp it carries in its payload.
 *   raw     the same against a plain TCP echo: no HTTP handshake, and the frames that
 *           come back are our own masked frames.
 *   fanout  -c N subscribers on --sub-path, one publisher on --pub-path. The publisher
 *           keeps at most --window messages not yet seen by every live subscriber, so
 *           the server's per-connection output bound is never the thing measured.
 *   idle    open -c N connections to --path, print READY, hold them until SIGINT/SIGTERM.
 * Every mode ends with one "RESULT key=value ..." line on stdout; run.sh parses it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsload.h"

#define RBUF_SIZE (256 * 1024)
#define WBUF_SIZE (256 * 1024)
#define HDR_MAX 8192                  /* a longer handshake response is an error */
#define CONNECT_TIMEOUT 30            /* seconds for every connection to open */
#define SYNC_TIMEOUT 10               /* seconds for every subscriber to get a probe */

/* The RFC 6455 sample key: its accept value is known, so no SHA-1 is needed here. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

enum mode { M_ECHO, M_RAW, M_FANOUT, M_IDLE };
enum phase { P_CONNECT, P_SYNC, P_WARM, P_MEASURE, P_DONE, P_HOLD };
enum state { S_UNUSED, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSED };
enum role { R_ECHO, R_SUB, R_PUB };

struct conn {
    ev_io io;                         /* first: the watcher pointer is the conn */
    int fd, events;
    uint8_t state, role, got_any, frag_open;
    uint32_t inflight;
    uint64_t frag_ts, frag_seq;       /* from the first frame of a fragmented message */
    uint8_t *in;                      /* the start of a frame not yet complete */
    uint32_t in_len, in_cap;
    uint8_t *out;                     /* what a short write left */
    uint32_t out_off, out_len, out_cap;
};

struct opts {
    enum mode mode;
    const char *host, *path, *sub_path, *pub_path;
    int port, conns, inflight, size, window, src_ips, max_pending, server_pid;
    double duration, warmup;
};

struct bench {
    struct ev_loop *loop;
    struct opts o;
    struct sockaddr_in dst;
    struct conn *c;
    int n, next, connecting, open, failed, closed, alive_subs, synced;
    enum phase phase;
    double t_phase, elapsed, server_cpu0, server_cpu;
    uint64_t now_ns, rng, msgs, sent;
    struct hist lat;
    uint8_t *rbuf, *wbuf, *payload;
    size_t wlen;
    struct conn *pub;
    uint64_t next_seq, done_seq, lost, stalls, published;
    int unsynced;                     /* subscribers closed for never receiving */
    uint32_t *ring;                   /* deliveries per message in the window */
    double last_progress;
    int first_close_code;
    uint64_t text_msgs;               /* we send binary: text coming back is a bug */
    char first_error[160];
    ev_timer tick;
    ev_prepare pub_prep;
    ev_signal sigint, sigterm;
};

static uint32_t rng_next(struct bench *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (uint32_t)b->rng;
}

static void note_error(struct bench *b, const char *what, int err)
{
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s: %s", what, strerror(err));
}

/* ---- output ------------------------------------------------------------------------ */

static void conn_close(struct bench *b, struct conn *c);

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
static void conn_send(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
    if (c->state == S_CLOSED || !n)
        return;
    if (c->out_len == c->out_off) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
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
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
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
static uint8_t *wbuf_space(struct bench *b, struct conn *c, size_t n)
{
    if (b->wlen + n > WBUF_SIZE) {
        conn_send(b, c, b->wbuf, b->wlen);
        b->wlen = 0;
    }
    return b->wbuf + b->wlen;
}

static void wbuf_flush(struct bench *b, struct conn *c)
{
    if (b->wlen)
        conn_send(b, c, b->wbuf, b->wlen);
    b->wlen = 0;
}

/* Queues one binary message stamped with the current time and seq. */
static void send_msg(struct bench *b, struct conn *c, uint64_t seq)
{
    size_t size = (size_t)b->o.size;
    uint8_t *dst = wbuf_space(b, c, size + 14);
    memcpy(b->payload, &b->now_ns, 8);
    memcpy(b->payload + 8, &seq, 8);
    b->wlen += ws_frame(dst, 2, b->payload, size, rng_next(b));
    b->sent++;
}

/* ---- phases ------------------------------------------------------------------------ */

static void start_connects(struct bench *b);

static void set_phase(struct bench *b, enum phase p)
{
    b->phase = p;
    b->t_phase = mono_s();
}

static void reset_stats(struct bench *b)
{
    b->msgs = 0;
    b->published = 0;
    memset(&b->lat, 0, sizeof b->lat);
}

static void print_result(struct bench *b)
{
    const struct opts *o = &b->o;
    double secs = b->elapsed > 0 ? b->elapsed : 1e-9;
    static const char *names[] = {"echo", "raw", "fanout", "idle"};
    printf("RESULT mode=%s conns=%d open=%d failed=%d closed=%d", names[o->mode], o->conns,
           b->open, b->failed, b->closed);
    if (o->mode == M_ECHO || o->mode == M_RAW)
        printf(" inflight=%d size=%d secs=%.3f msgs=%llu msgs_per_s=%.0f", o->inflight, o->size,
               secs, (unsigned long long)b->msgs, b->msgs / secs);
    if (o->mode == M_FANOUT)
        printf(" window=%d size=%d secs=%.3f published=%llu deliveries=%llu"
               " deliveries_per_s=%.0f lost=%llu stalls=%llu unsynced=%d",
               o->window, o->size, secs, (unsigned long long)b->published,
               (unsigned long long)b->msgs, b->msgs / secs, (unsigned long long)b->lost,
               (unsigned long long)b->stalls, b->unsynced);
    if (o->mode != M_IDLE)
        printf(" p50_us=%.1f p99_us=%.1f", hist_pct(&b->lat, 50) / 1e3,
               hist_pct(&b->lat, 99) / 1e3);
    if (o->server_pid && o->mode != M_IDLE && b->server_cpu > 0)
        printf(" server_cpu_pct=%.0f server_cpu_us_per_msg=%.2f", 100 * b->server_cpu / secs,
               b->msgs ? 1e6 * b->server_cpu / (double)b->msgs : 0.0);
    if (b->first_close_code)
        printf(" close_code=%d", b->first_close_code);
    if (b->text_msgs)
        printf(" text_msgs=%llu", (unsigned long long)b->text_msgs);
    printf("\n");
    if (b->first_error[0])
        fprintf(stderr, "wsload: first error: %s\n", b->first_error);
    fflush(stdout);
}

/* Called once every connection attempt has ended one way or the other. */
static void all_connected(struct bench *b)
{
    if (b->o.mode == M_IDLE) {
        set_phase(b, P_HOLD);
        printf("READY open=%d failed=%d\n", b->open, b->failed);
        fflush(stdout);
        return;
    }
    if (b->o.mode == M_FANOUT) {
        if (!b->pub || b->pub->state != S_OPEN) {
            fprintf(stderr, "wsload: the publisher did not connect\n");
            set_phase(b, P_DONE);
            ev_break(b->loop, EVBREAK_ALL);
            return;
        }
        set_phase(b, P_SYNC);
        return;
    }
    set_phase(b, P_WARM);
}

static void attempt_done(struct bench *b)
{
    b->connecting--;
    start_connects(b);
}

/* ---- fan-out bookkeeping ----------------------------------------------------------- */

static void fan_advance(struct bench *b)
{
    uint32_t w = (uint32_t)b->o.window;
    while (b->done_seq + 1 < b->next_seq &&
           b->ring[(b->done_seq + 1) % w] >= (uint32_t)b->alive_subs) {
        b->ring[(b->done_seq + 1) % w] = 0;
        b->done_seq++;
        b->last_progress = mono_s();
    }
}

/* A message that some subscriber never got would stop the window for good: after two
 * seconds without progress, write it off and say so in the result. */
static void fan_check_stall(struct bench *b)
{
    if (b->done_seq + 1 >= b->next_seq || mono_s() - b->last_progress < 2.0)
        return;
    uint32_t *slot = &b->ring[(b->done_seq + 1) % (uint32_t)b->o.window];
    b->lost += *slot < (uint32_t)b->alive_subs ? (uint32_t)b->alive_subs - *slot : 0;
    *slot = 0;
    b->done_seq++;
    b->stalls++;
    b->last_progress = mono_s();
    fan_advance(b);
}

/* Runs before the loop blocks: publishes what the window allows, in one write. */
static void pub_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct bench *b = ev_userdata(loop);
    struct conn *p = b->pub;
    if ((b->phase != P_WARM && b->phase != P_MEASURE) || !p || p->state != S_OPEN)
        return;
    uint64_t outstanding = b->next_seq - 1 - b->done_seq;
    if (outstanding >= (uint64_t)b->o.window)
        return;
    b->now_ns = mono_ns();
    if (outstanding == 0)
        b->last_progress = mono_s();
    for (; outstanding < (uint64_t)b->o.window; outstanding++) {
        b->ring[b->next_seq % (uint32_t)b->o.window] = 0;
        send_msg(b, p, b->next_seq++);
        b->published++;
    }
    wbuf_flush(b, p);
}

/* ---- incoming ---------------------------------------------------------------------- */

static void on_message(struct bench *b, struct conn *c, uint64_t ts, uint64_t seq)
{
    int measuring = b->phase == P_MEASURE;
    if (c->role == R_ECHO) {
        c->inflight--;
        if (measuring) {
            b->msgs++;
            hist_add(&b->lat, b->now_ns - ts);
        }
        if (b->phase != P_DONE) {
            send_msg(b, c, 0);
            c->inflight++;
        }
        return;
    }
    if (c->role != R_SUB)
        return;
    if (!c->got_any) {
        c->got_any = 1;
        b->synced++;
    }
    if (measuring) {
        b->msgs++;
        hist_add(&b->lat, b->now_ns - ts);
    }
    if (seq > b->done_seq && seq < b->next_seq) {
        uint32_t w = (uint32_t)b->o.window;
        if (++b->ring[seq % w] >= (uint32_t)b->alive_subs && seq == b->done_seq + 1)
            fan_advance(b);
    }
}

static void on_frame(struct bench *b, struct conn *c, const struct frame *f)
{
    uint64_t ts, seq;
    switch (f->opcode) {
    case 0x8:                          /* close: remember why, then drop it */
        if (f->len >= 2 && !b->first_close_code) {
            uint8_t hi = f->payload[0] ^ (f->masked ? f->mask[0] : 0);
            uint8_t lo = f->payload[1] ^ (f->masked ? f->mask[1] : 0);
            b->first_close_code = hi << 8 | lo;
        }
        conn_close(b, c);
        return;
    case 0x9: {                        /* ping: the server may probe idle connections */
        uint8_t tmp[125];
        size_t n = f->len < sizeof tmp ? f->len : sizeof tmp;
        for (size_t i = 0; i < n; i++)
            tmp[i] = f->payload[i] ^ (f->masked ? f->mask[i & 3] : 0);
        b->wlen += ws_frame(wbuf_space(b, c, n + 14), 0xA, tmp, n, rng_next(b));
        return;
    }
    case 0x0:
        if (!c->frag_open)
            return;
        if (f->fin) {
            c->frag_open = 0;
            on_message(b, c, c->frag_ts, c->frag_seq);
        }
        return;
    case 0x1:
    case 0x2:
        b->text_msgs += f->opcode == 0x1;
        payload_stamp(f, &ts, &seq);
        if (!f->fin) {
            c->frag_open = 1;
            c->frag_ts = ts;
            c->frag_seq = seq;
            return;
        }
        on_message(b, c, ts, seq);
        return;
    default:
        return;
    }
}

static void on_open(struct bench *b, struct conn *c)
{
    c->state = S_OPEN;
    b->open++;
    if (c->role == R_SUB)
        b->alive_subs++;
    if (c->role == R_ECHO && (b->o.mode == M_ECHO || b->o.mode == M_RAW)) {
        b->now_ns = mono_ns();
        for (int i = 0; i < b->o.inflight; i++)
            send_msg(b, c, 0);
        c->inflight = (uint32_t)b->o.inflight;
    }
    attempt_done(b);
}

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
    on_open(b, c);
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
        ssize_t r = recv(c->fd, b->rbuf + have, RBUF_SIZE - have, 0);
        if (r <= 0) {
            if (r < 0 && errno == EAGAIN)
                break;
            if (r < 0)
                note_error(b, "recv", errno);
            conn_close(b, c);
            return;
        }
        b->now_ns = mono_ns();
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
        if ((size_t)r < RBUF_SIZE - have || c->state == S_CLOSED)
            break;
    }
    if (c->state != S_CLOSED)
        wbuf_flush(b, c);
    b->wlen = 0;
}

/* ---- connections ------------------------------------------------------------------- */

static void conn_close(struct bench *b, struct conn *c)
{
    if (c->state == S_CLOSED || c->state == S_UNUSED)
        return;
    int was = c->state;
    ev_io_stop(b->loop, &c->io);
    close(c->fd);
    c->state = S_CLOSED;
    c->out_off = c->out_len = c->in_len = 0;
    if (was == S_OPEN) {
        b->closed++;
        b->open--;
        if (c->role == R_SUB) {
            b->alive_subs--;
            b->synced -= c->got_any;
            fan_advance(b);
        }
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
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, b->o.host, b->o.port);
    c->state = S_HANDSHAKE;
    conn_want(b, c, EV_READ);
    conn_send(b, c, (const uint8_t *)req, (size_t)n);
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
        if (b->o.mode == M_RAW) {
            conn_want(b, c, EV_READ);
            on_open(b, c);
            wbuf_flush(b, c);
        } else {
            send_handshake(b, c);
        }
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

static void conn_connect(struct bench *b, int i)
{
    struct conn *c = &b->c[i];
    int one = 1;
    c->role = b->o.mode == M_FANOUT ? (i == b->o.conns ? R_PUB : R_SUB) : R_ECHO;
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
    if (bind_source(b, c->fd, i) < 0 ||
        (connect(c->fd, (struct sockaddr *)&b->dst, sizeof b->dst) < 0 && errno != EINPROGRESS)) {
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

/* ---- the clock --------------------------------------------------------------------- */

/* Subscribers that got no probe in SYNC_TIMEOUT seconds would stall every message. */
static void drop_unsynced(struct bench *b)
{
    int dropped = 0;
    for (int i = 0; i < b->o.conns; i++)
        if (b->c[i].state == S_OPEN && !b->c[i].got_any) {
            conn_close(b, &b->c[i]);
            dropped++;
        }
    fprintf(stderr, "wsload: %d subscribers got nothing in %ds; closed them\n", dropped,
            SYNC_TIMEOUT);
    b->unsynced += dropped;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bench *b = ev_userdata(loop);
    double now = mono_s();
    switch (b->phase) {
    case P_CONNECT:                    /* a server that stops answering must not hang us */
        if (now - b->t_phase > CONNECT_TIMEOUT) {
            fprintf(stderr, "wsload: %d connections still pending after %ds; dropping them\n",
                    b->connecting, CONNECT_TIMEOUT);
            b->failed += b->n - b->next;
            b->next = b->n;
            for (int i = 0; i < b->n; i++)  /* the last close moves on to all_connected */
                if (b->c[i].state == S_CONNECTING || b->c[i].state == S_HANDSHAKE)
                    conn_close(b, &b->c[i]);
        }
        break;
    case P_SYNC:                       /* probe until every subscriber is really subscribed */
        if (now - b->t_phase > SYNC_TIMEOUT)
            drop_unsynced(b);
        if (b->synced >= b->alive_subs) {
            b->next_seq = 1;
            b->done_seq = 0;
            set_phase(b, P_WARM);
            b->last_progress = now;
        } else {
            b->now_ns = mono_ns();
            send_msg(b, b->pub, 0);
            wbuf_flush(b, b->pub);
        }
        break;
    case P_WARM:
        if (now - b->t_phase >= b->o.warmup) {
            reset_stats(b);
            set_phase(b, P_MEASURE);
            if (b->o.server_pid)
                b->server_cpu0 = proc_cpu_s(b->o.server_pid);
        }
        break;
    case P_MEASURE:
        if (now - b->t_phase >= b->o.duration) {
            b->elapsed = now - b->t_phase;
            if (b->o.server_pid && b->server_cpu0 >= 0)
                b->server_cpu = proc_cpu_s(b->o.server_pid) - b->server_cpu0;
            set_phase(b, P_DONE);
            ev_break(loop, EVBREAK_ALL);
        }
        break;
    default:
        break;
    }
    if (b->o.mode == M_FANOUT && (b->phase == P_WARM || b->phase == P_MEASURE))
        fan_check_stall(b);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* ---- setup ------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: wsload echo|raw|fanout|idle [options]\n"
            "  --host ADDR (127.0.0.1)  --port N  --path P (/echo)\n"
            "  -c N connections or subscribers (100)  -k N in flight per conn (4)\n"
            "  -s BYTES payload, >= 16 (64)  -d SEC measured (3)  -w SEC warm-up (1)\n"
            "  --sub-path P (/sub)  --pub-path P (/pub)  --window N fan-out messages (64)\n"
            "  --src-ips N  bind to 127.0.0.2..  --max-pending N  concurrent connects (256)\n"
            "  --server-pid PID  also report that process's CPU use while measuring\n");
    exit(2);
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},     {"path", 1, 0, 'P'},
        {"sub-path", 1, 0, 'S'}, {"pub-path", 1, 0, 'B'}, {"window", 1, 0, 'W'},
        {"src-ips", 1, 0, 'I'},  {"max-pending", 1, 0, 'M'}, {"server-pid", 1, 0, 'X'},
        {0, 0, 0, 0}};
    *o = (struct opts){.host = "127.0.0.1", .path = "/echo", .sub_path = "/sub",
                       .pub_path = "/pub", .conns = 100, .inflight = 4, .size = 64,
                       .window = 64, .max_pending = 256, .duration = 3, .warmup = 1};
    if (argc < 2)
        usage();
    const char *m = argv[1];
    o->mode = !strcmp(m, "echo")     ? M_ECHO
              : !strcmp(m, "raw")    ? M_RAW
              : !strcmp(m, "fanout") ? M_FANOUT
              : !strcmp(m, "idle")   ? M_IDLE
                                     : (usage(), M_ECHO);
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:k:s:d:w:", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'P': o->path = optarg; break;
        case 'S': o->sub_path = optarg; break;
        case 'B': o->pub_path = optarg; break;
        case 'W': o->window = atoi(optarg); break;
        case 'I': o->src_ips = atoi(optarg); break;
        case 'M': o->max_pending = atoi(optarg); break;
        case 'X': o->server_pid = atoi(optarg); break;
        case 'c': o->conns = atoi(optarg); break;
        case 'k': o->inflight = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'w': o->warmup = atof(optarg); break;
        default: usage();
        }
    }
    if (o->port <= 0 || o->conns <= 0 || o->size < PAYLOAD_MIN || o->size > 65535 ||
        o->window <= 0 || o->max_pending <= 0 || o->src_ips < 0 || o->src_ips > 65000)
        usage();
}

/* Lifts the open-files soft limit to the hard one; says so if it still falls short. */
static void raise_nofile(int need)
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

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    parse_opts(&b->o, argc, argv);
    b->n = b->o.conns + (b->o.mode == M_FANOUT);
    raise_nofile(b->n);
    b->dst.sin_family = AF_INET;
    b->dst.sin_port = htons((uint16_t)b->o.port);
    if (inet_pton(AF_INET, b->o.host, &b->dst.sin_addr) != 1)
        usage();
    b->c = calloc((size_t)b->n, sizeof *b->c);
    b->rbuf = malloc(RBUF_SIZE);
    b->wbuf = malloc(WBUF_SIZE);
    b->payload = malloc((size_t)b->o.size);
    b->ring = calloc((size_t)b->o.window, sizeof *b->ring);
    if (!b->c || !b->rbuf || !b->wbuf || !b->payload || !b->ring)
        return 1;
    memset(b->payload, 'x', (size_t)b->o.size);
    b->rng = mono_ns() | 1;
    if (b->o.mode == M_FANOUT)
        b->pub = &b->c[b->o.conns];

    b->loop = ev_default_loop(EVBACKEND_EPOLL);
    ev_set_userdata(b->loop, b);
    ev_timer_init(&b->tick, tick_cb, 0.05, 0.05);
    ev_timer_start(b->loop, &b->tick);
    ev_prepare_init(&b->pub_prep, pub_prepare_cb);
    ev_prepare_start(b->loop, &b->pub_prep);
    ev_signal_init(&b->sigint, signal_cb, SIGINT);
    ev_signal_start(b->loop, &b->sigint);
    ev_signal_init(&b->sigterm, signal_cb, SIGTERM);
    ev_signal_start(b->loop, &b->sigterm);

    set_phase(b, P_CONNECT);
    start_connects(b);
    ev_run(b->loop, 0);
    print_result(b);
    return b->o.mode != M_IDLE && b->phase != P_DONE;
}
