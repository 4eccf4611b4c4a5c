"""Why nodes were filtered: Nomad's AllocMetric.ConstraintFiltered keys (a constraint's String(),
"missing drivers", "distinct_hosts") and ClassFiltered, on placement failures (an evaluation's
FailedTGAllocs) and on placed allocations' Metrics, remembered by the feasibility cache."""

from __future__ import annotations

from typing import Any

import pytest

import runtime.cli  # noqa: F401  (runtime.cli_jobs is imported through it)
from actors.http_jobs import alloc_out
from actors.scheduler.job import canonical_job, constraint_ok
from actors.scheduler.scheduler import FILTER_CLASS_INELIGIBLE, constraint_key
from runtime.cli_jobs import alloc_metrics
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(60)


def _node(c: Cluster, i: int, *, cls: str = "", pool: str = "default", dc: str = "dc1",
          drivers: tuple[str, ...] = ("raw_exec",), attrs: dict[str, str] | None = None,
          meta: dict[str, str] | None = None) -> str:
    nid = f"node-{i:04d}"
    rec = {"ID": nid, "SecretID": "s", "Name": f"n{i}", "Datacenter": dc, "NodePool": pool, "NodeClass": cls,
           "Attributes": {"kernel.name": "linux", "nomad.version": "2.0.6", **(attrs or {})},
           "Meta": dict(meta or {}),
           "Drivers": {d: {"Detected": True, "Healthy": True} for d in drivers},
           "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192},
                             "Disk": {"DiskMB": 100_000}},
           "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0}}}
    c.apply("node_register", node=rec)
    c.apply("node_update_status", node_id=nid, status="ready")
    return nid


def _failed(c: Cluster, job_id: str) -> dict[str, Any]:
    ev = [e for e in c.state.tables["evals"].values() if e["JobID"] == job_id and e.get("FailedTGAllocs")]
    assert ev, "no failed placement"
    return ev[-1]["FailedTGAllocs"]["g"]


