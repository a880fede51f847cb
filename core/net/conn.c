#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server_int.h"
#include "tls.h"

#define MAX_IOV 512  /* fan-out queues many small chunks: one sendmsg takes them all */
#define READ_CHUNK 16384
#define CLOSE_GRACE 5.0 /* seconds a closing peer gets to read our last bytes */

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_tick(struct ev_loop *loop, ev_timer *w, int revents);
static void ticks_faster(rt_server *srv);

static int slot_take(rt_server *srv, rt_conn *c) {
  if (srv->nfree) {
    c->slot = srv->free_slots[--srv->nfree];
  } else {
    if (srv->nslots == srv->cap_slots) {
      uint32_t cap = srv->cap_slots ? srv->cap_slots * 2 : 256;
      rt_conn **s = realloc(srv->slots, cap * sizeof *s);
      if (!s) return -1;
      srv->slots = s;
      uint32_t *g = realloc(srv->slot_gen, cap * sizeof *g);
      if (!g) return -1;
      srv->slot_gen = g;
      uint32_t *f = realloc(srv->free_slots, cap * sizeof *f);
      if (!f) return -1;
      srv->free_slots = f;
      memset(srv->slot_gen + srv->cap_slots, 0, (cap - srv->cap_slots) * sizeof *g);
      srv->cap_slots = cap;
    }
    c->slot = srv->nslots++;
  }
  srv->slots[c->slot] = c;
  srv->slot_gen[c->slot]++;
  /* 24 bits of slot, the rest generation: stays exact in a Lua number (2^53). */
  c->id = (uint64_t)c->slot | ((uint64_t)(srv->slot_gen[c->slot] & 0x1fffffff) << 24);
  return 0;
}

static void slot_release(rt_server *srv, rt_conn *c) {
  srv->slots[c->slot] = NULL;
  srv->free_slots[srv->nfree++] = c->slot;
}

rt_conn *rt_conn_find(rt_server *srv, uint64_t id) {
  uint32_t slot = (uint32_t)(id & 0xffffff);
  if (slot >= srv->nslots) return NULL;
  rt_conn *c = srv->slots[slot];
  if (!c || c->id != id || c->closing) return NULL;
  return c;
}

const char *rt_conn_peer_of(rt_server *srv, uint64_t id) {
  uint32_t slot = (uint32_t)(id & 0xffffff);
  if (slot >= srv->nslots) return NULL;
  rt_conn *c = srv->slots[slot];
  return c && c->id == id ? c->peer : NULL;
}

static double tick_interval(const rt_server *srv) {
  double t = srv->cfg.idle_timeout;
  if (srv->cfg.ws_ping_interval > 0 && srv->cfg.ws_ping_interval < t) t = srv->cfg.ws_ping_interval;
  if (srv->cfg.ws_idle_timeout > 0 && srv->cfg.ws_idle_timeout < t) t = srv->cfg.ws_idle_timeout;
  t /= 2;
  return t < 0.05 ? 0.05 : t;
}

rt_conn *rt_conn_new(rt_server *srv, int fd, const char *peer) {
  size_t peer_len = strnlen(peer, 63);
  rt_conn *c = calloc(1, sizeof *c + peer_len + 1);
  if (!c) return NULL;
  c->srv = srv;
  c->fd = fd;
  if (slot_take(srv, c) < 0) {
    free(c);
    return NULL;
  }
  memcpy(c->peer, peer, peer_len);
  ev_io_init(&c->io, on_io, fd, EV_READ);
  c->io.data = c;
  c->last_active = ev_now(srv->loop);
  ev_io_start(srv->loop, &c->io);
  if (srv->nconns++ == 0) {
    /* No timer per connection (it would cost each one 64 bytes and the loop a heap
     * entry): one ticks them all, while there are any. */
    double t = tick_interval(srv);
    ev_timer_init(&srv->conn_tick, on_tick, t, t);
    srv->conn_tick.data = srv;
    srv->conn_tick_last = ev_now(srv->loop);
    ev_timer_start(srv->loop, &srv->conn_tick);
  }
  srv->metrics.conns_total++;
  return c;
}

