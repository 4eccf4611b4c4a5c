"""`nomad-bench fsync`: what a durable Raft append costs on this machine.

Figures (per directory: the system temp dir and the repo's own disk):

* raw ``fsync`` of a 4 KiB append (the floor any durable write pays);
* :class:`SqliteStorage` with ``synchronous=FULL``: one save() per entry, and
  one save() per 100-entry batch (one Ready carrying many entries) --
  entries/s, saves/s and save() latency p50/p99;
* ``synchronous=NORMAL`` single-entry saves, to show what the fsync costs.

Then, on the temp dir, the gevent question: a plain save() blocks the hub
(every actor in the process) for the whole fsync; ``use_threadpool=True``
runs it in gevent's threadpool.  We measure save() latency and the hub's
worst stall (lateness of a 1 ms timer greenlet) with the hub idle and with a
CPU-bound greenlet competing for the GIL.

Run: ``nomad-bench fsync [--quick]`` or ``python -m benchmarks.fsync_bench``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

from actors.raft.messages import Entry
from actors.raft.sqlite_store import SqliteStorage

PAYLOAD = b"j" * 1024  # one entry's data: about a small Nomad job-register command
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _ms(x: float) -> float:
    return round(x * 1e3, 3)


def bench_raw_fsync(d: str, n: int, sync: Any = os.fsync, size: int = 4096) -> dict[str, float]:
    """*n* appends of *size* bytes to a file in *d*, each followed by *sync* (``os.fsync``, or
    ``os.fdatasync`` as SQLite uses): its latency p50/p99."""
    path = os.path.join(d, "raw")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    lat = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * size)
            t = time.perf_counter()
            sync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    return {"fsync_p50_ms": _ms(_pct(lat, 50)), "fsync_p99_ms": _ms(_pct(lat, 99))}


def bench_saves(d: str, saves: int, batch: int, synchronous: str = "FULL",
                use_threadpool: bool = False, name: str = "bench.db",
                between: Any = None) -> dict[str, float]:
    path = os.path.join(d, name)
    s = SqliteStorage(path, synchronous=synchronous, use_threadpool=use_threadpool)
    lat = []
    i = 0
    try:
        t0 = time.perf_counter()
        for _ in range(saves):
            es = [Entry(term=1, index=j, data=PAYLOAD) for j in range(i + 1, i + batch + 1)]
            t = time.perf_counter()
            s.save(hard_state=None, snapshot=None, truncate_from=None, entries=es)
            lat.append(time.perf_counter() - t)
            i += batch
            if between is not None:
                between()
        dt = time.perf_counter() - t0
    finally:
        s.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
    return {
        "entries_per_s": round(i / dt),
        "saves_per_s": round(saves / dt),
        "p50_ms": _ms(_pct(lat, 50)),
        "p99_ms": _ms(_pct(lat, 99)),
        "max_ms": _ms(max(lat)),
    }


def bench_hub(d: str, saves: int, *, mode: str, cpu_load: bool) -> dict[str, float]:
    """save() latency and the hub's stalls while saving single entries.

    *mode*: "none" (no saves: the baseline stall), "direct" or "threadpool".
    The CPU load is a greenlet that burns 0.5 ms and sleeps 0.1 ms, ~80 % of
    a core.  (A greenlet spinning on ``gevent.sleep(0)`` is no use here: it
    starves libev's timers and watchers by itself -- 40 ms timer lateness with
    no disk I/O at all.)
    """
    import gevent

    stalls: list[float] = []
    stop = False

    def timer() -> None:  # a 1 ms periodic greenlet: how late does it wake?
        while not stop:
            t = time.perf_counter()
            gevent.sleep(0.001)
            stalls.append(time.perf_counter() - t - 0.001)

    def burner() -> None:
        while not stop:
            end = time.perf_counter() + 0.0005
            while time.perf_counter() < end:
                pass
            gevent.sleep(0.0001)

    gs = [gevent.spawn(timer)] + ([gevent.spawn(burner)] if cpu_load else [])
    gevent.sleep(0.01)
    figures: dict[str, float] = {"p50_ms": 0.0, "p99_ms": 0.0}
    try:
        if mode == "none":
            gevent.sleep(0.5)
        else:
            # Give the loop a turn between saves, as the Raft actor does between Readys
            # (sleep(0) would not: libev would not run its timers).
            figures = bench_saves(d, saves, 1, use_threadpool=mode == "threadpool", name="hub.db",
                                  between=lambda: gevent.sleep(0.0001))
    finally:
        stop = True
        gevent.joinall(gs, timeout=1)
    figures["hub_stall_p99_ms"] = _ms(_pct(stalls, 99)) if stalls else 0.0
    figures["hub_stall_max_ms"] = _ms(max(stalls)) if stalls else 0.0
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    single = 100 if quick else 1000
    batches = 20 if quick else 200
    figures: dict[str, Any] = {}
    places = {"tmp": tempfile.gettempdir(), "repo": REPO}
    print(f"durable appends, SqliteStorage WAL synchronous=FULL, {len(PAYLOAD)} B entries:")
    for label, base in places.items():
        d = tempfile.mkdtemp(prefix=".fsync-bench-", dir=base)
        try:
            raw = bench_raw_fsync(d, single)
            one = bench_saves(d, single, 1)
            hundred = bench_saves(d, batches, 100)
            normal = bench_saves(d, single, 1, synchronous="NORMAL")
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print(f"  {label} ({d.rsplit('/', 1)[0]}):")
        print(f"    raw fsync 4 KiB:        p50 {raw['fsync_p50_ms']:7.2f} ms"
              f"  p99 {raw['fsync_p99_ms']:7.2f} ms")
        print(f"    1 entry/save:   {one['entries_per_s']:>8,} entries/s  save p50 {one['p50_ms']:6.2f} ms"
              f"  p99 {one['p99_ms']:6.2f} ms  max {one['max_ms']:6.2f} ms")
        print(f"    100 entries/save: {hundred['entries_per_s']:>6,} entries/s"
              f" ({hundred['saves_per_s']:,} saves/s)"
              f"  save p50 {hundred['p50_ms']:6.2f} ms  p99 {hundred['p99_ms']:6.2f} ms")
        print(f"    1 entry/save, synchronous=NORMAL (no fsync): {normal['entries_per_s']:>8,} entries/s"
              f"  p50 {normal['p50_ms']:6.3f} ms")
        figures[f"{label}_raw_fsync_p50_ms"] = raw["fsync_p50_ms"]
        figures[f"{label}_raw_fsync_p99_ms"] = raw["fsync_p99_ms"]
        figures[f"{label}_single_entries_per_s"] = one["entries_per_s"]
        figures[f"{label}_single_save_p50_ms"] = one["p50_ms"]
        figures[f"{label}_single_save_p99_ms"] = one["p99_ms"]
        figures[f"{label}_batch100_entries_per_s"] = hundred["entries_per_s"]
        figures[f"{label}_batch100_save_p50_ms"] = hundred["p50_ms"]
        figures[f"{label}_batch100_save_p99_ms"] = hundred["p99_ms"]
        figures[f"{label}_normal_entries_per_s"] = normal["entries_per_s"]

    try:
        import gevent  # noqa: F401
    except ImportError:
        return figures
    print("gevent hub during single-entry saves (tmp): direct call vs use_threadpool=True")
    d = tempfile.mkdtemp(prefix=".fsync-bench-")
    try:
        n = 50 if quick else 300
        for cpu in (False, True):
            for mode in ("none", "direct", "threadpool"):
                f = bench_hub(d, n, mode=mode, cpu_load=cpu)
                key = f"{'busy' if cpu else 'idle'}_hub_{mode}"
                saves = ("(no saves: baseline)      " if mode == "none" else
                         f"save p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms")
                print(f"  {'CPU-busy' if cpu else 'idle':8} hub, {mode:10}: {saves}"
                      f" | hub stall p99 {f['hub_stall_p99_ms']:6.2f} ms"
                      f"  max {f['hub_stall_max_ms']:6.2f} ms")
                if mode != "none":
                    figures[f"{key}_save_p50_ms"] = f["p50_ms"]
                    figures[f"{key}_save_p99_ms"] = f["p99_ms"]
                figures[f"{key}_stall_p99_ms"] = f["hub_stall_p99_ms"]
                figures[f"{key}_stall_max_ms"] = f["hub_stall_max_ms"]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return figures


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), sort_keys=True))
