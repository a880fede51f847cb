"""The gRPC client (rt.grpc.client) against a real third-party peer: a python grpcio server
implementing user.UserService with generic handlers. A Lua test app
(apps/grpc_client_app.lua) makes the calls from HTTP routes; this file drives it with
http.client and checks what both ends saw.

Covers unary, server streaming (past the flow-control windows), client streaming, bidi
(inline and with a separate sender coroutine), metadata both ways (text and -bin), a
deadline (DEADLINE_EXCEEDED, grpc-timeout sent, the server sees the cancel), server
errors with a percent-encoded message, cancel, a target that is down, misuse raising,
one TCP connection shared by every call, and reconnecting after the target restarts."""
import concurrent.futures
import http.client
import json
import os
import socket
import sys
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from protos import load_messages  # noqa: E402
from server import SLOW, Server  # noqa: E402

PROTO = os.path.join(HERE, "..", "..", "proto", "user.proto")




M = load_messages(PROTO)
User, GetUserRequest, Empty, Summary, Message = (
    M("user.User"), M("user.GetUserRequest"), M("user.Empty"), M("user.Summary"), M("user.Message"))


class UserService:
    """The target. Records what it saw so the tests can check the client's side."""

    def __init__(self):
        self.lock = threading.Lock()
        self.peers = set()          # one entry per TCP connection the client opened
        self.calls = 0
        self.seen_md = {}
        self.deadline_seen = None   # time_remaining() at the start of the slow call
        self.cancelled = threading.Event()
        self.stream_cancelled = threading.Event()
        self.created_bytes = 0

    def _note(self, ctx):
        with self.lock:
            self.peers.add(ctx.peer())
            self.calls += 1

    def get_user(self, req, ctx):
        self._note(ctx)
        md = dict(ctx.invocation_metadata())
        if req.id == 999:  # slow: runs into the client's deadline
            with self.lock:
                self.deadline_seen = ctx.time_remaining()
            end = time.time() + 5
            while time.time() < end and ctx.is_active():
                time.sleep(0.01)
            if not ctx.is_active():
                self.cancelled.set()
            return User(id=req.id)
        if req.id == 998:  # answers, but takes a while
            time.sleep(0.6)
        if req.id == 404:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no user 404 \u2014 \u00fcn\u00efcode 100% sure")
        if "x-trace" in md:
            with self.lock:
                self.seen_md = md
                self.seen_md_list = list(ctx.invocation_metadata())
            ctx.send_initial_metadata((("x-echo-trace", md["x-trace"]),))
            ctx.set_trailing_metadata((("x-echo-blob-bin", md.get("x-blob-bin", b"")),
                                       ("x-client-was", md.get("x-client", ""))))
        return User(id=req.id, name="user%d" % req.id, email="u%d@example.com" % req.id)

    def list_users(self, req, ctx):
        self._note(ctx)
        md = dict(ctx.invocation_metadata())
        n, size = int(md.get("x-count", "5")), int(md.get("x-size", "0"))
        delay = float(md.get("x-delay", "0"))
        pad = "y" * size
        finished = []
        # grpcio stops pulling from the generator once the call is cancelled; the
        # termination callback tells a cancel from a normal end.
        ctx.add_callback(lambda: finished or self.stream_cancelled.set())
        for i in range(1, n + 1):
            if delay:
                time.sleep(delay)
            yield User(id=i, name="user%d%s" % (i, pad))
        finished.append(True)
        if md.get("x-fail"):
            ctx.abort(grpc.StatusCode.ABORTED, md["x-fail"])

    def create_users(self, it, ctx):
        self._note(ctx)
        n = 0
        for u in it:
            n += 1
            with self.lock:
                self.created_bytes += len(u.name)
        return Summary(count=n)

    def chat_users(self, it, ctx):
        self._note(ctx)
        for m in it:
            yield Message(text="echo: " + m.text)


