"""The Serf layer: member statuses, Lamport-clocked intents, reaping, leave and force-leave.

:class:`SerfCore` is the pure core a pool actor hosts.  It owns a
:class:`~actors.gossip.core.SwimCore` (failure detection and dissemination)
and is its delegate, as Serf is memberlist's.  On top of SWIM's alive /
suspect / dead it keeps, per member, a Serf status and the Lamport time of
that status (serf ``serf.go``):

* ``alive`` -- SWIM says alive (suspect members stay alive here: suspicion
  is SWIM's business until it ends in dead).
* ``leaving`` -- a :class:`LeaveIntent` newer than the member's status time
  arrived; when SWIM then reports it gone it becomes ``left``, not
  ``failed``.
* ``left`` -- gone gracefully (or force-left); kept as a tombstone for
  ``tombstone_timeout_s`` so push-pulls tell late members, then reaped.
* ``failed`` -- SWIM declared it dead with no leave intent; re-contacted
  every ``reconnect_interval_s`` with probability failed/alive (so a healed
  partition merges back), reaped after ``reconnect_timeout_s``.

Intents carry a Lamport time: an intent older than the member's status time
is ignored, so a stale leave cannot undo a rejoin, and a member that hears
of its own leave while alive refutes it with a newer join intent.  Intents
about members not yet known are buffered for ``recent_intent_timeout_s``
(the intent may overtake the SWIM alive).

Graceful leave (serf ``Leave``): broadcast the leave intent and wait until it
has been sent ``retransmit_limit`` times (or ``broadcast_timeout_s``), then
broadcast SWIM's dead-by-itself message and wait likewise, then keep
answering probes for ``leave_propagate_delay_s``, then stop.  Timers of this
layer: ``reap``, ``reconnect``, ``leave``, ``force:<req>``, ``prune:<name>``
(plus the SWIM core's).

Where this departs from Serf, the simulator's generated fault schedules
found views that never converged:

* both leave messages, and a force-leave, also go directly to every member
  believed alive (``SwimCore.fan_out``), so on a healthy network they are
  never lost to gossip's random choice of targets (dead ones included);
* SWIM's dead-by-itself makes an ``alive`` member ``left``, not ``failed``,
  even when its leave intent was lost;
* a join intent and a leave intent with equal Lamport times (two members'
  clocks) resolve to the join at every member, whatever the arrival order,
  and a running member refutes a leave intent about itself that ties its
  own status time;
* a buffered leave intent applied when its member appears, and a leave
  held for a member that just refuted a suspicion, are passed on, so a
  member force-left while it was unreachable hears it and refutes; so does
  a member whose push-pull peer holds a newer status time for it;
* a member erased by a prune or a reap while SWIM still saw it alive
  becomes a member again on fresh evidence that it lives (a new
  incarnation or a join intent), since SWIM will not report it joining.
"""

from __future__ import annotations

from random import Random
from typing import Any

from actors.gossip.config import GossipConfig
from actors.gossip.core import (
    CancelTimer,
    Effect,
    Emit,
    GossipInvariantError,
    NodeState,
    Reply,
    SetTimer,
    SwimCore,
)
from actors.gossip.messages import (
    LEFT,
    MAX_COUNTER,
    MAX_NAME_LEN,
    JoinIntent,
    LeaveIntent,
    MemberEvent,
    PushPullReq,
    PushPullResp,
    Tags,
    decode_tags,
    encode_tags,
)

# Serf member statuses (as /v1/agent/members reports them).
S_ALIVE = "alive"
S_LEAVING = "leaving"
S_LEFT = "left"
S_FAILED = "failed"
STATUSES = (S_ALIVE, S_LEAVING, S_LEFT, S_FAILED)

# This member's own state (serf SerfState).
RUNNING = "alive"
LEAVING = "leaving"
LEFT_STATE = "left"


class LamportClock:
    """A Lamport clock: ``time`` is the next value to stamp; ``witness`` moves past what is seen."""

    __slots__ = ("counter",)

    def __init__(self) -> None:
        self.counter = 0

    def time(self) -> int:
        return self.counter

    def increment(self) -> int:
        self.counter += 1
        return self.counter

    def witness(self, value: int) -> None:
        if value >= self.counter:
            self.counter = value + 1


