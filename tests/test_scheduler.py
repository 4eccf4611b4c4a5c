"""The scheduler, the job model and the state machine's job/alloc/eval/drain commands.

The loop the leader's broker and drainer run is played here synchronously
against one StateStore: apply a command, schedule every pending
evaluation, apply its plan.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from typing import Any

import msgpack
import pytest

from actors.scheduler.broker import pending_evals, plan_command
from actors.scheduler.drainer import drain_actions
from actors.scheduler.job import JobError, canonical_job, constraint_ok, version_ok
from actors.scheduler.scheduler import live, node_capacity
from actors.state.store import REPORT_REV, StateStore, command, decode_result

SEC = 1_000_000_000


class Cluster:
    def __init__(self) -> None:
        self.state = StateStore()
        self.index = 0
        self.now = 1000.0

    def apply(self, op: str, **args: Any) -> Any:
        self.index += 1
        return self.state.apply(self.index, command(op, now=self.now, **args))

    def node(self, i: int, *, cpu: int = 4000, mem: int = 8192, dc: str = "dc1", status: str = "ready",
             attrs: dict[str, str] | None = None, drivers: tuple[str, ...] = ("raw_exec",),
             disk: int = 100_000, reserved_disk: int = 0, node_class: str = "", pool: str = "default",
             meta: dict[str, str] | None = None) -> str:
        nid = f"node-{i:04d}"
        rec = {"ID": nid, "SecretID": "s", "Name": f"n{i}", "Datacenter": dc, "NodePool": pool,
               "NodeClass": node_class, "Meta": dict(meta or {}),
               "Attributes": {"kernel.name": "linux", "nomad.version": "2.0.6", **(attrs or {})},
               "Drivers": {d: {"Detected": True, "Healthy": True} for d in drivers},
               "NodeResources": {"Cpu": {"CpuShares": cpu}, "Memory": {"MemoryMB": mem},
                                 "Disk": {"DiskMB": disk}},
               "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0},
                                     "Disk": {"DiskMB": reserved_disk}}}
        self.apply("node_register", node=rec)
        self.apply("node_update_status", node_id=nid, status=status)
        return nid

    def register(self, **job: Any) -> dict[str, Any]:
        res = self.apply("job_register", job=canonical_job(job))
        assert res["ok"], res
        return res

    def schedule(self, max_rounds: int = 20, *, due_only: bool = False) -> int:
        """Run every pending evaluation to completion (*due_only*: those due at ``now``, a follow-up
        waiting for later stays); returns how many plans applied."""
        plans = 0
        for _ in range(max_rounds):
            pending = sorted(pending_evals(self.state, now=self.now if due_only else None))
            if not pending:
                return plans
            for _, _, eval_id, _ in pending:
                data, _ = plan_command(self.state, eval_id, self.now)
                if data is not None:
                    self.index += 1
                    self.state.apply(self.index, data)
                    plans += 1
        raise AssertionError("evaluations did not settle")

    def client(self, status: str = "running", node: str | None = None) -> None:
        """Every client reports its desired-run allocations in *status*, stopped ones complete."""
        ups = []
        for a in self.state.tables["allocs"].values():
            if node and a["NodeID"] != node:
                continue
            if a["ClientStatus"] in ("complete", "failed", "lost"):
                continue
            if a["DesiredStatus"] == "run":
                ups.append({"ID": a["ID"], "ClientStatus": status})
            else:
                ups.append({"ID": a["ID"], "ClientStatus": "complete"})
        if ups:
            self.apply("alloc_client_update", allocs=ups)

    def healthy(self, node: str | None = None) -> None:
        """Every client reports its running allocations' health as decided, healthy (as a client does
        once their tasks have run MinHealthyTime: for their deployment, or by their migrate block)."""
        ups = [{"ID": a["ID"], "ClientStatus": "running",
                "DeploymentStatus": {"Healthy": True, "Timestamp": self.now}}
               for a in self.state.tables["allocs"].values() if (not node or a["NodeID"] == node)
               and live(a) and a["ClientStatus"] == "running"
               and (a.get("DeploymentStatus") or {}).get("Healthy") is None]
        if ups:
            self.apply("alloc_client_update", allocs=ups)

    def running(self, job_id: str) -> list[dict[str, Any]]:
        return [a for a in self.state.tables["allocs"].values() if a["JobID"] == job_id and live(a)]

    def assert_not_overcommitted(self) -> None:
        used: dict[str, list[int]] = {}
        for a in self.state.tables["allocs"].values():
            if live(a):
                u = used.setdefault(a["NodeID"], [0, 0, 0])
                u[0] += a["Resources"]["CPU"]
                u[1] += a["Resources"]["MemoryMB"]
                u[2] += a["Resources"].get("DiskMB", 0)
        for nid, (cpu, mem, disk) in used.items():
            cap = node_capacity(self.state.tables["nodes"][nid])
            assert cpu <= cap[0] and mem <= cap[1] and disk <= cap[2], (nid, cpu, mem, disk, cap)


def service(job_id: str = "web", count: int = 4, cpu: int = 500, mem: int = 256, **extra: Any) -> dict[str, Any]:
    group = {"Name": "g", "Count": count,
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["1000"]},
                        "Resources": {"CPU": cpu, "MemoryMB": mem}}]}
    group.update(extra.pop("group", {}))
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [group], **extra}


def _fail(c: Cluster, alloc_id: str) -> None:
    """The allocation's client reports it failed, unhealthy for its deployment (a failure before it
    was healthy is, on the client)."""
    c.apply("alloc_client_update", rev=REPORT_REV, allocs=[{
        "ID": alloc_id, "ClientStatus": "failed", "DeploymentStatus": {"Healthy": False, "Timestamp": c.now}}])


# ------------------------------------------------------------ job validation
def test_invalid_job_names_the_field() -> None:
    with pytest.raises(JobError, match=r"TaskGroups\[0\]\.Tasks\[0\]\.Driver: missing"):
        canonical_job({"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t"}]}]})
    with pytest.raises(JobError, match=r"^Type: must be one of"):
        canonical_job({"ID": "x", "Type": "cron", "TaskGroups": []})
    with pytest.raises(JobError, match=r"TaskGroups\[0\]\.Count: must be an integer"):
        canonical_job(service(group={"Count": "4"}))
    with pytest.raises(JobError, match=r"Config\.command: missing"):
        canonical_job({"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]})
    with pytest.raises(JobError, match=r"Constraints\[0\]\.RTarget: invalid regexp"):
        canonical_job(service(Constraints=[{"LTarget": "${attr.kernel.name}", "RTarget": "(", "Operand": "regexp"}]))


def test_job_defaults_follow_nomad() -> None:
    job = canonical_job(service())
    g = job["TaskGroups"][0]
    assert g["RestartPolicy"] == {"Attempts": 2, "Interval": 1800 * SEC, "Delay": 15 * SEC, "Mode": "fail"}
    assert g["Migrate"]["MaxParallel"] == 1
    assert g["Tasks"][0]["KillTimeout"] == 5 * SEC
    assert job["Priority"] == 50 and job["Name"] == "web"


def test_constraint_operands() -> None:
    node = {"ID": "n1", "Datacenter": "dc1", "Attributes": {"kernel.name": "linux", "nomad.version": "2.0.6"}}
    c = lambda lt, rt, op: constraint_ok({"LTarget": lt, "RTarget": rt, "Operand": op}, node)
    assert c("${attr.kernel.name}", "linux", "=")
    assert not c("${attr.kernel.name}", "linux", "!=")
    assert c("${attr.kernel.name}", "^lin", "regexp")
    assert c("${attr.nomad.version}", ">= 1.5, < 3", "version")
    assert not c("${attr.nomad.version}", "< 2.0", "version")
    assert c("${node.datacenter}", "dc1", "=")
    assert not c("${attr.missing}", "x", "=")
    assert c("${attr.missing}", "x", "!=")
    assert version_ok("1.2.3", "~> 1.2") and not version_ok("2.0.0", "~> 1.2")
    # A digit that is not ASCII ('²') is no version (was a raw int() error as the job's refusal).
    assert not version_ok("1.²", ">= 1")
    with pytest.raises(JobError, match=r"Version constraint is invalid: Malformed constraint: >= 1\.²"):
        canonical_job(service(Constraints=[{"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.²",
                                            "Operand": "version"}]))


# ------------------------------------------------------------ placement
def test_service_job_places_its_count_and_nodes_are_never_overcommitted() -> None:
    c = Cluster()
    for i in range(3):
        c.node(i, cpu=1000, mem=1024)
    c.register(**service(count=8, cpu=500, mem=256))
    c.schedule()
    placed = c.running("web")
    assert len(placed) == 6  # 3 nodes x 2 fit by CPU
    c.assert_not_overcommitted()
    ev = [e for e in c.state.tables["evals"].values() if e["FailedTGAllocs"]]
    assert ev and ev[0]["FailedTGAllocs"]["g"]["DimensionExhausted"].get("cpu")
    assert [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    # Capacity arrives: the blocked evaluation places the rest.
    c.node(9, cpu=1000, mem=1024)
    c.schedule()
    assert len(c.running("web")) == 8
    assert sorted(a["Name"] for a in c.running("web")) == sorted(f"web.g[{i}]" for i in range(8))
    c.assert_not_overcommitted()


def test_a_blocked_evaluation_carries_the_failed_placements_and_nomads_description() -> None:
    """Nomad's CreateBlockedEval copies the failed placements (FailedTGAllocs) into the blocked evaluation
    and the scheduler describes it "created to place remaining allocations": ``nomad eval status`` of it
    shows the placement failures, ``nomad eval list`` says "Placement Failures true"."""
    c = Cluster()
    c.node(0, cpu=1000, mem=1024)
    c.register(**service(count=3, cpu=500, mem=256))
    c.schedule()
    (blocked,) = [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    previous = c.state.tables["evals"][blocked["PreviousEval"]]
    assert previous["BlockedEval"] == blocked["ID"]
    assert blocked["StatusDescription"] == "created to place remaining allocations"
    assert blocked["FailedTGAllocs"] == previous["FailedTGAllocs"]
    assert blocked["FailedTGAllocs"]["g"]["DimensionExhausted"].get("cpu")


def test_a_finished_allocation_frees_capacity_for_a_blocked_evaluation() -> None:
    """Nomad's FSM unblocks blocked evaluations when a client reports an allocation terminal; a log
    entry written before the unblock flag applies as it always did."""
    c = Cluster()
    c.node(0, cpu=1000, mem=1024)
    c.register(**service("batchy", count=2, cpu=400, Type="batch"))
    c.schedule()
    first, second = c.running("batchy")
    c.register(**service("web", count=1, cpu=800))
    c.schedule()
    assert not c.running("web") and c.state.evals_by_status["blocked"]
    old = c.apply("alloc_client_update_batch", reports=[
        {"node_id": first["NodeID"], "allocs": [{"ID": first["ID"], "ClientStatus": "complete"}]}])
    assert old["ok"] and c.state.evals_by_status["blocked"]  # an entry without the flag: as before
    res = c.apply("alloc_client_update_batch", unblock=True, reports=[
        {"node_id": second["NodeID"], "allocs": [{"ID": second["ID"], "ClientStatus": "complete"}]}])
    assert res["evals"] and not c.state.evals_by_status["blocked"]
    c.schedule()
    assert len(c.running("web")) == 1
    c.assert_not_overcommitted()


def test_constraints_and_datacenters_filter_nodes() -> None:
    c = Cluster()
    c.node(0, attrs={"kernel.name": "linux"})
    c.node(1, attrs={"kernel.name": "darwin"})
    c.node(2, dc="dc2")
    c.register(**service(count=3, Constraints=[{"LTarget": "${attr.kernel.name}", "RTarget": "linux",
                                                  "Operand": "="}]))
    c.schedule()
    assert {a["NodeID"] for a in c.running("web")} == {"node-0000"}


def test_concurrent_plans_cannot_double_book_a_node() -> None:
    c = Cluster()
    c.node(0, cpu=1000, mem=4096)
    c.register(**service("a", count=2, cpu=500))
    c.register(**service("b", count=2, cpu=500))
    pending = sorted(pending_evals(c.state))
    plans = [plan_command(c.state, ev_id, c.now)[0] for _, _, ev_id, _ in pending]  # both see an empty node
    results = []
    for data in plans:
        c.index += 1
        results.append(c.state.apply(c.index, data))
    assert len(results[0]["placed"]) == 2 and results[1]["refused"]
    c.assert_not_overcommitted()
    c.schedule()  # the refused plan's follow-up evaluation finds the node full
    c.assert_not_overcommitted()
    assert len(c.running("a")) + len(c.running("b")) == 2


def test_a_plan_is_applied_once() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    (_, _, ev_id, _), = pending_evals(c.state)
    data, _ = plan_command(c.state, ev_id, c.now)
    c.index += 1
    assert c.state.apply(c.index, data)["ok"]
    c.index += 1
    assert not c.state.apply(c.index, data)["ok"]  # a deposed leader's copy of the same plan
    assert len(c.running("web")) == 1


def test_node_down_marks_allocs_lost_and_replaces_them() -> None:
    c = Cluster()
    for i in range(3):
        c.node(i)
    c.register(**service(count=6))
    c.schedule()
    c.client("running")
    victim = c.running("web")[0]["NodeID"]
    on_victim = {a["ID"] for a in c.running("web") if a["NodeID"] == victim}
    res = c.apply("node_update_status", node_id=victim, status="down")
    assert res["evals"]
    c.schedule()
    allocs = c.state.tables["allocs"]
    assert all(allocs[i]["ClientStatus"] == "lost" and allocs[i]["DesiredStatus"] == "stop" for i in on_victim)
    assert len(c.running("web")) == 6 and victim not in {a["NodeID"] for a in c.running("web")}
    # The node comes back: nothing is placed twice, the lost allocs stay stopped.
    c.apply("node_update_status", node_id=victim, status="ready")
    c.client("running", node=victim)  # a late report from the node must not revive them
    c.schedule()
    assert len(c.running("web")) == 6
    assert all(allocs[i]["ClientStatus"] == "lost" for i in on_victim)


def test_job_update_and_stop() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=2))
    c.schedule()
    first = {a["ID"] for a in c.running("web")}
    c.register(**service(count=3))  # count only: kept, one added
    c.schedule()
    assert first < {a["ID"] for a in c.running("web")} and len(c.running("web")) == 3
    # A spec change with rolling updates off (max_parallel = 0): all replaced at once.
    c.register(**service(count=3, cpu=600, Update={"MaxParallel": 0}))
    c.schedule()
    assert not first & {a["ID"] for a in c.running("web")} and len(c.running("web")) == 3
    assert c.state.tables["jobs"]["web"]["Version"] == 2
    last = {a["ID"] for a in c.running("web")}
    res = c.apply("job_deregister", job_id="web", purge=False)
    assert res["ok"] and res["EvalID"]
    c.schedule()
    assert c.running("web") == [] and c.state.tables["jobs"]["web"]["Stop"]
    # Nomad's filterAndStopAll: the stopped job's allocations say StatusAllocNotNeeded.
    assert {c.state.tables["allocs"][i]["DesiredDescription"] for i in last} == {
        "alloc not needed due to job update"}


def test_failed_alloc_is_rescheduled() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.schedule()
    (a,) = c.running("web")
    _fail(c, a["ID"])
    c.schedule()
    (b,) = c.running("web")
    assert b["ID"] != a["ID"] and b["PreviousAllocation"] == a["ID"] and b["Name"] == a["Name"]


def test_batched_client_reports_apply_each_and_evaluate_each_job_once() -> None:
    """Node.UpdateAlloc batched: several clients' reports, one write; a wrong secret refuses its own only."""
    c = Cluster()
    n0, n1, n2 = c.node(0, cpu=600), c.node(1, cpu=600), c.node(2, cpu=600)
    c.register(**service(count=3))
    c.schedule()
    by_node = {a["NodeID"]: a for a in c.running("web")}
    assert set(by_node) == {n0, n1, n2}
    evals_before = set(c.state.tables["evals"])
    res = c.apply("alloc_client_update_batch", reports=[
        {"node_id": n0, "secret_id": "s", "allocs": [{"ID": by_node[n0]["ID"], "ClientStatus": "failed"}]},
        {"node_id": n1, "secret_id": "bad", "allocs": [{"ID": by_node[n1]["ID"], "ClientStatus": "failed"}]},
        {"node_id": n2, "secret_id": "s", "allocs": [{"ID": by_node[n2]["ID"], "ClientStatus": "failed"}]},
    ])
    assert res["ok"] and res["errors"] == ["", "node secret ID does not match", ""]
    allocs = c.state.tables["allocs"]
    assert [allocs[by_node[n]["ID"]]["ClientStatus"] for n in (n0, n1, n2)] == ["failed", "pending", "failed"]
    new = [c.state.tables["evals"][e] for e in set(c.state.tables["evals"]) - evals_before]
    assert [(e["JobID"], e["TriggeredBy"]) for e in new] == [("web", "alloc-failure")]
    assert sorted(res["evals"]) == [e["ID"] for e in new]
    # A malformed batch is refused whole, on every server alike.
    assert "reports must be" in c.apply("alloc_client_update_batch", reports=[{"node_id": n0}])["error"]
    assert "reports must be" in c.apply("alloc_client_update_batch", reports="x")["error"]


def test_a_processed_evaluation_cancels_its_jobs_older_waiting_ones() -> None:
    """Nomad's broker on an Ack (MarkForCancel): only the newest evaluation waiting for the job still runs."""
    from actors.state.store import EVAL_CANCELED_DESC

    c = Cluster()
    c.node(0)
    first = c.register(**service(count=1))["EvalID"]
    older = c.apply("job_evaluate", job_id="web")["EvalID"]
    newest = c.apply("job_evaluate", job_id="web")["EvalID"]
    other = c.register(**service("api", count=1))["EvalID"]  # another job's: untouched
    later = c.apply("job_evaluate", job_id="web")["EvalID"]
    # A follow-up that waits for a later time is not waiting to be scheduled: kept, though it would
    # lose to the newest (given an older index here) were it counted among the waiting.
    c.state.tables["evals"][later].update(WaitUntil=c.now + 60,
                                          ModifyIndex=c.state.tables["evals"][newest]["ModifyIndex"] - 1)
    data, _ = plan_command(c.state, first, c.now)
    c.index += 1
    assert c.state.apply(c.index, data)["ok"]
    evals = c.state.tables["evals"]
    assert evals[first]["Status"] == "complete"
    assert (evals[older]["Status"], evals[older]["StatusDescription"]) == ("canceled", EVAL_CANCELED_DESC)
    assert evals[older]["ModifyIndex"] == c.index
    assert [evals[e]["Status"] for e in (newest, other, later)] == ["pending"] * 3
    assert {e[2] for e in pending_evals(c.state)} == {newest, other, later}
    assert c.schedule() == 3 and not pending_evals(c.state)  # newest, api's, and the delayed one
    assert len(c.running("web")) == 1


