/* STOMP over SockJS: a SockJS session as a STOMP transport (stomp.h). The session's own
 * connection is the STOMP session's connection, so subscriptions, the user registry and
 * the Lua hooks work as over a WebSocket. Each frame the STOMP session sends becomes one
 * SockJS message (stomp.js expects that); what the client sends is fed to the parser as it
 * comes (a frame may span messages, a message may hold several frames). */
#include <string.h>

#include "sockjs.h"
#include "stomp/stomp.h"

static int sockjs_send(rt_conn *c, rt_chunk *const *chunks, int n, int text) {
  rt_sockjs_session *s = rt_sockjs_session_of(c);
  if (!s) return -1;
  if (n == 1) return rt_sockjs_session_send(s, chunks[0]->data, chunks[0]->len);
  /* SockJS messages are JSON strings: the pieces are quoted as one text. A body that is
   * not UTF-8 cannot cross SockJS unchanged (its bytes arrive as U+FFFD). */
  rt_buf b = {0};
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) rc = rt_buf_append(&b, chunks[i]->data, chunks[i]->len);
  if (rc == 0) rc = rt_sockjs_session_send(s, rt_buf_start(&b), b.len);
  rt_buf_free(&b);
  return rc;
}

static void sockjs_close(rt_conn *c, int error) {
  rt_sockjs_session *s = rt_sockjs_session_of(c);
  /* What the session queued (the ERROR frame) goes before the close frame. */
  if (!s) return;
  if (s->shutting_down) rt_sockjs_session_close(s, 1001, "Server shutting down");
  else rt_sockjs_session_close(s, error ? 1002 : 1000, error ? "STOMP ERROR" : "DISCONNECT");
}

static const rt_stomp_transport sockjs_transport = {.name = "sockjs", .send = sockjs_send,
                                                    .close = sockjs_close};

static void on_message(rt_sockjs_session *s, void *data, const uint8_t *msg, size_t len) {
  rt_stomp_session_feed(data, msg, len);
}

static void on_close(rt_sockjs_session *s, void *data) { rt_stomp_session_closed(data); }

static void on_shutdown(rt_sockjs_session *s, void *data) { rt_stomp_session_shutdown(data); }

rt_stomp_session *rt_sockjs_stomp_attach(rt_stomp_server *ss, rt_sockjs_session *s) {
  if (!ss || !s->conn || s->state != RT_SOCKJS_S_OPEN) return NULL;
  rt_stomp_session *st = rt_stomp_session_new(ss, s->conn, &sockjs_transport);
  if (!st) return NULL;
  rt_sockjs_sink sink = {.on_message = on_message, .on_close = on_close, .on_shutdown = on_shutdown,
                         .data = st};
  rt_sockjs_session_set_sink(s, &sink);
  return st;
}
