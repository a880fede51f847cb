"""An idle WebSocket gives its wslay context back and gets a fresh one when bytes come.

With --ws-ping 1 the connection timer ticks twice a second, so after ~1.5 s of silence the
context is freed. These cases must behave exactly as on a connection that never idled:
a message after the idle period; a fragmented message whose halves straddle the idle period
(the context must NOT be freed mid-message); a frame whose bytes straddle it; a close
handshake after it; and the server's keepalive ping still answered."""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import wsraw  # noqa: E402
from server import Server  # noqa: E402


def closes(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/closes" % port, timeout=5) as r:
        return json.loads(r.read().decode())


def data(c):
    """The next frame that is not a keepalive ping (those are answered)."""
    while True:
        fr = c.read_frame()
        if fr.opcode != wsraw.PING:
            return fr
        c.send(wsraw.frame(wsraw.PONG, fr.payload))


def open_echo(port):
    c, status, _, _ = wsraw.connect(port, "/echo")
    assert status == 101
    hello = c.read_frame()
    assert hello.payload == b"hello -", hello
    return c


def main():
    with Server("apps/echo.lua", args=["--ws-ping", "1", "--ws-idle", "30"]) as srv:
        port = srv.port
        # 1. a message after the context was released
        c = open_echo(port)
        c.send(wsraw.frame(wsraw.TEXT, "one"))
        assert data(c).payload == b"one"
        time.sleep(1.8)
        c.send(wsraw.frame(wsraw.TEXT, "two"))
        assert data(c).payload == b"two"

        # 2. a fragmented message straddling the idle period
        c.send(wsraw.frame(wsraw.TEXT, "frag-", fin=False))
        time.sleep(1.8)
        c.send(wsraw.frame(wsraw.CONT, "ment", fin=True))
        assert data(c).payload == b"frag-ment"

        # 3. one frame's bytes straddling the idle period
        f = wsraw.frame(wsraw.BINARY, b"\x00\x01" * 100)
        c.send(f[:7])
        time.sleep(1.8)
        c.send(f[7:])
        got = data(c)
        assert got.opcode == wsraw.BINARY and got.payload == b"\x00\x01" * 100

        # 4. the close handshake after idling
        time.sleep(1.8)
        c.send(wsraw.frame(wsraw.CLOSE, wsraw.close_payload(1000, "bye")))
        fr = data(c)
        assert fr.opcode == wsraw.CLOSE and fr.close_code == 1000, fr
        c.close()
        deadline = time.time() + 5
        while "close /echo 1000 bye" not in closes(port):
            assert time.time() < deadline, closes(port)
            time.sleep(0.05)

        # 5. keepalive pings go out on an idle connection and the pong is taken
        c = open_echo(port)
        deadline = time.time() + 6
        ping = None
        while time.time() < deadline:
            fr = c.read_frame(timeout=6)
            if fr.opcode == wsraw.PING:
                ping = fr
                break
        assert ping is not None, "no keepalive ping"
        c.send(wsraw.frame(wsraw.PONG, ping.payload))
        time.sleep(1.5)
        c.send(wsraw.frame(wsraw.TEXT, "still here"))
        fr = c.read_frame()
        while fr.opcode == wsraw.PING:
            fr = c.read_frame()
        assert fr.payload == b"still here"
        c.close()
    print("ok ws idle context release")


if __name__ == "__main__":
    main()
