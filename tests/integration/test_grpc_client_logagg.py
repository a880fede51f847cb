"""apps/log_agg.lua end to end: python grpcio agents stream log.LogEntry messages to
LogService/CollectLogs; the summaries, GetStats and GET /stats must add up, and WebSocket
watchers (all lines, and one service's) must see every line live, in order."""
import concurrent.futures
import http.client
import json
import os
import sys
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from protos import load_messages  # noqa: E402
from server import SLOW, Server  # noqa: E402
from wsraw import TEXT, connect  # noqa: E402

PROTO = os.path.join(HERE, "..", "..", "proto", "log.proto")




M = load_messages(PROTO)
LogEntry, StatsRequest, LogSummary = M("log.LogEntry"), M("log.StatsRequest"), M("log.LogSummary")


class LogAggTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("../../apps/log_agg.lua", args=["--ws-ping", "0"]).start()
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % cls.srv.port)
        cls.collect = cls.channel.stream_unary(
            "/log.LogService/CollectLogs", request_serializer=LogEntry.SerializeToString,
            response_deserializer=LogSummary.FromString)
        cls.stats = cls.channel.unary_unary(
            "/log.LogService/GetStats", request_serializer=StatsRequest.SerializeToString,
            response_deserializer=LogSummary.FromString)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.srv.stop()

    def watcher(self, path):
        conn, status, _, body = connect(self.srv.port, path, timeout=5 * SLOW)
        self.addCleanup(conn.close)
        self.assertEqual(status, 101, body)
        return conn

    def read_lines(self, conn, n, prefix=""):
        """n lines whose message starts with prefix (a new watcher gets older lines first)."""
        out = []
        while len(out) < n:
            f = conn.read_frame(timeout=10 * SLOW)
            self.assertEqual(f.opcode, TEXT, f)
            line = json.loads(f.payload)
            if line["message"].startswith(prefix):
                out.append(line)
        return out

    def http_stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=5 * SLOW)
        c.request("GET", "/stats")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        return body

    def test_stream_counts_and_live_lines(self):
        base = self.stats(StatsRequest(), timeout=5)
        everyone = self.watcher("/logs")
        only_a = self.watcher("/logs/svc-a")
        # the watchers subscribe in their open handler: wait until both count
        deadline = time.time() + 5 * SLOW
        while self.http_stats()["watchers"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        levels = ["INFO", "warn", "ERROR", "debug"]
        entries = [LogEntry(service="svc-a" if i % 3 else "svc-b", level=levels[i % 4],
                            message="line %d" % i, timestamp=1700000000000 + i)
                   for i in range(60)]
        base_a = base.by_service.get("svc-a", 0)
        summary = self.collect(iter(entries), timeout=10 * SLOW)
        self.assertEqual(summary.total, 60)
        self.assertEqual(base_a, 0, "svc-a must be new to this server")
        self.assertEqual(dict(summary.by_service), {"svc-a": 40, "svc-b": 20})
        self.assertEqual(dict(summary.by_level), {"INFO": 15, "WARN": 15, "ERROR": 15, "DEBUG": 15})

        seen = self.read_lines(everyone, 60, "line ")
        self.assertEqual([s["message"] for s in seen], ["line %d" % i for i in range(60)])
        self.assertEqual(seen[1], {"service": "svc-a", "level": "WARN", "message": "line 1",
                                   "timestamp": 1700000000001})
        a_lines = self.read_lines(only_a, 40, "line ")
        self.assertEqual({s["service"] for s in a_lines}, {"svc-a"})

        after = self.stats(StatsRequest(), timeout=5)
        self.assertEqual(after.total - base.total, 60)
        self.assertEqual(after.by_service["svc-b"] - base.by_service.get("svc-b", 0), 20)
        one = self.stats(StatsRequest(service="svc-b"), timeout=5)
        self.assertEqual(one.total, after.by_service["svc-b"])
        self.assertEqual(self.http_stats()["total"], after.total)

    def test_concurrent_agents(self):
        base = self.stats(StatsRequest(), timeout=5).total

        def agent(k):
            gen = (LogEntry(service="agent%d" % k, level="INFO", message="m%d" % i,
                            timestamp=int(time.time() * 1000)) for i in range(200))
            return self.collect(gen, timeout=20 * SLOW).total
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            totals = list(pool.map(agent, range(4)))
        self.assertEqual(totals, [200] * 4)
        after = self.stats(StatsRequest(), timeout=5)
        self.assertEqual(after.total - base, 800)
        for k in range(4):
            self.assertEqual(after.by_service["agent%d" % k], 200)

    def test_new_watcher_gets_backlog(self):
        self.collect(iter([LogEntry(service="late", level="INFO", message="before you came")]),
                     timeout=10 * SLOW)
        w = self.watcher("/logs/late")
        line = self.read_lines(w, 1)[0]
        self.assertEqual((line["service"], line["message"]), ("late", "before you came"))

    def test_lua_agent_ships_with_rt_grpc_client(self):
        # rtserver's gRPC client (another rtserver running a Lua agent) against rtserver's
        # gRPC server: both sides of the project speaking to each other.
        w = self.watcher("/logs/lua-agent")
        env = {"LOG_TARGET": "127.0.0.1:%d" % self.srv.port}
        with Server("apps/grpc_client_logagent.lua", env=env) as agent:
            c = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=20 * SLOW)
            c.request("GET", "/ship?n=30&service=lua-agent")
            r = json.loads(c.getresponse().read())
            c.close()
        self.assertEqual(r, {"total": 30, "warn": 15, "service_total": 30})
        lines = self.read_lines(w, 30, "shipped ")
        self.assertEqual([x["message"] for x in lines], ["shipped %d" % i for i in range(1, 31)])

    def test_page_is_served(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=5 * SLOW)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertIn("new WebSocket", body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
