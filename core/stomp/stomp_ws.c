/* STOMP over WebSocket (subprotocols v10.stomp, v11.stomp, v12.stomp): the WebSocket's
 * messages go to the session through a sink instead of the Lua app. A frame may span
 * messages and a message may hold several frames: the session's parser does not care. */
#include <string.h>

#include "net/server_int.h"
#include "stomp.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"
#include "ws/ws_compress.h"

static int ws_send(rt_conn *c, rt_chunk *const *chunks, int n, int text) {
  return rt_ws_send_chunks(c, text ? RT_WS_TEXT : RT_WS_BINARY, chunks, n);
}

static void ws_close(rt_conn *c, int error) {
  /* After an ERROR frame: 1002 (protocol error), or 1001 when the server is stopping;
   * after DISCONNECT: a normal close. */
  if (c->srv->stopping) rt_ws_close(c, 1001, "server shutting down");
  else if (error) rt_ws_close(c, 1002, "STOMP ERROR");
  else rt_ws_close(c, 1000, "DISCONNECT");
}

static rt_chunk *ws_wire(rt_server *srv, rt_chunk *const *chunks, int n, int text) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += chunks[i]->len;
  uint8_t hdr[10];
  size_t hl = rt_ws_frame_header(hdr, text ? RT_WS_TEXT : RT_WS_BINARY, total);
  rt_chunk *w = rt_chunk_new(hl + total);
  if (!w) return NULL;
  memcpy(w->data, hdr, hl);
  for (int i = 0; i < n; i++) {
    memcpy(w->data + hl, chunks[i]->data, chunks[i]->len);
    hl += chunks[i]->len;
  }
  return w;
}

/* The frame for subscribers that take context-free compressed frames (permessage-deflate):
 * compressed once per publish and subscription id, like the plain one. */
static rt_chunk *ws_wire_deflate(rt_server *srv, rt_chunk *const *chunks, int n, int text) {
  size_t total = 0;
  rt_ws_part parts[4];
  if (n > 4) return NULL;
  for (int i = 0; i < n; i++) {
    parts[i] = (rt_ws_part){chunks[i]->data, chunks[i]->len};
    total += chunks[i]->len;
  }
  if (total < srv->cfg.ws_deflate_min) return ws_wire(srv, chunks, n, text);
  return rt_ws_z_shared_frame(srv, text ? RT_WS_TEXT : RT_WS_BINARY, parts, n);
}

static const rt_stomp_transport ws_transport = {.name = "websocket", .send = ws_send, .close = ws_close,
                                                .wire = ws_wire, .send_wire = rt_ws_send_frame};
static const rt_stomp_transport ws_deflate_transport = {
    .name = "websocket", .send = ws_send, .close = ws_close, .wire = ws_wire_deflate,
    .send_wire = rt_ws_send_deflated_frame};
/* A connection with its own compression context takes no shared frames at all. */
static const rt_stomp_transport ws_own_transport = {.name = "websocket", .send = ws_send,
                                                    .close = ws_close};

static void on_message(rt_conn *c, void *data, const uint8_t *msg, size_t len, int binary) {
  rt_stomp_session_feed(data, msg, len);
}

static void on_close(rt_conn *c, void *data) { rt_stomp_session_closed(data); }

/* STOMP 1.2 has no goodbye frame but ERROR: the client learns why before the close. */
static void on_shutdown(rt_conn *c, void *data) { rt_stomp_session_shutdown(data); }

rt_stomp_session *rt_stomp_ws_attach(rt_stomp_server *ss, rt_conn *c) {
  if (!rt_ws_is_ws(c) || c->closing) return NULL;
  int kind = rt_ws_deflate_kind(c);
  rt_stomp_session *s = rt_stomp_session_new(ss, c, kind == RT_WS_Z_SHARED ? &ws_deflate_transport
                                                    : kind == RT_WS_Z_OWN  ? &ws_own_transport
                                                                           : &ws_transport);
  if (!s) return NULL;
  rt_ws_sink sink = {.on_message = on_message, .on_close = on_close, .on_shutdown = on_shutdown,
                     .data = s};
  rt_ws_set_sink(c, &sink);
  return s;
}
