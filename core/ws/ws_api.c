/* WebSockets as apps use them: accept, send, close and topic subscriptions by connection
 * id (the public functions of rtserver.h), and the broker's delivery to a WebSocket. */
#include <string.h>

#include "http/http1.h"
#include "net/broker.h"
#include "net/server_int.h"
#include "base/utf8.h"
#include "ws.h"
#include "ws_frame.h"

void rt_ws_deliver(rt_sub *s, rt_msg *m) {
  /* The first WebSocket subscriber frames the message (and the first that negotiated
   * permessage-deflate compresses it); the rest share those chunks. */
  rt_ws_send_shared(s->conn, m->binary ? RT_WS_BINARY : RT_WS_TEXT, m->body, &m->ws_frame,
                    &m->ws_deflated);
}

int rt_websocket_accept(rt_server *srv, uint64_t conn, const char *const *protocols,
                        int nprotocols) {
  rt_conn *c = rt_conn_find(srv, conn);
  const rt_http_req *req = c ? rt_http1_current(c) : NULL;
  if (!req) return -1;
  rt_ws_opts o = {.protocols = protocols, .nprotocols = protocols ? nprotocols : 0};
  char chosen[64];
  return rt_ws_accept(c, req, &o, chosen, sizeof chosen);
}

static rt_conn *ws_conn(rt_server *srv, uint64_t conn) {
  rt_conn *c = rt_conn_find(srv, conn);
  return c && rt_ws_is_ws(c) ? c : NULL;
}

int rt_websocket_send(rt_server *srv, uint64_t conn, const void *data, size_t len, int binary) {
  rt_conn *c = ws_conn(srv, conn);
  if (!c || (!binary && !rt_utf8_valid((const uint8_t *)data, len))) return -1;
  return rt_ws_send(c, binary ? RT_WS_BINARY : RT_WS_TEXT, data, len);
}

int rt_websocket_close(rt_server *srv, uint64_t conn, int code, const char *reason) {
  rt_conn *c = ws_conn(srv, conn);
  if (!c || !rt_ws_close_code_sendable(code)) return -1;
  rt_ws_close(c, code, reason ? reason : "");
  return 0;
}

int rt_websocket_subscribe(rt_server *srv, uint64_t conn, const char *topic) {
  rt_conn *c = ws_conn(srv, conn);
  if (!c) return -1;
  if (rt_broker_find(srv->broker, topic, c, rt_ws_deliver)) return 0;
  return rt_broker_subscribe(srv->broker, topic, c, rt_ws_deliver, NULL) ? 0 : -1;
}

int rt_websocket_unsubscribe(rt_server *srv, uint64_t conn, const char *topic) {
  rt_conn *c = ws_conn(srv, conn);
  rt_sub *s = c ? rt_broker_find(srv->broker, topic, c, rt_ws_deliver) : NULL;
  if (!s) return -1;
  rt_broker_unsubscribe(srv->broker, s);
  return 0;
}
