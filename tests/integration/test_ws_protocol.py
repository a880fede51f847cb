"""RFC 6455 from raw sockets: the opening handshake and every way a client can break the
framing rules. After each broken connection the server must still serve a fresh client."""
import base64
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402
from wsraw import (BINARY, CLOSE, CONT, PING, PONG, TEXT, accept_key, close_payload,  # noqa: E402
                   connect, frame)

MAX_MESSAGE = 65536


class Base(unittest.TestCase):
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/echo.lua", args=["--max-message", str(MAX_MESSAGE), "--ws-ping", "0"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def open(self, path="/echo", **kw):
        """A connection through the handshake, with the app's greeting read."""
        conn, status, headers, body = connect(self.srv.port, path, timeout=5 * SLOW, **kw)
        self.addCleanup(conn.close)
        self.assertEqual(status, 101, body)
        if path == "/echo":
            hello = conn.read_frame()
            self.assertEqual((hello.opcode, hello.payload), (TEXT, b"hello -"))
        return conn

    def assert_echo(self, conn, opcode, payload):
        conn.send(frame(opcode, payload))
        f = conn.read_frame()
        self.assertFalse(f.masked, "server frames must not be masked")
        self.assertTrue(f.fin)
        self.assertEqual(f.rsv, 0)
        self.assertEqual(f.opcode, opcode)
        self.assertEqual(f.payload, payload if isinstance(payload, bytes) else payload.encode())

    def assert_fresh_client_works(self):
        conn = self.open()
        self.assert_echo(conn, TEXT, "still serving")
        conn.send(frame(CLOSE, close_payload(1000)))
        f, _ = conn.read_close()
        self.assertEqual(f.close_code, 1000)

    def assert_failed_with(self, conn, code):
        """The server sends a close frame with `code`, then closes the TCP connection."""
        try:
            f, before = conn.read_close()
        except EOFError:
            self.fail("the server dropped the TCP connection without a close frame (expected %d)" % code)
        except TimeoutError:
            self.fail("no close frame from the server (expected %d)" % code)
        self.assertEqual(f.close_code, code, "close frame %r after %r" % (f, before))
        self.assertFalse(f.masked)
        self.assertTrue(conn.wait_eof(timeout=6 * SLOW), "TCP connection left open after close %d" % code)
        self.assert_fresh_client_works()


