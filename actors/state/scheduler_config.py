"""The cluster's scheduler configuration: one replicated record (Nomad's ``SchedulerConfiguration``).

``/v1/operator/scheduler/configuration`` reads and sets it
(:mod:`actors.http_scheduler_config`); what each field does here:

* ``SchedulerAlgorithm``: ``binpack`` (fill the fullest node that fits,
  Nomad's default) or ``spread`` (the emptiest), read by the scheduler on
  every placement (:func:`actors.scheduler.scheduler.compute_plan`).
* ``RejectJobRegistration``: job registrations, reverts, dispatches and
  scales from anyone but a management token are refused with Nomad's 403
  (load shedding).  Checked when the write applies, on every server alike;
  with ACLs disabled there is no management token, so every one is refused,
  as in Nomad.
* ``PauseEvalBroker``: the leader's broker hands out no evaluation while
  it is set; evaluations keep accumulating as pending and are scheduled
  once it is cleared.
* ``MemoryOversubscriptionEnabled``: while it is set, a task's ``memory_max``
  reaches the allocations placed (and so the client, which makes it the
  task's hard memory limit); while it is not, the scheduler leaves it out
  and job registration warns that it will be ignored, as Nomad does.
  Either way placement counts ``memory`` (MemoryMB) alone.
* ``NodeLimitForFeasibilityChecks``: how many feasible nodes are scored for
  each placement of a group with ``affinity`` or ``spread`` blocks (the
  group's count when that is more); 0 -- as an operator leaves it -- means
  Nomad's default, 100.  Without affinities or spreads a placement scores
  log2 of the node count (at least 2; a batch job 2), as in Nomad.
* ``PreemptionConfig``: which schedulers may evict lower-priority
  allocations to place (:func:`preemption_enabled`; system by default, as
  Nomad; see ``actors/scheduler/preemption.py``).

Until an operator sets it, the record is Nomad's defaults at index 0.
"""

from __future__ import annotations

import copy
from typing import Any

TABLE = "scheduler_config"
KEY = "config"
BINPACK, SPREAD = "binpack", "spread"
JOB_REGISTRATION_DISABLED = ("Job registration, dispatch, and scale are disabled by the scheduler "
                             "configuration")  # Nomad's ErrJobRegistrationDisabled, a 403

# Nomad's defaults (nomad/config.go DefaultConfig's DefaultSchedulerConfig).
DEFAULTS: dict[str, Any] = {
    "SchedulerAlgorithm": BINPACK,
    "PreemptionConfig": {"SystemSchedulerEnabled": True, "SysBatchSchedulerEnabled": False,
                         "BatchSchedulerEnabled": False, "ServiceSchedulerEnabled": False},
    "MemoryOversubscriptionEnabled": False,
    "RejectJobRegistration": False,
    "PauseEvalBroker": False,
    "NodeLimitForFeasibilityChecks": 0,  # 0: DEFAULT_NODE_LIMIT (Nomad answers the 0 it stores)
    "CreateIndex": 0,
    "ModifyIndex": 0,
}
# Nomad's DefaultNodeLimitForFeasibilityChecks: feasible nodes scored per placement of a group with
# affinities or spreads while NodeLimitForFeasibilityChecks is 0 (scoring a spread over every node is
# quadratic in the cluster; a hundred random ones place it well enough).
DEFAULT_NODE_LIMIT = 100
_FLAGS = ("MemoryOversubscriptionEnabled", "RejectJobRegistration", "PauseEvalBroker")


def current(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The configuration in force (the store's own record or the defaults): do not modify."""
    return tables.get(TABLE, {}).get(KEY) or DEFAULTS


def memory_oversubscription(tables: dict[str, dict[str, Any]]) -> bool:
    return bool(current(tables).get("MemoryOversubscriptionEnabled"))


# Which PreemptionConfig flag a job type's scheduler honours (Nomad's generic_sched selectNextOption and
# NewSystemStack).
_PREEMPTION_FLAG = {"service": "ServiceSchedulerEnabled", "batch": "BatchSchedulerEnabled",
                    "system": "SystemSchedulerEnabled", "sysbatch": "SysBatchSchedulerEnabled"}


def preemption_enabled(tables: dict[str, dict[str, Any]], job_type: str) -> bool:
    """The scheduler of *job_type* may preempt (its PreemptionConfig flag; an unknown type may not)."""
    flag = _PREEMPTION_FLAG.get(job_type)
    if flag is None:
        return False
    pre = current(tables).get("PreemptionConfig") or DEFAULTS["PreemptionConfig"]
    return bool(pre.get(flag, DEFAULTS["PreemptionConfig"][flag]))


def algorithm(tables: dict[str, dict[str, Any]]) -> str:
    return current(tables).get("SchedulerAlgorithm") or BINPACK


def node_limit(tables: dict[str, dict[str, Any]]) -> int:
    """Nomad's GetNodeLimitForFeasibilityChecks: the configured limit, or the default when it is 0."""
    return int(current(tables).get("NodeLimitForFeasibilityChecks") or 0) or DEFAULT_NODE_LIMIT


def validated(raw: Any) -> dict[str, Any]:
    """A configuration from a request body, in full (omitted fields: Nomad's zero values); ValueError."""
    if not isinstance(raw, dict):
        raise ValueError("scheduler configuration must be an object")
    algo = raw.get("SchedulerAlgorithm", "") or BINPACK
    if algo not in (BINPACK, SPREAD):
        raise ValueError(f"invalid scheduler algorithm: {algo}")
    out: dict[str, Any] = {"SchedulerAlgorithm": algo}
    for k in _FLAGS:
        v = raw.get(k, False)
        if not isinstance(v, bool):
            raise ValueError(f"{k}: must be a boolean, got {type(v).__name__}")
        out[k] = v
    limit = raw.get("NodeLimitForFeasibilityChecks", 0)
    if limit is None:
        limit = 0
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    # Nomad's field is a uint: a negative or fractional number does not decode.
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < 1 << 64:
        raise ValueError(f"NodeLimitForFeasibilityChecks: must be a non-negative integer, got {limit!r}")
    out["NodeLimitForFeasibilityChecks"] = limit
    pre = raw.get("PreemptionConfig")
    if pre is None:
        pre = {}
    if not isinstance(pre, dict):
        raise ValueError("PreemptionConfig: must be an object")
    out["PreemptionConfig"] = {}
    for k in DEFAULTS["PreemptionConfig"]:
        v = pre.get(k, False)
        if not isinstance(v, bool):
            raise ValueError(f"PreemptionConfig.{k}: must be a boolean, got {type(v).__name__}")
        out["PreemptionConfig"][k] = v
    return out


def set_config(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``scheduler_set_config``: replace the configuration; with ``cas``, only if its ModifyIndex is that."""
    try:
        config = validated(cmd.get("config"))
    except ValueError as e:
        return {"ok": False, "error": str(e)}
    table = store.tables[TABLE]
    old = current(store.tables)
    cas = cmd.get("cas")
    if cas is not None and old["ModifyIndex"] != cas:
        return {"ok": True, "updated": False}
    table[KEY] = {**copy.deepcopy(config), "CreateIndex": old["CreateIndex"] or index, "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "updated": True, "index": index}


def registration_refused(tables: dict[str, dict[str, Any]], cmd: dict[str, Any]) -> bool:
    """A user's job write (``rejectable``: not a management token's) while RejectJobRegistration is set."""
    return bool(cmd.get("rejectable")) and bool(current(tables).get("RejectJobRegistration"))
