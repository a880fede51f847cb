/* The STOMP server object: settings, the app's hooks, the shared chunks every session
 * uses, and the teardown of everything a server holds (sessions, queues, the relay, the
 * TCP listeners). The frame rules of one session are stomp.c's. */
#include <stdlib.h>

#include "net/server_int.h"
#include "stomp.h"
#include "stomp_broker.h"
#include "stomp_relay.h"

rt_stomp_server *rt_stomp_server_new(rt_server *srv, const rt_stomp_config *cfg,
                                     const rt_stomp_hooks *hooks) {
  rt_stomp_server *ss = calloc(1, sizeof *ss);
  if (!ss) return NULL;
  ss->srv = srv;
  if (cfg) ss->cfg = *cfg;
  else rt_stomp_config_init(&ss->cfg);
  if (hooks) ss->hooks = *hooks;
  ss->tcp_want = -1;
  if (ss->cfg.relay.on && !(ss->relay = rt_stomp_relay_new(ss))) {
    rt_stomp_server_free(ss);
    return NULL;
  }
  ss->nul = rt_chunk_copy("", 1);
  ss->eol = rt_chunk_copy("\n", 1);
  if (!ss->nul || !ss->eol) {
    rt_stomp_server_free(ss);
    return NULL;
  }
  return ss;
}

void rt_stomp_server_configure(rt_stomp_server *ss, const rt_stomp_config *cfg) {
  ss->cfg = *cfg;
  /* A reload may turn the relay on or off; a running relay takes the new settings for
   * the connections it opens from now on. */
  if (cfg->relay.on && !ss->relay) {
    ss->relay = rt_stomp_relay_new(ss);
  } else if (!cfg->relay.on && ss->relay) {
    rt_stomp_relay_free(ss->relay);
    ss->relay = NULL;
  }
}

void rt_stomp_server_free(rt_stomp_server *ss) {
  if (!ss) return;
  rt_stomp_tcp_close(ss);
  /* Normally every connection is closed before: a host that frees us earlier gets its
   * STOMP connections closed here, as they cannot outlive the server. */
  const char *k;
  void *v;
  for (size_t i = 0, left = ss->sessions.count; rt_map_next(&ss->sessions, &i, &k, &v); i = 0) {
    rt_stomp_session *s = v;
    if (!s->conn->closing) rt_conn_close(s->conn);
    else rt_stomp_session_closed(s);
    if (ss->sessions.count >= left) break;  /* one still in use up the stack: leave it */
    left = ss->sessions.count;
  }
  rt_stomp_relay_free(ss->relay);
  rt_stomp_queues_free(ss);
  rt_stomp_prefixes_free(ss);
  rt_map_free(&ss->sessions);
  rt_chunk_unref(ss->nul);
  rt_chunk_unref(ss->eol);
  rt_stomp_buf_free(&ss->scratch);
  free(ss);
}
