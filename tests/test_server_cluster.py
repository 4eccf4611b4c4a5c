"""Real server processes find each other by gossip and form one Raft cluster.

Three servers with ``bootstrap_expect = 3`` and ``retry_join`` bootstrap
exactly one cluster with one leader; a fourth joins and is added to Raft; a
server stopped with SIGINT under ``leave_on_interrupt`` shows ``left`` and
leaves the Raft peers; a SIGKILLed one shows ``failed`` until force-left.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.test_agent_process import AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(120)

CLUSTER_DEADLINE_S = 30.0  # gossip joins, a bootstrap and an election, on a loaded CI machine


def server_config(tmp: Any, i: int, join: list[str], expect: int = 3, serf: int = 0) -> dict[str, Any]:
    ports = {"http": free_port(), "rpc": free_port(), "serf": serf or free_port()}
    path = tmp / f"s{i}.toml"
    path.write_text("\n".join([
        f'name = "s{i}"', f'data_dir = "{tmp / f"data{i}"}"', 'bind_addr = "127.0.0.1"',
        "leave_on_interrupt = true",
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        # LAN timings: the WAN default (Nomad's) takes 30 s or more to mark a killed server failed.
        "[server]", "enabled = true", f"bootstrap_expect = {expect}", 'gossip_profile = "lan"',
        "[server.server_join]", f"retry_join = {json.dumps(join)}", 'retry_interval = "1s"',
    ]) + "\n")
    return {"path": str(path), **ports}


def get_json(agent: AgentProc, path: str) -> Any:
    try:
        status, body, _ = agent.get(path)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def members(agent: AgentProc) -> dict[str, str]:
    got = get_json(agent, "/v1/agent/members") or {"Members": []}
    return {m["Name"]: m["Status"] for m in got["Members"]}


def test_servers_form_one_cluster_and_follow_joins_leaves_and_failures(agents, tmp_path):
    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp_path, i, join, serf=serfs[i]) for i in range(3)]
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]

    def one_cluster() -> bool:
        leaders = {get_json(p, "/v1/status/leader") for p in procs}
        peers = [sorted(get_json(p, "/v1/status/peers") or []) for p in procs]
        return len(leaders) == 1 and "" not in leaders and None not in leaders \
            and all(len(x) == 3 and x == peers[0] for x in peers)

    wait_for(one_cluster, "one Raft cluster of three with one leader", CLUSTER_DEADLINE_S,
             lambda: "\n".join(p.detail() for p in procs))
    assert all(len(members(p)) == 3 for p in procs)

    # A fourth server joins through gossip and is added to Raft.
    c4 = server_config(tmp_path, 3, [f"127.0.0.1:{serfs[0]}"])
    p4 = agents(["-config", c4["path"]], http_port=c4["http"])
    rpc4 = f"127.0.0.1:{c4['rpc']}"
    wait_for(lambda: rpc4 in (get_json(procs[0], "/v1/status/peers") or []), "the fourth server in Raft",
             CLUSTER_DEADLINE_S, p4.detail)
    # Nomad's Status.Peers lists every server of the Raft configuration: the new one is there while it is
    # still a non-voter (autopilot promotes it server_stabilization_time, 10 s, after it joined).
    servers = get_json(procs[0], "/v1/operator/raft/configuration?stale=true")["Servers"]
    assert [s["Voter"] for s in servers if s["Address"] == rpc4] == [False], servers

    # SIGINT with leave_on_interrupt: left in gossip, gone from Raft, exit 0.
    p4.send(signal.SIGINT)
    assert p4.wait_exit(timeout_s=20) == 0, p4.detail()
    wait_for(lambda: members(procs[0]).get("s3.global") == "left", "s3 left", CLUSTER_DEADLINE_S)
    wait_for(lambda: rpc4 not in (get_json(procs[0], "/v1/status/peers") or []),
             "s3 removed from Raft", CLUSTER_DEADLINE_S)

    # SIGKILL: failed; force-leave makes it left.
    victim = procs[2]
    victim.kill()
    wait_for(lambda: members(procs[0]).get("s2.global") == "failed", "s2 failed", CLUSTER_DEADLINE_S)
    status, body, _ = procs[0].get("/v1/agent/force-leave?node=s2.global", method="PUT")
    assert status == 200, body
    wait_for(lambda: members(procs[0]).get("s2.global") in ("left", None), "s2 force-left",
             CLUSTER_DEADLINE_S)


def three_servers_and_leader(start: Any, tmp_path: Any) -> tuple[list[AgentProc], AgentProc]:
    """Three servers that find each other by retry_join, once they agree on one leader; and it."""
    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp_path, i, join, serf=serfs[i]) for i in range(3)]
    procs = [start(["-config", c["path"]], http_port=c["http"]) for c in cfgs]
    leader_rpc = wait_for(lambda: (ls := {get_json(p, "/v1/status/leader") for p in procs}) and len(ls) == 1
                          and "" not in ls and None not in ls and ls.pop(), "one leader", CLUSTER_DEADLINE_S,
                          lambda: "\n".join(p.detail() for p in procs))
    leader = next(p for p, c in zip(procs, cfgs, strict=True) if leader_rpc.endswith(f":{c['rpc']}"))
    return procs, leader


def test_writes_to_a_follower_while_the_leader_is_gone_wait_for_the_next_leader(agents, tmp_path):  # noqa: F811
    """SIGKILL the leader: the followers still believe in it until the election (a second or so).
    A job written through a follower in that window is forwarded to a connection the dead
    leader's host refuses -- so it cannot have been taken -- and is held for the next leader
    and made again (Nomad's RPC hold), not failed."""
    import http.client
    import time

    procs, leader = three_servers_and_leader(agents, tmp_path)
    follower = next(p for p in procs if p is not leader)

    def put(job_id: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", follower.http_port, timeout=20)
        try:
            task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}
            job = {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"],
                   "TaskGroups": [{"Name": "g", "Tasks": [task]}]}
            conn.request("PUT", "/v1/jobs", json.dumps({"Job": job}))
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    assert put("before")[0] == 200
    leader.kill()
    killed = time.monotonic()
    results = []
    for i in range(12):  # a write every ~0.25 s through the election and after it
        sent = time.monotonic() - killed
        results.append((round(sent, 2), *put(f"during-{i}")))
        wait_for(lambda i=i: time.monotonic() - killed >= 0.25 * (i + 1), "the next send time", 30)
    # Only a write that may have reached the leader as it died can fail (its outcome is unknown);
    # every one sent once the followers had seen its connection close waits for the next leader.
    late = [r for r in results if r[0] >= 0.2]
    assert late and all(status == 200 for _, status, _ in late), results


def test_a_leader_that_leaves_is_not_sent_to_by_its_node_id(agents, tmp_path):  # noqa: F811
    """SIGINT with leave_on_interrupt: the leader hands leadership over and leaves; nothing tries to
    reach it afterwards by its Raft ID (a node ID, not an address), which the transport would log as
    a bad node address on every rolling restart."""
    procs, leader = three_servers_and_leader(agents, tmp_path)
    rest = [p for p in procs if p is not leader]
    leader.send(signal.SIGINT)
    assert leader.wait_exit(timeout_s=30) == 0, leader.detail()
    wait_for(lambda: all(len(get_json(p, "/v1/status/peers") or []) == 2 for p in rest)
             and {get_json(p, "/v1/status/leader") for p in rest} != {""}, "two servers with a leader",
             CLUSTER_DEADLINE_S)
    assert not [line for p in rest for line in p.out + p.err if "bad node address" in line], \
        "\n".join(p.detail() for p in rest)


def test_a_server_back_with_its_old_log_after_a_peers_json_recovery_holds_the_leaders_configuration(
        agents, tmp_path):  # noqa: F811
    """Three servers lose two for good (SIGKILL, no leave); the survivor is recovered with a peers.json
    naming it alone.  One of the lost comes back with its data dir (not wiped, no peers.json): its log
    matches the recovered leader's, so it needs no snapshot, and its own log's configuration still names
    the third server.  The leader's first entry restates the recovered configuration whole, so once the
    leader has added it back, its own view (`list-peers -stale`) is the leader's: the same two voters by
    their node IDs, not the gone server too (which it would count toward its quorum)."""
    import subprocess
    import sys

    from tests.test_agent_process import ROOT

    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp_path, i, join, serf=serfs[i]) for i in range(3)]
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]
    wait_for(lambda: all(len(get_json(p, "/v1/status/peers") or []) == 3 for p in procs)
             and len({get_json(p, "/v1/status/leader") for p in procs} - {"", None}) == 1,
             "one Raft cluster of three", CLUSTER_DEADLINE_S, lambda: "\n".join(p.detail() for p in procs))

    def last_index(p: AgentProc) -> str | None:
        raft = ((get_json(p, "/v1/agent/self") or {}).get("stats") or {}).get("raft") or {}
        return raft.get("last_log_index")

    # Idle, every log ends at the same entry: the survivor's recovered snapshot is the returner's last.
    wait_for(lambda: len({last_index(p) for p in procs}) == 1 and None not in {last_index(p) for p in procs},
             "the three logs at one index", CLUSTER_DEADLINE_S)
    for p in procs:
        p.kill()
    ids = [(tmp_path / f"data{i}" / "server" / "node-id").read_text().strip() for i in range(3)]
    rpcs = [f"127.0.0.1:{c['rpc']}" for c in cfgs]
    (tmp_path / "data0" / "server" / "raft" / "peers.json").write_text(
        json.dumps([{"id": ids[0], "address": rpcs[0], "non_voter": False}]))
    survivor = agents(["-config", cfgs[0]["path"]], http_port=cfgs[0]["http"])
    wait_for(lambda: get_json(survivor, "/v1/status/leader") == rpcs[0], "the recovered leader",
             CLUSTER_DEADLINE_S, survivor.detail)
    back = agents(["-config", cfgs[1]["path"]], http_port=cfgs[1]["http"])

    def servers(p: AgentProc) -> list[tuple[str, str, bool]] | None:
        got = get_json(p, "/v1/operator/raft/configuration?stale=true")
        return None if got is None else sorted((s["ID"], s["Address"], s["Voter"]) for s in got["Servers"])

    want = sorted([(ids[0], rpcs[0], True), (ids[1], rpcs[1], True)])
    wait_for(lambda: servers(survivor) == want, "the returner a voter again", CLUSTER_DEADLINE_S,
             lambda: f"{servers(survivor)}\n{survivor.detail()}\n{back.detail()}")
    wait_for(lambda: servers(back) == want, "the returner holding the leader's configuration",
             CLUSTER_DEADLINE_S, lambda: f"{servers(back)}\n{back.detail()}")
    out = subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{cfgs[1]['http']}",
                          "operator", "raft", "list-peers", "-stale"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = sorted(line.split() for line in out.stdout.splitlines()[1:])
    assert sorted((r[1], r[2], r[4]) for r in rows) == [(i, a, "true") for i, a, _ in want], out.stdout
    assert ids[2] not in out.stdout and rpcs[2] not in out.stdout
