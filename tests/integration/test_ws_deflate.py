"""permessage-deflate (RFC 7692) against the real binary: raw sockets for the wire format
and every broken case, python3-websockets (which offers it by default) for a real peer."""
import asyncio
import json
import os
import sys
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import ASAN, SLOW, Server  # noqa: E402
from wsraw import CLOSE, CONT, PING, PONG, TEXT, BINARY, close_payload, connect, frame  # noqa: E402

import websockets  # noqa: E402
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402

MAX_MESSAGE = 65536
OFFER = "permessage-deflate; client_max_window_bits"  # what chromium, ws and websockets send
CHEAP = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
JSON = json.dumps({"type": "order", "id": 12345, "symbol": "ACME", "side": "buy",
                   "lines": [{"sku": "sku-%d" % i, "qty": i, "price": 10.5 + i} for i in range(30)]})


def deflate(data, wbits=15, compressor=None):
    """Raw deflate as a client sends it: sync flush, the 00 00 ff ff dropped."""
    c = compressor or zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload, decompressor=None):
    d = decompressor or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


class Base(unittest.TestCase):
    srv = None
    args = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/echo.lua", args=["--max-message", str(MAX_MESSAGE), "--ws-ping", "0"]
                         + cls.args).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def open(self, path="/echo", offer=OFFER, expect=CHEAP):
        headers = {"Sec-WebSocket-Extensions": offer} if offer else None
        conn, status, rh, body = connect(self.srv.port, path, headers=headers, timeout=5 * SLOW)
        self.addCleanup(conn.close)
        self.assertEqual(status, 101, body)
        self.assertEqual(rh.get("sec-websocket-extensions"), expect)
        if path == "/echo":
            self.assertEqual(conn.read_frame().payload, b"hello -")
        return conn

    def assert_failed_with(self, conn, code):
        try:
            f, _ = conn.read_close()
        except EOFError:
            self.fail("the TCP connection ended without a close frame (expected %d)" % code)
        self.assertEqual(f.close_code, code, f.payload)
        self.assertTrue(conn.wait_eof(), "the server kept the TCP connection open")

    def assert_fresh_client_works(self):
        conn = self.open()
        conn.send(frame(TEXT, deflate(JSON.encode()), rsv=4))
        f = conn.read_frame()
        self.assertEqual((f.rsv, inflate(f.payload)), (4, JSON.encode()))


class WireFormat(Base):
    def test_compressed_echo_both_ways(self):
        conn = self.open()
        sent = deflate(JSON.encode())
        self.assertLess(len(sent), len(JSON) / 2)
        conn.send(frame(TEXT, sent, rsv=4))  # rsv=4: RSV1
        f = conn.read_frame()
        self.assertEqual((f.opcode, f.rsv, f.fin), (TEXT, 4, True))
        self.assertLess(len(f.payload), len(JSON) / 2)
        self.assertEqual(inflate(f.payload), JSON.encode())
        # every message starts from scratch (server_no_context_takeover): the same bytes again
        conn.send(frame(TEXT, sent, rsv=4))
        self.assertEqual(conn.read_frame().payload, f.payload)

    def test_small_messages_go_uncompressed_and_plain_frames_are_accepted(self):
        conn = self.open()
        conn.send(frame(TEXT, deflate(b"short"), rsv=4))
        f = conn.read_frame()
        self.assertEqual((f.rsv, f.payload), (0, b"short"))  # under --ws-deflate-min
        conn.send(frame(TEXT, JSON))  # a client may send any message uncompressed
        f = conn.read_frame()
        self.assertEqual((f.rsv, inflate(f.payload)), (4, JSON.encode()))

    def test_empty_compressed_message(self):
        conn = self.open()
        conn.send(frame(BINARY, b"\x00", rsv=4))
        f = conn.read_frame()
        self.assertEqual((f.opcode, f.rsv, f.payload), (BINARY, 0, b""))

    def test_fragmented_compressed_message_with_a_ping_between(self):
        conn = self.open()
        z = deflate(JSON.encode())
        third = len(z) // 3
        conn.send(frame(TEXT, z[:third], fin=False, rsv=4))  # RSV1 on the first frame only
        conn.send(frame(PING, b"mid"))
        conn.send(frame(CONT, z[third:2 * third], fin=False))
        conn.send(frame(CONT, z[2 * third:]))
        # the pong and the echo, in either order (all four frames may come in one read)
        got = {f.opcode: f for f in (conn.read_frame(), conn.read_frame())}
        self.assertEqual((got[PONG].rsv, got[PONG].payload), (0, b"mid"))
        self.assertEqual(inflate(got[TEXT].payload), JSON.encode())

    def test_client_window_sizes(self):
        for bits in (8, 9, 12):
            conn = self.open(offer="permessage-deflate; client_max_window_bits=%d" % bits)
            conn.send(frame(TEXT, deflate(JSON.encode() * 3, wbits=max(bits, 9)), rsv=4))
            self.assertEqual(inflate(conn.read_frame().payload), JSON.encode() * 3)

    def test_server_window_size_is_honoured(self):
        conn = self.open(offer="permessage-deflate; server_max_window_bits=9",
                         expect=CHEAP + "; server_max_window_bits=9")
        # repeats 1 KiB apart: a 15-bit window would refer back, a 9-bit one must not
        text = ("".join(chr(97 + (i * 7) % 26) for i in range(1024)) * 6).encode()
        conn.send(frame(TEXT, deflate(text), rsv=4))
        f = conn.read_frame()
        self.assertEqual(f.rsv, 4)
        self.assertEqual(zlib.decompressobj(-9).decompress(f.payload + b"\x00\x00\xff\xff"), text)

    def test_fan_out_shares_one_compressed_frame(self):
        subs = [self.open("/sub/dfl", offer=o, expect=e) for o, e in
                ((OFFER, CHEAP), (OFFER, CHEAP), (None, None))]
        for s in subs:
            self.assertEqual(s.read_frame().payload, b"subscribed dfl")
        pub = self.open("/pub/dfl", offer=None, expect=None)
        pub.send(frame(TEXT, JSON))
        self.assertEqual(pub.read_frame().payload, b"delivered 3")
        a, b, plain = (s.read_frame() for s in subs)
        self.assertEqual((a.rsv, b.rsv, plain.rsv), (4, 4, 0))
        self.assertEqual(a.payload, b.payload)
        self.assertEqual(inflate(a.payload), JSON.encode())
        self.assertEqual(plain.payload, JSON.encode())


