"""Replication of global objects from the authoritative region (Nomad ``leader.go`` ``replicate*``).

In a federated cluster one region is authoritative (``server.authoritative_region``)
for the objects every region shares: ACL policies, global ACL tokens, ACL
roles, ACL auth methods and binding rules, namespaces and node pools.  The
leader of every other region runs one loop per kind when ACLs are enabled (as Nomad's leader starts
``replicateACLPolicies``, ``replicateACLTokens``, ``replicateACLRoles``,
``replicateACLAuthMethods``, ``replicateACLBindingRules``, ``replicateNamespaces``
and ``replicateNodePools`` only then):

1. list the kind in the authoritative region with a blocking query
   (``?index=`` the index of the last list, so an unchanged region answers
   only when something changes or the wait ends);
2. diff the list against local state (:func:`diff`, Nomad's ``diffACLPolicies``
   and friends): what is gone there is deleted here, what is missing here or
   changed since the last list (its ModifyIndex above it, its hash unlike
   ours) is fetched in full where the list has stubs only, then upserted;
3. deletes and upserts go through this region's own Raft with the commands
   the HTTP API already uses, so old logs replay as they did.

A round starts at most ``round_interval_s`` after the previous one (Nomad's
``replicationRateLimit``, 10 a second); any failure (the region unreachable,
a refusal, a write that failed) waits ``backoff_s`` (Nomad's
``ReplicationBackoff``, 30 s) before the kind's next round.  The loops run
while this server leads and stop when it stops leading.

The requests travel as the rest of this agent's cross-region traffic does:
each is an :class:`~actors.http_forward.HttpForwardRequest` told to this
server's own HTTP endpoint with ``?region=<authoritative>``, which forwards
it (``actors.http_api.forward_region``) to a server of that region, with the
replication token (``acl.replication_token``) as the request's token.  The
actor only tells; the endpoint's greenlet waits on the network.

Writes of these kinds sent to a non-authoritative region are
answered by the authoritative one (:func:`forward_to_authoritative`), as
Nomad's endpoints do (namespaces and node pools only with ACLs enabled:
without them Nomad writes those in the region asked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.http_forward import ENDPOINT as HTTP_ENDPOINT
from actors.http_forward import HttpForwardAccepted, HttpForwardRequest, HttpForwardResponse
from actors.raft.peer import InfoQuery, Propose, RaftInfo, Read
from actors.server import RAFT, LeadershipChanged, RaftReply, ReplyTo, log
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

__all__ = ["KINDS", "REPLICATION", "ReplicationConfig", "Replicator", "diff"]

REPLICATION = "replication"  # the Replicator's actor name on every server


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationConfig:
    region: str = "global"  # this server's region
    # server.authoritative_region; "" is this region, where nothing is replicated.
    authoritative_region: str = ""
    # acl.replication_token: the token the requests carry (a management token there).
    token: str = ""
    # acl.enabled: Nomad's leader starts every replication loop (namespaces and node pools too)
    # only with ACLs on (leader.go establishLeadership); writes are sent on either way.
    acl_enabled: bool = False
    # Nomad's replicationRateLimit is 10 rounds a second per kind: a round never follows the
    # previous one sooner than this, so a region whose objects churn is not listed in a busy loop.
    round_interval_s: float = 0.1
    # Nomad's ReplicationBackoff (30 s): after a failure a kind waits this long, so an unreachable
    # or refusing authoritative region is not hammered; the next round picks up what was missed.
    backoff_s: float = 30.0
    # The blocking list's ?wait: Nomad's default blocking query time (5 min), so an idle
    # authoritative region answers each loop a few times an hour.
    blocking_wait_s: float = 300.0
    # A request's answer must come within its wait plus this (the endpoint's own region forward
    # waits 10 s plus the wait: actors.http_api.REGION_FORWARD_TIMEOUT_S), else it failed.
    request_margin_s: float = 15.0
    # A write this region's state refused mostly waits on another kind's replication (a binding
    # rule on its auth method, which lands within a round): it is retried after this, doubled on
    # each refusal in a row up to backoff_s, so a lasting refusal (a namespace that still has jobs
    # here) settles at the backoff instead of writing a refused entry every second.
    refused_retry_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("round_interval_s", "backoff_s", "blocking_wait_s", "request_margin_s",
                     "refused_retry_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    @property
    def active(self) -> bool:
        return bool(self.authoritative_region) and self.authoritative_region != self.region


# ---------------------------------------------------------------- the pure diff


def diff(local: dict[str, str], remote: list[tuple[str, str, int]], min_index: int,
         protected: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Nomad's ``diffACLPolicies`` shape: (keys to delete here, keys to fetch and upsert), sorted.

    *local* maps each local key to its hash; *remote* lists the authoritative
    region's ``(key, hash, ModifyIndex)``.  A remote object missing here is
    updated; one present is updated when it changed after *min_index* (the
    index of the previous list) and its hash differs.  A local key the
    remote list lacks is deleted, unless *protected* (built-in objects).
    """
    seen = set()
    update = []
    for key, digest, modify_index in remote:
        seen.add(key)
        if key in protected:
            continue
        if key not in local or (modify_index > min_index and local[key] != digest):
            update.append(key)
    delete = [key for key in local if key not in seen and key not in protected]
    return sorted(delete), sorted(set(update))


