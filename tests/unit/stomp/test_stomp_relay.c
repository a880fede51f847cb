/* Unit tests for the broker relay (core/stomp/stomp_relay*.c): a real server on its own
 * loop, clients over socketpair(), and a scripted broker the test plays on a real TCP
 * socket, so every frame the relay sends it is checked byte for byte: the CONNECT it
 * opens with, subscription ids and user destinations translated both ways, broker ERRORs,
 * a broker that goes away, and a broker that is not there. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/conn.h"
#include "net/server_int.h"
#include "stomp/stomp.h"
#include "stomp/stomp_broker.h"
#include "stomp/stomp_relay.h"
#include "tnet.h"

typedef struct peer {  /* a socket the test reads frames from and writes to */
  int fd;
  char buf[1 << 16];
  size_t len;
  int eof;
} peer;

typedef struct fix {
  tsrv t;
  rt_stomp_server *ss;
  int lfd, port;   /* the scripted broker's listening socket */
  peer *sys;       /* its end of the system connection */
  int closed;
} fix;

static void hook_connect(void *ud, rt_stomp_session *s, const rt_stomp_frame *f) {
  rt_stomp_session_accept(s, rt_stomp_frame_get(f, "login"));
}
static void hook_closed(void *ud, uint64_t id) { ((fix *)ud)->closed++; }

static int free_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

static peer *accept_peer(fix *x, double timeout) {
  double deadline = ev_time() + timeout;
  while (ev_time() < deadline) {
    tloop_spin(x->t.loop, 1);
    int fd = accept4(x->lfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0) {
      peer *p = calloc(1, sizeof *p);
      p->fd = fd;
      return p;
    }
    usleep(200);
  }
  return NULL;
}

static void put(fix *x, peer *p, const char *s) {
  assert_int_equal(tclient_write(x->t.loop, p->fd, s, strlen(s) + 1), 0);  /* with the NUL */
}

static char frame_out[1 << 16];
static const char *next_frame(fix *x, peer *p, double timeout) {
  double deadline = ev_time() + timeout;
  for (;;) {
    size_t skip = 0;
    while (skip < p->len && (p->buf[skip] == '\n' || p->buf[skip] == '\r')) skip++;
    char *z = memchr(p->buf + skip, 0, p->len - skip);
    if (z) {
      size_t n = (size_t)(z - p->buf) + 1 - skip;
      memcpy(frame_out, p->buf + skip, n);
      p->len -= (size_t)(z + 1 - p->buf);
      memmove(p->buf, z + 1, p->len);
      return frame_out;
    }
    if (p->eof || ev_time() > deadline) return NULL;
    tloop_spin(x->t.loop, 1);
    ssize_t r = read(p->fd, p->buf + p->len, sizeof p->buf - p->len);
    if (r > 0) p->len += (size_t)r;
    else if (r == 0) p->eof = 1;
    else usleep(200);
  }
}

static const char *expect(fix *x, peer *p, const char *command) {
  const char *f = next_frame(x, p, 2);
  if (!f) fail_msg("expected %s, got nothing", command);
  size_t n = strlen(command);
  if (strncmp(f, command, n) != 0 || f[n] != '\n') fail_msg("expected %s, got: %s", command, f);
  return f;
}

static void has(const char *f, const char *line) {
  if (!strstr(f, line)) fail_msg("frame lacks '%s':\n%s", line, f);
}

static int closed_by_server(fix *x, peer *p, double timeout) {
  double deadline = ev_time() + timeout;
  while (!p->eof && ev_time() < deadline) {
    tloop_spin(x->t.loop, 1);
    char tmp[4096];
    ssize_t r = read(p->fd, tmp, sizeof tmp);
    if (r == 0) p->eof = 1;
    else if (r < 0) usleep(200);
  }
  return p->eof;
}

static void close_peer(peer *p) {
  if (!p) return;
  close(p->fd);
  free(p);
}

/* A STOMP over TCP client of the server under test. */
static peer *client(fix *x) {
  peer *p = calloc(1, sizeof *p);
  int sfd;
  assert_int_equal(tsock_pair(&sfd, &p->fd), 0);
  rt_conn *c = rt_conn_new(x->t.srv, sfd, "unit-client");
  assert_non_null(c);
  assert_non_null(rt_stomp_tcp_attach(x->ss, c));
  return p;
}

/* The server with the relay pointed at our listener; up = play the system connection's
 * CONNECT/CONNECTED. */
