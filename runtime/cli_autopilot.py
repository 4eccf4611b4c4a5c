"""``nomad operator autopilot get-config|set-config``, as Nomad's ``command/operator_autopilot_get.go``
and ``operator_autopilot_set.go``.

* ``get-config [-json]`` prints the replicated autopilot configuration one
  ``Key = value`` line each, durations as Go writes them.
* ``set-config`` reads it, changes only the fields whose flags are given
  (``-cleanup-dead-servers=true|false``, ``-max-trailing-logs=N``,
  ``-min-quorum=N``, ``-last-contact-threshold=200ms``,
  ``-server-stabilization-time=10s``, and the Enterprise-only
  ``-enable-redundancy-zones``, ``-disable-upgrade-migration``,
  ``-enable-custom-upgrades``, which are kept but do nothing), and writes
  it back only if nobody changed it since (``?cas=<ModifyIndex>``): prints
  ``Configuration updated!``, or ``Configuration could not be atomically
  updated, please try again`` and exits 1.

Errors go to stderr with exit 1.
"""

from __future__ import annotations

import json
from typing import Any

from actors.state.autopilot_config import go_duration, parse_go_duration
from runtime.cli import CliError
from runtime.cli_jobs import parse_flags, request

__all__ = ["AUTOPILOT_COMMANDS"]

_AUTOPILOT = "/v1/operator/autopilot/configuration"


def _q(text: str) -> str:
    """Go's ``%q`` for the strings an operator types."""
    return json.dumps(text, ensure_ascii=False)


def _b(v: Any) -> str:
    return "true" if v else "false"


def get_config(addr: str, args: list[str]) -> str:
    try:
        flags, rest = parse_flags(args, {"json": bool})
    except CliError as e:
        raise CliError(f"Failed to parse args: {e}") from None
    if rest:
        raise CliError("This command takes no arguments")
    try:
        cfg = request(addr, "GET", _AUTOPILOT)
    except CliError as e:
        raise CliError(f"Error querying Autopilot configuration: {e}") from None
    if flags.get("json"):
        return json.dumps(cfg, indent=4)
    return "\n".join([
        f"CleanupDeadServers = {_b(cfg.get('CleanupDeadServers'))}",
        f"LastContactThreshold = {cfg.get('LastContactThreshold', '0s')}",
        f"MaxTrailingLogs = {cfg.get('MaxTrailingLogs', 0)}",
        f"MinQuorum = {cfg.get('MinQuorum', 0)}",
        f"ServerStabilizationTime = {cfg.get('ServerStabilizationTime', '0s')}",
        f"EnableRedundancyZones = {_b(cfg.get('EnableRedundancyZones'))}",
        f"DisableUpgradeMigration = {_b(cfg.get('DisableUpgradeMigration'))}",
        f"EnableCustomUpgrades = {_b(cfg.get('EnableCustomUpgrades'))}",
    ])


# set-config flag -> (field, kind); kinds as Nomad's helper/flags BoolValue, UintValue, DurationValue.
_SET_FLAGS = {
    "cleanup-dead-servers": ("CleanupDeadServers", "bool"),
    "enable-redundancy-zones": ("EnableRedundancyZones", "bool"),
    "disable-upgrade-migration": ("DisableUpgradeMigration", "bool"),
    "enable-custom-upgrades": ("EnableCustomUpgrades", "bool"),
    "max-trailing-logs": ("MaxTrailingLogs", "uint"),
    "min-quorum": ("MinQuorum", "uint"),
    "last-contact-threshold": ("LastContactThreshold", "duration"),
    "server-stabilization-time": ("ServerStabilizationTime", "duration"),
}
# strconv.ParseBool
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _flag_value(flag: str, kind: str, raw: str) -> Any:
    """A set-config flag's value, or CliError with Go's flag package message."""
    def bad(why: str) -> CliError:
        return CliError(f"Failed to parse args: invalid value {_q(raw)} for flag -{flag}: {why}")

    if kind == "bool":
        if raw not in _BOOLS:
            raise bad(f"strconv.ParseBool: parsing {_q(raw)}: invalid syntax")
        return _BOOLS[raw]
    if kind == "uint":
        try:
            value = int(raw, 0) if not raw.startswith(("+", "-")) else None
        except ValueError:
            value = None
        if value is None or value >= 2 ** 64:
            raise bad(f"strconv.ParseUint: parsing {_q(raw)}: invalid syntax")
        return value
    try:
        return go_duration(parse_go_duration(raw))
    except ValueError as e:
        raise bad(str(e)) from None


def set_config(addr: str, args: list[str]) -> tuple[str, int]:
    try:
        flags, rest = parse_flags(args, {f: str for f in _SET_FLAGS})
    except CliError as e:
        raise CliError(f"Failed to parse args: {e}") from None
    if rest:
        raise CliError("This command takes no arguments")
    changes = {field: _flag_value(flag, kind, flags[flag])
               for flag, (field, kind) in _SET_FLAGS.items() if flag in flags}
    try:
        cfg = request(addr, "GET", _AUTOPILOT)
    except CliError as e:
        raise CliError(f"Error querying for Autopilot configuration: {e}") from None
    cas = cfg.get("ModifyIndex", 0)
    body = {k: v for k, v in {**cfg, **changes}.items() if k not in ("CreateIndex", "ModifyIndex")}
    try:
        updated = request(addr, "PUT", _AUTOPILOT, body, cas=cas)
    except CliError as e:
        raise CliError(f"Error setting Autopilot configuration: {e}") from None
    if updated is True:
        return "Configuration updated!", 0
    return "Configuration could not be atomically updated, please try again", 1


AUTOPILOT_COMMANDS = {
    ("operator", "autopilot", "get-config"): get_config,
    ("operator", "autopilot", "set-config"): set_config,
}
