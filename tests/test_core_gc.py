"""Evaluation, allocation and job GC (Nomad's eval-gc and job-gc): the rules, the command, a cluster.

The simulated runs check after every committed command (NodeCheckers) that
job GC removed only terminal, not-running allocations, stopped or dead jobs
and no pending evaluation.
"""

from __future__ import annotations

import pytest

from actors.server.job_gc import JOB_GC, JobGCConfig
from actors.server.node_gc import ForceGC
from actors.state import core_gc as gc
from actors.state.store import StateStore, command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import RUNNER, JobCluster, JobClusterConfig, sim_job

pytestmark = pytest.mark.timeout(300)
HOUR = 3600.0


def _alloc(aid: str = "a1", *, desired: str = "stop", client: str = "complete", t: float = 0.0,
           eval_id: str = "e1", job: str = "web") -> dict:
    return {"ID": aid, "EvalID": eval_id, "JobID": job, "NodeID": "n1", "DesiredStatus": desired,
            "ClientStatus": client, "ModifyTime": t}


# ------------------------------------------------------------ the rules
def test_only_terminal_old_allocations_not_running_are_collectable():
    job = {"ID": "web", "Type": "service", "Status": "running"}
    assert gc.alloc_gc_eligible(_alloc(), job, cutoff=10.0)
    assert not gc.alloc_gc_eligible(_alloc(t=10.0), job, cutoff=10.0)  # too recent
    assert not gc.alloc_gc_eligible(_alloc(desired="run", client="running"), job, cutoff=10.0)
    # stopped by the server but its client has not said it stopped
    assert not gc.alloc_gc_eligible(_alloc(desired="stop", client="running"), job, cutoff=10.0)
    # failed and not yet replaced by the scheduler: kept while the job lives
    assert not gc.alloc_gc_eligible(_alloc(desired="run", client="failed"), job, cutoff=10.0)
    assert gc.alloc_gc_eligible(_alloc(desired="run", client="failed"), {**job, "Stop": True}, cutoff=10.0)
    assert gc.alloc_gc_eligible(_alloc(desired="run", client="failed"), None, cutoff=10.0)


def test_a_live_batch_jobs_evaluations_and_finished_allocations_are_kept():
    ev = {"ID": "e1", "JobID": "b", "Type": "batch", "Status": "complete", "ModifyTime": 0.0}
    done = _alloc(desired="run", client="complete", job="b")
    running = {"ID": "b", "Type": "batch", "Status": "running"}
    assert gc.eval_gc(ev, running, [done], 10.0, allow_batch=False) == (False, [])
    dead = {**running, "Status": "dead"}
    assert gc.eval_gc(ev, dead, [done], 10.0, allow_batch=False) == (False, [])  # eval-gc: only if stopped
    assert gc.eval_gc(ev, dead, [done], 10.0, allow_batch=True) == (True, ["a1"])  # job-gc
    assert gc.eval_gc(ev, {**dead, "Stop": True}, [done], 10.0, allow_batch=False) == (True, ["a1"])


def test_an_evaluation_goes_only_with_all_its_allocations():
    ev = {"ID": "e1", "JobID": "web", "Type": "service", "Status": "complete", "ModifyTime": 0.0}
    job = {"ID": "web", "Type": "service", "Status": "running"}
    old, live = _alloc("a1"), _alloc("a2", desired="run", client="running")
    assert gc.eval_gc(ev, job, [old, live], 10.0, allow_batch=False) == (False, ["a1"])
    assert gc.eval_gc(ev, job, [old], 10.0, allow_batch=False) == (True, ["a1"])
    assert gc.eval_gc({**ev, "Status": "pending"}, job, [old], 10.0, allow_batch=False) == (False, [])


def test_job_gc_takes_dead_old_jobs_whole_or_not_at_all():
    job = {"ID": "web", "Type": "service", "Status": "dead", "Stop": True, "SubmitTime": 0.0}
    ev = {"ID": "e1", "JobID": "web", "Type": "service", "Status": "complete", "ModifyTime": 0.0}
    assert gc.job_gc(job, [ev], [_alloc()], 10.0) == (True, ["e1"], ["a1"])
    assert not gc.job_gc({**job, "Status": "running", "Stop": False}, [ev], [_alloc()], 10.0)[0]
    assert not gc.job_gc({**job, "SubmitTime": 10.0}, [ev], [_alloc()], 10.0)[0]  # submitted too recently
    assert not gc.job_gc(job, [{**ev, "Status": "pending"}], [_alloc()], 10.0)[0]
    assert not gc.job_gc(job, [ev], [_alloc(desired="stop", client="running")], 10.0)[0]


