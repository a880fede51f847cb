/* SockJS sessions under --workers: the HTTP transports carry one session over several TCP
 * connections, and the kernel spreads connections over the workers. A session belongs to
 * the worker its id hashes to (net/workers.h); a request that lands elsewhere is passed
 * there, socket and bytes, before anything here looks for the session. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/server_int.h"
#include "net/workers.h"
#include "sockjs.h"

/* The request again as bytes: the one parsed here (its body with a plain Content-Length)
 * and whatever the client pipelined after it. */
static int serialize_request(rt_buf *b, const rt_conn *c, const rt_http_req *req) {
  if (rt_buf_appendf(b, "%s %s HTTP/1.%d\r\n", req->method, req->target, req->http_minor) < 0) return -1;
  for (int i = 0; i < req->nheaders; i++) {
    const char *n = req->headers[i].name;
    if (strcasecmp(n, "content-length") == 0 || strcasecmp(n, "transfer-encoding") == 0) continue;
    if (rt_buf_appendf(b, "%s: %s\r\n", n, req->headers[i].value) < 0) return -1;
  }
  if (rt_buf_appendf(b, "Content-Length: %zu\r\n\r\n", req->body_len) < 0) return -1;
  if (req->body_len && rt_buf_append(b, req->body, req->body_len) < 0) return -1;
  return c->in.len ? rt_buf_append(b, rt_buf_start(&c->in), c->in.len) : 0;
}

int rt_sockjs_route(rt_server *srv, rt_conn *c, const rt_http_req *req, const char *sid) {
  int owner = rt_worker_owner(srv, sid);
  if (owner < 0) return 0;
  rt_buf b = {0};
  int rc = serialize_request(&b, c, req) == 0 ? rt_worker_pass(srv, c, owner, rt_buf_start(&b), b.len) : -1;
  int e = errno;
  rt_buf_free(&b);
  if (rc == 0) return 1;
  /* Served here instead: the session is not found, and the client opens a new one. */
  rt_warn(&srv->log, "%s: cannot pass a SockJS request to worker %d (%s)", c->peer, owner,
          e ? strerror(e) : "out of memory");
  return 0;
}
