/* Unit tests for the STOMP 1.2 frame codec (core/stomp_frame.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stomp/stomp_frame.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* Write every frame the parser returns, and the final result, into a transcript whose
 * bytes identify the parse exactly (lengths before contents), so two parses of the same
 * stream can be compared with memcmp. */
static void dump_frame(rt_stomp_buf *t, const rt_stomp_frame *f)
{
    char num[64];
    int k = snprintf(num, sizeof(num), "F%d H%zu ", (int)f->command, f->nheaders);
    rt_stomp_buf_append(t, num, (size_t)k);
    for (size_t i = 0; i < f->nheaders; i++) {
        const rt_stomp_header *h = &f->headers[i];
        k = snprintf(num, sizeof(num), "%zu:", h->name_len);
        rt_stomp_buf_append(t, num, (size_t)k);
        rt_stomp_buf_append(t, h->name, h->name_len);
        k = snprintf(num, sizeof(num), "%zu:", h->value_len);
        rt_stomp_buf_append(t, num, (size_t)k);
        rt_stomp_buf_append(t, h->value, h->value_len);
    }
    k = snprintf(num, sizeof(num), "B%zu:", f->body_len);
    rt_stomp_buf_append(t, num, (size_t)k);
    rt_stomp_buf_append(t, f->body, f->body_len);
    /* the body is always followed by a NUL the length does not count */
    assert_int_equal(f->body[f->body_len], 0);
}

/* Feed d[0..n) in chunks of `chunk` bytes (0 = all at once). Returns the last result:
 * RT_STOMP_NEED_MORE or an error. */
static int feed_chunks(rt_stomp_parser *p, const uint8_t *d, size_t n, size_t chunk,
                       rt_stomp_buf *t)
{
    size_t pos = 0;
    if (chunk == 0)
        chunk = n ? n : 1;
    while (pos < n) {
        size_t len = n - pos < chunk ? n - pos : chunk;
        size_t off = 0;
        for (;;) {
            size_t used = 0;
            rt_stomp_frame f;
            int rc = rt_stomp_parser_feed(p, d + pos + off, len - off, &used, &f);
            assert_true(used <= len - off);
            off += used;
            if (rc == RT_STOMP_FRAME) {
                if (t)
                    dump_frame(t, &f);
                continue;
            }
            if (rc < 0)
                return rc;
            assert_int_equal(off, len);
            break;
        }
        pos += len;
    }
    return RT_STOMP_NEED_MORE;
}

/* Parse a whole input expecting exactly one frame; the parser is returned for
 * inspection and the frame stays valid until the next feed. */
static rt_stomp_parser *parse_one(const uint8_t *d, size_t n, rt_stomp_frame *f)
{
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    assert_non_null(p);
    size_t used = 0;
    int rc = rt_stomp_parser_feed(p, d, n, &used, f);
    if (rc != RT_STOMP_FRAME)
        fail_msg("expected a frame, got %d (%s)", rc, rt_stomp_parser_error(p));
    assert_int_equal(used, n);
    return p;
}

/* Parse expecting an error; checks code and message. */
static void expect_error(const rt_stomp_limits *lim, const uint8_t *d, size_t n, int code,
                         const char *msg)
{
    rt_stomp_parser *p = rt_stomp_parser_new(lim);
    assert_non_null(p);
    int rc = feed_chunks(p, d, n, 0, NULL);
    assert_int_equal(rc, code);
    assert_string_equal(rt_stomp_parser_error(p), msg);
    /* and the same when fed one byte at a time */
    rt_stomp_parser_free(p);
    p = rt_stomp_parser_new(lim);
    rc = feed_chunks(p, d, n, 1, NULL);
    assert_int_equal(rc, code);
    assert_string_equal(rt_stomp_parser_error(p), msg);
    rt_stomp_parser_free(p);
}

static void test_every_command(void **state)
{
    (void)state;
    for (int c = RT_STOMP_CMD_NONE + 1; c < RT_STOMP_CMD_COUNT_; c++) {
        const char *name = rt_stomp_command_name((rt_stomp_command)c);
        assert_non_null(name);
        assert_int_equal(rt_stomp_command_parse(name, strlen(name)), c);
        char in[64];
        int k = snprintf(in, sizeof(in), "%s\nk:v\n\n", name);
        in[k++] = '\0';
        rt_stomp_frame f;
        rt_stomp_parser *p = parse_one((const uint8_t *)in, (size_t)k, &f);
        assert_int_equal(f.command, c);
        assert_int_equal(f.nheaders, 1);
        assert_string_equal(f.headers[0].name, "k");
        assert_string_equal(f.headers[0].value, "v");
        assert_int_equal(f.body_len, 0);
        rt_stomp_parser_free(p);
    }
    assert_null(rt_stomp_command_name(RT_STOMP_CMD_NONE));
    assert_null(rt_stomp_command_name(RT_STOMP_CMD_COUNT_));
    assert_int_equal(rt_stomp_command_parse("SENDX", 5), RT_STOMP_CMD_NONE);
    assert_int_equal(rt_stomp_command_parse("SEN", 3), RT_STOMP_CMD_NONE);
}

