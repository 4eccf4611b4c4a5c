"""`nomad-bench heartbeat`: one real server against N simulated clients, and a simulated day.

Figures (issue 6):

* ``heartbeats_per_s`` and ``cpu_ms_per_1000_heartbeats`` -- one real
  ``bin/nomad-agent`` server (``bootstrap_expect = 1``, its own data dir,
  loopback ports, default settings) and a separate load-generator process
  (:mod:`benchmarks.heartbeat_loadgen`) that registers nodes and then keeps a
  window of heartbeats in flight over the server's real RPC port.  Server
  CPU is ``psutil`` user + system time of the server's pid over the phase.
* ``max_nodes`` -- the same server and load generator, now following the
  TTL each answer carries, as a real client does, with the **default**
  heartbeat settings (10 s minimum TTL, 50 heartbeats/s, 10 s grace).  The
  population grows up a ladder; a rung holds when, after every node has had
  time for one full heartbeat cycle at its longest possible TTL (twice the
  rate-scaled base, plus grace: 410 s at 10,000 nodes), ``/v1/nodes`` shows
  every node ``ready`` and no heartbeat was ever answered as a restore of a
  node marked down.  ``max_nodes`` is the largest rung held; the ladder
  goes to twice the issue's goal (10,000), and a pass of its top reads
  "at least".  The full ladder takes about half an hour.
* ``sim_day_wall_s`` -- wall time of one simulated day of 3 servers and
  1,000 clients (:class:`sim.client_cluster.ClientCluster`, checkers on),
  in a child process so it has the machine to itself.

``--quick`` (smoke test): small populations, the server on test TTLs (1 s
minimum, 1 s grace) so a rung holds in seconds, and half a simulated hour
of 100 clients in place of the day (``sim_day_wall_s`` is then null).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "bin", "nomad-agent")
GOAL_NODES = 10_000
GOAL_SIM_DAY_S = 60.0
STARTUP_DEADLINE_S = 30.0  # server healthy and leading
STOP_DEADLINE_S = 15.0
POLL_S = 0.05

FULL = {"ladder": "1000,2500,5000,10000,20000", "throughput_nodes": 1000, "throughput_s": 15.0, "window": 256,
        "sim_clients": 1000, "sim_seconds": 86400.0}
QUICK = {"ladder": "50,100", "throughput_nodes": 50, "throughput_s": 1.0, "window": 32,
         "sim_clients": 100, "sim_seconds": 1800.0}
# --quick only: TTLs short enough that a rung holds in seconds.
QUICK_SERVER_TTLS = {"min_heartbeat_ttl": 1.0, "heartbeat_grace": 1.0}
DEFAULT_TTLS = {"min_heartbeat_ttl": 10.0, "heartbeat_grace": 10.0}
MAX_HEARTBEATS_PER_SECOND = 50.0  # the server default the load generator must know for its windows

SIM_SCRIPT = """
import json, sys, time
from sim.client_cluster import ClientCluster, ClusterConfig
n, secs = int(sys.argv[1]), float(sys.argv[2])
c = ClientCluster(1000, ClusterConfig(n_clients=n, check_interval_s=5.0))
t0, cpu0 = time.perf_counter(), time.process_time()
c.run(secs)
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
print(json.dumps({"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "turns": c.sched.messages,
                  "downs": len(c.checker.downs),
                  "statuses": c.statuses(), "network": c.sched.network.stats["delivered"]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def start_server(tmp: str, ttls: dict[str, float]) -> tuple[subprocess.Popen[bytes], dict[str, int], Any]:
    ports = {"http": _free_port(), "rpc": _free_port(), "serf": _free_port()}
    cfg = os.path.join(tmp, "server.toml")
    with open(cfg, "w") as fh:
        fh.write("\n".join([
            'name = "bench-server"', f'data_dir = "{os.path.join(tmp, "data")}"', 'bind_addr = "127.0.0.1"',
            "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
            "[server]", "enabled = true", "bootstrap_expect = 1",
            *(f'{k} = "{v:g}s"' for k, v in ttls.items()),
        ]) + "\n")
    log = open(os.path.join(tmp, "server.log"), "wb")  # closed by the caller
    proc = subprocess.Popen([sys.executable, AGENT, "-config", cfg], stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        status, body = _get(f"http://127.0.0.1:{ports['http']}/v1/status/leader")
        if status == 200 and json.loads(body or b'""'):
            return proc, ports, log
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server not leading within {STARTUP_DEADLINE_S}s (see {log.name})")
        time.sleep(POLL_S)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def real_server(p: dict[str, Any], ttls: dict[str, float]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hb-bench-") as tmp:
        server, ports, log = start_server(tmp, ttls)
        try:
            cmd = [sys.executable, "-m", "benchmarks.heartbeat_loadgen",
                   "--server", f"127.0.0.1:{ports['rpc']}", "--http", f"127.0.0.1:{ports['http']}",
                   "--server-pid", str(server.pid), "--ladder", p["ladder"],
                   "--throughput-nodes", str(p["throughput_nodes"]), "--throughput-s", str(p["throughput_s"]),
                   "--throughput-window", str(p["window"]),
                   "--min-ttl", str(ttls["min_heartbeat_ttl"]), "--grace", str(ttls["heartbeat_grace"]),
                   "--rate", str(MAX_HEARTBEATS_PER_SECOND)]
            gen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=None, text=True)
            try:
                out, _ = gen.communicate()
            finally:
                if gen.poll() is None:
                    gen.kill()
                    gen.wait()
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if gen.returncode != 0 or not lines:
                raise RuntimeError(f"load generator failed ({gen.returncode}); server log {log.name}")
            figures = json.loads(lines[-1])
            alive = server.poll() is None
        finally:
            stop(server)
            log.close()
        figures["server_survived"] = alive
        return figures


def sim_run(n_clients: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", SIM_SCRIPT, str(n_clients), str(seconds)], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.splitlines()[-1])


def _print_server(f: dict[str, Any], p: dict[str, Any], quick: bool) -> None:
    print(f"  heartbeats sustained: {f['heartbeats_per_s']:.0f}/s ({p['window']} in flight, "
          f"{p['throughput_nodes']} nodes); server CPU {f['cpu_ms_per_1000_heartbeats']} ms per 1,000 "
          f"heartbeats ({f['server_cpu_util'] * 100:.0f}% of a core; load generator "
          f"{f['loadgen_cpu_util'] * 100:.0f}%); RTT p50 {f['saturate_rtt_p50_ms']} ms, "
          f"p99 {f['saturate_rtt_p99_ms']} ms")
    print(f"  one server core would answer about {f['capacity']:.0f} heartbeats/s at that CPU cost (when the "
          f"server is under 100%, the load generator or other work on the machine limits the figure above)")
    print(f"  registration: {f['register_per_s']:.0f} nodes/s")
    for r in f["rungs"]:
        print(f"  {r['nodes']:>6} nodes: {'held' if r['ok'] else 'FAILED'} for {r['held_s']:.0f}s, "
              f"{r['heartbeats_per_s']:.1f} heartbeats/s, "
              f"server {r['server_cpu_util'] * 100:.1f}% of a core, "
              f"RSS {r['rss_mb']} MB, statuses {r['statuses']}, restored {r['restored']}")
    top = " (the ladder top: at least this many)" if f["held_top"] else ""
    print(f"  max_nodes: {f['max_nodes']}{top}{'' if quick else f'; goal {GOAL_NODES}'}")


def run(quick: bool = False) -> dict[str, Any]:
    p = QUICK if quick else FULL
    ttls = QUICK_SERVER_TTLS if quick else DEFAULT_TTLS
    print(f"simulator: 3 servers + {p['sim_clients']} clients for {p['sim_seconds']:.0f} virtual s ...",
          flush=True)
    sim = sim_run(p["sim_clients"], p["sim_seconds"])
    print(f"  {sim['wall_s']}s wall ({sim['cpu_s']}s of CPU), {sim['turns']} actor turns, "
          f"{sim['network']} network messages, node downs {sim['downs']}, {sim['statuses']}", flush=True)
    print(f"real server: ladder {p['ladder']} nodes, TTLs {ttls}, "
          f"throughput with {p['window']} in flight ...", flush=True)
    load_before = os.getloadavg()[0]
    f = real_server(p, ttls)
    load_after = os.getloadavg()[0]
    print(f"  (machine load average {load_before:.1f} before, {load_after:.1f} after: other work on these "
          f"2 cores slows both processes)")
    f["capacity"] = 1e6 / f["cpu_ms_per_1000_heartbeats"] if f["cpu_ms_per_1000_heartbeats"] else 0.0
    f["held_top"] = f["max_nodes"] == int(p["ladder"].split(",")[-1])
    _print_server(f, p, quick)
    sim_day = None if quick else sim["wall_s"]
    if not quick:
        print(f"  simulated day: {sim_day}s wall, {sim['cpu_s']}s of CPU (goal < {GOAL_SIM_DAY_S:.0f}s wall; "
              f"the wall time counts whatever else runs on this machine)")
    keep = ("heartbeats_per_s", "cpu_ms_per_1000_heartbeats", "max_nodes", "register_per_s",
            "server_cpu_util", "loadgen_cpu_util", "saturate_rtt_p99_ms", "rungs", "lanes", "timeouts",
            "errors", "server_survived")
    return {**{k: f[k] for k in keep}, "sim_day_wall_s": sim_day, "max_nodes_is_ladder_top": f["held_top"],
            "server_core_heartbeats_per_s_est": round(f["capacity"]),
            "sim_wall_s": sim["wall_s"], "sim_cpu_s": sim["cpu_s"], "sim_clients": p["sim_clients"],
            "sim_virtual_s": p["sim_seconds"], "sim_downs": sim["downs"], "default_ttls": not quick,
            "load_avg_before": round(load_before, 2), "load_avg_after": round(load_after, 2),
            "goal_nodes": GOAL_NODES, "goal_sim_day_s": GOAL_SIM_DAY_S}