def _finished_batch_job() -> tuple[Cluster, dict[str, Any]]:
    """A cluster of one node where batch job "once" (two allocations) has run and completed."""
    c = Cluster()
    c.node(0)
    job = service("once", count=2)
    job["Type"] = "batch"
    c.register(**job)
    c.schedule()
    c.client("complete")
    return c, job


def test_batch_job_completes_and_is_not_replaced() -> None:
    c, job = _finished_batch_job()
    c.apply("node_update_status", node_id="node-0000", status="ready")  # any later eval
    c.register(**job)
    c.schedule()
    allocs = [a for a in c.state.tables["allocs"].values() if a["JobID"] == "once"]
    assert len(allocs) == 2 and all(a["ClientStatus"] == "complete" for a in allocs)
    assert c.state.tables["jobs"]["once"]["Status"] == "dead"


def test_a_new_version_of_a_finished_batch_job_runs_again() -> None:
    """Nomad's reconciler (filterOldTerminalAllocs): a batch job's terminal allocations of an earlier
    version are ignored, so a changed job placed after its run finished runs again; the finished ones
    are left as they are (not stopped).  The same version registered again runs nothing."""
    from actors.scheduler.dryrun import plan_job

    c, job = _finished_batch_job()
    first = sorted(a["ID"] for a in c.state.tables["allocs"].values())
    changed = {**job, "Meta": {"run": "2"}}
    planned = plan_job(c.state, canonical_job(changed), False, now=c.now)
    updates = planned["Annotations"]["DesiredTGUpdates"]["g"]
    assert (updates["Place"], updates["Ignore"]) == (2, 2)  # `job plan`: "(2 create, 2 ignore)"
    c.register(**changed)
    c.schedule()
    allocs = list(c.state.tables["allocs"].values())
    new = [a for a in allocs if a["ID"] not in first]
    assert len(new) == 2 and all(a["JobVersion"] == 1 and live(a) for a in new)
    old = [a for a in allocs if a["ID"] in first]
    assert all(a["DesiredStatus"] == "run" and a["ClientStatus"] == "complete" for a in old)


def test_system_job_runs_on_every_feasible_node() -> None:
    c = Cluster()
    for i in range(4):
        c.node(i)
    c.node(9, drivers=())
    c.register(ID="sys", Type="system", TaskGroups=[{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}])
    c.schedule()
    assert sorted(a["NodeID"] for a in c.running("sys")) == [f"node-{i:04d}" for i in range(4)]
    c.node(5)  # a new node gets one too
    c.schedule()
    assert len(c.running("sys")) == 5


# ------------------------------------------------------------ drain
def test_drain_migrates_respecting_max_parallel_then_completes() -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=4))
    c.schedule()
    c.client("running")
    target = "node-0000"
    if not any(a["NodeID"] == target for a in c.running("web")):
        target = "node-0001"
    n_on = sum(a["NodeID"] == target for a in c.running("web"))
    assert c.apply("node_update_drain", node_id=target, drain_spec={"Deadline": 3600 * SEC})["ok"]
    assert c.state.tables["nodes"][target]["SchedulingEligibility"] == "ineligible"
    moving_max = 0
    for _ in range(50):
        for data in drain_actions(c.state, c.now):
            c.index += 1
            c.state.apply(c.index, data)
        moving = [a for a in c.state.tables["allocs"].values() if a["JobID"] == "web"
                  and a["DesiredStatus"] == "run" and a["ClientStatus"] != "running"]
        c.schedule()
        moving_max = max(moving_max, sum(1 for a in c.state.tables["allocs"].values()
                                         if a["DesiredTransition"].get("Migrate") and a["ClientStatus"] == "running"
                                         and a["DesiredStatus"] == "run") + len(moving))
        c.client("running")
        c.healthy()
        if not c.state.tables["nodes"][target].get("DrainStrategy"):
            break
    node = c.state.tables["nodes"][target]
    assert not node["DrainStrategy"] and node["SchedulingEligibility"] == "ineligible"
    assert node["Events"][-1]["Message"] == "Node drain complete"
    assert len(c.running("web")) == 4 and all(a["NodeID"] != target for a in c.running("web"))
    assert n_on == 0 or moving_max <= 1  # MaxParallel = 1


def _drain_step(c: Cluster) -> list[str]:
    """One drainer pass, then the scheduler's: the allocations it marked for migration."""
    def migrating() -> set[str]:
        return {a["ID"] for a in c.state.tables["allocs"].values() if a["DesiredTransition"].get("Migrate")}

    before = migrating()
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    marked = sorted(migrating() - before)
    c.schedule()
    return marked


def test_a_drain_moves_the_next_allocation_only_once_the_last_ones_replacement_has_its_health() -> None:
    """Nomad's handleTaskGroup counts only allocations whose DeploymentStatus has its health: a
    replacement that runs, but whose client has not yet decided its health (MinHealthyTime of the
    group's migrate block), holds the drain back."""
    c = Cluster()
    c.node(0)
    c.register(**service(count=2))
    c.schedule()
    c.client("running")
    c.healthy()
    c.node(1)
    assert c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": 3600 * SEC})["ok"]
    assert len(_drain_step(c)) == 1  # MaxParallel = 1
    c.client("running")  # the replacement runs: not yet healthy
    for _ in range(3):
        assert _drain_step(c) == []
    c.healthy()
    assert len(_drain_step(c)) == 1
    c.client("running")
    c.healthy()
    assert _drain_step(c) == []
    assert all(a["NodeID"] == "node-0001" for a in c.running("web"))


def test_forced_drain_stops_everything_at_once() -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=4))
    c.schedule()
    c.client("running")
    c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": -1})
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    assert all(a["DesiredTransition"].get("Migrate") for a in c.running("web") if a["NodeID"] == "node-0000")
    c.schedule()
    assert all(a["NodeID"] == "node-0001" for a in c.running("web"))


def test_a_batch_allocation_a_drain_stops_at_its_deadline_is_not_placed_again() -> None:
    """Nomad's drainer marks a batch allocation MigrateDisablePlacement when it stops it at the
    deadline: the allocation is stopped and keeps counting toward its group, so neither this
    evaluation nor a later one (the node made eligible again, the job evaluated) places it again."""
    c = Cluster()
    c.node(0)
    c.node(1)
    job = service("crunch", count=2)
    job["Type"] = "batch"
    c.register(**job)
    c.schedule()
    c.client("running")
    target = c.running("crunch")[0]["NodeID"]
    on_node = [a["ID"] for a in c.running("crunch") if a["NodeID"] == target]
    c.apply("node_update_drain", node_id=target, drain_spec={"Deadline": 10 * SEC})
    assert _drain_step(c) == []  # left to finish before the deadline
    c.now += 11
    assert _drain_step(c) == on_node
    allocs = c.state.tables["allocs"]
    for aid in on_node:
        assert allocs[aid]["DesiredTransition"] == {"Migrate": True, "MigrateDisablePlacement": True}
        assert allocs[aid]["DesiredStatus"] == "stop"
    c.client("running")  # the stopped ones finish (killed), the others run on
    c.apply("node_update_eligibility", node_id=target, eligibility="eligible")
    c.register(**job)
    c.schedule()
    crunch = [a for a in allocs.values() if a["JobID"] == "crunch"]
    assert len(crunch) == 2, [(a["Name"], a["NodeID"], a["DesiredStatus"]) for a in crunch]
    assert sorted(a["ID"] for a in crunch if a["DesiredStatus"] == "stop") == on_node


def test_a_service_allocation_a_drain_stops_is_placed_elsewhere_without_the_batch_mark() -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=2))
    c.schedule()
    c.client("running")
    c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": -1})
    marked = _drain_step(c)
    assert marked and all(c.state.tables["allocs"][a]["DesiredTransition"] == {"Migrate": True} for a in marked)
    assert len(c.running("web")) == 2 and all(a["NodeID"] == "node-0001" for a in c.running("web"))


def test_eligibility_refused_while_draining() -> None:
    c = Cluster()
    c.node(0)
    c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": 0})
    res = c.apply("node_update_eligibility", node_id="node-0000", eligibility="eligible")
    assert not res["ok"] and "while it is draining" in res["error"]
    c.apply("node_update_drain", node_id="node-0000", drain_spec=None, mark_eligible=True)
    assert c.state.tables["nodes"]["node-0000"]["SchedulingEligibility"] == "eligible"


def test_thousand_placements_over_thousand_nodes_fit() -> None:
    c = Cluster()
    for i in range(1000):
        c.node(i, cpu=2000, mem=2048)
    c.register(**service(count=1000, cpu=300, mem=256))
    (_, _, ev_id, _), = pending_evals(c.state)
    data, counts = plan_command(c.state, ev_id, c.now)
    assert counts["place"] == 1000
    c.index += 1
    res = c.state.apply(c.index, data)
    assert len(res["placed"]) == 1000
    c.assert_not_overcommitted()
    assert decode_result(b"") is None


def test_failed_evaluation_gets_a_delayed_follow_up() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    (_, _, ev_id, _), = pending_evals(c.state)
    res = c.apply("eval_update", evals=[{"ID": ev_id, "Status": "failed", "FollowUpWait": 60.0,
                                         "StatusDescription": "delivery limit"}])
    (follow,) = res["evals"]
    assert c.state.tables["evals"][ev_id]["Status"] == "failed"
    assert c.state.tables["evals"][follow]["TriggeredBy"] == "failed-follow-up"
    assert pending_evals(c.state, now=c.now + 59) == []  # waits before it runs
    assert [e[2] for e in pending_evals(c.state, now=c.now + 60)] == [follow]
    c.schedule()
    assert len(c.running("web")) == 1


def _drain_until_done(c: Cluster, node: str, rounds: int = 30) -> None:
    for _ in range(rounds):
        for data in drain_actions(c.state, c.now):
            c.index += 1
            c.state.apply(c.index, data)
        c.schedule()
        c.client("running")
        c.healthy()
        if not c.state.tables["nodes"][node].get("DrainStrategy"):
            return
    raise AssertionError("drain did not complete")


@pytest.mark.parametrize("ignore_system", [False, True])
def test_drain_stops_system_allocs_last_unless_ignore_system(ignore_system: bool) -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=2))
    c.register(ID="sys", Type="system", TaskGroups=[{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}])
    c.schedule()
    c.client("running")
    c.apply("node_update_drain", node_id="node-0000",
            drain_spec={"Deadline": 3600 * SEC, "IgnoreSystemJobs": ignore_system})
    _drain_until_done(c, "node-0000")
    sys_on_node = [a for a in c.running("sys") if a["NodeID"] == "node-0000"]
    assert bool(sys_on_node) == ignore_system
    if not ignore_system:  # Nomad's system scheduler stops it as StatusAllocNodeTainted
        (gone,) = [a for a in c.state.tables["allocs"].values()
                   if a["JobID"] == "sys" and a["NodeID"] == "node-0000"]
        assert gone["DesiredDescription"] == "alloc not needed as node is tainted"
    assert all(a["NodeID"] != "node-0000" for a in c.running("web"))
    assert len(c.running("web")) == 2


def test_drain_deadline_forces_what_remains() -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=2, group={"Migrate": {"MaxParallel": 1}}))
    c.schedule()
    # Nothing reports running, so the drainer cannot count anything healthy
    # and migrates nothing -- until the deadline.
    target = c.running("web")[0]["NodeID"]
    on0 = [a for a in c.running("web") if a["NodeID"] == target]
    c.apply("node_update_drain", node_id=target, drain_spec={"Deadline": 10 * SEC})
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    assert not any(a["DesiredTransition"].get("Migrate") for a in c.running("web"))
    c.now += 11
    for data in drain_actions(c.state, c.now):
        c.index += 1
        c.state.apply(c.index, data)
    assert on0 and all(c.state.tables["allocs"][a["ID"]]["DesiredTransition"].get("Migrate") for a in on0)
    # The drain ends at the deadline itself, as Nomad's handleDeadlinedNodes: not once the
    # tasks have exited (a draining agent that is shutting down waits for this).
    node = c.state.tables["nodes"][target]
    assert not node.get("DrainStrategy")
    assert node["Events"][-1]["Message"] == "Node drain complete"
    assert node["Events"][-1]["Details"] == {"deadline_reached": "true"}
    assert all(c.state.tables["allocs"][a["ID"]]["ClientStatus"] == "pending" for a in on0)


def test_pending_and_blocked_evaluation_indexes_survive_a_snapshot() -> None:
    c = Cluster()
    c.node(0, cpu=500)
    c.register(**service(count=3, cpu=400))  # one fits: the rest waits in a blocked evaluation
    c.register(**service("other", count=1, cpu=50))
    (_, _, first, _), *_ = sorted(pending_evals(c.state))
    data, _ = plan_command(c.state, first, c.now)
    c.index += 1
    c.state.apply(c.index, data)
    restored = StateStore()
    restored.restore(c.state.snapshot(), c.index)
    assert sorted(pending_evals(restored)) == sorted(pending_evals(c.state))
    assert restored.evals_by_status == c.state.evals_by_status
    assert restored.evals_by_status["blocked"]
    assert restored.blocked_by_job == c.state.blocked_by_job == _blocked_by_job(c.state)


def test_service_alloc_ended_by_its_client_while_wanted_is_replaced() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.schedule()
    (a,) = c.running("web")
    res = c.apply("alloc_client_update", allocs=[{"ID": a["ID"], "ClientStatus": "complete"}])
    assert res["evals"]  # the scheduler is told, not left to the next unrelated change
    c.schedule()
    (b,) = c.running("web")
    assert b["ID"] != a["ID"] and b["Name"] == a["Name"]


def test_pending_since_lists_only_what_became_pending_after_the_index() -> None:
    c = Cluster()
    c.node(0, cpu=500)
    c.register(**service("a", count=1, cpu=100))
    seen = c.index
    c.register(**service("b", count=1, cpu=100))
    c.register(**service("c", count=3, cpu=400))  # cannot fit beside a and b: a blocked evaluation follows
    newer = pending_evals(c.state, since=seen)
    assert [c.state.tables["evals"][e[2]]["JobID"] for e in newer] == ["b", "c"]
    assert sorted(pending_evals(c.state)) == sorted(pending_evals(c.state, since=0))
    c.schedule()
    assert pending_evals(c.state, since=seen) == []  # scheduled: no longer pending
    (blocked,) = c.state.evals_by_status["blocked"]
    before = c.index
    c.node(1, cpu=4000)  # capacity appeared: the blocked evaluation is pending again, at a new index
    assert blocked in [e[2] for e in pending_evals(c.state, since=before)]
    restored = StateStore()
    restored.restore(c.state.snapshot(), c.index)
    assert pending_evals(restored, since=before) == pending_evals(c.state, since=before)
    assert list(restored.pending_since.items()) == list(c.state.pending_since.items())


def test_placement_visits_every_node_once_in_an_order_seeded_by_the_evaluation() -> None:
    c = Cluster()
    for i in range(40):
        c.node(i, cpu=1000, mem=1024)
    # Each node fits exactly one allocation: 40 placements must use all 40 nodes.
    c.register(**service(count=40, cpu=600, mem=600))
    (_, _, ev_id, _), = pending_evals(c.state)
    first, _ = plan_command(c.state, ev_id, c.now)
    again, _ = plan_command(c.state, ev_id, c.now)
    assert first == again  # deterministic for the evaluation and the state
    c.index += 1
    res = c.state.apply(c.index, first)
    assert len(res["placed"]) == 40 and not res["refused"]
    assert len({c.state.tables["allocs"][a]["NodeID"] for a in res["placed"]}) == 40
    c.assert_not_overcommitted()


def test_scheduler_sees_a_node_registered_after_an_earlier_plan() -> None:
    c = Cluster()
    c.node(0, cpu=500)
    c.register(**service("a", count=1, cpu=400))
    c.schedule()
    assert c.state.sorted_ids("nodes") == ["node-0000"]
    c.node(1, cpu=500)  # the sorted node IDs the scheduler starts from must include it
    c.register(**service("b", count=1, cpu=400))
    c.schedule()
    assert [a["NodeID"] for a in c.running("b")] == ["node-0001"]


def test_node_usage_follows_every_write_to_the_nodes_allocations() -> None:
    c = Cluster()
    nid = c.node(0, cpu=4000, mem=8192)
    assert c.state.node_usage(nid) == (0, 0, 0)
    c.register(**service(count=2, cpu=500, mem=256))
    c.schedule()
    assert c.state.node_usage(nid) == (1000, 512, 600)
    first, _ = sorted(a["ID"] for a in c.running("web"))
    _fail(c, first)
    assert c.state.node_usage(nid) == (500, 256, 300)  # a failed allocation holds nothing
    c.schedule()  # replaced
    assert c.state.node_usage(nid) == (1000, 512, 600)
    c.apply("job_deregister", job_id="web", purge=False)
    c.schedule()  # stopped
    assert c.state.node_usage(nid) == (0, 0, 0)
    c.apply("upsert", table="allocs", record={"ID": "x", "NodeID": nid, "DesiredStatus": "run",
                                              "ClientStatus": "running", "Resources": {"CPU": 7, "MemoryMB": 9}})
    assert c.state.node_usage(nid) == (7, 9, 0)  # placed before disk was counted: none
    c.apply("delete", table="allocs", ids=["x"])
    assert c.state.node_usage(nid) == (0, 0, 0)
    restored = StateStore()
    restored.restore(c.state.snapshot(), c.index)
    assert restored.node_usage(nid) == c.state.node_usage(nid)


def test_kept_node_usage_equals_a_recount_through_placements_stops_and_client_updates() -> None:
    # The store carries a node's cached usage across each allocation write
    # (a fast path); a recount from the allocations must always agree.
    c = Cluster()
    nodes = [c.node(i, cpu=3000, mem=4096) for i in range(4)]

    def check() -> None:
        recount = StateStore()
        recount.restore(c.state.snapshot(), c.index)
        for nid in nodes:
            assert c.state.node_usage(nid) == recount.node_usage(nid), nid

    check()  # every node's usage is now cached
    for j in range(6):
        c.register(**service(f"job{j}", count=3, cpu=300 + 10 * j, mem=128 + j))
        c.schedule()
        check()
    c.client("running")
    check()
    ids = sorted(a["ID"] for a in c.state.tables["allocs"].values() if live(a))
    c.apply("alloc_client_update", allocs=[{"ID": ids[0], "ClientStatus": "failed"},
                                           {"ID": ids[1], "ClientStatus": "complete"}])
    check()
    c.schedule()  # replacements placed
    check()
    c.register(**service("job2", count=1, cpu=700, mem=300))  # a new spec: stops and places
    c.schedule()
    check()
    c.apply("job_deregister", job_id="job3", purge=False)
    c.schedule()
    check()
    c.client("running")
    check()


