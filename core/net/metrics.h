/* Counters for the Prometheus endpoint: fixed ones in rt_metrics (server_int.h) and
 * labeled ones (e.g. gRPC calls by method and status) kept by name and label set. */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include "base/buf.h"

typedef struct rt_server rt_server;

/* Adds delta to the counter name{labels}; labels is Prometheus syntax without braces
 * (method="/user.UserService/GetUser",code="OK") or "" for none. */
void rt_metrics_add(rt_server *srv, const char *name, const char *labels, double delta);
void rt_metrics_render(rt_server *srv, rt_buf *out);
void rt_metrics_free(rt_server *srv);

#endif
