/* WebSocket draft-76 connections (hixie76_frame.h says what the protocol is). They carry
 * text to and from a sink (the SockJS websocket transport), never the app's WebSocket
 * routes. The handshake answer needs 8 bytes the client sends after its request, and
 * proxies of the time (HAProxy) pass them on only once they saw the response headers: the
 * headers go at once, the answer when the bytes come, and frames sent meanwhile wait. */
#include "ws_hixie76.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hixie76_frame.h"
#include "http/http1.h"
#include "net/server_int.h"

#define PENDING_MAX (256 * 1024)  /* output held until the handshake completes */
#define HANDSHAKE_TIMEOUT 10.0

typedef struct rt_hixie {
  rt_conn *conn;
  char key1[128], key2[128];
  int answered;      /* the 16-byte answer went out: frames may follow */
  int closing;       /* our close frame is out */
  int in_read, dead; /* the connection closed inside on_read: free after it returns */
  rt_buf pending;    /* frames sent before the answer */
  rt_hixie76_parser parser;
  rt_ws_sink sink;
} rt_hixie;

static const rt_proto hixie_proto;

int rt_ws_hixie76_is(const rt_conn *c) { return c->proto == &hixie_proto; }

int rt_ws_hixie76_request(const rt_http_req *req) {
  return rt_http_req_header(req, "sec-websocket-key1") && rt_http_req_header(req, "sec-websocket-key2") &&
         !rt_http_req_header(req, "sec-websocket-key");
}

static int out(rt_hixie *h, const void *p, size_t n) {
  if (h->answered) return rt_conn_write(h->conn, p, n);
  if (h->pending.len + n > PENDING_MAX || rt_buf_append(&h->pending, p, n) < 0) {
    rt_conn_close(h->conn);
    return -1;
  }
  return 0;
}

static void on_message(void *ud, const uint8_t *msg, size_t len) {
  rt_hixie *h = ud;
  rt_conn *c = h->conn;
  if (h->closing || !h->sink.on_message) return;
  c->srv->metrics.msgs_in++;
  h->sink.on_message(c, h->sink.data, msg, len, 0);
}

static void on_read(rt_conn *c) {
  rt_hixie *h = c->pstate;
  if (!h->answered) {
    if (c->in.len < 8) return;
    uint8_t answer[16];
    if (rt_hixie76_answer(h->key1, h->key2, rt_buf_start(&c->in), answer) < 0) {
      rt_conn_close(c);  /* the keys were checked at the upgrade: cannot happen */
      return;
    }
    rt_buf_consume(&c->in, 8);
    h->answered = 1;
    rt_conn_write(c, answer, sizeof answer);
    if (h->pending.len) rt_conn_write(c, rt_buf_start(&h->pending), h->pending.len);
    rt_buf_free(&h->pending);
    if (h->closing) {
      rt_conn_close_after_write(c);
      return;
    }
  }
  if (!c->in.len || h->closing) {
    rt_buf_consume(&c->in, c->in.len);
    return;
  }
  h->in_read = 1;
  int rc = rt_hixie76_feed(&h->parser, rt_buf_start(&c->in), c->in.len, on_message, h);
  h->in_read = 0;
  if (h->dead) {
    rt_hixie76_parser_free(&h->parser);
    free(h);
    return;
  }
  rt_buf_consume(&c->in, c->in.len);
  if (rc == RT_HIXIE76_ERROR) {
    rt_info(&c->srv->log, "%s: WebSocket (hixie-76): %s; closing", c->peer, h->parser.error);
    rt_ws_hixie76_close(c);
  } else if (rc == RT_HIXIE76_CLOSE) {
    rt_ws_hixie76_close(c);
  }
}

static void on_tick(rt_conn *c, double idle) {
  rt_hixie *h = c->pstate;
  if (!h->answered && idle > HANDSHAKE_TIMEOUT) rt_conn_close(c);
}

static void on_overflow(rt_conn *c) {
  rt_info(&c->srv->log, "%s: WebSocket (hixie-76) slow consumer; closing", c->peer);
  c->srv->metrics.slow_consumers++;
  rt_conn_close(c);
}

static void on_shutdown(rt_conn *c) {
  rt_hixie *h = c->pstate;
  if (h->sink.on_shutdown) h->sink.on_shutdown(c, h->sink.data);
  rt_ws_hixie76_close(c);
}

