/* protobuf-c descriptor tables built at run time from FileDescriptorProtos.
 *
 * protobuf-c's pack/unpack only need plain tables: fields sorted by number with ranges for
 * the number -> index search, a by-name index, and for each field the offset of its value
 * (and of its has_/n_/case quantifier) in a message struct. We lay that struct out here the
 * way protoc-c would, with two deliberate differences:
 *  - proto `string` is BYTES inside (a length, not a NUL-terminated char *), so strings
 *    with embedded NULs survive; pb_lua checks UTF-8 itself.
 *  - members of a oneof share one offset, like protoc-c's union. This is required, not
 *    cosmetic: protobuf-c frees a replaced oneof member through the new member's offset. */
#include "pb_schema_int.h"
#include "pb_wire.h"

#include <stdlib.h>
#include <string.h>

const char pb_msg_marker[] = "rt_pb_msg";

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;

#define ALLOC(ld, n) rt_pb_arena_alloc(&(ld)->s->arena, (n))
#define OOM(ld) pb_fail((ld), "out of memory")

/* ---- int ranges (fields by number, enum values by number) ----------------------------- */

static ProtobufCIntRange *make_ranges(pb_load *ld, const int *vals, unsigned n,
                                      unsigned *n_ranges) {
  ProtobufCIntRange *r = ALLOC(ld, (n + 1) * sizeof *r);
  unsigned k = 0;
  if (!r) return NULL;
  for (unsigned i = 0; i < n; i++)
    if (i == 0 || (int64_t)vals[i] != (int64_t)vals[i - 1] + 1) {
      r[k].start_value = vals[i];
      r[k++].orig_index = i;
    }
  r[k].start_value = 0;  /* sentinel: its orig_index ends the last range */
  r[k].orig_index = n;
  *n_ranges = k;
  return r;
}

/* ---- enums ---------------------------------------------------------------------------- */

typedef struct {
  int number;
  unsigned decl;
  const char *name;
} enum_item;

static int cmp_enum_num(const void *a, const void *b) {
  const enum_item *x = a, *y = b;
  if (x->number != y->number) return x->number < y->number ? -1 : 1;
  return x->decl < y->decl ? -1 : x->decl > y->decl;
}

static int cmp_value_index(const void *a, const void *b) {
  return strcmp(((const ProtobufCEnumValueIndex *)a)->name,
                ((const ProtobufCEnumValueIndex *)b)->name);
}

/* values: one per number (the first name declared wins, aliases share it), sorted by
 * number; values_by_name: every name, sorted, pointing at its number's entry. */
static int fill_enum(pb_load *ld, ProtobufCEnumDescriptor *e, const EnumProto *ep,
                     const char *file) {
  unsigned n = (unsigned)ep->n_value;
  if (n == 0) return pb_fail(ld, "%s: enum %s has no values", file, e->name);
  enum_item *it = malloc(n * sizeof *it);
  int *nums = malloc(n * sizeof *nums);
  ProtobufCEnumValue *vals = ALLOC(ld, n * sizeof *vals);
  ProtobufCEnumValueIndex *byname = ALLOC(ld, n * sizeof *byname);
  int rc = -1;
  if (!it || !nums || !vals || !byname) {
    OOM(ld);
    goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    if (!ep->value[i]->name) {
      pb_fail(ld, "%s: enum %s has a value without a name", file, e->name);
      goto out;
    }
    it[i].number = ep->value[i]->number;
    it[i].decl = i;
    if (!(it[i].name = rt_pb_arena_strdup(&ld->s->arena, ep->value[i]->name))) {
      OOM(ld);
      goto out;
    }
  }
  qsort(it, n, sizeof *it, cmp_enum_num);
  unsigned u = 0;
  for (unsigned i = 0; i < n; i++) {
    if (i == 0 || it[i].number != it[i - 1].number) {
      vals[u].name = vals[u].c_name = it[i].name;
      vals[u].value = it[i].number;
      nums[u++] = it[i].number;
    }
    byname[i].name = it[i].name;
    byname[i].index = u - 1;
  }
  qsort(byname, n, sizeof *byname, cmp_value_index);
  for (unsigned i = 1; i < n; i++)
    if (strcmp(byname[i].name, byname[i - 1].name) == 0) {
      pb_fail(ld, "%s: enum %s has two values named %s", file, e->name, byname[i].name);
      goto out;
    }
  e->n_values = u;
  e->values = vals;
  e->n_value_names = n;
  e->values_by_name = byname;
  if (!(e->value_ranges = make_ranges(ld, nums, u, &e->n_value_ranges))) {
    OOM(ld);
    goto out;
  }
  rc = 0;
out:
  free(it);
  free(nums);
  return rc;
}

