"""The pure Raft core, property by property (section numbers from the Raft paper / thesis)."""

from __future__ import annotations

from actors.raft.core import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE, RaftTimings
from actors.raft.messages import AppendEntries, Entry, RequestVote
from tests.raft_harness import Net

IDS = ["a", "b", "c"]


def committed_data(net: Net, node: str) -> list[bytes]:
    return [d for (_, _, k, d) in (x for x in net.applied[node] if x[0] != "snapshot") if k == 0]


def test_single_server_elects_itself_and_commits():
    net = Net(["a"])
    net.tick(25)
    assert net.cores["a"].role == LEADER
    net.propose("a", b"x")
    assert committed_data(net, "a") == [b"x"]


def test_election_timeout_elects_exactly_one_leader():
    net = Net(IDS)
    net.tick(30)
    assert len(net.leaders()) == 1


def test_leader_replicates_and_commits_on_majority():
    net = Net(IDS)
    net.elect("a")
    for i in range(10):
        net.propose("a", f"w{i}".encode())
    net.tick(2)
    for n in IDS:
        assert committed_data(net, n) == [f"w{i}".encode() for i in range(10)]


def test_commit_needs_majority_not_minority():
    net = Net(IDS)
    net.elect("a")
    net.cut |= {("a", "b"), ("a", "c")}
    idx, _ = net.propose("a", b"lonely")
    assert net.cores["a"].commit < idx


def test_leader_steps_down_without_quorum():
    net = Net(IDS)
    net.elect("a")
    net.isolate("a")
    net.tick(25)
    assert net.cores["a"].role != LEADER


def test_a_cut_off_leader_steps_down_within_its_lease_before_anyone_may_elect_another():
    """hashicorp/raft's leader lease (half the election timeout): a leader that hears from no majority
    steps down before the others' election timeout has run, so two servers never both lead for long
    -- the old one kept answering clients' heartbeats with TTLs the new leader never heard of, and a
    node they protected was marked down (simulator seed 854, crowded)."""
    net = Net(IDS)
    net.elect("a")
    net.tick(3)
    election = net.cores["a"].t.election_ticks
    net.isolate("a")
    for n in range(1, election + 1):
        net.tick(1)
        if net.cores["a"].role != LEADER:
            break
    assert net.cores["a"].role != LEADER and n <= election // 2 + 1, n
    assert not [c for c in ("b", "c") if net.cores[c].role == LEADER]  # nobody has been elected yet


def test_prevote_keeps_partitioned_server_from_disrupting_the_leader():
    net = Net(IDS)
    net.elect("a")
    net.isolate("c")
    net.tick(50)
    term_c = net.cores["c"].term
    assert net.cores["c"].role in (FOLLOWER, PRE_CANDIDATE)
    assert term_c == net.cores["a"].term  # pre-vote never bumped the term
    net.heal()
    net.tick(5)
    assert net.cores["a"].role == LEADER and net.leaders() == ["a"]


def test_without_prevote_a_rejoining_server_would_raise_the_term():
    net = Net(IDS, timings=RaftTimings(pre_vote=False, check_quorum=False))
    net.elect("a")
    net.isolate("c")
    net.tick(50)
    assert net.cores["c"].term > net.cores["a"].term  # the disruption pre-vote prevents


def test_vote_requires_up_to_date_log_5_4_1():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"x")
    b = net.cores["b"]
    b.step(RequestVote(term=b.term + 1, candidate="c", last_log_index=0, last_log_term=0))
    r = b.take_ready()
    assert not [m for _, m in r.messages if getattr(m, "granted", False)]


def test_only_current_term_entries_commit_by_counting_5_4_2():
    # Figure 8: an old-term entry replicated on a majority is not committed by counting.
    net = Net(["a", "b", "c", "d", "e"])
    net.elect("a")
    net.cut |= {("a", x) for x in "bcde"}
    net.propose("a", b"old")  # only on a
    net.heal()
    net.isolate("a")
    net.elect("e")  # term 3-ish; e lacks "old"
    net.heal()
    # a comes back as follower; its uncommitted entry gets overwritten by e's log.
    net.tick(5)
    leader = net.leaders()[0]
    net.propose(leader, b"new")
    net.tick(3)
    for n in "abcde":
        assert b"old" not in committed_data(net, n)
        assert b"new" in committed_data(net, n)


def test_follower_conflicting_suffix_is_replaced():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"1")
    net.isolate("a")
    for i in range(5):
        net.cores["a"].propose(f"lost{i}".encode())
    net.flush()
    net.queue.clear()
    net.elect("b")
    net.propose("b", b"2")
    net.heal()
    net.tick(30)
    for n in IDS:
        assert committed_data(net, n) == [b"1", b"2"]
        assert net.cores[n].last_index == net.cores["b"].last_index


