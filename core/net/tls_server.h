/* The server's own certificate (rt_config's tls_* fields): loading, reloading, watching. */
#ifndef RT_TLS_SERVER_H
#define RT_TLS_SERVER_H

#include <stddef.h>

typedef struct rt_server rt_server;
typedef struct rt_tls_watch rt_tls_watch;

/* Loads the certificate when the config names one; 0 when TLS is off or it loaded. */
int rt_tls_server_init(rt_server *srv, char *err, size_t errlen);
/* With cfg.watch: reload when the certificate, key or client CA file changes. */
void rt_tls_server_watch(rt_server *srv);
void rt_tls_server_free(rt_server *srv);

#endif
