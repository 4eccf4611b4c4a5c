"""``nomad var list | get | put | purge``, as Nomad's ``command/var_*.go``.

* ``var put [-force] [-check-index=N] [-in=json|hcl] [-out=none|json|hcl|table|go-template -template=T]
  <path> [<key>=<value>]...``
  writes the whole variable: its items from ``key=value`` arguments
  (``key=@file`` reads the value from a file; ``key=`` drops an item of a
  specification) and/or a specification (``@file``, ``-`` for stdin, as
  ``var get -out=json`` prints one).  It refuses to overwrite a variable
  it did not read (check-and-set on the index it knows, 0 for a new one)
  unless ``-force`` or ``-check-index`` say otherwise.
* ``var get [-out=json|hcl|table|none|go-template -template=T] <path> [<item>]``: the variable, or one
  item's value.
* ``var list [-out=json|table|terse|go-template -template=T] [-per-page=N] [-page-token=T] [-filter=F]
  [<prefix>]``: the variables' paths and when they changed; the next page's token on stderr.
* ``var purge [-check-index=N] <path>``.
* ``var lock [-ttl=15s] [-delay=15s] [-max-retry=5] [-early-return] [-backoff=d] [-shell=true]
  [-verbose] <path> [@spec] <child command...>`` (Nomad's ``var_lock.go`` and
  ``api.LockLeaser``): takes the variable's lock (waiting ``1.1 * TTL``
  between tries while another holds it, or returning at once with
  ``-early-return``), runs the child (through ``$SHELL -c``, /bin/sh by
  default, or directly with ``-shell=false``) while renewing the lock every
  ``0.7 * TTL``, forwards SIGINT and SIGTERM to it, and releases the lock
  when it exits; it exits 0 when the child did.  A lock lost while the
  child runs kills the child, and the command waits for the lock again, as
  Nomad's does.

Output defaults follow Nomad's: a table on a terminal, JSON when piped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import unicodedata
import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import kv, one_arg, parse_flags, request

__all__ = ["VARIABLE_COMMANDS"]


# Nomad's errWildcardNamespaceNotAllowed (command/var.go): one variable lives in one namespace.
WILDCARD_NOT_ALLOWED = 'The wildcard namespace ("*") is not valid for this command.'


def _refuse_wildcard() -> None:
    """var get, put, purge and lock name one variable: -namespace '*' is refused before any request
    (the API would answer a read 404 and a delete 204 with nothing deleted)."""
    from runtime.cli import ACTIVE

    if ACTIVE.get("namespace") == "*":
        raise CliError(WILDCARD_NOT_ALLOWED)


def _url(path: str) -> str:
    return "/v1/var/" + urllib.parse.quote(path.strip().strip("/"), safe="/")


def _time(ns: Any) -> str:
    if not isinstance(ns, int) or ns <= 0:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _default_out(tty_default: str, piped: str) -> str:
    return tty_default if sys.stdout.isatty() else piped


# Nomad's api.Variable field order, which its JSON output keeps.
_VAR_KEYS = ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime", "Items", "Lock")


# Nomad's renderAsHCL template (command/var.go): the items' keys right-aligned, their values Go-quoted.
_HCL_TEMPLATE = r"""
namespace    = "{{.Namespace}}"
path         = "{{.Path}}"
create_index = {{.CreateIndex}}  # Set by server
modify_index = {{.ModifyIndex}}  # Set by server; consulted for check-and-set
create_time  = {{.CreateTime}}   # Set by server
modify_time  = {{.ModifyTime}}   # Set by server