static void start(fix *x, int up) {
  assert_int_equal(tsrv_start(&x->t, NULL), 0);
  x->lfd = free_listener(&x->port);
  rt_stomp_config cfg;
  rt_stomp_config_init(&cfg);
  cfg.hb_send_ms = cfg.hb_recv_ms = 0;
  snprintf(cfg.topics[cfg.ntopics++], RT_STOMP_PREFIX_LEN, "/exchange");  /* RabbitMQ's own */
  cfg.relay.on = 1;
  snprintf(cfg.relay.host, sizeof cfg.relay.host, "127.0.0.1");
  cfg.relay.port = x->port;
  snprintf(cfg.relay.login, sizeof cfg.relay.login, "relayuser");
  snprintf(cfg.relay.passcode, sizeof cfg.relay.passcode, "pw");
  snprintf(cfg.relay.vhost, sizeof cfg.relay.vhost, "/v");
  cfg.relay.hb_send_ms = cfg.relay.hb_recv_ms = 0;
  cfg.relay.connect_timeout = 2;
  cfg.relay.reconnect_min = cfg.relay.reconnect_max = 0.05;
  rt_stomp_hooks hooks = {.on_connect = hook_connect, .on_closed = hook_closed, .ud = x};
  x->ss = rt_stomp_server_new(x->t.srv, &cfg, &hooks);
  assert_non_null(x->ss);
  if (!up) return;
  x->sys = accept_peer(x, 2);
  assert_non_null(x->sys);
  const char *f = expect(x, x->sys, "CONNECT");
  has(f, "\naccept-version:1.2\n");
  has(f, "\nhost:/v\n");
  has(f, "\nlogin:relayuser\n");
  has(f, "\npasscode:pw\n");
  has(f, "\nheart-beat:0,0\n");
  put(x, x->sys, "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n");
  for (int i = 0; i < 50 && !rt_stomp_relay_up(x->ss->relay); i++) tloop_spin(x->t.loop, 1);
  assert_true(rt_stomp_relay_up(x->ss->relay));
}

static int setup(void **state) {
  fix *x = calloc(1, sizeof *x);
  start(x, 1);
  *state = x;
  return 0;
}

static int setup_down(void **state) {
  fix *x = calloc(1, sizeof *x);
  start(x, 0);
  *state = x;
  return 0;
}

static int teardown(void **state) {
  fix *x = *state;
  for (uint32_t i = 0; i < x->t.srv->nslots; i++)
    if (x->t.srv->slots[i]) rt_conn_close(x->t.srv->slots[i]);
  rt_conn_reap(x->t.srv);
  rt_stomp_server_free(x->ss);
  tsrv_stop(&x->t);
  close_peer(x->sys);
  close(x->lfd);
  free(x);
  return 0;
}

/* A client session through the relay: its CONNECT, the broker connection's CONNECT and
 * CONNECTED, then the client's CONNECTED. *link is the broker's end of it. */
