"""Real agents: a batch task that ends while its client agent is down keeps the exit it made.

One server and one client with raw_exec (and exec where this host runs it).  A batch job's task
runs; the client agent is killed; the task ends while no agent watches it; the client comes back.
Nomad's executor outlives the agent and keeps the task's exit, so the restarted client reports
the task complete (or failed with its real exit code) -- here the task's launcher records the
exit in the task directory.  Before, the exit was unknown, the allocation failed and the batch
job was placed again: the task ran twice.  The server's heartbeat TTL and grace outlast the
client's downtime, so the node is never marked down (that would rightly replace the work).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
import pytest

from tests.test_agent_process import STAGGER, AgentProc, agents, free_port, wait_for  # noqa: F401
from tests.test_exec_driver import _WHY_NOT as EXEC_WHY_NOT
from tests.test_jobs_process import allocs, kill_tasks_under, nodes_by_name, request

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cluster(agents, tmp_path):  # noqa: F811
    root = str(tmp_path)
    server = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "server.toml").write_text("\n".join([
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in server.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1",
        # The client is down for a few seconds: far less than its TTL and grace.
        'min_heartbeat_ttl = "30s"', 'heartbeat_grace = "30s"',
    ]) + "\n")
    srv = agents(["-config", str(tmp_path / "server.toml")], http_port=server["http"]).wait_healthy()
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    path = tmp_path / "client.toml"
    path.write_text("\n".join([
        'name = "c1"', f'data_dir = "{tmp_path / "c1"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        "[client]", "enabled = true", STAGGER, f'servers = ["127.0.0.1:{server["rpc"]}"]',
        "[client.options]", '"driver.raw_exec.enable" = "1"',
    ]) + "\n")

    def start() -> AgentProc:
        return agents(["-config", str(path)], http_port=ports["http"])

    yield srv, start, root
    kill_tasks_under(root)


def batch_job(job_id: str, driver: str, exit_code: int) -> dict[str, Any]:
    # Each run leaves a line in the allocation's shared data dir: the task must run exactly once.
    script = f"echo ran >> ${{NOMAD_ALLOC_DIR}}/data/runs; sleep 2; exit {exit_code}"
    group: dict[str, Any] = {
        "Name": "g", "Count": 1,
        "RestartPolicy": {"Attempts": 0, "Interval": 60_000_000_000, "Delay": 1_000_000_000, "Mode": "fail"},
        "Tasks": [{"Name": "t", "Driver": driver, "Config": {"command": "/bin/sh", "args": ["-c", script]},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}]}
    if exit_code:  # a real failure: not placed again (a batch job's default reschedule policy would)
        group["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    return {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [group]}


def task_pids(job_id: str) -> list[int]:
    """The job's task processes: those with its NOMAD_JOB_ID (its launcher runs with no environment)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("NOMAD_JOB_ID") == job_id and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_through_client_downtime(cluster: Any, job_id: str, driver: str, exit_code: int,
                                sig: int) -> dict[str, Any]:
    """Run the batch job; stop the client with *sig* while its task runs; restart the client once the
    task has ended; answer the job's one allocation once it is terminal."""
    srv, start, root = cluster
    client = start()
    wait_for(lambda: nodes_by_name(srv).get("c1", {}).get("Status") == "ready", "client ready", 30,
             client.detail)
    status, res = request(srv, "PUT", "/v1/jobs", {"Job": batch_job(job_id, driver, exit_code)})
    assert status == 200, res
    wait_for(lambda: any(a["ClientStatus"] == "running" for a in allocs(srv, job_id)), "the task running", 30,
             client.detail)
    pids = wait_for(lambda: task_pids(job_id) or None, "the task's processes", 10)  # sh and its sleep
    client.send(sig)
    assert client.proc.wait(timeout=30) is not None
    assert not any(gone(p) for p in pids), "the task should outlive its client agent"
    wait_for(lambda: all(gone(p) for p in pids), "the task's exit while its client is down", 15)
    time.sleep(0.5)  # its launcher records the exit and ends
    client = start()
    done = wait_for(lambda: (a := allocs(srv, job_id)) and all(
        x["ClientStatus"] in ("complete", "failed") for x in a) and a, "the allocation terminal", 40,
        client.detail)
    assert len(done) == 1, [(a["ID"], a["ClientStatus"]) for a in done]  # not placed again
    (alloc,) = done
    runs = os.path.join(root, "c1", "alloc", alloc["ID"], "alloc", "data", "runs")
    with open(runs) as f:
        assert f.read() == "ran\n"  # the task ran once
    status, full = request(srv, "GET", f"/v1/allocation/{alloc['ID']}")
    assert status == 200, full
    return full


def events(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    return alloc["TaskStates"]["t"]["Events"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_batch_task_that_exits_0_while_its_client_is_down_is_complete_and_not_run_again(cluster, sig):
    alloc = run_through_client_downtime(cluster, "ok", "raw_exec", 0, sig)
    assert alloc["ClientStatus"] == "complete"
    assert not alloc["TaskStates"]["t"]["Failed"]
    assert "Failed Restoring Task" not in [e["Type"] for e in events(alloc)]
    (ended,) = [e for e in events(alloc) if e["Type"] == "Terminated"]
    assert ended["ExitCode"] == 0 and ended["Details"]["exit_code"] == "0"
    srv = cluster[0]
    # Dead: nothing left to place (a failed allocation would be rescheduled under the default policy).
    wait_for(lambda: request(srv, "GET", "/v1/job/ok")[1]["Status"] == "dead", "the job dead", 20)
    assert len(allocs(srv, "ok")) == 1
    status, summary = request(srv, "GET", "/v1/job/ok/summary")
    assert status == 200, summary
    assert (summary["Summary"]["g"]["Complete"], summary["Summary"]["g"]["Failed"]) == (1, 0)


def test_a_batch_task_that_fails_while_its_client_is_down_fails_with_its_exit_code(cluster):
    alloc = run_through_client_downtime(cluster, "bad", "raw_exec", 3, signal.SIGKILL)
    assert alloc["ClientStatus"] == "failed" and alloc["TaskStates"]["t"]["Failed"]
    (ended,) = [e for e in events(alloc) if e["Type"] == "Terminated"]
    assert ended["ExitCode"] == 3 and ended["Details"]["exit_code"] == "3"
    assert ended["DisplayMessage"] == "Exit Code: 3"
    assert events(alloc)[-1]["Type"] == "Not Restarting"  # the restart policy (no attempts) ruled as usual


@pytest.mark.skipif(bool(EXEC_WHY_NOT), reason=EXEC_WHY_NOT or "runs")
def test_an_exec_batch_task_that_exits_while_its_client_is_down_keeps_its_exit(cluster):
    alloc = run_through_client_downtime(cluster, "iso", "exec", 0, signal.SIGKILL)
    assert alloc["ClientStatus"] == "complete"
    (ended,) = [e for e in events(alloc) if e["Type"] == "Terminated"]
    assert ended["ExitCode"] == 0
