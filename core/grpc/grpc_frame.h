/* grpc_frame.h - I/O-free gRPC message framing (Length-Prefixed-Message) and compression.
 *
 * On the wire each message is 1 byte compressed flag (0 or 1), 4 bytes big-endian length,
 * then the payload. DATA frame boundaries have nothing to do with message boundaries, so
 * the decoder takes DATA payloads cut anywhere and is a pull API like the STOMP parser:
 *
 *     size_t off = 0, used;
 *     rt_grpc_msg m;
 *     for (;;) {
 *       int rc = rt_grpc_dec_feed(d, data + off, len - off, &used, &m);
 *       off += used;
 *       if (rc == RT_GRPC_MSG) { handle(m.data, m.len); continue; }
 *       if (rc < 0) fail_call(rt_grpc_err_status(rc), rt_grpc_dec_error(d));
 *       break;                              // RT_GRPC_NEED_MORE: off == len
 *     }
 *     ...at END_STREAM: if (rt_grpc_dec_finish(d) < 0) fail_call(INTERNAL, ...);
 *
 * A message that lies whole inside the slice is handed out in place (no copy); one cut by
 * a slice boundary is gathered into the decoder's buffer, which grows with the bytes that
 * arrive (at most twice what came, never past the limit) rather than with what the prefix
 * promises. m.data stays valid until the next feed, finish or free.
 *
 * Compressed messages (flag 1) need the stream's grpc-encoding, given with
 * rt_grpc_dec_set_encoding. With inflate on (the default) the decoder decompresses them
 * and m.data is the plain message; m.compressed still tells what the wire said. The limit
 * applies to both the wire size and the decompressed size, so a zip bomb stops at the
 * limit with RT_GRPC_ETOOBIG. Errors are sticky; rt_grpc_err_status() maps them to the
 * status to send: ETOOBIG/ENOMEM -> RESOURCE_EXHAUSTED, the rest -> INTERNAL. */
#ifndef RT_GRPC_FRAME_H
#define RT_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_meta.h"

#define RT_GRPC_PREFIX_LEN 5
#define RT_GRPC_DEFAULT_MAX_MSG (4u * 1024u * 1024u) /* gRPC's usual receive limit */
#define RT_GRPC_MAX_MSG_LIMIT 0xffffffffu            /* the length field's range */

/* Optional allocator (tests inject failures with it). fn(ud, p, 0) frees and returns NULL;
 * otherwise it acts as realloc. NULL everywhere means the C library's. zlib's own
 * allocations go through it too. */
typedef struct rt_grpc_alloc {
  void *(*fn)(void *ud, void *ptr, size_t size);
  void *ud;
} rt_grpc_alloc;

/* Frees memory returned by rt_grpc_decompress with the same allocator. */
void rt_grpc_free(const rt_grpc_alloc *a, void *p);

enum { RT_GRPC_NEED_MORE = 0, RT_GRPC_MSG = 1 };

typedef struct rt_grpc_msg {
  const uint8_t *data; /* never NULL, even for an empty message */
  size_t len;
  int compressed;      /* the flag byte as received (0 or 1) */
} rt_grpc_msg;

/* Caller-owned decoder; embed it in the stream. Fields are private: use the functions. */
typedef struct rt_grpc_dec {
  size_t max_msg;
  rt_grpc_alloc alloc;
  rt_grpc_enc enc;
  int inflate;
  int rc;            /* sticky error, 0 if none */
  uint8_t hdr[RT_GRPC_PREFIX_LEN];
  size_t hdr_have;   /* prefix bytes gathered for the message in progress */
  size_t need;       /* payload length of the message in progress */
  size_t have;       /* payload bytes gathered into buf */
  uint8_t *buf;      /* payload cut across slices */
  size_t cap;
  uint8_t *out;      /* decompressed payload */
  size_t outcap;
  struct rt_grpc_zctx *zs; /* zlib stream reused across messages, reset for each */
  char err[112];
} rt_grpc_dec;

