"""One seeded whole-cluster run: servers, clients and jobs under faults, then healed.

The same actor classes as the agent (JobCluster: Raft, node endpoint,
heartbeats, node GC, alloc endpoint, eval broker, drainer on servers;
fingerprinter, ClientNode, AllocRunner over SimDriver, AllocSync on
clients), on the simulated runtime and network.

A run is decided by its seed: the **fault schedule** is generated first from
``<seed>:faults`` as a list of steps ``(at_s, verb, *args)`` -- the same
shape as a named scenario -- and then played, so a failing schedule can be
**shrunk** by dropping steps (:func:`shrink`) and saved as a regression
scenario (``tests/regressions/*.json``, replayed by the default test run).

Checkers run after every slice of virtual time: Raft's five guarantees
(:class:`~sim.raft_cluster.RaftChecker`), the heartbeat and node GC rules
(:class:`~sim.node_checkers.NodeCheckers`), "no node over-committed" and
"no rolling update past its max_parallel" (:class:`~sim.job_cluster.JobCluster`).  The **liveness phase** heals the
network, restarts what is down and requires within ``LIVENESS_BOUND_S`` of
virtual time: a leader, every client's node ready, every job at its count
exactly once with matching processes (:meth:`JobCluster.converged`).

Cluster fault verbs (on top of the Raft scenario verbs in ``sim.scenarios``):

* ``crash_client C`` / ``restart_client C`` -- the client agent dies; its tasks keep running.
* ``partition_clients C...`` -- cut clients from every server (both ways).
* ``partition_servers S...`` -- cut servers from the other servers.
* ``scale JOB COUNT`` -- register the job with a new count (background load).
* ``update JOB N`` -- register a new version of the job whose tasks run something
  else (arguments ``3600+N``): a rolling update through a deployment; for an
  even N, first through a canary that promotes itself once healthy; for an odd
  N, with a service whose http check fails for its task's first 3 s, so each
  replacement waits for its check.
* ``drain C DEADLINE_S`` -- drain a client's node with a deadline.
* ``preempt CPU_MHZ`` -- register the system job ``ops`` at priority 90 asking for
  CPU_MHZ on every node: the system scheduler evicts the service jobs'
  allocations where they leave too little room (Nomad's preemption).
* ``release`` -- stop ``ops`` (the liveness phase does, if it still runs).
* ``namespace NS`` -- create namespace NS.
* ``scale_in NS JOB COUNT`` -- register JOB in namespace NS with COUNT allocations (the same job ID
  as a default-namespace job is another job there).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from actors.raft.peer import RaftError
from actors.state.store import command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job
from sim.raft_cluster import RaftChecker
from sim.scenarios import RAFT_VERBS, ScenarioError, failure_kind, minimise

# After healing: a leader, every node ready and every job at its count.
# Nodes that were down re-register at once, but a client partitioned past
# its TTL waits out its heartbeat retry (up to ~30 s) and the failover TTL
# a new leader hands out is 5 min -- the bound covers the worst of those.
LIVENESS_BOUND_S = 400.0
# Clock drift the generated schedules apply (a rate of 1 +/- this): well
# beyond what NTP-disciplined hosts see (tens of ppm), within what the
# heartbeat grace absorbs.  The checkers allow the skew it accumulates.
MAX_DRIFT = 0.001
JOBS = (("web", 6, 400), ("api", 3, 300))  # (job, initial count, CPU MHz per allocation)
# The ``preempt`` verb's system job: at a priority this far above the jobs above (Nomad's default 50,
# preemptible from 10 below), asking for most of each node's CPU, so placing it evicts their
# allocations (the system scheduler preempts by default); ``release`` stops it.
OPS_JOB, OPS_PRIORITY = "ops", 90
# An update asks for a whole core per allocation (resources.cores) instead of MHz for every fourth
# version, when the job runs at most this many: both jobs at it then hold 6 of the 20 cores of five
# simulated clients (4 cores each), so drained and crashed clients leave them room to converge.
CORES_JOB_MAX_COUNT = 3
OPS_CPU_CHOICES = (6000, 9000)  # MHz of a simulated client's 9,600: some evictions, or nearly all
SEC = 1_000_000_000  # Nomad's durations are nanoseconds

Step = tuple[Any, ...]

# Whole-cluster scenarios (``nomad-sim cluster --scenario NAME``).
CLUSTER_SCENARIOS: dict[str, list[Step]] = {
    "clients-partitioned": [(20, "partition_clients", "c0001", "c0002"), (80, "heal")],
    "leader-crash-with-clients": [(20, "crash", "@leader"), (45, "restart", "@crashed")],
    "client-restarts": [(20, "crash_client", "c0001"), (25, "restart_client", "c0001"),
                        (40, "crash_client", "c0003"), (70, "restart_client", "c0003")],
    "drain-under-load": [(20, "drain", "c0001", 30), (25, "scale", "web", 8), (60, "scale", "web", 4)],
    "server-partition-with-clients": [(20, "partition_servers", "@leader"), (60, "heal")],
    "lossy-cluster": [(10, "loss", 0.1), (40, "loss", 0.25), (70, "loss", 0.0)],
    "rolling-restart-with-clients": [(15, "crash", "s1"), (25, "restart", "s1"), (35, "crash", "s2"),
                                     (45, "restart", "s2"), (55, "crash", "s3"), (65, "restart", "s3")],
    # A job's rolling update (a deployment) while its leader crashes and a client goes away.
    "rolling-update-under-faults": [(20, "update", "web", 1), (35, "crash", "@leader"), (45, "restart", "@crashed"),
                                    (50, "crash_client", "c0002"), (70, "restart_client", "c0002"),
                                    (90, "update", "web", 2)],
    # A high-priority system job evicts the service jobs' allocations (replaced where room is left,
    # else blocked), across a client's restart and a leader crash; released, they are placed again.
    # The same job ID in a second namespace, scaled in both across a client's restart and a leader
    # crash: each must run its own count, no allocation counted for the other.
    "namespaces": [(12, "namespace", "team"), (14, "scale_in", "team", "web", 3),
                   (25, "crash_client", "c0001"), (30, "scale", "web", 2), (40, "crash", "@leader"),
                   (50, "restart", "@crashed"), (60, "restart_client", "c0001"),
                   (70, "scale_in", "team", "web", 5), (80, "drain", "c0002", 20)],
    "preemption": [(20, "preempt", 9000), (30, "crash_client", "c0001"), (40, "crash", "@leader"),
                   (50, "restart", "@crashed"), (60, "restart_client", "c0001"), (90, "release")],
}


def cluster_scenario_steps(name: str, servers: tuple[str, ...]) -> list[Step]:
    """The steps of cluster scenario *name* for these servers: the rolling restart restarts each in turn
    (written out above for three), the others are as written."""
    if name == "rolling-restart-with-clients":
        return [step for i, s in enumerate(servers)
                for step in ((15 + 20 * i, "crash", s), (25 + 20 * i, "restart", s))]
    return list(CLUSTER_SCENARIOS[name])


# Two federated regions (servers only: gossip, ServerMembership, Raft per
# region) lose the WAN between them and heal -- sim/region_run.py.
REGION_CUT = "region-cut"
SCENARIO_NAMES = tuple(sorted([*CLUSTER_SCENARIOS, REGION_CUT]))
# The verbs a cluster scenario file may use (ClusterScenarioRunner), with their argument
# counts (-1: one or more).
CLUSTER_VERBS: dict[str, int] = {
    **{v: n for v, n in RAFT_VERBS.items()
       if v in ("crash", "restart", "heal", "loss", "duplicate", "reorder", "delay", "drift")},
    "crash_client": 1, "restart_client": 1, "partition_clients": -1, "partition_servers": -1, "scale": 2,
    "update": 2, "drain": 2, "preempt": 1, "release": 0, "namespace": 1, "scale_in": 3,
}


@dataclass(frozen=True)
class ClusterRunResult:
    seed: int
    ok: bool
    error: str
    trace_hash: str
    virtual_s: float
    wall_s: float
    steps: tuple[Step, ...]  # the schedule that ran
    faults: tuple[str, ...]  # what each step did, with times
    scenario: str = ""
    clients: int = 5
    duration_s: float = 120.0
    servers: int = 3

    def replay(self) -> str:
        if self.scenario == REGION_CUT:  # its own two regions of servers, without clients
            return f"bin/nomad-sim cluster --seed {self.seed} --scenario {REGION_CUT}"
        servers = f" --servers {self.servers}" if self.servers != 3 else ""
        base = f"bin/nomad-sim cluster --seed {self.seed}{servers} --clients {self.clients}"
        if self.scenario:
            return f"{base} --scenario {self.scenario}"
        return f"{base} --duration {self.duration_s:g}"


def set_clock_rate(node: Any, true_now: float, rate: float) -> None:
    """Change a simulated node's clock rate without a jump: drift, not a step."""
    local = node.clock_offset + node.clock_rate * true_now
    node.clock_rate = rate
    node.clock_offset = local - rate * true_now


