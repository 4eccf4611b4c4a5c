"""``nomad acl ...``: bootstrap, policies and tokens over the HTTP API (Nomad's ``command/acl_*.go``).

``acl bootstrap``, ``acl policy apply [-description d] [-namespace ns -job j [-group g [-task
t]]] <name> <file>`` (-namespace/-job/...: Nomad 1.4's policies attached to workloads),
``acl policy list``, ``acl policy info <name>``, ``acl policy delete <name>``,
``acl token create [-name n] [-type client|management] [-policy p]...
[-role-id id]... [-role-name n]... [-global] [-ttl d]``, ``acl token list``, ``acl
token info <accessor>``, ``acl token self``, ``acl token delete <accessor>``,
and ACL roles (Nomad 1.4, ``command/acl_role_*.go``): ``acl role create
-name n [-description d] -policy p...``, ``acl role list``, ``acl role info
[-by-name] <id>``, ``acl role update [-name n] [-description d] [-policy
p]... [-no-merge] <id>``, ``acl role delete <id>`` (``-json`` on create,
list, info and update).  The token sent with each request is
``-token`` or ``NOMAD_TOKEN`` (read by :func:`runtime.cli.main` for every
command).  Output follows Nomad's: a token as ``Key = value`` lines, lists
as tables.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

from actors.state.autopilot_config import go_duration, parse_go_duration
from runtime.cli import ACTIVE, CliError, table
from runtime.cli_jobs import parse_flags, request

__all__ = ["ACL_COMMANDS"]


def _kv(rows: list[tuple[str, str]]) -> str:
    """Nomad's ``formatKV``: ``Key = value`` lines, the keys padded to one width; an empty value is
    ``<none>`` (its columnize placeholder)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)} = {v or '<none>'}" for k, v in rows)


def _list(rows: list[list[str]]) -> str:
    """Nomad's ``formatList``: a table whose empty cells are ``<none>``."""
    return table([rows[0]] + [[c or "<none>" for c in r] for r in rows[1:]])


_API_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z")


def _go_time(value: Any) -> str:
    """An API time (RFC 3339, UTC) as Go's ``time.Time.String``: ``2026-11-28 01:00:00.5 +0000 UTC``."""
    m = _API_TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return str(value if value is not None else "")
    frac = (m[3] or "")[:9].rstrip("0")
    return f"{m[1]} {m[2]}{'.' + frac if frac else ''} +0000 UTC"


def _expired(expiration: Any) -> bool:
    """The list's Expired column: an ExpirationTime before now (Nomad's formatTokens, on the CLI's clock)."""
    m = _API_TIME.fullmatch(expiration) if isinstance(expiration, str) else None
    if m is None or expiration.startswith("0001-01-01"):
        return False
    when = dt.datetime.fromisoformat(f"{m[1]}T{m[2]}.{(m[3] or '0')[:6]:0<6}+00:00")
    return when < dt.datetime.now(dt.UTC)


def _format_token(t: dict[str, Any]) -> str:
    """Nomad's ``outputACLToken``: the fields, then a client token's roles as a table."""
    management = t.get("Type") == "management"
    # Nomad prints a client token's policies with %v of a []string: "[a b]", "[]" for none.
    policies = f"[{' '.join(t.get('Policies') or [])}]" if not management else "n/a"
    rows = [("Accessor ID", t["AccessorID"]), ("Secret ID", t.get("SecretID", "")),
            ("Name", t.get("Name", "")),
            ("Type", t.get("Type", "")), ("Global", str(bool(t.get("Global"))).lower()),
            ("Create Time", _go_time(t.get("CreateTime", ""))),
            # Nomad's expiryTimeString: <none> for a token that never expires.
            ("Expiry Time", _go_time(t["ExpirationTime"]) if t.get("ExpirationTime") else "<none>"),
            ("Create Index", str(t.get("CreateIndex", 0))), ("Modify Index", str(t.get("ModifyIndex", 0))),
            ("Policies", policies)]
    if management:
        return _kv([*rows, ("Roles", "n/a")])
    links = t.get("Roles") or []
    roles = "<none>"
    if links:
        roles = table([["ID", "Name"]] + [[r.get("ID", ""), r.get("Name", "")] for r in links])
    return f"{_kv(rows)}\n\nRoles\n{roles}"


