#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "net/broker.h"
#include "http/http1.h"
#include "net/server_int.h"
#include "base/utf8.h"
#include "ws_compress.h"
#include "ws_frame.h"
#include "ws_hixie76.h"

/* Where the client's byte stream is, frame-wise: wslay keeps no state worth keeping
 * between whole messages, so at such a boundary an idle connection can give its wslay
 * context (about 8.6 KiB of buffers) back and get a fresh one when bytes come. */
typedef struct rt_ws_boundary {
  uint8_t hdr[14];
  uint8_t hlen;         /* header bytes seen of the current frame */
  uint64_t left;        /* payload bytes still to come */
  unsigned in_fragment; /* a fragmented message has started and not finished */
} rt_ws_boundary;

/* What a connection holds only while bytes are coming in: wslay's context, where the byte
 * stream is frame-wise, and the message being gathered. Made on the first bytes and given
 * back with the context at a quiet message boundary (all of it is then empty again), so
 * an idle connection holds none of it. */
typedef struct rt_ws_rx {
  rt_ws_boundary at;
  /* wslay runs without buffering data messages (it still checks sizes, UTF-8 and the
   * fragmentation rules, and buffers control frames): we gather a message's payload
   * here, in a buffer reused from one message to the next, instead of wslay's
   * allocation per frame and copy per message. */
  rt_buf msg;
  int frame_is_data;
  int whole_frame;        /* the current data frame is a whole message (fin, not a continuation) */
  uint64_t frame_len;     /* its payload length */
  /* A whole message that arrived in one chunk is handed on from wslay's buffer, where it
   * stays put until on_msg, which wslay calls in the same step: no copy into msg. */
  const uint8_t *direct;
  size_t direct_len;
} rt_ws_rx;

/* One WebSocket: kept small, as most of them sit idle (README: idle memory). */
typedef struct rt_ws {
  wslay_event_context_ptr ctx;  /* NULL while idle: created on demand, with rx */
  rt_ws_rx *rx;
  rt_conn *conn;
  rt_ws_zconn z;      /* permessage-deflate, if negotiated (here: a fan-out delivery reads
                         this cache line anyway) */
  unsigned in_recv : 1;        /* wslay_event_recv is on the stack */
  unsigned dead : 1;           /* the connection closed while in_recv: free after it returns */
  unsigned close_started : 1;  /* we sent a close frame */
  unsigned pinged : 1;         /* a keepalive ping is out and unanswered */
  int close_code;     /* what the peer sent, for the app */
  size_t max_message;
  uint64_t conn_id;
  double close_at;    /* when, for the handshake timeout */
  rt_ws_sink sink;    /* when set, messages go here instead of the app */
  char *close_reason; /* what the peer's close frame said, if it said anything */
} rt_ws;

static const rt_proto ws_proto;