def test_feasibility_kept_across_evaluations_plans_as_a_fresh_check_does() -> None:
    # The store keeps node feasibility per job shape across evaluations (a
    # fast path); every plan must equal one computed with no kept results.
    from actors.scheduler.scheduler import compute_plan

    c = Cluster()
    for i in range(12):
        c.node(i, attrs={"kernel.name": "linux" if i % 3 else "darwin"}, dc="dc1" if i % 4 else "dc2",
               drivers=("raw_exec",) if i % 5 else ("docker",))
    linux = [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]

    def same_plans() -> None:
        for _, _, eval_id, job_id in sorted(pending_evals(c.state)):
            ev = c.state.tables["evals"][eval_id]
            args = (c.state.tables, ev, c.state.job_allocs(job_id), c.state.node_allocs,
                    c.state.sorted_ids("nodes"), c.state.node_usage)
            kept = compute_plan(*args, feasible=c.state.feasibility)
            assert kept == compute_plan(*args), eval_id

    c.register(**service("a", count=3))
    c.register(**service("b", count=3, Constraints=linux))
    c.register(**service("c", count=2, Datacenters=["dc2"]))
    same_plans()
    c.schedule()
    c.register(**service("d", count=4, Constraints=linux))
    same_plans()
    assert c.state.feasibility  # filled by the plans above
    # Nodes change: kept results for their old records must not be used.
    c.apply("node_update_eligibility", node_id="node-0001", eligibility="ineligible")
    c.apply("node_update_status", node_id="node-0002", status="down")
    c.node(4, attrs={"kernel.name": "darwin"})  # registers again with other attributes
    same_plans()
    c.schedule()
    assert all(a["NodeID"] not in ("node-0001", "node-0002", "node-0004")
               for a in c.running("d"))


def test_a_plan_places_with_the_stores_job_unless_the_job_changed_what_it_runs() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, cpu=100))
    (_, _, ev_id, _), = pending_evals(c.state)
    data, _ = plan_command(c.state, ev_id, c.now)
    assert b"raw_exec" not in data  # the plan names the job record instead of carrying it
    c.register(**service(count=1, cpu=100, Meta={"k": "v"}))  # same spec: a newer record, placed with
    c.index += 1
    res = c.state.apply(c.index, data)
    (alloc,) = [c.state.tables["allocs"][i] for i in res["placed"]]
    assert alloc["Job"]["Meta"] == {"k": "v"}  # the record current when the plan applied
    assert alloc["Job"]["TaskGroups"] == c.state.tables["jobs"]["web"]["TaskGroups"]
    c.schedule()  # the re-registration's own evaluation finds the job placed
    assert len(c.running("web")) == 1
    # A plan made before the job's spec changed is refused; the follow-up places the new version.
    c.register(**service(count=2, cpu=100))
    (_, _, ev_id, _), = pending_evals(c.state)
    data, _ = plan_command(c.state, ev_id, c.now)
    c.register(**service(count=2, cpu=200))
    c.index += 1
    res = c.state.apply(c.index, data)
    assert res["refused"] and not res["placed"] and res["evals"]
    c.schedule()
    c.client("running")
    assert sorted(a["Resources"]["CPU"] for a in c.running("web")) == [200, 200]
    assert all(a["Job"]["TaskGroups"][0]["Count"] == 2 for a in c.running("web"))


def test_a_plan_that_carries_its_job_still_applies_as_before() -> None:
    # Raft logs written before plans named their job replay unchanged.
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, cpu=100))
    job = c.state.tables["jobs"]["web"]
    (_, _, ev_id, _), = pending_evals(c.state)
    plan = {"EvalID": ev_id, "JobID": "web", "Job": job, "Stop": [], "Failed": {}, "Place": [{
        "ID": "a1", "EvalID": ev_id, "Name": "web.g[0]", "Namespace": "default", "NodeID": "node-0000",
        "NodeName": "n0", "JobID": "web", "JobVersion": 0, "TaskGroup": "g",
        "Resources": {"CPU": 100, "MemoryMB": 256}, "DesiredStatus": "run", "DesiredDescription": "",
        "DesiredTransition": {}, "ClientStatus": "pending", "ClientDescription": "", "TaskStates": {},
        "PreviousAllocation": "", "RescheduleCount": 0}]}
    res = c.apply("plan_apply", plan=plan)
    assert res["placed"] == ["a1"] and c.state.tables["allocs"]["a1"]["Job"] == job


def test_plans_computed_together_share_capacity_and_apply_as_one_entry() -> None:
    from actors.scheduler.broker import plan_batch_command

    c = Cluster()
    c.node(0, cpu=1000, mem=1024)
    for job in ("a", "b", "c"):
        c.register(**service(job, count=1, cpu=400, mem=100))  # two fit, the third does not
    ids = tuple(e[2] for e in sorted(pending_evals(c.state)))
    data, planned, _ = plan_batch_command(c.state, ids, c.now)
    assert planned == ids
    c.index += 1
    res = c.state.apply(c.index, data)
    placed = [len(r["placed"]) for r in res["results"]]
    assert placed == [1, 1, 0]  # the third plan saw the room the first two took
    c.assert_not_overcommitted()
    # Plans of one entry that each create an evaluation get distinct IDs.
    c.node(1, cpu=1000, mem=1024)
    c.schedule()
    for job in ("d", "e"):
        c.register(**service(job, count=1, cpu=100, mem=100))
    ids = tuple(e[2] for e in sorted(pending_evals(c.state)))
    data, planned, _ = plan_batch_command(c.state, ids, c.now)
    for job in ("d", "e"):
        c.register(**service(job, count=1, cpu=150, mem=100))  # new specs: both plans are refused
    c.index += 1
    res = c.state.apply(c.index, data)
    follow = [r["evals"][0] for r in res["results"]]
    assert len(set(follow)) == 2 and all(f in c.state.tables["evals"] for f in follow)
    assert plan_batch_command(c.state, ids, c.now) == (None, (), ())  # none of them pending any more


def test_node_capacity_follows_a_node_that_registers_again_with_other_resources() -> None:
    from actors.scheduler.broker import plan_batch_command

    c = Cluster()
    nid = c.node(0, cpu=500, mem=1024)
    assert c.state.node_capacity(nid) == (500, 1024, 100_000)
    c.register(**service("big", count=1, cpu=800, mem=100))
    ids = tuple(e[2] for e in pending_evals(c.state))
    data, _, _ = plan_batch_command(c.state, ids, c.now)
    c.index += 1
    assert c.state.apply(c.index, data)["results"][0]["placed"] == []  # does not fit
    c.node(0, cpu=1000, mem=1024)  # the client fingerprinted more CPU
    assert c.state.node_capacity(nid) == (1000, 1024, 100_000)
    c.register(**service("big2", count=1, cpu=800, mem=100))
    ids = tuple(e[2] for e in pending_evals(c.state))
    data, _, _ = plan_batch_command(c.state, ids, c.now)
    c.index += 1
    assert len(c.state.apply(c.index, data)["results"][0]["placed"]) == 1


# ------------------------------------------------------------ purge and evaluate (Node.Deregister, .Evaluate)
def test_purged_node_is_gone_and_its_allocs_are_lost_and_replaced() -> None:
    c = Cluster()
    for i in range(3):
        c.node(i)
    c.register(**service(count=6))
    c.register(ID="sys", Type="system", TaskGroups=[{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}])
    c.schedule()
    c.client("running")
    victim = c.running("web")[0]["NodeID"]
    on_victim = {a["ID"] for a in c.running("web") + c.running("sys") if a["NodeID"] == victim}
    res = c.apply("node_deregister", node_id=victim)
    assert res["ok"] and res["prev"] == "ready" and res["NodeModifyIndex"] == c.index
    evals = c.state.tables["evals"]
    # One node-update evaluation per job that had an allocation there, and per system job.
    assert sorted(evals[e]["JobID"] for e in res["EvalIDs"]) == ["sys", "web"]
    assert all(evals[e]["TriggeredBy"] == "node-update" and evals[e]["NodeID"] == victim
               for e in res["EvalIDs"])
    assert victim not in c.state.tables["nodes"]
    assert c.state.table_index["nodes"] == c.index
    c.schedule()
    allocs = c.state.tables["allocs"]
    assert all(allocs[i]["ClientStatus"] == "lost" and allocs[i]["DesiredStatus"] == "stop" for i in on_victim)
    assert len(c.running("web")) == 6 and victim not in {a["NodeID"] for a in c.running("web")}
    assert len(c.running("sys")) == 2
    c.assert_not_overcommitted()


def test_purging_or_evaluating_an_unknown_node_is_refused_and_changes_nothing() -> None:
    c = Cluster()
    c.node(0)
    before = dict(c.state.table_index)
    for op in ("node_deregister", "node_evaluate"):
        res = c.apply(op, node_id="no-such-node")
        assert res == {"ok": False, "error": "node not found"}
    assert c.state.table_index == before


def test_evaluate_creates_node_update_evals_and_leaves_the_node_alone() -> None:
    c = Cluster()
    c.node(0)
    c.node(1)
    node = c.state.tables["nodes"]["node-0000"]
    assert c.apply("node_evaluate", node_id="node-0000")["EvalIDs"] == []  # nothing runs there yet
    c.register(**service(count=2))
    c.schedule()
    c.client("running")
    running = sorted(a["ID"] for a in c.running("web"))
    res = c.apply("node_evaluate", node_id="node-0000")
    assert res["ok"] and res["NodeModifyIndex"] == node["ModifyIndex"]
    assert [c.state.tables["evals"][e]["JobID"] for e in res["EvalIDs"]] == ["web"]
    assert c.state.tables["nodes"]["node-0000"] is node
    c.schedule()
    assert sorted(a["ID"] for a in c.running("web")) == running  # re-evaluating a healthy job moves nothing


def test_a_stopped_allocation_is_replaced_elsewhere_or_again() -> None:
    c = Cluster()
    for i in range(2):
        c.node(i)
    c.register(**service(count=2))
    c.schedule()
    c.client("running")
    victim = c.running("web")[0]
    res = c.apply("alloc_stop", alloc_id=victim["ID"])
    ev = c.state.tables["evals"][res["EvalID"]]
    assert res["ok"] and ev["TriggeredBy"] == "alloc-stop" and ev["JobID"] == "web" and ev["Status"] == "pending"
    assert c.state.tables["allocs"][victim["ID"]]["DesiredTransition"]["Migrate"] is True
    c.schedule()
    stopped = c.state.tables["allocs"][victim["ID"]]
    assert stopped["DesiredStatus"] == "stop"
    assert len(c.running("web")) == 2 and victim["ID"] not in {a["ID"] for a in c.running("web")}
    assert c.apply("alloc_stop", alloc_id="no-such-alloc") == {"ok": False, "error": "alloc not found"}


# ------------------------------------------------------------ versions, revert, stable, evaluate
def test_every_spec_change_is_a_new_version_and_earlier_ones_are_kept() -> None:
    c = Cluster()
    c.node(0)
    first = c.register(**service(count=1))
    assert c.state.tables["jobs"]["web"]["Version"] == 0
    same = c.register(**service(count=1))
    assert c.state.tables["jobs"]["web"]["Version"] == 0 and same["JobModifyIndex"] == first["JobModifyIndex"]
    prio = c.register(**service(count=1, Priority=60))  # a change that runs nothing differently
    job = c.state.tables["jobs"]["web"]
    assert job["Version"] == 1 and prio["JobModifyIndex"] == job["JobModifyIndex"] == c.index
    for n in range(2, 9):
        c.register(**service(count=n))
    versions = c.state.job_versions("web")
    assert [v["Version"] for v in versions] == [8, 7, 6, 5, 4, 3]  # Nomad keeps six
    assert versions[0] is c.state.tables["jobs"]["web"]
    c.apply("job_deregister", job_id="web", purge=True)
    assert c.state.job_versions("web") == [] and "web" not in c.state.tables["job_versions"]


def test_revert_registers_an_earlier_spec_as_a_new_version() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, cpu=100))
    c.register(**service(count=1, cpu=200))
    c.schedule()
    c.client("running")
    res = c.apply("job_revert", job_id="web", version=0)
    job = c.state.tables["jobs"]["web"]
    assert res["ok"] and job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 100
    c.schedule()
    c.client("running")
    assert [a["Resources"]["CPU"] for a in c.running("web")] == [100]
    assert "current version" in c.apply("job_revert", job_id="web", version=2)["error"]
    assert c.apply("job_revert", job_id="web", version=9)["error"].endswith("not found")
    assert "enforcing version 1" in c.apply("job_revert", job_id="web", version=0,
                                            enforce_prior_version=1)["error"]
    assert c.apply("job_revert", job_id="nope", version=0) == {"ok": False, "error": "job not found"}


def test_stability_marks_one_version_and_evaluate_schedules_the_job_again() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.register(**service(count=2))
    assert c.apply("job_stability", job_id="web", version=0, stable=True)["ok"]
    assert c.apply("job_stability", job_id="web", version=1, stable=True)["ok"]
    assert [v["Stable"] for v in c.state.job_versions("web")] == [True, True]
    assert c.apply("job_stability", job_id="web", version=7, stable=True)["error"].endswith("not found")
    c.schedule()
    res = c.apply("job_evaluate", job_id="web")
    ev = c.state.tables["evals"][res["EvalID"]]
    assert res["ok"] and ev["Status"] == "pending" and ev["JobID"] == "web"
    assert c.apply("job_evaluate", job_id="nope") == {"ok": False, "error": "job not found"}


def test_a_group_removed_from_the_job_has_its_allocations_stopped() -> None:
    c = Cluster()
    c.node(0, cpu=4000, mem=8192)
    c.register(**service(count=2, cpu=100))
    c.schedule()
    c.client("running")
    c.register(**service(count=2, cpu=100, group={"Name": "h"}))  # the group renamed: g is gone
    c.schedule()
    c.client("running")
    stopped = [a for a in c.state.tables["allocs"].values() if a["TaskGroup"] == "g"]
    assert [a["DesiredStatus"] for a in stopped] == ["stop", "stop"]
    assert {a["DesiredDescription"] for a in stopped} == {"alloc not needed due to job update"}
    assert sorted(a["TaskGroup"] for a in c.running("web")) == ["h", "h"]


