"""A job larger than one plan entry may hold is placed (and stopped) over follow-up evaluations.

Each evaluation's plan is one Raft entry, and an entry travels whole in one frame (4 MiB at most), so the
broker bounds the placements (``max_placements_per_entry``) and the stops of a stopped job
(``max_stops_per_entry``) an entry holds; the rest is done by a ``queued-allocs`` evaluation the first
one names as its NextEval.
"""

from __future__ import annotations

import collections
import re

import msgpack
import pytest

from actors.scheduler.broker import BrokerConfig, pending_evals, plan_batch_command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job
from tests.test_scheduler import Cluster, service


def _run_bounded(c: Cluster, max_place: int | None, max_stop: int | None = None) -> list[tuple[int, int]]:
    """Plan and apply every pending evaluation, one batch an entry: (placed, stopped) of each plan."""
    out = []
    for _ in range(100):
        ids = tuple(e[2] for e in sorted(pending_evals(c.state)))
        if not ids:
            return out
        data, planned, deferred = plan_batch_command(c.state, ids, c.now, max_place=max_place,
                                                     max_stop=max_stop)
        assert planned and set(planned).isdisjoint(deferred)
        c.index += 1
        res = c.state.apply(c.index, data)
        out += [(len(r["placed"]), len(p["Stop"])) for r, p in zip(res["results"], _plans(data), strict=True)]
    raise AssertionError("evaluations did not settle")


def _plans(data: bytes) -> list[dict]:
    return msgpack.unpackb(data, raw=False)["plans"]


def _names(c: Cluster, job_id: str) -> list[str]:
    return sorted(a["Name"] for a in c.running(job_id))


def test_a_plan_places_at_most_the_limit_and_its_evaluation_names_the_next() -> None:
    c = Cluster()
    for i in range(10):
        c.node(i, cpu=100_000, mem=100_000)
    c.register(**service("big", count=500, cpu=10, mem=10))
    (first,) = [e[2] for e in pending_evals(c.state)]
    counts = _run_bounded(c, max_place=200)
    assert counts == [(200, 0), (200, 0), (100, 0)]
    names = _names(c, "big")
    assert len(names) == len(set(names)) == 500
    assert names == sorted(f"big.g[{i}]" for i in range(500))
    evals = c.state.tables["evals"]
    chain, ev = [], evals[first]
    while ev.get("NextEval"):
        chain.append(ev["TriggeredBy"])
        ev = evals[ev["NextEval"]]
    chain.append(ev["TriggeredBy"])
    assert chain == ["job-register", "queued-allocs", "queued-allocs"]
    assert all(e["Status"] == "complete" for e in evals.values())
    # One deployment counts every placement of its job version, whichever evaluation made it.
    (d,) = c.state.tables["deployments"].values()
    assert d["TaskGroups"]["g"]["DesiredTotal"] == 500 and d["TaskGroups"]["g"]["PlacedAllocs"] == 500
    c.assert_not_overcommitted()


def test_an_entry_shares_its_limit_among_its_plans_and_leaves_the_rest_for_the_next() -> None:
    c = Cluster()
    for i in range(4):
        c.node(i, cpu=100_000, mem=100_000)
    for job in ("a", "b", "d"):
        c.register(**service(job, count=60, cpu=10, mem=10))
    ids = tuple(e[2] for e in sorted(pending_evals(c.state)))
    data, planned, deferred = plan_batch_command(c.state, ids, c.now, max_place=100)
    assert planned == ids[:2] and deferred == ids[2:]  # a's 60 and 40 of b's fill the entry
    assert [len(p["Place"]) for p in _plans(data)] == [60, 40]
    c.index += 1
    c.state.apply(c.index, data)
    _run_bounded(c, max_place=100)
    for job in ("a", "b", "d"):
        assert _names(c, job) == sorted(f"{job}.g[{i}]" for i in range(60))


