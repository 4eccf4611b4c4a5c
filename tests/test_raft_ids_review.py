"""Review of Raft server IDs (protocol 3): defects a consensus reviewer looks for, each pinned by a test.

- the address -> node ID migration must not remove an alive voter while another voter is down (a
  3-voter configuration shrunk to 2 with one of them down has no majority left);
- a server known by its address that took its node ID on an uncommitted removal takes the old name
  back when that entry is truncated (else neither name is its own and the cluster loses a voter);
- snapshot member entries ``ID@address`` round-trip with IPv6 addresses and with '@' in an ID;
- an answer under a name no member has, from a member's address (a removed server's late one, or a
  server Raft still knows by its address), is never credited to that member: no match, read
  acknowledgement, contact or vote; it only moves the leader's probe of a member not yet replicating.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from actors.raft.core import CANDIDATE, LEADER, PRE_CANDIDATE, RaftCore, member, parse_member
from actors.raft.messages import (
    CONFIG,
    AppendEntries,
    AppendResp,
    ConfigChange,
    Entry,
    InstallSnapshotResp,
    RequestVoteResp,
    ServerConfigChange,
)
from actors.raft.peer import RaftPeer
from actors.raft.storage import MemoryStorage
from actors.state import snapshot_archive
from runtime import wire
from sim.runtime import Scheduler
from tests.test_raft_server_ids import CFG, _changes, _leader_membership, _legacy_log, _server_event

LEGACY = (("10.0.0.1:4647", "10.0.0.1:4647", True), ("10.0.0.2:4647", "10.0.0.2:4647", True),
          ("10.0.0.3:4647", "10.0.0.3:4647", True))


def _legacy_leader():
    m, env = _leader_membership(LEGACY)
    m.info = replace(m.info, self_id="10.0.0.1:4647")
    return m, env


def test_migration_never_removes_a_voter_while_another_voter_is_down():
    m, env = _legacy_leader()
    m.receive(_server_event("s3.global", "id-3", "10.0.0.3:4647", status="failed"))
    m.receive(_server_event("s2.global", "id-2", "10.0.0.2:4647"))
    assert ("remove", "10.0.0.2:4647", "") not in _changes(env)
    # Voter 3 unknown to gossip (not seen yet): not known alive either, so no removal.
    m, env = _legacy_leader()
    m.receive(_server_event("s2.global", "id-2", "10.0.0.2:4647"))
    assert _changes(env) == []
    # Both alive: the migration goes on, one at a time.
    m.receive(_server_event("s3.global", "id-3", "10.0.0.3:4647"))
    assert _changes(env) == [("remove", "10.0.0.2:4647", "")]


def _legacy_peer(addr: str = "10.0.0.2:4647", sid: str = "id-2"):
    sched = Scheduler(1, trace=False)
    disk = MemoryStorage()
    addrs = tuple(a for a, _, _ in LEGACY)
    disk.save(hard_state=(1, ""), entries=_legacy_log(addrs))
    node = sched.add_node(addr, boot=lambda env: env.spawn(RaftPeer, "raft", storage=disk, config=CFG,
                                                           server_id=sid))
    peer = sched.actor_of(node.actors["raft"])
    assert sched.run_until(lambda: peer.core.id == addr, 1.0)
    return peer


def test_a_legacy_named_server_takes_its_old_name_back_when_its_removal_is_truncated():
    peer = _legacy_peer()
    core = peer.core
    assert core.id == "10.0.0.2:4647"
    core.vote = core.id
    core._append([Entry(term=1, index=2, kind=CONFIG,
                        data=wire.encode(ConfigChange(op="remove", node="10.0.0.2:4647")))])
    peer._take_own_id()
    assert core.id == "id-2" and core.vote == "id-2"
    core._truncate(2)  # a new leader never had the removal: the configuration names the address again
    peer._take_own_id()
    assert core.id == "10.0.0.2:4647" and core.vote == "10.0.0.2:4647"
    # Re-added by its ID (committed or not): the node ID is its own for good.
    core._append([Entry(term=1, index=2, kind=CONFIG,
                        data=wire.encode(ConfigChange(op="remove", node="10.0.0.2:4647"))),
                  Entry(term=1, index=3, kind=CONFIG,
                        data=wire.encode(ServerConfigChange(op="add_learner", node="id-2",
                                                            address="10.0.0.2:4647")))])
    peer._take_own_id()
    assert core.id == "id-2"


@pytest.mark.parametrize("sid,addr", [
    ("id-1", "[::1]:4647"), ("id-1", "[fe80::1%eth0]:4647"), ("a:b", "10.0.0.1:4647"),
    ("user@host", "10.0.0.1:4647"), ("user@host", "[2001:db8::7]:4647"), ("10.0.0.1:4647", "10.0.0.1:4647"),
])
def test_snapshot_member_entries_round_trip(sid, addr):
    assert parse_member(member(sid, addr)) == (sid, addr)
    arch = snapshot_archive.encode(b"x", index=1, term=1, created_ms=0, voters=(member(sid, addr),))
    servers = snapshot_archive.decode(arch).meta["Configuration"]["Servers"]
    assert (servers[0]["ID"], servers[0]["Address"]) == (sid, addr)


def test_an_address_with_an_at_sign_is_refused():
    with pytest.raises(ValueError):
        member("id-1", "a@b:4647")


def test_a_stale_answer_from_a_removed_server_is_not_credited_to_the_new_member_at_its_address():
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(("id-1",), ("10.0.0.1:4647",))
    core.take_ready()
    core.persisted(core.last_index)
    core.campaign()
    core.take_ready()
    core.persisted(core.last_index)
    assert core.role == LEADER
    # A wiped server comes back at 10.0.0.2 as id-9; its old incarnation (named by its address
    # before IDs) sends a late success for an index the new one never had.
    core.change_config("add_learner", "id-9", "10.0.0.2:4647")
    core.take_ready()
    core.persisted(core.last_index)
    core.step(AppendResp(term=core.term, follower="10.0.0.2:4647", success=True, match_index=core.last_index))
    assert core.progress["id-9"].match == 0

    # Not counted as anything of id-9's: its own rejection is still heard and the leader backs off.
    core.take_ready()
    core.step(AppendResp(term=core.term, follower="id-9", success=False, match_index=0, hint_index=1))
    sent = [m for to, m in core.take_ready().messages if to == "id-9" and isinstance(m, AppendEntries)]
    assert sent and sent[-1].prev_index == 0 and core.progress["id-9"].match == 0


# -------------------------------------------- answers under a name no member has (the pure core)

ADDRS = ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647")


def _core_leader(voters=("id-1", "id-2", "id-3"), addrs=ADDRS) -> RaftCore:
    """id-1 leading voters known by IDs distinct from their addresses (10.0.0.N:4647)."""
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(voters, addrs)
    core.take_ready()
    core.persisted(core.last_index)
    core.campaign(transfer=True)
    core.take_ready()
    core.persisted(core.last_index)
    core.step(RequestVoteResp(term=core.term, voter="id-2", granted=True))
    assert core.role == LEADER
    core.take_ready()
    core.persisted(core.last_index)
    return core


def _sent(core: RaftCore, to: str) -> list:
    return [m for t, m in core.take_ready().messages if t == to]


def test_a_vote_under_a_name_that_is_no_voters_is_not_counted():
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(("id-1", "id-2", "id-3"), ADDRS)
    core.take_ready()
    core.campaign(transfer=True)
    assert core.role == CANDIDATE
    # 10.0.0.2:4647 is where id-2 is, but no voter has that name (a removed server's, or one that
    # Raft knew by its address): its vote is no voter's.
    for voter in ("10.0.0.2:4647", "id-9", "10.0.0.3:4647"):
        core.step(RequestVoteResp(term=core.term, voter=voter, granted=True))
        assert core.role == CANDIDATE, voter
    core.step(RequestVoteResp(term=core.term, voter="id-3", granted=True))
    assert core.role == LEADER
    # Pre-votes likewise.
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(("id-1", "id-2", "id-3"), ADDRS)
    core.take_ready()
    core.campaign()
    assert core.role == PRE_CANDIDATE
    core.step(RequestVoteResp(term=core.term + 1, voter="10.0.0.2:4647", granted=True, pre_vote=True))
    assert core.role == PRE_CANDIDATE
    core.step(RequestVoteResp(term=core.term + 1, voter="id-2", granted=True, pre_vote=True))
    assert core.role == CANDIDATE


def test_an_append_answer_under_another_name_at_a_members_address_is_no_match_read_ack_or_contact():
    core = _core_leader()
    last = core.last_index
    core.step(AppendResp(term=core.term, follower="id-2", success=True, match_index=last))
    core.take_ready()
    assert core.read_index(7) == ""
    ctx = core.read_seq
    pr3 = core.progress["id-3"]
    pr3.recent_active = False
    core.step(AppendResp(term=core.term, follower="10.0.0.3:4647", success=True, match_index=last,
                         read_ctx=ctx))
    assert (pr3.match, pr3.read_ctx, pr3.recent_active, pr3.last_ack) == (0, 0, False, 0)
    assert core.take_ready().reads == []
    # id-3's own answer counts.
    core.step(AppendResp(term=core.term, follower="id-3", success=True, match_index=last, read_ctx=ctx))
    assert pr3.match == last and (7, last) in core.take_ready().reads


def _legacy_member_re_added() -> RaftCore:
    """id-1 leading; the server at 10.0.0.3 was a voter named by its address, removed and added back
    (a non-voter) by its node ID id-3, as the address -> ID migration does; it has entry 1 only."""
    core = _core_leader(("id-1", "id-2", "10.0.0.3:4647"))
    # Its no-op commits first: no configuration change before an entry of the leader's term has.
    core.step(AppendResp(term=core.term, follower="id-2", success=True, match_index=core.last_index))
    core.take_ready()
    for op, args in (("remove", ("10.0.0.3:4647",)), ("add_learner", ("id-3", "10.0.0.3:4647"))):
        assert isinstance(core.change_config(op, *args), tuple)
        core.take_ready()
        core.persisted(core.last_index)
        core.step(AppendResp(term=core.term, follower="id-2", success=True, match_index=core.last_index))
        core.take_ready()
    assert core.commit == core.last_index and core.learners == ("id-3",) and core.voters == ("id-1", "id-2")
    return core


def test_answers_under_the_old_name_only_move_the_probe_of_the_member_at_that_address():
    # The re-added server goes by its address until the entries re-adding it reach it: its rejection
    # under the old name makes the leader look further back (else it never gets those entries), its
    # success tells where to probe next; only the answer under its ID counts as a match.
    core = _legacy_member_re_added()
    pr = core.progress["id-3"]
    core.step(AppendResp(term=core.term, follower=ADDRS[2], success=False, match_index=0, hint_index=2))
    sent = [m for m in _sent(core, "id-3") if isinstance(m, AppendEntries)]
    assert [(m.prev_index, len(m.entries)) for m in sent] == [(1, core.last_index - 1)] and pr.match == 0
    core.step(AppendResp(term=core.term, follower="10.0.0.3:4647", success=True, match_index=core.last_index))
    sent = [m for m in _sent(core, "id-3") if isinstance(m, AppendEntries)]
    assert [(m.prev_index, m.entries) for m in sent] == [(core.last_index, ())] and pr.match == 0
    # The same success again: the probe is already there, nothing more is sent (no ping-pong).
    core.step(AppendResp(term=core.term, follower="10.0.0.3:4647", success=True, match_index=core.last_index))
    assert _sent(core, "id-3") == []
    last = core.last_index
    core.step(AppendResp(term=core.term, follower="id-3", success=True, match_index=last))
    assert pr.match == last and pr.state == "replicate"  # (caught up: the leader promotes it)
    core.take_ready()
    # Once it answers under its ID, an answer under the old name is stale: ignored altogether.
    nxt = pr.next
    core.step(AppendResp(term=core.term, follower=ADDRS[2], success=False, match_index=0, hint_index=1))
    assert _sent(core, "id-3") == [] and pr.state == "replicate" and pr.next == nxt


def test_a_snapshot_answer_under_the_old_name_is_no_match():
    core = _legacy_member_re_added()
    core.compact(core.commit, b"state")
    pr = core.progress["id-3"]
    core.step(AppendResp(term=core.term, follower=ADDRS[2], success=False, match_index=0, hint_index=2))
    assert pr.state == "snapshot"
    assert [m.done for m in _sent(core, "id-3")] == [True]
    core.step(InstallSnapshotResp(term=core.term, follower="10.0.0.3:4647", last_index=core.snap_index,
                                  next_offset=0, done=True))
    assert pr.match == 0 and pr.state == "probe"
    sent = [m for m in _sent(core, "id-3") if isinstance(m, AppendEntries)]
    assert [m.prev_index for m in sent] == [core.snap_index]
    last = core.last_index
    core.step(AppendResp(term=core.term, follower="id-3", success=True, match_index=last))
    assert pr.match == last


# ------------------------------------------------------------ a seeded simulation property


class _View:
    """What sim.raft_cluster.RaftChecker reads: the running servers' RaftPeers, by server ID."""

    def __init__(self, c) -> None:
        self.c = c

    def live_peers(self) -> dict:
        c = self.c
        return {sid: c.peer(sid) for sid in sorted(c.addr) if c.sched.nodes[c.addr[sid]].up}


