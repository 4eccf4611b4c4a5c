"""The agent supervisor, signal router, metrics, logging and data dir, without processes.

Agent and SignalRouter run in the simulator (virtual time, seeded), with
OS signals injected as :class:`OsSignal` messages and the process edge
replaced by :class:`FakeHooks`.
"""

from __future__ import annotations

import dataclasses
import http.client as http_client
import inspect
import io
import json
import logging
import os
import stat
import time
from typing import Any

import pytest

from actors.agent import Agent, AgentAddrs, AgentContext, ChildSpec, Supervision, apply_keys
from actors.agent_messages import (
    ConfigReloaded,
    Destroy,
    Destroyed,
    GetHealth,
    GetSelf,
    GetStatus,
    Leave,
    LeaveDone,
    OsSignal,
    Reload,
)
from actors.http_api import Api, App, HttpApi, HttpContext, bind_listener
from actors.metrics import AggregateSample, Metrics
from actors.signals import SignalRouter
from runtime.actor import NodeActor
from runtime.agent_main import banner_info, resolve_addrs
from runtime.config import ConfigError, dev_config
from runtime.datadir import DataDirError, open_state
from runtime.logging_setup import JsonFormatter, TextFormatter, setup_logging
from sim.runtime import Scheduler

pytestmark = pytest.mark.timeout(30)


