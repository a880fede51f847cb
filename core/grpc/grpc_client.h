/* gRPC client: calls from scripts to other gRPC servers. Internal.
 *
 * Three layers, each knowing only the one below:
 *
 *   lua_grpc_client.c   Lua tables <-> protobuf bytes, coroutines parked on a call
 *   grpc_client.c       calls: gRPC framing, metadata, status, deadlines, flow control
 *   h2_client.c         one TCP connection per target, an nghttp2 client session on it
 *
 * A channel is a target ("127.0.0.1:9090"): every call to it shares one HTTP/2 connection
 * (rt_h2c), opened on the first call and reopened on demand after it drops. A connection
 * that got GOAWAY keeps serving the calls it has while new calls go to a fresh one.
 *
 * Nothing here runs Lua. A call reports progress through its notify function, and only at
 * safe points: never from inside an nghttp2 callback, so the handler may start calls,
 * send, cancel or release freely. The script side learns what changed by asking the call.
 *
 *   rt_grpc_channel *ch = rt_grpc_client_channel(cli, "127.0.0.1:9090", err, sizeof err);
 *   rt_grpc_call_opts o = {.path = "/user.UserService/GetUser", .timeout = 1.0};
 *   rt_grpc_call *call = rt_grpc_call_start(ch, &o, err, sizeof err);
 *   rt_grpc_call_set_notify(call, on_event, ud);
 *   rt_grpc_call_send(call, framed, len);   rt_grpc_call_close_send(call);
 *   ... on_event: rt_grpc_call_peek / _pop messages; rt_grpc_call_done -> status ...
 *   rt_grpc_call_release(call);            // cancels it if unfinished
 */
#ifndef RT_GRPC_CLIENT_H
#define RT_GRPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "grpc_frame.h"
#include "grpc_meta.h"

typedef struct rt_server rt_server;
typedef struct rt_grpc_client rt_grpc_client;
typedef struct rt_grpc_channel rt_grpc_channel;
typedef struct rt_grpc_call rt_grpc_call;
typedef struct rt_h2c rt_h2c;

/* ---- limits ------------------------------------------------------------------------------*/
#define RT_GRPC_CLIENT_MAX_CALLS 4096        /* calls on one connection (active + queued) */
#define RT_GRPC_CLIENT_MAX_MD_BYTES 65536    /* response headers + trailers of one call */
#define RT_GRPC_CLIENT_MAX_MD_ENTRIES 256
#define RT_GRPC_CLIENT_MAX_SEND_MD 64        /* metadata entries a script may send */
#define RT_GRPC_CLIENT_RECV_HIGH (1u << 20)  /* undelivered bytes before we stop the peer */
#define RT_GRPC_CLIENT_SEND_HIGH (1u << 20)  /* unsent bytes before send() waits */
#define RT_GRPC_CLIENT_STREAM_WINDOW (1 << 20)
#define RT_GRPC_CLIENT_CONN_WINDOW (16 << 20)
#define RT_GRPC_CLIENT_CONNECT_TIMEOUT 5.0   /* seconds, when the call has no deadline */
#define RT_GRPC_CLIENT_MAX_TARGETS 1024      /* distinct targets one server talks to */

/* ---- the client: channels by target -------------------------------------------------------*/
rt_grpc_client *rt_grpc_client_new(rt_server *srv);
/* Closes every connection. Calls still held by their owner stay allocated, finished with
 * UNAVAILABLE, until rt_grpc_call_release. No notify runs from here. */
void rt_grpc_client_free(rt_grpc_client *cli);
/* "host:port" or "[v6addr]:port" (an "http://" prefix is allowed). The same target
 * string always gives the same channel. NULL + err if malformed or over the limit. */
rt_grpc_channel *rt_grpc_client_channel(rt_grpc_client *cli, const char *target, char *err,
                                        size_t errlen);

/* TLS to the target: the server's certificate is verified against ca (NULL: the system's
 * CAs) for server_name (NULL: the target's host), unless no_verify; cert and key are a
 * client certificate for mutual TLS. */
typedef struct rt_grpc_tls {
  const char *ca, *cert, *key, *server_name;
  int no_verify;
} rt_grpc_tls;
/* The same with TLS (tls NULL: plain). A target with other TLS settings is another
 * channel. NULL + err when the files do not load. */
