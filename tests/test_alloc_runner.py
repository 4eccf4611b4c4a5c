"""AllocRunner in the simulator (virtual time) on the SimDriver.

Each test builds one simulated client node whose boot spawns a reporter and
the runner over a SimDriver and a MemoryAllocStore that outlive the node,
so a node restart re-attaches to tasks that kept running.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.client.alloc_runner import (
    RestartTasks,
    ServerLink,
    SignalTasks,
    NS,
    AllocRunner,
    AllocRunnerConfig,
    AllocUpdate,
    AllocUpdates,
    FileAllocStore,
    GetAllocStats,
    MemoryAllocStore,
    RestartPolicy,
    SetAllocs,
    TaskState,
    client_status,
    decide_restart,
)
from actors.client.drivers import SimDriver, TaskHandle
from runtime.actor import NodeActor
from sim.runtime import Scheduler

pytestmark = pytest.mark.timeout(60)


class Reporter(NodeActor):
    def __init__(self, env: Any, name: str, got: list[AllocUpdates]) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message: Any) -> Any:
        if isinstance(message, AllocUpdates):
            self.got.append(message)
        return None


class Client:
    """One simulated client node: reporter + runner; driver and store survive restarts."""

    def __init__(self, seed: int = 1, config: AllocRunnerConfig | None = None, store: Any = None,
                 watch: bool = False, driver_class: type[SimDriver] = SimDriver) -> None:
        self.sched = Scheduler(seed)
        # watch=False: the runner polls the driver (raw_exec's way); True: the driver tells exits.
        self.driver = driver_class(lambda: self.sched.now,
                                   schedule=(lambda when, fn: self.sched.at(when, fn)) if watch else None)
        self.store = store if store is not None else MemoryAllocStore()
        self.got: list[AllocUpdates] = []
        self.config = config or AllocRunnerConfig()
        self.node = self.sched.add_node("c1", self._boot)

    def _boot(self, env: Any) -> None:
        env.spawn(Reporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root="/sim/allocs", reporter="reporter", config=self.config)

    @property
    def runner(self) -> AllocRunner:
        return self.sched.actor_of(self.node.actors["allocs"])

    def set(self, *allocs: dict[str, Any], index: int = 1) -> None:
        self.node.actors["allocs"].tell(SetAllocs(allocs=tuple(allocs), index=index))

    def run(self, seconds: float) -> None:
        self.sched.run_for(seconds)

    def until(self, cond: Any, timeout_s: float = 120.0) -> None:
        assert self.sched.run_until(cond, timeout_s), f"not within {timeout_s}s (now {self.sched.now})"

    def latest(self, aid: str) -> AllocUpdate | None:
        for m in reversed(self.got):
            for u in m.updates:
                if u.alloc_id == aid:
                    return u
        return None

    def status(self, aid: str) -> str:
        u = self.latest(aid)
        return u.client_status if u else ""

    def task(self, aid: str, name: str = "t") -> TaskState:
        u = self.latest(aid)
        return dict(u.task_states)[name] if u else TaskState(state="unreported")

    def statuses(self, aid: str) -> list[str]:
        return [u.client_status for m in self.got for u in m.updates if u.alloc_id == aid]

    def starts_of(self, aid: str, name: str = "t") -> list[float]:
        return [p.started_at for _, p in sorted(self.driver.procs.items())
                if p.alloc_id == aid and p.task_name == name]


def task(name: str = "t", **config: Any) -> dict[str, Any]:
    return {"Name": name, "Driver": "sim", "Config": config, "Resources": {"CPU": 100, "MemoryMB": 64}}


def alloc(aid: str, *tasks: dict[str, Any], job_type: str = "service", desired: str = "run", index: int = 1,
          restart: dict[str, Any] | None = None, **task_fields: Any) -> dict[str, Any]:
    tasks = tasks or (task(),)
    tasks = tuple({**t, **task_fields} for t in tasks)
    group: dict[str, Any] = {"Name": "g", "Count": 1, "Tasks": list(tasks)}
    if restart is not None:
        group["RestartPolicy"] = restart
    job = {"ID": f"job-{aid}", "Type": job_type, "TaskGroups": [group]}
    return {"ID": aid, "JobID": job["ID"], "TaskGroup": "g", "DesiredStatus": desired,
            "ClientStatus": "pending", "AllocModifyIndex": index, "Job": job}


def policy(attempts: int, interval_s: float, delay_s: float, mode: str = "fail") -> dict[str, Any]:
    return {"Attempts": attempts, "Interval": int(interval_s * NS), "Delay": int(delay_s * NS), "Mode": mode}


def events(state: TaskState) -> list[str]:
    return [e.type for e in state.events]


# ------------------------------------------------------------ start and stop
def test_desired_run_starts_every_task_and_reports_running():
    c = Client()
    c.set(alloc("a1", task("web"), task("side")))
    c.until(lambda: c.status("a1") == "running", 5)
    assert sorted(p.task_name for p in c.driver.running()) == ["side", "web"]
    st = c.task("a1", "web")
    assert st.state == "running" and not st.failed and st.restarts == 0
    assert events(st) == ["Received", "Task Setup", "Started"]
    assert c.runner.stats["starts"] == 2


def test_updates_made_in_one_step_are_coalesced_into_one_message():
    c = Client()
    c.set(alloc("a1"), alloc("a2"), alloc("a3"))
    c.until(lambda: len(c.got) >= 1, 5)
    c.run(1)
    assert len(c.got) == 1
    assert sorted(u.alloc_id for u in c.got[0].updates) == ["a1", "a2", "a3"]


def test_stop_sends_the_kill_signal_and_the_alloc_completes():
    c = Client()
    c.set(alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    c.set(alloc("a1", desired="stop", index=2), index=2)
    c.until(lambda: c.status("a1") == "complete", 5)
    st = c.task("a1")
    assert st.state == "dead" and not st.failed and st.finished_at > 0
    assert "Killing" in events(st) and events(st)[-1] == "Killed"
    killing = next(e for e in st.events if e.type == "Killing")  # Nomad's TaskKilling display message
    assert killing.message == "Sent interrupt. Waiting 5s before force killing"
    assert dict(killing.details) == {"kill_timeout": "5s"}
    (proc,) = [p for p in c.driver.procs.values() if p.alloc_id == "a1"]
    assert proc.signals == ["SIGINT"]  # Nomad's default kill_signal, and no SIGKILL needed


def test_kill_signal_of_the_task_is_used():
    c = Client()
    c.set(alloc("a1", KillSignal="SIGTERM"))
    c.until(lambda: c.status("a1") == "running", 5)
    c.set(alloc("a1", desired="evict", index=2, KillSignal="SIGTERM"), index=2)
    c.until(lambda: c.status("a1") == "complete", 5)
    (proc,) = c.driver.procs.values()
    assert proc.signals == ["SIGTERM"]


def test_a_task_ignoring_the_signal_is_sigkilled_after_its_kill_timeout():
    c = Client()
    c.set(alloc("a1", task(ignore_signals=True), KillTimeout=3 * NS))
    c.until(lambda: c.status("a1") == "running", 5)
    t0 = c.sched.now
    c.set(alloc("a1", task(ignore_signals=True), desired="stop", index=2, KillTimeout=3 * NS), index=2)
    c.run(2.9)
    (proc,) = c.driver.procs.values()
    assert proc.signals == ["SIGINT"] and proc.result is None  # still within its kill timeout
    c.until(lambda: c.status("a1") == "complete", 5)
    assert proc.signals == ["SIGINT", "SIGKILL"]
    assert proc.ended_at is not None and 3.0 <= proc.ended_at - t0 < 3.1
    assert c.task("a1").state == "dead" and not c.task("a1").failed
    # Nomad's executor escalates to SIGKILL without a task event of its own
    assert events(c.task("a1"))[-3:] == ["Killing", "Terminated", "Killed"]


def test_kill_timeout_is_capped_by_max_kill_timeout():
    c = Client(config=AllocRunnerConfig(max_kill_timeout_s=10.0))
    spec = dict(KillTimeout=3600 * NS)
    c.set(alloc("a1", task(ignore_signals=True), **spec))
    c.until(lambda: c.status("a1") == "running", 5)
    t0 = c.sched.now
    c.set(alloc("a1", task(ignore_signals=True), desired="stop", index=2, **spec), index=2)
    c.until(lambda: c.status("a1") == "complete", 60)
    (proc,) = c.driver.procs.values()
    assert proc.ended_at is not None and proc.ended_at - t0 == pytest.approx(10.0, abs=0.01)


def test_an_alloc_absent_from_the_set_is_stopped_and_its_state_removed():
    c = Client()
    c.set(alloc("a1"), alloc("a2"))
    c.until(lambda: c.status("a1") == c.status("a2") == "running", 5)
    assert sorted(c.store.data) == ["a1", "a2"]
    reports = len(c.got)
    c.set(alloc("a2"), index=2)
    c.until(lambda: "a1" not in c.runner.allocs, 10)
    assert [p.alloc_id for p in c.driver.running()] == ["a2"]
    assert sorted(c.store.data) == ["a2"]
    assert len(c.got) == reports  # the servers no longer know a1: nothing more is reported about it


def test_an_alloc_the_servers_hold_as_terminal_is_never_run_nor_reported():
    c = Client()
    lost = {**alloc("a1"), "ClientStatus": "lost"}
    c.set(lost, alloc("a2"))
    c.until(lambda: c.status("a2") == "running", 5)
    c.node.restart()
    c.set(lost, alloc("a2"))
    c.run(5)
    assert c.latest("a1") is None and c.starts_of("a1") == [] and "a1" in c.runner.allocs


def test_more_allocs_than_max_allocs_are_failed_not_run():
    c = Client(config=AllocRunnerConfig(max_allocs=2))
    c.set(alloc("a1"), alloc("a2"), alloc("a3"))
    c.until(lambda: c.status("a3") == "failed", 5)
    assert "max_allocs=2" in c.latest("a3").client_description
    assert c.driver.starts == 2


def test_an_older_set_is_ignored():
    c = Client()
    c.set(alloc("a1"), index=5)
    c.until(lambda: c.status("a1") == "running", 5)
    c.set(index=4)  # stale: would remove a1
    c.run(5)
    assert c.status("a1") == "running" and c.runner.stats["stale_sets"] == 1


def test_the_same_set_twice_starts_nothing_twice():
    c = Client()
    c.set(alloc("a1"), index=1)
    c.set(alloc("a1"), index=2)
    c.run(5)
    assert c.driver.starts == 1 and len(c.driver.running()) == 1


# ------------------------------------------------------------ batch and restarts
def test_batch_task_exiting_zero_is_dead_not_failed_and_the_alloc_completes():
    c = Client()
    c.set(alloc("a1", task(run_for_s=5), job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 20)
    st = c.task("a1")
    assert st.state == "dead" and not st.failed and st.restarts == 0
    assert c.driver.starts == 1
    assert c.statuses("a1") == ["running", "complete"]


def test_batch_alloc_completes_only_when_all_tasks_are_dead():
    c = Client()
    c.set(alloc("a1", task("short", run_for_s=2), task("long", run_for_s=10), job_type="batch"))
    c.until(lambda: c.task("a1", "short").state == "dead", 20)
    assert c.status("a1") == "running"
    c.until(lambda: c.status("a1") == "complete", 20)
    # Nomad's shouldRestart: a successful exit that is not restarted (TaskTerminated) is dead with no
    # "Not Restarting" event, which only a failure has
    assert events(c.task("a1", "short"))[-2:] == ["Started", "Terminated"]
    assert not c.task("a1", "short").failed


def test_failing_batch_task_is_restarted_per_policy_then_fails_the_alloc():
    c = Client()
    c.set(alloc("a1", task(run_for_s=1, exit_code=2), job_type="batch", restart=policy(2, 3600, 5)))
    c.until(lambda: c.status("a1") == "failed", 120)
    st = c.task("a1")
    assert st.state == "dead" and st.failed and st.restarts == 2
    assert c.driver.starts == 3
    assert events(st)[-1] == "Not Restarting"
    assert "Exceeded allowed attempts 2 in interval 1h0m0s" in c.latest("a1").client_description
    # The event says the policy's reason alone, as Nomad's RestartReason (the exit is the event before).
    assert st.events[-1].message == 'Exceeded allowed attempts 2 in interval 1h0m0s and mode is "fail"'


def test_service_task_is_restarted_whatever_its_exit_code():
    c = Client()
    c.set(alloc("a1", task(run_for_s=2, exit_code=0), restart=policy(5, 3600, 1)))
    c.until(lambda: c.driver.starts >= 3, 30)
    assert c.task("a1").restarts >= 2 and c.status("a1") in ("running", "pending")


def test_restart_waits_delay_plus_at_most_a_quarter_of_jitter():
    cfg = AllocRunnerConfig(poll_interval_s=0.5)
    c = Client(config=cfg)
    c.set(alloc("a1", restart=policy(10, 3600, 8)))
    c.until(lambda: c.status("a1") == "running", 5)
    for _ in range(4):
        n = c.driver.starts
        crashed = c.sched.now
        assert c.driver.crash("a1", "t", exit_code=1)
        c.until(lambda n=n: c.driver.starts == n + 1, 30)
        gap = c.starts_of("a1")[-1] - crashed
        assert 8.0 <= gap <= 8.0 * 1.25 + cfg.poll_interval_s


def test_fail_mode_fails_the_task_after_attempts_within_the_interval():
    c = Client()
    c.set(alloc("a1", restart=policy(2, 600, 1, "fail")))
    c.until(lambda: c.status("a1") == "running", 5)
    for _ in range(3):
        c.until(lambda: c.status("a1") == "running", 10)
        c.driver.crash("a1", "t")
        c.run(1.5)
    c.until(lambda: c.status("a1") == "failed", 10)
    assert c.driver.starts == 3 and c.task("a1").failed
    assert not c.driver.running()


def test_restart_count_resets_after_the_interval_in_fail_mode():
    c = Client()
    c.set(alloc("a1", task(run_for_s=40, exit_code=1), restart=policy(1, 30, 1, "fail")))
    c.run(300)  # each exit comes ~41 s after the previous: past the 30 s interval the previous opened
    assert c.status("a1") != "failed"
    assert c.driver.starts >= 5


def test_the_restart_interval_opens_when_the_task_is_received_not_at_its_first_exit():
    # Nomad's RestartTracker starts its interval when the task runner is made: exits at ~10, ~21 and ~32 s
    # with 2 attempts in 30 s are two in the first interval and one in the next, so the task restarts
    # again.  (An interval opened at the first exit, 10-40 s, held all three and failed the task.)
    c = Client(config=AllocRunnerConfig(poll_interval_s=0.5))
    c.set(alloc("a1", task(run_for_s=10, exit_code=1), restart=policy(2, 30, 1, "fail")))
    c.until(lambda: c.driver.starts == 4, 60)
    assert "failed" not in c.statuses("a1")
    assert [e.type for e in c.task("a1").events].count("Restarting") == 3


def test_delay_mode_waits_for_the_interval_to_end_then_counts_afresh():
    c = Client(config=AllocRunnerConfig(poll_interval_s=0.5))
    c.set(alloc("a1", task(run_for_s=1, exit_code=1), restart=policy(1, 60, 2, "delay")))
    c.run(75)
    starts = c.starts_of("a1")
    # start, exit at ~1 (interval opens), restart ~2.5 s later, exit: over the
    # attempts, so wait until the interval ends (~61), then a fresh interval.
    assert starts[0] == 0.0 and 3.0 <= starts[1] <= 4.5
    assert 60.0 <= starts[2] <= 62.5 and 62.0 <= starts[3] <= 66.0
    assert "failed" not in c.statuses("a1")
    reasons = [e.message for e in c.task("a1").events if e.type == "Restarting"]
    assert any(r.startswith("Exceeded allowed attempts, applying a delay - Task restarting in ")
               for r in reasons)


def test_policy_of_zero_attempts_fails_the_first_exit():
    c = Client()
    c.set(alloc("a1", task(run_for_s=1), restart=policy(0, 60, 1)))
    c.until(lambda: c.status("a1") == "failed", 10)
    assert c.driver.starts == 1


def test_a_failed_task_kills_its_siblings():
    c = Client()
    c.set(alloc("a1", task("main"), task("side"), restart=policy(0, 60, 1)))
    c.until(lambda: c.status("a1") == "running", 5)
    c.driver.crash("a1", "main", exit_code=3)
    c.until(lambda: c.status("a1") == "failed" and c.task("a1", "side").state == "dead", 10)
    side = c.task("a1", "side")
    assert not side.failed and events(side)[-4:] == ["Sibling Task Failed", "Killing", "Terminated", "Killed"]
    assert side.events[-4].message == 'Task\'s sibling "main" failed'  # Go's %q, as Nomad's
    assert side.events[-3].message == "Sent interrupt. Waiting 5s before force killing"
    assert not c.driver.running()
    assert "main" in c.latest("a1").client_description


def test_a_failed_task_kills_the_leader_first_then_the_others_and_the_sidecars_last():
    # Nomad's killTasks: the leader, then the other tasks, then the sidecars once those are dead (a
    # sidecar -- a proxy, a log shipper -- outlives what it serves); each gets the Sibling Task Failed
    # event at once, and none is restarted meanwhile.
    c = Client()
    side = {**task("side", ignore_signals=True), "Lifecycle": {"Hook": "prestart", "Sidecar": True}}
    c.set(alloc("a1", task("crash"), {**task("lead", ignore_signals=True), "Leader": True},
                task("other", ignore_signals=True), side, restart=policy(0, 60, 1), KillTimeout=3 * NS))
    c.until(lambda: all(c.task("a1", n).state == "running" for n in ("crash", "lead", "other", "side")), 10)
    t0 = c.sched.now
    c.driver.crash("a1", "crash", exit_code=3)
    c.until(lambda: c.status("a1") == "failed" and all(c.task("a1", n).state == "dead"
                                                         for n in ("lead", "other", "side")), 20)
    ends = {p.task_name: p.ended_at - t0 for p in c.driver.procs.values() if p.task_name != "crash"}
    # each ignores SIGINT and is SIGKILLed 3 s after its kill began, which waits for the one before
    assert 3.0 <= ends["lead"] <= 4.5 and ends["other"] - ends["lead"] >= 3.0, ends
    assert ends["side"] - ends["other"] >= 3.0 and ends["side"] < 12.0, ends
    failed_at = c.task("a1", "crash").events[-1].time
    for name in ("lead", "other", "side"):
        st = c.task("a1", name)
        assert events(st)[-4:] == ["Sibling Task Failed", "Killing", "Terminated", "Killed"], name
        assert st.events[-4].time == failed_at and not st.failed and st.restarts == 0


def test_a_sibling_kill_under_way_goes_on_in_order_after_a_client_restart():
    c = Client()
    side = {**task("side"), "Lifecycle": {"Hook": "prestart", "Sidecar": True}}
    spec = (task("crash"), task("other", ignore_signals=True), side)
    c.set(alloc("a1", *spec, restart=policy(0, 60, 1), KillTimeout=5 * NS))
    c.until(lambda: all(c.task("a1", n).state == "running" for n in ("crash", "other", "side")), 10)
    c.driver.crash("a1", "crash", exit_code=3)
    c.until(lambda: c.status("a1") == "failed", 10)
    assert c.task("a1", "side").state == "running"  # waits for "other", which ignores its SIGINT
    c.node.restart()
    c.set(alloc("a1", *spec, restart=policy(0, 60, 1), KillTimeout=5 * NS))
    c.until(lambda: all(c.task("a1", n).state == "dead" for n in ("other", "side")), 30)
    other = next(p for p in c.driver.procs.values() if p.task_name == "other")
    sides = [p for p in c.driver.procs.values() if p.task_name == "side"]
    assert len(sides) == 1 and sides[0].ended_at >= other.ended_at  # not restarted, killed last
    assert c.status("a1") == "failed" and c.driver.starts == 3


def test_events_kept_are_bounded():
    c = Client(config=AllocRunnerConfig(max_events=4))
    c.set(alloc("a1", task(run_for_s=1), restart=policy(20, 3600, 1)))
    c.run(60)
    assert len(c.task("a1").events) == 4


# ------------------------------------------------------------ re-attach
def test_restarted_client_reattaches_to_running_tasks_without_starting_them_again():
    c = Client()
    c.set(alloc("a1", task("web"), task("side")), alloc("a2"))
    c.until(lambda: c.status("a1") == c.status("a2") == "running", 5)
    pids = sorted(p.pid for p in c.driver.running())
    c.node.restart()
    c.set(alloc("a1", task("web"), task("side")), alloc("a2"))
    c.run(10)
    assert c.driver.starts == 3 and sorted(p.pid for p in c.driver.running()) == pids
    assert c.runner.stats["reattached"] == 3 and c.runner.stats["starts"] == 0
    assert c.status("a1") == "running"
    # the new incarnation watches the re-attached task: a crash is restarted
    c.driver.crash("a1", "web")
    c.until(lambda: len(c.starts_of("a1", "web")) == 2, 60)


def test_task_that_died_while_the_client_was_down_is_restarted_by_policy():
    """The exit Nomad's executor would have kept for it: its restart policy decides."""
    c = Client()
    c.set(alloc("a1", restart=policy(3, 3600, 2)))
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.driver.crash("a1", "t", exit_code=1)
    c.run(5)
    c.node.restart()
    c.until(lambda: len(c.starts_of("a1")) == 2, 30)
    st = c.task("a1")
    # The exit as if seen (its code kept, as the launcher records it), worded as any exit.
    assert st.restarts == 1 and "Failed Restoring Task" not in events(st)
    (ended,) = [e for e in st.events if e.type == "Terminated"]
    assert ended.exit_code == 1 and ended.message == "Exit Code: 1"
    assert c.runner.stats["exits_recorded"] == 1