# ------------------------------------------------------------ the command re-checks
def _store_with_dead_job() -> StateStore:
    st = StateStore()
    job = {"ID": "web", "Type": "service", "Priority": 50,
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": []}]}
    st.apply(1, command("job_register", job=job, now=0.0))
    st.apply(2, command("job_deregister", job_id="web", now=0.0))
    for ev in st.tables["evals"].values():
        ev.update(Status="complete")
    st.tables["jobs"]["web"]["Status"] = "dead"
    return st


def test_core_gc_removes_a_dead_job_with_its_evaluations():
    st = _store_with_dead_job()
    assert gc.job_gc_candidates(st.tables, cutoff=100.0) == ["web"]
    r = st.apply(3, command("core_gc", jobs=["web"], cutoff=100.0, batch_cutoff=100.0, job_cutoff=100.0))
    assert r["ok"] and r["jobs"] == ["web"] and len(r["evals"]) == 2
    assert st.tables["jobs"] == {} and st.tables["evals"] == {}
    assert st.index("jobs") == 3 and st.index("evals") == 3


def test_core_gc_keeps_a_job_registered_again_since_the_scan():
    st = _store_with_dead_job()
    scan = gc.job_gc_candidates(st.tables, cutoff=100.0)
    job = {"ID": "web", "Type": "service", "Priority": 50,
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": []}]}
    st.apply(3, command("job_register", job=job, now=50.0))  # back before the GC command commits
    r = st.apply(4, command("core_gc", jobs=scan, cutoff=100.0, batch_cutoff=100.0, job_cutoff=100.0))
    assert r["jobs"] == [] and "web" in st.tables["jobs"]


def test_a_malformed_core_gc_command_changes_nothing():
    st = _store_with_dead_job()
    before = st.digest()
    r = st.apply(3, command("core_gc", jobs="web", cutoff=1.0, batch_cutoff=1.0, job_cutoff=1.0))
    assert "error" in r and st.digest() == before


# ------------------------------------------------------------ a simulated cluster
def _cluster(seed: int = 1, **kw: object) -> JobCluster:
    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=3), **kw)  # type: ignore[arg-type]
    c = JobCluster(seed, cfg)
    c.run(30.0)
    return c


def test_a_stopped_job_leaves_the_state_after_the_job_gc_threshold_and_clients_forget_it():
    c = _cluster()
    c.register(sim_job("web", count=3))
    c.register(sim_job("api", count=2))
    c.run(120.0)
    assert c.converged() == []
    c.stop_job("web")
    c.run(120.0)
    state = c.checker.replica.tables
    assert state["jobs"]["web"]["Status"] == "dead"
    gone_allocs = [a["ID"] for a in state["allocs"].values() if a["JobID"] == "web"]
    assert len(gone_allocs) == 3
    c.run(3 * HOUR)  # under job_gc_threshold (4 h): still listed
    assert "web" in c.checker.replica.tables["jobs"]
    c.run(1.5 * HOUR)
    state = c.checker.replica.tables
    assert "web" not in state["jobs"]
    assert not [a for a in state["allocs"].values() if a["JobID"] == "web"]
    assert not [e for e in state["evals"].values() if e["JobID"] == "web"]
    # the live job is untouched: its evaluation stays while the allocations it placed run
    assert len([a for a in state["allocs"].values() if a["JobID"] == "api"]) == 2
    assert [e["JobID"] for e in state["evals"].values()] == ["api"]
    assert c.converged() == []
    # every client dropped what the servers no longer know
    for x in c.clients:
        runner = c.actor(x, RUNNER)
        assert {a for a in runner.allocs} <= set(state["allocs"]), x
    assert c.checker.core_gc_removed >= 3 + 1 + 1
    # ... and removed their directories (3 allocations of "web", none of "api")
    destroyed = [aid for d in c.alloc_dirs.values() for aid in d.destroyed]
    assert sorted(destroyed) == sorted(a for a in gone_allocs), destroyed
    c.close()


def test_force_gc_collects_finished_work_at_once_and_then_nodes():
    c = _cluster(seed=2)
    c.register(sim_job("web", count=2))
    c.run(60.0)
    c.stop_job("web")
    c.run(60.0)
    leader = c.leader()
    # register, stop, and a deployment-watcher evaluation per allocation turning healthy before the last
    n_evals = len(c.checker.replica.tables["evals"])
    assert n_evals >= 2
    fut = c.sched.future_cls()
    c.sched.nodes[leader].actors[JOB_GC].tell(ForceGC(reply=fut))
    assert fut.get(timeout=60.0) == []  # node GC's answer: no down node to remove
    c.run(1.0)  # the checker replays what committed
    state = c.checker.replica.tables
    assert state["jobs"] == {} and state["allocs"] == {} and state["evals"] == {}
    assert c.actor(leader, JOB_GC).removed == {"jobs": 1, "evals": n_evals, "allocs": 2, "deployments": 0,
                                               "acl_tokens": 0}
    c.close()


