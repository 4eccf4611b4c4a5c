"""Server metrics under Nomad's and hashicorp raft's names, reported by the actors that own them.

The actors take the agent's :class:`~actors.metrics.Metrics` (here one per
simulated server, on the virtual clock); without one (the simulator's
clusters, the benchmarks) they measure nothing and set no timer for it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from actors.metrics import Metrics
from actors.raft.core import LEADER
from actors.raft.peer import Propose, RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from actors.scheduler.broker import BrokerConfig, EvalBroker
from actors.server.heartbeat import HeartbeatConfig, HeartbeatMonitor
from actors.state.store import command
from sim.runtime import Scheduler

SERVERS = ("s1", "s2", "s3")


class Reply:
    def __init__(self) -> None:
        self.value: Any = None
        self.error: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def set_exception(self, exc_info: Any) -> None:
        self.error = exc_info[1]


def _totals(m: Metrics) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """(latest gauge values, counter sums, samples as [count, sum, max]) over every retained interval."""
    gauges: dict[str, float] = {}
    counters: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    for iv in m.intervals():
        for name, value, _ in iv.gauges.values():
            gauges[name] = value
        for name, _, agg in iv.counters.values():
            counters[name] = counters.get(name, 0.0) + agg.sum
        for name, _, agg in iv.samples.values():
            s = samples.setdefault(name, [0, 0.0, 0.0])
            s[0] += agg.count
            s[1] += agg.sum
            s[2] = max(s[2], agg.max)
    return gauges, counters, samples


def _cluster(metrics: bool = True) -> tuple[Scheduler, dict[str, Metrics]]:
    sched = Scheduler(11)
    registries = {name: Metrics(clock=lambda: sched.now, interval_s=10.0, retain_s=600.0) for name in SERVERS}
    disks = {name: MemoryStorage() for name in SERVERS}  # survive a crash, as a disk does
    for name in SERVERS:
        sched.add_node(name, lambda env, name=name: env.spawn(
            RaftPeer, "raft", storage=disks[name], bootstrap=SERVERS,
            config=RaftConfig(stats_interval_s=10.0), metrics=registries[name] if metrics else None))
    sched.run_for(5.0)
    return sched, registries


def _leader(sched: Scheduler) -> str:
    (leader,) = [n for n in SERVERS if sched.nodes[n].up
                 and sched.actor_of(sched.nodes[n].actors["raft"]).core.role == LEADER]
    return leader


def test_raft_reports_writes_commit_time_disk_writes_and_indexes_under_hashicorp_names() -> None:
    sched, registries = _cluster()
    leader = _leader(sched)
    ref = sched.nodes[leader].actors["raft"]
    replies = []
    for i in range(20):
        r = Reply()
        ref.tell(Propose(command("kv_put", key=f"k{i}", value="v"), r))
        replies.append(r)
        sched.run_for(0.05)
    sched.run_for(11.0)  # past a stats interval: the index gauges are set again
    assert all(r.value is not None and r.error is None for r in replies)

    gauges, counters, samples = _totals(registries[leader])
    peer = sched.actor_of(ref)
    assert counters["nomad.raft.apply"] == 20  # one per write proposed on the leader
    assert counters["nomad.raft.state.leader"] == 1
    # Every batch appended got a commit time; each is positive (two hops at least) and bounded.
    assert 1 <= samples["nomad.raft.commitTime"][0] <= 20
    assert 0 < samples["nomad.raft.commitTime"][1] / samples["nomad.raft.commitTime"][0] < 100
    assert samples["nomad.raft.leader.dispatchLog"][0] >= 1
    assert samples["nomad.raft.fsm.applyBatch"][0] >= 1
    assert samples["nomad.raft.leader.lastContact"][0] >= 2  # each follower, every 0.5 s
    assert gauges["nomad.raft.lastIndex"] == peer.core.last_index
    assert gauges["nomad.raft.appliedIndex"] == peer.state.applied_index >= 20
    assert gauges["nomad.state.snapshotIndex"] == max(peer.state.table_index.values())

    for name in SERVERS:
        if name == leader:
            continue
        gauges, counters, samples = _totals(registries[name])
        assert counters.get("nomad.raft.state.follower", 0) >= 1
        assert "nomad.raft.state.leader" not in counters and "nomad.raft.apply" not in counters
        assert samples["nomad.raft.rpc.appendEntries.storeLogs"][0] >= 1  # the follower's own log writes
        assert "nomad.raft.commitTime" not in samples and "nomad.raft.leader.lastContact" not in samples
        assert gauges["nomad.raft.appliedIndex"] >= 20


def test_a_new_leader_counts_its_election_and_the_old_one_its_return_to_follower() -> None:
    sched, registries = _cluster()
    old = _leader(sched)
    sched.nodes[old].crash()
    sched.run_for(10.0)
    new = _leader(sched)
    assert new != old
    assert _totals(registries[new])[1]["nomad.raft.state.leader"] == 1
    assert _totals(registries[new])[1]["nomad.raft.state.candidate"] >= 1
    sched.nodes[old].restart()  # its registry is the process's; a restarted actor reports into it again
    sched.run_for(5.0)
    assert _totals(registries[old])[1]["nomad.raft.state.follower"] >= 2  # at start, and after the restart


def test_without_a_registry_raft_sets_no_timer_for_metrics() -> None:
    sched, _ = _cluster(metrics=False)
    peer = sched.actor_of(sched.nodes[_leader(sched)].actors["raft"])
    assert not peer.timer_armed("raft_stats") and not peer.timer_armed("contact_sample")
    assert peer.metrics is None


def _one_actor(cls: type, name: str, **kwargs: Any) -> tuple[Scheduler, Metrics, Any]:
    """*cls* alone on a simulated server with a registry on the virtual clock, half a second in."""
    sched = Scheduler(5)
    m = Metrics(clock=lambda: sched.now, interval_s=1.0, retain_s=60.0)
    node = sched.add_node("s1", lambda env: env.spawn(cls, name, metrics=m, **kwargs))
    sched.run_for(0.5)
    return sched, m, sched.actor_of(node.actors[name])


def test_heartbeat_monitor_sets_the_active_gauge_every_interval() -> None:
    sched, m, monitor = _one_actor(HeartbeatMonitor, "heartbeats", config=HeartbeatConfig(stats_interval_s=5.0))
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 0  # at once: no timers off the leader
    monitor.timers.reset("node-a", sched.now, sched.rng)
    monitor.timers.reset("node-b", sched.now, sched.rng)
    sched.run_for(4.0)
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 0  # not before the next interval
    sched.run_for(1.0)
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 2


def test_broker_reports_ready_unacked_and_pending_evaluations() -> None:
    sched, m, broker = _one_actor(EvalBroker, "eval-broker", config=BrokerConfig(stats_interval_s=1.0))
    gauges = _totals(m)[0]
    assert {k: gauges[f"nomad.nomad.broker.{k}"] for k in ("total_ready", "total_unacked", "total_pending")} \
        == {"total_ready": 0, "total_unacked": 0, "total_pending": 0}
    # Two queued evaluations of a job being scheduled wait (pending); one of another job is ready.
    broker._jobs_running.add("web")
    broker._queue[:] = [(-50, 1, "e1", "web"), (-50, 2, "e2", "web"), (-50, 3, "e3", "api")]
    assert broker.broker_stats() == {"total_ready": 1, "total_unacked": 0, "total_pending": 2}
    sched.run_for(1.0)
    assert _totals(m)[0]["nomad.nomad.broker.total_pending"] == 2


# ---------------------------------------------------------------- clients (Nomad client.go emitStats)


class _FakeRunner:
    """Stands in for the alloc runner: answers AllocTotalsQuery with fixed totals."""

    def __init__(self, totals: Any) -> None:
        self.totals = totals
        self.asked: list[Any] = []


def _client_node(host_sampler: Any = None, allocation_metrics: bool = False) -> tuple[Scheduler, Metrics, Any]:
    from actors.client.alloc_runner import AllocTotals, AllocTotalsQuery
    from actors.client.alloc_sync import NodeRegistered
    from actors.client.fingerprint import FakeHost, FingerprintConfig, Fingerprinter, fake_facts
    from actors.client.messages import Resources
    from actors.client.stats import ClientStats
    from runtime.actor import NodeActor

    runner = _FakeRunner(AllocTotals(pending=1, running=2, terminal=3, cpu_mhz=700, memory_mb=512,
                                     memory_max_mb=1024, disk_mb=300,
                                     tasks=(("a1", "web", "default", "g", "t", 5 << 20, 12.5, 256, 500),)))

    class Runner(NodeActor):
        def receive(self, message: Any) -> Any:
            if isinstance(message, AllocTotalsQuery):
                runner.asked.append(message)
                totals = runner.totals if message.tasks else replace(runner.totals, tasks=())
                self.send(self.env.node, message.reply_to, totals)

    sched = Scheduler(3)
    m = Metrics(clock=lambda: sched.now, interval_s=1.0, retain_s=60.0)
    host = FakeHost(fake_facts("c1", "10.0.0.9", cores=2, mhz=2000, memory_gb=4, disk_gb=10))

    def boot(env: Any) -> None:
        env.spawn(Fingerprinter, "fingerprint", probe=host,
                  config=FingerprintConfig(reserved=Resources(cpu_mhz=100, memory_mb=256, disk_mb=1024)))
        env.spawn(Runner, "alloc-runner")
        env.spawn(ClientStats, "client-stats", metrics=m, datacenter="dc1", node_pool="default",
                  interval_s=1.0, host_sampler=host_sampler, allocation_metrics=allocation_metrics)

    node = sched.add_node("c1", boot)
    sched.run_for(0.5)
    node.actors["client-stats"].tell(NodeRegistered("node-1", "secret", ("s1",)))
    sched.run_for(1.0)
    return sched, m, runner


def _gauges_with_labels(m: Metrics) -> dict[str, tuple[float, dict[str, str]]]:
    out = {}
    for iv in m.intervals():
        for name, value, labels in iv.gauges.values():
            out[name + "".join(f";{v}" for k, v in labels if k in ("cpu", "disk", "task"))] = (value, dict(labels))
    return out


def test_client_stats_report_allocations_and_what_is_left_of_the_node() -> None:
    sched, m, runner = _client_node()
    g = _gauges_with_labels(m)
    value, labels = g["nomad.client.allocated.cpu"]
    assert value == 700
    assert labels == {"node_id": "node-1", "datacenter": "dc1", "node_class": "none", "node_pool": "default",
                      "node_status": "ready", "node_scheduling_eligibility": "eligible"}
    assert g["nomad.client.allocated.memory"][0] == 512 and g["nomad.client.allocated.max_memory"][0] == 1024
    assert g["nomad.client.allocated.disk"][0] == 300
    # The fingerprint's resources (2 x 2000 MHz, 4 GiB, the free half of 10 GiB) less reserved and allocated.
    assert g["nomad.client.unallocated.cpu"][0] == 4000 - 100 - 700
    assert g["nomad.client.unallocated.memory"][0] == 4096 - 256 - 512
    assert g["nomad.client.unallocated.disk"][0] == 5120 - 1024 - 300
    assert [g[f"nomad.client.allocations.{k}"][0] for k in ("pending", "running", "terminal", "blocked",
                                                          "migrating")] == [1, 2, 3, 0, 0]
    assert not any(k.startswith(("nomad.client.host.", "nomad.client.allocs.")) for k in g)  # both opt-in
    assert len(runner.asked) == 2 and not runner.asked[0].tasks  # at once, then each interval


def test_client_stats_publish_host_and_task_figures_when_asked() -> None:
    samples = [(("host", "memory", "total"), 4.0e9, ()), (("uptime",), 60.0, ()),
               (("host", "cpu", "idle"), 75.0, (("cpu", "cpu0"),)),
               (("host", "disk", "used_percent"), 40.0, (("disk", "/dev/sim0"),))]
    sched, m, runner = _client_node(host_sampler=lambda: samples, allocation_metrics=True)
    g = _gauges_with_labels(m)
    assert g["nomad.client.host.memory.total"][0] == 4.0e9 and g["nomad.client.uptime"][0] == 60.0
    assert g["nomad.client.host.cpu.idle;cpu0"][0] == 75.0
    assert g["nomad.client.host.disk.used_percent;/dev/sim0"][1]["node_id"] == "node-1"
    assert runner.asked[-1].tasks
    rss, labels = g["nomad.client.allocs.memory.rss;t"]
    assert rss == 5 << 20 and labels == {"alloc_id": "a1", "job": "web", "namespace": "default",
                                         "task_group": "g", "task": "t"}
    assert g["nomad.client.allocs.memory.allocated;t"][0] == 256 << 20
    assert g["nomad.client.allocs.cpu.total_percent;t"][0] == 12.5
    assert g["nomad.client.allocs.cpu.allocated;t"][0] == 500


def test_a_failing_host_sampler_is_counted_and_the_client_figures_still_come() -> None:
    def broken() -> list[Any]:
        raise OSError("no /proc")

    sched, m, _ = _client_node(host_sampler=broken)
    actor = sched.actor_of(sched.nodes["c1"].actors["client-stats"])
    assert actor.host_errors >= 2
    assert _gauges_with_labels(m)["nomad.client.allocated.cpu"][0] == 700


def test_alloc_totals_count_by_client_status_and_sum_the_live_ones() -> None:
    from actors.client.alloc_runner import alloc_totals

    res = {"CPU": 100, "MemoryMB": 64}
    t = alloc_totals([({"Resources": res}, "running"), ({"Resources": {**res, "MemoryMaxMB": 128}}, "pending"),
                      ({"Resources": res}, "complete"), ({"Resources": res}, "failed"),
                      ({"Resources": res, "DesiredStatus": "stop"}, "running")])
    assert (t.pending, t.running, t.terminal) == (1, 2, 2)
    assert (t.cpu_mhz, t.memory_mb, t.memory_max_mb) == (200, 128, 64 + 128)  # the stopping one holds nothing


def test_job_status_counts_jobs_by_status() -> None:
    from types import SimpleNamespace

    from actors.server.leader_metrics import job_status_counts

    jobs = {"a": {"Status": "running"}, "b": {"Status": "dead"}, "c": {"Status": "running"}, "d": {}}
    assert job_status_counts(SimpleNamespace(tables={"jobs": jobs})) == {"pending": 1, "running": 2, "dead": 1}


# ---------------------------------------------------------------- the leader's scheduling metrics


_JOB = {"ID": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                             "Config": {"command": "/bin/sleep"},
                                                             "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}
_NODE = {"ID": "n1", "SecretID": "s1", "Name": "n1", "Datacenter": "dc1", "Status": "ready",
         "SchedulingEligibility": "eligible", "NodeResources": {"Cpu": {"CpuShares": 1000},
                                                                "Memory": {"MemoryMB": 1024},
                                                                "Disk": {"DiskMB": 100_000}}}
_NODE_WITH_DRIVER = {**_NODE, "ID": "n2", "SecretID": "s2", "Name": "n2",
                     "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}}}


def _scheduling_server() -> tuple[Scheduler, Metrics, Any]:
    """One simulated server: Raft (its state timing each command) and the broker, on a registry."""
    from actors.state.store import StateStore

    sched = Scheduler(7)
    m = Metrics(clock=lambda: sched.now, interval_s=10.0, retain_s=600.0)
    state = StateStore()
    state.fsm_timing = (lambda: sched.now, m)

    def boot(env: Any) -> None:
        env.spawn(RaftPeer, "raft", storage=MemoryStorage(), bootstrap=("s1",), state=state, metrics=m,
                  leadership_subscribers=("eval-broker",))
        env.spawn(EvalBroker, "eval-broker", metrics=m, config=BrokerConfig(num_workers=1))

    node = sched.add_node("s1", boot)
    sched.run_for(3.0)
    return sched, m, node.actors["raft"]


def _propose(sched: Scheduler, ref: Any, data: bytes) -> Any:
    r = Reply()
    ref.tell(Propose(data, r))
    sched.run_for(0.5)
    assert r.error is None and r.value is not None
    return r.value[1]


def _labelled(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The newest interval's gauges called *name*, by their labels."""
    return {labels: value for n, value, labels in m.intervals()[-1].gauges.values() if n == name}


