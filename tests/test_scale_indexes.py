"""Derived indexes the API's per-job reads use instead of scanning a whole table, checked against the
table after the writes that change it: new versions, GC, a purge, a restore and generic writes."""

from __future__ import annotations

from typing import Any

from actors.state import deployments
from actors.state.namespaces import key_of
from actors.state.store import StateStore, command
from tests.test_scheduler import Cluster, service


def scanned(st: StateStore, job_id: str) -> list[str]:
    """The job's deployments as a scan of every deployment finds them, newest first."""
    deps = [d for d in st.tables[deployments.TABLE].values() if key_of(d) == job_id]
    return [d["ID"] for d in sorted(deps, key=lambda d: (d.get("CreateIndex", 0), d["ID"]), reverse=True)]


def indexed(st: StateStore, job_id: str) -> list[str]:
    deps = deployments.of_job(st, job_id)
    return [d["ID"] for d in sorted(deps, key=lambda d: (d.get("CreateIndex", 0), d["ID"]), reverse=True)]


def rolled_out(jobs: int = 3, versions: int = 3) -> Cluster:
    """*jobs* service jobs, each registered in *versions* versions, each version's deployment placed."""
    c = Cluster()
    for i in range(4):
        c.node(i)
    for v in range(versions):
        for j in range(jobs):
            c.register(**service(f"web{j}", count=2, cpu=50, mem=32, Meta={"v": str(v)}))
        c.schedule()
        c.client()
        c.healthy()
        c.schedule()
    return c


def test_a_jobs_deployments_come_from_its_own_index_as_a_scan_finds_them() -> None:
    c = rolled_out()
    st = c.state
    for j in range(3):
        assert len(indexed(st, f"web{j}")) == 3
        assert indexed(st, f"web{j}") == scanned(st, f"web{j}")
    assert indexed(st, "nope") == [] and deployments.of_job(st, "nope") == []
    st.check_live_index()


def test_the_deployment_index_follows_gc_purge_and_restore() -> None:
    c = rolled_out()
    st = c.state
    # GC of one job's older deployments (terminal, past the cutoff): the newest is found again.
    old = scanned(st, "web0")[1:]
    r = c.apply("core_gc", deployments=old, cutoff=c.now + 10**6, batch_cutoff=c.now + 10**6,
                job_cutoff=c.now + 10**6, deployment_cutoff=c.now + 10**6)
    assert r["ok"] and sorted(r["deployments"]) == sorted(old), r
    assert indexed(st, "web0") == scanned(st, "web0") and len(indexed(st, "web0")) == 1
    assert st.latest_deployment_of[key_of(deployments.of_job(st, "web0")[0])] == indexed(st, "web0")[0]
    st.check_live_index()
    # A purge takes the job's deployments and its index entry with them.
    assert c.apply("job_deregister", job_id="web1", purge=True)["ok"]
    assert indexed(st, "web1") == scanned(st, "web1") == []
    assert "web1" not in st.deployments_by_job
    st.check_live_index()
    # A restore rebuilds the index from the table alone.
    again = StateStore()
    again.restore(st.snapshot(), c.index)
    for j in range(3):
        assert indexed(again, f"web{j}") == scanned(st, f"web{j}")
    assert again.deployments_by_job == st.deployments_by_job
    again.check_live_index()


def test_generic_writes_of_the_deployments_table_keep_the_index() -> None:
    st = StateStore()
    rec: dict[str, Any] = {"ID": "d1", "JobID": "a", "Namespace": "default", "Status": "running"}
    assert st.apply(1, command("upsert", table="deployments", record=rec))["ok"]
    assert st.apply(2, command("upsert", table="deployments", record={**rec, "ID": "d2"}))["ok"]
    assert [d["ID"] for d in sorted(deployments.of_job(st, "a"), key=lambda d: d["ID"])] == ["d1", "d2"]
    st.check_live_index()
    assert st.apply(3, command("delete", table="deployments", ids=["d1", "d2"]))["ok"]
    assert deployments.of_job(st, "a") == [] and st.deployments_by_job == {}
    st.check_live_index()
