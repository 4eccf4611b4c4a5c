"""Run many seeds across processes, with a progress bar and a summary."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any

import random

from sim.raft_run import RunResult, run_raft_seed
from sim.scenarios import SCENARIOS


def _one(args: tuple[int, float, int]) -> RunResult:
    seed, duration_s, servers = args
    # The fault mix: a third of the seeds run a named scenario (picked by the
    # seed), the rest generated fault schedules.
    mix = random.Random(f"{seed}:mix")
    scenario = mix.choice(sorted(SCENARIOS)) if mix.random() < 1 / 3 else None
    return run_raft_seed(seed, duration_s=duration_s, servers=servers, scenario=scenario)


def _bar(done: int, total: int, started: float, failed: int) -> str:
    width = 30
    filled = int(width * done / max(1, total))
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds  "
            f"{failed} failed  elapsed {elapsed:5.1f}s  eta {eta:5.1f}s")


def swarm(count: int, *, first_seed: int | None = None, duration_s: float = 30.0, servers: int = 3,
          processes: int | None = None, out: Any = sys.stdout) -> list[RunResult]:
    first = first_seed if first_seed is not None else int.from_bytes(os.urandom(4), "big")
    seeds = [(first + i, duration_s, servers) for i in range(count)]
    procs = processes or min(2, os.cpu_count() or 1)
    started = time.monotonic()
    results: list[RunResult] = []
    failed = 0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs) as pool:
        for r in pool.imap_unordered(_one, seeds, chunksize=1):
            results.append(r)
            failed += not r.ok
            # Redraw in place on a terminal; in a log, a line every tenth.
            tty = getattr(out, "isatty", lambda: False)()
            if tty or len(results) % max(1, count // 10) == 0 or len(results) == count:
                out.write(_bar(len(results), count, started, failed) + ("" if tty else "\n"))
                out.flush()
    if getattr(out, "isatty", lambda: False)():
        out.write("\n")
    sim_hours = sum(r.virtual_s for r in results) / 3600
    print(f"seeds run: {len(results)} (from {first})  processes: {procs}  "
          f"simulated: {sim_hours:.2f} h in {time.monotonic() - started:.1f} s wall  "
          f"client ops: {sum(r.ops for r in results)}", file=out)
    bad = sorted((r for r in results if not r.ok), key=lambda r: r.seed)
    print(f"violations: {len(bad)}", file=out)
    for r in bad:
        print(f"  seed {r.seed}: {r.error.splitlines()[0][:200]}", file=out)
        print(f"    replay: {r.replay(duration_s, servers)}", file=out)
    return results
