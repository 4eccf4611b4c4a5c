"""Scaling policies over HTTP, as Nomad's ``command/agent/scaling_endpoint.go``.

* ``GET /v1/scaling/policies[?job=&type=&namespace=&prefix=]``: Nomad's
  ``ScalingPolicyListStub`` list (ID, Enabled, Type, Target, CreateIndex,
  ModifyIndex) in ID order: an ID ``prefix``, else the ``job``'s policies
  (of exactly ``type``), else the namespace's (types starting with
  ``type``); ``namespace=*`` lists every namespace's.
* ``GET /v1/scaling/policy/<id>``: the whole ``ScalingPolicy`` (404
  ``policy not found``).

Any other method is 405.  Reads are linearizable unless ``?stale`` and
block with ``?index=`` on the scaling policy table.  With ACLs, listing
takes ``list-scaling-policies`` (or ``list-jobs``) and reading a policy
``read-scaling-policy`` (or ``read-job``) in the namespace (actors.acl).
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

from actors.http_api import Api, CodedError, Request, route, state_query
from actors.state import scaling


def _param(req: Request, name: str) -> str:
    return (req.query.get(name) or [""])[0]


def _get_only(req: Request) -> None:
    if req.method != "GET":
        raise CodedError(405, "Invalid method")  # Nomad's ErrInvalidMethod


@route("/v1/scaling/policies")
def scaling_policies(req: Request, api: Api) -> Any:
    _get_only(req)
    ns = _param(req, "namespace") or "default"
    job, type_, prefix = _param(req, "job"), _param(req, "type"), _param(req, "prefix")
    return state_query(req, api, (scaling.TABLE,), lambda st: scaling.listed(
        st.tables, namespace=ns, job=job, type_=type_, prefix=prefix))


@route("/v1/scaling/policy/")
def scaling_policy(req: Request, api: Api) -> Any:
    _get_only(req)
    pid = urllib.parse.unquote(req.path[len("/v1/scaling/policy/"):])
    ns = _param(req, "namespace") or "default"

    def query(st: Any) -> Any:
        p = st.tables[scaling.TABLE].get(pid)
        if p is None or (ns != "*" and p["Target"].get("Namespace") != ns):
            return None
        return copy.deepcopy(p)

    answer = state_query(req, api, (scaling.TABLE,), query)
    if answer.value is None:
        raise CodedError(404, "policy not found")
    return answer
