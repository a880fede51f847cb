/* A name/value pair as protocols carry it: a STOMP header, or one that travels with a
 * message through the broker. Both strings are NUL-terminated; the lengths save strlen. */
#ifndef RT_HEADER_H
#define RT_HEADER_H

#include <stddef.h>

typedef struct rt_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} rt_header;

#endif
