/* The --workers supervisor (workers.h): starts, restarts, signals and relays for the
 * workers. It serves no connection itself. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "base/buf.h"
#include "base/log.h"
#include "server_int.h"
#include "handoff.h"
#include "workers.h"

#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define MAX_RESERVED 16

typedef struct sup sup;

typedef struct worker {
  sup *s;
  int index;
  pid_t pid;              /* 0: not running */
  int fd;                 /* our end of the link; -1 when none */
  int hfd;                /* our end of its handoff socket (workers.h) */
  ev_io rio, wio, hio;
  rt_buf in, out;
  ev_child child;
  ev_timer restart;
  double backoff;
  ev_tstamp started;
  int ready;
  long dropped;           /* relayed frames dropped because its link was full */
  int owes_lost;          /* ...and it has not been told yet (RT_LINK_LOST) */
} worker;

struct sup {
  struct ev_loop *loop;
  const rt_supervisor_opts *o;
  rt_log log;
  worker w[RT_WORKERS_MAX];
  int n;
  int shm;
  int port;
  int reserved[MAX_RESERVED];
  int nreserved;
  ev_signal sigint, sigterm, sighup;
  ev_timer give_up;
  int stopping, announced, failed;
  ev_tstamp stop_at;
};

/* ---- the port ---------------------------------------------------------------------- */

/* Binds (without listening: a socket in the group that never accepts would get its share
 * of connections) every address with SO_REUSEPORT, so that port 0 becomes one port for
 * all workers and a port in use is said before any worker starts. */
static int reserve_port(sup *s) {
  s->port = s->o->port;
  for (int h = 0; h < s->o->nhosts; h++) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", s->port);
    int rc = getaddrinfo(s->o->hosts[h], portstr, &hints, &res);
    if (rc != 0) {
      fprintf(stderr, "rtserver: cannot resolve listen address '%s': %s\n", s->o->hosts[h], gai_strerror(rc));
      return -1;
    }
    for (struct addrinfo *ai = res; ai && s->nreserved < MAX_RESERVED; ai = ai->ai_next) {
      if (s->port) {
        if (ai->ai_family == AF_INET) ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)s->port);
        else ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)s->port);
      }
      int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
      if (fd < 0) continue;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        fprintf(stderr, "rtserver: cannot listen on %s port %d: %s%s\n", s->o->hosts[h], s->port,
                strerror(e), e == EADDRINUSE ? " (another process uses this port; pick one with --port)" : "");
        close(fd);
        freeaddrinfo(res);
        return -1;
      }
      if (!s->port) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
      }
      s->reserved[s->nreserved++] = fd;
    }
    freeaddrinfo(res);
  }
  return 0;
}

/* ---- links ------------------------------------------------------------------------- */

static void flush(worker *w) {
  while (w->out.len && w->fd >= 0) {
    ssize_t k = send(w->fd, rt_buf_start(&w->out), w->out.len, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) w->out.len = 0;
      break;
    }
    rt_buf_consume(&w->out, (size_t)k);
  }
  if (w->out.len && w->fd >= 0) ev_io_start(w->s->loop, &w->wio);
  else ev_io_stop(w->s->loop, &w->wio);
}

/* A worker that missed relayed frames is told, in order, before anything after them: it
 * tells its subscribers (topics with history must not lose messages silently). */
static const uint8_t LOST_FRAME[5] = {1, 0, 0, 0, RT_LINK_LOST};

static void tell_lost(worker *w) {
  if (w->owes_lost && w->out.len + sizeof LOST_FRAME <= RT_LINK_MAX_QUEUE &&
      rt_buf_append(&w->out, LOST_FRAME, sizeof LOST_FRAME) == 0)
    w->owes_lost = 0;
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents) {
  worker *w = io->data;
  flush(w);
  if (w->owes_lost) {
    tell_lost(w);
    flush(w);
  }
}

/* Relays a whole frame (header included) to every other running worker. A worker whose
 * link is full misses it: counted, logged at powers of two, never buffered without bound. */
