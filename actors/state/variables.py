"""Variables: small maps of strings at a path, replicated through Raft (Nomad's ``Variables``).

As Nomad's:

* A variable is ``{Namespace, Path, Items, CreateIndex, ModifyIndex,
  CreateTime, ModifyTime}``; ``Items`` is a non-empty map of strings and
  the whole variable at most :data:`MAX_BYTES` encoded.
* A path is 1-128 letters, digits and ``-_~/``, without a leading,
  trailing or doubled ``/``; under ``nomad/`` only ``nomad/jobs`` and what
  is below it may be written (Nomad keeps ``nomad/`` for itself).
* A write replaces the whole variable.  With a check index (``cas``) it
  applies only if the variable's ModifyIndex is that (0: only if there is
  none), and otherwise answers the conflict with the variable as it is, so
  two writers never silently lose each other's update.  Deletes take a
  check index too.

The table is keyed ``<namespace>/<path>``.  Unlike Nomad, which encrypts
variables with its keyring, this agent keeps them in the Raft log and its
snapshots as written: guard the servers' data directories accordingly.
Nomad's variable locks are not provided.
"""

from __future__ import annotations

import re
from typing import Any

import msgpack

TABLE = "variables"
MAX_BYTES = 64 * 1024  # Nomad: "variables are limited to 64KiB in total size"
_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")  # Nomad's validVariablePath


def key(namespace: str, path: str) -> str:
    return f"{namespace}/{path}"


def path_error(path: Any) -> str | None:
    """Why *path* cannot name a variable (None: it can)."""
    if not isinstance(path, str) or not path:
        return "variable requires path"
    if not _PATH.match(path) or path.startswith("/") or path.endswith("/") or "//" in path:
        return f'invalid path "{path}"'
    if (path == "nomad" or path.startswith("nomad/")) and not (path == "nomad/jobs"
                                                               or path.startswith("nomad/jobs/")):
        return f'"nomad" is a reserved top-level directory path, but you may write variables to '\
               f'"nomad/jobs" or below; not "{path}"'
    return None


def items_error(items: Any) -> str | None:
    if not isinstance(items, dict) or not items:
        return "empty variables are invalid"
    for k, v in items.items():
        if not isinstance(k, str) or not k:
            return "item keys must be non-empty strings"
        if not isinstance(v, str):
            return f'item "{k}": values must be strings'
    if len(msgpack.packb(items, use_bin_type=True)) > MAX_BYTES:
        return "variables are limited to 64KiB in total size"
    return None


def metadata(var: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``VariableMetadata``: the variable without its items."""
    return {k: var[k] for k in ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime",
                                "ModifyTime")}


def listed(tables: dict[str, dict[str, Any]], namespace: str, prefix: str) -> list[dict[str, Any]]:
    """The variables under *prefix* in *namespace* (``*``: every one), by namespace then path."""
    out = []
    for k in sorted(tables.get(TABLE, {})):
        var = tables[TABLE][k]
        if (namespace == "*" or var["Namespace"] == namespace) and var["Path"].startswith(prefix):
            out.append(var)
    return out


def _conflict(current: dict[str, Any] | None, cas: int) -> dict[str, Any]:
    have = current["ModifyIndex"] if current else 0
    return {"ok": False, "conflict": current,
            "error": f"cas error: requested index {cas} does not match the variable's modify index {have}"}


def set_var(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_set``: write a whole variable (``cas``: only over that ModifyIndex; 0: only a new one)."""
    namespace, path, items = cmd.get("namespace"), cmd.get("path"), cmd.get("items")
    why = path_error(path) or items_error(items)
    if why or not isinstance(namespace, str):
        return {"ok": False, "error": why or "variable requires namespace"}
    table = store.tables[TABLE]
    k = key(namespace, path)
    old = table.get(k)
    cas = cmd.get("cas")
    if cas is not None and (old["ModifyIndex"] if old else 0) != cas:
        return _conflict(old, cas)
    now = int(float(cmd["now"]) * 1e9)  # Nomad's Unix nanoseconds
    var = {"Namespace": namespace, "Path": path, "Items": dict(items),
           "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index,
           "CreateTime": old["CreateTime"] if old else now, "ModifyTime": now}
    table[k] = var
    store._touch(TABLE, index)
    return {"ok": True, "var": var}


def delete_var(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_delete``: remove a variable (``cas``: only at that ModifyIndex); a missing one is no error."""
    namespace, path = cmd.get("namespace"), cmd.get("path")
    table = store.tables[TABLE]
    k = key(str(namespace), str(path))
    old = table.get(k)
    cas = cmd.get("cas")
    if cas is not None and (old["ModifyIndex"] if old else 0) != cas:
        return _conflict(old, cas)
    if old is not None:
        del table[k]
        store._touch(TABLE, index)
    return {"ok": True}
