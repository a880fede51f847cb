/* stomp_frame.c - STOMP 1.2 frame parser and serializer. No I/O: bytes in, frames out. */
#include "stomp_frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A frame buffer that grew past this for one big frame is freed when the next frame
 * starts, so an idle connection does not keep a large allocation. */
#define FB_KEEP_MAX (64u * 1024u)
/* Up to this content-length the body is reserved at once; larger bodies grow as bytes
 * arrive, so a peer cannot make us allocate a large body by only announcing it. */
#define BODY_RESERVE_MAX (64u * 1024u)

static const char *const cmd_names[RT_STOMP_CMD_COUNT_] = {
    [RT_STOMP_CMD_CONNECT] = "CONNECT",
    [RT_STOMP_CMD_STOMP] = "STOMP",
    [RT_STOMP_CMD_SEND] = "SEND",
    [RT_STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
    [RT_STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [RT_STOMP_CMD_ACK] = "ACK",
    [RT_STOMP_CMD_NACK] = "NACK",
    [RT_STOMP_CMD_BEGIN] = "BEGIN",
    [RT_STOMP_CMD_COMMIT] = "COMMIT",
    [RT_STOMP_CMD_ABORT] = "ABORT",
    [RT_STOMP_CMD_DISCONNECT] = "DISCONNECT",
    [RT_STOMP_CMD_CONNECTED] = "CONNECTED",
    [RT_STOMP_CMD_MESSAGE] = "MESSAGE",
    [RT_STOMP_CMD_RECEIPT] = "RECEIPT",
    [RT_STOMP_CMD_ERROR] = "ERROR",
};

const char *rt_stomp_command_name(rt_stomp_command cmd)
{
    if ((int)cmd <= RT_STOMP_CMD_NONE || cmd >= RT_STOMP_CMD_COUNT_)
        return NULL;
    return cmd_names[cmd];
}

rt_stomp_command rt_stomp_command_parse(const char *s, size_t len)
{
    for (int c = RT_STOMP_CMD_NONE + 1; c < RT_STOMP_CMD_COUNT_; c++) {
        if (strlen(cmd_names[c]) == len && memcmp(cmd_names[c], s, len) == 0)
            return (rt_stomp_command)c;
    }
    return RT_STOMP_CMD_NONE;
}

/* CONNECT and CONNECTED keep STOMP 1.0 header rules: no escaping (spec, "Value Encoding"). */
static int cmd_escapes(rt_stomp_command cmd)
{
    return cmd != RT_STOMP_CMD_CONNECT && cmd != RT_STOMP_CMD_CONNECTED;
}

/* ---- growable buffer ----------------------------------------------------------------- */

void rt_stomp_buf_init(rt_stomp_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rt_stomp_buf_free(rt_stomp_buf *b)
{
    free(b->data);
    rt_stomp_buf_init(b);
}

void rt_stomp_buf_reset(rt_stomp_buf *b)
{
    b->len = 0;
}

static int buf_reserve(rt_stomp_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return RT_STOMP_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return RT_STOMP_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int rt_stomp_buf_append(rt_stomp_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    /* data may lie inside b itself; realloc would move it */
    const uint8_t *src = data;
    int inside = b->data && src >= b->data && src < b->data + b->len;
    size_t at = inside ? (size_t)(src - b->data) : 0;
    int rc = buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (inside)
        src = b->data + at;
    memmove(b->data + b->len, src, len);
    b->len += len;
    return 0;
}

static int buf_putc(rt_stomp_buf *b, uint8_t c)
{
    if (b->len == b->cap && buf_reserve(b, 1) < 0)
        return RT_STOMP_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

/* ---- parser -------------------------------------------------------------------------- */

enum pstate {
    PS_IDLE,        /* between frames: heart-beat EOLs or a command */
    PS_IDLE_CR,     /* saw CR between frames, LF must follow */
    PS_COMMAND,
    PS_HEADERS,
    PS_BODY_LEN,    /* reading content-length bytes */
    PS_BODY_END,    /* content-length body read, NUL must follow */
    PS_BODY_NUL,    /* no content-length: body runs to the first NUL */
    PS_ERROR
};

/* Offsets into fb: the buffer may move while a frame is being read. */
struct hdr_off {
    size_t name, name_len, value, value_len;
};

struct rt_stomp_parser {
    rt_stomp_limits lim;
    enum pstate state;
    int err_code;
    char err[112];

    rt_stomp_buf line;          /* a command/header line split across feeds */
    rt_stomp_buf fb;            /* unescaped names and values, then the body */
    struct hdr_off *hoff;
    rt_stomp_header *hdrs;      /* hoff resolved to pointers when the frame is done */
    size_t nhdr, hcap;

    rt_stomp_command cmd;
    int have_cl;
    size_t cl;                  /* content-length, when have_cl */
    size_t body_start;          /* offset of the body in fb */
    int frame_out;              /* a frame was returned: reset before reading on */

    uint64_t heartbeats;
    uint64_t frames;
};

void rt_stomp_limits_default(rt_stomp_limits *lim)
{
    lim->max_body = RT_STOMP_DEFAULT_MAX_BODY;
    lim->max_headers = RT_STOMP_DEFAULT_MAX_HEADERS;
    lim->max_header_line = RT_STOMP_DEFAULT_MAX_HEADER_LINE;
    lim->max_command = RT_STOMP_DEFAULT_MAX_COMMAND;
}

rt_stomp_parser *rt_stomp_parser_new(const rt_stomp_limits *lim)
{
    rt_stomp_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    rt_stomp_limits_default(&p->lim);
    if (lim) {
        if (lim->max_body)
            p->lim.max_body = lim->max_body;
        if (lim->max_headers)
            p->lim.max_headers = lim->max_headers;
        if (lim->max_header_line)
            p->lim.max_header_line = lim->max_header_line;
        if (lim->max_command)
            p->lim.max_command = lim->max_command;
    }
    /* Keep size arithmetic below (limit + 2, body + 1) far from overflow. */
    if (p->lim.max_body > SIZE_MAX / 4)
        p->lim.max_body = SIZE_MAX / 4;
    if (p->lim.max_header_line > SIZE_MAX / 4)
        p->lim.max_header_line = SIZE_MAX / 4;
    if (p->lim.max_command > SIZE_MAX / 4)
        p->lim.max_command = SIZE_MAX / 4;
    if (p->lim.max_headers > SIZE_MAX / (4 * sizeof(struct hdr_off)))
        p->lim.max_headers = SIZE_MAX / (4 * sizeof(struct hdr_off));
    p->state = PS_IDLE;
    return p;
}

void rt_stomp_parser_free(rt_stomp_parser *p)
{
    if (!p)
        return;
    rt_stomp_buf_free(&p->line);
    rt_stomp_buf_free(&p->fb);
    free(p->hoff);
    free(p->hdrs);
    free(p);
}

const char *rt_stomp_parser_error(const rt_stomp_parser *p)
{
    return p->err;
}

uint64_t rt_stomp_parser_heartbeats(const rt_stomp_parser *p)
{
    return p->heartbeats;
}

uint64_t rt_stomp_parser_frames(const rt_stomp_parser *p)
{
    return p->frames;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(rt_stomp_parser *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    p->state = PS_ERROR;
    p->err_code = code;
    return code;
}

static int fail_nomem(rt_stomp_parser *p)
{
    return fail(p, RT_STOMP_ENOMEM, "out of memory");
}

static void frame_reset(rt_stomp_parser *p)
{
    if (p->fb.cap > FB_KEEP_MAX)
        rt_stomp_buf_free(&p->fb);
    p->fb.len = 0;
    p->line.len = 0;
    p->nhdr = 0;
    p->cmd = RT_STOMP_CMD_NONE;
    p->have_cl = 0;
    p->cl = 0;
    p->body_start = 0;
    p->frame_out = 0;
}

/* Collect one line (without its LF) from s. Returns 1 with *line set when complete, 0 when
 * all of s went into the partial line, or an error. limit counts bytes before the EOL. */
static int take_line(rt_stomp_parser *p, const uint8_t *s, size_t avail, size_t limit,
                     const char *what, size_t *used, const uint8_t **line, size_t *n)
{
    size_t room = limit + 1 - p->line.len;      /* +1: the CR of a CR LF */
    size_t scan = avail < room + 1 ? avail : room + 1;
    const uint8_t *lf = memchr(s, '\n', scan);
    if (!lf) {
        if (scan == room + 1)
            return fail(p, RT_STOMP_ELIMIT, "%s too long", what);
        if (rt_stomp_buf_append(&p->line, s, avail) < 0)
            return fail_nomem(p);
        *used = avail;
        return 0;
    }
    size_t k = (size_t)(lf - s);
    *used = k + 1;
    if (p->line.len == 0) {             /* whole line in this slice: no copy */
        *line = s;
        *n = k;
    } else {
        if (rt_stomp_buf_append(&p->line, s, k) < 0)
            return fail_nomem(p);
        *line = p->line.data;
        *n = p->line.len;
    }
    if (*n > 0 && (*line)[*n - 1] == '\r')
        (*n)--;
    if (*n > limit)
        return fail(p, RT_STOMP_ELIMIT, "%s too long", what);
    return 1;
}

static int on_command(rt_stomp_parser *p, const uint8_t *line, size_t n)
{
    p->cmd = rt_stomp_command_parse((const char *)line, n);
    if (p->cmd != RT_STOMP_CMD_NONE) {
        p->state = PS_HEADERS;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (line[i] < 0x21 || line[i] > 0x7e)      /* do not echo binary junk */
            return fail(p, RT_STOMP_EPROTO, "unknown command");
    }
    return fail(p, RT_STOMP_EPROTO, "unknown command %.*s", (int)(n > 32 ? 32 : n),
                (const char *)line);
}

/* Append s[0..n) to fb, decoding escapes when esc, then a NUL. */
static int put_field(rt_stomp_parser *p, const uint8_t *s, size_t n, int esc)
{
    if (buf_reserve(&p->fb, n + 1) < 0)     /* unescaping never grows the text */
        return fail_nomem(p);
    uint8_t *d = p->fb.data + p->fb.len;
    if (!esc) {
        memcpy(d, s, n);
        d += n;
    } else {
        const uint8_t *end = s + n;
        while (s < end) {
            const uint8_t *bs = memchr(s, '\\', (size_t)(end - s));
            size_t run = bs ? (size_t)(bs - s) : (size_t)(end - s);
            memcpy(d, s, run);
            d += run;
            s += run;
            if (!bs)
                break;
            if (s + 1 == end)
                return fail(p, RT_STOMP_EPROTO, "incomplete escape in header");
            switch (s[1]) {
            case 'r': *d++ = '\r'; break;
            case 'n': *d++ = '\n'; break;
            case 'c': *d++ = ':'; break;
            case '\\': *d++ = '\\'; break;
            default:
                if (s[1] >= 0x21 && s[1] <= 0x7e)
                    return fail(p, RT_STOMP_EPROTO, "invalid escape \\%c in header", s[1]);
                return fail(p, RT_STOMP_EPROTO, "invalid escape \\x%02x in header", s[1]);
            }
            s += 2;
        }
    }
    *d++ = '\0';
    p->fb.len = (size_t)(d - p->fb.data);
    return 0;
}

/* Decimal digits only: no sign, no spaces, as every STOMP client writes it. */
static int parse_content_length(rt_stomp_parser *p, const char *v, size_t n)
{
    if (n == 0)
        return fail(p, RT_STOMP_EPROTO, "invalid content-length");
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(p, RT_STOMP_EPROTO, "invalid content-length");
        size_t dgt = (size_t)(v[i] - '0');
        if (dgt > p->lim.max_body || x > (p->lim.max_body - dgt) / 10)
            return fail(p, RT_STOMP_ELIMIT, "content-length exceeds limit");
        x = x * 10 + dgt;
    }
    p->cl = x;
    p->have_cl = 1;
    return 0;
}

static int grow_headers(rt_stomp_parser *p)
{
    size_t cap = p->hcap ? p->hcap * 2 : 8;
    if (cap > p->lim.max_headers)
        cap = p->lim.max_headers;
    struct hdr_off *ho = realloc(p->hoff, cap * sizeof(*ho));
    if (!ho)
        return fail_nomem(p);
    p->hoff = ho;
    rt_stomp_header *h = realloc(p->hdrs, cap * sizeof(*h));
    if (!h)
        return fail_nomem(p);
    p->hdrs = h;
    p->hcap = cap;
    return 0;
}

static void body_begin(rt_stomp_parser *p)
{
    p->body_start = p->fb.len;
    if (!p->have_cl) {
        p->state = PS_BODY_NUL;
        return;
    }
    if (p->cl <= BODY_RESERVE_MAX)
        (void)buf_reserve(&p->fb, p->cl + 1);   /* a hint: failure shows up on append */
    p->state = p->cl ? PS_BODY_LEN : PS_BODY_END;
}

static int on_header(rt_stomp_parser *p, const uint8_t *line, size_t n)
{
    if (n == 0) {
        body_begin(p);
        return 0;
    }
    if (p->nhdr == p->lim.max_headers)
        return fail(p, RT_STOMP_ELIMIT, "too many headers");
    if (memchr(line, '\0', n))
        return fail(p, RT_STOMP_EPROTO, "NUL in header");
    if (memchr(line, '\r', n))
        return fail(p, RT_STOMP_EPROTO, "CR without LF in header");
    const uint8_t *colon = memchr(line, ':', n);
    if (!colon)
        return fail(p, RT_STOMP_EPROTO, "header without colon");
    if (colon == line)
        return fail(p, RT_STOMP_EPROTO, "empty header name");
    if (p->nhdr == p->hcap && grow_headers(p) < 0)
        return p->err_code;

    int esc = cmd_escapes(p->cmd);
    struct hdr_off *h = &p->hoff[p->nhdr];
    size_t nlen = (size_t)(colon - line);
    h->name = p->fb.len;
    if (put_field(p, line, nlen, esc) < 0)
        return p->err_code;
    h->name_len = p->fb.len - h->name - 1;
    h->value = p->fb.len;
    if (put_field(p, colon + 1, n - nlen - 1, esc) < 0)
        return p->err_code;
    h->value_len = p->fb.len - h->value - 1;
    p->nhdr++;

    const char *name = (const char *)p->fb.data + h->name;
    if (!p->have_cl && h->name_len == 14 && memcmp(name, "content-length", 14) == 0)
        return parse_content_length(p, (const char *)p->fb.data + h->value, h->value_len);
    return 0;
}

static int frame_done(rt_stomp_parser *p, rt_stomp_frame *f)
{
    /* The NUL after the body is not part of it; it lets text bodies be C strings. */
    if (buf_putc(&p->fb, '\0') < 0)
        return fail_nomem(p);
    for (size_t i = 0; i < p->nhdr; i++) {
        p->hdrs[i].name = (const char *)p->fb.data + p->hoff[i].name;
        p->hdrs[i].name_len = p->hoff[i].name_len;
        p->hdrs[i].value = (const char *)p->fb.data + p->hoff[i].value;
        p->hdrs[i].value_len = p->hoff[i].value_len;
    }
    f->command = p->cmd;
    f->headers = p->hdrs;
    f->nheaders = p->nhdr;
    f->body = p->fb.data + p->body_start;
    f->body_len = p->fb.len - 1 - p->body_start;
    p->state = PS_IDLE;
    p->frame_out = 1;
    p->frames++;
    return RT_STOMP_FRAME;
}

/* One step of the state machine on s[0..avail), avail > 0. Returns bytes used via *used,
 * and 0, RT_STOMP_FRAME or an error. */
static int step(rt_stomp_parser *p, const uint8_t *s, size_t avail, size_t *used,
                rt_stomp_frame *f)
{
    const uint8_t *line, *z;
    size_t n;
    int rc;

    *used = 0;
    switch (p->state) {
    case PS_IDLE:
        if (s[0] == '\n') {
            p->heartbeats++;
            *used = 1;
        } else if (s[0] == '\r') {
            p->state = PS_IDLE_CR;
            *used = 1;
        } else {
            p->state = PS_COMMAND;
        }
        return 0;
    case PS_IDLE_CR:
        if (s[0] != '\n')
            return fail(p, RT_STOMP_EPROTO, "CR without LF between frames");
        p->heartbeats++;
        p->state = PS_IDLE;
        *used = 1;
        return 0;
    case PS_COMMAND:
        rc = take_line(p, s, avail, p->lim.max_command, "command", used, &line, &n);
        if (rc <= 0)
            return rc;
        rc = on_command(p, line, n);
        p->line.len = 0;
        return rc;
    case PS_HEADERS:
        rc = take_line(p, s, avail, p->lim.max_header_line, "header", used, &line, &n);
        if (rc <= 0)
            return rc;
        rc = on_header(p, line, n);
        p->line.len = 0;
        return rc;
    case PS_BODY_LEN:
        n = p->cl - (p->fb.len - p->body_start);
        if (n > avail)
            n = avail;
        if (rt_stomp_buf_append(&p->fb, s, n) < 0)
            return fail_nomem(p);
        *used = n;
        if (p->fb.len - p->body_start == p->cl)
            p->state = PS_BODY_END;
        return 0;
    case PS_BODY_END:
        if (s[0] != '\0')
            return fail(p, RT_STOMP_EPROTO, "missing NUL after content-length body");
        *used = 1;
        return frame_done(p, f);
    case PS_BODY_NUL:
        z = memchr(s, '\0', avail);
        n = z ? (size_t)(z - s) : avail;
        if (n > p->lim.max_body - (p->fb.len - p->body_start))
            return fail(p, RT_STOMP_ELIMIT, "frame body exceeds limit");
        if (rt_stomp_buf_append(&p->fb, s, n) < 0)
            return fail_nomem(p);
        *used = n;
        if (!z)
            return 0;
        *used = n + 1;
        return frame_done(p, f);
    case PS_ERROR:
        break;
    }
    return p->err_code;
}

int rt_stomp_parser_feed(rt_stomp_parser *p, const void *data, size_t len,
                         size_t *consumed, rt_stomp_frame *frame)
{
    const uint8_t *s = data;
    size_t i = 0;
    int rc = RT_STOMP_NEED_MORE;

    if (p->state == PS_ERROR) {
        *consumed = 0;
        return p->err_code;
    }
    if (p->frame_out)
        frame_reset(p);
    while (i < len) {
        size_t used;
        rc = step(p, s + i, len - i, &used, frame);
        i += used;
        if (rc != 0)
            break;
    }
    *consumed = i;
    return rc;
}

const rt_stomp_header *rt_stomp_frame_header(const rt_stomp_frame *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->nheaders; i++) {
        const rt_stomp_header *h = &f->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

const char *rt_stomp_frame_get(const rt_stomp_frame *f, const char *name)
{
    const rt_stomp_header *h = rt_stomp_frame_header(f, name);
    return h ? h->value : NULL;
}

/* ---- serializer ---------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* Append s[0..n) escaped (\\ \r \n \c) or raw. */
static int put_text(rt_stomp_buf *b, const char *s, size_t n, int esc)
{
    if (n == 0)
        return 0;
    if (!esc)
        return rt_stomp_buf_append(b, s, n);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '\\': rep = "\\\\"; break;
        case '\r': rep = "\\r"; break;
        case '\n': rep = "\\n"; break;
        case ':': rep = "\\c"; break;
        default: continue;
        }
        if (rt_stomp_buf_append(b, s + start, i - start) < 0 ||
            rt_stomp_buf_append(b, rep, 2) < 0)
            return RT_STOMP_ENOMEM;
        start = i + 1;
    }
    return rt_stomp_buf_append(b, s + start, n - start);
}

/* Why a header cannot be written, or NULL when it can. */
static const char *header_problem(const rt_stomp_header *h, int esc)
{
    if (h->name_len == 0 || !h->name)
        return "empty header name";
    if (h->value_len && !h->value)
        return "NULL header value";
    if (memchr(h->name, '\0', h->name_len) || (h->value_len && memchr(h->value, '\0', h->value_len)))
        return "NUL in header";
    if (esc)
        return NULL;
    if (memchr(h->name, ':', h->name_len) || memchr(h->name, '\r', h->name_len) ||
        memchr(h->name, '\n', h->name_len))
        return "header name cannot be encoded in a CONNECT/CONNECTED frame";
    if (h->value_len && (memchr(h->value, '\r', h->value_len) || memchr(h->value, '\n', h->value_len)))
        return "header value cannot be encoded in a CONNECT/CONNECTED frame";
    return NULL;
}

static int write_head(rt_stomp_buf *out, rt_stomp_command cmd, const rt_stomp_header *hdrs,
                      size_t nhdrs, size_t body_len, char *err, size_t errlen)
{
    const char *cname = rt_stomp_command_name(cmd);
    if (!cname) {
        set_err(err, errlen, "unknown command");
        return RT_STOMP_EINVAL;
    }
    int esc = cmd_escapes(cmd);
    if (rt_stomp_buf_append(out, cname, strlen(cname)) < 0 || buf_putc(out, '\n') < 0)
        goto nomem;
    for (size_t i = 0; i < nhdrs; i++) {
        const rt_stomp_header *h = &hdrs[i];
        const char *why = header_problem(h, esc);
        if (why) {
            set_err(err, errlen, why);
            return RT_STOMP_EINVAL;
        }
        if (h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0)
            continue;
        if (put_text(out, h->name, h->name_len, esc) < 0 || buf_putc(out, ':') < 0 ||
            put_text(out, h->value, h->value_len, esc) < 0 || buf_putc(out, '\n') < 0)
            goto nomem;
    }
    if (body_len > 0) {
        char cl[48];
        int k = snprintf(cl, sizeof(cl), "content-length:%zu\n", body_len);
        if (rt_stomp_buf_append(out, cl, (size_t)k) < 0)
            goto nomem;
    }
    if (buf_putc(out, '\n') < 0)
        goto nomem;
    return 0;
nomem:
    set_err(err, errlen, "out of memory");
    return RT_STOMP_ENOMEM;
}

long rt_stomp_write_head(rt_stomp_buf *out, rt_stomp_command cmd,
                         const rt_stomp_header *hdrs, size_t nhdrs, size_t body_len,
                         char *err, size_t errlen)
{
    size_t start = out->len;
    int rc = write_head(out, cmd, hdrs, nhdrs, body_len, err, errlen);
    if (rc < 0) {
        out->len = start;
        return rc;
    }
    return (long)(out->len - start);
}

long rt_stomp_write_frame(rt_stomp_buf *out, rt_stomp_command cmd,
                          const rt_stomp_header *hdrs, size_t nhdrs,
                          const void *body, size_t body_len, char *err, size_t errlen)
{
    size_t start = out->len;
    int rc = write_head(out, cmd, hdrs, nhdrs, body_len, err, errlen);
    if (rc == 0 && (rt_stomp_buf_append(out, body, body_len) < 0 || buf_putc(out, '\0') < 0)) {
        set_err(err, errlen, "out of memory");
        rc = RT_STOMP_ENOMEM;
    }
    if (rc < 0) {
        out->len = start;
        return rc;
    }
    return (long)(out->len - start);
}
