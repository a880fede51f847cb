#include "hixie76_frame.h"

#include <openssl/evp.h>
#include <string.h>

#include "base/utf8.h"

/* digits / spaces, or -1. */
static int64_t key_value(const char *key) {
  uint64_t number = 0, spaces = 0;
  int digits = 0;
  for (const char *p = key; *p; p++) {
    if (*p >= '0' && *p <= '9') {
      if (++digits > 19) return -1;  /* 10^19 still fits in 64 bits */
      number = number * 10 + (uint64_t)(*p - '0');
    } else if (*p == ' ') {
      spaces++;
    }
  }
  if (!digits || !spaces || number % spaces) return -1;
  uint64_t v = number / spaces;
  return v > 0xffffffffu ? -1 : (int64_t)v;
}

int rt_hixie76_answer(const char *key1, const char *key2, const uint8_t key3[8], uint8_t out[16]) {
  int64_t a = key1 ? key_value(key1) : -1, b = key2 ? key_value(key2) : -1;
  if (a < 0 || b < 0) return -1;
  uint8_t challenge[16];
  for (int i = 0; i < 4; i++) {
    challenge[i] = (uint8_t)((uint64_t)a >> (24 - 8 * i));
    challenge[4 + i] = (uint8_t)((uint64_t)b >> (24 - 8 * i));
  }
  memcpy(challenge + 8, key3, 8);
  unsigned int n = 0;
  return EVP_Digest(challenge, sizeof challenge, out, &n, EVP_md5(), NULL) == 1 && n == 16 ? 0 : -1;
}

enum { S_TYPE, S_TEXT, S_CLOSE, S_DONE };

static int error(rt_hixie76_parser *p, const char *why) {
  p->error = why;
  p->state = S_DONE;
  return RT_HIXIE76_ERROR;
}

int rt_hixie76_feed(rt_hixie76_parser *p, const uint8_t *data, size_t len, rt_hixie76_on_message on_message,
                    void *ud) {
  size_t i = 0;
  while (i < len) {
    switch (p->state) {
      case S_TYPE:
        /* 0x00 starts a text frame, 0xFF a close; anything else (the draft's binary and
         * reserved frame types) no client sends. */
        if (data[i] == 0x00) {
          p->state = S_TEXT;
          p->utf8 = RT_UTF8_ACCEPT;
          rt_buf_consume(&p->msg, p->msg.len);
        } else if (data[i] == 0xff) {
          p->state = S_CLOSE;
        } else {
          return error(p, "a frame type other than text");
        }
        i++;
        break;
      case S_TEXT: {
        const uint8_t *end = memchr(data + i, 0xff, len - i);
        size_t n = end ? (size_t)(end - (data + i)) : len - i;
        if (p->msg.len + n > p->max_message) return error(p, "a message over the limit");
        p->utf8 = rt_utf8_feed(p->utf8, data + i, n);
        if (p->utf8 == RT_UTF8_REJECT) return error(p, "invalid UTF-8");
        if (n && rt_buf_append(&p->msg, data + i, n) < 0) return error(p, "out of memory");
        i += n;
        if (!end) break;
        i++;  /* the 0xFF */
        if (p->utf8 != RT_UTF8_ACCEPT) return error(p, "invalid UTF-8");
        p->state = S_TYPE;
        on_message(ud, p->msg.len ? rt_buf_start(&p->msg) : (const uint8_t *)"", p->msg.len);
        if (p->msg.cap > 65536) rt_buf_free(&p->msg);
        break;
      }
      case S_CLOSE:
        if (data[i] != 0x00) return error(p, "a bad close frame");
        p->state = S_DONE;
        return RT_HIXIE76_CLOSE;
      default:  /* after a close or an error, nothing more counts */
        return p->error ? RT_HIXIE76_ERROR : RT_HIXIE76_CLOSE;
    }
  }
  return RT_HIXIE76_MORE;
}

void rt_hixie76_parser_free(rt_hixie76_parser *p) { rt_buf_free(&p->msg); }
