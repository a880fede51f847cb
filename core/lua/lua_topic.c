/* Topics for scripts: rt.core.topic_subscribe / unsubscribe / publish / count, and
 * history: rt.core.history_policies / topic_history. */
#include <stdlib.h>
#include <string.h>

#include "net/broker.h"
#include "net/history.h"
#include "net/presence.h"
#include "net/engine_msg.h"
#include "net/stream.h"
#include "net/presence_mirror.h"
#include "lua_int.h"
#include "ws/ws.h"

/* A history event of one subscriber, on its own coroutine: rt._dispatch.history(topic,
 * conn id, "recovered" | "lost", ok). */
static void history_event(rt_sub *s, const char *what, int ok) {
  rt_server *srv = s->conn->srv;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;
  lua_State *co = rt_lua_prepare(lx, "history");
  lua_pushstring(co, rt_sub_name(s));
  lua_pushnumber(co, (lua_Number)s->conn->id);
  lua_pushstring(co, what);
  lua_pushboolean(co, ok);
  rt_lua_start(lx, co, 4, 0);
}

static void sub_recovered(rt_sub *s, int ok) { history_event(s, "recovered", ok); }
static void sub_lost(rt_sub *s) { history_event(s, "lost", 0); }

void rt_lua_sub_events(rt_sub *s) {
  s->recovered = sub_recovered;
  s->lost = sub_lost;
}

void rt_lua_push_recovered(lua_State *L, int rc) {
  if (rc == RT_STREAM_PENDING) lua_pushnil(L);  /* rt.history's recovered handler says */
  else lua_pushboolean(L, rc == 1);
}

static rt_conn *ws_arg(lua_State *L, rt_server *srv, int idx) {
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, idx));
  return c && rt_ws_is_ws(c) ? c : NULL;
}

/* core.topic_subscribe(name, id [, epoch, since]) -> true [, recovered] | nil, err. With a
 * position, the messages after it are delivered first and recovered says whether that was
 * all the connection missed. */
static int l_subscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_conn *c = ws_arg(L, srv, 2);
  const char *epoch = luaL_optstring(L, 3, NULL);
  lua_Number since = luaL_optnumber(L, 4, 0);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  /* Subscribing twice is a no-op, not a second copy of every message. */
  rt_sub *s = rt_broker_find(srv->broker, name, c, rt_ws_deliver);
  if (!s && !(s = rt_broker_subscribe(srv->broker, name, c, rt_ws_deliver, NULL)))
    return luaL_error(L, "out of memory");
  rt_lua_sub_events(s);
  lua_pushboolean(L, 1);
  if (!epoch) return 1;
  rt_lua_push_recovered(L, since >= 0 ? rt_broker_replay(srv->broker, s, epoch, (uint64_t)since) : 0);
  return 2;
}

static int l_unsubscribe(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_conn *c = ws_arg(L, srv, 2);
  rt_sub *s = c ? rt_broker_find(srv->broker, name, c, rt_ws_deliver) : NULL;
  if (s) rt_broker_unsubscribe(srv->broker, s);
  lua_pushboolean(L, s != NULL);
  return 1;
}

/* core.topic_publish(name, data, binary) -> deliveries [, offset when the topic keeps
 * history] | nil, err (the engine refused it: local subscribers got it, the other
 * processes did not) */
static int l_publish(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  size_t len;
  const char *name = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &len);
  rt_msg m = {.destination = name, .binary = rt_lua_binary_arg(L, 3, data, len)};
  if (!(m.body = rt_chunk_copy(data, len))) return luaL_error(L, "out of memory");
  long n = rt_broker_publish(srv->broker, &m);
  rt_chunk_unref(m.body);
  rt_msg_release(&m);
  if (m.engine_error) {
    lua_pushnil(L);
    lua_pushstring(L, m.engine_error);
    return 2;
  }
  lua_pushinteger(L, n);
  if (!m.offset) return 1;
  lua_pushnumber(L, (lua_Number)m.offset);
  return 2;
}

typedef struct history_read {
  lua_State *L;
  int n;
} history_read;

/* { offset =, data =, binary = } appended to the table on top of the stack. */
static void push_entry(history_read *r, uint64_t offset, const void *data, size_t len, int binary) {
  lua_State *L = r->L;
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)offset);
  lua_setfield(L, -2, "offset");
  lua_pushlstring(L, data, len);
  lua_setfield(L, -2, "data");
  lua_pushboolean(L, binary);
  lua_setfield(L, -2, "binary");
  lua_rawseti(L, -2, ++r->n);
}

static int push_kept(void *ud, rt_msg *m) {
  push_entry(ud, m->offset, m->body->data, m->body->len, m->binary);
  return 0;
}

/* A script waiting in topic:history for the engine's answer. */
typedef struct engine_read {
  rt_lua *lx;
  lua_State *co;
  int thread_ref;
  uint64_t owner, since;
  size_t limit;
  int any_epoch;
  char epoch[RT_ENGINE_EPOCH_MAX + 1];
} engine_read;

