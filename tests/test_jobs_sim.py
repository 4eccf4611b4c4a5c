"""Jobs in the simulator: placement, lost work re-placed, drains, re-attach, and a fault-schedule property.

Every run checks after each slice that no node is over-committed by the
committed state (JobCluster.check) on top of the node rules
(NodeCheckers); :meth:`JobCluster.converged` is the steady-state rule:
every job's count runs exactly once on live nodes and the simulated
processes match.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.agent_messages import Leave
from actors.client.alloc_sync import AllocSyncConfig
from actors.scheduler.broker import BROKER
from actors.state.store import command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import SYNC, JobCluster, JobClusterConfig, sim_job
from tests.profiles import sim_examples

# Heartbeat TTL + grace is 10 s + 10 s with Nomad's defaults; a node is
# marked down and its work re-placed well within this.
LOST_BOUND_S = 60.0


def settle(c: JobCluster, bound_s: float = 120.0) -> list[str]:
    end = c.sched.now + bound_s
    while c.sched.now < end and c.converged():
        c.run(1.0)
    return c.converged()


def wait_leader(c: JobCluster, bound_s: float = 60.0) -> str:
    end = c.sched.now + bound_s
    while c.leader() is None and c.sched.now < end:
        c.run(0.5)
    leader = c.leader()
    assert leader is not None, "no leader elected"
    return leader


def boot(seed: int = 1, n_clients: int = 4, **kw: object) -> JobCluster:
    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=n_clients), **kw)  # type: ignore[arg-type]
    c = JobCluster(seed, cfg)
    c.run(30.0)
    assert c.statuses() == {"ready": n_clients}
    return c


def test_service_job_runs_its_count_once() -> None:
    c = boot()
    c.register(sim_job(count=6))
    assert settle(c) == []
    assert sum(d.starts for d in c.drivers.values()) == 6


def test_broker_runs_a_delayed_follow_up_once_its_wait_has_passed() -> None:
    # The broker's watch reads only the evaluations that became pending since
    # its last look; one still waiting then is picked up by the periodic full read.
    c = boot(seed=5)
    ev_id = c.register(sim_job(count=2))["EvalID"]
    assert settle(c) == []
    _, res = c.propose(command("eval_update", now=c.sched.now, evals=[
        {"ID": ev_id, "Status": "failed", "FollowUpWait": 60.0, "StatusDescription": "test"}]))
    (follow,) = res["evals"]
    c.run(30.0)
    assert c.checker.replica.tables["evals"][follow]["Status"] == "pending"  # still waiting
    c.run(45.0)
    assert c.checker.replica.tables["evals"][follow]["Status"] == "complete"
    assert settle(c) == []


def test_servers_schedule_only_their_enabled_scheduler_types() -> None:
    """server.enabled_schedulers = ["service"]: a batch job's evaluation waits pending (no leader
    here schedules batch) while a service job is placed, as Nomad's workers dequeue only their types."""
    from actors.scheduler.broker import BrokerConfig, enabled_schedulers

    assert enabled_schedulers(()) == ("service", "batch", "system", "sysbatch", "_core")
    assert enabled_schedulers(("batch", "sysbatch")) == ("batch", "sysbatch", "_core")
    c = boot(seed=7, broker=BrokerConfig(schedulers=enabled_schedulers(("service",))))
    web = c.register(sim_job("web", count=2))["EvalID"]
    nightly = c.register(sim_job("nightly", count=1, job_type="batch"))["EvalID"]
    c.run(20.0)
    evals = c.checker.replica.tables["evals"]
    assert evals[web]["Status"] == "complete" and evals[nightly]["Status"] == "pending"
    assert sum(d.starts for d in c.drivers.values()) == 2


def test_evaluations_arriving_together_are_planned_in_shared_entries() -> None:
    c = boot(seed=6)
    for i in range(12):
        c.register(sim_job(job_id=f"burst-{i}", count=1))
    assert settle(c) == []
    leader = c.leader()
    assert leader is not None
    stats = c.sched.nodes[leader].actors[BROKER].ask("status")
    assert stats["scheduled"] >= 12 and stats["plan_entries"] < stats["scheduled"]


