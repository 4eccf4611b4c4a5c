"""Deployments: a service job version's rolling update, tracked in the replicated state.

Nomad's deployments (``nomad/structs`` Deployment, ``nomad/deploymentwatcher``):

* The scheduler makes one when a job version changes what a group runs (or
  a new job is placed), with each such group's ``DesiredTotal``; the plan's
  placements carry its ID, and applying the plan counts ``PlacedAllocs``.
* A client reports each such allocation's health once
  (``DeploymentStatus.Healthy``: every task running for ``MinHealthyTime``,
  or a task failed / ``HealthyDeadline`` passed); applying the report counts
  ``HealthyAllocs`` / ``UnhealthyAllocs`` here.  Where Nomad's deployment
  watcher, a leader goroutine, reacts to those counts through further Raft
  writes, the reaction is part of the same write, so every server decides
  alike at the same place in the log:

  - a healthy allocation moves ``RequireProgressBy`` on and makes an
    evaluation (``deployment-watcher``) so the scheduler replaces the next
    ``MaxParallel``;
  - every group healthy: ``successful``, and the job version is marked stable;
  - an unhealthy allocation: ``failed``; with ``AutoRevert`` the job's latest
    stable version is registered again ("rolling back to job version N").

* Canaries (``canary = N``): the first plan places N allocations of the new
  version beside the old ones (``PlacedCanaries``) and replaces nothing
  more until the group is promoted -- by ``deployment_promote`` (an operator)
  once they are healthy, or on their own with ``auto_promote``; a
  deployment with canaries succeeds only promoted.  Promoted, the healthy
  canaries are canaries no more (``DeploymentStatus.Canary`` false); the
  deployment's ``PlacedCanaries`` still lists them.
* A deployment of an older version is ``cancelled`` when a newer version is
  registered, and when the job is stopped; a purged job's go with it.
* ``deployment_fail`` (an operator, or the leader's watcher when
  ``RequireProgressBy`` passed) and ``deployment_pause`` are writes of their own.
"""

from __future__ import annotations

from typing import Any

from actors.state import services
from actors.state.namespaces import key_of

TABLE = "deployments"
ACTIVE = ("running", "paused")
TERMINAL = ("successful", "failed", "cancelled")
SECOND_NS = 1_000_000_000

# Nomad's structs.DeploymentStatusDescription* texts.
DESC_RUNNING = "Deployment is running"
DESC_NEEDS_PROMOTION = "Deployment is running but requires manual promotion"
DESC_AUTO_PROMOTION = "Deployment is running pending automatic promotion"
DESC_PAUSED = "Deployment is paused"
DESC_SUCCESSFUL = "Deployment completed successfully"
DESC_STOPPED_JOB = "Cancelled because job is stopped"
DESC_NEWER_JOB = "Cancelled due to newer version of job"
DESC_FAILED_ALLOCS = "Failed due to unhealthy allocations"
DESC_PROGRESS_DEADLINE = "Failed due to progress deadline"
DESC_FAILED_BY_USER = "Deployment marked as failed"


def latest(store: Any, job_id: str) -> dict[str, Any] | None:
    """The job's newest deployment (the store's index of it)."""
    index = getattr(store, "latest_deployment_of", None)
    if index is None:  # not a StateStore (a test's tables): search
        from actors.scheduler.scheduler import latest_deployment

        job = store.tables["jobs"].get(job_id)
        return latest_deployment(store.tables, job) if job is not None else None
    dep_id = index.get(job_id)
    return store.tables[TABLE].get(dep_id) if dep_id else None


def of_job(store: Any, job_id: str) -> list[dict[str, Any]]:
    """The job's deployments (*job_id* a job key), in no set order: the store's own records, not to be
    modified.  Read from the by-job index, not every deployment kept."""
    table = store.tables[TABLE]
    by_job = getattr(store, "deployments_by_job", None)
    if by_job is None:  # not a StateStore (a test's tables): search
        return [d for d in table.values() if key_of(d) == job_id]
    return [table[i] for i in by_job.get(job_id, ()) if i in table and key_of(table[i]) == job_id]


def _newest(deps: list[dict[str, Any]]) -> dict[str, Any]:
    return max(deps, key=lambda d: (d.get("CreateIndex", 0), d["ID"]))


