/* gRPC client calls, the receiving side: response headers and trailers as nghttp2 hands
 * them over (status, content-type, grpc-status/-message/-encoding, metadata), messages
 * decoded into the call's queue with flow control held back while the script lags, and
 * how a stream's end or reset becomes the call's status. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client_int.h"
#include "grpc_meta.h"

int rt_grpc_call_peek(const rt_grpc_call *c, const uint8_t **data, size_t *len) {
  if (!c->q_head) return 0;
  *data = c->q_head->data;
  *len = c->q_head->len;
  return 1;
}

void rt_grpc_call_pop(rt_grpc_call *c) {
  msg_node *m = c->q_head;
  if (!m) return;
  c->q_head = m->next;
  if (!c->q_head) c->q_tail = NULL;
  c->q_count--;
  c->q_cost -= m->len + MSG_OVERHEAD;
  free(m);
  /* The reader caught up: give the peer the window we held back. */
  if (c->unconsumed && c->q_cost < RT_GRPC_CLIENT_RECV_HIGH / 2) {
    size_t n = c->unconsumed;
    c->unconsumed = 0;
    if (c->h && c->stream_id) rt_h2c_consume(c->h, c->stream_id, n);
  }
}

size_t rt_grpc_call_queued(const rt_grpc_call *c) { return c->q_count; }
int rt_grpc_call_has_headers(const rt_grpc_call *c) { return c->got_headers; }
int rt_grpc_call_done(const rt_grpc_call *c) { return c->done; }

int rt_grpc_call_status(const rt_grpc_call *c, const char **message) {
  if (message) *message = c->message ? c->message : "";
  return c->status;
}

size_t rt_grpc_call_md(const rt_grpc_call *c, int trailers, const rt_grpc_md **out) {
  *out = c->md[trailers ? 1 : 0].v;
  return c->md[trailers ? 1 : 0].n;
}

static int md_add(md_list *l, const uint8_t *name, size_t namelen, const uint8_t *value,
                  size_t valuelen) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    rt_grpc_md *v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  char *k = malloc(namelen + 1);
  uint8_t *val = malloc(valuelen + 1);
  if (!k || !val) {
    free(k);
    free(val);
    return -1;
  }
  memcpy(k, name, namelen);
  k[namelen] = 0;
  size_t vl = valuelen;
  /* -bin values arrive as base64; the script gets the bytes (or the text if malformed). */
  if (rt_grpc_meta_key_is_bin(k, namelen) &&
      rt_grpc_b64_decode((const char *)value, valuelen, val, &vl) == 0) {
  } else {
    memcpy(val, value, valuelen);
    vl = valuelen;
  }
  val[vl] = 0;
  l->v[l->n].key = k;
  l->v[l->n].val = val;
  l->v[l->n].vallen = vl;
  l->n++;
  return 0;
}

static int name_is(const uint8_t *name, size_t len, const char *lit) {
  return len == strlen(lit) && !memcmp(name, lit, len);
}

