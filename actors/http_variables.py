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
* ``DELETE /v1/var/<path>[?cas=N]``: removes it, 204 No Content (409 on a
  check-index mismatch; a 409's ``X-Nomad-Index`` is the variable's ModifyIndex).
* Locks (Nomad 1.7): ``PUT /v1/var/<path>?lock-acquire`` with ``{"Lock":
  {"TTL": "15s", "LockDelay": "15s"}, "Items": {...}}`` (both optional:
  15 s each; a TTL from 10 s to 24 h) writes the variable holding a new
  lock and answers it with its ``Lock.ID``, or 409 with the bare
  ``{Namespace, Path}`` when another holds it.  ``?lock-renew`` with
  ``{"Lock": {"ID": ...}}`` keeps it (409 once lost: not renewed within
  twice the TTL), ``?lock-release`` with the ID frees it and keeps the
  items.  A write or delete without the holder's ID (``"Lock": {"ID"}`` in
  a PUT body) is a 409 while it is held.  A lock not renewed is freed by
  the leader ``LockDelay`` after it was lost (actors.server.var_locks).
  Reads show ``Lock`` only to a management token (and with ACLs off), so
  the ID stays with its holder.  Lock operations need ``write``.

With ACLs, a token reaches a variable through its policies' ``namespace
{ variables { path "glob" { capabilities } } }`` blocks alone (a namespace's
``read`` or ``write`` policy grants none), as in Nomad: ``read`` to read it,
``write`` to write it, ``destroy`` to delete it; a list keeps the
variables the token may ``list`` (``read`` and ``write`` include it), in
every namespace with ``namespace=*``; a token that may list none gets an
empty list, not a 403, as Nomad's Variables.List.
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
    request_namespace,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options, list_options_asked
from actors.state import variables as v
from actors.state.autopilot_config import go_duration, parse_go_duration
from actors.state.store import command
from runtime.edge import new_id, wall_time

_LOCK_OPS = ("lock-renew", "lock-acquire", "lock-release")

def _missing_namespace(req: Request, api: Api, ns: str) -> bool:
    """Whether namespace *ns* does not exist (actors.state.namespaces)."""
    from actors.state import namespaces

    return state_query(req, api, (namespaces.TABLE,), lambda st: namespaces.get(st.tables, ns) is None).value


def _namespace(req: Request) -> str:
    return request_namespace(req)


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
    acl = None
    if api.ctx.acl_enabled:  # the token first: an unknown secret is refused before a blocking query
        from actors.http_acl import resolve  # http_acl imports http_api, which imports us

        _, acl = resolve(req, api)
    answer = state_query(req, api, (v.TABLE,),
                         lambda st: [_copy(v.metadata(x)) for x in v.listed(st.tables, ns, prefix)])
    if acl is not None:
        # Nomad's List leaves a lock out of what a non-management token sees (its ID is the holder's).
        answer = Answer([m if acl.management else {k: x for k, x in m.items() if k != "Lock"}
                         for m in answer.value if acl.allow_variable(m["Namespace"], m["Path"], "list")],
                        answer.headers)
    return apply_list_options(req, answer, "Path", namespaced=True) if list_options_asked(req) else answer


@route("/v1/var/")
def variable_request(req: Request, api: Api) -> Any:
    path = urllib.parse.unquote(req.path[len("/v1/var/"):])
    if not path:  # Nomad's VariableSpecificRequest checks this before the method
        raise CodedError(400, "missing variable path")
    ns = _namespace(req)
    if req.method == "GET":
        answer = state_query(req, api, (v.TABLE,), lambda st: _copy(st.tables[v.TABLE].get(v.key(ns, path))))
        if answer.value is None:
            raise CodedError(404, "variable not found", answer.headers)
        if answer.value.get("Lock") and not _management(req, api):
            answer = Answer({k: x for k, x in answer.value.items() if k != "Lock"}, answer.headers)
        return answer
    if req.method in ("PUT", "POST"):
        ops = [op for op in _LOCK_OPS if op in req.query]
        if len(ops) > 1:
            raise CodedError(400, "multiple lock operations")
        if ops and (req.query.get("cas") or [""])[0]:
            raise CodedError(400, "CAS can't be used with lock operations")
        if ops:
            return _lock(req, api, ns, path, ops[0])
        return _put(req, api, ns, path)
    require(req, "DELETE")
    why = v.path_error(path)
    if why:
        raise CodedError(400, why)
    return _write(api, "var_delete", _management(req, api), namespace=ns, path=path, cas=_cas(req))


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
    if _missing_namespace(req, api, ns):
        raise CodedError(400, f'namespace "{ns}" not found')
    lock = body.get("Lock")
    if lock is not None and not isinstance(lock, dict):
        raise CodedError(400, "failed to parse variable: Lock must be an object")
    if lock and (_duration(lock, "TTL") or _duration(lock, "LockDelay")):
        raise CodedError(400, "variable should not contain lock definition")
    why = v.path_error(path) or v.items_error(body.get("Items"))
    if why:
        raise CodedError(400, why)
    cas = _cas(req)
    return _write(api, "var_set", _management(req, api), namespace=ns, path=path, items=body["Items"],
                  cas=cas, now=wall_time(), lock_id=(lock or {}).get("ID") or None)


