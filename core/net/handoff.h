/* Passing a connection between processes: one datagram with its socket attached
 * (SCM_RIGHTS) over a handoff socket (workers.h), non-blocking both ways. */
#ifndef RT_HANDOFF_H
#define RT_HANDOFF_H

#include <stddef.h>
#include <sys/types.h>

/* Sends len bytes of data with fd. Returns the bytes sent (all of them, or an error). */
ssize_t rt_handoff_send(int sock, const void *data, size_t len, int fd);
/* Receives one datagram into buf; *fd is the descriptor that came with it, or -1. Returns
 * its length; <= 0 when nothing is waiting (or the socket is gone). */
ssize_t rt_handoff_recv(int sock, void *buf, size_t cap, int *fd);

#endif
