#include "history.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/map.h"
#include "broker.h"
#include "server_int.h"

typedef struct record record;

/* A kept message: one allocation with its strings and headers after it. */
typedef struct entry {
  struct entry *next;            /* in its topic, oldest first */
  struct entry *gprev, *gnext;   /* in all topics, oldest first (for the byte bound) */
  record *rec;
  uint64_t offset;
  double expires;
  rt_chunk *body;                /* a reference to the publish's own body */
  int binary;
  const char *content_type;      /* NULL = the receiver's default */
  const char *stomp_destination; /* NULL = the topic's name */
  rt_header *headers;
  size_t nheaders;
  size_t cost;                   /* what it counts against max_bytes */
} entry;

struct record {
  char *name;
  char epoch[RT_HISTORY_EPOCH_LEN + 1];
  uint64_t offset;               /* of the latest publish */
  entry *head, *tail;
  size_t count;
  size_t size;                   /* the policy's numbers when it last kept a message */
  double ttl;
  double empty_since;            /* when its last message went; 0 while it has some */
};

typedef struct policy {
  char *pattern;
  size_t size;
  double ttl;
} policy;

struct rt_history {
  rt_server *srv;
  policy policies[RT_HISTORY_MAX_POLICIES];
  int npolicies;
  rt_map records;                /* topic name -> record */
  entry *ghead, *gtail;
  size_t bytes, max_bytes;
  uint64_t epoch_seq;            /* mixed into epochs if the kernel has no entropy */
  ev_timer sweep;                /* drops expired messages and records, while any exist */
};

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents);

rt_history *rt_history_new(rt_server *srv) {
  rt_history *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->srv = srv;
  h->max_bytes = srv->cfg.history_max_bytes ? srv->cfg.history_max_bytes
                                             : RT_HISTORY_DEFAULT_MAX_BYTES;
  ev_timer_init(&h->sweep, on_sweep, 1.0, 1.0);
  h->sweep.data = h;
  return h;
}

static void entry_drop(rt_history *h, entry *e) {
  record *r = e->rec;
  /* Only ever the oldest of its topic. */
  r->head = e->next;
  if (!r->head) {
    r->tail = NULL;
    r->empty_since = ev_now(h->srv->loop);
  }
  r->count--;
  if (e->gprev) e->gprev->gnext = e->gnext;
  else h->ghead = e->gnext;
  if (e->gnext) e->gnext->gprev = e->gprev;
  else h->gtail = e->gprev;
  h->bytes -= e->cost;
  rt_chunk_unref(e->body);
  free(e);
}

static void record_free(rt_history *h, record *r) {
  while (r->head) entry_drop(h, r->head);
  free(r->name);
  free(r);
}

void rt_history_free(rt_history *h) {
  if (!h) return;
  if (ev_is_active(&h->sweep)) {
    ev_ref(h->srv->loop);
    ev_timer_stop(h->srv->loop, &h->sweep);
  }
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&h->records, &i, &k, &v);) record_free(h, v);
  rt_map_free(&h->records);
  rt_history_clear_policies(h);
  free(h);
}

int rt_history_policy(rt_history *h, const char *pattern, size_t size, double ttl) {
  if (!pattern || !*pattern || strlen(pattern) > RT_BROKER_MAX_NAME || size == 0 ||
      size > RT_HISTORY_MAX_SIZE || !(ttl > 0))
    return -1;
  for (int i = 0; i < h->npolicies; i++) {
    if (strcmp(h->policies[i].pattern, pattern) == 0) {
      h->policies[i].size = size;
      h->policies[i].ttl = ttl;
      return 0;
    }
  }
  if (h->npolicies == RT_HISTORY_MAX_POLICIES) return -1;
  char *copy = strdup(pattern);
  if (!copy) return -1;
  h->policies[h->npolicies++] = (policy){copy, size, ttl};
  return 0;
}

void rt_history_clear_policies(rt_history *h) {
  for (int i = 0; i < h->npolicies; i++) free(h->policies[i].pattern);
  h->npolicies = 0;
}

void rt_history_set_max_bytes(rt_history *h, size_t max_bytes) { h->max_bytes = max_bytes; }

size_t rt_history_bytes(const rt_history *h) { return h->bytes; }

static const policy *policy_for(rt_history *h, const char *name) {
  for (int i = 0; i < h->npolicies; i++)
    if (rt_broker_pattern_match(h->policies[i].pattern, name)) return &h->policies[i];
  return NULL;
}

int rt_history_covers(rt_history *h, const char *name) { return policy_for(h, name) != NULL; }

int rt_history_limits(rt_history *h, const char *name, size_t *size, double *ttl) {
  const policy *p = policy_for(h, name);
  if (p) {
    *size = p->size;
    *ttl = p->ttl;
  }
  return p != NULL;
}