def _duration(lock: dict[str, Any], name: str) -> int:
    """A Lock's TTL or LockDelay in ns: a Go duration string or a number of ns, as Nomad's UnmarshalJSON."""
    raw = lock.get(name)
    if raw is None or raw == "":
        return 0
    if isinstance(raw, str):
        try:
            return parse_go_duration(raw)
        except ValueError as e:
            raise CodedError(400, str(e)) from None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw)
    raise CodedError(400, f"failed to parse variable: Lock.{name} must be a duration")


def _management(req: Request, api: Api) -> bool:
    """Whether the caller may see a lock's ID: a management token, or anyone with ACLs off (Nomad's)."""
    if not api.ctx.acl_enabled:
        return True
    from actors.http_acl import resolve  # http_acl imports http_api, which imports us

    return resolve(req, api)[1].management


def _lock(req: Request, api: Api, ns: str, path: str, op: str) -> Any:
    """``?lock-acquire|lock-renew|lock-release`` (Nomad's variableLockOperation and variableLockRenew)."""
    body = json_body(req, "failed to parse variable")
    if body is None:
        raise CodedError(400, "Request body is empty")
    if not isinstance(body, dict):
        raise CodedError(400, "failed to parse variable: the body must be a JSON object")
    lock = body.get("Lock")
    if lock is not None and not isinstance(lock, dict):
        raise CodedError(400, "failed to parse variable: Lock must be an object")
    lock = lock or {}
    if "namespace" not in req.query and body.get("Namespace"):
        ns = body["Namespace"]
    if ns == "*":
        raise CodedError(400, 'can not target wildcard ("*")namespace')
    if _missing_namespace(req, api, ns):
        raise CodedError(400, f'namespace "{ns}" not found')
    why = v.path_error(path)
    if op == "lock-renew":
        if not lock.get("ID"):  # Nomad's VariablesRenewLockRequest.Validate
            from actors.state.acl_ops import multi_error

            raise CodedError(400, multi_error(["missing lock ID"]))
        return _write(api, "var_lock_renew", namespace=ns, path=path, lock_id=str(lock.get("ID") or ""),
                      now=wall_time())
    if op == "lock-release":
        if not lock.get("ID"):
            raise CodedError(400, "missing lock information")
        if body.get("Items"):
            raise CodedError(400, "lock release operation doesn't take variable items")
        if why:
            raise CodedError(400, why)
        return _write(api, "var_lock_release", namespace=ns, path=path, lock_id=lock["ID"], now=wall_time())
    items = body.get("Items") or {}
    why = why or (v.items_error(items) if items else None)
    ttl = _duration(lock, "TTL") or v.LIMITS.default_ttl_ns
    delay = _duration(lock, "LockDelay") or v.LIMITS.default_delay_ns
    why = why or v.lock_error(ttl, delay)
    if why:
        raise CodedError(400, why)
    # Nomad's Canonicalize: a lock asked without an ID is a new one; the edge makes it (os.urandom).
    return _write(api, "var_lock_acquire", namespace=ns, path=path, items=items,
                  lock_id=str(lock.get("ID") or new_id()), ttl=ttl, delay=delay, now=wall_time())


def _write(api: Api, op: str, management: bool = False, **args: Any) -> Any:
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        if "conflict" in result:  # Nomad answers a check-and-set conflict with the variable as it is
            current = _copy(result["conflict"])
            if isinstance(current, dict) and isinstance(current.get("Lock"), dict) and not management \
                    and current["Lock"].get("ID") != args.get("lock_id"):
                current.pop("Lock")  # a lock's ID is its holder's (and a management token's), as on reads
            # Nomad's index header on a conflict is the conflicting variable's ModifyIndex
            conflict_index = (current or {}).get("ModifyIndex", 0)
            return Response(409, json.dumps(current, separators=(",", ":")).encode(), JSON_TYPE,
                            (("X-Nomad-Index", str(conflict_index)),))
        raise CodedError(int(result.get("code") or 400), str(result.get("error")))
    headers = (("X-Nomad-Index", str(index)),)
    if op == "var_delete":  # Nomad's variableDelete: 204 No Content
        return Response(204, b"", JSON_TYPE, headers)
    out = _copy(result.get("var"))
    if op == "var_lock_release" or (op == "var_set" and not args.get("lock_id")):
        out.pop("Lock", None)  # Nomad shows the lock only to its holder (or a management token)
    if op == "var_lock_release":
        out["Items"] = None
    return Answer(out, headers)


def _copy(var: dict[str, Any] | None) -> dict[str, Any] | None:
    """A variable as Nomad's JSON shows it: ``Lock`` (omitempty) with Go duration strings."""
    if var is None:
        return None
    out = dict(var)
    if "Items" in var:
        out["Items"] = dict(var["Items"]) if var["Items"] is not None else None
    if var.get("Lock"):
        out["Lock"] = lock_json(var["Lock"])
    return out


def lock_json(lock: dict[str, Any]) -> dict[str, Any]:
    """Nomad's VariableLock JSON: TTL and LockDelay as Go durations ("" for zero)."""
    return {"ID": lock["ID"], "TTL": go_duration(lock["TTL"]) if lock["TTL"] else "",
            "LockDelay": go_duration(lock["LockDelay"]) if lock["LockDelay"] else ""}