class Declined(Base):
    def test_no_offer_and_rsv1_is_a_protocol_error(self):
        conn = self.open(offer=None, expect=None)
        conn.send(frame(TEXT, deflate(JSON.encode()), rsv=4))
        self.assert_failed_with(conn, 1002)
        self.assert_fresh_client_works()

    def test_bad_offers_are_declined(self):
        for offer in ("permessage-deflate; server_max_window_bits=8",
                      "permessage-deflate; mystery=1", "x-webkit-deflate-frame",
                      "permessage-deflate; client_no_context_takeover; client_no_context_takeover"):
            conn = self.open(offer=offer, expect=None)
            conn.send(frame(TEXT, JSON))
            self.assertEqual(conn.read_frame().payload, JSON.encode())

    def test_endpoint_without_deflate(self):
        conn = self.open("/plain", expect=None)
        conn.send(frame(TEXT, JSON))
        f = conn.read_frame()
        self.assertEqual((f.rsv, f.payload), (0, JSON.encode()))


class Broken(Base):
    def test_corrupt_stream_is_1007(self):
        conn = self.open()
        conn.send(frame(TEXT, b"\xff\xff\xff\xff\x00", rsv=4))
        self.assert_failed_with(conn, 1007)
        self.assert_fresh_client_works()

    def test_invalid_utf8_inside_compressed_text_is_1007(self):
        conn = self.open()
        conn.send(frame(TEXT, deflate(b"ok \xc3\x28 not utf-8" * 40), rsv=4))
        self.assert_failed_with(conn, 1007)
        # binary messages are not text
        conn = self.open()
        conn.send(frame(BINARY, deflate(b"ok \xc3\x28 not utf-8" * 40), rsv=4))
        self.assertEqual(inflate(conn.read_frame().payload), b"ok \xc3\x28 not utf-8" * 40)

    def test_rsv1_on_a_continuation_or_control_frame_is_1002(self):
        conn = self.open()
        z = deflate(JSON.encode())
        conn.send(frame(TEXT, z[:10], fin=False, rsv=4))
        conn.send(frame(CONT, z[10:], rsv=4))
        self.assert_failed_with(conn, 1002)
        conn = self.open()
        conn.send(frame(PING, b"x", rsv=4))
        self.assert_failed_with(conn, 1002)

    def test_bomb_stops_at_max_message(self):
        """60 MB of zeros in a 58 KiB frame: the server stops inflating at 64 KiB."""
        bomb = deflate(b"\0" * (60 << 20))
        self.assertLess(len(bomb), MAX_MESSAGE)
        before = self.hwm_kib()
        for _ in range(3):
            conn = self.open()
            conn.send(frame(BINARY, bomb, rsv=4))
            self.assert_failed_with(conn, 1009)
        self.srv.wait_for_stderr(r"inflates past 65536 bytes; closing 1009")
        if not ASAN:
            self.assertLess(self.hwm_kib() - before, 8 * 1024, "the server inflated far past the limit")
        self.assert_fresh_client_works()

    def test_inflated_size_counts_against_max_message(self):
        conn = self.open()
        conn.send(frame(TEXT, deflate(b"a" * (MAX_MESSAGE + 1)), rsv=4))
        self.assert_failed_with(conn, 1009)
        conn = self.open()
        conn.send(frame(TEXT, deflate(b"a" * MAX_MESSAGE), rsv=4))
        self.assertEqual(len(inflate(conn.read_frame().payload)), MAX_MESSAGE)

    def hwm_kib(self):
        with open("/proc/%d/status" % self.srv.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])


