"""ClientNode: registration, heartbeats and server failover for one client agent.

Nomad's ``client/client.go`` (NOMAD.md §6.2), as an actor:

* the node ID and secret come from an injected :class:`IdentityStore`
  (``<state_dir>/client-id`` and ``secret-id`` in production, a dict that
  outlives crashes in the simulator), so a restarted client is the same node;
* it registers once the Fingerprinter has sent the first fingerprint, and
  re-registers (debounced) when the fingerprint changes, or at once when a
  heartbeat is answered ``node not found`` (the node was collected);
* it heartbeats (``UpdateStatus ready``) every TTL the server hands back --
  the server's timer runs TTL + grace, so grace is the slack for a retry;
* one RPC is in flight at a time.  An attempt unanswered within
  ``rpc_attempt_timeout_s``, or answered with a retryable error, moves the
  server to the back of the list (``NotifyFailedServer``) and is retried on
  the next one after a short jitter until ``rpc_hold_timeout_s`` has passed
  (Nomad's RPCHoldTimeout); then the outer retry policy applies:
  register every 15 s + stagger, heartbeat per ``getHeartbeatRetryIntv``.
* every reply replaces the server list with the servers' own list;
* it holds the node's dynamic metadata (Nomad 1.5's ``/v1/client/metadata``,
  :mod:`actors.client.node_meta`): loaded from an injected :class:`MetaStore`
  at start, merged over the static ``client.meta`` in every registration, and
  changed by :class:`ApplyNodeMeta` (saved first, then sent to the servers
  through the same debounced re-registration as a fingerprint change).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

from actors.client.fingerprint import Fingerprint, FingerprintChanged, SubscribeFingerprint
from actors.client.messages import (
    ERR_CONN_LOST,
    ERR_NO_LEADER,
    ERR_NODE_NOT_FOUND,
    INITIALIZING,
    READY,
    NodeSpec,
    NodeUpdateResponse,
    RegisterNode,
    UpdateNodeStatus,
    is_retryable,
)
from actors.client.node_meta import (
    MemoryMetaStore,
    MetaStore,
    apply_changes,
    dynamic_size,
    merged,
    meta_response,
    validate_changes,
    without_stale_unsets,
)
from actors.server import ENDPOINT, HEARTBEATS
from actors.server.heartbeat import random_stagger
from runtime.actor import NodeActor
from runtime.config import Config
from runtime.env import Env
from runtime.messages import PeerLost
from runtime.wire import builder

log = logging.getLogger("nomad.client")
_update_node_status = builder(UpdateNodeStatus)  # one per heartbeat

AckHook = Callable[[str, float, float, float], None]  # node_id, sent at, acked at, ttl


def _alloc_sync_started() -> type:
    """AllocSyncStarted, imported when first needed (as NodeRegistered and NodeVars are here)."""
    from actors.client.alloc_runner import AllocSyncStarted

    return AllocSyncStarted


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientNodeConfig:
    servers: tuple[str, ...] = ()  # client.servers: the servers' RPC addresses
    name: str = ""  # node name; "" = the node's address
    datacenter: str = "dc1"
    node_class: str = ""
    node_pool: str = "default"
    meta: tuple[tuple[str, str], ...] = ()
    http_addr: str = ""
    dev_mode: bool = False  # heartbeat at once, retry every dev_retry_s (Nomad DevMode)
    # One attempt unanswered this long counts as a failed server.  LAN round
    # trips are ms and a Raft write on a healthy cluster well under a second;
    # Nomad relies on the connection failing instead (not a Nomad key).
    rpc_attempt_timeout_s: float = 2.0
    # Nomad's RPCHoldTimeout: retry on other servers (after a jitter of
    # hold/16, structs.JitterFraction) until this long after the first try.
    rpc_hold_timeout_s: float = 5.0
    # Nomad registerRetryIntv: a failed registration is retried after this
    # plus a stagger of the same, so a restarted cluster is not stampeded.
    register_retry_s: float = 15.0
    # Nomad noServerRetryIntv: with no server known, look again quickly.
    no_servers_retry_s: float = 1.0
    # Nomad initialHeartbeatStagger: first heartbeat within this after
    # registering, spreading a cluster that started together.
    initial_heartbeat_stagger_s: float = 10.0
    # getHeartbeatRetryIntv: a heartbeat missed by more than this retries
    # after |missed|; within it after 1 s + stagger(1 s); otherwise a stagger
    # of the time left, clamped to [1 s, 25 s + stagger(5 s)].
    heartbeat_missed_far_s: float = 30.0
    heartbeat_retry_min_s: float = 1.0
    heartbeat_retry_cap_s: float = 30.0
    heartbeat_retry_high_s: float = 25.0
    # Nomad watchNodeUpdates: fingerprint changes are batched this long
    # (plus a stagger of it) into one re-registration.
    node_update_debounce_s: float = 5.0
    dev_retry_s: float = 1.0  # Nomad devModeRetryIntv
    # Move the leader a reply names to the front of the server list: the
    # follower's forwarding hop is saved (Nomad always forwards instead).
    # Failover is unchanged: a failed leader rotates to the back like any server.
    prefer_leader: bool = True
    # client.no_host_uuid = false: a new node's ID is the host's UUID (read
    # by the agent at start), so a reinstalled agent comes back as the same
    # node; "" (Nomad's default, no_host_uuid = true): a random UUID.
    host_uuid: str = ""
    min_dynamic_port: int = 20000  # client.min_dynamic_port
    max_dynamic_port: int = 32000  # client.max_dynamic_port
    reserved_ports: str = ""  # client.reserved.reserved_ports
    # client host_volume blocks: (name, path, read_only), sorted; their paths were checked at start.
    host_volumes: tuple[tuple[str, str, bool], ...] = ()
    # client host_network blocks: (name, cidr, interface, reserved_ports), sorted (checked at start).
    host_networks: tuple[tuple[str, str, str, str], ...] = ()
    # Beyond Nomad (which bounds nothing): the dynamic node meta, keys and
    # values, at most this many bytes.  It travels whole in every
    # registration and in the node's Raft entry, so an operator's mistake
    # must not grow those without bound; 64 KiB is far above any scheduling
    # use and far below a wire frame (4 MiB).
    dynamic_meta_max_bytes: int = 64 * 1024
    node_max_allocs: int = 0  # client.node_max_allocs (Nomad's default 0: no limit)
    # client.default_ineligible: the node registers ineligible; the server applies it to a new node only.
    default_ineligible: bool = False

    def __post_init__(self) -> None:
        for name in ("rpc_attempt_timeout_s", "rpc_hold_timeout_s", "register_retry_s", "no_servers_retry_s",
                     "heartbeat_missed_far_s", "heartbeat_retry_min_s", "heartbeat_retry_cap_s",
                     "node_update_debounce_s", "dev_retry_s", "dynamic_meta_max_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.initial_heartbeat_stagger_s < 0:
            raise ValueError("initial_heartbeat_stagger_s must be >= 0")
        if self.node_max_allocs < 0:
            raise ValueError("node_max_allocs must be >= 0")
        if not self.heartbeat_retry_min_s <= self.heartbeat_retry_high_s <= self.heartbeat_retry_cap_s:
            raise ValueError("need heartbeat_retry_min_s <= heartbeat_retry_high_s <= heartbeat_retry_cap_s")

    @classmethod
    def from_config(cls, config: Config, *, name: str, http_addr: str = "") -> ClientNodeConfig:
        c = config.client
        return cls(servers=tuple(_with_port(s) for s in c.servers), name=name, datacenter=config.datacenter,
                   node_class=c.node_class, node_pool=c.node_pool, meta=tuple(sorted(c.meta)),
                   http_addr=http_addr, dev_mode=config.dev_mode, min_dynamic_port=c.min_dynamic_port,
                   max_dynamic_port=c.max_dynamic_port, reserved_ports=c.reserved.reserved_ports,
                   host_volumes=tuple(sorted(c.host_volume)), node_max_allocs=c.node_max_allocs,
                   default_ineligible=c.default_ineligible, host_networks=tuple(sorted(c.host_network)),
                   initial_heartbeat_stagger_s=c.initial_heartbeat_stagger_s)


def read_host_uuid(paths: tuple[str, ...] = ("/sys/class/dmi/id/product_uuid", "/etc/machine-id")) -> str:
    """The host's UUID (the edge: file reads), as a UUID string; "" when none is readable.

    The firmware's product UUID needs root; systemd's machine-id (32 hex
    digits) is the fallback, as gopsutil's HostID reads them.
    """
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.read().strip()
            return str(uuid.UUID(text))
        except (OSError, ValueError):
            continue
    return ""


def _with_port(server: str) -> str:
    """``host`` without a port means ``:4647`` (Nomad client/rpc.go resolveServer)."""
    if server.startswith("["):
        return server if "]:" in server else f"{server}:4647"
    return server if ":" in server else f"{server}:4647"


def heartbeat_retry_interval(cfg: ClientNodeConfig, *, now: float, last_ok: float, ttl: float,
                             ever_ok: bool, no_leader: bool, rng: Random) -> float:
    """Nomad ``getHeartbeatRetryIntv``: when to retry a failed heartbeat (pure)."""
    if cfg.dev_mode:
        return cfg.dev_retry_s
    if not ever_ok or no_leader:
        # Treat it as a registration: a new leader will hand everyone the
        # failover TTL, so hurrying only loads it.
        return cfg.register_retry_s + random_stagger(rng, cfg.register_retry_s)
    left = last_ok + ttl - now
    lo = cfg.heartbeat_retry_min_s
    if left < -cfg.heartbeat_missed_far_s:
        left = -left  # missed long ago: the time since, staggered and capped below (never that long)
    elif left < 0:
        return lo + random_stagger(rng, lo)
    s = random_stagger(rng, left)
    if s < lo:
        return lo + random_stagger(rng, lo)
    if s > cfg.heartbeat_retry_cap_s:
        high = cfg.heartbeat_retry_high_s
        return high + random_stagger(rng, cfg.heartbeat_retry_cap_s - high)
    return s


# ------------------------------------------------------------ identity (an edge)
class IdentityStore(Protocol):
    def load(self) -> tuple[str, str] | None:
        """(node_id, secret_id) if this client registered before."""

    def save(self, node_id: str, secret_id: str) -> None: ...


@dataclass(slots=True)
class MemoryIdentityStore:
    """The simulator's (and dev mode's) store: keep the object to survive a crash."""

    data: dict[str, str] = field(default_factory=dict)

    def load(self) -> tuple[str, str] | None:
        if "node_id" not in self.data:
            return None
        return self.data["node_id"], self.data.get("secret_id", "")

    def save(self, node_id: str, secret_id: str) -> None:
        self.data["node_id"], self.data["secret_id"] = node_id, secret_id


class FileIdentityStore:
    """``<state_dir>/client-id`` and ``secret-id`` (files 0600, dir 0700), as Nomad lays them out."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir

    def load(self) -> tuple[str, str] | None:
        try:
            with open(os.path.join(self.state_dir, "client-id"), encoding="ascii") as f:
                node_id = f.read().strip()
            with open(os.path.join(self.state_dir, "secret-id"), encoding="ascii") as f:
                secret = f.read().strip()
        except FileNotFoundError:
            return None
        return (node_id, secret) if node_id else None

    def save(self, node_id: str, secret_id: str) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        for name, value in (("client-id", node_id), ("secret-id", secret_id)):
            _write_durably(os.path.join(self.state_dir, name), value)