def test_leader_publishes_job_summaries_blocked_evals_and_times_its_scheduling_under_nomads_names() -> None:
    from actors.scheduler.job import canonical_job

    sched, m, raft = _scheduling_server()
    _propose(sched, raft, command("node_register", node=_NODE, now=1.0))  # it has no raw_exec driver
    _propose(sched, raft, command("job_register", job=canonical_job(_JOB), now=2.0))
    sched.run_for(2.0)  # scheduled, and the leader's gauges set again
    labels = (("job", "web"), ("task_group", "g"), ("namespace", "default"))
    assert _labelled(m, "nomad.nomad.job_summary.queued") == {labels: 2}  # nowhere to go: blocked
    assert _totals(m)[0]["nomad.nomad.blocked_evals.total_blocked"] == 1
    _propose(sched, raft, command("node_register", node={**_NODE_WITH_DRIVER, "Status": "initializing"},
                                  now=5.0))
    _propose(sched, raft, command("node_update_status", node_id="n2", status="ready", now=5.0))  # unblocks
    sched.run_for(2.0)
    # The job summaries are counted every job_summary_interval_s (5 s), the other gauges every second.
    assert _labelled(m, "nomad.nomad.job_summary.starting") == {labels: 0}
    assert _totals(m)[0]["nomad.nomad.blocked_evals.total_blocked"] == 0
    sched.run_for(4.0)
    assert _labelled(m, "nomad.nomad.job_summary.starting") == {labels: 2}  # placed, not yet running
    assert _labelled(m, "nomad.nomad.job_summary.queued") == {labels: 0}
    for gauge in ("queued", "complete", "failed", "running", "lost", "unknown"):
        assert _labelled(m, f"nomad.nomad.job_summary.{gauge}") == {labels: 0}, gauge
    gauges, _, samples = _totals(m)
    assert gauges["nomad.nomad.job_status.running"] + gauges["nomad.nomad.job_status.pending"] == 1
    assert {gauges[f"nomad.nomad.blocked_evals.{k}"] for k in ("total_blocked", "total_escaped",
                                                              "total_quota_limit")} == {0}
    # The broker's gauges per scheduler type seen, and the plan queue.
    assert gauges["nomad.nomad.broker.service.ready"] == gauges["nomad.nomad.broker.service.unacked"] == 0
    assert gauges["nomad.nomad.plan.queue_depth"] == 0
    # Two evaluations (the job's, then the blocked one), a plan each: the worker's and the plan
    # applier's timers, in ms.
    for name in ("nomad.nomad.worker.invoke_scheduler.service", "nomad.nomad.worker.submit_plan",
                 "nomad.nomad.plan.submit", "nomad.nomad.plan.apply"):
        assert samples[name][0] == 2, name
    assert samples["nomad.nomad.worker.invoke_scheduler.service"][1] >= samples["nomad.nomad.plan.submit"][1]
    # The broker's timers, labelled as Nomad's: queued until taken, taken until done, queued until done.
    timed = {(n, labels): agg.count for iv in m.intervals() for n, labels, agg in iv.samples.values()
             if n.startswith("nomad.nomad.broker.")}
    for name in ("wait_time", "process_time", "response_time"):
        by_trigger = {dict(labels)["triggered_by"]: count for (n, labels), count in timed.items()
                      if n == f"nomad.nomad.broker.{name}"}
        assert by_trigger == {"job-register": 1, "queued-allocs": 1}, (name, timed)
    ((_, labels), *_) = timed
    assert dict(labels) == {"job": "web", "namespace": "default", "eval_type": "service",
                            "triggered_by": dict(labels)["triggered_by"]}
    # Each command applied, under the name of Nomad's message type doing its work.
    for name in ("register_node", "register_job", "apply_plan_results", "node_status_update"):
        assert samples[f"nomad.nomad.fsm.{name}"][0] >= 1, name
    assert not any(n.startswith("nomad.nomad.fsm.node_register") for n in samples)


