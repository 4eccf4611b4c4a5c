"""Review 19: placement scoring and feasibility against Nomad's stack (scheduler/feasible/*.go).

Each test was a strict xfail, failing because of the defect it names, until the defect was fixed."""

from __future__ import annotations

from typing import Any

import pytest

from actors.scheduler.job import canonical_job
from actors.scheduler.scheduler import _Placer, plan_usage
from tests.test_placement_prefs import DC, _cluster
from tests.test_scheduler import Cluster, service

DISTINCT = {"Constraints": [{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}]}


def test_destructive_update_of_a_distinct_hosts_group_replaces_on_the_freed_nodes() -> None:
    c = Cluster()
    for i in range(2):
        c.node(i)
    c.register(**service(count=2, group=DISTINCT))
    c.schedule()
    c.client()
    assert len(c.running("web")) == 2
    c.register(**service(count=2, cpu=600, group=DISTINCT))  # a task change: destructive
    c.schedule()
    evals = list(c.state.tables["evals"].values())
    assert not any(e.get("FailedTGAllocs") for e in evals), [e.get("FailedTGAllocs") for e in evals]
    # max_parallel 1 (the default): the first one replaced on the node its predecessor left
    assert sorted(a["JobVersion"] for a in c.running("web")) == [0, 1]


def test_replacement_is_not_penalised_for_the_allocation_it_replaces() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.schedule()
    c.client()
    c.register(**service(count=1, cpu=600))
    c.schedule()
    placed = [a for a in c.running("web") if a["JobVersion"] == 1]
    assert len(placed) == 1
    from actors.scheduler.scheduler import metric_out
    rows = metric_out(placed[0]["Metrics"])["ScoreMetaData"]
    assert rows and rows[0]["Scores"]["job-anti-affinity"] == 0.0, rows


def _placer(c: Cluster, job: dict[str, Any]) -> _Placer:
    tables = c.state.tables
    return _Placer(tables, job, "ev-1", plan_usage(lambda n: ()))


def test_spread_implicit_target_is_the_whole_remainder_for_each_unnamed_value() -> None:
    c = _cluster([("dc1", {}), ("dc2", {}), ("dc3", {})])
    spread = [{"Attribute": DC, "Weight": 100, "SpreadTarget": [{"Value": "dc1", "Percent": 50}]}]
    job = canonical_job(service("web", count=4, Datacenters=["dc1", "dc2", "dc3"], Spreads=spread))
    group = job["TaskGroups"][0]
    p = _placer(c, job)
    p.count_on("pref-1", "g", 1)  # one allocation in dc2 already
    _, spreads = p._prefs(group)
    # Nomad: desired count for dc3 = 4 - 2 = 2; used + 1 = 1 -> (2 - 1) / 2 = 0.5
    assert p._spread_score(c.state.tables["nodes"]["pref-2"], group, spreads) == pytest.approx(0.5)


def test_even_spreads_add_their_boosts_unweighted_as_nomads() -> None:
    c = _cluster([("dc1", {"rack": "r1"}), ("dc2", {"rack": "r2"})])
    spreads = [{"Attribute": DC, "Weight": 50}, {"Attribute": "${meta.rack}", "Weight": 50}]
    job = canonical_job(service("web", count=4, Datacenters=["dc1", "dc2"], Spreads=spreads))
    group = job["TaskGroups"][0]
    p = _placer(c, job)
    p.count_on("pref-0", "g", 1)  # one allocation in dc1 / r1
    _, prefs = p._prefs(group)
    # Nomad: each even spread: the node's value unused while another is used -> boost 1.0; summed: 2.0
    assert p._spread_score(c.state.tables["nodes"]["pref-1"], group, prefs) == pytest.approx(2.0)


def test_a_failed_allocation_replaced_by_a_new_version_penalises_the_node_it_failed_on() -> None:
    from actors.scheduler.scheduler import metric_out
    from tests.test_scheduler import _fail

    c = Cluster()
    c.node(0)
    c.node(1)
    c.register(**service(count=1))
    c.schedule()
    c.client()
    (a,) = c.running("web")
    _fail(c, a["ID"])  # its reschedule waits for its delay
    c.schedule(due_only=True)
    c.register(**service(count=1, cpu=600))  # a new version replaces it now (destructive)
    c.schedule(due_only=True)
    (new,) = [x for x in c.state.tables["allocs"].values() if x["JobVersion"] == 1]
    assert new["PreviousAllocation"] == a["ID"]
    rows = {r["NodeID"]: r for r in metric_out(new["Metrics"])["ScoreMetaData"]}
    assert rows[a["NodeID"]]["Scores"]["node-reschedule-penalty"] == -1.0, rows
