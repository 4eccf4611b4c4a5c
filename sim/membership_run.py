"""Membership scenarios: servers that find each other through gossip and bootstrap by bootstrap_expect.

The Raft scenarios (``sim.scenarios.SCENARIOS``) start every server with the
same fixed configuration.  These run the agent's server stack instead --
GossipMember, ServerMembership and RaftPeer per server, one region -- so
what is under test is how a Raft configuration comes to be: who bootstraps,
and how a server that comes later is added.  ``bin/nomad-sim raft --scenario
NAME --seed N`` plays one (``sim.scenarios.MEMBERSHIP_SCENARIOS`` declares
them).

Steps are ``(at_s, verb, *args)`` as in the Raft scenarios.  Servers are
named ``s1``, ``s2``, ... (gossip member ``s<i>.global``, node
``member_addr(i)``); arguments may be ``@leader``, ``@follower`` (the first
live server that does not lead), ``@others`` (every server, booted or not,
but the previous reference's) and ``@isolated`` (the first side of the latest
partition).  Verbs:

* ``boot S...`` -- start servers with ``bootstrap_expect`` = how many are
  named, each joining the first one named.
* ``join S [EXPECT]`` -- start server S (bootstrap_expect EXPECT, by default
  the first boot's) joining every server booted so far, as ``retry_join``
  with the cluster's addresses would.
* ``partition A B`` / ``heal`` / ``crash S`` / ``restart S`` -- as in the Raft scenarios.
* ``expect_failed S`` -- a precondition: every live server but S sees S failed
  in gossip now (else the run stops: the scenario is not testing what it says).

Checked after every second of virtual time: Raft's guarantees
(:class:`~sim.raft_cluster.RaftChecker`: among them no two leaders in a term
and a single configuration lineage -- every server's configuration comes
from one bootstrap); no server that joined a running cluster ever asks its
Raft to bootstrap.  After the last step the network is healed and, within
``LIVENESS_BOUND_S``, there must be one leader whose voters are every
server, each of which holds that configuration; a server that joined must
have been in the configuration as a non-voter before it was a voter (added
by the leader, promoted once stable -- never a voter of its own making).
"""

from __future__ import annotations

import time
from typing import Any

from actors.gossip.config import wan_config
from actors.gossip.messages import make_tags
from actors.raft.core import LEADER, RaftTimings
from actors.raft.membership import AutopilotConfig, ServerMembership
from actors.raft.peer import RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from sim.gossip_cluster import GossipCluster, member_addr
from sim.raft_cluster import RaftChecker
from sim.runtime import SimEnv

# After the heal: gossip sees the hidden server alive again within a few
# probe rounds and push-pulls (30 s in the WAN profile); the leader adds it
# back if autopilot had removed it, and promotes after server_stabilization_time.
LIVENESS_BOUND_S = 180.0
# Raft ticks every 0.5 s (as the autopilot simulation): heartbeats as often,
# elections after 5-10 s, a non-voter promoted after 20 ticks (Nomad's
# server_stabilization_time, 10 s).
TIMINGS = RaftTimings(tick_s=0.5, election_ticks=10, stabilization_ticks=20)
# A follower's last contact is up to one tick old: the threshold scales with it
# (Nomad's 200 ms is for its 100 ms heartbeats).
AUTOPILOT = AutopilotConfig(last_contact_threshold_s=1.0)


def _index(server: str) -> int:
    if not (server.startswith("s") and server[1:].isdigit()):
        raise ValueError(f"a membership scenario names servers s1, s2, ...: got {server!r}")
    return int(server[1:])


def _tags(i: int, expect: int) -> Any:
    """A server's gossip tags whose rpc_addr is its simulated node (where its RaftPeer listens)."""
    return make_tags({"role": "nomad", "region": "global", "dc": "dc1", "build": "2.0.6", "vsn": "1",
                      "raft_vsn": "3", "id": f"id-{i}", "rpc_addr": member_addr(i), "port": "4647",
                      "expect": str(expect)})