static void test_unknown_command(void **state)
{
    (void)state;
    expect_error(NULL, S("FOO\n\n\0"), RT_STOMP_EPROTO, "unknown command FOO");
    expect_error(NULL, S("send\n\n\0"), RT_STOMP_EPROTO, "unknown command send");
    expect_error(NULL, S("SEND \n\n\0"), RT_STOMP_EPROTO, "unknown command");
    expect_error(NULL, S("\0\n\n\0"), RT_STOMP_EPROTO, "unknown command");
}

static void test_stompjs_connect(void **state)
{
    (void)state;
    rt_stomp_frame f;
    rt_stomp_parser *p = parse_one(
        S("CONNECT\nlogin:guest\npasscode:g\\uest:1\naccept-version:1.2,1.1,1.0\n"
          "heart-beat:10000,10000\n\n\0"), &f);
    assert_int_equal(f.command, RT_STOMP_CMD_CONNECT);
    assert_int_equal(f.nheaders, 4);
    /* no unescaping in CONNECT, and the value is everything after the first colon */
    assert_string_equal(rt_stomp_frame_get(&f, "passcode"), "g\\uest:1");
    assert_string_equal(rt_stomp_frame_get(&f, "accept-version"), "1.2,1.1,1.0");
    assert_string_equal(rt_stomp_frame_get(&f, "heart-beat"), "10000,10000");
    assert_null(rt_stomp_frame_get(&f, "host"));
    rt_stomp_parser_free(p);
}

static void test_escape_decode(void **state)
{
    (void)state;
    rt_stomp_frame f;
    rt_stomp_parser *p = parse_one(S("MESSAGE\na\\cb\\\\:x\\ny\\rz\\\\\\c\n\n\0"), &f);
    assert_int_equal(f.nheaders, 1);
    assert_string_equal(f.headers[0].name, "a:b\\");
    assert_int_equal(f.headers[0].name_len, 4);
    assert_string_equal(f.headers[0].value, "x\ny\rz\\:");
    assert_int_equal(f.headers[0].value_len, 7);
    rt_stomp_parser_free(p);

    /* CONNECTED is exempt like CONNECT; STOMP is not (the spec names only those two) */
    p = parse_one(S("CONNECTED\nserver:a\\nb\n\n\0"), &f);
    assert_string_equal(rt_stomp_frame_get(&f, "server"), "a\\nb");
    rt_stomp_parser_free(p);
    p = parse_one(S("STOMP\nlogin:a\\cb\n\n\0"), &f);
    assert_string_equal(rt_stomp_frame_get(&f, "login"), "a:b");
    rt_stomp_parser_free(p);

    /* raw colons after the first one are kept in the value */
    p = parse_one(S("SEND\ndestination:/a:b\n\n\0"), &f);
    assert_string_equal(rt_stomp_frame_get(&f, "destination"), "/a:b");
    rt_stomp_parser_free(p);
}

static void test_bad_escape(void **state)
{
    (void)state;
    expect_error(NULL, S("SEND\nh:a\\tb\n\n\0"), RT_STOMP_EPROTO, "invalid escape \\t in header");
    expect_error(NULL, S("SEND\nh\\x:a\n\n\0"), RT_STOMP_EPROTO, "invalid escape \\x in header");
    expect_error(NULL, S("SEND\nh:a\\ b\n\n\0"), RT_STOMP_EPROTO, "invalid escape \\x20 in header");
    expect_error(NULL, S("SEND\nh:ab\\\n\n\0"), RT_STOMP_EPROTO, "incomplete escape in header");
    expect_error(NULL, S("SEND\nh:ab\\\r\n\n\0"), RT_STOMP_EPROTO, "incomplete escape in header");
    /* fine in CONNECT */
    rt_stomp_frame f;
    rt_stomp_parser *p = parse_one(S("CONNECT\nh:a\\tb\\\n\n\0"), &f);
    assert_string_equal(rt_stomp_frame_get(&f, "h"), "a\\tb\\");
    rt_stomp_parser_free(p);
}

