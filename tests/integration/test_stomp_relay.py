"""The STOMP broker relay (issue 13) against a private RabbitMQ (Debian's rabbitmq-server
with its STOMP plugin), one broker for the whole file, two rtserver nodes on it:
competing consumers round-robin across nodes, redelivery to the other node when a
consumer dies without ACK, transactions, topics across nodes, user destinations and
session replies across nodes, broker ERRORs reaching one client, auth here first, the
seed's order push with @stomp/stompjs, and the faults: broker down at start, broker
stopped and started mid-test, a hung broker (no heart-beats, no reading) with a client
flooding it, a slow client. Clients: python3-stomp, raw sockets, and stompjs (a node
script this file runs, since it needs the same broker)."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from server import ROOT, SLOW, Server  # noqa: E402
from rabbitmq import RabbitMQ, free_port  # noqa: E402
from certs import make_certs  # noqa: E402

import stomp  # noqa: E402

WAIT = 5 * SLOW


def uniq(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def http(node, method, path, body=b""):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (node.port, path), data=body or None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(node, name):
    """The sum of every series of a metric family."""
    _, text = http(node, "GET", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(pred, what, timeout=15 * SLOW):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def wait_up(node):
    """Until the node's system connection takes a server-side send."""
    wait_until(lambda: http(node, "POST", "/publish?dest=/topic/ping", b"x")[0] == 200, "the relay to be up")


def parse_frame(buf):
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
    else:
        stop = buf.find(b"\0", start)
        if stop < 0:
            return None
    return lines[0], headers, buf[start:stop], buf[stop + 1:]


