/* HTTP/1.1 on a connection: requests in order, keep-alive, responses, static files.
 * A request goes to the app (rt_app_http_request); whoever handles it answers with
 * rt_http1_respond, rt_http1_send_file, or upgrades the connection to WebSocket. */
#ifndef RT_HTTP1_H
#define RT_HTTP1_H

#include "conn.h"
#include "http1_parser.h"

void rt_http1_start(rt_conn *c);
/* headers: n pairs of (name, value), may be NULL. */
void rt_http1_respond(rt_conn *c, int status, const char *const *headers, int nheaders,
                      const void *body, size_t len);
/* Serves root/relpath (relpath from the URL, already decoded) or answers 404/403. */
void rt_http1_send_file(rt_conn *c, const char *root, const char *relpath);
/* The request the connection is answering, or NULL. */
const rt_http_req *rt_http1_current(rt_conn *c);
/* Hands the connection to another protocol after the current request (an upgrade). */
void rt_http1_detach(rt_conn *c);
const char *rt_http_status_text(int status);
const char *rt_http_content_type(const char *path);

#endif
