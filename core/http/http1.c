#include "http1.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/metrics.h"
#include "net/server_int.h"

typedef struct rt_http1 {
  rt_http1_parser parser;
  int handling;   /* a request is with the app and not answered yet */
  int in_read;    /* on_read is on the stack: do not recurse into it */
  int is_head;
  int sniffed;    /* the first bytes were checked for the HTTP/2 preface */
  int streaming;  /* a streaming response is open (rt_http1_stream_start) */
  int stream_chunked, stream_keep_alive;
  rt_http1_stream_owner owner;
} rt_http1;

static const rt_proto http1_proto;

const char *rt_http_status_text(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 400 ? "OK" : "Error";
  }
}

const char *rt_http_content_type(const char *path) {
  static const char *const types[][2] = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"}, {".svg", "image/svg+xml"},
      {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
      {".gif", "image/gif"}, {".ico", "image/x-icon"}, {".webp", "image/webp"},
      {".wasm", "application/wasm"}, {".map", "application/json"},
      {".woff2", "font/woff2"}, {".proto", "text/plain; charset=utf-8"},
  };
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot, types[i][0]) == 0) return types[i][1];
  return "application/octet-stream";
}

static void finish_request(rt_conn *c, rt_http1 *h, int keep_alive) {
  if (!keep_alive) {
    rt_conn_close_after_write(c);
    return;
  }
  rt_http1_parser_next(&h->parser);
  h->handling = 0;
  if (!h->in_read) rt_conn_pause_read(c, 0);
}

void rt_http1_respond(rt_conn *c, int status, const char *const *headers, int nheaders,
                      const void *body, size_t len) {
  rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  if (!h || !h->handling || h->streaming || c->closing) return;
  /* After a refused upgrade the byte stream is not HTTP we can trust: close. */
  int keep_alive = h->parser.req.keep_alive && !h->parser.req.upgrade && status < 500 &&
                   !c->srv->stopping;
  rt_buf out = {0};
  rt_buf_appendf(&out, "HTTP/1.1 %d %s\r\nServer: rtserver\r\nContent-Length: %zu\r\n", status,
                 rt_http_status_text(status), len);
  int has_type = 0;
  for (int i = 0; i < nheaders; i++) {
    const char *n = headers[2 * i], *v = headers[2 * i + 1];
    /* A header value may not smuggle in a line break. */
    if (strpbrk(n, "\r\n:") || strpbrk(v, "\r\n")) continue;
    if (strcasecmp(n, "content-length") == 0) continue;
    if (strcasecmp(n, "content-type") == 0) has_type = 1;
    rt_buf_appendf(&out, "%s: %s\r\n", n, v);
  }
  if (!has_type && len) rt_buf_appendf(&out, "Content-Type: text/plain; charset=utf-8\r\n");
  /* HTTP/1.0 closes by default: a 1.0 client that asked to keep the connection must hear
   * that it was kept, or it waits for an end that never comes. */
  if (!keep_alive) rt_buf_appendf(&out, "Connection: close\r\n");
  else if (h->parser.req.http_minor == 0) rt_buf_appendf(&out, "Connection: keep-alive\r\n");
  rt_buf_append(&out, "\r\n", 2);
  if (len && !h->is_head) rt_buf_append(&out, body, len);
  rt_conn_write(c, rt_buf_start(&out), out.len);
  rt_buf_free(&out);
  finish_request(c, h, keep_alive);
}

static void respond_error(rt_conn *c, int status, const char *msg) {
  char body[256];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, rt_http_status_text(status), msg);
  rt_http1_respond(c, status, NULL, 0, body, (size_t)n);
}

