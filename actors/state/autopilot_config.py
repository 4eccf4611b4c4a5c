"""The cluster's autopilot configuration: one replicated record (Nomad's ``AutopilotConfig``).

Nomad keeps the operator's autopilot settings in the replicated state, so
every server uses the same values whatever its own agent config says: the
leader writes the agent's ``autopilot`` block there when it finds none
(``getOrCreateAutopilotConfig``), and ``nomad operator autopilot
set-config`` / ``PUT /v1/operator/autopilot/configuration`` change it
(:mod:`actors.http_autopilot_config`).  Until a record is written, each
server uses its own agent config.

The record, as stored (durations in nanoseconds, Go's ``time.Duration``)::

    CleanupDeadServers, LastContactThreshold, MaxTrailingLogs, MinQuorum,
    ServerStabilizationTime, EnableRedundancyZones, DisableUpgradeMigration,
    EnableCustomUpgrades, CreateIndex, ModifyIndex

What follows it here (:mod:`actors.raft.membership`, :mod:`actors.raft.peer`):
the dead-server cleanup (``CleanupDeadServers``; ``MinQuorum``: voters are
removed only while that many would remain), server health in
``/v1/operator/autopilot/health`` (``LastContactThreshold``,
``MaxTrailingLogs``), and the promotion of a new server to voter
(``ServerStabilizationTime``, ``MaxTrailingLogs``).  The three
Enterprise-only flags are kept and answered, and change nothing (as in
Nomad's open-source edition).

The HTTP API shows durations as Go writes them (``"200ms"``, ``"10s"``):
:func:`to_api` and :func:`from_api`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

TABLE = "autopilot_config"
KEY = "config"
FLAGS = ("CleanupDeadServers", "EnableRedundancyZones", "DisableUpgradeMigration", "EnableCustomUpgrades")
DURATIONS = ("LastContactThreshold", "ServerStabilizationTime")
COUNTS = (("MaxTrailingLogs", "uint64", 2 ** 64), ("MinQuorum", "uint", 2 ** 64))
# Field order of Nomad's api.AutopilotConfiguration.
FIELDS = ("CleanupDeadServers", "LastContactThreshold", "MaxTrailingLogs", "MinQuorum",
          "ServerStabilizationTime", "EnableRedundancyZones", "DisableUpgradeMigration",
          "EnableCustomUpgrades")
_MAX_NS = 2 ** 63 - 1  # a Go time.Duration


def record(*, cleanup_dead_servers: bool, last_contact_threshold_s: float, max_trailing_logs: int,
           min_quorum: int, server_stabilization_time_s: float) -> dict[str, Any]:
    """A configuration (without indexes) from an agent's ``autopilot`` block."""
    return {"CleanupDeadServers": bool(cleanup_dead_servers),
            "LastContactThreshold": round(last_contact_threshold_s * 1e9),
            "MaxTrailingLogs": int(max_trailing_logs), "MinQuorum": int(min_quorum),
            "ServerStabilizationTime": round(server_stabilization_time_s * 1e9),
            "EnableRedundancyZones": False, "DisableUpgradeMigration": False, "EnableCustomUpgrades": False}


