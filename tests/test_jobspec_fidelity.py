"""Job-file keys of Nomad's job specification taken since the jobspec review: each is carried to the API
JSON, validated with Nomad's messages and honoured where Nomad acts on it."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest

from actors.client.alloc_runner import DiskAllocDirs, MemoryAllocDirs
from actors.raft.peer import Propose, RaftPeer
from actors.raft.storage import MemoryStorage
from actors.scheduler.cron import next_launch
from actors.scheduler.dryrun import plan_job
from actors.scheduler.job import JobError, canonical_job
from actors.scheduler.periodic import PERIODIC, PeriodicDispatcher
from actors.state.store import command
from runtime.hcl_job import parse_hcl_job
from sim.runtime import Scheduler
from tests.test_alloc_runner import Client, alloc, events, policy
from tests.test_alloc_runner import task as ar_task
from tests.test_check_validation import SEC, checks_of, http, job, tcp
from tests.test_periodic import T0
from tests.test_scheduler import Cluster, service
from tests.test_templates_sim import boot as tboot
from tests.test_templates_sim import files, procs, set_var
from tests.test_templates_sim import job as tjob
from tests.test_templates_sim import until as tuntil


# ------------------------------------------------------------ service on_update
def test_a_services_on_update_is_its_checks_unless_they_set_their_own() -> None:
    j = canonical_job(job(http(), tcp(OnUpdate="require_healthy"), svc={"OnUpdate": "ignore"}))
    own, inherited = checks_of(j)[1], checks_of(j)[0]
    assert inherited["OnUpdate"] == "ignore" and own["OnUpdate"] == "require_healthy"
    assert j["TaskGroups"][0]["Services"][0]["OnUpdate"] == "ignore"
    # A task's service too; none given: require_healthy, and the service keeps no OnUpdate.
    j = canonical_job(job(http(), svc={"OnUpdate": "ignore"}, task_svc=True))
    assert checks_of(j, task_svc=True)[0]["OnUpdate"] == "ignore"
    j = canonical_job(job(http()))
    assert checks_of(j)[0]["OnUpdate"] == "require_healthy"
    assert "OnUpdate" not in j["TaskGroups"][0]["Services"][0]


def test_a_services_on_update_nomad_refuses_is_refused_with_its_message() -> None:
    with pytest.raises(JobError, match='Service on_update must be "require_healthy", "ignore_warnings", '
                                       'or "ignore"; not "sometimes"'):
        canonical_job(job(http(), svc={"OnUpdate": "sometimes"}))
    # ignore_warnings is Consul's: the checks that inherit it are refused as Nomad's validateNomad does.
    with pytest.raises(JobError, match="on_update may only be set to ignore_warnings for Consul service"):
        canonical_job(job(http(), svc={"OnUpdate": "ignore_warnings"}))
    # ignore and a check_restart do not go together, inherited or not.
    with pytest.raises(JobError, match='on_update value "ignore" is not compatible with check_restart'):
        canonical_job(job(http(), svc={"OnUpdate": "ignore", "CheckRestart": {"Limit": 3}}))


def _service_file(service: str) -> str:
    return f'''
        job "web" {{
          group "g" {{
            network {{ port "http" {{}} }}
            service {{
              name = "api"
              port = "http"
              {service}
            }}
            task "t" {{
              driver = "raw_exec"
              config {{ command = "/bin/sleep" }}
            }}
          }}
        }}'''


def test_the_job_file_carries_a_services_on_update() -> None:
    j = parse_hcl_job(_service_file('on_update = "ignore"\n'
                                    'check {\n type = "tcp"\n interval = "10s"\n timeout = "2s"\n}'))
    svc = j["TaskGroups"][0]["Services"][0]
    assert svc["OnUpdate"] == "ignore" and "OnUpdate" not in svc["Checks"][0]
    assert canonical_job(j)["TaskGroups"][0]["Services"][0]["Checks"][0]["OnUpdate"] == "ignore"


# ------------------------------------------------------------ a task's restart block
def _restart_file() -> str:
    return '''
        job "web" {
          type = "batch"
          group "g" {
            restart {
              attempts = 5
              delay    = "10s"
            }
            task "main" {
              driver = "raw_exec"
              config { command = "/bin/true" }
              restart {
                attempts = 1
                mode     = "fail"
              }
            }
            task "other" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }'''


def test_a_tasks_restart_block_is_merged_over_its_groups() -> None:
    j = parse_hcl_job(_restart_file())
    main, other = j["TaskGroups"][0]["Tasks"]
    assert main["RestartPolicy"] == {"Attempts": 1, "Mode": "fail"} and "RestartPolicy" not in other
    g = canonical_job(j)["TaskGroups"][0]
    assert g["RestartPolicy"] == {"Attempts": 5, "Interval": 24 * 3600 * SEC, "Delay": 10 * SEC,
                                  "Mode": "fail"}
    main, other = g["Tasks"]
    assert main["RestartPolicy"] == {**g["RestartPolicy"], "Attempts": 1}
    assert "RestartPolicy" not in other  # it runs by its group's, stored as such a task always was


def test_a_tasks_restart_policy_is_validated_as_a_groups() -> None:
    j = parse_hcl_job(_restart_file())
    j["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = {"Mode": "sometimes"}
    with pytest.raises(JobError, match=r'Tasks\[0\]\.RestartPolicy: Unsupported restart mode: "sometimes"'):
        canonical_job(j)
    j["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = {"Attempts": 100, "Delay": 3600 * SEC}
    with pytest.raises(JobError, match=r"Tasks\[0\]\.RestartPolicy: Nomad can't restart the TaskGroup 100 "
                       r"times in an interval of 24h0m0s with a delay of 1h0m0s"):
        canonical_job(j)


@pytest.mark.parametrize(("restart", "error"), [
    # Nomad's RestartPolicy.Validate (TaskGroup.Validate): each was accepted, and a zero interval then
    # failed every allocation on its client ("invalid allocation: ... Interval must be > 0").
    ({"Attempts": 0, "Interval": 0, "Mode": "fail"}, "Interval can not be less than 5s (got 0s)"),
    ({"Attempts": 1, "Interval": 1 * SEC, "Delay": 0, "Mode": "fail"},
     "Interval can not be less than 5s (got 1s)"),
    ({"Attempts": 0, "Interval": 60 * SEC, "Mode": "delay"},
     'Restart policy "delay" with 0 attempts is ambiguous'),
    ({"Attempts": 3, "Interval": 10 * SEC, "Delay": 5 * SEC, "Mode": "fail"},
     "Nomad can't restart the TaskGroup 3 times in an interval of 10s with a delay of 5s"),
])
def test_a_groups_restart_policy_is_refused_as_nomad_refuses_it(restart: dict[str, Any], error: str) -> None:
    j = parse_hcl_job(_restart_file())
    j["TaskGroups"][0]["RestartPolicy"] = restart
    with pytest.raises(JobError) as exc:
        canonical_job(j)
    assert str(exc.value) == f"TaskGroups[0].RestartPolicy: {error}"


def test_a_restart_interval_of_five_seconds_and_delay_mode_with_attempts_are_accepted() -> None:
    j = parse_hcl_job(_restart_file())
    j["TaskGroups"][0]["RestartPolicy"] = {"Attempts": 1, "Interval": 5 * SEC, "Delay": 5 * SEC,
                                           "Mode": "delay"}
    assert canonical_job(j)["TaskGroups"][0]["RestartPolicy"]["Interval"] == 5 * SEC


def test_the_client_restarts_a_task_by_its_own_policy_and_one_without_by_its_groups() -> None:
    c = Client()
    own = {**ar_task("t", run_for_s=1, exit_code=2), "RestartPolicy": policy(1, 3600, 2)}
    c.set(alloc("a1", own, job_type="batch", restart=policy(3, 3600, 2)),
          alloc("a2", ar_task("t", run_for_s=1, exit_code=2), job_type="batch", restart=policy(3, 3600, 2)))
    c.until(lambda: c.status("a1") == "failed" and c.status("a2") == "failed", 120)
    assert c.task("a1").restarts == 1 and c.task("a2").restarts == 3
    assert "Exceeded allowed attempts 1 in interval 1h0m0s" in c.latest("a1").client_description


# ------------------------------------------------------------ periodic crons
def _crons_job(crons: list[str]) -> dict:
    return canonical_job({**service(job_id="nightly", count=1, Type="batch"),
                          "Periodic": {"Specs": crons, "SpecType": "cron"}})


def test_the_job_file_takes_several_crons_and_they_are_validated_as_nomads() -> None:
    j = parse_hcl_job('''
        job "nightly" {
          type = "batch"
          periodic {
            crons     = ["0 3 * * *", "30 12 * * mon"]
            time_zone = "Europe/Paris"
          }
          group "g" {
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert j["Periodic"]["Specs"] == ["0 3 * * *", "30 12 * * mon"] and j["Periodic"]["Spec"] == ""
    p = canonical_job(j)["Periodic"]
    assert p["Specs"] == ["0 3 * * *", "30 12 * * mon"] and p["TimeZone"] == "Europe/Paris"
    assert "Specs" not in canonical_job({**service(Type="batch"), "Periodic": {"Spec": "@daily"}})["Periodic"]
    for periodic, message in [({"Spec": "@daily", "Specs": ["@hourly"]},
                               "Periodic: Only cron or crons may be used"),
                              ({"Specs": []}, "Periodic.Spec: Must specify a spec"),
                              ({"Specs": ["@daily", "61 * * * *"]}, r"Periodic.Specs\[1\]"),
                              ({"Specs": "@daily"}, "Periodic.Specs: must be a list")]:
        with pytest.raises(JobError, match=message):
            canonical_job({**service(Type="batch"), "Periodic": periodic})


def test_a_job_with_several_crons_launches_at_the_earliest_of_them() -> None:
    assert next_launch({"Specs": ["0 3 * * *", "30 1 * * *"], "TimeZone": "UTC"}, T0) == \
        dt.datetime(2026, 11, 27, 1, 30, tzinfo=dt.UTC).timestamp()
    c = Cluster()
    c.node(0)
    assert plan_job(c.state, _crons_job(["0 3 * * *", "30 1 * * *"]), False, now=T0)["NextPeriodicLaunch"] \
        == "2026-11-27T01:30:00Z"


def test_the_leaders_dispatcher_launches_each_of_a_jobs_crons_in_virtual_time() -> None:
    sched = Scheduler(7)
    base = dt.datetime(2026, 11, 26, 19, 30, 30, tzinfo=dt.UTC).timestamp()
    wall = lambda: base + sched.now

    def boot(env: Any) -> None:
        env.spawn(RaftPeer, "raft", storage=MemoryStorage(), bootstrap=("s1",),
                  leadership_subscribers=(PERIODIC,))
        env.spawn(PeriodicDispatcher, PERIODIC, wall_clock=wall)
    node = sched.add_node("s1", boot)
    sched.run_for(10.0)  # a leader
    fut = sched.future_cls()
    job = _crons_job(["40 * * * *", "35 * * * *"])
    node.actors["raft"].tell(Propose(data=command("job_register", job=job, now=wall()), reply=fut))
    fut.get(timeout=10.0)
    sched.run_for(16 * 60.0)  # 19:30:40 .. 19:46:40: launches at :35 and :40
    state = sched.actor_of(node.actors["raft"]).state
    children = sorted(j for j in state.tables["jobs"] if j.startswith("nightly/"))
    want = [dt.datetime(2026, 11, 26, 19, m, tzinfo=dt.UTC).timestamp() for m in (35, 40)]
    assert children == [f"nightly/periodic-{int(t)}" for t in want]
    dispatcher = sched.actor_of(node.actors[PERIODIC])
    assert dispatcher.next["nightly"] == dt.datetime(2026, 11, 26, 20, 35, tzinfo=dt.UTC).timestamp()
    sched.close()


# ------------------------------------------------------------ a task's leader
def test_the_job_file_takes_a_leader_task_and_a_group_has_at_most_one() -> None:
    j = parse_hcl_job(_restart_file().replace('driver = "raw_exec"', 'driver = "raw_exec"\nleader = true', 1))
    main, other = j["TaskGroups"][0]["Tasks"]
    assert main["Leader"] is True and "Leader" not in other
    main, other = canonical_job(j)["TaskGroups"][0]["Tasks"]
    assert main["Leader"] is True and "Leader" not in other
    j["TaskGroups"][0]["Tasks"][1]["Leader"] = True
    with pytest.raises(JobError, match="Only one task may be marked as leader"):
        canonical_job(j)
    j["TaskGroups"][0]["Tasks"][1]["Leader"] = "yes"
    with pytest.raises(JobError, match=r"Tasks\[1\]\.Leader: must be a boolean"):
        canonical_job(j)


def test_when_the_leader_task_ends_the_others_are_stopped_and_the_allocation_completes() -> None:
    c = Client()
    leader = {**ar_task("leader", run_for_s=3, exit_code=0), "Leader": True}
    c.set(alloc("a1", leader, ar_task("worker", run_for_s=1000), job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 30)
    worker = c.task("a1", "worker")
    assert worker.state == "dead" and not worker.failed
    assert "Leader Task Dead" in events(worker)
    (why,) = [e.message for e in worker.events if e.type == "Leader Task Dead"]
    assert why == "Leader Task in Group dead"
    assert not c.task("a1", "leader").failed


def test_when_the_leader_ends_its_sidecar_is_told_so_and_killed_after_the_others() -> None:
    # Nomad's handleTaskStateUpdates: Leader Task Dead to every live task, sidecars included, then
    # killTasks kills the sidecars last -- no Main Tasks Dead on top.
    c = Client()
    leader = {**ar_task("leader", run_for_s=3, exit_code=0), "Leader": True}
    side = {**ar_task("side", ignore_signals=True), "Lifecycle": {"Hook": "prestart", "Sidecar": True},
            "KillTimeout": 2 * SEC}
    worker = {**ar_task("worker", ignore_signals=True), "KillTimeout": 2 * SEC}
    c.set(alloc("a1", leader, worker, side, job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 30)
    side_state, worker_state = c.task("a1", "side"), c.task("a1", "worker")
    assert events(side_state)[-5:] == ["Started", "Leader Task Dead", "Killing", "Terminated", "Killed"]
    told = side_state.events[-4].time
    assert told == next(e.time for e in worker_state.events if e.type == "Leader Task Dead")
    assert side_state.events[-3].time >= worker_state.finished_at  # killed once the worker was dead


def test_a_stopping_allocation_kills_its_leader_first_then_the_others() -> None:
    c = Client()
    leader = {**ar_task("leader", ignore_signals=True), "Leader": True, "KillTimeout": 5 * SEC}
    c.set(alloc("a1", leader, ar_task("worker")))
    c.until(lambda: c.status("a1") == "running", 10)
    stopped_at = c.sched.now
    c.set(alloc("a1", leader, ar_task("worker"), desired="stop", index=2), index=2)
    c.until(lambda: c.task("a1", "worker").state == "dead", 30)
    lead, worker = c.task("a1", "leader"), c.task("a1", "worker")
    killing = next(e.time for e in worker.events if e.type == "Killing")
    assert lead.finished_at >= stopped_at + 5 and killing >= lead.finished_at  # after the leader's SIGKILL
    assert "Leader Task Dead" not in events(worker)


# ------------------------------------------------------------ shutdown_delay
def test_the_job_file_takes_group_and_task_shutdown_delays() -> None:
    text = _restart_file().replace('restart {\n              attempts = 5', 'shutdown_delay = "5s"\n'
                                   'restart {\n              attempts = 5', 1)
    text = text.replace('driver = "raw_exec"', 'driver = "raw_exec"\nshutdown_delay = "2s"', 1)
    j = parse_hcl_job(text)
    g = j["TaskGroups"][0]
    assert g["ShutdownDelay"] == 5 * SEC and g["Tasks"][0]["ShutdownDelay"] == 2 * SEC
    c = canonical_job(j)["TaskGroups"][0]
    assert c["ShutdownDelay"] == 5 * SEC and c["Tasks"][0]["ShutdownDelay"] == 2 * SEC
    assert "ShutdownDelay" not in c["Tasks"][1]
    for where in (g, g["Tasks"][1]):
        where["ShutdownDelay"] = -1
        with pytest.raises(JobError, match="ShutdownDelay: ShutdownDelay must be a positive value"):
            canonical_job(j)
        where["ShutdownDelay"] = 0


def test_a_stopped_task_waits_out_its_shutdown_delay_before_its_kill_signal() -> None:
    c = Client()
    slow = {**ar_task("t"), "ShutdownDelay": 5 * SEC}
    c.set(alloc("a1", slow))
    c.until(lambda: c.status("a1") == "running", 10)
    stopped_at = c.sched.now
    c.set(alloc("a1", slow, desired="stop", index=2), index=2)
    c.until(lambda: "Waiting for shutdown delay" in events(c.task("a1")), 5)
    st = c.task("a1")
    assert st.state == "pending"  # as Nomad's task runner shows it while it waits
    (waiting,) = [e.message for e in st.events if e.type == "Waiting for shutdown delay"]
    assert waiting == "Waiting for shutdown_delay of 5s before killing the task."
    proc = c.driver.find("a1", "t")
    assert proc is not None
    c.until(lambda: c.task("a1").state == "dead", 30)
    assert proc.ended_at >= stopped_at + 5 and c.status("a1") == "complete"
    # Nomad's Kill: its Killing event at once, the shutdown_delay's after it, and no second one
    assert events(c.task("a1"))[-4:] == ["Killing", "Waiting for shutdown delay", "Terminated", "Killed"]
    assert c.task("a1").events[-4].time < stopped_at + 1


def test_a_groups_shutdown_delay_keeps_its_tasks_running_before_they_are_killed() -> None:
    c = Client()
    raw = alloc("a1", ar_task("web"), ar_task("side"))
    raw["Job"]["TaskGroups"][0]["ShutdownDelay"] = 4 * SEC
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 10)
    stopped_at = c.sched.now
    c.set({**raw, "DesiredStatus": "stop", "AllocModifyIndex": 2}, index=2)
    c.run(3.0)
    assert len([p for p in c.driver.running() if p.alloc_id == "a1"]) == 2
    c.until(lambda: c.status("a1") == "complete", 30)
    for name in ("web", "side"):
        assert next(e.time for e in c.task("a1", name).events if e.type == "Killing") >= stopped_at + 4


def test_a_task_that_exits_during_its_shutdown_delay_is_not_restarted_and_restarts_do_not_wait() -> None:
    c = Client()
    leader = {**ar_task("leader", run_for_s=3), "Leader": True}
    worker = {**ar_task("worker"), "ShutdownDelay": 60 * SEC}
    c.set(alloc("a1", leader, worker, job_type="batch"))
    c.until(lambda: "Waiting for shutdown delay" in events(c.task("a1", "worker")), 10)
    assert c.driver.crash("a1", "worker", exit_code=1)
    c.until(lambda: c.status("a1") == "complete", 10)
    assert c.task("a1", "worker").restarts == 0 and not c.task("a1", "worker").failed
    # A crash of a running task is restarted after its restart delay, not its shutdown_delay.
    c.set(alloc("a2", {**ar_task("t"), "ShutdownDelay": 60 * SEC}, restart=policy(3, 3600, 1)))
    c.until(lambda: c.status("a2") == "running", 10)
    crashed = c.sched.now
    assert c.driver.crash("a2", "t", exit_code=1)
    c.until(lambda: c.task("a2").restarts == 1 and c.task("a2").state == "running", 10)
    assert c.starts_of("a2")[-1] - crashed < 5


def test_a_stop_that_says_no_shutdown_delay_kills_at_once_and_says_it_skipped_the_delay() -> None:
    """Nomad's DesiredTransition.NoShutdownDelay (`job stop` / `alloc stop -no-shutdown-delay`)."""
    c = Client()
    slow = {**ar_task("t"), "ShutdownDelay": 60 * SEC}
    raw = alloc("a1", slow)
    raw["Job"]["TaskGroups"][0]["ShutdownDelay"] = 60 * SEC
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 10)
    stopped_at = c.sched.now
    c.set({**raw, "DesiredStatus": "stop", "AllocModifyIndex": 2,
           "DesiredTransition": {"Migrate": True, "NoShutdownDelay": True}}, index=2)
    c.until(lambda: c.status("a1") == "complete", 10)
    st = c.task("a1")
    assert st.finished_at < stopped_at + 5
    assert events(st)[-4:] == ["Killing", "Skipping shutdown delay", "Terminated", "Killed"]
    (skip,) = [e.message for e in st.events if e.type == "Skipping shutdown delay"]
    assert skip == "Skipping shutdown_delay of 1m0s before killing the task."


