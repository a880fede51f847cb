/* libFuzzer harness for the STOMP frame codec.
 * Input: byte 0 picks a limits profile, bytes 1-2 pick two cut points, the rest is the
 * stream. Checks: no crash or leak; the same frames and result whether the stream comes
 * in one piece or in three; every parsed frame survives serialize -> parse unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/stomp_frame.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                             \
        }                                                                        \
    } while (0)

static void put_num(rt_stomp_buf *t, char tag, size_t n)
{
    char s[32];
    int k = snprintf(s, sizeof(s), "%c%zu:", tag, n);
    CHECK(rt_stomp_buf_append(t, s, (size_t)k) == 0);
}

/* Canonical bytes for a frame; skip_cl leaves out content-length headers, which the
 * serializer rewrites. */
static void dump(rt_stomp_buf *t, const rt_stomp_frame *f, int skip_cl)
{
    put_num(t, 'F', (size_t)f->command);
    for (size_t i = 0; i < f->nheaders; i++) {
        const rt_stomp_header *h = &f->headers[i];
        CHECK(h->name[h->name_len] == '\0' && h->value[h->value_len] == '\0');
        if (skip_cl && h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0)
            continue;
        put_num(t, 'N', h->name_len);
        CHECK(rt_stomp_buf_append(t, h->name, h->name_len) == 0);
        put_num(t, 'V', h->value_len);
        CHECK(rt_stomp_buf_append(t, h->value, h->value_len) == 0);
    }
    put_num(t, 'B', f->body_len);
    CHECK(rt_stomp_buf_append(t, f->body, f->body_len) == 0);
    CHECK(f->body[f->body_len] == '\0');
}

static void round_trip(const rt_stomp_frame *f, const rt_stomp_limits *lim)
{
    rt_stomp_buf wire = {0}, a = {0}, b = {0};
    char err[128];
    long n = rt_stomp_write_frame(&wire, f->command, f->headers, f->nheaders, f->body,
                                  f->body_len, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "serializer refused a parsed frame: %s\n", err);
        abort();
    }
    CHECK((size_t)n == wire.len);
    /* Escaping can double a header line; the rewritten content-length may add one. */
    rt_stomp_limits l2 = *lim;
    l2.max_headers = lim->max_headers + 1;
    l2.max_header_line = 2 * lim->max_header_line + 32;
    l2.max_command = 0;
    rt_stomp_parser *p = rt_stomp_parser_new(&l2);
    CHECK(p);
    rt_stomp_frame g;
    size_t used = 0;
    int rc = rt_stomp_parser_feed(p, wire.data, wire.len, &used, &g);
    if (rc != RT_STOMP_FRAME) {
        fprintf(stderr, "reparse failed: %d %s\n", rc, rt_stomp_parser_error(p));
        abort();
    }
    CHECK(used == wire.len);
    dump(&a, f, 1);
    dump(&b, &g, 1);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    rt_stomp_parser_free(p);
    rt_stomp_buf_free(&wire);
    rt_stomp_buf_free(&a);
    rt_stomp_buf_free(&b);
}

/* Feed one piece, taking every frame out. Returns the last result. */
static int feed(rt_stomp_parser *p, const uint8_t *d, size_t n, rt_stomp_buf *t,
                const rt_stomp_limits *lim)
{
    size_t off = 0;
    while (off < n) {
        size_t used = 0;
        rt_stomp_frame f;
        int rc = rt_stomp_parser_feed(p, d + off, n - off, &used, &f);
        CHECK(used <= n - off);
        off += used;
        if (rc == RT_STOMP_FRAME) {
            dump(t, &f, 0);
            if (lim)
                round_trip(&f, lim);
            continue;
        }
        if (rc < 0) {
            CHECK(rt_stomp_parser_error(p)[0] != '\0');
            return rc;
        }
        CHECK(rc == RT_STOMP_NEED_MORE && off == n);
    }
    return RT_STOMP_NEED_MORE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    rt_stomp_limits lim;
    rt_stomp_limits_default(&lim);
    switch (data[0] & 3) {
    case 1: lim = (rt_stomp_limits){64, 4, 32, 16}; break;
    case 2: lim = (rt_stomp_limits){1, 1, 12, 11}; break;
    case 3: lim = (rt_stomp_limits){4096, 16, 256, 11}; break;
    default: break;
    }
    const uint8_t *in = data + 3;
    size_t n = size - 3;
    size_t c1 = data[1] % (n + 1);
    size_t c2 = c1 + data[2] % (n - c1 + 1);

    rt_stomp_buf ta = {0}, tb = {0};
    rt_stomp_parser *pa = rt_stomp_parser_new(&lim);
    rt_stomp_parser *pb = rt_stomp_parser_new(&lim);
    CHECK(pa && pb);

    int ra = feed(pa, in, n, &ta, &lim);
    int rb = feed(pb, in, c1, &tb, NULL);
    if (rb >= 0)
        rb = feed(pb, in + c1, c2 - c1, &tb, NULL);
    if (rb >= 0)
        rb = feed(pb, in + c2, n - c2, &tb, NULL);

    CHECK(ra == rb);
    CHECK(ta.len == tb.len && (ta.len == 0 || memcmp(ta.data, tb.data, ta.len) == 0));
    CHECK(strcmp(rt_stomp_parser_error(pa), rt_stomp_parser_error(pb)) == 0);
    CHECK(rt_stomp_parser_frames(pa) == rt_stomp_parser_frames(pb));
    CHECK(rt_stomp_parser_heartbeats(pa) == rt_stomp_parser_heartbeats(pb));

    rt_stomp_parser_free(pa);
    rt_stomp_parser_free(pb);
    rt_stomp_buf_free(&ta);
    rt_stomp_buf_free(&tb);
    return 0;
}
