/* libFuzzer harness for the HTTP/1.1 request parser (core/http1_parser.c).
 *
 * Input: byte 0 picks the limits, bytes 1-2 pick two cut points, the rest is the byte
 * stream a client sends. It is fed the way a connection feeds it (bytes collect in a
 * buffer, each feed consumes some, a complete request is walked and next() called; an
 * error or an upgrade ends the stream), once whole and once in three pieces.
 * Checks: no crash, leak or UB; every complete request is well-formed and within the
 * limits; the parser takes every byte it is given while it needs more; both feedings give
 * the same requests and end the same way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "http/http1_parser.h"

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
      abort();                                                                   \
    }                                                                            \
  } while (0)

typedef struct {
  rt_http1_parser p;
  rt_buf in, out;
  size_t maxh, maxb, pos;
  int done;
} stream;

static void put(rt_buf *o, const char *tag, const void *p, size_t n) {
  char num[32];
  int k = snprintf(num, sizeof num, "%s%zu:", tag, n);
  CHECK(rt_buf_append(o, num, (size_t)k) == 0);
  CHECK(rt_buf_append(o, p, n) == 0);
}

static void walk(stream *s, const rt_http_req *r) {
  rt_buf *o = &s->out;
  CHECK(r->method && r->target && r->path && r->query && r->body);
  size_t tl = strlen(r->target), pl = strlen(r->path), ql = strlen(r->query);
  CHECK(r->path[0] == '/');
  CHECK(pl <= tl && ql <= tl);
  CHECK(r->nheaders >= 0 && r->nheaders <= RT_HTTP_MAX_HEADERS);
  CHECK(r->body_len <= s->maxb);
  CHECK(r->http_minor >= 0 && r->http_minor <= 9);
  size_t hbytes = tl;
  put(o, "M", r->method, strlen(r->method));
  put(o, "T", r->target, tl);
  put(o, "P", r->path, pl);
  put(o, "Q", r->query, ql);
  for (int i = 0; i < r->nheaders; i++) {
    const char *n = r->headers[i].name, *v = r->headers[i].value;
    CHECK(n && v);
    size_t nl = strlen(n), vl = strlen(v);
    for (size_t j = 0; j < nl; j++) CHECK(!(n[j] >= 'A' && n[j] <= 'Z'));
    CHECK(rt_http_req_header(r, n) != NULL);
    hbytes += nl + vl;
    put(o, "N", n, nl);
    put(o, "V", v, vl);
  }
  /* absolute-form targets are shortened, so this is an upper bound on what was counted */
  CHECK(hbytes <= s->maxh);
  put(o, "B", r->body, r->body_len);
  char flags[64];
  int k = snprintf(flags, sizeof flags, "m%d k%d u%d|", r->http_minor, r->keep_alive, r->upgrade);
  CHECK(rt_buf_append(o, flags, (size_t)k) == 0);
}

static void eat(stream *s, const uint8_t *d, size_t n) {
  if (s->done || n == 0) return;
  CHECK(rt_buf_append(&s->in, d, n) == 0);
  while (s->in.len && !s->done) {
    size_t len = s->in.len;
    size_t used = rt_http1_parser_feed(&s->p, rt_buf_start(&s->in), len);
    CHECK(used <= len);
    rt_buf_consume(&s->in, used);
    s->pos += used;
    if (s->p.error_status) {
      CHECK(s->p.error_status >= 400 && s->p.error_status <= 599 && s->p.error);
      CHECK(!s->p.complete);
      CHECK(rt_buf_append(&s->out, "E|", 2) == 0);
      s->done = 1;
      break;
    }
    if (!s->p.complete) {
      CHECK(used == len);
      break;
    }
    walk(s, &s->p.req);
    if (s->p.req.upgrade) {
      char up[32];
      int k = snprintf(up, sizeof up, "U@%zu|", s->pos);
      CHECK(rt_buf_append(&s->out, up, (size_t)k) == 0);
      s->done = 1;
      break;
    }
    rt_http1_parser_next(&s->p);
  }
}

static void run(stream *s, const uint8_t *d, size_t n, size_t maxh, size_t maxb, size_t c1, size_t c2) {
  memset(s, 0, sizeof *s);
  s->maxh = maxh;
  s->maxb = maxb;
  rt_http1_parser_init(&s->p, maxh, maxb);
  if (c1 > n) c1 = n;
  if (c2 > n) c2 = n;
  if (c2 < c1) {
    size_t t = c1;
    c1 = c2;
    c2 = t;
  }
  eat(s, d, c1);
  eat(s, d + c1, c2 - c1);
  eat(s, d + c2, n - c2);
  if (!s->done) {
    CHECK(!s->p.complete);
    CHECK(rt_buf_append(&s->out, "I|", 2) == 0);  /* incomplete at the end */
  }
}

static void done(stream *s) {
  rt_http1_parser_free(&s->p);
  rt_buf_free(&s->in);
  rt_buf_free(&s->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  static const size_t hlim[] = {64, 300, 2048, 16384}, blim[] = {0, 16, 1024, 1 << 20};
  size_t maxh = hlim[data[0] & 3], maxb = blim[(data[0] >> 2) & 3];
  const uint8_t *d = data + 3;
  size_t n = size - 3;
  size_t c1 = n ? data[1] % (n + 1) : 0, c2 = n ? (data[1] + data[2] * 7) % (n + 1) : 0;

  stream whole, split;
  run(&whole, d, n, maxh, maxb, n, n);
  run(&split, d, n, maxh, maxb, c1, c2);
  if (whole.out.len != split.out.len ||
      memcmp(rt_buf_start(&whole.out), rt_buf_start(&split.out), whole.out.len) != 0) {
    fprintf(stderr, "split at %zu,%zu changes the result\nwhole: %.*s\nsplit: %.*s\n", c1, c2,
            (int)whole.out.len, (char *)rt_buf_start(&whole.out), (int)split.out.len,
            (char *)rt_buf_start(&split.out));
    abort();
  }
  done(&whole);
  done(&split);
  return 0;
}
