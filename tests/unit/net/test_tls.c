/* Unit tests for core/tls.c and core/tls_ctx.c over socketpair(): the server side is an
 * rt_conn with TLS, the client side is OpenSSL on memory BIOs driven by the test, so the
 * test sees every TLS record on the wire. The certificates are made here, at run time. */
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
#include <ev.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/conn.h"
#include "net/server_int.h"
#include "net/tls.h"
#include "net/tls_ctx.h"
#include "tnet.h"

/* ---- certificates ---------------------------------------------------------------------- */

static char dir[64];

/* A self-signed P-256 certificate for cn, written to <dir>/<name>.pem and .key. */
static void make_cert(const char *name, const char *cn) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  assert_non_null(pk);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pk);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, n);
  assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
  char path[128];
  snprintf(path, sizeof path, "%s/%s.pem", dir, name);
  FILE *f = fopen(path, "w");
  PEM_write_X509(f, x);
  fclose(f);
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  f = fopen(path, "w");
  PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(pk);
}

static const char *file(const char *name) {
  static char p[4][128];
  static int i;
  i = (i + 1) % 4;
  snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
  return p[i];
}

static int group_setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/rt-unit-tls-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  make_cert("one", "one.test");
  make_cert("two", "two.test");
  return 0;
}

static int group_teardown(void **state) {
  const char *names[] = {"one.pem", "one.key", "two.pem", "two.key", "live.pem", "live.key"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(file(names[i]));
  rmdir(dir);
  return 0;
}

/* ---- a protocol that records what the server side reads ------------------------------- */

static struct {
  rt_buf got;
  int closes;
} ev;

static void p_read(rt_conn *c) {
  rt_buf_append(&ev.got, rt_buf_start(&c->in), c->in.len);
  rt_buf_consume(&c->in, c->in.len);
}
static void p_close(rt_conn *c) { ev.closes++; }
static const rt_proto test_proto = {.name = "test", .on_read = p_read, .on_close = p_close};

/* ---- the client: OpenSSL on memory BIOs, bytes moved to and from the socket by hand ---- */

typedef struct client {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rb, *wb;  /* what the server sent / what the client wants to send */
  int fd;
  int app_records;  /* application-data records seen on the wire */
  int eof;
} client;

typedef struct fx {
  tsrv t;
  rt_tls_ctx *tls;
  rt_conn *c;
  client cl;
} fx;

static void client_init(client *cl, int fd, const char *alpn, size_t alpn_len, int max_version) {
  cl->ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_NONE, NULL);
  if (max_version) {
    SSL_CTX_set_security_level(cl->ctx, 0);
    SSL_CTX_set_min_proto_version(cl->ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(cl->ctx, max_version);
  }
  if (alpn) SSL_CTX_set_alpn_protos(cl->ctx, (const unsigned char *)alpn, (unsigned)alpn_len);
  cl->ssl = SSL_new(cl->ctx);
  cl->rb = BIO_new(BIO_s_mem());
  cl->wb = BIO_new(BIO_s_mem());
  SSL_set_bio(cl->ssl, cl->rb, cl->wb);
  SSL_set_connect_state(cl->ssl);
  cl->fd = fd;
}

static void client_free(client *cl) {
  if (cl->ssl) SSL_free(cl->ssl);
  if (cl->ctx) SSL_CTX_free(cl->ctx);
  int fd = cl->fd;
  memset(cl, 0, sizeof *cl);
  cl->fd = fd;
}

/* Sends what the client's OpenSSL wrote, step bytes at a time (0: all at once). */
static void client_push(fx *f, size_t step) {
  char *p;
  long n = BIO_get_mem_data(f->cl.wb, &p);
  size_t at = 0;
  while (at < (size_t)n) {
    size_t k = step && (size_t)n - at > step ? step : (size_t)n - at;
    assert_int_equal(tclient_write(f->t.loop, f->cl.fd, p + at, k), 0);
    at += k;
    if (step) tloop_spin(f->t.loop, 2);
  }
  (void)BIO_reset(f->cl.wb);
}

/* Reads what the server sent into the client's BIO, counting application records. */
static void client_pull(fx *f, double timeout) {
  uint8_t buf[65536];
  double until = ev_time() + timeout;
  for (;;) {
    tloop_spin(f->t.loop, 1);
    ssize_t r = recv(f->cl.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) {
      BIO_write(f->cl.rb, buf, (int)r);
      continue;
    }
    if (r == 0) f->cl.eof = 1;
    if (r == 0 || ev_time() > until) return;
    usleep(200);
  }
}

/* Record boundaries of what is in the client's read BIO, before OpenSSL takes it. */
static int count_app_records(client *cl) {
  char *p;
  long n = BIO_get_mem_data(cl->rb, &p);
  int records = 0;
  for (long at = 0; at + 5 <= n;) {
    if ((uint8_t)p[at] == 0x17) records++;
    at += 5 + (((uint8_t)p[at + 3] << 8) | (uint8_t)p[at + 4]);
  }
  return records;
}

static int handshake(fx *f, size_t step) {
  for (int i = 0; i < 50; i++) {
    ERR_clear_error();
    int r = SSL_do_handshake(f->cl.ssl);
    client_push(f, step);
    if (r == 1) {
      /* The server still has to read our Finished. */
      for (int k = 0; k < 100 && !rt_tls_established(f->c); k++) tloop_spin(f->t.loop, 1);
      return rt_tls_established(f->c);
    }
    if (SSL_get_error(f->cl.ssl, r) != SSL_ERROR_WANT_READ) return 0;
    client_pull(f, 0.05);
    if (f->cl.eof && BIO_ctrl_pending(f->cl.rb) == 0) return 0;
  }
  return 0;
}

/* Reads n plaintext bytes the server sent (or fewer when the server closed). */
static size_t client_read(fx *f, uint8_t *out, size_t n, double timeout) {
  size_t got = 0;
  double until = ev_time() + timeout;
  while (got < n && ev_time() < until) {
    int r = SSL_read(f->cl.ssl, out + got, (int)(n - got));
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (SSL_get_error(f->cl.ssl, r) == SSL_ERROR_ZERO_RETURN) break;
    client_push(f, 0);
    client_pull(f, 0.02);
    if (f->cl.eof && BIO_ctrl_pending(f->cl.rb) == 0) break;
  }
  return got;
}

static rt_conn *server_conn(fx *f, int *cfd) {
  int sfd;
  assert_int_equal(tsock_pair(&sfd, cfd), 0);
  rt_conn *c = rt_conn_new(f->t.srv, sfd, "peer");
  assert_non_null(c);
  assert_int_equal(rt_tls_accept(c, f->tls, f->t.srv->cfg.tls_handshake_timeout), 0);
  rt_conn_set_proto(c, &test_proto, RT_PROTO_HTTP1, NULL);
  return c;
}

static int setup_with(void **state, double hs_timeout) {
  fx *f = calloc(1, sizeof *f);
  rt_config cfg;
  tsrv_config(&cfg);
  cfg.tls_handshake_timeout = hs_timeout;
  if (tsrv_start(&f->t, &cfg) < 0) return -1;
  char err[256];
  rt_tls_ctx_opts o = {.cert = file("one.pem"), .key = file("one.key")};
  f->tls = rt_tls_server_ctx_new(&o, err, sizeof err);
  if (!f->tls) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  memset(&ev, 0, sizeof ev);
  int cfd;
  f->c = server_conn(f, &cfd);
  f->cl.fd = cfd;
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, 10); }
static int setup_fast_timeout(void **state) { return setup_with(state, 0.05); }

