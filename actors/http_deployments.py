"""Deployments over HTTP, as Nomad's ``deployment_endpoint.go`` and the job's deployment reads.

* ``GET /v1/deployments[?prefix=&namespace=&ascending=true]``: every
  deployment of the namespace (``*``: all), newest first by ``CreateIndex``
  (``ascending=true``: oldest first); ``?filter=``, and ``?per_page=`` with
  ``next_token`` ``<CreateIndex>.<ID>`` as Nomad's create-index tokenizer.
* ``GET /v1/deployment/<id>``: the deployment (404 ``deployment not found``;
  an exact ID, as Nomad's; the CLI resolves prefixes through the list).
* ``GET /v1/deployment/allocations/<id>``: its allocations as
  ``/v1/allocations`` stubs them (``[]`` for an unknown ID, as Nomad's).
* ``PUT|POST /v1/deployment/fail/<id>``: fail it (with ``AutoRevert``, the
  job's latest stable version is registered again: ``RevertedJobVersion``).
* ``PUT|POST /v1/deployment/pause/<id>`` with ``{"DeploymentID", "Pause"}``:
  pause, or resume (which evaluates the job).
* ``PUT|POST /v1/deployment/promote/<id>`` with ``{"DeploymentID", "All" |
  "Groups"}``: promotes the groups' canaries once they are healthy (400
  ``Task group "g" has h/n healthy allocations`` before; ``no canaries to
  promote`` for a deployment without any, Nomad's state store text).
* ``GET /v1/job/<id>/deployments`` (newest first) and ``.../deployment`` (the
  latest, JSON ``null`` when none), registered on :data:`~actors.http_jobs.JOB_ACTIONS`.

Writes answer Nomad's ``DeploymentUpdateResponse`` (``EvalID``,
``EvalCreateIndex``, ``DeploymentModifyIndex``, ``RevertedJobVersion``,
``Index``).  An unknown deployment is 404 and a terminal one 400 ``can't
<fail|pause|resume|promote> terminal deployment`` (Nomad answers both 500:
its RPC errors are uncoded; the caller's request is what is wrong).  Times:
``CreateTime``/``ModifyTime`` are Unix nanoseconds, ``RequireProgressBy``
RFC 3339 (Go's zero time while unset), as Nomad's JSON has them.  With ACLs,
reads need ``read-job`` and writes ``submit-job`` (:mod:`actors.acl`).
"""

from __future__ import annotations

import heapq
from typing import Any

from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    json_body,
    listable,
    parse_uint,
    propose,
    query_flag,
    request_namespace,
    require,
    route,
    state_query,
)
from actors.http_filter import FilterError, apply_list_options, compile_filter, per_page
from actors.http_jobs import JOB_ACTIONS, alloc_stub, rfc3339, tree_copy
from actors.state import deployments
from actors.state.namespaces import key_of
from actors.state.store import command
from runtime.edge import wall_time

__all__ = ["deployment_out"]

TABLE = deployments.TABLE
NOT_FOUND = "deployment not found"  # Nomad's text (GET 404, and the write RPCs')


def deployment_out(d: dict[str, Any]) -> dict[str, Any]:
    """Nomad's API ``Deployment``: times as its JSON has them (a plain-tree copy: a list of every
    deployment is made inside the state actor)."""
    out = tree_copy(d)
    for k in ("CreateTime", "ModifyTime"):
        t = out.get(k)
        out[k] = int(t * 1e9) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0
    for g in out.get("TaskGroups", {}).values():
        g["RequireProgressBy"] = rfc3339(g.get("RequireProgressBy"))
    return out


