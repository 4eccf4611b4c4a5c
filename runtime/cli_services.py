"""``nomad service list | info | delete``, as Nomad's ``command/service_*.go``.

``list`` shows each service with the union of its tags (a Namespace column
with ``-namespace '*'``); ``info`` a row per registration (Node and Alloc
IDs cut to 8 characters) or, with ``-verbose``, every field of each;
``info`` takes a service's name or a unique prefix of it, and ``-filter``,
``-per-page`` and ``-page-token``;
``delete`` removes one registration (it is back when its allocation next
starts).  ``-namespace`` (or ``NOMAD_NAMESPACE``) names the namespace,
``default`` when unset; ``-json`` prints the API's objects indented four
spaces.  Tags are shown as Nomad prints them: ``[a,b]``.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from typing import Any

from runtime.cli import ACTIVE, CliError, table
from runtime.cli_jobs import as_json, kv, parse_flags, request, short

__all__ = ["SERVICE_COMMANDS"]

ALL_NAMESPACES = "*"


def _namespace(flags: dict[str, Any]) -> str | None:
    return (flags.get("namespace") or ACTIVE["query"].get("namespace")  # -namespace: taken off by cli.main
            or os.environ.get("NOMAD_NAMESPACE") or None)


def _tags(tags: list[str] | None) -> str:
    return f"[{','.join(tags or ())}]"


def _address(r: dict[str, Any]) -> str:
    return f"{r.get('Address', '')}:{r.get('Port', 0)}"


def _host_port(r: dict[str, Any]) -> str:
    """Nomad's formatAddress (the ``service info`` table): the address alone when the port is 0, an
    IPv6 address in brackets (Go's net.JoinHostPort)."""
    address, port = str(r.get("Address", "")), r.get("Port", 0)
    if not port:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def format_services(entries: list[dict[str, Any]], all_namespaces: bool) -> str:
    """Nomad's ``service list`` table: namespaces in order, services by name."""
    rows = [["Service Name", *(["Namespace"] if all_namespaces else []), "Tags"]]
    for entry in sorted(entries, key=lambda e: e.get("Namespace", "")):
        for svc in sorted(entry.get("Services") or (), key=lambda s: s["ServiceName"]):
            rows.append([svc["ServiceName"], *([entry.get("Namespace", "")] if all_namespaces else []),
                         _tags(svc.get("Tags"))])
    return table(rows)


def format_registrations(regs: list[dict[str, Any]]) -> str:
    """Nomad's ``service info`` table, grouped by job."""
    rows = [["Job ID", "Address", "Tags", "Node ID", "Alloc ID"]]
    rows += [[r.get("JobID", ""), _host_port(r), _tags(r.get("Tags")), short(r.get("NodeID", "")),
              short(r.get("AllocID", ""))] for r in sorted(regs, key=lambda r: r.get("JobID", ""))]
    return table(rows)


def format_registrations_verbose(regs: list[dict[str, Any]]) -> str:
    """``service info -verbose``: every field of each registration, one block each."""
    return "\n\n".join(kv([("ID", r["ID"]), ("Service Name", r.get("ServiceName", "")),
                           ("Namespace", r.get("Namespace", "")), ("Job ID", r.get("JobID", "")),
                           ("Alloc ID", r.get("AllocID", "")), ("Node ID", r.get("NodeID", "")),
                           ("Datacenter", r.get("Datacenter", "")), ("Address", _address(r)),
                           ("Tags", _tags(r.get("Tags")))])
                       for r in sorted(regs, key=lambda r: (r.get("JobID", ""), r["ID"])))


def service_list(addr: str, args: list[str]) -> str:
    """``nomad service list [-json] [-namespace <ns>]``."""
    flags, rest = parse_flags(args, {"json": bool, "namespace": str})
    if rest:
        raise CliError("This command takes no arguments\nFor additional help try 'nomad service list -help'")
    namespace = _namespace(flags)
    entries = request(addr, "GET", "/v1/services", namespace=namespace) or []
    if flags.get("json"):
        return as_json(entries)
    if not any(e.get("Services") for e in entries):
        return "No service registrations found"  # Nomad's wording
    return format_services(entries, namespace == ALL_NAMESPACES)


def _by_prefix(addr: str, prefix: str, namespace: str | None) -> tuple[str, str | None, list[dict[str, Any]]]:
    """Nomad's getServiceByPrefix: the service a name or unique prefix names (an exact name wins), its
    namespace, and the candidates when several match ([] when one does)."""
    try:
        entries = request(addr, "GET", "/v1/services", namespace=namespace) or []
    except CliError as e:
        raise CliError(f"Error listing service registrations: {e}") from None
    possible = [{**e, "Services": [x for x in e.get("Services") or () if x["ServiceName"].startswith(prefix)]}
                for e in entries]
    possible = [e for e in possible if e["Services"]]
    exact = [e for e in possible if any(x["ServiceName"] == prefix for x in e["Services"])]
    if len(exact) == 1:
        return prefix, exact[0].get("Namespace"), []
    if len(possible) == 1 and len(possible[0]["Services"]) == 1:
        return possible[0]["Services"][0]["ServiceName"], possible[0].get("Namespace"), []
    if not possible:
        raise CliError("Error listing service registrations: "
                       f'No service registrations with prefix "{prefix}" found')
    return prefix, namespace, possible


def _with_page_token(argv: list[str], token: str) -> str:
    """Nomad's argsWithNewPageToken: the command line again, with -page-token set to *token*."""
    args = list(argv)
    for i, a in enumerate(args):
        if a.startswith("-page-token"):
            if "=" in a:
                args[i] = "-page-token=" + token
            else:
                args[i + 1] = token
            break
        if i == len(args) - 1:  # none given: before the last argument, the service's name
            args[i:] = ["-page-token=" + token, a]
            break
    return " ".join(args)


def service_info(addr: str, args: list[str]) -> str:
    """``nomad service info [-json] [-verbose] [-filter F] [-per-page N] [-page-token T] [-namespace <ns>]
    <service name or prefix>``."""
    flags, rest = parse_flags(args, {"json": bool, "verbose": bool, "namespace": str, "filter": str,
                                     "per-page": str, "page-token": str})
    if len(rest) != 1 or not rest[0]:
        raise CliError("This command takes one argument: <service_name>\n"
                       "For additional help try 'nomad service info -help'")
    try:
        per_page = int(flags.get("per-page") or 0)
    except ValueError:
        raise CliError(f'invalid value "{flags["per-page"]}" for flag -per-page: parse error') from None
    name, namespace, possible = _by_prefix(addr, rest[0], _namespace(flags))
    if possible:
        raise CliError("Prefix matched multiple services\n\n"
                       + format_services(possible, _namespace(flags) == ALL_NAMESPACES))
    meta: dict[str, Any] = {}
    try:
        regs = request(addr, "GET", "/v1/service/" + urllib.parse.quote(name, safe=""), namespace=namespace,
                       filter=flags.get("filter") or None, per_page=per_page or None,
                       next_token=flags.get("page-token") or None, answer_meta=meta) or []
    except CliError as e:
        raise CliError(f"Error listing service registrations: {e}") from None
    if not regs:
        return "No service registrations found"
    if flags.get("json"):
        return as_json(regs)
    text = format_registrations_verbose(regs) if flags.get("verbose") else format_registrations(regs)
    if meta.get("next_token"):
        text += ("\n\nResults have been paginated. To get the next page run: \n\n"
                 f"{_with_page_token(sys.argv, meta['next_token'])} ")
    return text


def service_delete(addr: str, args: list[str]) -> str:
    """``nomad service delete [-namespace <ns>] <service name> <service id>``."""
    flags, rest = parse_flags(args, {"namespace": str})
    if len(rest) != 2 or not all(rest):
        raise CliError("This command takes two arguments: <service_name> and <service_id>\n"
                       "For additional help try 'nomad service delete -help'")
    name, reg_id = (urllib.parse.quote(x, safe="") for x in rest)
    request(addr, "DELETE", f"/v1/service/{name}/{reg_id}", namespace=_namespace(flags))
    return "Successfully deleted service registration"


SERVICE_COMMANDS = {
    ("service", "list"): service_list,
    ("service", "info"): service_info,
    ("service", "delete"): service_delete,
}
