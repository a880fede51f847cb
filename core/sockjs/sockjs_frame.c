#include "sockjs_frame.h"

#include <stdio.h>
#include <string.h>

#include "base/utf8.h"

static const char *const transport_names[RT_SOCKJS_TRANSPORTS] = {
    "websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp", "xhr_send", "jsonp_send",
};

const char *rt_sockjs_transport_name(int t) {
  return t >= 0 && t < RT_SOCKJS_TRANSPORTS ? transport_names[t] : "?";
}

int rt_sockjs_transport_parse(const char *name) {
  for (int i = 0; i < RT_SOCKJS_TRANSPORTS; i++)
    if (strcmp(name, transport_names[i]) == 0) return i;
  return -1;
}

int rt_sockjs_transport_streams(int t) {
  return t == RT_SOCKJS_WEBSOCKET || t == RT_SOCKJS_XHR_STREAMING || t == RT_SOCKJS_EVENTSOURCE ||
         t == RT_SOCKJS_HTMLFILE;
}

int rt_sockjs_transport_receives(int t) {
  return t >= 0 && t < RT_SOCKJS_TRANSPORTS && t != RT_SOCKJS_XHR_SEND && t != RT_SOCKJS_JSONP_SEND;
}

/* One path segment: any bytes but '.', '/' and control characters (the protocol allows any
 * id; control characters would only end up in logs), 1..RT_SOCKJS_MAX_ID bytes. Returns its
 * length or 0. */
static size_t id_segment(const char *p) {
  size_t n = 0;
  while (p[n] && p[n] != '/') {
    unsigned char ch = (unsigned char)p[n];
    if (ch == '.' || ch < 0x20 || ch == 0x7f || n == RT_SOCKJS_MAX_ID) return 0;
    n++;
  }
  return n;
}

int rt_sockjs_parse_session_path(const char *rest, char sid[RT_SOCKJS_MAX_ID + 1]) {
  if (rest[0] != '/') return -1;
  const char *server = rest + 1;
  size_t sl = id_segment(server);
  if (!sl || server[sl] != '/') return -1;
  const char *session = server + sl + 1;
  size_t il = id_segment(session);
  if (!il || session[il] != '/') return -1;
  const char *transport = session + il + 1;
  if (strchr(transport, '/')) return -1;
  int t = rt_sockjs_transport_parse(transport);
  if (t < 0) return -1;
  memcpy(sid, session, il);
  sid[il] = 0;
  return t;
}

int rt_sockjs_callback_valid(const char *cb) {
  size_t n = 0;
  for (; cb[n]; n++) {
    char ch = cb[n];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '.' || ch == '-';
    if (!ok || n == RT_SOCKJS_MAX_CALLBACK) return 0;
  }
  return n > 0;
}

/* ---- quoting ------------------------------------------------------------------------- */

/* Code points sockjs-node sends as \uXXXX because browsers, proxies or Unicode
 * normalization may change them on the way (a superset of its list, by ranges). The
 * common scripts (Latin, CJK, Cyrillic ...) are not here, so their text stays as UTF-8. */
static int must_escape(uint32_t cp) {
  static const uint32_t ranges[][2] = {
      {0x007f, 0x009f}, {0x00ad, 0x00ad}, {0x0300, 0x036f}, {0x0374, 0x0374}, {0x037e, 0x037e},
      {0x0387, 0x0387}, {0x0591, 0x05c7}, {0x0600, 0x061c}, {0x064b, 0x065f}, {0x06dd, 0x06ec},
      {0x070f, 0x074a}, {0x07eb, 0x07f3}, {0x0951, 0x095f}, {0x09dc, 0x09df}, {0x0a33, 0x0a5e},
      {0x0b5c, 0x0b5d}, {0x0e38, 0x0e39}, {0x0f43, 0x0fb9}, {0x17b4, 0x17b5}, {0x180b, 0x180e},
      {0x1939, 0x193a}, {0x1a17, 0x1a17}, {0x1b6b, 0x1b6b}, {0x1cda, 0x1cdb}, {0x1dc0, 0x1dff},
      {0x1f71, 0x1ffd}, {0x2000, 0x206f}, {0x20d0, 0x20f0}, {0x2126, 0x2126}, {0x212a, 0x212b},
      {0x2329, 0x232a}, {0x2adc, 0x2adc}, {0x302b, 0x302c}, {0xaab2, 0xaab3}, {0xd800, 0xdfff},
      {0xf900, 0xfaff}, {0xfb1d, 0xfb4f}, {0xfe00, 0xfe0f}, {0xfeff, 0xfeff}, {0xfff0, 0xffff},
  };
  if (cp > 0xffff) return 1;
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
    if (cp >= ranges[i][0] && cp <= ranges[i][1]) return 1;
  return 0;
}

