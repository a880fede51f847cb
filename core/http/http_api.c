/* The public face of the HTTP layer: listening ports whose connections start as HTTP/1.1,
 * and answering a request by its connection's id (rtserver.h). */
#include "http1.h"
#include "net/listen.h"
#include "net/server_int.h"

static void on_accept(rt_conn *c, void *data) { rt_http1_start(c); }

int rt_server_listen(rt_server *srv, const char *host, int port, char *err, size_t errlen) {
  rt_listener *l = rt_listen(srv, host, port, on_accept, NULL, err, errlen);
  if (!l) return -1;
  rt_server_add_listeners(srv, l);
  return 0;
}

int rt_http_respond(rt_server *srv, uint64_t conn, int status, const char *const *headers,
                    int nheaders, const void *body, size_t len) {
  rt_conn *c = rt_conn_find(srv, conn);
  if (!c || !rt_http1_current(c) || status < 100 || status > 599) return -1;
  rt_http1_respond(c, status, headers, nheaders, body, len);
  return 0;
}