int rt_grpc_call_on_header(rt_grpc_call *c, int trailers, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen) {
  if (c->done) return 0;
  c->md_bytes += namelen + valuelen + 32;
  if (c->md_bytes > RT_GRPC_CLIENT_MAX_MD_BYTES ||
      c->md[0].n + c->md[1].n >= RT_GRPC_CLIENT_MAX_MD_ENTRIES) {
    rt_grpc_call_finish(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "response metadata over %d bytes or %d entries",
                RT_GRPC_CLIENT_MAX_MD_BYTES, RT_GRPC_CLIENT_MAX_MD_ENTRIES);
    return -1;
  }
  if (namelen && name[0] == ':') {
    if (!trailers && name_is(name, namelen, ":status")) {
      int st = 0;
      for (size_t i = 0; i < valuelen && i < 4; i++) st = st * 10 + (value[i] - '0');
      c->http_status = st;
    }
    return 0;
  }
  if (name_is(name, namelen, "content-type")) {
    c->ct_ok = rt_grpc_content_type_parse((const char *)value, valuelen, NULL, NULL) >= 0;
    return 0;
  }
  if (name_is(name, namelen, "grpc-status")) {
    int st = rt_grpc_status_parse((const char *)value, valuelen);
    c->grpc_status = st < 0 ? GRPC_STATUS_BAD : st;
    return 0;
  }
  if (name_is(name, namelen, "grpc-message")) {
    free(c->grpc_message);
    c->grpc_message = malloc(valuelen + 1);
    if (c->grpc_message) {
      size_t n = rt_grpc_pct_decode((const char *)value, valuelen, (uint8_t *)c->grpc_message);
      c->grpc_message[n] = 0;
    }
    return 0;
  }
  if (name_is(name, namelen, "grpc-encoding")) {
    rt_grpc_enc enc = rt_grpc_enc_parse((const char *)value, valuelen);
    if (enc == RT_GRPC_ENC_UNKNOWN) {
      rt_grpc_call_finish(c, RT_GRPC_STATUS_INTERNAL, "the server used grpc-encoding '%.*s', which we did not offer",
                  (int)(valuelen > 40 ? 40 : valuelen), (const char *)value);
      return -1;
    }
    rt_grpc_dec_set_encoding(&c->dec, enc, 1);
    return 0;
  }
  if (name_is(name, namelen, "grpc-accept-encoding")) return 0;
  if (md_add(&c->md[trailers ? 1 : 0], name, namelen, value, valuelen) < 0) {
    rt_grpc_call_finish(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  return 0;
}

/* The status from trailers (or a trailers-only response). */
static void finish_from_trailers(rt_grpc_call *c) {
  if (c->done) return;
  const char *msg = c->grpc_message ? c->grpc_message : "";
  if (c->grpc_status == GRPC_STATUS_NONE) {
    if (c->http_status != 200)
      rt_grpc_call_finish(c, rt_grpc_status_from_http(c->http_status), "HTTP status %d from the server",
                  c->http_status);
    else
      rt_grpc_call_finish(c, RT_GRPC_STATUS_UNKNOWN, "the response carried no grpc-status");
  } else if (c->grpc_status == GRPC_STATUS_BAD) {
    rt_grpc_call_finish(c, RT_GRPC_STATUS_UNKNOWN, "malformed grpc-status from the server");
  } else if (c->grpc_status == RT_GRPC_STATUS_OK && rt_grpc_dec_finish(&c->dec) < 0) {
    rt_grpc_call_finish(c, RT_GRPC_STATUS_INTERNAL, "the response ended inside a message");
  } else {
    rt_grpc_call_finish(c, c->grpc_status, "%s", msg);
  }
  /* The server is done with the call; if we are still sending, stop and free the stream. */
  if (!c->eof_sent && c->h && c->stream_id) rt_h2c_reset(c->h, c->stream_id, NGHTTP2_NO_ERROR);
}

int rt_grpc_call_on_headers_end(rt_grpc_call *c, int trailers, int end_stream) {
  if (c->done) return 0;
  if (trailers) {
    finish_from_trailers(c);
    return 0;
  }
  if (c->got_headers) return 0;
  if (c->http_status >= 100 && c->http_status < 200) return 0;  /* informational */
  c->got_headers = 1;
  if (end_stream) {
    /* Trailers-only: what came is trailing metadata. */
    md_list t = c->md[1];
    c->md[1] = c->md[0];
    c->md[0] = t;
    finish_from_trailers(c);
    return 0;
  }
  if (c->http_status != 200) {
    char msg[80];
    snprintf(msg, sizeof msg, "HTTP status %d from the server", c->http_status);
    rt_grpc_call_cancel(c, rt_grpc_status_from_http(c->http_status), msg);
    return -1;
  }
  if (!c->ct_ok) {
    rt_grpc_call_cancel(c, RT_GRPC_STATUS_UNKNOWN, "the response content-type is not application/grpc");
    return -1;
  }
  rt_grpc_call_renotify(c);
  return 0;
}

int rt_grpc_call_on_data(rt_grpc_call *c, const uint8_t *data, size_t len) {
  size_t off = 0;
  int got = 0;
  while (!c->done && off < len) {
    size_t used = 0;
    rt_grpc_msg m;
    int rc = rt_grpc_dec_feed(&c->dec, data + off, len - off, &used, &m);
    off += used;
    if (rc == RT_GRPC_MSG) {
      msg_node *n = malloc(sizeof *n + m.len);
      if (!n) {
        rt_grpc_call_cancel(c, RT_GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        break;
      }
      n->next = NULL;
      n->len = m.len;
      memcpy(n->data, m.data, m.len);
      if (c->q_tail) c->q_tail->next = n;
      else c->q_head = n;
      c->q_tail = n;
      c->q_count++;
      c->q_cost += m.len + MSG_OVERHEAD;
      got = 1;
      continue;
    }
    if (rc < 0) {
      char msg[200];
      snprintf(msg, sizeof msg, "bad response message: %s", rt_grpc_dec_error(&c->dec));
      rt_grpc_call_cancel(c, rt_grpc_err_status(rc), msg);
      break;
    }
    break;  /* RT_GRPC_NEED_MORE */
  }
  /* Stream credit goes back only while the reader keeps up (see h2_client.c). */
  if (c->done || c->q_cost < RT_GRPC_CLIENT_RECV_HIGH) {
    if (c->h && c->stream_id) rt_h2c_consume(c->h, c->stream_id, len);
  } else {
    c->unconsumed += len;
  }
  if (got) rt_grpc_call_renotify(c);
  return 0;
}

void rt_grpc_call_on_end_stream(rt_grpc_call *c) {
  if (!c->done)
    rt_grpc_call_finish(c, RT_GRPC_STATUS_INTERNAL, "the server closed the stream without trailers");
}

void rt_grpc_call_on_close(rt_grpc_call *c, uint32_t h2_error) {
  if (c->h) rt_h2c_add_calls(c->h, -1);
  c->h = NULL;
  c->stream_id = 0;
  if (c->done) return;
  if (h2_error == NGHTTP2_NO_ERROR)
    rt_grpc_call_finish(c, RT_GRPC_STATUS_INTERNAL, "the stream closed without a status");
  else if (h2_error == NGHTTP2_REFUSED_STREAM)
    rt_grpc_call_finish(c, RT_GRPC_STATUS_UNAVAILABLE, "the server refused the stream (going away)");
  else
    rt_grpc_call_finish(c, rt_grpc_status_from_h2(h2_error), "stream reset by the server: %s",
                nghttp2_http2_strerror(h2_error));
}
