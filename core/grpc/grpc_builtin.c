/* Health and server reflection, straight on the protobuf wire format: the messages are
 * small and fixed (grpc/reflection/v1/reflection.proto, grpc/health/v1/health.proto), and
 * this way the answers do not depend on those files being found at run time. */
#include "grpc_builtin.h"

#include <stdio.h>
#include <string.h>

#include "grpc_meta.h"
#include "pb/pb_wire.h"

/* rt_buf_start of an empty, never-allocated buffer would offset a NULL pointer. */
static inline const uint8_t *buf_bytes(const rt_buf *b) {
  return b->len ? rt_buf_start(b) : (const uint8_t *)"";
}

#define MAX_NAME 1024 /* a symbol or file name in a request */

typedef struct field {
  uint32_t num;
  int wt;
  uint64_t v;         /* varint value */
  const uint8_t *p;   /* LEN payload */
  size_t len;
} field;

/* 1 with *f filled, 0 at the end, -1 on malformed input. */
static int next_field(const uint8_t **pp, const uint8_t *end, field *f) {
  const uint8_t *p = *pp;
  if (p >= end) return 0;
  uint64_t tag;
  size_t n = rt_pb_wire_varint(p, (size_t)(end - p), &tag);
  if (!n || (tag >> 3) == 0 || (tag >> 3) > RT_PB_MAX_FIELD_NUMBER) return -1;
  p += n;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (int)(tag & 7);
  f->p = NULL;
  f->len = 0;
  switch (f->wt) {
    case 0:
      if (!(n = rt_pb_wire_varint(p, (size_t)(end - p), &f->v))) return -1;
      p += n;
      break;
    case 1:
      if (end - p < 8) return -1;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return -1;
      p += 4;
      break;
    case 2: {
      uint64_t l;
      if (!(n = rt_pb_wire_varint(p, (size_t)(end - p), &l)) || l > (uint64_t)(end - p - n))
        return -1;
      f->p = p + n;
      f->len = (size_t)l;
      p += n + l;
      break;
    }
    default:
      return -1;  /* groups are not in these messages */
  }
  *pp = p;
  return 1;
}

static int put_varint(rt_buf *b, uint64_t v) {
  uint8_t t[10];
  return rt_buf_append(b, t, rt_pb_wire_put_varint(t, v));
}

static int put_bytes(rt_buf *b, unsigned num, const void *p, size_t len) {
  if (put_varint(b, ((uint64_t)num << 3) | 2) < 0 || put_varint(b, len) < 0) return -1;
  return len ? rt_buf_append(b, p, len) : 0;
}

static int put_str(rt_buf *b, unsigned num, const char *s) { return put_bytes(b, num, s, strlen(s)); }

static int put_error(rt_buf *out, int code, const char *msg) {
  rt_buf e = {0};
  int rc = put_varint(&e, 1 << 3) | put_varint(&e, (uint64_t)code) | put_str(&e, 2, msg);
  rc |= put_bytes(out, 7, buf_bytes(&e), e.len);
  rt_buf_free(&e);
  return rc < 0 ? -1 : 0;
}

static const uint8_t *find_file(const rt_pb_schema *const *ss, size_t n, const char *name,
                                size_t *len) {
  for (size_t i = 0; i < n; i++) {
    const uint8_t *b = rt_pb_schema_file_bytes(ss[i], name, len);
    if (b) return b;
  }
  return NULL;
}

/* The file and everything it imports, each once, the asked-for file first. */
static int put_files(rt_buf *out, const rt_pb_schema *const *ss, size_t n, const char *name) {
  const char *todo[RT_GRPC_REFLECT_MAX_FILES];
  size_t ntodo = 0, len;
  if (!find_file(ss, n, name, &len)) {
    char msg[MAX_NAME + 32];
    snprintf(msg, sizeof msg, "file not found: %s", name);
    return put_error(out, RT_GRPC_STATUS_NOT_FOUND, msg);
  }
  todo[ntodo++] = name;
  rt_buf resp = {0};
  int rc = 0;
  for (size_t i = 0; i < ntodo && rc == 0; i++) {
    const uint8_t *bytes = find_file(ss, n, todo[i], &len);
    if (!bytes) continue;  /* an import no schema holds: the client asks again if it cares */
    rc = put_bytes(&resp, 1, bytes, len);
    for (size_t s = 0; s < n; s++) {
      const char *const *deps;
      size_t nd = rt_pb_schema_file_deps(ss[s], todo[i], &deps);
      if (!nd) continue;
      for (size_t d = 0; d < nd; d++) {
        size_t k = 0;
        while (k < ntodo && strcmp(todo[k], deps[d]) != 0) k++;
        if (k == ntodo && ntodo < RT_GRPC_REFLECT_MAX_FILES) todo[ntodo++] = deps[d];
      }
      break;
    }
  }
  if (rc == 0) rc = put_bytes(out, 4, buf_bytes(&resp), resp.len);
  rt_buf_free(&resp);
  return rc;
}

