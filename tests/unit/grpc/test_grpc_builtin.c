/* Unit tests for the built-in services' wire answers (core/grpc_builtin.c): health request
 * and response bytes, and server reflection answered from a schema loaded from
 * proto/user.proto (protoc runs at test time, from the repository root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/grpc_builtin.h"
#include "grpc/grpc_meta.h"
#include "pb/pb_wire.h"

#define B(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* ---- a tiny wire reader for the answers ---------------------------------------------- */

typedef struct fld {
  uint32_t num;
  uint64_t v;
  const uint8_t *p;
  size_t len;
} fld;

/* Finds the n-th (0-based) occurrence of field num; LEN and varint fields only. */
static int find(const uint8_t *p, size_t len, uint32_t num, int nth, fld *out) {
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t tag, v = 0;
    size_t n = rt_pb_wire_varint(p, (size_t)(end - p), &tag);
    assert_true(n > 0);
    p += n;
    const uint8_t *body = p;
    size_t blen = 0;
    if ((tag & 7) == 0) {
      n = rt_pb_wire_varint(p, (size_t)(end - p), &v);
      assert_true(n > 0);
      p += n;
    } else {
      assert_int_equal(tag & 7, 2);
      n = rt_pb_wire_varint(p, (size_t)(end - p), &v);
      assert_true(n > 0 && v <= (uint64_t)(end - p - n));
      body = p + n;
      blen = (size_t)v;
      p = body + blen;
    }
    if ((tag >> 3) == num && nth-- == 0) {
      out->num = num;
      out->v = v;
      out->p = body;
      out->len = blen;
      return 1;
    }
  }
  return 0;
}

/* ---- health ---------------------------------------------------------------------------- */

static void test_health_request(void **state) {
  char name[16];
  assert_int_equal(rt_grpc_health_request(NULL, 0, name, sizeof name), 0);
  assert_string_equal(name, "");
  assert_int_equal(rt_grpc_health_request(B(0x0a, 3, 'a', '.', 'B'), name, sizeof name), 3);
  assert_string_equal(name, "a.B");
  /* unknown fields are skipped, the last value of field 1 wins */
  assert_int_equal(rt_grpc_health_request(B(0x10, 5, 0x0a, 1, 'x', 0x0a, 1, 'y'), name, sizeof name), 1);
  assert_string_equal(name, "y");
  assert_int_equal(rt_grpc_health_request(B(0x0a, 5, 'a'), name, sizeof name), -1);  /* cut */
  assert_int_equal(rt_grpc_health_request(B(0x08, 1), name, sizeof name), -1);       /* varint */
  assert_int_equal(rt_grpc_health_request(B(0x0a, 20, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                            'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'),
                                          name, sizeof name), -1);                   /* too long */
  assert_int_equal(rt_grpc_health_request(B(0x0b), name, sizeof name), -1);          /* group */
}

static void test_health_response(void **state) {
  uint8_t out[16];
  assert_int_equal(rt_grpc_health_response(0, out), 0);
  assert_int_equal(rt_grpc_health_response(1, out), 2);
  assert_int_equal(out[0], 0x08);
  assert_int_equal(out[1], 1);
  assert_int_equal(rt_grpc_health_response(3, out), 2);
  assert_int_equal(out[1], 3);
}

/* ---- reflection ------------------------------------------------------------------------ */

static int setup_schema(void **state) {
  char err[512];
  rt_pb_schema *s = rt_pb_schema_new();
  const char *dirs[] = {"proto"};
  if (rt_pb_schema_load(s, "proto/user.proto", dirs, 1, err, sizeof err) < 0 ||
      rt_pb_schema_load(s, "proto/grpc/health/v1/health.proto", dirs, 1, err, sizeof err) < 0) {
    fprintf(stderr, "cannot load the protos: %s\n", err);
    rt_pb_schema_free(s);
    return -1;
  }
  *state = s;
  return 0;
}

static int teardown_schema(void **state) {
  rt_pb_schema_free(*state);
  return 0;
}

static const char *const services[] = {"user.UserService", "grpc.health.v1.Health"};

static rt_buf ask(void **state, const uint8_t *req, size_t len) {
  const rt_pb_schema *ss[] = {*state};
  rt_buf out = {0};
  char err[128];
  assert_int_equal(rt_grpc_reflection_answer(ss, 1, services, 2, req, len, &out, err, sizeof err), 0);
  return out;
}