def test_fast_backtracking_uses_few_round_trips():
    net = Net(IDS)
    net.elect("a")
    net.isolate("c")
    for i in range(300):
        net.cores["a"].propose(b"x")
    net.flush()
    net.deliver()
    net.heal()
    net.cores["a"]._broadcast_heartbeat(0)
    msgs = net.deliver()
    assert net.cores["c"].last_index == net.cores["a"].last_index
    assert msgs < 40


def test_pipelining_sends_many_appends_before_acks():
    net = Net(IDS)
    net.elect("a")
    net.tick(2)
    a = net.cores["a"]
    for i in range(20):
        a.propose(f"p{i}".encode())
    r = a.take_ready()
    appends = [m for to, m in r.messages if to == "b" and isinstance(m, AppendEntries) and m.entries]
    assert len(appends) == 20  # one per proposal, none waiting for an ack


def test_leadership_transfer_hands_over():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"x")
    assert net.cores["a"].transfer_leadership("b") == ""
    net.flush()
    net.deliver()
    assert net.leaders() == ["b"]


def test_membership_add_learner_then_promoted_when_caught_up():
    net = Net(IDS)
    net.elect("a")
    for i in range(5):
        net.propose("a", b"x")
    net.add("d")
    assert net.cores["a"].change_config("add_learner", "d") != "not leader"
    net.flush()
    net.deliver()
    net.tick(5)
    assert "d" in net.cores["a"].voters
    assert net.cores["d"].voters == net.cores["a"].voters
    assert committed_data(net, "d") == committed_data(net, "a")


def test_learner_is_promoted_only_after_being_stable_for_the_stabilization_time():
    net = Net(IDS, timings=RaftTimings(stabilization_ticks=30))
    net.elect("a")
    net.propose("a", b"x")
    net.add("d")
    assert isinstance(net.cores["a"].change_config("add_learner", "d"), tuple)
    net.deliver()
    assert net.cores["a"].progress["d"].match == net.cores["a"].last_index  # caught up at once
    net.tick(28)
    assert "d" in net.cores["a"].learners  # caught up, but not yet for long enough
    net.tick(4)
    assert "d" in net.cores["a"].voters and "d" not in net.cores["a"].learners


def test_a_learner_that_goes_silent_starts_its_stabilization_again():
    net = Net(IDS, timings=RaftTimings(stabilization_ticks=30))
    net.elect("a")
    net.add("d")
    net.cores["a"].change_config("add_learner", "d")
    net.deliver()
    net.tick(20)
    net.isolate("d")  # silent for longer than an election timeout (10 ticks)
    net.tick(15)
    net.heal()
    net.tick(25)  # 60 ticks since it first caught up, but only 25 since it came back
    assert "d" in net.cores["a"].learners
    net.tick(8)
    assert "d" in net.cores["a"].voters


def test_a_learner_far_behind_is_not_promoted():
    net = Net(IDS, timings=RaftTimings(stabilization_ticks=5, promote_max_trailing=3))
    net.elect("a")
    net.add("d")
    net.cores["a"].change_config("add_learner", "d")
    net.deliver()
    net.cut |= {("a", "d")}  # d hears nothing new, but the leader still hears from it
    for _ in range(5):
        net.propose("a", b"x")
    net.tick(3)  # d's heartbeat answers (from before the cut) age out; nothing reaches it
    net.cores["a"].progress["d"].caught_up_since = 0
    net.cores["a"]._maybe_promote("d", net.cores["a"].progress["d"])
    assert "d" in net.cores["a"].learners and net.cores["a"].progress["d"].caught_up_since == -1
    net.heal()
    net.tick(10)
    assert "d" in net.cores["a"].voters


def test_one_config_change_at_a_time():
    net = Net(IDS)
    net.elect("a")
    net.cut |= {("a", "b"), ("a", "c")}
    assert isinstance(net.cores["a"].change_config("remove", "c"), tuple)
    assert "already in progress" in net.cores["a"].change_config("remove", "b")


def test_removed_leader_steps_down():
    net = Net(IDS)
    net.elect("a")
    net.cores["a"].change_config("remove", "a")
    net.flush()
    net.deliver()
    net.tick(3)
    assert net.cores["a"].role != LEADER
    net.tick(40)
    assert len(net.leaders()) == 1 and net.leaders()[0] in ("b", "c")


def test_read_index_confirms_leadership_with_a_quorum():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"x")
    a = net.cores["a"]
    assert a.read_index(7) == ""
    r = a.take_ready()
    assert r.reads == []  # not before a quorum answers
    for to, m in r.messages:
        net.queue.append(("a", to, m))
    net.deliver()
    assert net.reads["a"] == [(7, a.commit)]


