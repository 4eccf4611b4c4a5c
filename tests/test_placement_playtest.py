"""Placement as an operator sees it: what ``nomad job plan`` announces, the placement failures a
system job reports and the placement metrics, each against Nomad's scheduler."""

from __future__ import annotations

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