def generate_schedule(seed: int, duration_s: float, servers: tuple[str, ...],
                      clients: tuple[str, ...]) -> list[Step]:
    """The fault schedule of a seed: steps every 2-12 s until *duration_s*, healed at the end."""
    rng = random.Random(f"{seed}:faults")
    steps: list[Step] = []
    t = 10.0
    down_servers: list[str] = []
    down_clients: list[str] = []
    drained = 0
    while True:
        t += rng.uniform(2.0, 12.0)
        if t >= duration_s:
            break
        roll = rng.random()
        if roll < 0.15:
            if down_servers:
                steps.append((round(t, 2), "restart", down_servers.pop()))
            else:
                s = rng.choice(servers)
                down_servers.append(s)
                steps.append((round(t, 2), "crash", s))
        elif roll < 0.3:
            k = rng.randint(1, max(1, len(clients) // 3))
            steps.append((round(t, 2), "partition_clients", *sorted(rng.sample(clients, k))))
        elif roll < 0.4:
            steps.append((round(t, 2), "heal"))
        elif roll < 0.5:
            if down_clients:
                steps.append((round(t, 2), "restart_client", down_clients.pop()))
            else:
                cl = rng.choice(clients)
                down_clients.append(cl)
                steps.append((round(t, 2), "crash_client", cl))
        elif roll < 0.6:
            steps.append((round(t, 2), "loss", round(rng.choice((0.0, 0.05, 0.1, 0.3)), 2)))
        elif roll < 0.7:
            steps.append((round(t, 2), "partition_servers", rng.choice(servers)))
        elif roll < 0.78:
            steps.append((round(t, 2), "drift", rng.choice(servers), rng.choice((1 - MAX_DRIFT, 1.0, 1 + MAX_DRIFT))))
        elif roll < 0.84:
            job, _, _ = rng.choice(JOBS)
            steps.append((round(t, 2), "scale", job, rng.randint(0, 8)))
        elif roll < 0.9:
            job, _, _ = rng.choice(JOBS)
            steps.append((round(t, 2), "update", job, rng.randint(1, 99)))
        elif drained < 2:
            drained += 1
            steps.append((round(t, 2), "drain", rng.choice(clients), rng.choice((0, 20, 60))))
    # Half the seeds place a high-priority system job for a while (a stream of its own: the steps
    # above are what they were before preemption came).
    prng = random.Random(f"{seed}:preempt")
    if prng.random() < 0.5 and duration_s > 40.0:
        start = round(prng.uniform(15.0, duration_s * 0.6), 2)
        steps.append((start, "preempt", prng.choice(OPS_CPU_CHOICES)))
        end = round(start + prng.uniform(10.0, 60.0), 2)
        if end < duration_s:
            steps.append((end, "release"))
        steps.sort(key=lambda s: s[0])
    return steps


class ClusterScenarioRunner:
    """Applies cluster steps to a JobCluster, resolving ``@leader``-style references."""

    def __init__(self, c: JobCluster) -> None:
        self.c = c
        self.crashed: list[str] = []
        self.clients_down: set[str] = set()

    def resolve(self, arg: Any) -> Any:
        c = self.c
        if arg == "@leader":
            return c.leader() or c.servers[0]
        if arg == "@crashed":
            return self.crashed[-1] if self.crashed else c.servers[0]
        if arg == "@follower":
            leader = c.leader()
            return next((s for s in c.servers if s != leader and c.sched.nodes[s].up), c.servers[0])
        return arg

    def _known(self, verb: str, args: list[Any]) -> None:
        """Refuse a step naming a server, client or job the cluster does not have (bad input, not a fault)."""
        c = self.c
        if verb in ("crash", "restart", "partition_servers"):
            kind, names = "server", c.servers
        elif verb in ("crash_client", "restart_client", "partition_clients", "drain"):
            kind, names = "client", c.clients
        elif verb == "drift":
            kind, names = "node", (*c.servers, *c.clients)
        elif verb in ("scale", "update"):
            kind, names = "job", tuple(j for j, _, _ in JOBS)
        elif verb == "scale_in":
            kind, names, args = "job", tuple(j for j, _, _ in JOBS), args[1:]
        else:
            return
        if verb == "drift" and abs(float(args[1]) - 1.0) > MAX_DRIFT + 1e-12:
            raise ScenarioError(f"drift: rate {args[1]} is beyond the configured bound 1 +/- {MAX_DRIFT:g} "
                                "(sim.cluster_run.MAX_DRIFT; the node checkers allow the skew it gathers)")
        who = args if verb.startswith("partition_") else args[:1]
        unknown = [a for a in who if a not in names]
        if unknown:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ScenarioError(f"{verb}: no {kind} {unknown[0]!r} ({kind}s: {shown})")

    def apply(self, verb: str, *raw: Any) -> str:
        c, net = self.c, self.c.sched.network
        args = [self.resolve(a) for a in raw]
        if verb not in CLUSTER_VERBS:
            raise ScenarioError(f"unknown cluster fault verb {verb!r}")
        self._known(verb, args)
        if verb == "crash":
            if c.sched.nodes[args[0]].up:
                c.crash(args[0])
                self.crashed.append(args[0])
        elif verb == "restart":
            if not c.sched.nodes[args[0]].up:
                c.restart(args[0])
        elif verb == "crash_client":
            if c.sched.nodes[args[0]].up:
                c.crash(args[0])
                self.clients_down.add(args[0])
        elif verb == "restart_client":
            if not c.sched.nodes[args[0]].up:
                c.restart(args[0])
            self.clients_down.discard(args[0])
        elif verb == "partition_clients":
            c.partition_clients(list(args))
        elif verb == "partition_servers":
            net.partition(list(args), [s for s in c.servers if s not in args])
        elif verb == "heal":
            net.heal()
        elif verb in ("loss", "duplicate", "reorder"):
            net.configure(**{verb: float(args[0])})
        elif verb == "delay":
            net.configure(latency_min_s=float(args[0]), latency_max_s=float(args[1]))
        elif verb == "drift":
            set_clock_rate(c.sched.nodes[args[0]], c.sched.now, float(args[1]))
        elif verb in ("scale", "drain", "update", "preempt", "release", "namespace", "scale_in"):
            if c.leader() is None:
                return f"{verb} skipped: no leader"
            try:
                if verb == "namespace":
                    _, result = c.propose(command("namespace_upsert", namespaces=[{"Name": args[0]}]))
                    if not result.get("ok"):
                        return f"namespace failed: {result.get('error')}"
                elif verb == "scale_in":
                    cpu = next(cpu for j, _, cpu in JOBS if j == args[1])
                    job = sim_job(args[1], count=int(args[2]), cpu=cpu)
                    job["Namespace"] = args[0]
                    c.register(job)
                elif verb == "preempt":
                    ops = sim_job(OPS_JOB, count=1, cpu=int(args[0]), mem=128, job_type="system")
                    ops["Priority"] = OPS_PRIORITY
                    c.register(ops)
                elif verb == "release":
                    c.stop_job(OPS_JOB)
                elif verb == "scale":
                    cpu = next(cpu for j, _, cpu in JOBS if j == args[0])
                    c.register(sim_job(args[0], count=int(args[1]), cpu=cpu))
                elif verb == "update":
                    # A new version that changes what the tasks run: a rolling update (a deployment).
                    count, cpu = next((n, cpu) for j, n, cpu in JOBS if j == args[0])
                    current = c.checker.replica.tables["jobs"].get(args[0])
                    if current is not None:
                        count = current["TaskGroups"][0]["Count"]
                    job = sim_job(args[0], count=count, cpu=cpu)
                    job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = [str(3600 + int(args[1]))]
                    if int(args[1]) % 4 == 3 and count <= CORES_JOB_MAX_COUNT:
                        # Whole cores instead of MHz: no two allocations on a node may share one.
                        job["TaskGroups"][0]["Tasks"][0]["Resources"] = {"Cores": 1, "MemoryMB": 256}
                    if int(args[1]) % 2 == 0:  # every other one through a canary that promotes itself
                        job["Update"] = {"Canary": 1, "AutoPromote": True}
                    else:  # the others offer a service whose check holds each replacement back a while
                        group = job["TaskGroups"][0]
                        group["Networks"] = [{"DynamicPorts": [{"Label": "http"}]}]
                        group["Services"] = [{"Name": args[0], "PortLabel": "http", "Checks": [{
                            "Type": "http", "Path": "/health", "Interval": 2 * SEC, "Timeout": SEC}]}]
                        group["Tasks"][0]["Config"]["check_ready_after_s"] = 3
                    c.register(job)
                else:
                    c.drain(args[0], deadline_s=float(args[1]))
            except (RaftError, RuntimeError, TimeoutError) as exc:
                return f"{verb} failed: {exc}"  # an operator's request lost to a fault: not a violation
        return " ".join([verb, *(str(a) for a in args)])


def _actor_failures(c: JobCluster) -> str:
    """Any actor that raised during the run (a bug: faults are messages lost or late, never exceptions)."""
    failed = [f"{name}/{actor}: {err}" for name, node in sorted(c.sched.nodes.items())
              for actor, err in node.failures]
    return f"actor failure: {'; '.join(failed[:3])}" if failed else ""


def run_cluster_seed(seed: int, *, duration_s: float = 120.0, servers: int = 3, clients: int = 5,
                     scenario: str | None = None, steps: list[Step] | None = None, verbose: bool = False,
                     timeline: str | None = None) -> ClusterRunResult:
    """Run one seed: boot, start the jobs, play the schedule, heal, and check liveness."""
    from sim.timeline import Timeline

    if scenario == REGION_CUT and steps is None:
        from sim.region_run import run_region_seed

        return run_region_seed(seed, verbose=verbose, timeline=timeline)
    if scenario is not None and steps is None:
        if scenario not in CLUSTER_SCENARIOS:
            raise ValueError(f"no cluster scenario {scenario!r} (known: {', '.join(SCENARIO_NAMES)})")
        steps = cluster_scenario_steps(scenario, tuple(f"s{i}" for i in range(1, servers + 1)))
    wall = time.perf_counter()
    cfg = JobClusterConfig(base=ClusterConfig(n_servers=servers, n_clients=clients, check_interval_s=1.0,
                                              trace=True))
    c = JobCluster(seed, cfg)
    # The clock skew drift can gather by the end of the run.  A scenario (or a scenario file) ignores
    # --duration and its replay leaves it out, so its horizon is its own last step, not duration_s.
    horizon = duration_s if steps is None else max((s[0] for s in steps), default=0.0)
    c.checker.skew_s = MAX_DRIFT * (horizon + LIVENESS_BOUND_S + 60.0)
    raft_checker = RaftChecker()
    drawn = c.clients[:20]  # JobCluster.timeline_lanes draws these
    note = f"lanes for {len(drawn)} of {len(c.clients)} clients" if len(drawn) < len(c.clients) else ""
    tl = Timeline(c.servers + drawn, every_s=0.5, note=note) if timeline else None
    if steps is None:
        steps = generate_schedule(seed, duration_s, c.servers, c.clients)
    played: list[str] = []
    error = ""

    def step_run(seconds: float) -> None:
        end = c.sched.now + seconds
        while c.sched.now < end - 1e-9:
            c.run(min(1.0, end - c.sched.now))
            raft_checker.check(c)
            if tl is not None:
                tl.maybe_sample(c)

    def note(text: str) -> None:
        played.append(f"{c.sched.now:.2f}s {text}")
        c.sched.record("fault", text)
        if tl is not None:
            tl.event(c.sched.now, text)
        if verbose:
            print(f"  {played[-1]}")

    try:
        step_run(10.0)
        for job, count, cpu in JOBS:
            for _ in range(30):  # an election may still be under way
                try:
                    c.register(sim_job(job, count=count, cpu=cpu))
                    break
                except (RaftError, RuntimeError, TimeoutError):
                    step_run(2.0)
            else:
                raise AssertionError(f"liveness: could not register job {job} in 60 s after boot")
        runner = ClusterScenarioRunner(c)
        for at_s, verb, *args in sorted(steps, key=lambda s: s[0]):
            if at_s > c.sched.now:
                step_run(at_s - c.sched.now)
            try:
                note(runner.apply(verb, *args))
            except ValueError as exc:  # the scenario, not the cluster: float("x"), int("x"), a bad name
                raise ScenarioError(f"step {[at_s, verb, *args]}: {exc}") from None
        step_run(2.0)
        # Liveness phase.
        c.sched.network.heal()
        c.sched.network.configure(loss=0.0, duplicate=0.0, reorder=0.0)
        for n in c.servers + c.clients:
            set_clock_rate(c.sched.nodes[n], c.sched.now, 1.0)  # the skew it gathered stays
            if not c.sched.nodes[n].up:
                c.restart(n)
        note("heal (liveness phase)")
        deadline = c.sched.now + LIVENESS_BOUND_S
        problems = ["not checked"]
        while c.sched.now < deadline:
            step_run(2.0)
            ops = c.checker.replica.tables["jobs"].get(OPS_JOB)
            if ops is not None and not ops.get("Stop"):
                # The operator's high-priority job goes too (the jobs it evicted get their room back),
                # or the service jobs could not all run again; asked until the servers have it.
                note(runner.apply("release"))
                continue
            problems = _liveness_problems(c)
            if not problems:
                break
        if problems:
            error = f"liveness: not converged {LIVENESS_BOUND_S:g}s after healing: " + "; ".join(problems[:5])
        raft_checker.check(c, full=True)  # the last state, whole logs walked whatever the cadence
        if not error:
            error = _actor_failures(c)
    except AssertionError as exc:  # SafetyViolation, NodeViolation, over-commit, invariants
        error = f"{type(exc).__name__}: {exc}"
    except ScenarioError:
        raise
    except Exception as exc:
        import traceback

        error = f"crash: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        trace, now = c.sched.trace_hash(), c.sched.now
        if tl is not None and timeline:
            tl.write_html(timeline, f"cluster seed {seed}" + (f" scenario {scenario}" if scenario else "")
                          + (f" -- {error}" if error else " -- ok"))
        c.close()
    return ClusterRunResult(seed=seed, ok=not error, error=error, trace_hash=trace, virtual_s=now,
                            wall_s=time.perf_counter() - wall, steps=tuple(tuple(s) for s in steps),
                            faults=tuple(played), scenario=scenario or "", clients=clients,
                            duration_s=duration_s, servers=servers)


def _liveness_problems(c: JobCluster) -> list[str]:
    if c.leader() is None:
        return ["no leader"]
    statuses = {cl: c.status(cl) for cl in c.clients}
    not_ready = sorted(cl for cl, st in statuses.items() if st != "ready")
    if not_ready:
        return [f"nodes not ready: {', '.join(not_ready[:5])}"]
    return c.converged()


def shrink(seed: int, steps: list[Step], *, clients: int, servers: int = 3, max_runs: int = 200,
           error: str = "", until_s: float | None = None) -> list[Step]:
    """Remove steps one at a time while the run still fails; returns a minimal failing schedule.

    ``error`` is the original failure: a candidate counts as failing only with a failure of the same
    kind (:func:`failure_kind`), so shrinking cannot wander from the bug found to another one.
    ``until_s`` is when the original run stopped: steps after it never ran and are dropped first.
    """
    def fails(candidate: list[Step]) -> bool:
        r = run_cluster_seed(seed, steps=candidate, clients=clients, servers=servers)
        return not r.ok and (not error or failure_kind(getattr(r, "error", "")) == failure_kind(error))

    return minimise(steps, fails, until_s=until_s, max_runs=max_runs)


def save_regression(path: str, seed: int, steps: list[Step], *, clients: int, servers: int, error: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"seed": seed, "clients": clients, "servers": servers, "steps": [list(s) for s in steps],
                   "found": error.splitlines()[0][:300] if error else ""}, f, indent=1)
        f.write("\n")
