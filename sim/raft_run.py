"""One seeded Raft run: a safety phase with generated faults, then a liveness phase.

A run is fully decided by its seed (faults from ``<seed>:faults``, everything
else from the scheduler's streams), so ``bin/nomad-sim raft --seed N``
replays any run byte for byte -- the trace hash proves it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from sim.lincheck import CheckTimeout, check
from sim.raft_cluster import RaftCluster

LIVENESS_BOUND_S = 30.0  # after healing: a leader elected and a write committed within this


@dataclass(frozen=True)
class RunResult:
    seed: int
    ok: bool
    error: str
    trace_hash: str
    virtual_s: float
    wall_s: float
    ops: int
    faults: tuple[str, ...]
    scenario: str = ""
    servers: int = 0  # how many servers ran, when the scenario decides (0: as asked)
    # The faults that ran as scenario steps (at_s, verb, *args): generated ones too, so a failing
    # run can be shrunk (sim.scenarios.minimise) and saved as a scenario file.
    steps: tuple[tuple, ...] = ()

    def replay(self, duration_s: float, servers: int) -> str:
        if self.scenario:
            return f"bin/nomad-sim raft --seed {self.seed} --scenario {self.scenario} --servers {servers}"
        return f"bin/nomad-sim raft --seed {self.seed} --duration {duration_s:g} --servers {servers}"


def _fault(c: RaftCluster, rng: random.Random, down: set[str]) -> tuple[str, list[tuple]]:
    """Apply one generated fault: what the trace says, and the same as scenario steps."""
    names = c.names
    roll = rng.random()
    node = names[rng.randrange(len(names))]
    now = c.sched.now
    if roll < 0.2 and node not in down:
        c.crash(node)
        down.add(node)
        return f"crash {node}", [(now, "crash", node)]
    if roll < 0.35 and down:
        back = sorted(down)[rng.randrange(len(down))]
        c.restart(back)
        down.discard(back)
        return f"restart {back}", [(now, "restart", back)]
    if roll < 0.55:
        one_way = rng.random() < 0.4
        others = [n for n in names if n != node]
        c.sched.network.partition([node], others, one_way=one_way)
        verb = "partition_one_way" if one_way else "partition"
        return f"partition {node}{' one-way' if one_way else ''}", [(now, verb, node, others)]
    if roll < 0.7:
        c.sched.network.heal()
        return "heal", [(now, "heal")]
    loss, dup, reorder = rng.uniform(0, 0.3), rng.uniform(0, 0.05), rng.uniform(0, 0.3)
    c.sched.network.configure(loss=loss, duplicate=dup, reorder=reorder)
    return (f"loss {loss:.2f} dup {dup:.2f} reorder {reorder:.2f}",
            [(now, "loss", loss), (now, "duplicate", dup), (now, "reorder", reorder)])


def run_raft_seed(seed: int, *, duration_s: float = 60.0, servers: int = 3, clients: int = 3,
                  verbose: bool = False, scenario: str | None = None,
                  timeline: str | None = None, steps: list[tuple] | None = None) -> RunResult:
    """Run one seed: generated faults (or a named scenario, or a scenario file's *steps*), then heal, check.

    ``timeline`` is a path for an HTML picture of the run.
    """
    from sim.scenarios import (
        MEMBERSHIP_SCENARIOS,
        NOT_YET,
        SCENARIOS,
        ScenarioError,
        ScenarioRunner,
        scenario_steps,
    )
    from sim.timeline import Timeline

    if steps is not None:
        scenario = None
    if scenario is not None and scenario not in SCENARIOS:
        why = NOT_YET.get(scenario, f"known: {', '.join(sorted(SCENARIOS))}")
        raise ValueError(f"no scenario {scenario!r} ({why})")
    if scenario in MEMBERSHIP_SCENARIOS:  # servers found through gossip: a cluster of their own
        from sim.membership_run import run_membership_seed

        return run_membership_seed(seed, scenario, verbose=verbose, timeline=timeline)
    wall = time.perf_counter()
    # Half the seeds compact the whole log at each snapshot (a lagging
    # follower needs InstallSnapshot), half keep trailing entries behind it
    # (it catches up by AppendEntries from before the snapshot).
    # Snapshots are encoded at once, or arrive a little or a lot later (as
    # the agent's forked encoder's do), while applies go on.
    config_rng = random.Random(f"{seed}:raft-config")
    trailing = config_rng.choice((0, 0, 16, 48))
    delay = config_rng.choice((0.0, 0.02, 0.5))
    c = RaftCluster(seed, servers, snapshot_threshold=64, trailing_logs=trailing, snapshot_delay_s=delay)
    if timeline:
        c.timeline = Timeline(c.names)
    rng = random.Random(f"{seed}:faults")
    faults: list[str] = []
    played: list[tuple] = []
    down: set[str] = set()
    error = ""

    def note(text: str) -> None:
        faults.append(f"{c.sched.now:.2f}s {text}")
        c.sched.record("fault", text)
        if c.timeline is not None:
            c.timeline.event(c.sched.now, text)
        if verbose:
            print(f"  {faults[-1]}")

    try:
        c.start_clients(clients)
        script = steps
        if script is None and scenario is not None:
            script = scenario_steps(scenario, c.names)
        if script is not None:  # safety phase: the scenario's script
            runner = ScenarioRunner(c)
            for at_s, verb, *args in sorted(script, key=lambda step: step[0]):
                if at_s > c.sched.now:
                    c.run(at_s - c.sched.now)
                try:
                    note(runner.apply(verb, *args))
                except ValueError as exc:  # float("x"), an unknown server or reference
                    raise ScenarioError(f"step {[at_s, verb, *args]}: {exc}") from None
                played.append((at_s, verb, *args))
            c.run(2.0)
            for name in c.names:
                c.sched.nodes[name].clock_rate = 1.0
            down = {n for n in c.names if not c.sched.nodes[n].up}
        while script is None and c.sched.now < duration_s:  # safety phase: generated faults
            c.run(rng.uniform(0.5, 5.0))
            text, as_steps = _fault(c, rng, down)
            note(text)
            played.extend(as_steps)
        c.sched.network.heal()  # liveness phase
        c.sched.network.configure(loss=0.0, duplicate=0.0, reorder=0.0, latency_min_s=0.001,
                                  latency_max_s=0.010)
        for node in sorted(down):
            c.restart(node)
        note("heal (liveness phase)")
        c.stop_clients()
        c.run(6.0)
        deadline = c.sched.now + LIVENESS_BOUND_S
        probe = c.invoke("write", "liveness", 1)
        while c.sched.now < deadline:
            c.run(0.5)
            if probe.done:
                if c.history.ops[probe.op_id].status == "ok":
                    break
                probe = c.invoke("write", "liveness", 1)
        if not (probe.done and c.history.ops[probe.op_id].status == "ok"):
            error = f"liveness: no write committed within {LIVENESS_BOUND_S:g}s of healing"
        c.finish()
        if not error:
            try:
                result = check(c.history, timeout=60)
                if not result.linearizable:
                    error = "linearizability: " + result.explain()[:2000]
            except CheckTimeout:
                error = "linearizability check timed out"
    except AssertionError as exc:  # SafetyViolation and invariant errors
        error = f"{type(exc).__name__}: {exc}"
    except ScenarioError:
        raise  # the scenario as written cannot be played: bad input, not a failed run
    except Exception as exc:  # a bug that raised (an invariant's ValueError...): this seed fails
        import traceback

        error = f"crash: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        trace, now = c.sched.trace_hash(), c.sched.now
        if c.timeline is not None and timeline:
            c.timeline.write_html(timeline, f"seed {seed}" + (f" scenario {scenario}" if scenario else "")
                                  + (f" -- {error}" if error else " -- ok"))
        c.close()
    return RunResult(seed=seed, ok=not error, error=error, trace_hash=trace, virtual_s=now,
                     wall_s=time.perf_counter() - wall, ops=len(c.history), faults=tuple(faults),
                     scenario=scenario or "", steps=tuple(played))


def shrink_raft(seed: int, steps: list[tuple], *, servers: int = 3, error: str = "",
                until_s: float | None = None, max_runs: int = 200) -> list[tuple]:
    """A failing Raft run's steps, minimised (sim.scenarios.minimise) with the same kind of failure."""
    from sim.scenarios import failure_kind, minimise

    def fails(candidate: list[tuple]) -> bool:
        r = run_raft_seed(seed, steps=candidate, servers=servers)
        return not r.ok and (not error or failure_kind(r.error) == failure_kind(error))

    return minimise(steps, fails, until_s=until_s, max_runs=max_runs)