static void test_escape_encode(void **state)
{
    (void)state;
    rt_stomp_buf b = {0};
    rt_stomp_header h[] = {
        {"dest:x", 6, "a:b\nc\\d\re", 9},
        rt_stomp_hdr("plain", "v"),
    };
    long n = rt_stomp_write_frame(&b, RT_STOMP_CMD_MESSAGE, h, 2, "hi", 2, NULL, 0);
    const char want[] = "MESSAGE\ndest\\cx:a\\cb\\nc\\\\d\\re\nplain:v\ncontent-length:2\n\nhi";
    assert_int_equal(n, sizeof(want));          /* sizeof counts the final NUL */
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    rt_stomp_buf_free(&b);
}

static void test_connect_encode_raw(void **state)
{
    (void)state;
    rt_stomp_buf b = {0};
    char err[128] = "";
    rt_stomp_header ok[] = {rt_stomp_hdr("passcode", "a:b\\c"), rt_stomp_hdr("host", "h")};
    long n = rt_stomp_write_frame(&b, RT_STOMP_CMD_CONNECT, ok, 2, NULL, 0, err, sizeof(err));
    const char want[] = "CONNECT\npasscode:a:b\\c\nhost:h\n\n";
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));

    rt_stomp_header bad_v[] = {rt_stomp_hdr("x", "a\nb")};
    assert_int_equal(rt_stomp_write_frame(&b, RT_STOMP_CMD_CONNECTED, bad_v, 1, NULL, 0, err,
                                          sizeof(err)), RT_STOMP_EINVAL);
    assert_string_equal(err, "header value cannot be encoded in a CONNECT/CONNECTED frame");
    rt_stomp_header bad_n[] = {rt_stomp_hdr("x:y", "a")};
    assert_int_equal(rt_stomp_write_head(&b, RT_STOMP_CMD_CONNECT, bad_n, 1, 0, err,
                                         sizeof(err)), RT_STOMP_EINVAL);
    assert_string_equal(err, "header name cannot be encoded in a CONNECT/CONNECTED frame");
    /* the failed calls left the buffer as it was */
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    rt_stomp_buf_free(&b);
}

static void test_serializer_errors(void **state)
{
    (void)state;
    rt_stomp_buf b = {0};
    char err[128];
    rt_stomp_buf_append(&b, "keep", 4);
    rt_stomp_header empty[] = {{"", 0, "v", 1}};
    assert_int_equal(rt_stomp_write_frame(&b, RT_STOMP_CMD_SEND, empty, 1, "x", 1, err,
                                          sizeof(err)), RT_STOMP_EINVAL);
    assert_string_equal(err, "empty header name");
    rt_stomp_header nul[] = {{"a", 1, "v\0w", 3}};
    assert_int_equal(rt_stomp_write_frame(&b, RT_STOMP_CMD_SEND, nul, 1, "x", 1, err,
                                          sizeof(err)), RT_STOMP_EINVAL);
    assert_string_equal(err, "NUL in header");
    assert_int_equal(rt_stomp_write_head(&b, RT_STOMP_CMD_NONE, NULL, 0, 0, err, sizeof(err)),
                     RT_STOMP_EINVAL);
    assert_string_equal(err, "unknown command");
    assert_int_equal(rt_stomp_write_head(&b, RT_STOMP_CMD_COUNT_, NULL, 0, 0, NULL, 0),
                     RT_STOMP_EINVAL);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "keep", 4);
    rt_stomp_buf_free(&b);
}

/* The fan-out path: head + shared body + NUL must equal the whole-frame serializer. */
static void test_write_head_fanout(void **state)
{
    (void)state;
    const char body[] = "{\"text\":\"hello\"}";
    rt_stomp_header h[] = {
        rt_stomp_hdr("destination", "/topic/chat"),
        rt_stomp_hdr("content-length", "999"),      /* skipped: ours is the real one */
        rt_stomp_hdr("subscription", "sub-0"),
    };
    rt_stomp_buf whole = {0}, head = {0};
    assert_true(rt_stomp_write_frame(&whole, RT_STOMP_CMD_MESSAGE, h, 3, body,
                                     sizeof(body) - 1, NULL, 0) > 0);
    long n = rt_stomp_write_head(&head, RT_STOMP_CMD_MESSAGE, h, 3, sizeof(body) - 1, NULL, 0);
    assert_int_equal(n, head.len);
    const char want[] = "MESSAGE\ndestination:/topic/chat\nsubscription:sub-0\n"
                        "content-length:16\n\n";
    assert_int_equal(head.len, sizeof(want) - 1);
    assert_memory_equal(head.data, want, head.len);
    rt_stomp_buf_append(&head, body, sizeof(body) - 1);
    rt_stomp_buf_append(&head, "", 1);
    assert_int_equal(head.len, whole.len);
    assert_memory_equal(head.data, whole.data, whole.len);

    /* no body: no content-length */
    rt_stomp_buf_reset(&head);
    n = rt_stomp_write_head(&head, RT_STOMP_CMD_RECEIPT, h, 1, 0, NULL, 0);
    assert_int_equal(n, sizeof("RECEIPT\ndestination:/topic/chat\n\n") - 1);
    assert_memory_equal(head.data, "RECEIPT\ndestination:/topic/chat\n\n", (size_t)n);
    rt_stomp_buf_free(&whole);
    rt_stomp_buf_free(&head);
}

