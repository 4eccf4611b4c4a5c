"""Real ``bin/nomad-agent`` processes on 127.0.0.1: banner, HTTP, signals, exit codes, state.

Every agent gets free ports and its own data dir from the test, is waited
for with deadlines (its output lines, or its health endpoint), and is
killed by PID in the fixture's finalizer if a test leaves it running.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import gevent
import psutil
import pytest

from tests.ports import free_port

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "bin", "nomad-agent")
# A healthy start takes ~0.3 s; this bounds a loaded CI machine, not a normal run.
START_DEADLINE_S = 20.0
# Signals, reloads and exits complete in milliseconds; same reasoning.
STEP_DEADLINE_S = 10.0
POLL_S = 0.01  # how often a wait re-checks its condition
# A client agent's config line (TOML, in [client]) for tests that start clients: the first heartbeat,
# which makes a new node "ready", goes at once instead of within a random part of Nomad's 10 s
# (client.initial_heartbeat_stagger; the stagger itself is tested in tests/test_config.py and the
# simulator).  Each client start otherwise waited 5 s on average.
STAGGER = 'initial_heartbeat_stagger = "0s"'

# An agent whose child takes 30 s to leave, plugged in through the documented
# EXTRA_CHILD_SPECS point: the window a second signal needs.
SLOW_LEAVE_AGENT = r"""
from gevent import monkey; monkey.patch_all()
import sys
import tempfile
sys.path.insert(0, %(root)r)
from actors.agent import EXTRA_CHILD_SPECS, ChildSpec
from actors.agent_messages import Leave, LeaveDone
from runtime.actor import NodeActor

class SlowLeaver(NodeActor):
    def receive(self, message):
        if isinstance(message, Leave):
            self.pending = message
            self.set_timer("leave", 30.0)

    def on_timer(self, name):
        self.send(self.env.node, self.pending.reply_to,
                  LeaveDone(actor=self.name, corr=self.pending.corr))

