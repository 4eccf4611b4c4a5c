"""Review 22: the agent daemon as an operator sees it, against Nomad's (REVIEW22.md).

Flag parsing and fingerprint tests are in-process and fast; the /v1/agent/self
test starts one real agent (tests/test_agent_process.py's helpers, free ports).
"""

from __future__ import annotations

import http.client
import json
import os
import re

import pytest

from actors.client.fingerprint import PsutilProbe, attributes
from runtime.agent_main import usage
from runtime.config import ConfigError
from runtime.config_flags import parse_args
from tests.test_agent_process import AgentProc, agent_config, wait_for

# ---------------------------------------------------------------- flags


def test_acl_enabled_and_log_include_location_flags_work_as_nomads():
    """Nomad: `nomad agent -acl-enabled` and `-log-include-location` are flags (command.go readConfig)."""
    cfg, _, warnings = parse_args(["-dev", "-acl-enabled", "-log-include-location"])
    assert cfg.acl.enabled and cfg.log_include_location and warnings == []
    cfg, _, _ = parse_args(["-dev", "-acl-enabled=false"])
    assert not cfg.acl.enabled
    assert "-acl-enabled" in usage() and "-log-include-location" in usage()


def test_nomads_flags_for_unused_settings_warn_like_their_config_keys():
    """Every flag of Nomad's is known: one for a setting this agent does not use warns, as its
    config key does, instead of `flag provided but not defined`."""
    cfg, _, warnings = parse_args(["-dev", "-network-speed", "100", "-consul-address=127.0.0.1:8500",
                                   "-vault-address", "https://v:8200", "-acl-replication-token=x"])
    assert cfg.dev_mode
    assert warnings == [
        "WARNING: -network-speed: ignored: deprecated in Nomad; bandwidth is not scheduled "
        "(the flag for client.network_speed)",
        "WARNING: -consul-address: ignored: this agent does not integrate with Consul "
        "(the flag for consul.address)",
        "WARNING: -vault-address: ignored: this agent does not integrate with Vault "
        "(the flag for vault.address)",
    ]
    assert cfg.acl.replication_token == "x"  # a real setting now: the token replication presents


def test_nomads_dev_connect_flag_is_refused_not_ignored():
    with pytest.raises(ConfigError, match=r"-dev-connect: not supported by this agent"):
        parse_args(["-dev-connect"])
    assert parse_args(["-dev", "-dev-vault=false"])[0].dev_mode  # off: nothing asked for
    with pytest.raises(ConfigError, match=r"flag needs an argument: -consul-token"):
        parse_args(["-dev", "-consul-token"])
    with pytest.raises(ConfigError, match=r"flag provided but not defined: -no-such-flag"):
        parse_args(["-dev", "-no-such-flag"])


# ---------------------------------------------------------------- fingerprint


def test_real_host_probe_has_nomads_linux_attributes(tmp_path):
    """`nomad node status -verbose` on Linux lists these too (client/fingerprint cpu.go, host.go,
    nomad.go, signal.go); a real host's node had only the basic cpu/memory/kernel/os names."""
    attrs = attributes(PsutilProbe(str(tmp_path)).facts(), "2.0.6")
    for name in ("kernel.arch", "cpu.reservablecores", "cpu.usablecompute", "nomad.service_discovery",
                 "numa.node.count", "os.signals"):
        assert attrs.get(name), name
    assert attrs["cpu.usablecompute"] == attrs["cpu.totalcompute"]
    assert attrs["cpu.reservablecores"] == attrs["cpu.numcores"]
    assert attrs["kernel.arch"] == os.uname().machine
    signals = set(attrs["os.signals"].split(","))
    assert {"SIGABRT", "SIGHUP", "SIGINT", "SIGKILL", "SIGTERM", "SIGUSR1"} <= signals
    assert not any(s.startswith("SIGRT") for s in signals)


# ---------------------------------------------------------------- /v1/agent/self, nomad agent-info


