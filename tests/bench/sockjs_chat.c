/* Chat load over SockJS xhr-streaming or over a raw WebSocket, for tests/bench/sockjs_run.sh.
 *
 *   sockjs_chat MODE --port P [-c CLIENTS] [-k IN_FLIGHT] [-d SECS] [-w WARMUP]
 *   MODE: ws      (GET /chat-ws, WebSocket frames)
 *         sockjs  (POST /chat/0/<id>/xhr_streaming to receive, /xhr_send to send)
 *
 * Every client is in one room: what one sends, the server publishes to all. Each client
 * keeps IN_FLIGHT of its own messages on the way and sends the next when one of them comes
 * back through the room, so the load is closed-loop and latency is a real round trip
 * (send -> server -> fan-out -> the sender). The SockJS client behaves like sockjs-client:
 * one xhr_send at a time with the messages queued meanwhile sent together, and a new
 * streaming request on the same connection when the server ends one at its response limit.
 *
 * Prints one line: RESULT mode=.. clients=.. msgs_per_s=.. deliveries_per_s=.. p50_us=..
 * p99_us=.. reconnects=.. errors=.. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MODE_WS, MODE_SOCKJS };
enum { ST_HEAD, ST_SIZE, ST_DATA, ST_DATA_CRLF, ST_END };

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void buf_eat(buf *b, size_t n) {
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
  if (b->p) b->p[b->len] = 0;
}

struct client;
typedef struct sock {
  struct client *cl;
  int fd;
  ev_io rio, wio;
  buf in, out;
  void (*on_data)(struct sock *s);
} sock;

typedef struct client {
  int id;
  sock a, b;            /* ws: a only; sockjs: a receives (stream), b sends */
  int ready, closed;
  /* receiving side */
  int head_done, st;
  size_t chunk_left;
  buf lines;
  /* sending side (sockjs) */
  buf pending;          /* quoted messages waiting for the next xhr_send */
  int npending, send_busy, send_head_done;
  long send_body_left;
  uint64_t seq;
} client;

static struct {
  struct ev_loop *loop;
  int mode, port, nclients, inflight;
  double secs, warmup;
  client *clients;
  int measuring, done;
  long msgs, deliveries, reconnects, errors;
  double *lat;
  size_t nlat, caplat;
} B;

static double now_us(void) { return ev_time() * 1e6; }

static void die(const char *what) {
  fprintf(stderr, "sockjs_chat: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void sock_flush(sock *s) {
  while (s->out.len) {
    ssize_t w = write(s->fd, s->out.p, s->out.len);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      B.errors++;
      return;
    }
    buf_eat(&s->out, (size_t)w);
  }
  if (s->out.len) ev_io_start(B.loop, &s->wio);
  else ev_io_stop(B.loop, &s->wio);
}

static void sock_write(sock *s, const void *p, size_t n) {
  buf_add(&s->out, p, n);
  sock_flush(s);
}

static void on_w(struct ev_loop *loop, ev_io *w, int revents) { sock_flush(w->data); }

static void on_r(struct ev_loop *loop, ev_io *w, int revents) {
  sock *s = w->data;
  char tmp[65536];
  ssize_t n = read(s->fd, tmp, sizeof tmp);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (!B.done) {
      fprintf(stderr, "sockjs_chat: client %d: connection closed by the server\n", s->cl->id);
      B.errors++;
    }
    ev_io_stop(loop, &s->rio);
    return;
  }
  buf_add(&s->in, tmp, (size_t)n);
  s->on_data(s);
}

static void sock_open(sock *s, client *cl, void (*on_data)(sock *)) {
  s->cl = cl;
  s->on_data = on_data;
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (s->fd < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)B.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(s->fd, F_SETFL, O_NONBLOCK);
  ev_io_init(&s->rio, on_r, s->fd, EV_READ);
  ev_io_init(&s->wio, on_w, s->fd, EV_WRITE);
  s->rio.data = s->wio.data = s;
  ev_io_start(B.loop, &s->rio);
}

