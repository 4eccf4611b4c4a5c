"""Nomad's ``Job.Plan``: what registering a job would do, computed and never committed.

:func:`plan_job` runs inside the Raft actor as a read query (the state is
only read): the scheduler computes the plan of an evaluation of the
submitted job against the current state, exactly as a worker would after a
registration, and the result is summarised as Nomad's ``JobPlanResponse``:

* ``Annotations.DesiredTGUpdates`` per task group -- ``Place`` (new
  allocations, those that would fail to be placed too, as Nomad's reconciler
  counts them), ``Canary`` (canaries), ``DestructiveUpdate`` (replaced for a new spec),
  ``InPlaceUpdate`` (a new version that runs the same tasks on a node that still takes it: kept),
  ``Migrate``, ``Stop`` and ``Ignore`` (left as they are);
* ``FailedTGAllocs`` -- the groups that could not be placed, with the
  scheduler's metrics;
* ``JobModifyIndex`` -- for ``nomad job run -check-index``;
* ``Diff`` (when asked) -- Nomad's structured diff of the job against the
  version registered now (actors.scheduler.jobdiff), contextual as Nomad's
  plan always asks it (the unchanged fields of an edited block are kept, Type
  ``None``), annotated with the plan: each group's ``Updates`` and each changed
  task's ``forces create/destroy update`` or ``forces in-place update``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actors.scheduler.job import (
    disconnect_warnings,
    memory_max_warnings,
    spec_changed,
    update_digest,
    warnings_text,
)
from actors.scheduler.jobdiff import annotate, job_diff
from actors.scheduler.scheduler import (
    STOP_FAILED,
    STOP_MIGRATE,
    STOP_NODE_TAINTED,
    STOP_UPDATE,
    compute_plan,
    live,
)
from actors.state import scheduler_config as sched_cfg
from actors.state.namespaces import job_key_of

PLAN_EVAL_ID = "00000000-0000-0000-0000-000000000000"  # the dry run's evaluation: never stored


def plan_job(state: Any, job: dict[str, Any], diff: bool, now: float = 0.0) -> dict[str, Any]:
    """The JobPlanResponse for registering *job* (canonical) at wall time *now*."""
    key = job_key_of(job)
    old = state.tables["jobs"].get(key)
    candidate = dict(job)
    changed = old is None or spec_changed(old, candidate)
    candidate["Version"] = 0 if old is None else old["Version"] + (1 if changed else 0)
    candidate["JobModifyIndex"] = old["JobModifyIndex"] if old is not None and not changed else 0
    tables = dict(state.tables)
    tables["jobs"] = {**state.tables["jobs"], key: candidate}
    ev = {"ID": PLAN_EVAL_ID, "Namespace": job.get("Namespace") or "default", "JobID": job["ID"],
          "Type": job["Type"], "Status": "pending"}
    job_allocs = state.job_allocs(key)
    failed_canaries: dict[str, int] = {}
    failed_updates: dict[str, list[str]] = {}
    plan = compute_plan(tables, ev, job_allocs, state.node_allocs, state.sorted_ids("nodes"),
                        state.node_usage, ready_by_dc=state.ready_nodes_by_dc,
                        failed_canaries=failed_canaries, failed_updates=failed_updates)
    updates = desired_updates(candidate, job_allocs, plan, failed_canaries, failed_updates)
    return {"Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": _preempted(state, plan, updates)},
            "FailedTGAllocs": plan["Failed"] or None,
            "JobModifyIndex": old["JobModifyIndex"] if old is not None else 0,
            "CreatedEvals": None,
            "Diff": annotate(job_diff(old, job, contextual=True), updates) if diff else None,
            "NextPeriodicLaunch": _next_launch(job, now),
            "Warnings": warnings_text(
                memory_max_warnings(job, sched_cfg.memory_oversubscription(state.tables))
                + disconnect_warnings(job))}


def _preempted(state: Any, plan: dict[str, Any], updates: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Nomad's PlanAnnotations.PreemptedAllocs: the allocations the plan would evict (their records less
    the job, but its type, for the API's AllocListStub), each counted in its preemptor's group's
    ``Preemptions``."""
    entries = plan.get("Preempt") or ()
    if not entries:
        return None
    placed_group = {p["ID"]: p["TaskGroup"] for p in plan["Place"]}
    allocs = state.tables["allocs"]
    out = []
    for e in entries:
        a = allocs.get(e["ID"])
        if a is None:
            continue
        group = placed_group.get(e.get("By", ""))
        if group in updates:
            updates[group]["Preemptions"] += 1
        stub = {k: v for k, v in a.items() if k != "Job"}
        stub["Job"] = {"Type": (a.get("Job") or {}).get("Type", "")}
        out.append(stub)
    return out


def _next_launch(job: dict[str, Any], now: float) -> str:
    """When a periodic job would launch next (Nomad's zero time for any other job, a parameterized one
    included: IsPeriodicActive)."""
    p = job.get("Periodic")
    if not p or not p.get("Enabled", True) or job.get("ParameterizedJob"):
        return "0001-01-01T00:00:00Z"
    from zoneinfo import ZoneInfo

    from actors.scheduler.cron import next_launch

    at = next_launch(p, now)
    # Go's JSON of the time in the job's location: RFC 3339 with its offset ("Z" at offset zero).
    local = dt.datetime.fromtimestamp(at, ZoneInfo(p.get("TimeZone") or "UTC"))  # validated with the job
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")