rt_grpc_channel *rt_grpc_client_channel_tls(rt_grpc_client *cli, const char *target,
                                            const rt_grpc_tls *tls, char *err, size_t errlen);

typedef struct rt_grpc_client_stats {
  long connects;       /* TCP connections opened (successfully) */
  long connect_fails;
  long calls;          /* calls started */
  int open;            /* connections up now */
} rt_grpc_client_stats;
void rt_grpc_channel_stats(const rt_grpc_channel *ch, rt_grpc_client_stats *out);

/* ---- calls --------------------------------------------------------------------------------*/
typedef struct rt_grpc_md {
  const char *key;     /* lower case; "-bin" keys carry raw bytes in val */
  const uint8_t *val;
  size_t vallen;
} rt_grpc_md;

typedef struct rt_grpc_call_opts {
  const char *path;          /* "/pkg.Service/Method" */
  double timeout;            /* seconds until DEADLINE_EXCEEDED; <= 0: none */
  size_t max_recv_msg;       /* 0: RT_GRPC_DEFAULT_MAX_MSG */
  const rt_grpc_md *md;      /* request metadata, checked by rt_grpc_md_check */
  size_t n_md;
} rt_grpc_call_opts;

/* Checks one metadata entry a script wants to send: a valid lower-case key that is not
 * reserved (pseudo-headers, grpc-*, te, content-type, ...) and, unless "-bin", a printable
 * ASCII value. 0 or -1 + err. */
int rt_grpc_md_check(const char *key, const uint8_t *val, size_t vallen, char *err,
                     size_t errlen);

/* Starts a call: it connects if needed; the request goes out once the connection is up.
 * A call that cannot start (too many calls, out of memory) is still returned, already
 * finished with its status, so the caller has one path for all failures. NULL only for
 * misuse (bad options, metadata) or out of memory, with err. */
rt_grpc_call *rt_grpc_call_start(rt_grpc_channel *ch, const rt_grpc_call_opts *o, char *err,
                                 size_t errlen);
/* fn(call, ud) runs at a safe point after the call changed: a message, headers, the end,
 * room to send. It may call anything here, including release. */
void rt_grpc_call_set_notify(rt_grpc_call *c, void (*fn)(rt_grpc_call *, void *), void *ud);
/* The owner lets go: an unfinished call is cancelled (RST_STREAM CANCEL). c is invalid
 * after this. */
void rt_grpc_call_release(rt_grpc_call *c);

/* Queues one request message. buf holds RT_GRPC_PREFIX_LEN free bytes then the message
 * (len counts the message only): the prefix is written in place. -1 + err if the call is
 * finished or half-closed. */
int rt_grpc_call_send(rt_grpc_call *c, uint8_t *buf, size_t len, char *err, size_t errlen);
/* Half-closes: END_STREAM after what was queued. Idempotent. */
void rt_grpc_call_close_send(rt_grpc_call *c);
int rt_grpc_call_send_closed(const rt_grpc_call *c);
/* Request bytes queued but not yet taken by HTTP/2 (flow control holds them). */
size_t rt_grpc_call_send_buffered(const rt_grpc_call *c);

/* The oldest response message not yet taken: 1 and data/len, or 0. */
int rt_grpc_call_peek(const rt_grpc_call *c, const uint8_t **data, size_t *len);
/* Drops it, which gives the peer flow-control credit back. */
void rt_grpc_call_pop(rt_grpc_call *c);
size_t rt_grpc_call_queued(const rt_grpc_call *c);

/* 1 once response headers came (or the call ended without them). */
int rt_grpc_call_has_headers(const rt_grpc_call *c);
/* 1 once the status is known. */
int rt_grpc_call_done(const rt_grpc_call *c);
/* The status (RT_GRPC_STATUS_*) and its message ("" if none); valid once done. */
int rt_grpc_call_status(const rt_grpc_call *c, const char **message);
/* Response metadata: initial headers (trailers = 0) or trailers (1); -bin values decoded. */
size_t rt_grpc_call_md(const rt_grpc_call *c, int trailers, const rt_grpc_md **out);

/* Runs the call's notify again at the next safe point (a notify that could serve only one
 * of two waiters asks for another turn). */
void rt_grpc_call_renotify(rt_grpc_call *c);

