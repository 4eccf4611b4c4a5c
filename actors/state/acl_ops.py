"""The ACL commands of the replicated state machine (Nomad ``state_store_acl.go``).

ACL tables of :class:`~actors.state.store.StateStore`: ``acl_tokens``
(by AccessorID), ``acl_policies`` (by Name), ``acl_bootstrap`` (one
record, ``"bootstrap"``, holding the Raft index of the bootstrap: Nomad's
``acl_token_bootstrap`` index entry, the "reset index" its error names) and
``acl_roles`` (by ID: Nomad 1.4's ACL roles, a named set of policies a
token may link to), ``acl_auth_methods`` (by Name) and ``acl_binding_rules``
(by ID): Nomad 1.5's SSO auth methods and the rules that map a login's
claims to roles and policies (:mod:`actors.acl_auth`).

A token stores its role links by ID only (``Roles: [{"ID"}]``); a link
given by name is resolved to the role's ID when the token is written, as
Nomad's ``upsertTokens`` does, so renaming a role keeps its tokens.
Readers see links through :func:`token_view`, which fills in each role's
current name and drops links to deleted roles (Nomad ``fixTokenRoleLinks``),
and a token's policies through :func:`token_policy_names`: its own and
those of its roles, deleted policies left out.

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

from actors.state import root_keys

if TYPE_CHECKING:
    from actors.state.store import StateStore

__all__ = ["ACL_TABLES", "OPS", "default_auth_method", "expired_token_candidates", "job_acl_matches",
           "job_policy_names", "multi_error", "role_by_name", "role_out", "same_time", "token_by_secret",
           "token_expired", "token_policy_names", "token_view"]

# acl_roles, then the auth method tables, last: a snapshot taken before they existed restores them empty.
# acl_auth_methods: Nomad 1.5's SSO auth methods, by Name; acl_binding_rules: their binding rules, by ID
# (both shaped at the edge by actors.acl_auth, durations in nanoseconds and times in epoch seconds).
ACL_TABLES = ("acl_tokens", "acl_policies", "acl_bootstrap", "acl_roles", "acl_auth_methods",
              "acl_binding_rules")
TOKEN_TYPES = ("client", "management")
# The fields a token write may set; the store adds the indexes, and an update
# keeps the SecretID, CreateTime and CreateIndex it had.
# ExpirationTime (epoch seconds) and ExpirationTTL (ns): Nomad 1.4's token expiry, set on creation
# only; an update keeps them.
TOKEN_FIELDS = ("AccessorID", "SecretID", "Name", "Type", "Policies", "Roles", "Global", "Hash", "CreateTime",
                "ExpirationTime", "ExpirationTTL")
# Nomad's ACLMaxExpiredBatchSize: expired tokens collected by one GC pass (one Raft write), so a
# backlog of them is deleted over several passes rather than in one huge entry.
MAX_EXPIRED_BATCH = 4096
# JobACL (Nomad 1.4+): the job, group or task whose workload identities get the policy (None: none).
POLICY_FIELDS = ("Name", "Description", "Rules", "Hash", "JobACL")
JOB_ACL_FIELDS = ("Namespace", "JobID", "Group", "Task")
ROLE_FIELDS = ("ID", "Name", "Description", "Policies", "Hash")
AUTH_METHOD_FIELDS = ("Name", "Type", "TokenLocality", "TokenNameFormat", "MaxTokenTTL", "Default", "Config",
                      "Hash", "CreateTime", "ModifyTime")
BINDING_RULE_FIELDS = ("ID", "Description", "AuthMethod", "Selector", "BindType", "BindName", "Hash",
                       "CreateTime", "ModifyTime")


def _refuse(error: str, code: int) -> dict[str, Any]:
    return {"ok": False, "error": error, "code": code}


def multi_error(problems: list[str]) -> str:
    """Go's ``multierror.Error`` text, as Nomad's validation errors read ("1 error occurred:\\n\\t* ...")."""
    plural = "s" if len(problems) > 1 else ""
    points = "\n\t".join(f"* {p}" for p in problems)
    return f"{len(problems)} error{plural} occurred:\n\t{points}\n\n"


def token_expired(token: dict[str, Any] | None, now: float) -> bool:
    """Nomad ``ACLToken.IsExpired``: it has an ExpirationTime and *now* is past it."""
    exp = (token or {}).get("ExpirationTime")
    return isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > 0 and exp < now


def expired_token_candidates(store: StateStore, now: float, cutoff: float,
                             limit: int = MAX_EXPIRED_BATCH, global_tokens: bool = True) -> list[str]:
    """Accessors of the tokens the expired-token GC takes (Nomad ``expiredACLTokenGC``); a read query.

    Expired at *now* and created before *cutoff* (now - acl_token_gc_threshold), soonest
    expiry first, at most *limit*: Nomad's order (its expiry index) and batch.  Global tokens
    only with *global_tokens*: outside the authoritative region they are replicated, and the
    authoritative region's GC deletes them everywhere (Nomad runs its global pass only there).
    """
    tokens = store.tables["acl_tokens"]
    expired = sorted((t["ExpirationTime"], a) for a, t in tokens.items()
                     if token_expired(t, now) and float(t.get("CreateTime") or 0.0) <= cutoff
                     and (global_tokens or not t.get("Global")))
    return [a for _, a in expired[:limit]]


def _token_record(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("AccessorID"), str) or not raw["AccessorID"]:
        raise ValueError("token must be a map with a string AccessorID")
    if raw.get("Type") not in TOKEN_TYPES:
        raise ValueError(f"token type must be client or management, got {raw.get('Type')!r}")
    policies = raw.get("Policies") or []
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise ValueError("token Policies must be a list of strings")
    roles = raw.get("Roles") or []  # links as given: {"ID"} or {"Name"}, resolved by acl_token_upsert
    if not isinstance(roles, list) or not all(
            isinstance(r, dict) and isinstance(r.get("ID", ""), str) and isinstance(r.get("Name", ""), str)
            for r in roles):
        raise ValueError("token Roles must be a list of {ID, Name} maps of strings")
    links = [{"ID": r.get("ID", ""), "Name": r.get("Name", "")} for r in roles]
    exp, ttl = raw.get("ExpirationTime"), raw.get("ExpirationTTL", 0)
    if exp is not None and (not isinstance(exp, (int, float)) or isinstance(exp, bool)):
        raise ValueError("token ExpirationTime must be epoch seconds or absent")
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise ValueError("token ExpirationTTL must be nanoseconds")
    return {k: raw[k] for k in TOKEN_FIELDS if k in raw} | {"Policies": list(policies), "Roles": links}


def _role_record(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("ID"), str) or not raw["ID"]:
        raise ValueError("role must be a map with a string ID")
    if not isinstance(raw.get("Name"), str) or not isinstance(raw.get("Description", ""), str):
        raise ValueError("role Name and Description must be strings")
    policies = raw.get("Policies") or []
    if not isinstance(policies, list) or not all(
            isinstance(p, dict) and isinstance(p.get("Name"), str) for p in policies):
        raise ValueError("role Policies must be a list of {Name} maps")
    names = list(dict.fromkeys(p["Name"] for p in policies))  # deduplicated, in order (as Nomad)
    return {k: raw[k] for k in ROLE_FIELDS if k in raw} | {"Policies": [{"Name": n} for n in names]}


def role_by_name(store: StateStore, name: str) -> dict[str, Any] | None:
    """The role called *name* (the store's own record: do not modify it)."""
    for role in store.tables["acl_roles"].values():
        if role.get("Name") == name:
            return role
    return None


def role_out(role: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored role, shaped as Nomad's ``ACLRole`` (and its list stub)."""
    return {"ID": role["ID"], "Name": role.get("Name", ""), "Description": role.get("Description", ""),
            "Policies": [dict(p) for p in role.get("Policies") or []], "Hash": role.get("Hash", ""),
            "CreateIndex": role.get("CreateIndex", 0), "ModifyIndex": role.get("ModifyIndex", 0)}


def token_view(store: StateStore, token: dict[str, Any]) -> dict[str, Any]:
    """A copy of *token* whose role links carry their roles' current names, deleted roles left out."""
    roles = store.tables["acl_roles"]
    links = [{"ID": r["ID"], "Name": roles[r["ID"]].get("Name", "")}
             for r in token.get("Roles") or [] if r.get("ID") in roles]
    return dict(token, Policies=list(token.get("Policies") or []), Roles=links)


def token_policy_names(store: StateStore, token: dict[str, Any] | None) -> list[str]:
    """The policies *token* holds, its own and its roles' (Nomad ``getPoliciesForIdentity``), sorted.

    Its own are named whether or not they exist; a role's only if they do
    (Nomad's ``policyNamesFromRoleLinks``).  A deleted role grants nothing.
    """
    if token is None:
        return []
    names = set(token.get("Policies") or [])
    roles, policies = store.tables["acl_roles"], store.tables["acl_policies"]
    for link in token.get("Roles") or []:
        role = roles.get(link.get("ID"))
        if role is not None:
            names.update(p["Name"] for p in role.get("Policies") or [] if p["Name"] in policies)
    return sorted(names)


def job_acl_matches(job_acl: Any, namespace: str, job_id: str, group: str, task: str) -> bool:
    """A policy's JobACL applies to the workload *namespace*/*job_id*/*group*/*task* (Nomad's
    ``ResolvePoliciesForClaims``): same namespace and either no job (every workload of the
    namespace) or the same job and, when set, the same group and, when set, the same task."""
    if not isinstance(job_acl, dict) or not job_acl.get("Namespace") or job_acl["Namespace"] != namespace:
        return False
    if not job_acl.get("JobID"):
        return True
    if job_acl["JobID"] != job_id:
        return False
    if not job_acl.get("Group"):
        return True
    return job_acl["Group"] == group and (not job_acl.get("Task") or job_acl["Task"] == task)


def job_policy_names(store: StateStore, namespace: str, job_id: str, group: str, task: str) -> list[str]:
    """The policies attached to this workload (``acl policy apply -namespace -job -group -task``), sorted."""
    return sorted(n for n, p in store.tables["acl_policies"].items()
                  if job_acl_matches(p.get("JobACL"), namespace, job_id, group, task))


def token_by_secret(store: StateStore, secret: str) -> dict[str, Any] | None:
    """The token with this SecretID (the store's own record: do not modify it)."""
    if not secret:
        return None
    for token in store.tables["acl_tokens"].values():
        if token.get("SecretID") == secret:
            return token
    return None


def bootstrap_refusal(tables: dict[str, Any], reset: int) -> str:
    """Why a bootstrap given the reset index *reset* (0: none) is refused now; "" when it is not."""
    done = tables["acl_bootstrap"].get("bootstrap")
    if done is None or reset == done["ResetIndex"]:
        return ""
    if reset:
        return f"Invalid bootstrap reset index (specified {reset}, reset index: {done['ResetIndex']})"
    return f"ACL bootstrap already done (reset index: {done['ResetIndex']})"


def acl_bootstrap(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create the first management token, once (Nomad ``BootstrapACLTokens``).

    ``reset_index`` equal to the recorded bootstrap index allows it again
    (Nomad's ``acl-bootstrap-reset`` file); anything else is refused with
    Nomad's text, which tells the operator that index.
    """
    refusal = bootstrap_refusal(store.tables, int(cmd.get("reset_index") or 0))
    if refusal:
        return _refuse(refusal, 400)
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
    """Create or update tokens, all or none: a new one needs its SecretID, an update keeps it.

    ``replicated`` (global tokens copied from the authoritative region, actors.server.replication):
    policies and roles are not required to exist here yet, as Nomad's state store does not check
    them; readers leave out what is missing (token_policy_names, token_view).

    ``allow_missing_policies``: a token may name policies that do not exist (yet), as Nomad's
    ACL.UpsertTokens lets it (a missing policy grants nothing).  Entries written before the flag
    existed lack it and keep applying as they did: such a token was refused.
    """
    tokens, policies = store.tables["acl_tokens"], store.tables["acl_policies"]
    replicated = bool(cmd.get("replicated"))
    records = [_token_record(t) for t in cmd["tokens"]]
    for idx, t in enumerate(records):
        old = tokens.get(t["AccessorID"])
        if old is None and not t.get("SecretID"):
            return _refuse(f"cannot find token {t['AccessorID']}", 404)
        if old is not None:  # expiry is set on creation only (Nomad ACLToken.Validate on an update)
            problems = []
            if int(t.get("ExpirationTTL") or 0) != int(old.get("ExpirationTTL") or 0):
                problems.append("cannot update expiration TTL")
            if t.get("ExpirationTime") is not None and not same_time(t["ExpirationTime"],
                                                                     old.get("ExpirationTime")):
                problems.append("cannot update expiration time")
            if problems:
                return _refuse(f"token {idx} invalid: {multi_error(problems)}", 400)
        if old is not None and bool(t.get("Global")) != bool(old.get("Global")):
            return _refuse(f"cannot toggle global mode of {t['AccessorID']}", 400)
        if old is None and token_by_secret(store, t["SecretID"]) is not None:
            return _refuse("token secret is already in use", 400)
        missing = [p for p in t["Policies"] if p not in policies]
        if missing and not replicated and not cmd.get("allow_missing_policies"):
            return _refuse(f"cannot find policy {missing[0]}", 400)
        links: list[dict[str, str]] = []
        for link in t["Roles"]:  # by ID, else by name; stored by ID only, deduplicated (Nomad upsertTokens)
            role = (store.tables["acl_roles"].get(link["ID"]) if link["ID"]
                    else role_by_name(store, link["Name"]))
            if role is None and replicated and link["ID"]:
                role = {"ID": link["ID"]}  # its role arrives by replication too
            if role is None:
                return _refuse(f"cannot find role {link['ID'] or link['Name']}", 400)
            if all(known["ID"] != role["ID"] for known in links):
                links.append({"ID": role["ID"]})
        t["Roles"] = links
    for t in records:
        old = tokens.get(t["AccessorID"])
        if old is not None:
            t.update(SecretID=old["SecretID"], CreateTime=old.get("CreateTime"),
                     CreateIndex=old["CreateIndex"])
            for key in ("ExpirationTime", "ExpirationTTL"):
                t.pop(key, None)
                if key in old:
                    t[key] = old[key]
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
    if missing:  # Nomad's ACL.DeleteTokens: a 400 naming every unknown accessor, nothing deleted
        return _refuse(f"Cannot delete nonexistent tokens: {', '.join(missing)}", 400)
    for i in ids:
        del tokens[i]
    store._touch("acl_tokens", index)
    return {"ok": True, "index": index}


def same_time(a: Any, b: Any) -> bool:
    """Two epoch-second times equal to the microsecond (what the API's RFC 3339 times carry)."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False
    return round(a * 1e6) == round(b * 1e6)


def acl_token_gc(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Delete the expired tokens the leader's GC found (Nomad ``expiredACLTokenGC``).

    Each is checked again against the ``now`` and ``cutoff`` the command
    carries, so every server deletes the same; one deleted meanwhile, or no
    longer eligible, is skipped rather than failing the batch.
    """
    ids, now, cutoff = cmd["accessor_ids"], float(cmd["now"]), float(cmd["cutoff"])
    if not isinstance(ids, list):
        raise ValueError("accessor_ids must be a list")
    tokens = store.tables["acl_tokens"]
    gone = [a for a in ids if a in tokens and token_expired(tokens[a], now)
            and float(tokens[a].get("CreateTime") or 0.0) <= cutoff]
    for a in gone:
        del tokens[a]
    if gone:
        store._touch("acl_tokens", index)
    return {"ok": True, "index": index, "acl_tokens": gone}


def acl_policy_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    policies = store.tables["acl_policies"]
    records = []
    for raw in cmd["policies"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str) or not raw["Name"]:
            raise ValueError("policy must be a map with a string Name")
        if not isinstance(raw.get("Rules"), str):
            raise ValueError("policy Rules must be a string")
        job_acl = raw.get("JobACL")
        if job_acl is not None and not (isinstance(job_acl, dict) and set(job_acl) <= set(JOB_ACL_FIELDS)
                                        and all(isinstance(v, str) for v in job_acl.values())):
            raise ValueError(f"policy JobACL must be null or a map of strings {list(JOB_ACL_FIELDS)}")
        record = {k: raw[k] for k in POLICY_FIELDS if k in raw}
        if job_acl is not None:
            record["JobACL"] = {k: job_acl.get(k, "") for k in JOB_ACL_FIELDS}
        records.append(record)
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
    # Nomad's DeleteACLPolicies is memdb DeleteAll: a name with no policy deletes nothing, no error.
    for n in names:
        policies.pop(n, None)
    store._touch("acl_policies", index)
    return {"ok": True, "index": index}


def acl_role_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create or update roles, all or none (Nomad ``UpsertACLRoles``).

    ``created``: the IDs the edge made for new roles (Nomad's RPC creates a
    role sent without an ID); any other role must exist.  A name belongs to
    one role; every policy a role names must exist.  An unchanged role keeps
    its ModifyIndex.  Names, descriptions and the policy count are checked
    at the edge (``ACLRole.Validate``).  ``allow_missing_policies``: Nomad's
    ``AllowMissingPolicies``, set by replication (actors.server.replication),
    whose roles may arrive before their policies.
    """
    roles, policies = store.tables["acl_roles"], store.tables["acl_policies"]
    created = cmd.get("created") or []
    if not isinstance(created, list):
        raise ValueError("created must be a list of role IDs")
    records = [_role_record(r) for r in cmd["roles"]]
    for r in records:
        if r["ID"] in created:
            if r["ID"] in roles:
                return _refuse(f"role with ID {r['ID']} already exists", 400)
        elif r["ID"] not in roles:
            return _refuse(f"cannot find role {r['ID']}", 400)
        named = role_by_name(store, r["Name"])
        if named is not None and named["ID"] != r["ID"]:
            return _refuse(f"role with name {r['Name']} already exists", 400)
        missing = [p["Name"] for p in r["Policies"] if p["Name"] not in policies]
        if missing and not cmd.get("allow_missing_policies"):
            return _refuse(f"cannot find policy {missing[0]}", 400)
    changed = False
    for r in records:
        old = roles.get(r["ID"])
        if old is not None and all(old.get(k) == r.get(k) for k in ROLE_FIELDS):
            continue  # Nomad skips an unchanged role: no index moves, no blocking query wakes
        r.update(CreateIndex=old["CreateIndex"] if old else index, ModifyIndex=index)
        roles[r["ID"]] = r
        changed = True
    if changed:
        store._touch("acl_roles", index)
    return {"ok": True, "index": index, "IDs": [r["ID"] for r in records]}


def acl_role_delete(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Delete roles by ID, all or none; tokens keep their links, which then grant nothing."""
    ids = cmd["ids"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("ids must be a non-empty list")
    roles = store.tables["acl_roles"]
    if any(i not in roles for i in ids):
        # Nomad's state store error, which its HTTP API answers 500 (the RPC does not check first).
        return _refuse("ACL role not found", 500)
    for i in ids:
        del roles[i]
    store._touch("acl_roles", index)
    return {"ok": True, "index": index}


def _method_record(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str) or not raw["Name"]:
        raise ValueError("auth method must be a map with a string Name")
    if (not isinstance(raw.get("Config"), (dict, type(None)))
            or not isinstance(raw.get("MaxTokenTTL", 0), int)):
        raise ValueError("auth method Config must be a map and MaxTokenTTL nanoseconds")
    return {k: raw[k] for k in AUTH_METHOD_FIELDS if k in raw}


def default_auth_method(store: StateStore) -> dict[str, Any] | None:
    """The method marked Default (Nomad allows one; ``GetDefaultACLAuthMethod``), by name order."""
    for _, method in sorted(store.tables["acl_auth_methods"].items()):
        if method.get("Default"):
            return method
    return None


def acl_auth_method_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create or update auth methods by name, all or none (Nomad ``UpsertACLAuthMethods``).

    One method may be the default; an unchanged method (same Hash) keeps its
    indexes, and an updated one its CreateIndex and CreateTime.
    """
    records = [_method_record(m) for m in cmd["methods"]]
    for m in records:
        current = default_auth_method(store)
        if m.get("Default") and current is not None and current["Name"] != m["Name"]:
            return _refuse(f"default ACL auth method already exists: {current['Name']}", 500)
    _write_hashed(store, index, "acl_auth_methods", "Name", records)
    return {"ok": True, "index": index, "Names": [m["Name"] for m in records]}


def _write_hashed(store: StateStore, index: int, table: str, key: str, records: list[dict[str, Any]]) -> None:
    """Store *records* under their *key* field; one whose Hash is unchanged keeps its record and
    indexes, a changed one keeps its CreateIndex and CreateTime. The table's index moves only when
    something was written."""
    rows, changed = store.tables[table], False
    for r in records:
        old = rows.get(r[key])
        if old is not None and old.get("Hash") == r.get("Hash"):
            continue
        r.update(CreateIndex=old["CreateIndex"] if old else index, ModifyIndex=index)
        if old is not None:
            r["CreateTime"] = old.get("CreateTime")
        rows[r[key]] = r
        changed = True
    if changed:
        store._touch(table, index)


def _delete_all(store: StateStore, index: int, table: str, keys: list[Any], missing: str) -> Any:
    """Delete *keys* from *table*, all or none: any missing one refuses them all with *missing*
    (Nomad's state error, answered 500)."""
    rows = store.tables[table]
    if any(k not in rows for k in keys):
        return _refuse(missing, 500)
    for k in keys:
        del rows[k]
    store._touch(table, index)
    return {"ok": True, "index": index}


def acl_auth_method_delete(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Delete auth methods by name, all or none; their binding rules stay (as in Nomad)."""
    names = cmd["names"]
    if not isinstance(names, list) or not names:
        raise ValueError("names must be a non-empty list")
    return _delete_all(store, index, "acl_auth_methods", names, "ACL auth method not found")


def acl_binding_rule_upsert(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    """Create or update binding rules, all or none (Nomad ``UpsertACLBindingRules``).

    ``created``: the IDs the edge made for new rules; any other rule must
    exist.  Each rule's auth method must exist.  An unchanged rule keeps its
    indexes.
    """
    rules, methods = store.tables["acl_binding_rules"], store.tables["acl_auth_methods"]
    created = cmd.get("created") or []
    records = []
    for raw in cmd["rules"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("ID"), str) or not raw["ID"]:
            raise ValueError("binding rule must be a map with a string ID")
        records.append({k: raw[k] for k in BINDING_RULE_FIELDS if k in raw})
    for r in records:
        if r["ID"] in created:
            if r["ID"] in rules:
                return _refuse(f"binding rule with ID {r['ID']} already exists", 400)
        elif r["ID"] not in rules:
            return _refuse(f"cannot find binding rule {r['ID']}", 400)
        if r.get("AuthMethod") not in methods:
            return _refuse("ACL binding rule insert failed: ACL auth method not found", 500)
    _write_hashed(store, index, "acl_binding_rules", "ID", records)
    return {"ok": True, "index": index, "IDs": [r["ID"] for r in records]}


def acl_binding_rule_delete(store: StateStore, index: int, cmd: dict[str, Any]) -> Any:
    ids = cmd["ids"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("ids must be a non-empty list")
    return _delete_all(store, index, "acl_binding_rules", ids, "ACL binding rule not found")


OPS = {
    "acl_bootstrap": acl_bootstrap,
    "acl_auth_method_upsert": acl_auth_method_upsert,
    "acl_auth_method_delete": acl_auth_method_delete,
    "acl_binding_rule_upsert": acl_binding_rule_upsert,
    "acl_binding_rule_delete": acl_binding_rule_delete,
    "acl_token_upsert": acl_token_upsert,
    "acl_token_delete": acl_token_delete,
    "acl_token_gc": acl_token_gc,
    "acl_policy_upsert": acl_policy_upsert,
    "acl_policy_delete": acl_policy_delete,
    "acl_role_upsert": acl_role_upsert,
    "acl_role_delete": acl_role_delete,
    # The operator's root keyring writes (a management token's, like the ACL writes above); the keys
    # themselves live in actors.state.root_keys, whose first key root_key_create makes.
    "root_key_rotate": root_keys.rotate,
    "root_key_delete": root_keys.delete,
}