def _property_run(seed: int) -> None:
    from sim.raft_cluster import RaftChecker
    from tests.test_raft_server_ids import _Cluster

    rng = random.Random(seed)
    c = _Cluster(3, seed=seed)
    ids = ("id-1", "id-2", "id-3")
    for sid in ids:
        c.gossip(_server_event(f"s{sid[-1]}.global", sid, c.addr[sid]))
    checker, view = RaftChecker(), _View(c)

    def step(seconds: float) -> None:
        for _ in range(max(1, int(seconds / 0.05))):
            c.sched.run_for(0.05)
            checker.check(view)

    assert c.sched.run_until(lambda: c.leader() is not None, 20.0)
    mover, move_at = rng.choice(ids), rng.randrange(5)
    for rnd in range(5):
        if rnd == move_at:  # restarted at a new address: gossip sees the same ID there
            c.stop(mover)
            step(rng.uniform(0.2, 1.5))
            c.start(mover, "10.0.0.9:4647")
            c.gossip(_server_event(f"s{mover[-1]}.global", mover, "10.0.0.9:4647"))
        elif rng.random() < 0.5:
            victim = rng.choice(ids)
            c.stop(victim)
            step(rng.uniform(0.5, 3.0))
            c.sched.nodes[c.addr[victim]].restart()
        else:
            cut = c.addr[rng.choice(ids)]
            c.sched.network.partition([cut], [a for a in c.sched.nodes if a != cut])
            step(rng.uniform(0.5, 3.0))
            c.sched.network.heal()
        step(rng.uniform(0.5, 2.0))
    want = [(sid, c.addr[sid], True) for sid in ids]

    def converged() -> bool:
        checker.check(view)
        lead = c.leader()
        return lead is not None and all(
            sorted((r["ID"], r["Address"], r["Voter"]) for r in c.peer(s).configuration()) == want
            and c.peer(s).core.commit == c.peer(lead).core.commit for s in ids)
    assert c.sched.run_until(converged, 60.0), (seed, [c.peer(s).configuration() for s in ids])