static void relay(sup *s, worker *from, const uint8_t *frame, size_t len) {
  for (int i = 0; i < s->n; i++) {
    worker *w = &s->w[i];
    if (w == from || w->fd < 0) continue;
    /* While frames are being dropped, no notice either (it would go out between drops):
     * one notice per run of drops, with the first frame that fits, or when the link drains. */
    size_t need = len + (w->owes_lost ? sizeof LOST_FRAME : 0);
    if (w->out.len + need > RT_LINK_MAX_QUEUE || rt_buf_reserve(&w->out, need) < 0) {
      w->dropped++;
      w->owes_lost = 1;
      if (!(w->dropped & (w->dropped - 1)))
        rt_warn(&s->log, "supervisor: worker %d is not keeping up; %ld relayed message(s) dropped",
                w->index, w->dropped);
      continue;
    }
    tell_lost(w);
    rt_buf_append(&w->out, frame, len);  /* reserved above: cannot fail */
    if (!ev_is_active(&w->wio)) flush(w);
  }
}

static void announce(sup *s) {
  for (int i = 0; i < s->n; i++)
    if (!s->w[i].ready) return;
  if (s->announced) return;
  s->announced = 1;
  for (int h = 0; h < s->o->nhosts; h++) {
    int v6 = strchr(s->o->hosts[h], ':') != NULL;
    fprintf(stderr, "rtserver listening on %s://%s%s%s:%d/ (%d workers)\n",
            s->o->tls ? "https" : "http", v6 ? "[" : "", s->o->hosts[h], v6 ? "]" : "", s->port,
            s->n);
  }
}