/* ---- the chat ------------------------------------------------------------------------- */

static void send_text(client *cl, const char *text, size_t n);

static void send_next(client *cl) {
  char m[64];
  int n = snprintf(m, sizeof m, "%d %llu %.0f", cl->id, (unsigned long long)cl->seq++, now_us());
  send_text(cl, m, (size_t)n);
}

/* A chat line arrived at cl: "<sender> <seq> <sent at, us>". */
static void got_message(client *cl, const char *m, size_t n) {
  int sender = atoi(m);
  if (B.measuring) B.deliveries++;
  if (sender != cl->id) return;
  const char *sp = memchr(m, ' ', n);
  sp = sp ? memchr(sp + 1, ' ', n - (size_t)(sp + 1 - m)) : NULL;
  if (!sp) return;
  double sent = strtod(sp + 1, NULL);
  if (B.measuring) {
    B.msgs++;
    if (B.nlat == B.caplat) {
      B.caplat = B.caplat ? B.caplat * 2 : 65536;
      B.lat = realloc(B.lat, B.caplat * sizeof *B.lat);
      if (!B.lat) abort();
    }
    B.lat[B.nlat++] = now_us() - sent;
  }
  if (!B.done) send_next(cl);
}

static void start_sending(client *cl) {
  if (cl->ready) return;
  cl->ready = 1;
  for (int i = 0; i < B.inflight; i++) send_next(cl);
}

/* ---- WebSocket -------------------------------------------------------------------------- */

static void ws_data(sock *s) {
  client *cl = s->cl;
  if (!cl->head_done) {
    char *end = strstr(s->in.p, "\r\n\r\n");
    if (!end) return;
    if (strncmp(s->in.p, "HTTP/1.1 101", 12) != 0) {
      fprintf(stderr, "sockjs_chat: no 101: %.60s\n", s->in.p);
      exit(1);
    }
    buf_eat(&s->in, (size_t)(end + 4 - s->in.p));
    cl->head_done = 1;
    start_sending(cl);
  }
  for (;;) {
    const uint8_t *p = (const uint8_t *)s->in.p;
    if (s->in.len < 2) return;
    size_t hl = 2, len = p[1] & 0x7f;
    if (len == 126) {
      if (s->in.len < 4) return;
      len = (size_t)p[2] << 8 | p[3];
      hl = 4;
    } else if (len == 127) {
      if (s->in.len < 10) return;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
      hl = 10;
    }
    if (s->in.len < hl + len) return;
    if ((p[0] & 0x0f) == 1) got_message(cl, (const char *)p + hl, len);
    buf_eat(&s->in, hl + len);
  }
}

static void ws_send(client *cl, const char *text, size_t n) {
  uint8_t h[8];
  size_t hl = 0;
  h[hl++] = 0x81;
  if (n < 126) {
    h[hl++] = (uint8_t)(0x80 | n);
  } else {
    h[hl++] = 0x80 | 126;
    h[hl++] = (uint8_t)(n >> 8);
    h[hl++] = (uint8_t)n;
  }
  memset(h + hl, 0, 4);  /* a zero mask: the payload goes as it is */
  hl += 4;
  buf_add(&cl->a.out, h, hl);
  sock_write(&cl->a, text, n);
}

/* ---- SockJS xhr-streaming ----------------------------------------------------------------- */

static void stream_request(client *cl) {
  char req[256];
  int n = snprintf(req, sizeof req,
                   "POST /chat/000/c%d-%d/xhr_streaming HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n",
                   (int)getpid(), cl->id);
  cl->st = ST_HEAD;
  cl->chunk_left = 0;
  sock_write(&cl->a, req, (size_t)n);
}

