/* HTTP/1.1 request parsing on top of http_parser (nodejs/http-parser), with limits.
 *
 * I/O-free: feed bytes, get a complete rt_http_req or an error with the status to answer
 * (400 bad request, 413 body too large, 431 headers too large, 501 unsupported). The
 * parser stops after each complete request so the caller answers in order (pipelining). */
#ifndef RT_HTTP1_PARSER_H
#define RT_HTTP1_PARSER_H

#include <http_parser.h>
#include <stddef.h>

#include "base/buf.h"
#include "rtserver.h"

/* rt_http_header and rt_http_req are public: the app sees requests as they are parsed. */

typedef struct rt_http1_parser {
  http_parser hp;
  http_parser_settings settings;
  size_t max_header_bytes, max_body_bytes;
  size_t header_bytes;
  rt_buf strings;      /* NUL-separated target, names and values; offsets below */
  size_t target_off, path_off, query_off;
  size_t name_off[RT_HTTP_MAX_HEADERS], value_off[RT_HTTP_MAX_HEADERS];
  int nheaders;
  int in_value;
  int headers_done;    /* what follows are trailers */
  rt_buf body;
  int complete;
  int first_byte;      /* of the current request: tells 501 from 400 */
  int error_status;
  const char *error;
  rt_http_req req;
} rt_http1_parser;

void rt_http1_parser_init(rt_http1_parser *p, size_t max_header_bytes, size_t max_body_bytes);
void rt_http1_parser_free(rt_http1_parser *p);
/* Consumes bytes up to the end of one request. Returns the bytes used (>= 0); then
 * p->complete says a request is ready in p->req, or p->error_status says it failed. */
size_t rt_http1_parser_feed(rt_http1_parser *p, const uint8_t *data, size_t len);
/* Forgets the finished request; the next feed starts the next one. */
void rt_http1_parser_next(rt_http1_parser *p);

#endif
