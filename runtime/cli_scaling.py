"""``nomad scaling policy list | info``, as Nomad's ``command/scaling_policy_list.go`` and
``scaling_policy_info.go``.

* ``scaling policy list [-job <id>] [-type <type>] [-verbose] [-json]``:
  ``ID  Enabled  Type  Target`` sorted by target, IDs cut to 8 characters
  unless ``-verbose``; ``No policies found`` when there are none.
* ``scaling policy info [-verbose] [-json] <policy_id>``: an ID or a unique
  prefix of one (at least two characters); ``ID``, ``Enabled``, ``Target``,
  ``Min`` and ``Max``, then the policy document as JSON (``<empty>``
  without one).  With ``-json`` and no ID: every policy's list entry.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import as_json, kv, parse_flags, request, short

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


SCALING_COMMANDS = {
    ("scaling", "policy", "list"): policy_list,
    ("scaling", "policy", "info"): policy_info,
}