class FakeHooks:
    """The process edge, recorded."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.stderr: list[str] = []
        self.levels: list[str] = []
        self.notified: list[str] = []
        self.exits: list[tuple[int, bool]] = []
        self.next_config: Any = None
        self.config_error: str | None = None

    def output(self, line: str) -> None:
        self.out.append(line)

    def error(self, line: str) -> None:
        self.err.append(line)

    def write_stderr(self, text: str) -> None:
        self.stderr.append(text)

    def load_config(self) -> Any:
        if self.config_error:
            raise ConfigError(self.config_error)
        return self.next_config

    def set_log_level(self, level: str) -> None:
        self.levels.append(level)

    def notify(self, state: str) -> None:
        self.notified.append(state)

    def dump_stacks(self) -> str:
        return "greenlet stacks here\n"

    def exit(self, code: int, *, force: bool = False) -> None:
        self.exits.append((code, force))


class Child(NodeActor):
    """A stand-in child: records its life; leaves now, later or never."""

    def __init__(self, env: Any, name: str, events: list, leave: Any = "now",
                 fail_on_start: bool = False) -> None:
        super().__init__(env, name)
        self.events, self.leave, self.fail_on_start = events, leave, fail_on_start
        self.pending: Leave | None = None
        self.destroying: Destroy | None = None

    def on_start(self) -> None:
        self.events.append(("start", self.name))
        if self.fail_on_start:
            raise RuntimeError("cannot start")

    def on_stop(self) -> None:
        super().on_stop()
        self.events.append(("stop", self.name))

    def receive(self, message: Any) -> Any:
        if isinstance(message, Destroy):  # answers after `leave` as it leaves: now, after a delay, never
            self.events.append(("destroy", self.name))
            self.destroying = message
            if self.leave == "now":
                self.on_timer("destroyed")
            elif isinstance(self.leave, float):
                self.set_timer("destroyed", self.leave)
        elif isinstance(message, Leave):
            self.events.append(("leave", self.name))
            self.pending = message
            if self.leave == "now":
                self.on_timer("leave")
            elif isinstance(self.leave, float):
                self.set_timer("leave", self.leave)
        elif isinstance(message, ConfigReloaded):
            self.events.append(("reloaded", self.name, message.config.log_level))
        elif message == "boom":
            raise RuntimeError("boom")
        return None

    def on_timer(self, name: str) -> None:
        if name == "destroyed" and self.destroying is not None:
            self.events.append(("destroyed", self.name))
            self.send(self.env.node, self.destroying.reply_to,
                      Destroyed(actor=self.name, corr=self.destroying.corr))
        if name == "leave" and self.pending is not None:
            self.events.append(("left", self.name))
            self.send(self.env.node, self.pending.reply_to,
                      LeaveDone(actor=self.name, corr=self.pending.corr))


class Rig:
    """One simulated node running an Agent with the given children."""

    def __init__(self, specs_of: Any, config: Any = None, seed: int = 1, **sup: Any) -> None:
        self.sched = Scheduler(seed=seed)
        self.node = self.sched.add_node("n1")
        self.node.supervisor = "agent"
        self.hooks = FakeHooks()
        self.events: list = []
        self.metrics = Metrics(clock=lambda: 1_800_000_000 + self.sched.now, hostname="h1")
        self.config = config or dataclasses.replace(dev_config(), name="n1")
        ctx = AgentContext(hooks=self.hooks, metrics=self.metrics, node_id="node-1",
                           client_id="client-1", supervision=Supervision(**sup))
        router = ChildSpec(name="signals", cls=SignalRouter, args=(self.hooks, self.metrics))
        self.agent_ref = self.node.spawn(Agent, "agent", self.config, ctx,
                                         [router, *specs_of(self.events)])
        self.agent: Agent = self.agent_ref._actor_weakref()
        assert self.run_until(lambda: self.agent.phase == "running")
        self.sched.run_for(0.001)  # every ready actor runs (its on_start) before time moves

    def run_until(self, cond: Any, timeout_s: float = 60.0) -> bool:
        return self.sched.run_until(cond, timeout_s)

    def signal(self, name: str) -> None:
        self.node.deliver_local("signals", OsSignal(name=name))

    def ask(self, message: Any) -> Any:
        return self.agent_ref.ask(message, timeout=5)

    def exited(self) -> bool:
        return bool(self.hooks.exits)

    def close(self) -> None:
        self.sched.close()


@pytest.fixture
def rigs():
    made: list[Rig] = []

    def make(*args: Any, **kw: Any) -> Rig:
        made.append(Rig(*args, **kw))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def three(events: list, **kw: Any) -> list[ChildSpec]:
    return [ChildSpec(name=n, cls=Child, args=(events,), kwargs=tuple(kw.items()), leaves=True,
                      reloads=True) for n in ("a", "b", "c")]


# ---------------------------------------------------------------- lifecycle


def test_children_start_in_spec_order_and_stop_in_reverse(rigs):
    rig = rigs(three)
    # Spawned (registered, able to receive) in spec order.  When their
    # on_start runs is the runtime's business: in order under gevent, in any
    # seeded order in the simulator, so no child may rely on it.
    assert list(rig.node.actors) == ["agent", "signals", "a", "b", "c"]
    started = sorted(e for e in rig.events if e[0] == "start")
    assert started == [("start", "a"), ("start", "b"), ("start", "c")]
    rig.signal("SIGINT")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert [e for e in rig.events if e[0] == "stop"] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert rig.ask(GetStatus())["children"] == {"signals": False, "a": False, "b": False, "c": False}
    assert rig.hooks.out == ["Caught signal: interrupt"]


def test_only_the_children_of_enabled_roles_start(rigs):
    config = dataclasses.replace(dev_config(), name="n1",
                                 server=dataclasses.replace(dev_config().server, enabled=False))

    def specs(events: list) -> list[ChildSpec]:
        return [ChildSpec(name="raft", cls=Child, args=(events,), role="server"),
                ChildSpec(name="client", cls=Child, args=(events,), role="client")]

    rig = rigs(specs, config)
    assert [e for e in rig.events if e[0] == "start"] == [("start", "client")]
    assert "raft" not in rig.node.actors


@pytest.mark.parametrize(("sig", "leave_flags", "code"), [
    ("SIGINT", {}, 1),
    ("SIGINT", {"leave_on_interrupt": True}, 0),
    ("SIGTERM", {"leave_on_interrupt": True}, 1),
    ("SIGTERM", {"leave_on_terminate": True}, 0),
])
def test_exit_status_is_nomads_0_after_a_graceful_leave_else_1(rigs, sig, leave_flags, code):
    config = dataclasses.replace(dev_config(), name="n1", **leave_flags)
    rig = rigs(three, config)
    rig.signal(sig)
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(code, False)]
    left = sorted(e[1] for e in rig.events if e[0] == "leave")
    assert left == (["a", "b", "c"] if code == 0 else [])
    assert ("Gracefully shutting down agent..." in rig.hooks.out) == (code == 0)
    # Every leave is answered before anything stops.
    if code == 0:
        assert rig.events.index(("leave", "c")) < rig.events.index(("stop", "c"))


def test_client_leaves_before_the_server_so_drain_on_shutdown_runs_against_a_live_server(rigs):
    """Nomad's Agent.Leave: the client's Leave (its drain) ends before the server's starts."""
    config = dataclasses.replace(dev_config(), name="n1", leave_on_interrupt=True)

    def specs(events: list) -> list[ChildSpec]:
        return [ChildSpec(name="raft", cls=Child, args=(events,), role="server", leaves=True),
                ChildSpec(name="gossip", cls=Child, args=(events,), role="server", leaves=True),
                ChildSpec(name="alloc-sync", cls=Child, args=(events,), kwargs=(("leave", 2.0),),
                          role="client", leaves=True)]

    rig = rigs(specs, config)
    rig.signal("SIGINT")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(0, False)]
    leaves = [e for e in rig.events if e[0] in ("leave", "left")]
    assert leaves[:2] == [("leave", "alloc-sync"), ("left", "alloc-sync")]
    assert sorted(leaves[2:]) == [("leave", "gossip"), ("leave", "raft"),
                                  ("left", "gossip"), ("left", "raft")]


def test_leave_that_does_not_finish_in_time_exits_1_after_the_graceful_timeout(rigs):
    config = dataclasses.replace(dev_config(), name="n1", leave_on_interrupt=True, leave_timeout_s=3.0)
    rig = rigs(lambda ev: three(ev, leave="never"), config)
    start = rig.sched.now
    rig.signal("SIGINT")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert 3.0 <= rig.sched.now - start < 3.5


