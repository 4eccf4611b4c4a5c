"""Disconnected clients: the group ``disconnect`` block, ``unknown`` allocations, reconnects."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.http_jobs import job_in, job_out
from actors.scheduler.job import JobError, canonical_job, disconnect_warnings
from actors.scheduler.jobdiff import job_diff
from runtime.hcl_job import HclJobError, parse_hcl_job
from sim.client_cluster import ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job
from tests.test_jobs_sim import LOST_BOUND_S, boot, settle

SEC = 10**9


def _file(group_extra: str, job_type: str = "service") -> str:
    return f'''job "web" {{
  type = "{job_type}"
  datacenters = ["dc1"]
  group "g" {{
    count = 2
    {group_extra}
    task "t" {{
      driver = "raw_exec"
      config {{ command = "/bin/sleep" }}
    }}
  }}
}}'''


# ------------------------------------------------------------ jobspec
def test_the_disconnect_block_maps_onto_the_groups_disconnect_strategy_with_nomads_defaults() -> None:
    j = parse_hcl_job(_file('disconnect {\n lost_after = "5m"\n reconcile = "keep_original"\n }'))
    assert j["TaskGroups"][0]["Disconnect"] == {"LostAfter": 300 * SEC, "Reconcile": "keep_original"}
    g = canonical_job(j)["TaskGroups"][0]
    assert g["Disconnect"] == {"LostAfter": 300 * SEC, "StopOnClientAfter": None, "Replace": True,
                               "Reconcile": "keep_original"}
    j = parse_hcl_job(_file('disconnect {\n stop_on_client_after = "90s"\n replace = false\n }'))
    assert canonical_job(j)["TaskGroups"][0]["Disconnect"] == {
        "LostAfter": 0, "StopOnClientAfter": 90 * SEC, "Replace": False, "Reconcile": "best_score"}
    # None given: none kept, so a job stored before is as it was.
    assert "Disconnect" not in canonical_job(parse_hcl_job(_file("")))["TaskGroups"][0]


@pytest.mark.parametrize("disconnect, job_type, message", [
    ({"LostAfter": 5 * SEC, "StopOnClientAfter": 5 * SEC}, "service",
     "Disconnect cannot be configured with both lost_after and stop_after"),
    ({"LostAfter": -1}, "service", "lost_after cannot be a negative duration"),
    ({"StopOnClientAfter": -1}, "service", "stop_after cannot be a negative duration"),
    ({"StopOnClientAfter": SEC}, "system", "stop_after can only be used with service or batch job types"),
    ({"Reconcile": "newest"}, "service", "reconcile option is invalid: newest"),
    ({"Replace": "yes"}, "service", "Replace: must be a boolean"),
])
def test_a_disconnect_strategy_nomad_refuses_is_refused_with_its_message(disconnect: dict, job_type: str,
                                                                          message: str) -> None:
    j = parse_hcl_job(_file("", job_type))
    j["TaskGroups"][0]["Disconnect"] = disconnect
    if job_type == "system":
        j["TaskGroups"][0]["Count"] = 1
    with pytest.raises(JobError, match=message):
        canonical_job(j)


def test_unknown_disconnect_keys_are_refused_by_the_job_file() -> None:
    with pytest.raises(HclJobError, match="'lost' not supported"):
        parse_hcl_job(_file('disconnect {\n lost = "5m"\n }'))


def test_the_deprecated_group_keys_are_kept_and_ignored_with_nomads_warnings() -> None:
    j = parse_hcl_job(_file('max_client_disconnect = "1m"\n stop_after_client_disconnect = "2m"'))
    g = canonical_job(j)["TaskGroups"][0]
    assert g["MaxClientDisconnect"] == 60 * SEC and g["StopAfterClientDisconnect"] == 120 * SEC
    assert "Disconnect" not in g  # Nomad 1.10+: they no longer map onto the disconnect block
    assert disconnect_warnings(canonical_job(j)) == [
        "MaxClientDisconnect is deprecated and ignored in favor of Disconnect.LostAfter",
        "StopAfterClientDisconnect is deprecated and ignored favor of Disconnect.StopOnClientAfter"]


def test_the_disconnect_block_survives_inspect_and_resubmission_and_shows_in_the_diff() -> None:
    job = canonical_job(parse_hcl_job(_file('disconnect {\n lost_after = "5m"\n }')))
    out = job_out(job)
    assert out["TaskGroups"][0]["Disconnect"]["LostAfter"] == 300 * SEC
    assert out["TaskGroups"][0]["MaxClientDisconnect"] is None
    assert canonical_job(job_in(out)) == job
    new = canonical_job(parse_hcl_job(_file('disconnect {\n lost_after = "10m"\n replace = false\n }')))
    (obj,) = [o for o in job_diff(job, new)["TaskGroups"][0]["Objects"] if o["Name"] == "Disconnect"]
    fields = {f["Name"]: (f["Old"], f["New"]) for f in obj["Fields"] if f["Type"] == "Edited"}
    assert fields == {"LostAfter": (str(300 * SEC), str(600 * SEC)), "Replace": ("true", "false")}


# ------------------------------------------------------------ the scheduler and the state store
def _cluster(reconcile: str = "best_score", replace: bool = True, lost_after_s: int = 300) -> Any:
    from tests.test_scheduler import Cluster, service

    c = Cluster()
    for i in range(3):
        c.node(i)
    c.register(**service("web", count=3, group={"Disconnect": {
        "LostAfter": lost_after_s * SEC, "Replace": replace, "Reconcile": reconcile}}))
    c.schedule()
    c.client("running")
    return c


def _on(c: Any, node: str) -> list[dict]:
    return sorted((a for a in c.state.tables["allocs"].values() if a["NodeID"] == node),
                  key=lambda a: a["ID"])


def _disconnect(c: Any, node: str) -> dict:
    res = c.apply("node_update_status", node_id=node, status="disconnected",
                  event={"Message": "Node heartbeat missed", "Subsystem": "Cluster"})
    assert res["ok"] and res["evals"], res  # any -> disconnected evaluates the node's jobs
    c.schedule(due_only=True)
    return res


def test_a_disconnected_nodes_allocations_go_unknown_are_replaced_and_wait_for_lost_after() -> None:
    from actors.scheduler.scheduler import live

    c = _cluster()
    node = "node-0000"
    (orig,) = _on(c, node)
    _disconnect(c, node)
    a = c.state.tables["allocs"][orig["ID"]]
    assert a["ClientStatus"] == "unknown" and a["DesiredStatus"] == "run"
    assert a["ClientDescription"] == "alloc is unknown since its node is disconnected"
    assert [s["Value"] for s in a["AllocStates"]] == ["unknown"]
    follow = c.state.tables["evals"][a["FollowupEvalID"]]
    assert follow["TriggeredBy"] == "max-disconnect-timeout" and follow["Status"] == "pending"
    assert follow["WaitUntil"] == c.now + 300
    assert follow["StatusDescription"] == "created for delayed disconnect timeout"
    rep = c.state.tables["allocs"][a["NextAllocation"]]
    assert rep["PreviousAllocation"] == a["ID"] and rep["Name"] == a["Name"] and rep["NodeID"] != node
    assert len(c.running("web")) == 4  # the unknown one and its replacement
    # Another evaluation meanwhile changes nothing: no second replacement, the unknown one waits.
    c.apply("node_evaluate", node_id="node-0001")
    c.schedule(due_only=True)
    assert len(c.running("web")) == 4 and c.state.tables["allocs"][a["ID"]]["ClientStatus"] == "unknown"
    # lost_after passes: the follow-up evaluation marks it lost; its replacement stays.
    c.now += 300
    c.schedule(due_only=True)
    a = c.state.tables["allocs"][a["ID"]]
    assert (a["ClientStatus"], a["DesiredStatus"]) == ("lost", "stop")
    assert a["DesiredDescription"] == "alloc is lost since its node is down"
    assert live(c.state.tables["allocs"][rep["ID"]]) and len(c.running("web")) == 3


def test_replace_false_places_no_replacement_while_the_node_is_disconnected() -> None:
    c = _cluster(replace=False)
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    assert c.state.tables["allocs"][orig["ID"]]["ClientStatus"] == "unknown"
    assert len(c.running("web")) == 3 and not c.state.tables["allocs"][orig["ID"]].get("NextAllocation")


def _reconnect(c: Any, node: str) -> None:
    """The node heartbeats again (initializing), its client reports its allocations running."""
    c.apply("node_update_status", node_id=node, status="initializing")
    assert c.state.tables["nodes"][node]["Status"] == "initializing"
    ups = [{"ID": a["ID"], "ClientStatus": "running"} for a in _on(c, node) if a["DesiredStatus"] == "run"]
    res = c.apply("alloc_client_update", allocs=ups, node_id=node, secret_id="s")
    assert any(c.state.tables["evals"][e]["TriggeredBy"] == "reconnect" for e in res["evals"])
    node_rec = c.state.tables["nodes"][node]
    assert node_rec["LastAllocUpdateIndex"] > node_rec["LastMissedHeartbeatIndex"] > 0
    c.schedule(due_only=True)


@pytest.mark.parametrize("reconcile, kept", [("keep_original", "orig"), ("best_score", "orig"),
                                              ("keep_replacement", "rep")])
def test_a_node_that_comes_back_keeps_one_copy_by_its_reconcile_option(reconcile: str, kept: str) -> None:
    c = _cluster(reconcile)
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    rep_id = c.state.tables["allocs"][orig["ID"]]["NextAllocation"]
    c.client("running", node=c.state.tables["allocs"][rep_id]["NodeID"])
    _reconnect(c, "node-0000")
    o, r = c.state.tables["allocs"][orig["ID"]], c.state.tables["allocs"][rep_id]
    if kept == "orig":
        assert o["DesiredStatus"] == "run" and o["ClientStatus"] == "running"
        assert [s["Value"] for s in o["AllocStates"]] == ["unknown", "running"]  # reconnected
        assert r["DesiredStatus"] == "stop"
        assert r["DesiredDescription"] == "alloc not needed due to disconnected client reconnect"
    else:
        assert o["DesiredStatus"] == "stop"
        assert o["DesiredDescription"] == "alloc not needed due to job update"
        assert r["DesiredStatus"] == "run"
    assert len([a for a in c.running("web") if a["ClientStatus"] != "complete"]) == 3


def test_a_reconnected_allocation_cancels_its_disconnect_timeout_evaluation() -> None:
    """Nomad's cancelFollowupEvalsForReconnect: once the client reports the unknown allocation again,
    its pending max-disconnect-timeout evaluation is canceled ("allocs reconnected"), not left waiting
    in the eval list for lost_after; a report from before REPORT_REV 5 leaves it as it was."""
    from actors.state.store import REPORT_REV

    for rev, status in ((REPORT_REV, "canceled"), (4, "pending")):
        c = _cluster("keep_original")
        node = "node-0000"
        (orig,) = _on(c, node)
        _disconnect(c, node)
        follow_id = c.state.tables["allocs"][orig["ID"]]["FollowupEvalID"]
        c.apply("node_update_status", node_id=node, status="initializing")
        c.apply("alloc_client_update", allocs=[{"ID": orig["ID"], "ClientStatus": "running"}], node_id=node,
                secret_id="s", rev=rev)
        follow = c.state.tables["evals"][follow_id]
        assert follow["Status"] == status, rev
        if rev == REPORT_REV:
            assert follow["StatusDescription"] == "allocs reconnected"
            assert c.state.tables["allocs"][orig["ID"]]["FollowupEvalID"] == ""
            assert follow_id not in {e["ID"] for e in c.state.evals_with_status("pending")}


def test_a_reconnecting_allocation_that_failed_meanwhile_is_stopped_and_its_replacement_kept() -> None:
    c = _cluster("keep_original")
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    rep_id = c.state.tables["allocs"][orig["ID"]]["NextAllocation"]
    c.apply("node_update_status", node_id="node-0000", status="initializing")
    c.apply("alloc_client_update", allocs=[{"ID": orig["ID"], "ClientStatus": "failed"}],
            node_id="node-0000", secret_id="s")
    c.schedule(due_only=True)
    o = c.state.tables["allocs"][orig["ID"]]
    assert (o["DesiredStatus"], o["ClientStatus"]) == ("stop", "failed")
    assert o["DesiredDescription"] == "alloc was rescheduled because it failed"
    assert c.state.tables["allocs"][rep_id]["DesiredStatus"] == "run" and len(c.running("web")) == 3


def test_a_node_without_a_disconnect_window_has_its_allocations_lost_at_once() -> None:
    c = _cluster(lost_after_s=0)
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    assert c.state.tables["allocs"][orig["ID"]]["ClientStatus"] == "lost"


def test_a_lost_allocation_its_client_stopped_takes_the_clients_final_state() -> None:
    """Nomad's nestedUpdateAllocFromClient: a client back from a down node stops the allocation the
    servers marked lost and reports it complete with its tasks dead; that is applied (before, the task
    stayed "running" in ``nomad alloc status`` for good).  A report that it runs is still not taken, and
    a report from before REPORT_REV 6 changes nothing."""
    from actors.state.store import REPORT_REV

    dead = {"t": {"State": "dead", "Failed": False}}
    for rev, want in ((REPORT_REV, "complete"), (5, "lost")):
        c = _cluster(lost_after_s=0)
        node = "node-0000"
        (orig,) = _on(c, node)
        _disconnect(c, node)
        assert c.state.tables["allocs"][orig["ID"]]["ClientStatus"] == "lost"
        c.apply("node_update_status", node_id=node, status="ready")
        c.apply("alloc_client_update", allocs=[{"ID": orig["ID"], "ClientStatus": "running"}], node_id=node,
                secret_id="s", rev=rev)
        assert c.state.tables["allocs"][orig["ID"]]["ClientStatus"] == "lost"  # not revived
        done = [{"ID": orig["ID"], "ClientStatus": "complete", "TaskStates": dead}]
        res = c.apply("alloc_client_update", allocs=done, node_id=node, secret_id="s", rev=rev)
        a = c.state.tables["allocs"][orig["ID"]]
        assert (a["ClientStatus"], a["DesiredStatus"]) == (want, "stop"), rev
        assert not res["evals"]  # it was already replaced: nothing to evaluate
        if want == "complete":
            assert a["TaskStates"] == dead
        assert len(c.running("web")) == 3


def test_node_disconnect_state_follows_nomads_rule() -> None:
    from actors.scheduler.disconnect import node_disconnect_state

    c = _cluster()
    allocs = _on(c, "node-0000")
    assert node_disconnect_state(allocs, c.now) == (True, True)
    assert node_disconnect_state([{**allocs[0], "DesiredStatus": "stop"}], c.now) == (True, False)
    gone = {**allocs[0], "ClientStatus": "unknown",
            "AllocStates": [{"Field": "ClientStatus", "Value": "unknown", "Time": c.now - 301}]}
    assert node_disconnect_state([gone], c.now) == (True, False)  # its window passed
    c2 = _cluster(lost_after_s=0)
    assert node_disconnect_state(_on(c2, "node-0000"), c.now) == (False, False)


# ------------------------------------------------------------ the simulator: a partitioned client
def _partitioned(seed: int, reconcile: str) -> tuple[Any, str, str, set[str]]:

    c = boot(seed=seed)
    c.register(sim_job(count=6, Disconnect={"LostAfter": 300 * SEC, "Reconcile": reconcile}))
    assert settle(c) == []
    node = c.allocs("web")[0]["NodeID"]
    victim = c.client_of(node)
    assert victim is not None
    before = {a["ID"] for a in c.allocs("web") if a["NodeID"] == node}
    c.partition_clients([victim])
    c.run(LOST_BOUND_S)
    assert c.checker.replica.tables["nodes"][node]["Status"] == "disconnected"
    assert {a["ID"] for a in c.allocs("web") if a["ClientStatus"] == "unknown"} == before
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert len(live) == 6 + len(before)  # each unknown one and its replacement elsewhere
    assert all(c.client_of(a["NodeID"]) != victim for a in live if a["ID"] not in before)
    assert all(p.alloc_id in {a["ID"] for a in live} for p in c.drivers[victim].running())  # still running
    return c, node, victim, before


def test_a_partition_shorter_than_lost_after_keeps_the_original_and_stops_the_replacement() -> None:

    c, node, victim, before = _partitioned(11, "keep_original")
    c.run(60.0)  # two minutes in all, within lost_after
    c.heal()
    assert settle(c) == []
    assert c.checker.replica.tables["nodes"][node]["Status"] == "ready"
    allocs = {a["ID"]: a for a in c.allocs("web")}
    assert all(allocs[i]["DesiredStatus"] == "run" and allocs[i]["ClientStatus"] == "running" for i in before)
    stopped = [a for a in allocs.values() if a.get("PreviousAllocation") in before]
    assert stopped and all(a["DesiredDescription"] == "alloc not needed due to disconnected client reconnect"
                           for a in stopped)
    assert {p.alloc_id for p in c.drivers[victim].running()} == before  # never restarted there
    assert c.drivers[victim].starts == len(before)


def test_a_partition_longer_than_lost_after_loses_the_allocations_for_good() -> None:

    c, node, victim, before = _partitioned(12, "best_score")
    c.run(300.0)
    allocs = {a["ID"]: a for a in c.allocs("web")}
    assert all(allocs[i]["ClientStatus"] == "lost" for i in before)
    assert c.checker.replica.tables["nodes"][node]["Status"] == "down"  # its window closed
    c.heal()
    assert settle(c) == []  # the old processes on the victim were stopped
    assert not any(p.alloc_id in before for p in c.drivers[victim].running())


def test_stop_on_client_after_the_client_stops_its_work_before_the_servers_replace_it() -> None:

    c = boot(seed=13)
    c.register(sim_job(count=6, Disconnect={"StopOnClientAfter": 60 * SEC}))
    assert settle(c) == []
    node = c.allocs("web")[0]["NodeID"]
    victim = c.client_of(node)
    assert victim is not None
    before = {a["ID"] for a in c.allocs("web") if a["NodeID"] == node}
    c.partition_clients([victim])
    replaced_at = stopped_at = None
    start = c.sched.now
    while c.sched.now < start + 200 and (replaced_at is None or stopped_at is None):
        c.run(1.0)
        if stopped_at is None and not any(p.alloc_id in before for p in c.drivers[victim].running()):
            stopped_at = c.sched.now
        if replaced_at is None and len([a for a in c.allocs("web") if a["DesiredStatus"] == "run"
                                        and a["NodeID"] != node]) == 6:
            replaced_at = c.sched.now
    assert stopped_at is not None and replaced_at is not None
    assert stopped_at <= replaced_at  # never both at once
    assert all(c.checker.replica.tables["allocs"][i]["ClientStatus"] == "lost" for i in before)
    # Its last heartbeat was at most a TTL (10-20 s) before the partition; the servers wait for
    # stop_on_client_after plus the kill timeout (5 s) after marking it lost.
    assert 40 <= stopped_at - start <= 61 and replaced_at - start >= 60 + 5
    c.heal()
    assert settle(c) == []


def test_an_unknown_allocation_shows_its_state_transitions_as_nomads_api_does() -> None:
    from actors.http_jobs import alloc_out

    c = _cluster()
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    out = alloc_out(c.state.tables["allocs"][orig["ID"]])
    (state,) = out["AllocStates"]
    assert state["Field"] == 0 and state["Value"] == "unknown" and state["Time"].endswith("Z")
    assert out["ClientStatus"] == "unknown" and out["FollowupEvalID"]


def test_a_system_jobs_allocation_on_a_disconnected_node_waits_unknown_and_reconnects() -> None:
    from tests.test_scheduler import Cluster, service

    c = Cluster()
    for i in range(2):
        c.node(i)
    c.register(**service("sys", count=1, Type="system", group={"Disconnect": {"LostAfter": 300 * SEC}}))
    c.schedule()
    c.client("running")
    (orig,) = _on(c, "node-0000")
    _disconnect(c, "node-0000")
    assert c.state.tables["allocs"][orig["ID"]]["ClientStatus"] == "unknown"
    assert len(c.running("sys")) == 2  # nothing placed in its stead: one per node
    _reconnect(c, "node-0000")
    a = c.state.tables["allocs"][orig["ID"]]
    assert (a["DesiredStatus"], a["ClientStatus"]) == ("run", "running")
    assert [s["Value"] for s in a["AllocStates"]] == ["unknown", "running"]


def test_a_returning_node_is_initializing_until_its_client_reports_its_unknown_allocations() -> None:
    from actors.server.node_endpoint import node_view

    c = _cluster()
    node = "node-0000"
    assert node_view(c.state, node, c.now, expiring=True)[2:] == ("ready", "disconnected")
    _disconnect(c, node)
    assert node_view(c.state, node, c.now, expiring=True)[2:] == ("initializing", "disconnected")
    c.apply("node_update_status", node_id=node, status="initializing")
    assert node_view(c.state, node, c.now)[2] == "initializing"  # nothing reported yet
    assert node_view(c.state, node, c.now, expiring=True)[3] == "down"  # initializing: not disconnected
    ups = [{"ID": a["ID"], "ClientStatus": "running"} for a in _on(c, node)]
    c.apply("alloc_client_update", allocs=ups, node_id=node, secret_id="s")
    assert node_view(c.state, node, c.now)[2] == "ready"
    res = c.apply("node_update_status", node_id=node, status="ready")
    assert res["evals"] and c.state.tables["nodes"][node]["LastMissedHeartbeatIndex"] == 0


def test_a_disconnected_nodes_reports_are_refused_with_nomads_message() -> None:
    c = _cluster()
    _disconnect(c, "node-0000")
    ups = [{"ID": a["ID"], "ClientStatus": "running"} for a in _on(c, "node-0000")]
    res = c.apply("alloc_client_update", allocs=ups, node_id="node-0000", secret_id="s")
    assert res == {"ok": False,
                   "error": "node node-0000 is not allowed to update allocs while in status disconnected"}


def test_a_disconnected_node_is_never_collected_and_a_dry_run_counts_the_disconnects() -> None:
    from actors.scheduler.dryrun import plan_job

    c = _cluster()
    assert len(_on(c, "node-0000")) == 1
    c.apply("node_update_status", node_id="node-0000", status="disconnected")
    job = c.state.tables["jobs"]["web"]
    updates = plan_job(c.state, job, False, c.now)["Annotations"]["DesiredTGUpdates"]["g"]
    assert updates["Disconnect"] == 1 and updates["Place"] == 1
    res = c.apply("node_gc", ids=["node-0000"], cutoff=c.now + 10**9, forced=True)
    assert res["deleted"] == [] and "node-0000" in c.state.tables["nodes"]


@settings(max_examples=int(os.environ.get("DISCONNECT_SIM_EXAMPLES", "10")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), actions=st.lists(st.one_of(
    st.tuples(st.just("partition_client"), st.integers(0, 4)),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("crash_client"), st.integers(0, 4)),
    st.tuples(st.just("crash_server"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.integers(1, 90)),
), min_size=1, max_size=8))
def test_disconnect_jobs_run_exactly_once_after_any_partition_schedule(
        seed: int, actions: list[tuple[str, int]]) -> None:
    """Jobs with each kind of disconnect block, clients partitioned and healed at random: the node
    rules hold throughout (no node down or disconnected before TTL + grace, none collected while
    disconnected), and once all heals every job runs its count exactly once."""

    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=5)))
    c.run(30.0)
    c.register(sim_job("keep", count=3, cpu=300,
                       Disconnect={"LostAfter": 120 * SEC, "Reconcile": "keep_original"}))
    c.register(sim_job("repl", count=2, cpu=300,
                       Disconnect={"LostAfter": 60 * SEC, "Reconcile": "keep_replacement"}))
    c.register(sim_job("stay", count=2, cpu=300, Disconnect={"LostAfter": 90 * SEC, "Replace": False}))
    c.register(sim_job("stop", count=2, cpu=300, Disconnect={"StopOnClientAfter": 30 * SEC}))
    c.run(10.0)
    down: set[str] = set()
    for action, arg in actions:
        if action == "partition_client":
            c.partition_clients([c.clients[arg]])
        elif action == "heal":
            c.heal()
        elif action == "crash_client":
            c.crash(c.clients[arg])
            c.run(2.0)
            c.restart(c.clients[arg])
        elif action == "crash_server":
            s = c.servers[arg]
            if s in down:
                c.restart(s)
                down.discard(s)
            elif not down:
                c.crash(s)
                down.add(s)
        c.run(float(arg) if action == "wait" else 5.0)
    c.heal()
    for s in sorted(down):
        c.restart(s)
    problems = settle(c, 900.0)
    assert problems == [], problems
    assert not c.overcommits


_DIGEST = """
import hashlib, logging
logging.disable(logging.WARNING)
from tests.test_disconnect import _partitioned
from tests.test_jobs_sim import settle
c, node, victim, before = _partitioned(11, "best_score")
c.run(60.0)
c.heal()
settle(c)
print(hashlib.sha256(c.checker.replica.digest()).hexdigest())
"""


def test_a_disconnect_and_reconnect_run_is_the_same_in_any_process() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen([sys.executable, "-c", _DIGEST], stdout=subprocess.PIPE, text=True, cwd=root,
                              env=dict(os.environ, PYTHONHASHSEED=h, PYTHONPATH=str(root)))
             for h in ("1", "4242")]  # side by side: the two hash seeds at once
    runs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64
