/*
 * rtserver — a realtime application server scripted in Lua.
 *
 * This is the one public header. A host creates a server on its own libev loop, loads an
 * app script, adds listeners and runs the loop; everything the server owns hangs off the
 * rt_server object, so two servers in one process never meet.
 *
 *   struct ev_loop *loop = EV_DEFAULT;
 *   rt_config cfg; rt_config_init(&cfg);
 *   char err[256];
 *   rt_server *srv = rt_server_new(loop, &cfg, err, sizeof err);
 *   if (!srv || rt_server_load_app(srv, "apps/chat.lua", err, sizeof err) < 0
 *            || rt_server_listen(srv, "127.0.0.1", 8080, err, sizeof err) < 0) { ... }
 *   ev_run(loop, 0);
 *   rt_server_free(srv);
 *
 * Errors: functions return a negative value (or NULL) and write one line into err.
 */
#ifndef RTSERVER_H
#define RTSERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_VERSION "0.1.0"

struct ev_loop;
struct lua_State;
typedef struct rt_server rt_server;

typedef enum { RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR, RT_LOG_OFF } rt_log_level;

typedef struct rt_config {
  rt_log_level log_level;
  int log_json;                 /* one JSON object per line instead of plain text */
  const char *lua_dir;          /* where lua/rt.lua lives; NULL = built-in default */
  double idle_timeout;          /* seconds without traffic before an HTTP conn closes */
  double ws_ping_interval;      /* seconds between server keepalive pings (0 = off) */
  double ws_idle_timeout;       /* seconds without any frame before a WebSocket closes */
  size_t max_header_bytes;      /* request line + headers; over it: 431 */
  size_t max_body_bytes;        /* request body; over it: 413 */
  size_t max_ws_message;        /* WebSocket message; over it: close 1009 */
  int ws_deflate;               /* accept permessage-deflate offers (default on) */
  size_t ws_deflate_min;        /* messages shorter than this go uncompressed */
  size_t ws_deflate_takeover;   /* zlib memory all connections with context takeover may
                                   hold together; 0 = no context takeover */
  size_t max_output_bytes;      /* unsent bytes per connection before it is a slow consumer */
  int max_connections;          /* accepted connections at once; 0 = as many fds as allowed */
  const char *metrics_path;     /* Prometheus text at this HTTP path; NULL = off */
  int watch;                    /* reload when the app's files change */
  double drain_timeout;         /* seconds in-flight work gets after rt_server_stop */
  size_t history_max_bytes;     /* all topic histories together (rt.history); 0 = 64 MiB */
  /* Share topics with other rtserver processes: "redis://host:port[/db]", several
   * separated by commas (each name goes to one of them by its hash). NULL = alone. */
  const char *engine;
  int reuse_port;               /* listen with SO_REUSEPORT: processes share a port (--workers) */
  /* TLS on every listening port (HTTP/1.1, WebSocket, SockJS, and gRPC by ALPN h2), and on
   * STOMP's TCP port when the app asks (tls = true). NULL cert and key: plain TCP. */
  const char *tls_cert;         /* PEM certificate, chain after it */
  const char *tls_key;          /* PEM private key */
  const char *tls_client_ca;    /* PEM CAs: require and verify client certificates */
  double tls_handshake_timeout; /* seconds a TLS handshake may take (default 10) */
} rt_config;

void rt_config_init(rt_config *cfg);

rt_server *rt_server_new(struct ev_loop *loop, const rt_config *cfg, char *err, size_t errlen);
/* Runs the app script; it registers its routes and handlers. */
int rt_server_load_app(rt_server *srv, const char *script, char *err, size_t errlen);
/* Listens on host:port ("0.0.0.0", "::", "127.0.0.1", "localhost" ...). port 0 picks one;
 * rt_server_port() tells which. */
int rt_server_listen(rt_server *srv, const char *host, int port, char *err, size_t errlen);
int rt_server_port(const rt_server *srv);
/* Publishes a text message to a topic, exactly as a script's topic:publish() would.
 * Returns the number of local deliveries; -1 when out of memory, -2 when the engine could
 * not pass it on to the other processes (the local subscribers got it). */
long rt_server_publish(rt_server *srv, const char *topic, const void *data, size_t len);
/* Makes fn callable from scripts as rt.c.<name>(...). */
int rt_server_register_function(rt_server *srv, const char *name,
                                int (*fn)(struct lua_State *L));
/* Loads the app script again; on failure the old code keeps serving. */
int rt_server_reload(rt_server *srv, char *err, size_t errlen);
/* Reads the TLS certificate, key and client CAs again: new handshakes use them, open
 * connections keep theirs. On failure the old certificate stays and err says why. */
int rt_server_reload_tls(rt_server *srv, char *err, size_t errlen);
/* Graceful stop: stops accepting, says goodbye on every connection (WebSocket close 1001,
 * HTTP/2 GOAWAY, STOMP ERROR), lets in-flight requests finish. rt_server_connections()
 * reaches 0 when all are gone; the host may free the server earlier (after its drain
 * timeout), which closes whatever is left. */