def acl_bootstrap(addr: str, args: list[str]) -> str:
    """Nomad's ``acl bootstrap [-json] [<path>]``: the operator's secret read from <path> ("-": stdin),
    one trailing newline cut, sent as the BootstrapSecret (empty: the servers draw one)."""
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) > 1:
        raise CliError("This command takes up to one argument\n"
                       "For additional help try 'nomad acl bootstrap -help'")
    secret = ""
    if rest and rest[0] == "-":
        secret = sys.stdin.read()
    elif rest and rest[0]:
        try:
            secret = Path(rest[0]).read_text()
        except IsADirectoryError as e:  # Go opens a directory, then fails to read it
            raise CliError(f"Error reading provided token: read {rest[0]}: {e.strerror.lower()}") from None
        except OSError as e:
            raise CliError(f"Error reading provided token: open {rest[0]}: "
                           f"{(e.strerror or str(e)).lower()}") from None
    secret = secret.removesuffix("\n")
    token = request(addr, "PUT", "/v1/acl/bootstrap", {"BootstrapSecret": secret})
    if flags.get("json"):
        return json.dumps(token, indent=4)
    return _format_token(token)


def policy_apply(addr: str, args: list[str]) -> str:
    """Nomad's ``acl policy apply [-description d] [-namespace ns [-job j [-group g [-task t]]]] <name>
    <path>``: -namespace (with -job and so on) attaches the policy to those workloads (JobACL)."""
    flags, rest = parse_flags(args, {"description": str, "namespace": str, "job": str, "group": str,
                                     "task": str})
    if len(rest) != 2:
        raise CliError("This command takes two arguments: <name> and <path>\n"
                       "For additional help try 'nomad acl policy apply -help'")
    name, path = rest
    if path == "-":
        try:
            rules = sys.stdin.read()
        except OSError as e:
            raise CliError(f"Failed to read stdin: {e}") from None
    else:
        try:
            rules = Path(path).read_text()
        except OSError as e:
            raise CliError(f"Failed to read file: {e}") from None
    # Nomad reads the -namespace flag itself here (not NOMAD_NAMESPACE); runtime.cli.main takes it off first
    namespace = flags.get("namespace") or ACTIVE["flags"].get("-namespace", "")
    job = flags.get("job", "")
    group, task = flags.get("group", ""), flags.get("task", "")
    if job and not namespace:
        raise CliError("-namespace is required if -job is set")
    if group and not job:
        raise CliError("-job is required if -group is set")
    if task and not group:
        raise CliError("-group is required if -task is set")
    body: dict[str, Any] = {"Name": name, "Description": flags.get("description", ""), "Rules": rules}
    if namespace:
        body["JobACL"] = {"Namespace": namespace, "JobID": job, "Group": group, "Task": task}
    try:
        request(addr, "POST", f"/v1/acl/policy/{name}", body)
    except CliError as e:
        raise CliError(f"Error writing ACL policy: {e}") from None
    return f'Successfully wrote "{name}" ACL policy!'


# Nomad's api.ACLPolicyListStub, what `acl policy list -json` prints.
_POLICY_STUB_JSON = ("Name", "Description", "JobACL", "CreateIndex", "ModifyIndex")


def policy_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError("This command takes no arguments\n"
                       "For additional help try 'nomad acl policy list -help'")
    got = request(addr, "GET", "/v1/acl/policies") or []
    if flags.get("json"):
        return json.dumps([{k: p.get(k) for k in _POLICY_STUB_JSON} for p in got], indent=4)
    if not got:
        return "No policies found"
    return _list([["Name", "Description"]] + [[p["Name"], p.get("Description", "")] for p in got])