def test_a_purged_jobs_summary_gauges_are_no_longer_set_as_nomads_are_not() -> None:
    """Nomad never zeroes a purged job's job_summary gauges: it stops setting them, so /v1/metrics
    shows none from the next interval, and its Prometheus series expire."""
    from actors.scheduler.job import canonical_job

    sched, m, raft = _scheduling_server()
    _propose(sched, raft, command("node_register", node=_NODE_WITH_DRIVER, now=1.0))
    _propose(sched, raft, command("job_register", job=canonical_job(_JOB), now=2.0))
    sched.run_for(2.0)
    assert _labelled(m, "nomad.nomad.job_summary.starting")
    _propose(sched, raft, command("job_deregister", job_id="web", purge=True, now=5.0))
    sched.run_for(11.0)  # into the next 10 s interval
    assert _labelled(m, "nomad.nomad.job_summary.starting") == {}
    assert _totals(m)[0]["nomad.nomad.job_status.running"] == 0
    sched.run_for(60.0)  # past the Prometheus expiry
    assert "nomad_nomad_job_summary_starting" not in m.prometheus_text()


def test_job_summary_labels_split_a_dispatched_or_periodic_childs_id_as_nomad() -> None:
    from actors.server.leader_metrics import summary_labels

    base = (("job", "web"), ("task_group", "g"), ("namespace", "default"))
    assert summary_labels("web", "g", "default") == base
    assert summary_labels("p/dispatch-1700000000-ab12", "g", "ns") == (
        ("job", "p/dispatch-1700000000-ab12"), ("task_group", "g"), ("namespace", "ns"),
        ("parent_id", "p"), ("dispatch_id", "1700000000-ab12"))
    assert summary_labels("p/periodic-1700000000", "g", "ns")[3:] == (("parent_id", "p"),
                                                                     ("periodic_id", "1700000000"))