EXTRA_CHILD_SPECS.append(lambda config, ctx: [ChildSpec(name="slow-leaver", cls=SlowLeaver, leaves=True)])
from runtime.agent_main import main
sys.exit(main(sys.argv[1:]))
""" % {"root": ROOT}



def wait_for(cond: Callable[[], Any], what: str, timeout_s: float = STEP_DEADLINE_S,
             detail: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{detail()}")
        gevent.sleep(POLL_S)


class AgentProc:
    """One agent process, its output collected line by line as it comes."""

    def __init__(self, args: list[str], *, code: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, AGENT, *args]
        self.args = list(args)
        self.started = time.monotonic()
        # A temporary directory of its own (TMPDIR), removed once it has exited: a -dev agent's data
        # dir is made there, and one killed (SIGKILL) cannot remove it itself.
        self.tmp = tempfile.mkdtemp(prefix="agentproc-")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": self.tmp,
                                                    **(env or {})})
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [gevent.spawn(self._pump, self.proc.stdout, self.out),
                        gevent.spawn(self._pump, self.proc.stderr, self.err)]
        self.http_port: int | None = None

    @staticmethod
    def _pump(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def detail(self) -> str:
        return ("--- stdout\n" + "\n".join(self.out[-40:]) + "\n--- stderr\n" + "\n".join(self.err[-40:]))

    def wait_line(self, pattern: str, *, stream: str = "out", after: int = 0,
                  timeout_s: float = STEP_DEADLINE_S) -> int:
        """Index of the first line at or after *after* matching the regex *pattern*."""
        lines = self.out if stream == "out" else self.err
        rx = re.compile(pattern)

        def find() -> int | None:
            for i in range(after, len(lines)):
                if rx.search(lines[i]):
                    return i + 1  # +1 so index 0 is truthy; undone below
            return None

        return wait_for(find, f"{stream} line /{pattern}/", timeout_s, self.detail) - 1

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=STEP_DEADLINE_S)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type", "")
        finally:
            conn.close()

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}\n{self.detail()}")
        try:
            return self.get("/v1/agent/health")[0] == 200
        except OSError:
            return False

    def wait_healthy(self) -> AgentProc:
        wait_for(self.healthy, "a healthy agent", START_DEADLINE_S, self.detail)
        return self

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float = STEP_DEADLINE_S) -> int:
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"agent still running after {timeout_s}s\n{self.detail()}") from None
        gevent.joinall(self.readers, timeout=STEP_DEADLINE_S)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            tasks = self._dev_tasks()
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for task in tasks:  # (psutil checks each is still the process it found)
                try:
                    task.kill()
                except psutil.Error:
                    pass
        gevent.killall(self.readers)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _dev_tasks(self) -> list[psutil.Process]:
        """A ``-dev`` agent's descendants: its tasks (and their launchers), which its SIGKILL leaves
        running and no later agent can take back (its data dir was its own temporary one). An agent
        with a data dir of its own keeps its tasks: a restart may recover them."""
        if "-dev" not in self.args:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []


def nomad_agent_dev(tmp_path: Any, hcl: str = "") -> AgentProc:
    """``nomad agent -dev -config agent.hcl`` (bin/nomad becoming the agent, as Nomad's CLI does), the
    file holding free loopback ports and *hcl*; its HTTP port is the AgentProc's ``http_port``."""
    port = free_port()
    conf = tmp_path / "agent.hcl"
    conf.write_text(f"ports {{\n  http = {port}\n  rpc  = {free_port()}\n  serf = {free_port()}\n}}\n{hcl}")
    agent = AgentProc(["agent", "-dev", "-config", str(conf)],
                      code="import runpy; runpy.run_path('bin/nomad', run_name='__main__')")
    agent.http_port = port
    return agent


def agent_config(path: Any, data_dir: Any, *, ports: dict[str, int] | None = None, tables: str = "",
                 **top: Any) -> dict[str, Any]:
    """A server+client agent config on (free) loopback ports, plus TOML *tables*; returns its facts."""
    ports = ports or {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    lines = [f'data_dir = "{data_dir}"', 'bind_addr = "127.0.0.1"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    lines += ["[ports]", *(f"{k} = {v}" for k, v in ports.items()),
              "[server]", "enabled = true", "bootstrap_expect = 1", "[client]", "enabled = true", STAGGER]
    path.write_text("\n".join(lines) + "\n" + tables)
    return {"path": str(path), "data_dir": str(data_dir), **ports}


@pytest.fixture
def agents():
    """Start agents; any still running at the end are killed by PID."""
    started: list[AgentProc] = []

    def start(args: list[str], *, http_port: int | None = None, code: str | None = None,
              env: dict[str, str] | None = None) -> AgentProc:
        agent = AgentProc(args, code=code, env=env)
        agent.http_port = http_port
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One server+client agent shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("shared")
    cfg = agent_config(tmp / "agent.toml", tmp / "data",
                       tables='[http_api_response_headers]\n"Access-Control-Allow-Origin" = "*"\n')
    agent = AgentProc(["-config", cfg["path"]])
    agent.http_port = cfg["http"]
    try:
        agent.wait_healthy()
        yield agent, cfg
    finally:
        agent.kill()


def banner_value(agent: AgentProc, key: str) -> str:
    line = agent.out[agent.wait_line(rf"^ +{key}: ")]
    return line.split(": ", 1)[1]


# ---------------------------------------------------------------- banner, data dir, HTTP


def test_banner_has_nomads_lines_fields_and_alignment(running):
    agent, cfg = running
    start = agent.wait_line(r"^==> Nomad agent started!")
    with open(os.path.join(cfg["data_dir"], "server", "node-id")) as fh:
        node_id = fh.read()
    http, rpc, serf = (f"127.0.0.1:{cfg[k]}" for k in ("http", "rpc", "serf"))
    assert agent.out[:start + 2] == [
        f"==> Loaded configuration from {cfg['path']}",
        "==> Starting Nomad agent...",
        "==> Nomad agent configuration:",
        "",
        f"       Advertise Addrs: HTTP: {http}; RPC: {rpc}; Serf: {serf}",
        f"            Bind Addrs: HTTP: [{http}]; RPC: {rpc}; Serf: {serf}",
        "                Client: true",
        "             Log Level: INFO",
        f"               Node Id: {node_id}",
        "                Region: global (DC: dc1)",
        "                Server: true",
        "               Version: 2.0.6",
        "",
        "==> Nomad agent started! Log data will stream in below:",
        "",
    ]
    assert re.fullmatch(r"    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4}) \[INFO\]  agent: .+",
                        agent.out[start + 2])
    assert "==> WARNING: mTLS is not configured - Nomad is not secure without mTLS!" in agent.err


def test_data_dir_is_created_0700_with_the_node_ids(running):
    _, cfg = running
    assert stat.S_IMODE(os.stat(cfg["data_dir"]).st_mode) == 0o700
    for name in ("server/node-id", "client/client-id", "client/secret-id"):
        assert stat.S_IMODE(os.stat(os.path.join(cfg["data_dir"], name)).st_mode) == 0o600


def test_http_endpoints_answer_in_nomads_shape(running):
    agent, cfg = running
    status, body, ctype = agent.get("/v1/agent/self")
    info = json.loads(body)
    assert (status, ctype) == (200, "application/json")
    assert set(info) == {"config", "member", "stats"}
    assert info["config"]["Ports"]["HTTP"] == cfg["http"] and info["config"]["LeaveOnTerm"] is False
    assert info["member"]["Port"] == cfg["serf"] and info["member"]["Tags"]["role"] == "nomad"
    assert {"nomad", "raft", "serf", "client", "runtime"} <= set(info["stats"])
    assert int(info["stats"]["runtime"]["goroutines"]) > 0
    status, body, _ = agent.get("/v1/agent/health")
    assert json.loads(body) == {"client": {"ok": True, "message": "ok"},
                                "server": {"ok": True, "message": "ok"}}
    status, body, _ = agent.get("/v1/metrics")
    summary = json.loads(body)
    assert set(summary) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    names = {g["Name"] for g in summary["Gauges"]}
    assert {"nomad.runtime.num_goroutines", "nomad.runtime.sys_bytes", "nomad.agent.uptime"} <= names


def test_metrics_carry_the_servers_raft_heartbeat_and_broker_gauges(running):
    """Nomad's EmitRaftStats, heartbeatStats and EvalBroker.EmitStats gauges, as a dashboard scrapes them."""
    agent, _ = running

    def gauges() -> dict[str, float] | None:
        status, body, _ = agent.get("/v1/metrics")
        got = {g["Name"]: g["Value"] for g in json.loads(body)["Gauges"]} if status == 200 else {}
        want = {"nomad.raft.appliedIndex", "nomad.raft.lastIndex", "nomad.state.snapshotIndex",
                "nomad.nomad.heartbeat.active", "nomad.nomad.broker.total_ready",
                "nomad.nomad.broker.total_unacked", "nomad.nomad.broker.total_pending",
                "nomad.nomad.job_status.pending", "nomad.nomad.job_status.running",
                "nomad.nomad.job_status.dead"}
        # The dev agent's own node holds the leader's one heartbeat timer.
        return got if want <= set(got) and got["nomad.nomad.heartbeat.active"] == 1 else None

    # Set at once, then every 10 s (Raft), 5 s (heartbeats) and 1 s (broker, job statuses).
    got = wait_for(gauges, "server gauges in /v1/metrics", timeout_s=30.0)
    assert got["nomad.raft.lastIndex"] >= got["nomad.raft.appliedIndex"] > 0


def test_pprof_needs_enable_debug_without_acls(running):
    agent, _ = running
    assert agent.get("/v1/agent/pprof/goroutine")[:2] == (403, b"Permission denied")


def test_http_api_response_headers_are_on_every_answer(running):
    agent, _ = running
    for path in ("/v1/agent/health", "/v1/no/such/thing", "/v1/metrics?format=prometheus"):
        conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=STEP_DEADLINE_S)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.getheader("Access-Control-Allow-Origin") == "*", path
        finally:
            conn.close()


def test_bad_http_requests_are_answered_and_the_agent_keeps_serving(running):
    agent, _ = running
    assert agent.get("/v1/no/such/thing")[:2] == (404, b"404 page not found\n")
    assert agent.get("/v1/agent/health", "DELETE")[:2] == (405, b"Invalid method")
    assert agent.get("/v1/agent/health?index=abc")[:2] == (400, b"Invalid index")
    assert agent.get("/v1/agent/health?wait=soon")[:2] == (400, b"Invalid wait time")
    assert agent.get("/v1/metrics?format=prometheus")[:2] == (415, b"Prometheus is not enabled")
    with socket.create_connection(("127.0.0.1", agent.http_port), timeout=STEP_DEADLINE_S) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", agent.http_port), timeout=STEP_DEADLINE_S) as s:
        s.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 414")
    assert agent.get("/v1/agent/health")[0] == 200
    assert agent.proc.poll() is None


def test_sigusr1_dumps_metrics_to_stderr_and_the_agent_keeps_serving(running):
    agent, _ = running
    before = len(agent.err)
    agent.send(signal.SIGUSR1)
    agent.wait_line(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC\]\[G\] 'nomad\.runtime\.num_goroutines\.",
                    stream="err", after=before)
    assert agent.get("/v1/agent/health")[0] == 200
    assert agent.proc.poll() is None


