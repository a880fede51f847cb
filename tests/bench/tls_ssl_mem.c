/*
 * tls_ssl_mem.c — what OpenSSL itself keeps per established server connection, as a floor
 * for (g)'s idle wss:// figure: N server SSL objects configured as rtserver's (TLS 1.2+,
 * record buffers released when idle, session cache on) finish a TLS 1.3 handshake over
 * memory BIOs with a throwaway client, their BIOs are swapped for empty ones, and the heap
 * growth (glibc mallinfo2) is divided by N.
 *
 *   tls_ssl_mem CERT.pem KEY.pem      -> "RESULT kib_per_ssl=..."
 */
#include <malloc.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 2000 };

static void pump(SSL *from, SSL *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0)
        BIO_write(SSL_get_rbio(to), buf, n);
}

static SSL *with_mem_bios(SSL *s)
{
    SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tls_ssl_mem CERT.pem KEY.pem\n");
        return 2;
    }
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"rtserver", 8);
    if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tls_ssl_mem: cannot load %s / %s\n", argv[1], argv[2]);
        return 1;
    }
    static SSL *keep[N];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        SSL *sv = with_mem_bios(SSL_new(sctx)), *cl = with_mem_bios(SSL_new(cctx));
        SSL_set_accept_state(sv);
        SSL_set_connect_state(cl);
        for (int k = 0; k < 8 && !(SSL_is_init_finished(sv) && SSL_is_init_finished(cl)); k++) {
            SSL_do_handshake(cl);
            pump(cl, sv);
            SSL_do_handshake(sv);
            pump(sv, cl);
        }
        if (!SSL_is_init_finished(sv)) {
            fprintf(stderr, "tls_ssl_mem: the handshake did not finish\n");
            return 1;
        }
        with_mem_bios(sv);  /* drops the BIOs the handshake filled */
        SSL_free(cl);
        keep[i] = sv;
    }
    struct mallinfo2 after = mallinfo2();
    printf("RESULT conns=%d kib_per_ssl=%.2f\n", N,
           (double)(after.uordblks - before.uordblks) / N / 1024);
    for (int i = 0; i < N; i++)
        SSL_free(keep[i]);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
