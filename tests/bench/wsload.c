/*
 * wsload — the WebSocket and STOMP load generator behind `make bench`.
 *
 * One libev thread drives every connection, because the generator shares two cores
 * with the server it measures. Bytes are read into one shared buffer and frames are
 * parsed in place; what a connection has to send after a read leaves in one send().
 * Client frames are masked as RFC 6455 asks. Sockets are wsload_net.c's, STOMP is
 * wsload_stomp.c's; this file holds the modes, their phases and the clock.
 *
 * Modes (the first argument):
 *   echo    -c N connections to --path, -k messages in flight on each; the latency of
 *           a message comes from the send timestamp it carries in its payload. With
 *           --hups N the measured window is 2N slices of --hup-every seconds, and
 *           every other slice starts with a SIGHUP to the server (--server-pid): the
 *           quiet slices and the reload slices get a histogram each, so machine noise
 *           hits both alike. Then the load stops and what is in flight drains
 *           (--drain seconds at most): every message sent and never echoed is lost.
 *   raw     the echo against a plain TCP echo: no HTTP handshake, and the frames that
 *           come back are our own masked frames.
 *   fanout  -c N subscribers on --sub-path, one publisher on --pub-path. The publisher
 *           keeps at most --window messages not yet seen by every live subscriber, so
 *           the server's per-connection output bound is never the thing measured.
 *           With --stomp both speak STOMP over WebSocket: the subscribers SUBSCRIBE to
 *           --sub-dest, the publisher SENDs to --dest (default /topic/fan).
 *   queue   STOMP: --producers P SEND to --dest (default /queue/jobs), -k messages in
 *           flight each; -c M consumers SUBSCRIBE with ack:client-individual and ACK
 *           every MESSAGE. Over WebSocket at --path, or with --tcp over plain TCP.
 *           --sub-ports P1,P2 spreads the subscribers over several servers (nodes sharing
 *           topics), the publisher staying on --port; --rate N publishes N messages a
 *           second (still within the window) for latency at a given load.
 *   idle    open -c N connections to --path, print READY, hold them until SIGINT/SIGTERM.
 * Every mode ends with one "RESULT key=value ..." line on stdout; run.sh parses it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsload_int.h"

#define DRAIN_DEFAULT 5               /* seconds for what is in flight to come back */
#define STALL_SECS 5.0                /* fan-out: no progress for this long = lost */

static int is_echo(const struct bench *b) { return b->o.mode == M_ECHO || b->o.mode == M_RAW; }

/* Queues one stamped message on c, in the mode's protocol. */
void send_msg(struct bench *b, struct conn *c, uint64_t seq)
{
    if (b->o.stomp) {
        stomp_send_msg(b, c, seq);
        return;
    }
    size_t size = (size_t)b->o.size;
    uint8_t *dst = wbuf_space(b, c, size + 14);
    memcpy(b->payload, &b->now_ns, 8);
    memcpy(b->payload + 8, &seq, 8);
    if (c->deflate) {
        const uint8_t *z;
        size_t zn;
        deflate_pack(b, b->payload, size, &z, &zn);
        b->wlen += ws_frame(dst, 0x40 | 2, z, zn, rng_next(b));
        return;
    }
    b->wlen += ws_frame(dst, 2, b->payload, size, rng_next(b));
}

/* ---- phases ------------------------------------------------------------------------ */

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

static void print_latency(const char *prefix, const struct hist *h)
{
    printf(" %sp50_us=%.1f %sp99_us=%.1f %smax_us=%.1f", prefix, hist_pct(h, 50) / 1e3, prefix,
           hist_pct(h, 99) / 1e3, prefix, hist_pct(h, 100) / 1e3);
}

