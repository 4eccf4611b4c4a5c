"""ACL auth methods and binding rules (Nomad's SSO login: OIDC and JWT), which this agent does not have.

The web UI's sign-in page lists the auth methods, and ``nomad acl auth-method list`` and
``nomad acl binding-rule list`` ask for them; they are answered as a Nomad cluster with none
configured answers them:

* ``GET /v1/acl/auth-methods``: ``[]`` (anyone may list them, as in Nomad, so a login page can);
  ``GET /v1/acl/binding-rules``: ``[]`` for a management token (Nomad's check).
* ``GET``/``DELETE`` of one: ``404 ACL auth-method not found`` / ``404 ACL binding rule not found``.
* Creating or changing one is refused with ``501`` and the reason, instead of being taken and ignored.

With ACLs disabled every one is Nomad's ``400 ACL support disabled``.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import INVALID_METHOD, Answer, Api, CodedError, Request, query_meta, route

NOT_SUPPORTED = "ACL auth methods and binding rules (SSO login) are not supported by this agent"


def _enabled(api: Api) -> None:
    from actors.http_acl import _enabled as enabled  # http_acl imports http_api, which imports us

    enabled(api)


def _management(req: Request, api: Api) -> None:
    from actors.http_acl import _management as management

    management(req, api)


def _empty(api: Api) -> Answer:
    return Answer([], query_meta(api, 1) if api.env.lookup("raft") is not None else (("X-Nomad-Index", "1"),))


@route("/v1/acl/auth-methods")
def auth_methods(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    return _empty(api)


@route("/v1/acl/binding-rules")
def binding_rules(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    _management(req, api)
    return _empty(api)


def _one(req: Request, api: Api, what: str) -> Any:
    if req.method not in ("GET", "DELETE", "PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    _enabled(api)
    if req.method in ("PUT", "POST"):
        raise CodedError(501, NOT_SUPPORTED)
    raise CodedError(404, f"ACL {what} not found")


@route("/v1/acl/auth-method")
@route("/v1/acl/auth-method/")
def auth_method(req: Request, api: Api) -> Any:
    return _one(req, api, "auth-method")


@route("/v1/acl/binding-rule")
@route("/v1/acl/binding-rule/")
def binding_rule(req: Request, api: Api) -> Any:
    return _one(req, api, "binding rule")
