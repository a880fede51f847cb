/* stomp_frame.h - I/O-free STOMP 1.2 frame codec: incremental parser and serializer.
 *
 * Parsing is a pull API. The caller feeds whatever bytes it read; the parser stops after
 * each complete frame so the caller can handle it before feeding the rest:
 *
 *     size_t off = 0, used;
 *     rt_stomp_frame f;
 *     for (;;) {
 *         int rc = rt_stomp_parser_feed(p, buf + off, len - off, &used, &f);
 *         off += used;
 *         if (rc == RT_STOMP_FRAME) { handle(&f); continue; }
 *         if (rc < 0) send_error(rt_stomp_parser_error(p));
 *         break;                               // RT_STOMP_NEED_MORE: off == len
 *     }
 *
 * The parser copies what it keeps, so the caller may reuse its read buffer at once. A
 * returned frame points into the parser and stays valid until the next feed or free.
 * Header names and values are unescaped and NUL-terminated; the body is also followed by
 * a NUL that body_len does not count, so a text body can be used as a C string.
 *
 * What the parser enforces (STOMP 1.2): known command; EOL is LF or CR LF; "name:value"
 * header lines (the value is everything after the first colon); escapes \r \n \c \\ only,
 * and none in CONNECT/CONNECTED frames; content-length (first occurrence wins) is decimal
 * and the body is then followed by NUL; heart-beat EOLs between frames are counted. It does
 * not enforce which commands may carry a body or which headers a command needs: that is
 * the session's business. NUL and bare CR are refused inside header lines.
 * Any error is sticky: every later feed returns the same code. */
#ifndef RT_STOMP_FRAME_H
#define RT_STOMP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/header.h"

typedef enum rt_stomp_command {
    RT_STOMP_CMD_NONE = 0,
    /* client */
    RT_STOMP_CMD_CONNECT,
    RT_STOMP_CMD_STOMP,
    RT_STOMP_CMD_SEND,
    RT_STOMP_CMD_SUBSCRIBE,
    RT_STOMP_CMD_UNSUBSCRIBE,
    RT_STOMP_CMD_ACK,
    RT_STOMP_CMD_NACK,
    RT_STOMP_CMD_BEGIN,
    RT_STOMP_CMD_COMMIT,
    RT_STOMP_CMD_ABORT,
    RT_STOMP_CMD_DISCONNECT,
    /* server */
    RT_STOMP_CMD_CONNECTED,
    RT_STOMP_CMD_MESSAGE,
    RT_STOMP_CMD_RECEIPT,
    RT_STOMP_CMD_ERROR,
    RT_STOMP_CMD_COUNT_
} rt_stomp_command;

/* Return codes. Errors are negative. */
enum {
    RT_STOMP_NEED_MORE = 0,     /* all input consumed, no complete frame yet */
    RT_STOMP_FRAME = 1,         /* a frame is complete; *frame is filled */
    RT_STOMP_EPROTO = -1,       /* malformed input */
    RT_STOMP_ELIMIT = -2,       /* a configured limit was exceeded */
    RT_STOMP_ENOMEM = -3,       /* allocation failed */
    RT_STOMP_EINVAL = -4        /* serializer: the caller's frame cannot be encoded */
};

typedef struct rt_stomp_limits {
    size_t max_body;            /* body bytes, with or without content-length */
    size_t max_headers;         /* header lines per frame */
    size_t max_header_line;     /* raw bytes of one header line, EOL excluded */
    size_t max_command;         /* raw bytes of the command line, EOL excluded */
} rt_stomp_limits;

#define RT_STOMP_DEFAULT_MAX_BODY        (1024u * 1024u)
#define RT_STOMP_DEFAULT_MAX_HEADERS     64u
#define RT_STOMP_DEFAULT_MAX_HEADER_LINE 8192u
#define RT_STOMP_DEFAULT_MAX_COMMAND     32u

/* A header, unescaped, NUL-terminated (base/header.h). */
typedef rt_header rt_stomp_header;