def test_leader_stats_leave_dispatched_children_out_when_told_and_count_blocked_evals() -> None:
    from actors.server.leader_metrics import leader_stats
    from actors.state.store import StateStore

    st = StateStore()
    group = {"Name": "g", "Count": 1}
    st.tables["jobs"]["p"] = {"ID": "p", "Status": "running", "TaskGroups": [group]}
    st.tables["jobs"]["p/dispatch-1-a"] = {"ID": "p/dispatch-1-a", "Dispatched": True, "Status": "running",
                                           "ParentID": "p", "TaskGroups": [group]}
    st.evals_by_status["blocked"].add("e1")
    every = leader_stats(st)
    assert sorted(r[0] for r in every["summaries"]) == ["p", "p/dispatch-1-a"]
    assert [r[0] for r in leader_stats(st, skip_dispatched=True)["summaries"]] == ["p"]
    assert every["blocked"] == 1 and every["job_status"] == {"pending": 0, "running": 2, "dead": 0}


def test_leader_stats_reuse_the_summary_rows_while_jobs_allocations_and_evaluations_stand(
        monkeypatch) -> None:
    """The rows are counted again only when one of the three tables moved (or was replaced)."""
    import actors.http_jobs
    from actors.server.leader_metrics import leader_stats
    from actors.state.store import StateStore, command

    st = StateStore()
    st.apply(1, command("upsert", table="jobs", id="j", record={
        "ID": "j", "Type": "service", "Status": "running",
        "TaskGroups": [{"Name": "g", "Count": 1}]}))
    counted = []
    real = actors.http_jobs.job_summaries
    monkeypatch.setattr(actors.http_jobs, "job_summaries", lambda s, ids: counted.append(ids) or real(s, ids))
    first = leader_stats(st)["summaries"]
    assert first == leader_stats(st)["summaries"] and len(counted) == 1  # nothing moved: reused
    st.apply(2, command("upsert", table="allocs", id="a1", record={
        "ID": "a1", "JobID": "j", "TaskGroup": "g", "ClientStatus": "running", "DesiredStatus": "run",
        "NodeID": "n", "Job": st.tables["jobs"]["j"]}))
    again = leader_stats(st)["summaries"]
    assert len(counted) == 2 and again != first and again[0][3][3] == 1  # the allocation counted: running
    assert leader_stats(st, skip_dispatched=True)["summaries"] == again and len(counted) == 3
    st.restore(st.snapshot(), 3)  # the very tables replaced: counted again, to the same rows
    assert leader_stats(st)["summaries"] == again and len(counted) == 4


