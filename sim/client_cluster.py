"""A simulated Nomad cluster of servers and clients, for node lifecycle scenarios.

Each server node runs RaftPeer + NodeEndpoint + HeartbeatMonitor + NodeGC
(RaftPeer pushes RaftInfo to all three; the endpoint also polls it and
relays leadership, as the agent will wire them);
each client node runs a Fingerprinter over a :class:`FakeHost` and a
ClientNode whose identity store outlives crashes (a restarted client is the
same node).  Raft disks survive crashes too (:class:`MemoryStorage`).

:meth:`ClientCluster.run` advances virtual time in ``check_interval_s`` slices
and runs :class:`~sim.node_checkers.NodeCheckers` after each, so every
scenario is checked for false node-downs and unsafe GC as it goes.

Raft ticks cost the most in long runs (three peers ticking forever), so the
cluster's default Raft timing is a 0.5 s tick (5 s election timeout):
node-level timescales are 10 s and up (TTL, grace, 300 s failover TTL), and
Raft itself is tested at Nomad's 1 s timings in ``tests/test_raft_sim.py``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field, replace
from typing import Any

from actors.client.fingerprint import FakeHost, FingerprintConfig, Fingerprinter, fake_facts
from actors.client.node import ClientNode, ClientNodeConfig, MemoryIdentityStore
from actors.client.node_meta import MemoryMetaStore
from actors.raft.core import LEADER, RaftTimings
from actors.raft.peer import Propose, RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from actors.server import ENDPOINT, HEARTBEATS, LEADER_ACTORS, NODE_GC, RAFT
from actors.server.heartbeat import HeartbeatConfig, HeartbeatMonitor
from actors.server.node_endpoint import EndpointConfig, NodeEndpoint
from actors.server.node_gc import ForceGC, NodeGC, NodeGCConfig
from actors.state.store import command
from sim.node_checkers import NodeCheckers
from sim.runtime import Scheduler, SimEnv

CLIENT = "client"
FINGERPRINT = "fingerprint"
SIM_RAFT_TIMINGS = RaftTimings(tick_s=0.5, election_ticks=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    n_servers: int = 3
    n_clients: int = 100
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    gc: NodeGCConfig = field(default_factory=NodeGCConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    client: ClientNodeConfig = field(default_factory=ClientNodeConfig)  # servers are filled in
    fingerprint: FingerprintConfig = field(default_factory=FingerprintConfig)
    raft_timings: RaftTimings = SIM_RAFT_TIMINGS
    # High so the checker replays every committed command (no compaction).
    snapshot_threshold: int = 1_000_000
    # Checkers run after every slice of this much virtual time.
    check_interval_s: float = 1.0
    # At least this youngest-generation GC threshold for the process that runs the cluster (set
    # when it is made, raised only, kept: lowering it again after each run() makes the collector
    # walk everything young at once).  A simulated cluster keeps a large, growing heap (every
    # server's state and log, the checker's replica) and makes few reference cycles, so at
    # Python's default of 700 the collector's walks were a fifth of the 5 servers + 100 clients
    # benchmark's CPU (868 young, 79 middle and 7 full collections in 1,800 virtual s: 2.6 s); at
    # 100,000 it is a few young ones and the peak memory is the same.  The older generations keep
    # their thresholds, so cycles still go within a few million allocations.  0: left alone.
    gc_young_threshold: int = 100_000
    trace: bool = False


class ClientCluster:
    def __init__(self, seed: int, config: ClusterConfig | None = None) -> None:
        self.seed = seed
        self.cfg = cfg = config or ClusterConfig()
        thresholds = gc.get_threshold()
        if thresholds[0] < cfg.gc_young_threshold:
            gc.set_threshold(cfg.gc_young_threshold, *thresholds[1:])
        self.sched = Scheduler(seed, trace=cfg.trace)
        self.servers = tuple(f"s{i}" for i in range(1, cfg.n_servers + 1))
        self.clients = tuple(f"c{i:04d}" for i in range(1, cfg.n_clients + 1))
        self.raft_cfg = RaftConfig(timings=cfg.raft_timings, snapshot_threshold=cfg.snapshot_threshold)
        self.client_cfg = _with_servers(cfg.client, self.servers)
        self.disks = {s: MemoryStorage() for s in self.servers}
        self.hosts = {c: FakeHost(fake_facts(c, f"10.1.{i // 250}.{i % 250 + 1}"))
                      for i, c in enumerate(self.clients)}
        self.identities = {c: MemoryIdentityStore() for c in self.clients}
        self.meta_stores = {c: MemoryMetaStore() for c in self.clients}  # dynamic node meta: outlives crashes
        self.checker = NodeCheckers(grace_s=cfg.heartbeat.heartbeat_grace_s,
                                    gc_threshold_s=cfg.gc.threshold_s)
        self.wall_s = 0.0
        for s in self.servers:
            self.sched.add_node(s, boot=self._boot_server)
        for c in self.clients:
            self.sched.add_node(c, boot=self._boot_client)

    # ------------------------------------------------------------ boot
    def _boot_server(self, env: SimEnv) -> None:
        cfg = self.cfg
        env.spawn(RaftPeer, RAFT, storage=self.disks[env.node], config=self.raft_cfg, bootstrap=self.servers,
                  leadership_subscribers=LEADER_ACTORS)
        env.spawn(NodeEndpoint, ENDPOINT, servers=self.servers, config=cfg.endpoint)
        env.spawn(HeartbeatMonitor, HEARTBEATS, config=cfg.heartbeat)
        env.spawn(NodeGC, NODE_GC, config=cfg.gc)

    def _boot_client(self, env: SimEnv) -> None:
        env.spawn(Fingerprinter, FINGERPRINT, probe=self.hosts[env.node], config=self.cfg.fingerprint,
                  subscriber=CLIENT)
        env.spawn(ClientNode, CLIENT, config=self.client_cfg, identity=self.identities[env.node],
                  fingerprinter=FINGERPRINT, on_ack=self.checker.on_ack,
                  meta_store=self.meta_stores[env.node])

    # ------------------------------------------------------------ running
    def run(self, seconds: float) -> None:
        """Advance *seconds* of virtual time, checking the node rules after every slice."""
        t0 = time.perf_counter()
        end = self.sched.now + seconds
        while True:
            t = min(end, self.sched.now + self.cfg.check_interval_s)
            self.sched.run_until_time(t)
            self.check()
            if t >= end:
                break
        self.wall_s += time.perf_counter() - t0

    def check(self) -> None:
        self.checker.check(self.live_peers(), self.sched.now)

    # ------------------------------------------------------------ views
    def actor(self, node: str, name: str) -> Any | None:
        n = self.sched.nodes[node]
        ref = n.actors.get(name)
        if not n.up or ref is None or not ref.is_alive():
            return None
        return self.sched.actor_of(ref)

    def live_peers(self) -> dict[str, Any]:
        out = {}
        for s in self.servers:
            peer = self.actor(s, RAFT)
            if peer is not None:
                out[s] = peer
        return out

    def leader(self) -> str | None:
        peers = self.live_peers()
        leaders = [s for s, p in peers.items() if p.core.role == LEADER]
        return max(leaders, key=lambda s: peers[s].core.term) if leaders else None

    def nodes(self) -> dict[str, Any]:
        """The node table as the checker's replica of the committed log sees it."""
        return self.checker.replica.tables["nodes"]

    def node_id(self, client: str) -> str:
        return self.identities[client].data.get("node_id", "")

    def status(self, client: str) -> str | None:
        rec = self.nodes().get(self.node_id(client))
        return None if rec is None else rec["Status"]

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in self.nodes().values():
            out[rec["Status"]] = out.get(rec["Status"], 0) + 1
        return dict(sorted(out.items()))

    # ------------------------------------------------------------ faults
    def crash(self, node: str) -> None:
        self.sched.nodes[node].crash()
        if node in self.disks:
            self.disks[node].crash()

    def restart(self, node: str) -> None:
        self.sched.nodes[node].restart()

    def partition_clients(self, clients: list[str] | tuple[str, ...]) -> None:
        """Cut *clients* off from every server (both ways)."""
        self.sched.network.partition(list(clients), list(self.servers))

    def heal(self) -> None:
        self.sched.network.heal()

    # ------------------------------------------------------------ operator actions
    def propose(self, data: bytes, timeout_s: float = 30.0) -> Any:
        """Write through the leader's Raft as an outside client would; returns (index, result)."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader")
        fut = self.sched.future_cls()
        self.sched.nodes[leader].actors[RAFT].tell(Propose(data=data, reply=fut))
        result = fut.get(timeout=timeout_s)
        self.check()
        return result

    def add_alloc(self, alloc_id: str, client: str, client_status: str = "running") -> None:
        rec = {"ID": alloc_id, "NodeID": self.node_id(client), "ClientStatus": client_status,
               "DesiredStatus": "run"}
        self.propose(command("upsert", table="allocs", record=rec))

    def force_gc(self, timeout_s: float = 30.0) -> list[str]:
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader")
        fut = self.sched.future_cls()
        self.sched.nodes[leader].actors[NODE_GC].tell(ForceGC(reply=fut))
        out = fut.get(timeout=timeout_s)
        self.check()
        return list(out)

    def close(self) -> None:
        self.sched.close()


def _with_servers(c: ClientNodeConfig, servers: tuple[str, ...]) -> ClientNodeConfig:
    return c if c.servers else replace(c, servers=servers)