# ------------------------------------------------------------ job plan (a dry run)
def test_job_plan_tells_what_a_registration_would_do_and_writes_nothing() -> None:
    from actors.scheduler.dryrun import plan_job

    c = Cluster()
    for i in range(2):
        c.node(i, cpu=2000, mem=4096)

    def plan(**job: Any) -> dict[str, Any]:
        before = (dict(c.state.table_index), len(c.state.tables["evals"]), len(c.state.tables["allocs"]))
        out = plan_job(c.state, canonical_job(service(**job)), True)
        assert before == (dict(c.state.table_index), len(c.state.tables["evals"]), len(c.state.tables["allocs"]))
        return out

    new = plan(count=3, cpu=100)
    assert new["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 3 and new["JobModifyIndex"] == 0
    assert new["Diff"]["Type"] == "Added" and new["FailedTGAllocs"] is None
    c.register(**service(count=3, cpu=100))
    c.schedule()
    c.client("running")

    def updates(**job: Any) -> dict[str, int]:
        u = plan(**job)["Annotations"]["DesiredTGUpdates"]["g"]
        return {k: v for k, v in u.items() if v}
    same = plan(count=3, cpu=100)
    assert same["Diff"]["Type"] == "None"
    assert same["JobModifyIndex"] == c.state.tables["jobs"]["web"]["JobModifyIndex"]
    assert updates(count=3, cpu=100) == {"Ignore": 3}
    # max_parallel 1: one replaced now, the rest later, as Nomad shows it
    assert updates(count=3, cpu=200) == {"DestructiveUpdate": 1, "Ignore": 2}
    assert updates(count=3, cpu=100, Priority=70) == {"InPlaceUpdate": 3}
    # A new count is a new version: the allocations kept are updated in place (as Nomad plans it).
    assert updates(count=5, cpu=100) == {"Place": 2, "InPlaceUpdate": 3}
    assert updates(count=1, cpu=100) == {"Stop": 2, "InPlaceUpdate": 1}
    edited = plan(count=5, cpu=200)["Diff"]
    assert edited["Type"] == "Edited"
    (group,) = edited["TaskGroups"]
    # Nomad's plan annotates a count change (scheduler.Annotate) and the task's kind of update.
    assert group["Type"] == "Edited" and {"Type": "Edited", "Name": "Count", "Old": "3", "New": "5",
                                          "Annotations": ["forces create"]} in group["Fields"]
    assert group["Updates"] == {"create": 2, "create/destroy update": 1, "ignore": 2}
    assert group["Tasks"][0]["Type"] == "Edited"
    assert group["Tasks"][0]["Annotations"] == ["forces create/destroy update"]
    failed = plan(count=3, cpu=100_000)
    assert failed["FailedTGAllocs"]["g"]["NodesExhausted"] > 0
    # a group renamed: the old one's allocations stopped under its name, as Nomad's reconciler counts them
    renamed = plan(count=3, cpu=100, group={"Name": "h"})
    assert renamed["Annotations"]["DesiredTGUpdates"]["g"]["Stop"] == 3
    assert [(g["Name"], g["Type"], g["Updates"]) for g in renamed["Diff"]["TaskGroups"]] == [
        ("g", "Deleted", {"destroy": 3}), ("h", "Added", {"create": 3})]
    assert renamed["Diff"]["TaskGroups"][0]["Tasks"][0]["Annotations"] == ["forces destroy"]


# ------------------------------------------------------------ parameterized jobs and dispatch
def _parameterized(**rules: Any) -> dict[str, Any]:
    job = service(job_id="report", count=1, Type="batch")
    job["ParameterizedJob"] = {"Payload": "optional", "MetaRequired": ["customer"], "MetaOptional": ["day"],
                               **rules}
    return canonical_job(job)


def test_a_parameterized_job_never_runs_itself_and_each_dispatch_runs_once() -> None:
    c = Cluster()
    c.node(0)
    reg = c.apply("job_register", job=_parameterized())
    assert reg["ok"] and reg["EvalID"] == "" and not c.state.tables["evals"]
    assert c.state.tables["jobs"]["report"]["Status"] == "running"
    res = c.apply("job_dispatch", job_id="report", payload="aGk=", meta={"customer": "acme"})
    child_id = res["DispatchedJobID"]
    assert res["ok"] and child_id.startswith("report/dispatch-") and res["EvalID"]
    child = c.state.tables["jobs"][child_id]
    assert child["ParentID"] == "report" and child["Dispatched"] is True and "ParameterizedJob" not in child
    assert child["Meta"]["customer"] == "acme" and child["Payload"] == "aGk="
    c.schedule()
    assert len(c.running(child_id)) == 1 and c.running("report") == []
    other = c.apply("job_dispatch", job_id="report", meta={"customer": "beta", "day": "mon"})
    assert other["DispatchedJobID"] != child_id
    c.apply("job_evaluate", job_id="report")
    c.schedule()
    assert c.running("report") == []  # even an evaluation of the parent places nothing
    c.apply("job_deregister", job_id="report")
    assert c.state.tables["jobs"]["report"]["Status"] == "dead"


@pytest.mark.parametrize(("rules", "payload", "meta", "error"), [
    # Nomad's validateDispatchRequest texts, the keys as Go prints a []string; unpermitted ones first.
    ({}, "", {}, "Dispatch did not provide required meta keys: [customer]"),
    ({}, "", {"customer": "a", "color": "red"},
     "Dispatch request included unpermitted metadata keys: [color]"),
    ({}, "", {"color": "red", "b": "x"}, "Dispatch request included unpermitted metadata keys: [b color]"),
    ({"Payload": "forbidden"}, "aGk=", {"customer": "a"}, "Payload provided but forbidden by parameterized job"),
    ({"Payload": "required"}, "", {"customer": "a"}, "Payload is not provided but required by parameterized job"),
    ({}, "A" * 30000, {"customer": "a"}, "Payload exceeds maximum size"),
])
def test_a_dispatch_must_follow_its_jobs_rules(rules: dict, payload: str, meta: dict, error: str) -> None:
    c = Cluster()
    c.apply("job_register", job=_parameterized(**rules))
    res = c.apply("job_dispatch", job_id="report", payload=payload, meta=meta)
    assert not res["ok"] and error in res["error"]
    assert list(c.state.tables["jobs"]) == ["report"]


def test_a_dispatch_with_an_idempotency_token_dispatched_already_answers_with_that_child() -> None:
    """Nomad's Job.Dispatch: IdempotencyToken (a retry makes nothing new), IdPrefixTemplate (in the
    child's ID) and Priority (the child's and its evaluation's; the parent's when unset)."""
    c = Cluster()
    c.node(0)
    c.apply("job_register", job=_parameterized())
    first = c.apply("job_dispatch", job_id="report", meta={"customer": "a"}, idempotency_token="t-1",
                    id_prefix_template="nightly", priority=70)
    child_id = first["DispatchedJobID"]
    assert re.fullmatch(r"report/dispatch-nightly-\d+-[0-9a-f]{8}", child_id), child_id
    child = c.state.tables["jobs"][child_id]
    assert child["Priority"] == 70 and child["DispatchIdempotencyToken"] == "t-1"
    assert c.state.tables["evals"][first["EvalID"]]["Priority"] == 70
    again = c.apply("job_dispatch", job_id="report", meta={"customer": "a"}, idempotency_token="t-1")
    assert again["ok"] and again["DispatchedJobID"] == child_id and again["EvalID"] == ""
    assert again["JobCreateIndex"] == child["CreateIndex"]
    assert sorted(c.state.tables["jobs"]) == ["report", child_id]
    other = c.apply("job_dispatch", job_id="report", meta={"customer": "a"}, idempotency_token="t-2")
    assert other["DispatchedJobID"] != child_id and other["EvalID"]
    assert c.state.tables["jobs"][other["DispatchedJobID"]]["Priority"] == 50  # the parent's


def test_only_batch_jobs_are_parameterized_and_plain_jobs_do_not_dispatch() -> None:
    with pytest.raises(JobError, match='can only be used with "batch" or "sysbatch" scheduler'):
        canonical_job({**service(), "ParameterizedJob": {}})
    c = Cluster()
    c.register(**service())
    assert c.apply("job_dispatch", job_id="web")["error"] == 'Specified job "web" is not a parameterized job'
    assert c.apply("job_dispatch", job_id="nope")["error"] == "parameterized job not found"  # Nomad's words
    c.apply("job_register", job=_parameterized())
    c.apply("job_deregister", job_id="report")
    assert c.apply("job_dispatch", job_id="report")["error"] == 'Specified job "report" is stopped'


def test_scaling_a_group_is_a_new_version_and_places_or_stops() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.schedule()
    res = c.apply("job_scale", job_id="web", group="g", count=3)
    assert res["ok"] and res["EvalID"] and c.state.tables["jobs"]["web"]["Version"] == 1
    c.schedule()
    assert len(c.running("web")) == 3
    c.apply("job_scale", job_id="web", group="g", count=0)
    c.schedule()
    assert c.running("web") == []
    assert c.apply("job_scale", job_id="web", group="nope", count=1)["error"] == "task group 'nope' not found"
    assert "between 0 and" in c.apply("job_scale", job_id="web", group="g", count=-1)["error"]
    assert c.apply("job_scale", job_id="x", group="g", count=1)["error"] == "job not found"


def test_a_dispatch_payload_is_measured_decoded_up_to_exactly_16_kib() -> None:
    import base64

    c = Cluster()
    c.apply("job_register", job=_parameterized())
    exact = base64.b64encode(b"x" * 16384).decode()
    assert c.apply("job_dispatch", job_id="report", payload=exact, meta={"customer": "a"})["ok"]
    over = base64.b64encode(b"x" * 16385).decode()
    assert "exceeds maximum size; 16385 > 16384" in c.apply("job_dispatch", job_id="report", payload=over,
                                                           meta={"customer": "a"})["error"]
    assert c.apply("job_dispatch", job_id="report", payload="not base64!", meta={"customer": "a"})["error"] == \
        "Payload is not valid base64"


def _blocked_by_job(state: StateStore) -> dict[str, set[str]]:
    """What StateStore.blocked_by_job must hold, read from the evaluations table."""
    want: dict[str, set[str]] = {}
    for ev in state.tables["evals"].values():
        if ev.get("Status") == "blocked":
            want.setdefault(ev["JobID"], set()).add(ev["ID"])
    return want


def test_each_job_keeps_one_blocked_evaluation_and_the_index_follows_every_change() -> None:
    c = Cluster()
    c.node(0, cpu=300)
    for name in ("a", "b", "c"):
        c.register(**service(name, count=2, cpu=200))  # none fits twice: each job waits for capacity
        c.schedule()
    assert set(c.state.blocked_by_job) == {"a", "b", "c"}
    assert c.state.blocked_by_job == _blocked_by_job(c.state)
    (old_b,) = c.state.blocked_by_job["b"]
    c.register(**service("b", count=3, cpu=200))  # b again: its new failed plan supersedes its old wait
    c.schedule()
    (new_b,) = c.state.blocked_by_job["b"]
    assert new_b != old_b and c.state.tables["evals"][old_b]["Status"] == "canceled"
    assert len(c.state.blocked_by_job["a"]) == len(c.state.blocked_by_job["c"]) == 1  # untouched
    assert c.state.blocked_by_job == _blocked_by_job(c.state)
    c.apply("job_deregister", job_id="c")  # stopped: its wait is canceled
    assert "c" not in c.state.blocked_by_job
    assert c.state.blocked_by_job == _blocked_by_job(c.state)
    c.node(1, cpu=4000)  # capacity: every blocked evaluation is pending again
    assert c.state.blocked_by_job == {} == _blocked_by_job(c.state)


# ------------------------------------------------------------ rolling updates and deployments
def _health(c: Cluster, healthy: bool = True, only: set[str] | None = None) -> dict[str, Any]:
    """Clients report every running deployment allocation's health (those in *only*, when given)."""
    ups = [{"ID": a["ID"], "ClientStatus": "running",
            "DeploymentStatus": {"Healthy": healthy, "Timestamp": c.now}}
           for a in c.state.tables["allocs"].values()
           if live(a) and a.get("DeploymentID") and (a.get("DeploymentStatus") or {}).get("Healthy") is None
           and (only is None or a["ID"] in only)]
    return c.apply("alloc_client_update", allocs=ups)


def _rolled_out(count: int, update: dict[str, Any] | None = None) -> Cluster:
    """One roomy node and ``web`` (its group ``g``) at version 0, deployed and healthy."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=count, **({"Update": update} if update else {})))
    c.schedule()
    _health(c)
    return c


def _deployment(c: Cluster, job_id: str = "web") -> dict[str, Any]:
    deps = [d for d in c.state.tables["deployments"].values() if d["JobID"] == job_id]
    return max(deps, key=lambda d: d["CreateIndex"])


def test_update_strategy_defaults_and_validation_follow_nomad() -> None:
    g = canonical_job(service())["TaskGroups"][0]
    assert g["Update"] == {"Stagger": 30 * SEC, "MaxParallel": 1, "HealthCheck": "checks",
                           "MinHealthyTime": 10 * SEC, "HealthyDeadline": 300 * SEC,
                           "ProgressDeadline": 600 * SEC,
                           "AutoRevert": False, "AutoPromote": False, "Canary": 0}
    # The job's block under the group's own.
    g = canonical_job(service(Update={"MaxParallel": 2, "AutoRevert": True},
                              group={"Update": {"MaxParallel": 3}}))["TaskGroups"][0]
    assert g["Update"]["MaxParallel"] == 3 and g["Update"]["AutoRevert"] is True
    assert "Update" not in canonical_job({**service(), "Type": "batch"})["TaskGroups"][0]
    with pytest.raises(JobError, match="Minimum healthy time must be less than healthy deadline"):
        canonical_job(service(Update={"MinHealthyTime": 400 * SEC}))
    with pytest.raises(JobError, match="Healthy deadline must be less than progress deadline"):
        canonical_job(service(Update={"HealthyDeadline": 700 * SEC}))
    with pytest.raises(JobError, match=r"Auto Promote requires a Canary count greater than zero"):
        canonical_job(service(Update={"AutoPromote": True}))
    with pytest.raises(JobError, match=r"Update\.HealthCheck: must be one of"):
        canonical_job(service(Update={"HealthCheck": "magic"}))


def test_new_service_job_gets_a_deployment_that_succeeds_when_healthy() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=3))
    c.schedule()
    assert len(c.running("web")) == 3  # a new job's placements are not held back by max_parallel
    d = _deployment(c)
    assert d["Status"] == "running" and d["JobVersion"] == 0
    assert d["TaskGroups"]["g"]["DesiredTotal"] == 3 and d["TaskGroups"]["g"]["PlacedAllocs"] == 3
    assert d["TaskGroups"]["g"]["RequireProgressBy"] == c.now + 600
    assert all(a["DeploymentID"] == d["ID"] for a in c.running("web"))
    _health(c)
    d = _deployment(c)
    assert d["Status"] == "successful" and d["StatusDescription"] == "Deployment completed successfully"
    assert d["TaskGroups"]["g"]["HealthyAllocs"] == 3
    assert c.state.tables["jobs"]["web"]["Stable"] is True
    c.register(**service(count=4))  # a scale-up: a version, rolled out as Nomad's (the three kept in place)
    c.schedule()
    scaled = _deployment(c)
    assert len(c.running("web")) == 4 and scaled["ID"] != d["ID"] and scaled["JobVersion"] == 1
    # Nomad's DesiredTotal: the three updated in place join it, their health reported again.
    assert scaled["TaskGroups"]["g"]["DesiredTotal"] == 4 and scaled["TaskGroups"]["g"]["PlacedAllocs"] == 4
    assert all(a["DeploymentID"] == scaled["ID"] and a["DeploymentStatus"] is None for a in c.running("web"))
    _health(c)
    assert _deployment(c)["Status"] == "successful"


def test_scale_and_revert_updates_in_place_into_a_new_deployment_as_nomad() -> None:
    c = _rolled_out(2)
    v0 = _deployment(c)
    c.register(**service(count=3))  # `nomad job scale web g 3`: version 1
    c.schedule()
    up = _deployment(c)
    g = up["TaskGroups"]["g"]
    assert up["ID"] != v0["ID"] and up["JobVersion"] == 1 and up["Status"] == "running"
    assert (g["DesiredTotal"], g["PlacedAllocs"], g["HealthyAllocs"]) == (3, 3, 0)  # two in place, one placed
    assert all(a["DeploymentID"] == up["ID"] and a["DeploymentStatus"] is None for a in c.running("web"))
    _health(c, only={a["ID"] for a in c.running("web") if a["Name"] != "web.g[2]"})
    assert _deployment(c)["Status"] == "running"  # not done until all three are healthy again
    _health(c)
    assert _deployment(c)["Status"] == "successful" and c.state.tables["jobs"]["web"]["Stable"] is True
    # Revert to version 0 (count 2): version 2, the two left updated in place into its deployment.
    assert c.apply("job_revert", job_id="web", version=0)["ok"]
    c.schedule()
    down = _deployment(c)
    g = down["TaskGroups"]["g"]
    assert down["JobVersion"] == 2 and (g["DesiredTotal"], g["PlacedAllocs"]) == (2, 2)
    left = c.running("web")
    assert len(left) == 2 and all(a["DeploymentID"] == down["ID"] and a["DeploymentStatus"] is None
                                  and a["JobVersion"] == 2 for a in left)
    _health(c)
    assert _deployment(c)["Status"] == "successful"
    # A plain scale-down (version 3, count 1): the one kept joins a deployment of one.
    c.register(**service(count=1))
    c.schedule()
    d = _deployment(c)
    assert d["JobVersion"] == 3 and d["TaskGroups"]["g"]["DesiredTotal"] == 1
    assert [a["DeploymentID"] for a in c.running("web")] == [d["ID"]]
    # A report of health decided for the deployment it was in before does not count in the new one.
    (a,) = c.running("web")
    c.register(**service(count=1, Meta={"x": "y"}))
    c.schedule()
    newer = _deployment(c)
    assert c.running("web")[0]["DeploymentID"] == newer["ID"]
    c.apply("alloc_client_update", allocs=[{"ID": a["ID"], "ClientStatus": "running", "DeploymentStatus": {
        "Healthy": True, "Timestamp": c.now, "DeploymentID": d["ID"]}}])
    assert c.running("web")[0]["DeploymentStatus"] is None and _deployment(c)["Status"] == "running"


def test_rolling_update_replaces_max_parallel_at_a_time_as_each_turns_healthy() -> None:
    c = _rolled_out(4, {"MaxParallel": 2})
    v0 = {a["ID"] for a in c.running("web")}
    c.register(**service(count=4, cpu=600, Update={"MaxParallel": 2}))
    c.schedule()
    d = _deployment(c)
    assert d["JobVersion"] == 1 and d["Status"] == "running" and d["TaskGroups"]["g"]["DesiredTotal"] == 4
    new = [a for a in c.running("web") if a["ID"] not in v0]
    assert len(new) == 2 and len(c.running("web")) == 4  # two replaced, two still on the old version
    c.schedule()
    assert len([a for a in c.running("web") if a["ID"] not in v0]) == 2  # nothing more until they are healthy
    _health(c, only={new[0]["ID"]})
    c.schedule()
    assert len([a for a in c.running("web") if a["ID"] not in v0]) == 3  # one healthy: one more goes
    _health(c)
    c.schedule()
    assert not v0 & {a["ID"] for a in c.running("web")} and len(c.running("web")) == 4
    _health(c)
    d = _deployment(c)
    assert d["Status"] == "successful" and d["TaskGroups"]["g"]["HealthyAllocs"] == 4
    assert c.state.tables["jobs"]["web"]["Stable"] is True


def test_unhealthy_allocation_fails_the_deployment_and_auto_reverts_to_the_stable_version() -> None:
    c = _rolled_out(3, {"AutoRevert": True})
    assert c.state.tables["jobs"]["web"]["Stable"]
    # No progress deadline: the first unhealthy allocation fails it (Nomad's watcher).
    c.register(**service(count=3, cpu=700, Update={"AutoRevert": True, "ProgressDeadline": 0}))  # version 1
    c.schedule()
    res = _health(c, healthy=False)
    assert res["ok"] and res["evals"]
    failed = [d for d in c.state.tables["deployments"].values() if d["JobVersion"] == 1][0]
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == \
        "Failed due to unhealthy allocations - rolling back to job version 0"
    job = c.state.tables["jobs"]["web"]
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 500
    c.schedule()
    _health(c)
    c.schedule()
    _health(c)
    c.schedule()
    assert all(a["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 500 for a in c.running("web"))
    assert _deployment(c)["Status"] == "successful" and _deployment(c)["JobVersion"] == 2


def test_failed_deployment_without_auto_revert_stops_replacing() -> None:
    c = _rolled_out(3)
    c.register(**service(count=3, cpu=700, Update={"ProgressDeadline": 0}))
    c.schedule()
    _health(c, healthy=False)
    d = _deployment(c)
    assert d["Status"] == "failed" and d["StatusDescription"] == "Failed due to unhealthy allocations"
    c.schedule()
    versions = sorted(a["JobVersion"] for a in c.running("web"))
    assert versions == [0, 0, 1]  # the rest stay on the old version


def test_a_failed_deployments_failed_allocations_are_not_rescheduled() -> None:
    # Nomad's placeAllocs: while the job's deployment is failed, a placement that would reschedule an
    # allocation of that deployment is not made (partOfFailedDeployment): the version did not work.
    policy = {"Attempts": 3, "Interval": 3600 * SEC, "Delay": 5 * SEC, "DelayFunction": "constant",
              "Unlimited": False}
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=1, Update={"ProgressDeadline": 0}, group={"ReschedulePolicy": policy}))
    c.schedule()
    (a,) = c.running("web")
    _fail(c, a["ID"])  # unhealthy, no progress deadline: the deployment fails at once
    assert _deployment(c)["Status"] == "failed"
    for _ in range(3):
        c.now += 10  # past the reschedule delay: the follow-up evaluation is due
        c.schedule()
    assert c.running("web") == []
    allocs = [x for x in c.state.tables["allocs"].values() if x["JobID"] == "web"]
    assert [(x["ID"], x["DesiredStatus"], x["ClientStatus"]) for x in allocs] == [(a["ID"], "run", "failed")]
    assert c.apply("job_evaluate", job_id="web", force_reschedule=True)["ok"]  # not even when forced
    c.schedule()
    assert c.running("web") == []


def test_operator_pause_resume_and_fail_and_newer_version_cancels() -> None:
    c = _rolled_out(3)
    c.register(**service(count=3, cpu=700))
    c.schedule()
    d = _deployment(c)
    assert c.apply("deployment_pause", deployment_id=d["ID"], pause=True)["ok"]
    assert _deployment(c)["Status"] == "paused"
    _health(c)
    c.schedule()
    assert sorted(a["JobVersion"] for a in c.running("web")) == [0, 0, 1]  # paused: no more replaced
    res = c.apply("deployment_pause", deployment_id=d["ID"], pause=False)
    assert res["ok"] and res["EvalID"] and _deployment(c)["Status"] == "running"
    c.schedule()
    assert sorted(a["JobVersion"] for a in c.running("web")) == [0, 1, 1]
    c.register(**service(count=3, cpu=800))  # version 2 cancels version 1's deployment
    assert c.state.tables["deployments"][d["ID"]]["Status"] == "cancelled"
    assert c.state.tables["deployments"][d["ID"]]["StatusDescription"] == \
        "Cancelled due to newer version of job"
    c.schedule()
    d2 = _deployment(c)
    assert d2["JobVersion"] == 2 and d2["Status"] == "running"
    res = c.apply("deployment_fail", deployment_id=d2["ID"])
    assert res["ok"] and _deployment(c)["StatusDescription"] == "Deployment marked as failed"
    assert not c.apply("deployment_fail", deployment_id=d2["ID"])["ok"]  # terminal
    assert not c.apply("deployment_pause", deployment_id="nope", pause=True)["ok"]
    c.apply("job_deregister", job_id="web", purge=True)
    assert not [x for x in c.state.tables["deployments"].values() if x["JobID"] == "web"]


def test_progress_deadline_fails_only_a_deployment_that_made_no_progress() -> None:
    from actors.state import deployments

    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update={"ProgressDeadline": 900 * SEC}))
    c.schedule()
    d = _deployment(c)
    assert deployments.overdue(c.state, c.now + 899) == []
    assert deployments.overdue(c.state, c.now + 901) == [d["ID"]]
    _health(c, only={c.running("web")[0]["ID"]})  # progress: the deadline moves on
    c.now += 100
    assert c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")["skipped"]
    c.now += 901
    res = c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")
    assert res["ok"] and _deployment(c)["StatusDescription"] == "Failed due to progress deadline"


def test_promoting_canaries_after_the_progress_deadline_counts_it_afresh() -> None:
    """`nomad deployment promote` of canaries healthy for longer than progress_deadline failed the
    rollout at once ("Failed due to progress deadline"); Nomad's UpdateDeploymentPromotion resets
    RequireProgressBy to the promotion's time plus the deadline."""
    from actors.state import deployments

    update = {"Canary": 1, "ProgressDeadline": 60 * SEC, "HealthyDeadline": 30 * SEC}
    c = _rolled_out(2, update)
    c.register(**service(count=2, cpu=600, Update=update))
    c.schedule()
    _health(c)
    d = _deployment(c)
    c.now += 600  # the operator looks at the canary for ten minutes
    assert deployments.overdue(c.state, c.now) == []  # healthy canaries awaiting promotion: progress
    assert c.apply("deployment_promote", deployment_id=d["ID"], all=True)["ok"]
    g = _deployment(c)["TaskGroups"]["g"]
    assert g["RequireProgressBy"] == c.now + 60
    assert deployments.overdue(c.state, c.now + 1) == []
    assert c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")["skipped"]
    assert deployments.overdue(c.state, c.now + 61) == [d["ID"]]


def test_pausing_and_resuming_a_deployment_counts_its_progress_deadline_afresh() -> None:
    """Nomad's updateDeploymentStatusImpl: a deployment set running or paused gets RequireProgressBy =
    now + progress_deadline, so one resumed after a long pause is not failed at once."""
    from actors.state import deployments

    c = _rolled_out(2)
    c.register(**service(count=2, cpu=600, Update={"ProgressDeadline": 60 * SEC,
                                                    "HealthyDeadline": 30 * SEC}))
    c.schedule()
    d = _deployment(c)
    c.now += 10
    assert c.apply("deployment_pause", deployment_id=d["ID"], pause=True)["ok"]
    assert _deployment(c)["TaskGroups"]["g"]["RequireProgressBy"] == c.now + 60
    c.now += 3600
    assert c.apply("deployment_pause", deployment_id=d["ID"], pause=False)["ok"]
    assert _deployment(c)["TaskGroups"]["g"]["RequireProgressBy"] == c.now + 60
    assert deployments.overdue(c.state, c.now + 1) == []
    assert deployments.overdue(c.state, c.now + 61) == [d["ID"]]


def test_deployment_index_survives_a_snapshot_restore() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=2))
    c.schedule()
    d = _deployment(c)
    other = StateStore()
    other.restore(c.state.snapshot(), c.index)
    assert other.latest_deployment_of == {"web": d["ID"]}


