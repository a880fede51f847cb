/* Test plumbing for modules that need a server, a loop and sockets: a real rt_server on
 * its own libev loop, connections over socketpair(), a client side that writes raw bytes
 * and reads what the server sent, and WebSocket client frames (masked) and their parsing.
 *
 * Tests run from the repository root, so the Lua side is found in "lua". */
#ifndef TEST_TNET_H
#define TEST_TNET_H

#include <stddef.h>
#include <stdint.h>

#include "rtserver.h"

struct ev_loop;
typedef struct rt_conn rt_conn;

typedef struct tsrv {
  struct ev_loop *loop;
  rt_server *srv;
  char err[512];
} tsrv;

/* A config with lua_dir = "lua" and logging off (RT_TEST_LOG=1 in the environment turns
 * debug logging on); change fields before tsrv_start. */
void tsrv_config(rt_config *cfg);
/* Returns 0, or -1 with t->err filled. cfg NULL = tsrv_config defaults. */
int tsrv_start(tsrv *t, const rt_config *cfg);
void tsrv_stop(tsrv *t);
/* Writes source to a fresh file under /tmp and loads it as the app. The file is removed
 * again. Returns rt_server_load_app's result; the error is in t->err. */
int tsrv_load_source(tsrv *t, const char *source);
/* Writes source to a new temp file and returns its path (static storage, overwritten by
 * the next call). name_hint goes into the file name. */
const char *tsrv_temp_script(const char *name_hint, const char *source);

/* A connected, non-blocking pair: *server_fd for rt_conn_new, *client_fd for the test. */
int tsock_pair(int *server_fd, int *client_fd);
/* Shrinks a socket's buffers so a peer that does not read fills them quickly. */
void tsock_small_buffers(int fd, int bytes);
/* Runs the loop without blocking, n times. */
void tloop_spin(struct ev_loop *loop, int n);
/* Writes everything to a non-blocking fd, spinning the loop while it is full. Returns 0,
 * -2 when the other side is closed, -1 on other errors or after 5 s. */
int tclient_write(struct ev_loop *loop, int fd, const void *p, size_t n);
/* Spins the loop and reads fd until `want` bytes arrived, EOF, or `timeout` seconds.
 * Returns the bytes read; *eof says the server side closed. */
size_t tclient_read(struct ev_loop *loop, int fd, uint8_t *out, size_t want, double timeout, int *eof);
/* Reads until "\r\n\r\n" (an HTTP response head) and returns its length, or 0. */
size_t tclient_read_head(struct ev_loop *loop, int fd, char *out, size_t cap, double timeout);

/* A connection on a fresh socketpair that speaks HTTP/1.1 as an accepted one would.
 * Returns the conn; *client_fd is the test's end. */
rt_conn *tconn_http(tsrv *t, int *client_fd);
/* Like tconn_http, then sends an upgrade request for path and reads the 101. Returns NULL
 * (and fails) if the upgrade does not come back as 101. */
rt_conn *tconn_ws(tsrv *t, const char *path, int *client_fd);

/* WebSocket frames as a client sends them. mask NULL = unmasked (a protocol error from a
 * client). Returns the frame length; out needs len + 14 bytes. */
size_t tws_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                 const uint8_t mask[4]);
/* A default mask for tests. */
extern const uint8_t tws_mask[4];

typedef struct tws_in {
  int fin, opcode, masked;
  size_t len;
  const uint8_t *payload;  /* points into the buffer given to tws_parse */
} tws_in;
/* Parses one server frame from p; returns its total length, or 0 if incomplete. */
size_t tws_parse(const uint8_t *p, size_t n, tws_in *f);
/* Reads one whole frame from the server into buf (cap bytes); returns 1 or 0 on timeout /
 * EOF. f->payload points into buf. */
int tws_read_frame(struct ev_loop *loop, int fd, uint8_t *buf, size_t cap, tws_in *f, double timeout);
/* A close frame's status code, or -1 if it carries none. */
int tws_close_code(const tws_in *f);

#endif
