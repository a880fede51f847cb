/* Helpers every engine shares: node ids, pattern globs, the sharding hash. */
#include "engine.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t rt_engine_new_node_id(void) {
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
    /* No entropy source: pid and time still tell the processes of a deployment apart. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    id = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
  }
  return id ? id : 1;
}

int rt_engine_glob(const char *pattern, char *out, size_t outlen) {
  size_t n = 0;
  for (const char *p = pattern; *p; p++) {
    if (*p == '*') {
      while (p[1] == '*') p++;
      if (n + 1 >= outlen) return -1;
      out[n++] = '*';
      continue;
    }
    int special = *p == '?' || *p == '[' || *p == ']' || *p == '\\';
    if (n + 1 + special >= outlen) return -1;
    if (special) out[n++] = '\\';
    out[n++] = *p;
  }
  if (n >= outlen) return -1;
  out[n] = 0;
  return (int)n;
}

uint64_t rt_engine_hash(const char *name) {
  uint64_t h = 14695981039346656037ULL;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h;
}
