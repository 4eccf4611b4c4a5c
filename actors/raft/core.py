"""The Raft core: a pure state machine, message in, effects out.

In the manner of etcd-io/raft: :class:`RaftCore` never touches a clock, a
socket or a disk.  Its inputs are :meth:`tick` (one logical tick of
``tick_s`` seconds, driven by the host's timer), :meth:`step` (a message from
a peer), :meth:`propose`, :meth:`read_index`, :meth:`transfer_leadership`,
:meth:`persisted` (the host made the log durable up to an index) and
:meth:`compact` (the host snapshotted its state machine).  Its output is a
:class:`Ready`, taken with :meth:`take_ready`, which the host must handle
**in this order**:

1. persist ``hard_state`` (term, vote), then ``snapshot``, then
   ``truncate_from`` and ``entries`` -- and sync them to disk;
2. send ``messages`` (never before step 1: a vote or an append
   acknowledgement promises the state is durable);
3. call :meth:`persisted` with the last index now durable;
4. apply ``snapshot`` (if any) and then ``committed`` entries to the state
   machine, in order; answer ``reads`` once applied reaches their index.

Section numbers refer to the Raft paper (Ongaro & Ousterhout, 2014) and the
thesis (Ongaro, 2014).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from random import Random
from typing import Any

from actors.raft.messages import (
    CONFIG,
    NOOP,
    NORMAL,
    AppendEntries,
    AppendResp,
    ConfigChange,
    Entry,
    InstallSnapshot,
    InstallSnapshotResp,
    RequestVote,
    RequestVoteResp,
    ServerConfigChange,
    ServerConfiguration,
    TimeoutNow,
)
from runtime import wire

_new_entry = wire.builder(Entry)  # a leader builds one per proposed write
# Built on every heartbeat and its answer (the idle cluster's whole traffic): the builders skip the
# frozen classes' per-field __setattr__ calls.
_new_append = wire.builder(AppendEntries)
_new_append_resp = wire.builder(AppendResp)

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = "follower", "pre-candidate", "candidate", "leader"
PROBE, REPLICATE, SNAPSHOT = "probe", "replicate", "snapshot"


Addrs = tuple[tuple[str, str], ...]  # (server ID, its address) per member, sorted by ID

# A snapshot's (and InstallSnapshot's) member list names each server as "ID@address", or by its
# ID alone when that is also its address: a server written before servers had IDs of their own
# (Raft protocol 2's ID was the address).  So snapshots taken before IDs load as they were.
MEMBER_SEP = "@"


def member(server_id: str, address: str) -> str:
    """One snapshot member entry: ``ID@address``, or ``ID`` when the address is the ID.

    Split at the last '@' (``parse_member``): an ID may hold one, an address (host:port, IPv6
    ``[::1]:4647``) never does, so one that does is refused rather than stored ambiguously."""
    if not address or address == server_id:
        if MEMBER_SEP in server_id:
            raise ValueError(f"server address {server_id!r} must not contain {MEMBER_SEP!r}")
        return server_id
    if MEMBER_SEP in address:
        raise ValueError(f"server address {address!r} must not contain {MEMBER_SEP!r}")
    return f"{server_id}{MEMBER_SEP}{address}"


def parse_member(entry: str) -> tuple[str, str]:
    """(ID, address) of a snapshot member entry; an old address-only one is its own ID."""
    sid, sep, addr = entry.rpartition(MEMBER_SEP)
    return (sid, addr) if sep and addr else (entry, entry)


def parse_members(entries: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    ids, addrs = [], {}
    for e in entries:
        sid, addr = parse_member(e)
        ids.append(sid)
        addrs[sid] = addr
    return tuple(ids), addrs


def _members(voters: tuple[str, ...], learners: tuple[str, ...], addrs: Addrs) -> tuple[tuple[str, ...],
                                                                                     tuple[str, ...]]:
    a = dict(addrs)
    return tuple(member(v, a.get(v, v)) for v in voters), tuple(member(v, a.get(v, v)) for v in learners)


def _bootstrap_data(pairs: list[tuple[str, str]]) -> bytes:
    """A bootstrap entry's data: these (ID, address) voters, sorted by ID, and no non-voter."""
    if all(v == a for v, a in pairs):
        # Every ID is its address (simulations): the entry as before IDs, byte for byte.
        return wire.encode(ConfigChange(op="bootstrap", node="", voters=tuple(v for v, _ in pairs)))
    return wire.encode(ServerConfigChange(op="bootstrap", node="", voters=tuple(v for v, _ in pairs),
                                          addresses=tuple(a for _, a in pairs)))


class RaftInvariantError(AssertionError):
    """The core broke one of Raft's guarantees: a bug here, never a peer's fault."""


