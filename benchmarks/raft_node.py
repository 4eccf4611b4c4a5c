from gevent import monkey

monkey.patch_all()

__doc__ = """One Raft server in its own process, for `nomad-bench raft` and tests/test_raft_process.py.

Run::

    python benchmarks/raft_node.py --id 127.0.0.1:7001 --http 8001 --data DIR \\
        --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

It hosts a :class:`~actors.raft.peer.RaftPeer` (actor ``raft``) on a
:class:`~runtime.prod.ProdNode` whose transport is a :class:`TcpTransport`
bound to ``--id``, with a :class:`SqliteStorage` in ``DIR/raft.db``
(``synchronous=FULL`` unless ``--sync`` says otherwise; ``use_threadpool=True``).

A small HTTP control API on ``127.0.0.1:--http`` (gevent's WSGI server) is the
"outside world": its request greenlets tell the Raft actor ``Propose``/``Read``
with a reply future and block on it.  Every answer is one JSON object:

* ``/status``                   Raft status (role, term, leader, commit, applied, ...) and pid
* ``/put?key=K&value=V``        linearizable write; answers once applied (index)
* ``/get?key=K[&stale=1]``      linearizable (ReadIndex) or stale local read
* ``/dump[?stale=1]``           the whole ``kv`` table and the applied index
* ``/load?seconds=S&c=C[&n=N&mode=future|callback&keyspace=K&value_bytes=B&prefix=P&record=1]``
                                C concurrent writers for S seconds (or N writes): writes/s,
                                latency p50/p99 (with ``prefix``/``record``: unique keys, and the
                                acknowledged writes listed in ``acked``).  ``future`` writers
                                are greenlets blocking on a reply future each; ``callback``
                                writers are reply objects that issue the next write when
                                answered (no greenlet per writer).
* ``/probe/start?interval_ms=I`` a write every I ms, each answered asynchronously;
  ``/probe/result?after=T``     the first write sent at or after monotonic time T that
                                committed, and when (``time.monotonic()`` is CLOCK_MONOTONIC,
                                comparable across processes on Linux); ``/probe/stop``.

``--echo`` runs an echo actor instead of Raft, and ``/pingpong?target=ID&seconds=S&inflight=64``
measures the raw two-process msgpack message rate against another ``--echo`` node.
"""

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from actors.raft.peer import Propose, RaftConfig, RaftError, RaftPeer, Read  # noqa: E402
from actors.state.store import command  # noqa: E402
from runtime.actor import NodeActor  # noqa: E402
from runtime.messages import Ping, Pong  # noqa: E402
from runtime.prod import ProdNode  # noqa: E402
from runtime.transport import TcpTransport  # noqa: E402

log = logging.getLogger("raft_node")


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return 0.0
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def latency_figures(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(lat, 50) * 1e3, 3), "p99_ms": round(pct(lat, 99) * 1e3, 3),
            "max_ms": round(max(lat) * 1e3, 3) if lat else 0.0}


# ---------------------------------------------------------------- raft side
class Workload:
    """What a load run writes and what it saw: keys, latencies, errors, and (optionally) the acked writes.

    Keys cycle through *keyspace* keys (bounded state) unless *prefix* is given: then every write
    has its own key ``prefix + seq`` and value ``seq``, and with *record* the acknowledged ones are
    kept, so a test can check each of them later.
    """

    def __init__(self, q: dict[str, str]) -> None:
        self.n = int(q.get("n", 0))
        seconds = float(q.get("seconds", 0))
        if not self.n and not seconds:
            raise ValueError("load needs n or seconds")
        self.stop_at = time.perf_counter() + seconds if seconds else float("inf")
        self.keyspace = int(q.get("keyspace", 4096))
        self.value = "v" * int(q.get("value_bytes", 32))
        self.prefix = q.get("prefix", "")
        self.record = q.get("record") == "1"
        self.issued = 0
        self.lat: list[float] = []
        self.errors = 0
        self.error_samples: dict[str, int] = {}
        self.acked: dict[str, str] = {}

    def more(self) -> bool:
        return (not self.n or self.issued < self.n) and time.perf_counter() < self.stop_at

    def next(self) -> tuple[str, str, bytes]:
        self.issued += 1
        if self.prefix:
            key, value = f"{self.prefix}{self.issued}", str(self.issued)
        else:
            key, value = f"k{self.issued % self.keyspace}", self.value
        return key, value, command("kv_put", key=key, value=value)

    def ok(self, key: str, value: str, t0: float) -> None:
        self.lat.append(time.perf_counter() - t0)
        if self.record:
            self.acked[key] = value

    def failed(self, exc: Any) -> None:
        self.errors += 1
        text = f"{type(exc).__name__}: {exc}"
        self.error_samples[text] = self.error_samples.get(text, 0) + 1


