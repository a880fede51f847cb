/*
 * tls_hs.c — TLS handshakes per second against a server: -c connections at a time, each
 * connects, completes a TLS handshake and closes, over and over. With --resume every
 * handshake offers the session ticket a first full handshake got, so the server does a
 * resumed handshake (no certificate, no signature). OpenSSL's client marks a TLS 1.3
 * session used once, and the ticket a resumed connection receives inherits that mark
 * (3.0), so every connection offers a copy of the first ticket; the server accepts a
 * ticket more than once (it only refuses replays of early data, which we do not send).
 * The client does not verify the certificate: the server's side is what is measured.
 *
 *   tls_hs --port N [-c 32] [-d 3] [-w 1] [--resume] [--server-pid PID]
 *
 * Prints one "RESULT handshakes=... handshakes_per_s=... resumed=... failed=...
 * [server_cpu_pct=... server_cpu_us_per_hs=...]" line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsload.h"

struct slot {
    ev_io io;  /* first: the watcher pointer is the slot */
    int fd;
    SSL *ssl;
};

static struct {
    struct ev_loop *loop;
    SSL_CTX *ctx;
    SSL_SESSION *session;  /* --resume: the first ticket */
    struct sockaddr_in dst;
    int resume, server_pid, measuring, done;
    long handshakes, resumed, failed;
    double cpu0, t0;
} g;

static void slot_start(struct slot *s);

static int keep_session(SSL *ssl, SSL_SESSION *sess)
{
    if (g.session)
        return 0;
    g.session = sess;  /* we keep the reference OpenSSL hands us */
    return 1;
}

static void slot_end(struct slot *s, int ok)
{
    ev_io_stop(g.loop, &s->io);
    if (ok && g.measuring) {
        g.handshakes++;
        g.resumed += SSL_session_reused(s->ssl);
    } else if (!ok) {
        g.failed++;
    }
    SSL_free(s->ssl);
    s->ssl = NULL;
    close(s->fd);
    if (!g.done)
        slot_start(s);
}

static void want(struct slot *s, int events)
{
    ev_io_stop(g.loop, &s->io);
    ev_io_set(&s->io, s->fd, events);
    ev_io_start(g.loop, &s->io);
}

static void slot_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct slot *s = (struct slot *)w;
    ERR_clear_error();
    if (SSL_is_init_finished(s->ssl)) {
        /* The first connection waits for its ticket (TLS 1.3 sends it after the handshake). */
        char buf[256];
        int r = SSL_read(s->ssl, buf, sizeof buf);
        if (g.session)
            slot_end(s, 1);
        else if (r <= 0 && SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
            slot_end(s, 0);
        return;
    }
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        if (g.resume && !g.session)
            want(s, EV_READ);
        else
            slot_end(s, 1);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        want(s, EV_READ);
    else if (e == SSL_ERROR_WANT_WRITE)
        want(s, EV_WRITE);
    else
        slot_end(s, 0);
}

static void slot_start(struct slot *s)
{
    int one = 1;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* No TIME_WAIT pile-up on the client side: close with a reset. */
    struct linger lg = {1, 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (connect(s->fd, (struct sockaddr *)&g.dst, sizeof g.dst) < 0 && errno != EINPROGRESS) {
        perror("tls_hs: connect");
        exit(1);
    }
    s->ssl = SSL_new(g.ctx);
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_connect_state(s->ssl);
    if (g.session) {
        SSL_SESSION *copy = SSL_SESSION_dup(g.session);
        SSL_set_session(s->ssl, copy);
        SSL_SESSION_free(copy);
    }
    ev_io_init(&s->io, slot_cb, s->fd, EV_WRITE);
    ev_io_start(g.loop, &s->io);
}

static void phase_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    if (!g.measuring) {
        g.measuring = 1;
        g.t0 = ev_time();
        g.cpu0 = g.server_pid ? proc_cpu_s(g.server_pid) : 0;
        return;
    }
    double secs = ev_time() - g.t0;
    double cpu = g.server_pid ? proc_cpu_s(g.server_pid) - g.cpu0 : 0;
    g.done = 1;
    printf("RESULT mode=%s handshakes=%ld secs=%.3f handshakes_per_s=%.0f resumed=%ld failed=%ld",
           g.resume ? "resumed" : "full", g.handshakes, secs, g.handshakes / secs, g.resumed,
           g.failed);
    if (g.server_pid && cpu > 0)
        printf(" server_cpu_pct=%.0f server_cpu_us_per_hs=%.1f", 100 * cpu / secs,
               g.handshakes ? 1e6 * cpu / g.handshakes : 0.0);
    printf("\n");
    fflush(stdout);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"port", 1, 0, 'p'}, {"resume", 0, 0, 'r'},
                                       {"server-pid", 1, 0, 'X'}, {0, 0, 0, 0}};
    int port = 0, conns = 32, ch;
    double secs = 3, warm = 1;
    while ((ch = getopt_long(argc, argv, "c:d:w:", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': port = atoi(optarg); break;
        case 'r': g.resume = 1; break;
        case 'X': g.server_pid = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        default: port = 0;
        }
    }
    if (port <= 0 || conns <= 0 || secs <= 0) {
        fprintf(stderr, "usage: tls_hs --port N [-c 32] [-d 3] [-w 1] [--resume] [--server-pid PID]\n");
        return 2;
    }
    g.dst.sin_family = AF_INET;
    g.dst.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &g.dst.sin_addr);
    g.ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(g.ctx, SSL_VERIFY_NONE, NULL);
    if (g.resume) {
        SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(g.ctx, keep_session);
    }
    g.loop = ev_default_loop(EVBACKEND_EPOLL);
    struct slot *slots = calloc((size_t)conns, sizeof *slots);
    /* A resumed run starts with one connection, so that every later one has the ticket. */
    for (int i = 0; i < (g.resume ? 1 : conns); i++)
        slot_start(&slots[i]);
    if (g.resume) {
        while (!g.session && !g.failed)
            ev_run(g.loop, EVRUN_ONCE);
        if (!g.session) {
            fprintf(stderr, "tls_hs: the server gave no session ticket\n");
            return 1;
        }
        for (int i = 1; i < conns; i++)
            slot_start(&slots[i]);
    }
    ev_timer phase;
    ev_timer_init(&phase, phase_cb, warm, secs);
    ev_timer_start(g.loop, &phase);
    ev_run(g.loop, 0);
    return g.handshakes > 0 ? 0 : 1;
}
