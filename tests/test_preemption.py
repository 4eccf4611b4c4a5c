"""Preemption: a higher-priority placement evicts lower-priority allocations (Nomad's Preemptor).

The pure choice (actors.scheduler.preemption), the schedulers that honour
each PreemptionConfig flag, and the plan apply that evicts atomically with
the placement and evaluates the preempted jobs again.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack

from actors.scheduler import preemption as pre
from actors.scheduler.broker import plan_command
from tests.test_scheduler import Cluster, service


def _alloc(aid: str, prio: int, cpu: int, mem: int, job: str = "low", group: str = "g",
           max_parallel: int | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {"Name": group}
    if max_parallel is not None:
        g["Migrate"] = {"MaxParallel": max_parallel}
    return {"ID": aid, "NodeID": "n", "Namespace": "default", "JobID": job, "TaskGroup": group,
            "Resources": {"CPU": cpu, "MemoryMB": mem, "DiskMB": 0},
            "Job": {"ID": job, "Priority": prio, "TaskGroups": [g]}}


def _system(job_id: str = "sys", priority: int = 100, cpu: int = 1000, mem: int = 1024) -> dict[str, Any]:
    return {"ID": job_id, "Type": "system", "Priority": priority, "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "s", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                    "Config": {"command": "/bin/sleep"},
                                                    "Resources": {"CPU": cpu, "MemoryMB": mem}}]}]}


# ------------------------------------------------------------ the pure choice
def test_preemptor_takes_the_closest_allocation_that_frees_enough() -> None:
    cands = [_alloc("a", 50, 500, 512), _alloc("b", 50, 1000, 1024), _alloc("c", 50, 2000, 2048)]
    got = pre.preempt_for_group((1000, 1024, 0), (0, 0, 0), cands, 100, {})
    assert [a["ID"] for a in got] == ["b"]


def test_preemptor_takes_the_fewest_needed_and_trims_the_rest() -> None:
    cands = [_alloc("a", 50, 400, 400), _alloc("b", 50, 400, 400), _alloc("c", 50, 400, 400)]
    got = pre.preempt_for_group((700, 700, 0), (0, 0, 0), cands, 100, {})
    assert len(got) == 2
    got = pre.preempt_for_group((700, 700, 0), (400, 400, 0), cands, 100, {})
    assert len(got) == 1  # the free room counts


def test_preemptor_takes_the_lowest_priority_first() -> None:
    cands = [_alloc("mid", 60, 1000, 1000, job="mid"), _alloc("low", 20, 1000, 1000)]
    got = pre.preempt_for_group((1000, 1000, 0), (0, 0, 0), cands, 100, {})
    assert [a["ID"] for a in got] == ["low"]


def test_preemptor_spares_jobs_within_a_priority_delta_of_10() -> None:
    cands = [_alloc("a", 91, 1000, 1000)]
    assert pre.preempt_for_group((1000, 1000, 0), (0, 0, 0), cands, 100, {}) is None
    assert pre.preempt_for_group((1000, 1000, 0), (0, 0, 0), [_alloc("a", 90, 1000, 1000)], 100, {})


def test_preemptor_returns_none_when_evicting_everything_would_not_do() -> None:
    cands = [_alloc("a", 50, 500, 500)]
    assert pre.preempt_for_group((1000, 1000, 0), (0, 0, 0), cands, 100, {}) is None


def test_preemptor_penalises_a_group_past_its_max_parallel() -> None:
    # "same" already has one preempted (its max_parallel); an equally close allocation of another
    # group is taken instead.
    cands = [_alloc("same", 50, 1000, 1000, job="x", max_parallel=1),
             _alloc("other", 50, 900, 900, job="y", max_parallel=1)]
    got = pre.preempt_for_group((1000, 1000, 0), (100, 100, 0), cands, 100, {("default", "x", "g"): 1})
    assert [a["ID"] for a in got] == ["other"]
    got = pre.preempt_for_group((1000, 1000, 0), (100, 100, 0), cands, 100, {})
    assert [a["ID"] for a in got] == ["same"]


def test_preemption_score_prefers_fewer_lower_priority_evictions() -> None:
    one = pre.preemption_score([_alloc("a", 20, 1, 1)])
    many = pre.preemption_score([_alloc(str(i), 50, 1, 1) for i in range(5)])
    assert 0.0 < many < one < 1.0


# ------------------------------------------------------------ the schedulers
def _run(c: Cluster, job_id: str) -> None:
    """Run the pending evaluations of *job_id* once (those they make stay pending)."""
    for ev in sorted(ev["ID"] for ev in c.state.tables["evals"].values()
                     if ev["JobID"] == job_id and ev["Status"] == "pending"):
        data, _ = plan_command(c.state, ev, c.now)
        if data is not None:
            c.index += 1
            c.state.apply(c.index, data)


def _full_node(c: Cluster, priority: int = 50) -> None:
    """One 4000 MHz / 8192 MB node full of four priority-*priority* service allocations."""
    c.node(0)
    c.register(**service("low", count=4, cpu=1000, mem=2048, Priority=priority))
    c.schedule()
    c.client("running")
    assert len(c.running("low")) == 4


def test_system_job_preempts_the_fewest_lower_priority_allocations() -> None:
    c = Cluster()
    _full_node(c)
    c.register(**_system(priority=100, cpu=1000, mem=1024))
    _run(c, "sys")
    sys_allocs = c.running("sys")
    assert len(sys_allocs) == 1
    evicted = [a for a in c.state.tables["allocs"].values() if a["DesiredStatus"] == "evict"]
    assert len(evicted) == 1
    e = evicted[0]
    assert e["DesiredDescription"] == f"Preempted by alloc ID {sys_allocs[0]['ID']}"
    assert e["PreemptedByAllocation"] == sys_allocs[0]["ID"]
    assert sys_allocs[0]["PreemptedAllocations"] == [e["ID"]]
    assert len(c.running("low")) == 3
    c.assert_not_overcommitted()
    evs = [ev for ev in c.state.tables["evals"].values() if ev["TriggeredBy"] == pre.TRIGGER_PREEMPTION]
    assert [ev["JobID"] for ev in evs] == ["low"]
    # The preempted job's evaluation finds no room: it waits blocked, and does not evict back.
    c.schedule()
    assert len(c.running("low")) == 3 and len(c.running("sys")) == 1
    assert any(ev["JobID"] == "low" and ev["Status"] == "blocked" for ev in c.state.tables["evals"].values())


def test_preempted_service_alloc_is_replaced_elsewhere_when_there_is_room() -> None:
    c = Cluster()
    _full_node(c)
    c.register(**_system(priority=100, cpu=1000, mem=1024, job_id="sys") | {
        "Constraints": [{"LTarget": "${node.unique.id}", "RTarget": "node-0000", "Operand": "="}]})
    _run(c, "sys")
    c.node(1)  # room appears elsewhere; the system job's constraint keeps it off
    c.schedule()
    low = c.running("low")
    assert len(low) == 4 and sum(a["NodeID"] == "node-0001" for a in low) == 1
    c.assert_not_overcommitted()


def test_no_preemption_within_the_priority_delta() -> None:
    c = Cluster()
    _full_node(c, priority=91)
    c.register(**_system(priority=100))
    c.schedule()
    assert not c.running("sys")
    assert not any(a["DesiredStatus"] == "evict" for a in c.state.tables["allocs"].values())


def test_no_system_preemption_when_disabled() -> None:
    c = Cluster()
    _full_node(c)
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"SystemSchedulerEnabled": False}})
    c.register(**_system(priority=100))
    c.schedule()
    assert not c.running("sys")
    assert len(c.running("low")) == 4


def test_service_preempts_only_when_enabled() -> None:
    c = Cluster()
    _full_node(c)
    c.register(**service("high", count=1, cpu=1000, mem=2048, Priority=80))
    c.schedule()
    assert not c.running("high") and len(c.running("low")) == 4  # disabled by default, as Nomad
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"ServiceSchedulerEnabled": True}})
    c.register(**service("high", count=1, cpu=1000, mem=2048, Priority=80, Meta={"v": "2"}))
    _run(c, "high")
    high = c.running("high")
    assert len(high) == 1 and len(high[0]["PreemptedAllocations"]) == 1
    assert len(c.running("low")) == 3
    c.assert_not_overcommitted()


def test_batch_and_sysbatch_flags() -> None:
    c = Cluster()
    _full_node(c)
    batch = service("b", count=1, cpu=1000, mem=2048, Priority=80) | {"Type": "batch"}
    c.register(**batch)
    c.schedule()
    assert not c.running("b")
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"BatchSchedulerEnabled": True,
                                                                 "SysBatchSchedulerEnabled": True}})
    c.register(**batch | {"Meta": {"v": "2"}})
    _run(c, "b")
    assert len(c.running("b")) == 1
    c.register(**_system("sb", priority=100) | {"Type": "sysbatch"})
    _run(c, "sb")
    assert len(c.running("sb")) == 1
    c.assert_not_overcommitted()


# ------------------------------------------------------------ the plan apply
def _plan_for_system(c: Cluster) -> dict[str, Any]:
    """The plan_apply command of the system job's evaluation, decoded (not applied)."""
    c.register(**_system(priority=100))
    ev = next(ev for ev in c.state.tables["evals"].values()
              if ev["JobID"] == "sys" and ev["Status"] == "pending")
    data, _ = plan_command(c.state, ev["ID"], c.now)
    assert data is not None
    return msgpack.unpackb(data, raw=False)