@pytest.mark.timeout(30)
def test_agent_self_stats_show_the_leader_raft_and_serf(tmp_path):
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data",
                       tables="[plugin.raw_exec.config]\nenabled = true\n")
    agent = AgentProc(["-config", cfg["path"]])
    agent.http_port = cfg["http"]
    try:
        agent.wait_healthy()
        wait_for(lambda: agent.get("/v1/status/leader")[1].strip(b'"'), "a leader", detail=agent.detail)
        wait_for(lambda: json.loads(agent.get("/v1/agent/self")[1])["stats"]["client"]["heartbeat_ttl"]
                 != "0s", "the node registered", detail=agent.detail)
        stats = json.loads(agent.get("/v1/agent/self")[1])["stats"]
        leader = f"127.0.0.1:{cfg['rpc']}"
        assert stats["nomad"]["leader"] == "true"
        assert stats["nomad"]["leader_addr"] == f"127.0.0.1:{cfg['rpc']}"
        assert stats["raft"]["state"] == "Leader"
        assert int(stats["raft"]["applied_index"]) > 0
        assert stats["serf"]["members"] == "1"
        raft = stats["raft"]
        assert int(raft["term"]) >= 1 and raft["num_peers"] == "0" and raft["last_contact"] == "0"
        # Raft protocol 3: the server's ID is its node ID, its address beside it.
        assert re.fullmatch(r"\[\{Suffrage:Voter ID:[0-9a-f-]{36} Address:" + re.escape(leader) + r"\}\]",
                            raft["latest_configuration"]), raft["latest_configuration"]
        assert int(raft["commit_index"]) <= int(raft["last_log_index"])
        client = stats["client"]
        assert client["num_allocations"] == "0"
        assert client["heartbeat_ttl"] != "0s" and client["heartbeat_ttl"].endswith("s")
        # A job's allocation is counted by the client that runs it.
        job = {"Job": {"ID": "stats", "Name": "stats", "Type": "batch", "Datacenters": ["*"],
                       "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
                           "Name": "t", "Driver": "raw_exec",
                           "Config": {"command": "/bin/sh", "args": ["-c", "exit 0"]}}]}]}}
        conn = http.client.HTTPConnection("127.0.0.1", cfg["http"], timeout=10)
        conn.request("PUT", "/v1/jobs", json.dumps(job))
        assert conn.getresponse().status == 200
        conn.close()
        wait_for(lambda: json.loads(agent.get("/v1/agent/self")[1])["stats"]["client"]["num_allocations"]
                 == "1", "the client counting the job's allocation", detail=agent.detail)
    finally:
        agent.kill()


# ---------------------------------------------------------------- data dir permissions


def test_alloc_dir_is_nomads_0711_so_a_task_user_reaches_its_own_dirs(tmp_path):
    """Nomad makes the alloc dir 0711 (client.go): a `user = "nobody"` raw_exec task could not open
    its own $NOMAD_TASK_DIR here (`ls: cannot access .../t/local: Permission denied`) under a 0700 one."""
    import stat
    import types

    from runtime.agent_main import _client_state_dir

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    cfg, _, _ = parse_args(["-client", "-data-dir", str(data)])
    state_dir = _client_state_dir(cfg, types.SimpleNamespace(data_dir=str(data)))
    assert stat.S_IMODE(os.stat(data / "alloc").st_mode) == 0o711
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700


# ---------------------------------------------------------------- restart with a new address


