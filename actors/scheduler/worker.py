"""Scheduling workers on every server, as Nomad's ``worker.go`` and ``leader.go`` run them.

A mixin of :class:`~actors.scheduler.broker.EvalBroker` (one actor, ``eval-broker``, on every
server), in two roles:

* **Leader** -- the broker hands each batch to the follower's worker slot idle longest
  (one offered with :class:`WorkerReady`), else to one of its own (``leader_workers``: Nomad's
  pausableWorkers pauses 3/4 of a leader's workers, ``s.workers[:3n/4]``, to free its CPU for Raft
  and the plan applier; none when it has one).  A follower's batch (:class:`PlanBatch`) is answered
  by its plans (:class:`PlanSubmit`), which the broker proposes as its own workers' -- only while the batch is
  still that slot's, so a plan of evaluations already put back is dropped (Nomad's Plan.Submit checks
  the evaluation's token) and two plans of one job are never in flight -- or by :class:`BatchDone`
  (nothing to submit, or a nack).  Unanswered after ``nack_timeout_s``, or at once when the runtime
  reports its server's connection lost (``PeerLost``), the batch's evaluations go back to the queue,
  counted toward the delivery limit.
* **Follower** -- each of its ``num_workers`` slots offers itself to the leader's broker while idle.
  Given a batch, it waits (a :class:`~actors.raft.peer.Watch`, at most ``min_index_wait_s``: Nomad's
  raftSyncLimit) until its server has applied the batch's min index (Nomad's WaitIndex: the highest
  ModifyIndex of the job's evaluations the broker saw, and the index its last plan was applied at),
  computes the plans against its own applied state in the Watch's query (``plan_batch_command``, as
  the leader's workers do) and submits them to the leader's broker.  The state machine applies only
  what still fits (the evaluation still pending, the job's spec the one planned, each placement's
  room) and makes follow-up evaluations for the rest -- Nomad's plan applier re-checking a worker's
  plan made on a snapshot.

Leadership changes forget everything outstanding on both sides (the old leader's broker with it, as
before); replies of an earlier leadership or slot use are told apart by generation and batch IDs.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from actors.raft.peer import ShareCommit, Watch
from actors.scheduler.messages import BatchDone, PlanBatch, PlanSubmit, WorkerReady
from actors.server import RaftReply, ReplyTo
from actors.state import scheduler_config as sched_cfg
from runtime.messages import PeerLost

log = logging.getLogger("nomad.scheduler")

LOCAL = ""  # the server of a leader's own worker slot, in a slot key (server, slot)
Slot = tuple[str, int]


def leader_workers(n: int) -> int:
    """The workers a leader keeps running of its *n*: Nomad's pausableWorkers pauses ``3*n//4`` of
    them, none when ``n <= 1``."""
    return n if n <= 1 else n - 3 * n // 4


def follower_plan(state: Any, min_index: int, eval_ids: tuple[str, ...], now: float, max_place: int,
                  max_stop: int,
                  clock: Any = None) -> tuple[bytes | None, tuple[str, ...], tuple[str, ...]] | None:
    """Watch query of a follower's worker: None while this server has not applied *min_index* (the
    watch timed out first), else :func:`~actors.scheduler.broker.plan_batch_command`'s answer."""
    from actors.scheduler.broker import plan_batch_command  # (broker imports this module)

    if state.applied_index < min_index:
        return None
    return plan_batch_command(state, eval_ids, now, max_place, max_stop, clock)


@dataclass(slots=True)
class _FollowerSlot:
    last_batch: int = 0  # the last batch this term's leader gave it
    busy: bool = False
    min_index: int = 0  # its batch's wait index