def _apply(c: Cluster, cmd: dict[str, Any]) -> None:
    c.index += 1
    c.state.apply(c.index, msgpack.packb(cmd, use_bin_type=True))


def test_plan_apply_drops_an_eviction_whose_alloc_already_finished() -> None:
    c = Cluster()
    _full_node(c)
    cmd = _plan_for_system(c)
    [victim] = [e["ID"] for e in cmd["plan"]["Preempt"]]
    c.apply("alloc_client_update", allocs=[{"ID": victim, "ClientStatus": "complete"}])
    _apply(c, cmd)
    assert len(c.running("sys")) == 1  # the finished allocation freed the room
    assert not any(a["DesiredStatus"] == "evict" for a in c.state.tables["allocs"].values())
    assert not any(ev["TriggeredBy"] == pre.TRIGGER_PREEMPTION for ev in c.state.tables["evals"].values())


def test_plan_apply_refuses_a_placement_and_its_evictions_together() -> None:
    c = Cluster()
    _full_node(c)
    cmd = _plan_for_system(c)
    assert cmd["plan"]["Preempt"]
    assert c.apply("node_update_drain", node_id="node-0000", drain_spec={"Deadline": 3600 * 10**9})["ok"]
    _apply(c, cmd)
    assert not c.running("sys")
    assert len(c.running("low")) == 4
    assert not any(a["DesiredStatus"] == "evict" for a in c.state.tables["allocs"].values())


