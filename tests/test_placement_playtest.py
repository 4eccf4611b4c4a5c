"""Placement as an operator sees it: what ``nomad job plan`` announces, the placement failures a
system job reports and the placement metrics, each against Nomad's scheduler."""

from __future__ import annotations

from typing import Any

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