static int teardown(void **state) {
  fx *f = *state;
  int fd = f->cl.fd;
  client_free(&f->cl);
  tsrv_stop(&f->t);
  rt_tls_ctx_unref(f->tls);
  close(fd);
  rt_buf_free(&ev.got);
  free(f);
  return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_handshake_and_both_directions(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 0));
  client_pull(f, 0.05);
  assert_true(rt_tls_established(f->c));
  assert_string_equal(rt_tls_version(f->c), "TLSv1.3");
  assert_null(rt_tls_alpn(f->c));
  assert_null(rt_tls_peer_name(f->c));
  assert_int_equal(SSL_write(f->cl.ssl, "hello over tls", 14), 14);
  client_push(f, 0);
  for (int i = 0; i < 100 && ev.got.len < 14; i++) tloop_spin(f->t.loop, 1);
  assert_int_equal(ev.got.len, 14);
  assert_memory_equal(rt_buf_start(&ev.got), "hello over tls", 14);
  /* Idle again: no read buffer, no ciphertext held. */
  assert_null(f->c->in.data);
  assert_int_equal(rt_tls_unsent(f->c), 0);

  assert_int_equal(rt_conn_write(f->c, "back", 4), 0);
  uint8_t buf[16];
  assert_int_equal(client_read(f, buf, 4, 2.0), 4);
  assert_memory_equal(buf, "back", 4);
  assert_int_equal(f->t.srv->metrics.tls_handshakes, 1);
}

