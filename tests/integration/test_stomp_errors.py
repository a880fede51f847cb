"""STOMP error cases from raw frames, over TCP and WebSocket: each bad frame gets an ERROR
frame with a message header and a text body, and then that connection (only) closes."""
import json
import os
import socket
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402
from wsraw import CLOSE, TEXT, connect, frame  # noqa: E402

WAIT = 3 * SLOW
CONNECT = b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0"


def parse_frame(buf):
    """(command, headers, body, rest) for one complete frame at the start of buf, or None.
    Heart-beat EOLs before it are skipped."""
    buf = buf.lstrip(b"\r\n")
    end = buf.find(b"\n\n")
    if end < 0:
        return None
    lines = buf[:end].decode().split("\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k, v.replace("\\c", ":").replace("\\n", "\n").replace("\\\\", "\\"))
    start = end + 2
    if "content-length" in headers:
        stop = start + int(headers["content-length"])
        if len(buf) <= stop:
            return None
        assert buf[stop:stop + 1] == b"\0", "no NUL after the body"
    else:
        stop = buf.find(b"\0", start)
        if stop < 0:
            return None
    return lines[0], headers, buf[start:stop], buf[stop + 1:]


class Tcp:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            f = parse_frame(self.buf)
            if f:
                self.buf = f[3]
                return f[:3]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame; have %r" % self.buf[:300])
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed; have %r" % self.buf[:300])
            self.buf += data

    def raw(self, timeout):
        """Bytes that arrive within timeout (stops early at EOF)."""
        deadline, out = time.monotonic() + timeout, b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            out += data
        return out

    def eof(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
        return False

    def close(self):
        self.sock.close()


class StompErrors(unittest.TestCase):
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/stomp_app.lua").start()
        with urllib.request.urlopen("http://127.0.0.1:%d/stomp" % cls.srv.port, timeout=WAIT) as r:
            cls.port = json.loads(r.read())["tcp_port"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def open(self, connect_frame=CONNECT):
        c = Tcp(self.port)
        self.addCleanup(c.close)
        if connect_frame:
            c.send(connect_frame)
            cmd, h, _ = c.frame()
            self.assertEqual(cmd, "CONNECTED", h)
        return c

    def assert_error(self, c, message, body_part=None, timeout=WAIT, **headers):
        cmd, h, body = c.frame(timeout)
        self.assertEqual(cmd, "ERROR", (h, body))
        self.assertEqual(h["message"], message, body)
        self.assertTrue(body.strip(), "an ERROR frame explains itself in its body")
        if body_part:
            self.assertIn(body_part, body.decode())
        for k, v in headers.items():
            self.assertEqual(h[k.replace("_", "-")], v)
        self.assertTrue(c.eof(), "the connection must close after ERROR")
        self.assert_server_fine()
        return h, body

    def assert_server_fine(self):
        """Only that connection is gone: a fresh client is served."""
        c = self.open()
        c.send(b"SUBSCRIBE\nid:ok\ndestination:/topic/fine\nreceipt:fine\n\n\0")
        cmd, h, _ = c.frame()
        self.assertEqual((cmd, h.get("receipt-id")), ("RECEIPT", "fine"))
        c.close()

    # -- CONNECT -----------------------------------------------------------------------
    def test_no_common_version(self):
        c = self.open(None)
        c.send(b"CONNECT\naccept-version:2.0,3.1\nhost:x\n\n\0")
        h, _ = self.assert_error(c, "no common protocol version", "2.0,3.1")
        self.assertEqual(h["version"], "1.0,1.1,1.2")

    def test_frame_before_connect(self):
        c = self.open(None)
        c.send(b"SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\0")
        self.assert_error(c, "not connected", "SUBSCRIBE")

    def test_login_refused(self):
        c = self.open(None)
        c.send(b"CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:nope\n\n\0")
        self.assert_error(c, "access refused", "wrong login or passcode")

    def test_stomp_1_0_client(self):
        c = self.open(None)
        c.send(b"CONNECT\n\n\0")                      # no accept-version: STOMP 1.0
        cmd, h, _ = c.frame()
        self.assertEqual((cmd, h["version"]), ("CONNECTED", "1.0"))
        c.send(b"SUBSCRIBE\ndestination:/topic/v10\n\n\0SEND\ndestination:/topic/v10\n\nold\0")
        cmd, h, body = c.frame()
        self.assertEqual((cmd, h["subscription"], body), ("MESSAGE", "/topic/v10", b"old"))
        c.send(b"NACK\nmessage-id:1\n\n\0")
        self.assert_error(c, "NACK needs STOMP 1.1")

    def test_connect_twice(self):
        c = self.open()
        c.send(CONNECT)
        self.assert_error(c, "already connected")

    def test_bad_heart_beat_header(self):
        c = self.open(None)
        c.send(b"CONNECT\naccept-version:1.2\nheart-beat:soon\n\n\0")
        self.assert_error(c, "bad heart-beat header")

    def test_no_connect_in_time(self):
        c = self.open(None)
        t0 = time.monotonic()
        self.assert_error(c, "no CONNECT frame in time", timeout=2 * WAIT)
        self.assertGreater(time.monotonic() - t0, 2.5)  # the app's connect_timeout is 3 s

    # -- malformed frames --------------------------------------------------------------
    def test_unknown_command(self):
        c = self.open()
        c.send(b"FLY\ndestination:/topic/x\n\n\0")
        self.assert_error(c, "malformed frame")

    def test_bad_escape(self):
        c = self.open()
        c.send(b"SEND\ndestination:/topic/x\nbad:\\t\n\nbody\0")
        self.assert_error(c, "malformed frame", "escape")

    def test_send_without_destination_keeps_receipt(self):
        c = self.open()
        c.send(b"SEND\nreceipt:77\n\nbody\0")
        self.assert_error(c, "missing header", "destination", receipt_id="77")

    def test_body_on_subscribe(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:1\ndestination:/topic/x\n\nnot allowed\0")
        self.assert_error(c, "unexpected body")

    def test_unknown_destination_prefix(self):
        c = self.open()
        c.send(b"SEND\ndestination:/elsewhere/x\n\nhi\0")
        self.assert_error(c, "unknown destination", "/topic/")

    def test_bad_ack_mode(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:1\ndestination:/topic/x\nack:sometimes\n\n\0")
        self.assert_error(c, "bad ack mode")

    def test_duplicate_subscription_id(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/y\n\n\0")
        self.assert_error(c, "duplicate subscription id")

    def test_pattern_on_a_queue(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:1\ndestination:/queue/*\n\n\0")
        self.assert_error(c, "bad destination", "topics only")

    def test_server_frame_from_client(self):
        c = self.open()
        c.send(b"MESSAGE\ndestination:/topic/x\n\n\0")
        self.assert_error(c, "not a client frame")

    def test_oversize_frame(self):
        c = self.open()
        body = b"x" * (64 * 1024 + 1)   # the app allows 64 KiB bodies
        c.send(b"SEND\ndestination:/topic/big\n\n" + body + b"\0")
        self.assert_error(c, "frame too large")

    def test_oversize_content_length(self):
        c = self.open()
        c.send(b"SEND\ndestination:/topic/big\ncontent-length:999999999\n\n")
        self.assert_error(c, "frame too large")

    # -- acknowledgements and transactions ---------------------------------------------
    def test_ack_unknown_subscription(self):
        c = self.open(b"CONNECT\naccept-version:1.1\nhost:x\n\n\0")
        c.send(b"ACK\nsubscription:nope\nmessage-id:1\n\n\0")
        self.assert_error(c, "unknown subscription", "nope")

    def test_ack_unknown_id(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:s\ndestination:/queue/ack-unknown\nack:client\n\n\0ACK\nid:424242\n\n\0")
        self.assert_error(c, "unknown ack id", "424242")

    def test_ack_on_auto_subscription(self):
        c = self.open()
        c.send(b"SUBSCRIBE\nid:s\ndestination:/queue/auto-ack\n\n\0SEND\ndestination:/queue/auto-ack\n\nm\0")
        cmd, h, body = c.frame()
        self.assertEqual((cmd, body), ("MESSAGE", b"m"))
        self.assertNotIn("ack", h)
        c.send(b"ACK\nid:1\n\n\0")
        self.assert_error(c, "unknown ack id")

    def test_unknown_transaction(self):
        c = self.open()
        c.send(b"COMMIT\ntransaction:never-begun\n\n\0")
        self.assert_error(c, "unknown transaction")

    def test_unsubscribe_unknown(self):
        c = self.open()
        c.send(b"UNSUBSCRIBE\nid:ghost\n\n\0")
        self.assert_error(c, "unknown subscription")

    def test_no_handler_for_app_destination(self):
        c = self.open()
        c.send(b"SEND\ndestination:/app/nothing-here\n\nx\0")
        self.assert_error(c, "no handler", "/app/nothing-here")

    def test_frames_pipelined_behind_connect(self):
        # With an auth function that answers at once, and one that yields first: the
        # frames that came with CONNECT wait for it and then run in order.
        for login in (b"", b"login:slow\npasscode:x\n"):
            c = self.open(None)
            c.send(b"CONNECT\naccept-version:1.2\n" + login + b"\n\0"
                   b"SUBSCRIBE\nid:e\ndestination:/user/queue/echo\n\n\0"
                   b"SEND\ndestination:/app/echo\n\npipelined\0")
            self.assertEqual(c.frame()[0], "CONNECTED")
            cmd, h, body = c.frame()
            self.assertEqual((cmd, body), ("MESSAGE", b"echo: pipelined"), login)

    # -- heart-beats -------------------------------------------------------------------
    def test_heart_beat_timeout_closes(self):
        # We promise a beat every 100 ms; the server wants one every 200 ms (its own
        # minimum), and gives up after 1.5 times that.
        c = self.open(b"CONNECT\naccept-version:1.2\nheart-beat:100,0\n\n\0")
        t0 = time.monotonic()
        self.assert_error(c, "heart-beat timeout")
        self.assertLess(time.monotonic() - t0, 2.0 * SLOW)

    def test_heart_beats_keep_it_open_and_the_server_sends_them(self):
        c = Tcp(self.port)
        self.addCleanup(c.close)
        c.send(b"CONNECT\naccept-version:1.2\nheart-beat:100,300\n\n\0")
        cmd, h, _ = c.frame()
        self.assertEqual(cmd, "CONNECTED")
        self.assertEqual(h["heart-beat"], "300,200")  # we send every 300 ms, want every 200
        got = b""
        for _ in range(8):          # 1.2 s of beating every 150 ms
            c.send(b"\n")
            got += c.raw(0.15)
        self.assertGreaterEqual(got.count(b"\n"), 3, got)
        self.assertEqual(got.strip(b"\n"), b"", "only heart-beats arrive")
        c.send(b"SUBSCRIBE\nid:1\ndestination:/topic/hb\nreceipt:alive\n\n\0")
        cmd, h, _ = c.frame()
        self.assertEqual((cmd, h["receipt-id"]), ("RECEIPT", "alive"))

    # -- over WebSocket ----------------------------------------------------------------
    def ws(self):
        conn, status, headers, body = connect(self.srv.port, "/ws", timeout=WAIT,
                                              headers={"Sec-WebSocket-Protocol": "v12.stomp, v11.stomp"})
        self.addCleanup(conn.close)
        self.assertEqual(status, 101, body)
        self.assertEqual(headers["sec-websocket-protocol"], "v12.stomp")
        return conn

    def test_websocket_session_and_error(self):
        conn = self.ws()
        conn.send(frame(TEXT, CONNECT))
        f = conn.read_frame()
        self.assertEqual(parse_frame(f.payload)[0], "CONNECTED")
        # Two frames in one message, and one frame split over two messages.
        conn.send(frame(TEXT, b"SUBSCRIBE\nid:a\ndestination:/topic/wsraw\n\n\0SEND\ndestination:/top"))
        conn.send(frame(TEXT, b"ic/wsraw\n\nsplit\0"))
        cmd, h, body, _ = parse_frame(conn.read_frame().payload)
        self.assertEqual((cmd, h["subscription"], body), ("MESSAGE", "a", b"split"))
        conn.send(frame(TEXT, b"ACK\nid:9\n\n\0"))
        f = conn.read_frame()
        self.assertEqual(f.opcode, TEXT)
        cmd, h, body, _ = parse_frame(f.payload)
        self.assertEqual((cmd, h["message"]), ("ERROR", "unknown ack id"))
        close, _ = conn.read_close()
        self.assertEqual(close.opcode, CLOSE)
        self.assertEqual(close.close_code, 1002)
        self.assert_server_fine()

    def test_websocket_binary_body_goes_as_binary_frame(self):
        conn = self.ws()
        conn.send(frame(TEXT, CONNECT))
        conn.read_frame()
        conn.send(frame(TEXT, b"SUBSCRIBE\nid:b\ndestination:/topic/bin\nreceipt:r\n\n\0"))
        conn.read_frame()
        t = Tcp(self.port)
        self.addCleanup(t.close)
        t.send(CONNECT)
        t.frame()
        t.send(b"SEND\ndestination:/topic/bin\ncontent-length:3\n\n\xff\x00\xfe\0")
        f = conn.read_frame()
        self.assertEqual(f.opcode, 2)  # not valid UTF-8: a binary WebSocket message
        cmd, h, body, _ = parse_frame(f.payload)
        self.assertEqual((cmd, body, h["content-type"]), ("MESSAGE", b"\xff\x00\xfe", "application/octet-stream"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