static void new_epoch(rt_history *h, char out[RT_HISTORY_EPOCH_LEN + 1]) {
  uint64_t x;
  if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
    x = (uint64_t)(ev_time() * 1e6) ^ ((uint64_t)(uintptr_t)h << 16);
  x ^= ++h->epoch_seq * 0x9e3779b97f4a7c15ull;  /* two records made at once still differ */
  snprintf(out, RT_HISTORY_EPOCH_LEN + 1, "%016llx", (unsigned long long)x);
}

/* Drops what is too old or too many. */
static void trim(rt_history *h, record *r, double now) {
  while (r->head && (r->count > r->size || r->head->expires <= now)) entry_drop(h, r->head);
}

static record *record_get(rt_history *h, const char *name, int create) {
  record *r = rt_map_get(&h->records, name);
  if (r || !create) return r;
  r = calloc(1, sizeof *r);
  if (!r || !(r->name = strdup(name)) || rt_map_put(&h->records, name, r) < 0) {
    if (r) free(r->name);
    free(r);
    return NULL;
  }
  new_epoch(h, r->epoch);
  if (!ev_is_active(&h->sweep)) {
    ev_timer_again(h->srv->loop, &h->sweep);
    ev_unref(h->srv->loop);  /* history alone must not keep a stopping server's loop alive */
  }
  return r;
}

static entry *entry_new(const rt_msg *m) {
  size_t ctl = m->content_type ? strlen(m->content_type) + 1 : 0;
  size_t dl = m->stomp_destination ? strlen(m->stomp_destination) + 1 : 0;
  size_t strings = ctl + dl;
  for (size_t i = 0; i < m->nheaders; i++)
    strings += m->headers[i].name_len + m->headers[i].value_len + 2;
  entry *e = malloc(sizeof *e + m->nheaders * sizeof(rt_header) + strings);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->headers = (rt_header *)(e + 1);
  char *p = (char *)(e->headers + m->nheaders);
  if (ctl) e->content_type = memcpy(p, m->content_type, ctl), p += ctl;
  if (dl) e->stomp_destination = memcpy(p, m->stomp_destination, dl), p += dl;
  for (size_t i = 0; i < m->nheaders; i++) {
    const rt_header *src = &m->headers[i];
    rt_header *dst = &e->headers[i];
    dst->name = memcpy(p, src->name, src->name_len + 1);
    p += src->name_len + 1;
    dst->value = memcpy(p, src->value, src->value_len + 1);
    p += src->value_len + 1;
    dst->name_len = src->name_len;
    dst->value_len = src->value_len;
  }
  e->nheaders = m->nheaders;
  e->binary = m->binary;
  e->body = rt_chunk_ref(m->body);
  e->cost = sizeof *e + m->nheaders * sizeof(rt_header) + strings + m->body->len;
  return e;
}

/* Appends m to r at offset, then applies the bounds. */
static int append(rt_history *h, record *r, const policy *p, rt_msg *m, uint64_t offset) {
  entry *e = entry_new(m);
  if (!e) return -1;
  double now = ev_now(h->srv->loop);
  r->size = p->size;
  r->ttl = p->ttl;
  e->rec = r;
  e->offset = r->offset = offset;
  e->expires = now + p->ttl;
  if (r->tail) r->tail->next = e;
  else r->head = e;
  r->tail = e;
  r->count++;
  r->empty_since = 0;
  e->gprev = h->gtail;
  if (h->gtail) h->gtail->gnext = e;
  else h->ghead = e;
  h->gtail = e;
  h->bytes += e->cost;
  trim(h, r, now);
  /* The byte bound drops the oldest messages of all topics, this one's last kept. */
  while (h->bytes > h->max_bytes && h->ghead && h->ghead != e) entry_drop(h, h->ghead);
  m->offset = e->offset;
  m->epoch = r->epoch;
  return 0;
}

int rt_history_keep(rt_history *h, rt_msg *m) {
  if (!h->npolicies) return 0;
  const policy *p = policy_for(h, m->destination);
  if (!p) return 0;
  record *r = record_get(h, m->destination, 1);
  if (!r) return -1;
  return append(h, r, p, m, r->offset + 1);
}

int rt_history_keep_at(rt_history *h, rt_msg *m, const char *epoch, uint64_t offset) {
  const policy *p = policy_for(h, m->destination);
  if (!p) return 0;
  record *r = record_get(h, m->destination, 1);
  if (!r) return -1;
  int same_epoch = strcmp(r->epoch, epoch) == 0;
  if (same_epoch && offset <= r->offset) return 0;  /* kept already */
  if (!same_epoch || offset != r->offset + 1) {
    /* Another epoch, or not the next one: what is kept would not be a contiguous run. */
    while (r->head) entry_drop(h, r->head);
    snprintf(r->epoch, sizeof r->epoch, "%s", epoch);
  }
  return append(h, r, p, m, offset);
}