def test_second_signal_during_the_leave_stops_at_once_with_exit_1(rigs):
    config = dataclasses.replace(dev_config(), name="n1", leave_on_terminate=True, leave_timeout_s=60.0)
    rig = rigs(lambda ev: three(ev, leave=30.0), config)
    rig.signal("SIGTERM")
    assert rig.run_until(lambda: rig.agent.phase == "leaving")
    rig.sched.run_for(1.0)
    start = rig.sched.now
    rig.signal("SIGTERM")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert rig.sched.now - start < 1.0
    assert [e for e in rig.events if e[0] == "stop"] == [("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_sighup_during_the_leave_is_a_second_signal_but_an_http_reload_is_not(rigs):
    """Nomad's terminateGracefully returns 1 on any signal but SIGPIPE; PUT /v1/agent/reload is no signal."""
    config = dataclasses.replace(dev_config(), name="n1", leave_on_interrupt=True, leave_timeout_s=60.0)
    rig = rigs(lambda ev: three(ev, leave=30.0), config)
    rig.hooks.next_config = rig.config
    rig.signal("SIGINT")
    assert rig.run_until(lambda: rig.agent.phase == "leaving")
    rig.agent_ref.tell(Reload())
    rig.sched.run_for(1.0)
    assert rig.agent.phase == "leaving" and not rig.exited()
    start = rig.sched.now
    rig.signal("SIGHUP")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert rig.sched.now - start < 1.0
    assert "Reloading configuration..." not in rig.hooks.out


def destroyers(events: list, **kw: Any) -> list[ChildSpec]:
    return [ChildSpec(name="a", cls=Child, args=(events,)),
            ChildSpec(name="runner", cls=Child, args=(events,), kwargs=tuple(kw.items()), destroys=True),
            ChildSpec(name="c", cls=Child, args=(events,))]


def test_a_child_that_destroys_its_work_is_answered_before_any_child_stops(rigs):
    """Dev mode's alloc runner: every task is killed (Destroy, Destroyed) before the agent stops anything."""
    rig = rigs(lambda ev: destroyers(ev, leave=2.0))
    start = rig.sched.now
    rig.signal("SIGINT")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    ends = [e for e in rig.events if e[0] in ("destroy", "destroyed", "stop")]
    assert ends == [("destroy", "runner"), ("destroyed", "runner"), ("stop", "c"), ("stop", "runner"),
                    ("stop", "a")]
    assert 2.0 <= rig.sched.now - start < 2.5


def test_a_destroy_that_does_not_finish_stops_the_agent_after_the_longest_kill_timeout_and_a_margin(rigs):
    config = dataclasses.replace(dev_config(), name="n1")
    limit = config.client.max_kill_timeout_s + 5.0
    rig = rigs(lambda ev: destroyers(ev, leave="never"), config, destroy_margin_s=5.0)
    start = rig.sched.now
    rig.signal("SIGINT")
    assert rig.run_until(rig.exited, timeout_s=limit + 60)
    assert rig.hooks.exits == [(1, False)]
    assert limit <= rig.sched.now - start < limit + 0.5
    assert [e[1] for e in rig.events if e[0] == "stop"] == ["c", "runner", "a"]


def test_signal_while_stopping_forces_the_exit(rigs):
    rig = rigs(three)
    rig.signal("SIGINT")
    assert rig.run_until(lambda: rig.agent.phase == "stopping")
    rig.signal("SIGINT")
    assert rig.run_until(lambda: (1, True) in rig.hooks.exits)


def test_sigquit_dumps_stacks_and_exits_2_without_stopping(rigs):
    rig = rigs(three)
    rig.signal("SIGQUIT")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(2, True)]
    assert rig.hooks.stderr[0].startswith("SIGQUIT: quit\n") and "greenlet stacks here" in rig.hooks.stderr[0]
    assert not [e for e in rig.events if e[0] == "stop"]


def test_sigusr1_dumps_metrics_to_stderr_and_keeps_running(rigs):
    rig = rigs(three)
    rig.metrics.set_gauge(("runtime", "num_goroutines"), 7)
    rig.signal("SIGUSR1")
    assert rig.run_until(lambda: rig.hooks.stderr)
    assert "[G] 'nomad.runtime.num_goroutines.h1': 7.000" in rig.hooks.stderr[0]
    assert rig.agent.phase == "running" and not rig.hooks.exits


# ---------------------------------------------------------------- failures


def test_failed_child_is_restarted_after_a_doubling_backoff(rigs):
    rig = rigs(three, restart_backoff_s=0.5)
    for expected_delay in (0.5, 1.0):
        failed_at = rig.sched.now
        old = rig.node.actors["b"]
        old.tell("boom")
        assert rig.run_until(lambda old=old: rig.node.actors["b"] is not old
                             and rig.node.actors["b"].is_alive())
        assert rig.sched.now - failed_at == pytest.approx(expected_delay, abs=0.05)
    assert rig.ask(GetStatus())["restarts"] == {"b": 2}
    assert rig.agent.phase == "running"


def test_child_failing_too_often_stops_the_agent_with_exit_1(rigs):
    rig = rigs(three, restart_max=2, restart_backoff_s=0.1)
    for _ in range(3):
        ref = rig.node.actors["a"]
        ref.tell("boom")
        assert rig.run_until(lambda ref=ref: rig.node.actors["a"] is not ref or rig.exited())
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert [e[1] for e in rig.events if e[0] == "stop"] == ["c", "b"]  # a is already dead


def test_failure_of_a_child_that_cannot_be_restarted_stops_the_agent(rigs):
    def specs(events: list) -> list[ChildSpec]:
        return [ChildSpec(name="store", cls=Child, args=(events,), restartable=False),
                ChildSpec(name="web", cls=Child, args=(events,))]

    rig = rigs(specs)
    rig.node.actors["store"].tell("boom")
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert ("stop", "web") in rig.events


def test_child_dying_in_on_start_is_found_by_the_liveness_sweep_and_restarted(rigs):
    def specs(events: list) -> list[ChildSpec]:
        return [ChildSpec(name="flaky", cls=Child, args=(events,), kwargs=(("fail_on_start", True),))]

    rig = rigs(specs, restart_max=2, watch_interval_s=1.0, restart_backoff_s=0.1)
    assert rig.run_until(rig.exited)
    assert rig.hooks.exits == [(1, False)]
    assert rig.events.count(("start", "flaky")) == 3  # first start and two restarts


# ---------------------------------------------------------------- reload


def test_sighup_applies_reloadable_keys_and_reports_the_rest(rigs, caplog):
    rig = rigs(three)
    rig.hooks.next_config = dataclasses.replace(rig.config, log_level="TRACE", leave_on_interrupt=True)
    with caplog.at_level(logging.INFO, logger="agent"):
        rig.signal("SIGHUP")
        assert rig.run_until(lambda: rig.hooks.levels)
        assert rig.run_until(lambda: ("reloaded", "c", "TRACE") in rig.events)
    assert rig.hooks.out[:2] == ["Caught signal: hangup", "Reloading configuration..."]
    assert rig.hooks.levels == ["TRACE"]
    assert rig.agent.config.log_level == "TRACE" and rig.agent.config.leave_on_interrupt is False
    assert "needs a restart to take effect: key=leave_on_interrupt" in caplog.text
    assert rig.hooks.notified[-2:] == ["RELOADING=1", "READY=1"]


def test_reload_with_a_bad_log_level_keeps_the_level_and_applies_the_rest(rigs):
    rig = rigs(three)
    before = rig.agent.config.log_level
    rig.hooks.next_config = dataclasses.replace(
        rig.config, log_level="loud", server=dataclasses.replace(rig.config.server, num_schedulers=1))
    rig.signal("SIGHUP")
    assert rig.run_until(lambda: ("reloaded", "c", before) in rig.events)
    assert rig.hooks.err == ["Invalid log level: LOUD. "
                             "Valid log levels are: [TRACE DEBUG INFO WARN ERROR OFF]"]
    assert rig.hooks.levels == []
    assert rig.agent.config.log_level == before and rig.agent.config.server.num_schedulers == 1
    assert rig.hooks.notified[-2:] == ["RELOADING=1", "READY=1"]


def test_reload_with_a_bad_config_keeps_the_running_one(rigs):
    rig = rigs(three)
    rig.hooks.config_error = 'unknown key "bogus" in /etc/nomad.d/a.toml'
    rig.signal("SIGHUP")
    assert rig.run_until(lambda: rig.hooks.err)
    assert rig.hooks.err == ['Failed to reload configs: unknown key "bogus" in /etc/nomad.d/a.toml']
    assert rig.agent.phase == "running" and rig.agent.config == rig.config


def test_apply_keys_copies_only_the_named_nested_keys():
    base = dev_config()
    new = dataclasses.replace(base, log_level="WARN", region="eu",
                              server=dataclasses.replace(base.server, raft_multiplier=4))
    out = apply_keys(base, new, ["log_level", "server.raft_multiplier"])
    assert (out.log_level, out.region, out.server.raft_multiplier) == ("WARN", "global", 4)


# ---------------------------------------------------------------- reports


def test_health_and_self_have_nomads_shape(rigs):
    rig = rigs(three)
    assert rig.ask(GetHealth()) == {"server": {"ok": True, "message": "ok"},
                                    "client": {"ok": True, "message": "ok"}}
    info = rig.ask(GetSelf())
    assert set(info) == {"config", "member", "stats"}
    assert info["config"]["LeaveOnInt"] is False and info["config"]["Region"] == "global"
    assert info["member"]["Name"] == "n1.global" and info["member"]["Status"] == "alive"
    assert info["member"]["Tags"]["id"] == "node-1" and info["member"]["Tags"]["bootstrap"] == "1"
    assert info["stats"]["nomad"]["server"] == "true"
    assert info["stats"]["client"]["node_id"] == "client-1"


def test_http_app_routes_and_answers_bad_requests_like_nomad(rigs):
    config = dataclasses.replace(dev_config(), name="n1",
                                 server=dataclasses.replace(dev_config().server, enabled=False))
    rig = rigs(three, config)
    app = App(Api(rig.node.env, HttpContext(metrics=rig.metrics, prometheus=False)))

    def get(path: str, method: str = "GET") -> tuple[str, bytes]:
        got: list[str] = []
        p, _, q = path.partition("?")
        body = app({"REQUEST_METHOD": method, "PATH_INFO": p, "QUERY_STRING": q},
                   lambda status, headers: got.append(status))
        return got[0], b"".join(body)

    # A client with no servers is unhealthy: 500 with the JSON as the body (Nomad).
    status, body = get("/v1/agent/health")
    assert status.startswith("500")
    assert json.loads(body) == {"client": {"ok": False, "message": "no known servers"}}
    status, body = get("/v1/agent/health?type=server")
    assert json.loads(body) == {"server": {"ok": False, "message": "server not enabled"}}
    assert get("/v1/agent/health?index=abc") == ("400 Bad Request", b"Invalid index")
    assert get("/v1/agent/health", "DELETE") == ("405 Method Not Allowed", b"Invalid method")
    assert get("/v1/metrics?format=prometheus") == ("415 Unsupported Media Type",
                                                    b"Prometheus is not enabled")
    assert get("/v1/nope")[0].startswith("404")
    rig.hooks.next_config = dataclasses.replace(rig.config, log_level="WARN")
    assert get("/v1/agent/reload", "PUT") == ("200 OK", b"")
    assert rig.hooks.levels == ["WARN"] and "Reloading configuration..." in rig.hooks.out
    assert get("/v1/agent/reload")[0].startswith("405")
    assert get("/")[0].startswith("307")
    # No web UI here: /ui/ (and below) says so in a page, as a Nomad built without its UI does.
    status, body = get("/ui/jobs")
    assert status == "200 OK" and b"serves no web UI" in body
    assert get("/ui")[0].startswith("301")
    status, body = get("/v1/metrics?pretty")
    assert status.startswith("200") and body.endswith(b"\n") and set(json.loads(body)) == {
        "Timestamp", "Gauges", "Points", "Counters", "Samples"}


class CrashableHttpApi(HttpApi):
    def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return super().receive(message)


def test_http_api_restarted_after_a_failure_serves_again_on_its_port():
    """Under the production runtime: the restarted child re-listens on the same port."""
    from tests.conftest import ProdHarness

    harness = ProdHarness()
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    hooks = FakeHooks()
    metrics = Metrics(clock=time.time)
    try:
        node = harness.node("n1", supervisor="agent")
        ctx = AgentContext(hooks=hooks, metrics=metrics, supervision=Supervision(restart_backoff_s=0.05))
        http = HttpContext(metrics=metrics, bind=("127.0.0.1", port))
        specs = [ChildSpec(name="signals", cls=SignalRouter, args=(hooks, metrics)),
                 ChildSpec(name="http", cls=CrashableHttpApi, args=(listener, http))]
        node.spawn(Agent, "agent", dataclasses.replace(dev_config(), name="n1"), ctx, specs)

        def status() -> int:
            conn = http_client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/v1/agent/health")
                return conn.getresponse().status
            except OSError:
                return 0
            finally:
                conn.close()

        assert harness.wait_for(lambda: status() == 200)
        first = node.lookup("http")
        first.tell("boom")
        assert harness.wait_for(lambda: node.lookup("http") is not first and status() == 200)
        assert node.lookup("agent").ask(GetStatus(), timeout=5)["restarts"] == {"http": 1}
        assert not hooks.exits
    finally:
        harness.close()
        listener.close()


# ---------------------------------------------------------------- metrics


def test_metrics_summary_shows_the_newest_finished_interval():
    now = [1_800_000_003.0]
    m = Metrics(clock=lambda: now[0], interval_s=10, retain_s=60, hostname="h")
    m.set_gauge(("runtime", "num_goroutines"), 5)
    m.incr_counter(("agent", "reloads"))
    assert m.summary()["Gauges"] == [{"Name": "nomad.runtime.num_goroutines", "Value": 5,
                                      "Labels": {"host": "h"}}]
    now[0] += 10  # a new interval starts; the finished one is shown
    m.set_gauge(("runtime", "num_goroutines"), 9)
    summary = m.summary()
    assert summary["Timestamp"] == "2027-01-15 08:00:00 +0000 UTC"
    assert summary["Gauges"][0]["Value"] == 5
    counter = summary["Counters"][0]
    assert (counter["Name"], counter["Count"], counter["Sum"], counter["Rate"]) == (
        "nomad.agent.reloads", 1, 1.0, 0.1)
    now[0] += 600  # past retention: only six intervals are kept
    assert len(m.intervals()) <= 6


def test_metrics_dump_and_prometheus_text_have_go_metrics_shapes():
    m = Metrics(clock=lambda: 1_800_000_000.0, hostname="my host")
    m.set_gauge(("runtime", "sys_bytes"), 1024)
    for v in (1.0, 3.0):
        m.add_sample(("http", "latency"), v)
    dump = m.dump_text().splitlines()
    assert dump[0] == "[2027-01-15 08:00:00 +0000 UTC][G] 'nomad.runtime.sys_bytes.my_host': 1024.000"
    assert dump[1].startswith("[2027-01-15 08:00:00 +0000 UTC][S] 'nomad.http.latency.my_host': "
                              "Count: 2 Min: 1.000 Mean: 2.000 Max: 3.000 Stddev: 1.414 Sum: 4.000 ")
    prom = m.prometheus_text()
    assert "# TYPE nomad_runtime_sys_bytes gauge\nnomad_runtime_sys_bytes{host=\"my host\"} 1024\n" in prom
    assert "# TYPE nomad_http_latency summary\n" in prom
    assert 'nomad_http_latency_sum{host="my host"} 4\n' in prom
    assert 'nomad_http_latency_count{host="my host"} 2\n' in prom


def test_prometheus_summaries_carry_go_metrics_quantiles_over_the_last_ten_seconds():
    """go-metrics' Prometheus sink makes each sample a client_golang Summary with objectives 0.5, 0.9 and
    0.99 over a 10 s window: dashboards and alerts read nomad_raft_leader_lastContact{quantile="0.99"}."""
    now = [1_800_000_000.0]
    m = Metrics(clock=lambda: now[0], hostname="vm")
    for v in range(1, 101):  # 1..100 ms
        m.add_sample(("raft", "leader", "lastContact"), float(v))
    lines = [ln for ln in m.prometheus_text().splitlines() if ln.startswith("nomad_raft_leader_lastContact")]
    assert lines == ['nomad_raft_leader_lastContact{host="vm",quantile="0.5"} 50',
                     'nomad_raft_leader_lastContact{host="vm",quantile="0.9"} 90',
                     'nomad_raft_leader_lastContact{host="vm",quantile="0.99"} 99',
                     'nomad_raft_leader_lastContact_sum{host="vm"} 5050',
                     'nomad_raft_leader_lastContact_count{host="vm"} 100']
    now[0] += 11.0  # past the window: the quantiles are NaN, the totals stay (client_golang's)
    m.add_sample(("raft", "other"), 1.0)  # any update; the series itself is not expired yet
    text = m.prometheus_text()
    assert 'nomad_raft_leader_lastContact{host="vm",quantile="0.99"} NaN\n' in text
    assert 'nomad_raft_leader_lastContact_count{host="vm"} 100\n' in text


def test_aggregate_sample_prints_like_go_metrics():
    a = AggregateSample()
    assert a.go_string() == "Count: 0"
    a.ingest(2.0, 10.0, 1_800_000_000.0)
    assert a.go_string() == "Count: 1 Sum: 2.000 LastUpdated: 2027-01-15 08:00:00 +0000 UTC"


# ---------------------------------------------------------------- logging, banner, data dir


def _record(level: int, msg: str, name: str = "agent") -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, (), None)
    rec.created = 1_800_000_000.25
    return rec