/* Ends the call from this side with status/message (CANCELLED for a script's cancel). */
void rt_grpc_call_cancel(rt_grpc_call *c, int status, const char *message);

/* ---- between grpc_client.c and h2_client.c ------------------------------------------------*/
/* h2_client.c, used by grpc_client.c: */
/* "host:port", "[v6]:port", optionally after "http://" and before one "/"; fills host,
 * port and the :authority to send. 0 or -1. */
int rt_h2c_parse_target(const char *target, char *host, size_t hostlen, char *port,
                        size_t portlen, char *auth, size_t authlen);
rt_h2c *rt_h2c_new(rt_grpc_client *cli, rt_grpc_channel *ch, rt_server *srv, const char *host,
                   const char *port);
rt_grpc_channel *rt_h2c_channel(const rt_h2c *h);
/* The channel's TLS context (NULL: plain) and the name its certificate must carry. */
struct rt_tls_ctx *rt_grpc_channel_tls(const rt_grpc_channel *ch, const char **server_name);
/* Calls attached to h (grpc_client.c keeps the count; idle detection reads it). */
void rt_h2c_add_calls(rt_h2c *h, int delta);
int rt_h2c_calls(const rt_h2c *h);
/* Starts connecting; reports through rt_grpc_h2c_ready / rt_grpc_h2c_down, always from
 * the loop. -1 (out of memory): nothing started, nothing will be reported. */
int rt_h2c_connect(rt_h2c *h, double timeout);
/* Up and taking new streams (not connecting, not draining after GOAWAY). */
int rt_h2c_is_ready(const rt_h2c *h);
/* Got as far as a TCP connection and an HTTP/2 session (draining or not). */
int rt_h2c_connected(const rt_h2c *h);
/* HEADERS for a call with a body to come from rt_grpc_call_read_body. Returns the stream
 * id or a negative nghttp2 error. */
int32_t rt_h2c_submit(rt_h2c *h, const void *nva, size_t nvlen, rt_grpc_call *c);
void rt_h2c_resume(rt_h2c *h, int32_t stream_id);
void rt_h2c_reset(rt_h2c *h, int32_t stream_id, uint32_t h2_error);
/* Gives the peer n bytes of stream window back. */
void rt_h2c_consume(rt_h2c *h, int32_t stream_id, size_t n);
/* Forgets the call for a stream (it was released while the stream lives on). */
void rt_h2c_forget(rt_h2c *h, int32_t stream_id);
/* Sends what nghttp2 has ready, now or after the current input batch. */
void rt_h2c_flush(rt_h2c *h);
/* Closes the connection (if any) without reporting; for rt_grpc_client_free. */
void rt_h2c_free(rt_h2c *h);
const char *rt_h2c_peer(const rt_h2c *h);

/* grpc_client.c, called by h2_client.c: */
void rt_grpc_h2c_ready(rt_grpc_client *cli, rt_h2c *h);
/* The connection is gone or never came up; every stream was closed before. h is freed
 * right after this returns. */
void rt_grpc_h2c_down(rt_grpc_client *cli, rt_h2c *h, const char *why);
/* GOAWAY came: no new streams on h. */
void rt_grpc_h2c_draining(rt_grpc_client *cli, rt_h2c *h);
/* A safe point: run pending notifications. h2_client.c calls it after each input batch;
 * grpc_client.c's zero-delay timer calls it for changes made anywhere else. */
void rt_grpc_client_settle(rt_grpc_client *cli);
/* Stream events. Return -1 to reset the stream (the call records why). */
int rt_grpc_call_on_header(rt_grpc_call *c, int trailers, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen);
int rt_grpc_call_on_headers_end(rt_grpc_call *c, int trailers, int end_stream);
int rt_grpc_call_on_data(rt_grpc_call *c, const uint8_t *data, size_t len);
void rt_grpc_call_on_end_stream(rt_grpc_call *c);
void rt_grpc_call_on_close(rt_grpc_call *c, uint32_t h2_error);
/* Fills buf with request bytes: > 0 bytes, 0 with *eof for the end, 0 without *eof when
 * there is nothing yet (the stream waits for rt_h2c_resume). */
ssize_t rt_grpc_call_read_body(rt_grpc_call *c, uint8_t *buf, size_t len, int *eof);

#endif
