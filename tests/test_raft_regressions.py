"""Raft runs the swarm once failed, replayed by seed (each must stay linearizable and live)."""

from __future__ import annotations

import pytest

from sim.raft_run import run_raft_seed

# seed -> what it found
FOUND = {
    # A ForwardApply delivered twice (the network duplicates) was appended twice
    # once writes were batched per flush: "put 104" re-applied after "put 105".
    # The leader now drops a forwarded write it has already taken.
    43568: "duplicated ForwardApply applied twice",
}


@pytest.mark.parametrize("seed", sorted(FOUND))
def test_raft_regression_seed(seed: int) -> None:
    r = run_raft_seed(seed, duration_s=30.0, servers=3)
    assert r.ok, f"{FOUND[seed]}: {r.error}\nreplay: {r.replay(30.0, 3)}"