def test_old_plan_without_preemptions_applies_as_before() -> None:
    c = Cluster()
    _full_node(c)
    cmd = _plan_for_system(c)
    cmd["plan"].pop("Preempt")  # an entry written before preemption
    _apply(c, cmd)
    assert not c.running("sys")  # refused: no room, nothing evicted
    assert len(c.running("low")) == 4
    assert not any(ev["TriggeredBy"] == pre.TRIGGER_PREEMPTION for ev in c.state.tables["evals"].values())


def test_dry_run_lists_and_counts_the_preemptions() -> None:
    from actors.scheduler.dryrun import plan_job
    from actors.scheduler.job import canonical_job

    c = Cluster()
    _full_node(c)
    got = plan_job(c.state, canonical_job(_system(priority=100)), diff=False)
    [stub] = got["Annotations"]["PreemptedAllocs"]
    assert stub["JobID"] == "low" and stub["Job"] == {"Type": "service"}
    assert got["Annotations"]["DesiredTGUpdates"]["s"]["Preemptions"] == 1
    # nothing written
    assert not any(a["DesiredStatus"] == "evict" for a in c.state.tables["allocs"].values())


# ------------------------------------------------------------ static ports
PORT = {"Networks": [{"ReservedPorts": [{"Label": "http", "Value": 8080}]}]}


def _port_holder(c: Cluster, priority: int) -> None:
    """A roomy node whose static port 8080 a priority-*priority* service allocation holds."""
    c.node(0)
    c.register(**service("low", count=1, cpu=100, mem=64, Priority=priority, group=PORT))
    c.schedule()
    c.client("running")
    assert len(c.running("low")) == 1


def test_system_job_preempts_the_holder_of_its_static_port() -> None:
    c = Cluster()
    _port_holder(c, 50)
    c.register(**_system(priority=100, cpu=100, mem=64) | {"TaskGroups": [
        _system()["TaskGroups"][0] | PORT]})
    _run(c, "sys")
    [placed] = c.running("sys")
    assert placed["AllocatedPorts"][0]["Value"] == 8080
    assert not c.running("low") and len(placed["PreemptedAllocations"]) == 1