def test_log_lines_have_hclogs_shape(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert TextFormatter().format(_record(logging.INFO, "hello")) == \
            "2027-01-15T08:00:00.250Z [INFO]  agent: hello"
        assert TextFormatter().format(_record(logging.WARNING, "x", "actors.raft.core")) == \
            "2027-01-15T08:00:00.250Z [WARN]  raft.core: x"
        assert json.loads(JsonFormatter().format(_record(logging.DEBUG, "hi"))) == {
            "@level": "debug", "@message": "hi", "@module": "agent",
            "@timestamp": "2027-01-15T08:00:00.250000Z"}
        monkeypatch.setenv("TZ", "EST+5")
        time.tzset()
        assert TextFormatter().format(_record(logging.ERROR, "x")).startswith(
            "2027-01-15T03:00:00.250-0500 [ERROR] agent: x")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_logs_are_held_until_the_banner_and_the_level_changes_live():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        control = setup_logging("INFO", json_format=False, stream=stream)
        logging.getLogger("agent").info("early")
        logging.getLogger("agent").debug("hidden")
        assert stream.getvalue() == ""
        control.open_gate()
        assert stream.getvalue().startswith("    ") and "[INFO]  agent: early" in stream.getvalue()
        control.set_level("DEBUG")
        logging.getLogger("agent").debug("shown")
        control.set_level("OFF")
        logging.getLogger("agent").error("silenced")
        text = stream.getvalue()
        assert "hidden" not in text and "[DEBUG] agent: shown" in text and "silenced" not in text
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_monitor_sees_its_own_level_while_the_console_keeps_the_agents():
    from runtime.logging_setup import LEVELS, MONITOR

    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        control = setup_logging("INFO", json_format=False, stream=stream)
        control.open_gate()
        sub = MONITOR.subscribe(LEVELS["DEBUG"], json_format=False)
        logging.getLogger("agent").debug("for the monitor only")
        logging.getLogger("agent").info("for both")
        lines = sub.take()
        assert [x.split("agent: ")[1] for x in lines] == ["for the monitor only", "for both"]
        assert "for the monitor only" not in stream.getvalue() and "for both" in stream.getvalue()
        MONITOR.unsubscribe(sub)
        assert root.level == logging.INFO  # no monitor: the root filters at the agent's level again
        json_sub = MONITOR.subscribe(LEVELS["WARN"], json_format=True)
        logging.getLogger("agent").info("too low")
        logging.getLogger("agent").warning("kept")
        (line,) = json_sub.take()
        assert json.loads(line)["@message"] == "kept" and json.loads(line)["@level"] == "warn"
        MONITOR.unsubscribe(json_sub)
        control.close()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_plain_monitor_on_a_quiet_agent_unsubscribes_once_its_caller_hung_up(monkeypatch):
    """A plain monitor sends no heartbeat frame, so on an agent logging nothing at its level no
    failed write ever ended it: each hung-up `monitor?plain=true` kept its subscription (and the
    root logger's level lowered for it) and its greenlet for the agent's life."""
    from actors import http_monitor
    from runtime.logging_setup import LEVELS, MONITOR

    monkeypatch.setattr(http_monitor, "MONITOR_POLL_S", 0.001)
    monkeypatch.setattr(http_monitor, "MONITOR_HEARTBEAT_S", 0.0)
    sub = MONITOR.subscribe(LEVELS["ERROR"], json_format=False)
    asked = []

    def gone() -> bool:
        asked.append(1)
        return len(asked) >= 3

    assert list(http_monitor._stream(sub, True, gone)) == []
    assert len(asked) == 3 and sub not in MONITOR.subs


def test_banner_block_is_sorted_title_cased_and_right_aligned():
    cfg = dataclasses.replace(dev_config(), name="n1")
    lines = banner_info(cfg, resolve_addrs(cfg, 4646), "1b2c")
    assert lines == [
        "   Advertise Addrs: HTTP: 127.0.0.1:4646; RPC: 127.0.0.1:4647; Serf: 127.0.0.1:4648",
        "        Bind Addrs: HTTP: [127.0.0.1:4646]; RPC: 127.0.0.1:4647; Serf: 127.0.0.1:4648",
        "            Client: true",
        "         Log Level: DEBUG",
        "           Node Id: 1b2c",
        "            Region: global (DC: dc1)",
        "            Server: true",
        "           Version: 2.0.6",
    ]
    client_only = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, enabled=False))
    assert banner_info(client_only, resolve_addrs(client_only, 4646), "")[:2] == [
        "   Advertise Addrs: HTTP: 127.0.0.1:4646", "        Bind Addrs: HTTP: [127.0.0.1:4646]"]


