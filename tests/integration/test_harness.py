"""The Python harness (lib/server.py) fails a test when the server misbehaves."""
import os
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import Server, ServerError  # noqa: E402

# The fake server's made-up reports must not reach run.sh's scan of the server logs.
os.environ.pop("RT_TEST_LOGDIR", None)
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "fake_rtserver.sh")


def fake(mode):
    return Server(binary=FAKE, env={"FAKE_MODE": mode})


class Harness(unittest.TestCase):
    def test_clean(self):
        srv = fake("clean").start()
        self.assertEqual((srv.host, srv.port), ("127.0.0.1", 65000))
        self.assertEqual(srv.stop(), 0)

    def test_sanitizer_reports_fail(self):
        for mode, word in (("asan", "AddressSanitizer"), ("ubsan", "runtime error"), ("lsan", "LeakSanitizer")):
            with self.subTest(mode=mode):
                srv = fake(mode).start()
                with self.assertRaisesRegex(ServerError, word):
                    srv.stop()

    def test_failing_exit_and_hang(self):
        srv = fake("fail").start()
        with self.assertRaisesRegex(ServerError, "exited with 3"):
            srv.stop()
        srv = fake("hang").start()
        with self.assertRaisesRegex(ServerError, "did not exit"):
            srv.stop(timeout=0.3)

    def test_early_exit(self):
        with self.assertRaisesRegex(ServerError, "(?s)exited before it was ready.*cannot do it"):
            fake("early").start()

    def test_real_server(self):
        with Server("apps/echo.lua") as srv:
            start = len(srv.stderr)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with self.assertRaises(urllib.error.HTTPError) as cm:
                opener.open("http://127.0.0.1:%d/fail" % srv.port, timeout=5)
            self.assertEqual(cm.exception.code, 500)
            m = srv.wait_for_stderr(r"Lua error: ([^\n]*)", start=start)
            self.assertIn("route exploded", m.group(1))


if __name__ == "__main__":
    unittest.main(verbosity=2)
