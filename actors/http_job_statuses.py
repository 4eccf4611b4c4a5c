"""``/v1/jobs/statuses`` (Nomad's ``Job.Statuses``): the web UI's jobs index, one ``JobStatusesJob`` per
job -- its allocations' statuses, its groups' summed count and its latest deployment -- newest first.

* ``GET`` (or ``POST`` without a body) lists the namespace's jobs (``?namespace=``, ``*`` for every
  one), parent jobs only unless ``?include_children=true``; ``?filter=`` is applied to the jobs as
  stored; ``?per_page=`` pages them, ``X-Nomad-NextToken`` naming the next job by its ``ModifyIndex``
  (Nomad's token; here ``<index>.<namespace>.<id>``, as jobs written together share an index) and
  ``?next_token=`` resuming there (a bare index too); ``?reverse=true`` is oldest first.
* A body ``{"Jobs": [{"ID", "Namespace"}], "IncludeChildren"}`` asks for those jobs alone (a body
  naming none is 400 ``no jobs in request``, as Nomad's).
* Blocking queries (``?index=``) wait on the jobs, allocations and deployments, as Nomad's does.

ACLs: ``read-job`` in the namespace (actors.acl), as Nomad's RPC checks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from actors.acl import PERMISSION_DENIED
from actors.http_api import (
    INVALID_METHOD,
    Answer,
    Api,
    CodedError,
    Request,
    decode_json,
    query_flag,
    read_body,
    request_namespace,
    route,
    state_query,
)
from actors.http_filter import FilterError, FilterTooSlow, compile_filter, per_page
from actors.state import deployments
from actors.state.namespaces import job_key_of

# Nomad's Deployment.Active(): a deployment in one of these still moves.
ACTIVE_DEPLOYMENT = ("running", "paused", "blocked", "unblocking", "initializing", "pending")


def _field(obj: dict[str, Any], name: str) -> Any:
    """A body field as Go's encoding/json finds it: its name in any case (the web UI sends ``jobs``,
    ``id`` and ``namespace``)."""
    if name in obj:
        return obj[name]
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


def _wanted(req: Request) -> tuple[set[tuple[str, str]] | None, bool]:
    """The jobs a body names ((namespace, ID); None: every one) and its IncludeChildren."""
    raw = read_body(req)
    if not raw.strip():
        return None, False
    try:
        body = decode_json(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"error decoding request: {e}") from None
    jobs = _field(body, "Jobs") if isinstance(body, dict) else None
    if not jobs or not isinstance(jobs, list):
        raise CodedError(400, "no jobs in request")
    wanted = set()
    for j in jobs:
        if not isinstance(j, dict) or not isinstance(_field(j, "ID"), str):
            raise CodedError(400, "error decoding request: each job needs an ID")
        wanted.add((_field(j, "Namespace") or "default", _field(j, "ID")))
    return wanted, bool(_field(body, "IncludeChildren"))


def _latest_deployment(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    groups = list((d.get("TaskGroups") or {}).values())
    running = d.get("Status") == "running" and bool(groups)
    canaries = [g for g in groups if g.get("DesiredCanaries")]
    return {"ID": d["ID"], "IsActive": d.get("Status") in ACTIVE_DEPLOYMENT,
            "JobVersion": d.get("JobVersion", 0), "Status": d.get("Status", ""),
            "StatusDescription": d.get("StatusDescription", ""),
            # Nomad's HasAutoPromote and RequiresPromotion: a running deployment's canary groups
            "AllAutoPromote": running and all(g.get("AutoPromote") for g in canaries),
            "RequiresPromotion": running and any(not g.get("Promoted") for g in canaries)}


def _key(job: dict[str, Any]) -> tuple[int, str, str]:
    return job.get("ModifyIndex", 0), job.get("Namespace", "default"), job["ID"]


def _token_key(token: str, reverse: bool) -> tuple[int, str, str]:
    """A next_token as a sort key: ``<index>.<namespace>.<id>``, or Nomad's bare index (every job at
    that index then belongs to the page)."""
    index, _, rest = token.partition(".")
    if not index.isdigit():
        raise CodedError(400, f"failed to read result page: invalid next_token {token!r}")
    if not rest:
        return (int(index), "", "") if reverse else (int(index), "\uffff", "")
    namespace, _, job_id = rest.partition(".")
    return int(index), namespace, job_id


def job_status(st: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``JobStatusesJob`` of a stored job (``jobStatusesJobFromJob``)."""
    out: dict[str, Any] = {
        "ID": job["ID"], "Namespace": job.get("Namespace", "default"), "Name": job.get("Name", job["ID"]),
        "Type": job.get("Type", "service"), "NodePool": job.get("NodePool") or "default",
        "Datacenters": list(job.get("Datacenters") or ()), "Priority": job.get("Priority", 50),
        "Version": job.get("Version", 0), "SubmitTime": _ns(job.get("SubmitTime", 0)),
        "ModifyIndex": job.get("ModifyIndex", 0), "Allocs": None,
        "GroupCountSum": sum(g.get("Count", 0) for g in job.get("TaskGroups") or ()),
        "ChildStatuses": None, "ParentID": job.get("ParentID", ""), "LatestDeployment": None,
        "Stop": bool(job.get("Stop")), "IsPack": "pack.name" in (job.get("Meta") or {}),
        "Status": job.get("Status", "pending")}
    if job.get("Periodic") or job.get("ParameterizedJob"):  # its children's statuses instead
        # (Nomad's JobsByIDPrefix: in ID order)
        out["ChildStatuses"] = [c.get("Status", "") for c in st.job_children(job_key_of(job))]
        return out
    allocs = []
    for a in st.job_allocs(job_key_of(job)):
        ds = a.get("DeploymentStatus") or {}
        allocs.append({"ID": a["ID"], "Group": a.get("TaskGroup", ""),
                       "ClientStatus": a.get("ClientStatus", ""), "NodeID": a.get("NodeID", ""),
                       "DeploymentStatus": {"Canary": bool(ds.get("Canary")), "Healthy": ds.get("Healthy")},
                       "JobVersion": a.get("JobVersion", (a.get("Job") or {}).get("Version", 0)),
                       "FollowupEvalID": a.get("FollowupEvalID", ""), "HasPausedTask": False})
    out["Allocs"] = allocs or None
    out["LatestDeployment"] = _latest_deployment(deployments.latest(st, job_key_of(job)))
    return out