class WorkerPool:
    """The worker slots of :class:`~actors.scheduler.broker.EvalBroker` (see the module docstring).

    Uses the broker's ``env``, ``name``, ``cfg``, ``raft``, ``is_leader``, ``term``, ``_wall``,
    ``send`` and timers; the leader side its ``_batches``, ``_members``, ``_retry``,
    ``_sort_planned``, ``_propose_plan`` and ``_dispatch``.
    """

    # ------------------------------------------------------------ leader side: the slots
    def _init_pool(self) -> None:
        self._idle: dict[Slot, float] = {}  # idle slot -> env time its offer lapses (inf: the leader's)
        self._assigned: dict[Slot, int] = {}  # a follower's slot -> the last batch given it
        self._batch_slot: dict[int, Slot] = {}  # an outstanding batch -> its slot
        self._commit_shared = 0  # the highest batch index Raft was asked to tell the followers at once
        self._peers_watched: set[str] = set()
        # Follower side.
        self._fslots: list[_FollowerSlot] = []
        self._fleader = ""  # the leader's address we offer our slots to ("": none, or we lead)
        self._fterm = 0
        self._fgen = 0  # bumps when the leader we follow changes: older Raft replies are dropped
        # A batch's wait index timed out: this server is catching up (a new server syncing the state),
        # so it offers no slot until it applied that index or catch_up_wait_s passed (Nomad's worker
        # waits so, slowServerSyncLimit, before dequeuing again).
        self._catching_up = False

    def _local_count(self) -> int:
        return leader_workers(self.cfg.num_workers)

    def _pool_lead(self, leader: bool) -> None:
        """Leadership changed: a new leader's own slots all idle; everything outstanding forgotten."""
        self._idle.clear()
        self._assigned.clear()
        self._batch_slot.clear()
        self._commit_shared = 0
        if leader:
            self._idle.update(((LOCAL, i), float("inf")) for i in range(self._local_count()))
            self._follow("", 0)

    def _pool_resize(self) -> None:
        """num_workers changed: the leader's own idle slots follow it; a follower offers its new ones."""
        if self.is_leader:
            n, busy = self._local_count(), set(self._batch_slot.values())
            for key in [k for k in self._idle if k[0] == LOCAL and k[1] >= n]:
                del self._idle[key]
            for i in range(n):
                if (LOCAL, i) not in self._idle and (LOCAL, i) not in busy:
                    self._idle[(LOCAL, i)] = float("inf")
        n = self.cfg.num_workers
        for i in range(n, len(self._fslots)):
            if self._fslots[i].busy:  # its batch goes back now, not at the leader's nack timeout
                self._follower_done(i, self._batch_done_msg(i, ok=False, error="worker stopped"))
        del self._fslots[n:]
        self._fslots += [_FollowerSlot() for _ in range(n - len(self._fslots))]
        self._offer()

    def _take_slot_peek(self) -> Slot | None:
        """The follower's slot idle longest whose offer has not lapsed, else the leader's own idle
        longest; None: none.  Followers first: the leader's CPU goes to Raft, the HTTP API and the
        plans' apply, which only it can do (what Nomad pauses 3/4 of its workers for)."""
        now = self.env.now()
        for key in [k for k, until in self._idle.items() if until < now]:
            del self._idle[key]  # a follower gone silent
        local = None
        for key in self._idle:
            if key[0] != LOCAL:
                return key
            local = local or key
        return local

    def _take_slot(self) -> Slot | None:
        """:meth:`_take_slot_peek`'s slot, taken off the idle list."""
        key = self._take_slot_peek()
        if key is not None:
            del self._idle[key]
        return key

    def _end_batch(self, batch: int) -> None:
        """The batch left its worker: a leader's own slot is idle again (a follower's offers itself)."""
        self._batches.pop(batch, None)
        key = self._batch_slot.pop(batch, None)
        if key is not None and key[0] == LOCAL and key[1] < self._local_count():
            self._idle[key] = float("inf")

    def _send_remote(self, key: Slot, batch: int, ids: tuple[str, ...], min_index: int) -> None:
        server, slot = key
        self._assigned[key] = batch
        if server not in self._peers_watched:
            self._peers_watched.add(server)
            self.env.watch_peer(server, self.name)
        cfg = self.cfg
        if min_index > self._commit_shared:
            # The follower plans once it knows the batch's index committed, which an idle leader would
            # tell it only with its next heartbeat (up to a Raft tick, 100 ms, later): tell it now.
            self._commit_shared = min_index
            self.send(self.env.node, self.raft, ShareCommit())
        self.send(server, self.name, PlanBatch(term=self.term, slot=slot, batch=batch, eval_ids=ids,
                                               min_index=min_index, max_place=cfg.max_placements_per_entry,
                                               max_stop=cfg.max_stops_per_entry))

    def _worker_ready(self, m: WorkerReady) -> None:
        if not self.is_leader or m.term != self.term or not m.all_types or m.server == self.env.node:
            return  # another term's, or a follower that schedules only some types (given no work here)
        until = self.env.now() + self.cfg.ready_ttl_s
        for slot, last in m.slots:
            key = (m.server, slot)
            assigned = self._assigned.get(key, 0)
            if last < assigned and self._batch_slot.get(assigned) == key:
                continue  # sent before the batch we gave it (still outstanding) arrived
            # (A follower restarted since counts from 0 again: once its batch was put back, it is idle.)
            self._idle[key] = until  # (an idle slot keeps its place in the line)
        self._dispatch()

    def _slot_back(self, m: PlanSubmit | BatchDone) -> list[Any] | None:
        """A follower's slot answered: it is idle again (after a nack, once it offers itself again); the
        batch's evaluations still in its hands, or None when the batch is no longer the slot's (put back
        already, or a duplicate)."""
        if not self.is_leader or m.term != self.term:
            return None
        key = (m.server, m.slot)
        if self._assigned.get(key) == m.batch and (isinstance(m, PlanSubmit) or m.ok):
            self._idle[key] = self.env.now() + self.cfg.ready_ttl_s
        if self._batch_slot.get(m.batch) != key:
            self._dispatch()
            return None
        return self._members(m.batch, self._batches.get(m.batch, ()))

    def _plan_submit(self, m: PlanSubmit) -> None:
        works = self._slot_back(m)
        if works is None:
            return  # Nomad's Plan.Submit: an evaluation no longer outstanding with this token is refused
        if not works:
            self._end_batch(m.batch)
            self._dispatch()
            return
        del self._batch_slot[m.batch]  # the slot is free; the batch is the broker's own until applied
        self.stats["remote_batches"] += 1
        self._propose_plan(m.batch, self._sort_planned(works, m.planned, m.deferred), m.data, m.planned)

    def _batch_done(self, m: BatchDone) -> None:
        works = self._slot_back(m)
        if works is None:
            return
        if not m.ok:
            self._end_batch(m.batch)
            for w in works:
                self._retry(w, m.error)
            self._dispatch()
            return
        self._sort_planned(works, (), m.deferred)  # none was still pending, or all were deferred
        self._end_batch(m.batch)
        self._dispatch()

    def _peer_lost(self, m: PeerLost) -> None:
        """A follower's connection ended (its process died or restarted): its batches go back now."""
        for key in [k for k in self._idle if k[0] == m.node]:
            del self._idle[key]
        if not self.is_leader:
            return
        for batch in sorted(b for b, k in self._batch_slot.items() if k[0] == m.node):
            works = self._members(batch, self._batches.get(batch, ()))
            self._end_batch(batch)
            for w in works:
                self._retry(w, f"worker's server lost: {m.reason}")
        self._dispatch()

    # ------------------------------------------------------------ follower side
    def _follow(self, leader: str, term: int) -> None:
        """The leader we offer our slots to is now *leader* at *term* ("": none, or ourselves)."""
        if (leader, term) == (self._fleader, self._fterm):
            return
        self._fleader, self._fterm = leader, term
        self._fgen += 1
        self._catching_up = False
        for i, s in enumerate(self._fslots):
            if s.busy:
                self.cancel_timer(f"fslot-{i}")
            self._fslots[i] = _FollowerSlot()
        if leader:
            self._offer()
        else:
            self.cancel_timer("offer")

    def _offer(self) -> None:
        """Offer the idle slots to the leader's broker (Eval.Dequeue's pull); again every ready_refresh_s."""
        if not self._fleader or self.is_leader:
            return
        idle = tuple((i, s.last_batch) for i, s in enumerate(self._fslots) if not s.busy)
        if idle and not self._catching_up:
            self.send(self._fleader, self.name, WorkerReady(
                server=self.env.node, term=self._fterm, slots=idle, all_types=self._types is None))
        self.set_timer("offer", self.cfg.ready_refresh_s)

    def _plan_batch(self, m: PlanBatch) -> None:
        if self.is_leader or m.term != self._fterm or not self._fleader or m.slot >= len(self._fslots):
            return  # an earlier leader's, or for a slot we no longer run: its broker gives it up
        s = self._fslots[m.slot]
        if s.busy or m.batch <= s.last_batch:
            return  # a duplicate or an older batch
        s.busy, s.last_batch, s.min_index = True, m.batch, m.min_index
        self.stats["follower_batches"] += 1
        log.debug("%s: worker %d dequeued batch %d: %d evaluation(s), wait index %d", self.env.node, m.slot,
                  m.batch, len(m.eval_ids), m.min_index)  # Nomad's worker: "dequeued evaluation"
        query = functools.partial(follower_plan, min_index=m.min_index, eval_ids=m.eval_ids, now=self._wall(),
                                  max_place=m.max_place, max_stop=m.max_stop, clock=self.env.now)
        # The evals and scheduler-configuration tables are the ones the min index moved (an evaluation's
        # ModifyIndex, or the leader's watch index on them), so the watch wakes when it is applied.
        self.send(self.env.node, self.raft, Watch(
            tables=("evals", sched_cfg.TABLE), min_index=m.min_index - 1, timeout_s=self.cfg.min_index_wait_s,
            query=query, reply=ReplyTo(self.env, self.name, ("fplan", self._fgen, (m.slot, m.batch)))))
        self.set_timer(f"fslot-{m.slot}", self.cfg.min_index_wait_s + self.cfg.step_timeout_s)

    def _follower_reply(self, m: RaftReply) -> None:
        kind, gen, (slot, batch) = m.tag
        if gen != self._fgen:
            return
        if kind == "fcatchup":
            log.info("%s: %s; offering scheduling workers again", self.env.node,
                     "caught up" if m.ok and m.value[0] >= batch else "catch-up wait over")
            self._catching_up = False
            self._offer()
            return
        if slot >= len(self._fslots):
            return
        s = self._fslots[slot]
        if not s.busy or s.last_batch != batch:
            return
        if not m.ok:
            self._follower_done(slot, self._batch_done_msg(slot, ok=False, error=m.error))
            return
        answer = m.value[1]
        if answer is None:
            log.warning("%s: timed out waiting for Raft index required by batch %d; nacking it",
                        self.env.node, batch)
            self._catch_up(s.min_index)  # (first: the nack offers the slot again unless catching up)
            self._follower_done(slot, self._batch_done_msg(
                slot, ok=False, error="timed out waiting for the Raft index required"))
            return
        data, planned, deferred = answer
        if data is None:
            self._follower_done(slot, self._batch_done_msg(slot, ok=True, deferred=deferred))
            return
        self._follower_done(slot, PlanSubmit(server=self.env.node, term=self._fterm, slot=slot, batch=batch,
                                             data=data, planned=planned, deferred=deferred))

    def _catch_up(self, index: int) -> None:
        """Offer no slot until this server applied *index*, or catch_up_wait_s passed."""
        if self._catching_up:
            return
        self._catching_up = True
        self.send(self.env.node, self.raft, Watch(
            tables=("evals", sched_cfg.TABLE), min_index=index - 1, timeout_s=self.cfg.catch_up_wait_s,
            reply=ReplyTo(self.env, self.name, ("fcatchup", self._fgen, (0, index)))))

    def _follower_timeout(self, slot: int) -> None:
        """Backstop: Raft answers every request, so a slot unanswered this long is freed and nacked."""
        if slot < len(self._fslots) and self._fslots[slot].busy:
            self._follower_done(slot, self._batch_done_msg(slot, ok=False, error="timed out"))

    def _batch_done_msg(self, slot: int, *, ok: bool, error: str = "",
                        deferred: tuple[str, ...] = ()) -> BatchDone:
        return BatchDone(server=self.env.node, term=self._fterm, slot=slot,
                         batch=self._fslots[slot].last_batch, ok=ok, error=error, deferred=deferred)

    def _follower_done(self, slot: int, answer: PlanSubmit | BatchDone) -> None:
        """The slot is idle again: its answer goes to the leader's broker, which takes the slot back."""
        self._fslots[slot].busy = False
        self.cancel_timer(f"fslot-{slot}")
        nack = isinstance(answer, BatchDone) and not answer.ok
        if nack:
            self.stats["follower_nacks"] += 1
        if self._fleader:
            self.send(self._fleader, self.name, answer)
            if nack:
                self._offer()  # after a nack the leader waits for the slot to offer itself again
