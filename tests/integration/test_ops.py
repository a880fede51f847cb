"""Hot reload, graceful shutdown and the metrics endpoint (issue 6), against the real binary.

Reload: a client connected before a reload keeps its connection and its topic subscription
and gets answers from the new code; a message published while reloads happen is not lost;
a broken reload keeps the old code serving; SIGHUP reloads; an edited module reloads.
Shutdown: clients see close 1001, an in-flight HTTP request still gets its answer, exit 0.
Metrics: parsed by prometheus_client's text parser (Debian python3-prometheus-client)."""
import asyncio
import http.client
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import websockets  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from server import Server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
V1 = open(os.path.join(HERE, "apps", "ops_v1.lua")).read()


def make_app():
    d = tempfile.mkdtemp(prefix="rt-ops-")
    with open(os.path.join(d, "app.lua"), "w") as f:
        f.write(V1)
    with open(os.path.join(d, "ops_helper.lua"), "w") as f:
        f.write('return { tag = "h1" }\n')
    return d


def write(path, text):
    # Write then rename, as editors do: the watcher must notice both kinds of change.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def ask(ws, text):
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), 5)


async def reload_scenario(srv, d):
    url = "ws://127.0.0.1:%d/ws" % srv.port
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        assert await ask(a, "x") == "v1 h1 x loads=1"
        seen = srv.stderr.count("reloaded ")

        # 1. the script changes: same connection, new code, rt.state kept
        write(os.path.join(d, "app.lua"), V1.replace('"v1 "', '"v2 "').replace("news from v1", "news from v2"))
        srv.wait_for_stderr(r"reloaded .*reload #1\)")
        assert await ask(a, "y") == "v2 h1 y loads=2", "new code after reload"

        # 2. the subscription made by v1's open handler survives: v2 publishes to it
        await b.send("publish")
        assert await asyncio.wait_for(a.recv(), 5) == "news from v2"
        assert await asyncio.wait_for(b.recv(), 5) == "news from v2"

        # 3. a module the script required changes
        write(os.path.join(d, "ops_helper.lua"), 'return { tag = "h2" }\n')
        srv.wait_for_stderr(r"reload #2\)")
        assert await ask(a, "z") == "v2 h2 z loads=3"

        # 4. a broken version: the old code keeps serving, the error names file:line
        write(os.path.join(d, "app.lua"), V1 + "\nthis is not lua(\n")
        srv.wait_for_stderr(r"reload failed, the previous code keeps serving: .*app\.lua:\d+:")
        assert await ask(a, "w") == "v2 h2 w loads=3", "old code after a failed reload"

        # 5. SIGHUP reloads (fixed file again)
        write(os.path.join(d, "app.lua"), V1.replace('"v1 "', '"v3 "'))
        srv.wait_for_stderr(r"reload #3\)")
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for_stderr(r"reload #4\)")
        assert await ask(a, "q") == "v3 h2 q loads=5"
        assert seen == 0


async def publish_during_reloads(srv, d):
    """Messages published while the app reloads over and over all arrive, in order."""
    url = "ws://127.0.0.1:%d/ws" % srv.port
    async with websockets.connect(url) as sub, websockets.connect(url) as pub:
        n = 200
        async def reloader():
            for i in range(6):
                srv.proc.send_signal(signal.SIGHUP)
                await asyncio.sleep(0.03)
        async def publisher():
            for i in range(n):
                await pub.send("publish")
                await asyncio.sleep(0.002)
        await asyncio.gather(reloader(), publisher())
        got = 0
        while got < n:
            m = await asyncio.wait_for(sub.recv(), 5)
            assert m.startswith("news from"), m
            got += 1
        assert got == n


def test_reload():
    d = make_app()
    try:
        with Server(os.path.join(d, "app.lua"), args=["--watch"]) as srv:
            asyncio.run(reload_scenario(srv, d))
        with Server(os.path.join(d, "app.lua")) as srv:
            asyncio.run(publish_during_reloads(srv, d))
    finally:
        shutil.rmtree(d)
    print("ok reload")


async def shutdown_scenario(srv):
    url = "ws://127.0.0.1:%d/ws" % srv.port
    ws = await websockets.connect(url)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/slow?s=0.6")          # in flight when SIGTERM arrives
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(ws.recv(), 5)
        raise AssertionError("expected a close")
    except websockets.ConnectionClosed as e:
        assert e.code == 1001, e.code
    resp = await asyncio.get_running_loop().run_in_executor(None, conn.getresponse)
    assert resp.status == 200 and b"slept" in resp.read()
    assert resp.getheader("Connection") == "close"
    code = await asyncio.get_running_loop().run_in_executor(None, lambda: srv.proc.wait(10))
    assert code == 0, code
    assert time.monotonic() - t0 < 5


