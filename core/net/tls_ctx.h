/* TLS contexts: what a side of a TLS connection is configured with (OpenSSL's SSL_CTX).
 *
 * A server context holds the certificate chain and key (and, for mutual TLS, the CAs a
 * client certificate must chain to), offers ALPN h2 then http/1.1, and speaks only TLS 1.2
 * and 1.3 with OpenSSL's default ciphers and session resumption (tickets and a session
 * cache). Reloading reads the files again into a new SSL_CTX and swaps it in only when
 * it loaded: connections already up keep the one they started with.
 *
 * A client context (the gRPC client) verifies the server against the system's CAs or a CA
 * file, may present a client certificate, and asks for ALPN h2 (unless told not to). */
#ifndef RT_TLS_CTX_H
#define RT_TLS_CTX_H

#include <stddef.h>

typedef struct rt_tls_ctx rt_tls_ctx;

typedef struct rt_tls_ctx_opts {
  const char *cert;       /* PEM certificate (chain); required for a server */
  const char *key;        /* PEM private key for cert */
  const char *ca;         /* server: CAs for client certificates (mutual TLS, required);
                             client: CAs for the server (NULL = the system's) */
  int no_verify;          /* client: accept any server certificate (tests only) */
  int no_alpn;            /* client: offer no ALPN protocol (not HTTP/2: a STOMP broker) */
} rt_tls_ctx_opts;

rt_tls_ctx *rt_tls_server_ctx_new(const rt_tls_ctx_opts *o, char *err, size_t errlen);
rt_tls_ctx *rt_tls_client_ctx_new(const rt_tls_ctx_opts *o, char *err, size_t errlen);
/* Reads a server context's files again. On failure the old certificate stays and err
 * says why. */
int rt_tls_ctx_reload(rt_tls_ctx *ctx, char *err, size_t errlen);
/* The certificate's subject and expiry, for the log ("CN=localhost, until ..."). */
void rt_tls_ctx_describe(const rt_tls_ctx *ctx, char *out, size_t outlen);
/* The files the context was made from (cert, key, ca; NULL where not given). */
const char *rt_tls_ctx_file(const rt_tls_ctx *ctx, int which);
int rt_tls_ctx_verifies_peer(const rt_tls_ctx *ctx);

rt_tls_ctx *rt_tls_ctx_ref(rt_tls_ctx *ctx);
void rt_tls_ctx_unref(rt_tls_ctx *ctx);

/* For tls.c: the SSL_CTX new connections start from, and the BIO method that points
 * OpenSSL at a connection's buffers. */
struct ssl_ctx_st *rt_tls_ctx_ssl(const rt_tls_ctx *ctx);
const struct bio_method_st *rt_tls_ctx_bio_method(const rt_tls_ctx *ctx);
int rt_tls_ctx_is_server(const rt_tls_ctx *ctx);

#endif
