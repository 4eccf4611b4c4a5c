"""Scaling policies: the replicated ``scaling_policies`` table (Nomad's ``scaling_policy``).

As Nomad's state store (``updateJobScalingPolicies``,
``UpsertScalingPoliciesTxn``, ``deleteJobScalingPolicies``):

* Registering a job (any version of it: a register, a scale, a revert, a
  dispatch or a periodic launch) upserts one policy per group with a
  ``scaling`` block, keyed by its target (namespace, job, group) and type.
  A policy whose spec is unchanged keeps its ID and indexes; a changed one
  keeps its ID and CreateIndex and takes the entry's index as ModifyIndex;
  a new one is created at the entry's index.  The job's policies for
  groups that no longer have one are deleted.
* Purging a job (deregister with purge, or job GC) deletes its policies; a
  stopped job keeps them.

A new policy's ID is made from the entry's Raft index, the job and the
group (Nomad generates a UUID on the leader before the write): the same
log gives the same IDs on every server and in every replay.  Records are
Nomad's ``ScalingPolicy``: ID, Type, Target {Namespace, Job, Group},
Policy, Min, Max, Enabled, CreateIndex, ModifyIndex.

The table is derived from the jobs, and the log holds entries written
before it existed, when a group's ``Scaling`` was kept unchecked: a block
this version would refuse makes no policy (:func:`group_spec`; it never
raises), and a snapshot without the table is rebuilt from the jobs'
tracked versions (:func:`rebuild_from_jobs`), so a restored server holds
what one that replayed the log holds.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

TABLE = "scaling_policies"
POLICY_NS = uuid.UUID("7d0c3f4e-2a61-4b9e-9c2d-5e8f1a3b6c47")
_SPEC = ("Type", "Target", "Policy", "Min", "Max", "Enabled")  # what ScalingPolicy.Diff compares


def policy_id(index: int, job_id: str, group: str, cluster_id: str = "") -> str:
    """Derived from the registering entry's index, within the cluster once it has an ID
    (actors.state.cluster_meta; entries from before it derive the IDs they always did)."""
    name = f"{index}/{job_id}/{group}"
    return str(uuid.uuid5(POLICY_NS, f"{cluster_id}/{name}" if cluster_id else name))


def _job_key(namespace: str, job_id: str) -> str:
    return f"{namespace}\x00{job_id}"


def _of_job(store: Any, namespace: str, job_id: str) -> list[str]:
    return sorted(store.scaling_by_job.get(_job_key(namespace, job_id), ()))


def job_policies(store: Any, namespace: str, job_id: str) -> list[dict[str, Any]]:
    """The job's policies (the store's own records: do not modify), in ID order."""
    return [store.tables[TABLE][pid] for pid in _of_job(store, namespace, job_id)]


INT64_MAX = 2**63 - 1  # a policy's Min and Max are Go int64s
Wanted = dict[tuple[str, str], dict[str, Any]]  # (group, type) -> the policy's spec


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT64_MAX


def group_spec(namespace: str, job_id: str, g: Any) -> dict[str, Any] | None:
    """The policy a group's ``Scaling`` makes, or None: no scaling block, or one this
    version's job validation would refuse (non-negative integer Min <= Max, type
    ``horizontal``, boolean Enabled, an object or null Policy).  A job written to the
    log before scaling policies existed kept its ``Scaling`` unchecked: such a block
    makes no policy (it never raises), on every server and in every replay alike."""
    if not isinstance(g, dict) or not isinstance(g.get("Name"), str):
        return None
    sc = g.get("Scaling")
    if not sc or not isinstance(sc, dict):
        return None
    ptype, lo, hi = sc.get("Type", "horizontal"), sc.get("Min", 0), sc.get("Max", 0)
    enabled, policy = sc.get("Enabled", True), sc.get("Policy")
    if ptype != "horizontal" or not _int(lo) or not _int(hi) or lo > hi or not isinstance(enabled, bool) \
            or not (policy is None or isinstance(policy, dict)):
        return None
    return {"Type": ptype, "Target": {"Namespace": namespace, "Job": job_id, "Group": g["Name"]},
            "Policy": copy.deepcopy(policy), "Min": lo, "Max": hi, "Enabled": enabled}


def wanted_for_job(job: dict[str, Any]) -> Wanted:
    """The policies the job's groups ask for, by (group, type); pure, never raises."""
    ns, job_id = job.get("Namespace", "default"), job.get("ID")
    groups = job.get("TaskGroups")
    if not isinstance(ns, str) or not isinstance(job_id, str) or not isinstance(groups, list):
        return {}
    wanted: Wanted = {}
    for g in groups:
        spec = group_spec(ns, job_id, g)
        if spec is not None:
            wanted[(g["Name"], spec["Type"])] = spec
    return wanted