static int declare_enum(pb_load *ld, const EnumProto *ep, const char *scope, const char *pkg,
                        const pb_file *file) {
  if (!ep->name) return pb_fail(ld, "%s: an enum has no name", file->name);
  ProtobufCEnumDescriptor *e = ALLOC(ld, sizeof *e);
  if (!e) return OOM(ld);
  e->magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC;
  e->name = e->c_name = rt_pb_arena_join(&ld->s->arena, scope, '.', ep->name);
  e->short_name = rt_pb_arena_strdup(&ld->s->arena, ep->name);
  e->package_name = pkg;
  if (!e->name || !e->short_name) return OOM(ld);
  if (fill_enum(ld, e, ep, file->name) < 0) return -1;
  return pb_sym_add(ld, e->name, PB_SYM_ENUM, e, file->name);
}

/* ---- messages, pass 1 ----------------------------------------------------------------- */

static int declare_msg(pb_load *ld, const MsgProto *mp, const char *scope, const char *pkg,
                       const pb_file *file) {
  if (!mp->name) return pb_fail(ld, "%s: a message has no name", file->name);
  rt_pb_msg *m = ALLOC(ld, sizeof *m);
  if (!m) return OOM(ld);
  m->d.magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
  m->d.name = m->d.c_name = rt_pb_arena_join(&ld->s->arena, scope, '.', mp->name);
  m->d.short_name = rt_pb_arena_strdup(&ld->s->arena, mp->name);
  m->d.package_name = pkg;
  m->d.reserved1 = (void *)pb_msg_marker;
  m->file = file->name;
  m->map_entry = mp->options && mp->options->has_map_entry && mp->options->map_entry;
  if (!m->d.name || !m->d.short_name) return OOM(ld);
  if (pb_sym_add(ld, m->d.name, PB_SYM_MESSAGE, m, file->name) < 0) return -1;
  for (size_t i = 0; i < mp->n_nested_type; i++)
    if (declare_msg(ld, mp->nested_type[i], m->d.name, pkg, file) < 0) return -1;
  for (size_t i = 0; i < mp->n_enum_type; i++)
    if (declare_enum(ld, mp->enum_type[i], m->d.name, pkg, file) < 0) return -1;
  return 0;
}

int pb_build_declare(pb_load *ld, const FileProto *fd, const pb_file *file) {
  const char *pkg = rt_pb_arena_strdup(&ld->s->arena, fd->package ? fd->package : "");
  if (!pkg) return OOM(ld);
  for (size_t i = 0; i < fd->n_message_type; i++)
    if (declare_msg(ld, fd->message_type[i], pkg, pkg, file) < 0) return -1;
  for (size_t i = 0; i < fd->n_enum_type; i++)
    if (declare_enum(ld, fd->enum_type[i], pkg, pkg, file) < 0) return -1;
  return 0;
}

/* ---- messages, pass 2: fields and layout ---------------------------------------------- */

/* descriptor.proto's FieldDescriptorProto.Type (1..18) to protobuf-c's type; -1 = groups.
 * `string` becomes BYTES: see the top of this file. */
static ProtobufCType c_type(int t) {
  static const int8_t map[19] = {
      -1, PROTOBUF_C_TYPE_DOUBLE, PROTOBUF_C_TYPE_FLOAT, PROTOBUF_C_TYPE_INT64,
      PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_FIXED64,
      PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_BYTES /* string */,
      -1 /* group */, PROTOBUF_C_TYPE_MESSAGE, PROTOBUF_C_TYPE_BYTES, PROTOBUF_C_TYPE_UINT32,
      PROTOBUF_C_TYPE_ENUM, PROTOBUF_C_TYPE_SFIXED32, PROTOBUF_C_TYPE_SFIXED64,
      PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_SINT64};
  return t >= 0 && t < 19 ? (ProtobufCType)map[t] : (ProtobufCType)-1;
}

/* Size of one value in a message struct (protobuf-c's sizeof_elt_in_repeated_array). */
size_t rt_pb_value_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 4;
  }
}

