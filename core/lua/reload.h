/* Hot reload while developing: libev stat watchers on the app's files (the script, the
 * modules it required, the .proto files it loaded). A change, debounced, reloads the
 * app; the watched set is refreshed after every load since a new version may require
 * new files. */
#ifndef RT_RELOAD_H
#define RT_RELOAD_H

typedef struct rt_server rt_server;

/* Replaces the watched set. */
void rt_reload_watch(rt_server *srv, const char *const *files, int n);
void rt_reload_free(rt_server *srv);

#endif
