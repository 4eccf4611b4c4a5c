"""Service checks in the simulated cluster: the client runs them, and deployments wait for them.

The simulator's prober answers for the SimDriver process of the check's
allocation (``check_ready_after_s``, ``check_status``, ``check_fail`` in the
task config), so a service that takes long to come up, one that answers
500 and one that is fine can be told apart by the checks alone.
"""

from __future__ import annotations

from typing import Any

from actors.client.checks import CHECK_RUNNER, FAILURE, READINESS, SUCCESS, GetChecks
from sim.job_cluster import RUNNER, JobCluster, sim_job
from tests.test_deployments_sim import boot, deployments, run_until

SEC = 1_000_000_000


def checked_job(version: str = "3600", count: int = 2, checks: list[dict[str, Any]] | None = None,
                **config: Any) -> dict[str, Any]:
    j = sim_job("web", count=count, cpu=200)
    task = j["TaskGroups"][0]["Tasks"][0]
    task["Config"].update(args=[version], **config)
    j["TaskGroups"][0]["Networks"] = [{"DynamicPorts": [{"Label": "http"}]}]
    j["TaskGroups"][0]["Services"] = [{"Name": "web", "PortLabel": "http", "Checks": checks or [
        {"Name": "alive", "Type": "http", "Path": "/health", "Interval": 2 * SEC, "Timeout": 1 * SEC}]}]
    j["Update"] = {"MaxParallel": 1, "MinHealthyTime": 5 * SEC, "HealthyDeadline": 60 * SEC,
                   "ProgressDeadline": 120 * SEC}
    return j


def results(c: JobCluster, alloc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    node = next(x for x in c.clients if c.node_id(x) == alloc["NodeID"])
    return c.actor(node, CHECK_RUNNER).receive(GetChecks(alloc["ID"]))


def running(c: JobCluster) -> list[dict[str, Any]]:
    return [a for a in c.allocs("web") if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def test_a_deployment_waits_for_checks_to_pass_for_min_healthy_time() -> None:
    c = boot(seed=3)
    c.register(checked_job(check_ready_after_s=20))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 180)
    allocs = running(c)
    assert len(allocs) == 2
    for a in allocs:
        (r,) = results(c, a).values()
        assert (r["Status"], r.get("StatusCode"), r["Output"]) == (SUCCESS, 200, "nomad: http ok")
        assert (r["Service"], r["Check"], r["Group"], r["Task"], r["Mode"]) == \
            ("web", "alive", a["Name"], "", "healthiness")
        started = max(e["Time"] for ts in a["TaskStates"].values() for e in ts["Events"]
                      if e["Type"] == "Started") / 1e9
        # Healthy only once the checks had passed 5 s -- not 5 s after the task started.
        assert a["DeploymentStatus"]["Healthy"] is True
        assert a["DeploymentStatus"]["Timestamp"] >= started + 20 + 5 - 0.5, (a["DeploymentStatus"], started)
    c.close()


def test_failing_checks_make_the_allocation_unhealthy_at_its_deadline_and_fail_the_deployment() -> None:
    c = boot(seed=4)
    c.register(checked_job())
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    bad_version = checked_job(version="7200", check_status=500)
    bad_version["Update"]["ProgressDeadline"] = 0  # no deadline: the first unhealthy allocation fails it
    c.register(bad_version)
    run_until(c, lambda: deployments(c)[-1]["Status"] == "failed", 180)
    d = deployments(c)[-1]
    assert d["StatusDescription"] == "Failed due to unhealthy allocations"
    bad = [a for a in c.allocs("web") if a.get("DeploymentID") == d["ID"]]
    assert bad and all(a["DeploymentStatus"]["Healthy"] is False for a in bad)
    assert all(a["ClientStatus"] == "running" for a in bad)  # a failing check restarts nothing
    for a in bad:
        if a["DesiredStatus"] == "run":
            (r,) = results(c, a).values()
            assert (r["Status"], r["StatusCode"]) == (FAILURE, 500)
    c.close()


def test_a_drained_allocations_replacement_is_healthy_once_its_checks_passed_the_migrate_min_healthy_time(
        ) -> None:
    """Outside any deployment the client decides a drained allocation's replacement's health by its
    group's migrate block (Nomad's health hook): with health_check = "checks", its checks must have
    passed min_healthy_time -- and the drainer moves the next one only then."""
    c = boot(seed=5)
    j = checked_job(check_ready_after_s=15)
    j["TaskGroups"][0]["Migrate"] = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 4 * SEC,
                                     "HealthyDeadline": 90 * SEC}
    c.register(j)
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 180)
    first = running(c)[0]
    client = c.client_of(first["NodeID"])
    assert client is not None and c.drain(client, deadline_s=600)["ok"]

    def replacement() -> dict[str, Any] | None:
        return next((a for a in c.allocs("web") if a.get("PreviousAllocation") == first["ID"]), None)
    run_until(c, lambda: ((replacement() or {}).get("DeploymentStatus") or {}).get("Healthy") is True, 180)
    r = replacement()
    assert r is not None and not r.get("DeploymentID")
    started = max(e["Time"] for ts in r["TaskStates"].values() for e in ts["Events"]
                  if e["Type"] == "Started") / 1e9
    assert r["DeploymentStatus"]["Timestamp"] >= started + 15 + 4 - 0.5, (r["DeploymentStatus"], started)
    c.close()