def current(tables: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The replicated configuration, or None before any was written: do not modify."""
    return tables.get(TABLE, {}).get(KEY)


def checked(raw: Any) -> dict[str, Any]:
    """A stored-form configuration, checked whole (what the state machine accepts); ValueError."""
    if not isinstance(raw, dict):
        raise ValueError("autopilot configuration must be an object")
    out: dict[str, Any] = {}
    for k in FLAGS:
        v = raw.get(k, False)
        if not isinstance(v, bool):
            raise ValueError(f"{k}: must be a boolean")
        out[k] = v
    for k in DURATIONS:
        v = raw.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _MAX_NS:
            raise ValueError(f"{k}: must be a duration of 0 or more nanoseconds")
        out[k] = v
    for k, _, limit in COUNTS:
        v = raw.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < limit:
            raise ValueError(f"{k}: must be an integer of 0 or more")
        out[k] = v
    return out


def set_config(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``autopilot_set_config``: replace the configuration; with ``cas``, only if its ModifyIndex is that.

    ``cas`` 0 means "only if none was written yet" (a written one has a
    ModifyIndex of at least 1): the leader seeds the record from its agent
    config that way, so it never overwrites an operator's.
    """
    try:
        config = checked(cmd.get("config"))
    except ValueError as e:
        return {"ok": False, "error": str(e)}
    table = store.tables[TABLE]
    old = table.get(KEY)
    cas = cmd.get("cas")
    if cas is not None and (old["ModifyIndex"] if old else 0) != cas:
        return {"ok": True, "updated": False}
    table[KEY] = {**copy.deepcopy(config), "CreateIndex": old["CreateIndex"] if old else index,
                  "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "updated": True, "index": index}


# ---------------------------------------------------------------- the HTTP API's form


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``200ms``, ``10s``, ``1m30s``, ``1h0m0s``, ``1.5µs``, ``0s``."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_frac(u, 3)}\u00b5s"
        return f"{sign}{_frac(u, 6)}ms"
    whole, part = divmod(u, 1_000_000_000)
    text = f"{whole % 60}{_frac(part, 9)[1:]}s"
    minutes = whole // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _frac(u: int, prec: int) -> str:
    """``u / 10**prec`` with the fraction's trailing zeros (and a bare point) left out, as Go's fmtFrac."""
    whole, part = divmod(u, 10 ** prec)
    digits = f"{part:0{prec}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else f"{whole}"


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds; ValueError with Go's message."""
    from runtime.config import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"time: invalid duration {json.dumps(text, ensure_ascii=False)}") from None
    return round(seconds * 1e9)


def to_api(rec: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``api.AutopilotConfiguration`` JSON: durations as Go duration strings."""
    out = {k: go_duration(rec[k]) if k in DURATIONS else rec[k] for k in FIELDS}
    out["CreateIndex"], out["ModifyIndex"] = rec.get("CreateIndex", 0), rec.get("ModifyIndex", 0)
    return out


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return f"number {json.dumps(v)}"
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def from_api(raw: Any) -> dict[str, Any]:
    """A request body decoded as Nomad's handler decodes it (``api.AutopilotConfiguration``); ValueError.

    Omitted or null fields (or a null body) take Go's zero values, unknown ones (and the
    indexes) are ignored, durations are Go duration strings (``""`` is 0).
    Beyond Nomad: a negative duration is refused (it would make every
    server unhealthy, or a new server a voter at once).
    """
    if raw is None:  # JSON null: Go decodes it to the zero configuration
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"json: cannot unmarshal {_json_kind(raw).split(' ')[0]} into Go value of type "
                         "api.AutopilotConfiguration")
    out: dict[str, Any] = {}
    for k in FLAGS:
        v = raw.get(k)
        if v is not None and not isinstance(v, bool):
            raise ValueError(f"json: cannot unmarshal {_json_kind(v).split(' ')[0]} into Go struct field "
                             f"AutopilotConfiguration.{k} of type bool")
        out[k] = bool(v)
    for k, go_type, limit in COUNTS:
        v = raw.get(k)
        if v is None:
            out[k] = 0
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < limit:  # Go: 5.0 is no uint
            raise ValueError(f"json: cannot unmarshal {_json_kind(v)} into Go struct field "
                             f"AutopilotConfiguration.{k} of type {go_type}")
        out[k] = v
    for k in DURATIONS:
        v = raw.get(k)
        if v is None or v == "":
            out[k] = 0
            continue
        if not isinstance(v, str):
            raise ValueError(f"json: cannot unmarshal {_json_kind(v).split(' ')[0]} into Go struct field "
                             f".{k} of type string")
        ns = parse_go_duration(v)
        if ns < 0:
            raise ValueError(f"{k}: must not be negative, got {v}")
        out[k] = ns
    return out
