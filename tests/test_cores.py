"""Whole CPU cores reserved for a task (Nomad's ``resources { cores = N }``).

The scheduler's SELECTCORES (the lowest free cores, distinct across a node's
allocations and a group's tasks, "cores" when too few are left, the task's
CpuShares the sum of its cores' MHz), preemption freeing an evicted
allocation's cores, and the plan apply refusing a placement whose cores a
live allocation on the node already reserves.
"""

from __future__ import annotations

from typing import Any

import msgpack

from actors.scheduler.broker import plan_command
from actors.scheduler.scheduler import alloc_cores, node_cores, pick_cores
from tests.test_scheduler import Cluster, service

CORES4 = {"cpu.numcores": "4", "cpu.frequency": "2400"}  # the simulator's fake hosts: 4 cores of 2400 MHz


def _cores_job(job_id: str, count: int = 1, cores: int = 1, tasks: int = 1, **extra: Any) -> dict[str, Any]:
    job = service(job_id, count=count, **extra)
    task = job["TaskGroups"][0]["Tasks"][0]
    job["TaskGroups"][0]["Tasks"] = [{**task, "Name": f"t{i}", "Resources": {"Cores": cores, "MemoryMB": 64}}
                                     for i in range(tasks)]
    return job


def _cluster(nodes: int = 1) -> Cluster:
    c = Cluster()
    for i in range(nodes):
        c.node(i, cpu=9600, attrs=CORES4)
    return c


def test_pick_cores_takes_the_lowest_free_cores_task_by_task() -> None:
    assert pick_cores((("a", 2), ("b", 1)), 4, 2400, set()) == (
        {"a": {"ReservedCores": [0, 1], "CpuShares": 4800},
         "b": {"ReservedCores": [2], "CpuShares": 2400}}, 7200)
    assert pick_cores((("a", 1), ("b", 2)), 4, 2400, {0, 2}) is None  # 3 wanted, 2 free
    assert pick_cores((("a", 1), ("b", 1)), 4, 2400, {0, 2}) == (
        {"a": {"ReservedCores": [1], "CpuShares": 2400},
         "b": {"ReservedCores": [3], "CpuShares": 2400}}, 4800)


def test_node_cores_are_its_numcores_at_its_frequency_else_its_cpu_over_them() -> None:
    assert node_cores({"Attributes": CORES4}) == (4, 2400)
    assert node_cores({"Attributes": {"cpu.numcores": "2"}, "NodeResources": {"Cpu": {"CpuShares": 3000}}}) \
        == (2, 1500)
    assert node_cores({}) == (0, 0)


def test_allocations_on_a_node_reserve_distinct_cores_lowest_first_and_their_mhz_as_cpu() -> None:
    c = _cluster()
    c.register(**_cores_job("a", count=2, cores=1))
    c.schedule()
    allocs = sorted(c.running("a"), key=lambda a: a["Name"])
    assert sorted(alloc_cores(a) for a in allocs) == [[0], [1]]
    assert all(a["TaskCores"]["t0"]["CpuShares"] == 2400 and a["Resources"]["CPU"] == 2400 for a in allocs)
    c.register(**_cores_job("b", cores=2))
    c.schedule()
    (b,) = c.running("b")
    assert b["TaskCores"] == {"t0": {"ReservedCores": [2, 3], "CpuShares": 4800}}
    assert b["Resources"]["CPU"] == 4800
    c.assert_not_overcommitted()


def test_tasks_of_a_group_reserve_distinct_cores() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=1, tasks=3))
    c.schedule()
    (a,) = c.running("a")
    assert [a["TaskCores"][f"t{i}"]["ReservedCores"] for i in range(3)] == [[0], [1], [2]]
    assert a["Resources"]["CPU"] == 3 * 2400


