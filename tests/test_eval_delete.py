"""Deleting evaluations (Nomad ``Eval.Delete``): what may go, the paused broker, all-or-nothing by ID."""
from __future__ import annotations

from typing import Any

from actors.state import eval_delete
from actors.state.store import StateStore, command


class _Store:
    """What delete_safe reads of a store: its jobs table and a job's allocations."""

    def __init__(self, jobs: dict[str, Any], allocs: list[dict[str, Any]]) -> None:
        self.tables = {"jobs": jobs}
        self.allocs = allocs

    def job_allocs(self, job_id: str) -> list[dict[str, Any]]:
        return [a for a in self.allocs if a["JobID"] == job_id]


def _job(policy: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    group = {"Name": "web", **({"ReschedulePolicy": policy} if policy is not None else {})}
    return {"ID": "j", "Status": "running", "TaskGroups": [group], **extra}


def _alloc(status: str, **extra: Any) -> dict[str, Any]:
    return {"ID": f"a-{status}", "JobID": "j", "EvalID": "e", "TaskGroup": "web", "ClientStatus": status,
            **extra}


EV = {"ID": "e", "JobID": "j"}
UNLIMITED = {"Unlimited": True, "Attempts": 0}
LIMITED = {"Unlimited": False, "Attempts": 2}


def test_what_nomad_deems_safe_to_delete():
    safe = eval_delete.delete_safe
    assert safe(_Store({}, [_alloc("running")]), EV)  # the job is gone
    assert safe(_Store({"j": _job(Stop=True)}, [_alloc("running")]), EV)
    assert safe(_Store({"j": _job(Status="dead")}, [_alloc("running")]), EV)
    assert safe(_Store({"j": _job()}, []), EV)
    assert safe(_Store({"j": _job()}, [_alloc("complete")]), EV)
    assert not safe(_Store({"j": _job()}, [_alloc("running")]), EV)
    assert not safe(_Store({"j": _job()}, [_alloc("unknown")]), EV)
    assert safe(_Store({"j": _job()}, [_alloc("running", EvalID="other")]), EV)  # not this eval's
    # A failed allocation: only once its reschedule history has been carried forward.
    assert safe(_Store({"j": _job()}, [_alloc("failed")]), EV)  # no policy: never rescheduled
    assert safe(_Store({"j": _job({"Unlimited": False, "Attempts": 0})}, [_alloc("failed")]), EV)
    assert not safe(_Store({"j": _job(UNLIMITED)}, [_alloc("failed")]), EV)
    assert not safe(_Store({"j": _job(UNLIMITED)}, [_alloc("failed", NextAllocation="n")]), EV)
    assert not safe(_Store({"j": _job(LIMITED)}, [_alloc("failed", NextAllocation="n")]), EV)
    tracked = {"Events": [{"RescheduleTime": 1}]}
    carried = _alloc("failed", NextAllocation="n", RescheduleTracker=tracked)
    assert safe(_Store({"j": _job(LIMITED)}, [carried]), EV)


def _store_with_evals() -> StateStore:
    st = StateStore()
    st.tables["jobs"]["live"] = _job(ID="live")
    st.tables["allocs"]["a1"] = {"ID": "a1", "JobID": "live", "EvalID": "busy", "TaskGroup": "web",
                                 "ClientStatus": "running", "NodeID": "n1"}
    st.allocs_by_job.setdefault("live", set()).add("a1")
    for eid, job in (("done1", "gone"), ("done2", "gone"), ("busy", "live")):
        st.tables["evals"][eid] = {"ID": eid, "JobID": job, "Status": "complete"}
    return st


def test_nothing_is_deleted_unless_the_broker_is_paused():
    st = _store_with_evals()
    r = st.apply(1, command("eval_delete", evals=["done1"]))
    assert r == {"ok": False, "error": eval_delete.BROKER_NOT_PAUSED}
    assert "done1" in st.tables["evals"]


def test_by_id_all_or_nothing_and_by_filter_the_safe_ones():
    st = _store_with_evals()
    st.apply(1, command("scheduler_set_config", config={"PauseEvalBroker": True}))
    assert st.apply(2, command("eval_delete", evals=["done1", "nope"])) == {"ok": False,
                                                                            "error": "eval not found"}
    assert st.apply(3, command("eval_delete", evals=["done1", "busy"])) == {
        "ok": False, "error": "eval busy is not safe to delete"}
    assert set(st.tables["evals"]) == {"done1", "done2", "busy"}
    r = st.apply(4, command("eval_delete", evals=["done1", "done1"]))
    assert r == {"ok": True, "index": 4, "count": 1}
    assert st.index("evals") == 4
    # The IDs a filter chose: re-checked, the unsafe and the vanished ones skipped.
    r = st.apply(5, command("eval_delete", evals=["done1", "done2", "busy"], by_filter=True))
    assert r == {"ok": True, "index": 5, "count": 1}
    assert set(st.tables["evals"]) == {"busy"}
    r = st.apply(6, command("eval_delete", evals="busy"))
    assert r == {"ok": False, "error": "evals must be a list of evaluation IDs"}


def test_a_request_over_nomads_id_limit_is_refused():
    st = _store_with_evals()
    st.apply(1, command("scheduler_set_config", config={"PauseEvalBroker": True}))
    too_many = [f"e{i}" for i in range(eval_delete.MAX_IDS_PER_REQUEST + 1)]
    r = st.apply(2, command("eval_delete", evals=too_many))
    assert r["error"] == "request includes 7282 evaluation IDs, must be 7281 or fewer"


def test_deleting_needs_a_management_token_and_counting_read_job():
    from actors.acl import Need, required

    assert required("DELETE", "/v1/evaluations") == (Need("management"),)
    assert required("GET", "/v1/evaluations/count") == required("GET", "/v1/evaluations")
