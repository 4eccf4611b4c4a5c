"""A task's ``template`` blocks on the client: Nomad's template hook, as a pure core.

The AllocRunner hosts it (actors.client.alloc_runner).  Before a task first
starts, each template is rendered (runtime.gotemplate) with the task's
environment and the data its functions read, and written to its
destination in the allocation's directory with its ``perms``; an ``env =
true`` template is read back as ``KEY=VALUE`` lines into the task's
environment.  The data comes from the servers (``GetTemplateData``, a
blocking query read with the task's workload identity):

* ``nomadVar "path"`` -- a variable's items (``.password``, ``.Items``,
  ``range $k, $v :=``; ``.Parent`` its metadata).  A variable that does
  not exist blocks the task (Nomad's "Missing: nomad.var.block(...)"
  event) until it is written; one the task may not read
  ("Permission denied": only ``nomad/jobs``, ``nomad/jobs/<job>``,
  ``.../<group>`` and ``.../<task>`` of its namespace) fails the render.
* ``nomadVarList ["prefix"]``, ``nomadVarExists "path"`` (never block);
* ``nomadService "[tag.]name[?ns=namespace][@region]"`` (consul-template's
  ``NomadService``: ``.ID``, ``.Name``, ``.Node``, ``.Address``, ``.Port``,
  ``.Datacenter``, ``.Tags`` sorted, ``.JobID``, ``.AllocID``; a tag keeps
  the instances that have it; ``?ns=`` reads another namespace's, as Nomad
  lets a workload; another region than the agent's fails the render: its
  servers answer for their own) and ``nomadServices ["?ns=<ns>|*"]``
  (``.Name``, ``.Namespace``, ``.Tags``) -- the native service catalog;
* ``env "NAME"``, ``mustEnv``, ``envOrDefault`` -- the task's environment;
* ``byTag``, ``byPort`` -- services grouped by tag, by port;
* ``file "/path"`` -- a file of the task's directory (Nomad's file sandbox),
  read once per rendering and looked at again every 2 s while the task runs
  (consul-template's file watch: a change re-renders); ``timestamp`` -- the
  agent's wall clock;
* Consul's and Vault's functions (``key``, ``keyOrDefault``, ``service``,
  ``secret``...) fail the render: this agent has no Consul nor Vault.

:func:`render_task` renders every template of a task from what the runner
has fetched so far (*data*) and says which data it read (``deps``), which
it still lacks, and which are missing on the servers; the runner fetches,
renders again, and once nothing is lacking writes the files.  While the
task runs it keeps a blocking query on the same data; a rendering that
changed is written again and its ``change_mode`` applies (restart, signal,
script -- its ``change_script`` run inside the task -- or noop), after the template's ``splay``; with ``wait { min, max }`` a change
is rendered only once the data stayed unchanged for ``min`` (but at most
``max`` after the first change), as consul-template's quiescence.  As
there, the wait applies to changes only: the first rendering (the task's
start) happens as soon as the data is there (consul-template's runner arms
a template's quiescence only once every template has rendered).  A query
that fails is sent again after :func:`retry_delay` (client.template.nomad_retry,
consul-template's retry: a backoff doubled up to a cap); once its attempts
are spent the task fails, as Nomad's hook kills it when consul-template's
runner gives up.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.state.services import rendezvous
from runtime.gotemplate import (
    CONSUL_TEMPLATE_FUNCS,
    MAX_OUTPUT_BYTES,
    MAX_RENDER_S,
    TemplateError,
    render,
    timestamp_func,
)

NS = 1_000_000_000
EV_TEMPLATE = "Template"  # Nomad's consulTemplateSourceName: the "Missing: ..." events
MISSING_DEP_EVENT_LIMIT = 3  # Nomad's missingDepEventLimit: deps named in one event, then "and N more"
REGION = "global"
# The variables and services one task's templates may read: the servers' own bound on a template data
# query (actors.server.alloc_endpoint's template_max_deps, 1000; Nomad has none, consul-template only
# warns past 128).  A task reading more fails its render ("Template failed: ...") instead of sending a
# query every server refuses; a server configured lower refuses it, which fails the task as well.
MAX_TEMPLATE_DEPS = 1000
TOO_MANY_DEPS = "templates read more than"  # the refusal's text, on the servers and here


# Nomad's client template.function_denylist default (DefaultTemplateFunctionDenylist): a denied
# function still parses, and fails the render when called ("function is disabled"), as
# consul-template's; these three (render another named template, run a binary on the client, write
# a file on the client) this agent does not implement in any case.
DEFAULT_FUNCTION_DENYLIST = ("executeTemplate", "plugin", "writeToFile")


UNBOUNDED_BACKOFF_CAP_S = 86400.0


def retry_delay(retry: int, attempts: int, backoff_s: float, max_backoff_s: float) -> float | None:
    """consul-template's RetryFunc, as Nomad's nomad_retry configures it: how long to wait before the
    *retry*-th retry (0 the first) of a failed query -- *backoff_s* doubled each time, at most
    *max_backoff_s* (0: no cap) -- or None once *attempts* retries are spent (0: never)."""
    if attempts > 0 and retry > attempts - 1:
        return None
    if max_backoff_s > 0 and retry > int(math.log2(max_backoff_s / backoff_s)):
        return max_backoff_s
    # max_backoff = 0 lets it grow without bound in Go (in practice: until the next retry is years
    # away); here it stops at a day, which a timer can hold.
    return min(backoff_s * 2.0 ** min(retry, 64), UNBOUNDED_BACKOFF_CAP_S)


def too_many_deps(limit: int) -> str:
    return f"{TOO_MANY_DEPS} {limit} variables and services"


@dataclass(frozen=True, slots=True)
class ChangeScript:
    """A template's change_script (change_mode "script"): run inside the task when its rendering
    changes, as ``nomad alloc exec`` would; *fail_on_error* kills the task when it fails."""

    command: str
    args: tuple[str, ...] = ()
    timeout_s: float = 5.0
    fail_on_error: bool = False


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    dest: str
    data: str = ""
    source: str = ""
    change_mode: str = "restart"
    change_signal: str = ""
    perms: int = 0o644
    env: bool = False
    left: str = "{{"
    right: str = "}}"
    splay_s: float = 5.0
    err_missing_key: bool = False
    wait_min_s: float = 0.0  # wait { min }: data must stay unchanged this long before a re-render
    wait_max_s: float = 0.0  # wait { max }: ... but a change is rendered at most this long after it (0: none)
    own_wait: bool = False  # it has a wait block; else the client's template.wait applies
    uid: int = -1  # the rendered file's owner (uid, gid); -1: the agent's (Nomad's nil or negative)
    once: bool = False  # rendered before the task first starts, never again (not watched)
    gid: int = -1
    script: ChangeScript | None = None  # change_mode "script": what runs


def parse_templates(raw: Any, where: str) -> tuple[TemplateSpec, ...]:
    """A task's ``Templates`` (as actors.scheduler.job validated them) -> specs; ValueError if malformed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}.Templates must be a list")
    out = []
    for i, t in enumerate(raw):
        w = f"{where}.Templates[{i}]"
        if not isinstance(t, dict):
            raise ValueError(f"{w} must be an object")
        dest = t.get("DestPath")
        if not isinstance(dest, str) or not dest:
            raise ValueError(f"{w}: Must specify a destination for the template")
        mode = t.get("ChangeMode") or "restart"
        if mode not in ("restart", "signal", "noop", "script"):
            raise ValueError(f"{w}.ChangeMode {mode!r} is not restart, signal, script or noop")
        script = None
        if mode == "script":
            cs = t.get("ChangeScript")
            if not isinstance(cs, dict) or not isinstance(cs.get("Command"), str) or not cs["Command"]:
                raise ValueError(f"{w}: must specify script path value when change mode is script")
            timeout = cs.get("Timeout")
            script = ChangeScript(command=cs["Command"], args=tuple(str(x) for x in cs.get("Args") or ()),
                                  timeout_s=5.0 if timeout is None else max(0.0, float(timeout) / NS),
                                  fail_on_error=cs.get("FailOnError") is True)
        perms = str(t.get("Perms") or "0644")
        if not re.fullmatch(r"[0-7]{1,4}", perms):
            raise ValueError(f"{w}.Perms {perms!r} is not octal")
        splay = t.get("Splay")
        wait = t.get("Wait") if isinstance(t.get("Wait"), dict) else {}
        wait_min = max(0.0, float(wait.get("Min") or 0) / NS)
        # consul-template's WaitConfig.Finalize: a wait without max waits at most 4 times its min
        wait_max = 4 * wait_min if wait.get("Max") is None else max(0.0, float(wait["Max"]) / NS)
        out.append(TemplateSpec(
            dest=dest, data=str(t.get("EmbeddedTmpl") or ""), source=str(t.get("SourcePath") or ""),
            change_mode=mode, change_signal=str(t.get("ChangeSignal") or "").upper(), perms=int(perms, 8),
            env=bool(t.get("Envvars")), left=str(t.get("LeftDelim") or "{{"),
            right=str(t.get("RightDelim") or "}}"),
            splay_s=5.0 if splay is None else max(0.0, float(splay) / NS),
            err_missing_key=bool(t.get("ErrMissingKey")),
            wait_min_s=wait_min, wait_max_s=wait_max, own_wait=bool(wait),
            uid=_owner_id(t.get("Uid"), f"{w}.Uid"), gid=_owner_id(t.get("Gid"), f"{w}.Gid"),
            once=t.get("Once") is True, script=script))
    return tuple(out)