def test_partitioned_client_work_is_lost_and_replaced_then_stopped_there() -> None:
    c = boot(seed=2)
    c.register(sim_job(count=6))
    assert settle(c) == []
    victim = c.client_of(c.allocs("web")[0]["NodeID"])
    assert victim is not None
    before = {a["ID"] for a in c.allocs("web") if c.client_of(a["NodeID"]) == victim}
    c.partition_clients([victim])
    c.run(LOST_BOUND_S)
    lost = {a["ID"] for a in c.allocs("web") if a["ClientStatus"] == "lost"}
    assert lost == before
    live = [a for a in c.allocs("web") if a["DesiredStatus"] == "run"]
    assert len(live) == 6 and all(c.client_of(a["NodeID"]) != victim for a in live)
    c.heal()
    assert settle(c) == []  # the old processes on the victim were stopped
    assert not any(p.alloc_id in before for p in c.drivers[victim].running())


def test_leader_crash_neither_loses_nor_duplicates_work() -> None:
    c = boot(seed=3)
    c.register(sim_job(count=5))
    assert settle(c) == []
    leader = c.leader()
    assert leader is not None
    c.crash(leader)
    wait_leader(c)
    c.register(sim_job("api", count=3))
    c.run(30.0)
    c.restart(leader)
    assert settle(c) == []
    assert len([a for a in c.allocs() if a["DesiredStatus"] == "run"]) == 8


def test_client_agent_restart_reattaches_instead_of_starting_twice() -> None:
    c = boot(seed=4)
    c.register(sim_job(count=4))
    assert settle(c) == []
    starts = sum(d.starts for d in c.drivers.values())
    client = c.client_of(c.allocs("web")[0]["NodeID"])
    assert client is not None
    c.crash(client)
    c.run(5.0)
    c.restart(client)
    c.run(30.0)
    assert settle(c) == []
    assert sum(d.starts for d in c.drivers.values()) == starts


def test_drain_moves_work_within_max_parallel_and_completes() -> None:
    c = boot(seed=5, n_clients=3)
    c.register(sim_job(count=4, cpu=200))
    assert settle(c) == []
    counts: dict[str, int] = {}
    for a in c.allocs("web"):
        counts[a["NodeID"]] = counts.get(a["NodeID"], 0) + 1
    busiest = max(counts, key=lambda n: counts[n])
    client = c.client_of(busiest)
    assert client is not None
    assert c.drain(client, deadline_s=600)["ok"]
    min_running = 4
    end = c.sched.now + 300
    while c.sched.now < end:
        c.run(0.5)
        running = [a for a in c.allocs("web") if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"
                   and not a.get("DesiredTransition", {}).get("Migrate")]
        min_running = min(min_running, len(running))
        node = c.nodes()[busiest]
        if not node.get("DrainStrategy"):
            break
    node = c.nodes()[busiest]
    assert not node.get("DrainStrategy") and node["SchedulingEligibility"] == "ineligible"
    assert node["Events"][-1]["Message"] == "Node drain complete"
    assert min_running >= 4 - 1  # Migrate.MaxParallel = 1
    assert settle(c) == []
    assert all(a["NodeID"] != busiest for a in c.allocs("web") if a["DesiredStatus"] == "run")


def test_a_drain_moves_one_allocation_at_a_time_each_after_its_replacement_is_healthy() -> None:
    """Nomad's drainer with migrate { max_parallel = 1 }: the next allocation is marked for migration
    only once the last one's replacement has its health, which its client decides after its task
    has run the migrate block's min_healthy_time (here 20 s)."""
    c = boot(seed=5, n_clients=3)
    migrate = {"MaxParallel": 1, "HealthCheck": "task_states", "MinHealthyTime": 20 * 10**9,
               "HealthyDeadline": 120 * 10**9}
    c.register(sim_job(count=6, cpu=200, Migrate=migrate))
    assert settle(c) == []
    counts: dict[str, int] = {}
    for a in c.allocs("web"):
        counts[a["NodeID"]] = counts.get(a["NodeID"], 0) + 1
    busiest = max(counts, key=lambda n: counts[n])
    assert counts[busiest] >= 2
    client = c.client_of(busiest)
    assert client is not None
    assert c.drain(client, deadline_s=900)["ok"]
    marked_at: dict[str, float] = {}
    end = c.sched.now + 600
    while c.sched.now < end and c.nodes()[busiest].get("DrainStrategy"):
        c.run(0.5)
        for a in c.allocs("web"):
            if a.get("DesiredTransition", {}).get("Migrate"):
                marked_at.setdefault(a["ID"], c.sched.now)
    assert not c.nodes()[busiest].get("DrainStrategy")
    times = sorted(marked_at.values())
    assert len(times) == counts[busiest]
    assert all(b - a >= 20 for a, b in zip(times, times[1:], strict=False)), times
    c.run(30.0)  # the drain is done once the last one stopped; its replacement's health comes after
    healthy = [a for a in c.allocs("web") if a["DesiredStatus"] == "run" and a["NodeID"] != busiest]
    assert len(healthy) == 6 and all((a.get("DeploymentStatus") or {}).get("Healthy") for a in healthy)


