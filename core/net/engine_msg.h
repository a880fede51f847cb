/* The bytes of one published message as it crosses an engine (Redis, the supervisor's
 * sockets): the name, binary or text, and what STOMP receivers need to see the same frame
 * as on the publishing process (destination header, content type, the sender's headers).
 *
 *   "RT" 1 | flags u8 | origin u64 | name | [stomp destination] | [content type]
 *   | nheaders u16 | (name, value)* | body u32 length + bytes
 *
 * Strings are a u16 length (values of headers: u32) and bytes without NUL; integers are
 * little-endian. flags: 1 binary, 2 has a STOMP destination, 4 has a content type. The
 * decoder checks every length against what is left and refuses anything else: what comes
 * from the network is never trusted. I/O-free.
 *
 * A message of a topic whose history lives in the engine (Redis) comes wrapped: the
 * engine's script prepends its place in the history,
 *
 *   "RH" epoch ":" offset "\n" message
 *
 * (epoch: 1-16 lowercase hex digits; offset: decimal, 1 to 2^63), and the same bytes are
 * what the history keeps, so a message read back is decoded like a live one. */
#ifndef RT_ENGINE_MSG_H
#define RT_ENGINE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/header.h"

#define RT_ENGINE_MAX_HEADERS 64
#define RT_ENGINE_MAX_NAME 4096
#define RT_ENGINE_MAX_VALUE (64 * 1024)

typedef struct rt_engine_msg {
  uint64_t origin;
  int binary;
  const char *name;
  const char *stomp_destination;  /* NULL: the name */
  const char *content_type;       /* NULL: the receiver's default */
  rt_header headers[RT_ENGINE_MAX_HEADERS];
  size_t nheaders;
  const uint8_t *body;            /* points into the decoded input */
  size_t body_len;
  uint64_t offset;                /* from the "RH" prefix; 0: none */
  char epoch[17];
} rt_engine_msg;

#define RT_ENGINE_EPOCH_MAX 16

/* Appends the encoding of m to out (reset by the caller). -1: out of memory or a field
 * over its limit. */
int rt_engine_msg_encode(rt_buf *out, const rt_engine_msg *m);
/* Decodes data into m; strings are copied, NUL-terminated, into scratch (reset here), so
 * they live as long as scratch is untouched. -1 with err filled on malformed input. */
int rt_engine_msg_decode(const uint8_t *data, size_t len, rt_engine_msg *m, rt_buf *scratch,
                         char *err, size_t errlen);

#endif
