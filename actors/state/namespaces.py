"""Namespaces: named scopes that jobs and what they make live in (Nomad's ``Namespace``).

As Nomad's (open source since 1.0):

* ``default`` always exists (Nomad creates it when the cluster starts; here
  it is implicit until an operator updates it) and cannot be deleted.
* An operator creates and updates others (``PUT /v1/namespace``, ``nomad
  namespace apply``) with a description, metadata and capabilities: the
  task drivers and network modes a job in it may use (checked when a job is
  registered, :func:`job_error`).  A node pool configuration is kept as
  given (Nomad Enterprise enforces it; Nomad CE only stores it).
* A job registered into a namespace that does not exist is refused; a
  namespace still holding non-terminal jobs or any variable cannot be
  deleted.

A state from before namespaces (an old log or snapshot) has only
``default``, which is what such a state meant.
"""

from __future__ import annotations

import json
import re
from typing import Any

TABLE = "namespaces"
DEFAULT = "default"
# Nomad's default namespace as a fresh cluster has it (CreateIndex 1: the bootstrap write).
BUILT_IN = {"Name": DEFAULT, "Description": "Default shared namespace", "Quota": "", "Meta": None,
            "Capabilities": None, "NodePoolConfiguration": None, "CreateIndex": 1, "ModifyIndex": 1}
NAME_REGEX = "^[a-zA-Z0-9-]{1,128}$"  # Nomad's validNamespaceName
_NAME = re.compile(NAME_REGEX)
MAX_DESCRIPTION = 256  # Nomad's maxNamespaceDescriptionLength
_CAPABILITY_LISTS = ("EnabledTaskDrivers", "DisabledTaskDrivers", "EnabledNetworkModes",
                     "DisabledNetworkModes")
_TERMINAL_CLIENT = ("complete", "failed", "lost")  # an allocation's client statuses that are terminal