def test_no_shutdown_delay_arriving_during_a_shutdown_delay_ends_the_wait() -> None:
    """Nomad's shutdownDelayCancelFn: a second stop with -no-shutdown-delay hurries the first."""
    c = Client()
    slow = {**ar_task("t"), "ShutdownDelay": 60 * SEC}
    c.set(alloc("a1", slow))
    c.until(lambda: c.status("a1") == "running", 10)
    c.set(alloc("a1", slow, desired="stop", index=2), index=2)
    c.until(lambda: "Waiting for shutdown delay" in events(c.task("a1")), 5)
    hurried_at = c.sched.now
    c.set({**alloc("a1", slow, desired="stop", index=3), "DesiredTransition": {"NoShutdownDelay": True}},
          index=3)
    c.until(lambda: c.status("a1") == "complete", 10)
    assert c.task("a1").finished_at < hurried_at + 5


def test_job_stop_and_alloc_stop_with_no_shutdown_delay_mark_the_allocations() -> None:
    c = Cluster()
    c.node(0)
    c.register(**service(count=2))
    c.register(**service("other", count=1))
    c.schedule()
    c.client("running")
    allocs = c.state.tables["allocs"]
    web = sorted(a["ID"] for a in allocs.values() if a["JobID"] == "web")
    (other,) = [a["ID"] for a in allocs.values() if a["JobID"] == "other"]
    assert c.apply("alloc_stop", alloc_id=other, no_shutdown_delay=True, reschedule=False)["ok"]
    assert allocs[other]["DesiredTransition"] == {"Migrate": True, "NoShutdownDelay": True, "Reschedule": False}
    assert allocs[other]["AllocModifyIndex"] == c.index
    assert c.apply("job_deregister", job_id="web", purge=False, no_shutdown_delay=True)["ok"]
    for aid in web:
        assert allocs[aid]["DesiredTransition"] == {"NoShutdownDelay": True}
        assert allocs[aid]["ModifyIndex"] == allocs[aid]["AllocModifyIndex"] == c.index
    c.schedule()
    assert all(allocs[aid]["DesiredStatus"] == "stop" and allocs[aid]["DesiredTransition"]["NoShutdownDelay"]
               for aid in web)


