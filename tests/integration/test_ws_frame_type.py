"""ws:send / topic:publish pick the frame type so peers never get invalid UTF-8 as text:
no flag -> text when the data is UTF-8, binary otherwise; binary=false with bytes that are
not UTF-8 is a Lua error, not a frame every compliant client would fail with 1007."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import wsraw  # noqa: E402
from server import Server  # noqa: E402


def main():
    with Server("apps/frame_type.lua") as srv:
        c, status, _, _ = wsraw.connect(srv.port, "/ft")
        assert status == 101
        c.send(wsraw.frame(wsraw.TEXT, "héllo"))
        f = c.read_frame()
        assert (f.opcode, f.payload) == (wsraw.TEXT, "auto héllo".encode()), f
        c.send(wsraw.frame(wsraw.TEXT, "bytes"))
        f = c.read_frame()
        assert (f.opcode, f.payload) == (wsraw.BINARY, b"\xff\xfe not utf-8"), f
        c.send(wsraw.frame(wsraw.TEXT, "publish-bytes"))
        f = c.read_frame()
        assert (f.opcode, f.payload) == (wsraw.BINARY, b"\xff via topic"), f
        c.send(wsraw.frame(wsraw.TEXT, "forced-text"))
        f = c.read_frame()
        assert f.opcode == wsraw.TEXT and f.payload.startswith(b"refused: text message is not valid UTF-8"), f
        c.close()
    print("ok frame type")


if __name__ == "__main__":
    main()