def rebuild_index(store: Any) -> None:
    """After a restore: job ID -> its deployments' IDs, and -> its newest deployment's ID."""
    by_job: dict[str, set[str]] = {}
    for d in store.tables[TABLE].values():
        by_job.setdefault(key_of(d), set()).add(d["ID"])
    store.deployments_by_job = by_job
    store.latest_deployment_of = {job: _newest(of_job(store, job))["ID"] for job in by_job}


def reindex_job(store: Any, job_id: str) -> None:
    """The job's newest deployment, found again (its newest was collected)."""
    left = of_job(store, job_id)
    if left:
        store.latest_deployment_of[job_id] = _newest(left)["ID"]
    else:
        store.latest_deployment_of.pop(job_id, None)


def drop_from_index(store: Any, d: dict[str, Any]) -> None:
    """*d*, removed from the table, leaves the by-job index (the job's entry goes when it empties)."""
    ids = store.deployments_by_job.get(key_of(d))
    if ids is not None:
        ids.discard(d["ID"])
        if not ids:
            del store.deployments_by_job[key_of(d)]


def add_to_index(store: Any, d: dict[str, Any]) -> None:
    """*d*, written to the table, is under its job in the by-job index."""
    store.deployments_by_job.setdefault(key_of(d), set()).add(d["ID"])


def check_index(store: Any) -> None:
    """AssertionError unless the by-job index holds each job's deployments as the table has them."""
    by_job: dict[str, set[str]] = {}
    for d in store.tables[TABLE].values():
        by_job.setdefault(key_of(d), set()).add(d["ID"])
    if by_job != store.deployments_by_job:
        raise AssertionError(f"deployments by job indexed {store.deployments_by_job}, in the table {by_job}")


def _put(store: Any, index: int, d: dict[str, Any]) -> None:
    store.tables[TABLE][d["ID"]] = d
    add_to_index(store, d)
    store._touch(TABLE, index)


def _set_status(store: Any, index: int, d: dict[str, Any], status: str, desc: str,
                now: float) -> dict[str, Any]:
    d = {**d, "Status": status, "StatusDescription": desc, "ModifyIndex": index, "ModifyTime": now}
    _put(store, index, d)
    return d


def begin_plan(store: Any, index: int, plan: dict[str, Any], now: float) -> dict[str, str]:
    """Before a plan's placements: make its new deployment; returns {planned ID: ID to use instead}."""
    new = plan.get("Deployment")
    if new is None:
        return {}
    table = store.tables[TABLE]
    current = latest(store, key_of(new))
    if current is not None and current["Status"] in ACTIVE and current["JobVersion"] == new["JobVersion"] \
            and current.get("JobCreateIndex") == new.get("JobCreateIndex"):
        # Another plan of the same batch made this version's deployment first: join it.
        return {new["ID"]: current["ID"]} if current["ID"] != new["ID"] else {}
    if new["ID"] not in table:
        job = store.tables["jobs"].get(key_of(new))
        if job is not None and job.get("Version") == new["JobVersion"] and not job.get("Stop"):
            d = {**new, "CreateIndex": index, "ModifyIndex": index, "CreateTime": now, "ModifyTime": now}
            canaried = [g for g in d["TaskGroups"].values() if g.get("DesiredCanaries")]
            if canaried:
                auto = all(g.get("AutoPromote") for g in canaried)
                d["StatusDescription"] = DESC_AUTO_PROMOTION if auto else DESC_NEEDS_PROMOTION
            _put(store, index, d)
            store.latest_deployment_of[key_of(d)] = d["ID"]
    return {}


def count_placed(store: Any, index: int, placed: list[dict[str, Any]], now: float) -> None:
    """After a plan's placements: count what each deployment got, start its progress clock."""
    table = store.tables[TABLE]
    counts: dict[str, dict[str, int]] = {}
    canaries: dict[tuple[str, str], list[str]] = {}
    for rec in placed:
        dep_id = rec.get("DeploymentID")
        if dep_id:
            per = counts.setdefault(dep_id, {})
            per[rec["TaskGroup"]] = per.get(rec["TaskGroup"], 0) + 1
            if (rec.get("DeploymentStatus") or {}).get("Canary"):
                canaries.setdefault((dep_id, rec["TaskGroup"]), []).append(rec["ID"])
    for dep_id, per in sorted(counts.items()):
        d = table.get(dep_id)
        if d is None:
            continue
        groups = dict(d["TaskGroups"])
        for name, n in per.items():
            g = groups.get(name)
            if g is None:
                continue
            g = {**g, "PlacedAllocs": g["PlacedAllocs"] + n,
                 "PlacedCanaries": [*g.get("PlacedCanaries", ()), *canaries.get((dep_id, name), ())]}
            if g.get("RequireProgressBy") is None and g.get("ProgressDeadline"):
                g["RequireProgressBy"] = now + g["ProgressDeadline"] / SECOND_NS
            groups[name] = g
        _put(store, index, {**d, "TaskGroups": groups, "ModifyIndex": index, "ModifyTime": now})