static int copy_name(const field *f, char *out) {
  if (f->wt != 2 || f->len >= MAX_NAME || memchr(f->p, 0, f->len)) return -1;
  memcpy(out, f->p, f->len);
  out[f->len] = 0;
  return 0;
}

int rt_grpc_reflection_answer(const rt_pb_schema *const *ss, size_t nschemas,
                              const char *const *services, size_t nservices,
                              const uint8_t *req, size_t len, rt_buf *out, char *err,
                              size_t errlen) {
  if (!req) req = (const uint8_t *)"", len = 0;
  const uint8_t *p = req, *end = req + len;
  field f, host = {0}, which = {0};
  int rc;
  while ((rc = next_field(&p, end, &f)) == 1) {
    if (f.num == 1 && f.wt == 2) host = f;
    else if (f.num >= 3 && f.num <= 7) which = f;  /* a oneof: the last one wins */
  }
  if (rc < 0) {
    snprintf(err, errlen, "not a ServerReflectionRequest");
    return -1;
  }
  char name[MAX_NAME];
  if (host.p && host.len && put_bytes(out, 1, host.p, host.len) < 0) goto oom;
  if (put_bytes(out, 2, req, len) < 0) goto oom;
  switch (which.num) {
    case 7: { /* list_services */
      rt_buf list = {0}, one = {0};
      rc = 0;
      for (size_t i = 0; i < nservices && rc == 0; i++) {
        one.len = one.off = 0;
        rc = put_str(&one, 1, services[i]) | put_bytes(&list, 1, buf_bytes(&one), one.len);
      }
      if (rc == 0) rc = put_bytes(out, 6, buf_bytes(&list), list.len);
      rt_buf_free(&list);
      rt_buf_free(&one);
      break;
    }
    case 3: /* file_by_filename */
      if (copy_name(&which, name) < 0) goto bad;
      rc = put_files(out, ss, nschemas, name);
      break;
    case 4: { /* file_containing_symbol */
      if (copy_name(&which, name) < 0) goto bad;
      const char *sym = name[0] == '.' ? name + 1 : name, *file = NULL;
      for (size_t i = 0; i < nschemas && !file; i++) file = rt_pb_schema_symbol_file(ss[i], sym);
      if (file) {
        rc = put_files(out, ss, nschemas, file);
      } else {
        char msg[MAX_NAME + 32];
        snprintf(msg, sizeof msg, "symbol not found: %s", sym);
        rc = put_error(out, RT_GRPC_STATUS_NOT_FOUND, msg);
      }
      break;
    }
    case 6: { /* all_extension_numbers_of_type: we hold no extensions, so the list is empty */
      if (copy_name(&which, name) < 0) goto bad;
      const char *type = name[0] == '.' ? name + 1 : name;
      int known = 0;
      for (size_t i = 0; i < nschemas && !known; i++) known = rt_pb_schema_message(ss[i], type) != NULL;
      if (known) {
        rt_buf e = {0};
        rc = put_str(&e, 1, type) | put_bytes(out, 5, buf_bytes(&e), e.len);
        rt_buf_free(&e);
      } else {
        rc = put_error(out, RT_GRPC_STATUS_NOT_FOUND, "type not found");
      }
      break;
    }
    case 5: /* file_containing_extension */
      rc = put_error(out, RT_GRPC_STATUS_NOT_FOUND, "extensions are not supported");
      break;
    default:
      rc = put_error(out, RT_GRPC_STATUS_INVALID_ARGUMENT, "the request names no question");
      break;
  }
  if (rc < 0) goto oom;
  return 0;
bad:
  snprintf(err, errlen, "malformed name in ServerReflectionRequest");
  return -1;
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

int rt_grpc_health_request(const uint8_t *req, size_t len, char *name, size_t cap) {
  if (!req) req = (const uint8_t *)"", len = 0;  /* an empty message may come as NULL */
  const uint8_t *p = req, *end = req + len;
  field f;
  int rc;
  size_t n = 0;
  while ((rc = next_field(&p, end, &f)) == 1) {
    if (f.num != 1) continue;
    if (f.wt != 2 || f.len >= cap) return -1;
    memcpy(name, f.p, f.len);
    n = f.len;
  }
  if (rc < 0 || cap == 0) return -1;
  name[n] = 0;
  return (int)n;
}

size_t rt_grpc_health_response(int status, uint8_t out[16]) {
  if (status == 0) return 0;  /* proto3: the zero value is not written */
  out[0] = 1 << 3;
  return 1 + rt_pb_wire_put_varint(out + 1, (uint64_t)(uint32_t)status);
}