def test_a_node_without_enough_free_cores_is_exhausted_on_cores() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=3))
    c.schedule()
    c.register(**_cores_job("b", cores=2))
    c.schedule()
    assert not c.running("b")
    ev = max((e for e in c.state.tables["evals"].values() if e["JobID"] == "b" and e.get("FailedTGAllocs")),
             key=lambda e: e["ModifyIndex"])
    metric = ev["FailedTGAllocs"]["g"]
    assert metric["NodesExhausted"] == 1 and metric["DimensionExhausted"] == {"cores": 1}


def test_stopping_an_allocation_frees_its_cores() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=4))
    c.schedule()
    c.client("running")
    c.apply("job_deregister", job_id="a")
    c.register(**_cores_job("b", cores=4))
    c.schedule()
    (b,) = c.running("b")
    assert alloc_cores(b) == [0, 1, 2, 3]


def test_preempting_an_allocation_frees_its_cores() -> None:
    c = _cluster()
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"ServiceSchedulerEnabled": True}})
    c.register(**_cores_job("low", cores=4, Priority=20))
    c.schedule()
    c.client("running")
    # A higher-priority job asking for CPU in MHz: evicting "low" (its cores' MHz) makes the room.
    high = _cores_job("high", cores=0, Priority=90)
    high["TaskGroups"][0]["Tasks"][0]["Resources"] = {"CPU": 4000, "MemoryMB": 64}
    c.register(**high)
    c.schedule()
    assert len(c.running("high")) == 1 and not c.running("low")
    (evicted,) = [a for a in c.state.tables["allocs"].values() if a["DesiredStatus"] == "evict"]
    assert alloc_cores(evicted) == [0, 1, 2, 3]
    c.register(**_cores_job("high2", cores=2, Priority=90))
    c.schedule()
    assert [alloc_cores(a) for a in c.running("high2")] == [[0, 1]]  # the evicted allocation's are free


def test_a_cores_ask_evicts_nothing_for_cores_as_nomad() -> None:
    """Nomad's SELECTCORES counts every proposed allocation's cores, evictions or not: a node whose cores
    are all reserved is exhausted on "cores" even when preemption could evict their holder."""
    c = _cluster()
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"ServiceSchedulerEnabled": True}})
    c.register(**_cores_job("low", cores=4, Priority=20))
    c.schedule()
    c.client("running")
    c.register(**_cores_job("high", cores=1, Priority=90))
    c.schedule()
    assert not c.running("high") and len(c.running("low")) == 1
    c.assert_not_overcommitted()


def test_plan_apply_refuses_a_placement_whose_cores_a_live_allocation_holds() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=2))
    c.register(**_cores_job("b", cores=2))
    evs = sorted((e for e in c.state.tables["evals"].values() if e["Status"] == "pending"),
                 key=lambda e: e["JobID"])
    # Both plans are made against the same state (racing workers): both take cores 0 and 1.
    cmds = [msgpack.unpackb(plan_command(c.state, e["ID"], c.now)[0], raw=False) for e in evs]
    assert [alloc_cores(cmd["plan"]["Place"][0]) for cmd in cmds] == [[0, 1], [0, 1]]
    for cmd in cmds:
        c.index += 1
        c.state.apply(c.index, msgpack.packb(cmd, use_bin_type=True))
    assert len(c.running("a")) == 1 and not c.running("b")
    b_eval = c.state.tables["evals"][evs[1]["ID"]]
    assert b_eval["RefusedAllocs"] == 1
    c.schedule()  # its follow-up takes the cores left
    (b,) = c.running("b")
    assert alloc_cores(b) == [2, 3]


def test_a_placement_without_cores_applies_as_before() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=3))
    c.register(**service("web", count=1, cpu=500, mem=64))
    c.schedule()
    (web,) = c.running("web")
    assert "TaskCores" not in web and web["Resources"]["CPU"] == 500
    c.assert_not_overcommitted()


def test_a_system_job_reserves_cores_on_each_node() -> None:
    c = _cluster(nodes=2)
    job = _cores_job("sys", cores=2)
    job["Type"] = "system"
    del job["TaskGroups"][0]["Count"]
    c.register(**job)
    c.schedule()
    got = c.running("sys")
    assert len(got) == 2 and all(alloc_cores(a) == [0, 1] for a in got)
    job2 = _cores_job("sys2", cores=3)
    job2["Type"] = "system"
    del job2["TaskGroups"][0]["Count"]
    c.register(**job2)
    c.schedule()
    assert not c.running("sys2")


