#include "presence.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "server_int.h"

/* One join or leave, waiting for the next loop turn; topic and user follow the struct. */
typedef struct news {
  struct news *next;
  uint64_t conn;
  int joined;
  const char *user;    /* NULL: the connection had none */
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

void rt_presence_note(rt_presence *p, const char *name, const rt_conn *c, int joined) {
  if (!p->npatterns || !p->hook || !rt_presence_covers(p, name)) return;
  size_t tl = strlen(name) + 1, ul = c->user ? strlen(c->user) + 1 : 0;
  news *n = malloc(sizeof *n + tl + ul);
  if (!n) {
    p->dropped++;
    return;
  }
  n->next = NULL;
  n->conn = c->id;
  n->joined = joined;
  memcpy(n->topic, name, tl);
  n->user = ul ? memcpy(n->topic + tl, c->user, ul) : NULL;
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

static void on_tell(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_presence *p = w->data;
  /* Only what was queued before this turn: news a handler causes wait for the next. */
  news *list = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  while (list) {
    news *n = list;
    list = n->next;
    if (p->hook) p->hook(p->hook_ud, n->topic, n->conn, n->user, n->joined);
    free(n);
  }
}