class SerfMember:
    __slots__ = ("addr", "leave_time", "name", "status", "status_ltime", "tags", "vsn")

    def __init__(self, name: str, addr: str, tags: Tags, vsn: bytes) -> None:
        self.name = name
        self.addr = addr
        self.tags = tags
        self.vsn = vsn
        self.status = S_ALIVE
        self.status_ltime = 0
        self.leave_time = 0.0

    def __repr__(self) -> str:
        return f"SerfMember({self.name}@{self.addr} {self.status} lt={self.status_ltime})"

    def as_api(self) -> dict[str, Any]:
        """Nomad's /v1/agent/members shape for this member."""
        host, _, port = self.addr.rpartition(":")
        v = self.vsn
        # A port from the wire that is no ASCII number ("²" is a digit to isdigit, not to int) shows as 0.
        return {"Name": self.name, "Addr": host.strip("[]"),
                "Port": int(port) if port.isascii() and port.isdigit() else 0,
                "Tags": dict(self.tags), "Status": self.status,
                "ProtocolMin": v[0], "ProtocolMax": v[1], "ProtocolCur": v[2],
                "DelegateMin": v[3], "DelegateMax": v[4], "DelegateCur": v[5]}


def _valid_intent(name: str, ltime: int) -> bool:
    return 0 < len(name) <= MAX_NAME_LEN and 0 <= ltime < MAX_COUNTER - 1


