"""The store's by-parent index of periodic and dispatched jobs (``StateStore.children_of``).

A periodic launch's overlap check, a dispatch's idempotency token, the parent's summary
(``Children``) and its ``/v1/jobs/statuses`` row read the parent's own children from the index, not
every job of the cluster: dispatched jobs serve as a work queue, thousands of them beside the rest.
Each answer is the one a scan of every job gives; the index is derived (rebuilt by restore) and
``check_live_index`` holds it to the jobs table.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.http_job_statuses import job_status
from actors.http_jobs import job_summaries
from actors.scheduler.job import canonical_job
from actors.state.store import StateStore
from tests.test_periodic import T0, a_running_launch_that_prohibits_overlap
from tests.test_scheduler import Cluster, service


def _parameterized(job_id: str = "report", namespace: str | None = None) -> dict[str, Any]:
    job = service(job_id=job_id, count=1, Type="batch")
    job["ParameterizedJob"] = {"Payload": "optional", "MetaRequired": [], "MetaOptional": []}
    if namespace:
        job["Namespace"] = namespace
    return canonical_job(job)


class _NoScan(dict):
    """A jobs table whose whole-table walks fail: what reads one parent's children must not walk it."""

    armed = False

    def values(self) -> Any:
        assert not self.armed, "walked every job"
        return super().values()

    def items(self) -> Any:
        assert not self.armed, "walked every job"
        return super().items()

    def __iter__(self) -> Any:
        assert not self.armed, "walked every job"
        return super().__iter__()


def _scan(state: StateStore, parent_id: str, namespace: str = "default") -> list[str]:
    return sorted(k for k, j in state.tables["jobs"].items()
                  if j.get("ParentID") == parent_id and (j.get("Namespace") or "default") == namespace)


def test_dispatched_children_are_indexed_under_their_parent_and_leave_it_when_purged() -> None:
    c = Cluster()
    c.apply("job_register", job=_parameterized())
    c.apply("job_register", job=_parameterized("other"))
    kids = [c.apply("job_dispatch", job_id="report")["DispatchedJobID"] for _ in range(5)]
    c.apply("job_dispatch", job_id="other")
    for i in range(3):
        c.register(**service(job_id=f"plain{i}"))
    st = c.state
    assert [j["ID"] for j in st.job_children("report")] == sorted(kids) == _scan(st, "report")
    assert len(st.job_children("other")) == 1 and st.job_children("plain0") == []
    st.check_live_index()
    c.apply("job_deregister", job_id=kids[0], purge=True)
    assert [j["ID"] for j in st.job_children("report")] == sorted(kids[1:]) == _scan(st, "report")
    c.apply("job_deregister", job_id=kids[1])  # stopped, not purged: still a child
    assert kids[1] in {j["ID"] for j in st.job_children("report")}
    st.check_live_index()
    copy = StateStore()
    copy.restore(st.snapshot(), c.index)
    assert copy.children_of == st.children_of
    copy.check_live_index()


def test_a_dispatch_with_a_token_finds_its_earlier_child_without_walking_every_job() -> None:
    c = Cluster()
    c.apply("job_register", job=_parameterized())
    first = c.apply("job_dispatch", job_id="report", idempotency_token="t1")
    for i in range(20):
        c.register(**service(job_id=f"plain{i}"))
    jobs = _NoScan(c.state.tables["jobs"])
    c.state.tables["jobs"] = jobs
    jobs.armed = True
    again = c.apply("job_dispatch", job_id="report", idempotency_token="t1")
    assert again["ok"] and again["DispatchedJobID"] == first["DispatchedJobID"] and again["EvalID"] == ""
    jobs.armed = False
    assert len(c.state.job_children("report")) == 1


def test_a_launch_that_would_overlap_reads_its_own_children_only() -> None:
    c, first = a_running_launch_that_prohibits_overlap()
    jobs = _NoScan(c.state.tables["jobs"])
    c.state.tables["jobs"] = jobs
    jobs.armed = True
    c.now = T0 + 300
    skipped = c.apply("periodic_launch", job_id="nightly", launch=T0 + 300)["skipped"]
    assert skipped == f"{first} still running"


@pytest.mark.parametrize("namespace", [None, "team"])
def test_the_parents_summary_and_status_count_its_children_as_a_scan_does(namespace: str | None) -> None:
    c = Cluster()
    if namespace:
        c.apply("namespace_upsert", namespaces=[{"Name": namespace}])
    c.node(0)
    reg = c.apply("job_register", job=_parameterized(namespace=namespace))
    assert reg["ok"], reg
    ns = {"namespace": namespace} if namespace else {}
    if namespace:  # the same job ID in the default namespace, with a child of its own: never counted here
        c.apply("job_register", job=_parameterized())
        c.apply("job_dispatch", job_id="report")
    kids = [c.apply("job_dispatch", job_id="report", **ns)["DispatchedJobID"] for _ in range(4)]
    c.schedule()
    key = f"{namespace}\x00report" if namespace else "report"
    st = c.state
    jobs = _NoScan(st.tables["jobs"])
    st.tables["jobs"] = jobs
    jobs.armed = True
    children = job_summaries(st, [key])[key]["Children"]
    status = job_status(st, jobs[key])
    jobs.armed = False
    want = {"Pending": 0, "Running": 0, "Dead": 0}
    for k in _scan(st, "report", namespace or "default"):
        want[{"pending": "Pending", "running": "Running", "dead": "Dead"}[jobs[k]["Status"]]] += 1
    assert children == want and sum(want.values()) == len(kids)
    assert status["ChildStatuses"] == [jobs[k]["Status"] for k in _scan(st, "report", namespace or "default")]


def test_a_token_held_by_two_jobs_stays_found_when_one_goes() -> None:
    # A job registered by hand with a dispatched child's fields holds the same token: the index keeps
    # both, and the token still answers once either is purged.
    c = Cluster()
    c.apply("job_register", job=_parameterized())
    first = c.apply("job_dispatch", job_id="report", idempotency_token="t1")["DispatchedJobID"]
    twin = {**service(job_id="twin", count=1, Type="batch"), "ParentID": "report",
            "DispatchIdempotencyToken": "t1"}
    assert c.apply("job_register", job=canonical_job(twin))["ok"]
    c.state.check_live_index()
    c.apply("job_deregister", job_id=first, purge=True)
    c.state.check_live_index()
    again = c.apply("job_dispatch", job_id="report", idempotency_token="t1")
    assert again["DispatchedJobID"] == "twin" and again["EvalID"] == ""
    c.apply("job_deregister", job_id="twin", purge=True)
    c.state.check_live_index()
    assert c.state.dispatch_tokens == {}
    assert c.apply("job_dispatch", job_id="report", idempotency_token="t1")["EvalID"]  # a new child
