"""The servers' keyring: the root keys workload identities are signed with (Nomad's ``RootKey``).

Nomad's servers sign every task's workload identity (a JWT) with the active
root key, and anyone may check it with the public keys the servers publish
(``/.well-known/jwks.json``).  Here the key is an RSA-2048 key (Nomad
1.7+'s RS256 signing key) and an Ed25519 key (its EdDSA one), replicated
through Raft like every other record -- the private key is replicated
state, as Nomad's wrapped root keys are -- so every server signs and
verifies with the same key, and it survives Raft's snapshots and an operator's snapshot restore.

The first identity a server is asked to sign while the state holds no key
makes one (:mod:`actors.server.alloc_endpoint`): a 32-byte Ed25519 seed
and an RSA key (:func:`rsa_private_der`) drawn from the injected
environment's RNG and a key ID (a UUID from the same RNG), proposed as
``root_key_create``.  The state machine keeps the first key it is given
and answers it to every later proposal, so of two servers racing only one
key ever takes.  A cluster that never runs a task
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
("active" or "inactive"), ``CreateTime`` (Unix ns), ``Seed`` (the Ed25519
private key, base64), ``RSAKey`` (an RSA-2048 private key, PKCS #1 DER,
base64: as Nomad 1.7+, a key that has one signs RS256, which third parties
-- Vault, Consul, AWS -- verify through the JWKS; a key made before it, from
an older log or snapshot, has none and keeps signing EdDSA), ``CreateIndex``,
``ModifyIndex`` (for an inactive key: the index of the rotation that
deactivated it).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import uuid
from random import SystemRandom  # only to recognise the production RNG; nothing is drawn here
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

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
    """A new key's fields, drawn from *rng* (the env's secret_rng): key_id, seed (base64), rsa_key (an
    RSA private key, PKCS #1 DER, base64), create_time."""
    seed = rng.getrandbits(256).to_bytes(32, "big")
    key_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {"key_id": key_id, "seed": base64.b64encode(seed).decode(),
            "rsa_key": base64.b64encode(rsa_private_der(rng)).decode(), "create_time": int(now_s * 1e9)}


# ---------------------------------------------------------------- the RSA signing key

RSA_BITS = 2048  # Nomad's NewUnwrappedRootKey: rsa.GenerateKey(rand.Reader, 2048)
RSA_EXPONENT = 65537
# Miller-Rabin rounds for each 1024-bit prime of a key drawn from a seeded RNG: FIPS 186-4 table C.3
# asks 5 for an error probability below 2^-100 with primes this size.
_MR_ROUNDS = 5



def _odd_primes_below(n: int) -> list[int]:
    """The odd primes below *n*, by a sieve (trial division of each took ~40 ms of every agent's start)."""
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for p in range(2, int(n ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytes(len(range(p * p, n, p)))
    return [p for p in range(3, n) if sieve[p]]


_SMALL_PRIMES = _odd_primes_below(20000)
_SMALL_PRODUCT = math.prod(_SMALL_PRIMES)


def _probable_prime(n: int, rng: Any) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(_MR_ROUNDS):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: Any) -> int:
    """A random prime of *bits* bits (its top two bits set, so that p*q has 2*bits bits), p-1 prime to e."""
    n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
    while True:
        if math.gcd(n, _SMALL_PRODUCT) == 1 and math.gcd(n - 1, RSA_EXPONENT) == 1 \
                and _probable_prime(n, rng):
            return n
        n += 2


def rsa_private_der(rng: Any) -> bytes:
    """A new RSA private key (Nomad's workload identity signing key), PKCS #1 DER.  The servers' RNG in
    production is the OS's CSPRNG (Env.secret_rng is a SystemRandom), and the cryptography package then
    makes the key from the same source; a seeded RNG (the simulator) draws the primes itself, so that the
    keyring and every token it signs follow from the seed."""
    if isinstance(rng, SystemRandom):
        key = rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)
    else:
        while True:
            p, q = _prime(RSA_BITS // 2, rng), _prime(RSA_BITS // 2, rng)
            if p != q:
                break
        p, q = max(p, q), min(p, q)
        d = pow(RSA_EXPONENT, -1, (p - 1) * (q - 1))
        public = rsa.RSAPublicNumbers(RSA_EXPONENT, p * q)
        key = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                    rsa.rsa_crt_iqmp(p, q), public).private_key()
    return key.private_bytes(Encoding.DER, PrivateFormat.TraditionalOpenSSL, NoEncryption())


@functools.lru_cache(maxsize=32)
def rsa_private_key(der_b64: str) -> rsa.RSAPrivateKey:
    """The key of a record's ``RSAKey`` (parsed once: the servers sign and verify with it often);
    ValueError when it is not an RSA private key."""
    key = load_der_private_key(base64.b64decode(der_b64, validate=True), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


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
    if "rsa_key" in cmd:  # absent from a key made before RS256 signing: that one signs with EdDSA
        try:
            if not isinstance(cmd["rsa_key"], str) or rsa_private_key(cmd["rsa_key"]).key_size < RSA_BITS:
                raise ValueError("too short")
        except (ValueError, TypeError, binascii.Error):
            return {"ok": False, "error": "a root key's rsa_key must be a base64 PKCS #1 RSA private key "
                                          f"of at least {RSA_BITS} bits"}
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        return {"ok": False, "error": f"root key create time must be a non-negative integer, got {created!r}"}
    return None


def _store_key(store: Any, index: int, cmd: dict[str, Any]) -> None:
    store.tables[TABLE][cmd["key_id"]] = {
        "KeyID": cmd["key_id"], "Algorithm": ALGORITHM, "State": STATE_ACTIVE,
        "CreateTime": cmd["create_time"], "Seed": cmd["seed"], "CreateIndex": index, "ModifyIndex": index}
    if cmd.get("rsa_key"):
        store.tables[TABLE][cmd["key_id"]]["RSAKey"] = cmd["rsa_key"]


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
        if any(isinstance(t, dict) and (isinstance(t.get("Identity"), dict) or t.get("Identities"))
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
