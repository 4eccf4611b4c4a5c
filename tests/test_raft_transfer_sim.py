"""Raft leadership transfer through the RaftPeer actor, in the simulator (deterministic, virtual time).

``Transfer`` is what ``/v1/operator/raft/transfer-leadership`` sends: a
follower forwards it to the leader, and the reply comes once the leader
has stepped down for the target -- or with ``leadership transfer timeout``
when the target never takes over, the old leader leading on.
"""

from __future__ import annotations

import pytest

from actors.raft.peer import RaftError, Transfer
from sim.raft_cluster import RaftCluster

pytestmark = pytest.mark.timeout(60)


def _transfer(c: RaftCluster, via: str, target: str) -> tuple[bool, str]:
    fut = c.sched.future_cls()
    c.sched.nodes[via].actors["raft"].tell(Transfer(target=target, reply=fut))
    try:
        fut.get(timeout=10.0)
    except RaftError as e:
        return False, str(e)
    return True, ""


def _started() -> tuple[RaftCluster, str, list[str]]:
    c = RaftCluster(7, 3, trace=False)
    c.run(3)
    leader = c.leader()
    assert leader is not None
    return c, leader, sorted(n for n in c.names if n != leader)


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_the_reply_comes_once_the_named_voter_leads(via):
    c, leader, (a, b) = _started()
    c.start_clients(2)  # writes go on around the transfer
    assert _transfer(c, leader if via == "leader" else b, a) == (True, "")
    assert c.live_peers()[leader].core.role != "leader"
    c.run(1)
    assert c.leader() == a
    assert {p.core.leader for p in c.live_peers().values()} == {a}
    c.stop_clients()
    c.run(3)
    c.finish()
    c.close()


def test_a_target_that_cannot_take_over_times_out_and_the_leader_leads_on():
    c, leader, (a, b) = _started()
    c.sched.network.partition([a], [leader, b])
    ok, why = _transfer(c, b, a)
    assert (ok, why) == (False, "leadership transfer timeout")
    assert c.leader() == leader
    c.sched.network.heal()
    c.run(2)
    assert c.leader() == leader
    c.close()


def test_refusals_name_their_reason():
    c, leader, (a, _) = _started()
    # Forwarded to the leader it names: it leads already (an earlier transfer went through, say).
    assert _transfer(c, a, leader) == (True, "")
    assert _transfer(c, leader, "s9") == (False, "s9 is not another voter")
    assert c.leader() == leader
    c.close()


def test_one_transfer_at_a_time_and_each_answer_names_who_leads():
    c, leader, (a, b) = _started()
    c.sched.network.partition([a], [leader, b])  # a cannot take over: the first transfer hangs on
    first = c.sched.future_cls()
    c.sched.nodes[leader].actors["raft"].tell(Transfer(target=a, reply=first))
    c.run(0.3)
    # A second one while the first runs is refused: it would take over the first's target and
    # restart its timeout, with writes refused all along.
    assert _transfer(c, leader, b) == (False, "leadership transfer in progress")
    with pytest.raises(RaftError, match="leadership transfer timeout"):
        first.get(timeout=10.0)
    c.sched.network.heal()
    c.run(2)
    assert _transfer(c, b, b if c.leader() != b else a) == (True, "")
    c.close()


def test_a_duplicated_forwarded_transfer_is_taken_once():
    c, leader, (a, b) = _started()
    c.sched.network.configure(duplicate=1.0)  # every message twice
    assert _transfer(c, b, a) == (True, "")
    c.sched.network.configure(duplicate=0.0)
    c.run(1)
    assert c.leader() == a
    c.close()


def test_a_transfer_sent_to_a_server_that_just_lost_leadership_goes_on_to_the_one_it_names():
    c, leader, (a, b) = _started()
    assert _transfer(c, leader, a) == (True, "")  # a leads now
    c.run(1)
    follower = c.live_peers()[b]
    follower.core.leader = leader  # b has not heard of a yet: it forwards to the old leader
    assert _transfer(c, b, leader) == (True, "")  # the old leader names a; b asks a
    c.run(1)
    assert c.leader() == leader
    c.close()
