"""sysbatch jobs (Nomad 1.2+): each group runs once to completion on every eligible node.

Nomad's sysbatch scheduler and node reconciler (``scheduler/scheduler_sysbatch.go``,
``scheduler/reconciler/reconcile_node.go``), its validation (``TaskGroup.Validate``), its node
endpoint (``createNodeEvals`` makes no evaluation for a sysbatch job), job status and drainer,
played against one StateStore as tests/test_scheduler.py does.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.scheduler.drainer import drain_actions
from actors.scheduler.job import JobError, canonical_job
from tests.test_scheduler import SEC, Cluster


def sysbatch(job_id: str = "once", *, command: str = "/bin/true", count: int = 1,
             **extra: Any) -> dict[str, Any]:
    group = {"Name": "g", "Count": count,
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": command},
                        "Resources": {"CPU": 100, "MemoryMB": 64}}]}
    group.update(extra.pop("group", {}))
    return {"ID": job_id, "Type": "sysbatch", "Datacenters": ["dc1"], "TaskGroups": [group], **extra}


def allocs(c: Cluster, job_id: str = "once") -> list[dict[str, Any]]:
    return sorted((a for a in c.state.tables["allocs"].values() if a["JobID"] == job_id),
                  key=lambda a: (a["NodeID"], a["CreateIndex"]))


def status(c: Cluster, job_id: str = "once") -> str:
    return c.state.tables["jobs"][job_id]["Status"]


def evaluate(c: Cluster, job_id: str = "once") -> None:
    """``nomad job eval``: the job evaluated again as it is."""
    assert c.apply("job_evaluate", job_id=job_id)["ok"]
    c.schedule()


def cluster(n: int = 3) -> Cluster:
    c = Cluster()
    for i in range(n):
        c.node(i)
    return c


# ------------------------------------------------------------ validation
def test_a_sysbatch_job_validates_as_nomads() -> None:
    job = canonical_job(sysbatch())
    g = job["TaskGroups"][0]
    assert job["Type"] == "sysbatch" and "Update" not in job and "ReschedulePolicy" not in g
    assert "Migrate" not in g
    # Restarts as a batch job's group does (Nomad's api TaskGroup.Canonicalize).
    assert g["RestartPolicy"] == {"Attempts": 3, "Interval": 24 * 3600 * SEC, "Delay": 15 * SEC,
                                  "Mode": "fail"}
    assert canonical_job(sysbatch(count=2))["TaskGroups"][0]["Count"] == 2  # count allocations per node
    assert canonical_job(sysbatch(group={"MaxRunDuration": 60 * SEC}))["TaskGroups"][0]["MaxRunDuration"]
    assert canonical_job(sysbatch(Periodic={"Spec": "@daily"}))["Periodic"]["Spec"] == "@daily"
    assert canonical_job(sysbatch(ParameterizedJob={}))["ParameterizedJob"]["Payload"] == "optional"
    # An update block whose every field is zero is Nomad's empty one: dropped, not refused.
    assert "Update" not in canonical_job(sysbatch(Update={"MaxParallel": 0, "Stagger": 0}))
    for job, message in [
            (sysbatch(Update={"MaxParallel": 1}), 'Update: Job type "sysbatch" does not allow update block'),
            (sysbatch(group={"Update": {}}), 'Job type "sysbatch" does not allow update block'),
            (sysbatch(Migrate={"MaxParallel": 2}), 'Job type "sysbatch" does not allow migrate block'),
            (sysbatch(group={"Migrate": {}}), 'Job type "sysbatch" does not allow migrate block'),
            (sysbatch(Reschedule={"Attempts": 1}),
             "System or sysbatch jobs should not have a reschedule policy"),
            (sysbatch(group={"ReschedulePolicy": {"Attempts": 1}}),
             "System or sysbatch jobs should not have a reschedule policy"),
            ({**sysbatch(), "Type": "cron"}, "must be one of ('service', 'batch', 'system', 'sysbatch')")]:
        with pytest.raises(JobError, match=message.replace("(", r"\(").replace(")", r"\)")):
            canonical_job(job)


def test_a_sysbatch_job_file_parses() -> None:
    from runtime.hcl_job import parse_hcl_job

    job = parse_hcl_job('job "once" {\n  type = "sysbatch"\n  group "g" {\n    task "t" {\n'
                    '      driver = "raw_exec"\n      config { command = "/bin/true" }\n    }\n  }\n}\n')
    assert canonical_job(job)["Type"] == "sysbatch"


# ------------------------------------------------------------ placement and completion
def test_runs_once_on_every_eligible_feasible_node_and_is_dead_when_all_finished() -> None:
    c = cluster(3)
    c.node(7, drivers=())  # infeasible: no raw_exec
    c.node(8, dc="dc2")  # not in the job's datacenters
    c.node(9)
    c.apply("node_update_eligibility", node_id="node-0009", eligibility="ineligible")
    c.register(**sysbatch(count=2))
    assert status(c) == "pending"
    c.schedule()
    placed = allocs(c)
    assert sorted((a["NodeID"], a["Name"]) for a in placed) == [
        (f"node-{i:04d}", f"once.g[{k}]") for i in range(3) for k in range(2)]
    ev = c.state.tables["evals"][placed[0]["EvalID"]]
    assert ev["Type"] == "sysbatch" and ev["Status"] == "complete" and not ev["FailedTGAllocs"]
    assert status(c) == "running"  # its allocations wait for their client: live
    c.client("running")
    assert status(c) == "running"
    c.client("complete", node="node-0000")
    assert status(c) == "running"
    c.client("complete")
    assert status(c) == "dead"
    # Finished: evaluated again, nothing runs again.
    evaluate(c)
    assert len(allocs(c)) == 6 and status(c) == "dead"


def test_a_failed_allocation_is_neither_rescheduled_nor_run_again() -> None:
    c = cluster(2)
    c.register(**sysbatch())
    c.schedule()
    failed = allocs(c)[0]
    evals_before = set(c.state.tables["evals"])
    c.apply("alloc_client_update", allocs=[{"ID": failed["ID"], "ClientStatus": "failed"}])
    c.client("complete")
    # No evaluation: a sysbatch group has no reschedule policy (its restarts were the client's).
    assert set(c.state.tables["evals"]) == evals_before
    evaluate(c)
    assert [a["ClientStatus"] for a in allocs(c)] == ["failed", "complete"]
    assert status(c) == "dead"


def test_a_node_joining_later_runs_it_at_the_jobs_next_evaluation() -> None:
    """Nomad's createNodeEvals makes no evaluation of a sysbatch job for a node (Nomad 1.8.4, #23858: a
    non-periodic sysbatch job runs on the nodes eligible when it is scheduled); the job's next
    evaluation (``nomad job eval``, a new version, a periodic launch) places on the new node."""
    c = cluster(2)
    c.register(**sysbatch())
    c.schedule()
    c.client("complete")
    assert status(c) == "dead"
    c.node(5)
    assert not [e for e in c.state.tables["evals"].values()
                if e["JobID"] == "once" and e["TriggeredBy"] == "node-update"]
    c.schedule()
    assert len(allocs(c)) == 2
    evaluate(c)
    new = [a for a in allocs(c) if a["NodeID"] == "node-0005"]
    assert len(new) == 1 and new[0]["ClientStatus"] == "pending" and len(allocs(c)) == 3
    assert status(c) == "running"
    c.client("complete")
    assert status(c) == "dead"


def test_an_update_runs_again_where_it_changed_what_runs_only() -> None:
    c = cluster(2)
    c.register(**sysbatch())
    c.schedule()
    c.client("complete")
    first = {a["ID"] for a in allocs(c)}
    # A version that changes nothing the tasks run (its priority; a meta change does, as Nomad's
    # tasksUpdated has it): nothing runs again.
    c.register(**sysbatch(Priority=70))
    c.schedule()
    assert {a["ID"] for a in allocs(c)} == first and status(c) == "dead"
    # A new command: every node runs it once more, each replacing the finished allocation there.
    c.register(**sysbatch(command="/bin/echo"))
    c.schedule()
    new = [a for a in allocs(c) if a["ID"] not in first]
    assert len(new) == 2 and all(a["JobVersion"] == 2 for a in new)
    by_id = c.state.tables["allocs"]
    assert all(by_id[a["PreviousAllocation"]]["NodeID"] == a["NodeID"] for a in new)
    assert all(by_id[i]["DesiredStatus"] == "stop" for i in first)
    assert status(c) == "running"
    c.client("complete")
    assert status(c) == "dead"
    evaluate(c)
    assert len(allocs(c)) == 4


def test_a_running_allocation_is_replaced_on_its_node_by_a_destructive_update() -> None:
    c = cluster(2)
    c.register(**sysbatch(command="/bin/sleep"))
    c.schedule()
    c.client("running")
    old = {a["ID"] for a in allocs(c)}
    c.register(**sysbatch(command="/bin/sh"))
    c.schedule()
    live = [a for a in allocs(c) if a["DesiredStatus"] == "run"]
    assert len(live) == 2 and not old & {a["ID"] for a in live}
    assert sorted(a["NodeID"] for a in live) == ["node-0000", "node-0001"]


def test_a_down_nodes_unfinished_allocation_is_lost_and_not_run_again() -> None:
    c = cluster(3)
    c.register(**sysbatch())
    c.schedule()
    c.client("running")
    c.client("complete", node="node-0001")
    res = c.apply("node_update_status", node_id="node-0000", status="down")
    c.apply("node_update_status", node_id="node-0001", status="down")
    assert not res["evals"]  # Nomad: no node-update evaluation for a sysbatch job
    evaluate(c)
    by_node = {a["NodeID"]: a for a in allocs(c)}
    assert len(allocs(c)) == 3
    assert by_node["node-0000"]["ClientStatus"] == "lost" and by_node["node-0000"]["DesiredStatus"] == "stop"
    assert by_node["node-0001"]["ClientStatus"] == "complete"  # it finished: left as it is
    c.apply("node_update_status", node_id="node-0000", status="ready")  # back: not run there again
    evaluate(c)
    assert len(allocs(c)) == 3
    c.client("complete")
    assert status(c) == "dead"


def test_a_job_scaled_to_zero_or_stopped_stops_what_still_runs() -> None:
    c = cluster(2)
    c.register(**sysbatch(command="/bin/sleep"))
    c.schedule()
    c.client("running")
    c.register(**sysbatch(command="/bin/sleep", count=0))
    c.schedule()
    assert all(a["DesiredStatus"] == "stop" for a in allocs(c))
    c.client("complete")
    assert status(c) == "dead"


def test_a_drain_leaves_sysbatch_work_to_finish_and_ignore_system_does_not_skip_it() -> None:
    """Nomad's drainer migrates neither batch nor sysbatch allocations (no migrate block): they finish
    before the drain completes, or are stopped at its deadline; -ignore-system is for system jobs."""
    c = cluster(2)
    c.register(**sysbatch(command="/bin/sleep"))
    c.schedule()
    c.client("running")
    node = "node-0000"
    c.apply("node_update_drain", node_id=node, drain_spec={"Deadline": 3600 * SEC, "IgnoreSystemJobs": True})
    for _ in range(3):
        for data in drain_actions(c.state, c.now):
            c.index += 1
            c.state.apply(c.index, data)
        c.schedule()
    mine = next(a for a in allocs(c) if a["NodeID"] == node)
    assert mine["DesiredStatus"] == "run" and not mine.get("DesiredTransition", {}).get("Migrate")
    assert c.state.tables["nodes"][node].get("DrainStrategy")  # waits for it
    c.client("complete", node=node)
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    assert not c.state.tables["nodes"][node].get("DrainStrategy")
    assert len(allocs(c)) == 2  # nothing replaced it, here or elsewhere


def test_a_drain_deadline_stops_it_without_a_replacement() -> None:
    c = cluster(2)
    c.register(**sysbatch(command="/bin/sleep"))
    c.schedule()
    c.client("running")
    c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": -1})  # -force
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    c.schedule()
    mine = next(a for a in allocs(c) if a["NodeID"] == "node-0000")
    assert mine["DesiredStatus"] == "stop"
    assert len(allocs(c)) == 2


def test_periodic_and_dispatched_children_are_sysbatch_jobs_run_on_every_node() -> None:
    c = cluster(2)
    c.register(**sysbatch("nightly", Periodic={"Spec": "@daily"}))
    c.schedule()
    assert not allocs(c, "nightly") and status(c, "nightly") == "running"
    res = c.apply("periodic_launch", job_id="nightly", launch=c.now, force=True)
    assert res["ok"], res
    c.schedule()
    child = res["JobID"]
    assert c.state.tables["jobs"][child]["Type"] == "sysbatch"
    assert sorted(a["NodeID"] for a in allocs(c, child)) == ["node-0000", "node-0001"]
    c.client("complete")
    assert status(c, child) == "dead"
    c.register(**sysbatch("report", ParameterizedJob={}))
    res = c.apply("job_dispatch", job_id="report")
    assert res["ok"], res
    c.schedule()
    assert len(allocs(c, res["DispatchedJobID"])) == 2


# ------------------------------------------------------------ a real agent
JOB_FILE = '''job "once" {
  type        = "sysbatch"
  datacenters = ["*"]
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 0"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
'''


@pytest.mark.timeout(60)
def test_nomad_agent_dev_runs_a_sysbatch_job_file_to_completion(tmp_path: Any) -> None:
    """``nomad job run`` of a sysbatch job file on ``nomad agent -dev``: its one node runs it once, the
    allocation completes and the job is dead, as ``nomad job status`` shows."""
    import subprocess
    import sys
    import urllib.parse

    from tests.test_agent_process import ROOT, nomad_agent_dev, wait_for
    from tests.test_http_jobs import PLACE_DEADLINE_S, call, stop_all_jobs

    agent = nomad_agent_dev(tmp_path)
    port = agent.http_port

    def nomad(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{port}",
                               *args], capture_output=True, text=True, timeout=30)

    try:
        agent.wait_healthy()
        wait_for(lambda: [n for n in call(port, "GET", "/v1/nodes").json() if n["Status"] == "ready"],
                 "the dev node ready")
        path = tmp_path / "once.nomad.hcl"
        path.write_text(JOB_FILE)
        run = nomad("job", "run", str(path))
        assert run.returncode == 0, run.stdout + run.stderr
        job = wait_for(lambda: (j := call(port, "GET", "/v1/job/once").json())["Status"] == "dead" and j,
                       "the sysbatch job dead", PLACE_DEADLINE_S)
        assert job["Type"] == "sysbatch"
        allocs = call(port, "GET", "/v1/job/once/allocations").json()
        assert len(allocs) == 1 and allocs[0]["ClientStatus"] == "complete", allocs
        summary = call(port, "GET", "/v1/job/once/summary").json()["Summary"]["g"]
        assert summary["Complete"] == 1 and summary["Running"] == 0 and summary["Failed"] == 0
        status = nomad("job", "status", "once")
        assert status.returncode == 0, status.stderr
        assert "Type          = sysbatch" in status.stdout, status.stdout
        assert "Status        = dead" in status.stdout, status.stdout
        # Read back and submitted again unchanged (`nomad job inspect` then `job run`): the same version,
        # evaluated again, and nothing runs again.
        reg = call(port, "PUT", "/v1/jobs", {"Job": call(port, "GET", "/v1/job/once").json()})
        assert reg.status == 200, reg.text
        wait_for(lambda: call(port, "GET", f"/v1/evaluation/{reg.json()['EvalID']}").json()["Status"]
                 == "complete", "the evaluation done", PLACE_DEADLINE_S)
        assert call(port, "GET", "/v1/job/once").json()["Version"] == 0
        assert len(call(port, "GET", "/v1/job/once/allocations").json()) == 1
        # A periodic sysbatch job: listed as Nomad lists it, and a forced launch is a sysbatch child
        # that runs on the node to completion.
        nightly = canonical_job(sysbatch("nightly", Periodic={"Spec": "@daily"}))
        nightly["Datacenters"] = ["*"]
        assert call(port, "PUT", "/v1/jobs", {"Job": nightly}).status == 200
        listing = nomad("job", "status")
        rows = [line.split()[:2] for line in listing.stdout.splitlines()]
        assert ["nightly", "sysbatch/periodic"] in rows, listing.stdout
        forced = nomad("job", "periodic", "force", "-detach", "nightly")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        launches = "/v1/jobs?prefix=nightly/periodic-"
        child = wait_for(lambda: next((j for j in call(port, "GET", launches).json()
                                       if j["Status"] == "dead"), None), "the launch dead", PLACE_DEADLINE_S)
        assert child["Type"] == "sysbatch"
        done = call(port, "GET", f"/v1/job/{urllib.parse.quote(child['ID'], safe='')}/allocations").json()
        assert [a["ClientStatus"] for a in done] == ["complete"]
        stop_all_jobs(port)
    finally:
        agent.kill()


def test_a_node_without_room_waits_in_a_blocked_evaluation_and_the_job_is_pending_until_it_ran() -> None:
    c = Cluster()
    c.node(0)
    c.node(1, mem=200)
    c.register(ID="hog", Type="service", Datacenters=["dc1"], Constraints=[
        {"LTarget": "${node.unique.name}", "RTarget": "n1", "Operand": "="}], TaskGroups=[{
            "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                "Config": {"command": "/bin/sleep"},
                                                "Resources": {"CPU": 100, "MemoryMB": 180}}]}])
    c.register(**sysbatch())
    c.schedule()
    c.client("running")
    assert [a["NodeID"] for a in allocs(c)] == ["node-0000"]
    evals = c.state.tables["evals"].values()
    assert len([e for e in evals if e["JobID"] == "once" and e["Status"] == "blocked"]) == 1
    c.client("complete", node="node-0000")
    assert status(c) == "pending"  # Nomad: a non-terminal evaluation keeps it from being dead
    from actors.http_jobs import job_summaries

    summary = job_summaries(c.state, ["once"])["once"]["Summary"]["g"]
    assert (summary["Queued"], summary["Complete"], summary["Running"]) == (1, 1, 0)
    c.apply("job_deregister", job_id="hog", purge=False)
    c.schedule()
    hog = next(a for a in c.state.tables["allocs"].values() if a["JobID"] == "hog")
    c.apply("alloc_client_update_batch", unblock=True, reports=[
        {"node_id": "node-0001", "allocs": [{"ID": hog["ID"], "ClientStatus": "complete"}]}])
    c.schedule()
    assert [a["NodeID"] for a in allocs(c)] == ["node-0000", "node-0001"]
    assert status(c) == "running"
    c.client("complete")
    assert status(c) == "dead"
    summary = job_summaries(c.state, ["once"])["once"]["Summary"]["g"]
    assert (summary["Queued"], summary["Complete"]) == (0, 2)


def test_a_dead_sysbatch_job_is_collected_whole_and_its_evaluations_by_the_common_threshold() -> None:
    """Nomad's core scheduler: job-gc takes a dead sysbatch job with its evaluations and allocations;
    eval-gc keeps only a live *batch* job's evaluations (a sysbatch one's go after eval_gc_threshold)."""
    from actors.state import core_gc as gc

    ev = {"ID": "e1", "JobID": "once", "Type": "sysbatch", "Status": "complete", "ModifyTime": 0.0}
    done = {"ID": "a1", "EvalID": "e1", "JobID": "once", "NodeID": "n1", "DesiredStatus": "run",
            "ClientStatus": "complete", "ModifyTime": 0.0}
    dead = {"ID": "once", "Type": "sysbatch", "Status": "dead", "SubmitTime": 0.0}
    assert gc.job_gc(dead, [ev], [done], 10.0) == (True, ["e1"], ["a1"])
    assert gc.eval_gc(ev, {**dead, "Status": "running"}, [done], 10.0, allow_batch=False) == (True, ["a1"])
    c = cluster(2)
    c.register(**sysbatch())
    c.schedule()
    c.client("complete")
    assert status(c) == "dead"
    job = c.state.tables["jobs"]["once"]
    assert gc.job_gc_eligible(job, cutoff=job["SubmitTime"] + 1.0)
