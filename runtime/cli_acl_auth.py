"""``nomad acl auth-method ...``, ``nomad acl binding-rule ...`` and ``nomad login`` (Nomad 1.5+'s SSO).

After Nomad's ``command/acl_auth_method_*.go``, ``command/acl_binding_rule_*.go``
and ``command/login.go``: the same flags, checks, messages and output (a
method or rule as ``Key = value`` lines, lists as tables, ``-json`` and
``-t`` as everywhere).  ``nomad login`` exchanges a JWT (``-login-token``)
for an ACL token with the named auth method, or the cluster's default one.
The OIDC browser flow is not available here (the agent refuses OIDC methods).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from actors.state.autopilot_config import go_duration, parse_go_duration
from runtime.cli import CliError, table
from runtime.cli_acl import _format_token, _go_time, _kv
from runtime.cli_jobs import parse_flags, request

__all__ = ["ACL_AUTH_COMMANDS"]

NO_ARGS = "This command takes no arguments"


def _help_hint(words: str) -> str:
    return f"For additional help try 'nomad {words} -help'"


def _call(what: str, addr: str, method: str, path: str, body: Any = None) -> Any:
    try:
        return request(addr, method, path, body)
    except CliError as e:
        raise CliError(f"{what}: {e}") from None


def _out(value: Any, as_json: bool, text: str) -> str:
    return json.dumps(value, indent=4) if as_json else text


# ---------------------------------------------------------------- auth methods


def _dur(text: Any) -> str:
    """An API duration ("" for none) as Go's Duration.String prints it."""
    if not text:
        return "0s"
    try:
        return go_duration(parse_go_duration(str(text)))
    except ValueError:
        return str(text)


def _map(m: Any) -> str:
    return "; ".join(f"{{{k}: {v}}}" for k, v in sorted((m or {}).items()))


def _join(items: Any) -> str:
    return ",".join(items or [])


def format_auth_method(m: dict[str, Any]) -> str:
    """Nomad's ``outputAuthMethod``: the method, then its config."""
    out = _kv([("Name", m.get("Name", "")), ("Type", m.get("Type", "")),
               ("Locality", m.get("TokenLocality", "")), ("Max Token TTL", _dur(m.get("MaxTokenTTL"))),
               ("Token Name Format", m.get("TokenNameFormat", "")),
               ("Default", str(bool(m.get("Default"))).lower()),
               ("Create Index", str(m.get("CreateIndex", 0))),
               ("Modify Index", str(m.get("ModifyIndex", 0)))])
    c = m.get("Config")
    if c is None:
        return out
    rows = [("JWT Validation Public Keys", _join(c.get("JWTValidationPubKeys"))),
            ("JWKS URL", c.get("JWKSURL") or ""), ("OIDC Discovery URL", c.get("OIDCDiscoveryURL") or ""),
            ("OIDC Client ID", c.get("OIDCClientID") or ""),
            ("OIDC Client Secret", c.get("OIDCClientSecret") or ""),
            ("OIDC Enable PKCE", str(bool(c.get("OIDCEnablePKCE"))).lower()),
            ("OIDC Disable UserInfo", str(bool(c.get("OIDCDisableUserInfo"))).lower()),
            ("OIDC Scopes", _join(c.get("OIDCScopes"))), ("Bound audiences", _join(c.get("BoundAudiences"))),
            ("Bound issuer", _join(c.get("BoundIssuer"))),
            ("Allowed redirects URIs", _join(c.get("AllowedRedirectURIs"))),
            ("Discovery CA pem", _join(c.get("DiscoveryCaPem"))), ("JWKS CA cert", c.get("JWKSCACert") or ""),
            ("Signing algorithms", _join(c.get("SigningAlgs"))),
            ("Expiration Leeway", _dur(c.get("ExpirationLeeway"))),
            ("NotBefore Leeway", _dur(c.get("NotBeforeLeeway"))),
            ("ClockSkew Leeway", _dur(c.get("ClockSkewLeeway"))),
            ("Claim mappings", _map(c.get("ClaimMappings"))),
            ("List claim mappings", _map(c.get("ListClaimMappings")))]
    return f"{out}\n\nAuth Method Config\n\n{_kv(rows)}"


