/*
 * wsload_tls.c — wsload's optional TLS (--tls): OpenSSL on each connection's socket,
 * between wsload_net.c's reads and writes and the bytes the modes see. The client does
 * not verify the server (the bench measures the server, not certificate checks) and
 * offers no ALPN, like most WebSocket clients.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include "wsload_int.h"

static SSL_CTX *ctx;

int tls_init(void)
{
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return -1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Writes behave like send(): a short write, the rest queued by the caller. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

int tls_start(struct conn *c)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    SSL_set_connect_state(c->ssl);
    return 0;
}

/* 1: done; 0: wants *events; -1: failed. */
int tls_handshake(struct conn *c, int *events)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: *events = EV_READ; return 0;
    case SSL_ERROR_WANT_WRITE: *events = EV_WRITE; return 0;
    default: return -1;
    }
}

static ssize_t result(struct conn *c, int r)
{
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = EPROTO;
    return -1;
}

ssize_t tls_send(struct conn *c, const void *p, size_t n)
{
    ERR_clear_error();
    return result(c, SSL_write(c->ssl, p, n > 1u << 30 ? 1 << 30 : (int)n));
}

ssize_t tls_recv(struct conn *c, void *p, size_t n)
{
    ERR_clear_error();
    return result(c, SSL_read(c->ssl, p, n > 1u << 30 ? 1 << 30 : (int)n));
}

void tls_end(struct conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
}