def test_dev_agent_serves_prometheus_and_logs_at_debug(agents, tmp_path):
    port = free_port()
    ports = tmp_path / "ports.toml"
    ports.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n")
    agent = agents(["-dev", "-config", str(ports)], http_port=port).wait_healthy()
    assert banner_value(agent, "Log Level") == "DEBUG"
    assert banner_value(agent, "Server") == "true" and banner_value(agent, "Client") == "true"
    status, body, ctype = agent.get("/v1/metrics?format=prometheus")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert "# TYPE nomad_runtime_num_goroutines gauge" in body.decode()
    agent.wait_line(r"\[DEBUG\] agent\.http: request complete: method=GET "
                    r"path=/v1/metrics\?format=prometheus")
    agent.send(signal.SIGTERM)
    assert agent.wait_exit() == 1


def test_dev_agent_exports_nomads_scheduling_metrics_with_their_labels(agents, tmp_path):
    """A job run on a -dev agent shows in the metrics dashboards built for Nomad scrape: the leader's
    job summary per task group, blocked evaluations, the broker per scheduler type, the plan queue,
    and the worker, plan, FSM and leader timers -- in /v1/metrics and in the Prometheus text."""
    port = free_port()
    ports = tmp_path / "ports.toml"
    ports.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n")
    agent = agents(["-dev", "-config", str(ports)], http_port=port).wait_healthy()
    job = {"Job": {"ID": "metered", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "web", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {
            "command": "/bin/sleep", "args": ["300"]}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STEP_DEADLINE_S)
    try:
        conn.request("PUT", "/v1/jobs", body=json.dumps(job))
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    labels = {"job": "metered", "task_group": "web", "namespace": "default"}
    gauges = {f"nomad.nomad.job_summary.{k}" for k in ("queued", "complete", "failed", "running", "starting",
                                                       "lost", "unknown")}
    plain = {"nomad.nomad.blocked_evals.total_blocked", "nomad.nomad.blocked_evals.total_escaped",
             "nomad.nomad.blocked_evals.total_quota_limit", "nomad.nomad.broker.service.ready",
             "nomad.nomad.broker.service.unacked", "nomad.nomad.plan.queue_depth",
             "nomad.memberlist.health.score", "nomad.nomad.broker.total_waiting",
             "nomad.nomad.broker.total_cancelable"}
    counters = {"nomad.memberlist.msg.alive"}
    broker_timers = {"nomad.nomad.broker.wait_time", "nomad.nomad.broker.process_time",
                     "nomad.nomad.broker.response_time"}
    samples = {"nomad.nomad.worker.invoke_scheduler.service", "nomad.nomad.worker.submit_plan",
               "nomad.nomad.plan.submit", "nomad.nomad.plan.apply", "nomad.nomad.fsm.register_node",
               "nomad.nomad.fsm.register_job", "nomad.nomad.fsm.apply_plan_results",
               "nomad.nomad.fsm.alloc_client_update", "nomad.nomad.leader.barrier"}
    seen: set[str] = set()
    running: dict[str, float] = {}

    def scraped() -> bool:
        # /v1/metrics shows one 10 s interval at a time: what each shows is gathered over the polls.
        summary = json.loads(agent.get("/v1/metrics")[1])
        for g in summary["Gauges"]:
            tags = {k: v for k, v in g["Labels"].items() if k != "host"}
            if g["Name"] in gauges and tags == labels:
                seen.add(g["Name"])
                running[g["Name"]] = g["Value"]
            elif g["Name"] in plain and not tags:
                seen.add(g["Name"])
        seen.update(x["Name"] for x in summary["Samples"] if x["Name"] in samples)
        seen.update(x["Name"] for x in summary["Samples"] if x["Name"] in broker_timers
                    and x["Labels"].get("job") == "metered" and x["Labels"].get("eval_type") == "service")
        seen.update(x["Name"] for x in summary["Counters"] if x["Name"] in counters)
        return seen >= wanted and running.get("nomad.nomad.job_summary.running") == 1

    wanted = gauges | plain | samples | counters | broker_timers
    wait_for(scraped, "the scheduling metrics in /v1/metrics", 30.0,
             lambda: f"missing {sorted(wanted - seen)}, {running}\n{agent.detail()}")
    status, body, _ = agent.get("/v1/metrics?format=prometheus")
    text = body.decode()
    assert status == 200
    assert "# TYPE nomad_nomad_job_summary_running gauge" in text
    assert re.search(r'^nomad_nomad_job_summary_running\{host="[^"]*",job="metered",namespace="default",'
                     r'task_group="web"\} 1$', text, re.M), text
    for name in plain:
        assert f"# TYPE {name.replace('.', '_')} gauge" in text, name
    assert re.search(r'^nomad_memberlist_msg_alive\{host="[^"]*"\} [1-9]', text, re.M)
    for name in broker_timers:
        assert re.search(rf'^{name.replace(".", "_")}_count\{{eval_type="service",host="[^"]*",job="metered",'
                         r'namespace="default",triggered_by="job-register"\} 1$', text, re.M), name
    for name in samples:
        prom = name.replace(".", "_")
        assert f"# TYPE {prom} summary" in text and re.search(rf"^{prom}_count\{{host=\"[^\"]*\"\}} [1-9]",
                                                               text, re.M), name
    agent.send(signal.SIGTERM)
    assert agent.wait_exit() == 1


def test_stopping_a_dev_agent_kills_its_tasks_as_nomads_does(agents, tmp_path):
    """Nomad's client.Shutdown destroys every allocation in dev mode: no task outlives the dev agent (whose
    temporary data dir, where the task ran, is removed with it)."""
    port = free_port()
    ports = tmp_path / "ports.toml"
    ports.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n")
    agent = agents(["-dev", "-config", str(ports)], http_port=port).wait_healthy()
    pid_file = tmp_path / "task.pid"
    job = {"Job": {"ID": "sleeper", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {
            "command": "/bin/sh", "args": ["-c", f"echo $$ > {pid_file}; exec sleep 300"]},
            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STEP_DEADLINE_S)
    try:
        conn.request("PUT", "/v1/jobs", body=json.dumps(job))
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the task's pid", START_DEADLINE_S,
             agent.detail)
    pid = int(pid_file.read_text())
    os.kill(pid, 0)  # running
    agent.send(signal.SIGINT)
    assert agent.wait_exit() == 1

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        wait_for(gone, "the task to be gone", 5.0, agent.detail)
    finally:
        if not gone():
            os.kill(pid, signal.SIGKILL)


def test_log_json_writes_only_json_lines(agents, tmp_path):
    port = free_port()
    ports = tmp_path / "ports.toml"
    ports.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n")
    agent = agents(["-dev", "-log-json", "-config", str(ports)], http_port=port).wait_healthy()
    agent.wait_line(r'"@message": "Nomad agent started!')
    agent.send(signal.SIGINT)
    assert agent.wait_exit() == 1
    entries = [json.loads(line) for line in agent.out]
    assert all({"@level", "@message", "@module", "@timestamp"} <= set(e) for e in entries)


# ---------------------------------------------------------------- reload


def test_sighup_reloads_the_log_level_and_reports_what_needs_a_restart(agents, tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data", log_level="INFO")
    agent = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    same_ports = {k: cfg[k] for k in ("http", "rpc", "serf")}  # only the two keys below change
    agent_config(tmp_path / "agent.toml", tmp_path / "data", ports=same_ports, log_level="DEBUG",
                 leave_on_terminate=True)
    agent.send(signal.SIGHUP)
    reload_at = agent.wait_line(r"^==> Caught signal: hangup$")
    agent.wait_line(r"^==> Reloading configuration\.\.\.$", after=reload_at)
    agent.wait_line(r"\[WARN\]  agent: config change needs a restart to take effect: key=leave_on_terminate")
    agent.wait_line(r"\[INFO\]  agent: log level changed: level=DEBUG")
    assert agent.get("/v1/agent/health")[0] == 200
    agent.wait_line(r"\[DEBUG\] agent\.http: request complete: method=GET path=/v1/agent/health")
    assert not [line for line in agent.out[:reload_at] if "[DEBUG]" in line]
    # leave_on_terminate is not reloadable (Nomad reads the start-up value): a plain stop, exit 1.
    agent.send(signal.SIGTERM)
    assert agent.wait_exit() == 1
    assert "==> Gracefully shutting down agent..." not in agent.out


def test_systemd_is_notified_of_ready_reloading_and_stopping(agents, tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data")
    notify_path = str(tmp_path / "notify.sock")
    got: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify_path)

        def receive() -> None:
            while True:
                got.append(sock.recv(4096).decode())

        reader = gevent.spawn(receive)
        try:
            agent = agents(["-config", cfg["path"]], http_port=cfg["http"],
                           env={"NOTIFY_SOCKET": notify_path}).wait_healthy()
            wait_for(lambda: got == ["READY=1"], "READY=1", detail=lambda: repr(got))
            agent.send(signal.SIGHUP)
            wait_for(lambda: len(got) == 3, "a reload's notifications", detail=lambda: repr(got))
            assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", got[1]) and got[2] == "READY=1"
            agent.send(signal.SIGINT)
            assert agent.wait_exit() == 1
            wait_for(lambda: len(got) == 4, "STOPPING=1", detail=lambda: repr(got))
            assert got[3] == "STOPPING=1"
        finally:
            reader.kill()


# ---------------------------------------------------------------- stop, leave, restart


@pytest.mark.parametrize(("sig", "leave_key", "code", "go_name"), [
    (signal.SIGINT, None, 1, "interrupt"),
    (signal.SIGINT, "leave_on_interrupt", 0, "interrupt"),
    (signal.SIGTERM, None, 1, "terminated"),
    (signal.SIGTERM, "leave_on_terminate", 0, "terminated"),
])
def test_stop_signals_exit_like_nomad_and_a_restart_resumes_the_same_node(agents, tmp_path, sig,
                                                                         leave_key, code, go_name):
    top = {leave_key: True} if leave_key else {}
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data", **top)
    first = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    node_id = banner_value(first, "Node Id")
    first.send(sig)
    assert first.wait_exit() == code
    first.wait_line(rf"^==> Caught signal: {go_name}$")
    assert ("==> Gracefully shutting down agent..." in first.out) == bool(leave_key)
    first.wait_line(r"\[INFO\]  agent: shutdown complete")
    data = tmp_path / "data"
    assert (data / "server" / "node-id").read_text() == node_id
    client_id = (data / "client" / "client-id").read_text()

    second = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    assert banner_value(second, "Node Id") == node_id
    assert json.loads(second.get("/v1/agent/self")[1])["stats"]["client"]["node_id"] == client_id
    second.send(signal.SIGINT)
    assert second.wait_exit() == (0 if leave_key == "leave_on_interrupt" else 1)


def test_second_signal_during_the_leave_forces_exit_1(agents, tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data", leave_on_interrupt=True,
                       leave_timeout="60s")
    agent = agents(["-config", cfg["path"]], http_port=cfg["http"], code=SLOW_LEAVE_AGENT).wait_healthy()
    agent.send(signal.SIGINT)
    agent.wait_line(r"^==> Gracefully shutting down agent\.\.\.$")
    forced_at = time.monotonic()
    agent.send(signal.SIGINT)
    assert agent.wait_exit() == 1
    assert time.monotonic() - forced_at < 5.0  # not the 30 s leave, not the 60 s timeout
    assert agent.out.count("==> Caught signal: interrupt") == 2


def test_leave_that_outlasts_leave_timeout_exits_1(agents, tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data", leave_on_terminate=True,
                       leave_timeout="300ms")
    agent = agents(["-config", cfg["path"]], http_port=cfg["http"], code=SLOW_LEAVE_AGENT).wait_healthy()
    agent.send(signal.SIGTERM)
    agent.wait_line(r"^==> Gracefully shutting down agent\.\.\.$")
    assert agent.wait_exit() == 1
    agent.wait_line(r"\[WARN\]  agent: graceful leave did not finish within 0\.3s")


def test_sigquit_prints_every_greenlet_stack_and_exits_2(agents, tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data")
    agent = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    agent.send(signal.SIGQUIT)
    assert agent.wait_exit() == 2
    err = "\n".join(agent.err)
    assert "SIGQUIT: quit" in err
    assert "actors/signals.py" in err and "pykka/_actor.py" in err  # the actors' own stacks
    assert "Greenlets" in err


def test_a_server_that_lost_its_quorum_recovers_with_peers_json_as_nomads_does(agents, tmp_path):
    """Nomad's outage recovery: a server whose two peers are gone for good cannot elect a leader; with
    <data_dir>/server/raft/peers.json naming it alone it starts as the whole cluster, keeps its data,
    and deletes the file."""
    from actors.raft.sqlite_store import SqliteStorage
    from actors.state.store import StateStore
    from runtime.raft_recovery import recover_cluster

    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data")
    agent = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    me = f"127.0.0.1:{cfg['rpc']}"
    wait_for(lambda: agent.get("/v1/status/leader")[1] == json.dumps(me).encode(), "a leader")
    job = {"Job": {"ID": "kept", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 0, "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}}
    conn = http.client.HTTPConnection("127.0.0.1", cfg["http"], timeout=STEP_DEADLINE_S)
    try:
        conn.request("PUT", "/v1/jobs", body=json.dumps(job))
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    agent.send(signal.SIGINT)
    agent.wait_exit()
    raft_dir = tmp_path / "data" / "server" / "raft"
    assert (raft_dir / "peers.info").exists()  # written at the first start, as Nomad's sentinel
    # The outage: the configuration names two more servers, which are gone for good.
    store = SqliteStorage(str(raft_dir / "raft.db"))
    try:
        recover_cluster(store, (me, "127.0.0.2:1", "127.0.0.3:1"), (), StateStore)
    finally:
        store.close()
    node_id = (tmp_path / "data" / "server" / "node-id").read_text().strip()
    (raft_dir / "peers.json").write_text(json.dumps([{"id": node_id, "address": me, "non_voter": False}]))
    again = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    again.wait_line(r"found peers\.json file, recovering Raft configuration\.\.\.")
    wait_for(lambda: again.get("/v1/status/leader")[1] == json.dumps(me).encode(), "the recovered leader")
    assert not (raft_dir / "peers.json").exists()
    assert again.get("/v1/job/kept")[0] == 200
    servers = json.loads(again.get("/v1/operator/raft/configuration")[1])["Servers"]
    assert [(s["ID"], s["Address"]) for s in servers] == [(node_id, me)]  # the file's ID is kept


# ---------------------------------------------------------------- refusals


def _bad_file(tmp_path: Any, text: str) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return ["-dev", "-config", str(path)]


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda t: _bad_file(t, "bogus = 1\n"), r'unknown key "bogus" in .*bad\.toml'),
    (lambda t: _bad_file(t, "ports = {\n"), r"Error loading configuration from .*bad\.toml: "),
    (lambda t: _bad_file(t, '[ports]\nhttp = "x"\n'), r"ports\.http: expected an integer, got string 'x'"),
    (lambda t: _bad_file(t, '[server]\nheartbeat_grace = "10"\n'),
     r'server\.heartbeat_grace: invalid duration "10"'),
    (lambda t: ["-dev", "-config", str(t / "missing.toml")], r"missing\.toml: no such file or directory"),
    (lambda t: ["-dev", "-bogus"], r"flag provided but not defined: -bogus"),
    (lambda t: [], r"Must specify either server, client or dev mode for the agent\."),
    (lambda t: ["-dev", "-log-level=LOUD"], r'log_level: invalid log level "LOUD"'),
    (lambda t: ["-server", "-data-dir=relative/dir"],
     r'data_dir: must be an absolute path, got "relative/dir"'),
    (lambda t: ["-dev", "-bootstrap-expect=x"], r'invalid value "x" for flag -bootstrap-expect'),
])
def test_bad_config_or_flags_exit_1_with_one_clear_line(tmp_path, make_args, message):
    done = subprocess.run([sys.executable, AGENT, *make_args(tmp_path)], capture_output=True, text=True,
                          timeout=STEP_DEADLINE_S, cwd=ROOT)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("==> ") and re.search(message, lines[0]), done.stderr


def test_taken_http_port_fails_start_up_with_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ports = tmp_path / "ports.toml"
        ports.write_text(f"[ports]\nhttp = {port}\n")
        done = subprocess.run([sys.executable, AGENT, "-dev", "-config", str(ports)], capture_output=True,
                              text=True, timeout=STEP_DEADLINE_S, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"==> Error starting http server: listen tcp 127.0.0.1:{port}: Address already in use"]


def test_second_agent_on_a_held_data_dir_is_refused(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data")
    holder = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    other = agent_config(tmp_path / "b.toml", tmp_path / "data")
    refused = agents(["-config", other["path"]], http_port=other["http"])
    assert refused.wait_exit() == 1
    errors = [line for line in refused.err if not line.startswith("==> WARNING")]
    assert errors == [f'==> Error starting agent: data_dir "{tmp_path / "data"}" is in use by another '
                      f"agent (pid {holder.proc.pid}); each agent needs its own data_dir"]
    assert holder.get("/v1/agent/health")[0] == 200
