#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server_int.h"
#include "tls_ctx.h"

#define RECORD 16384          /* the largest TLS plaintext record */
#define ENCRYPT_AHEAD 65536   /* plaintext encrypted per flush before the socket takes it */

const char *const rt_tls_fail_names[RT_TLS_FAIL_COUNT] = {"protocol", "verify", "timeout",
                                                          "closed", "plain_http"};

struct rt_tls {
  rt_conn *c;
  rt_tls_ctx *ctx;
  SSL *ssl;
  const uint8_t *in;    /* ciphertext OpenSSL has yet to read (rt_tls_read's) */
  size_t in_len;
  rt_buf out;           /* ciphertext for the socket */
  ev_timer handshake;   /* cuts a handshake that stalls */
  unsigned server : 1, established : 1, failed : 1, plain_reply : 1, resumed : 1, sniffed : 1,
      said_goodbye : 1;
  char alpn[16];
  char *peer_name, *peer_subject;
  char *error;          /* why it failed; allocated only then */
};

/* ---- the BIO: OpenSSL reads t->in and appends to t->out ------------------------------ */

static int bio_write(BIO *b, const char *p, int n) {
  rt_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  return rt_buf_append(&t->out, p, (size_t)n) < 0 ? -1 : n;
}

static int bio_read(BIO *b, char *p, int n) {
  rt_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (!t->in_len) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t k = t->in_len < (size_t)n ? t->in_len : (size_t)n;
  memcpy(p, t->in, k);
  t->in += k;
  t->in_len -= k;
  return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  /* flushing is ours to do, after the batch */
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD *rt_tls_bio_method_new(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rtserver conn");
  if (!m) return NULL;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  return m;
}

/* ---- setting up ----------------------------------------------------------------------- */

static void fail(rt_conn *c, int why, const char *fmt, const char *detail);

static void on_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_conn *c = w->data;
  if (c->closing || !c->tls || c->tls->established) return;
  fail(c, RT_TLS_FAIL_TIMEOUT, "TLS handshake timed out", NULL);
  rt_conn_close(c);
}

static rt_tls *attach(rt_conn *c, rt_tls_ctx *ctx, double timeout) {
  rt_tls *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->c = c;
  t->ssl = SSL_new(rt_tls_ctx_ssl(ctx));
  BIO *b = t->ssl ? BIO_new(rt_tls_ctx_bio_method(ctx)) : NULL;
  if (!b) {
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  BIO_set_data(b, t);
  SSL_set_bio(t->ssl, b, b);  /* one reference for both directions */
  t->ctx = rt_tls_ctx_ref(ctx);
  ev_timer_init(&t->handshake, on_handshake_timeout, timeout, 0);
  t->handshake.data = c;
  if (timeout > 0) ev_timer_start(c->srv->loop, &t->handshake);
  c->tls = t;
  return t;
}

int rt_tls_accept(rt_conn *c, rt_tls_ctx *ctx, double handshake_timeout) {
  rt_tls *t = attach(c, ctx, handshake_timeout);
  if (!t) return -1;
  t->server = 1;
  SSL_set_accept_state(t->ssl);
  return 0;
}

/* "127.0.0.1" or "::1" is checked against the certificate's IP addresses, not names,
 * and is not sent as SNI (RFC 6066 allows host names only). */
static int is_ip(const char *s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int rt_tls_connect(rt_conn *c, rt_tls_ctx *ctx, const char *server_name, double handshake_timeout) {
  rt_tls *t = attach(c, ctx, handshake_timeout);
  if (!t) return -1;
  SSL_set_connect_state(t->ssl);
  if (server_name && *server_name) {
    if (is_ip(server_name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name);
    } else {
      SSL_set_tlsext_host_name(t->ssl, server_name);
      SSL_set1_host(t->ssl, server_name);
    }
  }
  /* The ClientHello leaves with the first flush. */
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r <= 0 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
    fail(c, RT_TLS_FAIL_PROTOCOL, "TLS handshake failed", NULL);
    return -1;
  }
  rt_conn_schedule_flush(c);
  return 0;
}

/* ---- the handshake's outcome ---------------------------------------------------------- */

static char *name_line(X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return NULL;
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
  char *p, *s = NULL;
  long len = BIO_get_mem_data(b, &p);
  if (len >= 0 && (s = malloc((size_t)len + 1))) {
    memcpy(s, p, (size_t)len);
    s[len] = 0;
  }
  BIO_free(b);
  return s;
}

/* The first DNS name, email or URI among the subjectAltNames, else the subject's CN. */
static char *identity(X509 *x) {
  char *out = NULL;
  GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; sans && !out && i < sk_GENERAL_NAME_num(sans); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      const ASN1_IA5STRING *s = g->d.ia5;
      if ((out = malloc((size_t)s->length + 1))) {
        memcpy(out, s->data, (size_t)s->length);
        out[s->length] = 0;
      }
    }
  }
  GENERAL_NAMES_free(sans);
  if (out) return out;
  char cn[256];
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
    return strdup(cn);
  return NULL;
}

