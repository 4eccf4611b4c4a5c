"""Named fault scenarios: short declarative scripts of fault verbs.

A scenario is a list of steps ``(at_s, verb, *args)`` run against a
simulated Raft cluster while clients write, CAS and read; after its last
step the run heals everything and enters the liveness phase (see
``sim.raft_run``).  Arguments may name servers (``"s1"``) or be resolved
when the step runs: ``"@leader"`` (the current leader), ``"@follower"``
(the first live non-leader), ``"@crashed"`` (the most recently crashed),
``"@others"`` (everyone but the previous step's target).

Fault verbs (the simulator's API, one line each):

* ``crash NODE`` -- stop every actor at once; the disk keeps what was synced.
* ``restart NODE`` -- boot the node again from its disk.
* ``partition A B`` / ``partition_one_way A B`` -- cut links between the groups (A→B only).
* ``heal`` -- remove partitions, per-link faults and held links.
* ``hold A B`` / ``release A B`` -- park a link's messages, then deliver them late.
* ``loss P`` / ``duplicate P`` / ``reorder P`` -- network-wide probabilities.
* ``delay MIN MAX`` -- one-way latency range in seconds.
* ``drift NODE RATE`` -- the node's clock runs at RATE (1.0 = true time).
* ``fsync_lies NODE BOOL`` -- the node's disk acknowledges writes it has not synced.
* ``stall_disk NODE SECONDS`` -- the node's disk stalls: everything it sends is held that long.

A scenario can also be a file of your own (``nomad-sim raft --steps FILE.json``;
``nomad-sim cluster --steps FILE.json`` takes the cluster verbs of
``sim.cluster_run`` as well), a JSON object::

    {"seed": 7,                      (optional: else --seed, else random)
     "servers": 3,                   (optional)
     "steps": [[5, "crash", "@leader"], [9, "partition_one_way", "s2", "@others"],
               [15, "heal"], [16, "restart", "@crashed"]]}

Each step is ``[at_s, verb, args...]``; :func:`load_steps` checks the file
before anything runs.
"""

from __future__ import annotations

import json
import math
from typing import Any

Step = tuple[Any, ...]

class ScenarioError(ValueError):
    """A scenario that cannot be played as written (an unknown verb, server or reference): bad input, not a
    violation."""


# The verbs ScenarioRunner plays, each with how many arguments it takes.
RAFT_VERBS: dict[str, int] = {
    "crash": 1, "restart": 1, "partition": 2, "partition_one_way": 2, "heal": 0, "hold": 2, "release": 2,
    "loss": 1, "duplicate": 1, "reorder": 1, "delay": 2, "drift": 2, "fsync_lies": 2, "stall_disk": 2,
}


# Which arguments of a verb are numbers, and what kind (checked by load_steps).
NUMBERS: dict[str, tuple[tuple[int, str], ...]] = {
    "loss": ((0, "probability"),), "duplicate": ((0, "probability"),), "reorder": ((0, "probability"),),
    "delay": ((0, "number of seconds"), (1, "number of seconds")), "drift": ((1, "rate"),),
    "stall_disk": ((1, "number of seconds"),), "scale": ((1, "count"),), "update": ((1, "count"),),
    "drain": ((1, "number of seconds"),),
}