static void on_engine_read(void *ud, const rt_engine_history *h) {
  engine_read *q = ud;
  lua_State *co = q->co;
  rt_buf scratch = {0};
  int nargs = 2;
  if (h->err) {
    lua_pushnil(co);
    lua_pushstring(co, h->err);
  } else {
    int same = q->any_epoch || strcmp(q->epoch, h->epoch) == 0;
    int complete = same && (q->since + 1 >= h->first || q->since >= h->top) && q->since <= h->top;
    lua_newtable(co);
    history_read r = {co, 0};
    for (size_t i = 0; same && i < h->n && (!q->limit || (size_t)r.n < q->limit); i++) {
      rt_engine_msg em;
      char err[160];
      if (rt_engine_msg_decode(h->items[i], h->lens[i], &em, &scratch, err, sizeof err) < 0 ||
          em.offset <= q->since)
        continue;
      push_entry(&r, em.offset, em.body, em.body_len, em.binary);
    }
    lua_pushstring(co, h->epoch);
    lua_pushnumber(co, (lua_Number)h->top);
    lua_pushboolean(co, complete);
    nargs = 4;
  }
  rt_buf_free(&scratch);
  rt_lua_resume(q->lx, co, nargs, q->owner);
  luaL_unref(q->lx->L, LUA_REGISTRYINDEX, q->thread_ref);
  free(q);
}

/* With the history in the engine, inside a handler: the calling coroutine waits for the
 * engine's answer (the same values, or nil, err when the engine is down). */
static int history_from_engine(lua_State *L, rt_server *srv, const char *name, uint64_t since,
                               size_t limit, const char *epoch) {
  engine_read *q = calloc(1, sizeof *q);
  if (!q) return luaL_error(L, "out of memory");
  q->lx = rt_lua_get(srv);
  q->co = L;
  q->owner = q->lx->current_owner;
  q->since = since;
  q->limit = limit;
  q->any_epoch = epoch == NULL;
  snprintf(q->epoch, sizeof q->epoch, "%s", epoch ? epoch : "");
  if (rt_streams_read(rt_broker_streams(srv->broker), name, since, limit, on_engine_read, q) < 0) {
    free(q);
    lua_pushnil(L);
    lua_pushliteral(L, "the engine is down: the history cannot be read now");
    return 2;
  }
  lua_pushthread(L);
  q->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return lua_yield(L, 0);
}

/* core.topic_history(name, since, limit [, epoch]) -> messages, epoch, offset, complete.
 * The messages kept after since; complete: they are all there was (false: the history
 * no longer reaches back, or epoch is not the topic's, and then there are none). */
static int l_history(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_history *h = rt_broker_history(srv->broker);
  const char *name = luaL_checkstring(L, 1);
  lua_Number since = luaL_optnumber(L, 2, 0), limit = luaL_optnumber(L, 3, 0);
  const char *epoch = luaL_optstring(L, 4, NULL);
  if (since < 0 || limit < 0) return luaL_error(L, "topic:history: since and limit must be >= 0");
  /* In a handler (a coroutine, not the script's main chunk), the engine's history. */
  int in_handler = !lua_pushthread(L);
  lua_pop(L, 1);
  if (in_handler && rt_streams_cover(rt_broker_streams(srv->broker), name))
    return history_from_engine(L, srv, name, (uint64_t)since, (size_t)limit, epoch);
  lua_newtable(L);
  history_read r = {L, 0};
  int complete = rt_history_read(h, name, epoch, (uint64_t)since, (size_t)limit, 1, push_kept, &r);
  const char *cur;
  uint64_t top = rt_history_top(h, name, &cur);
  lua_pushstring(L, cur);
  lua_pushnumber(L, (lua_Number)top);
  lua_pushboolean(L, complete);
  return 4;
}

/* core.topic_position(name) -> epoch, offset. A topic with history gets its epoch now if
 * nothing was published to it yet; ("", 0) for one without. */
static int l_position(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *epoch, *name = luaL_checkstring(L, 1);
  rt_streams *ss = rt_broker_streams(srv->broker);
  /* With the history in the engine, only the engine makes epochs: where this node is. */
  uint64_t top = rt_streams_cover(ss, name) ? rt_streams_position(ss, name, &epoch)
                                            : rt_history_position(rt_broker_history(srv->broker), name, &epoch);
  lua_pushstring(L, epoch);
  lua_pushnumber(L, (lua_Number)top);
  return 2;
}

/* ---- presence ---------------------------------------------------------------------- */

typedef struct presence_list {
  lua_State *L;
  const char *node;
  int n;
} presence_list;

static void push_member(void *ud, const rt_sub *s) {
  presence_list *pl = ud;
  lua_State *L = pl->L;
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)s->conn->id);
  lua_setfield(L, -2, "id");
  if (s->conn->user) {
    lua_pushstring(L, s->conn->user);
    lua_setfield(L, -2, "user");
  }
  lua_pushstring(L, pl->node);
  lua_setfield(L, -2, "node");
  lua_rawseti(L, -2, ++pl->n);
}