/* Bytes in a frame header that starts with these two bytes. */
static size_t header_size(const uint8_t *h) {
  unsigned len7 = h[1] & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Takes a whole frame header: the payload to skip and the fragmentation state. */
static void header_seen(rt_ws_boundary *b, const uint8_t *h) {
  unsigned len7 = h[1] & 0x7f;
  uint64_t len = len7;
  if (len7 == 126) len = ((uint64_t)h[2] << 8) | h[3];
  if (len7 == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
  }
  int fin = h[0] & 0x80, opcode = h[0] & 0x0f;
  if (opcode == 1 || opcode == 2) b->in_fragment = !fin;
  else if (opcode == 0 && fin) b->in_fragment = 0;
  b->left = len;
}

static void track(rt_ws_boundary *b, const uint8_t *p, size_t n) {
  while (n) {
    if (b->left) {
      size_t k = n < b->left ? n : (size_t)b->left;
      b->left -= k;
      p += k;
      n -= k;
      continue;
    }
    /* Usually the whole header is here: read it in place. */
    if (b->hlen == 0 && n >= 2 && n >= header_size(p)) {
      size_t hs = header_size(p);
      header_seen(b, p);
      p += hs;
      n -= hs;
      continue;
    }
    b->hdr[b->hlen++] = *p++;
    n--;
    if (b->hlen >= 2 && b->hlen == header_size(b->hdr)) {
      header_seen(b, b->hdr);
      b->hlen = 0;
    }
  }
}

static int at_boundary(const rt_ws_boundary *b) { return !b->hlen && !b->left && !b->in_fragment; }

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
  rt_ws *w = ud;
  rt_conn *c = w->conn;
  if (w->dead || c->in.len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < c->in.len ? len : c->in.len;
  memcpy(buf, rt_buf_start(&c->in), n);
  track(&w->rx->at, buf, n);
  rt_buf_consume(&c->in, n);
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
  rt_ws *w = ud;
  /* Control frames only (pong, close): copying them is cheap. Never block wslay. */
  if (!w->dead) rt_conn_write(w->conn, data, len);
  return (ssize_t)len;
}

/* RFC 6455 7.1.7 "fail the WebSocket connection": the close frame, then no more reading,
 * so the TCP connection ends once the frame is out instead of waiting for the peer. */
static void fail_connection(rt_ws *w, int code, const char *reason) {
  rt_ws_close(w->conn, code, reason);
  if (w->ctx) wslay_event_shutdown_read(w->ctx);
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud) {
  rt_ws *w = ud;
  w->rx->frame_is_data = arg->opcode <= WSLAY_BINARY_FRAME;
  w->rx->whole_frame = arg->fin && (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME);
  w->rx->frame_len = arg->payload_length;
  w->rx->direct = NULL;
  if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) w->rx->msg.len = w->rx->msg.off = 0;
  /* RFC 6455 5.5.1: a close body starts with a two-byte code; wslay would answer a
   * one-byte body with a plain close. */
  if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1 && !w->close_started) {
    rt_info(&w->conn->srv->log, "%s: WebSocket close frame with a 1-byte body; closing 1002",
            w->conn->peer);
    fail_connection(w, WSLAY_CODE_PROTOCOL_ERROR, "close frame with a 1-byte body");
    return;
  }
  /* Without buffering wslay checks frames, not whole messages, against the limit: the
   * fragments of one message count together here. */
  if (w->rx->frame_is_data && !w->close_started && w->rx->msg.len + arg->payload_length > w->max_message) {
    rt_info(&w->conn->srv->log, "%s: WebSocket message over %zu bytes; closing 1009", w->conn->peer,
            w->max_message);
    fail_connection(w, WSLAY_CODE_MESSAGE_TOO_BIG, "message too big");
  }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud) {
  rt_ws *w = ud;
  /* wslay has checked the message stays under max_recv_msg_length before we see it. */
  if (!w->rx->frame_is_data || w->dead || w->close_started) return;
  if (w->rx->whole_frame && arg->data_length == w->rx->frame_len) {
    w->rx->direct = arg->data;
    w->rx->direct_len = arg->data_length;
  } else if (rt_buf_append(&w->rx->msg, arg->data, arg->data_length) < 0) {
    fail_connection(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
  }
}

/* wslay has just queued the answer to a ping or a close (it does before telling us).
 * Replies to data go straight into the connection's queue, so the answer goes there now
 * too: frames leave in the order their causes arrived (a pong between the fragments of a
 * message goes before the reply to that message; Autobahn 5.6-5.8). send_cb never blocks. */
static void send_control_now(rt_ws *w) {
  if (!w->dead && !w->conn->closing) wslay_event_send(w->ctx);
}

/* A compressed message (RSV1; wslay allows it only once negotiated): inflated within
 * max_message, and a text message checked as UTF-8 after (wslay cannot, before). */
static int inflate_msg(rt_ws *w, int text, const uint8_t **data, size_t *len) {
  rt_conn *c = w->conn;
  int rc = rt_ws_z_inflate(c->srv, &w->z, *data, *len, w->max_message, data, len);
  if (rc == RT_WS_INFLATE_OK && text && !rt_utf8_valid(*data, *len)) {
    rt_ws_z_inflated_done(c->srv);
    rt_info(&c->srv->log, "%s: compressed WebSocket text is not UTF-8; closing 1007", c->peer);
    fail_connection(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "invalid UTF-8");
    return -1;
  }
  if (rc == RT_WS_INFLATE_OK) {
    c->srv->metrics.ws_compressed_in++;
    return 0;
  }
  rt_ws_z_inflated_done(c->srv);
  if (rc == RT_WS_INFLATE_TOO_BIG) {
    rt_info(&c->srv->log, "%s: WebSocket message inflates past %zu bytes; closing 1009", c->peer,
            w->max_message);
    fail_connection(w, WSLAY_CODE_MESSAGE_TOO_BIG, "message too big");
  } else if (rc == RT_WS_INFLATE_CORRUPT) {
    rt_info(&c->srv->log, "%s: corrupt permessage-deflate data; closing 1007", c->peer);
    fail_connection(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "invalid compressed data");
  } else {
    fail_connection(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
  }
  return -1;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
  rt_ws *w = ud;
  rt_conn *c = w->conn;
  if (w->dead) return;
  w->pinged = 0;
  switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME: {
      /* wslay validated UTF-8 (1007 otherwise) across all the fragments. */
      if (w->close_started) return;
      const uint8_t *data = w->rx->msg.len ? rt_buf_start(&w->rx->msg) : (const uint8_t *)"";
      size_t len = w->rx->msg.len;
      if (w->rx->direct) {
        data = w->rx->direct;
        len = w->rx->direct_len;
        w->rx->direct = NULL;
      }
      int inflated = arg->rsv & WSLAY_RSV1_BIT;
      if (inflated && inflate_msg(w, arg->opcode == WSLAY_TEXT_FRAME, &data, &len) < 0) return;
      c->srv->metrics.msgs_in++;
      if (w->sink.on_message)
        w->sink.on_message(c, w->sink.data, data, len, arg->opcode == WSLAY_BINARY_FRAME);
      else if (c->srv->app.ws_message)
        c->srv->app.ws_message(c->srv, c->srv->app.data, c->id, data, len,
                               arg->opcode == WSLAY_BINARY_FRAME);
      if (inflated) rt_ws_z_inflated_done(c->srv);
      /* A big message does not pin its buffer for the life of the connection. */
      if (!w->dead && w->rx->msg.cap > 65536) rt_buf_free(&w->rx->msg);
      break;
    }
    case WSLAY_CONNECTION_CLOSE:
      w->close_code = arg->status_code ? arg->status_code : 1005;
      /* Kept only when there is one (wslay allows at most 123 bytes). */
      if (arg->msg_length > 2 && !w->close_reason)
        w->close_reason = strndup((const char *)arg->msg + 2, arg->msg_length - 2);
      send_control_now(w);
      break;
    case WSLAY_PING:
      send_control_now(w);
      break;
    default:
      break;
  }
}

static wslay_event_context_ptr ctx_get(rt_ws *w);

static void settle(rt_conn *c, rt_ws *w) {
  if (w->dead || c->closing || !w->ctx) return;
  if (wslay_event_send(w->ctx) != 0) {
    rt_conn_close(c);
    return;
  }
  /* Both directions done: the close handshake is complete (or wslay failed the
   * connection after a protocol error and queued its close frame). */
  if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))
    rt_conn_close_after_write(c);
}

