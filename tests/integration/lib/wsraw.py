"""Hand-built WebSocket client frames and a strict reader for the server's frames."""
import base64
import hashlib
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """A client frame. length overrides the encoded length (for lying frames)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + (reason.encode() if isinstance(reason, str) else reason)


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        return struct.unpack(">H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        return "Frame(op=%d fin=%s len=%d %r)" % (self.opcode, self.fin, len(self.payload), self.payload[:40])


class WsConn:
    """A raw connection. `response` holds the handshake answer: (status, headers, body)."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out; have %d bytes: %r" % (len(self.buf), self.buf[:200]))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise TimeoutError("timed out; have %d bytes: %r" % (len(self.buf), self.buf[:200]))
        if not data:
            self.eof = True
            raise EOFError("connection closed; have %d bytes: %r" % (len(self.buf), self.buf[:200]))
        self.buf += data

    def read_http(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
        n = 0 if status == 101 else int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill(deadline)
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self._parse()
            if f:
                return f
            self._fill(deadline)

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        n, off = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, off = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, off = struct.unpack(">Q", b[2:10])[0], 10
        masked = bool(b[1] & 0x80)
        key = None
        if masked:
            if len(b) < off + 4:
                return None
            key, off = b[off:off + 4], off + 4
        if len(b) < off + n:
            return None
        payload = b[off:off + n]
        if key:
            payload = bytes(x ^ key[i & 3] for i, x in enumerate(payload))
        self.buf = b[off + n:]
        return Frame(bool(b[0] & 0x80), (b[0] >> 4) & 7, b[0] & 0x0F, masked, payload)

    def read_close(self, timeout=None):
        """Reads frames up to a close frame; returns (close_frame, frames_before)."""
        before = []
        while True:
            f = self.read_frame(timeout)
            if f.opcode == CLOSE:
                return f, before
            before.append(f)

    def wait_eof(self, timeout=None):
        """True once the server has closed the TCP connection (data before it is dropped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self.buf = b""
                self._fill(deadline)
        except EOFError:
            return True
        except TimeoutError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connect(port, path="/echo", host="127.0.0.1", headers=None, key=None, timeout=5.0, method="GET"):
    """Opens a TCP connection and sends an upgrade request. headers: dict (None drops a
    default) or a list of (name, value) pairs appended as is. Returns (conn, status,
    headers, body)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = key or base64.b64encode(os.urandom(16)).decode()
    h = {"Host": "%s:%d" % (host, port), "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    extra = []
    if isinstance(headers, dict):
        h.update(headers)
    elif headers:
        extra = list(headers)
    req = "%s %s HTTP/1.1\r\n" % (method, path)
    for k, v in list(h.items()) + extra:
        if v is not None:
            req += "%s: %s\r\n" % (k, v)
    sock.sendall((req + "\r\n").encode("latin1"))
    conn = WsConn(sock, timeout)
    status, rh, body = conn.read_http()
    conn.key = key
    return conn, status, rh, body