def load_steps(path: str, verbs: dict[str, int]) -> dict[str, Any]:
    """Read and check a scenario file; ``ValueError`` with one line saying what is wrong.

    ``verbs`` maps each known verb to its argument count (-1: one or more).
    Returns ``{"seed": int | None, "servers": int | None, "clients": int | None,
    "steps": [Step, ...]}``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except OSError as e:
        raise ValueError(f"cannot read scenario file {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"scenario file {path} is not JSON: {e}") from None

    def bad(why: str) -> ValueError:
        return ValueError(f"scenario file {path}: {why}")

    if not isinstance(saved, dict) or not isinstance(saved.get("steps"), list):
        raise bad('want an object with "steps": [[at_s, verb, args...], ...]')
    out: dict[str, Any] = {"steps": []}
    for key in ("seed", "servers", "clients"):
        value = saved.get(key)
        if value is not None and (type(value) is not int or value < (0 if key == "seed" else 1)):
            low = "from 0" if key == "seed" else "from 1"
            raise bad(f'"{key}" must be a whole number {low}, got {value!r}')
        out[key] = value
    for i, step in enumerate(saved["steps"], 1):
        if not isinstance(step, list) or len(step) < 2 or isinstance(step[0], bool) \
                or not isinstance(step[0], (int, float)) or not math.isfinite(step[0]) or step[0] < 0:
            raise bad(f"step {i} {json.dumps(step)}: want [at_s, verb, args...] with at_s >= 0 seconds")
        verb, args = step[1], step[2:]
        if verb not in verbs:
            raise bad(f"step {i}: unknown fault verb {verb!r} (known: {', '.join(sorted(verbs))})")
        want = verbs[verb]
        if (want >= 0 and len(args) != want) or (want < 0 and not args):
            raise bad(f"step {i}: {verb} takes {want if want >= 0 else 'one or more'} "
                      f"argument{'s' if want != 1 else ''}, got {len(args)}")
        for pos, what in NUMBERS.get(verb, ()):
            x = args[pos]
            ok = not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
            if ok and what == "probability":
                ok = x <= 1
            elif ok and what == "rate":
                ok = x > 0
            elif ok and what == "count":
                ok = isinstance(x, int)
            if not ok:
                raise bad(f"step {i}: {verb}'s argument {pos + 1} must be a {what}, got {json.dumps(x)}")
        if verb == "fsync_lies" and not isinstance(args[1], bool):
            raise bad(f"step {i}: fsync_lies takes true or false, got {json.dumps(args[1])}")
        out["steps"].append(tuple(step))
    return out

SCENARIOS: dict[str, list[Step]] = {
    "leader-crash": [(5, "crash", "@leader"), (15, "restart", "@crashed")],
    "rolling-restart": [
        (4, "crash", "s1"), (7, "restart", "s1"),
        (12, "crash", "s2"), (15, "restart", "s2"),
        (20, "crash", "s3"), (23, "restart", "s3"),
    ],
    "minority-partition": [(5, "partition", "@leader", "@others"), (20, "heal")],
    "majority-partition": [(5, "partition", "s1", "s2"), (5, "partition", "s1", "s3"),
                           (5, "partition", "s2", "s3"), (20, "heal")],
    "one-way-partition": [(5, "partition_one_way", "@leader", "@others"), (20, "heal")],
    "flapping-link": [step for i in range(20) for step in
                      ((5 + i, "partition", "s1", "s2"), (5.5 + i, "heal"))],
    "packet-loss": [(2, "loss", 0.1), (8, "loss", 0.2), (14, "loss", 0.3), (22, "loss", 0.0)],
    "clock-drift": [(2, "drift", "s1", 1.05), (2, "drift", "s2", 0.95), (25, "drift", "s1", 1.0),
                    (25, "drift", "s2", 1.0)],
    # Disk fsync loss on crash: first the leader's disk, then a follower's, acknowledges writes
    # it has not synced, and the node crashes -- it comes back with less than it acknowledged
    # (the crash's line says how much).  The other two servers' disks stay honest, so every
    # committed entry is still on a majority; the node must catch up from the leader.
    "fsync-loss": [(2, "fsync_lies", "@leader", True), (5, "crash", "@leader"), (7, "restart", "@crashed"),
                   (7, "fsync_lies", "@crashed", False),
                   (10, "fsync_lies", "@follower", True), (12, "crash", "@follower"),
                   (14, "restart", "@crashed"),
                   (14, "fsync_lies", "@crashed", False)],
    "stalled-disk": [(5, "stall_disk", "@leader", 3.0), (12, "stall_disk", "@follower", 2.0)],
    "hold-and-release": [(5, "hold", "@leader", "@follower"), (9, "release", "@leader", "@follower")],
    "slow-network": [(2, "delay", 0.02, 0.2), (20, "delay", 0.001, 0.010)],
}

# Scenarios whose servers find each other through gossip and bootstrap by
# bootstrap_expect (GossipMember + ServerMembership + RaftPeer, the agent's
# server stack) instead of starting from one fixed configuration; their steps
# are sim.membership_run's verbs, and ``nomad-sim raft --scenario NAME`` plays
# them there.  They are among SCENARIOS (listed, and drawn by the swarm).
MEMBERSHIP_SCENARIOS: dict[str, list[Step]] = {
    # A fourth server, bootstrap_expect = 3 like the others, joins a running
    # three-server cluster while one of the three is out of everyone's sight:
    # gossip shows the joiner just two of the others alive, with itself the
    # three it expects.  It must ask them first (they have Raft peers) and not
    # bootstrap a configuration of its own; the leader adds it as a non-voter
    # and Raft promotes it once stable (Nomad's maybeBootstrap).
    "partial-joiner": [(0, "boot", "s1", "s2", "s3"), (20, "partition", "@follower", "@others"),
                       (90, "expect_failed", "@isolated"), (90, "join", "s4"), (130, "heal")],
    # The same join into a healthy cluster: gossip's member events reach the
    # joiner's ServerMembership one at a time, so it sees itself and two of
    # the others -- its bootstrap_expect -- before it hears of the third (a
    # full test run's fourth agent bootstrapped a cluster of its own so).
    "fourth-server-joins": [(0, "boot", "s1", "s2", "s3"), (30, "join", "s4")],
}
SCENARIOS.update(MEMBERSHIP_SCENARIOS)


def _rolling_restart(names: tuple[str, ...]) -> list[Step]:
    """Each server in turn: down 3 s, then 5 s to settle before the next (as for three above)."""
    return [step for i, n in enumerate(names)
            for step in ((4 + 8 * i, "crash", n), (7 + 8 * i, "restart", n))]


def _majority_partition(names: tuple[str, ...]) -> list[Step]:
    """Every server cut from every other: no side holds a majority."""
    return [*((5, "partition", a, b) for i, a in enumerate(names) for b in names[i + 1:]), (20, "heal")]


# Scenarios that name every server: written out above for three, built for the cluster's own.
_PER_CLUSTER = {"rolling-restart": _rolling_restart, "majority-partition": _majority_partition}


def scenario_steps(name: str, names: tuple[str, ...]) -> list[Step]:
    """The steps of scenario *name* for a cluster of servers *names*."""
    build = _PER_CLUSTER.get(name)
    return build(names) if build is not None else list(SCENARIOS[name])

# Scenarios that need client nodes or several regions run on the whole
# simulated cluster: ``nomad-sim cluster --scenario NAME`` (sim/cluster_run.py).
NOT_YET: dict[str, str] = {
    "clients-partitioned": "a whole-cluster scenario: bin/nomad-sim cluster --scenario clients-partitioned",
    "region-cut": "a whole-cluster scenario: bin/nomad-sim cluster --scenario region-cut",
}


def failure_kind(error: str) -> str:
    """What kind of failure an error is (the checker or exception that raised it): ``SafetyViolation``,
    ``liveness``, ``actor failure``, ...  Shrinking keeps a failure of the same kind."""
    return error.split(":", 1)[0].strip()


def minimise(steps: list[Step], fails: Any, *, until_s: float | None = None,
             max_runs: int = 200) -> list[Step]:
    """Remove steps one at a time while ``fails(candidate)`` holds; a minimal failing schedule.

    ``until_s`` is when the failing run stopped: steps after it never ran and are dropped first.
    """
    current = [s for s in steps if until_s is None or s[0] <= until_s]
    runs = 0
    changed = True
    while changed and runs < max_runs:
        changed = False
        for i in range(len(current)):
            candidate = current[:i] + current[i + 1:]
            runs += 1
            if fails(candidate):
                current = candidate
                changed = True
                break
    return current


def save_scenario(path: str, seed: int, steps: list[Step], *, error: str, **sizes: int) -> None:
    """Write a scenario file (``--steps``) that replays *steps* on *seed*: a regression scenario."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"seed": seed, **sizes, "steps": [list(s) for s in steps],
                   "found": error.splitlines()[0][:300] if error else ""}, f, indent=1)
        f.write("\n")