def test_a_batch_task_that_completed_while_the_client_was_down_is_complete_not_run_again():
    c = Client()
    c.set(alloc("a1", task(run_for_s=3), job_type="batch", restart=policy(0, 3600, 1)))
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.run(10)  # it exits 0 at 3 s, unwatched
    c.node.restart()
    c.until(lambda: c.status("a1") == "complete", 10)
    st = c.task("a1")
    assert c.driver.starts == 1 and st.state == "dead" and not st.failed
    assert events(st)[-1] == "Terminated" and st.events[-1].exit_code == 0


def test_a_task_gone_without_a_recorded_exit_is_an_unknown_exit():
    """A driver with no record of the exit (a handle from before records, a record it could not write)."""
    c = Client()
    c.set(alloc("a1", restart=policy(0, 3600, 1)))
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.driver.crash("a1", "t", exit_code=0)
    c.driver.recorded_exit = lambda handle: None  # type: ignore[method-assign]
    c.node.restart()
    c.until(lambda: c.status("a1") == "failed", 10)
    st = c.task("a1")
    assert events(st)[-3:] == ["Failed Restoring Task", "Terminated", "Not Restarting"]
    assert st.events[-2].message.startswith("Exit Code: unknown")


def test_task_lost_to_a_host_reboot_runs_again_once_the_servers_answer():
    """Nomad's restoreHandle failing (the executor went with the host): the task is pending ("failed to
    restore task; will not run until server is contacted"), then started afresh -- not restarted by its
    policy (no restart counted, no delay, no Terminated event), which a mode="fail" policy with no
    attempts left would refuse."""
    c = Client()
    c.set(alloc("a1", restart=policy(0, 3600, 20)))
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.run(5)
    c.driver.reboot()
    c.node.restart()
    c.run(5)
    assert c.driver.starts == 1 and c.task("a1").state == "pending"  # the servers did not answer
    c.set(alloc("a1", restart=policy(0, 3600, 20)))
    c.until(lambda: c.task("a1").state == "running", 5)
    st = c.task("a1")
    assert c.driver.starts == 2 and st.restarts == 0 and c.status("a1") == "running"
    assert events(st)[-2:] == ["Failed Restoring Task", "Started"]
    assert st.events[-2].message == "failed to restore task; will not run until server is contacted"