# Seeds beyond the first ones that once stalled: a server restarted after the move (its membership
# actor new, the move's gossip event told before it started) led and never re-addressed the mover,
# until the membership asked gossip for every member on gaining leadership (Nomad's reconcile).
IDS_REGRESSIONS = (105, 928)
LEGACY_REGRESSIONS = (106, 115, 159, 238, 286, 289, 434, 718, 787, 870, 881)


@pytest.mark.parametrize("seed", (*range(20), *IDS_REGRESSIONS))
def test_servers_with_ids_one_moved_mid_run_with_crashes_and_partitions_stay_safe_and_reconverge(seed):
    _property_run(seed)


def _legacy_property_run(seed: int) -> None:
    """Three servers whose data predates IDs, migrated to node IDs while one crashes and restarts."""
    from sim.raft_cluster import RaftChecker
    from tests.test_raft_server_ids import _Cluster

    rng = random.Random(seed)
    addrs = tuple(f"10.0.0.{i}:4647" for i in (1, 2, 3))
    ids = ("id-1", "id-2", "id-3")
    c = _Cluster(0, seed=seed)
    for sid, addr in zip(ids, addrs, strict=True):
        c.disks[sid] = disk = MemoryStorage()
        disk.save(hard_state=(1, ""), entries=_legacy_log(addrs))
        c.start(sid, addr)
    for sid, addr in zip(ids, addrs, strict=True):
        c.gossip(_server_event(f"s{sid[-1]}.global", sid, addr))
    checker, view = RaftChecker(), _View(c)
    for _ in range(rng.randrange(10, 80)):
        c.sched.run_for(0.05)
        checker.check(view)
    victim = rng.choice(ids)
    c.stop(victim)
    c.gossip(_server_event(f"s{victim[-1]}.global", victim, c.addr[victim], status="failed"))
    for _ in range(rng.randrange(10, 60)):
        c.sched.run_for(0.05)
        checker.check(view)
    c.sched.nodes[c.addr[victim]].restart()
    c.gossip(_server_event(f"s{victim[-1]}.global", victim, c.addr[victim]))

    def migrated() -> bool:
        checker.check(view)
        lead = c.leader()
        if lead is None:
            return False
        want = sorted(c.peer(s).core.id for s in ids)
        views = [sorted((r["ID"], r["Voter"]) for r in c.peer(s).configuration()) for s in ids]
        # Every server but the leader by its ID; the leader too once a later leader re-added it.
        return all(v == [(w, True) for w in want] for v in views) and \
            sum(c.peer(s).core.id == s for s in ids) >= 2
    assert c.sched.run_until(migrated, 60.0), (seed, [c.peer(s).configuration() for s in ids])


@pytest.mark.parametrize("seed", (*range(12), *LEGACY_REGRESSIONS))
def test_an_address_keyed_cluster_migrates_to_node_ids_through_a_crash(seed):
    _legacy_property_run(seed)
