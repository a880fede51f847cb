/* An HTTP/2 client connection for the gRPC client: a TCP connection from rt_dial (net's
 * dialer, shared with the STOMP relay), then TLS if the channel wants it and an rt_conn (so reads, the write queue and slow-consumer bounds are conn.c's)
 * carrying an nghttp2 client session.
 *
 * nghttp2 owns framing, HPACK and flow control; we feed it bytes (mem_recv) and pump what
 * it wants to send (mem_send) into the conn's write queue, never more than a high-water
 * mark ahead of the socket, so a slow server holds back our senders instead of growing
 * our memory. Receive windows are not updated automatically: the connection window is
 * credited at once, each stream's only when the script took the messages (rt_h2c_consume),
 * so a call nobody reads stops its peer at one stream window.
 *
 * Every stream event goes to grpc_client.c; this file knows nothing of gRPC. Failures of
 * the connection (refused, reset, GOAWAY with no streams left, protocol error) end up in
 * exactly one rt_grpc_h2c_down, always from the event loop, never from inside a caller's
 * function, so a script never sees its own call fail before the call returned. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client.h"
#include "net/dial.h"
#include "net/server_int.h"
#include "net/tls.h"
#include "net/tls_ctx.h"

#define PUMP_COALESCE 65536  /* bytes of frames gathered into one write-queue chunk */
#define PUMP_HIGH (256u * 1024u)

enum { H2C_NEW, H2C_CONNECTING, H2C_READY };

struct rt_h2c {
  rt_grpc_client *cli;
  rt_grpc_channel *ch;
  rt_server *srv;
  char host[256], port[8];
  char peer[80];
  int state;
  int ncalls;
  /* connecting */
  rt_dial *dial;
  double connect_timeout;  /* for the TCP connect, then again for the TLS handshake */
  char why[200];
  /* connected */
  rt_conn *conn;
  nghttp2_session *ses;
  rt_buf obuf;
  int refs;      /* functions on the stack that use h; freeing waits for 0 */
  unsigned in_nghttp2 : 1, down : 1, draining : 1, freed : 1;
};

static void h2c_down(rt_h2c *h, const char *why);
static void h2c_pump(rt_h2c *h);

static void h2c_destroy(rt_h2c *h) {
  rt_dial_cancel(h->dial);
  h->dial = NULL;
  if (h->conn) {
    rt_conn *c = h->conn;
    h->conn = NULL;
    c->pstate = NULL;  /* its on_close must not come back to us */
    rt_conn_close(c);
  }
  if (h->ses) nghttp2_session_del(h->ses);
  h->ses = NULL;
  rt_buf_free(&h->obuf);
  free(h);
}

static void h2c_unref(rt_h2c *h) {
  if (--h->refs == 0 && h->down) h2c_destroy(h);
}

rt_h2c *rt_h2c_new(rt_grpc_client *cli, rt_grpc_channel *ch, rt_server *srv, const char *host,
                   const char *port) {
  rt_h2c *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->cli = cli;
  h->ch = ch;
  h->srv = srv;
  h->refs = 1;  /* the owner's, dropped when it goes down or is freed */
  snprintf(h->host, sizeof h->host, "%s", host);
  snprintf(h->port, sizeof h->port, "%s", port);
  snprintf(h->peer, sizeof h->peer, "%s:%s", host, port);
  return h;
}

rt_grpc_channel *rt_h2c_channel(const rt_h2c *h) { return h->ch; }
void rt_h2c_add_calls(rt_h2c *h, int delta) { h->ncalls += delta; }
int rt_h2c_calls(const rt_h2c *h) { return h->ncalls; }
int rt_h2c_is_ready(const rt_h2c *h) { return h->state == H2C_READY && !h->down && !h->draining; }
int rt_h2c_connected(const rt_h2c *h) { return h->state == H2C_READY; }
const char *rt_h2c_peer(const rt_h2c *h) { return h->peer; }

void rt_h2c_free(rt_h2c *h) {
  if (!h || h->freed) return;
  h->freed = 1;
  h->down = 1;
  if (--h->refs == 0) h2c_destroy(h);
}

