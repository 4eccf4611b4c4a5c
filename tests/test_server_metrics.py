"""Server metrics under Nomad's and hashicorp raft's names, reported by the actors that own them.

The actors take the agent's :class:`~actors.metrics.Metrics` (here one per
simulated server, on the virtual clock); without one (the simulator's
clusters, the benchmarks) they measure nothing and set no timer for it.
"""

from __future__ import annotations

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


def test_heartbeat_monitor_sets_the_active_gauge_every_interval() -> None:
    sched = Scheduler(5)
    m = Metrics(clock=lambda: sched.now, interval_s=1.0, retain_s=60.0)
    node = sched.add_node("s1", lambda env: env.spawn(
        HeartbeatMonitor, "heartbeats", config=HeartbeatConfig(stats_interval_s=5.0), metrics=m))
    sched.run_for(0.5)
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 0  # at once: no timers off the leader
    monitor = sched.actor_of(node.actors["heartbeats"])
    monitor.timers.reset("node-a", sched.now, sched.rng)
    monitor.timers.reset("node-b", sched.now, sched.rng)
    sched.run_for(4.0)
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 0  # not before the next interval
    sched.run_for(1.0)
    assert _totals(m)[0]["nomad.nomad.heartbeat.active"] == 2


def test_broker_reports_ready_unacked_and_pending_evaluations() -> None:
    sched = Scheduler(5)
    m = Metrics(clock=lambda: sched.now, interval_s=1.0, retain_s=60.0)
    node = sched.add_node("s1", lambda env: env.spawn(
        EvalBroker, "eval-broker", config=BrokerConfig(stats_interval_s=1.0), metrics=m))
    sched.run_for(0.5)
    broker = sched.actor_of(node.actors["eval-broker"])
    gauges = _totals(m)[0]
    assert {k: gauges[f"nomad.nomad.broker.{k}"] for k in ("total_ready", "total_unacked", "total_pending")} \
        == {"total_ready": 0, "total_unacked": 0, "total_pending": 0}
    # Two queued evaluations of a job being scheduled wait (pending); one of another job is ready.
    broker._jobs_running.add("web")
    broker._queue[:] = [(-50, 1, "e1", "web"), (-50, 2, "e2", "web"), (-50, 3, "e3", "api")]
    assert broker.broker_stats() == {"total_ready": 1, "total_unacked": 0, "total_pending": 2}
    sched.run_for(1.0)
    assert _totals(m)[0]["nomad.nomad.broker.total_pending"] == 2