def update_for_job(store: Any, index: int, job: dict[str, Any], wanted: Wanted | None = None, *,
                   touch: bool = True) -> None:
    """Nomad's updateJobScalingPolicies: the job's policies as its groups' ``Scaling`` now say.

    *wanted*: :func:`wanted_for_job` of *job*, worked out before the entry wrote anything."""
    if wanted is None:
        wanted = wanted_for_job(job)
    table = store.tables[TABLE]
    ns, job_id = job.get("Namespace", "default"), job["ID"]
    existing = {(table[pid]["Target"].get("Group", ""), table[pid]["Type"]): pid
                for pid in _of_job(store, ns, job_id)}
    changed = False
    for key in sorted(set(existing) - set(wanted)):
        _remove(store, existing[key])
        changed = True
    for key in sorted(wanted):
        spec, pid = wanted[key], existing.get(key)
        if pid is not None:
            old = table[pid]
            if all(old.get(f) == spec[f] for f in _SPEC):
                continue
            table[pid] = {"ID": pid, **spec, "CreateIndex": old["CreateIndex"],
                          "ModifyIndex": index}
        else:
            pid = policy_id(index, job_id, key[0], store.cluster_id())
            table[pid] = {"ID": pid, **spec, "CreateIndex": index, "ModifyIndex": index}
            store.scaling_by_job.setdefault(_job_key(ns, job_id), set()).add(pid)
        changed = True
    if changed and touch:
        store._touch(TABLE, index)


def rebuild_from_jobs(store: Any) -> int:
    """The table from the jobs, for a snapshot written before it existed: each job's
    tracked versions, oldest first, make its policies as the log's entries did when
    they registered them (a version's entry is its JobModifyIndex), so the IDs and
    indexes are those a replay of the same log gives (exactly while the version that
    added a policy is still tracked; else from the oldest tracked one).  Returns the
    highest ModifyIndex made (0: none)."""
    store.tables[TABLE].clear()
    store.scaling_by_job = {}
    for job_id in sorted(store.tables["jobs"]):
        job = store.tables["jobs"][job_id]
        history = [v for v in reversed(store.tables["job_versions"].get(job_id, ()))
                   if isinstance(v, dict)]
        for v in [*sorted(history, key=lambda v: int(v.get("Version", 0))), job]:
            if (v.get("ID"), v.get("Namespace", "default")) == \
                    (job.get("ID"), job.get("Namespace", "default")):
                update_for_job(store, int(v.get("JobModifyIndex", 0)), v, touch=False)
    return max((p["ModifyIndex"] for p in store.tables[TABLE].values()), default=0)


def delete_for_job(store: Any, index: int, namespace: str, job_id: str) -> None:
    """Nomad's deleteJobScalingPolicies: a purged job's policies go with it."""
    pids = _of_job(store, namespace, job_id)
    for pid in pids:
        _remove(store, pid)
    if pids:
        store._touch(TABLE, index)


def _remove(store: Any, pid: str) -> None:
    p = store.tables[TABLE].pop(pid)
    key = _job_key(p["Target"].get("Namespace", "default"), p["Target"].get("Job", ""))
    ids = store.scaling_by_job.get(key)
    if ids is not None:
        ids.discard(pid)
        if not ids:
            del store.scaling_by_job[key]


def rebuild_index(store: Any) -> None:
    """The derived job -> policy IDs index, from the table (after a restore)."""
    store.scaling_by_job = {}
    for pid, p in store.tables[TABLE].items():
        key = _job_key(p["Target"].get("Namespace", "default"), p["Target"].get("Job", ""))
        store.scaling_by_job.setdefault(key, set()).add(pid)