static void test_content_length_body_with_nuls(void **state)
{
    (void)state;
    rt_stomp_frame f;
    rt_stomp_parser *p = parse_one(S("MESSAGE\ncontent-length:5\n\na\0b\0c\0"), &f);
    assert_int_equal(f.body_len, 5);
    assert_memory_equal(f.body, "a\0b\0c", 5);
    rt_stomp_parser_free(p);

    p = parse_one(S("SEND\ncontent-length:0\n\n\0"), &f);
    assert_int_equal(f.body_len, 0);
    rt_stomp_parser_free(p);

    /* first content-length wins, later ones (even broken) are kept but ignored */
    p = parse_one(S("SEND\ncontent-length:2\ncontent-length:x\n\n\0\0\0"), &f);
    assert_int_equal(f.body_len, 2);
    assert_int_equal(f.nheaders, 2);
    assert_string_equal(rt_stomp_frame_get(&f, "content-length"), "2");
    rt_stomp_parser_free(p);
}

static void test_body_to_nul(void **state)
{
    (void)state;
    rt_stomp_frame f;
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    size_t used;
    const uint8_t in[] = "SEND\ndestination:/q\n\nhello world\0ERROR\n\n\0";
    int rc = rt_stomp_parser_feed(p, in, sizeof(in) - 1, &used, &f);
    assert_int_equal(rc, RT_STOMP_FRAME);
    assert_int_equal(used, sizeof("SEND\ndestination:/q\n\nhello world"));
    assert_int_equal(f.body_len, 11);
    assert_string_equal((const char *)f.body, "hello world");
    rc = rt_stomp_parser_feed(p, in + used, sizeof(in) - 1 - used, &used, &f);
    assert_int_equal(rc, RT_STOMP_FRAME);
    assert_int_equal(f.command, RT_STOMP_CMD_ERROR);
    assert_int_equal(f.nheaders, 0);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(rt_stomp_parser_frames(p), 2);
    rt_stomp_parser_free(p);
}

static void test_missing_nul_after_body(void **state)
{
    (void)state;
    expect_error(NULL, S("SEND\ncontent-length:3\n\nabcd\0"), RT_STOMP_EPROTO,
                 "missing NUL after content-length body");
    expect_error(NULL, S("SEND\ncontent-length:0\n\nx"), RT_STOMP_EPROTO,
                 "missing NUL after content-length body");
}

static void test_bad_content_length(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "abc", "-1", "+1", " 5", "5 ", "0x5", "1.0", "5\\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[64];
        int k = snprintf(in, sizeof(in), "SEND\ncontent-length:%s\n\n", bad[i]);
        in[k++] = '\0';
        expect_error(NULL, (const uint8_t *)in, (size_t)k, RT_STOMP_EPROTO,
                     "invalid content-length");
    }
    expect_error(NULL, S("SEND\ncontent-length:99999999999999999999999999\n\n\0"),
                 RT_STOMP_ELIMIT, "content-length exceeds limit");
}

static void test_crlf_and_lf(void **state)
{
    (void)state;
    rt_stomp_buf a = {0}, b = {0};
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    assert_int_equal(feed_chunks(p, S("SEND\r\ndestination:/q\r\nx:y\r\n\r\nbody\0"), 0, &a),
                     RT_STOMP_NEED_MORE);
    rt_stomp_parser_free(p);
    p = rt_stomp_parser_new(NULL);
    assert_int_equal(feed_chunks(p, S("SEND\ndestination:/q\r\nx:y\n\r\nbody\0"), 0, &b),
                     RT_STOMP_NEED_MORE);
    rt_stomp_parser_free(p);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_memory_equal(a.data, "F3 H2 11:destination2:/q1:x1:yB4:body", a.len);
    rt_stomp_buf_free(&a);
    rt_stomp_buf_free(&b);

    /* a CR that is not part of an EOL */
    expect_error(NULL, S("SEND\nx:a\rb\n\n\0"), RT_STOMP_EPROTO, "CR without LF in header");
    expect_error(NULL, S("SEND\nx:a\r\r\n\n\0"), RT_STOMP_EPROTO, "CR without LF in header");
    expect_error(NULL, S("\rSEND\n\n\0"), RT_STOMP_EPROTO, "CR without LF between frames");
    expect_error(NULL, S("SEND\r\r\n\n\0"), RT_STOMP_EPROTO, "unknown command");
}