def get(tables: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The namespace named *name* (the store's own record, or the built-in default): do not modify."""
    found = tables.get(TABLE, {}).get(name)
    if found is None and name == DEFAULT:
        return BUILT_IN
    return found


def listed(tables: dict[str, dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Every namespace whose name starts with *prefix*, sorted by name."""
    table = tables.get(TABLE, {})
    names = sorted({*table, DEFAULT})
    return [get(tables, n) for n in names if n.startswith(prefix)]  # type: ignore[misc]


def _strings(raw: Any, what: str) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ValueError(f"{what}: must be a list of strings")
    return list(raw)


def _capabilities(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("Capabilities: must be an object")
    return {k: _strings(raw.get(k), f"Capabilities.{k}") for k in _CAPABILITY_LISTS}


def _pool_config(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("NodePoolConfiguration: must be an object")
    default = raw.get("Default") or ""
    if not isinstance(default, str):
        raise ValueError("NodePoolConfiguration.Default: must be a string")
    allowed = _strings(raw.get("Allowed"), "NodePoolConfiguration.Allowed")
    denied = _strings(raw.get("Denied"), "NodePoolConfiguration.Denied")
    if allowed and denied:  # Nomad's NamespaceNodePoolConfiguration.Validate
        raise ValueError("invalid node pool configuration: only one of Allowed and Denied may be set")
    return {"Default": default, "Allowed": allowed, "Denied": denied}


def validated(raw: Any) -> dict[str, Any]:
    """A namespace from a request; ValueError with Nomad's reason (Namespace.Validate) when bad."""
    if not isinstance(raw, dict):
        raise ValueError("namespace must be an object")
    name = raw.get("Name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid name {json.dumps(name if isinstance(name, str) else str(name))}. "
                         f"Must match regex {NAME_REGEX}")
    desc = raw.get("Description") or ""
    if not isinstance(desc, str):
        raise ValueError("Description: must be a string")
    if len(desc) > MAX_DESCRIPTION:
        raise ValueError(f"description longer than {MAX_DESCRIPTION}")
    if raw.get("Quota"):  # resource quotas are Nomad Enterprise's
        raise ValueError(f'namespace "{name}" using non-existent quota "{raw["Quota"]}"')
    meta = raw.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise ValueError("Meta: must be a map of strings")
    return {"Name": name, "Description": desc, "Quota": "", "Meta": dict(meta) or None,
            "Capabilities": _capabilities(raw.get("Capabilities")),
            "NodePoolConfiguration": _pool_config(raw.get("NodePoolConfiguration"))}


def upsert(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``namespace_upsert``: create or update each namespace; all or none (Nomad's UpsertNamespaces)."""
    raw = cmd.get("namespaces")
    if not isinstance(raw, list) or not raw:
        return {"ok": False, "error": "must specify at least one namespace"}
    namespaces = []
    for n in raw:
        try:
            namespaces.append(validated(n))
        except ValueError as e:
            name = n.get("Name") if isinstance(n, dict) else None
            return {"ok": False, "error": f"Invalid namespace {json.dumps(str(name or ''))}: {e}"}
    table = store.tables[TABLE]
    for ns in namespaces:
        old = get(store.tables, ns["Name"])
        table[ns["Name"]] = {**ns, "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "index": index}


def live_jobs(tables: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The IDs of *name*'s non-terminal jobs, sorted."""
    return sorted(j["ID"] for j in tables["jobs"].values()
                  if (j.get("Namespace") or DEFAULT) == name and j.get("Status") != "dead")


def has_variables(tables: dict[str, dict[str, Any]], name: str) -> bool:
    return any((v.get("Namespace") or DEFAULT) == name for v in tables.get("variables", {}).values())


def delete(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``namespace_delete``: delete each namespace; all or none, as Nomad's state store's DeleteNamespaces."""
    names = cmd.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return {"ok": False, "error": "must specify at least one namespace to delete"}
    table = store.tables[TABLE]
    for name in names:
        if get(store.tables, name) is None:
            return {"ok": False, "error": "namespace not found"}
        if name == DEFAULT:
            return {"ok": False, "error": "default namespace can not be deleted"}
        jobs = live_jobs(store.tables, name)
        if jobs:
            return {"ok": False, "error": f'namespace "{name}" contains at least one non-terminal job '
                                          f'"{jobs[0]}". All jobs must be terminal in namespace before it '
                                          "can be deleted"}
        if has_variables(store.tables, name):
            return {"ok": False, "error": f'namespace "{name}" contains at least one variable. All variables '
                                          "in namespace must be deleted before it can be deleted"}
    for name in names:
        table.pop(name, None)
    store._touch(TABLE, index)
    return {"ok": True, "index": index}


def holdings(tables: dict[str, dict[str, Any]], name: str) -> tuple[bool, bool, bool]:
    """What keeps namespace *name* from being deleted here: (non-terminal jobs, non-terminal
    allocations, variables)."""
    allocs = any(a.get("Namespace", DEFAULT) == name and a.get("ClientStatus") not in _TERMINAL_CLIENT
                 for a in tables["allocs"].values())
    return bool(live_jobs(tables, name)), allocs, has_variables(tables, name)


# Nomad's DeleteNamespaces messages, one for each of holdings()' flags.
_HELD = ('namespace "{}" has non-terminal jobs in regions: [{}]',
         'namespace "{}" has non-terminal allocations in regions: [{}]',
         'namespace "{}" has variables associated with it in regions: [{}]')


def delete_refusal(tables: dict[str, dict[str, Any]], names: list[str], region: str,
                   remote: dict[str, dict[str, tuple[bool, bool, bool]]] | None = None) -> str | None:
    """Why Nomad's Namespace.DeleteNamespaces endpoint refuses to delete *names* before it writes
    (None: it may), in its words: each namespace's non-terminal jobs, allocations and variables, one
    multierror line each naming the regions that hold them -- this *region* first, then the others of
    *remote* (name -> region -> holdings() there) in their sorted order, as Nomad asks every region."""
    if DEFAULT in names:
        return "can not delete default namespace"
    errors = []
    for name in names:
        if get(tables, name) is None:
            continue  # the write says "namespace not found"
        here = holdings(tables, name)
        there = (remote or {}).get(name, {})
        for i, message in enumerate(_HELD):
            held = ([region] if here[i] else []) + [r for r in sorted(there) if r != region and there[r][i]]
            if held:
                errors.append(message.format(name, " ".join(held)))
    if not errors:
        return None
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "".join(f"\n\t* {e}" for e in errors) + "\n\n"


def job_error(tables: dict[str, dict[str, Any]], job: dict[str, Any]) -> str | None:
    """Why *job* may not be registered into its namespace (None: it may), as Nomad's
    jobNamespaceConstraintCheckHook: the namespace must exist and allow the job's task drivers and
    group network modes."""
    name = job.get("Namespace") or DEFAULT
    ns = get(tables, name)
    if ns is None:
        return f"job {json.dumps(job.get('ID'))} is in nonexistent namespace {json.dumps(name)}"
    caps = ns.get("Capabilities")
    if not caps:
        return None
    groups = job.get("TaskGroups") or ()
    drivers = [t.get("Driver", "") for g in groups for t in g.get("Tasks") or ()
               if not _allowed(caps, "TaskDrivers", t.get("Driver", ""))]
    if drivers:
        return _not_allowed("used task driver", drivers, name)
    modes = [(n.get("Mode") or "host") for g in groups for n in g.get("Networks") or ()]
    modes = [m for m in modes if not _allowed(caps, "NetworkModes", m)]
    if modes:
        return _not_allowed("used group network mode", modes, name)
    return None


def _allowed(caps: dict[str, Any], kind: str, value: str) -> bool:
    enabled, disabled = caps.get(f"Enabled{kind}") or (), caps.get(f"Disabled{kind}") or ()
    return (not enabled or value in enabled) and value not in disabled


def _not_allowed(what: str, values: list[str], ns: str) -> str:
    if len(values) == 1:
        return f"{what} {json.dumps(values[0])} is not allowed in namespace {json.dumps(ns)}"
    quoted = " ".join(json.dumps(v) for v in values)  # Go's %q of a []string
    return f"{what}s [{quoted}] are not allowed in namespace {json.dumps(ns)}"


# ---------------------------------------------------------------- job keys
# The store keys a job (and what it keys by job: its versions, submissions, launches, and the derived
# by-job indexes) by ONE composed key: the bare job ID in "default" -- so every state written before
# namespaces, and the simulator's, keeps its keys -- and "<namespace>\0<job ID>" elsewhere (a job ID
# has no NUL).  Records keep their own ``ID`` / ``JobID`` and ``Namespace``; only keys are composed.
_SEP = "\x00"


def job_key(namespace: str | None, job_id: str) -> str:
    """The store key of job *job_id* in *namespace* (None or "": default)."""
    if not namespace or namespace == DEFAULT:
        return job_id
    return f"{namespace}{_SEP}{job_id}"


def job_key_of(job: dict[str, Any]) -> str:
    """The store key of a job record."""
    return job_key(job.get("Namespace"), job.get("ID", ""))


def parent_key_of(job: dict[str, Any]) -> str:
    """The store key of the periodic or parameterized job *job* was launched from ("": none)."""
    parent = job.get("ParentID")
    return job_key(job.get("Namespace"), parent) if parent else ""


def key_of(rec: dict[str, Any]) -> str:
    """The store key of the job an allocation, evaluation, deployment or plan belongs to."""
    return job_key(rec.get("Namespace"), rec.get("JobID", ""))


def split_key(key: str) -> tuple[str, str]:
    """(namespace, job ID) of a store key."""
    ns, sep, job_id = key.partition(_SEP)
    return (ns, job_id) if sep else (DEFAULT, key)