static size_t value_align(ProtobufCType t) {
  return t == PROTOBUF_C_TYPE_BYTES ? _Alignof(ProtobufCBinaryData) : rt_pb_value_size(t);
}

static unsigned align_to(unsigned off, size_t a) {
  return (unsigned)((off + a - 1) & ~(a - 1));
}

static bool packable(ProtobufCType t) {
  return t != PROTOBUF_C_TYPE_BYTES && t != PROTOBUF_C_TYPE_STRING &&
         t != PROTOBUF_C_TYPE_MESSAGE;
}

/* What one message's build needs while it runs. */
typedef struct {
  pb_load *ld;
  const pb_file *file;
  rt_pb_msg *m;
  const MsgProto *mp;
  ProtobufCFieldDescriptor *fields;  /* sorted by number */
  rt_pb_field_ext *ext;
  const FieldProto **fp;             /* the proto of each field, same order */
  int *real_oneof;                   /* oneof_decl index -> real oneof index or -1 */
} msg_build;

static int cmp_field_num(const void *a, const void *b) {
  int x = (*(const FieldProto *const *)a)->number, y = (*(const FieldProto *const *)b)->number;
  return x < y ? -1 : x > y;
}

static int resolve(msg_build *b, const FieldProto *f, ProtobufCFieldDescriptor *c) {
  if (c->type != PROTOBUF_C_TYPE_MESSAGE && c->type != PROTOBUF_C_TYPE_ENUM) return 0;
  const char *tn = f->type_name;
  if (!tn || tn[0] != '.')
    return pb_fail(b->ld, "%s: field %s.%s has an unresolved type name \"%s\"", b->file->name,
                   b->m->d.name, f->name, tn ? tn : "");
  const pb_sym *sym = pb_sym_find(b->ld->s, tn);
  pb_sym_kind want = c->type == PROTOBUF_C_TYPE_MESSAGE ? PB_SYM_MESSAGE : PB_SYM_ENUM;
  if (!sym || sym->kind != want)
    return pb_fail(b->ld, "%s: field %s.%s: type %s is not defined", b->file->name,
                   b->m->d.name, f->name, tn + 1);
  c->descriptor = sym->ptr;
  return 0;
}

/* Name, number, type, label and flags of field i (layout comes later). */
static int field_kind(msg_build *b, unsigned i) {
  const FieldProto *f = b->fp[i];
  ProtobufCFieldDescriptor *c = &b->fields[i];
  rt_pb_field_ext *x = &b->ext[i];
  const char *mn = b->m->d.name, *fn = b->file->name;
  bool p3 = b->file->proto3;
  if (!f->name || !f->has_number || f->number < 1 || f->number > (int)RT_PB_MAX_FIELD_NUMBER)
    return pb_fail(b->ld, "%s: message %s has a field without a valid name or number", fn, mn);
  if (!f->has_type || (int)c_type(f->type) < 0)
    return pb_fail(b->ld, "%s: field %s.%s: %s", fn, mn, f->name,
                   f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP
                       ? "groups are not supported" : "unknown type");
  if (!(c->name = rt_pb_arena_strdup(&b->ld->s->arena, f->name))) return OOM(b->ld);
  c->id = (uint32_t)f->number;
  c->type = c_type(f->type);
  x->oneof = -1;
  if (f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING)
    x->flags |= RT_PB_FX_STRING | (p3 ? RT_PB_FX_UTF8 : 0);
  if (resolve(b, f, c) < 0) return -1;
  int label = f->has_label ? (int)f->label
                           : GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
  bool in_oneof = f->has_oneof_index && !(f->has_proto3_optional && f->proto3_optional);
  if (in_oneof && (f->oneof_index < 0 || (size_t)f->oneof_index >= b->mp->n_oneof_decl))
    return pb_fail(b->ld, "%s: field %s.%s: bad oneof index", fn, mn, f->name);
  if (label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
    c->label = PROTOBUF_C_LABEL_REPEATED;
    bool packed = f->options && f->options->has_packed ? f->options->packed : p3;
    if (packed && packable(c->type)) c->flags |= PROTOBUF_C_FIELD_FLAG_PACKED;
    if (c->type == PROTOBUF_C_TYPE_MESSAGE && ((const rt_pb_msg *)c->descriptor)->map_entry)
      x->flags |= RT_PB_FX_MAP;
  } else if (label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED) {
    c->label = PROTOBUF_C_LABEL_REQUIRED;
    b->m->has_required = true;
  } else if (in_oneof) {
    c->label = p3 ? PROTOBUF_C_LABEL_NONE : PROTOBUF_C_LABEL_OPTIONAL;
    c->flags |= PROTOBUF_C_FIELD_FLAG_ONEOF;
    x->oneof = (int16_t)b->real_oneof[f->oneof_index];
  } else if (c->type == PROTOBUF_C_TYPE_MESSAGE) {
    c->label = PROTOBUF_C_LABEL_OPTIONAL;  /* presence is the pointer: no has_ */
  } else if (!p3 || (f->has_proto3_optional && f->proto3_optional)) {
    c->label = PROTOBUF_C_LABEL_OPTIONAL;
    x->flags |= RT_PB_FX_PRESENCE;
  } else {
    c->label = PROTOBUF_C_LABEL_NONE;
  }
  if (c->type == PROTOBUF_C_TYPE_MESSAGE && ((const rt_pb_msg *)c->descriptor)->map_entry &&
      !(x->flags & RT_PB_FX_MAP))
    return pb_fail(b->ld, "%s: field %s.%s uses a map entry type as a plain message", fn, mn,
                   f->name);
  return 0;
}

