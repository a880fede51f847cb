"""gRPC server calls from Python's grpcio (Debian's python3-grpcio), generic API.

No generated stubs: protoc writes a descriptor set of proto/user.proto and the protobuf
runtime builds the message classes from it; calls go through channel.unary_unary & co.
"""
import json
import os
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import ROOT, SLOW, Server  # noqa: E402

import grpc  # noqa: E402
from protos import load_messages  # noqa: E402


def load_user_messages():
    cls = load_messages(os.path.join(ROOT, "proto", "user.proto"))
    return {name: cls("user." + name)
            for name in ("User", "GetUserRequest", "Empty", "Summary", "Message")}


M = load_user_messages()


def method(channel, kind, name, req, resp):
    return getattr(channel, kind)("/user.UserService/" + name,
                                  request_serializer=req.SerializeToString,
                                  response_deserializer=resp.FromString)


class GrpcServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/grpc_test.lua")
        cls.srv.start()
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % cls.srv.port)
        grpc.channel_ready_future(cls.channel).result(timeout=5 * SLOW)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.srv.stop()

    def test_unary(self):
        get = method(self.channel, "unary_unary", "GetUser", M["GetUserRequest"], M["User"])
        u = get(M["GetUserRequest"](id=3), timeout=5)
        self.assertEqual((u.id, u.name, u.email), (3, "user3", "u3@example.com"))

    def test_unary_error_status_and_trailers(self):
        get = method(self.channel, "unary_unary", "GetUser", M["GetUserRequest"], M["User"])
        with self.assertRaises(grpc.RpcError) as cm:
            get(M["GetUserRequest"](id=7), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(cm.exception.details(), "no user 7")
        self.assertIn(("x-reason", "missing"), cm.exception.trailing_metadata())

    def test_metadata_round_trip(self):
        get = method(self.channel, "unary_unary", "GetUser", M["GetUserRequest"], M["User"])
        blob = bytes(range(256))
        u, call = get.with_call(M["GetUserRequest"](id=50), timeout=5,
                                metadata=(("x-py", "snake"), ("x-blob-bin", blob)))
        self.assertIn(("x-py", "snake"), call.initial_metadata())
        self.assertIn(("x-blob-bin", blob), call.initial_metadata())
        self.assertIn(("x-blob-t-bin", blob), call.trailing_metadata())

    def test_deadline(self):
        get = method(self.channel, "unary_unary", "GetUser", M["GetUserRequest"], M["User"])
        with self.assertRaises(grpc.RpcError) as cm:
            get(M["GetUserRequest"](id=42), timeout=0.3)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_server_streaming(self):
        lst = method(self.channel, "unary_stream", "ListUsers", M["Empty"], M["User"])
        got = [u.id for u in lst(M["Empty"](), timeout=10, metadata=(("x-count", "1000"),))]
        self.assertEqual(got, list(range(1, 1001)))

    def test_client_streaming(self):
        create = method(self.channel, "stream_unary", "CreateUsers", M["User"], M["Summary"])
        s = create(iter([M["User"](name="u%d" % i) for i in range(77)]), timeout=10)
        self.assertEqual(s.count, 77)

    def test_bidi_streaming(self):
        chat = method(self.channel, "stream_stream", "ChatUsers", M["Message"], M["Message"])
        # Each request waits for the previous reply: the handler must answer as it reads.
        replies = []
        got = threading.Semaphore(0)

        def requests():
            for w in ("a", "b", "c"):
                yield M["Message"](text=w)
                if not got.acquire(timeout=5 * SLOW):
                    return
            yield M["Message"](text="bye")

        for r in chat(requests(), timeout=10 * SLOW):
            replies.append(r.text)
            got.release()
        self.assertEqual(replies, ["echo: a", "echo: b", "echo: c"])

    def test_compression(self):
        get = method(self.channel, "unary_unary", "GetUser", M["GetUserRequest"], M["User"])
        u = get(M["GetUserRequest"](id=50), timeout=5, compression=grpc.Compression.Gzip)
        self.assertEqual(u.email, "gzip")

    def test_cancel_streaming(self):
        lst = method(self.channel, "unary_stream", "ListUsers", M["Empty"], M["User"])
        it = lst(M["Empty"](), timeout=10,
                 metadata=(("x-count", "100000000"), ("x-size", "64"), ("x-tag", "pycancel")))
        for _, _u in zip(range(10), it):
            pass
        it.cancel()
        deadline = time.time() + 5 * SLOW
        st = None
        while time.time() < deadline:
            with urllib.request.urlopen("http://127.0.0.1:%d/state" % self.srv.port) as r:
                st = json.loads(r.read())
            if st.get("pycancel_done") == "cancelled":
                return
            time.sleep(0.05)
        self.fail("the handler never saw the cancellation: %r" % st)


if __name__ == "__main__":
    unittest.main()
