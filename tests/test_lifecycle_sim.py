"""Task lifecycle (prestart, sidecar, poststop) through a simulated cluster: servers, scheduler, clients."""

from __future__ import annotations

from sim.client_cluster import ClusterConfig
from sim.job_cluster import DRIVER, JobCluster, JobClusterConfig, sim_job


def test_a_jobs_prestart_tasks_run_before_its_main_tasks_on_every_allocation() -> None:
    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=2)))
    c.run(30.0)
    job = sim_job("lc", count=3, cpu=100, mem=64)
    job["TaskGroups"][0]["Tasks"].insert(0, {
        "Name": "init", "Driver": DRIVER, "Lifecycle": {"Hook": "prestart", "Sidecar": False},
        "Config": {"command": "/bin/true", "run_for_s": 2}, "Resources": {"CPU": 100, "MemoryMB": 64}})
    c.register(job)

    def main_tasks_run() -> bool:
        allocs = c.allocs("lc")
        return len(allocs) == 3 and all(a.get("TaskStates", {}).get("t", {}).get("State") == "running"
                                        for a in allocs)
    end = c.sched.now + 60.0
    while c.sched.now < end and (c.converged() or not main_tasks_run()):
        c.run(1.0)
    assert c.converged() == [] and main_tasks_run()
    allocs = c.allocs("lc")
    assert all(a["ClientStatus"] == "running" for a in allocs)
    ids = {a["ID"] for a in allocs}
    procs = [p for d in c.drivers.values() for p in d.procs.values() if p.alloc_id in ids]
    for a in allocs:
        (init,) = [p for p in procs if p.alloc_id == a["ID"] and p.task_name == "init"]
        (main,) = [p for p in procs if p.alloc_id == a["ID"] and p.task_name == "t"]
        assert init.ended_at is not None and main.started_at >= init.ended_at
        assert a["TaskStates"]["init"]["State"] == "dead" and not a["TaskStates"]["init"]["Failed"]