/* One line of the stream: a frame. */
static void sockjs_frame(client *cl, const char *l, size_t n) {
  if (n == 1 && l[0] == 'o') {
    start_sending(cl);
  } else if (n >= 2 && l[0] == 'a') {
    /* Our messages hold no quotes or escapes: the strings are what is between quotes. */
    const char *p = l + 1, *end = l + n;
    while ((p = memchr(p, '"', (size_t)(end - p)))) {
      const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
      if (!q) break;
      got_message(cl, p + 1, (size_t)(q - p - 1));
      p = q + 1;
    }
  } else if (n && l[0] == 'c') {
    /* A close frame (c[2010,...] included) ends this client's run: no retry loop. */
    fprintf(stderr, "sockjs_chat: client %d: closed: %.*s\n", cl->id, (int)n, l);
    B.errors++;
    cl->closed = 1;
  }
}

static void process_lines(client *cl) {
  for (char *nl; cl->lines.len && (nl = memchr(cl->lines.p, '\n', cl->lines.len));) {
    size_t n = (size_t)(nl - cl->lines.p);
    sockjs_frame(cl, cl->lines.p, n);
    buf_eat(&cl->lines, n + 1);
  }
}

/* The streaming response, chunk by chunk; the frames inside are lines. */
static void stream_data(sock *s) {
  client *cl = s->cl;
  for (;;) {
    char *end;
    size_t take;
    switch (cl->st) {
      case ST_HEAD:
        if (!s->in.len || !(end = strstr(s->in.p, "\r\n\r\n"))) return;
        if (strncmp(s->in.p, "HTTP/1.1 200", 12) != 0) {
          fprintf(stderr, "sockjs_chat: stream answered %.60s\n", s->in.p);
          exit(1);
        }
        buf_eat(&s->in, (size_t)(end + 4 - s->in.p));
        cl->st = ST_SIZE;
        break;
      case ST_SIZE:
        if (!s->in.len || !(end = strstr(s->in.p, "\r\n"))) return;
        cl->chunk_left = strtoul(s->in.p, NULL, 16);
        buf_eat(&s->in, (size_t)(end + 2 - s->in.p));
        cl->st = cl->chunk_left ? ST_DATA : ST_END;
        break;
      case ST_DATA:
        take = s->in.len < cl->chunk_left ? s->in.len : cl->chunk_left;
        if (!take) return;
        buf_add(&cl->lines, s->in.p, take);
        buf_eat(&s->in, take);
        cl->chunk_left -= take;
        process_lines(cl);
        if (!cl->chunk_left) cl->st = ST_DATA_CRLF;
        break;
      case ST_DATA_CRLF:
        if (s->in.len < 2) return;
        buf_eat(&s->in, 2);
        cl->st = ST_SIZE;
        break;
      case ST_END:
        /* The response limit: ask again on the same connection, as sockjs-client does. */
        if (s->in.len < 2) return;
        buf_eat(&s->in, 2);
        cl->lines.len = 0;
        if (cl->closed) {
          ev_io_stop(B.loop, &s->rio);
          return;
        }
        B.reconnects++;
        stream_request(cl);
        break;
    }
  }
}

static void send_batch(client *cl) {
  if (cl->send_busy || !cl->npending) return;
  char head[256];
  int n = snprintf(head, sizeof head,
                   "POST /chat/000/c%d-%d/xhr_send HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\n\r\n[", (int)getpid(), cl->id, cl->pending.len + 2);
  buf_add(&cl->b.out, head, (size_t)n);
  buf_add(&cl->b.out, cl->pending.p, cl->pending.len);
  sock_write(&cl->b, "]", 1);
  cl->pending.len = 0;
  cl->npending = 0;
  cl->send_busy = 1;
  cl->send_head_done = 0;
}

