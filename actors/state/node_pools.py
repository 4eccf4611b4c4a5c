"""Node pools: named groups of client nodes that jobs target (Nomad's ``NodePool``).

As Nomad's:

* Two pools always exist and cannot be changed or deleted: ``default``
  (where a node or job without a pool goes) and ``all`` (every node; only
  jobs may name it).
* An operator creates and updates others (``PUT /v1/node/pools``,
  ``nomad node pool apply``) with a description and metadata.  A client
  that registers into a pool nobody created creates it, empty of both.
* A job registered into a pool that does not exist is refused; a pool
  with nodes in it or non-terminal jobs on it cannot be deleted.

The scheduler places a job's allocations only on nodes of its pool (every
node for ``all``).  Nomad Enterprise's per-pool scheduler configuration is
not kept here.
"""

from __future__ import annotations

import re
from typing import Any

TABLE = "node_pools"
ALL, DEFAULT = "all", "default"
BUILT_IN = {
    ALL: {"Name": ALL, "Description": "Node pool with all nodes in the cluster.", "Meta": None,
          "SchedulerConfiguration": None, "CreateIndex": 0, "ModifyIndex": 0},
    DEFAULT: {"Name": DEFAULT, "Description": "Default node pool.", "Meta": None,
              "SchedulerConfiguration": None, "CreateIndex": 0, "ModifyIndex": 0},
}
_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,128}$")  # Nomad's validNodePoolName
MAX_DESCRIPTION = 256  # Nomad's maxNodePoolDescriptionLength


def get(tables: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The pool named *name* (the store's own record, or a built-in's): do not modify."""
    return BUILT_IN.get(name) or tables.get(TABLE, {}).get(name)


def listed(tables: dict[str, dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    pools = {**tables.get(TABLE, {}), **BUILT_IN}
    return [pools[n] for n in sorted(pools) if n.startswith(prefix)]


def validated(raw: Any) -> dict[str, Any]:
    """A pool from a request (Name, Description, Meta); ValueError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("node pool must be an object")
    name = raw.get("Name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid name {name!r}: must be 1-128 letters, digits, dashes and underscores")
    desc = raw.get("Description") or ""
    if not isinstance(desc, str):
        raise ValueError("Description: must be a string")
    if len(desc) > MAX_DESCRIPTION:
        raise ValueError(f"description longer than {MAX_DESCRIPTION}")
    meta = raw.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise ValueError("Meta: must be a map of strings")
    if raw.get("SchedulerConfiguration") not in (None, {}):
        raise ValueError("SchedulerConfiguration: per-pool scheduler configuration is not supported here")
    return {"Name": name, "Description": desc, "Meta": dict(meta) or None}


def ensure(store: Any, index: int, name: str) -> None:
    """A node registering into pool *name* creates it when nobody has (Nomad's Node.Register)."""
    if name and get(store.tables, name) is None:
        store.tables[TABLE][name] = {"Name": name, "Description": "", "Meta": None,
                                     "SchedulerConfiguration": None, "CreateIndex": index,
                                     "ModifyIndex": index}
        store._touch(TABLE, index)


def upsert(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``node_pool_upsert``: create or update each pool; all or none."""
    raw = cmd.get("pools")
    if not isinstance(raw, list) or not raw:
        return {"ok": False, "error": "must specify at least one node pool"}
    pools = []
    for p in raw:
        try:
            pool = validated(p)
        except ValueError as e:
            return {"ok": False, "error": f"invalid node pool: {e}"}
        if pool["Name"] in BUILT_IN:
            return {"ok": False, "error": f'modifying node pool "{pool["Name"]}" is not allowed'}
        pools.append(pool)
    table = store.tables[TABLE]
    for pool in pools:
        old = table.get(pool["Name"])
        table[pool["Name"]] = {**pool, "SchedulerConfiguration": None,
                               "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "index": index}


def delete(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``node_pool_delete``: delete each pool; all or none, refused while anything uses one."""
    names = cmd.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return {"ok": False, "error": "must specify at least one node pool to delete"}
    names = sorted(set(names))
    table = store.tables[TABLE]
    for name in names:
        if name in BUILT_IN:
            return {"ok": False, "error": f'deleting node pool "{name}" is not allowed'}  # Nomad's words
        if name not in table:
            return {"ok": False, "error": f"node pool {name} not found"}
        if any(n.get("NodePool", DEFAULT) == name for n in store.tables["nodes"].values()):
            return {"ok": False, "error": f'node pool "{name}" has nodes'}
        if any(j.get("NodePool", DEFAULT) == name and j.get("Status") != "dead"
               for j in store.tables["jobs"].values()):
            return {"ok": False, "error": f'node pool "{name}" has non-terminal jobs'}
    for name in names:
        del table[name]
    store._touch(TABLE, index)
    return {"ok": True, "index": index}


def job_pool_error(tables: dict[str, dict[str, Any]], job: dict[str, Any]) -> str | None:
    """Why *job* may not be registered into its pool (None: it may)."""
    pool = job.get("NodePool") or DEFAULT
    if get(tables, pool) is None:
        return f'job "{job.get("ID")}" is in nonexistent node pool "{pool}"'
    return None