static void print_result(struct bench *b)
{
    const struct opts *o = &b->o;
    double secs = b->elapsed > 0 ? b->elapsed : 1e-9;
    static const char *names[] = {"echo", "raw", "fanout", "queue", "idle"};
    printf("RESULT mode=%s%s conns=%d open=%d failed=%d closed=%d", names[o->mode],
           o->stomp ? (o->transport == T_TCP ? " transport=stomp-tcp" : " transport=stomp-ws")
                    : "",
           o->conns, b->open, b->failed, b->closed);
    if (is_echo(b))
        printf(" inflight=%d size=%d secs=%.3f msgs=%llu msgs_per_s=%.0f", o->inflight, o->size,
               secs, (unsigned long long)b->msgs, b->msgs / secs);
    if (o->mode == M_QUEUE)
        printf(" producers=%d inflight=%d size=%d secs=%.3f msgs=%llu msgs_per_s=%.0f acks=%llu"
               " redelivered=%llu",
               o->producers, o->inflight, o->size, secs, (unsigned long long)b->msgs,
               b->msgs / secs, (unsigned long long)b->acks, (unsigned long long)b->redelivered);
    if (is_echo(b) || o->mode == M_QUEUE)
        printf(" sent=%llu lost=%llu dup=%llu", (unsigned long long)b->sent,
               (unsigned long long)b->lost, (unsigned long long)b->dup);
    if (o->mode == M_FANOUT)
        printf(" window=%d size=%d secs=%.3f published=%llu deliveries=%llu"
               " deliveries_per_s=%.0f lost=%llu stalls=%llu unsynced=%d",
               o->window, o->size, secs, (unsigned long long)b->published,
               (unsigned long long)b->msgs, b->msgs / secs, (unsigned long long)b->lost,
               (unsigned long long)b->stalls, b->unsynced);
    if (o->mode != M_IDLE)
        print_latency("", &b->lat);
    if (o->server_pid && o->mode != M_IDLE && b->server_cpu > 0) {
        double all = secs + b->elapsed2, n = (double)(b->msgs + b->msgs2);
        printf(" server_cpu_pct=%.0f server_cpu_us_per_msg=%.2f", 100 * b->server_cpu / all,
               n ? 1e6 * b->server_cpu / n : 0.0);
    }
    if (o->hups) {
        double s2 = b->elapsed2 > 0 ? b->elapsed2 : 1e-9;
        printf(" hups=%d reload_secs=%.3f reload_msgs_per_s=%.0f", b->hups_sent, s2,
               b->msgs2 / s2);
        print_latency("reload_", &b->lat2);
        printf(" added_p99_us=%.1f", (hist_pct(&b->lat2, 99) - hist_pct(&b->lat, 99)) / 1e3);
    }
    if (o->stomp)
        printf(" stomp_errors=%llu", (unsigned long long)b->stomp_errors);
    if (b->first_close_code)
        printf(" close_code=%d", b->first_close_code);
    if (o->mode != M_IDLE && b->msgs)
        printf(" wire_bytes_in=%llu wire_bytes_per_msg=%.1f", (unsigned long long)b->bytes_in,
               (double)b->bytes_in / (double)b->msgs);
    if (o->deflate)
        printf(" deflate_conns=%d inflated=%llu inflate_hits=%llu", b->deflate_conns,
               (unsigned long long)b->inflated, (unsigned long long)b->inflate_hits);
    if (b->text_msgs)
        printf(" text_msgs=%llu", (unsigned long long)b->text_msgs);
    printf("\n");
    if (b->first_error[0])
        fprintf(stderr, "wsload: first error: %s\n", b->first_error);
    if (b->first_stomp_error[0])
        fprintf(stderr, "wsload: first STOMP error: %s\n", b->first_stomp_error);
    fflush(stdout);
}

/* Called once every connection attempt has ended one way or the other. */
void all_connected(struct bench *b)
{
    if (b->o.mode == M_IDLE) {
        set_phase(b, P_HOLD);
        printf("READY open=%d failed=%d\n", b->open, b->failed);
        fflush(stdout);
        return;
    }
    if (b->o.mode == M_FANOUT && (!b->pub || b->pub->state != S_OPEN)) {
        fprintf(stderr, "wsload: the publisher did not connect\n");
        set_phase(b, P_DONE);
        ev_break(b->loop, EVBREAK_ALL);
        return;
    }
    set_phase(b, b->o.mode == M_FANOUT || b->o.mode == M_QUEUE ? P_SYNC : P_WARM);
}

