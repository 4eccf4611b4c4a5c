"""The leader's gauges of the replicated state, as Nomad's leader publishes them.

* ``nomad.job_status.{pending,running,dead}``: jobs by status
  (``publishJobStatusMetrics``).
* ``nomad.job_summary.{queued,complete,failed,running,starting,lost,unknown}``
  per task group, labelled ``job``, ``task_group``, ``namespace`` -- and
  ``parent_id`` with ``dispatch_id`` or ``periodic_id`` for a dispatched or
  periodic job's child (``publishJobSummaryMetrics``).  A job purged or
  collected is simply no longer set: in ``/v1/metrics`` it is gone from the
  next interval, and its Prometheus series expire as go-metrics' do; Nomad
  never zeroes them either.  ``telemetry.disable_dispatched_job_summary_metrics``
  leaves dispatched children out.
* ``nomad.blocked_evals.{total_blocked,total_escaped,total_quota_limit}``
  (``BlockedEvals.EmitStats``): the blocked evaluations; none here ever
  escapes its computed node class (this scheduler keeps no class
  eligibility), and quotas are Nomad Enterprise's, so those two stay 0.  A
  follower's tracker is disabled in Nomad and reports zeros; so does ours.

* ``nomad.broker.total_waiting`` (evaluations pending with a ``WaitUntil``
  still to come), ``nomad.broker.eval_waiting`` per such evaluation (seconds
  left, labelled ``job`` -- the parent's ID for a child -- and ``namespace``)
  and ``nomad.broker.total_cancelable`` (EvalBroker.EmitStats).  Nomad's
  broker keeps these; ours reads them from the state, where an evaluation's
  wait is kept.  A superseded evaluation is cancelled here in the write that
  completes its job's newer one, so none waits to be cancelled: always 0.

The counting is a Read query Raft runs on the leader's state
(:func:`leader_stats`); the broker publishes the answer (:func:`publish`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["job_status_counts", "leader_stats", "parent_id", "publish", "publish_follower", "summary_labels"]

Labels = tuple[tuple[str, str], ...]

# (gauge, the JobSummary field it reports), in Nomad's order.
SUMMARY_GAUGES = (("queued", "Queued"), ("complete", "Complete"), ("failed", "Failed"),
                  ("running", "Running"), ("starting", "Starting"), ("lost", "Lost"),
                  ("unknown", "Unknown"))
_SUMMARY_KEYS = tuple(("nomad", "job_summary", g) for g, _ in SUMMARY_GAUGES)
_SUMMARY_FIELDS = tuple(f for _, f in SUMMARY_GAUGES)


def job_status_counts(state: Any) -> dict[str, int]:
    """How many jobs are pending, running and dead (Nomad's job_status gauges)."""
    counts = {"pending": 0, "running": 0, "dead": 0}
    for job in state.tables["jobs"].values():
        status = job.get("Status", "pending")
        if status in counts:
            counts[status] += 1
    return counts


def summary_labels(job_id: str, group: str, namespace: str) -> Labels:
    """Nomad's iterateJobSummaryMetrics labels: a child's parent and dispatch or launch are split out."""
    labels: Labels = (("job", job_id), ("task_group", group), ("namespace", namespace))
    for marker, name in (("/dispatch-", "dispatch_id"), ("/periodic-", "periodic_id")):
        if marker in job_id:
            parent, child = job_id.split(marker, 1)
            labels += (("parent_id", parent), (name, child))
    return labels


def parent_id(job_id: str) -> str:
    """Nomad's ParentIDFromJobID: a dispatched or periodic child's parent (an ID starting with "/" is
    left whole, as Nomad's test for it reads)."""
    if job_id.startswith("/"):
        return job_id
    return job_id.split("/dispatch-", 1)[0].split("/periodic-", 1)[0]


_SUMMARY_TABLES = ("jobs", "allocs", "evals")


def leader_stats(state: Any, skip_dispatched: bool = False, now: float | None = None,
                 summaries: bool = True) -> dict[str, Any]:
    """Read query: job status counts, the blocked evaluations, every job's summary as rows of
    (job ID, namespace, group, (queued, complete, failed, running, starting, lost, unknown)), and
    -- with *now* (wall seconds) -- the pending evaluations still waiting, as (job, namespace,
    seconds left)."""
    from actors.http_jobs import job_summaries  # http_jobs imports the HTTP layer, which imports the broker

    jobs = state.tables["jobs"]
    rows: list[tuple[str, str, str, tuple[int, ...]]] = []
    # The summaries are a function of the jobs, allocations and evaluations alone: while none of the
    # three tables moved (their indexes, and the very tables: a restore replaces them), the last
    # rows stand -- an idle cluster of 10,000 jobs is not counted again every interval.
    indexes = getattr(state, "table_index", None)  # (a test's bare tables have none: no reuse)
    key = None if indexes is None else (skip_dispatched, *(indexes.get(t, 0) for t in _SUMMARY_TABLES),
                                        *(id(state.tables[t]) for t in _SUMMARY_TABLES))
    last = getattr(state, "leader_summary_rows", None)
    if summaries and key is not None and last is not None and last[0] == key:
        rows = last[1]
    elif summaries:
        ids = [jid for jid, job in jobs.items() if not (skip_dispatched and job.get("Dispatched"))]
        for summary in (job_summaries(state, ids) if ids else {}).values():
            ns = summary["Namespace"]
            for group, counts in summary["Summary"].items():
                rows.append((summary["JobID"], ns, group, tuple(counts[f] for f in _SUMMARY_FIELDS)))
        if key is not None:
            state.leader_summary_rows = (key, rows)
    waiting = [] if now is None else [
        (ev.get("JobID", ""), ev.get("Namespace", "default"), ev["WaitUntil"] - now)
        for ev in state.evals_with_status("pending") if (ev.get("WaitUntil") or 0.0) > now]
    return {"job_status": job_status_counts(state), "blocked": len(state.evals_by_status["blocked"]),
            "summaries": rows, "waiting": waiting}


def publish(metrics: Any, stats: dict[str, Any]) -> None:
    """Set the leader's gauges from a :func:`leader_stats` answer."""
    for status, count in stats["job_status"].items():
        metrics.set_gauge(("nomad", "job_status", status), count)
    _blocked(metrics, stats["blocked"])
    set_gauges = metrics.set_gauges
    for jid, ns, group, counts in stats["summaries"]:
        set_gauges(_SUMMARY_KEYS, counts, summary_labels(jid, group, ns))
    _waiting(metrics, stats.get("waiting", ()))


def publish_follower(metrics: Any) -> None:
    """A follower's blocked-evaluation tracker and broker are disabled: Nomad's EmitStats report zeros."""
    _blocked(metrics, 0)
    _waiting(metrics, ())


def _waiting(metrics: Any, waiting: Any) -> None:
    metrics.set_gauge(("nomad", "broker", "total_waiting"), len(waiting))
    metrics.set_gauge(("nomad", "broker", "total_cancelable"), 0)  # superseded ones are cancelled at once
    for job_id, namespace, left_s in waiting:
        metrics.set_gauge(("nomad", "broker", "eval_waiting"), left_s,
                          (("job", parent_id(job_id)), ("namespace", namespace)))


def _blocked(metrics: Any, blocked: int) -> None:
    metrics.set_gauge(("nomad", "blocked_evals", "total_quota_limit"), 0)  # quotas: Nomad Enterprise
    metrics.set_gauge(("nomad", "blocked_evals", "total_blocked"), blocked)
    metrics.set_gauge(("nomad", "blocked_evals", "total_escaped"), 0)  # no computed-class escapes here
