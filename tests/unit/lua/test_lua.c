/* Unit tests for the Lua bridge (core/lua_*.c, lua/rt.lua) through the public API:
 * loading app scripts, their errors, rt.c functions registered from C, reload, handler
 * errors, timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "lua/lua_int.h"
#include "net/server_int.h"
#include "tnet.h"

typedef struct fx {
  tsrv t;
  char path[256];  /* a script file a test may rewrite */
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (tsrv_start(&f->t, NULL) < 0) {
    fprintf(stderr, "server: %s\n", f->t.err);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  tsrv_stop(&f->t);
  if (f->path[0]) unlink(f->path);
  free(f);
  return 0;
}

/* Writes source to f->path (created on first use). */
static void write_script(fx *f, const char *source) {
  if (!f->path[0]) {
    const char *p = tsrv_temp_script("lua", source);
    assert_non_null(p);
    snprintf(f->path, sizeof f->path, "%s", p);
    return;
  }
  FILE *fp = fopen(f->path, "w");
  assert_non_null(fp);
  fputs(source, fp);
  fclose(fp);
}

static int load(fx *f, const char *source) {
  write_script(f, source);
  return rt_server_load_app(f->t.srv, f->path, f->t.err, sizeof f->t.err);
}

/* The global name as a number (or -1 if it is not one). */
static double global_number(fx *f, const char *name) {
  lua_State *L = rt_server_lua(f->t.srv);
  lua_getglobal(L, name);
  double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : -1;
  lua_pop(L, 1);
  return v;
}

static const char *global_string(fx *f, const char *name, char *out, size_t cap) {
  lua_State *L = rt_server_lua(f->t.srv);
  lua_getglobal(L, name);
  if (lua_isstring(L, -1)) snprintf(out, cap, "%s", lua_tostring(L, -1));
  else snprintf(out, cap, "(not a string)");
  lua_pop(L, 1);
  return out;
}