def test_read_index_fails_when_isolated_leader_cannot_confirm():
    net = Net(IDS)
    net.elect("a")
    net.isolate("a")
    net.cores["a"].read_index(1)
    reads, failed = [], []
    for _ in range(30):
        net.cores["a"].tick()
        r = net.cores["a"].take_ready()
        reads += r.reads
        failed += r.failed_reads
    assert reads == [] and failed == [1]


def test_restart_restores_log_and_term():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"x")
    a = net.cores["a"]
    from actors.raft.core import RaftCore
    import random

    b2 = RaftCore("a", random.Random(1))
    b2.restore(a.term, a.vote, (0, 0, tuple(IDS), (), b""), list(a.entries))
    assert b2.last_index == a.last_index and b2.term == a.term and b2.voters == tuple(IDS)


def test_candidate_with_stale_log_cannot_win():
    net = Net(IDS)
    net.elect("a")
    net.isolate("c")
    net.propose("a", b"x")
    net.heal()
    net.cores["c"].campaign(transfer=True)  # skip pre-vote and lease: a direct challenge
    net.flush()
    net.deliver()
    assert net.cores["c"].role in (FOLLOWER, CANDIDATE)
    assert net.cores["c"].role != LEADER


def test_new_timings_rescale_the_election_timeout():
    net = Net(["a"])
    c = net.cores["a"]
    c.set_timings(RaftTimings(election_ticks=50))
    assert 50 <= c.timeout < 100


def test_followers_at_the_same_point_get_one_append_object():
    """A broadcast builds one AppendEntries for followers at the same point (the transport encodes it once)."""
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"w0")
    net.tick(2)
    leader = net.cores["a"]
    leader.propose_batch([b"w1", b"w2"])
    r = leader.take_ready()
    appends = [m for _, m in r.messages if isinstance(m, AppendEntries)]
    assert len(appends) == 2 and appends[0] is appends[1]
    assert [e.data for e in appends[0].entries] == [b"w1", b"w2"]
    # A follower elsewhere in the log gets its own.
    leader.progress["c"].next -= 1
    leader.progress["c"].inflight.clear()
    leader.propose_batch([b"w3"])
    r = leader.take_ready()
    by_peer = {to: m for to, m in r.messages if isinstance(m, AppendEntries)}
    assert by_peer["b"] is not by_peer["c"]
    assert [e.data for e in by_peer["b"].entries] == [b"w3"]
    assert [e.data for e in by_peer["c"].entries] == [b"w2", b"w3"]


def _lagging_follower_after_compaction(trailing: int) -> tuple[Net, list[type]]:
    """c misses 20 writes; a compacts at its commit keeping *trailing* entries; c comes back."""
    net = Net(IDS, timings=RaftTimings(snapshot_chunk_bytes=10))
    net.elect("a")
    net.down.add("c")
    for i in range(20):
        net.propose("a", f"v{i}".encode())
    a = net.cores["a"]
    a.compact(a.commit, b"snapshot-bytes-of-state-machine-0123456789", trailing, 1 << 20)
    assert a.snap_index == a.commit and a.log_base == max(a.commit - trailing, 0)
    net.down.discard("c")
    sent: list[type] = []
    step = net.cores["c"].step

    def record(m):
        sent.append(type(m))
        return step(m)
    net.cores["c"].step = record  # type: ignore[method-assign]
    net.tick(5)
    return net, sent


def test_a_follower_behind_the_snapshot_catches_up_from_trailing_entries():
    from actors.raft.messages import InstallSnapshot

    net, sent = _lagging_follower_after_compaction(trailing=64)
    c, a = net.cores["c"], net.cores["a"]
    assert InstallSnapshot not in sent and AppendEntries in sent
    assert c.snap_index == 0 and c.commit == a.commit
    net.propose("a", b"after")
    net.tick(2)  # the next heartbeat carries the commit index
    assert committed_data(net, "c") == [f"v{i}".encode() for i in range(20)] + [b"after"]


def test_snapshot_brings_a_lagging_follower_up_to_date():
    # Without trailing entries, a follower behind the snapshot gets the snapshot (in chunks).
    from actors.raft.messages import InstallSnapshot

    net, sent = _lagging_follower_after_compaction(trailing=0)
    c, a = net.cores["c"], net.cores["a"]
    assert InstallSnapshot in sent
    assert c.snap_index == a.snap_index and c.snap_data == a.snap_data
    assert a.progress["c"].state == "replicate"  # the ack of the first append after it ends the probe
    net.propose("a", b"after")
    net.tick(2)  # the next heartbeat carries the commit index
    assert committed_data(net, "c")[-1] == b"after"


