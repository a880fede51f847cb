"""For tests/bench/relay_run.sh: starts a private RabbitMQ (STOMP over TCP for the relay,
web-stomp for the baseline), prints "stomp=<port> web=<port> pid=<beam's pid>", and stops
it on SIGTERM."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "lib"))
from rabbitmq import RabbitMQ  # noqa: E402

mq = RabbitMQ(web_stomp=True)


def stop(*_):
    mq.close()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
try:
    mq.start_broker()
except Exception as e:  # noqa: BLE001
    print("error=%s" % e, flush=True)
    mq.close()
    sys.exit(1)
with open(os.path.join(mq.dir, "pid")) as f:  # beam's, for the CPU it spends
    beam = f.read().strip()
print("stomp=%d web=%d pid=%s" % (mq.stomp_port, mq.web_stomp_port, beam), flush=True)
while True:
    time.sleep(3600)
