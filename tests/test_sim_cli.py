"""bin/nomad-sim: seeded Raft runs replay identically; the swarm summarises; lincheck answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.raft_run import run_raft_seed

ROOT = Path(__file__).resolve().parent.parent


def test_raft_seed_replays_with_the_same_trace():
    a = run_raft_seed(4242, duration_s=20)
    b = run_raft_seed(4242, duration_s=20)
    assert a.ok, a.error
    assert a.trace_hash == b.trace_hash and a.faults == b.faults
    assert run_raft_seed(4243, duration_s=20).trace_hash != a.trace_hash


@pytest.mark.timeout(120)
def test_raft_cli_prints_seed_first_and_trace_last_identically_in_two_processes():
    def run(hashseed: str) -> list[str]:
        out = subprocess.run([sys.executable, str(ROOT / "bin" / "nomad-sim"), "raft", "--seed", "77",
                              "--duration", "15"], capture_output=True, text=True, timeout=60,
                             env={"PYTHONHASHSEED": hashseed, "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stdout + out.stderr
        return [line for line in out.stdout.splitlines() if "wall:" not in line]

    a, b = run("1"), run("2")
    assert a[0] == "seed: 77" and a[-1].startswith("trace: ")
    assert a == b
    assert "replay: bin/nomad-sim raft --seed 77" in "\n".join(a)


@pytest.mark.timeout(120)
def test_swarm_runs_seeds_across_processes_and_summarises():
    # A subprocess: multiprocessing pools do not mix with the test process's gevent patching.
    out = subprocess.run([sys.executable, str(ROOT / "bin" / "nomad-sim"), "swarm", "4", "--first-seed", "500",
                          "--duration", "10", "--processes", "2"], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "seeds run: 4 (from 500)" in out.stdout and "violations: 0" in out.stdout
    assert "simulated:" in out.stdout and "4/4 seeds" in out.stdout


from sim.scenarios import NOT_YET, SCENARIOS  # noqa: E402


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_named_scenario_passes_safety_liveness_and_linearizability(name):
    r = run_raft_seed(3, scenario=name)
    assert r.ok, f"{name}: {r.error}"
    assert r.faults and "heal (liveness phase)" in r.faults[-1]


def test_a_whole_cluster_scenario_asked_of_the_raft_runner_says_where_it_runs():
    name = sorted(NOT_YET)[0]
    with pytest.raises(ValueError, match="nomad-sim cluster --scenario"):
        run_raft_seed(1, scenario=name)


def test_timeline_draws_roles_faults_and_commits(tmp_path):
    out = tmp_path / "run.html"
    r = run_raft_seed(5, scenario="leader-crash", timeline=str(out))
    text = out.read_text()
    assert r.ok and "<svg" in text and "crash" in text and "leader" in text and "commit" in text