class _LoadReply:
    """A reply object (set / set_exception) that records its write and issues the next one."""

    __slots__ = ("key", "loader", "t0", "value")

    def __init__(self, loader: "_CallbackLoad", key: str, value: str) -> None:
        self.loader, self.key, self.value = loader, key, value
        self.t0 = time.perf_counter()

    def set(self, value: Any = None) -> None:
        self.loader.w.ok(self.key, self.value, self.t0)
        self.loader.answered()

    def set_exception(self, exc_info: Any = None) -> None:
        self.loader.w.failed(exc_info[1] if isinstance(exc_info, tuple) else exc_info)
        self.loader.answered()


class _CallbackLoad:
    """C writes in flight, each answered write starting the next; no greenlet per writer."""

    def __init__(self, raft: Any, w: Workload, c: int) -> None:
        self.raft, self.w, self.c = raft, w, c
        self.outstanding = 0
        self.done = gevent.event.Event()

    def issue(self) -> None:
        key, value, data = self.w.next()
        self.outstanding += 1
        self.raft.tell(Propose(data, _LoadReply(self, key, value)))

    def answered(self) -> None:
        self.outstanding -= 1
        if self.w.more():
            self.issue()
        elif self.outstanding == 0:
            self.done.set()

    def run(self, timeout: float) -> None:
        for _ in range(self.c):
            if self.w.more():
                self.issue()
        if self.outstanding:
            self.done.wait(timeout)


class _ProbeReply:
    __slots__ = ("prober", "sent")

    def __init__(self, prober: "Prober", sent: float) -> None:
        self.prober, self.sent = prober, sent

    def set(self, value: Any = None) -> None:
        self.prober.committed.append((self.sent, time.monotonic()))

    def set_exception(self, exc_info: Any = None) -> None:
        self.prober.errors += 1


class Prober:
    """Proposes one write every interval and records (sent, committed) monotonic times."""

    def __init__(self, server: "RaftServer", interval_s: float) -> None:
        self.server, self.interval_s = server, interval_s
        self.committed: list[tuple[float, float]] = []
        self.errors = 0
        self.sent = 0
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            self.sent += 1
            data = command("kv_put", key=f"probe-{self.sent % 64}", value=self.sent)
            self.server.raft.tell(Propose(data, _ProbeReply(self, time.monotonic())))
            gevent.sleep(self.interval_s)

    def stop(self) -> None:
        self.greenlet.kill(block=True, timeout=1)

    def result(self, after: float) -> dict[str, Any]:
        first = min((c for s, c in self.committed if s >= after), default=None)
        last = max((c for _, c in self.committed), default=None)
        return {"sent": self.sent, "committed": len(self.committed), "errors": self.errors,
                "first_commit_after": first, "last_commit": last}


