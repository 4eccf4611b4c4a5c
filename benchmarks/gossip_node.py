from gevent import monkey

monkey.patch_all()

__doc__ = """One gossip member in its own process, for `nomad-bench gossip`.

Run::

    python benchmarks/gossip_node.py --name node-0 --bind 127.0.0.1:7946 --http 8946 \\
        [--join 127.0.0.1:7947,...] [--tag role=bench ...] [--encrypt <base64 key>]

It hosts a :class:`~actors.gossip.member.GossipMember` (actor ``gossip``,
``lan_config()``) on a :class:`~runtime.prod.ProdNode` whose id is the
gossip address ``--bind`` and whose transport is a
:class:`~runtime.transport.GossipTransport` (UDP packets, TCP for push-pull)
bound to it -- the same wiring as the agent's LAN pool.

A small HTTP control API on ``127.0.0.1:--http`` (gevent's WSGI server), the
counterpart of ``serf agent``'s RPC; every answer is one JSON object:

* ``/status``            pid, name, gossip address
* ``/members``           ``{"members": {name: status}}`` (this member's view)
* ``/join?addrs=A,B``    join (a push-pull with each); answers ``{"num": contacted}``
* ``/leave``             graceful leave; answers once the leave has propagated, then the
                         process exits (as ``serf leave`` makes the serf agent exit)
* ``/stats``             the member's counters and the transport's
"""

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from actors.gossip.config import lan_config  # noqa: E402
from actors.gossip.member import GossipMember, Join, Leave  # noqa: E402
from actors.gossip.messages import PUSH_PULL_TYPES  # noqa: E402
from runtime.gossip_crypto import OVERHEAD, GossipCrypto  # noqa: E402
from runtime.prod import ProdNode  # noqa: E402
from runtime.transport import GossipTransport  # noqa: E402

log = logging.getLogger("gossip_node")


class GossipServer:
    def __init__(self, args: argparse.Namespace, stopping: gevent.event.Event) -> None:
        self.name = args.name
        self.stopping = stopping
        self.node = ProdNode(args.bind)
        # --encrypt: server.encrypt's AES-GCM on every packet and stream (nomad-bench gossip-crypto).
        crypto = GossipCrypto([args.encrypt]) if args.encrypt else None
        config = lan_config().with_(encrypt_overhead_bytes=OVERHEAD) if crypto else lan_config()
        self.transport = GossipTransport(args.bind, self.node.deliver_envelope, stream_types=PUSH_PULL_TYPES,
                                         crypto=crypto)
        self.transport.start()
        self.node.transport = self.transport
        tags = dict(t.split("=", 1) for t in args.tag)
        start_join = tuple(a for a in args.join.split(",") if a)
        self.member = self.node.spawn(GossipMember, "gossip", member_name=args.name, config=config,
                                      tags=tags, advertise=args.bind, start_join=start_join,
                                      keyring=crypto.keyring.keys if crypto else (),
                                      keyring_sink=crypto.install if crypto else None)

    def _call(self, make: Any, timeout: float) -> Any:
        f = self.node.make_future()
        self.member.tell(make(f))
        return f.get(timeout=timeout)

    def status(self, q: dict[str, str]) -> dict[str, Any]:
        return {"pid": os.getpid(), "name": self.name, "addr": self.node.node}

    def members(self, q: dict[str, str]) -> dict[str, Any]:
        view = self.member.ask("members", timeout=float(q.get("wait", 5)))
        return {"members": {m["Name"]: m["Status"] for m in view}}

    def join(self, q: dict[str, str]) -> dict[str, Any]:
        addrs = tuple(a for a in q.get("addrs", "").split(",") if a)
        num = self._call(lambda f: Join(addrs, reply=f), float(q.get("wait", 15)))
        return {"num": num}

    def leave(self, q: dict[str, str]) -> dict[str, Any]:
        self._call(lambda f: Leave(reply=f), float(q.get("wait", 20)))
        gevent.spawn_later(0.05, self.stopping.set)  # answer first, then exit like the serf agent
        return {"ok": True}

    def stats(self, q: dict[str, str]) -> dict[str, Any]:
        return {"member": self.member.ask("stats", timeout=5), "transport": self.transport.stats}

    def routes(self) -> dict[str, Any]:
        return {"/status": self.status, "/members": self.members, "/join": self.join, "/leave": self.leave,
                "/stats": self.stats}

    def shutdown(self) -> None:
        self.node.stop_all(timeout_s=2.0)
        self.transport.stop()


def make_app(routes: dict[str, Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        handler = routes.get(path)
        if handler is None:
            status, body = "404 Not Found", {"error": f"no route {path}"}
        else:
            try:
                status, body = "200 OK", handler(q)
            except (gevent.Timeout, Exception) as exc:
                status, body = "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


def listener(port: int) -> socket.socket:
    """The control listener, with TCP_NODELAY (Linux passes it on to accepted sockets).

    pywsgi writes a response's headers and body in two sends; without
    TCP_NODELAY the body waits for the client's delayed ACK of the headers
    (~40 ms) on a kept-alive connection, which would swamp the 20 ms polling.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="member name")
    p.add_argument("--bind", required=True, help="gossip address host:port (UDP and TCP); the node id")
    p.add_argument("--http", type=int, required=True, help="control API port on 127.0.0.1")
    p.add_argument("--join", default="", help="comma-separated addresses to join at start")
    p.add_argument("--tag", action="append", default=[], help="key=value member tag (repeatable)")
    p.add_argument("--encrypt", default="", help="base64 gossip key: encrypt like server.encrypt")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    stopping = gevent.event.Event()
    server = GossipServer(args, stopping)
    http = WSGIServer(listener(args.http), make_app(server.routes()), log=None, error_log=None)
    http.start()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    print(f"READY {args.name} {args.bind} http={args.http} pid={os.getpid()}", flush=True)
    stopping.wait()
    http.stop(timeout=1)
    server.shutdown()
    return 0


if __name__ == "__main__":
    try:
        rc = main(sys.argv[1:])
    finally:
        sys.stdout.flush()
    os._exit(rc)
