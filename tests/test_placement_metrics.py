"""Placement metrics (Nomad's AllocMetric on every placed allocation) and the number of nodes a placement
scores (Nomad's LimitIterator, MaxSkip and NodeLimitForFeasibilityChecks), on small deterministic
clusters driven through the state machine as in tests/test_scheduler.py."""

from __future__ import annotations

from typing import Any

import pytest

from actors.http_jobs import alloc_out
from actors.scheduler.scheduler import TOP_SCORES_KEPT, fit_score, metric_out, stored_metric
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(60)

BASE_SCORERS = {"binpack", "job-anti-affinity", "node-reschedule-penalty", "node-affinity"}


def _allocs(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    return sorted((a for a in c.state.tables["allocs"].values() if a["JobID"] == job_id
                   and a["DesiredStatus"] == "run"), key=lambda a: a["CreateIndex"])


def _metrics(a: dict[str, Any]) -> dict[str, Any]:
    """The allocation's Metrics as the API answers them."""
    return alloc_out(a)["Metrics"]


def test_a_placement_keeps_its_counts_its_pool_and_the_scores_of_the_nodes_it_scored():
    c = Cluster()
    for i in range(3):
        c.node(i, cpu=2000 * (i + 1), mem=4096 * (i + 1))  # different sizes: different bin-packing scores
    c.node(3, dc="dc2")  # another datacenter: not one the job may use, so not evaluated
    c.node(4, drivers=("docker",))  # in the pool, but without the driver: evaluated and filtered
    c.node(5, status="down")  # not ready: not in the pool
    c.register(**service("web", count=1, cpu=500, mem=256))
    c.schedule()
    (a,) = _allocs(c, "web")
    m = _metrics(a)
    assert (m["NodesInPool"], m["NodesAvailable"], m["NodePool"]) == (4, {"dc1": 4}, "default")
    # Four nodes in the pool (Nomad's base nodes): ceil(log2 4) = 2 of the three with the driver scored.
    scored = m["ScoreMetaData"]
    assert len(scored) == 2 and m["NodesEvaluated"] - m["NodesFiltered"] == 2
    assert m["NodesEvaluated"] <= 3 and m["NodesFiltered"] <= 1 and m["NodesExhausted"] == 0
    assert {s["NodeID"] for s in scored} <= {"node-0000", "node-0001", "node-0002"}
    assert [s["NormScore"] for s in scored] == sorted((s["NormScore"] for s in scored), reverse=True)
    assert scored[0]["NodeID"] == a["NodeID"]  # the best one won
    for s in scored:
        node = c.state.tables["nodes"][s["NodeID"]]
        cap = (node["NodeResources"]["Cpu"]["CpuShares"], node["NodeResources"]["Memory"]["MemoryMB"])
        assert s["Scores"] == {"binpack": fit_score(cap, (500, 256)), "job-anti-affinity": 0.0,
                               "node-reschedule-penalty": 0.0, "node-affinity": 0.0}
        assert s["NormScore"] == s["Scores"]["binpack"]
    assert m["CoalescedFailures"] == 0 and m["AllocationTime"] == 0
    # The node without the driver, when it was visited, is named by its reason.
    assert m["ConstraintFiltered"] == ({"missing drivers": 1} if m["NodesFiltered"] else None)


def test_a_node_running_the_group_is_penalised_and_passed_over_while_others_remain():
    """Job anti-affinity makes a busy node score below 0, and Nomad's LimitIterator skips up to 3 such
    nodes without counting them: the one free node is found even past the limit of 2."""
    c = Cluster()
    for i in range(4):
        c.node(i)
    c.register(**service("web", count=3, cpu=100, mem=64))
    c.schedule()
    first = _allocs(c, "web")
    assert len({a["NodeID"] for a in first}) == 3
    c.register(**service("web", count=4, cpu=100, mem=64))
    c.schedule()
    allocs = _allocs(c, "web")
    assert len(allocs) == 4 and len({a["NodeID"] for a in allocs}) == 4
    m = _metrics(allocs[-1])
    assert m["NodesEvaluated"] == 4 and len(m["ScoreMetaData"]) == 4
    best, *busy = m["ScoreMetaData"]
    assert best["NodeID"] == allocs[-1]["NodeID"] and best["Scores"]["job-anti-affinity"] == 0.0
    for s in busy:  # (binpack + -(1 + 1) / 4) / 2, below 0
        assert s["Scores"]["job-anti-affinity"] == -0.5
        assert s["NormScore"] == pytest.approx((s["Scores"]["binpack"] - 0.5) / 2) and s["NormScore"] < 0


def test_a_batch_job_scores_two_nodes_and_a_service_job_log2_of_the_nodes():
    c = Cluster()
    for i in range(16):
        c.node(i)
    c.register(**{**service("b", count=1), "Type": "batch"})
    c.register(**service("s", count=1))
    c.schedule()
    assert len(_metrics(_allocs(c, "b")[0])["ScoreMetaData"]) == 2  # Nomad: the power of two choices
    assert _metrics(_allocs(c, "s")[0])["NodesEvaluated"] == 4  # ceil(log2 16)


def _affinity_job(job_id: str, count: int) -> dict[str, Any]:
    return service(job_id, count=count, cpu=100, mem=64,
                   Affinities=[{"LTarget": "${attr.rack}", "RTarget": "r1", "Operand": "=", "Weight": 50}])


def test_with_affinities_the_configured_node_limit_decides_how_many_nodes_are_scored():
    c = Cluster()
    for i in range(10):
        c.node(i, attrs={"rack": "r1" if i % 2 else "r2"})
    c.register(**_affinity_job("all", 1))
    c.schedule()
    m = _metrics(_allocs(c, "all")[0])
    assert m["NodesEvaluated"] == 10  # the default limit, 100: every node
    assert len(m["ScoreMetaData"]) == TOP_SCORES_KEPT  # Nomad keeps the best 5
    top = m["ScoreMetaData"][0]
    assert top["Scores"]["node-affinity"] == 1.0
    assert top["NormScore"] == pytest.approx((top["Scores"]["binpack"] + 1.0) / 2)
    rack2 = [s for s in m["ScoreMetaData"] if s["Scores"]["node-affinity"] == 0.0]
    for s in rack2:  # a node the affinity does not match scores 0 for it, and that counts (Nomad 1.10.2)
        assert s["NormScore"] == pytest.approx(s["Scores"]["binpack"] / 2)

    c.apply("scheduler_set_config", config={"NodeLimitForFeasibilityChecks": 3})
    c.register(**_affinity_job("three", 1))
    c.register(**_affinity_job("count", 6))
    c.schedule()
    assert _metrics(_allocs(c, "three")[0])["NodesEvaluated"] == 3
    # A group of more allocations than the limit scores as many nodes as its count.
    assert _metrics(_allocs(c, "count")[0])["NodesEvaluated"] == 6


def test_system_placements_evaluate_their_node_alone_and_failures_count_the_pool_only():
    c = Cluster()
    for i in range(3):
        c.node(i)
    c.node(3, status="down")
    c.register(**{**service("sys", count=1), "Type": "system"})
    c.register(**service("huge", count=2, cpu=100_000))
    c.schedule()
    allocs = _allocs(c, "sys")
    assert len(allocs) == 3
    for a in allocs:
        m = _metrics(a)
        assert (m["NodesEvaluated"], m["NodesInPool"]) == (1, 3)
        (s,) = m["ScoreMetaData"]
        assert s["NodeID"] == a["NodeID"] and set(s["Scores"]) == {"binpack"}
        assert s["NormScore"] == s["Scores"]["binpack"]
    ev = next(e for e in c.state.tables["evals"].values() if e["JobID"] == "huge" and e.get("FailedTGAllocs"))
    failed = ev["FailedTGAllocs"]["g"]
    # Nomad's: the first failed placement's metrics, the second as a coalesced failure, over the ready
    # nodes of the job's datacenters and pool only (its stack never visits the down node), with Nomad's
    # NodesInPool, NodesAvailable and NodePool.
    assert failed == {"NodesEvaluated": 3, "NodesFiltered": 0, "NodesExhausted": 3, "ConstraintFiltered": {},
                      "DimensionExhausted": {"cpu": 3}, "CoalescedFailures": 1, "NodesInPool": 3,
                      "NodesAvailable": {"dc1": 3}, "NodePool": "default"}


def test_a_stored_metric_becomes_nomads_alloc_metric():
    rows = ["n1", 0.5, 0, -1.0, 0, 0, 0.25, "n2", 0.25, -0.5, 0, 0.5, 0.3, 0.1]
    stored = stored_metric("generic", 4, 1, 1, 3, "default", {"dc1": 3}, {"DimensionExhausted": {"cpu": 1}},
                           rows)
    assert metric_out(stored) == {
        "NodesEvaluated": 4, "NodesFiltered": 1, "NodesExhausted": 1, "NodesInPool": 3, "NodePool": "default",
        "NodesAvailable": {"dc1": 3}, "DimensionExhausted": {"cpu": 1}, "ScoreMetaData": [
            {"NodeID": "n1", "Scores": {"binpack": 0.5, "job-anti-affinity": 0.0,
                                        "node-reschedule-penalty": -1.0, "node-affinity": 0.0},
             "NormScore": 0.25},
            {"NodeID": "n2", "Scores": {"binpack": 0.25, "job-anti-affinity": -0.5,
                                        "node-reschedule-penalty": 0.0, "node-affinity": 0.5,
                                        "allocation-spread": 0.3}, "NormScore": 0.1}]}
    system = metric_out(stored_metric("system", 1, 0, 0, 3, "default", {"dc1": 3}, None, ["n1", 0.5, 0.5]))
    assert system["ScoreMetaData"] == [{"NodeID": "n1", "Scores": {"binpack": 0.5}, "NormScore": 0.5}]
    assert metric_out(None) is None


def test_alloc_status_verbose_prints_nomads_placement_metrics():
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    placement_metrics = cli_jobs.placement_metrics

    m = {"NodesEvaluated": 3, "NodesFiltered": 1, "NodesExhausted": 1, "NodesAvailable": {"dc1": 3, "dc2": 0},
         "ConstraintFiltered": {"missing drivers": 1}, "DimensionExhausted": {"memory": 1},
         "ScoreMetaData": [
             {"NodeID": "node-a", "Scores": {"binpack": 0.8123, "job-anti-affinity": 0.0},
              "NormScore": 0.8123},
             {"NodeID": "node-bb", "Scores": {"binpack": 0.25, "job-anti-affinity": -0.5},
              "NormScore": -0.125}]}
    assert placement_metrics(m).splitlines() == [
        '  * No nodes are available in datacenter "dc2"',
        '  * Constraint "missing drivers": 1 nodes excluded by filter',
        "  * Resources exhausted on 1 nodes",
        '  * Dimension "memory" exhausted on 1 nodes',
        "Node     binpack  job-anti-affinity  final score",
        "node-a   0.812    0                  0.812",
        "node-bb  0.25     -0.5               -0.125"]
    assert placement_metrics({}) == "  * No nodes were eligible for evaluation"