class Off(Base):
    args = ["--ws-deflate", "off"]

    def test_offers_are_declined_when_off(self):
        conn = self.open(expect=None)
        conn.send(frame(TEXT, deflate(JSON.encode()), rsv=4))
        self.assert_failed_with(conn, 1002)


class Takeover(Base):
    # room for one connection with both contexts (~300 KiB), not two
    args = ["--ws-deflate-takeover", "400000"]

    def test_context_takeover_within_the_budget(self):
        first = self.open(offer="permessage-deflate", expect="permessage-deflate")
        comp, decomp = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
        sizes = []
        for _ in range(2):
            first.send(frame(TEXT, deflate(JSON.encode(), compressor=comp), rsv=4))
            f = first.read_frame()
            self.assertEqual(inflate(f.payload, decomp), JSON.encode())
            sizes.append(len(f.payload))
        self.assertLess(sizes[1], sizes[0] / 4, "the server did not use its context")
        # the budget is spent: the next connection gets the cheap terms
        second = self.open(offer="permessage-deflate")
        second.send(frame(TEXT, deflate(JSON.encode()), rsv=4))
        self.assertEqual(inflate(second.read_frame().payload), JSON.encode())
        # a client that asks for no server context costs only its inflater: that still fits
        third = self.open(offer="permessage-deflate; server_no_context_takeover",
                          expect="permessage-deflate; server_no_context_takeover")
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        for _ in range(2):
            third.send(frame(TEXT, deflate(JSON.encode(), compressor=comp), rsv=4))
            self.assertEqual(inflate(third.read_frame().payload), JSON.encode())
        # the first one leaving gives its share back
        first.send(frame(CLOSE, close_payload(1000)))
        first.read_close()
        first.wait_eof()
        self.open(offer="permessage-deflate", expect="permessage-deflate")


class PythonWebsockets(Base):
    """python3-websockets offers permessage-deflate by default."""

    def run_async(self, coro):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    def test_default_client(self):
        async def go():
            url = "ws://127.0.0.1:%d/echo" % self.srv.port
            async with websockets.connect(url) as ws:
                self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"), CHEAP)
                self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
                self.assertEqual(await ws.recv(), "hello -")
                for msg in (JSON, "tiny", JSON + " ünïcödé ✓", JSON * 20):
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg)
                await ws.send(JSON.encode())
                self.assertEqual(await ws.recv(), JSON.encode())
        self.run_async(go())

    def test_each_negotiation_variant(self):
        variants = [
            ({}, CHEAP),
            ({"server_no_context_takeover": True}, CHEAP),
            ({"client_no_context_takeover": True}, CHEAP),
            ({"server_max_window_bits": 10}, CHEAP + "; server_max_window_bits=10"),
            ({"client_max_window_bits": 9}, CHEAP),
        ]

        async def go():
            url = "ws://127.0.0.1:%d/echo" % self.srv.port
            for params, want in variants:
                ext = ClientPerMessageDeflateFactory(**params)
                async with websockets.connect(url, extensions=[ext], compression=None) as ws:
                    self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"), want, params)
                    await ws.recv()
                    for _ in range(3):
                        await ws.send(JSON)
                        self.assertEqual(await ws.recv(), JSON)
            async with websockets.connect(url, compression=None) as ws:
                self.assertIsNone(ws.response_headers.get("Sec-WebSocket-Extensions"))
        self.run_async(go())

    def test_fan_out_to_compressing_and_plain_subscribers(self):
        async def go():
            base = "ws://127.0.0.1:%d" % self.srv.port
            subs = [await websockets.connect(base + "/sub/py", compression=c)
                    for c in ("deflate", "deflate", None)]
            for s in subs:
                self.assertEqual(await s.recv(), "subscribed py")
            async with websockets.connect(base + "/pub/py") as pub:
                for i in range(5):
                    await pub.send(JSON + str(i))
                    self.assertEqual(await pub.recv(), "delivered 3")
            for s in subs:
                for i in range(5):
                    self.assertEqual(await s.recv(), JSON + str(i))
                await s.close()
        self.run_async(go())


if __name__ == "__main__":
    unittest.main(verbosity=2)