def test_resolve_addrs_honours_addresses_and_advertise():
    cfg = dev_config()
    cfg = dataclasses.replace(cfg, addresses=dataclasses.replace(cfg.addresses, rpc="10.1.1.1"),
                              advertise=dataclasses.replace(cfg.advertise, serf="10.9.9.9:5000"))
    addrs = resolve_addrs(cfg, 4646)
    assert addrs == AgentAddrs(http_bind="127.0.0.1:4646", rpc_bind="10.1.1.1:4647",
                               serf_bind="127.0.0.1:4648", http_adv="127.0.0.1:4646",
                               rpc_adv="10.1.1.1:4647", serf_adv="10.9.9.9:5000")


def _persistent(data_dir: str) -> Any:
    return dataclasses.replace(dev_config(), dev_mode=False, data_dir=data_dir)


def test_data_dir_is_created_0700_and_ids_persist_across_restarts(tmp_path):
    data = str(tmp_path / "data")
    first = open_state(_persistent(data))
    first.release()
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(data, "server", "node-id")).st_mode) == 0o600
    again = open_state(_persistent(data))
    again.release()
    assert (again.node_id, again.client_id) == (first.node_id, first.client_id)
    with open(os.path.join(data, "server", "node-id")) as fh:
        assert fh.read() == first.node_id


