"""The SockJS protocol's own test suite, ported to Python 3 and run against rtserver.

This is a port of sockjs-protocol's `sockjs-protocol.py` (the SockJS 0.3.3 protocol as
maintained for sockjs-node 0.3.x): the same test classes, the same requests and the same
checks, in the same order, against apps/sockjs_reference.lua, which serves the four
services the suite asks for (echo, close, disabled_websocket_echo, cookie_needed_echo)
with its 4 KiB response limit.

What the port changes, and why:
- Python 3 (str/bytes, chr), and plain unittest instead of unittest2.
- The suite's HTTP helpers (its utils.py) are rewritten here on raw sockets with the
  same semantics: a synchronous request reads the whole body by its framing; an
  asynchronous one hands out one chunk (chunked), the body (Content-Length) or one read
  (Connection: close) per read().
- Its WebSocket clients were websocket-client and ws4py; ws4py is not in Debian, so both
  use Debian's websocket-client (python3-websocket), which speaks RFC 6455. A close frame
  or the end of the connection is raised as ConnectionClosed, as the suite expects of
  both clients (newer websocket-client returns '' for a close frame instead).
  test_reuseSessionId passed an on_close callback that fails the test (create_connection
  has no such argument now); the recv() calls that follow fail the same way on a close.
- test_haproxy reads the 16-byte answer until it has all 16, not in one read.
- Timeouts are a few seconds rather than one (the tests share a loaded machine).
- The iframe page's regular expression is the suite's."""
import json
import os
import random
import re
import socket
import sys
import time
import unittest
import uuid
from urllib.parse import urlparse

import websocket

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

TIMEOUT = 3.0 * SLOW
SERVER = None
test_top_url = base_url = close_base_url = wsoff_base_url = cookie_base_url = None


def setUpModule():
    global SERVER, test_top_url, base_url, close_base_url, wsoff_base_url, cookie_base_url
    SERVER = Server("apps/sockjs_reference.lua")
    SERVER.start()
    test_top_url = "http://127.0.0.1:%d" % SERVER.port
    base_url = test_top_url + "/echo"
    close_base_url = test_top_url + "/close"
    wsoff_base_url = test_top_url + "/disabled_websocket_echo"
    cookie_base_url = test_top_url + "/cookie_needed_echo"


def tearDownModule():
    SERVER.stop()


# ---- HTTP on raw sockets (the suite's utils.py) -------------------------------------------

class Headers(dict):
    """Lower-case names; a repeated header's values joined with ', '."""

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key):
        return dict.__contains__(self, key.lower())


class Response:
    def __getitem__(self, key):
        """A header's value, None when absent (the suite's r['name'])."""
        return self.headers.get(key)


class RawHttpConnection:
    def __init__(self, url):
        u = urlparse(url)
        self.s = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT)
        self.buf = b""

    def _recv(self, n=65536):
        if self.buf:
            d, self.buf = self.buf[:n], self.buf[n:]
            return d
        return self.s.recv(n)

    def _line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed in a line: %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("latin1") + "\n"

    def request(self, method, url, headers=None, body=None, http="1.1"):
        u = urlparse(url)
        h = {"Host": "%s:%d" % (u.hostname, u.port)}
        h.update(headers or {})
        if method == "POST" and body is None:
            body = ""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None:
            h["Content-Length"] = str(len(body))
        target = u.path + ("?" + u.query if u.query else "")
        head = "%s %s HTTP/%s\r\n" % (method, target, http)
        head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.send(head.encode("latin1") + (body or b""))
        m = re.match(r"HTTP/(\S+) (\d+) ?(.*)", self._line())
        r = Response()
        r.http, r.status, r.description = m.group(1), int(m.group(2)), m.group(3).rstrip("\r\n")
        r.headers = Headers()
        while True:
            line = self._line()
            if line in ("\n", "\r\n"):
                break
            k, _, v = line.partition(":")
            k, v = k.strip().lower(), v.strip()
            r.headers[k] = r.headers[k] + ", " + v if k in r.headers else v
        return r

    def read(self, size=None):
        """One read when size is None, else exactly size bytes."""
        if size is None:
            return self._recv().decode("utf-8", "replace")
        data = b""
        while len(data) < size:
            d = self._recv(size - len(data))
            if not d:
                raise EOFError("socket closed after %r" % data)
            data += d
        return data.decode("utf-8")

    def read_till_eof(self):
        data = b""
        while True:
            d = self._recv()
            if not d:
                return data.decode("utf-8")
            data += d

    def read_chunk(self):
        size = int(self._line().strip(), 16)
        return self.read(size + 2)[:-2]

    def closed(self):
        """True when the server closed the connection; raises when data still comes."""
        self.s.settimeout(0.5 * SLOW)
        if self._recv(1) != b"":
            raise AssertionError("socket not closed")
        self.s.settimeout(TIMEOUT)
        return True

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()


def _sync(method, url, **kw):
    c = RawHttpConnection(url)
    r = c.request(method, url, **kw)
    conn = [v.strip() for v in (r["connection"] or "").lower().split(",")]
    if (r["transfer-encoding"] or "").lower() == "chunked":
        chunks = []
        while True:
            ch = c.read_chunk()
            if not ch:
                break
            chunks.append(ch)
        r.body = "".join(chunks)
    elif r["content-length"]:
        r.body = c.read(int(r["content-length"]))
    elif "close" in conn:
        r.body = c.read_till_eof()
    elif r.status in (101, 204, 304):
        r.body = ""
    else:
        raise AssertionError("%d %r: no Transfer-Encoding: chunked, Content-Length nor "
                             "Connection: close" % (r.status, r.headers))
    c.close()
    return r


