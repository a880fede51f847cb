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
  size_t max_output_bytes;      /* unsent bytes per connection before it is a slow consumer */
  int max_connections;          /* accepted connections at once; 0 = as many fds as allowed */
  const char *metrics_path;     /* Prometheus text at this HTTP path; NULL = off */
  int watch;                    /* reload when the app's files change */
  double drain_timeout;         /* seconds in-flight work gets after rt_server_stop */
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
 * Returns the number of deliveries. */
long rt_server_publish(rt_server *srv, const char *topic, const void *data, size_t len);
/* Makes fn callable from scripts as rt.c.<name>(...). */
int rt_server_register_function(rt_server *srv, const char *name,
                                int (*fn)(struct lua_State *L));
/* Loads the app script again; on failure the old code keeps serving. */
int rt_server_reload(rt_server *srv, char *err, size_t errlen);
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

#ifdef __cplusplus
}
#endif
#endif