class RaftServer:
    def __init__(self, args: argparse.Namespace) -> None:
        from actors.raft.sqlite_store import SqliteStorage

        self.node = ProdNode(args.id)
        self.transport = TcpTransport(args.id, self.node.deliver_envelope)
        self.transport.on_peer_lost = self.node.peer_lost  # as the agent wires it
        self.node.transport = self.transport
        self.transport.start()
        os.makedirs(args.data, exist_ok=True)
        self.storage = SqliteStorage(os.path.join(args.data, "raft.db"), synchronous=args.sync,
                                     use_threadpool=not args.no_threadpool)
        peers = tuple(p for p in args.peers.split(",") if p)
        self.raft = self.node.spawn(RaftPeer, "raft", storage=self.storage, config=RaftConfig(),
                                    bootstrap=peers)
        self.prober: Prober | None = None

    # -------------------------------------------------------- requests
    def _call(self, msg_factory: Any, timeout: float) -> Any:
        f = self.node.make_future()
        self.raft.tell(msg_factory(f))
        return f.get(timeout=timeout)

    def status(self, q: dict[str, str]) -> dict[str, Any]:
        st = self.raft.ask("status", timeout=float(q.get("wait", 5)))
        st["pid"] = os.getpid()
        st["transport"] = self.transport.stats
        return st

    def put(self, q: dict[str, str]) -> dict[str, Any]:
        data = command("kv_put", key=q["key"], value=q.get("value", ""))
        index, result = self._call(lambda f: Propose(data, f), float(q.get("wait", 5)))
        return {"index": index, "result": result}

    def get(self, q: dict[str, str]) -> dict[str, Any]:
        key = q["key"]
        stale = q.get("stale") == "1"
        index, value = self._call(lambda f: Read(lambda st: st.get("kv", key), f, stale=stale),
                                  float(q.get("wait", 5)))
        return {"index": index, "value": value}

    def dump(self, q: dict[str, str]) -> dict[str, Any]:
        stale = q.get("stale") == "1"
        index, kv = self._call(lambda f: Read(lambda st: dict(st.tables["kv"]), f, stale=stale),
                               float(q.get("wait", 5)))
        return {"index": index, "kv": kv}

    def load(self, q: dict[str, str]) -> dict[str, Any]:
        c = int(q.get("c", 1))
        timeout = float(q.get("wait", 10))
        mode = q.get("mode", "future")
        w = Workload(q)
        t0 = time.perf_counter()
        if mode == "callback":
            _CallbackLoad(self.raft, w, c).run(timeout + (w.stop_at - t0 if w.stop_at != float("inf")
                                                        else timeout * max(1, w.n)))
        elif mode == "future":
            self._future_load(w, c, timeout)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        dt = time.perf_counter() - t0
        out = {"mode": mode, "c": c, "writes": len(w.lat), "errors": w.errors, "seconds": round(dt, 3),
               "writes_per_s": round(len(w.lat) / dt, 1) if dt > 0 else 0.0, **latency_figures(w.lat),
               "error_samples": dict(sorted(w.error_samples.items(), key=lambda kv: -kv[1])[:5])}
        if w.record:
            out["acked"] = w.acked
        return out

    def _future_load(self, w: Workload, c: int, timeout: float) -> None:
        """C greenlets, each proposing and blocking on its reply future in turn (the outside world)."""
        raft, make_future = self.raft, self.node.make_future

        def writer() -> None:
            while w.more():
                key, value, data = w.next()
                f = make_future()
                t = time.perf_counter()
                raft.tell(Propose(data, f))
                try:
                    f.get(timeout=timeout)
                except Exception as exc:
                    w.failed(exc)
                    continue
                w.ok(key, value, t)

        gevent.joinall([gevent.spawn(writer) for _ in range(c)])

    def probe_start(self, q: dict[str, str]) -> dict[str, Any]:
        if self.prober is not None:
            self.prober.stop()
        self.prober = Prober(self, float(q.get("interval_ms", 5)) / 1e3)
        return {"ok": True}

    def probe_result(self, q: dict[str, str]) -> dict[str, Any]:
        if self.prober is None:
            raise ValueError("no prober running")
        return self.prober.result(float(q.get("after", 0)))

    def probe_stop(self, q: dict[str, str]) -> dict[str, Any]:
        if self.prober is not None:
            self.prober.stop()
        return {"ok": True}

    def routes(self) -> dict[str, Any]:
        return {"/status": self.status, "/put": self.put, "/get": self.get, "/dump": self.dump,
                "/load": self.load, "/probe/start": self.probe_start, "/probe/result": self.probe_result,
                "/probe/stop": self.probe_stop}

    def shutdown(self) -> None:
        if self.prober is not None:
            self.prober.stop()
        self.node.stop_all(timeout_s=2.0)
        self.transport.stop()