static void test_heartbeats(void **state)
{
    (void)state;
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    rt_stomp_buf t = {0};
    assert_int_equal(feed_chunks(p, S("\n\r\n"), 0, &t), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_heartbeats(p), 2);
    assert_int_equal(t.len, 0);
    assert_int_equal(feed_chunks(p, S("SEND\n\n\0\n\n\r\nACK\nid:1\n\n\0\r\n"), 0, &t),
                     RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_heartbeats(p), 6);
    assert_int_equal(rt_stomp_parser_frames(p), 2);
    assert_memory_equal(t.data, "F3 H0 B0:F6 H1 2:id1:1B0:", t.len);
    /* a lone CR at the end of a read waits for its LF */
    assert_int_equal(feed_chunks(p, S("\r"), 0, NULL), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_heartbeats(p), 6);
    assert_int_equal(feed_chunks(p, S("\n"), 0, NULL), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_heartbeats(p), 7);
    rt_stomp_buf_free(&t);
    rt_stomp_parser_free(p);
}

/* A stream with most features; the frames it yields must not depend on how it is cut. */
static const uint8_t stream[] =
    "\n"
    "CONNECT\r\naccept-version:1.2\r\nhost:/\r\nheart-beat:0,0\r\n\r\n\0\n"
    "SUBSCRIBE\nid:0\ndestination:/topic/a\\cb\nack:auto\n\n\0"
    "SEND\ndestination:/q\ncontent-type:application/json\ncontent-length:11\n\n"
    "{\"a\":\"\0\\n\"}\0\r\n\r\n"
    "MESSAGE\nsubscription:0\nmessage-id:7\ndestination:/q\n\nplain text body\0"
    "\n\n"
    "ERROR\nmessage:bad\\\\thing\nmessage:second\n\nDetails\0"
    "DISCONNECT\nreceipt:77\n\n\0\n";

static void test_split_every_byte(void **state)
{
    (void)state;
    const size_t n = sizeof(stream) - 1;
    rt_stomp_buf ref = {0};
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    assert_int_equal(feed_chunks(p, stream, n, 0, &ref), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_frames(p), 6);
    uint64_t hb = rt_stomp_parser_heartbeats(p);
    assert_int_equal(hb, 7);
    rt_stomp_parser_free(p);

    /* fed k bytes at a time, for every k */
    for (size_t k = 1; k <= n; k++) {
        rt_stomp_buf t = {0};
        p = rt_stomp_parser_new(NULL);
        assert_int_equal(feed_chunks(p, stream, n, k, &t), RT_STOMP_NEED_MORE);
        assert_int_equal(t.len, ref.len);
        assert_memory_equal(t.data, ref.data, ref.len);
        assert_int_equal(rt_stomp_parser_heartbeats(p), hb);
        rt_stomp_parser_free(p);
        rt_stomp_buf_free(&t);
    }
    /* cut into two pieces at every position, and three pieces around it */
    for (size_t cut = 0; cut <= n; cut++) {
        rt_stomp_buf t = {0};
        p = rt_stomp_parser_new(NULL);
        size_t cut2 = cut + (n - cut) / 2;
        assert_int_equal(feed_chunks(p, stream, cut, 0, &t), RT_STOMP_NEED_MORE);
        assert_int_equal(feed_chunks(p, stream + cut, cut2 - cut, 0, &t), RT_STOMP_NEED_MORE);
        assert_int_equal(feed_chunks(p, stream + cut2, n - cut2, 0, &t), RT_STOMP_NEED_MORE);
        assert_int_equal(t.len, ref.len);
        assert_memory_equal(t.data, ref.data, ref.len);
        rt_stomp_parser_free(p);
        rt_stomp_buf_free(&t);
    }
    rt_stomp_buf_free(&ref);
}