/* A header for the serializer from two C strings, e.g. rt_stomp_hdr("destination", d). */
static inline rt_stomp_header rt_stomp_hdr(const char *name, const char *value)
{
    rt_stomp_header h;
    h.name = name;
    h.name_len = strlen(name);
    h.value = value;
    h.value_len = strlen(value);
    return h;
}

typedef struct rt_stomp_frame {
    rt_stomp_command command;
    const rt_stomp_header *headers; /* in wire order; repeats kept */
    size_t nheaders;
    const uint8_t *body;        /* never NULL for a parsed frame; may hold NULs */
    size_t body_len;
} rt_stomp_frame;

typedef struct rt_stomp_parser rt_stomp_parser;

void rt_stomp_limits_default(rt_stomp_limits *lim);

/* lim may be NULL for the defaults; a zero field also means "default". */
rt_stomp_parser *rt_stomp_parser_new(const rt_stomp_limits *lim);
void rt_stomp_parser_free(rt_stomp_parser *p);

/* Consume up to len bytes. *consumed tells how many were used (always len when the result
 * is RT_STOMP_NEED_MORE). On RT_STOMP_FRAME *frame is filled and the rest of the input is
 * left for the next call. Negative = error, see rt_stomp_parser_error(); the connection
 * cannot be resynchronised after one, so the session should send ERROR and close. */
int rt_stomp_parser_feed(rt_stomp_parser *p, const void *data, size_t len,
                         size_t *consumed, rt_stomp_frame *frame);

/* Short human message for the last error ("" when none), fit for an ERROR frame. */
const char *rt_stomp_parser_error(const rt_stomp_parser *p);

/* Heart-beat EOLs seen between frames since the parser was created. */
uint64_t rt_stomp_parser_heartbeats(const rt_stomp_parser *p);

/* Frames returned so far. */
uint64_t rt_stomp_parser_frames(const rt_stomp_parser *p);

/* First header with this name (STOMP: the first occurrence wins), or NULL. */
const rt_stomp_header *rt_stomp_frame_header(const rt_stomp_frame *f, const char *name);
/* Its value, or NULL. */
const char *rt_stomp_frame_get(const rt_stomp_frame *f, const char *name);

/* "SEND" etc.; NULL for an unknown value. */
const char *rt_stomp_command_name(rt_stomp_command cmd);
/* RT_STOMP_CMD_NONE when the bytes are not a command. */
rt_stomp_command rt_stomp_command_parse(const char *s, size_t len);

/* ---- serializer -------------------------------------------------------------------- */

/* Tiny growable byte buffer. Zero-initialised ({0}) is a valid empty buffer. */
typedef struct rt_stomp_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} rt_stomp_buf;

void rt_stomp_buf_init(rt_stomp_buf *b);
void rt_stomp_buf_free(rt_stomp_buf *b);
void rt_stomp_buf_reset(rt_stomp_buf *b);      /* len = 0, keeps the memory */
int rt_stomp_buf_append(rt_stomp_buf *b, const void *data, size_t len);

/* Append the frame head: command line, headers, "content-length:<body_len>" when body_len
 * > 0, and the blank line. Any "content-length" in hdrs is skipped so the written one is
 * the only one. The caller sends head, body, then one NUL byte ("\0") — so one body can be
 * shared by many heads (fan-out with writev). Header names and values are escaped, except
 * in CONNECT/CONNECTED frames, where a name with ':' or anything with CR or LF cannot be
 * encoded. Returns the bytes appended, or a negative code with a message in err (may be
 * NULL); on error out is left as it was. */
long rt_stomp_write_head(rt_stomp_buf *out, rt_stomp_command cmd,
                         const rt_stomp_header *hdrs, size_t nhdrs, size_t body_len,
                         char *err, size_t errlen);

/* Head, body and the terminating NUL in one buffer. body may be NULL when body_len is 0. */
long rt_stomp_write_frame(rt_stomp_buf *out, rt_stomp_command cmd,
                          const rt_stomp_header *hdrs, size_t nhdrs,
                          const void *body, size_t body_len, char *err, size_t errlen);

#endif
