/* grpc_meta.c - gRPC metadata helpers: status, timeout, percent-encoding, base64, types. */
#include "grpc_meta.h"

#include <stdio.h>
#include <string.h>

/* ---- status codes and errors --------------------------------------------------------- */

static const char *const status_names[RT_GRPC_STATUS_COUNT_] = {
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
};

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* Case-insensitive compare of (s, len) with a NUL-terminated name. */
static int eq_nocase(const char *s, size_t len, const char *name) {
  size_t n = strlen(name);
  if (n != len) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != lower((unsigned char)name[i])) return 0;
  return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **s, size_t *len) {
  while (*len && is_ows(**s)) (*s)++, (*len)--;
  while (*len && is_ows((*s)[*len - 1])) (*len)--;
}

const char *rt_grpc_status_name(int code) {
  if (code < 0 || code >= RT_GRPC_STATUS_COUNT_) return NULL;
  return status_names[code];
}

int rt_grpc_status_from_name(const char *name, size_t len) {
  for (int i = 0; i < RT_GRPC_STATUS_COUNT_; i++)
    if (eq_nocase(name, len, status_names[i])) return i;
  return -1;
}

int rt_grpc_status_parse(const char *s, size_t len) {
  if (len == 0 || len > 9) return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v < RT_GRPC_STATUS_COUNT_ ? (int)v : RT_GRPC_STATUS_UNKNOWN;
}

const char *rt_grpc_strerror(int rc) {
  switch (rc) {
  case RT_GRPC_EINVAL: return "invalid input";
  case RT_GRPC_ETOOBIG: return "message larger than the limit";
  case RT_GRPC_ENOMEM: return "out of memory";
  case RT_GRPC_EFLAG: return "invalid compressed-flag byte";
  case RT_GRPC_EENCODING: return "compressed message without a usable grpc-encoding";
  case RT_GRPC_ECORRUPT: return "compressed message does not decompress";
  case RT_GRPC_ETRUNCATED: return "stream ended inside a message";
  case RT_GRPC_ESPACE: return "output buffer too small";
  default: return rc >= 0 ? "ok" : "unknown error";
  }
}

rt_grpc_status rt_grpc_err_status(int rc) {
  if (rc >= 0) return RT_GRPC_STATUS_OK;
  if (rc == RT_GRPC_ETOOBIG || rc == RT_GRPC_ENOMEM) return RT_GRPC_STATUS_RESOURCE_EXHAUSTED;
  return RT_GRPC_STATUS_INTERNAL;
}

/* ---- grpc-timeout ---------------------------------------------------------------------- */

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE 99999999

static const struct {
  char unit;
  int64_t ns;
} units[] = { /* coarsest first */
  { 'H', 3600LL * 1000000000LL }, { 'M', 60LL * 1000000000LL }, { 'S', 1000000000LL },
  { 'm', 1000000LL },             { 'u', 1000LL },              { 'n', 1LL },
};
#define NUNITS (sizeof units / sizeof units[0])

static int timeout_split(const char *s, size_t len, int64_t *value, int64_t *unit_ns) {
  trim(&s, &len);
  if (len < 2 || len > TIMEOUT_MAX_DIGITS + 1) return RT_GRPC_EINVAL;
  int64_t v = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9') return RT_GRPC_EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  for (size_t u = 0; u < NUNITS; u++) {
    if (s[len - 1] == units[u].unit) {
      *value = v;
      *unit_ns = units[u].ns;
      return 0;
    }
  }
  return RT_GRPC_EINVAL;
}

int rt_grpc_timeout_parse_ns(const char *s, size_t len, int64_t *ns) {
  int64_t v, u;
  int rc = timeout_split(s, len, &v, &u);
  if (rc < 0) return rc;
  *ns = v > INT64_MAX / u ? INT64_MAX : v * u;
  return 0;
}

int rt_grpc_timeout_parse_ms(const char *s, size_t len, int64_t *ms) {
  int64_t v, u;
  int rc = timeout_split(s, len, &v, &u);
  if (rc < 0) return rc;
  /* v < 1e8 and u <= 3.6e12: v * (u / 1e6) < 3.6e14 and v * u (for u < 1e6) < 1e11 fit. */
  if (u >= 1000000) *ms = v * (u / 1000000);
  else *ms = (v * u + 999999) / 1000000;
  return 0;
}