void rt_http1_send_file(rt_conn *c, const char *root, const char *relpath) {
  char rroot[PATH_MAX], full[PATH_MAX + 32], real[PATH_MAX];
  /* Refuse ".." segments outright, then check the resolved path is still inside root:
   * that also catches symlinks that point out of the app's folder. */
  if (strstr(relpath, "..") || !realpath(root, rroot)) {
    respond_error(c, 404, "not found");
    return;
  }
  if (snprintf(full, sizeof full - 16, "%s/%s", rroot, relpath[0] == '/' ? relpath + 1 : relpath) >=
      (int)sizeof full - 16) {
    respond_error(c, 414, "path too long");
    return;
  }
  struct stat st;
  if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t l = strlen(full);
    snprintf(full + l, sizeof full - l, "%sindex.html", l && full[l - 1] == '/' ? "" : "/");
  }
  size_t rl = strlen(rroot);
  if (!realpath(full, real) || strncmp(real, rroot, rl) != 0 || (real[rl] != '/' && real[rl])) {
    respond_error(c, 404, "not found");
    return;
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    respond_error(c, 404, "not found");
    return;
  }
  size_t len = (size_t)st.st_size;
  char *data = malloc(len ? len : 1);
  size_t got = 0;
  while (data && got < len) {
    ssize_t r = read(fd, data + got, len - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (!data || got != len) {
    free(data);
    respond_error(c, 500, "cannot read file");
    return;
  }
  const char *hdrs[] = {"Content-Type", rt_http_content_type(real), "Cache-Control", "no-cache"};
  rt_http1_respond(c, 200, hdrs, 2, data, len);
  free(data);
}

const rt_http_req *rt_http1_current(rt_conn *c) {
  rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  return h && h->handling && !h->streaming ? &h->parser.req : NULL;
}

int rt_http1_stream_start(rt_conn *c, int status, const char *const *headers, int nheaders,
                          const rt_http1_stream_owner *owner) {
  rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  if (!h || !h->handling || h->streaming || c->closing) return -1;
  const rt_http_req *req = &h->parser.req;
  /* HTTP/1.0 has no chunked encoding: the end of the body is the end of the connection. */
  h->stream_chunked = req->http_minor >= 1;
  h->stream_keep_alive = h->stream_chunked && req->keep_alive && !req->upgrade && !c->srv->stopping;
  rt_buf out = {0};
  rt_buf_appendf(&out, "HTTP/1.1 %d %s\r\nServer: rtserver\r\n", status, rt_http_status_text(status));
  for (int i = 0; i < nheaders; i++) {
    const char *n = headers[2 * i], *v = headers[2 * i + 1];
    if (strpbrk(n, "\r\n:") || strpbrk(v, "\r\n")) continue;
    if (strcasecmp(n, "content-length") == 0 || strcasecmp(n, "transfer-encoding") == 0) continue;
    rt_buf_appendf(&out, "%s: %s\r\n", n, v);
  }
  if (h->stream_chunked) rt_buf_appendf(&out, "Transfer-Encoding: chunked\r\n");
  if (!h->stream_keep_alive) rt_buf_appendf(&out, "Connection: close\r\n");
  rt_buf_append(&out, "\r\n", 2);
  h->streaming = 1;
  if (owner) h->owner = *owner;
  else memset(&h->owner, 0, sizeof h->owner);
  int rc = rt_conn_write(c, rt_buf_start(&out), out.len);
  rt_buf_free(&out);
  /* Read on while streaming, so a client that leaves is noticed (EOF). Inside on_read the
   * loop there turns reads back on as it returns. */
  if (!h->in_read && !c->closing) rt_conn_pause_read(c, 0);
  return rc < 0 || c->closing ? -1 : 0;
}

int rt_http1_stream_write(rt_conn *c, rt_chunk *const *chunks, int n) {
  rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  if (!h || !h->streaming || c->closing) return -1;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += chunks[i]->len;
  /* A zero-length chunk would end the body. */
  if (total == 0 || h->is_head) return 0;
  if (h->stream_chunked) {
    char size[24];
    int sl = snprintf(size, sizeof size, "%zx\r\n", total);
    if (rt_conn_write(c, size, (size_t)sl) < 0) return -1;
  }
  for (int i = 0; i < n; i++)
    if (chunks[i]->len && rt_conn_write_chunk(c, chunks[i]) < 0) return -1;
  if (h->stream_chunked && rt_conn_write(c, "\r\n", 2) < 0) return -1;
  return c->closing ? -1 : 0;
}

int rt_http1_stream_write_data(rt_conn *c, const void *p, size_t n) {
  if (n == 0) return rt_http1_streaming(c) ? 0 : -1;
  rt_chunk *ch = rt_chunk_copy(p, n);
  if (!ch) return -1;
  int rc = rt_http1_stream_write(c, &ch, 1);
  rt_chunk_unref(ch);
  return rc;
}

void rt_http1_stream_end(rt_conn *c) {
  rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  if (!h || !h->streaming || c->closing) return;
  h->streaming = 0;
  memset(&h->owner, 0, sizeof h->owner);
  if (h->stream_chunked && !h->is_head) rt_conn_write(c, "0\r\n\r\n", 5);
  if (!c->closing) finish_request(c, h, h->stream_keep_alive);
}

int rt_http1_streaming(const rt_conn *c) {
  const rt_http1 *h = c->proto == &http1_proto ? c->pstate : NULL;
  return h && h->streaming && !c->closing;
}

/* The metrics endpoint answers in C: it must work even when the app is broken. */
static int serve_metrics(rt_conn *c, const rt_http_req *req) {
  const char *path = c->srv->cfg.metrics_path;
  if (!path || strcmp(req->path, path) != 0 || strcmp(req->method, "GET") != 0) return 0;
  rt_buf b = {0};
  rt_metrics_render(c->srv, &b);
  const char *hdrs[] = {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"};
  rt_http1_respond(c, 200, hdrs, 1, rt_buf_start(&b), b.len);
  rt_buf_free(&b);
  return 1;
}

static void on_read(rt_conn *c) {
  rt_http1 *h = c->pstate;
  if (h->streaming) {
    /* A stream is being answered: what comes meanwhile waits, within the header bound. */
    if (c->in.len > c->srv->cfg.max_header_bytes) {
      rt_info(&c->srv->log, "%s: %zu bytes sent during a streaming response; closing", c->peer, c->in.len);
      rt_conn_close(c);
    }
    return;
  }
  if (!h->sniffed) {
    /* gRPC clients speak HTTP/2 with prior knowledge: the connection opens with the
     * preface instead of a request. Wait for all 24 bytes unless they already differ. */
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t n = c->in.len < sizeof preface - 1 ? c->in.len : sizeof preface - 1;
    if (memcmp(rt_buf_start(&c->in), preface, n) == 0) {
      if (n < sizeof preface - 1) return;
      if (c->srv->h2_start) {
        rt_http1_detach(c);
        c->srv->h2_start(c);
      } else {
        /* Nothing here serves HTTP/2 (a C host with no gRPC): say so and hang up. */
        rt_buf_consume(&c->in, c->in.len);
        h->handling = 1;
        h->parser.req.keep_alive = 0;
        respond_error(c, 505, "HTTP/2 is not served here");
      }
      return;
    }
    h->sniffed = 1;
  }
  h->in_read = 1;
  while (c->in.len && !h->handling && !c->closing) {
    size_t n = rt_http1_parser_feed(&h->parser, rt_buf_start(&c->in), c->in.len);
    rt_buf_consume(&c->in, n);
    if (h->parser.error_status) {
      h->handling = 1;
      h->parser.req.keep_alive = 0;
      rt_info(&c->srv->log, "%s: HTTP %d: %s", c->peer, h->parser.error_status, h->parser.error);
      respond_error(c, h->parser.error_status, h->parser.error);
      break;
    }
    if (!h->parser.complete) break;
    h->handling = 1;
    h->is_head = strcmp(h->parser.req.method, "HEAD") == 0;
    c->srv->metrics.http_requests++;
    if (serve_metrics(c, &h->parser.req)) continue;
    rt_conn_pause_read(c, 1);
    rt_server *srv = c->srv;
    if (srv->app.http_request)
      srv->app.http_request(srv, srv->app.data, c->id, &h->parser.req, c->peer);
    else
      respond_error(c, 404, "not found");
    /* The app may have upgraded the connection: then h is no longer ours to touch. */
    if (c->closing || c->proto != &http1_proto) return;
  }
  h->in_read = 0;
  if ((!h->handling || h->streaming) && !c->closing) rt_conn_pause_read(c, 0);
}

static void on_tick(rt_conn *c, double idle) {
  rt_http1 *h = c->pstate;
  /* A handler still working (a slow backend call) is not an idle client. */
  if (!h->handling && idle > c->srv->cfg.idle_timeout) rt_conn_close(c);
}

static void on_shutdown(rt_conn *c) {
  rt_http1 *h = c->pstate;
  if (h->streaming) {
    h->stream_keep_alive = 0;
    if (h->owner.on_shutdown) h->owner.on_shutdown(c, h->owner.data);
    else rt_http1_stream_end(c);
    return;
  }
  /* A request in progress gets its answer (with Connection: close); idle ones go now. */
  if (!h->handling) rt_conn_close(c);
}

static void on_script_error(rt_conn *c) {
  rt_http1 *h = c->pstate;
  if (h->handling) respond_error(c, 500, "the app's handler failed; see the server log");
}

static void free_state(rt_http1 *h) {
  rt_http1_parser_free(&h->parser);
  free(h);
}

static void on_close(rt_conn *c) {
  rt_http1 *h = c->pstate;
  if (h->streaming && h->owner.on_close) {
    rt_http1_stream_owner o = h->owner;
    h->streaming = 0;
    memset(&h->owner, 0, sizeof h->owner);
    o.on_close(c, o.data);
  }
  free_state(h);
}

static const rt_proto http1_proto = {
    .name = "http1",
    .on_read = on_read,
    .on_tick = on_tick,
    .on_script_error = on_script_error,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

void rt_http1_start(rt_conn *c) {
  rt_http1 *h = calloc(1, sizeof *h);
  if (!h) {
    rt_conn_close(c);
    return;
  }
  rt_http1_parser_init(&h->parser, c->srv->cfg.max_header_bytes, c->srv->cfg.max_body_bytes);
  rt_conn_set_proto(c, &http1_proto, RT_PROTO_HTTP1, h);
}

void rt_http1_detach(rt_conn *c) {
  if (c->proto != &http1_proto) return;
  free_state(c->pstate);
  c->pstate = NULL;
}