def _write_durably(path: str, value: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, value.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def new_uuid(rng: Random) -> str:
    """A random UUID drawn from the injected RNG (deterministic in the simulator)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def client_permission_warnings(euid: int | None) -> list[str]:
    """What a non-root client cannot do, for one clear start-up warning each (issue 6)."""
    if euid is None or euid == 0:
        return []
    return ["running the client as non-root: the exec driver (chroot, cgroups) is unavailable, "
            "tasks cannot run as other users, and host volumes owned by root cannot be mounted"]


# ------------------------------------------------------------ the actor
@dataclass(frozen=True, slots=True)
class ReplaceServers:
    """Replace the client's server list (``PUT /v1/agent/servers``; local only)."""

    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadNodeMeta:
    """Answers this node's ``NodeMetaResponse``, a dict (``GET /v1/client/metadata``; local only)."""


@dataclass(frozen=True, slots=True)
class ApplyNodeMeta:
    """Change the dynamic node meta (``POST /v1/client/metadata``; local only).

    *changes* are sorted (key, value) pairs, a None value unsetting the key.
    Answers ``(error, response)``: ``("", NodeMetaResponse)`` once the change
    is saved (the servers hear of it within the node-update debounce), or
    ``(reason, None)``, the reason starting ``invalid:`` for the caller's mistake.
    """

    changes: tuple[tuple[str, str | None], ...]


@dataclass(slots=True)
class _Rpc:
    kind: str  # "register" | "heartbeat"
    first_at: float
    fp: Fingerprint | None = None  # what a registration sends
    meta: tuple[tuple[str, str], ...] = ()  # and the node meta it sends (static and dynamic merged)
    req_id: int = 0
    server: str = ""
    sent_at: float = 0.0


class ClientNode(NodeActor):
    def __init__(self, env: Env, name: str, *, config: ClientNodeConfig, identity: IdentityStore,
                 fingerprinter: str = "fingerprint", endpoint: str = ENDPOINT, heartbeats: str = HEARTBEATS,
                 on_ack: AckHook | None = None, listeners: tuple[str, ...] = (),
                 meta_store: MetaStore | None = None) -> None:
        super().__init__(env, name)
        self.cfg = config
        self.meta_store: MetaStore = meta_store if meta_store is not None else MemoryMetaStore()
        self.static_meta = dict(config.meta)
        self.dynamic_meta: dict[str, str | None] = {}
        self.meta: tuple[tuple[str, str], ...] = tuple(sorted(config.meta))  # what registrations send
        self.listeners = listeners  # local actors told NodeRegistered (alloc sync)
        self.identity = identity
        self.fingerprinter = fingerprinter
        self.endpoint = endpoint  # registrations and node updates
        self.heartbeats = heartbeats  # plain heartbeats: the server's HeartbeatMonitor answers them itself
        self.on_ack = on_ack  # observability: metrics in production, checkers in the simulator
        self.servers: list[str] = list(config.servers)
        env.rng.shuffle(self.servers)  # spread clients over the servers, as Nomad's server manager does
        self.node_id = ""
        self.secret_id = ""
        self.fp: Fingerprint | None = None
        self.registered = False
        self.status = INITIALIZING
        self.ttl = 0.0
        self.last_ok = 0.0
        self.ever_ok = False
        self.num_nodes = 0
        self._rpc: _Rpc | None = None
        self._next_req = 0
        # A registration or heartbeat asked for while another RPC was in flight (two flags, not a dict:
        # the answer to every heartbeat reads both).
        self._want_register = False
        self._want_heartbeat = False
        # sorted(self.servers) as a tuple, and the list it was made from: the
        # membership only changes when the list is replaced (rotation and
        # leader preference reorder it in place), so this stays valid while
        # ``self.servers`` is the same object.
        self._sorted_servers: tuple[str, ...] = ()
        self._sorted_of: list[str] | None = None
        self._servers_seen: tuple[str, ...] = ()  # the last answer's servers, which our list holds
        self.stats = {"registrations": 0, "heartbeats": 0, "failures": 0, "timeouts": 0, "failovers": 0,
                      "connections_lost": 0}
        self._watched: set[str] = set()  # servers whose lost connections we are told of (Env.watch_peer)
        self._watched_last = ""  # the server of the last attempt (in _watched)

    def on_start(self) -> None:
        saved = self.identity.load()
        if saved is None:
            self.node_id = self.cfg.host_uuid or new_uuid(self.env.rng)
            self.secret_id = new_uuid(self.env.rng)
            self.identity.save(self.node_id, self.secret_id)
        else:
            self.node_id, self.secret_id = saved
        # Interned, as the servers intern the node IDs they keep timers under (HeartbeatMonitor): the
        # string this node sends is then, in one process, the very key they look up.
        self.node_id = sys.intern(self.node_id)
        loaded = self.meta_store.load()  # unreadable: MetaStoreError fails the start, as in Nomad
        dynamic = without_stale_unsets(self.static_meta, loaded)
        if dynamic != loaded:
            self.meta_store.save(dynamic)
        self._set_dynamic(dynamic)
        self.send(self.env.node, self.fingerprinter, SubscribeFingerprint(self.name))

    def _set_dynamic(self, dynamic: dict[str, str | None]) -> None:
        self.dynamic_meta = dynamic
        self.meta = tuple(merged(self.static_meta, dynamic).items())

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, NodeUpdateResponse):
            self._response(message)
        elif isinstance(message, FingerprintChanged):
            first = self.fp is None
            self.fp = message.fingerprint
            # The runner has the node's values before registering (Nomad's client fingerprints before it
            # restores allocations): a task restarted while the servers are away still sees ${attr.*}.
            self._tell_node_vars()
            self._node_changed(first)
        elif isinstance(message, ReadNodeMeta):
            return meta_response(self.static_meta, self.dynamic_meta)
        elif isinstance(message, ApplyNodeMeta):
            return self._apply_meta(dict(message.changes))
        elif isinstance(message, PeerLost):
            rpc = self._rpc
            # An attempt in flight on that server fails now, as Nomad's does when its connection resets.
            if rpc is not None and rpc.server == message.node and "rpc" in self._timer_handles:
                self.stats["connections_lost"] += 1
                self._attempt_failed(f"{ERR_CONN_LOST}: {message.reason}")
        elif isinstance(message, _alloc_sync_started()):
            if self.registered and message.name in self.listeners:
                # Restarted empty by the supervisor: it learns the registration again.
                from actors.client.alloc_sync import NodeRegistered

                self.send(self.env.node, message.name, NodeRegistered(self.node_id, self.secret_id,
                                                                      tuple(self.servers)))
        elif isinstance(message, ReplaceServers):
            log.info("%s: servers set by the operator: %s", self.env.node, ", ".join(message.servers))
            self.servers = list(message.servers)
            if self.registered:
                self._tell_listeners()
            if not self.registered and self._rpc is None:
                self._start("register")
        elif message == "status":
            return {"node_id": self.node_id, "registered": self.registered, "status": self.status,
                    "servers": list(self.servers), "heartbeat_ttl": self.ttl, "last_heartbeat": self.last_ok,
                    **self.stats}
        return None

    def _node_changed(self, first: bool = False) -> None:
        """The node changed: register now, or after the debounce (Nomad watchNodeUpdates)."""
        in_flight = self._rpc is not None and self._rpc.kind == "register"
        if first or (not self.registered and not in_flight and not self.timer_armed("register")):
            self._start("register")
        elif not self.registered and self.timer_armed("register"):
            pass  # backing off after a failed registration: the retry carries the change
        elif not self.timer_armed("node_update"):
            self.set_timer("node_update", self._node_update_delay())

    def _node_update_delay(self) -> float:
        """Nomad ``retryIntv(nodeUpdateRetryIntv)``: the debounce plus a stagger of it; dev mode's 1 s."""
        if self.cfg.dev_mode:
            return self.cfg.dev_retry_s
        d = self.cfg.node_update_debounce_s
        return d + random_stagger(self.env.rng, d)

    def _apply_meta(self, changes: dict[str, str | None]) -> tuple[str, dict[str, Any] | None]:
        """Nomad ``NodeMeta.Apply``: validate, save, then take the change and update the node."""
        error = validate_changes(changes)
        if error:
            return f"invalid: {error}", None
        dynamic = apply_changes(self.dynamic_meta, changes)
        size, limit = dynamic_size(dynamic), self.cfg.dynamic_meta_max_bytes
        if size > limit and size > dynamic_size(self.dynamic_meta):  # a change that shrinks it always may
            return f"invalid: dynamic node metadata too large: {size} bytes (limit {limit})", None
        try:
            self.meta_store.save(dynamic)
        except OSError as e:  # nothing changed: the operator may try again
            log.error("%s: saving dynamic node metadata failed: %s", self.env.node, e)
            return f"failed to save dynamic node metadata: {e}", None
        before = self.meta
        self._set_dynamic(dynamic)
        if self.meta != before and self.fp is not None:
            self._tell_node_vars()
            self._node_changed()
        return "", meta_response(self.static_meta, self.dynamic_meta)

    def on_timer(self, name: str) -> None:
        if name == "heartbeat":  # first: nearly every timer that fires is this one
            self._start("heartbeat" if self.registered else "register")
        elif name == "rpc":
            self.stats["timeouts"] += 1
            rpc = self._rpc
            if rpc is not None and self.listeners:
                # No answer at all: what the client has parked on that server (its allocation query)
                # is as good as lost too, as Nomad's client learns when its connection's keepalive
                # fails.  (A server whose process closes the connection is noticed sooner: PeerLost.)
                why = f"no answer within {self.cfg.rpc_attempt_timeout_s:g}s"
                lost = PeerLost(node=rpc.server, reason=why)
                for actor in self.listeners:
                    self.send(self.env.node, actor, lost)
            self._attempt_failed("rpc timeout")
        elif name == "rpc_retry":
            if self._rpc is not None:  # a late answer may have settled it meanwhile
                self._attempt()
        elif name in ("register", "node_update"):
            self._start("register")

    # ------------------------------------------------------------ RPCs
    def _start(self, kind: str) -> None:
        if self.fp is None:
            return  # registers on the first fingerprint
        if self._rpc is not None:
            if kind == "register":
                self._want_register = True
            else:
                self._want_heartbeat = True
            return
        if kind == "register":
            self.cancel_timer("register")
            self.cancel_timer("node_update")
        elif "heartbeat" in self._timer_handles:  # armed: not when it is the timer that fired (nearly always)
            self.cancel_timer("heartbeat")
        now = self.env.now()
        self._rpc = _Rpc(kind, now, self.fp)
        self._attempt(now)

    def _attempt(self, now: float | None = None) -> None:
        rpc = self._rpc
        assert rpc is not None
        if not self.servers:
            self._rpc = None
            self._outer_failure(rpc.kind, "no servers")
            return
        self._next_req += 1
        server = self.servers[0]
        rpc.req_id, rpc.server = self._next_req, server
        if server is not self._watched_last:  # nearly every attempt goes where the last one went
            if server not in self._watched:
                self._watched.add(server)
                self.env.watch_peer(server, self.name)
            self._watched_last = server
        rpc.sent_at = self.env.now() if now is None else now
        if rpc.kind == "register":
            rpc.fp, rpc.meta = self.fp, self.meta
            msg: Any = RegisterNode(req_id=rpc.req_id, reply_node=self.env.node, reply_actor=self.name,
                                    node=self._spec())
            actor = self.endpoint
        else:
            msg = _update_node_status(req_id=rpc.req_id, reply_node=self.env.node, reply_actor=self.name,
                                      node_id=self.node_id, status=READY)
            actor = self.heartbeats
        self.env.send(rpc.server, actor, msg)  # NodeActor.send, without its call (once per heartbeat)
        self.set_timer("rpc", self.cfg.rpc_attempt_timeout_s)

    def _spec(self) -> NodeSpec:
        fp = self.fp
        assert fp is not None
        c = self.cfg
        return NodeSpec(node_id=self.node_id, secret_id=self.secret_id, name=c.name or self.env.node,
                        datacenter=c.datacenter, node_class=c.node_class, node_pool=c.node_pool,
                        http_addr=c.http_addr, attributes=fp.attributes, meta=self.meta,
                        drivers=fp.drivers, resources=fp.resources, reserved=fp.reserved,
                        min_dynamic_port=c.min_dynamic_port, max_dynamic_port=c.max_dynamic_port,
                        reserved_ports=c.reserved_ports, host_volumes=c.host_volumes,
                        driver_health=fp.driver_health, node_max_allocs=c.node_max_allocs,
                        scheduling_eligibility="ineligible" if c.default_ineligible else "eligible",
                        host_networks=c.host_networks, node_networks=fp.node_networks)

    def _response(self, m: NodeUpdateResponse) -> None:
        rpc = self._rpc
        if rpc is None or m.req_id != rpc.req_id:
            return  # an answer to an attempt we gave up on
        self.cancel_timer("rpc")
        # The attempt timed out and a retry is waiting, but its answer came
        # after all (a Raft write slower than rpc_attempt_timeout_s): this
        # answer settles the request; the retry must not fire on nothing.
        if "rpc_retry" in self._timer_handles:  # timer_armed, without its call (once per heartbeat)
            self.cancel_timer("rpc_retry")
        # Nearly every answer carries the servers we hold: then nothing below
        # changes, and the cached sorted list spares sorting both per heartbeat
        # (its common case first, without the call).  The very tuple the last
        # answer held while our list stood (one server process answers with one
        # object) needs no comparing at all.
        answered = m.servers
        if answered and not (answered is self._servers_seen and self._sorted_of is self.servers):
            if not (self._sorted_of is self.servers and answered == self._sorted_servers) \
                    and not self._holds_servers(answered):
                before = list(self.servers)
                self._set_servers(answered)
                if self.registered and sorted(before) != sorted(self.servers):
                    self._tell_listeners()
            self._servers_seen = answered
        leader, servers = m.leader, self.servers
        if self.cfg.prefer_leader and leader and servers and servers[0] != leader and leader in servers:
            servers.remove(leader)
            servers.insert(0, leader)
        if not m.ok:
            self._attempt_failed(m.error)
            return
        self._rpc = None
        now = self.env.now()
        if m.heartbeat_ttl_s > 0:
            self.ttl = m.heartbeat_ttl_s
            if self.on_ack is not None:
                self.on_ack(self.node_id, rpc.sent_at, now, m.heartbeat_ttl_s)
        self.num_nodes = m.num_nodes
        if rpc.kind == "register":
            self._registered(rpc.fp, rpc.meta)
        else:
            self._heartbeat_ok(now, m)
        if self._want_register or self._want_heartbeat:
            self._next()

    def _attempt_failed(self, error: str) -> None:
        rpc = self._rpc
        assert rpc is not None
        self.cancel_timer("rpc")
        self._server_failed(rpc.server)
        if is_retryable(error) and self.env.now() - rpc.first_at < self.cfg.rpc_hold_timeout_s:
            self.set_timer("rpc_retry", random_stagger(self.env.rng, self.cfg.rpc_hold_timeout_s / 16))
            return
        self._rpc = None
        self._outer_failure(rpc.kind, error)
        self._next()

    def _server_failed(self, server: str) -> None:
        if self.servers and self.servers[0] == server and len(self.servers) > 1:
            self.servers.append(self.servers.pop(0))
            self.stats["failovers"] += 1

    def _holds_servers(self, servers: tuple[str, ...]) -> bool:
        """``sorted(servers) == sorted(self.servers)``, sorting our list only when it was replaced."""
        if self._sorted_of is not self.servers:
            self._sorted_of = self.servers
            self._sorted_servers = tuple(sorted(self.servers))
        mine = self._sorted_servers
        return servers == mine or tuple(sorted(servers)) == mine

    def _set_servers(self, servers: tuple[str, ...]) -> None:
        if self._holds_servers(servers):
            return
        current = self.servers[0] if self.servers else ""
        fresh = list(servers)
        self.env.rng.shuffle(fresh)
        if current in fresh:
            fresh.remove(current)
            fresh.insert(0, current)
        self.servers = fresh

    def _next(self) -> None:
        if self._want_register:
            self._want_register = False
            self._start("register")
        elif self._want_heartbeat:
            self._want_heartbeat = False
            self._start("heartbeat")

    # ------------------------------------------------------------ outcomes
    def _registered(self, sent: Fingerprint | None, sent_meta: tuple[tuple[str, str], ...]) -> None:
        if (sent != self.fp or sent_meta != self.meta) and not self.timer_armed("node_update"):
            # Changed while registering: sent again after the debounce (no stagger: one is due already).
            c = self.cfg
            self.set_timer("node_update", c.dev_retry_s if c.dev_mode else c.node_update_debounce_s)
        was = self.registered
        self.registered = True
        self.status = READY
        self.stats["registrations"] += 1
        self._tell_listeners()
        self._tell_heartbeat_ok(self.env.now())
        if not was or not self.timer_armed("heartbeat"):
            stagger = self.cfg.initial_heartbeat_stagger_s
            self.set_timer("heartbeat", 0.0 if self.cfg.dev_mode else random_stagger(self.env.rng, stagger))

    def _tell_listeners(self) -> None:
        if self.listeners:
            from actors.client.alloc_sync import NodeRegistered

            self._tell_node_vars()  # first: before any allocation the registration places
            msg = NodeRegistered(self.node_id, self.secret_id, tuple(self.servers))
            for actor in self.listeners:
                self.send(self.env.node, actor, msg)

    def _tell_node_vars(self) -> None:
        if self.listeners:
            from actors.client.alloc_runner import NodeVars

            node_vars = NodeVars(self._node_vars(), host_volumes=self.cfg.host_volumes)
            for actor in self.listeners:
                self.send(self.env.node, actor, node_vars)

    def _node_vars(self) -> tuple[tuple[str, str], ...]:
        """What a task's config may name of this node (Nomad's taskenv node attributes)."""
        c = self.cfg
        out = {"node.unique.id": self.node_id, "node.unique.name": c.name or self.env.node,
               "node.datacenter": c.datacenter, "node.class": c.node_class, "node.pool": c.node_pool}
        if self.fp is not None:
            out.update((f"attr.{k}", v) for k, v in self.fp.attributes)
        out.update((f"meta.{k}", v) for k, v in self.meta)
        return tuple(sorted(out.items()))

    def _heartbeat_ok(self, now: float, m: NodeUpdateResponse) -> None:
        self.stats["heartbeats"] += 1
        if m.index:  # the servers changed the node's status (Nomad updateNodeStatus)
            log.debug("%s: state updated: node_status=ready (index %d)", self.env.node, m.index)
            if self.ever_ok:  # not the first heartbeat, which takes a new node from initializing
                log.warning("%s: missed heartbeat: since_last_heartbeat=%.1fs", self.env.node, now - self.last_ok)
        self.last_ok, self.ever_ok = now, True
        self.set_timer("heartbeat", self.ttl)
        if self.listeners:
            self._tell_heartbeat_ok(now)

    def _tell_heartbeat_ok(self, now: float) -> None:
        """The servers answered (a heartbeat or a registration): disconnect.stop_on_client_after counts
        from here (Nomad's heartbeatStop.setLastOk)."""
        if self.listeners:
            from actors.client.alloc_runner import HeartbeatOk

            ok = HeartbeatOk(now)
            for actor in self.listeners:
                self.send(self.env.node, actor, ok)

    def _outer_failure(self, kind: str, error: str) -> None:
        self.stats["failures"] += 1
        rng = self.env.rng
        if kind == "register":
            if not self.servers:
                delay = self.cfg.no_servers_retry_s
            elif self.cfg.dev_mode:
                delay = self.cfg.dev_retry_s
            else:
                delay = self.cfg.register_retry_s + random_stagger(rng, self.cfg.register_retry_s)
            log.debug("%s: registration failed (%s); retrying in %.1fs", self.env.node, error, delay)
            self.set_timer("register", delay)
            return
        if ERR_NODE_NOT_FOUND in error:
            log.info("%s: server does not know node %s; re-registering", self.env.node, self.node_id)
            self.registered = False
            self.status = INITIALIZING
            self._want_register = True
            return
        delay = heartbeat_retry_interval(self.cfg, now=self.env.now(), last_ok=self.last_ok, ttl=self.ttl,
                                         ever_ok=self.ever_ok, no_leader=ERR_NO_LEADER in error, rng=rng)
        log.debug("%s: heartbeat failed (%s); retrying in %.1fs", self.env.node, error, delay)
        self.set_timer("heartbeat", delay)

