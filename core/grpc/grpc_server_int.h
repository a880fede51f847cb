/* What grpc_server.c and grpc_server_resp.c share: a call's private structure and the
 * response functions the call's life drives. Nothing else includes this. */
#ifndef RT_GRPC_SERVER_INT_H
#define RT_GRPC_SERVER_INT_H

#include <ev.h>

#include "base/buf.h"
#include "grpc_frame.h"
#include "grpc_server.h"
#include "http/h2.h"

/* The message encodings we take and offer (grpc-accept-encoding). */
#define ACCEPT_ENCODINGS "identity,deflate,gzip"

/* rt_buf_start of an empty, never-allocated buffer would offset a NULL pointer. */
static inline const uint8_t *buf_bytes(const rt_buf *b) {
  return b->len ? rt_buf_start(b) : (const uint8_t *)"";
}

typedef struct in_msg {
  struct in_msg *next;
  size_t len;
  uint8_t data[];
} in_msg;

struct rt_grpc_srv_call {
  rt_server *srv;
  rt_h2 *h2;                 /* set while the stream is open */
  int32_t sid;
  int refs;                  /* the stream's, the app's, one per queued event */
  rt_grpc_srv_call *prev, *next; /* h2->open */
  rt_grpc_srv_call *next_event;
  uint64_t conn_id;
  char peer[64];
  void *app;
  ev_timer deadline;
  double deadline_at;
  /* request headers */
  char *path, *authority;
  rt_buf meta;               /* "key\0value\0" pairs in arrival order */
  size_t header_bytes;
  rt_grpc_enc req_enc;
  unsigned accept;           /* grpc-accept-encoding as a mask */
  int64_t timeout_ms;        /* -1: none */
  int ct;                    /* RT_GRPC_CT_*, -1 not gRPC, -2 absent */
  /* input */
  rt_buf pending;            /* DATA that came before the app bound the call */
  rt_grpc_dec dec;
  in_msg *qhead, *qtail;
  size_t qbytes;             /* bytes of messages the app has not taken */
  size_t owed;               /* stream credit held back from the peer */
  unsigned nin, nout;
  /* output */
  rt_buf out;                /* framed reply messages not yet taken by nghttp2 */
  size_t head_left;          /* bytes of out's first message still to go (0: none begun) */
  rt_buf hdr_out, trl_out;   /* "key\0value\0" pairs, -bin values already base64 */
  rt_grpc_enc resp_enc;
  rt_grpc_srv_opts b;
  int status;
  char *message;
  size_t msglen;
  unsigned queued : 1, dispatched : 1, bound : 1, submitted : 1, deferred : 1,
      want_writable : 1, trailers_sent : 1, in_ended : 1, stream_closed : 1, cancelled : 1,
      expired : 1, finished : 1, failed : 1, method_post : 1, bad_timeout : 1, too_big : 1;
};

static inline int live(const rt_grpc_srv_call *call) { return call->h2 && !call->stream_closed; }

/* Puts the call on its connection's event list (the app hears of it from the loop). */
void rt_grpc_srv_queue_event(rt_grpc_srv_call *call);

/* grpc_server_resp.c */
void rt_grpc_srv_submit_headers(rt_grpc_srv_call *call);       /* once; the reply may follow */
void rt_grpc_srv_submit_trailers_only(rt_grpc_srv_call *call); /* status with no messages */
void rt_grpc_srv_submit_http_status(rt_grpc_srv_call *call, const char *status);
void rt_grpc_srv_resume(rt_grpc_srv_call *call);  /* more reply bytes for a waiting stream */
void rt_grpc_srv_kick(rt_grpc_srv_call *call);    /* writes what nghttp2 has queued */

#endif
