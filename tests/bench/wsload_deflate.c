/*
 * wsload_deflate.c — permessage-deflate for the load generator (--deflate), and the
 * JSON payloads (--json) worth compressing.
 *
 * The client offers "server_no_context_takeover" so that every message the server sends
 * inflates on its own. Fan-out subscribers of one publish get byte-identical frames from
 * rtserver (and from npm ws with no context, whose output is deterministic too): in
 * fan-out, inflated messages are kept in a 4096-entry cache indexed by a hash of their
 * compressed bytes (the window holds 64 messages in flight), and a frame identical to a
 * cached one (memcmp) is not inflated again. That keeps the generator's CPU for the server it measures; what a real client
 * pays per message is the client's cost, not the server's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "wsload_int.h"

const char *const deflate_offer =
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover; client_max_window_bits\r\n";

#define ZCACHE 4096

struct zentry {
    uint8_t *z, *plain;
    size_t z_len, plain_len;
};

struct zstate {
    z_stream in, out;
    struct zentry cache[ZCACHE];
    uint8_t plain[WS_MAX_MSG];        /* what the last message inflated to */
    uint8_t packed[WS_MAX_MSG + 64];  /* a message compressed for sending */
};

static struct zstate *zs(struct bench *b)
{
    if (!b->z) {
        struct zstate *z = calloc(1, sizeof *z);
        if (!z || inflateInit2(&z->in, -15) != Z_OK ||
            deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            abort();
        b->z = z;
    }
    return b->z;
}

/* Eight bytes a step: a zlib CRC of every delivery cost the generator about as much as
 * the server's own work per delivery. */
static uint32_t payload_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ h >> 29);
}

static void cache_put(struct zentry *e, const uint8_t *p, size_t n, const uint8_t *plain,
                      size_t plain_len)
{
    free(e->z);
    free(e->plain);
    e->z = malloc(n ? n : 1);
    e->plain = malloc(plain_len ? plain_len : 1);
    if (!e->z || !e->plain) {
        free(e->z);
        free(e->plain);
        e->z = e->plain = NULL;
        return;
    }
    memcpy(e->z, p, n);
    memcpy(e->plain, plain, plain_len);
    e->z_len = n;
    e->plain_len = plain_len;
}

/* Inflates a received compressed message (server frames are not masked). Returns 0 and
 * the message in *out, or -1 when it is corrupt or too big. */
int deflate_inflate(struct bench *b, const uint8_t *p, size_t n, const uint8_t **out,
                    size_t *out_len)
{
    struct zstate *z = zs(b);
    struct zentry *e = &z->cache[payload_hash(p, n) % ZCACHE];
    if (e->z && e->z_len == n && memcmp(e->z, p, n) == 0) {
        b->inflate_hits++;
        *out = e->plain;
        *out_len = e->plain_len;
        return 0;
    }
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z->in.next_out = z->plain;
    z->in.avail_out = sizeof z->plain;
    int rc = Z_OK;
    for (int part = 0; part < 2 && rc == Z_OK; part++) {
        z->in.next_in = (Bytef *)(part ? tail : p);
        z->in.avail_in = part ? 4 : (uInt)n;
        rc = inflate(&z->in, Z_SYNC_FLUSH);
        if (rc == Z_BUF_ERROR && z->in.avail_in == 0)
            rc = Z_OK;
        if (z->in.avail_in)
            rc = Z_DATA_ERROR;
    }
    inflateReset(&z->in);
    if (rc != Z_OK && rc != Z_STREAM_END)
        return -1;
    b->inflated++;
    *out = z->plain;
    *out_len = sizeof z->plain - z->in.avail_out;
    if (b->o.mode == M_FANOUT)         /* echoes differ every time: not worth keeping */
        cache_put(e, p, n, z->plain, *out_len);
    return 0;
}

/* Compresses a message for sending (no context); returns it in *out. */
void deflate_pack(struct bench *b, const uint8_t *p, size_t n, const uint8_t **out,
                  size_t *out_len)
{
    struct zstate *z = zs(b);
    z->out.next_in = (Bytef *)p;
    z->out.avail_in = (uInt)n;
    z->out.next_out = z->packed;
    z->out.avail_out = sizeof z->packed;
    deflate(&z->out, Z_SYNC_FLUSH);
    deflateReset(&z->out);
    *out = z->packed;
    *out_len = sizeof z->packed - z->out.avail_out - 4;  /* without 00 00 ff ff */
}

/* Fills p[0..n) with order events as JSON, values varied like real ones (a payload of
 * one repeated byte would compress to nothing and flatter everyone). */
void json_fill(struct bench *b, uint8_t *p, size_t n)
{
    static const char *const syms[] = {"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"};
    static const char *const sides[] = {"buy", "sell"};
    size_t off = 0;
    char rec[256];
    while (off < n) {
        uint32_t r = rng_next(b);
        int k = snprintf(rec, sizeof rec,
                         "%s{\"id\":%u,\"symbol\":\"%s\",\"side\":\"%s\",\"price\":%u.%02u,"
                         "\"qty\":%u,\"account\":\"acct-%04u\",\"ts\":\"2026-12-07T01:%02u:%02u.%03uZ\"}",
                         off ? "," : "[", r % 1000000, syms[r % 5], sides[(r >> 3) & 1],
                         50 + (r >> 4) % 200, (r >> 12) % 100, 1 + (r >> 9) % 500,
                         (r >> 14) % 10000, (r >> 20) % 60, (r >> 6) % 60, r % 1000);
        size_t m = (size_t)k < n - off ? (size_t)k : n - off;
        memcpy(p + off, rec, m);
        off += m;
    }
    if (n > 1)
        p[n - 1] = ']';
}