def _load_config(source: str) -> dict[str, Any]:
    """Nomad's ``loadDataSource``: ``@file``, ``-`` (stdin) or the JSON itself; then decoded."""
    try:
        if source.startswith("@"):
            text = Path(source[1:]).read_text()
        elif source == "-":
            text = sys.stdin.read()
        else:
            text = source
    except OSError as e:
        raise CliError(f"Error loading configuration: Failed to read file: {e}") from None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise CliError(f"Unable to parse config: {e}") from None
    if not isinstance(config, dict):
        raise CliError("Unable to parse config: the config must be a JSON object")
    return config


def _ttl(text: str) -> int:
    try:
        return parse_go_duration(text)
    except ValueError:
        raise CliError(f'invalid value "{text}" for flag -max-token-ttl: parse error') from None


_TTL_RANGE = "Max token TTL must be set to a value between min and max TTL configured for the server."
_LOCALITY = "Token locality must be set to either 'local' or 'global'"
_TYPE = "ACL auth method type must be set to 'OIDC' or 'JWT'"


def auth_method_create(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"name": str, "type": str, "max-token-ttl": str,
                                     "token-locality": str, "token-name-format": str, "default": bool,
                                     "config": str, "json": bool})
    if rest:
        raise CliError(f"{NO_ARGS}\n{_help_hint('acl auth-method create')}")
    if not flags.get("name"):
        raise CliError("ACL auth method name must be specified using the -name flag")
    if flags.get("token-locality", "") not in ("global", "local"):
        raise CliError(_LOCALITY)
    if _ttl(flags.get("max-token-ttl", "0s")) < 1:
        raise CliError(_TTL_RANGE)
    if flags.get("type", "").upper() not in ("OIDC", "JWT"):
        raise CliError(_TYPE)
    if not flags.get("config"):
        raise CliError("Must provide ACL auth method config in JSON format")
    body = {"Name": flags["name"], "Type": flags["type"].upper(), "TokenLocality": flags["token-locality"],
            "TokenNameFormat": flags.get("token-name-format", ""),
            "MaxTokenTTL": go_duration(_ttl(flags["max-token-ttl"])), "Default": flags.get("default", False),
            "Config": _load_config(flags["config"])}
    got = _call("Error creating ACL auth method", addr, "POST", "/v1/acl/auth-method", body)
    return _out(got, flags.get("json", False), format_auth_method(got))


def auth_method_update(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"type": str, "max-token-ttl": str, "token-locality": str,
                                     "token-name-format": str, "default": bool, "config": str,
                                     "json": bool})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_auth_method_name>\n"
                       f"{_help_hint('acl auth-method update')}")
    name = rest[0]
    method = _call("Error when retrieving ACL auth method", addr, "GET", f"/v1/acl/auth-method/{name}")
    if not any(f in flags for f in ("type", "token-locality", "token-name-format", "max-token-ttl", "config",
                                    "default")):
        raise CliError("Please provide at least one flag to update the ACL auth method")
    if "token-locality" in flags:
        if flags["token-locality"] not in ("global", "local"):
            raise CliError(_LOCALITY)
        method["TokenLocality"] = flags["token-locality"]
    if "token-name-format" in flags:
        method["TokenNameFormat"] = flags["token-name-format"]
    if "type" in flags:
        if flags["type"].upper() not in ("OIDC", "JWT"):
            raise CliError(_TYPE)
        method["Type"] = flags["type"]  # as Nomad's update sends it (not upper-cased)
    if "max-token-ttl" in flags:
        ttl = _ttl(flags["max-token-ttl"])
        if ttl < 1:
            raise CliError(_TTL_RANGE)
        method["MaxTokenTTL"] = go_duration(ttl)
    if "default" in flags:
        method["Default"] = flags["default"]
    if flags.get("config"):
        method["Config"] = _load_config(flags["config"])
    got = _call("Error updating ACL auth method", addr, "POST", f"/v1/acl/auth-method/{name}", method)
    return _out(got, flags.get("json", False), format_auth_method(got))