static void test_client_hello_one_byte_at_a_time(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 1));
  assert_true(rt_tls_established(f->c));
  /* A record split across reads still comes out whole. */
  assert_int_equal(SSL_write(f->cl.ssl, "split", 5), 5);
  client_push(f, 1);
  for (int i = 0; i < 100 && ev.got.len < 5; i++) tloop_spin(f->t.loop, 1);
  assert_int_equal(ev.got.len, 5);
}

static void test_small_writes_of_one_turn_share_a_record(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 0));
  client_pull(f, 0.05);
  uint8_t tmp[64];
  while (SSL_read(f->cl.ssl, tmp, sizeof tmp) > 0) {}  /* the session tickets */
  /* 300 small frames queued in one turn leave as one record in one send. */
  for (int i = 0; i < 300; i++) assert_int_equal(rt_conn_write(f->c, "0123456789", 10), 0);
  tloop_spin(f->t.loop, 1);
  client_pull(f, 0.05);
  assert_int_equal(count_app_records(&f->cl), 1);
  uint8_t buf[3000];
  assert_int_equal(client_read(f, buf, sizeof buf, 2.0), 3000);
  for (int i = 0; i < 300; i++) assert_memory_equal(buf + 10 * i, "0123456789", 10);
}

static void test_large_output_through_a_small_socket(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 0));
  tsock_small_buffers(f->cl.fd, 4096);
  size_t total = 1 << 20;
  uint8_t *data = malloc(total), *back = malloc(total);
  for (size_t i = 0; i < total; i++) data[i] = (uint8_t)(i * 31 + (i >> 11));
  rt_chunk *big = rt_chunk_copy(data, total);
  assert_int_equal(rt_conn_write_chunk(f->c, big), 0);
  rt_chunk_unref(big);
  assert_int_equal(client_read(f, back, total, 10.0), total);
  assert_memory_equal(back, data, total);
  tloop_spin(f->t.loop, 2);
  assert_int_equal(f->c->out.bytes, 0);
  assert_int_equal(rt_tls_unsent(f->c), 0);
  free(data);
  free(back);
}

static void test_close_after_write_ends_with_close_notify(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 0));
  assert_int_equal(rt_conn_write(f->c, "bye", 3), 0);
  rt_conn_close_after_write(f->c);
  uint8_t buf[8];
  assert_int_equal(client_read(f, buf, sizeof buf, 2.0), 3);
  int r = SSL_read(f->cl.ssl, buf, sizeof buf);
  assert_int_equal(SSL_get_error(f->cl.ssl, r), SSL_ERROR_ZERO_RETURN);
  assert_int_equal(ev.closes, 1);
}