static void test_list_services(void **state) {
  const uint8_t req[] = {0x0a, 1, 'h', 0x3a, 1, '*'};  /* host "h", list_services "*" */
  rt_buf out = ask(state, req, sizeof req);
  fld f, svc, name;
  assert_true(find(rt_buf_start(&out), out.len, 1, 0, &f));          /* valid_host */
  assert_int_equal(f.len, 1);
  assert_true(find(rt_buf_start(&out), out.len, 2, 0, &f));          /* original_request */
  assert_memory_equal(f.p, req, sizeof req);
  assert_true(find(rt_buf_start(&out), out.len, 6, 0, &f));          /* list_services_response */
  for (int i = 0; i < 2; i++) {
    assert_true(find(f.p, f.len, 1, i, &svc));
    assert_true(find(svc.p, svc.len, 1, 0, &name));
    assert_int_equal(name.len, strlen(services[i]));
    assert_memory_equal(name.p, services[i], name.len);
  }
  assert_false(find(f.p, f.len, 1, 2, &svc));
  rt_buf_free(&out);
}

static void test_file_containing_symbol(void **state) {
  const char *syms[] = {"user.User", ".user.UserService", "user.UserService.GetUser"};
  size_t want_len;
  const uint8_t *want = rt_pb_schema_file_bytes(*state, "user.proto", &want_len);
  assert_non_null(want);
  for (size_t i = 0; i < 3; i++) {
    uint8_t req[64];
    size_t n = strlen(syms[i]);
    req[0] = 0x22;  /* field 4, LEN */
    req[1] = (uint8_t)n;
    memcpy(req + 2, syms[i], n);
    rt_buf out = ask(state, req, n + 2);
    fld f, file;
    assert_true(find(rt_buf_start(&out), out.len, 4, 0, &f));
    assert_true(find(f.p, f.len, 1, 0, &file));
    assert_int_equal(file.len, want_len);
    assert_memory_equal(file.p, want, want_len);
    assert_false(find(f.p, f.len, 1, 1, &file));  /* user.proto imports nothing */
    rt_buf_free(&out);
  }
}

static void test_not_found_and_errors(void **state) {
  fld f, code;
  rt_buf out = ask(state, B(0x22, 7, 'n', 'o', '.', 'S', 'u', 'c', 'h'));
  assert_true(find(rt_buf_start(&out), out.len, 7, 0, &f));
  assert_true(find(f.p, f.len, 1, 0, &code));
  assert_int_equal(code.v, RT_GRPC_STATUS_NOT_FOUND);
  rt_buf_free(&out);

  out = ask(state, B(0x1a, 4, 'x', '.', 'p', 'b'));  /* file_by_filename */
  assert_true(find(rt_buf_start(&out), out.len, 7, 0, &f));
  rt_buf_free(&out);

  out = ask(state, B(0x0a, 0));  /* no question */
  assert_true(find(rt_buf_start(&out), out.len, 7, 0, &f));
  assert_true(find(f.p, f.len, 1, 0, &code));
  assert_int_equal(code.v, RT_GRPC_STATUS_INVALID_ARGUMENT);
  rt_buf_free(&out);

  out = ask(state, B(0x32, 9, 'u', 's', 'e', 'r', '.', 'U', 's', 'e', 'r'));
  assert_true(find(rt_buf_start(&out), out.len, 5, 0, &f));  /* empty extension list */
  rt_buf_free(&out);

  const rt_pb_schema *ss[] = {*state};
  rt_buf bad = {0};
  char err[128];
  assert_int_equal(rt_grpc_reflection_answer(ss, 1, services, 2, B(0x22, 9, 'x'), &bad, err, sizeof err), -1);
  assert_int_equal(rt_grpc_reflection_answer(ss, 1, services, 2, B(0x22, 2, 'a', 0), &bad, err, sizeof err), -1);
  rt_buf_free(&bad);
}

static void test_file_by_filename(void **state) {
  static const char name[] = "grpc/health/v1/health.proto";
  uint8_t req[64] = {0x1a, sizeof name - 1};
  memcpy(req + 2, name, sizeof name - 1);
  rt_buf out = ask(state, req, sizeof name + 1);
  fld f, file;
  assert_true(find(rt_buf_start(&out), out.len, 4, 0, &f));
  assert_true(find(f.p, f.len, 1, 0, &file));
  size_t len;
  const uint8_t *want = rt_pb_schema_file_bytes(*state, name, &len);
  assert_int_equal(file.len, len);
  assert_memory_equal(file.p, want, len);
  rt_buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_request),
      cmocka_unit_test(test_health_response),
      cmocka_unit_test_setup_teardown(test_list_services, setup_schema, teardown_schema),
      cmocka_unit_test_setup_teardown(test_file_containing_symbol, setup_schema, teardown_schema),
      cmocka_unit_test_setup_teardown(test_not_found_and_errors, setup_schema, teardown_schema),
      cmocka_unit_test_setup_teardown(test_file_by_filename, setup_schema, teardown_schema),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
