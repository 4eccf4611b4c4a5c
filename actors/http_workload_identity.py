"""Workload identities over HTTP: the public keys, and a task's JWT taken as ``X-Nomad-Token``.

* ``GET /.well-known/jwks.json``: the servers' public signing keys as a
  JSON Web Key Set (Nomad's ``JWKSRequest``); no token needed.
* ``GET /.well-known/openid-configuration``: 404 ``OIDC Discovery endpoint
  disabled``, as Nomad answers without ``server.oidc_issuer`` (not
  configurable here).
* :func:`resolve_workload`: what :func:`actors.http_acl.resolve` calls for a
  secret shaped as a JWT (actors.workload_identity has the rules).
"""

from __future__ import annotations

import functools
from typing import Any

from actors.http_api import Answer, Api, CodedError, Request, require, route, state_query
from actors.state import root_keys
from actors.workload_identity import (
    OIDC_DISABLED,
    jwks,
    looks_like_jwt,
    workload_acl,
    workload_claims,
    workload_token,
)

__all__ = ["looks_like_jwt", "resolve_workload"]
from runtime.edge import wall_time


@route("/.well-known/jwks.json")
def jwks_request(req: Request, api: Api) -> Any:
    require(req, "GET")
    if api.env.lookup("raft") is None:
        raise CodedError(501, "the JWKS is served by servers: ask a server agent")
    answer = state_query(req, api, (root_keys.TABLE,), lambda st: jwks(st.tables))
    return Answer(answer.value, answer.headers)


@route("/.well-known/openid-configuration")
def oidc_discovery(req: Request, api: Api) -> Any:
    require(req, "GET")
    raise CodedError(404, OIDC_DISABLED)


def resolve_workload(req: Request, api: Api, token: str) -> tuple[dict[str, Any], Any]:
    """(the token's stand-in, its WorkloadACL) for a task's JWT; 403 with why it is refused."""
    from actors.http_acl import _local_read  # http_acl imports http_api, which imports us

    if api.env.lookup("raft") is None:
        raise CodedError(403, "workload identities are verified by servers: send the request to a server")
    why, claims = _local_read(api, functools.partial(workload_claims, token=token, now_s=wall_time()))
    if why:
        raise CodedError(403, f"failed to verify workload identity: {why}")
    return workload_token(claims), workload_acl(claims, req.method, req.path)
