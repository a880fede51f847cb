/*
 * wsload_lib.c — WebSocket and STOMP frames, payload stamps, the latency histogram and
 * clocks for wsload. No socket and no loop here: see wsload.h.
 */
#define _GNU_SOURCE
#include "wsload.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double mono_s(void) { return mono_ns() / 1e9; }

/* CPU seconds (user + system) used so far by process pid, from /proc; -1 if unknown. */
double proc_cpu_s(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');    /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- latency histogram (log-linear, like HdrHistogram) ---------------------------- */

static unsigned hist_index(uint64_t v)
{
    if (v < (2u << HIST_SUB))
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v);
    return ((e - HIST_SUB) << HIST_SUB) + (unsigned)(v >> (e - HIST_SUB));
}

/* The middle of bucket i, in the histogram's unit. */
static double hist_value(unsigned i)
{
    if (i < (2u << HIST_SUB))
        return i;
    unsigned shift = (i >> HIST_SUB) - 1;
    uint64_t low = (uint64_t)((i & ((1u << HIST_SUB) - 1)) + (1u << HIST_SUB)) << shift;
    return low + ((1ull << shift) - 1) / 2.0;
}

void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->n++;
}

double hist_pct(const struct hist *h, double pct)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)(h->n * pct / 100.0 + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i);
    }
    return 0;
}

/* ---- frames ------------------------------------------------------------------------ */

/* Parses one frame at p. Returns its length, 0 if it is not all there yet, -1 if it is
 * bigger than this tool will ever send (the stream is then not ours to trust). */
long ws_parse(const uint8_t *p, size_t n, struct frame *f)
{
    if (n < 2)
        return 0;
    size_t hl = 2;
    uint64_t len = p[1] & 0x7f;
    f->fin = p[0] >> 7;
    f->rsv1 = (p[0] >> 6) & 1;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        hl = 10;
    }
    if (len > WS_MAX_MSG)
        return -1;
    if (f->masked) {
        if (n < hl + 4)
            return 0;
        memcpy(f->mask, p + hl, 4);
        hl += 4;
    }
    if (n < hl + len)
        return 0;
    f->payload = p + hl;
    f->len = len;
    return (long)(hl + len);
}

/* (op may carry 0x40, RSV1: a compressed message.) Writes a masked frame of opcode op carrying src[0..len) to dst; returns its length. */
size_t ws_frame(uint8_t *dst, int op, const uint8_t *src, size_t len, uint32_t key)
{
    size_t hl = 2;
    dst[0] = 0x80 | (uint8_t)op;
    if (len < 126) {
        dst[1] = 0x80 | (uint8_t)len;
    } else {
        dst[1] = 0x80 | 126;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)len;
        hl = 4;
    }
    uint8_t m[4];
    memcpy(m, &key, 4);
    memcpy(dst + hl, m, 4);
    hl += 4;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {    /* a word at a time: the compiler vectorises it */
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= key;
        memcpy(dst + hl + i, &w, 4);
    }
    for (; i < len; i++)
        dst[hl + i] = src[i] ^ m[i & 3];
    return hl + len;
}

/* Reads the timestamp and sequence number at the start of a payload. */
void payload_stamp(const struct frame *f, uint64_t *ts, uint64_t *seq)
{
    uint8_t head[PAYLOAD_MIN] = {0};
    size_t n = f->len < PAYLOAD_MIN ? f->len : PAYLOAD_MIN;
    for (size_t i = 0; i < n; i++)
        head[i] = f->payload[i] ^ (f->masked ? f->mask[i & 3] : 0);
    memcpy(ts, head, 8);
    memcpy(seq, head + 8, 8);
}

/* The same from unmasked bytes (a STOMP body). */
void stamp_read(const uint8_t *p, size_t n, uint64_t *ts, uint64_t *seq)
{
    uint8_t head[PAYLOAD_MIN] = {0};
    memcpy(head, p, n < PAYLOAD_MIN ? n : PAYLOAD_MIN);
    memcpy(ts, head, 8);
    memcpy(seq, head + 8, 8);
}

/* ---- STOMP frames ------------------------------------------------------------------ */

/* Parses one frame at p (STOMP 1.2: lines end in LF or CRLF; the body runs for
 * content-length bytes, else to the first NUL). Returns the bytes used, 0 if the frame
 * is not all there yet, -1 if it is malformed or its head is over STOMP_HEAD_MAX.
 * Heart-beat EOLs before a frame come back alone, as a frame with cmd_len 0. */
long stomp_parse(const uint8_t *p, size_t n, struct sframe *f)
{
    size_t i = 0;
    while (i < n && (p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i) {
        f->cmd_len = 0;
        return (long)i;
    }
    const uint8_t *end = p + n, *line = p, *nl;
    size_t cl = 0;
    int have_cl = 0;
    f->cmd = p;
    f->head = NULL;
    for (;;) {
        if (!(nl = memchr(line, '\n', (size_t)(end - line))))
            return n > STOMP_HEAD_MAX ? -1 : 0;
        size_t len = (size_t)(nl - line) - (nl > line && nl[-1] == '\r');
        if (line == p) {
            f->cmd_len = len;
            f->head = nl + 1;
        } else if (len == 0) {
            break;
        } else if (!have_cl && len > 15 && !memcmp(line, "content-length:", 15)) {
            have_cl = 1;            /* a repeated header: the first one counts */
            for (size_t k = 15; k < len; k++) {
                if (line[k] < '0' || line[k] > '9' || cl > WS_MAX_MSG)
                    return -1;
                cl = cl * 10 + (size_t)(line[k] - '0');
            }
        }
        line = nl + 1;
        if ((size_t)(line - p) > STOMP_HEAD_MAX)
            return -1;
    }
    f->head_len = (size_t)(line - f->head);
    f->body = nl + 1;
    if (have_cl) {
        if ((size_t)(end - f->body) < cl + 1)
            return 0;
        if (f->body[cl] != 0)
            return -1;
        f->body_len = cl;
    } else {
        const uint8_t *nul = memchr(f->body, 0, (size_t)(end - f->body));
        if (!nul)
            return (size_t)(end - f->body) > WS_MAX_MSG ? -1 : 0;
        f->body_len = (size_t)(nul - f->body);
    }
    return (long)(f->body + f->body_len + 1 - p);
}

int stomp_is(const struct sframe *f, const char *cmd)
{
    size_t n = strlen(cmd);
    return f->cmd_len == n && !memcmp(f->cmd, cmd, n);
}

/* The value of the first header called name (not unescaped), or NULL. */
const uint8_t *stomp_header(const struct sframe *f, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const uint8_t *p = f->head, *end = f->head + f->head_len;
    while (p < end) {
        const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        size_t ll = (size_t)(e - p) - (e > p && e[-1] == '\r');
        if (ll > nl && p[nl] == ':' && !memcmp(p, name, nl)) {
            *len = ll - nl - 1;
            return p + nl + 1;
        }
        p = e + 1;
    }
    return NULL;
}

/* Writes head (the command and header lines, each ending in LF), content-length, the
 * blank line, body and the NUL to dst; returns the length. dst must hold len + strlen(head)
 * + 32 bytes. */
size_t stomp_frame(uint8_t *dst, const char *head, const uint8_t *body, size_t len)
{
    size_t hl = strlen(head);
    memcpy(dst, head, hl);
    hl += (size_t)sprintf((char *)dst + hl, "content-length:%zu\n\n", len);
    if (len)
        memcpy(dst + hl, body, len);
    dst[hl + len] = 0;
    return hl + len + 1;
}
