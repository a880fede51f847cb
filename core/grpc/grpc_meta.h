/* grpc_meta.h - I/O-free helpers for gRPC metadata (doc/PROTOCOL-HTTP2.md in grpc/grpc).
 *
 * Status codes and their names, the codec's error codes, grpc-timeout, grpc-message
 * percent-encoding, base64 for "-bin" metadata, content-type, grpc-encoding and
 * grpc-accept-encoding. Nothing here allocates: outputs go into the caller's buffers.
 * Strings in are (pointer, length) and need no NUL; strings out are not NUL-terminated
 * unless said so, and every *_len / *_bound function says how big a buffer must be. */
#ifndef RT_GRPC_META_H
#define RT_GRPC_META_H

#include <stddef.h>
#include <stdint.h>

/* Status codes, as sent in grpc-status. */
typedef enum rt_grpc_status {
  RT_GRPC_STATUS_OK = 0,
  RT_GRPC_STATUS_CANCELLED = 1,
  RT_GRPC_STATUS_UNKNOWN = 2,
  RT_GRPC_STATUS_INVALID_ARGUMENT = 3,
  RT_GRPC_STATUS_DEADLINE_EXCEEDED = 4,
  RT_GRPC_STATUS_NOT_FOUND = 5,
  RT_GRPC_STATUS_ALREADY_EXISTS = 6,
  RT_GRPC_STATUS_PERMISSION_DENIED = 7,
  RT_GRPC_STATUS_RESOURCE_EXHAUSTED = 8,
  RT_GRPC_STATUS_FAILED_PRECONDITION = 9,
  RT_GRPC_STATUS_ABORTED = 10,
  RT_GRPC_STATUS_OUT_OF_RANGE = 11,
  RT_GRPC_STATUS_UNIMPLEMENTED = 12,
  RT_GRPC_STATUS_INTERNAL = 13,
  RT_GRPC_STATUS_UNAVAILABLE = 14,
  RT_GRPC_STATUS_DATA_LOSS = 15,
  RT_GRPC_STATUS_UNAUTHENTICATED = 16,
  RT_GRPC_STATUS_COUNT_
} rt_grpc_status;

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; NULL outside 0..16. */
const char *rt_grpc_status_name(int code);
/* Name -> code, case-insensitive ("not_found" works); -1 if no such name. */
int rt_grpc_status_from_name(const char *name, size_t len);
/* Parses a grpc-status value: 1 to 9 decimal digits, nothing else (leading zeros are
 * tolerated). Returns the code, with values above 16 reported as RT_GRPC_STATUS_UNKNOWN as
 * a client must; -1 if malformed. */
int rt_grpc_status_parse(const char *s, size_t len);

/* Error codes of the gRPC codecs (grpc_meta and grpc_frame). Negative. */
enum {
  RT_GRPC_EINVAL = -1,     /* malformed input or argument */
  RT_GRPC_ETOOBIG = -2,    /* a message (or its decompressed form) passes the limit */
  RT_GRPC_ENOMEM = -3,     /* allocation failed */
  RT_GRPC_EFLAG = -4,      /* compressed-flag byte neither 0 nor 1 */
  RT_GRPC_EENCODING = -5,  /* compressed flag set but no usable grpc-encoding */
  RT_GRPC_ECORRUPT = -6,   /* compressed payload does not decompress */
  RT_GRPC_ETRUNCATED = -7, /* the stream ended inside a message */
  RT_GRPC_ESPACE = -8      /* the caller's output buffer is too small */
};
const char *rt_grpc_strerror(int rc);
/* The status a peer should get for a codec error: RESOURCE_EXHAUSTED for ETOOBIG and
 * ENOMEM, INTERNAL for the others (as the spec asks for a compressed flag without an
 * encoding), OK for rc >= 0. */
rt_grpc_status rt_grpc_err_status(int rc);

/* ---- grpc-timeout: 1 to 8 digits and a unit H M S m u n ("1S", "100m") ------------------
 * Spaces or tabs around the value are skipped; anything else is RT_GRPC_EINVAL. Values too
 * large for the result saturate to INT64_MAX (an 8-digit hour count is ~11000 years,
 * which is a deadline no one waits for). The _ms form rounds up, so "1n" is 1 ms and never
 * 0 ms (which would mean "already expired"). */
int rt_grpc_timeout_parse_ns(const char *s, size_t len, int64_t *ns);
int rt_grpc_timeout_parse_ms(const char *s, size_t len, int64_t *ms);
/* Client side: formats ns as a grpc-timeout value. Picks the coarsest unit that states
 * ns exactly in 8 digits, else the finest unit that fits, rounding up (a deadline is
 * never shortened by formatting). ns <= 0 gives "1n". Writes a NUL-terminated string;
 * returns its length, or RT_GRPC_ESPACE if outlen < RT_GRPC_TIMEOUT_MAXLEN. */
#define RT_GRPC_TIMEOUT_MAXLEN 10 /* 8 digits, unit, NUL */
int rt_grpc_timeout_format(int64_t ns, char *out, size_t outlen);

/* ---- grpc-message percent-encoding ------------------------------------------------------
 * Bytes outside 0x20-0x7E, and '%', become "%XX" (upper-case hex); so UTF-8 text is sent
 * byte by byte. Decoding is lenient as the spec asks: "%" not followed by two hex digits
 * (either case) is kept as it is, never an error. */
