"""Evaluation, allocation and job garbage collection: the pure rules.

Nomad's core scheduler (``nomad/core_sched.go``, NOMAD.md §4) collects on
the leader, every 5 minutes:

* **eval-gc** -- an evaluation that is terminal (``complete``, ``failed``,
  ``canceled``) and unchanged for ``eval_gc_threshold`` (1 h; a batch job's
  evaluations ``batch_eval_gc_threshold``, 24 h), together with its
  allocations, once every one of them is collectable.  The evaluations of a
  batch job that still exists and is not stopped are kept, and so are their
  allocations: a finished batch allocation is how the scheduler knows not to
  run it again.
* **an allocation** is collectable when it is terminal (server- or
  client-terminal), unchanged for the threshold, not still ``running`` on
  its client, and either its job is gone, stopped or dead, or the server
  stopped it, or it did not fail (a failed one waits until the scheduler has
  replaced it and stopped it).
* **job-gc** -- every ``job_gc_interval`` (5 min), a ``dead`` job last
  submitted before ``job_gc_threshold`` (4 h) whose every evaluation (batch
  ones included) and allocation is collectable is removed with them (and
  its deployments).
* **deployment-gc** -- with eval-gc, a deployment that ended (successful,
  failed, cancelled) and is unchanged for ``deployment_gc_threshold`` (1 h),
  unless an allocation it placed still runs.

The same functions pick the candidates in the leader's read and run again
inside the state store's ``core_gc`` command with the cutoffs the command
carries, so a job re-registered (or an allocation updated) between the scan
and the commit is kept -- every server decides identically.  Times are the
records' ``ModifyTime``/``SubmitTime``, set from the leader's clock inside
the commands that changed them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actors.state.namespaces import key_of

TERMINAL_EVAL_STATUSES = ("complete", "failed", "canceled")  # Evaluation.TerminalStatus
TERMINAL_CLIENT_STATUSES = ("complete", "failed", "lost")  # Allocation.ClientTerminalStatus
TERMINAL_DESIRED_STATUSES = ("stop", "evict")  # Allocation.ServerTerminalStatus
# Nomad structs.MaxUUIDsPerWriteRequest / core_sched maxIdsPerReap: IDs per Raft write.
MAX_IDS_PER_WRITE = 7281


def alloc_terminal(alloc: Mapping[str, Any]) -> bool:
    """Nomad ``Allocation.TerminalStatus``: server-terminal or client-terminal."""
    return (alloc.get("DesiredStatus") in TERMINAL_DESIRED_STATUSES
            or alloc.get("ClientStatus") in TERMINAL_CLIENT_STATUSES)


def job_dead_or_gone(job: Mapping[str, Any] | None) -> bool:
    return job is None or bool(job.get("Stop")) or job.get("Status") == "dead"


def alloc_gc_eligible(alloc: Mapping[str, Any], job: Mapping[str, Any] | None, cutoff: float) -> bool:
    """Nomad ``allocGCEligible`` (the reschedule-policy cases reduced to "not yet replaced")."""
    if not alloc_terminal(alloc) or float(alloc.get("ModifyTime", 0.0)) >= cutoff:
        return False
    if alloc.get("ClientStatus") == "running":
        return False  # the client still runs it: its stop is not acknowledged yet
    if job_dead_or_gone(job) or alloc.get("DesiredStatus") in TERMINAL_DESIRED_STATUSES:
        return True
    # Desired "run" and client-terminal: a failed one is the scheduler's
    # to replace (it stops it when it does); anything else is done.
    return alloc.get("ClientStatus") != "failed"


def eval_gc(ev: Mapping[str, Any], job: Mapping[str, Any] | None, allocs: Iterable[Mapping[str, Any]],
            cutoff: float, *, allow_batch: bool) -> tuple[bool, list[str]]:
    """Nomad ``gcEval``: (collect the evaluation?, the IDs of its allocations that can go)."""
    if ev.get("Status") not in TERMINAL_EVAL_STATUSES or float(ev.get("ModifyTime", 0.0)) >= cutoff:
        return False, []
    if ev.get("Type") == "batch" and job is not None and not job.get("Stop"):
        # A live batch job: its finished allocations keep it from running again.
        if job.get("Status") != "dead" or not allow_batch:
            return False, []
    collect, ids = True, []
    for a in allocs:
        if alloc_gc_eligible(a, job, cutoff):
            ids.append(a["ID"])
        else:
            collect = False
    return collect, ids


def allocs_by_eval(allocs: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for a in allocs:
        out.setdefault(a.get("EvalID", ""), []).append(a)
    return out


def evals_by_job(evals: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for ev in evals:
        out.setdefault(key_of(ev), []).append(ev)
    return out


def eval_gc_candidates(tables: Mapping[str, Mapping[str, Any]], cutoff: float, batch_cutoff: float
                       ) -> tuple[list[str], list[str]]:
    """eval-gc over the whole state: (evaluation IDs, allocation IDs), each sorted."""
    jobs, evals = tables["jobs"], tables["evals"]
    by_eval = allocs_by_eval(tables["allocs"].values())
    gc_evals: list[str] = []
    gc_allocs: list[str] = []
    for eid in sorted(evals):
        ev = evals[eid]
        c = batch_cutoff if ev.get("Type") == "batch" else cutoff
        collect, ids = eval_gc(ev, jobs.get(key_of(ev)), by_eval.get(eid, ()), c, allow_batch=False)
        if collect:
            gc_evals.append(eid)
        gc_allocs.extend(ids)
    return gc_evals, sorted(gc_allocs)


def job_gc_eligible(job: Mapping[str, Any], cutoff: float) -> bool:
    """Nomad ``jobIsGCable`` plus the age check: dead (periodic/parameterized: stopped) and old."""
    if job.get("Periodic") or job.get("ParameterizedJob"):
        if not job.get("Stop"):
            return False
    elif job.get("Status") != "dead":
        return False
    return float(job.get("SubmitTime", 0.0)) < cutoff


def job_gc(job: Mapping[str, Any], evals: Iterable[Mapping[str, Any]],
           allocs: Iterable[Mapping[str, Any]], cutoff: float) -> tuple[bool, list[str], list[str]]:
    """(collect the job?, its evaluation IDs, its allocation IDs) -- all or nothing.

    *allocs* are all of the job's allocations: one that belongs to none of
    its evaluations must be collectable too.
    """
    if not job_gc_eligible(job, cutoff):
        return False, [], []
    allocs = list(allocs)
    by_eval = allocs_by_eval(allocs)
    eval_ids: list[str] = []
    for ev in evals:
        collect, _ = eval_gc(ev, job, by_eval.get(ev["ID"], ()), cutoff, allow_batch=True)
        if not collect:
            return False, [], []
        eval_ids.append(ev["ID"])
    if not all(alloc_gc_eligible(a, job, cutoff) for a in allocs):
        return False, [], []
    return True, eval_ids, [a["ID"] for a in allocs]


def has_tagged_version(tables: Mapping[str, Mapping[str, Any]], job_id: str) -> bool:
    """Nomad's job GC keeps a job any of whose versions is tagged (Nomad 1.9 version tags)."""
    job = tables["jobs"].get(job_id) or {}
    return bool(job.get("VersionTag")) or any(v.get("VersionTag")
                                              for v in tables.get("job_versions", {}).get(job_id, ()))


