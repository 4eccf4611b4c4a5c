"""The endpoints Nomad Community Edition answers without the feature: what an enterprise-aware tool
(the web UI, ``nomad license get``, an autoscaler asking for recommendations) expects to be told.

As Nomad CE's ``registerEnterpriseHandlers`` and ``operator_endpoint_ce.go``:

* Sentinel policies, quotas and recommendations: ``501 Nomad Enterprise only endpoint``, whatever the
  method or token.
* ``/v1/operator/license``: ``GET`` is ``204 No Content`` (no license to show), ``PUT`` 501, any other
  method ``405 Invalid method``.
* ``/v1/operator/utilization``: ``POST`` is 501, any other method 405.

None needs a token (actors.acl lists them as open), as Nomad checks none before answering.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import INVALID_METHOD, Api, CodedError, Request, Response, route

ENT_ONLY = "Nomad Enterprise only endpoint"  # Nomad's ErrEntOnly
ENTERPRISE_PATHS = ("/v1/sentinel/policies", "/v1/sentinel/policy/", "/v1/quotas", "/v1/quota-usages",
                    "/v1/quota/", "/v1/quota", "/v1/recommendation", "/v1/recommendations",
                    "/v1/recommendations/apply", "/v1/recommendation/")


def enterprise_only(req: Request, api: Api) -> Any:
    raise CodedError(501, ENT_ONLY)


for _path in ENTERPRISE_PATHS:
    route(_path)(enterprise_only)


@route("/v1/operator/license")
def operator_license(req: Request, api: Api) -> Any:
    if req.method == "GET":
        return Response(204, b"")
    if req.method == "PUT":
        raise CodedError(501, ENT_ONLY)
    raise CodedError(405, INVALID_METHOD)


@route("/v1/operator/utilization")
def operator_utilization(req: Request, api: Api) -> Any:
    if req.method != "POST":
        raise CodedError(405, INVALID_METHOD)
    raise CodedError(501, ENT_ONLY)