class MembershipCluster:
    """Servers of one region on a simulated gossip pool; the view RaftChecker needs (live_peers)."""

    def __init__(self, seed: int) -> None:
        self.disks: dict[str, MemoryStorage] = {}
        self.expect: dict[str, int] = {}  # node -> its bootstrap_expect
        self.names: list[str] = []  # s1, s2, ... in the order they were started
        self.joiners: set[str] = set()  # nodes started by "join": a running cluster must add them
        self.raft_cfg = RaftConfig(timings=TIMINGS)
        self.g = GossipCluster(seed=seed, config=wan_config(), on_boot=self._boot, record_events=False,
                               trace=True)
        self.sched = self.g.sched

    def _boot(self, env: SimEnv) -> tuple[tuple[str, str], ...]:
        env.spawn(RaftPeer, "raft", storage=self.disks[env.node], config=self.raft_cfg,
                  leadership_subscribers=("server-membership",))
        env.spawn(ServerMembership, "server-membership", region="global",
                  bootstrap_expect=self.expect[env.node], autopilot=AUTOPILOT)
        return ((env.node, "server-membership"),)

    def node(self, server: str) -> str:
        return member_addr(_index(server))

    def start(self, server: str, expect: int, seeds: tuple[str, ...]) -> None:
        addr = self.node(server)
        if addr in self.disks:
            raise ValueError(f"{server} was started already")
        self.disks[addr] = MemoryStorage()
        self.expect[addr] = expect
        self.names.append(server)
        self.g.add(_index(server), seeds=seeds, tags=_tags(_index(server), expect))

    def up(self, server: str) -> bool:
        node = self.sched.nodes.get(self.node(server))
        return node is not None and node.up

    def actor(self, server: str, name: str) -> Any:
        node = self.sched.nodes.get(self.node(server))
        ref = node.actors.get(name) if node is not None and node.up else None
        return self.sched.actor_of(ref) if ref is not None and ref.is_alive() else None

    def live_peers(self) -> dict[str, Any]:
        out = {}
        for s in self.names:
            peer = self.actor(s, "raft")
            if peer is not None:
                out[self.node(s)] = peer
        return out

    def leader(self) -> str | None:
        """The server (s<i>) leading the highest term, if any."""
        best: tuple[int, str] | None = None
        for s in self.names:
            peer = self.actor(s, "raft")
            if peer is not None and peer.core.role == LEADER and (best is None or peer.core.term > best[0]):
                best = (peer.core.term, s)
        return best[1] if best else None


class MembershipScenarioRunner:
    def __init__(self, c: MembershipCluster, every: tuple[str, ...]) -> None:
        self.c = c
        self.every = every  # every server the scenario names, booted or not
        self.last_target: list[str] = []
        self.isolated: list[str] = []
        self.boot_expect = 0

    def resolve(self, arg: Any) -> Any:
        c = self.c
        if arg == "@leader":
            return c.leader() or c.names[0]
        if arg == "@follower":
            leader = c.leader()
            return next((s for s in c.names if s != leader and c.up(s)), c.names[0])
        if arg == "@others":
            return [s for s in self.every if s not in self.last_target]
        if arg == "@isolated":
            if not self.isolated:
                raise ValueError("@isolated before any partition")
            return self.isolated[0]
        return arg

    def apply(self, verb: str, *raw: Any) -> str:
        c, net = self.c, self.c.sched.network
        args = []
        for a in raw:
            args.append(self.resolve(a))
            if a in ("@leader", "@follower"):
                self.last_target = [args[-1]]
        if verb == "boot":
            self.boot_expect = len(args)
            for s in args:
                c.start(s, len(args), seeds=(c.node(args[0]),) if s != args[0] else ())
        elif verb == "join":
            expect = int(args[1]) if len(args) > 1 else self.boot_expect
            c.start(args[0], expect, seeds=tuple(c.node(s) for s in c.names))
            c.joiners.add(c.node(args[0]))
        elif verb == "partition":
            groups = [a if isinstance(a, list) else [a] for a in args[:2]]
            self.isolated = groups[0]
            net.partition([c.node(s) for s in groups[0]], [c.node(s) for s in groups[1]])
        elif verb == "heal":
            net.heal()
        elif verb == "crash":
            if c.up(args[0]):
                c.g.crash(_index(args[0]))
                c.disks[c.node(args[0])].crash()
        elif verb == "restart":
            if not c.up(args[0]):
                c.g.restart(_index(args[0]))
        elif verb == "expect_failed":
            name = c.g.member_name_of(_index(args[0]))
            blind = [s for s in c.names if s != args[0] and c.up(s)
                     and c.g.statuses(_index(s)).get(name) != "failed"]
            if blind:
                raise AssertionError(f"scenario precondition: {', '.join(blind)} do not see {args[0]} failed "
                                     f"at {c.sched.now:.1f}s")
        else:
            raise ValueError(f"unknown membership scenario verb {verb!r}")
        return " ".join([verb, *(",".join(a) if isinstance(a, list) else str(a) for a in args)])


def _servers_in(steps: list[tuple[Any, ...]]) -> tuple[str, ...]:
    named = {a for _, verb, *args in steps if verb in ("boot", "join", "crash", "restart", "expect_failed")
             for a in (args if verb == "boot" else args[:1]) if not str(a).startswith("@")}
    return tuple(sorted(named, key=_index))


