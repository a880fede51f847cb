"""rt.grpc.client over TLS: the seed's order service (apps/order_push.lua) calls the user
service (apps/user_service.lua) running with --tls-cert, then with mutual TLS; the server's
certificate is verified (a wrong CA, a wrong name and a plain server all fail the call
with UNAVAILABLE and a log line that says why, and the order is still taken)."""
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from certs import make_certs  # noqa: E402
from server import ROOT, SLOW, Server  # noqa: E402

USERS_APP = os.path.join(ROOT, "apps", "user_service.lua")
ORDERS_APP = os.path.join(ROOT, "apps", "order_push.lua")


def post(port, body):
    r = urllib.request.Request("http://127.0.0.1:%d/orders" % port, data=json.dumps(body).encode(),
                               method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10 * SLOW) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class GrpcClientTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.remove()

    def orders(self, users_port, **tls):
        env = {"USER_SERVICE": "localhost:%d" % users_port, "RT_STOMP_TCP_PORT": "off"}
        env.update({"USER_SERVICE_" + k.upper(): v for k, v in tls.items()})
        return Server(ORDERS_APP, env=env)

    def test_order_service_calls_the_user_service_over_tls(self):
        c = self.certs
        with Server(USERS_APP, args=c.server_args()) as us:
            with self.orders(us.port, ca=c.ca) as op:
                status, order = post(op.port, {"item": "book", "user_id": 1})
                self.assertEqual((status, order["user_name"]), (201, "Zhang San"))
                self.assertNotIn("user_error", order)
                status, err = post(op.port, {"item": "book", "user_id": 999})
                self.assertEqual(status, 404)
            # The name the certificate must carry can differ from the address dialled.
            env = {"USER_SERVICE": "127.0.0.1:%d" % us.port, "USER_SERVICE_CA": c.ca,
                   "USER_SERVICE_NAME": "localhost", "RT_STOMP_TCP_PORT": "off"}
            with Server(ORDERS_APP, env=env) as op:
                status, order = post(op.port, {"item": "pen", "user_id": 2})
                self.assertEqual(order["user_name"], "Li Si")

    def test_the_server_certificate_is_verified(self):
        c = self.certs
        with Server(USERS_APP, args=c.server_args()) as us:
            # A CA that did not sign the server's certificate.
            with self.orders(us.port, ca=c.client_ca) as op:
                status, order = post(op.port, {"item": "book", "user_id": 1})
                self.assertEqual((status, order["user_error"]), (201, "UNAVAILABLE"))
                op.wait_for_stderr(r"TLS with [\d.]+:\d+ failed: TLS handshake failed: unable to get local issuer certificate")
            # The right CA, but a name the certificate does not carry.
            with self.orders(us.port, ca=c.ca, name="users.example.test") as op:
                status, order = post(op.port, {"item": "book", "user_id": 1})
                self.assertEqual(order["user_error"], "UNAVAILABLE")
                op.wait_for_stderr(r"TLS with .* failed: .*(hostname mismatch|certificate verify failed)")
            # A plaintext client at a TLS port: the server answers 400, the call fails.
            with self.orders(us.port) as op:
                status, order = post(op.port, {"item": "book", "user_id": 1})
                self.assertEqual(order["user_error"], "UNAVAILABLE")
        # A TLS client at a plaintext server.
        with Server(USERS_APP) as us:
            with self.orders(us.port, ca=c.ca) as op:
                status, order = post(op.port, {"item": "book", "user_id": 1})
                self.assertEqual(order["user_error"], "UNAVAILABLE")
                op.wait_for_stderr(r"TLS with [\d.]+:\d+ failed")

    def test_mutual_tls_with_a_client_certificate(self):
        c = self.certs
        with Server(USERS_APP, args=c.server_args(["--tls-client-ca", c.client_ca])) as us:
            with self.orders(us.port, ca=c.ca, cert=c.alice_cert, key=c.alice_key) as op:
                status, order = post(op.port, {"item": "book", "user_id": 3})
                self.assertEqual((status, order["user_name"]), (201, "Wang Wu"))
            # Without a client certificate the user service refuses the handshake.
            with self.orders(us.port, ca=c.ca) as op:
                status, order = post(op.port, {"item": "book", "user_id": 3})
                self.assertEqual(order["user_error"], "UNAVAILABLE")
                op.wait_for_stderr(r"TLS with [\d.]+:\d+ failed: .*alert certificate required")

    def test_a_missing_ca_file_is_an_error_when_the_app_loads(self):
        env = {"USER_SERVICE": "localhost:1", "USER_SERVICE_CA": "/nonexistent/ca.pem",
               "RT_STOMP_TCP_PORT": "off"}
        srv = Server(ORDERS_APP, env=env)
        with self.assertRaises(AssertionError) as cm:
            srv.start()
        self.assertIn("cannot load the CA file '/nonexistent/ca.pem'", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
