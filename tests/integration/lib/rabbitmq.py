"""A private RabbitMQ (Debian's rabbitmq-server with its bundled STOMP plugin) for the
relay tests: its own data directory, free ports, stopped at the end.

    from rabbitmq import RabbitMQ
    with RabbitMQ() as mq:       # ~10 s to start: share one per test file
        mq.stomp_port
        mq.stop_broker(); mq.start_broker()   # a broker outage in the middle of a test

stop_broker/start_broker keep the data directory, so durable state survives like a real
restart. Everything the instance started (beam and the epmd on its own port) is killed by
pid at the end; nothing else on the machine is touched."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return os.path.exists(SERVER)


class RabbitMQ:
    def __init__(self, start_timeout=60.0, web_stomp=False, tls=None):
        self.dir = tempfile.mkdtemp(prefix="rt-rabbitmq.")
        self.stomp_port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.web_stomp_port = free_port() if web_stomp else None  # STOMP over WebSocket at /ws
        self.node = "rt%d@localhost" % os.getpid()
        self.start_timeout = start_timeout
        self.proc = None
        d = self.dir
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_stomp,rabbitmq_web_stomp].\n" if web_stomp else "[rabbitmq_stomp].\n")
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            f.write("stomp.listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\n"
                    "log.console = false\nlog.file.level = info\n" % self.stomp_port)
            if web_stomp:
                f.write("web_stomp.tcp.ip = 127.0.0.1\nweb_stomp.tcp.port = %d\n" % self.web_stomp_port)
            # tls: a certs.Certs; STOMP over TLS on stomp_tls_port with its server certificate.
            self.stomp_tls_port = free_port() if tls else None
            if tls:
                f.write("stomp.listeners.ssl.1 = 127.0.0.1:%d\n"
                        "ssl_options.cacertfile = %s\nssl_options.certfile = %s\n"
                        "ssl_options.keyfile = %s\nssl_options.verify = verify_none\n"
                        "ssl_options.fail_if_no_peer_cert = false\n"
                        % (self.stomp_tls_port, tls.ca, tls.server_cert, tls.server_key))
        open(os.path.join(d, "env.conf"), "w").close()
        self.env = dict(os.environ, HOME=d, RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.amqp_port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(d, "log"),
                        RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(d, "enabled_plugins"),
                        RABBITMQ_PID_FILE=os.path.join(d, "pid"),
                        RABBITMQ_CONF_ENV_FILE=os.path.join(d, "env.conf"))

    def __enter__(self):
        self.start_broker()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.stomp_port), timeout=0.5) as s:
                s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
                s.settimeout(2)
                return s.recv(9) == b"CONNECTED"
        except OSError:
            return False

    def start_broker(self):
        log = open(os.path.join(self.dir, "server.out"), "ab")
        # Its own process group: stop_broker can signal beam and its children together.
        self.proc = subprocess.Popen([SERVER], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited (%s); see %s" % (self.proc.returncode, self.dir))
            if time.monotonic() > deadline:
                self.stop_broker()
                raise RuntimeError("rabbitmq-server not up in %.0f s; see %s" % (self.start_timeout, self.dir))
            time.sleep(0.2)

    def stop_broker(self):
        """Stops the broker at once, like a crash (SIGKILL to its process group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.stomp_port), timeout=0.2).close()
                time.sleep(0.1)
            except OSError:
                return

    def pause(self):
        """Freezes the broker (SIGSTOP): connections stay open and nothing is read."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def _kill_epmd(self):
        # The epmd that beam started on our own port: found by its port, killed by pid.
        out = subprocess.run(["pgrep", "-f", "epmd.*-port %d" % self.epmd_port],
                             capture_output=True, text=True).stdout.split()
        if not out:
            out = subprocess.run(["pgrep", "-f", "epmd"], capture_output=True, text=True).stdout.split()
            mine = []
            for pid in out:
                try:
                    with open("/proc/%s/environ" % pid, "rb") as f:
                        if ("ERL_EPMD_PORT=%d" % self.epmd_port).encode() in f.read().split(b"\0"):
                            mine.append(pid)
                except OSError:
                    pass
            out = mine
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def close(self):
        self.stop_broker()
        self._kill_epmd()
        shutil.rmtree(self.dir, ignore_errors=True)
