"""NodeEndpoint: the server actor that takes clients' Register and UpdateStatus.

Nomad's ``nomad/node_endpoint.go`` (NOMAD.md §3, §6.2), as an actor that
never blocks:

* **On a follower** a request is forwarded to the leader's endpoint (the
  follower rewrites the reply address to its own and relays the answer).
  While no leader is known a request is held (Nomad ``forward`` gates it
  until there is a leader): it goes on as soon as one is known, or is
  answered ``No cluster leader`` after ``no_leader_hold_s``, so the client
  rotates to another server.  The endpoint learns who leads from its own
  RaftPeer: it polls ``InfoQuery`` every ``raft_poll_interval_s`` and takes
  ``RaftInfo`` pushes, and relays this server's leadership to the
  HeartbeatMonitor and NodeGC as ``LeadershipChanged``.  The server list
  handed to clients is the Raft configuration.
* **On the leader** each request is a small state machine: read the node
  (a stale read of the leader's own state store), write through Raft only
  when something changes (a plain heartbeat is not a Raft write), then ask
  the HeartbeatMonitor to reset the node's timer and answer with its TTL.
  Requests for one node run one at a time, in arrival order, so a heartbeat
  that arrives while the node is being marked down is applied after it
  (down -> ready), never before it and lost.
* ``DeregisterNode`` (Nomad ``Node.Deregister``, the API's node purge; the
  HTTP API's :class:`PurgeNode` becomes one) runs as a per-node operation on
  the leader too: the node is deleted through Raft with node-update
  evaluations for its jobs, then the monitor forgets its timer, so the
  client's next heartbeat is answered "node not found" and it registers
  again, as in Nomad.
* ``NodeExpired`` from the monitor is an internal UpdateStatus(down) with the
  event "Node heartbeat missed" (Nomad ``invalidateHeartbeat``).  Before it
  proposes, the endpoint asks Raft afresh whether this server still leads in
  the same term: a deposed leader's proposal would be forwarded to the new
  leader and mark down a node that heartbeats there (Nomad PR #14481).
  Every status change is told to the ``notify`` actors as
  :class:`NodeStatusChanged` -- the hook where the scheduler will mark a
  down node's allocations lost and place replacements.

Raft is asked with :class:`~actors.server.ReplyTo` adapters; answers come
back as ``RaftReply`` messages tagged ``(stage, op_id)``.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, replace
from typing import Any

from actors.client.messages import (
    DISCONNECTED,
    DOWN,
    ERR_NO_LEADER,
    ERR_NODE_NOT_FOUND,
    ERR_NOT_LEADER,
    ERR_SECRET_MISMATCH,
    ERR_TIMEOUT,
    INITIALIZING,
    READY,
    DeregisterNode,
    NodeSpec,
    NodeUpdateResponse,
    RegisterNode,
    UpdateNodeStatus,
)
from actors.raft.peer import Propose, Read
from actors.server import (
    HEARTBEATS,
    NODE_GC,
    RAFT,
    InfoQuery,
    LeadershipChanged,
    RaftInfo,
    RaftReply,
    ReplyTo,
    log,
)
from actors.server.cluster_id import TAG as CLUSTER_ID_TAG
from actors.server.cluster_id import ClusterIdEstablisher
from actors.server.heartbeat import (
    MIN_TIMER_S,
    ClearHeartbeat,
    FastHeartbeat,
    HeartbeatReset,
    HeartbeatServers,
    NodeExpired,
    ResetHeartbeat,
    SlowHeartbeat,
)
from actors.server.root_key import TAG as ROOT_KEY_TAG
from actors.server.root_key import RootKeyEstablisher
from actors.server.scheduler_defaults import TAG as SCHED_DEFAULTS_TAG
from actors.server.scheduler_defaults import SchedulerDefaultsEstablisher
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

MISSED_EVENT = {"Message": "Node heartbeat missed", "Subsystem": "Cluster"}
REREGISTERED_EVENT = {"Message": "Node reregistered by heartbeat", "Subsystem": "Cluster"}


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    # A forwarded request unanswered this long is answered with a retryable
    # error: the hinted leader may be dead.  Below the client's own attempt
    # timeout (2 s) so the client hears why rather than timing out.
    forward_timeout_s: float = 1.5
    # A request for one node that has not finished in this long is failed so
    # it cannot hold up that node's later requests (Raft answers every
    # request, so this is a backstop).
    op_timeout_s: float = 10.0
    # How often the local RaftPeer is asked who leads.  RaftPeer pushes every
    # change of leadership, term, known leader or members as it happens, so
    # this is only a backstop (a push lost to an actor restart, say), within
    # the 10 s heartbeat grace.
    raft_poll_interval_s: float = 10.0
    # Forwarding bound: client -> follower -> leader; a stale hint on the
    # second server cannot bounce a request around.
    max_forward_hops: int = 1
    # A request that arrives while no leader is known waits this long for
    # one before it is answered "No cluster leader" (Nomad's forward() gates
    # it up to RPCHoldTimeout, 5 s, polling with a jitter of hold/16).  Held
    # here less than the client's attempt timeout (2 s), which stands in for
    # Nomad's connection error, so the client hears why instead of timing
    # out; without a hold, 1,000 clients starting before the election
    # retried ~32 times each within their own 5 s RPC hold.
    no_leader_hold_s: float = 1.5
    # How often expired forwards and stuck operations are swept.
    sweep_interval_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("forward_timeout_s", "op_timeout_s", "raft_poll_interval_s", "sweep_interval_s",
                     "no_leader_hold_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_forward_hops < 0:
            raise ValueError("max_forward_hops must be >= 0")


@dataclass(frozen=True, slots=True)
class NodeStatusChanged:
    """Told to the ``notify`` actors after a status change commits (local only)."""

    node_id: str
    prev: str  # "" for a new node
    status: str
    index: int
    allocs: tuple[str, ...] = ()  # non-terminal allocations, when the node went down


@dataclass(frozen=True, slots=True)
class PurgeNode:
    """The HTTP API -> its server's endpoint: deregister *node_id* (``PUT /v1/node/<id>/purge``).

    *reply* (a future) gets the NodeUpdateResponse; on a follower the
    request is forwarded to the leader's endpoint as a DeregisterNode.
    """

    node_id: str
    reply: Any


@dataclass(frozen=True, slots=True)
class SetServers:
    """Replace the server list handed to clients (Raft membership changed)."""

    servers: tuple[str, ...]


@dataclass(slots=True)
class _Op:
    op_id: int
    kind: str  # "register" | "status" | "expire" | "deregister"
    node_id: str
    started: float
    request: RegisterNode | UpdateNodeStatus | DeregisterNode | None = None
    status: str = ""
    index: int = 0
    term: int = 0  # the leader term the op began in
    evals: tuple[str, ...] = ()  # evaluations the write created


def node_view(state: Any, node_id: str, now: float = 0.0,
              expiring: bool = False) -> tuple[str, str, str, str] | None:
    """Read query: the node's (Status, SecretID, what a ``ready`` heartbeat makes it, what a missed
    heartbeat makes it), or None when it is unknown.

    Nomad's Node.UpdateStatus: a ``disconnected`` node that heartbeats is ``initializing`` first, and
    stays so while it has ``unknown`` allocations and has not reported them since it missed its
    heartbeats (``LastAllocUpdateIndex <= LastMissedHeartbeatIndex``).  Nomad's invalidateHeartbeat and
    disconnectState: a node that misses its heartbeats goes ``disconnected`` rather than ``down``
    when one of its allocations may wait out a ``disconnect.lost_after`` window (not a node already
    down or initializing; looked at only when *expiring*).
    """
    from actors.scheduler.disconnect import node_disconnect_state
    from actors.server.node_gc import alloc_terminal

    rec = state.tables["nodes"].get(node_id)
    if rec is None:
        return None
    status = rec.get("Status", "")
    ready = READY
    missed = rec.get("LastMissedHeartbeatIndex") or 0
    if status == DISCONNECTED:
        ready = INITIALIZING
    elif status == INITIALIZING and missed and (rec.get("LastAllocUpdateIndex") or 0) <= missed and any(
            not alloc_terminal(a) and a.get("ClientStatus") == "unknown" for a in state.node_allocs(node_id)):
        # Only while an allocation is unknown: Nomad waits on any live one, and a node back before
        # its allocations were marked unknown (nothing for its client to report) stays initializing.
        ready = INITIALIZING
    expire = DOWN
    if expiring and status not in (DOWN, INITIALIZING) and \
            node_disconnect_state(state.node_allocs(node_id), now) == (True, True):
        expire = DISCONNECTED
    return status, rec.get("SecretID", ""), ready, expire


def drivers_record(spec: NodeSpec) -> dict[str, Any]:
    """The node's Drivers as Nomad's DriverInfo: every driver the client fingerprinted, detected or
    not, healthy or with the reason it is not; a healthy one has its ``driver.<name>`` attribute.
    (UpdateTime is set by the state store, when the health changes.)"""
    health = spec.driver_health or tuple((d, True, True, "Healthy") for d in spec.drivers)
    return {name: {"Detected": detected, "Healthy": healthy, "HealthDescription": why,
                   "Attributes": {f"driver.{name}": "true"} if healthy else {}}
            for name, detected, healthy, why in health}


def node_record(spec: NodeSpec) -> dict[str, Any]:
    """The state-store record (Nomad's structs.Node field names) for a registering node."""
    res, rsv = spec.resources, spec.reserved
    rec: dict[str, Any] = {
        "ID": spec.node_id, "SecretID": spec.secret_id, "Name": spec.name, "Datacenter": spec.datacenter,
        "NodeClass": spec.node_class, "NodePool": spec.node_pool, "HTTPAddr": spec.http_addr,
        "Attributes": dict(spec.attributes), "Meta": dict(spec.meta),
        "Drivers": drivers_record(spec),
        "NodeResources": {"Cpu": {"CpuShares": res.cpu_mhz}, "Memory": {"MemoryMB": res.memory_mb},
                          "Disk": {"DiskMB": res.disk_mb}, "MinDynamicPort": spec.min_dynamic_port,
                          "MaxDynamicPort": spec.max_dynamic_port},
        "ReservedResources": {"Cpu": {"CpuShares": rsv.cpu_mhz}, "Memory": {"MemoryMB": rsv.memory_mb},
                              "Disk": {"DiskMB": rsv.disk_mb},
                              "Networks": {"ReservedHostPorts": spec.reserved_ports}},
        "HostVolumes": {name: {"Name": name, "Path": path, "ReadOnly": read_only}
                        for name, path, read_only in spec.host_volumes},
        "NodeMaxAllocs": spec.node_max_allocs,  # 0: no limit (scheduler.max_allocs_exceeded)
        "Status": INITIALIZING,
    }
    if spec.node_networks:  # Nomad's NodeResources.NodeNetworks: one entry per device, its addresses
        by_device: dict[str, list[dict[str, Any]]] = {}
        for device, alias, address, reserved in spec.node_networks:
            by_device.setdefault(device, []).append(
                {"Family": "ipv6" if ":" in address else "ipv4", "Alias": alias, "Address": address,
                 "ReservedPorts": reserved, "Gateway": ""})
        rec["NodeResources"]["NodeNetworks"] = [
            {"Mode": "host", "Device": device, "MacAddress": "", "Speed": 0, "Addresses": addrs}
            for device, addrs in sorted(by_device.items())]
    if spec.host_networks:  # Nomad's Node.HostNetworks: the client's host_network blocks, by name
        rec["HostNetworks"] = {name: {"Name": name, "CIDR": cidr, "Interface": iface,
                                      "ReservedPorts": reserved}
                               for name, cidr, iface, reserved in spec.host_networks}
    # A new node's eligibility (client.default_ineligible); the store keeps an existing node's own.
    if spec.scheduling_eligibility:
        rec["SchedulingEligibility"] = spec.scheduling_eligibility
    return rec


class NodeEndpoint(NodeActor):
    def __init__(self, env: Env, name: str, *, servers: tuple[str, ...], config: EndpointConfig | None = None,
                 raft: str = RAFT, heartbeats: str = HEARTBEATS,
                 leader_actors: tuple[str, ...] = (HEARTBEATS, NODE_GC), wall_clock: Any = None,
                 notify: tuple[str, ...] = (), scheduler_defaults: dict[str, Any] | None = None,
                 root_key: bool = False) -> None:
        super().__init__(env, name)
        self.cfg = config or EndpointConfig()
        self.servers = tuple(servers)
        self.raft = raft
        self.heartbeats = heartbeats
        self.leader_actors = leader_actors  # told LeadershipChanged when this server starts/stops leading
        # Node timestamps must mean the same on every server: production
        # passes time.time; the simulator's shared virtual clock is env.now.
        self._wall = wall_clock or env.now
        self.notify = notify
        self.is_leader = False
        self.term = 0
        self.raft_leader = ""  # who the local RaftPeer last said leads ("" unknown)
        self._configured = self.servers
        self._awaiting_info: list[_Op] = []  # expire ops waiting for a fresh RaftInfo
        # forward id -> (reply node, reply actor, original req id, deadline)
        self._forwards: dict[int, tuple[str, str, int, float]] = {}
        self._ops: dict[int, _Op] = {}
        # PurgeNode requests of this server's HTTP API: req id -> (future, deadline)
        self._local: dict[int, tuple[Any, float]] = {}
        self._queues: dict[str, collections.deque[_Op]] = {}  # node ID -> its ops, head running
        # requests that came while no leader was known, in arrival order: (deadline, request)
        self._held: list[tuple[float, RegisterNode | UpdateNodeStatus | DeregisterNode]] = []
        self._next_id = 0
        self.stats = {"requests": 0, "forwarded": 0, "writes": 0, "expired": 0, "errors": 0}
        # The leader writes the cluster's ID once, when the state has none (see actors.server.cluster_id).
        self.cluster_id = ClusterIdEstablisher(env, name, wall_clock=self._wall, raft=raft)
        # The agent's default_scheduler_config seeds a new cluster's (actors.server.scheduler_defaults).
        self.establishers: list[Any] = [self.cluster_id]
        self._establisher_by_tag: dict[str, Any] = {CLUSTER_ID_TAG: self.cluster_id}
        if scheduler_defaults is not None:
            est = SchedulerDefaultsEstablisher(env, name, config=scheduler_defaults, raft=raft)
            self.establishers.append(est)
            self._establisher_by_tag[SCHED_DEFAULTS_TAG] = est
        # root_key (the agent's servers): the leader makes the keyring's first key (actors.server.root_key).
        if root_key:
            est = RootKeyEstablisher(env, name, wall_clock=self._wall, raft=raft)
            self.establishers.append(est)
            self._establisher_by_tag[ROOT_KEY_TAG] = est

    def on_start(self) -> None:
        self._poll()
        self.send(self.env.node, self.heartbeats, HeartbeatServers(self.servers))

    def _set_servers(self, servers: tuple[str, ...]) -> None:
        if servers != self.servers:
            self.servers = servers
            self.send(self.env.node, self.heartbeats, HeartbeatServers(servers))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, (RegisterNode, UpdateNodeStatus, DeregisterNode)):
            self._request(message)
        elif isinstance(message, PurgeNode):
            self._purge(message)
        elif isinstance(message, RaftReply):
            est = self._establisher_by_tag.get(message.tag[0]) if isinstance(message.tag[0], str) else None
            if est is not None:
                est.on_reply(message)
            else:
                self._raft_reply(message)
        elif isinstance(message, LeadershipChanged):
            # Raft re-asserting leadership after an operator's snapshot restore (Nomad's
            # reassertLeaderCh): the restored state may hold no cluster ID.
            if message.is_leader and self.is_leader and message.term == self.term:
                for est in self.establishers:
                    est.lead(True)
        elif isinstance(message, HeartbeatReset):
            self._reset_done(message)
        elif isinstance(message, SlowHeartbeat):
            m = message.request
            self._submit(_Op(self._new_id(), "status", m.node_id, self.env.now(), request=m))
        elif isinstance(message, NodeUpdateResponse):
            self._relay(message)
        elif isinstance(message, NodeExpired):
            if self.is_leader:
                self.stats["expired"] += 1
                self._submit(_Op(self._new_id(), "expire", message.node_id, self.env.now(), term=self.term))
        elif isinstance(message, RaftInfo):
            self._info(message)
        elif isinstance(message, SetServers):
            self._configured = tuple(message.servers)
            self._set_servers(self._configured)
        elif message == "status":
            return {"leader": self.is_leader, "known_leader": self.known_leader(), "ops": len(self._ops),
                    "forwards": len(self._forwards), "held": len(self._held), **self.stats}
        return None

    def _purge(self, m: PurgeNode) -> None:
        rid = self._new_id()
        self._local[rid] = (m.reply, self.env.now() + self.cfg.op_timeout_s + self.cfg.forward_timeout_s)
        self._arm_sweep()
        self._request(DeregisterNode(req_id=rid, reply_node=self.env.node, reply_actor=self.name,
                                     node_id=m.node_id))

    def _request(self, m: RegisterNode | UpdateNodeStatus | DeregisterNode) -> None:
        self.stats["requests"] += 1
        if self.is_leader:
            if isinstance(m, UpdateNodeStatus) and m.status == READY and m.node_id not in self._queues:
                # Plain heartbeat: the monitor answers it if the node is known ready.
                self.send(self.env.node, self.heartbeats, FastHeartbeat(m, self.servers))
                return
            if isinstance(m, RegisterNode):
                op = _Op(self._new_id(), "register", m.node.node_id, self.env.now(), request=m)
            elif isinstance(m, DeregisterNode):
                op = _Op(self._new_id(), "deregister", m.node_id, self.env.now(), request=m)
            else:
                op = _Op(self._new_id(), "status", m.node_id, self.env.now(), request=m)
            self._submit(op)
            return
        leader = self.known_leader()
        if leader and m.hops < self.cfg.max_forward_hops:
            fwd = self._new_id()
            deadline = self.env.now() + self.cfg.forward_timeout_s
            self._forwards[fwd] = (m.reply_node, m.reply_actor, m.req_id, deadline)
            self.stats["forwarded"] += 1
            hop = replace(m, req_id=fwd, reply_node=self.env.node, reply_actor=self.name, hops=m.hops + 1)
            self.send(leader, self.name, hop)
            self._arm_sweep()
            return
        if not leader:
            # Nomad's forward(): gate the request until there is a leader (released by _info).
            self._held.append((self.env.now() + self.cfg.no_leader_hold_s, m))
            if not self.timer_armed("held"):
                self.set_timer("held", self.cfg.no_leader_hold_s)
            return
        self._respond(m.reply_node, m.reply_actor, m.req_id, error=ERR_NOT_LEADER, leader=leader)

    def _respond(self, node: str, actor: str, req_id: int, *, error: str = "", ttl: float = 0.0,
                 leader: str = "", num_nodes: int = 0, index: int = 0, evals: tuple[str, ...] = ()) -> None:
        if error:
            self.stats["errors"] += 1
        self.send(node, actor, NodeUpdateResponse(req_id=req_id, ok=not error, error=error,
                                                  heartbeat_ttl_s=ttl, leader=leader, servers=self.servers,
                                                  num_nodes=num_nodes, index=index, eval_ids=evals))

    def _relay(self, m: NodeUpdateResponse) -> None:
        fwd = self._forwards.pop(m.req_id, None)
        if fwd is not None:
            self.send(fwd[0], fwd[1], replace(m, req_id=fwd[2]))
            return
        local = self._local.pop(m.req_id, None)
        if local is not None:
            local[0].set(m)  # this server's HTTP API is waiting on it
        # else: expired already (the client was told to retry)

    # ------------------------------------------------------------ leadership
    def known_leader(self) -> str:
        return self.env.node if self.is_leader else self.raft_leader

    def _poll(self) -> None:
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
        self.set_timer("poll", self.cfg.raft_poll_interval_s)

    def _info(self, m: RaftInfo) -> None:
        self.raft_leader = "" if m.leader == self.env.node and not m.is_leader else m.leader
        members = tuple(sorted(m.voters + m.learners))
        self._set_servers(members or self._configured)
        if m.is_leader != self.is_leader or (m.is_leader and m.term != self.term):
            self._lead(m.is_leader, m.term)
        else:
            for est in self.establishers:
                est.poll()  # a read or write that failed while leading: again
        waiting, self._awaiting_info = self._awaiting_info, []
        for op in waiting:
            if op.op_id not in self._ops:
                continue
            if self.is_leader and m.is_leader and m.term == op.term:
                self._read(op)
            else:
                self._finish(op)
        if self._held and self.known_leader():
            self.cancel_timer("held")
            held, self._held = self._held, []
            for _, req in held:
                self.stats["requests"] -= 1  # counted when it came
                self._request(req)

    def _lead(self, is_leader: bool, term: int) -> None:
        was = self.is_leader
        self.is_leader, self.term = is_leader, term
        if is_leader:
            log.info("%s: node endpoint leading (term %d)", self.env.node, term)
        elif was:
            for op in list(self._ops.values()):
                self._fail(op, ERR_NOT_LEADER)
            self._queues.clear()
        for est in self.establishers:
            est.lead(is_leader)
        changed = LeadershipChanged(is_leader, term)
        for actor in self.leader_actors:
            self.send(self.env.node, actor, changed)

    def on_timer(self, name: str) -> None:
        if name == "poll":
            self._poll()
        elif name == "sweep":
            self._sweep()
        elif name == "held":
            self._expire_held()

    def _expire_held(self) -> None:
        """Answer ``No cluster leader`` to the requests held their full time (they are in deadline order)."""
        now, held = self.env.now(), self._held
        n = 0
        while n < len(held) and held[n][0] <= now:
            m = held[n][1]
            self._respond(m.reply_node, m.reply_actor, m.req_id, error=ERR_NO_LEADER)
            n += 1
        del held[:n]
        if held:
            # The floor: a deadline a few ulps ahead of the clock (or of a drifting clock's reading)
            # would re-arm at the same instant for ever (nomad-sim cluster --seed 293 --clients 100).
            self.set_timer("held", max(MIN_TIMER_S, held[0][0] - now))

    def _arm_sweep(self) -> None:
        if not self.timer_armed("sweep"):
            self.set_timer("sweep", self.cfg.sweep_interval_s)

    def _sweep(self) -> None:
        now = self.env.now()
        for fwd in [f for f, v in self._forwards.items() if v[3] <= now]:
            node, actor, req_id, _ = self._forwards.pop(fwd)
            self._respond(node, actor, req_id, error=ERR_TIMEOUT)
        for op in [o for o in self._ops.values() if o.started + self.cfg.op_timeout_s <= now]:
            self._fail(op, ERR_TIMEOUT)
        for rid in [r for r, v in self._local.items() if v[1] <= now]:
            self._local.pop(rid)[0].set(NodeUpdateResponse(req_id=rid, ok=False, error=ERR_TIMEOUT))
        if self._forwards or self._ops or self._local:
            self._arm_sweep()

    # ------------------------------------------------------------ per-node operations (leader)
    def _submit(self, op: _Op) -> None:
        if not self.is_leader:
            # Leadership went while this request was on its way (a slow-path
            # heartbeat back from the monitor, say): never propose as a
            # follower -- RaftPeer would forward the write to the new leader.
            self._fail(op, ERR_NOT_LEADER)
            return
        queue = self._queues.setdefault(op.node_id, collections.deque())
        queue.append(op)
        self._ops[op.op_id] = op
        self._arm_sweep()
        if len(queue) == 1:
            self._start(op)

    def _start(self, op: _Op) -> None:
        if op.kind == "expire":
            # Confirm leadership and term with Raft first (see module doc).
            self._awaiting_info.append(op)
            self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
            return
        self._read(op)

    def _read(self, op: _Op) -> None:
        # A linearizable read (ReadIndex on the leader): a new leader may not
        # yet have applied entries an earlier leader committed -- "node down"
        # among them.  Read stale, a down node would look ready, its
        # heartbeat would be answered without the write that restores it, and
        # it would stay down in the state for good (simulator seed 46639).
        # Only registrations and status changes come here, not plain heartbeats.
        query = functools.partial(node_view, node_id=op.node_id, now=self._wall(),
                                  expiring=op.kind == "expire")
        self.send(self.env.node, self.raft, Read(query=query, stale=False,
                                                 reply=ReplyTo(self.env, self.name, ("read", op.op_id))))

    def _finish(self, op: _Op) -> None:
        self._ops.pop(op.op_id, None)
        queue = self._queues.get(op.node_id)
        if queue is None or op not in queue:
            return
        head = queue[0] is op
        queue.remove(op)
        if not queue:
            del self._queues[op.node_id]
        elif head:
            self._start(queue[0])

    def _fail(self, op: _Op, error: str) -> None:
        if op.request is not None:
            r = op.request
            self._respond(r.reply_node, r.reply_actor, r.req_id, error=error, leader=self.known_leader())
        self._finish(op)

    def _reply(self, op: _Op, ttl: float, num_nodes: int) -> None:
        if op.request is not None:
            r = op.request
            self._respond(r.reply_node, r.reply_actor, r.req_id, ttl=ttl, leader=self.env.node,
                          num_nodes=num_nodes, index=op.index, evals=op.evals)
        self._finish(op)

    def _propose(self, op: _Op, data: bytes) -> None:
        if not self.is_leader:
            self._fail(op, ERR_NOT_LEADER)
            return
        self.stats["writes"] += 1
        reply = ReplyTo(self.env, self.name, ("write", op.op_id))
        self.send(self.env.node, self.raft, Propose(data=data, reply=reply))

    def _raft_reply(self, m: RaftReply) -> None:
        stage, op_id = m.tag
        op = self._ops.get(op_id)
        if op is None:
            return  # timed out or leadership lost meanwhile
        if not m.ok:
            self._fail(op, m.error)
        elif stage == "read":
            self._on_read(op, m.value[1])
        else:
            self._on_write(op, m.value)

    def _on_read(self, op: _Op, view: tuple[str, str] | None) -> None:
        now = self._wall()
        if op.kind == "register":
            assert isinstance(op.request, RegisterNode)
            spec = op.request.node
            if view is not None and view[1] and view[1] != spec.secret_id:
                self._fail(op, ERR_SECRET_MISMATCH)
                return
            self._propose(op, command("node_register", node=node_record(spec), now=now, node_evals=True,
                                          driver_times=True, pool_evals=True))
        elif op.kind == "status":
            assert isinstance(op.request, UpdateNodeStatus)
            want = op.request.status
            if view is not None and want == READY:
                want = view[2]  # back from disconnected: initializing until its allocations are reported
            if view is None:
                self._fail(op, ERR_NODE_NOT_FOUND)
            elif view[0] != want:
                event = REREGISTERED_EVENT if view[0] == DOWN and want != DOWN else None
                self._propose(op, command("node_update_status", node_id=op.node_id, status=want, event=event,
                                          now=now, pool_evals=True))
            else:
                op.status = want
                self._after_write(op)
        elif op.kind == "deregister":
            if view is None:
                self._fail(op, ERR_NODE_NOT_FOUND)
            else:
                self._propose(op, command("node_deregister", node_id=op.node_id, now=now, pool_evals=True))
        elif view is None or view[0] == DOWN:
            self._finish(op)  # expired, but already down or gone
        else:
            self._propose(op, command("node_update_status", node_id=op.node_id, status=view[3],
                                      event=MISSED_EVENT, now=now, pool_evals=True))

    def _on_write(self, op: _Op, value: tuple[int, Any]) -> None:
        index, result = value
        if not isinstance(result, dict) or not result.get("ok"):
            error = result.get("error", "write refused") if isinstance(result, dict) else "write refused"
            self._fail(op, error)
            return
        op.index, op.status = index, result["status"]
        op.evals = tuple(result.get("EvalIDs") or ())
        if op.kind == "deregister":
            log.info("%s: node %s deregistered", self.env.node, op.node_id)
        elif result.get("prev") != op.status:
            if op.status in (DOWN, DISCONNECTED):
                log.warning("%s: node %s marked %s", self.env.node, op.node_id, op.status)
            changed = NodeStatusChanged(op.node_id, result.get("prev", ""), op.status, index,
                                        tuple(result.get("allocs", ())))
            for actor in self.notify:
                self.send(self.env.node, actor, changed)
        self._after_write(op)

    def _after_write(self, op: _Op) -> None:
        if op.kind == "deregister" or op.status == DOWN or (
                op.kind == "expire" and op.status != DISCONNECTED):
            # A down node has no timer and gets TTL 0 (Nomad only resets the
            # timer for a node whose status is not terminal); a deregistered
            # one has none either (Nomad clearHeartbeatTimer), so its next
            # heartbeat is answered "node not found" and the client registers
            # again.
            self.send(self.env.node, self.heartbeats, ClearHeartbeat(op.node_id))
            self._reply(op, 0.0, 0)
            return
        self.send(self.env.node, self.heartbeats, ResetHeartbeat(op.op_id, op.node_id, op.status))

    def _reset_done(self, m: HeartbeatReset) -> None:
        op = self._ops.get(m.op_id)
        if op is None:
            return
        if not m.ok:
            self._fail(op, m.error)
        else:
            self._drop_superseded_expiries(op)
            self._reply(op, m.ttl_s, m.num_nodes)

    def _drop_superseded_expiries(self, op: _Op) -> None:
        """The node's timer was just reset: expiries queued behind this op are stale.

        The monitor tells NodeExpired before the HeartbeatReset of a later
        reset (same sender, in order), so an expiry that fired while this
        op was reading and writing waits in the node's queue; run after the
        reset it would mark down a node whose heartbeat was just answered
        with a fresh TTL (simulator seed 52002).
        """
        queue = self._queues.get(op.node_id)
        if not queue:
            return
        for stale in [o for o in queue if o is not op and o.kind == "expire"]:
            queue.remove(stale)
            self._ops.pop(stale.op_id, None)
            self.stats["stale_expiries"] = self.stats.get("stale_expiries", 0) + 1
