"""ACL auth methods, binding rules and ``/v1/acl/login`` (Nomad 1.5+'s SSO login with JWTs).

Routes as Nomad's ``command/agent/acl_endpoint.go`` registers them, each
checked as its RPC in ``nomad/acl_endpoint.go`` is:

* ``GET /v1/acl/auth-methods``: the methods' stubs; anyone may list them (a
  login page does).  ``PUT|POST /v1/acl/auth-method`` creates one,
  ``/v1/acl/auth-method/<name>`` reads (management), updates (what the body
  leaves empty keeps its value: Nomad's ``Merge``) or deletes it.  One method
  may be the ``Default`` (``nomad login`` without ``-method``).
* ``GET /v1/acl/binding-rules`` (management): stubs; ``PUT|POST
  /v1/acl/binding-rule`` creates one (its ID made here),
  ``/v1/acl/binding-rule/<id>`` reads, updates or deletes it.
* ``PUT|POST /v1/acl/login`` ``{"AuthMethodName", "LoginToken"}``: verifies the
  JWT against the method (:func:`actors.acl_auth.validate_jwt`; the keys of
  a ``JWKSURL`` or ``OIDCDiscoveryURL`` fetched here, at each login), maps its
  claims, binds the method's rules and creates the ACL token through Raft,
  answering it with its secret.  The token expires after the method's
  ``MaxTokenTTL`` and is global when the method's ``TokenLocality`` is.

Validation and the JWT checks live in :mod:`actors.acl_auth`; the state
machine's commands in :mod:`actors.state.acl_ops`.  ``/v1/acl/oidc/...``
(the OIDC browser flow) is answered with why it is not available.  With
ACLs disabled every one is Nomad's ``400 ACL support disabled``.
"""

from __future__ import annotations

import copy
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import gevent
import pykka

from actors.acl_auth import (
    TYPE_JWT,
    UNSUPPORTED_OIDC,
    AuthError,
    LoginError,
    bind,
    canonical_method,
    canonical_rule,
    format_token_name,
    jwk_keys,
    login_error_text,
    method_out,
    method_stub,
    rule_hash,
    rule_out,
    rule_stub,
    selector_data,
    validate_jwt,
)
from actors.http_api import INVALID_METHOD, Answer, Api, CodedError, Request, route, state_query
from actors.state.acl_ops import default_auth_method, multi_error, token_view

log = logging.getLogger("agent.http")

# A login fetches the method's keys from its identity provider (JWKSURL, or OIDCDiscoveryURL's
# document and then its jwks_uri) each time, as Nomad does; each request, all of it (connecting,
# the headers, the body however slowly it trickles in), may take this long, so a login (two
# requests at most) answers within the CLI's 15 s request timeout and well inside Nomad's 60 s
# aclLoginRequestExpiryTime.
KEY_FETCH_TIMEOUT_S = 5.0
KEY_FETCH_CHUNK_BYTES = 64 * 1024  # read at a time, the deadline checked between reads
# A key set or discovery document larger than this is refused unread (they are a few kilobytes).
MAX_KEY_DOCUMENT_BYTES = 1024 * 1024


def _acl() -> Any:
    from actors import http_acl  # http_acl imports http_api, which imports us

    return http_acl


def _enabled(api: Api) -> None:
    _acl()._enabled(api)


def _management(req: Request, api: Api) -> None:
    _acl()._management(req, api)


def _read(api: Api, query: Any) -> Any:
    """A linearizable read of the state (before a write that depends on it, and after one)."""
    from actors.raft.peer import RaftError, Read

    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        raise CodedError(500, "the state store is not running")
    fut = api.env.make_future()
    ref.tell(Read(query=query, reply=fut))
    try:
        return fut.get(timeout=api.ask_timeout_s)[1]
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "state store did not answer in time") from None


def _one_meta(answer: Answer, index: int | None) -> Answer:
    """A found object's own ModifyIndex as X-Nomad-Index (Nomad's Get* RPCs)."""
    if index is None:
        return answer
    return Answer(answer.value, tuple((k, str(index) if k == "X-Nomad-Index" else v)
                                      for k, v in answer.headers))


