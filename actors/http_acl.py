"""Nomad's ACL endpoints and the token check every request passes when ``acl.enabled``.

Registered on :mod:`actors.http_api`'s router when it is imported: the
``/v1/acl/...`` routes and :func:`acl_guard`, which
:class:`~actors.http_api.App` calls after routing and before the handler.

**Tokens** come in ``X-Nomad-Token`` or ``Authorization: Bearer <secret>``
(Nomad's ``parseToken``; the ``?token=`` query parameter Nomad once had is
not read, so a secret never lands in a logged URL).  A server resolves a
token against its own state store (a stale read, as Nomad's
``ResolveToken`` reads its local FSM); a client-only agent, which relays
server-bound requests for the server to check, resolves tokens for its own
``/v1/agent/...`` endpoints by asking a server (``/v1/acl/token/self`` and
the token's roles and policies, through :mod:`actors.http_forward`) and keeps the
answers for ``acl.token_ttl`` / ``acl.policy_ttl`` / ``acl.role_ttl``, as Nomad's
client does.
A token's policies are its own and those of its **roles** (Nomad 1.4's ACL
roles: ``/v1/acl/role...``), looked up at each resolution, so a role's new
policy takes effect on every token that has the role, and a deleted role or
policy simply grants nothing more.
An unknown secret is 403 ``ACL token not found``; an expired one (Nomad 1.4's
``ExpirationTime``, set from ``ExpirationTTL`` when the token is created) is
500 ``ACL token expired``, as Nomad answers it, until the leader's GC deletes
it; no token is the anonymous token, which has what the policy named
``anonymous`` grants, or nothing.  Compiled ACLs are cached by the
(policy, ModifyIndex) set they came from, so an edited policy takes effect
at once.  A denied request is 403 ``Permission denied`` and reaches no
handler.

A **workload identity** (a task's JWT, :mod:`actors.workload_identity`) sent
as the token gets Nomad's implicit workload policy plus every policy
attached to its job, group or task (``JobACL``, set by ``nomad acl policy
apply -namespace -job [-group [-task]]``), looked up at each request.

**Writes** go through Raft like the job endpoints: the edge makes the
AccessorID and SecretID (``uuid4``, from ``os.urandom``), the hash and the
time, and the state machine (:mod:`actors.state.acl_ops`) applies them
deterministically.  Secrets are only ever answered to a management token
or to the token's own holder, and never logged.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import functools
import hashlib
import io
import json
import logging
import re
import uuid
from typing import Any

import pykka

from actors.acl import (
    ACL,
    ANONYMOUS_POLICY,
    DENY_ALL_ACL,
    JOB_PURGE,
    MANAGEMENT_ACL,
    OPEN,
    PERMISSION_DENIED,
    TOKEN_EXPIRED,
    TOKEN_NOT_FOUND,
    Need,
    PolicyError,
    compile_acl,
    job_action,
    parse_policy,
    required,
    rules_json,
)
from actors.http_api import (
    GUARDS,
    LISTABLE_NAMESPACES,
    Answer,
    Api,
    CodedError,
    Request,
    Response,
    _stale_read,
    decode_json,
    propose,
    query_flag,
    read_body,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options
from actors.state.acl_ops import (
    JOB_ACL_FIELDS,
    bootstrap_refusal,
    multi_error,
    role_by_name,
    role_out,
    same_time,
    token_by_secret,
    token_expired,
    token_policy_names,
    token_view,
)
from actors.state.autopilot_config import go_duration, parse_go_duration
from actors.state.namespaces import job_key
from actors.state.store import command
from actors.workload_identity import (
    InvalidToken,
    looks_like_jwt,
    unverified_claims,
    workload_acl,
    workload_resolution,
    workload_token,
)
from runtime.edge import monotonic, new_id, wall_time

__all__ = ["acl_guard", "request_secret", "resolve"]

log = logging.getLogger("agent.http")

ACL_DISABLED = "ACL support disabled"  # Nomad's aclDisabled, answered 400
# Compiled ACLs kept (least recently used dropped first): Nomad's aclCacheSize.
COMPILED_CACHE_SIZE = 512
# acl token and policy validation (nomad/structs ACLToken.Validate, ACLPolicy.Validate).
MAX_TOKEN_NAME_LENGTH = 256
MAX_POLICY_DESCRIPTION_LENGTH = 256
VALID_POLICY_NAME = re.compile(r"[a-zA-Z0-9-]{1,128}")
# ACLRole.Validate: Nomad's ValidACLRoleName and maxACLRoleDescriptionLength.
VALID_ROLE_NAME = re.compile(r"[a-zA-Z0-9-]{1,128}")
MAX_ROLE_DESCRIPTION_LENGTH = 256
# Nomad's AnonymousACLToken, as /v1/acl/token/self describes it.
ANONYMOUS_TOKEN = {"AccessorID": "anonymous", "Name": "Anonymous Token", "Type": "client",
                   "Policies": [ANONYMOUS_POLICY], "Global": False}

GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # a time.Time never set, as Go's JSON writes it

_compiled: collections.OrderedDict[tuple[tuple[str, int], ...], ACL] = collections.OrderedDict()


# ---------------------------------------------------------------- resolving tokens


def request_secret(req: Request) -> str:
    """``X-Nomad-Token``, else ``Authorization: Bearer <secret>``; "" for none."""
    environ = req.environ or {}
    token = str(environ.get("HTTP_X_NOMAD_TOKEN") or "").strip()
    if token:
        return token
    scheme, _, value = str(environ.get("HTTP_AUTHORIZATION") or "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _local_read(api: Api, query: Any) -> Any:
    """Run *query* on this server's state store (stale); the outside world, so it may wait."""
    from actors.raft.peer import RaftError, Read

    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        raise CodedError(500, "the state store is not running")
    fut = api.env.make_future()
    ref.tell(Read(query=query, reply=fut, stale=True))
    try:
        return fut.get(timeout=api.ask_timeout_s)[1]
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "state store did not answer in time") from None