static void handshake_done(rt_conn *c) {
  rt_tls *t = c->tls;
  rt_server *srv = c->srv;
  t->established = 1;
  ev_timer_stop(srv->loop, &t->handshake);
  const unsigned char *a;
  unsigned int alen;
  SSL_get0_alpn_selected(t->ssl, &a, &alen);
  if (alen && alen < sizeof t->alpn) {
    memcpy(t->alpn, a, alen);
    t->alpn[alen] = 0;
  }
  t->resumed = SSL_session_reused(t->ssl) ? 1 : 0;
  X509 *peer = SSL_get0_peer_certificate(t->ssl);
  if (peer && SSL_get_verify_result(t->ssl) == X509_V_OK) {
    t->peer_name = identity(peer);
    t->peer_subject = name_line(X509_get_subject_name(peer));
  }
  if (t->server) {
    srv->metrics.tls_handshakes++;
    if (t->resumed) srv->metrics.tls_resumed++;
  }
  rt_debug(&srv->log, "%s: TLS handshake done: %s, %s, ALPN %s%s%s%s", c->peer,
           SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), t->alpn[0] ? t->alpn : "none",
           t->resumed ? ", resumed" : "", t->peer_name ? ", peer " : "",
           t->peer_name ? t->peer_name : "");
  /* A client's first request may have waited for this. */
  if (rt_outq_count(&c->out)) rt_conn_schedule_flush(c);
}

/* Sends what OpenSSL wrote (an alert, say) if the socket takes it now; the connection is
 * about to close, so nothing waits for a full socket. */
static void send_last_words(rt_conn *c) {
  rt_tls *t = c->tls;
  if (t->out.len && c->fd >= 0) send(c->fd, rt_buf_start(&t->out), t->out.len, MSG_NOSIGNAL);
  rt_buf_free(&t->out);
}