class Handshake(Base):
    def test_rfc_example_key(self):
        conn, status, headers, _ = connect(self.srv.port, "/echo", key="dGhlIHNhbXBsZSBub25jZQ==")
        self.addCleanup(conn.close)
        self.assertEqual(status, 101)
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(headers["upgrade"].lower(), "websocket")
        self.assertIn("upgrade", headers["connection"].lower())
        self.assertNotIn("sec-websocket-protocol", headers)
        f = conn.read_frame()
        self.assertEqual((f.opcode, f.payload, f.masked), (TEXT, b"hello -", False))

    def test_accept_key_for_random_keys(self):
        for _ in range(5):
            conn, status, headers, _ = connect(self.srv.port, "/echo")
            self.assertEqual(status, 101)
            self.assertEqual(headers["sec-websocket-accept"], accept_key(conn.key))
            conn.close()

    def test_header_variants_browsers_send(self):
        # Firefox: "Connection: keep-alive, Upgrade"; tokens are case-insensitive.
        conn, status, _, _ = connect(self.srv.port, "/echo", headers={
            "Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"})
        conn.close()
        self.assertEqual(status, 101)

    def test_wrong_version_is_426_naming_13(self):
        for version in ("8", "12", "14", "", None):
            conn, status, headers, _ = connect(self.srv.port, "/echo", headers={"Sec-WebSocket-Version": version})
            conn.close()
            self.assertEqual(status, 426, "version %r" % version)
            self.assertEqual(headers.get("sec-websocket-version"), "13", "version %r" % version)
        self.assert_fresh_client_works()

    def test_bad_key_is_400(self):
        keys = ["abc", base64.b64encode(os.urandom(15)).decode(), base64.b64encode(os.urandom(17)).decode(),
                "!!!!!!!!!!!!!!!!!!!!!!==", "", None]
        for key in keys:
            conn, status, _, _ = connect(self.srv.port, "/echo", headers={"Sec-WebSocket-Key": key})
            conn.close()
            self.assertEqual(status, 400, "key %r" % key)
        self.assert_fresh_client_works()

    def test_missing_connection_upgrade_is_refused(self):
        # Without "Connection: Upgrade" it is not a handshake (RFC 6455 4.2.1): never a 101.
        conn, status, _, _ = connect(self.srv.port, "/echo", headers={"Connection": "keep-alive"})
        conn.close()
        self.assertIn(status, (400, 404, 426))

    def test_upgrade_by_post_is_refused(self):
        conn, status, _, _ = connect(self.srv.port, "/echo", method="POST")
        conn.close()
        self.assertIn(status, (400, 405))

    def test_origin_allow_list(self):
        for origin in ("http://evil.example", "http://good.example.evil", "null", None):
            conn, status, _, _ = connect(self.srv.port, "/origin", headers={"Origin": origin})
            conn.close()
            self.assertEqual(status, 403, "origin %r" % origin)
        for origin in ("http://good.example", "https://also.good.example"):
            conn = self.open("/origin", headers={"Origin": origin})
            f = conn.read_frame()
            self.assertEqual(f.payload, b"origin ok")
        self.assert_fresh_client_works()

    def test_subprotocol_negotiation(self):
        conn, status, headers, _ = connect(self.srv.port, "/proto",
                                           headers={"Sec-WebSocket-Protocol": "a, v12.stomp"})
        self.addCleanup(conn.close)
        self.assertEqual(status, 101)
        self.assertEqual(headers.get("sec-websocket-protocol"), "v12.stomp")
        self.assertEqual(conn.read_frame().payload, b"protocol v12.stomp")

        conn, status, headers, _ = connect(self.srv.port, "/proto")
        self.addCleanup(conn.close)
        self.assertEqual(status, 101)
        self.assertNotIn("sec-websocket-protocol", headers)
        self.assertEqual(conn.read_frame().payload, b"protocol -")

        # None of ours offered: no header (the client decides whether to go on).
        conn, status, headers, _ = connect(self.srv.port, "/proto", headers={"Sec-WebSocket-Protocol": "mqtt, wamp"})
        self.addCleanup(conn.close)
        self.assertEqual(status, 101)
        self.assertNotIn("sec-websocket-protocol", headers)

        # The chosen protocol is always one the client offered.
        conn, status, headers, _ = connect(self.srv.port, "/proto", headers={"Sec-WebSocket-Protocol": "v11.stomp"})
        self.addCleanup(conn.close)
        self.assertEqual(headers.get("sec-websocket-protocol"), "v11.stomp")

    def test_subprotocol_offered_in_repeated_headers(self):
        # RFC 6455 11.3.4: the header may be repeated, meaning the same as one joined list.
        conn, status, headers, _ = connect(self.srv.port, "/proto", headers=[
            ("Sec-WebSocket-Protocol", "a"), ("Sec-WebSocket-Protocol", "v11.stomp")])
        self.addCleanup(conn.close)
        self.assertEqual(status, 101)
        self.assertEqual(headers.get("sec-websocket-protocol"), "v11.stomp")


