"""``nomad operator scheduler get-config | set-config``, as Nomad's ``command/operator_scheduler_*.go``.

``get-config [-json]`` prints the configuration aligned as Nomad's
``formatKV``.  ``set-config`` reads the current configuration, changes
only the fields whose flags are given, and writes it back; with
``-check-index=N`` the write happens only if nobody changed it since index
N (compare-and-set), else it fails saying so.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.cli import CliError
from runtime.cli_jobs import kv, parse_flags, request

__all__ = ["SCHEDULER_COMMANDS"]

_PATH = "/v1/operator/scheduler/configuration"
# set-config flag -> (field, inside PreemptionConfig)
_BOOL_FLAGS = {
    "memory-oversubscription": ("MemoryOversubscriptionEnabled", False),
    "reject-job-registration": ("RejectJobRegistration", False),
    "pause-eval-broker": ("PauseEvalBroker", False),
    "preempt-batch-scheduler": ("BatchSchedulerEnabled", True),
    "preempt-service-scheduler": ("ServiceSchedulerEnabled", True),
    "preempt-sysbatch-scheduler": ("SysBatchSchedulerEnabled", True),
    "preempt-system-scheduler": ("SystemSchedulerEnabled", True),
}

# Feasible nodes scored per placement of a group with affinities or spreads (0: Nomad's default, 100).
_NODE_LIMIT_FLAG = "node-limit-for-feasibility-checks"


def _b(v: Any) -> str:
    return "true" if v else "false"


def get_config(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    cfg = request(addr, "GET", _PATH)["SchedulerConfig"]
    if flags.get("json"):
        return json.dumps(cfg, indent=4, sort_keys=True)
    pre = cfg.get("PreemptionConfig") or {}
    return kv([("Scheduler Algorithm", cfg.get("SchedulerAlgorithm", "")),
               ("Memory Oversubscription", _b(cfg.get("MemoryOversubscriptionEnabled"))),
               ("Reject Job Registration", _b(cfg.get("RejectJobRegistration"))),
               ("Pause Eval Broker", _b(cfg.get("PauseEvalBroker"))),
               ("Preemption System Scheduler", _b(pre.get("SystemSchedulerEnabled"))),
               ("Preemption Service Scheduler", _b(pre.get("ServiceSchedulerEnabled"))),
               ("Preemption Batch Scheduler", _b(pre.get("BatchSchedulerEnabled"))),
               ("Preemption SysBatch Scheduler", _b(pre.get("SysBatchSchedulerEnabled"))),
               ("Node Limit For Feasibility Checks", str(cfg.get("NodeLimitForFeasibilityChecks", 0))),
               ("Modify Index", str(cfg.get("ModifyIndex", 0)))])


def set_config(addr: str, args: list[str]) -> tuple[str, int]:
    spec: dict[str, type] = {"scheduler-algorithm": str, "check-index": str, _NODE_LIMIT_FLAG: str,
                             **{f: str for f in _BOOL_FLAGS}}
    flags, rest = parse_flags(args, spec)
    if rest:
        raise CliError("This command takes no arguments")
    cfg = request(addr, "GET", _PATH)["SchedulerConfig"]
    cfg = {**cfg, "PreemptionConfig": dict(cfg.get("PreemptionConfig") or {})}
    if "scheduler-algorithm" in flags:
        algo = flags["scheduler-algorithm"]
        if algo not in ("binpack", "spread"):
            raise CliError(f'Invalid scheduler algorithm "{algo}": must be one of binpack, spread')
        cfg["SchedulerAlgorithm"] = algo
    for flag, (field, preemption) in _BOOL_FLAGS.items():
        if flag not in flags:
            continue
        raw = flags[flag].lower()
        if raw not in ("true", "false"):
            raise CliError(f'Invalid value "{flags[flag]}" for -{flag}: must be true or false')
        (cfg["PreemptionConfig"] if preemption else cfg)[field] = raw == "true"
    if _NODE_LIMIT_FLAG in flags:  # Nomad's flagHelper.UintValue: a non-negative integer
        raw = flags[_NODE_LIMIT_FLAG]
        if not raw.isascii() or not raw.isdigit():
            raise CliError(f'Invalid value "{raw}" for -{_NODE_LIMIT_FLAG}: must be a non-negative integer')
        cfg["NodeLimitForFeasibilityChecks"] = int(raw)
    query: dict[str, Any] = {}
    if "check-index" in flags:
        try:
            query["cas"] = int(flags["check-index"])
        except ValueError:
            raise CliError(f"Invalid -check-index: {flags['check-index']!r}") from None
    for k in ("CreateIndex", "ModifyIndex"):
        cfg.pop(k, None)
    got = request(addr, "PUT", _PATH, cfg, **query)
    if not got.get("Updated"):
        return "Scheduler configuration could not be atomically updated, please try again", 1
    return "Scheduler configuration updated!", 0


SCHEDULER_COMMANDS = {
    ("operator", "scheduler", "get-config"): get_config,
    ("operator", "scheduler", "set-config"): set_config,
}
