/* A SockJS endpoint's URLs: the greeting, /info, the iframe page, and the session paths
 * /<server>/<session>/<transport> with their CORS, cookie and caching headers as the
 * SockJS 0.3.3 protocol asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "http/http1.h"
#include "net/server_int.h"
#include "sockjs.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"
#include "ws/ws_hixie76.h"

#define MAX_HDRS 16

/* Response headers: names and values point at literals or at the buffers here. */
typedef struct hdrs {
  const char *v[2 * MAX_HDRS];
  int n;
  char origin[256];
  char allow_headers[256];
  char cookie[160];
  char expires[64];
} hdrs;

static void add(hdrs *h, const char *name, const char *value) {
  if (h->n == MAX_HDRS) return;
  h->v[2 * h->n] = name;
  h->v[2 * h->n + 1] = value;
  h->n++;
}

static const char NO_STORE[] = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
static const char ONE_YEAR[] = "public, max-age=31536000";

static void respond(rt_conn *c, int status, hdrs *h, const char *body) {
  rt_http1_respond(c, status, h->v, h->n, body, strlen(body));
}

static void plain(rt_conn *c, int status, hdrs *h, const char *body) {
  add(h, "Content-Type", "text/plain; charset=UTF-8");
  respond(c, status, h, body);
}

/* Access-Control-Allow-Origin echoes the page's origin, "null" (a file:// page) included,
 * with credentials (they need an origin, not "*"); a request without Origin is no
 * cross-origin browser request: "*", and no credentials (sockjs-node does the same). */
static void cors(hdrs *h, const rt_http_req *req) {
  const char *origin = rt_http_req_header(req, "origin");
  int echo = origin && *origin && strlen(origin) < sizeof h->origin;
  snprintf(h->origin, sizeof h->origin, "%s", echo ? origin : "*");
  add(h, "Access-Control-Allow-Origin", h->origin);
  if (echo) add(h, "Access-Control-Allow-Credentials", "true");
  add(h, "Vary", "Origin");
  const char *ask = rt_http_req_header(req, "access-control-request-headers");
  if (ask && strlen(ask) < sizeof h->allow_headers) {
    snprintf(h->allow_headers, sizeof h->allow_headers, "%s", ask);
    add(h, "Access-Control-Allow-Headers", h->allow_headers);
  }
}

static void cacheable(hdrs *h) {
  time_t t = time(NULL) + 31536000;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(h->expires, sizeof h->expires, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  add(h, "Cache-Control", ONE_YEAR);
  add(h, "Expires", h->expires);
}

/* JSESSIONID=<the client's, or dummy>; path=/ (for load balancers that stick by it). */
static void cookie(hdrs *h, const rt_sockjs_endpoint *ep, const rt_http_req *req) {
  if (!ep->cfg.cookie) return;
  char value[129] = "dummy";
  const char *ck = rt_http_req_header(req, "cookie");
  const char *p = ck ? strstr(ck, "JSESSIONID=") : NULL;
  if (p && (p == ck || p[-1] == ' ' || p[-1] == ';')) {
    p += 11;
    size_t n = strcspn(p, ";");
    int ok = n > 0 && n < sizeof value;
    for (size_t i = 0; ok && i < n; i++)
      ok = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
           p[i] == '.' || p[i] == '-' || p[i] == '_';
    if (ok) {
      memcpy(value, p, n);
      value[n] = 0;
    }
  }
  snprintf(h->cookie, sizeof h->cookie, "JSESSIONID=%s; path=/", value);
  add(h, "Set-Cookie", h->cookie);
}

static int origin_allowed(const rt_sockjs_endpoint *ep, const rt_http_req *req) {
  const char *origin = rt_http_req_header(req, "origin");
  if (!ep->cfg.norigins || !origin) return 1;  /* a client that is no browser sends none */
  for (int i = 0; i < ep->cfg.norigins; i++)
    if (strcmp(ep->cfg.origins[i], "*") == 0 || strcasecmp(ep->cfg.origins[i], origin) == 0) return 1;
  return 0;
}

/* 405: Allow, and neither a body nor a Content-Type (the protocol's suite checks both). */
static void not_allowed(rt_conn *c, const char *allow) {
  hdrs h = {0};
  add(&h, "Allow", allow);
  respond(c, 405, &h, "");
}

/* OPTIONS: the CORS pre-flight answer, cached for a year. */
static void preflight(rt_conn *c, const rt_http_req *req, const char *methods) {
  hdrs h = {0};
  cors(&h, req);
  cacheable(&h);
  add(&h, "Access-Control-Max-Age", "31536000");
  add(&h, "Access-Control-Allow-Methods", methods);
  respond(c, 204, &h, "");
}

static void greeting(rt_conn *c, const rt_http_req *req) {
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) return not_allowed(c, "GET");
  hdrs h = {0};
  plain(c, 200, &h, "Welcome to SockJS!\n");
}

