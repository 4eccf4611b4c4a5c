"""``nomad namespace list | status | apply | delete``, as Nomad's ``command/namespace_*.go``.

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
    meta = ns.get("Meta") or {}
    return "\n".join([kv([("Name", ns["Name"]), ("Description", ns.get("Description") or "")]), "",
                      "Metadata", kv(sorted(meta.items())) if meta else "No metadata"])


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
    ("namespace", "apply"): ns_apply,
    ("namespace", "delete"): ns_delete,
}
