"""TLS from Python peers: Debian's python3-grpcio over a secure channel (TLS, and mutual TLS
with a client certificate), and python3-stomp over STOMP's TLS TCP port (rt.stomp {
tls = true }), where the session's tls names a verified client."""
import json
import os
import queue
import ssl
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from certs import make_certs  # noqa: E402
from server import ROOT, SLOW, Server  # noqa: E402

import grpc  # noqa: E402
import stomp  # noqa: E402
import stomp.transport  # noqa: E402
from protos import load_messages  # noqa: E402

# stomp.py reads on its receiver thread while the main thread writes CONNECT, both on one
# ssl socket. Under TLS 1.3 the session tickets the server sends after the handshake land
# in that window and the two threads race inside the client's OpenSSL object: about one
# connect in twenty loses its CONNECT (the server never receives it; a single-threaded
# client never sees this, nor does stomp.py with tickets off). TLS 1.2 sends its ticket
# inside the handshake, so stomp.py talks TLS 1.2 here.
stomp.transport.DEFAULT_SSL_VERSION = ssl.PROTOCOL_TLSv1_2

WAIT = 5 * SLOW
_cls = load_messages(os.path.join(ROOT, "proto", "user.proto"))
User, GetUserRequest, Empty = _cls("user.User"), _cls("user.GetUserRequest"), _cls("user.Empty")


def get_user(channel):
    return channel.unary_unary("/user.UserService/GetUser",
                               request_serializer=GetUserRequest.SerializeToString,
                               response_deserializer=User.FromString)


def list_users(channel):
    return channel.unary_stream("/user.UserService/ListUsers",
                                request_serializer=Empty.SerializeToString,
                                response_deserializer=User.FromString)


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.msgs = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.msgs.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])


class TlsBase(unittest.TestCase):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs()
        cls.srv = Server("apps/tls_app.lua", args=cls.certs.server_args(cls.extra)).start()
        ctx = ssl.create_default_context(cafile=cls.certs.ca)
        if cls.extra:
            ctx.load_cert_chain(cls.certs.alice_cert, cls.certs.alice_key)
        with urllib.request.urlopen("https://localhost:%d/stomp-port" % cls.srv.port, context=ctx,
                                    timeout=WAIT) as res:
            cls.stomp_port = json.loads(res.read())["port"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.certs.remove()

    def channel(self, client_cert=True):
        c = self.certs
        key = chain = None
        if client_cert and self.extra:
            key, chain = c.read("alice.key"), c.read("alice")
        creds = grpc.ssl_channel_credentials(root_certificates=c.read("ca"), private_key=key,
                                             certificate_chain=chain)
        ch = grpc.secure_channel("localhost:%d" % self.srv.port, creds)
        self.addCleanup(ch.close)
        return ch

    def stomp_client(self, client_cert=True):
        conn = stomp.Connection12([("localhost", self.stomp_port)], heartbeats=(0, 0),
                                  reconnect_attempts_max=1)
        kw = {"ca_certs": self.certs.ca}
        if client_cert and self.extra:
            kw.update(cert_file=self.certs.alice_cert, key_file=self.certs.alice_key)
        conn.set_ssl(for_hosts=[("localhost", self.stomp_port)], **kw)
        lis = Listener()
        conn.set_listener("t", lis)
        conn.connect(wait=True)
        self.addCleanup(lambda: conn.is_connected() and conn.disconnect())
        return conn, lis

    def stomp_whoami(self):
        conn, lis = self.stomp_client()
        conn.subscribe("/user/queue/whoami", "w", headers={"receipt": "r1"})
        self.assertEqual(lis.receipts.get(timeout=WAIT), "r1")
        conn.send("/app/whoami", "")
        return json.loads(lis.msgs.get(timeout=WAIT).body)


class Tls(TlsBase):
    def test_grpcio_secure_channel(self):
        ch = self.channel()
        u = get_user(ch)(GetUserRequest(id=11), timeout=WAIT)
        self.assertEqual((u.id, u.name, u.email), (11, "over TLSv1.3 h2", ""))
        users = list(list_users(ch)(Empty(), timeout=WAIT))
        self.assertEqual(len(users), 50)

    def test_grpcio_refuses_a_server_it_cannot_verify(self):
        creds = grpc.ssl_channel_credentials(root_certificates=self.certs.read("client_ca"))
        ch = grpc.secure_channel("localhost:%d" % self.srv.port, creds)
        self.addCleanup(ch.close)
        with self.assertRaises(grpc.RpcError) as cm:
            get_user(ch)(GetUserRequest(id=1), timeout=WAIT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_stomp_over_tls_tcp(self):
        who = self.stomp_whoami()
        self.assertTrue(who["tls"])
        self.assertEqual(who["version"], "TLSv1.2")
        self.assertIsNone(who["peer"])

    def test_plain_stomp_on_the_tls_port_is_closed(self):
        conn = stomp.Connection12([("127.0.0.1", self.stomp_port)], heartbeats=(0, 0),
                                  reconnect_attempts_max=1)
        with self.assertRaises(stomp.exception.ConnectFailedException):
            conn.connect(wait=True)


class MutualTls(TlsBase):
    extra = ("--tls-client-ca",)  # the path follows: see setUpClass

    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs()
        cls.extra = ("--tls-client-ca", cls.certs.client_ca)
        certs = cls.certs
        cls.srv = Server("apps/tls_app.lua", args=certs.server_args(cls.extra)).start()
        ctx = ssl.create_default_context(cafile=certs.ca)
        ctx.load_cert_chain(certs.alice_cert, certs.alice_key)
        with urllib.request.urlopen("https://localhost:%d/stomp-port" % cls.srv.port, context=ctx,
                                    timeout=WAIT) as res:
            cls.stomp_port = json.loads(res.read())["port"]

    def test_grpcio_with_a_client_certificate(self):
        u = get_user(self.channel())(GetUserRequest(id=2), timeout=WAIT)
        self.assertEqual(u.email, "alice@example.test")

    def test_grpcio_without_a_client_certificate_fails(self):
        with self.assertRaises(grpc.RpcError) as cm:
            get_user(self.channel(client_cert=False))(GetUserRequest(id=2), timeout=WAIT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_stomp_session_sees_the_verified_peer(self):
        who = self.stomp_whoami()
        self.assertEqual(who["peer"], "alice@example.test")
        self.assertEqual(who["subject"], "O=rtserver test,CN=alice")

    def test_stomp_without_a_client_certificate_fails(self):
        with self.assertRaises(Exception):
            self.stomp_client(client_cert=False)


class UserServiceOverTls(unittest.TestCase):
    """The seed's user service (apps/user_service.lua) with --tls-cert, and with mutual
    TLS, called by grpcio's secure channel."""

    def test_get_user_over_tls_and_mutual_tls(self):
        c = make_certs()
        self.addCleanup(c.remove)
        app = os.path.join(ROOT, "apps", "user_service.lua")
        for extra, key, chain in (((), None, None),
                                  (("--tls-client-ca", c.client_ca), c.read("alice.key"), c.read("alice"))):
            with Server(app, args=c.server_args(extra)) as srv:
                creds = grpc.ssl_channel_credentials(root_certificates=c.read("ca"),
                                                     private_key=key, certificate_chain=chain)
                with grpc.secure_channel("localhost:%d" % srv.port, creds) as ch:
                    u = get_user(ch)(GetUserRequest(id=1), timeout=WAIT)
                    self.assertEqual(u.name, "Zhang San")
                    self.assertEqual(len(list(list_users(ch)(Empty(), timeout=WAIT))), 3)


if __name__ == "__main__":
    unittest.main()