/* Gives wslay's context and the receive state back (both made again by ctx_get). */
static void free_rx(rt_ws *w) {
  if (w->ctx) wslay_event_context_free(w->ctx);
  w->ctx = NULL;
  if (w->rx) rt_buf_free(&w->rx->msg);
  free(w->rx);
  w->rx = NULL;
}

static void free_ws(rt_ws *w) {
  free_rx(w);
  free(w->close_reason);
  free(w);
}

static void on_read(rt_conn *c) {
  rt_ws *w = c->pstate;
  if (!ctx_get(w)) {
    rt_conn_close(c);
    return;
  }
  w->in_recv = 1;
  int rc = wslay_event_recv(w->ctx);
  w->in_recv = 0;
  if (w->dead) {
    free_ws(w);
    return;
  }
  if (rc != 0) {
    /* A frame-level protocol error (wslay_frame_recv): tell the peer before going. */
    if (rc == WSLAY_ERR_CALLBACK_FAILURE && !w->close_started) {
      rt_chunk *f = rt_ws_close_frame(WSLAY_CODE_PROTOCOL_ERROR, "protocol error");
      w->close_started = 1;
      if (f) {
        rt_conn_write_chunk(c, f);
        rt_chunk_unref(f);
      }
      rt_conn_close_after_write(c);
      return;
    }
    rt_conn_close(c);
    return;
  }
  settle(c, w);
}