def test_drain_on_shutdown_moves_work_before_leaving() -> None:
    sync = AllocSyncConfig(wait_s=60.0, drain_deadline_s=120.0)
    c = boot(seed=6, n_clients=3, sync=sync)
    c.register(sim_job(count=3, cpu=200))
    assert settle(c) == []
    client = c.client_of(c.allocs("web")[0]["NodeID"])
    assert client is not None
    node_id = c.node_id(client)
    # The agent tells alloc-sync to leave on SIGTERM with leave_on_terminate.
    c.sched.nodes[client].actors[SYNC].tell(Leave(reply_to="collector", corr=1))
    end = c.sched.now + 200
    while c.sched.now < end:
        c.run(1.0)
        moved = all(a["NodeID"] != node_id for a in c.allocs("web") if a["DesiredStatus"] == "run"
                    and a["ClientStatus"] == "running")
        if moved and not c.drivers[client].running():
            break
    assert all(a["NodeID"] != node_id for a in c.allocs("web") if a["DesiredStatus"] == "run")
    assert not c.drivers[client].running()
    assert c.nodes()[node_id]["SchedulingEligibility"] == "ineligible"
    assert c.nodes()[node_id]["LastDrain"]["AccessorID"] == f"client:{node_id}"  # who asked, as Nomad


def test_drain_on_shutdown_stops_waiting_once_the_deadline_has_stopped_the_work() -> None:
    """Nomad's DrainSelf waits for the servers to end the drain, which they do at the deadline, not
    for the tasks to exit: a task slow to stop (kill_timeout 25 s) must not hold the leave up to the
    agent's own graceful timeout (deadline + 5 s), which would exit 1 and skip the server's leave."""
    sync = AllocSyncConfig(wait_s=60.0, drain_deadline_s=5.0)
    c = boot(seed=6, n_clients=2, sync=sync)
    job = sim_job(count=1, cpu=200)
    task = job["TaskGroups"][0]["Tasks"][0]
    task["Config"]["ignore_signals"] = True
    task["KillTimeout"] = 25 * 10**9
    c.register(job)
    assert settle(c) == []
    client = c.client_of(c.allocs("web")[0]["NodeID"])
    assert client is not None
    assert _leave(c, client, 60.0) < 5.0 + 3.0
    assert c.drivers[client].running()  # still being killed: the leave did not wait for it


def _leave(c: Any, client: str, wait_s: float) -> float:
    """Tell *client*'s alloc-sync to leave (a drain on shutdown); the virtual seconds until it finished
    (checked, waiting at most *wait_s*)."""
    actor = c.sched.nodes[client].actors[SYNC]
    sync_actor = actor._actor_weakref()
    start = c.sched.now
    actor.tell(Leave(reply_to="collector", corr=1))
    c.run(0.1)
    assert sync_actor._leave is not None
    while c.sched.now < start + wait_s and sync_actor._leave is not None:
        c.run(0.5)
    assert sync_actor._leave is None
    return c.sched.now - start


def test_drain_on_shutdown_is_not_held_up_by_a_batch_allocation_that_finished_here() -> None:
    """A batch allocation that ran to completion stays desired ``run``, and the copy the servers sent
    the client still says ``pending`` (a report does not send it back): the leave went by that copy,
    so a client that had finished a batch job waited out its whole drain deadline (and the agent its
    graceful timeout) although the drain was done in seconds."""
    sync = AllocSyncConfig(wait_s=60.0, drain_deadline_s=120.0)
    c = boot(seed=6, n_clients=2, sync=sync)
    c.register(sim_job("once", count=1, job_type="batch", run_for_s=5.0))
    c.run(30.0)
    [done] = c.allocs("once")
    assert (done["ClientStatus"], done["DesiredStatus"]) == ("complete", "run")
    client = c.client_of(done["NodeID"])
    assert client is not None
    took = _leave(c, client, 150.0)
    assert took < 15.0, took


