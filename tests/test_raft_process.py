"""Three real Raft server processes on loopback (benchmarks/raft_node.py).

Each server is its own process with a TCP transport and a SQLite store
(``synchronous=FULL``) in its own data dir under ``tmp_path``.  The test
writes through the control API, SIGKILLs the leader, keeps writing, restarts
the killed server on the same data dir, and checks that every acknowledged
write is present on all three servers -- including those of concurrent
clients writing to the leader directly and through a follower when it died.
Every wait polls a condition against a deadline; every process is ended by
PID in a finalizer.
"""

from __future__ import annotations

import itertools
import time

import gevent
import pytest

from benchmarks.raft_bench import Cluster, NodeError, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster("ours", str(tmp_path))
    try:
        yield c
    finally:
        c.close()


def _put(c: Cluster, node: int, key: str, value: str, acked: dict[str, str]) -> bool:
    """One write through *node*; recorded in *acked* only if the cluster acknowledged it."""
    try:
        c.call(node, "/put", timeout=5, key=key, value=value, wait=1.0)
    except NodeError:
        return False
    acked[key] = value
    return True


def _write_until(c: Cluster, nodes: list[int], count: int, acked: dict[str, str], prefix: str,
                 timeout: float) -> list[str]:
    """Write through *nodes* in turn until *count* writes are acknowledged (or fail after *timeout*)."""
    done: list[str] = []
    deadline = time.monotonic() + timeout
    for seq in itertools.count():
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(done)}/{count} {prefix!r} writes acknowledged in {timeout}s")
        key = f"{prefix}-{seq}"
        if _put(c, nodes[seq % len(nodes)], key, f"v{seq}", acked):
            done.append(key)
    return done


def test_acknowledged_writes_survive_leader_sigkill_and_restart(cluster: Cluster) -> None:
    c = cluster
    t0 = time.monotonic()
    c.start_all(timeout=20)
    leader = c.leader(timeout=15)
    survivors = [i for i in range(3) if i != leader]
    acked: dict[str, str] = {}

    # Writes through the leader and through the followers (forwarded).
    _write_until(c, list(range(3)), 30, acked, "before", timeout=10)

    # While the leader is SIGKILLed (no chance to flush or say goodbye), a follower is
    # forwarding many concurrent writes to it (unique keys, acknowledged ones recorded),
    # and clients write to it directly (its acknowledgements reach us before it dies).
    stop = False

    def direct_writer(w: int) -> None:
        for seq in itertools.count():
            if stop:
                return
            _put(c, leader, f"direct-{w}-{seq}", f"v{seq}", acked)

    start_commit = c.status(leader)["commit"]
    bg = gevent.spawn(c.call, survivors[0], "/load", timeout=30, seconds=3, c=32, mode="future",
                      prefix="bg-", record=1, wait=2)
    writers = [gevent.spawn(direct_writer, w) for w in range(16)]
    try:
        wait_for(lambda: (st := c.status(leader)) is not None and st["commit"] >= start_commit + 300
                 and sum(k.startswith("direct-") for k in list(acked)) >= 100, 10,
                 "the forwarded load and the direct writers to commit on the leader")
        c.kill(leader)
        t_kill = time.monotonic()
        stop = True
        gevent.joinall(writers, timeout=10)

        # Writes continue through the survivors once they elect a new leader.
        _write_until(c, survivors, 30, acked, "after-kill", timeout=15)
        resumed_s = time.monotonic() - t_kill
        assert c.leader(timeout=10) != leader
        load = bg.get(timeout=30)
    finally:
        stop = True
        gevent.killall([bg, *writers], timeout=5)
    assert load["writes"] >= 300, load
    acked.update(load["acked"])

    # Restart the killed server on the same data dir: it rejoins and catches up.
    c.start(leader)
    c.wait_up([leader], timeout=20)
    _write_until(c, list(range(3)), 30, acked, "after-restart", timeout=10)

    # Everything committed so far is applied on all three servers.
    target = max(st["commit"] for i in range(3) if (st := c.status(i)) is not None)
    wait_for(lambda: all((st := c.status(i)) is not None and st["applied"] >= target for i in range(3)),
             15, f"all three servers to apply through index {target}")

    def converged() -> list[dict[str, str]] | None:
        dumps = [c.call(i, "/dump", stale=1)["kv"] for i in range(3)]
        return dumps if dumps[0] == dumps[1] == dumps[2] else None

    # Same writes, same values on all three (a write that timed out may still land, so poll).
    dumps = wait_for(converged, 10, "the three servers' kv tables to agree")
    for i, kv in enumerate(dumps):
        missing = sorted(k for k, v in acked.items() if kv.get(k) != v)
        assert not missing, f"server {c.ids[i]} lacks {len(missing)} acknowledged writes: {missing[:10]}"
    print(f"acked={len(acked)} (forwarded load {load['writes']}) 30 writes resumed {resumed_s:.2f}s after"
          f" the kill; elapsed {time.monotonic() - t0:.1f}s")