def _owner_id(v: Any, where: str) -> int:
    """A template's Uid or Gid: None or negative is -1 (the agent's own, as Nomad leaves it)."""
    if v is None:
        return -1
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{where} must be an integer")
    return v if v >= 0 else -1


def resolve_path(raw: str, env: dict[str, str], alloc_dir: str, task_dir: str) -> str | None:
    """Nomad's TaskEnv.ClientPath for a template's destination or source: ``${...}`` replaced; a path
    already inside the allocation's directory taken as is; ``alloc/...`` the shared alloc dir; any
    other joined under the task's directory.  None when it escapes the allocation's directory."""
    path = re.sub(r"\$\{([A-Za-z0-9_.\-]+)\}", lambda m: env.get(m.group(1), m.group(0)), raw)
    if posixpath.isabs(path) and _inside(alloc_dir, posixpath.normpath(path)):
        full = posixpath.normpath(path)
    elif path == "alloc" or path.startswith("alloc/"):
        full = posixpath.normpath(posixpath.join(alloc_dir, path))
    else:
        full = posixpath.normpath(f"{task_dir}/{path}")
    return full if _inside(alloc_dir, full) else None


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# ------------------------------------------------------------ values the functions return
class VarItems(dict):
    """consul-template's NomadVarItems: a map of the variable's items (``.password``; ranging gives
    them in key order) with ``.Items`` (the map), ``.Keys``, ``.Values``, ``.Tuples`` (``.K``, ``.V``)
    and ``.Parent`` (metadata)."""

    go_zero = ""  # a missing item is an empty string, not <no value>

    def __init__(self, items: dict[str, str], meta: dict[str, Any]) -> None:
        super().__init__(items)
        self.meta = meta

    def go_methods(self) -> dict[str, Any]:
        return {"Items": dict(self), "Keys": sorted(self), "Values": [self[k] for k in sorted(self)],
                "Tuples": [Struct("NomadVarItem", {"K": k, "V": self[k]}) for k in sorted(self)],
                "Parent": Struct("NomadVariable", {**self.meta, "Items": dict(self)}),
                "Metadata": Struct("NomadVarMeta", self.meta)}


