/* SockJS 0.3.3 framing (what sockjs-client 1.x speaks), I/O-free.
 *
 * The server sends frames: "o" (open), "h" (heartbeat), a["m1","m2"] (messages, each a JSON
 * string) and c[code,"reason"] (close). Each HTTP transport wraps a frame its own way (a line
 * for XHR, an event for EventSource, a script call for htmlfile and JSONP). The client sends
 * a JSON array of strings (or one string). Nothing here touches a socket: bytes in, bytes
 * or messages out, so every rule can be tested alone. */
#ifndef RT_SOCKJS_FRAME_H
#define RT_SOCKJS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

typedef enum rt_sockjs_transport {
  RT_SOCKJS_WEBSOCKET,
  RT_SOCKJS_XHR,            /* xhr-polling: one frame per request */
  RT_SOCKJS_XHR_STREAMING,
  RT_SOCKJS_EVENTSOURCE,
  RT_SOCKJS_HTMLFILE,
  RT_SOCKJS_JSONP,          /* jsonp-polling */
  RT_SOCKJS_XHR_SEND,       /* client -> server */
  RT_SOCKJS_JSONP_SEND,
  RT_SOCKJS_TRANSPORTS
} rt_sockjs_transport;

/* The URL name ("xhr_streaming") of a transport, and back (-1 if unknown). */
const char *rt_sockjs_transport_name(int t);
int rt_sockjs_transport_parse(const char *name);
/* Streaming transports keep the response open for many frames; polling ones end it after
 * one. */
int rt_sockjs_transport_streams(int t);
/* Transports that carry frames to the client (not xhr_send / jsonp_send). */
int rt_sockjs_transport_receives(int t);

/* Limits on what a client names in a URL. */
#define RT_SOCKJS_MAX_ID 128        /* server and session segments */
#define RT_SOCKJS_MAX_CALLBACK 128  /* htmlfile / jsonp callback name */

/* Splits "/<server>/<session>/<transport>" (the path below an endpoint's prefix). The
 * segments (decoded: "%20" is a space) must be non-empty, without '.' or control
 * characters and at most RT_SOCKJS_MAX_ID bytes; any other byte goes, as the protocol says. Returns the transport (>= 0) with the session copied to sid, or -1 when the path is
 * not a session path or names an unknown transport. */
int rt_sockjs_parse_session_path(const char *rest, char sid[RT_SOCKJS_MAX_ID + 1]);
/* A callback name the htmlfile and JSONP transports may call: [A-Za-z0-9_.-]+, bounded. */
int rt_sockjs_callback_valid(const char *cb);

/* Appends bytes as a JSON string literal that a SockJS client reads back unchanged: '"', '\'
 * and control characters escaped, and as \uXXXX also the characters browsers or proxies
 * mangle (the set sockjs-node escapes: U+2028, U+FEFF, unpaired-looking ranges, ...), with
 * characters above U+FFFF as surrogate pairs. SockJS carries text only: bytes that are not
 * UTF-8 become U+FFFD. Returns 0, or -1 on allocation failure. */
int rt_sockjs_quote(rt_buf *out, const uint8_t *s, size_t n);

/* Frames. Each appends to out and returns 0, or -1 on allocation failure. */
int rt_sockjs_close_frame(rt_buf *out, int code, const char *reason);
/* a[...] from messages already quoted with rt_sockjs_quote. */
int rt_sockjs_array_frame(rt_buf *out, rt_chunk *const *quoted, size_t n);

/* A frame as transport t carries it (out gets the wrapped bytes). For htmlfile and JSONP,
 * callback names the function to call. */
int rt_sockjs_wrap(rt_buf *out, int t, const char *callback, const uint8_t *frame, size_t n);
/* What a streaming response starts with before any frame: 2 KiB of 'h' for XHR streaming
 * (so browsers that buffer start delivering), "\r\n" for EventSource, the htmlfile page. */
int rt_sockjs_prelude(rt_buf *out, int t, const char *callback);
/* The bytes around a[...] for transports whose wrapping does not quote the frame again
 * (websocket, xhr, xhr_streaming, eventsource), so a message frame can be queued as
 * [head, m1, ",", m2, ..., tail] without copying the messages. Returns 0, or -1 for
 * transports that must wrap a copy (htmlfile, jsonp). */
int rt_sockjs_array_affixes(int t, const char **head, const char **tail);

/* Client payloads. A JSON array of strings, or one JSON string, with any whitespace JSON
 * allows. Each message is decoded to UTF-8 (an escaped lone surrogate becomes U+FFFD; raw
 * bytes must be UTF-8) and handed to fn, or only checked when fn is NULL. fn returns
 * non-zero to stop. Returns the number of messages, or -1 when the payload is not valid
 * JSON of that shape (the "Broken JSON encoding." case); nothing is handed to fn then if
 * the caller checked first. scratch holds a decoded message while fn runs. */
typedef int (*rt_sockjs_msg_fn)(void *ud, const uint8_t *msg, size_t len);
long rt_sockjs_parse_messages(const uint8_t *p, size_t n, rt_buf *scratch, rt_sockjs_msg_fn fn,
                              void *ud);

/* The iframe page (for iframe-based transports), loading the client from sockjs_url, and
 * its ETag (a quoted hash of the page). */
int rt_sockjs_iframe_page(rt_buf *out, const char *sockjs_url);
void rt_sockjs_etag(const uint8_t *p, size_t n, char out[24]);

/* Decodes application/x-www-form-urlencoded field `name` (jsonp_send's "d=") into out.
 * Returns 1 if found, 0 if not, -1 on allocation failure. */
int rt_sockjs_form_field(const uint8_t *p, size_t n, const char *name, rt_buf *out);

#endif