def start_target(svc, port=0):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=32))
    handlers = {
        "GetUser": grpc.unary_unary_rpc_method_handler(
            svc.get_user, request_deserializer=GetUserRequest.FromString,
            response_serializer=User.SerializeToString),
        "ListUsers": grpc.unary_stream_rpc_method_handler(
            svc.list_users, request_deserializer=Empty.FromString,
            response_serializer=User.SerializeToString),
        "CreateUsers": grpc.stream_unary_rpc_method_handler(
            svc.create_users, request_deserializer=User.FromString,
            response_serializer=Summary.SerializeToString),
        "ChatUsers": grpc.stream_stream_rpc_method_handler(
            svc.chat_users, request_deserializer=Message.FromString,
            response_serializer=Message.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("user.UserService", handlers),))
    bound = server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    return server, bound


_held = []


def closed_port():
    # Bound and never listening, and held for the whole run: a connect there is refused,
    # and no other process (another test server on a busy machine) can take the port
    # meanwhile, nor can a connect pick it as its own source port and reach itself.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


class GrpcClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = UserService()
        cls.target, cls.port = start_target(cls.svc)
        cls.srv = Server("apps/grpc_client_app.lua", env={
            "GRPC_TARGET": "127.0.0.1:%d" % cls.port,
            "GRPC_DOWN_TARGET": "127.0.0.1:%d" % closed_port(),
        }).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.target.stop(0)

    def get(self, path, timeout=20):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout * SLOW)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, body)
            return json.loads(body)
        finally:
            conn.close()

    # -- the four kinds of call --------------------------------------------------------------
    def test_unary(self):
        r = self.get("/unary?id=7")
        self.assertEqual(r["user"], {"id": 7, "name": "user7", "email": "u7@example.com"})

    def test_unary_from_second_client_object(self):
        self.assertEqual(self.get("/unary2?id=3")["user"]["name"], "user3")

    def test_server_streaming_small(self):
        r = self.get("/list?n=5")
        self.assertEqual((r["count"], r["ordered"], r["ok"]), (5, True, True), r)
        self.assertEqual(r["last"], "user5")

    def test_server_streaming_past_flow_control_windows(self):
        # 3000 x ~2 KB = 6 MB: far past the 1 MiB stream window, so credit must flow back
        # as the script takes messages (it also sleeps a little per message).
        r = self.get("/list?n=3000&size=2000&slow=1", timeout=60)
        self.assertEqual((r["count"], r["ordered"], r["ok"]), (3000, True, True), r)

    def test_server_streaming_error_after_messages(self):
        r = self.get("/list?n=3&fail=stop%20here")
        self.assertEqual(r["count"], 3)
        self.assertFalse(r["ok"])
        self.assertEqual((r["error"]["code"], r["error"]["status"]), (10, "ABORTED"))
        self.assertEqual(r["error"]["message"], "stop here")

    def test_client_streaming(self):
        r = self.get("/create?n=25&size=10")
        self.assertEqual(r, {"count": 25})

    def test_client_streaming_large(self):
        # 40 x 100 KB = 4 MB upstream: send() must wait for HTTP/2 window, then go on.
        before = self.svc.created_bytes
        r = self.get("/create?n=40&size=100000", timeout=60)
        self.assertEqual(r, {"count": 40})
        self.assertEqual(self.svc.created_bytes - before, 40 * 100000)

    def test_bidi(self):
        r = self.get("/chat?n=4")
        self.assertEqual(r["replies"], ["echo: m1", "echo: m2", "echo: m3", "echo: m4"])
        self.assertIsNone(r["tail"])
        self.assertNotIn("error", r)

    def test_bidi_sender_coroutine(self):
        self.assertEqual(self.get("/chat2?n=200"), {"got": 200})

    # -- metadata ---------------------------------------------------------------------------
    def test_metadata_both_ways(self):
        r = self.get("/unary?id=5&md=trace-42")
        seen = self.svc.seen_md
        self.assertEqual(seen.get("x-trace"), "trace-42")
        self.assertEqual(seen.get("x-blob-bin"), b"\x00\x01\x02\xff")
        self.assertEqual(seen.get("x-client"), "rtserver-test")  # the client's default metadata
        # a list value is sent as repeated entries; keys are lower-cased
        self.assertEqual([v for k, v in self.svc.seen_md_list if k == "x-multi"], ["a", "b"])
        self.assertTrue(seen.get("user-agent", "").find("grpc-rtserver/") >= 0, seen)
        self.assertEqual(r["headers"].get("x-echo-trace"), "trace-42")
        self.assertEqual(r["trailers"].get("x-echo-blob-bin"), "000102ff")
        self.assertEqual(r["trailers"].get("x-client-was"), "rtserver-test")

    # -- failures ---------------------------------------------------------------------------
    def test_server_error_status_and_message(self):
        r = self.get("/unary?id=404")
        e = r["error"]
        self.assertEqual((e["code"], e["status"]), (5, "NOT_FOUND"))
        self.assertEqual(e["message"], "no user 404 \u2014 \u00fcn\u00efcode 100% sure")
        self.assertEqual(e["text"], "NOT_FOUND: " + e["message"])

    def test_deadline(self):
        self.svc.cancelled.clear()
        r = self.get("/unary?id=999&timeout=0.3")
        e = r["error"]
        self.assertEqual((e["code"], e["status"]), (4, "DEADLINE_EXCEEDED"), r)
        self.assertLess(r["elapsed"], 2.0 * SLOW)
        self.assertGreaterEqual(r["elapsed"], 0.25)
        # grpc-timeout went out: the server knew the deadline ...
        self.assertIsNotNone(self.svc.deadline_seen)
        self.assertLessEqual(self.svc.deadline_seen, 0.31)
        # ... and the RST_STREAM (or its own deadline) ended the call on the server.
        self.assertTrue(self.svc.cancelled.wait(3), "server never saw the call end")

    def test_cancel(self):
        self.svc.stream_cancelled.clear()
        r = self.get("/cancel")
        self.assertEqual(r["first"], 1)
        self.assertEqual((r["error"]["code"], r["error"]["status"]), (1, "CANCELLED"))
        self.assertEqual(r["error"]["message"], "enough")
        self.assertTrue(self.svc.stream_cancelled.wait(3), "server kept streaming after cancel")

    def test_target_down(self):
        r = self.get("/down")
        self.assertFalse(r["ok"])
        e = r["error"]
        self.assertEqual((e["code"], e["status"]), (14, "UNAVAILABLE"), r)
        self.assertIn("Connection refused", e["message"])
        self.assertLess(r["elapsed"], 1.0 * SLOW)
        # and again: each call tries to connect, each fails the same way
        self.assertEqual(self.get("/down")["error"]["code"], 14)

    def test_misuse_raises(self):
        r = self.get("/bad")
        self.assertTrue(r["raised"], r)
        self.assertIn("id", r["msgs"][0])
        self.assertIn("nosuchfield", r["msgs"][1])
        self.assertIn("':'", r["msgs"][2])
        self.assertIn("reserved", r["msgs"][3])

    # -- one connection ---------------------------------------------------------------------
    def test_zz_connection_reuse(self):
        # Sequential calls, then 30 handlers calling at once (concurrent streams).
        self.assertEqual(self.get("/many?n=50"), {"count": 50, "last": "user50"})
        with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
            rs = list(pool.map(lambda i: self.get("/unary?id=%d" % (i + 1)), range(30)))
        self.assertEqual(sorted(r["user"]["id"] for r in rs), list(range(1, 31)))
        # Every test in this class called the same target: one TCP connection for all.
        self.assertEqual(len(self.svc.peers), 1, self.svc.peers)
        st = self.get("/stats")
        self.assertEqual((st["connects"], st["open"]), (1, 1), st)
        self.assertGreaterEqual(st["calls"], 80)


