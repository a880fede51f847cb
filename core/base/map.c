#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tombstone;
#define TOMB (&tombstone)

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;  /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static rt_map_entry *find(const rt_map *m, const char *key, int for_insert) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1, i = hash(key) & mask;
  rt_map_entry *first_tomb = NULL;
  for (;;) {
    rt_map_entry *e = &m->slots[i];
    if (!e->key) return for_insert && first_tomb ? first_tomb : (for_insert ? e : NULL);
    if (e->key == TOMB) {
      if (!first_tomb) first_tomb = e;
    } else if (strcmp(e->key, key) == 0) {
      return e;
    }
    i = (i + 1) & mask;
  }
}

static int grow(rt_map *m) {
  /* Mostly tombstones (topics come and go): rehash at the same size instead. */
  size_t cap = !m->cap ? 16 : m->tombs > m->count ? m->cap : m->cap * 2;
  rt_map_entry *old = m->slots;
  size_t oldcap = m->cap;
  m->slots = calloc(cap, sizeof *m->slots);
  if (!m->slots) {
    m->slots = old;
    return -1;
  }
  m->cap = cap;
  m->count = m->tombs = 0;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].key && old[i].key != TOMB) {
      rt_map_entry *e = find(m, old[i].key, 1);
      *e = old[i];
      m->count++;
    }
  free(old);
  return 0;
}

void *rt_map_get(const rt_map *m, const char *key) {
  rt_map_entry *e = find(m, key, 0);
  return e ? e->value : NULL;
}

int rt_map_put(rt_map *m, const char *key, void *value) {
  if ((m->count + m->tombs + 1) * 4 >= m->cap * 3 && grow(m) < 0) return -1;
  rt_map_entry *e = find(m, key, 1);
  if (e->key && e->key != TOMB) {
    e->value = value;
    return 0;
  }
  char *k = strdup(key);
  if (!k) return -1;
  if (e->key == TOMB) m->tombs--;
  e->key = k;
  e->value = value;
  m->count++;
  return 0;
}

void *rt_map_remove(rt_map *m, const char *key) {
  rt_map_entry *e = find(m, key, 0);
  if (!e) return NULL;
  void *v = e->value;
  free(e->key);
  e->key = TOMB;
  e->value = NULL;
  m->count--;
  m->tombs++;
  return v;
}

void rt_map_free(rt_map *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key && m->slots[i].key != TOMB) free(m->slots[i].key);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

int rt_map_next(const rt_map *m, size_t *iter, const char **key, void **value) {
  for (; *iter < m->cap; (*iter)++) {
    rt_map_entry *e = &m->slots[*iter];
    if (e->key && e->key != TOMB) {
      *key = e->key;
      *value = e->value;
      (*iter)++;
      return 1;
    }
  }
  return 0;
}