def test_ended_deployments_are_collected_after_the_threshold_unless_their_allocations_run() -> None:
    from actors.state.core_gc import gc_scan

    c = _rolled_out(2)
    first = _deployment(c)["ID"]
    c.register(**service(count=2, cpu=700, Update={"MaxParallel": 2}))
    c.schedule()
    _health(c)
    c.client("running")
    second = _deployment(c)["ID"]
    assert c.state.tables["deployments"][second]["Status"] == "successful"
    c.now += 3601
    cut = {"cutoff": c.now - 3600, "batch_cutoff": c.now - 3600, "job_cutoff": c.now - 3600,
           "deployment_cutoff": c.now - 3600}
    found = gc_scan(c.state, jobs=False, evals=False, **cut)
    assert found["deployments"] == [first]  # the second's allocations still run
    res = c.apply("core_gc", deployments=[first, second], **cut)
    assert res["deployments"] == [first] and set(c.state.tables["deployments"]) == {second}
    assert c.state.latest_deployment_of["web"] == second


# ------------------------------------------------------------ native service discovery
def test_services_are_registered_while_their_allocation_runs_and_go_when_it_stops() -> None:
    c = Cluster()
    nid = c.node(0, attrs={"unique.network.ip-address": "10.0.0.5"})
    c.register(**service(count=2, group={
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": "web-${NOMAD_ALLOC_INDEX}", "PortLabel": "http", "Tags": ["edge"]}],
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"},
                   "Resources": {"CPU": 100, "MemoryMB": 64}, "Services": [{"PortLabel": "9000"}]}]}))
    c.schedule()
    regs = c.state.tables["service_registrations"]
    assert regs == {}  # placed, not running yet
    c.client("running")
    allocs = {a["ID"]: a for a in c.running("web")}
    assert len(regs) == 4
    for r in regs.values():
        a = allocs[r["AllocID"]]
        assert r["NodeID"] == nid and r["Datacenter"] == "dc1" and r["JobID"] == "web"
        assert r["Namespace"] == "default"
        if r["ServiceName"].startswith("web-g-t"):
            assert r["Port"] == 9000 and r["Address"] == "10.0.0.5" and r["Tags"] == []
            assert r["ID"] == f"_nomad-task-{a['ID']}-t-web-g-t-9000"
        else:
            index = a["Name"].rsplit("[", 1)[1].rstrip("]")
            assert r["ServiceName"] == f"web-{index}" and r["Tags"] == ["edge"]
            assert r["Port"] == a["AllocatedPorts"][0]["Value"]
            assert r["ID"] == f"_nomad-task-{a['ID']}-group-g-web-{index}-http"
    # One allocation's tasks end: its registrations go, the other's stay.
    gone = next(iter(allocs))
    c.apply("alloc_client_update", allocs=[{"ID": gone, "ClientStatus": "complete"}])
    assert {r["AllocID"] for r in regs.values()} == set(allocs) - {gone} and len(regs) == 2
    # An operator deletes one; the node goes down and takes the rest.
    one = next(iter(regs))
    assert c.apply("service_delete", id=one, service_name=regs[one]["ServiceName"])["ok"]
    assert not c.apply("service_delete", id=one)["ok"]
    c.apply("node_update_status", node_id=nid, status="down")
    c.schedule()
    assert regs == {} and c.state.services_by_alloc == {}


def test_a_groups_services_stay_through_a_task_restart_and_a_tasks_go_while_it_is_not_running() -> None:
    # Nomad's client: the group service hook registers at the allocation's prerun and keeps its services
    # until the allocation is killed; a task's service hook registers after the task starts and
    # deregisters when it exits (also before a restart) or is killed.
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, group={
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": "grp", "PortLabel": "http"}],
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"},
                   "Resources": {"CPU": 100, "MemoryMB": 64},
                   "Services": [{"Name": "tsk", "PortLabel": "http"}]},
                  {"Name": "side", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"},
                   "Resources": {"CPU": 100, "MemoryMB": 64}}]}))
    c.schedule()
    (a,) = c.running("web")
    regs = c.state.tables["service_registrations"]

    def report(status: str, t: str, side: str = "running", started: str = "1") -> set[str]:
        c.apply("alloc_client_update", rev=REPORT_REV, allocs=[{
            "ID": a["ID"], "ClientStatus": status,
            "TaskStates": {"t": {"State": t, "StartedAt": started}, "side": {"State": side}}}])
        return {r["ServiceName"] for r in regs.values()}

    assert report("pending", "pending", "pending") == {"grp"}  # the client started it: before its tasks
    assert report("running", "running") == {"grp", "tsk"}
    created = {r["ServiceName"]: r["CreateIndex"] for r in regs.values()}
    assert report("pending", "pending") == {"grp"}  # t exited and waits to restart: only its service goes
    assert report("running", "running") == {"grp", "tsk"}
    assert next(r for r in regs.values() if r["ServiceName"] == "grp")["CreateIndex"] == created["grp"]
    # An operator deletes t's service: it stays deleted while t runs on, and is back when t starts
    # again, even a restart quicker than its client's reports (Nomad's service hook, at each start).
    tsk = next(i for i, r in regs.items() if r["ServiceName"] == "tsk")
    assert c.apply("service_delete", id=tsk, service_name="tsk")["ok"]
    assert report("running", "running") == {"grp"}
    assert report("running", "running", started="2") == {"grp", "tsk"}
    assert report("running", "dead") == {"grp"}  # t ended, the allocation runs on (side)
    assert report("failed", "dead", "dead") == set()
    assert c.state.services_by_alloc == {}


def test_service_registrations_and_their_index_survive_a_snapshot_restore() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, group={"Services": [{"Name": "api"}]}))
    c.schedule()
    c.client("running")
    other = StateStore()
    other.restore(c.state.snapshot(), c.index)
    assert other.tables["service_registrations"] == c.state.tables["service_registrations"]
    assert other.services_by_alloc == c.state.services_by_alloc and len(other.services_by_alloc) == 1


def test_service_blocks_are_validated_as_nomad_does() -> None:
    def job(**svc: Any) -> dict[str, Any]:
        return service(group={"Services": [svc]})
    with pytest.raises(JobError, match=r"port label 'nope' referenced by service"):
        canonical_job(job(PortLabel="nope"))
    with pytest.raises(JobError, match=r"Provider: provider 'consul' is not available"):
        canonical_job(job(Provider="consul"))
    with pytest.raises(JobError, match=r"Checks\[0\]: Check .* invalid: check requires a port"):
        canonical_job(job(Checks=[{"Type": "tcp"}]))
    with pytest.raises(JobError, match=r"Name: service name must be valid per RFC 1123"):
        canonical_job(job(Name="no_underscores"))
    assert canonical_job(job())["TaskGroups"][0]["Services"][0]["Name"] == "web-g"


def test_a_version_that_runs_the_same_tasks_updates_allocations_in_place_and_their_services() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=2, group={"Services": [{"Name": "api", "Tags": ["v1"]}]}))
    c.schedule()
    c.client("running")
    before = {a["ID"]: a for a in c.running("web")}
    c.register(**service(count=2, group={"Services": [{"Name": "api", "Tags": ["v2"]}]}))  # version 1
    c.schedule()
    after = {a["ID"]: a for a in c.running("web")}
    assert set(after) == set(before)  # nothing replaced or restarted
    assert all(a["JobVersion"] == 1 and a["Job"]["Version"] == 1 for a in after.values())
    # Their clients learn of the new version (its services' checks, say), as in Nomad; nothing restarts.
    assert all(after[i]["AllocModifyIndex"] > before[i]["AllocModifyIndex"] for i in after)
    regs = c.state.tables["service_registrations"].values()
    assert sorted(r["Tags"] for r in regs) == [["v2"], ["v2"]]
    # As Nomad's: an in-place update is an update of the spec, rolled out in a deployment of its
    # own, which the allocations join (their health to be reported again).
    (d,) = [d for d in c.state.tables["deployments"].values() if d["JobVersion"] == 1]
    assert d["TaskGroups"]["g"]["DesiredTotal"] == 2 and d["TaskGroups"]["g"]["PlacedAllocs"] == 2
    assert all(a["DeploymentID"] == d["ID"] and a["DeploymentStatus"] is None for a in after.values())


def test_turning_restart_render_templates_on_or_off_replaces_the_allocations_as_nomad() -> None:
    # Nomad's tasksUpdated (renderTemplatesUpdated): the template hook takes render_templates when the
    # task runner is made, so changing it needs new allocations; another restart setting does not.
    c = Cluster()
    c.node(0)
    policy = {"Attempts": 2, "Interval": 600 * SEC, "Delay": 5 * SEC, "Mode": "fail"}
    no_rollout = {"MaxParallel": 0}
    c.register(**service(count=1, Update=no_rollout, group={"RestartPolicy": policy}))
    c.schedule()
    c.client("running")
    (first,) = [a["ID"] for a in c.running("web")]
    c.register(**service(count=1, Update=no_rollout, group={"RestartPolicy": {**policy, "Attempts": 3}}))
    c.schedule()
    assert [a["ID"] for a in c.running("web")] == [first]  # in place
    on = {**policy, "Attempts": 3, "RenderTemplates": True}
    c.register(**service(count=1, Update=no_rollout, group={"RestartPolicy": on}))
    c.schedule()
    (second,) = [a["ID"] for a in c.running("web")]
    assert second != first
    c.client("running")
    c.register(**service(count=1, Update=no_rollout, group={"RestartPolicy": {**on, "Delay": 6 * SEC}}))
    c.schedule()
    assert [a["ID"] for a in c.running("web")] == [second]  # still on: in place


def test_a_blocked_jobs_summary_queues_only_what_could_not_be_placed() -> None:
    # Nomad's JobSummary.Queued is the evaluations' QueuedAllocations: the failed placements, by group.
    # A batch group that ran to completion, and one placed in full, queue nothing while another
    # group of the job waits for capacity.
    from actors.http_jobs import job_summaries

    c = Cluster()
    c.node(0, cpu=1000)
    job = service(job_id="b", count=1, cpu=100, Type="batch")
    job["TaskGroups"].append({"Name": "big", "Count": 2, "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
         "Resources": {"CPU": 800, "MemoryMB": 64}}]})
    job["TaskGroups"].append({"Name": "small", "Count": 2, "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
         "Resources": {"CPU": 10, "MemoryMB": 64}}]})
    c.register(**job)
    c.schedule()
    c.client("complete")
    assert any(e["JobID"] == "b" and e["Status"] == "blocked" for e in c.state.tables["evals"].values())
    summary = job_summaries(c.state, ["b"])["b"]["Summary"]
    assert (summary["g"]["Queued"], summary["g"]["Complete"]) == (0, 1)
    assert (summary["small"]["Queued"], summary["small"]["Complete"]) == (0, 2)
    assert (summary["big"]["Queued"], summary["big"]["Complete"]) == (1, 1)


def test_a_failure_makes_an_alloc_failure_evaluation_only_when_the_policy_may_reschedule_it() -> None:
    # Nomad's Node.UpdateAlloc: an alloc-failure evaluation only for a failed allocation that is
    # RescheduleEligible (and has no follow-up evaluation yet): none with rescheduling off or its
    # attempts used up. A report from before REPORT_REV 7 still makes one, as it did.
    def failure_evals(c: Cluster) -> int:
        return sum(1 for e in c.state.tables["evals"].values() if e["TriggeredBy"] == "alloc-failure")

    def fail_one(c: Cluster, rev: int) -> None:
        (a,) = [a for a in c.running("web") if a["ClientStatus"] != "failed"]
        c.apply("alloc_client_update", rev=rev, allocs=[{"ID": a["ID"], "ClientStatus": "failed"}])

    off = {"Attempts": 0, "Unlimited": False}
    for rev, want in ((REPORT_REV, 0), (6, 1)):
        c = Cluster()
        c.node(0)
        c.register(**service(count=1, Update={"MaxParallel": 0}, group={"ReschedulePolicy": off}))
        c.schedule()
        c.client("running")
        fail_one(c, rev)
        assert failure_evals(c) == want, rev
    once = {"Attempts": 1, "Interval": 3600 * SEC, "Delay": 5 * SEC, "DelayFunction": "constant",
            "Unlimited": False}
    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=1, Update={"MaxParallel": 0}, group={"ReschedulePolicy": once}))
    c.schedule()
    c.client("running")
    fail_one(c, REPORT_REV)
    assert failure_evals(c) == 1  # its one attempt: rescheduled
    c.now += 10
    c.schedule()
    c.client("running")
    (replacement,) = c.running("web")
    assert replacement["RescheduleTracker"]["Events"]  # rescheduled
    made = failure_evals(c)
    fail_one(c, REPORT_REV)
    assert failure_evals(c) == made  # the replacement's failure is not reschedulable: no evaluation
    c.now += 10
    c.schedule()
    assert failure_evals(c) == made and c.running("web") == []


def test_a_kill_signal_the_nodes_lack_fails_placement_by_nomads_implied_signal_constraint() -> None:
    # Nomad's jobImpliedConstraints (Job.RequiredSignals): kill_signal and template change_signal add
    # ${attr.os.signals} set_contains <signals> to the group, once; an unknown name is then a placement
    # failure, not an allocation failing on every client ("invalid allocation: ... unknown signal").
    c = Cluster()
    c.node(0, attrs={"os.signals": "SIGHUP,SIGINT,SIGKILL,SIGTERM,SIGUSR1"})
    tpl = {"DestPath": "local/x", "EmbeddedTmpl": "x", "ChangeMode": "signal", "ChangeSignal": "SIGHUP"}
    job = service(count=1)
    job["TaskGroups"][0]["Tasks"][0].update(KillSignal="SIGUSR1", Templates=[tpl])
    canon = canonical_job(job)
    implied = {"LTarget": "${attr.os.signals}", "RTarget": "SIGHUP,SIGUSR1", "Operand": "set_contains"}
    assert canon["TaskGroups"][0]["Constraints"] == [implied]
    assert canonical_job(canon)["TaskGroups"][0]["Constraints"] == [implied]  # added once
    c.register(**job)
    c.schedule()
    assert len(c.running("web")) == 1
    bad = service(job_id="bad", count=1)
    bad["TaskGroups"][0]["Tasks"][0]["KillSignal"] = "SIGFOO"
    c.register(**bad)
    c.schedule()
    assert c.running("bad") == []
    failed = [e["FailedTGAllocs"]["g"]["ConstraintFiltered"] for e in c.state.tables["evals"].values()
              if e["JobID"] == "bad" and e.get("FailedTGAllocs")]
    assert failed and all(f == {"${attr.os.signals} set_contains SIGFOO": 1} for f in failed)


def test_an_in_place_update_keeps_a_registrations_create_index_and_drops_a_renamed_one() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, group={"Services": [{"Name": "api"}, {"Name": "old"}]}))
    c.schedule()
    c.client("running")
    regs = c.state.tables["service_registrations"]
    created = {r["ServiceName"]: r["CreateIndex"] for r in regs.values()}
    c.register(**service(count=1, group={"Services": [{"Name": "api", "Tags": ["x"]}, {"Name": "new"}]}))
    c.schedule()
    assert sorted(r["ServiceName"] for r in regs.values()) == ["api", "new"]
    api = next(r for r in regs.values() if r["ServiceName"] == "api")
    assert api["CreateIndex"] == created["api"] and api["Tags"] == ["x"]
    assert api["ModifyIndex"] > created["api"]
    (alloc_id,) = c.state.services_by_alloc
    assert c.state.services_by_alloc[alloc_id] == set(regs)


# ------------------------------------------------------------ canaries
def _versions(c: Cluster) -> list[int]:
    return sorted(a["JobVersion"] for a in c.running("web"))


