"""Raft's wire messages (tags 100-149; ONLY APPEND new tags)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)

# Entry kinds.
NORMAL = 0  # a state-machine command
CONFIG = 1  # a change (ConfigChange, ServerConfigChange) or a ServerConfiguration; applied when appended
NOOP = 2  # appended by a new leader to commit entries of earlier terms (§5.4.2)
# (one whose configuration is its snapshot's appends a CONFIG restating it instead: RaftCore._become_leader)


@message(100)
@msg
class Entry(Message):
    term: int
    index: int
    kind: int = NORMAL
    data: bytes = b""


@message(101)
@msg
class RequestVote(Message):
    term: int
    candidate: str
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # a leadership transfer: ignore the leader lease


@message(102)
@msg
class RequestVoteResp(Message):
    term: int
    voter: str
    granted: bool
    pre_vote: bool = False


@message(103)
@msg
class AppendEntries(Message):
    term: int
    leader: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    read_ctx: int = 0  # echoed back; confirms leadership for ReadIndex


@message(104)
@msg
class AppendResp(Message):
    term: int
    follower: str
    success: bool
    match_index: int  # on success: the last index known to match the leader
    hint_index: int = 0  # on reject: where the leader should look next
    hint_term: int = 0  # on reject: the term of the follower's conflicting entry
    read_ctx: int = 0


@message(105)
@msg
class InstallSnapshot(Message):
    term: int
    leader: str
    last_index: int
    last_term: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    offset: int
    data: bytes
    done: bool


@message(106)
@msg
class InstallSnapshotResp(Message):
    term: int
    follower: str
    last_index: int
    next_offset: int
    done: bool


@message(107)
@msg
class TimeoutNow(Message):
    term: int
    leader: str


@message(108)
@msg
class ConfigChange(Message):
    """Single-server membership change (Raft thesis §4.1)."""

    op: str  # "bootstrap" | "add_learner" | "promote" | "remove"
    node: str
    voters: tuple[str, ...] = ()  # the whole configuration, for "bootstrap" (entry 1, or a restatement)

    def __post_init__(self) -> None:
        if self.op not in ("bootstrap", "add_learner", "promote", "remove"):
            raise ValueError(f"unknown config change op {self.op!r}")


@message(109)
@msg
class ForwardApply(Message):
    """A follower forwards a client's command to the leader."""

    req_id: int
    origin: str
    origin_actor: str
    data: bytes


@message(110)
@msg
class ApplyResult(Message):
    """The leader's answer to ForwardApply: the entry's index once applied, or an error."""

    req_id: int
    ok: bool
    index: int
    error: str = ""
    leader: str = ""
    result: bytes = b""  # msgpack of the state machine's answer


@message(111)
@msg
class ForwardRead(Message):
    """A follower asks the leader for a ReadIndex."""

    req_id: int
    origin: str
    origin_actor: str


@message(112)
@msg
class ReadIndexResult(Message):
    req_id: int
    ok: bool
    index: int
    error: str = ""
    leader: str = ""


@message(113)
@msg
class ForwardConfigChange(Message):
    """A server asks the leader for a membership change (e.g. its own removal on leave)."""

    req_id: int
    origin: str
    origin_actor: str
    op: str
    node: str


@message(114)
@msg
class AutopilotHealthRequest(Message):
    """A follower's membership actor -> the leader's: send me your autopilot health report."""

    req_id: int
    reply_node: str
    reply_actor: str


@message(115)
@msg
class AutopilotHealthReply(Message):
    req_id: int
    ok: bool
    report: bytes = b""  # msgpack of the report (Nomad's OperatorHealthReply shape)


@message(117)
@msg
class BootstrapPeersQuery(Message):
    """A server about to bootstrap -> another's membership actor: have you Raft peers already?
    (Nomad's maybeBootstrap asks each server it found for Status.Peers first.)"""

    req_id: int
    reply_node: str
    reply_actor: str


@message(118)
@msg
class BootstrapPeersReply(Message):
    req_id: int
    server: str  # who answers (its node), so a duplicated answer counts once
    has_peers: bool


@message(116)
@msg
class ForwardTransfer(Message):
    """A follower asks the leader to hand leadership to *target* (an operator's transfer-leadership).

    Answered with an ApplyResult (index 0) once leadership has moved, or with
    the reason it could not (Nomad's Operator.TransferLeadershipToPeer,
    forwarded to the leader as every leader-only RPC is)."""

    req_id: int
    origin: str
    origin_actor: str
    target: str


@message(119)
@msg
class ServerConfigChange(Message):
    """A membership change whose servers carry their Raft ID and their address (hashicorp/raft's
    ServerID and ServerAddress, Raft protocol 3).  ConfigChange (108), which named a server by its
    address alone, is still read from logs written before it: there a server's ID is its address.

    ``op``: "bootstrap" (``voters`` with ``addresses``, one each, replacing the configuration whole:
    entry 1 of a new cluster, or a new leader's restatement of its own, see
    ``RaftCore._become_leader``), "add_learner" (``node`` at
    ``address``; for a server already in the configuration, its address is replaced, as
    hashicorp's AddVoter/AddNonvoter of a known ID does), "promote", "remove", or "address"
    (``node``, kept with its suffrage, is now at ``address``).
    """

    op: str
    node: str
    address: str = ""
    voters: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in ("bootstrap", "add_learner", "promote", "remove", "address"):
            raise ValueError(f"unknown config change op {self.op!r}")
        if self.op == "bootstrap" and len(self.addresses) != len(self.voters):
            raise ValueError("a bootstrap needs one address per voter")
        if self.op == "address" and not self.address:
            raise ValueError("an address change needs the new address")



@message(120)
@msg
class ServerConfiguration(Message):
    """The whole configuration, non-voters too, restated in one entry (hashicorp/raft's
    LogConfiguration carries every configuration whole).  A follower that appends it takes it whole,
    whatever it held before.  Written by a leader whose configuration comes from its snapshot alone
    and has non-voters (see ``RaftCore._become_leader``; without non-voters the restatement is a
    "bootstrap" change, which earlier versions read): after a peers.json recovery that snapshot
    names servers a follower's own log -- one that matches the leader's, so it needs no snapshot --
    does not.

    Each member entry is ``ID@address``, or the ID alone when it is also the address, as a
    snapshot's (``actors.raft.core.member``).
    """

    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.voters:
            raise ValueError("a configuration needs at least one voter")
        ids = []
        for entry in self.voters + self.learners:
            sid, sep, addr = entry.rpartition("@")  # as actors.raft.core.parse_member reads it
            ids.append(sid if sep and addr else entry)
        if len(set(ids)) != len(ids):
            raise ValueError("a configuration names a server twice")
