#include "ws_compress.h"

#include <stdlib.h>
#include <string.h>

#include "net/server_int.h"

/* The server's side: everything here is shared by every connection of the server. */
struct rt_ws_z {
  rt_ws_deflater out[16];  /* context-free compressors, by window bits (9..15), made on need */
  rt_ws_inflater in;       /* for clients that keep no context: reset after every message */
  rt_buf scratch;          /* a compressed payload on its way into a frame */
  rt_buf plain;            /* an inflated message on its way to the app */
  size_t takeover_used;    /* zlib memory granted to connections with context takeover */
};

struct rt_ws_zown {
  rt_ws_deflater out;  /* out.ready = 0 until the first compressed message */
  rt_ws_inflater in;
};

static void z_free(rt_server *srv);

/* The server's side, made on first need; rt_server_free frees it through ws_z_free. */
static struct rt_ws_z *z_of(rt_server *srv) {
  if (!srv->ws_z && (srv->ws_z = calloc(1, sizeof *srv->ws_z))) srv->ws_z_free = z_free;
  return srv->ws_z;
}

int rt_ws_z_negotiate(rt_server *srv, const rt_http_req *req, int allowed, rt_ws_zconn *zc,
                      char *line, size_t linelen) {
  memset(zc, 0, sizeof *zc);
  line[0] = 0;
  const char *values[8];
  int n = 0;
  for (int i = 0; i < req->nheaders && n < 8; i++)
    if (strcmp(req->headers[i].name, "sec-websocket-extensions") == 0) values[n++] = req->headers[i].value;
  if (!allowed || !srv->cfg.ws_deflate || n == 0 || !z_of(srv)) return 0;
  struct rt_ws_z *z = srv->ws_z;
  size_t budget = srv->cfg.ws_deflate_takeover;
  if (!rt_ws_deflate_negotiate(values, n, budget > 0, &zc->p, line, linelen)) return 0;
  size_t cost = rt_ws_deflate_takeover_cost(&zc->p);
  if (cost && z->takeover_used + cost > budget) {
    /* The budget is spent: this one gets the cheap terms (any offer acceptable with
     * takeover is acceptable without). */
    if (!rt_ws_deflate_negotiate(values, n, 0, &zc->p, line, linelen)) return 0;
    cost = 0;
  }
  z->takeover_used += cost;
  return 1;
}

void rt_ws_z_release(rt_server *srv, rt_ws_zconn *zc) {
  if (zc->own) {
    rt_ws_deflater_end(&zc->own->out);
    rt_ws_inflater_end(&zc->own->in);
    free(zc->own);
  }
  if (srv->ws_z) srv->ws_z->takeover_used -= rt_ws_deflate_takeover_cost(&zc->p);
  memset(zc, 0, sizeof *zc);
}

static rt_ws_zown *own_of(rt_ws_zconn *zc) {
  if (!zc->own) zc->own = calloc(1, sizeof *zc->own);
  return zc->own;
}

/* The compressor a message to this connection goes through. */
static rt_ws_deflater *deflater_for(struct rt_ws_z *z, rt_ws_zconn *zc) {
  rt_ws_deflater *d;
  if (zc->p.server_no_takeover) d = &z->out[zc->p.server_bits & 15];
  else if (own_of(zc)) d = &zc->own->out;
  else return NULL;
  if (!d->ready && rt_ws_deflater_init(d, zc->p.server_bits) < 0) return NULL;
  return d;
}

rt_chunk *rt_ws_z_frame(rt_server *srv, rt_ws_zconn *zc, int opcode, const rt_ws_part *parts, int n) {
  struct rt_ws_z *z = z_of(srv);
  rt_ws_deflater *d = z ? deflater_for(z, zc) : NULL;
  if (!d) return NULL;
  srv->metrics.ws_compressions++;
  return rt_ws_deflate_frame(d, zc->p.server_no_takeover, opcode, parts, n, &z->scratch);
}

rt_chunk *rt_ws_z_shared_frame(rt_server *srv, int opcode, const rt_ws_part *parts, int n) {
  rt_ws_zconn shared = {.p = {.on = 1, .server_no_takeover = 1, .client_no_takeover = 1,
                              .server_bits = RT_WS_DEFLATE_BITS, .client_bits = 15}};
  return rt_ws_z_frame(srv, &shared, opcode, parts, n);
}

int rt_ws_z_inflate(rt_server *srv, rt_ws_zconn *zc, const uint8_t *in, size_t len, size_t max,
                    const uint8_t **out, size_t *outlen) {
  struct rt_ws_z *z = z_of(srv);
  if (!z) return RT_WS_INFLATE_NOMEM;
  rt_ws_inflater *f;
  if (zc->p.client_no_takeover) f = &z->in;
  else if (own_of(zc)) f = &zc->own->in;
  else return RT_WS_INFLATE_NOMEM;
  if (!f->ready && rt_ws_inflater_init(f, zc->p.client_bits) < 0) return RT_WS_INFLATE_NOMEM;
  rt_buf_consume(&z->plain, z->plain.len);
  int rc = rt_ws_inflate_msg(f, in, len, max, zc->p.client_no_takeover, &z->plain);
  *out = z->plain.len ? rt_buf_start(&z->plain) : (const uint8_t *)"";
  *outlen = z->plain.len;
  return rc;
}

void rt_ws_z_inflated_done(rt_server *srv) {
  struct rt_ws_z *z = srv->ws_z;
  if (!z) return;
  /* A big message does not pin its buffer for the life of the server. */
  if (z->plain.cap > 65536) rt_buf_free(&z->plain);
  else rt_buf_consume(&z->plain, z->plain.len);
}

static void z_free(rt_server *srv) {
  struct rt_ws_z *z = srv->ws_z;
  if (!z) return;
  for (int i = 0; i < 16; i++) rt_ws_deflater_end(&z->out[i]);
  rt_ws_inflater_end(&z->in);
  rt_buf_free(&z->scratch);
  rt_buf_free(&z->plain);
  free(z);
  srv->ws_z = NULL;
}