# ------------------------------------------------------------ job ui
def test_the_job_file_carries_the_jobs_ui_block_and_the_job_keeps_it() -> None:
    j = parse_hcl_job('''
        job "web" {
          ui {
            description = "A job that uses **Nomad Variables**"
            link {
              label = "Learn more about Nomad"
              url   = "https://developer.hashicorp.com/nomad"
            }
            link {
              label = "Nomad on GitHub"
              url   = "https://github.com/hashicorp/nomad"
            }
          }
          group "g" {
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert j["UI"] == {"Description": "A job that uses **Nomad Variables**", "Links": [
        {"Label": "Learn more about Nomad", "URL": "https://developer.hashicorp.com/nomad"},
        {"Label": "Nomad on GitHub", "URL": "https://github.com/hashicorp/nomad"}]}
    ui = canonical_job(j)["UI"]  # as Nomad's servers keep it: Url
    assert ui["Links"][1] == {"Label": "Nomad on GitHub", "Url": "https://github.com/hashicorp/nomad"}
    assert "UI" not in canonical_job(service())
    with pytest.raises(JobError, match=r"UI.Links\[0\].Label: must be a string"):
        canonical_job({**service(), "UI": {"Links": [{"Label": 3}]}})



# ------------------------------------------------------------ restart { render_templates }
@pytest.mark.parametrize("render", [False, True])
def test_render_templates_renders_a_restarted_tasks_templates_afresh(render: bool, monkeypatch: Any) -> None:
    c = tboot()
    set_var(c, "nomad/jobs/web", {"password": "one"})
    source = [b'{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}']
    reads: list[str] = []

    def read(_self: Any, alloc_id: str, path: str, limit: int) -> bytes:
        reads.append(path)
        return source[0]
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", read)
    j = tjob([{"SourcePath": "local/in.tpl", "DestPath": "local/out", "ChangeMode": "noop", "Splay": 0}])
    j["TaskGroups"][0]["RestartPolicy"] = {"Attempts": 3, "Interval": 3600 * SEC, "Delay": SEC,
                                           "Mode": "fail", **({"RenderTemplates": True} if render else {})}
    c.register(j)
    tuntil(c, lambda: len(procs(c)) == 1)
    assert files(c)["t/local/out"] == b"one" and reads == ["t/local/in.tpl"]
    source[0] = b"changed {{ with nomadVar \"nomad/jobs/web\" }}{{ .password }}{{ end }}"
    assert c.drivers["c0001"].crash(procs(c)[0].alloc_id, "t", exit_code=1)
    tuntil(c, lambda: len(procs(c)) == 2 and procs(c)[1].ended_at is None)
    # Nomad's template hook keeps its manager on a restart, unless render_templates makes a new one.
    assert files(c)["t/local/out"] == (b"changed one" if render else b"one")
    assert reads == ["t/local/in.tpl"] * (2 if render else 1)
    set_var(c, "nomad/jobs/web", {"password": "two"})  # and it is watched as before
    tuntil(c, lambda: files(c)["t/local/out"].endswith(b"two"))


def test_the_job_file_takes_render_templates_and_the_job_keeps_it_when_set() -> None:
    text = _restart_file().replace('attempts = 1', 'attempts = 1\nrender_templates = true', 1)
    j = parse_hcl_job(text)
    assert j["TaskGroups"][0]["Tasks"][0]["RestartPolicy"]["RenderTemplates"] is True
    g = canonical_job(j)["TaskGroups"][0]
    assert g["Tasks"][0]["RestartPolicy"]["RenderTemplates"] is True
    assert "RenderTemplates" not in g["RestartPolicy"]
    j["TaskGroups"][0]["RestartPolicy"]["RenderTemplates"] = "yes"
    with pytest.raises(JobError, match=r"RestartPolicy.RenderTemplates: must be a boolean"):
        canonical_job(j)


# ------------------------------------------------------------ check tls_skip_verify, Consul's check keys
def test_the_job_file_carries_a_checks_tls_skip_verify_and_consuls_keys_get_nomads_messages() -> None:
    check = ('check {\n type = "http"\n protocol = "https"\n path = "/health"\n interval = "10s"\n'
             ' timeout = "2s"\n %s\n}')
    j = parse_hcl_job(_service_file(check % "tls_skip_verify = true"))
    assert j["TaskGroups"][0]["Services"][0]["Checks"][0]["TLSSkipVerify"] is True
    (c,) = canonical_job(j)["TaskGroups"][0]["Services"][0]["Checks"]
    assert c["TLSSkipVerify"] is True and c["Protocol"] == "https"
    (c,) = checks_of(canonical_job(job(http())))
    assert "TLSSkipVerify" not in c  # a job stored before is the job it was
    for key, message in [("success_before_passing = 2", "success_before_passing may only be set for Consul"),
                         ('tls_server_name = "x"', "tls_server_name may only be set for Consul"),
                         ("expose = true", "expose may only be set for Consul service checks"),
                         ('command = "/bin/true"', "command is not used by nomad service checks")]:
        with pytest.raises(JobError, match=message):
            canonical_job(parse_hcl_job(_service_file(check % key)))


def test_the_client_runs_an_https_check_without_verifying_its_certificate_when_told_to(tmp_path: Any) -> None:
    import http.server as http_server
    import ssl
    import threading

    from actors.client.checks import FAILURE, SUCCESS, alloc_checks
    from runtime import cli_tls
    from runtime.probes import run_probe

    cli_tls.create_ca(str(tmp_path))
    cli_tls.create_cert("server", str(tmp_path), ca_file=str(tmp_path / cli_tls.CA_FILE),
                        ca_key_file=str(tmp_path / cli_tls.CA_KEY_FILE))

    class Handler(http_server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass
    httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tmp_path / "global-server-nomad.pem"),
                        str(tmp_path / "global-server-nomad-key.pem"))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        raw_job = canonical_job(job(http(Protocol="https"), http(Name="insecure", Protocol="https",
                                                                 TLSSkipVerify=True)))
        raw = {"ID": "a1", "Name": "web.g[0]", "TaskGroup": "g", "Job": raw_job,
               "AllocatedPorts": [{"Label": "http", "Value": port, "HostIP": "127.0.0.1"}]}
        verified, insecure = sorted(alloc_checks(raw), key=lambda s: s.tls_skip_verify)
        assert insecure.tls_skip_verify and insecure.id != verified.id
        assert run_probe(verified)[0] == FAILURE  # signed by a CA this host does not trust
        assert run_probe(insecure) == (SUCCESS, 200, "nomad: http ok")
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------ template uid / gid
def test_the_job_file_carries_a_templates_uid_and_gid_and_the_job_keeps_them() -> None:
    config = 'config { command = "/bin/true" }'
    tmpl = '\ntemplate {\n data = "x"\n destination = "local/x"\n uid = 1234\n gid = 5678\n}'
    text = _restart_file().replace(config, config + tmpl, 1)
    j = parse_hcl_job(text)
    assert j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Uid"] == 1234
    (t,) = canonical_job(j)["TaskGroups"][0]["Tasks"][0]["Templates"]
    assert (t["Uid"], t["Gid"]) == (1234, 5678)
    j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Uid"] = "root"
    with pytest.raises(JobError, match=r"Templates\[0\]\.Uid: must be an integer"):
        canonical_job(j)
    del j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Uid"]
    del j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Gid"]
    assert "Uid" not in canonical_job(j)["TaskGroups"][0]["Tasks"][0]["Templates"][0]


def test_a_rendered_template_is_owned_by_its_uid_and_gid() -> None:
    c = tboot()
    c.register(tjob([{"EmbeddedTmpl": "owned", "DestPath": "local/owned", "Uid": 1234, "Gid": 5678},
                     {"EmbeddedTmpl": "mine", "DestPath": "local/mine", "Uid": -1}]))
    tuntil(c, lambda: len(procs(c)) == 1)
    owners = {path: o for (_, path), o in c.alloc_dirs["c0001"].owners.items()}
    assert owners == {"t/local/owned": (1234, 5678)}  # -1: the agent's own, left as it is


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_the_disk_writes_a_template_with_its_owner(tmp_path: Any) -> None:
    (tmp_path / "a1" / "t" / "local").mkdir(parents=True)
    dirs = DiskAllocDirs(str(tmp_path))
    dirs.write_alloc_file("a1", "t/local/app.conf", b"x", 0o640, (1234, 5678))
    st = (tmp_path / "a1/t/local/app.conf").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 5678, 0o640)
    dirs.write_alloc_file("a1", "t/local/app.conf", b"y", 0o644)
    st = (tmp_path / "a1/t/local/app.conf").stat()
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


# ------------------------------------------------------------ job-level migrate
def test_a_job_level_migrate_block_is_merged_under_each_groups() -> None:
    j = parse_hcl_job('''
        job "web" {
          migrate {
            max_parallel     = 3
            min_healthy_time = "20s"
          }
          group "a" {
            count = 6
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
          group "b" {
            count = 6
            migrate { max_parallel = 2 }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert j["Migrate"] == {"MaxParallel": 3, "MinHealthyTime": 20 * SEC}
    c = canonical_job(j)
    a, b = c["TaskGroups"]
    assert a["Migrate"]["MaxParallel"] == 3 and a["Migrate"]["MinHealthyTime"] == 20 * SEC
    assert b["Migrate"]["MaxParallel"] == 2 and b["Migrate"]["MinHealthyTime"] == 20 * SEC
    assert "Migrate" not in c  # merged into the groups, as the reschedule block is
    assert canonical_job(c) == c


# ------------------------------------------------------------ template once
def test_a_once_template_is_rendered_before_the_start_and_never_again() -> None:
    c = tboot()
    set_var(c, "nomad/jobs/web", {"password": "one"})
    set_var(c, "nomad/jobs/web/g", {"user": "alice"})
    once = {"EmbeddedTmpl": '{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}',
            "DestPath": "local/once", "ChangeMode": "restart", "Splay": 0, "Once": True}
    watched = {"EmbeddedTmpl": '{{ with nomadVar "nomad/jobs/web/g" }}{{ .user }}{{ end }}',
               "DestPath": "local/watched", "ChangeMode": "noop", "Splay": 0}
    c.register(tjob([once, watched]))
    tuntil(c, lambda: len(procs(c)) == 1)
    assert files(c)["t/local/once"] == b"one" and files(c)["t/local/watched"] == b"alice"
    runner = c.sched.actor_of(c.sched.nodes["c0001"].actors["alloc-runner"])
    (task,) = [t for a in runner.allocs.values() for t in a.tasks.values()]
    assert sorted(task.tmpl_data) == [("var", "nomad/jobs/web/g")]  # the once one's data is not watched
    set_var(c, "nomad/jobs/web", {"password": "two"})
    set_var(c, "nomad/jobs/web/g", {"user": "bob"})
    tuntil(c, lambda: files(c)["t/local/watched"] == b"bob")
    c.run(5.0)
    assert files(c)["t/local/once"] == b"one" and len(procs(c)) == 1  # not re-rendered, no restart


def test_the_job_file_takes_a_templates_once() -> None:
    config = 'config { command = "/bin/true" }'
    text = _restart_file().replace(config, config + '\ntemplate {\n data = "x"\n destination = "local/x"\n'
                                   ' once = true\n}', 1)
    j = parse_hcl_job(text)
    assert j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Once"] is True
    assert canonical_job(j)["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Once"] is True
    j["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Once"] = "yes"
    with pytest.raises(JobError, match=r"Templates\[0\]\.Once: must be a boolean"):
        canonical_job(j)


# ------------------------------------------------------------ artifact insecure / chown
def test_the_job_file_carries_an_artifacts_insecure_and_chown() -> None:
    config = 'config { command = "/bin/true" }'
    art = '\nartifact {\n source = "https://example.com/x.tgz"\n insecure = true\n chown = true\n}'
    j = parse_hcl_job(_restart_file().replace(config, config + art, 1))
    (a,) = canonical_job(j)["TaskGroups"][0]["Tasks"][0]["Artifacts"]
    assert a["GetterInsecure"] is True and a["Chown"] is True
    del j["TaskGroups"][0]["Tasks"][0]["Artifacts"][0]["Chown"]
    (a,) = canonical_job(j)["TaskGroups"][0]["Tasks"][0]["Artifacts"]
    assert "Chown" not in a


def test_an_insecure_artifact_is_fetched_from_https_without_a_certificate_check(tmp_path: Any) -> None:
    import ssl

    from gevent.pywsgi import WSGIServer

    from actors.client.artifacts import ArtifactFetch
    from runtime import cli_tls
    from runtime.artifacts import ArtifactError, fetch_artifact
    from tests.test_artifacts import LIMITS

    pki = tmp_path / "pki"
    pki.mkdir()
    cli_tls.create_ca(str(pki))
    cli_tls.create_cert("server", str(pki), ca_file=str(pki / cli_tls.CA_FILE),
                        ca_key_file=str(pki / cli_tls.CA_KEY_FILE))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        return [b"hello"]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki / "global-server-nomad.pem"), str(pki / "global-server-nomad-key.pem"))
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, ssl_context=ctx)
    server.start()
    try:
        root = str(tmp_path / "alloc")

        def fetch(insecure: bool) -> None:
            fetch_artifact(ArtifactFetch(source=f"https://127.0.0.1:{server.server_port}/x", options=(),
                                         headers=(), mode="file", dest=os.path.join(root, "t/local/x"),
                                         root=root, insecure=insecure), LIMITS)
        with pytest.raises((ArtifactError, OSError)):
            fetch(False)  # signed by a CA this host does not trust
        fetch(True)
        assert (tmp_path / "alloc/t/local/x").read_bytes() == b"hello"
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_chown_artifact_becomes_the_task_users(tmp_path: Any) -> None:
    import pwd

    from actors.client.artifacts import ArtifactFetch
    from runtime.artifacts import ArtifactError, chown_destination, place
    from tests.test_artifacts import LIMITS, tgz

    nobody = pwd.getpwnam("nobody")
    root = tmp_path / "alloc"
    archive = tmp_path / "a.tgz"
    archive.write_bytes(tgz({"bin/app": b"x", "README": b"y"}))
    dest = str(root / "t/local")
    a = ArtifactFetch(source="https://e.com/a.tgz", options=(), headers=(), mode="any", dest=dest,
                      root=str(root), chown_user="nobody")
    place(a, str(archive), "a.tgz", "tar.gz", LIMITS)
    for path in (root / "t/local", root / "t/local/bin", root / "t/local/bin/app", root / "t/local/README"):
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    with pytest.raises(ArtifactError, match="failed to chown artifact: user: unknown user no-such-user"):
        chown_destination(dest, "no-such-user")


# ------------------------------------------------------------ max_run_duration
def test_the_job_file_takes_max_run_duration_for_a_batch_group_only() -> None:
    text = _restart_file().replace('restart {\n              attempts = 5', 'max_run_duration = "1h"\n'
                                   'restart {\n              attempts = 5', 1)
    j = parse_hcl_job(text)
    assert j["TaskGroups"][0]["MaxRunDuration"] == 3600 * SEC
    assert canonical_job(j)["TaskGroups"][0]["MaxRunDuration"] == 3600 * SEC
    assert "MaxRunDuration" not in canonical_job(service())["TaskGroups"][0]
    with pytest.raises(JobError, match='Job type "service" does not allow max_run_duration'):
        canonical_job({**j, "Type": "service"})
    j["TaskGroups"][0]["MaxRunDuration"] = 0
    with pytest.raises(JobError, match="MaxRunDuration must be greater than zero"):
        canonical_job(j)


def test_a_batch_allocation_past_its_max_run_duration_is_killed_and_complete() -> None:
    c = Client()
    c.run(5.0)
    after = {**ar_task("after", run_for_s=1), "Lifecycle": {"Hook": "poststop"}}
    raw = alloc("a1", ar_task("main", run_for_s=1000), after, job_type="batch")
    raw["Job"]["TaskGroups"][0]["MaxRunDuration"] = 30 * SEC
    raw["CreateTime"] = c.sched.now - 10  # placed 10 s ago: 20 s left
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 5)
    start = c.sched.now
    c.until(lambda: c.status("a1") == "complete", 60)
    assert 19 <= c.sched.now - start <= 21
    assert c.latest("a1").client_description == "allocation exceeded max_run_duration"
    main = c.task("a1", "main")
    assert ("Killing", "allocation exceeded max_run_duration") in [(e.type, e.message) for e in main.events]
    c.until(lambda: c.task("a1", "main").state == "dead", 30)
    assert not c.task("a1", "main").failed and c.task("a1", "after").state == "dead"
    assert c.driver.starts == 1  # the poststop task never started


