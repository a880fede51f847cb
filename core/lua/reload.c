#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "lua_int.h"

struct rt_reload {
  rt_server *srv;
  ev_stat *stats;
  char **paths;
  int n;
  ev_timer debounce;  /* editors write a file in several steps: wait for the last */
};

static void on_debounce(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_server *srv = w->data;
  char err[1024];
  rt_server_reload(srv, err, sizeof err);
}

static void on_change(struct ev_loop *loop, ev_stat *w, int revents) {
  rt_reload *r = w->data;
  rt_info(&r->srv->log, "%s changed", w->path);
  ev_timer_stop(loop, &r->debounce);
  ev_timer_set(&r->debounce, 0.15, 0);
  ev_timer_start(loop, &r->debounce);
}

static void stop_all(rt_reload *r) {
  for (int i = 0; i < r->n; i++) {
    /* Each was ev_unref'd when started: give the reference back before stopping it. */
    ev_ref(r->srv->loop);
    ev_stat_stop(r->srv->loop, &r->stats[i]);
    free(r->paths[i]);
  }
  free(r->stats);
  free(r->paths);
  r->stats = NULL;
  r->paths = NULL;
  r->n = 0;
}

void rt_reload_watch(rt_lua *lx, const char *const *files, int n) {
  rt_server *srv = lx->srv;
  rt_reload *r = lx->reload;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return;
    r->srv = srv;
    ev_timer_init(&r->debounce, on_debounce, 0.15, 0);
    r->debounce.data = srv;
    lx->reload = r;
  }
  stop_all(r);
  r->stats = calloc((size_t)n + 1, sizeof *r->stats);
  r->paths = calloc((size_t)n + 1, sizeof *r->paths);
  if (!r->stats || !r->paths) return;
  for (int i = 0; i < n; i++) {
    /* ev_stat keeps the path pointer: it needs a copy that lives as long as it does. */
    r->paths[i] = strdup(files[i]);
    if (!r->paths[i]) break;
    ev_stat_init(&r->stats[i], on_change, r->paths[i], 0.5);
    r->stats[i].data = r;
    ev_stat_start(srv->loop, &r->stats[i]);
    /* Watching must not keep a stopping server's loop alive. */
    ev_unref(srv->loop);
    r->n++;
  }
  rt_debug(&srv->log, "watching %d file(s) for changes", r->n);
}

void rt_reload_free(rt_lua *lx) {
  rt_reload *r = lx->reload;
  if (!r) return;
  stop_all(r);
  ev_timer_stop(r->srv->loop, &r->debounce);
  free(r);
  lx->reload = NULL;
}