def _placed_metrics(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    return [alloc_out(a)["Metrics"]
            for a in sorted(c.state.tables["allocs"].values(), key=lambda a: a["Name"])
            if a["JobID"] == job_id and a["DesiredStatus"] == "run"]


def _con(ltarget: str, operand: str, rtarget: str = "") -> dict[str, str]:
    return {"LTarget": ltarget, "Operand": operand, "RTarget": rtarget}


def test_constraint_key_is_nomads_constraint_string():
    assert constraint_key(_con("${attr.kernel.name}", "=", "windows")) == "${attr.kernel.name} = windows"
    assert constraint_key(_con("${meta.rack}", "regexp", "r1")) == "${meta.rack} regexp r1"
    assert constraint_key(_con("${attr.nomad.version}", "version", ">= 9.0")) == \
        "${attr.nomad.version} version >= 9.0"
    assert constraint_key(_con("", "distinct_hosts", "true")) == " distinct_hosts true"


@pytest.mark.parametrize(("where", "constraint", "key"), [
    ("job", _con("${attr.kernel.name}", "=", "windows"), "${attr.kernel.name} = windows"),
    ("group", _con("${meta.rack}", "regexp", "^r9"), "${meta.rack} regexp ^r9"),
    ("task", _con("${attr.nomad.version}", "version", ">= 9.0"), "${attr.nomad.version} version >= 9.0"),
    ("group", _con("${meta.tags}", "set_contains", "ssd,gpu"), "${meta.tags} set_contains ssd,gpu"),
    ("task", _con("${meta.tags}", "set_contains_any", "gpu, tpu"), "${meta.tags} set_contains_any gpu, tpu"),
])
def test_a_constraint_that_filters_every_node_is_named_in_the_failure(where, constraint, key):
    c = Cluster()
    for i in range(3):
        _node(c, i, cls="small" if i < 2 else "", meta={"rack": "r1", "tags": "ssd, nvme"})
    job = service("web", count=1)
    if where == "job":
        job["Constraints"] = [constraint]
    elif where == "group":
        job["TaskGroups"][0]["Constraints"] = [constraint]
    else:
        job["TaskGroups"][0]["Tasks"][0]["Constraints"] = [constraint]
    c.register(**job)
    c.schedule()
    m = _failed(c, "web")
    assert m["NodesEvaluated"] == 3 and m["NodesFiltered"] == 3
    # the two "small" nodes are alike (one computed class): Nomad checks the first, and filters the
    # other as its class, "computed class ineligible"
    assert m["ConstraintFiltered"] == {key: 2, FILTER_CLASS_INELIGIBLE: 1}
    assert m["ClassFiltered"] == {"small": 2}  # a node without a class is counted by reason alone
    assert f'Constraint "{key}": 2 nodes excluded by filter' in alloc_metrics(m)
    assert 'Class "small": 2 nodes excluded by filter' in alloc_metrics(m)
    assert not any("not ready, ineligible" in line for line in alloc_metrics(m))


def test_set_contains_operators_match_as_nomads():
    node = {"Meta": {"tags": "ssd, nvme,gpu"}}
    assert constraint_ok(_con("${meta.tags}", "set_contains", "ssd,gpu"), node)
    assert constraint_ok(_con("${meta.tags}", "set_contains_all", "nvme"), node)
    assert not constraint_ok(_con("${meta.tags}", "set_contains", "ssd,tpu"), node)
    assert constraint_ok(_con("${meta.tags}", "set_contains_any", "tpu, gpu"), node)
    assert not constraint_ok(_con("${meta.tags}", "set_contains_any", "tpu"), node)
    assert not constraint_ok(_con("${meta.missing}", "set_contains", "ssd"), node)
    job = canonical_job({**service("x"), "Constraints": [_con("${meta.tags}", "set_contains_any", "a")]})
    assert job["Constraints"][0]["Operand"] == "set_contains_any"


def test_a_missing_driver_is_named_and_a_placed_allocation_keeps_the_reason():
    c = Cluster()
    _node(c, 0, cls="gpu", drivers=("docker",))
    _node(c, 1)
    c.register(**service("web", count=1))
    c.schedule()
    (m,) = _placed_metrics(c, "web")
    # The placement visits both nodes only when the driverless one comes first: then it is named.
    if m["NodesFiltered"]:
        assert m["ConstraintFiltered"] == {"missing drivers": 1} and m["ClassFiltered"] == {"gpu": 1}
    c.register(**{**service("docker-only", count=1),
                  "TaskGroups": [{**service()["TaskGroups"][0],
                                  "Tasks": [{**service()["TaskGroups"][0]["Tasks"][0], "Driver": "exec"}]}]})
    c.schedule()
    m = _failed(c, "docker-only")  # every attempt's counts: both nodes each time
    assert m["ConstraintFiltered"] == {"missing drivers": m["NodesFiltered"]} and m["NodesFiltered"] % 2 == 0
    assert m["ClassFiltered"] == {"gpu": m["NodesFiltered"] // 2}


def test_placed_allocations_metrics_name_the_constraint_and_class():
    c = Cluster()
    for i in range(6):
        _node(c, i, cls="linux", attrs={"kernel.name": "linux" if i else "windows"})
    job = service("web", count=6, Constraints=[_con("${attr.kernel.name}", "=", "linux")],
                  group={"Constraints": [_con("", "distinct_hosts", "true")]})
    c.register(**job)
    c.schedule()
    metrics = _placed_metrics(c, "web")
    assert len(metrics) == 5  # the windows node takes none
    seen: dict[str, int] = {}
    for m in metrics:
        filtered = m["ConstraintFiltered"] or {}
        assert sum(filtered.values()) == m["NodesFiltered"]
        assert set(filtered) <= {"${attr.kernel.name} = linux", "distinct_hosts", FILTER_CLASS_INELIGIBLE}
        assert (m["ClassFiltered"] or {}).get("linux", 0) == m["NodesFiltered"]
        for k, v in filtered.items():
            seen[k] = seen.get(k, 0) + v
    assert seen.get("distinct_hosts") and seen.get("${attr.kernel.name} = linux")
    m = _failed(c, "web")  # the sixth: every node filtered, by its kernel (or its class) or distinct_hosts
    assert m["ConstraintFiltered"]["distinct_hosts"] == 5
    assert m["ConstraintFiltered"].get("${attr.kernel.name} = linux", 0) \
        + m["ConstraintFiltered"].get(FILTER_CLASS_INELIGIBLE, 0) == 1
    assert sum(m["ConstraintFiltered"].values()) == m["NodesFiltered"] == m["ClassFiltered"]["linux"]
    assert m["NodesExhausted"] == 0


def test_the_first_failing_check_names_a_node_in_nomads_order():
    """Nomad checks the job's constraints, then the drivers, then the group's and tasks' constraints."""
    c = Cluster()
    _node(c, 0, drivers=("docker",))
    job = service("web", count=1, Constraints=[_con("${attr.kernel.name}", "=", "windows")],
                  group={"Constraints": [_con("${meta.rack}", "=", "r1")]})
    c.register(**job)
    c.schedule()
    assert _failed(c, "web")["ConstraintFiltered"] == {"${attr.kernel.name} = windows": 1}
    c.register(**service("web2", count=1, group={"Constraints": [_con("${meta.rack}", "=", "r1")]}))
    c.schedule()
    assert _failed(c, "web2")["ConstraintFiltered"] == {"missing drivers": 1}


@pytest.mark.parametrize("mismatch", ["datacenter", "pool"])
def test_nodes_outside_the_jobs_datacenters_or_pool_are_not_named_by_a_constraint(mismatch):
    """As in Nomad, a node in another datacenter or node pool is not one the job's stack visits: it is
    neither evaluated nor filtered, and the failure says no nodes were eligible for evaluation."""
    c = Cluster()
    c.apply("node_pool_upsert", pools=[{"Name": "gpu"}])
    _node(c, 0, dc="dc2" if mismatch == "datacenter" else "dc1",
          pool="gpu" if mismatch == "pool" else "default")
    c.register(**service("web", count=1))
    c.schedule()
    m = _failed(c, "web")
    assert m["ConstraintFiltered"] == {} and "ClassFiltered" not in m
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (0, 0, 0)
    assert (m["NodesInPool"], m["NodesAvailable"], m["NodePool"]) == (0, {}, "default")
    assert alloc_metrics(m) == ["No nodes were eligible for evaluation"]


def test_a_failure_counts_only_the_nodes_in_the_jobs_datacenters_and_pool():
    """Nomad's failed-group AllocMetric: the nodes of other datacenters or pools (and those not ready)
    are not evaluated; NodesInPool and NodesAvailable count the ready ones of the job's."""
    c = Cluster()
    c.apply("node_pool_upsert", pools=[{"Name": "gpu"}])
    for i in range(3):
        _node(c, i)
    _node(c, 3, dc="dc2")
    _node(c, 4, pool="gpu")
    c.register(**service("web", count=1, cpu=10_000))
    c.schedule()
    m = _failed(c, "web")
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (3, 0, 3)
    assert (m["NodesInPool"], m["NodesAvailable"], m["NodePool"]) == (3, {"dc1": 3}, "default")
    assert alloc_metrics(m) == ["Resources exhausted on 3 nodes", 'Dimension "cpu" exhausted on 3 nodes']


def test_a_system_failure_counts_only_the_nodes_in_the_jobs_datacenters_and_pool():
    c = Cluster()
    for i in range(2):
        _node(c, i)
    _node(c, 2, dc="dc2")
    g = service()["TaskGroups"][0]
    c.register(**{**service("sys", count=1), "Type": "system",
                  "TaskGroups": [{**g, "Count": 1, "Tasks": [
                      {**g["Tasks"][0], "Resources": {"CPU": 100_000, "MemoryMB": 64}}]}]})
    c.schedule()
    m = _failed(c, "sys")
    # Nomad's system stack tries each node alone: the first without room is the failure, the other
    # one of its CoalescedFailures
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (1, 0, 1)
    assert m["CoalescedFailures"] == 1
    assert (m["NodesInPool"], m["NodesAvailable"]) == (2, {"dc1": 2})


def test_the_cached_reason_is_counted_again_for_later_evaluations():
    c = Cluster()
    for i in range(2):
        _node(c, i)
    con = [_con("${attr.kernel.name}", "=", "windows")]
    c.register(**service("a", count=1, Constraints=con))
    c.register(**service("b", count=1, Constraints=con))  # the same shape: the store's cache answers
    c.schedule()
    assert _failed(c, "a")["ConstraintFiltered"] == _failed(c, "b")["ConstraintFiltered"] == \
        {"${attr.kernel.name} = windows": 1, FILTER_CLASS_INELIGIBLE: 1}  # the two nodes are alike


def test_a_system_failure_is_the_node_without_room_not_the_nodes_filtered_out():
    """Nomad's SystemScheduler.computePlacements: a node that filters the group out is no failure
    (only "omitted from the job status"); the failure is the metrics of the node that had no room."""
    c = Cluster()
    for i in range(2):
        _node(c, i, cls="edge")
    _node(c, 2, attrs={"kernel.name": "windows"})
    c.register(**{**service("sys", count=1), "Type": "system",
                  "Constraints": [_con("${attr.kernel.name}", "=", "windows")],
                  "TaskGroups": [{**service()["TaskGroups"][0], "Count": 1, "Tasks": [
                      {**service()["TaskGroups"][0]["Tasks"][0],
                       "Resources": {"CPU": 100_000, "MemoryMB": 64}}]}]})
    c.schedule()
    m = _failed(c, "sys")
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (1, 0, 1)
    assert not m["ConstraintFiltered"] and not m.get("ClassFiltered")
    assert m["DimensionExhausted"] == {"cpu": 1}


def test_a_failure_reports_its_first_failed_placements_metrics_and_coalesces_the_rest():
    """Nomad's FailedTGAllocs: each placement's Select starts new metrics; the group's first failure's
    are kept and later ones only counted (CoalescedFailures), so no node is counted twice."""
    c = Cluster()
    for i in range(3):
        _node(c, i, cls="edge")
    c.register(**service("web", count=5, cpu=3000))  # one fits per node: three placed, two fail
    c.schedule()
    m = _failed(c, "web")
    assert (m["NodesEvaluated"], m["NodesExhausted"], m["CoalescedFailures"]) == (3, 3, 1)
    assert m["DimensionExhausted"] == {"cpu": 3} and m["ClassExhausted"] == {"edge": 3}
    assert alloc_metrics(m) == ["Resources exhausted on 3 nodes", 'Class "edge" exhausted on 3 nodes',
                                'Dimension "cpu" exhausted on 3 nodes']


def test_a_groups_first_placement_names_why_nodes_were_filtered_or_exhausted():
    c = Cluster()
    _node(c, 0, attrs={"kernel.name": "windows"})
    _node(c, 1)
    full = _node(c, 2)
    c.apply("node_register", node={**c.state.tables["nodes"][full], "NodeMaxAllocs": 1})
    c.register(**service("other", count=1, Constraints=[_con("${node.unique.id}", "=", full)]))
    c.schedule()
    c.register(**service("web", count=1, Constraints=[_con("${attr.kernel.name}", "=", "linux")]))
    c.schedule()
    (m,) = _placed_metrics(c, "web")
    assert (m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"]) == (3, 1, 1)
    assert m["ConstraintFiltered"] == {"${attr.kernel.name} = linux": 1} and not m.get("ClassFiltered")
    assert m["DimensionExhausted"] == {"max allocation exceeded": 1}


@pytest.mark.parametrize("job_type", ["system", "sysbatch"])
def test_a_system_group_every_node_filters_out_is_a_failure_without_a_blocked_eval(job_type: str):
    """Nomad's computePlacements: a filtered node is not reported -- unless every node tried filtered
    the group out and it has no allocation anywhere; then the filtered metrics are its failure (the
    evaluation completes with FailedTGAllocs, "nomad job run" exits 2), and no blocked evaluation waits
    (addBlocked is for exhausted nodes only).  One node that fits makes the others' filtering silent."""
    c = Cluster()
    for i in range(2):
        _node(c, i, cls="edge")
    con = [_con("${node.class}", "=", "gpu")]
    c.register(**{**service("sys", count=1), "Type": job_type, "Constraints": con,
                  "TaskGroups": [{**service()["TaskGroups"][0], "Count": 1}]})
    c.schedule()
    m = _failed(c, "sys")
    assert m["ConstraintFiltered"] == {"${node.class} = gpu": 2} and m["ClassFiltered"] == {"edge": 2}
    assert not [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    _node(c, 2, cls="gpu")
    c.register(**{**service("other", count=1), "Type": job_type, "Constraints": con,
                  "TaskGroups": [{**service()["TaskGroups"][0], "Count": 1}]})
    c.schedule()
    assert not [e for e in c.state.tables["evals"].values() if e["JobID"] == "other" and e["FailedTGAllocs"]]