def content_hash(obj: dict[str, Any], fields: tuple[str, ...]) -> str:
    """A digest of *fields* of *obj*, for kinds whose records carry no Hash here (namespaces, pools)."""
    doc = json.dumps([obj.get(f) or None for f in fields], sort_keys=True)
    return hashlib.blake2b(doc.encode(), digest_size=16).hexdigest()


# ---------------------------------------------------------------- the kinds


_NS_FIELDS = ("Description", "Meta", "Capabilities", "NodePoolConfiguration")
_POOL_FIELDS = ("Description", "Meta")
_BUILT_IN_POOLS = ("all", "default")


def _token_record(t: dict[str, Any]) -> dict[str, Any]:
    """An API token (``token_out``) -> the ``acl_token_upsert`` record (times in epoch seconds)."""
    from actors.http_acl import _epoch
    from runtime.config import parse_duration

    ttl = t.get("ExpirationTTL") or ""
    return {"AccessorID": t["AccessorID"], "SecretID": t.get("SecretID", ""), "Name": t.get("Name", ""),
            "Type": t.get("Type", "client"), "Policies": list(t.get("Policies") or []),
            "Roles": [{"ID": r.get("ID", ""), "Name": r.get("Name", "")} for r in t.get("Roles") or []],
            "Global": True, "Hash": t.get("Hash", ""), "CreateTime": _epoch(t.get("CreateTime")),
            "ExpirationTime": _epoch(t.get("ExpirationTime")),
            "ExpirationTTL": round(parse_duration(ttl) * 1e9) if ttl else 0}


def _policy_record(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p.get(k) for k in ("Name", "Description", "Rules", "JobACL", "Hash")}


def _role_record(r: dict[str, Any]) -> dict[str, Any]:
    return {"ID": r["ID"], "Name": r.get("Name", ""), "Description": r.get("Description", ""),
            "Policies": [{"Name": p.get("Name", "")} for p in r.get("Policies") or []],
            "Hash": r.get("Hash", "")}


def _method_record(m: dict[str, Any]) -> dict[str, Any]:
    """An API auth method (``method_out``) -> the ``acl_auth_method_upsert`` record (ns, epoch seconds)."""
    from actors.acl_auth import _config, _duration
    from actors.http_acl import _epoch

    return {"Name": m["Name"], "Type": m.get("Type", ""), "TokenLocality": m.get("TokenLocality", ""),
            "TokenNameFormat": m.get("TokenNameFormat", ""),
            "MaxTokenTTL": _duration(m.get("MaxTokenTTL"), "MaxTokenTTL"), "Default": bool(m.get("Default")),
            "Config": _config(m.get("Config")), "Hash": m.get("Hash", ""),
            "CreateTime": _epoch(m.get("CreateTime")), "ModifyTime": _epoch(m.get("ModifyTime"))}