static void info(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req) {
  if (strcmp(req->method, "OPTIONS") == 0) return preflight(c, req, "OPTIONS, GET");
  if (strcmp(req->method, "GET") != 0) return not_allowed(c, "OPTIONS, GET");
  uint32_t entropy;
  if (getrandom(&entropy, sizeof entropy, GRND_NONBLOCK) != (ssize_t)sizeof entropy)
    entropy = (uint32_t)(ev_time() * 1e6);
  char body[200];
  snprintf(body, sizeof body, "{\"websocket\":%s,\"origins\":[\"*:*\"],\"cookie_needed\":%s,\"entropy\":%u}",
           ep->cfg.websocket ? "true" : "false", ep->cfg.cookie ? "true" : "false", entropy);
  hdrs h = {0};
  add(&h, "Content-Type", "application/json; charset=UTF-8");
  add(&h, "Cache-Control", NO_STORE);
  cors(&h, req);
  respond(c, 200, &h, body);
}

/* iframe.html, iframe-<version>.html, ...: [0-9-.a-z_]* between "iframe" and ".html". */
static int is_iframe(const char *rest) {
  if (strncmp(rest, "/iframe", 7) != 0) return 0;
  const char *p = rest + 7;
  size_t n = strlen(p);
  if (n < 5 || strcmp(p + n - 5, ".html") != 0) return 0;
  for (size_t i = 0; i + 5 < n; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') || p[i] == '-' || p[i] == '.' || p[i] == '_'))
      return 0;
  return 1;
}

static void iframe(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req) {
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) return not_allowed(c, "GET");
  hdrs h = {0};
  add(&h, "ETag", ep->etag);
  cacheable(&h);
  const char *inm = rt_http_req_header(req, "if-none-match");
  if (inm && strcmp(inm, ep->etag) == 0) {
    rt_http1_respond(c, 304, h.v, h.n, NULL, 0);
    return;
  }
  add(&h, "Content-Type", "text/html; charset=UTF-8");
  rt_http1_respond(c, 200, h.v, h.n, rt_buf_start(&ep->iframe), ep->iframe.len);
}

/* ---- sessions -------------------------------------------------------------------------- */

static int method_is(const rt_http_req *req, const char *m) { return strcmp(req->method, m) == 0; }

static const char *content_type(int t) {
  switch (t) {
    case RT_SOCKJS_EVENTSOURCE: return "text/event-stream; charset=UTF-8";
    case RT_SOCKJS_HTMLFILE: return "text/html; charset=UTF-8";
    default: return "application/javascript; charset=UTF-8";
  }
}

