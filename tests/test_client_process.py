"""Real client agents: the node is registered ready with its fingerprint, marked down when killed, ready again."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.test_agent_process import AgentProc, agent_config, agents, free_port, wait_for  # noqa: F401

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


def test_killed_client_is_marked_down_and_comes_back_ready_with_the_same_node(agents, tmp_path):
    server = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "server.toml").write_text("\n".join([
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in server.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1",
        # Test TTLs: a dead client is noticed in seconds, not Nomad's 10 s + 10 s.
        'min_heartbeat_ttl = "1s"', 'heartbeat_grace = "1s"',
    ]) + "\n")
    srv = agents(["-config", str(tmp_path / "server.toml")], http_port=server["http"]).wait_healthy()
    client = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "client.toml").write_text("\n".join([
        'name = "worker"', f'data_dir = "{tmp_path / "cli"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in client.items()),
        "[client]", "enabled = true", f'servers = ["127.0.0.1:{server["rpc"]}"]',
    ]) + "\n")

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
