/* Unit tests for outgoing connections (core/net/dial.c): a connect that succeeds hands
 * over an rt_conn, a refused one and an unresolvable name report why, from the loop and
 * never from inside rt_dial_start; one nobody answers times out and says after how long;
 * a cancelled dial says nothing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/dial.h"
#include "net/server_int.h"
#include "tnet.h"

typedef struct result {
  int calls;
  rt_conn *c;
  char err[256];
} result;

static void on_dialed(void *ud, rt_conn *c, const char *err) {
  result *r = ud;
  r->calls++;
  r->c = c;
  snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 4), 0);
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

static void wait_calls(tsrv *t, result *r) {
  for (int i = 0; i < 2000 && !r->calls; i++) {
    tloop_spin(t->loop, 1);
    usleep(500);
  }
}

static void test_connects(void **state) {
  tsrv t;
  assert_int_equal(tsrv_start(&t, NULL), 0);
  int port, lfd = listener(&port);
  result r = {0};
  assert_non_null(rt_dial_start(t.srv, "127.0.0.1", port, 2, on_dialed, &r));
  assert_int_equal(r.calls, 0);  /* never from inside the call */
  wait_calls(&t, &r);
  assert_int_equal(r.calls, 1);
  assert_non_null(r.c);
  assert_string_equal(r.err, "");
  assert_non_null(strstr(r.c->peer, "127.0.0.1:"));
  rt_conn_close(r.c);
  close(lfd);
  tsrv_stop(&t);
}

static void test_refused(void **state) {
  tsrv t;
  assert_int_equal(tsrv_start(&t, NULL), 0);
  int port, lfd = listener(&port);
  close(lfd);  /* nothing listens there now */
  result r = {0};
  assert_non_null(rt_dial_start(t.srv, "127.0.0.1", port, 2, on_dialed, &r));
  assert_int_equal(r.calls, 0);
  wait_calls(&t, &r);
  assert_int_equal(r.calls, 1);
  assert_null(r.c);
  assert_non_null(strstr(r.err, "refused"));
  tsrv_stop(&t);
}

/* A listener whose accept queue is full: Linux drops further SYNs, so a connect to it
 * neither succeeds nor fails until its deadline. */
static void test_times_out(void **state) {
  tsrv t;
  assert_int_equal(tsrv_start(&t, NULL), 0);
  int port, lfd = listener(&port);
  assert_int_equal(listen(lfd, 0), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons(port)};
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  usleep(50000);  /* let the handshakes that can complete fill the queue */
  result r = {0};
  assert_non_null(rt_dial_start(t.srv, "127.0.0.1", port, 0.25, on_dialed, &r));
  wait_calls(&t, &r);
  assert_int_equal(r.calls, 1);
  assert_null(r.c);
  assert_non_null(strstr(r.err, "timed out after 0.25 s"));
  for (int i = 0; i < 4; i++) close(fill[i]);
  close(lfd);
  tsrv_stop(&t);
}

static void test_bad_name_and_cancel(void **state) {
  tsrv t;
  assert_int_equal(tsrv_start(&t, NULL), 0);
  result r = {0};
  assert_non_null(rt_dial_start(t.srv, "no such host.invalid", 1, 2, on_dialed, &r));
  assert_int_equal(r.calls, 0);
  wait_calls(&t, &r);
  assert_int_equal(r.calls, 1);
  assert_non_null(strstr(r.err, "cannot resolve"));
  int port, lfd = listener(&port);
  result q = {0};
  rt_dial *d = rt_dial_start(t.srv, "127.0.0.1", port, 2, on_dialed, &q);
  rt_dial_cancel(d);
  for (int i = 0; i < 50; i++) tloop_spin(t.loop, 1);
  assert_int_equal(q.calls, 0);
  close(lfd);
  tsrv_stop(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connects),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_times_out),
      cmocka_unit_test(test_bad_name_and_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