void rt_conn_set_proto(rt_conn *c, const rt_proto *p, int kind, void *state) {
  rt_metrics *m = &c->srv->metrics;
  if (c->proto) m->conns_open[c->proto_kind]--;
  c->proto = p;
  c->proto_kind = kind;
  c->pstate = state;
  m->conns_open[kind]++;
}

void rt_conn_touch(rt_conn *c) { c->last_active = ev_now(c->srv->loop); }

int rt_conn_input_waiting(const rt_conn *c) {
  char b;
  return c->fd >= 0 && !c->closing && recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* The one watcher listens for what the connection wants now: reading unless paused,
 * writing while output waits for a full socket. libev changes a watcher's events only
 * while it is stopped; an event already pending for it stays pending if still wanted
 * (as it did when reading and writing had a watcher each). */
static void io_update(rt_conn *c) {
  struct ev_loop *loop = c->srv->loop;
  int want = (c->read_paused ? 0 : EV_READ) | (c->write_armed ? EV_WRITE : 0);
  if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == want) return;
  int pending = ev_clear_pending(loop, &c->io) & want;
  ev_io_stop(loop, &c->io);
  ev_io_modify(&c->io, want);
  if (want) ev_io_start(loop, &c->io);
  if (pending) ev_feed_event(loop, &c->io, pending);
}

void rt_conn_pause_read(rt_conn *c, int paused) {
  if (c->closing || (unsigned)paused == c->read_paused) return;
  c->read_paused = paused ? 1 : 0;
  io_update(c);
  /* Bytes may already wait in the buffer (pipelined requests): handle them now. */
  if (!paused && c->in.len && c->proto->on_read) c->proto->on_read(c);
}

void rt_conn_trim_when_drained(rt_conn *c) { c->trim_when_drained = 1; }

void rt_conn_resume_read_later(rt_conn *c) {
  if (c->closing) return;
  if (c->read_paused) {
    c->read_paused = 0;
    io_update(c);
  }
  if (c->in.len) {
    c->input_pending = 1;
    ev_feed_event(c->srv->loop, &c->io, EV_READ);
  }
}

static void schedule_flush(rt_conn *c) {
  if (c->queued_flush) return;
  c->queued_flush = 1;
  c->next_flush = c->srv->flush_list;
  c->srv->flush_list = c;
}

void rt_conn_schedule_flush(rt_conn *c) {
  if (!c->closing) schedule_flush(c);
}

int rt_conn_write_chunk(rt_conn *c, rt_chunk *chunk) {
  if (c->closing) return -1;
  if (rt_outq_push(&c->out, chunk) < 0) {
    rt_conn_close(c);
    return -1;
  }
  schedule_flush(c);
  if (c->out.bytes > c->srv->cfg.max_output_bytes && !c->overflowed) {
    c->overflowed = 1;
    c->srv->metrics.slow_consumers++;
    rt_warn(&c->srv->log, "%s: slow consumer, %zu bytes unsent; closing", c->peer, c->out.bytes);
    if (c->proto && c->proto->on_overflow) c->proto->on_overflow(c);
    else rt_conn_close(c);
    return -1;
  }
  return 0;
}

#define COALESCE_MAX 512     /* copies up to this size go into a shared tail chunk */

int rt_conn_write(rt_conn *c, const void *p, size_t n) {
  if (c->closing) return -1;
  /* Small replies (echo, acks, control frames) are copied into the queue's last chunk
   * when it is ours alone: one allocation and one iovec for many of them. */
  if (n <= COALESCE_MAX && rt_outq_append(&c->out, p, n) == 0) {
    schedule_flush(c);
    return 0;
  }
  rt_chunk *ch = n <= COALESCE_MAX ? rt_chunk_pool_get(&c->srv->small_chunks, n) : rt_chunk_new(n);
  if (!ch) {
    rt_conn_close(c);
    return -1;
  }
  if (n) memcpy(ch->data, p, n);
  int rc = rt_conn_write_chunk(c, ch);
  rt_chunk_unref(ch);
  return rc;
}

/* Writes what the socket takes. Returns 1 when the queue is empty, 0 when the socket is
 * full, -1 when the connection died. */
