"""Blocking queries parked on a RaftPeer: each is answered when its tables move or its deadline passes.

The peer skips its walk of the parked watches when no table moved and no
deadline is due; these check that the skip never delays an answer.
"""

from __future__ import annotations

from typing import Any

from actors.raft.peer import Propose, RaftPeer, Watch
from actors.raft.storage import MemoryStorage
from actors.state.store import command
from sim.runtime import Scheduler

TICK_S = 0.1  # RaftTimings' default tick: expiry is checked on every tick


class Recorder:
    """A reply that notes when it was answered, and with what."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.at: float | None = None
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.at, self.value = self.sched.now, value

    def set_exception(self, exc_info: Any) -> None:
        self.at, self.value = self.sched.now, exc_info[1]


def _single_server() -> tuple[Scheduler, Any]:
    sched = Scheduler(3)
    node = sched.add_node("s1", lambda env: env.spawn(RaftPeer, "raft", storage=MemoryStorage(),
                                                      bootstrap=("s1",)))
    sched.run_for(2.0)  # the only voter leads at once
    return sched, node.actors["raft"]


def _park(sched: Scheduler, raft: Any, table: str, timeout_s: float) -> Recorder:
    """Park a watch on *table*, which no write has touched yet (its index is 0)."""
    rec = Recorder(sched)
    raft.tell(Watch(tables=(table,), min_index=0, reply=rec, timeout_s=timeout_s))
    sched.run_for(0.01)
    return rec


def test_watch_parked_after_a_later_one_still_expires_at_its_own_deadline() -> None:
    sched, raft = _single_server()
    start = sched.now
    late = _park(sched, raft, "kv", 5.0)
    early = _park(sched, raft, "jobs", 1.0)  # parked second, due first
    sched.run_for(0.9)
    assert early.at is None and late.at is None
    sched.run_for(0.3)
    assert early.at is not None and early.at - start <= 1.0 + 2 * TICK_S
    assert late.at is None
    sched.run_for(4.0)
    assert late.at is not None and 5.0 <= late.at - start <= 5.0 + 2 * TICK_S
    sched.close()


def test_watch_wakes_on_its_table_only() -> None:
    sched, raft = _single_server()
    on_kv = _park(sched, raft, "kv", 30.0)
    on_jobs = _park(sched, raft, "jobs", 30.0)
    sched.run_for(3.0)  # ticks with nothing due and nothing changed: both stay parked
    assert on_kv.at is None and on_jobs.at is None
    done = Recorder(sched)
    raft.tell(Propose(data=command("kv_put", key="a", value=1), reply=done))
    sched.run_for(0.5)
    assert done.at is not None
    assert on_kv.at is not None and on_kv.at <= done.at + TICK_S
    assert on_jobs.at is None
    sched.run_for(30.0)
    assert on_jobs.at is not None and on_jobs.value[1] is None  # expired, no query
    sched.close()


def test_a_keyed_watch_is_looked_at_only_when_its_key_moves() -> None:
    # Thousands of clients park one query each on their own allocations: a
    # change must cost the watches of the keys it moved, not every watch.
    sched, raft = _single_server()
    state = sched.actor_of(raft).state
    calls = {"n1": 0, "n2": 0}

    def index_of(node: str):
        def index_fn(st: Any) -> int:
            calls[node] += 1
            return st.node_alloc_index.get(node, 0)
        return index_fn

    def park(node: str) -> Recorder:
        rec = Recorder(sched)
        raft.tell(Watch(tables=("allocs",), min_index=0, reply=rec, timeout_s=60.0, index_fn=index_of(node),
                        key=("allocs_node", node)))
        sched.run_for(0.01)
        return rec

    def write() -> None:
        done = Recorder(sched)
        raft.tell(Propose(data=command("kv_put", key="k", value=sched.now), reply=done))
        sched.run_for(0.5)
        assert done.at is not None

    w1, w2 = park("n1"), park("n2")
    before = dict(calls)
    write()  # moves no key: neither watch is evaluated
    assert calls == before and w1.at is None and w2.at is None
    state.node_alloc_index["n1"] = 99
    state._changed_keys.add(("allocs_node", "n1"))
    write()
    assert w1.at is not None and w1.value[0] == 99
    assert w2.at is None and calls["n2"] == before["n2"]
    state.node_alloc_index["n2"] = 7
    state._all_keys_changed = True  # as after a rebuild from a snapshot: every key may have moved
    write()
    assert w2.at is not None and w2.value[0] == 7
    sched.close()


def test_the_store_reports_the_nodes_whose_allocations_moved() -> None:
    from actors.state.store import StateStore

    st = StateStore()
    st.take_changed_keys()
    st._index_alloc({"ID": "a1", "NodeID": "n1", "JobID": "j", "AllocModifyIndex": 5, "ClientStatus": "pending",
                     "DesiredStatus": "run", "Resources": {}})
    assert st.take_changed_keys() == ({("allocs_node", "n1")}, False)
    assert st.take_changed_keys() == (set(), False)
    st.restore(st.snapshot(), 10)
    assert st.take_changed_keys()[1] is True
