/* The standard gRPC services every app gets: grpc.health.v1.Health and server reflection
 * (grpc.reflection.v1 and v1alpha, which share one wire format).
 *
 * These are pure functions from request bytes to reply bytes, answered from the schemas
 * the app loaded, so tools like grpcurl can list and describe its services with no .proto
 * files of their own. The Lua side (rt_grpc.lua) runs them as ordinary handlers. */
#ifndef RT_GRPC_BUILTIN_H
#define RT_GRPC_BUILTIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "pb/pb_schema.h"

#define RT_GRPC_REFLECT_MAX_FILES 256 /* files in one reply (a file and its imports) */

/* Answers one ServerReflectionRequest. services are the names ListServices gives; the
 * schemas are searched in order for files and symbols (the first holding a name wins).
 * Unknown names become an error_response (NOT_FOUND), as the protocol wants; only bytes
 * that are no ServerReflectionRequest at all return -1 with err. */
int rt_grpc_reflection_answer(const rt_pb_schema *const *schemas, size_t nschemas,
                              const char *const *services, size_t nservices,
                              const uint8_t *req, size_t len, rt_buf *out, char *err,
                              size_t errlen);

/* HealthCheckRequest -> its service name (NUL-terminated in name). Returns the length, or
 * -1 when the bytes are not one or the name does not fit. */
int rt_grpc_health_request(const uint8_t *req, size_t len, char *name, size_t cap);
/* HealthCheckResponse{status} into out; returns its length (at most 11 bytes). */
size_t rt_grpc_health_response(int status, uint8_t out[16]);

#endif
