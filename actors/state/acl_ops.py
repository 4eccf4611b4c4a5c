"""The ACL commands of the replicated state machine (Nomad ``state_store_acl.go``).

Three tables of :class:`~actors.state.store.StateStore`: ``acl_tokens``
(by AccessorID), ``acl_policies`` (by Name) and ``acl_bootstrap`` (one
record, ``"bootstrap"``, holding the Raft index of the bootstrap: Nomad's
``acl_token_bootstrap`` index entry, the "reset index" its error names).

Like every command these are deterministic: the HTTP edge chooses the
AccessorID and SecretID (uuid4), the hash and the time, and sends them in
the command; applying checks only what the state decides (a second
bootstrap, a missing policy or token) and answers a refusal as
``{"ok": False, "error": ..., "code": <Nomad's HTTP status>}`` with the
state unchanged.  Policy rules are validated at the edge, as Nomad's RPC
endpoint does before ``raftApply``, so a parser change can never make an
old log entry apply differently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.state.store import StateStore

__all__ = ["ACL_TABLES", "OPS", "token_by_secret"]

ACL_TABLES = ("acl_tokens", "acl_policies", "acl_bootstrap")
TOKEN_TYPES = ("client", "management")
# The fields a token write may set; the store adds the indexes, and an update
# keeps the SecretID, CreateTime and CreateIndex it had.
TOKEN_FIELDS = ("AccessorID", "SecretID", "Name", "Type", "Policies", "Global", "Hash", "CreateTime")
POLICY_FIELDS = ("Name", "Description", "Rules", "Hash")


def _refuse(error: str, code: int) -> dict[str, Any]:
    return {"ok": False, "error": error, "code": code}


def _token_record(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("AccessorID"), str) or not raw["AccessorID"]:
        raise ValueError("token must be a map with a string AccessorID")
    if raw.get("Type") not in TOKEN_TYPES:
        raise ValueError(f"token type must be client or management, got {raw.get('Type')!r}")
    policies = raw.get("Policies") or []
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise ValueError("token Policies must be a list of strings")
    return {k: raw[k] for k in TOKEN_FIELDS if k in raw} | {"Policies": list(policies)}


def token_by_secret(store: StateStore, secret: str) -> dict[str, Any] | None:
    """The token with this SecretID (the store's own record: do not modify it)."""
    if not secret:
        return None
    for token in store.tables["acl_tokens"].values():
        if token.get("SecretID") == secret:
            return token
    return None


def acl_bootstrap(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create the first management token, once (Nomad ``BootstrapACLTokens``).

    ``reset_index`` equal to the recorded bootstrap index allows it again
    (Nomad's ``acl-bootstrap-reset`` file); anything else is refused with
    Nomad's text, which tells the operator that index.
    """
    done = store.tables["acl_bootstrap"].get("bootstrap")
    reset = int(cmd.get("reset_index") or 0)
    if done is not None and reset != done["ResetIndex"]:
        if reset:
            return _refuse(f"Invalid bootstrap reset index (specified {reset}, "
                           f"reset index: {done['ResetIndex']})", 400)
        return _refuse(f"ACL bootstrap already done (reset index: {done['ResetIndex']})", 400)
    token = _token_record(cmd["token"])
    if token["Type"] != "management":
        raise ValueError("the bootstrap token must be a management token")
    if token_by_secret(store, str(token.get("SecretID") or "")) is not None:
        return _refuse("bootstrap secret is already in use by another token", 400)
    token.update(CreateIndex=index, ModifyIndex=index)
    store.tables["acl_tokens"][token["AccessorID"]] = token
    store.tables["acl_bootstrap"]["bootstrap"] = {"ResetIndex": index, "AccessorID": token["AccessorID"]}
    store._touch("acl_tokens", index)
    store._touch("acl_bootstrap", index)
    return {"ok": True, "index": index, "AccessorID": token["AccessorID"]}


def acl_token_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create or update tokens, all or none: a new one needs its SecretID, an update keeps it."""
    tokens, policies = store.tables["acl_tokens"], store.tables["acl_policies"]
    records = [_token_record(t) for t in cmd["tokens"]]
    for t in records:
        old = tokens.get(t["AccessorID"])
        if old is None and not t.get("SecretID"):
            return _refuse(f"cannot find token {t['AccessorID']}", 404)
        if old is not None and bool(t.get("Global")) != bool(old.get("Global")):
            return _refuse(f"cannot toggle global mode of {t['AccessorID']}", 400)
        if old is None and token_by_secret(store, t["SecretID"]) is not None:
            return _refuse("token secret is already in use", 400)
        missing = [p for p in t["Policies"] if p not in policies]
        if missing:
            return _refuse(f"cannot find policy {missing[0]}", 400)
    for t in records:
        old = tokens.get(t["AccessorID"])
        if old is not None:
            t.update(SecretID=old["SecretID"], CreateTime=old.get("CreateTime"),
                     CreateIndex=old["CreateIndex"])
        else:
            t["CreateIndex"] = index
        t["ModifyIndex"] = index
        tokens[t["AccessorID"]] = t
    store._touch("acl_tokens", index)
    return {"ok": True, "index": index, "AccessorIDs": [t["AccessorID"] for t in records]}


def acl_token_delete(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    ids = cmd["accessor_ids"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("accessor_ids must be a non-empty list")
    tokens = store.tables["acl_tokens"]
    missing = [i for i in ids if i not in tokens]
    if missing:
        return _refuse("ACL token not found", 404)
    for i in ids:
        del tokens[i]
    store._touch("acl_tokens", index)
    return {"ok": True, "index": index}


def acl_policy_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    policies = store.tables["acl_policies"]
    records = []
    for raw in cmd["policies"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str) or not raw["Name"]:
            raise ValueError("policy must be a map with a string Name")
        if not isinstance(raw.get("Rules"), str):
            raise ValueError("policy Rules must be a string")
        records.append({k: raw[k] for k in POLICY_FIELDS if k in raw})
    for p in records:
        old = policies.get(p["Name"])
        p.update(CreateIndex=old["CreateIndex"] if old else index, ModifyIndex=index)
        policies[p["Name"]] = p
    store._touch("acl_policies", index)
    return {"ok": True, "index": index}


def acl_policy_delete(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    names = cmd["names"]
    if not isinstance(names, list) or not names:
        raise ValueError("names must be a non-empty list")
    policies = store.tables["acl_policies"]
    if any(n not in policies for n in names):
        return _refuse("ACL policy not found", 404)
    for n in names:
        del policies[n]
    store._touch("acl_policies", index)
    return {"ok": True, "index": index}


OPS = {
    "acl_bootstrap": acl_bootstrap,
    "acl_token_upsert": acl_token_upsert,
    "acl_token_delete": acl_token_delete,
    "acl_policy_upsert": acl_policy_upsert,
    "acl_policy_delete": acl_policy_delete,
}
