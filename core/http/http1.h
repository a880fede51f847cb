/* HTTP/1.1 on a connection: requests in order, keep-alive, responses, static files.
 * A request goes to the app (rt_app_http_request); whoever handles it answers with
 * rt_http1_respond, rt_http1_send_file, or upgrades the connection to WebSocket. */
#ifndef RT_HTTP1_H
#define RT_HTTP1_H

#include "net/conn.h"
#include "http1_parser.h"

void rt_http1_start(rt_conn *c);
/* headers: n pairs of (name, value), may be NULL. */
void rt_http1_respond(rt_conn *c, int status, const char *const *headers, int nheaders,
                      const void *body, size_t len);
/* Serves root/relpath (relpath from the URL, already decoded) or answers 404/403. */
void rt_http1_send_file(rt_conn *c, const char *root, const char *relpath);
/* The request the connection is answering, or NULL. */
const rt_http_req *rt_http1_current(rt_conn *c);
/* Streaming responses (SockJS, server-sent events): the head now, the body in pieces over
 * time, then the end. Chunked on HTTP/1.1; on HTTP/1.0 the body ends with the connection.
 * Meanwhile the connection stays HTTP/1.1 and answers nothing else (rt_http1_respond and
 * rt_http1_current ignore it), its reads stay on so a client that leaves is noticed, and
 * the stream's owner hears of that and of a server stop. Bytes a client sends meanwhile
 * wait (a pipelined request), up to the header limit. */
typedef struct rt_http1_stream_owner {
  /* The connection is going away with the stream (peer left, error, slow consumer). The
   * owner must not touch the stream after this. */
  void (*on_close)(rt_conn *c, void *data);
  /* The server is stopping: end the stream soon. NULL: the stream is ended now. */
  void (*on_shutdown)(rt_conn *c, void *data);
  void *data;
} rt_http1_stream_owner;
/* Starts the response to the current request. Content-Length and Transfer-Encoding among
 * headers are ignored. Returns 0, or -1 when there is no request to answer. */
int rt_http1_stream_start(rt_conn *c, int status, const char *const *headers, int nheaders,
                          const rt_http1_stream_owner *owner);
/* Queues chunks as one piece of the body (no copy of the chunks). Returns -1 when the
 * stream is gone or the connection could not take it (it may have closed meanwhile: the
 * owner's on_close ran then). */
int rt_http1_stream_write(rt_conn *c, rt_chunk *const *chunks, int n);
int rt_http1_stream_write_data(rt_conn *c, const void *p, size_t n);
/* Ends the body; the connection goes on with the next request (or closes). The owner hears
 * nothing more. */
void rt_http1_stream_end(rt_conn *c);
/* Is a stream open on c? */
int rt_http1_streaming(const rt_conn *c);
/* Hands the connection to another protocol after the current request (an upgrade). */
void rt_http1_detach(rt_conn *c);
const char *rt_http_status_text(int status);
const char *rt_http_content_type(const char *path);

#endif