class Struct(dict):
    """A Go struct value: its fields by name; another field name is an execution error."""

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.go_type = type_name


_META_KEYS = ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime")
# consul-template's NomadService (dependency/nomad_service.go): its fields, in its order, and where each
# is in a registration.
_SERVICE_FIELDS = (("ID", "ID"), ("Name", "ServiceName"), ("Node", "NodeID"), ("Address", "Address"),
                   ("Port", "Port"), ("Datacenter", "Datacenter"), ("Tags", "Tags"), ("JobID", "JobID"),
                   ("AllocID", "AllocID"))
# consul-template's NomadServicesQueryRe: "?ns=<namespace or *>@<region>", both optional.
_SERVICES_QUERY = re.compile(r"\A(?:\?ns=(?P<namespace>[\w\-]+|\*))?(?:@(?P<region>[\w.\-]+))?\Z", re.ASCII)
# consul-template's NomadServiceQueryRe: "<tag>.<name>?ns=<namespace>@<region>" ([[:word:]] is ASCII).
_SERVICE_QUERY = re.compile(r"\A(?:(?P<tag>[\w=:.\-]+)\.)?(?P<name>[\w\-]+)(?:\?ns=(?P<namespace>[\w\-]+))?"
                            r"(?:@(?P<region>[\w.\-]+))?\Z", re.ASCII)
