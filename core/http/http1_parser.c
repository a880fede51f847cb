#include "http1_parser.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

static rt_http1_parser *self(http_parser *hp) { return hp->data; }

static int fail(rt_http1_parser *p, int status, const char *why) {
  p->error_status = status;
  p->error = why;
  return -1;
}

/* Header bytes are counted across all callbacks so a peer cannot grow them unbounded. */
static int count(rt_http1_parser *p, size_t n) {
  p->header_bytes += n;
  if (p->header_bytes > p->max_header_bytes)
    return fail(p, 431, "request header fields too large");
  return 0;
}

static int append(rt_http1_parser *p, const char *at, size_t n, int lower) {
  if (rt_buf_reserve(&p->strings, n + 1) < 0) return fail(p, 500, "out of memory");
  uint8_t *dst = rt_buf_end(&p->strings);
  for (size_t i = 0; i < n; i++) dst[i] = lower ? (uint8_t)tolower((unsigned char)at[i]) : (uint8_t)at[i];
  p->strings.len += n;
  return 0;
}

static int terminate(rt_http1_parser *p) {
  /* RFC 9112 5: a value's trailing whitespace is not part of it. */
  if (p->in_value)
    while (p->strings.len > p->value_off[p->nheaders - 1] &&
           (rt_buf_end(&p->strings)[-1] == ' ' || rt_buf_end(&p->strings)[-1] == '\t'))
      p->strings.len--;
  return rt_buf_append(&p->strings, "", 1) < 0 ? fail(p, 500, "out of memory") : 0;
}

static int on_message_begin(http_parser *hp) {
  rt_http1_parser *p = self(hp);
  p->strings.len = p->strings.off = 0;
  p->target_off = 0;
  p->nheaders = 0;
  p->in_value = 0;
  p->header_bytes = 0;
  p->body.len = p->body.off = 0;
  p->headers_done = 0;
  return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n) {
  rt_http1_parser *p = self(hp);
  return count(p, n) < 0 ? -1 : append(p, at, n, 0);
}

static int on_header_field(http_parser *hp, const char *at, size_t n) {
  rt_http1_parser *p = self(hp);
  if (count(p, n) < 0) return -1;
  /* Trailers of a chunked body are counted against the limit but not kept: no app
   * here needs them, and merging them into the headers is not allowed (RFC 9110 6.5.1). */
  if (p->headers_done) return 0;
  if (memchr(at, ' ', n) || memchr(at, '\t', n)) return fail(p, 400, "whitespace in a header name");
  /* A new name starts after the target or after the previous value. */
  if (p->nheaders == 0 || p->in_value) {
    if (terminate(p) < 0) return -1;
    if (p->nheaders == RT_HTTP_MAX_HEADERS) return fail(p, 431, "too many header fields");
    p->name_off[p->nheaders] = p->strings.len;
    p->value_off[p->nheaders] = 0;
    p->nheaders++;
    p->in_value = 0;
  }
  return append(p, at, n, 1);
}

