/* WebSocket draft 76 ("hixie-76", 2010: Safari 5.0, iOS 4, Chrome 6) as bytes: the
 * handshake's challenge answer and the client's frames. I/O-free.
 *
 * The handshake proves the server read the request: each Sec-WebSocket-Key holds digits
 * and spaces; the digits as one number divided by the count of spaces is a 32-bit value.
 * The answer is MD5(value1 || value2 || the 8 bytes that follow the request), big-endian.
 * Frames are text only: 0x00, UTF-8, 0xFF; 0xFF 0x00 closes. Only SockJS offers this
 * protocol, when asked (sockjs-node did): no browser has spoken it since 2012. */
#ifndef RT_HIXIE76_FRAME_H
#define RT_HIXIE76_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The 16-byte answer for the two key headers and the 8 bytes after the request. Returns
 * 0, or -1 when a key is malformed (no spaces, not a multiple of them, over 32 bits). */
int rt_hixie76_answer(const char *key1, const char *key2, const uint8_t key3[8], uint8_t out[16]);

enum { RT_HIXIE76_MORE, RT_HIXIE76_CLOSE, RT_HIXIE76_ERROR };

typedef struct rt_hixie76_parser {
  int state;
  size_t max_message;  /* bytes of one text frame */
  uint32_t utf8;       /* the frame's UTF-8 state */
  rt_buf msg;
  const char *error;   /* why, after RT_HIXIE76_ERROR */
} rt_hixie76_parser;

typedef void (*rt_hixie76_on_message)(void *ud, const uint8_t *msg, size_t len);

/* Reads client bytes and calls on_message for each whole text frame. Returns
 * RT_HIXIE76_MORE (all consumed), RT_HIXIE76_CLOSE (the client's close frame: the rest is
 * ignored) or RT_HIXIE76_ERROR (a binary or unknown frame, a frame over max_message,
 * invalid UTF-8: the connection must end). on_message may not free the parser. */
int rt_hixie76_feed(rt_hixie76_parser *p, const uint8_t *data, size_t len, rt_hixie76_on_message on_message,
                    void *ud);
void rt_hixie76_parser_free(rt_hixie76_parser *p);

#endif