_CONSUL = ("key", "keyOrDefault", "keyExists", "ls", "safeLs", "tree", "safeTree", "service", "services",
           "connect", "caLeaf", "caRoots", "node", "nodes", "checks", "datacenters")
_VAULT = ("secret", "secrets", "pkiCert")


def dep_name(kind: str, arg: str, namespace: str) -> str:
    """How Nomad's events name a dependency (consul-template's dependency String)."""
    if kind == "var":
        return f"nomad.var.block({arg}@{namespace}.{REGION})"
    if kind == "varlist":
        return f"nomad.var.list({arg}@{namespace}.{REGION})"
    if kind == "service":
        name, sep, other = arg.partition("?ns=")
        return f"nomad.service({name}@{other if sep else namespace}.{REGION})"
    return f"nomad.services(@{arg.partition('?ns=')[2] or namespace}.{REGION})"


@dataclass(slots=True)
class Rendered:
    outputs: tuple[str, ...] = ()  # each template's text (complete only when nothing is lacking)
    deps: tuple[tuple[str, str], ...] = ()  # the data the templates read, in first-read order
    lacking: tuple[tuple[str, str], ...] = ()  # read but not fetched yet
    missing: tuple[str, ...] = ()  # fetched and absent (a variable that does not exist): blocks
    error: str = ""  # a template that fails: the task fails ("Template failed: ...")
    files: tuple[str, ...] = ()  # the client's files the templates read (file): watched for changes

    @property
    def complete(self) -> bool:
        return not self.error and not self.lacking and not self.missing


def render_task(templates: tuple[TemplateSpec, ...], sources: tuple[str | None, ...], env: dict[str, str],
                data: dict[tuple[str, str], tuple[str, Any]], namespace: str,
                max_output: int = MAX_OUTPUT_BYTES, max_deps: int = MAX_TEMPLATE_DEPS,
                denylist: tuple[str, ...] = DEFAULT_FUNCTION_DENYLIST,
                clock: Callable[[], float] | None = None, wall_clock: Callable[[], float] | None = None,
                read_file: Callable[[str], bytes] | None = None, sandbox: str = "") -> Rendered:
    """Render every template of a task.  *sources*: each template's text (its data, or its source
    file's contents; None: the source file could not be read).  *data*: (kind, argument) -> (error,
    value) as the servers answered (a value not of the shape expected fails the render, naming it).
    *max_output*: characters all the templates together may write; *max_deps*: distinct variables
    and services they may read (more fails the render, naming the place); *denylist*: the client's
    template.function_denylist (names, or globs with ``*``: ``sprig_*``); *clock*: the agent's, on
    which all the templates together may take MAX_RENDER_S (none: no time bound); *wall_clock*: Unix
    seconds, for ``timestamp``; *read_file*: the client's reader of a file (an absolute path) for
    ``file``, which reads only inside *sandbox* (the task's directory, as Nomad's file sandbox; each
    file once per rendering).  Never raises:
    whatever fails is the Rendered's error (the task fails with "Template failed: ...")."""
    try:
        return _render_task(templates, sources, env, data, namespace, max_output, max_deps, denylist, clock,
                            wall_clock, read_file, sandbox)
    except TemplateError as e:
        return Rendered(error=str(e))
    except Exception as e:  # a last resort: never the runner's failure
        return Rendered(error=f"template rendering failed: {type(e).__name__}: {e}")


