#include "ws_frame.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <ctype.h>
#include <string.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int rt_ws_key_valid(const char *key) {
  /* 16 bytes encode to 22 characters and "==". */
  if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=') return 0;
  /* EVP_DecodeBlock takes '=' anywhere: check the alphabet ourselves. */
  for (int i = 0; i < 22; i++)
    if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/') return 0;
  unsigned char raw[24];
  int n = EVP_DecodeBlock(raw, (const unsigned char *)key, 24);
  return n == 18;  /* EVP_DecodeBlock counts the padding as zero bytes */
}

void rt_ws_accept_key(const char *key, char out[29]) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  char buf[128];
  size_t kl = strlen(key);
  if (kl > sizeof buf - sizeof WS_GUID) kl = sizeof buf - sizeof WS_GUID;
  memcpy(buf, key, kl);
  memcpy(buf + kl, WS_GUID, sizeof WS_GUID - 1);
  SHA1((const unsigned char *)buf, kl + sizeof WS_GUID - 1, digest);
  EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
  out[28] = 0;
}

size_t rt_ws_frame_header(uint8_t hdr[10], int opcode, size_t len) {
  hdr[0] = (uint8_t)(0x80 | (opcode & 0x0f));
  if (len < 126) {
    hdr[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    hdr[1] = 126;
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    return 4;
  }
  hdr[1] = 127;
  for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

rt_chunk *rt_ws_frame_build(int opcode, const void *payload, size_t len) {
  uint8_t hdr[10];
  size_t hl = rt_ws_frame_header(hdr, opcode, len);
  rt_chunk *c = rt_chunk_new(hl + len);
  if (!c) return NULL;
  memcpy(c->data, hdr, hl);
  if (len) memcpy(c->data + hl, payload, len);
  return c;
}

rt_chunk *rt_ws_close_frame(int code, const char *reason) {
  uint8_t body[125];
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > sizeof body - 2) {
    rl = sizeof body - 2;
    /* Never cut inside a UTF-8 character: the peer would fail us with 1007. */
    while (rl && ((unsigned char)reason[rl] & 0xc0) == 0x80) rl--;
  }
  body[0] = (uint8_t)(code >> 8);
  body[1] = (uint8_t)code;
  if (rl) memcpy(body + 2, reason, rl);
  return rt_ws_frame_build(RT_WS_CLOSE, body, rl + 2);
}
