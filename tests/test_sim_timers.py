"""The simulator's named timers (sim.runtime._sim_set_timer): NodeActor's rules, event for event."""

from __future__ import annotations

from typing import Any

from runtime.actor import NodeActor
from sim.runtime import Scheduler


class _Timed(NodeActor):
    def __init__(self, env: Any, name: str, log: list[tuple[str, float]]) -> None:
        super().__init__(env, name)
        self.log = log
        self.set_timer("early", 1.0)  # before the actor starts: NodeActor.set_timer's own handle
        self.set_timer("gone", 1.0)
        self.cancel_timer("gone")

    def on_start(self) -> None:
        self.set_timer("later", 2.0)
        self.set_timer("cancelled", 2.5)  # cancelled by "later" first
        self.set_timer("rearmed", 1.0)
        self.set_timer("rearmed", 3.0)
        self.set_timer("crash", 10.0)

    def on_timer(self, name: str) -> None:
        self.log.append((name, self.env.now()))
        if name == "later":
            self.cancel_timer("cancelled")


def _run(until: float, crash_at: float | None = None) -> list[tuple[str, float]]:
    log: list[tuple[str, float]] = []
    sched = Scheduler(1)
    node = sched.add_node("n1", boot=lambda env: env.spawn(_Timed, "a", log))
    if crash_at is not None:
        sched.run_until_time(crash_at)
        node.crash()
    sched.run_until_time(until)
    sched.close()
    return log


def test_timers_set_before_and_after_start_fire_once_and_cancels_and_rearms_hold():
    assert _run(20.0) == [("early", 1.0), ("later", 2.0), ("rearmed", 3.0), ("crash", 10.0)]


def test_no_timer_armed_before_a_crash_fires_after_it():
    assert _run(20.0, crash_at=2.5) == [("early", 1.0), ("later", 2.0)]