def _token_query(secret: str, now: float) -> Any:
    """Resolve *secret* in the state store; *now* (the edge's wall clock) decides expiry."""
    def query(st: Any) -> tuple[str, Any, dict[str, tuple[int, str]]]:
        try:  # runs inside the Raft actor: must never raise
            token = token_by_secret(st, secret) if secret else None
            if secret and token is None:
                return "missing", None, {}
            if token_expired(token, now):
                return "expired", None, {}
            names = token_policy_names(st, token) if token else [ANONYMOUS_POLICY]  # roles expanded
            table = st.tables["acl_policies"]
            found = {n: (table[n]["ModifyIndex"], table[n]["Rules"]) for n in names if n in table}
            return "ok", token_view(st, token) if token else None, found
        except Exception as e:
            return "error", f"{type(e).__name__}: {e}", {}
    return query


def _compile(policies: dict[str, tuple[int, str]]) -> ACL:
    key = tuple(sorted((name, idx) for name, (idx, _) in policies.items()))
    if not key:
        return DENY_ALL_ACL
    acl = _compiled.get(key)
    if acl is not None:
        _compiled.move_to_end(key)
        return acl
    parsed = []
    for name, (_, rules) in sorted(policies.items()):
        try:
            parsed.append(parse_policy(rules))
        except PolicyError as e:  # validated on write; a stored bad policy grants nothing
            log.warning("ACL policy %r cannot be parsed, ignoring it: %s", name, e)
    acl = compile_acl(parsed)
    _compiled[key] = acl
    while len(_compiled) > COMPILED_CACHE_SIZE:
        _compiled.popitem(last=False)
    return acl


def resolve(req: Request, api: Api) -> tuple[dict[str, Any] | None, ACL]:
    """(the token or None for anonymous, its ACL); an unknown or expired secret is refused as Nomad
    refuses it for this request (:func:`_refused`)."""
    secret = request_secret(req)
    if looks_like_jwt(secret):  # a task's workload identity JWT
        return _resolve_workload(req, api, secret)
    if api.env.lookup("raft") is None:
        status, token, policies = _remote_lookup(api, secret)
    else:
        status, token, policies = _local_read(api, _token_query(secret, wall_time()))
    if status in ("missing", "expired"):
        raise _refused(req, api, status)
    if status != "ok":
        raise CodedError(500, str(token))
    if token is not None and token.get("Type") == "management":
        return token, MANAGEMENT_ACL
    return token, _compile(policies)


# Where Nomad says more than "Permission denied" about a secret it cannot use.  Its servers
# authenticate every RPC first (nomad/auth Authenticator.Authenticate) and the handlers answer any
# failure, an unknown secret or an expired token, with ErrPermissionDenied (403); only ACL.WhoAmI and
# ACL.GetToken (GET /v1/acl/token/self and /v1/acl/token/<accessor>) and the agent's own endpoints
# (HTTPServer.ResolveToken) hand an expiry on, which the HTTP layer answers 500 "ACL token expired".
# A client-only agent resolves its agent and client endpoints' tokens itself (Client.ResolveToken:
# 403 "ACL token not found" for an unknown secret).
_AGENT_PATHS = ("/v1/agent/", "/v1/client/")


def _refused(req: Request, api: Api, status: str) -> CodedError:
    """The refusal of a secret that is unknown (*status* "missing") or expired, as Nomad words it for
    this request."""
    agent_path = req.path.startswith(_AGENT_PATHS)
    if status == "expired":
        reads_token = req.method in ("GET", "HEAD") and req.path.startswith("/v1/acl/token/")
        return CodedError(500, TOKEN_EXPIRED) if reads_token or agent_path else \
            CodedError(403, PERMISSION_DENIED)
    client_only = api.env.lookup("raft") is None
    return CodedError(403, TOKEN_NOT_FOUND if client_only and agent_path else PERMISSION_DENIED)


def _resolve_workload(req: Request, api: Api, token: str) -> tuple[dict[str, Any], ACL]:
    """(the token's stand-in, its WorkloadACL) for a task's JWT: Nomad's implicit workload policy and
    the policies attached to its job (JobACL); 403 with why the JWT is refused."""
    if api.env.lookup("raft") is None:
        # A client-only agent: a server verifies the JWT (token self, as for a secret; the answer and
        # the job's attached policies are cached as a token's are), then the claims it verified say
        # what the implicit workload policy covers (Nomad's client forwards these to its servers).
        status, stand_in, remote = _remote_lookup(api, token)
        if status != "ok" or stand_in is None:
            raise CodedError(403, "failed to verify workload identity")
        try:
            claims = unverified_claims(token)
        except InvalidToken as e:
            raise CodedError(403, f"failed to verify workload identity: {e}") from None
        return stand_in, workload_acl(claims, req.method, req.path, _compile(remote))
    why, claims, policies = _local_read(api, functools.partial(workload_resolution, token=token,
                                                               now_s=wall_time()))
    if why:
        raise CodedError(403, f"failed to verify workload identity: {why}")
    return workload_token(claims, policies), workload_acl(claims, req.method, req.path, _compile(policies))


# ---------------------------------------------------------------- on a client-only agent

# A client agent keeps what servers said (Nomad's client tokenCache,
# policyCache and roleCache): secret -> (expires, token or None), name ->
# (expires, (ModifyIndex, Rules) or None), role ID -> (expires, its policy
# names or None); at most this many entries each.
REMOTE_CACHE_SIZE = 512
_remote_tokens: collections.OrderedDict[str, Any] = collections.OrderedDict()
_remote_policies: collections.OrderedDict[str, Any] = collections.OrderedDict()
_remote_roles: collections.OrderedDict[str, Any] = collections.OrderedDict()


def _cached(cache: collections.OrderedDict[str, Any], key: str, ttl_s: float, fetch: Any) -> Any:
    hit = cache.get(key)
    now = monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    value = fetch()
    cache[key] = (now + ttl_s, value)
    cache.move_to_end(key)
    while len(cache) > REMOTE_CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _ask_server(api: Api, path: str, secret: str) -> Response:
    """GET *path* from a server through the client's forwarder (actors.http_forward), with *secret*."""
    from actors.http_forward import forward_to_server

    environ = {"HTTP_X_NOMAD_TOKEN": secret} if secret else {}
    req = Request(method="GET", path=path, query={}, url=path, environ=environ)
    resp = forward_to_server(req, environ, api)
    if resp is None:
        raise CodedError(500, "ACL tokens are resolved by servers: this agent has no state and no forwarder")
    if resp.status == 400 and resp.body.decode(errors="replace") == ACL_DISABLED:
        raise CodedError(500, "acl.enabled is set on this agent but ACLs are disabled on its servers")
    return resp