static void test_alpn(void **state) {
  fx *f = *state;
  static const struct { const char *offer; size_t len; const char *want; } cases[] = {
      {"\x02h2", 3, "h2"},                          /* a gRPC client */
      {"\x02h2\x08http/1.1", 12, "http/1.1"},        /* a browser: HTTP/2 here is gRPC only */
      {"\x08http/1.1", 9, "http/1.1"},
      {"\x03xyz", 4, NULL},                         /* nothing we speak: no ALPN, go on */
  };
  int first_fd = f->cl.fd;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int cfd;
    f->c = server_conn(f, &cfd);
    client_init(&f->cl, cfd, cases[i].offer, cases[i].len, 0);
    assert_true(handshake(f, 0));
    if (cases[i].want) assert_string_equal(rt_tls_alpn(f->c), cases[i].want);
    else assert_null(rt_tls_alpn(f->c));
    client_free(&f->cl);
    close(cfd);
  }
  f->cl.fd = first_fd;
}

static void test_tls11_client_is_refused(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, TLS1_1_VERSION);
  assert_false(handshake(f, 0));
  tloop_spin(f->t.loop, 2);
  assert_int_equal(f->t.srv->metrics.tls_failed[RT_TLS_FAIL_PROTOCOL], 1);
  assert_int_equal(ev.closes, 1);
}

static void test_plain_http_gets_a_400_in_the_clear(void **state) {
  fx *f = *state;
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(tclient_write(f->t.loop, f->cl.fd, req, sizeof req - 1), 0);
  char buf[512] = {0};
  int eof = 0;
  size_t n = tclient_read(f->t.loop, f->cl.fd, (uint8_t *)buf, sizeof buf - 1, 2.0, &eof);
  assert_true(n > 0);
  assert_true(eof);
  assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
  assert_non_null(strstr(buf, "This port speaks TLS"));
  assert_int_equal(ev.got.len, 0);  /* the protocol never saw the request */
  assert_int_equal(f->t.srv->metrics.tls_failed[RT_TLS_FAIL_PLAIN_HTTP], 1);
}

static void test_stalled_handshake_times_out(void **state) {
  fx *f = *state;
  uint8_t part[] = {0x16, 0x03, 0x01, 0x01, 0x00, 0x01};  /* a ClientHello cut short */
  assert_int_equal(tclient_write(f->t.loop, f->cl.fd, part, sizeof part), 0);
  uint8_t buf[64];
  int eof = 0;
  tclient_read(f->t.loop, f->cl.fd, buf, sizeof buf, 1.0, &eof);
  assert_true(eof);
  assert_int_equal(f->t.srv->metrics.tls_failed[RT_TLS_FAIL_TIMEOUT], 1);
  assert_int_equal(ev.closes, 1);
}

static int setup_small_output(void **state) {
  fx *f = calloc(1, sizeof *f);
  rt_config cfg;
  tsrv_config(&cfg);
  cfg.max_output_bytes = 4096;
  if (tsrv_start(&f->t, &cfg) < 0) return -1;
  char err[256];
  rt_tls_ctx_opts o = {.cert = file("one.pem"), .key = file("one.key")};
  if (!(f->tls = rt_tls_server_ctx_new(&o, err, sizeof err))) return -1;
  memset(&ev, 0, sizeof ev);
  int cfd;
  f->c = server_conn(f, &cfd);
  f->cl.fd = cfd;
  *state = f;
  return 0;
}

/* A peer that asks for key updates and never reads makes OpenSSL answer each one; the
 * answers wait for its socket. They are bounded like the write queue: a slow consumer. */