def test_a_service_allocation_ignores_a_max_run_duration() -> None:
    c = Client()
    c.run(5.0)
    raw = alloc("a1", ar_task("main"))
    raw["Job"]["TaskGroups"][0]["MaxRunDuration"] = 5 * SEC
    raw["CreateTime"] = c.sched.now
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 5)
    c.run(20.0)
    assert c.status("a1") == "running"


def test_the_servers_see_a_batch_allocation_complete_once_its_max_run_duration_passed() -> None:
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1)))
    c.run(30.0)
    c.register(sim_job(count=1, job_type="batch", run_for_s=1000, MaxRunDuration=20 * SEC))
    end = c.sched.now + 60
    while not (c.allocs("web") and c.allocs("web")[0]["ClientStatus"] == "complete"):
        assert c.sched.now < end
        c.run(1.0)
    (a,) = c.allocs("web")
    assert a["ClientDescription"] == "allocation exceeded max_run_duration"
    assert a["CreateTime"] + 20 <= c.sched.now <= a["CreateTime"] + 22
    c.run(10.0)
    assert len(c.allocs("web")) == 1  # complete: a batch allocation is not placed again


def test_a_restarted_client_keeps_an_allocations_max_run_duration() -> None:
    c = Client()
    c.run(5.0)
    raw = alloc("a1", ar_task("main", run_for_s=1000), job_type="batch")
    raw["Job"]["TaskGroups"][0]["MaxRunDuration"] = 30 * SEC
    raw["CreateTime"] = c.sched.now
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.restart()  # its timer is armed again from the allocation's CreateTime
    c.set(raw)
    c.until(lambda: c.status("a1") == "complete", 60)
    assert 35 <= c.sched.now <= 37 and c.runner.stats["reattached"] == 1
    c.node.restart()  # and once past it, it stays complete
    c.set(raw)
    c.run(5.0)
    assert c.status("a1") == "complete" and c.task("a1", "main").state == "dead"


