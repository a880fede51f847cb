/* Listening sockets: IPv4 and IPv6, non-blocking accept into new connections. */
#ifndef RT_LISTEN_H
#define RT_LISTEN_H

#include <ev.h>
#include <stddef.h>

typedef struct rt_server rt_server;
typedef struct rt_conn rt_conn;

typedef struct rt_listener {
  rt_server *srv;
  int fd;
  int port;
  ev_io io;
  ev_timer retry;   /* accept paused after EMFILE, resumed by this */
  void (*on_accept)(rt_conn *c, void *data);  /* sets the first protocol */
  void *data;
  struct rt_listener *next;
} rt_listener;

/* Binds every address host resolves to. Returns the first listener, linked to the
 * others through next, or NULL with err filled. */
rt_listener *rt_listen(rt_server *srv, const char *host, int port,
                       void (*on_accept)(rt_conn *, void *), void *data,
                       char *err, size_t errlen);
void rt_listener_close(rt_listener *l);

#endif