static void test_answers_to_a_peer_that_never_reads_are_bounded(void **state) {
  fx *f = *state;
  client_init(&f->cl, f->cl.fd, NULL, 0, 0);
  assert_true(handshake(f, 0));
  tsock_small_buffers(f->cl.fd, 4096);
  tsock_small_buffers(f->c->fd, 4096);
  long before = f->t.srv->metrics.slow_consumers;
  for (int i = 0; i < 20000 && ev.closes == 0; i++) {
    assert_int_equal(SSL_key_update(f->cl.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(f->cl.ssl, "k", 1), 1);
    char *p;
    long n = BIO_get_mem_data(f->cl.wb, &p);
    if (send(f->cl.fd, p, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) break;
    (void)BIO_reset(f->cl.wb);
    tloop_spin(f->t.loop, 1);
  }
  for (int i = 0; i < 100 && ev.closes == 0; i++) tloop_spin(f->t.loop, 1);
  assert_int_equal(ev.closes, 1);
  assert_int_equal(f->t.srv->metrics.slow_consumers, before + 1);
}

static void test_reload_keeps_the_old_on_failure(void **state) {
  char err[512];
  /* A context on files we can swap. */
  FILE *a = fopen(file("one.pem"), "r"), *b = fopen(file("live.pem"), "w");
  int ch;
  while ((ch = fgetc(a)) != EOF) fputc(ch, b);
  fclose(a);
  fclose(b);
  a = fopen(file("one.key"), "r"), b = fopen(file("live.key"), "w");
  while ((ch = fgetc(a)) != EOF) fputc(ch, b);
  fclose(a);
  fclose(b);
  rt_tls_ctx_opts o = {.cert = file("live.pem"), .key = file("live.key")};
  rt_tls_ctx *ctx = rt_tls_server_ctx_new(&o, err, sizeof err);
  assert_non_null(ctx);
  char what[256];
  rt_tls_ctx_describe(ctx, what, sizeof what);
  assert_non_null(strstr(what, "CN=one.test"));
  /* The key of another certificate: refused, the old one stays. */
  assert_int_equal(rename(file("two.key"), file("live.key")), 0);
  assert_int_equal(rt_tls_ctx_reload(ctx, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not match"));
  rt_tls_ctx_describe(ctx, what, sizeof what);
  assert_non_null(strstr(what, "CN=one.test"));
  /* Both files new: taken. */
  assert_int_equal(rename(file("two.pem"), file("live.pem")), 0);
  assert_int_equal(rt_tls_ctx_reload(ctx, err, sizeof err), 0);
  rt_tls_ctx_describe(ctx, what, sizeof what);
  assert_non_null(strstr(what, "CN=two.test"));
  rt_tls_ctx_unref(ctx);
  make_cert("two", "two.test");  /* for other runs of the group */
}

static void test_bad_files_say_why(void **state) {
  char err[512];
  rt_tls_ctx_opts o = {.cert = "/nonexistent.pem", .key = file("one.key")};
  assert_null(rt_tls_server_ctx_new(&o, err, sizeof err));
  assert_non_null(strstr(err, "cannot load the certificate '/nonexistent.pem'"));
  rt_tls_ctx_opts o2 = {.cert = file("one.pem")};
  assert_null(rt_tls_server_ctx_new(&o2, err, sizeof err));
  assert_non_null(strstr(err, "both a certificate and a key"));
  rt_tls_ctx_opts o3 = {.ca = "/nonexistent-ca.pem"};
  assert_null(rt_tls_client_ctx_new(&o3, err, sizeof err));
  assert_non_null(strstr(err, "cannot load the CA file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handshake_and_both_directions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_hello_one_byte_at_a_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_small_writes_of_one_turn_share_a_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_output_through_a_small_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_after_write_ends_with_close_notify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alpn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls11_client_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_plain_http_gets_a_400_in_the_clear, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stalled_handshake_times_out, setup_fast_timeout, teardown),
      cmocka_unit_test_setup_teardown(test_answers_to_a_peer_that_never_reads_are_bounded,
                                      setup_small_output, teardown),
      cmocka_unit_test(test_reload_keeps_the_old_on_failure),
      cmocka_unit_test(test_bad_files_say_why),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
