"""Node protocol wire messages: client <-> server and server <-> server (tags 300-349).

ONLY APPEND new tags; never reuse a retired one.  These cross the network
(a client's RPC to a server, a follower forwarding to the leader, the
leader announcing itself), so every field is a wire type: maps travel as
sorted tuples of pairs so the bytes never depend on dict order.

Replies follow DESIGN.md §2: a request names where its answer goes
(``reply_node``/``reply_actor``) and carries a correlation id (``req_id``);
nobody blocks.  A follower that forwards a request rewrites those three
fields to its own and relays the leader's answer back, so a client only ever
needs a path to the server it asked (as with Nomad's RPC forwarding).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)

# Node statuses (Nomad structs.NodeStatus*).
INITIALIZING = "initializing"
READY = "ready"
DOWN = "down"
DISCONNECTED = "disconnected"
NODE_STATUSES = (INITIALIZING, READY, DOWN, DISCONNECTED)

# Error strings the client acts on (Nomad's own texts where it has one).
ERR_NO_LEADER = "No cluster leader"  # structs.ErrNoLeader: retryable
ERR_NOT_LEADER = "not leader"  # a forwarded request met a non-leader: retryable
ERR_NODE_NOT_FOUND = "node not found"  # the client re-registers
ERR_SECRET_MISMATCH = "node secret ID does not match"
ERR_TIMEOUT = "timed out waiting for the leader"  # forward expired: retryable
ERR_CONN_LOST = "connection lost"  # the server's process closed our connection (PeerLost): retryable
RETRYABLE_ERRORS = (ERR_NO_LEADER, ERR_NOT_LEADER, ERR_TIMEOUT, "leadership lost", "rpc timeout",
                    ERR_CONN_LOST, "failed to reset heartbeat since server is not leader")


def is_retryable(error: str) -> bool:
    """True when another server (or the same one a moment later) may succeed."""
    return any(e in error for e in RETRYABLE_ERRORS)


@message(300)
@msg
class Resources(Message):
    """CPU in MHz, memory and disk in MB (Nomad NodeResources / NodeReservedResources)."""

    cpu_mhz: int = 0
    memory_mb: int = 0
    disk_mb: int = 0

    def __post_init__(self) -> None:
        if min(self.cpu_mhz, self.memory_mb, self.disk_mb) < 0:
            raise ValueError("resources must be >= 0")


@message(301)
@msg
class NodeSpec(Message):
    """What a client says about itself when it registers (Nomad structs.Node, client half)."""

    node_id: str
    secret_id: str
    name: str
    datacenter: str = "dc1"
    node_class: str = ""
    node_pool: str = "default"
    http_addr: str = ""
    attributes: tuple[tuple[str, str], ...] = ()  # sorted (name, value)
    meta: tuple[tuple[str, str], ...] = ()  # sorted (key, value)
    drivers: tuple[str, ...] = ()  # detected and healthy task drivers, sorted
    resources: Resources = Resources()
    reserved: Resources = Resources()
    # Network: the dynamic port range and the host ports no allocation may take
    # (client.min/max_dynamic_port, client.reserved.reserved_ports as written).
    min_dynamic_port: int = 20000
    max_dynamic_port: int = 32000
    reserved_ports: str = ""
    # client host_volume blocks: sorted (name, path, read_only) (Nomad's Node.HostVolumes).
    host_volumes: tuple[tuple[str, str, bool], ...] = ()
    # Every driver's fingerprint, sorted (name, detected, healthy, health description): the node's
    # Drivers (Nomad's DriverInfo).  Empty (an older client): each of *drivers* is healthy.
    driver_health: tuple[tuple[str, bool, bool, str], ...] = ()
    # client.node_max_allocs: the most live allocations placed here (Nomad's Node.NodeMaxAllocs); 0: no limit.
    node_max_allocs: int = 0
    # Nomad's Node.SchedulingEligibility as the client sends it: "ineligible" with client.default_ineligible.
    # It applies to a node registering for the first time; an existing node keeps its own.  "": eligible.
    scheduling_eligibility: str = ""
    # client host_network blocks: sorted (name, cidr, interface, reserved_ports) (Nomad's Node.HostNetworks).
    host_networks: tuple[tuple[str, str, str, str], ...] = ()
    # The fingerprinted addresses of those networks, sorted (device, alias, address, reserved_ports), the
    # node's own address with the alias "default" (Nomad's NodeResources.NodeNetworks).  Empty: an older
    # client (its ports go on unique.network.ip-address).
    node_networks: tuple[tuple[str, str, str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id is required")
        if self.node_pool == "all":
            raise ValueError("node pool 'all' is reserved")
        if self.node_max_allocs < 0:
            raise ValueError("node_max_allocs must be >= 0")
        if self.scheduling_eligibility not in ("", "eligible", "ineligible"):
            raise ValueError(f"unknown scheduling eligibility {self.scheduling_eligibility!r}")


@message(302)
@msg
class RegisterNode(Message):
    """Node.Register: create or update the node; the answer carries the heartbeat TTL."""

    req_id: int
    reply_node: str
    reply_actor: str
    node: NodeSpec
    hops: int = 0  # times forwarded between servers; bounded so a stale hint cannot loop


@message(303)
@msg
class UpdateNodeStatus(Message):
    """Node.UpdateStatus: the client's heartbeat (status ``ready``)."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    status: str = READY
    hops: int = 0

    def __post_init__(self) -> None:
        if self.status not in NODE_STATUSES:
            raise ValueError(f"unknown node status {self.status!r}")


