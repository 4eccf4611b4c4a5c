"""RaftPeer: the actor that hosts a RaftCore, its storage and the state store.

It turns time into ``tick`` timers, peer messages into ``core.step``, client
requests into proposals and reads, and handles each ``Ready`` in the order
the core documents (persist → send → persisted → apply).  Writes are group
committed: a request only marks the peer dirty; at the end of its turn the
peer flushes at once if its inbox is empty, else queues one ``_Flush`` to
itself behind the waiting mail, so every message already in the inbox is
folded into the same storage transaction and fsync.  A leader's writes are proposed the same way:
queued as they arrive and appended as one batch when the flush starts, so
each follower gets one AppendEntries per flush, not one per write.

Requests from the outside world (HTTP API, tests, benchmarks) carry a reply
future made by ``env.make_future()``; the peer sets it when the answer is
known and never blocks.  A follower forwards writes and linearizable reads
to the leader with a request id, and answers its caller when the leader's
reply arrives or ``forward_timeout_s`` passes.
"""

from __future__ import annotations

import collections
import heapq
import logging
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from actors.agent_messages import ConfigReloaded, Leave, LeaveDone
from actors.raft.core import FOLLOWER, LEADER, RaftCore, RaftTimings, Ready, member
from actors.raft.messages import (
    CONFIG,
    NORMAL,
    AppendEntries,
    AppendResp,
    ApplyResult,
    ForwardApply,
    ForwardConfigChange,
    ForwardRead,
    ForwardTransfer,
    InstallSnapshot,
    InstallSnapshotResp,
    ReadIndexResult,
    RequestVote,
    RequestVoteResp,
    TimeoutNow,
)
from actors.raft.storage import RaftStorage
from actors.state import autopilot_config as ap_cfg
from actors.state.store import StateStore, decode_result, encode_result
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.messages import PeerLost
from runtime.snapshotter import InlineSnapshotter, Snapshotter

log = logging.getLogger("nomad.raft")

# A server ID that is a node ID (a UUID) is never an address: a message to such a server that
# neither the configuration nor gossip can place (it just left) is not sent.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DISPATCH_LOG = ("raft", "leader", "dispatchLog")
_STORE_LOGS = ("raft", "rpc", "appendEntries", "storeLogs")
RAFT_MESSAGES = (AppendEntries, AppendResp, RequestVote, RequestVoteResp, InstallSnapshot,
                 InstallSnapshotResp, TimeoutNow)
NO_LEADER = "No cluster leader"
# A forwarded read whose leader is no longer the known one: failed at once, to be made again.
READ_LEADER_LOST = "leadership lost"


@dataclass(frozen=True, slots=True)
class RaftConfig:
    timings: RaftTimings = field(default_factory=RaftTimings)
    snapshot_threshold: int = 8192  # entries applied since the last snapshot before taking one (hashicorp: 8192)
    # How often the threshold is checked (Nomad raft_snapshot_interval,
    # hashicorp SnapshotInterval: 120 s); each wait is a random 1-2x this, as
    # hashicorp's randomTimeout, so servers seldom snapshot together.  A
    # snapshot encodes and stores the whole state (0.3 s at 30 MB): checked
    # only at the threshold, a busy server snapshotted every few seconds.
    # 0: checked after every apply (the simulator: snapshots in short runs).
    snapshot_interval_s: float = 0.0
    # The log since the last snapshot is held in memory (hashicorp keeps it
    # on disk): past this many bytes of entries one is taken at once,
    # whatever the interval.
    snapshot_max_log_bytes: int = 64 << 20
    # Entries kept at or before a snapshot when the log is compacted (Nomad
    # raft_trailing_logs, hashicorp TrailingLogs: 10240): a follower that
    # trails by fewer gets them by AppendEntries instead of the whole
    # snapshot.  0 (the simulator's default): compact everything, so short
    # runs exercise InstallSnapshot.
    trailing_logs: int = 0
    # ...and no more of them than this many bytes of data: the log lives in
    # memory here (hashicorp's on disk).  Past it, the older trailing
    # entries go and a follower that far behind gets the snapshot.
    trailing_max_bytes: int = 32 << 20
    forward_timeout_s: float = 5.0  # a forwarded request unanswered this long fails (Nomad RPC hold timeout: 5 s)
    leave_retry_s: float = 1.0  # a leaving server re-asks the leader for its removal this often
    # Blocking queries parked at once (HTTP ?index=, clients watching their
    # allocations).  Beyond it a Watch is answered at once and the caller
    # simply polls: memory stays bounded under a flood of watchers.
    max_watches: int = 20_000
    # With a metrics registry: how often raft.lastIndex, raft.appliedIndex
    # and state.snapshotIndex are set (Nomad EmitRaftStats: every 10 s) ...
    stats_interval_s: float = 10.0
    # ...and how often a leader samples raft.leader.lastContact per follower
    # (hashicorp measures it at every lease check, leaderLeaseTimeout 500 ms).
    contact_sample_s: float = 0.5
    # A small save made while the actor has no other mail is written in the
    # actor's own greenlet instead of the store's disk thread (SqliteStorage
    # save(idle=True)): it saves the hand-off (~3 context switches) but
    # blocks the whole process for the fsync.  Off: in a server the empty
    # inbox does not mean an idle process -- the HTTP handlers and the
    # transport that bring the next write wait behind the fsync, and a
    # leader blocked on its own fsync (which a quorum of three does not need)
    # sends the next AppendEntries late.  Measured on one 3-server cluster
    # (1,000 nodes) with one client registering jobs, the two alternated in
    # 6 pairs of 150 registrations: median p50 4.26 ms on, 2.63 ms off (off
    # no worse in any pair; 6.1-6.8 ms against 2.5 ms while another
    # process's fsyncs made them 3-4 ms).
    inline_idle_saves: bool = False

    def __post_init__(self) -> None:
        if self.stats_interval_s <= 0 or self.contact_sample_s <= 0:
            raise ValueError("stats_interval_s and contact_sample_s must be > 0")
        if self.snapshot_threshold < 1:
            raise ValueError("snapshot_threshold must be >= 1")
        if self.snapshot_interval_s < 0:
            raise ValueError("snapshot_interval_s must be >= 0")
        if self.snapshot_max_log_bytes < 1:
            raise ValueError("snapshot_max_log_bytes must be >= 1")
        if self.trailing_logs < 0 or self.trailing_max_bytes < 0:
            raise ValueError("trailing_logs and trailing_max_bytes must be >= 0")
        if self.forward_timeout_s <= 0:
            raise ValueError("forward_timeout_s must be > 0")


def raft_config(raft_multiplier: int = 1, stabilization_s: float = 0.0, max_trailing: int = 250, *,
                snapshot_threshold: int = 8192, snapshot_interval_s: float = 120.0,
                trailing_logs: int = 10240) -> RaftConfig:
    """Nomad's timings: 1 s election timeout x ``server.raft_multiplier`` (1-10); a new server
    becomes a voter once it has kept up, within *max_trailing* entries, for *stabilization_s*
    (autopilot's server_stabilization_time and max_trailing_logs); a snapshot once
    *snapshot_threshold* entries were applied, checked every *snapshot_interval_s*
    (``server.raft_snapshot_threshold`` and ``raft_snapshot_interval``), keeping
    *trailing_logs* entries before it (``server.raft_trailing_logs``)."""
    if not 1 <= raft_multiplier <= 10:
        raise ValueError(f"server.raft_multiplier: must be within 1..10, got {raft_multiplier}")
    if stabilization_s < 0:
        raise ValueError(f"autopilot.server_stabilization_time: must be >= 0, got {stabilization_s}")
    t = RaftTimings(election_ticks=10 * raft_multiplier)
    return RaftConfig(timings=replace(t, stabilization_ticks=math.ceil(stabilization_s / t.tick_s - 1e-9),
                                      promote_max_trailing=max_trailing),
                      snapshot_threshold=snapshot_threshold, snapshot_interval_s=snapshot_interval_s,
                      trailing_logs=trailing_logs)


# ------------------------------------------------------------ local requests (never on the wire)
@dataclass(frozen=True, slots=True)
class SnapshotEncoded:
    """The snapshotter's answer: the state as of applied *index*, or None and why not."""

    index: int
    data: bytes | None
    error: str
    started: float  # env.now() when the encoding began


@dataclass(frozen=True, slots=True)
class SnapshotReadEncoded:
    """The snapshotter's answer to a :class:`SnapshotRead`: *data* for *meta*, or None and why not."""

    reply: Any
    meta: tuple[int, int, tuple[str, ...], tuple[str, ...]]  # index, term, voters, learners
    data: bytes | None
    error: str


class _SnapshotReadStart:
    """The reply of the Read behind a SnapshotRead: once the read may be served, the
    state is encoded by the snapshotter (in a child process in the agent), as a
    compaction snapshot is, so an operator's ``snapshot save`` does not hold
    Raft up either; a failed read is the caller's answer at once."""

    __slots__ = ("peer", "reply")

    def __init__(self, peer: RaftPeer, reply: Any) -> None:
        self.peer, self.reply = peer, reply

    def set(self, value: Any) -> None:
        _, meta = value
        reply, peer = self.reply, self.peer
        peer.snapshotter.start(peer.env, peer.actor_ref, peer.state.snapshot,
                               lambda data, error: SnapshotReadEncoded(reply, meta, data, error))

    def set_exception(self, exc_info: Any = None) -> None:
        if self.reply is not None:
            self.reply.set_exception(exc_info)


