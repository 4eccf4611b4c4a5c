"""Linearizable reads started before the leader's next Ready share one heartbeat round (thesis §6.4).

``nomad-bench api`` showed each ``GET /v1/nodes`` costing the leader a heartbeat
to every follower; reads queued together now ride one round, as etcd batches
ReadIndex requests.  The round still leaves after every read in it started,
so each is confirmed by acknowledgements that postdate it.
"""

from __future__ import annotations

from actors.raft.messages import AppendEntries
from tests.raft_harness import Net

IDS = ["a", "b", "c"]


def _read_heartbeats(r) -> list[int]:
    return [m.read_ctx for _, m in r.messages if isinstance(m, AppendEntries) and m.read_ctx]


def test_reads_started_together_share_one_round_and_all_complete():
    net = Net(IDS)
    net.elect("a")
    net.propose("a", b"x")
    a = net.cores["a"]
    for req in (1, 2, 3):
        assert a.read_index(req) == ""
    r = a.take_ready()
    ctxs = _read_heartbeats(r)
    assert len(ctxs) == 2 and len(set(ctxs)) == 1  # one heartbeat per follower, one round
    for to, m in r.messages:
        net.queue.append(("a", to, m))
    net.deliver()
    assert sorted(req for req, _ in net.reads["a"]) == [1, 2, 3]


def test_a_read_after_the_round_left_waits_for_a_round_of_its_own():
    net = Net(IDS)
    net.elect("a")
    a = net.cores["a"]
    a.read_index(1)
    first = a.take_ready()
    a.read_index(2)  # the first round is on the wire: its acks may predate this read
    second = a.take_ready()
    assert _read_heartbeats(second) and set(_read_heartbeats(second)).isdisjoint(_read_heartbeats(first))
    for to, m in second.messages:  # only the second round is answered: it postdates both reads
        net.queue.append(("a", to, m))
    net.deliver()
    assert sorted(req for req, _ in net.reads["a"]) == [1, 2]


def test_a_new_term_never_joins_a_round_queued_in_the_old_one():
    net = Net(IDS)
    net.elect("a")
    a = net.cores["a"]
    a.read_index(1)  # queued, not taken
    a._become_follower(a.term + 1, "")  # steps down before its Ready leaves
    assert a._read_seq_queued == 0