def _rule_record(r: dict[str, Any]) -> dict[str, Any]:
    """An API binding rule (``rule_out``) -> the ``acl_binding_rule_upsert`` record."""
    from actors.http_acl import _epoch

    return {**{k: r.get(k, "") for k in ("ID", "Description", "AuthMethod", "Selector", "BindType",
                                         "BindName", "Hash")},
            "CreateTime": _epoch(r.get("CreateTime")), "ModifyTime": _epoch(r.get("ModifyTime"))}


def _local_hashes(table: str, key: str, hash_of: Callable[[dict[str, Any]], str],
                  keep: Callable[[dict[str, Any]], bool]) -> Callable[[Any], dict[str, str]]:
    def query(state: Any) -> dict[str, str]:
        rows = state.tables.get(table, {})
        return {r[key]: hash_of(r) for _, r in sorted(rows.items()) if keep(r)}
    return query


@dataclass(frozen=True, slots=True)
class Kind:
    """One replicated kind: where it is listed and fetched, how it is diffed and written here."""

    name: str
    list_path: str
    key: str  # the key field (Name, AccessorID, ID)
    local: Callable[[Any], dict[str, str]]  # a Raft read: key -> hash of what is here
    hash_of: Callable[[dict[str, Any]], str]  # an object's (or stub's) hash as listed
    fetch_path: str | None  # where one is read in full; None: the list holds whole objects
    upsert: Callable[[list[dict[str, Any]], dict[str, str]], bytes]  # (objects, what is here) -> command
    delete: Callable[[list[str]], bytes]
    keep_remote: Callable[[dict[str, Any]], bool] = lambda o: True
    protected: tuple[str, ...] = ()


def _stored_hash(o: dict[str, Any]) -> str:
    return o.get("Hash") or ""


KINDS: tuple[Kind, ...] = (
    # Policies before tokens and roles: a token or role naming a policy needs it here first.
    Kind("acl_policies", "/v1/acl/policies", "Name",
         _local_hashes("acl_policies", "Name", _stored_hash, lambda r: True), _stored_hash,
         "/v1/acl/policy/",
         lambda objs, _: command("acl_policy_upsert", policies=[_policy_record(p) for p in objs]),
         lambda keys: command("acl_policy_delete", names=keys)),
    Kind("acl_roles", "/v1/acl/roles", "ID",
         _local_hashes("acl_roles", "ID", _stored_hash, lambda r: True), _stored_hash, None,
         lambda objs, here: command("acl_role_upsert", roles=[_role_record(r) for r in objs],
                                    created=[r["ID"] for r in objs if r["ID"] not in here],
                                    allow_missing_policies=True),
         lambda keys: command("acl_role_delete", ids=keys)),
    # Global tokens only (Nomad's GlobalOnly list): a region's local tokens stay its own.
    Kind("acl_tokens", "/v1/acl/tokens", "AccessorID",
         _local_hashes("acl_tokens", "AccessorID", _stored_hash, lambda r: bool(r.get("Global"))),
         _stored_hash, "/v1/acl/token/",
         lambda objs, _: command("acl_token_upsert", tokens=[_token_record(t) for t in objs],
                                 replicated=True),
         lambda keys: command("acl_token_delete", accessor_ids=keys),
         keep_remote=lambda o: bool(o.get("Global"))),
    # Auth methods before binding rules: a rule names its method.  Only JWT methods exist here, so
    # the API's sanitizing (it redacts OIDC client secrets) loses nothing a method needs.
    Kind("acl_auth_methods", "/v1/acl/auth-methods", "Name",
         _local_hashes("acl_auth_methods", "Name", _stored_hash, lambda r: True), _stored_hash,
         "/v1/acl/auth-method/",
         lambda objs, _: command("acl_auth_method_upsert", methods=[_method_record(m) for m in objs]),
         lambda keys: command("acl_auth_method_delete", names=keys)),
    Kind("acl_binding_rules", "/v1/acl/binding-rules", "ID",
         _local_hashes("acl_binding_rules", "ID", _stored_hash, lambda r: True), _stored_hash,
         "/v1/acl/binding-rule/",
         lambda objs, here: command("acl_binding_rule_upsert", rules=[_rule_record(r) for r in objs],
                                    created=[r["ID"] for r in objs if r["ID"] not in here]),
         lambda keys: command("acl_binding_rule_delete", ids=keys)),
    Kind("namespaces", "/v1/namespaces", "Name",
         _local_hashes("namespaces", "Name", lambda r: content_hash(r, _NS_FIELDS), lambda r: True),
         lambda o: content_hash(o, _NS_FIELDS), None,
         lambda objs, _: command("namespace_upsert", namespaces=[
             {k: o.get(k) for k in ("Name", *_NS_FIELDS)} for o in objs]),
         lambda keys: command("namespace_delete", names=keys), protected=("default",)),
    Kind("node_pools", "/v1/node/pools", "Name",
         _local_hashes("node_pools", "Name", lambda r: content_hash(r, _POOL_FIELDS), lambda r: True),
         lambda o: content_hash(o, _POOL_FIELDS), None,
         lambda objs, _: command("node_pool_upsert", pools=[
             {k: o.get(k) for k in ("Name", *_POOL_FIELDS)} for o in objs]),
         lambda keys: command("node_pool_delete", names=keys), protected=_BUILT_IN_POOLS),
)


