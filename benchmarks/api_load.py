"""Load process for `nomad-bench api`: HTTP load on our three servers or on etcd's JSON gateway.

Run as its own process (``python -m benchmarks.api_load <plan.json>``) so
the agents' CPU is measured apart from the load's.  Clients are gevent
greenlets, each with one keep-alive HTTP/1.1 connection and one request in
flight (a minimal client: the request is pre-built bytes, the answer is
read by Content-Length or chunks, never parsed beyond the status line, so
the load costs little CPU).  Connections are spread over the targets
round-robin, as clients behind a load balancer would be.

The plan names the phases; each prints a line to stderr, and the last line
on stdout is one JSON object of every phase's figures.

* ``nodes`` -- register N simulated client nodes over a server's RPC port
  (:class:`benchmarks.heartbeat_loadgen.LoadGen`), which then keep
  heartbeating at the TTL the servers hand out, as real clients do;
* ``throughput`` -- C connections, each a request loop, for S seconds: the
  request rate and latency percentiles of the answers (non-2xx counted);
* ``sequential`` -- one client, N requests one after another, taking the
  targets in turn over one connection each (p50, p99, and each target's p50);
* ``backlog`` -- right after a phase, the evaluations still pending (the
  scheduling its registrations caused that has not run yet);
* ``wake`` -- a blocking query parked, then a job registered through another
  server: time from the registration's answer to the blocked query's answer.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402

# One answer slower than this is a failed benchmark, not a latency sample.
REQUEST_TIMEOUT_S = 60.0
# A blocking query is parked this long before the change that should wake it
# (the server must have received it; loopback takes microseconds).
PARK_S = 0.3
_READ = 256 * 1024
# Registered nodes send their first heartbeat within the client's initial
# stagger (10 s, heartbeat_loadgen.INITIAL_STAGGER_S); wait for all of them.
SETTLE_DEADLINE_S = 30.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


class Conn:
    """One keep-alive HTTP/1.1 connection with one request in flight."""

    def __init__(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        self.addr = addr
        self.sock = socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, method: str, path: str, body: bytes = b"",
                content_type: str = "application/json") -> tuple[int, dict[str, str], bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.addr}\r\n"
        if body or method in ("PUT", "POST"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        return self.read()

    def _fill(self) -> None:
        data = self.sock.recv(_READ)
        if not data:
            raise ConnectionError(f"{self.addr} closed the connection")
        self.buf += data

    def read(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, headers, self._chunked()
        length = int(headers.get("content-length", "0"))
        parts, have = [self.buf], len(self.buf)
        while have < length:
            data = self.sock.recv(max(_READ, length - have))
            if not data:
                raise ConnectionError(f"{self.addr} closed the connection mid-answer")
            parts.append(data)
            have += len(data)
        data = b"".join(parts)
        body, self.buf = data[:length], data[length:]
        return status, headers, body

    def _chunked(self) -> bytes:
        out = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            out.append(self.buf[:size])
            self.buf = self.buf[size + 2:]
            if size == 0:
                return b"".join(out)

    def close(self) -> None:
        self.sock.close()


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def summary(lat: list[float], elapsed: float, errors: int, error_texts: dict[str, int]) -> dict[str, Any]:
    return {"requests": len(lat), "per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(pct(lat, 0.5) * 1000, 3), "p99_ms": round(pct(lat, 0.99) * 1000, 3),
            "max_ms": round(max(lat, default=0.0) * 1000, 3), "errors": errors,
            "error_texts": dict(itertools.islice(error_texts.items(), 5)), "seconds": round(elapsed, 2)}


# ------------------------------------------------------------ request makers

def job_body(job_id: str) -> bytes:
    """A small service job: one group, one raw_exec task (as `nomad job init` makes, smaller)."""
    return json.dumps({"Job": {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
            "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["600"]},
            "Resources": {"CPU": 10, "MemoryMB": 10}}]}]}}, separators=(",", ":")).encode()


def etcd_put_body(key: str) -> bytes:
    value = b"v" * 64
    return json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value).decode()}).encode()


Maker = Callable[[int], tuple[str, str, bytes]]


def maker(kind: str, prefix: str) -> Maker:
    if kind == "nodes":
        return lambda i: ("GET", "/v1/nodes", b"")
    if kind == "health":
        return lambda i: ("GET", "/v1/agent/health", b"")
    if kind == "register":
        return lambda i: ("PUT", "/v1/jobs", job_body(f"{prefix}-{i}"))
    if kind == "etcd_put":
        return lambda i: ("POST", "/v3/kv/put", etcd_put_body(f"/{prefix}/{i}"))
    raise ValueError(f"unknown request kind {kind!r}")


# ------------------------------------------------------------ phases

def cpu_each(pids: list[int]) -> tuple[list[float], list[float]]:
    """Each process's user and system CPU seconds so far (0 for one that is gone)."""
    user, system = [], []
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            user.append(0.0)
            system.append(0.0)
            continue
        user.append(t.user)
        system.append(t.system)
    return user, system


