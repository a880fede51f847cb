/* Outgoing TCP connections: a non-blocking connect watched by the loop, then an rt_conn
 * the caller plugs its protocol into. The answer always comes from the loop, never from
 * inside rt_dial_start, so a caller can start a dial while it holds its own state. */
#ifndef RT_DIAL_H
#define RT_DIAL_H

#include "conn.h"

typedef struct rt_dial rt_dial;

/* c: the connected rt_conn (no protocol yet: set one at once), or NULL with err. The dial
 * is freed after the callback returns. */
typedef void (*rt_dial_cb)(void *ud, rt_conn *c, const char *err);

/* Connects to host:port (a numeric address resolves without a lookup; a name is resolved
 * here, blocking the loop for it), trying each address in turn, all within timeout
 * seconds. Returns NULL only when out of memory. */
rt_dial *rt_dial_start(rt_server *srv, const char *host, int port, double timeout,
                       rt_dial_cb cb, void *ud);
/* Gives up; the callback is never called. */
void rt_dial_cancel(rt_dial *d);

#endif
