/* The public face of the HTTP layer: listening ports whose connections start as HTTP/1.1,
 * and answering a request by its connection's id (rtserver.h). */
#include "http1.h"
#include "net/listen.h"
#include "net/server_int.h"
#include "net/tls.h"

static void on_accept(rt_conn *c, void *data) {
  rt_server *srv = c->srv;
  /* With a certificate the port speaks TLS: the handshake runs under HTTP/1.1, which
   * sees only plaintext (and hands an HTTP/2 preface on, as without TLS). */
  if (srv->tls && rt_tls_accept(c, srv->tls, srv->cfg.tls_handshake_timeout) < 0) {
    rt_warn(&srv->log, "%s: out of memory for TLS; closing", c->peer);
    rt_conn_close(c);
    return;
  }
  rt_http1_start(c);
}

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
