"""Placement as an operator sees it: what ``nomad job plan`` announces, the placement failures a
system job reports and the placement metrics, each against Nomad's scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.scheduler.dryrun import plan_job
from actors.scheduler.job import canonical_job
from tests.test_scheduler import Cluster, _health, service


def _class_is(value: str) -> dict[str, Any]:
    return {"LTarget": "${node.class}", "RTarget": value, "Operand": "="}


def _updates(c: Cluster, job: dict[str, Any]) -> dict[str, int]:
    u = plan_job(c.state, canonical_job(job), True)["Annotations"]["DesiredTGUpdates"]["g"]
    return {k: v for k, v in u.items() if v}


def test_plan_counts_a_held_back_replacement_as_ignored_not_in_place() -> None:
    # Nomad's reconciler: a new version whose constraints its node no longer meets replaces the
    # allocation (genericAllocUpdateFn); max_parallel 1 replaces one now and counts the other Ignore.
    c = Cluster()
    c.node(0, node_class="web")
    c.node(1, node_class="gpu")
    c.register(**service(count=2, cpu=100, group={"Constraints": [_class_is("web")]}))
    c.schedule()
    _health(c)
    moved = service(count=2, cpu=100, group={"Constraints": [_class_is("gpu")]})
    assert _updates(c, moved) == {"DestructiveUpdate": 1, "Ignore": 1}
    # what the plan announced is what the registration does: one replaced on the gpu node, the other
    # left as it is (version 0, on its node) until the replacement is healthy
    c.register(**moved)
    c.schedule()
    assert sorted((a["NodeID"], a.get("JobVersion", 0)) for a in c.running("web")) == [
        ("node-0000", 0), ("node-0001", 1)]


def _failed(c: Cluster, job_id: str) -> dict[str, Any]:
    ev = [e for e in c.state.tables["evals"].values() if e["JobID"] == job_id and e.get("FailedTGAllocs")]
    assert ev, "no failed placement"
    return ev[-1]["FailedTGAllocs"]["g"]


@pytest.mark.parametrize("job_type", ["system", "sysbatch"])
def test_a_system_failure_names_the_class_of_the_node_without_room(job_type: str) -> None:
    # Nomad's system stack tries each node alone (SystemStack.Select resets the metrics): the db node
    # its constraint filters out is no failure, the gpu node without room is (ExhaustedNode counts its
    # class), the web node takes it.
    c = Cluster()
    c.node(0, node_class="db")
    c.node(1, node_class="web")
    c.node(2, node_class="gpu", cpu=500)
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["1"]},
            "Resources": {"CPU": 1000, "MemoryMB": 64}}
    c.register(ID="sys", Type=job_type, Datacenters=["dc1"], TaskGroups=[{
        "Name": "g", "Constraints": [{"LTarget": "${node.class}", "RTarget": "db", "Operand": "!="}],
        "Tasks": [task]}])
    c.schedule()
    assert [a["NodeID"] for a in c.running("sys")] == ["node-0001"]
    m = _failed(c, "sys")
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (1, 0, 1)
    assert m["CoalescedFailures"] == 0
    assert (m.get("ClassExhausted"), m["DimensionExhausted"]) == ({"gpu": 1}, {"cpu": 1})
    assert not m["ConstraintFiltered"] and not m.get("ClassFiltered")


@pytest.mark.parametrize("job_type, warning", [
    ("system", "- WARNING: Failed to place allocations on all nodes."),
    ("service", "- WARNING: Failed to place all allocations.")])
def test_job_plan_words_a_failure_as_nomad_for_the_job_type_and_parts_the_groups(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job_type: str, warning: str) -> None:
    """Nomad's formatDryRun (command/job_plan.go): a system job's warning is its own, and each task
    group's report ends with a blank line (the last one's trimmed)."""
    from runtime import cli, cli_jobs  # noqa: F401 - cli first (it imports cli_jobs), as bin/nomad does

    path = tmp_path / "j.json"
    path.write_text(json.dumps({"Job": {"ID": "j", "Type": job_type, "TaskGroups": [
        {"Name": g, "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}
        for g in ("a", "b")]}}))
    metric = {"NodesEvaluated": 1, "NodesExhausted": 1, "DimensionExhausted": {"cpu": 1}}
    answer = {"FailedTGAllocs": {"a": metric, "b": {**metric, "CoalescedFailures": 1}}, "JobModifyIndex": 0,
              "Annotations": {"DesiredTGUpdates": {}}, "Diff": None}
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, url, *a, **k: answer)
    out, _ = cli_jobs.job_plan("http://x", ["-diff=false", str(path)])
    assert out.split("\n")[:11] == [
        "Scheduler dry-run:", warning,
        '  Task Group "a" (failed to place 1 allocation):',
        "    * Resources exhausted on 1 nodes", '    * Dimension "cpu" exhausted on 1 nodes',
        "",
        '  Task Group "b" (failed to place 2 allocations):',
        "    * Resources exhausted on 1 nodes", '    * Dimension "cpu" exhausted on 1 nodes',
        "", "Job Modify Index: 0"]


def test_plan_counts_a_destructive_update_that_finds_no_node_as_one_not_as_a_placement() -> None:
    # Nomad's reconciler counts a group's updates before anything is placed: a new version no node
    # takes is still "1 create/destroy update, 1 ignore" (max_parallel 1), the failure reported
    # apart; the allocation it would replace keeps running (PopUpdate).
    c = Cluster()
    c.node(0, node_class="web")
    c.register(**service(count=2, cpu=100, group={"Constraints": [_class_is("web")]}))
    c.schedule()
    _health(c)
    nowhere = service(count=2, cpu=100, group={"Constraints": [_class_is("gpu")]})
    planned = plan_job(c.state, canonical_job(nowhere), True)
    u = {k: v for k, v in planned["Annotations"]["DesiredTGUpdates"]["g"].items() if v}
    assert u == {"DestructiveUpdate": 1, "Ignore": 1}
    assert planned["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"${node.class} = gpu": 1}
    c.register(**nowhere)
    c.schedule()
    assert len(c.running("web")) == 2


def test_an_evaluation_keeps_its_plan_annotations_as_nomads_does() -> None:
    # Nomad 1.11+ (setStatus): every evaluation the scheduler completes keeps its reconciler's counts
    # per task group, which "nomad eval status" shows as "Plan Annotations".
    c = Cluster()
    c.node(0, cpu=1000)
    c.register(**service(count=3, cpu=400))
    c.schedule()
    ev = next(e for e in c.state.tables["evals"].values() if e["TriggeredBy"] == "job-register")
    g = ev["PlanAnnotations"]["DesiredTGUpdates"]["g"]
    assert {k: v for k, v in g.items() if v} == {"Place": 3}  # two placed, one failed: still placed
    c.client("running")
    c.register(**service(count=3, cpu=400, Priority=70))  # the same tasks: updated in place
    c.schedule()
    ev = max((e for e in c.state.tables["evals"].values() if e["TriggeredBy"] == "job-register"),
             key=lambda e: e["CreateIndex"])
    g = ev["PlanAnnotations"]["DesiredTGUpdates"]["g"]
    assert {k: v for k, v in g.items() if v} == {"InPlaceUpdate": 2, "Place": 1}


def test_eval_status_prints_the_plan_annotations_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nomad's formatPlanAnnotations (command/eval_status.go): five columns always, a further one only
    when some group has a count in it (every one with -verbose)."""
    from runtime import cli, cli_jobs  # noqa: F401 - cli first (it imports cli_jobs), as bin/nomad does

    eid = "e" * 8 + "-0000-0000-0000-000000000000"
    zero = {"Ignore": 0, "Place": 0, "Migrate": 0, "Stop": 0, "InPlaceUpdate": 0, "DestructiveUpdate": 0,
            "Canary": 0, "Preemptions": 0, "Disconnect": 0, "Reconnect": 0, "RescheduleNow": 0,
            "RescheduleLater": 0}
    ev = {"ID": eid, "JobID": "web", "Status": "complete", "TriggeredBy": "job-register", "Priority": 50,
          "PlanAnnotations": {"DesiredTGUpdates": {"web": {**zero, "Place": 2, "Ignore": 1},
                                                   "db": {**zero, "DestructiveUpdate": 1, "Canary": 1}}}}

    def answer(addr: str, method: str, path: str, *a: Any, **k: Any) -> Any:
        if path.startswith("/v1/evaluations"):
            return [ev]
        return [] if path.endswith("/allocations") else ev
    monkeypatch.setattr(cli_jobs, "request", answer)
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, ident: ev)
    out = cli_jobs.eval_status("http://x", [eid])
    assert out.split("\n")[-4:] == [
        "Plan Annotations",
        "Task Group  Ignore  Place  Stop  InPlace  Destructive  Canary",
        "db          0       0      0     0        1            1",
        "web         1       2      0     0        0            0"]
    wide = cli_jobs.eval_status("http://x", ["-verbose", eid]).split("\n")[-3]
    assert wide.split() == ["Task", "Group", "Ignore", "Place", "Stop", "InPlace", "Destructive", "Migrate",
                            "Canary", "Preemptions", "Reschedule", "Now", "Reschedule", "Later", "Disconnect",
                            "Reconnect"]