def test_batch_job_runs_to_completion_once() -> None:
    c = boot(seed=7)
    c.register(sim_job("once", count=3, job_type="batch", run_for_s=20.0))
    c.run(90.0)
    allocs = c.allocs("once")
    assert len(allocs) == 3 and all(a["ClientStatus"] == "complete" for a in allocs)
    assert sum(d.starts for d in c.drivers.values()) == 3


# ------------------------------------------------------------ property: generated fault schedules
ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("crash_server"), st.integers(0, 2)),
    st.tuples(st.just("partition_client"), st.integers(0, 4)),
    st.tuples(st.just("crash_client"), st.integers(0, 4)),
    st.tuples(st.just("scale"), st.integers(0, 8)),
    st.tuples(st.just("drain"), st.integers(0, 4)),
    st.tuples(st.just("wait"), st.integers(1, 40)),
), min_size=1, max_size=8)


@settings(max_examples=sim_examples(12, env="JOB_SIM_EXAMPLES"), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), actions=ACTIONS)
def test_every_job_runs_exactly_once_after_any_fault_schedule(seed: int, actions: list[tuple[str, int]]) -> None:
    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=5)))
    c.run(30.0)
    c.register(sim_job(count=4, cpu=400))
    c.register(sim_job("api", count=2, cpu=300))
    c.run(10.0)
    down_servers: set[str] = set()
    drained: list[str] = []
    for action, arg in actions:
        if action == "crash_server":
            s = c.servers[arg]
            if s in down_servers:
                c.restart(s)
                down_servers.discard(s)
            elif len(down_servers) < 1:  # keep a quorum so the schedule can make progress
                c.crash(s)
                down_servers.add(s)
        elif action == "partition_client":
            c.partition_clients([c.clients[arg]])
        elif action == "crash_client":
            c.crash(c.clients[arg])
            c.run(2.0)
            c.restart(c.clients[arg])
        elif action == "scale":
            wait_leader(c)
            c.register(sim_job(count=arg, cpu=400))
        elif action == "drain":
            if len(drained) < 2:
                wait_leader(c)
                c.drain(c.clients[arg], deadline_s=60)
                drained.append(c.clients[arg])
        c.run(float(arg) if action == "wait" else 5.0)
    # Liveness phase: heal everything and wait.
    c.heal()
    for s in sorted(down_servers):
        c.restart(s)
    problems = settle(c, 400.0)
    assert problems == [], problems
    assert not c.overcommits