static int flush(rt_conn *c) {
  if (c->tls) return rt_tls_flush(c);
  while (rt_outq_count(&c->out)) {
    struct iovec iov[MAX_IOV];
    int n = 0;
    for (size_t i = c->out.head; i < c->out.tail && n < MAX_IOV; i++, n++) {
      iov[n].iov_base = c->out.v[i].chunk->data + c->out.v[i].off;
      iov[n].iov_len = c->out.v[i].chunk->len - c->out.v[i].off;
    }
    /* MSG_NOSIGNAL: a peer that went away must not kill a host that did not ignore
     * SIGPIPE (we are a library). One buffer (the usual reply) goes by send(): the
     * kernel then copies in no msghdr and no iovec array. */
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = n == 1 ? send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                       : sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      rt_debug(&c->srv->log, "%s: write: %s", c->peer, strerror(errno));
      rt_conn_close(c);
      return -1;
    }
    rt_outq_advance(&c->out, (size_t)w);
  }
  return 1;
}

static void after_flush(rt_conn *c, int rc) {
  if (rc < 0) return;
  if (rc == 2) {  /* TLS: the output waits for the handshake, which reading drives */
    if (c->write_armed) {
      c->write_armed = 0;
      io_update(c);
    }
    return;
  }
  if (rc == 0) {
    if (!c->write_armed) {
      c->write_armed = 1;
      io_update(c);
    }
    return;
  }
  if (c->write_armed) {
    c->write_armed = 0;
    io_update(c);
  }
  if (c->close_after_write) {
    rt_conn_close(c);
    return;
  }
  if (__builtin_expect(c->trim_when_drained, 0)) {
    c->trim_when_drained = 0;
    rt_outq_clear(&c->out);
  }
  if (c->proto && c->proto->on_drained) c->proto->on_drained(c);
}

void rt_conn_flush_all(rt_server *srv) {
  /* on_drained may queue more output; a few rounds settle it, the rest waits a turn. */
  for (int round = 0; round < 4 && srv->flush_list; round++) {
    rt_conn *list = srv->flush_list;
    srv->flush_list = NULL;
    while (list) {
      rt_conn *c = list;
      list = c->next_flush;
      c->queued_flush = 0;
      if (c->closing || c->write_armed) continue;
      after_flush(c, flush(c));
    }
  }
}

static void on_readable(rt_conn *c) {
  struct ev_loop *loop = c->srv->loop;
  if (c->input_pending) {
    c->input_pending = 0;
    if (c->in.len) {
      c->proto->on_read(c);
      return;
    }
  }
  /* Most reads are consumed whole by the protocol: a connection with nothing pending
   * reads into the server's scratch buffer and only keeps (copies) what is left over.
   * No allocation per read, and idle connections hold no read buffer at all. */
  rt_server *srv = c->srv;
  int scratch = c->in.cap == 0 && !srv->read_scratch_busy;
  if (scratch) {
    c->in = srv->read_scratch;
    srv->read_scratch_busy = 1;
  }
  if (rt_buf_reserve(&c->in, READ_CHUNK) < 0) {
    rt_conn_close(c);
  } else {
    /* recv rather than read: a socket read takes the shorter path through the kernel.
     * Over TLS, tls.c receives and appends the plaintext to c->in itself. */
    ssize_t n = c->tls ? rt_tls_read(c)
                       : recv(c->fd, rt_buf_end(&c->in), c->in.cap - c->in.off - c->in.len, 0);
    if (n > 0) {
      if (!c->tls) c->in.len += (size_t)n;
      c->last_active = ev_now(loop);
      if (c->proto->on_read) c->proto->on_read(c);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (n < 0) rt_debug(&srv->log, "%s: read: %s", c->peer, strerror(errno));
      rt_conn_close(c);
    }
  }
  if (scratch) {
    rt_buf taken = c->in;
    memset(&c->in, 0, sizeof c->in);
    if (!c->closing && taken.len && rt_buf_append(&c->in, rt_buf_start(&taken), taken.len) < 0)
      rt_conn_close(c);
    taken.len = taken.off = 0;
    srv->read_scratch = taken;
    srv->read_scratch_busy = 0;
  } else if (!c->closing && c->in.len == 0) {
    /* Idle connections keep no read buffer: that is most of their memory. */
    rt_buf_free(&c->in);
  }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) {
  rt_conn *c = w->data;
  if (revents & EV_READ) on_readable(c);
  if ((revents & EV_WRITE) && c->write_armed && !c->closing) after_flush(c, flush(c));
}