/* Decodes one UTF-8 character at s (n > 0 bytes left). Returns its length; *cp gets the
 * code point, or U+FFFD with length 1 for a byte that does not start a valid character. */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
  uint8_t b = s[0];
  size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 1) {
    *cp = b;
    return 1;
  }
  if (len == 0 || len > n || rt_utf8_feed(RT_UTF8_ACCEPT, s, len) != RT_UTF8_ACCEPT) {
    *cp = 0xfffd;
    return 1;
  }
  uint32_t v = b & (0x7f >> len);
  for (size_t i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3f);
  *cp = v;
  return len;
}

static int put_u16(rt_buf *out, uint32_t u) { return rt_buf_appendf(out, "\\u%04x", (unsigned)u); }

static int put_utf8(rt_buf *out, uint32_t cp) {
  uint8_t b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xc0 | (cp >> 6));
    b[1] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (uint8_t)(0xe0 | (cp >> 12));
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (uint8_t)(0xf0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return rt_buf_append(out, b, n);
}

/* html: also escape '<' so "</script>" in a message cannot end the htmlfile script. */
static int quote(rt_buf *out, const uint8_t *s, size_t n, int html) {
  if (rt_buf_reserve(out, n + 2) < 0 || rt_buf_append(out, "\"", 1) < 0) return -1;
  size_t i = 0;
  while (i < n) {
    /* Runs of plain ASCII go in one append. */
    size_t j = i;
    while (j < n && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' && !(html && s[j] == '<'))
      j++;
    if (j > i && rt_buf_append(out, s + i, j - i) < 0) return -1;
    i = j;
    if (i == n) break;
    uint32_t cp;
    size_t len = utf8_next(s + i, n - i, &cp);
    int rc;
    switch (cp) {
      case '"': rc = rt_buf_append(out, "\\\"", 2); break;
      case '\\': rc = rt_buf_append(out, "\\\\", 2); break;
      case '\n': rc = rt_buf_append(out, "\\n", 2); break;
      case '\r': rc = rt_buf_append(out, "\\r", 2); break;
      case '\t': rc = rt_buf_append(out, "\\t", 2); break;
      default:
        if (cp < 0x20 || cp == '<') rc = put_u16(out, cp);
        else if (cp > 0xffff)
          rc = put_u16(out, 0xd800 + ((cp - 0x10000) >> 10)) < 0 ? -1
                                                                  : put_u16(out, 0xdc00 + ((cp - 0x10000) & 0x3ff));
        else if (must_escape(cp)) rc = put_u16(out, cp);  /* U+FFFD for a non-UTF-8 byte too */
        else rc = rt_buf_append(out, s + i, len);
    }
    if (rc < 0) return -1;
    i += len;
  }
  return rt_buf_append(out, "\"", 1);
}

int rt_sockjs_quote(rt_buf *out, const uint8_t *s, size_t n) { return quote(out, s, n, 0); }

/* ---- frames -------------------------------------------------------------------------- */

int rt_sockjs_close_frame(rt_buf *out, int code, const char *reason) {
  if (rt_buf_appendf(out, "c[%d,", code) < 0) return -1;
  if (quote(out, (const uint8_t *)reason, strlen(reason), 0) < 0) return -1;
  return rt_buf_append(out, "]", 1);
}

int rt_sockjs_array_frame(rt_buf *out, rt_chunk *const *quoted, size_t n) {
  if (rt_buf_append(out, "a[", 2) < 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (i && rt_buf_append(out, ",", 1) < 0) return -1;
    if (rt_buf_append(out, quoted[i]->data, quoted[i]->len) < 0) return -1;
  }
  return rt_buf_append(out, "]", 1);
}

int rt_sockjs_wrap(rt_buf *out, int t, const char *callback, const uint8_t *frame, size_t n) {
  switch (t) {
    case RT_SOCKJS_WEBSOCKET:
      return rt_buf_append(out, frame, n);
    case RT_SOCKJS_XHR:
    case RT_SOCKJS_XHR_STREAMING:
      return rt_buf_append(out, frame, n) < 0 || rt_buf_append(out, "\n", 1) < 0 ? -1 : 0;
    case RT_SOCKJS_EVENTSOURCE:
      return rt_buf_append(out, "data: ", 6) < 0 || rt_buf_append(out, frame, n) < 0 ||
                     rt_buf_append(out, "\r\n\r\n", 4) < 0
                 ? -1
                 : 0;
    case RT_SOCKJS_HTMLFILE:
      return rt_buf_append(out, "<script>\np(", 11) < 0 || quote(out, frame, n, 1) < 0 ||
                     rt_buf_append(out, ");\n</script>\r\n", 14) < 0
                 ? -1
                 : 0;
    case RT_SOCKJS_JSONP:
      /* The comment first: a response that starts with a callback name chosen by the
       * requester must not be readable as something else (Rosetta Flash). */
      return rt_buf_appendf(out, "/**/%s(", callback ? callback : "") < 0 ||
                     quote(out, frame, n, 0) < 0 || rt_buf_append(out, ");\r\n", 4) < 0
                 ? -1
                 : 0;
    default:
      return -1;
  }
}

static const char htmlfile_head[] =
    "<!doctype html>\n<html><head>\n"
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
    "</head><body><h2>Don't panic!</h2>\n"
    "  <script>\n"
    "    document.domain = document.domain;\n"
    "    var c = parent.%s;\n"
    "    c.start();\n"
    "    function p(d) {c.message(d);};\n"
    "    window.onload = function() {c.stop();};\n"
    "  </script>\n";

int rt_sockjs_prelude(rt_buf *out, int t, const char *callback) {
  switch (t) {
    case RT_SOCKJS_XHR_STREAMING: {
      /* Some browsers hand XHR progress to the page only after 2 KiB. */
      if (rt_buf_reserve(out, 2049) < 0) return -1;
      memset(rt_buf_end(out), 'h', 2048);
      out->len += 2048;
      return rt_buf_append(out, "\n", 1);
    }
    case RT_SOCKJS_EVENTSOURCE:
      return rt_buf_append(out, "\r\n", 2);
    case RT_SOCKJS_HTMLFILE: {
      size_t start = out->len;
      if (rt_buf_appendf(out, htmlfile_head, callback ? callback : "") < 0) return -1;
      /* Browsers render (and run scripts of) a streamed page only after 1 KiB. */
      size_t used = out->len - start;
      if (used < 1024) {
        if (rt_buf_reserve(out, 1024 - used) < 0) return -1;
        memset(rt_buf_end(out), ' ', 1024 - used);
        out->len += 1024 - used;
      }
      return rt_buf_append(out, "\r\n\r\n", 4);
    }
    default:
      return 0;
  }
}

int rt_sockjs_array_affixes(int t, const char **head, const char **tail) {
  switch (t) {
    case RT_SOCKJS_WEBSOCKET: *head = "a["; *tail = "]"; return 0;
    case RT_SOCKJS_XHR:
    case RT_SOCKJS_XHR_STREAMING: *head = "a["; *tail = "]\n"; return 0;
    case RT_SOCKJS_EVENTSOURCE: *head = "data: a["; *tail = "]\r\n\r\n"; return 0;
    default: return -1;
  }
}

/* ---- client payloads ----------------------------------------------------------------- */

typedef struct jp {
  const uint8_t *p, *end;
} jp;

static void ws(jp *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(const uint8_t *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    uint8_t c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* One JSON string at j->p (the opening quote), decoded into out when out is not NULL.
 * Returns 0, -1 for bad JSON, -2 on allocation failure. */
static int string(jp *j, rt_buf *out) {
  if (j->p >= j->end || *j->p != '"') return -1;
  j->p++;
  for (;;) {
    const uint8_t *run = j->p;
    while (j->p < j->end && *j->p != '"' && *j->p != '\\' && *j->p >= 0x20) j->p++;
    if (out && j->p > run && rt_buf_append(out, run, (size_t)(j->p - run)) < 0) return -2;
    if (j->p >= j->end || *j->p < 0x20) return -1;  /* unterminated, or a raw control char */
    if (*j->p == '"') {
      j->p++;
      return 0;
    }
    if (j->end - j->p < 2) return -1;
    uint8_t e = j->p[1];
    j->p += 2;
    uint32_t cp;
    switch (e) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (j->end - j->p < 4 || hex4(j->p, &cp) < 0) return -1;
        j->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo;
          /* A high surrogate pairs with an escaped low one; alone it is no character. */
          if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) == 0 &&
              lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            j->p += 6;
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        break;
      default:
        return -1;
    }
    if (out && put_utf8(out, cp) < 0) return -2;
  }
}

/* Walks the payload once; with fn, decodes and delivers each message as it goes. */
static long walk(const uint8_t *p, size_t n, rt_buf *scratch, rt_sockjs_msg_fn fn, void *ud) {
  if (!p) p = (const uint8_t *)"";  /* an empty buffer may have no memory: no NULL + 0 */
  jp j = {p, p + n};
  long count = 0;
  ws(&j);
  int array = j.p < j.end && *j.p == '[';
  if (array) {
    j.p++;
    ws(&j);
    if (j.p < j.end && *j.p == ']') {
      j.p++;
      goto done;
    }
  }
  for (;;) {
    if (scratch) rt_buf_consume(scratch, scratch->len);
    int rc = string(&j, fn ? scratch : NULL);
    if (rc == -2) return -1;
    if (rc < 0) return -1;
    count++;
    /* An empty message has no buffer behind it: hand out "" rather than NULL. */
    if (fn && fn(ud, scratch->len ? rt_buf_start(scratch) : (const uint8_t *)"", scratch->len)) return count;
    ws(&j);
    if (!array) break;
    if (j.p < j.end && *j.p == ',') {
      j.p++;
      ws(&j);
      continue;
    }
    if (j.p < j.end && *j.p == ']') {
      j.p++;
      break;
    }
    return -1;
  }
done:
  ws(&j);
  return j.p == j.end ? count : -1;
}

long rt_sockjs_parse_messages(const uint8_t *p, size_t n, rt_buf *scratch, rt_sockjs_msg_fn fn,
                              void *ud) {
  /* Raw bytes must be UTF-8 before anything is handed out. */
  if (!rt_utf8_valid(p, n)) return -1;
  return walk(p, n, scratch, fn && scratch ? fn : NULL, ud);
}

/* ---- iframe, forms --------------------------------------------------------------------- */

/* sockjs-node's page: the client library calls _sockjs_onload once it has loaded (1.x and
 * 0.3 alike), so the script may load asynchronously. */
static const char iframe_page[] =
    "<!DOCTYPE html>\n<html>\n<head>\n"
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
    "  <script>\n"
    "    document.domain = document.domain;\n"
    "    _sockjs_onload = function(){SockJS.bootstrap_iframe();};\n"
    "  </script>\n"
    "  <script src=\"%s\"></script>\n"
    "</head>\n<body>\n"
    "  <h2>Don't panic!</h2>\n"
    "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n"
    "</body>\n</html>\n";

int rt_sockjs_iframe_page(rt_buf *out, const char *sockjs_url) {
  return rt_buf_appendf(out, iframe_page, sockjs_url);
}

void rt_sockjs_etag(const uint8_t *p, size_t n, char out[24]) {
  /* FNV-1a: the page changes only with sockjs_url; any stable hash will do. */
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

static int unhex(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int rt_sockjs_form_field(const uint8_t *p, size_t n, const char *name, rt_buf *out) {
  size_t nl = strlen(name);
  const uint8_t *end = p + n;
  while (p < end) {
    const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
    const uint8_t *fe = amp ? amp : end;
    if ((size_t)(fe - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
      for (const uint8_t *q = p + nl + 1; q < fe; q++) {
        uint8_t ch = *q;
        if (ch == '+') {
          ch = ' ';
        } else if (ch == '%' && fe - q >= 3 && unhex(q[1]) >= 0 && unhex(q[2]) >= 0) {
          ch = (uint8_t)(unhex(q[1]) << 4 | unhex(q[2]));
          q += 2;
        }
        if (rt_buf_append(out, &ch, 1) < 0) return -1;
      }
      return 1;
    }
    if ((size_t)(fe - p) == nl && memcmp(p, name, nl) == 0) return 1;  /* "d" with no '=' */
    p = amp ? amp + 1 : end;
  }
  return 0;
}
