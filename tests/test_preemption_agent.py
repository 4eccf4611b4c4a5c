"""Preemption on a real ``-dev`` agent: a priority-100 system job evicts a priority-50 service allocation
from a full node, its client stops it, and the preempted job waits blocked for room."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import runtime.cli  # noqa: F401  (runtime.cli_jobs is imported through it)
from runtime.cli_jobs import PREEMPTION_DISPLAY_THRESHOLD, plan_preemptions
from tests.test_agent_process import ROOT, wait_for
from tests.test_http_jobs import (
    PLACE_DEADLINE_S,
    call,
    dev,  # noqa: F401
    node_id,
    stop_all_jobs,
)

pytestmark = pytest.mark.timeout(120)
CLI_TIMEOUT_S = 60


def _job(job_id: str, kind: str, priority: int, count: int, cpu: int) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": "g", "Tasks": [{
        "Name": "sleeper", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["300"]},
        "Resources": {"CPU": cpu, "MemoryMB": 32}}]}
    if kind != "system":
        group["Count"] = count
    job = {"ID": job_id, "Type": kind, "Priority": priority, "Datacenters": ["dc1"], "TaskGroups": [group]}
    if kind == "service":
        job["Update"] = {"MinHealthyTime": 0}
    return job


def _allocs(port: int, job_id: str) -> list[dict[str, Any]]:
    return call(port, "GET", f"/v1/job/{job_id}/allocations").json()


def test_plan_preemptions_table_summarises_past_the_threshold() -> None:
    few = [{"ID": f"a{i}", "JobID": "low", "TaskGroup": "g", "JobType": "service", "Namespace": "default"}
           for i in range(2)]
    assert plan_preemptions(few).splitlines()[0].split() == ["Alloc", "ID", "Job", "ID", "Task", "Group"]
    many = [dict(few[0], ID=f"a{i}") for i in range(PREEMPTION_DISPLAY_THRESHOLD)]
    lines = plan_preemptions(many).splitlines()
    assert lines[1].split() == ["low", "default", "service", str(PREEMPTION_DISPLAY_THRESHOLD)]


def test_system_job_preempts_a_low_priority_service_alloc(dev, tmp_path):  # noqa: F811
    port = dev.http_port
    node = call(port, "GET", f"/v1/node/{node_id(port)}").json()
    cpu = node["NodeResources"]["Cpu"]["CpuShares"] - node["ReservedResources"]["Cpu"]["CpuShares"]
    # Two allocations fill the node's CPU; the system job's needs one of them gone.
    low = _job("low", "service", 50, 2, cpu // 2)
    assert call(port, "PUT", "/v1/jobs", {"Job": low}).status == 200
    wait_for(lambda: len([a for a in _allocs(port, "low") if a["ClientStatus"] == "running"]) == 2 or None,
             "low running", PLACE_DEADLINE_S)
    sys_job = _job("sys", "system", 100, 1, max(100, cpu // 4))
    path = tmp_path / "sys.json"
    path.write_text(json.dumps(sys_job))
    plan = subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{port}", "job",
                           "plan", str(path)], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert plan.returncode == 1, plan.stderr
    assert "Preemptions:" in plan.stdout
    low_ids = {a["ID"] for a in _allocs(port, "low")}
    rows = [line.split() for line in plan.stdout.splitlines()]
    assert any(row and row[0] in low_ids for row in rows), plan.stdout
    assert call(port, "PUT", "/v1/jobs", {"Job": sys_job}).status == 200

    def settled() -> Any:
        evicted = [a for a in _allocs(port, "low") if a["DesiredStatus"] == "evict"]
        sys_running = [a for a in _allocs(port, "sys") if a["ClientStatus"] == "running"]
        if len(evicted) == 1 and evicted[0]["ClientStatus"] == "complete" and len(sys_running) == 1:
            return evicted[0], sys_running[0]
        return None

    evicted, placed = wait_for(settled, "the low alloc evicted and the system alloc running",
                               PLACE_DEADLINE_S)
    assert evicted["DesiredDescription"] == f"Preempted by alloc ID {placed['ID']}"
    full = call(port, "GET", f"/v1/allocation/{placed['ID']}").json()
    assert full["PreemptedAllocations"] == [evicted["ID"]]
    evals = call(port, "GET", "/v1/job/low/evaluations").json()
    assert any(ev["TriggeredBy"] == "preemption" for ev in evals)
    wait_for(lambda: any(ev["Status"] == "blocked"
                         for ev in call(port, "GET", "/v1/job/low/evaluations").json()) or None,
             "a blocked evaluation for the low job", PLACE_DEADLINE_S)
    stop_all_jobs(port)