def post_json(port, path, obj):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20 * SLOW)
    conn.request("POST", path, json.dumps(obj), {"Content-Type": "application/json"})
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    return r.status, body


class GrpcClientOrderTest(unittest.TestCase):
    """The seed's order service: creating an order asks UserService.GetUser for the name
    (apps/grpc_client_order.lua, the snippet apps/order_push.lua can take)."""

    def test_order_gets_user_name(self):
        svc = UserService()
        target, port = start_target(svc)
        try:
            with Server("apps/grpc_client_order.lua", env={"USER_SERVICE": "127.0.0.1:%d" % port}) as srv:
                st, o = post_json(srv.port, "/orders", {"item": "book", "user_id": 7})
                self.assertEqual(st, 201, o)
                self.assertEqual((o["user_id"], o["user_name"]), (7, "user7"))
                self.assertNotIn("user_error", o)
                st, o = post_json(srv.port, "/orders", {"item": "book", "user_id": 404})
                self.assertEqual(st, 404, o)
                # a slow user service: the 1 s deadline passes, the order is taken anyway
                t0 = time.time()
                st, o = post_json(srv.port, "/orders", {"item": "pen", "user_id": 999})
                self.assertEqual(st, 201, o)
                self.assertEqual((o["user_name"], o["user_error"]), ("(unknown)", "DEADLINE_EXCEEDED"))
                self.assertLess(time.time() - t0, 3 * SLOW)
        finally:
            target.stop(0)

    def test_order_when_user_service_is_down(self):
        env = {"USER_SERVICE": "127.0.0.1:%d" % closed_port()}
        with Server("apps/grpc_client_order.lua", env=env) as srv:
            t0 = time.time()
            st, o = post_json(srv.port, "/orders", {"item": "book", "user_id": 1})
            self.assertEqual(st, 201, o)
            self.assertEqual((o["user_name"], o["user_error"]), ("(unknown)", "UNAVAILABLE"))
            self.assertLess(time.time() - t0, 1 * SLOW)
            srv.wait_for_stderr(r"user service: UNAVAILABLE")  # stderr is read by a thread

    def test_order_against_rtserver_user_service(self):
        # Both sides are rtserver: apps/user_service.lua answers the Lua client.
        with Server("../../apps/user_service.lua") as users:
            env = {"USER_SERVICE": "127.0.0.1:%d" % users.port}
            with Server("apps/grpc_client_order.lua", env=env) as srv:
                st, o = post_json(srv.port, "/orders", {"item": "tea", "user_id": 1})
                self.assertEqual(st, 201, o)
                self.assertEqual(o["user_name"], "Zhang San")
                st, o = post_json(srv.port, "/orders", {"item": "tea", "user_id": 12345})
                self.assertEqual(st, 404, o)


