"""GossipMember: the actor that hosts one member of one gossip pool.

A server runs one, ``"gossip"``: as in Nomad, a single WAN-tuned pool holds
the servers of every region, each tagged with its region (federation;
Raft stays per region in ServerMembership).  The actor is a thin
host around :class:`~actors.gossip.serf.SerfCore`: it turns timers, packets
and local requests into core calls and applies the effects the core
returns -- sends to ``(member address, this actor's name)``, timers,
:class:`MemberEvent` tells to the subscribers, and replies.

Over the network every send is ``env.send(addr, actor, msg)`` with member
addresses as node ids ("ip:port", the gossip address).  Which transport
carries a message is the host's business: treat probes and gossip as
unreliable packets; :class:`PushPullReq` / :class:`PushPullResp` are one
request/response exchange (a TCP stream in production).

Local requests (never on the wire; ``reply`` is a future from
``env.make_future()``, set when the answer is known -- the actor never
blocks):

* ``ask("members")`` -> list of dicts in Nomad's /v1/agent/members shape;
  ``ask("stats")`` -> counters; ``ask("local")`` -> this member's dict.
* :class:`Join` -> the number of addresses contacted (serf ``Join``).
* :class:`Leave` -> None once the leave has propagated (serf ``Leave``).
* :class:`ForceLeave` -> None once the removal is broadcast.
* :class:`SetTags` -> None; members see a ``member-update``.
* :class:`ListMembers` -> one ``member-update`` :class:`MemberEvent` per member
  this one knows (its current status and tags), told to the asker (Serf's
  ``Members()``: Nomad's leader reconciles Raft against all of them).
* the agent's ``actors.agent_messages.Leave`` -> ``LeaveDone`` to its ``reply_to``.
* :class:`~actors.gossip.keyring.KeyringRequest` -> the pool-wide tally of a
  keyring operation (``actors.gossip.keyring``); ``ask("keyring")`` -> this
  member's keys, primary first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.gossip.config import GossipConfig, lan_config
from actors.gossip.core import CancelTimer, Emit, Reply, Send, SetTimer
from actors.gossip.keyring import (
    KEYRING_WIRE_TYPES,
    NOT_ENABLED,
    OPS,
    KeyOp,
    KeyOpResult,
    KeyQuery,
    KeyringRequest,
    apply_op,
)
from actors.gossip.messages import WIRE_TYPES, Tags, make_tags
from actors.gossip.serf import SerfCore
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.messages import PeerLost

log = logging.getLogger("nomad.gossip")

LAN_POOL = "gossip"  # the servers' one pool (all regions), on the serf port
WAN_POOL = "gossip-wan"  # a second pool's actor name; Nomad has none, so nothing runs one


# ------------------------------------------------------------ local requests (never on the wire)
@dataclass(frozen=True, slots=True)
class Join:
    """Contact each address (a push-pull); ``reply`` gets how many answered."""

    addresses: tuple[str, ...]
    reply: Any = None


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave the pool gracefully; ``reply`` gets None when done (or an error)."""

    reply: Any = None


@dataclass(frozen=True, slots=True)
class ForceLeave:
    """Mark failed member *name* left (``prune``: erase it at once); ``reply`` gets None."""

    name: str
    prune: bool = False
    reply: Any = None


@dataclass(frozen=True, slots=True)
class SetTags:
    """Replace this member's tags (a new incarnation is gossiped)."""

    tags: Tags
    reply: Any = None


@dataclass(frozen=True, slots=True)
class ListMembers:
    """Tell (node, actor) a ``member-update`` MemberEvent for every member known now, by name."""

    node: str
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinFailed:
    """Told to ``report_to`` when the start-up join failed for good (Nomad then exits 1)."""

    pool: str
    error: str


CONNECT_FAILED = "connect failed: "  # runtime.transport's PeerLost reason for a refused connect


