"""A template's ``change_mode = "script"`` in the simulator: when its rendering changes, the client runs
the change_script inside the task through the driver (SimDriver records it and answers as set) and
gives Nomad's events; with fail_on_error a failed script kills the task, failed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_templates_sim import CONF, boot, events, job, procs, set_var, until

pytestmark = pytest.mark.timeout(60)

SCRIPT = {**CONF, "ChangeMode": "script",
          "ChangeScript": {"Command": "/bin/reload", "Args": ["-q", "now"], "Timeout": 7 * 10**9}}


def started(c: Any) -> Any:
    set_var(c, "nomad/jobs/web", {"password": "a"})
    return c


def test_a_changed_rendering_runs_the_script_in_the_task() -> None:
    c = started(boot())
    c.register(job([SCRIPT]))
    until(c, lambda: len(procs(c)) == 1)
    driver = c.drivers["c0001"]
    assert driver.execs == []  # not on the first rendering
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: ("Task hook message", "Template successfully ran script /bin/reload with arguments: "
                      "[-q now]. Exit code: 0") in events(c))
    p = procs(c)[0]
    assert driver.execs == [(p.alloc_id, "t", "/bin/reload", ("-q", "now"), 7.0)]
    assert len(procs(c)) == 1 and p.ended_at is None and p.signals == []


def test_a_failing_script_without_fail_on_error_leaves_the_task_running() -> None:
    c = started(boot())
    c.register(job([SCRIPT]))
    until(c, lambda: len(procs(c)) == 1)
    p = procs(c)[0]
    c.drivers["c0001"].exec_results[(p.alloc_id, "t")] = (3, "")
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: ("Task hook failed", "Template ran script /bin/reload with arguments [-q now] on change "
                      "but it exited with code: 3") in events(c))
    c.run(5.0)
    assert len(procs(c)) == 1 and procs(c)[0].ended_at is None
    assert not any(t == "Killing" for t, _ in events(c))


def test_a_failing_script_with_fail_on_error_kills_the_task_failed() -> None:
    c = started(boot())
    c.register(job([{**SCRIPT, "ChangeScript": {"Command": "/bin/reload", "FailOnError": True}}]))
    until(c, lambda: len(procs(c)) == 1)
    p = procs(c)[0]
    c.drivers["c0001"].exec_results[(p.alloc_id, "t")] = (0, 'exec: "/bin/reload": no such file')
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: procs(c)[0].ended_at is not None)
    ev = events(c)
    assert ("Task hook failed", 'Template failed to run script /bin/reload with arguments [] on change: '
            'exec: "/bin/reload": no such file. Exit code: 0') in ev
    assert ("Killing", "Template script failed, task is being killed") in ev
    runner = c.sched.actor_of(c.sched.nodes["c0001"].actors["alloc-runner"])
    until(c, lambda: any(t.state.failed for a in runner.allocs.values() for t in a.tasks.values()))
