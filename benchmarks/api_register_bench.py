"""`nomad-bench api-register`: only the job-registration figures of `nomad-bench api`, quickly.

The same three ``bin/nomad-agent`` servers and nodes as :mod:`benchmarks.api_bench`, then only its
``single`` (one client, the three servers in turn: ``register_p50_ms``) and ``register`` (``CONNS``
connections: ``register_per_s``) phases -- no reads, no blocking queries, no etcd -- in about 30 s.
Beside the rates: each server's CPU per registration (``cpu_ms_per_register``, user + system;
``sys_ms_per_register``), the figure to compare between two versions on a machine others share, where
the rates follow the cores left over (the load average is in ``loadavg_1m``).  ``leader_index`` says
which server leads (it also schedules every evaluation).  ``--quick``: 100 nodes, shorter phases.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from benchmarks.api_bench import CONNS, _stop, run_load, start_servers

FULL = {"nodes": 1000, "seconds": 10.0, "single": 300}
QUICK = {"nodes": 100, "seconds": 3.0, "single": 60}


def run(quick: bool = False) -> dict[str, Any]:
    p = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="api-register-bench-") as tmp:
        print(f"three nomad-agent servers on loopback, {p['nodes']} nodes; one client, then {CONNS} "
              f"connections for {p['seconds']:g}s registering jobs", flush=True)
        procs, ports, leader = start_servers(tmp)
        try:
            http = [f"127.0.0.1:{x['http']}" for x in ports]
            pids = [pr.pid for pr in procs]
            figures = run_load(tmp, "register", [
                {"name": "nodes", "kind": "nodes", "rpc": f"127.0.0.1:{ports[0]['rpc']}",
                 "count": p["nodes"]},
                {"name": "single", "kind": "sequential", "request": "register", "targets": http,
                 "count": p["single"]},
                {"name": "register", "kind": "throughput", "request": "register", "targets": http,
                 "conns": CONNS, "seconds": p["seconds"], "pids": pids},
            ])
            survived = all(pr.poll() is None for pr in procs)
        finally:
            for pr in procs:
                _stop(pr)
    leader_index = next((i for i, x in enumerate(ports) if leader.endswith(f":{x['rpc']}")), -1)
    r, s = figures["register"], figures["single"]
    print(f"  PUT /v1/jobs, {CONNS} connections: {r['per_s']:.0f}/s, p50 {r['p50_ms']:.2f} ms, "
          f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']}; servers {r['servers_cpu_cores']:.2f} cores")
    print(f"  CPU ms per registration by server (leader #{leader_index}): {r['cpu_ms_per_request']} "
          f"(system {r['sys_ms_per_request']}), total {sum(r['cpu_ms_per_request']):.3f}")
    print(f"  one client over the three servers: p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms; "
          f"each server's p50 {s['p50_by_target_ms']} ms")
    print(f"  machine load average (1 min, {os.cpu_count()} cores) after the phase: {r['loadavg_1m']:g}")
    return {"register_per_s": r["per_s"], "register_p50_ms": s["p50_ms"], "register_p99_ms": r["p99_ms"],
            "register_concurrent_p50_ms": r["p50_ms"], "register_p50_by_server_ms": s["p50_by_target_ms"],
            "cpu_ms_per_register": r["cpu_ms_per_request"], "sys_ms_per_register": r["sys_ms_per_request"],
            "cpu_ms_per_register_total": round(sum(r["cpu_ms_per_request"]), 3),
            "servers_cpu_cores": r["servers_cpu_cores"], "leader_index": leader_index,
            "errors": r["errors"] + s["errors"], "servers_survived": survived, "nodes": p["nodes"],
            "conns": CONNS, "seconds": p["seconds"], "loadavg_1m": r["loadavg_1m"]}