/* Records why the handshake (or the connection) failed and counts it; the caller closes. */
static void fail(rt_conn *c, int why, const char *what, const char *detail) {
  rt_tls *t = c->tls;
  char lib[256] = "";
  unsigned long e = ERR_peek_last_error();
  if (!detail && e) {
    ERR_error_string_n(e, lib, sizeof lib);
    detail = lib;
  }
  long vr = SSL_get_verify_result(t->ssl);
  if (vr != X509_V_OK && !t->established) {
    detail = X509_verify_cert_error_string(vr);
    if (why == RT_TLS_FAIL_PROTOCOL) why = RT_TLS_FAIL_VERIFY;
  } else if (why == RT_TLS_FAIL_PROTOCOL &&
             ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    why = RT_TLS_FAIL_VERIFY;
  }
  ERR_clear_error();
  char line[300];
  snprintf(line, sizeof line, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
  if (!t->error) t->error = strdup(line);
  if (!t->failed && !t->established && t->server) c->srv->metrics.tls_failed[why]++;
  t->failed = 1;
  rt_debug(&c->srv->log, "%s: %s", c->peer, line);
}

/* ---- reading ------------------------------------------------------------------------- */

/* Plain text where a ClientHello should be. An HTTP request gets a 400 that says why
 * (sent in the clear: the client speaks no TLS); anything else is just closed. */
static int not_tls(rt_conn *c, const uint8_t *p, size_t n) {
  rt_tls *t = c->tls;
  fail(c, RT_TLS_FAIL_PLAIN_HTTP, "not TLS", p[0] >= 'A' && p[0] <= 'Z' ? "plain HTTP" : "unknown bytes");
  if (!(p[0] >= 'A' && p[0] <= 'Z')) return -1;
  static const char reply[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 57\r\nConnection: close\r\n\r\n"
      "This port speaks TLS: use https:// or wss:// to reach it.\n";
  t->plain_reply = 1;
  rt_conn_pause_read(c, 1);
  rt_conn_write(c, reply, sizeof reply - 1);
  rt_conn_close_after_write(c);
  errno = EAGAIN;
  return -1;
}

ssize_t rt_tls_read(rt_conn *c) {
  rt_tls *t = c->tls;
  uint8_t cipher[RECORD + 512];
  if (t->failed || t->plain_reply) {
    errno = EPROTO;
    return -1;
  }
  ssize_t n = recv(c->fd, cipher, sizeof cipher, 0);
  if (n <= 0) {
    if (n == 0 && !t->established) fail(c, RT_TLS_FAIL_CLOSED, "the peer closed during the TLS handshake", "EOF");
    return n;
  }
  /* A TLS connection opens with a handshake record (content type 22). */
  if (t->server && !t->sniffed) {
    t->sniffed = 1;
    if (cipher[0] != 22) return not_tls(c, cipher, (size_t)n);
  }
  t->in = cipher;
  t->in_len = (size_t)n;
  size_t before = c->in.len;
  int eof = 0;
  ERR_clear_error();
  if (!t->established) {
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
      handshake_done(c);
    } else {
      int e = SSL_get_error(t->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        fail(c, RT_TLS_FAIL_PROTOCOL, "TLS handshake failed", NULL);
        send_last_words(c);
        errno = EPROTO;
        return -1;
      }
    }
  }
  /* Only while there is something to decrypt: no SSL_read that can only say "want more". */
  while (t->established && (t->in_len || SSL_has_pending(t->ssl))) {
    if (rt_buf_reserve(&c->in, RECORD) < 0) {
      errno = ENOMEM;
      return -1;
    }
    int r = SSL_read(t->ssl, rt_buf_end(&c->in), (int)(c->in.cap - c->in.off - c->in.len));
    if (r > 0) {
      c->in.len += (size_t)r;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {  /* close_notify */
      eof = 1;
      break;
    }
    fail(c, RT_TLS_FAIL_PROTOCOL, "TLS error", NULL);
    send_last_words(c);
    errno = EPROTO;
    return -1;
  }
  t->in_len = 0;
  /* What a peer's records make OpenSSL answer (key updates, alerts) waits here for a
   * socket the peer may never drain: bounded like the write queue. */
  if (t->out.len > c->srv->cfg.max_output_bytes) {
    c->srv->metrics.slow_consumers++;
    rt_warn(&c->srv->log, "%s: slow consumer, %zu TLS bytes unsent; closing", c->peer, t->out.len);
    errno = ENOBUFS;
    return -1;
  }
  /* Handshake messages, tickets and alerts OpenSSL wrote leave with this turn's flush. */
  if (t->out.len) rt_conn_schedule_flush(c);
  if (c->in.len > before) return (ssize_t)(c->in.len - before);
  if (eof) return 0;
  errno = EAGAIN;
  return -1;
}

/* ---- writing ------------------------------------------------------------------------- */

/* Sends t->out (or, for the plain-text 400, the queue itself). 1: all sent, 0: full. */
static int send_out(rt_conn *c, rt_buf *b) {
  while (b->len) {
    ssize_t w = send(c->fd, rt_buf_start(b), b->len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      rt_debug(&c->srv->log, "%s: write: %s", c->peer, strerror(errno));
      rt_conn_close(c);
      return -1;
    }
    rt_buf_consume(b, (size_t)w);
  }
  return 1;
}

static int send_plain_queue(rt_conn *c) {
  while (rt_outq_count(&c->out)) {
    rt_outq_entry *e = &c->out.v[c->out.head];
    ssize_t w = send(c->fd, e->chunk->data + e->off, e->chunk->len - e->off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      rt_conn_close(c);
      return -1;
    }
    rt_outq_advance(&c->out, (size_t)w);
  }
  return 1;
}

/* Encrypts up to ENCRYPT_AHEAD bytes of the queue into t->out. Small chunks are gathered
 * into full records: one record (and one MAC) for many small frames. */
static int encrypt_queue(rt_conn *c) {
  rt_tls *t = c->tls;
  uint8_t rec[RECORD];
  size_t done = 0;
  while (rt_outq_count(&c->out) && done < ENCRYPT_AHEAD) {
    const uint8_t *p;
    size_t n = 0;
    rt_outq_entry *h = &c->out.v[c->out.head];
    size_t head_left = h->chunk->len - h->off;
    if (head_left >= RECORD / 4) {
      p = h->chunk->data + h->off;  /* big enough to go as it is */
      n = head_left < RECORD ? head_left : RECORD;
    } else {
      for (size_t i = c->out.head; i < c->out.tail && n < RECORD; i++) {
        rt_outq_entry *e = &c->out.v[i];
        size_t k = e->chunk->len - e->off;
        if (k > RECORD - n) k = RECORD - n;
        memcpy(rec + n, e->chunk->data + e->off, k);
        n += k;
      }
      p = rec;
    }
    ERR_clear_error();
    int r = SSL_write(t->ssl, p, (int)n);
    if (r <= 0) {
      fail(c, RT_TLS_FAIL_PROTOCOL, "TLS write failed", NULL);
      rt_conn_close(c);
      return -1;
    }
    rt_outq_advance(&c->out, (size_t)r);
    done += (size_t)r;
  }
  return 0;
}

static int flush_tls(rt_conn *c) {
  rt_tls *t = c->tls;
  for (;;) {
    int rc = send_out(c, &t->out);
    if (rc <= 0) return rc;
    if (!rt_outq_count(&c->out)) {
      /* Closing after the last bytes: end with close_notify, so the peer knows nothing
       * was cut off (Python's ssl, for one, reports an EOF without it as an error). */
      if (!c->close_after_write || !t->established || t->said_goodbye) return 1;
      t->said_goodbye = 1;
      ERR_clear_error();
      SSL_shutdown(t->ssl);
      ERR_clear_error();
      continue;
    }
    if (!t->established) return 2;
    if (encrypt_queue(c) < 0) return -1;
  }
}

int rt_tls_flush(rt_conn *c) {
  rt_tls *t = c->tls;
  if (t->plain_reply) return send_plain_queue(c);
  if (t->failed) return 1;
  /* Like reads, writes go through the server's scratch buffer: a connection keeps
   * ciphertext only when the socket did not take it all. */
  rt_server *srv = c->srv;
  int scratch = t->out.cap == 0 && !srv->tls_scratch_busy;
  if (scratch) {
    t->out = srv->tls_scratch;
    srv->tls_scratch_busy = 1;
  }
  int rc = flush_tls(c);
  if (scratch) {
    rt_buf taken = t->out;
    memset(&t->out, 0, sizeof t->out);
    if (taken.len && rt_buf_append(&t->out, rt_buf_start(&taken), taken.len) < 0 && !c->closing) {
      rt_conn_close(c);
      rc = -1;
    }
    taken.len = taken.off = 0;
    srv->tls_scratch = taken;
    srv->tls_scratch_busy = 0;
  } else if (t->out.len == 0) {
    rt_buf_free(&t->out);
  }
  return rc;
}

size_t rt_tls_unsent(const rt_conn *c) { return c->tls ? c->tls->out.len : 0; }

void rt_tls_free(rt_conn *c) {
  rt_tls *t = c->tls;
  if (!t) return;
  ev_timer_stop(c->srv->loop, &t->handshake);
  SSL_free(t->ssl);
  rt_tls_ctx_unref(t->ctx);
  rt_buf_free(&t->out);
  free(t->peer_name);
  free(t->peer_subject);
  free(t->error);
  free(t);
  c->tls = NULL;
}

int rt_tls_established(const rt_conn *c) { return c->tls && c->tls->established; }
const char *rt_tls_alpn(const rt_conn *c) { return c->tls && c->tls->alpn[0] ? c->tls->alpn : NULL; }
const char *rt_tls_peer_name(const rt_conn *c) { return c->tls ? c->tls->peer_name : NULL; }
const char *rt_tls_peer_subject(const rt_conn *c) { return c->tls ? c->tls->peer_subject : NULL; }
const char *rt_tls_version(const rt_conn *c) {
  return c->tls && c->tls->established ? SSL_get_version(c->tls->ssl) : NULL;
}
int rt_tls_resumed(const rt_conn *c) { return c->tls && c->tls->resumed; }
const char *rt_tls_error(const rt_conn *c) {
  return c->tls ? c->tls->error : NULL;
}
