#include "presence.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "presence_cluster.h"
#include "presence_mirror.h"
#include "server_int.h"

/* One join or leave, waiting for the next loop turn; topic, node and user follow the
 * struct. */
typedef struct news {
  struct news *next;
  uint64_t conn;
  int joined;
  const char *user;    /* NULL: the connection had none */
  const char *node;
  char topic[];
} news;

struct rt_presence {
  rt_server *srv;
  char *patterns[RT_PRESENCE_MAX_POLICIES];
  int npatterns;
  rt_presence_hook hook;
  void *hook_ud;
  news *head, *tail;
  long queued, dropped;
  ev_timer tell;       /* 0 s: runs on the next loop turn */
  char node[96];
  rt_pmirror *mirror;  /* who is subscribed, here and elsewhere */
  rt_pcluster *cluster;
  double ttl;
};

static void on_tell(struct ev_loop *loop, ev_timer *w, int revents);

rt_presence *rt_presence_new(rt_server *srv) {
  rt_presence *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->srv = srv;
  ev_timer_init(&p->tell, on_tell, 0, 0);
  p->tell.data = p;
  char host[64] = "localhost";
  gethostname(host, sizeof host - 1);
  snprintf(p->node, sizeof p->node, "%s:%ld", host, (long)getpid());
  p->ttl = RT_PRESENCE_DEFAULT_TTL;
  if (!(p->mirror = rt_pmirror_new(p->node, RT_PRESENCE_MAX_MEMBERS))) {
    free(p);
    return NULL;
  }
  return p;
}

static void drop_news(rt_presence *p) {
  while (p->head) {
    news *n = p->head;
    p->head = n->next;
    free(n);
  }
  p->tail = NULL;
  p->queued = 0;
}

void rt_presence_free(rt_presence *p) {
  if (!p) return;
  if (p->srv->loop) ev_timer_stop(p->srv->loop, &p->tell);
  rt_pcluster_free(p->cluster);
  rt_pmirror_free(p->mirror);
  drop_news(p);
  rt_presence_clear_policies(p);
  free(p);
}

int rt_presence_policy(rt_presence *p, const char *pattern) {
  if (!pattern || !*pattern || strlen(pattern) > RT_BROKER_MAX_NAME) return -1;
  for (int i = 0; i < p->npatterns; i++)
    if (strcmp(p->patterns[i], pattern) == 0) return 0;
  if (p->npatterns == RT_PRESENCE_MAX_POLICIES) return -1;
  char *copy = strdup(pattern);
  if (!copy) return -1;
  p->patterns[p->npatterns++] = copy;
  return 0;
}

void rt_presence_clear_policies(rt_presence *p) {
  for (int i = 0; i < p->npatterns; i++) free(p->patterns[i]);
  p->npatterns = 0;
}

int rt_presence_covers(const rt_presence *p, const char *name) {
  for (int i = 0; i < p->npatterns; i++)
    if (rt_broker_pattern_match(p->patterns[i], name)) return 1;
  return 0;
}

void rt_presence_set_hook(rt_presence *p, rt_presence_hook fn, void *ud) {
  p->hook = fn;
  p->hook_ud = ud;
}

const char *rt_presence_node(const rt_presence *p) { return p->node; }

long rt_presence_dropped(const rt_presence *p) { return p->dropped; }

static void queue_news(rt_presence *p, const char *topic, const char *node, uint64_t conn,
                       const char *user, int joined) {
  if (!p->hook) return;
  size_t tl = strlen(topic) + 1, nl = strlen(node) + 1, ul = user ? strlen(user) + 1 : 0;
  news *n = malloc(sizeof *n + tl + nl + ul);
  if (!n) {
    p->dropped++;
    return;
  }
  n->next = NULL;
  n->conn = conn;
  n->joined = joined;
  memcpy(n->topic, topic, tl);
  n->node = memcpy(n->topic + tl, node, nl);
  n->user = ul ? memcpy(n->topic + tl + nl, user, ul) : NULL;
  if (p->tail) p->tail->next = n;
  else p->head = n;
  p->tail = n;
  /* A flood of connections that nobody's handler keeps up with must not grow without
   * end: the oldest news go, and are counted. */
  if (++p->queued > RT_PRESENCE_MAX_QUEUED) {
    news *old = p->head;
    p->head = old->next;
    free(old);
    p->queued--;
    p->dropped++;
  }
  if (!ev_is_active(&p->tell)) ev_timer_start(p->srv->loop, &p->tell);
}

void rt_presence_note(rt_presence *p, const char *name, const rt_conn *c, int joined) {
  if (!p->npatterns || !rt_presence_covers(p, name)) return;
  /* A connection is one member however many times it subscribed: the first subscription
   * joins, the last unsubscription leaves. */
  int changed = joined ? rt_pmirror_local_join(p->mirror, name, c->id, c->user)
                       : rt_pmirror_local_leave(p->mirror, name, c->id);
  if (changed != 1) return;
  queue_news(p, name, p->node, c->id, c->user, joined);
  if (joined) rt_pcluster_joined(p->cluster, name, c->id, c->user);
  else rt_pcluster_left(p->cluster, name, c->id, c->user);
}

void rt_presence_tell(rt_presence *p, const char *topic, const char *node, uint64_t conn,
                      const char *user, int joined) {
  queue_news(p, topic, node, conn, user, joined);
}

void rt_presence_set_engine(rt_presence *p, rt_engine *e) {
  rt_pcluster_free(p->cluster);
  p->cluster = e ? rt_pcluster_new(p->srv, p, p->mirror, e, p->ttl) : NULL;
}

void rt_presence_set_ttl(rt_presence *p, double ttl) {
  if (!(ttl > 0)) return;
  p->ttl = ttl;
  rt_pcluster_set_ttl(p->cluster, ttl);
}

void rt_presence_from_link(rt_presence *p, const uint8_t *data, size_t len) {
  rt_pcluster_from_link(p->cluster, data, len);
}

size_t rt_presence_count(const rt_presence *p, const char *topic) {
  return rt_pmirror_count(p->mirror, topic);
}

void rt_presence_each(const rt_presence *p, const char *topic,
                      void (*fn)(void *ud, const char *topic, const rt_pmember *m), void *ud) {
  rt_pmirror_each(p->mirror, topic, fn, ud);
}

static void on_tell(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_presence *p = w->data;
  /* Only what was queued before this turn: news a handler causes wait for the next. */
  news *list = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  while (list) {
    news *n = list;
    list = n->next;
    if (p->hook) p->hook(p->hook_ud, n->topic, n->conn, n->user, n->node, n->joined);
    free(n);
  }
}
