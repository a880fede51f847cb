/* Inside the schema: shared by pb_schema.c (files, symbols, lookups), pb_build.c (protobuf-c
 * tables from descriptor protos) and pb_protoc.c (running protoc). */
#ifndef RT_PB_SCHEMA_INT_H
#define RT_PB_SCHEMA_INT_H

#include "descriptor.pb-c.h"
#include "base/map.h"
#include "pb_schema.h"
#include "pb_wire.h"

typedef enum { PB_SYM_MESSAGE, PB_SYM_ENUM, PB_SYM_SERVICE, PB_SYM_METHOD } pb_sym_kind;

typedef struct pb_sym {
  pb_sym_kind kind;
  void *ptr;          /* rt_pb_msg, ProtobufCEnumDescriptor, rt_pb_service, rt_pb_method */
  const char *file;
} pb_sym;

typedef struct pb_file {
  const char *name;
  const uint8_t *bytes;   /* serialized FileDescriptorProto */
  size_t len;
  const char **deps;
  size_t n_deps;
  bool proto3;
} pb_file;

struct rt_pb_schema {
  rt_pb_arena arena;      /* every descriptor, name and file lives here */
  rt_map syms;            /* full name or method path -> pb_sym */
  rt_map files;           /* file name -> pb_file */
  pb_file **file_list;
  size_t n_files, cap_files;
  rt_pb_service **svc_list;
  size_t n_svcs, cap_svcs;
  char *protoc;
};

/* One load in progress: what to undo if it fails. */
typedef struct pb_load {
  rt_pb_schema *s;
  char *err;
  size_t errlen;
  const char **added;     /* keys put into s->syms */
  size_t n_added, cap_added;
  rt_pb_service **svcs;   /* services built, appended to s->svc_list on success */
  size_t n_svcs, cap_svcs;
} pb_load;

/* rt_pb_msg.d.reserved1 points here: how rt_pb_msg_of knows a descriptor is ours. */
extern const char pb_msg_marker[];

int pb_fail(pb_load *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pb_sym_add(pb_load *ld, const char *name, pb_sym_kind kind, void *ptr, const char *file);
const pb_sym *pb_sym_find(const rt_pb_schema *s, const char *name);

/* Pass 1: allocate every message and enum of a file and register the names (so that pass 2
 * can resolve references in any order). Pass 2: fields, layouts, services. */
int pb_build_declare(pb_load *ld, const Google__Protobuf__FileDescriptorProto *fd,
                     const pb_file *file);
int pb_build_define(pb_load *ld, const Google__Protobuf__FileDescriptorProto *fd,
                    const pb_file *file);

#endif
