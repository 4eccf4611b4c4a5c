"""A server agent's Raft over real sockets: leader, peers, durability across restarts, corrupt stores."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import pytest

from tests.test_agent_process import AgentProc, agent_config, agents, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def _json(agent: AgentProc, path: str):
    status, body, _ = agent.get(path)
    assert status == 200, body
    return json.loads(body)


def test_single_server_leads_and_reports_itself_as_the_only_peer(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data")
    a = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    me = f"127.0.0.1:{cfg['rpc']}"
    assert _json(a, "/v1/status/leader") == me
    assert _json(a, "/v1/status/peers") == [me]
    conf = _json(a, "/v1/operator/raft/configuration")
    ident = conf["Servers"][0]["ID"]  # Raft protocol 3: the server's node ID, its address beside it
    assert len(ident) == 36 and ident != me
    assert conf["Servers"][0] | {"Node": "x"} == {"ID": ident, "Address": me, "Leader": True, "Voter": True,
                                                  "Node": "x", "RaftProtocol": "3"}
    status, body, _ = a.get("/v1/operator/raft/peer?address=1.2.3.4:4647", method="DELETE")
    assert (status, body) == (400, b"Removing a peer by address is not supported in the current raft "
                                   b"protocol version")
    status, body, _ = a.get("/v1/operator/raft/peer?id=1.2.3.4:4647", method="DELETE")  # a typo'd ID
    assert (status, body) == (500, b'id "1.2.3.4:4647" was not found in the Raft configuration')
    assert _json(a, "/v1/status/peers") == [me]
    wait_for(lambda: _json(a, "/v1/operator/raft/configuration")["Servers"][0]["Node"] != "(unknown)",
             "the server's gossip name in the Raft configuration", 10.0)
    # autopilot's health report (measured every 2 s on the leader)
    health = wait_for(lambda: a.get("/v1/operator/autopilot/health")[0] == 200
                      and _json(a, "/v1/operator/autopilot/health"), "autopilot health", 10.0)
    assert health["Healthy"] is True and health["FailureTolerance"] == 0 and health["Leader"] == ident
    assert health["Voters"] == [ident] and health["Servers"][0]["SerfStatus"] == "alive"
    assert health["Servers"][0]["Address"] == me
    assert health["Servers"][0]["StableSince"].endswith("Z") and health["Servers"][0]["LastIndex"] >= 1
    import subprocess
    import sys

    from tests.test_agent_process import ROOT

    cli = subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{cfg['http']}",
                          "operator", "autopilot", "health"], capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    # Nomad's formatAutopilotState layout.
    assert cli.stdout.startswith(f"Healthy: true\nFailureTolerance: 0\nLeader: {ident}\n"
                                 f"Voters:  \n\t{ident}\n"
                                 "Servers: \nID ")
    assert me in cli.stdout.splitlines()[-2] and "alive" in cli.stdout.splitlines()[-2]


def test_raft_state_survives_a_restart_on_the_same_data_dir(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data")
    a = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    index1 = _json(a, "/v1/operator/raft/configuration")["Index"]
    a.send(signal.SIGINT)
    assert a.wait_exit() == 1
    assert os.path.exists(tmp_path / "data" / "server" / "raft" / "raft.db")
    b = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    # The log is back (bootstrap entry, earlier no-ops) and a new term's no-op follows it.
    assert _json(b, "/v1/operator/raft/configuration")["Index"] > index1


def test_corrupt_raft_store_stops_start_up_with_one_clear_line(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data")
    a = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    a.send(signal.SIGTERM)
    a.wait_exit()
    db = tmp_path / "data" / "server" / "raft" / "raft.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE log SET data = X'deadbeef' WHERE idx = 1")
    con.commit()
    con.close()
    b = agents(["-config", cfg["path"]], http_port=cfg["http"])
    assert b.wait_exit() == 1
    errors = [line for line in b.err if line.startswith("==> ") and "WARNING" not in line]
    assert len(errors) == 1 and "corrupt" in errors[0] and "raft.db" in errors[0], b.detail()


def test_raft_configuration_without_stale_needs_a_leader_as_nomads_forwarded_rpc(agents, tmp_path):
    """Nomad forwards Operator.RaftGetConfiguration to the leader unless ?stale: a server that has no
    leader (here one of an expected three) holds the request, then answers 500 "No cluster leader";
    `list-peers -stale` answers from the server's own configuration (the outage recovery's view)."""
    import subprocess
    import sys
    import time

    from tests.test_agent_process import ROOT, free_port
    from tests.test_server_cluster import server_config

    serf = free_port()
    cfg = server_config(tmp_path, 0, [f"127.0.0.1:{serf}"], expect=3, serf=serf)
    a = agents(["-config", cfg["path"]], http_port=cfg["http"])
    def up() -> bool:
        try:
            return a.get("/v1/agent/self")[0] == 200
        except OSError:
            return False

    wait_for(up, "the agent's HTTP API", 30.0, a.detail)
    started = time.monotonic()
    status, body, _ = a.get("/v1/operator/raft/configuration")
    assert (status, body) == (500, b"No cluster leader")
    assert time.monotonic() - started >= 4.0  # held for a leader first (Nomad's RPCHoldTimeout, 5 s)
    assert _json(a, "/v1/operator/raft/configuration?stale=true")["Servers"] == []
    # Operator.SnapshotSave is forwarded to the leader the same way: held, then "No cluster leader";
    # a stale save is this server's own state.
    started = time.monotonic()
    status, body, _ = a.get("/v1/operator/snapshot")
    assert (status, body) == (500, b"No cluster leader")
    assert time.monotonic() - started >= 4.0
    assert a.get("/v1/operator/snapshot?stale=true")[0] == 200
    status, body, _ = a.get("/v1/operator/raft/configuration?stale=maybe")
    assert (status, body) == (400, b"Expect `true` or `false` for `stale` query string parameter")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{cfg['http']}",
                               "operator", "raft", "list-peers", *args], capture_output=True, text=True,
                              timeout=30)

    out = cli()
    assert out.returncode == 1
    assert out.stderr.strip() == ("Failed to retrieve raft configuration: Unexpected response code: 500 "
                                  "(No cluster leader)")
    assert cli("-stale").returncode == 0