def _reschedule_eligible(store: Any, d: dict[str, Any], alloc: dict[str, Any], now: float) -> bool:
    """:func:`reschedule_eligible` by the group's policy in the deployment's job."""
    return reschedule_eligible(store.tables["jobs"].get(key_of(d)) or alloc.get("Job") or {}, alloc, now)


def reschedule_eligible(job: dict[str, Any], alloc: dict[str, Any], now: float) -> bool:
    """Nomad's Allocation.RescheduleEligible at *now*, by the policy of *alloc*'s group in *job*: its
    policy reschedules (attempts, or unlimited) and the attempts within the interval are not used up."""
    from actors.scheduler.scheduler import reschedule_policy  # (imported here: the scheduler imports state)

    group = next((g for g in job.get("TaskGroups", ()) if g.get("Name") == alloc.get("TaskGroup")), None)
    rp = reschedule_policy(job, group) if group is not None else None
    if rp is None:
        return False
    if rp.get("Unlimited"):
        return True
    attempts, interval = int(rp.get("Attempts") or 0), int(rp.get("Interval") or 0)
    events = (alloc.get("RescheduleTracker") or {}).get("Events") or ()
    tried = sum(1 for e in events if now * SECOND_NS - int(e.get("RescheduleTime", 0)) < interval)
    return attempts > 0 and tried < attempts


def health_update(store: Any, index: int, alloc: dict[str, Any], healthy: bool, now: float,
                  evals_for: set[str], failures: list[tuple[str, str]], *, fail_early: bool = False) -> None:
    """An allocation's health was set for the first time: count it in its deployment, react.

    *fail_early* (client reports of rev 2 and later): an unhealthy allocation that has used its
    reschedule attempts fails the deployment at once; older entries apply as they did."""
    d = store.tables[TABLE].get(alloc.get("DeploymentID") or "")
    if d is None or d["Status"] not in ACTIVE:
        return
    g = d["TaskGroups"].get(alloc["TaskGroup"])
    if g is None:
        return
    if healthy:
        g = {**g, "HealthyAllocs": g["HealthyAllocs"] + 1}
        if g.get("ProgressDeadline"):
            g["RequireProgressBy"] = now + g["ProgressDeadline"] / SECOND_NS
    else:
        g = {**g, "UnhealthyAllocs": g["UnhealthyAllocs"] + 1}
    d = {**d, "TaskGroups": {**d["TaskGroups"], alloc["TaskGroup"]: g}, "ModifyIndex": index,
         "ModifyTime": now}
    _put(store, index, d)
    if not healthy:
        if g.get("ProgressDeadline") and (not fail_early or _reschedule_eligible(store, d, alloc, now)):
            # Nomad's deployment watcher, for a group with a progress deadline: an unhealthy
            # allocation does not fail the deployment; it is let be rescheduled within it (by its
            # reschedule policy), and the deadline fails the deployment if nothing turns healthy.
            alloc["DesiredTransition"] = {**(alloc.get("DesiredTransition") or {}), "Reschedule": True}
            evals_for.add(key_of(d))
            return
        # No progress deadline, or the allocation has used its reschedule attempts (nothing can turn
        # healthy any more): Nomad's shouldFailEarly fails the deployment now, not at the deadline.
        failures.append((d["ID"], DESC_FAILED_ALLOCS))
        return
    promoted = False
    if d["Status"] == "running" and _auto_promotable(store, d):
        d = _promote(store, index, d, sorted(d["TaskGroups"]), now)
        promoted = True
    outdated = _outdated(store, d, index)
    if outdated or promoted:
        # The scheduler looks again: the next ones roll, or promoted canaries take over -- a
        # promotion always evaluates (Nomad's watcher does), even with no old allocation left
        # to replace: a canary may now be one too many (its old one was migrated meanwhile).
        evals_for.add(key_of(d))
    if not outdated and not any(dep_id == d["ID"] for dep_id, _ in failures):
        # Nothing left to replace (a new job's allocations reporting in, the last of a rollout):
        # no evaluation per report, only the end once every group is healthy -- unless an
        # unhealthy report earlier in the same write is about to fail it.
        _succeed_if_done(store, index, d, now)


