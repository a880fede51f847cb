/* permessage-deflate (RFC 7692) for the WebSocket server, on zlib: the extension's
 * negotiation and the message codec. No sockets, no connections: ws.c decides which
 * compressor a message goes through and what happens on an error.
 *
 * The server's default is cheap: it compresses without context takeover, so a message is
 * compressed from scratch and the same bytes serve every subscriber that negotiated the
 * same window, and it asks clients to do the same, so one inflater (reset per message)
 * serves every connection and an idle connection holds no zlib memory. Context takeover
 * (better ratio, ~300 KiB of zlib state per connection) is opt-in under a memory budget. */
#ifndef RT_WS_DEFLATE_H
#define RT_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "base/buf.h"

#define RT_WS_DEFLATE_BITS 15  /* the window of the shared, context-free frames */

/* What one connection negotiated (on = 0: nothing, messages go uncompressed). */
typedef struct rt_ws_deflate_params {
  uint8_t on;
  uint8_t server_no_takeover;  /* we compress every message from scratch */
  uint8_t client_no_takeover;  /* the client does too: its messages inflate alone */
  uint8_t server_bits;         /* LZ77 window of what we send (9..15) */
  uint8_t client_bits;         /* window the client's messages need (8..15) */
} rt_ws_deflate_params;

/* Picks the first acceptable permessage-deflate offer among the Sec-WebSocket-Extensions
 * header values. takeover: context takeover may be granted (the client's own choice
 * stands); otherwise the answer always carries both *_no_context_takeover parameters.
 * Returns 1 and writes the response's extension line to resp, or 0 when no offer can be
 * accepted (malformed, unknown or duplicate parameters, a window we cannot honour): the
 * connection then goes uncompressed, as RFC 7692 says. */
int rt_ws_deflate_negotiate(const char *const *values, int nvalues, int takeover,
                            rt_ws_deflate_params *out, char *resp, size_t resplen);

/* zlib memory a connection with context takeover holds, estimated from its windows. */
size_t rt_ws_deflate_takeover_cost(const rt_ws_deflate_params *p);

/* A compressor (raw deflate, one window size). Feed a message's parts, then finish. */
typedef struct rt_ws_deflater {
  z_stream z;
  int ready;
} rt_ws_deflater;

int rt_ws_deflater_init(rt_ws_deflater *d, int window_bits);
void rt_ws_deflater_end(rt_ws_deflater *d);
/* Appends what zlib makes of data to out. Returns 0, or -1 (out of memory). */
int rt_ws_deflate_part(rt_ws_deflater *d, const void *data, size_t len, rt_buf *out);
/* Ends the message: flushes to a byte boundary and drops the 00 00 ff ff the flush ends
 * with (RFC 7692 7.2.1). reset: forget this message (no context takeover). */
int rt_ws_deflate_finish(rt_ws_deflater *d, int reset, rt_buf *out);
/* A piece of a message to compress (a message may be several: STOMP head, body, NUL). */
typedef struct rt_ws_part {
  const void *data;
  size_t len;
} rt_ws_part;

/* A whole frame, final, RSV1 set, header included: the compressed parts in one chunk.
 * scratch is working space (left empty). NULL when out of memory. */
rt_chunk *rt_ws_deflate_frame(rt_ws_deflater *d, int reset, int opcode, const rt_ws_part *parts,
                              int n, rt_buf *scratch);

/* A decompressor for the messages of clients (raw deflate). */
typedef struct rt_ws_inflater {
  z_stream z;
  int ready;
} rt_ws_inflater;

enum { RT_WS_INFLATE_OK = 0, RT_WS_INFLATE_TOO_BIG = -1, RT_WS_INFLATE_CORRUPT = -2,
       RT_WS_INFLATE_NOMEM = -3 };

int rt_ws_inflater_init(rt_ws_inflater *f, int window_bits);
void rt_ws_inflater_end(rt_ws_inflater *f);
/* Inflates one message's payload (all its frames' bytes, in order) onto out. Stops as
 * soon as the output passes max (TOO_BIG): a small bomb costs at most max + 1 bytes.
 * reset: the client keeps no context, forget this message after it (always after an
 * error). Returns RT_WS_INFLATE_OK or one of the errors. */
int rt_ws_inflate_msg(rt_ws_inflater *f, const uint8_t *in, size_t len, size_t max, int reset,
                      rt_buf *out);

#endif