def test_an_allocation_updated_in_place_takes_the_new_versions_delays_policies_and_deadline() -> None:
    c = Client()
    c.run(5.0)
    raw = alloc("a1", ar_task("main", run_for_s=1000), job_type="batch", restart=policy(1, 3600, 1))
    raw["CreateTime"] = c.sched.now
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 5)
    new = {**raw, "AllocModifyIndex": 2, "Job": {**raw["Job"], "TaskGroups": [
        {**raw["Job"]["TaskGroups"][0], "MaxRunDuration": 20 * SEC, "ShutdownDelay": 2 * SEC,
         "RestartPolicy": policy(4, 3600, 1),
         "Tasks": [{**raw["Job"]["TaskGroups"][0]["Tasks"][0], "ShutdownDelay": 3 * SEC, "Leader": True}]}]}}
    c.set(new, index=2)
    c.run(1.0)
    a = c.runner.allocs["a1"]
    (t,) = a.tasks.values()
    assert (a.spec.max_run_s, a.spec.shutdown_delay_s, a.spec.restart.attempts) == (20.0, 2.0, 4)
    assert t.spec.leader and t.spec.shutdown_delay_s == 3.0 and t.phase == "running"
    c.until(lambda: c.status("a1") == "complete", 60)  # the deadline the new version set