class Raw:
    """A STOMP 1.2 client on a bare socket: for a consumer that dies, or one that never reads."""

    def __init__(self, port, login=None, passcode=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buf = b""
        auth = "login:%s\npasscode:%s\n" % (login, passcode) if login else ""
        self.send("CONNECT\naccept-version:1.2\nhost:/\n%s\n\0" % auth)

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

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

    def closed(self, timeout=WAIT):
        """True once the server closed the connection (frames before that are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False

    def close(self):
        self.sock.close()


class Listener(stomp.ConnectionListener):
    def __init__(self):
        import queue
        self.msgs = queue.Queue()
        self.errors = queue.Queue()
        self.receipts = queue.Queue()
        self.gone = threading.Event()

    def on_message(self, frame):
        self.msgs.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self):
        self.gone.set()

    def drain(self, wait=0.5):
        time.sleep(wait)
        out = []
        while not self.msgs.empty():
            out.append(self.msgs.get())
        return out


class Relay(unittest.TestCase):
    mq = None
    nodes = []

    @classmethod
    def node(cls, port=None, app="apps/stomp_relay.lua", env=None):
        e = {"RT_RELAY_PORT": str(port or cls.mq.stomp_port)}
        e.update(env or {})
        srv = Server(app, args=["--metrics", "/metrics", "--max-output", str(1 << 20)], env=e).start()
        cls.nodes.append(srv)
        return srv

    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs()
        cls.mq = RabbitMQ(tls=cls.certs)
        cls.mq.start_broker()
        cls.a = cls.node()
        cls.b = cls.node()
        for n in (cls.a, cls.b):
            n.tcp = json.loads(http(n, "GET", "/stomp")[1])["tcp_port"]

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.nodes:
                n.stop()
        finally:
            cls.mq.close()
            cls.certs.remove()

    def setUp(self):
        for n in (self.a, self.b):
            wait_up(n)
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            try:
                c.disconnect()
            except Exception:
                pass

    def client(self, node, login=None, passcode=None):
        c = stomp.Connection12([("127.0.0.1", node.tcp)], heartbeats=(0, 0))
        lst = Listener()
        c.set_listener("", lst)
        c.connect(login, passcode, wait=True)
        self.conns.append(c)
        return c, lst

    def subscribe(self, c, lst, dest, sid, **headers):
        r = uniq("r")
        c.subscribe(dest, id=sid, receipt=r, **headers)
        self.assertEqual(lst.receipts.get(timeout=WAIT), r)

    # -- TLS to the broker -------------------------------------------------------------------

    def test_0_tls_to_the_broker(self):
        # A node whose relay speaks TLS to RabbitMQ's STOMP TLS listener (the broker's
        # certificate verified against the test CA) shares a queue with a plain node.
        c = self.node(port=self.mq.stomp_tls_port, env={"RT_RELAY_TLS_CA": self.certs.ca})
        c.tcp = json.loads(http(c, "GET", "/stomp")[1])["tcp_port"]
        wait_up(c)
        q = "/queue/" + uniq("tls")
        cc, cl = self.client(c)
        self.subscribe(cc, cl, q, "s1")
        ac, _ = self.client(self.a)
        ac.send(q, "over tls")
        self.assertEqual(cl.msgs.get(timeout=WAIT).body, "over tls")
        # A broker whose certificate does not chain to the CA given: refused, said why,
        # and clients are told the broker is unavailable.
        bad = self.node(port=self.mq.stomp_tls_port, env={"RT_RELAY_TLS_CA": self.certs.client_ca})
        bad.wait_for_stderr(r"TLS with the broker failed: TLS handshake failed: .*certificate", timeout=WAIT * 2)
        bad_tcp = json.loads(http(bad, "GET", "/stomp")[1])["tcp_port"]
        raw = Raw(bad_tcp)
        f = raw.frame()
        raw.close()
        self.assertEqual(f[0], "ERROR")
        self.assertIn("broker unavailable", f[1].get("message", "") + f[2].decode())
        bad.stop()
        c.stop()

    # -- queues, acks, transactions across two nodes ---------------------------------------

    def test_1_competing_consumers_round_robin(self):
        q = "/queue/" + uniq("rr")
        (ca, la), (cb, lb) = self.client(self.a), self.client(self.b)
        self.subscribe(ca, la, q, "a")
        self.subscribe(cb, lb, q, "b")
        for i in range(10):
            self.assertEqual(http(self.a, "POST", "/publish?dest=" + q, b"m%d" % i)[0], 200)
        got_a = [la.msgs.get(timeout=WAIT).body for _ in range(5)]
        got_b = [lb.msgs.get(timeout=WAIT).body for _ in range(5)]
        self.assertEqual(la.drain(0.5) + lb.drain(0), [])
        self.assertEqual(sorted(got_a + got_b), ["m%d" % i for i in range(10)])
        # Round-robin: each node's consumer gets every other message.
        self.assertEqual({got_a[0], got_b[0]}, {"m0", "m1"})
        self.assertEqual([int(m[1:]) % 2 for m in got_a], [int(got_a[0][1:]) % 2] * 5)

    def test_1b_prefetch_passes_through(self):
        q = "/queue/" + uniq("prefetch")
        c, lst = self.client(self.a)
        self.subscribe(c, lst, q, "p", ack="client-individual", **{"prefetch-count": "2"})
        for i in range(5):
            http(self.b, "POST", "/publish?dest=" + q, b"p%d" % i)
        first = lst.drain(1.0)
        self.assertEqual([m.body for m in first], ["p0", "p1"], "the broker honours prefetch-count")
        c.ack(first[0].headers["ack"])
        self.assertEqual(lst.msgs.get(timeout=WAIT).body, "p2")
        self.assertEqual(lst.drain(0.5), [])

    def test_2_dead_consumer_redelivered_to_other_node(self):
        q = "/queue/" + uniq("redeliver")
        x = Raw(self.a.tcp)
        self.assertEqual(x.frame()[0], "CONNECTED")
        x.send("SUBSCRIBE\nid:x\ndestination:%s\nack:client-individual\nprefetch-count:1\nreceipt:s\n\n\0" % q)
        self.assertEqual(x.frame()[0], "RECEIPT")
        self.assertEqual(http(self.b, "POST", "/publish?dest=" + q, b"precious")[0], 200)
        cmd, h, body = x.frame()
        self.assertEqual((cmd, body, h["redelivered"]), ("MESSAGE", b"precious", "false"))
        cb, lb = self.client(self.b)
        self.subscribe(cb, lb, q, "y", ack="client-individual")
        time.sleep(0.3)
        self.assertTrue(lb.msgs.empty(), "the unacknowledged message went to two consumers")
        x.sock.shutdown(socket.SHUT_RDWR)  # dies, no ACK, no DISCONNECT
        x.close()
        m = lb.msgs.get(timeout=WAIT)
        self.assertEqual(m.body, "precious")
        self.assertEqual(m.headers["redelivered"], "true")
        self.assertEqual(m.headers["destination"], q)

    def test_3_transaction(self):
        q = "/queue/" + uniq("tx")
        (ca, la), (cb, lb) = self.client(self.a), self.client(self.b)
        self.subscribe(cb, lb, q, "t")
        ca.begin("t1")
        ca.send(q, "one", transaction="t1")
        ca.send(q, "two", transaction="t1")
        self.assertEqual(lb.drain(0.5), [], "a SEND in an open transaction was delivered")
        r = uniq("c")
        ca.commit("t1", receipt=r)
        self.assertEqual(la.receipts.get(timeout=WAIT), r)
        self.assertEqual([lb.msgs.get(timeout=WAIT).body for _ in range(2)], ["one", "two"])
        ca.begin("t2")
        ca.send(q, "never", transaction="t2")
        ca.abort("t2")
        ca.send(q, "after")
        self.assertEqual(lb.msgs.get(timeout=WAIT).body, "after")
        self.assertTrue(lb.msgs.empty())

    def test_4_topic_across_nodes(self):
        t = "/topic/" + uniq("news") + "/sports"  # slashes become dots at RabbitMQ
        (ca, la), (cb, lb) = self.client(self.a), self.client(self.b)
        self.subscribe(cb, lb, t, "n")
        ca.send(t, "goal", headers={"x-custom": "yes"})
        m = lb.msgs.get(timeout=WAIT)
        self.assertEqual((m.body, m.headers["destination"], m.headers["x-custom"], m.headers["subscription"]),
                         ("goal", t, "yes", "n"))
        # A server-side send on node A and an /app handler's result on node A.
        self.assertEqual(http(self.a, "POST", "/publish?dest=" + t, b"from http"), (200, '{"delivered":1}'))
        m = lb.msgs.get(timeout=WAIT)
        self.assertEqual((m.body, m.headers["x-from"]), ("from http", "http"))
        self.subscribe(cb, lb, "/topic/messages", "chat")
        ca.send("/app/chat", json.dumps({"user": "ann", "text": "hi"}))
        m = lb.msgs.get(timeout=WAIT)
        self.assertEqual((json.loads(m.body), m.headers["destination"]), ({"user": "ann", "text": "hi"}, "/topic/messages"))

    def test_5_user_destinations_and_replies_across_nodes(self):
        (a1, l1), (a2, l2) = self.client(self.b, "alice", "secret"), self.client(self.a, "alice", "secret")
        bob, lbob = self.client(self.a, "bob", "secret")
        for c, lst in ((a1, l1), (a2, l2), (bob, lbob)):
            self.subscribe(c, lst, "/user/queue/notes", "notes")
            self.subscribe(c, lst, "/user/queue/echo", "echo")
        # stomp:send_to_user from node A reaches both of alice's sessions, on A and B.
        self.assertEqual(http(self.a, "POST", "/to-user?user=alice&dest=/queue/notes", b"hello alice")[0], 200)
        for lst in (l1, l2):
            m = lst.msgs.get(timeout=WAIT)
            self.assertEqual((m.body, m.headers["destination"], m.headers["subscription"]),
                             ("hello alice", "/user/queue/notes", "notes"))
        # A handler on node A (bob's session) sends to alice.
        bob.send("/app/notify/alice", "from bob")
        for lst in (l1, l2):
            self.assertEqual(lst.msgs.get(timeout=WAIT).body, "from bob")
        # session:reply reaches the one session that asked, not the user's other one.
        a1.send("/app/echo", "ping")
        m = l1.msgs.get(timeout=WAIT)
        self.assertEqual((m.body, m.headers["destination"]), ("echo: ping", "/user/queue/echo"))
        self.assertEqual(l2.drain(0.5) + lbob.drain(0), [])
        # A client's SEND to /user/<name>/... too.
        a2.send("/user/bob/queue/notes", "hi bob")
        self.assertEqual(lbob.msgs.get(timeout=WAIT).body, "hi bob")
        self.assertEqual(l1.drain(0.3) + l2.drain(0), [])

    def test_6_broker_error_reaches_only_its_client(self):
        before = metric(self.a, "rtserver_stomp_relay_broker_errors_total")
        x = Raw(self.a.tcp)
        self.assertEqual(x.frame()[0], "CONNECTED")
        cy, ly = self.client(self.a)
        t, q = "/topic/" + uniq("still"), "/queue/" + uniq("locked")
        self.subscribe(cy, ly, t, "s")
        self.subscribe(cy, ly, q, "q")
        # RabbitMQ refuses to redeclare a durable queue as an exclusive auto-delete one.
        x.send("SUBSCRIBE\nid:bad\ndestination:%s\ndurable:false\nauto-delete:true\n\n\0" % q)
        cmd, h, body = x.frame()
        self.assertEqual((cmd, h["message"]), ("ERROR", "resource_locked"))
        self.assertIn(b"RESOURCE_LOCKED", body)
        self.assertTrue(x.closed(), "the session with the broker ERROR stayed open")
        self.assertEqual(ly.errors.qsize(), 0)
        cy.send(t, "unaffected")
        self.assertEqual(ly.msgs.get(timeout=WAIT).body, "unaffected")
        self.assertEqual(metric(self.a, "rtserver_stomp_relay_broker_errors_total"), before + 1)

    def test_7_auth_here_first(self):
        x = Raw(self.a.tcp, "alice", "wrong")
        cmd, h, body = x.frame()
        self.assertEqual((cmd, h["message"]), ("ERROR", "access refused"))
        self.assertIn(b"wrong login or passcode", body)
        self.assertTrue(x.closed())
        # The broker saw nothing of it: the node opened no session connection for it.
        c, lst = self.client(self.a, "alice", "secret")
        self.assertTrue(c.is_connected())

    def test_8_order_push_with_stompjs(self):
        env = {"RT_STOMP_RELAY": "127.0.0.1:%d" % self.mq.stomp_port, "RT_STOMP_TCP_PORT": "off",
               "USER_SERVICE": "127.0.0.1:%d" % free_port()}
        oa = self.node(app=os.path.join(ROOT, "apps/order_push.lua"), env=env)
        ob = self.node(app=os.path.join(ROOT, "apps/order_push.lua"), env=env)
        try:
            wait_until(lambda: metric(oa, "rtserver_stomp_relay_connects_total") >= 1 and
                       metric(ob, "rtserver_stomp_relay_connects_total") >= 1, "the order nodes' relays")
            r = subprocess.run(["node", "--test", os.path.join(HERE, "relay_stompjs.js")], cwd=HERE,
                               env=dict(os.environ, RT_NODE_A="http://127.0.0.1:%d" % oa.port,
                                        RT_NODE_B="http://127.0.0.1:%d" % ob.port),
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            for n in (oa, ob):
                n.stop()
                self.nodes.remove(n)

    def test_9_slow_client_is_closed_and_memory_bounded(self):
        t = "/topic/" + uniq("flood")
        x = Raw(self.a.tcp)
        self.assertEqual(x.frame()[0], "CONNECTED")
        x.send("SUBSCRIBE\nid:f\ndestination:%s\nreceipt:s\n\n\0" % t)
        self.assertEqual(x.frame()[0], "RECEIPT")
        before = metric(self.a, "rtserver_slow_consumers_closed_total")
        rss0 = self.a.rss_kib()
        pub, _ = self.client(self.b)

        def flood():
            for _ in range(200):  # 13 MB towards a client that reads nothing
                pub.send(t, "z" * 65536)
        th = threading.Thread(target=flood, daemon=True)
        th.start()
        wait_until(lambda: metric(self.a, "rtserver_slow_consumers_closed_total") > before, "the slow client to be closed")
        # Read at once: the node gives a closing peer a few seconds to take its last bytes.
        frames = []
        try:
            while True:
                frames.append(x.frame())
        except (EOFError, OSError):
            pass
        self.assertEqual((frames[-1][0], frames[-1][1].get("message")), ("ERROR", "slow consumer"))
        self.assertLess(self.a.rss_kib() - rss0, 40 * 1024)
        th.join(60)
        x.close()

    # -- faults ---------------------------------------------------------------------------

    def test_z1_broker_hangs(self):
        """A frozen broker: no heart-beats, nothing read. A client flooding it is paused
        (memory bounded), then its session ends with ERROR when the heart-beats stop."""
        q = "/queue/" + uniq("hang")
        x = Raw(self.a.tcp)
        self.assertEqual(x.frame()[0], "CONNECTED")
        rss0 = self.a.rss_kib()
        self.mq.pause()
        try:
            sent = [0]

            def flood():
                frame = ("SEND\ndestination:%s\ncontent-length:65536\n\n" % q).encode() + b"y" * 65536 + b"\0"
                try:
                    for _ in range(1000):  # 64 MB, far more than the node may hold
                        x.sock.sendall(frame)
                        sent[0] += 1
                except OSError:
                    pass
            th = threading.Thread(target=flood, daemon=True)
            th.start()
            frames = []
            deadline = time.monotonic() + 15 * SLOW
            while time.monotonic() < deadline:
                try:
                    frames.append(x.frame(timeout=1))
                    if frames[-1][0] == "ERROR":
                        break
                except TimeoutError:
                    continue
                except (EOFError, OSError):
                    break
            self.assertTrue(frames and frames[-1][0] == "ERROR", frames)
            self.assertEqual(frames[-1][1]["message"], "broker connection lost")
            self.assertIn(b"heart-beat", frames[-1][2])
            self.assertLess(sent[0], 1000, "the node read everything the client sent")
            self.assertLess(self.a.rss_kib() - rss0, 40 * 1024)
        finally:
            self.mq.resume()
            x.close()
        wait_up(self.a)

    def test_z2_broker_stopped_and_started(self):
        t = "/topic/" + uniq("outage")
        (ca, la), (cb, lb) = self.client(self.a), self.client(self.b)
        self.subscribe(cb, lb, t, "o")
        lost_before = metric(self.b, "rtserver_stomp_relay_lost_total")
        self.mq.stop_broker()
        try:
            # Sessions on both nodes get ERROR and are closed; server sends fail.
            for lst in (la, lb):
                e = lst.errors.get(timeout=WAIT)
                self.assertEqual(e.headers["message"], "broker connection lost")
                self.assertTrue(lst.gone.wait(WAIT))
            wait_until(lambda: http(self.a, "POST", "/publish?dest=" + t, b"x")[0] == 503, "stomp:send to fail")
            code, body = http(self.a, "POST", "/publish?dest=" + t, b"x")
            self.assertIn("broker unavailable", json.loads(body)["error"])
            x = Raw(self.b.tcp)
            cmd, h, body = x.frame()
            self.assertEqual((cmd, h["message"]), ("ERROR", "broker unavailable"))
            self.assertTrue(x.closed())
            self.assertGreaterEqual(metric(self.b, "rtserver_stomp_relay_lost_total"), lost_before + 2)
            self.assertGreaterEqual(metric(self.b, "rtserver_stomp_relay_unavailable_total"), 1)
            # A node that starts while the broker is down starts anyway and keeps trying.
            c = self.node()
            c.tcp = json.loads(http(c, "GET", "/stomp")[1])["tcp_port"]
            wait_until(lambda: metric(c, "rtserver_stomp_relay_connect_failures_total") >= 2, "retries")
            x = Raw(c.tcp)
            cmd, h, body = x.frame()
            self.assertEqual((cmd, h["message"]), ("ERROR", "broker unavailable"))
            self.assertIn(b"cannot be reached", body)
            c.wait_for_stderr(r"cannot reach the broker")
        finally:
            self.mq.start_broker()
        # Everyone reconnects with backoff; new sessions work end to end.
        for n in (self.a, self.b, c):
            wait_up(n)
        (ca, la), (cc, lc) = self.client(self.a), self.client(c)
        self.subscribe(cc, lc, t, "o")
        ca.send(t, "we are back")
        self.assertEqual(lc.msgs.get(timeout=WAIT).body, "we are back")
        self.assertGreaterEqual(metric(self.a, "rtserver_stomp_relay_connects_total"), 2)


class BrokerDownAtStart(unittest.TestCase):
    def test_nothing_listens(self):
        port = free_port()
        srv = Server("apps/stomp_relay.lua", args=["--metrics", "/metrics"], env={"RT_RELAY_PORT": str(port)}).start()
        try:
            tcp = json.loads(http(srv, "GET", "/stomp")[1])["tcp_port"]
            x = Raw(tcp)
            cmd, h, body = x.frame()
            self.assertEqual((cmd, h["message"]), ("ERROR", "broker unavailable"))
            self.assertIn(("127.0.0.1:%d" % port).encode(), body)
            self.assertTrue(x.closed())
            code, body = http(srv, "POST", "/publish?dest=/topic/x", b"x")
            self.assertEqual(code, 503)
            self.assertIn("broker unavailable", body)
            wait_until(lambda: metric(srv, "rtserver_stomp_relay_connect_failures_total") >= 3, "reconnect attempts")
            self.assertGreaterEqual(metric(srv, "rtserver_stomp_relay_send_failures_total"), 1)
            self.assertEqual(metric(srv, "rtserver_stomp_relay_unavailable_total"), 1)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