items = {
{{- $PAD := 0 -}}{{- range $k,$v := .Items}}{{if gt (len $k) $PAD}}{{$PAD = (len $k)}}{{end}}{{end -}}
{{- $FMT := printf "  %%%vs = %%q\n" $PAD}}
{{range $k,$v := .Items}}{{printf $FMT $k $v}}{{ end -}}
}
"""

# Nomad's errors for -out and -template (command/var.go)
_OUT_FORMATS = ("go-template", "hcl", "json", "none", "table")
_ERR_INVALID_OUT = 'Invalid value for "-out"; valid values are [go-template, hcl, json, none, table]'
_ERR_MISSING_TEMPLATE = "A template must be supplied using '-template' when using go-template formatting"
_ERR_UNEXPECTED_TEMPLATE = "The '-template' flag is only valid when using 'go-template' formatting"


def _out_format(flags: dict[str, Any], default: str, valid: tuple[str, ...] = _OUT_FORMATS,
                invalid: str = _ERR_INVALID_OUT) -> str:
    """The -out asked for (*default* when none), checked with -template as Nomad's validateOutputFlag."""
    out = flags.get("out") or default
    if out != "go-template" and flags.get("template"):
        raise CliError(_ERR_UNEXPECTED_TEMPLATE)
    if out not in valid:
        raise CliError(invalid)
    if out == "go-template" and not flags.get("template"):
        raise CliError(_ERR_MISSING_TEMPLATE)
    return out


def _go_template(data: Any, tmpl: str) -> str:
    from runtime.cli import render_template  # defined after runtime.cli imports this module

    return render_template(tmpl, data)


def _render(var: dict[str, Any], out: str, tmpl: str = "") -> str:
    if out == "hcl":
        return _go_template({**var, "Items": var.get("Items") or {}}, _HCL_TEMPLATE)
    if out == "go-template":
        return _go_template(var, tmpl)
    if out == "json":  # Nomad's AsPrettyJSON: the struct's field order, the items sorted
        ordered = {k: var[k] for k in _VAR_KEYS if k in var and (k != "Lock" or var[k])}
        ordered.update((k, v) for k, v in var.items() if k not in _VAR_KEYS)
        if isinstance(ordered.get("Items"), dict):
            ordered["Items"] = dict(sorted(ordered["Items"].items()))
        return json.dumps(ordered, indent=2)
    if out == "none":
        return ""
    items = var.get("Items") or {}
    meta = [("Namespace", var.get("Namespace", "")), ("Path", var.get("Path", "")),
            ("Create Time", _time(var.get("CreateTime")))]
    if var.get("ModifyTime") != var.get("CreateTime"):  # Nomad's renderSVAsUiTable
        meta.append(("Modify Time", _time(var.get("ModifyTime"))))
    meta.append(("Check Index", str(var.get("ModifyIndex", 0))))
    return "\n".join([kv(meta), "", "Items", kv(sorted(items.items())) if items else "<none>"])


def var_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool, "out": str, "filter": str, "template": str,
                                     "per-page": str, "page-token": str})
    if len(rest) > 1:
        raise CliError("This command takes flags and either no arguments or one: <prefix>")
    out = _out_format({**flags, "out": "json"} if flags.get("json") else flags,
                      _default_out("table", "json"), ("go-template", "json", "table", "terse"),
                      'Invalid value for "-out"; valid values are [go-template, json, table, terse]')
    if flags.get("filter"):
        print(FILTER_PERFORMANCE_WARNING, file=sys.stderr)
    try:
        per_page = int(flags.get("per-page") or 0)
    except ValueError:
        raise CliError(f'invalid value "{flags["per-page"]}" for flag -per-page: parse error') from None
    meta: dict[str, Any] = {}
    found = request(addr, "GET", "/v1/vars", prefix=rest[0] if rest else None, filter=flags.get("filter"),
                    per_page=per_page or None, next_token=flags.get("page-token") or None,
                    answer_meta=meta) or []
    if out == "json":
        if per_page > 0:  # Nomad wraps a page with its QueryMeta, so a script can find the next token
            query_meta = {"LastIndex": meta.get("index", 0), "LastContact": 0,
                          "KnownLeader": meta.get("known_leader", False), "RequestTime": 0,
                          "NextToken": meta.get("next_token", "")}
            return json.dumps({"Data": found, "QueryMeta": query_meta}, indent=4)
        return json.dumps(found, indent=4)  # Nomad's Format
    if out == "go-template":
        text = _go_template(found, flags["template"])
    elif out == "terse":  # the paths alone
        text = "\n".join(x["Path"] for x in found)
    elif not found:
        text = "No matching variables found"
    else:
        found = sorted(found, key=lambda x: (x.get("Namespace", ""), x.get("Path", "")))
        text = table([["Namespace", "Path", "Last Updated"]] +
                     [[x["Namespace"], x["Path"], _time(x.get("ModifyTime"))] for x in found])
    if meta.get("next_token"):  # on stderr, so stdout stays the page's variables (Nomad's)
        print(text, flush=True)
        print(f"Next page token: {meta['next_token']}", file=sys.stderr)
        return ""
    return text


