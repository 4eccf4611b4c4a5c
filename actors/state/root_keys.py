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

Records, keyed by KeyID: ``KeyID``, ``Algorithm`` ("eddsa"), ``State``
("active"), ``CreateTime`` (Unix ns), ``Seed`` (the private key, base64),
``CreateIndex``, ``ModifyIndex``.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

TABLE = "root_keys"
ALGORITHM = "eddsa"  # Nomad's PubKeyAlgEdDSA
STATE_ACTIVE = "active"  # Nomad's RootKeyStateActive


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


def create(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``root_key_create``: keep the key unless one is already active (then answer that one)."""
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
    have = active(store.tables)
    if have is not None:
        return {"ok": True, "index": index, "created": False, "KeyID": have["KeyID"]}
    store.tables[TABLE][key_id] = {"KeyID": key_id, "Algorithm": ALGORITHM, "State": STATE_ACTIVE,
                                   "CreateTime": created, "Seed": seed, "CreateIndex": index,
                                   "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "index": index, "created": True, "KeyID": key_id}
