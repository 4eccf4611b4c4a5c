"""``nomad acl ...``: bootstrap, policies and tokens over the HTTP API (Nomad's ``command/acl_*.go``).

``acl bootstrap``, ``acl policy apply [-description d] <name> <file>``,
``acl policy list``, ``acl policy info <name>``, ``acl policy delete <name>``,
``acl token create [-name n] [-type client|management] [-policy p]...
[-global]``, ``acl token list``, ``acl token info <accessor>``, ``acl token
self``, ``acl token delete <accessor>``.  The token sent with each request is
``-token`` or ``NOMAD_TOKEN`` (read by :func:`runtime.cli.main` for every
command).  Output follows Nomad's: a token as ``Key = value`` lines, lists
as tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import parse_flags, request

__all__ = ["ACL_COMMANDS"]


def _format_token(t: dict[str, Any]) -> str:
    """Nomad's ``formatKVACLToken``."""
    policies = ",".join(t.get("Policies") or []) if t.get("Type") != "management" else "n/a"
    rows = [("Accessor ID", t["AccessorID"]), ("Secret ID", t.get("SecretID", "")),
            ("Name", t.get("Name", "")),
            ("Type", t.get("Type", "")), ("Global", str(bool(t.get("Global"))).lower()),
            ("Create Time", str(t.get("CreateTime", ""))), ("Expiry Time", "<none>"),
            ("Create Index", str(t.get("CreateIndex", 0))), ("Modify Index", str(t.get("ModifyIndex", 0))),
            ("Policies", policies or "<none>"), ("Roles", "n/a")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)} = {v}" for k, v in rows)


def acl_bootstrap(addr: str, args: list[str]) -> str:
    if args:
        raise CliError("acl bootstrap takes no arguments (bootstrap secret files are not supported)")
    return _format_token(request(addr, "POST", "/v1/acl/bootstrap"))


def policy_apply(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"description": str})
    if len(rest) != 2:
        raise CliError("acl policy apply takes two arguments: <name> <path>")
    name, path = rest
    try:
        rules = Path(path).read_text() if path != "-" else sys.stdin.read()
    except OSError as e:
        raise CliError(f"Error reading policy file {path!r}: {e}") from None
    request(addr, "POST", f"/v1/acl/policy/{name}",
            {"Name": name, "Description": flags.get("description", ""), "Rules": rules})
    return f'Successfully wrote "{name}" ACL policy!'


def policy_list(addr: str, args: list[str]) -> str:
    got = request(addr, "GET", "/v1/acl/policies") or []
    if not got:
        return "No policies found"
    return table([["Name", "Description"]] + [[p["Name"], p.get("Description", "")] for p in got])


def policy_info(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl policy info takes one argument: <name>")
    p = request(addr, "GET", f"/v1/acl/policy/{args[0]}")
    return (f"Name        = {p['Name']}\nDescription = {p.get('Description', '')}\n"
            f"CreateIndex = {p.get('CreateIndex', 0)}\nModifyIndex = {p.get('ModifyIndex', 0)}\n\n"
            f"Rules\n\n{p.get('Rules', '')}")


def policy_delete(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl policy delete takes one argument: <name>")
    request(addr, "DELETE", f"/v1/acl/policy/{args[0]}")
    return f'Successfully deleted "{args[0]}" ACL policy!'


def token_create(addr: str, args: list[str]) -> str:
    flags, rest = _token_flags(args)
    if rest:
        raise CliError("acl token create takes no arguments")
    body = {"Name": flags.get("name", ""), "Type": flags.get("type", "client"),
            "Policies": flags.get("policy", []), "Global": flags.get("global", False)}
    return _format_token(request(addr, "POST", "/v1/acl/token", body))


def _token_flags(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """-name, -type, -global, and -policy, which may repeat (Go's flag.Var of a list)."""
    policies: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-policy", "--policy") and i + 1 < len(args):
            policies.append(args[i + 1])
            i += 2
            continue
        if a.startswith(("-policy=", "--policy=")):
            policies.append(a.split("=", 1)[1])
        else:
            kept.append(a)
        i += 1
    flags, rest = parse_flags(kept, {"name": str, "type": str, "global": bool})
    return {**flags, "policy": policies}, rest


def token_list(addr: str, args: list[str]) -> str:
    got = request(addr, "GET", "/v1/acl/tokens") or []
    if not got:
        return "No tokens found"
    rows = [["Name", "Type", "Global", "Accessor ID", "Expired"]]
    rows += [[t.get("Name", ""), t.get("Type", ""), str(bool(t.get("Global"))).lower(), t["AccessorID"],
              "false"] for t in got]
    return table(rows)


def token_info(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl token info takes one argument: <accessor id>")
    return _format_token(request(addr, "GET", f"/v1/acl/token/{args[0]}"))


def token_self(addr: str, args: list[str]) -> str:
    return _format_token(request(addr, "GET", "/v1/acl/token/self"))


def token_delete(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl token delete takes one argument: <accessor id>")
    request(addr, "DELETE", f"/v1/acl/token/{args[0]}")
    return f"Token {args[0]} successfully deleted"


ACL_COMMANDS = {
    ("acl", "bootstrap"): acl_bootstrap,
    ("acl", "policy", "apply"): policy_apply,
    ("acl", "policy", "list"): policy_list,
    ("acl", "policy", "info"): policy_info,
    ("acl", "policy", "delete"): policy_delete,
    ("acl", "token", "create"): token_create,
    ("acl", "token", "list"): token_list,
    ("acl", "token", "info"): token_info,
    ("acl", "token", "self"): token_self,
    ("acl", "token", "delete"): token_delete,
}