class ScenarioRunner:
    """Resolves a scenario's arguments and applies its verbs to a RaftCluster."""

    def __init__(self, cluster: Any) -> None:
        self.c = cluster
        self.crashed: list[str] = []
        self.last_target: list[str] = []

    def resolve(self, arg: Any) -> Any:
        if not isinstance(arg, str) or not arg.startswith("@"):
            return arg
        c = self.c
        live = sorted(c.live_peers())
        if arg == "@leader":
            return c.leader() or (live[0] if live else c.names[0])
        if arg == "@follower":
            leader = c.leader()
            return next((n for n in live if n != leader), c.names[0])
        if arg == "@crashed":
            return self.crashed[-1] if self.crashed else c.names[0]
        if arg == "@others":
            return [n for n in c.names if n not in self.last_target]
        raise ScenarioError(f"unknown scenario reference {arg} "
                            "(known: @leader, @follower, @crashed, @others)")

    @staticmethod
    def _group(x: Any) -> list[str]:
        return list(x) if isinstance(x, (list, tuple)) else [x]

    def apply(self, verb: str, *raw: Any) -> str:
        c, net = self.c, self.c.sched.network
        args = []
        for a in raw:
            args.append(self.resolve(a))
            if isinstance(a, str) and a.startswith("@") and a != "@others":
                self.last_target = self._group(args[-1])
        nodes = {"partition": 2, "partition_one_way": 2, "hold": 2, "release": 2}.get(
            verb, 1 if verb in ("crash", "restart", "drift", "fsync_lies", "stall_disk") else 0)
        for a in args[:nodes]:
            unknown = [n for n in self._group(a) if n not in c.names]
            if unknown:
                raise ScenarioError(f"{verb}: no server {unknown[0]!r} (servers: {', '.join(c.names)})")
        if verb == "crash":
            if args[0] in c.live_peers():
                disk = c.disks[args[0]]
                lying = (disk.unsynced, disk.last_index, disk.load()[0])
                c.crash(args[0])
                self.crashed.append(args[0])
                if lying[0]:  # a disk that lied about fsync: say what the crash took
                    return (f"crash {args[0]} (its disk lost unsynced writes: last index {lying[1]} -> "
                            f"{disk.last_index}, term {lying[2]} -> {disk.load()[0]})")
        elif verb == "restart":
            if not c.sched.nodes[args[0]].up:
                c.restart(args[0])
        elif verb in ("partition", "partition_one_way"):
            net.partition(self._group(args[0]), self._group(args[1]), one_way=verb == "partition_one_way")
        elif verb == "heal":
            net.heal()
        elif verb == "hold":
            net.hold(args[0], args[1])
        elif verb == "release":
            net.release(args[0], args[1])
        elif verb in ("loss", "duplicate", "reorder"):
            net.configure(**{verb: float(args[0])})
        elif verb == "delay":
            net.configure(latency_min_s=float(args[0]), latency_max_s=float(args[1]))
        elif verb == "drift":
            c.sched.nodes[args[0]].clock_rate = float(args[1])
        elif verb == "fsync_lies":
            c.disks[args[0]].fsync_lies = bool(args[1])
        elif verb == "stall_disk":
            node, seconds = args[0], float(args[1])
            # A stalled fsync delays everything the node says after it: model
            # it by holding the node's outgoing links for that long.
            for other in c.names:
                if other != node:
                    net.hold(node, other)
            c.sched.at(c.sched.now + seconds, lambda n=node: [net.release(n, o) for o in c.names if o != n])
        else:
            raise ScenarioError(f"unknown fault verb {verb!r}")
        return " ".join([verb, *(",".join(self._group(a)) if isinstance(a, (list, tuple)) else str(a)
                                 for a in args)])