def test_canaries_run_beside_the_old_version_until_promoted_then_the_rest_roll() -> None:
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=3, Update={"Canary": 1}))
    c.schedule()
    assert len(c.running("web")) == 3  # a new job places all at once: nothing to canary
    _health(c)
    assert _deployment(c)["Status"] == "successful"
    c.register(**service(count=3, cpu=600, Update={"Canary": 1}))
    c.schedule()
    d = _deployment(c)
    assert d["JobVersion"] == 1 and d["TaskGroups"]["g"]["DesiredCanaries"] == 1
    assert d["StatusDescription"] == "Deployment is running but requires manual promotion"
    assert _versions(c) == [0, 0, 0, 1]  # the canary runs beside all three old ones
    (canary,) = [a for a in c.running("web") if a["JobVersion"] == 1]
    assert d["TaskGroups"]["g"]["PlacedCanaries"] == [canary["ID"]] and canary["DeploymentStatus"]["Canary"]
    res = c.apply("deployment_promote", deployment_id=d["ID"], all=True)
    assert not res["ok"] and res["error"] == 'Task group "g" has 0/1 healthy allocations'
    _health(c)
    c.schedule()
    assert _versions(c) == [0, 0, 0, 1]  # healthy, but not promoted: nothing else moves
    assert c.state.tables["allocs"][canary["ID"]]["DeploymentStatus"]["Canary"] is True
    before = c.state.tables["allocs"][canary["ID"]]
    res = c.apply("deployment_promote", deployment_id=d["ID"], all=True)
    assert res["ok"] and res["EvalID"]
    # Nomad's UpdateDeploymentPromotion: the promoted canary is a canary no more, and its client
    # hears of it (a new AllocModifyIndex); the deployment still lists it among its PlacedCanaries.
    promoted = c.state.tables["allocs"][canary["ID"]]
    assert promoted["DeploymentStatus"]["Canary"] is False and promoted["DeploymentStatus"]["Healthy"] is True
    assert promoted["AllocModifyIndex"] == promoted["ModifyIndex"] == c.index > before["AllocModifyIndex"]
    assert _deployment(c)["TaskGroups"]["g"]["PlacedCanaries"] == [canary["ID"]]
    c.schedule()
    old_named = [a for a in c.running("web") if a["Name"] == canary["Name"]]
    assert [a["ID"] for a in old_named] == [canary["ID"]]  # its old namesake stopped, not replaced
    for _ in range(4):
        _health(c)
        c.schedule()
    assert _versions(c) == [1, 1, 1]
    d = _deployment(c)
    assert d["Status"] == "successful" and d["TaskGroups"]["g"]["Promoted"] is True
    assert d["TaskGroups"]["g"]["HealthyAllocs"] == 3


def test_promoted_canaries_are_plain_allocations_to_the_next_deployments_canaries() -> None:
    """Promoted (auto_promote), the canaries of version 1 lose DeploymentStatus.Canary; version 2's
    deployment places its own canaries beside them and counts only those, and they are promoted,
    and take over, as the first were."""
    c = _rolled_out(2, {"Canary": 1, "AutoPromote": True})
    for version, cpu in ((1, 600), (2, 700)):
        c.register(**service(count=2, cpu=cpu, Update={"Canary": 1, "AutoPromote": True}))
        c.schedule()
        d = _deployment(c)
        assert d["JobVersion"] == version
        (canary,) = [a for a in c.running("web") if a["JobVersion"] == version]
        assert canary["DeploymentStatus"]["Canary"] is True
        assert not any((a.get("DeploymentStatus") or {}).get("Canary") for a in c.running("web")
                       if a["JobVersion"] != version)
        for _ in range(4):
            _health(c)
            c.schedule()
        assert _versions(c) == [version, version]
        assert _deployment(c)["Status"] == "successful"
        assert not any(a["DeploymentStatus"]["Canary"] for a in c.running("web"))
        assert c.state.tables["allocs"][canary["ID"]]["DeploymentStatus"]["Canary"] is False


def test_auto_promote_promotes_once_the_canaries_are_healthy() -> None:
    c = _rolled_out(2, {"Canary": 2, "AutoPromote": True})
    c.register(**service(count=2, cpu=600, Update={"Canary": 2, "AutoPromote": True}))
    c.schedule()
    assert _deployment(c)["StatusDescription"] == "Deployment is running pending automatic promotion"
    assert _versions(c) == [0, 0, 1, 1]
    _health(c)
    assert _deployment(c)["TaskGroups"]["g"]["Promoted"] is True
    assert _deployment(c)["Status"] == "running"  # the old two still run
    c.schedule()  # the promoted canaries take their places: nothing left to roll
    assert _versions(c) == [1, 1]
    assert _deployment(c)["Status"] == "successful"


def test_an_unhealthy_canary_fails_the_deployment_and_is_stopped() -> None:
    c = _rolled_out(2, {"Canary": 1})
    c.register(**service(count=2, cpu=600, Update={"Canary": 1, "ProgressDeadline": 0}))
    c.schedule()
    d = _deployment(c)
    _health(c, healthy=False)
    assert _deployment(c)["Status"] == "failed"
    c.schedule()
    assert _versions(c) == [0, 0]  # the old version runs on; the canary is gone
    assert not c.apply("deployment_promote", deployment_id=d["ID"])["ok"]
    res = c.apply("deployment_promote", deployment_id=_deployment(c)["ID"])
    assert res["error"] == "can't promote terminal deployment"


def _rolling_system_job(arg: str, max_parallel: int) -> dict[str, Any]:
    """A system job "sys" of one sleep task (its argument *arg*), rolled *max_parallel* nodes a stagger."""
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": [arg]}}
    return {"ID": "sys", "Type": "system", "Update": {"MaxParallel": max_parallel, "Stagger": 30 * SEC},
            "TaskGroups": [{"Name": "g", "Tasks": [task]}]}


def test_system_job_update_rolls_max_parallel_nodes_at_a_time_each_stagger() -> None:
    c = Cluster()
    for i in range(5):
        c.node(i)

    def sys_job(arg: str) -> dict[str, Any]:
        return _rolling_system_job(arg, max_parallel=2)
    c.register(**sys_job("1"))
    c.schedule()
    c.client("running")
    assert len(c.running("sys")) == 5
    c.register(**sys_job("2"))

    def step() -> list[int]:
        """Run what is due now; the versions running after it."""
        for _, _, eval_id, _ in sorted(pending_evals(c.state, c.now)):
            data, _ = plan_command(c.state, eval_id, c.now)
            if data is not None:
                c.index += 1
                c.state.apply(c.index, data)
        c.client("running")
        return sorted(a["JobVersion"] for a in c.running("sys"))
    assert step() == [0, 0, 0, 1, 1]  # two nodes at a time
    waiting = [e for e in c.state.tables["evals"].values() if e["TriggeredBy"] == "rolling-update"
               and e["Status"] == "pending"]
    assert len(waiting) == 1 and waiting[0]["WaitUntil"] == c.now + 30
    assert step() == [0, 0, 0, 1, 1]  # nothing more before the stagger has passed
    c.now += 30
    assert step() == [0, 1, 1, 1, 1]
    c.now += 30
    assert step() == [1, 1, 1, 1, 1]
    assert not [e for e in c.state.tables["evals"].values() if e["Status"] == "pending"]
    # Without an update block a system job rolls by Nomad's DefaultUpdateStrategy (its HTTP API
    # canonicalizes every registration so): one node at a time, 30 s apart.
    c.register(ID="sys", Type="system", TaskGroups=[{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["3"]}}]}])
    assert c.state.tables["jobs"]["sys"]["Update"]["MaxParallel"] == 1
    assert step() == [1, 1, 1, 1, 2]
    for done in range(2, 6):
        c.now += 30
        assert step() == [1] * (5 - done) + [2] * done


def test_manual_health_is_set_by_an_operator_and_counts_as_a_clients_report() -> None:
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update={"HealthCheck": "manual"}))
    c.schedule()
    d = _deployment(c)
    ids = sorted(a["ID"] for a in c.running("web"))
    res = c.apply("deployment_alloc_health", deployment_id=d["ID"], healthy=["nope"], unhealthy=[])
    assert not res["ok"] and "is not part of the deployment" in res["error"]
    res = c.apply("deployment_alloc_health", deployment_id=d["ID"], healthy=ids[:1], unhealthy=[])
    assert res["ok"] and _deployment(c)["TaskGroups"]["g"]["HealthyAllocs"] == 1
    res = c.apply("deployment_alloc_health", deployment_id=d["ID"], healthy=ids[1:], unhealthy=[])
    assert res["ok"] and _deployment(c)["Status"] == "successful"
    res = c.apply("deployment_alloc_health", deployment_id=d["ID"], healthy=ids, unhealthy=[])
    assert res["error"] == "can't set health of allocations for a terminal deployment"


def test_a_malformed_report_in_a_batch_fails_alone_and_the_others_take_effect() -> None:
    c = Cluster()
    n0, n1 = c.node(0, cpu=600), c.node(1, cpu=600)
    c.register(**service(count=2))
    c.schedule()
    by_node = {a["NodeID"]: a for a in c.running("web")}
    res = c.apply("alloc_client_update_batch", reports=[
        {"node_id": n0, "secret_id": "s", "allocs": [{"ID": by_node[n0]["ID"], "ClientStatus": "failed"}]},
        {"node_id": n1, "secret_id": "s", "allocs": [{"ID": by_node[n1]["ID"], "ClientStatus": "failed"},
                                                     {"ID": ["not", "an", "id"]}]},
    ])
    assert res["ok"] and res["errors"][0] == "" and "allocs[1] must be a map with a string ID" in res["errors"][1]
    allocs = c.state.tables["allocs"]
    assert allocs[by_node[n0]["ID"]]["ClientStatus"] == "failed"
    assert allocs[by_node[n1]["ID"]]["ClientStatus"] == "pending"  # nothing of the bad report applied
    assert [c.state.tables["evals"][e]["TriggeredBy"] for e in res["evals"]] == ["alloc-failure"]
    bad = c.apply("alloc_client_update", allocs=[{"ID": by_node[n1]["ID"], "TaskStates": "no"}])
    assert bad == {"ok": False, "error": "bad report: allocs[0].TaskStates must be a dict"}


def test_plans_written_before_their_revision_apply_as_they_did() -> None:
    """A plan in the log keeps its meaning: one without Rev 2 cancels nothing and updates in place quietly."""
    c = Cluster()
    c.node(0)
    first = c.register(**service(count=1))["EvalID"]
    older = c.apply("job_evaluate", job_id="web")["EvalID"]
    c.apply("job_evaluate", job_id="web")
    data, _ = plan_command(c.state, first, c.now)
    cmd = msgpack.unpackb(data, raw=False)
    del cmd["plan"]["Rev"]
    c.index += 1
    assert c.state.apply(c.index, msgpack.packb(cmd, use_bin_type=True))["ok"]
    assert c.state.tables["evals"][older]["Status"] == "pending"


def test_an_in_place_update_that_changes_nothing_the_client_does_leaves_it_be() -> None:
    c = Cluster()
    c.node(0, cpu=8000)
    # (No deployments: an in-place update that moves an allocation into one wakes its client.)
    c.register(**service(count=2, group={"Services": [{"Name": "api"}], "Update": {"MaxParallel": 0}}))
    c.schedule()
    c.client("running")
    before = {a["ID"]: a["AllocModifyIndex"] for a in c.running("web")}
    c.register(**service(count=3, group={"Services": [{"Name": "api"}],  # a scale: version 1
                                         "Update": {"MaxParallel": 0}}))
    c.schedule()
    kept = {a["ID"]: a for a in c.running("web") if a["ID"] in before}
    assert set(kept) == set(before) and all(a["JobVersion"] == 1 for a in kept.values())
    assert {i: a["AllocModifyIndex"] for i, a in kept.items()} == before  # no client woken for it


def test_the_stores_client_terminal_statuses_are_the_schedulers():
    from actors.scheduler import scheduler
    from actors.state import store

    assert store._TERMINAL_CLIENT == scheduler.TERMINAL_CLIENT


# ------------------------------------------------------------ reschedule policy


def _run_due(c: Cluster) -> int:
    return c.schedule(due_only=True)


def _one_running_batch_alloc() -> tuple[Cluster, dict[str, Any]]:
    """A cluster of one node running a batch job "web" of one allocation, and that allocation."""
    c = Cluster()
    c.node(0)
    job = service(count=1)
    job["Type"] = "batch"
    c.register(**job)
    _run_due(c)
    (a,) = c.running("web")
    return c, a

def test_a_batch_allocations_5s_reschedule_delay_is_waited_out() -> None:
    """Nomad's rescheduleWindowSize is 1 s: a failed allocation due within a second is replaced by the
    evaluation at hand, one due later waits for its follow-up. The 5 s batching window was used for
    both, so the batch default delay (5 s) was never waited: the replacement came at once."""
    c, a = _one_running_batch_alloc()
    _fail(c, a["ID"])
    _run_due(c)  # the alloc-failure evaluation, at the failure's time
    assert c.running("web") == []
    followup = c.state.tables["evals"][c.state.tables["allocs"][a["ID"]]["FollowupEvalID"]]
    assert followup["Status"] == "pending"
    c.now += 4.5  # within a second of its time: rescheduled by the next evaluation that runs
    c.apply("job_evaluate", job_id="web")
    _run_due(c)
    (b,) = c.running("web")
    assert b["PreviousAllocation"] == a["ID"] and b["RescheduleTracker"]["Events"][0]["Delay"] == 5 * SEC


def test_alloc_stop_of_a_batch_allocation_places_it_again_after_its_reschedule_delay() -> None:
    """Nomad's `alloc stop` of a batch allocation (?reschedule=true): it is stopped at once and placed
    again as its reschedule policy says -- the batch default's 5 s later, by a follow-up evaluation --
    not migrated at once as a service allocation is."""
    c, a = _one_running_batch_alloc()
    c.client("running")
    res = c.apply("alloc_stop", alloc_id=a["ID"], no_shutdown_delay=False, reschedule=True)
    assert c.state.tables["allocs"][a["ID"]]["DesiredTransition"] == {
        "Migrate": True, "NoShutdownDelay": False, "Reschedule": True}
    assert res["ok"]
    _run_due(c)
    stopped = c.state.tables["allocs"][a["ID"]]
    assert stopped["DesiredStatus"] == "stop" and c.running("web") == []
    follow = c.state.tables["evals"][stopped["FollowupEvalID"]]
    assert follow["Status"] == "pending" and follow["WaitUntil"] == c.now + 5
    c.now += 5.0
    _run_due(c)
    (b,) = c.running("web")
    assert b["Name"] == a["Name"] and b["ID"] != a["ID"]


def test_a_registration_preserving_counts_and_resources_keeps_the_registered_ones() -> None:
    """Nomad's updatePreservedValues, in the same write as the registration: -preserve-counts keeps
    each group's count, -preserve-resources each task's resources; a new group or task takes its own."""
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, cpu=100, mem=64))
    c.apply("job_scale", job_id="web", group="g", count=3)
    job = canonical_job(service(count=1, cpu=300, mem=256))
    job["TaskGroups"].append({**job["TaskGroups"][0], "Name": "extra", "Count": 2})
    c.apply("job_register", job=job, preserve_counts=True, preserve_resources=True)
    got = c.state.tables["jobs"]["web"]
    g, extra = got["TaskGroups"]
    res = g["Tasks"][0]["Resources"]
    assert (g["Count"], res["CPU"], res["MemoryMB"]) == (3, 100, 64)
    assert (extra["Count"], extra["Tasks"][0]["Resources"]["CPU"]) == (2, 300)
    c.apply("job_register", job=job)  # without them: the file's
    g = c.state.tables["jobs"]["web"]["TaskGroups"][0]
    assert (g["Count"], g["Tasks"][0]["Resources"]["CPU"]) == (1, 300)


def test_a_registrations_submission_is_kept_per_version_pruned_and_purged_with_the_job() -> None:
    """Nomad's job_submission table: the source of each version registered with one (once per version),
    as many as job_tracked_versions, gone when the job is purged."""
    c = Cluster()
    sub = {"Source": 'job "web" {}', "Format": "hcl2", "VariableFlags": {"a": "1"}, "Variables": "b = 2"}
    for count in range(1, 9):
        c.apply("job_register", job=canonical_job(service(count=count)),
                submission={**sub, "Source": f"count = {count}"})
    c.apply("job_register", job=canonical_job(service(count=8)), submission={**sub, "Source": "same spec"})
    kept = c.state.tables["job_submissions"]["web"]
    assert sorted(kept, key=int) == ["2", "3", "4", "5", "6", "7"]  # job_tracked_versions, newest
    assert kept["7"]["Source"] == "count = 8"  # the unchanged registration kept the version's first
    assert (kept["7"]["JobID"], kept["7"]["Version"], kept["7"]["VariableFlags"]) == ("web", 7, {"a": "1"})
    c.apply("job_deregister", job_id="web", purge=True)
    assert "web" not in c.state.tables["job_submissions"]


def test_alloc_stop_of_a_service_allocation_replaces_it_at_once() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    _run_due(c)
    (a,) = c.running("web")
    c.apply("alloc_stop", alloc_id=a["ID"])
    _run_due(c)
    (b,) = c.running("web")
    assert b["ID"] != a["ID"] and c.state.tables["allocs"][a["ID"]]["DesiredStatus"] == "stop"


def test_a_failed_service_allocation_is_replaced_after_an_exponential_delay() -> None:
    """Nomad's default service policy: 30 s, doubled at each reschedule, up to 1 h; unlimited."""
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    _run_due(c)
    (a,) = c.running("web")
    delays = []
    for expected in (30, 60, 120):
        _fail(c, a["ID"])
        _run_due(c)
        failed = c.state.tables["allocs"][a["ID"]]
        # Not replaced yet: it waits (not stopped, its name held) for one follow-up evaluation.
        assert c.running("web") == [] and failed["DesiredStatus"] == "run", failed
        follow = c.state.tables["evals"][failed["FollowupEvalID"]]
        assert (follow["TriggeredBy"], follow["Status"]) == ("alloc-failure", "pending")
        assert follow["WaitUntil"] == c.now + expected
        c.now += expected - 1.0  # within the window it is due: the next evaluation replaces it
        c.apply("job_evaluate", job_id="web")
        _run_due(c)
        (b,) = c.running("web")
        assert b["PreviousAllocation"] == a["ID"] and b["Name"] == a["Name"]
        replaced = c.state.tables["allocs"][a["ID"]]
        assert replaced["DesiredStatus"] == "stop" and replaced["NextAllocation"] == b["ID"]
        delays.append(b["RescheduleTracker"]["Events"][-1]["Delay"] // SEC)
        assert b["RescheduleTracker"]["Events"][-1]["PrevAllocID"] == a["ID"]
        a = b
        c.now += 1000.0
    assert delays == [30, 60, 120]
    # The follow-up evaluation, run at its time, finds nothing more to do.
    c.now += 10_000.0
    _run_due(c)
    assert len(c.running("web")) == 1


def test_a_follow_up_evaluation_reschedules_what_it_was_made_for_and_one_is_made_per_batch() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=3))
    _run_due(c)
    first, second, third = sorted(c.running("web"), key=lambda a: a["Name"])
    _fail(c, first["ID"])
    c.now += 2.0
    _fail(c, second["ID"])  # due 2 s after the first: the same batch
    c.now += 20.0
    _fail(c, third["ID"])  # due 22 s after: a batch of its own
    _run_due(c)
    allocs = c.state.tables["allocs"]
    follow = [allocs[a["ID"]]["FollowupEvalID"] for a in (first, second, third)]
    assert follow[0] == follow[1] != follow[2] and all(follow)
    evals = c.state.tables["evals"]
    assert [evals[f]["WaitUntil"] for f in (follow[0], follow[2])] == [1000.0 + 30, 1022.0 + 30]
    # Another evaluation before then changes nothing: no second follow-up, nothing placed.
    c.apply("job_evaluate", job_id="web")
    _run_due(c)
    assert [allocs[a["ID"]]["FollowupEvalID"] for a in (first, second, third)] == follow
    assert sum(1 for e in evals.values() if e["TriggeredBy"] == "alloc-failure" and e.get("WaitUntil")) == 2
    c.now = 1030.0
    _run_due(c)  # the first batch's follow-up is due: both of it replaced, the third still waits
    assert {a["PreviousAllocation"] for a in c.running("web")} == {first["ID"], second["ID"]}
    c.now = 1052.0
    _run_due(c)
    assert len(c.running("web")) == 3