def _remote_lookup(api: Api, secret: str) -> tuple[str, Any, dict[str, tuple[int, str]]]:
    """What :func:`_token_query` answers, asked of a server and cached for acl.token_ttl / policy_ttl."""
    def fetch_token() -> dict[str, Any] | None:
        resp = _ask_server(api, "/v1/acl/token/self", secret)
        if resp.status == 200:
            return json.loads(resp.body)
        text = resp.body.decode(errors="replace")
        if resp.status in (403, 404) and text in (TOKEN_NOT_FOUND, PERMISSION_DENIED):
            return None  # unknown secret, or (404) no secret at all: the anonymous token
        if resp.status == 200 and json.loads(resp.body).get("AccessorID") == ANONYMOUS_TOKEN["AccessorID"]:
            return None  # no secret: the anonymous token, as a server describes it
        raise CodedError(resp.status, resp.body.decode(errors="replace"))

    token = _cached(_remote_tokens, secret, api.ctx.acl_token_ttl_s, fetch_token)
    if secret and token is None:
        return "missing", None, {}
    if token is not None and token_expired({"ExpirationTime": _epoch(token.get("ExpirationTime"))},
                                           wall_time()):
        return "expired", None, {}  # a cached token past its expiry (Nomad's client checks it too)
    if token is not None and token.get("Type") == "management":
        return "ok", token, {}

    def fetch_policy(name: str) -> tuple[int, str] | None:
        resp = _ask_server(api, f"/v1/acl/policy/{name}", secret)
        if resp.status in (403, 404):
            return None  # gone (or not this token's to read): grants nothing
        if resp.status != 200:
            raise CodedError(resp.status, resp.body.decode(errors="replace"))  # not cached
        policy = json.loads(resp.body)
        return int(policy.get("ModifyIndex", 0)), str(policy.get("Rules", ""))

    def fetch_role(role_id: str) -> tuple[str, ...] | None:
        # Nomad's client asks ACL.GetRolesByID, which a token may for its own roles.
        resp = _ask_server(api, f"/v1/acl/role/{role_id}", secret)
        if resp.status in (403, 404):
            return None  # deleted (or no longer this token's): grants nothing
        if resp.status != 200:
            raise CodedError(resp.status, resp.body.decode(errors="replace"))  # not cached
        return tuple(str(p.get("Name", "")) for p in json.loads(resp.body).get("Policies") or [])

    names = list((token or ANONYMOUS_TOKEN).get("Policies") or [])
    for link in (token or {}).get("Roles") or []:
        role_id = str(link.get("ID") or "")
        # Keyed by secret too: a role read is authorised by the token that has it.
        got_role = _cached(_remote_roles, f"{secret}\0{role_id}", api.ctx.acl_role_ttl_s,
                           lambda r=role_id: fetch_role(r))
        names += [n for n in got_role or () if n not in names]
    policies = {}
    for name in names:
        got = _cached(_remote_policies, name, api.ctx.acl_policy_ttl_s, lambda n=name: fetch_policy(n))
        if got is not None:
            policies[name] = got
    return "ok", token, policies


# Lists whose ?namespace=* Nomad answers with what is in the namespaces the token may list, by the
# capability each checks (Job.List: list-jobs; Alloc.List, Eval.List, Deployment.List: read-job).
_ALL_NAMESPACE_LISTS = {"/v1/jobs": "list-jobs", "/v1/allocations": "read-job", "/v1/evaluations": "read-job",
                        "/v1/deployments": "read-job", "/v1/services": "read-job",
                        "/v1/jobs/statuses": "read-job"}  # (its handler also checks the jobs a body names)
# Lists read by POST too (a body naming what to list): Job.Statuses.
_POSTED_LISTS = ("/v1/jobs/statuses",)


def acl_guard(req: Request, api: Api) -> None:
    """Refuse a request its token may not make (called by App before the handler)."""
    if not api.ctx.acl_enabled:
        return
    namespace = _job_namespace(req) or _object_namespace(req, api) or (req.query.get("namespace") or [""])[0]
    listing = req.method in ("GET", "HEAD") or (req.method == "POST" and req.path in _POSTED_LISTS)
    if namespace == "*" and listing and req.path in _ALL_NAMESPACE_LISTS and isinstance(req.environ, dict):
        # Nomad's allowedNSes: the list keeps what is in the namespaces the token may list (none: empty)
        acl = resolve(req, api)[1]
        if not acl.management:
            cap = _ALL_NAMESPACE_LISTS[req.path]
            req.environ[LISTABLE_NAMESPACES] = lambda ns: acl.allow_namespace(ns, cap)
        return
    if namespace == "*" and listing and req.path in _ALL_NAMESPACE_LISTS:
        namespace = "default"  # no environ to carry the filter (an in-process request): default's rights
    needs = required(req.method, req.path, namespace)
    if needs is None or needs == OPEN:
        return
    token, acl = resolve(req, api)
    if req.method == "DELETE" and job_action(req.path) == "" and query_flag(req, "purge"):
        needs = (*needs, Need("namespace", JOB_PURGE, namespace or "default"))  # deregister-job cannot purge
    if not acl.allows(needs) or not _job_volumes_allowed(req, api, acl, namespace or "default"):
        who = token["AccessorID"] if token else "anonymous"
        log.debug("permission denied: method=%s path=%s accessor=%s needs=%s", req.method, req.path, who,
                  ", ".join(str(n) for n in needs))
        raise CodedError(403, PERMISSION_DENIED)


def _job_volumes_allowed(req: Request, api: Api, acl: ACL, namespace: str) -> bool:
    """Nomad's Job.Register volume checks (doRegister) of a job registered, or of the version a revert
    registers again (Job.Revert calls Job.Register with the caller's token).  A body that is not a job
    passes here: its handler answers it."""
    if acl.management or req.method not in ("PUT", "POST") or not isinstance(req.environ, dict):
        return True
    rest = req.path[len("/v1/job/"):] if req.path.startswith("/v1/job/") else None
    reverted = rest[:-len("/revert")] if rest and rest.endswith("/revert") else ""
    if not (req.path == "/v1/jobs" or (rest and "/" not in rest) or (reverted and "/" not in reverted)):
        return True
    body = read_body(req)
    req.environ["wsgi.input"], req.environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    try:
        doc = decode_json(body)
        job = doc.get("Job")
    except (AttributeError, UnicodeDecodeError, ValueError):
        return True
    if reverted:
        version = doc.get("JobVersion")
        if not isinstance(version, int) or api.env.lookup("raft") is None:
            return True  # the handler refuses it, or a server checks it
        key = job_key(namespace, reverted)
        job = _stale_read(api, lambda st: next(
            (v for v in st.job_versions(key) if v.get("Version") == version), None))[1]
    return _volumes_allowed(job, acl)


