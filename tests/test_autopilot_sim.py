"""Autopilot in the simulator: dead servers leave Raft (keeping a quorum), come back, and health is reported.

Five servers of one region run GossipMember + ServerMembership + RaftPeer
(the stack the agent runs), bootstrapped by ``bootstrap_expect``.
"""

from __future__ import annotations

import pytest

from actors.gossip.config import wan_config
from actors.raft.core import LEADER, RaftTimings
from actors.raft.membership import AutopilotConfig, GetAutopilotHealth, ServerMembership
from actors.raft.peer import RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from sim.gossip_cluster import POOL, GossipCluster, member_addr, member_name
from sim.region_run import _tags
from sim.runtime import SimEnv

pytestmark = pytest.mark.timeout(300)
N = 5


# Raft ticks every 0.5 s here (heartbeats as often), so a healthy follower's
# last contact is up to 0.5 s old: the threshold scales with it (Nomad's
# 200 ms is for its 100 ms heartbeats).
HEALTH = AutopilotConfig(last_contact_threshold_s=1.0)


def _cluster(seed: int, autopilot: AutopilotConfig = HEALTH,
             stabilization_ticks: int = 0, gossip: str = "") -> tuple[GossipCluster, dict]:
    raft_cfg = RaftConfig(timings=RaftTimings(tick_s=0.5, election_ticks=10,
                                              stabilization_ticks=stabilization_ticks))
    disks = {member_addr(i): MemoryStorage() for i in range(N)}

    def boot(env: SimEnv) -> tuple[tuple[str, str], ...]:
        env.spawn(RaftPeer, "raft", storage=disks[env.node], config=raft_cfg,
                  leadership_subscribers=("server-membership",))
        env.spawn(ServerMembership, "server-membership", region="global", bootstrap_expect=N,
                  autopilot=autopilot, gossip=gossip)
        return ((env.node, "server-membership"),)

    c = GossipCluster(seed=seed, config=wan_config(), on_boot=boot, record_events=False, trace=False)
    for i in range(N):
        tags = dict(_tags(i, "global"))
        tags["expect"] = str(N)
        c.add(i, seeds=(member_addr(0),) if i else (), tags=tuple(sorted(tags.items())))
    return c, disks


def _leader(c: GossipCluster) -> tuple[str, RaftPeer] | None:
    for i in range(N):
        node = c.sched.nodes[member_addr(i)]
        ref = node.actors.get("raft") if node.up else None
        if ref is not None and ref.is_alive() and c.sched.actor_of(ref).core.role == LEADER:
            return member_addr(i), c.sched.actor_of(ref)
    return None


def _run_until(c: GossipCluster, cond, bound_s: float) -> bool:
    end = c.sched.now + bound_s
    while c.sched.now < end:
        if cond():
            return True
        c.run(1.0, full=False)
    return cond()


def _health(c: GossipCluster, addr: str) -> dict:
    fut = c.sched.future_cls()
    c.sched.nodes[addr].actors["server-membership"].tell(GetAutopilotHealth(reply=fut))
    return fut.get(timeout=10.0)


def test_a_dead_server_is_removed_then_readded_and_health_says_so():
    c, _ = _cluster(1, stabilization_ticks=20)  # server_stabilization_time 10 s
    assert _run_until(c, lambda: _leader(c) is not None and len(_leader(c)[1].core.voters) == N, 120.0)
    c.run(10.0, full=False)
    leader, _ = _leader(c)
    follower = next(member_addr(i) for i in range(N) if member_addr(i) != leader)
    h = _health(c, leader)
    assert h["Healthy"] and h["FailureTolerance"] == 2 and len(h["Servers"]) == N
    assert _health(c, follower)["Leader"] == leader  # a follower asks the leader
    victim = next(member_addr(i) for i in range(N) if member_addr(i) not in (leader, follower))
    c.crash(victim)

    def unhealthy() -> bool:
        rows = {r["ID"]: r for r in _health(c, leader)["Servers"]}
        return victim in rows and not rows[victim]["Healthy"]

    assert _run_until(c, unhealthy, 60.0)
    assert _run_until(c, lambda: victim not in _leader(c)[1].core.voters, 120.0)  # gossip failed + autopilot
    assert len(_leader(c)[1].core.voters) == N - 1
    c.restart(victim)
    assert _run_until(c, lambda: victim in _leader(c)[1].core.learners, 180.0)  # back as a non-voter
    back = c.sched.now
    assert _run_until(c, lambda: victim in _leader(c)[1].core.voters, 180.0)  # promoted once stable
    # server_stabilization_time (10 s) from when it became healthy, which may be up to one poll (1 s)
    # before `back` was seen.
    assert c.sched.now - back >= 9.0
    c.close()


def test_autopilot_keeps_a_quorum_and_can_be_switched_off():
    c, _ = _cluster(2)
    assert _run_until(c, lambda: _leader(c) is not None and len(_leader(c)[1].core.voters) == N, 120.0)
    leader, _ = _leader(c)
    others = [member_addr(i) for i in range(N) if member_addr(i) != leader]
    for v in others[:3]:  # three of five dead: removing them would leave no quorum of the old configuration
        c.crash(v)
    c.run(120.0, full=False)
    peer = _leader(c)
    voters = set(peer[1].core.voters) if peer else set()
    assert not peer or voters == {member_addr(i) for i in range(N)}  # nothing removed (and no quorum left)
    c.close()

    c, _ = _cluster(3, AutopilotConfig(cleanup_dead_servers=False, last_contact_threshold_s=1.0))
    assert _run_until(c, lambda: _leader(c) is not None and len(_leader(c)[1].core.voters) == N, 120.0)
    leader, _ = _leader(c)
    victim = next(member_addr(i) for i in range(N) if member_addr(i) != leader)
    c.crash(victim)
    c.run(120.0, full=False)
    assert victim in _leader(c)[1].core.voters
    c.close()


def test_autopilot_force_leaves_the_dead_server_it_removes_and_it_comes_back_alive():
    """Nomad's RemoveFailedServer (nomad/autopilot.go) is a serf force-leave: the dead server autopilot
    removes from Raft is "left" in every member list -- not "failed" for the 72 h reconnect timeout --
    and, restarted, it is alive again and back in Raft."""
    c, _ = _cluster(4, gossip=POOL)  # the agent's: membership knows its gossip pool actor
    assert _run_until(c, lambda: _leader(c) is not None and len(_leader(c)[1].core.voters) == N, 120.0)
    leader, _ = _leader(c)
    victim = next(member_addr(i) for i in range(N) if member_addr(i) != leader)
    name = member_name(next(i for i in range(N) if member_addr(i) == victim))
    c.force_left_names.add(name)  # the gossip checker's list of members someone force-leaves: autopilot will
    c.crash(victim)
    assert _run_until(c, lambda: victim not in _leader(c)[1].core.voters, 120.0)
    assert _run_until(c, lambda: all(c.statuses(member_addr(i)).get(name) == "left"
                                     for i in range(N) if member_addr(i) != victim), 30.0)
    c.restart(victim)
    assert _run_until(c, lambda: c.statuses(leader).get(name) == "alive"
                      and victim in (*_leader(c)[1].core.voters, *_leader(c)[1].core.learners), 180.0)
    c.close()