def test_a_batch_allocation_is_rescheduled_once_a_day_after_5s_then_left_failed() -> None:
    c, a = _one_running_batch_alloc()
    _fail(c, a["ID"])
    c.now += 6.0
    _run_due(c)
    (b,) = c.running("web")
    assert b["RescheduleTracker"]["Events"][0]["Delay"] == 5 * SEC
    _fail(c, b["ID"])
    c.now += 600.0
    _run_due(c)
    # Its one attempt in 24 h is used: it stays failed, nothing replaces it, no follow-up is made.
    assert c.running("web") == [] and not c.state.tables["allocs"][b["ID"]].get("FollowupEvalID")
    c.now += 2 * 24 * 3600.0
    c.apply("job_evaluate", job_id="web")
    _run_due(c)
    assert c.running("web") == []  # a failed allocation's own attempts never come back


def test_job_eval_force_reschedule_replaces_a_failed_allocation_out_of_attempts() -> None:
    """`nomad job eval -force-reschedule` was a plain evaluation: Nomad's Job.Evaluate marks each failed,
    unreplaced allocation of a group with rescheduling enabled DesiredTransition.ForceReschedule, and the
    reconciler replaces it now, its attempts used up or not."""
    c, a = _one_running_batch_alloc()
    _fail(c, a["ID"])
    c.now += 6.0
    _run_due(c)
    (b,) = c.running("web")
    _fail(c, b["ID"])
    c.now += 600.0
    _run_due(c)
    assert c.running("web") == []  # its one attempt is used
    res = c.apply("job_evaluate", job_id="web", force_reschedule=True)
    assert res["ok"]
    allocs = c.state.tables["allocs"]
    assert allocs[b["ID"]]["DesiredTransition"]["ForceReschedule"] is True
    assert not allocs[a["ID"]]["DesiredTransition"].get("ForceReschedule")  # replaced already
    _run_due(c)
    (forced,) = c.running("web")
    assert forced["PreviousAllocation"] == b["ID"] and allocs[b["ID"]]["NextAllocation"] == forced["ID"]
    # A second forced evaluation has nothing left to force: the failed ones are replaced.
    c.apply("job_evaluate", job_id="web", force_reschedule=True)
    _run_due(c)
    assert [x["ID"] for x in c.running("web")] == [forced["ID"]]


