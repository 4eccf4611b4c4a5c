"""``nomad namespace list | status | inspect | apply | delete``, as Nomad's ``command/namespace_*.go``.

``inspect <namespace>`` prints the namespace as JSON (Nomad's ``api.Namespace``
fields, in its order), found by prefix as Nomad finds it; ``-t`` formats it.

``apply`` takes a name (with ``-description``), or a namespace
specification file (HCL, or JSON with ``-json``; ``-`` reads stdin), as
Nomad's ``namespace apply``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from typing import Any

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


def _by_prefix(addr: str, name: str) -> dict[str, Any]:
    """Nomad's getNamespace: the namespace a prefix names (an exact name wins among several)."""
    try:
        found = request(addr, "GET", "/v1/namespaces", prefix=name) or []
    except CliError as e:
        raise CliError(f"Error retrieving namespaces: {e}") from None
    if not found:
        raise CliError(f'Error retrieving namespaces: Namespace "{name}" matched no namespaces')
    match = [n for n in found if n.get("Name") == name] if len(found) > 1 else found
    if len(match) != 1:
        rows = [["Name", "Description"]] + [[n["Name"], n.get("Description") or ""]
                                            for n in sorted(found, key=lambda n: n["Name"])]
        raise CliError(f"Prefix matched multiple namespaces\n\n{table(rows)}")
    return match[0]


def ns_status(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <namespace>\n"
                       "For additional help try 'nomad namespace status -help'")
    ns = _by_prefix(addr, rest[0])
    if flags.get("json"):
        return json.dumps(ns, indent=4)
    # Nomad's formatNamespaceBasics, then the Metadata and Node Pool Configuration blocks when set.
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
    pools = ns.get("NodePoolConfiguration")
    if pools is not None:
        rows = [("Default", pools.get("Default") or "")]
        if pools.get("Allowed"):
            rows.append(("Allowed", ", ".join(pools["Allowed"])))
        if pools.get("Denied"):
            rows.append(("Denied", ", ".join(pools["Denied"])))
        out += ["", "Node Pool Configuration", kv(rows)]
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
    ns = _by_prefix(addr, rest[0])
    return json.dumps({k: ns.get(k, zero) for k, zero in _NAMESPACE_FIELDS}, indent=4)


def _blocks(value: Any) -> dict[str, Any]:
    """An HCL block's body (the parser gives a block as a list of bodies; the first counts, as Nomad's)."""
    if isinstance(value, list):
        value = value[0] if value else {}
    return value if isinstance(value, dict) else {}


def _hcl_spec(text: str) -> dict[str, Any]:
    """Nomad's parseNamespaceSpec: name, description and quota at the top level, and the capabilities,
    meta and node_pool_config blocks, as an api.Namespace."""
    from runtime.hcl_job import HclJobError, _load

    try:
        doc = _load(text, "namespace specification")
    except HclJobError as e:
        raise CliError(f"Error parsing quota specification: {e}") from None
    top = {k.lower(): v for k, v in doc.items()}
    spec: dict[str, Any] = {"Name": str(top.get("name") or ""), "Quota": str(top.get("quota") or ""),
                            "Description": str(top.get("description") or "")}
    if "capabilities" in top:
        caps = _blocks(top["capabilities"])
        spec["Capabilities"] = {
            "EnabledTaskDrivers": caps.get("enabled_task_drivers"),
            "DisabledTaskDrivers": caps.get("disabled_task_drivers"),
            "EnabledNetworkModes": caps.get("enabled_network_modes"),
            "DisabledNetworkModes": caps.get("disabled_network_modes")}
    if "node_pool_config" in top:
        pools = _blocks(top["node_pool_config"])
        spec["NodePoolConfiguration"] = {"Default": pools.get("default", ""), "Allowed": pools.get("allowed"),
                                         "Denied": pools.get("denied")}
    if "meta" in top:
        meta: dict[str, str] = {}
        for body in top["meta"] if isinstance(top["meta"], list) else [top["meta"]]:
            meta.update({str(k): str(v) for k, v in (body or {}).items()})
        spec["Meta"] = meta
    return spec


def _spec_file(path: str, as_json: bool) -> dict[str, Any]:
    """The namespace a specification file (or stdin, ``-``) holds."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise CliError(f"Failed to read {'stdin' if path == '-' else 'file'}: {e}") from None
    if not as_json:
        return _hcl_spec(text)
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise CliError(f"Failed to parse quota: {e}") from None
    if not isinstance(spec, dict):
        raise CliError("Failed to parse quota: the file must hold one Namespace object")
    return spec


def ns_apply(addr: str, args: list[str]) -> str:
    """Nomad's ``namespace apply``: a file's namespace, or the named one (created when absent) with the
    -description and -quota given."""
    flags, rest = parse_flags(args, {"description": str, "quota": str, "json": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <input>\n"
                       "For additional help try 'nomad namespace apply -help'")
    arg = rest[0]
    if arg == "-" or os.path.isfile(arg):
        if "description" in flags or "quota" in flags:
            print("Flags are ignored when a file is specified!", file=sys.stderr)
        spec = _spec_file(arg, bool(flags.get("json")))
    else:
        if not arg:
            raise CliError("Namespace name required")
        try:
            spec = request(addr, "GET", "/v1/namespace/" + urllib.parse.quote(arg, safe="")) or {"Name": arg}
        except CliError as e:
            if "404" not in str(e):
                raise CliError(f"Error looking up namespace: {e}") from None
            spec = {"Name": arg}
        if "description" in flags:
            spec["Description"] = flags["description"]
        if "quota" in flags:
            spec["Quota"] = flags["quota"]
    request(addr, "PUT", "/v1/namespace", spec)  # Nomad's Namespaces().Register
    return f"Successfully applied namespace {json.dumps(str(spec.get('Name') or ''))}!"


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
