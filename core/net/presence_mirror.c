#include "presence_mirror.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"

#define MAX_NODE_NAME 255

typedef struct pnode {
  char *name;
  double last, ttl;   /* heard of at last; kept until last + ttl */
  size_t members;
  int self;
} pnode;

typedef struct member {
  uint64_t conn;
  pnode *node;
  char *user;
  int refs;           /* local members: subscriptions of the connection to the topic */
  unsigned gen;       /* the snapshot generation that last saw it */
} member;

typedef struct ptopic {
  rt_map members;     /* "node#conn" -> member */
  size_t nlocal;
} ptopic;

struct rt_pmirror {
  rt_map topics;      /* name -> ptopic */
  rt_map nodes;       /* name -> pnode */
  pnode *self;
  size_t members, max_members;
  unsigned gen;
  long refused;
};

static pnode *node_get(rt_pmirror *m, const char *name, int create) {
  pnode *n = rt_map_get(&m->nodes, name);
  if (n || !create) return n;
  if (m->nodes.count >= RT_PMIRROR_MAX_NODES || strlen(name) > MAX_NODE_NAME) return NULL;
  if (!(n = calloc(1, sizeof *n)) || !(n->name = strdup(name)) || rt_map_put(&m->nodes, name, n) < 0) {
    if (n) free(n->name);
    free(n);
    return NULL;
  }
  return n;
}

static void node_forget(rt_pmirror *m, pnode *n) {
  rt_map_remove(&m->nodes, n->name);
  free(n->name);
  free(n);
}

rt_pmirror *rt_pmirror_new(const char *self, size_t max_members) {
  rt_pmirror *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->max_members = max_members;
  if (!(m->self = node_get(m, self, 1))) {
    rt_pmirror_free(m);
    return NULL;
  }
  m->self->self = 1;
  return m;
}

static void member_free(member *mb) {
  free(mb->user);
  free(mb);
}

static void topic_free(ptopic *t) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&t->members, &i, &k, &v);) member_free(v);
  rt_map_free(&t->members);
  free(t);
}

void rt_pmirror_free(rt_pmirror *m) {
  if (!m) return;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&m->topics, &i, &k, &v);) topic_free(v);
  rt_map_free(&m->topics);
  for (size_t i = 0; rt_map_next(&m->nodes, &i, &k, &v);) {
    free(((pnode *)v)->name);
    free(v);
  }
  rt_map_free(&m->nodes);
  free(m);
}

const char *rt_pmirror_self(const rt_pmirror *m) { return m->self->name; }

/* "node#conn" into buf (node names are bounded by node_get). */
static const char *member_key(char *buf, size_t len, const char *node, uint64_t conn) {
  snprintf(buf, len, "%s#%" PRIu64, node, conn);
  return buf;
}

static ptopic *topic_get(rt_pmirror *m, const char *name, int create) {
  ptopic *t = rt_map_get(&m->topics, name);
  if (t || !create) return t;
  if (!(t = calloc(1, sizeof *t))) return NULL;
  if (rt_map_put(&m->topics, name, t) < 0) {
    free(t);
    return NULL;
  }
  return t;
}

static void topic_maybe_drop(rt_pmirror *m, const char *name, ptopic *t) {
  if (t->members.count) return;
  rt_map_remove(&m->topics, name);
  topic_free(t);
}

static int set_user(member *mb, const char *user) {
  if (mb->user && user && strcmp(mb->user, user) == 0) return 0;
  if (!mb->user && !user) return 0;
  char *copy = user ? strdup(user) : NULL;
  if (user && !copy) return -1;
  free(mb->user);
  mb->user = copy;
  return 0;
}

/* Adds a member of node n to topic; 1 new, 0 known, -1 bound or memory. */
static int add(rt_pmirror *m, const char *topic, pnode *n, uint64_t conn, const char *user,
               member **out) {
  char key[MAX_NODE_NAME + 32];
  member_key(key, sizeof key, n->name, conn);
  ptopic *t = topic_get(m, topic, 0);
  member *mb = t ? rt_map_get(&t->members, key) : NULL;
  if (mb) {
    *out = mb;
    return set_user(mb, user) < 0 ? -1 : 0;
  }
  if ((!n->self && m->members >= m->max_members) || !(t = topic_get(m, topic, 1))) {
    m->refused++;
    return -1;
  }
  if (!(mb = calloc(1, sizeof *mb)) || set_user(mb, user) < 0 || rt_map_put(&t->members, key, mb) < 0) {
    if (mb) member_free(mb);
    topic_maybe_drop(m, topic, t);
    m->refused++;
    return -1;
  }
  mb->conn = conn;
  mb->node = n;
  n->members++;
  m->members++;
  if (n->self) t->nlocal++;
  *out = mb;
  return 1;
}

static void view(const member *mb, rt_pmember *v) {
  v->conn = mb->conn;
  v->node = mb->node->name;
  v->user = mb->user;
  v->local = mb->node->self;
}

/* Removes the member under key from t (which may go too). */
static void drop(rt_pmirror *m, const char *topic, ptopic *t, const char *key, member *mb,
                 rt_pmirror_fn fn, void *ud) {
  rt_map_remove(&t->members, key);
  mb->node->members--;
  m->members--;
  if (mb->node->self) t->nlocal--;
  if (fn) {
    rt_pmember v;
    view(mb, &v);
    fn(ud, topic, &v);
  }
  member_free(mb);
}