static void websocket(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req) {
  hdrs h = {0};
  if (!ep->cfg.websocket) return plain(c, 404, &h, "Not found: the websocket transport is off\n");
  if (!method_is(req, "GET")) return not_allowed(c, "GET");
  const char *upgrade = rt_http_req_header(req, "upgrade");
  const char *connection = rt_http_req_header(req, "connection");
  if (!upgrade || strcasecmp(upgrade, "websocket") != 0) return plain(c, 400, &h, "Can \"Upgrade\" only to \"WebSocket\".");
  if (!connection || !strcasestr(connection, "upgrade")) return plain(c, 400, &h, "\"Connection\" must be \"Upgrade\".");
  int hixie = ep->cfg.hixie76 && rt_ws_hixie76_request(req);
  if (!hixie && !rt_ws_key_valid(rt_http_req_header(req, "sec-websocket-key")))
    return plain(c, 400, &h, "Sec-WebSocket-Key must be base64 of 16 bytes\n");
  const char *version = rt_http_req_header(req, "sec-websocket-version");
  if (!hixie && (!version || (strcmp(version, "13") != 0 && strcmp(version, "8") != 0 && strcmp(version, "7") != 0))) {
    add(&h, "Sec-WebSocket-Version", "13, 8, 7");
    return plain(c, 426, &h, "unsupported Sec-WebSocket-Version (this server speaks 13, 8 and 7)\n");
  }
  char err[200];
  rt_sockjs_session *s = rt_sockjs_session_new(ep, "", c->peer, err, sizeof err);
  if (!s) {
    rt_warn(&ep->sj->srv->log, "%s: %s", c->peer, err);
    return plain(c, 503, &h, err);
  }
  /* The application hears of the session while the request is still readable (the
   * upgrade frees it); what it sends meanwhile waits for the WebSocket. */
  rt_sockjs_session_hold(s);
  s->first_transport = RT_SOCKJS_WEBSOCKET;
  rt_sockjs_session_opened(s, req);
  rt_ws_opts o = {.max_message = ep->cfg.max_message + 16, .hybi_drafts = 1};
  if ((hixie ? rt_ws_hixie76_accept(c, req, &o) : rt_ws_accept(c, req, &o, NULL, 0)) < 0) {
    rt_sockjs_session_close(s, 1002, "WebSocket handshake failed");
  } else if (s->state == RT_SOCKJS_S_OPEN) {
    rt_sockjs_attach_ws(s, c);
  } else {
    /* The application closed it in its open handler. */
    rt_buf b = {0};
    if (rt_sockjs_close_frame(&b, s->close_code, s->close_reason) == 0) {
      rt_ws_send(c, RT_WS_TEXT, "o", 1);
      rt_ws_send(c, RT_WS_TEXT, rt_buf_start(&b), b.len);
    }
    rt_buf_free(&b);
    rt_ws_close(c, 1000, "");
  }
  rt_sockjs_session_release(s);
}

/* htmlfile and jsonp name the function to call in ?c=. Returns 0, or -1 after a 500. */
static int callback_param(rt_conn *c, const rt_http_req *req, char out[RT_SOCKJS_MAX_CALLBACK + 1]) {
  rt_buf b = {0};
  int found = rt_sockjs_form_field((const uint8_t *)req->query, strlen(req->query), "c", &b);
  int ok = found > 0 && b.len > 0 && b.len <= RT_SOCKJS_MAX_CALLBACK;
  if (ok) {
    memcpy(out, rt_buf_start(&b), b.len);
    out[b.len] = 0;
    ok = rt_sockjs_callback_valid(out);
  }
  const char *why = found > 0 && b.len ? "invalid \"callback\" parameter" : "\"callback\" parameter required";
  rt_buf_free(&b);
  if (ok) return 0;
  hdrs h = {0};
  plain(c, 500, &h, why);
  return -1;
}

static void receive(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req, int t, const char *sid) {
  char cb[RT_SOCKJS_MAX_CALLBACK + 1] = "";
  if ((t == RT_SOCKJS_HTMLFILE || t == RT_SOCKJS_JSONP) && callback_param(c, req, cb) < 0) return;
  hdrs h = {0};
  add(&h, "Content-Type", content_type(t));
  add(&h, "Cache-Control", NO_STORE);
  if (t == RT_SOCKJS_XHR || t == RT_SOCKJS_XHR_STREAMING) cors(&h, req);
  cookie(&h, ep, req);
  rt_sockjs_session *s = rt_sockjs_session_find(ep, sid);
  if (s) {
    rt_sockjs_attach_http(s, c, t, cb, h.v, h.n, 0);
    return;
  }
  char err[200];
  if (!(s = rt_sockjs_session_new(ep, sid, c->peer, err, sizeof err))) {
    rt_warn(&ep->sj->srv->log, "%s: %s", c->peer, err);
    hdrs e = {0};
    if (t == RT_SOCKJS_XHR || t == RT_SOCKJS_XHR_STREAMING) cors(&e, req);
    return plain(c, 503, &e, err);
  }
  rt_sockjs_session_hold(s);
  s->first_transport = t;
  /* The application first (the request is gone once a polling answer ends): what it sends
   * now follows the "o". */
  rt_sockjs_session_opened(s, req);
  rt_sockjs_attach_http(s, c, t, cb, h.v, h.n, 1);
  rt_sockjs_session_release(s);
}

