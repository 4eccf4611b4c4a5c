"""Outage recovery with peers.json (runtime.raft_recovery), as Nomad's setupRaft and hashicorp/raft's
RecoverCluster: the file's servers become the configuration, the state keeps every entry of the log."""

from __future__ import annotations

import json
import logging
import random

import pytest

from actors.raft.core import LEADER, RaftCore
from actors.raft.messages import CONFIG, NOOP, AppendEntries, ConfigChange, Entry, ServerConfiguration
from actors.raft.sqlite_store import SqliteStorage
from actors.raft.storage import MemoryStorage
from actors.state.store import StateStore, command
from runtime import wire
from runtime.raft_recovery import (
    PEERS_INFO,
    RecoveryError,
    check_peers_json,
    read_peers_json,
    recover_cluster,
)
from tests.raft_harness import Net

JOB = {"ID": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
       "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                            "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}
A, B, C = "10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647"


def write(path, peers) -> None:
    path.write_text(json.dumps(peers))


def test_both_formats_are_read_and_hashicorps_rules_refuse_bad_configurations(tmp_path):
    f = tmp_path / "peers.json"
    write(f, [{"id": "a", "address": A, "non_voter": False}, {"id": "b", "address": B, "non_voter": True},
              {"id": "c", "address": C}])
    # Raft protocol 3: each server keeps the file's ID (its node ID), stored beside its address.
    assert read_peers_json(str(f)) == ((f"a@{A}", f"c@{C}"), (f"b@{B}",))
    write(f, [A, B])  # Raft protocol 2
    assert read_peers_json(str(f)) == ((A, B), ())
    for peers, why in [
        ({"id": "a"}, "expected a JSON array"),
        ([{"id": "", "address": A}], "empty ID in configuration"),
        ([{"id": "a", "address": A}, {"id": "a", "address": B}], "found duplicate ID in configuration: a"),
        ([{"id": "a"}], "empty address in configuration"),
        ([{"id": "a", "address": A}, {"id": "b", "address": A}], "found duplicate address in configuration"),
        ([{"id": "a", "address": A, "non_voter": True}], "need at least one voter in configuration"),
        ([{"id": "a", "address": "10.0.0.1"}], "is not host:port"),
        ([{"id": "a", "address": A, "non_voter": "no"}], "non_voter a boolean"),
        ([7], "expected an object"),
        ([{"id": "a", "address": "x@10.0.0.1:4647"}], "must not contain"),
    ]:
        write(f, peers)
        with pytest.raises(ValueError, match=why):
            read_peers_json(str(f))
    f.write_text("[{")
    with pytest.raises(ValueError):
        read_peers_json(str(f))


def _cluster_store(storage) -> None:
    """A three-server cluster's log: a snapshot holding a job, then more entries, a configuration change
    and one entry that never committed."""
    st = StateStore()
    st.apply(1, command("job_register", job=JOB, now=1.0))
    storage.save(hard_state=(3, A), snapshot=(1, 1, (A, B, C), (), st.snapshot()), truncate_from=None,
                 entries=[])
    job2 = {**JOB, "ID": "api"}
    storage.save(hard_state=None, snapshot=None, truncate_from=None, entries=[
        Entry(index=2, term=2, data=command("job_register", job=job2, now=2.0)),
        Entry(index=3, term=2, kind=CONFIG, data=b"\x00"),
        Entry(index=4, term=3, data=command("job_register", job={**JOB, "ID": "late"}, now=3.0))])


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_recovery_keeps_every_entry_and_sets_the_files_configuration(tmp_path, kind):
    storage = MemoryStorage() if kind == "memory" else SqliteStorage(str(tmp_path / "raft.db"))
    _cluster_store(storage)
    assert recover_cluster(storage, (A,), (B,), StateStore) == (4, 3)
    term, vote, snap, entries = storage.load()
    assert (term, vote) == (3, A) and entries == []  # the whole log went into the snapshot
    assert snap is not None and snap[:4] == (4, 3, (A,), (B,))
    st = StateStore()
    st.restore(snap[4], snap[0])
    assert sorted(st.tables["jobs"]) == ["api", "late", "web"]  # the uncommitted one too, as hashicorp's
    core = RaftCore(A, random.Random(1))  # a server started on it: the file's voters alone elect
    core.restore(term, vote, snap, entries)
    assert core.voters == (A,) and core.learners == (B,)
    storage.close()