def test_a_value_spread_targets_at_zero_percent_scores_the_lowest_boost_seen() -> None:
    # Nomad's SpreadIterator: a value whose target is 0% scores lowestSpreadBoost, the lowest boost any
    # node has had in the evaluation (-1 at first, lower once a value is over its target by more than
    # its whole target).
    from actors.http_jobs import alloc_out

    c = Cluster()
    c.node(0, cpu=8000, meta={"rack": "r1"})
    c.node(1, cpu=8000, meta={"rack": "r2"})
    c.node(2, cpu=100, meta={"rack": "r3"})
    spread = {"Attribute": "${meta.rack}", "Weight": 100,
              "SpreadTarget": [{"Value": "r1", "Percent": 10}, {"Value": "r2", "Percent": 0}]}
    c.register(**service(count=10, cpu=100, group={"Spreads": [spread]}))
    c.schedule()
    last = max(c.running("web"), key=lambda a: a["Name"].split("[")[1].zfill(4))
    rows = {s["NodeID"]: s["Scores"] for s in alloc_out(last)["Metrics"]["ScoreMetaData"]}
    # by then r1 holds more than twice its target (one allocation): its boost, and so r2's, went below -1
    assert rows["node-0001"]["allocation-spread"] <= -2


def test_alike_nodes_are_filtered_once_by_reason_then_as_their_computed_class() -> None:
    # Nomad's FeasibilityWrapper and EvalEligibility: a node whose computed class already failed the
    # job's (or the group's) checks in this evaluation is "computed class ineligible"; constraints on a
    # node's unique fields escape the classes, so each node is then named by its own reason.
    from actors.http_api import _public_node
    from actors.scheduler.scheduler import FILTER_CLASS_INELIGIBLE, computed_class

    c = Cluster()
    for i in range(4):
        c.node(i, node_class="web", meta={"rack": "r1"})
    c.node(4, node_class="web", meta={"rack": "r2"})
    nodes = c.state.tables["nodes"]
    assert computed_class(nodes["node-0000"]) == computed_class(nodes["node-0003"]) \
        != computed_class(nodes["node-0004"])
    assert _public_node(nodes["node-0000"])["ComputedClass"] == computed_class(nodes["node-0000"])
    rack = {"LTarget": "${meta.rack}", "RTarget": "r9", "Operand": "="}
    c.register(**service("grp", count=1, group={"Constraints": [rack]}))
    by_name = {"LTarget": "${node.unique.name}", "RTarget": "nowhere", "Operand": "="}
    c.register(**service("uniq", count=1, group={"Constraints": [by_name]}))
    windows = {"LTarget": "${attr.kernel.name}", "RTarget": "windows", "Operand": "="}
    two = service("two", count=1, Constraints=[windows])
    two["TaskGroups"] = [{**two["TaskGroups"][0], "Name": name} for name in ("a", "b")]
    c.register(**two)
    c.schedule()

    def failed(job_id: str, group: str = "g") -> dict[str, int]:
        (ev,) = [e for e in c.state.tables["evals"].values()
                 if e["JobID"] == job_id and e.get("FailedTGAllocs") and e["TriggeredBy"] == "job-register"]
        return ev["FailedTGAllocs"][group]["ConstraintFiltered"]
    assert failed("grp") == {"${meta.rack} = r9": 2, FILTER_CLASS_INELIGIBLE: 3}
    assert failed("uniq") == {"${node.unique.name} = nowhere": 5}
    # the job's ineligibility is the evaluation's: the second group finds every class already ruled out
    assert failed("two", "a") == {"${attr.kernel.name} = windows": 2, FILTER_CLASS_INELIGIBLE: 3}
    assert failed("two", "b") == {FILTER_CLASS_INELIGIBLE: 5}