def _running_then_host_rebooted(spec: Any) -> Any:
    """A client running *spec*'s allocation a1, whose host rebooted while the client was down: the
    client is back, its task's process is gone."""
    c = Client()
    c.set(spec)
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.driver.reboot()
    c.node.restart()
    return c


def test_a_system_jobs_task_lost_to_a_reboot_runs_again_without_waiting_for_the_servers():
    c = _running_then_host_rebooted(alloc("a1", job_type="system"))
    # Nomad's Restore: a system job does not waitOnServers
    again = ["Failed Restoring Task", "Started"]
    c.until(lambda: c.driver.starts == 2 and events(c.task("a1"))[-2:] == again, 5)
    assert c.task("a1").restarts == 0


def test_a_task_lost_to_a_reboot_of_a_stopped_allocation_is_not_started_again():
    c = _running_then_host_rebooted(alloc("a1"))
    c.set(alloc("a1", desired="stop", index=2))
    c.run(10)
    assert c.driver.starts == 1 and c.task("a1").state == "dead"


def test_host_reboot_loses_tasks_and_a_desired_run_alloc_restarts_them():
    c = _running_then_host_rebooted(alloc("a1"))
    c.set(alloc("a1"))  # the servers answer: the lost task runs again
    c.until(lambda: len(c.driver.running()) == 1, 60)
    assert c.driver.starts == 2


def test_kill_in_progress_is_resumed_after_a_client_restart():
    c = Client()
    c.set(alloc("a1", task(ignore_signals=True), KillTimeout=5 * NS))
    c.until(lambda: c.status("a1") == "running", 5)
    c.set(alloc("a1", task(ignore_signals=True), desired="stop", index=2, KillTimeout=5 * NS), index=2)
    c.run(1)
    c.node.crash()
    c.node.restart()
    c.until(lambda: not c.driver.running(), 20)
    c.until(lambda: c.status("a1") == "complete", 5)
    assert c.driver.starts == 1