def test_reschedule_delays_follow_nomads_functions() -> None:
    from actors.scheduler.scheduler import next_delay_ns, next_reschedule

    def with_delays(*ds: int) -> dict[str, Any]:
        return {"ModifyTime": 100.0, "DesiredStatus": "run", "ClientStatus": "failed", "RescheduleTracker": {
            "Events": [{"RescheduleTime": int(90 * SEC), "Delay": d * SEC} for d in ds]}}

    fib = {"Delay": 5 * SEC, "DelayFunction": "fibonacci", "MaxDelay": 60 * SEC, "Unlimited": True}
    assert [next_delay_ns(fib, with_delays(*ds)) // SEC for ds in [(), (5,), (5, 5), (5, 10), (20, 40)]] == \
        [5, 5, 10, 15, 60]
    const = {"Delay": 10 * SEC, "DelayFunction": "constant", "Attempts": 2, "Interval": 300 * SEC}
    assert next_delay_ns(const, with_delays(10, 10)) == 10 * SEC
    assert next_reschedule(const, with_delays(10)) == (110.0, 10 * SEC)  # one of two used
    assert next_reschedule(const, with_delays(10, 10)) is None  # both used within the interval
    expo = {"Delay": 30 * SEC, "DelayFunction": "exponential", "MaxDelay": 120 * SEC, "Unlimited": True}
    assert next_delay_ns(expo, with_delays(120)) == 120 * SEC  # at the ceiling, 10 s after: stays there
    long_ago = with_delays(120)
    long_ago["RescheduleTracker"]["Events"][0]["RescheduleTime"] = int(-200 * SEC)
    assert next_delay_ns(expo, long_ago) == 30 * SEC  # more than the ceiling since: starts again


@pytest.mark.parametrize("policy, message", [
    ({"Delay": 1 * SEC}, "Delay cannot be less than 5s (got 1s)"),
    ({"DelayFunction": "blah"},
     'Invalid delay function "blah", must be one of ["constant" "exponential" "fibonacci"]'),
    ({"Attempts": 3}, "Interval must be a non zero value if Attempts > 0"),
    ({"Attempts": 3, "Interval": 3600 * SEC}, "Reschedule Policy with Attempts = 3, Interval = 1h0m0s, and "
                                              "Unlimited = true is ambiguous"),
    ({"Attempts": 3, "Interval": 10 * SEC, "Unlimited": False}, "Interval cannot be less than 15s (got 10s)"),
    ({"Attempts": 10, "Interval": 60 * SEC, "Unlimited": False, "DelayFunction": "constant",
      "Delay": 10 * SEC},
     'Nomad can only make 6 attempts in 1m0s with initial delay 10s and delay function "constant"'),
    ({"DelayFunction": "exponential", "Delay": 60 * SEC, "MaxDelay": 30 * SEC},
     "Max Delay cannot be less than Delay 1m0s (got 30s)"),
])
def test_reschedule_policies_are_checked_as_nomad_checks_them(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(JobError, match=re.escape(message)):
        canonical_job(service(group={"ReschedulePolicy": policy}))


def test_a_jobs_reschedule_block_is_each_groups_and_a_system_job_has_none() -> None:
    job = canonical_job(service(Reschedule={"Delay": 10 * SEC, "DelayFunction": "constant"},
                                group={"ReschedulePolicy": {"Unlimited": True}}))
    assert job["TaskGroups"][0]["ReschedulePolicy"] == {
        "Attempts": 0, "Interval": 0, "Delay": 10 * SEC, "DelayFunction": "constant", "MaxDelay": 3600 * SEC,
        "Unlimited": True}
    assert "Reschedule" not in job
    system = service()
    system["Type"] = "system"
    system["TaskGroups"][0]["Count"] = 1
    assert "ReschedulePolicy" not in canonical_job(system)["TaskGroups"][0]
    with pytest.raises(JobError, match="System or sysbatch jobs should not have a reschedule policy"):
        canonical_job({**system, "Reschedule": {"Attempts": 1}})


def test_with_a_progress_deadline_an_unhealthy_allocation_is_rescheduled_within_the_deployment() -> None:
    """Nomad's watcher for a progress-based group: no failing on the first unhealthy allocation; it may
    be rescheduled (by its policy) inside the running deployment, and the deadline ends it."""
    from actors.state import deployments

    c = _rolled_out(2)
    c.register(**service(count=2, cpu=700, Update={"ProgressDeadline": 600 * SEC}))
    _run_due(c)
    d = _deployment(c)
    (new,) = [a for a in c.running("web") if a["JobVersion"] == 1]
    _fail(c, new["ID"])
    d = _deployment(c)
    assert d["Status"] == "running" and d["TaskGroups"]["g"]["UnhealthyAllocs"] == 1
    failed = c.state.tables["allocs"][new["ID"]]
    assert failed["DesiredTransition"] == {"Reschedule": True} and failed["DesiredStatus"] == "run"
    _run_due(c)  # its reschedule delay (30 s) has not passed: it waits for a follow-up
    assert not [a for a in c.running("web") if a["JobVersion"] == 1]
    c.now += 30
    _run_due(c)
    (again,) = [a for a in c.running("web") if a["JobVersion"] == 1]
    assert again["PreviousAllocation"] == new["ID"] and again["DeploymentID"] == d["ID"]
    # A failed allocation of the running deployment that was not marked waits for the deployment.
    c.apply("alloc_client_update", allocs=[{"ID": again["ID"], "ClientStatus": "failed"}])
    c.now += 3600
    c.apply("job_evaluate", job_id="web")
    _run_due(c)
    assert not [a for a in c.running("web") if a["JobVersion"] == 1]
    assert deployments.overdue(c.state, c.now) == [d["ID"]]
    res = c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")
    assert res["ok"] and _deployment(c)["StatusDescription"] == "Failed due to progress deadline"
    # Failed, the deployment holds its allocations no more, but Nomad's placeAllocs does not reschedule
    # one that is part of the failed deployment (partOfFailedDeployment): it stays failed.
    c.now += 60
    _run_due(c)
    assert not [a for a in c.running("web") if a["JobVersion"] == 1]
    assert c.state.tables["allocs"][again["ID"]]["DesiredStatus"] == "run"


def _reschedule_at_most(attempts: int) -> dict[str, Any]:
    """A group's fields: a reschedule policy of *attempts* an hour, each after a constant 5 s."""
    return {"ReschedulePolicy": {"Attempts": attempts, "Interval": 3600 * SEC, "Delay": 5 * SEC,
                                 "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": False}}


def test_an_unhealthy_allocation_out_of_reschedule_attempts_fails_the_deployment_at_once() -> None:
    """Nomad's shouldFailEarly: with a progress deadline an unhealthy allocation is rescheduled within the
    deployment while its policy allows; one that has used its attempts fails the deployment now
    ("Failed due to unhealthy allocations"), not at the progress deadline 10 minutes on."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=1, Update={"ProgressDeadline": 600 * SEC}, group=_reschedule_at_most(1)))
    _run_due(c)
    (first,) = c.running("web")
    _fail(c, first["ID"])
    assert _deployment(c)["Status"] == "running"  # one attempt left: rescheduled within the deployment
    c.now += 5
    _run_due(c)
    (second,) = c.running("web")
    assert second["PreviousAllocation"] == first["ID"]
    _fail(c, second["ID"])
    d = _deployment(c)
    assert d["Status"] == "failed" and d["StatusDescription"] == "Failed due to unhealthy allocations"


def test_job_status_follows_nomads_get_job_status() -> None:
    """Nomad's getJobStatus: running while its deployment is active or an allocation lives, pending while an
    evaluation waits, dead once all are over -- a service job whose only allocation failed with no
    reschedule left is dead, not pending forever; a system job runs until stopped."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=1, group=_reschedule_at_most(0)))
    assert c.state.tables["jobs"]["web"]["Status"] == "pending"
    _run_due(c)
    assert c.state.tables["jobs"]["web"]["Status"] == "running"
    (a,) = c.running("web")
    _fail(c, a["ID"])
    assert _deployment(c)["Status"] == "failed"
    assert c.state.tables["jobs"]["web"]["Status"] == "pending"  # its alloc-failure evaluation waits
    _run_due(c)
    assert c.state.tables["jobs"]["web"]["Status"] == "dead"
    sysjob = service("sys", count=1)
    sysjob["Type"] = "system"
    c.register(**sysjob)
    _run_due(c)
    assert c.state.tables["jobs"]["sys"]["Status"] == "running"


def test_client_reports_and_plans_written_before_nomads_job_status_apply_as_they_did() -> None:
    """A Raft log keeps applying as it was written: a report without rev leaves the deployment of an
    allocation out of reschedule attempts running, and the job's status as it was computed then."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=1, Update={"ProgressDeadline": 600 * SEC}, group=_reschedule_at_most(0)))
    _run_due(c)
    (a,) = c.running("web")
    c.apply("alloc_client_update", allocs=[{"ID": a["ID"], "ClientStatus": "failed",
                                            "DeploymentStatus": {"Healthy": False, "Timestamp": c.now}}])
    assert _deployment(c)["Status"] == "running"
    assert c.state.tables["jobs"]["web"]["Status"] == "pending"


def test_a_rescheduled_allocation_goes_elsewhere_than_where_it_failed_when_it_can() -> None:
    """Nomad's NodeReschedulingPenalty: the failed allocation's node (and its earlier ones) score last."""
    c = Cluster()
    busy = c.node(0, cpu=1000, mem=1024)  # the best fit for binpacking
    roomy = c.node(1, cpu=8000, mem=16384)
    c.register(**service(count=1, cpu=500))
    _run_due(c)
    (a,) = c.running("web")
    assert a["NodeID"] == busy
    _fail(c, a["ID"])
    c.now += 30
    _run_due(c)
    (b,) = c.running("web")
    assert b["PreviousAllocation"] == a["ID"] and b["NodeID"] == roomy
    # Failed on both: the least bad (its binpack score) of the two is still taken.
    _fail(c, b["ID"])
    c.now += 60
    _run_due(c)
    (d,) = c.running("web")
    assert d["PreviousAllocation"] == b["ID"] and d["NodeID"] == busy


@pytest.mark.parametrize("progress_s", [600, 0])
def test_a_failed_canary_never_stops_the_old_allocation_beside_it(progress_s: int) -> None:
    """A failed canary holds its canary place, not the old allocation's name: with a progress deadline it
    is rescheduled (after its delay) as a canary again, under its own name; a failed deployment stops it.
    Either way the old version keeps running whole (for many job IDs: allocation IDs order the names)."""
    for n in range(12):
        jid = f"web{n}"
        c = Cluster()
        c.node(0, cpu=8000)
        c.register(**service(jid, count=2, Update={"Canary": 1}))
        c.schedule()
        _health(c)
        c.register(**service(jid, count=2, cpu=600, Update={"Canary": 1, "ProgressDeadline": progress_s * SEC}))
        _run_due(c)
        (canary,) = [a for a in c.running(jid) if a["JobVersion"] == 1]
        _fail(c, canary["ID"])
        _run_due(c)
        c.now += 31
        _run_due(c)
        old = sorted(a["Name"] for a in c.running(jid) if a["JobVersion"] == 0)
        assert old == [f"{jid}.g[0]", f"{jid}.g[1]"], (jid, old)
        new = [a for a in c.running(jid) if a["JobVersion"] == 1]
        if progress_s:
            (again,) = new
            assert again["DeploymentStatus"]["Canary"] and again["PreviousAllocation"] == canary["ID"]
            assert again["Name"] == canary["Name"]
            assert again["RescheduleTracker"]["Events"][-1]["Delay"] == 30 * SEC
        else:
            assert new == [] and _deployment(c, jid)["Status"] == "failed"


def test_a_replacement_no_node_takes_leaves_the_allocation_it_replaces_as_it_was() -> None:
    """Nomad's PopUpdate: a failed allocation keeps its reschedule history for a later try, and one a
    new version would replace keeps running."""
    c = Cluster()
    nid = c.node(0, cpu=1000)
    c.register(**service(count=1, cpu=500))
    _run_due(c)
    (a,) = c.running("web")
    c.register(**service(count=1, cpu=2000))  # fits nowhere
    _run_due(c)
    assert [x["ID"] for x in c.running("web")] == [a["ID"]]  # the old version runs on
    c.register(**service(count=1, cpu=500, group={"Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                          "Config": {"command": "/bin/true"},
                                                          "Resources": {"CPU": 500, "MemoryMB": 256}}]}))
    _run_due(c)
    (b,) = c.running("web")
    _fail(c, b["ID"])
    c.apply("node_update_eligibility", node_id=nid, eligibility="ineligible")
    c.now += 31
    _run_due(c)
    failed = c.state.tables["allocs"][b["ID"]]
    assert (failed["DesiredStatus"], failed["ClientStatus"]) == ("run", "failed")  # not stopped: no node
    c.apply("node_update_eligibility", node_id=nid, eligibility="eligible")
    _run_due(c)
    (d,) = c.running("web")
    assert d["PreviousAllocation"] == b["ID"]
    assert d["RescheduleTracker"]["Events"][-1]["PrevAllocID"] == b["ID"]


def test_a_new_version_replaces_a_failed_allocation_waiting_for_its_reschedule_at_once() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1, Update={"MaxParallel": 0}))
    _run_due(c)
    (a,) = c.running("web")
    _fail(c, a["ID"])
    _run_due(c)
    assert c.running("web") == []  # waiting out its 30 s
    c.register(**service(count=1, cpu=600, Update={"MaxParallel": 0}))  # the fix
    _run_due(c)
    (b,) = c.running("web")
    assert b["JobVersion"] == 1 and c.state.tables["allocs"][a["ID"]]["DesiredStatus"] == "stop"


# ------------------------------------------------------------ ephemeral disk
def test_a_groups_ephemeral_disk_counts_against_its_nodes_disk_less_reserved() -> None:
    c = Cluster()
    nid = c.node(0, disk=1000, reserved_disk=200)  # 800 MB to give
    c.register(**service(count=3, cpu=100, mem=64))  # each asks Nomad's default 300 MB
    c.schedule()
    placed = c.running("web")
    assert len(placed) == 2 and all(a["Resources"]["DiskMB"] == 300 for a in placed)
    assert c.state.node_usage(nid) == (200, 128, 600)
    ev = [e for e in c.state.tables["evals"].values() if e["FailedTGAllocs"]]
    assert ev and ev[0]["FailedTGAllocs"]["g"]["DimensionExhausted"] == {"disk": 1}
    assert ev[0]["FailedTGAllocs"]["g"]["NodesExhausted"] == 1
    # A smaller disk fits: the job's update replaces them (a changed disk is a destructive update).
    c.register(**service(count=3, cpu=100, mem=64, group={"EphemeralDisk": {"SizeMB": 200}},
                         Update={"MaxParallel": 0}))
    c.schedule()
    c.client("running")
    c.schedule()
    assert sorted(a["Resources"]["DiskMB"] for a in c.running("web")) == [200, 200, 200]


def test_the_plan_apply_refuses_a_placement_whose_disk_another_plan_took() -> None:
    from actors.scheduler.scheduler import compute_plan

    c = Cluster()
    c.node(0, disk=500)
    c.register(**service("a", count=1, cpu=100, mem=64))
    c.register(**service("b", count=1, cpu=100, mem=64))
    evals = sorted((e for e in c.state.tables["evals"].values() if e["Status"] == "pending"),
                   key=lambda e: e["JobID"])
    plans = [compute_plan(c.state.tables, ev) for ev in evals]
    assert all(len(p["Place"]) == 1 for p in plans)
    results = [c.apply("plan_apply", plan=p) for p in plans]
    assert len(results[0]["placed"]) == 1 and results[1]["refused"] == [plans[1]["Place"][0]["ID"]]


def _sticky(count: int = 1) -> dict[str, Any]:
    return service(count=count, cpu=100, mem=64, group={"EphemeralDisk": {"Sticky": True, "SizeMB": 300}},
                   Update={"MaxParallel": 0})


def test_a_sticky_disks_replacement_goes_to_the_previous_allocations_node() -> None:
    c = Cluster()
    for i in range(8):
        c.node(i)
    c.register(**_sticky(count=2))
    c.schedule()
    c.client("running")
    before = {a["Name"]: a for a in c.running("web")}
    for cpu in (101, 102, 103, 104):  # destructive updates, each a new evaluation (a new node order)
        c.register(**service(count=2, cpu=cpu, mem=64, Update={"MaxParallel": 0},
                             group={"EphemeralDisk": {"Sticky": True}}))
        c.schedule()
        c.client("running")
        now = {a["Name"]: a for a in c.running("web")}
        for name, a in now.items():
            assert a["NodeID"] == before[name]["NodeID"] and a["PreviousAllocation"] == before[name]["ID"]
        before = now
    # A failed allocation is rescheduled onto its node too (tried first, before the failure penalty).
    victim = before["web.g[0]"]
    _fail(c, victim["ID"])
    c.now += 60
    c.schedule()
    again = next(a for a in c.running("web") if a["Name"] == "web.g[0]")
    assert again["NodeID"] == victim["NodeID"] and again["PreviousAllocation"] == victim["ID"]


def test_a_sticky_replacement_fits_where_only_the_replaced_allocations_room_is_free() -> None:
    c = Cluster()
    full = c.node(0, cpu=1000, mem=1024, disk=400)  # room for exactly one allocation
    for i in range(1, 4):
        c.node(i)
    c.register(**service(count=1, cpu=900, mem=64, Constraints=[
        {"LTarget": "${node.unique.id}", "RTarget": full, "Operand": "="}]))
    c.schedule()
    c.client("running")
    (old,) = c.running("web")
    c.register(**service(count=1, cpu=950, mem=64, Update={"MaxParallel": 0},
                         group={"EphemeralDisk": {"Sticky": True}}))
    c.schedule()
    (new,) = [a for a in c.running("web") if a["ID"] != old["ID"]]
    assert new["NodeID"] == full and new["PreviousAllocation"] == old["ID"]
    c.assert_not_overcommitted()


def test_a_sticky_replacement_goes_elsewhere_when_its_node_cannot_take_it() -> None:
    c = Cluster()
    for i in range(3):
        c.node(i)
    c.register(**_sticky())
    c.schedule()
    c.client("running")
    (old,) = c.running("web")
    c.apply("node_update_eligibility", node_id=old["NodeID"], eligibility="ineligible")
    c.register(**service(count=1, cpu=150, mem=64, Update={"MaxParallel": 0},
                         group={"EphemeralDisk": {"Sticky": True}}))
    c.schedule()
    (new,) = [a for a in c.running("web") if a["ID"] != old["ID"]]
    assert new["NodeID"] != old["NodeID"] and new["PreviousAllocation"] == old["ID"]


# ------------------------------------------------------------ job-level distinct_hosts
def _two_groups(job_id: str, per_group: int, constraints: list[dict[str, Any]],
                group_cons: Any = ()) -> dict[str, Any]:
    job = service(job_id, count=per_group, cpu=10, mem=10, Constraints=constraints)
    g = job["TaskGroups"][0]
    job["TaskGroups"] = [{**g, "Name": "a", "Constraints": list(group_cons)},
                         {**g, "Name": "b", "Constraints": list(group_cons)}]
    return job


def test_a_job_level_distinct_hosts_keeps_every_allocation_of_the_job_on_its_own_node() -> None:
    """Nomad's DistinctHostsIterator: a job's distinct_hosts forbids any two allocations of the job,
    of any group, on one node; a group's only two of that group."""
    dh = {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}
    c = Cluster()
    for i in range(4):
        c.node(i)
    c.register(**_two_groups("web", 2, [dh]))
    c.schedule()
    nodes = [a["NodeID"] for a in c.running("web")]
    assert len(nodes) == 4 and len(set(nodes)) == 4
    # One node fewer than allocations: the last one cannot be placed, every node filtered by it.
    c.register(**_two_groups("api", 3, [dh]))
    c.schedule()
    assert len(c.running("api")) == 4
    assert len({a["NodeID"] for a in c.running("api")}) == 4
    ev = next(e for e in c.state.tables["evals"].values() if e["JobID"] == "api" and e.get("FailedTGAllocs"))
    assert set(ev["FailedTGAllocs"]) == {"b"}  # a's three took three nodes, b's first the fourth
    m = ev["FailedTGAllocs"]["b"]  # its first failed placement's: every node has one of the job's
    assert m["ConstraintFiltered"] == {"distinct_hosts": 4} and m["CoalescedFailures"] == 1
    # The group's: two allocations of different groups may share a node.
    c.register(**_two_groups("db", 4, [], group_cons=[dh]))
    c.schedule()
    db = c.running("db")
    assert len(db) == 8
    for g in ("a", "b"):
        assert len({a["NodeID"] for a in db if a["TaskGroup"] == g}) == 4


# ------------------------------------------------------------ in-place updates and deployments
def _tracked_and_not(count: int) -> dict[str, Any]:
    """Group a rolls out through deployments; group b has no update strategy (max_parallel 0)."""
    job = service("web", count=count, cpu=10, mem=10, Update={"MaxParallel": 1})
    g = job["TaskGroups"][0]
    job["TaskGroups"] = [{**g, "Name": "a"}, {**g, "Name": "b", "Update": {"MaxParallel": 0}}]
    return job


def test_allocations_updated_in_place_take_the_jobs_deployment_whatever_their_group() -> None:
    """Nomad's generic scheduler: an allocation updated in place takes the ID of the deployment the
    plan makes, else of the job's latest one, its DeploymentStatus cleared when that changes; and every
    placement is made within the job's active deployment, a group's it does not track too."""
    c = Cluster()
    c.node(0)
    c.register(**_tracked_and_not(2))
    c.schedule()
    c.client()
    _health(c)
    d0 = _deployment(c)
    assert d0["Status"] == "successful" and sorted(d0["TaskGroups"]) == ["a"]
    assert {a["DeploymentID"] for a in c.running("web")} == {d0["ID"]}
    c.register(**_tracked_and_not(3))  # a scale: version 1, every allocation kept updated in place
    c.schedule()
    d1 = _deployment(c)
    assert d1["ID"] != d0["ID"] and sorted(d1["TaskGroups"]) == ["a"]
    assert d1["TaskGroups"]["a"]["PlacedAllocs"] == 3  # b's are not counted in it
    running = c.running("web")
    assert len(running) == 6
    assert all(a["DeploymentID"] == d1["ID"] and a["DeploymentStatus"] is None for a in running)
    _health(c)
    assert _deployment(c)["Status"] == "successful"
    # Version 2 makes no deployment (no group rolls out any more): the allocations updated in place
    # keep the latest one's ID, which they already have.
    job = _tracked_and_not(3)
    job["TaskGroups"][0]["Update"] = {"MaxParallel": 0}
    c.register(**job)
    c.schedule()
    assert _deployment(c)["ID"] == d1["ID"]
    assert {a["DeploymentID"] for a in c.running("web")} == {d1["ID"]}


def test_allocation_ids_are_uuid5s_of_the_evaluation_name_and_sequence() -> None:
    """alloc_id builds uuid.uuid5's string without a UUID object; it must stay the very same ID."""
    import random
    import uuid

    from actors.scheduler.scheduler import ALLOC_NS, alloc_id

    r = random.Random(7)
    for i in range(2000):
        ev = str(uuid.UUID(int=r.getrandbits(128)))
        name = f"job-{r.randrange(99)}.g{'é' if i % 5 == 0 else ''}[{r.randrange(5000)}]"
        n = r.randrange(100_000)
        assert alloc_id(ev, name, n) == str(uuid.uuid5(ALLOC_NS, f"{ev}/{name}/{n}"))


def test_a_group_that_failed_once_is_not_searched_again_for_its_other_placements(monkeypatch) -> None:
    """Nomad's computePlacements: once a group is in FailedTGAllocs, its remaining placements only add
    to CoalescedFailures; the node search is not run for each of them."""
    from actors.scheduler import scheduler as sched

    searched: list[str] = []
    real = sched._Placer.select

    def counting(self, group, *args, **kwargs):  # type: ignore[no-untyped-def]
        searched.append(group["Name"])
        return real(self, group, *args, **kwargs)

    monkeypatch.setattr(sched._Placer, "select", counting)
    dh = {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}
    c = Cluster()
    for i in range(2):
        c.node(i)
    c.register(**_two_groups("api", 5, [], group_cons=[dh]))
    c.schedule()
    ev = next(e for e in c.state.tables["evals"].values() if e["JobID"] == "api" and e.get("FailedTGAllocs"))
    assert {g: m["CoalescedFailures"] for g, m in ev["FailedTGAllocs"].items()} == {"a": 2, "b": 2}
    assert len(c.running("api")) == 4
    assert searched.count("a") == 3 and searched.count("b") == 3  # two placed, one failed, two counted


def test_system_update_stops_the_ineligible_nodes_alloc_outside_max_parallel() -> None:
    """Nomad's node reconciler: an allocation on a node that is not ready (ineligible) is stopped,
    not replaced, when the job changes -- a plain stop ("not needed"), not one of the rolling
    update's max_parallel destructive updates, so the eligible node is updated at once."""
    c = Cluster()
    a, b = c.node(0), c.node(1)

    def sys_job(arg: str) -> dict[str, Any]:
        return _rolling_system_job(arg, max_parallel=1)
    c.register(**sys_job("1"))
    c.schedule()
    c.client("running")
    c.apply("node_update_eligibility", node_id=a, eligibility="ineligible")
    c.schedule()
    assert len(c.running("sys")) == 2  # ineligible: what runs there runs on
    c.register(**sys_job("2"))
    c.schedule(due_only=True)
    c.client("running")
    on = {x["NodeID"]: x for x in c.running("sys")}
    assert list(on) == [b] and on[b]["JobVersion"] == 1
    stopped = [x for x in c.state.tables["allocs"].values() if x["NodeID"] == a]
    assert [x["DesiredDescription"] for x in stopped] == ["alloc not needed due to job update"]


def test_a_failed_system_alloc_is_not_retried_until_the_job_is_evaluated_again() -> None:
    """Nomad's Node.UpdateAlloc makes an alloc-failure evaluation only for an allocation its reschedule
    policy lets be rescheduled, and a system job has none: a task that keeps failing leaves its
    allocation failed (the restart policy was the retry), not replaced on its node in a tight loop.
    The next evaluation of the job (a node update, a new version) places it there again."""
    c = Cluster()
    nid = c.node(0)
    sysjob = service("sys", count=1)
    sysjob["Type"] = "system"
    c.register(**sysjob)
    c.schedule()
    (a,) = c.running("sys")
    evals_before = set(c.state.tables["evals"])
    c.apply("alloc_client_update", rev=REPORT_REV, allocs=[{"ID": a["ID"], "ClientStatus": "failed"}])
    assert set(c.state.tables["evals"]) == evals_before  # no alloc-failure evaluation
    assert c.schedule() == 0
    assert c.state.tables["allocs"][a["ID"]]["ClientStatus"] == "failed"
    assert c.state.tables["jobs"]["sys"]["Status"] == "running"
    c.apply("node_update_eligibility", node_id=nid, eligibility="ineligible")
    c.apply("node_update_eligibility", node_id=nid, eligibility="eligible")
    c.schedule()
    (again,) = [x for x in c.state.tables["allocs"].values() if x["ClientStatus"] == "pending"]
    assert again["NodeID"] == nid and again["PreviousAllocation"] == a["ID"]
    # Nomad leaves the failed allocation as it is (terminal, desired run): nothing stops it, and the
    # next evaluation does not place it again (the new one stands for its node).
    assert c.state.tables["allocs"][a["ID"]]["DesiredStatus"] == "run"
    c.apply("node_update_eligibility", node_id=nid, eligibility="ineligible")
    c.apply("node_update_eligibility", node_id=nid, eligibility="eligible")
    c.schedule()
    assert len(c.state.tables["allocs"]) == 2
    # A report written before (rev 2) applies as it did then: an alloc-failure evaluation.
    c.apply("alloc_client_update", rev=2, allocs=[{"ID": again["ID"], "ClientStatus": "failed"}])
    assert [e["TriggeredBy"] for e in c.state.tables["evals"].values() if e["Status"] == "pending"] == \
        ["alloc-failure"]


def test_a_purged_and_registered_again_jobs_status_leaves_the_earlier_jobs_allocations_out() -> None:
    """Nomad's AllocsByJob (without ``all``) and its job summary count only the allocations placed for
    this job (its CreateIndex): after ``job stop -purge`` and a new ``job run`` of the same ID, the old
    job's failed allocations are neither listed nor counted, unless ``?all=true``."""
    from actors.http_api import Request
    from actors.http_jobs import JOB_ACTIONS
    from tests.one_server_api import api_over

    c = Cluster()
    c.node(0)
    sysjob = service("sys", count=1)
    sysjob["Type"] = "system"
    c.register(**sysjob)
    c.schedule()
    (old,) = c.running("sys")
    c.apply("alloc_client_update", rev=REPORT_REV, allocs=[{"ID": old["ID"], "ClientStatus": "failed"}])
    assert c.apply("job_deregister", job_id="sys", purge=True)["ok"]
    c.register(**sysjob)
    c.schedule()
    (new,) = c.running("sys")
    api = api_over(c.state, acl_enabled=False)

    def get(action: str, query: str = "") -> Any:
        path = f"/v1/job/sys/{action}"
        req = Request("GET", path, urllib.parse.parse_qs(query), path + (f"?{query}" if query else ""))
        return JOB_ACTIONS[action](req, api, "sys").value
    assert [a["ID"] for a in get("allocations")] == [new["ID"]]
    assert sorted(a["ID"] for a in get("allocations", "all=true")) == sorted([old["ID"], new["ID"]])
    assert get("summary")["Summary"]["g"]["Failed"] == 0


def test_a_system_job_change_that_restarts_nothing_updates_its_allocations_in_place() -> None:
    """Nomad's system scheduler runs inplaceUpdate on the reconciler's updates: a new version that
    changes nothing its tasks run (the job's priority) moves each allocation to it in place -- no stop, no new
    allocation -- so a node made ineligible afterwards keeps its allocation (it runs this version)."""
    c = Cluster()
    a, b = c.node(0), c.node(1)
    sysjob = service("sys", count=1)
    sysjob["Type"] = "system"
    c.register(**sysjob)
    c.schedule()
    c.client("running")
    before = sorted(x["ID"] for x in c.running("sys"))
    c.register(**{**sysjob, "Priority": 60})
    c.schedule()
    assert sorted(x["ID"] for x in c.running("sys")) == before
    assert [x["JobVersion"] for x in c.running("sys")] == [1, 1]
    c.apply("node_update_eligibility", node_id=a, eligibility="ineligible")
    c.apply("node_update_eligibility", node_id=a, eligibility="eligible")  # a node-update evaluation
    c.apply("node_update_eligibility", node_id=b, eligibility="ineligible")
    c.schedule()
    assert sorted(x["ID"] for x in c.running("sys")) == before


@pytest.mark.parametrize("where", ["job", "group", "task"])
def test_a_meta_change_replaces_the_allocations_it_reaches(where: str) -> None:
    """Nomad's tasksUpdated ("task meta"): a task's job, group and task meta combined is its
    NOMAD_META_* environment, so changing any of them is a destructive update, not an in-place one."""
    c = Cluster()
    c.node(0)
    job = service("web", count=1)
    c.register(**job)
    c.schedule()
    c.client("running")
    before = {x["ID"] for x in c.running("web")}
    changed = copy.deepcopy(job)
    holder = {"job": changed, "group": changed["TaskGroups"][0],
              "task": changed["TaskGroups"][0]["Tasks"][0]}[where]
    holder["Meta"] = {"owner": "ops"}
    c.register(**changed)
    c.schedule()
    c.client("running")
    after = c.running("web")
    assert len(after) == 1 and not before & {x["ID"] for x in after}
    assert after[0]["JobVersion"] == 1


def test_a_nodes_change_evaluates_only_the_system_jobs_whose_pool_and_datacenters_take_it() -> None:
    """Nomad's createNodeEvals: a node-update evaluation per system job whose node pool and datacenters
    match the node (node_pool "all" takes every node) -- not one per system job in the cluster.  Entries
    written before (without pool_evals) apply as they did: every system job."""
    c = Cluster()
    nid = c.node(0)
    c.apply("node_register", node={**c.state.tables["nodes"][nid], "NodePool": "gpu"})
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["1"]}}
    for jid, pool, dcs in (("here", "gpu", ["*"]), ("every", "all", ["dc1"]), ("default", "default", ["*"]),
                           ("elsewhere", "gpu", ["dc2"])):
        c.register(ID=jid, Type="system", NodePool=pool, Datacenters=dcs,
                   TaskGroups=[{"Name": "g", "Tasks": [task]}])
    c.schedule()

    def evaluated(**flags: Any) -> list[str]:
        c.apply("node_update_eligibility", node_id=nid, eligibility="ineligible")
        res = c.apply("node_update_eligibility", node_id=nid, eligibility="eligible", **flags)
        jobs = sorted(c.state.tables["evals"][e]["JobID"] for e in res["evals"])
        c.schedule()
        return jobs
    assert evaluated(pool_evals=True) == ["every", "here"]
    assert evaluated() == ["default", "elsewhere", "every", "here"]


@pytest.mark.parametrize("job_type", ["system", "sysbatch"])
def test_job_plan_of_a_system_group_counts_no_placement_for_a_node_that_takes_nothing(job_type: str) -> None:
    """Nomad's system scheduler annotates Place with its candidate nodes less each node the placement
    failed on (filtered or exhausted): "nomad job plan" shows no create for them, only the warning."""
    from actors.scheduler.dryrun import plan_job

    c = Cluster()
    for i in range(2):
        c.node(i, cpu=2000)
    c.node(2, cpu=20_000)
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["1"]},
            "Resources": {"CPU": 10_000, "MemoryMB": 64}}
    out = plan_job(c.state, canonical_job({"ID": "sys", "Type": job_type,
                                           "TaskGroups": [{"Name": "g", "Tasks": [task]}]}), True)
    assert out["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 1
    # the first node without room is the failure (its own metrics), the other one more of it
    failed = out["FailedTGAllocs"]["g"]
    assert (failed["NodesExhausted"], failed["CoalescedFailures"]) == (1, 1)


def test_job_plan_of_a_rolling_system_update_counts_every_destructive_update() -> None:
    """Nomad's system scheduler annotates the plan before max_parallel limits the evictions: "nomad job
    plan" shows every node's create/destroy update, not one and the rest ignored."""
    from actors.scheduler.dryrun import plan_job

    c = Cluster()
    for i in range(3):
        c.node(i)

    def sys_job(arg: str) -> dict[str, Any]:
        return _rolling_system_job(arg, max_parallel=1)
    c.register(**sys_job("1"))
    c.schedule()
    c.client("running")
    u = plan_job(c.state, canonical_job(sys_job("2")), True)["Annotations"]["DesiredTGUpdates"]["g"]
    assert {k: v for k, v in u.items() if v} == {"DestructiveUpdate": 3}