def test_readiness_checks_do_not_decide_health_and_checks_stop_with_the_allocation() -> None:
    c = boot(seed=5)
    checks = [{"Name": "ready", "Type": "tcp", "Interval": 2 * SEC, "Timeout": 1 * SEC, "OnUpdate": "ignore"}]
    c.register(checked_job(checks=checks, check_fail=True))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    allocs = running(c)
    for a in allocs:
        (r,) = results(c, a).values()
        assert (r["Mode"], r["Status"]) == (READINESS, FAILURE)
    node = next(x for x in c.clients if c.node_id(x) == allocs[0]["NodeID"])
    runner = c.actor(node, CHECK_RUNNER)
    assert runner.by_alloc
    c.stop_job("web")
    run_until(c, lambda: not running(c), 60)
    c.run(5.0)
    for x in c.clients:
        assert c.actor(x, CHECK_RUNNER).by_alloc == {} and not c.actor(x, CHECK_RUNNER).checks
        assert all(a.checks_sent is None for a in c.actor(x, RUNNER).allocs.values())
    c.close()


def test_check_restart_restarts_the_task_and_the_restart_policy_rules_on_it() -> None:
    c = boot(seed=6)
    # (Named as Nomad names a check without a name: its service's name quoted.)
    checks = [{"Name": 'service: "web" check', "Type": "http", "Path": "/", "Interval": 2 * SEC,
               "Timeout": 1 * SEC, "CheckRestart": {"Limit": 3, "Grace": 5 * SEC}}]
    j = checked_job(count=1, checks=checks, check_fail_after_s=10)
    # One restart allowed in a long interval, then the task fails (and the allocation with it).
    j["TaskGroups"][0]["RestartPolicy"] = {"Attempts": 1, "Interval": 3600 * SEC, "Delay": 1 * SEC,
                                           "Mode": "fail"}
    j["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    j["Update"]["HealthyDeadline"] = 9 * SEC  # decided healthy before the checks go bad
    j["Update"]["MinHealthyTime"] = 1 * SEC
    c.register(j)
    run_until(c, lambda: any(a["ClientStatus"] == "failed" for a in c.allocs("web")), 120)
    (a,) = [a for a in c.allocs("web") if a["ClientStatus"] == "failed"]
    events = a["TaskStates"]["t"]["Events"]
    kinds = [e["Type"] for e in events]
    signaled = [e for e in events if e["Type"] == "Restart Signaled"]
    assert [e["Message"] if "Message" in e else e.get("DisplayMessage") for e in signaled] == \
        ['healthcheck: check "service: \\"web\\" check" unhealthy'] * 2, events  # Nomad's %q
    assert "Restarting" in kinds and "Not Restarting" in kinds
    assert a["TaskStates"]["t"]["Restarts"] == 1 and a["TaskStates"]["t"]["Failed"] is True
    starts = [e["Time"] / 1e9 for e in events if e["Type"] == "Started"]
    kills = [e["Time"] / 1e9 for e in signaled]
    # Failing from 10 s after each start; three failures in a row take interval * (3 - 1) = 4 s more.
    for started, killed in zip(starts, kills, strict=True):
        assert 14.0 <= killed - started <= 17.0, (started, killed)
    c.close()


def test_a_check_changed_by_an_in_place_update_reaches_the_client() -> None:
    c = boot(seed=7)
    c.register(checked_job())
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    before = {a["ID"] for a in running(c)}
    renamed = [{"Name": "renamed", "Type": "tcp", "Interval": 2 * SEC, "Timeout": 1 * SEC}]
    c.register(checked_job(checks=renamed))  # same tasks: the allocations are updated in place
    run_until(c, lambda: all({r["Check"] for r in results(c, a).values()} == {"renamed"} for a in running(c)),
              30)
    assert {a["ID"] for a in running(c)} == before and all(a["JobVersion"] == 1 for a in running(c))
    c.close()


def test_a_restarted_check_runner_is_told_every_allocations_checks_again() -> None:
    from actors.client.checks import CheckRunner, SimProber

    c = boot(seed=8)
    c.register(checked_job(count=1))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    (a,) = running(c)
    node = next(x for x in c.clients if c.node_id(x) == a["NodeID"])
    ref = c.sched.nodes[node].actors[CHECK_RUNNER]
    ref.stop()  # as a supervisor restarting it would: a new runner, empty
    env = c.sched.nodes[node].env
    env.spawn(CheckRunner, CHECK_RUNNER, runner=RUNNER,
              prober=SimProber(c.drivers[node], lambda: c.sched.now, lambda when, fn: c.sched.at(when, fn)))
    c.run(5.0)
    (r,) = results(c, a).values()
    assert r["Status"] == SUCCESS
    c.close()
