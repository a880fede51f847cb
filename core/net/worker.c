/* A worker's side of --workers (workers.h): the link to the supervisor, the local engine
 * over it (when there is no --engine), and this worker's slot of the shared metrics. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "engine.h"
#include "listen.h"
#include "presence.h"
#include "server_int.h"
#include "handoff.h"
#include "workers.h"

typedef struct rt_worker {
  rt_engine engine;       /* first: the local engine is the worker */
  rt_server *srv;
  int index, nworkers;
  int link;
  int handoff;            /* SOCK_SEQPACKET to the supervisor: connections to pass on */
  ev_io hio;
  ev_io rio, wio;
  rt_buf in, out;
  rt_metrics *slots;      /* nworkers of them, shared */
  ev_prepare tick;        /* before the loop sleeps: this worker's counters to its slot */
  int engine_live;        /* the local engine is the server's engine */
} rt_worker;

#define ENV_FORMAT "%d,%d,%d,%d,%d,%d"  /* index,workers,link,shm,port,handoff */

int rt_worker_env(int *index, int *port) {
  const char *s = getenv("RT_WORKER");
  int i, n, link, shm, p, h;
  if (!s || sscanf(s, ENV_FORMAT, &i, &n, &link, &shm, &p, &h) != 6) return 0;
  *index = i;
  *port = p;
  return 1;
}

/* ---- the link ---------------------------------------------------------------------- */

static void flush_link(rt_worker *w) {
  while (w->out.len) {
    ssize_t k = send(w->link, rt_buf_start(&w->out), w->out.len, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) w->out.len = 0;  /* the read side sees the EOF and stops us */
      break;
    }
    rt_buf_consume(&w->out, (size_t)k);
  }
  if (w->out.len) ev_io_start(w->srv->loop, &w->wio);
  else ev_io_stop(w->srv->loop, &w->wio);
}

static void on_link_writable(struct ev_loop *loop, ev_io *io, int revents) { flush_link(io->data); }

/* Queues one frame; -1 when the link is over its bound (the frame is not queued). */
static int link_send(rt_worker *w, int type, const void *p, size_t len) {
  if (len + 1 > RT_LINK_MAX_FRAME || w->out.len + len + 5 > RT_LINK_MAX_QUEUE) return -1;
  uint32_t n = (uint32_t)len + 1;
  uint8_t head[5] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24), (uint8_t)type};
  if (rt_buf_append(&w->out, head, 5) < 0 || (len && rt_buf_append(&w->out, p, len) < 0)) return -1;
  if (!ev_is_active(&w->wio)) flush_link(w);
  return 0;
}

/* The read watcher does not hold the loop (ev_unref): give the reference back first. */
static void stop_reading(rt_worker *w) {
  if (!ev_is_active(&w->rio)) return;
  ev_ref(w->srv->loop);
  ev_io_stop(w->srv->loop, &w->rio);
}

static void on_frame(rt_worker *w, int type, const uint8_t *p, size_t len) {
  if (type == RT_LINK_PUBLISH && w->engine_live)
    rt_broker_from_engine(w->srv->broker, p, len, RT_ENGINE_ALL, NULL);
  else if (type == RT_LINK_PRESENCE && w->engine_live)
    rt_presence_from_link(rt_broker_presence(w->srv->broker), p, len);
  else if (type == RT_LINK_LOST && w->engine_live)
    rt_broker_lost_all(w->srv->broker, "this worker fell behind: messages relayed to it were dropped");
}