static void test_frame_contents_of_stream(void **state)
{
    (void)state;
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    const uint8_t *d = stream;
    size_t left = sizeof(stream) - 1, used;
    rt_stomp_frame f;
    int want[] = {RT_STOMP_CMD_CONNECT, RT_STOMP_CMD_SUBSCRIBE, RT_STOMP_CMD_SEND,
                  RT_STOMP_CMD_MESSAGE, RT_STOMP_CMD_ERROR, RT_STOMP_CMD_DISCONNECT};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(rt_stomp_parser_feed(p, d, left, &used, &f), RT_STOMP_FRAME);
        d += used;
        left -= used;
        assert_int_equal(f.command, want[i]);
        switch (f.command) {
        case RT_STOMP_CMD_SUBSCRIBE:
            assert_string_equal(rt_stomp_frame_get(&f, "destination"), "/topic/a:b");
            break;
        case RT_STOMP_CMD_SEND:
            assert_int_equal(f.body_len, 11);
            assert_memory_equal(f.body, "{\"a\":\"\0\\n\"}", 11);
            break;
        case RT_STOMP_CMD_ERROR:
            /* repeated header: all kept, lookup gives the first */
            assert_int_equal(f.nheaders, 2);
            assert_string_equal(rt_stomp_frame_get(&f, "message"), "bad\\thing");
            assert_ptr_equal(rt_stomp_frame_header(&f, "message"), &f.headers[0]);
            assert_string_equal(f.headers[1].value, "second");
            assert_string_equal((const char *)f.body, "Details");
            break;
        default:
            break;
        }
    }
    assert_int_equal(rt_stomp_parser_feed(p, d, left, &used, &f), RT_STOMP_NEED_MORE);
    assert_int_equal(used, left);
    rt_stomp_parser_free(p);
}

static void test_limit_body(void **state)
{
    (void)state;
    rt_stomp_limits lim;
    rt_stomp_limits_default(&lim);
    lim.max_body = 4;
    rt_stomp_parser *p = rt_stomp_parser_new(&lim);
    assert_int_equal(feed_chunks(p, S("SEND\ncontent-length:4\n\nabcd\0SEND\n\nabcd\0"), 1,
                                 NULL), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_frames(p), 2);
    rt_stomp_parser_free(p);
    expect_error(&lim, S("SEND\ncontent-length:5\n\nabcde\0"), RT_STOMP_ELIMIT,
                 "content-length exceeds limit");
    expect_error(&lim, S("SEND\n\nabcde\0"), RT_STOMP_ELIMIT, "frame body exceeds limit");
    /* caught before the NUL shows up: the peer cannot make us buffer past the limit */
    expect_error(&lim, S("SEND\n\nabcde"), RT_STOMP_ELIMIT, "frame body exceeds limit");
}

static void test_limit_headers(void **state)
{
    (void)state;
    rt_stomp_limits lim = {0};  /* zeros mean defaults */
    lim.max_headers = 3;
    rt_stomp_frame f;
    rt_stomp_parser *p = rt_stomp_parser_new(&lim);
    size_t used;
    assert_int_equal(rt_stomp_parser_feed(p, S("SEND\na:1\nb:2\nc:3\n\n\0"), &used, &f),
                     RT_STOMP_FRAME);
    assert_int_equal(f.nheaders, 3);
    rt_stomp_parser_free(p);
    expect_error(&lim, S("SEND\na:1\nb:2\nc:3\nd:4\n\n\0"), RT_STOMP_ELIMIT,
                 "too many headers");

    /* many headers with the default limit: the header array grows */
    rt_stomp_buf in = {0};
    rt_stomp_buf_append(&in, "SEND\n", 5);
    for (unsigned i = 0; i < RT_STOMP_DEFAULT_MAX_HEADERS; i++) {
        char h[32];
        int k = snprintf(h, sizeof(h), "h%u:v%u\n", i, i);
        rt_stomp_buf_append(&in, h, (size_t)k);
    }
    rt_stomp_buf_append(&in, "\n", 2);         /* blank line and the NUL */
    p = rt_stomp_parser_new(NULL);
    assert_int_equal(rt_stomp_parser_feed(p, in.data, in.len, &used, &f), RT_STOMP_FRAME);
    assert_int_equal(f.nheaders, RT_STOMP_DEFAULT_MAX_HEADERS);
    assert_string_equal(rt_stomp_frame_get(&f, "h63"), "v63");
    assert_string_equal(f.headers[40].name, "h40");
    rt_stomp_parser_free(p);
    rt_stomp_buf_free(&in);
}

