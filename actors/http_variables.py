"""Variables over HTTP, as Nomad's ``/v1/vars`` and ``/v1/var/<path>``.

* ``GET /v1/vars?prefix=&namespace=``: the variables' metadata (no items),
  by path; ``namespace=*`` lists every namespace; ``filter``, ``per_page``
  and ``next_token`` as on Nomad's other lists.
* ``GET /v1/var/<path>``: the variable with its items (404 ``variable not
  found``); a blocking query with ``?index=``.
* ``PUT|POST /v1/var/<path>`` with ``{"Items": {...}}`` (``Namespace`` and
  ``Path`` may be given and must agree with the URL): writes the whole
  variable and answers it.  ``?cas=N`` writes only over ModifyIndex N (0:
  only a new variable); otherwise ``409`` with the variable as it is.
* ``DELETE /v1/var/<path>[?cas=N]``: removes it (409 on a check-index
  mismatch).

With ACLs, a token reaches a variable through its policies' ``namespace
{ variables { path "glob" { capabilities } } }`` blocks alone (a namespace's
``read`` or ``write`` policy grants none), as in Nomad: ``read`` to read it,
``write`` to write it, ``destroy`` to delete it; a list keeps the
variables the token may ``list`` (``read`` and ``write`` include it), and
refuses a token that may list none in the namespace (actors.acl).
actors.state.variables has the rules.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from actors.http_api import JSON as JSON_TYPE
from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    Response,
    json_body,
    parse_uint,
    propose,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options, list_options_asked
from actors.state import variables as v
from actors.state.store import command
from runtime.edge import wall_time

_NAMESPACES = ("default",)  # the namespaces that exist here (actors.scheduler.job: only Nomad's built-in)


def _namespace(req: Request) -> str:
    return (req.query.get("namespace") or ["default"])[0] or "default"


def _cas(req: Request) -> int | None:
    if "cas" not in req.query:
        return None
    raw = req.query["cas"][0]
    cas = parse_uint(raw)  # Nomad's ParseUint: a sign, a space or a value past 2**64 - 1 is refused
    if cas is None:
        raise CodedError(400, f"failed to parse cas value {raw!r}")
    return cas


@route("/v1/vars")
def variables_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    ns, prefix = _namespace(req), (req.query.get("prefix") or [""])[0]
    answer = state_query(req, api, (v.TABLE,),
                         lambda st: [v.metadata(x) for x in v.listed(st.tables, ns, prefix)])
    if api.ctx.acl_enabled:
        from actors.http_acl import resolve  # http_acl imports http_api, which imports us

        _, acl = resolve(req, api)
        answer = Answer([m for m in answer.value if acl.allow_variable(m["Namespace"], m["Path"], "list")],
                        answer.headers)
    return apply_list_options(req, answer, "Path") if list_options_asked(req) else answer


@route("/v1/var/")
def variable_request(req: Request, api: Api) -> Any:
    path = urllib.parse.unquote(req.path[len("/v1/var/"):])
    if not path:  # Nomad's VariableSpecificRequest checks this before the method
        raise CodedError(400, "missing variable path")
    ns = _namespace(req)
    if req.method == "GET":
        answer = state_query(req, api, (v.TABLE,), lambda st: _copy(st.tables[v.TABLE].get(v.key(ns, path))))
        if answer.value is None:
            raise CodedError(404, "variable not found")
        return answer
    if req.method in ("PUT", "POST"):
        return _put(req, api, ns, path)
    require(req, "DELETE")
    why = v.path_error(path)
    if why:
        raise CodedError(400, why)
    return _write(api, "var_delete", namespace=ns, path=path, cas=_cas(req))


def _put(req: Request, api: Api, ns: str, path: str) -> Any:
    body = json_body(req, "failed to parse variable")
    if body is None:  # Nomad's decodeBody on an empty body
        raise CodedError(400, "Request body is empty")
    if isinstance(body, dict) and not body.get("Items"):
        raise CodedError(400, "variable missing required Items object")
    if not isinstance(body, dict):
        raise CodedError(400, "failed to parse variable: the body must be a JSON object")
    if body.get("Path") and body["Path"] != path:
        raise CodedError(400, f'variable path in the body ("{body["Path"]}") does not match the URL '
                              f'("{path}")')
    if "namespace" not in req.query and body.get("Namespace"):
        ns = body["Namespace"]
    if ns not in _NAMESPACES:
        raise CodedError(400, f'namespace "{ns}" not found')
    why = v.path_error(path) or v.items_error(body.get("Items"))
    if why:
        raise CodedError(400, why)
    cas = _cas(req)
    return _write(api, "var_set", namespace=ns, path=path, items=body["Items"], cas=cas, now=wall_time())


def _write(api: Api, op: str, **args: Any) -> Any:
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        if "conflict" in result:  # Nomad answers a check-and-set conflict with the variable as it is
            return Response(409, json.dumps(result["conflict"]).encode(), JSON_TYPE,
                            (("X-Nomad-Index", str(index)),))
        raise CodedError(400, str(result.get("error")))
    headers = (("X-Nomad-Index", str(index)),)
    return Answer(result.get("var"), headers) if op == "var_set" else Response(200, b"", JSON_TYPE, headers)


def _copy(var: dict[str, Any] | None) -> dict[str, Any] | None:
    # Nomad's Lock is omitempty: left out for a variable that is not a lock (none is, here).
    return None if var is None else {**var, "Items": dict(var["Items"])}
