"""`nomad-bench heartbeat --quick` end to end: a real server, a load-generator process, a short simulation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # a benchmark run (~12 s): benchmarks stay out of the default run
@pytest.mark.timeout(120)
def test_quick_heartbeat_bench_holds_its_small_ladder_and_ends_with_the_figures_as_json():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "nomad-bench"), "heartbeat", "--quick"],
                         cwd=ROOT, capture_output=True, text=True, timeout=110, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    for key in ("heartbeats_per_s", "cpu_ms_per_1000_heartbeats", "max_nodes", "sim_day_wall_s"):
        assert key in figures, key
    assert figures["heartbeats_per_s"] > 0 and figures["cpu_ms_per_1000_heartbeats"] > 0
    assert figures["max_nodes"] == 100 and figures["server_survived"]  # no node falsely marked down
    assert figures["sim_downs"] == 0 and figures["sim_day_wall_s"] is None  # --quick simulates no day
