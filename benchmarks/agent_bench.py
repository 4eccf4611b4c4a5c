"""`nomad-bench agent`: start-up time and idle memory of a `-dev` agent.

Start-up is measured from spawning ``bin/nomad-agent -dev`` until
``/v1/agent/health`` answers 200, over several runs (median reported);
memory is the RSS of the last run's agent after it has idled a moment.
Each run gets free ports (a ``-config`` file) so a running agent on 4646
does not interfere.  Goals (issue 3): healthy in under 1.5 s, under 80 MB.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

import psutil

AGENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", "nomad-agent")
RUNS = 5
QUICK_RUNS = 2
# Health is polled this often: small against the ~0.5 s being measured.
POLL_S = 0.005
# A run that is not healthy after this has failed, not merely been slow.
STARTUP_DEADLINE_S = 30.0
# Idle time before reading RSS, so start-up garbage and the first runtime
# sample have settled.
IDLE_SETTLE_S = 1.0
STOP_DEADLINE_S = 10.0
GOAL_STARTUP_S = 1.5
GOAL_RSS_MB = 80.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/agent/health", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def one_run(measure_rss: bool) -> tuple[float, float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        cfg = os.path.join(tmp, "ports.toml")
        with open(cfg, "w") as fh:
            fh.write(f"[ports]\nhttp = {port}\nrpc = {_free_port()}\nserf = {_free_port()}\n")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, AGENT, "-dev", "-config", cfg],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not _healthy(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {proc.returncode} before it was healthy")
                if time.perf_counter() - start > STARTUP_DEADLINE_S:
                    raise RuntimeError(f"agent not healthy within {STARTUP_DEADLINE_S}s")
                time.sleep(POLL_S)
            elapsed = time.perf_counter() - start
            rss = None
            if measure_rss:
                time.sleep(IDLE_SETTLE_S)
                rss = psutil.Process(proc.pid).memory_info().rss / (1024 * 1024)
            proc.send_signal(signal.SIGINT)
            proc.wait(STOP_DEADLINE_S)
            return elapsed, rss
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run(quick: bool = False) -> dict[str, Any]:
    runs = QUICK_RUNS if quick else RUNS
    times: list[float] = []
    rss_mb = 0.0
    for i in range(runs):
        elapsed, rss = one_run(measure_rss=(i == runs - 1))
        times.append(elapsed)
        if rss is not None:
            rss_mb = rss
        print(f"run {i + 1}/{runs}: healthy after {elapsed * 1000:.0f} ms", flush=True)
    median = statistics.median(times)
    print(f"start-up to healthy: median {median:.3f}s (min {min(times):.3f}s, max {max(times):.3f}s; "
          f"goal < {GOAL_STARTUP_S}s)")
    print(f"idle -dev agent RSS: {rss_mb:.1f} MB (goal < {GOAL_RSS_MB:.0f} MB)")
    return {"startup_s": round(median, 3), "startup_min_s": round(min(times), 3),
            "startup_max_s": round(max(times), 3), "rss_mb": round(rss_mb, 1), "runs": runs,
            "goal_startup_s": GOAL_STARTUP_S, "goal_rss_mb": GOAL_RSS_MB}