def _render_task(templates: tuple[TemplateSpec, ...], sources: tuple[str | None, ...], env: dict[str, str],
                 data: dict[tuple[str, str], tuple[str, Any]], namespace: str, max_output: int,
                 max_deps: int, denylist: tuple[str, ...], clock: Callable[[], float] | None,
                 wall_clock: Callable[[], float] | None, read_file: Callable[[str], bytes] | None,
                 sandbox: str) -> Rendered:
    deps: dict[tuple[str, str], None] = {}
    lacking: dict[tuple[str, str], None] = {}
    missing: dict[str, None] = {}

    def get(kind: str, arg: str) -> Any:
        dep = (kind, arg)
        if dep not in deps and len(deps) >= max_deps:
            raise TemplateError(too_many_deps(max_deps))
        deps[dep] = None
        if dep not in data:
            lacking[dep] = None
            return None
        error, value = data[dep]
        if error:
            raise TemplateError(f"{dep_name(kind, arg, namespace)}: {error}")
        if value is not None and not _SHAPES[kind](value):
            raise TemplateError(f"{dep_name(kind, arg, namespace)}: the server's answer is malformed")
        return value

    def nomad_var(path: str) -> VarItems:
        _need_str("nomadVar", path)
        var = get("var", path)
        if var is None:
            if ("var", path) in data:
                missing[dep_name("var", path, namespace)] = None
            return VarItems({}, {})
        return VarItems(dict(var.get("Items") or {}), {k: var.get(k) for k in _META_KEYS})

    def nomad_var_exists(path: str) -> bool:
        _need_str("nomadVarExists", path)
        return get("var", path) is not None

    def nomad_var_list(*args: str) -> list[Struct]:
        prefix = args[0] if args else ""
        _need_str("nomadVarList", prefix)
        return [Struct("NomadVarMeta", {k: m.get(k) for k in _META_KEYS})
                for m in get("varlist", prefix) or ()]

    def nomad_service(*args: Any) -> list[Struct]:
        """``nomadService "name"``, or ``nomadService <count> <key> "name"``: the count instances the
        key ranks first (Nomad's rendezvous ``choose``, to spread clients over a service's instances)."""
        if len(args) not in (1, 3):
            raise TemplateError(f"nomadService: expected 1 or 3 arguments, got {len(args)}")
        query = args[-1]
        m = _service_query("nomadService", "nomad.service", query, _SERVICE_QUERY)
        other = m["namespace"] not in (None, namespace)  # (a workload may read any namespace's)
        regs = list(get("service", f"{m['name']}?ns={m['namespace']}" if other else m["name"]) or ())
        if len(args) == 3:
            count, key = args[0], args[1]
            if isinstance(count, str) and count.isdigit():
                count = int(count)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0 or not isinstance(key, str):
                raise TemplateError("nomadService: the count must be a number >= 0 and the key a string")
            regs = rendezvous(regs, count, key)  # (the servers choose before the tag filters)
        if m["tag"] is not None:
            regs = [r for r in regs if m["tag"] in (r.get("Tags") or ())]
        return [Struct("NomadService", {k: sorted(r.get(v) or ()) if k == "Tags" else r.get(v)
                                        for k, v in _SERVICE_FIELDS}) for r in regs]

    def nomad_services(*args: Any) -> list[Struct]:
        """``nomadServices ["?ns=<namespace>@<region>"]``: consul-template's NomadServicesSnippet (Name,
        Namespace, Tags sorted) of the task's namespace, another one, or every one (``?ns=*``)."""
        if len(args) > 1:
            raise TemplateError(f"nomadServices: expected 0 or 1 arguments, got {len(args)}")
        query = args[0] if args else ""
        m = _service_query("nomadServices", "nomad.services", query, _SERVICES_QUERY)
        arg = f"?ns={m['namespace']}" if m["namespace"] not in (None, namespace) else ""
        found = [Struct("NomadServicesSnippet", {"Name": s.get("Name"),
                                                 "Namespace": s.get("Namespace", namespace),
                                                 "Tags": sorted(s.get("Tags") or ())})
                 for s in get("services", arg) or ()]
        return sorted(found, key=lambda s: str(s["Name"]))  # (stable: by name, as consul-template sorts)

    def by_tag(services: Any) -> dict[str, list[Any]]:
        """consul-template's byTag on nomadService / nomadServices: tag -> the services with it."""
        out: dict[str, list[Any]] = {}
        if services is None:
            return out
        if not isinstance(services, list) or not all(
                getattr(s, "go_type", "") in ("NomadService", "NomadServicesSnippet") for s in services):
            raise TemplateError("byTag: wrong argument type (expected nomadService or nomadServices)")
        for svc in services:
            for tag in svc.get("Tags") or ():
                out.setdefault(str(tag), []).append(svc)
        return out

    def by_port(services: Any) -> dict[int, list[Any]]:
        """consul-template's byPort on nomadService: port -> the services on it."""
        out: dict[int, list[Any]] = {}
        if services is None:
            return out
        if not isinstance(services, list) or not all(getattr(s, "go_type", "") == "NomadService"
                                                     for s in services):
            raise TemplateError(f"byPort: wrong argument type {_go_arg_type(services)}")
        for svc in services:
            out.setdefault(svc.get("Port") or 0, []).append(svc)
        return out

    files: dict[str, str] = {}
    read_bytes = [0]  # what file read in this rendering, in bytes

    def file_fn(path: Any) -> str:
        """consul-template's file, sandboxed as Nomad's (disable_file_sandbox = false): a file of the
        task's directory; a path outside it (or relative: Go resolves it from the agent's working
        directory) fails the render."""
        _need_str("file", path)
        if not path:
            return ""
        path = path.strip()
        full = posixpath.normpath(path)
        if not posixpath.isabs(path) or not sandbox or not _inside(sandbox, full):
            raise TemplateError(f"'{path}' is outside of sandbox")
        if full not in files:
            if read_file is None:
                raise TemplateError("file: this client keeps no allocation directories")
            try:
                raw = read_file(full)
            except FileNotFoundError:
                raise TemplateError(f"failed to resolve target path: lstat {full}: no such file or "
                                    "directory") from None
            except (OSError, ValueError) as exc:
                raise TemplateError(f"file({full}): {exc}") from None
            # Kept for the whole rendering: all the files together count against the output bound (the
            # client's template_output_max_bytes), not only each one against the source bound.
            read_bytes[0] += len(raw)
            if read_bytes[0] > max_output:
                raise TemplateError(f"file({full}): the files this rendering read would be larger than "
                                    f"{max_output} bytes")
            files[full] = raw.decode("utf-8", "replace")
        return files[full]

    def env_fn(name: str) -> str:
        _need_str("env", name)
        return env.get(name, "")

    def must_env(name: str) -> str:
        _need_str("mustEnv", name)
        if not env.get(name):
            raise TemplateError(f"required environment variable {name} is empty")
        return env[name]

    def env_or_default(name: str, default: str) -> str:
        _need_str("envOrDefault", name)
        _need_str("envOrDefault", default)
        return env.get(name, default)

    funcs: dict[str, Any] = {"env": env_fn, "mustEnv": must_env, "envOrDefault": env_or_default,
                             "nomadVar": nomad_var, "nomadVarExists": nomad_var_exists,
                             "nomadVarList": nomad_var_list, "nomadVarListSafe": nomad_var_list,
                             "nomadService": nomad_service, "byTag": by_tag, "byPort": by_port,
                             "nomadServices": nomad_services, "file": file_fn,
                             "timestamp": timestamp_func(wall_clock)}
    for name in _CONSUL:
        funcs[name] = _refused(name, "Consul", "this agent has no Consul (use nomadVar, nomadService)")
    for name in _VAULT:
        funcs[name] = _refused(name, "Vault", "this agent has no Vault (use nomadVar)")
    for name in DEFAULT_FUNCTION_DENYLIST:  # when an operator's denylist leaves them out
        funcs[name] = _unsupported(name)
    funcs.update(denied_functions(denylist, funcs))
    outputs: list[str] = []
    deadline = None if clock is None else clock() + MAX_RENDER_S
    for spec, text in zip(templates, sources, strict=True):
        if text is None:
            return Rendered(error=f"failed to read template source {spec.source!r}")
        room = max_output - sum(map(len, outputs))
        try:
            outputs.append(render(text, funcs=funcs, left=spec.left, right=spec.right,
                                  missing_key_error=spec.err_missing_key, max_output=max(room, 0),
                                  clock=clock, deadline=deadline))
        except TemplateError as e:
            return Rendered(deps=tuple(deps), error=str(e))
    return Rendered(outputs=tuple(outputs), deps=tuple(deps), lacking=tuple(lacking), missing=tuple(missing),
                    files=tuple(files))