# Nomad's msgWarnFilterPerformance, on stderr before a filtered list.
FILTER_PERFORMANCE_WARNING = ("Filter queries require a full scan of the data; use prefix searching "
                              "where possible")


def var_get(addr: str, args: list[str]) -> str | tuple[str, int]:
    flags, rest = parse_flags(args, {"out": str, "item": str, "template": str})
    if not 1 <= len(rest) <= 2:
        raise CliError("This command takes one argument: <path>")
    out = _out_format(flags, _default_out("table", "json"))
    _refuse_wildcard()
    try:
        var = request(addr, "GET", _url(rest[0]))
    except CliError as e:
        if "404" in str(e):  # Nomad warns "Variable not found", exit 1
            print("Variable not found", file=sys.stderr)
            return "", 1
        raise CliError(f"Error retrieving variable: {e}") from None
    item = flags.get("item") or (rest[1] if len(rest) == 2 else "")
    if item:
        items = var.get("Items") or {}
        if item not in items:
            raise CliError(f'Variable does not contain "{item}" item')
        sys.stdout.write(items[item])  # Nomad's fmt.Print: the value alone, no newline added
        return "", 0
    return _render(var, out, flags.get("template", ""))


def _spec(arg: str, fmt: str) -> dict[str, Any]:
    if arg != "-":  # Nomad's setParserForFileArg: the file's extension says its format, whatever -in says
        ext = os.path.splitext(arg[1:])[1]
        if ext not in (".json", ".hcl"):
            raise CliError(f"Unable to determine format of {arg[1:]}; Use the -in flag to specify it.")
        fmt = ext[1:]
    try:
        text = sys.stdin.read() if arg == "-" else open(arg[1:], encoding="utf-8").read()
    except OSError as e:
        raise CliError(f"Error reading {arg[1:]!r}: {e}") from None
    if fmt == "hcl":
        from runtime.hcl_job import HclJobError, _load

        try:
            doc = _load(text, "variable specification")
        except HclJobError as e:
            raise CliError(f"Failed to parse variable data: {e}") from None
        items = doc.get("items") or {}
        if isinstance(items, list):
            items = {k: val for block in items for k, val in block.items()}
        spec = {"Path": doc.get("path", ""), "Namespace": doc.get("namespace", ""), "Items": items}
        for key in ("create_index", "modify_index", "create_time", "modify_time"):
            if key in doc:  # as `var get -out=hcl` prints them: modify_index makes the write check-and-set
                if not isinstance(doc[key], int) or isinstance(doc[key], bool):
                    raise CliError("Failed to parse variable data: error parsing hcl: "
                                   f"{key} must be integer; got {doc[key]!r}")
                spec["".join(w.title() for w in key.split("_"))] = doc[key]
        return spec
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise CliError(f"Failed to parse variable data: error unmarshaling json: {e}") from None
    if not isinstance(spec, dict):
        raise CliError("Failed to parse variable data: the specification must be an object")
    return spec