def _outdated(store: Any, d: dict[str, Any], index: int | None = None) -> bool:
    """An allocation the deployment's groups still run is of an earlier version."""
    groups, version = d["TaskGroups"], d["JobVersion"]
    # Remembered for the rest of write *index*: none outdated stays so (a client's report makes no
    # allocation of an earlier version live), and the outdated one found is looked at again alone
    # while it is still live -- one scan a write, not one a health report: a 10,000-allocation job's
    # reports, thousands a write, cost every server's state machine seconds per write otherwise.
    key = (index, d["ID"], version, tuple(groups))
    memo = store.outdated_memo
    if index is not None and memo is not None and memo[0] == key:
        if memo[1] is None:
            return False
        a = store.tables["allocs"].get(memo[1])
        if a is not None and a.get("DesiredStatus") == "run" and a.get("ClientStatus") not in (
                "complete", "failed", "lost"):
            return True
    # Its live allocations only, not every one the job ever ran (this runs on every health report).
    found = next((a["ID"] for a in store.live_job_allocs(key_of(d))
                  if a["TaskGroup"] in groups and a.get("JobVersion") != version), None)
    if index is not None:
        store.outdated_memo = (key, found)
    return found is not None


def after_plan(store: Any, index: int, job_id: str, now: float) -> None:
    """A plan applied: the job's running deployment may be done now (its last old allocations stopped
    when promoted canaries took their places, say) -- Nomad's reconciler ends it in the plan."""
    d = latest(store, job_id)
    if d is not None and d["Status"] == "running":
        _succeed_if_done(store, index, d, now)


def _succeed_if_done(store: Any, index: int, d: dict[str, Any], now: float) -> None:
    """Successful once every group's allocations are healthy (and promoted, with canaries) and every
    allocation the job still runs in those groups runs the deployment's version."""
    if not all(_group_done(tg) for tg in d["TaskGroups"].values()):
        return
    if _outdated(store, d):
        return  # an earlier version still runs somewhere: not done, whatever the counts say
    _set_status(store, index, d, "successful", DESC_SUCCESSFUL, now)
    mark_stable(store, index, key_of(d), d["JobVersion"])


def _group_done(g: dict[str, Any]) -> bool:
    return g["HealthyAllocs"] >= g["DesiredTotal"] and (not g.get("DesiredCanaries") or g.get("Promoted"))


def _healthy_canaries(store: Any, g: dict[str, Any]) -> int:
    allocs = store.tables["allocs"]
    return sum(1 for i in g.get("PlacedCanaries", ())
               if ((allocs.get(i) or {}).get("DeploymentStatus") or {}).get("Healthy") is True)


def _auto_promotable(store: Any, d: dict[str, Any]) -> bool:
    """Every group with canaries promotes itself, and each one's canaries are all healthy."""
    waiting = [g for g in d["TaskGroups"].values() if g.get("DesiredCanaries") and not g.get("Promoted")]
    return bool(waiting) and all(g.get("AutoPromote") and _healthy_canaries(store, g) >= g["DesiredCanaries"]
                                 for g in waiting)


def _promote(store: Any, index: int, d: dict[str, Any], groups: list[str], now: float) -> dict[str, Any]:
    tgs = dict(d["TaskGroups"])
    for name in groups:
        if tgs[name].get("DesiredCanaries"):
            tgs[name] = {**tgs[name], "Promoted": True}
        if tgs[name].get("ProgressDeadline") and tgs[name].get("RequireProgressBy") is not None:
            # Nomad's UpdateDeploymentPromotion resets the progress deadline: canaries may wait for the
            # operator longer than progress_deadline without the promoted rollout failing at once.
            tgs[name] = {**tgs[name], "RequireProgressBy": now + tgs[name]["ProgressDeadline"] / SECOND_NS}
    d = {**d, "TaskGroups": tgs, "StatusDescription": DESC_RUNNING, "ModifyIndex": index, "ModifyTime": now}
    _put(store, index, d)
    placed = [i for name in groups for i in tgs[name].get("PlacedCanaries", ())]
    _clear_canaries(store, index, placed, now)
    # The promoted canaries' service registrations drop their canary_tags (Nomad: the client re-registers
    # them once the promotion clears DeploymentStatus.Canary).
    services.promoted(store, index, placed)
    return d