/* Offsets: plain fields first in number order, then per oneof a case word and one slot as
 * large as its largest member. Offset 0 holds ProtobufCMessage, so a quantifier offset of 0
 * still means "none" as protobuf-c expects. */
static void layout(msg_build *b, unsigned n) {
  unsigned off = sizeof(ProtobufCMessage);
  for (unsigned i = 0; i < n; i++) {
    ProtobufCFieldDescriptor *c = &b->fields[i];
    if (b->ext[i].oneof >= 0) continue;
    if (c->label == PROTOBUF_C_LABEL_REPEATED) {
      off = align_to(off, sizeof(size_t));
      c->quantifier_offset = off;
      off += sizeof(size_t);
      off = align_to(off, sizeof(void *));
      c->offset = off;
      off += sizeof(void *);
      continue;
    }
    if (c->label == PROTOBUF_C_LABEL_OPTIONAL && c->type != PROTOBUF_C_TYPE_MESSAGE) {
      off = align_to(off, sizeof(protobuf_c_boolean));
      c->quantifier_offset = off;
      off += sizeof(protobuf_c_boolean);
    }
    off = align_to(off, value_align(c->type));
    c->offset = off;
    off += (unsigned)rt_pb_value_size(c->type);
  }
  for (unsigned k = 0; k < b->m->n_oneofs; k++) {
    size_t size = 0, al = 4;
    for (unsigned i = 0; i < n; i++)
      if (b->ext[i].oneof == (int)k) {
        if (rt_pb_value_size(b->fields[i].type) > size) size = rt_pb_value_size(b->fields[i].type);
        if (value_align(b->fields[i].type) > al) al = value_align(b->fields[i].type);
      }
    off = align_to(off, sizeof(uint32_t));
    unsigned case_off = off;
    off = align_to(off + sizeof(uint32_t), al);
    for (unsigned i = 0; i < n; i++)
      if (b->ext[i].oneof == (int)k) {
        b->fields[i].quantifier_offset = case_off;
        b->fields[i].offset = off;
      }
    off += (unsigned)size;
  }
  b->m->d.sizeof_message = align_to(off, 8);
}

static int oneofs(msg_build *b) {
  const MsgProto *mp = b->mp;
  rt_pb_msg *m = b->m;
  const char **names = ALLOC(b->ld, (mp->n_oneof_decl + 1) * sizeof(char *));
  if (!names || !b->real_oneof) return OOM(b->ld);
  /* proto3 `optional` makes a synthetic oneof of one field: not a real one */
  for (size_t k = 0; k < mp->n_oneof_decl; k++) {
    b->real_oneof[k] = -1;
    for (size_t i = 0; i < mp->n_field; i++) {
      const FieldProto *f = mp->field[i];
      if (f->has_oneof_index && f->oneof_index == (int)k &&
          !(f->has_proto3_optional && f->proto3_optional)) {
        const char *nm = mp->oneof_decl[k]->name ? mp->oneof_decl[k]->name : "?";
        if (!(names[m->n_oneofs] = rt_pb_arena_strdup(&b->ld->s->arena, nm))) return OOM(b->ld);
        b->real_oneof[k] = (int)m->n_oneofs++;
        break;
      }
    }
  }
  m->oneof_names = names;
  return 0;
}

