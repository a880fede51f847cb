/* Loading schemas from disk: descriptor set files, and .proto files compiled by protoc.
 *
 * protoc runs once per file when a script starts (or reloads): posix_spawn, no shell, its
 * stderr captured so a mistake in a .proto comes back as protoc's own "file:line:col: ..."
 * line. The descriptor set goes through a temporary file that is removed afterwards. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */
#endif
#include "pb_schema_int.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_STDERR 16384

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int rt_pb_schema_set_protoc(rt_pb_schema *s, const char *protoc) {
  char *p = protoc ? strdup(protoc) : NULL;
  if (protoc && !p) return -1;
  free(s->protoc);
  s->protoc = p;
  return 0;
}

/* Reads a whole regular file of at most max bytes into malloc'd memory. */
static uint8_t *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) {
    fail(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
    fail(err, errlen, "%s: not a regular file of at most %zu bytes", path, max);
    close(fd);
    return NULL;
  }
  size_t n = (size_t)st.st_size, got = 0;
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    fail(err, errlen, "out of memory");
    close(fd);
    return NULL;
  }
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != n) {
    free(buf);
    fail(err, errlen, "%s: short read", path);
    return NULL;
  }
  *len = n;
  return buf;
}

int rt_pb_schema_load_file(rt_pb_schema *s, const char *path, char *err, size_t errlen) {
  size_t len;
  uint8_t *buf = read_file(path, RT_PB_MAX_DESCRIPTOR_SET, &len, err, errlen);
  if (!buf) return -1;
  char msg[512];
  int rc = rt_pb_schema_load_descriptor_set(s, buf, len, msg, sizeof msg);
  free(buf);
  if (rc < 0) fail(err, errlen, "%s: %s", path, msg);
  return rc;
}

/* First non-empty line of protoc's stderr, which names file:line:column. */
static void first_line(const char *text, char *out, size_t outlen) {
  while (*text == '\n' || *text == '\r' || *text == ' ') text++;
  size_t n = strcspn(text, "\r\n");
  if (n >= outlen) n = outlen - 1;
  memcpy(out, text, n);
  out[n] = 0;
}

typedef struct {
  const char **argv;
  size_t argc;
  char *owned[3];
} protoc_args;

static int build_args(protoc_args *a, const char *protoc, const char *out, const char *path,
                      const char *const *dirs, size_t n_dirs) {
  a->argv = calloc(2 * n_dirs + 8, sizeof(char *));
  a->owned[0] = malloc(strlen(out) + 32);
  if (!a->argv || !a->owned[0]) return -1;
  sprintf(a->owned[0], "--descriptor_set_out=%s", out);
  a->argv[a->argc++] = protoc;
  a->argv[a->argc++] = "--include_imports";
  a->argv[a->argc++] = a->owned[0];
  if (n_dirs == 0) {
    /* no include path given: the file's own directory */
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    if (!(a->owned[1] = malloc(dl + 1))) return -1;
    memcpy(a->owned[1], slash ? path : ".", dl);
    a->owned[1][dl] = 0;
    if (!dl) strcpy(a->owned[1], "/");
    a->argv[a->argc++] = "-I";
    a->argv[a->argc++] = a->owned[1];
  }
  for (size_t i = 0; i < n_dirs; i++) {
    a->argv[a->argc++] = "-I";
    a->argv[a->argc++] = dirs[i];
  }
  if (path[0] == '-') {  /* never let a file name pass for an option */
    if (!(a->owned[2] = malloc(strlen(path) + 3))) return -1;
    sprintf(a->owned[2], "./%s", path);
    path = a->owned[2];
  }
  a->argv[a->argc++] = path;
  a->argv[a->argc] = NULL;
  return 0;
}

static void free_args(protoc_args *a) {
  free(a->argv);
  for (int i = 0; i < 3; i++) free(a->owned[i]);
}

/* Runs protoc with stdin and stdout on /dev/null and stderr into errbuf. Returns the exit
 * status, or -1 if it could not run. */
static int run_protoc(const char *const *argv, char *errbuf, size_t errcap, char *err,
                      size_t errlen) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return fail(err, errlen, "pipe: %s", strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);  /* sockets without CLOEXEC stay here */
#endif
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  if (rc != 0) {
    close(pfd[0]);
    return fail(err, errlen, "cannot run %s: %s (Debian package protobuf-compiler)", argv[0],
                strerror(rc));
  }
  size_t n = 0;
  for (;;) {
    char tmp[4096];
    ssize_t r = read(pfd[0], tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t take = (size_t)r < errcap - 1 - n ? (size_t)r : errcap - 1 - n;
    memcpy(errbuf + n, tmp, take);  /* the rest is drained so protoc never blocks */
    n += take;
  }
  errbuf[n] = 0;
  close(pfd[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno == EINTR) continue;
    /* ECHILD: SIGCHLD is ignored and the child was reaped for us; judge by stderr */
    return n ? 1 : 0;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int rt_pb_schema_load_proto(rt_pb_schema *s, const char *path, const char *const *include_dirs,
                            size_t n_dirs, char *err, size_t errlen) {
  const char *tmpdir = getenv("TMPDIR");
  char out[4096];
  if (!tmpdir || !*tmpdir) tmpdir = "/tmp";
  if ((size_t)snprintf(out, sizeof out, "%s/rtserver-pb-XXXXXX", tmpdir) >= sizeof out)
    return fail(err, errlen, "TMPDIR too long");
  int fd = mkstemp(out);
  if (fd < 0) return fail(err, errlen, "mkstemp %s: %s", out, strerror(errno));
  close(fd);

  protoc_args a = {0};
  char *errbuf = malloc(MAX_STDERR);
  int rc = -1;
  if (!errbuf || build_args(&a, s->protoc ? s->protoc : "protoc", out, path, include_dirs,
                            n_dirs) < 0) {
    fail(err, errlen, "out of memory");
    goto done;
  }
  int st = run_protoc(a.argv, errbuf, MAX_STDERR, err, errlen);
  if (st < 0) goto done;
  if (st != 0) {
    char line[400];
    first_line(errbuf, line, sizeof line);
    fail(err, errlen, "protoc: %s", *line ? line : "failed without a message");
    goto done;
  }
  size_t len;
  uint8_t *buf = read_file(out, RT_PB_MAX_DESCRIPTOR_SET, &len, err, errlen);
  if (!buf) goto done;
  char msg[512];
  rc = rt_pb_schema_load_descriptor_set(s, buf, len, msg, sizeof msg);
  if (rc < 0) fail(err, errlen, "%s: %s", path, msg);
  free(buf);
done:
  unlink(out);
  free(errbuf);
  free_args(&a);
  return rc;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t ls = strlen(s), lx = strlen(suffix);
  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

int rt_pb_schema_load(rt_pb_schema *s, const char *path, const char *const *include_dirs,
                      size_t n_dirs, char *err, size_t errlen) {
  if (ends_with(path, ".proto"))
    return rt_pb_schema_load_proto(s, path, include_dirs, n_dirs, err, errlen);
  return rt_pb_schema_load_file(s, path, err, errlen);
}
