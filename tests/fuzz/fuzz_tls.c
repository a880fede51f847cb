/* libFuzzer harness for the TLS input path: core/net/tls.c (the first-byte check, the
 * plain-HTTP answer, the BIO that feeds OpenSSL, the read loop, the flush) and OpenSSL's
 * server side behind it, as a peer's bytes reach them.
 *
 * Once: a server (no app) and a self-signed P-256 certificate made in memory. Per input,
 * byte 0 picks the mode:
 *   bit 0 clear: the rest goes in raw as the first bytes of a connection (a ClientHello,
 *                or not), cut in two reads at byte 1;
 *   bit 0 set:   a real TLS 1.3 handshake first (an OpenSSL client on memory BIOs), then
 *                the rest raw (forged records after the handshake), or with bit 1 set,
 *                as application data that the server side echoes back.
 * Checks: no crash, leak or UB; what the server wrote is either the plain 400 (for a
 * request on a TLS port) or whole TLS records with a sane header (nothing in the clear);
 * an echo comes back decrypted and equal to what was sent. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/server_int.h"
#include "net/tls.h"
#include "net/tls_ctx.h"
#include "rtserver.h"

#define CHECK(c)                                                                 \
  do {                                                                           \
    if (!(c)) {                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
      abort();                                                                   \
    }                                                                            \
  } while (0)

static struct ev_loop *loop;
static rt_server *srv;
static rt_tls_ctx *tls;
static SSL_CTX *client_ctx;

static void echo_read(rt_conn *c) {
  rt_conn_write(c, rt_buf_start(&c->in), c->in.len);
  rt_buf_consume(&c->in, c->in.len);
}
static const rt_proto echo_proto = {.name = "echo", .on_read = echo_read};

static void cleanup(void) {
  if (srv) rt_server_free(srv);
  srv = NULL;
  rt_tls_ctx_unref(tls);
  tls = NULL;
  if (client_ctx) SSL_CTX_free(client_ctx);
  client_ctx = NULL;
  if (loop) ev_loop_destroy(loop);
  loop = NULL;
}

/* A self-signed certificate and its key in two temp files, loaded, then removed. */
static void make_ctx(void) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  CHECK(pk && x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pk);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"fuzz", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  CHECK(X509_sign(x, pk, EVP_sha256()) > 0);
  char cert[] = "/tmp/fuzz_tls_cert_XXXXXX", key[] = "/tmp/fuzz_tls_key_XXXXXX";
  FILE *f = fdopen(mkstemp(cert), "w");
  PEM_write_X509(f, x);
  fclose(f);
  f = fdopen(mkstemp(key), "w");
  PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  char err[512];
  rt_tls_ctx_opts o = {.cert = cert, .key = key};
  tls = rt_tls_server_ctx_new(&o, err, sizeof err);
  unlink(cert);
  unlink(key);
  X509_free(x);
  EVP_PKEY_free(pk);
  if (!tls) {
    fprintf(stderr, "fuzz_tls: %s\n", err);
    abort();
  }
  client_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
}

static void init_once(void) {
  char err[512];
  rt_config cfg;
  rt_config_init(&cfg);
  cfg.log_level = getenv("FUZZ_LOG") ? RT_LOG_DEBUG : RT_LOG_OFF;
  cfg.max_output_bytes = 256 * 1024;
  loop = ev_loop_new(EVFLAG_AUTO);
  srv = rt_server_new(loop, &cfg, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "fuzz_tls: %s\n", err);
    abort();
  }
  make_ctx();
  atexit(cleanup);
}

static void spin(int n) {
  for (int i = 0; i < n; i++) ev_run(loop, EVRUN_NOWAIT);
}

static void drain(int fd, uint8_t **buf, size_t *len, size_t *cap) {
  for (;;) {
    if (*cap - *len < 65536) {
      *cap = *cap * 2 + 65536;
      *buf = realloc(*buf, *cap);
      CHECK(*buf);
    }
    ssize_t r = read(fd, *buf + *len, *cap - *len);
    if (r <= 0) return;
    *len += (size_t)r;
  }
}