# ---------------------------------------------------------------- the actor


@dataclass(slots=True)
class _Loop:
    """One kind's replication loop: the round in progress and what it has learned."""

    kind: Kind
    gen: int = 0  # bumped when a round ends or leadership goes: stale replies are dropped
    min_index: int = 0  # the authoritative region's index at the last successful list
    remote_index: int = 0  # this round's list's index
    remote: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> listed object
    update: list[str] = field(default_factory=list)
    local: dict[str, str] = field(default_factory=dict)  # this round's local key -> hash
    fetched: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0  # fetches in flight
    rounds: int = 0
    errors: int = 0
    refusals: int = 0  # writes refused in a row (their retry doubles)
    last_error: str = ""


@dataclass(slots=True)
class _Request:
    kind: str
    gen: int
    what: str  # "list" or "fetch"
    chunks: list[bytes] = field(default_factory=list)


class Replicator(NodeActor):
    """On a non-authoritative region's leader: one replication loop per kind (see the module doc)."""

    def __init__(self, env: Env, name: str, *, config: ReplicationConfig | None = None, raft: str = RAFT,
                 endpoint: str = HTTP_ENDPOINT, kinds: tuple[Kind, ...] = KINDS) -> None:
        super().__init__(env, name)
        self.cfg = config or ReplicationConfig()
        self.raft = raft
        self.endpoint = endpoint
        self.is_leader = False
        self.loops = {k.name: _Loop(k) for k in kinds} if self.cfg.acl_enabled else {}
        self._requests: dict[int, _Request] = {}
        self._next_req = 0

    def on_start(self) -> None:
        if self.cfg.active:
            self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))

    # -- inbox

    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            self._lead(message.is_leader)
        elif isinstance(message, HttpForwardAccepted):
            pass  # the endpoint took it; the answer's deadline is already armed
        elif isinstance(message, HttpForwardResponse):
            self._piece(message)
        elif isinstance(message, RaftReply):
            self._raft_reply(message)
        elif message == "status":
            return self.status()
        return None

    def status(self) -> dict[str, Any]:
        return {"active": self.cfg.active, "leader": self.is_leader,
                "authoritative_region": self.cfg.authoritative_region or self.cfg.region,
                "kinds": {n: {"index": lp.min_index, "rounds": lp.rounds, "errors": lp.errors,
                              "last_error": lp.last_error} for n, lp in sorted(self.loops.items())}}

    def _lead(self, leader: bool) -> None:
        if not self.cfg.active or leader == self.is_leader:
            return
        self.is_leader = leader
        for name, lp in sorted(self.loops.items()):
            lp.gen += 1
            lp.pending = 0
            lp.refusals = 0
            lp.min_index = 0  # a new term lists everything afresh, as Nomad's loops start at index 0
            if leader:
                log.info("%s: replicating %s from authoritative region %s", self.env.node, name,
                         self.cfg.authoritative_region)
                self.set_timer(f"round:{name}", self.cfg.round_interval_s)
            else:
                self.cancel_timer(f"round:{name}")
        if not leader:
            for req_id in sorted(self._requests):
                self.cancel_timer(f"req:{req_id}")
            self._requests.clear()

    def on_timer(self, name: str) -> None:
        what, _, arg = name.partition(":")
        if what == "round" and self.is_leader and arg in self.loops:
            self._list(self.loops[arg])
        elif what == "req":
            req = self._requests.pop(int(arg), None)
            if req is not None:
                self._fail(req.kind, req.gen, f"no answer from region {self.cfg.authoritative_region}")

    # -- a round: list, read local, delete, fetch, upsert

    def _list(self, lp: _Loop) -> None:
        query = {"region": self.cfg.authoritative_region}
        wait_s = 0.0
        if lp.min_index:
            wait_s = self.cfg.blocking_wait_s
            query |= {"index": str(lp.min_index), "wait": f"{int(wait_s)}s"}
        if lp.kind.name == "acl_tokens":
            query["global"] = "true"
        self._request(lp, "list", lp.kind.list_path, query, wait_s * 17 / 16)

    def _request(self, lp: _Loop, what: str, path: str, query: dict[str, str], wait_s: float) -> None:
        self._next_req += 1
        req_id = self._next_req
        self._requests[req_id] = _Request(lp.kind.name, lp.gen, what)
        headers = (("X-Nomad-Token", self.cfg.token),) if self.cfg.token else ()
        self.set_timer(f"req:{req_id}", wait_s + self.cfg.request_margin_s)
        self.send(self.env.node, self.endpoint, HttpForwardRequest(
            req_id=req_id, reply_node=self.env.node, reply_actor=self.name, method="GET",
            url=path + "?" + urllib.parse.urlencode(query), headers=headers))

    def _piece(self, m: HttpForwardResponse) -> None:
        req = self._requests.get(m.req_id)
        if req is None:
            return
        if m.seq != len(req.chunks):
            self._drop(m.req_id)
            self._fail(req.kind, req.gen, "incomplete answer")
            return
        req.chunks.append(m.body)
        if not m.last:
            return
        self._drop(m.req_id)
        body = b"".join(req.chunks)
        if m.status == 404 and req.what == "fetch" and req.gen == self.loops[req.kind].gen:
            # Deleted there since the list (Nomad's Get* answer leaves it out): the next list drops it.
            self._fetched(self.loops[req.kind], None)
            return
        if m.status != 200:
            self._fail(req.kind, req.gen, f"{m.status}: {body[:200].decode(errors='replace')}")
            return
        try:
            doc = json.loads(body)
        except ValueError:
            self._fail(req.kind, req.gen, "answer is not JSON")
            return
        lp = self.loops[req.kind]
        if req.gen != lp.gen:
            return
        if req.what == "list":
            index = next((int(v) for k, v in m.headers if k.lower() == "x-nomad-index" and v.isdigit()), 0)
            self._listed(lp, doc, index)
        else:
            self._fetched(lp, doc)

    def _drop(self, req_id: int) -> None:
        self._requests.pop(req_id, None)
        self.cancel_timer(f"req:{req_id}")

    def _listed(self, lp: _Loop, doc: Any, index: int) -> None:
        if not isinstance(doc, list):
            self._fail(lp.kind.name, lp.gen, "list answer is not a list")
            return
        key = lp.kind.key
        lp.remote = {o[key]: o for o in doc if isinstance(o, dict) and isinstance(o.get(key), str)
                     and lp.kind.keep_remote(o)}
        lp.remote_index = index
        self.send(self.env.node, self.raft, Read(query=lp.kind.local, reply=ReplyTo(
            self.env, self.name, (lp.kind.name, lp.gen, "local"))))

    def _propose(self, lp: _Loop, step: str, data: bytes) -> None:
        self.send(self.env.node, self.raft, Propose(data=data, reply=ReplyTo(
            self.env, self.name, (lp.kind.name, lp.gen, step))))

    def _raft_reply(self, m: RaftReply) -> None:
        name, gen, step = m.tag
        lp = self.loops.get(name)
        if lp is None or gen != lp.gen:
            return
        if not m.ok:
            self._fail(name, gen, f"raft: {m.error}")
            return
        result = m.value[1]
        if step == "local":
            remote = [(k, lp.kind.hash_of(o), int(o.get("ModifyIndex") or 0))
                      for k, o in sorted(lp.remote.items())]
            lp.local = result
            delete, lp.update = diff(result, remote, lp.min_index, lp.kind.protected)
            if delete:
                log.info("%s: replication deletes %s %s", self.env.node, lp.kind.name, ", ".join(delete))
                self._propose(lp, "delete", lp.kind.delete(delete))
            else:
                self._fetch(lp)
            return
        if isinstance(result, dict) and result.get("ok") is False:
            self._fail(name, gen, f"{step} refused: {result.get('error', '')}", refused=True)
            return
        if step == "delete":
            self._fetch(lp)
        else:
            self._round_done(lp)

    def _fetch(self, lp: _Loop) -> None:
        lp.fetched = []
        if not lp.update:
            self._round_done(lp)
            return
        if lp.kind.fetch_path is None:
            self._upsert(lp, [lp.remote[k] for k in lp.update])
            return
        lp.pending = len(lp.update)
        for key in lp.update:
            self._request(lp, "fetch", lp.kind.fetch_path + urllib.parse.quote(key, safe=""),
                          {"region": self.cfg.authoritative_region}, 0.0)

    def _fetched(self, lp: _Loop, doc: Any) -> None:
        if isinstance(doc, dict):
            lp.fetched.append(doc)
        lp.pending -= 1
        if lp.pending == 0:
            self._upsert(lp, sorted(lp.fetched, key=lambda o: str(o.get(lp.kind.key))))

    def _upsert(self, lp: _Loop, objs: list[dict[str, Any]]) -> None:
        if not objs:
            self._round_done(lp)
            return
        log.info("%s: replication upserts %s %s", self.env.node, lp.kind.name,
                 ", ".join(str(o.get(lp.kind.key)) for o in objs))
        try:
            data = lp.kind.upsert(objs, lp.local)
        except (KeyError, TypeError, ValueError) as e:  # the other region sent what we cannot store
            self._fail(lp.kind.name, lp.gen, f"bad {lp.kind.name} from the authoritative region: {e}")
            return
        self._propose(lp, "upsert", data)

    def _round_done(self, lp: _Loop) -> None:
        lp.min_index = lp.remote_index
        lp.rounds += 1
        lp.gen += 1
        lp.last_error = ""
        lp.refusals = 0
        if self.is_leader:
            self.set_timer(f"round:{lp.kind.name}", self.cfg.round_interval_s)

    def _fail(self, name: str, gen: int, error: str, refused: bool = False) -> None:
        lp = self.loops.get(name)
        if lp is None or gen != lp.gen:
            return
        lp.gen += 1
        lp.errors += 1
        lp.last_error = error
        log.error("%s: failed to replicate %s from region %s: %s", self.env.node, name,
                  self.cfg.authoritative_region, error)
        if self.is_leader:
            delay = self.cfg.backoff_s
            if refused:
                lp.refusals += 1
                delay = min(delay, self.cfg.refused_retry_s * 2 ** (lp.refusals - 1))
            self.set_timer(f"round:{name}", delay)