static void push_mirrored(void *ud, const char *topic, const rt_pmember *m) {
  presence_list *pl = ud;
  lua_State *L = pl->L;
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)m->conn);
  lua_setfield(L, -2, "id");
  /* Our own connections say who they are now (a script may set it after subscribing);
   * the others' what their node said at the join. */
  rt_conn *c = m->local ? rt_conn_find(rt_lua_server(L), m->conn) : NULL;
  const char *user = c ? c->user : m->user;
  if (user) {
    lua_pushstring(L, user);
    lua_setfield(L, -2, "user");
  }
  lua_pushstring(L, m->node);
  lua_setfield(L, -2, "node");
  lua_rawseti(L, -2, ++pl->n);
}

/* core.topic_presence(name) -> { {id, user, node}, ... }: the whole cluster's for a topic
 * with presence, this process's subscribers for any other. */
static int l_presence(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_presence *p = rt_broker_presence(srv->broker);
  lua_newtable(L);
  presence_list pl = {L, rt_presence_node(p), 0};
  if (rt_presence_covers(p, name)) rt_presence_each(p, name, push_mirrored, &pl);
  else rt_broker_each_sub(srv->broker, name, push_member, &pl);
  return 1;
}

/* core.presence_policies({ pattern, ... }, ttl): replaces every policy (a load). */
static int l_presence_policies(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_presence *p = rt_broker_presence(srv->broker);
  luaL_checktype(L, 1, LUA_TTABLE);
  rt_presence_set_ttl(p, luaL_optnumber(L, 2, RT_PRESENCE_DEFAULT_TTL));
  rt_presence_clear_policies(p);
  int n = (int)lua_objlen(L, 1);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    const char *pattern = lua_tostring(L, -1);
    if (rt_presence_policy(p, pattern) < 0)
      return luaL_error(L, "rt.presence: cannot watch '%s'", pattern ? pattern : "?");
    lua_pop(L, 1);
  }
  return 0;
}

/* core.conn_set_user(id, user_or_nil) -> true | nil, "closed" */
static int l_conn_set_user(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_conn *c = rt_conn_find(srv, (uint64_t)luaL_checknumber(L, 1));
  const char *user = luaL_optstring(L, 2, NULL);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (rt_conn_set_user(c, user) < 0) return luaL_error(L, "out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.topic_match(pattern, name) -> boolean (broker pattern syntax) */
static int l_match(lua_State *L) {
  lua_pushboolean(L, rt_broker_pattern_match(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
  return 1;
}

/* A join or leave, on the loop turn after it happened: rt._dispatch.presence. */
static void on_presence(void *ud, const char *topic, uint64_t conn, const char *user,
                        const char *node, int joined) {
  rt_server *srv = ud;
  rt_lua *lx = rt_lua_get(srv);
  if (!lx) return;  /* another app took over */
  lua_State *co = rt_lua_prepare(lx, "presence");
  lua_pushstring(co, topic);
  lua_pushnumber(co, (lua_Number)conn);
  if (user) lua_pushstring(co, user);
  else lua_pushnil(co);
  lua_pushboolean(co, joined);
  lua_pushstring(co, node);
  lua_pushboolean(co, strcmp(node, rt_presence_node(rt_broker_presence(srv->broker))) == 0);
  rt_lua_start(lx, co, 6, 0);
}

/* core.history_policies({ {pattern, size, ttl}, ... }): replaces every policy (a load). */
static int l_history_policies(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  rt_history *h = rt_broker_history(srv->broker);
  luaL_checktype(L, 1, LUA_TTABLE);
  rt_history_clear_policies(h);
  int n = (int)lua_objlen(L, 1);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    const char *pattern = lua_tostring(L, -3);
    lua_Number size = lua_tonumber(L, -2), ttl = lua_tonumber(L, -1);
    if (rt_history_policy(h, pattern, size > 0 ? (size_t)size : 0, ttl) < 0)
      return luaL_error(L, "rt.history: cannot keep history for '%s'", pattern ? pattern : "?");
    lua_pop(L, 4);
  }
  return 0;
}

static int l_count(lua_State *L) {
  rt_server *srv = rt_lua_server(L);
  const char *name = luaL_checkstring(L, 1);
  rt_presence *p = rt_broker_presence(srv->broker);
  /* A topic with presence: the distinct connections of the whole cluster. */
  if (rt_presence_covers(p, name)) lua_pushinteger(L, (lua_Integer)rt_presence_count(p, name));
  else lua_pushinteger(L, (lua_Integer)rt_broker_count(srv->broker, name));
  return 1;
}

void rt_lua_open_topic(lua_State *L, rt_server *srv) {
  static const luaL_Reg fns[] = {{"topic_subscribe", l_subscribe}, {"topic_unsubscribe", l_unsubscribe},
                                 {"topic_publish", l_publish}, {"topic_count", l_count},
                                 {"topic_history", l_history}, {"topic_position", l_position},
                                 {"history_policies", l_history_policies},
                                 {"topic_presence", l_presence},
                                 {"presence_policies", l_presence_policies},
                                 {"conn_set_user", l_conn_set_user}, {"topic_match", l_match},
                                 {NULL, NULL}};
  rt_lua_set_funcs(L, srv, fns);
  rt_presence_set_hook(rt_broker_presence(srv->broker), on_presence, srv);
}
