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
