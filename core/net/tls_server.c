/* The server's certificate: loaded from rt_config, reloaded on SIGHUP (the host calls
 * rt_server_reload_tls) and, with --watch, when its files change. */
#include "tls_server.h"

#include <stdio.h>
#include <stdlib.h>

#include "server_int.h"
#include "tls_ctx.h"

#define N_FILES 3

struct rt_tls_watch {
  rt_server *srv;
  ev_stat stats[N_FILES];
  int n;
  ev_timer debounce;  /* cert and key are often replaced one after the other: wait for both */
};

int rt_tls_server_init(rt_server *srv, char *err, size_t errlen) {
  const rt_config *cfg = &srv->cfg;
  if (!cfg->tls_cert && !cfg->tls_key && !cfg->tls_client_ca) return 0;
  if (!cfg->tls_cert || !cfg->tls_key) {
    snprintf(err, errlen, "TLS needs both --tls-cert and --tls-key%s",
             cfg->tls_client_ca ? " (--tls-client-ca verifies clients of a TLS port)" : "");
    return -1;
  }
  rt_tls_ctx_opts o = {.cert = cfg->tls_cert, .key = cfg->tls_key, .ca = cfg->tls_client_ca};
  srv->tls = rt_tls_server_ctx_new(&o, err, errlen);
  if (!srv->tls) return -1;
  char what[512];
  rt_tls_ctx_describe(srv->tls, what, sizeof what);
  rt_info(&srv->log, "TLS certificate: %s%s", what,
          cfg->tls_client_ca ? "; client certificates required" : "");
  return 0;
}

int rt_server_reload_tls(rt_server *srv, char *err, size_t errlen) {
  if (!srv->tls) {
    snprintf(err, errlen, "TLS is not on");
    return -1;
  }
  if (rt_tls_ctx_reload(srv->tls, err, errlen) < 0) {
    srv->metrics.tls_reload_failures++;
    rt_error(&srv->log, "TLS reload failed, the previous certificate stays: %s", err);
    return -1;
  }
  srv->metrics.tls_reloads++;
  char what[512];
  rt_tls_ctx_describe(srv->tls, what, sizeof what);
  rt_info(&srv->log, "TLS certificate reloaded: %s (open connections keep theirs)", what);
  return 0;
}

static void on_debounce(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_tls_watch *tw = w->data;
  char err[512];
  rt_server_reload_tls(tw->srv, err, sizeof err);
}

static void on_change(struct ev_loop *loop, ev_stat *w, int revents) {
  rt_tls_watch *tw = w->data;
  rt_info(&tw->srv->log, "%s changed", w->path);
  ev_timer_stop(loop, &tw->debounce);
  ev_timer_set(&tw->debounce, 0.3, 0);
  ev_timer_start(loop, &tw->debounce);
}

void rt_tls_server_watch(rt_server *srv) {
  if (!srv->tls || !srv->cfg.watch || srv->tls_watch) return;
  rt_tls_watch *tw = calloc(1, sizeof *tw);
  if (!tw) return;
  tw->srv = srv;
  ev_timer_init(&tw->debounce, on_debounce, 0.3, 0);
  tw->debounce.data = tw;
  for (int i = 0; i < N_FILES; i++) {
    const char *f = rt_tls_ctx_file(srv->tls, i);  /* lives as long as the context */
    if (!f) continue;
    ev_stat_init(&tw->stats[tw->n], on_change, f, 0.5);
    tw->stats[tw->n].data = tw;
    ev_stat_start(srv->loop, &tw->stats[tw->n]);
    ev_unref(srv->loop);  /* watching must not keep a stopping server's loop alive */
    tw->n++;
  }
  srv->tls_watch = tw;
}

void rt_tls_server_free(rt_server *srv) {
  rt_tls_watch *tw = srv->tls_watch;
  if (tw) {
    for (int i = 0; i < tw->n; i++) {
      ev_ref(srv->loop);
      ev_stat_stop(srv->loop, &tw->stats[i]);
    }
    ev_timer_stop(srv->loop, &tw->debounce);
    free(tw);
    srv->tls_watch = NULL;
  }
  rt_tls_ctx_unref(srv->tls);
  srv->tls = NULL;
}
