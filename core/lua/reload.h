/* Hot reload while developing: libev stat watchers on the app's files (the script, the
 * modules it required, the .proto files it loaded). A change, debounced, reloads the
 * app; the watched set is refreshed after every load since a new version may require
 * new files. */
#ifndef RT_RELOAD_H
#define RT_RELOAD_H

typedef struct rt_lua rt_lua;

/* Replaces the watched set. */
void rt_reload_watch(rt_lua *lx, const char *const *files, int n);
void rt_reload_free(rt_lua *lx);

#endif