def test_stopped_alloc_is_not_restarted_after_a_client_restart():
    c = Client()
    c.set(alloc("a1", task(run_for_s=3), job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 20)
    c.node.restart()
    c.set(alloc("a1", task(run_for_s=3), job_type="batch"))
    c.run(10)
    assert c.driver.starts == 1 and c.status("a1") == "complete"


def test_restore_survives_a_corrupt_record():
    c = Client()
    c.set(alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    c.node.crash()
    c.store.data["zz"] = json.dumps({"alloc": {"ID": "zz"}, "tasks": {}})
    c.node.restart()
    c.run(2)
    assert c.runner.stats["bad_allocs"] == 1 and c.status("a1") == "running"
    assert c.node.actors["allocs"].is_alive()


# ------------------------------------------------------------ bad input
def _failed_with(c: Client, aid: str, text: str) -> None:
    c.until(lambda: c.status(aid) == "failed", 10)
    desc = c.latest(aid).client_description
    assert text in desc, desc


def test_alloc_missing_its_job_fails_with_a_clear_description():
    c = Client()
    bad = alloc("a1")
    del bad["Job"]
    c.set(bad, alloc("ok"))
    _failed_with(c, "a1", "Allocation.Job is missing")
    c.until(lambda: c.status("ok") == "running", 5)


def test_malformed_fields_are_named_in_the_description():
    c = Client()
    c.set(alloc("a1", restart={"Attempts": "two"}), alloc("a2", KillSignal="SIGNOPE"),
          {**alloc("a3"), "TaskGroup": "nope"}, alloc("a4", task(name="")))
    _failed_with(c, "a1", "RestartPolicy.Attempts")
    _failed_with(c, "a2", "KillSignal")
    _failed_with(c, "a3", "no group named 'nope'")
    _failed_with(c, "a4", "not a valid task name")
    assert c.driver.starts == 0


def test_alloc_without_a_usable_id_is_dropped_and_the_runner_lives_on():
    c = Client()
    c.set({"JobID": "x"}, "not a dict", {"ID": "../etc"}, alloc("ok"))  # type: ignore[arg-type]
    c.until(lambda: c.status("ok") == "running", 5)
    assert c.runner.stats["bad_allocs"] == 3


def test_unknown_driver_fails_the_alloc():
    c = Client()
    c.set(alloc("a1", {"Name": "t", "Driver": "docker", "Config": {}}, task("side")))
    _failed_with(c, "a1", "unknown driver 'docker'")
    assert "Driver Failure" in events(c.task("a1"))
    assert not c.driver.running()


def test_driver_start_error_fails_the_task_without_restarts():
    c = Client()
    c.set(alloc("a1", task(fail_start="no such binary")))
    _failed_with(c, "a1", "no such binary")
    assert c.task("a1").restarts == 0


def test_recoverable_start_error_is_retried_per_policy():
    c = Client()
    c.set(alloc("a1", task(fail_start="busy", fail_start_recoverable=True), restart=policy(2, 3600, 1)))
    _failed_with(c, "a1", "Exceeded allowed attempts 2")
    assert c.task("a1").restarts == 2


def test_bad_driver_config_fails_the_task():
    c = Client()
    c.set(alloc("a1", task(args="not a list")))
    _failed_with(c, "a1", "config.args must be a list of strings")


def test_store_failures_are_counted_and_tasks_keep_running():
    c = Client()
    c.store.fail = True
    c.set(alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    assert c.runner.stats["persist_errors"] >= 1 and c.node.actors["allocs"].is_alive()


# ------------------------------------------------------------ queries
def test_stats_report_resource_usage_of_running_tasks():
    c = Client()
    c.set(alloc("a1", task(cpu_percent=12.5, rss_bytes=4096)), alloc("a2"))
    c.until(lambda: c.status("a1") == "running", 5)
    got = c.node.actors["allocs"].ask(GetAllocStats(alloc_id="a1"))
    assert got == {"a1": {"t": {"pid": got["a1"]["t"]["pid"], "cpu_percent": 12.5, "rss_bytes": 4096,
                                 "processes": 1}}}
    assert sorted(c.node.actors["allocs"].ask("stats")) == ["a1", "a2"]
    snap = c.node.actors["allocs"].ask("allocs")
    assert snap["a1"].client_status == "running"


def test_an_operator_restart_starts_the_task_again_without_using_the_restart_policy():
    c = Client()
    # A policy of no restarts at all: only the operator's restart may start it again.
    c.set(alloc("a1", task("web"), task("side"), restart=policy(0, 60, 1)))
    c.until(lambda: c.status("a1") == "running", 5)
    ref = c.node.actors["allocs"]
    assert ref.ask(RestartTasks(alloc_id="a1", task="web")) == ""
    c.until(lambda: c.task("a1", "web").restarts == 1 and c.task("a1", "web").state == "running", 30)
    web, side = c.task("a1", "web"), c.task("a1", "side")
    assert web.restarts == 1 and not web.failed and c.status("a1") == "running"
    # Nomad's restartImpl: the Restart Signaled event, then the kill without a Killing event of its own
    assert events(web)[-4:] == ["Restart Signaled", "Terminated", "Restarting", "Started"]
    assert len(c.starts_of("a1", "web")) == 2 and len(c.starts_of("a1", "side")) == 1  # only the named task
    assert ref.ask(RestartTasks(alloc_id="a1")) == ""  # every running task
    c.until(lambda: len(c.starts_of("a1", "side")) == 2 and len(c.starts_of("a1", "web")) == 3, 30)
    asked = [e.message for e in c.task("a1", "side").events if e.type == "Restart Signaled"]
    assert asked == ["User requested running tasks to restart"]  # Nomad's words for no -task
    first = next(e.message for e in c.task("a1", "web").events if e.type == "Restart Signaled")
    assert first == "User requested task to restart"
    assert c.runner.stats["restarts"] == 3


def test_a_restart_of_all_tasks_runs_the_prestart_tasks_again_before_the_main_ones():
    """Nomad's RestartAll: the ephemeral prestart task that already ran runs again, and the main task
    (killed at once) starts only once it has; the poststop task does not run; no restart policy counts."""
    c = Client()
    init = {**task("init", run_for_s=5), "Lifecycle": {"Hook": "prestart"}}
    side = {**task("side"), "Lifecycle": {"Hook": "prestart", "Sidecar": True}}
    cleanup = {**task("cleanup"), "Lifecycle": {"Hook": "poststop"}}
    c.set(alloc("a1", init, side, task("web"), cleanup, restart=policy(0, 60, 1)))
    c.until(lambda: c.task("a1", "web").state == "running", 30)
    ref = c.node.actors["allocs"]
    t0 = c.sched.now
    assert ref.ask(RestartTasks(alloc_id="a1", all_tasks=True)) == ""
    c.until(lambda: len(c.starts_of("a1", "web")) == 2, 30)
    inits, webs = c.starts_of("a1", "init"), c.starts_of("a1", "web")
    assert len(inits) == 2 and t0 <= inits[1] and webs[1] >= inits[1] + 5  # after init ran again
    assert len(c.starts_of("a1", "side")) == 2 and c.starts_of("a1", "cleanup") == []
    c.until(lambda: c.task("a1", "web").state == "running", 5)
    assert c.status("a1") == "running"
    assert [c.task("a1", n).restarts for n in ("init", "side", "web")] == [1, 1, 1]
    assert not any(c.task("a1", n).failed for n in ("init", "side", "web"))
    assert ref.ask(RestartTasks(alloc_id="a1", task="web", all_tasks=True)) == ""  # one task: as before
    c.until(lambda: len(c.starts_of("a1", "web")) == 3, 30)
    assert len(c.starts_of("a1", "init")) == 2


def test_operator_restart_and_signal_refuse_what_is_not_running():
    c = Client()
    c.set(alloc("a1", task("web", ignore_signals=True), task("once", run_for_s=1), job_type="batch"))
    c.until(lambda: c.task("a1", "once").state == "dead", 10)
    ref = c.node.actors["allocs"]
    assert ref.ask(RestartTasks(alloc_id="nope")) == 'Unknown allocation "nope"'
    assert ref.ask(RestartTasks(alloc_id="a1", task="nosuch")) == 'Task "nosuch" not found in allocation "a1"'
    assert ref.ask(RestartTasks(alloc_id="a1", task="once")) == "Task not running"
    assert ref.ask(SignalTasks(alloc_id="a1", signal="SIGBOGUS")).startswith("unknown signal")
    assert ref.ask(SignalTasks(alloc_id="a1", signal="SIGHUP", task="web")) == ""
    c.run(1)
    (proc,) = [p for p in c.driver.procs.values() if p.task_name == "web"]
    assert proc.signals == ["SIGHUP"] and c.task("a1", "web").state == "running"
    assert events(c.task("a1", "web"))[-1] == "Signaling"


def test_a_restart_with_a_reply_is_answered_once_the_killed_task_exited():
    """Nomad's TaskRunner.Restart blocks until the task it kills exits: a RestartTasks with a reply
    (the HTTP API's) is answered then -- after a stubborn task's kill_timeout -- not when asked."""
    c = Client(watch=True)
    c.set(alloc("a1", task("web", ignore_signals=True), KillTimeout=5 * NS))
    c.until(lambda: c.task("a1", "web").state == "running", 5)
    ref, t0 = c.node.actors["allocs"], c.sched.now
    fut = c.sched.future_cls()
    ref.tell(RestartTasks(alloc_id="a1", task="web", reply=fut))
    assert fut.get(timeout=30) == ""
    assert c.sched.now >= t0 + 5  # after the kill_timeout's SIGKILL ended the old task
    (old, _new) = procs(c, "a1", "web")
    assert old.ended_at is not None and old.ended_at <= c.sched.now
    bad = c.sched.future_cls()
    ref.tell(RestartTasks(alloc_id="a1", task="nosuch", reply=bad))
    assert bad.get(timeout=5) == 'Task "nosuch" not found in allocation "a1"'
    gone = c.sched.future_cls()  # a reply whose allocation goes away is answered too
    ref.tell(RestartTasks(alloc_id="a1", reply=gone))
    c.set(index=3)
    assert gone.get(timeout=30) == ""


def test_operator_and_policy_events_carry_nomads_structured_fields():
    """Nomad's TaskEvent setters: Restart Signaled has its RestartReason, Signaling the signal in its
    details, and the Not Restarting that fails a task RestartReason and FailsTask -- in the JSON the
    client reports (the UI and ``-json`` readers use them), not only in the message."""
    from actors.client.alloc_sync import task_states_json

    c = Client()
    c.set(alloc("a1", task("web"), task("bad", run_for_s=2, exit_code=3), job_type="batch",
                restart=policy(0, 60, 1)))
    c.until(lambda: c.task("a1", "web").state == "running", 5)
    ref = c.node.actors["allocs"]
    assert ref.ask(SignalTasks(alloc_id="a1", signal="SIGHUP", task="web")) == ""
    assert ref.ask(RestartTasks(alloc_id="a1", task="web")) == ""
    c.until(lambda: c.status("a1") == "failed", 20)
    states = task_states_json(c.latest("a1"))
    web = {e["Type"]: e for e in states["web"]["Events"]}
    assert web["Restart Signaled"]["RestartReason"] == "User requested task to restart"
    assert web["Restart Signaled"]["Details"]["restart_reason"] == "User requested task to restart"
    assert web["Signaling"]["Details"]["signal"] == "SIGHUP"
    (last,) = [e for e in states["bad"]["Events"] if e["Type"] == "Not Restarting"]
    assert last["FailsTask"] is True and last["RestartReason"] == "Policy allows no restarts"
    assert last["Details"] == {"fails_task": "true", "restart_reason": "Policy allows no restarts"}
    # the sibling killed for it: Nomad's SetKillTimeout (KillTimeout in ns, Details its duration)
    (kill,) = [e for e in states["web"]["Events"] if e["Type"] == "Killing"]
    assert kill["KillTimeout"] == 5 * NS and kill["Details"]["kill_timeout"] == "5s"


def test_a_restart_of_a_whole_terminal_alloc_is_refused_as_nomads_restart_tasks():
    """Nomad's restartTasks: restarting the running (or all) tasks of an allocation that should not run
    (complete, failed, stopped) fails with "restart of an alloc that should not run"; one named task
    that is not running fails with ErrTaskNotRunning."""
    c = Client()
    c.set(alloc("a1", task("once", run_for_s=1), job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 10)
    ref = c.node.actors["allocs"]
    assert ref.ask(RestartTasks(alloc_id="a1")) == "restart of an alloc that should not run"
    assert ref.ask(RestartTasks(alloc_id="a1", all_tasks=True)) == "restart of an alloc that should not run"
    assert ref.ask(RestartTasks(alloc_id="a1", task="once")) == "Task not running"
    assert ref.ask(SignalTasks(alloc_id="a1", signal="SIGHUP")) == (
        "1 error occurred:\n\t* Failed to signal task: once, err: Task not running\n\n")


def test_a_signal_to_every_task_reaches_the_running_ones_and_names_each_one_not_running():
    """Nomad's allocRunner.Signal without a task: each task runner is signalled; one not running adds
    "Failed to signal task: <name>, err: Task not running" to the answer's multierror."""
    c = Client()
    c.set(alloc("a1", task("web", ignore_signals=True), task("once", run_for_s=1), task("zed", run_for_s=1),
                job_type="batch"))
    c.until(lambda: c.task("a1", "once").state == c.task("a1", "zed").state == "dead", 10)
    assert c.task("a1", "web").state == "running"
    ref = c.node.actors["allocs"]
    assert ref.ask(SignalTasks(alloc_id="a1", signal="SIGHUP")) == (
        "2 errors occurred:\n\t* Failed to signal task: once, err: Task not running\n\t"
        "* Failed to signal task: zed, err: Task not running\n\n")
    c.run(1)
    (web,) = [p for p in c.driver.procs.values() if p.task_name == "web"]
    assert web.signals == ["SIGHUP"] and events(c.task("a1", "web"))[-1] == "Signaling"


def test_a_restart_asked_while_the_alloc_stops_ends_with_the_alloc():
    c = Client()
    c.set(alloc("a1", task("web", ignore_signals=True), KillTimeout=5 * NS))
    c.until(lambda: c.status("a1") == "running", 5)
    assert c.node.actors["allocs"].ask(RestartTasks(alloc_id="a1")) == ""
    c.set(alloc("a1", task("web", ignore_signals=True), desired="stop", index=2, KillTimeout=5 * NS), index=2)
    c.until(lambda: c.status("a1") == "complete", 30)
    assert len(c.starts_of("a1", "web")) == 1 and c.task("a1", "web").state == "dead"


def test_same_seed_same_history():
    def history(seed: int) -> list[Any]:
        c = Client(seed)
        c.set(alloc("a1", task(run_for_s=3, exit_code=1), restart=policy(3, 3600, 4)), alloc("a2"))
        c.run(100)
        return [(p.pid, p.started_at, p.ended_at) for p in c.driver.procs.values()]

    assert history(3) == history(3)


# ------------------------------------------------------------ pure rules and stores
def test_decide_restart_follows_nomads_restart_tracker():
    p = RestartPolicy(attempts=2, interval_s=60, delay_s=10, mode="fail")
    d1 = decide_restart(p, count=0, interval_start=None, now=100, successful=False, restart_on_success=True,
                        jitter=0.1)
    assert d1.restart and d1.delay_s == pytest.approx(11.0) and d1.count == 1 and d1.interval_start == 100
    d2 = decide_restart(p, count=1, interval_start=100, now=120, successful=False, restart_on_success=True)
    assert d2.restart and d2.count == 2
    d3 = decide_restart(p, count=2, interval_start=100, now=130, successful=False, restart_on_success=True)
    assert not d3.restart and d3.failed
    d4 = decide_restart(p, count=2, interval_start=100, now=161, successful=False, restart_on_success=True)
    assert d4.restart and d4.count == 1 and d4.interval_start == 161
    ok = decide_restart(p, count=0, interval_start=None, now=1, successful=True, restart_on_success=False)
    assert not ok.restart and not ok.failed
    delay = decide_restart(RestartPolicy(attempts=1, interval_s=60, delay_s=5, mode="delay"), count=1,
                           interval_start=100, now=130, successful=False, restart_on_success=True)
    assert delay.restart and delay.delay_s == pytest.approx(30.0)


def test_the_exceeded_attempts_reason_gives_the_interval_as_go_prints_it():
    for interval_s, text in ((3600, "1h0m0s"), (90, "1m30s"), (7.5, "7.5s"), (1800, "30m0s")):
        d = decide_restart(RestartPolicy(attempts=1, interval_s=interval_s, delay_s=1, mode="fail"), count=1,
                           interval_start=0, now=1, successful=False, restart_on_success=True)
        assert d.reason == f'Exceeded allowed attempts 1 in interval {text} and mode is "fail"'


def test_client_status_precedence():
    dead, failed = TaskState(state="dead"), TaskState(state="dead", failed=True)
    assert client_status([failed, TaskState(state="running")])[0] == "failed"
    assert client_status([dead, TaskState(state="running")])[0] == "running"
    assert client_status([dead, TaskState(state="pending")])[0] == "pending"
    assert client_status([dead, dead]) == ("complete", "All tasks have completed")


def test_task_handle_round_trips_and_rejects_garbage():
    h = TaskHandle(driver="raw_exec", alloc_id="a", task_name="t", pid=10, pgid=10, start_time=1.5)
    assert TaskHandle.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    with pytest.raises(ValueError, match="pid"):
        TaskHandle.from_dict({**h.to_dict(), "pid": "10"})


def test_file_store_writes_atomically_and_skips_corrupt_files(tmp_path):
    store = FileAllocStore(str(tmp_path))
    store.put("a1", {"x": 1})
    store.put("a1", {"x": 2})
    store.put("a2", {"y": [1, 2]})
    (tmp_path / "allocs" / "bad.json").write_text("{not json")
    (tmp_path / "allocs" / ".tmp-cut-short").write_text("{")
    assert store.load_all() == {"a1": {"x": 2}, "a2": {"y": [1, 2]}}
    assert sorted(p.name for p in (tmp_path / "allocs").iterdir()) == ["a1.json", "a2.json", "bad.json"]
    store.delete("a1")
    store.delete("a1")
    assert sorted(store.load_all()) == ["a2"]
    with pytest.raises(ValueError):
        store.put("../x", {})


def test_file_store_does_not_rewrite_a_record_it_holds(tmp_path):
    store = FileAllocStore(str(tmp_path))
    alloc_dict = {"ID": "a1", "Job": {"ID": "j"}}
    store.put("a1", {"alloc": alloc_dict, "version": 1})
    path = tmp_path / "allocs" / "a1.json"
    first = path.stat().st_ino
    store.put("a1", {"alloc": alloc_dict, "version": 1})  # the same again: no new file (no fsyncs)
    assert path.stat().st_ino == first
    store.put("a1", {"alloc": alloc_dict, "version": 2})
    assert path.stat().st_ino != first and json.loads(path.read_text()) == {"alloc": alloc_dict, "version": 2}
    store.delete("a1")
    store.put("a1", {"alloc": alloc_dict, "version": 2})  # deleted, then put: written again
    assert store.load_all() == {"a1": {"alloc": alloc_dict, "version": 2}}


def test_runner_on_a_file_store_reattaches(tmp_path):
    c = Client(store=FileAllocStore(str(tmp_path)))
    c.set(alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    assert (tmp_path / "allocs" / "a1.json").exists()
    c.node.restart()
    c.run(5)
    assert c.driver.starts == 1 and c.runner.stats["reattached"] == 1


def test_a_watched_task_exit_is_handled_when_it_happens_and_nothing_polls():
    c = Client(watch=True)
    c.set(alloc("a1", task(run_for_s=2.5), job_type="batch"))
    c.until(lambda: c.status("a1") == "running")
    started = c.starts_of("a1")[0]
    assert not c.runner.timer_armed("poll")  # the driver will tell
    c.until(lambda: c.status("a1") == "complete")
    assert c.sched.now - (started + 2.5) < 0.01  # not up to a poll interval later
    assert c.task("a1").events[-1].time == started + 2.5


def test_a_watched_task_that_crashes_is_restarted_and_a_stale_exit_notice_is_ignored():
    c = Client(watch=True)
    c.set(alloc("a1", restart={"Attempts": 2, "Interval": 600 * 10**9, "Delay": 10**9, "Mode": "fail"}))
    c.until(lambda: c.status("a1") == "running")
    assert c.driver.crash("a1", "t", exit_code=3)
    c.until(lambda: len(c.starts_of("a1")) == 2, 30.0)
    c.run(5.0)
    assert c.status("a1") == "running" and c.task("a1").restarts == 1
    assert not c.runner.timer_armed("poll")


# ------------------------------------------------------------ forced client GC (/v1/client/.../gc)
class GcClient(Client):
    """A client whose runner removes directories (recorded by a MemoryAllocDirs)."""

    def __init__(self, **kwargs: Any) -> None:
        from actors.client.alloc_runner import MemoryAllocDirs

        self.dirs = MemoryAllocDirs()
        super().__init__(**kwargs)

    def _boot(self, env: Any) -> None:
        env.spawn(Reporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root="/sim/allocs", reporter="reporter", config=self.config, alloc_dirs=self.dirs)


def test_a_forced_gc_collects_a_finished_alloc_and_never_a_running_one():
    from actors.client.alloc_runner import NOT_ELIGIBLE_FOR_GC, CollectAlloc

    c = GcClient()
    c.set(alloc("done", task(run_for_s=1), job_type="batch"), alloc("web", task()))
    c.until(lambda: c.status("done") == "complete" and c.status("web") == "running", 20)
    ref = c.node.actors["allocs"]
    assert ref.ask(CollectAlloc(alloc_id="nope")) == 'Unknown allocation "nope"'
    assert ref.ask(CollectAlloc(alloc_id="web")) == NOT_ELIGIBLE_FOR_GC  # running: refused
    assert c.dirs.destroyed == [] and c.task("web").state == "running"
    assert ref.ask(CollectAlloc(alloc_id="done")) == ""
    assert c.dirs.destroyed == ["done"] and c.runner.stats["gc_collected"] == 1
    assert ref.ask(CollectAlloc(alloc_id="done")) == NOT_ELIGIBLE_FOR_GC  # already collected
    assert c.dirs.destroyed == ["done"]
    assert c.status("done") == "complete"  # the servers' view of it is unchanged


def test_a_forced_gc_of_all_collects_every_finished_alloc_only():
    from actors.client.alloc_runner import CollectAllAllocs

    c = GcClient()
    c.set(alloc("b1", task(run_for_s=1), job_type="batch"), alloc("b2", task(run_for_s=2), job_type="batch"),
          alloc("web", task()))
    c.until(lambda: c.status("b1") == c.status("b2") == "complete" and c.status("web") == "running", 20)
    ref = c.node.actors["allocs"]
    assert sorted(ref.ask(CollectAllAllocs())) == ["b1", "b2"]
    assert sorted(c.dirs.destroyed) == ["b1", "b2"]
    assert ref.ask(CollectAllAllocs()) == ()  # nothing left to collect
    assert c.task("web").state == "running"


def test_a_forced_gc_without_directories_to_remove_collects_nothing():
    from actors.client.alloc_runner import NOT_ELIGIBLE_FOR_GC, CollectAllAllocs, CollectAlloc

    c = Client()  # no AllocDirs: directories are kept (tests that inspect them)
    c.set(alloc("done", task(run_for_s=1), job_type="batch"))
    c.until(lambda: c.status("done") == "complete", 20)
    ref = c.node.actors["allocs"]
    assert ref.ask(CollectAlloc(alloc_id="done")) == NOT_ELIGIBLE_FOR_GC
    assert ref.ask(CollectAllAllocs()) == ()


def test_task_environment_carries_meta_task_over_group_over_job_and_the_parent_job():
    from actors.client.alloc_runner import parse_alloc, task_env

    raw = alloc("a1", task("t"))
    raw["Job"].update(Meta={"owner": "ops", "tier": "job"}, ParentID="report")
    raw["Job"]["TaskGroups"][0]["Meta"] = {"tier": "group", "rack.zone": "r1"}
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["Meta"] = {"tier": "task"}
    spec = parse_alloc(raw, AllocRunnerConfig())
    env = task_env(spec, spec.tasks[0], "/a", "/a/t")
    assert env["NOMAD_META_owner"] == env["NOMAD_META_OWNER"] == "ops"
    assert env["NOMAD_META_tier"] == "task" and env["NOMAD_META_rack_zone"] == "r1"
    assert env["NOMAD_JOB_PARENT_ID"] == "report"
    raw["Job"]["Meta"] = {"n": 1}
    with pytest.raises(Exception, match="Meta must be an object of strings"):
        parse_alloc(raw, AllocRunnerConfig())


def test_task_environment_interpolates_the_env_blocks_values_and_meta():
    """Nomad's taskenv buildEnv: a task's env values (and meta values) may name the task's variables
    and the node's values -- ``MY_ALLOC = "${NOMAD_ALLOC_ID}"``, ``"${node.unique.name}"``; an unknown
    name is left as written, and NOMAD_DC comes from the node."""
    from actors.client.alloc_runner import parse_alloc, task_env

    raw = alloc("5d8b9c3e-0000-4000-8000-000000000001", task("t"))
    raw["Job"]["Meta"] = {"owner": "ops", "where": "${node.unique.name}"}
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["Env"] = {
        "MY_ALLOC": "${NOMAD_ALLOC_ID}", "NODE": "${node.unique.name}", "RACK": "rack-${meta.rack}",
        "OWNER": "${NOMAD_META_owner}/${NOMAD_DC}", "WHERE": "${NOMAD_META_where}", "ODD": "${nope} $HOME"}
    spec = parse_alloc(raw, AllocRunnerConfig())
    node = {"node.unique.name": "n1", "meta.rack": "r9", "node.datacenter": "dc7"}
    env = task_env(spec, spec.tasks[0], "/a", "/a/t", node)
    assert env["MY_ALLOC"] == raw["ID"] and env["NODE"] == "n1" and env["RACK"] == "rack-r9"
    assert env["OWNER"] == "ops/dc7" and env["NOMAD_DC"] == "dc7"
    assert env["WHERE"] == env["NOMAD_META_where"] == "n1"
    assert env["ODD"] == "${nope} $HOME"


def test_a_chroot_drivers_task_gets_env_values_naming_its_directories_as_it_sees_them():
    """Nomad's builder for a chroot driver (exec) holds the container paths, so ``X =
    "${NOMAD_TASK_DIR}/x"`` is ``/local/x`` inside the task, not the host's task directory."""
    from actors.client.drivers import FS_ISOLATION_CHROOT

    started: list[dict[str, str]] = []

    class ChrootSim(SimDriver):
        fs_isolation = FS_ISOLATION_CHROOT

        def start(self, alloc_id: str, task_name: str, config: dict[str, Any], task_dir: str,
                  env: dict[str, str], *args: Any, **kwargs: Any) -> TaskHandle:
            started.append(dict(env))
            return super().start(alloc_id, task_name, config, task_dir, env, *args, **kwargs)

    c = GcClient(driver_class=ChrootSim)  # directories to write the template in
    c.set(alloc("a1", task("t"), Env={"X": "${NOMAD_TASK_DIR}/x", "S": "${NOMAD_SECRETS_DIR}",
                                      "A": "${NOMAD_ALLOC_DIR}/data"},
                # Nomad's template hook renders with TaskEnv.All(), the task's view of its directories
                Templates=[{"EmbeddedTmpl": 'T={{ env "NOMAD_TASK_DIR" }}/conf\nX={{ env "X" }}\n',
                            "DestPath": "local/t.env", "Envvars": True, "ChangeMode": "noop"}]))
    c.until(lambda: c.task("a1").state == "running", 10)
    (env,) = started
    assert env["NOMAD_TASK_DIR"] == "/local" and env["X"] == "/local/x"
    assert env["S"] == "/secrets" and env["A"] == "/alloc/data"
    assert env["T"] == "/local/conf" and env["X"] == "/local/x"


def test_task_environment_names_the_allocation_index_short_id_job_name_and_region():
    """Nomad's taskenv buildEnv: NOMAD_ALLOC_INDEX from the name's [n], NOMAD_SHORT_ALLOC_ID (8
    characters), NOMAD_JOB_NAME the job's Name (not its ID) and NOMAD_REGION the job's region."""
    from actors.client.alloc_runner import parse_alloc, task_env

    raw = alloc("5d8b9c3e-0000-4000-8000-000000000001", task("t"))
    raw["Name"] = "web.g[3]"
    raw["Job"].update(Name="web-name", Region="eu")
    spec = parse_alloc(raw, AllocRunnerConfig())
    env = task_env(spec, spec.tasks[0], "/a", "/a/t")
    assert env["NOMAD_ALLOC_INDEX"] == "3" and env["NOMAD_SHORT_ALLOC_ID"] == "5d8b9c3e"
    assert env["NOMAD_JOB_NAME"] == "web-name" and env["NOMAD_JOB_ID"] == raw["JobID"]
    assert env["NOMAD_REGION"] == "eu"
    raw["Name"], raw["Job"] = "odd", {k: v for k, v in raw["Job"].items() if k not in ("Name", "Region")}
    spec = parse_alloc(raw, AllocRunnerConfig())
    env = task_env(spec, spec.tasks[0], "/a", "/a/t")
    assert env["NOMAD_ALLOC_INDEX"] == "0" and "NOMAD_REGION" not in env  # as Nomad's AllocIndexFromName
    assert env["NOMAD_JOB_NAME"] == env["NOMAD_JOB_ID"]


# ------------------------------------------------------------ dispatch payload (Nomad's dispatch_payload hook)
def test_a_dispatched_payload_is_written_to_the_tasks_local_file_before_each_start():
    import base64

    c = GcClient()
    raw = alloc("d1", task("t", run_for_s=1), job_type="batch")
    raw["Job"]["Payload"] = base64.b64encode(b"input").decode()
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] = {"File": "in/data.txt"}
    c.set(raw)
    c.until(lambda: c.status("d1") == "complete", 20)
    assert c.dirs.files == {("d1", "t", "in/data.txt"): b"input"}


def test_a_payload_that_cannot_be_written_fails_the_task_without_starting_it():
    c = Client()  # no AllocDirs: nowhere to write it
    raw = alloc("d2", task("t"), job_type="batch")
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] = {"File": "data.txt"}
    c.set(raw)
    c.until(lambda: c.status("d2") == "failed", 20)
    assert c.starts_of("d2") == []
    assert "failed to write the dispatch payload" in c.task("d2").events[-2].message


@pytest.mark.parametrize("bad", ["/etc/passwd", "../secrets/x", "a/../../x", ".", ""])
def test_a_payload_file_outside_the_local_directory_is_refused(bad):
    from actors.client.alloc_runner import AllocError, parse_alloc

    raw = alloc("d3", task("t"))
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] = {"File": bad}
    if bad == "":  # no file: nothing is written
        assert parse_alloc(raw, AllocRunnerConfig()).tasks[0].payload_file == ""
        return
    with pytest.raises(AllocError, match="escapes the task's local directory"):
        parse_alloc(raw, AllocRunnerConfig())


def test_disk_alloc_dirs_write_the_payload_and_never_through_a_symlink(tmp_path):
    import os

    from actors.client.alloc_runner import DiskAllocDirs

    dirs = DiskAllocDirs(str(tmp_path))
    dirs.write_task_file("a1", "t", "in/data.txt", b"one")
    assert (tmp_path / "a1" / "t" / "local" / "in" / "data.txt").read_bytes() == b"one"
    dirs.write_task_file("a1", "t", "in/data.txt", b"two")  # a restart writes it again
    assert (tmp_path / "a1" / "t" / "local" / "in" / "data.txt").read_bytes() == b"two"
    os.symlink("/etc/hostname", tmp_path / "a1" / "t" / "local" / "link")
    with pytest.raises(OSError):
        dirs.write_task_file("a1", "t", "link", b"x")
    # A directory on the way swapped for a link (the task owns its directory): never written through.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "a1" / "t" / "local" / "sub")
    with pytest.raises(OSError):
        dirs.write_task_file("a1", "t", "sub/pwned", b"x")
    os.rename(tmp_path / "a1" / "t" / "local", tmp_path / "a1" / "t" / "old-local")
    os.symlink(outside, tmp_path / "a1" / "t" / "local")
    with pytest.raises(OSError):
        dirs.write_task_file("a1", "t", "pwned", b"x")
    assert list(outside.iterdir()) == []
    with pytest.raises(ValueError, match="escapes"):
        dirs.write_task_file("a1", "t", "../../x", b"x")
    with pytest.raises(ValueError, match="unsafe allocation ID"):
        dirs.write_task_file("..", "t", "x", b"x")


def test_a_tasks_tree_is_chowned_without_following_its_links(tmp_path):
    import os

    from actors.client.drivers import _chown_tree

    victim = tmp_path / "victim"
    victim.write_text("root's")
    before = os.stat(victim)
    task = tmp_path / "task"
    (task / "local").mkdir(parents=True)
    os.symlink(victim, task / "local" / "link")
    os.symlink(tmp_path, task / "local" / "dirlink")
    uid, gid = before.st_uid + 1, before.st_gid + 1  # as root here: any id goes
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    _chown_tree(str(task), uid, gid)
    assert os.lstat(task / "local" / "link").st_uid == uid  # the link itself
    assert os.stat(victim).st_uid == before.st_uid  # never its target
    assert os.stat(tmp_path).st_uid == before.st_uid


# ------------------------------------------------------------ artifacts (Nomad's artifact hook)
class FakeFetcher:
    """Answers 0.5 s later through the simulator; a source in ``failing`` fails, None in ``answer``: never."""

    def __init__(self, client: Client) -> None:
        self.c = client
        self.calls: list[tuple[Any, ...]] = []
        self.failing: set[str] = set()
        self.answer = True

    def fetch(self, artifacts: Any, limits: Any, notify: Any) -> None:
        from actors.client.artifacts import failure_message

        self.calls.append(artifacts)
        done, error = 0, ""
        for a in artifacts:
            if a.source in self.failing:
                error = failure_message(a.source, "bad response code: 404")
                break
            done += 1
        if self.answer:
            self.c.sched.at(self.c.sched.now + 0.5, lambda: notify(done, error))


class ArtifactClient(Client):
    def __init__(self, **kw: Any) -> None:
        self.fetcher = FakeFetcher(self)
        super().__init__(**kw)

    def _boot(self, env: Any) -> None:
        env.spawn(Reporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root="/sim/allocs", reporter="reporter", config=self.config, fetcher=self.fetcher)


def with_artifacts(raw: dict[str, Any], *artifacts: dict[str, Any]) -> dict[str, Any]:
    raw["Job"]["TaskGroups"][0]["Tasks"][0]["Artifacts"] = list(artifacts)
    return raw


def test_artifacts_are_fetched_before_the_first_start_only_not_on_restarts():
    c = ArtifactClient()
    c.set(with_artifacts(alloc("r1", task("t", run_for_s=2), restart=policy(3, 3600, 1)),
                         {"GetterSource": "https://e.com/${NOMAD_ALLOC_ID}/app.tgz",
                          "RelativeDest": "local/app", "GetterHeaders": {"X-Job": "${NOMAD_JOB_ID}"}},
                         {"GetterSource": "https://e.com/tool", "GetterMode": "file"}))
    c.until(lambda: c.status("r1") == "running", 5)
    assert events(c.task("r1"))[:4] == ["Received", "Task Setup", "Downloading Artifacts", "Started"]
    assert c.task("r1").events[2].message == "Client is downloading artifacts"
    (call,) = c.fetcher.calls
    assert [(a.source, a.dest, a.mode, a.headers, a.root) for a in call] == [
        ("https://e.com/r1/app.tgz", "/sim/allocs/r1/t/local/app", "any", (("X-Job", "job-r1"),),
         "/sim/allocs/r1"),
        ("https://e.com/tool", "/sim/allocs/r1/t/local/tool", "file", (), "/sim/allocs/r1")]
    c.until(lambda: len(c.starts_of("r1")) == 3, 60)  # it exits and is restarted twice
    assert len(c.fetcher.calls) == 1 and events(c.task("r1")).count("Downloading Artifacts") == 1
    c.node.restart()  # a restarted client re-attaches; what was fetched stays fetched
    c.set(with_artifacts(alloc("r1", task("t", run_for_s=2), restart=policy(3, 3600, 1)),
                         {"GetterSource": "https://e.com/x"}, {"GetterSource": "https://e.com/tool"}))
    c.until(lambda: len(c.starts_of("r1")) == 4, 60)
    assert len(c.fetcher.calls) == 1


def test_a_failed_download_counts_against_the_restart_policy_and_only_what_is_missing_is_fetched_again():
    c = ArtifactClient()
    c.fetcher.failing = {"https://e.com/b"}
    c.set(with_artifacts(alloc("f1", restart=policy(2, 3600, 1)),
                         {"GetterSource": "https://e.com/a"}, {"GetterSource": "https://e.com/b"}))
    c.until(lambda: events(c.task("f1")).count("Downloading Artifacts") == 2, 10)
    st = c.task("f1")
    assert events(st) == ["Received", "Task Setup", "Downloading Artifacts", "Failed Artifact Download",
                          "Restarting", "Downloading Artifacts"]
    assert st.events[3].message == 'failed to download artifact "https://e.com/b": bad response code: 404'
    assert st.state == "pending" and st.restarts == 1 and c.starts_of("f1") == []
    assert [a.source for a in c.fetcher.calls[1]] == ["https://e.com/b"]  # "a" was fetched already
    c.fetcher.failing = set()
    c.until(lambda: c.status("f1") == "running", 10)  # the retry still in flight succeeds
    c.set(with_artifacts(alloc("f2", restart=policy(1, 3600, 1)), {"GetterSource": "https://e.com/b"}))
    c.fetcher.failing = {"https://e.com/b"}
    c.until(lambda: c.status("f2") == "failed", 20)
    st = c.task("f2")
    assert st.failed and c.starts_of("f2") == [] and events(st)[-1] == "Not Restarting"
    assert "Exceeded allowed attempts 1" in st.events[-1].message
    assert "bad response code: 404" in st.events[-2].message  # the Failed Artifact Download before it


def test_a_fetcher_that_never_answers_is_given_up_on_and_a_stop_while_fetching_ends_the_task():
    c = ArtifactClient(config=AllocRunnerConfig(artifact_timeout_s=5.0, artifact_fetch_grace_s=1.0))
    c.fetcher.answer = False
    c.set(with_artifacts(alloc("n1", restart=policy(0, 3600, 1)), {"GetterSource": "https://e.com/slow"}))
    c.until(lambda: c.status("n1") == "failed", 10)
    assert c.sched.now >= 6.0 and "no answer within 5s" in c.task("n1").events[-2].message
    c.fetcher.answer = True
    c.set(with_artifacts(alloc("n2"), {"GetterSource": "https://e.com/x"}), index=2)
    c.set(with_artifacts(alloc("n2", desired="stop", index=2), {"GetterSource": "https://e.com/x"}), index=3)
    c.until(lambda: c.status("n2") == "complete", 10)
    c.run(2)  # the fetch's late answer starts nothing
    assert c.starts_of("n2") == [] and events(c.task("n2"))[-1] == "Killed"


def test_a_task_with_artifacts_on_a_client_without_a_fetcher_fails_at_once():
    c = Client()
    c.set(with_artifacts(alloc("x1"), {"GetterSource": "https://e.com/x"}))
    c.until(lambda: c.status("x1") == "failed", 5)
    assert "this client fetches no artifacts" in c.task("x1").events[3].message


def test_the_simulators_fetcher_fails_a_marked_source_and_fetches_the_others():
    from actors.client.artifacts import SimArtifactFetcher

    c = ArtifactClient()
    c.fetcher = SimArtifactFetcher(lambda: c.sched.now, lambda when, fn: c.sched.at(when, fn))  # type: ignore[assignment]
    c.node.restart()  # booted again with it
    c.set(with_artifacts(alloc("s1"), {"GetterSource": "https://e.com/ok.tgz"}),
          with_artifacts(alloc("s2", restart=policy(0, 3600, 1)), {"GetterSource": "https://e.com/sim-fail"}))
    c.until(lambda: c.status("s1") == "running" and c.status("s2") == "failed", 10)
    assert c.fetcher.fetched == [("https://e.com/ok.tgz", "/sim/allocs/s1/t/local")]
    assert 'failed to download artifact "https://e.com/sim-fail": simulated download failure' in \
        c.task("s2").events[-2].message


# ------------------------------------------------------------ task lifecycle (prestart, poststart, poststop)
def lc(t: dict[str, Any], hook: str, sidecar: bool = False) -> dict[str, Any]:
    return {**t, "Lifecycle": {"Hook": hook, "Sidecar": sidecar}}


def procs(c: Client, aid: str, name: str) -> list[Any]:
    return [p for _, p in sorted(c.driver.procs.items()) if p.alloc_id == aid and p.task_name == name]


def test_main_tasks_start_once_the_prestart_task_succeeded_and_the_sidecar_runs():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("init", run_for_s=3), "prestart"), lc(task("proxy"), "prestart", True),
                task("web")))
    c.run(1)
    assert sorted(p.task_name for p in c.driver.running()) == ["init", "proxy"]
    assert c.status("a1") == "running" and c.task("a1", "web").state == "pending"
    c.until(lambda: c.task("a1", "web").state == "running", 10)
    (init,), (web,) = procs(c, "a1", "init"), procs(c, "a1", "web")
    assert init.ended_at is not None and web.started_at >= init.ended_at
    st = c.task("a1", "init")  # a service job's ephemeral prestart task is done, not restarted
    assert st.state == "dead" and not st.failed and st.restarts == 0
    # Nomad's shouldRestart: TaskTerminated (a successful exit not restarted) adds no event of its own
    assert events(st)[-2:] == ["Started", "Terminated"] and c.status("a1") == "running"
    c.run(30)
    assert len(procs(c, "a1", "init")) == 1 and c.runner.allocs["a1"].stage == "wait"