class Frames(Base):
    def test_frame_lengths_at_the_encoding_boundaries(self):
        conn = self.open()
        for n in (0, 1, 125, 126, 127, 65535, 65536):
            self.assert_echo(conn, BINARY, os.urandom(n))
        self.assert_echo(conn, TEXT, "x" * 126)

    def test_ping_gets_pong_with_payload(self):
        conn = self.open()
        for payload in (b"", b"p", os.urandom(125)):
            conn.send(frame(PING, payload))
            f = conn.read_frame()
            self.assertEqual((f.opcode, f.payload), (PONG, payload))
        # An unsolicited pong is ignored.
        conn.send(frame(PONG, b"unasked"))
        self.assert_echo(conn, TEXT, "after pong")

    def test_unmasked_client_frame_is_1002(self):
        conn = self.open()
        conn.send(frame(TEXT, "naked", mask=False))
        self.assert_failed_with(conn, 1002)

    def test_reserved_bits_are_1002(self):
        for rsv in (4, 2, 1):
            with self.subTest(rsv=rsv):
                conn = self.open()
                conn.send(frame(TEXT, "rsv", rsv=rsv))
                self.assert_failed_with(conn, 1002)

    def test_unknown_opcodes_are_1002(self):
        for op in (3, 7, 0xB, 0xF):
            with self.subTest(opcode=op):
                conn = self.open()
                conn.send(frame(op, "what"))
                self.assert_failed_with(conn, 1002)

    def test_fragmented_control_frame_is_1002(self):
        conn = self.open()
        conn.send(frame(PING, "frag", fin=False))
        self.assert_failed_with(conn, 1002)

    def test_control_frame_over_125_bytes_is_1002(self):
        for op in (PING, PONG, CLOSE):
            with self.subTest(opcode=op):
                conn = self.open()
                payload = close_payload(1000, "r" * 124) if op == CLOSE else b"p" * 126
                self.assertEqual(len(payload), 126)
                conn.send(frame(op, payload))
                self.assert_failed_with(conn, 1002)

    def test_continuation_without_a_start_is_1002(self):
        conn = self.open()
        conn.send(frame(CONT, "orphan"))
        self.assert_failed_with(conn, 1002)

    def test_new_message_inside_a_fragmented_one_is_1002(self):
        conn = self.open()
        conn.send(frame(TEXT, "first half", fin=False))
        conn.send(frame(TEXT, "a new message"))
        self.assert_failed_with(conn, 1002)

    def read_frames(self, conn, n):
        return [(f.opcode, f.payload) for f in (conn.read_frame() for _ in range(n))]

    def test_fragments_with_a_ping_between_are_fine(self):
        # The pong answers a frame that came before the message ended, so it goes first
        # (Autobahn 5.6-5.8; npm ws does the same), whether the frames come in one write
        # or one by one.
        for together in (True, False):
            with self.subTest(one_write=together):
                conn = self.open()
                frames = [frame(TEXT, "one ", fin=False), frame(PING, "mid"), frame(CONT, "two ", fin=False),
                          frame(CONT, "three")]
                if together:
                    conn.send(b"".join(frames))
                else:
                    for f in frames:
                        conn.send(f)
                self.assertEqual(self.read_frames(conn, 2), [(PONG, b"mid"), (TEXT, b"one two three")])

    def test_control_frames_and_replies_keep_the_order_of_their_causes(self):
        conn = self.open()
        conn.send(frame(TEXT, "first") + frame(PING, "p1") + frame(TEXT, "second") + frame(PING, "p2")
                  + frame(TEXT, "a", fin=False) + frame(PING, "p3") + frame(CONT, "b"))
        self.assertEqual(self.read_frames(conn, 6), [(TEXT, b"first"), (PONG, b"p1"), (TEXT, b"second"),
                                                    (PONG, b"p2"), (PONG, b"p3"), (TEXT, b"ab")])

    def test_close_between_fragments_is_answered_and_ends_the_message(self):
        # A message before, then a close inside a fragmented one: the echo, the close
        # answer, nothing for the unfinished message, and the end of the connection.
        conn = self.open()
        conn.send(frame(TEXT, "before") + frame(TEXT, "half", fin=False) + frame(CLOSE, close_payload(1000, "bye"))
                  + frame(CONT, "rest"))
        f, before = conn.read_close()
        self.assertEqual([(b.opcode, b.payload) for b in before], [(TEXT, b"before")])
        self.assertEqual(f.close_code, 1000)
        self.assertTrue(conn.wait_eof())

    def test_invalid_utf8_text_is_1007(self):
        for bad in (b"\xff", b"abc\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"caf\xc3"):
            with self.subTest(payload=bad):
                conn = self.open()
                conn.send(frame(TEXT, bad))
                self.assert_failed_with(conn, 1007)

    def test_invalid_utf8_split_across_fragments_is_1007(self):
        conn = self.open()
        # A valid prefix of a three-byte sequence, then a byte that cannot continue it.
        conn.send(frame(TEXT, b"ab\xe2\x82", fin=False))
        conn.send(frame(CONT, b"(z"))
        self.assert_failed_with(conn, 1007)

    def test_valid_utf8_split_across_fragments_is_fine(self):
        conn = self.open()
        euro = "€".encode()
        conn.send(frame(TEXT, b"ab" + euro[:2], fin=False) + frame(CONT, euro[2:] + b"cd"))
        f = conn.read_frame()
        self.assertEqual(f.payload, "ab€cd".encode())

    def test_binary_may_hold_any_bytes(self):
        conn = self.open()
        self.assert_echo(conn, BINARY, b"\xff\xfe\x00\xc0")

    def test_message_over_max_message_is_1009(self):
        conn = self.open()
        self.assert_echo(conn, BINARY, b"m" * MAX_MESSAGE)
        conn.send(frame(BINARY, b"m" * (MAX_MESSAGE + 1)))
        self.assert_failed_with(conn, 1009)

    def test_fragmented_message_over_max_message_is_1009(self):
        conn = self.open()
        half = b"f" * (MAX_MESSAGE // 2 + 1)
        conn.send(frame(TEXT, half, fin=False) + frame(CONT, half))
        self.assert_failed_with(conn, 1009)

    def test_frame_announcing_a_huge_length_is_1009_at_once(self):
        # The header alone tells the message is too big: no need to wait for (or buffer)
        # the payload. A few payload bytes follow, as they would from a real client.
        for length in (MAX_MESSAGE + 1, 1 << 40, (1 << 63) - 1):
            with self.subTest(length=length):
                conn = self.open()
                conn.send(frame(BINARY, b"", length=length) + b"abcd")
                self.assert_failed_with(conn, 1009)

    def test_route_max_message(self):
        conn = self.open("/small")
        self.assert_echo(conn, TEXT, "s" * 100)
        conn.send(frame(TEXT, "s" * 101))
        self.assert_failed_with(conn, 1009)


class Closing(Base):
    def test_valid_close_codes_are_echoed_and_the_connection_ends(self):
        for code in (1000, 1001, 1003, 1011, 3000, 4999):
            with self.subTest(code=code):
                conn = self.open()
                conn.send(frame(CLOSE, close_payload(code, "bye")))
                f, _ = conn.read_close()
                self.assertEqual(f.close_code, code)
                self.assertTrue(conn.wait_eof(), "TCP left open after the close handshake")

    def test_empty_close_is_answered(self):
        conn = self.open()
        conn.send(frame(CLOSE))
        f, _ = conn.read_close()
        self.assertIn(f.close_code, (None, 1000))
        self.assertTrue(conn.wait_eof())

    def test_invalid_close_codes_are_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
            with self.subTest(code=code):
                conn = self.open()
                conn.send(frame(CLOSE, close_payload(code)))
                self.assert_failed_with(conn, 1002)

    def test_one_byte_close_payload_is_1002(self):
        # RFC 6455 5.5.1: a close body, if any, starts with a two-byte status code.
        conn = self.open()
        conn.send(frame(CLOSE, b"\x03"))
        self.assert_failed_with(conn, 1002)

    def test_close_reason_must_be_utf8(self):
        conn = self.open()
        conn.send(frame(CLOSE, close_payload(1000, b"\xff\xfe")))
        f, _ = conn.read_close()
        self.assertIn(f.close_code, (1002, 1007))
        self.assertTrue(conn.wait_eof())
        self.assert_fresh_client_works()

    def test_data_after_close_is_ignored(self):
        conn = self.open()
        conn.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, "too late"))
        f, before = conn.read_close()
        self.assertEqual(f.close_code, 1000)
        self.assertEqual(before, [])
        self.assertTrue(conn.wait_eof())

    def test_a_silent_drop_mid_frame_does_not_hurt_the_server(self):
        conn = self.open()
        conn.send(frame(TEXT, "x" * 1000)[:500])
        conn.close()
        self.assert_fresh_client_works()


if __name__ == "__main__":
    unittest.main(verbosity=2)