# ---------------------------------------------------------------- writes go to the authoritative region

# Nomad's endpoints set ``args.Region = AuthoritativeRegion`` for these writes (acl_endpoint.go
# Bootstrap, UpsertPolicies, DeletePolicies, UpsertRoles, DeleteRoles, global UpsertTokens and
# DeleteTokens, the auth method and binding rule writes, and a Login with a method whose tokens
# are global; namespace_endpoint.go and node_pool_endpoint.go with ACLs enabled only), so a write
# in any region lands where the loops above replicate it from.
_GLOBAL_WRITE = re.compile(r"^/v1/(?:acl/(?:bootstrap|policy/[^/]+|role|role/[^/]+|token|token/[^/]+"
                           r"|auth-method|auth-method/[^/]+|binding-rule|binding-rule/[^/]+)"
                           r"|namespace|namespace/[^/]+|node/pools|node/pool/[^/]+)$")
_TOKEN_WRITE = re.compile(r"^/v1/acl/token(?:/[^/]+)?$")
_LOGIN = "/v1/acl/login"
# How long the hook waits for this server's own state to say whether a token is global.
TOKEN_LOOKUP_TIMEOUT_S = 5.0


def _local_read(api: Any, query: Callable[[Any], Any]) -> Any:
    """*query* on this server's state (stale: a follower answers too); None without a state store."""
    ref = api.env.lookup(RAFT)
    if ref is None or not ref.is_alive():
        return None
    fut = api.env.make_future()
    ref.tell(Read(query=query, reply=fut, stale=True))
    return fut.get(timeout=TOKEN_LOOKUP_TIMEOUT_S)[1]