def test_a_json_job_reserving_whole_cores_asks_for_no_cpu_mhz_and_is_validated_as_nomad() -> None:
    """Nomad's ``resources { cores = N }`` reserves whole CPU cores: with cores and no cpu the task's CPU
    is 0, not the default 100 (api Resources.Canonicalize); both, negative cores, or neither (cores = 0
    explicitly, no cpu) are refused with Nomad's Resources.Validate messages."""
    from actors.scheduler.job import JobError, canonical_job

    def job(res: dict) -> dict:
        return {"ID": "x", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [
            {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"}, "Resources": res}]}]}

    def res(r: dict) -> dict:
        return canonical_job(job(r))["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert (res({"Cores": 2})["CPU"], res({"Cores": 2})["Cores"]) == (0, 2)
    assert res({"Cores": 2, "CPU": 0})["CPU"] == 0
    assert res({})["CPU"] == 100 and "Cores" not in res({})
    assert res({"Cores": 0, "CPU": 250})["CPU"] == 250
    with pytest.raises(JobError, match=r"Task can only ask for 'cpu' or 'cores' resource, not both\."):
        res({"Cores": 1, "CPU": 500})
    with pytest.raises(JobError, match=r"cores value \(-1\) cannot be negative"):
        res({"Cores": -1})
    with pytest.raises(JobError, match=r"minimum CPU value is 1; got 0"):
        res({"Cores": 0})


def _json_job(task: dict | None = None, group: dict | None = None) -> dict:
    t = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"}, **(task or {})}
    return {"ID": "x", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [t], **(group or {})}]}


@pytest.mark.parametrize("task, group, why", [
    ({"Vault": {"Policies": ["a"]}}, None, 'Tasks[0].Vault: Vault "default" not enabled but used in the job'),
    ({"Vault": {"Cluster": "other"}}, None, 'Vault "other" not enabled but used in the job'),
    ({"Schedule": {"Cron": {"Start": "0 1 * * *", "End": "0 2 * * *"}}}, None,
     "task schedules requires Nomad Enterprise"),
    ({"Resources": {"NUMA": {"Affinity": "require"}}}, None, "numa scheduling requires Nomad Enterprise"),
    ({"Resources": {"Devices": [{"Name": "nvidia/gpu", "Count": 1}]}}, None,
     "Resources.Devices: devices (resources.device) are not supported by this agent"),
    ({"CSIPluginConfig": {"ID": "p", "Type": "node"}}, None, "CSI plugins (csi_plugin) are not supported"),
    ({"Kind": "connect-proxy:web"}, None, "task kind 'connect-proxy:web' (Consul Connect) is not supported"),
    ({"Consul": {"Cluster": "other"}}, None, "non-default Consul cluster requires Nomad Enterprise"),
    (None, {"Consul": {"Cluster": "other"}}, "TaskGroups[0].Consul: non-default Consul cluster requires"),
    (None, {"Services": [{"Name": "s", "Connect": {"SidecarService": {}}}]},
     "Services[0].Connect: Consul Connect (service.connect) is not supported by this agent"),
])
def test_a_json_job_block_this_agent_would_ignore_is_refused_as_the_hcl_form_is(task, group, why) -> None:
    """JSON jobs took these blocks and then ignored them (a Vault block, a device, a Connect sidecar),
    where the HCL form refuses them: now refused too, with Nomad CE's message where it has one."""
    import re

    from actors.scheduler.job import JobError, canonical_job
    with pytest.raises(JobError, match=re.escape(why)):
        canonical_job(_json_job(task, group))


def test_the_null_and_default_blocks_nomads_own_tools_send_are_still_taken() -> None:
    from actors.scheduler.job import canonical_job
    canonical_job(_json_job({"Vault": None, "Schedule": None, "CSIPluginConfig": None, "Kind": "", "Consul": None,
                             "Resources": {"CPU": 100, "MemoryMB": 64, "Devices": None, "Cores": 0,
                                           "NUMA": {"Affinity": "none", "Devices": None}}},
                            {"Consul": {"Cluster": "default", "Namespace": "", "Partition": ""},
                             "Services": [{"Name": "s", "Connect": None}]}))