static int check_map_entry(msg_build *b, unsigned n) {
  if (!b->m->map_entry) return 0;
  if (n != 2 || b->fields[0].id != 1 || b->fields[1].id != 2 ||
      b->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
      b->fields[1].label == PROTOBUF_C_LABEL_REPEATED)
    return pb_fail(b->ld, "%s: map entry %s must have fields key = 1 and value = 2",
                   b->file->name, b->m->d.name);
  switch (b->fields[0].type) {
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_ENUM:
      return pb_fail(b->ld, "%s: map entry %s has a key type maps do not allow",
                     b->file->name, b->m->d.name);
    case PROTOBUF_C_TYPE_BYTES:
      if (!(b->ext[0].flags & RT_PB_FX_STRING))
        return pb_fail(b->ld, "%s: map entry %s has a bytes key", b->file->name, b->m->d.name);
      break;
    default: break;
  }
  return 0;
}

typedef struct {
  const char *name;
  unsigned index;
} name_index;

static int cmp_name_index(const void *a, const void *b) {
  return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

static int by_name(msg_build *b, unsigned n) {
  unsigned *idx = ALLOC(b->ld, (n + 1) * sizeof *idx);
  name_index *t = malloc((n + 1) * sizeof *t);
  if (!idx || !t) {
    free(t);
    return OOM(b->ld);
  }
  for (unsigned i = 0; i < n; i++) t[i] = (name_index){b->fields[i].name, i};
  qsort(t, n, sizeof *t, cmp_name_index);
  for (unsigned i = 0; i < n; i++) idx[i] = t[i].index;
  free(t);
  for (unsigned i = 1; i < n; i++)
    if (strcmp(b->fields[idx[i]].name, b->fields[idx[i - 1]].name) == 0)
      return pb_fail(b->ld, "%s: message %s has two fields named %s", b->file->name,
                     b->m->d.name, b->fields[idx[i]].name);
  b->m->d.fields_sorted_by_name = idx;
  return 0;
}

static int build_fields(msg_build *b) {
  const MsgProto *mp = b->mp;
  unsigned n = (unsigned)mp->n_field;
  int rc = -1, *nums = NULL;
  b->fp = malloc((n + 1) * sizeof *b->fp);
  b->real_oneof = malloc((mp->n_oneof_decl + 1) * sizeof(int));
  b->fields = ALLOC(b->ld, (n + 1) * sizeof *b->fields);
  b->ext = ALLOC(b->ld, (n + 1) * sizeof *b->ext);
  nums = malloc((n + 1) * sizeof *nums);
  if (!b->fp || !b->fields || !b->ext || !nums) {
    OOM(b->ld);
    goto out;
  }
  for (unsigned i = 0; i < n; i++) b->fp[i] = mp->field[i];
  qsort(b->fp, n, sizeof *b->fp, cmp_field_num);
  if (oneofs(b) < 0) goto out;
  for (unsigned i = 0; i < n; i++) {
    if (field_kind(b, i) < 0) goto out;
    nums[i] = (int)b->fields[i].id;
    if (i && nums[i] == nums[i - 1]) {
      pb_fail(b->ld, "%s: message %s uses field number %d twice", b->file->name, b->m->d.name,
              nums[i]);
      goto out;
    }
    if (strcmp(b->fields[i].name, "_unknown") == 0) b->m->keeps_unknown = false;
  }
  if (check_map_entry(b, n) < 0 || by_name(b, n) < 0) goto out;
  layout(b, n);
  b->m->d.n_fields = n;
  b->m->d.fields = b->fields;
  b->m->ext = b->ext;
  if (!(b->m->d.field_ranges = make_ranges(b->ld, nums, n, &b->m->d.n_field_ranges))) {
    OOM(b->ld);
    goto out;
  }
  rc = 0;
out:
  free(b->fp);
  free(b->real_oneof);
  free(nums);
  return rc;
}

static int define_msg(pb_load *ld, const MsgProto *mp, const char *scope, const pb_file *file) {
  char *full = rt_pb_arena_join(&ld->s->arena, scope, '.', mp->name);
  if (!full) return OOM(ld);
  const pb_sym *sym = pb_sym_find(ld->s, full);
  if (!sym || sym->kind != PB_SYM_MESSAGE)
    return pb_fail(ld, "%s: lost message %s", file->name, full);
  msg_build b = {.ld = ld, .file = file, .m = sym->ptr, .mp = mp};
  b.m->keeps_unknown = true;
  if (build_fields(&b) < 0) return -1;
  for (size_t i = 0; i < mp->n_nested_type; i++)
    if (define_msg(ld, mp->nested_type[i], full, file) < 0) return -1;
  return 0;
}

/* ---- services ------------------------------------------------------------------------- */

static const ProtobufCMessageDescriptor *method_type(pb_load *ld, const char *tn,
                                                     const char *method, const char *file) {
  const pb_sym *sym = tn && tn[0] == '.' ? pb_sym_find(ld->s, tn) : NULL;
  if (!sym || sym->kind != PB_SYM_MESSAGE) {
    pb_fail(ld, "%s: method %s: message type %s is not defined", file, method, tn ? tn : "");
    return NULL;
  }
  return &((const rt_pb_msg *)sym->ptr)->d;
}

static int define_service(pb_load *ld, const Google__Protobuf__ServiceDescriptorProto *sp,
                          const char *pkg, const pb_file *file) {
  rt_pb_arena *a = &ld->s->arena;
  if (!sp->name) return pb_fail(ld, "%s: a service has no name", file->name);
  rt_pb_service *svc = ALLOC(ld, sizeof *svc);
  rt_pb_method *ms = ALLOC(ld, (sp->n_method + 1) * sizeof *ms);
  if (!svc || !ms || !(svc->name = rt_pb_arena_join(a, pkg, '.', sp->name))) return OOM(ld);
  svc->file = file->name;
  for (size_t i = 0; i < sp->n_method; i++) {
    const Google__Protobuf__MethodDescriptorProto *mp = sp->method[i];
    rt_pb_method *m = &ms[i];
    if (!mp->name) return pb_fail(ld, "%s: a method of %s has no name", file->name, svc->name);
    if (!(m->name = rt_pb_arena_strdup(a, mp->name)) ||
        !(m->full_name = rt_pb_arena_join(a, svc->name, '.', mp->name)))
      return OOM(ld);
    size_t ls = strlen(svc->name), lm = strlen(mp->name);
    char *path = ALLOC(ld, ls + lm + 3);
    if (!path) return OOM(ld);
    path[0] = '/';
    memcpy(path + 1, svc->name, ls);
    path[ls + 1] = '/';
    memcpy(path + ls + 2, mp->name, lm + 1);
    m->path = path;
    if (!(m->input = method_type(ld, mp->input_type, m->full_name, file->name)) ||
        !(m->output = method_type(ld, mp->output_type, m->full_name, file->name)))
      return -1;
    m->client_streaming = mp->has_client_streaming && mp->client_streaming;
    m->server_streaming = mp->has_server_streaming && mp->server_streaming;
    m->service = svc;
    if (pb_sym_add(ld, m->full_name, PB_SYM_METHOD, m, file->name) < 0 ||
        pb_sym_add(ld, m->path, PB_SYM_METHOD, m, file->name) < 0)
      return -1;
  }
  svc->n_methods = sp->n_method;
  svc->methods = ms;
  if (pb_sym_add(ld, svc->name, PB_SYM_SERVICE, svc, file->name) < 0) return -1;
  if (ld->n_svcs == ld->cap_svcs) {
    size_t cap = ld->cap_svcs ? ld->cap_svcs * 2 : 4;
    rt_pb_service **p = realloc(ld->svcs, cap * sizeof *p);
    if (!p) return OOM(ld);
    ld->svcs = p;
    ld->cap_svcs = cap;
  }
  ld->svcs[ld->n_svcs++] = svc;
  return 0;
}

int pb_build_define(pb_load *ld, const FileProto *fd, const pb_file *file) {
  const char *pkg = fd->package ? fd->package : "";
  for (size_t i = 0; i < fd->n_message_type; i++)
    if (define_msg(ld, fd->message_type[i], pkg, file) < 0) return -1;
  for (size_t i = 0; i < fd->n_service; i++)
    if (define_service(ld, fd->service[i], pkg, file) < 0) return -1;
  return 0;
}
