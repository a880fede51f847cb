/* gRPC server calls over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md). One call per stream.
 *
 * The call validates the request headers, splits DATA into messages (grpc_frame.h),
 * queues them for the app, frames and compresses replies, and ends with trailers or a
 * Trailers-Only response. It deals in message bytes only: protobuf is the app layer's
 * business (lua_grpc.c). A call lives while its stream is open or the app holds it, so
 * a handler that outlives its connection gets clean "cancelled" answers, never a dangling
 * pointer.
 *
 * Flow control, inbound: bytes are credited back to the peer (WINDOW_UPDATE) only while
 * the queue of messages the app has not taken stays under RT_GRPC_SRV_IN_HIGH. Outbound:
 * send says "full" once RT_GRPC_SRV_OUT_HIGH bytes wait, and the app waits for the
 * writable event (the queue is down to RT_GRPC_SRV_OUT_LOW) before it sends more.
 *
 * Names are rt_grpc_srv_*: the client side (grpc_client.h) has its own rt_grpc_call. */
#ifndef RT_GRPC_SERVER_H
#define RT_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_meta.h"

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_grpc_srv_call rt_grpc_srv_call;

#define RT_GRPC_SRV_IN_HIGH (256 * 1024)
#define RT_GRPC_SRV_OUT_HIGH (64 * 1024)
#define RT_GRPC_SRV_OUT_LOW (16 * 1024)
#define RT_GRPC_SRV_MAX_META_OUT (8 * 1024)  /* custom response headers, and trailers, each */
#define RT_GRPC_SRV_MAX_PATH 1024
#define RT_GRPC_SRV_MAX_STATUS_MSG 1024      /* grpc-message before percent-encoding */

/* ---- for the app layer ---------------------------------------------------------------- */
typedef struct rt_grpc_srv_opts {
  int client_streaming, server_streaming;
  size_t max_recv, max_send;  /* bytes of one message, after decompression; 0 = 4 MiB */
  rt_grpc_enc compress;       /* reply encoding when the client sent plain messages but
                               * accepts this one; NONE = reply plain */
} rt_grpc_srv_opts;

enum {
  RT_GRPC_SRV_CANCELLED = 1,  /* the client reset the stream or the connection went */
  RT_GRPC_SRV_EXPIRED = 2,    /* grpc-timeout passed (DEADLINE_EXCEEDED was sent) */
  RT_GRPC_SRV_FINISHED = 4,   /* a status was given (by the app or by the call itself) */
  RT_GRPC_SRV_INPUT_END = 8,  /* the client half-closed */
};
enum {
  RT_GRPC_SRV_RECV_WAIT = 0, RT_GRPC_SRV_RECV_MSG = 1, RT_GRPC_SRV_RECV_END = -1,
  RT_GRPC_SRV_RECV_DEAD = -2
};
enum {
  RT_GRPC_SRV_SEND_OK = 0, RT_GRPC_SRV_SEND_FULL = 1, RT_GRPC_SRV_SEND_DEAD = -1,
  RT_GRPC_SRV_SEND_EINVAL = -2
};

void rt_grpc_srv_set_app(rt_grpc_srv_call *call, void *app);   /* takes the app's reference */
void *rt_grpc_srv_app(const rt_grpc_srv_call *call);
void rt_grpc_srv_release(rt_grpc_srv_call *call);              /* drops it; app becomes NULL */
int rt_grpc_srv_bind(rt_grpc_srv_call *call, const rt_grpc_srv_opts *b);

const char *rt_grpc_srv_path(const rt_grpc_srv_call *call);
const char *rt_grpc_srv_peer(const rt_grpc_srv_call *call);
const char *rt_grpc_srv_authority(const rt_grpc_srv_call *call);
uint64_t rt_grpc_srv_conn_id(const rt_grpc_srv_call *call);
/* Absolute deadline on the loop's clock (ev_now), or 0 when the client set none. */
double rt_grpc_srv_deadline(const rt_grpc_srv_call *call);
rt_grpc_enc rt_grpc_srv_req_encoding(const rt_grpc_srv_call *call);
unsigned rt_grpc_srv_flags(const rt_grpc_srv_call *call);
/* Why the call is over, for "nil, err" answers: "cancelled", "deadline exceeded", ... */
const char *rt_grpc_srv_dead_reason(const rt_grpc_srv_call *call);
/* Request metadata in order, as on the wire (-bin values still base64). *pos starts at 0;
 * returns 0 at the end. */
int rt_grpc_srv_meta_next(const rt_grpc_srv_call *call, size_t *pos, const char **key,
                          const char **val, size_t *vlen);

/* The next request message (valid until rt_grpc_srv_recv_pop) or what else there is. */
int rt_grpc_srv_recv(rt_grpc_srv_call *call, const uint8_t **data, size_t *len);
void rt_grpc_srv_recv_pop(rt_grpc_srv_call *call);
/* Frames one reply message (compressing it when the reply encoding says so). */
int rt_grpc_srv_send(rt_grpc_srv_call *call, const uint8_t *msg, size_t len, char *err,
                     size_t errlen);
size_t rt_grpc_srv_out_pending(const rt_grpc_srv_call *call);
/* Response headers (trailer = 0) or trailers (1). key is lower case; a "-bin" value is
 * any bytes and goes out base64. Returns 0, or -1 with err (reserved or invalid key,
 * invalid value, headers already sent, over RT_GRPC_SRV_MAX_META_OUT). */
int rt_grpc_srv_add_meta(rt_grpc_srv_call *call, int trailer, const char *key,
                         const char *val, size_t vlen, char *err, size_t errlen);
/* Sends the response headers now instead of with the first message. */
int rt_grpc_srv_send_headers(rt_grpc_srv_call *call);
/* Ends the call with a status: trailers after any queued messages, or Trailers-Only.
 * Returns -1 if it had ended already. */
int rt_grpc_srv_finish(rt_grpc_srv_call *call, int status, const char *msg, size_t msglen);

/* ---- wiring ---------------------------------------------------------------------------- */
/* c speaks HTTP/2 from now on, every stream a gRPC call (a port of gRPC's own). */
void rt_grpc_srv_start(rt_conn *c);
/* HTTP/1.1 connections that open with the HTTP/2 preface become gRPC connections. A new
 * call goes to the server's app (rt_app.grpc_call), which looks its method up and binds
 * it (or finishes it with UNIMPLEMENTED), takes a reference with rt_grpc_srv_set_app and
 * releases it with rt_grpc_srv_release when its handler is done; rt_app.grpc_event says
 * something changed for a call the app holds: a message or the end of input arrived,
 * queued output drained, or the call was cancelled, expired or failed. */
void rt_grpc_srv_enable(rt_server *srv);

#endif
