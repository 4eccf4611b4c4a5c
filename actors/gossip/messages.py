"""Gossip wire messages: SWIM (memberlist) and Serf (tags 200-249; ONLY APPEND new tags).

Three families, after memberlist's ``net.go`` and serf's ``messages.go``:

* **broadcasts** -- :class:`Alive`, :class:`Suspect`, :class:`Dead` (SWIM
  membership updates) and :class:`JoinIntent`, :class:`LeaveIntent` (Serf's
  Lamport-clocked intents).  They never travel alone: they ride in the
  ``gossip`` field of every packet (piggybacking, SWIM §4.1) up to the packet
  byte budget, and in :class:`Gossip` packets the gossip timer sends.
* **probes** -- :class:`Ping`, :class:`Ack`, :class:`Nack`,
  :class:`IndirectPing`: unreliable packets (UDP in production).
* **anti-entropy** -- :class:`PushPullReq` / :class:`PushPullResp`: a full
  state exchange, a request/response over a stream (TCP in production).

:class:`MemberEvent` is what a pool tells its subscribers (the server
membership actor, tests); it is registered so a subscriber may live on
another node.

Every field is validated on construction, which the wire codec runs on
decode: a peer that sends an empty name or oversized tags gets its packet
dropped as a ``BadField`` at the edge, never an exception in the core.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)

# Member states in a SWIM view (memberlist's NodeStateType order).
ALIVE = 0
SUSPECT = 1
DEAD = 2
LEFT = 3
STATE_NAMES = ("alive", "suspect", "dead", "left")

# Limits on what a peer may send (serf ValidateNodeNames: 128 characters;
# memberlist MetaMaxSize: 512 bytes of encoded tags).
MAX_NAME_LEN = 128
MAX_ADDR_LEN = 64
MAX_TAGS_BYTES = 512
MAX_GOSSIP_ITEMS = 255  # memberlist's compound messages hold at most 255 parts
MAX_PUSH_NODES = 1024 * 1024  # memberlist maxPushStateNodes
# Incarnations, Lamport times and sequence numbers stay far below msgpack's
# 64-bit limit, so a peer cannot push our counters past what we can send.
MAX_COUNTER = 2**62

# Protocol and delegate versions, in memberlist's order (pmin, pmax, pcur,
# dmin, dmax, dcur), as Nomad's serf reports them in /v1/agent/members;
# on the wire as 6 bytes.
VSN = (1, 5, 2, 2, 5, 4)
VSN_BYTES = bytes(VSN)

Tags = tuple[tuple[str, str], ...]

MEMBER_EVENT_KINDS = ("member-join", "member-update", "member-leave", "member-failed", "member-reap")


def _check_name(value: str, what: str) -> None:
    if not value or len(value) > MAX_NAME_LEN:
        raise ValueError(f"{what} must be 1..{MAX_NAME_LEN} characters")


def _check_addr(value: str, what: str) -> None:
    if not value or len(value) > MAX_ADDR_LEN:
        raise ValueError(f"{what} must be 1..{MAX_ADDR_LEN} characters")


def check_tags(tags: Tags) -> None:
    """Tags are sorted unique (key, value) pairs of at most MAX_TAGS_BYTES in all."""
    size = 0
    prev = None
    for pair in tags:
        if len(pair) != 2:
            raise ValueError("tags must be (key, value) pairs")
        key = pair[0]
        if prev is not None and key <= prev:
            raise ValueError("tags must be sorted by key with no duplicate key")
        prev = key
        size += len(key) + len(pair[1]) + 2
    if size > MAX_TAGS_BYTES:
        raise ValueError(f"tags take {size} bytes, over the {MAX_TAGS_BYTES}-byte limit")


def make_tags(mapping: dict[str, str] | Tags) -> Tags:
    """Tags from a dict (or pairs): sorted by key, values as strings."""
    items = mapping.items() if isinstance(mapping, dict) else mapping
    tags = tuple(sorted((str(k), str(v)) for k, v in items))
    check_tags(tags)
    return tags


def encode_tags(tags: Tags) -> bytes:
    """Tags as memberlist node meta: msgpack of the flat list [k1, v1, k2, v2, ...]."""
    return msgpack.packb([x for pair in tags for x in pair], use_bin_type=True)


def decode_tags(meta: bytes) -> Tags:
    """The tags in *meta*; ValueError if it is not what :func:`encode_tags` makes."""
    if not meta:
        return ()
    try:
        flat = msgpack.unpackb(meta, raw=False)
    except Exception as exc:
        raise ValueError(f"malformed tags: {type(exc).__name__}") from None
    if type(flat) is not list or len(flat) % 2 or not all(type(x) is str for x in flat):
        raise ValueError("malformed tags: expected a flat list of key, value strings")
    tags = tuple(zip(flat[0::2], flat[1::2], strict=True))
    check_tags(tags)
    return tags


def _check_meta(meta: bytes, what: str) -> None:
    if len(meta) > MAX_TAGS_BYTES:
        raise ValueError(f"{what} is {len(meta)} bytes, over the {MAX_TAGS_BYTES}-byte limit")


def _check_vsn(vsn: bytes, what: str) -> None:
    if len(vsn) != 6 or not 0 < vsn[0] <= vsn[1]:
        raise ValueError(f"{what} must be (pmin, pmax, pcur, dmin, dmax, dcur) with 0 < pmin <= pmax")


def valid_member(name: str, addr: str, incarnation: int, state: int, meta: bytes, vsn: bytes) -> bool:
    """Whether one push-pull row holds what an :class:`Alive` would accept."""
    return (0 < len(name) <= MAX_NAME_LEN and 0 < len(addr) <= MAX_ADDR_LEN and 0 <= incarnation < MAX_COUNTER
            and state in (ALIVE, SUSPECT, DEAD, LEFT) and len(meta) <= MAX_TAGS_BYTES
            and len(vsn) == 6 and 0 < vsn[0] <= vsn[1])


def _check_counter(value: int, what: str) -> None:
    if not 0 <= value < MAX_COUNTER:
        raise ValueError(f"{what} must be within [0, 2**62)")


def _check_gossip(gossip: tuple[Message, ...]) -> None:
    if len(gossip) > MAX_GOSSIP_ITEMS:
        raise ValueError(f"at most {MAX_GOSSIP_ITEMS} piggybacked messages")


# ---------------------------------------------------------------- broadcasts


@message(200)
@msg
class Alive(Message):
    """Member *name* at *addr* is alive at *incarnation*, with tags encoded in *meta*.

    ``meta`` is opaque to SWIM (memberlist node meta, at most 512 bytes);
    the Serf layer keeps its tags there (:func:`encode_tags`).
    """

    name: str
    addr: str
    incarnation: int
    meta: bytes = b""
    vsn: bytes = VSN_BYTES

    def __post_init__(self) -> None:
        _check_name(self.name, "Alive.name")
        _check_addr(self.addr, "Alive.addr")
        _check_counter(self.incarnation, "Alive.incarnation")
        _check_meta(self.meta, "Alive.meta")
        _check_vsn(self.vsn, "Alive.vsn")


@message(201)
@msg
class Suspect(Message):
    """*sender* suspects *name* (at *incarnation*) has failed."""

    name: str
    incarnation: int
    sender: str

    def __post_init__(self) -> None:
        _check_name(self.name, "Suspect.name")
        _check_name(self.sender, "Suspect.sender")
        _check_counter(self.incarnation, "Suspect.incarnation")


@message(202)
@msg
class Dead(Message):
    """*name* is dead at *incarnation*; when ``sender == name`` it left gracefully."""

    name: str
    incarnation: int
    sender: str

    def __post_init__(self) -> None:
        _check_name(self.name, "Dead.name")
        _check_name(self.sender, "Dead.sender")
        _check_counter(self.incarnation, "Dead.incarnation")


@message(203)
@msg
class JoinIntent(Message):
    """Serf: *name* joined at Lamport time *ltime* (refutes older leave intents)."""

    name: str
    ltime: int

    def __post_init__(self) -> None:
        _check_name(self.name, "JoinIntent.name")
        _check_counter(self.ltime, "JoinIntent.ltime")


@message(204)
@msg
class LeaveIntent(Message):
    """Serf: *name* leaves (or is force-left) at Lamport time *ltime*; ``prune`` erases it."""

    name: str
    ltime: int
    prune: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, "LeaveIntent.name")
        _check_counter(self.ltime, "LeaveIntent.ltime")


BROADCAST_TYPES = (Alive, Suspect, Dead, JoinIntent, LeaveIntent)


# ---------------------------------------------------------------- probes


@message(205)
@msg
class Ping(Message):
    """Probe *target*; the answer is an :class:`Ack` with the same seq to ``src_addr``."""

    seq: int
    target: str
    src_name: str
    src_addr: str
    gossip: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.target, "Ping.target")
        _check_name(self.src_name, "Ping.src_name")
        _check_addr(self.src_addr, "Ping.src_addr")
        _check_gossip(self.gossip)


@message(206)
@msg
class Ack(Message):
    seq: int
    gossip: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        _check_gossip(self.gossip)


@message(207)
@msg
class Nack(Message):
    """A relay of an indirect probe heard nothing from the target within the probe timeout."""

    seq: int
    gossip: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        _check_gossip(self.gossip)


@message(208)
@msg
class IndirectPing(Message):
    """Ask the receiver to probe *target* at *target_addr* on behalf of ``src``."""

    seq: int
    target: str
    target_addr: str
    src_name: str
    src_addr: str
    nack: bool = True
    gossip: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.target, "IndirectPing.target")
        _check_addr(self.target_addr, "IndirectPing.target_addr")
        _check_name(self.src_name, "IndirectPing.src_name")
        _check_addr(self.src_addr, "IndirectPing.src_addr")
        _check_gossip(self.gossip)


@message(209)
@msg
class Gossip(Message):
    """A packet of broadcasts sent by the gossip timer."""

    src_name: str
    gossip: tuple[Message, ...]

    def __post_init__(self) -> None:
        _check_name(self.src_name, "Gossip.src_name")
        _check_gossip(self.gossip)


# ---------------------------------------------------------------- anti-entropy


@msg
class _PushPullFields:
    """Fields shared by the request and the response (memberlist pushPull + serf messagePushPull).

    The member states are columns (one tuple per field, index i describes
    member i), which keeps a thousand-member exchange cheap to encode and
    decode; ``states`` holds ALIVE / SUSPECT / DEAD / LEFT.
    """

    seq: int
    src_name: str
    src_addr: str
    join: bool
    names: tuple[str, ...]
    addrs: tuple[str, ...]
    incarnations: tuple[int, ...]
    states: tuple[int, ...]
    metas: tuple[bytes, ...]
    vsns: tuple[bytes, ...]
    ltime: int = 0  # serf member clock
    status_names: tuple[str, ...] = ()  # serf: members and the Lamport time of their status
    status_ltimes: tuple[int, ...] = ()
    left: tuple[str, ...] = ()  # serf: members that left (their status time is the join's)

    def __post_init__(self) -> None:
        _check_name(self.src_name, "PushPull.src_name")
        _check_addr(self.src_addr, "PushPull.src_addr")
        n = len(self.names)
        if n > MAX_PUSH_NODES or len(self.status_names) > MAX_PUSH_NODES:
            raise ValueError("push-pull state too large")
        if not (len(self.addrs) == len(self.incarnations) == len(self.states) == len(self.metas)
                == len(self.vsns) == n):
            raise ValueError("push-pull member columns differ in length")
        if len(self.status_ltimes) != len(self.status_names):
            raise ValueError("push-pull status columns differ in length")
        _check_counter(self.ltime, "PushPull.ltime")

    def rows(self) -> zip:  # type: ignore[type-arg]
        """(name, addr, incarnation, state, meta, vsn) per member; each row is checked when used."""
        return zip(self.names, self.addrs, self.incarnations, self.states, self.metas, self.vsns, strict=True)


@message(210)
@msg
class PushPullReq(_PushPullFields, Message):
    """Full state of the sender; the receiver answers :class:`PushPullResp` with its own."""


@message(211)
@msg
class PushPullResp(_PushPullFields, Message):
    """The answer to a :class:`PushPullReq` with the same ``seq``."""


# ---------------------------------------------------------------- events


@message(212)
@msg
class MemberEvent(Message):
    """Told to each subscriber when a member joins, updates, leaves, fails or is reaped.

    ``kind`` is one of ``MEMBER_EVENT_KINDS`` (Serf's EventMember* names);
    ``pool`` the name of the pool actor ("gossip" LAN, "gossip-wan");
    ``status`` the member's Serf status after the event.
    """

    kind: str
    pool: str
    name: str
    addr: str
    status: str
    tags: Tags = ()

    def __post_init__(self) -> None:
        if self.kind not in MEMBER_EVENT_KINDS:
            raise ValueError(f"MemberEvent.kind {self.kind!r} is not one of {MEMBER_EVENT_KINDS}")
        _check_name(self.name, "MemberEvent.name")

    def tags_dict(self) -> dict[str, str]:
        return dict(self.tags)


PROBE_TYPES = (Ping, Ack, Nack, IndirectPing, Gossip)
PUSH_PULL_TYPES = (PushPullReq, PushPullResp)
WIRE_TYPES = PROBE_TYPES + PUSH_PULL_TYPES
