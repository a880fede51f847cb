"""The SockJS websocket transport over WebSocket draft 76 ("hixie-76"), from raw sockets,
against apps/sockjs_reference.lua (hixie76 = true on /echo and /close, off elsewhere).

The handshake answer comes only once the client's 8 bytes arrive, after the response
headers (as HAProxy needs); frames are 0x00 text 0xFF, 0xFF 0x00 closes."""
import hashlib
import os
import socket
import struct
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

TIMEOUT = 3.0 * SLOW
# The draft's own example (draft-hixie-thewebsocketprotocol-76, section 1.3).
KEY1, KEY2, KEY3 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8", "1_ tx7X d  <  nw  334J702) 7]o}` 0", b"Tm[K T2u"
ANSWER = b"fQJ,fN/4F4!~K~MH"


def answer(key1, key2, key3):
    def value(k):
        return int("".join(ch for ch in k if ch.isdigit())) // k.count(" ")
    return hashlib.md5(struct.pack(">II", value(key1), value(key2)) + key3).digest()


class Conn:
    def __init__(self, port, path, key1=KEY1, key2=KEY2, origin="http://example.com"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        head = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
                "Origin: %s\r\nSec-WebSocket-Key1: %s\r\nSec-WebSocket-Key2: %s\r\n\r\n"
                % (path, port, origin, key1, key2))
        self.s.sendall(head.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("closed; have %r" % self.buf)
        self.buf += d

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def frame(self):
        """The next frame: text, or None for the close frame."""
        while len(self.buf) < 2 or (self.buf[0] == 0 and b"\xff" not in self.buf):
            self._fill()
        if self.buf[:2] == b"\xff\x00":
            self.buf = self.buf[2:]
            return None
        assert self.buf[0] == 0, self.buf[:20]
        end = self.buf.index(b"\xff")
        text, self.buf = self.buf[1:end].decode(), self.buf[end + 1:]
        return text

    def send(self, text):
        self.s.sendall(b"\x00" + text.encode() + b"\xff")

    def eof(self):
        try:
            while True:
                self.buf = b""
                self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False


class Hixie76(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/sockjs_reference.lua").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def path(self, prefix="/echo"):
        return "%s/000/%s/websocket" % (prefix, uuid.uuid4())

    def open(self, prefix="/echo"):
        c = Conn(self.srv.port, self.path(prefix))
        self.addCleanup(c.s.close)
        self.assertEqual(c.status, 101)
        c.s.sendall(KEY3)
        self.assertEqual(c.read(16), ANSWER)
        return c

    def test_the_drafts_example_and_the_headers(self):
        self.assertEqual(answer(KEY1, KEY2, KEY3), ANSWER)
        path = self.path()
        c = Conn(self.srv.port, path)
        self.addCleanup(c.s.close)
        self.assertEqual(c.status, 101)
        self.assertEqual(c.headers["upgrade"], "WebSocket")
        self.assertEqual(c.headers["connection"], "Upgrade")
        self.assertEqual(c.headers["sec-websocket-origin"], "http://example.com")
        self.assertEqual(c.headers["sec-websocket-location"], "ws://127.0.0.1:%d%s" % (self.srv.port, path))
        self.assertNotIn("content-length", c.headers)
        # Nothing comes before the client's 8 bytes; they may come in pieces.
        c.s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            c._fill()
        c.s.settimeout(TIMEOUT)
        c.s.sendall(KEY3[:3])
        c.s.sendall(KEY3[3:] + b"\x00[\"early\"]\xff")
        self.assertEqual(c.read(16), ANSWER)
        self.assertEqual(c.frame(), "o")
        self.assertEqual(c.frame(), 'a["early"]')

    def test_echo_empty_frames_and_the_close_handshake(self):
        c = self.open()
        self.assertEqual(c.frame(), "o")
        c.send("")
        c.send("[]")
        c.send('["a","ü 你好"]')
        self.assertEqual(c.frame(), 'a["a","ü 你好"]')
        c.s.sendall(b"\xff\x00")
        self.assertIsNone(c.frame())
        self.assertTrue(c.eof())

    def test_the_server_closes(self):
        c = self.open("/close")
        self.assertEqual(c.frame(), "o")
        self.assertEqual(c.frame(), 'c[3000,"Go away!"]')
        self.assertIsNone(c.frame())
        self.assertTrue(c.eof())

    def test_broken_json_binary_frames_and_bad_utf8_end_the_connection(self):
        for bad in (b'\x00["a\xff', b"\x80\x03abc", b"\x00\xc3\x28\xff", b"\xff\x01"):
            with self.subTest(bad=bad):
                c = self.open()
                self.assertEqual(c.frame(), "o")
                c.s.sendall(bad)
                self.assertIsNone(c.frame())
                self.assertTrue(c.eof())
        # The server still serves.
        c = self.open()
        self.assertEqual(c.frame(), "o")

    def test_bad_keys_and_endpoints_without_it_are_refused(self):
        for key1 in ("nospaces12", "1 2 3 4", "99999999999 "):  # no spaces, 1234/3 inexact, over 32 bits
            with self.subTest(key1=key1):
                c = Conn(self.srv.port, self.path(), key1=key1)
                c.s.close()
                self.assertEqual(c.status, 400)
        c = Conn(self.srv.port, self.path("/cookie_needed_echo"))
        c.s.close()
        self.assertEqual(c.status, 400)


if __name__ == "__main__":
    unittest.main()