def job_gc_candidates(tables: Mapping[str, Mapping[str, Any]], cutoff: float) -> list[str]:
    """job-gc over the whole state: the IDs of the jobs to remove, sorted."""
    jobs = tables["jobs"]
    by_job = evals_by_job(tables["evals"].values())
    allocs_of: dict[str, list[Mapping[str, Any]]] = {}
    for a in tables["allocs"].values():
        allocs_of.setdefault(key_of(a), []).append(a)
    return [jid for jid in sorted(jobs)
            if not has_tagged_version(tables, jid)
            and job_gc(jobs[jid], by_job.get(jid, ()), allocs_of.get(jid, ()), cutoff)[0]]


TERMINAL_DEPLOYMENT_STATUSES = ("successful", "failed", "cancelled")  # Deployment.Active() is false


def deployments_in_use(allocs: Iterable[Mapping[str, Any]]) -> set[str]:
    """Deployments an allocation that is not terminal still belongs to."""
    return {a["DeploymentID"] for a in allocs if a.get("DeploymentID") and not alloc_terminal(a)
            and a.get("ClientStatus") not in TERMINAL_CLIENT_STATUSES}


def deployment_gc_eligible(d: Mapping[str, Any], cutoff: float, in_use: set[str]) -> bool:
    return (d.get("Status") in TERMINAL_DEPLOYMENT_STATUSES and float(d.get("ModifyTime", 0.0)) < cutoff
            and d["ID"] not in in_use)


def deployment_gc_candidates(tables: Mapping[str, Mapping[str, Any]], cutoff: float) -> list[str]:
    deps = tables.get("deployments", {})
    if not deps:
        return []
    in_use = deployments_in_use(tables["allocs"].values())
    return sorted(i for i, d in deps.items() if deployment_gc_eligible(d, cutoff, in_use))


def gc_scan(state: Any, cutoff: float, batch_cutoff: float, job_cutoff: float, jobs: bool, evals: bool,
            deployment_cutoff: float | None = None) -> dict[str, list[str]]:
    """Read query (runs inside Raft on the leader's state store)."""
    out: dict[str, list[str]] = {"jobs": [], "evals": [], "allocs": [], "deployments": []}
    if jobs:
        out["jobs"] = job_gc_candidates(state.tables, job_cutoff)
    if evals:
        out["evals"], out["allocs"] = eval_gc_candidates(state.tables, cutoff, batch_cutoff)
    if deployment_cutoff is not None:
        out["deployments"] = deployment_gc_candidates(state.tables, deployment_cutoff)
    return out
