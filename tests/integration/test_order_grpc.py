"""The seed's second case: the order service calls UserService.GetUser over gRPC.

Two real rtserver processes: apps/user_service.lua and apps/order_push.lua (its gRPC
client pointed at the first). Creating an order fills in the user's name; an unknown user
is 404; with the user service down the order is still taken, marked UNAVAILABLE."""
import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server import Server  # noqa: E402

ROOT = os.environ.get("RT_REPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def post(port, body):
    r = urllib.request.Request("http://127.0.0.1:%d/orders" % port, data=json.dumps(body).encode(),
                               method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main():
    users_app = os.path.join(ROOT, "apps", "user_service.lua")
    orders_app = os.path.join(ROOT, "apps", "order_push.lua")
    with Server(users_app) as us:
        env = {"USER_SERVICE": "127.0.0.1:%d" % us.port, "RT_STOMP_TCP_PORT": "off"}
        with Server(orders_app, env=env) as op:
            status, order = post(op.port, {"item": "book", "user_id": 1})
            assert status == 201 and order["user_name"] == "Zhang San", (status, order)
            assert "user_error" not in order
            status, err = post(op.port, {"item": "book", "user_id": 999})
            assert status == 404 and "999" in err["error"], (status, err)
            status, order = post(op.port, {"item": "pen"})           # no user: no call
            assert status == 201 and "user_name" not in order, order
    # user service down: connection refused -> UNAVAILABLE quickly, the order is kept
    env = {"USER_SERVICE": "127.0.0.1:1", "RT_STOMP_TCP_PORT": "off"}
    with Server(orders_app, env=env) as op:
        status, order = post(op.port, {"item": "pen", "user_id": 1})
        assert status == 201 and order["user_error"] == "UNAVAILABLE", order
        assert order["user_name"] == "(unknown)"
    print("ok order -> user gRPC call")


if __name__ == "__main__":
    main()
