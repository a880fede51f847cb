#include "h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/server_int.h"

static const rt_proto h2_proto;

int rt_h2_is_h2(const rt_conn *c) { return c->proto == &h2_proto; }

static void *stream_of(rt_h2 *h, int32_t sid) {
  return nghttp2_session_get_stream_user_data(h->session, sid);
}

/* ---- nghttp2 callbacks: they only change stream state -------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  rt_h2 *h = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  void *st = h->streams->stream_open(h, f->hd.stream_id);
  /* Out of memory: nghttp2 resets just this stream. */
  if (!st) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  rt_h2 *h = ud;
  /* Request headers only: trailers from a client carry nothing gRPC uses. */
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  void *st = stream_of(h, f->hd.stream_id);
  if (st) h->streams->stream_header(st, name, namelen, value, valuelen);
  return 0;
}

static void count_reset(rt_h2 *h) {
  double now = ev_now(h->c->srv->loop);
  if (now - h->reset_window >= 1.0) {
    h->reset_window = now;
    h->resets = 0;
  }
  /* Opening and resetting streams costs us more than the peer (CVE-2023-44487). */
  if (++h->resets > RT_H2_MAX_RESETS && !h->going_away) {
    rt_warn(&h->c->srv->log, "%s: HTTP/2 rapid reset, closing", h->c->peer);
    h->going_away = 1;
    nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  rt_h2 *h = ud;
  void *st = f->hd.stream_id ? stream_of(h, f->hd.stream_id) : NULL;
  switch (f->hd.type) {
    case NGHTTP2_HEADERS:
      if (st && f->headers.cat == NGHTTP2_HCAT_REQUEST) h->streams->stream_headers_done(st);
      if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) h->streams->stream_end(st);
      break;
    case NGHTTP2_DATA:
      if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) h->streams->stream_end(st);
      break;
    case NGHTTP2_RST_STREAM:
      count_reset(h);
      break;
    default:
      break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
  rt_h2 *h = ud;
  /* The connection window is always given back: a stalled stream holds only its own
   * window, never the other streams'. */
  nghttp2_session_consume_connection(s, len);
  void *st = stream_of(h, sid);
  if (st) h->streams->stream_data(st, data, len);
  else nghttp2_session_consume_stream(s, sid, len);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud) {
  rt_h2 *h = ud;
  void *st = stream_of(h, sid);
  if (st) {
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    h->streams->stream_close(st, error_code);
  }
  return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  rt_h2 *h = ud;
  if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  /* We answered before the client finished its request: RFC 9113 8.1 says reset with
   * NO_ERROR, so it stops sending and the stream does not linger half-open. */
  void *st = stream_of(h, f->hd.stream_id);
  if (st && h->streams->stream_input_open(st))
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud) {
  rt_h2 *h = ud;
  rt_debug(&h->c->srv->log, "%s: HTTP/2: %.*s", h->c->peer, (int)len, msg);
  return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static void stage_flush(rt_h2 *h) {
  if (!h->stage.len) return;
  rt_conn_write(h->c, rt_buf_start(&h->stage), h->stage.len);
  h->stage.len = h->stage.off = 0;
}

/* Moves nghttp2's output to the write queue, up to the high-water mark; on_drained
 * brings us back for the rest. */
static void send_out(rt_h2 *h) {
  rt_conn *c = h->c;
  while (!c->closing && c->out.bytes + h->stage.len < RT_H2_OUT_HIGH) {
    const uint8_t *data;
    h->in_lib = 1;
    ssize_t n = nghttp2_session_mem_send(h->session, &data);
    h->in_lib = 0;
    if (n < 0) {
      rt_debug(&c->srv->log, "%s: HTTP/2 send: %s", c->peer, nghttp2_strerror((int)n));
      rt_conn_close(c);
      return;
    }
    if (n == 0) break;
    if (rt_buf_append(&h->stage, data, (size_t)n) < 0) {
      rt_conn_close(c);
      return;
    }
    if (h->stage.len >= 16384) stage_flush(h);
  }
  if (!c->closing) stage_flush(h);
}

static void h2_free(rt_h2 *h) {
  ev_timer_stop(h->c->srv->loop, &h->later);
  rt_buf_free(&h->stage);
  free(h);
}

/* Ends the connection once nghttp2 has nothing more to say and will hear nothing. */
static void check_done(rt_h2 *h) {
  rt_conn *c = h->c;
  if (c->closing || h->dead) return;
  if (!nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session))
    rt_conn_close_after_write(c);
}

void rt_h2_pump(rt_h2 *h) {
  if (h->pumping || h->in_lib) {
    h->again = 1;
    return;
  }
  rt_conn *c = h->c;
  h->pumping = 1;
  h->depth++;
  int rounds = 0;
  do {
    h->again = 0;
    h->streams->run(h);
    if (c->closing || h->dead) break;
    send_out(h);
    if (c->closing || h->dead) break;
    /* Sending can free window and wake writers; a few rounds settle it, on_drained
     * picks the rest up. */
  } while ((h->again || h->news) && ++rounds < 16);
  h->pumping = 0;
  /* Handlers that keep each other busy must not starve the loop: finish next turn. */
  if ((h->again || h->news) && !h->dead && !c->closing)
    ev_timer_start(c->srv->loop, &h->later);
  check_done(h);
  if (--h->depth == 0 && h->dead) h2_free(h);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents) {
  rt_h2 *h = w->data;
  rt_h2_pump(h);
}