def test_static_port_of_a_close_priority_job_is_not_preempted() -> None:
    c = Cluster()
    _port_holder(c, 95)
    c.register(**_system(priority=100, cpu=100, mem=64) | {"TaskGroups": [
        _system()["TaskGroups"][0] | PORT]})
    c.schedule()
    assert not c.running("sys") and len(c.running("low")) == 1
    failed = [ev["FailedTGAllocs"]["s"] for ev in c.state.tables["evals"].values()
              if ev["JobID"] == "sys" and ev["FailedTGAllocs"]]
    assert failed and all("port collision" in str(m).lower() or "8080" in str(m) for m in failed), failed


def test_service_job_preempts_the_holder_of_its_static_port_when_enabled() -> None:
    c = Cluster()
    _port_holder(c, 50)
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"ServiceSchedulerEnabled": True}})
    c.register(**service("high", count=1, cpu=100, mem=64, Priority=80, group=PORT))
    _run(c, "high")
    [placed] = c.running("high")
    assert placed["AllocatedPorts"][0]["Value"] == 8080 and not c.running("low")


# ------------------------------------------------------------ a random mix
def test_random_priorities_never_overcommit_and_evict_only_far_lower_priorities() -> None:
    rng = random.Random(900)
    evictions = 0
    for _ in range(6):
        c = Cluster()
        c.apply("scheduler_set_config", config={"PreemptionConfig": {
            "SystemSchedulerEnabled": True, "SysBatchSchedulerEnabled": True,
            "BatchSchedulerEnabled": True, "ServiceSchedulerEnabled": True}})
        for i in range(3):
            c.node(i, cpu=4000, mem=4096)
        for j in range(10):
            kind = rng.choice(("service", "service", "batch", "system"))
            cpu, mem = rng.choice((250, 500, 1000, 1500)), rng.choice((256, 512, 1024))
            prio = rng.randrange(10, 101)
            extra = {"group": PORT} if rng.random() < 0.2 else {}
            if kind == "system":
                job = _system(f"j{j}", priority=prio, cpu=cpu, mem=mem)
                if extra:
                    job["TaskGroups"][0] |= PORT
            else:
                job = service(f"j{j}", count=rng.randrange(1, 5), cpu=cpu, mem=mem, Priority=prio,
                              **extra) | {"Type": kind}
            c.register(**job)
            c.schedule()
            c.client("running")
            c.schedule()
            c.assert_not_overcommitted()
        allocs = c.state.tables["allocs"]
        for a in allocs.values():
            if a["DesiredStatus"] != "evict":
                continue
            evictions += 1
            by = allocs[a["PreemptedByAllocation"]]
            assert by["Job"]["Priority"] - a["Job"]["Priority"] >= pre.PRIORITY_DELTA
            assert by["NodeID"] == a["NodeID"] and a["ID"] in by["PreemptedAllocations"]
            assert by["JobID"] != a["JobID"]
    assert evictions > 0  # the mix does preempt


def test_sysbatch_does_not_preempt_by_default() -> None:
    c = Cluster()
    _full_node(c)
    c.register(**_system("sb", priority=100) | {"Type": "sysbatch"})
    c.schedule()
    assert not c.running("sb") and len(c.running("low")) == 4


def test_plans_of_one_batch_never_preempt_the_same_allocation_twice() -> None:
    from actors.scheduler.broker import plan_batch_command

    c = Cluster()
    _full_node(c)
    c.register(**_system("s1", priority=100))
    c.register(**_system("s2", priority=100))
    pending = sorted(ev["ID"] for ev in c.state.tables["evals"].values()
                     if ev["JobID"] in ("s1", "s2") and ev["Status"] == "pending")
    data, planned, _ = plan_batch_command(c.state, tuple(pending), c.now)
    assert data is not None and len(planned) == 2
    victims = [e["ID"] for p in msgpack.unpackb(data, raw=False)["plans"] for e in p.get("Preempt", ())]
    assert len(victims) == 2 and len(set(victims)) == 2
    _apply(c, msgpack.unpackb(data, raw=False))
    assert len(c.running("s1")) == 1 and len(c.running("s2")) == 1 and len(c.running("low")) == 2
    c.assert_not_overcommitted()