static void send_data(sock *s) {
  client *cl = s->cl;
  for (;;) {
    if (!cl->send_head_done) {
      char *end = s->in.len ? strstr(s->in.p, "\r\n\r\n") : NULL;
      if (!end) return;
      if (strncmp(s->in.p, "HTTP/1.1 204", 12) != 0) {
        fprintf(stderr, "sockjs_chat: xhr_send answered %.60s\n", s->in.p);
        B.errors++;
      }
      char *cl_hdr = strstr(s->in.p, "Content-Length: ");
      cl->send_body_left = cl_hdr && cl_hdr < end ? atol(cl_hdr + 16) : 0;
      buf_eat(&s->in, (size_t)(end + 4 - s->in.p));
      cl->send_head_done = 1;
    }
    if ((long)s->in.len < cl->send_body_left) return;
    buf_eat(&s->in, (size_t)cl->send_body_left);
    cl->send_busy = 0;
    cl->send_head_done = 0;
    send_batch(cl);
    if (!s->in.len) return;
  }
}

static void sockjs_send(client *cl, const char *text, size_t n) {
  if (cl->npending) buf_add(&cl->pending, ",", 1);
  buf_add(&cl->pending, "\"", 1);
  buf_add(&cl->pending, text, n);
  buf_add(&cl->pending, "\"", 1);
  cl->npending++;
  send_batch(cl);
}

static void send_text(client *cl, const char *text, size_t n) {
  if (B.mode == MODE_WS) ws_send(cl, text, n);
  else sockjs_send(cl, text, n);
}

/* ---- run ------------------------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void on_phase(struct ev_loop *loop, ev_timer *w, int revents) {
  if (!B.measuring) {
    B.measuring = 1;
    B.msgs = B.deliveries = 0;
    B.nlat = 0;
    ev_timer_set(w, B.secs, 0);
    ev_timer_start(loop, w);
    return;
  }
  B.measuring = 0;
  B.done = 1;
  ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
  B.nclients = 50;
  B.inflight = 4;
  B.secs = 3;
  B.warmup = 1;
  if (argc < 2) {
    fprintf(stderr, "usage: sockjs_chat ws|sockjs --port P [-c N] [-k K] [-d S] [-w S]\n");
    return 2;
  }
  B.mode = strcmp(argv[1], "sockjs") == 0 ? MODE_SOCKJS : MODE_WS;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) B.port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-c")) B.nclients = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-k")) B.inflight = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-d")) B.secs = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "-w")) B.warmup = atof(argv[i + 1]);
  }
  if (!B.port || B.nclients < 1 || B.inflight < 1) return 2;
  B.loop = EV_DEFAULT;
  B.clients = calloc((size_t)B.nclients, sizeof *B.clients);
  for (int i = 0; i < B.nclients; i++) {
    client *cl = &B.clients[i];
    cl->id = i + 1;
    if (B.mode == MODE_WS) {
      sock_open(&cl->a, cl, ws_data);
      static const char req[] =
          "GET /chat-ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
      sock_write(&cl->a, req, sizeof req - 1);
    } else {
      sock_open(&cl->a, cl, stream_data);
      sock_open(&cl->b, cl, send_data);
      stream_request(cl);
    }
  }
  ev_timer phase;
  ev_timer_init(&phase, on_phase, B.warmup, 0);
  ev_timer_start(B.loop, &phase);
  ev_run(B.loop, 0);
  qsort(B.lat, B.nlat, sizeof *B.lat, cmp_d);
  double p50 = B.nlat ? B.lat[B.nlat / 2] : 0, p99 = B.nlat ? B.lat[(size_t)(B.nlat * 0.99)] : 0;
  printf("RESULT mode=%s clients=%d inflight=%d msgs_per_s=%.0f deliveries_per_s=%.0f p50_us=%.0f "
         "p99_us=%.0f reconnects=%ld errors=%ld\n",
         B.mode == MODE_WS ? "websocket" : "sockjs-xhr-streaming", B.nclients, B.inflight, B.msgs / B.secs,
         B.deliveries / B.secs, p50, p99, B.reconnects, B.errors);
  return B.errors ? 1 : 0;
}