int rt_history_keep_before(rt_history *h, rt_msg *m, const char *epoch, uint64_t offset) {
  const policy *p = policy_for(h, m->destination);
  record *r = p ? rt_map_get(&h->records, m->destination) : NULL;
  if (!r || !r->head || strcmp(r->epoch, epoch) != 0 || offset + 1 != r->head->offset ||
      r->count >= p->size)
    return 0;
  entry *e = entry_new(m);
  if (!e) return -1;
  e->rec = r;
  e->offset = offset;
  e->expires = r->head->expires;  /* it is older: it goes no later than the next one */
  e->next = r->head;
  r->head = e;
  r->count++;
  /* Oldest of all for the byte bound too: the first to go under pressure. */
  e->gnext = h->ghead;
  h->ghead->gprev = e;
  h->ghead = e;
  h->bytes += e->cost;
  while (h->bytes > h->max_bytes && h->ghead) {
    int self = h->ghead == e;
    entry_drop(h, h->ghead);
    if (self) break;
  }
  return 0;
}

void rt_history_drop_all(rt_history *h) {
  const char *k;
  void *v;
  for (size_t i = 0; rt_map_next(&h->records, &i, &k, &v);) record_free(h, v);
  rt_map_free(&h->records);
}

void rt_history_forget(rt_history *h, const char *name) {
  record *r = rt_map_remove(&h->records, name);
  if (r) record_free(h, r);
}

uint64_t rt_history_oldest(rt_history *h, const char *name) {
  record *r = rt_map_get(&h->records, name);
  if (!r) return 0;
  trim(h, r, ev_now(h->srv->loop));
  return r->head ? r->head->offset : 0;
}

uint64_t rt_history_top(rt_history *h, const char *name, const char **epoch) {
  record *r = rt_map_get(&h->records, name);
  *epoch = r ? r->epoch : "";
  return r ? r->offset : 0;
}

uint64_t rt_history_position(rt_history *h, const char *name, const char **epoch) {
  const policy *p = rt_map_get(&h->records, name) ? NULL : policy_for(h, name);
  if (p) {
    record *r = record_get(h, name, 1);
    if (r) {
      /* Forgotten a ttl from now unless something is published to it. */
      r->size = p->size;
      r->ttl = p->ttl;
      r->empty_since = ev_now(h->srv->loop);
    }
  }
  return rt_history_top(h, name, epoch);
}

int rt_history_read(rt_history *h, const char *name, const char *epoch, uint64_t since,
                    size_t limit, int partial, int (*visit)(void *ud, rt_msg *m), void *ud) {
  record *r = rt_map_get(&h->records, name);
  if (!r) return 0;
  if (epoch && strcmp(epoch, r->epoch) != 0) return 0;
  if (since > r->offset) return 0;  /* a position this epoch never reached */
  trim(h, r, ev_now(h->srv->loop));
  /* Everything after since must still be here: the oldest kept is since + 1 or older. */
  int complete = since == r->offset || (r->head && r->head->offset <= since + 1);
  if (!complete && !partial) return 0;
  size_t n = 0;
  for (entry *e = r->head, *next; e; e = next) {
    next = e->next;
    if (e->offset <= since) continue;
    rt_msg m = {.destination = r->name,
                .body = e->body,
                .binary = e->binary,
                .stomp_destination = e->stomp_destination,
                .content_type = e->content_type,
                .headers = e->nheaders ? e->headers : NULL,
                .nheaders = e->nheaders,
                .offset = e->offset,
                .epoch = r->epoch};
    /* The visitor may deliver, and a delivery may close a connection, but nothing it does
     * publishes into this history before returning: e stays valid. */
    int stop = visit(ud, &m);
    rt_msg_release(&m);
    if (stop || (limit && ++n >= limit)) break;
  }
  return complete;
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_history *h = w->data;
  double now = ev_now(loop);
  const char *k;
  void *v;
  char *gone[64];
  int ngone = 0;
  for (size_t i = 0; rt_map_next(&h->records, &i, &k, &v);) {
    record *r = v;
    trim(h, r, now);
    /* An empty record lives one ttl more: a client back soon still learns it missed
     * nothing; later its position is gone along with the record (a new epoch). */
    if (!r->head && r->empty_since && now - r->empty_since >= r->ttl && ngone < 64)
      gone[ngone++] = r->name;
  }
  for (int i = 0; i < ngone; i++) record_free(h, rt_map_remove(&h->records, gone[i]));
  if (!h->records.count) {
    ev_ref(loop);
    ev_timer_stop(loop, &h->sweep);
  }
}