def test_second_agent_on_a_locked_data_dir_is_refused(tmp_path):
    data = str(tmp_path / "data")
    holder = open_state(_persistent(data))
    try:
        with pytest.raises(DataDirError, match=rf"in use by another agent \(pid {os.getpid()}\)"):
            open_state(_persistent(data))
    finally:
        holder.release()
    open_state(_persistent(data)).release()  # free again once released


def test_dev_mode_persists_no_ids_and_cleans_its_temp_dir():
    state = open_state(dev_config())
    assert state.temporary and os.path.isdir(state.data_dir)
    assert not os.path.exists(os.path.join(state.data_dir, "server", "node-id"))
    state.release()
    assert not os.path.exists(state.data_dir)


def test_corrupt_node_id_is_reported_not_replaced(tmp_path):
    data = tmp_path / "data"
    (data / "server").mkdir(parents=True)
    (data / "server" / "node-id").write_text("not-a-uuid")
    with pytest.raises(DataDirError, match="does not hold a valid UUID"):
        open_state(_persistent(str(data)))


# ---------------------------------------------------------------- runtime probe (garbage collection)

def test_runtime_probe_times_collections_and_logs_the_long_ones(caplog):
    import gc

    from runtime.agent_main import GC_PAUSE_LOG_S, RuntimeProbe

    probe = RuntimeProbe()
    probe.watch_gc()
    try:
        probe.watch_gc()  # twice: still one callback
        assert gc.callbacks.count(probe._on_gc) == 1
        gc.collect()
        assert probe.gc_pause_ns > 0
        probe.sample()  # a real collection as long as the threshold (a big heap late in a run) goes now
        caplog.clear()
        # A long pause (faked: the collection "started" long ago) is kept for the next
        # sample, then logged once.
        probe._on_gc("start", {"generation": 2})
        probe._gc_started -= int(2 * GC_PAUSE_LOG_S * 1e9)
        probe._on_gc("stop", {"generation": 2, "collected": 3})
        with caplog.at_level(logging.WARNING, logger="agent"):
            gauges = dict(probe.sample())
        assert gauges[("runtime", "total_gc_pause_ns")] >= 2 * GC_PAUSE_LOG_S * 1e9
        logged = [r.getMessage() for r in caplog.records if "garbage collection" in r.getMessage()]
        assert len(logged) == 1
        assert logged[0].startswith("garbage collection (generation 2) held the agent for ")
        assert int(logged[0].split(" for ")[1].split(" ms")[0]) >= 2 * GC_PAUSE_LOG_S * 1e3
        assert logged[0].endswith("ms; 3 objects freed")
        caplog.clear()
        probe.sample()
        assert not [r for r in caplog.records if "garbage collection" in r.getMessage()]
    finally:
        probe.unwatch_gc()
    assert probe._on_gc not in gc.callbacks