def test_the_task_sees_its_reserved_cores_as_a_cpuset_and_their_mhz_as_its_cpu_limit() -> None:
    from actors.client.alloc_runner import AllocRunnerConfig, cpuset, parse_alloc, task_env
    from tests.test_alloc_runner import alloc, task

    assert (cpuset((3, 0, 1)), cpuset((2,)), cpuset((0, 1, 2, 3)), cpuset((5, 1, 0, 3, 4))) == \
        ("0-1,3", "2", "0-3", "0-1,3-5")
    raw = alloc("a1", task("t"), task("u"))
    raw["TaskCores"] = {"t": {"ReservedCores": [1, 2], "CpuShares": 4800}}
    spec = parse_alloc(raw, AllocRunnerConfig())
    t, u = spec.tasks
    assert (t.reserved_cores, t.cpu, u.reserved_cores, u.cpu) == ((1, 2), 4800, (), 100)
    env = task_env(spec, t, "/a", "/a/t")
    assert (env["NOMAD_CPU_CORES"], env["NOMAD_CPU_LIMIT"]) == ("1-2", "4800")
    assert "NOMAD_CPU_CORES" not in task_env(spec, u, "/a", "/a/u")


def test_changing_a_tasks_cores_replaces_its_allocation_and_an_unrelated_change_keeps_them() -> None:
    c = _cluster()
    c.register(**_cores_job("a", cores=1))
    c.schedule()
    c.client("running")
    c.register(**_cores_job("a", cores=2))
    c.schedule()
    c.client("running")
    (a,) = c.running("a")
    assert a["TaskCores"]["t0"] == {"ReservedCores": [0, 1], "CpuShares": 4800}
    c.register(**_cores_job("a", cores=2, Priority=60))  # in place: the same allocation, its cores kept
    c.schedule()
    (b,) = c.running("a")
    assert b["ID"] == a["ID"] and b["TaskCores"] == a["TaskCores"] and b["Resources"]["CPU"] == 4800


def test_a_cores_ask_short_of_cpu_evicts_for_the_mhz_of_its_cores() -> None:
    """Free cores but no MHz left: with preemption the placement evicts lower-priority allocations for
    its cores' MHz (Nomad's AllocsFit after SELECTCORES), and takes the lowest free cores."""
    c = _cluster()
    c.apply("scheduler_set_config", config={"PreemptionConfig": {"ServiceSchedulerEnabled": True}})
    c.register(**service("low", count=4, cpu=2400, mem=64, Priority=20))
    c.schedule()
    c.client("running")
    c.register(**_cores_job("high", cores=2, Priority=90))
    c.schedule()
    (high,) = c.running("high")
    assert alloc_cores(high) == [0, 1] and len(high["PreemptedAllocations"]) == 2
    assert len(c.running("low")) == 2
    c.assert_not_overcommitted()


def test_a_sysbatch_job_reserves_cores_and_a_node_without_them_is_exhausted() -> None:
    c = _cluster(nodes=1)
    c.register(**_cores_job("a", cores=3))
    c.schedule()
    for job_id, cores in (("sb1", 1), ("sb2", 1)):
        job = _cores_job(job_id, cores=cores)
        job["Type"] = "sysbatch"
        del job["TaskGroups"][0]["Count"]
        c.register(**job)
        c.schedule()
    assert [alloc_cores(a) for a in c.running("sb1")] == [[3]]
    assert not c.running("sb2")
    ev = max((e for e in c.state.tables["evals"].values() if e["JobID"] == "sb2" and e.get("FailedTGAllocs")),
             key=lambda e: e["ModifyIndex"])
    assert ev["FailedTGAllocs"]["g"]["DimensionExhausted"] == {"cores": 1}