def _kv_data(pairs: list[str]) -> dict[str, str]:
    """Nomad's KVBuilder: ``key=value``; ``key=@file`` reads the value from a file, ``key=\\@v`` is the
    literal ``@v``, ``key=-`` reads it from stdin; a bare ``-`` or ``@file.json`` merges a JSON object
    (stdin is read once)."""
    out: dict[str, str] = {}
    stdin_used = False

    def stdin() -> str:
        nonlocal stdin_used
        if stdin_used:
            raise ValueError("stdin already consumed")
        stdin_used = True
        return sys.stdin.read()

    for raw in pairs:
        try:
            if raw == "":
                continue
            key, eq, value = raw.partition("=")
            if not eq:
                if raw != "-" and not raw.startswith("@"):
                    raise ValueError("format must be key=value")
                try:
                    text = stdin() if raw == "-" else open(raw[1:], encoding="utf-8").read()
                    merged = json.loads(text)
                except OSError as e:
                    raise ValueError(f"open {raw[1:]}: {e.strerror.lower() if e.strerror else e}") from None
                if not isinstance(merged, dict) or not all(isinstance(v, str) for v in merged.values()):
                    raise ValueError("the JSON must be an object of string values")
                out.update(merged)
                continue
            if value.startswith("@"):
                try:
                    value = open(value[1:], encoding="utf-8").read()
                except OSError as e:
                    raise ValueError(f"error reading file: open {value[1:]}: "
                                     f"{e.strerror.lower() if e.strerror else e}") from None
            elif value.startswith("\\@"):
                value = value[1:]
            elif value == "-":
                value = stdin()
            out[key] = value
        except ValueError as e:
            raise CliError(f"invalid key/value pair {json.dumps(raw)}: {e}") from None
    return out


def _identifier_warning(key: str) -> list[str]:
    """Nomad's warnInvalidIdentifier: an item key with characters other than letters, digits and "_"
    cannot be read as ``.key`` in a template."""
    bad = sorted({ch for ch in key if ch != "_" and unicodedata.category(ch)[0] not in "LN"})
    if not bad:
        return []
    chars = ",".join(f'"{ch}"' for ch in bad)
    return [f'"{key}" contains characters [{chars}] that require the \'index\' function for direct access '
            "in templates"]


def var_put(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"force": bool, "check-index": str, "in": str, "out": str,
                                     "template": str, "verbose": bool})
    fmt = flags.get("in", "json")
    if fmt not in ("json", "hcl"):
        raise CliError('Invalid value for "-in"; valid values are [hcl, json]')
    out = _out_format(flags, _default_out("none", "json"))
    _refuse_wildcard()
    if not rest:
        raise CliError("Not enough arguments (expected >1, got 0)")

    def verbose(line: str) -> None:  # Nomad's -verbose: on stderr, stdout left to what was written
        if flags.get("verbose"):
            print(line, file=sys.stderr)
    spec: dict[str, Any] = {}
    path = ""
    if rest[0] == "-" or rest[0].startswith("@"):
        where = "stdin" if rest[0] == "-" else f'"{rest[0][1:]}"'
        verbose(f"Reading whole {fmt.upper()} variable specification from {where}")
        spec = _spec(rest[0], fmt)
    else:
        path = rest[0].strip().strip("/")
        verbose(f'Writing to path "{path}"')
        if len(rest) == 1:
            raise CliError("Must supply data")
        if rest[1] == "-" or rest[1].startswith("@"):
            verbose(f'Creating variable "{path}" using specification from stdin' if rest[1] == "-"
                    else f'Creating variable "{path}" from specification file "{rest[1]}"')
            spec = _spec(rest[1], fmt)
            rest = rest[1:]
    items = dict(spec.get("Items") or {})
    try:
        data = _kv_data(rest[1:])
    except CliError as e:
        raise CliError(f"Failed to parse K=V data: {e}") from None
    warnings = []
    for k, value in data.items():
        if value == "":
            items.pop(k, None)
        else:
            items[k] = value
            warnings += _identifier_warning(k)
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
        return _cas_conflict(addr, path, query["cas"])
    if warnings:  # Nomad's FormatWarnings of MergeMultierrorWarnings, on stderr
        count = "1 warning" if len(warnings) == 1 else f"{len(warnings)} warnings"
        print(f"Variable Warnings:\n{count}:\n" + "".join(f"\n* {w}" for w in sorted(warnings)) + "\n",
              file=sys.stderr)
    done = f'Created variable "{var.get("Path", path)}" with modify index {var.get("ModifyIndex", 0)}'
    if out == "none":  # Nomad's default on a terminal: a line saying what was written
        return done, 0
    verbose(done)  # the rendered variable is stdout's
    return _render(var, out, flags.get("template", "")), 0