def _ns(t: Any) -> Any:
    from actors.http_jobs import _ns as to_ns  # http_jobs imports http_api, which imports us

    return to_ns(t)


def _page_limit(req: Request) -> int:
    """``?per_page=N``'s N: only the page's jobs (and the next one's first) need a status (0: every
    job's; a value per_page refuses is its 400 to answer)."""
    raw = (req.query.get("per_page") or [""])[0]
    return int(raw) if raw.isdigit() else 0


def _readable_namespaces(req: Request, api: Api, namespace: str) -> Callable[[str], bool]:
    """Which namespaces' jobs the token may see (Nomad's Job.Statuses: ``read-job`` in *namespace*, the
    one the named jobs share or ``*``, then only the jobs of the namespaces it may read them in)."""
    if not getattr(api.ctx, "acl_enabled", False):
        return lambda ns: True
    from actors.http_acl import resolve  # it imports the HTTP API, which imports us

    acl = resolve(req, api)[1]
    if namespace != "*" and not acl.allow_namespace(namespace, "read-job"):
        raise CodedError(403, PERMISSION_DENIED)
    return lambda ns: acl.allow_namespace(ns, "read-job")


@route("/v1/jobs/statuses")
def job_statuses(req: Request, api: Api) -> Any:
    if req.method not in ("GET", "POST"):
        raise CodedError(405, INVALID_METHOD)
    children = query_flag(req, "include_children")
    wanted, body_children = _wanted(req)
    children = children or body_children
    namespace = request_namespace(req)
    if wanted is not None:  # Nomad: the jobs' own namespaces (every one when they differ)
        named = {ns for ns, _ in wanted}
        namespace = next(iter(named)) if len(named) == 1 else "*"
    readable = _readable_namespaces(req, api, namespace)
    text = (req.query.get("filter") or [""])[0]
    try:
        keep = compile_filter(text) if text else None
    except FilterError as e:
        raise CodedError(400, f"failed to read filter expression: {e}") from None
    reverse = query_flag(req, "reverse")
    token = (req.query.get("next_token") or [""])[0]
    mark = _token_key(token, reverse) if token else None
    limit = _page_limit(req)

    def query(st: Any) -> list[dict[str, Any]]:
        jobs = [j for j in st.tables["jobs"].values()
                if (namespace == "*" or j.get("Namespace", "default") == namespace)
                and readable(j.get("Namespace", "default"))
                and (children or not j.get("ParentID"))
                and (wanted is None or (j.get("Namespace", "default"), j["ID"]) in wanted)]
        if keep is not None:
            try:
                jobs = [j for j in jobs if keep(j)]
            except FilterTooSlow as e:
                raise CodedError(400, f"failed to apply filter expression: {e}") from None
        # Nomad pages JobsByModifyIndex newest first unless ?reverse=true.
        if mark is not None:
            jobs = [j for j in jobs if (_key(j) >= mark if reverse else _key(j) <= mark)]
        if limit > 0:  # the page's and the next one's first (its token): the rest are never answered
            jobs = (heapq.nsmallest if reverse else heapq.nlargest)(limit + 1, jobs, key=_key)
        else:
            jobs.sort(key=_key, reverse=not reverse)
        return [job_status(st, j) for j in jobs]
    answer = state_query(req, api, ("jobs", "allocs", deployments.TABLE), query)
    return per_page(req, Answer(answer.value, answer.headers),
                    lambda j: f"{j['ModifyIndex']}.{j['Namespace']}.{j['ID']}")
