/* A string-keyed hash map (open addressing, linear probing) of void pointers. */
#ifndef RT_MAP_H
#define RT_MAP_H

#include <stddef.h>

typedef struct rt_map_entry {
  char *key;   /* owned copy; NULL = empty slot */
  void *value;
} rt_map_entry;

typedef struct rt_map {
  rt_map_entry *slots;
  size_t cap, count, tombs;
} rt_map;

void *rt_map_get(const rt_map *m, const char *key);
int rt_map_put(rt_map *m, const char *key, void *value);   /* replaces; -1 on OOM */
void *rt_map_remove(rt_map *m, const char *key);           /* returns the old value */
void rt_map_free(rt_map *m);
/* Iteration: for (size_t i = 0; rt_map_next(m, &i, &k, &v);) */
int rt_map_next(const rt_map *m, size_t *iter, const char **key, void **value);

#endif