def auth_method_delete(addr: str, args: list[str]) -> str:
    _, rest = parse_flags(args, {})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_auth_method_name>\n"
                       f"{_help_hint('acl auth-method delete')}")
    _call("Error deleting ACL auth method", addr, "DELETE", f"/v1/acl/auth-method/{rest[0]}")
    return f"ACL auth method {rest[0]} successfully deleted"


def auth_method_info(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_auth_method_name>\n"
                       f"{_help_hint('acl auth-method info')}")
    got = _call("Error reading ACL auth method", addr, "GET", f"/v1/acl/auth-method/{rest[0]}")
    return _out(got, flags.get("json", False), format_auth_method(got))


def auth_method_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError(f"{NO_ARGS}\n{_help_hint('acl auth-method list')}")
    got = _call("Error listing ACL auth methods", addr, "GET", "/v1/acl/auth-methods") or []
    if flags.get("json"):
        return json.dumps(got, indent=4)
    if not got:
        return "No ACL auth methods found"
    return table([["Name", "Type", "Default"]]
                 + [[m["Name"], m.get("Type", ""), str(bool(m.get("Default"))).lower()] for m in got])


# ---------------------------------------------------------------- binding rules


def format_binding_rule(r: dict[str, Any]) -> str:
    """Nomad's ``formatACLBindingRule`` (the selector Go-quoted)."""
    return _kv([("ID", r.get("ID", "")), ("Description", r.get("Description", "")),
                ("Auth Method", r.get("AuthMethod", "")), ("Selector", json.dumps(r.get("Selector", ""))),
                ("Bind Type", r.get("BindType", "")), ("Bind Name", r.get("BindName", "")),
                ("Create Time", _go_time(r.get("CreateTime", ""))),
                ("Modify Time", _go_time(r.get("ModifyTime", ""))),
                ("Create Index", str(r.get("CreateIndex", 0))),
                ("Modify Index", str(r.get("ModifyIndex", 0)))])


def binding_rule_create(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"description": str, "auth-method": str, "selector": str,
                                     "bind-type": str, "bind-name": str, "json": bool})
    if rest:
        raise CliError(f"{NO_ARGS}\n{_help_hint('acl binding-rule create')}")
    if not flags.get("auth-method"):
        raise CliError("ACL binding rule auth method must be specified using the -auth-method flag")
    if not flags.get("bind-type"):
        raise CliError("ACL binding rule bind type must be specified using the -bind-type flag")
    body = {"Description": flags.get("description", ""), "AuthMethod": flags["auth-method"],
            "Selector": flags.get("selector", ""), "BindType": flags["bind-type"],
            "BindName": flags.get("bind-name", "")}
    got = _call("Error creating ACL binding rule", addr, "POST", "/v1/acl/binding-rule", body)
    return _out(got, flags.get("json", False), format_binding_rule(got))


def binding_rule_update(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"description": str, "selector": str, "bind-type": str, "bind-name": str,
                                     "no-merge": bool, "json": bool})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_binding_rule_id>\n"
                       f"{_help_hint('acl binding-rule update')}")
    current = _call("Error when retrieving ACL binding rule", addr, "GET", f"/v1/acl/binding-rule/{rest[0]}")
    if flags.get("no-merge"):
        if not flags.get("bind-type"):
            raise CliError("ACL binding rule bind type must be specified using the -bind-type flag")
        rule = {"ID": current["ID"], "Description": flags.get("description", ""),
                "AuthMethod": current.get("AuthMethod", ""), "Selector": flags.get("selector", ""),
                "BindType": flags["bind-type"], "BindName": flags.get("bind-name", "")}
    else:
        if not any(flags.get(f) for f in ("description", "selector", "bind-type", "bind-name")):
            raise CliError(f"Please provide at least one update for the ACL binding rule\n"
                           f"{_help_hint('acl binding-rule update')}")
        rule = dict(current)
        for flag, field in (("description", "Description"), ("selector", "Selector"),
                            ("bind-type", "BindType"), ("bind-name", "BindName")):
            if flags.get(flag):
                rule[field] = flags[flag]
    got = _call("Error updating ACL binding rule", addr, "POST", f"/v1/acl/binding-rule/{current['ID']}",
                rule)
    return _out(got, flags.get("json", False), format_binding_rule(got))


