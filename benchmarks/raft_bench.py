"""`nomad-bench raft`: three Raft server processes on loopback, ours beside PySyncObj's.

Each system runs as three processes on 127.0.0.1 (``benchmarks/raft_node.py``,
``benchmarks/pysyncobj_node.py``), driven through their small HTTP control
APIs.  Load is generated inside the leader's process (the same for both), so
the figures are Raft's, not an HTTP client's:

* **throughput**: committed writes/s with 256, 1024, 4096 and 16384
  proposals in flight, a few seconds each, and the best of them (PySyncObj's
  batching needs thousands in flight to reach its best: a write waits for the
  next 100 ms batch).  Ours: that many greenlets each blocking on a reply
  future -- the "outside world" of DESIGN.md -- and, for reference, as many
  callback reply objects; PySyncObj: that many callbacks in flight, its
  asynchronous API;
* **latency**: p50/p99 of one sequential client's writes;
* **failover**: a follower proposes a write every 5 ms; the leader is
  SIGKILLed; the figure is the time from the kill to the commit of the first
  write *sent after* the kill (``time.monotonic`` is CLOCK_MONOTONIC, shared
  by all processes on Linux);
* the raw two-process msgpack message rate of our runtime (two echo actors in
  two processes, 64 round trips in flight), to put our throughput in scale;
* the **floor** of a durable sequential write: one round trip between two
  processes of our runtime (one ping in flight) plus one disk flush
  (``fdatasync`` p50 of a small append in the data dir).  A write is
  committed once a follower has flushed it and said so, so with this
  runtime's messaging no fsync-on cluster of three answers sooner, whatever
  the Raft code does (``durable_floor_p50_ms``; ``goal_latency_reachable``
  says whether that floor is under PySyncObj's no-batch p50, which flushes
  nothing);

Ours runs with fsync on: SQLite WAL ``synchronous=FULL``, one fsync per
group-committed Ready, on every server.  Its sequential phase runs once more
with the three data dirs on tmpfs (``/dev/shm``; same code and settings, but
an fsync there costs nothing): the software path alone.  On a VM the three
servers share one disk, whose flushes largely serialize (measured here: one
fdatasync 90 us alone, ~150 us each with two or three at once), and every write
costs three of them -- the gap between the two p50s.  PySyncObj runs in its batching mode
(its default) with ``journalFile``/``fullDumpFile`` (an mmap'ed journal that
PySyncObj never fsyncs per entry) for its best throughput, and with
``appendEntriesUseBatch=False`` for its best latency.

Run: ``nomad-bench raft [--quick]`` or ``python -m benchmarks.raft_bench``.
The helpers here (:class:`Cluster`) are also used by tests/test_raft_process.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import urlopen

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {
    "ours": os.path.join(REPO, "benchmarks", "raft_node.py"),
    "pysyncobj": os.path.join(REPO, "benchmarks", "pysyncobj_node.py"),
}
INFLIGHT = 256
DESIGN_RAW_MESSAGES_PER_S = 140_000  # the foundation's two-process msgpack figure (DESIGN.md section 3)


class NodeError(Exception):
    """A control API call answered with an error (or not at all)."""

    def __init__(self, code: int, error: str) -> None:
        super().__init__(f"{code}: {error}")
        self.code, self.error = code, error


def free_ports(n: int) -> list[int]:
    """n distinct ports nobody listens on (bound to 0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(port: int, path: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urlencode(params)
    try:
        with urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        raise NodeError(exc.code, body.get("error", str(exc))) from None
    except (URLError, OSError) as exc:
        raise NodeError(0, f"{type(exc).__name__}: {exc}") from None


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll *cond* until it returns something truthy; AssertionError after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """n server processes of one kind on loopback, each with a data dir and a control port.

    Every process is started by us and ended by us, by PID (:meth:`close`).
    """

    def __init__(self, kind: str, base_dir: str, n: int = 3, extra: Iterable[str] = ()) -> None:
        self.kind = kind
        self.script = SCRIPTS[kind]
        self.base_dir = base_dir
        ports = free_ports(2 * n)
        self.ids = [f"127.0.0.1:{p}" for p in ports[:n]]
        self.http = ports[n:]
        self.name = f"{kind}-{ports[0]}"  # a fresh cluster never reuses another's data dirs
        self.data = [os.path.join(base_dir, f"{self.name}-n{i}") for i in range(n)]
        self.extra = list(extra)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def n(self) -> int:
        return len(self.ids)

    def log_path(self, i: int) -> str:
        return os.path.join(self.base_dir, f"{self.name}-n{i}.log")

    def start(self, i: int) -> None:
        os.makedirs(self.data[i], exist_ok=True)
        cmd = [sys.executable, self.script, "--id", self.ids[i], "--http", str(self.http[i]),
               "--peers", ",".join(self.ids), "--data", self.data[i], *self.extra]
        with open(self.log_path(i), "ab") as log:
            self.procs[i] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=REPO)

    def alive(self, i: int) -> bool:
        p = self.procs[i]
        return p is not None and p.poll() is None

    def status(self, i: int, timeout: float = 2.0) -> dict[str, Any] | None:
        if not self.alive(i):
            return None
        try:
            return http_get(self.http[i], "/status", timeout=timeout)
        except NodeError:
            return None

    def wait_up(self, indices: Iterable[int] | None = None, timeout: float = 20.0) -> None:
        for i in (range(self.n) if indices is None else indices):
            def up(i: int = i) -> bool:
                if not self.alive(i):
                    raise AssertionError(f"{self.kind} node {i} exited early; log:\n{self.tail(i)}")
                return self.status(i) is not None
            wait_for(up, timeout, f"{self.kind} node {i} to answer /status")

    def start_all(self, timeout: float = 20.0) -> None:
        for i in range(self.n):
            self.start(i)
        self.wait_up(timeout=timeout)

    def call(self, i: int, path: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        return http_get(self.http[i], path, timeout=timeout, **params)

    def leader(self, timeout: float = 15.0) -> int:
        """The index of the leader once every live server agrees who it is."""
        def find() -> int | None:
            sts = {i: self.status(i) for i in range(self.n) if self.alive(i)}
            if any(st is None for st in sts.values()):
                return None
            leaders = [i for i, st in sts.items() if st and st["role"] == "leader"]
            if len(leaders) != 1:
                return None
            lid = self.ids[leaders[0]]
            if all(st and st["leader"] == lid for st in sts.values()):
                return leaders[0] + 1  # truthy
            return None
        return wait_for(find, timeout, f"{self.kind} leader") - 1

    def kill(self, i: int, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        p = self.procs[i]
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=timeout)

    def close(self, grace_s: float = 3.0) -> None:
        """SIGTERM every live process we started, SIGKILL what is left after *grace_s*."""
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for p in live:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for p in live:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)

    def tail(self, i: int, lines: int = 30) -> str:
        try:
            with open(self.log_path(i), "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------- measurements
def measure_raw_rate(base_dir: str, seconds: float, inflight: int = 64) -> dict[str, Any]:
    """Two echo processes of our runtime, *inflight* pings in flight: round trips/s and messages/s.

    Then one ping at a time for *seconds* more: ``one_round_trip_ms``, the mean time of one message
    there and back between two processes of our runtime, the network part of any write's floor.
    """
    ports = free_ports(4)
    ids = [f"127.0.0.1:{p}" for p in ports[:2]]
    procs = []
    try:
        for i in range(2):
            with open(os.path.join(base_dir, f"echo-{i}.log"), "ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, SCRIPTS["ours"], "--echo", "--id", ids[i], "--http", str(ports[2 + i])],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        for i in range(2):
            wait_for(lambda i=i: _answers(ports[2 + i]), 20, f"echo node {i}")
        out = http_get(ports[2], "/pingpong", timeout=seconds + 30, target=ids[1], seconds=seconds,
                       inflight=inflight)
        one = http_get(ports[2], "/pingpong", timeout=seconds + 30, target=ids[1], seconds=seconds,
                       inflight=1)["round_trips_per_s"]
        out["one_round_trip_ms"] = round(1e3 / one, 3) if one else 0.0
        return out
    finally:
        _kill_all(procs)


def measure_flush_ms(directory: str, count: int = 300) -> float:
    """p50 of one small append + ``fdatasync`` in *directory*: what the disk alone charges a durable
    append (SQLite's WAL commit with ``synchronous=FULL`` pays at least this)."""
    from benchmarks.fsync_bench import bench_raw_fsync

    return bench_raw_fsync(directory, count, sync=os.fdatasync, size=128)["fsync_p50_ms"]


def _answers(port: int) -> bool:
    try:
        http_get(port, "/status", timeout=2)
        return True
    except NodeError:
        return False


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    for p in procs:
        try:
            p.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


def measure_failover(c: Cluster, leader: int, timeout: float = 20.0) -> float:
    """Seconds from SIGKILL of the leader to the commit of the first write sent after it."""
    prober = (leader + 1) % c.n
    c.call(prober, "/probe/start", interval_ms=5)
    wait_for(lambda: c.call(prober, "/probe/result", after=0)["committed"] >= 20, 10,
             "probe writes to commit")
    t_kill = time.monotonic()
    c.kill(leader)
    res = wait_for(lambda: (r := c.call(prober, "/probe/result", after=t_kill))["first_commit_after"] and r,
                   timeout, f"{c.kind}: a write to commit after the leader was killed", interval=0.05)
    c.call(prober, "/probe/stop")
    return res["first_commit_after"] - t_kill


def measure_system(kind: str, base_dir: str, extra: list[str], *, seconds: float, seq_writes: int,
                   levels: tuple[int, ...], modes: tuple[str, ...] = ("future",), failover: bool = True,
                   label: str = "") -> dict[str, Any]:
    """Latency of one sequential client, then throughput at each in-flight level, then failover.

    The leader is looked up again before every measurement: an overloaded cluster may have
    changed leaders, and load must be generated on the leader's process.
    """
    out: dict[str, Any] = {"tput": {}}
    with Cluster(kind, base_dir, extra=extra) as c:
        c.start_all()
        leader = c.leader()
        # Warm up: connections, caches, the first snapshots.
        c.call(leader, "/load", timeout=60, seconds=min(1.0, seconds), c=INFLIGHT, mode=modes[0])
        leader = c.leader()
        r = c.call(leader, "/load", timeout=60 + seq_writes, n=seq_writes, c=1)
        out["seq"] = r
        print(f"  {label:31} one sequential client: p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms"
              f"  ({r['writes_per_s']:,.0f} writes/s, errors {r['errors']})", flush=True)
        for mode in modes:
            for level in levels:
                leader = c.leader()
                r = c.call(leader, "/load", timeout=seconds + 90, seconds=seconds, c=level, mode=mode)
                out["tput"][(mode, level)] = r
                print(f"  {label:31} {level:>6} in flight ({r['mode']:8}):"
                      f" {r['writes_per_s']:>9,.0f} writes/s  (p50 {r['p50_ms']:8.2f} ms,"
                      f" p99 {r['p99_ms']:8.2f} ms, errors {r['errors']})", flush=True)
        if failover:
            leader = c.leader()
            out["failover_s"] = measure_failover(c, leader)
            print(f"  {label:31} SIGKILL leader -> next commit: {out['failover_s']:.3f} s", flush=True)
    return out


def best(out: dict[str, Any], mode: str) -> float:
    return max(r["writes_per_s"] for (m, _), r in out["tput"].items() if m == mode)


def at(out: dict[str, Any], mode: str, level: int) -> float:
    return out["tput"][(mode, level)]["writes_per_s"]


def run(quick: bool = False) -> dict[str, Any]:
    from actors.raft.core import RaftTimings

    seconds = 2.0 if quick else 4.0
    seq_writes = 300 if quick else 2000
    levels = (INFLIGHT, 4096) if quick else (INFLIGHT, 1024, 4096, 16384)
    timings = RaftTimings()
    base = tempfile.mkdtemp(prefix="raft-bench-")
    print(f"three servers per system on 127.0.0.1, data in {base}; {os.cpu_count()} CPUs", flush=True)
    try:
        raw = measure_raw_rate(base, 1.0 if quick else 3.0)
        print(f"  raw two-process msgpack rate (our runtime, 64 in flight):"
              f" {raw['round_trips_per_s']:,} round trips/s = {raw['messages_per_s']:,} messages/s",
              flush=True)
        flush_ms = measure_flush_ms(base)
        floor_ms = round(raw["one_round_trip_ms"] + flush_ms, 3)
        print(f"  floor of one durable sequential write: one round trip {raw['one_round_trip_ms']:.3f} ms"
              f" + one disk flush (fdatasync p50) {flush_ms:.3f} ms = {floor_ms:.3f} ms", flush=True)
        ours = measure_system("ours", base, ["--sync", "FULL"], seconds=seconds, seq_writes=seq_writes,
                              levels=levels, modes=("future", "callback"), label="ours (sqlite, fsync)")
        # Its batching mode answers a sequential write every ~100 ms: fewer samples suffice.
        peer_best = measure_system("pysyncobj", base, ["--journal"], seconds=seconds,
                                   seq_writes=20 if quick else 50,
                                   levels=levels, modes=("callback",), label="pysyncobj (batch, journal)")
        peer_nb = measure_system("pysyncobj", base, ["--journal", "--no-batch"], seconds=seconds,
                                 seq_writes=seq_writes, levels=levels, modes=("callback",), failover=False,
                                 label="pysyncobj (no batch, journal)")
        ours_tmpfs = None
        if os.path.isdir("/dev/shm"):
            shm = tempfile.mkdtemp(prefix="raft-bench-", dir="/dev/shm")
            try:
                ours_tmpfs = measure_system("ours", shm, ["--sync", "FULL"], seconds=seconds,
                                            seq_writes=seq_writes, levels=(), failover=False,
                                            label="ours (sqlite on tmpfs)")
            finally:
                shutil.rmtree(shm, ignore_errors=True)
        peer_nb_mem = None
        if not quick:
            peer_nb_mem = measure_system("pysyncobj", base, ["--no-batch"], seconds=seconds,
                                         seq_writes=seq_writes, levels=(INFLIGHT,), modes=("callback",),
                                         failover=False, label="pysyncobj (no batch, memory)")
    finally:
        shutil.rmtree(base, ignore_errors=True)

    election_timeout_s = round(timings.tick_s * timings.election_ticks, 3)
    writes = best(ours, "future")
    nobatch_p50 = peer_nb["seq"]["p50_ms"]
    nobatch_p99 = peer_nb["seq"]["p99_ms"]
    if peer_nb_mem is not None and peer_nb_mem["seq"]["p50_ms"] < nobatch_p50:
        nobatch_p50, nobatch_p99 = peer_nb_mem["seq"]["p50_ms"], peer_nb_mem["seq"]["p99_ms"]
    peer = {
        "writes_per_s": at(peer_best, "callback", INFLIGHT),
        "p50_ms": peer_best["seq"]["p50_ms"],
        "p99_ms": peer_best["seq"]["p99_ms"],
        "failover_s": round(peer_best["failover_s"], 3),
        "election_timeout_s": 0.4,  # raftMinTimeout; its timeouts are drawn from [0.4, 1.4) s
        "best_writes_per_s": best(peer_best, "callback"),
        "nobatch_p50_ms": nobatch_p50,
        "nobatch_p99_ms": nobatch_p99,
        "nobatch_writes_per_s": best(peer_nb, "callback"),
        "in_flight_levels": list(levels),
    }
    figures: dict[str, Any] = {
        "writes_per_s": writes,
        "p50_ms": ours["seq"]["p50_ms"],
        "p99_ms": ours["seq"]["p99_ms"],
        "failover_s": round(ours["failover_s"], 3),
        "election_timeout_s": election_timeout_s,
        "writes_per_s_256": at(ours, "future", INFLIGHT),
        "callback_writes_per_s": best(ours, "callback"),
        "raw_round_trips_per_s": raw["round_trips_per_s"],
        "raw_messages_per_s": raw["messages_per_s"],
        "fraction_of_raw_messages": (round(writes / raw["messages_per_s"], 3)
                                     if raw["messages_per_s"] else 0.0),
        "fraction_of_raw_round_trips": (round(writes / raw["round_trips_per_s"], 3)
                                        if raw["round_trips_per_s"] else 0.0),
        "fraction_of_design_raw_messages": round(writes / DESIGN_RAW_MESSAGES_PER_S, 3),
        # The least a Raft of three servers on this runtime can answer a durable write in: the entry
        # must reach a follower and be flushed there before the leader may count a majority (its own
        # flush runs meanwhile), so one round trip of the runtime plus one flush.
        "one_round_trip_ms": raw["one_round_trip_ms"],
        "flush_p50_ms": flush_ms,
        "durable_floor_p50_ms": floor_ms,
        "goal_latency_reachable": floor_ms <= nobatch_p50,
        "p50_ms_tmpfs": ours_tmpfs["seq"]["p50_ms"] if ours_tmpfs is not None else None,
        "goal_throughput_met": writes >= peer["best_writes_per_s"],
        "goal_latency_met": ours["seq"]["p50_ms"] <= peer["nobatch_p50_ms"],
        "goal_failover_met": ours["failover_s"] < 2 * election_timeout_s,
        "peer": peer,
    }
    w = 16
    print()
    print(f"  {'':40}{'ours':>{w}}{'PySyncObj':>{w}}")
    print(f"  {'writes/s, best of in-flight levels':40}{writes:>{w},.0f}{peer['best_writes_per_s']:>{w},.0f}"
          "  (peer: batching + journal)")
    print(f"  {'writes/s, 256 in flight':40}{figures['writes_per_s_256']:>{w},.0f}"
          f"{peer['writes_per_s']:>{w},.0f}")
    print(f"  {'writes/s, no batching (peer)':40}{'':>{w}}{peer['nobatch_writes_per_s']:>{w},.0f}")
    print(f"  {'sequential p50 ms':40}{figures['p50_ms']:>{w}.3f}{peer['nobatch_p50_ms']:>{w}.3f}"
          "  (peer: no batching)")
    print(f"  {'sequential p99 ms':40}{figures['p99_ms']:>{w}.3f}{peer['nobatch_p99_ms']:>{w}.3f}"
          "  (peer: no batching)")
    if ours_tmpfs is not None:
        print(f"  {'sequential p50 ms, data on tmpfs':40}{figures['p50_ms_tmpfs']:>{w}.3f}{'':>{w}}"
              "  (ours: the software path, no disk flush)")
    print(f"  {'floor: round trip + flush, ms':40}{floor_ms:>{w}.3f}{'':>{w}}"
          "  (this runtime's round trip: no Raft on it answers sooner)")
    print(f"  {'sequential p50 ms, batching (peer)':40}{'':>{w}}{peer['p50_ms']:>{w}.3f}")
    print(f"  {'SIGKILL leader -> next commit, s':40}{figures['failover_s']:>{w}.3f}"
          f"{peer['failover_s']:>{w}.3f}  (election timeout: ours {election_timeout_s} s, peer 0.4-1.4 s)")
    print(f"  ours / raw msgpack rate ({raw['messages_per_s']:,} msgs/s):"
          f" {figures['fraction_of_raw_messages']:.3f} ({figures['fraction_of_raw_round_trips']:.3f}"
          f" of {raw['round_trips_per_s']:,} round trips/s); of DESIGN.md's"
          f" {DESIGN_RAW_MESSAGES_PER_S:,} msgs/s: {figures['fraction_of_design_raw_messages']:.3f}")
    print(f"  goal, one config with fsync on: writes/s >= peer best: {figures['goal_throughput_met']};"
          f" p50 <= peer no-batch p50: {figures['goal_latency_met']};"
          f" failover < 2x election timeout: {figures['goal_failover_met']}")
    if not figures["goal_latency_reachable"]:
        print(f"  the p50 goal is below the floor on this machine: {floor_ms:.3f} ms (round trip + flush)"
              f" > peer no-batch p50 {nobatch_p50:.3f} ms (which flushes nothing)")
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), sort_keys=True))