def denied_functions(denylist: tuple[str, ...], funcs: dict[str, Any]) -> dict[str, Any]:
    """consul-template's function_denylist: every function (of *funcs*, the built-in ones, or named
    in the list) a pattern matches (``*`` any run of characters, as go-glob) is replaced by one that
    fails with "function is disabled"."""
    def denied(*_args: Any) -> Any:
        raise TemplateError("function is disabled")
    names = {*funcs, *CONSUL_TEMPLATE_FUNCS}  # a name of neither (e.g. Go's printf) stays as it is
    out = {}
    for pattern in denylist:
        rx = re.compile(".*".join(map(re.escape, pattern.split("*"))), re.DOTALL)
        out.update({name: denied for name in sorted(names) if rx.fullmatch(name)})
    return out


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


def _var_ok(v: Any) -> bool:
    """A variable as the servers answer it: a map, its Items a map of strings, its metadata scalars."""
    items = v.get("Items") if isinstance(v, dict) else None
    return _is_str_map(v) and (items is None or (_is_str_map(items) and all(
        isinstance(x, str) for x in items.values()))) and all(
        isinstance(v.get(k), (str, int, float, type(None))) for k in _META_KEYS)


def _list_of(ok: Any) -> Any:
    return lambda v: isinstance(v, list) and all(ok(x) for x in v)