def test_fsm_names_follow_nomads_message_types() -> None:
    from actors.state.fsm_metrics import fsm_key

    assert fsm_key({"op": "node_register"}) == (("nomad", "fsm", "register_node"), ())
    assert fsm_key({"op": "plan_apply_batch"}) == (("nomad", "fsm", "apply_plan_results"), ())
    assert fsm_key({"op": "var_set", "cas": 3}) == (("nomad", "fsm", "apply_sv_operation"), (("op", "cas"),))
    assert fsm_key({"op": "var_lock_acquire"})[1] == (("op", "lock-acquire"),)
    assert fsm_key({"op": "kv_put"}) is None and fsm_key({"op": 3}) is None


def test_set_gauges_is_set_gauge_of_each_key_with_shared_labels() -> None:
    """The batched form the job summaries use names, filters and stores each series as set_gauge does."""
    now = [100.0]
    one = Metrics(clock=lambda: now[0], hostname="h", prefix_filter=("-nomad.x.dropped",))
    many = Metrics(clock=lambda: now[0], hostname="h", prefix_filter=("-nomad.x.dropped",))
    labels = (("job", "a b"), ("task_group", "g"))
    keys = (("x", "kept"), ("x", "dropped"), ("x", "other"))
    for key, value in zip(keys, (1, 2, 3.5), strict=True):
        one.set_gauge(key, value, labels)
    many.set_gauges(keys, (1, 2, 3.5), labels)
    assert many.summary() == one.summary() and many.prometheus_text() == one.prometheus_text()
    assert [g["Name"] for g in many.summary()["Gauges"]] == ["nomad.x.kept", "nomad.x.other"]
    # Again (the remembered names), with one value changed, some time later; and keys given as lists.
    now[0] += 15.0
    for key, value in zip(keys, (1, 2, 4.5), strict=True):
        one.set_gauge(key, value, labels)
    many.set_gauges(keys, (1, 2, 4.5), labels)
    many.set_gauges([list(k) for k in keys], (1, 2, 4.5), list(labels))
    assert many.summary() == one.summary() and many.prometheus_text() == one.prometheus_text()
    try:
        many.set_gauges(keys, (1, 2), labels)
    except ValueError:
        pass
    else:
        raise AssertionError("set_gauges took fewer values than keys")