def GET(url, **kw):
    return _sync("GET", url, **kw)


def POST(url, **kw):
    return _sync("POST", url, **kw)


def OPTIONS(url, **kw):
    return _sync("OPTIONS", url, **kw)


def _async(method, url, **kw):
    c = RawHttpConnection(url)
    r = c.request(method, url, **kw)
    conn = [v.strip() for v in (r["connection"] or "").lower().split(",")]
    if (r["transfer-encoding"] or "").lower() == "chunked":
        r.read = c.read_chunk
    elif r["content-length"]:
        n = int(r["content-length"])
        r.read = lambda: c.read(n)
    elif "close" in conn or r.status == 101:
        r.read = c.read
    else:
        raise AssertionError("%d %r: no Transfer-Encoding: chunked, Content-Length nor "
                             "Connection: close" % (r.status, r.headers))
    r.close = c.close
    return r


def GET_async(url, **kw):
    return _async("GET", url, **kw)


def POST_async(url, **kw):
    return _async("POST", url, **kw)


class PendingPost:
    """A request sent and left waiting, its answer never read (the suite's
    old_POST_async(url, load=False))."""

    def __init__(self, url):
        self.c = RawHttpConnection(url)
        u = urlparse(url)
        self.c.send(("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 0\r\n\r\n"
                     % (u.path, u.hostname, u.port)).encode())

    def close(self):
        self.c.close()


def old_POST_async(url, load=False):
    assert not load
    return PendingPost(url)


# ---- WebSocket clients --------------------------------------------------------------------

class ConnectionClosed(Exception):
    def __init__(self, code=None, reason=""):
        Exception.__init__(self, code, reason)
        self.code, self.reason = code, reason


class WebSocket:
    """websocket-client with the suite's contract: recv() gives a text message and raises
    ConnectionClosed (code, reason) on a close frame or the end of the connection."""
    ConnectionClosedException = ConnectionClosed

    def __init__(self, url):
        url = re.sub(r"^http", "ws", url)
        self.ws = websocket.create_connection(url, timeout=TIMEOUT)

    def send(self, text):
        self.ws.send(text)

    def recv(self):
        try:
            op, data = self.ws.recv_data(control_frame=False)
        except (websocket.WebSocketConnectionClosedException, ConnectionError) as e:
            raise ConnectionClosed(None, str(e))
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            raise ConnectionClosed(code, data[2:].decode("utf-8", "replace"))
        return data.decode("utf-8")

    def close(self):
        try:
            self.ws.close(timeout=0.5)
        except (websocket.WebSocketException, OSError):
            pass


WebSocket8Client = WebSocket


def create_connection(url):
    return WebSocket(url)


# ---- the suite ----------------------------------------------------------------------------

class Test(unittest.TestCase):
    def verify404(self, r):
        self.assertEqual(r.status, 404)

    def verify405(self, r):
        self.assertEqual(r.status, 405)
        self.assertFalse(r["content-type"])
        self.assertTrue(r["allow"])
        self.assertFalse(r.body)

    def verify_content_type(self, r, content_type):
        self.assertEqual(r["content-type"].replace(" ", ""), content_type)

    def verify_options(self, url, allowed_methods):
        for origin in ["test", "null"]:
            h = {"Access-Control-Request-Method": allowed_methods, "Origin": origin}
            r = OPTIONS(url, headers=h)
            self.assertTrue(r.status == 204 or r.status == 200)
            self.assertTrue(re.search("public", r["Cache-Control"]))
            self.assertTrue(re.search("max-age=[1-9][0-9]{6}", r["Cache-Control"]),
                            "max-age must be large, one year (31536000) is best")
            self.assertTrue(r["Expires"])
            self.assertTrue(int(r["access-control-max-age"]) > 1000000)
            for method in allowed_methods.split(","):
                self.assertIn(method.strip(), r["Access-Control-Allow-Methods"])
            self.assertFalse(r.body)
            self.verify_cors(r, origin)

    def verify_no_cookie(self, r):
        self.assertFalse(r["Set-Cookie"])

    def verify_cors(self, r, origin=None):
        if origin:
            self.assertEqual(r["access-control-allow-origin"], origin)
            self.assertEqual(r["access-control-allow-credentials"], "true")
        else:
            self.assertEqual(r["access-control-allow-origin"], "*")
            self.assertFalse(r["access-control-allow-credentials"])

    def verify_not_cached(self, r, origin=None):
        self.assertEqual(r["Cache-Control"],
                         "no-store, no-cache, no-transform, must-revalidate, max-age=0")
        self.assertFalse(r["Expires"])
        self.assertFalse(r["Last-Modified"])


class BaseUrlGreeting(Test):
    def test_greeting(self):
        for url in [base_url, base_url + "/"]:
            r = GET(url)
            self.assertEqual(r.status, 200)
            self.verify_content_type(r, "text/plain;charset=UTF-8")
            self.assertEqual(r.body, "Welcome to SockJS!\n")
            self.verify_no_cookie(r)

    def test_notFound(self):
        for suffix in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a", "/a/"]:
            self.verify404(GET(base_url + suffix))