@pytest.mark.timeout(40)
def test_single_server_restarted_with_a_new_advertise_address_becomes_leader(tmp_path):
    """Nomad's raft (protocol 3) finds this server in its stored configuration by server ID (the
    node ID in the data dir), not by address: restarted with a changed RPC advertise address it
    elects itself, and as leader rewrites its own address in the configuration."""
    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data")
    first = AgentProc(["-config", cfg["path"]])
    first.http_port = cfg["http"]
    try:
        first.wait_healthy()
        wait_for(lambda: first.get("/v1/status/leader")[1].strip(b'"'), "a leader", detail=first.detail)
    finally:
        first.send(15)
        first.wait_exit()
        first.kill()
    with open(cfg["path"], "a") as f:
        f.write('[advertise]\nrpc = "127.0.0.2"\n')
    second = AgentProc(["-config", cfg["path"]])
    second.http_port = cfg["http"]
    try:
        second.wait_line(r"serving the HTTP API", timeout_s=20.0)
        wait_for(lambda: second.get("/v1/status/leader")[1].strip(b'"'), "a leader after the restart",
                 timeout_s=3.0, detail=second.detail)

        def readdressed() -> bool:
            servers = json.loads(second.get("/v1/operator/raft/configuration")[1])["Servers"]
            return (len(servers) == 1 and servers[0]["Address"].startswith("127.0.0.2:")
                    and servers[0]["ID"] != servers[0]["Address"])
        wait_for(readdressed, "the configuration holding the server's ID at its new address", timeout_s=5.0,
                 detail=second.detail)
    finally:
        second.kill()


# ---------------------------------------------------------------- a taken RPC port


def test_taken_rpc_port_fails_start_with_gos_wording(tmp_path):
    """Nomad: `Error starting agent: Failed to start Nomad server: Failed to start RPC layer: listen tcp
    127.0.0.1:4647: bind: address already in use`; this agent printed Python's
    `[Errno 98] listen tcp ...: Address already in use: ('127.0.0.1', 4647)`."""
    import socket

    cfg = agent_config(tmp_path / "agent.toml", tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cfg["rpc"]))
        taken.listen()
        agent = AgentProc(["-config", cfg["path"]])
        try:
            assert agent.wait_exit() == 1
        finally:
            agent.kill()
    lines = agent.out + agent.err
    want = (f"==> Error starting agent: Failed to start RPC layer: listen tcp 127.0.0.1:{cfg['rpc']}: "
            "bind: address already in use")
    assert want in lines, agent.detail()


# ---------------------------------------------------------------- runtime metrics


def test_runtime_gauges_include_nomads_alloc_bytes():
    """nomad_runtime_alloc_bytes is go-metrics' heap gauge that Nomad's monitoring docs lead with."""
    from runtime.agent_main import RuntimeProbe

    gauges = dict(RuntimeProbe().sample())
    assert 0 < gauges[("runtime", "alloc_bytes")] <= gauges[("runtime", "sys_bytes")]


# ---------------------------------------------------------------- a dead server in `server members`


def _members(agent: AgentProc) -> dict[str, str]:
    return {m["Name"]: m["Status"] for m in json.loads(agent.get("/v1/agent/members")[1])["Members"]}


# Nomad's servers gossip with memberlist's WAN config (nomad/config.go): probe interval 5 s, probe
# timeout 3 s, suspicion_mult 6; with two members Lifeguard expects no confirmations, so a suspicion
# waits its minimum, 6 x 5 s = 30 s. A killed server is suspect within about 10 s and failed within
# about 40 s -- the bound below, which is why this test is slow (about 40 s) and out of the default run.
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_killed_server_is_failed_in_the_other_servers_members(tmp_path):
    import signal

    from tests.ports import free_port

    a = agent_config(tmp_path / "a.toml", tmp_path / "a")
    bp = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "b.toml").write_text(
        f'data_dir = "{tmp_path / "b"}"\nbind_addr = "127.0.0.1"\nname = "b"\n[ports]\n'
        + "".join(f"{k} = {v}\n" for k, v in bp.items())
        + f'[server]\nenabled = true\n[server.server_join]\nretry_join = ["127.0.0.1:{a["serf"]}"]\n')
    first = AgentProc(["-config", a["path"], "-node", "a"])
    first.http_port = a["http"]
    second = AgentProc(["-config", str(tmp_path / "b.toml")])
    try:
        first.wait_healthy()
        wait_for(lambda: _members(first).get("b.global") == "alive", "b alive", detail=first.detail)
        second.send(signal.SIGKILL)
        wait_for(lambda: _members(first).get("b.global") == "failed", "b failed", timeout_s=45.0,
                 detail=lambda: str(_members(first)))
    finally:
        first.kill()
        second.kill()
