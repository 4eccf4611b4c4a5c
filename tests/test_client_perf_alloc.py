"""The runner's hand-written to_dict methods yield exactly what dataclasses.asdict yields.

They exist only to make persisting cheaper; the persisted JSON must not move
by a byte.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from actors.client.alloc_runner import MemoryAllocStore, TaskEvent, TaskState
from actors.client.drivers import TaskHandle

EVENTS = (
    TaskEvent(type="Received", time=30.262333499908667, message="Task received by client"),
    TaskEvent(type="Started", time=30.262333499908667, message="Task started by client"),
    TaskEvent(type="Terminated", time=41.5, message="Exit Code: 137", exit_code=137, signal=9),
    TaskEvent(type="Restarting", time=0.0, message="", exit_code=None, signal=0),
    TaskEvent(type="Killed", time=1e300, message="naïve ünïcode \u2603 \"quoted\"", exit_code=-1),
)

STATES = (
    TaskState(state="pending"),
    TaskState(state="running", started_at=30.262333499908667, events=EVENTS[:2]),
    TaskState(state="dead", failed=True, restarts=3, last_restart=40.0, started_at=1.0, finished_at=41.5,
              events=EVENTS),
    TaskState(state="dead", failed=False, restarts=0, events=(EVENTS[2],)),
    # Not built as annotated (a list of events): asdict's own answer.
    TaskState(state="running", events=list(EVENTS[:2])),  # type: ignore[arg-type]
)

HANDLES = (
    TaskHandle(driver="raw_exec", alloc_id="20be3172-20fd-5856-9a01-5803914bd0d0", task_name="t", pid=1001,
               pgid=1001, start_time=30.262333499908667),
    TaskHandle(driver="sim", alloc_id="a", task_name="web", pid=1, pgid=7, start_time=0.0),
)


def _same(a: object, b: object) -> bool:
    """Equal, with the same types all the way down (a tuple is not a list) and keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    return a == b


def test_task_state_to_dict_is_asdict():
    for s in STATES:
        assert _same(s.to_dict(), dataclasses.asdict(s)), s


def test_task_event_to_dict_is_asdict():
    for e in EVENTS:
        assert _same(e.to_dict(), dataclasses.asdict(e)), e


def test_task_handle_to_dict_is_asdict():
    for h in HANDLES:
        assert _same(h.to_dict(), dataclasses.asdict(h)), h


def test_persisted_record_json_is_byte_identical():
    record = {
        "version": 1, "alloc": {"ID": "a", "Job": {"TaskGroups": [{"Name": "g"}], "Meta": {"z": "1", "a": "2"}}},
        "invalid": "", "removed": False, "quiet": False, "collected": False, "desired": "run", "modify_index": 7,
        "tasks": {n: {"phase": "running", "state": s.to_dict(), "handle": h.to_dict() if h else None, "count": 1,
                      "interval_start": None, "restart_at": 0.0, "escalated": False, "fail_reason": ""}
                  for n, s, h in zip("bcdea", STATES, (*HANDLES, None, None, None))},
    }
    old = {**record, "tasks": {n: {**t, "state": dataclasses.asdict(STATES["bcdea".index(n)]),
                                   "handle": (dataclasses.asdict(HANDLES["bcdea".index(n)])
                                              if t["handle"] is not None else None)}
                               for n, t in record["tasks"].items()}}
    store = MemoryAllocStore()
    store.put("a", record)
    assert store.data["a"] == json.dumps(old, sort_keys=True)
    assert store.load_all()["a"] == json.loads(json.dumps(old, sort_keys=True))


def test_record_json_reuses_the_alloc_text_byte_identically():
    from actors.client.alloc_runner import _RecordJson

    enc = _RecordJson()
    alloc = {"ID": "a", "Job": {"Version": 1, "TaskGroups": [{"Name": "g", "Count": 3}]}, "ü": "\u2603"}
    rest = {"version": 1, "tasks": {"t": {"phase": "running"}}, "health": None, "desired": "run"}
    for record in ({"alloc": alloc, **rest}, {**rest, "alloc": alloc, "health": True}, {"alloc": alloc},
                   {"alloc": {**alloc, "Job": {"Version": 2}}, **rest}, {"alloc": alloc, "Zz": 1, **rest},
                   {"alloc": alloc, 3: 1}, {"alloc": None, **rest}, {**rest}, {"alloc": alloc, **rest}):
        try:
            want = json.dumps(record, sort_keys=True)
        except TypeError:  # keys that cannot be sorted: refused alike
            with pytest.raises(TypeError):
                enc.encode("a", record)
            continue
        assert enc.encode("a", record) == want
    enc.forget("a")
    assert enc.encode("a", {"alloc": alloc, **rest}) == json.dumps({"alloc": alloc, **rest}, sort_keys=True)