def stub(p: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ScalingPolicyListStub."""
    return {"ID": p["ID"], "Enabled": p["Enabled"], "Type": p["Type"], "Target": dict(p["Target"]),
            "CreateIndex": p["CreateIndex"], "ModifyIndex": p["ModifyIndex"]}


def listed(tables: dict[str, Any], *, namespace: str = "default", job: str = "", type_: str = "",
           prefix: str = "") -> list[dict[str, Any]]:
    """Nomad's Scaling.ListPolicies, in ID order: an ID *prefix*, else the *job*'s (of exactly
    *type_* if given), else the namespace's (types starting with *type_*); namespace ``*``: all."""
    out = []
    for pid in sorted(tables.get(TABLE, {})):
        p = tables[TABLE][pid]
        if namespace != "*" and p["Target"].get("Namespace") != namespace:
            continue
        if prefix:
            if not pid.startswith(prefix):
                continue
        elif job:
            if p["Target"].get("Job") != job or (type_ and p["Type"] != type_):
                continue
        elif type_ and not p["Type"].startswith(type_):
            continue
        out.append(stub(p))
    return out


# ------------------------------------------------------------ scaling events
# Nomad's scaling_event table (structs.JobScalingEvents): one record per job, keyed here by the
# job's ID (as the jobs table is), {"Namespace", "JobID", "ScalingEvents": {group: [event, ...]},
# "ModifyIndex"}, each group's events newest first.  An event is Nomad's ScalingEvent: Time (Unix
# nanoseconds, from the time the entry carries), Count (null: an event without a count),
# PreviousCount, Message, Error, Meta, EvalID (null: no evaluation was made), CreateIndex.
EVENTS_TABLE = "scaling_event"
# Nomad's JobTrackedScalingEvents: the newest events kept per group; an older one is dropped.
JOB_TRACKED_SCALING_EVENTS = 20
SECOND_NS = 1_000_000_000


def make_event(now: float, index: int, *, count: int | None, previous: int, message: str, error: bool,
               meta: dict[str, Any] | None, eval_id: str | None) -> dict[str, Any]:
    """Nomad's ScalingEvent, its Time from *now* (the entry's time: the same on every server)."""
    return {"Time": int(now * SECOND_NS), "Count": count, "PreviousCount": previous, "Message": message,
            "Error": error, "Meta": copy.deepcopy(meta) if meta else None, "EvalID": eval_id,
            "CreateIndex": index}


def add_event(store: Any, index: int, namespace: str, job_id: str, group: str, event: dict[str, Any]) -> None:
    """Nomad's UpsertScalingEvent: *event* first in the group's list, the newest
    :data:`JOB_TRACKED_SCALING_EVENTS` kept.  Records are replaced, never changed in place."""
    from actors.state.namespaces import job_key

    table, key = store.tables[EVENTS_TABLE], job_key(namespace, job_id)  # keyed as the jobs table
    old = table.get(key)
    groups = {g: list(evs) for g, evs in (old or {}).get("ScalingEvents", {}).items()}
    groups[group] = [event, *groups.get(group, ())][:JOB_TRACKED_SCALING_EVENTS]
    table[key] = {"Namespace": namespace, "JobID": job_id, "ScalingEvents": groups, "ModifyIndex": index}
    store._touch(EVENTS_TABLE, index)


def delete_events_for_job(store: Any, index: int, job_id: str) -> None:
    """A purged job's scaling events go with it (Nomad's deleteJobTxn); *job_id*: its store key."""
    if store.tables[EVENTS_TABLE].pop(job_id, None) is not None:
        store._touch(EVENTS_TABLE, index)


def group_events(tables: dict[str, Any], job_id: str, group: str) -> list[dict[str, Any]] | None:
    """A group's events, newest first, as copies; None when it has none (Nomad's JSON: null).
    *job_id*: the job's store key (actors.state.namespaces.job_key)."""
    rec = tables.get(EVENTS_TABLE, {}).get(job_id)
    events = (rec or {}).get("ScalingEvents", {}).get(group)
    return copy.deepcopy(events) if events else None
