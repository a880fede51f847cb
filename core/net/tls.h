/* TLS on a connection: OpenSSL between the socket and the protocols.
 *
 * conn.c still owns the socket: it hands the ciphertext it receives to rt_tls_read, which
 * decrypts into c->in, and asks rt_tls_flush to encrypt the write queue and send it. The
 * protocols above (HTTP/1.1, WebSocket, STOMP, HTTP/2) read c->in and write c->out as
 * they always do and never know TLS is there. OpenSSL reads and writes through a BIO of
 * our own that points at those buffers: no socket BIO, no BIO pair with fixed buffers.
 *
 * The contexts (certificate, key, CAs, ALPN) live in tls_ctx.c. */
#ifndef RT_TLS_H
#define RT_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct rt_conn rt_conn;
typedef struct rt_tls_ctx rt_tls_ctx;
typedef struct rt_tls rt_tls;

/* Server side: the connection waits for a ClientHello. handshake_timeout > 0 cuts a
 * handshake that has not finished in that many seconds. */
int rt_tls_accept(rt_conn *c, rt_tls_ctx *ctx, double handshake_timeout);
/* Client side: sends a ClientHello for server_name (SNI and the name the certificate must
 * carry when the context verifies). Output queued before the handshake ends waits. */
int rt_tls_connect(rt_conn *c, rt_tls_ctx *ctx, const char *server_name, double handshake_timeout);

/* conn.c's side. rt_tls_read receives from the socket and appends plaintext to c->in;
 * it returns the bytes appended, 0 when the peer closed, or -1 with errno (EAGAIN: nothing
 * for the protocol yet, e.g. mid-handshake; anything else: the connection is dead). */
ssize_t rt_tls_read(rt_conn *c);
/* Encrypts the write queue and sends. Returns 1 when everything left, 0 when the socket
 * is full, 2 when the output waits for the handshake, -1 when the connection died. */
int rt_tls_flush(rt_conn *c);
/* Bytes encrypted but not yet sent (a closing connection waits for them). */
size_t rt_tls_unsent(const rt_conn *c);
void rt_tls_free(rt_conn *c);

/* What the handshake settled; NULL/0 before it ended. */
int rt_tls_established(const rt_conn *c);
const char *rt_tls_alpn(const rt_conn *c);
/* The verified client (or server) certificate's identity: the first subjectAltName
 * (DNS, email or URI) or else the subject's CN; NULL when the peer sent none. */
const char *rt_tls_peer_name(const rt_conn *c);
/* The verified peer certificate's subject, one line (RFC 2253); NULL when none. */
const char *rt_tls_peer_subject(const rt_conn *c);
const char *rt_tls_version(const rt_conn *c);
int rt_tls_resumed(const rt_conn *c);
/* Why the handshake failed, for a client that wants to tell its caller; NULL if it did not. */
const char *rt_tls_error(const rt_conn *c);

/* Why server-side handshakes fail, as counted in /metrics. */
enum { RT_TLS_FAIL_PROTOCOL, RT_TLS_FAIL_VERIFY, RT_TLS_FAIL_TIMEOUT, RT_TLS_FAIL_CLOSED,
       RT_TLS_FAIL_PLAIN_HTTP, RT_TLS_FAIL_COUNT };
extern const char *const rt_tls_fail_names[RT_TLS_FAIL_COUNT];

/* For tls_ctx.c: a BIO method whose reads and writes go to a connection's buffers. */
struct bio_method_st *rt_tls_bio_method_new(void);

#endif