static void on_link_readable(struct ev_loop *loop, ev_io *io, int revents) {
  rt_worker *w = io->data;
  for (;;) {
    if (rt_buf_reserve(&w->in, 64 * 1024) < 0) return;
    ssize_t k = recv(w->link, rt_buf_end(&w->in), 64 * 1024, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    if (k <= 0) {
      /* The supervisor is gone: nobody would restart or stop us. Drain and exit. */
      rt_error(&w->srv->log, "worker %d: the supervisor is gone; stopping", w->index);
      stop_reading(w);
      raise(SIGTERM);
      return;
    }
    w->in.len += (size_t)k;
  }
  while (w->in.len >= 5) {
    const uint8_t *p = rt_buf_start(&w->in);
    uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (n == 0 || n > RT_LINK_MAX_FRAME) {
      rt_error(&w->srv->log, "worker %d: bad frame from the supervisor; stopping", w->index);
      stop_reading(w);
      raise(SIGTERM);
      return;
    }
    if (w->in.len < 4 + (size_t)n) break;
    on_frame(w, p[4], p + 5, n - 1);
    rt_buf_consume(&w->in, 4 + (size_t)n);
  }
}

/* ---- the local engine: every publish to every other worker through the supervisor --- */

static void l_watch(rt_engine *e, const char *name, int pattern) {}
static void l_unwatch(rt_engine *e, const char *name, int pattern) {}

static int l_publish(rt_engine *e, const char *name, const uint8_t *msg, size_t len, char *err,
                     size_t errlen) {
  if (link_send((rt_worker *)e, RT_LINK_PUBLISH, msg, len) < 0) {
    snprintf(err, errlen, "the other workers are not keeping up (the supervisor link is full)");
    return -1;
  }
  return 0;
}

int rt_worker_send_presence(rt_server *srv, const uint8_t *data, size_t len) {
  rt_worker *w = srv->worker;
  return w ? link_send(w, RT_LINK_PRESENCE, data, len) : -1;
}

static void l_free(rt_engine *e) { ((rt_worker *)e)->engine_live = 0; }

static const rt_engine_ops local_ops = {"local", l_watch, l_unwatch, l_publish, l_free, NULL, NULL};

/* ---- connections passed between workers -------------------------------------------- */

int rt_worker_owner(rt_server *srv, const char *key) {
  rt_worker *w = srv->worker;
  if (!w) return -1;
  int owner = (int)(rt_engine_hash(key) % (uint64_t)w->nworkers);
  return owner == w->index ? -1 : owner;
}

int rt_worker_pass(rt_server *srv, rt_conn *c, int owner, const void *bytes, size_t len) {
  rt_worker *w = srv->worker;
  rt_buf b = {0};
  uint8_t head[2] = {(uint8_t)owner, (uint8_t)(owner >> 8)};
  int ok = w && rt_buf_append(&b, head, 2) == 0 &&
           rt_buf_append(&b, c->peer, strlen(c->peer) + 1) == 0 &&
           rt_buf_append(&b, bytes, len) == 0 && b.len <= RT_HANDOFF_MAX;
  errno = ok ? 0 : EMSGSIZE;
  if (ok) ok = rt_handoff_send(w->handoff, rt_buf_start(&b), b.len, c->fd) == (ssize_t)b.len;
  rt_buf_free(&b);
  if (!ok) return -1;
  /* The socket lives on in the other worker: ours is only a descriptor to close. */
  c->in.len = 0;
  rt_conn_close(c);
  return 0;
}

/* A connection another worker passed us: it goes on as if accepted on our port (the
 * listener's own accept function: HTTP/1.1), its request already in the read buffer. */
static void on_handoff(struct ev_loop *loop, ev_io *io, int revents) {
  rt_worker *w = io->data;
  static uint8_t buf[RT_HANDOFF_MAX];  /* one loop per process: no sharing */
  for (;;) {
    int fd;
    ssize_t k = rt_handoff_recv(w->handoff, buf, sizeof buf, &fd);
    if (k <= 0) return;
    const uint8_t *peer_end = k > 2 ? memchr(buf + 2, 0, (size_t)k - 2) : NULL;
    if (fd < 0 || !peer_end || w->srv->stopping || !w->srv->listeners) {
      if (fd >= 0) close(fd);
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    rt_conn *c = rt_conn_new(w->srv, fd, (const char *)buf + 2);
    if (!c) {
      close(fd);
      continue;
    }
    w->srv->listeners->on_accept(c, w->srv->listeners->data);
    size_t off = (size_t)(peer_end + 1 - buf);
    if (rt_buf_append(&c->in, buf + off, (size_t)k - off) < 0) {
      rt_conn_close(c);
      continue;
    }
    rt_conn_resume_read_later(c);
  }
}

/* ---- metrics ----------------------------------------------------------------------- */

static void publish_metrics(rt_worker *w) { w->slots[w->index] = w->srv->metrics; }

static void on_tick(struct ev_loop *loop, ev_prepare *p, int revents) { publish_metrics(p->data); }

const rt_metrics *rt_worker_metrics(rt_server *srv, rt_metrics *total) {
  rt_worker *w = srv->worker;
  if (!w) return &srv->metrics;
  publish_metrics(w);
  /* rt_metrics is longs only: sum them as an array. */
  long *t = (long *)total;
  const size_t n = sizeof *total / sizeof(long);
  memset(total, 0, sizeof *total);
  for (int i = 0; i < w->nworkers; i++) {
    const long *s = (const long *)&w->slots[i];
    for (size_t k = 0; k < n; k++) t[k] += s[k];
  }
  return total;
}

/* ---- setup ------------------------------------------------------------------------- */

int rt_worker_attach(rt_server *srv, char *err, size_t errlen) {
  const char *s = getenv("RT_WORKER");
  int i, n, link, shm, port, handoff;
  if (!s || sscanf(s, ENV_FORMAT, &i, &n, &link, &shm, &port, &handoff) != 6 || i < 0 || n < 1 ||
      i >= n || n > RT_WORKERS_MAX) {
    snprintf(err, errlen, "RT_WORKER is not index,workers,link,shm,port,handoff");
    return -1;
  }
  rt_worker *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  w->srv = srv;
  w->index = i;
  w->nworkers = n;
  w->link = link;
  w->handoff = handoff;
  w->slots = mmap(NULL, (size_t)n * sizeof(rt_metrics), PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
  close(shm);
  if (w->slots == MAP_FAILED) {
    snprintf(err, errlen, "worker %d: cannot map the metrics table: %s", i, strerror(errno));
    free(w);
    return -1;
  }
  /* Our fds stay ours: the app's child processes do not get them. */
  fcntl(link, F_SETFD, FD_CLOEXEC);
  fcntl(link, F_SETFL, fcntl(link, F_GETFL) | O_NONBLOCK);
  fcntl(handoff, F_SETFD, FD_CLOEXEC);
  ev_io_init(&w->hio, on_handoff, handoff, EV_READ);
  w->hio.data = w;
  ev_io_start(srv->loop, &w->hio);
  ev_unref(srv->loop);
  /* A restarted worker carries on its predecessor's counters (gauges start from zero):
   * the totals never go backwards. */
  srv->metrics = w->slots[i];
  memset(srv->metrics.conns_open, 0, sizeof srv->metrics.conns_open);
  srv->worker = w;
  ev_io_init(&w->rio, on_link_readable, link, EV_READ);
  ev_io_init(&w->wio, on_link_writable, link, EV_WRITE);
  w->rio.data = w->wio.data = w;
  ev_io_start(srv->loop, &w->rio);
  ev_unref(srv->loop);  /* the link alone does not keep the loop running */
  /* A copy per loop turn (a few hundred bytes) keeps the totals exact: a worker publishes
   * what it counted before it sleeps, and before the replies of that turn leave (the
   * server's flush is a prepare watcher too, of lower priority). */
  ev_prepare_init(&w->tick, on_tick);
  ev_set_priority(&w->tick, EV_MAXPRI);
  w->tick.data = w;
  ev_prepare_start(srv->loop, &w->tick);
  ev_unref(srv->loop);
  if (!srv->engine) {
    w->engine.ops = &local_ops;
    w->engine.srv = srv;
    w->engine.node_id = rt_engine_new_node_id();
    w->engine_live = 1;
    srv->engine = &w->engine;
    rt_broker_set_engine(srv->broker, srv->engine);
  }
  unsetenv("RT_WORKER");
  return 0;
}

void rt_worker_ready(rt_server *srv) {
  rt_worker *w = srv->worker;
  if (w) link_send(w, RT_LINK_READY, NULL, 0);
}

void rt_worker_free(rt_server *srv) {
  rt_worker *w = srv->worker;
  if (!w) return;
  publish_metrics(w);
  stop_reading(w);
  ev_ref(srv->loop);
  ev_io_stop(srv->loop, &w->hio);
  ev_ref(srv->loop);
  ev_prepare_stop(srv->loop, &w->tick);
  ev_io_stop(srv->loop, &w->wio);
  flush_link(w);
  close(w->link);
  close(w->handoff);
  munmap(w->slots, (size_t)w->nworkers * sizeof(rt_metrics));
  rt_buf_free(&w->in);
  rt_buf_free(&w->out);
  srv->worker = NULL;
  free(w);
}
