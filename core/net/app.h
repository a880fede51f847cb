/* What protocols tell the application layer (the Lua bridge implements these). Protocol
 * files include this, never a Lua header, so the same protocol code serves any app layer. */
#ifndef RT_APP_H
#define RT_APP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_http_req rt_http_req;

/* Must end in rt_http1_respond/send_file or an upgrade, now or later. */
void rt_app_http_request(rt_server *srv, rt_conn *c, const rt_http_req *req);
void rt_app_ws_message(rt_server *srv, rt_conn *c, const uint8_t *data, size_t len, int binary);
/* Once per WebSocket, when it is gone. code 1006 when no close frame arrived. */
void rt_app_ws_closed(rt_server *srv, uint64_t conn_id, int code, const char *reason);

#endif