def binding_rule_delete(addr: str, args: list[str]) -> str:
    _, rest = parse_flags(args, {})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_binding_rule_id>\n"
                       f"{_help_hint('acl binding-rule delete')}")
    _call("Error deleting ACL binding rule", addr, "DELETE", f"/v1/acl/binding-rule/{rest[0]}")
    return f"ACL binding rule {rest[0]} successfully deleted"


def binding_rule_info(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <acl_binding_rule_id>\n"
                       f"{_help_hint('acl binding-rule info')}")
    got = _call("Error reading ACL binding rule", addr, "GET", f"/v1/acl/binding-rule/{rest[0]}")
    return _out(got, flags.get("json", False), format_binding_rule(got))


def binding_rule_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if rest:
        raise CliError(f"{NO_ARGS}\n{_help_hint('acl binding-rule list')}")
    got = _call("Error listing ACL binding rules", addr, "GET", "/v1/acl/binding-rules") or []
    if flags.get("json"):
        return json.dumps(got, indent=4)
    if not got:
        return "No ACL binding rules found"
    return table([["ID", "Description", "Auth Method"]]
                 + [[r["ID"], r.get("Description", ""), r.get("AuthMethod", "")] for r in got])


# ---------------------------------------------------------------- login


def login(addr: str, args: list[str]) -> str:
    """Nomad's ``login``: the named (or default) method's type decides the flow; JWT here."""
    flags, rest = parse_flags(args, {"method": str, "type": str, "login-token": str,
                                     "oidc-callback-addr": str, "json": bool})
    if rest:
        raise CliError(f"{NO_ARGS}\n{_help_hint('login')}")
    if flags.get("type"):
        print("warning: '-type' flag has been deprecated for nomad login command and will be ignored.",
              file=sys.stderr)
    methods = _call("Error listing ACL auth methods", addr, "GET", "/v1/acl/auth-methods") or []
    name, kind = flags.get("method", ""), ""
    if not name:
        default = [m for m in methods if m.get("Default")]
        if not default:
            raise CliError("Must specify an auth method name, no default found")
        name, kind = default[-1]["Name"], default[-1].get("Type", "")
    else:
        kind = next((m.get("Type", "") for m in methods if m["Name"] == name), "")
        if not kind:
            raise CliError(f"method {name} not found in the state store. ")
    if kind != "OIDC" and not flags.get("login-token"):
        raise CliError("You need to provide a login token.")
    if kind == "OIDC":
        raise CliError("Error performing login: the OIDC browser login is not supported by this CLI")
    if kind != "JWT":
        raise CliError(f'Unsupported authentication type "{kind}"')
    token = _call("Error performing login", addr, "POST", "/v1/acl/login",
                  {"AuthMethodName": name, "LoginToken": flags["login-token"]})
    if flags.get("json"):
        return json.dumps(token, indent=4)
    return f"Successfully logged in via {kind} and {name}\n\n{_format_token(token)}"


ACL_AUTH_COMMANDS = {
    ("acl", "auth-method", "create"): auth_method_create,
    ("acl", "auth-method", "update"): auth_method_update,
    ("acl", "auth-method", "delete"): auth_method_delete,
    ("acl", "auth-method", "info"): auth_method_info,
    ("acl", "auth-method", "list"): auth_method_list,
    ("acl", "binding-rule", "create"): binding_rule_create,
    ("acl", "binding-rule", "update"): binding_rule_update,
    ("acl", "binding-rule", "delete"): binding_rule_delete,
    ("acl", "binding-rule", "info"): binding_rule_info,
    ("acl", "binding-rule", "list"): binding_rule_list,
    ("login",): login,
}
