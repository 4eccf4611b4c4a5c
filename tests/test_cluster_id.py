"""The cluster ID (Nomad's ClusterMetadata) and IDs that differ between clusters.

The first leader writes the cluster's ID through Raft once; the state
machine derives evaluation, dispatch and scaling-policy IDs within it, and
the scheduler derives allocation and deployment IDs from evaluation IDs, so
two clusters running the same jobs make different IDs while every server
of one cluster makes the same ones.  A log or snapshot written before
cluster IDs existed (tests/data/pre_cluster_id_log.msgpack, recorded with
that code by tests/data/record_pre_cluster_id_log.py) must replay to the
IDs it made then, or servers replaying it would diverge from its records.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import msgpack
import pytest

from actors.http_snapshot import restore_commands
from actors.raft.peer import Propose, Read
from actors.scheduler.broker import pending_evals, plan_command
from actors.scheduler.job import canonical_job
from actors.server.cluster_id import ClusterIdEstablisher
from actors.state import cluster_meta
from actors.state.store import StateStore, check_snapshot, command
from sim.client_cluster import ClientCluster, ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

DATA = os.path.join(os.path.dirname(__file__), "data", "pre_cluster_id_log.msgpack")
ID_TABLES = ("evals", "allocs", "deployments", "scaling_policies", "jobs")
CID_A = "2f1f0d0e-7a55-4c1b-9a43-0c2b9f3f8a01"
CID_B = "9b7e4c21-3d6a-4f0e-8e12-5a4c3b2d1e0f"


def _recorded() -> dict[str, Any]:
    with open(DATA, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False)


# ------------------------------------------------------------ before cluster IDs
def test_a_log_written_before_cluster_ids_replays_to_the_ids_it_made() -> None:
    rec = _recorded()
    state = StateStore()
    for i, data in enumerate(rec["log"], start=1):
        res = state.apply(i, data)
        assert not (isinstance(res, dict) and "error" in res), (i, res)
    assert state.cluster_id() == ""
    assert {t: sorted(state.tables[t]) for t in ID_TABLES} == rec["ids"] | {
        "evals": sorted(set(rec["ids"]["evals"]) - {rec["after_eval"]}),
        "jobs": sorted(set(rec["ids"]["jobs"]) - {"late"})}
    # Record for record what the old code's state held at the same index.
    old = msgpack.unpackb(rec["snapshot"], raw=False)
    for table, records in old["tables"].items():
        assert state.tables[table] == records, table


def test_a_snapshot_from_before_cluster_ids_restores_and_derives_old_ids_until_one_is_set() -> None:
    rec = _recorded()
    index = len(rec["log"])
    state = StateStore()
    state.restore(rec["snapshot"], index)
    assert state.cluster_id() == "" and not state.tables[cluster_meta.TABLE]
    assert state.apply(index + 1, rec["after"])["EvalID"] == rec["after_eval"]
    assert {t: sorted(state.tables[t]) for t in ID_TABLES} == rec["ids"]
    # From the entry that sets the cluster ID on, IDs derive within it; earlier records stay as they were.
    res = state.apply(index + 2, command("cluster_meta_set", cluster_id=CID_A, create_time=5))
    assert res == {"ok": True, "index": index + 2, "created": True, "ClusterID": CID_A}
    again = StateStore()
    again.restore(rec["snapshot"], index)
    assert again.apply(index + 1, rec["after"])["EvalID"] == rec["after_eval"]
    again.apply(index + 2, command("noop"))
    # The same entry at the same index: the old derivation in one store, the cluster's in the other.
    late2 = canonical_job({"ID": "late2", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [
        {"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]})
    with_id = state.apply(index + 3, command("job_register", job=late2, now=2000.0))["EvalID"]
    without = again.apply(index + 3, command("job_register", job=late2, now=2000.0))["EvalID"]
    assert with_id != without
    assert without == str(uuid.uuid5(StateStore.EVAL_NS, f"{index + 3}/0"))  # the derivation of old
    assert set(rec["ids"]["evals"]) < set(state.tables["evals"])


# ------------------------------------------------------------ different clusters
def _cluster_log(cluster_id: str) -> dict[str, list[str]]:
    """The same jobs through a state machine whose first entry sets *cluster_id*; the IDs it made."""
    state, n = StateStore(), [0]

    def apply(data: bytes) -> Any:
        n[0] += 1
        res = state.apply(n[0], data)
        assert not (isinstance(res, dict) and res.get("error")), res
        return res

    def op(name: str, **args: Any) -> Any:
        return apply(command(name, now=1000.0, **args))

    op("cluster_meta_set", cluster_id=cluster_id, create_time=1)
    for i in range(2):
        op("node_register", node={
            "ID": f"node-{i}", "SecretID": "s", "Name": f"n{i}", "Datacenter": "dc1", "NodePool": "default",
            "Attributes": {"kernel.name": "linux"},
            "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
            "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192},
                              "Disk": {"DiskMB": 100000}}})
        op("node_update_status", node_id=f"node-{i}", status="ready")
    group = {"Name": "g", "Count": 2, "Scaling": {"Min": 1, "Max": 4},
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep"},
                        "Resources": {"CPU": 100, "MemoryMB": 64}}]}
    op("job_register", job=canonical_job({"ID": "web", "Type": "service", "Datacenters": ["dc1"],
                                          "Update": {"MaxParallel": 1}, "TaskGroups": [group]}))
    param = canonical_job({"ID": "report", "Type": "batch", "Datacenters": ["dc1"],
                           "ParameterizedJob": {"Payload": "optional"},
                           "TaskGroups": [{**group, "Count": 1, "Scaling": None}]})
    op("job_register", job=param)
    op("job_dispatch", job_id="report")
    for _ in range(10):
        pending = sorted(pending_evals(state, now=None))
        for _, _, eval_id, _ in pending:
            data, _ = plan_command(state, eval_id, 1000.0)
            if data is not None:
                apply(data)
    assert not pending_evals(state, now=None)
    return {t: sorted(state.tables[t]) for t in ID_TABLES}


def test_two_clusters_make_different_ids_for_the_same_jobs_and_one_cluster_always_the_same() -> None:
    a, a2, b = _cluster_log(CID_A), _cluster_log(CID_A), _cluster_log(CID_B)
    assert a == a2  # every server of a cluster applies the log alike
    for table in ("evals", "allocs", "deployments", "scaling_policies"):
        assert a[table] and len(a[table]) == len(b[table]), table
        assert not set(a[table]) & set(b[table]), table
    dispatched = [j for j in a["jobs"] if j.startswith("report/dispatch-")]
    assert dispatched and not set(dispatched) & set(b["jobs"])


# ------------------------------------------------------------ the record
def test_the_cluster_id_is_set_once_and_kept_in_snapshots() -> None:
    state = StateStore()
    set_a = command("cluster_meta_set", cluster_id=CID_A, create_time=1_700_000_000_000_000_000)
    assert state.apply(1, set_a)["created"] is True
    assert state.apply(2, set_a) == {"ok": True, "index": 2, "created": False, "ClusterID": CID_A}
    assert state.apply(3, command("cluster_meta_set", cluster_id=CID_B, create_time=2)) == {
        "ok": False, "error": f"refusing to set new cluster id, previous: {CID_A}, new: {CID_B}"}
    for i, bad in enumerate(("nope", CID_A.upper(), 7), start=4):
        res = state.apply(i, command("cluster_meta_set", cluster_id=bad, create_time=1))
        assert res["error"] == f"cluster ID must be a UUID, got {bad!r}"
    res = state.apply(7, command("cluster_meta_set", cluster_id=CID_A, create_time=-1))
    assert res["error"] == "cluster create time must be a non-negative integer, got -1"
    assert cluster_meta.current(state) == {"ClusterID": CID_A, "CreateTime": 1_700_000_000_000_000_000,
                                           "CreateIndex": 1, "ModifyIndex": 1}
    copy = StateStore()
    copy.restore(state.snapshot(), 7)
    assert copy.cluster_id() == CID_A and copy.tables == state.tables
    snap = msgpack.unpackb(state.snapshot(), raw=False)
    check_snapshot(state.snapshot())
    snap["tables"][cluster_meta.TABLE] = {"cluster": {"ClusterID": 7}}
    with pytest.raises(ValueError, match="is not the cluster's metadata"):
        check_snapshot(msgpack.packb(snap, use_bin_type=True))


# ------------------------------------------------------------ the simulator
def _wait(c: Any, cond: Any, bound_s: float = 60.0) -> None:
    end = c.sched.now + bound_s
    while not cond() and c.sched.now < end:
        c.run(0.5)
    assert cond()


def _metas(c: ClientCluster) -> dict[str, Any]:
    return {s: p.state.tables[cluster_meta.TABLE].get(cluster_meta.KEY) for s, p in c.live_peers().items()}


def test_the_first_leader_writes_the_cluster_id_and_a_later_leader_keeps_it() -> None:
    c = ClientCluster(3, ClusterConfig(n_servers=3, n_clients=0))
    try:
        _wait(c, lambda: c.leader() is not None and all(_metas(c).values()))
        (meta,) = {str(m) for m in _metas(c).values()}
        first = c.checker.replica.tables[cluster_meta.TABLE]["cluster"]
        uuid.UUID(first["ClusterID"])
        old = c.leader()
        assert old is not None
        c.crash(old)
        _wait(c, lambda: c.leader() not in (None, old))
        c.run(5.0)
        assert {str(m) for m in _metas(c).values()} == {meta}  # written once: no second record
        # An operator restores a snapshot taken before cluster IDs, then one of another cluster's: the
        # cluster keeps its own ID both times (it names the cluster, not the data restored into it).
        other = StateStore()
        other.apply(1, command("cluster_meta_set", cluster_id=CID_B, create_time=1))
        for n, blob in enumerate((StateStore().snapshot(), other.snapshot())):
            before = c.checker.replica.restore_index
            for data in restore_commands(blob, f"r{n}"):
                c.propose(data)
            c.run(5.0)
            assert c.checker.replica.restore_index > before  # restored
            assert {m["ClusterID"] for m in _metas(c).values()} == {first["ClusterID"]}
    finally:
        c.close()


def _sim_ids(seed: int) -> tuple[str, list[str]]:
    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=2)))
    try:
        _wait(c, lambda: c.leader() is not None and c.checker.replica.cluster_id() != ""
              and c.statuses() == {"ready": 2})
        ev = c.register(sim_job(count=2))["EvalID"]
        _wait(c, lambda: len(c.allocs("web")) == 2 and c.converged() == [])
        return c.checker.replica.cluster_id(), sorted([ev, *(a["ID"] for a in c.allocs("web"))])
    finally:
        c.close()


def test_simulated_clusters_differ_by_seed_and_repeat_for_the_same_seed() -> None:
    one, again, other = _sim_ids(11), _sim_ids(11), _sim_ids(12)
    assert one == again
    assert one[0] != other[0] and not set(one[1]) & set(other[1])


# ------------------------------------------------------------ the leader's side, alone
class _Env:
    node = "s1"

    def __init__(self) -> None:
        self.rng = random.Random("cluster-id-test")
        self.sent: list[Any] = []

    def send(self, node: str, actor: str, msg: Any) -> None:
        self.sent.append(msg)


def test_the_leader_reads_first_writes_only_when_there_is_none_and_retries_a_failure() -> None:
    env = _Env()
    est = ClusterIdEstablisher(env, "node-endpoint", wall_clock=lambda: 12.5)  # type: ignore[arg-type]
    est.lead(True)
    (read,) = env.sent
    assert isinstance(read, Read) and read.stale is False and read.query is cluster_meta.current
    read.reply.set_exception(RuntimeError("leadership lost while committing"))
    (failed,) = env.sent[1:]
    est.on_reply(failed)
    est.poll()  # the endpoint's next look at Raft: read again
    (read2,) = env.sent[2:]
    read2.reply.set((9, None))
    est.on_reply(env.sent[3])
    (propose,) = env.sent[4:]
    cmd = msgpack.unpackb(propose.data, raw=False)
    assert cmd["op"] == "cluster_meta_set" and cmd["create_time"] == 12_500_000_000
    assert uuid.UUID(cmd["cluster_id"]).version == 4
    est.lead(True)  # re-asserted (a restore): the write's reply belongs to the earlier leadership
    propose.reply.set((10, {"ok": True, "created": True, "ClusterID": cmd["cluster_id"]}))
    est.on_reply(env.sent[-1])
    assert est.cluster_id == ""
    (read3,) = [m for m in env.sent[5:] if isinstance(m, Read)]
    read3.reply.set((10, {"ClusterID": cmd["cluster_id"], "CreateTime": 1}))
    est.on_reply(env.sent[-1])
    assert est.cluster_id == cmd["cluster_id"]
    n = len(env.sent)
    est.poll()
    est.lead(False)
    assert len(env.sent) == n  # known, then not leading: nothing more


def test_a_leader_seeds_the_default_scheduler_config_only_into_a_state_that_has_none() -> None:
    from actors.server.scheduler_defaults import SchedulerDefaultsEstablisher, written_config
    from actors.state import scheduler_config as sched_cfg
    from actors.state.store import StateStore, command

    env = _Env()
    config = {"SchedulerAlgorithm": "spread", "MemoryOversubscriptionEnabled": True}
    est = SchedulerDefaultsEstablisher(env, "node-endpoint", config=config)  # type: ignore[arg-type]
    est.lead(True)
    (read,) = env.sent
    assert isinstance(read, Read) and read.stale is False and read.query is written_config
    st = StateStore()
    assert written_config(st) is None  # Nomad's built-in defaults, never written
    read.reply.set((3, None))
    est.on_reply(env.sent[-1])
    (propose,) = env.sent[2:]
    cmd = msgpack.unpackb(propose.data, raw=False)
    assert cmd == {"op": "scheduler_set_config", "config": config, "cas": 0}
    assert st.apply(4, propose.data)["updated"]  # what the write does to a state that has none
    assert sched_cfg.current(st.tables)["SchedulerAlgorithm"] == "spread"
    propose.reply.set((4, {"ok": True, "updated": True, "index": 4}))
    est.on_reply(env.sent[-1])
    n = len(env.sent)
    est.poll()
    assert len(env.sent) == n  # settled
    # A new leader finds one (an operator's, or this one): it writes nothing.
    est.lead(True)
    env.sent[-1].reply.set((5, written_config(st)))
    est.on_reply(env.sent[-1])
    assert not any(isinstance(m, Propose) for m in env.sent[n + 1:])
    # An operator's write that won the race is kept: cas=0 no longer matches.
    assert st.apply(6, command("scheduler_set_config", config={"SchedulerAlgorithm": "binpack"}))["updated"]
    assert st.apply(7, propose.data) == {"ok": True, "updated": False}
    assert sched_cfg.algorithm(st.tables) == "binpack"


def test_uuid5_str_is_uuid5_text() -> None:
    """Evaluation IDs are derived with store.uuid5_str: the same text as uuid.uuid5 gives, so the IDs of
    entries already in a log do not change."""
    from actors.state.store import uuid5_str

    for name in ("1/0", "c0ffee/12345/3", "", "ü-名前/7", "x" * 300):
        for ns in (StateStore.EVAL_NS, uuid.NAMESPACE_URL):
            assert uuid5_str(ns, name) == str(uuid.uuid5(ns, name))


def test_entries_from_before_the_stop_and_drain_options_apply_as_they_did() -> None:
    """An alloc_stop or alloc_migrate entry without the keys that came later (no_shutdown_delay,
    reschedule, batch_no_place) marks only Migrate, as the code that wrote it did."""
    from tests.test_scheduler import Cluster, service

    c = Cluster()
    c.node(0)
    job = service("crunch", count=2)
    job["Type"] = "batch"
    c.register(**job)
    c.schedule()
    first, second = sorted(a["ID"] for a in c.running("crunch"))
    c.apply("alloc_stop", alloc_id=first)
    c.apply("alloc_migrate", allocs=[second], node_id="node-0000")
    allocs = c.state.tables["allocs"]
    assert allocs[first]["DesiredTransition"] == allocs[second]["DesiredTransition"] == {"Migrate": True}
