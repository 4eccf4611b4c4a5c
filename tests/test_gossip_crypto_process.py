"""Gossip encryption with real server processes on loopback (issue 10).

Two servers whose ``server.encrypt`` keys differ cannot join: ``nomad server
join`` fails with a clear error, both stay single-member, and the refusal is
counted (``nomad.memberlist.decrypt_failed``).  With the same key they join,
and the operator's rotation (``nomad operator gossip keyring -install``,
``-use``, ``-remove``) keeps them joined; the rotated keyring is persisted
in ``<data_dir>/server/serf.keyring`` (0600) and a restarted server uses it
(its config still names the old key) and rejoins.

Every agent gets free ports and its own data dir, is waited for with
deadlines, and is killed by PID at the end (the ``agents`` fixture).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
from typing import Any

import pytest

from runtime.gossip_crypto import generate_key
from tests.test_agent_process import ROOT, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(180)

# Start-up, a bootstrap and an election on a loaded 2-core machine.
CLUSTER_DEADLINE_S = 40.0
NOMAD_CLI = os.path.join(ROOT, "bin", "nomad")


def server(tmp: Any, name: str, key: str | None) -> dict[str, Any]:
    """A one-server-bootstrap config (each server is its own Raft cluster: only gossip is under test)."""
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    lines = [f'name = "{name}"', f'data_dir = "{tmp / f"data-{name}"}"', 'bind_addr = "127.0.0.1"',
             "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
             "[server]", "enabled = true", "bootstrap_expect = 1", 'gossip_profile = "local"']
    if key is not None:
        lines.append(f'encrypt = "{key}"')
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), "data_dir": str(tmp / f"data-{name}"), **ports}


def members(agent: AgentProc) -> dict[str, str]:
    try:
        status, body, _ = agent.get("/v1/agent/members")
    except OSError:
        return {}
    return {m["Name"]: m["Status"] for m in json.loads(body)["Members"]} if status == 200 else {}


def nomad(agent: AgentProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, NOMAD_CLI, f"-address=http://127.0.0.1:{agent.http_port}", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def gauge(agent: AgentProc, name: str) -> float:
    status, body, _ = agent.get("/v1/metrics")
    if status != 200:
        return 0.0
    return sum(g["Value"] for g in json.loads(body)["Gauges"] if g["Name"] == name)


def put(agent: AgentProc, path: str, body: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=30)
    try:
        conn.request("PUT", path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def start(agents: Any, cfg: dict[str, Any]) -> AgentProc:
    return agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()


def test_servers_with_different_keys_cannot_join(agents, tmp_path):
    a_cfg, b_cfg = server(tmp_path, "a", generate_key()), server(tmp_path, "b", generate_key())
    a, b = start(agents, a_cfg), start(agents, b_cfg)
    out = nomad(b, "server", "join", f"127.0.0.1:{a_cfg['serf']}")
    assert out.returncode == 1
    assert f"Failed to join 127.0.0.1:{a_cfg['serf']}" in out.stderr
    assert "server.encrypt" in out.stderr  # says what to check
    assert members(a) == {"a.global": "alive"} and members(b) == {"b.global": "alive"}
    # a dropped b's push-pull (a stream sealed with an unknown key): logged and counted.
    wait_for(lambda: gauge(a, "nomad.memberlist.decrypt_failed") >= 1, "the refusal in a's metrics",
             CLUSTER_DEADLINE_S, a.detail)
    assert any("failed to decrypt" in line for line in a.err + a.out), a.detail()
    # Neither agent came to harm: both still answer.
    assert a.healthy() and b.healthy()

    # The keyring endpoints refuse bad requests with a 4xx that says what is wrong.
    for body, code, says in ((b"", 400, "missing request body"), (b"{", 400, "Failed to decode"),
                             (b'["x"]', 400, "JSON object"), (b'{"Key": 5}', 400, "Key: want"),
                             (b'{"Key": "c2hvcnQ="}', 400, "16, 24 or 32 bytes, got 5")):
        status, text = put(a, "/v1/agent/keyring/install", body)
        assert (status, says in text) == (code, True), (body, status, text)
    assert put(a, "/v1/agent/keyring/rotate", b"{}")[0] == 404
    assert a.get("/v1/agent/keyring/install")[0] == 405


def test_plain_server_refuses_keyring_operations_and_a_corrupt_keyring_stops_start_up(agents, tmp_path):
    plain = start(agents, server(tmp_path, "p", None))
    status, text = put(plain, "/v1/agent/keyring/install", json.dumps({"Key": generate_key()}).encode())
    assert status == 400 and "not enabled" in text
    assert nomad(plain, "operator", "gossip", "keyring", "-list").returncode == 1

    cfg = server(tmp_path, "c", generate_key())
    os.makedirs(os.path.join(cfg["data_dir"], "server"), mode=0o700)
    with open(os.path.join(cfg["data_dir"], "server", "serf.keyring"), "w") as fh:
        fh.write("not json")
    bad = agents(["-config", cfg["path"]], http_port=cfg["http"])
    assert bad.wait_exit() == 1
    assert any("Error loading keyring" in line for line in bad.err), bad.detail()


def test_same_key_joins_and_rotation_keeps_the_cluster_joined_across_a_restart(agents, tmp_path):
    old, new = generate_key(), generate_key()
    a_cfg, b_cfg = server(tmp_path, "a", old), server(tmp_path, "b", old)
    a, b = start(agents, a_cfg), start(agents, b_cfg)
    both = {"a.global": "alive", "b.global": "alive"}
    out = nomad(b, "server", "join", f"127.0.0.1:{a_cfg['serf']}")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: members(a) == both and members(b) == both, "both servers in both member lists",
             CLUSTER_DEADLINE_S, lambda: a.detail() + b.detail())

    listed = nomad(a, "operator", "gossip", "keyring", "-list")
    assert listed.returncode == 0 and listed.stdout.split()[-1] == old, listed.stdout + listed.stderr
    for via, flag, key in ((a, "-install", new), (b, "-use", new), (a, "-remove", old)):
        out = nomad(via, "operator", "gossip", "keyring", flag, key)
        assert out.returncode == 0, f"{flag}: {out.stderr}"
        assert members(a) == both and members(b) == both
    status, body, _ = a.get("/v1/agent/keyring/list")
    assert status == 200 and json.loads(body) == {"Messages": {}, "Keys": {new: 2}, "NumNodes": 2}
    for cfg in (a_cfg, b_cfg):
        path = os.path.join(cfg["data_dir"], "server", "serf.keyring")
        assert json.load(open(path)) == [new]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The keys are secrets: never in the logs nor in /v1/agent/self (encrypt reads <redacted>).
    status, self_body, _ = a.get("/v1/agent/self")
    assert status == 200 and b'"EncryptKey":"<redacted>"' in self_body.replace(b" ", b"")
    for key in (old, new):
        assert key.encode() not in self_body
        assert not any(key in line for line in a.out + a.err + b.out + b.err)
    # Removing the key in use is refused on every member, and says why.
    out = nomad(a, "operator", "gossip", "keyring", "-remove", new)
    assert out.returncode == 1 and "Removing the primary key is not allowed" in out.stderr

    # Still gossiping under the new key: b restarts (its config still says the old key;
    # the persisted keyring wins) and rejoins.
    b.send(signal.SIGKILL)
    b.wait_exit()
    b = start(agents, b_cfg)
    assert any("server.encrypt is not in the keyring" in line for line in b.out + b.err), b.detail()
    out = nomad(b, "server", "join", f"127.0.0.1:{a_cfg['serf']}")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: members(a) == both and members(b) == both, "b back in both member lists",
             CLUSTER_DEADLINE_S, lambda: a.detail() + b.detail())
    assert gauge(a, "nomad.memberlist.decrypt_failed") == 0