def _body_doc(req: Any, environ: dict[str, Any]) -> Any:
    """The request's JSON body (None when malformed: the handler here answers it); still readable after."""
    from actors.http_api import decode_json, read_body

    body = read_body(req)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    try:
        return decode_json(body)
    except (UnicodeDecodeError, ValueError):
        return None


def _global_token_write(req: Any, environ: dict[str, Any], api: Any) -> bool:
    """A token write goes to the authoritative region only for a global token (Nomad's rule)."""
    if req.method == "DELETE":
        accessor = req.path.rsplit("/", 1)[1]
        return bool(_local_read(api, lambda st: (st.tables["acl_tokens"].get(accessor) or {}).get("Global")))
    doc = _body_doc(req, environ)
    return isinstance(doc, dict) and doc.get("Global") is True


def _global_login(req: Any, environ: dict[str, Any], api: Any) -> bool:
    """A login goes to the authoritative region when its method makes global tokens (Nomad's Login)."""
    from actors.state.acl_ops import default_auth_method

    doc = _body_doc(req, environ)
    if not isinstance(doc, dict):
        return False
    name = doc.get("AuthMethodName") or ""

    def locality(st: Any) -> str:
        method = st.tables["acl_auth_methods"].get(name) if name else default_auth_method(st)
        return (method or {}).get("TokenLocality") or ""

    return _local_read(api, locality) == "global"


