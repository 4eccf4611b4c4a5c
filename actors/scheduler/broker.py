"""EvalBroker: the leader's evaluation queue and every server's scheduling workers, as one actor.

Nomad's ``eval_broker.go`` + ``worker.go`` + ``plan_apply.go``, reshaped for
actors that never block:

* Evaluations live in the replicated state (``evals`` table), created by the
  same Raft command that made them necessary (a job registered, a node went
  down, a drain, a failed allocation) -- so a new leader finds every pending
  one there and nothing is lost in a failover (Nomad restores its broker
  from the state store the same way).
* On the leader the broker parks a blocking query (:class:`Watch`) on the
  ``evals`` table; when it fires it reads the pending evaluations and queues
  those it does not already hold, highest priority first, then oldest.
* Every server runs ``num_workers`` workers (slots in this actor,
  :mod:`actors.scheduler.worker`): a follower's offer themselves to the
  leader's broker, which hands them batches first; the leader keeps a quarter
  of its own (Nomad pauses the rest to free its CPU).  A batch is up to
  ``max_plans_per_entry`` evaluations, never two of one job (Nomad's per-job
  serialization), so a job's plans see each other's results.  A leader's
  worker makes a :class:`Read` of the leader's applied state whose query *is*
  the scheduler -- it returns the plans, each computed seeing the room the
  ones before it took, as one Raft command -- then proposes it; a follower's
  runs the same query on its own state once it applied the job's wait index,
  and submits the command to the leader's broker, which proposes it.  A
  worker that could start waits until its oldest evaluation is
  ``plan_linger_s`` old, so a stream of registrations shares plan entries.
  The state machine applies only what still fits, so workers of different
  jobs racing for one node cannot over-commit it; it creates a follow-up
  evaluation for refused placements.
* A worker whose Raft step failed (leadership lost, a timeout), or a
  follower's that nacked, went silent for ``nack_timeout_s`` or whose
  connection was lost, puts the evaluation back; after ``delivery_limit``
  failures it is marked failed (Nomad's delivery limit of 3).
"""

from __future__ import annotations

import functools
import heapq
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from actors.agent_messages import ConfigReloaded
from actors.raft.peer import InfoQuery, Propose, Read, Watch
from actors.scheduler.dryrun import count_preemptions, desired_updates
from actors.scheduler.messages import BatchDone, PlanBatch, PlanSubmit, WorkerReady
from actors.scheduler.scheduler import compute_plan, plan_usage
from actors.scheduler.worker import LOCAL, WorkerPool
from actors.server import RAFT, LeadershipChanged, RaftInfo, RaftReply, ReplyTo, leader_metrics
from actors.state import deployments
from actors.state import scheduler_config as sched_cfg
from actors.state.namespaces import key_of
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.messages import PeerLost

log = logging.getLogger("nomad.scheduler")

