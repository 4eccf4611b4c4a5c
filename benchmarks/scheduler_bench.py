"""`nomad-bench scheduler`: placements/s and the time to re-place a lost node's work.

Two measurements of the same code:

* **core** -- the scheduler and the state machine alone, in this process:
  a state store holding 1,000 ready nodes, one service job of 1,000
  allocations; the time to compute the plan (``compute_plan``) and apply it
  (``plan_apply``, which re-checks every placement).  Then one node with its
  allocations goes down: the time for the evaluations that creates to be
  scheduled and applied.
* **cluster** -- the whole server path in the simulator: 3 servers (Raft,
  eval broker, scheduling workers) and 1,000 clients running SimDriver tasks
  over the simulated network, every message through the real codec.
  Register the job, wait until all 1,000 allocations are placed (wall
  seconds, and virtual seconds including the Raft round trips), then cut a
  loaded client off and measure from the moment it is marked down until its
  allocations are placed elsewhere.

The last line is a JSON object with ``placements_per_s`` (the cluster
figure; the core one is ``core_placements_per_s``) and ``replace_node_s``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from actors.scheduler.broker import pending_evals, plan_command
from actors.scheduler.job import canonical_job
from actors.state.store import StateStore, command

N_NODES = 1000
N_ALLOCS = 1000


def _job(count: int) -> dict[str, Any]:
    return canonical_job({"ID": "bench", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": count, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                "Config": {"command": "/bin/sleep", "args": ["3600"]},
                                                "Resources": {"CPU": 100, "MemoryMB": 128}}]}]})


def _store(n_nodes: int) -> tuple[StateStore, int]:
    st = StateStore()
    index = 0
    for i in range(n_nodes):
        nid = f"node-{i:05d}"
        rec = {"ID": nid, "SecretID": "s", "Name": nid, "Datacenter": "dc1", "NodePool": "default",
               "Attributes": {"kernel.name": "linux"}, "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
               "NodeResources": {"Cpu": {"CpuShares": 9600}, "Memory": {"MemoryMB": 16384},
                                 "Disk": {"DiskMB": 100_000}},  # each allocation's ephemeral_disk: 300 MB
               "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}}}
        index += 1
        st.apply(index, command("node_register", node=rec, now=0.0))
        index += 1
        st.apply(index, command("node_update_status", node_id=nid, status="ready", now=0.0))
    return st, index


def _drain_evals(st: StateStore, index: int) -> tuple[int, int]:
    placed = 0
    while True:
        pending = sorted(pending_evals(st))
        if not pending:
            return index, placed
        for _, _, eval_id, _ in pending:
            data, _ = plan_command(st, eval_id, 1.0)
            if data is not None:
                index += 1
                placed += len(st.apply(index, data).get("placed", ()))


def core(n_nodes: int, n_allocs: int, rounds: int) -> dict[str, Any]:
    plan_s, apply_s, replace_s = [], [], []
    for _ in range(rounds):
        st, index = _store(n_nodes)
        index += 1
        st.apply(index, command("job_register", job=_job(n_allocs), now=1.0))
        (_, _, eval_id, _), = pending_evals(st)
        t0 = time.perf_counter()
        data, counts = plan_command(st, eval_id, 1.0)
        t1 = time.perf_counter()
        index += 1
        res = st.apply(index, data)
        t2 = time.perf_counter()
        assert len(res["placed"]) == n_allocs, res.get("refused")
        plan_s.append(t1 - t0)
        apply_s.append(t2 - t1)
        by_node: dict[str, int] = {}
        for a in st.tables["allocs"].values():
            by_node[a["NodeID"]] = by_node.get(a["NodeID"], 0) + 1
        victim = max(by_node, key=lambda n: by_node[n])
        t3 = time.perf_counter()
        index += 1
        st.apply(index, command("node_update_status", node_id=victim, status="down", now=2.0))
        index, placed = _drain_evals(st, index)
        replace_s.append(time.perf_counter() - t3)
        assert placed == by_node[victim], (placed, by_node[victim])
    total = [p + a for p, a in zip(plan_s, apply_s, strict=True)]
    return {"core_plan_ms": round(statistics.median(plan_s) * 1000, 1),
            "core_apply_ms": round(statistics.median(apply_s) * 1000, 1),
            "core_placements_per_s": round(n_allocs / statistics.median(total)),
            "core_replace_node_ms": round(statistics.median(replace_s) * 1000, 2)}


def cluster(n_clients: int, n_allocs: int, seed: int = 1) -> dict[str, Any]:
    from actors.client.alloc_sync import AllocSyncConfig
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=n_clients, check_interval_s=5.0),
                           sync=AllocSyncConfig(wait_s=60.0))
    t_boot = time.perf_counter()
    c = JobCluster(seed, cfg)
    c.run(40.0)
    boot_wall = time.perf_counter() - t_boot
    ready = c.statuses().get("ready", 0)

    from actors.server import RAFT

    def leader_allocs() -> list[dict[str, Any]]:
        leader = c.leader()
        peer = c.actor(leader, RAFT) if leader else None
        return list(peer.state.tables["allocs"].values()) if peer is not None else []

    def placed(job: str) -> int:
        return sum(1 for a in leader_allocs() if a["JobID"] == job and a["DesiredStatus"] == "run")

    t0 = time.perf_counter()
    v0 = c.sched.now
    c.register(sim_job("bench", count=n_allocs, cpu=100, mem=128))
    while placed("bench") < n_allocs and c.sched.now - v0 < 120:
        c.sched.run_until_time(c.sched.now + 0.002)
    place_wall = time.perf_counter() - t0
    place_virtual = c.sched.now - v0
    assert placed("bench") == n_allocs, placed("bench")
    c.run(30.0)  # tasks start and report running
    by_client: dict[str, int] = {}
    for a in c.allocs("bench"):
        by_client[a["NodeID"]] = by_client.get(a["NodeID"], 0) + 1
    victim_node = max(by_client, key=lambda n: by_client[n])
    victim = c.client_of(victim_node)
    assert victim is not None
    c.partition_clients([victim])
    def node_status() -> str:
        leader = c.leader()
        peer = c.actor(leader, RAFT) if leader else None
        return peer.state.tables["nodes"][victim_node]["Status"] if peer is not None else ""

    while node_status() != "down" and c.sched.now - v0 < 600:
        c.sched.run_until_time(c.sched.now + 0.002)  # fine steps: the re-placement follows within ms
    t1 = time.perf_counter()
    v1 = c.sched.now

    def replaced() -> bool:
        live = [a for a in leader_allocs() if a["DesiredStatus"] == "run"]
        return len(live) == n_allocs and all(a["NodeID"] != victim_node for a in live)

    while not replaced() and c.sched.now - v1 < 120:
        c.sched.run_until_time(c.sched.now + 0.002)
    replace_wall = time.perf_counter() - t1
    replace_virtual = c.sched.now - v1
    assert replaced()
    c.close()
    return {"cluster_clients_ready": ready, "cluster_boot_wall_s": round(boot_wall, 2),
            "placements_per_s": round(n_allocs / place_wall), "place_wall_s": round(place_wall, 3),
            "place_virtual_s": round(place_virtual, 3), "replace_node_s": round(replace_wall, 3),
            "replace_node_virtual_s": round(replace_virtual, 3), "replaced_allocs": by_client[victim_node]}


def real_server(n_nodes: int, n_allocs: int) -> dict[str, Any]:
    """One real server process; N nodes registered and heartbeating over its RPC port (the
    heartbeat benchmark's load generator, in this process); a job of N allocations over HTTP."""
    import json as _json
    import tempfile
    import urllib.request

    import gevent

    from benchmarks.heartbeat_bench import start_server, stop
    from benchmarks.heartbeat_loadgen import LoadGen

    def http(method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}{path}", method=method,
                                     data=_json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return _json.loads(r.read() or b"null")

    with tempfile.TemporaryDirectory(prefix="sched-bench-") as tmp:
        server, ports, log = start_server(tmp, {})
        try:
            gen = LoadGen(f"127.0.0.1:{ports['rpc']}", 16, 1)
            gen.start()
            gen.register(gen.add_nodes(n_nodes), 128, deadline_s=300)
            deadline = time.monotonic() + 120
            while sum(n["Status"] == "ready" for n in http("GET", "/v1/nodes")) < n_nodes:
                if time.monotonic() > deadline:
                    raise RuntimeError("nodes not ready in 120 s")
                gevent.sleep(0.2)
            job = {"Job": {"ID": "bench", "Datacenters": ["dc1"], "TaskGroups": [{
                "Name": "g", "Count": n_allocs, "Tasks": [{
                    "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["3600"]},
                    "Resources": {"CPU": 100, "MemoryMB": 128}}]}]}}
            t0 = time.perf_counter()
            eval_id = http("PUT", "/v1/jobs", job)["EvalID"]
            while http("GET", f"/v1/evaluation/{eval_id}")["Status"] != "complete":
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("evaluation not complete in 60 s")
                gevent.sleep(0.005)
            took = time.perf_counter() - t0
            placed = sum(a["DesiredStatus"] == "run" for a in http("GET", "/v1/job/bench/allocations"))
        finally:
            stop(server)
            log.close()
    return {"server_placements_per_s": round(placed / took), "server_place_s": round(took, 3),
            "server_placed": placed}


def run(quick: bool = False) -> dict[str, Any]:
    n_nodes, n_allocs = (100, 100) if quick else (N_NODES, N_ALLOCS)
    out: dict[str, Any] = {"nodes": n_nodes, "allocs": n_allocs}
    print(f"core: {n_allocs} placements over {n_nodes} nodes (scheduler + state machine in-process)")
    out.update(core(n_nodes, n_allocs, 1 if quick else 5))
    print(f"  plan {out['core_plan_ms']} ms + apply {out['core_apply_ms']} ms -> "
          f"{out['core_placements_per_s']} placements/s; a lost node re-placed in {out['core_replace_node_ms']} ms")
    print(f"cluster: 3 servers + {n_nodes} simulated clients, the same job through Raft and the eval broker")
    out.update(cluster(n_nodes, n_allocs))
    print(f"  {n_allocs} placed in {out['place_wall_s']} s wall ({out['place_virtual_s']} s virtual): "
          f"{out['placements_per_s']} placements/s; goal: 1,000 in under 2 s")
    print(f"  node down -> its {out['replaced_allocs']} allocations re-placed in {out['replace_node_s']} s wall "
          f"({out['replace_node_virtual_s']} s virtual)")
    print(f"real server: one agent process, {n_nodes} nodes heartbeating over its RPC port, the job over HTTP")
    out.update(real_server(n_nodes, n_allocs))
    print(f"  {out['server_placed']} placed in {out['server_place_s']} s (register to evaluation complete, "
          f"fsync on): {out['server_placements_per_s']} placements/s")
    return out