def desired_updates(job: dict[str, Any] | None, job_allocs: list[dict[str, Any]], plan: dict[str, Any],
                    failed_canaries: dict[str, int] | None = None,
                    failed_updates: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Nomad's DesiredTGUpdates (its reconciler's counts per task group) of *plan*, computed for *job*
    (None: purged) from *job_allocs*, the job's allocations before it: what ``nomad job plan``
    annotates and an evaluation keeps (``PlanAnnotations``, shown by ``nomad eval status``)."""
    by_id = {a["ID"]: a for a in job_allocs}
    out: dict[str, dict[str, int]] = {}
    # As Nomad's reconciler: the job's groups, and any group the job no longer has that still has allocations
    # (its allocations stopped: "- Task Group: "old" (2 destroy)").
    names = [g["Name"] for g in (job or {}).get("TaskGroups") or ()]
    job_type, version = (job or {}).get("Type", "service"), (job or {}).get("Version", 0)
    removed = sorted({a["TaskGroup"] for a in job_allocs} - set(names))
    for name in names + removed:
        out[name] = {"Ignore": 0, "Place": 0, "Migrate": 0, "Stop": 0, "InPlaceUpdate": 0,
                     "DestructiveUpdate": 0, "Canary": 0, "Preemptions": 0, "RescheduleNow": 0,
                     "RescheduleLater": 0}
    stopped = set()
    for s in plan["Stop"]:
        a = by_id.get(s["ID"])
        if a is None or a["TaskGroup"] not in out:
            continue
        stopped.add(a["ID"])
        kind = {STOP_UPDATE: "DestructiveUpdate", STOP_MIGRATE: "Migrate",
                STOP_NODE_TAINTED: "Migrate"}.get(s["DesiredDescription"], "Stop")
        out[a["TaskGroup"]][kind] += 1
        if s["DesiredDescription"] == STOP_FAILED:  # Nomad's reconciler: a Stop, and rescheduled now
            out[a["TaskGroup"]]["RescheduleNow"] += 1
    for later in plan.get("RescheduleLater") or ():  # failed, replaced by a follow-up evaluation
        a = by_id.get(later["ID"])
        if a is not None and a["TaskGroup"] in out:
            out[a["TaskGroup"]]["RescheduleLater"] += 1
    for p in plan["Place"]:
        if p["TaskGroup"] in out:  # Nomad's reconciler counts a canary apart (DesiredUpdates.Canary)
            out[p["TaskGroup"]]["Canary" if (p.get("DeploymentStatus") or {}).get("Canary") else "Place"] += 1
    for key in ("Disconnect", "Reconnect"):  # Nomad's DesiredUpdates counts these apart
        for aid in plan.get(key) or ():
            a = by_id.get(aid)
            if a is not None and a["TaskGroup"] in out:
                out[a["TaskGroup"]][key] = out[a["TaskGroup"]].get(key, 0) + 1
    for name, u in out.items():
        if name in removed:
            continue
        # A replacement placed for an updated or migrated allocation is that update, not a new one.
        u["Place"] = max(0, u["Place"] - u["DestructiveUpdate"] - u["Migrate"])
        # The reconciler's count stands whether or not the placements then fit: those that did not are
        # the group's FailedTGAllocs (its first failure, the rest CoalescedFailures), reported apart.
        failed = (plan["Failed"] or {}).get(name)
        if failed is not None and job_type in ("system", "sysbatch"):
            failed = None  # Nomad's system scheduler: a node that took nothing is no candidate to count
        if failed is not None:  # a canary that did not fit is still one of the reconciler's Canary
            canaries = (failed_canaries or {}).get(name, 0)
            u["Canary"] += canaries
            u["Place"] += 1 + int(failed.get("CoalescedFailures", 0)) - canaries
        # A destructive update whose replacement found no node is still one (Nomad's reconciler counts
        # before placing), not a placement; the allocation it would replace keeps running.
        held = set((failed_updates or {}).get(name, ()))
        u["Place"] -= len(held)
        u["DestructiveUpdate"] += sum(1 for aid in held if aid not in stopped)
        digest = update_digest(job, name) if job is not None else ()
        in_place = set(plan.get("InPlace") or ())
        for a in job_allocs:
            if a["TaskGroup"] == name and job_type == "batch" and not live(a) \
                    and a.get("JobVersion", 0) < version:
                u["Ignore"] += 1  # Nomad's filterOldTerminalAllocs: an earlier version's finished run
                continue
            if a["TaskGroup"] != name or a["ID"] in stopped or a["ID"] in held or not live(a):
                continue
            changed = a.get("JobVersion", 0) != version
            if not changed:
                u["Ignore"] += 1
                continue
            same = update_digest(a.get("Job") or {}, name) == digest
            if not same and job_type == "system":
                # Nomad's system scheduler counts every destructive update, those max_parallel leaves
                # for a later evaluation too (the generic reconciler counts those as Ignore).
                u["DestructiveUpdate"] += 1
                continue
            # Updated in place only if the plan does so (its node still takes the new version); one a
            # rolling update holds back, or whose replacement waits, is Nomad's Ignore.
            u["InPlaceUpdate" if same and a["ID"] in in_place else "Ignore"] += 1
    return out


def count_preemptions(plan: dict[str, Any], updates: dict[str, Any]) -> None:
    """Nomad's DesiredUpdates.Preemptions: each allocation the plan evicts, in its preemptor's group."""
    entries = plan.get("Preempt") or ()
    if not entries:
        return
    placed_group = {p["ID"]: p["TaskGroup"] for p in plan["Place"]}
    for e in entries:
        group = placed_group.get(e.get("By", ""))
        if group in updates:
            updates[group]["Preemptions"] += 1
