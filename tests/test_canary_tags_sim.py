"""A service's canary_tags in the simulated cluster (tests/test_deployments_sim.py's pattern): while an
allocation is an unpromoted canary of a deployment its Nomad service registration carries the
service's canary_tags; once the deployment is promoted it carries the service's tags."""

from __future__ import annotations

from typing import Any

from actors.state.store import command
from tests.test_deployments_sim import boot, deployments, job, run_until


def canary_job(args: str) -> dict[str, Any]:
    j = job(args=args, count=2, Canary=1)
    j["TaskGroups"][0]["Services"] = [{"Name": "web", "Tags": ["live"], "CanaryTags": ["canary", "v2"],
                                       "Meta": {"a": "1"}, "CanaryMeta": {"a": "2"}}]
    return j


def tags(c: Any) -> dict[str, list[str]]:
    return {r["AllocID"]: r["Tags"] for r in c.checker.replica.tables["service_registrations"].values()}


def test_a_canarys_registration_has_the_canary_tags_until_the_deployment_is_promoted() -> None:
    c = boot(n_clients=2)
    c.register(canary_job("3600"))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    run_until(c, lambda: len(tags(c)) == 2, 30)
    assert sorted(tags(c).values()) == [["live"], ["live"]]  # a new job places no canary
    c.register(canary_job("7200"))

    def canary() -> dict[str, Any] | None:
        return next((a for a in c.allocs("web") if (a.get("DeploymentStatus") or {}).get("Canary")
                     and a["ClientStatus"] == "running"), None)

    run_until(c, lambda: canary() is not None and canary()["ID"] in tags(c), 120)
    cid = canary()["ID"]
    assert tags(c)[cid] == ["canary", "v2"]
    assert sorted(v for k, v in tags(c).items() if k != cid) == [["live"], ["live"]]
    d = deployments(c)[-1]
    run_until(c, lambda: d["TaskGroups"]["g"]["DesiredCanaries"] and (canary() or {}).get(
        "DeploymentStatus", {}).get("Healthy"), 60)
    _, res = c.propose(command("deployment_promote", deployment_id=d["ID"], all=True, now=c.sched.now))
    assert res["ok"], res
    assert tags(c)[cid] == ["live"]  # at the promotion's write
    run_until(c, lambda: deployments(c)[-1]["Status"] == "successful", 120)
    assert sorted(tags(c).values()) == [["live"], ["live"]]