static void test_limit_header_line(void **state)
{
    (void)state;
    rt_stomp_limits lim = {0};
    lim.max_header_line = 8;
    rt_stomp_frame f;
    rt_stomp_buf t = {0};
    /* exactly 8 bytes, with LF and with CR LF, whole and byte by byte */
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        rt_stomp_parser *p = rt_stomp_parser_new(&lim);
        assert_int_equal(feed_chunks(p, S("SEND\nabc:1234\nabc:1234\r\n\n\0"), chunk, &t),
                         RT_STOMP_NEED_MORE);
        assert_int_equal(rt_stomp_parser_frames(p), 1);
        rt_stomp_parser_free(p);
    }
    expect_error(&lim, S("SEND\nabc:12345\n\n\0"), RT_STOMP_ELIMIT, "header too long");
    expect_error(&lim, S("SEND\nabc:12345\r\n\n\0"), RT_STOMP_ELIMIT, "header too long");
    /* never terminated: refused as soon as it cannot fit */
    expect_error(&lim, S("SEND\nabc:123456789"), RT_STOMP_ELIMIT, "header too long");
    (void)f;
    rt_stomp_buf_free(&t);
}

static void test_limit_command(void **state)
{
    (void)state;
    rt_stomp_limits lim = {0};
    lim.max_command = 4;
    rt_stomp_parser *p = rt_stomp_parser_new(&lim);
    assert_int_equal(feed_chunks(p, S("SEND\r\n\n\0ACK\n\n\0"), 1, NULL), RT_STOMP_NEED_MORE);
    assert_int_equal(rt_stomp_parser_frames(p), 2);
    rt_stomp_parser_free(p);
    expect_error(&lim, S("ABORT\n\n\0"), RT_STOMP_ELIMIT, "command too long");
    /* default limit bounds junk without any LF */
    uint8_t junk[100];
    memset(junk, 'A', sizeof(junk));
    expect_error(NULL, junk, sizeof(junk), RT_STOMP_ELIMIT, "command too long");
}

static void test_malformed_headers(void **state)
{
    (void)state;
    expect_error(NULL, S("SEND\ndestination\n\n\0"), RT_STOMP_EPROTO, "header without colon");
    expect_error(NULL, S("SEND\n:v\n\n\0"), RT_STOMP_EPROTO, "empty header name");
    expect_error(NULL, S("SEND\na:b\0c\n\n\0"), RT_STOMP_EPROTO, "NUL in header");
    /* NUL where the blank line should be */
    expect_error(NULL, S("SEND\na:b\n\0\n"), RT_STOMP_EPROTO, "NUL in header");
    /* an empty value is fine */
    rt_stomp_frame f;
    rt_stomp_parser *p = parse_one(S("SEND\na:\n\n\0"), &f);
    assert_int_equal(f.headers[0].value_len, 0);
    assert_string_equal(f.headers[0].value, "");
    rt_stomp_parser_free(p);
}

static void test_error_is_sticky(void **state)
{
    (void)state;
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    size_t used = 99;
    rt_stomp_frame f;
    int rc = rt_stomp_parser_feed(p, S("SEND\n\n\0NOPE\n\n\0SEND\n\n\0"), &used, &f);
    assert_int_equal(rc, RT_STOMP_FRAME);
    size_t off = used;
    rc = rt_stomp_parser_feed(p, (const uint8_t *)"SEND\n\n\0NOPE\n\n\0SEND\n\n\0" + off,
                              sizeof("SEND\n\n\0NOPE\n\n\0SEND\n\n\0") - 1 - off, &used, &f);
    assert_int_equal(rc, RT_STOMP_EPROTO);
    assert_int_equal(used, 5);                 /* up to and including the bad line */
    assert_string_equal(rt_stomp_parser_error(p), "unknown command NOPE");
    rc = rt_stomp_parser_feed(p, S("SEND\n\n\0"), &used, &f);
    assert_int_equal(rc, RT_STOMP_EPROTO);
    assert_int_equal(used, 0);
    assert_string_equal(rt_stomp_parser_error(p), "unknown command NOPE");
    assert_int_equal(rt_stomp_parser_frames(p), 1);
    rt_stomp_parser_free(p);

    p = rt_stomp_parser_new(NULL);
    assert_string_equal(rt_stomp_parser_error(p), "");
    rt_stomp_parser_free(p);
    rt_stomp_parser_free(NULL);
}

