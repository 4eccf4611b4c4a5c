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

Locks (Nomad 1.7's variable locks): a variable may hold a ``Lock`` ``{ID,
TTL, LockDelay}`` (durations in nanoseconds here, Go duration strings over
HTTP).  As Nomad's:

* ``var_lock_acquire`` writes the variable (its items as given, none
  needed: Nomad's acquire overwrites the data) with the lock, unless another
  lock ID holds it (a conflict answered with the bare ``{Namespace, Path}``).
* While locked, a write or delete that does not carry the holder's lock ID
  is that same conflict.
* ``var_lock_renew`` keeps the lease: the holder must renew within twice the
  TTL (Nomad's leader timer runs ``2 * TTL`` for grace); a renewal after that
  is refused ("attempting to modify locked variable").
* A lease not renewed for ``2 * TTL`` stays held for ``LockDelay`` more, so
  nobody takes it while the lost holder may still act; then the leader's
  ``var_lock_expire`` (actors.server.var_locks) frees it.  ``var_lock_release``
  by the holder frees it at once, keeping the items.

The lease (the last renewal, the leader's wall time) is kept in its own
table, :data:`LOCKS_TABLE`, so a renewal does not wake readers of the
variables; both go through Raft, so a new leader knows every lease.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgpack

TABLE = "variables"
MAX_BYTES = 64 * 1024  # Nomad: "variables are limited to 64KiB in total size"
_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")  # Nomad's validVariablePath


LOCKS_TABLE = "var_locks"  # <namespace>/<path> -> {"ID", "TTL", "LockDelay", "Renewed"} (the lease)
SECOND_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LockLimits:
    """Nomad's lock bounds (structs/variables.go; constants there, taken from Consul's sessions)."""

    # A TTL below 10 s would make holders renew too often for Raft; above a day a
    # crashed holder would block everyone too long.
    min_ttl_ns: int = 10 * SECOND_NS
    max_ttl_ns: int = 24 * 3600 * SECOND_NS
    # A lock asked without a TTL or delay gets Nomad's 15 s for each: renewals
    # every ~10 s, and a lost lock is free 45 s (2 * TTL + delay) after its
    # holder went silent.
    default_ttl_ns: int = 15 * SECOND_NS
    default_delay_ns: int = 15 * SECOND_NS
    # Nomad's leader timer fires after TTL * 2: grace for network and
    # processing delays before a lock counts as lost.
    ttl_grace_factor: int = 2


LIMITS = LockLimits()


def key(namespace: str, path: str) -> str:
    return f"{namespace}/{path}"


def path_error(path: Any) -> str | None:
    """Why *path* cannot name a variable (None: it can)."""
    if not isinstance(path, str) or not path:
        return "variable requires path"
    if not _PATH.match(path) or path.startswith("/") or path.endswith("/") or "//" in path:
        return f'invalid path "{path}"'
    parts = path.split("/")
    if parts[0] != "nomad":
        return None
    # Nomad's ValidatePath: under "nomad", only jobs/ and sentinel/ (any depth) and job-templates/<name>
    if len(parts) == 1:
        return ('"nomad" is a reserved top-level directory path, but you may write variables to '
                '"nomad/jobs", "nomad/job-templates", "nomad/sentinel", or below')
    if parts[1] in ("jobs", "sentinel") or (parts[1] == "job-templates" and len(parts) == 3):
        return None
    if parts[1] == "job-templates":
        return ('"nomad/job-templates" is a reserved directory path, but you may write variables at the '
                'level below it, for example, "nomad/job-templates/template-name"')
    return ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the '
            'top-level "nomad" directory')


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
    """Nomad's ``VariableMetadata``: the variable without its items (with its Lock when it holds one)."""
    out = {k: var[k] for k in ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime",
                               "ModifyTime")}
    if var.get("Lock"):
        out["Lock"] = dict(var["Lock"])
    return out


def lock_error(ttl_ns: int, delay_ns: int) -> str | None:
    """Nomad's ``VariableLock.Validate`` (a multierror's text), after defaults are filled in."""
    from actors.state.acl_ops import multi_error

    problems = []
    if ttl_ns < 0 or delay_ns < 0:
        problems.append("Lock delay and TTL must be positive")
    if ttl_ns > LIMITS.max_ttl_ns or ttl_ns < LIMITS.min_ttl_ns:
        problems.append("TTL must be between 10 seconds and 24 hours")
    return multi_error(problems) if problems else None


def lease_lost_at(lease: dict[str, Any]) -> float:
    """When (leader wall seconds) a lease not renewed since counts as lost: ``Renewed + 2 * TTL``."""
    return float(lease["Renewed"]) + LIMITS.ttl_grace_factor * lease["TTL"] / SECOND_NS


def lease_free_at(lease: dict[str, Any]) -> float:
    """When a lost lease's lock is freed: its loss plus the lock delay."""
    return lease_lost_at(lease) + lease["LockDelay"] / SECOND_NS


def leases(tables: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every lease's free-at time, by key."""
    return {k: lease_free_at(lease) for k, lease in sorted(tables.get(LOCKS_TABLE, {}).items())}


def leases_in_state(state: Any) -> dict[str, float]:
    """:func:`leases` as a read query (runs inside Raft, for the leader's expiry timer)."""
    return leases(state.tables)


def _locked_conflict(existing: dict[str, Any], cmd: dict[str, Any], *, with_lock: bool = False) -> Any:
    """Nomad's isLocked: a lock is held and *cmd* does not carry its ID; then the zero-value conflict."""
    lock = existing.get("Lock") if existing else None
    if not lock or cmd.get("lock_id") == lock["ID"]:
        return None
    zero: dict[str, Any] = {"Namespace": existing["Namespace"], "Path": existing["Path"], "CreateIndex": 0,
                            "ModifyIndex": 0, "CreateTime": 0, "ModifyTime": 0, "Items": None}
    if with_lock:
        zero["Lock"] = {"ID": "", "TTL": 0, "LockDelay": 0}
    return {"ok": False, "conflict": zero, "error": "variable is locked"}


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
    locked = _locked_conflict(old, cmd)
    if locked:
        return locked
    now = int(float(cmd["now"]) * 1e9)  # Nomad's Unix nanoseconds
    var = {"Namespace": namespace, "Path": path, "Items": dict(items),
           "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index,
           "CreateTime": old["CreateTime"] if old else now, "ModifyTime": now}
    if old and old.get("Lock"):  # its holder's write keeps the lock
        var["Lock"] = dict(old["Lock"])
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
    locked = _locked_conflict(old, cmd)
    if locked:
        return locked
    if old is not None:
        del table[k]
        store._touch(TABLE, index)
        if store.tables[LOCKS_TABLE].pop(k, None) is not None:
            store._touch(LOCKS_TABLE, index)
    return {"ok": True}


def lock_acquire(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_lock_acquire``: write the variable holding lock ``lock_id`` (with ``ttl`` and ``delay`` in
    ns), its items replaced by ``items`` (may be empty), unless another lock holds it."""
    namespace, path, items = cmd.get("namespace"), cmd.get("path"), cmd.get("items") or {}
    lock_id, ttl, delay = cmd.get("lock_id"), cmd.get("ttl"), cmd.get("delay")
    why = path_error(path) or (items_error(items) if items else None)
    if not why and (not isinstance(lock_id, str) or not lock_id):
        why = "missing lock ID"
    if not why and not all(isinstance(x, int) and not isinstance(x, bool) for x in (ttl, delay)):
        why = "lock TTL and delay must be integers (nanoseconds)"
    why = why or lock_error(ttl, delay)
    if why or not isinstance(namespace, str):
        return {"ok": False, "error": why or "variable requires namespace"}
    table = store.tables[TABLE]
    k = key(namespace, path)
    old = table.get(k)
    locked = _locked_conflict(old, cmd)
    if locked:
        return locked
    now = int(float(cmd["now"]) * 1e9)
    lock = {"ID": lock_id, "TTL": ttl, "LockDelay": delay}
    var = {"Namespace": namespace, "Path": path, "Items": dict(items),
           "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index,
           "CreateTime": old["CreateTime"] if old else now, "ModifyTime": now, "Lock": lock}
    table[k] = var
    store.tables[LOCKS_TABLE][k] = {**lock, "Renewed": float(cmd["now"])}
    store._touch(TABLE, index)
    store._touch(LOCKS_TABLE, index)
    return {"ok": True, "var": var}


def lock_renew(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_lock_renew``: the holder (``lock_id``) extends its lease from ``now``; refused once the lease
    was lost (``2 * TTL`` without renewal), as Nomad's leader refuses a renewal with no timer left."""
    k = key(str(cmd.get("namespace")), str(cmd.get("path")))
    var = store.tables[TABLE].get(k)
    if var is None:
        return {"ok": False, "code": 404, "error": "variable not found"}
    lock = var.get("Lock")
    if not lock:
        return {"ok": False, "code": 409, "error": "variable doesn't hold a lock"}
    lease = store.tables[LOCKS_TABLE].get(k)
    now = float(cmd["now"])
    if lock["ID"] != cmd.get("lock_id") or lease is None or now > lease_lost_at(lease):
        return {"ok": False, "code": 409, "error": "attempting to modify locked variable"}
    store.tables[LOCKS_TABLE][k] = {**lease, "Renewed": now}
    store._touch(LOCKS_TABLE, index)
    return {"ok": True, "var": metadata(var)}


def _free(store: Any, index: int, k: str, var: dict[str, Any]) -> dict[str, Any]:
    updated = {**var, "ModifyIndex": index}
    updated.pop("Lock", None)
    store.tables[TABLE][k] = updated
    store.tables[LOCKS_TABLE].pop(k, None)
    store._touch(TABLE, index)
    store._touch(LOCKS_TABLE, index)
    return updated


def lock_release(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_lock_release``: the holder (``lock_id``) frees the lock; the items stay."""
    k = key(str(cmd.get("namespace")), str(cmd.get("path")))
    var = store.tables[TABLE].get(k)
    if var is None:
        return {"ok": False, "code": 404, "error": "variable not found"}
    if not var.get("Lock"):
        return {"ok": False, "code": 409, "error": "variable doesn't hold a lock"}
    locked = _locked_conflict(var, cmd, with_lock=True)
    if locked:
        return locked
    return {"ok": True, "var": metadata(_free(store, index, k, var))}


def lock_expire(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``var_lock_expire``: the leader frees every lock whose lease was lost and whose lock delay has
    passed by ``now`` (re-checked here, so a renewal committed first keeps its lock)."""
    now = float(cmd["now"])
    freed = []
    for k, lease in sorted(store.tables[LOCKS_TABLE].items()):
        if lease_free_at(lease) <= now:
            var = store.tables[TABLE].get(k)
            if var is not None and var.get("Lock", {}).get("ID") == lease["ID"]:
                _free(store, index, k, var)
            else:
                store.tables[LOCKS_TABLE].pop(k)
                store._touch(LOCKS_TABLE, index)
            freed.append(k)
    return {"ok": True, "freed": freed}
