#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "broker.h"
#include "history.h"
#include "server_int.h"
#include "workers.h"
#include "tls.h"

void rt_metrics_add(rt_server *srv, const char *name, const char *labels, double delta) {
  char key[512];
  snprintf(key, sizeof key, "%s{%s}", name, labels ? labels : "");
  double *v = rt_map_get(&srv->labeled, key);
  if (!v) {
    if (!(v = calloc(1, sizeof *v))) return;
    if (rt_map_put(&srv->labeled, key, v) < 0) {
      free(v);
      return;
    }
  }
  *v += delta;
}

static void counter(rt_buf *out, const char *name, const char *help, long v) {
  rt_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n%s %ld\n", name, help, name, name, v);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Labeled counters, grouped by name so each family gets one TYPE line. */
static void render_labeled(rt_server *srv, rt_buf *out) {
  size_t n = srv->labeled.count, k = 0;
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  if (!keys) return;
  const char *key;
  void *val;
  for (size_t it = 0; rt_map_next(&srv->labeled, &it, &key, &val);) keys[k++] = key;
  qsort(keys, k, sizeof *keys, cmp_str);
  char family[256] = "";
  for (size_t i = 0; i < k; i++) {
    const char *brace = strchr(keys[i], '{');
    size_t fl = brace ? (size_t)(brace - keys[i]) : strlen(keys[i]);
    if (fl >= sizeof family) continue;
    if (strncmp(family, keys[i], fl) != 0 || family[fl] != 0) {
      memcpy(family, keys[i], fl);
      family[fl] = 0;
      rt_buf_appendf(out, "# TYPE %s counter\n", family);
    }
    double v = *(double *)rt_map_get(&srv->labeled, keys[i]);
    /* "name{}" is not valid exposition syntax: drop empty braces. */
    if (brace && brace[1] == '}') rt_buf_appendf(out, "%s %.17g\n", family, v);
    else rt_buf_appendf(out, "%s %.17g\n", keys[i], v);
  }
  free(keys);
}

void rt_metrics_render(rt_server *srv, rt_buf *out) {
  static const char *const proto_names[RT_PROTO_COUNT] = {"http1", "websocket", "stomp", "h2"};
  /* With --workers, every worker's counters summed (labeled ones below stay this worker's). */
  rt_metrics total;
  const rt_metrics *m = rt_worker_metrics(srv, &total);
  rt_buf_appendf(out, "# HELP rtserver_connections_open Open connections by protocol.\n"
                      "# TYPE rtserver_connections_open gauge\n");
  for (int i = 0; i < RT_PROTO_COUNT; i++)
    rt_buf_appendf(out, "rtserver_connections_open{protocol=\"%s\"} %ld\n", proto_names[i], m->conns_open[i]);
  counter(out, "rtserver_connections_total", "Connections accepted.", m->conns_total);
  counter(out, "rtserver_messages_in_total", "Messages received (WebSocket, STOMP, gRPC).", m->msgs_in);
  counter(out, "rtserver_messages_out_total", "Messages sent.", m->msgs_out);
  counter(out, "rtserver_ws_compressed_in_total", "Compressed WebSocket messages received.",
          m->ws_compressed_in);
  counter(out, "rtserver_ws_compressed_out_total", "Compressed WebSocket messages sent.",
          m->ws_compressed_out);
  counter(out, "rtserver_ws_compressions_total",
          "WebSocket messages compressed (a frame shared by subscribers counts once).",
          m->ws_compressions);
  counter(out, "rtserver_fanout_deliveries_total", "Deliveries by the broker to subscribers.", m->deliveries);
  counter(out, "rtserver_slow_consumers_closed_total", "Connections closed for unread output.", m->slow_consumers);
  counter(out, "rtserver_lua_errors_total", "Errors raised by Lua handlers.", m->lua_errors);
  counter(out, "rtserver_reloads_total", "Successful app reloads.", m->reloads);
  counter(out, "rtserver_reload_failures_total", "Reloads that failed (old code kept).", m->reload_failures);
  counter(out, "rtserver_http_requests_total", "HTTP/1.1 requests.", m->http_requests);
  if (srv->broker)
    rt_buf_appendf(out, "# HELP rtserver_history_bytes What topic histories keep (rt.history).\n"
                        "# TYPE rtserver_history_bytes gauge\nrtserver_history_bytes %zu\n",
                   rt_history_bytes(rt_broker_history(srv->broker)));
  if (srv->engine) {
    counter(out, "rtserver_engine_published_total", "Publishes handed to the engine.", m->engine_published);
    counter(out, "rtserver_engine_publish_failures_total",
            "Publishes the engine could not take or lost (the other processes missed them).",
            m->engine_publish_failures);
    counter(out, "rtserver_engine_received_total", "Messages from other processes.", m->engine_received);
    counter(out, "rtserver_engine_bad_messages_total", "Malformed messages from the engine, dropped.",
            m->engine_bad_messages);
    counter(out, "rtserver_engine_outages_total", "Times a connection to the engine was lost.",
            m->engine_outages);
    counter(out, "rtserver_history_reads_total", "History reads sent to the engine (gaps, "
            "positions, recovering subscribers; one read serves every waiter).", m->history_reads);
    counter(out, "rtserver_history_recoveries_waiting_total",
            "Recovering subscribers that waited for a history read (the cache did not reach).",
            m->history_reads_waiting);
    counter(out, "rtserver_history_lost_total",
            "Times a topic's subscribers were told they missed messages (gone or epoch changed).",
            m->history_lost);
  }
  if (srv->tls) {
    counter(out, "rtserver_tls_handshakes_total", "TLS handshakes completed on the server's ports.",
            m->tls_handshakes);
    counter(out, "rtserver_tls_resumed_total", "Of those, sessions resumed (ticket or cache).",
            m->tls_resumed);
    rt_buf_appendf(out, "# HELP rtserver_tls_handshake_failures_total TLS handshakes that failed, by reason.\n"
                        "# TYPE rtserver_tls_handshake_failures_total counter\n");
    for (int i = 0; i < RT_TLS_FAIL_COUNT; i++)
      rt_buf_appendf(out, "rtserver_tls_handshake_failures_total{reason=\"%s\"} %ld\n",
                     rt_tls_fail_names[i], m->tls_failed[i]);
    counter(out, "rtserver_tls_reloads_total", "Certificate reloads that took effect.", m->tls_reloads);
    counter(out, "rtserver_tls_reload_failures_total", "Certificate reloads refused (old one kept).",
            m->tls_reload_failures);
  }
  render_labeled(srv, out);
}

void rt_metrics_free(rt_server *srv) {
  const char *k;
  void *v;
  for (size_t it = 0; rt_map_next(&srv->labeled, &it, &k, &v);) free(v);
  rt_map_free(&srv->labeled);
}
