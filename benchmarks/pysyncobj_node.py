"""One PySyncObj server in its own process: the peer system of `nomad-bench raft`.

Run::

    python benchmarks/pysyncobj_node.py --id 127.0.0.1:7101 --http 8101 --data DIR \\
        --peers 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 [--no-batch] [--journal]

A replicated dict (``put`` is a ``@replicated`` method) on PySyncObj's own
threads (no gevent here: PySyncObj runs its own poller on a tick thread).

* default: ``appendEntriesUseBatch=True`` (PySyncObj's default: commands are
  batched into the next append, sent every ``appendEntriesPeriod``);
* ``--no-batch``: ``appendEntriesUseBatch=False`` (every command is sent at
  once, the tick thread woken through a pipe);
* ``--journal``: ``journalFile`` and ``fullDumpFile`` in DIR (its journal is
  an mmap'ed file; PySyncObj does not fsync it per entry).

The HTTP control API (stdlib ``ThreadingHTTPServer`` on ``127.0.0.1:--http``)
has the same routes and answers as ``benchmarks/raft_node.py``: ``/status``,
``/put``, ``/get``, ``/load`` (writers are PySyncObj callbacks: C in flight,
each answer issuing the next write), ``/probe/start|result|stop``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

ROLES = {0: "follower", 1: "candidate", 2: "leader"}


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return 0.0
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def latency_figures(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(lat, 50) * 1e3, 3), "p99_ms": round(pct(lat, 99) * 1e3, 3),
            "max_ms": round(max(lat) * 1e3, 3) if lat else 0.0}


class KV(SyncObj):
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._data: dict[str, Any] = {}

    @replicated
    def put(self, key: str, value: Any) -> bool:
        self._data[key] = value
        return True

    def get_local(self, key: str) -> Any:
        return self._data.get(key)

    def dump_local(self) -> dict[str, Any]:
        return dict(self._data)


class CallbackLoad:
    """C writes in flight; each callback records the latency and issues the next write."""

    def __init__(self, kv: KV, c: int, n: int, seconds: float, keyspace: int, value: str) -> None:
        self.kv, self.c, self.n, self.keyspace, self.value = kv, c, n, keyspace, value
        self.stop_at = time.perf_counter() + seconds if seconds else float("inf")
        self.lock = threading.Lock()
        self.issued = 0
        self.outstanding = 0
        self.errors = 0
        self.lat: list[float] = []
        self.done = threading.Event()

    def _more(self) -> bool:
        return (not self.n or self.issued < self.n) and time.perf_counter() < self.stop_at

    def _issue_locked(self) -> None:
        self.issued += 1
        self.outstanding += 1
        t0 = time.perf_counter()
        key = f"k{self.issued % self.keyspace}"

        def cb(result: Any, err: Any) -> None:
            self.answered(t0, err == FAIL_REASON.SUCCESS)

        self.kv.put(key, self.value, callback=cb)

    def answered(self, t0: float, ok: bool) -> None:
        with self.lock:
            self.outstanding -= 1
            if ok:
                self.lat.append(time.perf_counter() - t0)
            else:
                self.errors += 1
            if self._more():
                self._issue_locked()
            elif self.outstanding == 0:
                self.done.set()

    def run(self, timeout: float) -> None:
        with self.lock:
            for _ in range(self.c):
                if self._more():
                    self._issue_locked()
            if self.outstanding == 0:
                return
        self.done.wait(timeout)


class Prober:
    def __init__(self, kv: KV, interval_s: float) -> None:
        self.kv, self.interval_s = kv, interval_s
        self.lock = threading.Lock()
        self.committed: list[tuple[float, float]] = []
        self.errors = 0
        self.sent = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.sent += 1
            sent = time.monotonic()

            def cb(result: Any, err: Any, sent: float = sent) -> None:
                with self.lock:
                    if err == FAIL_REASON.SUCCESS:
                        self.committed.append((sent, time.monotonic()))
                    else:
                        self.errors += 1

            self.kv.put(f"probe-{self.sent % 64}", self.sent, callback=cb)
            self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=1)

    def result(self, after: float) -> dict[str, Any]:
        with self.lock:
            committed = list(self.committed)
        first = min((c for s, c in committed if s >= after), default=None)
        last = max((c for _, c in committed), default=None)
        return {"sent": self.sent, "committed": len(committed), "errors": self.errors,
                "first_commit_after": first, "last_commit": last}


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        peers = [p for p in args.peers.split(",") if p and p != args.id]
        conf: dict[str, Any] = {"appendEntriesUseBatch": not args.no_batch}
        if args.journal:
            os.makedirs(args.data, exist_ok=True)
            conf["journalFile"] = os.path.join(args.data, "journal.bin")
            conf["fullDumpFile"] = os.path.join(args.data, "dump.bin")
        self.conf = SyncObjConf(**conf)
        self.kv = KV(args.id, peers, self.conf)
        self.prober: Prober | None = None
        self.batch = not args.no_batch

    def status(self, q: dict[str, str]) -> dict[str, Any]:
        st = self.kv.getStatus()
        leader = st.get("leader")
        return {"pid": os.getpid(), "id": str(st["self"]), "role": ROLES.get(st["state"], str(st["state"])),
                "leader": str(leader) if leader is not None else "", "term": st["raft_term"],
                "commit": st["commit_idx"], "applied": st["last_applied"], "log_len": st["log_len"],
                "batch": self.batch, "journal": self.conf.journalFile is not None,
                "election_timeout_s": [self.conf.raftMinTimeout, self.conf.raftMaxTimeout]}

    def put(self, q: dict[str, str]) -> dict[str, Any]:
        self.kv.put(q["key"], q.get("value", ""), sync=True, timeout=float(q.get("wait", 5)))
        return {"index": self.kv.raftLastApplied}

    def get(self, q: dict[str, str]) -> dict[str, Any]:
        return {"index": self.kv.raftLastApplied, "value": self.kv.get_local(q["key"])}

    def dump(self, q: dict[str, str]) -> dict[str, Any]:
        return {"index": self.kv.raftLastApplied, "kv": self.kv.dump_local()}

    def load(self, q: dict[str, str]) -> dict[str, Any]:
        c = int(q.get("c", 1))
        n = int(q.get("n", 0))
        seconds = float(q.get("seconds", 0))
        keyspace = int(q.get("keyspace", 4096))
        value = "v" * int(q.get("value_bytes", 32))
        timeout = float(q.get("wait", 10))
        if not n and not seconds:
            raise ValueError("load needs n or seconds")
        t0 = time.perf_counter()
        if c == 1 and q.get("mode") != "callback":
            # One sequential client: a blocking call per write (sync=True), as a user would.
            lat, errors = [], 0
            stop_at = t0 + seconds if seconds else float("inf")
            i = 0
            while (not n or i < n) and time.perf_counter() < stop_at:
                i += 1
                t = time.perf_counter()
                try:
                    self.kv.put(f"k{i % keyspace}", value, sync=True, timeout=timeout)
                except Exception:
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t)
            mode = "sync"
        else:
            cl = CallbackLoad(self.kv, c, n, seconds, keyspace, value)
            cl.run(seconds + timeout if seconds else timeout * max(1, n))
            lat, errors, mode = cl.lat, cl.errors, "callback"
        dt = time.perf_counter() - t0
        return {"mode": mode, "c": c, "writes": len(lat), "errors": errors, "seconds": round(dt, 3),
                "writes_per_s": round(len(lat) / dt, 1) if dt > 0 else 0.0, **latency_figures(lat)}

    def probe_start(self, q: dict[str, str]) -> dict[str, Any]:
        if self.prober is not None:
            self.prober.stop()
        self.prober = Prober(self.kv, float(q.get("interval_ms", 5)) / 1e3)
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


def make_handler(routes: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            handler = routes.get(url.path)
            if handler is None:
                code, body = 404, {"error": f"no route {url.path}"}
            else:
                try:
                    code, body = 200, handler(q)
                except Exception as exc:
                    code, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--peers", required=True)
    p.add_argument("--data", default="")
    p.add_argument("--no-batch", action="store_true", help="appendEntriesUseBatch=False")
    p.add_argument("--journal", action="store_true", help="journalFile + fullDumpFile in --data")
    args = p.parse_args(argv)
    if args.journal and not args.data:
        p.error("--journal needs --data")
    server = Server(args)
    http = ThreadingHTTPServer(("127.0.0.1", args.http), make_handler(server.routes()))
    http.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"READY {args.id} http={args.http} pid={os.getpid()}", flush=True)
    while not stop.wait(0.5):
        pass
    http.shutdown()
    server.kv.destroy()
    return 0


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(rc)