size_t rt_grpc_pct_encode_len(const void *in, size_t len);
/* Writes rt_grpc_pct_encode_len(in, len) bytes to out. */
size_t rt_grpc_pct_encode(const void *in, size_t len, char *out);
/* Writes at most len bytes to out and returns how many; out may be in (in place). */
size_t rt_grpc_pct_decode(const char *in, size_t len, uint8_t *out);

/* ---- base64 (RFC 4648 section 4) for "-bin" metadata ------------------------------------
 * The spec says emit unpadded: rt_grpc_b64_encode(..., 0) does; pad = 1 adds '='.
 * Decoding accepts padded and unpadded input, and refuses anything else: characters out of
 * the alphabet (including '-', '_' and whitespace), '=' anywhere but the last one or two
 * places of a 4-character group, a length of 4k+1, and non-zero bits after the last byte
 * (so that a value has one encoding). Split a joined header on ',' before decoding
 * (rt_grpc_list_next does that). */
size_t rt_grpc_b64_encode_len(size_t len, int pad);
/* Writes rt_grpc_b64_encode_len(len, pad) bytes to out and returns that count. */
size_t rt_grpc_b64_encode(const void *in, size_t len, char *out, int pad);
/* Upper bound of the decoded size; out needs that much room. */
size_t rt_grpc_b64_decode_bound(size_t len);
/* Writes *outlen bytes; returns 0 or RT_GRPC_EINVAL. out may not overlap in. */
int rt_grpc_b64_decode(const char *in, size_t len, uint8_t *out, size_t *outlen);

/* ---- metadata keys and values -----------------------------------------------------------*/
/* Header-Name: 1*(0-9 a-z _ - .). */
int rt_grpc_meta_key_valid(const char *key, size_t len);
/* Ends in "-bin": the value is base64 on the wire, any bytes to the application. */
int rt_grpc_meta_key_is_bin(const char *key, size_t len);
/* ASCII-Value: 1*(0x20-0x7E). */
int rt_grpc_meta_value_valid(const char *val, size_t len);

/* ---- content-type ------------------------------------------------------------------------
 * "application/grpc" then optionally "+subtype" and/or ";params" (type compared without
 * case, as media types are). Returns RT_GRPC_CT_* >= 0, or -1 if it is not gRPC (the
 * server then answers HTTP 415). If sub is given it gets the subtype ("" if none). */
enum { RT_GRPC_CT_PROTO = 0, RT_GRPC_CT_JSON = 1, RT_GRPC_CT_OTHER = 2 };
int rt_grpc_content_type_parse(const char *s, size_t len, const char **sub, size_t *sublen);

/* ---- grpc-encoding and grpc-accept-encoding --------------------------------------------*/
typedef enum rt_grpc_enc {
  RT_GRPC_ENC_UNKNOWN = -1, /* named, but not one we speak: answer UNIMPLEMENTED */
  RT_GRPC_ENC_NONE = 0,     /* no grpc-encoding header: the compressed flag must be 0 */
  RT_GRPC_ENC_IDENTITY = 1,
  RT_GRPC_ENC_GZIP = 2,     /* RFC 1952 gzip wrapper */
  RT_GRPC_ENC_DEFLATE = 3,  /* RFC 1950 zlib wrapper, as HTTP's "deflate" */
  RT_GRPC_ENC_COUNT_
} rt_grpc_enc;

/* A grpc-encoding value (case-insensitive, surrounding spaces ignored). An empty value is
 * RT_GRPC_ENC_NONE; a name we do not know is RT_GRPC_ENC_UNKNOWN. */
rt_grpc_enc rt_grpc_enc_parse(const char *s, size_t len);
/* "identity", "gzip", "deflate"; NULL for NONE and UNKNOWN. */
const char *rt_grpc_enc_name(rt_grpc_enc enc);
/* A set of encodings as a bit mask: bit (1u << enc). */
#define RT_GRPC_ENC_BIT(e) (1u << (unsigned)(e))
#define RT_GRPC_ENC_ALL                                                            \
  (RT_GRPC_ENC_BIT(RT_GRPC_ENC_IDENTITY) | RT_GRPC_ENC_BIT(RT_GRPC_ENC_GZIP) |     \
   RT_GRPC_ENC_BIT(RT_GRPC_ENC_DEFLATE))
/* Parses a comma list ("gzip, identity,snappy"); unknown names are ignored. */
unsigned rt_grpc_accept_encoding_parse(const char *s, size_t len);
/* Formats a mask as "identity,gzip,deflate" (NUL-terminated). Returns the length, or
 * RT_GRPC_ESPACE. 32 bytes is always enough. */
int rt_grpc_accept_encoding_format(unsigned mask, char *out, size_t outlen);

/* Iterates a comma-separated header value: *pos starts at 0. Gives each item with spaces
 * and tabs trimmed (empty items are skipped); returns 1 per item, 0 at the end. */
int rt_grpc_list_next(const char *s, size_t len, size_t *pos, const char **item,
                      size_t *itemlen);

/* The status a client reports when the answer is not gRPC: an HTTP status other than 200
 * (the table of the gRPC HTTP/2 spec), or a stream reset with an HTTP/2 error code
 * (RFC 9113 7; REFUSED_STREAM may be retried, so UNAVAILABLE). */
int rt_grpc_status_from_http(int http_status);
int rt_grpc_status_from_h2(uint32_t h2_error);

#endif