@message(304)
@msg
class NodeUpdateResponse(Message):
    """Answer to Register and UpdateStatus (Nomad NodeUpdateResponse, the fields a client uses)."""

    req_id: int
    ok: bool
    error: str = ""
    heartbeat_ttl_s: float = 0.0  # 0: no heartbeat timer was set (the node is down)
    leader: str = ""  # the leader's RPC address ("" if unknown); empty triggers discovery
    servers: tuple[str, ...] = ()  # the servers' RPC addresses; replaces the client's list
    num_nodes: int = 0  # nodes the leader tracks
    index: int = 0  # Raft index if the request wrote state, else 0 (heartbeat after a miss)
    eval_ids: tuple[str, ...] = ()  # evaluations the write created (a deregistration's)


# Tag 305 is retired (LeaderHint, never released): do not reuse it.


# ------------------------------------------------------------ allocations (issue 7)
# Nomad's Node.GetClientAllocs (a blocking query any server answers from its
# own state, as Nomad allows stale reads there), Node.UpdateAlloc and
# Node.UpdateDrain.  Allocation records travel msgpack-encoded: they are the
# state store's own maps (Nomad's structs.Allocation, with the job).


@message(306)
@msg
class GetClientAllocs(Message):
    """The allocations assigned to a node, once its index passes ``min_index`` (or at ``wait_s``)."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    min_index: int = 0
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        if self.wait_s < 0 or self.min_index < 0:
            raise ValueError("wait_s and min_index must be >= 0")


@message(307)
@msg
class ClientAllocsResponse(Message):
    req_id: int
    ok: bool
    error: str = ""
    index: int = 0  # the node's allocation index: pass it back as min_index
    # msgpack list of the allocation maps the servers changed since the
    # request's min_index (all of them for min_index 0), as Nomad's client
    # pulls only allocations whose AllocModifyIndex moved
    allocs: bytes = b""
    # msgpack list of [ID, AllocModifyIndex] of every allocation of the node: the ones absent are gone
    ids: bytes = b""


@message(308)
@msg
class UpdateAllocs(Message):
    """A client's allocation and task states (Node.UpdateAlloc), msgpack-encoded list of maps."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    updates: bytes