int rt_grpc_timeout_format(int64_t ns, char *out, size_t outlen) {
  if (outlen < RT_GRPC_TIMEOUT_MAXLEN) return RT_GRPC_ESPACE;
  if (ns <= 0) ns = 1;
  int64_t v = 0;
  char unit = 0;
  /* Exact and coarse keeps the header short and cacheable in HPACK ("1S", not "1000m"). */
  for (size_t u = 0; u < NUNITS && !unit; u++) {
    if (ns % units[u].ns == 0 && ns / units[u].ns <= TIMEOUT_MAX_VALUE) {
      v = ns / units[u].ns;
      unit = units[u].unit;
    }
  }
  for (size_t u = NUNITS; u-- > 0 && !unit;) {
    int64_t q = ns / units[u].ns + (ns % units[u].ns != 0);
    if (q <= TIMEOUT_MAX_VALUE) {
      v = q;
      unit = units[u].unit;
    }
  }
  /* Always found: INT64_MAX ns is about 2.6 million hours. */
  return snprintf(out, outlen, "%lld%c", (long long)v, unit);
}

/* ---- percent-encoding ------------------------------------------------------------------ */

static const char hexdig[] = "0123456789ABCDEF";

static int pct_plain(uint8_t c) { return c >= 0x20 && c <= 0x7e && c != '%'; }

size_t rt_grpc_pct_encode_len(const void *in, size_t len) {
  const uint8_t *p = in;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += pct_plain(p[i]) ? 1 : 3;
  return n;
}

size_t rt_grpc_pct_encode(const void *in, size_t len, char *out) {
  const uint8_t *p = in;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (pct_plain(p[i])) {
      out[o++] = (char)p[i];
    } else {
      out[o++] = '%';
      out[o++] = hexdig[p[i] >> 4];
      out[o++] = hexdig[p[i] & 15];
    }
  }
  return o;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

size_t rt_grpc_pct_decode(const char *in, size_t len, uint8_t *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int hi, lo;
    if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
        (lo = hexval(in[i + 2])) >= 0) {
      out[o++] = (uint8_t)(hi << 4 | lo);
      i += 2;
    } else {
      out[o++] = (uint8_t)in[i];
    }
  }
  return o;
}

/* ---- base64 ---------------------------------------------------------------------------- */

static const char b64chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rt_grpc_b64_encode_len(size_t len, int pad) {
  size_t full = len / 3 * 4, rem = len % 3;
  if (!rem) return full;
  return full + (pad ? 4 : rem + 1);
}

size_t rt_grpc_b64_encode(const void *in, size_t len, char *out, int pad) {
  const uint8_t *p = in;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = b64chars[v >> 18];
    out[o++] = b64chars[v >> 12 & 63];
    out[o++] = b64chars[v >> 6 & 63];
    out[o++] = b64chars[v & 63];
  }
  if (len - i == 1) {
    out[o++] = b64chars[p[i] >> 2];
    out[o++] = b64chars[(p[i] & 3) << 4];
    if (pad) out[o++] = '=', out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
    out[o++] = b64chars[v >> 10];
    out[o++] = b64chars[v >> 4 & 63];
    out[o++] = b64chars[(v & 15) << 2];
    if (pad) out[o++] = '=';
  }
  return o;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

size_t rt_grpc_b64_decode_bound(size_t len) { return len / 4 * 3 + 3; }

int rt_grpc_b64_decode(const char *in, size_t len, uint8_t *out, size_t *outlen) {
  /* Padding only ever completes a 4-character group. */
  if (len % 4 == 0 && len && in[len - 1] == '=') {
    len--;
    if (in[len - 1] == '=') len--;
  }
  if (len % 4 == 1) return RT_GRPC_EINVAL;
  size_t o = 0, i = 0;
  for (; i + 4 <= len; i += 4) {
    int a = b64val(in[i]), b = b64val(in[i + 1]), c = b64val(in[i + 2]), d = b64val(in[i + 3]);
    if ((a | b | c | d) < 0) return RT_GRPC_EINVAL;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  if (len - i >= 2) {
    int a = b64val(in[i]), b = b64val(in[i + 1]);
    int c = len - i == 3 ? b64val(in[i + 2]) : 0;
    if ((a | b | c) < 0) return RT_GRPC_EINVAL;
    /* Bits past the last byte must be zero, or two strings would decode alike. */
    if (len - i == 2 && (b & 15)) return RT_GRPC_EINVAL;
    if (len - i == 3 && (c & 3)) return RT_GRPC_EINVAL;
    out[o++] = (uint8_t)(a << 2 | b >> 4);
    if (len - i == 3) out[o++] = (uint8_t)((b & 15) << 4 | c >> 2);
  }
  *outlen = o;
  return 0;
}

/* ---- keys, values, content-type -------------------------------------------------------- */

int rt_grpc_meta_key_valid(const char *key, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' ||
          c == '.'))
      return 0;
  }
  return 1;
}

int rt_grpc_meta_key_is_bin(const char *key, size_t len) {
  return len >= 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

int rt_grpc_meta_value_valid(const char *val, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)val[i] < 0x20 || (unsigned char)val[i] > 0x7e) return 0;
  return 1;
}