def _newest_first(deps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(deps, key=lambda d: (d.get("CreateIndex", 0), d["ID"]), reverse=True)


def _token(d: dict[str, Any]) -> str:
    return f"{d.get('CreateIndex', 0)}.{d['ID']}"


def _key(d: dict[str, Any]) -> tuple[Any, str]:
    return d.get("CreateIndex", 0), d["ID"]


def _from_token(req: Request, ascending: bool) -> Any:
    """Whether a deployment is at or past ``?next_token`` (None: no token)."""
    token = (req.query.get("next_token") or [""])[0]
    if not token:
        return None
    raw_index, _, ident = token.partition(".")
    index = parse_uint(raw_index)
    if index is None:
        raise CodedError(400, f"failed to read result page: invalid next_token {token!r}")
    key = (index, ident)
    return (lambda d: _key(d) >= key) if ascending else (lambda d: _key(d) <= key)


def _page(req: Request, answer: Answer, ascending: bool) -> Answer:
    """``?per_page=&next_token=`` over a create-index order (Nomad's CreateIndexAndIDTokenizer)."""
    items, headers = answer.value, answer.headers
    after = _from_token(req, ascending)
    if after is not None:
        items = [d for d in items if after(d)]
    return per_page(req, Answer(items, headers), _token)


def _page_rows(req: Request, rows: list[dict[str, Any]], ascending: bool) -> list[dict[str, Any]] | None:
    """Inside the state actor: with ``?per_page=N``, the API deployments of only the rows the page
    (and the next one's first, which names the token) can hold, in the list's order; the handler
    filters and pages them as it would the whole list.  None: every row's is needed (no page, or
    options the handler refuses with a 400)."""
    raw = (req.query.get("per_page") or [""])[0]
    n = int(raw) if raw.isdigit() else 0
    if n <= 0:
        return None
    try:
        after = _from_token(req, ascending)
    except CodedError:
        return None
    rows = [d for d in rows if after is None or after(d)]
    text = (req.query.get("filter") or [""])[0]
    if not text:
        pick = heapq.nsmallest if ascending else heapq.nlargest
        return [deployment_out(d) for d in pick(n + 1, rows, key=_key)]
    try:
        keep = compile_filter(text)
    except FilterError:
        return None
    out = []
    for d in sorted(rows, key=_key, reverse=not ascending):
        o = deployment_out(d)
        try:
            if not keep(o):
                continue
        except Exception:  # the handler's filter meets it again over every row, and answers it
            return None
        out.append(o)
        if len(out) > n:
            break
    return out


@route("/v1/deployments")
def deployments_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = (req.query.get("prefix") or [""])[0]
    ns, allowed = request_namespace(req), listable(req)
    ascending = (req.query.get("ascending") or [""])[0] == "true"

    def query(st: Any) -> list[dict[str, Any]]:
        deps = [d for i, d in st.tables[TABLE].items() if i.startswith(prefix)
                and (allowed(d.get("Namespace", "default")) if ns == "*"
                     else d.get("Namespace", "default") == ns)]
        page = _page_rows(req, deps, ascending)
        if page is not None:
            return page
        ordered = _newest_first(deps)
        return [deployment_out(d) for d in (ordered[::-1] if ascending else ordered)]
    answer = state_query(req, api, (TABLE,), query)
    if "filter" in req.query:  # the filter's own checks and 400s; its ID paging is not used here
        answer = apply_list_options(Request(req.method, req.path, {"filter": req.query["filter"]}, req.url),
                                    answer)
    return _page(req, answer, ascending)


def _deployment_id(req: Request, rest: str, *methods: str) -> str:
    """The path's deployment ID, once the method is one of *methods* (Nomad checks the method first)."""
    require(req, *methods)
    if not rest:
        raise CodedError(400, "missing deployment ID")
    return rest


@route("/v1/deployment/")
def deployment_request(req: Request, api: Api) -> Any:
    rest = req.path[len("/v1/deployment/"):]
    action, slash, dep_id = rest.partition("/")
    if slash and action in _ACTIONS:
        return _ACTIONS[action](req, api, dep_id)
    dep_id = _deployment_id(req, rest, "GET")

    def query(st: Any) -> Any:
        d = st.tables[TABLE].get(dep_id)
        return None if d is None else deployment_out(d)
    answer = state_query(req, api, (TABLE,), query, scoped=True)
    if answer.value is None:
        raise CodedError(404, NOT_FOUND, answer.headers)
    return answer


def _allocations(req: Request, api: Api, dep_id: str) -> Any:
    dep_id = _deployment_id(req, dep_id, "GET")
    def query(st: Any) -> list[dict[str, Any]]:
        dep = st.tables[TABLE].get(dep_id)  # its job's allocations (the by-job index), in ID order
        allocs = st.job_allocs(key_of(dep)) if dep is not None else \
            [a for _, a in sorted(st.tables["allocs"].items())]
        return [alloc_stub(a) for a in allocs if a.get("DeploymentID") == dep_id]
    return state_query(req, api, ("allocs",), query, scoped=True)


# ---------------------------------------------------------------- writes


def _write(api: Api, op: str, **args: Any) -> tuple[int, dict[str, Any]]:
    """Propose *op* through Raft (a follower forwards it); the store's refusal as Nomad's code and text."""
    index, result = propose(api, command(op, now=wall_time(), **args))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        error = str(result.get("error") or "refused by the state store")
        if error.startswith(NOT_FOUND):
            raise CodedError(404, NOT_FOUND)
        raise CodedError(400, error)
    return index, result


def _update_reply(index: int, r: dict[str, Any]) -> Answer:
    """Nomad's ``DeploymentUpdateResponse``."""
    return Answer({"EvalID": r.get("EvalID", ""), "EvalCreateIndex": r.get("EvalCreateIndex", 0),
                   "DeploymentModifyIndex": r.get("DeploymentModifyIndex", index),
                   "RevertedJobVersion": r.get("RevertedJobVersion"), "Index": index},
                  (("X-Nomad-Index", str(index)),))


def _fail(req: Request, api: Api, dep_id: str) -> Any:
    """``Deployment.Fail``: the request names the deployment by its path only (no body is read)."""
    dep_id = _deployment_id(req, dep_id, "PUT", "POST")
    return _update_reply(*_write(api, "deployment_fail", deployment_id=dep_id))


def _body_for(req: Request, dep_id: str) -> dict[str, Any]:
    """A pause or promote body: ``DeploymentID`` must be there and name the path's deployment."""
    body = json_body(req, "Request body is not valid JSON")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise CodedError(400, f"Request body must be a JSON object, got {type(body).__name__}")
    named = body.get("DeploymentID")
    if not named:
        raise CodedError(400, "DeploymentID must be specified")
    if named != dep_id:
        raise CodedError(400, "Deployment ID does not match")
    return body


def _pause(req: Request, api: Api, dep_id: str) -> Any:
    """``Deployment.Pause``: ``{"DeploymentID", "Pause": bool}``; ``false`` resumes."""
    dep_id = _deployment_id(req, dep_id, "PUT", "POST")
    pause = _body_for(req, dep_id).get("Pause", False)
    if not isinstance(pause, bool):
        raise CodedError(400, f"Pause: must be a boolean, got {pause!r}")
    return _update_reply(*_write(api, "deployment_pause", deployment_id=dep_id, pause=pause))


def _promote(req: Request, api: Api, dep_id: str) -> Any:
    """``Deployment.Promote``: the named groups' canaries (or all), once healthy, through Raft."""
    dep_id = _deployment_id(req, dep_id, "PUT", "POST")
    body = _body_for(req, dep_id)
    groups = body.get("Groups")
    if groups is not None and not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
        raise CodedError(400, "Groups: must be a list of task group names")
    if not isinstance(body.get("All", False), bool):
        raise CodedError(400, f"All: must be a boolean, got {body['All']!r}")
    # Nomad's order: the deployment must exist, then be active, then have healthy canaries.
    answer = state_query(req, api, (TABLE,), lambda st: (st.tables[TABLE].get(dep_id) or {}).get("Status"))
    if answer.value is None:
        raise CodedError(404, NOT_FOUND)
    if answer.value not in deployments.ACTIVE:
        raise CodedError(400, "can't promote terminal deployment")
    return _update_reply(*_write(api, "deployment_promote", deployment_id=dep_id, groups=groups or [],
                                 all=bool(body.get("All", False))))


def _alloc_health(req: Request, api: Api, dep_id: str) -> Any:
    """``Deployment.SetAllocHealth``: ``{"DeploymentID", "HealthyAllocationIDs", "UnhealthyAllocationIDs"}``
    (what a ``health_check = "manual"`` deployment waits for)."""
    dep_id = _deployment_id(req, dep_id, "PUT", "POST")
    body = _body_for(req, dep_id)
    ids = {}
    for key in ("HealthyAllocationIDs", "UnhealthyAllocationIDs"):
        got = body.get(key) or []
        if not (isinstance(got, list) and all(isinstance(i, str) for i in got)):
            raise CodedError(400, f"{key}: must be a list of allocation IDs")
        ids[key] = got
    if not ids["HealthyAllocationIDs"] and not ids["UnhealthyAllocationIDs"]:
        raise CodedError(400, "Must specify at least one healthy/unhealthy allocation ID")
    return _update_reply(*_write(api, "deployment_alloc_health", deployment_id=dep_id,
                                 healthy=ids["HealthyAllocationIDs"],
                                 unhealthy=ids["UnhealthyAllocationIDs"]))


_ACTIONS = {"allocations": _allocations, "fail": _fail, "pause": _pause, "promote": _promote,
            "allocation-health": _alloc_health}


# ---------------------------------------------------------------- a job's deployments


def _job_deployments(req: Request, api: Api, job_id: str) -> Any:
    """``GET /v1/job/<id>/deployments[?all=]``: newest first; ``[]`` for an unknown job, as Nomad's.

    ``all`` (deployments of an earlier job of the same ID) is accepted: a
    purge removes a job's deployments here, so there are none to add.
    """
    require(req, "GET")
    query_flag(req, "all")  # a malformed value is 400, as Nomad's parse
    def query(st: Any) -> list[dict[str, Any]]:
        return [deployment_out(d) for d in _newest_first(deployments.of_job(st, job_id))]
    return state_query(req, api, (TABLE,), query, scoped=True)


def _job_latest_deployment(req: Request, api: Api, job_id: str) -> Any:
    """``GET /v1/job/<id>/deployment``: the newest, or ``null``."""
    require(req, "GET")

    def query(st: Any) -> Any:
        d = deployments.latest(st, job_id)
        return None if d is None else deployment_out(d)
    return state_query(req, api, (TABLE,), query, scoped=True)


JOB_ACTIONS.update(deployments=_job_deployments, deployment=_job_latest_deployment)
