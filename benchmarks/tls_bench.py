"""`nomad-bench tls`: Raft writes/s with and without mutual TLS on the RPC transport.

Three Raft server processes on loopback, as ``nomad-bench raft`` runs them
(``benchmarks/raft_bench.py``'s :class:`Cluster` and ``measure_system``, fsync
on), once over plain TCP (``benchmarks/raft_node.py``) and once with every
connection mutual TLS and ``verify_server_hostname`` on
(``benchmarks/tls_raft_node.py``, certificates from ``nomad tls``).  The
load is generated inside the leader's process, so the figures are Raft's
over the two transports.  Issue 10's goal: under 30% throughput loss.

The two runs alternate (plain, TLS, plain, TLS, ...) and each figure is the
best of its rounds, so a busy moment on the shared machine does not land
on one side only.

Run: ``nomad-bench tls [--quick]``; the last line is a JSON object with
``writes_per_s_plain``, ``writes_per_s_tls`` and ``tls_loss_pct``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Any

from benchmarks import raft_bench
from benchmarks.raft_bench import INFLIGHT, at, measure_system

TLS_SCRIPT = os.path.join(raft_bench.REPO, "benchmarks", "tls_raft_node.py")
GOAL_LOSS_PCT = 30.0  # issue 10: under 30% throughput loss with mutual TLS on RPC


def make_certs(directory: str) -> None:
    """A CA and a server certificate, as ``nomad tls ca create`` / ``tls cert create -server`` write them."""
    from runtime.cli_tls import create_ca, create_cert

    create_ca(directory)
    create_cert("server", directory, ca_file=os.path.join(directory, "nomad-agent-ca.pem"),
                ca_key_file=os.path.join(directory, "nomad-agent-ca-key.pem"))


def _round(kind: str, base: str, label: str, *, seconds: float, seq_writes: int,
           levels: tuple[int, ...]) -> dict[str, Any]:
    return measure_system(kind, base, ["--sync", "FULL"], seconds=seconds, seq_writes=seq_writes,
                          levels=levels, modes=("future",), failover=False, label=label)


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 2.0 if quick else 4.0
    seq_writes = 300 if quick else 1000
    levels = (INFLIGHT, 1024)
    rounds = 1 if quick else 2
    base = tempfile.mkdtemp(prefix="tls-bench-")
    certs = os.path.join(base, "certs")
    os.makedirs(certs)
    make_certs(certs)
    raft_bench.SCRIPTS["ours-tls"] = TLS_SCRIPT
    os.environ["NOMAD_BENCH_TLS_DIR"] = certs  # inherited by the server processes
    print(f"three Raft servers on 127.0.0.1 (sqlite, fsync), plain TCP vs mutual TLS "
          f"(ECDSA P-256, TLS 1.3, verify_server_hostname); {os.cpu_count()} CPUs; data in {base}",
          flush=True)
    plain: list[dict[str, Any]] = []
    tls: list[dict[str, Any]] = []
    try:
        for i in range(rounds):
            plain.append(_round("ours", base, f"plain TCP  (round {i + 1})", seconds=seconds,
                                seq_writes=seq_writes, levels=levels))
            tls.append(_round("ours-tls", base, f"mutual TLS (round {i + 1})", seconds=seconds,
                              seq_writes=seq_writes, levels=levels))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def best_at(runs: list[dict[str, Any]], level: int) -> float:
        return max(at(r, "future", level) for r in runs)

    def best_seq(runs: list[dict[str, Any]], key: str) -> float:
        return min(r["seq"][key] for r in runs)

    w_plain = max(best_at(plain, lv) for lv in levels)
    w_tls = max(best_at(tls, lv) for lv in levels)
    loss = round(100.0 * (1 - w_tls / w_plain), 1) if w_plain else 0.0
    figures: dict[str, Any] = {
        "writes_per_s_plain": w_plain,
        "writes_per_s_tls": w_tls,
        "tls_loss_pct": loss,
        "writes_per_s_plain_256": best_at(plain, INFLIGHT),
        "writes_per_s_tls_256": best_at(tls, INFLIGHT),
        "p50_ms_plain": best_seq(plain, "p50_ms"),
        "p50_ms_tls": best_seq(tls, "p50_ms"),
        "p99_ms_plain": best_seq(plain, "p99_ms"),
        "p99_ms_tls": best_seq(tls, "p99_ms"),
        "in_flight_levels": list(levels),
        "rounds": rounds,
        "goal_loss_pct": GOAL_LOSS_PCT,
        "goal_met": loss < GOAL_LOSS_PCT,
    }
    w = 14
    print()
    print(f"  {'':36}{'plain TCP':>{w}}{'mutual TLS':>{w}}")
    print(f"  {'writes/s, best of in-flight levels':36}{w_plain:>{w},.0f}{w_tls:>{w},.0f}"
          f"   loss {loss:.1f}% (goal < {GOAL_LOSS_PCT:g}%)")
    print(f"  {'writes/s, 256 in flight':36}{figures['writes_per_s_plain_256']:>{w},.0f}"
          f"{figures['writes_per_s_tls_256']:>{w},.0f}")
    print(f"  {'sequential write p50 ms':36}{figures['p50_ms_plain']:>{w}.3f}{figures['p50_ms_tls']:>{w}.3f}")
    print(f"  {'sequential write p99 ms':36}{figures['p99_ms_plain']:>{w}.3f}{figures['p99_ms_tls']:>{w}.3f}")
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), sort_keys=True))
