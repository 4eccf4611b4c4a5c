"""Fixes for the defects a real-cluster session found (REVIEW20): each test failed before its fix."""
from __future__ import annotations

from actors.state import deployments
from tests.test_scheduler import SEC, Cluster, _deployment, _health, service

# ---------------------------------------------------------------- A: progress deadline and canaries
_CANARY_UPDATE = {"Canary": 1, "ProgressDeadline": 60 * SEC, "HealthyDeadline": 30 * SEC}


def _canary_rollout(c: Cluster) -> dict:
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update=_CANARY_UPDATE))
    c.schedule()
    _health(c)
    c.register(**service(count=2, cpu=600, Update=_CANARY_UPDATE))
    c.schedule()
    return _deployment(c)


def test_progress_deadline_spares_healthy_canaries_awaiting_promotion() -> None:
    """Nomad's shouldFail: a group awaiting promotion whose healthy canaries reach DesiredCanaries is
    progress enough; the deployment waits for `deployment promote`."""
    c = Cluster()
    d = _canary_rollout(c)
    assert d["TaskGroups"]["g"]["DesiredCanaries"] == 1 and d["Status"] == "running"
    assert deployments.overdue(c.state, c.now + 61) == [d["ID"]]  # the canary not healthy yet: it fails
    _health(c)
    c.now += 10
    assert deployments.overdue(c.state, c.now + 3600) == []
    c.now += 3600
    assert c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")["skipped"]
    assert _deployment(c)["Status"] == "running"


def test_the_deadline_look_names_the_next_cutoff_so_the_deployment_fails_at_it() -> None:
    """The leader looks again at the nearest deadline (Nomad's per-deployment timer), not the next
    interval tick after it; a done group's deadline no longer counts."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update={"ProgressDeadline": 60 * SEC, "HealthyDeadline": 30 * SEC}))
    c.schedule()
    d = _deployment(c)
    by = d["TaskGroups"]["g"]["RequireProgressBy"]
    assert deployments.progress_scan(c.state, by - 1) == {"overdue": [], "next": by}
    assert deployments.progress_scan(c.state, by) == {"overdue": [d["ID"]], "next": None}
    done = {**d, "TaskGroups": {"g": {**d["TaskGroups"]["g"], "HealthyAllocs": 2}}}
    assert deployments.progress_cutoff(done) is None


# ---------------------------------------------------------------- G: stopping a periodic/parameterized job
def test_stopping_a_periodic_or_parameterized_job_creates_no_evaluation() -> None:
    """Nomad's Job.Deregister creates no evaluation for them (EvalID ""); other jobs get one."""
    c = Cluster()
    c.node(0)
    c.register(**service("cron", Type="batch", Periodic={"Spec": "0 3 * * *", "SpecType": "cron"}))
    c.register(**service("param", Type="batch", ParameterizedJob={"Payload": "optional"}))
    c.register(**service("web", count=1))
    before = len(c.state.tables["evals"])
    for jid in ("cron", "param"):
        res = c.apply("job_deregister", job_id=jid)
        assert res["ok"] and (res["EvalID"], res["EvalCreateIndex"]) == ("", 0), res
        assert c.state.tables["jobs"][jid]["Stop"]
    assert len(c.state.tables["evals"]) == before
    res = c.apply("job_deregister", job_id="web")
    assert res["EvalID"] in c.state.tables["evals"]


# ---------------------------------------------------------------- H: the Restarting event's wording
def test_restarting_events_are_worded_as_nomads() -> None:
    """PopulateEventDisplayMessage: 'Task restarting in <Go duration>', '<reason> - ' only for a reason
    other than 'Restart within policy'; RestartReason and StartDelay (ns) in the details."""
    from actors.client.alloc_runner import RestartTasks, restarting_message
    from tests.test_alloc_runner import Client, alloc, policy, task

    assert restarting_message("", 0.0) == "Task restarting in 0s"
    assert restarting_message("Restart within policy", 15.342181) == "Task restarting in 15.342181s"
    assert restarting_message("Exceeded allowed attempts, applying a delay", 90.0) == \
        "Exceeded allowed attempts, applying a delay - Task restarting in 1m30s"
    c = Client()
    c.set(alloc("a1", task("web"), restart=policy(3, 600, 15)))
    c.until(lambda: c.status("a1") == "running", 5)
    assert c.node.actors["allocs"].ask(RestartTasks(alloc_id="a1", task="web")) == ""
    c.until(lambda: c.task("a1", "web").restarts == 1 and c.task("a1", "web").state == "running", 30)
    (ev,) = [e for e in c.task("a1", "web").events if e.type == "Restarting"]
    assert ev.message == "Task restarting in 0s"
    assert dict(ev.details) == {"restart_reason": "", "start_delay": "0"}
    assert c.driver.crash("a1", "web", exit_code=1)
    c.until(lambda: c.task("a1", "web").restarts == 2, 30)
    ev = [e for e in c.task("a1", "web").events if e.type == "Restarting"][-1]
    assert ev.message.startswith("Task restarting in 1") and ev.message.endswith("s"), ev.message
    assert dict(ev.details)["restart_reason"] == "Restart within policy"