def _service_ok(v: Any) -> bool:
    return _is_str_map(v) and isinstance(v.get("ID"), str) and isinstance(v.get("Tags") or [], list)


def _services_ok(v: Any) -> bool:
    return _is_str_map(v) and isinstance(v.get("Name"), str) and isinstance(v.get("Tags") or [], list)


# The shape of each kind of the servers' data (actors.client.templates' reader of it).
_SHAPES: dict[str, Any] = {"var": _var_ok, "varlist": _list_of(_is_str_map), "service": _list_of(_service_ok),
                           "services": _list_of(_services_ok)}


def _go_arg_type(v: Any) -> str:
    """How Go's %T names a value a function was given."""
    kinds = {getattr(x, "go_type", None) for x in v} if isinstance(v, list) else set()
    if len(kinds) == 1 and None not in kinds:
        return f"[]*dependency.{kinds.pop()}"
    return "[]interface {}" if isinstance(v, list) else "map[string]interface {}" if isinstance(v, dict) \
        else {str: "string", bool: "bool", int: "int", float: "float64"}.get(type(v), type(v).__name__)


def _service_query(fn: str, dep: str, query: Any, pattern: re.Pattern[str]) -> re.Match[str]:
    """*query* of the template function *fn* parsed by *pattern*, as consul-template's *dep* dependency
    reads it; of this agent's own region only."""
    _need_str(fn, query)
    m = pattern.match(query)
    if m is None:
        raise TemplateError(f"{dep}: invalid format: {json.dumps(query, ensure_ascii=False)}")
    if m["region"] not in (None, REGION):
        raise TemplateError(f"{dep}: {query}: this agent reads the services of its own region "
                            f"({REGION}) only")
    return m


