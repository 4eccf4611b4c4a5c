"""`nomad-bench sim`: how fast the simulator runs whole clusters.

* ``realtime_ratio`` -- virtual seconds per wall second for 5 servers + 100
  clients running jobs (SimDriver tasks) under background load: a job is
  rescaled every 10 virtual seconds and a client's agent restarted every
  30, so Raft, the scheduler, allocation sync and heartbeats all work.
  Goal: at least 1,000x real time.
* ``day_1000_clients_wall_s`` -- wall seconds for a simulated day of 3
  servers + 1,000 clients (registration, heartbeats, node GC; the
  heartbeat issue's figure).  Goal: under 60 s.  ``--quick`` runs an hour
  after an untimed 5-minute warm-up and scales it (``day_1000_clients_is_estimate``).
* ``deliveries_per_s`` -- network deliveries (every message through the
  real codec) per wall second over the 5 + 100 run.
"""

from __future__ import annotations

import time
from typing import Any

DAY_S = 86_400.0


def realtime(virtual_s: float) -> dict[str, Any]:
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    cfg = JobClusterConfig(base=ClusterConfig(n_servers=5, n_clients=100, check_interval_s=5.0))
    c = JobCluster(1, cfg)
    c.run(30.0)
    c.register(sim_job("web", count=50, cpu=200))
    c.register(sim_job("api", count=20, cpu=200))
    net = c.sched.network.stats
    d0 = net["delivered"]
    t0, v0 = time.perf_counter(), c.sched.now
    i = 0
    while c.sched.now - v0 < virtual_s:
        c.run(10.0)
        i += 1
        try:
            c.register(sim_job("web", count=40 + (i * 7) % 30, cpu=200))
        except (RuntimeError, TimeoutError):
            pass
        if i % 3 == 0:
            victim = c.clients[(i // 3) % len(c.clients)]
            c.crash(victim)
            c.run(1.0)
            c.restart(victim)
    wall = time.perf_counter() - t0
    virtual = c.sched.now - v0
    delivered = net["delivered"] - d0
    # Not timed: the last rescale was just registered; the cluster must
    # settle to every job's count running exactly once within a minute.
    settle_end = c.sched.now + 60.0
    while (problems := c.converged()) and c.sched.now < settle_end:
        c.run(1.0)
    c.close()
    return {"realtime_ratio": round(virtual / wall), "realtime_virtual_s": round(virtual), "realtime_wall_s":
            round(wall, 2), "deliveries_per_s": round(delivered / wall), "realtime_converged": not problems}


def day(virtual_s: float, warmup_s: float = 0.0) -> dict[str, Any]:
    """Wall time of *virtual_s* simulated seconds of 3 servers + 1,000 clients.  With *warmup_s*, that
    much runs first, untimed (start-up: 1,000 registrations through Raft), so a short span measures the
    steady state a day is made of instead of charging the start-up to every hour it is scaled to."""
    from sim.client_cluster import ClientCluster, ClusterConfig

    c = ClientCluster(1, ClusterConfig(n_servers=3, n_clients=1000, check_interval_s=10.0))
    if warmup_s:
        c.run(warmup_s)
    t0 = time.perf_counter()
    c.run(virtual_s)
    wall = time.perf_counter() - t0
    ready = c.statuses().get("ready", 0)
    c.close()
    return {"day_virtual_s": virtual_s, "day_wall_s": round(wall, 2), "day_nodes_ready": ready}


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    span = 300.0 if quick else 1800.0
    print(f"5 servers + 100 clients with jobs and background load, {span:.0f} virtual seconds")
    out.update(realtime(span))
    print(f"  {out['realtime_ratio']}x real time ({out['realtime_virtual_s']} s in {out['realtime_wall_s']} s wall), "
          f"{out['deliveries_per_s']} network deliveries/s; goal >= 1000x")
    day_span = 3600.0 if quick else DAY_S
    print(f"3 servers + 1000 clients, {day_span:.0f} virtual seconds")
    # --quick: an hour after a 5-minute warm-up, scaled to a day (the day's own start-up is then left
    # out of the estimate: it is one start-up in 24 hours, not one an hour).
    d = day(day_span, warmup_s=300.0 if quick else 0.0)
    scale = DAY_S / day_span
    out["day_1000_clients_wall_s"] = round(d["day_wall_s"] * scale, 1)
    out["day_1000_clients_is_estimate"] = scale != 1.0
    out["day_nodes_ready"] = d["day_nodes_ready"]
    print(f"  a simulated day in {out['day_1000_clients_wall_s']} s wall"
          f"{' (scaled from an hour)' if scale != 1.0 else ''}; {d['day_nodes_ready']} nodes ready; goal < 60 s")
    return out
