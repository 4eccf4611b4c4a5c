"""Real client agents: the node is registered ready with its fingerprint, marked down when killed, ready again."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.test_agent_process import STAGGER, AgentProc, agent_config, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(90)


def get_json(agent: AgentProc, path: str) -> Any:
    try:
        status, body, _ = agent.get(path)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def test_agent_registers_its_node_ready_with_nomads_fingerprint_attributes(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data", name="fp-node",
                       tables="[plugin.raw_exec.config]\nenabled = true\n")
    a = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    nodes = wait_for(lambda: [n for n in (get_json(a, "/v1/nodes") or []) if n["Status"] == "ready"],
                     "a ready node", 20)
    assert nodes[0]["Name"] == "fp-node"
    node = get_json(a, f"/v1/node/{nodes[0]['ID']}")
    for attr in ("cpu.arch", "cpu.numcores", "cpu.totalcompute", "memory.totalbytes", "kernel.name",
                 "os.name", "unique.hostname", "nomad.version"):
        assert attr in node["Attributes"], attr
    # raw_exec, enabled by its plugin block; exec exactly when this host can run it (root, cgroups).
    from actors.client.exec_driver import exec_health

    health = exec_health(is_root=os.geteuid() == 0)
    exec_ok = health.healthy
    assert node["Attributes"]["driver.raw_exec"] == "1"
    assert node["Attributes"].get("driver.exec") == ("1" if exec_ok else None)
    # Every driver is in Drivers (Nomad's DriverInfo): exec healthy, or why not ("Driver must run as root").
    assert set(node["Drivers"]) == {"raw_exec", "exec"}
    exec_info = node["Drivers"]["exec"]
    assert (exec_info["Detected"], exec_info["Healthy"], exec_info["HealthDescription"]) == (
        health.detected, health.healthy, health.description)
    assert node["Drivers"]["raw_exec"]["HealthDescription"] == "Healthy"
    assert exec_info["UpdateTime"].endswith("Z")
    assert node.get("SecretID", "") == ""  # Nomad blanks the node secret on a read
    ids = (tmp_path / "data" / "client" / "client-id").read_text().strip()
    assert ids == nodes[0]["ID"]


def _server_and_client(start: Any, tmp_path: Any, name: str,
                       extra: list[str] | None = None) -> tuple[AgentProc, dict[str, int], dict[str, int]]:
    """A server agent with test TTLs (a silent client is noticed in seconds, not Nomad's 10 s + 10 s),
    started and healthy, and the config file client.toml of a client agent *name* pointed at it (not
    started): (the server, its ports, the client's ports)."""
    server = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "server.toml").write_text("\n".join([
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in server.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1",
        'min_heartbeat_ttl = "1s"', 'heartbeat_grace = "1s"',
    ]) + "\n")
    srv = start(["-config", str(tmp_path / "server.toml")], http_port=server["http"]).wait_healthy()
    client = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "client.toml").write_text("\n".join([
        f'name = "{name}"', f'data_dir = "{tmp_path / "cli"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in client.items()),
        "[client]", "enabled = true", STAGGER, f'servers = ["127.0.0.1:{server["rpc"]}"]', *(extra or []),
    ]) + "\n")
    return srv, server, client


def test_killed_client_is_marked_down_and_comes_back_ready_with_the_same_node(agents, tmp_path):
    srv, _, client = _server_and_client(agents, tmp_path, "worker")

    def worker() -> dict[str, Any] | None:
        return next((n for n in (get_json(srv, "/v1/nodes") or []) if n["Name"] == "worker"), None)

    c1 = agents(["-config", str(tmp_path / "client.toml")], http_port=client["http"])
    first = wait_for(lambda: (w := worker()) and w["Status"] == "ready" and w, "worker ready", 30, c1.detail)
    c1.kill()
    wait_for(lambda: (w := worker()) and w["Status"] == "down", "worker down after its TTL and grace", 30)
    c2 = agents(["-config", str(tmp_path / "client.toml")], http_port=client["http"])
    again = wait_for(lambda: (w := worker()) and w["Status"] == "ready" and w, "worker ready again", 30,
                     c2.detail)
    assert again["ID"] == first["ID"]


def test_a_frozen_client_with_a_disconnect_window_goes_disconnected_and_reconnects_keeping_its_work(
        agents, tmp_path):  # noqa: F811
    """Real processes: a client stopped with SIGSTOP (a partition as the servers see it) running a group
    with ``disconnect { lost_after }`` is marked disconnected, not down, its allocation unknown; resumed
    (SIGCONT) it heartbeats, goes ready, and the allocation -- whose task never stopped -- runs on."""
    import signal

    srv, server, client = _server_and_client(agents, tmp_path, "roamer",
                                             ["[plugin.raw_exec.config]", "enabled = true"])
    c = agents(["-config", str(tmp_path / "client.toml")], http_port=client["http"])

    def node() -> dict[str, Any] | None:
        return next((n for n in (get_json(srv, "/v1/nodes") or []) if n["Name"] == "roamer"), None)

    wait_for(lambda: (n := node()) and n["Status"] == "ready", "roamer ready", 30, c.detail)
    job = {"ID": "roams", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Disconnect": {"LostAfter": 3_600_000_000_000, "Replace": False},
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["300"]},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{server['http']}/v1/jobs", method="PUT",
                                 data=json.dumps({"Job": job}).encode())
    try:
        r = urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as e:  # the agent's reason, not just the code
        raise AssertionError(f"job register: {e.code} {e.read().decode(errors='replace')}\n{srv.detail()}") from None
    with r:
        status = r.status
    assert status == 200

    def alloc() -> dict[str, Any] | None:
        return next(iter(get_json(srv, "/v1/job/roams/allocations") or []), None)

    first = wait_for(lambda: (a := alloc()) and a["ClientStatus"] == "running" and a, "the task running", 30,
                     c.detail)
    os.kill(c.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: (n := node()) and n["Status"] == "disconnected", "roamer disconnected", 30)
        wait_for(lambda: (a := alloc()) and a["ClientStatus"] == "unknown", "its allocation unknown", 30)
        assert node()["Status"] == "disconnected"  # never down while the window is open
    finally:
        os.kill(c.proc.pid, signal.SIGCONT)
    wait_for(lambda: (n := node()) and n["Status"] == "ready", "roamer ready again", 60, c.detail)
    back = wait_for(lambda: (a := alloc()) and a["ClientStatus"] == "running" and a, "the allocation running",
                    30, c.detail)
    assert back["ID"] == first["ID"]
    assert len(get_json(srv, "/v1/job/roams/allocations")) == 1  # replace = false: nothing was placed
    # Stop the job so its client ends the task (and its log collector) before the agents are killed.
    req = urllib.request.Request(f"http://127.0.0.1:{server['http']}/v1/job/roams", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    wait_for(lambda: (a := alloc()) and a["ClientStatus"] == "complete", "the task stopped", 30, c.detail)