static peer *session(fix *x, const char *login, peer **link) {
  peer *c = client(x);
  char connect[200];
  snprintf(connect, sizeof connect, "CONNECT\naccept-version:1.1,1.2\nhost:x\n%s%s%s\n", login ? "login:" : "",
           login ? login : "", login ? "\n" : "");
  put(x, c, connect);
  *link = accept_peer(x, 2);
  assert_non_null(*link);
  const char *f = expect(x, *link, "CONNECT");
  has(f, "\naccept-version:1.2\n");
  has(f, "\nlogin:relayuser\n");
  assert_null(next_frame(x, c, 0.05));  /* CONNECTED waits for the broker's */
  put(x, *link, "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n");
  expect(x, c, "CONNECTED");
  return c;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_frames_translated_both_ways(void **state) {
  fix *x = *state;
  peer *link, *c = session(x, NULL, &link);
  /* Subscription ids are the broker's "c:<id>", path separators are dots. */
  put(x, c, "SUBSCRIBE\nid:7\ndestination:/topic/order/42\nack:client-individual\nprefetch-count:5\nreceipt:r1\n\n");
  const char *f = expect(x, link, "SUBSCRIBE");
  has(f, "\nid:c\\c7\n");
  has(f, "\ndestination:/topic/order.42\n");
  has(f, "\nack:client-individual\n");
  has(f, "\nprefetch-count:5\n");
  has(f, "\nreceipt:r1\n");
  put(x, link, "RECEIPT\nreceipt-id:r1\n\n");
  has(expect(x, c, "RECEIPT"), "\nreceipt-id:r1\n");
  put(x, link, "MESSAGE\nsubscription:c\\c7\ndestination:/topic/order.42\nmessage-id:m1\nack:a1\nredelivered:true\ncontent-length:2\n\nhi");
  f = expect(x, c, "MESSAGE");
  has(f, "\nsubscription:7\n");
  has(f, "\ndestination:/topic/order/42\n");
  has(f, "\nack:a1\n");
  has(f, "\nredelivered:true\n");
  has(f, "\n\nhi");
  /* ACK, transactions and SEND pass as the broker wants them. */
  put(x, c, "ACK\nid:a1\ntransaction:t\n\n");
  f = expect(x, link, "ACK");
  has(f, "\nid:a1\n");
  has(f, "\ntransaction:t\n");
  put(x, c, "BEGIN\ntransaction:t\n\n");
  has(expect(x, link, "BEGIN"), "\ntransaction:t\n");
  put(x, c, "SEND\ndestination:/queue/work\ntransaction:t\nx-mine:1\ncontent-length:3\n\nabc");
  f = expect(x, link, "SEND");
  has(f, "\ndestination:/queue/work\n");
  has(f, "\nx-mine:1\n");
  has(f, "\n\nabc");
  /* RabbitMQ's /exchange/<name>/<key> keeps its slashes. */
  put(x, c, "SEND\ndestination:/exchange/amq.direct/k/1\n\n");
  has(expect(x, link, "SEND"), "\ndestination:/exchange/amq.direct/k/1\n");
  put(x, c, "UNSUBSCRIBE\nid:7\n\n");
  has(expect(x, link, "UNSUBSCRIBE"), "\nid:c\\c7\n");
  /* DISCONNECT with a receipt: the client hears it when the broker says so, then goes. */
  put(x, c, "DISCONNECT\nreceipt:bye\n\n");
  has(expect(x, link, "DISCONNECT"), "\nreceipt:bye\n");
  put(x, link, "RECEIPT\nreceipt-id:bye\n\n");
  has(expect(x, c, "RECEIPT"), "\nreceipt-id:bye\n");
  assert_true(closed_by_server(x, c, 2));
  assert_true(closed_by_server(x, link, 2));
  close_peer(c);
  close_peer(link);
}

static void test_user_destinations(void **state) {
  fix *x = *state;
  peer *link, *c = session(x, "al.ice*", &link);
  put(x, c, "SUBSCRIBE\nid:n\ndestination:/user/queue/notes\nreceipt:r\n\n");
  /* The user's topic (its name escaped: no separator, no wildcard), then the session's. */
  const char *f = expect(x, link, "SUBSCRIBE");
  has(f, "\nid:u\\cn\n");
  has(f, "\ndestination:/topic/rtu.al_2Eice_2A._2Fqueue_2Fnotes\n");
  if (strstr(f, "receipt")) fail_msg("the receipt belongs on the last frame:\n%s", f);
  f = expect(x, link, "SUBSCRIBE");
  has(f, "\nid:s\\cn\n");
  has(f, "\ndestination:/topic/rts.");
  has(f, "._2Fqueue_2Fnotes\n");
  has(f, "\nreceipt:r\n");
  put(x, link, "MESSAGE\nsubscription:u\\cn\ndestination:/topic/rtu.al_2Eice_2A._2Fqueue_2Fnotes\nmessage-id:1\n\nyo");
  f = expect(x, c, "MESSAGE");
  has(f, "\nsubscription:n\n");
  has(f, "\ndestination:/user/queue/notes\n");
  /* Server-side sends go through the system connection. */
  rt_chunk *body = rt_chunk_copy("b", 1);
  char err[200];
  assert_int_equal(rt_stomp_publish(x->ss, "/user/bob/queue/x", body, NULL, NULL, 0, err, sizeof err), 1);
  has(expect(x, x->sys, "SEND"), "\ndestination:/topic/rtu.bob._2Fqueue_2Fx\n");
  assert_int_equal(rt_stomp_publish(x->ss, "/topic/a/b", body, "text/plain", NULL, 0, err, sizeof err), 1);
  f = expect(x, x->sys, "SEND");
  has(f, "\ndestination:/topic/a.b\n");
  has(f, "\ncontent-type:text/plain\n");
  assert_int_equal(rt_stomp_publish(x->ss, "/app/x", body, NULL, NULL, 0, err, sizeof err), -1);
  rt_chunk_unref(body);
  close_peer(c);
  close_peer(link);
}

static void test_broker_error_reaches_its_client_and_ends_it(void **state) {
  fix *x = *state;
  peer *l1, *c1 = session(x, NULL, &l1);
  peer *l2, *c2 = session(x, NULL, &l2);
  put(x, l1, "ERROR\nmessage:resource_locked\ncontent-length:4\n\nnope");
  const char *f = expect(x, c1, "ERROR");
  has(f, "\nmessage:resource_locked\n");
  has(f, "\n\nnope");
  assert_true(closed_by_server(x, c1, 2));
  assert_true(closed_by_server(x, l1, 2));
  assert_null(next_frame(x, c2, 0.1));
  /* The other session still works. */
  put(x, c2, "SEND\ndestination:/topic/t\n\n");
  expect(x, l2, "SEND");
  close_peer(c1), close_peer(l1), close_peer(c2), close_peer(l2);
}

static void test_broker_lost(void **state) {
  fix *x = *state;
  peer *link, *c = session(x, NULL, &link);
  close_peer(link);
  const char *f = expect(x, c, "ERROR");
  has(f, "\nmessage:broker connection lost\n");
  assert_true(closed_by_server(x, c, 2));
  close_peer(c);
  /* The system connection reconnects (backoff 50 ms here) and says CONNECT again. */
  close_peer(x->sys);
  x->sys = NULL;
  for (int i = 0; i < 20; i++) tloop_spin(x->t.loop, 1);
  assert_false(rt_stomp_relay_up(x->ss->relay));
  rt_chunk *body = rt_chunk_copy("b", 1);
  char err[200];
  assert_int_equal(rt_stomp_publish(x->ss, "/topic/t", body, NULL, NULL, 0, err, sizeof err), -1);
  assert_non_null(strstr(err, "broker unavailable"));
  x->sys = accept_peer(x, 2);
  assert_non_null(x->sys);
  expect(x, x->sys, "CONNECT");
  put(x, x->sys, "CONNECTED\nversion:1.2\n\n");
  for (int i = 0; i < 50 && !rt_stomp_relay_up(x->ss->relay); i++) tloop_spin(x->t.loop, 1);
  assert_int_equal(rt_stomp_publish(x->ss, "/topic/t", body, NULL, NULL, 0, err, sizeof err), 1);
  rt_chunk_unref(body);
}

static void test_broker_down(void **state) {
  fix *x = *state;
  close(x->lfd);  /* nothing listens: every dial is refused */
  x->lfd = socket(AF_INET, SOCK_STREAM, 0);
  for (int i = 0; i < 20; i++) tloop_spin(x->t.loop, 1);
  peer *c = client(x);
  put(x, c, "CONNECT\naccept-version:1.2\nhost:x\n\n");
  const char *f = expect(x, c, "ERROR");
  has(f, "\nmessage:broker unavailable\n");
  has(f, "cannot be reached");
  assert_true(closed_by_server(x, c, 2));
  assert_int_equal(x->closed, 0);  /* never accepted: the app hears of no session */
  close_peer(c);
}

/* A reload that turns the relay off ends the relayed sessions (their subscriptions were
 * the broker's) and server sends go to the built-in broker again. */
static void test_relay_turned_off(void **state) {
  fix *x = *state;
  peer *l1, *c1 = session(x, NULL, &l1);
  peer *l2, *c2 = session(x, NULL, &l2);
  rt_stomp_config cfg = x->ss->cfg;
  cfg.relay.on = 0;
  rt_stomp_server_configure(x->ss, &cfg);
  assert_null(x->ss->relay);
  for (peer **p = (peer *[]){c1, c2, NULL}; *p; p++) {
    has(expect(x, *p, "ERROR"), "\nmessage:broker relay stopped\n");
    assert_true(closed_by_server(x, *p, 2));
  }
  assert_true(closed_by_server(x, l1, 2));
  assert_true(closed_by_server(x, l2, 2));
  assert_true(closed_by_server(x, x->sys, 2));
  rt_chunk *body = rt_chunk_copy("b", 1);
  char err[200];
  assert_int_equal(rt_stomp_publish(x->ss, "/topic/t", body, NULL, NULL, 0, err, sizeof err), 0);
  rt_chunk_unref(body);
  close_peer(c1), close_peer(l1), close_peer(c2), close_peer(l2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_frames_translated_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(test_user_destinations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broker_error_reaches_its_client_and_ends_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broker_lost, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broker_down, setup_down, teardown),
      cmocka_unit_test_setup_teardown(test_relay_turned_off, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
