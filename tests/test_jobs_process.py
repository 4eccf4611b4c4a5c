"""Real processes run real work: one server, two clients, a service job of `sleep` tasks.

SIGKILL a client: its allocations are re-placed on the other within TTL +
grace + scheduling (test TTLs of 1 s); the restarted client stops what it
still ran but no longer owns.  Drain a client with a deadline: the work
migrates.  SIGTERM a client with ``leave_on_terminate`` and
``drain_on_shutdown``: its work moves before it exits.  Task processes
outlive a SIGKILLed agent (as Nomad's do), so every test kills what is left
by PID: the processes whose working directory is under the test's dirs.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from typing import Any

import psutil
import pytest

from tests.test_agent_process import STAGGER, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(150)

SLEEP_JOB = {"ID": "sleepy", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
    # Each migration waits for its replacement's health (the migrate block's min_healthy_time): a
    # second, not Nomad's default 10 s, keeps the drains below quick.
    "Name": "g", "Count": 4, "Migrate": {"MaxParallel": 1, "MinHealthyTime": 1_000_000_000},
    "RestartPolicy": {"Attempts": 1, "Interval": 60_000_000_000, "Delay": 1_000_000_000, "Mode": "fail"},
    "Tasks": [{"Name": "sleep", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["3600"]},
               "Resources": {"CPU": 50, "MemoryMB": 32}, "KillTimeout": 2_000_000_000}]}]}


def request(agent: AgentProc, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data.decode(errors="replace")
    finally:
        conn.close()


def kill_tasks_under(root: str) -> None:
    """Kill, by PID, every process whose working directory is under *root* (left-over tasks)."""
    for p in psutil.process_iter(["pid"]):
        try:
            if p.cwd().startswith(root):
                os.killpg(p.pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue


def tasks_under(root: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if p.cwd().startswith(root) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


@pytest.fixture
def cluster(agents, tmp_path):
    root = str(tmp_path)
    server = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "server.toml").write_text("\n".join([
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in server.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1",
        'min_heartbeat_ttl = "1s"', 'heartbeat_grace = "1s"',
    ]) + "\n")
    srv = agents(["-config", str(tmp_path / "server.toml")], http_port=server["http"]).wait_healthy()

    def client_config(name: str, drain: bool = False) -> tuple[str, int]:
        ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
        lines = [f'name = "{name}"', f'data_dir = "{tmp_path / name}"', 'bind_addr = "127.0.0.1"',
                 "leave_on_terminate = true",
                 "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
                 "[client]", "enabled = true", STAGGER, f'servers = ["127.0.0.1:{server["rpc"]}"]',
                 '[client.options]', '"driver.raw_exec.enable" = "1"']
        if drain:
            lines += ["[client.drain_on_shutdown]", 'deadline = "30s"']
        path = tmp_path / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return str(path), ports["http"]

    def start(name: str, drain: bool = False) -> AgentProc:
        path, http_port = client_config(name, drain)
        return agents(["-config", path], http_port=http_port)

    yield srv, start, root
    kill_tasks_under(root)


def nodes_by_name(srv: AgentProc) -> dict[str, dict[str, Any]]:
    status, nodes = request(srv, "GET", "/v1/nodes")
    return {n["Name"]: n for n in nodes} if status == 200 else {}


def allocs(srv: AgentProc, job: str = "sleepy") -> list[dict[str, Any]]:
    status, out = request(srv, "GET", f"/v1/job/{job}/allocations")
    return out if status == 200 and isinstance(out, list) else []


def running_on(srv: AgentProc) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in allocs(srv):
        if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running":
            out[a["NodeID"]] = out.get(a["NodeID"], 0) + 1
    return out


def test_lost_client_work_is_replaced_drain_migrates_and_drain_on_shutdown_moves_work(cluster):
    srv, start, root = cluster
    a = start("alpha", drain=True)
    b = start("beta")
    nodes = wait_for(lambda: (n := nodes_by_name(srv)) and all(
        n.get(x, {}).get("Status") == "ready" for x in ("alpha", "beta")) and n, "both clients ready", 30,
                     lambda: a.detail() + b.detail())
    alpha, beta = nodes["alpha"]["ID"], nodes["beta"]["ID"]
    # least privilege: the client's state is the agent's alone; the alloc dir is 0711, as Nomad's, so a
    # task run as another user can pass through it to its own directory without listing the others
    for d, mode in (("client", 0o700), ("alloc", 0o711)):
        assert os.stat(os.path.join(root, "alpha", d)).st_mode & 0o777 == mode, d
    status, res = request(srv, "PUT", "/v1/jobs", {"Job": SLEEP_JOB})
    assert status == 200, res
    assert res["EvalID"]
    spread = wait_for(lambda: (r := running_on(srv)) and sum(r.values()) == 4 and r, "4 allocations running", 30)
    assert set(spread) == {alpha, beta}  # job anti-affinity spreads the group
    assert len(tasks_under(root)) == 4  # real processes, one per allocation

    # SIGKILL alpha: its allocations are lost and re-placed on beta.
    t0 = time.monotonic()
    a.kill()
    wait_for(lambda: running_on(srv) == {beta: 4}, "all 4 running on beta", 40)
    replaced_s = time.monotonic() - t0
    lost = [x for x in allocs(srv) if x["NodeID"] == alpha]
    assert lost and all(x["ClientStatus"] == "lost" for x in lost)
    assert replaced_s < 30, replaced_s
    # alpha comes back (same node ID) and stops what it ran but no longer owns.
    a2 = start("alpha", drain=True)
    wait_for(lambda: nodes_by_name(srv)["alpha"]["Status"] == "ready", "alpha ready again", 30, a2.detail)
    wait_for(lambda: len(tasks_under(root)) == 4, "alpha's orphaned tasks stopped", 30)

    # Drain beta with a deadline: the work migrates to alpha, one at a time.
    status, res = request(srv, "PUT", f"/v1/node/{beta}/drain",
                          {"DrainSpec": {"Deadline": 60_000_000_000, "IgnoreSystemJobs": False},
                           "MarkEligible": False})
    assert status == 200, res
    wait_for(lambda: running_on(srv) == {alpha: 4}, "all 4 migrated to alpha", 60)
    node = wait_for(lambda: (n := request(srv, "GET", f"/v1/node/{beta}")[1]) and not n.get("DrainStrategy")
                    and n, "drain complete", 20)
    assert node["SchedulingEligibility"] == "ineligible"
    status, res = request(srv, "PUT", f"/v1/node/{beta}/eligibility", {"Eligibility": "eligible"})
    assert status == 200, res

    # SIGTERM alpha (leave_on_terminate, drain_on_shutdown): the work moves to beta before it exits.
    a2.send(signal.SIGTERM)
    assert a2.wait_exit(60) == 0
    assert running_on(srv) == {beta: 4}
    assert len(tasks_under(root)) == 4


def test_new_work_reaches_a_client_at_once_after_its_server_restarts(cluster, agents, tmp_path):  # noqa: F811
    """The client's parked allocation query dies with the server's process; the client learns it
    from the closed connection and asks again, so work registered after the restart starts in
    seconds (without that notice it sat pending until the query's own 70 s bound)."""
    srv, start, _ = cluster
    a = start("alpha")
    wait_for(lambda: nodes_by_name(srv).get("alpha", {}).get("Status") == "ready", "alpha ready", 30,
             a.detail)
    srv.kill()  # SIGKILL: the kernel closes its connections
    srv = agents(["-config", str(tmp_path / "server.toml")], http_port=srv.http_port).wait_healthy()
    job = {**SLEEP_JOB, "ID": "after", "TaskGroups": [{**SLEEP_JOB["TaskGroups"][0], "Count": 1}]}
    status, res = request(srv, "PUT", "/v1/jobs", {"Job": job})
    assert status == 200, res
    t0 = time.monotonic()
    wait_for(lambda: any(x["ClientStatus"] == "running" for x in allocs(srv, "after")), "the new job running",
             40, a.detail)
    assert time.monotonic() - t0 < 20, time.monotonic() - t0
