/*
 * wsload_stomp.c — the STOMP 1.2 client behind wsload's STOMP modes, over WebSocket
 * (subprotocol v12.stomp, one frame per message) or straight over TCP.
 *
 * Every connection sends CONNECT (heart-beats off: the bench never idles) and, without
 * waiting for CONNECTED, what its role needs: a fan-out subscriber SUBSCRIBEs with
 * ack:auto; a queue consumer SUBSCRIBEs with ack:client-individual and a receipt, and
 * ACKs each MESSAGE as it parses it. A MESSAGE body is the same stamped payload the
 * WebSocket modes send, so latency and the fan-out window work the same way.
 *
 * In the queue mode a message's sequence number carries its producer (the connection
 * index, shifted left by SEQ_SHIFT): a consumer's delivery frees a slot of that
 * producer's window, and sent minus received per producer is what got lost.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "wsload_int.h"

#define SEQ_SHIFT 40

/* Queues one frame on c: as it is over TCP, else as a masked WebSocket message —
 * binary when it carries a body (the stamp is any bytes), text otherwise. */
static void stomp_out(struct bench *b, struct conn *c, const char *head, const uint8_t *body,
                      size_t len)
{
    size_t max = strlen(head) + len + 32;
    if (b->o.transport == T_TCP) {
        uint8_t *dst = wbuf_space(b, c, max);
        b->wlen += stomp_frame(dst, head, body, len);
        return;
    }
    size_t fl = stomp_frame(b->sbuf, head, body, len);
    uint8_t *dst = wbuf_space(b, c, fl + 14);
    b->wlen += ws_frame(dst, body ? 2 : 1, b->sbuf, fl, rng_next(b));
}

void stomp_open(struct bench *b, struct conn *c)
{
    char head[600];
    snprintf(head, sizeof head, "CONNECT\naccept-version:1.2\nhost:%s\nheart-beat:0,0\n", b->o.stomp_host);
    stomp_out(b, c, head, NULL, 0);
    if (c->role == R_SUB) {
        snprintf(head, sizeof head, "SUBSCRIBE\nid:0\ndestination:%s\nack:auto\n",
                 b->o.sub_dest);
        stomp_out(b, c, head, NULL, 0);
    } else if (c->role == R_CONS) {
        snprintf(head, sizeof head,
                 "SUBSCRIBE\nid:0\ndestination:%s\nack:client-individual\nreceipt:sub\n",
                 b->o.sub_dest);
        stomp_out(b, c, head, NULL, 0);
    }
}

/* One stamped message to the destination; in the queue mode the sequence number also
 * names the producer. */
void stomp_send_msg(struct bench *b, struct conn *c, uint64_t seq)
{
    char head[600];
    snprintf(head, sizeof head, "SEND\ndestination:%s\ncontent-type:application/octet-stream\n",
             b->o.dest);
    memcpy(b->payload, &b->now_ns, 8);
    memcpy(b->payload + 8, &seq, 8);
    stomp_out(b, c, head, b->payload, (size_t)b->o.size);
}

static void on_error_frame(struct bench *b, const struct sframe *f)
{
    size_t ml = 0;
    const uint8_t *m = stomp_header(f, "message", &ml);
    b->stomp_errors++;
    if (!b->first_stomp_error[0])
        snprintf(b->first_stomp_error, sizeof b->first_stomp_error, "%.*s",
                 m ? (int)ml : 7, m ? (const char *)m : "no text");
}

static void on_message_frame(struct bench *b, struct conn *c, const struct sframe *f)
{
    uint64_t ts, seq;
    size_t len;
    stamp_read(f->body, f->body_len, &ts, &seq);
    if (c->role == R_CONS) {
        const uint8_t *ack = stomp_header(f, "ack", &len);
        if (ack && len < 32) {
            char head[64];
            snprintf(head, sizeof head, "ACK\nid:%.*s\n", (int)len, (const char *)ack);
            stomp_out(b, c, head, NULL, 0);
            b->acks++;
        }
        if (stomp_header(f, "redelivered", &len))
            b->redelivered++;
    }
    on_message(b, c, ts, seq);
}

static void on_stomp_frame(struct bench *b, struct conn *c, const struct sframe *f)
{
    if (stomp_is(f, "MESSAGE")) {
        on_message_frame(b, c, f);
    } else if (stomp_is(f, "RECEIPT")) {
        if (c->role == R_CONS && !c->got_any) {   /* the subscription is in place */
            c->got_any = 1;
            b->synced++;
        }
    } else if (stomp_is(f, "ERROR")) {
        on_error_frame(b, f);
    }
}

/* Parses the frames in p; returns the bytes used (a frame not all there stays), or -1
 * when the stream cannot be STOMP. */
long stomp_consume(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && c->state == S_OPEN) {
        struct sframe f;
        long fl = stomp_parse(p + off, n - off, &f);
        if (fl < 0) {
            b->stomp_errors++;
            if (!b->first_stomp_error[0])
                snprintf(b->first_stomp_error, sizeof b->first_stomp_error,
                         "a frame from the server did not parse");
            return -1;
        }
        if (fl == 0)
            break;
        if (f.cmd_len)
            on_stomp_frame(b, c, &f);
        off += (size_t)fl;
    }
    return (long)off;
}

/* ---- the queue mode ---------------------------------------------------------------- */

/* Every live consumer has its subscription receipt. */
int queue_synced(const struct bench *b) { return b->synced >= b->alive_subs; }

/* Before the loop blocks: each producer refills its window, in one write. */
void queue_top_up(struct bench *b)
{
    b->now_ns = mono_ns();
    for (int i = b->o.conns; i < b->n; i++) {
        struct conn *p = &b->c[i];
        if (p->state != S_OPEN || p->inflight >= (uint32_t)b->o.inflight)
            continue;
        while (p->inflight < (uint32_t)b->o.inflight) {
            stomp_send_msg(b, p, (uint64_t)i << SEQ_SHIFT | p->sent);
            p->sent++;
            p->inflight++;
            b->sent++;
        }
        wbuf_flush(b, p);
    }
}

/* A consumer got message seq: the producer it names has a slot free again. Returns that
 * producer, or NULL when seq is not one of ours. */
struct conn *queue_producer_of(struct bench *b, uint64_t seq)
{
    uint64_t i = seq >> SEQ_SHIFT;
    if (i < (uint64_t)b->o.conns || i >= (uint64_t)b->n)
        return NULL;
    return &b->c[i];
}
