/* libFuzzer harness for the built-in gRPC services' request parsers (core/grpc_builtin.c):
 * server reflection (ServerReflectionRequest -> response) and health (HealthCheckRequest).
 * Both read bytes any client sends. Input: byte 0 picks the service, the rest is the request.
 * Checks: no crash or leak; a reflection answer is well-formed protobuf (walked field by
 * field); a health request's name fits and is NUL-terminated.
 * Schemas: proto/user.proto and the reflection protos, loaded once through protoc; run from
 * the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_builtin.h"

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* The fuzzer's process-wide fixture: libFuzzer gives no other place to keep it. */
static struct {
  rt_pb_schema *schemas[2];
  size_t n;
} fx;

static void load(const char *path, const char *dir) {
  rt_pb_schema *s = rt_pb_schema_new();
  char err[512];
  const char *dirs[] = {dir};
  if (!s || rt_pb_schema_load(s, path, dirs, 1, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz_grpc_builtin: cannot load %s: %s (run from the repo root)\n", path, err);
    exit(1);
  }
  fx.schemas[fx.n++] = s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  load("proto/user.proto", "proto");
  load("proto/grpc/reflection/v1/reflection.proto", "proto");
  return 0;
}

/* Walks protobuf wire format; returns 0 when every field is complete and well-typed. */
static int walk(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t key = 0;
    int shift = 0;
    do {
      if (i >= n || shift > 63) return -1;
      key |= (uint64_t)(p[i] & 0x7f) << shift;
      shift += 7;
    } while (p[i++] & 0x80);
    switch (key & 7) {
      case 0:
        do {
          if (i >= n) return -1;
        } while (p[i++] & 0x80);
        break;
      case 1: if (n - i < 8) return -1; i += 8; break;
      case 5: if (n - i < 4) return -1; i += 4; break;
      case 2: {
        uint64_t len = 0;
        shift = 0;
        do {
          if (i >= n || shift > 63) return -1;
          len |= (uint64_t)(p[i] & 0x7f) << shift;
          shift += 7;
        } while (p[i++] & 0x80);
        if (len > n - i) return -1;
        i += (size_t)len;
        break;
      }
      default: return -1;
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *req = data + 1;
  size_t len = size - 1;
  if (data[0] & 1) {
    char name[64];
    int n = rt_grpc_health_request(req, len, name, sizeof name);
    if (n >= 0) CHECK((size_t)n < sizeof name && name[n] == 0);
    uint8_t out[16];
    CHECK(rt_grpc_health_response(data[0] >> 1, out) <= 11);
    return 0;
  }
  static const char *const services[] = {"user.UserService", "grpc.health.v1.Health"};
  rt_buf out = {0};
  char err[256];
  int rc = rt_grpc_reflection_answer((const rt_pb_schema *const *)fx.schemas, fx.n, services, 2,
                                     req, len, &out, err, sizeof err);
  if (rc >= 0) CHECK(walk(out.data ? out.data + out.off : (const uint8_t *)"", out.len) == 0);
  rt_buf_free(&out);
  return 0;
}