def test_poststart_tasks_start_once_every_main_task_runs():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("init", run_for_s=2), "prestart"), task("web"),
                lc(task("announce", run_for_s=1), "poststart")))
    c.until(lambda: c.task("a1", "announce").state == "dead", 10)
    (web,), (announce,) = procs(c, "a1", "web"), procs(c, "a1", "announce")
    assert announce.started_at >= web.started_at >= 2
    assert c.status("a1") == "running" and not c.task("a1", "announce").failed


def test_a_failing_prestart_task_follows_the_restart_policy_and_holds_the_main_tasks_back():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("init", run_for_s=1, exit_code=3), "prestart"), task("web"),
                restart=policy(2, 3600, 5)))
    c.until(lambda: c.status("a1") == "failed", 60)
    init, web = c.task("a1", "init"), c.task("a1", "web")
    assert init.failed and init.restarts == 2 and len(procs(c, "a1", "init")) == 3
    assert procs(c, "a1", "web") == [] and web.state == "dead" and not web.failed
    assert 'sibling "init" failed' in web.events[-1].message


def test_a_batch_jobs_sidecar_is_killed_once_the_main_task_completes_and_the_alloc_completes():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("proxy"), "prestart", True), task("work", run_for_s=5), job_type="batch"))
    c.until(lambda: c.status("a1") == "complete", 30)
    proxy = c.task("a1", "proxy")
    assert proxy.state == "dead" and not proxy.failed
    assert events(proxy)[-4:] == ["Main Tasks Dead", "Killing", "Terminated", "Killed"]
    assert proxy.events[-3].message == "Sent interrupt. Waiting 5s before force killing"  # Nomad's killTasks
    (work,), (p,) = procs(c, "a1", "work"), procs(c, "a1", "proxy")
    assert p.signals == ["SIGINT"] and p.ended_at >= work.ended_at


