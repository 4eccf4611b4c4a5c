"""Disconnected clients: the pure rules shared by the heartbeat expiry, the scheduler and the state store.

Nomad 1.8+ (``nomad/structs/alloc.go``, ``nomad/heartbeat.go`` disconnectState,
``scheduler/reconciler/filters.go``, ``reconnecting_picker.go``):

* a group's ``Disconnect.LostAfter`` (ns) is how long its allocations on a
  node that missed its heartbeats stay ``unknown`` before they are ``lost``;
  0 (or no block) means they are lost at once, as before;
* an allocation's ``AllocStates`` records its client-status transitions the
  servers made (``{"Field": "ClientStatus", "Value": "unknown", "Time": t}``):
  the last ``unknown`` one is when its window opened (``last_unknown``), and
  while the last recorded one is ``unknown`` it still has to reconnect;
* when the node comes back, the group's ``Disconnect.Reconcile`` picks which
  of the original and its replacement is kept.

Times are seconds (the leader's clock, carried in the Raft commands).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UNKNOWN = "unknown"
FIELD_CLIENT_STATUS = "ClientStatus"
# Nomad's scheduler descriptions (scheduler/structs/const.go) and eval triggers (structs/eval.go).
STATUS_UNKNOWN = "alloc is unknown since its node is disconnected"
STOP_RECONNECTED = "alloc not needed due to disconnected client reconnect"
TRIGGER_DISCONNECT_TIMEOUT = "max-disconnect-timeout"
TRIGGER_RECONNECT = "reconnect"
DESC_DISCONNECT_TIMEOUT = "created for delayed disconnect timeout"


def _group(alloc: dict[str, Any]) -> dict[str, Any] | None:
    job = alloc.get("Job") or {}
    for g in job.get("TaskGroups") or ():
        if g.get("Name") == alloc.get("TaskGroup"):
            return g
    return None


def strategy(group: dict[str, Any] | None) -> dict[str, Any]:
    d = (group or {}).get("Disconnect")
    return d if isinstance(d, dict) else {}


def lost_after_s(alloc: dict[str, Any]) -> float:
    """The allocation's group's ``Disconnect.LostAfter``, in seconds (0: none)."""
    return int(strategy(_group(alloc)).get("LostAfter") or 0) / 1e9


def stop_on_client_after_s(alloc: dict[str, Any]) -> float | None:
    """The allocation's group's ``Disconnect.StopOnClientAfter``, in seconds, or None when unset."""
    v = strategy(_group(alloc)).get("StopOnClientAfter")
    return None if v is None else int(v) / 1e9


def replace_on_disconnect(alloc: dict[str, Any]) -> bool:
    """Nomad's ``TaskGroup.Replace``: true unless the group says ``replace = false``."""
    return strategy(_group(alloc)).get("Replace") is not False


def last_unknown(alloc: dict[str, Any]) -> float | None:
    """When the allocation last went ``unknown`` (Nomad's LastUnknown), or None."""
    found = None
    for s in reversed(alloc.get("AllocStates") or ()):
        if s.get("Field") != FIELD_CLIENT_STATUS:
            continue
        if s.get("Value") == UNKNOWN:
            found = float(s.get("Time", 0.0))
        elif found is not None:
            break
    return found


def expired(alloc: dict[str, Any], now: float) -> bool:
    """An ``unknown`` allocation whose lost_after window has passed (Nomad's Allocation.Expired)."""
    if alloc.get("ClientStatus") != UNKNOWN:
        return False
    since = last_unknown(alloc)
    return since is not None and since + lost_after_s(alloc) <= now


def needs_to_reconnect(alloc: dict[str, Any]) -> bool:
    """The last client status the servers recorded is ``unknown`` (Nomad's NeedsToReconnect)."""
    for s in reversed(alloc.get("AllocStates") or ()):
        if s.get("Field") == FIELD_CLIENT_STATUS and s.get("Value"):
            return s["Value"] == UNKNOWN
    return False


def with_state(alloc: dict[str, Any], value: str, now: float) -> list[dict[str, Any]]:
    """The allocation's AllocStates with one more client-status transition (Nomad's AppendState)."""
    return [*(alloc.get("AllocStates") or ()), {"Field": FIELD_CLIENT_STATUS, "Value": value, "Time": now}]


def node_disconnect_state(allocs: Any, now: float) -> tuple[bool, bool]:
    """Nomad's ``disconnectState`` over a node's allocations: (can disconnect, has one to wait for).

    A node can disconnect when one of its allocations has a lost_after window;
    it goes ``disconnected`` (not ``down``) when such an allocation is still
    wanted and its window, if already open, has not passed.
    """
    can = False
    for a in allocs:
        if lost_after_s(a) <= 0:
            continue
        can = True
        if a.get("DesiredStatus") == "run" and not expired(a, now):
            return True, True
    return can, False


def _max_norm_score(alloc: dict[str, Any]) -> float | None:
    """Nomad's AllocMetric.MaxNormScore: the best final score among the nodes scored for *alloc*'s
    placement (its Metrics, stored compact: actors.scheduler.scheduler.stored_metric)."""
    from actors.scheduler.scheduler import metric_out  # the scheduler imports this module

    metrics = metric_out(alloc.get("Metrics"))
    scores = [s.get("NormScore") for s in ((metrics if isinstance(metrics, dict) else {}).get("ScoreMetaData")
                                           or ())
              if isinstance(s, dict) and isinstance(s.get("NormScore"), (int, float))]
    return max(scores) if scores else None


def _started(alloc: dict[str, Any], group: dict[str, Any] | None) -> float | None:
    """When the leader task, else the oldest main task, last started (Nomad's LastStartOfTask)."""
    oldest = None
    for task in (group or {}).get("Tasks") or ():
        ts = (alloc.get("TaskStates") or {}).get(task.get("Name")) or {}
        t = None
        for key in ("StartedAt", "LastRestart"):
            v = ts.get(key)
            if isinstance(v, str) and v and not v.startswith("0001-"):
                try:
                    at = dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    continue
                t = at if t is None else max(t, at)
        if task.get("Leader"):
            return t
        if t is not None and (oldest is None or t < oldest):
            oldest = t
    return oldest


def pick(original: dict[str, Any], replacement: dict[str, Any],
         group: dict[str, Any] | None) -> dict[str, Any]:
    """Which of a reconnecting allocation and its replacement is kept (Nomad's reconnectingPicker)."""
    if (replacement.get("JobVersion", 0) > original.get("JobVersion", 0)
            or (replacement.get("Job") or {}).get("CreateIndex", 0) > (original.get("Job") or {}).get(
                "CreateIndex", 0)):
        return replacement  # a newer job version
    how = strategy(group).get("Reconcile") or "best_score"
    if how == "keep_original":
        return original
    if how == "keep_replacement":
        return replacement
    if how == "longest_running":
        o, r = _started(original, group), _started(replacement, group)
        if o is None and r is not None:
            return replacement
        if o is not None and r is None:
            return original
        if o is not None and r is not None:
            return original if o < r else replacement
    # best_score (and longest_running with neither started)
    o_score, r_score = _max_norm_score(original), _max_norm_score(replacement)
    better = (o_score is None and r_score is not None) or (
        o_score is not None and r_score is not None and r_score > o_score)
    if better and (replacement.get("ClientStatus") == "running" or original.get("ClientStatus") != "running"):
        return replacement
    return original