/* Echo and queue: the load has stopped and nothing is in flight any more, or the drain
 * time is over. What never came back is lost; what came back twice is a duplicate. */
static int drained(struct bench *b, double now)
{
    uint64_t inflight = 0;
    for (int i = 0; i < b->n; i++)
        if (b->c[i].role == R_ECHO || b->c[i].role == R_PROD)
            inflight += b->c[i].state == S_OPEN ? b->c[i].inflight : 0;
    if (inflight && now - b->t_phase < b->o.drain)
        return 0;
    for (int i = 0; i < b->n; i++) {
        const struct conn *c = &b->c[i];
        if (c->role != R_ECHO && c->role != R_PROD)
            continue;
        if (c->sent > c->recvd)
            b->lost += c->sent - c->recvd;
        else
            b->dup += c->recvd - c->sent;
    }
    return 1;
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

/* A message that some subscriber never got would stop the window for good: after
 * STALL_SECS without progress, write it off and say so in the result. (Two seconds
 * were too few: STOMP fan-out to 10,000 subscribers has taken 2.2 s to reach the last
 * one, and a slow message is not a lost one.) */
static void fan_check_stall(struct bench *b)
{
    if (b->done_seq + 1 >= b->next_seq || mono_s() - b->last_progress < STALL_SECS)
        return;
    uint32_t *slot = &b->ring[(b->done_seq + 1) % (uint32_t)b->o.window];
    b->lost += *slot < (uint32_t)b->alive_subs ? (uint32_t)b->alive_subs - *slot : 0;
    *slot = 0;
    b->done_seq++;
    b->stalls++;
    b->last_progress = mono_s();
    fan_advance(b);
}

/* Runs before the loop blocks: publishes what the window allows, in one write (fan-out),
 * or refills every producer's window (queue). */
static void pub_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct bench *b = ev_userdata(loop);
    struct conn *p = b->pub;
    if (b->phase != P_WARM && b->phase != P_MEASURE)
        return;
    if (b->o.mode == M_QUEUE) {
        queue_top_up(b);
        return;
    }
    if (!p || p->state != S_OPEN)
        return;
    uint64_t outstanding = b->next_seq - 1 - b->done_seq;
    if (outstanding >= (uint64_t)b->o.window)
        return;
    b->now_ns = mono_ns();
    if (outstanding == 0)
        b->last_progress = mono_s();
    uint64_t room = (uint64_t)b->o.window;
    if (b->o.rate > 0) {               /* what the clock allows so far */
        uint64_t due = (uint64_t)((mono_s() - b->rate_t0) * b->o.rate) + 1;
        if (due <= b->rate_sent)
            return;
        room = outstanding + (due - b->rate_sent);
        if (room > (uint64_t)b->o.window)
            room = (uint64_t)b->o.window;
    }
    for (; outstanding < room; outstanding++) {
        b->rate_sent++;
        b->ring[b->next_seq % (uint32_t)b->o.window] = 0;
        send_msg(b, p, b->next_seq++);
        b->published++;
    }
    wbuf_flush(b, p);
}

/* ---- incoming ---------------------------------------------------------------------- */

/* The histogram and count a message received now belongs to, or NULL between windows. */
static struct hist *window_hist(struct bench *b, uint64_t **count)
{
    if (b->phase == P_MEASURE) {
        *count = b->reload_slice ? &b->msgs2 : &b->msgs;
        return b->reload_slice ? &b->lat2 : &b->lat;
    }
    return NULL;
}

static void echo_message(struct bench *b, struct conn *c, uint64_t ts)
{
    uint64_t *count;
    struct hist *h = window_hist(b, &count);
    c->inflight--;
    c->recvd++;
    if (h) {
        (*count)++;
        hist_add(h, b->now_ns - ts);
    }
    if (b->phase < P_DRAIN) {          /* from the first open on, until the drain */
        send_msg(b, c, 0);
        c->inflight++;
        c->sent++;
        b->sent++;
    }
}

