"""Starts the real rtserver binary for a test and stops it again (Python twin of server.js).

    from server import Server
    with Server("apps/echo.lua", args=["--max-message", "65536"]) as srv:
        srv.port, srv.host, srv.stderr, srv.wait_for_stderr(r"Lua error")
    # leaving the block stops it: SIGTERM, SIGKILL after a timeout; raises on a
    # sanitizer report, a forced kill or a failing exit status.

The binary is $RTSERVER (run.sh exports it), else build/rtserver; `app` is relative to
tests/integration/ unless absolute. Under $RT_TEST_LOGDIR every server's stderr is kept
so run.sh can scan it too.
"""
import os
import re
import signal
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.environ.get("RT_REPO_ROOT") or os.path.dirname(os.path.dirname(HERE))
BINARY = os.path.join(ROOT, os.environ.get("RTSERVER", "build/rtserver"))
ASAN = bool(os.environ.get("RT_ASAN"))
SLOW = 3 if ASAN else 1

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
BANNER = re.compile(r"rtserver listening on (?:https?)://(\[[^\]]+\]|[^:/\s]+):(\d+)/")

_serial = [0]


def sanitizer_report(stderr):
    for marker in SANITIZER_MARKERS:
        at = stderr.find(marker)
        if at >= 0:
            return stderr[max(0, at - 200):at + 3000]
    return None


def _write_log(tag, stderr):
    logdir = os.environ.get("RT_TEST_LOGDIR")
    if not logdir:
        return
    _serial[0] += 1
    import sys
    base = os.path.splitext(os.path.basename(sys.argv[0] or "test"))[0]
    try:
        with open(os.path.join(logdir, "%s.%d.%d.%s.stderr" % (base, os.getpid(), _serial[0], tag)), "w") as f:
            f.write(stderr)
    except OSError:
        pass


class ServerError(AssertionError):
    pass


class Server:
    def __init__(self, app="apps/echo.lua", args=(), env=None, timeout=10.0, binary=None):
        self.app = app if os.path.isabs(app) else os.path.join(HERE, app)
        args = list(args)
        if not any(a in ("--port", "-p") or a.startswith("--port=") for a in args):
            args = ["--port", "0"] + args
        self.args = args + [self.app]
        self.env = dict(os.environ, **(env or {}))
        self.timeout = timeout * SLOW
        self.binary = binary or BINARY
        self.proc = None
        self.host = None
        self.port = None
        self._chunks = []
        self._cond = threading.Condition()
        self._reader = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        self.proc = subprocess.Popen([self.binary] + self.args, cwd=ROOT, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                m = BANNER.search(self.stderr)
                if m:
                    break
                if self.proc.poll() is not None and not self._reader.is_alive():
                    self.proc.stderr.close()
                    raise ServerError("rtserver exited before it was ready (%s); args: %s\nstderr:\n%s"
                                      % (self.proc.returncode, " ".join(self.args), self.stderr))
                left = deadline - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    raise ServerError("rtserver not ready in %.0f s; stderr:\n%s" % (self.timeout, self.stderr))
                self._cond.wait(min(left, 0.1))
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        return self

    def _read_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            with self._cond:
                self._chunks.append(line.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout=12.0, allow_failure=False):
        """SIGTERM, then SIGKILL after timeout (the server drains up to 10 s by default).
        Returns the exit status."""
        if self.proc is None:
            return None
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self.proc.stderr.close()
        stderr = self.stderr
        _write_log("server", stderr)
        report = sanitizer_report(stderr)
        if report:
            raise ServerError("sanitizer report from rtserver:\n" + report)
        if allow_failure:
            return self.proc.returncode
        if killed:
            raise ServerError("rtserver did not exit within %.0f s of SIGTERM; stderr:\n%s" % (timeout * SLOW, stderr))
        if self.proc.returncode != 0:
            raise ServerError("rtserver exited with %s after SIGTERM; stderr:\n%s" % (self.proc.returncode, stderr))
        return 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- observation -------------------------------------------------------------------
    @property
    def stderr(self):
        with self._cond:
            return "".join(self._chunks)

    def wait_for_stderr(self, pattern, timeout=5.0, start=0):
        """Returns the match once stderr[start:] matches pattern; raises on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                m = rx.search("".join(self._chunks)[start:])
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError("stderr did not match %r in %.0f s; stderr:\n%s"
                                      % (pattern, timeout * SLOW, "".join(self._chunks)))
                self._cond.wait(min(left, 0.1))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None
