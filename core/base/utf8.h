/* UTF-8 validation, incremental so a message split in fragments is checked as it comes. */
#ifndef RT_UTF8_H
#define RT_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define RT_UTF8_ACCEPT 0
#define RT_UTF8_REJECT 1

/* Feeds bytes into state (start with RT_UTF8_ACCEPT). Returns the new state: REJECT once
 * invalid, ACCEPT at a character boundary, anything else in the middle of a character. */
uint32_t rt_utf8_feed(uint32_t state, const uint8_t *p, size_t n);
int rt_utf8_valid(const uint8_t *p, size_t n);

#endif