def test_poststop_tasks_run_after_the_main_tasks_stopped_and_before_the_alloc_is_done():
    c = Client(watch=True)
    c.set(alloc("a1", task("web"), lc(task("proxy"), "poststart", True),
                lc(task("cleanup", run_for_s=2), "poststop")))
    c.until(lambda: c.task("a1", "proxy").state == "running", 10)
    assert procs(c, "a1", "cleanup") == [] and c.task("a1", "cleanup").state == "pending"
    c.set(alloc("a1", task("web"), lc(task("proxy"), "poststart", True),
                lc(task("cleanup", run_for_s=2), "poststop"), desired="stop", index=2), index=2)
    c.until(lambda: c.task("a1", "cleanup").state == "running", 10)
    assert c.status("a1") == "running"
    (web,), (proxy,), (cleanup,) = procs(c, "a1", "web"), procs(c, "a1", "proxy"), procs(c, "a1", "cleanup")
    assert proxy.ended_at >= web.ended_at and cleanup.started_at >= proxy.ended_at
    c.until(lambda: c.status("a1") == "complete", 10)
    assert not c.task("a1", "cleanup").failed and events(c.task("a1", "cleanup"))[-1] == "Terminated"


def test_poststop_tasks_of_an_alloc_that_never_ran_are_not_run():
    c = Client(watch=True)
    c.set(alloc("a1", task("web"), lc(task("cleanup"), "poststop"), desired="stop"))
    c.until(lambda: c.status("a1") == "complete", 10)
    assert c.driver.starts == 0


