"""The ``region-cut`` scenario: two federated regions lose the WAN between them, then heal.

Servers of regions ``a`` and ``b`` (three each) share one gossip pool (the
production WAN profile) and run the real server stack that federation
touches: GossipMember, ServerMembership and a RaftPeer per server, Raft
per region, bootstrapped by ``bootstrap_expect``.  After both regions have
a leader, every link between the regions is cut for ``cut_s`` virtual
seconds, then healed.

Checked after every slice: Raft's guarantees in each region
(:class:`~sim.raft_cluster.RaftChecker`, one per region); no server's Raft
configuration ever holds a server of the other region; inside a region
no member ever sees a server of its own region as failed (the cut is
between regions, not within).  Liveness after the heal, within
``HEAL_BOUND_S``: every member sees every other alive, and each region has
exactly one leader whose configuration is its own three servers.
"""

from __future__ import annotations

import time
from typing import Any

from actors.gossip.config import wan_config
from actors.gossip.messages import make_tags
from actors.raft.core import LEADER, RaftTimings
from actors.raft.membership import ServerMembership
from actors.raft.peer import RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from sim.gossip_cluster import GossipCluster, member_addr
from sim.raft_cluster import RaftChecker
from sim.runtime import SimEnv

REGIONS = ("a", "b")
PER_REGION = 3
# After the heal: WAN push-pull (30 s) and suspicion timeouts bound how soon
# every view is whole again; twice that, with room.
HEAL_BOUND_S = 180.0
BOOT_BOUND_S = 60.0


class _RegionView:
    """What RaftChecker needs: the live Raft peers of one region."""

    def __init__(self, c: GossipCluster, members: list[int]) -> None:
        self.c = c
        self.members = members

    def live_peers(self) -> dict[str, Any]:
        out = {}
        for i in self.members:
            node = self.c.sched.nodes.get(member_addr(i))
            ref = node.actors.get("raft") if node is not None and node.up else None
            if ref is not None and ref.is_alive():
                out[member_addr(i)] = self.c.sched.actor_of(ref)
        return out


def _tags(i: int, region: str) -> Any:
    """A server's gossip tags whose rpc_addr is its simulated node (where its RaftPeer listens)."""
    return make_tags({"role": "nomad", "region": region, "dc": "dc1", "build": "2.0.6", "vsn": "1",
                      "raft_vsn": "3", "id": f"id-{i}", "rpc_addr": member_addr(i), "port": "4647",
                      "expect": str(PER_REGION)})


class _AllRegions:
    """What Timeline samples: the scheduler and every region's live Raft peers."""

    def __init__(self, c: GossipCluster, views: dict[str, _RegionView]) -> None:
        self.sched = c.sched
        self.views = views

    def live_peers(self) -> dict[str, Any]:
        return {addr: p for v in self.views.values() for addr, p in v.live_peers().items()}


