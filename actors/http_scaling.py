"""Scaling policies over HTTP, as Nomad's ``command/agent/scaling_endpoint.go``.

* ``GET /v1/scaling/policies[?job=&type=&namespace=&prefix=]``: Nomad's
  ``ScalingPolicyListStub`` list (ID, Enabled, Type, Target, CreateIndex,
  ModifyIndex) in ID order: an ID ``prefix``, else the ``job``'s policies
  (of exactly ``type``), else the namespace's (types starting with
  ``type``); ``namespace=*`` lists every namespace's.
* ``GET /v1/scaling/policy/<id>``: the whole ``ScalingPolicy`` (404
  ``policy not found``).

Any other method is 405.  Reads are linearizable unless ``?stale`` and
block with ``?index=`` on the scaling policy table.  With ACLs (checked
here, as Nomad's Scaling endpoint does), listing takes
``list-scaling-policies``, or ``list-jobs`` and ``read-job``, in the
namespace, and reading a policy ``read-scaling-policy``, or ``list-jobs``
and ``read-job``, in its namespace; others get 403 Permission denied.
``namespace=*`` lists only the namespaces the token may list (none: ``[]``).
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

from actors.acl import PERMISSION_DENIED
from actors.http_api import Answer, Api, CodedError, Request, route, state_query
from actors.state import scaling


def _param(req: Request, name: str) -> str:
    return (req.query.get(name) or [""])[0]


def _get_only(req: Request) -> None:
    if req.method != "GET":
        raise CodedError(405, "Invalid method")  # Nomad's ErrInvalidMethod


def _acl(req: Request, api: Api) -> Any:
    """The request's ACL when ACLs are on (None: they are off)."""
    if not api.ctx.acl_enabled:
        return None
    from actors.http_acl import resolve  # http_acl imports http_api, which imports us

    return resolve(req, api)[1]


@route("/v1/scaling/policies")
def scaling_policies(req: Request, api: Api) -> Any:
    _get_only(req)
    ns = _param(req, "namespace") or "default"
    job, type_, prefix = _param(req, "job"), _param(req, "type"), _param(req, "prefix")
    acl = _acl(req, api)
    if acl is not None and ns != "*" and not acl.allow_scaling(ns, "list-scaling-policies"):
        raise CodedError(403, PERMISSION_DENIED)
    answer = state_query(req, api, (scaling.TABLE,), lambda st: scaling.listed(
        st.tables, namespace=ns, job=job, type_=type_, prefix=prefix))
    if acl is not None and ns == "*":  # Nomad's listAllNamespaces: the namespaces the token may list
        allowed: dict[str, bool] = {}
        kept = [p for p in answer.value if allowed.setdefault(
            p["Target"].get("Namespace", "default"),
            acl.allow_scaling(p["Target"].get("Namespace", "default"), "list-scaling-policies"))]
        answer = Answer(kept, answer.headers)
    return answer


@route("/v1/scaling/policy/")
def scaling_policy(req: Request, api: Api) -> Any:
    _get_only(req)
    pid = urllib.parse.unquote(req.path[len("/v1/scaling/policy/"):])
    ns = _param(req, "namespace") or "default"
    acl = _acl(req, api)
    if acl is not None and ns != "*" and not acl.allow_scaling(ns, "read-scaling-policy"):
        raise CodedError(403, PERMISSION_DENIED)

    def query(st: Any) -> Any:
        p = st.tables[scaling.TABLE].get(pid)
        if p is None or (ns != "*" and p["Target"].get("Namespace") != ns):
            return None
        return copy.deepcopy(p)

    answer = state_query(req, api, (scaling.TABLE,), query)
    if answer.value is not None and acl is not None and ns == "*" and not acl.allow_scaling(
            answer.value["Target"].get("Namespace", "default"), "read-scaling-policy"):
        raise CodedError(403, PERMISSION_DENIED)  # namespace=*: the policy's own namespace decides
    if answer.value is None:
        raise CodedError(404, "policy not found", answer.headers)
    return answer
