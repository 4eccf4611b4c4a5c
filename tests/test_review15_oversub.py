"""Review 15: memory oversubscription and in-place updates."""

from __future__ import annotations

from actors.scheduler.scheduler import compute_plan
from tests.test_memory_oversub import _allocs, mem_job
from tests.test_scheduler import Cluster


def test_an_in_place_update_after_oversubscription_is_disabled_drops_memory_max() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.register(**mem_job(256, 1024, count=1))
    c.schedule()
    (first,) = _allocs(c)
    assert first["Resources"]["MemoryMaxMB"] == 1024
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": False})
    c.register(**mem_job(256, 1024, count=2))  # a count change: the running allocation is updated in place
    c.schedule()
    allocs = _allocs(c)
    assert len(allocs) == 2 and first["ID"] in {a["ID"] for a in allocs}
    assert all(a["JobVersion"] == 1 for a in allocs)
    # The new one has none; the one updated in place still carries 1024 (Nomad: none on both).
    assert [a["Resources"].get("MemoryMaxMB") for a in allocs] == [None, None]
    assert all("AllocatedResources" not in a for a in allocs)
    # Its client sees the new record (the memory ceiling it holds changed).
    updated = next(a for a in allocs if a["ID"] == first["ID"])
    assert updated["AllocModifyIndex"] > first["AllocModifyIndex"]


def test_an_in_place_update_after_oversubscription_is_enabled_takes_memory_max() -> None:
    c = Cluster()
    c.node(0)
    c.register(**mem_job(256, 1024, count=1))
    c.schedule()
    (first,) = _allocs(c)
    assert "MemoryMaxMB" not in first["Resources"]
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.register(**mem_job(256, 1024, count=2))
    c.schedule()
    allocs = _allocs(c)
    assert len(allocs) == 2 and first["ID"] in {a["ID"] for a in allocs}
    for a in allocs:
        assert a["Resources"]["MemoryMaxMB"] == 1024
        assert a["AllocatedResources"] == {"Tasks": {"t": {"Memory": {"MemoryMaxMB": 1024}}}}


def test_an_in_place_update_that_keeps_memory_max_leaves_the_client_alone() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    # No update strategy: no deployment for the in-place allocation to join (joining one is news for
    # its client, as Nomad's: DeploymentID changes and health is watched again).
    c.register(**mem_job(256, 1024, count=1, Update={"MaxParallel": 0}))
    c.schedule()
    (first,) = _allocs(c)
    c.register(**mem_job(256, 1024, count=2, Update={"MaxParallel": 0}))
    c.schedule()
    updated = next(a for a in _allocs(c) if a["ID"] == first["ID"])
    assert updated["JobVersion"] == 1 and updated["Resources"]["MemoryMaxMB"] == 1024
    assert updated["AllocModifyIndex"] == first["AllocModifyIndex"]


def test_a_plan_of_an_earlier_revision_updates_in_place_as_it_did() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.register(**mem_job(256, 1024, count=1))
    c.schedule()
    (first,) = _allocs(c)
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": False})
    c.register(**mem_job(256, 1024, count=2))
    (ev,) = [e for e in c.state.tables["evals"].values() if e["Status"] == "pending"]
    plan = compute_plan(c.state.tables, ev, now=c.now)
    assert plan["InPlaceMemory"] == {first["ID"]: {}}
    plan["Rev"] = 3  # written before InPlaceMemory: the allocation keeps what it had
    del plan["InPlaceMemory"]
    c.apply("plan_apply", plan=plan)
    updated = c.state.tables["allocs"][first["ID"]]
    assert updated["JobVersion"] == 1 and updated["Resources"]["MemoryMaxMB"] == 1024


def test_an_in_place_update_of_what_the_client_reads_as_it_runs_wakes_the_client() -> None:
    c = Cluster()
    c.node(0)
    c.register(**mem_job(256, None, count=1))
    c.schedule()
    (first,) = _allocs(c)
    job = mem_job(256, None, count=1)
    job["TaskGroups"][0]["ShutdownDelay"] = 5 * 10**9  # nothing the tasks run changed: in place
    c.register(**job)
    c.schedule()
    (updated,) = _allocs(c)
    assert updated["ID"] == first["ID"] and updated["JobVersion"] == 1
    assert updated["AllocModifyIndex"] > first["AllocModifyIndex"]