def _clear_canaries(store: Any, index: int, canary_ids: list[str], now: float) -> None:
    """The promoted canaries stop being canaries (Nomad's UpdateDeploymentPromotion: each placed canary
    still live and healthy gets ``DeploymentStatus.Canary = false``, the write's index as its
    ModifyIndex and AllocModifyIndex).  The scheduler still knows them by the deployment's
    ``PlacedCanaries``, as Nomad's reconciler does."""
    allocs, written = store.tables["allocs"], False
    for aid in canary_ids:
        a = allocs.get(aid)
        ds = (a or {}).get("DeploymentStatus") or {}
        if a is None or not ds.get("Canary") or ds.get("Healthy") is not True \
                or a.get("DesiredStatus") != "run" or a.get("ClientStatus") in ("complete", "failed", "lost"):
            continue  # not promotable: Nomad leaves it as it is
        rec = {**a, "DeploymentStatus": {**ds, "Canary": False, "ModifyIndex": index}, "ModifyIndex": index,
               "AllocModifyIndex": index, "ModifyTime": now}
        allocs[aid] = rec
        store._index_alloc(rec, a)
        written = True
    if written:
        store._touch("allocs", index)


def mark_stable(store: Any, index: int, job_id: str, version: int) -> None:
    versions = store.job_versions(job_id)
    if any(v.get("Version") == version for v in versions):
        store._job_stability(index, {"job_id": job_id, "version": version, "stable": True})


def fail(store: Any, index: int, dep_id: str, desc: str, now: float) -> dict[str, Any]:
    """Fail a deployment; with AutoRevert, register the job's latest stable version again.

    Returns ``{"EvalID", "RevertedJobVersion", "DeploymentModifyIndex"}``.
    """
    d = store.tables[TABLE][dep_id]
    revert = None
    if any(g.get("AutoRevert") for g in d["TaskGroups"].values()):
        job = store.tables["jobs"].get(key_of(d))
        stable = [v for v in store.job_versions(key_of(d))
                  if v.get("Stable") and v.get("Version") != d["JobVersion"]] if job is not None else []
        if stable and job is not None and job.get("Version") == d["JobVersion"]:
            from actors.scheduler.job import spec_changed

            revert = stable[0]
            if spec_changed(job, revert):
                desc = f"{desc} - rolling back to job version {revert['Version']}"
            else:  # Nomad's handleRollbackValidity: registering the same spec again would fail alike
                desc = (f"{desc} - not rolling back to stable job version {revert['Version']} as current "
                        "job has same specification")
                revert = None
        else:
            desc = f"{desc} - no stable job version to auto revert to"
    _set_status(store, index, d, "failed", desc, now)
    eval_id = ""
    if revert is not None:
        from actors.scheduler.job import SERVER_OWNED

        spec = {k: v for k, v in revert.items() if k not in SERVER_OWNED}
        res = store._job_register(index, {"job": spec, "now": now})
        eval_id = res.get("EvalID", "") if res.get("ok") else ""
    if not eval_id and key_of(d) in store.tables["jobs"]:
        (eval_id,) = store._create_evals(index, [key_of(d)], "deployment-watcher", now)
    return {"EvalID": eval_id, "EvalCreateIndex": index if eval_id else 0,
            "RevertedJobVersion": revert["Version"] if revert is not None else None,
            "DeploymentModifyIndex": index}


def cancel_for_job(store: Any, index: int, job_id: str, desc: str, now: float,
                   older_than: int | None = None) -> None:
    """Cancel the job's active deployment (of a version before *older_than*, when given)."""
    d = latest(store, job_id)
    if d is None or d["Status"] not in ACTIVE:
        return
    if older_than is not None and d["JobVersion"] >= older_than:
        return
    _set_status(store, index, d, "cancelled", desc, now)