def test_an_operator_restart_does_not_run_a_completed_prestart_task_again():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("init", run_for_s=1), "prestart"), task("web")))
    c.until(lambda: c.task("a1", "web").state == "running", 10)
    assert c.node.actors["allocs"].ask(RestartTasks(alloc_id="a1")) == ""
    c.until(lambda: len(procs(c, "a1", "web")) == 2 and c.task("a1", "web").state == "running", 10)
    assert len(procs(c, "a1", "init")) == 1 and c.task("a1", "init").state == "dead"
    assert c.status("a1") == "running"


def test_the_lifecycle_stage_survives_a_client_restart():
    c = Client(watch=True)
    c.set(alloc("a1", lc(task("init", run_for_s=1), "prestart"), task("web")))
    c.until(lambda: c.task("a1", "web").state == "running", 10)
    c.node.restart()
    c.set(alloc("a1", lc(task("init", run_for_s=1), "prestart"), task("web")))
    c.run(5)
    assert c.runner.allocs["a1"].stage == "wait" and len(procs(c, "a1", "init")) == 1
    assert c.task("a1", "web").state == "running" and c.runner.stats["reattached"] == 1


def test_lifecycle_rules_follow_nomads_coordinator():
    from actors.client.alloc_runner import TaskSpec, next_stage, restarts_on_success

    def spec(hook: str = "", sidecar: bool = False) -> TaskSpec:
        return TaskSpec("t", "sim", {}, (), 1, 1, 1.0, "SIGINT", hook=hook, sidecar=sidecar)

    pending, running = TaskState(state="pending"), TaskState(state="running", started_at=1.0)
    done, failed = TaskState(state="dead"), TaskState(state="dead", failed=True)
    init, side, main, post = spec("prestart"), spec("prestart", True), spec(), spec("poststart")
    assert next_stage("prestart", [(init, running), (side, running), (main, pending)]) == "prestart"
    assert next_stage("prestart", [(init, failed), (side, running), (main, pending)]) == "prestart"
    assert next_stage("prestart", [(init, done), (side, pending), (main, pending)]) == "prestart"
    assert next_stage("prestart", [(init, done), (side, running), (main, pending)]) == "main"
    assert next_stage("prestart", [(main, running), (post, pending)]) == "poststart"
    assert next_stage("poststart", [(main, running), (post, done)]) == "wait"
    assert next_stage("main", [(main, done), (spec("poststop"), pending)]) == "poststop"
    assert next_stage("poststop", [(main, pending)]) == "poststop"
    assert restarts_on_success("service", main) and not restarts_on_success("batch", main)
    assert not restarts_on_success("service", init) and restarts_on_success("batch", side)
    assert not restarts_on_success("service", spec("poststop", True))


def test_deployment_health_ignores_ephemeral_lifecycle_tasks_that_succeeded_and_poststop_tasks():
    c = Client(watch=True)
    raw = alloc("a1", lc(task("init", run_for_s=1), "prestart"), task("web"),
                lc(task("announce", run_for_s=1), "poststart"), lc(task("cleanup"), "poststop"))
    raw["DeploymentID"] = "d1"
    raw["Job"]["TaskGroups"][0]["Update"] = {"MinHealthyTime": 3 * NS, "HealthyDeadline": 60 * NS,
                                             "HealthCheck": "task_states"}
    c.set(raw)
    c.until(lambda: c.latest("a1") is not None and c.latest("a1").deployment_healthy is not None, 30)
    u = c.latest("a1")
    assert u.deployment_healthy is True and u.deployment_ts >= 4  # web started at 1, healthy 3 s on
    assert dict(u.task_states)["cleanup"].state == "pending" and dict(u.task_states)["init"].state == "dead"


def test_outside_a_deployment_a_service_allocations_health_follows_its_groups_migrate_block():
    """Nomad's health hook watches an allocation that is in no deployment (a drained one's
    replacement) with its group's migrate block, for the drainer: healthy once its tasks have run
    MinHealthyTime, unhealthy at HealthyDeadline; Nomad's defaults (10 s) without one; never for
    batch work."""
    c = Client(watch=True)
    quick = alloc("m1", task("web"))
    quick["Job"]["TaskGroups"][0]["Migrate"] = {"MaxParallel": 1, "HealthCheck": "task_states",
                                                "MinHealthyTime": 3 * NS, "HealthyDeadline": 60 * NS}
    late = alloc("m2", lc(task("init", run_for_s=8), "prestart"), task("web"))
    late["Job"]["TaskGroups"][0]["Migrate"] = {"MaxParallel": 1, "HealthCheck": "task_states",
                                               "MinHealthyTime": 1 * NS, "HealthyDeadline": 5 * NS}
    c.set(quick, late, alloc("d1", task("web")), alloc("b1", task("web", run_for_s=100), job_type="batch"))
    c.until(lambda: all(c.latest(a) is not None and c.latest(a).deployment_healthy is not None
                        for a in ("m1", "m2", "d1")), 30)
    m1, m2, d1 = c.latest("m1"), c.latest("m2"), c.latest("d1")
    assert m1.deployment_healthy is True and 3 <= m1.deployment_ts < 10 and m1.deployment_id == ""
    assert m2.deployment_healthy is False and m2.deployment_ts < 8  # not running by its deadline
    assert d1.deployment_healthy is True and d1.deployment_ts >= 10  # DefaultMigrateStrategy: 10 s
    c.run(20)
    assert all(u.deployment_healthy is None for m in c.got for u in m.updates if u.alloc_id == "b1")


def test_an_artifact_destination_already_inside_the_allocation_is_taken_as_it_is() -> None:
    """Nomad's TaskEnv.ClientPath: ${NOMAD_TASK_DIR}/x and ${NOMAD_ALLOC_DIR}/x stay where they point;
    a relative or other absolute one goes under the task's directory."""
    c = ArtifactClient()
    c.set(with_artifacts(alloc("d1", task("t", run_for_s=2)),
                         {"GetterSource": "https://e.com/a.tgz", "RelativeDest": "${NOMAD_TASK_DIR}/conf"},
                         {"GetterSource": "https://e.com/b.tgz", "RelativeDest": "${NOMAD_ALLOC_DIR}/data"},
                         {"GetterSource": "https://e.com/c.tgz", "RelativeDest": "/etc/app"},
                         {"GetterSource": "https://e.com/d.tgz", "RelativeDest": "local/bin"}))
    c.until(lambda: len(c.fetcher.calls) >= 1, 10)
    (call,) = c.fetcher.calls[:1]
    root = call[0].root
    assert [a.dest for a in call] == [f"{root}/t/local/conf", f"{root}/alloc/data", f"{root}/t/etc/app",
                                      f"{root}/t/local/bin"]


def test_a_prestart_sidecar_need_only_have_started_once_for_the_main_tasks_to_start() -> None:
    """Nomad's isPrestartDone: a sidecar restarting when the ephemeral prestart tasks end holds nothing."""
    from actors.client.alloc_runner import (
        EV_STARTED,
        TASK_DEAD,
        TASK_PENDING,
        TASK_RUNNING,
        TaskEvent,
        TaskSpec,
        next_stage,
    )

    def spec(name: str, hook: str = "", sidecar: bool = False) -> TaskSpec:
        return TaskSpec(name, "sim", {}, (), 1, 1, 1.0, "SIGINT", hook=hook, sidecar=sidecar)

    init, proxy, main = spec("init", "prestart"), spec("proxy", "prestart", True), spec("main")
    done_init = TaskState(state=TASK_DEAD, started_at=1.0, finished_at=2.0)
    restarting = TaskState(state=TASK_PENDING, restarts=1,  # ran, died, waits to restart
                           events=(TaskEvent(type=EV_STARTED, time=1.0),))
    never = TaskState(state=TASK_PENDING)
    assert next_stage("prestart", [(init, done_init), (proxy, restarting), (main, never)]) == "main"
    assert next_stage("prestart", [(init, done_init), (proxy, never), (main, never)]) == "prestart"
    running = TaskState(state=TASK_RUNNING, started_at=1.0)
    assert next_stage("prestart", [(init, done_init), (proxy, running), (main, never)]) == "main"


def test_destroy_kills_every_task_runs_no_poststop_task_and_answers_once_all_are_dead():
    """Dev mode's shutdown (Nomad's client.Shutdown destroys every allocation runner in dev mode)."""
    from actors.agent_messages import Destroy, Destroyed

    c = Client()
    got: list[Any] = []
    cleanup = {**task("cleanup"), "Lifecycle": {"Hook": "poststop"}}
    c.set(alloc("a1", task(ignore_signals=True), cleanup, KillTimeout=3 * NS), alloc("a2"))
    c.until(lambda: c.status("a1") == "running" and c.status("a2") == "running", 5)
    t0 = c.sched.now

    class Agent(NodeActor):
        def receive(self, message: Any) -> Any:
            got.append(message)
            return None

    c.node.spawn(Agent, "agent2")
    c.node.actors["allocs"].tell(Destroy(reply_to="agent2", corr=7))
    c.until(lambda: bool(got), 10)
    assert got == [Destroyed(actor="allocs", corr=7)]
    assert 3.0 <= c.sched.now - t0 < 3.1  # a1's task ignored its signal: SIGKILL after its kill timeout
    assert all(p.result is not None for p in c.driver.procs.values())
    assert sorted(p.task_name for p in c.driver.procs.values()) == ["t", "t"]  # cleanup never ran
    assert c.runner.allocs == {} and c.store.load_all() == {}


