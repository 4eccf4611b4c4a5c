"""Review 19: deployments that allocations updated in place join (commit 8e45eeb), against Nomad.

Each test was a strict xfail, failing because of the defect it names, until the defect was fixed."""

from __future__ import annotations

from tests.test_scheduler import Cluster, _deployment, _health, service

NOOP = ("Failed due to unhealthy allocations - not rolling back to stable job version 0 as current job "
        "has same specification")


def test_a_failed_revert_deployment_does_not_claim_to_roll_back_to_the_same_spec() -> None:
    update = {"AutoRevert": True, "ProgressDeadline": 0}  # the first unhealthy allocation fails it
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=3, Update=update))
    c.schedule()
    c.client()
    _health(c)
    assert c.state.tables["jobs"]["web"]["Stable"] is True
    c.register(**service(count=4, Update=update))  # a scale: three updated in place, one placed
    c.schedule()
    c.client()
    d1 = _deployment(c)
    (new,) = [a["ID"] for a in c.running("web")
              if a["DeploymentID"] == d1["ID"] and a["Name"].endswith("[3]")]
    _health(c, healthy=False, only={new})  # fails v1: auto revert registers v0's spec as version 2
    c.schedule()
    c.client()
    d2 = _deployment(c)
    assert d2["JobVersion"] == 2 and d2["Status"] == "running"  # the three updated in place joined it
    one = min(a["ID"] for a in c.running("web") if a["DeploymentID"] == d2["ID"])
    _health(c, healthy=False, only={one})
    c.schedule()
    d2 = c.state.tables["deployments"][d2["ID"]]
    assert d2["Status"] == "failed"
    assert c.state.tables["jobs"]["web"]["Version"] == 2  # nothing was rolled back
    assert d2["StatusDescription"] == NOOP
