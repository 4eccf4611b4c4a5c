"""A scoped blocking read (one object's, one job's: ``state_query(..., scoped=True)``) parked on the Raft
peer returns when its answer changes or its wait ends, not on every write to its tables: Nomad's watch
on those objects alone does not fire for the rest of the table, and in a busy cluster a table-wide
wake-up answered every parked query of a job page once per write anywhere."""

from __future__ import annotations

from typing import Any

import actors.http_api  # noqa: F401  (the list modules it imports import it)
from actors.http_api import ScopedWait, _guarded
from actors.raft.peer import Propose, Watch
from actors.state.store import command
from tests.test_raft_watches import TICK_S, Recorder, _single_server


def put(sched: Any, raft: Any, key: str, value: Any) -> None:
    done = Recorder(sched)
    raft.tell(Propose(data=command("kv_put", key=key, value=value), reply=done))
    sched.run_for(0.5)
    assert done.at is not None


def park(sched: Any, raft: Any, key: str, timeout_s: float) -> tuple[Recorder, ScopedWait]:
    """A scoped blocking read of one kv key, from the index and answer a first read saw."""
    state = sched.actor_of(raft).state
    guarded = _guarded(lambda st: st.tables["kv"].get(key), ("kv",))
    index, ok, seen = guarded(state)
    assert ok
    wait = ScopedWait(guarded, ("kv",), index, seen)
    rec = Recorder(sched)
    raft.tell(Watch(tables=("kv",), min_index=index, reply=rec, timeout_s=timeout_s, query=wait.answer,
                    index_fn=wait.index))
    sched.run_for(0.01)
    return rec, wait


def test_writes_elsewhere_in_the_table_leave_a_scoped_read_parked() -> None:
    sched, raft = _single_server()
    put(sched, raft, "watched", 1)
    rec, _ = park(sched, raft, "watched", 60.0)
    for i in range(5):
        put(sched, raft, f"other-{i}", i)  # the kv table moves; the watched key's answer does not
    assert rec.at is None
    start = sched.now
    put(sched, raft, "watched", 2)
    assert rec.at is not None and rec.at <= start + 0.5 + TICK_S
    _assert_answer(sched, raft, rec, 2)
    sched.close()


def test_a_scoped_read_still_ends_at_its_wait_with_the_current_index() -> None:
    sched, raft = _single_server()
    put(sched, raft, "watched", 1)
    rec, _ = park(sched, raft, "watched", 3.0)
    put(sched, raft, "other", 1)
    start = sched.now
    sched.run_for(3.0)
    assert rec.at is not None and rec.at - start <= 3.0
    _assert_answer(sched, raft, rec, 1)
    sched.close()


def _assert_answer(sched: Any, raft: Any, rec: Any, want: Any) -> None:
    """The parked read answered *want* with the kv table's current index."""
    _, (table_index, ok, value) = rec.value
    assert ok and value == want and table_index == sched.actor_of(raft).state.table_index["kv"]


def test_a_scoped_wake_up_runs_the_read_once() -> None:
    sched, raft = _single_server()
    put(sched, raft, "watched", 1)
    runs = []
    state = sched.actor_of(raft).state
    guarded = _guarded(lambda st: runs.append(st.applied_index) or st.tables["kv"].get("watched"), ("kv",))
    index, _, seen = guarded(state)
    wait = ScopedWait(guarded, ("kv",), index, seen)
    rec = Recorder(sched)
    raft.tell(Watch(tables=("kv",), min_index=index, reply=rec, timeout_s=60.0, query=wait.answer,
                    index_fn=wait.index))
    sched.run_for(0.01)
    runs.clear()
    put(sched, raft, "watched", 2)
    assert rec.at is not None and len(runs) == len(set(runs)) == 1
    sched.close()