def test_plan_annotations_count_the_reschedules_now_and_later() -> None:
    # Nomad's reconciler (#26255): DesiredUpdates.RescheduleLater counts the failed allocations a
    # follow-up evaluation replaces after their delay, RescheduleNow those replaced now (also a Stop).
    from tests.test_scheduler import SEC, _fail, _run_due

    c = Cluster()
    c.node(0)
    c.register(**service(count=2, cpu=100, group={"ReschedulePolicy": {
        "Delay": 5 * SEC, "DelayFunction": "constant", "Unlimited": True}}))
    c.schedule()
    c.client("running")
    _fail(c, c.running("web")[0]["ID"])
    c.schedule(due_only=True)
    evals = sorted(c.state.tables["evals"].values(), key=lambda e: e["CreateIndex"])
    failure = next(e for e in evals if e["TriggeredBy"] == "alloc-failure" and e.get("PlanAnnotations"))
    assert {k: v for k, v in failure["PlanAnnotations"]["DesiredTGUpdates"]["g"].items() if v} == \
        {"Ignore": 1, "RescheduleLater": 1}
    c.now += 6
    _run_due(c)
    evals = sorted(c.state.tables["evals"].values(), key=lambda e: e["CreateIndex"])
    later = [e for e in evals if e.get("PlanAnnotations")][-1]
    assert {k: v for k, v in later["PlanAnnotations"]["DesiredTGUpdates"]["g"].items() if v} == \
        {"Ignore": 1, "Place": 1, "Stop": 1, "RescheduleNow": 1}