/* ---- nghttp2 callbacks: translate to grpc_client.c ----------------------------------------*/

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (!c) return 0;
  int trailers = f->headers.cat == NGHTTP2_HCAT_HEADERS;
  if (rt_grpc_call_on_header(c, trailers, name, namelen, value, valuelen) < 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  /* nghttp2 resets the stream */
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  rt_h2c *h = ud;
  switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
      rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
      if (c)
        rt_grpc_call_on_headers_end(c, f->headers.cat == NGHTTP2_HCAT_HEADERS,
                                    (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
      break;
    }
    case NGHTTP2_DATA:
      if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (c) rt_grpc_call_on_end_stream(c);
      }
      break;
    case NGHTTP2_GOAWAY:
      /* Streams above last_stream_id are closed by nghttp2 with REFUSED_STREAM; the rest
       * finish here while new calls go to a new connection. */
      if (!h->draining) {
        h->draining = 1;
        rt_grpc_h2c_draining(h->cli, h);
      }
      break;
    default:
      break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
  /* The connection window is shared by every call: credit it at once, so one call that
   * nobody reads cannot stall the others. Its own stream window waits for the reader. */
  nghttp2_session_consume_connection(s, len);
  rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, sid);
  if (!c) {
    nghttp2_session_consume_stream(s, sid, len);
    return 0;
  }
  rt_grpc_call_on_data(c, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud) {
  rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, sid);
  if (c) {
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    rt_grpc_call_on_close(c, error_code);
  }
  return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  rt_grpc_call *c = nghttp2_session_get_stream_user_data(s, sid);
  if (!c) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  int eof = 0;
  ssize_t n = rt_grpc_call_read_body(c, buf, len, &eof);
  if (n < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
  else if (n == 0) return NGHTTP2_ERR_DEFERRED;
  return n;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud) {
  rt_h2c *h = ud;
  rt_debug(&h->srv->log, "grpc client %s: HTTP/2: %.*s", h->peer, (int)len, msg);
  return 0;
}

static int session_new(rt_h2c *h) {
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return -1;
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return -1;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rc = nghttp2_session_client_new2(&h->ses, cbs, h, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rc != 0) return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RT_GRPC_CLIENT_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, RT_GRPC_CLIENT_MAX_MD_BYTES},
  };
  if (nghttp2_submit_settings(h->ses, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
      nghttp2_session_set_local_window_size(h->ses, NGHTTP2_FLAG_NONE, 0,
                                            RT_GRPC_CLIENT_CONN_WINDOW) != 0)
    return -1;
  return 0;
}

/* ---- the connection once up: rt_proto callbacks ------------------------------------------*/

/* Says goodbye (GOAWAY) and closes once the bytes are out; new calls go elsewhere. */
static void goodbye(rt_h2c *h, const char *reason) {
  if (!h->draining) {
    h->draining = 1;
    rt_grpc_h2c_draining(h->cli, h);
  }
  nghttp2_session_terminate_session(h->ses, NGHTTP2_NO_ERROR);
  h2c_pump(h);
  if (!h->down && h->conn) {
    snprintf(h->why, sizeof h->why, "connection to %s closed (%s)", h->peer, reason);
    rt_conn_close_after_write(h->conn);
  }
}

/* Closes when nghttp2 has nothing left to do (after GOAWAY both ways and no streams), or
 * when the server is stopping and the last call on it ended. Callers hold a reference. */
static void check_finished(rt_h2c *h) {
  if (h->down || !h->conn || !h->ses || h->conn->close_after_write) return;
  if (h->srv->stopping && h->ncalls == 0) {
    goodbye(h, "the server is stopping");
    return;
  }
  if (!nghttp2_session_want_read(h->ses) && !nghttp2_session_want_write(h->ses)) {
    snprintf(h->why, sizeof h->why, "connection to %s closed", h->peer);
    rt_conn_close_after_write(h->conn);
  }
}

static void h2c_on_read(rt_conn *c) {
  rt_h2c *h = c->pstate;
  if (!h) return;
  h->refs++;
  h->in_nghttp2 = 1;
  ssize_t n = nghttp2_session_mem_recv(h->ses, rt_buf_start(&c->in), c->in.len);
  h->in_nghttp2 = 0;
  if (n < 0) {
    char why[200];
    snprintf(why, sizeof why, "HTTP/2 error on the connection to %s: %s", h->peer,
             nghttp2_strerror((int)n));
    h2c_down(h, why);
  } else {
    rt_buf_consume(&c->in, (size_t)n);
    h2c_pump(h);  /* window updates, RST_STREAMs and data the events released */
    check_finished(h);
  }
  if (!h->down) rt_grpc_client_settle(h->cli);
  h2c_unref(h);
}