def run_membership_seed(seed: int, scenario: str, *, verbose: bool = False,
                        timeline: str | None = None) -> Any:
    """Play membership scenario *scenario* for *seed*; a :class:`~sim.raft_run.RunResult`.

    ``timeline`` is a path for an HTML picture of the run (one lane per server, by node address).
    """
    from sim.raft_run import RunResult
    from sim.scenarios import MEMBERSHIP_SCENARIOS
    from sim.timeline import Timeline

    steps = MEMBERSHIP_SCENARIOS[scenario]
    wall = time.perf_counter()
    c = MembershipCluster(seed)
    runner = MembershipScenarioRunner(c, _servers_in(steps))
    tl = Timeline(tuple(c.node(s) for s in runner.every), every_s=0.5) if timeline else None
    checker = RaftChecker()
    faults: list[str] = []
    # For each joiner: when the leader first held it as a non-voter, and as a voter.
    seen_learner: dict[str, float] = {}
    seen_voter: dict[str, float] = {}
    error = ""

    def note(text: str) -> None:
        faults.append(f"{c.sched.now:.2f}s {text}")
        c.sched.record("fault", text)
        if tl is not None:
            tl.event(c.sched.now, text)
        if verbose:
            print(f"  {faults[-1]}")

    def check() -> None:
        checker.check(c)
        for s in c.names:
            node = c.node(s)
            m = c.actor(s, "server-membership")
            if node in c.joiners and m is not None and m.stats["bootstraps"]:
                raise AssertionError(f"{s} joined a running cluster but bootstrapped a configuration "
                                     "of its own")
        lead = c.leader()
        peer = c.actor(lead, "raft") if lead else None
        if peer is not None:
            for node in c.joiners:
                if node in peer.core.learners:
                    seen_learner.setdefault(node, c.sched.now)
                if node in peer.core.voters:
                    seen_voter.setdefault(node, c.sched.now)

    def step(seconds: float) -> None:
        end = c.sched.now + seconds
        while c.sched.now < end - 1e-9:
            c.g.run(min(1.0, end - c.sched.now), check_every=0)
            check()
            if tl is not None:
                tl.maybe_sample(c)

    try:
        for at_s, verb, *args in sorted(steps, key=lambda s: s[0]):
            if at_s > c.sched.now:
                step(at_s - c.sched.now)
            note(runner.apply(verb, *args))
        step(2.0)
        c.sched.network.heal()  # liveness phase
        for s in c.names:
            if not c.up(s):
                c.g.restart(_index(s))
        note("heal (liveness phase)")
        want = {c.node(s) for s in c.names}
        deadline = c.sched.now + LIVENESS_BOUND_S
        problems = _liveness_problems(c, want)
        while problems and c.sched.now < deadline:
            step(1.0)
            problems = _liveness_problems(c, want)
        if problems:
            error = f"liveness: {LIVENESS_BOUND_S:g}s after healing: {problems}"
        for node in sorted(c.joiners):
            if error:
                break
            if node not in seen_learner or seen_learner[node] > seen_voter.get(node, float("inf")):
                error = f"{node} became a voter without first being added as a non-voter by the leader"
    except AssertionError as exc:  # SafetyViolation, invariant errors, unmet preconditions
        error = f"{type(exc).__name__}: {exc}"
    finally:
        trace, now = c.sched.trace_hash(), c.sched.now
        if tl is not None and timeline:
            tl.write_html(timeline, f"seed {seed} scenario {scenario} -- {error or 'ok'}")
        c.g.close()
    return RunResult(seed=seed, ok=not error, error=error, trace_hash=trace, virtual_s=now,
                     wall_s=time.perf_counter() - wall, ops=0, faults=tuple(faults), scenario=scenario,
                     servers=len(c.names))


def _liveness_problems(c: MembershipCluster, want: set[str]) -> str:
    leaders = [s for s in c.names if (p := c.actor(s, "raft")) is not None and p.core.role == LEADER]
    if len(leaders) != 1:
        return f"want one leader, have {leaders}"
    lead = c.actor(leaders[0], "raft").core
    if set(lead.voters) != want or lead.learners:
        return f"leader {leaders[0]} has voters {sorted(lead.voters)} and non-voters {sorted(lead.learners)}"
    for s in c.names:
        core = c.actor(s, "raft").core
        if (core.voters, core.learners) != (lead.voters, lead.learners):
            return f"{s} holds voters {sorted(core.voters)} non-voters {sorted(core.learners)}"
    return ""
