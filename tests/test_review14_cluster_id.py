"""Review 14: cluster IDs (each test xfail(strict) until fixed)."""

from __future__ import annotations

from actors.scheduler.job import canonical_job
from actors.state.store import StateStore, command

CID_A = "2f1f0d0e-7a55-4c1b-9a43-0c2b9f3f8a01"
CID_B = "9b7e4c21-3d6a-4f0e-8e12-5a4c3b2d1e0f"


def _job(job_id: str) -> dict:
    return canonical_job({"ID": job_id, "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [
        {"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]})


def test_a_cluster_restored_from_anothers_snapshot_makes_ids_of_its_own():
    prod = StateStore()
    prod.apply(1, command("cluster_meta_set", cluster_id=CID_A, create_time=1))
    prod.apply(2, command("job_register", job=_job("a"), now=1000.0))
    staging = StateStore()
    staging.apply(1, command("cluster_meta_set", cluster_id=CID_B, create_time=1))
    staging.restore(prod.snapshot(), 3, user=True)  # as its snapshot_restore entry, applied at 3
    prod.apply(3, command("noop"))
    ours = prod.apply(4, command("job_register", job=_job("billing"), now=2000.0))["EvalID"]
    theirs = staging.apply(4, command("job_register", job=_job("scratch"), now=2000.0))["EvalID"]
    assert ours != theirs