# ------------------------------------------------------------ ephemeral disk: sticky and migrate
class DiskClient(Client):
    """A client whose allocation directories are real ones under *root* (DiskAllocDirs)."""

    def __init__(self, root: str, config: AllocRunnerConfig | None = None) -> None:
        from actors.client.alloc_runner import DiskAllocDirs

        self.root = root
        self.dirs = DiskAllocDirs(root)
        super().__init__(config=config)

    def _boot(self, env: Any) -> None:
        env.spawn(Reporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root=self.root, reporter="reporter", config=self.config, alloc_dirs=self.dirs)


def _slow(kill_s: float) -> dict[str, Any]:
    """A task that ignores its kill signal: it dies *kill_s* later, at its KillTimeout's SIGKILL."""
    return {**task("t", ignore_signals=True), "KillTimeout": int(kill_s * NS)}


def _disk_alloc(aid: str, *, prev: str = "", sticky: bool = False, migrate: bool = False, index: int = 1,
                desired: str = "run", tasks: tuple[dict[str, Any], ...] = (), job_type: str = "service",
                ) -> dict[str, Any]:
    a = alloc(aid, *(tasks or (_slow(2.0),)), desired=desired, index=index, job_type=job_type)
    a["Job"]["TaskGroups"][0]["EphemeralDisk"] = {"SizeMB": 300, "Sticky": sticky, "Migrate": migrate}
    a["PreviousAllocation"] = prev
    return a


def test_a_sticky_disks_data_moves_to_the_replacement_once_the_previous_allocation_ended(tmp_path):
    """A destructive update on the same node: the new allocation's tasks wait for the old one to end,
    then find its alloc/data and their local/ directories (Nomad's prevAllocWatcher and migrator)."""
    c = DiskClient(str(tmp_path))
    c.set(_disk_alloc("a1", sticky=True))
    c.until(lambda: c.status("a1") == "running", 5)
    (tmp_path / "a1" / "alloc" / "data").mkdir(parents=True)
    (tmp_path / "a1" / "alloc" / "data" / "db.txt").write_text("kept")
    (tmp_path / "a1" / "t" / "local").mkdir(parents=True)
    (tmp_path / "a1" / "t" / "local" / "state").write_text("mine")
    (tmp_path / "a2" / "alloc" / "data").mkdir(parents=True)  # an empty one in the way gives way
    # The servers stop a1 and place a2 in its stead, in one set; a1 takes 2 s to die.
    c.set(_disk_alloc("a1", sticky=True, desired="stop", index=2),
          _disk_alloc("a2", prev="a1", sticky=True, index=2), index=2)
    c.run(1.0)
    assert c.task("a2").state == "pending" and c.starts_of("a2") == []  # waits for a1
    c.until(lambda: c.status("a1") == "complete" and c.status("a2") == "running", 10)
    assert c.starts_of("a2")[0] >= c.task("a1").finished_at
    assert (tmp_path / "a2" / "alloc" / "data" / "db.txt").read_text() == "kept"
    assert (tmp_path / "a2" / "t" / "local" / "state").read_text() == "mine"
    assert not (tmp_path / "a1" / "alloc" / "data").exists()
    assert [e.message for e in c.task("a2").events if e.type == "Task Setup"] == ["Building Task Directory"]


def test_without_a_sticky_disk_the_replacement_waits_but_does_not_take_the_data(tmp_path):
    """Nomad's prevAllocWatcher waits for a previous allocation on the same node whatever its disk (its
    ports and resources are free then); only a sticky or migrating disk moves over."""
    c = DiskClient(str(tmp_path))
    c.set(_disk_alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    (tmp_path / "a1" / "alloc" / "data").mkdir(parents=True)
    (tmp_path / "a1" / "alloc" / "data" / "db.txt").write_text("kept")
    t0 = c.sched.now
    c.set(_disk_alloc("a1", desired="stop", index=2), _disk_alloc("a2", prev="a1", index=2), index=2)
    c.until(lambda: c.status("a2") == "running", 5)
    assert c.status("a1") == "complete" and c.sched.now - t0 >= 2.0  # a2 waited out a1's 2 s kill timeout
    assert min(c.starts_of("a2")) >= t0 + 2.0
    assert (tmp_path / "a1" / "alloc" / "data" / "db.txt").exists()
    assert not (tmp_path / "a2" / "alloc" / "data" / "db.txt").exists()


def test_a_migrating_disk_whose_previous_allocation_ran_elsewhere_starts_and_says_so(tmp_path):
    c = DiskClient(str(tmp_path))
    c.set(_disk_alloc("a2", prev="0123456789-elsewhere", migrate=True))
    c.until(lambda: c.status("a2") == "running", 5)
    setup = [e for e in c.task("a2").events
             if e.type == "Task Setup" and e.message != "Building Task Directory"]
    assert len(setup) == 1 and "01234567" in setup[0].message and "was not migrated" in setup[0].message
    assert "another node" in setup[0].message


def test_a_replacement_waiting_for_its_previous_allocation_is_persisted_across_a_restart(tmp_path):
    c = DiskClient(str(tmp_path))
    c.set(_disk_alloc("a1", sticky=True, tasks=(_slow(30.0),)))
    c.until(lambda: c.status("a1") == "running", 5)
    (tmp_path / "a1" / "alloc" / "data").mkdir(parents=True)
    (tmp_path / "a1" / "alloc" / "data" / "db.txt").write_text("kept")
    c.set(_disk_alloc("a1", sticky=True, desired="stop", index=2, tasks=(_slow(30.0),)),
          _disk_alloc("a2", prev="a1", sticky=True, index=2), index=2)
    c.run(1.0)
    assert c.store.load_all()["a2"]["prev_wait"] == "a1"
    c.node.restart()
    c.run(1.0)
    assert c.starts_of("a2") == []  # still waits for a1
    c.until(lambda: c.status("a2") == "running", 60)
    assert (tmp_path / "a2" / "alloc" / "data" / "db.txt").read_text() == "kept"


def test_the_allocation_a_sticky_replacement_takes_the_disk_of_is_not_garbage_collected_first(tmp_path):
    from actors.client.alloc_runner import CollectAlloc

    c = DiskClient(str(tmp_path), AllocRunnerConfig(gc_max_allocs=1))
    done = _disk_alloc("a1", sticky=True, job_type="batch", tasks=(task("t", run_for_s=1),))
    c.set(done)
    c.until(lambda: c.status("a1") == "complete", 5)
    (tmp_path / "a1" / "alloc" / "data").mkdir(parents=True)
    (tmp_path / "a1" / "alloc" / "data" / "out").write_text("result")
    # Over gc_max_allocs with a2: a1 is the oldest finished one, but a2 takes its disk first.
    c.set(done, _disk_alloc("a2", prev="a1", sticky=True, job_type="batch", index=2,
                            tasks=(task("t", run_for_s=30),)), index=2)
    c.until(lambda: c.status("a2") == "running", 5)
    assert (tmp_path / "a2" / "alloc" / "data" / "out").read_text() == "result"
    assert c.node.actors["allocs"].ask(CollectAlloc(alloc_id="a1")) == ""  # taken: now it may go
    assert not (tmp_path / "a1").exists()


# ------------------------------------------------------------ alloc exec's view of a task
def test_exec_target_tells_the_tasks_driver_state_dir_env_and_user():
    from actors.client.alloc_runner import ExecTarget, GetExecTarget

    c = Client()
    c.run(1.0)  # a start at virtual time 0 would read as "never started" (started_at 0)
    c.set(alloc("a1", {**task("web"), "Env": {"MARK": "m"}, "User": "nobody"},
                {**task("once", run_for_s=1)}, job_type="batch"))
    c.until(lambda: c.task("a1", "once").state == "dead", 20)
    t = c.runner.receive(GetExecTarget(alloc_id="a1", task="web"))
    assert (t.found, t.task_known, t.driver, t.started, t.running, t.user) == (True, True, "sim", True, True,
                                                                              "nobody")
    assert t.task_dir == "/sim/allocs/a1/web"
    env = dict(t.env)
    assert env["MARK"] == "m" and env["NOMAD_TASK_NAME"] == "web" and env["NOMAD_ALLOC_ID"] == "a1"
    done = c.runner.receive(GetExecTarget(alloc_id="a1", task="once"))
    assert (done.started, done.running) == (True, False)
    unknown = c.runner.receive(GetExecTarget(alloc_id="a1", task="nope"))
    assert unknown == ExecTarget(found=True, namespace="default", job_id=unknown.job_id) and unknown.job_id
    assert c.runner.receive(GetExecTarget(alloc_id="zz", task="web")) == ExecTarget(found=False)


def test_in_place_update_takes_the_new_versions_settings_and_persists_the_new_record():
    import actors.client.alloc_runner as ar

    c = Client()
    c.set(alloc("a1", restart=policy(2, 3600, 5)))
    c.until(lambda: c.status("a1") == "running")
    parsed = []
    real = ar.parse_alloc

    def counting(raw: Any, cfg: Any) -> Any:
        parsed.append(raw["AllocModifyIndex"])
        return real(raw, cfg)

    ar.parse_alloc = counting
    try:
        # A rescale (only the group's count changed): nothing the runner reads of it is parsed again.
        scaled = alloc("a1", index=2, restart=policy(2, 3600, 5))
        scaled["Job"]["TaskGroups"][0]["Count"] = 3
        c.set(scaled, index=2)
        c.run(1)
        assert parsed == []
        assert json.loads(c.store.data["a1"])["alloc"] == scaled
        # A new restart policy: taken, as Nomad's task runner's Update takes it.
        c.set(alloc("a1", index=3, restart=policy(7, 3600, 5)), index=3)
        c.run(1)
        assert parsed == [3]
    finally:
        ar.parse_alloc = real
    a = c.runner.allocs["a1"]
    assert a.spec.restart.attempts == 7
    assert json.loads(c.store.data["a1"])["modify_index"] == 3
    assert len(c.starts_of("a1")) == 1  # still its first run


class _LateReporter(Reporter):
    """A reporter not up yet (the agent starts the runner before AllocSync): what it is sent before
    "up" is lost, as a message to an actor that does not exist yet."""

    def __init__(self, env: Any, name: str, got: list[AllocUpdates]) -> None:
        super().__init__(env, name, got)
        self.up = False

    def receive(self, message: Any) -> Any:
        if message == "up":
            self.up = True
        elif self.up:
            super().receive(message)
        return None


class _LateReporterClient(Client):
    def _boot(self, env: Any) -> None:
        env.spawn(_LateReporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root="/sim/allocs", reporter="reporter", config=self.config)


def test_a_health_decided_at_restore_is_reported_once_the_servers_are_linked():
    """A deployment's allocation running when the agent stopped, short of its min_healthy_time, and
    healthy by the time the agent is back: the restore decides its health before the reporter is up,
    and the first ServerLink has everything reported again -- else the deployment waits on it until
    its progress deadline."""
    c = _LateReporterClient(watch=True)
    raw = alloc("a1")
    raw["DeploymentID"] = "d1"
    raw["Job"]["TaskGroups"][0]["Update"] = {"MinHealthyTime": 10 * NS, "HealthyDeadline": 300 * NS,
                                             "HealthCheck": "task_states"}
    c.node.actors["reporter"].tell("up")
    c.set(raw)
    c.until(lambda: c.status("a1") == "running", 5)
    c.run(5)
    c.node.crash()
    c.run(10)
    c.node.restart()
    c.run(1)
    assert c.latest("a1").deployment_healthy is None  # decided, but told to no one yet
    c.node.actors["reporter"].tell("up")
    c.node.actors["allocs"].tell(ServerLink(node_id="n1", secret_id="s1", servers=("srv1",)))
    c.until(lambda: c.latest("a1").deployment_healthy is not None, 5)
    assert c.latest("a1").deployment_healthy is True and c.latest("a1").deployment_id == "d1"
