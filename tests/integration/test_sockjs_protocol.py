"""SockJS 0.3.3 over raw HTTP: the protocol's edge cases against apps/sockjs_echo.lua.

Greeting, /info, the iframe page and its ETag, CORS and caching headers, session paths,
each HTTP transport's framing, 404 for unknown sessions, c[2010] for a second receiver,
"Broken JSON encoding.", heartbeats, the disconnect delay, the response limit, and the
bounds on queued messages, message size and sessions."""
import json
import os
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

WAIT = 3 * SLOW


class Response:
    def __init__(self, status, headers, sock, rest):
        self.status, self.headers, self.sock, self.buf = status, headers, sock, rest
        self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        self.body = b""
        self.done = False

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not d:
            self.done = True
            return False
        self.buf += d
        return True

    def _decode(self):
        """Moves whole chunks (or everything, unchunked) from buf to body."""
        if not self.chunked:
            self.body += self.buf
            self.buf = b""
            return
        while True:
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                return
            size = int(self.buf[:nl], 16)
            if len(self.buf) < nl + 2 + size + 2:
                return
            if size == 0:
                self.done = True
                self.buf = self.buf[nl + 4:]
                return
            self.body += self.buf[nl + 2:nl + 2 + size]
            self.buf = self.buf[nl + 2 + size + 2:]

    def read_until(self, pred, timeout=WAIT):
        """Reads body bytes until pred(body) or the body ends; returns the body so far."""
        deadline = time.time() + timeout
        self._decode()
        while not pred(self.body) and not self.done and time.time() < deadline:
            if self._fill(deadline):
                self._decode()
        return self.body

    def read_all(self, timeout=WAIT):
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            return self.read_until(lambda b: len(b) >= n, timeout)
        return self.read_until(lambda b: False, timeout)


class Client:
    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=b"", headers=None, timeout=WAIT):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if isinstance(body, str):
            body = body.encode()
        h = {"Host": "127.0.0.1", "Connection": "close"}
        h.update(headers or {})
        if body or method in ("POST", "PUT"):
            h["Content-Length"] = str(len(body))
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        s.sendall(head.encode() + body)
        buf = b""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in buf:
            s.settimeout(max(0.01, deadline - time.time()))
            d = s.recv(65536)
            if not d:
                raise AssertionError("connection closed before a response head: %r" % buf)
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Response(status, headers, s, rest)

    def fetch(self, method, path, body=b"", headers=None):
        r = self.request(method, path, body, headers)
        r.read_all()
        r.sock.close()
        return r


def sid():
    return uuid.uuid4().hex[:12]


class SockJSProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/sockjs_echo.lua")
        cls.srv.start()
        cls.c = Client(cls.srv.port)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def closes(self):
        return json.loads(self.c.fetch("GET", "/closes").body)

    # ---- the base URL, /info, the iframe ------------------------------------------------

    def test_greeting(self):
        for path in ("/echo", "/echo/"):
            r = self.c.fetch("GET", path)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"Welcome to SockJS!\n")
            self.assertEqual(r.headers["content-type"], "text/plain; charset=UTF-8")

    def test_info(self):
        r = self.c.fetch("GET", "/echo/info", headers={"Origin": "http://example.com"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "application/json; charset=UTF-8")
        self.assertIn("no-store", r.headers["cache-control"])
        self.assertEqual(r.headers["access-control-allow-origin"], "http://example.com")
        self.assertEqual(r.headers["access-control-allow-credentials"], "true")
        info = json.loads(r.body)
        self.assertIs(info["websocket"], True)
        self.assertIs(info["cookie_needed"], False)
        self.assertEqual(info["origins"], ["*:*"])
        self.assertIsInstance(info["entropy"], int)
        other = json.loads(self.c.fetch("GET", "/echo/info").body)
        self.assertNotEqual(info["entropy"], other["entropy"])
        self.assertIs(json.loads(self.c.fetch("GET", "/tight/info").body)["cookie_needed"], True)
        # A file:// page (Origin: null) gets "null" back with credentials, as from sockjs-node;
        # a request with no Origin gets "*" and no credentials.
        null = self.c.fetch("GET", "/echo/info", headers={"Origin": "null"}).headers
        self.assertEqual(null["access-control-allow-origin"], "null")
        self.assertEqual(null["access-control-allow-credentials"], "true")
        none = self.c.fetch("GET", "/echo/info").headers
        self.assertEqual(none["access-control-allow-origin"], "*")
        self.assertNotIn("access-control-allow-credentials", none)

    def test_info_options(self):
        r = self.c.fetch("OPTIONS", "/echo/info", headers={"Origin": "http://a.test",
                                                            "Access-Control-Request-Headers": "x-a, x-b"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers["access-control-allow-methods"], "OPTIONS, GET")
        self.assertEqual(r.headers["access-control-allow-headers"], "x-a, x-b")
        self.assertEqual(r.headers["access-control-max-age"], "31536000")
        self.assertIn("max-age=31536000", r.headers["cache-control"])
        self.assertIn("GMT", r.headers["expires"])

    def test_iframe(self):
        r = self.c.fetch("GET", "/echo/iframe.html")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/html; charset=UTF-8")
        self.assertIn(b"SockJS.bootstrap_iframe()", r.body)
        self.assertIn("max-age=31536000", r.headers["cache-control"])
        etag = r.headers["etag"]
        for name in ("/echo/iframe-1.6.1.html", "/echo/iframe-a_b.html"):
            r2 = self.c.fetch("GET", name)
            self.assertEqual((r2.status, r2.headers["etag"], r2.body), (200, etag, r.body))
        r3 = self.c.fetch("GET", "/echo/iframe.html", headers={"If-None-Match": etag})
        self.assertEqual(r3.status, 304)
        self.assertEqual(r3.body, b"")
        for bad in ("/echo/iframe.htm", "/echo/iframe-X.html", "/echo/iframe.html.js"):
            self.assertEqual(self.c.fetch("GET", bad).status, 404, bad)

    # ---- session paths ------------------------------------------------------------------

    def test_bad_session_paths(self):
        for path in ("/echo/a.b/c/xhr", "/echo/a/c.d/xhr", "/echo//c/xhr", "/echo/a//xhr",
                     "/echo/a/b/nope", "/echo/a/b", "/echo/a/b/xhr/extra", "/echo/nothing"):
            self.assertEqual(self.c.fetch("POST", path).status, 404, path)

    def test_unknown_session_gets_404(self):
        for t in ("xhr_send", "jsonp_send"):
            r = self.c.fetch("POST", "/echo/000/%s/%s" % (sid(), t), '["x"]')
            self.assertEqual(r.status, 404, t)

    def test_methods(self):
        s = sid()
        self.assertEqual(self.c.fetch("GET", "/echo/000/%s/xhr" % s).status, 405)
        self.assertEqual(self.c.fetch("POST", "/echo/000/%s/eventsource" % s).status, 405)
        r = self.c.fetch("OPTIONS", "/echo/000/%s/xhr_streaming" % s)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["access-control-allow-methods"], "OPTIONS, POST")

    def test_websocket_path_without_upgrade(self):
        r = self.c.fetch("GET", "/echo/000/%s/websocket" % sid())
        self.assertEqual((r.status, r.body), (400, b'Can "Upgrade" only to "WebSocket".'))
        r = self.c.fetch("GET", "/echo/000/%s/websocket" % sid(),
                         headers={"Upgrade": "websocket", "Connection": "keep-alive"})
        self.assertEqual((r.status, r.body), (400, b'"Connection" must be "Upgrade".'))
        self.assertEqual(self.c.fetch("POST", "/echo/000/%s/websocket" % sid()).status, 405)
        self.assertEqual(self.c.fetch("GET", "/echo/websocket").status, 400)

    # ---- transports ---------------------------------------------------------------------

    def test_xhr_polling_and_send(self):
        base = "/echo/000/%s" % sid()
        r = self.c.fetch("POST", base + "/xhr", headers={"Origin": "http://a.test"})
        self.assertEqual((r.status, r.body), (200, b"o\n"))
        self.assertEqual(r.headers["content-type"], "application/javascript; charset=UTF-8")
        self.assertIn("no-store", r.headers["cache-control"])
        self.assertEqual(r.headers["access-control-allow-origin"], "http://a.test")
        self.assertNotIn("set-cookie", r.headers)
        r = self.c.fetch("POST", base + "/xhr_send", '["a", "b\\u00e9", "\\ud83d\\ude00"]')
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertEqual(r.headers["content-type"], "text/plain; charset=UTF-8")
        r = self.c.fetch("POST", base + "/xhr")
        self.assertEqual(r.body.decode(), 'a["a","b\u00e9","\\ud83d\\ude00"]\n')
        # A poll with nothing queued waits for the next message.
        poll = self.c.request("POST", base + "/xhr")
        time.sleep(0.2)
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '"single"').status, 204)
        self.assertEqual(poll.read_all(), b'a["single"]\n')
        poll.sock.close()

    def test_send_errors(self):
        base = "/echo/000/%s" % sid()
        self.c.fetch("POST", base + "/xhr")
        for body, want in ((b"", b"Payload expected."), (b'["a', b"Broken JSON encoding."),
                           (b"[1]", b"Broken JSON encoding."), (b'["a"] x', b"Broken JSON encoding."),
                           (b'["\xff"]', b"Broken JSON encoding.")):
            r = self.c.fetch("POST", base + "/xhr_send", body)
            self.assertEqual((r.status, r.body), (500, want), body)
        # The session is still fine.
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '["ok"]').status, 204)
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b'a["ok"]\n')

    def test_second_receiver_gets_2010(self):
        base = "/echo/000/%s" % sid()
        first = self.c.request("POST", base + "/xhr_streaming")
        self.assertTrue(first.read_until(lambda b: b.endswith(b"o\n")).endswith(b"o\n"))
        for t in ("xhr", "xhr_streaming"):
            r = self.c.fetch("POST", base + "/" + t)
            self.assertTrue(r.body.endswith(b'c[2010,"Another connection still open"]\n'), r.body[-60:])
        # The first one still receives.
        self.c.fetch("POST", base + "/xhr_send", '["still here"]')
        self.assertTrue(first.read_until(lambda b: b"still here" in b).endswith(b'a["still here"]\n'))
        first.sock.close()

    def test_xhr_streaming(self):
        base = "/echo/000/%s" % sid()
        r = self.c.request("POST", base + "/xhr_streaming")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "application/javascript; charset=UTF-8")
        body = r.read_until(lambda b: b.endswith(b"o\n"))
        self.assertEqual(body, b"h" * 2048 + b"\n" + b"o\n")
        self.c.fetch("POST", base + "/xhr_send", '["x</script>"]')
        self.assertTrue(r.read_until(lambda b: b.endswith(b"]\n")).endswith(b'a["x</script>"]\n'))
        r.sock.close()

    def test_eventsource(self):
        base = "/echo/000/%s" % sid()
        r = self.c.request("GET", base + "/eventsource")
        self.assertEqual(r.headers["content-type"], "text/event-stream; charset=UTF-8")
        self.assertEqual(r.read_until(lambda b: b.endswith(b"o\r\n\r\n")), b"\r\ndata: o\r\n\r\n")
        self.c.fetch("POST", base + "/xhr_send", '["m"]')
        self.assertTrue(r.read_until(lambda b: b.endswith(b']\r\n\r\n')).endswith(b'data: a["m"]\r\n\r\n'))
        r.sock.close()

    def test_htmlfile(self):
        base = "/echo/000/%s" % sid()
        self.assertEqual(self.c.fetch("GET", base + "/htmlfile").body, b'"callback" parameter required')
        r = self.c.fetch("GET", base + "/htmlfile?c=%3Cx%3E")
        self.assertEqual((r.status, r.body), (500, b'invalid "callback" parameter'))
        r = self.c.request("GET", base + "/htmlfile?c=window.cb_1")
        self.assertEqual(r.headers["content-type"], "text/html; charset=UTF-8")
        body = r.read_until(lambda b: b.endswith(b'p("o");\n</script>\r\n'))
        head, _, first = body.partition(b"\r\n\r\n")
        self.assertGreaterEqual(len(head), 1024)
        self.assertIn(b"var c = parent.window.cb_1;", head)
        self.assertEqual(first, b'<script>\np("o");\n</script>\r\n')
        self.c.fetch("POST", base + "/xhr_send", '["</script>"]')
        got = r.read_until(lambda b: b.count(b"</script>") >= 3)
        # A message cannot end the script element early.
        self.assertTrue(got.endswith(b'<script>\np("a[\\"\\u003c/script>\\"]");\n</script>\r\n'), got[-80:])
        r.sock.close()

    def test_jsonp(self):
        base = "/echo/000/%s" % sid()
        self.assertEqual(self.c.fetch("GET", base + "/jsonp").status, 500)
        r = self.c.fetch("GET", base + "/jsonp?c=callback")
        self.assertEqual(r.body, b'/**/callback("o");\r\n')
        self.assertEqual(r.headers["content-type"], "application/javascript; charset=UTF-8")
        r = self.c.fetch("POST", base + "/jsonp_send", "d=%5B%22x%20y%22%5D",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.body), (200, b"ok"))
        r = self.c.fetch("POST", base + "/jsonp_send", '["raw"]', headers={"Content-Type": "text/plain"})
        self.assertEqual((r.status, r.body), (200, b"ok"))
        r = self.c.fetch("POST", base + "/jsonp_send", "d=", headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.body), (500, b"Payload expected."))
        self.assertEqual(self.c.fetch("GET", base + "/jsonp?c=callback").body, b'/**/callback("a[\\"x y\\",\\"raw\\"]");\r\n')

    # ---- session life -------------------------------------------------------------------

    def test_closed_session_keeps_answering_with_its_close_frame(self):
        base = "/close/000/%s" % sid()
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b"o\n")
        for _ in range(2):
            self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b'c[3000,"Go away!"]\n')
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '["x"]').status, 404)
        r = self.c.request("POST", "/close/000/%s/xhr_streaming" % sid())
        self.assertTrue(r.read_all().endswith(b'o\nc[3000,"Go away!"]\n'))
        r.sock.close()

    def test_heartbeat(self):
        r = self.c.request("POST", "/tight/000/%s/xhr_streaming" % sid())
        r.read_until(lambda b: b.endswith(b"o\n"))
        t0 = time.time()
        body = r.read_until(lambda b: b.endswith(b"h\nh\n"), timeout=3 * SLOW)
        self.assertTrue(body.endswith(b"o\nh\nh\n"), body[-20:])
        self.assertGreater(time.time() - t0, 0.5)  # two 0.3 s intervals
        r.sock.close()
        # A poll with nothing to say ends with a heartbeat.
        base = "/tight/000/%s" % sid()
        self.c.fetch("POST", base + "/xhr")
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b"h\n")

    def test_disconnect_delay(self):
        s = sid()
        base = "/tight/000/%s" % s
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b"o\n")
        time.sleep(0.15)  # well inside the 0.5 s delay, even for a slow (sanitized) server
        # A request in time keeps it.
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '["x"]').status, 204)
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b'a["x"]\n')
        self.assertNotIn(s, [c["session"] for c in self.closes()])
        time.sleep(0.5 + 0.4 * SLOW)  # disconnect_delay 0.5 s
        mine = [c for c in self.closes() if c["session"] == s]
        self.assertEqual(mine, [{"session": s, "code": 1006, "reason": "session timed out"}])
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '["x"]').status, 404)

    def test_an_aborted_receiver_closes_the_session_with_1002(self):
        # What was written to a request the client aborted may never have arrived: the
        # session closes at once (the app hears 1002) and says so to the next request,
        # for every receiving transport, streaming or a poll left waiting.
        receivers = [("POST", "xhr_streaming", b"o\n"), ("GET", "eventsource", b"data: o\r\n\r\n"),
                     ("GET", "htmlfile?c=cb", b'p("o");\n</script>\r\n'), ("POST", "xhr", None)]
        for method, transport, opened in receivers:
            with self.subTest(transport=transport):
                s = sid()
                base = "/tight/000/%s/" % s
                if opened:
                    r = self.c.request(method, base + transport)
                    self.assertTrue(r.read_until(lambda b: b.endswith(opened)).endswith(opened))
                else:
                    self.assertEqual(self.c.fetch("POST", base + "xhr").body, b"o\n")
                    r = self.c.request("POST", base + "xhr")  # waits: nothing to say yet
                    time.sleep(0.1)
                if opened:  # a stream carries on after a message (a poll would end with it)
                    self.assertEqual(self.c.fetch("POST", base + "xhr_send", '["before"]').status, 204)
                    r.read_until(lambda b: b"before" in b)
                r.sock.close()
                deadline = time.time() + 2 * SLOW
                while time.time() < deadline and not [c for c in self.closes() if c["session"] == s]:
                    time.sleep(0.02)
                mine = [c for c in self.closes() if c["session"] == s]
                self.assertEqual(mine, [{"session": s, "code": 1002, "reason": "Connection interrupted"}])
                self.assertEqual(self.c.fetch("POST", base + "xhr").body, b'c[1002,"Connection interrupted"]\n')
                self.assertEqual(self.c.fetch("POST", base + "xhr_send", '["x"]').status, 404)

    def test_response_limit(self):
        base = "/tight/000/%s" % sid()
        r = self.c.request("POST", base + "/xhr_streaming")
        r.read_until(lambda b: b.endswith(b"o\n"))
        msg = "x" * 900
        for _ in range(6):
            self.assertEqual(self.c.fetch("POST", base + "/xhr_send", json.dumps([msg])).status, 204)
        body = r.read_all()
        r.sock.close()
        self.assertTrue(r.done, "the streaming response did not end at the limit")
        frames = body[2049:].split(b"\n")
        self.assertEqual(frames[0], b"o")
        # It ended with the frame that crossed 4096 bytes (the 5th); the 6th waits.
        got = sum(len(json.loads(f[1:])) for f in frames[1:] if f.startswith(b"a"))
        self.assertEqual(got, 5)
        self.assertGreaterEqual(len(body) - 2049, 4096)
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, json.dumps([msg]).replace(" ", "").encode().join([b"a", b"\n"]))

    def test_queue_bound(self):
        # The open handler sends 10 messages before any receiver; max_queue is 5.
        s = sid()
        base = "/tight/000/%s" % s
        self.assertEqual(self.c.fetch("POST", base + "/xhr?flood=1").body, b"o\n")
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b'a["m1","m2","m3","m4","m5"]\n')
        self.assertEqual(self.c.fetch("POST", base + "/xhr").body, b'c[1008,"slow consumer"]\n')
        self.assertIn({"session": s, "code": 1008, "reason": "slow consumer"}, self.closes())

    def test_message_size_bound(self):
        base = "/tight/000/%s" % sid()
        self.c.fetch("POST", base + "/xhr")
        r = self.c.fetch("POST", base + "/xhr_send", json.dumps(["y" * 1200]))
        self.assertEqual(r.status, 413)
        self.assertEqual(self.c.fetch("POST", base + "/xhr_send", '["small"]').status, 204)

    def test_cookie(self):
        base = "/tight/000/%s" % sid()
        r = self.c.fetch("POST", base + "/xhr")
        self.assertEqual(r.headers["set-cookie"], "JSESSIONID=dummy; path=/")
        r = self.c.fetch("POST", base + "/xhr_send", '["c"]', headers={"Cookie": "a=b; JSESSIONID=abc123"})
        self.assertEqual(r.headers["set-cookie"], "JSESSIONID=abc123; path=/")
        r = self.c.fetch("POST", base + "/xhr", headers={"Cookie": "JSESSIONID=bad\"value"})
        self.assertEqual(r.headers["set-cookie"], "JSESSIONID=dummy; path=/")

    def test_session_bound(self):
        time.sleep(0.6 + 0.5 * SLOW)  # sessions of other tests on /tight expire
        held, statuses = [], []
        for _ in range(25):
            r = self.c.request("POST", "/tight/000/%s/xhr_streaming" % sid())
            statuses.append(r.status)
            held.append(r)
        self.assertEqual(statuses.count(200), 20, statuses)
        self.assertEqual(statuses.count(503), 5, statuses)
        for r in held:
            r.sock.close()
        time.sleep(0.6 + 0.5 * SLOW)
        self.assertEqual(json.loads(self.c.fetch("GET", "/sessions/tight").body)["n"], 0)
        self.assertEqual(self.c.fetch("POST", "/tight/000/%s/xhr" % sid()).status, 200)


if __name__ == "__main__":
    unittest.main()