def test_collected_jobs_leave_no_empty_entries_in_the_alloc_indexes():
    """Every batch or dispatched job has an ID of its own: an empty by-job (or by-node) set left
    behind per collected job grew the state store for the cluster's life (a soak run's follower
    held 44 empty sets for 8 jobs after four minutes of churn)."""
    c = _cluster(seed=4)
    for i in range(6):
        c.register(sim_job(f"once-{i}", count=2, job_type="batch", run_for_s=5.0))
    c.run(120.0)
    live = sim_job("web", count=1)
    c.register(live)
    c.run(60.0)
    fut = c.sched.future_cls()
    c.sched.nodes[c.leader()].actors[JOB_GC].tell(ForceGC(reply=fut))
    fut.get(timeout=60.0)
    c.run(1.0)
    st = c.checker.replica
    assert sorted(st.tables["jobs"]) == ["web"]
    assert sorted(st.allocs_by_job) == ["web"]
    assert sorted(st._maybe_live_by_job) == ["web"]
    assert all(st.allocs_by_node.values())
    c.close()


def test_a_finished_batch_job_is_not_run_again_before_it_is_collected():
    c = _cluster(seed=3)
    c.register(sim_job("once", count=2, job_type="batch", run_for_s=30.0))
    c.run(2 * HOUR)  # past eval_gc_threshold: a live batch job's evaluations stay
    starts = sum(d.starts for d in c.drivers.values())
    assert starts == 2
    c.run(3 * HOUR)  # dead and past job_gc_threshold: removed whole, never re-run
    assert "once" not in c.checker.replica.tables["jobs"]
    assert sum(d.starts for d in c.drivers.values()) == 2
    c.close()


def test_job_gc_config_follows_the_server_config_and_is_validated():
    from runtime.config import ServerConfig

    cfg = JobGCConfig.from_server(ServerConfig(job_gc_threshold_s=60.0, eval_gc_threshold_s=30.0,
                                               acl_token_gc_threshold_s=120.0))
    assert cfg.job_threshold_s == 60.0 and cfg.eval_threshold_s == 30.0 and cfg.eval_interval_s == 300.0
    assert (cfg.token_threshold_s, cfg.token_interval_s, cfg.acl_enabled) == (120.0, 300.0, False)
    assert JobGCConfig.from_server(ServerConfig(), acl_enabled=True).acl_enabled
    assert JobGCConfig.from_server(ServerConfig()).token_threshold_s == 3600.0  # Nomad's 1h
    with pytest.raises(ValueError):
        JobGCConfig(job_threshold_s=0)
    with pytest.raises(ValueError):
        JobGCConfig(token_threshold_s=0)


def _expiring(accessor: str, now: float, ttl_s: float) -> dict:
    return {"AccessorID": accessor, "SecretID": f"{accessor}-secret", "Name": accessor, "Type": "management",
            "Policies": [], "Global": False, "CreateTime": now, "ExpirationTime": now + ttl_s,
            "ExpirationTTL": int(ttl_s * 1e9)}


def test_the_leader_collects_expired_acl_tokens_after_the_gc_threshold_and_force_gc_at_once():
    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1), job_gc=JobGCConfig(acl_enabled=True))
    c = JobCluster(5, cfg)
    c.run(30.0)
    now = c.sched.now
    forever = {k: v for k, v in _expiring("forever", now, 1.0).items() if not k.startswith("Expiration")}
    _, r = c.propose(command("acl_token_upsert", tokens=[_expiring("short", now, 600.0),
                                                         _expiring("long", now, 8 * HOUR), forever]))
    assert r["ok"], r
    c.run(0.5 * HOUR)  # "short" expired 20 min ago, but was created under acl_token_gc_threshold (1h) ago
    assert sorted(c.checker.replica.tables["acl_tokens"]) == ["forever", "long", "short"]
    c.run(0.6 * HOUR)  # past the threshold, and a 5-minute pass since
    assert sorted(c.checker.replica.tables["acl_tokens"]) == ["forever", "long"]
    leader = c.leader()
    assert c.actor(leader, JOB_GC).removed["acl_tokens"] == 1
    # A forced GC takes an expired token at once, whenever it was made; never an unexpired one.
    _, r = c.propose(command("acl_token_upsert", tokens=[_expiring("brief", c.sched.now, 60.0)]))
    assert r["ok"], r
    c.run(90.0)
    fut = c.sched.future_cls()
    c.sched.nodes[leader].actors[JOB_GC].tell(ForceGC(reply=fut))
    fut.get(timeout=60.0)
    c.run(1.0)
    assert sorted(c.checker.replica.tables["acl_tokens"]) == ["forever", "long"]
    c.close()