class IframePage(Test):
    iframe_body = re.compile(r'''
^<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script>
    document.domain = document.domain;
    _sockjs_onload = function\(\){SockJS.bootstrap_iframe\(\);};
  </script>
  <script src="(?P<sockjs_url>[^"]*)"></script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>$
'''.strip())

    def test_simpleUrl(self):
        self.verify(base_url + "/iframe.html")

    def test_versionedUrl(self):
        for suffix in ["/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html",
                       "/iframe-0.1.2abc-dirty.2144.html"]:
            self.verify(base_url + suffix)

    def test_queriedUrl(self):
        for suffix in ["/iframe-a.html?t=1234", "/iframe-0.1.2.html?t=123414",
                       "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123"]:
            self.verify(base_url + suffix)

    def test_invalidUrl(self):
        for suffix in ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME",
                       "/iframe.HTML", "/iframe.xml", "/iframe-/.html"]:
            self.verify404(GET(base_url + suffix))

    def verify(self, url):
        r = GET(url)
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "text/html;charset=UTF-8")
        self.assertTrue(re.search("public", r["Cache-Control"]))
        self.assertTrue(re.search("max-age=[1-9][0-9]{6}", r["Cache-Control"]),
                        "max-age must be large, one year (31536000) is best")
        self.assertTrue(r["Expires"])
        self.assertTrue(r["ETag"])
        self.assertFalse(r["last-modified"])
        match = self.iframe_body.match(r.body.strip())
        self.assertTrue(match, r.body)
        sockjs_url = match.group("sockjs_url")
        self.assertTrue(sockjs_url.startswith("/") or sockjs_url.startswith("http"))
        self.verify_no_cookie(r)
        return r

    def test_cacheability(self):
        r1 = GET(base_url + "/iframe.html")
        r2 = GET(base_url + "/iframe.html")
        self.assertEqual(r1["etag"], r2["etag"])
        self.assertTrue(r1["etag"])
        r = GET(base_url + "/iframe.html", headers={"If-None-Match": r1["etag"]})
        self.assertEqual(r.status, 304)
        self.assertFalse(r["content-type"])
        self.assertFalse(r.body)


class InfoTest(Test):
    def test_basic(self):
        r = GET(base_url + "/info", headers={"Origin": "test"})
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "application/json;charset=UTF-8")
        self.verify_no_cookie(r)
        self.verify_not_cached(r)
        self.verify_cors(r, "test")
        data = json.loads(r.body)
        self.assertEqual(data["websocket"], True)
        self.assertTrue(data["cookie_needed"] in [True, False])
        self.assertEqual(data["origins"], ["*:*"])
        self.assertTrue(type(data["entropy"]) is int)

    def test_entropy(self):
        data1 = json.loads(GET(base_url + "/info").body)
        data2 = json.loads(GET(base_url + "/info").body)
        self.assertTrue(type(data1["entropy"]) is int)
        self.assertTrue(type(data2["entropy"]) is int)
        self.assertNotEqual(data1["entropy"], data2["entropy"])

    def test_options(self):
        self.verify_options(base_url + "/info", "OPTIONS, GET")

    def test_options_null_origin(self):
        r = OPTIONS(base_url + "/info", headers={"Origin": "null", "Access-Control-Request-Method": "POST"})
        self.assertTrue(r.status == 204 or r.status == 200)
        self.assertFalse(r.body)
        self.assertEqual(r["access-control-allow-origin"], "null")

    def test_disabled_websocket(self):
        r = GET(wsoff_base_url + "/info")
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.body)["websocket"], False)


class SessionURLs(Test):
    def test_anyValue(self):
        r = "%s" % random.randint(0, 1024)
        self.verify("/a/a" + r)
        for session_part in ["/_/_" + r, "/1/" + r, "/abcdefgh_i-j%20/abcdefg_i-j%20" + r]:
            self.verify(session_part)

    def verify(self, session_part):
        r = POST(base_url + session_part + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")

    def test_invalidPaths(self):
        for suffix in ["//", "/a./a", "/a/a.", "/./.", "/", "///"]:
            self.verify404(GET(base_url + suffix + "/xhr"))
            self.verify404(POST(base_url + suffix + "/xhr"))

    def test_ignoringServerId(self):
        session_id = str(uuid.uuid4())
        r = POST(base_url + "/000/" + session_id + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        r = POST(base_url + "/000/" + session_id + "/xhr_send", body='["a"]')
        self.assertEqual(r.status, 204)
        self.assertFalse(r.body)
        r = POST(base_url + "/999/" + session_id + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, 'a["a"]\n')


class Protocol(Test):
    def test_simpleSession(self):
        trans_url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        r = POST(trans_url + "/xhr_send", body='["a"]')
        self.assertEqual(r.status, 204)
        self.assertFalse(r.body)
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, 'a["a"]\n')
        r = POST(base_url + "/000/bad_session/xhr_send", body='["a"]')
        self.verify404(r)
        # Two receivers may not wait on one session: the second gets a close frame.
        r1 = old_POST_async(trans_url + "/xhr", load=False)
        time.sleep(0.25)
        r2 = POST(trans_url + "/xhr")
        self.assertEqual(r2.body, 'c[2010,"Another connection still open"]\n')
        self.assertEqual(r2.status, 200)
        r1.close()

    def test_closeSession(self):
        trans_url = close_base_url + "/000/" + str(uuid.uuid4())
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, 'c[3000,"Go away!"]\n')
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, 'c[3000,"Go away!"]\n')


class WebsocketHttpErrors(Test):
    def test_httpMethod(self):
        r = GET(base_url + "/0/0/websocket")
        self.assertEqual(r.status, 400)

    def test_invalidConnectionHeader(self):
        r = GET(base_url + "/0/0/websocket", headers={"Upgrade": "WebSocket", "Connection": "close"})
        self.assertEqual(r.status, 400)
        self.assertTrue("Not a valid websocket request", r.body)

    def test_invalidMethod(self):
        for h in [{"Upgrade": "WebSocket", "Connection": "Upgrade"}, {}]:
            r = POST(base_url + "/0/0/websocket", headers=h)
            self.verify405(r)