def throughput(targets: list[str], make: Maker, conns: int, seconds: float,
               pids: list[int]) -> dict[str, Any]:
    counter = itertools.count()
    lat: list[float] = []
    errors: dict[str, int] = {}
    stop_at = [0.0]
    opened = [Conn(targets[i % len(targets)]) for i in range(conns)]

    def loop(conn: Conn) -> None:
        while time.monotonic() < stop_at[0]:
            method, path, body = make(next(counter))
            t0 = time.perf_counter()
            status, _, answer = conn.request(method, path, body)
            dt = time.perf_counter() - t0
            if 200 <= status < 300:
                lat.append(dt)
            else:
                text = f"{status} {answer[:80].decode(errors='replace')}"
                errors[text] = errors.get(text, 0) + 1

    me = psutil.Process()
    each0, my0 = cpu_each(pids), me.cpu_times()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    greenlets = [gevent.spawn(loop, c) for c in opened]
    gevent.joinall(greenlets, timeout=seconds + REQUEST_TIMEOUT_S)
    elapsed = time.monotonic() - t0
    my1 = me.cpu_times()
    for g in greenlets:
        if g.exception is not None:
            errors[repr(g.exception)[:80]] = errors.get(repr(g.exception)[:80], 0) + 1
    for c in opened:
        c.close()
    out = summary(lat, elapsed, sum(errors.values()), errors)
    each1 = cpu_each(pids)
    user = [b - a for a, b in zip(each0[0], each1[0], strict=True)]
    system = [b - a for a, b in zip(each0[1], each1[1], strict=True)]
    out["servers_cpu_cores"] = round((sum(user) + sum(system)) / elapsed, 2)
    # Each server's CPU per answered request (user and system ms): on a shared
    # machine the rate depends on the cores others leave, this much less.
    n = len(lat) + sum(errors.values())
    out["cpu_ms_per_request"] = [round((u + sy) * 1000 / n, 3) if n else 0.0
                                 for u, sy in zip(user, system, strict=True)]
    out["sys_ms_per_request"] = [round(sy * 1000 / n, 3) if n else 0.0 for sy in system]
    out["load_cpu_cores"] = round((my1.user + my1.system - my0.user - my0.system) / elapsed, 2)
    return out


def sequential(targets: list[str], make: Maker, n: int) -> dict[str, Any]:
    """One client, N requests one after another, taking the targets in turn (one connection each).

    Every member answers a third of them (with three), leader and followers
    alike, so the figure does not depend on which member happened to win the
    election: a follower forwards a write to the leader, in etcd as here.
    ``p50_by_target_ms`` gives each member's own median.
    """
    conns = [Conn(t) for t in targets]
    lat: list[float] = []
    by_target: list[list[float]] = [[] for _ in targets]
    errors: dict[str, int] = {}
    t0 = time.monotonic()
    for i in range(n):
        method, path, body = make(i)
        k = i % len(conns)
        s = time.perf_counter()
        status, _, answer = conns[k].request(method, path, body)
        if 200 <= status < 300:
            lat.append(time.perf_counter() - s)
            by_target[k].append(lat[-1])
        else:
            text = f"{status} {answer[:80].decode(errors='replace')}"
            errors[text] = errors.get(text, 0) + 1
    for c in conns:
        c.close()
    out = summary(lat, time.monotonic() - t0, sum(errors.values()), errors)
    out["p50_by_target_ms"] = [round(pct(x, 0.5) * 1000, 3) for x in by_target]
    return out


