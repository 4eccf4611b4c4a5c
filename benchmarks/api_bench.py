"""`nomad-bench api`: the HTTP API's throughput and latency on three real servers, next to etcd.

Figures (issue 8):

* ``reads_per_s`` / ``read_p99_ms`` -- ``GET /v1/nodes`` (linearizable, the
  default) with 1,000 nodes registered, from ``CONNS`` concurrent keep-alive
  connections spread over the three servers;
* ``health_per_s`` / ``health_p99_ms`` -- ``GET /v1/agent/health`` the same way;
* ``register_per_s`` / ``register_p99_ms`` -- ``PUT /v1/jobs`` (a small
  service job, a distinct ID each) the same way: each answer means the job
  and its evaluation are committed by a Raft majority, fsynced;
* ``register_evals_pending_after`` -- evaluations still pending when the
  register phase ends (of ``evals_total``): the scheduling those
  registrations caused that had not run inside the window;
* ``register_p50_ms`` -- one client registering jobs one after another,
  taking the three servers in turn (``register_p50_by_server_ms`` has each
  one's median; ``leader_index`` says which is the leader);
* ``blocking_wake_ms`` -- ``GET /v1/jobs?index=N&wait=30s`` parked on one
  server, a job registered through another: the median time from the
  registration's answer to the blocked query's answer;
* ``peer`` -- etcd (Debian ``etcd-server``), three members on loopback with
  their default fsync, taking ``POST /v3/kv/put`` on its JSON gateway from
  the same number of connections (``register_per_s`` is puts/s), and one
  client's put p50 (``register_p50_ms``), taking the three members in turn
  as ours does (a follower forwards a put to the leader, as ours forwards a
  registration).

Three ``bin/nomad-agent`` servers (``bootstrap_expect = 3``, data dirs on
disk) start first; 1,000 simulated client nodes register over a server's
RPC port and keep heartbeating at their TTL (the load process holds them,
:mod:`benchmarks.heartbeat_loadgen`).  All HTTP load comes from a separate
process (:mod:`benchmarks.api_load`); the servers' CPU over each phase is
reported too, and each throughput divided by it (``per_server_cpu_s``):
on a shared machine the rate a system reaches depends on the cores it is
given, its rate per CPU-second much less (the machine's load average after
each phase is in the figures).  The agents stop before etcd starts, so the
two never compete with each other.  ``--quick``: 100 nodes and short phases.
"""

from __future__ import annotations

import json
import os
import shutil
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
CONNS = 16  # concurrent keep-alive connections (the "concurrent clients")
GOAL_READS_PER_S = 2000.0
GOAL_WAKE_MS = 50.0
STARTUP_DEADLINE_S = 60.0  # three servers gossip, bootstrap and elect
STOP_DEADLINE_S = 15.0
POLL_S = 0.1
LOAD_TIMEOUT_S = 3600.0  # a load process still running after this has hung