static void on_close(rt_conn *c) {
  rt_hixie *h = c->pstate;
  if (h->sink.on_close) h->sink.on_close(c, h->sink.data);
  rt_buf_free(&h->pending);
  if (h->in_read) {
    h->dead = 1;
    return;
  }
  rt_hixie76_parser_free(&h->parser);
  free(h);
}

static const rt_proto hixie_proto = {
    .name = "websocket-hixie76",
    .on_read = on_read,
    .on_tick = on_tick,
    .on_overflow = on_overflow,
    .on_script_error = on_shutdown,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

/* Sec-WebSocket-Location repeats the request's URL: bytes that may not stand in a header
 * or a URL are percent-encoded (the path arrives decoded). */
static void location(rt_buf *b, const char *host, const rt_http_req *req) {
  rt_buf_appendf(b, "Sec-WebSocket-Location: ws://%s", host);
  for (const unsigned char *p = (const unsigned char *)req->path; *p; p++) {
    if (*p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '?' || *p == '#') rt_buf_appendf(b, "%%%02X", *p);
    else rt_buf_append(b, p, 1);
  }
  if (req->query && *req->query) rt_buf_appendf(b, "?%s", req->query);
  rt_buf_append(b, "\r\n", 2);
}

int rt_ws_hixie76_accept(rt_conn *c, const rt_http_req *req, const rt_ws_opts *o) {
  const char *key1 = rt_http_req_header(req, "sec-websocket-key1");
  const char *key2 = rt_http_req_header(req, "sec-websocket-key2");
  const char *host = rt_http_req_header(req, "host");
  const char *origin = rt_http_req_header(req, "origin");
  static const uint8_t probe[8];
  uint8_t ignored[16];
  const char *why = NULL;
  if (strcmp(req->method, "GET") != 0) why = "the upgrade must be a GET";
  else if (!key1 || !key2 || strlen(key1) >= 128 || strlen(key2) >= 128 ||
           rt_hixie76_answer(key1, key2, probe, ignored) < 0)
    why = "bad Sec-WebSocket-Key1 or Sec-WebSocket-Key2";
  else if (!host || !*host) why = "Host is missing";
  if (why) {
    rt_info(&c->srv->log, "%s: WebSocket (hixie-76) handshake refused: %s", c->peer, why);
    char body[160];
    int n = snprintf(body, sizeof body, "WebSocket handshake refused: %s\n", why);
    rt_http1_respond(c, 400, NULL, 0, body, (size_t)n);
    return -1;
  }
  rt_hixie *h = calloc(1, sizeof *h);
  if (!h) {
    rt_http1_respond(c, 500, NULL, 0, "out of memory\n", 14);
    return -1;
  }
  h->conn = c;
  snprintf(h->key1, sizeof h->key1, "%s", key1);
  snprintf(h->key2, sizeof h->key2, "%s", key2);
  h->parser.max_message = o->max_message ? o->max_message : c->srv->cfg.max_ws_message;
  rt_buf resp = {0};
  rt_buf_appendf(&resp, "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n");
  if (origin) rt_buf_appendf(&resp, "Sec-WebSocket-Origin: %s\r\n", origin);
  location(&resp, host, req);
  rt_buf_append(&resp, "\r\n", 2);
  rt_http1_detach(c);
  rt_conn_set_proto(c, &hixie_proto, RT_PROTO_WS, h);
  rt_conn_write(c, rt_buf_start(&resp), resp.len);
  rt_buf_free(&resp);
  /* The 8 bytes may have come with the request: read them once the caller has set up. */
  rt_conn_resume_read_later(c);
  return 0;
}

int rt_ws_hixie76_send(rt_conn *c, rt_chunk *const *chunks, int n) {
  rt_hixie *h = c->pstate;
  if (c->closing || h->closing) return -1;
  if (out(h, "\x00", 1) < 0) return -1;
  for (int i = 0; i < n; i++)
    if (chunks[i]->len && out(h, chunks[i]->data, chunks[i]->len) < 0) return -1;
  c->srv->metrics.msgs_out++;
  return out(h, "\xff", 1) < 0 || c->closing ? -1 : 0;
}

void rt_ws_hixie76_set_sink(rt_conn *c, const rt_ws_sink *sink) {
  rt_hixie *h = c->pstate;
  if (sink) h->sink = *sink;
  else memset(&h->sink, 0, sizeof h->sink);
}

void rt_ws_hixie76_close(rt_conn *c) {
  rt_hixie *h = c->pstate;
  if (c->closing || h->closing) return;
  out(h, "\xff\x00", 2);
  h->closing = 1;
  if (h->answered && !c->closing) rt_conn_close_after_write(c);
}