static void on_tick(rt_conn *c, double idle) {
  rt_ws *w = c->pstate;
  const rt_config *cfg = &c->srv->cfg;
  if (w->close_started) {
    /* RFC 6455 7.1.1: do not wait forever for the peer's close frame. */
    if (ev_now(c->srv->loop) - w->close_at > 5.0) rt_conn_close(c);
    return;
  }
  if (cfg->ws_idle_timeout > 0 && idle > cfg->ws_idle_timeout) {
    rt_info(&c->srv->log, "%s: WebSocket idle for %.0f s; closing", c->peer, idle);
    rt_ws_close(c, WSLAY_CODE_GOING_AWAY, "idle timeout");
    return;
  }
  if (cfg->ws_ping_interval > 0 && idle > cfg->ws_ping_interval && !w->pinged && ctx_get(w)) {
    struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"rt", .msg_length = 2};
    w->pinged = 1;
    if (wslay_event_queue_msg(w->ctx, &ping) == 0) settle(c, w);
  }
  /* Quiet, between messages, nothing queued: most of an idle connection's memory is
   * wslay's buffers, and a fresh context later is the same as this one now. */
  if (w->ctx && idle >= 1.0 && at_boundary(&w->rx->at) && !wslay_event_want_write(w->ctx) &&
      wslay_event_get_read_enabled(w->ctx) && wslay_event_get_write_enabled(w->ctx)) {
    free_rx(w);
  }
}

static void on_overflow(rt_conn *c) {
  rt_ws *w = c->pstate;
  /* Drop what it has not started to receive, tell it why, and let it go. */
  rt_outq_drop_unstarted(&c->out);
  rt_chunk *f = rt_ws_close_frame(WSLAY_CODE_POLICY_VIOLATION, "slow consumer");
  if (f) {
    rt_outq_push(&c->out, f);
    rt_chunk_unref(f);
  }
  w->close_started = 1;
  w->close_at = ev_now(c->srv->loop);
  if (!w->close_code) w->close_code = 1006;
  rt_conn_close_after_write(c);
}

static void on_script_error(rt_conn *c) {
  rt_ws_close(c, WSLAY_CODE_INTERNAL_SERVER_ERROR, "internal error");
}

static void on_shutdown(rt_conn *c) {
  rt_ws *w = c->pstate;
  /* A protocol on top (STOMP) says goodbye its own way first. */
  if (w->sink.on_shutdown) w->sink.on_shutdown(c, w->sink.data);
  rt_ws_close(c, WSLAY_CODE_GOING_AWAY, "server shutting down");
}

static void on_close(rt_conn *c) {
  rt_ws *w = c->pstate;
  rt_broker_drop_conn(c->srv->broker, c);
  if (w->sink.on_close) w->sink.on_close(c, w->sink.data);
  rt_ws_z_release(c->srv, &w->z);
  rt_server *srv = c->srv;
  if (srv->app.ws_close)
    srv->app.ws_close(srv, srv->app.data, w->conn_id, w->close_code ? w->close_code : 1006,
                      w->close_reason ? w->close_reason : "");
  if (w->in_recv) w->dead = 1;
  else free_ws(w);
}