def test_disk_alloc_dirs_remove_the_whole_tree_and_refuse_unsafe_ids(tmp_path):
    from actors.client.alloc_runner import DiskAllocDirs

    logs = tmp_path / "a1" / "alloc" / "logs"
    logs.mkdir(parents=True)
    (logs / "t.stdout.0").write_text("x" * 100)
    dirs = DiskAllocDirs(str(tmp_path))
    dirs.destroy("a1")
    assert not (tmp_path / "a1").exists()
    dirs.destroy("a1")  # already gone: fine
    for bad in ("..", "../x", "a/b", ""):
        with pytest.raises(ValueError):
            dirs.destroy(bad)
    assert tmp_path.exists()


# ------------------------------------------------------------ the client's own GC (Nomad client/gc.go)
def _one_client(seed: int, **runner: object) -> tuple[JobCluster, str]:
    from actors.client.alloc_runner import AllocRunnerConfig

    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1),
                           runner=AllocRunnerConfig(**runner))  # type: ignore[arg-type]
    c = JobCluster(seed, cfg)
    c.run(30.0)
    return c, c.clients[0]


def test_a_full_disk_makes_the_client_remove_finished_allocations_oldest_first():
    c, x = _one_client(11)
    c.register(sim_job("b1", count=2, cpu=100, job_type="batch", run_for_s=10.0))
    c.run(90.0)
    dirs, runner = c.alloc_dirs[x], c.actor(x, RUNNER)
    assert dirs.destroyed == [] and len(runner.allocs) == 2  # finished, kept for their logs
    dirs.disk_percent = 91.0
    c.run(61.0)  # one gc_interval
    assert sorted(dirs.destroyed) == sorted(runner.allocs)
    assert all(a.collected for a in runner.allocs.values())
    assert runner.stats["gc_collected"] == 2
    # the servers still list them: nothing runs again, nothing is removed twice
    dirs.disk_percent = 40.0
    c.register(sim_job("b2", count=1, cpu=100, job_type="batch", run_for_s=10.0))
    c.run(180.0)
    assert c.drivers[x].starts == 3 and len(dirs.destroyed) == 2
    # a restarted client remembers what it collected
    c.crash(x)
    c.run(1.0)
    c.restart(x)
    c.run(120.0)
    assert len(dirs.destroyed) == 2 and c.drivers[x].starts == 3
    c.close()


def test_new_allocations_past_gc_max_allocs_push_out_the_oldest_finished_ones():
    c, x = _one_client(12, gc_max_allocs=3)
    c.register(sim_job("b1", count=3, cpu=100, job_type="batch", run_for_s=10.0))
    c.run(90.0)
    runner, dirs = c.actor(x, RUNNER), c.alloc_dirs[x]
    old = sorted(runner.allocs, key=lambda aid: (runner.allocs[aid].spec.modify_index, aid))
    c.register(sim_job("web", count=2, cpu=100))
    c.run(60.0)
    assert len(dirs.destroyed) == 2 and set(dirs.destroyed) <= set(old)
    assert len(c.drivers[x].running()) == 2  # the new ones run
    c.close()


def test_disk_alloc_dirs_report_usage_in_percent(tmp_path):
    from actors.client.alloc_runner import DiskAllocDirs

    disk, inodes = DiskAllocDirs(str(tmp_path)).usage()
    assert 0.0 < disk <= 100.0 and 0.0 <= inodes <= 100.0


def test_a_stopped_job_that_was_waiting_for_capacity_is_collected_too():
    c = _cluster(seed=5)
    c.register(sim_job("big", count=50, cpu=2000))  # cannot all fit: a blocked evaluation waits
    c.run(60.0)
    assert any(e["Status"] == "blocked" for e in c.checker.replica.tables["evals"].values())
    c.stop_job("big")
    c.run(60.0)
    evals = c.checker.replica.tables["evals"].values()
    assert not any(e["Status"] == "blocked" for e in evals)  # canceled with the job
    c.run(5 * HOUR)
    state = c.checker.replica.tables
    assert state["jobs"] == {} and state["evals"] == {} and state["allocs"] == {}
    c.close()