def run_region_seed(seed: int, *, cut_s: float = 90.0, verbose: bool = False,
                    timeline: str | None = None) -> Any:
    """Run the scenario for *seed*; a :class:`~sim.cluster_run.ClusterRunResult` (scenario ``region-cut``).

    ``timeline`` is a path for an HTML picture of the run (one lane per server, region a first).
    """
    from sim.cluster_run import REGION_CUT, ClusterRunResult
    from sim.timeline import Timeline

    wall = time.perf_counter()
    raft_cfg = RaftConfig(timings=RaftTimings(tick_s=0.5, election_ticks=10))

    def boot(env: SimEnv) -> tuple[tuple[str, str], ...]:
        region = dict(c.specs[env.node].tags)["region"]
        env.spawn(RaftPeer, "raft", storage=disks[env.node], config=raft_cfg)
        env.spawn(ServerMembership, "server-membership", region=region, bootstrap_expect=PER_REGION)
        return ((env.node, "server-membership"),)

    c = GossipCluster(seed=seed, config=wan_config(), regions=REGIONS, on_boot=boot, record_events=False,
                      trace=True)
    n = PER_REGION * len(REGIONS)
    disks = {member_addr(i): MemoryStorage() for i in range(n)}
    by_region = {r: [i for i in range(n) if c.region_of(i) == r] for r in REGIONS}
    checkers = {r: RaftChecker() for r in REGIONS}
    views = {r: _RegionView(c, by_region[r]) for r in REGIONS}
    everyone_view = _AllRegions(c, views)
    lanes = tuple(member_addr(i) for r in REGIONS for i in by_region[r])
    tl = Timeline(lanes, every_s=0.5) if timeline else None
    faults: list[str] = []
    error = ""
    phase = {"cut": False}

    def note(text: str) -> None:
        faults.append(f"{c.sched.now:.2f}s {text}")
        c.sched.record("fault", text)
        if tl is not None:
            tl.event(c.sched.now, text)
        if verbose:
            print(f"  {faults[-1]}")

    def check() -> None:
        for r in REGIONS:
            checkers[r].check(views[r])
            own = {member_addr(i) for i in by_region[r]}
            for addr, peer in views[r].live_peers().items():
                foreign = set(peer.core.voters + peer.core.learners) - own
                if foreign:
                    raise AssertionError(f"{addr} (region {r}) has servers of another region in Raft: {foreign}")
            if not phase["cut"]:
                # Before the cut nothing is expected to fail; after the heal the
                # other side's stale "dead" rumours arrive and are refuted (SWIM
                # and memberlist alike), so a brief "failed" is allowed then --
                # the liveness phase requires every view whole again.
                continue
            for i in by_region[r]:
                statuses = c.statuses(i)
                for j in by_region[r]:
                    if j != i and statuses.get(c.member_name_of(j)) in ("failed", "left"):
                        raise AssertionError(f"{c.member_name_of(i)} sees {c.member_name_of(j)} of its own region "
                                             f"as {statuses[c.member_name_of(j)]} during a cut between regions")

    def step(seconds: float) -> None:
        end = c.sched.now + seconds
        while c.sched.now < end - 1e-9:
            c.run(min(1.0, end - c.sched.now), full=False)
            check()
            if tl is not None:
                tl.maybe_sample(everyone_view)

    def leaders() -> dict[str, list[str]]:
        return {r: [a for a, p in views[r].live_peers().items() if p.core.role == LEADER] for r in REGIONS}

    try:
        for i in range(n):
            c.add(i, seeds=(member_addr(0),) if i else (), tags=_tags(i, c.region_of(i)))
        end = c.sched.now + BOOT_BOUND_S
        while c.sched.now < end and not all(len(v) == 1 for v in leaders().values()):
            step(1.0)
        if not all(len(v) == 1 for v in leaders().values()):
            raise AssertionError(f"liveness: regions did not elect leaders within {BOOT_BOUND_S:g}s: {leaders()}")
        step(5.0)
        a = [member_addr(i) for i in by_region["a"]]
        b = [member_addr(i) for i in by_region["b"]]
        c.sched.network.partition(a, b)
        phase["cut"] = True
        note("cut the WAN between regions a and b")
        step(cut_s)
        phase["cut"] = False
        c.sched.network.heal()
        note("heal (liveness phase)")
        everyone = {c.member_name_of(i) for i in range(n)}
        end = c.sched.now + HEAL_BOUND_S

        def whole() -> bool:
            return all({k for k, v in c.statuses(i).items() if v == "alive"} >= everyone for i in range(n))

        def raft_whole() -> bool:
            ld = leaders()
            return all(len(ld[r]) == 1 and set(views[r].live_peers()[ld[r][0]].core.voters)
                       == {member_addr(i) for i in by_region[r]} for r in REGIONS)

        # The other side's stale "failed" rumours can reach a leader as the
        # WAN heals: autopilot then removes that server from Raft and adds it
        # back (a learner, promoted once stable) when it is seen alive again.
        # Both must be done within the bound.
        while c.sched.now < end and not (whole() and raft_whole()):
            step(1.0)
        if not whole():
            raise AssertionError(f"liveness: pool not whole {HEAL_BOUND_S:g}s after the heal")
        ld = leaders()
        if not all(len(v) == 1 for v in ld.values()):
            raise AssertionError(f"liveness: each region needs one leader after the heal: {ld}")
        for r in REGIONS:
            peer = views[r].live_peers()[ld[r][0]]
            want = {member_addr(i) for i in by_region[r]}
            if set(peer.core.voters) != want:
                raise AssertionError(f"region {r} voters {sorted(peer.core.voters)}, want {sorted(want)}"
                                     f" {HEAL_BOUND_S:g}s after the heal")
    except AssertionError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        trace, now = c.sched.trace_hash(), c.sched.now
        if tl is not None and timeline:
            tl.write_html(timeline, f"seed {seed} scenario {REGION_CUT} (regions {', '.join(REGIONS)}) -- "
                          f"{error or 'ok'}")
        c.close()
    return ClusterRunResult(seed=seed, ok=not error, error=error, trace_hash=trace, virtual_s=now,
                            wall_s=time.perf_counter() - wall, steps=(), faults=tuple(faults),
                            scenario=REGION_CUT, servers=n, clients=0)

