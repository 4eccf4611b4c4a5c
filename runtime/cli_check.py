"""``nomad check``, ``nomad license get`` and the Enterprise-only commands, as Nomad CE answers them.

``check [-min-peers N] [-min-servers N]`` (Nomad's ``command/check.go``) is a Nagios-style probe of
the local agent: exit 0 healthy, 2 critical (1 only for an agent that is neither server nor client),
the reason on stdout.  A server is critical when it knows fewer Raft peers than ``-min-peers``
(default 0); a client when its last heartbeat is older than its heartbeat TTL or it knows fewer
servers than ``-min-servers`` (default 1).  The client's ``known_servers`` statistic is the list of
server addresses it holds, comma-separated (as Nomad's client reports it); the check counts them.

Nomad CE keeps the Enterprise commands and lets the agent refuse them: ``license get`` prints
"Error getting license: Nomad Enterprise only endpoint" (the agent answers 204, which Nomad's API
client turns into that error); ``quota``, ``sentinel`` and ``recommendation`` commands call their
endpoints and print the agent's ``501 Nomad Enterprise only endpoint`` under each command's own
context, exit 1.  ``quota init``, which only writes an example file, is not provided.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags, request
from runtime.durations import parse_duration

__all__ = ["CHECK_COMMANDS", "HEALTH_CRITICAL", "HEALTH_PASS", "HEALTH_WARN"]

HEALTH_PASS, HEALTH_WARN, HEALTH_CRITICAL = 0, 1, 2  # Nagios' exit codes, as Nomad's check.go


def check(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"min-peers": str, "min-servers": str})
    if rest:
        raise CliError("This command takes no arguments\nFor additional help try 'nomad check -help'")
    min_peers, min_servers = _int_flag(flags, "min-peers", 0), _int_flag(flags, "min-servers", 1)
    try:
        stats = (request(addr, "GET", "/v1/agent/self") or {}).get("stats") or {}
    except CliError as e:
        return f"unable to query agent info: {e}", HEALTH_CRITICAL
    if "nomad" in stats:
        return _server_health(stats.get("raft") or {}, min_peers)
    if "client" in stats:
        return _client_health(stats["client"], min_servers)
    return "", HEALTH_WARN


def _int_flag(flags: dict[str, str], name: str, default: int) -> int:
    try:
        return int(flags.get(name, default))
    except ValueError:
        raise CliError(f'invalid value "{flags[name]}" for flag -{name}: parse error') from None


def _server_health(raft: dict[str, str], min_peers: int) -> tuple[str, int]:
    try:
        peers = int(raft.get("num_peers", ""))
    except ValueError:
        return f"unable to get known peers: invalid num_peers {raft.get('num_peers')!r}", HEALTH_CRITICAL
    if peers < min_peers:
        return f"known peers: {peers}, is less than expected number of peers: {min_peers}", HEALTH_CRITICAL
    return "", HEALTH_PASS


def _client_health(client: dict[str, str], min_servers: int) -> tuple[str, int]:
    servers = [s for s in str(client.get("known_servers", "")).split(",") if s.strip()]
    try:
        ttl_text, last_text = client.get("heartbeat_ttl", ""), client.get("last_heartbeat", "")
        ttl, last = parse_duration(ttl_text), parse_duration(last_text)
    except ValueError as e:
        return f"unable to parse heartbeat figures: {e}", HEALTH_CRITICAL
    if last > ttl:
        return (f'last heartbeat was "{last_text}" time ago, expected heartbeat ttl: "{ttl_text}"',
                HEALTH_CRITICAL)
    if len(servers) < min_servers:
        return (f"known servers: {len(servers)}, is less than expected number of servers: {min_servers}",
                HEALTH_CRITICAL)
    return "", HEALTH_PASS


def license_get(addr: str, args: list[str]) -> str:
    _, rest = parse_flags(args, {})
    if rest:
        raise CliError("This command takes no arguments\nFor additional help try 'nomad license get -help'")
    try:
        request(addr, "GET", "/v1/operator/license")
    except CliError as e:
        raise CliError(f"Error getting license: {e}") from None
    # The agent's 204 (no license): Nomad's API client turns it into this error.
    raise CliError("Error getting license: Nomad Enterprise only endpoint")


def _enterprise(usage: str, n_args: tuple[int, int], method: str, path: Callable[[list[str]], str],
                context: str, flags: dict[str, type] | None = None, reads_file: bool = False) -> Any:
    """A command whose endpoint Nomad CE refuses: its arguments checked, then the agent's answer."""
    def run(addr: str, args: list[str]) -> str:
        _, rest = parse_flags(args, flags or {})
        lo, hi = n_args
        if not lo <= len(rest) <= hi:
            raise CliError(f"This command takes {_count_words(lo, hi)}: {usage}")
        if reads_file and rest and rest[-1] != "-":
            try:
                with open(rest[-1], "rb"):
                    pass
            except OSError as e:
                why = (e.strerror or str(e)).lower()
                raise CliError(f"Failed to read file: open {rest[-1]}: {why}") from None
        try:
            request(addr, method, path(rest))
        except CliError as e:
            raise CliError(f"{context}: {e}") from None
        raise CliError(f"{context}: Nomad Enterprise only endpoint")  # an agent that said 2xx to it
    return run