static void test_big_body_many_reads(void **state)
{
    (void)state;
    const size_t n = 300 * 1024;
    rt_stomp_buf in = {0}, body = {0};
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(i * 7);
        rt_stomp_buf_append(&body, &c, 1);
    }
    rt_stomp_header h[] = {rt_stomp_hdr("destination", "/big")};
    assert_true(rt_stomp_write_frame(&in, RT_STOMP_CMD_SEND, h, 1, body.data, n, NULL, 0) > 0);
    /* twice (appending a buffer to itself), so the second frame starts after the big
     * buffer was released */
    rt_stomp_buf_append(&in, in.data, in.len);
    rt_stomp_parser *p = rt_stomp_parser_new(NULL);
    size_t pos = 0, got = 0;
    while (pos < in.len) {
        size_t len = in.len - pos < 1000 ? in.len - pos : 1000, used;
        rt_stomp_frame f;
        int rc = rt_stomp_parser_feed(p, in.data + pos, len, &used, &f);
        pos += used;
        assert_true(rc >= 0);
        if (rc == RT_STOMP_FRAME) {
            assert_int_equal(f.body_len, n);
            assert_memory_equal(f.body, body.data, n);
            got++;
        }
    }
    assert_int_equal(got, 2);
    rt_stomp_parser_free(p);
    rt_stomp_buf_free(&in);
    rt_stomp_buf_free(&body);
}

/* serialize -> parse gives back the same command, headers and body. */
static void test_round_trip(void **state)
{
    (void)state;
    static const char nasty[] = "a:b\\c\nd\re::\\\\";
    struct {
        rt_stomp_command cmd;
        rt_stomp_header h[3];
        size_t nh;
        const char *body;
        size_t blen;
    } cases[] = {
        {RT_STOMP_CMD_SEND, {{"destination", 11, "/q", 2}, {"x", 1, nasty, sizeof(nasty) - 1},
                             {nasty, sizeof(nasty) - 1, "", 0}}, 3, "a\0b", 3},
        {RT_STOMP_CMD_CONNECT, {{"login", 5, "u:\\p", 4}, {"passcode", 8, "\\c", 2}}, 2, "", 0},
        {RT_STOMP_CMD_CONNECTED, {{"version", 7, "1.2", 3}}, 1, NULL, 0},
        {RT_STOMP_CMD_MESSAGE, {{"message-id", 10, "1", 1}}, 1, "\0\0\0", 3},
        {RT_STOMP_CMD_ERROR, {{"message", 7, "invalid escape \\t in header", 27}}, 1, "x", 1},
        {RT_STOMP_CMD_NACK, {{0}}, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_stomp_buf b = {0};
        char err[100] = "";
        long n = rt_stomp_write_frame(&b, cases[i].cmd, cases[i].h, cases[i].nh, cases[i].body,
                                      cases[i].blen, err, sizeof(err));
        if (n <= 0)
            fail_msg("case %zu: %s", i, err);
        rt_stomp_frame f;
        rt_stomp_parser *p = parse_one(b.data, b.len, &f);
        assert_int_equal(f.command, cases[i].cmd);
        size_t want_nh = cases[i].nh + (cases[i].blen > 0);
        assert_int_equal(f.nheaders, want_nh);
        for (size_t j = 0; j < cases[i].nh; j++) {
            assert_int_equal(f.headers[j].name_len, cases[i].h[j].name_len);
            assert_memory_equal(f.headers[j].name, cases[i].h[j].name, cases[i].h[j].name_len);
            assert_int_equal(f.headers[j].value_len, cases[i].h[j].value_len);
            assert_memory_equal(f.headers[j].value, cases[i].h[j].value,
                                cases[i].h[j].value_len);
        }
        assert_int_equal(f.body_len, cases[i].blen);
        if (cases[i].blen)
            assert_memory_equal(f.body, cases[i].body, cases[i].blen);
        rt_stomp_parser_free(p);
        rt_stomp_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_stompjs_connect),
        cmocka_unit_test(test_escape_decode),
        cmocka_unit_test(test_bad_escape),
        cmocka_unit_test(test_escape_encode),
        cmocka_unit_test(test_connect_encode_raw),
        cmocka_unit_test(test_serializer_errors),
        cmocka_unit_test(test_write_head_fanout),
        cmocka_unit_test(test_content_length_body_with_nuls),
        cmocka_unit_test(test_body_to_nul),
        cmocka_unit_test(test_missing_nul_after_body),
        cmocka_unit_test(test_bad_content_length),
        cmocka_unit_test(test_crlf_and_lf),
        cmocka_unit_test(test_heartbeats),
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_frame_contents_of_stream),
        cmocka_unit_test(test_limit_body),
        cmocka_unit_test(test_limit_headers),
        cmocka_unit_test(test_limit_header_line),
        cmocka_unit_test(test_limit_command),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_big_body_many_reads),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
