"""The HTTP edge's own CPU per job registration: ``PUT /v1/jobs`` served with Raft stubbed out.

``nomad-bench api-register`` measures a registration end to end on three servers, where the
server that takes the request spends only part of its CPU on the request itself (reading and
answering it, decoding, canonicalising and validating the job, encoding the command); Raft, the
state store and the scheduler take the rest.  This isolates that part: the agent's WSGI server and
:class:`actors.http_api.App`, as the agent builds them, serve ``PUT /v1/jobs`` on loopback while a
stub Raft answers every proposal at once with a canned result (nothing is applied), and a load
process sends the same job bodies as ``nomad-bench api``.  Figures: ``edge_us_per_register`` (the
serving process's user + system CPU per answered request; the least of ``ROUNDS`` rounds, as the
machine is shared) and, in process and without sockets, ``handler_us_per_register`` (App alone on
a prepared WSGI environ: routing, the handler, the answer's encoding).

Run: ``nomad-bench api-edge [--quick]`` (about 15 s) or ``python -m benchmarks.api_edge_bench [--seconds S]``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ROUNDS = 3
CONNS = 4  # connections from the load process (one request in flight each)
HANDLER_CALLS = 3000  # in-process App calls per round
# A registration's reply, as the state store answers one (the stub's canned result).
_RESULT = {"ok": True, "index": 0, "EvalID": "8b5b1a4e-0000-4000-8000-000000000000", "EvalCreateIndex": 0,
           "JobModifyIndex": 0}


class _StubRaft:
    """Answers every Propose at once with the canned result at the next index (Reads: None)."""

    def __init__(self) -> None:
        self.index = 0

    def is_alive(self) -> bool:
        return True

    def tell(self, msg: Any) -> None:
        from actors.raft.peer import Propose

        self.index += 1
        if isinstance(msg, Propose):
            msg.reply.set((self.index, {**_RESULT, "index": self.index, "EvalCreateIndex": self.index,
                                        "JobModifyIndex": self.index}))
        else:
            msg.reply.set((self.index, (self.index, True, None)))


class _StubAgent:
    def is_alive(self) -> bool:
        return True

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        return {"config": {"Region": "global", "Server": {}}}


class _StubEnv:
    def __init__(self) -> None:
        from runtime.prod import GeventFuture

        self._future = GeventFuture
        self.refs = {"raft": _StubRaft(), "agent": _StubAgent()}

    def lookup(self, name: str) -> Any:
        return self.refs.get(name)

    def make_future(self) -> Any:
        return self._future()

    def now(self) -> float:
        return time.monotonic()


def _app() -> Any:
    from actors.http_api import Api, App, HttpContext
    from actors.metrics import Metrics

    ctx = HttpContext(metrics=Metrics(clock=time.monotonic))
    return App(Api(_StubEnv(), ctx))  # type: ignore[arg-type]


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def serve(port_file: str) -> None:
    """The serving process: the agent's WSGI server on an ephemeral port; prints its CPU on stdin's EOF."""
    import logging

    import gevent
    import gevent.pool
    from gevent.pywsgi import LoggingLogAdapter

    from actors.http_api import MAX_CONNECTIONS, bind_listener, log
    from actors.http_limits import LimitedWSGIServer

    listener = bind_listener("127.0.0.1", 0)
    server = LimitedWSGIServer(listener, _app(), log=None, error_log=LoggingLogAdapter(log, logging.DEBUG),
                               spawn=gevent.pool.Pool(MAX_CONNECTIONS))
    server.start()
    with open(port_file, "w") as fh:
        fh.write(str(listener.getsockname()[1]))
    from gevent.fileobject import FileObjectThread

    stdin = FileObjectThread(sys.stdin)
    while True:  # "mark" lines: answer the CPU used so far
        line = stdin.readline()
        if not line:
            return
        print(f"{_cpu_s():.6f}", flush=True)


def _load(port: int, seconds: float) -> tuple[int, int]:
    import gevent

    from benchmarks.api_load import Conn, job_body

    counter = iter(range(10**9))
    done = [0, 0]
    stop_at = time.monotonic() + seconds

    def loop() -> None:
        conn = Conn(f"127.0.0.1:{port}")
        while time.monotonic() < stop_at:
            status, _, _ = conn.request("PUT", "/v1/jobs", job_body(f"edge-{next(counter)}"))
            done[0 if status == 200 else 1] += 1
        conn.close()

    gevent.joinall([gevent.spawn(loop) for _ in range(CONNS)])
    return done[0], done[1]


def edge_rounds(seconds: float) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="api-edge-") as tmp:
        port_file = os.path.join(tmp, "port")
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.api_edge_bench", "--serve", port_file],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not (os.path.exists(port_file) and open(port_file).read()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the serving process did not start")
                time.sleep(0.05)
            port = int(open(port_file).read())

            def mark() -> float:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("mark\n")
                proc.stdin.flush()
                return float(proc.stdout.readline())

            _load(port, 0.5)  # warm-up: imports, first-call caches
            per: list[float] = []
            errors = 0
            for _ in range(ROUNDS):
                c0 = mark()
                ok, bad = _load(port, seconds)
                c1 = mark()
                errors += bad
                per.append((c1 - c0) * 1e6 / max(1, ok + bad))
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(10)
    return {"edge_us_per_register": round(min(per), 1), "edge_us_rounds": [round(x, 1) for x in per],
            "errors": errors}


def handler_rounds() -> dict[str, Any]:
    from benchmarks.api_load import job_body

    app = _app()
    bodies = [job_body(f"h-{i}") for i in range(HANDLER_CALLS)]

    def start_response(status: str, headers: Any) -> None:
        if not status.startswith("200"):
            raise RuntimeError(status)

    per = []
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for b in bodies:
            env = {"REQUEST_METHOD": "PUT", "PATH_INFO": "/v1/jobs", "QUERY_STRING": "",
                   "CONTENT_LENGTH": str(len(b)), "CONTENT_TYPE": "application/json",
                   "wsgi.input": io.BytesIO(b)}
            app(env, start_response)
        per.append((time.process_time() - t0) * 1e6 / len(bodies))
    return {"handler_us_per_register": round(min(per), 1), "handler_us_rounds": [round(x, 1) for x in per]}


def run(quick: bool = False, seconds: float = 3.0) -> dict[str, Any]:
    out = handler_rounds()
    out.update(edge_rounds(1.0 if quick else seconds))
    print(f"  PUT /v1/jobs at the HTTP edge (Raft stubbed): {out['edge_us_per_register']} us of the serving "
          f"process's CPU per registration (rounds {out['edge_us_rounds']}); App alone "
          f"{out['handler_us_per_register']} us", flush=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--serve")
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.serve:
        serve(a.serve)
    else:
        print(json.dumps(run(seconds=a.seconds), sort_keys=True))
