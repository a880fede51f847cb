/*
 * Protobuf schemas loaded at run time.
 *
 * A schema holds every file an app named: .proto files compiled by protoc into a descriptor
 * set when the script starts, or descriptor sets made beforehand. From each message and enum
 * it builds protobuf-c descriptor tables (names, numbers, labels, types, offsets into a
 * struct layout computed here), so protobuf_c_message_pack/unpack work on messages no C
 * code was generated for. It also indexes services and methods for gRPC, and keeps the
 * serialized FileDescriptorProto of each file for server reflection.
 *
 *   rt_pb_schema *s = rt_pb_schema_new();
 *   if (rt_pb_schema_load(s, "proto/user.proto", NULL, 0, err, sizeof err) < 0) ...
 *   const rt_pb_method *m = rt_pb_schema_method(s, "/user.UserService/GetUser");
 *   ... m->input, m->output are ProtobufCMessageDescriptor * for pb_lua.h ...
 *   rt_pb_schema_free(s);
 *
 * Every pointer the schema hands out lives until rt_pb_schema_free; loading more files never
 * moves what was loaded before. A failed load leaves the schema as it was.
 */
#ifndef RT_PB_SCHEMA_H
#define RT_PB_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct rt_pb_schema rt_pb_schema;

#define RT_PB_MAX_DESCRIPTOR_SET (64u << 20) /* bytes of one descriptor set file */

typedef struct rt_pb_service rt_pb_service;

typedef struct rt_pb_method {
  const char *name;      /* "GetUser" */
  const char *full_name; /* "user.UserService.GetUser" */
  const char *path;      /* "/user.UserService/GetUser", the HTTP/2 :path of a call */
  const ProtobufCMessageDescriptor *input, *output;
  bool client_streaming, server_streaming;
  const rt_pb_service *service;
} rt_pb_method;

struct rt_pb_service {
  const char *name;      /* full name, "user.UserService" */
  const char *file;      /* file that defines it, "user.proto" */
  size_t n_methods;
  const rt_pb_method *methods; /* in declaration order */
};

rt_pb_schema *rt_pb_schema_new(void);
void rt_pb_schema_free(rt_pb_schema *s);

/* protoc to run for .proto files; default "protoc", looked up in PATH. Copied. */
int rt_pb_schema_set_protoc(rt_pb_schema *s, const char *protoc);

/* Compiles a .proto file (and its imports) with protoc and loads the result. include_dirs
 * are protoc's -I paths and must contain the file; with none, the file's own directory is
 * used. A syntax error comes back as protoc's first line, "user.proto:3:5: Expected ...". */
int rt_pb_schema_load_proto(rt_pb_schema *s, const char *path, const char *const *include_dirs,
                            size_t n_dirs, char *err, size_t errlen);
/* Loads a descriptor set file made beforehand (protoc --include_imports -o x.pb ...). */
int rt_pb_schema_load_file(rt_pb_schema *s, const char *path, char *err, size_t errlen);
/* Either of the two above: a path ending in ".proto" goes through protoc, anything else
 * (.pb, .desc, .protoset, .bin) is read as a descriptor set. */
int rt_pb_schema_load(rt_pb_schema *s, const char *path, const char *const *include_dirs,
                      size_t n_dirs, char *err, size_t errlen);
/* Loads a serialized google.protobuf.FileDescriptorSet. Files already loaded with the same
 * bytes are skipped (two .proto files importing one common file); a file loaded before with
 * different content, a symbol defined twice or an import that is missing is an error. */
int rt_pb_schema_load_descriptor_set(rt_pb_schema *s, const uint8_t *data, size_t len,
                                     char *err, size_t errlen);

/* Lookups by full name, with or without a leading dot ("user.User", ".user.User"). */
const ProtobufCMessageDescriptor *rt_pb_schema_message(const rt_pb_schema *s, const char *name);
const ProtobufCEnumDescriptor *rt_pb_schema_enum(const rt_pb_schema *s, const char *name);
const rt_pb_service *rt_pb_schema_service(const rt_pb_schema *s, const char *name);
/* By path "/pkg.Service/Method" (what a gRPC request carries) or full name
 * "pkg.Service.Method". */
const rt_pb_method *rt_pb_schema_method(const rt_pb_schema *s, const char *path_or_name);
const rt_pb_method *rt_pb_service_method(const rt_pb_service *svc, const char *name);
size_t rt_pb_schema_n_services(const rt_pb_schema *s);
const rt_pb_service *rt_pb_schema_service_at(const rt_pb_schema *s, size_t i);

/* For server reflection: the serialized FileDescriptorProto of a file, exactly as the
 * descriptor set carried it; the file that defines a symbol (message, enum, service or
 * method full name); and a file's direct imports. NULL / 0 when unknown. */
const uint8_t *rt_pb_schema_file_bytes(const rt_pb_schema *s, const char *file, size_t *len);
const char *rt_pb_schema_symbol_file(const rt_pb_schema *s, const char *symbol);
size_t rt_pb_schema_file_deps(const rt_pb_schema *s, const char *file,
                              const char *const **deps);
size_t rt_pb_schema_n_files(const rt_pb_schema *s);
const char *rt_pb_schema_file_at(const rt_pb_schema *s, size_t i);

/* ---- what pb_lua needs beyond protobuf-c's tables --------------------------------------
 * Every message descriptor the schema builds is the first member of an rt_pb_msg, so code
 * holding the ProtobufCMessageDescriptor can reach the extra facts with rt_pb_msg_of. */

enum {
  RT_PB_FX_STRING = 1,     /* proto `string`: kept as BYTES inside (embedded NULs survive) */
  RT_PB_FX_UTF8 = 2,       /* proto3 string: must be valid UTF-8 both ways */
  RT_PB_FX_MAP = 4,        /* repeated map entry: a Lua table keyed by the entry's key */
  RT_PB_FX_PRESENCE = 8,   /* absent on decode unless set (proto2 optional, proto3 optional) */
};

typedef struct rt_pb_field_ext {
  uint8_t flags;           /* RT_PB_FX_* */
  int16_t oneof;           /* index into oneof_names, or -1 */
} rt_pb_field_ext;

typedef struct rt_pb_msg {
  ProtobufCMessageDescriptor d;   /* must stay first */
  const rt_pb_field_ext *ext;     /* parallel to d.fields (sorted by number) */
  unsigned n_oneofs;
  const char *const *oneof_names;
  const char *file;
  bool map_entry;
  bool has_required;              /* proto2 required fields to check on encode */
  bool keeps_unknown;             /* no field is called "_unknown" */
} rt_pb_msg;

/* NULL when d was not built by an rt_pb_schema (a protoc-c generated one, say). */
const rt_pb_msg *rt_pb_msg_of(const ProtobufCMessageDescriptor *d);

#endif