# ---------------------------------------------------------------- echo side (raw message rate)
class _Echo(NodeActor):
    """Answers Ping with Pong; with a driver attached, keeps `inflight` pings going to a target."""

    def __init__(self, env: Any, name: str) -> None:
        super().__init__(env, name)
        self.target = ""
        self.received = 0
        self.running = False

    def receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            self.send(message.reply_to_node, message.reply_to_actor,
                      Pong(seq=message.seq, src=self.env.node, body=message.body))
        elif isinstance(message, Pong):
            self.received += 1
            if self.running:
                self.send(self.target, "echo",
                          Ping(seq=message.seq + 1, reply_to_node=self.env.node, reply_to_actor="echo"))
        elif isinstance(message, tuple) and message[0] == "drive":
            _, self.target, inflight = message
            self.running, self.received = True, 0
            for i in range(inflight):
                self.send(self.target, "echo",
                          Ping(seq=i, reply_to_node=self.env.node, reply_to_actor="echo"))
        elif message == "halt":
            self.running = False
        elif message == "count":
            return self.received
        return None


class EchoServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.node = ProdNode(args.id)
        self.transport = TcpTransport(args.id, self.node.deliver_envelope)
        self.node.transport = self.transport
        self.transport.start()
        self.echo = self.node.spawn(_Echo, "echo")

    def status(self, q: dict[str, str]) -> dict[str, Any]:
        return {"pid": os.getpid(), "echo": True, "transport": self.transport.stats}

    def pingpong(self, q: dict[str, str]) -> dict[str, Any]:
        seconds = float(q.get("seconds", 2))
        warm = float(q.get("warmup", 0.3))
        self.echo.tell(("drive", q["target"], int(q.get("inflight", 64))))
        gevent.sleep(warm)
        c0, t0 = self.echo.ask("count"), time.perf_counter()
        gevent.sleep(seconds)
        c1, t1 = self.echo.ask("count"), time.perf_counter()
        self.echo.tell("halt")
        rtt = (c1 - c0) / (t1 - t0)
        return {"round_trips_per_s": round(rtt), "messages_per_s": round(2 * rtt)}

    def routes(self) -> dict[str, Any]:
        return {"/status": self.status, "/pingpong": self.pingpong}

    def shutdown(self) -> None:
        self.node.stop_all(timeout_s=2.0)
        self.transport.stop()


# ---------------------------------------------------------------- HTTP
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
            except RaftError as exc:
                status, body = "503 Service Unavailable", {"error": str(exc)}
            except (gevent.Timeout, Exception) as exc:
                status, body = "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True, help="this server's node id and Raft address, host:port")
    p.add_argument("--http", type=int, required=True, help="control API port on 127.0.0.1")
    p.add_argument("--peers", default="", help="comma-separated node ids of the initial voters")
    p.add_argument("--data", default="", help="data directory (raft.db lives here)")
    p.add_argument("--sync", default="FULL", help="SQLite synchronous mode (FULL fsyncs every save)")
    p.add_argument("--no-threadpool", action="store_true",
                   help="run SQLite calls on the hub, not in gevent's threadpool")
    p.add_argument("--echo", action="store_true", help="run an echo actor instead of Raft (raw message rate)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    if not args.echo and not args.data:
        p.error("--data is required")
    server: Any = EchoServer(args) if args.echo else RaftServer(args)
    http = WSGIServer(("127.0.0.1", args.http), make_app(server.routes()), log=None, error_log=None)
    http.start()

    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    print(f"READY {args.id} http={args.http} pid={os.getpid()}", flush=True)
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