def test_a_task_that_keeps_failing_is_rescheduled_after_growing_delays() -> None:
    """Nomad's default service reschedule policy across the whole loop: the client fails the allocation
    (its restart policy used up), the servers wait 30 s, then 60 s, then 120 s before replacing it."""
    from actors.scheduler.scheduler import fail_time

    c = boot()
    job = sim_job("crashy", count=1, RestartPolicy={"Attempts": 0, "Mode": "fail"})
    job["TaskGroups"][0]["Tasks"][0]["Config"].update(run_for_s=2.0, exit_code=1)
    c.register(job)
    end = c.sched.now + 400.0
    while c.sched.now < end and len(c.allocs("crashy")) < 4:
        c.run(1.0)
    allocs = sorted(c.allocs("crashy"), key=lambda a: a["CreateTime"])
    assert len(allocs) >= 4, [(a["ClientStatus"], a["CreateTime"]) for a in allocs]
    by_id = {a["ID"]: a for a in allocs}
    waits = []
    for a in allocs[1:4]:
        prev = by_id[a["PreviousAllocation"]]
        event = a["RescheduleTracker"]["Events"][-1]
        assert prev["ClientStatus"] == "failed" and event["PrevAllocID"] == prev["ID"]
        waits.append((event["Delay"] // 10**9, a["CreateTime"] - fail_time(prev)))
    assert [d for d, _ in waits] == [30, 60, 120], waits
    # Each replacement came its delay after the task failed (the broker wakes at a waiting
    # evaluation's time): no sooner than the batching window (RESCHEDULE_WINDOW_S) allows, no
    # later than a scheduling pass and the client's report of the failure after it.
    assert all(d - 5.0 <= took <= d + 1.5 for d, took in waits), waits
    c.close()


def test_a_sticky_disks_update_replaces_each_allocation_on_its_node_and_its_data_follows() -> None:
    """ephemeral_disk { sticky = true }: a destructive update places each replacement on its previous
    allocation's node, whose client waits for the old one to end and moves its directories over."""
    c = boot()
    disk = {"EphemeralDisk": {"Sticky": True, "SizeMB": 500}}
    c.register(sim_job(count=3, cpu=100, mem=64, **disk))
    assert settle(c) == []
    before = {a["Name"]: a for a in c.allocs("web") if a["DesiredStatus"] == "run"}
    for a in before.values():
        assert a["Resources"]["DiskMB"] == 500
        c.alloc_dirs[c.client_of(a["NodeID"])].files[(a["ID"], "t", "state")] = a["ID"].encode()
    c.register(sim_job(count=3, cpu=150, mem=64, **disk))  # a new spec: each allocation is replaced
    end = c.sched.now + 120.0
    while c.sched.now < end and (c.converged() or any(
            a["JobVersion"] != 1 for a in c.allocs("web") if a["DesiredStatus"] == "run")):
        c.run(1.0)
    assert c.converged() == []
    after = {a["Name"]: a for a in c.allocs("web") if a["DesiredStatus"] == "run"}
    for name, a in after.items():
        old = before[name]
        assert a["PreviousAllocation"] == old["ID"] and a["NodeID"] == old["NodeID"]
        dirs = c.alloc_dirs[c.client_of(a["NodeID"])]
        assert (old["ID"], a["ID"]) in dirs.moved
        assert dirs.files[(a["ID"], "t", "state")] == old["ID"].encode()


def test_sysbatch_job_runs_once_on_every_client_and_a_client_joining_later_at_its_next_evaluation() -> None:
    """A sysbatch job: one allocation per ready client, each run to completion, the job dead; a client
    that joins afterwards gets none by joining (Nomad makes no node evaluation for a sysbatch job) but
    runs it once at the job's next evaluation (``nomad job eval``)."""
    c = JobCluster(11, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=4)))
    late = c.clients[-1]
    c.crash(late)  # not up yet: it joins later
    c.run(30.0)
    assert c.statuses() == {"ready": 3}
    c.register(sim_job("once", count=1, job_type="sysbatch", run_for_s=5.0))
    end = c.sched.now + 60.0
    while c.sched.now < end and c.checker.replica.tables["jobs"]["once"]["Status"] != "dead":
        c.run(1.0)
    allocs = c.allocs("once")
    assert len(allocs) == 3 and all(a["ClientStatus"] == "complete" for a in allocs)
    assert len({a["NodeID"] for a in allocs}) == 3
    assert sum(d.starts for d in c.drivers.values()) == 3
    c.restart(late)
    c.run(20.0)
    assert c.statuses() == {"ready": 4}
    assert len(c.allocs("once")) == 3 and c.drivers[late].starts == 0
    c.propose(command("job_evaluate", job_id="once", now=c.sched.now))
    end = c.sched.now + 60.0
    while c.sched.now < end and not (len(c.allocs("once")) == 4
                                     and c.checker.replica.tables["jobs"]["once"]["Status"] == "dead"):
        c.run(1.0)
    allocs = c.allocs("once")
    assert len(allocs) == 4 and all(a["ClientStatus"] == "complete" for a in allocs)
    assert c.drivers[late].starts == 1 and sum(d.starts for d in c.drivers.values()) == 4


