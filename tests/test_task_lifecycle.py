"""Task lifecycle (prestart, sidecar, poststop) through a simulated cluster (servers, scheduler, clients),
and as ``nomad alloc status`` shows it.  The alloc runner's rules are in tests/test_alloc_runner.py."""

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


def test_a_sidecar_runs_beside_the_main_task_and_phases_that_never_overlap_reserve_the_most_of_them() -> None:
    """The steady state holds with two tasks of an allocation running on its client; the allocation
    reserves the sidecar plus the largest of its prestart, main and poststop phases (Nomad's
    AllocatedResources.Comparable), not every task's sum."""
    c = JobCluster(4, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=2)))
    c.run(30.0)
    job = sim_job("sc", count=2, cpu=300, mem=128)
    job["TaskGroups"][0]["Tasks"] += [
        {"Name": "proxy", "Driver": DRIVER, "Lifecycle": {"Hook": "prestart", "Sidecar": True},
         "Config": {"command": "/bin/sleep"}, "Resources": {"CPU": 50, "MemoryMB": 32}},
        {"Name": "init", "Driver": DRIVER, "Lifecycle": {"Hook": "prestart"},
         "Config": {"command": "/bin/true", "run_for_s": 1}, "Resources": {"CPU": 1000, "MemoryMB": 16}},
        {"Name": "flush", "Driver": DRIVER, "Lifecycle": {"Hook": "poststop"},
         "Config": {"command": "/bin/true", "run_for_s": 1}, "Resources": {"CPU": 10, "MemoryMB": 512}}]
    c.register(job)

    def both_run() -> bool:
        running = c.running_tasks()
        return len(c.allocs("sc")) == 2 and all(
            sorted(t for _, t in running.get(a["ID"], ())) == ["proxy", "t"] for a in c.allocs("sc"))
    end = c.sched.now + 60.0
    while c.sched.now < end and (c.converged() or not both_run()):
        c.run(1.0)
    assert c.converged() == [] and both_run()
    allocs = c.allocs("sc")
    want = {"CPU": 50 + 1000, "MemoryMB": 32 + 512, "DiskMB": 300}  # the group's ephemeral disk, once
    assert all(a["Resources"] == want for a in allocs), allocs[0]["Resources"]


def test_alloc_status_lists_lifecycle_tasks_first_and_names_their_hook_as_nomad_does(monkeypatch) -> None:
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    states = {"web": "running", "proxy": "running", "init": "dead", "cleanup": "pending"}
    lifecycles = {"web": None, "proxy": {"Hook": "prestart", "Sidecar": True},
                  "init": {"Hook": "prestart", "Sidecar": False},
                  "cleanup": {"Hook": "poststop", "Sidecar": False}}
    alloc = {"ID": "a1", "EvalID": "e1", "Name": "j.g[0]", "NodeID": "n1", "JobID": "j",
             "ClientStatus": "running", "DesiredStatus": "run", "TaskGroup": "g",
             "TaskStates": {name: {"State": state} for name, state in states.items()},
             "AllocatedResources": {"TaskLifecycles": lifecycles}}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix: {"ID": "a1"})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: alloc)
    out = cli_jobs.alloc_status("http://x", ["a1"])
    headings = [line for line in out.splitlines() if line.startswith("Task \"")]
    assert headings == ['Task "cleanup" (poststop) is "pending"', 'Task "init" (prestart) is "dead"',
                        'Task "proxy" (prestart sidecar) is "running"', 'Task "web" is "running"']


def test_a_tasks_config_names_its_nodes_attributes_meta_and_identity_as_nomad_interpolates_them() -> None:
    """${attr.*}, ${meta.*} and ${node.*} in a task's config are the node's values (Nomad's taskenv); the
    task's own environment comes first, and an unknown name stays as written."""
    c = JobCluster(5, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1)))
    c.run(30.0)
    job = sim_job("vars", count=1, cpu=100, mem=64)
    job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = [
        "${attr.kernel.name}", "${attr.unique.network.ip-address}", "${node.unique.name}",
        "${node.datacenter}", "${meta.nope}", "${NOMAD_TASK_NAME}"]
    c.register(job)
    end = c.sched.now + 60.0
    while c.sched.now < end and c.converged():
        c.run(1.0)
    assert c.converged() == []
    (proc,) = [p for d in c.drivers.values() for p in d.running() if p.task_name == "t"]
    node = c.clients[0]
    ip = c.hosts[node].facts().ip_address
    assert proc.config["args"] == ["linux", ip, node, "dc1", "${meta.nope}", "t"]


def test_a_task_restarted_after_an_agent_restart_with_no_server_in_reach_sees_its_nodes_values() -> None:
    """The client has its node's values from its fingerprint, not from a registration: a task that
    restarts after an agent restart, with every server out of reach, is not given ${attr.*} literally."""
    c = JobCluster(7, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1)))
    c.run(30.0)
    job = sim_job("vars", count=1, cpu=100, mem=64, run_for_s=20.0)
    job["TaskGroups"][0]["RestartPolicy"] = {"Attempts": 100, "Interval": 3600 * 10**9, "Delay": 10**9,
                                             "Mode": "delay"}
    job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = ["${attr.kernel.name}", "${node.unique.name}"]
    c.register(job)
    end = c.sched.now + 60.0
    while c.sched.now < end and c.converged():
        c.run(1.0)
    assert c.converged() == []
    node = c.clients[0]
    c.partition_clients([node])
    c.crash(node)
    c.run(1.0)
    c.restart(node)
    restarted_at = c.sched.now
    c.run(45.0)  # the 20 s task exits at least once more, and restarts 1 s later, with no server reachable
    later = [p for d in c.drivers.values() for p in d.procs.values() if p.started_at > restarted_at]
    assert later, "the task did not restart"
    assert all(p.config["args"] == ["linux", node] for p in later), [p.config["args"] for p in later]
