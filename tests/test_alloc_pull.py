"""A client's allocation query carries only what changed since its index, plus every allocation ID."""

from __future__ import annotations

import msgpack

from actors.server.alloc_endpoint import client_allocs
from actors.state.store import StateStore
from sim.client_cluster import ClusterConfig
from sim.job_cluster import SYNC, JobCluster, JobClusterConfig, sim_job


def test_client_allocs_sends_changed_records_and_every_id():
    st = StateStore()
    st.tables["nodes"]["n1"] = {"ID": "n1", "SecretID": "s"}
    for aid, idx in (("a", 5), ("b", 9), ("c", 12)):
        st.tables["allocs"][aid] = {"ID": aid, "NodeID": "n1", "JobID": "j", "AllocModifyIndex": idx}
        st._index_alloc(st.tables["allocs"][aid])
    err, index, data, ids = client_allocs(st, "n1", "s", since=9)
    assert err == "" and index == 12
    assert [a["ID"] for a in msgpack.unpackb(data)] == ["c"]
    assert msgpack.unpackb(ids) == [["a", 5], ["b", 9], ["c", 12]]
    _, _, everything, _ = client_allocs(st, "n1", "s", since=0)
    assert [a["ID"] for a in msgpack.unpackb(everything)] == ["a", "b", "c"]
    assert client_allocs(st, "n1", "wrong")[0] == "node secret ID does not match"


def test_clients_hold_exactly_the_servers_allocations_through_rescales_and_restarts():
    c = JobCluster(4, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=6)))
    c.run(30.0)
    for i in range(12):
        c.register(sim_job("web", count=3 + (i * 5) % 9, cpu=100))
        c.run(15.0)
        if i % 4 == 3:
            victim = c.clients[i % len(c.clients)]
            c.crash(victim)
            c.run(2.0)
            c.restart(victim)
    c.run(60.0)
    assert c.converged() == []
    state = c.checker.replica.tables["allocs"]
    for x in c.clients:
        sync = c.actor(x, SYNC)
        mine = {a["ID"]: a["AllocModifyIndex"] for a in state.values() if a["NodeID"] == c.node_id(x)}
        held = {aid: a["AllocModifyIndex"] for aid, a in sync.allocs.items()}
        assert held == mine, x
    c.close()


def test_client_reports_arriving_together_share_one_raft_write():
    """Node.UpdateAlloc batching: the reports of the nodes a plan lands on share writes."""
    from actors.server.alloc_endpoint import ALLOC_ENDPOINT

    c = JobCluster(11, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=8)))
    c.run(30.0)
    c.register(sim_job("web", count=16, cpu=100))
    c.run(60.0)
    assert c.converged() == []
    stats = [c.actor(s, ALLOC_ENDPOINT).stats for s in c.servers]
    updates, batches = sum(s["updates"] for s in stats), sum(s["batches"] for s in stats)
    assert updates >= 16 and batches < updates / 2, stats
    assert sum(s["errors"] for s in stats) == 0
    for x in c.clients:  # every report was answered as written
        sync = c.actor(x, SYNC)
        assert sync.stats["writes"] > 0 and sync.stats["write_failures"] == 0, (x, sync.stats)
    c.close()