def test_a_stopped_job_is_stopped_over_several_plans_when_it_is_larger_than_one() -> None:
    c = Cluster()
    for i in range(5):
        c.node(i, cpu=100_000, mem=100_000)
    c.register(**service("big", count=250, cpu=10, mem=10))
    c.schedule()
    c.client()
    c.apply("job_deregister", job_id="big", purge=False)
    assert _run_bounded(c, max_place=1000, max_stop=100) == [(0, 100), (0, 100), (0, 50)]
    assert c.running("big") == []
    assert all(a["DesiredStatus"] == "stop" for a in c.state.tables["allocs"].values())


def test_the_limits_must_be_positive() -> None:
    assert BrokerConfig().max_placements_per_entry == 2000
    for field in ("max_placements_per_entry", "max_stops_per_entry"):
        with pytest.raises(ValueError, match=field):
            BrokerConfig(**{field: 0})


def _big_cluster(n_clients: int, per_entry: int, n_servers: int = 3) -> JobCluster:
    cfg = JobClusterConfig(base=ClusterConfig(n_servers=n_servers, n_clients=n_clients),
                           broker=BrokerConfig(max_placements_per_entry=per_entry))
    return JobCluster(7, cfg)


def _settle(c: JobCluster, job_id: str, want: int, deadline_s: float = 120.0) -> list[dict]:
    end = c.sched.now + deadline_s
    while c.sched.now < end:
        c.run(2.0)
        run = [a for a in c.allocs(job_id) if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]
        if len(run) >= want:
            return run
    raise AssertionError(f"{job_id}: {collections.Counter(a['ClientStatus'] for a in c.allocs(job_id))}")


def _assert_placed_once(c: JobCluster, job_id: str, count: int) -> None:
    run = _settle(c, job_id, count)
    assert len(run) == count and len({a["Name"] for a in run}) == count
    assert len(c.allocs(job_id)) == count  # none lost, none duplicated
    assert not c.overcommits


def test_sim_a_job_larger_than_a_plan_entry_runs_completely_and_stops_completely() -> None:
    c = _big_cluster(20, per_entry=150)
    c.run(15)
    c.register(sim_job("web", 400, cpu=10, mem=10))
    c.register(sim_job("jobs", 400, cpu=10, mem=10, job_type="batch"))
    _assert_placed_once(c, "web", 400)
    _assert_placed_once(c, "jobs", 400)
    state = c.live_peers()[c.leader()].state
    follow = [e for e in state.tables["evals"].values() if e["TriggeredBy"] == "queued-allocs"]
    assert {e["JobID"] for e in follow} == {"web", "jobs"} and all(e["Status"] == "complete" for e in follow)
    stats = c.actor(c.leader(), "eval-broker").stats
    assert stats["placed"] == 800 and stats["refused"] == 0 and stats["failed"] == 0
    c.stop_job("web")
    end = c.sched.now + 60
    while any(a["DesiredStatus"] == "run" for a in c.allocs("web")) and c.sched.now < end:
        c.run(1.0)
    assert not any(a["DesiredStatus"] == "run" for a in c.allocs("web"))


def test_sim_evaluations_an_entry_has_no_room_for_wait_for_the_next_and_every_job_is_placed() -> None:
    # One server, so one worker (a leader keeps 1 of its 2) plans every batch: the evaluations queue up
    # behind it and share entries (with followers' workers too, each would more likely plan alone).
    c = _big_cluster(20, per_entry=150, n_servers=1)
    c.run(15)
    jobs = ("a", "b", "d", "e")
    for j in jobs:
        c.register(sim_job(j, 200, cpu=10, mem=10))
    for j in jobs:
        _assert_placed_once(c, j, 200)
    stats = c.actor(c.leader(), "eval-broker").stats
    assert stats["deferred"] > 0 and stats["placed"] == 800 and stats["plan_entries"] == 6
    assert stats["retries"] == 0 and stats["failed"] == 0


@pytest.mark.slow
def test_sim_a_count_10000_job_on_1000_nodes_runs_exactly_10000() -> None:
    c = _big_cluster(1000, per_entry=BrokerConfig().max_placements_per_entry)
    c.run(20)
    c.register(sim_job("big", 10_000, cpu=10, mem=10, job_type="batch"))
    _assert_placed_once(c, "big", 10_000)