class SerfCore:
    """One member of one gossip pool: Serf on SWIM, pure (see the module docstring)."""

    def __init__(self, name: str, addr: str, config: GossipConfig, rng: Random, *,
                 tags: Tags = (), pool: str = "gossip") -> None:
        self.name = name
        self.cfg = config
        self.rng = rng
        self.pool = pool
        self.swim = SwimCore(name, addr, config, rng, meta=encode_tags(tags), delegate=self)
        self.clock = LamportClock()
        self.members: dict[str, SerfMember] = {}
        self.failed: dict[str, None] = {}  # ordered sets of member names
        self.left: dict[str, None] = {}
        self.intents: dict[str, tuple[str, int, float]] = {}  # name -> (kind, ltime, received at)
        self.state = RUNNING
        self.leave_phase = ""  # "", "intent", "dead", "propagate"
        self.leave_req: int | None = None
        self.force_reqs: dict[int, str] = {}  # req -> member being force-left
        self.join_reqs: dict[int, None] = {}
        self.stats = dict.fromkeys(("joins", "leaves", "failures", "reaps", "updates", "intents",
                                    "bad_tags"), 0)
        self._tags: dict[bytes, Tags] = {}  # decoded meta, shared by members with equal tags

    @property
    def out(self) -> list[Effect]:
        return self.swim.out

    def take_effects(self) -> list[Effect]:
        return self.swim.take_effects()

    # ============================================================ entry points (the host calls these)
    def start(self, now: float) -> None:
        self.swim.start(now)
        self.out.append(SetTimer("reap", self.cfg.reap_interval_s))
        self.out.append(SetTimer("reconnect", self.cfg.reconnect_interval_s))

    def on_message(self, msg: Any, now: float) -> None:
        self.swim.on_message(msg, now)
        self._drain_finished(now)

    def on_timer(self, name: str, now: float) -> None:
        if self.swim.on_timer(name, now):
            pass
        elif self.state == LEFT_STATE:
            return
        elif name == "reap":
            self._reap(now)
            self.out.append(SetTimer("reap", self.cfg.reap_interval_s))
        elif name == "reconnect":
            self._reconnect(now)
            self.out.append(SetTimer("reconnect", self.cfg.reconnect_interval_s))
        elif name == "leave":
            self._leave_step(now, timed_out=True)
        elif name.startswith("force:"):
            req = int(name[6:])
            if self.force_reqs.pop(req, None) is not None:
                self._reply(req, None, "timed out broadcasting node removal")
        elif name.startswith("prune:"):
            member = self.members.get(name[6:])
            if member is not None and member.status in (S_LEAVING, S_LEFT):
                self._erase(member)
        self._drain_finished(now)

    def stream_failed(self, addr: str, now: float) -> None:
        """The stream to *addr* failed: a join waiting on it stops waiting (SwimCore.stream_failed)."""
        self.swim.stream_failed(addr, now)
        self._drain_finished(now)

    def join(self, addrs: tuple[str, ...], req: int, now: float) -> None:
        """Serf ``Join``: contact each address; answers the number contacted."""
        if self.state != RUNNING:
            self._reply(req, 0, "Serf can't Join after Leave or Shutdown")
            return
        self.join_reqs[req] = None
        self.swim.join(tuple(addrs), req, now)
        self._drain_finished(now)

    def leave(self, req: int, now: float) -> None:
        """Serf ``Leave``: answers None once the leave has propagated (or timed out)."""
        if self.state == LEFT_STATE:
            self._reply(req, None)
            return
        if self.state == LEAVING:
            self._reply(req, None, "Leave already in progress")
            return
        self.state = LEAVING
        self.leave_req = req
        ltime = self.clock.time()
        self.clock.increment()
        self._leave_intent(self.name, ltime, False, now)
        if self.has_alive_members():
            intent = LeaveIntent(name=self.name, ltime=ltime)
            self.swim.broadcast(("s", self.name), intent, notify="leave-intent")
            self.swim.fan_out(intent)
            self.leave_phase = "intent"
            self.out.append(SetTimer("leave", self.cfg.broadcast_timeout_s))
        else:
            self._leave_dead(now)
        self._drain_finished(now)

    def force_leave(self, name: str, prune: bool, req: int, now: float) -> None:
        """Serf ``RemoveFailedNode``: a failed member becomes left (and, with *prune*, is erased)."""
        ltime = self.clock.time()
        self.clock.increment()
        self._leave_intent(name, ltime, prune, now)
        if not self.has_alive_members():
            self._reply(req, None)
            return
        self.force_reqs[req] = name
        intent = LeaveIntent(name=name, ltime=ltime, prune=prune)
        self.swim.broadcast(("s", name), intent, notify=f"force:{req}")
        self.swim.fan_out(intent)  # an operator's removal should reach every live member
        self.out.append(SetTimer(f"force:{req}", self.cfg.broadcast_timeout_s))
        self._drain_finished(now)

    def set_tags(self, tags: Tags, now: float) -> None:
        self.swim.set_meta(encode_tags(tags), now)
        self._drain_finished(now)

    def tags_of(self, meta: bytes) -> Tags:
        """The tags a member's meta encodes (empty, and counted, if it is malformed)."""
        tags = self._tags.get(meta)
        if tags is None:
            try:
                tags = decode_tags(meta)
            except ValueError:
                self.stats["bad_tags"] += 1
                tags = ()
            if len(self._tags) >= 4096:
                self._tags.clear()
            self._tags[meta] = tags
        return tags

    # ============================================================ SWIM delegate
    def notify_join(self, node: NodeState, now: float) -> None:
        member = self.members.get(node.name)
        if member is None:
            member = SerfMember(node.name, node.addr, self.tags_of(node.meta), node.vsn)
            intent = self.intents.pop(node.name, None)
            if intent is not None:
                member.status_ltime = intent[1]
                if intent[0] == "leave":
                    member.status = S_LEAVING
                    # Pass it on: if the member is in fact running, it must hear
                    # this to refute it (it may have been down when it was sent).
                    self.swim.broadcast(("s", node.name), LeaveIntent(name=node.name, ltime=intent[1]))
            self.members[node.name] = member
        else:
            member.status = S_ALIVE
            member.leave_time = 0.0
            member.addr, member.tags, member.vsn = node.addr, self.tags_of(node.meta), node.vsn
            self.failed.pop(node.name, None)
            self.left.pop(node.name, None)
        self.stats["joins"] += 1
        self._emit("member-join", member)

    def notify_leave(self, node: NodeState, now: float) -> None:
        member = self.members.get(node.name)
        if member is None:
            return
        if member.status == S_LEAVING or (member.status == S_ALIVE and node.state == LEFT):
            # SWIM's dead-by-itself is a graceful leave even if the intent was lost.
            member.status = S_LEFT
            member.leave_time = now
            self.left[node.name] = None
            self.stats["leaves"] += 1
            self._emit("member-leave", member)
        elif member.status == S_ALIVE:
            member.status = S_FAILED
            member.leave_time = now
            self.failed[node.name] = None
            self.stats["failures"] += 1
            self._emit("member-failed", member)

    def notify_alive(self, node: NodeState, now: float) -> None:
        """SWIM heard news that *node* is alive with the same tags (a new incarnation)."""
        member = self.members.get(node.name)
        if member is None:
            self._rejoin(node, now)
        elif member.status == S_LEAVING and node.name != self.name:
            # It refuted a suspicion while we hold it leaving: if it is in fact
            # running (force-left while unreachable), it must hear the intent
            # to refute it; if it is leaving, it ignores its own intent.
            self.swim.broadcast(("s", node.name), LeaveIntent(name=node.name, ltime=member.status_ltime))

    def _rejoin(self, node: NodeState, now: float) -> None:
        # Serf erased the member (force-leave -prune of a live member, or a reap)
        # while SWIM kept it alive: SWIM will never report it as joining again,
        # so fresh evidence that it lives makes it a member again.
        self.notify_join(node, now)

    def notify_update(self, node: NodeState, now: float) -> None:
        member = self.members.get(node.name)
        if member is None:
            self._rejoin(node, now)
            return
        member.addr, member.tags, member.vsn = node.addr, self.tags_of(node.meta), node.vsn
        self.stats["updates"] += 1
        self._emit("member-update", member)

    def notify_msg(self, msg: JoinIntent | LeaveIntent, now: float) -> None:
        self.stats["intents"] += 1
        if type(msg) is JoinIntent:
            if self._join_intent(msg.name, msg.ltime, now):
                self.swim.broadcast(("s", msg.name), msg)
        elif self._leave_intent(msg.name, msg.ltime, msg.prune, now):
            self.swim.broadcast(("s", msg.name), msg)

    def local_state(self) -> tuple[int, tuple[tuple[str, int], ...], tuple[str, ...]]:
        return (self.clock.time(), tuple((m.name, m.status_ltime) for m in self.members.values()),
                tuple(self.left))

    def merge_remote_state(self, pp: PushPullReq | PushPullResp, now: float) -> None:
        if pp.ltime > 0:
            self.clock.witness(pp.ltime - 1)  # no message has been stamped with pp.ltime yet
        status_ltimes = dict(zip(pp.status_names, pp.status_ltimes, strict=True))
        left = dict.fromkeys(pp.left)
        me = self.members.get(self.name)
        # The peer holds a newer status for us than we do: some intent about us
        # (a force-leave while we were down, say) never reached us.  Whatever
        # it was, we are running: answer with a newer join intent.
        refute = (self.state == RUNNING and me is not None
                  and status_ltimes.get(self.name, -1) > me.status_ltime)
        # Left members first, one past their join time (the leave came after it).
        for name in left:
            if _valid_intent(name, status_ltimes.get(name, 0)):
                self._leave_intent(name, status_ltimes.get(name, 0) + 1, False, now)
        for name, ltime in status_ltimes.items():
            if name not in left and _valid_intent(name, ltime):
                self._join_intent(name, ltime, now, from_state=True)
        if refute and self.state == RUNNING:
            self._broadcast_join(self.clock.time(), now)

    def join_finished(self, req: int, contacted: int, now: float) -> None:
        asked = req in self.join_reqs
        self.join_reqs.pop(req, None)
        if asked and contacted > 0 and self.state == RUNNING:
            self._broadcast_join(self.clock.time(), now)
        self._reply(req, contacted)

    # ============================================================ intents
    def _broadcast_join(self, ltime: int, now: float) -> None:
        self.clock.witness(ltime)
        self._join_intent(self.name, ltime, now)
        self.swim.broadcast(("s", self.name), JoinIntent(name=self.name, ltime=ltime))

    def _upsert_intent(self, name: str, kind: str, ltime: int, now: float) -> bool:
        have = self.intents.get(name)
        if have is None or ltime > have[1]:
            self.intents[name] = (kind, ltime, now)
            return True
        return False

    def _join_intent(self, name: str, ltime: int, now: float, from_state: bool = False) -> bool:
        """A join intent: True if it was news (and should be passed on).

        *from_state*: it is a push-pull's status time, not a join anyone sent.  A peer's state
        carries a leaving member's time as it does an alive one's (Serf's push-pull has no leaving
        list), so one equal to our leave's is most likely that same leave: it must not undo it
        (as Serf's ``LTime <= statusLTime`` check keeps it).  Only a newer time is a join, and it
        never makes a member we erased one again (a prune while SWIM still holds it alive): that
        takes the member's own join, or SWIM's word.
        """
        self.clock.witness(ltime)
        member = self.members.get(name)
        if member is None:
            node = self.swim.nodes.get(name)
            if node is None or node.dead_or_left() or from_state:
                return self._upsert_intent(name, "join", ltime, now)
            self._rejoin(node, now)  # erased here, alive in SWIM: its join says it is back
            member = self.members[name]
        # Equal Lamport times come from two members' clocks (a force-leave racing
        # the member's own join): the join wins everywhere, whichever came first.
        if ltime < member.status_ltime or (ltime == member.status_ltime
                                           and (member.status != S_LEAVING or from_state)):
            return False
        member.status_ltime = ltime
        if member.status == S_LEAVING:
            member.status = S_ALIVE  # the leave it undoes was older
        return True

    def _leave_intent(self, name: str, ltime: int, prune: bool, now: float) -> bool:
        """A leave intent: True if it was news (and should be passed on)."""
        self.clock.witness(ltime)
        member = self.members.get(name)
        if member is None:
            return self._upsert_intent(name, "leave", ltime, now)
        if name == self.name and self.state == RUNNING:
            if ltime >= member.status_ltime:
                # We are not leaving: refute.  A tie counts too -- Lamport times
                # of two members' intents can be equal, and then every member
                # would keep whichever of the two reached it first.
                self._broadcast_join(self.clock.time(), now)
            return False
        if ltime <= member.status_ltime:
            return False
        # Record the time even when the status stays, so the same news is not passed on forever.
        member.status_ltime = ltime
        if member.status == S_ALIVE:
            member.status = S_LEAVING
        elif member.status == S_FAILED:
            member.status = S_LEFT
            self.failed.pop(name, None)
            self.left[name] = None
            self.stats["leaves"] += 1
            self._emit("member-leave", member)
        if prune:
            self._prune(member)
        return True

    def _prune(self, member: SerfMember) -> None:
        if member.status == S_LEAVING:
            # Let the member finish its own leave before erasing it.
            self.out.append(SetTimer(f"prune:{member.name}",
                                     self.cfg.broadcast_timeout_s + self.cfg.leave_propagate_delay_s))
        else:
            self._erase(member)

    def _erase(self, member: SerfMember) -> None:
        if member.name == self.name:
            return
        self.members.pop(member.name, None)
        self.failed.pop(member.name, None)
        self.left.pop(member.name, None)
        self.stats["reaps"] += 1
        self._emit("member-reap", member)

    # ============================================================ leave sequence
    def _leave_dead(self, now: float) -> None:
        self.leave_phase = "dead"
        if self.swim.leave(now):
            self.out.append(SetTimer("leave", self.cfg.broadcast_timeout_s))
        else:
            self._leave_propagate()

    def _leave_propagate(self) -> None:
        self.leave_phase = "propagate"
        self.out.append(SetTimer("leave", self.cfg.leave_propagate_delay_s))

    def _leave_step(self, now: float, timed_out: bool = False) -> None:
        phase = self.leave_phase
        if phase == "intent":
            self._leave_dead(now)
        elif phase == "dead":
            self._leave_propagate()
        elif phase == "propagate" and timed_out:
            self.leave_phase = ""
            self.state = LEFT_STATE
            self.swim.shutdown()
            self.out.append(CancelTimer("reap"))
            self.out.append(CancelTimer("reconnect"))
            req, self.leave_req = self.leave_req, None
            if req is not None:
                self._reply(req, None)

    def _drain_finished(self, now: float) -> None:
        finished = self.swim.queue.finished
        while finished:
            token = finished.pop(0)
            if token == "leave-intent" and self.leave_phase == "intent":
                self._leave_step(now)
            elif token == "leave-dead" and self.leave_phase == "dead":
                self._leave_step(now)
            elif token.startswith("force:"):
                req = int(token[6:])
                if self.force_reqs.pop(req, None) is not None:
                    self.out.append(CancelTimer(token))
                    self._reply(req, None)

    # ============================================================ reaping and reconnecting
    def _reap(self, now: float) -> None:
        members, cfg = self.members, self.cfg
        for name in [n for n in self.failed if now - members[n].leave_time > cfg.reconnect_timeout_s]:
            self._erase(members[name])
        for name in [n for n in self.left if now - members[n].leave_time > cfg.tombstone_timeout_s]:
            self._erase(members[name])
        cutoff = now - self.cfg.recent_intent_timeout_s
        for name in [n for n, (_, _, t) in self.intents.items() if t < cutoff]:
            del self.intents[name]

    def _reconnect(self, now: float) -> None:
        """Re-contact failed members: failed / alive of them, so each is tried once per interval pool-wide.

        Serf tries one member with probability failed / alive, which caps at
        one a member per interval: a lone survivor of a partition among many
        failed members would take that many intervals to find the one that
        is back.  Here the expected count is the same below one and keeps
        growing above it.
        """
        n_failed = len(self.failed)
        if n_failed == 0:
            return
        n_alive = max(1, len(self.members) - n_failed - len(self.left))
        share = n_failed / n_alive
        count = int(share) + (1 if self.rng.random() < share - int(share) else 0)
        if count == 0:
            return
        names = self.rng.sample(list(self.failed), min(count, n_failed))
        self.swim.join(tuple(self.members[name].addr for name in names), None, now)

    def seed_view(self, alives: list[Any], now: float, tags: dict[bytes, Tags] | None = None) -> None:
        """Start from a converged view (see ``SwimCore.seed_view``); call before :meth:`start`.

        *tags* may map each meta to its decoded tags, so a simulation of many
        members decodes (and stores) each member's tags once, not once per view.
        """
        self.swim.seed_view(alives, now)
        decoded = tags or {}
        for a in alives:
            if a.name != self.name and a.name not in self.members:
                t = decoded.get(a.meta)
                self.members[a.name] = SerfMember(a.name, a.addr, self.tags_of(a.meta) if t is None else t,
                                                  a.vsn)

    # ============================================================ views
    def has_alive_members(self) -> bool:
        return any(m.status == S_ALIVE and m.name != self.name for m in self.members.values())

    def _emit(self, kind: str, member: SerfMember) -> None:
        self.out.append(Emit(MemberEvent(kind=kind, pool=self.pool, name=member.name, addr=member.addr,
                                         status=member.status, tags=member.tags)))

    def _reply(self, req: int, value: Any, error: str = "") -> None:
        self.out.append(Reply(req, value, error))

    def member_events(self) -> list[MemberEvent]:
        """Every member as a ``member-update`` event with its current status (Serf's Members()), by name."""
        return [MemberEvent(kind="member-update", pool=self.pool, name=m.name, addr=m.addr, status=m.status,
                            tags=m.tags) for m in (self.members[n] for n in sorted(self.members))]

    def members_view(self) -> list[dict[str, Any]]:
        """Every member in Nomad's /v1/agent/members shape, by name."""
        return [self.members[name].as_api() for name in sorted(self.members)]

    def statuses(self) -> dict[str, str]:
        """Member name -> Serf status (for checkers and tests)."""
        return {m.name: m.status for m in self.members.values()}

    def check_invariants(self, full: bool = False) -> None:
        self.swim.check_invariants(full)
        me = self.members.get(self.name)
        if self.swim.incarnation > 0:
            if me is None:
                raise GossipInvariantError(f"{self.name}: not among its own Serf members")
            if self.state == RUNNING and me.status != S_ALIVE:
                raise GossipInvariantError(f"{self.name}: running but sees itself {me.status}")
        for names, want in ((self.failed, S_FAILED), (self.left, S_LEFT)):
            for name in names:
                status = self.members[name].status
                if status != want:
                    raise GossipInvariantError(f"{self.name}: {name} on the {want} list but {status}")
        if not full:
            return
        for m in self.members.values():
            if m.status not in STATUSES:
                raise GossipInvariantError(f"{self.name}: {m.name} has unknown status {m.status}")
            if m.status_ltime >= self.clock.time() and m.status_ltime > 0:
                raise GossipInvariantError(f"{self.name}: {m.name}'s status time {m.status_ltime} "
                                           f"not below the clock {self.clock.time()}")
            listed = (m.name in self.failed, m.name in self.left)
            if listed != (m.status == S_FAILED, m.status == S_LEFT):
                raise GossipInvariantError(f"{self.name}: {m.name} status {m.status} and lists disagree")