void rt_server_stop(rt_server *srv);
int rt_server_connections(const rt_server *srv);
/* Appends the Prometheus text exposition of the server's metrics; returns its length. The
 * caller frees *out. */
size_t rt_server_metrics_text(rt_server *srv, char **out);
void rt_server_free(rt_server *srv);

struct lua_State *rt_server_lua(rt_server *srv);

/* ---- The app: who serves what arrives -------------------------------------------------
 * The server hands every HTTP request, WebSocket message and gRPC call to its app, a table
 * of callbacks. Loading a script (rt_server_load_app, or rt_server_register_function) makes
 * the Lua bridge the app; a C host may fill the table itself instead and serve with no
 * script at all (tests/embed/host_c.c does). Connections are named by ids: a call with the
 * id of a connection that is gone fails cleanly, so a host may keep ids as long as it likes.
 * Strings and requests handed to a callback are valid until it returns. */

typedef struct rt_http_header {
  const char *name;   /* lower-cased */
  const char *value;
} rt_http_header;

#define RT_HTTP_MAX_HEADERS 100

typedef struct rt_http_req {
  const char *method;
  const char *target;  /* as sent: path?query */
  const char *path;    /* percent-decoded path */
  const char *query;   /* raw query string without '?', "" if none */
  rt_http_header headers[RT_HTTP_MAX_HEADERS];
  int nheaders;
  const uint8_t *body;
  size_t body_len;
  int http_minor;
  int keep_alive;
  int upgrade;         /* Connection: upgrade + Upgrade: present */
} rt_http_req;

/* The value of a header (lname lower case), or NULL. */
const char *rt_http_req_header(const rt_http_req *req, const char *lname);

typedef struct rt_grpc_srv_call rt_grpc_srv_call;

typedef struct rt_app {
  void *data;  /* handed back to every callback */
  /* An HTTP/1.1 request. It must end in rt_http_respond, now or later, or in
   * rt_websocket_accept. NULL: every request is answered 404. */
  void (*http_request)(rt_server *srv, void *data, uint64_t conn, const rt_http_req *req,
                       const char *peer);
  /* A whole WebSocket message; a text message is valid UTF-8. */
  void (*ws_message)(rt_server *srv, void *data, uint64_t conn, const uint8_t *msg, size_t len,
                     int binary);
  /* A WebSocket is gone, once per WebSocket: its close code, 1006 when none arrived. */
  void (*ws_close)(rt_server *srv, void *data, uint64_t conn, int code, const char *reason);
  /* gRPC over HTTP/2. The call interface is internal (core/grpc/grpc_server.h) and the Lua
   * bridge is its one user today; with these NULL, gRPC calls are answered UNIMPLEMENTED. */
  void (*grpc_call)(rt_server *srv, void *data, rt_grpc_srv_call *call);
  void (*grpc_event)(rt_server *srv, void *data, rt_grpc_srv_call *call);
  /* rt_server_stop: stop what the app runs by itself (file watchers, timers). May be NULL. */
  void (*stop)(rt_server *srv, void *data);
  /* The server is freed, or another app takes this one's place. May be NULL. */
  void (*free)(rt_server *srv, void *data);
} rt_app;

/* Makes a copy of *app the server's app; the previous app's free runs first. Not from
 * inside one of the previous app's callbacks. */
void rt_server_set_app(rt_server *srv, const rt_app *app);

/* Answers the request conn is waiting on. headers: nheaders (name, value) pairs. Returns
 * 0, or -1 when the connection is gone or has no request to answer. */
int rt_http_respond(rt_server *srv, uint64_t conn, int status, const char *const *headers,
                    int nheaders, const void *body, size_t len);
/* Answers conn's upgrade request with 101: it becomes a WebSocket. protocols: the
 * subprotocols spoken, in order of preference (may be NULL). Returns 0, or -1 when the
 * request was no valid upgrade (answered with its HTTP error) or conn is gone. */
int rt_websocket_accept(rt_server *srv, uint64_t conn, const char *const *protocols,
                        int nprotocols);
/* Queues a message; text must be valid UTF-8. Returns 0, or -1 (gone, closing, or a slow
 * consumer cut off). */
int rt_websocket_send(rt_server *srv, uint64_t conn, const void *data, size_t len, int binary);
/* Starts the close handshake with code (1000, 1001, ..., 3000-4999) and reason. */
int rt_websocket_close(rt_server *srv, uint64_t conn, int code, const char *reason);
/* Subscribes a WebSocket to a topic: rt_server_publish and scripts' publishes reach it. */
int rt_websocket_subscribe(rt_server *srv, uint64_t conn, const char *topic);
int rt_websocket_unsubscribe(rt_server *srv, uint64_t conn, const char *topic);

#ifdef __cplusplus
}
#endif
#endif
