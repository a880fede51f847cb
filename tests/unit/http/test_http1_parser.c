/* Unit tests for core/http1_parser.c: HTTP/1.1 requests, limits, pipelining, splits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "feed.h"
#include "http/http1_parser.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define MAXH 4096
#define MAXB 1024

/* ---- helpers ------------------------------------------------------------------------ */

/* One request, fed whole. The parser stays alive for inspection; free it after. */
static size_t parse1(rt_http1_parser *p, const uint8_t *d, size_t n, size_t maxh, size_t maxb) {
  rt_http1_parser_init(p, maxh, maxb);
  return rt_http1_parser_feed(p, d, n);
}

static void assert_header(const rt_http_req *r, const char *name, const char *value) {
  const char *v = rt_http_req_header(r, name);
  if (!v) fail_msg("header '%s' missing", name);
  if (strcmp(v, value) != 0) fail_msg("header '%s' is '%s', want '%s'", name, v, value);
}

/* Every header string handed out must be NUL-terminated inside the parser's own buffer
 * (a value that runs to the end of the buffer is read past it by strlen/lua_pushstring). */
static void assert_strings_terminated(const rt_http1_parser *p) {
  const char *lo = (const char *)rt_buf_start(&p->strings), *hi = (const char *)rt_buf_end(&p->strings);
  const rt_http_req *r = &p->req;
  const char *all[2 * RT_HTTP_MAX_HEADERS + 3] = {r->target, r->path, r->query};
  int n = 3;
  for (int i = 0; i < r->nheaders; i++) {
    all[n++] = r->headers[i].name;
    all[n++] = r->headers[i].value;
  }
  for (int i = 0; i < n; i++) {
    assert_true(all[i] >= lo && all[i] < hi);
    const char *nul = memchr(all[i], 0, (size_t)(hi - all[i]));
    if (!nul) fail_msg("string %d (\"%.*s\") has no NUL inside the buffer", i, (int)(hi - all[i]), all[i]);
  }
}

/* A transcript of everything the parser reports for a stream, fed the way a connection
 * does: bytes collect in a buffer, each feed consumes some, a complete request is dumped
 * and next() called; an upgrade or an error ends the stream. */
typedef struct {
  rt_http1_parser p;
  rt_buf in;
  rt_buf out;
  int done;  /* error or upgrade: later bytes are not HTTP */
  int nreq;
  size_t pos; /* stream bytes the parser used */
} stream;

static void stream_init(stream *s, size_t maxh, size_t maxb) {
  memset(s, 0, sizeof *s);
  rt_http1_parser_init(&s->p, maxh, maxb);
}

static void stream_free(stream *s) {
  rt_http1_parser_free(&s->p);
  rt_buf_free(&s->in);
  rt_buf_free(&s->out);
}

static void dump_req(rt_buf *o, const rt_http_req *r) {
  rt_buf_appendf(o, "REQ %s [%s] path=[%s] query=[%s] 1.%d ka=%d up=%d h=%d\n", r->method, r->target,
                 r->path, r->query, r->http_minor, r->keep_alive, r->upgrade, r->nheaders);
  for (int i = 0; i < r->nheaders; i++)
    rt_buf_appendf(o, "  %s: %s\n", r->headers[i].name, r->headers[i].value);
  rt_buf_appendf(o, "  body %zu:", r->body_len);
  rt_buf_append(o, r->body, r->body_len);
  rt_buf_append(o, "\n", 1);
}

static void stream_eat(void *ctx, const uint8_t *piece, size_t n) {
  stream *s = ctx;
  if (s->done) return;
  rt_buf_append(&s->in, piece, n);
  while (s->in.len && !s->done) {
    size_t len = s->in.len;
    size_t used = rt_http1_parser_feed(&s->p, rt_buf_start(&s->in), len);
    if (used > len) fail_msg("feed used %zu of %zu bytes", used, len);
    rt_buf_consume(&s->in, used);
    s->pos += used;
    if (s->p.error_status) {
      rt_buf_appendf(&s->out, "ERROR %d\n", s->p.error_status);
      s->done = 1;
      break;
    }
    if (!s->p.complete) {
      /* Needing more, the parser must have taken everything it was given. */
      if (used != len) fail_msg("incomplete request, but only %zu of %zu bytes used", used, len);
      break;
    }
    dump_req(&s->out, &s->p.req);
    s->nreq++;
    if (s->p.req.upgrade) {
      rt_buf_appendf(&s->out, "UPGRADE at %zu\n", s->pos);
      s->done = 1;
      break;
    }
    rt_http1_parser_next(&s->p);
  }
}