def policy_info(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl policy info takes one argument: <name>")
    p = request(addr, "GET", f"/v1/acl/policy/{args[0]}")
    out = _kv([("Name", p["Name"]), ("Description", p.get("Description") or ""),
               ("CreateIndex", str(p.get("CreateIndex", 0))), ("ModifyIndex", str(p.get("ModifyIndex", 0)))])
    job_acl = p.get("JobACL")
    if job_acl:  # Nomad's formatACLPolicy: the workload the policy is attached to
        out += "\n\nAssociated Workload\n" + _kv([(k, str(job_acl.get(k, ""))) for k in
                                                   ("Namespace", "JobID", "Group", "Task")])
    return f"{out}\n\nRules\n\n{p.get('Rules', '')}"


def policy_delete(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("acl policy delete takes one argument: <name>")
    request(addr, "DELETE", f"/v1/acl/policy/{args[0]}")
    return f'Successfully deleted "{args[0]}" ACL policy!'


def policy_self(addr: str, args: list[str]) -> str:
    """Nomad's ``acl policy self``: the policies the current token holds (its roles' included).

    For an ACL token Nomad's ``/v1/acl/policy/self`` answers the policy list
    as that token may see it, which is what ``/v1/acl/policies`` answers here.
    """
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError("This command takes no arguments\n"
                       "For additional help try 'nomad acl policy self -help'")
    try:
        token = request(addr, "GET", "/v1/acl/token/self")
    except CliError as e:
        raise CliError(f"Error fetching token: {e}") from None
    if token.get("Type") == "management":
        return "This is a management token. No individual policies are assigned."
    try:
        policies = request(addr, "GET", "/v1/acl/policies") or []
    except CliError as e:
        raise CliError(f"Error fetching WI policies: {e}") from None
    if not policies:
        return "No policies found."
    if flags.get("json"):
        return json.dumps(policies, indent=4)
    rows = [["Name", "Job ID", "Group Name", "Task Name"]]
    for p in policies:
        job = p.get("JobACL")
        if not job:
            rows.append([p["Name"], "<unavailable>", "<unavailable>", "<unavailable>"])
        else:
            rows.append([p["Name"], *(job.get(k) or "<not specified>" for k in ("JobID", "Group", "Task"))])
    return table(rows)


# api.ACLToken's JSON as Nomad's Format prints it: its MarshalJSON puts ExpirationTTL (a string, "" when
# none) before the other fields; ExpirationTime is left out when none (omitempty).  The list's stubs are
# api.ACLTokenListStub (no SecretID, no ExpirationTTL).
_TOKEN_JSON = ("AccessorID", "SecretID", "Name", "Type", "Policies", "Roles", "Global", "CreateTime",
               "ExpirationTime", "CreateIndex", "ModifyIndex")
_STUB_JSON = ("AccessorID", "Name", "Type", "Policies", "Roles", "Global", "CreateTime", "ExpirationTime",
              "CreateIndex", "ModifyIndex")


def _api_token(t: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"ExpirationTTL": t.get("ExpirationTTL") or ""} if "SecretID" in fields else {}
    for f in fields:
        if f == "ExpirationTime" and not t.get(f):
            continue
        value = t.get(f)
        if f == "Roles" and value:
            value = [{"ID": r.get("ID", ""), "Name": r.get("Name", "")} for r in value]
        out[f] = value
    return out


def token_create(addr: str, args: list[str]) -> str:
    flags, rest = _token_flags(args)
    if rest:
        raise CliError("acl token create takes no arguments")
    # Nomad's generateACLTokenRoleLinks: names first, then IDs, each deduplicated.
    roles = ([{"Name": n} for n in dict.fromkeys(flags.get("role-name", []))]
             + [{"ID": i} for i in dict.fromkeys(flags.get("role-id", []))])
    body = {"Name": flags.get("name", ""), "Type": flags.get("type", "client"),
            "Policies": flags.get("policy", []), "Roles": roles, "Global": flags.get("global", False)}
    if flags.get("ttl"):
        try:
            body["ExpirationTTL"] = go_duration(parse_go_duration(flags["ttl"]))
        except ValueError as e:
            raise CliError(f"Failed to parse TTL as time duration: {e}") from None
    token = request(addr, "POST", "/v1/acl/token", body)
    if flags.get("json"):
        return json.dumps(_api_token(token, _TOKEN_JSON), indent=4)
    return _format_token(token)


def token_update(addr: str, args: list[str]) -> str:
    """``nomad acl token update [-name] [-type] [-policy ...] [-role-id|-role-name ...] <accessor>``:
    what a flag names replaces the token's; the rest is kept (Nomad's ACLTokenUpdateCommand)."""
    flags, rest = parse_flags(args, {"name": str, "type": str, "policy": list, "role-id": list,
                                     "role-name": list})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <token_accessor_id>\n"
                       "For additional help try 'nomad acl token update -h'")
    try:
        token = request(addr, "GET", f"/v1/acl/token/{rest[0]}")
    except CliError as e:
        raise CliError(f"Error fetching token: {e}") from None
    if flags.get("name"):
        token["Name"] = flags["name"]
    if flags.get("type"):
        token["Type"] = flags["type"]
    if flags.get("policy"):
        token["Policies"] = flags["policy"]
    if flags.get("role-name") or flags.get("role-id"):
        token["Roles"] = ([{"Name": n} for n in dict.fromkeys(flags.get("role-name", []))]
                          + [{"ID": i} for i in dict.fromkeys(flags.get("role-id", []))])
    try:
        return _format_token(request(addr, "POST", f"/v1/acl/token/{token['AccessorID']}", token))
    except CliError as e:
        raise CliError(f"Error updating token: {e}") from None


def _token_flags(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """-name, -type, -global, -ttl, and -policy, -role-id and -role-name, which may repeat (Go's flag.Var)."""
    flags, rest = parse_flags(args, {"name": str, "type": str, "global": bool, "policy": list,
                                     "role-id": list, "role-name": list, "ttl": str, "json": bool})
    return {"policy": [], **flags}, rest


def token_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError("This command takes no arguments\n"
                       "For additional help try 'nomad acl token list -help'")
    got = request(addr, "GET", "/v1/acl/tokens") or []
    if flags.get("json"):
        return json.dumps([_api_token(t, _STUB_JSON) for t in got], indent=4)
    if not got:
        return "No tokens found"
    rows = [["Name", "Type", "Global", "Accessor ID", "Expired"]]
    rows += [[t.get("Name", ""), t.get("Type", ""), str(bool(t.get("Global"))).lower(), t["AccessorID"],
              str(_expired(t.get("ExpirationTime"))).lower()] for t in got]
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


# ---------------------------------------------------------------- roles


def _format_role(r: dict[str, Any]) -> str:
    """Nomad's ``formatACLRole``: the policies by name, sorted."""
    return _kv([("ID", r["ID"]), ("Name", r.get("Name", "")), ("Description", r.get("Description", "")),
                ("Policies", ",".join(sorted(p["Name"] for p in r.get("Policies") or []))),
                ("Create Index", str(r.get("CreateIndex", 0))),
                ("Modify Index", str(r.get("ModifyIndex", 0)))])


def _role_out(role: Any, as_json: bool) -> str:
    return json.dumps(role, indent=4) if as_json else _format_role(role)


def _role_call(what: str, addr: str, method: str, path: str, body: Any = None) -> Any:
    """The request, its error prefixed as Nomad's role commands do ("Error creating ACL role: ...")."""
    try:
        return request(addr, method, path, body)
    except CliError as e:
        raise CliError(f"Error {what}: {e}") from None


def _policy_links(names: list[str]) -> list[dict[str, str]]:
    return [{"Name": n} for n in dict.fromkeys(names)]  # Nomad aclRolePolicyNamesToPolicyLinks


def role_create(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"name": str, "description": str, "policy": list, "json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    if not flags.get("name"):
        raise CliError("ACL role name must be specified using the -name flag")
    if not flags.get("policy"):
        raise CliError("At least one policy name must be specified using the -policy flag")
    body = {"Name": flags["name"], "Description": flags.get("description", ""),
            "Policies": _policy_links(flags["policy"])}
    got = _role_call("creating ACL role", addr, "POST", "/v1/acl/role", body)
    return _role_out(got, flags.get("json", False))


def role_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    roles = _role_call("listing ACL roles", addr, "GET", "/v1/acl/roles") or []
    if flags.get("json"):
        return json.dumps(roles, indent=4)
    if not roles:
        return "No ACL roles found"
    return _list([["ID", "Name", "Description", "Policies"]] + [
        [r["ID"], r.get("Name", ""), r.get("Description", ""),
         ",".join(sorted(p["Name"] for p in r.get("Policies") or []))] for r in roles])


def role_info(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"by-name": bool, "json": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <acl_role_id>")
    path = f"/v1/acl/role/name/{rest[0]}" if flags.get("by-name") else f"/v1/acl/role/{rest[0]}"
    return _role_out(_role_call("reading ACL role", addr, "GET", path), flags.get("json", False))


def role_update(addr: str, args: list[str]) -> str:
    """Merges the flags into the current role (Nomad's default), or replaces it with -no-merge."""
    flags, rest = parse_flags(args, {"name": str, "description": str, "policy": list, "no-merge": bool,
                                     "json": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <acl_role_id>")
    role_id, policies = rest[0], flags.get("policy", [])
    current = _role_call("when retrieving ACL role", addr, "GET", f"/v1/acl/role/{role_id}")
    if flags.get("no-merge"):
        if not flags.get("name"):
            raise CliError("ACL role name must be specified using the -name flag")
        if not policies:
            raise CliError("At least one policy name must be specified using the -policy flag")
        role = {"ID": role_id, "Name": flags["name"], "Description": flags.get("description", ""),
                "Policies": _policy_links(policies)}
    else:
        if not policies and not flags.get("name") and not flags.get("description"):
            raise CliError("Please provide at least one flag to update the ACL role")
        role = dict(current)
        role["Name"] = flags.get("name") or current["Name"]
        role["Description"] = flags.get("description") or current.get("Description", "")
        have = [p["Name"] for p in current.get("Policies") or []]
        role["Policies"] = _policy_links(have + policies)
    got = _role_call("updating ACL role", addr, "POST", f"/v1/acl/role/{role_id}", role)
    return _role_out(got, flags.get("json", False))


def role_delete(addr: str, args: list[str]) -> str:
    if len(args) != 1:
        raise CliError("This command takes one argument: <acl_role_id>")
    _role_call("deleting ACL role", addr, "DELETE", f"/v1/acl/role/{args[0]}")
    return f"ACL role {args[0]} successfully deleted"


ACL_COMMANDS = {
    ("acl", "bootstrap"): acl_bootstrap,
    ("acl", "policy", "apply"): policy_apply,
    ("acl", "policy", "list"): policy_list,
    ("acl", "policy", "info"): policy_info,
    ("acl", "policy", "delete"): policy_delete,
    ("acl", "policy", "self"): policy_self,
    ("acl", "token", "create"): token_create,
    ("acl", "token", "list"): token_list,
    ("acl", "token", "info"): token_info,
    ("acl", "token", "self"): token_self,
    ("acl", "token", "delete"): token_delete,
    ("acl", "token", "update"): token_update,
    ("acl", "role", "create"): role_create,
    ("acl", "role", "list"): role_list,
    ("acl", "role", "info"): role_info,
    ("acl", "role", "update"): role_update,
    ("acl", "role", "delete"): role_delete,
}