def join_error(addrs: tuple[str, ...], timeout_s: float, reasons: dict[str, str] | None = None) -> str:
    """Why a join reached nobody, in memberlist's words, on one line (``; `` between addresses):
    the connection's error where the transport gave one (PeerLost), else the timeout."""
    reasons = reasons or {}

    def why(addr: str) -> str:
        reason = reasons.get(addr)
        if not reason:
            return f"no answer within {timeout_s:g}s"
        if reason.startswith(CONNECT_FAILED):  # Go's dial error, as memberlist reports it
            return f"dial tcp {addr}: connect: {reason[len(CONNECT_FAILED):].lower()}"
        return reason

    return "; ".join(f"Failed to join {a}: {why(a)}" for a in addrs)


class GossipError(Exception):
    """A gossip request could not be served (leave in progress, broadcast timed out)."""


# The core's counts reported as memberlist's counters (nomad.memberlist.msg.*).
_MEMBERLIST_COUNTERS = (("alive", ("memberlist", "msg", "alive")),
                        ("suspects", ("memberlist", "msg", "suspect")),
                        ("dead", ("memberlist", "msg", "dead")))


class GossipMember(NodeActor):
    """One member of one pool (see the module docstring).

    ``member_name`` is the name other members know (Nomad: ``<node>.<region>``);
    ``advertise`` the address they reach it at (default: this node's id);
    ``subscribers`` (node, actor) pairs told every :class:`MemberEvent`;
    ``start_join`` addresses joined at start.  With ``retry_join_interval_s``
    0 (Nomad's ``start_join`` / ``-join``) a start-up join that reaches no
    address is fatal: :class:`JoinFailed` goes to ``report_to`` (the agent,
    which exits 1).  Otherwise (``retry_join``) it is retried every
    ``retry_join_interval_s`` up to ``retry_max`` more times (0: forever),
    then reported the same way.
    """

    def __init__(self, env: Env, name: str, *, member_name: str, config: GossipConfig | None = None,
                 tags: Tags | dict[str, str] = (), subscribers: tuple[tuple[str, str], ...] = (),
                 advertise: str | None = None, start_join: tuple[str, ...] = (),
                 retry_join_interval_s: float = 0.0, retry_max: int = 0,
                 report_to: str | None = None, keyring: tuple[str, ...] = (),
                 keyring_sink: Callable[[tuple[str, ...]], None] | None = None,
                 snapshot: Any = None, metrics: Any = None, metrics_interval_s: float = 1.0) -> None:
        super().__init__(env, name)
        # The agent's registry (None: the simulator, no timer for it): memberlist's msg.alive /
        # msg.suspect / msg.dead counters and its health.score gauge, taken from the core's counts
        # every metrics_interval_s (the agent's telemetry.collection_interval, 1 s) -- the core
        # stays free of the registry, and a counter's rate is the same summed per second.
        self.metrics = metrics
        self.metrics_interval_s = metrics_interval_s
        self._counted: dict[str, int] = {}
        self.cfg = config or lan_config()
        self.core = SerfCore(member_name, advertise or env.node, self.cfg, env.rng,
                             tags=make_tags(tags), pool=name)
        self.subscribers = tuple(subscribers)
        self.start_join = tuple(start_join)
        self.retry_join_interval_s = retry_join_interval_s
        self.retry_max = retry_max  # retries after the first attempt; 0: forever (Nomad retry_max)
        self.report_to = report_to
        self.join_attempts = 0
        self._replies: dict[int, Any] = {}
        self._next_req = 0
        # Join addresses watched for a lost connection (Env.watch_peer), and the last error each gave.
        self._join_watched: set[str] = set()
        self._join_errors: dict[str, str] = {}
        self._start_join_req: int | None = None
        self.bad_messages = 0
        # Gossip encryption keys, primary first (empty: encryption off).  The
        # actor decides them; keyring_sink applies each new list at the edge
        # (the transport's GossipCrypto, which persists serf.keyring).
        self.keyring = tuple(keyring)
        self.keyring_sink = keyring_sink
        self._key_queries: dict[int, KeyQuery] = {}
        # The server's serf snapshot (runtime.serf_snapshot.SerfSnapshot, an
        # edge; None: none kept): member events and the clock are recorded,
        # and at start the members it remembers are rejoined.
        self.snapshot = snapshot
        self._rejoin_req: int | None = None

    # ============================================================ lifecycle
    def on_start(self) -> None:
        self.core.start(self.env.now())
        self._start_join()
        if self.snapshot is not None:
            self._rejoin_previous()
            self.set_timer("snapshot-clock", self.cfg.snapshot_clock_interval_s)
        if self.metrics is not None:
            self.set_timer("metrics", 0.0)
        self._apply()

    def _emit_metrics(self) -> None:
        m, stats = self.metrics, self.core.swim.stats
        for stat, key in _MEMBERLIST_COUNTERS:
            delta = stats[stat] - self._counted.get(stat, 0)
            if delta:
                m.incr_counter(key, delta)
                self._counted[stat] = stats[stat]
        m.set_gauge(("memberlist", "health", "score"), self.core.swim.awareness.score)

    def _rejoin_previous(self) -> None:
        """Serf's handleRejoin: rejoin the members the snapshot remembers; its clock first."""
        snap = self.snapshot
        if snap.last_clock:
            self.core.clock.witness(snap.last_clock)
        if snap.replayed.left:
            log.info("%s: left the cluster before the restart: not rejoining previously known members"
                     " (server.rejoin_after_leave is off)", self.name)
            return
        prev = snap.previous_members(self.core.name, self.env.rng)
        if not prev:
            return
        log.info("%s: attempting re-join to previously known members: %s", self.name,
                 ", ".join(f"{n} ({a})" for n, a in prev))
        self._rejoin_req = self._track(None)
        self._join(tuple(a for _, a in prev), self._rejoin_req)

    def on_timer(self, name: str) -> None:
        if name == "retry-join":
            self._start_join()
        elif name == "snapshot-clock":
            self.snapshot.update_clock(self.core.clock.time() - 1)
            self.set_timer("snapshot-clock", self.cfg.snapshot_clock_interval_s)
        elif name.startswith("keyring:"):
            self._finish_key_query(int(name[8:]))
        elif name == "metrics":
            self._emit_metrics()
            self.set_timer("metrics", self.metrics_interval_s)
            return
        elif name == "gossip" and self.metrics is not None:
            # memberlist.gossip: one gossip round, its packets handed to the transport included.
            t0 = self.env.now()
            self.core.on_timer(name, t0)
            self._apply()
            self.metrics.add_sample(("memberlist", "gossip"), (self.env.now() - t0) * 1e3)
            return
        else:
            self.core.on_timer(name, self.env.now())
        self._apply()

    def on_stop(self) -> None:
        super().on_stop()
        if self.snapshot is not None:
            self.snapshot.update_clock(self.core.clock.time() - 1)
            self.snapshot.close()
        for req in sorted(self._replies):
            self._answer(self._replies.pop(req), None, "gossip member stopped")
        for req in sorted(self._key_queries):
            self._answer(self._key_queries.pop(req).reply, None, "gossip member stopped")

    # ============================================================ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, WIRE_TYPES):
            self.core.on_message(message, self.env.now())
        elif isinstance(message, (*KEYRING_WIRE_TYPES, KeyringRequest)):
            self._keyring_message(message)
        elif isinstance(message, str):
            return self._query(message)
        elif isinstance(message, Join):
            addrs = tuple(message.addresses)
            self._join(addrs, self._track(("join", message.reply, addrs)))
        elif isinstance(message, PeerLost):
            # A join's push-pull stream was refused or reset: that address failed now, as
            # memberlist's dial error does, instead of at join_timeout_s.
            self._join_errors[message.node] = message.reason
            self.core.stream_failed(message.node, self.env.now())
        elif isinstance(message, Leave):
            self._snapshot_leave()
            self.core.leave(self._track(message.reply), self.env.now())
        elif isinstance(message, ForceLeave):
            self.core.force_leave(message.name, message.prune, self._track(message.reply), self.env.now())
        elif isinstance(message, SetTags):
            self.core.set_tags(make_tags(message.tags), self.env.now())
            self._answer(message.reply, None, "")
        elif isinstance(message, ListMembers):
            for ev in self.core.member_events():
                self.env.send(message.node, message.actor, ev)
        elif not self._agent_leave(message):
            self.bad_messages += 1
            log.debug("%s ignored %s", self.name, type(message).__name__)
        self._apply()
        return None

    def _query(self, what: str) -> Any:
        if what == "members":
            return self.core.members_view()
        if what == "local":
            me = self.core.members.get(self.core.name)
            return me.as_api() if me is not None else None
        if what == "keyring":
            return list(self.keyring)
        if what == "stats":
            swim = self.core.swim
            return {**swim.stats, **self.core.stats, "members": len(self.core.members),
                    "swim_nodes": len(swim.nodes), "health_score": swim.awareness.score,
                    "incarnation": swim.incarnation, "queued_broadcasts": len(swim.queue),
                    "ltime": self.core.clock.time(), "state": self.core.state,
                    "bad_messages": self.bad_messages}
        self.bad_messages += 1
        return None

    def _agent_leave(self, message: Any) -> bool:
        """The agent's graceful leave (actors.agent_messages.Leave): leave, then answer LeaveDone."""
        from actors import agent_messages

        if not isinstance(message, agent_messages.Leave):
            return False
        req = self._track(("agent", message.reply_to, message.corr))
        self._snapshot_leave()
        self.core.leave(req, self.env.now())
        return True

    def _snapshot_leave(self) -> None:
        # Serf tells its snapshotter first: nothing after the leave is
        # recorded, so a restart finds no members to rejoin.
        if self.snapshot is not None:
            self.snapshot.leave()

    # ============================================================ keyring (actors.gossip.keyring)
    def _keyring_message(self, message: Any) -> None:
        if isinstance(message, KeyOp):
            error = self._apply_key_op(message.op, message.key)
            self.env.send(message.reply_addr, self.name, KeyOpResult(
                req=message.req, name=self.core.name, error=error, keys=self.keyring))
        elif isinstance(message, KeyOpResult):
            query = self._key_queries.get(message.req)
            if query is not None and query.record(message):
                self._finish_key_query(message.req)
        else:
            self._start_key_query(message)

    def _key_hint(self) -> str:
        """With encryption on, a member whose key differs drops our push-pull silently: say so."""
        if not self.keyring:
            return ""
        return " (gossip is encrypted: does that server have the same server.encrypt key?)"

    def _start_key_query(self, request: KeyringRequest) -> None:
        """Serf KeyManager: ask every alive member (this one directly); tally until all answer or time out."""
        if request.op not in OPS:
            self._answer(request.reply, None, f"unknown keyring operation {request.op!r}")
            return
        if not self.keyring:
            self._answer(request.reply, None, NOT_ENABLED)
            return
        self._next_req += 1
        req = self._next_req
        me = self.core.name
        alive = sorted((m.name, m.addr) for m in self.core.members.values()
                       if m.status == "alive" and m.name != me)
        query = self._key_queries[req] = KeyQuery(request.op, tuple(sorted([me, *(n for n, _ in alive)])),
                                                  request.reply)
        error = self._apply_key_op(request.op, request.key)  # before the sends: they go out sealed by it
        query.record(KeyOpResult(req=req, name=me, error=error, keys=self.keyring))
        for _, addr in alive:  # even if this member refused: serf asks all, each answers for itself
            self.env.send(addr, self.name, KeyOp(req=req, op=request.op, key=request.key,
                                                 reply_addr=self.core.swim.addr))
        if len(query.answers) == len(query.members):
            self._finish_key_query(req)
            return
        self.set_timer(f"keyring:{req}", self.cfg.query_timeout_s(len(query.members)))

    def _apply_key_op(self, op: str, key: str) -> str:
        """Change this member's keyring; the sink (edge) applies it before we answer success."""
        keys, error = apply_op(self.keyring, op, key)
        if error or keys == self.keyring:
            return error
        if self.keyring_sink is not None:
            try:
                self.keyring_sink(keys)
            except Exception as exc:  # e.g. the keyring file cannot be written
                log.error("%s: keyring %s failed: %s", self.name, op, exc)
                return f"Failed to {op} key: {exc}"
        self.keyring = keys
        log.info("%s: keyring %s done: %d key(s) installed", self.name, op, len(keys))
        return ""

    def _finish_key_query(self, req: int) -> None:
        query = self._key_queries.pop(req, None)
        if query is None:
            return
        self.cancel_timer(f"keyring:{req}")
        value, error = query.response()
        if error:
            detail = "; ".join(f"{n}: {m}" for n, m in sorted(value["Messages"].items()))
            error = f"{error}: {detail}" if detail else error
        self._answer(query.reply, value, error)

    # ============================================================ effects
    def _track(self, reply: Any) -> int:
        self._next_req += 1
        self._replies[self._next_req] = reply
        return self._next_req

    def _start_join(self) -> None:
        if not self.start_join or self.core.state != "alive":
            return
        self._start_join_req = self._track(None)
        self._join(self.start_join, self._start_join_req)

    def _join(self, addrs: tuple[str, ...], req: int) -> None:
        for addr in addrs:
            self._join_errors.pop(addr, None)
            if addr not in self._join_watched:
                self._join_watched.add(addr)
                self.env.watch_peer(addr, self.name)
        self.core.join(addrs, req, self.env.now())

    def _apply(self) -> None:
        core = self.core
        for eff in core.take_effects():
            kind = type(eff)
            if kind is Send:
                self.env.send(eff.to, self.name, eff.msg)
            elif kind is SetTimer:
                self.set_timer(eff.name, eff.delay_s)
            elif kind is CancelTimer:
                self.cancel_timer(eff.name)
            elif kind is Emit:
                for node, actor in self.subscribers:
                    self.env.send(node, actor, eff.event)
                if self.snapshot is not None:
                    ev = eff.event
                    self.snapshot.member_event(ev.kind, ev.name, ev.addr)
                    self.snapshot.update_clock(core.clock.time() - 1)
            elif kind is Reply:
                self._on_reply(eff)
        core.check_invariants()

    def _on_reply(self, eff: Reply) -> None:
        reply = self._replies.pop(eff.req, None)
        if eff.req == self._rejoin_req:
            self._rejoin_req = None
            if eff.value:
                log.info("%s: re-joined %d previously known member(s)", self.name, eff.value)
            else:
                log.warning("%s: failed to re-join any previously known member", self.name)
            return
        if eff.req == self._start_join_req:
            self._start_join_req = None
            self._start_join_done(eff.value or 0, eff.error)
            return
        if isinstance(reply, tuple) and reply and reply[0] == "join":
            _, reply, addrs = reply
            if eff.value == 0 and not eff.error:
                self._answer(reply, 0, join_error(addrs, self.cfg.join_timeout_s, self._join_errors)
                             + self._key_hint())
                return
        if isinstance(reply, tuple) and reply and reply[0] == "agent":
            from actors import agent_messages

            _, reply_to, corr = reply
            self.env.send(self.env.node, reply_to, agent_messages.LeaveDone(
                actor=self.name, corr=corr, ok=not eff.error, error=eff.error))
            return
        self._answer(reply, eff.value, eff.error)

    def _start_join_done(self, joined: int, error: str) -> None:
        """Nomad's ``startupJoin`` and ``retryJoiner``: log success, retry, or report a fatal failure."""
        retrying = self.retry_join_interval_s > 0
        self.join_attempts += 1
        if joined > 0:
            if retrying:
                log.info("%s: retry join completed: initial_servers=%d", self.name, joined)
            else:
                log.info("%s: join completed: synced with %d initial agents", self.name, joined)
            return
        others = tuple(a for a in self.start_join if a != self.core.swim.addr) or self.start_join
        why = error or join_error(others, self.cfg.join_timeout_s, self._join_errors) + self._key_hint()
        if not retrying:
            self._join_failed(why)
            return
        if self.retry_max > 0 and self.join_attempts > self.retry_max:
            log.warning("%s: join failed: %s", self.name, why)
            self._join_failed("max join retry exhausted, exiting")
            return
        log.warning("%s: join failed: retry=%gs error=%s", self.name, self.retry_join_interval_s,
                    why)
        self.set_timer("retry-join", self.retry_join_interval_s)

    def _join_failed(self, error: str) -> None:
        log.error("%s: %s", self.name, error)
        if self.report_to is not None:
            self.env.send(self.env.node, self.report_to, JoinFailed(pool=self.name, error=error))

    @staticmethod
    def _answer(reply: Any, value: Any, error: str) -> None:
        if reply is None:
            return
        try:
            if error:
                reply.set_exception((GossipError, GossipError(error), None))
            else:
                reply.set(value)
        except Exception:
            pass