/* The transcript of stream d fed whole; caller frees. */
static char *transcript(const uint8_t *d, size_t n, const size_t *cuts, int ncuts, size_t maxh,
                        size_t maxb) {
  stream s;
  stream_init(&s, maxh, maxb);
  tfeed_cuts(d, n, cuts, ncuts, stream_eat, &s);
  rt_buf_append(&s.out, "", 1);
  char *r = strdup((char *)rt_buf_start(&s.out));
  stream_free(&s);
  return r;
}

/* Feeds d at every split point (and every pair when short) and bytewise; each must give
 * exactly the whole-buffer transcript. Returns the whole transcript (caller frees). */
static char *check_all_splits(const uint8_t *d, size_t n, size_t maxh, size_t maxb) {
  char *whole = transcript(d, n, NULL, 0, maxh, maxb);
  size_t it = 0, cuts[2];
  int k;
  while ((k = tfeed_plan_next(n, 160, &it, cuts)) > 0) {
    char *t = transcript(d, n, cuts, k, maxh, maxb);
    if (strcmp(t, whole) != 0)
      fail_msg("cut at %zu%s%zu differs.\nwhole:\n%s\nsplit:\n%s", cuts[0], k > 1 ? "," : "",
               k > 1 ? cuts[1] : 0, whole, t);
    free(t);
  }
  stream s;
  stream_init(&s, maxh, maxb);
  tfeed_bytewise(d, n, stream_eat, &s);
  rt_buf_append(&s.out, "", 1);
  if (strcmp((char *)rt_buf_start(&s.out), whole) != 0)
    fail_msg("bytewise differs.\nwhole:\n%s\nbytewise:\n%s", whole, (char *)rt_buf_start(&s.out));
  stream_free(&s);
  return whole;
}

/* ---- requests ----------------------------------------------------------------------- */

static const char GET_REQ[] =
    "GET /index.html?x=1&y=two HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: Test/1.0\r\n"
    "Accept: */*\r\n"
    "X-Mixed-CASE: Value With Case\r\n"
    "\r\n";

static void test_get_with_headers(void **state) {
  rt_http1_parser p;
  size_t n = parse1(&p, S(GET_REQ), MAXH, MAXB);
  assert_int_equal(n, sizeof GET_REQ - 1);
  assert_int_equal(p.error_status, 0);
  assert_true(p.complete);
  const rt_http_req *r = &p.req;
  assert_string_equal(r->method, "GET");
  assert_string_equal(r->target, "/index.html?x=1&y=two");
  assert_string_equal(r->path, "/index.html");
  assert_string_equal(r->query, "x=1&y=two");
  assert_int_equal(r->nheaders, 4);
  assert_string_equal(r->headers[0].name, "host");
  assert_string_equal(r->headers[0].value, "example.com");
  assert_header(r, "user-agent", "Test/1.0");
  assert_header(r, "accept", "*/*");
  /* names lower-cased, values kept as sent */
  assert_header(r, "x-mixed-case", "Value With Case");
  assert_null(rt_http_req_header(r, "X-Mixed-CASE"));
  assert_null(rt_http_req_header(r, "content-length"));
  assert_int_equal(r->body_len, 0);
  assert_non_null(r->body);
  assert_int_equal(r->http_minor, 1);
  assert_true(r->keep_alive);
  assert_false(r->upgrade);
  assert_strings_terminated(&p);
  /* Complete: more bytes are refused until next(). */
  assert_int_equal(rt_http1_parser_feed(&p, S("GET / HTTP/1.1\r\n\r\n")), 0);
  rt_http1_parser_free(&p);
}

