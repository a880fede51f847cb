#include "tls_ctx.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

struct rt_tls_ctx {
  int refs;
  int server;
  SSL_CTX *ssl;
  BIO_METHOD *bio;     /* owned here: every connection of this context uses it */
  char *files[3];      /* cert, key, ca */
  int no_verify;
};

/* One line from OpenSSL's error queue (the last error is the most specific), cleared. */
static void ssl_err(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_last_error();
  char buf[256] = "unknown error";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  snprintf(err, errlen, "%s: %s", what, buf);
}

/* HTTP/2 here serves gRPC only (pages, HTTP routes and WebSocket are HTTP/1.1), so a
 * client that can speak http/1.1 (a browser, curl) gets it, and h2 goes to clients that
 * offer h2 without http/1.1: gRPC clients (grpc-js offers "h2", grpc core "grpc-exp,h2"). */
static int select_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  const unsigned char *h2 = NULL;
  for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) h2 = in + i + 1;
  }
  if (h2) {
    *out = h2;
    *outlen = 2;
    return SSL_TLSEXT_ERR_OK;
  }
  /* Nothing we speak was offered: go on without ALPN (HTTP/1.1), as nginx does. */
  return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *base_ctx(int server, char *err, size_t errlen) {
  SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!s) {
    ssl_err(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  /* TLS 1.0 and 1.1 are deprecated (RFC 8996): a client offering only those is refused. */
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  /* Idle connections give their 16 KiB record buffers back. */
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION);
  return s;
}