def test_runtime_probe_counts_greenlets_without_walking_the_heap():
    import gc

    import gevent
    import greenlet

    from runtime.agent_main import RuntimeProbe

    probe = RuntimeProbe()
    probe.watch_greenlets()
    try:
        base = probe._take_census()[0]
        sleepers = [gevent.spawn(gevent.sleep, 30) for _ in range(7)]
        gevent.sleep(0)
        greenlets, blocks = probe._take_census()
        assert greenlets == base + 7 and blocks > 0
        # The same as a walk of the heap finds among gevent's greenlets started since.
        walked = sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and o in sleepers)
        assert walked == 7
        gevent.killall(sleepers)
        assert probe._take_census()[0] == base
    finally:
        probe.unwatch_greenlets()
    gevent.spawn(gevent.sleep, 0).join()
    assert probe._take_census()[0] == base  # no longer watching: a new greenlet is not counted


def test_log_include_location_names_the_file_and_line_that_logged_as_hclog_does():
    from runtime.logging_setup import JsonFormatter, TextFormatter

    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        control = setup_logging("INFO", json_format=False, stream=stream, include_location=True)
        control.open_gate()
        logging.getLogger("agent").info("located")
        line_no = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
        assert f"[INFO]  tests/test_agent_unit.py:{line_no}: agent: located" in stream.getvalue()
        record = logging.LogRecord("agent", logging.INFO, "/x/runtime/agent_main.py", 7, "m", (), None)
        assert json.loads(JsonFormatter().format(record))["@caller"] == "runtime/agent_main.py:7"
        setup_logging("INFO", json_format=False, stream=stream)  # off again (the default)
        assert "agent_main" not in TextFormatter().format(record)
        assert "@caller" not in json.loads(JsonFormatter().format(record))
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_failed_request_of_this_agents_own_actor_is_not_logged_as_an_error(rigs, caplog):
    """The replicator lists the authoritative region through this agent's HTTP endpoint and logs its
    own failure ("failed to replicate ..."): the endpoint logs that request's failure at DEBUG, not a
    second ERROR line per kind and round; an operator's failed request is still an ERROR."""
    config = dataclasses.replace(dev_config(), name="n1",
                                 server=dataclasses.replace(dev_config().server, enabled=False))
    rig = rigs(three, config)
    app = App(Api(rig.node.env, HttpContext(metrics=rig.metrics, prometheus=False)))
    caplog.set_level(logging.DEBUG, logger="agent.http")

    def get(**extra: Any) -> None:
        b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/jobs", "QUERY_STRING": "", **extra},
                     lambda status, headers: None))

    get(**{"nomad.forwarded_from": rig.node.env.node})
    get(**{"nomad.forwarded_from": "another-agent:4647"})
    get()
    failed = [r.levelname for r in caplog.records if r.getMessage().startswith("request failed")]
    assert failed == ["DEBUG", "ERROR", "ERROR"]