FULL = {"nodes": 1000, "seconds": 10.0, "single": 300, "wake_trials": 15}
QUICK = {"nodes": 100, "seconds": 2.0, "single": 40, "wake_trials": 5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------ our three servers

def start_servers(tmp: str, extra: tuple[str, ...] = ()
                  ) -> tuple[list[subprocess.Popen[bytes]], list[dict[str, int]], str]:
    """Three servers on loopback; *extra* top-level config lines (``enable_debug = true`` lets a
    profiling run read /v1/agent/pprof/profile)."""
    ports = [{"http": _free_port(), "rpc": _free_port(), "serf": _free_port()} for _ in range(3)]
    join = json.dumps([f"127.0.0.1:{p['serf']}" for p in ports])
    procs = []
    for i, p in enumerate(ports):
        cfg = os.path.join(tmp, f"s{i}.toml")
        with open(cfg, "w") as fh:
            fh.write("\n".join([
                f'name = "s{i}"', f'data_dir = "{os.path.join(tmp, f"s{i}")}"', 'bind_addr = "127.0.0.1"',
                *extra,
                "[ports]", *(f"{k} = {v}" for k, v in p.items()),
                "[server]", "enabled = true", "bootstrap_expect = 3", 'gossip_profile = "lan"',
                "[server.server_join]", f"retry_join = {join}", 'retry_interval = "1s"',
            ]) + "\n")
        log = open(os.path.join(tmp, f"s{i}.log"), "wb")  # the process holds it
        procs.append(subprocess.Popen([sys.executable, AGENT, "-config", cfg], stdout=log,
                                      stderr=subprocess.STDOUT, cwd=ROOT))
        log.close()
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        leaders = set()
        for p in ports:
            status, body = _get(f"http://127.0.0.1:{p['http']}/v1/status/leader")
            leaders.add(json.loads(body) if status == 200 else "")
        if len(leaders) == 1 and "" not in leaders:
            return procs, ports, leaders.pop()
        if any(pr.poll() is not None for pr in procs) or time.monotonic() > deadline:
            for pr in procs:
                pr.kill()
            raise RuntimeError(f"no leader among the three servers within {STARTUP_DEADLINE_S}s "
                               f"(logs in {tmp})")
        time.sleep(POLL_S)


# ------------------------------------------------------------ etcd

def etcd_binary() -> tuple[str | None, str]:
    """etcd's path, installing Debian's etcd-server if it is missing; else (None, why)."""
    path = shutil.which("etcd")
    if path:
        return path, ""
    try:
        got = subprocess.run(["apt-get", "install", "-y", "etcd-server"], capture_output=True, text=True,
                             timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"etcd not installed and apt-get failed: {e}"
    path = shutil.which("etcd")
    if path:
        return path, ""
    return None, f"etcd not installed; apt-get install etcd-server exited {got.returncode}: " \
                 f"{(got.stderr or got.stdout).strip().splitlines()[-1:]}"


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def etcd_leader_index(targets: list[str]) -> int:
    """Which member leads (``/v3/maintenance/status``: its member ID is the leader's); -1 unknown."""
    for i, t in enumerate(targets):
        status, body = _post(f"http://{t}/v3/maintenance/status", b"{}")
        if status == 200:
            st = json.loads(body)
            if st.get("leader") and st.get("leader") == (st.get("header") or {}).get("member_id"):
                return i
    return -1


def start_etcd(binary: str, tmp: str) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    peers = [_free_port() for _ in range(3)]
    clients = [_free_port() for _ in range(3)]
    cluster = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(peers))
    procs = []
    for i in range(3):
        log = open(os.path.join(tmp, f"etcd{i}.log"), "wb")  # the process holds it
        procs.append(subprocess.Popen([
            binary, "--name", f"e{i}", "--data-dir", os.path.join(tmp, f"etcd{i}"),
            "--listen-client-urls", f"http://127.0.0.1:{clients[i]}",
            "--advertise-client-urls", f"http://127.0.0.1:{clients[i]}",
            "--listen-peer-urls", f"http://127.0.0.1:{peers[i]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peers[i]}",
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", "nomad-bench"], stdout=log, stderr=subprocess.STDOUT))
        log.close()
    targets = [f"127.0.0.1:{c}" for c in clients]
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        if all(_get(f"http://{t}/health")[0] == 200 for t in targets):
            return procs, targets
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise RuntimeError(f"etcd not healthy within {STARTUP_DEADLINE_S}s (logs in {tmp})")
        time.sleep(POLL_S)


# ------------------------------------------------------------ the load process

def run_load(tmp: str, name: str, phases: list[dict[str, Any]]) -> dict[str, Any]:
    plan = os.path.join(tmp, f"{name}-plan.json")
    with open(plan, "w") as fh:
        json.dump({"phases": phases}, fh)
    out = subprocess.run([sys.executable, "-m", "benchmarks.api_load", plan], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=None, text=True, timeout=LOAD_TIMEOUT_S)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"load process failed ({out.returncode}); logs in {tmp}")
    return json.loads(lines[-1])


def ours(tmp: str, p: dict[str, Any]) -> dict[str, Any]:
    procs, ports, leader = start_servers(tmp)
    try:
        http = [f"127.0.0.1:{x['http']}" for x in ports]
        pids = [pr.pid for pr in procs]
        print(f"  three servers up, leader {leader}; registering {p['nodes']} nodes ...", flush=True)
        secs = p["seconds"]
        phases = [
            {"name": "nodes", "kind": "nodes", "rpc": f"127.0.0.1:{ports[0]['rpc']}", "count": p["nodes"]},
            {"name": "health", "kind": "throughput", "request": "health", "targets": http, "conns": CONNS,
             "seconds": secs, "pids": pids},
            {"name": "reads", "kind": "throughput", "request": "nodes", "targets": http, "conns": CONNS,
             "seconds": secs, "pids": pids},
            {"name": "single", "kind": "sequential", "request": "register", "targets": http,
             "count": p["single"]},
            {"name": "wake", "kind": "wake", "targets": http, "trials": p["wake_trials"], "wait": "30s"},
            {"name": "register", "kind": "throughput", "request": "register", "targets": http, "conns": CONNS,
             "seconds": secs, "pids": pids},
            {"name": "backlog", "kind": "backlog", "targets": http},
        ]
        figures = run_load(tmp, "nomad", phases)
        figures["survived"] = all(pr.poll() is None for pr in procs)
        figures["leader_index"] = next((i for i, x in enumerate(ports)
                                        if leader.endswith(f":{x['rpc']}")), -1)
        return figures
    finally:
        for pr in procs:
            _stop(pr)


def etcd(tmp: str, p: dict[str, Any]) -> dict[str, Any]:
    binary, why = etcd_binary()
    if binary is None:
        return {"available": False, "reason": why}
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    procs, targets = start_etcd(binary, tmp)
    try:
        phases = [
            {"name": "single", "kind": "sequential", "request": "etcd_put", "targets": targets,
             "count": p["single"]},
            {"name": "put", "kind": "throughput", "request": "etcd_put", "targets": targets, "conns": CONNS,
             "seconds": p["seconds"], "pids": [pr.pid for pr in procs]},
        ]
        leader = etcd_leader_index(targets)
        figures = run_load(tmp, "etcd", phases)
        figures.update(available=True, version=version, leader_index=leader)
        return figures
    finally:
        for pr in procs:
            _stop(pr, signal.SIGTERM)


# ------------------------------------------------------------ the report

def _line(label: str, f: dict[str, Any]) -> str:
    return (f"  {label:<34} {f['per_s']:>8.0f}/s  p50 {f['p50_ms']:>7.2f} ms  p99 {f['p99_ms']:>7.2f} ms  "
            f"errors {f['errors']}  (servers {f.get('servers_cpu_cores', 0):.2f} cores, "
            f"load {f.get('load_cpu_cores', 0):.2f})")


def _per_cpu(f: dict[str, Any]) -> float:
    cores = f.get("servers_cpu_cores") or 0.0
    return round(f["per_s"] / cores) if cores else 0.0


def run(quick: bool = False) -> dict[str, Any]:
    p = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        print(f"three nomad-agent servers on loopback, {p['nodes']} nodes, {CONNS} connections, "
              f"{p['seconds']:g}s per phase", flush=True)
        n = ours(tmp, p)
        print(f"  nodes registered over RPC in {n['nodes']['seconds']}s")
        print(_line("GET /v1/agent/health", n["health"]))
        print(_line(f"GET /v1/nodes ({p['nodes']} nodes)", n["reads"]))
        print(_line("PUT /v1/jobs", n["register"]))
        single = n["single"]
        print(f"  PUT /v1/jobs, one client over the three servers: p50 {single['p50_ms']:.2f} ms, "
              f"p99 {single['p99_ms']:.2f} ms ({single['requests']} jobs, errors {single['errors']}); "
              f"each server's p50 {single['p50_by_target_ms']} ms, leader #{n['leader_index']}")
        b = n["backlog"]
        print(f"  evaluations still pending when the register phase ended: {b['pending']} of {b['evals']}")
        w = n["wake"]
        print(f"  blocking query wake: median {w['median_ms']:.2f} ms, max {w['max_ms']:.2f} ms "
              f"({len(w['samples_ms'])} of {w['trials']} trials; failures {w['failures']})")
        loads = ", ".join(f"{k} {n[k]['loadavg_1m']:g}" for k in ("health", "reads", "register"))
        print(f"  machine load average (1 min, {os.cpu_count()} cores) after each phase: {loads}")
        print("etcd, three members on loopback (fsync on), PUT /v3/kv/put ...", flush=True)
        e = etcd(tmp, p)
        if e["available"]:
            print(f"  {e['version']}")
            print(_line("POST /v3/kv/put", e["put"]))
            single = e["single"]
            print(f"  POST /v3/kv/put, one client over the three members: p50 {single['p50_ms']:.2f} ms, "
                  f"p99 {single['p99_ms']:.2f} ms; each member's p50 {single['p50_by_target_ms']} ms, "
                  f"leader #{e['leader_index']}; machine load average {e['put']['loadavg_1m']:g}")
            peer: dict[str, Any] = {
                "name": "etcd", "version": e["version"], "register_per_s": e["put"]["per_s"],
                "register_p50_ms": e["single"]["p50_ms"], "register_p99_ms": e["put"]["p99_ms"],
                "register_p50_by_server_ms": e["single"]["p50_by_target_ms"],
                "leader_index": e["leader_index"],
                "servers_cpu_cores": e["put"]["servers_cpu_cores"], "loadavg_1m": e["put"]["loadavg_1m"],
                "errors": e["put"]["errors"] + e["single"]["errors"]}
        else:
            print(f"  etcd unavailable: {e['reason']}")
            peer = {"name": "etcd", "available": False, "reason": e["reason"]}
    out = {
        "reads_per_s": n["reads"]["per_s"], "read_p99_ms": n["reads"]["p99_ms"],
        "read_p50_ms": n["reads"]["p50_ms"],
        "health_per_s": n["health"]["per_s"], "health_p99_ms": n["health"]["p99_ms"],
        "register_per_s": n["register"]["per_s"], "register_p99_ms": n["register"]["p99_ms"],
        "register_p50_ms": n["single"]["p50_ms"], "register_concurrent_p50_ms": n["register"]["p50_ms"],
        "register_p50_by_server_ms": n["single"]["p50_by_target_ms"], "leader_index": n["leader_index"],
        # Evaluations still pending when the register phase ends: scheduling
        # its registrations caused that had not run inside the window.
        "register_evals_pending_after": n["backlog"]["pending"], "evals_total": n["backlog"]["evals"],
        "blocking_wake_ms": w["median_ms"], "blocking_wake_max_ms": w["max_ms"],
        "errors": sum(n[k]["errors"] for k in ("health", "reads", "register", "single")) + w["failures"],
        "servers_survived": n["survived"], "nodes": p["nodes"], "conns": CONNS, "seconds": p["seconds"],
        "servers_cpu_cores": {k: n[k]["servers_cpu_cores"] for k in ("health", "reads", "register")},
        # The machine's 1-minute load average after each phase: other work
        # running beside the benchmark takes cores from both systems.
        "loadavg_1m": {k: n[k]["loadavg_1m"] for k in ("health", "reads", "register")},
        "peer": peer,
    }
    # Requests per second of the servers' own CPU: what each system gets out
    # of the cores it was given, whatever else the machine was running.
    out["per_server_cpu_s"] = {k: _per_cpu(n[k]) for k in ("health", "reads", "register")}
    if e.get("available"):
        peer["register_per_server_cpu_s"] = _per_cpu(e["put"])
    goals = {"reads": out["reads_per_s"] > GOAL_READS_PER_S, "wake": out["blocking_wake_ms"] <= GOAL_WAKE_MS}
    if peer.get("register_per_s"):
        goals["register_per_s"] = out["register_per_s"] >= peer["register_per_s"]
        goals["register_p50"] = out["register_p50_ms"] <= peer["register_p50_ms"]
    out["goals_met"] = goals
    eff = out["per_server_cpu_s"]
    print(f"per second of server CPU: health {eff['health']:.0f}, reads {eff['reads']:.0f}, "
          f"registrations {eff['register']:.0f}"
          + (f"; etcd puts {peer['register_per_server_cpu_s']:.0f}" if e.get("available") else ""))
    print("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    return out
