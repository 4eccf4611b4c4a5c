"""``nomad namespace list | status | inspect | apply | delete``, as Nomad's ``command/namespace_*.go``.

``inspect <namespace>`` prints the namespace as JSON (Nomad's ``api.Namespace``
fields, in its order), found by prefix as Nomad finds it; ``-t`` formats it.

Only the built-in ``default`` namespace exists on this agent
(actors.http_namespaces): ``list`` and ``status`` show it, and ``apply``
and ``delete`` print the agent's refusal.
"""

from __future__ import annotations

import json
import urllib.parse

from runtime.cli import CliError, table
from runtime.cli_jobs import kv, one_arg, parse_flags, request

__all__ = ["NAMESPACE_COMMANDS"]


def ns_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool, "prefix": str})
    if rest:
        raise CliError("This command takes no arguments")
    found = request(addr, "GET", "/v1/namespaces", prefix=flags.get("prefix")) or []
    if flags.get("json"):
        return json.dumps(found, indent=4)
    if not found:
        return "No namespaces found"
    return table([["Name", "Description"]] + [[n["Name"], n.get("Description") or ""] for n in found])


def ns_status(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    name = one_arg(rest, "nomad namespace status <namespace>")
    ns = request(addr, "GET", "/v1/namespace/" + urllib.parse.quote(name, safe=""))
    if flags.get("json"):
        return json.dumps(ns, indent=4)
    # Nomad's formatNamespaceBasics, then the Metadata block only when there is some.
    caps = ns.get("Capabilities") or {}
    out = [kv([("Name", ns["Name"]), ("Description", ns.get("Description") or ""),
               ("Quota", ns.get("Quota") or ""),
               ("Enabled Drivers", ",".join(caps.get("EnabledTaskDrivers") or ()) or "*"),
               ("Disabled Drivers", ",".join(caps.get("DisabledTaskDrivers") or ())),
               ("Enabled Network Modes", ",".join(caps.get("EnabledNetworkModes") or ()) or "*"),
               ("Disabled Network Modes", ",".join(caps.get("DisabledNetworkModes") or ()))])]
    meta = ns.get("Meta") or {}
    if meta:
        out += ["", "Metadata", kv(sorted(meta.items()))]
    return "\n".join(out)


# Nomad's api.Namespace fields, in its order, with Go's zero values for what the agent leaves out.
_NAMESPACE_FIELDS = (("Name", ""), ("Description", ""), ("Quota", ""), ("Capabilities", None),
                     ("NodePoolConfiguration", None), ("VaultConfiguration", None),
                     ("ConsulConfiguration", None), ("Meta", None), ("CreateIndex", 0), ("ModifyIndex", 0),
                     ("RequiredExtraClaims", None), ("OptionalExtraClaims", None))


def ns_inspect(addr: str, args: list[str]) -> str:
    """Nomad's ``namespace inspect``: the namespace a prefix names, as JSON (-t: main's template)."""
    _, rest = parse_flags(args, {"json": bool})  # -json: what main turns -t into
    if len(rest) != 1:
        raise CliError("This command takes one argument: <namespace>\n"
                       "For additional help try 'nomad namespace inspect -help'")
    name = rest[0]
    try:
        found = request(addr, "GET", "/v1/namespaces", prefix=name) or []
    except CliError as e:
        raise CliError(f"Error retrieving namespaces: {e}") from None
    match = [n for n in found if n.get("Name") == name] if len(found) > 1 else found
    if not found:
        raise CliError(f'Error retrieving namespaces: Namespace "{name}" matched no namespaces')
    if len(match) != 1:
        rows = [["Name", "Description"]] + [[n["Name"], n.get("Description") or ""]
                                            for n in sorted(found, key=lambda n: n["Name"])]
        raise CliError(f"Prefix matched multiple namespaces\n\n{table(rows)}")
    ns = match[0]
    return json.dumps({k: ns.get(k, zero) for k, zero in _NAMESPACE_FIELDS}, indent=4)


def ns_apply(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"description": str})
    name = one_arg(rest, "nomad namespace apply [-description <text>] <namespace>")
    request(addr, "PUT", "/v1/namespace/" + urllib.parse.quote(name, safe=""),
            {"Name": name, "Description": flags.get("description", "")})
    return f'Successfully applied namespace "{name}"!'


def ns_delete(addr: str, args: list[str]) -> str:
    _, rest = parse_flags(args, {})
    name = one_arg(rest, "nomad namespace delete <namespace>")
    request(addr, "DELETE", "/v1/namespace/" + urllib.parse.quote(name, safe=""))
    return f'Successfully deleted namespace "{name}"!'


NAMESPACE_COMMANDS = {
    ("namespace", "list"): ns_list,
    ("namespace", "status"): ns_status,
    ("namespace", "inspect"): ns_inspect,
    ("namespace", "apply"): ns_apply,
    ("namespace", "delete"): ns_delete,
}