int rt_pmirror_local_join(rt_pmirror *m, const char *topic, uint64_t conn, const char *user) {
  member *mb;
  int rc = add(m, topic, m->self, conn, user, &mb);
  if (rc >= 0) mb->refs++;
  return rc;
}

int rt_pmirror_local_leave(rt_pmirror *m, const char *topic, uint64_t conn) {
  char key[MAX_NODE_NAME + 32];
  ptopic *t = topic_get(m, topic, 0);
  member *mb = t ? rt_map_get(&t->members, member_key(key, sizeof key, m->self->name, conn)) : NULL;
  if (!mb || --mb->refs > 0) return 0;
  drop(m, topic, t, key, mb, NULL, NULL);
  topic_maybe_drop(m, topic, t);
  return 1;
}

int rt_pmirror_remote_join(rt_pmirror *m, const char *topic, const char *node, uint64_t conn,
                           const char *user) {
  pnode *n = node_get(m, node, 1);
  if (!n || n->self) {
    m->refused += !n;
    return -1;
  }
  member *mb;
  int rc = add(m, topic, n, conn, user, &mb);
  if (rc >= 0) mb->gen = m->gen;
  return rc;
}

int rt_pmirror_remote_leave(rt_pmirror *m, const char *topic, const char *node, uint64_t conn) {
  char key[MAX_NODE_NAME + 32];
  pnode *n = node_get(m, node, 0);
  ptopic *t = topic_get(m, topic, 0);
  if (!n || n->self || !t || strlen(node) > MAX_NODE_NAME) return 0;
  member *mb = rt_map_get(&t->members, member_key(key, sizeof key, node, conn));
  if (!mb) return 0;
  drop(m, topic, t, key, mb, NULL, NULL);
  topic_maybe_drop(m, topic, t);
  return 1;
}

int rt_pmirror_heard(rt_pmirror *m, const char *node, double now, double ttl) {
  pnode *n = node_get(m, node, 1);
  if (!n) return -1;
  if (n->self) return 0;
  n->last = now;
  n->ttl = ttl;
  return 0;
}

static int stale(const pnode *n, double now) { return !n->self && n->last + n->ttl < now; }

size_t rt_pmirror_expire(rt_pmirror *m, double now, rt_pmirror_fn fn, void *ud) {
  int any = 0;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&m->nodes, &i, &k, &v);) any |= stale(v, now);
  if (!any) return 0;
  size_t gone = 0;
  for (size_t i = 0; rt_map_next(&m->topics, &i, &k, &v);) {
    ptopic *t = v;
    const char *mk;
    void *mv;
    for (size_t j = 0; rt_map_next(&t->members, &j, &mk, &mv);) {
      member *mb = mv;
      if (!stale(mb->node, now)) continue;
      drop(m, k, t, mk, mb, fn, ud);
      gone++;
    }
    topic_maybe_drop(m, k, t);
  }
  for (size_t i = 0; rt_map_next(&m->nodes, &i, &k, &v);)
    if (stale(v, now)) node_forget(m, v);
  return gone;
}

unsigned rt_pmirror_snapshot_begin(rt_pmirror *m) { return ++m->gen; }

size_t rt_pmirror_snapshot_end(rt_pmirror *m, const char *topic, const char *node, unsigned gen,
                               rt_pmirror_fn fn, void *ud) {
  ptopic *t = topic_get(m, topic, 0);
  pnode *n = node_get(m, node, 0);
  if (!t || !n || n->self) return 0;
  size_t gone = 0;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&t->members, &i, &k, &v);) {
    member *mb = v;
    /* Generations wrap: "not stamped since gen" is a signed distance. */
    if (mb->node != n || (int)(mb->gen - gen) >= 0) continue;
    drop(m, topic, t, k, mb, fn, ud);
    gone++;
  }
  topic_maybe_drop(m, topic, t);
  return gone;
}

int rt_pmirror_knows(const rt_pmirror *m, const char *node) { return rt_map_get(&m->nodes, node) != NULL; }

size_t rt_pmirror_count(const rt_pmirror *m, const char *topic) {
  const ptopic *t = rt_map_get(&m->topics, topic);
  return t ? t->members.count : 0;
}

size_t rt_pmirror_local_count(const rt_pmirror *m, const char *topic) {
  const ptopic *t = rt_map_get(&m->topics, topic);
  return t ? t->nlocal : 0;
}

void rt_pmirror_each(const rt_pmirror *m, const char *topic, rt_pmirror_fn fn, void *ud) {
  const ptopic *t = rt_map_get(&m->topics, topic);
  if (!t) return;
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&t->members, &i, &k, &v);) {
    rt_pmember view_of;
    view(v, &view_of);
    fn(ud, topic, &view_of);
  }
}

void rt_pmirror_each_topic(const rt_pmirror *m, void (*fn)(void *ud, const char *topic,
                                                           size_t nlocal), void *ud) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&m->topics, &i, &k, &v);) fn(ud, k, ((ptopic *)v)->nlocal);
}

size_t rt_pmirror_members(const rt_pmirror *m) { return m->members; }

long rt_pmirror_refused(const rt_pmirror *m) { return m->refused; }