static void put(int fd, const uint8_t *p, size_t n) {
  while (n) {
    /* MSG_NOSIGNAL: the server may have closed already (that is often the point). */
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      spin(1);
      continue;
    }
    if (w <= 0) return;  /* the server closed */
    p += w;
    n -= (size_t)w;
    spin(1);
  }
}

/* Whole TLS records (the last may be cut short when the connection closed). */
static void check_records(const uint8_t *p, size_t n) {
  for (size_t off = 0; off + 5 <= n;) {
    /* (the version bytes are not checked: an alert refusing a hello echoes its version) */
    CHECK(p[off] >= 20 && p[off] <= 23);
    size_t len = (size_t)p[off + 3] << 8 | p[off + 4];
    CHECK(len <= 16384 + 256);
    off += 5 + len;
  }
}

/* Drives a client handshake over the socket; returns the client SSL or NULL. */
static SSL *handshake(int fd, uint8_t **out, size_t *olen, size_t *ocap) {
  SSL *cl = SSL_new(client_ctx);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(cl, rb, wb);
  SSL_set_connect_state(cl);
  for (int i = 0; i < 20; i++) {
    int r = SSL_do_handshake(cl);
    char *p;
    long n = BIO_get_mem_data(wb, &p);
    put(fd, (const uint8_t *)p, (size_t)n);
    (void)BIO_reset(wb);
    spin(2);
    if (r == 1) return cl;
    size_t before = *olen;
    drain(fd, out, olen, ocap);
    BIO_write(rb, *out + before, (int)(*olen - before));
  }
  SSL_free(cl);
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) init_once();
  if (size < 2) return 0;
  int mode = data[0];
  data++;
  size--;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  for (int i = 0; i < 2; i++) fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
  rt_conn *c = rt_conn_new(srv, sv[0], "fuzz");
  CHECK(c);
  uint64_t id = c->id;
  CHECK(rt_tls_accept(c, tls, 0) == 0);
  rt_conn_set_proto(c, &echo_proto, RT_PROTO_HTTP1, NULL);
  uint8_t *out = NULL;
  size_t olen = 0, ocap = 0;

  if (!(mode & 1)) {
    size_t cut = data[0] % size;
    put(sv[1], data, cut);
    put(sv[1], data + cut, size - cut);
    spin(4);
    drain(sv[1], &out, &olen, &ocap);
    if (data[0] >= 'A' && data[0] <= 'Z')
      CHECK(olen >= 26 && memcmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    else
      check_records(out, olen);
  } else {
    SSL *cl = handshake(sv[1], &out, &olen, &ocap);
    CHECK(cl);
    if (mode & 2) {
      /* Application data, echoed: what comes back decrypts to what went. */
      CHECK(SSL_write(cl, data, (int)size) == (int)size);
      char *p;
      long n = BIO_get_mem_data(SSL_get_wbio(cl), &p);
      put(sv[1], (const uint8_t *)p, (size_t)n);
      spin(4);
      size_t from = olen;
      drain(sv[1], &out, &olen, &ocap);
      check_records(out + from, olen - from);
      BIO_write(SSL_get_rbio(cl), out + from, (int)(olen - from));
      uint8_t *back = malloc(size);
      size_t got = 0;
      int r;
      while (got < size && (r = SSL_read(cl, back + got, (int)(size - got))) > 0) got += (size_t)r;
      CHECK(got == size && memcmp(back, data, size) == 0);
      free(back);
    } else {
      /* Forged bytes after the handshake: an alert and a close, never plaintext. */
      size_t from = olen;
      put(sv[1], data, size);
      spin(4);
      drain(sv[1], &out, &olen, &ocap);
      check_records(out + from, olen - from);
    }
    SSL_free(cl);
    ERR_clear_error();
  }
  free(out);
  rt_conn *still = rt_conn_find(srv, id);
  if (still) rt_conn_close(still);
  rt_conn_reap(srv);
  close(sv[1]);
  return 0;
}