int rt_grpc_content_type_parse(const char *s, size_t len, const char **sub, size_t *sublen) {
  static const char base[] = "application/grpc";
  const size_t blen = sizeof base - 1;
  trim(&s, &len);
  if (len < blen || !eq_nocase(s, blen, base)) return -1;
  const char *p = s + blen, *end = s + len, *st = p;
  size_t sl = 0;
  if (p < end && *p == '+') {
    st = ++p;
    while (p < end && *p != ';') p++;
    sl = (size_t)(p - st);
    while (sl && is_ows(st[sl - 1])) sl--;
    if (sl == 0) return -1;
  } else {
    while (p < end && is_ows(*p)) p++;
  }
  /* "application/grpcfoo" is another type, not ours. */
  if (p < end && *p != ';') return -1;
  if (sub) *sub = st;
  if (sublen) *sublen = sl;
  if (sl == 0 || eq_nocase(st, sl, "proto")) return RT_GRPC_CT_PROTO;
  if (eq_nocase(st, sl, "json")) return RT_GRPC_CT_JSON;
  return RT_GRPC_CT_OTHER;
}

/* ---- encodings --------------------------------------------------------------------------*/

static const char *const enc_names[RT_GRPC_ENC_COUNT_] = { NULL, "identity", "gzip", "deflate" };

rt_grpc_enc rt_grpc_enc_parse(const char *s, size_t len) {
  trim(&s, &len);
  if (len == 0) return RT_GRPC_ENC_NONE;
  for (int e = RT_GRPC_ENC_IDENTITY; e < RT_GRPC_ENC_COUNT_; e++)
    if (eq_nocase(s, len, enc_names[e])) return (rt_grpc_enc)e;
  return RT_GRPC_ENC_UNKNOWN;
}

const char *rt_grpc_enc_name(rt_grpc_enc enc) {
  if (enc <= RT_GRPC_ENC_NONE || enc >= RT_GRPC_ENC_COUNT_) return NULL;
  return enc_names[enc];
}

int rt_grpc_list_next(const char *s, size_t len, size_t *pos, const char **item,
                      size_t *itemlen) {
  while (*pos < len) {
    size_t st = *pos, e = st;
    while (e < len && s[e] != ',') e++;
    *pos = e < len ? e + 1 : len;
    const char *it = s + st;
    size_t n = e - st;
    trim(&it, &n);
    if (n) {
      *item = it;
      *itemlen = n;
      return 1;
    }
  }
  return 0;
}

unsigned rt_grpc_accept_encoding_parse(const char *s, size_t len) {
  unsigned mask = 0;
  size_t pos = 0, n;
  const char *it;
  while (rt_grpc_list_next(s, len, &pos, &it, &n)) {
    rt_grpc_enc e = rt_grpc_enc_parse(it, n);
    if (e > RT_GRPC_ENC_NONE) mask |= RT_GRPC_ENC_BIT(e);
  }
  return mask;
}

int rt_grpc_accept_encoding_format(unsigned mask, char *out, size_t outlen) {
  size_t o = 0;
  if (outlen == 0) return RT_GRPC_ESPACE;
  out[0] = '\0';
  for (int e = RT_GRPC_ENC_IDENTITY; e < RT_GRPC_ENC_COUNT_; e++) {
    if (!(mask & RT_GRPC_ENC_BIT(e))) continue;
    size_t n = strlen(enc_names[e]);
    if (o + (o ? 1 : 0) + n + 1 > outlen) return RT_GRPC_ESPACE;
    if (o) out[o++] = ',';
    memcpy(out + o, enc_names[e], n);
    o += n;
    out[o] = '\0';
  }
  return (int)o;
}

int rt_grpc_status_from_http(int s) {
  switch (s) {
    case 400: return RT_GRPC_STATUS_INTERNAL;
    case 401: return RT_GRPC_STATUS_UNAUTHENTICATED;
    case 403: return RT_GRPC_STATUS_PERMISSION_DENIED;
    case 404: return RT_GRPC_STATUS_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return RT_GRPC_STATUS_UNAVAILABLE;
    default: return RT_GRPC_STATUS_UNKNOWN;
  }
}

int rt_grpc_status_from_h2(uint32_t e) {
  enum { REFUSED_STREAM = 7, CANCEL = 8, ENHANCE_YOUR_CALM = 11, INADEQUATE_SECURITY = 12 };
  switch (e) {
    case REFUSED_STREAM: return RT_GRPC_STATUS_UNAVAILABLE;
    case CANCEL: return RT_GRPC_STATUS_CANCELLED;
    case ENHANCE_YOUR_CALM: return RT_GRPC_STATUS_RESOURCE_EXHAUSTED;
    case INADEQUATE_SECURITY: return RT_GRPC_STATUS_PERMISSION_DENIED;
    default: return RT_GRPC_STATUS_INTERNAL;
  }
}
