"""STOMP over TCP with Debian's python3-stomp (stomp.py): ack modes, receipts, transactions,
queues with round-robin delivery and redelivery on NACK and on disconnect, authentication,
user destinations, replies to the sender only, patterns, and HTTP into the broker."""
import json
import os
import queue
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

import stomp  # noqa: E402

WAIT = 3 * SLOW


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.msgs = queue.Queue()
        self.errors = queue.Queue()
        self.receipts = queue.Queue()
        self.connected = None
        self.gone = threading.Event()

    def on_connected(self, frame):
        self.connected = frame

    def on_message(self, frame):
        self.msgs.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self):
        self.gone.set()


class StompTcp(unittest.TestCase):
    srv = None
    port = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("apps/stomp_app.lua").start()
        cls.port = cls.http("GET", "/stomp")["tcp_port"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    @classmethod
    def http(cls, method, path, body=b""):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (cls.srv.port, path), data=body or None,
                                     method=method)
        with urllib.request.urlopen(req, timeout=WAIT) as res:
            return json.loads(res.read())

    def client(self, login=None, passcode=None, cls=stomp.Connection12):
        conn = cls([("127.0.0.1", self.port)], heartbeats=(0, 0), reconnect_attempts_max=1)
        lis = Listener()
        conn.set_listener("t", lis)
        conn.connect(login, passcode, wait=True)
        self.addCleanup(lambda: conn.is_connected() and conn.disconnect())
        return conn, lis

    def subscribe(self, conn, lis, dest, sid, ack="auto", **headers):
        """Subscribes and waits for the server's receipt, so later sends cannot race it."""
        receipt = "sub-%s-%s" % (sid, time.monotonic_ns())
        conn.subscribe(dest, sid, ack=ack, headers=dict(headers, receipt=receipt))
        self.assertEqual(lis.receipts.get(timeout=WAIT), receipt)

    def msg(self, lis):
        return lis.msgs.get(timeout=WAIT)

    def assert_quiet(self, lis, wait=0.3):
        try:
            f = lis.msgs.get(timeout=wait)
        except queue.Empty:
            return
        self.fail("unexpected message %r %r" % (f.headers, f.body))

    def wait_depth(self, dest, n):
        deadline = time.monotonic() + WAIT
        while self.http("GET", "/depth?dest=" + dest)["depth"] != n:
            self.assertLess(time.monotonic(), deadline, "queue %s never reached depth %d" % (dest, n))
            time.sleep(0.02)

    # -- basics ------------------------------------------------------------------------
    def test_connected_headers(self):
        _, lis = self.client()
        h = lis.connected.headers
        self.assertEqual(h["version"], "1.2")
        self.assertTrue(h["session"])
        self.assertTrue(h["server"].startswith("rtserver/"))
        self.assertEqual(h["heart-beat"], "0,0")

    def test_receipts_and_message_headers(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/basics", "s1")
        conn.send("/topic/basics", "hello", headers={"x-custom": "a:b", "receipt": "send-1"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "send-1")
        f = self.msg(lis)
        self.assertEqual(f.body, "hello")
        self.assertEqual(f.headers["destination"], "/topic/basics")
        self.assertEqual(f.headers["subscription"], "s1")
        self.assertTrue(f.headers["message-id"])
        self.assertEqual(f.headers["content-length"], "5")
        self.assertTrue(f.headers["content-type"].startswith("text/plain"))
        self.assertEqual(f.headers["x-custom"], "a:b")  # escaped as a\cb on the wire
        self.assertNotIn("ack", f.headers)              # auto mode
        conn.unsubscribe("s1", headers={"receipt": "unsub"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "unsub")
        conn.send("/topic/basics", "after")
        self.assert_quiet(lis)

    def test_stomp_1_1_acks_by_message_id_and_subscription(self):
        conn, lis = self.client(cls=stomp.Connection11)
        self.assertEqual(lis.connected.headers["version"], "1.1")
        self.subscribe(conn, lis, "/queue/v11", "q", ack="client-individual")
        conn.send("/queue/v11", "old school")
        f = self.msg(lis)
        self.assertNotIn("ack", f.headers)  # 1.1 acknowledges by message-id
        conn.ack(f.headers["message-id"], "q", receipt="acked")
        self.assertEqual(lis.receipts.get(timeout=WAIT), "acked")
        conn.disconnect()
        self.wait_depth("/queue/v11", 0)

    def test_disconnect_receipt(self):
        conn, lis = self.client()
        conn.disconnect(receipt="bye-1")
        self.assertTrue(lis.gone.wait(WAIT))

    # -- queues ------------------------------------------------------------------------
    def test_queue_round_robin(self):
        (a, la), (b, lb) = self.client(), self.client()
        self.subscribe(a, la, "/queue/rr", "q")
        self.subscribe(b, lb, "/queue/rr", "q")
        for i in range(6):
            a.send("/queue/rr", "m%d" % i)
        got_a = sorted(self.msg(la).body for _ in range(3))
        got_b = sorted(self.msg(lb).body for _ in range(3))
        self.assertEqual(sorted(got_a + got_b), ["m%d" % i for i in range(6)])
        self.assert_quiet(la)
        self.assert_quiet(lb)

    def test_queue_keeps_messages_until_a_consumer_comes(self):
        conn, lis = self.client()
        conn.send("/queue/later", "stored", headers={"receipt": "r"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "r")
        self.wait_depth("/queue/later", 1)
        self.subscribe(conn, lis, "/queue/later", "q")
        self.assertEqual(self.msg(lis).body, "stored")
        self.wait_depth("/queue/later", 0)

    def test_subscribe_receipt_comes_before_the_waiting_messages(self):
        # RabbitMQ's order: a client that waits for the receipt before it counts messages
        # must see every message the new subscription delivers after that receipt.
        conn, lis = self.client()
        events = []
        lis.on_receipt = lambda frame: events.append(("receipt", frame.headers["receipt-id"]))
        lis.on_message = lambda frame: events.append(("message", frame.body))
        for i in range(3):
            conn.send("/queue/receipt-first", "m%d" % i)
        self.wait_depth("/queue/receipt-first", 3)
        conn.subscribe("/queue/receipt-first", "rf", ack="auto", headers={"receipt": "sub-rf"})
        deadline = time.monotonic() + WAIT
        while len(events) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(events, [("receipt", "sub-rf"), ("message", "m0"), ("message", "m1"), ("message", "m2")])

    def test_nack_redelivers_to_the_next_consumer(self):
        (a, la), (b, lb) = self.client(), self.client()
        self.subscribe(a, la, "/queue/nack", "qa", ack="client-individual")
        self.subscribe(b, lb, "/queue/nack", "qb", ack="client-individual")
        a.send("/queue/nack", "please")
        # Whoever got it refuses it; the other one gets it, marked redelivered.
        try:
            first, other, lfirst, lother = a, b, la, lb
            f = la.msgs.get(timeout=WAIT)
        except queue.Empty:
            first, other, lfirst, lother = b, a, lb, la
            f = lb.msgs.get(timeout=WAIT)
        self.assertIn("ack", f.headers)
        self.assertNotIn("redelivered", f.headers)
        first.nack(f.headers["ack"])
        g = self.msg(lother)
        self.assertEqual(g.body, "please")
        self.assertEqual(g.headers["redelivered"], "true")
        self.assertEqual(g.headers["message-id"], f.headers["message-id"])
        other.ack(g.headers["ack"], receipt="acked")
        self.assertEqual(lother.receipts.get(timeout=WAIT), "acked")
        self.assert_quiet(lfirst)
        self.wait_depth("/queue/nack", 0)

    def test_disconnect_redelivers_unacked_and_client_ack_is_cumulative(self):
        a, la = self.client()
        self.subscribe(a, la, "/queue/disc", "q", ack="client")
        for i in range(3):
            a.send("/queue/disc", "d%d" % i)
        got = [self.msg(la) for _ in range(3)]
        self.assertEqual([f.body for f in got], ["d0", "d1", "d2"])
        # client mode: acknowledging d1 acknowledges d0 too; d2 stays unacknowledged.
        a.ack(got[1].headers["ack"], receipt="ack-d1")
        self.assertEqual(la.receipts.get(timeout=WAIT), "ack-d1")
        a.disconnect()
        self.wait_depth("/queue/disc", 1)
        b, lb = self.client()
        self.subscribe(b, lb, "/queue/disc", "q", ack="auto")
        f = self.msg(lb)
        self.assertEqual(f.body, "d2")
        self.assertEqual(f.headers["redelivered"], "true")
        self.assert_quiet(lb)

    def test_prefetch_limits_unacked_per_consumer(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/queue/pf", "q", ack="client-individual", **{"prefetch-count": "1"})
        conn.send("/queue/pf", "one")
        conn.send("/queue/pf", "two")
        f = self.msg(lis)
        self.assertEqual(f.body, "one")
        self.assert_quiet(lis)            # "two" waits until "one" is acknowledged
        self.wait_depth("/queue/pf", 1)
        conn.ack(f.headers["ack"])
        self.assertEqual(self.msg(lis).body, "two")

    # -- transactions ------------------------------------------------------------------
    def test_transactional_send(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/tx", "s")
        conn.begin("t1")
        conn.send("/topic/tx", "one", transaction="t1")
        conn.send("/topic/tx", "two", transaction="t1")
        self.assert_quiet(lis)
        conn.commit("t1")
        self.assertEqual([self.msg(lis).body for _ in range(2)], ["one", "two"])
        conn.begin("t2")
        conn.send("/topic/tx", "never", transaction="t2")
        conn.abort("t2")
        conn.send("/topic/tx", "after-abort")
        self.assertEqual(self.msg(lis).body, "after-abort")

    def test_transactional_ack(self):
        a, la = self.client()
        self.subscribe(a, la, "/queue/txack", "q", ack="client-individual")
        a.send("/queue/txack", "x")
        a.send("/queue/txack", "y")
        fx, fy = self.msg(la), self.msg(la)
        a.begin("aborted")
        a.ack(fx.headers["ack"], transaction="aborted")
        a.abort("aborted")              # x stays unacknowledged
        a.begin("committed")
        a.ack(fy.headers["ack"], transaction="committed")
        a.commit("committed")           # y is done
        a.disconnect()
        b, lb = self.client()
        self.subscribe(b, lb, "/queue/txack", "q")
        f = self.msg(lb)
        self.assertEqual((f.body, f.headers.get("redelivered")), ("x", "true"))
        self.assert_quiet(lb)

    # -- app destinations, users, patterns, HTTP ----------------------------------------
    def test_app_handler_default_destination_and_patterns(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/shout", "s")
        self.subscribe(conn, lis, "/topic/rooms.*", "p")
        conn.send("/app/shout", "quiet please")
        f = self.msg(lis)
        self.assertEqual((f.headers["destination"], f.body), ("/topic/shout", "QUIET PLEASE"))
        conn.send("/app/rooms/blue/say", "hi")
        f = self.msg(lis)
        self.assertEqual(f.headers["destination"], "/topic/rooms.blue")
        self.assertEqual(f.headers["subscription"], "p")
        self.assertEqual(f.headers["content-type"], "application/json")
        self.assertEqual(json.loads(f.body), {"room": "blue", "from": "anon", "text": "hi"})

    def test_double_star_pattern(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/tree/**", "deep")
        self.subscribe(conn, lis, "/topic/tree/*", "shallow")
        conn.send("/topic/tree/a/b", "deep only")
        f = self.msg(lis)
        self.assertEqual((f.headers["subscription"], f.body), ("deep", "deep only"))
        self.assert_quiet(lis)
        conn.send("/topic/tree/a", "both")
        subs = sorted(self.msg(lis).headers["subscription"] for _ in range(2))
        self.assertEqual(subs, ["deep", "shallow"])

    def test_reply_goes_to_the_sender_only(self):
        (a, la), (b, lb) = self.client(), self.client()
        self.subscribe(a, la, "/user/queue/echo", "e")
        self.subscribe(b, lb, "/user/queue/echo", "e")
        a.send("/app/echo", "ping")
        f = self.msg(la)
        self.assertEqual((f.headers["destination"], f.body), ("/user/queue/echo", "echo: ping"))
        self.assert_quiet(lb)

    def test_login_and_user_destinations(self):
        alice, la = self.client("alice", "secret")
        self.assertEqual(la.connected.headers["user-name"], "alice")
        bob, lb = self.client("bob", "secret")
        self.subscribe(alice, la, "/user/queue/notes", "n")
        self.subscribe(bob, lb, "/user/queue/notes", "n")
        bob.send("/app/notify/alice", "for alice")      # stomp:send_to_user in the handler
        f = self.msg(la)
        self.assertEqual((f.headers["destination"], f.body), ("/user/queue/notes", "for alice"))
        bob.send("/user/alice/queue/notes", "direct")   # a client naming the user
        self.assertEqual(self.msg(la).body, "direct")
        self.assert_quiet(lb)
        alice.send("/app/whoami", "")
        self.subscribe(alice, la, "/user/queue/whoami", "w")
        alice.send("/app/whoami", "")
        self.assertEqual(json.loads(self.msg(la).body)["user"], "alice")

    def test_auth_that_yields(self):
        conn, lis = self.client("slow", "x")
        self.assertEqual(lis.connected.headers["user-name"], "slowpoke")
        self.subscribe(conn, lis, "/topic/slow", "s")

    def test_http_publish_reaches_stomp_and_raw_publish_too(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/news", "s")
        self.assertEqual(self.http("POST", "/publish?dest=/topic/news", b"extra extra")["delivered"], 1)
        f = self.msg(lis)
        self.assertEqual((f.body, f.headers["x-from"]), ("extra extra", "http"))
        self.assertEqual(self.http("POST", "/raw-publish?topic=/topic/news", b"raw")["delivered"], 1)
        self.assertEqual(self.msg(lis).body, "raw")

    def test_handler_that_yields(self):
        conn, lis = self.client()
        self.subscribe(conn, lis, "/topic/later", "s")
        conn.send("/app/later", "patience")
        self.assertEqual(self.msg(lis).body, "patience")

    def test_handler_error_is_an_error_frame(self):
        conn, lis = self.client()
        conn.send("/app/boom", "x")
        e = lis.errors.get(timeout=WAIT)
        self.assertEqual(e.headers["message"], "internal error")
        self.assertTrue(lis.gone.wait(WAIT))
        self.srv.wait_for_stderr(r"handler exploded on purpose")


if __name__ == "__main__":
    unittest.main(verbosity=2)