def _volumes_allowed(job: Any, acl: ACL) -> bool:
    """A group's host volume needs ``mount-readwrite`` in the token's ``host_volume`` rule for its source,
    or ``mount-readonly`` (or readwrite) when it is mounted read-only, and a task's ``bidirectional``
    mount of it ``mount-readwrite``."""
    groups = job.get("TaskGroups") if isinstance(job, dict) else None
    for group in groups if isinstance(groups, list) else ():
        volumes = group.get("Volumes") if isinstance(group, dict) else None
        if not isinstance(volumes, dict):
            continue
        def writable(volume: Any) -> bool:
            return acl.allow_host_volume(str(volume.get("Source") or ""), "mount-readwrite")
        for volume in volumes.values():
            if not isinstance(volume, dict) or volume.get("Type") != "host":
                continue
            readable = volume.get("ReadOnly") is True and acl.allow_host_volume(
                str(volume.get("Source") or ""), "mount-readonly")
            if not (readable or writable(volume)):
                return False
        for task in group.get("Tasks") or ():
            for mount in (task.get("VolumeMounts") or ()) if isinstance(task, dict) else ():
                volume = volumes.get(mount.get("Volume")) if isinstance(mount, dict) else None
                if isinstance(volume, dict) and volume.get("Type") == "host" \
                        and mount.get("PropagationMode") == "bidirectional" and not writable(volume):
                    return False
    return True


# Paths naming an allocation, evaluation or deployment by ID, and the table it is in: Nomad checks the
# token in that object's own namespace (Alloc.GetAlloc, Eval.GetEval, Deployment.GetDeployment and their
# writes), whatever ?namespace= says.
_BY_ID = (("/v1/allocation/", "allocs"), ("/v1/client/allocation/", "allocs"), ("/v1/evaluation/", "evals"),
          ("/v1/deployment/", "deployments"))


def _object_namespace(req: Request, api: Api) -> str:
    """The namespace of the allocation, evaluation or deployment the path names ("": none, or not known
    here: a client agent keeps no state, and checks the request's namespace)."""
    for prefix, table in _BY_ID:
        if not req.path.startswith(prefix):
            continue
        parts = req.path[len(prefix):].split("/")
        # /v1/deployment/<action>/<id> names it last; the others first
        ident = parts[-1] if table == "deployments" and len(parts) > 1 else parts[0]
        if not ident or api.env.lookup("raft") is None:
            return ""
        def read(st: Any, t: str = table, i: str = ident) -> Any:  # in the Raft actor: never raises
            rec = st.tables.get(t, {}).get(i)
            return rec.get("Namespace") if isinstance(rec, dict) else None
        found = _stale_read(api, read)[1]
        return found if isinstance(found, str) else ""
    return ""


def _job_namespace(req: Request) -> str:
    """The namespace a job registration or plan is checked in: the one it lands in (Nomad's
    namespaceForJob, as actors.http_jobs.namespace_for_job): ``?namespace=``, then the request's own
    ``Namespace``, then the job's.

    The body is read here only when the query names none, and put back for the handler; a body that is
    not a job gives "" (the handler then answers its 400).
    """
    rest = req.path[len("/v1/job/"):] if req.path.startswith("/v1/job/") else None
    if rest and rest.endswith("/plan"):
        rest = rest[:-len("/plan")]
    if req.method not in ("PUT", "POST") or not (req.path == "/v1/jobs" or (rest and "/" not in rest)):
        return ""
    if (req.query.get("namespace") or [""])[0]:
        return ""  # the caller's ?namespace= wins
    environ = req.environ if isinstance(req.environ, dict) else None
    if environ is None:
        return ""
    body = read_body(req)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    try:
        doc = decode_json(body)
        job = doc.get("Job")
        namespace = doc.get("Namespace") if isinstance(doc.get("Namespace"), str) else ""
        namespace = namespace or (job.get("Namespace") if isinstance(job, dict) else None)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return ""
    return namespace if isinstance(namespace, str) else ""


GUARDS.append(acl_guard)


# ---------------------------------------------------------------- shapes and helpers


def _rfc3339(t: Any) -> Any:
    """Store seconds -> Go's time.Time JSON (RFC 3339, UTC)."""
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        return t
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _epoch(value: Any) -> float | None:
    """Go's time.Time JSON (RFC 3339) -> epoch seconds; None for null or Go's zero time; ValueError."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(f'parsing time {json.dumps(value)} as "2006-01-02T15:04:05Z07:00": '
                         "not an RFC 3339 time")
    if value.startswith("0001-01-01T00:00:00"):
        return None  # Go's zero time.Time: no expiry (IsZero)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def token_stub(t: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLTokenListStub``: everything but the secret (*t* seen through ``token_view``)."""
    roles = [{"ID": r.get("ID", ""), "Name": r.get("Name", "")} for r in t.get("Roles") or []]
    return {"AccessorID": t["AccessorID"], "Name": t.get("Name", ""), "Type": t.get("Type", ""),
            "Policies": list(t.get("Policies") or []), "Roles": roles or None,
            "Global": bool(t.get("Global")),
            "Hash": t.get("Hash", ""), "CreateTime": _rfc3339(t.get("CreateTime")),
            "ExpirationTime": _rfc3339(t["ExpirationTime"]) if t.get("ExpirationTime") else None,
            "CreateIndex": t.get("CreateIndex", 0), "ModifyIndex": t.get("ModifyIndex", 0)}