class GrpcClientShutdownTest(unittest.TestCase):
    def test_call_in_flight_finishes_during_drain(self):
        svc = UserService()
        target, port = start_target(svc)
        srv = Server("apps/grpc_client_app.lua", env={"GRPC_TARGET": "127.0.0.1:%d" % port}).start()
        try:
            holder = {}

            def call():
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20 * SLOW)
                conn.request("GET", "/unary?id=998")
                holder["r"] = json.loads(conn.getresponse().read())
            t = threading.Thread(target=call)
            t.start()
            time.sleep(0.2)
            t0 = time.time()
            self.assertEqual(srv.stop(), 0)  # SIGTERM while the call is out
            t.join(10)
            self.assertEqual(holder["r"].get("user", {}).get("id"), 998, holder)
            # the drain ended with the call, not at its 10 s limit
            self.assertLess(time.time() - t0, 5 * SLOW)
        finally:
            srv.stop()
            target.stop(0)


class GrpcClientRestartTest(unittest.TestCase):
    """The target goes away mid-call and comes back on the same port."""

    def test_reconnect_after_target_restart(self):
        svc = UserService()
        target, port = start_target(svc)
        srv = Server("apps/grpc_client_app.lua", env={"GRPC_TARGET": "127.0.0.1:%d" % port}).start()
        try:
            def get(path):
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20 * SLOW)
                conn.request("GET", path)
                body = conn.getresponse().read()
                conn.close()
                return json.loads(body)
            self.assertEqual(get("/unary?id=1")["user"]["id"], 1)
            # A slow call is in flight when the target stops.
            holder = {}
            t = threading.Thread(target=lambda: holder.update(r=get("/unary?id=999&timeout=10")))
            t.start()
            time.sleep(0.3)
            target.stop(0).wait()
            t.join(10)
            e = holder["r"]["error"]
            self.assertIn(e["status"], ("UNAVAILABLE", "CANCELLED"), e)
            self.assertLess(holder["r"]["elapsed"], 5)
            target2, _ = start_target(svc, port)
            try:
                self.assertEqual(get("/unary?id=2")["user"]["id"], 2)
                st = get("/stats")
                self.assertEqual(st["connects"], 2, st)
            finally:
                target2.stop(0)
        finally:
            srv.stop()
            target.stop(0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