def test_job_run_monitor_follows_the_next_evaluation_to_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime import cli, cli_jobs  # noqa: F401 - cli first (it imports cli_jobs), as bin/nomad does

    e1, e2 = "11111111-aaaa-bbbb-cccc-000000000001", "22222222-aaaa-bbbb-cccc-000000000002"
    evals = {e1: {"ID": e1, "JobID": "big", "Status": "complete", "NextEval": e2, "ModifyIndex": 5},
             e2: {"ID": e2, "JobID": "big", "Status": "complete", "ModifyIndex": 6}}
    allocs = {e1: [{"ID": "a" * 36, "NodeID": "n" * 36, "TaskGroup": "g"}],
              e2: [{"ID": "b" * 36, "NodeID": "n" * 36, "TaskGroup": "g"}]}

    def request(addr: str, method: str, path: str, *a: object, **k: object) -> object:
        eval_id = path.split("/")[3]
        return allocs[eval_id] if path.endswith("/allocations") else evals[eval_id]

    monkeypatch.setattr(cli_jobs, "request", request)
    out, code = cli_jobs.monitor("http://x", e1)
    assert code == 0
    lines = [re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ", "", line) for line in out.splitlines()]
    assert lines[0] == '==> Monitoring evaluation "11111111"'
    assert '==> Monitoring evaluation "22222222"' in lines
    assert sum(1 for line in lines if "created: node" in line) == 2
    assert lines[-1] == '==> Evaluation "22222222" finished with status "complete"'
    assert not any('"11111111" finished' in line for line in lines)


def test_the_job_summary_counts_what_the_follow_up_evaluation_has_still_to_place_as_queued() -> None:
    from actors.http_jobs import job_summaries

    c = Cluster()
    for i in range(5):
        c.node(i, cpu=100_000, mem=100_000)
    c.register(**service("big", count=500, cpu=10, mem=10))
    ids = tuple(e[2] for e in pending_evals(c.state))
    data, _, _ = plan_batch_command(c.state, ids, c.now, max_place=200)
    c.index += 1
    c.state.apply(c.index, data)
    s = job_summaries(c.state, ["big"])["big"]["Summary"]["g"]
    assert (s["Starting"], s["Queued"]) == (200, 300)
    _run_bounded(c, max_place=200)
    s = job_summaries(c.state, ["big"])["big"]["Summary"]["g"]
    assert (s["Starting"], s["Queued"]) == (500, 0)


@pytest.mark.slow
def test_sim_a_large_service_job_updates_drains_and_stops_completely() -> None:
    c = _big_cluster(100, per_entry=500)
    c.run(15)
    update = {"MaxParallel": 1000, "MinHealthyTime": 10**9, "HealthyDeadline": 60 * 10**9,
              "ProgressDeadline": 120 * 10**9}
    migrate = {"MaxParallel": 100, "MinHealthyTime": 10**9, "HealthyDeadline": 60 * 10**9}
    c.register(sim_job("web", 3000, cpu=10, mem=10, Update=update, Migrate=migrate))
    _assert_placed_once(c, "web", 3000)
    job = sim_job("web", 3000, cpu=10, mem=10, Update=update, Migrate=migrate)
    job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = ["7200"]
    c.register(job)
    end = c.sched.now + 300
    while c.sched.now < end:
        c.run(5.0)
        run = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
        if len(run) == 3000 and all(a["JobVersion"] == 1 and a["ClientStatus"] == "running" for a in run):
            break
    run = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert len(run) == 3000 and len({a["Name"] for a in run}) == 3000
    assert all(a["JobVersion"] == 1 and a["ClientStatus"] == "running" for a in run)
    assert not c.rollout_violations and not c.overcommits
    state = c.live_peers()[c.leader()].state
    assert sorted(d["Status"] for d in state.tables["deployments"].values()) == ["successful", "successful"]
    node = c.node_id("c0001")
    assert any(a["NodeID"] == node for a in run)
    c.drain("c0001")
    end = c.sched.now + 300
    while c.sched.now < end and any(a["NodeID"] == node and a["DesiredStatus"] == "run"
                                    for a in c.allocs("web")):
        c.run(5.0)
    run = _settle(c, "web", 3000)
    assert len(run) == 3000 and len({a["Name"] for a in run}) == 3000
    assert all(a["NodeID"] != node for a in run)
    c.stop_job("web")
    end = c.sched.now + 60
    while any(a["DesiredStatus"] == "run" for a in c.allocs("web")) and c.sched.now < end:
        c.run(1.0)
    assert not any(a["DesiredStatus"] == "run" for a in c.allocs("web"))


def test_a_system_job_on_more_nodes_than_one_plan_holds_reaches_every_node() -> None:
    c = Cluster()
    for i in range(25):
        c.node(i, cpu=1000, mem=1000)
    job = service("sys", count=1, cpu=10, mem=10)
    job["Type"] = "system"
    job["Update"] = {"MaxParallel": 100, "Stagger": 10**9}  # a rolling update of them all at once
    c.register(**job)
    assert _run_bounded(c, max_place=10) == [(10, 0), (10, 0), (5, 0)]
    assert sorted(a["NodeID"] for a in c.running("sys")) == sorted(c.state.tables["nodes"])
    # An update replaces in place on each node, a plan's worth at a time, never leaving a node without one.
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/bin/sleep", "args": ["2000"]}
    c.register(**job)
    assert [placed for placed, _ in _run_bounded(c, max_place=10)] == [10, 10, 5]
    run = c.running("sys")
    assert len(run) == 25 and {a["JobVersion"] for a in run} == {1}
    assert len({a["NodeID"] for a in run}) == 25


def test_a_down_node_s_many_allocations_are_replaced_over_several_plans() -> None:
    c = Cluster()
    down = c.node(0, cpu=100_000, mem=100_000)
    c.register(**service("big", count=40, cpu=10, mem=10))
    c.schedule()
    c.client()
    c.node(1, cpu=100_000, mem=100_000)
    c.apply("node_update_status", node_id=down, status="down")
    counts = _run_bounded(c, max_place=15)
    assert [placed for placed, _ in counts] == [15, 15, 10]
    assert counts[0][1] == 40  # the lost ones all stop at once; their replacements come a plan at a time
    names = _names(c, "big")
    assert names == sorted(f"big.g[{i}]" for i in range(40))
    assert all(a["NodeID"] != down for a in c.running("big"))


def test_a_sysbatch_job_on_more_nodes_than_one_plan_holds_runs_on_every_node() -> None:
    c = Cluster()
    for i in range(25):
        c.node(i, cpu=1000, mem=1000)
    job = service("once", count=2, cpu=10, mem=10)
    job["Type"] = "sysbatch"
    c.register(**job)
    assert _run_bounded(c, max_place=20) == [(20, 0), (20, 0), (10, 0)]
    placed = [(a["NodeID"], a["Name"]) for a in c.running("once")]
    assert sorted(placed) == sorted((n, f"once.g[{i}]") for n in c.state.tables["nodes"] for i in range(2))
    # A destructive update runs it again everywhere, a plan's worth at a time, each old one stopped with
    # its replacement (none stopped for a later plan's replacement).
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/bin/sleep", "args": ["2000"]}
    c.register(**job)
    assert _run_bounded(c, max_place=20) == [(20, 20), (20, 20), (10, 10)]
    run = c.running("once")
    assert len(run) == 50 and {a["JobVersion"] for a in run} == {1}


def test_a_sharp_count_drop_is_stopped_over_several_plans() -> None:
    c = Cluster()
    for i in range(5):
        c.node(i, cpu=100_000, mem=100_000)
    c.register(**service("big", count=250, cpu=10, mem=10))
    c.schedule()
    c.client()
    c.register(**service("big", count=10, cpu=10, mem=10))
    counts = _run_bounded(c, max_place=1000, max_stop=100)
    assert [stopped for _, stopped in counts] == [100, 100, 40]
    assert _names(c, "big") == sorted(f"big.g[{i}]" for i in range(10))
    # A group the job no longer has is stopped the same way.
    job = service("big", count=10, cpu=10, mem=10)
    job["TaskGroups"][0]["Name"] = "h"
    c.register(**job)
    counts = _run_bounded(c, max_place=1000, max_stop=4)
    assert [stopped for _, stopped in counts] == [4, 4, 2]
    assert sorted(a["TaskGroup"] for a in c.running("big")) == ["h"] * 10