def test_a_server_with_only_sysbatch_enabled_schedules_sysbatch_evaluations_only() -> None:
    """server.enabled_schedulers = ["sysbatch"]: the workers dequeue sysbatch evaluations (and _core),
    so a sysbatch job runs on every client while a batch job's evaluation waits."""
    from actors.scheduler.broker import BrokerConfig, enabled_schedulers

    c = boot(seed=5, n_clients=3, broker=BrokerConfig(schedulers=enabled_schedulers(("sysbatch",))))
    once = c.register(sim_job("once", count=1, job_type="sysbatch", run_for_s=2.0))["EvalID"]
    nightly = c.register(sim_job("nightly", count=1, job_type="batch"))["EvalID"]
    c.run(20.0)
    evals = c.checker.replica.tables["evals"]
    assert evals[once]["Status"] == "complete" and evals[nightly]["Status"] == "pending"
    assert sorted(a["ClientStatus"] for a in c.allocs("once")) == ["complete"] * 3


def test_checks_judge_what_changed_and_keep_finding_a_violation_until_it_is_gone() -> None:
    """JobCluster.check looks only at what was written since the last check: an over-commit written
    between checks is found, found again at every check while it lasts, and gone once it is."""
    import pytest

    c = boot(n_clients=2)
    node = c.node_id("c0001")
    cpu = c.nodes()[node]["NodeResources"]["Cpu"]["CpuShares"]
    hog = {"ID": "hog", "NodeID": node, "ClientStatus": "running", "DesiredStatus": "run", "JobID": "x",
           "TaskGroup": "g", "Resources": {"CPU": cpu + 1, "MemoryMB": 1}}
    for rec in (hog, {**hog, "ID": "svc", "Resources": {"CPU": 1, "MemoryMB": 1}}):
        with pytest.raises(AssertionError, match="over-committed"):
            c.propose(command("upsert", table="allocs", record=rec))
        with pytest.raises(AssertionError, match="over-committed"):
            c.check()
    c.overcommits.clear()
    c.propose(command("upsert", table="allocs", record={**hog, "DesiredStatus": "stop"}))
    c.run(5.0)
    assert not c.overcommits
    c.close()


def _shared_decoding_run(shared: int) -> tuple[JobCluster, dict[str, object]]:
    """A cluster's life with every kind of write the simulator makes: jobs registered, rescaled and
    stopped, a drain, client agents and the leader crashed and restarted (a restarted server
    replays its log)."""
    from sim.job_cluster import SharedDecoder

    class Verified(JobCluster):
        def _boot_server(self, env: Any) -> None:
            if self.decoder is not None and not self.decoder.verify:
                # Every decoding kept, to be re-encoded after the run.
                self.decoder = SharedDecoder(shared, verify=True)
            super()._boot_server(env)

    c = Verified(7, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=6), shared_decodes=shared))
    c.run(30.0)
    c.register(sim_job("web", count=5, cpu=200))
    c.register(sim_job("api", count=3, cpu=200))
    for i in range(6):
        c.run(10.0)
        c.register(sim_job("web", count=3 + i % 4, cpu=200))
        victim = c.clients[i % len(c.clients)]
        c.crash(victim)
        c.run(1.0)
        c.restart(victim)
    c.drain(c.clients[0])
    leader = wait_leader(c)
    c.crash(leader)
    wait_leader(c)
    c.stop_job("api")
    c.run(10.0)
    c.restart(leader)
    assert settle(c) == []
    c.run(10.0)
    return c, {t: dict(rows) for t, rows in c.checker.replica.tables.items()}


def test_servers_share_one_decoding_of_each_entry_which_no_apply_changes() -> None:
    """sim.job_cluster.SharedDecoder hands every server the same decoded command: sound only while
    no state store changes a command it applies or the parts of it its tables keep.  Every decoding
    shared over a run still encodes to its entry's bytes; every server's state equals the checker's
    (which decodes on its own), and equals a run's without sharing."""
    c, shared_state = _shared_decoding_run(256)
    decoder = c.decoder
    assert decoder is not None and decoder.hits > 2 * decoder.misses  # most servers took a shared one
    assert decoder.changed() == []
    replica = c.checker.replica
    for s, peer in c.live_peers().items():
        assert peer.state.applied_index == replica.applied_index, s
        assert peer.state.tables == replica.tables, s
    c.close()
    c, own_state = _shared_decoding_run(0)
    assert c.decoder is None
    assert own_state == shared_state
    c.close()