/* max_msg 0 means RT_GRPC_DEFAULT_MAX_MSG; a is copied (NULL = libc). Cannot fail. */
void rt_grpc_dec_init(rt_grpc_dec *d, size_t max_msg, const rt_grpc_alloc *a);
/* Releases the buffers; the decoder may be initialised again. */
void rt_grpc_dec_free(rt_grpc_dec *d);
/* The stream's grpc-encoding (RT_GRPC_ENC_NONE if there was none). inflate_on = 0 hands
 * compressed payloads out as they came, for the caller to rt_grpc_decompress. */
void rt_grpc_dec_set_encoding(rt_grpc_dec *d, rt_grpc_enc enc, int inflate_on);
/* Returns RT_GRPC_MSG with *msg filled, RT_GRPC_NEED_MORE once all len bytes are taken,
 * or an error. *used says how many bytes of data were taken in every case. */
int rt_grpc_dec_feed(rt_grpc_dec *d, const uint8_t *data, size_t len, size_t *used,
                     rt_grpc_msg *msg);
/* At END_STREAM: 0 if the stream ended between messages, else RT_GRPC_ETRUNCATED (or the
 * sticky error). */
int rt_grpc_dec_finish(rt_grpc_dec *d);
/* A one-line reason for the last error ("" if none). */
const char *rt_grpc_dec_error(const rt_grpc_dec *d);
/* Bytes the decoder holds for the message in progress (for flow-control accounting). */
size_t rt_grpc_dec_buffered(const rt_grpc_dec *d);

/* Checks a compressed-flag byte against the stream's grpc-encoding: 0 if fine,
 * RT_GRPC_EFLAG for a byte other than 0/1, RT_GRPC_EENCODING for 1 without an encoding
 * that compresses (none, identity, unknown). Both map to INTERNAL. */
int rt_grpc_check_flag(int flag, rt_grpc_enc enc);

/* ---- encoding ---------------------------------------------------------------------------*/
/* Writes the 5-byte prefix, so the payload can follow from where it already is (writev).
 * RT_GRPC_EINVAL if len does not fit 32 bits. */
int rt_grpc_frame_prefix(uint8_t out[RT_GRPC_PREFIX_LEN], int compressed, size_t len);
/* Prefix + payload into out (cap bytes); *outlen = 5 + len. RT_GRPC_ESPACE if too small. */
int rt_grpc_frame_encode(uint8_t *out, size_t cap, int compressed, const void *payload,
                         size_t len, size_t *outlen);
/* Frames one message, compressed with enc when that makes it smaller (the flag is per
 * message, so an incompressible one goes out plain). enc NONE/IDENTITY never compresses.
 * level: zlib level 0-9, or -1 for its default. cap >= 5 + len is enough, since the
 * compressed form is only kept if shorter. out must not overlap payload. */
int rt_grpc_frame_encode_msg(rt_grpc_enc enc, int level, const void *payload, size_t len,
                             uint8_t *out, size_t cap, size_t *outlen,
                             const rt_grpc_alloc *a, char *err, size_t errlen);

/* ---- compression, one message at a time ------------------------------------------------*/
/* Room that always suffices for rt_grpc_compress of len bytes, at any level (with a few
 * bytes to spare, enough for the 5-byte prefix too). */
size_t rt_grpc_compress_bound(size_t len);
/* Compresses in into out; RT_GRPC_ESPACE if cap is too small. IDENTITY copies; NONE and
 * UNKNOWN are RT_GRPC_EINVAL. */
int rt_grpc_compress(rt_grpc_enc enc, int level, const void *in, size_t len, uint8_t *out,
                     size_t cap, size_t *outlen, const rt_grpc_alloc *a, char *err,
                     size_t errlen);
/* Decompresses one message into a new buffer (*out, free with rt_grpc_free). More than
 * max_out bytes of output is RT_GRPC_ETOOBIG; bad data or trailing bytes RT_GRPC_ECORRUPT.
 * gzip input may hold several members (RFC 1952 allows it); they are joined. */
int rt_grpc_decompress(rt_grpc_enc enc, const void *in, size_t len, size_t max_out,
                       uint8_t **out, size_t *outlen, const rt_grpc_alloc *a, char *err,
                       size_t errlen);

#endif