@dataclass(frozen=True, slots=True)
class RaftTimings:
    """Raft's timing and flow-control knobs, in ticks and counts.

    Nomad runs hashicorp/raft with a 1 s heartbeat and election timeout scaled
    by ``raft_multiplier``; heartbeats go out every tenth of it.  We tick every
    ``tick_s`` and express the rest in ticks so the core stays pure.
    """

    tick_s: float = 0.1  # one logical tick; heartbeats go out every tick (hashicorp: HeartbeatTimeout/10)
    election_ticks: int = 10  # election timeout 1 s at tick 0.1 s (Nomad: 1 s x raft_multiplier)
    heartbeat_ticks: int = 1  # leader heartbeat interval
    max_entries_per_msg: int = 1024  # cap one AppendEntries (hashicorp MaxAppendEntries: 64; we batch more)
    max_bytes_per_msg: int = 1 << 20  # keeps a frame well under the transport's 4 MiB limit
    max_inflight: int = 64  # pipelined AppendEntries per follower before pausing (flow control)
    snapshot_chunk_bytes: int = 256 * 1024  # InstallSnapshot chunk size
    pre_vote: bool = True  # §9.6 thesis: a rejoining partitioned server cannot disrupt a healthy leader
    check_quorum: bool = True  # a leader that cannot reach a majority for an election timeout steps down
    # A non-voter is made a voter once it has been caught up, answering
    # without a gap longer than an election timeout, for this many ticks
    # (Nomad's autopilot server_stabilization_time, 10 s; the agent sets it).
    # 0: promoted as soon as it has caught up.
    stabilization_ticks: int = 0
    # ...and whose log trails the leader's by at most this many entries
    # (autopilot's max_trailing_logs, 250); further behind, it starts over.
    promote_max_trailing: int = 250

    def __post_init__(self) -> None:
        if self.tick_s <= 0:
            raise ValueError("tick_s must be > 0")
        if self.heartbeat_ticks < 1:
            raise ValueError("heartbeat_ticks must be >= 1")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election_ticks must be greater than heartbeat_ticks")
        for name in ("max_entries_per_msg", "max_bytes_per_msg", "max_inflight", "snapshot_chunk_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.stabilization_ticks < 0 or self.promote_max_trailing < 0:
            raise ValueError("stabilization_ticks and promote_max_trailing must be >= 0")


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (etcd's Progress)."""

    next: int
    match: int = 0
    state: str = PROBE
    inflight: list[int] = field(default_factory=list)  # last index of each unacknowledged append
    paused: bool = False  # probe: one append at a time
    recent_active: bool = False
    read_ctx: int = 0
    snap_offset: int = 0
    snap_index: int = 0
    hb_match: int = -1  # match at the previous heartbeat
    stalled: int = 0  # heartbeats in a row with appends outstanding and no progress
    last_ack: int = 0  # the leader's tick count at this follower's last answer
    heard: int = 0  # the leader's tick count at this follower's last answer of any kind (its lease)
    caught_up_since: int = -1  # a non-voter: tick it caught up since, answering steadily (-1: not)
    probe_tick: int = -1  # the leader's tick count when it last sent this follower a probe


@dataclass(slots=True)
class Ready:
    hard_state: tuple[int, str] | None = None
    snapshot: tuple[int, int, tuple[str, ...], tuple[str, ...], bytes] | None = None
    truncate_from: int | None = None
    entries: list[Entry] = field(default_factory=list)
    messages: list[tuple[str, Any]] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    reads: list[tuple[int, int]] = field(default_factory=list)  # (request id, read index)
    failed_reads: list[int] = field(default_factory=list)
    role_changed: bool = False

    def empty(self) -> bool:
        return not (self.hard_state or self.snapshot or self.truncate_from is not None or self.entries
                    or self.messages or self.committed or self.reads or self.failed_reads
                    or self.role_changed)


_object_new = object.__new__


def _fresh_ready() -> Ready:
    """``Ready()``, built with plain stores and list displays (the core takes one per Ready handed
    out: most turns of a server)."""
    r = _object_new(Ready)
    r.hard_state = r.snapshot = r.truncate_from = None
    r.entries, r.messages, r.committed, r.reads, r.failed_reads = [], [], [], [], []
    r.role_changed = False
    return r


class RaftCore:
    """One server's Raft state machine."""

    def __init__(self, node: str, rng: Random, timings: RaftTimings | None = None) -> None:
        self.id = node
        self.rng = rng
        self.t = timings or RaftTimings()
        # Persistent state (§5, Figure 2), restored with restore().
        self.term = 0
        self.vote = ""
        self.snap_index = 0
        self.snap_term = 0
        self.snap_data = b""
        self.entries: list[Entry] = []
        # The log holds the entries after log_base; its entry's term is
        # log_base_term.  Compaction keeps trailing entries at or before the
        # snapshot (raft_trailing_logs), so log_base <= snap_index: a
        # follower a little behind then gets entries, not the whole snapshot.
        self.log_base = 0
        self.log_base_term = 0
        # Configuration: the latest in the log (thesis §4.1), with its history
        # so a truncated config entry rolls back.
        # Members are named by server ID; ``addrs`` maps each to the address it is reached at
        # (hashicorp/raft's ServerID and ServerAddress).  The host routes messages by it.
        self.voters: tuple[str, ...] = ()
        self.learners: tuple[str, ...] = ()
        self.addrs: dict[str, str] = {}
        self._config_log: list[tuple[int, tuple[str, ...], tuple[str, ...], Addrs]] = []
        self.snap_voters: tuple[str, ...] = ()
        self.snap_learners: tuple[str, ...] = ()
        self.snap_addrs: Addrs = ()
        # Volatile state.
        self.role = FOLLOWER
        self.leader = ""
        self.commit = 0
        self.applied_to_ready = 0  # committed entries handed to the host so far
        self.stable = 0  # last index the host has made durable
        self.elapsed = 0
        self.heartbeat_elapsed = 0
        self.ticks = 0  # ticks since this core started (promotion's clock)
        self.timeout = self._random_timeout()
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.pending_conf_index = 0
        self.transferee = ""
        self.transfer_elapsed = 0
        self.read_seq = 0
        # The read_seq whose heartbeat sits in the Ready not yet taken: reads
        # started before that Ready goes out share its round (0: none queued).
        self._read_seq_queued = 0
        self._pending_reads: list[tuple[int, int, int]] = []  # (request id, read index, ctx)
        self._reads_waiting_commit: list[int] = []
        self._snap_recv: bytearray | None = None
        self._ready = Ready()
        self._last_hard = (0, "")

    # ================================================================ log
    @property
    def last_index(self) -> int:
        return self.log_base + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.log_base_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at *index*; None if compacted away or absent."""
        # Called several times per message: the bounds are inlined, not read
        # through the last_index property.
        base = self.log_base
        if index == base:
            return self.log_base_term
        if index < base or index > base + len(self.entries):
            return None
        return self.entries[index - base - 1].term

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.log_base - 1]

    def _slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi inclusive (all present)."""
        return self.entries[lo - self.log_base - 1 : hi - self.log_base]

    def _append(self, entries: list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self.commit:
            raise RaftInvariantError(f"{self.id}: would overwrite committed index {first} <= {self.commit}")
        if first <= self.last_index:
            self._truncate(first)
        if first != self.last_index + 1:
            raise RaftInvariantError(f"{self.id}: gap appending {first} after {self.last_index}")
        prev = self.last_term
        for i, e in enumerate(entries):
            if e.index != first + i or e.term < prev:
                raise RaftInvariantError(f"{self.id}: appending {e.index} (term {e.term}) after term {prev}"
                                         " breaks log order")
            prev = e.term
        self.entries.extend(entries)
        self._ready.entries.extend(entries)
        for e in entries:
            if e.kind == CONFIG:
                self._apply_config_entry(e)

    def _truncate(self, first: int) -> None:
        del self.entries[first - self.log_base - 1 :]
        r = self._ready
        r.entries = [e for e in r.entries if e.index < first]
        r.truncate_from = first if r.truncate_from is None else min(r.truncate_from, first)
        self.stable = min(self.stable, first - 1)
        if self._config_log and self._config_log[-1][0] >= first:
            while self._config_log and self._config_log[-1][0] >= first:
                self._config_log.pop()
            self._set_config(*self._current_config())

    # ============================================================ config
    def _current_config(self) -> tuple[tuple[str, ...], tuple[str, ...], Addrs]:
        if self._config_log:
            return self._config_log[-1][1:]
        return self.snap_voters, self.snap_learners, self.snap_addrs

    def _set_config(self, voters: tuple[str, ...], learners: tuple[str, ...], addrs: Addrs = ()) -> None:
        self.voters, self.learners = voters, learners
        self.addrs = dict(addrs)
        if self.role == LEADER:
            for peer in voters + learners:
                if peer != self.id and peer not in self.progress:
                    self.progress[peer] = Progress(next=self.last_index + 1, heard=self.ticks)
            for peer in list(self.progress):
                if peer not in voters and peer not in learners:
                    del self.progress[peer]

    def _apply_config_entry(self, e: Entry) -> None:
        change = wire.decode(e.data)
        if type(change) is ServerConfiguration:
            # The configuration whole: whatever this server held before is replaced (a follower
            # whose configuration diverged in a peers.json recovery takes the leader's here).
            vs, va = parse_members(change.voters)
            ls, la = parse_members(change.learners)
            self._add_config(e.index, list(vs), list(ls), {**va, **la})
            return
        voters, learners, addr_list = self._current_config()
        vs, ls, addrs = list(voters), list(learners), dict(addr_list)
        op, node = change.op, change.node
        # An entry written before servers had IDs (ConfigChange) names each by its address.
        address = getattr(change, "address", "") or node
        if op == "bootstrap":
            vs, ls = list(change.voters), []
            addrs = dict(zip(change.voters, getattr(change, "addresses", ()) or change.voters, strict=True))
        elif op == "add_learner":
            if node not in vs and node not in ls:
                ls.append(node)
            addrs[node] = address  # a known ID at a new address: the address is replaced
        elif op == "promote" and node in ls:
            ls.remove(node)
            vs.append(node)
        elif op == "remove":
            vs = [v for v in vs if v != node]
            ls = [v for v in ls if v != node]
        elif op == "address" and (node in vs or node in ls):
            addrs[node] = address
        self._add_config(e.index, vs, ls, addrs)

    def _add_config(self, index: int, vs: list[str], ls: list[str], addrs: dict[str, str]) -> None:
        cfg = (tuple(sorted(vs)), tuple(sorted(ls)),
               tuple(sorted((k, addrs.get(k, k)) for k in vs + ls)))
        self._config_log.append((index, *cfg))
        self._set_config(*cfg)

    def address_of(self, server_id: str) -> str:
        """Where the configuration says *server_id* is (its ID itself when not a member)."""
        return self.addrs.get(server_id, server_id)

    def snap_members(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The snapshot's voters and non-voters as stored and sent: ``ID@address`` entries."""
        return _members(self.snap_voters, self.snap_learners, self.snap_addrs)

    def members_at(self, index: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The configuration as of *index* as a snapshot taken there stores it (``ID@address``)."""
        return _members(*self._committed_config_at(index))

    def config_history(self) -> tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...]:
        """The configurations the log holds after the snapshot: (index, voters, non-voters) each, oldest
        first (the simulator's lineage checker reads it)."""
        return tuple(c[:3] for c in self._config_log)

    def _committed_config(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        log = self._config_log
        if log and log[-1][0] <= self.commit:  # the latest is committed (every leader tick but a change's)
            return log[-1][1], log[-1][2]
        for index, voters, learners, _ in reversed(log):
            if index <= self.commit:
                return voters, learners
        return self.snap_voters, self.snap_learners

    def bootstrap(self, voters: tuple[str, ...], addresses: tuple[str, ...] = ()) -> None:
        """Start a brand-new cluster with *voters* (only on an empty log).

        Every bootstrapping server writes the same committed entry 1 holding
        the configuration (as hashicorp/raft's BootstrapCluster does), so the
        logs agree and a later joiner receives the configuration by
        replication like any other entry.
        """
        if self.last_index or self.term:
            raise RaftInvariantError("bootstrap on a non-empty server")
        self.term = 1
        addresses = addresses or voters
        if len(addresses) != len(voters):
            raise ValueError("bootstrap needs one address per voter")
        data = _bootstrap_data(sorted(zip(voters, addresses, strict=True)))
        self._append([Entry(term=1, index=1, kind=CONFIG, data=data)])
        self.commit = 1

    def restore(self, term: int, vote: str, snapshot: tuple[int, int, tuple[str, ...], tuple[str, ...], bytes]
                | None, entries: list[Entry]) -> None:
        """Load durable state at start-up (nothing of it goes back into Ready)."""
        self.term, self.vote = term, vote
        self._last_hard = (term, vote)
        if snapshot is not None:
            self.snap_index, self.snap_term, voters, learners, self.snap_data = snapshot
            self._set_snap_members(voters, learners)
        snap = self.snap_index
        self.commit = self.applied_to_ready = snap
        # Entries at or before the snapshot are trailing ones (compaction
        # kept them for lagging followers): kept when they run up to the
        # snapshot's own entry, the first becoming the log's base (its term
        # is all that is needed of it).
        before = [e for e in entries if e.index <= snap]
        after = [e for e in entries if e.index > snap]
        if len(before) >= 2 and before[-1].index == snap and before[-1].term == self.snap_term:
            self.log_base, self.log_base_term = before[0].index, before[0].term
            self.entries = before[1:] + after
        else:
            self.log_base, self.log_base_term = snap, self.snap_term
            self.entries = after
        self._set_config(self.snap_voters, self.snap_learners, self.snap_addrs)
        for e in after:  # the snapshot's configuration covers every entry up to it
            if e.kind == CONFIG:
                self._apply_config_entry(e)
        self.stable = self.last_index

    # ============================================================ ready
    def take_ready(self) -> Ready:
        hard = self._last_hard
        if self.term != hard[0] or self.vote != hard[1]:
            self._last_hard = (self.term, self.vote)
            self._ready.hard_state = self._last_hard
        if self.commit > self.applied_to_ready:
            lo = max(self.applied_to_ready + 1, self.snap_index + 1)
            self._ready.committed = self._slice(lo, self.commit)
            self.applied_to_ready = self.commit
        r, self._ready = self._ready, _fresh_ready()
        self._read_seq_queued = 0  # its heartbeats leave now: a later read needs a round of its own
        return r

    def has_ready(self) -> bool:
        """Whether :meth:`take_ready_if_any` would hand out a Ready (nothing changes)."""
        hard = self._last_hard
        return not (self.commit <= self.applied_to_ready and self.term == hard[0] and self.vote == hard[1]
                    and self._ready.empty())

    def take_ready_if_any(self) -> Ready | None:
        """:meth:`take_ready`, or None when nothing is pending (the Ready would be empty).

        The host drains Readies until one comes back empty, so every flush
        ends with one empty take; this answers it without building a Ready.
        """
        # Messages first: a heartbeat's Ready holds only them, and the Ready is then not empty.
        hard = self._last_hard
        if (not self._ready.messages and self.commit <= self.applied_to_ready
                and self.term == hard[0] and self.vote == hard[1] and self._ready.empty()):
            self._read_seq_queued = 0  # as take_ready would
            return None
        return self.take_ready()

    def persisted(self, index: int) -> None:
        """The host made the log durable through *index*."""
        last = self.log_base + len(self.entries)
        if index > last:
            index = last
        if index > self.stable:
            self.stable = index
        if self.role == LEADER and self.commit < last:  # (all committed: _maybe_commit would return)
            self._maybe_commit()

    def _send(self, to: str, m: Any) -> None:
        self._ready.messages.append((to, m))

    # ============================================================ roles
    def _random_timeout(self) -> int:
        # §5.2: randomised in [T, 2T) so split votes are rare.
        return self.t.election_ticks + self.rng.randrange(self.t.election_ticks)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = ""
        self.leader = ""
        self.elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.votes = {}
        self.transferee = ""
        self._fail_reads()

    def _become_follower(self, term: int, leader: str) -> None:
        was = self.role
        self._reset(term)
        self.role = FOLLOWER
        self.leader = leader
        self.progress = {}
        if was != FOLLOWER:
            self._ready.role_changed = True

    def _become_pre_candidate(self) -> None:
        # Pre-vote does not touch the term or the vote (thesis §9.6).
        self.role = PRE_CANDIDATE
        self.votes = {}
        self.leader = ""
        self.elapsed = 0
        self.timeout = self._random_timeout()

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.role = CANDIDATE
        self.vote = self.id

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = LEADER
        self.leader = self.id
        self._ready.role_changed = True
        self.progress = {p: Progress(next=self.last_index + 1, recent_active=True, last_ack=self.ticks,
                                     heard=self.ticks)
                         for p in self.voters + self.learners if p != self.id}
        # §5.4.2 / §8: commit an entry of our own term at once (also unblocks ReadIndex).
        index = self.last_index + 1
        # No configuration change until that entry commits (pending_conf_index is its index, as etcd's
        # becomeLeader sets it to the last index).  A change made sooner can commit with a quorum of
        # its own configuration that has no entry of our term, while a server holding an earlier
        # leader's uncommitted change has a log as up to date as theirs: it can win an election with
        # that change and overwrite our committed one (Ongaro, raft-dev, "bug in single-server
        # membership changes", 2015).  An uncommitted change in our log is before it: covered too.
        self.pending_conf_index = index
        if self._config_log:
            self._append([Entry(term=self.term, index=index, kind=NOOP)])
        else:
            # Our configuration comes from our snapshot alone, and a follower whose log already
            # covers the snapshot gets no snapshot: it keeps the configuration its own log implies.
            # That is ours, but after a peers.json recovery, which stores the file's servers in a
            # snapshot and drops the log (runtime/raft_recovery.py), it is not: a server that was
            # down, not wiped, and got no peers.json still holds the old one, and later changes,
            # deltas, would be applied to it.  So that entry of our term restates the configuration
            # whole (hashicorp/raft's configuration entries all do); a follower that appends it holds
            # ours.  Like the no-op, no change is proposed until it commits.
            self._append([Entry(term=self.term, index=index, kind=CONFIG, data=self._whole_config())])
        self._broadcast_append()

    def _whole_config(self) -> bytes:
        """The configuration whole, as an entry's data.  With no non-voter (nearly always: a
        server is one only while it is being added), as a bootstrap entry, which replaces the voters
        whole and leaves no non-voter: servers of earlier versions, which know no
        ServerConfiguration, read it too, so a rolling upgrade's new leader does not stop their Raft.
        With non-voters, as a ServerConfiguration."""
        if not self.learners:
            return _bootstrap_data(sorted((v, self.addrs.get(v, v)) for v in self.voters))
        voters, learners = _members(tuple(sorted(self.voters)), tuple(sorted(self.learners)),
                                    tuple(self.addrs.items()))
        return wire.encode(ServerConfiguration(voters=voters, learners=learners))

    def set_timings(self, timings: RaftTimings) -> None:
        """New timeouts (a reload): the next election timeout is drawn from them."""
        self.t = timings
        self.timeout = self._random_timeout()

    def set_promotion(self, stabilization_ticks: int, max_trailing: int) -> None:
        """When a learner becomes a voter (autopilot's settings); the timeouts stay as they are."""
        self.t = replace(self.t, stabilization_ticks=stabilization_ticks, promote_max_trailing=max_trailing)

    # ============================================================ ticks
    def tick(self) -> None:
        self.ticks += 1
        if self.role == LEADER:
            self._tick_leader()
        else:
            self.elapsed += 1
            if self.elapsed >= self.timeout and self._promotable():
                self.campaign()

    def _promotable(self) -> bool:
        return self.id in self.voters

    def _tick_leader(self) -> None:
        self.elapsed += 1
        self.heartbeat_elapsed += 1
        if self.transferee:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= self.t.election_ticks:
                self.transferee = ""  # the transfer failed; carry on leading
        if self.elapsed >= self.t.election_ticks:
            self.elapsed = 0
            if self.t.check_quorum and not self._quorum_active():
                self._become_follower(self.term, "")
                return
        if self.t.check_quorum and not self._lease_held():
            self._become_follower(self.term, "")
            return
        committed_voters = self._committed_config()[0]
        if committed_voters and self.id not in committed_voters:
            # Our removal is committed: step down (thesis §4.2.2).
            self._become_follower(self.term, "")
            return
        if self.heartbeat_elapsed >= self.t.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._broadcast_heartbeat(0)

    def _lease_held(self) -> bool:
        """hashicorp/raft's checkLeaderLease: a majority (itself included) answered within the leader
        lease, half the election timeout (its LeaderLeaseTimeout is half its HeartbeatTimeout).  A leader
        cut off from a majority steps down within that, before the others' election timeout lets them
        elect another -- so two servers never both act as leader for long (a partitioned one answered
        clients' heartbeats with TTLs the new leader never heard of)."""
        lease = max(1, self.t.election_ticks // 2)
        heard = 1 if self.id in self.voters else 0
        for peer, pr in self.progress.items():
            if peer in self.voters and self.ticks - pr.heard < lease:
                heard += 1
        return heard >= self._quorum()

    def _quorum_active(self) -> bool:
        active = 1 if self.id in self.voters else 0
        for peer, pr in self.progress.items():
            if peer in self.voters and pr.recent_active:
                active += 1
            pr.recent_active = False
        return active >= self._quorum()

    def _quorum(self) -> int:
        return len(self.voters) // 2 + 1

    # ============================================================ elections
    def campaign(self, transfer: bool = False) -> None:
        if not self._promotable():
            return
        if self.t.pre_vote and not transfer:
            self._become_pre_candidate()
            term, pre = self.term + 1, True
        else:
            self._become_candidate()
            term, pre = self.term, False
        self.votes = {self.id: True}
        if self._won():  # a single voter wins at once
            self._real_campaign() if pre else self._become_leader()
            return
        for peer in self.voters:
            if peer != self.id:
                self._send(peer, RequestVote(term=term, candidate=self.id, last_log_index=self.last_index,
                                             last_log_term=self.last_term, pre_vote=pre, transfer=transfer))

    def _real_campaign(self) -> None:
        self._become_candidate()
        self.votes = {self.id: True}
        if self._won():
            self._become_leader()
            return
        for peer in self.voters:
            if peer != self.id:
                self._send(peer, RequestVote(term=self.term, candidate=self.id,
                                             last_log_index=self.last_index, last_log_term=self.last_term))

    def _won(self) -> bool:
        return sum(1 for v, ok in self.votes.items() if ok and v in self.voters) >= self._quorum()

    def _lost(self) -> bool:
        return sum(1 for v, ok in self.votes.items() if not ok and v in self.voters) >= self._quorum()

    def _log_ok(self, last_index: int, last_term: int) -> bool:
        # §5.4.1: the candidate's log is at least as up-to-date as ours.
        return last_term > self.last_term or (last_term == self.last_term and last_index >= self.last_index)

    def _in_lease(self) -> bool:
        # With check-quorum, a follower that heard from a leader within the
        # election timeout ignores votes: that leader may still be alive.
        return self.t.check_quorum and self.leader != "" and self.elapsed < self.t.election_ticks

    # ============================================================ step
    def step(self, m: Any) -> None:
        """Handle one message from a peer."""
        term = m.term
        if term > self.term:
            if isinstance(m, RequestVote):
                if not m.transfer and self._in_lease():
                    return  # thesis §4.2.3: ignore disruptive servers while a leader is alive
                if m.pre_vote:
                    self._handle_vote(m)  # pre-votes never change our term
                    return
                self._become_follower(term, "")
            elif isinstance(m, RequestVoteResp) and m.pre_vote and m.granted:
                pass  # a granted pre-vote carries the future term
            else:
                leader = m.leader if isinstance(m, (AppendEntries, InstallSnapshot, TimeoutNow)) else ""
                self._become_follower(term, leader)
        elif term < self.term:
            if isinstance(m, (AppendEntries, InstallSnapshot)):
                # Tell a stale leader our term so it steps down (needed with
                # check-quorum + pre-vote, else it may never learn).
                self._send(m.leader, AppendResp(term=self.term, follower=self.id, success=False,
                                                match_index=0))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._send(m.candidate, RequestVoteResp(term=self.term, voter=self.id, granted=False,
                                                        pre_vote=True))
            return
        # Replication is nearly all the traffic: its two types first, by exact
        # type (the isinstance chain below handles the rest as before).
        t = type(m)
        if t is AppendEntries:
            self._handle_append(m)
        elif t is AppendResp:
            if self.role == LEADER:
                self._handle_append_resp(m)
        elif isinstance(m, RequestVote):
            self._handle_vote(m)
        elif isinstance(m, RequestVoteResp):
            self._handle_vote_resp(m)
        elif isinstance(m, AppendEntries):
            self._handle_append(m)
        elif isinstance(m, AppendResp):
            if self.role == LEADER:
                self._handle_append_resp(m)
        elif isinstance(m, InstallSnapshot):
            self._handle_snapshot(m)
        elif isinstance(m, InstallSnapshotResp):
            if self.role == LEADER:
                self._handle_snapshot_resp(m)
        elif isinstance(m, TimeoutNow):
            if self.role != LEADER:
                self.campaign(transfer=True)

    def _handle_vote(self, m: RequestVote) -> None:
        if m.pre_vote:
            grant = m.term > self.term and self._log_ok(m.last_log_index, m.last_log_term)
            self._send(m.candidate, RequestVoteResp(term=m.term if grant else self.term, voter=self.id,
                                                    granted=grant, pre_vote=True))
            return
        can_vote = self.vote in ("", m.candidate) and not (self.role == LEADER)
        grant = can_vote and self._log_ok(m.last_log_index, m.last_log_term)
        if grant:
            self.vote = m.candidate
            self.elapsed = 0
        self._send(m.candidate, RequestVoteResp(term=self.term, voter=self.id, granted=grant))

    def _handle_vote_resp(self, m: RequestVoteResp) -> None:
        if m.pre_vote != (self.role == PRE_CANDIDATE) or self.role not in (PRE_CANDIDATE, CANDIDATE):
            return
        self.votes.setdefault(m.voter, m.granted)
        if self._won():
            if self.role == PRE_CANDIDATE:
                self._real_campaign()
            else:
                self._become_leader()
        elif self._lost():
            self._become_follower(self.term, "")

    # ============================================================ follower side
    def _handle_append(self, m: AppendEntries) -> None:
        if self.role != FOLLOWER or self.leader != m.leader:
            self._become_follower(self.term, m.leader)
        self.elapsed = 0
        prev_index = m.prev_index
        if not m.entries and prev_index >= self.commit:
            # An empty append (a heartbeat) at or past our commit: the general path below, with
            # nothing to skip or append (new_last is prev_index).
            if self.term_at(prev_index) != m.prev_term:
                self._reject_append(m)
                return
            commit = m.commit if m.commit < prev_index else prev_index
            if commit > self.commit:
                self.commit = commit
            self._ready.messages.append((m.leader, _new_append_resp(
                term=self.term, follower=self.id, success=True, match_index=prev_index, read_ctx=m.read_ctx)))
            return
        if m.prev_index < self.commit:
            # The prefix is committed here already: skip what we have.
            skip = self.commit - m.prev_index
            entries = m.entries[skip:]
            prev_index, prev_term = self.commit, self.term_at(self.commit)
        else:
            entries, prev_index, prev_term = m.entries, m.prev_index, m.prev_term
        if prev_index == m.prev_index and self.term_at(prev_index) != prev_term:
            self._reject_append(m)
            return
        new_last = prev_index + len(entries)
        for i, e in enumerate(entries):
            have = self.term_at(e.index)
            if have != e.term:
                if have is not None and e.index <= self.commit:
                    raise RaftInvariantError(f"{self.id}: conflict at committed index {e.index}")
                self._append(list(entries[i:]))
                break
        self.commit = max(self.commit, min(m.commit, new_last))
        self._ready.messages.append((m.leader, _new_append_resp(
            term=self.term, follower=self.id, success=True, match_index=new_last, read_ctx=m.read_ctx)))

    def _reject_append(self, m: AppendEntries) -> None:
        # Fast back-tracking (thesis §5.3 optimisation): report the conflicting
        # term and its first index, or our log's end if it is too short.
        if m.prev_index > self.last_index:
            hint_index, hint_term = self.last_index + 1, 0
        else:
            hint_term = self.term_at(m.prev_index) or 0
            hint_index = m.prev_index
            while hint_index - 1 > self.commit and self.term_at(hint_index - 1) == hint_term:
                hint_index -= 1
        self._send(m.leader, AppendResp(term=self.term, follower=self.id, success=False,
                                        match_index=0, hint_index=hint_index, hint_term=hint_term,
                                        read_ctx=m.read_ctx))

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        if self.role != FOLLOWER or self.leader != m.leader:
            self._become_follower(self.term, m.leader)
        self.elapsed = 0
        if m.last_index <= self.commit:
            self._send(m.leader, InstallSnapshotResp(term=self.term, follower=self.id,
                                                     last_index=m.last_index, next_offset=0, done=True))
            return
        if m.offset == 0:
            self._snap_recv = bytearray()
        if self._snap_recv is None or len(self._snap_recv) != m.offset:
            # Out of order: ask for the chunk we need.
            need = 0 if self._snap_recv is None else len(self._snap_recv)
            self._send(m.leader, InstallSnapshotResp(term=self.term, follower=self.id,
                                                     last_index=m.last_index, next_offset=need, done=False))
            return
        self._snap_recv += m.data
        if not m.done:
            self._send(m.leader, InstallSnapshotResp(term=self.term, follower=self.id,
                                                     last_index=m.last_index,
                                                     next_offset=len(self._snap_recv), done=False))
            return
        data, self._snap_recv = bytes(self._snap_recv), None
        self._install(m.last_index, m.last_term, m.voters, m.learners, data)
        self._send(m.leader, InstallSnapshotResp(term=self.term, follower=self.id,
                                                 last_index=m.last_index, next_offset=0, done=True))

    def _install(self, index: int, term: int, voters: tuple[str, ...], learners: tuple[str, ...],
                 data: bytes) -> None:
        if self.term_at(index) == term:
            keep = self.entries[index - self.log_base :]  # §7: retain entries after the snapshot
        else:
            keep = []
            if self.last_index >= index + 1 or self.entries:
                self._ready.truncate_from = self.log_base + 1
                self._ready.entries = []
        self.entries = keep
        self.log_base, self.log_base_term = index, term
        self.snap_index, self.snap_term, self.snap_data = index, term, data
        self._set_snap_members(voters, learners)
        self._config_log = [c for c in self._config_log if c[0] > index]
        self._set_config(*self._current_config())
        self.commit = max(self.commit, index)
        self.applied_to_ready = max(self.applied_to_ready, index)
        self.stable = max(self.stable, index)
        self._ready.snapshot = (index, term, voters, learners, data)

    # ============================================================ leader side
    def propose(self, data: bytes, kind: int = NORMAL) -> tuple[int, int] | str:
        """Append a command; returns (index, term) or a reason it was refused."""
        if self.role != LEADER:
            return "not leader"
        if self.transferee:
            return "leadership transfer in progress"
        if kind == CONFIG:
            if self.pending_conf_index > self.commit:
                return "a configuration change is already in progress"
        e = Entry(term=self.term, index=self.last_index + 1, kind=kind, data=data)
        if kind == CONFIG:
            self.pending_conf_index = e.index
        self._append([e])
        self._broadcast_append()
        if len(self.voters) == 1 and self.voters[0] == self.id:
            pass  # committed when persisted() reports the entry durable
        return e.index, e.term

    def propose_batch(self, datas: list[bytes]) -> tuple[int, int] | str:
        """Append many commands at once; returns (first index, term)."""
        if self.role != LEADER:
            return "not leader"
        if self.transferee:
            return "leadership transfer in progress"
        first, term, entry = self.last_index + 1, self.term, _new_entry
        self._append([entry(term=term, index=first + i, kind=NORMAL, data=d) for i, d in enumerate(datas)])
        self._broadcast_append()
        return first, self.term

    def change_config(self, op: str, node: str, address: str = "") -> tuple[int, int] | str:
        """Propose one membership change of server *node* (an ID), at *address* for add_learner and
        address (its ID when not given: a server whose ID is its address)."""
        if op == "address" and node not in self.addrs:
            return f"{node} is not in the configuration"
        if (address or node) == node and op != "address":
            # The ID is the address: the entry as before IDs, byte for byte (simulations).
            return self.propose(wire.encode(ConfigChange(op=op, node=node)), kind=CONFIG)
        return self.propose(wire.encode(ServerConfigChange(op=op, node=node, address=address or node)),
                            kind=CONFIG)

    def transfer_leadership(self, target: str) -> str:
        """Hand leadership to *target* (a caught-up voter); "" when started."""
        if self.role != LEADER:
            return "not leader"
        if target == self.id or target not in self.voters:
            return f"{target} is not another voter"
        self.transferee = target
        self.transfer_elapsed = 0
        pr = self.progress[target]
        if pr.match == self.last_index:
            self._send(target, TimeoutNow(term=self.term, leader=self.id))
        else:
            self._send_append(target, pr)
        return ""

    def _broadcast_append(self) -> None:
        # Followers at the same point get the same AppendEntries object: the
        # transport encodes it once for all of them (TcpTransport reuses the
        # frame of the payload it just encoded).
        memo: dict[tuple[int, int], AppendEntries] = {}
        for peer in sorted(self.progress):
            self._send_append(peer, self.progress[peer], memo=memo)
        if len(self.voters) == 1:
            self._maybe_commit()

    def _broadcast_heartbeat(self, ctx: int) -> None:
        memo: dict[tuple[int, int], AppendEntries] = {}
        progress, messages = self.progress, self._ready.messages
        for peer in sorted(progress):
            pr = progress[peer]
            if ctx == 0 and pr.state == REPLICATE:
                # Appends outstanding but no progress for two heartbeats: one
                # was lost (a later one would have been rejected); probe again.
                pr.stalled = pr.stalled + 1 if (pr.inflight and pr.match == pr.hb_match) else 0
                pr.hb_match = pr.match
                if pr.stalled >= 2:
                    pr.state, pr.paused, pr.inflight, pr.next, pr.stalled = PROBE, False, [], pr.match + 1, 0
            prev_term = self.term_at(pr.match) if pr.state == REPLICATE else None
            if prev_term is not None:
                m = memo.get((-1, pr.match))
                if m is None:
                    m = memo[(-1, pr.match)] = _new_append(
                        term=self.term, leader=self.id, prev_index=pr.match, prev_term=prev_term,
                        entries=(), commit=min(self.commit, pr.match), read_ctx=ctx)
                messages.append((peer, m))  # _send
            else:
                pr.paused = False  # a heartbeat re-probes a stuck follower
                self._send_append(peer, pr, ctx=ctx, force=True, memo=memo)

    def share_commit(self) -> bool:
        """A leader tells each follower it replicates to the commit index now, in an empty append at its
        match (what a heartbeat sends it, without the heartbeat's stall count): a caught-up follower
        learns of a commit only from the next append, up to a tick later while the leader is idle.
        True if anything was sent."""
        if self.role != LEADER:
            return False
        memo: dict[int, AppendEntries] = {}
        sent = False
        for peer in sorted(self.progress):
            pr = self.progress[peer]
            commit = min(self.commit, pr.match)
            if pr.state != REPLICATE or commit <= 0:
                continue
            prev_term = self.term_at(pr.match)
            if prev_term is None:
                continue
            m = memo.get(pr.match)
            if m is None:
                m = memo[pr.match] = _new_append(term=self.term, leader=self.id, prev_index=pr.match,
                                                 prev_term=prev_term, entries=(), commit=commit, read_ctx=0)
            self._send(peer, m)
            sent = True
        return sent

    def _send_append(self, peer: str, pr: Progress, ctx: int = 0, force: bool = False,
                     memo: dict[tuple[int, int], AppendEntries] | None = None) -> None:
        """Send *peer* the entries after ``pr.next - 1``; *memo* shares one message among
        the peers of a broadcast at the same point (same term, commit and read context)."""
        if pr.state == SNAPSHOT:
            if force:
                self._send_snapshot_chunk(peer, pr)
            return
        if not force and (pr.paused or len(pr.inflight) >= self.t.max_inflight):
            return
        prev = pr.next - 1
        if not force and pr.state == REPLICATE and prev == self.log_base + len(self.entries):
            # Caught up (most acks find it so): the append would carry no
            # entries and an empty one goes only as a heartbeat (force), so
            # return before building it.
            return
        m = memo.get((prev, ctx)) if memo is not None else None
        if m is None:
            prev_term = self.term_at(prev)
            if prev_term is None:
                pr.state, pr.snap_offset, pr.snap_index = SNAPSHOT, 0, self.snap_index
                pr.inflight.clear()
                self._send_snapshot_chunk(peer, pr)
                return
            hi = min(self.last_index, prev + self.t.max_entries_per_msg)
            entries = self._slice(prev + 1, hi) if hi > prev else []
            size = 0
            for i, e in enumerate(entries):
                size += len(e.data) + 16
                if size > self.t.max_bytes_per_msg and i > 0:
                    entries = entries[:i]
                    break
            m = _new_append(term=self.term, leader=self.id, prev_index=prev, prev_term=prev_term,
                            entries=tuple(entries), commit=self.commit, read_ctx=ctx)
            if memo is not None:
                memo[(prev, ctx)] = m
        entries = m.entries
        if not entries and not force and pr.state == REPLICATE:
            return
        self._send(peer, m)
        if entries:
            last = entries[-1].index
            if pr.state == REPLICATE:
                pr.next = last + 1
                pr.inflight.append(last)
            else:
                pr.paused = True

    def _send_snapshot_chunk(self, peer: str, pr: Progress) -> None:
        if pr.snap_index != self.snap_index:
            pr.snap_index, pr.snap_offset = self.snap_index, 0
        data = self.snap_data
        lo = pr.snap_offset
        hi = min(len(data), lo + self.t.snapshot_chunk_bytes)
        voters, learners = self.snap_members()
        self._send(peer, InstallSnapshot(term=self.term, leader=self.id, last_index=self.snap_index,
                                         last_term=self.snap_term, voters=voters,
                                         learners=learners, offset=lo, data=data[lo:hi],
                                         done=hi >= len(data)))

    def _handle_snapshot_resp(self, m: InstallSnapshotResp) -> None:
        pr = self.progress.get(m.follower)
        if pr is None:
            self._old_name_hint(m)
            return
        pr.recent_active = True
        pr.heard = self.ticks
        if pr.state != SNAPSHOT:
            return
        if m.done:
            pr.match = max(pr.match, m.last_index)
            pr.next = pr.match + 1
            pr.state, pr.paused = PROBE, False
            self._send_append(m.follower, pr)
        elif m.last_index == self.snap_index:
            pr.snap_offset = m.next_offset
            self._send_snapshot_chunk(m.follower, pr)

    def _handle_append_resp(self, m: AppendResp) -> None:
        pr = self.progress.get(m.follower)
        if pr is None:
            self._old_name_hint(m)
            return
        pr.recent_active = True
        pr.heard = self.ticks
        if self.ticks - pr.last_ack > self.t.election_ticks or not m.success:
            pr.caught_up_since = -1  # a silence or a rejection: stable only from now on
        pr.last_ack = self.ticks
        if m.read_ctx:
            pr.read_ctx = max(pr.read_ctx, m.read_ctx)
            self._check_reads()
        if not m.success:
            if m.match_index == 0 and m.hint_index == 0:
                return  # a stale-term answer, already handled by the term check
            self._back_off(m.follower, pr, m)
            return
        # An ack at our match while probing ends the probe too (etcd's progress tracker does the same):
        # the follower holds what we know it holds.  Left probing, each such ack sent another empty
        # probe whose ack sent the next, and duplicated packets multiplied the chains -- seed 9028 of
        # `nomad-sim raft --servers 5` grew to millions of messages per virtual second.
        if m.match_index > pr.match or (m.match_index == pr.match and pr.state == PROBE):
            pr.match = m.match_index
            pr.next = max(pr.next, m.match_index + 1)
            pr.inflight = [i for i in pr.inflight if i > m.match_index]
            if pr.state == PROBE:
                pr.state, pr.paused = REPLICATE, False
                pr.inflight = []
                pr.next = pr.match + 1
            self._maybe_commit()
            if self.transferee == m.follower and pr.match == self.last_index:
                self._send(m.follower, TimeoutNow(term=self.term, leader=self.id))
        elif pr.state == PROBE:
            pr.paused = False
        elif pr.match < self.last_index and pr.next - 1 > pr.match and pr.probe_tick != self.ticks:
            # An ack without progress (a heartbeat's) while appends are out:
            # probe with an empty append at next-1; if one was lost the
            # follower rejects it and we back off (etcd does the same).
            # At most one probe per follower per tick: the probe's own ack
            # comes back "without progress" whenever the appends' acks beat
            # it, and under steady load appends are always out, so each probe
            # would beget the next.  Every heartbeat started another such
            # chain; measured: 227k empty appends in 5 s among 3 servers.
            pr.probe_tick = self.ticks
            self._send(m.follower, AppendEntries(term=self.term, leader=self.id, prev_index=pr.next - 1,
                                                 prev_term=self.term_at(pr.next - 1) or 0, entries=(),
                                                 commit=min(self.commit, pr.match)))
        if m.follower in self.learners:
            self._maybe_promote(m.follower, pr)
        if pr.state == REPLICATE and pr.next - 1 == self.log_base + len(self.entries):
            return  # caught up: _send_append would send nothing (most acks, every idle heartbeat's)
        if self.role == LEADER and m.follower in self.progress:
            self._send_append(m.follower, pr)

    def _old_name_hint(self, m: AppendResp | InstallSnapshotResp) -> None:
        """An answer under a name no member has, from the address of a member with another ID.

        It may come from a server the configuration named by its address (before IDs) that the
        leader has re-added by its node ID, and that goes by its address until the entries saying
        so reach it (peer.py ``_take_own_id``) -- or be a late answer of a removed server whose
        address a new member has now (a wiped server back with a new ID): nothing in the answer
        tells which, so it never counts as the member's (hashicorp/raft matches an answer to the
        replication of the server it addressed).  It is no match, no acknowledgement of a read
        and no contact: a false match would let the leader skip entries the member lacks (and,
        once it is a voter, count them toward commit).  It only tells the leader where to look
        next for a member that has not answered under its own ID yet (not replicating): a probe
        there, which the member itself answers, rejecting it if it lacks the entries.  Whoever
        sent the answer, that is only a retry, as Raft allows at any time.
        """
        sid = next((i for i, a in sorted(self.addrs.items()) if a == m.follower and i != m.follower), "")
        pr = self.progress.get(sid)
        if pr is None or pr.state == REPLICATE:
            return  # replicating: the member answers under its ID, so this is stale
        if type(m) is AppendResp:
            if not m.success:
                if m.hint_index:  # (neither index: a stale term's answer, handled by the term check)
                    self._back_off(sid, pr, m)
                return
            nxt = min(m.match_index, self.last_index) + 1
        else:
            if pr.state != SNAPSHOT or m.last_index != pr.snap_index:
                return
            if not m.done:
                pr.snap_offset = m.next_offset  # the member asks for another chunk if not this one
                self._send_snapshot_chunk(sid, pr)
                return
            nxt = m.last_index + 1
        if (nxt > pr.match + 1 and nxt != pr.next) or pr.state == SNAPSHOT:
            pr.next, pr.state, pr.paused, pr.inflight = max(nxt, pr.match + 1), PROBE, False, []
            self._send_append(sid, pr)

    def _back_off(self, peer: str, pr: Progress, m: AppendResp) -> None:
        if m.hint_index <= pr.match:
            return  # stale rejection
        nxt = m.hint_index
        if m.hint_term:
            # Skip the follower's whole conflicting term if we have it.
            for i in range(min(m.hint_index, self.last_index), self.log_base, -1):
                t = self.term_at(i)
                if t == m.hint_term:
                    nxt = i + 1
                    break
                if t is not None and t < m.hint_term:
                    break
        pr.next = max(pr.match + 1, min(nxt, pr.next - 1 if pr.state == PROBE else nxt))
        pr.state, pr.paused = PROBE, False
        pr.inflight = []
        self._send_append(peer, pr)

    def _maybe_commit(self) -> None:
        if self.commit >= self.log_base + len(self.entries):
            # All committed (an idle leader's every persisted()): no index past the log's end has a
            # term, so none could be committed by counting.
            return
        me, stable, progress = self.id, self.stable, self.progress
        matches = sorted([stable if v == me else (progress[v].match if v in progress else 0)
                          for v in self.voters])
        if not matches:
            return
        n = matches[len(matches) - self._quorum()]
        # §5.4.2: only entries of the current term are committed by counting.
        if n > self.commit and self.term_at(n) == self.term:
            self.commit = n
            self._release_reads_waiting_commit()
            self._check_reads()

    def _maybe_promote(self, peer: str, pr: Progress) -> None:
        """A learner caught up with the commit index, steadily for stabilization_ticks, becomes a voter."""
        if self.last_index - pr.match > self.t.promote_max_trailing:
            pr.caught_up_since = -1
            return
        if pr.match < self.commit:
            return  # a little behind for now
        if pr.caught_up_since < 0:
            pr.caught_up_since = self.ticks
        if (self.ticks - pr.caught_up_since >= self.t.stabilization_ticks
                and self.pending_conf_index <= self.commit and self.role == LEADER):
            self.change_config("promote", peer)

    # ============================================================ reads
    def read_index(self, req_id: int) -> str:
        """Start a linearizable read (§8, thesis §6.4); "" when started."""
        if self.role != LEADER:
            return "not leader"
        if self.term_at(self.commit) != self.term:
            self._reads_waiting_commit.append(req_id)  # no entry of our term committed yet
            return ""
        self._start_read(req_id)
        return ""

    def _start_read(self, req_id: int) -> None:
        if len(self.voters) == 1:
            self._ready.reads.append((req_id, self.commit))
            return
        if self._read_seq_queued:
            # A read heartbeat is queued and not sent yet: its acknowledgements
            # come after this read started, so they confirm it too (etcd
            # batches ReadIndex requests the same way).
            self._pending_reads.append((req_id, self.commit, self._read_seq_queued))
            return
        self.read_seq += 1
        self._read_seq_queued = self.read_seq
        self._pending_reads.append((req_id, self.commit, self.read_seq))
        self._broadcast_heartbeat(self.read_seq)

    def _release_reads_waiting_commit(self) -> None:
        waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
        for req_id in waiting:
            self._start_read(req_id)

    def _check_reads(self) -> None:
        if not self._pending_reads:
            return
        done = []
        for req_id, index, ctx in self._pending_reads:
            acks = 1 + sum(1 for p, pr in self.progress.items() if p in self.voters and pr.read_ctx >= ctx)
            if acks >= self._quorum():
                done.append((req_id, index, ctx))
        for item in done:
            self._pending_reads.remove(item)
            self._ready.reads.append((item[0], item[1]))

    def _fail_reads(self) -> None:
        for req_id, _, _ in self._pending_reads:
            self._ready.failed_reads.append(req_id)
        self._ready.failed_reads.extend(self._reads_waiting_commit)
        self._pending_reads, self._reads_waiting_commit = [], []
        self._read_seq_queued = 0  # a new term's reads never share an old term's round

    # ============================================================ compaction
    def compact(self, index: int, data: bytes, trailing: int = 0, trailing_max_bytes: int = 0) -> None:
        """The host snapshotted the state machine at applied *index*: drop the log up to it,
        but for the last *trailing* entries at or before it, and no more of them than fill
        *trailing_max_bytes* of data (hashicorp raft's TrailingLogs)."""
        if index <= self.snap_index or index > self.applied_to_ready:
            return
        term = self.term_at(index) or 0
        voters, learners, addrs = self._committed_config_at(index)
        base = max(self.log_base, index - max(trailing, 0))
        if base < index:
            size, i = 0, index
            while i > base:
                size += len(self.entry(i).data)
                if size > trailing_max_bytes:
                    base = i
                    break
                i -= 1
        self.entries, self.log_base_term = self.entries[base - self.log_base :], self.term_at(base) or 0
        self.log_base = base
        self.snap_index, self.snap_term, self.snap_data = index, term, data
        self.snap_voters, self.snap_learners, self.snap_addrs = voters, learners, addrs
        self._config_log = [c for c in self._config_log if c[0] > index]

    def _set_snap_members(self, voters: tuple[str, ...], learners: tuple[str, ...]) -> None:
        """The snapshot's configuration from its stored or sent member entries (see ``member``)."""
        self.snap_voters, va = parse_members(voters)
        self.snap_learners, la = parse_members(learners)
        self.snap_addrs = tuple(sorted({**va, **la}.items()))

    def _committed_config_at(self, index: int) -> tuple[tuple[str, ...], tuple[str, ...], Addrs]:
        for i, voters, learners, addrs in reversed(self._config_log):
            if i <= index:
                return voters, learners, addrs
        return self.snap_voters, self.snap_learners, self.snap_addrs

    # ============================================================ checks
    def check_invariants(self, full: bool = False) -> None:
        """Cheap checks always; ``full`` also walks the whole log (tests, simulator).

        The per-entry properties (contiguous indexes, terms never decreasing)
        are checked on every append in ``_append``, so the host's per-flush
        call stays O(1) however long the log is.
        """
        last = self.log_base + len(self.entries)
        if self.commit > last:
            raise RaftInvariantError(f"{self.id}: commit {self.commit} beyond last {last}")
        if self.snap_index > self.commit:
            raise RaftInvariantError(f"{self.id}: snapshot {self.snap_index} beyond commit {self.commit}")
        if self.log_base > self.snap_index:
            raise RaftInvariantError(f"{self.id}: log starts after {self.log_base}, past the snapshot"
                                     f" {self.snap_index}")
        if full:
            if self.term_at(self.snap_index) != self.snap_term:
                raise RaftInvariantError(f"{self.id}: the log's entry {self.snap_index} is not the snapshot's")
            prev_term = self.log_base_term
            for i, e in enumerate(self.entries):
                if e.index != self.log_base + 1 + i:
                    raise RaftInvariantError(f"{self.id}: log index gap at {e.index}")
                if e.term < prev_term:
                    raise RaftInvariantError(f"{self.id}: log terms decrease at {e.index}")
                prev_term = e.term
        if self.role == LEADER and self.vote != self.id and self.term > 0 and len(self.voters) > 1:
            raise RaftInvariantError(f"{self.id}: leader of term {self.term} did not vote for itself")

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "term": self.term, "leader": self.leader,
                "commit": self.commit, "last_index": self.last_index, "snap_index": self.snap_index,
                "first_index": self.log_base + 1,
                "voters": list(self.voters), "learners": list(self.learners)}