def test_after_its_server_restarts_a_client_gets_new_work_within_a_short_blocking_query() -> None:
    """A client's GetClientAllocs is parked on a server; restarted, the server has forgotten it, and
    nothing tells the client (Nomad's client sees its RPC connection reset and asks again after
    getAllocRetryIntv, 30 s).  Here the client only gives up on the query after its wait plus
    rpc_margin_s, so the agent's default wait bounds how long new work sits pending after a server
    restart: about a minute, not Nomad's 5-minute blocking time."""
    c = JobCluster(8, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1), sync=AllocSyncConfig()))
    c.run(30.0)
    assert c.statuses() == {"ready": 1}
    c.run(5.0)  # the client's blocking query is parked on the server
    (server,) = c.servers
    c.crash(server)
    c.restart(server)
    wait_leader(c)
    c.register(sim_job(count=1))
    placed_at, end = c.sched.now, c.sched.now + 300.0
    while c.sched.now < end and not any(a["ClientStatus"] == "running" for a in c.allocs("web")):
        c.run(1.0)
    assert any(a["ClientStatus"] == "running" for a in c.allocs("web"))
    sync = AllocSyncConfig()
    # The forgotten query given up, a retry (with its stagger) and a few seconds to place and start.
    assert c.sched.now - placed_at <= sync.wait_s + sync.rpc_margin_s + 2 * sync.retry_s + 5.0 <= 80.0


def test_converged_reports_a_stopped_allocation_the_servers_still_list_running(monkeypatch: Any) -> None:
    """The steady-state rule covers allocations told to stop too: one its client ended must end on
    the servers (a client retries its reports until a server takes them).  A client whose reports
    of an ended allocation never reach the servers is caught."""
    from actors.client.alloc_runner import AllocUpdates
    from actors.client.alloc_sync import AllocSync

    receive = AllocSync.receive

    def losing(self: AllocSync, message: Any) -> Any:  # every report of an ended allocation is lost
        if isinstance(message, AllocUpdates):
            message = AllocUpdates(updates=tuple(u for u in message.updates if u.client_status != "complete"))
        return receive(self, message)

    c = boot(seed=9, n_clients=2)
    c.register(sim_job(count=2))
    assert settle(c) == []
    monkeypatch.setattr(AllocSync, "receive", losing)
    c.stop_job("web")
    c.run(60.0)
    assert not c.running_tasks()
    problems = c.converged()
    want = "was stopped and no process runs it, but the servers list it running"
    assert len(problems) == 2 and all(want in p for p in problems), problems


def _restart_alloc_sync(c: JobCluster, client: str) -> None:
    """As the agent's supervisor restarts a failed alloc-sync: a new actor, empty."""
    from actors.client.alloc_sync import AllocSync

    node = c.sched.nodes[client]
    node.actors[SYNC].stop()
    node.env.spawn(AllocSync, SYNC, config=c.jcfg.sync, runner="alloc-runner")


def test_a_restarted_alloc_sync_asks_the_node_for_its_registration_again() -> None:
    """Without it the client is deaf: no allocation query, no report, until its node registers again.
    A job stopped just before the restart is heard, killed and reported; new work is placed."""
    c = boot(seed=12, n_clients=1)
    c.register(sim_job(count=2))
    assert settle(c) == []
    (client,) = c.clients
    c.stop_job("web")
    _restart_alloc_sync(c, client)
    c.run(60.0)
    assert not c.running_tasks()
    assert {a["ClientStatus"] for a in c.allocs("web")} == {"complete"}
    c.register(sim_job("api", count=1))
    assert settle(c) == []


def test_the_reports_a_restarted_alloc_sync_lost_are_made_again() -> None:
    """The runner reports only changes: what it told the alloc-sync that failed (tasks that ended,
    the report not yet written) would never reach the servers.  Told of the new one, it reports every
    allocation again, so the stopped ones end on the servers."""
    c = boot(seed=13, n_clients=1)
    c.register(sim_job(count=2))
    assert settle(c) == []
    (client,) = c.clients
    c.stop_job("web")
    end = c.sched.now + 30.0
    while c.running_tasks() and c.sched.now < end:
        c.run(0.01)
    assert not c.running_tasks()  # reported to alloc-sync, whose write waits for sync_interval_s
    assert {a["ClientStatus"] for a in c.allocs("web")} == {"running"}
    _restart_alloc_sync(c, client)
    c.run(30.0)
    assert {a["ClientStatus"] for a in c.allocs("web")} == {"complete"}
    assert c.converged() == []