@dataclass(frozen=True, slots=True)
class Propose:
    """Apply a state-machine command; reply gets ``(index, result)`` or an Exception."""

    data: bytes
    reply: Any


@dataclass(frozen=True, slots=True)
class Read:
    """Run ``query(state)``: linearizable unless ``stale``; reply gets ``(index, value)``."""

    query: Any
    reply: Any
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Watch:
    """A blocking query: *reply* gets ``(index, query(state) or None)`` once any of
    *tables* has an index above *min_index*, or when *timeout_s* passes
    (Nomad's ``?index=N&wait=``).  Stale by nature: it reads this server's
    state, as Nomad's blocking queries do.
    """

    tables: tuple[str, ...]
    min_index: int
    reply: Any
    timeout_s: float
    query: Any = None
    # Optional ``index_fn(state) -> int`` used instead of the tables' index:
    # a watch on one key (a client's own allocations) then wakes only when
    # that key changes, not on every change to the table.
    index_fn: Any = None
    # With index_fn: the state store key (StateStore.take_changed_keys) that
    # moves whenever index_fn's value can; the watch is then looked at only
    # when that key moved, not on every change to its tables.
    key: Any = None
    # A follower answers only if it heard from a leader within this many
    # seconds (else the reply gets an error and the caller asks another
    # server): a partitioned follower's state may be arbitrarily old.  None:
    # answer whatever this server holds (Nomad's plain ?stale).
    max_stale_s: float | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRead:
    """``nomad operator snapshot save``: reply gets ``(index, (index, term, voters, learners, state bytes))``.

    The whole state store's snapshot with the Raft index it reflects and
    that entry's term, read as a :class:`Read` is: linearizable (a follower
    gets a read index from the leader, then answers from its own state once
    applied that far) unless ``stale``.
    """

    reply: Any
    stale: bool = False


@dataclass(frozen=True, slots=True)
class ChangeMembership:
    op: str  # "add_learner" | "remove" | "address" (a known server at a new address)
    node: str  # the server's Raft ID
    reply: Any
    address: str = ""  # add_learner / address: where it is reached ("": its ID is its address)


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """Membership -> Raft: where gossip last saw each server, ``(ID, RPC address)`` pairs.

    Messages go to a server at its address in the Raft configuration; these serve a
    server the configuration does not name (yet): the leader of a new non-voter,
    whose configuration arrives with the leader's first entries."""

    addrs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Transfer:
    """Hand leadership to voter *target* (``nomad operator raft transfer-leadership``).

    A follower forwards it to the leader.  *reply* gets None once this
    leader has stepped down for it, or an error: not leader / no leader,
    *target* not another voter, or ``leadership transfer timeout`` when the
    target did not take over within an election timeout (the core gives up
    and the leader carries on), as hashicorp raft's LeadershipTransferToServer.
    """

    target: str
    reply: Any


@dataclass(frozen=True, slots=True)
class RaftInfo:
    """Told to ``leadership_subscribers`` whenever it changes (leadership, term, leader, members),
    and as the answer to InfoQuery."""

    is_leader: bool
    term: int
    leader: str  # the leader's address ("" none known)
    voters: tuple[str, ...]  # the voters' addresses
    learners: tuple[str, ...]  # the non-voters' addresses
    leader_id: str = ""  # the leader's Raft ID
    self_id: str = ""  # this server's Raft ID
    servers: tuple[tuple[str, str, bool], ...] = ()  # (ID, address, voter) per member, by ID


@dataclass(frozen=True, slots=True)
class ShareCommit:
    """A leader's local actor wants its followers to learn the commit index now rather than with the
    next heartbeat (up to a tick later): a follower's scheduling worker about to plan on it (the
    eval broker).  Each caught-up follower is sent an empty append carrying it (RaftCore.share_commit)."""


@dataclass(frozen=True, slots=True)
class InfoQuery:
    """Ask for a RaftInfo, told back to local actor ``reply_to`` (actors must not ask)."""

    reply_to: str


@dataclass(frozen=True, slots=True)
class HealthQuery:
    """Ask for a RaftHealth, told back to local actor ``reply_to`` (autopilot's server health)."""

    reply_to: str


@dataclass(frozen=True, slots=True)
class RaftHealth:
    """This server's view for autopilot: on the leader, every member's replication and last contact.

    ``servers`` holds ``(id, voter, match_index, last_term, contact_age_s)``
    per member; the leader's own row has its last index and age 0; a member
    never heard from in this term has age -1.
    """

    is_leader: bool
    term: int
    leader: str
    last_index: int
    servers: tuple[tuple[str, bool, int, int, float], ...]
    addresses: tuple[tuple[str, str], ...] = ()  # (ID, address) per member


@dataclass(frozen=True, slots=True)
class Bootstrap:
    voters: tuple[str, ...]  # Raft IDs
    reply: Any
    addresses: tuple[str, ...] = ()  # one per voter ("": each ID is its address)


class _Flush:
    __slots__ = ()


FLUSH = _Flush()


class RaftError(Exception):
    """A request the cluster could not serve (no leader, leadership lost, timeout)."""


