"""STOMP across a hot reload (SIGHUP): connections, subscriptions, queued messages and the
TCP port stay; the new handlers take over at once; a broken reload changes nothing."""
import json
import os
import queue
import signal
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import SLOW, Server  # noqa: E402

import stomp  # noqa: E402

WAIT = 3 * SLOW

APP = """
local rt = require "rt"
local stomp = rt.stomp { endpoint = "/ws", tcp_port = 0, heartbeat = { 0, 0 } }
stomp:on("/hello", function(msg) return "/topic/hello", "%s:" .. msg.body end)
rt.http.get("/stomp", function() return { tcp_port = stomp:tcp_port() } end)
"""


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.msgs = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.msgs.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])


class StompReload(unittest.TestCase):
    def test_reload_keeps_sessions_and_swaps_handlers(self):
        fd, path = tempfile.mkstemp(suffix=".lua", prefix="stomp-reload-")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        with open(path, "w") as f:
            f.write(APP % "v1")
        srv = Server(path).start()
        self.addCleanup(srv.stop)

        def tcp_port():
            with urllib.request.urlopen("http://127.0.0.1:%d/stomp" % srv.port, timeout=WAIT) as r:
                return json.loads(r.read())["tcp_port"]

        port = tcp_port()
        conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0), reconnect_attempts_max=1)
        lis = Listener()
        conn.set_listener("t", lis)
        conn.connect(wait=True)
        self.addCleanup(conn.disconnect)
        conn.subscribe("/topic/hello", "h", headers={"receipt": "s1"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "s1")
        conn.send("/queue/kept", "waiting", headers={"receipt": "q1"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "q1")
        conn.send("/app/hello", "a")
        self.assertEqual(lis.msgs.get(timeout=WAIT).body, "v1:a")

        with open(path, "w") as f:
            f.write(APP % "v2")
        mark = len(srv.stderr)
        os.kill(srv.proc.pid, signal.SIGHUP)
        srv.wait_for_stderr(r"reloaded", start=mark)
        self.assertEqual(tcp_port(), port)
        conn.send("/app/hello", "b")                       # same connection, new handler
        self.assertEqual(lis.msgs.get(timeout=WAIT).body, "v2:b")

        with open(path, "w") as f:
            f.write("this is not lua")
        mark = len(srv.stderr)
        os.kill(srv.proc.pid, signal.SIGHUP)
        srv.wait_for_stderr(r"reload failed", start=mark)
        conn.send("/app/hello", "c")
        self.assertEqual(lis.msgs.get(timeout=WAIT).body, "v2:c")

        conn.subscribe("/queue/kept", "k", headers={"receipt": "s2"})   # queued before both reloads
        self.assertEqual(lis.receipts.get(timeout=WAIT), "s2")
        self.assertEqual(lis.msgs.get(timeout=WAIT).body, "waiting")


if __name__ == "__main__":
    unittest.main(verbosity=2)