static void send_path(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req, int t, const char *sid) {
  hdrs h = {0};
  add(&h, "Cache-Control", NO_STORE);  /* iOS 6 caches POST answers */
  if (t == RT_SOCKJS_XHR_SEND) cors(&h, req);
  cookie(&h, ep, req);
  rt_sockjs_session *s = rt_sockjs_session_find(ep, sid);
  if (!s || s->state != RT_SOCKJS_S_OPEN) return plain(c, 404, &h, "Not found: no such session\n");
  const uint8_t *p = req->body;
  size_t n = req->body_len;
  rt_buf form = {0};
  const char *ctype = rt_http_req_header(req, "content-type");
  if (t == RT_SOCKJS_JSONP_SEND && ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
    /* The JSONP client posts a form with the payload in d. */
    rt_sockjs_form_field(p, n, "d", &form);
    p = rt_buf_start(&form);
    n = form.len;
  }
  if (n == 0) {
    plain(c, 500, &h, "Payload expected.");
  } else if (n > ep->cfg.max_message) {
    plain(c, 413, &h, "Payload too large.");
  } else if (rt_sockjs_parse_messages(p, n, NULL, NULL, NULL) < 0) {
    plain(c, 500, &h, "Broken JSON encoding.");
  } else {
    rt_sockjs_session_deliver_payload(s, p, n);
    if (t == RT_SOCKJS_XHR_SEND) plain(c, 204, &h, "");
    else plain(c, 200, &h, "ok");
  }
  rt_buf_free(&form);
}

static void session_path(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req, const char *rest) {
  char sid[RT_SOCKJS_MAX_ID + 1];
  int t = rt_sockjs_parse_session_path(rest, sid);
  hdrs h = {0};
  if (t < 0) return plain(c, 404, &h, "Not found\n");
  if (!origin_allowed(ep, req)) return plain(c, 403, &h, "Origin not allowed\n");
  if (t == RT_SOCKJS_WEBSOCKET) return websocket(ep, c, req);
  /* Several workers: the requests of one session meet in the worker that holds it. */
  if (rt_sockjs_route(ep->sj->srv, c, req, sid)) return;
  int post = t == RT_SOCKJS_XHR || t == RT_SOCKJS_XHR_STREAMING || t == RT_SOCKJS_XHR_SEND ||
             t == RT_SOCKJS_JSONP_SEND;
  if (method_is(req, "OPTIONS") && t != RT_SOCKJS_JSONP_SEND && post) return preflight(c, req, "OPTIONS, POST");
  if (!method_is(req, post ? "POST" : "GET")) return not_allowed(c, post ? "OPTIONS, POST" : "GET");
  if (rt_sockjs_transport_receives(t)) receive(ep, c, req, t, sid);
  else send_path(ep, c, req, t, sid);
}

void rt_sockjs_http(rt_sockjs_endpoint *ep, rt_conn *c, const rt_http_req *req) {
  size_t pl = strlen(ep->prefix);
  const char *rest = strncmp(req->path, ep->prefix, pl) == 0 ? req->path + pl : NULL;
  hdrs h = {0};
  if (!rest || (*rest && *rest != '/')) return plain(c, 404, &h, "Not found\n");
  if (!*rest || strcmp(rest, "/") == 0) return greeting(c, req);
  if (strcmp(rest, "/info") == 0) {
    if (!origin_allowed(ep, req)) return plain(c, 403, &h, "Origin not allowed\n");
    return info(ep, c, req);
  }
  if (is_iframe(rest)) return iframe(ep, c, req);
  if (strcmp(rest, "/websocket") == 0) {
    /* The raw WebSocket is a WebSocket route of its own (rt_sockjs.lua); a request that
     * reaches here did not ask for an upgrade. */
    if (!ep->cfg.websocket) return plain(c, 404, &h, "Not found\n");
    return plain(c, 400, &h, "Can \"Upgrade\" only to \"WebSocket\".");
  }
  session_path(ep, c, req, rest);
}