def _need_str(fn: str, v: Any) -> None:
    if not isinstance(v, str):
        raise TemplateError(f"{fn}: argument must be a string")


def _unsupported(name: str) -> Any:
    def call(*_args: Any) -> Any:
        raise TemplateError(f"{name} is not supported by this agent")
    return call


def _refused(name: str, system: str, why: str) -> Any:
    def call(*_args: Any) -> Any:
        raise TemplateError(f"{name}: {system} is not available: {why}")
    return call


def quiescence(templates: tuple[TemplateSpec, ...], first_change: float, now: float,
               default: tuple[float, float] = (0.0, 0.0), bounds: tuple[float, float] = (0.0, 0.0)) -> float:
    """How long to wait before re-rendering after data changed at *now* (the first unrendered change
    at *first_change*): the templates' largest ``wait.min``, cut at the smallest ``wait.max``; a
    template without a wait block of its own has the client's, *default* (min, max); one with its
    own has it within the client's wait_bounds, *bounds* (min, max; a max of 0: none)."""
    lo_bound, hi_bound = bounds

    def bounded(lo: float, hi: float) -> tuple[float, float]:
        return max(lo, lo_bound), (min(hi, hi_bound) if hi_bound > 0 else hi)
    waits = [bounded(t.wait_min_s, t.wait_max_s) if t.own_wait else default for t in templates]
    wait_min = max((lo for lo, _ in waits), default=0.0)
    if wait_min <= 0:
        return 0.0
    maxes = [hi for _, hi in waits if hi > 0]
    if maxes:
        return max(0.0, min(wait_min, first_change + min(maxes) - now))
    return wait_min


def missing_message(missing: tuple[str, ...]) -> str:
    """Nomad's "Missing: a, b, c, and N more" event text."""
    names = sorted(missing)
    if len(names) > MISSING_DEP_EVENT_LIMIT:
        names = [*names[:MISSING_DEP_EVENT_LIMIT], f"and {len(names) - MISSING_DEP_EVENT_LIMIT} more"]
    return "Missing: " + ", ".join(names)


def parse_env(text: str) -> dict[str, str]:
    """An ``env = true`` template's KEY=VALUE lines (Nomad's envparse): blank lines and lines starting
    with # are skipped; ``export`` may lead; a value may be "double quoted" (with escapes) or 'single
    quoted'; a # inside a line is part of the value.  ValueError names the bad line."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("export ") or s.startswith("export\t"):
            s = s[7:].lstrip()
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"line {n}: missing =")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", key):
            raise ValueError(f"line {n}: invalid variable name {key!r}")
        value = value.strip()
        if value[:1] == '"':
            if len(value) < 2 or not value.endswith('"'):
                raise ValueError(f"line {n}: unterminated quoted value")
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"line {n}: invalid quoted value") from None
        elif value[:1] == "'":
            if len(value) < 2 or not value.endswith("'"):
                raise ValueError(f"line {n}: unterminated quoted value")
            value = value[1:-1]
        out[key] = value
    return out
