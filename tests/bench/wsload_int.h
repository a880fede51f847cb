/*
 * wsload_int.h — what wsload's files share: a connection, the options and the run.
 *
 *   wsload.c        modes, phases and the clock; options; the RESULT line
 *   wsload_net.c    sockets: connects, the HTTP upgrade, reads, writes (the only file
 *                   that calls connect/send/recv)
 *   wsload_stomp.c  the STOMP client on top of either transport: CONNECT, SUBSCRIBE,
 *                   SEND, ACK, and the queue mode's producers and consumers
 *   wsload_tls.c    --tls: OpenSSL between wsload_net.c and the socket
 *   wsload_lib.c    I/O-free: WebSocket and STOMP frames, stamps, histogram, clocks
 */
#ifndef WSLOAD_INT_H
#define WSLOAD_INT_H

#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>

#include "wsload.h"

#define RBUF_SIZE (256 * 1024)
#define WBUF_SIZE (256 * 1024)
#define HDR_MAX 8192                  /* a longer handshake response is an error */
#define CONNECT_TIMEOUT 30            /* seconds for every connection to open */
#define SYNC_TIMEOUT 10               /* seconds for every subscriber to get a probe */

enum mode { M_ECHO, M_RAW, M_FANOUT, M_QUEUE, M_IDLE };
/* P_DRAIN: nothing new is sent; what is still in flight may come back. */
enum phase { P_CONNECT, P_SYNC, P_WARM, P_MEASURE, P_DRAIN, P_DONE, P_HOLD };
enum state { S_UNUSED, S_CONNECTING, S_TLS, S_HANDSHAKE, S_OPEN, S_CLOSED };
/* R_PROD / R_CONS: the queue mode's producers and consumers. */
enum role { R_ECHO, R_SUB, R_PUB, R_PROD, R_CONS };
/* T_WS: HTTP upgrade, then frames. T_FRAMES: WebSocket frames with no upgrade (raw mode
 * against tcp_echo). T_TCP: neither (STOMP over TCP). */
enum transport { T_WS, T_FRAMES, T_TCP };

struct conn {
    ev_io io;                         /* first: the watcher pointer is the conn */
    int fd, events;
    uint8_t state, role, got_any, frag_open;
    uint8_t deflate;                  /* permessage-deflate was negotiated */
    uint32_t inflight;                /* sent and not yet back (echo, producers) */
    uint64_t sent, recvd;             /* messages, over the whole run (echo, producers) */
    uint64_t frag_ts, frag_seq;       /* from the first frame of a fragmented message */
    uint8_t *in;                      /* the start of a frame not yet complete */
    uint32_t in_len, in_cap;
    uint8_t *out;                     /* what a short write left */
    uint32_t out_off, out_len, out_cap;
    struct ssl_st *ssl;               /* --tls */
};

struct opts {
    enum mode mode;
    enum transport transport;
    int stomp;                        /* messages are STOMP frames */
    int deflate;                      /* offer permessage-deflate (wsload_deflate.c) */
    int json;                         /* payloads are JSON text after the stamp */
    int tls;                          /* TLS under everything (wss://) */
    const char *host, *path, *sub_path, *pub_path, *dest, *sub_dest, *stomp_host;
    double sync_timeout;
    int port, conns, inflight, size, window, src_ips, max_pending, server_pid;
    int producers, hups;
    double duration, warmup, hup_every, drain;
    int sub_ports[8], nsub_ports;     /* fanout: subscribers spread over these (several nodes) */
    int server_pids[16], nserver_pids;  /* CPU summed over all (workers, nodes) */
    double rate;                      /* fanout: publishes per second (0: as the window allows) */
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
    uint8_t *rbuf, *wbuf, *payload, *sbuf;
    size_t wlen;
    struct conn *pub;
    uint64_t next_seq, done_seq, lost, stalls, published;
    int unsynced;                     /* subscribers closed for never receiving */
    uint32_t *ring;                   /* deliveries per message in the window */
    double last_progress;
    int first_close_code;
    uint64_t text_msgs;               /* we send binary: text coming back is a bug */
    char first_error[160];
    /* reload (echo): the reload slices' side of the window, and the signals sent */
    struct hist lat2;
    uint64_t msgs2, dup;
    double elapsed2, t_slice;
    int hups_sent, slices, reload_slice;
    ev_timer hup;
    /* STOMP */
    uint64_t stomp_errors, redelivered, acks;
    char first_stomp_error[160];
    /* permessage-deflate: compressed messages inflated (and found identical to the last
     * one), connections that negotiated it, bytes read while measuring */
    struct zstate *z;
    uint64_t inflated, inflate_hits, bytes_in;
    int deflate_conns;
    ev_timer tick, rate_tick;
    double rate_t0;
    uint64_t rate_sent;
    ev_prepare pub_prep;
    ev_signal sigint, sigterm;
};

/* wsload_net.c */
void conn_connect_all(struct bench *b);
void conn_send(struct bench *b, struct conn *c, const uint8_t *p, size_t n);
void conn_close(struct bench *b, struct conn *c);
uint8_t *wbuf_space(struct bench *b, struct conn *c, size_t n);
void wbuf_flush(struct bench *b, struct conn *c);
uint32_t rng_next(struct bench *b);
void note_error(struct bench *b, const char *what, int err);
void raise_nofile(int need);

/* wsload.c: events the net layer reports */
void on_open(struct bench *b, struct conn *c);
void on_frame(struct bench *b, struct conn *c, const struct frame *f);
void on_message(struct bench *b, struct conn *c, uint64_t ts, uint64_t seq);
void on_closed(struct bench *b, struct conn *c);
void all_connected(struct bench *b);
void send_msg(struct bench *b, struct conn *c, uint64_t seq);

/* wsload_deflate.c */
extern const char *const deflate_offer;
int deflate_inflate(struct bench *b, const uint8_t *p, size_t n, const uint8_t **out,
                    size_t *out_len);
void deflate_pack(struct bench *b, const uint8_t *p, size_t n, const uint8_t **out,
                  size_t *out_len);
void json_fill(struct bench *b, uint8_t *p, size_t n);

/* wsload_stomp.c */
void stomp_open(struct bench *b, struct conn *c);
long stomp_consume(struct bench *b, struct conn *c, const uint8_t *p, size_t n);
void stomp_send_msg(struct bench *b, struct conn *c, uint64_t seq);
void queue_top_up(struct bench *b);
int queue_synced(const struct bench *b);
struct conn *queue_producer_of(struct bench *b, uint64_t seq);

/* wsload_tls.c */
int tls_init(void);
int tls_start(struct conn *c);
int tls_handshake(struct conn *c, int *events);
ssize_t tls_send(struct conn *c, const void *p, size_t n);
ssize_t tls_recv(struct conn *c, void *p, size_t n);
void tls_end(struct conn *c);

#endif
