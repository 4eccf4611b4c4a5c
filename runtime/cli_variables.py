"""``nomad var list | get | put | purge``, as Nomad's ``command/var_*.go``.

* ``var put [-force] [-check-index=N] [-in=json|hcl] [-out=none|json|table] <path> [<key>=<value>]...``
  writes the whole variable: its items from ``key=value`` arguments
  (``key=@file`` reads the value from a file; ``key=`` drops an item of a
  specification) and/or a specification (``@file``, ``-`` for stdin, as
  ``var get -out=json`` prints one).  It refuses to overwrite a variable
  it did not read (check-and-set on the index it knows, 0 for a new one)
  unless ``-force`` or ``-check-index`` say otherwise.
* ``var get [-out=json|table|none] <path> [<item>]``: the variable, or one item's value.
* ``var list [-json] [<prefix>]``: the variables' paths and when they changed.
* ``var purge [-check-index=N] <path>``.

Output defaults follow Nomad's: a table on a terminal, JSON when piped.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import kv, one_arg, parse_flags, request

__all__ = ["VARIABLE_COMMANDS"]


def _url(path: str) -> str:
    return "/v1/var/" + urllib.parse.quote(path.strip().strip("/"), safe="/")


def _time(ns: Any) -> str:
    if not isinstance(ns, int) or ns <= 0:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _default_out(tty_default: str, piped: str) -> str:
    return tty_default if sys.stdout.isatty() else piped


def _render(var: dict[str, Any], out: str) -> str:
    if out == "json":
        return json.dumps(var, indent=2, sort_keys=True)
    if out == "none":
        return ""
    items = var.get("Items") or {}
    return "\n".join([kv([("Namespace", var.get("Namespace", "")), ("Path", var.get("Path", "")),
                          ("Create Time", _time(var.get("CreateTime"))),
                          ("Check Index", str(var.get("ModifyIndex", 0)))]),
                      "", "Items", kv(sorted(items.items())) if items else "<none>"])


def var_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) > 1:
        raise CliError("This command takes at most one argument: <prefix>")
    found = request(addr, "GET", "/v1/vars", prefix=rest[0] if rest else None) or []
    if flags.get("json"):
        return json.dumps(found, indent=2)
    if not found:
        return "No matching variables found"
    return table([["Namespace", "Path", "Last Updated"]] +
                 [[x["Namespace"], x["Path"], _time(x.get("ModifyTime"))] for x in found])


def var_get(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"out": str})
    if not 1 <= len(rest) <= 2:
        raise CliError("This command takes one or two arguments: <path> [<item key>]")
    try:
        var = request(addr, "GET", _url(rest[0]))
    except CliError as e:
        raise CliError(f"Error retrieving variable: {e}") from None
    if len(rest) == 2:
        items = var.get("Items") or {}
        if rest[1] not in items:
            raise CliError(f'Variable does not contain "{rest[1]}" item')
        return items[rest[1]]
    out = flags.get("out") or _default_out("table", "json")
    if out not in ("json", "table", "none"):
        raise CliError('Invalid value for "-out"; valid values are [json, none, table]')
    return _render(var, out)


def _spec(arg: str, fmt: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if arg == "-" else open(arg[1:], encoding="utf-8").read()
    except OSError as e:
        raise CliError(f"Error reading {arg[1:]!r}: {e}") from None
    if arg != "-" and arg.lower().endswith(".hcl"):
        fmt = "hcl"
    if fmt == "hcl":
        from runtime.hcl_job import HclJobError, _load

        try:
            doc = _load(text, "variable specification")
        except HclJobError as e:
            raise CliError(f"Failed to parse variable data: {e}") from None
        items = doc.get("items") or {}
        if isinstance(items, list):
            items = {k: val for block in items for k, val in block.items()}
        return {"Path": doc.get("path", ""), "Namespace": doc.get("namespace", ""), "Items": items}
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise CliError(f"Failed to parse variable data: error unmarshaling json: {e}") from None
    if not isinstance(spec, dict):
        raise CliError("Failed to parse variable data: the specification must be an object")
    return spec


def var_put(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"force": bool, "check-index": str, "in": str, "out": str})
    fmt = flags.get("in", "json")
    if fmt not in ("json", "hcl"):
        raise CliError('Invalid value for "-in"; valid values are [hcl, json]')
    out = flags.get("out") or _default_out("none", "json")
    if out not in ("json", "table", "none"):
        raise CliError('Invalid value for "-out"; valid values are [json, none, table]')
    if not rest:
        raise CliError("Not enough arguments (expected >1, got 0)")
    spec: dict[str, Any] = {}
    path = ""
    if rest[0] == "-" or rest[0].startswith("@"):
        spec = _spec(rest[0], fmt)
    else:
        path = rest[0].strip().strip("/")
        if len(rest) == 1:
            raise CliError("Must supply data")
        if rest[1] == "-" or rest[1].startswith("@"):
            spec = _spec(rest[1], fmt)
            rest = rest[1:]
    items = dict(spec.get("Items") or {})
    for pair in rest[1:]:
        k, eq, value = pair.partition("=")
        if not eq or not k:
            raise CliError(f"Failed to parse K=V data: invalid key/value pair {pair!r}")
        if value.startswith("@"):
            try:
                value = open(value[1:], encoding="utf-8").read()
            except OSError as e:
                raise CliError(f"Failed to parse K=V data: {e}") from None
        if value == "":
            items.pop(k, None)
        else:
            items[k] = value
    path = path or str(spec.get("Path") or "")
    if not path:
        raise CliError("Must supply a path")
    known = int(spec.get("ModifyIndex") or 0) if path == spec.get("Path") else 0
    query: dict[str, Any] = {}
    if "check-index" in flags:
        try:
            query["cas"] = int(flags["check-index"])
        except ValueError:
            raise CliError(f"Error parsing check-index value {flags['check-index']!r}") from None
    elif not flags.get("force"):
        query["cas"] = known
    try:
        var = request(addr, "PUT", _url(path), {"Path": path, "Items": items}, **query)
    except CliError as e:
        if "409" not in str(e):
            raise CliError(f"Error creating variable: {e}") from None
        current = request(addr, "GET", _url(path))
        have = current.get("ModifyIndex", 0)
        raise CliError(f"Check-and-Set conflict\n\n    Your provided check-index ({query['cas']}) does not "
                       f"match the server-side index ({have}).\n\n    If you are sure you want to perform "
                       f"this operation, add the -force or -check-index={have} flag before the positional "
                       "arguments.") from None
    return _render(var, out), 0


def var_purge(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"check-index": str})
    path = one_arg(rest, "nomad var purge <path>").strip().strip("/")
    query: dict[str, Any] = {}
    if "check-index" in flags:
        try:
            query["cas"] = int(flags["check-index"])
        except ValueError:
            raise CliError(f"Error parsing check-index value {flags['check-index']!r}") from None
    try:
        request(addr, "DELETE", _url(path), **query)
    except CliError as e:
        if "409" in str(e):
            raise CliError("Check-and-Set conflict: the variable changed since the given check-index "
                           f"({query.get('cas')}); nothing was purged") from None
        raise CliError(f"Error purging variable: {e}") from None
    return f'Successfully purged variable "{path}"!', 0


VARIABLE_COMMANDS = {
    ("var", "list"): var_list,
    ("var", "get"): var_get,
    ("var", "put"): var_put,
    ("var", "purge"): var_purge,
}
