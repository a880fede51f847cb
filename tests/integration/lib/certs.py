"""Test certificates made with openssl when a test starts (Python twin of certs.js): a CA
for servers, a server certificate for localhost / 127.0.0.1 / ::1, a CA for clients with
alice's certificate, and mallory's from a CA the server does not trust.

    from certs import make_certs
    c = make_certs()          # c.ca, c.server_cert, c.server_key, c.client_ca, c.alice_cert ...
    c.read("ca")              # PEM bytes
    c.remove()
"""
import os
import shutil
import subprocess
import tempfile

CA_EXT = ["[req]", "distinguished_name = dn", "[dn]", "[v3]",
          "basicConstraints = critical, CA:TRUE", "keyUsage = critical, keyCertSign, cRLSign",
          "subjectKeyIdentifier = hash"]
SERVER_EXT = ["basicConstraints = CA:FALSE", "keyUsage = digitalSignature",
              "extendedKeyUsage = serverAuth", "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1"]


def client_ext(email):
    return ["basicConstraints = CA:FALSE", "keyUsage = digitalSignature",
            "extendedKeyUsage = clientAuth", "subjectAltName = email:" + email]


def _openssl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def _issue(d, name, subject, by, ext):
    _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", name + ".key"], d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("\n".join(ext) + "\n")
    if by is None:
        _openssl(["req", "-x509", "-new", "-key", name + ".key", "-subj", subject, "-days", "2",
                  "-out", name + ".pem", "-extensions", "v3", "-config", name + ".ext"], d)
        return
    _openssl(["req", "-new", "-key", name + ".key", "-subj", subject, "-out", name + ".csr"], d)
    _openssl(["x509", "-req", "-in", name + ".csr", "-CA", by + ".pem", "-CAkey", by + ".key",
              "-CAcreateserial", "-days", "2", "-out", name + ".pem", "-extfile", name + ".ext"], d)


class Certs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rt-certs-")
        d = self.dir
        _issue(d, "ca", "/CN=rtserver test CA", None, CA_EXT)
        _issue(d, "server", "/CN=localhost/O=rtserver test", "ca", SERVER_EXT)
        _issue(d, "client_ca", "/CN=rtserver test client CA", None, CA_EXT)
        _issue(d, "alice", "/CN=alice/O=rtserver test", "client_ca", client_ext("alice@example.test"))
        _issue(d, "rogue_ca", "/CN=somebody else", None, CA_EXT)
        _issue(d, "mallory", "/CN=mallory", "rogue_ca", client_ext("mallory@example.test"))
        p = lambda f: os.path.join(d, f)  # noqa: E731
        self.ca, self.client_ca = p("ca.pem"), p("client_ca.pem")
        self.server_cert, self.server_key = p("server.pem"), p("server.key")
        self.alice_cert, self.alice_key = p("alice.pem"), p("alice.key")
        self.mallory_cert, self.mallory_key = p("mallory.pem"), p("mallory.key")

    def read(self, name):
        if not name.endswith((".pem", ".key")):
            name += ".pem"
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def server_args(self, extra=()):
        return ["--tls-cert", self.server_cert, "--tls-key", self.server_key] + list(extra)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def make_certs():
    return Certs()