def purge_job(store: Any, index: int, job_id: str) -> None:
    """A purged job's deployments go with it."""
    table = store.tables[TABLE]
    gone = sorted(d["ID"] for d in of_job(store, job_id))
    for i in gone:
        del table[i]
    store.deployments_by_job.pop(job_id, None)
    store.latest_deployment_of.pop(job_id, None)
    if gone:
        store._touch(TABLE, index)


# ------------------------------------------------------------ writes of their own
def _active(store: Any, dep_id: str, verb: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the deployment, None) when it exists and is active; else (None, the refusal)."""
    d = store.tables[TABLE].get(dep_id)
    if d is None:
        return None, {"ok": False, "error": f"deployment not found: {dep_id}"}
    if d["Status"] not in ACTIVE:
        return None, {"ok": False, "error": f"can't {verb} terminal deployment"}
    return d, None


def _evaluate(store: Any, index: int, d: dict[str, Any], now: float) -> dict[str, Any]:
    """A ``deployment-watcher`` evaluation of the deployment's job (when it still exists), as a reply."""
    eval_id = ""
    if key_of(d) in store.tables["jobs"]:
        (eval_id,) = store._create_evals(index, [key_of(d)], "deployment-watcher", now)
    return {"ok": True, "index": index, "EvalID": eval_id, "EvalCreateIndex": index if eval_id else 0,
            "DeploymentModifyIndex": index}