def test_shutdown():
    d = make_app()
    try:
        srv = Server(os.path.join(d, "app.lua")).start()
        asyncio.run(shutdown_scenario(srv))
        assert srv.stop() == 0
        assert "shutting down" in srv.stderr
    finally:
        shutil.rmtree(d)
    print("ok shutdown")


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read().decode()


async def traffic(port):
    url = "ws://127.0.0.1:%d/ws" % port
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        await ask(a, "m")
        await a.send("publish")
        await asyncio.wait_for(a.recv(), 5)
        await asyncio.wait_for(b.recv(), 5)


def test_metrics():
    d = make_app()
    try:
        with Server(os.path.join(d, "app.lua"), args=["--metrics", "/metrics"]) as srv:
            asyncio.run(traffic(srv.port))
            assert get(srv.port, "/boom")[0] == 500
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for_stderr(r"reload #1\)")
            status, ctype, text = get(srv.port, "/metrics")
            assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
            samples = {}
            for fam in text_string_to_metric_families(text):
                for s in fam.samples:
                    key = s.name + "".join('{%s="%s"}' % kv for kv in sorted(s.labels.items()))
                    samples[key] = s.value
            assert samples['rtserver_connections_open{protocol="http1"}'] >= 1
            assert samples["rtserver_messages_in_total"] >= 2
            assert samples["rtserver_messages_out_total"] >= 3
            assert samples["rtserver_fanout_deliveries_total"] >= 2
            assert samples["rtserver_lua_errors_total"] == 1
            assert samples["rtserver_reloads_total"] == 1
            assert samples["rtserver_reload_failures_total"] == 0
            assert samples["rtserver_http_requests_total"] >= 2
            for name in ("rtserver_slow_consumers_closed_total", "rtserver_connections_total"):
                assert name in samples, name
        # off unless asked for
        with Server(os.path.join(d, "app.lua")) as srv:
            assert get(srv.port, "/metrics")[0] == 404
    finally:
        shutil.rmtree(d)
    print("ok metrics")


def test_grpc_metrics():
    """gRPC calls are counted by method and status; unknown paths share one label."""
    import grpc
    with Server(os.path.join(os.environ.get("RT_REPO_ROOT", "."), "apps", "user_service.lua"),
                args=["--metrics", "/metrics"]) as srv:
        ch = grpc.insecure_channel("127.0.0.1:%d" % srv.port)
        get_user = ch.unary_unary("/user.UserService/GetUser")
        assert get_user(b"\x08\x01", timeout=5)          # GetUserRequest{id: 1}
        for _ in range(2):
            try:
                get_user(b"\x08\xe7\x07", timeout=5)    # id 999: NOT_FOUND
                raise AssertionError("expected NOT_FOUND")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
        for path in ("/no.Such/Thing", "/other.Svc/X"):
            try:
                ch.unary_unary(path)(b"", timeout=5)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED
        ch.close()
        text = get(srv.port, "/metrics")[2]
        got = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                if smp.name == "rtserver_grpc_calls_total":
                    got[(smp.labels["method"], smp.labels["code"])] = smp.value
        assert got[("/user.UserService/GetUser", "OK")] == 1, got
        assert got[("/user.UserService/GetUser", "NOT_FOUND")] == 2, got
        assert got[("unknown", "UNIMPLEMENTED")] == 2, got
    print("ok grpc metrics")


async def stomp_shutdown_scenario(srv):
    url = "ws://127.0.0.1:%d/ws" % srv.port
    ws = await websockets.connect(url, subprotocols=["v12.stomp"])
    await ws.send("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
    assert (await asyncio.wait_for(ws.recv(), 5)).startswith("CONNECTED")
    srv.proc.send_signal(signal.SIGTERM)
    frame = await asyncio.wait_for(ws.recv(), 5)
    assert frame.startswith("ERROR\n") and "message:server shutting down" in frame, frame
    try:
        await asyncio.wait_for(ws.recv(), 5)
        raise AssertionError("expected a close")
    except websockets.ConnectionClosed as e:
        assert e.code == 1001, e.code


def test_stomp_shutdown():
    """STOMP over WebSocket on SIGTERM: an ERROR frame saying why, then close 1001."""
    app = os.path.join(os.environ.get("RT_REPO_ROOT", "."), "apps", "order_push.lua")
    srv = Server(app, env={"RT_STOMP_TCP_PORT": "off", "USER_SERVICE": "127.0.0.1:1"}).start()
    asyncio.run(stomp_shutdown_scenario(srv))
    assert srv.stop() == 0
    print("ok stomp shutdown")


if __name__ == "__main__":
    test_reload()
    test_shutdown()
    test_metrics()
    test_grpc_metrics()
    test_stomp_shutdown()