@message(309)
@msg
class UpdateDrain(Message):
    """Node.UpdateDrain for the client's own node (drain_on_shutdown)."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    deadline_ns: int = 0  # Nomad DrainSpec.Deadline: <0 force, 0 none, >0 from now
    ignore_system: bool = False
    enable: bool = True
    mark_eligible: bool = False


@message(310)
@msg
class WriteResponse(Message):
    """Answer to UpdateAllocs and UpdateDrain: the Raft index of the write, or an error."""

    req_id: int
    ok: bool
    error: str = ""
    index: int = 0


@message(311)
@msg
class DeregisterNode(Message):
    """Node.Deregister (the API's node purge): a server's HTTP API -> the leader's node endpoint.

    Answered with a NodeUpdateResponse whose ``eval_ids`` are the node-update
    evaluations of the node's jobs.
    """

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    hops: int = 0


# A task's template data (Nomad's template runner reading variables and
# services with the task's workload identity): what the templates of one
# task of an allocation on this node read, as a blocking query over the
# variables and service registrations tables.  The server finds the task's
# namespace, job and group from the allocation, which must be the node's.
TEMPLATE_DEP_KINDS = ("var", "varlist", "service", "services")


@message(330)
@msg
class GetTemplateData(Message):
    """The values of *deps* ((kind, argument): ("var", path), ("varlist", prefix), ("service", name),
    ("services", "")) for a task, once the tables' index passes ``min_index`` (or at ``wait_s``)."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    alloc_id: str
    task: str
    deps: tuple[tuple[str, str], ...]
    min_index: int = 0
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        if self.wait_s < 0 or self.min_index < 0:
            raise ValueError("wait_s and min_index must be >= 0")
        if any(len(d) != 2 or d[0] not in TEMPLATE_DEP_KINDS for d in self.deps):
            raise ValueError(f"deps must be (kind, argument) pairs of kinds {', '.join(TEMPLATE_DEP_KINDS)}")


@message(331)
@msg
class TemplateDataResponse(Message):
    req_id: int
    ok: bool
    error: str = ""
    index: int = 0  # pass it back as min_index
    # msgpack list of [kind, argument, error, value]: error "" with the value (a variable map, or None
    # when it does not exist; a list for the others), else why it cannot be read ("Permission denied")
    data: bytes = b""


# The previous allocation of one on the asking node (Nomad's remotePrevAlloc: Alloc.GetAlloc, Node.GetNode
# and the MigrateTokens of Node.GetClientAllocs in one query), as a blocking query on the allocs table.
@message(332)
@msg
class GetPrevAlloc(Message):
    """What became of ``alloc_id``'s PreviousAllocation, once the allocs index passes ``min_index`` (or at
    ``wait_s``); ``alloc_id`` must be the asking node's."""

    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    alloc_id: str
    min_index: int = 0
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        if self.wait_s < 0 or self.min_index < 0:
            raise ValueError("wait_s and min_index must be >= 0")


@message(333)
@msg
class PrevAllocResponse(Message):
    req_id: int
    ok: bool
    error: str = ""
    index: int = 0  # pass it back as min_index
    found: bool = False  # False: the previous allocation is gone (garbage collected)
    client_status: str = ""
    terminal: bool = False  # complete, failed or lost, or unknown (Nomad's Terminated() or unknown)
    node_id: str = ""  # the node it ran on
    node_http_addr: str = ""  # that node's HTTP API (host:port); "" when the node is gone
    # Nomad's MigrateToken for the previous allocation on its node (the asking allocation migrates its
    # ephemeral disk and the previous one ran elsewhere); "" otherwise.
    migrate_token: str = ""


# The workload identities of a task of the asking node's allocation (Nomad's Alloc.SignIdentities): the
# default identity of each of *tasks* and the named *identities* ((task, name), ...), JWTs signed by the
# servers (actors.workload_identity).
@message(334)
@msg
class SignIdentities(Message):
    req_id: int
    reply_node: str
    reply_actor: str
    node_id: str
    secret_id: str
    alloc_id: str
    tasks: tuple[str, ...]
    identities: tuple[tuple[str, str], ...] = ()


@message(335)
@msg
class SignIdentitiesResponse(Message):
    req_id: int
    ok: bool
    error: str = ""
    tokens: tuple[tuple[str, str], ...] = ()  # (task, signed JWT)
    named: tuple[tuple[str, str, str, int], ...] = ()  # (task, identity, signed JWT, exp Unix s; 0: none)
