/* A failing allocator for out-of-memory tests.
 *
 * The core calls malloc directly, so the only way to make it fail on demand is to replace
 * malloc for the test binary (glibc allows replacing malloc, calloc, realloc and free; its
 * own strdup etc. then use ours). This must not happen in every test binary, so it is
 * opt-in: ONE test file defines TFAIL_IMPLEMENT before including this header.
 *
 *   tfail_after(2);            // the next 2 allocations succeed, later ones fail
 *   rc = code_under_test();
 *   tfail_off();
 *
 * Under AddressSanitizer the sanitizer owns malloc: TFAIL_AVAILABLE is 0 there and tests
 * should skip(). */
#ifndef TEST_FAILALLOC_H
#define TEST_FAILALLOC_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define TFAIL_AVAILABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define TFAIL_AVAILABLE 0
#endif
#endif
#ifndef TFAIL_AVAILABLE
#define TFAIL_AVAILABLE 1
#endif

/* Arms the allocator: n more allocations succeed, then every one fails. */
void tfail_after(long n);
void tfail_off(void);
/* Allocations refused since the last tfail_after. */
long tfail_refused(void);
/* Blocks allocated and not yet freed (by anyone in the process): compare two readings
 * to see whether code freed what it allocated. */
long tfail_live(void);

#ifdef TFAIL_IMPLEMENT
#include <stdlib.h>
#if TFAIL_AVAILABLE
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static long tfail_budget = -1; /* -1 = disarmed */
static long tfail_count;
static long tfail_nlive;

void tfail_after(long n) {
  tfail_budget = n;
  tfail_count = 0;
}
void tfail_off(void) { tfail_budget = -1; }
long tfail_refused(void) { return tfail_count; }
long tfail_live(void) { return tfail_nlive; }

static int tfail_now(void) {
  if (tfail_budget < 0) return 0;
  if (tfail_budget > 0) {
    tfail_budget--;
    return 0;
  }
  tfail_count++;
  return 1;
}

static void *tfail_count_new(void *p) {
  if (p) tfail_nlive++;
  return p;
}

void *malloc(size_t n) { return tfail_now() ? NULL : tfail_count_new(__libc_malloc(n)); }
void *calloc(size_t n, size_t m) { return tfail_now() ? NULL : tfail_count_new(__libc_calloc(n, m)); }
void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  if (n == 0) {
    free(p);
    return NULL;
  }
  return tfail_now() ? NULL : __libc_realloc(p, n);
}
void free(void *p) {
  if (p) tfail_nlive--;
  __libc_free(p);
}
#else
void tfail_after(long n) { (void)n; }
void tfail_off(void) {}
long tfail_refused(void) { return 0; }
long tfail_live(void) { return 0; }
#endif
#endif

#endif
