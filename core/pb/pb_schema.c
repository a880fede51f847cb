/* Protobuf schemas: the files and names a schema holds, loading descriptor sets (with undo
 * when one fails) and the lookups gRPC and reflection use. Building protobuf-c's tables is
 * in pb_build.c; running protoc in pb_protoc.c. */
#include "pb_schema_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rt_pb_schema *rt_pb_schema_new(void) {
  return calloc(1, sizeof(rt_pb_schema));
}

void rt_pb_schema_free(rt_pb_schema *s) {
  if (!s) return;
  rt_map_free(&s->syms);
  rt_map_free(&s->files);
  free(s->file_list);
  free(s->svc_list);
  free(s->protoc);
  rt_pb_arena_free(&s->arena);
  free(s);
}

int pb_fail(pb_load *ld, const char *fmt, ...) {
  if (ld->err && ld->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elt) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 8;
  while (c < need) c *= 2;
  void *p = realloc(*arr, c * elt);
  if (!p) return -1;
  *arr = p;
  *cap = c;
  return 0;
}

int pb_sym_add(pb_load *ld, const char *name, pb_sym_kind kind, void *ptr, const char *file) {
  rt_pb_schema *s = ld->s;
  const pb_sym *old = rt_map_get(&s->syms, name);
  if (old) {
    if (strcmp(old->file, file) == 0)
      return pb_fail(ld, "%s: %s is defined twice", file, name);
    return pb_fail(ld, "%s: %s is already defined in %s", file, name, old->file);
  }
  pb_sym *sym = rt_pb_arena_alloc(&s->arena, sizeof *sym);
  if (!sym || grow((void **)&ld->added, &ld->cap_added, ld->n_added + 1, sizeof(char *)) < 0 ||
      rt_map_put(&s->syms, name, sym) < 0)
    return pb_fail(ld, "out of memory");
  sym->kind = kind;
  sym->ptr = ptr;
  sym->file = file;
  ld->added[ld->n_added++] = name;
  return 0;
}

const pb_sym *pb_sym_find(const rt_pb_schema *s, const char *name) {
  if (!s || !name) return NULL;
  if (name[0] == '.') name++;
  return rt_map_get(&s->syms, name);
}

/* ---- loading a descriptor set --------------------------------------------------------- */

/* The raw bytes of each FileDescriptorProto in the set (field 1), in order: reflection must
 * send them exactly as they came, so they are cut out of the input, not packed again. */
static long slice_files(pb_load *ld, const uint8_t *data, size_t len,
                        const uint8_t ***starts, size_t **lens) {
  long n = rt_pb_wire_split_unknown(data, len, NULL);
  if (n < 0) return pb_fail(ld, "not a descriptor set: malformed bytes");
  ProtobufCMessageUnknownField *f = calloc((size_t)n + 1, sizeof *f);
  *starts = calloc((size_t)n + 1, sizeof **starts);
  *lens = calloc((size_t)n + 1, sizeof **lens);
  if (!f || !*starts || !*lens) {
    free(f);
    return pb_fail(ld, "out of memory");
  }
  rt_pb_wire_split_unknown(data, len, f);
  long k = 0;
  for (long i = 0; i < n; i++) {
    uint64_t flen;
    size_t pre;
    if (f[i].tag != 1 || f[i].wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) continue;
    pre = rt_pb_wire_varint(f[i].data, f[i].len, &flen);
    (*starts)[k] = f[i].data + pre;
    (*lens)[k++] = f[i].len - pre;
  }
  free(f);
  return k;
}

static void undo(pb_load *ld, pb_file **newf, size_t n) {
  for (size_t i = 0; i < ld->n_added; i++) rt_map_remove(&ld->s->syms, ld->added[i]);
  for (size_t i = 0; i < n; i++)
    if (newf[i]) rt_map_remove(&ld->s->files, newf[i]->name);
}