static void close_link(worker *w) {
  if (w->hfd >= 0) {
    ev_io_stop(w->s->loop, &w->hio);
    close(w->hfd);
    w->hfd = -1;
  }
  if (w->fd < 0) return;
  ev_io_stop(w->s->loop, &w->rio);
  ev_io_stop(w->s->loop, &w->wio);
  close(w->fd);
  w->fd = -1;
  rt_buf_free(&w->in);
  rt_buf_free(&w->out);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents) {
  worker *w = io->data;
  sup *s = w->s;
  for (;;) {
    if (rt_buf_reserve(&w->in, 64 * 1024) < 0) return;
    ssize_t k = recv(w->fd, rt_buf_end(&w->in), 64 * 1024, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    if (k <= 0) {  /* the worker is exiting; its child watcher says how */
      close_link(w);
      return;
    }
    w->in.len += (size_t)k;
  }
  while (w->in.len >= 5) {
    const uint8_t *p = rt_buf_start(&w->in);
    uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (n == 0 || n > RT_LINK_MAX_FRAME) {
      rt_error(&s->log, "supervisor: bad frame from worker %d; stopping it", w->index);
      kill(w->pid, SIGKILL);
      close_link(w);
      return;
    }
    if (w->in.len < 4 + (size_t)n) break;
    switch (p[4]) {
      case RT_LINK_PUBLISH:
      case RT_LINK_PRESENCE: relay(s, w, p, 4 + (size_t)n); break;
      case RT_LINK_READY:
        w->ready = 1;
        if (s->announced)
          rt_info(&s->log, "supervisor: worker %d (pid %d) is serving again", w->index, (int)w->pid);
        announce(s);
        break;
      default: break;
    }
    rt_buf_consume(&w->in, 4 + (size_t)n);
  }
}

/* A connection one worker passes to another: to the target with the socket, or, when the
 * target is down, closed (the client retries, and lands on the restarted worker). */
static void on_handoff(struct ev_loop *loop, ev_io *io, int revents) {
  worker *from = io->data;
  sup *s = from->s;
  static uint8_t buf[RT_HANDOFF_MAX];
  for (;;) {
    int fd;
    ssize_t k = rt_handoff_recv(from->hfd, buf, sizeof buf, &fd);
    if (k <= 0) return;
    int target = k >= 2 ? buf[0] | buf[1] << 8 : -1;
    if (fd >= 0 && target >= 0 && target < s->n && s->w[target].hfd >= 0 &&
        rt_handoff_send(s->w[target].hfd, buf, (size_t)k, fd) != k)
      rt_warn(&s->log, "supervisor: cannot pass a connection to worker %d: %s", target, strerror(errno));
    if (fd >= 0) close(fd);
  }
}

/* ---- processes --------------------------------------------------------------------- */

static int start_worker(worker *w) {
  sup *s = w->s;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    rt_error(&s->log, "supervisor: socketpair: %s", strerror(errno));
    return -1;
  }
  int hv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, hv) < 0) {
    rt_error(&s->log, "supervisor: socketpair: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  char env[128];
  snprintf(env, sizeof env, "%d,%d,%d,%d,%d,%d", w->index, s->n, sv[1], s->shm, s->port, hv[1]);
  pid_t pid = fork();
  if (pid < 0) {
    rt_error(&s->log, "supervisor: fork: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    close(hv[0]);
    close(hv[1]);
    return -1;
  }
  if (pid == 0) {
    /* The worker: its end of the link and the metrics table survive exec, the rest not. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    fcntl(sv[1], F_SETFD, 0);
    fcntl(hv[1], F_SETFD, 0);
    fcntl(s->shm, F_SETFD, 0);
    setenv("RT_WORKER", env, 1);
    execv("/proc/self/exe", s->o->argv);
    fprintf(stderr, "rtserver: cannot start a worker: %s\n", strerror(errno));
    _exit(127);
  }
  close(sv[1]);
  close(hv[1]);
  w->pid = pid;
  w->fd = sv[0];
  w->hfd = hv[0];
  ev_io_init(&w->hio, on_handoff, w->hfd, EV_READ);
  w->hio.data = w;
  ev_io_start(s->loop, &w->hio);
  w->ready = 0;
  w->started = ev_now(s->loop);
  fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
  ev_io_init(&w->rio, on_readable, w->fd, EV_READ);
  ev_io_init(&w->wio, on_writable, w->fd, EV_WRITE);
  w->rio.data = w->wio.data = w;
  ev_io_start(s->loop, &w->rio);
  ev_child_set(&w->child, pid, 0);
  ev_child_start(s->loop, &w->child);
  return 0;
}

static int running(sup *s) {
  int n = 0;
  for (int i = 0; i < s->n; i++) n += s->w[i].pid != 0;
  return n;
}

static void on_restart(struct ev_loop *loop, ev_timer *t, int revents) {
  worker *w = t->data;
  if (w->s->stopping) return;
  if (start_worker(w) < 0) {
    ev_timer_set(&w->restart, w->backoff, 0);
    ev_timer_start(loop, &w->restart);
  }
}

static void stop_all(sup *s, int sig) {
  for (int i = 0; i < s->n; i++)
    if (s->w[i].pid) kill(s->w[i].pid, sig);
}

static void on_child(struct ev_loop *loop, ev_child *c, int revents) {
  worker *w = c->data;
  sup *s = w->s;
  ev_child_stop(loop, c);
  int st = c->rstatus;
  char how[64];
  if (WIFSIGNALED(st)) snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(st));
  else snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
  pid_t pid = w->pid;
  w->pid = 0;
  close_link(w);
  if (s->stopping) {
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) s->failed = 1;
    rt_info(&s->log, "supervisor: worker %d (pid %d) %s", w->index, (int)pid, how);
    if (!running(s)) ev_break(loop, EVBREAK_ALL);
    return;
  }
  if (!s->announced) {
    /* It never came up (a broken app, a port in use): restarting would only loop. */
    fprintf(stderr, "rtserver: worker %d (pid %d) %s before the server was up; stopping\n",
            w->index, (int)pid, how);
    s->failed = s->stopping = 1;
    stop_all(s, SIGTERM);
    if (!running(s)) ev_break(loop, EVBREAK_ALL);
    return;
  }
  /* A worker that served for a while gets restarted at once; one that keeps dying, later
   * and later. */
  if (ev_now(loop) - w->started > 10) w->backoff = BACKOFF_MIN;
  rt_error(&s->log, "supervisor: worker %d (pid %d) %s; restarting it in %.1f s", w->index,
           (int)pid, how, w->backoff);
  ev_timer_set(&w->restart, w->backoff, 0);
  ev_timer_start(loop, &w->restart);
  w->backoff = w->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->backoff * 2;
}

static void on_give_up(struct ev_loop *loop, ev_timer *t, int revents) {
  sup *s = t->data;
  rt_error(&s->log, "supervisor: workers still running after the drain time; killing them");
  s->failed = 1;
  stop_all(s, SIGKILL);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *sig, int revents) {
  sup *s = sig->data;
  /* One stop sent to the whole process group (timeout(1), Ctrl-C) reaches us twice in a
   * moment: a second signal means "now" only when it comes later. */
  if (s->stopping && ev_now(loop) - s->stop_at < 1) return;
  if (s->stopping) {
    /* A second signal: stop now. Workers take a repeated SIGTERM for the same drain (the
     * whole group may get one), so it is SIGKILL. */
    fprintf(stderr, "rtserver: second signal, stopping the workers now\n");
    stop_all(s, SIGKILL);
    return;
  }
  s->stopping = 1;
  s->stop_at = ev_now(loop);
  fprintf(stderr, "rtserver: signal %d, draining %d worker(s)\n", sig->signum, running(s));
  for (int i = 0; i < s->n; i++) ev_timer_stop(loop, &s->w[i].restart);
  stop_all(s, SIGTERM);
  ev_timer_set(&s->give_up, s->o->drain_timeout + 5, 0);
  ev_timer_start(loop, &s->give_up);
  if (!running(s)) ev_break(loop, EVBREAK_ALL);
}

static void on_hup(struct ev_loop *loop, ev_signal *sig, int revents) {
  sup *s = sig->data;
  rt_info(&s->log, "supervisor: SIGHUP, reloading %d worker(s)", running(s));
  stop_all(s, SIGHUP);
}

int rt_supervise(const rt_supervisor_opts *o) {
  sup *s = calloc(1, sizeof *s);
  if (!s) return 1;
  s->o = o;
  s->n = o->workers;
  s->log.level = RT_LOG_INFO;
  s->log.json = o->log_json;
  s->loop = EV_DEFAULT;
  s->shm = -1;
  for (int i = 0; i < s->n; i++) s->w[i].fd = s->w[i].hfd = -1;
  int rc = 1;
  if (reserve_port(s) < 0) goto out;
  s->shm = memfd_create("rtserver-metrics", MFD_CLOEXEC);
  if (s->shm < 0 || ftruncate(s->shm, (off_t)((size_t)s->n * sizeof(rt_metrics))) < 0) {
    fprintf(stderr, "rtserver: cannot create the shared metrics table: %s\n", strerror(errno));
    goto out;
  }
  ev_signal_init(&s->sigint, on_stop_signal, SIGINT);
  ev_signal_init(&s->sigterm, on_stop_signal, SIGTERM);
  ev_signal_init(&s->sighup, on_hup, SIGHUP);
  s->sigint.data = s->sigterm.data = s->sighup.data = s;
  ev_signal_start(s->loop, &s->sigint);
  ev_signal_start(s->loop, &s->sigterm);
  ev_signal_start(s->loop, &s->sighup);
  ev_timer_init(&s->give_up, on_give_up, 0, 0);
  s->give_up.data = s;
  for (int i = 0; i < s->n; i++) {
    worker *w = &s->w[i];
    w->s = s;
    w->index = i;
    w->fd = -1;
    w->backoff = BACKOFF_MIN;
    ev_child_init(&w->child, on_child, 0, 0);
    w->child.data = w;
    ev_timer_init(&w->restart, on_restart, 0, 0);
    w->restart.data = w;
  }
  for (int i = 0; i < s->n; i++)
    if (start_worker(&s->w[i]) < 0) {
      s->failed = s->stopping = 1;
      stop_all(s, SIGTERM);
      break;
    }
  if (running(s)) ev_run(s->loop, 0);
  rc = s->failed ? 1 : 0;
out:
  for (int i = 0; i < s->nreserved; i++) close(s->reserved[i]);
  for (int i = 0; i < s->n; i++) close_link(&s->w[i]);
  if (s->shm >= 0) close(s->shm);
  free(s);
  return rc;
}
