"""Rolling updates in the simulated cluster: the whole loop of servers, clients and SimDriver tasks.

A job version that changes what a group runs is rolled out through a
deployment: at most ``max_parallel`` allocations are being replaced at a
time, each replacement must run ``min_healthy_time`` on its client before
the next goes, the deployment ends ``successful`` and the version stable;
an unhealthy replacement fails it, and ``auto_revert`` brings the last
stable version back.  A crashed leader mid-rollout loses nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

from actors.state.store import command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

SEC = 1_000_000_000


def boot(seed: int = 1, n_clients: int = 4) -> JobCluster:
    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=n_clients)))
    c.run(30.0)
    assert c.statuses() == {"ready": n_clients}
    return c


def job(args: str = "3600", count: int = 4, **update: Any) -> dict[str, Any]:
    j = sim_job("web", count=count, cpu=200)
    j["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = [args]
    j["Update"] = {"MaxParallel": 1, "MinHealthyTime": 5 * SEC, "HealthyDeadline": 60 * SEC,
                   "ProgressDeadline": 120 * SEC, **update}
    return j


def deployments(c: JobCluster) -> list[dict[str, Any]]:
    return sorted(c.checker.replica.tables["deployments"].values(), key=lambda d: d["CreateIndex"])


def run_until(c: JobCluster, cond: Any, bound_s: float, step_s: float = 1.0, each: Any = None) -> None:
    end = c.sched.now + bound_s
    while not cond() and c.sched.now < end:
        c.run(step_s)
        if each is not None:
            each()
    assert cond(), f"not reached within {bound_s}s of virtual time"


def test_rolling_update_replaces_one_at_a_time_and_succeeds() -> None:
    c = boot()
    c.register(job())
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    assert c.converged() == []
    v0 = {a["ID"] for a in c.allocs("web") if a["DesiredStatus"] == "run"}
    c.register(job(args="7200"))
    worst: list[int] = []

    def observe() -> None:
        live_running = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"
                        and a["ClientStatus"] == "running"]
        worst.append(len(live_running))
        new_unhealthy = [a for a in c.allocs("web") if a["DesiredStatus"] == "run" and a["JobVersion"] == 1
                         and not (a.get("DeploymentStatus") or {}).get("Healthy")]
        assert len(new_unhealthy) <= 1, "more than max_parallel replacements in flight"

    run_until(c, lambda: deployments(c)[-1]["JobVersion"] == 1
              and deployments(c)[-1]["Status"] == "successful", 300, step_s=0.5, each=observe)
    # One of four replaced at a time: three always ran (the one being replaced starts after the old stops).
    assert min(worst) >= 3, worst
    d = deployments(c)[-1]
    assert d["TaskGroups"]["g"]["HealthyAllocs"] == 4 and d["TaskGroups"]["g"]["DesiredTotal"] == 4
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert not v0 & {a["ID"] for a in live} and {a["JobVersion"] for a in live} == {1}
    assert c.checker.replica.tables["jobs"]["web"]["Stable"] is True
    # The evaluations that placed within a deployment name it (what `nomad job run` then watches).
    evals = c.checker.replica.tables["evals"]
    placing = {evals[a["EvalID"]].get("DeploymentID") for a in c.allocs("web") if a["EvalID"] in evals}
    assert placing == {x["ID"] for x in deployments(c)}, placing
    # Each replacement waited for the one before it to be healthy for min_healthy_time (5 s).
    starts = sorted(a["CreateTime"] for a in live)
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(starts)), starts
    assert c.converged() == []
    c.close()


def test_unhealthy_replacement_fails_the_deployment_and_auto_reverts() -> None:
    c = boot(seed=2)
    c.register(job(AutoRevert=True))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    bad = job(AutoRevert=True, ProgressDeadline=0)  # no deadline: the first unhealthy one fails it
    task = bad["TaskGroups"][0]["Tasks"][0]
    task["Config"]["run_for_s"] = 2.0  # exits long before min_healthy_time
    bad["TaskGroups"][0]["RestartPolicy"] = {"Attempts": 0, "Mode": "fail"}
    c.register(bad)
    run_until(c, lambda: any(d["Status"] == "failed" for d in deployments(c)), 120)
    failed = next(d for d in deployments(c) if d["Status"] == "failed")
    assert failed["JobVersion"] == 1
    assert failed["StatusDescription"] == \
        "Failed due to unhealthy allocations - rolling back to job version 0"
    assert c.checker.replica.tables["jobs"]["web"]["Version"] == 2  # version 0's spec, registered again
    # Version 2 runs what the allocations still on version 0 run: they are updated in place, and
    # only the failed replacement is placed again, in version 2's own deployment (as Nomad's).
    run_until(c, lambda: c.converged() == [] and deployments(c)[-1]["Status"] == "successful", 300)
    assert [(d["JobVersion"], d["Status"]) for d in deployments(c)] == [
        (0, "successful"), (1, "failed"), (2, "successful")]
    # The three updated in place join it, with the replacement: all four healthy again.
    g = deployments(c)[-1]["TaskGroups"]["g"]
    assert (g["DesiredTotal"], g["PlacedAllocs"], g["HealthyAllocs"]) == (4, 4, 4)
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert all("run_for_s" not in a["Job"]["TaskGroups"][0]["Tasks"][0]["Config"] for a in live)
    c.close()


def test_leader_crash_mid_rollout_loses_nothing() -> None:
    c = boot(seed=3)
    c.register(job())
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    c.register(job(args="7200"))
    run_until(c, lambda: deployments(c)[-1]["JobVersion"] == 1
              and deployments(c)[-1]["TaskGroups"]["g"]["HealthyAllocs"] >= 1, 120)
    leader = c.leader()
    assert leader is not None
    c.crash(leader)
    c.run(5.0)
    c.restart(leader)
    run_until(c, lambda: deployments(c)[-1]["Status"] == "successful" and c.converged() == [], 300)
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert {a["JobVersion"] for a in live} == {1} and len(live) == 4
    c.close()


def test_rollout_checker_catches_a_scheduler_that_ignores_max_parallel(monkeypatch: Any) -> None:
    import pytest

    from actors.scheduler import scheduler

    c = boot(seed=4)
    c.register(job())
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    real = scheduler.rolling
    monkeypatch.setattr(scheduler, "rolling", lambda j, g: real(j, g) and {**real(j, g), "MaxParallel": 4})
    c.register(job(args="7200"))
    with pytest.raises(AssertionError, match="replacements in flight, max_parallel 1"):
        c.run(30.0)
    assert c.rollout_violations


def test_a_read_query_that_raises_is_answered_with_its_error_and_raft_goes_on() -> None:
    """A scheduler bug in a plan query (run by Raft on the leader) must not stop the Raft actor."""
    import pytest

    from actors.raft.peer import Read
    from actors.server import RAFT

    c = boot(seed=5, n_clients=1)
    leader = c.leader()
    assert leader is not None
    for stale in (True, False):
        fut = c.sched.future_cls()
        c.sched.nodes[leader].actors[RAFT].tell(Read(query=lambda st: 1 // 0, reply=fut, stale=stale))
        c.run(1.0)
        with pytest.raises(Exception, match="query failed: ZeroDivisionError"):
            fut.get(timeout=5.0)
    c.register(job())  # Raft still applies writes
    run_until(c, lambda: len([a for a in c.allocs("web") if a["ClientStatus"] == "running"]) == 4, 60)
    assert c.leader() == leader
    c.close()


def test_a_system_jobs_bad_update_block_is_refused_at_registration() -> None:
    import pytest

    from actors.scheduler.job import JobError, canonical_job

    for bad in ({"MaxParallel": "two"}, {"Stagger": 1e400}, {"MaxParallel": [1]}):
        sys_job = {**sim_job("sys", count=1, job_type="system"), "Update": bad}
        with pytest.raises(JobError, match=r"^Update\.(MaxParallel|Stagger): must be an integer"):
            canonical_job(sys_job)


def test_scale_up_deployment_waits_for_the_allocations_updated_in_place_to_be_healthy_again() -> None:
    c = boot(seed=3, n_clients=2)
    c.register(job(count=2))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    kept = {a["ID"] for a in c.allocs("web") if a["DesiredStatus"] == "run"}
    c.register(job(count=3))  # a scale: version 1, the two running updated in place
    scaled_at = c.sched.now
    run_until(c, lambda: deployments(c)[-1]["JobVersion"] == 1, 30, step_s=0.2)
    d = deployments(c)[-1]
    assert d["Status"] == "running" and d["TaskGroups"]["g"]["DesiredTotal"] == 3
    moved = {a["ID"]: a["ModifyIndex"] for a in c.allocs("web") if a["ID"] in kept}
    # Until their new health is decided their clients say nothing: the servers cleared the old health
    # themselves, so a report of it reset would only be one more Raft write.
    run_until(c, lambda: c.sched.now >= scaled_at + 4.0, 10, step_s=0.2)
    assert {a["ID"]: a["ModifyIndex"] for a in c.allocs("web") if a["ID"] in kept} == moved
    run_until(c, lambda: deployments(c)[-1]["Status"] == "successful", 120, step_s=0.5)
    done_at = c.sched.now
    d = deployments(c)[-1]
    assert (d["TaskGroups"]["g"]["PlacedAllocs"], d["TaskGroups"]["g"]["HealthyAllocs"]) == (3, 3)
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert kept < {a["ID"] for a in live} and len(live) == 3
    assert all(a["DeploymentID"] == d["ID"] and a["DeploymentStatus"]["Healthy"] is True for a in live)
    # Their clients watched them again: healthy min_healthy_time (5 s) after they joined, not at once.
    assert done_at - scaled_at >= 5.0
    assert all(a["DeploymentStatus"]["Timestamp"] >= scaled_at + 5.0 for a in live if a["ID"] in kept)
    assert c.converged() == []
    c.close()


def _promote_around_a_server_restart(crash_after_s: float) -> None:
    c = JobCluster(11, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=2)))
    c.run(30.0)
    c.register(job(count=2))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["Status"] == "successful", 120)
    c.register(job(args="7200", count=2, MaxParallel=2, Canary=2))
    run_until(c, lambda: deployments(c)[-1]["JobVersion"] == 1
              and deployments(c)[-1]["TaskGroups"]["g"]["HealthyAllocs"] >= 2, 120)
    d = deployments(c)[-1]
    _, res = c.propose(command("deployment_promote", deployment_id=d["ID"], all=True, now=c.sched.now))
    assert res["ok"], res
    c.run(crash_after_s)
    (server,) = c.servers
    c.crash(server)
    c.run(2.0)
    c.restart(server)
    run_until(c, lambda: deployments(c)[-1]["Status"] == "successful" and c.converged() == [], 180)
    stopped = [a for a in c.allocs("web") if a["JobVersion"] == 0]
    assert len(stopped) == 2 and {a["ClientStatus"] for a in stopped} == {"complete"}, crash_after_s
    c.close()


def test_allocations_a_promotion_stops_end_on_the_servers_whenever_their_only_server_restarts() -> None:
    """One server, two clients: a promotion stops the old allocations, and the server crashes and comes
    back at moments around the stops (before the clients hear of them, while they kill, while they
    report).  Every stopped allocation whose process ended ends on the servers too (converged)."""
    for crash_after_s in (0.0, 0.05, 0.2, 0.5, 1.0, 3.0):
        _promote_around_a_server_restart(crash_after_s)