static const rt_proto ws_proto = {
    .name = "websocket",
    .on_read = on_read,
    .on_tick = on_tick,
    .on_overflow = on_overflow,
    .on_script_error = on_script_error,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

int rt_ws_is_ws(const rt_conn *c) { return c->proto == &ws_proto; }

static wslay_event_context_ptr ctx_get(rt_ws *w) {
  if (w->ctx) return w->ctx;
  static const struct wslay_event_callbacks cbs = {
      .recv_callback = recv_cb, .send_callback = send_cb,
      .on_frame_recv_start_callback = on_frame_start,
      .on_frame_recv_chunk_callback = on_frame_chunk,
      .on_msg_recv_callback = on_msg};
  if (!(w->rx = calloc(1, sizeof *w->rx))) return NULL;
  if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
    w->ctx = NULL;
    free(w->rx);
    w->rx = NULL;
    return NULL;
  }
  wslay_event_config_set_no_buffering(w->ctx, 1);
  wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
  /* RSV1 marks a compressed message; without the extension wslay fails it with 1002. */
  if (w->z.p.on) wslay_event_config_set_allowed_rsv_bits(w->ctx, WSLAY_RSV1_BIT);
  return w->ctx;
}

/* Is token in a comma-separated header value (case-insensitive)? */
static int header_has_token(const char *value, const char *token) {
  size_t tl = strlen(token);
  for (const char *p = value; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return 1;
    p = e;
  }
  return 0;
}

static int refuse(rt_conn *c, int status, const char *why, const char *extra_name,
                  const char *extra_value) {
  char body[200];
  int n = snprintf(body, sizeof body, "WebSocket handshake refused: %s\n", why);
  const char *hdrs[] = {extra_name, extra_value};
  rt_info(&c->srv->log, "%s: WebSocket handshake refused (%d): %s", c->peer, status, why);
  rt_http1_respond(c, status, hdrs, extra_name ? 1 : 0, body, (size_t)n);
  return -1;
}

static void pick_protocol(const rt_http_req *req, const rt_ws_opts *o, char *out, size_t outlen) {
  out[0] = 0;
  for (int i = 0; i < o->nprotocols; i++)
    for (int h = 0; h < req->nheaders; h++)
      if (strcmp(req->headers[h].name, "sec-websocket-protocol") == 0 &&
          header_has_token(req->headers[h].value, o->protocols[i])) {
        snprintf(out, outlen, "%s", o->protocols[i]);
        return;
      }
}

int rt_ws_accept(rt_conn *c, const rt_http_req *req, const rt_ws_opts *o, char *protocol,
                 size_t protocol_len) {
  const char *upgrade = rt_http_req_header(req, "upgrade");
  const char *connection = rt_http_req_header(req, "connection");
  const char *version = rt_http_req_header(req, "sec-websocket-version");
  const char *key = rt_http_req_header(req, "sec-websocket-key");
  const char *origin = rt_http_req_header(req, "origin");
  if (strcmp(req->method, "GET") != 0) return refuse(c, 405, "the upgrade must be a GET", "Allow", "GET");
  if (req->http_minor < 1) return refuse(c, 400, "HTTP/1.1 is required", NULL, NULL);
  if (!upgrade || !header_has_token(upgrade, "websocket"))
    return refuse(c, 426, "Upgrade: websocket is missing", "Upgrade", "websocket");
  if (!connection || !header_has_token(connection, "upgrade"))
    return refuse(c, 400, "Connection: Upgrade is missing", NULL, NULL);
  int drafts = o->hybi_drafts && version && (strcmp(version, "7") == 0 || strcmp(version, "8") == 0);
  if (!version || (strcmp(version, "13") != 0 && !drafts))
    return refuse(c, 426, "unsupported Sec-WebSocket-Version (this server speaks 13)",
                  "Sec-WebSocket-Version", "13");
  if (!rt_ws_key_valid(key)) return refuse(c, 400, "Sec-WebSocket-Key must be base64 of 16 bytes", NULL, NULL);
  if (o->norigins) {
    int ok = 0;
    for (int i = 0; i < o->norigins && !ok; i++)
      ok = strcmp(o->origins[i], "*") == 0 || (origin && strcasecmp(origin, o->origins[i]) == 0);
    if (!ok) return refuse(c, 403, "origin not allowed", NULL, NULL);
  }
  char chosen[64];
  pick_protocol(req, o, chosen, sizeof chosen);
  if (protocol) snprintf(protocol, protocol_len, "%s", chosen);

  rt_ws *w = calloc(1, sizeof *w);
  if (!w) return refuse(c, 500, "out of memory", NULL, NULL);
  /* No wslay context yet: many WebSockets sit idle after the handshake. */
  w->max_message = o->max_message ? o->max_message : c->srv->cfg.max_ws_message;
  w->conn = c;
  w->conn_id = c->id;
  char ext[160];
  int deflate = rt_ws_z_negotiate(c->srv, req, !o->no_deflate, &w->z, ext, sizeof ext);

  char accept[29], resp[640];
  rt_ws_accept_key(key, accept);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                   accept, chosen[0] ? "Sec-WebSocket-Protocol: " : "", chosen,
                   chosen[0] ? "\r\n" : "", deflate ? "Sec-WebSocket-Extensions: " : "",
                   deflate ? ext : "", deflate ? "\r\n" : "");
  rt_http1_detach(c);
  rt_conn_set_proto(c, &ws_proto, RT_PROTO_WS, w);
  rt_conn_write(c, resp, (size_t)n);
  rt_conn_trim_when_drained(c);
  /* A client may send its first frame with the upgrade: it waits until the app's open
   * handler has run (the caller is still setting up). */
  rt_conn_resume_read_later(c);
  return 0;
}

