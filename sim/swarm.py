"""Run many seeds across processes, with a progress bar and a summary."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any

import random

from sim.cluster_run import SCENARIO_NAMES, ClusterRunResult, run_cluster_seed
from sim.raft_run import RunResult, run_raft_seed
from sim.scenarios import SCENARIOS

KINDS = ("raft", "cluster")
CLUSTER_CLIENTS = 5  # a whole-cluster seed's clients unless --clients says otherwise


def _one(args: tuple[int, float, int, tuple[str, ...], int]) -> RunResult | ClusterRunResult:
    seed, duration_s, servers, kinds, clients = args
    # The fault mix, decided by the seed: which cluster (Raft alone with
    # linearizability-checked clients, or servers + clients + jobs), and for a
    # third of the seeds a named scenario, else a generated fault schedule.
    mix = random.Random(f"{seed}:mix")
    kind = mix.choice(kinds)
    if kind == "cluster":
        scenario = mix.choice(SCENARIO_NAMES) if mix.random() < 1 / 3 else None
        try:
            return run_cluster_seed(seed, duration_s=max(duration_s, 60.0), servers=servers,
                                    clients=clients, scenario=scenario)
        except Exception as exc:  # one seed's bug must not take the swarm (and its summary) down
            return ClusterRunResult(seed=seed, ok=False, error=_crash(exc), trace_hash="", virtual_s=0.0,
                                    wall_s=0.0, steps=(), faults=(), scenario=scenario or "",
                                    clients=clients, duration_s=max(duration_s, 60.0),
                                    servers=servers)
    scenario = mix.choice(sorted(SCENARIOS)) if mix.random() < 1 / 3 else None
    try:
        return run_raft_seed(seed, duration_s=duration_s, servers=servers, scenario=scenario)
    except Exception as exc:
        return RunResult(seed=seed, ok=False, error=_crash(exc), trace_hash="", virtual_s=0.0, wall_s=0.0,
                         ops=0, faults=(), scenario=scenario or "")


def _crash(exc: Exception) -> str:
    import traceback

    return f"crash: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"


def replay_command(r: RunResult | ClusterRunResult, duration_s: float, servers: int) -> str:
    return r.replay() if isinstance(r, ClusterRunResult) else r.replay(duration_s, servers)


def shrink_command(r: RunResult | ClusterRunResult, duration_s: float, servers: int) -> str | None:
    """The command that minimises a failing seed's faults into a regression scenario, if it has a schedule."""
    from sim.cluster_run import REGION_CUT
    from sim.scenarios import MEMBERSHIP_SCENARIOS

    if r.scenario == REGION_CUT or r.scenario in MEMBERSHIP_SCENARIOS:
        return None
    kind = "cluster" if isinstance(r, ClusterRunResult) else "raft"
    return f"{replay_command(r, duration_s, servers)} --shrink tests/regressions/{kind}-{r.seed}.json"


def _quiet() -> None:
    """Pool initializer: the actors' own warnings (node marked down...) are expected under faults;
    a swarm reports violations in its summary instead of drowning them in log lines."""
    import logging

    logging.disable(logging.WARNING)


def _bar(done: int, total: int, started: float, failed: int) -> str:
    width = 30
    filled = int(width * done / max(1, total))
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds  "
            f"{failed} failed  elapsed {elapsed:5.1f}s  eta {eta:5.1f}s")


PROGRESS_EVERY_S = 30.0  # in a log, a progress line at least this often even while no seed finishes
POLL_S = 1.0  # how often the progress bar is redrawn while waiting for a seed


def progress_due(*, done: int, count: int, tty: bool, since_line_s: float, finished_one: bool) -> bool:
    """Whether to draw the progress bar now: on a terminal always (it redraws in place, so elapsed and
    eta move while a slow seed runs); in a log at every tenth of the seeds and at least every
    PROGRESS_EVERY_S, so a long seed does not look like a hang."""
    if tty:
        return True
    if finished_one and (done % max(1, count // 10) == 0 or done == count):
        return True
    return since_line_s >= PROGRESS_EVERY_S


def swarm(count: int, *, first_seed: int | None = None, duration_s: float = 30.0, servers: int = 3,
          processes: int | None = None, out: Any = sys.stdout,
          kinds: tuple[str, ...] = KINDS,
          clients: int = CLUSTER_CLIENTS) -> list[RunResult | ClusterRunResult]:
    first = first_seed if first_seed is not None else int.from_bytes(os.urandom(4), "big")
    seeds = [(first + i, duration_s, servers, kinds, clients) for i in range(count)]
    procs = processes or min(2, os.cpu_count() or 1)
    started = time.monotonic()
    results: list[RunResult | ClusterRunResult] = []
    failed = 0
    ctx = multiprocessing.get_context("fork")
    tty = getattr(out, "isatty", lambda: False)()
    last_line = time.monotonic()
    with ctx.Pool(procs, initializer=_quiet) as pool:
        pending = pool.imap_unordered(_one, seeds, chunksize=1)
        while len(results) < count:
            try:
                r = pending.next(timeout=POLL_S)
            except multiprocessing.TimeoutError:
                r = None
            if r is not None:
                results.append(r)
                failed += not r.ok
                if not r.ok:  # at once, not only in the summary: a long swarm shows what it found as it goes
                    out.write(f"\nviolation: seed {r.seed}: {r.error.splitlines()[0][:200]}\n"
                              f"  replay: {replay_command(r, duration_s, servers)}\n")
            # Redraw in place on a terminal; in a log, a line every tenth (and every PROGRESS_EVERY_S).
            since = time.monotonic() - last_line
            if progress_due(done=len(results), count=count, tty=tty, since_line_s=since,
                            finished_one=r is not None):
                out.write(_bar(len(results), count, started, failed) + ("" if tty else "\n"))
                out.flush()
                last_line = time.monotonic()
    if getattr(out, "isatty", lambda: False)():
        out.write("\n")
    sim_hours = sum(r.virtual_s for r in results) / 3600
    print(f"seeds run: {len(results)} (from {first})  processes: {procs}  "
          f"simulated: {sim_hours:.2f} h in {time.monotonic() - started:.1f} s wall  "
          f"raft seeds: {sum(isinstance(r, RunResult) for r in results)}  "
          f"cluster seeds: {sum(isinstance(r, ClusterRunResult) for r in results)}  "
          f"client ops: {sum(getattr(r, 'ops', 0) for r in results)}", file=out)
    if results:
        slow = max(results, key=lambda r: r.wall_s)
        print(f"slowest: seed {slow.seed} ({slow.wall_s:.1f} s wall, {slow.virtual_s:.0f} s simulated)  "
              f"replay: {replay_command(slow, duration_s, servers)}", file=out)
    bad = sorted((r for r in results if not r.ok), key=lambda r: r.seed)
    print(f"violations: {len(bad)}", file=out)
    for r in bad:
        print(f"  seed {r.seed}: {r.error.splitlines()[0][:200]}", file=out)
        print(f"    replay: {replay_command(r, duration_s, servers)}", file=out)
        small = shrink_command(r, duration_s, servers)
        if small:
            print(f"    shrink: {small}", file=out)
    return results