def test_a_server_recovered_from_a_protocol_3_peers_json_keeps_its_node_id(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    (raft_dir / "peers.info").write_text(PEERS_INFO)
    node_id = "f627361f-e162-4108-aa42-86de205ae813"
    write(raft_dir / "peers.json", [{"id": node_id, "address": A, "non_voter": False}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is True
    assert f"configuration {A} (ID {node_id}) at index 4" in caplog.text
    term, vote, snap, entries = storage.load()
    core = RaftCore(node_id, random.Random(1))
    core.restore(term, vote, snap, entries)
    assert core.voters == (node_id,) and core.address_of(node_id) == A


def test_a_store_with_nothing_in_it_is_not_recovered():
    with pytest.raises(RecoveryError, match="refused to recover cluster with no initial state"):
        recover_cluster(MemoryStorage(), (A,), (), StateStore)


def test_the_first_start_writes_peers_info_and_deletes_a_peers_json_found_without_it(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    write(raft_dir / "peers.json", [{"id": "a", "address": A}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is False
    assert (raft_dir / "peers.info").read_text() == PEERS_INFO and not (raft_dir / "peers.json").exists()
    assert "deleted peers.json file (see peers.info for details)" in caplog.text
    assert storage.load()[2][2] == (A, B, C)  # not recovered


def test_a_peers_json_beside_peers_info_is_applied_once_and_deleted(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    assert check_peers_json(str(raft_dir), storage, StateStore) is False  # first start: the sentinel
    assert check_peers_json(str(raft_dir), storage, StateStore) is False  # no file: nothing to do
    write(raft_dir / "peers.json", [{"id": "a", "address": A}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is True
    assert "found peers.json file, recovering Raft configuration..." in caplog.text
    assert "deleted peers.json file after successful recovery" in caplog.text
    assert not (raft_dir / "peers.json").exists() and storage.load()[2][:3] == (4, 3, (f"a@{A}",))


def test_a_bad_peers_json_stops_the_start_with_nomads_message_and_changes_nothing(tmp_path):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    (raft_dir / "peers.info").write_text(PEERS_INFO)
    write(raft_dir / "peers.json", [{"id": "a", "address": A, "non_voter": True}])
    with pytest.raises(RecoveryError, match=r"recovery failed to parse peers\.json: need at least one voter"):
        check_peers_json(str(raft_dir), storage, StateStore)
    assert (raft_dir / "peers.json").exists() and storage.load()[2][2] == (A, B, C)


# ---------------------------------------------------------------- the configuration after a recovery


def _recovered_pair(learners: tuple[str, ...]) -> Net:
    """A three-server cluster (a, b, c) commits two jobs; then b is gone for good, a is recovered with a
    peers.json naming a as the voter (and *learners* as non-voters), and c, which was down (not wiped,
    no peers.json), keeps its log: the same log as a's.  Returns the two restarted servers, c down."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    for i in range(2):
        net.propose("a", command("job_register", job={**JOB, "ID": f"j{i}"}, now=1.0))
    net.tick(2)
    a, c = net.cores["a"], net.cores["c"]
    assert a.commit == c.commit == c.last_index == a.last_index
    storage = MemoryStorage()
    storage.save(hard_state=(a.term, a.vote), snapshot=None, truncate_from=None, entries=list(a.entries))
    assert recover_cluster(storage, ("a",), learners, StateStore) == (a.last_index, a.term)
    restarted = Net(["a", "c"], bootstrap=False)
    restarted.cores["a"].restore(*storage.load())
    restarted.cores["c"].restore(c.term, c.vote, None, list(c.entries))
    assert restarted.cores["c"].voters == ("a", "b", "c")  # its own log says so, and it needs no snapshot
    restarted.down.add("c")
    return restarted


@pytest.mark.parametrize(("learners", "restated"), [
    # Voters only: a bootstrap change, which earlier versions read too.
    ((), ConfigChange(op="bootstrap", node="", voters=("a",))),
    (("c",), ServerConfiguration(voters=("a",), learners=("c",))),
], ids=["voters", "with-a-non-voter"])
def test_a_follower_whose_log_matches_the_recovered_leaders_takes_the_recovered_configuration(
        learners, restated):
    """Configuration entries here are changes of one server; the recovered configuration is only in
    the recovered server's snapshot.  Its first entry as leader restates that configuration whole, so
    a follower that comes back with the old one, and needs no snapshot, takes it on appending, and
    later changes apply to the leader's configuration, not to a diverged one."""
    net = _recovered_pair(learners)
    a, c = net.cores["a"], net.cores["c"]
    net.tick(25)
    assert a.role == LEADER and a.voters == ("a",)
    first = a.entry(a.last_index)
    assert first.kind == CONFIG and first.term == a.term and a.commit == a.last_index
    assert wire.decode(first.data) == restated
    if not learners:
        assert isinstance(a.change_config("add_learner", "c"), tuple)
    net.down.discard("c")
    net.tick(3)
    assert c.snap_index == 0  # entries, not the snapshot, reached it
    assert (first.index, ("a",), learners) in c.config_history()
    net.tick(5)  # caught up: promoted
    assert a.voters == c.voters == ("a", "c") and a.learners == c.learners == ()
    assert a.addrs == c.addrs
    # Restarted from its log, it holds the same configuration (restore applies the restatement too).
    again = RaftCore("c", random.Random(2))
    again.restore(c.term, c.vote, None, list(c.entries))
    assert (again.voters, again.learners) == (c.voters, c.learners)


def test_a_leader_whose_configuration_is_in_its_log_writes_a_no_op_as_before():
    net = Net(["a", "b", "c"])
    net.elect("a")
    assert net.cores["a"].entry(net.cores["a"].last_index).kind == NOOP


def test_a_leader_after_a_compaction_restates_the_same_configuration():
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"x")
    net.tick(2)
    for core in net.cores.values():
        core.compact(core.commit, b"snap")
    net.elect("b")
    b = net.cores["b"]
    e = b.entry(b.last_index)
    assert e.kind == CONFIG
    assert wire.decode(e.data) == ConfigChange(op="bootstrap", node="", voters=("a", "b", "c"))
    assert b.pending_conf_index == e.index  # one change at a time: the next waits for it to commit
    net.tick(2)
    for core in net.cores.values():
        assert core.voters == ("a", "b", "c") and core.commit == e.index
    assert isinstance(b.change_config("add_learner", "d"), tuple)
    net.tick(2)
    b.compact(b.commit, b"snap")  # past the restatement and the change: the snapshot carries them
    assert b.config_history() == () and b.snap_members() == (("a", "b", "c"), ("d",))


def test_a_truncated_restatement_gives_back_the_configuration_before_it():
    c = RaftCore("c", random.Random(1))
    c.bootstrap(("a", "b", "c"))
    restated = Entry(term=2, index=2, kind=CONFIG, data=wire.encode(ServerConfiguration(
        voters=("a@10.0.0.1:4647",), learners=("c",))))
    c.step(AppendEntries(term=2, leader="a", prev_index=1, prev_term=1, entries=(restated,), commit=1))
    assert (c.voters, c.learners, c.address_of("a")) == (("a",), ("c",), "10.0.0.1:4647")
    c.step(AppendEntries(term=3, leader="b", prev_index=1, prev_term=1,
                         entries=(Entry(term=3, index=2, kind=NOOP),), commit=1))
    assert (c.voters, c.learners, c.address_of("a")) == (("a", "b", "c"), (), "a")
    c.check_invariants(full=True)


def test_a_whole_configuration_names_each_server_once_and_some_voter():
    with pytest.raises(ValueError, match="at least one voter"):
        ServerConfiguration(voters=(), learners=("a",))
    with pytest.raises(ValueError, match="twice"):
        ServerConfiguration(voters=("a@10.0.0.1:4647",), learners=("a@10.0.0.2:4647",))


def test_the_simulators_lineage_check_holds_a_restatement_to_the_configuration_held_before_it():
    """sim.raft_cluster.RaftChecker: a restatement changes nothing in a cluster that was never
    recovered; the follower that kept its log through a recovery is the one case where it does."""
    from types import SimpleNamespace

    from sim.raft_cluster import RaftChecker, SafetyViolation

    net = _recovered_pair(())
    view = SimpleNamespace(live_peers=lambda: {n: SimpleNamespace(core=c) for n, c in net.cores.items()
                                               if n not in net.down})
    checker = RaftChecker()
    net.tick(25)
    net.cores["a"].change_config("add_learner", "c")
    checker.check(view, full=True)  # the leader restates its own configuration
    net.down.discard("c")
    net.tick(3)
    with pytest.raises(SafetyViolation, match=r"c's whole configuration at \d+ \(voters \['a'\]"):
        checker.check(view, full=True)


@pytest.mark.parametrize("seed", range(40))
def test_servers_back_after_a_recovery_hold_the_leaders_configuration_whatever_their_logs(seed):
    """Seeded variations of the recovery: three to five servers, writes some of which reach only some
    servers, one survivor recovered with a peers.json of itself (and maybe a returner as a non-voter),
    at least one server gone for good, the leader compacting or not; the others return with their
    logs -- shorter than the survivor's (a snapshot reaches them), equal (entries), or longer with an
    older term (truncated) -- and are added one at a time, reachable only from the leader (the old
    servers never meet while they still hold the old configuration).  Every server ends with the
    leader's configuration, which names no gone server."""
    rng = random.Random(seed)
    ids = ["a", "b", "c", "d", "e"][: rng.choice([3, 4, 5])]
    net = Net(ids, seed=seed)
    net.elect("a")
    for i in range(rng.randrange(1, 6)):
        net.cut = {("a", x) for x in ids[1:] if rng.random() < 0.4}  # some writes reach only some
        net.cores["a"].propose(command("job_register", job={**JOB, "ID": f"j{i}"}, now=1.0))
        net.flush()
        net.deliver()
    survivor = rng.choice(ids)
    old = {n: (c.term, c.vote, list(c.entries)) for n, c in net.cores.items()}
    storage = MemoryStorage()
    term, vote, entries = old[survivor]
    storage.save(hard_state=(term, vote), snapshot=None, truncate_from=None, entries=entries)
    others = [n for n in ids if n != survivor]
    gone = set(rng.sample(others, rng.randrange(1, len(others))))
    others = [n for n in others if n not in gone]
    non_voter = tuple(rng.sample(others, 1)) if rng.random() < 0.3 else ()
    recover_cluster(storage, (survivor,), non_voter, StateStore)
    net = Net([n for n in ids if n not in gone], seed=seed + 1000, bootstrap=False)
    net.cores[survivor].restore(*storage.load())
    for n in others:
        net.cores[n].restore(*old[n][:2], None, old[n][2])
    net.down = set(others)
    net.tick(25)
    lead = net.cores[survivor]
    assert lead.role == LEADER
    if rng.random() < 0.5:
        net.tick(2)
        lead.compact(lead.commit, b"state", trailing=rng.choice([0, 1, 64]), trailing_max_bytes=1 << 20)
    net.cut = {(x, y) for x in others for y in others if x != y}
    for n in others:
        net.down.discard(n)
        if n not in lead.learners:
            for _ in range(20):  # the previous change commits first: one at a time
                if isinstance(lead.change_config("add_learner", n), tuple):
                    break
                net.tick(1)
            else:
                raise AssertionError(f"{n} never added: {lead.status()}")
        net.tick(5)
    net.tick(10)
    want = (tuple(sorted(set(ids) - gone)), ())
    assert (lead.voters, lead.learners) == want, lead.status()
    for n, core in net.cores.items():
        assert (core.voters, core.learners, core.addrs) == (*want, lead.addrs), (n, core.status())
        assert core.commit == lead.commit and core.last_index == lead.last_index
        core.check_invariants(full=True)
