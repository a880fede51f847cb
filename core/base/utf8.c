#include "utf8.h"

/* States: 0 accept, 1 reject, then "need N more bytes" states with a restricted range for
 * the first continuation byte (no overlongs, no surrogates, nothing above U+10FFFF). */
enum { S_ACCEPT = 0, S_REJECT = 1, S_TAIL1, S_TAIL2, S_TAIL3, S_E0, S_ED, S_F0, S_F4 };

uint32_t rt_utf8_feed(uint32_t state, const uint8_t *p, size_t n) {
  if (n == 0) return state;
  for (size_t i = 0; i < n && state != S_REJECT; i++) {
    uint8_t b = p[i];
    switch (state) {
      case S_ACCEPT:
        if (b < 0x80) state = S_ACCEPT;
        else if (b >= 0xc2 && b <= 0xdf) state = S_TAIL1;
        else if (b == 0xe0) state = S_E0;
        else if (b == 0xed) state = S_ED;
        else if (b >= 0xe1 && b <= 0xef) state = S_TAIL2;
        else if (b == 0xf0) state = S_F0;
        else if (b >= 0xf1 && b <= 0xf3) state = S_TAIL3;
        else if (b == 0xf4) state = S_F4;
        else state = S_REJECT;
        break;
      case S_TAIL1: state = (b & 0xc0) == 0x80 ? S_ACCEPT : S_REJECT; break;
      case S_TAIL2: state = (b & 0xc0) == 0x80 ? S_TAIL1 : S_REJECT; break;
      case S_TAIL3: state = (b & 0xc0) == 0x80 ? S_TAIL2 : S_REJECT; break;
      case S_E0: state = b >= 0xa0 && b <= 0xbf ? S_TAIL1 : S_REJECT; break;
      case S_ED: state = b >= 0x80 && b <= 0x9f ? S_TAIL1 : S_REJECT; break;
      case S_F0: state = b >= 0x90 && b <= 0xbf ? S_TAIL2 : S_REJECT; break;
      case S_F4: state = b >= 0x80 && b <= 0x8f ? S_TAIL2 : S_REJECT; break;
      default: state = S_REJECT;
    }
  }
  return state;
}

int rt_utf8_valid(const uint8_t *p, size_t n) {
  if (n == 0) return 1;
  /* ASCII runs are the common case: skip them eight bytes at a time. */
  size_t i = 0;
  while (i + 8 <= n) {
    uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  return rt_utf8_feed(S_ACCEPT, p + i, n - i) == S_ACCEPT;
}
