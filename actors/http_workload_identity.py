"""Workload identities over HTTP: the public keys, and a task's JWT taken as ``X-Nomad-Token``.

* ``GET /.well-known/jwks.json``: the servers' public signing keys as a
  JSON Web Key Set (Nomad's ``JWKSRequest``); no token needed.
* ``GET /.well-known/openid-configuration``: 404 ``OIDC Discovery endpoint
  disabled``, as Nomad answers without ``server.oidc_issuer`` (not
  configurable here).
A task's JWT taken as ``X-Nomad-Token`` is resolved by :func:`actors.http_acl.resolve`
(actors.workload_identity has the rules).
"""

from __future__ import annotations

from typing import Any

from actors.http_api import Answer, Api, CodedError, Request, require, route, state_query
from actors.state import root_keys
from actors.workload_identity import OIDC_DISABLED, jwks


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
