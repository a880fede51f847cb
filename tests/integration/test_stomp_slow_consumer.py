"""A STOMP subscriber that stops reading is cut off in the middle of a fan-out, and nobody
else notices: the slow one's queued messages are dropped and it gets ERROR "slow consumer"
before its connection ends; the other subscriber gets every message in order, the
publisher's receipt comes, and the server keeps serving.

The slow session holds two subscriptions to the topic, one with the subscription id the
fast one uses too, so deliveries go through the shared wire frame of ack:auto fan-out, and
the walk meets the slow session again after it was cut off. Raw sockets over STOMP-over-TCP:
the slow client must be able to stop reading."""
import json
import os
import socket
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

MAX_OUTPUT = 65536
BODY = 16 * 1024
COUNT = 600            # ~9.6 MB: far more than the socket buffers and the bound together
WAIT = 10 * SLOW


def frame(command, headers, body=b""):
    head = command + "\n" + "".join("%s:%s\n" % kv for kv in headers.items())
    if body:
        head += "content-length:%d\n" % len(body)
    return head.encode() + b"\n" + body + b"\0"


class Reader:
    """Reads whole frames from a socket (content-length bodies or up to the NUL)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def next(self, timeout=WAIT):
        self.sock.settimeout(timeout)
        while True:
            self.buf = self.buf.lstrip(b"\r\n")          # heart-beats
            head_end = self.buf.find(b"\n\n")
            if head_end >= 0:
                lines = self.buf[:head_end].decode().split("\n")
                headers = dict(line.split(":", 1) for line in lines[1:])
                start = head_end + 2
                if "content-length" in headers:
                    end = start + int(headers["content-length"])
                    if len(self.buf) > end:
                        body, self.buf = self.buf[start:end], self.buf[end + 1:]
                        return lines[0], headers, body
                else:
                    nul = self.buf.find(b"\0", start)
                    if nul >= 0:
                        body, self.buf = self.buf[start:nul], self.buf[nul + 1:]
                        return lines[0], headers, body
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("connection closed")
            self.buf += data


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(frame("CONNECT", {"accept-version": "1.2", "host": "localhost", "heart-beat": "0,0"}))
    r = Reader(s)
    cmd, _, _ = r.next()
    assert cmd == "CONNECTED", cmd
    return s, r


def subscribe(sock, reader, sub_id, dest):
    sock.sendall(frame("SUBSCRIBE", {"id": sub_id, "destination": dest, "receipt": "r-" + sub_id}))
    cmd, headers, _ = reader.next()
    assert cmd == "RECEIPT" and headers["receipt-id"] == "r-" + sub_id, (cmd, headers)


class StompSlowConsumer(unittest.TestCase):
    def test_slow_session_is_cut_off_mid_walk(self):
        with Server("apps/stomp_app.lua", args=["--max-output", str(MAX_OUTPUT)]) as srv:
            with urllib.request.urlopen("http://127.0.0.1:%d/stomp" % srv.port, timeout=WAIT) as r:
                port = json.loads(r.read().decode())["tcp_port"]

            # The fast subscription sits between the slow session's two in the topic's
            # list, whichever end new ones join.
            slow, slow_r = connect(port, rcvbuf=4096)
            subscribe(slow, slow_r, "s", "/topic/bulk")
            fast, fast_r = connect(port)
            subscribe(fast, fast_r, "s", "/topic/bulk")
            subscribe(slow, slow_r, "s2", "/topic/bulk")

            got = {"n": 0, "in_order": True, "error": None}

            def read_fast():
                try:
                    while got["n"] < COUNT:
                        cmd, headers, body = fast_r.next()
                        if cmd != "MESSAGE":
                            continue
                        if int(body[:12]) != got["n"]:
                            got["in_order"] = False
                        got["n"] += 1
                except Exception as e:  # noqa: BLE001 (reported by the assertions below)
                    got["error"] = e

            t = threading.Thread(target=read_fast, daemon=True)
            t.start()
            pub, pub_r = connect(port)
            pad = b"p" * (BODY - 12)
            for i in range(COUNT):
                headers = {"destination": "/topic/bulk"}
                if i == COUNT - 1:
                    headers["receipt"] = "done"
                pub.sendall(frame("SEND", headers, b"%012d" % i + pad))
                # Stay near the fast reader, as a flow-controlled publisher would: the
                # fast subscriber must never look slow itself.
                deadline = time.monotonic() + WAIT
                while got["n"] < i - 8 and got["error"] is None and time.monotonic() < deadline:
                    time.sleep(0.001)
            cmd, headers, _ = pub_r.next()
            self.assertEqual((cmd, headers.get("receipt-id")), ("RECEIPT", "done"))
            t.join(WAIT)
            self.assertIsNone(got["error"])
            self.assertEqual(got["n"], COUNT)
            self.assertTrue(got["in_order"])

            # The slow one was cut off: what it can still read is some messages, then
            # ERROR "slow consumer", then the end of the connection.
            srv.wait_for_stderr(r"slow consumer", timeout=WAIT)
            last = None
            try:
                while True:
                    last = slow_r.next()
            except (EOFError, ConnectionResetError):
                pass
            self.assertIsNotNone(last)
            self.assertEqual((last[0], last[1].get("message")), ("ERROR", "slow consumer"))

            # And the server goes on: a new session subscribes and hears a publish.
            late, late_r = connect(port)
            subscribe(late, late_r, "x", "/topic/after")
            pub.sendall(frame("SEND", {"destination": "/topic/after"}, b"still here"))
            cmd, _, body = late_r.next()
            self.assertEqual((cmd, body), ("MESSAGE", b"still here"))
            for s in (slow, fast, pub, late):
                s.close()


if __name__ == "__main__":
    unittest.main()
