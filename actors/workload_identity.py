"""Workload identity: the JWTs the servers sign for each task (Nomad 1.7+ ``identity`` blocks).

* **The jobspec**: a task's default identity ``Identity`` (``identity { env = true  file = true }``)
  and its named ones ``Identities`` (``identity { name = "vault_default"  aud = [...]  ttl = "1h"
  ... }``), validated and canonicalised as Nomad's ``WorkloadIdentity.Canonicalize`` / ``Validate``
  and ``Task.Canonicalize`` do (:func:`canonical_job_identities`: a ``default`` one listed in
  Identities moves to Identity, the name must match Nomad's regex, a TTL only on a named identity,
  ``filepath`` needs ``file``), with Nomad's job warnings (:func:`identity_warnings`).  The default
  identity's audience is always ``nomadproject.io``; a named one's is what it says.  Service identities
  (``service_name``) and ``extra_claims`` are refused; two identities of one name are refused (Nomad
  would keep one).
* **Signing** (:func:`sign`): a compact JWS with the active root key's ID as ``kid`` (the key:
  :mod:`actors.state.root_keys`), RS256 with its RSA key as Nomad 1.7+ signs (EdDSA for a key made
  before, which has none), and Nomad's claims (:func:`claims_for`): ``nomad_namespace``,
  ``nomad_job_id``, ``nomad_allocation_id``, ``nomad_task``, ``sub``
  ``<region>:<namespace>:<job>:<group>:<task>:<identity name>``, ``aud``, ``iat``/``nbf``, ``jti``,
  and ``exp`` (now + TTL) for a named identity with a TTL.  The default identity never expires; it
  is worthless once its allocation is terminal or gone.
* **Delivery**: the client asks a server for a task's identities before it first starts (Nomad's
  ``Alloc.SignIdentities``, here ``SignIdentities`` to :mod:`actors.server.alloc_endpoint`), and
  puts the default token in ``NOMAD_TOKEN`` (env) and ``secrets/nomad_token`` (file), a named one in
  ``NOMAD_TOKEN_<name>`` and ``secrets/nomad_<name>.jwt``, or ``filepath`` in the task directory.
  Identities with a TTL are signed anew before they expire (Nomad's widmgr; the client's
  ``identity_renew_*`` settings) and their ``change_mode`` applied (actors.client.alloc_runner).
* **Verification** (:func:`verify`, :func:`workload_resolution`): the HTTP API
  takes the JWT as ``X-Nomad-Token``; a server checks its signature with the
  key named by ``kid``, its expiry (go-jose's one-minute leeway) and that its allocation exists and
  is not terminal (Nomad's ``VerifyClaim``, which does not look at the audience: a named identity's
  token is accepted too), and grants Nomad's implicit workload policy
  (:class:`WorkloadACL`): read and list its own job's variables
  (``nomad/jobs``, ``nomad/jobs/<job>[/<group>[/<task>]]`` of its
  namespace) and read services, plus every ACL policy attached to its job
  (``nomad acl policy apply -namespace -job [-group [-task]]``, Nomad's
  ``JobACL``; :func:`workload_resolution`), as Nomad's ``policiesForClaims``.
* **Publishing**: ``GET /.well-known/jwks.json`` (the public keys, as a JWK
  set: ``kty`` RSA with ``n``/``e`` and ``alg`` RS256, or an older key's Ed25519 one) and
  ``/.well-known/openid-configuration`` (404 as Nomad's without ``oidc_issuer``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from actors.acl import ACL, DENY_ALL_ACL
from actors.state import root_keys
from actors.state.acl_ops import job_policy_names

DEFAULT_NAME = "default"  # Nomad's WorkloadIdentityDefaultName
DEFAULT_AUDIENCE = "nomadproject.io"  # Nomad's IdentityDefaultAud
TOKEN_FILE = "nomad_token"  # Nomad's wiTokenFile, in the task's secrets directory
TOKEN_ENV = "NOMAD_TOKEN"
TOKEN_FILE_PERMS = 0o600  # only the task's user reads it
JWT_ALG = "RS256"  # Nomad 1.7+'s: what third parties (Vault, Consul, AWS) verify through the JWKS
JWT_ALG_EDDSA = "EdDSA"  # a root key made before RS256 signing (no RSAKey) signs with its Ed25519 key
# A JWT's nbf / iat may be this far in the future of the verifying server's clock (servers' clocks
# differ a little; go-jose's DefaultLeeway is one minute).
CLOCK_LEEWAY_S = 60.0
# A secret longer than this is no token of ours: it is refused before any parsing (a signed default
# identity is well under 1 KiB).
MAX_TOKEN_BYTES = 8192
OIDC_DISABLED = "OIDC Discovery endpoint disabled"  # Nomad's answer (404) without server.oidc_issuer
_TERMINAL = ("complete", "failed", "lost")  # Nomad's ClientTerminalStatus
_CHANGE_MODES = ("", "noop", "restart", "signal")
# Nomad's validIdentityName: an identity's name is used in file and variable names.
NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,128}$")


class InvalidToken(ValueError):
    """The JWT is malformed, not signed by a key of ours, or not yet valid."""


# ---------------------------------------------------------------- the jobspec


def canonical_identity(raw: Any, field: str) -> dict[str, Any]:
    """A task's identity (``Identity`` or one of ``Identities``) with Nomad's defaults
    (``WorkloadIdentity.Canonicalize``), or ValueError with Nomad's ``Validate`` message."""
    if not isinstance(raw, dict):
        raise ValueError(f"{field}: must be an object")
    known = {"Name", "Audience", "ChangeMode", "ChangeSignal", "Env", "File", "Filepath", "ServiceName",
             "TTL", "ExtraClaims"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{field}: unknown fields {unknown}")
    name = raw.get("Name") or DEFAULT_NAME
    if not isinstance(name, str):
        raise ValueError(f"{field}.Name: must be a string")
    for key in ("Env", "File"):
        if not isinstance(raw.get(key, False), bool):
            raise ValueError(f"{field}.{key}: must be a boolean")
    for key in ("ChangeMode", "ChangeSignal", "Filepath", "ServiceName"):
        if not isinstance(raw.get(key) or "", str):
            raise ValueError(f"{field}.{key}: must be a string")
    ttl = raw.get("TTL") or 0
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise ValueError(f"{field}.TTL: must be an integer (nanoseconds)")
    audience = raw.get("Audience") or []
    if not isinstance(audience, list) or not all(isinstance(a, str) for a in audience):
        raise ValueError(f"{field}.Audience: must be a list of strings")
    mode, signal = raw.get("ChangeMode") or "", (raw.get("ChangeSignal") or "").upper()
    filepath = raw.get("Filepath") or ""
    errors = [] if NAME_RE.match(name) else [f'invalid name "{name}". Must match regex {NAME_RE.pattern}']
    errors += [f"an empty string is an invalid audience ({i + 1})" for i, a in enumerate(audience) if a == ""]
    if mode in ("", "noop", "restart") and signal:
        errors.append(f'can only use change_signal="{signal}" with change_mode="signal"')
    elif mode == "signal" and not signal:
        errors.append('change_signal must be specified when using change_mode="signal"')
    elif mode not in _CHANGE_MODES:
        errors.append(f"invalid change_mode: {mode}")
    if ttl > 0 and name == DEFAULT_NAME:
        errors.append("ttl for default identity not yet supported")
    if ttl < 0:
        errors.append("ttl must be >= 0")
    if filepath and not raw.get("File"):
        errors.append("file parameter must be true in order to specify filepath")
    if errors:  # Nomad's Task.Validate wording
        raise ValueError(f'{field}: Identity "{name}" is invalid: ' + "; ".join(errors))
    # The token file is written under the task's directory (Nomad joins filepath to it): a path that
    # would leave it is refused rather than written elsewhere on the client.
    if filepath and (filepath.startswith("/") or ".." in filepath.split("/") or "\x00" in filepath):
        raise ValueError(f'{field}: Identity "{name}": filepath must be a relative path inside the task '
                         f"directory, got {filepath!r}")
    for key, what in (("ServiceName", "service_name"), ("ExtraClaims", "extra_claims")):
        if raw.get(key):
            raise ValueError(f"{field}: identity {what} is not supported by this agent")
    # The default identity is only valid for use with Nomad itself (Nomad's Canonicalize).
    aud = [DEFAULT_AUDIENCE] if name == DEFAULT_NAME else list(audience)
    return {"Name": name, "Audience": aud, "ChangeMode": mode, "ChangeSignal": signal,
            "Env": bool(raw.get("Env")), "File": bool(raw.get("File")), "Filepath": filepath,
            "ServiceName": "", "TTL": ttl, "ExtraClaims": None}


def canonical_task_identities(task: dict[str, Any], field: str) -> None:
    """A task's ``Identity`` and ``Identities`` canonicalised in place, as Nomad's Task.Canonicalize
    and Validate: a default identity listed in ``Identities`` moves to ``Identity``; ValueError."""
    named = task.get("Identities")
    if named is not None and not isinstance(named, list):
        raise ValueError(f"{field}.Identities: must be a list")
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(named or ()):
        wid = canonical_identity(raw, f"{field}.Identities[{i}]")
        if wid["Name"] != DEFAULT_NAME:
            out.append(wid)
        elif task.get("Identity") is not None:
            raise ValueError(f"{field}: Duplicate default identities found")
        else:
            task["Identity"] = raw
    names = [w["Name"] for w in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:  # Nomad keeps one per name (its identity manager's map): refused, not dropped
        raise ValueError(f'{field}: Duplicate identity "{dup}" found')
    if out:
        task["Identities"] = out
    else:
        task.pop("Identities", None)
    if task.get("Identity") is None:
        task.pop("Identity", None)
    else:
        task["Identity"] = canonical_identity(task["Identity"], f"{field}.Identity")


def canonical_job_identities(job: dict[str, Any]) -> dict[str, Any]:
    """Every task's identities canonicalised in place (ValueError with the field); *job* answered."""
    for gi, group in enumerate(job.get("TaskGroups") or ()):
        if not isinstance(group, dict):
            continue
        for ti, task in enumerate(group.get("Tasks") or ()):
            if isinstance(task, dict):
                canonical_task_identities(task, f"TaskGroups[{gi}].Tasks[{ti}]")
    return job


def _multierror(errors: list[str]) -> str:
    """go-multierror's text of *errors* (its ListFormatFunc), as Nomad's nested warnings print it."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    return f"{len(errors)} errors occurred:\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"


def identity_warnings(job: dict[str, Any]) -> list[str]:
    """Nomad's Job.Warnings for the tasks' named identities (WorkloadIdentity.Warnings): the job is
    accepted, and the register / validate answer carries them."""
    out = []
    for g in job.get("TaskGroups") or ():
        tasks = []
        for t in g.get("Tasks") or ():
            errs = []
            for wid in t.get("Identities") or ():
                prefix = f"Identity[{wid['Name']}]"
                n = len(wid.get("Audience") or ())
                if n == 0:
                    errs.append(f"{prefix} identities without an audience are insecure")
                elif n > 1:
                    errs.append(f"{prefix} while multiple audiences is allowed, it is more secure to use 1 "
                                "audience per identity")
                if not wid.get("TTL"):
                    errs.append(f"{prefix} identities without an expiration are insecure")
                if wid.get("Env") and wid.get("ChangeMode") != "restart":
                    errs.append(f'{prefix} using env=true without change_mode="restart" may result in task '
                                "not getting updated identity")
            if errs:
                tasks.append(f'Task "{t["Name"]}" has warnings: {_multierror(errs)}')
        if tasks:
            out.append(f'Group "{g["Name"]}" has warnings: {_multierror(tasks)}')
    return out


def canonical_job(raw: Any, **kwargs: Any) -> dict[str, Any]:
    """actors.scheduler.job.canonical_job, and the tasks' identities (JobError for both)."""
    from actors.scheduler import job as job_mod  # the scheduler's package imports the state store

    job = job_mod.canonical_job(raw, **kwargs)
    try:
        return canonical_job_identities(job)
    except ValueError as e:
        raise job_mod.JobError(str(e)) from None


def task_named_identities(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A task's (canonical) named identities."""
    named = task.get("Identities") if isinstance(task, dict) else None
    if not isinstance(named, list):
        return []
    return [w for w in named if isinstance(w, dict) and w.get("Name")]


def named_token_file(name: str) -> str:
    """A named identity's token file in the task's secrets directory (Nomad's ``nomad_<name>.jwt``)."""
    return f"nomad_{name}.jwt"


def task_identity(task: dict[str, Any]) -> tuple[bool, bool]:
    """(env, file) of a task's (canonical) Identity."""
    ident = task.get("Identity") if isinstance(task, dict) else None
    if not isinstance(ident, dict):
        return False, False
    return bool(ident.get("Env")), bool(ident.get("File"))


# ---------------------------------------------------------------- JWT


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or any(c in text for c in "=+/ \n"):
        raise InvalidToken("malformed token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed token") from None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _private(key: dict[str, Any]) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(key["Seed"]))


def public_key_bytes(key: dict[str, Any]) -> bytes:
    return _private(key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def looks_like_jwt(secret: str) -> bool:
    """A secret shaped as a compact JWS (ACL token secrets are UUIDs, which have no dots)."""
    return secret.count(".") == 2 and secret.startswith("eyJ")


def key_alg(key: dict[str, Any]) -> str:
    """What *key* (a root_keys record) signs with: RS256 when it has an RSA key (Nomad prefers it, "more
    widely compatible"), else EdDSA."""
    return JWT_ALG if key.get("RSAKey") else JWT_ALG_EDDSA


def sign(key: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS of *claims* with *key* (a root_keys record; :func:`key_alg`), its KeyID as ``kid``."""
    alg = key_alg(key)
    head = _b64(_json({"alg": alg, "kid": key["KeyID"], "typ": "JWT"}))
    body = _b64(_json(claims))
    data = f"{head}.{body}".encode()
    if alg == JWT_ALG:
        signature = root_keys.rsa_private_key(key["RSAKey"]).sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = _private(key).sign(data)
    return f"{head}.{body}.{_b64(signature)}"


def _check_signature(key: dict[str, Any], signature: bytes, data: bytes) -> None:
    if key_alg(key) == JWT_ALG:
        public = root_keys.rsa_private_key(key["RSAKey"]).public_key()
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        Ed25519PublicKey.from_public_bytes(public_key_bytes(key)).verify(signature, data)


def unverified_claims(token: str) -> dict[str, Any]:
    """*token*'s claims, its signature NOT checked: only for a token a server has just verified (a
    client-only agent asks one, then needs the claims to apply the implicit policy); InvalidToken."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    return claims


def verify(token: str, keys: dict[str, dict[str, Any]], now_s: float) -> dict[str, Any]:
    """The claims of *token* if a key of *keys* (the root_keys table) signed it and it is valid at
    *now_s*; InvalidToken otherwise."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("malformed token")
    head_b64, body_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(_unb64(head_b64))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(header, dict) or header.get("alg") not in (JWT_ALG, JWT_ALG_EDDSA):
        raise InvalidToken("unsupported signing algorithm")
    key = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise InvalidToken("no root key with the token's key ID")
    if header["alg"] != key_alg(key):  # a key verifies only what it signs with (no algorithm confusion)
        raise InvalidToken("invalid signature: the token's algorithm is not its key's")
    try:
        _check_signature(key, _unb64(sig_b64), f"{head_b64}.{body_b64}".encode())
    except InvalidSignature:
        raise InvalidToken("invalid signature") from None
    try:
        claims = json.loads(_unb64(body_b64))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    for name in ("nbf", "iat"):
        if isinstance(claims.get(name), (int, float)) and claims[name] > now_s + CLOCK_LEEWAY_S:
            raise InvalidToken("token not valid yet")
    # go-jose's leeway applies to exp as well (Nomad's claims.Validate): servers' clocks differ.
    if isinstance(claims.get("exp"), (int, float)) and claims["exp"] < now_s - CLOCK_LEEWAY_S:
        raise InvalidToken("token is expired")
    return claims


def claims_for(alloc: dict[str, Any], task: str, now_s: float, jti: str,
               wid: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nomad's workload identity claims for *task* of *alloc* (WorkloadIdentityClaimsBuilder): its
    default identity, or the named identity *wid* (a canonical one): ``sub`` ends with its name, ``aud``
    is its audience (left out when it has none, as go-jose's), and a TTL gives an ``exp``."""
    job = alloc.get("Job") or {}
    ns = alloc.get("Namespace") or "default"
    job_id = job.get("ParentID") or alloc.get("JobID", "")  # Nomad's GetIDforWorkloadIdentity
    region = job.get("Region") or "global"
    group = alloc.get("TaskGroup", "")
    now = int(now_s)
    name = wid["Name"] if wid else DEFAULT_NAME
    audience = list(wid.get("Audience") or ()) if wid else [DEFAULT_AUDIENCE]
    claims: dict[str, Any] = {
        "nomad_namespace": ns, "nomad_job_id": job_id, "nomad_allocation_id": alloc["ID"],
        "nomad_task": task, "sub": f"{region}:{ns}:{job_id}:{group}:{task}:{name}", "iat": now, "nbf": now,
        "jti": jti}
    if audience:
        claims["aud"] = audience
    ttl_ns = (wid or {}).get("TTL") or 0
    if ttl_ns > 0:  # Nomad's setExpiry: now + TTL, whole seconds
        claims["exp"] = int(now_s + ttl_ns / 1e9)
    return claims


def new_jti(rng: Any) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------- on the servers (pure queries)

NO_KEY = "no root key"  # sign_identities' answer while the state holds no key: the caller makes one


Signed = tuple[tuple[str, str], ...]  # (task, JWT of its default identity)
SignedNamed = tuple[tuple[str, str, str, int], ...]  # (task, identity, JWT, exp in Unix s; 0: none)


def sign_identities(state: Any, node_id: str, secret_id: str, alloc_id: str, tasks: tuple[str, ...],
                    jtis: tuple[str, ...], now_s: float, identities: tuple[tuple[str, str], ...] = (),
                    named_jtis: tuple[str, ...] = ()) -> tuple[str, Signed, SignedNamed]:
    """Read query (Nomad's Alloc.SignIdentities): ("", ((task, jwt), ...), ((task, name, jwt, exp), ...))
    for *tasks*' default identities and the named *identities* ((task, name), ...) of the asking node's
    allocation; (error, (), ()) otherwise; (NO_KEY, (), ()) while the servers have no key yet."""
    try:  # runs inside the Raft actor: must never raise
        node = state.tables["nodes"].get(node_id)
        if node is None:
            return "node not found", (), ()
        if node.get("SecretID") and node["SecretID"] != secret_id:
            return "node secret ID does not match", (), ()
        alloc = state.tables["allocs"].get(alloc_id)
        if alloc is None or alloc.get("NodeID") != node_id:
            return "allocation not found", (), ()  # Nomad's WIRejectionReasonMissingAlloc
        specs = {t.get("Name"): t for g in (alloc.get("Job") or {}).get("TaskGroups") or ()
                 if isinstance(g, dict) and g.get("Name") == alloc.get("TaskGroup")
                 for t in g.get("Tasks") or () if isinstance(t, dict)}
        missing = [t for t in tasks + tuple(t for t, _ in identities) if t not in specs]
        if missing:
            return f"task not found: {missing[0]}", (), ()  # Nomad's WIRejectionReasonMissingTask
        wids = []
        for task, name in identities:
            wid = next((w for w in specs[task].get("Identities") or () if w.get("Name") == name), None)
            if wid is None:  # Nomad's WIRejectionReasonMissingIdentity
                return f"identity not found: {task}/{name}", (), ()
            wids.append(wid)
        key = root_keys.active(state.tables)
        if key is None:
            return NO_KEY, (), ()
        named = []
        for (task, name), wid, jti in zip(identities, wids, named_jtis, strict=True):
            claims = claims_for(alloc, task, now_s, jti, wid)
            named.append((task, name, sign(key, claims), int(claims.get("exp", 0))))
        return "", tuple((task, sign(key, claims_for(alloc, task, now_s, jti)))
                         for task, jti in zip(tasks, jtis, strict=True)), tuple(named)
    except Exception as e:
        return f"{type(e).__name__}: {e}", (), ()


def workload_claims(state: Any, token: str, now_s: float) -> tuple[str, dict[str, Any]]:
    """Read query (Nomad's VerifyClaim): ("", claims) for a valid token of a live allocation, else
    (why, {})."""
    try:  # runs inside the Raft actor: must never raise
        claims = verify(token, state.tables.get(root_keys.TABLE, {}), now_s)
        alloc = state.tables["allocs"].get(str(claims.get("nomad_allocation_id") or ""))
        if alloc is None or not alloc.get("Job"):
            return "allocation does not exist", {}
        if alloc.get("ClientStatus") in _TERMINAL:  # the claims of a terminal allocation have expired
            return "allocation is terminal", {}
        return "", {**claims, "nomad_group": alloc.get("TaskGroup", "")}
    except InvalidToken as e:
        return str(e), {}
    except Exception as e:
        return f"{type(e).__name__}: {e}", {}


def workload_resolution(state: Any, token: str, now_s: float
                        ) -> tuple[str, dict[str, Any], dict[str, tuple[int, str]]]:
    """Read query: :func:`workload_claims`, and the ACL policies attached to the workload's job, group
    or task (name -> (ModifyIndex, Rules)), as Nomad's ``ResolvePoliciesForClaims``."""
    why, claims = workload_claims(state, token, now_s)
    if why:
        return why, {}, {}
    try:  # runs inside the Raft actor: must never raise
        names = job_policy_names(state, str(claims.get("nomad_namespace") or ""),
                                 str(claims.get("nomad_job_id") or ""), str(claims.get("nomad_group") or ""),
                                 str(claims.get("nomad_task") or ""))
        table = state.tables["acl_policies"]
        return "", claims, {n: (table[n]["ModifyIndex"], table[n]["Rules"]) for n in names}
    except Exception as e:
        return f"{type(e).__name__}: {e}", {}, {}


def jwks(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The public keys as a JSON Web Key Set (Nomad's JWKSRequest): every key kept, the inactive ones
    too, so an identity signed before a rotation still verifies with the published keys."""
    keys = []
    for _, k in sorted(tables.get(root_keys.TABLE, {}).items()):
        if key_alg(k) == JWT_ALG:  # Nomad publishes a key's RSA public key when it has one
            pub = root_keys.rsa_private_key(k["RSAKey"]).public_key().public_numbers()
            keys.append({"kty": "RSA", "kid": k["KeyID"], "use": "sig", "alg": JWT_ALG,
                         "n": _b64(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
                         "e": _b64(pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big"))})
        else:
            keys.append({"kty": "OKP", "crv": "Ed25519", "x": _b64(public_key_bytes(k)), "kid": k["KeyID"],
                         "alg": JWT_ALG_EDDSA, "use": "sig"})
    return {"keys": keys}


# ---------------------------------------------------------------- the workload's ACL


def workload_may_read(namespace: str, job: str, group: str, task: str, var_ns: str, path: str) -> bool:
    """Nomad's implicit workload identity policy for variables (acl.matchingVariablesCapabilitySet): a
    task may read and list ``nomad/jobs``, ``nomad/jobs/<job>``, ``.../<group>`` and ``.../<task>`` of
    its own namespace, nothing else."""
    return var_ns == namespace and path in ("nomad/jobs", f"nomad/jobs/{job}", f"nomad/jobs/{job}/{group}",
                                            f"nomad/jobs/{job}/{group}/{task}")


@dataclass(frozen=True, slots=True)
class WorkloadACL(ACL):
    """What a workload identity may do: its implicit policy, for one request (*service_read*: the
    request reads the service catalog, which any workload may, Nomad's AllowServiceRegistrationReadList)."""

    wi_namespace: str = ""
    wi_job: str = ""
    wi_group: str = ""
    wi_task: str = ""
    service_read: bool = False

    def allow_variable(self, namespace: str, path: str, capability: str) -> bool:
        if capability in ("read", "list") and workload_may_read(
                self.wi_namespace, self.wi_job, self.wi_group, self.wi_task, namespace, path):
            return True
        return ACL.allow_variable(self, namespace, path, capability)

    def allow_variable_search(self, namespace: str) -> bool:
        return namespace == self.wi_namespace or ACL.allow_variable_search(self, namespace)

    def allows_one(self, need: Any) -> bool:
        if self.service_read and need.area == "namespace" and need.what == "read-job":
            return True
        return ACL.allows_one(self, need)


def workload_acl(claims: dict[str, Any], method: str, path: str, job_acl: ACL = DENY_ALL_ACL) -> WorkloadACL:
    """The implicit policy, and *job_acl* (the compiled policies attached to the workload's job)."""
    reads_services = method in ("GET", "HEAD") and (path == "/v1/services" or path.startswith("/v1/service/"))
    base = {f.name: getattr(job_acl, f.name) for f in fields(ACL)}
    base["management"] = False  # a workload is never management, whatever it is given
    return WorkloadACL(**base, wi_namespace=str(claims.get("nomad_namespace") or ""),
                       wi_job=str(claims.get("nomad_job_id") or ""),
                       wi_group=str(claims.get("nomad_group") or ""),
                       wi_task=str(claims.get("nomad_task") or ""), service_read=reads_services)


def workload_token(claims: dict[str, Any], policies: Any = ()) -> dict[str, Any]:
    """How a workload identity shows as the request's token (it has no accessor of its own); its
    Policies: those attached to its job (so ``acl policy self`` and ``/v1/acl/policies`` show them)."""
    return {"AccessorID": "", "Name": f"workload:{claims.get('sub', '')}", "Type": "client",
            "Policies": sorted(policies), "Global": False}
