/* Byte buffers and shared chunks.
 *
 * rt_buf is a growable buffer a single owner reads into and consumes from the front.
 * rt_chunk is an immutable, reference-counted block of bytes: one WebSocket frame is built
 * once into a chunk and queued to ten thousand connections, each holding a reference. */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_buf {
  uint8_t *data;
  size_t len;   /* bytes held, starting at data[off] */
  size_t off;   /* bytes consumed at the front, reclaimed lazily */
  size_t cap;
} rt_buf;

int rt_buf_reserve(rt_buf *b, size_t extra);  /* room for extra bytes after the end */
int rt_buf_append(rt_buf *b, const void *p, size_t n);
int rt_buf_appendf(rt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An empty buffer may have no memory at all: never offset a NULL pointer. */
static inline uint8_t *rt_buf_start(const rt_buf *b) { return b->data ? b->data + b->off : b->data; }
static inline uint8_t *rt_buf_end(const rt_buf *b) { return b->data ? b->data + b->off + b->len : b->data; }
void rt_buf_consume(rt_buf *b, size_t n);
void rt_buf_free(rt_buf *b);  /* frees the memory; the buffer is empty and reusable */

typedef struct rt_chunk_pool rt_chunk_pool;

typedef struct rt_chunk {
  int refs;
  size_t len;
  size_t cap;           /* room in data; a chunk only one queue holds may grow into it */
  rt_chunk_pool *pool;  /* where the last unref returns it; NULL: freed */
  uint8_t data[];
} rt_chunk;

rt_chunk *rt_chunk_new(size_t len);                 /* one reference, len bytes to fill */
rt_chunk *rt_chunk_new_cap(size_t len, size_t cap);
rt_chunk *rt_chunk_copy(const void *p, size_t len);
static inline rt_chunk *rt_chunk_ref(rt_chunk *c) { c->refs++; return c; }
void rt_chunk_unref(rt_chunk *c);

/* Spare chunks of one size, kept for reuse: the write queues' coalescing chunks live for
 * one loop turn each, and an echo server would otherwise malloc and free one per
 * connection per turn (and glibc would trim and regrow the heap under that churn).
 * Every chunk taken must be released before the pool is drained. */
struct rt_chunk_pool {
  rt_chunk *spare;  /* linked through their data */
  size_t nspare, max_spare;
  size_t cap;       /* the size of every chunk in the pool */
};

void rt_chunk_pool_init(rt_chunk_pool *p, size_t cap, size_t max_spare);
rt_chunk *rt_chunk_pool_get(rt_chunk_pool *p, size_t len);  /* one reference (len > cap: unpooled) */
void rt_chunk_pool_drain(rt_chunk_pool *p);                  /* frees the spares */

/* A connection's write queue: chunk references, the first possibly half written. */
typedef struct rt_outq_entry {
  rt_chunk *chunk;
  size_t off;
} rt_outq_entry;

typedef struct rt_outq {
  rt_outq_entry *v;
  size_t head, tail, cap;
  size_t bytes;  /* unsent bytes in the queue */
} rt_outq;

int rt_outq_push(rt_outq *q, rt_chunk *c);  /* takes a new reference */
/* Appends bytes to the last chunk when this queue alone holds it and it has room (small
 * replies coalesce: no allocation, fewer iovecs). Returns 0 when it did, -1 otherwise. */
int rt_outq_append(rt_outq *q, const void *p, size_t n);
/* Marks n bytes as written, dropping chunks that are done. */
void rt_outq_advance(rt_outq *q, size_t n);
/* Drops every entry that has not started leaving (keeps a half-written head, so the peer
 * never sees a torn frame). */
void rt_outq_drop_unstarted(rt_outq *q);
void rt_outq_clear(rt_outq *q);
static inline size_t rt_outq_count(const rt_outq *q) { return q->tail - q->head; }

#endif