static void queue_message(struct bench *b, uint64_t ts, uint64_t seq)
{
    struct conn *p = queue_producer_of(b, seq);
    if (!p)
        return;
    p->recvd++;
    if (p->inflight)
        p->inflight--;
    if (b->phase == P_MEASURE) {
        b->msgs++;
        hist_add(&b->lat, b->now_ns - ts);
    }
}

void on_message(struct bench *b, struct conn *c, uint64_t ts, uint64_t seq)
{
    if (c->role == R_ECHO) {
        echo_message(b, c, ts);
        return;
    }
    if (c->role == R_CONS) {
        queue_message(b, ts, seq);
        return;
    }
    if (c->role != R_SUB)
        return;
    if (!c->got_any) {
        c->got_any = 1;
        b->synced++;
    }
    if (b->phase == P_MEASURE) {
        b->msgs++;
        hist_add(&b->lat, b->now_ns - ts);
    }
    if (seq > b->done_seq && seq < b->next_seq) {
        uint32_t w = (uint32_t)b->o.window;
        if (++b->ring[seq % w] >= (uint32_t)b->alive_subs && seq == b->done_seq + 1)
            fan_advance(b);
    }
}

/* A whole WebSocket message in STOMP mode: the server sends one frame per message. */
static void stomp_ws_message(struct bench *b, struct conn *c, const struct frame *f)
{
    if (f->masked || !f->fin) {        /* never from rtserver: not worth reassembling */
        b->stomp_errors++;
        return;
    }
    long used = stomp_consume(b, c, f->payload, f->len);
    if (used >= 0 && (uint64_t)used != f->len)
        b->stomp_errors++;             /* a frame cut across messages */
}

