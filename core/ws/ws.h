/* WebSocket (RFC 6455) connections, server side, on wslay.
 *
 * wslay parses client frames, checks masking, opcodes, control-frame rules, close codes
 * and message size, answers pings and runs the close handshake. Data frames the server
 * sends are framed here instead (ws_frame.c), so one frame can be shared by every
 * subscriber of a topic without a copy per receiver. */
#ifndef RT_WS_H
#define RT_WS_H

#include <stddef.h>

#include "base/buf.h"
#include "net/conn.h"
#include "http/http1_parser.h"

typedef struct rt_ws_opts {
  const char *const *protocols;  /* subprotocols we speak, in order of preference */
  int nprotocols;
  const char *const *origins;    /* allowed Origin values; none = any */
  int norigins;
  size_t max_message;            /* 0 = server default */
  int hybi_drafts;               /* also accept versions 7 and 8 (hybi-07/-10: the same
                                    framing; SockJS clients of 2011 still send them) */
  int no_deflate;                /* decline permessage-deflate on this endpoint */
} rt_ws_opts;

/* Validates the upgrade request and answers it: 101 and the connection becomes a
 * WebSocket (returns 0), or an HTTP error status is sent (returns -1). The chosen
 * subprotocol ("" for none) is copied to protocol. */
int rt_ws_accept(rt_conn *c, const rt_http_req *req, const rt_ws_opts *opts,
                 char *protocol, size_t protocol_len);
int rt_ws_is_ws(const rt_conn *c);
int rt_ws_send(rt_conn *c, int opcode, const void *data, size_t len);
/* Queues a frame built once (rt_ws_frame_build) and shared by many connections. */
int rt_ws_send_frame(rt_conn *c, rt_chunk *frame);
/* The same for a frame that may be compressed (RSV1; rt_ws_z_shared_frame's): those are
 * counted in the metrics. */
int rt_ws_send_deflated_frame(rt_conn *c, rt_chunk *frame);
/* Queues a message many connections receive (a publish). Its frames are built on first
 * need and kept in *plain and *deflated (the context-free compressed frame) for the next
 * connection; a connection with its own compression context gets its own frame. */
int rt_ws_send_shared(rt_conn *c, int opcode, rt_chunk *payload, rt_chunk **plain,
                      rt_chunk **deflated);
/* Which frames the connection takes for a message past the size threshold: RT_WS_Z_PLAIN,
 * RT_WS_Z_SHARED (rt_ws_z_shared_frame's) or RT_WS_Z_OWN (ws_compress.h). */
int rt_ws_deflate_kind(const rt_conn *c);
/* Queues pre-built chunks as ONE unfragmented message: the frame header is computed from
 * their total length. Lets a STOMP MESSAGE go out as [header + per-subscriber head] +
 * shared body + shared NUL without copying the body per subscriber. */
int rt_ws_send_chunks(rt_conn *c, int opcode, rt_chunk *const *chunks, int n);

/* A sink takes a WebSocket's messages instead of the Lua app (STOMP over WebSocket). */
typedef struct rt_ws_sink {
  void (*on_message)(rt_conn *c, void *data, const uint8_t *msg, size_t len, int binary);
  void (*on_close)(rt_conn *c, void *data);  /* the connection is going away */
  void (*on_shutdown)(rt_conn *c, void *data);  /* the server stops: say goodbye (NULL: 1001) */
  void *data;
} rt_ws_sink;
void rt_ws_set_sink(rt_conn *c, const rt_ws_sink *sink);

/* Starts the close handshake. */
void rt_ws_close(rt_conn *c, int code, const char *reason);
/* May an endpoint send this close code (RFC 6455 7.4)? */
int rt_ws_close_code_sendable(int code);

/* The broker's deliver function for WebSocket subscribers of a topic: the message framed
 * once, the same chunk queued on every subscriber (ws_api.c). */
struct rt_sub;
struct rt_msg;
void rt_ws_deliver(struct rt_sub *s, struct rt_msg *m);

#endif