static void h2c_on_drained(rt_conn *c) {
  rt_h2c *h = c->pstate;
  if (h) h2c_pump(h);
}

static void h2c_on_tick(rt_conn *c, double idle) {
  rt_h2c *h = c->pstate;
  if (!h || h->down || h->ncalls > 0) return;
  /* An unused connection goes after the server's idle timeout; the next call reopens. */
  if (idle >= h->srv->cfg.idle_timeout) {
    h->refs++;
    goodbye(h, "idle");
    h2c_unref(h);
  }
}

/* The server is stopping: calls in flight may finish (the drain is for them), then the
 * connection goes (check_finished). */
static void h2c_on_shutdown(rt_conn *c) {
  rt_h2c *h = c->pstate;
  if (!h) {
    rt_conn_close_after_write(c);
    return;
  }
  h->refs++;
  check_finished(h);
  h2c_unref(h);
}

static void h2c_on_close(rt_conn *c) {
  rt_h2c *h = c->pstate;
  if (!h) return;
  h->conn = NULL;
  char why[200];
  const char *tls_why = rt_tls_error(c);
  if (tls_why) snprintf(why, sizeof why, "TLS with %s failed: %s", h->peer, tls_why);
  else if (h->why[0]) snprintf(why, sizeof why, "%s", h->why);
  else snprintf(why, sizeof why, "connection to %s closed", h->peer);
  h2c_down(h, why);
}

static const rt_proto h2c_proto = {
    .name = "h2c-client",
    .on_read = h2c_on_read,
    .on_drained = h2c_on_drained,
    .on_tick = h2c_on_tick,
    .on_shutdown = h2c_on_shutdown,
    .on_close = h2c_on_close,
};

static void write_obuf(rt_h2c *h) {
  if (!h->obuf.len || !h->conn) return;
  /* rt_conn_write copies; the buffer is reused for the next batch. */
  rt_conn_write(h->conn, rt_buf_start(&h->obuf), h->obuf.len);
  rt_buf_consume(&h->obuf, h->obuf.len);
}

static void h2c_pump(rt_h2c *h) {
  /* nghttp2 must not be re-entered from its own callbacks; h2c_on_read pumps after. */
  if (h->down || h->in_nghttp2 || !h->conn || !h->ses) return;
  h->refs++;
  size_t high = h->srv->cfg.max_output_bytes / 2;
  if (high > PUMP_HIGH) high = PUMP_HIGH;
  while (h->conn && !h->down && h->conn->out.bytes + h->obuf.len < high) {
    const uint8_t *data;
    h->in_nghttp2 = 1;
    ssize_t n = nghttp2_session_mem_send(h->ses, &data);
    h->in_nghttp2 = 0;
    if (n < 0) {
      char why[200];
      snprintf(why, sizeof why, "HTTP/2 error on the connection to %s: %s", h->peer,
               nghttp2_strerror((int)n));
      h2c_down(h, why);
      break;
    }
    if (n == 0) break;
    if (rt_buf_append(&h->obuf, data, (size_t)n) < 0) {
      h2c_down(h, "out of memory");
      break;
    }
    if (h->obuf.len >= PUMP_COALESCE) write_obuf(h);
  }
  if (!h->down) write_obuf(h);
  h2c_unref(h);
}

void rt_h2c_flush(rt_h2c *h) {
  h->refs++;
  h2c_pump(h);
  if (!h->in_nghttp2) check_finished(h);
  h2c_unref(h);
}

int32_t rt_h2c_submit(rt_h2c *h, const void *nva, size_t nvlen, rt_grpc_call *c) {
  if (!h->ses || h->down) return NGHTTP2_ERR_INVALID_STATE;
  nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = read_body};
  return nghttp2_submit_request(h->ses, NULL, nva, nvlen, &prd, c);
}

void rt_h2c_resume(rt_h2c *h, int32_t sid) {
  if (!h->ses || h->down) return;
  nghttp2_session_resume_data(h->ses, sid);
  h2c_pump(h);
}

void rt_h2c_reset(rt_h2c *h, int32_t sid, uint32_t code) {
  if (!h->ses || h->down) return;
  nghttp2_submit_rst_stream(h->ses, NGHTTP2_FLAG_NONE, sid, code);
  h2c_pump(h);
}

void rt_h2c_consume(rt_h2c *h, int32_t sid, size_t n) {
  if (!h->ses || h->down || !n) return;
  nghttp2_session_consume_stream(h->ses, sid, n);
  h2c_pump(h);
}