void on_frame(struct bench *b, struct conn *c, const struct frame *f)
{
    uint64_t ts, seq;
    struct frame plain;
    if (f->rsv1 && (f->opcode == 0x1 || f->opcode == 0x2)) {
        plain = *f;
        size_t n;
        if (!f->fin || f->masked || deflate_inflate(b, f->payload, f->len, &plain.payload, &n) < 0) {
            note_error(b, "inflate", EINVAL);
            conn_close(b, c);
            return;
        }
        plain.len = n;
        plain.rsv1 = 0;
        f = &plain;
    }
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
        if (b->o.stomp) {
            stomp_ws_message(b, c, f);
            return;
        }
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

void on_open(struct bench *b, struct conn *c)
{
    if (c->role == R_SUB || c->role == R_CONS)
        b->alive_subs++;
    if (b->o.stomp)
        stomp_open(b, c);
    if (c->role == R_ECHO && is_echo(b)) {
        b->now_ns = mono_ns();
        for (int i = 0; i < b->o.inflight; i++)
            send_msg(b, c, 0);
        c->inflight = (uint32_t)b->o.inflight;
        c->sent += (uint64_t)b->o.inflight;
        b->sent += (uint64_t)b->o.inflight;
    }
}

/* An open connection is gone: subscribers and consumers stop counting. */
void on_closed(struct bench *b, struct conn *c)
{
    if (c->role != R_SUB && c->role != R_CONS)
        return;
    b->alive_subs--;
    b->synced -= c->got_any;
    if (c->role == R_SUB)
        fan_advance(b);
}

/* ---- the clock --------------------------------------------------------------------- */

/* Subscribers that got no probe in --sync-timeout seconds would stall every message. */
static void drop_unsynced(struct bench *b)
{
    int dropped = 0;
    for (int i = 0; i < b->o.conns; i++)
        if (b->c[i].state == S_OPEN && !b->c[i].got_any) {
            conn_close(b, &b->c[i]);
            dropped++;
        }
    fprintf(stderr, "wsload: %d subscribers got nothing in %gs; closed them\n", dropped,
            b->o.sync_timeout);
    b->unsynced += dropped;
}

/* CPU seconds of every --server-pid process together. */
static double servers_cpu_s(const struct bench *b)
{
    double sum = 0;
    for (int i = 0; i < b->o.nserver_pids; i++) {
        double v = proc_cpu_s(b->o.server_pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

static void end_measure(struct bench *b, double now)
{
    if (!b->o.hups)
        b->elapsed = now - b->t_phase;
    if (b->o.server_pid && b->server_cpu0 >= 0)
        b->server_cpu = servers_cpu_s(b) - b->server_cpu0;
    set_phase(b, b->o.mode == M_FANOUT ? P_DONE : P_DRAIN);
}

/* The end of a reload-test slice: its time goes to the quiet or the reload side; the
 * next slice starts, a reload slice with a SIGHUP; after 2 * hups slices, the end. */
static void slice_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bench *b = ev_userdata(loop);
    double now = mono_s();
    *(b->reload_slice ? &b->elapsed2 : &b->elapsed) += now - b->t_slice;
    b->t_slice = now;
    if (++b->slices >= 2 * b->o.hups) {
        ev_timer_stop(loop, w);
        b->reload_slice = 0;
        end_measure(b, now);
        return;
    }
    b->reload_slice = b->slices & 1;
    if (!b->reload_slice)
        return;
    if (kill(b->o.server_pid, SIGHUP) == 0)
        b->hups_sent++;
    else
        note_error(b, "kill -HUP", errno);
}

static void start_measure(struct bench *b)
{
    reset_stats(b);
    set_phase(b, P_MEASURE);
    if (b->o.server_pid)
        b->server_cpu0 = servers_cpu_s(b);
    if (b->o.hups) {
        b->t_slice = b->t_phase;
        ev_timer_init(&b->hup, slice_cb, b->o.hup_every, b->o.hup_every);
        ev_timer_start(b->loop, &b->hup);
    }
}

static void sync_tick(struct bench *b, double now)
{
    if (now - b->t_phase > b->o.sync_timeout)
        drop_unsynced(b);
    if (b->synced >= b->alive_subs) {
        b->next_seq = 1;
        b->done_seq = 0;
        set_phase(b, P_WARM);
        b->last_progress = now;
        b->rate_t0 = now;
        b->rate_sent = 0;
    } else if (b->o.mode == M_FANOUT) {  /* probe until every subscriber is subscribed */
        b->now_ns = mono_ns();
        send_msg(b, b->pub, 0);
        wbuf_flush(b, b->pub);
    }
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
    case P_SYNC:
        sync_tick(b, now);
        break;
    case P_WARM:
        if (now - b->t_phase >= b->o.warmup)
            start_measure(b);
        break;
    case P_MEASURE:                    /* with --hups, slice_cb ends the window */
        if (!b->o.hups && now - b->t_phase >= b->o.duration)
            end_measure(b, now);
        break;
    case P_DRAIN:
        if (drained(b, now))
            set_phase(b, P_DONE);
        break;
    default:
        break;
    }
    if (b->phase == P_DONE)
        ev_break(loop, EVBREAK_ALL);
    if (b->o.mode == M_FANOUT && (b->phase == P_WARM || b->phase == P_MEASURE))
        fan_check_stall(b);
}

/* --rate: wakes the loop every millisecond, so the publisher keeps its pace. */
static void rate_cb(struct ev_loop *loop, ev_timer *w, int revents) {}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* ---- setup ------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: wsload echo|raw|fanout|queue|idle [options]\n"
            "  --host ADDR (127.0.0.1)  --port N  --path P (/echo)\n"
            "  -c N connections, subscribers or consumers (100)  -k N in flight per conn\n"
            "     or producer (4)  -s BYTES payload, >= 16 (64)  -d SEC measured (3)\n"
            "  -w SEC warm-up (1)  --drain SEC wait for what is in flight at the end (5)\n"
            "  --sub-path P (/sub)  --pub-path P (/pub)  --window N fan-out messages (64)\n"
            "  --stomp  STOMP over WebSocket (fanout)  --tcp  STOMP over TCP (queue)\n"
            "  --dest D  SEND here (/topic/fan, /queue/jobs)  --sub-dest D  SUBSCRIBE here\n"
            "  --producers N  queue producers (4)\n"
            "  --stomp-host H  CONNECT's host header (localhost; RabbitMQ takes it as the vhost)\n"
            "  --sync-timeout SEC  fanout: time for every subscriber to get a first probe (10)\n"
            "  --hups N --hup-every SEC  echo: 2N slices, N of them start with a SIGHUP to\n"
            "     the server; quiet and reload slices are measured apart (replaces -d)\n"
            "  --src-ips N  bind to 127.0.0.2..  --max-pending N  concurrent connects (256)\n"
            "  --server-pid PID[,PID...]  also report those processes' CPU use while measuring\n"
            "  --deflate  offer permessage-deflate (no context takeover either way)\n"
            "  --json  payloads are JSON order events after the 16-byte stamp\n"
            "  --sub-ports P1,P2..  fanout: subscribers on these ports  --rate N publishes/s\n"
            "  --tls  TLS under the connections (wss://; the certificate is not checked)\n");
    exit(2);
}