/* A GET over a socketpair; returns the response status and copies the body. */
static int http_get(fx *f, const char *path, char *body, size_t cap) {
  int fd;
  rt_conn *c = tconn_http(&f->t, &fd);
  assert_non_null(c);
  char req[256], head[2048];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
  assert_int_equal(tclient_write(f->t.loop, fd, req, (size_t)n), 0);
  size_t hl = tclient_read_head(f->t.loop, fd, head, sizeof head, 2.0);
  if (!hl) fail_msg("no response to GET %s", path);
  int status = 0;
  sscanf(head, "HTTP/1.1 %d", &status);
  int eof;
  size_t bl = tclient_read(f->t.loop, fd, (uint8_t *)body, cap - 1, 2.0, &eof);
  body[bl] = 0;
  close(fd);
  tloop_spin(f->t.loop, 2);
  return status;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_good_script_loads(void **state) {
  fx *f = *state;
  assert_int_equal(load(f, "local rt = require 'rt'\nrawset(_G, 'loaded_ok', 7)\n"), 0);
  assert_int_equal(global_number(f, "loaded_ok"), 7);
}

static void test_syntax_error_names_file_and_line(void **state) {
  fx *f = *state;
  assert_int_equal(load(f, "local rt = require 'rt'\n\nlocal x = = 1\n"), -1);
  const char *base = strrchr(f->path, '/') + 1;
  if (!strstr(f->t.err, base)) fail_msg("error does not name the file: %s", f->t.err);
  if (!strstr(f->t.err, ":3:")) fail_msg("error does not name line 3: %s", f->t.err);
  assert_null(strchr(f->t.err, '\n'));
}

static void test_runtime_error_at_load(void **state) {
  fx *f = *state;
  assert_int_equal(load(f, "local rt = require 'rt'\nlocal t = nil\nrawset(_G, 'before', 1)\nprint(t.field)\n"), -1);
  if (!strstr(f->t.err, ":4:")) fail_msg("error does not name line 4: %s", f->t.err);
  assert_non_null(strstr(f->t.err, "nil value"));
  assert_null(strchr(f->t.err, '\n'));  /* one line, the traceback goes to the log */
  assert_int_equal(load(f, "error('custom failure')\n"), -1);
  assert_non_null(strstr(f->t.err, "custom failure"));
  assert_non_null(strstr(f->t.err, ":1:"));
}

static void test_missing_script(void **state) {
  fx *f = *state;
  char err[256];
  assert_int_equal(rt_server_load_app(f->t.srv, "/nonexistent/dir/app.lua", err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/dir/app.lua"));
}

static int c_add(lua_State *L) {
  lua_pushnumber(L, luaL_checknumber(L, 1) + luaL_checknumber(L, 2));
  return 1;
}

static rt_server *seen_srv;
static int c_whoami(lua_State *L) {
  seen_srv = rt_lua_server(L);
  lua_pushstring(L, "c side");
  return 1;
}

static int c_fail(lua_State *L) { return luaL_error(L, "refused by C"); }

static void test_register_function(void **state) {
  fx *f = *state;
  assert_int_equal(rt_server_register_function(f->t.srv, "add", c_add), 0);
  assert_int_equal(rt_server_register_function(f->t.srv, "whoami", c_whoami), 0);
  assert_int_equal(load(f,
                        "local rt = require 'rt'\n"
                        "rawset(_G, 'sum', rt.c.add(40, 2))\n"
                        "rawset(_G, 'who', rt.c.whoami())\n"),
                   0);
  assert_int_equal(global_number(f, "sum"), 42);
  char buf[64];
  assert_string_equal(global_string(f, "who", buf, sizeof buf), "c side");
  /* the function gets its server as upvalue 1 */
  assert_ptr_equal(seen_srv, f->t.srv);

  /* a C error at load time fails the load with its message */
  assert_int_equal(rt_server_register_function(f->t.srv, "fail", c_fail), 0);
  assert_int_equal(load(f, "local rt = require 'rt'\nrt.c.fail()\n"), -1);
  assert_non_null(strstr(f->t.err, "refused by C"));
  /* a name never registered is nil, not a crash */
  assert_int_equal(load(f, "local rt = require 'rt'\nrawset(_G, 'missing', rt.c.nope == nil and 1 or 0)\n"), 0);
  assert_int_equal(global_number(f, "missing"), 1);
}

static void test_register_function_usable_from_handler(void **state) {
  fx *f = *state;
  rt_server_register_function(f->t.srv, "add", c_add);
  assert_int_equal(load(f,
                        "local rt = require 'rt'\n"
                        "rt.http.get('/sum', function(req) return 200, tostring(rt.c.add(1, 2)) end)\n"),
                   0);
  char body[256];
  assert_int_equal(http_get(f, "/sum", body, sizeof body), 200);
  assert_string_equal(body, "3");
}

static void test_failed_reload_keeps_old_code(void **state) {
  fx *f = *state;
  assert_int_equal(load(f, "local rt = require 'rt'\nrt.http.get('/v', function() return 200, 'one' end)\n"), 0);
  char body[256];
  assert_int_equal(http_get(f, "/v", body, sizeof body), 200);
  assert_string_equal(body, "one");

  write_script(f, "local rt = require 'rt'\nrt.http.get('/v', function() return 200, 'two' end)\nthis is not lua\n");
  char err[256];
  assert_int_equal(rt_server_reload(f->t.srv, err, sizeof err), -1);
  assert_non_null(strstr(err, ":3:"));
  assert_int_equal(f->t.srv->metrics.reload_failures, 1);
  assert_int_equal(http_get(f, "/v", body, sizeof body), 200);
  assert_string_equal(body, "one");

  /* a script that fails half-way through registering must not leave half its routes */
  write_script(f, "local rt = require 'rt'\nrt.http.get('/v', function() return 200, 'half' end)\nerror('stop')\n");
  assert_int_equal(rt_server_reload(f->t.srv, err, sizeof err), -1);
  assert_int_equal(http_get(f, "/v", body, sizeof body), 200);
  assert_string_equal(body, "one");

  write_script(f, "local rt = require 'rt'\nrt.http.get('/v', function() return 200, 'three' end)\n");
  assert_int_equal(rt_server_reload(f->t.srv, err, sizeof err), 0);
  assert_int_equal(f->t.srv->metrics.reloads, 1);
  assert_int_equal(http_get(f, "/v", body, sizeof body), 200);
  assert_string_equal(body, "three");
}

static void test_handler_error_is_500_and_counted(void **state) {
  fx *f = *state;
  assert_int_equal(load(f,
                        "local rt = require 'rt'\n"
                        "rt.http.get('/boom', function() error('handler broke') end)\n"
                        "rt.http.get('/ok', function() return 200, 'fine' end)\n"),
                   0);
  long before = f->t.srv->metrics.lua_errors;
  char body[256];
  assert_int_equal(http_get(f, "/boom", body, sizeof body), 500);
  assert_null(strstr(body, "handler broke"));  /* internals stay in the log */
  assert_int_equal(f->t.srv->metrics.lua_errors, before + 1);
  /* the server goes on */
  assert_int_equal(http_get(f, "/ok", body, sizeof body), 200);
  assert_string_equal(body, "fine");
}

static void test_timer_runs_in_the_loop(void **state) {
  fx *f = *state;
  assert_int_equal(load(f,
                        "local rt = require 'rt'\n"
                        "rt.after(0.01, function() rawset(_G, 'fired', (rawget(_G, 'fired') or 0) + 1) end)\n"),
                   0);
  assert_true(global_number(f, "fired") < 0);  /* not at load */
  for (int i = 0; i < 200 && global_number(f, "fired") < 1; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(1000);
  }
  assert_int_equal(global_number(f, "fired"), 1);
  for (int i = 0; i < 30; i++) {
    tloop_spin(f->t.loop, 1);
    usleep(1000);
  }
  assert_int_equal(global_number(f, "fired"), 1);  /* once */
}

static void test_sleep_yields_the_handler(void **state) {
  fx *f = *state;
  assert_int_equal(load(f,
                        "local rt = require 'rt'\n"
                        "rt.http.get('/slow', function() rt.sleep(0.02) return 200, 'late' end)\n"),
                   0);
  char body[256];
  double t0 = ev_time();
  assert_int_equal(http_get(f, "/slow", body, sizeof body), 200);
  assert_string_equal(body, "late");
  assert_true(ev_time() - t0 >= 0.015);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_good_script_loads),
      T(test_syntax_error_names_file_and_line),
      T(test_runtime_error_at_load),
      T(test_missing_script),
      T(test_register_function),
      T(test_register_function_usable_from_handler),
      T(test_failed_reload_keeps_old_code),
      T(test_handler_error_is_500_and_counted),
      T(test_timer_runs_in_the_loop),
      T(test_sleep_yields_the_handler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