def test_waiting_evaluations_are_counted_and_each_labelled_with_its_parent_job() -> None:
    from actors.server.leader_metrics import leader_stats, parent_id, publish
    from actors.state.store import StateStore

    assert parent_id("p/dispatch-1-a") == "p" and parent_id("p/periodic-17") == "p"
    assert parent_id("web") == "web" and parent_id("/odd/dispatch-1") == "/odd/dispatch-1"  # Nomad's quirk
    st = StateStore()
    for eid, job, wait in (("e1", "p/dispatch-1-a", 130.0), ("e2", "web", 90.0), ("e3", "api", 0.0)):
        st.tables["evals"][eid] = {"ID": eid, "JobID": job, "Namespace": "default", "Status": "pending",
                                   "WaitUntil": wait}
        st.evals_by_status["pending"].add(eid)
    stats = leader_stats(st, now=100.0)
    assert sorted(stats["waiting"]) == [("p/dispatch-1-a", "default", 30.0)]  # e2's wait is over
    m = Metrics(clock=lambda: 0.0)
    publish(m, stats)
    gauges = {(n, labels): v for n, v, labels in m.intervals()[-1].gauges.values()}
    assert gauges[("nomad.nomad.broker.total_waiting", ())] == 1
    assert gauges[("nomad.nomad.broker.total_cancelable", ())] == 0
    assert gauges[("nomad.nomad.broker.eval_waiting", (("job", "p"), ("namespace", "default")))] == 30.0