# ---------------------------------------------------------------- E: the task_dir hook's Task Setup event
def test_a_started_task_records_nomads_task_setup_event_once() -> None:
    """Nomad's task_dir hook: 'Task Setup' / 'Building Task Directory' between Received and Started, once
    (a restart does not build the directory again)."""
    from tests.test_alloc_runner import Client, alloc, events, policy, task

    c = Client()
    c.set(alloc("a1", task("web"), restart=policy(3, 600, 1)))
    c.until(lambda: c.status("a1") == "running", 5)
    web = c.task("a1", "web")
    assert events(web)[:3] == ["Received", "Task Setup", "Started"]
    assert [e.message for e in web.events if e.type == "Task Setup"] == ["Building Task Directory"]
    assert c.driver.crash("a1", "web", exit_code=1)
    c.until(lambda: c.task("a1", "web").restarts == 1 and c.task("a1", "web").state == "running", 30)
    assert events(c.task("a1", "web")).count("Task Setup") == 1


# ---------------------------------------------------------------- F, I: the dry run's annotations
def test_plan_of_a_canary_update_counts_the_canary() -> None:
    """Nomad: '(1 canary, 1 ignore)', DesiredTGUpdates.Canary = 1, Place = 0."""
    from actors.scheduler.dryrun import plan_job
    from actors.scheduler.job import canonical_job

    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=1, Update={"Canary": 1}))
    c.schedule()
    _health(c)
    plan = plan_job(c.state, canonical_job(service(count=1, cpu=600, Update={"Canary": 1})), True, c.now)
    u = plan["Annotations"]["DesiredTGUpdates"]["g"]
    assert (u["Canary"], u["Place"], u["Ignore"]) == (1, 0, 1), u
    assert plan["Diff"]["TaskGroups"][0]["Updates"] == {"canary": 1, "ignore": 1}


def test_plan_of_an_unplaceable_job_still_counts_the_wanted_placements() -> None:
    """Nomad keeps the reconciler's Place (3) and reports the failures apart (FailedTGAllocs)."""
    from actors.scheduler.dryrun import plan_job
    from actors.scheduler.job import canonical_job

    c = Cluster()
    c.node(0)
    job = service("nope", count=3, Constraints=[{"LTarget": "${attr.kernel.name}", "RTarget": "windows",
                                                  "Operand": "="}])
    plan = plan_job(c.state, canonical_job(job), True, c.now)
    assert plan["FailedTGAllocs"]["g"]["CoalescedFailures"] == 2
    assert plan["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 3
    assert plan["Diff"]["TaskGroups"][0]["Updates"] == {"create": 3}


# ---------------------------------------------------------------- D: a group's placement failure
def test_a_groups_placement_failure_counts_each_node_once_and_names_the_pool() -> None:
    """Nomad: the first failed placement's metrics, the rest CoalescedFailures; the pool named."""
    c = Cluster()
    c.node(0)
    c.register(**service("nope", count=3, Constraints=[{"LTarget": "${attr.kernel.name}",
                                                         "RTarget": "windows", "Operand": "="}]))
    c.schedule()
    (failed,) = [e["FailedTGAllocs"]["g"] for e in c.state.tables["evals"].values()
                 if e.get("FailedTGAllocs") and e["Status"] != "blocked"]  # (the blocked one holds a copy)
    assert failed["CoalescedFailures"] == 2
    assert (failed["NodesEvaluated"], failed["NodesFiltered"]) == (1, 1), failed
    assert (failed["NodesInPool"], failed["NodePool"], failed["NodesAvailable"]) == (1, "default", {"dc1": 1})


def test_the_leader_fails_a_deployment_at_its_progress_deadline_not_an_interval_later() -> None:
    """Nomad's watcher holds a timer at RequireProgressBy: the deployment fails then (here within a Raft
    round trip), not up to deployment_interval_s (5 s) later."""
    from tests.test_deployments_sim import boot, deployments, job, run_until

    c = boot(n_clients=1)
    c.register(job(count=1, HealthCheck="manual", HealthyDeadline=10 * SEC, ProgressDeadline=23 * SEC))
    run_until(c, lambda: deployments(c) and deployments(c)[-1]["TaskGroups"]["g"].get("RequireProgressBy"),
              30)
    by = deployments(c)[-1]["TaskGroups"]["g"]["RequireProgressBy"]
    run_until(c, lambda: deployments(c)[-1]["Status"] == "failed", 40, step_s=0.1)
    assert deployments(c)[-1]["StatusDescription"] == "Failed due to progress deadline"
    assert by <= c.sched.now <= by + 0.6, (by, c.sched.now)
    c.close()


def test_plan_of_a_canary_that_does_not_fit_still_counts_it_as_a_canary() -> None:
    """Nomad's DesiredTGUpdates come from the reconciler: a canary that then finds no node is one of
    its Canary (reported apart in FailedTGAllocs), never a Place."""
    from actors.scheduler.dryrun import plan_job
    from actors.scheduler.job import canonical_job

    c = Cluster()
    c.node(0, cpu=1000)
    c.register(**service(count=1, cpu=600, Update={"Canary": 1}))
    c.schedule()
    _health(c)
    plan = plan_job(c.state, canonical_job(service(count=1, cpu=700, Update={"Canary": 1})), True, c.now)
    assert plan["FailedTGAllocs"]["g"]["CoalescedFailures"] == 0  # the canary: no room beside the old one
    u = plan["Annotations"]["DesiredTGUpdates"]["g"]
    assert (u["Canary"], u["Place"], u["Ignore"]) == (1, 0, 1), u
    assert plan["Diff"]["TaskGroups"][0]["Updates"] == {"canary": 1, "ignore": 1}