class WebsocketHixie76(Test):
    """The suite's first WebSocket class; its client (websocket-client) speaks RFC 6455
    here. test_haproxy speaks Hixie-76 itself."""

    def ws_url(self, base):
        return "ws:" + base.split(":", 1)[1] + "/000/" + str(uuid.uuid4()) + "/websocket"

    def test_transport(self):
        ws = create_connection(self.ws_url(base_url))
        self.assertEqual(ws.recv(), "o")
        ws.send('["a"]')
        self.assertEqual(ws.recv(), 'a["a"]')
        ws.close()

    def test_close(self):
        ws = create_connection(self.ws_url(close_base_url))
        self.assertEqual(ws.recv(), "o")
        self.assertEqual(ws.recv(), 'c[3000,"Go away!"]')
        with self.assertRaises(ConnectionClosed):
            ws.recv()
        ws.close()

    def test_empty_frame(self):
        ws = create_connection(self.ws_url(base_url))
        self.assertEqual(ws.recv(), "o")
        ws.send("")
        ws.send("[]")
        ws.send('["a"]')
        self.assertEqual(ws.recv(), 'a["a"]')
        ws.close()

    def test_reuseSessionId(self):
        ws_url = self.ws_url(base_url)
        ws1 = create_connection(ws_url)
        self.assertEqual(ws1.recv(), "o")
        ws2 = create_connection(ws_url)
        self.assertEqual(ws2.recv(), "o")
        ws1.send('["a"]')
        self.assertEqual(ws1.recv(), 'a["a"]')
        ws2.send('["b"]')
        self.assertEqual(ws2.recv(), 'a["b"]')
        ws1.close()
        ws2.close()
        ws1 = create_connection(ws_url)
        self.assertEqual(ws1.recv(), "o")
        ws1.send('["a"]')
        self.assertEqual(ws1.recv(), 'a["a"]')
        ws1.close()

    def test_haproxy(self):
        url = base_url.split(":", 1)[1] + "/000/" + str(uuid.uuid4()) + "/websocket"
        ws_url = "ws:" + url
        http_url = "http:" + url
        origin = "/".join(http_url.split("/")[:3])
        c = RawHttpConnection(http_url)
        r = c.request("GET", http_url, http="1.1", headers={
            "Connection": "Upgrade",
            "Upgrade": "WebSocket",
            "Origin": origin,
            "Sec-WebSocket-Key1": "4 @1  46546xW%0l 1 5",
            "Sec-WebSocket-Key2": "12998 5 Y3 1  .P00"})
        self.assertEqual(r.status, 101)
        self.assertEqual(r.headers["connection"].lower(), "upgrade")
        self.assertEqual(r.headers["upgrade"].lower(), "websocket")
        self.assertEqual(r.headers["sec-websocket-location"], ws_url)
        self.assertEqual(r.headers["sec-websocket-origin"], origin)
        self.assertFalse("Content-Length" in r.headers)
        c.send(b"aaaaaaaa")
        got = b""
        while len(got) < 16:
            got += c._recv(16 - len(got))
        self.assertEqual(got, b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{")

    def test_broken_json(self):
        ws = create_connection(self.ws_url(base_url))
        self.assertEqual(ws.recv(), "o")
        ws.send('["a')
        with self.assertRaises(ConnectionClosed):
            ws.recv()
        ws.close()


class WebsocketHybi10(Test):
    def test_transport(self):
        ws = WebSocket8Client(base_url + "/000/" + str(uuid.uuid4()) + "/websocket")
        self.assertEqual(ws.recv(), "o")
        ws.send("")
        ws.send('["a"]')
        self.assertEqual(ws.recv(), 'a["a"]')
        ws.close()

    def test_close(self):
        ws = WebSocket8Client(close_base_url + "/000/" + str(uuid.uuid4()) + "/websocket")
        self.assertEqual(ws.recv(), "o")
        self.assertEqual(ws.recv(), 'c[3000,"Go away!"]')
        with self.assertRaises(ws.ConnectionClosedException):
            ws.recv()
        ws.close()

    def test_headersSanity(self):
        for version in ["7", "8", "13"]:
            url = base_url.split(":", 1)[1] + "/000/" + str(uuid.uuid4()) + "/websocket"
            http_url = "http:" + url
            h = {"Upgrade": "websocket",
                 "Connection": "Upgrade",
                 "Sec-WebSocket-Version": version,
                 "Sec-WebSocket-Origin": "http://asd",
                 "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="}
            r = GET_async(http_url, headers=h)
            self.assertEqual(r.status, 101, version)
            self.assertEqual(r["sec-websocket-accept"], "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
            self.assertEqual(r["connection"].lower(), "upgrade")
            self.assertEqual(r["upgrade"].lower(), "websocket")
            self.assertFalse(r["content-length"])
            r.close()

    def test_broken_json(self):
        ws = WebSocket8Client(base_url + "/000/" + str(uuid.uuid4()) + "/websocket")
        self.assertEqual(ws.recv(), "o")
        ws.send('["a')
        with self.assertRaises(ws.ConnectionClosedException):
            ws.recv()
        ws.close()

    def test_firefox_602_connection_header(self):
        url = base_url.split(":", 1)[1] + "/000/" + str(uuid.uuid4()) + "/websocket"
        h = {"Upgrade": "websocket",
             "Connection": "keep-alive, Upgrade",
             "Sec-WebSocket-Version": "7",
             "Sec-WebSocket-Origin": "http://asd",
             "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="}
        r = GET_async("http:" + url, headers=h)
        self.assertEqual(r.status, 101)
        r.close()


class XhrPolling(Test):
    def test_options(self):
        for suffix in ["/xhr", "/xhr_send"]:
            self.verify_options(base_url + "/abc/abc" + suffix, "OPTIONS, POST")

    def test_transport(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr", headers={"Origin": "test"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        self.verify_content_type(r, "application/javascript;charset=UTF-8")
        self.verify_cors(r, "test")
        self.verify_not_cached(r)

        r = POST(url + "/xhr_send", body='["x"]', headers={"Origin": "test"})
        self.assertEqual(r.status, 204)
        self.assertFalse(r.body)
        self.verify_content_type(r, "text/plain;charset=UTF-8")
        self.verify_cors(r, "test")
        self.verify_not_cached(r)

        r = POST(url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, 'a["x"]\n')

    def test_invalid_session(self):
        r = POST(base_url + "/000/" + str(uuid.uuid4()) + "/xhr_send", body='["x"]')
        self.verify404(r)

    def test_invalid_json(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        r = POST(url + "/xhr_send", body='["x')
        self.assertEqual(r.status, 500)
        self.assertTrue("Broken JSON encoding." in r.body)
        r = POST(url + "/xhr_send", body="")
        self.assertEqual(r.status, 500)
        self.assertTrue("Payload expected." in r.body)
        r = POST(url + "/xhr_send", body='["a"]')
        self.assertFalse(r.body)
        self.assertEqual(r.status, 204)
        r = POST(url + "/xhr")
        self.assertEqual(r.body, 'a["a"]\n')
        self.assertEqual(r.status, 200)

    def test_content_types(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr")
        self.assertEqual(r.body, "o\n")
        ctypes = ["text/plain", "T", "application/json", "application/xml", "",
                  "application/json; charset=utf-8", "text/xml; charset=utf-8", "text/xml"]
        for ct in ctypes:
            r = POST(url + "/xhr_send", body='["a"]', headers={"Content-Type": ct})
            self.assertEqual(r.status, 204)
            self.assertFalse(r.body)
        r = POST(url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "a[" + ",".join(['"a"'] * len(ctypes)) + "]\n")

    def test_request_headers_cors(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = OPTIONS(url + "/xhr", headers={"Origin": "test", "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": "a, b, c"})
        self.assertTrue(r.status == 204 or r.status == 200)
        self.verify_cors(r, "test")
        self.assertEqual(r["Access-Control-Allow-Headers"], "a, b, c")

        url = base_url + "/000/" + str(uuid.uuid4())
        r = OPTIONS(url + "/xhr", headers={"Origin": "test", "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": ""})
        self.assertTrue(r.status == 204 or r.status == 200)
        self.verify_cors(r, "test")
        self.assertFalse(r["Access-Control-Allow-Headers"])

        url = base_url + "/000/" + str(uuid.uuid4())
        r = OPTIONS(url + "/xhr", headers={"Origin": "test", "Access-Control-Request-Method": "POST"})
        self.assertTrue(r.status == 204 or r.status == 200)
        self.verify_cors(r, "test")
        self.assertFalse(r["Access-Control-Allow-Headers"])

    def test_sending_empty_frame(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        r = POST(url + "/xhr_send", body="[]")
        self.assertEqual(r.status, 204)
        r = POST(url + "/xhr_send", body='["a"]')
        self.assertEqual(r.status, 204)
        r = POST(url + "/xhr")
        self.assertEqual(r.body, 'a["a"]\n')
        self.assertEqual(r.status, 200)


class XhrStreaming(Test):
    def test_options(self):
        self.verify_options(base_url + "/abc/abc/xhr_streaming", "OPTIONS, POST")

    def test_transport(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST_async(url + "/xhr_streaming", headers={"Origin": "test"})
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "application/javascript;charset=UTF-8")
        self.verify_cors(r, "test")
        self.verify_not_cached(r)
        self.assertEqual(r.read(), "h" * 2048 + "\n")
        self.assertEqual(r.read(), "o\n")
        r1 = POST(url + "/xhr_send", body='["x"]')
        self.assertEqual(r1.status, 204)
        self.assertFalse(r1.body)
        self.assertEqual(r.read(), 'a["x"]\n')
        r.close()

    def test_response_limit(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = POST_async(url + "/xhr_streaming")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.read())
        self.assertEqual(r.read(), "o\n")
        msg = '"' + ("x" * 128) + '"'
        for i in range(31):
            r1 = POST(url + "/xhr_send", body="[" + msg + "]")
            self.assertEqual(r1.status, 204)
            self.assertEqual(r.read(), "a[" + msg + "]\n")
        self.assertFalse(r.read())


class EventSource(Test):
    def test_transport(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET_async(url + "/eventsource")
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "text/event-stream;charset=UTF-8")
        self.verify_not_cached(r)
        self.assertEqual(r.read(), "\r\n")
        self.assertEqual(r.read(), "data: o\r\n\r\n")
        r1 = POST(url + "/xhr_send", body='["x"]')
        self.assertFalse(r1.body)
        self.assertEqual(r1.status, 204)
        self.assertEqual(r.read(), 'data: a["x"]\r\n\r\n')
        r1 = POST(url + "/xhr_send", body=r'["  \u0000\n\r "]')
        self.assertFalse(r1.body)
        self.assertEqual(r1.status, 204)
        self.assertEqual(r.read(), 'data: a["  \\u0000\\n\\r "]\r\n\r\n')
        r.close()

    def test_response_limit(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET_async(url + "/eventsource")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.read())
        self.assertEqual(r.read(), "data: o\r\n\r\n")
        msg = '"' + ("x" * 4096) + '"'
        r1 = POST(url + "/xhr_send", body="[" + msg + "]")
        self.assertEqual(r1.status, 204)
        self.assertEqual(r.read(), "data: a[" + msg + "]\r\n\r\n")
        self.assertFalse(r.read())


class HtmlFile(Test):
    head = r'''
<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>
'''.strip()

    def test_transport(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET_async(url + "/htmlfile?c=%63allback")
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "text/html;charset=UTF-8")
        self.verify_not_cached(r)
        d = r.read()
        self.assertEqual(d.strip(), self.head % ("callback",))
        self.assertGreater(len(d), 1024)
        self.assertEqual(r.read(), '<script>\np("o");\n</script>\r\n')
        r1 = POST(url + "/xhr_send", body='["x"]')
        self.assertFalse(r1.body)
        self.assertEqual(r1.status, 204)
        self.assertEqual(r.read(), '<script>\np("a[\\"x\\"]");\n</script>\r\n')
        r.close()

    def test_no_callback(self):
        r = GET(base_url + "/a/a/htmlfile")
        self.assertEqual(r.status, 500)
        self.assertTrue('"callback" parameter required' in r.body)

    def test_invalid_callback(self):
        for callback in ["%20", "*", "abc(", "abc%28"]:
            r = GET(base_url + "/a/a/htmlfile?c=" + callback)
            self.assertEqual(r.status, 500)
            self.assertTrue('invalid "callback" parameter' in r.body)

    def test_response_limit(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET_async(url + "/htmlfile?c=callback")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.read())
        self.assertEqual(r.read(), '<script>\np("o");\n</script>\r\n')
        msg = "x" * 4096
        r1 = POST(url + "/xhr_send", body='["' + msg + '"]')
        self.assertEqual(r1.status, 204)
        self.assertEqual(r.read(), '<script>\np("a[\\"' + msg + '\\"]");\n</script>\r\n')
        self.assertFalse(r.read())


class JsonPolling(Test):
    FORM = {"Content-Type": "application/x-www-form-urlencoded"}

    def test_transport(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=%63allback")
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "application/javascript;charset=UTF-8")
        self.verify_not_cached(r)
        self.assertEqual(r.body, '/**/callback("o");\r\n')
        r = POST(url + "/jsonp_send", body="d=%5B%22x%22%5D", headers=self.FORM)
        self.assertEqual(r.body, "ok")
        self.assertEqual(r.status, 200)
        self.verify_content_type(r, "text/plain;charset=UTF-8")
        self.verify_not_cached(r)
        r = GET(url + "/jsonp?c=%63allback")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, '/**/callback("a[\\"x\\"]");\r\n')

    def test_no_callback(self):
        r = GET(base_url + "/a/a/jsonp")
        self.assertEqual(r.status, 500)
        self.assertTrue('"callback" parameter required' in r.body)

    def test_invalid_callback(self):
        for callback in ["%20", "*", "abc(", "abc%28"]:
            r = GET(base_url + "/a/a/jsonp?c=" + callback)
            self.assertEqual(r.status, 500)
            self.assertTrue('invalid "callback" parameter' in r.body)

    def test_invalid_json(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("o");\r\n')
        r = POST(url + "/jsonp_send", body="d=%5B%22x", headers=self.FORM)
        self.assertEqual(r.status, 500)
        self.assertTrue("Broken JSON encoding." in r.body)
        for data in ["", "d=", "p=p"]:
            r = POST(url + "/jsonp_send", body=data, headers=self.FORM)
            self.assertEqual(r.status, 500)
            self.assertTrue("Payload expected." in r.body)
        r = POST(url + "/jsonp_send", body="d=%5B%22b%22%5D", headers=self.FORM)
        self.assertEqual(r.body, "ok")
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, '/**/x("a[\\"b\\"]");\r\n')

    def test_content_types(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("o");\r\n')
        r = POST(url + "/jsonp_send", body="d=%5B%22abc%22%5D", headers=self.FORM)
        self.assertEqual(r.body, "ok")
        r = POST(url + "/jsonp_send", body='["%61bc"]', headers={"Content-Type": "text/plain"})
        self.assertEqual(r.body, "ok")
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, '/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n')

    def test_close(self):
        url = close_base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("o");\r\n')
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("c[3000,\\"Go away!\\"]");\r\n')
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("c[3000,\\"Go away!\\"]");\r\n')

    def test_sending_empty_frame(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.body, '/**/x("o");\r\n')
        r = POST(url + "/jsonp_send", body="d=%5B%5D", headers=self.FORM)
        self.assertEqual(r.body, "ok")
        r = POST(url + "/jsonp_send", body="d=%5B%22x%22%5D", headers=self.FORM)
        self.assertEqual(r.body, "ok")
        r = GET(url + "/jsonp?c=x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, '/**/x("a[\\"x\\"]");\r\n')


class JsessionidCookie(Test):
    def test_basic(self):
        r = GET(cookie_base_url + "/info")
        self.assertEqual(r.status, 200)
        self.verify_no_cookie(r)
        self.assertEqual(json.loads(r.body)["cookie_needed"], True)

    def verify_cookie(self, r):
        self.assertEqual(r["Set-Cookie"].split(";")[0].strip(), "JSESSIONID=dummy")
        self.assertEqual(r["Set-Cookie"].split(";")[1].lower().strip(), "path=/")

    def test_xhr(self):
        url = cookie_base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        self.verify_cookie(r)
        url = cookie_base_url + "/000/" + str(uuid.uuid4())
        r = POST(url + "/xhr", headers={"Cookie": "JSESSIONID=abcdef"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, "o\n")
        self.assertEqual(r["Set-Cookie"].split(";")[0].strip(), "JSESSIONID=abcdef")
        self.assertEqual(r["Set-Cookie"].split(";")[1].lower().strip(), "path=/")

    def test_xhr_streaming(self):
        r = POST_async(cookie_base_url + "/000/" + str(uuid.uuid4()) + "/xhr_streaming")
        self.assertEqual(r.status, 200)
        self.verify_cookie(r)
        r.close()

    def test_eventsource(self):
        r = GET_async(cookie_base_url + "/000/" + str(uuid.uuid4()) + "/eventsource")
        self.assertEqual(r.status, 200)
        self.verify_cookie(r)
        r.close()

    def test_htmlfile(self):
        r = GET_async(cookie_base_url + "/000/" + str(uuid.uuid4()) + "/htmlfile?c=%63allback")
        self.assertEqual(r.status, 200)
        self.verify_cookie(r)
        r.close()

    def test_jsonp(self):
        url = cookie_base_url + "/000/" + str(uuid.uuid4())
        r = GET(url + "/jsonp?c=%63allback")
        self.assertEqual(r.status, 200)
        self.verify_cookie(r)
        self.assertEqual(r.body, '/**/callback("o");\r\n')
        r = POST(url + "/jsonp_send", body="d=%5B%22x%22%5D",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.body, "ok")
        self.assertEqual(r.status, 200)
        self.verify_cookie(r)


class RawWebsocket(Test):
    def test_transport(self):
        ws = WebSocket8Client(base_url + "/websocket")
        ws.send("Hello world!\uffff")
        self.assertEqual(ws.recv(), "Hello world!\uffff")
        ws.close()

    def test_close(self):
        ws = WebSocket8Client(close_base_url + "/websocket")
        with self.assertRaises(ws.ConnectionClosedException) as ce:
            ws.recv()
        self.assertIn(ce.exception.reason, ["Go away!", ""])
        ws.close()


# JSON Unicode encoding: what a client escapes, and what the server must escape.
escapable_by_client = re.compile(
    "[\\\\\"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0604\u070f\u17b4\u17b5\u2000-\u20ff\ufeff\ufff0-\uffff"
    "\x00-\x1f\ufffe\uffff\u0300-\u0333\u033d-\u0346\u034a-\u034c\u0350-\u0352\u0357-\u0358"
    "\u035c-\u0362\u0374\u037e\u0387\u0591-\u05af\u05c4\u0610-\u0617\u0653-\u0654\u0657-\u065b"
    "\u065d-\u065e\u06df-\u06e2\u06eb-\u06ec\u0730\u0732-\u0733\u0735-\u0736\u073a\u073d"
    "\u073f-\u0741\u0743\u0745\u0747\u07eb-\u07f1\u0951\u0958-\u095f\u09dc-\u09dd\u09df\u0a33"
    "\u0a36\u0a59-\u0a5b\u0a5e\u0b5c-\u0b5d\u0e38-\u0e39\u0f43\u0f4d\u0f52\u0f57\u0f5c\u0f69"
    "\u0f72-\u0f76\u0f78\u0f80-\u0f83\u0f93\u0f9d\u0fa2\u0fa7\u0fac\u0fb9\u1939-\u193a\u1a17"
    "\u1b6b\u1cda-\u1cdb\u1dc0-\u1dcf\u1dfc\u1dfe\u1f71\u1f73\u1f75\u1f77\u1f79\u1f7b\u1f7d"
    "\u1fbb\u1fbe\u1fc9\u1fcb\u1fd3\u1fdb\u1fe3\u1feb\u1fee-\u1fef\u1ff9\u1ffb\u1ffd"
    "\u2000-\u2001\u20d0-\u20d1\u20d4-\u20d7\u20e7-\u20e9\u2126\u212a-\u212b\u2329-\u232a\u2adc"
    "\u302b-\u302c\uaab2-\uaab3\uf900-\ufa0d\ufa10\ufa12\ufa15-\ufa1e\ufa20\ufa22\ufa25-\ufa26"
    "\ufa2a-\ufa2d\ufa30-\ufa6d\ufa70-\ufad9\ufb1d\ufb1f\ufb2a-\ufb36\ufb38-\ufb3c\ufb3e"
    "\ufb40-\ufb41\ufb43-\ufb44\ufb46-\ufb4e]")
escapable_by_server = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")

client_killer_string_esc = '"' + "".join(
    r"\u%04x" % i for i in range(65536) if escapable_by_client.match(chr(i))) + '"'
server_killer_string_esc = '"' + "".join(
    r"\u%04x" % i for i in range(255, 65536) if escapable_by_server.match(chr(i))) + '"'


class JSONEncoding(Test):
    def test_xhr_server_encodes(self):
        trans_url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.body, "o\n")
        self.assertEqual(r.status, 200)
        payload = '["' + json.loads(server_killer_string_esc) + '"]'
        r = POST(trans_url + "/xhr_send", body=payload)
        self.assertEqual(r.status, 204)
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        recv = r.body.strip()[2:-1]
        self.assertEqual(recv, server_killer_string_esc)

    def test_xhr_server_decodes(self):
        trans_url = base_url + "/000/" + str(uuid.uuid4())
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.body, "o\n")
        self.assertEqual(r.status, 200)
        payload = "[" + client_killer_string_esc + "]"
        r = POST(trans_url + "/xhr_send", body=payload)
        self.assertEqual(r.status, 204)
        r = POST(trans_url + "/xhr")
        self.assertEqual(r.status, 200)
        recv = r.body.strip()[2:-1]
        self.assertEqual(json.loads(recv), json.loads(client_killer_string_esc))


class HandlingClose(Test):
    def test_close_frame(self):
        url = close_base_url + "/000/" + str(uuid.uuid4())
        r1 = POST_async(url + "/xhr_streaming")
        r1.read()
        self.assertEqual(r1.read(), "o\n")
        self.assertEqual(r1.read(), 'c[3000,"Go away!"]\n')
        r2 = POST_async(url + "/xhr_streaming")
        r2.read()
        self.assertEqual(r2.read(), 'c[3000,"Go away!"]\n')
        self.assertFalse(r1.read())
        self.assertFalse(r2.read())

    def test_close_request(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r1 = POST_async(url + "/xhr_streaming")
        r1.read()
        self.assertEqual(r1.read(), "o\n")
        r2 = POST_async(url + "/xhr_streaming")
        r2.read()
        self.assertEqual(r2.read(), 'c[2010,"Another connection still open"]\n')
        self.assertFalse(r2.read())
        r1.close()

    def test_abort_xhr_streaming(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r1 = POST_async(url + "/xhr_streaming")
        r1.read()
        self.assertEqual(r1.read(), "o\n")
        r2 = POST_async(url + "/xhr_streaming")
        r2.read()
        self.assertEqual(r2.read(), 'c[2010,"Another connection still open"]\n')
        self.assertFalse(r2.read())
        r1.close()
        r3 = POST_async(url + "/xhr_streaming")
        r3.read()
        self.assertTrue(r3.read() in ["o\n", 'c[1002,"Connection interrupted"]\n'])
        r3.close()

    def test_abort_xhr_polling(self):
        url = base_url + "/000/" + str(uuid.uuid4())
        r1 = POST(url + "/xhr")
        self.assertEqual(r1.body, "o\n")
        r1 = old_POST_async(url + "/xhr", load=False)
        time.sleep(0.25)
        r2 = POST(url + "/xhr")
        self.assertEqual(r2.body, 'c[2010,"Another connection still open"]\n')
        r1.close()
        r3 = POST(url + "/xhr")
        self.assertTrue(r3.body in ["o\n", 'c[1002,"Connection interrupted"]\n'])


class Http10(Test):
    def test_synchronous(self):
        c = RawHttpConnection(base_url)
        r = c.request("GET", base_url, http="1.0", headers={"Connection": "Keep-Alive"})
        self.assertEqual(r.status, 200)
        self.assertTrue(r.http in ["1.0", "1.1"])
        self.assertFalse(r.headers.get("transfer-encoding"))
        if not r.headers.get("content-length"):
            self.assertEqual(r.headers["connection"].lower(), "close")
            self.assertEqual(c.read(), "Welcome to SockJS!\n")
            self.assertTrue(c.closed())
        else:
            self.assertEqual(int(r.headers["content-length"]), 19)
            self.assertEqual(c.read(19), "Welcome to SockJS!\n")
            connection = r.headers.get("connection", "").lower()
            if connection in ["close", ""]:
                self.assertTrue(c.closed())
            else:
                self.assertEqual(connection, "keep-alive")
                r = c.request("GET", base_url, http="1.0", headers={"Connection": "Keep-Alive"})
                self.assertEqual(r.status, 200)
        c.close()

    def test_streaming(self):
        url = close_base_url + "/000/" + str(uuid.uuid4())
        c = RawHttpConnection(url)
        r = c.request("POST", url + "/xhr_streaming", http="1.0", headers={"Connection": "Keep-Alive"})
        self.assertEqual(r.status, 200)
        self.assertFalse(r.headers.get("transfer-encoding"))
        self.assertFalse(r.headers.get("content-length"))
        self.assertEqual(c.read(2048 + 1)[0], "h")
        self.assertEqual(c.read(2), "o\n")
        self.assertEqual(c.read(19), 'c[3000,"Go away!"]\n')
        self.assertTrue(c.closed())
        c.close()


class Http11(Test):
    def test_synchronous(self):
        c = RawHttpConnection(base_url)
        r = c.request("GET", base_url, http="1.1", headers={"Connection": "Keep-Alive"})
        self.assertTrue(r.http, "1.1")
        self.assertTrue(r.headers.get("connection", "").lower() in ["keep-alive", ""],
                        "Your server doesn't support connection:Keep-Alive")
        if r.headers.get("content-length"):
            self.assertEqual(int(r.headers["content-length"]), 19)
            self.assertEqual(c.read(19), "Welcome to SockJS!\n")
            self.assertFalse(r.headers.get("transfer-encoding"))
        else:
            self.assertEqual(r.headers["transfer-encoding"].lower(), "chunked")
            self.assertEqual(c.read_chunk(), "Welcome to SockJS!\n")
            self.assertEqual(c.read_chunk(), "")
        r = c.request("GET", base_url, http="1.1", headers={"Connection": "Keep-Alive"})
        self.assertEqual(r.status, 200)
        c.close()

    def test_streaming(self):
        url = close_base_url + "/000/" + str(uuid.uuid4())
        c = RawHttpConnection(url)
        r = c.request("POST", url + "/xhr_streaming", http="1.1", headers={"Connection": "Keep-Alive"})
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["transfer-encoding"].lower(), "chunked")
        self.assertFalse(r.headers.get("content-length"))
        self.assertEqual(c.read_chunk()[0], "h")
        self.assertEqual(c.read_chunk(), "o\n")
        self.assertEqual(c.read_chunk(), 'c[3000,"Go away!"]\n')
        self.assertEqual(c.read_chunk(), "")
        c.close()


if __name__ == "__main__":
    unittest.main()
