/*
 * wsload.h — the parts of wsload that touch no socket and no loop: WebSocket frames
 * (RFC 6455, client side: frames out are masked, frames in may be either), STOMP 1.2
 * frames (client side: what the load needs, no header escaping), the timestamp a bench
 * payload carries, a latency histogram, and clocks.
 */
#ifndef WSLOAD_H
#define WSLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WS_MAX_MSG (64 * 1024)        /* nothing bigger is sent, so nothing bigger is read */
#define PAYLOAD_MIN 16                /* send timestamp + sequence number */
#define STOMP_HEAD_MAX 4096           /* a longer header block is an error */
#define HIST_SUB 6                    /* 64 sub-buckets per octave: about 1.5% error */
#define HIST_BUCKETS ((64 - HIST_SUB + 1) << HIST_SUB)

struct frame {
    uint8_t fin, opcode, masked, mask[4];
    uint8_t rsv1;                     /* permessage-deflate: a compressed message */
    const uint8_t *payload;
    uint64_t len;
};

/* A STOMP frame in place: the command line, the header lines (without the blank line
 * that ends them) and the body. cmd_len 0: only heart-beat EOLs were consumed. */
struct sframe {
    const uint8_t *cmd, *head, *body;
    size_t cmd_len, head_len, body_len;
};

struct hist {
    uint64_t n, count[HIST_BUCKETS];
};

long ws_parse(const uint8_t *p, size_t n, struct frame *f);
size_t ws_frame(uint8_t *dst, int op, const uint8_t *src, size_t len, uint32_t key);
void payload_stamp(const struct frame *f, uint64_t *ts, uint64_t *seq);
void stamp_read(const uint8_t *p, size_t n, uint64_t *ts, uint64_t *seq);

long stomp_parse(const uint8_t *p, size_t n, struct sframe *f);
int stomp_is(const struct sframe *f, const char *cmd);
const uint8_t *stomp_header(const struct sframe *f, const char *name, size_t *len);
size_t stomp_frame(uint8_t *dst, const char *head, const uint8_t *body, size_t len);

void hist_add(struct hist *h, uint64_t v);
double hist_pct(const struct hist *h, double pct);

uint64_t mono_ns(void);
double mono_s(void);
double proc_cpu_s(int pid);

#endif
