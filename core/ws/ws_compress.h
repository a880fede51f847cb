/* permessage-deflate on live WebSockets: what each connection negotiated, the server's
 * shared compressors and inflater, the own zlib streams of connections granted context
 * takeover, and the memory budget those come out of. ws.c calls these; the zlib work is
 * ws_deflate.c's. */
#ifndef RT_WS_COMPRESS_H
#define RT_WS_COMPRESS_H

#include "base/buf.h"
#include "http/http1_parser.h"
#include "ws_deflate.h"

typedef struct rt_server rt_server;
typedef struct rt_ws_zown rt_ws_zown;

/* One connection's side: 16 bytes, and nothing more unless it has context takeover. */
typedef struct rt_ws_zconn {
  rt_ws_deflate_params p;
  rt_ws_zown *own;  /* its own zlib streams (context takeover), made on first use */
} rt_ws_zconn;

/* How a message of some length goes to a connection. */
enum {
  RT_WS_Z_PLAIN,   /* uncompressed (not negotiated, or under the size threshold) */
  RT_WS_Z_SHARED,  /* compressed from scratch with the default window: one frame for all */
  RT_WS_Z_OWN      /* compressed for this connection alone (its context or window) */
};

/* Answers the request's permessage-deflate offers for a new connection (allowed: the
 * endpoint and the server allow compression). Returns 1 and the response's extension
 * line, or 0 (uncompressed). Context takeover is granted while the budget lasts. */
int rt_ws_z_negotiate(rt_server *srv, const rt_http_req *req, int allowed, rt_ws_zconn *zc,
                      char *line, size_t linelen);
/* The connection is going: its streams are freed and its share of the budget returned. */
void rt_ws_z_release(rt_server *srv, rt_ws_zconn *zc);
/* Inline: every fan-out delivery asks. min: the server's --ws-deflate-min. */
static inline int rt_ws_z_mode(const rt_ws_zconn *zc, size_t len, size_t min) {
  if (!zc->p.on || len < min) return RT_WS_Z_PLAIN;
  if (zc->p.server_no_takeover && zc->p.server_bits == RT_WS_DEFLATE_BITS) return RT_WS_Z_SHARED;
  return RT_WS_Z_OWN;
}
/* A compressed frame for this connection (its window, its context). NULL: out of memory. */
rt_chunk *rt_ws_z_frame(rt_server *srv, rt_ws_zconn *zc, int opcode, const rt_ws_part *parts, int n);
/* The frame every RT_WS_Z_SHARED connection can take. */
rt_chunk *rt_ws_z_shared_frame(rt_server *srv, int opcode, const rt_ws_part *parts, int n);
/* Inflates a compressed message of the connection (bounded by max, see rt_ws_inflate_msg).
 * On RT_WS_INFLATE_OK, *out and *outlen are the message, valid until rt_ws_z_inflated_done. */
int rt_ws_z_inflate(rt_server *srv, rt_ws_zconn *zc, const uint8_t *in, size_t len, size_t max,
                    const uint8_t **out, size_t *outlen);
void rt_ws_z_inflated_done(rt_server *srv);

#endif