class RaftPeer(NodeActor):
    def __init__(self, env: Env, name: str, *, storage: RaftStorage, config: RaftConfig | None = None,
                 bootstrap: tuple[str, ...] = (), state: StateStore | None = None,
                 on_leadership: Any = None, leadership_subscribers: tuple[str, ...] = (),
                 snapshotter: Snapshotter | None = None, metrics: Any = None, server_id: str = "",
                 bootstrap_addresses: tuple[str, ...] = ()) -> None:
        super().__init__(env, name)
        # This server's Raft ID (Nomad's node ID, kept in the data dir); "": its address, as
        # simulations and Raft protocol 2 have it.  The configuration names servers by ID and
        # says where each is; this server finds itself in it by ID, wherever it now listens.
        self.server_id = server_id or env.node
        self._gossip_addrs: dict[str, str] = {}  # ServerAddresses: ID -> where gossip saw it
        # Raft knows this server by its address (a configuration written before IDs) until the
        # leader replaces that entry with one by its server ID (_take_own_id): that old name, or "".
        self._legacy_id = ""
        self.cfg = config or RaftConfig()
        # The agent's registry (actors.metrics.Metrics), under hashicorp
        # raft's and Nomad's metric names; None (simulations, benchmarks):
        # nothing is measured and no timer is set for it.
        self.metrics = metrics
        # A leader's proposal batches not yet committed: (last index, its term, when appended).
        self._dispatched: collections.deque[tuple[int, int, float]] = collections.deque()
        self._role_reported = ""
        self.core = RaftCore(self.server_id, env.rng, self.cfg.timings)
        self.storage = storage
        # Encodes the state for a snapshot (the agent's forks, so this actor
        # carries on meanwhile); one at a time: the index being encoded, or None.
        self.snapshotter: Snapshotter = snapshotter or InlineSnapshotter()
        self._snapshot_inflight: int | None = None
        self.state = state or StateStore()
        self.bootstrap_voters = bootstrap
        self.bootstrap_addresses = bootstrap_addresses
        self.on_leadership = on_leadership  # callable(is_leader, term) for the host agent, optional
        self.leadership_subscribers = leadership_subscribers  # local actors told RaftInfo on changes
        self._dirty = False
        self._flush_queued = False
        self._in_turn = False  # inside on_receive: the flush decision waits for the turn's end
        self._pending: dict[int, tuple[int, Any]] = {}  # index -> (term, reply) for local proposals
        # Writes received since the last flush: (data, local reply, (origin, actor, req id) if forwarded).
        # Appended as one batch when the flush starts (_append_proposals).
        self._proposals: list[tuple[bytes, Any, tuple[str, str, int] | None]] = []
        self._remote: dict[int, tuple[int, str, str, int]] = {}  # index -> (term, origin, actor, req id)
        # Request ids start at a random point per incarnation, so a restarted
        # follower's ids do not repeat its last life's (the leader dedups by them).
        self._next_req = env.rng.getrandbits(40)
        # (origin, req id) -> when to forget it: forwarded writes already taken.
        # The network may deliver a ForwardApply twice (a retransmit, or the
        # simulator's duplication); appending it twice would apply the command
        # twice -- a write could reappear after a later one.
        self._seen_forwards: set[tuple[str, int]] = set()
        self._seen_order: collections.deque[tuple[float, tuple[str, int]]] = collections.deque()
        self._forwarded: dict[int, tuple[str, Any, Any, float]] = {}  # req id -> (kind, reply, query, deadline)
        # Forwarded reads by req id -> the leader they went to.  One whose leader is no longer the
        # known one (it died: an election cleared or replaced it) is failed with READ_LEADER_LOST on
        # the next tick rather than waiting out forward_timeout_s: a read is safe to make again, and
        # the HTTP edge does (Nomad's canRetry: reads always; its RPC to a dead leader fails at
        # connect).  Writes are not: the old leader may have appended one that a new leader commits.
        self._read_leaders: dict[int, str] = {}
        # Forwarded requests by req id -> the server they went to, whose lost connection (the
        # runtime's PeerLost: its process died or restarted) fails them at once (_forwards_lost).
        self._forward_dest: dict[int, str] = {}
        self._watched_peers: set[str] = set()
        self._reads: dict[int, tuple[Any, Any, str, str, int]] = {}  # read req id -> (reply, query, origin..)
        self._waiting_apply: list[tuple[int, Any, Any]] = []  # (index, reply, query)
        # Parked blocking queries by id, with their deadlines in a heap (an
        # answered watch's entry stays until due) and indexes from what can
        # wake them: a keyed watch's key, or else each of its tables.
        self._watches: dict[int, Watch] = {}
        self._watch_ids = 0
        self._watch_deadlines: list[tuple[float, int]] = []
        self._watch_by_key: dict[Any, set[int]] = {}
        self._watch_by_table: dict[str, set[int]] = {}
        self._watch_seen = 0  # applied index at the last watch check
        self._watch_tables: dict[str, int] = {}  # the tables' indexes at the last watch check
        self._since_snapshot = 0
        self._since_snapshot_bytes = 0  # bytes of entry data applied since the last snapshot
        self.last_contact = 0.0
        self.peer_contact: dict[str, float] = {}  # leader: follower -> when its last ack of this term came
        # RaftInfo's fields as leadership_subscribers were last told them (None: not yet).
        self._pushed_key: tuple[bool, int, str, tuple[str, ...], tuple[str, ...]] | None = None
        self._info_key: tuple[Any, ...] | None = None  # what info() last built self._info from
        self._info: RaftInfo | None = None
        self._leave: Leave | None = None
        # Leadership transfers this leader started and has not seen through:
        # a local reply, or (origin, actor, req id) of a forwarded one.
        # Transfers waiting for their outcome: (reply, remote origin, target, answer by env time).
        self._transfers: list[tuple[Any, tuple[str, str, int] | None, str, float]] = []
        # Promotion of a new server (autopilot's server_stabilization_time and
        # max_trailing_logs): the replicated autopilot configuration's once one
        # is applied, these (the agent's) before.  The table index last looked at.
        self._agent_promotion = (self.cfg.timings.stabilization_ticks, self.cfg.timings.promote_max_trailing)
        self._autopilot_index = 0
        self._was_leader = False
        self._leave_asked_at = -1e18
        self.stats = {"proposals": 0, "flushes": 0, "entries_persisted": 0, "entries_applied": 0, "snapshots": 0}
        # on_receive's shortcut to receive()'s handlers; none for a subclass with a receive() of its own.
        self._fast_receive = _FAST_RECEIVE if type(self).receive is RaftPeer.receive else {}

    # ============================================================ lifecycle
    def on_start(self) -> None:
        term, vote, snap, entries = self.storage.load()
        self.core.restore(term, vote, snap, entries)
        if snap is not None:
            self.state.restore(snap[4], snap[0])
        self._find_self()
        if self.bootstrap_voters and self.core.last_index == 0 and term == 0:
            self.core.bootstrap(self.bootstrap_voters, self.bootstrap_addresses)
            self._mark_dirty()
        self._since_snapshot = self._since_snapshot_bytes = 0
        if self.core.voters == (self.core.id,):
            # The only voter is its own quorum: waiting out an election
            # timeout would only delay start-up (a -dev agent is healthy at once).
            self.core.campaign()
            self._mark_dirty()
        self.set_timer("tick", self.cfg.timings.tick_s)
        self._arm_snapshot_check()
        if self.metrics is not None:
            self.set_timer("raft_stats", 0.0)  # at once, then every stats_interval_s
            self.set_timer("contact_sample", self.cfg.contact_sample_s)

    def _find_self(self) -> None:
        """Which member of the stored configuration this server is: the one with its ID.

        A data dir written before servers had IDs names each by its address (hashicorp/raft's
        protocol 2): this server is then the member named by its address, and keeps that as its
        Raft ID (the address stays its ID there) -- as Raft protocol 2 -> 3 upgrades do.
        """
        core, me, addr = self.core, self.server_id, self.env.node
        members = core.voters + core.learners
        if not members or me in members:
            if members and core.address_of(me) != addr:
                log.info("%s: Raft server %s was at %s: once it leads, or its leader hears of it, the "
                         "configuration is updated", addr, me, core.address_of(me))
            return
        if addr in members and core.address_of(addr) == addr:
            log.info("%s: the Raft configuration predates server IDs: this server keeps its address "
                     "as its Raft ID until the leader re-adds it by its node ID %s", addr, me)
            core.id = self._legacy_id = addr
            return
        if len(members) == 1 and core.address_of(members[0]) == members[0]:
            # A one-server configuration from before IDs, naming an address this server no
            # longer has: none but this server wrote it (each server has its own data dir).
            log.info("%s: the Raft configuration predates server IDs and names this server by its "
                     "former address %s: it keeps that as its Raft ID", addr, members[0])
            core.id = self._legacy_id = members[0]
            return
        log.warning("%s: this server (Raft ID %s) is not in the stored Raft configuration (%s): it "
                    "cannot elect itself and waits for a leader to add it", addr, me,
                    ", ".join(f"{v} at {core.address_of(v)}" for v in members))

    def _take_own_id(self) -> None:
        """A server known by its address (see _find_self) takes its own ID once the configuration
        no longer names it by its address: the leader removed that entry to add it back by its ID,
        as Nomad's addRaftPeer replaces a member with the same address and another ID."""
        core, old, new = self.core, self._legacy_id, self.server_id
        members = core.voters + core.learners
        if core.role == LEADER or not members:
            return
        if new in members:
            if core.id == old:  # re-added by its ID before it saw its removal
                self._rename(old, new)
            if new in sum(core._committed_config(), ()):
                self._legacy_id = ""  # committed: no truncation brings the old name back
            return
        if core.id == old and old not in members:
            log.info("%s: the Raft configuration no longer names this server by its address: its Raft ID "
                     "is now %s", self.env.node, new)
            self._rename(old, new)
        elif core.id == new and old in members:
            # The removal of the old name was not committed and a new leader truncated it: the
            # configuration names this server by its address again, and so does it (else neither
            # name would be its own and its vote and acknowledgements would count for no member).
            log.info("%s: the Raft configuration names this server by its address %s again", self.env.node,
                     old)
            self._rename(new, old)

    def _rename(self, old: str, new: str) -> None:
        core = self.core
        core.id = new
        if core.vote == old:
            core.vote = new  # its own vote of this term, under its new name
        self._mark_dirty()

    def _route(self, server_id: str) -> str:
        """Where to send to Raft server *server_id*: its configuration address, else gossip's."""
        addr = self.core.addrs.get(server_id)
        if addr is None:
            addr = self._gossip_addrs.get(server_id, server_id)
        return addr

    def _unlisted_addr(self, server_id: str) -> str:
        """Where a server the configuration does not list is: gossip's address, else its ID when
        that may be an address (simulated servers, servers from before IDs); "" for a node ID no
        one can place -- a server that just left, whose answers are dropped without a warning."""
        addr = self._gossip_addrs.get(server_id)
        if addr:
            return addr
        return "" if _UUID.fullmatch(server_id) else server_id

    def _leader_addr(self) -> str:
        leader = self.core.leader
        return self._route(leader) if leader else ""

    def _fix_own_address(self) -> None:
        """A leader whose configuration entry names an old address of its own rewrites it
        (hashicorp/raft's leader does so for a known ID at a new address)."""
        core = self.core
        if (core.role == LEADER and core.addrs.get(core.id, self.env.node) != self.env.node
                and core.pending_conf_index <= core.commit and not core.transferee):
            log.info("%s: Raft server %s now at %s (was %s): updating the configuration", self.env.node,
                     core.id, self.env.node, core.addrs[core.id])
            core.change_config("address", core.id, self.env.node)
            self._mark_dirty()

    def _arm_snapshot_check(self) -> None:
        interval = self.cfg.snapshot_interval_s
        if interval > 0:
            self.set_timer("snapshot", interval * (1.0 + self.env.rng.random()))
        else:
            self.cancel_timer("snapshot")

    def on_timer(self, name: str) -> None:
        if name == "tick":
            core = self.core
            core.tick()
            if core.role == LEADER:
                self._fix_own_address()
            if self._forwarded or self._seen_order:
                self._expire_forwards()
            if self._watches:
                self._check_watches(expire=True)
            # A follower's tick that started no election changed nothing a flush
            # acts on (no Ready, role, term or leader): two of three servers'
            # ticks in a quiet cluster skip the flush.  Anything else flushes.
            if core.role == LEADER or core.has_ready() or self._proposals or self._transfers \
                    or self._legacy_id or self._leave is not None:
                self._mark_dirty()
            self.set_timer("tick", self.cfg.timings.tick_s)
        elif name == "snapshot":
            if self._since_snapshot >= self.cfg.snapshot_threshold:
                self._snapshot()
            self._arm_snapshot_check()
        elif name == "raft_stats":
            self._emit_stats()
            self.set_timer("raft_stats", self.cfg.stats_interval_s)
        elif name == "contact_sample":
            self._sample_contact()
            self.set_timer("contact_sample", self.cfg.contact_sample_s)

    # ============================================================ metrics
    def _emit_stats(self) -> None:
        """Nomad's EmitRaftStats: the last log index, the applied index, the state store's latest index."""
        m, state = self.metrics, self.state
        m.set_gauge(("raft", "lastIndex"), self.core.last_index)
        m.set_gauge(("raft", "appliedIndex"), state.applied_index)
        m.set_gauge(("state", "snapshotIndex"), max(state.table_index.values(), default=0))

    def _sample_contact(self) -> None:
        """raft.leader.lastContact: on a leader, ms since each voter's last answer of this term."""
        core = self.core
        if core.role != LEADER:
            return
        now, contact, me = self.env.now(), self.peer_contact, core.id
        for peer in core.voters:
            if peer != me and peer in contact:
                self.metrics.add_sample(("raft", "leader", "lastContact"), (now - contact[peer]) * 1e3)

    def _report_role(self, role: str) -> None:
        """raft.state.leader / .candidate / .follower: counted on entering the role (hashicorp's names)."""
        self._role_reported = role
        kind = "leader" if role == LEADER else "follower" if role == FOLLOWER else "candidate"
        self.metrics.incr_counter(("raft", "state", kind))
        if role != LEADER:
            self._dispatched.clear()  # what it proposed may never commit; not a commit time

    def on_stop(self) -> None:
        super().on_stop()
        if self._dirty:
            self._flush()
        self._fail_all("raft peer stopped")
        self.storage.close()

    # ============================================================ messages
    def receive(self, message: Any) -> Any:
        # The peer's own traffic (AppendEntries, AppendResp, ...) is most of
        # its mail: one dict lookup on the exact type finds its handler, where
        # the isinstance chain below costs a call per branch passed.  The
        # chain still serves everything else (subclasses, strings).
        handler = _FAST_RECEIVE.get(type(message))
        if handler is not None:
            return handler(self, message)
        return self._receive_other(message)

    def _step_raft(self, message: Any) -> None:
        core = self.core
        t = type(message)
        if (t is AppendEntries or t is InstallSnapshot) and message.term >= core.term:
            self.last_contact = self.env.now()
        elif t is AppendResp and message.term == core.term:
            self.peer_contact[message.follower] = self.env.now()
        core.step(message)
        self._mark_dirty()

    def _receive_other(self, message: Any) -> Any:
        if isinstance(message, RAFT_MESSAGES):
            if isinstance(message, (AppendEntries, InstallSnapshot)) and message.term >= self.core.term:
                self.last_contact = self.env.now()
            elif isinstance(message, AppendResp) and message.term == self.core.term:
                self.peer_contact[message.follower] = self.env.now()
            self.core.step(message)
            self._mark_dirty()
        elif message is FLUSH:
            self._flush_queued = False
            self._flush()
        elif isinstance(message, Propose):
            self._propose(message.data, message.reply)
        elif isinstance(message, Read):
            self._read(message)
        elif isinstance(message, Watch):
            self._watch(message)
        elif isinstance(message, ForwardApply):
            self._forwarded_apply(message)
        elif isinstance(message, ApplyResult):
            self._on_apply_result(message)
        elif isinstance(message, ForwardConfigChange):
            self._forwarded_change(message)
        elif isinstance(message, Leave):
            self._leave = message
            self._leave_step()
        elif isinstance(message, SnapshotEncoded):
            self._snapshot_encoded(message)
        elif isinstance(message, ConfigReloaded):
            srv = message.config.server
            self._reload(srv.raft_multiplier, srv.raft_snapshot_threshold, srv.raft_snapshot_interval_s,
                         srv.raft_trailing_logs)
        elif isinstance(message, ForwardRead):
            self._forwarded_read(message)
        elif isinstance(message, ReadIndexResult):
            self._read_index_answer(message)
        elif isinstance(message, ChangeMembership):
            self._change(message)
        elif isinstance(message, ServerAddresses):
            self._gossip_addrs = dict(message.addrs)
        elif isinstance(message, SnapshotRead):
            self._read(Read(query=self._snapshot_meta, reply=_SnapshotReadStart(self, message.reply),
                            stale=message.stale))
        elif isinstance(message, SnapshotReadEncoded):
            if message.data is None:
                self._answer(message.reply, None, f"snapshot failed: {message.error}")
            else:
                self._answer(message.reply, (message.meta[0], (*message.meta, message.data)), None)
        elif isinstance(message, Transfer):
            self._transfer(message)
        elif isinstance(message, ForwardTransfer):
            self._forwarded_transfer(message)
        elif isinstance(message, PeerLost):
            self._forwards_lost(message)
        elif isinstance(message, Bootstrap):
            if self.core.last_index or self.core.term:
                self._answer(message.reply, None, "already bootstrapped")
            else:
                self.core.bootstrap(message.voters, message.addresses)
                self._mark_dirty()
                self._answer(message.reply, True, None)
        elif isinstance(message, ShareCommit):
            if self.core.share_commit():
                self._mark_dirty()
        elif isinstance(message, InfoQuery):
            self.send(self.env.node, message.reply_to, self.info())
        elif isinstance(message, HealthQuery):
            self.send(self.env.node, message.reply_to, self.health())
        elif message == "status":
            return self.status()
        elif message == "configuration":
            return self.configuration()
        return None

    def _on_flush(self, message: Any) -> None:
        if message is FLUSH:
            self._flush_queued = False
            self._flush()

    def _on_propose(self, message: Propose) -> None:
        self._propose(message.data, message.reply)

    def _on_info_query(self, message: InfoQuery) -> None:
        self.send(self.env.node, message.reply_to, self.info())

    def _on_health_query(self, message: HealthQuery) -> None:
        self.send(self.env.node, message.reply_to, self.health())

    def _on_apply_result(self, message: ApplyResult) -> None:
        fwd = self._forwarded.get(message.req_id)
        if fwd is not None and fwd[0] == "transfer" and not message.ok and message.error == "not leader" \
                and message.leader and message.leader != self.env.node and fwd[2][1] == 0:
            # Sent to a server that had just lost leadership: once more, to the one it names.
            del self._forwarded[message.req_id]
            self._forward_transfer(fwd[1], fwd[2][0], message.leader, tries=1)
            return
        self._forward_answer(message.req_id, message.ok, message.index, message.error,
                             decode_result(message.result) if message.ok else None)

    def on_receive(self, message: Any) -> Any:
        """Handle one message, then flush now if nothing else is waiting in the inbox.

        Group commit folds into one flush every message already queued; when
        the inbox is empty there is nothing to fold, and queueing a ``_Flush``
        would only cost a mailbox turn (on a sequential write three of them:
        the leader's proposal, the follower's append, the leader's ack).
        With mail waiting, a ``_Flush`` goes behind it as before.
        """
        self._in_turn = True
        try:
            # receive()'s exact-type dispatch done here: a Propose or an append
            # (most of the mail) skips two calls; timers and the rest go the usual way.
            handler = self._fast_receive.get(type(message))
            result = handler(self, message) if handler is not None else super().on_receive(message)
        finally:
            self._in_turn = False
        if self._dirty and not self._flush_queued:
            if self.actor_inbox.empty():
                self._flush()
            else:
                self._flush_queued = True
                self.actor_ref.tell(FLUSH)
        return result

    def _mark_dirty(self) -> None:
        self._dirty = True
        if not self._flush_queued and not self._in_turn:
            # Outside a message turn (on_start): flush in a turn of its own.
            self._flush_queued = True
            self.actor_ref.tell(FLUSH)

    # ============================================================ ready handling
    def _flush(self) -> None:
        self._dirty = False
        core = self.core
        was_leader = self._was_leader
        if self._proposals:
            self._append_proposals()
        while True:
            r = core.take_ready_if_any()
            if r is None or (not r.messages and r.empty()):
                break
            self._handle_ready(r)
        self.stats["flushes"] += 1
        # Compared with the last flush, not the start of this one: elections
        # complete inside core.step(), before the flush that follows.
        self._was_leader = core.role == LEADER
        if was_leader != self._was_leader:
            self._leadership_changed(self._was_leader)
        if self._transfers:
            self._transfer_outcome()
        if self.state.table_index.get(ap_cfg.TABLE, 0) != self._autopilot_index:
            self._follow_autopilot()
        if self.metrics is not None and core.role != self._role_reported:
            self._report_role(core.role)
        if self._legacy_id:
            self._take_own_id()
        self._push_info()
        core.check_invariants()
        if self._watches and self.state.applied_index != self._watch_seen:
            self._check_watches(expire=False)
        if self._leave is not None:
            self._leave_step()

    def _handle_ready(self, r: Ready) -> None:
        core = self.core
        send, name, messages = self.send, self.name, r.messages
        # Messages name servers by Raft ID; each goes to its configuration address (gossip's
        # for a server not in it; the ID itself for one whose ID is its address).
        route, unlisted = core.addrs.get, self._unlisted_addr
        if messages and core.role == LEADER and r.hard_state is None:
            # Thesis §10.2.1: a leader may replicate while it writes its own
            # log (it counts itself only once persisted). Not when the term or
            # vote changed: those must be durable before anything says so.
            # One pass splits the appends, sent now, from the rest, sent after
            # the write (in their order, as before).
            late = []
            for to, m in messages:
                if type(m) is AppendEntries or isinstance(m, (AppendEntries, InstallSnapshot)):
                    addr = route(to) or unlisted(to)
                    if addr:
                        send(addr, name, m)
                else:
                    late.append((to, m))
            messages = late
        metrics = self.metrics
        if r.hard_state or r.snapshot or r.truncate_from is not None or r.entries:
            t0 = self.env.now() if metrics is not None else 0.0
            # idle: no other mail waits, so a small save may skip the store's disk thread.
            self.storage.save(hard_state=r.hard_state, snapshot=r.snapshot, truncate_from=r.truncate_from,
                              entries=r.entries,
                              idle=self.cfg.inline_idle_saves and self.actor_inbox.empty())
            self.stats["entries_persisted"] += len(r.entries)
            if metrics is not None and r.entries:
                # hashicorp: the leader's own log write, and a follower's in AppendEntries.
                key = _DISPATCH_LOG if core.role == LEADER else _STORE_LOGS
                metrics.add_sample(key, (self.env.now() - t0) * 1e3)
        for to, m in messages:
            addr = route(to) or unlisted(to)
            if addr:
                send(addr, name, m)
        core.persisted(core.log_base + len(core.entries))  # its last index
        if r.snapshot is not None:
            self.state.restore(r.snapshot[4], r.snapshot[0])
            self._since_snapshot = self._since_snapshot_bytes = 0
        if metrics is not None and r.committed:
            self._apply_measured(r.committed)
        elif r.committed:
            self._apply_all(r.committed)
        for req_id, index in r.reads:
            self._read_ready(req_id, index)
        for req_id in r.failed_reads:
            self._read_failed(req_id)
        if self._waiting_apply:
            self._release_waiting()
        cfg = self.cfg
        if self._since_snapshot_bytes >= cfg.snapshot_max_log_bytes or (
                cfg.snapshot_interval_s <= 0 and self._since_snapshot >= cfg.snapshot_threshold):
            self._snapshot()

    def _apply_measured(self, committed: Any) -> None:
        """Apply a batch as _handle_ready does, reporting raft.commitTime, fsm.applyBatch, commitNumLogs."""
        m, env = self.metrics, self.env
        t0 = env.now()
        self._apply_all(committed)
        now = env.now()
        m.add_sample(("raft", "fsm", "applyBatch"), (now - t0) * 1e3)
        m.set_gauge(("raft", "commitNumLogs"), len(committed))
        # A leader's proposals: from their append to their commit (hashicorp raft.commitTime), a
        # sample per batch appended, measured when its last entry has been applied.
        dispatched, last = self._dispatched, committed[-1].index
        while dispatched and dispatched[0][0] <= last:
            index, term, at = dispatched.popleft()
            # Only what committed as proposed: a batch of an earlier term may have been replaced.
            if self.core.term_at(index) == term:
                m.add_sample(("raft", "commitTime"), (now - at) * 1e3)

    def _apply_all(self, committed: list[Any]) -> None:
        """Apply a Ready's committed entries in order and answer their proposers (a local
        reply, or the follower a write was forwarded from).  Runs for every write on every
        server: lookups and counters are hoisted out of the loop."""
        state, stats, pending, remote = self.state, self.stats, self._pending, self._remote
        apply, answer = state.apply, self._answer
        applied = nbytes = done = 0
        try:
            for e in committed:
                index = e.index
                result: Any = None
                if e.kind == NORMAL:
                    result = apply(index, e.data)
                    applied += 1
                    if state.restore_index == index:
                        self._restored(index)
                elif index > state.applied_index:
                    state.applied_index = index
                done += 1
                nbytes += len(e.data)
                if pending:
                    waiting = pending.pop(index, None)
                    if waiting is not None:
                        if waiting[0] == e.term:
                            answer(waiting[1], (index, result), None)
                        else:
                            answer(waiting[1], None, "leadership lost while committing")
                if remote and index in remote:
                    self._answer_remote(e, result)
        finally:
            stats["entries_applied"] += applied
            self._since_snapshot += done
            self._since_snapshot_bytes += nbytes

    def _answer_remote(self, e: Any, result: Any) -> None:
        """Tell the follower that forwarded committed entry *e* its outcome."""
        term, origin, actor, req_id = self._remote.pop(e.index)
        ok = term == e.term
        self.send(origin, actor, ApplyResult(req_id=req_id, ok=ok, index=e.index,
                                             error="" if ok else "leadership lost while committing",
                                             result=encode_result(result) if ok else b""))

    def _snapshot(self) -> None:
        """Start encoding the state as of now; :meth:`_snapshot_encoded` compacts once it is done."""
        if self._snapshot_inflight is not None:
            return  # one at a time; what applies meanwhile goes into the next
        index = self.state.applied_index
        self._since_snapshot = self._since_snapshot_bytes = 0
        if index <= self.core.snap_index:
            return
        self._snapshot_inflight = index
        started = self.env.now()
        # Where the store can, the encoder also writes the snapshot to disk
        # (the agent's: a file, from the forked child), so compacting later
        # only records it.
        core, state = self.core, self.state
        meta = (index, core.term_at(index) or 0, *core.members_at(index))
        stage = getattr(self.storage, "stage_snapshot", None)

        def encode() -> bytes:
            data = state.snapshot()
            if stage is not None:
                stage((*meta, data))
            return data
        self.snapshotter.start(self.env, self.actor_ref, encode,
                               lambda data, error: SnapshotEncoded(index, data, error, started))

    def _snapshot_encoded(self, m: SnapshotEncoded) -> None:
        if m.index != self._snapshot_inflight:
            return  # a previous incarnation's
        self._snapshot_inflight = None
        if m.data is None:
            self.stats["snapshot_failures"] = self.stats.get("snapshot_failures", 0) + 1
            log.error("%s: snapshot at index %d failed: %s", self.env.node, m.index, m.error)
            # Retried at the next check.
            self._since_snapshot = max(self._since_snapshot, self.cfg.snapshot_threshold)
            return
        t1 = self.env.now()
        core, cfg, data, index = self.core, self.cfg, m.data, m.index
        # Entries applied since the encoding began stay in the log: compaction
        # drops only what the snapshot holds.  A snapshot installed from the
        # leader meanwhile is newer, and this one is dropped.
        core.compact(index, data, cfg.trailing_logs, cfg.trailing_max_bytes)
        if core.snap_index == index:
            # The store keeps the log's base entry too: its term is how a
            # restarted server matches the trailing entries to a leader's.
            keep_from = core.log_base if core.log_base < index else index + 1
            self.storage.compact((index, core.snap_term, *core.snap_members(), data), keep_from)
            self.stats["snapshots"] += 1
            t2 = self.env.now()
            if self.metrics is not None:
                self.metrics.add_sample(("raft", "snapshot", "create"), (t1 - m.started) * 1e3)
                self.metrics.add_sample(("raft", "compactLogs"), (t2 - t1) * 1e3)
            log.info("%s: snapshot at index %d: %d bytes, encoded %s in %.0f ms, stored in %.0f ms",
                     self.env.node, index, len(data), self.snapshotter.where, (t1 - m.started) * 1e3,
                     (t2 - t1) * 1e3)

    def _snapshot_meta(self, state: StateStore) -> tuple[int, int, tuple[str, ...], tuple[str, ...]]:
        c, index = self.core, state.applied_index
        return (index, c.term_at(index) or 0, tuple(member(v, c.address_of(v)) for v in c.voters),
                tuple(member(v, c.address_of(v)) for v in c.learners))

    def _restored(self, index: int) -> None:
        """An operator's snapshot restore was applied at *index*: the leader re-asserts its leadership.

        Nomad's ``reassertLeaderCh``: every leader-side actor revokes and
        re-establishes what it built from the old state (heartbeat timers,
        with the failover TTL, for the restored nodes; the broker's queue of
        pending evaluations; drains; periodic launches; GC), through the
        same LeadershipChanged they take on an election.  A follower has
        nothing to re-assert; a later leader builds from the restored state.
        """
        from actors.server import LeadershipChanged

        log.info("%s: snapshot restored at index %d", self.env.node, index)
        if self.core.role != LEADER:
            return
        term = self.core.term
        for actor in self.leadership_subscribers:
            self.send(self.env.node, actor, LeadershipChanged(False, term))
            self.send(self.env.node, actor, LeadershipChanged(True, term))

    def _leadership_changed(self, leader: bool) -> None:
        log.info("%s: %s (term %d)", self.env.node, "became leader" if leader else "lost leadership",
                 self.core.term)
        if not leader:
            # Outcome unknown: the entries may still commit under the next leader.
            for index in sorted(self._pending):
                self._answer(self._pending[index][1], None, "leadership lost while committing")
            self._pending.clear()
            for index in sorted(self._remote):
                _, origin, actor, req_id = self._remote[index]
                self.send(origin, actor, ApplyResult(req_id=req_id, ok=False, index=0,
                                                     error="leadership lost while committing"))
            self._remote.clear()
        if self.on_leadership is not None:
            self.on_leadership(leader, self.core.term)
        if leader:
            self.peer_contact.clear()  # contacts of an earlier term say nothing about this one

    def _push_info(self) -> None:
        """Tell the subscribers when leadership, term, the known leader or the members changed."""
        if not self.leadership_subscribers:
            return
        # Compared as a plain tuple of RaftInfo's fields: this runs on every
        # flush and almost never finds a change, so the RaftInfo is built
        # only when there is one to tell.
        c = self.core
        key = (c.role == LEADER, c.term, c.leader, c.voters, c.learners, c.addrs)
        if key == self._pushed_key:
            return
        self._pushed_key = key
        info = self.info()
        for actor in self.leadership_subscribers:
            self.send(self.env.node, actor, info)

    # ============================================================ writes
    def _propose(self, data: bytes, reply: Any) -> None:
        core = self.core
        self.stats["proposals"] += 1
        if core.role == LEADER:
            self._proposals.append((data, reply, None))
            self._mark_dirty()
            return
        if not core.leader:
            self._answer(reply, None, NO_LEADER)
            return
        req_id = self._new_forward("apply", reply, None)
        self._send_forward(self._route(core.leader), req_id, ForwardApply(
            req_id=req_id, origin=self.env.node, origin_actor=self.name, data=data))

    def _forwarded_apply(self, m: ForwardApply) -> None:
        key = (m.origin, m.req_id)
        if key in self._seen_forwards:
            self.stats["duplicate_forwards"] = self.stats.get("duplicate_forwards", 0) + 1
            return  # a duplicate of a write already taken: its answer goes (or went) to the original
        if self.core.role != LEADER:
            self.send(m.origin, m.origin_actor, ApplyResult(req_id=m.req_id, ok=False, index=0,
                                                            error="not leader", leader=self._leader_addr()))
            return
        self._seen_forwards.add(key)
        self._seen_order.append((self.env.now() + 2 * self.cfg.forward_timeout_s, key))
        self._proposals.append((m.data, None, (m.origin, m.origin_actor, m.req_id)))
        self._mark_dirty()

    def _append_proposals(self) -> None:
        """Append every write received since the last flush as one batch.

        One ``propose_batch`` gives each follower one AppendEntries carrying
        the whole batch, where a ``propose`` per write sent one per write (up
        to ``max_inflight``) and had each acknowledged separately: under load
        that was most of the leader's and the followers' CPU per write.
        """
        batch, self._proposals = self._proposals, []
        core = self.core
        res = core.propose_batch([data for data, _, _ in batch])
        if isinstance(res, str):
            # Stepped down (or a transfer began) since these arrived: nothing was appended.
            error = res if core.role == LEADER else "leadership lost while committing"
            for _, reply, remote in batch:
                if remote is None:
                    self._answer(reply, None, error)
                else:
                    self.send(remote[0], remote[1], ApplyResult(req_id=remote[2], ok=False, index=0,
                                                                error=error, leader=self._leader_addr()))
            return
        first, term = res
        for i, (_, reply, remote) in enumerate(batch):
            if remote is None:
                self._pending[first + i] = (term, reply)
            else:
                self._remote[first + i] = (term, *remote)
        if self.metrics is not None:
            self.metrics.incr_counter(("raft", "apply"), len(batch))
            self._dispatched.append((first + len(batch) - 1, term, self.env.now()))

    def _change(self, m: ChangeMembership) -> None:
        if self.core.role != LEADER:
            if m.op == "remove" and self.core.leader:
                # An operator's remove-peer asked of a follower: the leader makes it, as Nomad
                # forwards the Operator.RaftRemovePeerByID RPC to the leader.
                req_id = self._new_forward("change", m.reply, None)
                self._send_forward(self._leader_addr(), req_id, ForwardConfigChange(
                    req_id=req_id, origin=self.env.node, origin_actor=self.name, op="remove", node=m.node))
                return
            self._answer(m.reply, None, "not leader" if self.core.leader else NO_LEADER)
            return
        res = self.core.change_config(m.op, m.node, m.address)
        if isinstance(res, str):
            self._answer(m.reply, None, res)
            return
        self._pending[res[0]] = (res[1], m.reply)
        self._mark_dirty()

    def _forwarded_change(self, m: ForwardConfigChange) -> None:
        res = self.core.change_config(m.op, m.node) if self.core.role == LEADER else "not leader"
        if isinstance(res, str):
            self.send(m.origin, m.origin_actor, ApplyResult(req_id=m.req_id, ok=False, index=0, error=res,
                                                            leader=self._leader_addr()))
            return
        self._remote[res[0]] = (res[1], m.origin, m.origin_actor, m.req_id)
        self._mark_dirty()

    def _follow_autopilot(self) -> None:
        """Promote new servers as the replicated autopilot configuration says (the agent's before one)."""
        self._autopilot_index = self.state.table_index.get(ap_cfg.TABLE, 0)
        rec = ap_cfg.current(self.state.tables)
        if rec is None:
            ticks, trailing = self._agent_promotion
        else:
            stabilization_s = rec["ServerStabilizationTime"] / 1e9
            ticks = max(0, math.ceil(stabilization_s / self.core.t.tick_s - 1e-9))
            trailing = rec["MaxTrailingLogs"]
        if (ticks, trailing) != (self.core.t.stabilization_ticks, self.core.t.promote_max_trailing):
            log.info("%s: a new server becomes a voter once within %d entries of the leader for %gs",
                     self.env.node, trailing, ticks * self.core.t.tick_s)
            self.core.set_promotion(ticks, trailing)

    # ============================================================ leadership transfer
    def _transfer(self, m: Transfer) -> None:
        core = self.core
        if core.role == LEADER:
            self._start_transfer(m.target, m.reply, None)
            return
        if not core.leader:
            self._answer(m.reply, None, NO_LEADER)
            return
        self._forward_transfer(m.reply, m.target, self._leader_addr(), tries=0)

    def _forward_transfer(self, reply: Any, target: str, leader: str, tries: int) -> None:
        # The leader answers once the transfer ended, an election timeout or two: wait that long.
        req_id = self._new_forward("transfer", reply, (target, tries),
                                   wait_s=self.core.t.election_ticks * self.core.t.tick_s * 3)
        self.send(leader, self.name, ForwardTransfer(req_id=req_id, origin=self.env.node,
                                                     origin_actor=self.name, target=target))

    def _forwarded_transfer(self, m: ForwardTransfer) -> None:
        key = (m.origin, m.req_id)
        if key in self._seen_forwards:
            # A duplicate of a request taken: answering it ("in progress") would reach the
            # origin before the real outcome.
            self.stats["duplicate_forwards"] = self.stats.get("duplicate_forwards", 0) + 1
            return
        self._seen_forwards.add(key)
        self._seen_order.append((self.env.now() + 2 * self.cfg.forward_timeout_s, key))
        if self.core.role != LEADER:
            self.send(m.origin, m.origin_actor, ApplyResult(req_id=m.req_id, ok=False, index=0,
                                                            error="not leader", leader=self._leader_addr()))
            return
        self._start_transfer(m.target, None, (m.origin, m.origin_actor, m.req_id))

    def _start_transfer(self, target: str, reply: Any, remote: tuple[str, str, int] | None) -> None:
        core = self.core
        if target == core.id:
            self._transfer_answer(reply, remote, "")  # it leads already (an earlier transfer went through)
            return
        if core.transferee:
            # One at a time (hashicorp raft's ErrLeadershipTransferInProgress): a second would
            # take over the first's target and restart its timeout, writes refused all along.
            self._transfer_answer(reply, remote, "leadership transfer in progress")
            return
        err = core.transfer_leadership(target)
        if err:
            self._transfer_answer(reply, remote, err)
            return
        log.info("%s: transferring leadership to %s", self.env.node, target)
        # The answer waits for the new leader to be known here, an election timeout at most.
        wait_s = core.t.election_ticks * core.t.tick_s * 2
        self._transfers.append((reply, remote, target, self.env.now() + wait_s))
        self._mark_dirty()

    def _transfer_outcome(self) -> None:
        """After a flush: a transfer ends once this server no longer leads and knows who does (the
        target: done; another: said so), or fails when the core gave up leading over to it."""
        core = self.core
        if core.role == LEADER and core.transferee:
            return
        now = self.env.now()
        keep = []
        for reply, remote, target, until in self._transfers:
            if core.role == LEADER:
                error = "leadership transfer timeout"
            elif core.leader == target:
                error = ""
            elif core.leader:
                error = f"leadership went to {core.leader}, not {target}"
            elif now < until:
                keep.append((reply, remote, target, until))  # stepped down; the new leader not heard of yet
                continue
            else:
                error = "leadership transfer: no leader known yet"
            self._transfer_answer(reply, remote, error)
        self._transfers = keep

    def _transfer_answer(self, reply: Any, remote: tuple[str, str, int] | None, error: str) -> None:
        if remote is None:
            self._answer(reply, None, error or None)
        else:
            self.send(remote[0], remote[1], ApplyResult(req_id=remote[2], ok=not error, index=0, error=error,
                                                        leader=self._leader_addr()))

    def _reload(self, raft_multiplier: int, snapshot_threshold: int, snapshot_interval_s: float,
                trailing_logs: int | None = None) -> None:
        """SIGHUP: ``server.raft_multiplier`` rescales the election timeout at once;
        ``raft_snapshot_threshold`` and ``raft_snapshot_interval`` apply from the next check,
        ``raft_trailing_logs`` from the next snapshot."""
        timings = replace(raft_config(raft_multiplier).timings,
                          stabilization_ticks=self.core.t.stabilization_ticks,
                          promote_max_trailing=self.core.t.promote_max_trailing)
        if timings != self.core.t:
            log.info("%s: raft_multiplier %d: election timeout now %.1fs", self.env.node, raft_multiplier,
                     timings.election_ticks * timings.tick_s)
            self.cfg = replace(self.cfg, timings=timings)
            self.core.set_timings(timings)
        if (snapshot_threshold, snapshot_interval_s) != (self.cfg.snapshot_threshold, self.cfg.snapshot_interval_s):
            log.info("%s: snapshots now after %d entries, checked every %gs", self.env.node, snapshot_threshold,
                     snapshot_interval_s)
            interval_changed = snapshot_interval_s != self.cfg.snapshot_interval_s
            self.cfg = replace(self.cfg, snapshot_threshold=snapshot_threshold,
                               snapshot_interval_s=snapshot_interval_s)
            if interval_changed:
                self._arm_snapshot_check()
        if trailing_logs is not None and trailing_logs != self.cfg.trailing_logs:
            log.info("%s: snapshots now keep %d trailing log entries", self.env.node, trailing_logs)
            self.cfg = replace(self.cfg, trailing_logs=trailing_logs)

    # ============================================================ graceful leave
    def _leave_step(self) -> None:
        """Leave the Raft peer set: hand leadership over first, then ask for removal.

        Nomad's server leave: a leader transfers leadership, then the server
        is removed from the configuration by the leader.  Done when our own
        configuration no longer holds us, or when we are the only voter
        (there is no one to hand the data to).
        """
        core = self.core
        me = core.id
        if me not in core.voters + core.learners or core.voters == (me,):
            self._leave_done()
            return
        if core.role == LEADER:
            if not core.transferee:
                others = [v for v in core.voters if v != me and v in core.progress]
                if others:
                    target = max(others, key=lambda v: (core.progress[v].match, v))
                    core.transfer_leadership(target)
                    self._mark_dirty()
            return
        now = self.env.now()
        if core.leader and now - self._leave_asked_at >= self.cfg.leave_retry_s:
            self._leave_asked_at = now
            req_id = self._new_forward("leave", None, None)
            self.send(self._leader_addr(), self.name, ForwardConfigChange(
                req_id=req_id, origin=self.env.node, origin_actor=self.name, op="remove", node=me))

    def _leave_done(self) -> None:
        leave, self._leave = self._leave, None
        if leave is not None:
            log.info("%s: left the Raft peer set", self.env.node)
            self.send(self.env.node, leave.reply_to, LeaveDone(actor=self.name, corr=leave.corr))

    # ============================================================ reads
    def _read(self, m: Read) -> None:
        if m.stale:
            self._answer_query(m.reply, m.query)
            return
        self._next_req += 1
        req_id = self._next_req
        if self.core.role == LEADER:
            self._reads[req_id] = (m.reply, m.query, "", "", 0)
            err = self.core.read_index(req_id)
            if err:
                self._reads.pop(req_id)
                self._answer(m.reply, None, err)
            self._mark_dirty()
            return
        if not self.core.leader:
            self._answer(m.reply, None, NO_LEADER)
            return
        fid = self._new_forward("read", m.reply, m.query)
        self._read_leaders[fid] = self.core.leader
        self._send_forward(self._leader_addr(), fid, ForwardRead(req_id=fid, origin=self.env.node,
                                                                 origin_actor=self.name))

    def _forwarded_read(self, m: ForwardRead) -> None:
        if self.core.role != LEADER:
            self.send(m.origin, m.origin_actor, ReadIndexResult(
                req_id=m.req_id, ok=False, index=0, error="not leader", leader=self._leader_addr()))
            return
        self._next_req += 1
        self._reads[self._next_req] = (None, None, m.origin, m.origin_actor, m.req_id)
        self.core.read_index(self._next_req)
        self._mark_dirty()

    def _read_ready(self, req_id: int, index: int) -> None:
        entry = self._reads.pop(req_id, None)
        if entry is None:
            return
        reply, query, origin, actor, fid = entry
        if origin:
            self.send(origin, actor, ReadIndexResult(req_id=fid, ok=True, index=index))
        else:
            self._waiting_apply.append((index, reply, query))

    def _read_failed(self, req_id: int) -> None:
        entry = self._reads.pop(req_id, None)
        if entry is None:
            return
        reply, _, origin, actor, fid = entry
        if origin:
            self.send(origin, actor, ReadIndexResult(req_id=fid, ok=False, index=0,
                                                     error="leadership lost"))
        else:
            self._answer(reply, None, "leadership lost")

    def _read_index_answer(self, m: ReadIndexResult) -> None:
        fwd = self._forwarded.pop(m.req_id, None)
        self._read_leaders.pop(m.req_id, None)
        if fwd is None:
            return
        _, reply, query, _ = fwd
        if not m.ok:
            self._answer(reply, None, m.error or NO_LEADER)
            return
        self._waiting_apply.append((m.index, reply, query))
        self._release_waiting()

    def _release_waiting(self) -> None:
        if not self._waiting_apply:
            return
        applied = self.state.applied_index
        keep = []
        for index, reply, query in self._waiting_apply:
            if index <= applied:
                self._answer_query(reply, query)
            else:
                keep.append((index, reply, query))
        self._waiting_apply = keep

    def _answer_query(self, reply: Any, query: Any) -> None:
        """Answer ``(applied index, query(state))``; a query that raises is the caller's error, not Raft's."""
        try:
            value = query(self.state)
        except Exception as exc:  # noqa: BLE001 -- a caller's query bug (a plan, say) must not stop Raft
            log.error("%s: a read query failed: %r", self.env.node, exc)
            self._answer(reply, None, f"query failed: {exc!r}")
            return
        self._answer(reply, (self.state.applied_index, value), None)

    # ============================================================ forwarding
    def _new_forward(self, kind: str, reply: Any, query: Any, wait_s: float = 0.0) -> int:
        self._next_req += 1
        self._forwarded[self._next_req] = (kind, reply, query,
                                           self.env.now() + max(wait_s, self.cfg.forward_timeout_s))
        return self._next_req

    def _send_forward(self, dest: str, req_id: int, msg: Any) -> None:
        self._forward_dest[req_id] = dest
        if dest not in self._watched_peers:
            self._watched_peers.add(dest)
            self.env.watch_peer(dest, self.name)
        self.send(dest, self.name, msg)

    def _forwards_lost(self, m: PeerLost) -> None:
        """The connection to *m.node* ended: requests forwarded there get no answer, so fail them now.

        A read is failed as READ_LEADER_LOST, which its caller makes again
        (Nomad's canRetry: reads always).  A write or a membership change
        that cannot have reached the old leader (``unsent``: its connect was
        refused) fails as NO_LEADER, which its caller may make again (the
        HTTP edge holds it for the next leader); otherwise it fails with the
        lost connection named: it may have reached the old leader and be
        committed by the next, so nobody may make it again blindly (Nomad's
        RPC answers a write so too, with an EOF).
        """
        lost = [r for r, dest in self._forward_dest.items() if dest == m.node]
        for req_id in lost:
            del self._forward_dest[req_id]
            fwd = self._forwarded.get(req_id)
            if fwd is None or fwd[0] not in ("read", "apply", "change"):
                continue  # answered already; a transfer or our own leave retry on their own
            del self._forwarded[req_id]
            if fwd[0] == "read":
                self._read_leaders.pop(req_id, None)
                self.stats["reads_leader_lost"] = self.stats.get("reads_leader_lost", 0) + 1
                self._answer(fwd[1], None, READ_LEADER_LOST)
            elif m.unsent:
                self.stats["forwards_unsent"] = self.stats.get("forwards_unsent", 0) + 1
                self._answer(fwd[1], None, NO_LEADER)
            else:
                self.stats["forwards_lost"] = self.stats.get("forwards_lost", 0) + 1
                self._answer(fwd[1], None, f"connection to the leader lost: {m.reason}")

    def _forward_answer(self, req_id: int, ok: bool, index: int, error: str, result: Any) -> None:
        fwd = self._forwarded.pop(req_id, None)
        if fwd is None:
            return
        if fwd[0] == "leave":
            # Our removal committed.  The leader sends a removed server
            # nothing more, so this answer is how we learn it.
            if ok and self._leave is not None:
                self._leave_done()
            return
        self._answer(fwd[1], (index, result) if ok else None, None if ok else error)

    def _expire_forwards(self) -> None:
        if not self._forwarded and not self._seen_order:
            return  # nothing to expire: every tick of an idle server
        now = self.env.now()
        # The origin gives up after forward_timeout_s; twice that, no copy is still in flight.
        order = self._seen_order
        while order and order[0][0] <= now:
            self._seen_forwards.discard(order.popleft()[1])
        if not self._forwarded:
            self._read_leaders.clear()
            self._forward_dest.clear()
            return  # (every tick of a server with nothing forwarded)
        if len(self._forward_dest) > 2 * len(self._forwarded) + 64:  # mostly answered ones
            self._forward_dest = {r: d for r, d in self._forward_dest.items() if r in self._forwarded}
        for req_id in [r for r, f in self._forwarded.items() if f[3] <= now]:
            self._answer(self._forwarded.pop(req_id)[1], None, "timed out waiting for the leader")
        for req_id, leader in list(self._read_leaders.items()):
            if req_id not in self._forwarded:
                del self._read_leaders[req_id]  # answered, or timed out above
            elif leader != self.core.leader:
                del self._read_leaders[req_id]
                self.stats["reads_leader_lost"] = self.stats.get("reads_leader_lost", 0) + 1
                self._answer(self._forwarded.pop(req_id)[1], None, READ_LEADER_LOST)

    # ============================================================ blocking queries
    def _watch_index(self, w: Watch) -> int:
        if w.index_fn is not None:
            return w.index_fn(self.state)
        return max((self.state.table_index.get(t, 0) for t in w.tables), default=0)

    def _watch(self, w: Watch) -> None:
        if self._watch_index(w) > w.min_index or w.timeout_s <= 0 or len(self._watches) >= self.cfg.max_watches:
            self._watch_answer(w)
            return
        if not self._watches:
            self.state.take_changed_keys()  # what moved while nobody watched wakes no one
        self._watch_ids += 1
        wid = self._watch_ids
        self._watches[wid] = w
        heap = self._watch_deadlines
        if len(heap) > 2 * len(self._watches) + 64:  # mostly answered ones: rebuild
            live = self._watches
            heap[:] = [(d, i) for d, i in heap if i in live]
            heapq.heapify(heap)
        heapq.heappush(heap, (self.env.now() + w.timeout_s, wid))
        if w.key is not None and w.index_fn is not None:
            self._watch_by_key.setdefault(w.key, set()).add(wid)
        else:
            for t in w.tables:
                self._watch_by_table.setdefault(t, set()).add(wid)

    def _unwatch(self, wid: int) -> Watch:
        w = self._watches.pop(wid)
        if w.key is not None and w.index_fn is not None:
            ids = self._watch_by_key[w.key]
            ids.discard(wid)
            if not ids:
                del self._watch_by_key[w.key]
        else:
            for t in w.tables:
                ids = self._watch_by_table[t]
                ids.discard(wid)
                if not ids:
                    del self._watch_by_table[t]
        return w

    def _watch_answer(self, w: Watch) -> None:
        if w.max_stale_s is not None and self.core.role != LEADER and (
                not self.core.leader or self.env.now() - self.last_contact > w.max_stale_s):
            self._answer(w.reply, None, f"stale: no contact with a leader for over {w.max_stale_s:g}s")
            return
        try:
            value = (self._watch_index(w), w.query(self.state) if w.query is not None else None)
        except Exception as exc:  # noqa: BLE001 -- a caller's query bug must not stop Raft
            self._answer(w.reply, None, f"query failed: {exc!r}")
            return
        self._answer(w.reply, value, None)

    def _check_watches(self, *, expire: bool) -> None:
        """Answer the watches whose index moved past theirs, and (with *expire*) those due.

        Only watches that something moved can fire: a keyed watch whose key
        moved, or another whose table did.  So a change costs the watches it
        concerns, not every parked query (thousands of clients' on a server).
        """
        state = self.state
        self._watch_seen = state.applied_index
        now = self.env.now()
        seen, current = self._watch_tables, state.table_index
        changed = () if current == seen else [t for t, i in current.items() if i != seen.get(t)]
        if changed or len(seen) != len(current):
            self._watch_tables = dict(current)
        keys, everything = state.take_changed_keys()
        woken: set[int] = set()
        for t in changed:
            woken.update(self._watch_by_table.get(t, ()))
        if everything:
            for ids in self._watch_by_key.values():
                woken.update(ids)
        else:
            for k in keys:
                woken.update(self._watch_by_key.get(k, ()))
        for wid in sorted(woken):
            w = self._watches[wid]
            if self._watch_index(w) > w.min_index:
                self._watch_answer(self._unwatch(wid))
        heap = self._watch_deadlines
        if expire:
            while heap and heap[0][0] <= now:
                wid = heapq.heappop(heap)[1]
                if wid in self._watches:
                    self._watch_answer(self._unwatch(wid))

    def _fail_all(self, why: str) -> None:
        for _, reply, _ in self._proposals:
            self._answer(reply, None, why)
        self._proposals.clear()
        for wid in sorted(self._watches):
            self._answer(self._watches[wid].reply, None, why)
        self._watches.clear()
        self._watch_deadlines.clear()
        self._watch_by_key.clear()
        self._watch_by_table.clear()
        for _, reply in self._pending.values():
            self._answer(reply, None, why)
        for f in self._forwarded.values():
            self._answer(f[1], None, why)
        for _, reply, _ in self._waiting_apply:
            self._answer(reply, None, why)
        for reply, *_ in self._transfers:
            self._answer(reply, None, why)
        self._transfers.clear()
        self._pending.clear()
        self._forwarded.clear()
        self._read_leaders.clear()
        self._waiting_apply.clear()

    @staticmethod
    def _answer(reply: Any, value: Any, error: str | None) -> None:
        if reply is None:
            return
        try:
            if error:
                reply.set_exception((RaftError, RaftError(error), None))
            else:
                reply.set(value)
        except Exception:  # noqa: BLE001 - a reply already set (e.g. timed out) is not our failure
            pass

    # ============================================================ status
    def status(self) -> dict[str, Any]:
        st = self.core.status()
        # The API's view (/v1/status/leader and /peers): addresses, as Nomad's; IDs beside them.
        route = self._route
        st.update(leader_id=st["leader"], leader=self._leader_addr(), voter_ids=st["voters"],
                  voters=[route(v) for v in st["voters"]], learners=[route(v) for v in st["learners"]])
        st.update(applied=self.state.applied_index, last_contact=self.last_contact, **self.stats)
        c = self.core  # read-only extras for /v1/agent/self's raft stats (hashicorp/raft Stats())
        st.update(last_term=c.term_at(c.last_index) or 0, snap_term=c.snap_term,
                  config_index=c.pending_conf_index)
        return st

    def health(self) -> RaftHealth:
        c, now = self.core, self.env.now()
        rows = []
        for n in sorted(c.voters + c.learners):
            if n == c.id:
                rows.append((n, n in c.voters, c.last_index, c.term_at(c.last_index) or 0, 0.0))
                continue
            pr = c.progress.get(n) if c.role == LEADER else None
            match = pr.match if pr is not None else 0
            seen = self.peer_contact.get(n)
            age = -1.0 if seen is None else now - seen
            rows.append((n, n in c.voters, match, c.term_at(match) or 0, age))
        return RaftHealth(is_leader=c.role == LEADER, term=c.term, leader=c.leader, last_index=c.last_index,
                          servers=tuple(rows),
                          addresses=tuple((n, self._route(n)) for n in sorted(c.voters + c.learners)))

    def info(self) -> RaftInfo:
        c = self.core
        # Asked for on every poll and rarely changed: the last one is answered again while what it
        # is made of is the same (the address maps are replaced on a change, never edited).
        key = (c.role == LEADER, c.term, c.leader, c.id, c.voters, c.learners, c.addrs, self._gossip_addrs)
        if key == self._info_key:
            return self._info
        self._info_key, self._info = key, self._build_info()
        return self._info

    def _build_info(self) -> RaftInfo:
        c, route = self.core, self._route
        return RaftInfo(is_leader=c.role == LEADER, term=c.term, leader=self._leader_addr(),
                        voters=tuple(route(v) for v in c.voters),
                        learners=tuple(route(v) for v in c.learners),
                        leader_id=c.leader, self_id=c.id,
                        servers=tuple((n, route(n), n in c.voters) for n in sorted(c.voters + c.learners)))

    def configuration(self) -> list[dict[str, Any]]:
        """The Raft configuration as Nomad's operator API shows it: each server's ID and address."""
        c = self.core
        return [{"ID": n, "Address": self._route(n), "Leader": n == c.leader, "Voter": n in c.voters}
                for n in sorted(c.voters + c.learners)]


# receive()'s exact-type dispatch: the same handler the isinstance chain in
# _receive_other would reach for a message of exactly this type.  These are
# RaftPeer's own functions: a subclass overriding one must list it here too.
_FAST_RECEIVE: dict[type, Any] = {
    **{t: RaftPeer._step_raft for t in RAFT_MESSAGES},
    _Flush: RaftPeer._on_flush,
    Propose: RaftPeer._on_propose,
    Read: RaftPeer._read,
    Watch: RaftPeer._watch,
    ForwardApply: RaftPeer._forwarded_apply,
    ApplyResult: RaftPeer._on_apply_result,
    ForwardConfigChange: RaftPeer._forwarded_change,
    ForwardRead: RaftPeer._forwarded_read,
    ReadIndexResult: RaftPeer._read_index_answer,
    InfoQuery: RaftPeer._on_info_query,
    HealthQuery: RaftPeer._on_health_query,
}


__all__ = ["CONFIG", "NO_LEADER", "Bootstrap", "ChangeMembership", "HealthQuery", "InfoQuery", "Propose",
           "RaftConfig", "RaftError", "RaftHealth", "RaftInfo", "RaftPeer", "Read", "ServerAddresses",
           "SnapshotRead", "Transfer", "Watch", "raft_config"]
