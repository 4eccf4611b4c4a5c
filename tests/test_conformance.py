"""One contract, two runtimes: the same actor classes under gevent and in the simulator."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from runtime.actor import NodeActor
from runtime.messages import ChildFailed, TimerFired

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class Emit:
    to: str
    count: int
    tag: str


@dataclass(frozen=True)
class Item:
    tag: str
    n: int


@dataclass(frozen=True)
class Arm:
    name: str
    delay_s: float


@dataclass(frozen=True)
class Disarm:
    name: str


@dataclass(frozen=True)
class Later:
    """Answer *reply* only after *delay_s* (a deferred reply to the outside)."""

    delay_s: float
    reply: Any


@dataclass(frozen=True)
class AskOther:
    actor: str


class Collector(NodeActor):
    def __init__(self, env, name, log: list) -> None:
        super().__init__(env, name)
        self.log = log
        self.pending: Any = None

    def receive(self, message: Any) -> Any:
        if isinstance(message, Item):
            self.log.append((message.tag, message.n))
        elif isinstance(message, Emit):
            for n in range(message.count):
                self.send(self.env.node, message.to, Item(tag=message.tag, n=n))
        elif isinstance(message, Arm):
            self.set_timer(message.name, message.delay_s)
        elif isinstance(message, Disarm):
            self.cancel_timer(message.name)
        elif isinstance(message, Later):
            self.pending = message.reply
            self.set_timer("answer", message.delay_s)
        elif isinstance(message, ChildFailed):
            self.log.append(("failed", message.actor, message.error))
        elif isinstance(message, AskOther):
            # Forbidden: an actor blocking on another actor.
            return self.env.lookup(message.actor).ask("hello", timeout=1.0)
        elif message == "boom":
            raise RuntimeError("boom requested")
        elif message == "echo?":
            return ("echo", self.name)
        return None

    def on_timer(self, name: str) -> None:
        self.log.append(("timer", name))
        if name == "answer" and self.pending is not None:
            self.pending.set("answered")

    def on_stop(self) -> None:
        super().on_stop()
        self.log.append(("stopped", self.name))


def test_messages_from_one_sender_arrive_in_order(harness):
    env = harness.node("n1")
    log: list = []
    sink = env.spawn(Collector, "sink", log)
    a = env.spawn(Collector, "a", [])
    b = env.spawn(Collector, "b", [])
    a.tell(Emit(to="sink", count=200, tag="a"))
    b.tell(Emit(to="sink", count=200, tag="b"))
    assert harness.wait_for(lambda: len(log) == 400)
    for tag in ("a", "b"):
        assert [n for t, n in log if t == tag] == list(range(200))
    assert sink.is_alive()


def test_timer_fires(harness):
    env = harness.node("n1")
    log: list = []
    ref = env.spawn(Collector, "c", log)
    ref.tell(Arm(name="t", delay_s=0.05))
    assert harness.wait_for(lambda: ("timer", "t") in log)


def test_cancelled_timer_never_fires(harness):
    env = harness.node("n1")
    log: list = []
    ref = env.spawn(Collector, "c", log)
    ref.tell(Arm(name="cancelled", delay_s=0.05))
    ref.tell(Disarm(name="cancelled"))
    ref.tell(Arm(name="later", delay_s=0.15))
    assert harness.wait_for(lambda: ("timer", "later") in log)
    assert ("timer", "cancelled") not in log


def test_rearmed_timer_fires_once_and_stale_generation_is_ignored(harness):
    env = harness.node("n1")
    log: list = []
    ref = env.spawn(Collector, "c", log)
    ref.tell(Arm(name="t", delay_s=0.05))
    ref.tell(Arm(name="t", delay_s=0.10))
    ref.tell(Arm(name="end", delay_s=0.20))
    # A firing of generation 1 delivered late: must be ignored.
    ref.tell(TimerFired(name="t", generation=1))
    assert harness.wait_for(lambda: ("timer", "end") in log)
    assert log.count(("timer", "t")) == 1
    assert ref.ask("echo?", timeout=5) == ("echo", "c")


def test_stop_runs_on_stop_and_refuses_later_mail(harness):
    env = harness.node("n1")
    log: list = []
    ref = env.spawn(Collector, "c", log)
    assert ref.stop(timeout=5) is True
    assert ("stopped", "c") in log
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Item(tag="x", n=1))
    env.send(env.node, "c", Item(tag="x", n=1))  # dropped, never raises


def test_failing_receive_is_reported_to_the_supervisor(harness):
    env = harness.node("n1", supervisor="sup")
    log: list = []
    env.spawn(Collector, "sup", log)
    child = env.spawn(Collector, "child", [])
    child.tell("boom")
    assert harness.wait_for(lambda: any(e[0] == "failed" for e in log))
    failed = [e for e in log if e[0] == "failed"][0]
    assert failed[1] == "child" and "boom requested" in failed[2]
    assert harness.wait_for(lambda: not child.is_alive())


def test_ask_from_outside_answers(harness):
    env = harness.node("n1")
    ref = env.spawn(Collector, "c", [])
    assert ref.ask("echo?", timeout=5) == ("echo", "c")


def test_deferred_reply_reaches_the_outside_caller(harness):
    env = harness.node("n1")
    ref = env.spawn(Collector, "c", [])
    fut = env.make_future()
    ref.tell(Later(delay_s=0.05, reply=fut))
    assert fut.get(timeout=5) == "answered"


def test_ask_from_outside_times_out(harness):
    env = harness.node("n1")
    ref = env.spawn(Collector, "c", [])
    fut = env.make_future()
    ref.tell(Later(delay_s=30.0, reply=fut))
    start_wall = time.monotonic()
    start = env.now()
    with pytest.raises(pykka.Timeout):
        fut.get(timeout=0.2)
    waited = env.now() - start
    assert 0.2 <= waited < 1.0
    if harness.name == "sim":
        # Virtual seconds: a 30 s timeout costs no wall time in the simulator.
        fut2 = env.make_future()
        ref.tell(Later(delay_s=120.0, reply=fut2))
        with pytest.raises(pykka.Timeout):
            fut2.get(timeout=30.0)
        assert time.monotonic() - start_wall < 5.0


def test_blocking_ask_between_actors_is_refused_in_the_simulator():
    from sim.runtime import Scheduler

    sched = Scheduler(seed=3)
    node = sched.add_node("n1")
    node.supervisor = "sup"
    log: list = []
    node.spawn(Collector, "sup", log)
    node.spawn(Collector, "other", [])
    bad = node.spawn(Collector, "bad", [])
    bad.tell(AskOther(actor="other"))
    assert sched.run_until(lambda: any(e[0] == "failed" for e in log), 5.0)
    (_, actor, error) = [e for e in log if e[0] == "failed"][0]
    assert actor == "bad"
    assert "BlockingAskInSimulation" in error and "must only tell" in error
    sched.close()


class FailsOnStart(NodeActor):
    def on_start(self) -> None:
        raise RuntimeError("cannot start")


def test_failing_on_start_is_reported_to_the_supervisor(harness):
    env = harness.node("n1", supervisor="sup")
    log: list = []
    env.spawn(Collector, "sup", log)
    env.spawn(FailsOnStart, "fragile")
    assert harness.wait_for(lambda: any(e[0] == "failed" and e[1] == "fragile" for e in log))


def test_mail_left_when_an_actor_stops_is_answered_dead(harness):
    # pykka's teardown: asks still queued behind the stop are answered with
    # ActorDeadError (the caller is never left waiting); a queued stop, None.
    env = harness.node("n1")
    log: list = []
    ref = env.spawn(Collector, "c", log)
    assert ref.ask("echo?", timeout=5) == ("echo", "c")  # started
    stop = ref.ask(pykka.messages._ActorStop(), block=False)
    pending = ref.ask("echo?", block=False)
    second_stop = ref.ask(pykka.messages._ActorStop(), block=False)
    assert stop.get(timeout=5) is None
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=5)
    assert second_stop.get(timeout=5) is None
    assert log.count(("stopped", "c")) == 1
    assert harness.wait_for(lambda: not ref.is_alive())


def test_an_ask_whose_handler_raises_gets_the_exception_and_the_actor_lives(harness):
    env = harness.node("n1")
    ref = env.spawn(Collector, "c", [])
    with pytest.raises(RuntimeError, match="boom requested"):
        ref.ask("boom", timeout=5)
    assert ref.ask("echo?", timeout=5) == ("echo", "c")


class RecordsStart(NodeActor):
    def __init__(self, env, name, log: list) -> None:
        super().__init__(env, name)
        self.log = log

    def on_start(self) -> None:
        self.log.append(("started", self.env.node))


def test_an_actor_on_a_node_that_crashes_before_its_first_turn_never_starts():
    from sim.runtime import Scheduler

    sched = Scheduler(seed=5)
    log: list = []
    node = sched.add_node("n1")
    node.spawn(RecordsStart, "a", log)
    node.crash()
    sched.run_for(5.0)
    assert log == []
    node.restart()
    node.spawn(RecordsStart, "a", log)
    sched.run_for(5.0)
    assert log == [("started", "n1")]
    sched.close()