int rt_ws_send_frame(rt_conn *c, rt_chunk *frame) {
  if (c->proto != &ws_proto || c->closing) return -1;
  rt_ws *w = c->pstate;
  if (w->close_started) return -1;
  c->srv->metrics.msgs_out++;
  return rt_conn_write_chunk(c, frame);
}

int rt_ws_send_deflated_frame(rt_conn *c, rt_chunk *frame) {
  int rc = rt_ws_send_frame(c, frame);
  if (rc == 0 && (frame->data[0] & 0x40)) c->srv->metrics.ws_compressed_out++;  /* RSV1 */
  return rc;
}

/* Queues a message compressed for this connection. */
static int send_deflated(rt_conn *c, int opcode, const rt_ws_part *parts, int n) {
  rt_ws *w = c->pstate;
  if (w->close_started) return -1;
  rt_chunk *f = rt_ws_z_frame(c->srv, &w->z, opcode, parts, n);
  if (!f) return -1;
  c->srv->metrics.msgs_out++;
  c->srv->metrics.ws_compressed_out++;
  int rc = rt_conn_write_chunk(c, f);
  rt_chunk_unref(f);
  return rc;
}

int rt_ws_send(rt_conn *c, int opcode, const void *data, size_t len) {
  if (rt_ws_hixie76_is(c)) {
    rt_chunk *ch = rt_chunk_copy(data, len);
    int rc = ch ? rt_ws_hixie76_send(c, &ch, 1) : -1;
    rt_chunk_unref(ch);
    return rc;
  }
  if (c->proto != &ws_proto || c->closing) return -1;
  if (rt_ws_z_mode(&((rt_ws *)c->pstate)->z, len, c->srv->cfg.ws_deflate_min) != RT_WS_Z_PLAIN) {
    rt_ws_part part = {data, len};
    return send_deflated(c, opcode, &part, 1);
  }
  if (len <= 500) {
    /* Small: frame it straight into the connection's queue (coalesced with others). */
    rt_ws *w = c->pstate;
    if (w->close_started) return -1;
    uint8_t buf[512];
    size_t hl = rt_ws_frame_header(buf, opcode, len);
    memcpy(buf + hl, data, len);
    c->srv->metrics.msgs_out++;
    return rt_conn_write(c, buf, hl + len);
  }
  rt_chunk *f = rt_ws_frame_build(opcode, data, len);
  if (!f) return -1;
  int rc = rt_ws_send_frame(c, f);
  rt_chunk_unref(f);
  return rc;
}