def test_trailing_entries_are_bounded_in_bytes():
    net = Net(IDS)
    net.elect("a")
    for i in range(10):
        net.propose("a", b"x" * 100)
    a = net.cores["a"]
    a.compact(a.commit, b"snap", 1000, 350)  # room for 3 of the 100-byte entries
    assert a.last_index - a.log_base == 3 and a.snap_index == a.last_index
    a.check_invariants(full=True)


def test_restart_with_trailing_entries_keeps_them_and_the_snapshot():
    import random

    from actors.raft.core import RaftCore

    net = Net(IDS)
    net.elect("a")
    for i in range(10):
        net.propose("a", f"w{i}".encode())
    a = net.cores["a"]
    a.compact(a.commit - 2, b"snap", 4, 1 << 20)
    snap = (a.snap_index, a.snap_term, a.snap_voters, a.snap_learners, a.snap_data)
    stored = [Entry(term=a.log_base_term, index=a.log_base, data=b"base")] + list(a.entries)
    b = RaftCore("a", random.Random(1))
    b.restore(a.term, a.vote, snap, stored)
    assert (b.log_base, b.snap_index, b.last_index, b.commit) == (a.log_base, a.snap_index, a.last_index,
                                                                  a.snap_index)
    assert b.term_at(a.log_base + 1) == a.term_at(a.log_base + 1)
    b.check_invariants(full=True)


def test_an_empty_append_at_or_past_the_commit_answers_as_the_general_path_does():
    """A heartbeat (no entries, prev at or past the commit) takes a short path: the same commit
    rule (min of the leader's commit and prev), the same rejection on a term mismatch or a gap."""
    from random import Random

    from actors.raft.core import RaftCore
    from actors.raft.messages import AppendResp

    core = RaftCore("b", Random(1))
    core.restore(1, "", None, [Entry(term=1, index=i) for i in (1, 2, 3)])

    def beat(prev: int, prev_term: int, commit: int) -> AppendResp:
        core.step(AppendEntries(term=1, leader="a", prev_index=prev, prev_term=prev_term, entries=(),
                                commit=commit, read_ctx=7))
        (to, resp), = core.take_ready().messages
        assert to == "a" and resp.read_ctx == 7
        return resp

    r = beat(2, 1, 9)  # the leader's commit is past prev: commit only through prev
    assert (r.success, r.match_index, core.commit) == (True, 2, 2)
    r = beat(3, 1, 1)  # a commit behind ours never lowers it
    assert (r.success, r.match_index, core.commit) == (True, 3, 2)
    r = beat(3, 2, 3)  # prev's term differs: rejected, nothing committed
    assert (r.success, r.hint_index, r.hint_term, core.commit) == (False, 3, 1, 2)
    r = beat(5, 1, 5)  # past our log: rejected with our end as the hint
    assert (r.success, r.hint_index, core.commit) == (False, 4, 2)
    r = beat(3, 1, 3)
    assert (r.success, r.match_index, core.commit) == (True, 3, 3)
    assert core.elapsed == 0 and core.leader == "a"


def test_a_new_leader_changes_no_configuration_before_an_entry_of_its_term_commits():
    """Ongaro's single-server change bug (raft-dev, 2015): a promoted e reaches only e before the leader
    a is lost; b leads without it.  Had b removed a before committing an entry of its term, b and c
    alone would have committed that (a quorum of b, c, d) while d never saw term 2 -- and a, with the
    promotion, would win with d and e and overwrite it.  b must first commit its no-op, on d too."""
    from actors.raft.messages import AppendEntries

    slow = RaftTimings(stabilization_ticks=10**6)  # e stays a non-voter until promoted by hand
    net = Net(["a", "b", "c", "d"], timings=slow)
    net.elect("a")
    net.add("e").t = slow
    net.cores["a"].change_config("add_learner", "e")
    net.tick(2)
    net.cut |= {("a", x) for x in "bcd"}
    assert isinstance(net.cores["a"].change_config("promote", "e"), tuple)
    net.tick(1, nodes=["e"])
    assert "e" in net.cores["e"].voters and "e" in net.cores["b"].learners
    net.down |= {"a", "e"}
    net.cut.clear()
    d = net.cores["d"]
    step = d.step
    d.step = lambda m: None if isinstance(m, AppendEntries) else step(m)  # d votes, but gets no entry
    net.elect("b")
    b = net.cores["b"]
    assert b.commit < b.last_index  # its no-op: b and c of a, b, c, d
    assert "already in progress" in b.change_config("remove", "a")
    d.step = step
    net.tick(2)
    assert b.commit == b.last_index == d.last_index
    assert isinstance(b.change_config("remove", "a"), tuple)