/* Every connection's periodic check, at the tick interval: the protocol's on_tick (idle
 * timeouts, keepalive pings, giving idle buffers back), and the grace of one closing
 * after its last write, checked ten times per grace while there is one. Connections
 * closed or opened by a check are skipped or ticked harmlessly (ticks look at idle time). */
static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_server *srv = w->data;
  double now = ev_now(loop), interval = tick_interval(srv);
  /* 1% early is on time: libev's clock and the timer's do not agree to the last bit. */
  int protocols = now - srv->conn_tick_last >= interval * 0.99;
  int grace = 0;
  if (protocols) srv->conn_tick_last = now;
  for (uint32_t i = 0; i < srv->nslots; i++) {
    rt_conn *c = srv->slots[i];
    if (!c || c->closing) continue;
    if (c->close_after_write) {
      /* The peer did not take our last bytes in time. */
      if (now - c->last_active > CLOSE_GRACE) rt_conn_close(c);
      else grace = 1;
      continue;
    }
    if (protocols && c->proto->on_tick) c->proto->on_tick(c, now - c->last_active);
  }
  if (!grace && w->repeat != interval && ev_is_active(w)) {
    w->repeat = interval;
    ev_timer_again(loop, w);
  }
}

/* A connection is in its closing grace: tick often enough to end it on time. */
static void ticks_faster(rt_server *srv) {
  ev_timer *w = &srv->conn_tick;
  if (ev_is_active(w) && w->repeat > CLOSE_GRACE / 10) {
    w->repeat = CLOSE_GRACE / 10;
    ev_timer_again(srv->loop, w);
  }
}

void rt_conn_close_after_write(rt_conn *c) {
  if (c->closing) return;
  c->close_after_write = 1;
  c->last_active = ev_now(c->srv->loop);
  /* The grace is checked on the tick, which may be far apart: tick often enough now. */
  ticks_faster(c->srv);
  /* TLS has a last word to say (close_notify): its flush says it. */
  if (rt_outq_count(&c->out) == 0 && !c->tls) rt_conn_close(c);
  else schedule_flush(c);
}

void rt_conn_close(rt_conn *c) {
  if (c->closing) return;
  rt_server *srv = c->srv;
  c->closing = 1;
  ev_io_stop(srv->loop, &c->io);
  if (c->proto) {
    srv->metrics.conns_open[c->proto_kind]--;
    if (c->proto->on_close) c->proto->on_close(c);
  }
  c->pstate = NULL;
  close(c->fd);
  c->fd = -1;
  slot_release(srv, c);
  if (--srv->nconns == 0) ev_timer_stop(srv->loop, &srv->conn_tick);
  /* Freed in the prepare watcher, once no callback up the stack can still use it. */
  c->next_dead = srv->dead_list;
  srv->dead_list = c;
}

static void unlink_flush(rt_server *srv, rt_conn *c) {
  for (rt_conn **p = &srv->flush_list; *p; p = &(*p)->next_flush)
    if (*p == c) {
      *p = c->next_flush;
      return;
    }
}

void rt_conn_reap(rt_server *srv) {
  while (srv->dead_list) {
    rt_conn *c = srv->dead_list;
    srv->dead_list = c->next_dead;
    if (c->queued_flush) unlink_flush(srv, c);
    rt_outq_clear(&c->out);
    rt_buf_free(&c->in);
    free(c->user);
    rt_tls_free(c);
    free(c);
  }
}

int rt_conn_set_user(rt_conn *c, const char *user) {
  char *copy = NULL;
  if (user && !(copy = strdup(user))) return -1;
  free(c->user);
  c->user = copy;
  return 0;
}