int rt_ws_send_chunks(rt_conn *c, int opcode, rt_chunk *const *chunks, int n) {
  if (rt_ws_hixie76_is(c)) return rt_ws_hixie76_send(c, chunks, n);
  if (c->proto != &ws_proto || c->closing) return -1;
  rt_ws *w = c->pstate;
  if (w->close_started) return -1;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += chunks[i]->len;
  if (rt_ws_z_mode(&w->z, total, c->srv->cfg.ws_deflate_min) != RT_WS_Z_PLAIN) {
    rt_ws_part parts[8];
    if (n > 8) return -1;
    for (int i = 0; i < n; i++) parts[i] = (rt_ws_part){chunks[i]->data, chunks[i]->len};
    return send_deflated(c, opcode, parts, n);
  }
  uint8_t hdr[10];
  size_t hl = rt_ws_frame_header(hdr, opcode, total);
  rt_chunk *h = rt_chunk_copy(hdr, hl);
  if (!h) return -1;
  c->srv->metrics.msgs_out++;
  int rc = rt_conn_write_chunk(c, h);
  rt_chunk_unref(h);
  for (int i = 0; i < n && rc == 0; i++) rc = rt_conn_write_chunk(c, chunks[i]);
  return rc;
}

static __attribute__((noinline)) int send_shared_plain(rt_conn *c, int opcode, rt_chunk *payload,
                                                       rt_chunk **plain) {
  if (!*plain && !(*plain = rt_ws_frame_build(opcode, payload->data, payload->len))) return -1;
  return rt_ws_send_frame(c, *plain);
}

/* Out of line: the delivery to a connection without compression stays as short as it was. */
static __attribute__((noinline)) int send_shared_deflate(rt_conn *c, int opcode, rt_chunk *payload,
                                                         rt_chunk **plain, rt_chunk **deflated) {
  rt_ws *w = c->pstate;
  rt_ws_part part = {payload->data, payload->len};
  switch (rt_ws_z_mode(&w->z, payload->len, c->srv->cfg.ws_deflate_min)) {
    case RT_WS_Z_OWN:
      if (c->closing) return -1;
      return send_deflated(c, opcode, &part, 1);
    case RT_WS_Z_SHARED:
      if (!*deflated && !(*deflated = rt_ws_z_shared_frame(c->srv, opcode, &part, 1))) return -1;
      return rt_ws_send_deflated_frame(c, *deflated);
    default:
      return send_shared_plain(c, opcode, payload, plain);
  }
}

int rt_ws_send_shared(rt_conn *c, int opcode, rt_chunk *payload, rt_chunk **plain,
                      rt_chunk **deflated) {
  /* Once per subscriber per publish: the common case (no compression, the frame built by
   * an earlier subscriber) is a jump to rt_ws_send_frame; the rest is out of line. */
  if (c->proto != &ws_proto) return -1;
  if (__builtin_expect(((const rt_ws *)c->pstate)->z.p.on, 0))
    return send_shared_deflate(c, opcode, payload, plain, deflated);
  if (__builtin_expect(!*plain, 0)) return send_shared_plain(c, opcode, payload, plain);
  return rt_ws_send_frame(c, *plain);
}

int rt_ws_deflate_kind(const rt_conn *c) {
  if (c->proto != &ws_proto) return RT_WS_Z_PLAIN;
  const rt_ws *w = c->pstate;
  return rt_ws_z_mode(&w->z, (size_t)-1, 0);
}

void rt_ws_set_sink(rt_conn *c, const rt_ws_sink *sink) {
  if (rt_ws_hixie76_is(c)) rt_ws_hixie76_set_sink(c, sink);
  if (c->proto != &ws_proto) return;
  rt_ws *w = c->pstate;
  if (sink) w->sink = *sink;
  else memset(&w->sink, 0, sizeof w->sink);
}

void rt_ws_close(rt_conn *c, int code, const char *reason) {
  if (rt_ws_hixie76_is(c)) rt_ws_hixie76_close(c);  /* draft 76 has no close codes */
  if (c->proto != &ws_proto || c->closing) return;
  rt_ws *w = c->pstate;
  if (w->close_started || w->dead) return;
  w->close_started = 1;
  w->close_at = ev_now(c->srv->loop);
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123) {
    rl = 123;
    while (rl && ((unsigned char)reason[rl] & 0xc0) == 0x80) rl--;  /* whole characters */
  }
  if (!ctx_get(w)) {
    rt_conn_close(c);
    return;
  }
  wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason, rl);
  if (!w->in_recv) settle(c, w);
}

int rt_ws_close_code_sendable(int code) {
  return code == 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}