/* ---- rt_proto --------------------------------------------------------------------- */

static void on_read(rt_conn *c) {
  rt_h2 *h = c->pstate;
  h->depth++;
  h->in_lib = 1;
  ssize_t n = nghttp2_session_mem_recv(h->session, rt_buf_start(&c->in), c->in.len);
  h->in_lib = 0;
  if (n < 0) {
    /* A fatal error (flood, bad preface): nghttp2 queued GOAWAY where it could. */
    rt_info(&c->srv->log, "%s: HTTP/2: %s", c->peer, nghttp2_strerror((int)n));
    rt_buf_consume(&c->in, c->in.len);
    if (!h->dead) {
      nghttp2_session_terminate_session(h->session, NGHTTP2_PROTOCOL_ERROR);
      send_out(h);
    }
    rt_conn_close_after_write(c);
  } else {
    rt_buf_consume(&c->in, (size_t)n);
    if (!h->dead) rt_h2_pump(h);
  }
  if (--h->depth == 0 && h->dead) h2_free(h);
}

static void on_drained(rt_conn *c) {
  rt_h2 *h = c->pstate;
  if (nghttp2_session_want_write(h->session)) rt_h2_pump(h);
}

static void on_tick(rt_conn *c, double idle) {
  rt_h2 *h = c->pstate;
  /* Long-lived streams (a gRPC Watch, a chat) may be quiet for long: only a connection
   * with no stream open is idle. */
  if (idle > c->srv->cfg.idle_timeout && h->streams->open_count(h) == 0 && !h->going_away) {
    h->going_away = 1;
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                          (const uint8_t *)"idle", 4);
    rt_h2_pump(h);
    rt_conn_close_after_write(c);
  }
}

static void on_close(rt_conn *c) {
  rt_h2 *h = c->pstate;
  if (!h) return;  /* rt_h2_start failed */
  h->depth++;
  h->dead = 1;
  ev_timer_stop(c->srv->loop, &h->later);
  h->streams->detach_all(h);
  nghttp2_session_del(h->session);
  h->session = NULL;
  if (--h->depth == 0) h2_free(h);
}

static void on_script_error(rt_conn *c) {
  /* Script errors end their stream (rt_grpc.lua); nothing to do per connection. */
}

static void on_shutdown(rt_conn *c) { rt_h2_shutdown(c); }

static const rt_proto h2_proto = {
    .name = "h2",
    .on_read = on_read,
    .on_drained = on_drained,
    .on_tick = on_tick,
    .on_script_error = on_script_error,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

void rt_h2_shutdown(rt_conn *c) {
  if (!rt_h2_is_h2(c) || c->closing || !c->pstate) return;
  rt_h2 *h = c->pstate;
  if (h->going_away) return;
  /* No new streams; those in flight run to their end, then check_done closes. A host
   * that stops waiting frees the server, which cancels whatever is left. */
  h->going_away = 1;
  nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                        NULL, 0);
  rt_h2_pump(h);
}

static nghttp2_session_callbacks *make_callbacks(void) {
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) return NULL;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cb, on_error);
  return cb;
}

void rt_h2_start(rt_conn *c, const rt_h2_streams *streams) {
  rt_h2 *h = calloc(1, sizeof *h);
  nghttp2_session_callbacks *cb = make_callbacks();
  nghttp2_option *opt = NULL;
  if (!h || !cb || nghttp2_option_new(&opt) != 0) goto fail;
  /* Window updates only for bytes the app has taken: that is the inbound bound. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  h->c = c;
  h->streams = streams;
  if (nghttp2_session_server_new2(&h->session, cb, h, opt) != 0) goto fail;
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  cb = NULL;
  opt = NULL;
  uint32_t max_hdr = (uint32_t)c->srv->cfg.max_header_bytes;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, RT_H2_MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RT_H2_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, RT_H2_MAX_FRAME},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_hdr ? max_hdr : 16384},
  };
  if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
      nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, RT_H2_CONN_WINDOW) != 0)
    goto fail;
  h->reset_window = ev_now(c->srv->loop);
  ev_timer_init(&h->later, on_later, 0, 0);
  h->later.data = h;
  rt_conn_set_proto(c, &h2_proto, RT_PROTO_H2, h);
  rt_debug(&c->srv->log, "%s: HTTP/2", c->peer);
  rt_conn_touch(c);
  if (c->in.len) on_read(c);
  else rt_h2_pump(h);
  return;
fail:
  if (cb) nghttp2_session_callbacks_del(cb);
  if (opt) nghttp2_option_del(opt);
  if (h && h->session) nghttp2_session_del(h->session);
  free(h);
  /* The previous protocol's state is gone: close under ours. */
  rt_conn_set_proto(c, &h2_proto, RT_PROTO_H2, NULL);
  rt_conn_close(c);
}