def _ttl_bounds(api: Api) -> tuple[int, int]:
    return (round(api.ctx.acl_token_min_expiration_ttl_s * 1e9),
            round(api.ctx.acl_token_max_expiration_ttl_s * 1e9))


# ---------------------------------------------------------------- auth methods


@route("/v1/acl/auth-methods")
def auth_methods(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    return state_query(req, api, ("acl_auth_methods",), lambda st: [
        method_stub(m) for _, m in sorted(st.tables["acl_auth_methods"].items())])


@route("/v1/acl/auth-method")
def auth_method_create(req: Request, api: Api) -> Any:
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    return _method_write(req, api, "")


@route("/v1/acl/auth-method/")
def auth_method(req: Request, api: Api) -> Any:
    _enabled(api)
    name = req.path[len("/v1/acl/auth-method/"):]
    if not name:
        raise CodedError(400, "missing ACL auth-method name")
    if req.method == "GET":
        _management(req, api)
        answer = state_query(req, api, ("acl_auth_methods",), lambda st: (
            method_out(st.tables["acl_auth_methods"][name]) if name in st.tables["acl_auth_methods"]
            else None))
        if answer.value is None:
            raise CodedError(404, "ACL auth-method not found", answer.headers)
        return _one_meta(answer, answer.value["ModifyIndex"])
    if req.method == "DELETE":
        _management(req, api)
        acl = _acl()
        return acl._index_only(acl._write(api, "acl_auth_method_delete", names=[name]))
    if req.method in ("PUT", "POST"):
        return _method_write(req, api, name)
    raise CodedError(405, INVALID_METHOD)


def _method_write(req: Request, api: Api, path_name: str) -> Any:
    """Create or update a method (Nomad ``UpsertAuthMethods``); answers it as stored."""
    acl = _acl()
    _management(req, api)
    body = acl._body(req)
    if path_name and body.get("Name") != path_name:
        raise CodedError(400, "ACL auth-method name does not match request path")
    name = body.get("Name") if isinstance(body.get("Name"), str) else ""
    existing, current_default = _read(api, lambda st: (
        copy.deepcopy(st.tables["acl_auth_methods"][name]) if name in st.tables["acl_auth_methods"] else None,
        (default_auth_method(st) or {}).get("Name")))
    min_ns, max_ns = _ttl_bounds(api)
    try:
        method = canonical_method(body, existing, min_ttl_ns=min_ns, max_ttl_ns=max_ns, now_s=acl.wall_time())
    except AuthError as e:
        raise CodedError(e.code, e.message) from None
    if method["Default"] and current_default and current_default != method["Name"]:
        raise CodedError(400, f"default method already exists: {current_default}")
    index = acl._write(api, "acl_auth_method_upsert", methods=[method])
    stored = _read(api, lambda st: (method_out(st.tables["acl_auth_methods"][name])
                                    if name in st.tables["acl_auth_methods"] else None))
    if stored is None:  # deleted between the write and the read
        raise CodedError(404, "ACL auth-method not found")
    return Answer(stored, (("X-Nomad-Index", str(index)),))


# ---------------------------------------------------------------- binding rules


@route("/v1/acl/binding-rules")
def binding_rules(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    _management(req, api)
    return state_query(req, api, ("acl_binding_rules",), lambda st: [
        rule_stub(r) for _, r in sorted(st.tables["acl_binding_rules"].items())])


@route("/v1/acl/binding-rule")
def binding_rule_create(req: Request, api: Api) -> Any:
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    return _rule_write(req, api, "")


@route("/v1/acl/binding-rule/")
def binding_rule(req: Request, api: Api) -> Any:
    _enabled(api)
    rule_id = req.path[len("/v1/acl/binding-rule/"):]
    if not rule_id:
        raise CodedError(400, "missing ACL binding rule ID")
    if req.method == "GET":
        _management(req, api)
        answer = state_query(req, api, ("acl_binding_rules",), lambda st: (
            rule_out(st.tables["acl_binding_rules"][rule_id]) if rule_id in st.tables["acl_binding_rules"]
            else None))
        if answer.value is None:
            raise CodedError(404, "ACL binding rule not found", answer.headers)
        return _one_meta(answer, answer.value["ModifyIndex"])
    if req.method == "DELETE":
        _management(req, api)
        acl = _acl()
        return acl._index_only(acl._write(api, "acl_binding_rule_delete", ids=[rule_id]))
    if req.method in ("PUT", "POST"):
        return _rule_write(req, api, rule_id)
    raise CodedError(405, INVALID_METHOD)


def _rule_write(req: Request, api: Api, path_id: str) -> Any:
    """Create (no ID) or update a rule (Nomad ``UpsertBindingRules``); answers it as stored."""
    acl = _acl()
    _management(req, api)
    body = acl._body(req)
    given = body.get("ID") or path_id
    if not isinstance(given, str):
        raise CodedError(400, "ID must be a string")
    if path_id and given != path_id:
        raise CodedError(400, "ACL binding rule ID does not match request path")
    existing, methods = _read(api, lambda st: (
        dict(st.tables["acl_binding_rules"][given]) if given in st.tables["acl_binding_rules"] else None,
        sorted(st.tables["acl_auth_methods"])))
    if given and existing is None:
        raise CodedError(400, f"cannot find binding rule {given}")
    try:
        rule = canonical_rule(body, existing)
    except AuthError as e:
        raise CodedError(e.code, e.message) from None
    if rule["AuthMethod"] not in methods:
        raise CodedError(400, f"ACL auth method {rule['AuthMethod']} not found")
    now = acl.wall_time()
    created = [] if given else [acl.new_id()]  # the edge makes a new rule's ID, never the apply
    rule.update(ID=given or created[0], CreateTime=existing.get("CreateTime") if existing else now,
                ModifyTime=now)
    rule["Hash"] = rule_hash(rule)
    index = acl._write(api, "acl_binding_rule_upsert", rules=[rule], created=created)
    rid = rule["ID"]
    stored = _read(api, lambda st: (rule_out(st.tables["acl_binding_rules"][rid])
                                    if rid in st.tables["acl_binding_rules"] else None))
    if stored is None:
        raise CodedError(404, "ACL binding rule not found")
    return Answer(stored, (("X-Nomad-Index", str(index)),))


# ---------------------------------------------------------------- login


def _login_state(name: str) -> Any:
    """The method, its rules (ID order), the roles by name and the policy names, copies; runs in the Raft
    actor."""
    def query(st: Any) -> Any:
        method = st.tables["acl_auth_methods"].get(name)
        if method is None:
            return None
        rules = [dict(r) for _, r in sorted(st.tables["acl_binding_rules"].items())
                 if r.get("AuthMethod") == name]
        roles = {r.get("Name", ""): i for i, r in sorted(st.tables["acl_roles"].items())}
        return copy.deepcopy(method), rules, roles, frozenset(st.tables["acl_policies"])
    return query


class _FetchDeadline(Exception):
    """The whole fetch took longer than KEY_FETCH_TIMEOUT_S."""


class _SchemeRefused(Exception):
    """A redirect to a URL Go's HTTP client would not fetch (ftp://, ...)."""

    def __init__(self, url: str, scheme: str) -> None:
        super().__init__(f'Get "{url}": unsupported protocol scheme "{scheme}"')


class _HttpRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only, as Go's client (urllib would follow ftp:// too)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        scheme = newurl.split(":", 1)[0].lower() if ":" in newurl else ""
        if scheme not in ("http", "https"):
            fp.close()
            raise _SchemeRefused(newurl, scheme)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_within(resp: Any, deadline: float, limit: int = MAX_KEY_DOCUMENT_BYTES) -> bytes:
    """The body (up to a chunk past *limit*), read a chunk at a time; _FetchDeadline once *deadline*
    (monotonic) has passed."""
    chunks, size = [], 0
    while size <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _FetchDeadline()
        sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(remaining)  # no single read may outlast the deadline either
        chunk = resp.read1(KEY_FETCH_CHUNK_BYTES)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _fetch_json(url: str, ca_pem: str, what: str) -> Any:
    """GET *url* (its TLS checked against *ca_pem* when given) and decode its JSON, all of it within
    KEY_FETCH_TIMEOUT_S; LoginError."""
    try:
        context = ssl.create_default_context(cadata=ca_pem) if ca_pem and url.startswith("https:") else None
    except (ssl.SSLError, ValueError):
        raise LoginError("could not parse CA PEM value successfully") from None
    opener = urllib.request.build_opener(_HttpRedirects, urllib.request.HTTPSHandler(context=context))
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    deadline = time.monotonic() + KEY_FETCH_TIMEOUT_S
    try:
        # The timer bounds the connection and the headers too (a greenlet in the agent); the
        # deadline checked between reads bounds the body wherever sockets are not gevent's.
        with gevent.Timeout(KEY_FETCH_TIMEOUT_S, _FetchDeadline()):
            try:
                with opener.open(req, timeout=KEY_FETCH_TIMEOUT_S) as resp:
                    body = _read_within(resp, deadline)
            except urllib.error.HTTPError as e:  # its body (what went wrong) within the deadline too
                with e:
                    detail = _read_within(e.fp, deadline, 1024)[:1024] if e.fp is not None else b""
                raise LoginError(f"{what}: {e.code} {e.reason}: {detail.decode(errors='replace').strip()}") \
                    from None
    except _FetchDeadline:
        raise LoginError(f'{what}: Get "{url}": context deadline exceeded') from None
    except _SchemeRefused as e:
        raise LoginError(f"{what}: {e}") from None
    except LoginError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise LoginError(f'{what}: Get "{url}": {getattr(e, "reason", e)}') from None
    if len(body) > MAX_KEY_DOCUMENT_BYTES:
        raise LoginError(f"{what}: the document is larger than {MAX_KEY_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise LoginError(f"{what}: not JSON: {e}") from None


def remote_keys(config: dict[str, Any]) -> list[tuple[str, Any]] | None:
    """The keys of the method's JWKSURL, else of its OIDC discovery document's jwks_uri (None: it
    has PEM keys); LoginError, worded as cap's errors are, when they cannot be had."""
    if config.get("JWTValidationPubKeys"):
        return None
    if config.get("JWKSURL"):
        try:
            return jwk_keys(_fetch_json(config["JWKSURL"], config.get("JWKSCACert") or "",
                                        "oidc: get keys failed"))
        except LoginError as e:
            raise LoginError(f"error verifying token signature: fetching keys {e}") from None
    issuer = config.get("OIDCDiscoveryURL") or ""
    ca_pem = (config.get("DiscoveryCaPem") or [""])[0]
    try:
        document = _fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration", ca_pem,
                               "failed to get the OIDC discovery document")
        if not isinstance(document, dict):
            raise LoginError("failed to decode OIDC discovery document: not a JSON object")
        if document.get("issuer") != issuer:
            raise LoginError(f'issuer did not match the returned issuer, expected "{issuer}" got '
                             f'"{document.get("issuer")}"')
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("http://", "https://")):
            raise LoginError("failed to decode OIDC discovery document: no http(s) jwks_uri")
        return jwk_keys(_fetch_json(jwks_uri, ca_pem, "oidc: get keys failed"))
    except LoginError as e:
        raise LoginError(f"unable to get validation keys from OIDC provider: {e}") from None


@route("/v1/acl/login")
def login(req: Request, api: Api) -> Any:
    """Exchange a JWT for an ACL token (Nomad ``ACL.Login``)."""
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    acl = _acl()
    body = acl._body(req)
    unknown = sorted(set(body) - {"AuthMethodName", "LoginToken"})
    if unknown:
        raise CodedError(400, f"unknown login request fields: {', '.join(unknown)}")
    name, token = body.get("AuthMethodName") or "", body.get("LoginToken") or ""
    if not isinstance(name, str) or not isinstance(token, str):
        raise CodedError(400, "AuthMethodName and LoginToken must be strings")
    problems = ((["missing auth method name"] if not name else [])
                + (["missing login token"] if not token else []))
    if problems:
        raise CodedError(400, f"invalid login request: {multi_error(problems)}")
    found = _read(api, _login_state(name))
    if found is None:
        raise CodedError(400, f'auth-method "{name}" not found')
    method, rules, roles, policies = found
    if method.get("Type") != TYPE_JWT:
        raise CodedError(400, f"unsupported auth-method type: {method.get('Type')}")
    config = method.get("Config") or {}
    now = acl.wall_time()
    try:
        claims = validate_jwt(token, config, now, remote_keys(config))
    except LoginError as e:
        raise CodedError(401, login_error_text(e)) from None
    try:
        data = selector_data(config, claims)
        management, bound_policies, bound_roles = bind(rules, config, data, roles, policies)
        if not management and not bound_policies and not bound_roles:
            raise AuthError(400, "no role or policy bindings matched")
        # Nomad names the token once something is bound
        token_name = format_token_name(method.get("TokenNameFormat", ""), TYPE_JWT, method["Name"],
                                       data["value"])
    except LoginError as e:
        raise CodedError(500, str(e)) from None
    except AuthError as e:
        raise CodedError(e.code, e.message) from None
    if config.get("VerboseLogging"):
        log.debug("ACL login via %s: claims mapped to %s; management=%s policies=%s roles=%s", method["Name"],
                  data, management, bound_policies, bound_roles)
    ttl_ns = int(method.get("MaxTokenTTL") or 0)
    create_us = round(now * 1e6)
    # Nomad creates the token through upsertTokens: ACLToken.Validate, with the server's TTL bounds as
    # they are now (they may have been lowered since the method was written)
    problems = ["token name too long"] if len(token_name) > acl.MAX_TOKEN_NAME_LENGTH else []
    acl._token_expiry(api, ttl_ns, None, create_us, problems)
    acl._invalid(problems)
    new = {"AccessorID": acl.new_id(), "SecretID": acl.new_id(), "Name": token_name,
           "Type": "management" if management else "client", "Policies": sorted(bound_policies),
           "Roles": [{"ID": r, "Name": ""} for r in bound_roles],
           "Global": method.get("TokenLocality") == "global", "CreateTime": create_us / 1e6}
    new["Hash"] = acl._hash(new["Name"], new["Type"], new["Policies"], new["Global"],
                            *([new["Roles"]] if new["Roles"] else []))
    if ttl_ns:
        new.update(ExpirationTTL=ttl_ns, ExpirationTime=(create_us + ttl_ns // 1000) / 1e6)
    index = acl._write(api, "acl_token_upsert", tokens=[new])
    accessor = new["AccessorID"]
    stored = _read(api, lambda st: (token_view(st, st.tables["acl_tokens"][accessor])
                                    if accessor in st.tables["acl_tokens"] else None))
    if stored is None:
        raise CodedError(404, "ACL token not found")
    log.info("ACL login via auth method %s: token accessor=%s", method["Name"], accessor)
    return Answer(acl.token_out(stored), (("X-Nomad-Index", str(index)),))


@route("/v1/acl/oidc/auth-url")
@route("/v1/acl/oidc/complete-auth")
def oidc(req: Request, api: Api) -> Any:
    """The OIDC browser flow: no OIDC method can exist here, so Nomad's lookup answers, or why not."""
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    body = _acl()._body(req)
    name = body.get("AuthMethodName") or ""
    found = _read(api, lambda st: (st.tables["acl_auth_methods"].get(name) or {}).get("Type"))
    if found is None:
        raise CodedError(400, f'auth-method "{name}" not found')
    raise CodedError(400, UNSUPPORTED_OIDC)