def _cas_conflict(addr: str, path: str, check_index: int) -> tuple[str, int]:
    """Nomad's handleCASError: the heading, then one paragraph (wrapped at 76, indented 4) naming the
    index given, the server's and when the variable last changed, on stderr; exit 1."""
    try:
        current = request(addr, "GET", _url(path)) or {}
    except CliError:  # gone since: Nomad's conflict then carries no variable
        current = {}
    have = current.get("ModifyIndex", 0)
    last = f"The server-side item was last updated on {_time(current.get('ModifyTime'))}." if have else ""
    text = (f"Your provided check-index ({check_index}) does not match the server-side index ({have}). "
            f"{last} If you are sure you want to perform this operation, add the -force or "
            f"-check-index={have} flag before the positional arguments.")
    lines = textwrap.wrap(text, 76, break_long_words=False, break_on_hyphens=False) or [""]
    print("\nCheck-and-Set conflict\n", file=sys.stderr)
    print("\n".join("    " + line for line in lines) + "\n", file=sys.stderr)
    return "", 1


def var_purge(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"check-index": str})
    path = one_arg(rest, "nomad var purge <path>").strip().strip("/")
    query: dict[str, Any] = {}
    if "check-index" in flags:
        try:
            query["cas"] = int(flags["check-index"])
        except ValueError:
            raise CliError(f"Error parsing check-index value {flags['check-index']!r}") from None
    _refuse_wildcard()
    try:
        request(addr, "DELETE", _url(path), **query)
    except CliError as e:
        if "409" in str(e):
            return _cas_conflict(addr, path, query.get("cas", 0))
        raise CliError(f"Error purging variable: {e}") from None
    return f'Successfully purged variable "{path}"!', 0


# Nomad's api/locks.go: renew at 0.7 of the TTL (two tries before the leader's 2 * TTL runs out), wait
# 1.1 TTLs between tries to take a held lock; -max-retry's default (command/var_lock.go).
LOCK_RENEWAL_FACTOR = 0.7
LOCK_RETRY_BACKOFF_FACTOR = 1.1
LOCK_MAX_RETRIES = 5
LOCK_DEFAULT_TTL = "15s"  # api.DefaultLockTTL
LOCK_DEFAULT_DELAY = "15s"  # api.DefaultLockDelay


class _LockConflict(Exception):
    pass


def _lock_call(addr: str, path: str, op: str, body: dict[str, Any], retries: int) -> Any:
    """One lock operation; a 409 is _LockConflict, a 5xx is tried again up to *retries* times."""
    attempt = 0
    while True:
        try:
            return request(addr, "PUT", _url(path) + "?" + op, body)
        except CliError as e:
            text = str(e)
            if "response code: 409" in text:
                raise _LockConflict(text) from None
            if "response code: 5" not in text or attempt >= retries:
                raise
            attempt += 1
            time.sleep(min(2 ** attempt * 0.1, 5.0))