static pb_file *new_file(pb_load *ld, const Google__Protobuf__FileDescriptorProto *fd,
                         const uint8_t *bytes, size_t len) {
  rt_pb_arena *a = &ld->s->arena;
  pb_file *f = rt_pb_arena_alloc(a, sizeof *f);
  uint8_t *copy = rt_pb_arena_alloc(a, len ? len : 1);
  if (!f || !copy || !(f->name = rt_pb_arena_strdup(a, fd->name))) return NULL;
  if (len) memcpy(copy, bytes, len);
  f->bytes = copy;
  f->len = len;
  f->proto3 = fd->syntax && strcmp(fd->syntax, "proto3") == 0;
  f->n_deps = fd->n_dependency;
  f->deps = rt_pb_arena_alloc(a, (fd->n_dependency + 1) * sizeof(char *));
  if (!f->deps) return NULL;
  for (size_t i = 0; i < fd->n_dependency; i++)
    if (!(f->deps[i] = rt_pb_arena_strdup(a, fd->dependency[i]))) return NULL;
  return f;
}

/* Registers the set's new files by name; NULL in newf for a file already loaded as is. */
static int add_files(pb_load *ld, Google__Protobuf__FileDescriptorSet *set,
                     const uint8_t **starts, const size_t *lens, pb_file **newf) {
  rt_pb_schema *s = ld->s;
  for (size_t i = 0; i < set->n_file; i++) {
    const Google__Protobuf__FileDescriptorProto *fd = set->file[i];
    if (!fd->name || !*fd->name) return pb_fail(ld, "descriptor set: file %zu has no name", i);
    const pb_file *old = rt_map_get(&s->files, fd->name);
    if (old) {
      if (old->len == lens[i] && memcmp(old->bytes, starts[i], lens[i]) == 0) continue;
      return pb_fail(ld, "%s: already loaded with different content", fd->name);
    }
    if (fd->syntax && strcmp(fd->syntax, "proto2") != 0 && strcmp(fd->syntax, "proto3") != 0)
      return pb_fail(ld, "%s: syntax \"%s\" is not supported", fd->name, fd->syntax);
    if (!(newf[i] = new_file(ld, fd, starts[i], lens[i])) ||
        rt_map_put(&s->files, newf[i]->name, newf[i]) < 0) {
      newf[i] = NULL;
      return pb_fail(ld, "out of memory");
    }
  }
  for (size_t i = 0; i < set->n_file; i++) {
    if (!newf[i]) continue;
    for (size_t j = 0; j < newf[i]->n_deps; j++)
      if (!rt_map_get(&s->files, newf[i]->deps[j]))
        return pb_fail(ld, "%s imports %s, which is not in the descriptor set "
                       "(make it with protoc --include_imports)", newf[i]->name,
                       newf[i]->deps[j]);
  }
  return 0;
}

static int load_set(pb_load *ld, Google__Protobuf__FileDescriptorSet *set,
                    const uint8_t **starts, const size_t *lens, pb_file **newf) {
  rt_pb_schema *s = ld->s;
  if (add_files(ld, set, starts, lens, newf) < 0) return -1;
  for (size_t i = 0; i < set->n_file; i++)
    if (newf[i] && pb_build_declare(ld, set->file[i], newf[i]) < 0) return -1;
  for (size_t i = 0; i < set->n_file; i++)
    if (newf[i] && pb_build_define(ld, set->file[i], newf[i]) < 0) return -1;
  if (grow((void **)&s->file_list, &s->cap_files, s->n_files + set->n_file, sizeof(pb_file *)) <
          0 ||
      grow((void **)&s->svc_list, &s->cap_svcs, s->n_svcs + ld->n_svcs, sizeof(void *)) < 0)
    return pb_fail(ld, "out of memory");
  for (size_t i = 0; i < set->n_file; i++)
    if (newf[i]) s->file_list[s->n_files++] = newf[i];
  for (size_t i = 0; i < ld->n_svcs; i++) s->svc_list[s->n_svcs++] = ld->svcs[i];
  return 0;
}

