/* --workers N: one supervisor process and N worker processes behind the same port(s).
 *
 * The supervisor (supervisor.c) reserves the port, starts each worker by executing this
 * binary again with RT_WORKER in its environment, restarts a worker that dies (with
 * backoff), forwards SIGHUP (reload) and SIGTERM/SIGINT (drain) to all, and exits 0 when
 * the last one has drained. Every worker listens on the port with SO_REUSEPORT (the
 * kernel spreads connections over them), runs the app on its own loop, and keeps a
 * socket to the supervisor, its link:
 *  - without --engine, the link is the worker's engine (worker.c): a publish goes to the
 *    supervisor, which relays it to every other worker, so topics and STOMP topic and user
 *    destinations are shared by all;
 *  - it carries "ready" (the supervisor says the server is up when all are).
 * SockJS's HTTP transports carry one session over several TCP connections, which the
 * kernel spreads over the workers: a session belongs to the worker its id hashes to, and
 * a worker that gets a request of another's session passes the connection there (the
 * socket through SCM_RIGHTS, the request's bytes with it) over a second socket pair,
 * through the supervisor.
 * /metrics totals: each worker copies its counters into its slot of a shared memory
 * table (memfd, mapped by all) and the one that answers sums the slots.
 *
 * Link frames, both ways: u32 length (of type + payload, little-endian) | u8 type | payload. */
#ifndef RT_WORKERS_H
#define RT_WORKERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;
typedef struct rt_metrics rt_metrics;

#define RT_WORKERS_MAX 256
#define RT_LINK_MAX_FRAME (8u << 20)   /* a message and its headers, with room */
#define RT_LINK_MAX_QUEUE (32u << 20)  /* unsent bytes per link before frames are dropped */
/* A handed-over connection: one datagram (u16 target worker | peer, NUL-ended | the
 * request's bytes) with the socket attached. AF_UNIX datagrams are bounded by the socket
 * buffer: bigger requests are answered 503 instead. */
#define RT_HANDOFF_MAX (160u * 1024)

enum {
  RT_LINK_PUBLISH = 'P',  /* an engine_msg, relayed to every other worker */
  RT_LINK_READY = 'R',    /* worker -> supervisor: listening */
  RT_LINK_PRESENCE = 'S', /* presence news (presence_cluster.h), relayed to every other worker */
  RT_LINK_LOST = 'L',     /* supervisor -> worker: relayed frames were dropped before this */
};

typedef struct rt_supervisor_opts {
  int workers;
  char **argv;                /* this process's argv, to start workers with */
  const char *const *hosts;   /* --listen addresses */
  int nhosts;
  int port;
  double drain_timeout;
  int log_json;
  int tls;                    /* the workers serve TLS: the banner says https:// */
} rt_supervisor_opts;

/* Runs the supervisor until its workers are gone; returns the exit code. */
int rt_supervise(const rt_supervisor_opts *o);

/* In a worker: is this process one (RT_WORKER set)? Fills the port to listen on. */
int rt_worker_env(int *index, int *port);
/* In a worker, after rt_server_new: connects the server to the supervisor (link, engine
 * when there is no --engine, metrics slot) and says ready once listening. */
int rt_worker_attach(rt_server *srv, char *err, size_t errlen);
void rt_worker_ready(rt_server *srv);
void rt_worker_free(rt_server *srv);
/* The worker that owns key (a SockJS session id: by its hash), or -1 when it is this one
 * or there are no workers. */
int rt_worker_owner(rt_server *srv, const char *key);
/* Passes c's socket to worker owner with bytes (what it is to read first there: the
 * request again), and closes c here. -1 (errno) when it cannot; c is then untouched. */
int rt_worker_pass(rt_server *srv, rt_conn *c, int owner, const void *bytes, size_t len);
/* Sends presence news to every other worker; -1 when the link is full or there is none. */
int rt_worker_send_presence(rt_server *srv, const uint8_t *data, size_t len);
/* The counters /metrics shows: this process's, or every worker's summed into *total. */
const rt_metrics *rt_worker_metrics(rt_server *srv, rt_metrics *total);

#endif