def var_lock(addr: str, args: list[str]) -> tuple[str, int]:
    from runtime.durations import parse_duration

    flags, rest = parse_flags(args, {"verbose": bool, "ttl": str, "delay": str, "shell": bool,
                                     "early-return": bool, "max-retry": str, "backoff": str, "out": str})
    verbose = (lambda msg: print(msg, file=sys.stderr)) if flags.get("verbose") else (lambda msg: None)
    _refuse_wildcard()
    if len(rest) < 2:
        raise CliError(f"Not enough arguments (expected >2, got {len(rest)})")
    spec: dict[str, Any] = {}
    if rest[0].startswith("@"):
        spec = _spec(rest[0], "json")
        path = str(spec.get("Path") or "")
    else:
        path = rest[0].strip().strip("/")
        verbose(f'Writing to path "{path}"')
    child = rest[1:]
    if child and child[0].startswith("@"):
        spec = _spec(child[0], "json")
        child = child[1:]
    if not path:
        raise CliError("Must supply a path")
    if not child:
        raise CliError("need an executable to run")
    lock = dict(spec.get("Lock") or {})
    lock.setdefault("TTL", LOCK_DEFAULT_TTL)
    lock.setdefault("LockDelay", LOCK_DEFAULT_DELAY)
    for flag, key, what in (("ttl", "TTL", "TTL"), ("delay", "LockDelay", "Lock Delay")):
        if flag in flags:
            verbose(f"Using {'TTL' if flag == 'ttl' else 'delay'} for the lock of {flags[flag]}")
            lock[key] = flags[flag]
        try:
            parse_duration(str(lock[key]))
        except ValueError:
            raise CliError(f'Invalid {what}: time: invalid duration "{lock[key]}"') from None
    ttl_s = parse_duration(str(lock["TTL"]))
    try:
        retries = int(flags.get("max-retry", LOCK_MAX_RETRIES))
    except ValueError:
        raise CliError(f'invalid value "{flags["max-retry"]}" for flag -max-retry') from None
    wait_s = ttl_s * LOCK_RETRY_BACKOFF_FACTOR
    if flags.get("backoff"):
        try:
            wait_s = parse_duration(flags["backoff"])
        except ValueError:
            raise CliError(f'invalid value "{flags["backoff"]}" for flag -backoff') from None
    body = {"Path": path, "Items": dict(spec.get("Items") or {}), "Lock": {"TTL": lock["TTL"],
                                                                           "LockDelay": lock["LockDelay"]}}
    verbose("Attempting to acquire lock")
    try:
        code = _lock_loop(addr, path, body, child, shell=flags.get("shell", True), retries=retries,
                          wait_s=wait_s, renew_s=ttl_s * LOCK_RENEWAL_FACTOR,
                          early_return=bool(flags.get("early-return")), verbose=verbose)
    except CliError as e:
        raise CliError(f"Lock error:locks: {e}") from None
    return "", code


def _lock_loop(addr: str, path: str, body: dict[str, Any], child: list[str], *, shell: bool, retries: int,
               wait_s: float, renew_s: float, early_return: bool, verbose: Any) -> int:
    """Nomad's LockLeaser.Start: take the lock, run the child holding it, release it; 0 if the child
    exited 0."""
    while True:
        try:
            held = _lock_call(addr, path, "lock-acquire", body, retries)
        except _LockConflict:
            if early_return:
                return 0
            verbose(f"Lock is held by another, trying again in {wait_s:g}s")
            time.sleep(wait_s)
            continue
        lock_id = (held.get("Lock") or {}).get("ID", "")
        try:
            verbose(f"Variable locked, ready to execute: {' '.join(child)}")
            code = _run_holding(addr, path, lock_id, child, shell=shell, retries=retries, renew_s=renew_s)
        finally:
            verbose("Releasing the lock")
            try:
                _lock_call(addr, path, "lock-release", {"Lock": {"ID": lock_id}}, retries)
            except (_LockConflict, CliError):
                pass  # lost already (the leader freed it, or another took it)
        if code is not None:
            if code != 0:
                raise CliError(f"error executing protected function exit status {code}")
            return 0
        time.sleep(wait_s)  # the lock was lost: the child was killed; wait for it again


def _run_holding(addr: str, path: str, lock_id: str, child: list[str], *, shell: bool, retries: int,
                 renew_s: float) -> int | None:
    """Run the child, renewing the lock; its exit code, or None when the lock was lost (child killed)."""
    argv = [os.environ.get("SHELL") or "/bin/sh", "-c", " ".join(child)] if shell else child
    try:
        proc = subprocess.Popen(argv)
    except OSError as e:
        raise CliError(f"error executing protected function {e}") from None
    forward = {sig: signal.signal(sig, lambda s, _f: proc.send_signal(s)) for sig in (signal.SIGINT,
                                                                                      signal.SIGTERM)}
    try:
        while True:
            try:
                return proc.wait(timeout=renew_s)
            except subprocess.TimeoutExpired:
                pass
            try:
                _lock_call(addr, path, "lock-renew", {"Path": path, "Lock": {"ID": lock_id}}, retries)
            except (_LockConflict, CliError):
                proc.kill()
                proc.wait()
                return None
    finally:
        for sig, old in forward.items():
            signal.signal(sig, old)


VARIABLE_COMMANDS = {
    ("var", "list"): var_list,
    ("var", "get"): var_get,
    ("var", "put"): var_put,
    ("var", "purge"): var_purge,
    ("var", "lock"): var_lock,
}