static enum mode parse_mode(const char *m)
{
    if (!strcmp(m, "echo")) return M_ECHO;
    if (!strcmp(m, "raw")) return M_RAW;
    if (!strcmp(m, "fanout")) return M_FANOUT;
    if (!strcmp(m, "queue")) return M_QUEUE;
    if (!strcmp(m, "idle")) return M_IDLE;
    usage();
    return M_ECHO;
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},      {"port", 1, 0, 'p'},        {"path", 1, 0, 'P'},
        {"sub-path", 1, 0, 'S'},  {"pub-path", 1, 0, 'B'},    {"window", 1, 0, 'W'},
        {"src-ips", 1, 0, 'I'},   {"max-pending", 1, 0, 'M'}, {"server-pid", 1, 0, 'X'},
        {"stomp", 0, 0, 't'},     {"tcp", 0, 0, 'T'},         {"dest", 1, 0, 'D'},
        {"sub-dest", 1, 0, 'U'},  {"producers", 1, 0, 'R'},   {"hups", 1, 0, 'h'},
        {"hup-every", 1, 0, 'e'}, {"drain", 1, 0, 'r'},       {"deflate", 0, 0, 'z'},
        {"json", 0, 0, 'j'},      {"sub-ports", 1, 0, 'O'},   {"rate", 1, 0, 'a'},
        {"stomp-host", 1, 0, 'V'},  {"sync-timeout", 1, 0, 'Y'}, {"tls", 0, 0, 'L'},
        {0, 0, 0, 0}};
    *o = (struct opts){.host = "127.0.0.1", .path = "/echo", .sub_path = "/sub",
                       .pub_path = "/pub", .conns = 100, .inflight = 4, .size = 64,
                       .window = 64, .max_pending = 256, .duration = 3, .warmup = 1,
                       .producers = 4, .hup_every = 0.2, .drain = DRAIN_DEFAULT,
                       .stomp_host = "localhost", .sync_timeout = SYNC_TIMEOUT};
    if (argc < 2)
        usage();
    o->mode = parse_mode(argv[1]);
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
        case 'X':
            for (char *t = strtok(optarg, ","); t && o->nserver_pids < 16; t = strtok(NULL, ","))
                o->server_pids[o->nserver_pids++] = atoi(t);
            o->server_pid = o->nserver_pids ? o->server_pids[0] : 0;
            break;
        case 'O':
            for (char *t = strtok(optarg, ","); t && o->nsub_ports < 8; t = strtok(NULL, ","))
                o->sub_ports[o->nsub_ports++] = atoi(t);
            break;
        case 'a': o->rate = atof(optarg); break;
        case 't': o->stomp = 1; break;
        case 'T': o->transport = T_TCP; break;
        case 'D': o->dest = optarg; break;
        case 'U': o->sub_dest = optarg; break;
        case 'R': o->producers = atoi(optarg); break;
        case 'h': o->hups = atoi(optarg); break;
        case 'e': o->hup_every = atof(optarg); break;
        case 'r': o->drain = atof(optarg); break;
        case 'z': o->deflate = 1; break;
        case 'j': o->json = 1; break;
        case 'V': o->stomp_host = optarg; break;
        case 'Y': o->sync_timeout = atof(optarg); break;
        case 'L': o->tls = 1; break;
        case 'c': o->conns = atoi(optarg); break;
        case 'k': o->inflight = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'w': o->warmup = atof(optarg); break;
        default: usage();
        }
    }
    if (o->mode == M_QUEUE || o->transport == T_TCP)
        o->stomp = 1;
    if (o->mode == M_RAW)
        o->transport = T_FRAMES;
    if (!o->dest)
        o->dest = o->mode == M_QUEUE ? "/queue/jobs" : "/topic/fan";
    if (!o->sub_dest)
        o->sub_dest = o->dest;
    if (o->port <= 0 || o->conns <= 0 || o->size < PAYLOAD_MIN || o->size > 65535 ||
        o->window <= 0 || o->max_pending <= 0 || o->src_ips < 0 || o->src_ips > 65000 ||
        o->producers <= 0 || o->hups < 0 || o->hup_every <= 0 || (o->hups && !o->server_pid) ||
        (o->stomp && o->mode != M_FANOUT && o->mode != M_QUEUE) ||
        (o->transport == T_TCP && o->mode != M_QUEUE))
        usage();
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    parse_opts(&b->o, argc, argv);
    b->n = b->o.conns + (b->o.mode == M_FANOUT) + (b->o.mode == M_QUEUE ? b->o.producers : 0);
    raise_nofile(b->n);
    b->dst.sin_family = AF_INET;
    b->dst.sin_port = htons((uint16_t)b->o.port);
    if (inet_pton(AF_INET, b->o.host, &b->dst.sin_addr) != 1)
        usage();
    if (b->o.tls && tls_init() < 0)
        return 1;
    b->c = calloc((size_t)b->n, sizeof *b->c);
    b->rbuf = malloc(RBUF_SIZE);
    b->wbuf = malloc(WBUF_SIZE);
    b->payload = malloc((size_t)b->o.size);
    b->sbuf = malloc((size_t)b->o.size + 1024);
    b->ring = calloc((size_t)b->o.window, sizeof *b->ring);
    if (!b->c || !b->rbuf || !b->wbuf || !b->payload || !b->sbuf || !b->ring)
        return 1;
    memset(b->payload, 'x', (size_t)b->o.size);
    b->rng = mono_ns() | 1;
    if (b->o.json)
        json_fill(b, b->payload + PAYLOAD_MIN, (size_t)b->o.size - PAYLOAD_MIN);
    if (b->o.mode == M_FANOUT)
        b->pub = &b->c[b->o.conns];

    b->loop = ev_default_loop(EVBACKEND_EPOLL);
    ev_set_userdata(b->loop, b);
    ev_timer_init(&b->tick, tick_cb, 0.05, 0.05);
    ev_timer_start(b->loop, &b->tick);
    if (b->o.rate > 0) {
        ev_timer_init(&b->rate_tick, rate_cb, 0.001, 0.001);
        ev_timer_start(b->loop, &b->rate_tick);
    }
    ev_prepare_init(&b->pub_prep, pub_prepare_cb);
    ev_prepare_start(b->loop, &b->pub_prep);
    ev_signal_init(&b->sigint, signal_cb, SIGINT);
    ev_signal_start(b->loop, &b->sigint);
    ev_signal_init(&b->sigterm, signal_cb, SIGTERM);
    ev_signal_start(b->loop, &b->sigterm);

    set_phase(b, P_CONNECT);
    conn_connect_all(b);
    ev_run(b->loop, 0);
    print_result(b);
    return b->o.mode != M_IDLE && b->phase != P_DONE;
}
