"""An operator's deletion of evaluations (Nomad ``Eval.Delete``, ``nomad eval delete``).

As Nomad's:

* Only while the scheduler configuration has ``PauseEvalBroker`` set (else
  "eval broker is enabled; eval broker must be paused to delete evals"),
  checked in the apply, so every server decides alike at the entry's place in
  the log.
* An evaluation may go only when nothing still needs it (``isEvalDeleteSafe``):
  its job is gone, stopped or dead; or none of its allocations is running or
  unknown, and none of its failed ones still waits on its reschedule policy.
* Named evaluations are all-or-nothing: one unknown ("eval not found") or
  unsafe ("eval <id> is not safe to delete") refuses the whole request. The
  IDs a filter chose (``by_filter``) are re-checked and the unsafe ones
  skipped, as Nomad's paged delete-by-filter does.

The filter itself is matched by the HTTP handler against the state it reads
(its regex budget is wall time, which an apply must not read); the command
carries the IDs, at most :data:`MAX_IDS_PER_COMMAND` of them.
"""
from __future__ import annotations

from typing import Any

from actors.state import scheduler_config as sched_cfg
from actors.state.namespaces import key_of

BROKER_NOT_PAUSED = "eval broker is enabled; eval broker must be paused to delete evals"
# Nomad's structs.MaxUUIDsPerWriteRequest: the most IDs one request may name.
MAX_IDS_PER_REQUEST = 7281
# Nomad pages a delete-by-filter at a tenth of that per Raft entry, so one
# apply does not hold the state machine for long.
MAX_IDS_PER_COMMAND = MAX_IDS_PER_REQUEST // 10


def _eval_allocs(store: Any, ev: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in store.job_allocs(key_of(ev)) if a.get("EvalID") == ev["ID"]]


def delete_safe(store: Any, ev: dict[str, Any]) -> bool:
    """Nomad's ``EvalIsUserDeleteSafe``."""
    job = store.tables["jobs"].get(key_of(ev))
    if job is None or job.get("Stop") or job.get("Status") == "dead":
        return True
    groups = {g.get("Name"): g for g in job.get("TaskGroups") or ()}
    for a in _eval_allocs(store, ev):
        status = a.get("ClientStatus")
        if status in ("running", "unknown"):
            return False
        if status != "failed":
            continue
        policy = (groups.get(a.get("TaskGroup")) or {}).get("ReschedulePolicy")
        if not policy or (not policy.get("Unlimited") and not policy.get("Attempts")):
            continue  # never rescheduled: nothing to carry forward
        if not a.get("NextAllocation"):
            return False  # its replacement has not taken the reschedule history yet
        if policy.get("Unlimited"):
            return False
        if not (a.get("RescheduleTracker") or {}).get("Events"):
            return False
    return True


def op_delete(store: Any, index: int, cmd: dict[str, Any]) -> dict[str, Any]:
    ids = cmd.get("evals")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return {"ok": False, "error": "evals must be a list of evaluation IDs"}
    if len(ids) > MAX_IDS_PER_REQUEST:
        return {"ok": False, "error": f"request includes {len(ids)} evaluation IDs, must be "
                                      f"{MAX_IDS_PER_REQUEST} or fewer"}
    if not sched_cfg.current(store.tables).get("PauseEvalBroker"):
        return {"ok": False, "error": BROKER_NOT_PAUSED}
    evals = store.tables["evals"]
    by_filter = bool(cmd.get("by_filter"))
    gone: list[str] = []
    for eid in dict.fromkeys(ids):  # once each, in the order given
        ev = evals.get(eid)
        if ev is None:
            if by_filter:
                continue
            return {"ok": False, "error": "eval not found"}
        if not delete_safe(store, ev):
            if by_filter:
                continue
            return {"ok": False, "error": f"eval {eid} is not safe to delete"}
        gone.append(eid)
    for eid in gone:
        ev = evals.pop(eid)
        for members in store.evals_by_status.values():
            members.discard(eid)
        store._unindex_eval(eid, key_of(ev))
    if gone:
        store._touch("evals", index)
    return {"ok": True, "index": index, "count": len(gone)}