static void test_no_headers_and_no_query(void **state) {
  rt_http1_parser p;
  size_t n = parse1(&p, S("GET / HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_int_equal(n, 18);
  assert_true(p.complete);
  assert_int_equal(p.req.nheaders, 0);
  assert_string_equal(p.req.path, "/");
  assert_string_equal(p.req.query, "");
  assert_string_equal(p.req.target, "/");
  rt_http1_parser_free(&p);

  n = parse1(&p, S("GET /x? HTTP/1.1\r\nX-Empty:\r\nX-Two:  b  \r\n\r\n"), MAXH, MAXB);
  assert_true(p.complete);
  assert_string_equal(p.req.path, "/x");
  assert_string_equal(p.req.query, "");
  assert_int_equal(p.req.nheaders, 2);
  assert_header(&p.req, "x-empty", "");
  /* RFC 9110 5.5: a field value has no leading or trailing whitespace (otherwise
   * "Sec-WebSocket-Version: 13 " or a key with a trailing space fails exact compares). */
  assert_string_equal(p.req.headers[1].name, "x-two");
  assert_string_equal(p.req.headers[1].value, "b");
  rt_http1_parser_free(&p);
}

static const char POST_REQ[] =
    "POST /submit HTTP/1.1\r\n"
    "Host: x\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "hello world";

static void test_post_content_length(void **state) {
  rt_http1_parser p;
  size_t n = parse1(&p, S(POST_REQ), MAXH, MAXB);
  assert_int_equal(n, sizeof POST_REQ - 1);
  assert_true(p.complete);
  assert_string_equal(p.req.method, "POST");
  assert_int_equal(p.req.body_len, 11);
  assert_memory_equal(p.req.body, "hello world", 11);
  assert_header(&p.req, "content-length", "11");
  rt_http1_parser_free(&p);

  /* The body may arrive later than the headers. */
  rt_http1_parser_init(&p, MAXH, MAXB);
  size_t head = sizeof POST_REQ - 1 - 11;
  assert_int_equal(rt_http1_parser_feed(&p, (const uint8_t *)POST_REQ, head), head);
  assert_false(p.complete);
  assert_int_equal(rt_http1_parser_feed(&p, (const uint8_t *)POST_REQ + head, 5), 5);
  assert_false(p.complete);
  assert_int_equal(rt_http1_parser_feed(&p, (const uint8_t *)POST_REQ + head + 5, 6), 6);
  assert_true(p.complete);
  assert_memory_equal(p.req.body, "hello world", 11);
  rt_http1_parser_free(&p);
}

static const char CHUNKED_REQ[] =
    "PUT /up HTTP/1.1\r\n"
    "Host: x\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "1;ext=1\r\n \r\n"
    "A\r\n0123456789\r\n"
    "0\r\n"
    "\r\n";

static void test_chunked_body(void **state) {
  rt_http1_parser p;
  size_t n = parse1(&p, S(CHUNKED_REQ), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_int_equal(n, sizeof CHUNKED_REQ - 1);
  assert_true(p.complete);
  assert_string_equal(p.req.method, "PUT");
  assert_int_equal(p.req.body_len, 16);
  assert_memory_equal(p.req.body, "hello 0123456789", 16);
  rt_http1_parser_free(&p);
}

static void test_chunked_trailers(void **state) {
  rt_http1_parser p;
  static const char req[] =
      "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n";
  size_t n = parse1(&p, S(req), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_int_equal(n, sizeof req - 1);
  assert_true(p.complete);
  assert_memory_equal(p.req.body, "abc", 3);
  assert_strings_terminated(&p);
  rt_http1_parser_free(&p);

  /* a trailer name with no value */
  static const char req2[] =
      "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Empty:\r\n\r\n";
  parse1(&p, S(req2), MAXH, MAXB);
  assert_true(p.complete);
  assert_strings_terminated(&p);
  const char *v = rt_http_req_header(&p.req, "x-empty");
  if (v) assert_string_equal(v, "");  /* dropping trailers is fine; a wrong value is not */
  rt_http1_parser_free(&p);
}

static void test_every_split_same_result(void **state) {
  static const char *const reqs[] = {GET_REQ, POST_REQ, CHUNKED_REQ,
      "GET /a%20b/%C3%A9?q=%20x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET /bad%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85",
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
    char *t = check_all_splits((const uint8_t *)reqs[i], strlen(reqs[i]), MAXH, MAXB);
    assert_true(strlen(t) > 0);
    free(t);
  }
  /* Limits are counted across pieces, so a split cannot sneak past them. */
  char *t = check_all_splits(S(GET_REQ), 60, MAXB);
  assert_string_equal(t, "ERROR 431\n");
  free(t);
  t = check_all_splits(S(CHUNKED_REQ), MAXH, 15);
  assert_string_equal(t, "ERROR 413\n");
  free(t);
}

static void test_pipelined(void **state) {
  /* Three requests in one buffer: feed stops after each, returning exactly its length. */
  char buf[1024];
  int n1 = snprintf(buf, sizeof buf, "%s", POST_REQ);
  int n2 = snprintf(buf + n1, sizeof buf - (size_t)n1, "%s", CHUNKED_REQ);
  int n3 = snprintf(buf + n1 + n2, sizeof buf - (size_t)(n1 + n2), "%s", GET_REQ);
  size_t total = (size_t)(n1 + n2 + n3);
  const uint8_t *d = (const uint8_t *)buf;

  rt_http1_parser p;
  rt_http1_parser_init(&p, MAXH, MAXB);
  size_t used = rt_http1_parser_feed(&p, d, total);
  assert_int_equal(used, (size_t)n1);
  assert_true(p.complete);
  assert_string_equal(p.req.method, "POST");
  assert_memory_equal(p.req.body, "hello world", 11);
  rt_http1_parser_next(&p);

  used = rt_http1_parser_feed(&p, d + n1, total - (size_t)n1);
  assert_int_equal(p.error_status, 0);
  assert_int_equal(used, (size_t)n2);
  assert_true(p.complete);
  assert_string_equal(p.req.method, "PUT");
  assert_int_equal(p.req.body_len, 16);
  rt_http1_parser_next(&p);

  used = rt_http1_parser_feed(&p, d + n1 + n2, (size_t)n3);
  assert_int_equal(used, (size_t)n3);
  assert_true(p.complete);
  assert_string_equal(p.req.method, "GET");
  assert_string_equal(p.req.query, "x=1&y=two");
  assert_int_equal(p.req.body_len, 0);  /* the earlier bodies do not leak into this one */
  assert_int_equal(p.req.nheaders, 4);
  rt_http1_parser_next(&p);
  rt_http1_parser_free(&p);

  /* The same stream split everywhere gives the same three requests. */
  char *t = check_all_splits(d, total, MAXH, MAXB);
  int reqs = 0;
  for (char *s = t; (s = strstr(s, "REQ ")); s++) reqs++;
  assert_int_equal(reqs, 3);
  assert_null(strstr(t, "ERROR"));
  free(t);
}

static void test_pipelined_get_get(void **state) {
  static const char one[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
  static const char two[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n";
  const size_t n1 = sizeof one - 1;
  rt_http1_parser p;
  rt_http1_parser_init(&p, MAXH, MAXB);
  size_t used = rt_http1_parser_feed(&p, S(two));
  assert_int_equal(used, n1);
  assert_string_equal(p.req.path, "/one");
  assert_header(&p.req, "host", "a");
  rt_http1_parser_next(&p);
  used = rt_http1_parser_feed(&p, (const uint8_t *)two + n1, sizeof two - 1 - n1);
  assert_int_equal(used, sizeof two - 1 - n1);
  assert_true(p.complete);
  assert_string_equal(p.req.path, "/two");
  assert_header(&p.req, "host", "b");
  assert_int_equal(p.req.nheaders, 1);
  rt_http1_parser_free(&p);
}

static void test_lowercase_names_and_repeats(void **state) {
  rt_http1_parser p;
  parse1(&p, S("GET / HTTP/1.1\r\nHOST: A\r\nX-Tag: one\r\nx-tag: Two\r\nCoNtEnT-TyPe: Text/HTML\r\n\r\n"),
         MAXH, MAXB);
  assert_true(p.complete);
  assert_int_equal(p.req.nheaders, 4);
  assert_string_equal(p.req.headers[0].name, "host");
  assert_string_equal(p.req.headers[0].value, "A");
  assert_string_equal(p.req.headers[1].name, "x-tag");
  assert_string_equal(p.req.headers[2].name, "x-tag");
  assert_string_equal(p.req.headers[1].value, "one");
  assert_string_equal(p.req.headers[2].value, "Two");
  assert_header(&p.req, "content-type", "Text/HTML");
  rt_http1_parser_free(&p);
}

static void test_path_decoding_and_query(void **state) {
  rt_http1_parser p;
  parse1(&p, S("GET /a%20b/%C3%A9%2f%7E?q=%20x&r=a+b HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_string_equal(p.req.path, "/a b/\xc3\xa9/~");
  assert_string_equal(p.req.query, "q=%20x&r=a+b");  /* raw */
  assert_string_equal(p.req.target, "/a%20b/%C3%A9%2f%7E?q=%20x&r=a+b");
  rt_http1_parser_free(&p);

  /* '+' is not a space in a path; a fragment is not part of the query. */
  parse1(&p, S("GET /a+b?x=1#frag HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_string_equal(p.req.path, "/a+b");
  assert_string_equal(p.req.query, "x=1");
  rt_http1_parser_free(&p);

  /* absolute-form targets give the path too */
  parse1(&p, S("GET http://example.com/p/q?z=9 HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_string_equal(p.req.path, "/p/q");
  assert_string_equal(p.req.query, "z=9");
  rt_http1_parser_free(&p);

  /* percent-encoding at the very end of the path */
  parse1(&p, S("GET /end%41 HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_string_equal(p.req.path, "/endA");
  rt_http1_parser_free(&p);
  parse1(&p, S("GET /end%41?q HTTP/1.1\r\n\r\n"), MAXH, MAXB);
  assert_string_equal(p.req.path, "/endA");
  assert_string_equal(p.req.query, "q");
  rt_http1_parser_free(&p);
}

static void expect_error(const char *req, size_t maxh, size_t maxb, int status) {
  rt_http1_parser p;
  size_t n = strlen(req);
  parse1(&p, (const uint8_t *)req, n, maxh, maxb);
  if (p.error_status != status)
    fail_msg("status %d (%s), want %d for: %.60s", p.error_status, p.error ? p.error : "-", status, req);
  assert_false(p.complete);
  assert_non_null(p.error);
  /* Once failed, the parser takes nothing more. */
  assert_int_equal(rt_http1_parser_feed(&p, S("GET / HTTP/1.1\r\n\r\n")), 0);
  rt_http1_parser_free(&p);
}

static void test_bad_percent_encoding(void **state) {
  expect_error("GET /a%zz HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET /a%2 HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET /a% HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET /a%2?x HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET /a%00b HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);  /* NUL would cut the path */
}

static void test_garbage_is_400(void **state) {
  expect_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET / HTTP/1.1\r\nX: a\r\n b\r\n\x01\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET / HTTP/9.x\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET /\x01 HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("GET nopath HTTP/1.1\r\n\r\n", MAXH, MAXB, 400);
  expect_error("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", MAXH, MAXB, 400);
  expect_error("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", MAXH, MAXB, 400);
  /* Both framings at once is how requests get smuggled: refuse. */
  expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
               MAXH, MAXB, 400);
  expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", MAXH, MAXB, 400);
  /* An unknown method is 501, garbage bytes where a method goes too (http_parser cannot
   * tell them apart). */
  expect_error("BREW /pot HTTP/1.1\r\n\r\n", MAXH, MAXB, 501);
}

static void test_header_limit_431(void **state) {
  char req[8192];
  int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Big: ");
  memset(req + n, 'v', 600);
  snprintf(req + n + 600, sizeof req - (size_t)n - 600, "\r\n\r\n");
  expect_error(req, 512, MAXB, 431);
  /* the same request fits a larger limit */
  rt_http1_parser p;
  parse1(&p, (const uint8_t *)req, strlen(req), 1024, MAXB);
  assert_true(p.complete);
  assert_int_equal(strlen(rt_http_req_header(&p.req, "x-big")), 600);
  rt_http1_parser_free(&p);

  /* a long target counts too */
  n = snprintf(req, sizeof req, "GET /");
  memset(req + n, 'p', 700);
  snprintf(req + n + 700, sizeof req - (size_t)n - 700, " HTTP/1.1\r\n\r\n");
  expect_error(req, 512, MAXB, 431);

  /* many small headers */
  n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 60; i++) n += snprintf(req + n, sizeof req - (size_t)n, "X-%d: %d\r\n", i, i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  expect_error(req, 256, MAXB, 431);

  /* more header fields than the request can hold */
  n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < RT_HTTP_MAX_HEADERS + 1; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "h%d: v\r\n", i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  expect_error(req, 65536, MAXB, 431);
  /* exactly the maximum is fine */
  n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < RT_HTTP_MAX_HEADERS; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "h%d: v\r\n", i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  parse1(&p, (const uint8_t *)req, strlen(req), 65536, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_int_equal(p.req.nheaders, RT_HTTP_MAX_HEADERS);
  assert_header(&p.req, "h99", "v");
  rt_http1_parser_free(&p);
}

static void test_body_limit_413(void **state) {
  /* declared too large: refused at the headers, before any body byte */
  expect_error("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", MAXH, 10, 413);
  /* exactly the limit is fine */
  rt_http1_parser p;
  parse1(&p, S("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"), MAXH, 10);
  assert_int_equal(p.error_status, 0);
  assert_true(p.complete);
  assert_int_equal(p.req.body_len, 10);
  rt_http1_parser_free(&p);
  /* chunked: counted as it arrives */
  expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
               MAXH, 10, 413);
  parse1(&p, S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n"),
         MAXH, 10);
  assert_int_equal(p.error_status, 0);
  assert_true(p.complete);
  assert_memory_equal(p.req.body, "0123456789", 10);
  rt_http1_parser_free(&p);
  /* a huge declared chunk is refused without waiting for it */
  expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n0123456789abc", MAXH, 10, 413);
}

static const char UPGRADE_REQ[] =
    "GET /chat?room=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void test_upgrade(void **state) {
  /* The first frame right behind the request must stay unconsumed for the new protocol. */
  uint8_t buf[512];
  size_t hl = sizeof UPGRADE_REQ - 1;
  memcpy(buf, UPGRADE_REQ, hl);
  memcpy(buf + hl, "\x81\x83\x01\x02\x03\x04" "abc", 9);
  rt_http1_parser p;
  size_t n = parse1(&p, buf, hl + 9, MAXH, MAXB);
  assert_int_equal(p.error_status, 0);
  assert_true(p.complete);
  assert_true(p.req.upgrade);
  assert_int_equal(n, hl);
  assert_string_equal(p.req.path, "/chat");
  assert_string_equal(p.req.query, "room=1");
  assert_header(&p.req, "upgrade", "websocket");
  assert_header(&p.req, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
  rt_http1_parser_free(&p);

  /* Upgrade without Connection: upgrade is an ordinary request. */
  parse1(&p, S("GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), MAXH, MAXB);
  assert_true(p.complete);
  assert_false(p.req.upgrade);
  rt_http1_parser_free(&p);
}

static void test_keep_alive_semantics(void **state) {
  struct { const char *req; int minor, ka; } cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", 1, 1},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1, 0},
      {"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", 1, 0},
      {"GET / HTTP/1.0\r\n\r\n", 0, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 1},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rt_http1_parser p;
    parse1(&p, (const uint8_t *)cases[i].req, strlen(cases[i].req), MAXH, MAXB);
    assert_true(p.complete);
    assert_int_equal(p.req.http_minor, cases[i].minor);
    if (p.req.keep_alive != cases[i].ka) fail_msg("keep_alive %d for %s", p.req.keep_alive, cases[i].req);
    rt_http1_parser_free(&p);
  }
}

static void test_next_releases_big_buffers(void **state) {
  /* A big body, then a small request: the second sees only its own data. */
  size_t big = 100000;
  char *req = malloc(big + 100);
  int n = snprintf(req, 100, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", big);
  memset(req + n, 'b', big);
  rt_http1_parser p;
  rt_http1_parser_init(&p, MAXH, 200000);
  assert_int_equal(rt_http1_parser_feed(&p, (const uint8_t *)req, (size_t)n + big), (size_t)n + big);
  assert_true(p.complete);
  assert_int_equal(p.req.body_len, big);
  rt_http1_parser_next(&p);
  assert_true(p.body.cap <= 65536);
  assert_int_equal(rt_http1_parser_feed(&p, S("GET /after HTTP/1.1\r\n\r\n")), 23);
  assert_true(p.complete);
  assert_string_equal(p.req.path, "/after");
  assert_int_equal(p.req.body_len, 0);
  rt_http1_parser_free(&p);
  free(req);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_with_headers),
      cmocka_unit_test(test_no_headers_and_no_query),
      cmocka_unit_test(test_post_content_length),
      cmocka_unit_test(test_chunked_body),
      cmocka_unit_test(test_chunked_trailers),
      cmocka_unit_test(test_every_split_same_result),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_pipelined_get_get),
      cmocka_unit_test(test_lowercase_names_and_repeats),
      cmocka_unit_test(test_path_decoding_and_query),
      cmocka_unit_test(test_bad_percent_encoding),
      cmocka_unit_test(test_garbage_is_400),
      cmocka_unit_test(test_header_limit_431),
      cmocka_unit_test(test_body_limit_413),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_keep_alive_semantics),
      cmocka_unit_test(test_next_releases_big_buffers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
