"""``/v1/namespaces`` and ``/v1/namespace[/<name>]``: Nomad's namespace endpoints.

* ``GET /v1/namespaces[?prefix=]``: every namespace, ``default`` included,
  sorted by name (with ACLs: those the token may use, as Nomad's
  ListNamespaces keeps).
* ``PUT|POST /v1/namespace`` and ``/v1/namespace/<name>`` with a
  ``Namespace`` body create or update it (the name in the path must be the
  body's: ``Namespace name does not match request path``).
* ``GET /v1/namespace/<name>``: the namespace (404 ``Namespace not found``).
* ``DELETE /v1/namespace/<name>``: refused for ``default`` and while the
  namespace holds non-terminal jobs or allocations or any variable, in
  Nomad's words (actors.state.namespaces).

Reads are linearizable unless ``?stale`` and block with ``?index=``; the
namespaces table's index is the ``X-Nomad-Index``.  Writes need a
management token when ACLs are on (actors.acl), as Nomad's.  Errors from
the write are Nomad's 500s, as its RPC errors reach HTTP.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from actors.acl import PERMISSION_DENIED
from actors.http_api import Answer, Api, CodedError, Request, json_body, propose, require, route, state_query
from actors.state import namespaces as ns_state
from actors.state.store import command

# Nomad's api.Namespace keys, in its order (structs.Namespace's JSON), with the values it answers for
# what this agent does not keep (Vault and Consul configuration, extra workload identity claims).
_FIELDS = ("Name", "Description", "Quota", "Capabilities", "NodePoolConfiguration", "VaultConfiguration",
           "ConsulConfiguration", "Meta", "Hash", "CreateIndex", "ModifyIndex", "RequiredExtraClaims",
           "OptionalExtraClaims")
_ABSENT = {"VaultConfiguration": None, "ConsulConfiguration": None, "Hash": None, "RequiredExtraClaims": None,
           "OptionalExtraClaims": None}


def namespace_out(ns: dict[str, Any]) -> dict[str, Any]:
    """A copy of the store's record, as Nomad's JSON has it."""
    caps, pools = ns.get("Capabilities"), ns.get("NodePoolConfiguration")
    out = {**_ABSENT, **ns, "Meta": dict(ns["Meta"]) if ns.get("Meta") else None,
           "Capabilities": {k: list(v) if v is not None else None for k, v in caps.items()} if caps else None,
           "NodePoolConfiguration": {k: list(v) if isinstance(v, list) else v for k, v in pools.items()}
           if pools else None}
    return {k: out.get(k) for k in _FIELDS}


def _acl(req: Request, api: Api) -> Any:
    """The request's ACL when ACLs are on (None: they are off)."""
    if not api.ctx.acl_enabled:
        return None
    from actors.http_acl import resolve  # http_acl imports http_api, which imports us

    return resolve(req, api)[1]


def _allowed(acl: Any, name: str) -> bool:
    """Nomad's AllowNamespace: any capability in it but deny."""
    if acl is None or acl.management:
        return True
    caps = acl.namespace_caps(name)
    return bool(caps) and "deny" not in caps


def _write(api: Api, op: str, **args: Any) -> Answer:
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict) or not result.get("ok"):
        raise CodedError(500, str(result.get("error") if isinstance(result, dict) else result))
    return Answer(None, (("X-Nomad-Index", str(index)),))


def _upsert(req: Request, api: Api, path_name: str) -> Answer:
    body = json_body(req, "Request body is not valid JSON")
    if not isinstance(body, dict):
        raise CodedError(400, "Request body must be a namespace object")
    if path_name and body.get("Name") != path_name:
        raise CodedError(400, "Namespace name does not match request path")
    try:
        ns_state.validated(body)
    except ValueError as e:  # Nomad's Namespace.UpsertNamespaces validates before the write
        raise CodedError(500, f'Invalid namespace "{body.get("Name") or ""}": {e}') from None
    return _write(api, "namespace_upsert", namespaces=[body])


def _region(api: Api) -> str:
    from actors.http_api import _local_region

    return _local_region(api, None)


# What each other region is asked before a namespace is deleted (Nomad's namespaceTerminalJobsInRegion,
# namespaceTerminalAllocsInRegion and namespaceNoAssociatedVarsInRegion), and whether an item holds it.
_REMOTE_CHECKS = (("/v1/jobs", lambda j: j.get("Status") != "dead"),
                  ("/v1/allocations", lambda a: a.get("ClientStatus") not in ("complete", "failed", "lost")),
                  ("/v1/vars", lambda v: True))


def _remote_holdings(req: Request, api: Api, name: str,
                     region: str) -> dict[str, dict[str, tuple[bool, bool, bool]]]:
    """{name: {region: (jobs, allocations, variables)}} of every other known region, asked with the
    request's token as Nomad's DeleteNamespaces asks each region it knows (an unanswered or refused
    question refuses the delete with its error, as Nomad's)."""
    from actors.http_api import ask_region, known_regions

    found = {}
    for other in known_regions(api):
        if other != region:
            held = []
            for path, holds in _REMOTE_CHECKS:
                items = ask_region(req, api, other, path, {"namespace": [name]}) or ()
                held.append(any(holds(item) for item in items))
            found[other] = (held[0], held[1], held[2])
    return {name: found}


@route("/v1/namespaces")
def namespaces_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = (req.query.get("prefix") or [""])[0]
    answer = state_query(req, api, (ns_state.TABLE,),
                         lambda st: [namespace_out(n) for n in ns_state.listed(st.tables, prefix)])
    acl = _acl(req, api)
    if acl is not None:
        return Answer([n for n in answer.value if _allowed(acl, n["Name"])], answer.headers)
    return answer


@route("/v1/namespace")
def namespace_create(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    return _upsert(req, api, "")


@route("/v1/namespace/")
def namespace_request(req: Request, api: Api) -> Any:
    name = urllib.parse.unquote(req.path[len("/v1/namespace/"):])
    if not name:
        raise CodedError(400, "Missing Namespace Name")
    if req.method in ("PUT", "POST"):
        return _upsert(req, api, name)
    if req.method == "DELETE":
        region = _region(api)
        remote = _remote_holdings(req, api, name, region)
        refused = state_query(req, api, (ns_state.TABLE, "jobs", "allocs", "variables"),
                              lambda st: ns_state.delete_refusal(st.tables, [name], region, remote)).value
        if refused:
            raise CodedError(500, refused)
        return _write(api, "namespace_delete", names=[name])
    require(req, "GET")
    if not _allowed(_acl(req, api), name):  # Nomad's GetNamespace: checked before the lookup
        raise CodedError(403, PERMISSION_DENIED)

    def read(st: Any) -> Any:
        found = ns_state.get(st.tables, name)
        return namespace_out(found) if found else None

    answer = state_query(req, api, (ns_state.TABLE,), read)
    if answer.value is None:
        raise CodedError(404, "Namespace not found", answer.headers)
    return answer