def _count_words(lo: int, hi: int) -> str:
    if lo == hi:
        return {0: "no arguments", 1: "one argument", 2: "two arguments"}[lo]
    return "one or more arguments" if hi > 2 else f"{lo} to {hi} arguments"


def _q(rest: list[str], i: int = 0) -> str:
    return urllib.parse.quote(rest[i], safe="")


MANY = 1 << 16  # "one or more" ids

CHECK_COMMANDS: dict[tuple[str, ...], Any] = {
    ("check",): check,
    ("license", "get"): license_get,
    ("quota", "list"): _enterprise("", (0, 0), "GET", lambda r: "/v1/quotas", "Error retrieving quotas",
                                   {"json": bool}),
    ("quota", "status"): _enterprise("<quota>", (1, 1), "GET", lambda r: "/v1/quotas?prefix=" + _q(r),
                                     "Error retrieving quota", {"json": bool}),
    ("quota", "inspect"): _enterprise("<quota>", (1, 1), "GET", lambda r: "/v1/quotas?prefix=" + _q(r),
                                      "Error retrieving quota", {"json": bool}),
    ("quota", "delete"): _enterprise("<quota>", (1, 1), "DELETE", lambda r: "/v1/quota/" + _q(r),
                                     "Error deleting quota"),
    ("quota", "apply"): _enterprise("<input>", (1, 1), "PUT", lambda r: "/v1/quota",
                                    "Error applying quota specification", {"json": bool}, reads_file=True),
    ("sentinel", "list"): _enterprise("", (0, 0), "GET", lambda r: "/v1/sentinel/policies",
                                      "Error listing Sentinel policies"),
    ("sentinel", "read"): _enterprise("<name>", (1, 1), "GET", lambda r: "/v1/sentinel/policy/" + _q(r),
                                      "Error querying Sentinel policy", {"raw": bool}),
    ("sentinel", "delete"): _enterprise("<name>", (1, 1), "DELETE",
                                        lambda r: "/v1/sentinel/policy/" + _q(r),
                                        "Error deleting Sentinel policy"),
    ("sentinel", "apply"): _enterprise("<name> <file>", (2, 2), "PUT",
                                       lambda r: "/v1/sentinel/policy/" + _q(r),
                                       "Error writing Sentinel policy",
                                       {"description": str, "scope": str, "level": str}, reads_file=True),
    ("recommendation", "list"): _enterprise("", (0, 0), "GET", lambda r: "/v1/recommendations",
                                            "Error listing recommendations",
                                            {"job": str, "group": str, "task": str, "json": bool}),
    ("recommendation", "info"): _enterprise("<recommendation_id>", (1, 1), "GET",
                                            lambda r: "/v1/recommendation/" + _q(r),
                                            "Error reading recommendation", {"json": bool}),
    ("recommendation", "apply"): _enterprise("<recommendation_ids>", (1, MANY), "PUT",
                                             lambda r: "/v1/recommendations/apply",
                                             "Error applying recommendations",
                                             {"detach": bool, "verbose": bool, "policy-override": bool}),
    ("recommendation", "dismiss"): _enterprise("<recommendation_ids>", (1, MANY), "PUT",
                                               lambda r: "/v1/recommendations/apply",
                                               "Error dismissing recommendations"),
}