def wake(targets: list[str], trials: int, prefix: str, wait: str) -> dict[str, Any]:
    """Register through targets[i % n] while a blocking query waits on targets[(i + 1) % n].

    The watcher re-parks on every answer that does not list the new job yet
    (the job list also wakes on allocation changes the scheduler makes), so
    the sample is the time from the registration's answer to the first
    blocking-query answer that shows the job; negative when the watcher's
    server applied it before the registration's answer reached its client.
    """
    samples: list[float] = []
    failures = 0
    n = len(targets)
    for i in range(trials):
        job_id = f"{prefix}-{i}"
        needle = f'"ID":"{job_id}"'.encode()
        writer, watcher = Conn(targets[i % n]), Conn(targets[(i + 1) % n])
        _, headers, _ = watcher.request("GET", "/v1/jobs")
        woke: dict[str, Any] = {"index": int(headers.get("x-nomad-index", "0")), "parks": 0}

        def park(c: Conn = watcher, out: dict[str, Any] = woke, needle: bytes = needle) -> None:
            while True:
                out["parks"] += 1
                st, hd, body = c.request("GET", f"/v1/jobs?index={out['index']}&wait={wait}")
                out["at"], out["status"] = time.perf_counter(), st
                out["index"] = int(hd.get("x-nomad-index", "0"))
                if st != 200 or needle in body:
                    return

        g = gevent.spawn(park)
        gevent.sleep(PARK_S)
        st, _, _ = writer.request("PUT", "/v1/jobs", job_body(job_id))
        registered_at = time.perf_counter()
        g.join(timeout=REQUEST_TIMEOUT_S)
        if st != 200 or not g.successful() or woke.get("status") != 200:
            failures += 1
        else:
            samples.append(woke["at"] - registered_at)
        writer.close()
        watcher.close()
    return {"trials": trials, "samples_ms": [round(s * 1000, 2) for s in samples],
            "median_ms": round(pct(samples, 0.5) * 1000, 2),
            "max_ms": round(max(samples, default=0) * 1000, 2), "failures": failures}


def backlog(target: str) -> dict[str, Any]:
    conn = Conn(target)
    status, _, body = conn.request("GET", "/v1/evaluations?stale")
    conn.close()
    evals = json.loads(body) if status == 200 else []
    return {"evals": len(evals), "pending": sum(1 for e in evals if e.get("Status") == "pending"),
            "status": status}


def register_nodes(rpc: str, n: int) -> tuple[Any, float]:
    from benchmarks.heartbeat_loadgen import LoadGen

    gen = LoadGen(rpc, lanes=16, seed=7)
    gen.start()
    nodes = gen.add_nodes(n)
    took = gen.register(nodes, inflight=128, deadline_s=300)
    # Steady state: every node's first heartbeat (initializing -> ready, a
    # Raft write each) lands within the initial stagger; reads start after.
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    while not all(gen.beat) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    return gen, took


def main(argv: list[str]) -> int:
    with open(argv[0]) as fh:
        plan = json.load(fh)
    out: dict[str, Any] = {}
    keep: list[Any] = []  # the node load generator keeps heartbeating while it is referenced
    for phase in plan["phases"]:
        name, kind = phase["name"], phase["kind"]
        if kind == "nodes":
            gen, took = register_nodes(phase["rpc"], phase["count"])
            keep.append(gen)
            out[name] = {"registered": phase["count"], "seconds": round(took, 2)}
        elif kind == "throughput":
            out[name] = throughput(phase["targets"], maker(phase["request"], phase.get("prefix", name)),
                                   phase["conns"], phase["seconds"], phase.get("pids", []))
        elif kind == "sequential":
            out[name] = sequential(phase["targets"], maker(phase["request"], phase.get("prefix", name)),
                                   phase["count"])
        elif kind == "backlog":
            out[name] = backlog(phase["targets"][0])
        elif kind == "wake":
            out[name] = wake(phase["targets"], phase["trials"], phase.get("prefix", name), phase["wait"])
        else:
            raise ValueError(f"unknown phase kind {kind!r}")
        out[name]["loadavg_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine, for the record
        log(f"  [{name}] {json.dumps(out[name], sort_keys=True)[:400]}")
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