int rt_pb_schema_load_descriptor_set(rt_pb_schema *s, const uint8_t *data, size_t len,
                                     char *err, size_t errlen) {
  pb_load ld = {.s = s, .err = err, .errlen = errlen};
  if (len > RT_PB_MAX_DESCRIPTOR_SET) return pb_fail(&ld, "descriptor set too large");
  Google__Protobuf__FileDescriptorSet *set =
      google__protobuf__file_descriptor_set__unpack(NULL, len, data);
  if (!set) return pb_fail(&ld, "not a descriptor set (google.protobuf.FileDescriptorSet)");
  const uint8_t **starts = NULL;
  size_t *lens = NULL;
  pb_file **newf = calloc(set->n_file + 1, sizeof *newf);
  rt_pb_arena_mark mark = rt_pb_arena_mark_get(&s->arena);
  int rc = -1;
  long n = slice_files(&ld, data, len, &starts, &lens);
  if (!newf)
    pb_fail(&ld, "out of memory");
  else if (n >= 0 && (size_t)n != set->n_file)
    pb_fail(&ld, "not a descriptor set: unexpected fields");
  else if (n >= 0)
    rc = load_set(&ld, set, starts, lens, newf);
  if (rc < 0 && newf) {
    undo(&ld, newf, set->n_file);
    rt_pb_arena_reset(&s->arena, mark);
  }
  free(ld.added);
  free(ld.svcs);
  free(newf);
  free(starts);
  free(lens);
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  return rc;
}

/* ---- lookups -------------------------------------------------------------------------- */

static const void *find_kind(const rt_pb_schema *s, const char *name, pb_sym_kind kind) {
  const pb_sym *sym = pb_sym_find(s, name);
  return sym && sym->kind == kind ? sym->ptr : NULL;
}

const ProtobufCMessageDescriptor *rt_pb_schema_message(const rt_pb_schema *s, const char *name) {
  const rt_pb_msg *m = find_kind(s, name, PB_SYM_MESSAGE);
  return m ? &m->d : NULL;
}

const ProtobufCEnumDescriptor *rt_pb_schema_enum(const rt_pb_schema *s, const char *name) {
  return find_kind(s, name, PB_SYM_ENUM);
}

const rt_pb_service *rt_pb_schema_service(const rt_pb_schema *s, const char *name) {
  return find_kind(s, name, PB_SYM_SERVICE);
}

const rt_pb_method *rt_pb_schema_method(const rt_pb_schema *s, const char *path_or_name) {
  if (!s || !path_or_name) return NULL;
  if (path_or_name[0] == '/') {
    const pb_sym *sym = rt_map_get(&s->syms, path_or_name);
    return sym && sym->kind == PB_SYM_METHOD ? sym->ptr : NULL;
  }
  return find_kind(s, path_or_name, PB_SYM_METHOD);
}

const rt_pb_method *rt_pb_service_method(const rt_pb_service *svc, const char *name) {
  if (!svc || !name) return NULL;
  for (size_t i = 0; i < svc->n_methods; i++)
    if (strcmp(svc->methods[i].name, name) == 0) return &svc->methods[i];
  return NULL;
}

size_t rt_pb_schema_n_services(const rt_pb_schema *s) {
  return s ? s->n_svcs : 0;
}

const rt_pb_service *rt_pb_schema_service_at(const rt_pb_schema *s, size_t i) {
  return s && i < s->n_svcs ? s->svc_list[i] : NULL;
}

const uint8_t *rt_pb_schema_file_bytes(const rt_pb_schema *s, const char *file, size_t *len) {
  const pb_file *f = s && file ? rt_map_get(&s->files, file) : NULL;
  if (len) *len = f ? f->len : 0;
  return f ? f->bytes : NULL;
}

const char *rt_pb_schema_symbol_file(const rt_pb_schema *s, const char *symbol) {
  if (symbol && symbol[0] == '/') return NULL;  /* paths are not symbols */
  const pb_sym *sym = pb_sym_find(s, symbol);
  return sym ? sym->file : NULL;
}

size_t rt_pb_schema_file_deps(const rt_pb_schema *s, const char *file,
                              const char *const **deps) {
  const pb_file *f = s && file ? rt_map_get(&s->files, file) : NULL;
  if (deps) *deps = f ? (const char *const *)f->deps : NULL;
  return f ? f->n_deps : 0;
}

size_t rt_pb_schema_n_files(const rt_pb_schema *s) {
  return s ? s->n_files : 0;
}

const char *rt_pb_schema_file_at(const rt_pb_schema *s, size_t i) {
  return s && i < s->n_files ? s->file_list[i]->name : NULL;
}

const rt_pb_msg *rt_pb_msg_of(const ProtobufCMessageDescriptor *d) {
  if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC ||
      d->reserved1 != (const void *)pb_msg_marker)
    return NULL;
  return (const rt_pb_msg *)d;
}
