"""Scheduling workers on follower servers: the wire messages between them and the leader's broker.

Nomad's ``Eval.Dequeue`` / ``Plan.Submit`` / ``Eval.Ack`` / ``Eval.Nack``
reshaped as tells (DESIGN.md §2):

* :class:`WorkerReady` -- a follower's idle worker slots ask the leader's
  broker for work (the pull of Eval.Dequeue).  Sent when a slot becomes idle,
  on learning a leader, and every ``ready_refresh_s`` while idle: the broker
  forgets a slot not heard from in ``ready_ttl_s``.
* :class:`PlanBatch` -- the broker hands a slot a batch of evaluations and
  the Raft index its server must have applied before planning them (Nomad's
  ``WaitIndex``).
* :class:`PlanSubmit` -- the slot's plans, for the leader's broker to
  propose (Nomad's Plan.Submit; the broker acks the evaluations once the
  entry is applied), or :class:`BatchDone` -- nothing to submit (an ack) or
  why it could not plan (a nack: the evaluations go back to the queue,
  counted toward the delivery limit).  A batch unanswered for
  ``nack_timeout_s`` is nacked by the broker itself.

Tags 500-599 are this protocol's; ONLY APPEND.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)


@message(500)
@msg
class WorkerReady(Message):
    server: str  # the follower's address (where PlanBatch goes)
    term: int  # the Raft term the follower knows its leader in; another term's broker ignores it
    # Each idle slot and the last batch ID it got from this term's leader (0: none).  The broker takes
    # a slot as idle only if it assigned it nothing later: a refresh sent before a batch arrived is stale.
    slots: tuple[tuple[int, int], ...]
    all_types: bool  # the follower's workers schedule every evaluation type (its enabled_schedulers)

    def __post_init__(self) -> None:
        if self.term < 0 or any(s < 0 or b < 0 for s, b in self.slots):
            raise ValueError("WorkerReady: negative term, slot or batch")


@message(501)
@msg
class PlanBatch(Message):
    term: int
    slot: int
    batch: int  # rises within a term of leadership; a duplicate or older one is ignored
    eval_ids: tuple[str, ...]
    min_index: int  # plan only on a state that applied this index (Nomad's WaitIndex)
    max_place: int
    max_stop: int

    def __post_init__(self) -> None:
        if self.batch < 1 or self.slot < 0 or self.min_index < 0 or not self.eval_ids:
            raise ValueError("PlanBatch: bad batch, slot, min_index or no evaluations")


@message(502)
@msg
class PlanSubmit(Message):
    """A follower's worker planned its batch: the ``plan_apply_batch`` command for the leader's broker
    to propose (Nomad's Plan.Submit).  The broker proposes it only while the batch is still the slot's
    (Nomad checks the evaluation's token): one it already put back is dropped, so two plans of one job
    are never in flight at once.  The slot is idle again once this is sent."""

    server: str
    term: int
    slot: int
    batch: int
    data: bytes
    planned: tuple[str, ...]  # the evaluations whose plans *data* holds
    deferred: tuple[str, ...]  # left for a later entry (it was full): no delivery spent


@message(503)
@msg
class BatchDone(Message):
    """A follower's worker is done with its batch without a plan to submit: none of its evaluations
    was still pending (an ack), or it could not plan them (a nack: *error* says why)."""

    server: str
    term: int
    slot: int
    batch: int
    ok: bool
    error: str
    deferred: tuple[str, ...] = ()