def op_fail(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``deployment_fail``: an operator's ``nomad deployment fail``, or the progress deadline passing.

    ``reason="progress"`` (the leader's watcher) re-checks the deadline here,
    at the write's place in the log: progress made since the leader looked
    keeps the deployment running.
    """
    dep_id, now = str(cmd["deployment_id"]), float(cmd["now"])
    d, refused = _active(store, dep_id, "fail")
    if d is None:
        return refused
    if cmd.get("reason") == "progress":
        if not _past_deadline(d, now) or d["Status"] != "running":
            return {"ok": True, "index": index, "skipped": "progress made"}
        desc = DESC_PROGRESS_DEADLINE
    else:
        desc = DESC_FAILED_BY_USER
    return {"ok": True, "index": index, **fail(store, index, dep_id, desc, now)}


def op_pause(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``deployment_pause``: pause (no more replacements) or resume a running deployment."""
    dep_id, pause, now = str(cmd["deployment_id"]), bool(cmd["pause"]), float(cmd["now"])
    d, refused = _active(store, dep_id, "pause" if pause else "resume")
    if d is None:
        return refused
    # Nomad's updateDeploymentStatusImpl: a deployment set running or paused counts its progress deadline
    # afresh from now, so the time spent paused does not fail it once resumed.
    d = {**d, "TaskGroups": {name: {**g, "RequireProgressBy": now + g["ProgressDeadline"] / SECOND_NS}
                             if g.get("ProgressDeadline") else g for name, g in d["TaskGroups"].items()}}
    if pause:
        _set_status(store, index, d, "paused", DESC_PAUSED, now)
        return {"ok": True, "index": index, "EvalID": "", "EvalCreateIndex": 0,
                "DeploymentModifyIndex": index}
    _set_status(store, index, d, "running", DESC_RUNNING, now)
    return _evaluate(store, index, d, now)


def op_alloc_health(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``deployment_alloc_health`` (Nomad ``Deployment.SetAllocHealth``): an operator decides health,
    what ``health_check = "manual"`` waits for; set once per allocation, counted as a client's report."""
    dep_id, now = str(cmd["deployment_id"]), float(cmd["now"])
    d, refused = _active(store, dep_id, "set health of allocations for a")
    if d is None:
        return refused
    healthy, unhealthy = list(cmd.get("healthy") or ()), list(cmd.get("unhealthy") or ())
    allocs = store.tables["allocs"]
    for aid in healthy + unhealthy:  # all checked before anything is written
        a = allocs.get(aid) if isinstance(aid, str) else None
        if a is None or a.get("DeploymentID") != dep_id:
            return {"ok": False, "error": f"Allocation {aid!r} is not part of the deployment"}
    evals_for: set[str] = set()
    failures: list[tuple[str, str]] = []
    for aid, ok in [*((i, True) for i in healthy), *((i, False) for i in unhealthy)]:
        a = allocs[aid]
        if (a.get("DeploymentStatus") or {}).get("Healthy") is not None:
            continue
        rec = {**a, "DeploymentStatus": {**(a.get("DeploymentStatus") or {}), "Healthy": ok, "Timestamp": now,
                                         "ModifyIndex": index}, "ModifyIndex": index, "ModifyTime": now}
        allocs[aid] = rec
        health_update(store, index, rec, ok, now, evals_for, failures)
    store._touch("allocs", index)
    for failed_id, why in failures:
        if store.tables[TABLE][failed_id]["Status"] in ACTIVE:
            return {"ok": True, "index": index, **fail(store, index, failed_id, why, now)}
    return _evaluate(store, index, store.tables[TABLE][dep_id], now)


def op_promote(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``deployment_promote`` (Nomad ``Deployment.Promote``): the named groups' canaries, or all, healthy."""
    dep_id, now = str(cmd["deployment_id"]), float(cmd["now"])
    d, refused = _active(store, dep_id, "promote")
    if d is None:
        return refused
    with_canaries = sorted(n for n, g in d["TaskGroups"].items() if g.get("DesiredCanaries"))
    if not with_canaries:
        return {"ok": False, "error": "no canaries to promote"}
    wanted = with_canaries if cmd.get("all") or not cmd.get("groups") else list(cmd["groups"])
    for name in wanted:
        g = d["TaskGroups"].get(name)
        if g is None or not g.get("DesiredCanaries"):
            return {"ok": False, "error": f"task group {name!r} has no canaries to promote"}
        healthy = _healthy_canaries(store, g)
        if healthy < g["DesiredCanaries"]:
            # Nomad's text for a group whose canaries are not all healthy yet.
            return {"ok": False, "error": f'Task group "{name}" has {healthy}/{g["DesiredCanaries"]} '
                                          "healthy allocations"}
    d = _promote(store, index, d, wanted, now)
    _succeed_if_done(store, index, d, now)
    return _evaluate(store, index, d, now)


def overdue(store: Any, now: float) -> list[str]:
    """Running deployments past their progress deadline (the leader's watcher proposes their failure)."""
    out = []
    for dep_id in sorted(set(store.latest_deployment_of.values())):
        d = store.tables[TABLE].get(dep_id)
        if d is None or d["Status"] != "running":
            continue
        if _past_deadline(d, now):
            out.append(dep_id)
    return out


def _awaits_promotion(g: dict[str, Any]) -> bool:
    return bool(g.get("DesiredCanaries")) and not g.get("Promoted")


def progress_cutoff(d: dict[str, Any]) -> float | None:
    """Nomad's ``getDeploymentProgressCutoff``: the earliest ``RequireProgressBy`` of the groups not done
    (a group is done when it needs no promotion and has its healthy allocations)."""
    cutoffs = [g["RequireProgressBy"] for g in d["TaskGroups"].values()
               if g.get("RequireProgressBy") is not None
               and (_awaits_promotion(g) or g["HealthyAllocs"] < g["DesiredTotal"])]
    return min(cutoffs, default=None)


def _past_deadline(d: dict[str, Any], now: float) -> bool:
    """Nomad's watcher: once the progress cutoff passes, ``shouldFail`` fails the deployment when a group
    lacks its healthy allocations -- its ``DesiredCanaries`` while canaries await promotion, else its
    ``DesiredTotal``. Healthy canaries waiting for ``deployment promote`` are progress enough."""
    cutoff = progress_cutoff(d)
    if cutoff is None or cutoff > now:
        return False
    return any(g["HealthyAllocs"] < (g["DesiredCanaries"] if _awaits_promotion(g) else g["DesiredTotal"])
               for g in d["TaskGroups"].values())


def progress_scan(store: Any, now: float) -> dict[str, Any]:
    """The leader's deadline look: the deployments to fail now, and the next cutoff still ahead (when the
    watcher looks again, so a deployment fails at its deadline, as Nomad's per-deployment timer does)."""
    ahead = []
    for dep_id in sorted(set(store.latest_deployment_of.values())):
        d = store.tables[TABLE].get(dep_id)
        if d is not None and d["Status"] == "running":
            cutoff = progress_cutoff(d)
            if cutoff is not None and cutoff > now:
                ahead.append(cutoff)
    return {"overdue": overdue(store, now), "next": min(ahead, default=None)}