BROKER = "eval-broker"
_SERVICE = ("service", "default", "")  # the EvalInfo of an evaluation the broker has none for
SCHEDULER_TYPES = ("service", "batch", "system", "sysbatch", "_core")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    # Workers scheduling at once.  Nomad defaults num_schedulers to the CPU
    # count; the work here is one Read + one Propose per worker's batch.
    num_workers: int = 2
    # Nomad's eval delivery limit: an evaluation whose scheduling failed this
    # many times is marked failed instead of retried forever.
    delivery_limit: int = 3
    # The blocking query on the evals table is renewed at least this often;
    # also the backstop poll should a wake-up be missed.
    watch_timeout_s: float = 5.0
    # A worker step (Read or Propose) unanswered this long is failed and the
    # evaluation put back (Raft answers every request; this is a backstop).
    step_timeout_s: float = 30.0
    # A failed evaluation's follow-up runs this long after (Nomad waits
    # failedEvalFollowUpBaseLineWait, 1 min, plus jitter), so a job whose
    # scheduling kept failing is looked at again without hammering a sick cluster.
    failed_follow_up_s: float = 60.0
    # Evaluations planned together by one worker: their plans are computed in
    # one Read (each seeing the ones before it) and committed as one Raft
    # entry.  A plan of a small job is ~0.5 KB and ~0.1 ms of the leader's
    # Raft actor on 1,000 nodes, so 16 keep the entry small and the actor's
    # turn under ~2 ms; one entry per evaluation cost a Raft write (and an
    # fsync on every server) per registration.
    max_plans_per_entry: int = 16
    # Placements one plan entry may hold, over all its plans: a Raft entry travels whole in one frame,
    # bounded by runtime.wire.DEFAULT_MAX_FRAME_BYTES (4 MiB), and a placement with its metrics is
    # ~0.6-1 KB of it, so a 6,000-count job's plan no longer fitted and never committed.  2,000 keep an
    # entry near 2 MB at most; a job with more to place gets them over follow-up evaluations
    # (``queued-allocs``, its NextEval), each seeing the room the ones before took.
    max_placements_per_entry: int = 2000
    # Stops with no replacement (a stopped or purged job, a count dropped, a group removed) one plan
    # entry may hold, over all its plans: a stop is ~110 bytes of the entry, so 10,000 keep it near
    # 1 MB; the rest are stopped over follow-up evaluations the same way.
    max_stops_per_entry: int = 10_000
    # A worker that could start waits until the oldest queued evaluation is
    # this old, so evaluations arriving together (a stream of registrations)
    # share one plan entry instead of each taking its own write; it delays a
    # placement by at most this much.  0: plan at once.  Side effect: an idle
    # leader's followers learn a commit with its next AppendEntries, which
    # used to be the plan written right after a registration; now it may
    # come this much later, so a blocking query on a follower sees a lone
    # registration later too (nomad-bench api blocking_wake_ms: 4.8-6.1 ms
    # before, 10-17.6 ms with 10 ms; 1.7-2.4 ms with 0, at the cost of one
    # plan entry per registration when they come one at a time).
    plan_linger_s: float = 0.01
    # With a metrics registry: how often the nomad.broker.* and nomad.plan.queue_depth gauges are
    # set (Nomad's EvalBroker and PlanQueue EmitStats: every second, on every server).
    stats_interval_s: float = 1.0
    # With a metrics registry: how often the leader counts the jobs by status, every job's summary
    # and the blocked evaluations (nomad.job_status.*, nomad.job_summary.*, nomad.blocked_evals.*):
    # Nomad's publishJobSummaryMetrics runs every telemetry.collection_interval (1 s), which the
    # agent passes here.  Each is one Read of the leader's state, O(jobs + allocations).
    leader_stats_interval_s: float = 1.0
    # telemetry.disable_dispatched_job_summary_metrics: no job_summary gauges for dispatched children.
    skip_dispatched_summaries: bool = False
    # How often the leader's nomad.job_summary.* gauges are counted and set (the others above keep
    # leader_stats_interval_s).  Nomad keeps job summaries counted in its state and sets them every
    # collection interval; here they are counted from every allocation and evaluation, O(jobs +
    # allocations) on the Raft actor -- ~60 ms for 10,000 jobs, which every second showed in the
    # registrations' p99.  5 s is half the in-memory sink's 10 s interval, so /v1/metrics shows them
    # in every interval, and a Prometheus scrape (15 s and more) sees them fresh.
    job_summary_interval_s: float = 5.0
    # With a metrics registry: evaluations whose enqueue time is kept at once for
    # nomad.broker.wait_time / response_time; past it a newly queued one is not timed.  Nomad keeps
    # the first 10,000: a bound on memory while a backlog builds.
    max_timed_evals: int = 10_000
    # A batch handed to a follower's worker and neither acked nor nacked this long goes back to the
    # queue, counted toward the delivery limit: its server died, restarted or went silent without the
    # runtime reporting its connection lost (a partition).  Nomad's EvalNackTimeout, 60 s.
    nack_timeout_s: float = 60.0
    # A follower's worker waits at most this long for its server to apply a batch's min index (Nomad's
    # raftSyncLimit, 5 s), then nacks it: a server that far behind is catching up, not scheduling.
    min_index_wait_s: float = 5.0
    # A follower whose batch's wait index timed out offers no worker slot until its server applied that
    # index, or this long: it is catching up (a new server syncing the state), and every batch given it
    # would be nacked and spend a delivery.  Nomad's slowServerSyncLimit, 10 x raftSyncLimit.
    catch_up_wait_s: float = 50.0
    # A follower's idle worker slots offer themselves to the leader's broker this often (and at once
    # when one becomes idle or a leader is learnt): the refresh covers an offer lost on the way or made
    # before the new leader's broker started.  Nomad's workers renew their Eval.Dequeue every 0.5 s.
    ready_refresh_s: float = 1.0
    # The leader forgets a follower's idle slot not offered again for this long, so a follower gone
    # silent is given no batch (that batch would wait nack_timeout_s); three refreshes can be lost.
    ready_ttl_s: float = 3.0
    # Jobs whose wait index the leader keeps before forgetting those idle for two sweeps (~20 s): a
    # bound on memory with many jobs; a dict entry each.
    max_job_floors: int = 10_000
    # The evaluation types this server's workers schedule (the agent's server.enabled_schedulers, with
    # _core always added, as Nomad does); an evaluation of another type waits for a leader that has it.
    schedulers: tuple[str, ...] = SCHEDULER_TYPES

    def __post_init__(self) -> None:
        if min(self.stats_interval_s, self.leader_stats_interval_s, self.job_summary_interval_s) <= 0:
            raise ValueError("stats_interval_s, leader_stats_interval_s and job_summary_interval_s "
                             "must be > 0")
        if self.num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        if self.delivery_limit < 1:
            raise ValueError("delivery_limit must be >= 1")
        if self.max_timed_evals < 0 or self.max_job_floors < 0:
            raise ValueError("max_timed_evals and max_job_floors must be >= 0")
        if self.max_plans_per_entry < 1:
            raise ValueError("max_plans_per_entry must be >= 1")
        if self.max_placements_per_entry < 1 or self.max_stops_per_entry < 1:
            raise ValueError("max_placements_per_entry and max_stops_per_entry must be >= 1")
        if self.plan_linger_s < 0:
            raise ValueError("plan_linger_s must be >= 0")
        if self.ready_ttl_s <= self.ready_refresh_s:
            raise ValueError("ready_ttl_s must be greater than ready_refresh_s")
        for name in ("watch_timeout_s", "step_timeout_s", "failed_follow_up_s", "nack_timeout_s",
                     "min_index_wait_s", "catch_up_wait_s", "ready_refresh_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


def enabled_schedulers(names: tuple[str, ...]) -> tuple[str, ...]:
    """``server.enabled_schedulers`` as Nomad's convertServerConfig makes it: empty is every type; else
    those named, with the core scheduler (``_core``: the garbage collections) always added."""
    if not names:
        return SCHEDULER_TYPES
    wanted = {*names, "_core"}
    return tuple(t for t in SCHEDULER_TYPES if t in wanted) + tuple(sorted(wanted - set(SCHEDULER_TYPES)))


def num_workers_for(num_schedulers: int | None) -> int:
    """``server.num_schedulers``, whose default is the CPU count (Nomad: runtime.NumCPU()).

    Read from the host once, at configuration time, never in protocol logic.
    """
    return max(1, num_schedulers if num_schedulers is not None else (os.cpu_count() or 1))


def pending_evals(state: Any, now: float | None = None, since: int = 0,
                  types: tuple[str, ...] | None = None) -> list[tuple[int, int, str, str]]:
    """Read query: (-priority, create index, eval ID, job ID) of every pending evaluation.

    With *now*, evaluations whose ``WaitUntil`` is later are left out (a
    failed evaluation's follow-up waits before it runs).  With *since*, only
    those that became pending after that Raft index: the cost is then what
    is new, not the whole backlog (which a burst of registrations makes
    thousands long, each wake-up of the broker's watch re-reading it).
    """
    evs = state.evals_pending_since(since) if since > 0 else state.evals_with_status("pending")
    return [(-ev.get("Priority", 50), ev["CreateIndex"], ev["ID"], key_of(ev))
            for ev in evs if (now is None or ev.get("WaitUntil", 0.0) <= now)
            and (types is None or ev.get("Type", "service") in types)]


# An evaluation's (scheduler type, namespace, TriggeredBy): the broker metrics' labels.
EvalInfo = tuple[str, str, str]


def broker_view(state: Any, now: float | None = None, since: int = 0, types: tuple[str, ...] | None = None,
                with_types: bool = False,
                ) -> tuple[list[tuple[int, int, str, str]], float | None, dict[str, EvalInfo],
                           dict[str, int]] | None:
    """Read query: (:func:`pending_evals`, the earliest ``WaitUntil`` still to come of those it read, or
    None, -- *with_types* -- each of those evaluations' (scheduler type, namespace, TriggeredBy),
    for the metrics, and each one's ModifyIndex: a worker on a follower plans it only once its
    server applied that far), or None while the scheduler configuration pauses the broker."""
    if sched_cfg.current(state.tables).get("PauseEvalBroker"):
        return None
    pending = pending_evals(state, now, since, types)
    evs = state.evals_pending_since(since) if since > 0 else state.evals_with_status("pending")
    waits = [w for ev in evs if (w := ev.get("WaitUntil", 0.0)) and now is not None and w > now]
    info = {ev["ID"]: (ev.get("Type", "service"), ev.get("Namespace", "default"), ev.get("TriggeredBy", ""))
            for ev in evs} if with_types else {}
    return pending, min(waits, default=None), info, {ev["ID"]: ev.get("ModifyIndex", 0) for ev in evs}


def plan_batch_command(state: Any, eval_ids: tuple[str, ...], now: float, max_place: int | None = None,
                       max_stop: int | None = None,
                       clock: Any = None) -> tuple[bytes | None, tuple[str, ...], tuple[str, ...]]:
    """Read query run by Raft on the leader: the plans of *eval_ids* as one ``plan_apply_batch`` command.

    The plans are computed one after another against the same state, each
    seeing the capacity the ones before it took (plan_apply applies them in
    that order).  *max_place* bounds the placements of all the plans together
    (each gets what the ones before left; one that could not place all it
    wants is followed by another evaluation); *max_stop* the stops of jobs
    stopped the same way.  Evaluations after either is used up are not
    planned now.  Returns the command (None when none is still
    pending), the IDs of the evaluations it plans and of those left for a
    later entry.  *clock* (the runtime's ``env.now``) times each placement (its AllocationTime).
    """
    usage = plan_usage(state.node_allocs, state.node_usage, state.node_capacity)
    plans, planned = [], []
    left, left_stop = max_place, max_stop
    for n, eval_id in enumerate(eval_ids):
        if (left is not None and left <= 0) or (left_stop is not None and left_stop <= 0):
            return (command("plan_apply_batch", plans=plans, now=now) if plans else None), \
                tuple(planned), eval_ids[n:]
        ev = state.tables["evals"].get(eval_id)
        if ev is None or ev["Status"] != "pending":
            continue  # another worker or an earlier leader finished it
        plans.append(_annotated_plan(state, ev, usage=usage, feasible=state.feasibility,
                                     deployment=deployments.latest(state, key_of(ev)), now=now,
                                     ready_by_dc=state.ready_nodes_by_dc, max_place=left,
                                     max_stop=left_stop, clock=clock))
        planned.append(eval_id)
        if left is not None:
            left -= len(plans[-1]["Place"])
        if left_stop is not None:
            left_stop -= len(plans[-1]["Stop"])
    if not plans:
        return None, (), ()
    return command("plan_apply_batch", plans=plans, now=now), tuple(planned), ()


def plan_command(state: Any, eval_id: str, now: float) -> tuple[bytes | None, dict[str, int]]:
    """Read query run by Raft on the leader: the evaluation's plan as a ``plan_apply`` command.

    None when the evaluation is no longer pending (another worker or an
    earlier leader finished it).  The plan is encoded here, inside the
    query, so no reference to the live state leaves the Raft actor.
    """
    ev = state.tables["evals"].get(eval_id)
    if ev is None or ev["Status"] != "pending":
        return None, {}
    plan = _annotated_plan(state, ev, feasible=state.feasibility,
                           deployment=deployments.latest(state, key_of(ev)), now=now,
                           ready_by_dc=state.ready_nodes_by_dc)
    return command("plan_apply", plan=plan, now=now), {"place": len(plan["Place"]), "stop": len(plan["Stop"])}


def _annotated_plan(state: Any, ev: dict[str, Any], **options: Any) -> dict[str, Any]:
    """The plan of evaluation *ev* (compute_plan with *options*) with Nomad's plan annotations: each task
    group's DesiredTGUpdates, which the evaluation keeps (``PlanAnnotations``, "nomad eval status")."""
    job_allocs = state.job_allocs(key_of(ev))
    failed_canaries: dict[str, int] = {}
    failed_updates: dict[str, list[str]] = {}
    plan = compute_plan(state.tables, ev, job_allocs, state.node_allocs, state.sorted_ids("nodes"),
                        state.node_usage, failed_canaries=failed_canaries, failed_updates=failed_updates,
                        **options)
    updates = desired_updates(state.tables["jobs"].get(key_of(ev)), job_allocs, plan, failed_canaries,
                              failed_updates)
    count_preemptions(plan, updates)
    plan["Annotations"] = {"DesiredTGUpdates": updates}
    return plan


@dataclass(slots=True)
class _Work:
    eval_id: str
    job_id: str
    attempts: int = 0
    started: float = 0.0
    stage: str = ""
    batch: int = 0  # the worker's batch it is planned in
    begun: float = 0.0  # env time its worker took it (Nomad's invoke_scheduler runs from here)
    kind: str = "service"  # its scheduler type (the evaluation's Type)
    item: tuple[int, int, str, str] | None = None  # its place in the queue, should it go back there
    labels: tuple[tuple[str, str], ...] | None = None  # its broker timers' labels, once known (_labels)


@dataclass(frozen=True, slots=True)
class SetWorkerPool:
    """``PUT /v1/agent/schedulers/config`` (Nomad's SetSchedulerWorkerConfig): this server's worker count
    and the evaluation types they schedule, from now on (until the next reload of the agent's config).
    Answers the pool now in force: ``(num_workers, schedulers)``."""

    num_workers: int
    schedulers: tuple[str, ...]


class EvalBroker(WorkerPool, NodeActor):
    def __init__(self, env: Env, name: str, *, config: BrokerConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None, metrics: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or BrokerConfig()
        # None: every type (the default); else the evaluation types this server schedules.
        self._types = None if set(SCHEDULER_TYPES) <= set(self.cfg.schedulers) else self.cfg.schedulers
        self.metrics = metrics  # the agent's registry; None (simulations): no gauges, no timer for them
        self.raft = raft
        self._wall = wall_clock or env.now
        self.is_leader = False
        self.term = 0
        self._gen = 0  # bumps on every leadership change; stale replies are dropped
        self._summaries_at = float("-inf")  # when the leader last counted the job summaries
        self._queue: list[tuple[int, int, str, str]] = []
        self._queued: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._running: dict[str, _Work] = {}  # eval ID -> work
        self._jobs_running: set[str] = set()
        self._batches: dict[int, tuple[str, ...]] = {}  # a worker's batch -> its evaluation IDs
        # A job's wait index (Nomad's getWaitIndex): the highest ModifyIndex of its evaluations read, and
        # the index its last plan entry was applied at.  A follower's worker plans only on a state that
        # far, so it sees what the job's previous plan did.
        self._job_floor: dict[str, int] = {}
        # The evals table's index at this leader's first read: plans an earlier leader's workers had
        # applied are in it, which no job floor of ours records.
        self._lead_floor = 0
        self._floor_seen = (0, 0)  # the watch index at the last two sweeps (_prune_floors)
        self._next_batch = 0
        self._queued_since = 0.0  # env time the oldest evaluation waiting to start was queued
        self._seen_index = 0
        self._full_at = float("-inf")  # env time of the last full read of the pending evaluations
        # The earliest WaitUntil (wall time) of an evaluation seen waiting: a one-off read is made
        # then, so a follow-up (a reschedule's, a failed evaluation's) runs on time, not at the next
        # full read up to watch_timeout_s later (Nomad's delay heap).
        self._wake_at: float | None = None
        self._watching = False
        self.paused = False  # the scheduler configuration's PauseEvalBroker, as last read
        self._worker_started: list[float] = []  # wall time each worker slot started (Nomad's WorkerInfo)
        # With metrics: each evaluation queued or running's EvalInfo and the env time it was queued
        # (both pruned every stats interval), and the scheduler types seen since taking the lead
        # (Nomad's ByScheduler).
        self._info_of: dict[str, EvalInfo] = {}
        self._enqueued_at: dict[str, float] = {}
        self._kinds_seen: set[str] = set()
        self.stats = {"scheduled": 0, "placed": 0, "stopped": 0, "refused": 0, "failed": 0, "retries": 0,
                      "plan_entries": 0, "deferred": 0, "remote_batches": 0, "follower_batches": 0,
                      "follower_nacks": 0}
        self._init_pool()

    def on_start(self) -> None:
        self._resize(self.cfg.num_workers)
        self._pool_resize()
        log.info("starting scheduling worker(s): num_workers=%d schedulers=[%s]", self.cfg.num_workers,
                 " ".join(self.cfg.schedulers))
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
        if self.metrics is not None:
            self.set_timer("stats", 0.0)
            self.set_timer("leader_stats", 0.0)

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            self._lead(message.is_leader, message.term)
            if isinstance(message, RaftInfo):
                self._follow("" if message.is_leader else message.leader, message.term)
        elif isinstance(message, RaftReply):
            self._reply(message)
        elif isinstance(message, WorkerReady):
            self._worker_ready(message)
        elif isinstance(message, PlanBatch):
            self._plan_batch(message)
        elif isinstance(message, PlanSubmit):
            self._plan_submit(message)
        elif isinstance(message, BatchDone):
            self._batch_done(message)
        elif isinstance(message, PeerLost):
            self._peer_lost(message)
        elif isinstance(message, ConfigReloaded):
            n = num_workers_for(message.config.server.num_schedulers)
            if n != self.cfg.num_workers:
                log.info("reloaded scheduling workers: num_workers=%d", n)
                self.cfg = replace(self.cfg, num_workers=n)
                self._resize(n)
                self._pool_resize()
                self._dispatch()
        elif isinstance(message, SetWorkerPool):
            log.info("scheduling workers set: num_workers=%d schedulers=[%s]", message.num_workers,
                     " ".join(message.schedulers))
            self.cfg = replace(self.cfg, num_workers=message.num_workers, schedulers=message.schedulers)
            self._types = None if set(SCHEDULER_TYPES) <= set(self.cfg.schedulers) else self.cfg.schedulers
            self._resize(message.num_workers)
            self._pool_resize()
            self._dispatch()
            return self.cfg.num_workers, self.cfg.schedulers
        elif message == "status":
            local = sum(1 for k in self._batch_slot.values() if k[0] == LOCAL)
            return {"leader": self.is_leader, "paused": self.paused, "queued": len(self._queue),
                    "running": len(self._running),
                    # This server's own workers: busy ones, and those paused while it leads (Nomad's
                    # pausableWorkers); batches_out counts a leader's batches on followers' workers too.
                    "batches": local if self.is_leader else sum(s.busy for s in self._fslots),
                    "paused_workers": self.cfg.num_workers - self._local_count() if self.is_leader else 0,
                    "batches_out": len(self._batches), "workers": self.cfg.num_workers,
                    "remote": tuple(sorted({k[0] for k in self._batch_slot.values() if k[0] != LOCAL})),
                    "schedulers": self.cfg.schedulers, "worker_started": tuple(self._worker_started),
                    **self.stats}
        return None

    def _resize(self, n: int) -> None:
        """Worker slots kept keep their start time; new ones start now."""
        del self._worker_started[n:]
        self._worker_started += [self._wall()] * (n - len(self._worker_started))

    def broker_stats(self) -> dict[str, int]:
        """Nomad's BrokerStats totals: evaluations ready to schedule, being scheduled, and pending
        (queued behind another evaluation of the same job).  All zero off the leader (disabled)."""
        running_jobs = self._jobs_running
        pending = sum(1 for item in self._queue if item[3] in running_jobs)
        return {"total_ready": len(self._queue) - pending, "total_unacked": len(self._running),
                "total_pending": pending}

    def on_timer(self, name: str) -> None:
        if name == "stats":
            self._emit_stats()
            self.set_timer("stats", self.cfg.stats_interval_s)
        elif name == "leader_stats":
            if self.is_leader:  # Nomad's publishJobStatusMetrics and publishJobSummaryMetrics
                reply = ReplyTo(self.env, self.name, ("leader_stats", self._gen, ""))
                now = self.env.now()
                summaries = now - self._summaries_at >= self.cfg.job_summary_interval_s
                if summaries:
                    self._summaries_at = now
                query = functools.partial(leader_metrics.leader_stats, now=self._wall(), summaries=summaries,
                                          skip_dispatched=self.cfg.skip_dispatched_summaries)
                self.send(self.env.node, self.raft, Read(query=query, reply=reply, stale=True))
            else:
                leader_metrics.publish_follower(self.metrics)
            self.set_timer("leader_stats", self.cfg.leader_stats_interval_s)
        elif name == "linger":
            self._dispatch()
        elif name == "offer":
            self._offer()
        elif name.startswith("fslot-"):
            self._follower_timeout(int(name[6:]))
        elif name == "due":
            self._read_due()
        elif name == "sweep" and self.is_leader:
            now = self.env.now()
            nack_s, step_s = self.cfg.nack_timeout_s, self.cfg.step_timeout_s
            for w in [w for w in self._running.values()
                      if now - w.started > (nack_s if w.stage == "remote" else step_s)]:
                self._retry(w, "timed out")
            for batch in [b for b, ids in self._batches.items() if not self._members(b, ids)]:
                self._end_batch(batch)  # every member was retried: the worker is free
            self._prune_floors()
            self._dispatch()
            self.set_timer("sweep", self.cfg.step_timeout_s / 3)

    def _lead(self, leader: bool, term: int) -> None:
        if leader == self.is_leader and term == self.term:
            return
        self.is_leader, self.term = leader, term
        self._gen += 1
        self._queue.clear()
        self._queued.clear()
        self._running.clear()
        self._jobs_running.clear()
        self._batches.clear()
        self._info_of.clear()
        self._enqueued_at.clear()
        self._kinds_seen.clear()  # Nomad's flush makes a new ByScheduler
        self.cancel_timer("linger")
        self.cancel_timer("due")
        self._wake_at = None
        self._attempts.clear()
        self._job_floor.clear()
        self._lead_floor = 0
        self._watching = False
        self.paused = False
        self._pool_lead(leader)
        if leader:
            log.info("%s: eval broker enabled; %d scheduling worker(s) for [%s]", self.env.node,
                     self.cfg.num_workers, " ".join(self.cfg.schedulers))
            self._seen_index = 0
            self._full_at = float("-inf")
            # Batch IDs rise across this actor's restarts within a term too (from the clock, in µs), so
            # a follower's worker, which drops a batch no later than its last, takes this one's.
            self._next_batch = max(self._next_batch, int(self.env.now() * 1e6))
            self._watch()
            self.set_timer("sweep", self.cfg.step_timeout_s / 3)
        else:
            self.cancel_timer("sweep")

    # ------------------------------------------------------------ queue
    def _watch(self) -> None:
        if self._watching or not self.is_leader:
            return
        self._watching = True
        # The watch asks only for what became pending since the index it last
        # saw; a full read of every pending evaluation happens on taking the
        # lead and then at least every watch_timeout_s, which picks up a
        # follow-up whose wait has passed (the incremental read skipped it
        # while it waited) and anything a lost worker reply left behind.
        now = self.env.now()
        full = self._seen_index == 0 or now - self._full_at >= self.cfg.watch_timeout_s
        if full:
            self._full_at = now
        reply = ReplyTo(self.env, self.name, ("watch", self._gen, ""))
        query = functools.partial(broker_view, now=self._wall(), since=0 if full else self._seen_index,
                                  types=self._types, with_types=self.metrics is not None)
        self.send(self.env.node, self.raft, Watch(tables=("evals", sched_cfg.TABLE),
                                                  min_index=self._seen_index, reply=reply,
                                                  timeout_s=self.cfg.watch_timeout_s, query=query))

    def _prune_floors(self) -> None:
        """Forget the wait index of jobs idle since two sweeps ago, once there are many: every follower
        applied that far long since (one that lags that much nacks at min_index_wait_s), and a new
        evaluation of the job has a later ModifyIndex of its own."""
        old, self._floor_seen = self._floor_seen, (self._floor_seen[1], self._seen_index)
        if len(self._job_floor) > self.cfg.max_job_floors:
            busy = self._jobs_running | {item[3] for item in self._queue}
            self._job_floor = {j: i for j, i in self._job_floor.items() if j in busy or i > old[0]}

    def _wake_for(self, wait_until: float | None) -> None:
        """Read the pending evaluations again at *wait_until* (wall time) if that is the earliest yet."""
        if wait_until is None or (self._wake_at is not None and self._wake_at <= wait_until):
            return
        self._wake_at = wait_until
        self.set_timer("due", max(0.0, wait_until - self._wall()))

    def _read_due(self) -> None:
        self._wake_at = None
        if not self.is_leader or self.paused:
            return
        reply = ReplyTo(self.env, self.name, ("due", self._gen, ""))
        query = functools.partial(broker_view, now=self._wall(), types=self._types,
                                  with_types=self.metrics is not None)
        self.send(self.env.node, self.raft, Read(query=query, reply=reply))

    def _pause(self) -> None:
        """PauseEvalBroker: hand out nothing more (Nomad disables its broker, flushing what it held);
        the queued evaluations stay pending in the state, read again on resuming."""
        if not self.paused:
            log.info("%s: eval broker paused by the scheduler configuration", self.env.node)
        self.paused = True
        self._queue.clear()
        self._queued.clear()
        self.cancel_timer("linger")

    def _enqueue(self, pending: list[tuple[int, int, str, str]], mods: dict[str, int] | None = None) -> None:
        now, timed, enqueued_at = self.env.now(), self.metrics is not None, self._enqueued_at
        if mods:
            floor = self._job_floor
            for item in pending:
                index = mods.get(item[2], 0)
                if index > floor.get(item[3], 0):
                    floor[item[3]] = index
        if not self._queue:
            self._queued_since = now
        for item in pending:
            eval_id = item[2]
            if eval_id in self._queued or eval_id in self._running:
                continue
            heapq.heappush(self._queue, item)
            self._queued.add(eval_id)
            if timed and eval_id not in enqueued_at and len(enqueued_at) < self.cfg.max_timed_evals:
                enqueued_at[eval_id] = now
        self._dispatch()

    def _dispatch(self) -> None:
        if not self.is_leader or self.paused or not self._queue or not self._idle:
            return
        wait = self._queued_since + self.cfg.plan_linger_s - self.env.now()
        if wait > 0 and len(self._queue) < self.cfg.max_plans_per_entry:
            if not self.timer_armed("linger"):
                self.set_timer("linger", wait)  # more may arrive to share the plan entry
            return
        while self._queue and self._idle:
            if not self._start_batch():
                break

    def _start_batch(self) -> bool:
        """Start a worker on up to max_plans_per_entry queued evaluations, one per job; False: none could.

        The worker is a follower's slot idle longest, given the batch to plan on its own state, else
        one of the leader's own, which plans in a Read of the leader's state (WorkerPool)."""
        if self._take_slot_peek() is None:
            return False
        taken: list[_Work] = []
        skipped: list[tuple[int, int, str, str]] = []
        self._next_batch += 1
        batch = self._next_batch
        while self._queue and len(taken) < self.cfg.max_plans_per_entry:
            item = heapq.heappop(self._queue)
            if item[3] in self._jobs_running:
                skipped.append(item)  # one evaluation per job at a time
                continue
            self._queued.discard(item[2])
            now = self.env.now()
            w = _Work(eval_id=item[2], job_id=item[3], attempts=self._attempts.get(item[2], 0),
                      started=now, stage="plan", batch=batch, item=item, begun=now,
                      kind=self._info_of.get(item[2], _SERVICE)[0])
            self._running[w.eval_id] = w
            self._jobs_running.add(w.job_id)
            self._kinds_seen.add(w.kind)
            if self.metrics is not None:
                self._dequeued(w)
            taken.append(w)
        for item in skipped:
            heapq.heappush(self._queue, item)
        if not taken:
            return False
        ids = tuple(w.eval_id for w in taken)
        self._batches[batch] = ids
        key = self._take_slot()
        assert key is not None  # _take_slot_peek found one, and nothing since could take it
        self._batch_slot[batch] = key
        if key[0] != LOCAL:
            for w in taken:
                w.stage = "remote"
            floor = self._job_floor
            wait_index = max(self._lead_floor, *(floor.get(w.job_id, 0) for w in taken))
            self._send_remote(key, batch, ids, wait_index)
            return True
        query = functools.partial(plan_batch_command, eval_ids=ids, now=self._wall(),
                                  max_place=self.cfg.max_placements_per_entry,
                                  max_stop=self.cfg.max_stops_per_entry, clock=self.env.now)
        # The leader's own applied state, not a linearizable read: the
        # evaluations were found in that state, and the state machine
        # re-checks each plan when it applies it (evaluation still pending,
        # every placement still fits), as Nomad's plan applier does for its
        # workers' snapshots.  A read index cost a heartbeat round to the
        # followers per evaluation.
        self.send(self.env.node, self.raft, Read(query=query, stale=True, reply=ReplyTo(
            self.env, self.name, ("plan", self._gen, batch))))
        return True

    # ------------------------------------------------------------ metrics
    def _note_kinds(self, info: dict[str, EvalInfo]) -> None:
        if info:
            self._info_of.update(info)

    def _labels(self, w: _Work) -> tuple[tuple[str, str], ...]:
        """Nomad's broker timer labels: the job (a child's parent), namespace, type and trigger; kept
        on the work once its evaluation's details are known (its wait, process and response timers
        share them)."""
        if w.labels is not None:
            return w.labels
        info = self._info_of.get(w.eval_id)
        _, namespace, trigger = _SERVICE if info is None else info
        labels = (("job", leader_metrics.parent_id(w.job_id)), ("namespace", namespace),
                  ("eval_type", w.kind), ("triggered_by", trigger))
        if info is not None:
            w.labels = labels
        return labels

    def _dequeued(self, w: _Work) -> None:
        """nomad.broker.wait_time: from being queued until a worker took it."""
        at = self._enqueued_at.get(w.eval_id)
        if at is not None:
            self.metrics.add_sample(("nomad", "broker", "wait_time"), (w.begun - at) * 1e3, self._labels(w))

    def _acked(self, w: _Work) -> None:
        """nomad.broker.process_time and response_time: its worker finished with it (ack or nack)."""
        at = self._enqueued_at.pop(w.eval_id, None)
        if at is None:
            return
        now, labels = self.env.now(), self._labels(w)
        self.metrics.add_sample(("nomad", "broker", "process_time"), (now - w.begun) * 1e3, labels)
        self.metrics.add_sample(("nomad", "broker", "response_time"), (now - at) * 1e3, labels)

    def _emit_stats(self) -> None:
        """Nomad's EvalBroker.EmitStats (totals, and ready / unacked per scheduler type seen) and
        PlanQueue.EmitStats (plan.queue_depth: plans proposed and not yet applied)."""
        m = self.metrics
        for key, value in self.broker_stats().items():
            m.set_gauge(("nomad", "broker", key), value)
        info_of, running_jobs = self._info_of, self._jobs_running
        ready: dict[str, int] = dict.fromkeys(self._kinds_seen, 0)
        unacked = dict(ready)
        for item in self._queue:
            if item[3] not in running_jobs:
                kind = info_of.get(item[2], _SERVICE)[0]
                ready[kind] = ready.get(kind, 0) + 1
        depth = 0
        for w in self._running.values():
            unacked[w.kind] = unacked.get(w.kind, 0) + 1
            depth += w.stage == "apply"
        self._kinds_seen.update(ready, unacked)
        for kind in sorted(self._kinds_seen):
            m.set_gauge(("nomad", "broker", kind, "ready"), ready.get(kind, 0))
            m.set_gauge(("nomad", "broker", kind, "unacked"), unacked.get(kind, 0))
        m.set_gauge(("nomad", "plan", "queue_depth"), depth)
        held = len(self._queued) + len(self._running)
        if len(info_of) > held:  # prune what left the broker
            self._info_of = {e: i for e, i in info_of.items() if e in self._queued or e in self._running}
        if len(self._enqueued_at) > held:
            self._enqueued_at = {e: t for e, t in self._enqueued_at.items()
                                 if e in self._queued or e in self._running}

    def _measure(self, works: list[_Work], *, submitted: bool) -> None:
        """A batch's plans were applied: Nomad's worker and plan timers, one sample per evaluation.

        A worker here computes its evaluations' plans in one Read and submits them as one Raft
        entry, so a plan's submission, its wait in the queue and its Raft apply are one step:
        worker.submit_plan, plan.submit and plan.apply each time that step (the proposal until its
        entry was applied); worker.invoke_scheduler.<type> times the evaluation from the worker
        taking it until then, as Nomad's spans the scheduler's Process with its plan submitted.
        """
        m = self.metrics
        if m is None or not works:
            return
        now = self.env.now()
        for w in works:
            self._acked(w)
            if submitted:
                ms = (now - w.started) * 1e3
                m.add_sample(("nomad", "worker", "submit_plan"), ms)
                m.add_sample(("nomad", "plan", "submit"), ms)
                m.add_sample(("nomad", "plan", "apply"), ms)
            m.add_sample(("nomad", "worker", "invoke_scheduler", w.kind), (now - w.begun) * 1e3)

    def _members(self, batch: int, ids: tuple[str, ...]) -> list[_Work]:
        """The batch's evaluations still in its worker's hands (a timed-out one was put back)."""
        return [w for e in ids if (w := self._running.get(e)) is not None and w.batch == batch]

    def _done(self, w: _Work) -> None:
        self._running.pop(w.eval_id, None)
        self._jobs_running.discard(w.job_id)
        self._attempts.pop(w.eval_id, None)
        self._dispatch()

    def _sort_planned(self, works: list[_Work], planned: tuple[str, ...],
                      deferred: tuple[str, ...]) -> list[_Work]:
        """A batch's plans were computed: those deferred (the entry was full) are queued again, no
        attempt spent; those no longer pending are done; the planned ones are returned."""
        for w in works:
            if w.eval_id in deferred:
                self.stats["deferred"] += 1
                self._running.pop(w.eval_id, None)
                self._jobs_running.discard(w.job_id)
                self._enqueue([w.item or (-50, 0, w.eval_id, w.job_id)])
            elif w.eval_id not in planned:
                self._done(w)  # no longer pending
        return [w for w in works if w.eval_id in planned]

    def _propose_plan(self, batch: int, works: list[_Work], data: bytes, planned: tuple[str, ...]) -> None:
        """Propose a batch's plan entry (its own worker's or a follower's); answered as ``apply``."""
        for w in works:
            w.stage, w.started = "apply", self.env.now()
        self.stats["scheduled"] += len(planned)
        self.stats["plan_entries"] += 1
        self.send(self.env.node, self.raft, Propose(data=data, reply=ReplyTo(
            self.env, self.name, ("apply", self._gen, batch))))

    def _retry(self, w: _Work, why: str) -> None:
        if self.metrics is not None:
            self._acked(w)  # Nomad's nack is timed as its ack is; a retry is queued (and timed) anew
        self._running.pop(w.eval_id, None)
        self._jobs_running.discard(w.job_id)
        attempts = w.attempts + 1
        if attempts >= self.cfg.delivery_limit:
            self.stats["failed"] += 1
            log.warning("%s: evaluation %s failed %d times (%s); marking it failed", self.env.node, w.eval_id,
                        attempts, why)
            data = command("eval_update", now=self._wall(), evals=[{
                "ID": w.eval_id, "Status": "failed", "FollowUpWait": self.cfg.failed_follow_up_s,
                "StatusDescription": f"evaluation reached delivery limit ({attempts}): {why}"}])
            self.send(self.env.node, self.raft, Propose(data=data, reply=None))
            self._attempts.pop(w.eval_id, None)
        else:
            self.stats["retries"] += 1
            self._attempts[w.eval_id] = attempts
            self._enqueue([(-50, 0, w.eval_id, w.job_id)])
        self._dispatch()

    # ------------------------------------------------------------ Raft answers
    def _reply(self, m: RaftReply) -> None:
        kind, gen, key = m.tag
        if kind in ("fplan", "fcatchup"):
            self._follower_reply(m)  # this server's workers serving another leader (WorkerPool)
            return
        if gen != self._gen:
            return  # from an earlier term of leadership
        if kind == "leader_stats":
            if m.ok and self.metrics is not None:
                leader_metrics.publish(self.metrics, m.value[1])
            return
        if kind == "watch":
            self._watching = False
            if m.ok:
                index, view = m.value
                self._seen_index = max(self._seen_index, index)
                self._lead_floor = self._lead_floor or index
                if view is None:
                    self._pause()
                elif self.paused:
                    # Resumed: what became pending meanwhile is read in full.
                    log.info("%s: eval broker resumed by the scheduler configuration", self.env.node)
                    self.paused = False
                    self._seen_index = 0
                else:
                    self._note_kinds(view[2])
                    self._enqueue(view[0], view[3])
                    self._wake_for(view[1])
            self._watch()
            return
        if kind == "due":  # the one-off read at a waiting evaluation's time
            view = m.value[1] if m.ok else None
            if view is not None and not self.paused:
                self._note_kinds(view[2])
                self._enqueue(view[0], view[3])
                self._wake_for(view[1])
            return
        batch = key
        works = self._members(batch, self._batches.get(batch, ()))
        if not works or not m.ok:
            self._end_batch(batch)
            for w in works:
                self._retry(w, m.error)
            self._dispatch()
            return
        if kind == "plan":
            data, planned, deferred = m.value[1]
            works = self._sort_planned(works, planned, deferred)
            if data is None:
                self._end_batch(batch)
                self._dispatch()
                return
            self._propose_plan(batch, works, data, planned)
            return
        index, result = m.value
        floor = self._job_floor
        for w in works:
            if index > floor.get(w.job_id, 0):
                floor[w.job_id] = index
        for r in (result.get("results", ()) if isinstance(result, dict) else ()):
            if isinstance(r, dict) and r.get("ok"):
                self.stats["placed"] += len(r.get("placed", ()))
                self.stats["refused"] += len(r.get("refused", ()))
        self._end_batch(batch)
        self._measure(works, submitted=True)
        for w in works:
            self._done(w)