def test_each_placement_is_timed_by_the_runtime_clock() -> None:
    # Nomad's Select sets AllocationTime (time.Since(start)), shown by "alloc status -verbose" as
    # "Allocation Time"; here the runtime's clock (env.now) times it, a failed one too.
    from actors.http_jobs import alloc_out, eval_out
    from actors.scheduler.broker import pending_evals, plan_batch_command

    ticks = iter(range(1_000_000))

    def clock() -> float:  # a millisecond more at every reading
        return next(ticks) / 1000

    c = Cluster()
    c.node(0, cpu=1000)
    c.register(**service(count=3, cpu=400))
    ids = tuple(eval_id for _, _, eval_id, _ in sorted(pending_evals(c.state)))
    data, _, _ = plan_batch_command(c.state, ids, c.now, clock=clock)
    c.index += 1
    c.state.apply(c.index, data)
    times = {alloc_out(a)["Metrics"]["AllocationTime"] for a in c.running("web")}
    assert times == {1_000_000}  # two placed, each over one millisecond
    ev = eval_out(c.state.tables["evals"][ids[0]])
    assert ev["FailedTGAllocs"]["g"]["AllocationTime"] == 1_000_000
    # untimed (the simulator's frozen clock, or none): 0, as before
    c.register(**service("other", count=1, cpu=100))
    c.schedule()
    assert alloc_out(c.running("other")[0])["Metrics"]["AllocationTime"] == 0


def test_a_sticky_replacements_preferred_node_marks_its_computed_class() -> None:
    # Nomad's SelectPreferringNodes runs the same stack (and FeasibilityWrapper) on the previous node
    # first: a preferred node the new version rules out marks its computed class ineligible, so the
    # fallback Select filters every node of that class as such.
    from actors.http_jobs import alloc_out
    from actors.scheduler.scheduler import FILTER_CLASS_INELIGIBLE

    c = Cluster()
    c.node(0, meta={"rack": "r1"})
    c.node(1, meta={"rack": "r1"})
    c.node(2, meta={"rack": "r2"})
    sticky = {"EphemeralDisk": {"Sticky": True, "SizeMB": 300}}
    c.register(**service(count=1, cpu=100, group={**sticky, "Constraints": [
        {"LTarget": "${node.unique.name}", "RTarget": "n0", "Operand": "="}]}))
    c.schedule()
    c.client("running")
    assert [a["NodeID"] for a in c.running("web")] == ["node-0000"]
    c.register(**service(count=1, cpu=200, Update={"MaxParallel": 0}, group={**sticky, "Constraints": [
        {"LTarget": "${meta.rack}", "RTarget": "r2", "Operand": "="}]}))
    c.schedule()
    (placed,) = c.running("web")
    assert placed["NodeID"] == "node-0002"
    assert alloc_out(placed)["Metrics"]["ConstraintFiltered"] == {FILTER_CLASS_INELIGIBLE: 2}
