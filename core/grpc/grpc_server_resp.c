/* gRPC server calls, the response side: HEADERS (status 200, content-type, encodings, the
 * app's headers), reply messages handed to nghttp2 as DATA through read_cb (which keeps
 * track of message boundaries, so a failing call drops whole messages only), trailers with
 * grpc-status and grpc-message, or everything in one trailers-only HEADERS block. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "grpc_server_int.h"
#include "http/h2.h"

typedef struct nvlist {
  nghttp2_nv *v;
  size_t n, cap;
} nvlist;

static void nv_add(nvlist *l, const char *k, const char *v, size_t vlen) {
  if (l->n == l->cap) return;  /* sized by count_pairs: cannot happen */
  l->v[l->n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, strlen(k), vlen, NGHTTP2_NV_FLAG_NONE};
}

static size_t count_pairs(const rt_buf *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->len; i++) n += buf_bytes(b)[i] == 0;
  return n / 2;
}

static void nv_add_pairs(nvlist *l, const rt_buf *b) {
  const char *p = (const char *)buf_bytes(b), *end = p + b->len;
  while (p < end) {
    const char *k = p, *v = k + strlen(k) + 1;
    nv_add(l, k, v, strlen(v));
    p = v + strlen(v) + 1;
  }
}

static int nv_init(nvlist *l, size_t extra) {
  l->n = 0;
  l->cap = extra;
  l->v = malloc(extra * sizeof *l->v);
  return l->v ? 0 : -1;
}

/* Adds grpc-status and grpc-message; msgbuf must hold the percent-encoded message. */
static void nv_add_status(nvlist *l, rt_grpc_srv_call *call, char *statusbuf, char *msgbuf) {
  snprintf(statusbuf, 12, "%d", call->status);
  nv_add(l, "grpc-status", statusbuf, strlen(statusbuf));
  if (call->msglen) {
    size_t n = rt_grpc_pct_encode(call->message, call->msglen, msgbuf);
    nv_add(l, "grpc-message", msgbuf, n);
  }
}

static char *status_msgbuf(rt_grpc_srv_call *call) {
  return malloc(rt_grpc_pct_encode_len(call->message ? call->message : "", call->msglen) + 1);
}

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud);

void rt_grpc_srv_submit_headers(rt_grpc_srv_call *call) {
  if (call->submitted || !live(call)) return;
  nvlist l;
  if (nv_init(&l, 4 + count_pairs(&call->hdr_out)) < 0) return;
  nv_add(&l, ":status", "200", 3);
  nv_add(&l, "content-type", "application/grpc", 16);
  const char *enc = rt_grpc_enc_name(call->resp_enc);
  if (call->resp_enc == RT_GRPC_ENC_GZIP || call->resp_enc == RT_GRPC_ENC_DEFLATE)
    nv_add(&l, "grpc-encoding", enc, strlen(enc));
  nv_add(&l, "grpc-accept-encoding", ACCEPT_ENCODINGS, sizeof ACCEPT_ENCODINGS - 1);
  nv_add_pairs(&l, &call->hdr_out);
  nghttp2_data_provider dp = {.source = {.ptr = NULL}, .read_callback = read_cb};
  if (nghttp2_submit_response(call->h2->session, call->sid, l.v, l.n, &dp) == 0)
    call->submitted = 1;
  else
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
  free(l.v);
}

/* One HEADERS frame with END_STREAM: status, the app's headers and trailers together. */
void rt_grpc_srv_submit_trailers_only(rt_grpc_srv_call *call) {
  nvlist l;
  char st[12], *msg = status_msgbuf(call);
  if (!msg || nv_init(&l, 6 + count_pairs(&call->hdr_out) + count_pairs(&call->trl_out)) < 0) {
    free(msg);
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
    return;
  }
  nv_add(&l, ":status", "200", 3);
  nv_add(&l, "content-type", "application/grpc", 16);
  nv_add(&l, "grpc-accept-encoding", ACCEPT_ENCODINGS, sizeof ACCEPT_ENCODINGS - 1);
  nv_add_status(&l, call, st, msg);
  nv_add_pairs(&l, &call->hdr_out);
  nv_add_pairs(&l, &call->trl_out);
  nghttp2_submit_response(call->h2->session, call->sid, l.v, l.n, NULL);
  call->submitted = call->trailers_sent = 1;
  free(l.v);
  free(msg);
}

static void submit_trailers(rt_grpc_srv_call *call) {
  nvlist l;
  char st[12], *msg = status_msgbuf(call);
  if (!msg || nv_init(&l, 2 + count_pairs(&call->trl_out)) < 0) {
    free(msg);
    nghttp2_submit_rst_stream(call->h2->session, NGHTTP2_FLAG_NONE, call->sid,
                              NGHTTP2_INTERNAL_ERROR);
    return;
  }
  nv_add_status(&l, call, st, msg);
  nv_add_pairs(&l, &call->trl_out);
  nghttp2_submit_trailer(call->h2->session, call->sid, l.v, l.n);
  call->trailers_sent = 1;
  free(l.v);
  free(msg);
}

/* A plain HTTP answer for requests that are not gRPC at all. */
void rt_grpc_srv_submit_http_status(rt_grpc_srv_call *call, const char *status) {
  nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE}};
  nghttp2_submit_response(call->h2->session, call->sid, nv, 1, NULL);
  call->submitted = call->trailers_sent = call->finished = 1;
}

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud) {
  rt_grpc_srv_call *call = nghttp2_session_get_stream_user_data(s, sid);
  if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = call->out.len < len ? call->out.len : len;
  memcpy(buf, buf_bytes(&call->out), n);
  /* Track where messages end, so a failing call can drop whole messages only. */
  for (size_t left = n; left;) {
    if (!call->head_left) {
      const uint8_t *p = buf_bytes(&call->out);
      call->head_left = RT_GRPC_PREFIX_LEN + ((size_t)p[1] << 24 | (size_t)p[2] << 16 |
                                              (size_t)p[3] << 8 | p[4]);
    }
    size_t take = left < call->head_left ? left : call->head_left;
    call->head_left -= take;
    left -= take;
    rt_buf_consume(&call->out, take);
  }
  if (call->want_writable && call->out.len <= RT_GRPC_SRV_OUT_LOW) {
    call->want_writable = 0;
    rt_grpc_srv_queue_event(call);
  }
  if (call->out.len == 0 && call->finished) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    submit_trailers(call);
    return (ssize_t)n;
  }
  if (n) return (ssize_t)n;
  call->deferred = 1;
  return NGHTTP2_ERR_DEFERRED;
}

void rt_grpc_srv_resume(rt_grpc_srv_call *call) {
  if (!call->deferred || !live(call)) return;
  call->deferred = 0;
  nghttp2_session_resume_data(call->h2->session, call->sid);
}

void rt_grpc_srv_kick(rt_grpc_srv_call *call) {
  if (call->h2) rt_h2_pump(call->h2);
}
