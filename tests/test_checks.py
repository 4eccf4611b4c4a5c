"""Service checks: the specs an allocation's services give, the CheckRunner's schedule, and real probes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.client.checks import (
    FAILURE,
    HEALTHINESS,
    PENDING,
    READINESS,
    SUCCESS,
    CheckRunner,
    CheckRunnerConfig,
    ChecksHealth,
    CheckSpec,
    GetChecks,
    UnwatchChecks,
    WatchChecks,
    alloc_checks,
)
from runtime.actor import NodeActor
from runtime.probes import run_probe
from sim.runtime import Scheduler

pytestmark = pytest.mark.timeout(60)
SEC = 1_000_000_000


def alloc(**group_extra: Any) -> dict[str, Any]:
    svc = {"Name": "web", "PortLabel": "http", "Checks": [
        {"Name": "alive", "Type": "http", "Path": "/health", "Interval": 10 * SEC, "Timeout": 2 * SEC,
         "Method": "GET", "Protocol": "http", "OnUpdate": "require_healthy"},
        {"Name": "port", "Type": "tcp", "PortLabel": "admin", "Interval": 5 * SEC, "Timeout": SEC,
         "OnUpdate": "ignore"}]}
    task_svc = {"Name": "api", "PortLabel": "9999", "Address": "10.1.2.3", "Checks": [
        {"Name": "api-up", "Type": "tcp", "Interval": SEC, "Timeout": SEC}]}
    return {"ID": "a1", "Name": "j.g[0]", "TaskGroup": "g",
            "AllocatedPorts": [{"Label": "http", "Value": 23456, "HostIP": "127.0.0.7"},
                               {"Label": "admin", "Value": 23457, "HostIP": "127.0.0.7"}],
            "Job": {"TaskGroups": [{"Name": "g", "Services": [svc], **group_extra,
                                    "Tasks": [{"Name": "t", "Services": [task_svc]}]}]}}


def test_an_allocations_checks_resolve_their_address_port_and_mode() -> None:
    alive, port, api = alloc_checks(alloc())
    assert (alive.name, alive.type, alive.address, alive.port, alive.path, alive.mode, alive.task) == \
        ("alive", "http", "127.0.0.7", 23456, "/health", HEALTHINESS, "")
    assert (alive.interval_s, alive.timeout_s, alive.group, alive.service) == (10.0, 2.0, "j.g[0]", "web")
    assert (port.address, port.port, port.mode) == ("127.0.0.7", 23457, READINESS)  # its own port label
    assert (api.task, api.address, api.port) == ("t", "10.1.2.3", 9999)  # a number: the service's address
    assert len({alive.id, port.id, api.id}) == 3
    assert [c.id for c in alloc_checks(alloc())] == [alive.id, port.id, api.id]  # stable
    other = alloc_checks({**alloc(), "ID": "a2"})
    assert other[0].id != alive.id
    assert alloc_checks({"ID": "x", "TaskGroup": "nope", "Job": {}}) == ()


# ------------------------------------------------------------ the CheckRunner, on virtual time
class Prober:
    """Answers each probe with what *answer(spec, n)* says, *delay_s* later; None: never answers."""

    def __init__(self, sched: Scheduler, answer: Callable[[CheckSpec, int], tuple[str, int, str] | None],
                 delay_s: float = 0.01) -> None:
        self.sched, self.answer, self.delay_s = sched, answer, delay_s
        self.probes: list[tuple[float, str]] = []

    def probe(self, spec: CheckSpec, notify: Callable[[str, int, str], None]) -> None:
        self.probes.append((self.sched.now, spec.name))
        got = self.answer(spec, len(self.probes))
        if got is not None:
            self.sched.at(self.sched.now + self.delay_s, lambda: notify(*got))


class Listener(NodeActor):
    def __init__(self, env: Any, name: str, got: list[ChecksHealth]) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message: Any) -> Any:
        self.got.append(message)


def runner_with(answer: Callable[[CheckSpec, int], tuple[str, int, str] | None]) -> tuple[Any, ...]:
    sched = Scheduler(1)
    prober = Prober(sched, answer)
    got: list[ChecksHealth] = []

    def boot(env: Any) -> None:
        env.spawn(Listener, "runner", got)
        env.spawn(CheckRunner, "checks", prober=prober, config=CheckRunnerConfig(probe_grace_s=0.5))

    node = sched.add_node("c1", boot)
    return sched, node, prober, got


def spec(name: str = "alive", interval_s: float = 10.0, mode: str = HEALTHINESS) -> CheckSpec:
    return CheckSpec(id=f"id-{name}", alloc_id="a1", group="j.g[0]", task="", service="web", name=name,
                     type="http", address="127.0.0.1", port=1, interval_s=interval_s, timeout_s=2.0,
                     mode=mode)


def test_checks_run_at_once_then_every_interval_and_health_follows_them() -> None:
    sched, node, prober, got = runner_with(lambda s, n: (SUCCESS, 200, "nomad: http ok") if n >= 2 or
                                           s.name == "ready" else (FAILURE, 0, "refused"))
    ref = node.actors["checks"]
    ref.tell(WatchChecks("a1", (spec(), spec("ready", mode=READINESS)), "runner"))
    sched.run_for(0.001)
    assert [ChecksHealth("a1", False)] == got  # told at once: pending is not passing
    assert ref.ask(GetChecks("a1"))["id-alive"]["Status"] == PENDING
    sched.run_for(1.0)
    assert sorted(n for _, n in prober.probes) == ["alive", "ready"]  # both ran at once
    assert ref.ask(GetChecks("a1"))["id-alive"]["Status"] == FAILURE
    sched.run_for(10.0)  # the next run, an interval after the first result
    assert [t for t, n in prober.probes if n == "alive"] == pytest.approx([0.0, 10.01], abs=0.01)
    r = ref.ask(GetChecks("a1"))["id-alive"]
    assert (r["Status"], r["StatusCode"], r["Output"]) == (SUCCESS, 200, "nomad: http ok")
    assert r["Mode"] == HEALTHINESS
    assert got[-1] == ChecksHealth("a1", True) and len(got) == 2  # told on a change only
    ref.tell(UnwatchChecks("a1"))
    sched.run_for(60.0)
    assert ref.ask(GetChecks("a1")) == {} and len(prober.probes) == 4


def test_a_probe_that_never_answers_fails_after_its_timeout_and_the_check_goes_on() -> None:
    sched, node, _, _ = runner_with(lambda s, n: None if n == 1 else (SUCCESS, 200, "nomad: http ok"))
    ref = node.actors["checks"]
    ref.tell(WatchChecks("a1", (spec(interval_s=5.0),), "runner"))
    sched.run_for(2.4)
    assert ref.ask(GetChecks("a1"))["id-alive"]["Status"] == PENDING
    sched.run_for(0.2)  # timeout 2 s + grace 0.5 s
    r = ref.ask(GetChecks("a1"))["id-alive"]
    assert r["Status"] == FAILURE and "timed out" in r["Output"]
    sched.run_for(6.0)
    assert ref.ask(GetChecks("a1"))["id-alive"]["Status"] == SUCCESS


def test_a_changed_check_starts_over_and_an_unchanged_one_keeps_its_result() -> None:
    sched, node, _, _ = runner_with(lambda s, n: (SUCCESS, 200, "ok"))
    ref = node.actors["checks"]
    ref.tell(WatchChecks("a1", (spec(), spec("ready")), "runner"))
    sched.run_for(1.0)
    changed = CheckSpec(**{**{f: getattr(spec("ready"), f) for f in CheckSpec.__slots__}, "path": "/v2"})
    ref.tell(WatchChecks("a1", (spec(), changed), "runner"))
    sched.run_for(0.001)
    res = ref.ask(GetChecks("a1"))
    assert res["id-alive"]["Status"] == SUCCESS and res["id-ready"]["Status"] == PENDING


# ------------------------------------------------------------ real probes
@pytest.fixture
def server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hops = {"/redirect": "/ok", "/to-broken": "http://127.0.0.1:%d/broken", "/loop": "/loop"}
            if self.path in hops:
                self.send_response(302)
                port = str(self.server.server_address[1])
                self.send_header("Location", hops[self.path].replace("%d", port))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = {"/ok": 200, "/moved": 302, "/broken": 500}.get(self.path, 404)
            body = b"it broke" if code == 500 else b"elsewhere" if code == 302 else b"fine"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def probe_spec(port: int, typ: str = "http", path: str = "/ok", timeout_s: float = 2.0) -> CheckSpec:
    return CheckSpec(id="x", alloc_id="a", group="g", task="", service="s", name="c", type=typ,
                     address="127.0.0.1", port=port, interval_s=10.0, timeout_s=timeout_s, path=path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_http_and_tcp_probes_report_as_nomads_checker_does(server: int) -> None:
    assert run_probe(probe_spec(server)) == (SUCCESS, 200, "nomad: http ok")
    assert run_probe(probe_spec(server, path="moved")) == (SUCCESS, 302, "elsewhere")  # no Location: as is
    # Redirects are followed as Go's client does (up to 10), the last answer decides.
    assert run_probe(probe_spec(server, path="/redirect")) == (SUCCESS, 200, "nomad: http ok")
    assert run_probe(probe_spec(server, path="/to-broken")) == (FAILURE, 500, "it broke")
    status, code, output = run_probe(probe_spec(server, path="/loop"))
    assert (status, code) == (FAILURE, 0) and output.endswith("stopped after 10 redirects")
    assert run_probe(probe_spec(server, path="/broken")) == (FAILURE, 500, "it broke")
    assert run_probe(probe_spec(server, typ="tcp")) == (SUCCESS, 0, "nomad: tcp ok")
    closed = free_port()
    status, code, output = run_probe(probe_spec(closed))
    assert (status, code) == (FAILURE, 0) and "connection refused" in output
    status, _, output = run_probe(probe_spec(closed, typ="tcp"))
    assert status == FAILURE and output == f"dial tcp 127.0.0.1:{closed}: connect: connection refused"


def test_a_real_http_probe_gives_up_at_its_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        status, code, output = run_probe(probe_spec(silent.getsockname()[1], timeout_s=0.3))
    assert (status, code) == (FAILURE, 0) and "i/o timeout" in output


def test_two_checks_that_differ_only_in_their_port_are_two_checks() -> None:
    svc = {"Name": "web", "PortLabel": "http", "Checks": [
        {"Name": "up", "Type": "tcp", "PortLabel": "http", "Interval": SEC, "Timeout": SEC},
        {"Name": "up", "Type": "tcp", "PortLabel": "admin", "Interval": SEC, "Timeout": SEC}]}
    raw = {**alloc(), "Job": {"TaskGroups": [{"Name": "g", "Services": [svc], "Tasks": []}]}}
    a, b = alloc_checks(raw)
    assert a.id != b.id and (a.port, b.port) == (23456, 23457)
    doubled = {**svc, "Checks": svc["Checks"][:1] * 2}
    twice = {**raw, "Job": {"TaskGroups": [{"Name": "g", "Services": [doubled], "Tasks": []}]}}
    assert len(alloc_checks(twice)) == 1  # the very same check twice is run once


def test_a_late_answer_of_a_replaced_checks_probe_is_not_taken_for_the_new_one() -> None:
    sched = Scheduler(1)
    answers: list[tuple[float, Callable[[str, int, str], None]]] = []

    class Slow:
        def probe(self, spec: CheckSpec, notify: Callable[[str, int, str], None]) -> None:
            answers.append((sched.now, notify))

    node = sched.add_node("c1", lambda env: env.spawn(CheckRunner, "checks", prober=Slow()))
    ref = node.actors["checks"]
    old = spec()
    ref.tell(WatchChecks("a1", (old,), "nobody"))
    sched.run_for(0.5)
    new = CheckSpec(**{**{f: getattr(old, f) for f in CheckSpec.__slots__}, "body": "v2"})  # same ID
    ref.tell(WatchChecks("a1", (new,), "nobody"))
    sched.run_for(0.5)
    assert len(answers) == 2
    answers[0][1](SUCCESS, 200, "the old probe")  # the replaced check's probe answers late
    sched.run_for(0.1)
    assert ref.ask(GetChecks("a1"))[old.id]["Status"] == PENDING
    answers[1][1](FAILURE, 500, "the new probe")
    sched.run_for(0.1)
    assert ref.ask(GetChecks("a1"))[old.id]["Output"] == "the new probe"