static int on_header_value(http_parser *hp, const char *at, size_t n) {
  rt_http1_parser *p = self(hp);
  if (count(p, n) < 0) return -1;
  if (p->headers_done) return 0;
  if (!p->in_value) {
    if (terminate(p) < 0) return -1;
    p->value_off[p->nheaders - 1] = p->strings.len;
    p->in_value = 1;
  }
  return append(p, at, n, 0);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Splits the target into a decoded path and the raw query, appended to strings. */
static int split_target(rt_http1_parser *p) {
  const char *t = (const char *)p->strings.data + p->target_off;
  size_t tlen = strlen(t);
  if (tlen == 0 || t[0] != '/') {
    /* absolute-form "http://host/path" is allowed by RFC 9112 */
    const char *s = strstr(t, "://");
    if (!s || !(s = strchr(s + 3, '/'))) return fail(p, 400, "request target must be a path");
    tlen -= (size_t)(s - t);
    p->target_off += (size_t)(s - t);
  }
  char path[8192];
  size_t out = 0, i;
  t = (const char *)p->strings.data + p->target_off;
  for (i = 0; i < tlen && t[i] != '?' && t[i] != '#'; i++) {
    if (out + 1 >= sizeof path) return fail(p, 414, "URI too long");
    int ch = (unsigned char)t[i];
    if (ch == '%') {
      int hi = i + 2 < tlen ? hexval(t[i + 1]) : -1;
      int lo = i + 2 < tlen ? hexval(t[i + 2]) : -1;
      if (hi < 0 || lo < 0) return fail(p, 400, "bad percent-encoding in path");
      ch = hi * 16 + lo;
      if (ch == 0) return fail(p, 400, "NUL in path");
      i += 2;
    }
    path[out++] = (char)ch;
  }
  path[out] = 0;
  size_t qstart = i < tlen && t[i] == '?' ? i + 1 : i, qend = qstart;
  while (qend < tlen && t[qend] != '#') qend++;
  char query[8192];
  size_t qlen = qend - qstart;
  if (qlen >= sizeof query) return fail(p, 414, "URI too long");
  memcpy(query, t + qstart, qlen);
  query[qlen] = 0;
  p->path_off = p->strings.len;
  if (rt_buf_append(&p->strings, path, out + 1) < 0) return fail(p, 500, "out of memory");
  p->query_off = p->strings.len;
  if (rt_buf_append(&p->strings, query, qlen + 1) < 0) return fail(p, 500, "out of memory");
  return 0;
}

static int on_headers_complete(http_parser *hp) {
  rt_http1_parser *p = self(hp);
  if (terminate(p) < 0) return -1;
  p->headers_done = 1;
  if (p->nheaders && !p->in_value) {
    /* a name without a value: store an empty value */
    p->value_off[p->nheaders - 1] = p->strings.len - 1;
  }
  if (split_target(p) < 0) return -1;
  if (hp->content_length != ULLONG_MAX && hp->content_length > p->max_body_bytes)
    return fail(p, 413, "request body too large");
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n) {
  rt_http1_parser *p = self(hp);
  if (p->body.len + n > p->max_body_bytes) return fail(p, 413, "request body too large");
  return rt_buf_append(&p->body, at, n) < 0 ? fail(p, 500, "out of memory") : 0;
}

static void build_req(rt_http1_parser *p) {
  rt_http_req *r = &p->req;
  const char *s = (const char *)p->strings.data;
  memset(r, 0, sizeof *r);
  r->method = http_method_str((enum http_method)p->hp.method);
  r->target = s + p->target_off;
  r->path = s + p->path_off;
  r->query = s + p->query_off;
  r->nheaders = p->nheaders;
  for (int i = 0; i < p->nheaders; i++) {
    r->headers[i].name = s + p->name_off[i];
    r->headers[i].value = s + p->value_off[i];
  }
  r->body = p->body.len ? rt_buf_start(&p->body) : (const uint8_t *)"";
  r->body_len = p->body.len;
  r->http_minor = p->hp.http_minor;
  r->keep_alive = http_should_keep_alive(&p->hp);
  r->upgrade = p->hp.upgrade;
}

static int on_message_complete(http_parser *hp) {
  rt_http1_parser *p = self(hp);
  build_req(p);
  p->complete = 1;
  http_parser_pause(hp, 1);
  return 0;
}

void rt_http1_parser_init(rt_http1_parser *p, size_t max_header_bytes, size_t max_body_bytes) {
  memset(p, 0, sizeof *p);
  http_parser_init(&p->hp, HTTP_REQUEST);
  p->hp.data = p;
  http_parser_settings_init(&p->settings);
  p->settings.on_message_begin = on_message_begin;
  p->settings.on_url = on_url;
  p->settings.on_header_field = on_header_field;
  p->settings.on_header_value = on_header_value;
  p->settings.on_headers_complete = on_headers_complete;
  p->settings.on_body = on_body;
  p->settings.on_message_complete = on_message_complete;
  p->max_header_bytes = max_header_bytes;
  p->max_body_bytes = max_body_bytes;
}

void rt_http1_parser_free(rt_http1_parser *p) {
  rt_buf_free(&p->strings);
  rt_buf_free(&p->body);
}

size_t rt_http1_parser_feed(rt_http1_parser *p, const uint8_t *data, size_t len) {
  if (p->error_status || p->complete) return 0;
  if (!p->first_byte && len) p->first_byte = data[0];
  size_t n = http_parser_execute(&p->hp, &p->settings, (const char *)data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (e == HPE_PAUSED) {
    /* http_parser counts the byte that completed the message only for bodies it
     * reads itself; either way n is where the next request starts. */
    return n;
  }
  if (e != HPE_OK && !p->error_status) {
    if (e == HPE_HEADER_OVERFLOW) fail(p, 431, "request header fields too large");
    /* An unknown but well-formed method is 501; bytes that are no method at all (a TLS
     * hello on the wrong port) are a bad request. */
    else if (e == HPE_INVALID_METHOD && p->first_byte >= 'A' && p->first_byte <= 'Z')
      fail(p, 501, "method not implemented");
    else fail(p, 400, http_errno_description(e));
  } else if (e != HPE_OK && p->error_status == 0) {
    fail(p, 400, "bad request");
  }
  if (e == HPE_OK && p->hp.upgrade && !p->complete) {
    /* http_parser stops at the end of an upgrade request's headers. */
    build_req(p);
    p->complete = 1;
  }
  return n;
}

void rt_http1_parser_next(rt_http1_parser *p) {
  p->complete = 0;
  p->first_byte = 0;
  http_parser_pause(&p->hp, 0);
  if (p->body.cap > 65536) rt_buf_free(&p->body);
  /* Keep-alive connections that sit idle should not hold the big buffers. */
  if (p->strings.cap > 16384) rt_buf_free(&p->strings);
}

const char *rt_http_req_header(const rt_http_req *r, const char *lname) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, lname) == 0) return r->headers[i].value;
  return NULL;
}
