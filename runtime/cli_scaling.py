"""``nomad scaling policy list | info``, as Nomad's ``command/scaling_policy_list.go`` and
``scaling_policy_info.go``.

* ``scaling policy list [-job <id>] [-type <type>] [-verbose] [-json]``:
  ``ID  Enabled  Type  Target`` sorted by target, IDs cut to 8 characters
  unless ``-verbose``; ``No policies found`` when there are none.
* ``job scaling-events [-verbose] <job>`` (Nomad's command/job_scaling_events.go): every
  group's scaling events, newest first: ``Task Group  Count  PrevCount  Date`` (with
  ``Error  Message  Eval ID`` before Date when ``-verbose``); ``No events found`` without any.
* ``scaling policy info [-verbose] [-json] <policy_id>``: an ID or a unique
  prefix of one (at least two characters); ``ID``, ``Enabled``, ``Target``,
  ``Min`` and ``Max``, then the policy document as JSON (``<empty>``
  without one).  With ``-json`` and no ID: every policy's list entry.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import as_json, fmt_time, kv, parse_flags, request, resolve, short

__all__ = ["SCALING_COMMANDS", "format_target"]


def format_target(target: dict[str, str]) -> str:
    """Nomad's formatScalingPolicyTarget: ``Namespace:default,Job:web,Group:g`` (then any other keys)."""
    known: dict[str, str] = {}
    other = []
    for k, v in (target or {}).items():
        if k.lower() in ("namespace", "job", "group"):
            known[k.lower()] = f"{k}:{v}"
        else:
            other.append(f"{k}:{v}")
    return ",".join([known.get("namespace", ""), known.get("job", ""), known.get("group", ""),
                     *other]).strip(",")


def _policies(stubs: list[dict[str, Any]], verbose: bool) -> str:
    if not stubs:
        return "No policies found"
    rows = [["ID", "Enabled", "Type", "Target"]]
    for p in sorted(stubs, key=lambda p: format_target(p.get("Target") or {})):
        rows.append([short(p["ID"], verbose), str(bool(p.get("Enabled"))).lower(), p.get("Type", ""),
                     format_target(p.get("Target") or {})])
    return table(rows)


def policy_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"job": str, "type": str, "verbose": bool, "json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    try:
        stubs = request(addr, "GET", "/v1/scaling/policies", job=flags.get("job") or None,
                        type=flags.get("type") or None) or []
    except CliError as e:
        raise CliError(f"Error listing scaling policies: {e}") from None
    if flags.get("json"):
        return as_json(stubs)
    return _policies(stubs, bool(flags.get("verbose")))


def policy_info(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"verbose": bool, "json": bool})
    if not rest and flags.get("json"):
        return as_json(request(addr, "GET", "/v1/scaling/policies") or [])
    if len(rest) != 1:
        raise CliError("This command takes one of the following argument conditions:\n"
                       " * A single <policy_id>\n * No arguments, with output format specified")
    ident = rest[0]
    if len(ident) == 1:
        raise CliError("Identifier must contain at least two characters.")
    if len(ident.replace("-", "")) % 2:  # Nomad's sanitizeUUIDPrefix: whole bytes of the UUID
        ident = ident[:-1]
    try:
        stubs = request(addr, "GET", "/v1/scaling/policies", prefix=ident) or []
    except CliError as e:
        raise CliError(f"Error querying scaling policy: error querying scaling policies: {e}") from None
    exact = [s for s in stubs if s["ID"] == ident]
    if not stubs:
        raise CliError("Error querying scaling policy: no scaling policies with prefix or ID "
                       f'"{ident}" found')
    if len(stubs) > 1 and len(exact) != 1:
        listed = _policies(stubs, bool(flags.get("verbose")))
        raise CliError(f"Prefix matched multiple scaling policies\n\n{listed}")
    pid = (exact or stubs)[0]["ID"]
    try:
        policy = request(addr, "GET", f"/v1/scaling/policy/{urllib.parse.quote(pid, safe='')}")
    except CliError as e:
        raise CliError(f"Error querying scaling policy: {e}") from None
    if flags.get("json"):
        return as_json(policy)
    doc = as_json(policy["Policy"]) if policy.get("Policy") else "<empty>"
    return "\n".join([kv([("ID", short(policy["ID"], bool(flags.get("verbose")))),
                          ("Enabled", str(bool(policy.get("Enabled"))).lower()),
                          ("Target", format_target(policy.get("Target") or {})),
                          ("Min", policy.get("Min")), ("Max", policy.get("Max"))]),
                      "", "Policy:", doc])


def _event_rows(events: list[tuple[str, dict[str, Any]]], verbose: bool) -> str:
    """Nomad's formatScalingEventListOutput: a missing Count or Eval ID shows empty."""
    head = ["Task Group", "Count", "PrevCount", *(["Error", "Message", "Eval ID"] if verbose else []), "Date"]
    rows = [head]
    for group, e in events:
        count = e.get("Count")
        rows.append([group, "" if count is None else str(count), str(e.get("PreviousCount", 0)),
                     *([str(bool(e.get("Error"))).lower(), e.get("Message") or "", e.get("EvalID") or ""]
                       if verbose else []),
                     fmt_time(e.get("Time")) if e.get("Time") else ""])
    return table(rows)


def job_scaling_events(addr: str, args: list[str]) -> str:
    """``nomad job scaling-events [-verbose] <job>``: the job's groups' scaling events, newest first."""
    flags, rest = parse_flags(args, {"verbose": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <job_id>\n"
                       "For additional help try 'nomad job scaling-events -help'")
    stub = resolve(addr, "job", rest[0].strip())
    try:
        status = request(addr, "GET", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}/scale") or {}
    except CliError as e:
        raise CliError(f"Error listing scaling events: {e}") from None
    events = [(group, e) for group, tg in sorted((status.get("TaskGroups") or {}).items())
              for e in (tg or {}).get("Events") or ()]
    if not events:
        return "No events found"
    events.sort(key=lambda ge: -int(ge[1].get("Time") or 0))  # stable: a group's own order on a tie
    return _event_rows(events, bool(flags.get("verbose")))


SCALING_COMMANDS = {
    ("job", "scaling-events"): job_scaling_events,
    ("scaling", "policy", "list"): policy_list,
    ("scaling", "policy", "info"): policy_info,
}
