"""The servers' keyring: the root keys workload identities are signed with (Nomad's ``RootKey``).

Nomad's servers sign every task's workload identity (a JWT) with the active
root key, and anyone may check it with the public keys the servers publish
(``/.well-known/jwks.json``).  Here the key is an Ed25519 key (Nomad's
EdDSA signing key), replicated through Raft like every other record -- the
private key is replicated state, as Nomad's wrapped root keys are -- so
every server signs and verifies with the same key, and it survives Raft's
snapshots and an operator's snapshot restore.

The first identity a server is asked to sign while the state holds no key
makes one (:mod:`actors.server.alloc_endpoint`): a 32-byte Ed25519 seed
drawn from the injected environment's RNG and a key ID (a UUID from the
same RNG), proposed as ``root_key_create``.  The state machine keeps the
first key it is given and answers it to every later proposal, so of two
servers racing only one key ever takes.  A cluster that never runs a task
with an identity never writes a key (its log stays as it always was).

An operator rotates the keyring (``nomad operator root keyring rotate -now``,
``PUT /v1/operator/keyring/rotate``): the HTTP edge draws a new key the same
way, and ``root_key_rotate`` makes it the active key and every other key
``inactive``.  Inactive keys are kept: they still verify the identities
they signed, and the JWKS publishes them, until an operator removes one
(``root_key_delete``).  The active key cannot be removed, nor (without
``force``) a key that may have signed a live allocation's identity: one
that was deactivated after a still-running allocation with an identity was
created (which key signed which token is not recorded, so this errs on the
side of keeping the key).

Records, keyed by KeyID: ``KeyID``, ``Algorithm`` ("eddsa"), ``State``
("active" or "inactive"), ``CreateTime`` (Unix ns), ``Seed`` (the private
key, base64), ``CreateIndex``, ``ModifyIndex`` (for an inactive key: the
index of the rotation that deactivated it).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

TABLE = "root_keys"
ALGORITHM = "eddsa"  # Nomad's PubKeyAlgEdDSA
STATE_ACTIVE = "active"  # Nomad's RootKeyStateActive
STATE_INACTIVE = "inactive"  # Nomad's RootKeyStateInactive
_TERMINAL = ("complete", "failed", "lost")  # Nomad's ClientTerminalStatus
# Nomad's Keyring.Delete errors (answered 500, as Nomad's plain RPC errors are).
NOT_FOUND = "root key not found"
ACTIVE_UNDELETABLE = "active root key cannot be deleted - call rotate first"
IN_USE = "root key in use, cannot delete"


def active(tables: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The active key (its record), None while there is none."""
    for _, rec in sorted(tables.get(TABLE, {}).items()):
        if rec.get("State") == STATE_ACTIVE:
            return rec
    return None


def new_key(rng: Any, now_s: float) -> dict[str, Any]:
    """A new key's fields, drawn from *rng* (the env's secret_rng): key_id, seed (base64), create_time."""
    seed = rng.getrandbits(256).to_bytes(32, "big")
    return {"key_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "seed": base64.b64encode(seed).decode(), "create_time": int(now_s * 1e9)}


def meta(rec: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``RootKeyMeta`` of a key (no key material)."""
    return {"KeyID": rec["KeyID"], "Algorithm": rec.get("Algorithm", ALGORITHM),
            "CreateTime": rec.get("CreateTime", 0), "CreateIndex": rec.get("CreateIndex", 0),
            "ModifyIndex": rec.get("ModifyIndex", 0), "State": rec.get("State", ""), "PublishTime": 0}


def _bad_key(cmd: dict[str, Any]) -> dict[str, Any] | None:
    """A refusal if *cmd* does not carry a well-formed new key, else None."""
    key_id, seed, created = cmd.get("key_id"), cmd.get("seed"), cmd.get("create_time")
    try:
        ok = isinstance(key_id, str) and str(uuid.UUID(key_id)) == key_id and isinstance(seed, str) \
            and len(base64.b64decode(seed, validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        return {"ok": False, "error": "a root key needs a UUID key_id and a 32-byte base64 seed"}
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        return {"ok": False, "error": f"root key create time must be a non-negative integer, got {created!r}"}
    return None


def _store_key(store: Any, index: int, cmd: dict[str, Any]) -> None:
    store.tables[TABLE][cmd["key_id"]] = {
        "KeyID": cmd["key_id"], "Algorithm": ALGORITHM, "State": STATE_ACTIVE,
        "CreateTime": cmd["create_time"], "Seed": cmd["seed"], "CreateIndex": index, "ModifyIndex": index}


def rotate(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``root_key_rotate``: the new key becomes the active one; every other key is kept, inactive."""
    bad = _bad_key(cmd)
    if bad is not None:
        return bad
    if cmd["key_id"] in store.tables[TABLE]:
        return {"ok": False, "error": f"root key {cmd['key_id']} already exists"}
    for rec in store.tables[TABLE].values():
        if rec.get("State") == STATE_ACTIVE:
            rec.update(State=STATE_INACTIVE, ModifyIndex=index)
    _store_key(store, index, cmd)
    store._touch(TABLE, index)
    return {"ok": True, "index": index, "KeyID": cmd["key_id"]}


def in_use(tables: dict[str, dict[str, Any]], rec: dict[str, Any]) -> bool:
    """*rec* (an inactive key) may have signed the identity of an allocation still running: one with a
    task identity created before the key was deactivated."""
    for alloc in tables.get("allocs", {}).values():
        if alloc.get("ClientStatus") in _TERMINAL or alloc.get("CreateIndex", 0) >= rec.get("ModifyIndex", 0):
            continue
        group = next((g for g in (alloc.get("Job") or {}).get("TaskGroups") or ()
                      if isinstance(g, dict) and g.get("Name") == alloc.get("TaskGroup")), None)
        if any(isinstance(t, dict) and isinstance(t.get("Identity"), dict)
               for t in (group or {}).get("Tasks") or ()):
            return True
    return False


def delete(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``root_key_delete``: remove an inactive key (Nomad's ``Keyring.Delete`` checks and messages)."""
    key_id, force = cmd.get("key_id"), cmd.get("force", False)
    if not isinstance(key_id, str) or not isinstance(force, bool):
        return {"ok": False, "error": "root_key_delete needs a string key_id and a boolean force"}
    rec = store.tables[TABLE].get(key_id)
    if rec is None:
        return {"ok": False, "error": NOT_FOUND, "code": 500}
    if rec.get("State") == STATE_ACTIVE:
        return {"ok": False, "error": ACTIVE_UNDELETABLE, "code": 500}
    if not force and in_use(store.tables, rec):
        return {"ok": False, "error": IN_USE, "code": 500}
    del store.tables[TABLE][key_id]
    store._touch(TABLE, index)
    return {"ok": True, "index": index}


def create(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``root_key_create``: keep the key unless one is already active (then answer that one)."""
    bad = _bad_key(cmd)
    if bad is not None:
        return bad
    have = active(store.tables)
    if have is not None:
        return {"ok": True, "index": index, "created": False, "KeyID": have["KeyID"]}
    _store_key(store, index, cmd)
    store._touch(TABLE, index)
    return {"ok": True, "index": index, "created": True, "KeyID": cmd["key_id"]}
