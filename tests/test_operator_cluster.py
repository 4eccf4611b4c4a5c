"""Operator requests on three real server processes: Raft leadership transfer, the autopilot configuration.

One cluster is shared by the module (started once, killed by PID at the
end); every wait has a deadline.  The tests leave the cluster whole, with
some leader.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.test_agent_process import AgentProc, free_port, wait_for
from tests.test_cli_jobs import nomad
from tests.test_http_jobs import call
from tests.test_server_cluster import CLUSTER_DEADLINE_S, get_json, server_config

pytestmark = pytest.mark.timeout(180)

TRANSFER = "/v1/operator/raft/transfer-leadership"
# A transfer completes within an election timeout (1 s); the other servers
# learn the new leader from its first heartbeat.  A loaded CI machine gets more.
LEADER_DEADLINE_S = 15.0


class Cluster:
    def __init__(self, procs: list[AgentProc], rpc: list[str]) -> None:
        self.procs, self.rpc = procs, rpc

    def leaders(self) -> set[Any]:
        return {get_json(p, "/v1/status/leader") for p in self.procs}

    def leader(self) -> str:
        """The one leader every server agrees on (waits for it)."""
        def agreed() -> str | None:
            seen = self.leaders()
            return next(iter(seen)) if len(seen) == 1 and None not in seen and "" not in seen else None
        return wait_for(agreed, "every server agreeing on one leader", LEADER_DEADLINE_S, self.detail)

    def raft_id(self, rpc: str) -> str:
        """The Raft ID of the server at *rpc*: its node ID (Raft protocol 3), as list-peers shows it."""
        servers = get_json(self.procs[0], "/v1/operator/raft/configuration?stale")["Servers"]
        return next(s["ID"] for s in servers if s["Address"] == rpc)

    def proc(self, rpc: str) -> AgentProc:
        return self.procs[self.rpc.index(rpc)]

    def followers(self) -> list[str]:
        leader = self.leader()
        return [r for r in self.rpc if r != leader]

    def detail(self) -> str:
        return "\n".join(p.detail() for p in self.procs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp, i, join, serf=serfs[i]) for i in range(3)]
    for i, c in enumerate(cfgs):  # each its own autopilot block: the leader's becomes everyone's
        with open(c["path"], "a") as f:
            f.write(f'[autopilot]\nmax_trailing_logs = {301 + i}\nlast_contact_threshold = "500ms"\n')
    procs = []
    try:
        for c in cfgs:
            p = AgentProc(["-config", c["path"]])
            p.http_port = c["http"]
            procs.append(p)
        c = Cluster(procs, [f"127.0.0.1:{cfg['rpc']}" for cfg in cfgs])

        def formed() -> bool:
            peers = [sorted(get_json(p, "/v1/status/peers") or []) for p in procs]
            return all(x == sorted(c.rpc) for x in peers) and len(c.leaders() - {"", None}) == 1
        wait_for(formed, "one Raft cluster of three", CLUSTER_DEADLINE_S, c.detail)
        yield c
    finally:
        for p in procs:
            p.kill()


def _wait_leader(c: Cluster, want: str) -> None:
    wait_for(lambda: c.leaders() == {want}, f"every server seeing {want} as the leader", LEADER_DEADLINE_S,
             c.detail)


# ---------------------------------------------------------------- leadership transfer


def test_a_follower_forwards_a_transfer_by_id_and_the_named_server_leads(cluster):
    old = cluster.leader()
    asked, target = cluster.followers()  # asked on one follower, for the other: the leader runs it
    started = time.monotonic()
    r = call(cluster.proc(asked).http_port, "PUT", f"{TRANSFER}?id={cluster.raft_id(target)}")
    assert r.status == 200, r.text
    assert r.json() == {"From": {"Address": old, "ID": cluster.raft_id(old)},
                        "To": {"Address": target, "ID": cluster.raft_id(target)}, "Noop": False, "Err": None}
    _wait_leader(cluster, target)
    assert time.monotonic() - started < LEADER_DEADLINE_S
    # The old leader follows, and the cluster takes writes again.
    assert get_json(cluster.proc(old), "/v1/status/leader") == target
    r = call(cluster.proc(old).http_port, "PUT", "/v1/operator/scheduler/configuration", {})
    assert r.status == 200 and r.json()["Updated"], r.text


def test_the_cli_transfers_by_address_from_the_leader_and_prints_nomads_line(cluster):
    old = cluster.leader()
    target = cluster.followers()[0]
    out = nomad(cluster.proc(old), "operator", "raft", "transfer-leadership", "-peer-address", target)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f'Transferred leadership to peer with address "{target}"'
    _wait_leader(cluster, target)
    # By id, with POST: back to the first leader.
    r = call(cluster.proc(target).http_port, "POST", f"{TRANSFER}?id={cluster.raft_id(old)}")
    assert r.status == 200, r.text
    _wait_leader(cluster, old)
    target_id = cluster.raft_id(target)
    out = nomad(cluster.proc(old), "operator", "raft", "transfer-leadership", f"-peer-id={target_id}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f'Transferred leadership to peer with id "{target_id}"'
    _wait_leader(cluster, target)


def test_transfer_errors_are_nomads_and_change_nothing(cluster):
    leader = cluster.leader()
    port = cluster.proc(cluster.followers()[0]).http_port
    for query, status, text in [
        ("", 400, "must specify id or address"),
        (f"?id={leader}&address={leader}", 400, "must specify either id or address"),
        ("?id=", 400, "id must be non-empty"),
        ("?address=", 400, "address must be non-empty"),
        (f"?id={leader}&id={leader}", 400, "must specify only one id"),
        ("?address=1.2.3.4:1&address=1.2.3.4:2", 400, "must specify only one address"),
        ("?address=nonsense", 400, 'address must be in IP:port format: "nonsense" is not an ip:port'),
        ("?address=127.0.0.1:1", 400, 'address "127.0.0.1:1" was not found in the Raft configuration'),
        ("?id=no-such-server", 400, 'id "no-such-server" was not found in the Raft configuration'),
    ]:
        r = call(port, "PUT", TRANSFER + query)
        assert (r.status, r.text) == (status, text), query
    for method in ("GET", "DELETE"):
        assert call(port, method, f"{TRANSFER}?id={leader}").status == 405
    # The leader itself: a no-op, as Nomad's.
    r = call(port, "PUT", f"{TRANSFER}?address={leader}")
    assert r.status == 200 and r.json()["Noop"] is True, r.text
    assert r.json()["To"] == {"ID": cluster.raft_id(leader), "Address": leader}
    out = nomad(cluster.proc(leader), "operator", "raft", "transfer-leadership")
    assert out.returncode == 1 and out.stderr.strip() == \
        "Error transferring leadership to peer: an address or id is required for the destination peer"
    out = nomad(cluster.proc(leader), "operator", "raft", "transfer-leadership", "-peer-id=x",
                "-peer-address=y")
    assert out.returncode == 1 and "cannot give both an address and id" in out.stderr
    out = nomad(cluster.proc(leader), "operator", "raft", "transfer-leadership", "-peer-id=ghost")
    assert out.returncode == 1 and out.stdout == "" and \
        'Unexpected response code: 400 (id "ghost" was not found in the Raft configuration)' in out.stderr
    assert cluster.leaders() == {leader}
    assert json.loads(cluster.proc(leader).get("/v1/status/peers")[1]) == sorted(cluster.rpc)


# ---------------------------------------------------------------- the autopilot configuration

AUTOPILOT = "/v1/operator/autopilot/configuration"


def _configs(c: Cluster) -> list[Any]:
    return [get_json(p, f"{AUTOPILOT}?stale") for p in c.procs]


def test_every_server_answers_the_one_replicated_configuration_and_a_change_reaches_all(cluster):
    first = wait_for(lambda: (got := _configs(cluster))[0] and got[0]["ModifyIndex"] > 0
                     and all(g == got[0] for g in got) and got[0],
                     "the same seeded configuration on every server", LEADER_DEADLINE_S, cluster.detail)
    # Seeded from one server's agent config (the leader at the time), then used by all three.
    assert first["MaxTrailingLogs"] in (301, 302, 303) and first["LastContactThreshold"] == "500ms"
    assert (first["CleanupDeadServers"], first["ServerStabilizationTime"]) == (True, "10s")

    follower = cluster.proc(cluster.followers()[0])
    changed = {**first, "MaxTrailingLogs": 42, "MinQuorum": 2, "ServerStabilizationTime": "15s"}
    r = call(follower.http_port, "PUT", f"{AUTOPILOT}?cas={first['ModifyIndex']}", changed)
    assert (r.status, r.json()) == (200, True), r.text  # forwarded to the leader like any write
    got = wait_for(lambda: (g := _configs(cluster))[0]["MaxTrailingLogs"] == 42 and all(x == g[0] for x in g)
                   and g[0], "the change on every server", LEADER_DEADLINE_S, cluster.detail)
    assert (got["MinQuorum"], got["ServerStabilizationTime"]) == (2, "15s")
    assert got["CreateIndex"] == first["CreateIndex"]
    stale = call(follower.http_port, "PUT", f"{AUTOPILOT}?cas={first['ModifyIndex']}", first)
    assert (stale.status, stale.json()) == (200, False)
    out = nomad(follower, "operator", "autopilot", "get-config")
    assert "MaxTrailingLogs = 42" in out.stdout.splitlines() and "MinQuorum = 2" in out.stdout.splitlines()


def test_the_health_report_follows_the_replicated_thresholds(cluster):
    leader = cluster.proc(cluster.leader())
    base = get_json(leader, AUTOPILOT)
    health = "/v1/operator/autopilot/health"
    wait_for(lambda: (get_json(leader, health) or {}).get("Healthy"), "a healthy cluster", LEADER_DEADLINE_S)
    try:
        # A follower that answered 1 ns ago is already too late: every follower unhealthy, on every server's
        # report (a follower asks the leader's autopilot).
        r = call(leader.http_port, "PUT", AUTOPILOT, {**base, "LastContactThreshold": "1ns"})
        assert r.status == 200, r.text

        def followers_unhealthy() -> bool:
            r = call(cluster.procs[0].http_port, "GET", health)
            if r.status != 429:  # Nomad's answer while the cluster is unhealthy
                return False
            got = r.json()
            followers = [s["Healthy"] for s in got["Servers"] if not s["Leader"]]
            return not got["Healthy"] and followers == [False, False]
        wait_for(followers_unhealthy, "followers unhealthy under a 1ns threshold", LEADER_DEADLINE_S)
        out = nomad(cluster.procs[0], "operator", "autopilot", "health")  # the 429 is an answer, not an error
        assert out.returncode == 0 and out.stdout.splitlines()[0].split() == ["Healthy:", "false"], out
    finally:
        r = call(leader.http_port, "PUT", AUTOPILOT, {**base, "LastContactThreshold": "500ms"})
        assert r.status == 200, r.text
    wait_for(lambda: (get_json(cluster.procs[0], health) or {}).get("Healthy"), "healthy again",
             LEADER_DEADLINE_S)


def test_system_gc_asked_of_a_follower_is_done_by_the_leader(cluster):
    """Nomad forwards System.GarbageCollect to the leader: a follower answers 200, not 500 'not leader'."""
    follower = cluster.proc(cluster.followers()[0])
    r = call(follower.http_port, "PUT", "/v1/system/gc")
    assert r.status == 200, r.text
    r = nomad(follower, "system", "gc")
    assert r.returncode == 0, r.stderr


def test_autopilot_health_reports_each_servers_version(cluster):
    """Nomad takes each server's Version from its serf member's build tag."""
    leader = cluster.proc(cluster.leader())
    got = wait_for(lambda: (lambda r: r.status in (200, 429) and r.json())(
        call(leader.http_port, "GET", "/v1/operator/autopilot/health")), "autopilot health",
        LEADER_DEADLINE_S)
    version = get_json(leader, "/v1/agent/self")["config"]["Version"]["Version"]
    assert [s["Version"] for s in got["Servers"]] == [version] * 3, got["Servers"]
