/* What grpc_client.c and grpc_client_recv.c share: the client's private structures.
 * Nothing outside these two files includes this. */
#ifndef RT_GRPC_CLIENT_INT_H
#define RT_GRPC_CLIENT_INT_H

#include <ev.h>

#include "base/buf.h"
#include "grpc_client.h"
#include "grpc_frame.h"

#define MSG_OVERHEAD 32  /* what a queued message costs beyond its bytes, for the bound */
#define GRPC_STATUS_NONE (-1)
#define GRPC_STATUS_BAD (-2)

typedef struct md_list {
  rt_grpc_md *v;
  size_t n, cap;
} md_list;

typedef struct msg_node {
  struct msg_node *next;
  size_t len;
  uint8_t data[];
} msg_node;

struct rt_grpc_call {
  rt_grpc_client *cli;         /* NULL once the client is freed */
  rt_grpc_channel *ch;
  struct ev_loop *loop;
  rt_h2c *h;                   /* the connection it is on, or waits for */
  int32_t stream_id;           /* 0 until submitted, and again once the stream closed */
  rt_grpc_call *prev, *next;   /* cli->calls */
  rt_grpc_call *next_notify;
  unsigned queued : 1, send_closed : 1, eof_sent : 1, deferred : 1, got_headers : 1,
      ct_ok : 1, done : 1;
  char *path;
  double timeout;
  ev_tstamp deadline;          /* 0: none */
  ev_timer timer;
  rt_grpc_md *req_md;          /* one allocation with its strings, freed once sent */
  size_t n_req_md;
  rt_buf out;                  /* framed request bytes nghttp2 has not taken */
  rt_grpc_dec dec;
  msg_node *q_head, *q_tail;
  size_t q_count, q_cost, unconsumed;
  int http_status, grpc_status;
  char *grpc_message;
  md_list md[2];               /* [0] initial metadata, [1] trailers */
  size_t md_bytes;
  int status;
  char *message;
  void (*notify)(rt_grpc_call *, void *);
  void *ud;
};

struct rt_grpc_channel {
  rt_grpc_channel *next;
  rt_grpc_client *cli;
  char *target;
  char host[256], port[8];
  char authority[280];
  rt_h2c *active;              /* where new calls go; NULL until needed */
  struct rt_tls_ctx *tls;      /* NULL: plain TCP */
  char *tls_key;               /* the TLS settings as a string, to tell channels apart */
  char server_name[256];
  long connects, connect_fails, calls;
  int open;
};

struct rt_grpc_client {
  rt_server *srv;
  rt_grpc_channel *channels;
  int nchannels;
  rt_grpc_call *calls, *calls_tail;
  rt_grpc_call *notify_head, *notify_tail;
  rt_h2c **h2cs;               /* every live connection, for free */
  size_t nh2c, caph2c;
  ev_timer kick;
  int settling, freeing;
};

/* Ends the call with a status (printf-style message) and tells its owner, once. */
void rt_grpc_call_finish(rt_grpc_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
