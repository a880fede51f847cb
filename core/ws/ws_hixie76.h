/* WebSocket draft-76 connections, server side (ws_hixie76.c): for sinks only. ws.c's
 * rt_ws_send, rt_ws_send_chunks, rt_ws_set_sink and rt_ws_close hand such a connection
 * here, so a sink's owner (SockJS) drives both protocols through one interface. */
#ifndef RT_WS_HIXIE76_H
#define RT_WS_HIXIE76_H

#include "ws.h"

/* Is the upgrade request a draft-76 one (Sec-WebSocket-Key1/Key2, no Sec-WebSocket-Key)? */
int rt_ws_hixie76_request(const rt_http_req *req);
/* Answers it: the 101 headers at once, the challenge answer when the client's 8 bytes
 * come; returns 0, or -1 after an HTTP error answer. opts: max_message only. */
int rt_ws_hixie76_accept(rt_conn *c, const rt_http_req *req, const rt_ws_opts *opts);
int rt_ws_hixie76_is(const rt_conn *c);
/* One text frame of the chunks. */
int rt_ws_hixie76_send(rt_conn *c, rt_chunk *const *chunks, int n);
void rt_ws_hixie76_set_sink(rt_conn *c, const rt_ws_sink *sink);
/* The close frame (0xFF 0x00), then the end of the connection. */
void rt_ws_hixie76_close(rt_conn *c);

#endif
