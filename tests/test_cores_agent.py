"""Whole CPU cores on a real ``-dev`` agent: a task asking for ``cores = 1`` is placed with a reserved
core, which its allocation shows (AllocatedResources ReservedCores, CpuShares its MHz) and the task sees
(NOMAD_CPU_CORES); a job asking for more cores than are left is not placed, the node exhausted on
"cores"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_agent_process import wait_for
from tests.test_http_jobs import (
    PLACE_DEADLINE_S,
    call,
    dev,  # noqa: F401
    node_id,
)

pytestmark = pytest.mark.timeout(120)


def _job(job_id: str, cores: int, command: str) -> dict[str, Any]:
    return {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{
            "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sh", "args": ["-c", command]},
            "Resources": {"Cores": cores, "MemoryMB": 32}}]}]}


def test_a_task_reserving_a_core_runs_on_it_and_a_larger_ask_is_exhausted_on_cores(dev):  # noqa: F811
    port = dev.http_port
    node = call(port, "GET", f"/v1/node/{node_id(port)}").json()
    total = int(node["Attributes"]["cpu.numcores"])
    mhz = int(node["Attributes"]["cpu.frequency"])
    job = _job("one-core", 1,
               'echo "cores=$NOMAD_CPU_CORES limit=$NOMAD_CPU_LIMIT" > "$NOMAD_ALLOC_DIR/cores"; sleep 300')
    assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    got = call(port, "GET", "/v1/job/one-core").json()["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert (got["Cores"], got["CPU"]) == (1, 0)  # cores without cpu: no MHz asked besides

    def running() -> Any:
        allocs = call(port, "GET", "/v1/job/one-core/allocations").json()
        return allocs[0] if allocs and allocs[0]["ClientStatus"] == "running" else None
    stub = wait_for(running, "one-core running", PLACE_DEADLINE_S)
    alloc = call(port, "GET", f"/v1/allocation/{stub['ID']}").json()
    cpu = alloc["AllocatedResources"]["Tasks"]["t"]["Cpu"]
    assert cpu == {"CpuShares": mhz, "ReservedCores": [0]}

    def written() -> Any:
        r = call(port, "GET", f"/v1/client/fs/cat/{stub['ID']}?path=alloc/cores")
        return r.text.strip() if r.status == 200 and r.text.strip() else None
    assert wait_for(written, "the task's cores file", PLACE_DEADLINE_S) == f"cores=0 limit={mhz}"

    # Every core of the node: one is reserved, so the node is exhausted on "cores".
    assert call(port, "PUT", "/v1/jobs", {"Job": _job("all-cores", total, "sleep 300")}).status == 200

    def failed() -> Any:
        evs = [e for e in call(port, "GET", "/v1/job/all-cores/evaluations").json()
               if e.get("FailedTGAllocs")]
        return evs[0]["FailedTGAllocs"]["g"] if evs else None
    metric = wait_for(failed, "all-cores failed to place", PLACE_DEADLINE_S)
    assert metric["DimensionExhausted"] == {"cores": 1}, metric
    assert not call(port, "GET", "/v1/job/all-cores/allocations").json()