static int load_server_files(SSL_CTX *s, char *const *files, char *err, size_t errlen) {
  char what[512];
  if (SSL_CTX_use_certificate_chain_file(s, files[0]) != 1) {
    snprintf(what, sizeof what, "cannot load the certificate '%s'", files[0]);
    ssl_err(err, errlen, what);
    return -1;
  }
  if (SSL_CTX_use_PrivateKey_file(s, files[1], SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
      snprintf(what, sizeof what, "the key '%s' does not match the certificate '%s'", files[1],
               files[0]);
    else
      snprintf(what, sizeof what, "cannot load the key '%s'", files[1]);
    ssl_err(err, errlen, what);
    return -1;
  }
  if (SSL_CTX_check_private_key(s) != 1) {
    snprintf(what, sizeof what, "the key '%s' does not match the certificate '%s'", files[1],
             files[0]);
    ssl_err(err, errlen, what);
    return -1;
  }
  if (files[2]) {
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(files[2]);
    if (!names || SSL_CTX_load_verify_locations(s, files[2], NULL) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      snprintf(what, sizeof what, "cannot load the client CA file '%s'", files[2]);
      ssl_err(err, errlen, what);
      return -1;
    }
    SSL_CTX_set_client_CA_list(s, names);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  return 0;
}

static SSL_CTX *server_ssl_new(char *const *files, char *err, size_t errlen) {
  SSL_CTX *s = base_ctx(1, err, errlen);
  if (!s) return NULL;
  if (load_server_files(s, files, err, errlen) < 0) {
    SSL_CTX_free(s);
    return NULL;
  }
  SSL_CTX_set_alpn_select_cb(s, select_alpn, NULL);
  /* Sessions resume from tickets (1.2 and 1.3) and from the cache (1.2 session ids); the
   * id context is required for resumption once client certificates are verified. */
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(s, (const unsigned char *)"rtserver", 8);
  return s;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static rt_tls_ctx *wrap(SSL_CTX *s, int server, const rt_tls_ctx_opts *o, char *err,
                        size_t errlen) {
  rt_tls_ctx *ctx = calloc(1, sizeof *ctx);
  BIO_METHOD *bio = ctx ? rt_tls_bio_method_new() : NULL;
  if (!ctx || !bio) {
    free(ctx);
    SSL_CTX_free(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ctx->refs = 1;
  ctx->server = server;
  ctx->ssl = s;
  ctx->bio = bio;
  ctx->files[0] = dup_or_null(o->cert);
  ctx->files[1] = dup_or_null(o->key);
  ctx->files[2] = dup_or_null(o->ca);
  ctx->no_verify = o->no_verify;
  return ctx;
}

rt_tls_ctx *rt_tls_server_ctx_new(const rt_tls_ctx_opts *o, char *err, size_t errlen) {
  if (!o->cert || !o->key) {
    snprintf(err, errlen, "TLS needs both a certificate and a key (--tls-cert, --tls-key)");
    return NULL;
  }
  char *files[3] = {(char *)o->cert, (char *)o->key, (char *)o->ca};
  SSL_CTX *s = server_ssl_new(files, err, errlen);
  return s ? wrap(s, 1, o, err, errlen) : NULL;
}

rt_tls_ctx *rt_tls_client_ctx_new(const rt_tls_ctx_opts *o, char *err, size_t errlen) {
  if (!o->cert != !o->key) {
    snprintf(err, errlen, "a client certificate needs both the certificate and its key");
    return NULL;
  }
  SSL_CTX *s = base_ctx(0, err, errlen);
  if (!s) return NULL;
  char what[512];
  if (o->no_verify) {
    SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    int ok = o->ca ? SSL_CTX_load_verify_locations(s, o->ca, NULL)
                   : SSL_CTX_set_default_verify_paths(s);
    if (ok != 1) {
      snprintf(what, sizeof what, "cannot load the CA file '%s'", o->ca ? o->ca : "(system)");
      ssl_err(err, errlen, what);
      SSL_CTX_free(s);
      return NULL;
    }
  }
  if (o->cert) {
    char *files[3] = {(char *)o->cert, (char *)o->key, NULL};
    if (load_server_files(s, files, err, errlen) < 0) {
      SSL_CTX_free(s);
      return NULL;
    }
  }
  static const unsigned char h2[] = "\x02h2";
  if (!o->no_alpn) SSL_CTX_set_alpn_protos(s, h2, sizeof h2 - 1);
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT);
  return wrap(s, 0, o, err, errlen);
}

int rt_tls_ctx_reload(rt_tls_ctx *ctx, char *err, size_t errlen) {
  if (!ctx->server) {
    snprintf(err, errlen, "only a server context reloads");
    return -1;
  }
  SSL_CTX *s = server_ssl_new(ctx->files, err, errlen);
  if (!s) return -1;
  /* Keep the ticket keys: tickets handed out before the reload still resume. */
  unsigned char keys[80];
  if (SSL_CTX_get_tlsext_ticket_keys(ctx->ssl, keys, sizeof keys) == 1)
    SSL_CTX_set_tlsext_ticket_keys(s, keys, sizeof keys);
  OPENSSL_cleanse(keys, sizeof keys);
  /* Connections hold their own reference to the old SSL_CTX (SSL_new takes one). */
  SSL_CTX_free(ctx->ssl);
  ctx->ssl = s;
  return 0;
}

void rt_tls_ctx_describe(const rt_tls_ctx *ctx, char *out, size_t outlen) {
  X509 *x = SSL_CTX_get0_certificate(ctx->ssl);
  snprintf(out, outlen, "no certificate");
  if (!x) return;
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return;
  X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
  BIO_puts(b, ", valid until ");
  ASN1_TIME_print(b, X509_get0_notAfter(x));
  char *p;
  long n = BIO_get_mem_data(b, &p);
  snprintf(out, outlen, "%.*s", (int)n, p);
  BIO_free(b);
}

const char *rt_tls_ctx_file(const rt_tls_ctx *ctx, int which) {
  return which >= 0 && which < 3 ? ctx->files[which] : NULL;
}

int rt_tls_ctx_verifies_peer(const rt_tls_ctx *ctx) {
  return ctx->server ? ctx->files[2] != NULL : !ctx->no_verify;
}

rt_tls_ctx *rt_tls_ctx_ref(rt_tls_ctx *ctx) {
  ctx->refs++;
  return ctx;
}

void rt_tls_ctx_unref(rt_tls_ctx *ctx) {
  if (!ctx || --ctx->refs > 0) return;
  SSL_CTX_free(ctx->ssl);
  BIO_meth_free(ctx->bio);
  for (int i = 0; i < 3; i++) free(ctx->files[i]);
  free(ctx);
}

SSL_CTX *rt_tls_ctx_ssl(const rt_tls_ctx *ctx) { return ctx->ssl; }
const BIO_METHOD *rt_tls_ctx_bio_method(const rt_tls_ctx *ctx) { return ctx->bio; }
int rt_tls_ctx_is_server(const rt_tls_ctx *ctx) { return ctx->server; }
