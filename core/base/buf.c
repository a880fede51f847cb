#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rt_buf_reserve(rt_buf *b, size_t extra) {
  if (b->off + b->len + extra <= b->cap) return 0;
  /* Slide the unread bytes to the front before growing: most reads are consumed whole. */
  if (b->off && b->len + extra <= b->cap) {
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
    return 0;
  }
  size_t need = b->len + extra, cap = b->cap ? b->cap : 1024;
  while (cap < need) cap *= 2;
  uint8_t *p = malloc(cap);
  if (!p) return -1;
  if (b->len) memcpy(p, b->data + b->off, b->len);
  free(b->data);
  b->data = p;
  b->off = 0;
  b->cap = cap;
  return 0;
}

int rt_buf_append(rt_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;  /* an empty buffer may have no memory: no memcpy to NULL */
  if (rt_buf_reserve(b, n) < 0) return -1;
  memcpy(rt_buf_end(b), p, n);
  b->len += n;
  return 0;
}

int rt_buf_appendf(rt_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || rt_buf_reserve(b, (size_t)n + 1) < 0) return -1;
  va_start(ap, fmt);
  vsnprintf((char *)rt_buf_end(b), (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void rt_buf_consume(rt_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    b->off = 0;
    return;
  }
  b->off += n;
  b->len -= n;
}

void rt_buf_free(rt_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

rt_chunk *rt_chunk_new_cap(size_t len, size_t cap) {
  if (cap < len) cap = len;
  rt_chunk *c = malloc(sizeof *c + cap);
  if (!c) return NULL;
  c->refs = 1;
  c->len = len;
  c->cap = cap;
  c->pool = NULL;
  return c;
}

rt_chunk *rt_chunk_new(size_t len) { return rt_chunk_new_cap(len, len); }

rt_chunk *rt_chunk_copy(const void *p, size_t len) {
  rt_chunk *c = rt_chunk_new(len);
  if (c && len) memcpy(c->data, p, len);
  return c;
}

void rt_chunk_unref(rt_chunk *c) {
  if (!c || --c->refs) return;
  rt_chunk_pool *p = c->pool;
  if (p && p->nspare < p->max_spare) {
    memcpy(c->data, &p->spare, sizeof p->spare);
    p->spare = c;
    p->nspare++;
    return;
  }
  free(c);
}

void rt_chunk_pool_init(rt_chunk_pool *p, size_t cap, size_t max_spare) {
  /* The free list is linked through the data: room for a pointer at least. */
  if (cap < sizeof(rt_chunk *)) cap = sizeof(rt_chunk *);
  *p = (rt_chunk_pool){.cap = cap, .max_spare = max_spare};
}

rt_chunk *rt_chunk_pool_get(rt_chunk_pool *p, size_t len) {
  if (len > p->cap) return rt_chunk_new(len);
  rt_chunk *c = p->spare;
  if (c) {
    memcpy(&p->spare, c->data, sizeof p->spare);
    p->nspare--;
    c->refs = 1;
    c->len = len;
    return c;
  }
  if (!(c = rt_chunk_new_cap(len, p->cap))) return NULL;
  c->pool = p;
  return c;
}

void rt_chunk_pool_drain(rt_chunk_pool *p) {
  while (p->spare) {
    rt_chunk *c = p->spare;
    memcpy(&p->spare, c->data, sizeof p->spare);
    free(c);
  }
  p->nspare = 0;
}

int rt_outq_push(rt_outq *q, rt_chunk *c) {
  if (q->tail == q->cap) {
    if (q->head > q->cap / 2) {
      /* Reuse the consumed front instead of growing. */
      memmove(q->v, q->v + q->head, (q->tail - q->head) * sizeof *q->v);
      q->tail -= q->head;
      q->head = 0;
    } else {
      size_t cap = q->cap ? q->cap * 2 : 4;
      rt_outq_entry *v = realloc(q->v, cap * sizeof *v);
      if (!v) return -1;
      q->v = v;
      q->cap = cap;
    }
  }
  q->v[q->tail].chunk = rt_chunk_ref(c);
  q->v[q->tail].off = 0;
  q->tail++;
  q->bytes += c->len;
  return 0;
}

int rt_outq_append(rt_outq *q, const void *p, size_t n) {
  if (q->head == q->tail) return -1;
  rt_chunk *last = q->v[q->tail - 1].chunk;
  if (last->refs != 1 || last->cap - last->len < n) return -1;
  memcpy(last->data + last->len, p, n);
  last->len += n;
  q->bytes += n;
  return 0;
}

void rt_outq_advance(rt_outq *q, size_t n) {
  q->bytes -= n;
  while (n && q->head < q->tail) {
    rt_outq_entry *e = &q->v[q->head];
    size_t left = e->chunk->len - e->off;
    if (n < left) {
      e->off += n;
      return;
    }
    n -= left;
    rt_chunk_unref(e->chunk);
    q->head++;
  }
  /* Skip empty chunks so the queue reads as empty when nothing is left to send. */
  while (q->head < q->tail && q->v[q->head].chunk->len == q->v[q->head].off) {
    rt_chunk_unref(q->v[q->head].chunk);
    q->head++;
  }
  if (q->head == q->tail) q->head = q->tail = 0;
}

void rt_outq_drop_unstarted(rt_outq *q) {
  size_t keep = q->head;
  if (q->head < q->tail && q->v[q->head].off > 0) keep++;
  for (size_t i = keep; i < q->tail; i++) {
    q->bytes -= q->v[i].chunk->len - q->v[i].off;
    rt_chunk_unref(q->v[i].chunk);
  }
  q->tail = keep;
  if (q->head == q->tail) q->head = q->tail = 0;
}

void rt_outq_clear(rt_outq *q) {
  for (size_t i = q->head; i < q->tail; i++) rt_chunk_unref(q->v[i].chunk);
  free(q->v);
  memset(q, 0, sizeof *q);
}