def token_out(t: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLToken``, secret included (for a management token or the token's holder)."""
    ttl = int(t.get("ExpirationTTL") or 0)  # Go's MarshalJSON: a duration string, "" for none
    return {**token_stub(t), "SecretID": t.get("SecretID", ""),
            "ExpirationTTL": go_duration(ttl) if ttl else ""}


def policy_stub(p: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLPolicyListStub`` (JobACL: null unless the policy is attached to a workload)."""
    job_acl = p.get("JobACL")
    return {"Name": p["Name"], "Description": p.get("Description", ""),
            "JobACL": dict(job_acl) if isinstance(job_acl, dict) else None, "Hash": p.get("Hash", ""),
            "CreateIndex": p.get("CreateIndex", 0), "ModifyIndex": p.get("ModifyIndex", 0)}


def policy_out(p: dict[str, Any], parsed: bool = True) -> dict[str, Any]:
    """Nomad's ``ACLPolicy``; a read (*parsed*) carries ``RulesJSON``, the rules as Nomad parses them,
    which the stored policy (an event's payload) has as null."""
    rules = p.get("Rules", "")
    return {**policy_stub(p), "Rules": rules, "RulesJSON": rules_json(rules) if parsed else None}


def _hash(*parts: Any) -> str:
    """Nomad's SetHash: a digest of the fields that define the object (base64, as Go's []byte)."""
    digest = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=32).digest()
    return base64.b64encode(digest).decode()


def _enabled(api: Api) -> None:
    if not api.ctx.acl_enabled:
        raise CodedError(400, ACL_DISABLED)


def require_operator(req: Request, api: Api, capability: str) -> None:
    """403 unless the token may do the operator operation *capability* (Nomad 2.0's
    AllowOperatorOperation: a management token, operator write, or the operator capability)."""
    if api.ctx.acl_enabled and not resolve(req, api)[1].allow_operator(capability):
        raise CodedError(403, PERMISSION_DENIED)


def _management(req: Request, api: Api) -> dict[str, Any]:
    token, acl = resolve(req, api)
    if not acl.management or token is None:
        raise CodedError(403, PERMISSION_DENIED)
    return token


def _body(req: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = read_body(req)
    if not raw.strip():
        if optional:
            return {}
        raise CodedError(400, "Request body is empty")
    try:
        value = decode_json(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Request body is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise CodedError(400, f"Request body must be a JSON object, got {type(value).__name__}")
    return value


def _write(api: Api, op: str, **args: Any) -> int:
    """Propose *op*; its Raft index, or the store's refusal as Nomad's code and text."""
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        raise CodedError(int(result.get("code") or 400 if "error" in result else 500),
                         str(result.get("error") or "refused by the state store"))
    return index


def _index_only(index: int) -> Response:
    return Response(200, b"", "text/plain; charset=utf-8", (("X-Nomad-Index", str(index)),))


def _read_token(api: Api, accessor: str) -> dict[str, Any] | None:
    """A linearizable read of one token (after a write, so the answer has it)."""
    from actors.raft.peer import RaftError, Read

    fut = api.env.make_future()
    api.env.lookup("raft").tell(Read(query=lambda st: (
        token_view(st, st.tables["acl_tokens"][accessor]) if accessor in st.tables["acl_tokens"] else None),
        reply=fut))
    try:
        return fut.get(timeout=api.ask_timeout_s)[1]
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "state store did not answer in time") from None


# ---------------------------------------------------------------- bootstrap


@route("/v1/acl/bootstrap")
def acl_bootstrap(req: Request, api: Api) -> Any:
    """The first management token, once (Nomad ``ACL.Bootstrap``); open, as Nomad's is."""
    require(req, "PUT", "POST")
    _enabled(api)
    secret = _body(req, optional=True).get("BootstrapSecret") or new_id()
    reset_index = file_reset_index(api.ctx.acl_bootstrap_reset_file)
    try:
        if not isinstance(secret, str) or str(uuid.UUID(secret)) != secret.lower():
            raise ValueError(secret)
    except ValueError:
        # Nomad's ACL.Bootstrap refuses a done bootstrap (with its reset index) before it looks at the
        # operator's secret: read that first (this server's state; the write would check it again).
        try:
            refusal = _stale_read(api, lambda st: bootstrap_refusal(st.tables, reset_index))[1]
        except CodedError:
            refusal = ""
        raise CodedError(400, refusal or "invalid acl token") from None
    token = {"AccessorID": new_id(), "SecretID": secret, "Name": "Bootstrap Token",
             "Type": "management", "Policies": [], "Global": True, "CreateTime": wall_time()}
    token["Hash"] = _hash(token["Name"], token["Type"], token["Policies"], token["Global"])
    index = _write(api, "acl_bootstrap", token=token, reset_index=reset_index)
    log.info("ACL bootstrap done: management token accessor=%s", token["AccessorID"])
    return Answer(token_out({**token, "CreateIndex": index, "ModifyIndex": index}),
                  (("X-Nomad-Index", str(index)),))


def file_reset_index(path: str) -> int:
    """The index in Nomad's ``acl-bootstrap-reset`` file (``fileBootstrapResetIndex``); 0: none.

    An operator who lost every management token writes the reset index a
    refused bootstrap named into ``<data_dir>/server/acl-bootstrap-reset``
    and may bootstrap once more.  Nomad reads the leader's file; here the
    server whose HTTP API takes the request reads its own, then proposes.
    """
    if not path:
        return 0
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(64)
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.error("failed to read the ACL bootstrap reset file %s: %s", path, e)
        return 0
    match = re.match(r"\s*(\d+)", text)
    if match is None:
        log.error("failed to parse the ACL bootstrap reset file %s: want the reset index", path)
        return 0
    log.warning("ACL bootstrap reset file parsed: path=%s reset_index=%s", path, match[1])
    return int(match[1])


# ---------------------------------------------------------------- policies


@route("/v1/acl/policies")
def acl_policies(req: Request, api: Api) -> Any:
    """Every policy for a management token; otherwise those the token holds (Nomad ``ListPolicies``)."""
    require(req, "GET")
    _enabled(api)
    token, acl = resolve(req, api)
    prefix = (req.query.get("prefix") or [""])[0]
    return state_query(req, api, ("acl_policies",), lambda st: [
        policy_stub(p) for n, p in sorted(st.tables["acl_policies"].items())
        if n.startswith(prefix) and (acl.management or n in _holds(st, token))])


def _holds(st: Any, token: dict[str, Any] | None) -> list[str]:
    """The policies *token* holds, its roles' included (the anonymous token: ``anonymous``)."""
    return token_policy_names(st, token) if token is not None else [ANONYMOUS_POLICY]


@route("/v1/acl/policy/")
def acl_policy(req: Request, api: Api) -> Any:
    _enabled(api)
    name = req.path[len("/v1/acl/policy/"):]
    if not name:
        raise CodedError(400, "Missing policy name")
    if req.method in ("PUT", "POST"):
        return _policy_write(req, api, name)
    if req.method == "DELETE":
        _management(req, api)
        return _index_only(_write(api, "acl_policy_delete", names=[name]))
    require(req, "GET")
    token, acl = resolve(req, api)
    denied = object()
    answer = state_query(req, api, ("acl_policies", "acl_roles"), lambda st: (
        denied if not acl.management and name != ANONYMOUS_POLICY and name not in _holds(st, token)
        else policy_out(st.tables["acl_policies"][name]) if name in st.tables["acl_policies"] else None))
    if answer.value is denied:
        raise CodedError(403, PERMISSION_DENIED)
    if answer.value is None:
        raise CodedError(404, "ACL policy not found", answer.headers)
    return answer


def _policy_write(req: Request, api: Api, name: str) -> Any:
    """``POST /v1/acl/policy/<name>``: ``{"Name", "Description", "Rules", "JobACL"}``, checked here
    as Nomad's ``ACLPolicy.Validate`` (every problem, Go's multierror text)."""
    _management(req, api)
    body = _body(req)
    if body.get("Name", name) != name:
        raise CodedError(400, "Policy name does not match request path")
    description, rules = body.get("Description", ""), body.get("Rules", "")
    if not isinstance(description, str) or not isinstance(rules, str):
        raise CodedError(400, "Description and Rules must be strings")
    job_acl = body.get("JobACL")
    if job_acl is not None:
        if not isinstance(job_acl, dict) or not all(isinstance(job_acl.get(k, ""), str)
                                                    for k in JOB_ACL_FIELDS):
            raise CodedError(400, "JobACL must be null or an object of strings "
                                  "(Namespace, JobID, Group, Task)")
        unknown = sorted(set(job_acl) - set(JOB_ACL_FIELDS))
        if unknown:
            raise CodedError(400, f"JobACL: unknown fields {unknown}")
        job_acl = {k: job_acl.get(k, "") for k in JOB_ACL_FIELDS}
    problems = []
    if not VALID_POLICY_NAME.fullmatch(name):
        problems.append(f"invalid name '{name}'")
    try:
        parse_policy(rules)
    except PolicyError as e:
        problems.append(f"failed to parse rules: {e}")
    if len(description) > MAX_POLICY_DESCRIPTION_LENGTH:
        problems.append(f"description longer than {MAX_POLICY_DESCRIPTION_LENGTH}")
    if job_acl is not None:
        if job_acl["JobID"] and not job_acl["Namespace"]:
            problems.append("namespace must be set to set job ID")
        if job_acl["Group"] and not job_acl["JobID"]:
            problems.append("job ID must be set to set group")
        if job_acl["Task"] and not job_acl["Group"]:
            problems.append("group must be set to set task")
    if problems:
        raise CodedError(400, f"policy 0 invalid: {multi_error(problems)}")
    policy = {"Name": name, "Description": description, "Rules": rules, "JobACL": job_acl,
              "Hash": _hash(name, description, rules, *(job_acl.values() if job_acl else ()))}
    return _index_only(_write(api, "acl_policy_upsert", policies=[policy]))


# ---------------------------------------------------------------- tokens


@route("/v1/acl/tokens")
def acl_tokens(req: Request, api: Api) -> Any:
    require(req, "GET")
    _enabled(api)
    _management(req, api)
    prefix = (req.query.get("prefix") or [""])[0]
    # Nomad's ListTokens: in creation order (its "create" index) without a prefix, in accessor order
    # with one, each with its paginator's tokens; ?filter=, ?per_page=, ?next_token= (and ?reverse=
    # without a prefix).
    answer = state_query(req, api, ("acl_tokens", "acl_roles"), lambda st: [  # roles: their names show
        token_stub(token_view(st, t)) for a, t in sorted(st.tables["acl_tokens"].items())
        if a.startswith(prefix)])
    if not prefix:
        answer = Answer(sorted(answer.value, key=lambda t: (t["CreateIndex"], t["AccessorID"]),
                               reverse=query_flag(req, "reverse")), answer.headers)
    return apply_list_options(req, answer, id_key="AccessorID", created=not prefix)


@route("/v1/acl/token")
def acl_token_create(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    _enabled(api)
    return _token_write(req, api, "")


@route("/v1/acl/token/")
def acl_token(req: Request, api: Api) -> Any:
    _enabled(api)
    accessor = req.path[len("/v1/acl/token/"):]
    if accessor == "self":
        require(req, "GET")
        token, _ = resolve(req, api)
        if token is None:  # Nomad's ACL.WhoAmI names the AnonymousACLToken a request without a secret has
            return {**token_out(ANONYMOUS_TOKEN), "Hash": None, "CreateTime": GO_ZERO_TIME}
        return token_out(token)
    if not accessor:
        raise CodedError(400, "Missing token accessor")
    if req.method in ("PUT", "POST"):
        return _token_write(req, api, accessor)
    if req.method == "DELETE":
        _management(req, api)
        return _index_only(_write(api, "acl_token_delete", accessor_ids=[accessor]))
    require(req, "GET")
    token, acl = resolve(req, api)
    if not acl.management and (token is None or token["AccessorID"] != accessor):
        raise CodedError(403, PERMISSION_DENIED)
    answer = state_query(req, api, ("acl_tokens", "acl_roles"), lambda st: (
        token_out(token_view(st, st.tables["acl_tokens"][accessor])) if accessor in st.tables["acl_tokens"]
        else None))
    if answer.value is None:
        raise CodedError(404, TOKEN_NOT_FOUND, answer.headers)
    return answer


def _token_fields(body: dict[str, Any]) -> tuple[str, str, list[str], list[dict[str, str]], bool, list[str]]:
    """The token's fields, and what Nomad's ``ACLToken.Validate`` finds wrong with them but expiry
    (:func:`_token_expiry`); a field of the wrong JSON type is refused at once."""
    name, kind, policies, roles, is_global = (body.get("Name", ""), body.get("Type", ""),
                                              body.get("Policies") or [], body.get("Roles") or [],
                                              body.get("Global", False))
    problem = ""
    if not isinstance(name, str):
        problem = "Name must be a string"
    elif not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        problem = "Policies must be a list of policy names"
    elif not isinstance(roles, list) or not all(
            isinstance(r, dict) and isinstance(r.get("ID") or "", str)
            and isinstance(r.get("Name") or "", str)
            for r in roles):
        problem = "Roles must be a list of role links, like {\"ID\": \"...\"} or {\"Name\": \"...\"}"
    elif not isinstance(is_global, bool):
        problem = "Global must be a boolean"
    if problem:  # what Go's JSON decoding would refuse
        raise CodedError(400, problem)
    problems = []
    if len(name) > MAX_TOKEN_NAME_LENGTH:
        problems.append("token name too long")
    if kind == "client" and not policies and not roles:
        problems.append("client token missing policies or roles")
    elif kind == "management" and (policies or roles):
        problems.append("management token cannot be associated with policies or roles")
    elif kind not in ("client", "management"):
        problems.append("token type must be client or management")
    links = [{"ID": r.get("ID") or "", "Name": "" if r.get("ID") else r.get("Name") or ""} for r in roles]
    return name, kind, list(policies), links, is_global, problems  # as given (Nomad keeps their order)


def _invalid(problems: list[str]) -> None:
    """Nomad's upsertTokens refusal: "token 0 invalid: " and Validate's multierror."""
    if problems:
        raise CodedError(400, f"token 0 invalid: {multi_error(problems)}")


def _expiry_fields(body: dict[str, Any]) -> tuple[int, float | None]:
    """(ExpirationTTL in ns, ExpirationTime in epoch seconds or None) as Nomad's ACLToken decodes them:
    the TTL a Go duration string ("" for none) or nanoseconds, the time RFC 3339."""
    raw = body.get("ExpirationTTL")
    try:
        if raw is None or raw == "":
            ttl = 0
        elif isinstance(raw, str):
            ttl = parse_go_duration(raw)
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            ttl = int(raw)
        else:
            raise ValueError("ExpirationTTL must be a duration string, like \"1h\", or nanoseconds")
        expires = _epoch(body.get("ExpirationTime"))
    except ValueError as e:
        raise CodedError(400, str(e)) from None
    return ttl, expires


def _token_expiry(api: Api, ttl_ns: int, expires: float | None, create_us: int,
                  problems: list[str]) -> float | None:
    """A new token's ExpirationTime, checked as Nomad's ``Canonicalize`` and ``Validate`` do on creation.

    Without an ExpirationTime, a TTL sets it to CreateTime + TTL; the
    time until expiry must lie within acl.token_min/max_expiration_ttl.
    What is wrong is added to *problems*.
    """
    if ttl_ns < 0:
        problems.append(f"token expiration TTL '{go_duration(ttl_ns)}' should not be negative")
    if expires is None and ttl_ns:
        exp_us, expires_in_ns = create_us + ttl_ns // 1000, ttl_ns
    elif expires is not None:
        exp_us = round(expires * 1e6)
        expires_in_ns = (exp_us - create_us) * 1000
    else:
        return None
    min_ns = round(api.ctx.acl_token_min_expiration_ttl_s * 1e9)
    max_ns = round(api.ctx.acl_token_max_expiration_ttl_s * 1e9)
    if create_us > exp_us:
        problems.append("expiration time cannot be before create time")
    if expires_in_ns > max_ns:
        problems.append(f"expiration time cannot be more than {go_duration(max_ns)} in the future "
                        f"(was {go_duration(expires_in_ns)})")
    elif expires_in_ns < min_ns:
        problems.append(f"expiration time cannot be less than {go_duration(min_ns)} in the future "
                        f"(was {go_duration(expires_in_ns)})")
    return exp_us / 1e6


def _update_problems(old: dict[str, Any], is_global: bool, ttl_ns: int, expires: float | None) -> list[str]:
    """What Nomad's ACLToken.Validate finds wrong with an update of *old* (in its order, after the
    name and type): the store checks them again when it applies the write."""
    problems = []
    if bool(old.get("Global")) != is_global:
        problems.append("cannot toggle global mode")
    if int(old.get("ExpirationTTL") or 0) != ttl_ns:
        problems.append("cannot update expiration TTL")
    if expires is not None and not same_time(expires, old.get("ExpirationTime")):
        problems.append("cannot update expiration time")
    return problems


def _is_uuid(text: str) -> bool:
    """Nomad's helper.IsUUID: 36 characters, hex groups of 8-4-4-4-12."""
    return re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                        text) is not None


def _token_write(req: Request, api: Api, accessor: str) -> Any:
    """Create (no accessor) or update a token; answers it with its secret (Nomad ``UpsertTokens``)."""
    _management(req, api)
    body = _body(req)
    given = body.get("AccessorID") or ""
    if accessor and given and given != accessor:
        raise CodedError(400, "Token Accessor ID does not match request path")
    accessor = accessor or given
    name, kind, policies, roles, is_global, problems = _token_fields(body)
    ttl_ns, expires = _expiry_fields(body)
    token: dict[str, Any] = {"Name": name, "Type": kind, "Policies": policies, "Roles": roles,
                             "Global": is_global,
                             "Hash": _hash(name, kind, policies, is_global, *([roles] if roles else []))}
    if ttl_ns:
        token["ExpirationTTL"] = ttl_ns
    secret = body.get("SecretID") or ""
    existing = _read_token(api, accessor) if accessor else None
    if accessor and existing is None:
        # Nomad's upsertTokens: a client token whose accessor and secret are both UUIDs is uploaded (made
        # with those IDs, e.g. moved from another cluster); anything else names a token that is not here.
        if not (_is_uuid(accessor) and isinstance(secret, str) and _is_uuid(secret) and kind != "management"):
            raise CodedError(400, f"cannot find token {accessor}")
        token["SecretID"] = secret
        create_us = round(wall_time() * 1e6)
        token.update(AccessorID=accessor, CreateTime=create_us / 1e6)
        expiration = _token_expiry(api, ttl_ns, expires, create_us, problems)
        _invalid(problems)
        if expiration is not None:
            token["ExpirationTime"] = expiration
    elif existing is not None:  # an update: Nomad's Validate against the existing token
        _invalid(problems + _update_problems(existing, is_global, ttl_ns, expires))
        token["AccessorID"] = accessor
        if expires is not None:
            token["ExpirationTime"] = expires
    else:
        create_us = round(wall_time() * 1e6)
        token.update(AccessorID=new_id(), SecretID=new_id(), CreateTime=create_us / 1e6)
        expiration = _token_expiry(api, ttl_ns, expires, create_us, problems)
        _invalid(problems)
        if expiration is not None:
            token["ExpirationTime"] = expiration
    # Nomad's ACL.UpsertTokens checks the roles a token links, never its policies: one not written yet
    # (or deleted since) grants nothing.
    index = _write(api, "acl_token_upsert", tokens=[token], allow_missing_policies=True)
    stored = _read_token(api, token["AccessorID"])
    if stored is None:  # deleted between the write and the read
        raise CodedError(404, TOKEN_NOT_FOUND)
    return Answer(token_out(stored), (("X-Nomad-Index", str(index)),))


# ---------------------------------------------------------------- roles (Nomad 1.4)


@route("/v1/acl/roles")
def acl_roles(req: Request, api: Api) -> Any:
    """Every role for a management token; otherwise the token's own (Nomad ``ListRoles``), by ID prefix."""
    require(req, "GET")
    _enabled(api)
    token, acl = resolve(req, api)
    mine = {r["ID"] for r in (token or {}).get("Roles") or []}
    prefix = (req.query.get("prefix") or [""])[0]
    return state_query(req, api, ("acl_roles",), lambda st: [
        role_out(r) for i, r in sorted(st.tables["acl_roles"].items(), key=lambda kv: kv[0])
        if i.startswith(prefix) and (acl.management or i in mine)])


@route("/v1/acl/role")
def acl_role_create(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    _enabled(api)
    return _role_write(req, api, "")


@route("/v1/acl/role/")
def acl_role(req: Request, api: Api) -> Any:
    """``/v1/acl/role/<id>`` (read, update, delete) and ``/v1/acl/role/name/<name>`` (read)."""
    _enabled(api)
    parts = req.path[len("/v1/acl/role/"):].split("/")
    if len(parts) == 2:
        require(req, "GET")
        if parts[0] != "name":
            raise CodedError(400, "invalid URI")
        if not parts[1]:
            raise CodedError(400, "missing ACL role name")
        return _role_read(req, api, name=parts[1])
    if len(parts) != 1:
        raise CodedError(400, "invalid URI")
    role_id = parts[0]
    if not role_id:
        raise CodedError(400, "missing ACL role ID")
    if req.method in ("PUT", "POST"):
        return _role_write(req, api, role_id)
    if req.method == "DELETE":
        _management(req, api)
        return _index_only(_write(api, "acl_role_delete", ids=[role_id]))
    require(req, "GET")
    return _role_read(req, api, role_id=role_id)


def _role_read(req: Request, api: Api, *, role_id: str = "", name: str = "") -> Any:
    """One role, for a management token or a token that has it (Nomad ``GetRoleByID`` / ``ByName``)."""
    token, acl = resolve(req, api)
    if not acl.management:
        links = (token or {}).get("Roles") or []  # current names: token_view
        if not any((link["ID"] == role_id) if role_id else (link["Name"] == name) for link in links):
            raise CodedError(403, PERMISSION_DENIED)

    def query(st: Any) -> Any:
        role = st.tables["acl_roles"].get(role_id) if role_id else role_by_name(st, name)
        return role_out(role) if role is not None else None

    answer = state_query(req, api, ("acl_roles",), query)
    if answer.value is None:
        raise CodedError(404, "ACL role not found", answer.headers)
    # Nomad answers a found role with its own ModifyIndex as X-Nomad-Index.
    meta = tuple((k, str(answer.value["ModifyIndex"]) if k == "X-Nomad-Index" else v)
                 for k, v in answer.headers)
    return Answer(answer.value, meta)


def _role_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLRole.Validate`` (errors as its RPC words them: "role 0 invalid: ...")."""
    name, description = body.get("Name", ""), body.get("Description", "")
    policies = body.get("Policies") or []
    if not isinstance(name, str) or not isinstance(description, str):
        raise CodedError(400, "Name and Description must be strings")
    if not isinstance(policies, list) or not all(
            isinstance(p, dict) and isinstance(p.get("Name"), str) for p in policies):
        raise CodedError(400, 'Policies must be a list of policy links, like {"Name": "readonly"}')
    problems = []
    if not VALID_ROLE_NAME.fullmatch(name):
        problems.append(f"invalid name '{name}'")
    if len(description) > MAX_ROLE_DESCRIPTION_LENGTH:
        problems.append(f"description longer than {MAX_ROLE_DESCRIPTION_LENGTH}")
    if not policies:
        problems.append("at least one policy should be specified")
    if problems:
        raise CodedError(400, f"role 0 invalid: {'; '.join(problems)}")
    names = list(dict.fromkeys(p["Name"] for p in policies))  # deduplicated, in order (Nomad UpsertRoles)
    return {"Name": name, "Description": description, "Policies": [{"Name": n} for n in names],
            "Hash": _hash(name, description, names)}


def _role_write(req: Request, api: Api, role_id: str) -> Any:
    """Create (no ID) or update a role; answers it as stored (Nomad ``UpsertRoles``)."""
    _management(req, api)
    body = _body(req)
    given = body.get("ID") or ""
    if not isinstance(given, str):
        raise CodedError(400, "ID must be a string")
    if role_id and given != role_id:
        raise CodedError(400, "ACL role ID does not match request path")
    role = _role_fields(body)
    created = [] if given else [new_id()]  # the leader's edge makes a new role's ID, never the apply
    role["ID"] = given or created[0]
    index = _write(api, "acl_role_upsert", roles=[role], created=created)
    stored = _read_role(api, role["ID"])
    if stored is None:  # deleted between the write and the read
        raise CodedError(404, "ACL role not found")
    return Answer(stored, (("X-Nomad-Index", str(index)),))


def _read_role(api: Api, role_id: str) -> dict[str, Any] | None:
    """A linearizable read of one role (after a write, so the answer has it)."""
    from actors.raft.peer import RaftError, Read

    fut = api.env.make_future()
    api.env.lookup("raft").tell(Read(query=lambda st: (
        role_out(st.tables["acl_roles"][role_id]) if role_id in st.tables["acl_roles"] else None), reply=fut))
    try:
        return fut.get(timeout=api.ask_timeout_s)[1]
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "state store did not answer in time") from None
