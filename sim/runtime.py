"""The simulation runtime: the same actor classes, single-threaded, seeded.

A :class:`Scheduler` owns virtual time, a heap of timed events (timers and
network deliveries) and the set of actors with mail.  Each step it either
runs one message of one ready actor — which one is drawn from the
``<seed>:sched`` RNG stream — or, when none is ready, advances virtual time
to the next event.  Actor classes are made concrete on :class:`SimActor`,
which implements pykka's three runtime hooks:

* the inbox is a deque; a put marks the actor ready;
* the future's ``get()`` from outside the simulation runs the scheduler until
  the future resolves (timeouts count virtual seconds); from inside an actor
  it raises :class:`BlockingAskInSimulation`, because an actor must never
  block on another;
* pykka's actor loop (``Actor._actor_loop``) is unrolled into turns the
  scheduler runs directly (:func:`_turn`): the first turn runs ``on_start``,
  each later one takes one message exactly as pykka's loop body does, and a
  stopped actor's remaining mail is answered one envelope a turn, as pykka's
  teardown does.  An actor never blocks, so no turn needs a stack of its own
  (a greenlet per actor cost two switches a turn, a fifth of a day's run).

Every RNG is seeded from a string (``random.Random(str)`` hashes it with
SHA-512), so ``PYTHONHASHSEED`` cannot leak into a run.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import heapq
import logging
import math
import random
import sys
from collections.abc import Callable
from typing import Any

import pykka
from pykka import ActorDeadError, ActorRegistry
from pykka._envelope import Envelope as _PykkaEnvelope  # what ActorRef.tell puts in an inbox
from pykka.messages import _ActorStop as _PykkaStop

from runtime import wire
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.messages import ChildFailed, TimerFired
from runtime.wire import builder

log = logging.getLogger(__name__)
_pykka_log = logging.getLogger("pykka")
_heappush = heapq.heappush
_heappop = heapq.heappop
_insort = bisect.insort
# Events are kept in slots of 1/_SLOTS_PER_S virtual seconds (see Scheduler);
# a power of two, so ``when * _SLOTS_PER_S`` is exact.
_SLOTS_PER_S = 16.0
_timer_fired = builder(TimerFired)
_wire_encoders = wire._ENCODERS  # wire.encode(msg) is _packb(_ENCODERS[type(msg)](msg))
_packb = wire._packb
# Stands for the TimerFired of a named timer whose turn the scheduler runs at its event.
_NAMED_TIMER_TURN = object()


def push_event(sched: Scheduler, when: float, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    """``fn(*args)`` at virtual time *when*, after every event already queued for the same instant."""
    sched._seq = seq = sched._seq + 1
    slot = int(when * _SLOTS_PER_S)
    event = (when, seq, fn, args)
    bucket = sched._buckets.get(slot)
    if bucket is None:
        sched._buckets[slot] = [event]
        _heappush(sched._slots, slot)
    elif slot != sched._cur_slot or bucket[-1] < event:
        bucket.append(event)
    else:
        _insort(bucket, event)


class BlockingAskInSimulation(RuntimeError):
    """An actor called ``ask().get()`` (or ``Future.get``) inside the simulation."""


class SimulationStuck(pykka.Timeout):
    """A future was awaited but nothing in the simulation can still resolve it."""


class _Timer:
    # No __init__ (one is made per timer set): a new one reads the class's False.
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimInbox:
    """A deque inbox; putting mail marks the owning actor ready.

    It holds pykka's envelopes (``tell`` and ``ask`` through an ActorRef) and,
    from the simulator's own hot paths (network deliveries, timers), bare
    messages: a tell has no reply address, and an envelope per message was a
    measurable part of every turn.

    It is also the actor's stopped flag, pykka's ``actor_stopped`` (an Event
    in pykka's own runtimes; see SimActor): nothing waits in the simulator,
    and the scheduler checks the flag exactly where it queues mail, so one
    object, not two and a method call, serves each delivery and timer.
    """

    __slots__ = ("_actor", "_q", "_ready", "_sched", "stopped")

    def __init__(self, sched: Scheduler) -> None:
        self._q: collections.deque[Any] = collections.deque()
        self._actor: SimActor | None = None
        self._sched = sched
        self._ready = sched._ready
        self.stopped = False

    # ------------------------------------------------------------ as actor_stopped
    def is_set(self) -> bool:
        return self.stopped

    def set(self) -> None:
        self.stopped = True

    def clear(self) -> None:
        self.stopped = False

    def put(self, envelope: Any, /) -> None:
        self._q.append(envelope)
        actor = self._actor
        if actor is not None and not actor._sim_ready:
            actor._sim_ready = True  # Scheduler._mark_ready, inlined
            self._ready.append(actor)

    def get(self) -> Any:
        return self._q.popleft()

    def empty(self) -> bool:
        return not self._q


class SimFuture(pykka.Future[Any]):
    """A future whose ``get`` drives the scheduler (from outside only)."""

    _sim: Scheduler

    def __init__(self) -> None:
        super().__init__()
        self._done = False
        self._value: Any = None
        self._exc: Any = None

    def set(self, value: Any = None) -> None:
        if self._done or self._get_hook is not None:
            raise ValueError("future already set")
        self._done, self._value = True, value

    def set_exception(self, exc_info: Any = None) -> None:
        if self._done or self._get_hook is not None:
            raise ValueError("future already set")
        self._done, self._exc = True, exc_info or sys.exc_info()

    def get(self, *, timeout: float | None = None) -> Any:
        sched = self._sim
        if sched._in_turn is not None:
            raise BlockingAskInSimulation(
                "an actor called ask().get() or Future.get() inside the simulation; "
                "actors must only tell (reply with a message to a reply-to address)"
            )
        try:
            return super().get(timeout=timeout)
        except NotImplementedError:
            pass
        deadline = None if timeout is None else sched.now + timeout
        while not self._done:
            if not sched.step(until=deadline):
                if deadline is not None and sched.now >= deadline:
                    raise pykka.Timeout(f"{timeout} virtual seconds")
                raise SimulationStuck("simulation idle: the future can never resolve")
        if self._exc is not None:
            _, value, tb = self._exc
            raise value.with_traceback(tb)
        return self._value


class SimActor(pykka.Actor):
    """pykka's runtime hooks for the simulator (mixed into a concrete class)."""

    _sim: Scheduler
    _sim_ready = False
    _sim_started = False
    _sim_running = False  # started and not stopped: a turn takes the next message
    _sim_teardown = False  # stopped: answering what is left in the inbox
    _sim_dead = False
    _sim_id = 0
    _sim_q: collections.deque[Any]
    # How a bare wire message is handled, set per concrete class (Scheduler.concrete):
    # _sim_plain -- NodeActor's _handle_receive and on_receive, so a turn
    # checks a TimerFired's generation itself and calls on_timer, or calls
    # receive; _sim_direct -- NodeActor's _handle_receive, so a turn calls
    # on_receive.  Otherwise the turn calls _handle_receive, as pykka does.
    _sim_plain = False
    _sim_direct = False

    def _create_actor_inbox(self) -> SimInbox:  # type: ignore[override]
        inbox = SimInbox(self._sim)
        self._sim_q = inbox._q
        return inbox

    @property  # type: ignore[override]
    def actor_stopped(self) -> SimInbox:
        """The stopped flag is the inbox (see SimInbox)."""
        return self.actor_inbox  # type: ignore[return-value]

    @actor_stopped.setter
    def actor_stopped(self, _event: Any) -> None:
        pass  # pykka's __init__ makes a threading.Event; the inbox serves instead

    @classmethod
    def _create_future(cls) -> pykka.Future[Any]:  # type: ignore[override]
        return cls._sim.future_cls()

    def _start_actor_loop(self) -> None:
        sched = self._sim
        if type(self).set_timer is _sim_set_timer and type(getattr(self, "env", None)) is SimEnv:
            # One dict for generations and handles (see _sim_set_timer).  A timer set in __init__
            # (the only time before this, through NodeActor.set_timer) stays armed under its
            # generation, which its TimerFired carries.
            gens = self._timer_gen
            self._timer_gen = self._timer_handles = {name: gens[name] for name in self._timer_handles}
        self._sim_id = sched._next_actor_id()
        self.actor_inbox._actor = self  # type: ignore[attr-defined]
        sched._actors[self._sim_id] = self
        sched._by_urn[self.actor_urn] = self
        sched._mark_ready(self)  # its first turn runs on_start


class SimEnv(Env):
    """One simulated node's environment."""

    def __init__(self, sched: Scheduler, node: SimNode) -> None:
        self._sched = sched
        self._node = node
        self.node = node.name
        # The node's clock, kept current by SimNode: now() and timers read it here, not on the node
        # (a client's node is otherwise cold when its heartbeat timer fires).
        self._clock_offset = node.clock_offset
        self._clock_rate = node.clock_rate
        self.rng = random.Random(f"{sched.seed}:node:{node.name}:{node.incarnation}")
        self.incarnation = node.incarnation
        self._net = sched.network
        # The network's per-sender state for this node (envelope heads by actor, link arrival times by
        # node), found at the first send: it outlives this incarnation (messages from before a restart
        # are still FIFO).
        self._heads: dict[str, bytes] | None = None
        self._last_at: dict[str, float] = {}
        # Env.watch_peer's watchers: the network tells them when that node crashes or a frame to it
        # finds it down (SimNetwork.node_crashed, _refused).

    def now(self) -> float:
        return self._clock_offset + self._clock_rate * self._sched.now

    def call_later(self, delay_s: float, ref: Any, msg: Any) -> _Timer:
        timer = _Timer()
        node = self._node
        sched = self._sched
        # A fast clock makes timers fire early in real (virtual) time.  push_event, inlined.
        when = sched.now + (delay_s if delay_s > 0.0 else 0.0) / self._clock_rate
        sched._seq = seq = sched._seq + 1
        slot = int(when * _SLOTS_PER_S)
        event = (when, seq, _fire_timer, (timer, node, self.incarnation, ref.actor_inbox, msg))
        bucket = sched._buckets.get(slot)
        if bucket is None:
            sched._buckets[slot] = [event]
            _heappush(sched._slots, slot)
        elif slot != sched._cur_slot or bucket[-1] < event:
            bucket.append(event)
        else:
            _insort(bucket, event)
        return timer

    def send(self, node: str, actor: str, msg: Any) -> None:
        src = self.node
        if node == src:
            self._node.deliver_local(actor, msg)
            return
        net = self._net
        if not net._plain:
            net.transmit(src, node, actor, msg)
            return
        # SimNetwork.transmit, inlined for a network with no fault but latency
        # and reordering (every send but a fault scenario's): a call less per
        # message, and this node's envelope heads and link arrival times at hand.
        heads = self._heads
        if heads is None:
            heads, self._last_at = net._out.get(src) or net._sender(src)
            self._heads = heads
        head = heads.get(actor)
        if head is None:
            head = heads[actor] = net._envelope_head(src, actor)
        t = type(msg)
        enc = _wire_encoders.get(t)
        if enc is None:
            enc = net._make_payload_encoder(t)
        data = head + _packb(enc(msg))
        stats = net.stats
        stats["sent"] += 1
        stats["bytes"] += len(data)
        faults = net.defaults
        rng = net.rng
        lo = faults.latency_min_s
        sched = self._sched
        arrive = sched.now + (lo + (faults.latency_max_s - lo) * rng.random())
        if not (faults.reorder and rng.random() < faults.reorder):
            last_at = self._last_at
            last = last_at.get(node, 0.0)
            if last > arrive:
                arrive = last
            last_at[node] = arrive
        # push_event(sched, arrive, net.deliver_fn, args), inlined.  The event carries the message
        # of a passthrough type (see SimNetwork._inflight): its delivery hands it over, not decoding.
        sched._seq = seq = sched._seq + 1
        slot = int(arrive * _SLOTS_PER_S)
        event = (arrive, seq, net.deliver_fn,
                 (src, node, data, actor, msg) if t in net._passthrough else (src, node, data, None, None))
        bucket = sched._buckets.get(slot)
        if bucket is None:
            sched._buckets[slot] = [event]
            _heappush(sched._slots, slot)
        elif slot != sched._cur_slot or bucket[-1] < event:
            bucket.append(event)
        else:
            _insort(bucket, event)

    def spawn(self, cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._node.spawn(cls, name, *args, **kwargs)

    def lookup(self, name: str) -> Any | None:
        return self._node.actors.get(name)

    def make_future(self) -> SimFuture:
        return self._sched.future_cls()

    def report_failure(self, actor: str, error: str) -> None:
        self._node.failures.append((actor, error))
        sup = self._node.supervisor
        if sup is not None and sup != actor:
            self._node.deliver_local(sup, ChildFailed(node=self.node, actor=actor, error=error))


def _sim_set_timer(self: Any, name: str, delay_s: float) -> int:
    """NodeActor.set_timer for the simulator: ``env.call_later`` inlined, and no cancellable handle.

    An arming's generation is its event's sequence number, unique in the
    run, and the actor's ``_timer_gen`` and ``_timer_handles`` are one dict
    (see SimActor._start_actor_loop) holding the live arming's generation
    under each armed name: NodeActor's rules hold as they are -- a timer is
    armed while its name is there (``timer_armed``), and a firing (the
    event, :func:`_fire_named_timer`, or a TimerFired in the inbox) counts
    only if its generation is the one there.  Setting a timer again replaces
    the generation; cancelling it removes the name.  One dict write per
    arming, and none to count generations; the TimerFired is built only for
    an arming that fires.
    """
    handles = self._timer_handles
    if self._timer_gen is not handles:  # not started yet, or not on a SimEnv (see SimActor._start_actor_loop)
        return NodeActor.set_timer(self, name, delay_s)  # type: ignore[no-any-return]
    env = self.env
    sched = env._sched
    # A fast clock makes timers fire early in real (virtual) time.  push_event, inlined.
    when = sched.now + (delay_s if delay_s > 0.0 else 0.0) / env._clock_rate
    sched._seq = seq = sched._seq + 1
    handles[name] = seq
    slot = int(when * _SLOTS_PER_S)
    event = (when, seq, _fire_named_timer, (self, name, seq))
    bucket = sched._buckets.get(slot)
    if bucket is None:
        sched._buckets[slot] = [event]
        _heappush(sched._slots, slot)
    elif slot != sched._cur_slot or bucket[-1] < event:
        bucket.append(event)
    else:
        _insort(bucket, event)
    return seq


def _sim_cancel_timer(self: Any, name: str) -> None:
    """NodeActor.cancel_timer for timers set by :func:`_sim_set_timer`: the name leaves the dict."""
    handles = self._timer_handles
    handle = handles.pop(name, None)
    if self._timer_gen is not handles:
        NodeActor.cancel_timer(self, name)  # an actor outside a SimEnv (its timers are NodeActor's)
        if handle is not None:
            handle.cancel()


def _fire_named_timer(actor: Any, name: str, gen: int) -> None:
    """A _sim_set_timer event: ``ref.tell(TimerFired(name, gen))`` unless the arming was cancelled
    (its generation moved on) or the actor is gone.

    Unlike :func:`_fire_timer` it need not ask whether the node crashed
    since: a crash kills every actor on the node (``Scheduler._kill``), which
    cancels each one's timers and sets its stopped flag, and a restart makes
    new actors; so an arming from before a crash fails the generation check,
    and the stopped check besides.
    """
    if actor._timer_gen.get(name) != gen:
        return
    inbox = actor.actor_inbox
    if not inbox.stopped:
        inbox._q.append(_timer_fired(name=name, generation=gen))
        if not actor._sim_ready:
            actor._sim_ready = True
            inbox._ready.append(actor)


def _fire_timer(timer: _Timer, node: SimNode, incarnation: int, inbox: SimInbox, msg: Any) -> None:
    """A timer event: ``ref.tell(msg)`` unless cancelled, the node crashed since, or the actor is gone."""
    if timer.cancelled or not node.up or node.incarnation != incarnation:
        return
    if not inbox.stopped:
        # ref.tell(msg), minus its second liveness check; SimInbox.put inlined.
        inbox._q.append(msg)
        actor = inbox._actor
        if actor is not None and not actor._sim_ready:
            actor._sim_ready = True
            inbox._ready.append(actor)


def _turn(actor: Any) -> None:
    """One turn of pykka's actor loop (``Actor._actor_loop``), unrolled.

    The first turn is ``_actor_loop_setup`` (``on_start``); each later one is
    one pass of ``_actor_loop_running``'s body on one envelope.  Once the
    actor has stopped, ``_actor_loop_teardown`` answers the envelopes still
    in its inbox, one a turn, and the actor is dead when none is left.
    """
    if not actor._sim_started:
        actor._sim_started = actor._sim_running = True
        actor._actor_loop_setup()
    elif actor._sim_teardown:
        envelope = actor.actor_inbox._q.popleft()
        if type(envelope) is _PykkaEnvelope and envelope.reply_to is not None:
            if isinstance(envelope.message, _PykkaStop):
                envelope.reply_to.set(None)
            else:
                dead = ActorDeadError(f"{actor.actor_ref} stopped before handling the message")
                envelope.reply_to.set_exception(exc_info=(ActorDeadError, dead, None))
    else:
        item = actor.actor_inbox._q.popleft()
        if type(item) is _PykkaEnvelope:
            message, reply_to = item.message, item.reply_to
        else:
            message, reply_to = item, None
        try:
            response = actor._handle_receive(message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:
                _pykka_log.info("Exception returned from %s to caller:", actor, exc_info=sys.exc_info())
                reply_to.set_exception()
            else:
                actor._handle_failure(*sys.exc_info())
                try:
                    actor.on_failure(*sys.exc_info())
                except Exception:  # pykka's loop does the same
                    actor._handle_failure(*sys.exc_info())
        except BaseException:
            # pykka stops the actor (and every other); here the run itself stops too (Ctrl-C).
            actor._stop()
            raise
    if actor.actor_stopped.is_set():
        actor._sim_teardown = True
        actor._sim_running = False
        if not actor.actor_inbox._q:
            actor._sim_dead = True


class SimNode:
    """A simulated machine: named actors, a clock, up or crashed."""

    def __init__(self, sched: Scheduler, name: str, boot: Callable[[SimEnv], None] | None) -> None:
        self.sched = sched
        self.name = name
        self.boot = boot
        self.up = True
        self.incarnation = 0
        self._clock_offset = 0.0
        self._clock_rate = 1.0
        self.actors: dict[str, Any] = {}
        self.inboxes: dict[str, SimInbox] = {}  # each of actors' inboxes: a delivery needs no ref
        self.supervisor: str | None = None
        self.failures: list[tuple[str, str]] = []
        self.dropped_local = 0
        self.env = SimEnv(sched, self)

    @property
    def clock_offset(self) -> float:
        """Local time is ``clock_offset + clock_rate * virtual time`` (the env keeps a copy)."""
        return self._clock_offset

    @clock_offset.setter
    def clock_offset(self, value: float) -> None:
        self._clock_offset = self.env._clock_offset = value

    @property
    def clock_rate(self) -> float:
        return self._clock_rate

    @clock_rate.setter
    def clock_rate(self, value: float) -> None:
        self._clock_rate = self.env._clock_rate = value

    def spawn(self, cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self.actors and self.actors[name].is_alive():
            raise ValueError(f"node {self.name} already has an actor named {name!r}")
        ref = self.sched.concrete(cls).start(self.env, name, *args, **kwargs)
        self.actors[name] = ref
        self.inboxes[name] = ref.actor_inbox
        return ref

    def deliver_local(self, actor: str, msg: Any) -> None:
        inbox = self.inboxes.get(actor)
        if inbox is None or not self.up:
            self.dropped_local += 1
            return
        if inbox.stopped:
            self.dropped_local += 1
            return
        # ref.tell(msg), minus its second liveness check; SimInbox.put inlined.
        inbox._q.append(msg)
        a = inbox._actor
        if a is not None and not a._sim_ready:
            a._sim_ready = True
            inbox._ready.append(a)

    def start(self) -> None:
        if self.boot is not None:
            self.boot(self.env)

    def crash(self) -> None:
        """Stop every actor at once: no on_stop, no flush; timers die too."""
        self.up = False
        for name in sorted(self.actors):
            self.sched._kill(self.sched.actor_of(self.actors[name]))
        self.actors.clear()
        self.inboxes.clear()
        self.sched.network.node_crashed(self.name)

    def restart(self) -> None:
        if self.up:
            self.crash()
        self.incarnation += 1
        self.up = True
        self.env = SimEnv(self.sched, self)
        self.start()


class Scheduler:
    """Virtual time, seeded choice of who runs next, and the timed events.

    An event is ``(when, seq, fn, args)``: ``fn(*args)`` runs at virtual time
    *when*, and *seq* (the order events were queued) breaks ties.  Events are
    taken in exactly that order from a two-level queue: a heap of the slots
    (``int(when * _SLOTS_PER_S)``, which orders as *when* does) that hold any,
    and per slot a list of its events.  One heap of every event made each take
    compare tuples down a dozen levels of a heap of thousands (a day of 1,000
    clients holds ~2,000: their heartbeat and refresh timers), cold in the
    cache by the time it was next touched; the slot being worked on is small
    and warm, and the heap of slots holds small ints.

    A slot's list is unsorted until the slot is taken (``_cur_slot``): an
    event is appended, and the slot is sorted once when its turn comes --
    ``list.sort`` compares (float, int) pairs in C without Python's rich
    comparison, where a heap push and pop cost a handful of tuple
    comparisons each.  The slot being taken stays sorted: an event queued
    into it (a delivery a few milliseconds away) is appended when it is the
    latest, as nearly always, or inserted in order.
    """

    def __init__(self, seed: int, *, trace: bool = True) -> None:
        from sim.network import SimNetwork  # noqa: PLC0415 - avoid an import cycle

        self.seed = seed
        self.now = 0.0
        self.rng = random.Random(f"{seed}:sched")
        self._in_turn: SimActor | None = None  # whose turn is running (a Future.get in it is refused)
        self._slots: list[int] = []  # a heap of the slots in _buckets
        self._cur_slot: int | None = None  # the slot being taken from: its list is kept sorted
        self._buckets: dict[int, list[tuple[float, int, Callable[..., None], tuple[Any, ...]]]] = {}
        self._seq = 0
        self._ready: list[SimActor] = []
        self._actors: dict[int, SimActor] = {}
        self._by_urn: dict[str, SimActor] = {}
        self._actor_ids = 0
        self._classes: dict[type, type] = {}
        self.future_cls = type("SimFuture", (SimFuture,), {"_sim": self})
        self.nodes: dict[str, SimNode] = {}
        self.steps = 0
        self.messages = 0
        self._trace = hashlib.sha256() if trace else None
        self.network = SimNetwork(self)

    # ------------------------------------------------------------ building
    def concrete(self, cls: type) -> type:
        made = self._classes.get(cls)
        if made is None:
            made = type(cls.__name__, (cls, SimActor), {"_sim": self})
            made._sim_direct = made._handle_receive is NodeActor._handle_receive
            made._sim_plain = made._sim_direct and made.on_receive is NodeActor.on_receive
            if made.set_timer is NodeActor.set_timer and made.cancel_timer is NodeActor.cancel_timer:
                made.set_timer = _sim_set_timer
                made.cancel_timer = _sim_cancel_timer
            self._classes[cls] = made
        return made

    def add_node(self, name: str, boot: Callable[[SimEnv], None] | None = None) -> SimNode:
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists")
        node = SimNode(self, name, boot)
        self.nodes[name] = node
        node.start()
        return node

    def actor_of(self, ref: Any) -> Any:
        """The actor object behind *ref* (checkers and tests inspect state directly)."""
        return self._by_urn[ref.actor_urn]

    def _next_actor_id(self) -> int:
        self._actor_ids += 1
        return self._actor_ids

    # ------------------------------------------------------------ events
    def at(self, when: float, fn: Callable[[], None]) -> None:
        push_event(self, when, fn, ())

    def at_call(self, when: float, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        """``fn(*args)`` at *when* (no closure to build: the network and timers use this)."""
        push_event(self, when, fn, args)

    def pending_events(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def _mark_ready(self, actor: SimActor) -> None:
        actor._sim_ready = True
        self._ready.append(actor)

    def record(self, *parts: Any) -> None:
        """Add one line to the trace hash (bytes are hashed as they are)."""
        if self._trace is None:
            return
        for p in parts:
            self._trace.update(p if isinstance(p, bytes) else str(p).encode())
            self._trace.update(b"\x1f")
        self._trace.update(b"\n")

    def trace_hash(self) -> str:
        return self._trace.hexdigest() if self._trace is not None else ""

    # ------------------------------------------------------------ stepping
    def step(self, until: float | None = None) -> bool:
        """Run one actor turn or one due event; False when nothing can run."""
        if self._ready:
            self._run_one()
            return True
        slots = self._slots
        if not slots:
            return False
        bucket = self._take_slot()
        when = bucket[0][0]
        if until is not None and when > until:
            self.now = max(self.now, until)
            return False
        _, _, fn, args = bucket.pop(0)
        if not bucket:
            del self._buckets[_heappop(slots)]
        if when > self.now:
            self.now = when
        fn(*args)
        self.steps += 1
        return True

    def _take_slot(self) -> list[Any]:
        """The earliest slot's events, in order (sorted, if the slot was not the one being taken)."""
        slot = self._slots[0]
        bucket = self._buckets[slot]
        if slot != self._cur_slot:
            bucket.sort()  # (when, seq) pairs are unique: the rest of each event is never compared
            self._cur_slot = slot
        return bucket

    def _run_one(self) -> None:
        ready = self._ready
        i = self.rng.randrange(len(ready)) if len(ready) > 1 else 0
        actor = ready[i]
        ready[i] = ready[-1]
        ready.pop()
        actor._sim_ready = False
        if actor._sim_dead:
            return
        self.steps += 1
        if actor._sim_started:
            if self._trace is not None:
                self._trace_turn(actor)
            self.messages += 1
        self._in_turn = actor
        try:
            _turn(actor)
        finally:
            self._in_turn = None
        if actor._sim_dead:
            self._actors.pop(actor._sim_id, None)
            self._by_urn.pop(actor.actor_urn, None)
        elif actor.actor_inbox._q and not actor._sim_ready:  # type: ignore[attr-defined]
            self._mark_ready(actor)

    def _trace_message(self, actor: SimActor, msg: Any) -> None:
        """_trace_turn for a turn on the bare message *msg*, taken from the inbox (or never put there)."""
        body = wire.encode(msg) if type(msg) in wire._FIELDS else type(msg).__name__.encode()
        self.record(repr(self.now), actor.env.node, actor.name, body)  # type: ignore[attr-defined]

    def _trace_turn(self, actor: SimActor) -> None:
        q = actor.actor_inbox._q  # type: ignore[attr-defined]
        msg = (q[0].message if type(q[0]) is _PykkaEnvelope else q[0]) if q else None
        body = wire.encode(msg) if type(msg) in wire._FIELDS else type(msg).__name__.encode()
        self.record(repr(self.now), actor.env.node, actor.name, body)  # type: ignore[attr-defined]

    def run_for(self, seconds: float) -> None:
        self.run_until_time(self.now + seconds)

    def run_until_time(self, t: float) -> None:
        # step(until=t) until it returns False, with _run_one inlined: this
        # loop is the simulator's hot path.  Counters are kept in locals and
        # stored when the loop ends.
        ready, slots, buckets, pop = self._ready, self._slots, self._buckets, heapq.heappop
        getrandbits = self.rng.getrandbits
        actors, by_urn = self._actors, self._by_urn
        trace = self._trace
        fire_timer, fire_named, timer_fired_msg = _fire_timer, _fire_named_timer, _timer_fired
        turn, named_turn = _turn, _NAMED_TIMER_TURN
        pykka_envelope, message_cls, timer_fired = _PykkaEnvelope, wire.Message, TimerFired
        net = self.network
        deliver, decode_envelope, net_cut, net_stats = net.deliver_fn, net._decode_envelope, net._cut, net.stats
        inflight_pop = net._inflight.pop
        nodes, wire_error = self.nodes, wire.WireError
        exc_info = sys.exc_info
        steps = messages = bare = 0
        delivered = 0  # added to the network's stats before any callback and when the loop ends
        # The slot being taken from (``cur``, while it holds events: nothing is
        # ever queued before now, so it stays the earliest), and whether all of
        # it is due by t (then no event's time need be compared with t).
        cur: list[Any] | None = None
        cur_due = False
        t_slot = int(t * _SLOTS_PER_S) if t < math.inf else sys.maxsize  # inf has no slot
        try:
            while True:
                if ready:
                    n = len(ready)
                    if n > 1:
                        # self.rng.randrange(n), drawn exactly as Random._randbelow draws it.
                        k = n.bit_length()
                        i = getrandbits(k)
                        while i >= n:
                            i = getrandbits(k)
                        actor = ready[i]
                        last = ready.pop()
                        if i < n - 1:
                            ready[i] = last
                    else:
                        actor = ready.pop()
                    actor._sim_ready = False
                    if actor._sim_dead:
                        continue
                    q = actor._sim_q
                    if not actor._sim_running or type(q[0]) is pykka_envelope:
                        # on_start, an envelope (ask, proxy, stop), or teardown: pykka's loop body.
                        steps += 1
                        if actor._sim_started:
                            if trace is not None:
                                self._trace_turn(actor)
                            messages += 1
                        self._in_turn = actor
                        turn(actor)
                        self._in_turn = None
                        if actor._sim_dead:
                            actors.pop(actor._sim_id, None)
                            by_urn.pop(actor.actor_urn, None)
                        elif q and not actor._sim_ready:
                            actor._sim_ready = True
                            ready.append(actor)
                        continue
                    msg = q.popleft()
                else:
                    if cur is None:
                        if not slots:
                            break
                        slot = slots[0]
                        cur = buckets[slot]
                        if slot != self._cur_slot:  # _take_slot, inlined
                            cur.sort()
                            self._cur_slot = slot
                        cur_due = slot < t_slot
                    if not cur_due and cur[0][0] > t:
                        break
                    when, _, fn, args = cur.pop(0)
                    if not cur:
                        del buckets[pop(slots)]
                        cur = None
                    if when > self.now:
                        self.now = when
                    steps += 1
                    # An event that gives mail to an actor with none, while no
                    # actor is ready, runs that actor's turn at once: it is the
                    # only one ready, which the scheduler would take next
                    # without a draw.  Otherwise the mail is queued.
                    if fn is deliver:
                        # SimNetwork._deliver(*args) and SimNode.deliver_local, inlined
                        # for a link that is not cut, to a node that is up, of a
                        # frame that decodes; anything else takes _deliver itself.
                        _, dst, data, name, msg = args
                        node = nodes.get(dst)
                        if net_cut or node is None or not node.up:
                            fn(*args)
                            continue
                        if name is not None:  # the message sent rides in the event (SimEnv.send)
                            pass
                        elif (hit := inflight_pop(data, None)) is not None:
                            name, msg = hit
                        else:
                            try:
                                _, name, msg = decode_envelope(data)
                            except wire_error:
                                fn(*args)
                                continue
                        delivered += 1
                        inbox = node.inboxes.get(name)
                        if inbox is None or inbox.stopped:
                            node.dropped_local += 1
                            continue
                        actor = inbox._actor
                        q = inbox._q
                        if actor is None or actor._sim_ready or q or not actor._sim_running:
                            q.append(msg)
                            if actor is not None and not actor._sim_ready:
                                actor._sim_ready = True
                                ready.append(actor)
                            continue
                    elif fn is fire_named:
                        # _fire_named_timer(*args), inlined (NodeActor timers are most events).
                        actor, name, gen = args
                        if actor._timer_gen.get(name) != gen:  # no node check needed: see _fire_named_timer
                            continue
                        inbox = actor.actor_inbox
                        if inbox.stopped:
                            continue
                        q = inbox._q
                        if actor._sim_ready or q or not actor._sim_running:
                            q.append(timer_fired_msg(name=name, generation=gen))
                            if not actor._sim_ready:
                                actor._sim_ready = True
                                ready.append(actor)
                            continue
                        # Its turn runs now: a plain NodeActor's is on_timer(name) (the
                        # generation was checked just above), with no TimerFired to build
                        # unless the trace records it.
                        msg = named_turn if actor._sim_plain and trace is None else \
                            timer_fired_msg(name=name, generation=gen)
                    elif fn is fire_timer:
                        # _fire_timer(*args), inlined.
                        timer, node, incarnation, inbox, msg = args
                        if timer.cancelled or not node.up or node.incarnation != incarnation:
                            continue
                        if not inbox.stopped:
                            inbox._q.append(msg)
                            actor = inbox._actor
                            if actor is not None and not actor._sim_ready:
                                actor._sim_ready = True
                                ready.append(actor)
                        continue
                    else:
                        if delivered:
                            net_stats["delivered"] += delivered
                            delivered = 0
                        fn(*args)
                        cur = None  # any callback (a fault, a test's) may have run the queue itself
                        continue
                # One turn of *actor* on the bare message *msg* (a delivery, a
                # timer, a local send): _turn inlined with the dispatch of
                # NodeActor's _handle_receive and on_receive (see SimActor).
                # It is a step and a message (counted once, in bare).
                bare += 1
                if trace is not None:
                    self._trace_message(actor, msg)
                self._in_turn = actor
                try:
                    if msg is named_turn:  # a named timer's turn, run at its event (see above)
                        actor._timer_handles.pop(name, None)
                        actor.on_timer(name)
                    elif actor._sim_plain:
                        if type(msg) is timer_fired:  # a Message: NodeActor.on_receive's first case
                            name = msg.name
                            if actor._timer_gen.get(name) != msg.generation:
                                actor.stale_timers += 1
                            else:
                                actor._timer_handles.pop(name, None)
                                actor.on_timer(name)
                        elif isinstance(msg, message_cls):
                            actor.receive(msg)
                        else:
                            actor._handle_receive(msg)
                    elif actor._sim_direct and isinstance(msg, message_cls):
                        actor.on_receive(msg)
                    else:
                        actor._handle_receive(msg)
                except Exception:
                    actor._handle_failure(*exc_info())
                    try:
                        actor.on_failure(*exc_info())
                    except Exception:  # pykka's loop does the same
                        actor._handle_failure(*exc_info())
                except BaseException:
                    # pykka stops the actor (and every other); here the run itself stops too (Ctrl-C).
                    actor._stop()
                    raise
                self._in_turn = None
                if actor.actor_inbox.stopped:  # actor_stopped.is_set(); a killed actor is stopped too
                    actor._sim_teardown = True
                    actor._sim_running = False
                    if not q:
                        actor._sim_dead = True
                    if actor._sim_dead:  # stopped with an empty inbox, or killed in its own turn (a crash)
                        actors.pop(actor._sim_id, None)
                        by_urn.pop(actor.actor_urn, None)
                        continue
                if q and not actor._sim_ready:
                    actor._sim_ready = True
                    ready.append(actor)
        finally:
            self._in_turn = None
            self.steps += steps + bare
            net_stats["delivered"] += delivered
            self.messages += messages + bare
        self.now = max(self.now, t)

    def run_until(self, cond: Callable[[], bool], timeout_s: float) -> bool:
        """Step until *cond* holds or *timeout_s* virtual seconds pass."""
        deadline = self.now + timeout_s
        while not cond():
            if not self.step(until=deadline):
                return cond()
        return True

    # ------------------------------------------------------------ teardown
    def _kill(self, actor: SimActor) -> None:
        if actor.actor_stopped.is_set():
            return
        ActorRegistry.unregister(actor.actor_ref)
        actor.actor_stopped.set()
        actor._cancel_all_timers()  # type: ignore[attr-defined]
        actor._sim_dead = True
        self._actors.pop(actor._sim_id, None)
        self._by_urn.pop(actor.actor_urn, None)

    def close(self) -> None:
        """Drop every actor (no on_stop) and unregister them from pykka."""
        for aid in sorted(self._actors):
            self._kill(self._actors[aid])
        self._actors.clear()
        self._by_urn.clear()
        self._ready.clear()
        self._slots.clear()
        self._buckets.clear()