def forward_to_authoritative(req: Any, environ: dict[str, Any], api: Any) -> Any:
    """An ``actors.http_api.FORWARDERS`` hook: a global object's write in a non-authoritative region is
    answered by the authoritative one; None: answer here."""
    from actors.http_api import forward_region

    login = req.path == _LOGIN
    if req.method not in ("PUT", "POST", "DELETE") or not (login or _GLOBAL_WRITE.match(req.path)):
        return None
    ref = api.env.lookup(REPLICATION)
    if ref is None or not ref.is_alive():
        return None
    status = api.ask(REPLICATION, "status")
    if not status["active"]:
        return None
    if not req.path.startswith("/v1/acl/") and not api.ctx.acl_enabled:
        return None  # Nomad writes namespaces and node pools locally without ACLs ("silently")
    if _TOKEN_WRITE.match(req.path) and not _global_token_write(req, environ, api):
        return None
    if login and not _global_login(req, environ, api):
        return None
    region = status["authoritative_region"]
    query = {**req.query, "region": [region]}
    url = req.path + "?" + urllib.parse.urlencode(query, doseq=True)
    return forward_region(dataclasses.replace(req, query=query, url=url), environ, api)


def _register() -> None:
    from actors import http_api

    if forward_to_authoritative not in http_api.FORWARDERS:
        http_api.FORWARDERS.append(forward_to_authoritative)


_register()