void rt_h2c_forget(rt_h2c *h, int32_t sid) {
  if (!h->ses || h->down) return;
  if (nghttp2_session_set_stream_user_data(h->ses, sid, NULL) == 0)
    nghttp2_submit_rst_stream(h->ses, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
  rt_h2c_flush(h);
}

/* ---- going down ----------------------------------------------------------------------------*/

static void h2c_down(rt_h2c *h, const char *why) {
  if (h->down) return;
  h->down = 1;
  h->refs++;
  rt_dial_cancel(h->dial);
  h->dial = NULL;
  if (h->conn) {
    rt_conn *c = h->conn;
    h->conn = NULL;
    c->pstate = NULL;
    rt_conn_close(c);
  }
  if (!h->freed) rt_grpc_h2c_down(h->cli, h, why);
  h->refs--;  /* ours from above */
  h2c_unref(h);  /* the owner's: a down connection has none */
}

/* ---- connecting ----------------------------------------------------------------------------*/

/* "host:port", "[v6]:port", optionally after "http://"; nothing after the port. */
int rt_h2c_parse_target(const char *target, char *host, size_t hostlen, char *port,
                        size_t portlen, char *auth, size_t authlen) {
  const char *t = target, *colon;
  if (!strncmp(t, "http://", 7)) t += 7;
  size_t n = strlen(t);
  if (n > 0 && t[n - 1] == '/') n--;
  if (n == 0 || n >= authlen) return -1;
  if (t[0] == '[') {
    const char *close = memchr(t, ']', n);
    if (!close || close + 1 >= t + n || close[1] != ':') return -1;
    if ((size_t)(close - t - 1) >= hostlen || close == t + 1) return -1;
    memcpy(host, t + 1, (size_t)(close - t - 1));
    host[close - t - 1] = 0;
    colon = close + 1;
  } else {
    colon = NULL;
    for (size_t i = 0; i < n; i++)
      if (t[i] == ':') {
        if (colon) return -1;  /* a bare IPv6 address needs brackets */
        colon = t + i;
      }
    if (!colon || colon == t || (size_t)(colon - t) >= hostlen) return -1;
    memcpy(host, t, (size_t)(colon - t));
    host[colon - t] = 0;
  }
  size_t plen = (size_t)(t + n - colon - 1);
  if (plen == 0 || plen > 5 || plen >= portlen) return -1;
  long p = 0;
  for (size_t i = 0; i < plen; i++) {
    char ch = colon[1 + i];
    if (ch < '0' || ch > '9') return -1;
    p = p * 10 + (ch - '0');
  }
  if (p < 1 || p > 65535) return -1;
  memcpy(port, colon + 1, plen);
  port[plen] = 0;
  memcpy(auth, t, n);
  auth[n] = 0;
  return 0;
}


/* rt_dial answers from the loop, never from inside rt_h2c_connect (see the file comment),
 * and frees itself after this returns. */
static void on_dialed(void *ud, rt_conn *c, const char *err) {
  rt_h2c *h = ud;
  h->dial = NULL;
  if (!c) {
    h2c_down(h, err);
    return;
  }
  snprintf(h->peer, sizeof h->peer, "%s", c->peer);  /* the address it reached */
  rt_conn_set_proto(c, &h2c_proto, RT_PROTO_H2, h);
  h->conn = c;
  const char *name;
  rt_tls_ctx *tls = rt_grpc_channel_tls(h->ch, &name);
  if (tls && rt_tls_connect(c, tls, name, h->connect_timeout) < 0) {
    h2c_down(h, "cannot start TLS");
    return;
  }
  if (session_new(h) < 0) {
    h2c_down(h, "cannot create an HTTP/2 session");
    return;
  }
  h->state = H2C_READY;
  h->why[0] = 0;
  h->refs++;
  rt_grpc_h2c_ready(h->cli, h);  /* submits the calls that waited */
  h2c_pump(h);
  h2c_unref(h);
}

int rt_h2c_connect(rt_h2c *h, double timeout) {
  h->state = H2C_CONNECTING;
  h->connect_timeout = timeout;
  /* A host name is resolved in rt_dial_start, blocking the loop for the lookup, once per
   * connection (not per call). */
  h->dial = rt_dial_start(h->srv, h->host, atoi(h->port), timeout, on_dialed, h);
  return h->dial ? 0 : -1;
}
