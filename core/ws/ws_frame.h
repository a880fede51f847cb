/* WebSocket pieces that need no connection: the handshake key and server frames.
 * Server frames are never masked, so one frame's bytes serve every receiver. */
#ifndef RT_WS_FRAME_H
#define RT_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum { RT_WS_CONT = 0, RT_WS_TEXT = 1, RT_WS_BINARY = 2, RT_WS_CLOSE = 8, RT_WS_PING = 9, RT_WS_PONG = 10 };

/* Sec-WebSocket-Key must be base64 of 16 bytes. */
int rt_ws_key_valid(const char *key);
/* out gets the 28-character Sec-WebSocket-Accept and a NUL. */
void rt_ws_accept_key(const char *key, char out[29]);
/* Writes a final, unmasked frame header; returns its length (2, 4 or 10). */
size_t rt_ws_frame_header(uint8_t hdr[10], int opcode, size_t payload_len);
/* Header and payload in one chunk. */
rt_chunk *rt_ws_frame_build(int opcode, const void *payload, size_t len);
rt_chunk *rt_ws_close_frame(int code, const char *reason);

#endif
