"""Service registrations over HTTP, as Nomad's ``service_registration_endpoint.go``.

The registrations themselves are the state store's (:mod:`actors.state.services`):
one per ``service`` block of a running allocation, in Nomad's
``ServiceRegistration`` shape.

* ``GET /v1/services[?namespace=]``: Nomad's ``ServiceRegistrationListStub``
  list -- ``[{"Namespace", "Services": [{"ServiceName", "Tags"}]}]``, one
  entry per namespace that has services (``*``: every namespace; none:
  ``[]``), services by name, each with the union of its registrations' tags
  (sorted).  ``?filter=`` applies to the namespace entries.
* ``GET /v1/service/<name>[?namespace=&filter=&per_page=&next_token=&choose=]``:
  the service's registrations in ID order (``[]`` when none, as Nomad's);
  ``choose=<n>|<key>`` picks *n* of them by rendezvous hashing -- each
  registration ranked by a hash of *key* and its ID, the lowest first -- so
  one key always gets the same ones while they exist (after ``filter``;
  paging is not applied to a choice).  The hash is this agent's own
  (SHA-256), not necessarily the one Nomad ranks with.
* ``DELETE /v1/service/<name>/<id>``: removes one registration through Raft
  (a follower forwards it); it comes back only when its allocation starts
  again.  404 ``service registration not found`` when there is none of that
  ID, that service name and the request's namespace (Nomad answers its RPC
  error 500).  Nomad's answer: an empty body and ``X-Nomad-Index``.
* ``GET /v1/job/<id>/services`` and ``GET /v1/allocation/<id>/services``:
  the job's or allocation's registrations (``[]`` when it has none); an
  unknown job is 404 ``job not found`` and an unknown allocation 404
  ``alloc not found``, as Nomad's handlers answer when the RPC finds neither.

Every read is a blocking query on the registrations (and the job or
allocation it names).  With ACLs, reads need ``read-job`` in the namespace
and the delete ``submit-job`` (:mod:`actors.acl`).
"""

from __future__ import annotations

from typing import Any

from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    Response,
    listable,
    parse_uint,
    propose,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options
from actors.http_jobs import ALLOC_ACTIONS, JOB_ACTIONS
from actors.state import services
from actors.state.namespaces import split_key
from actors.state.store import command

__all__ = ["choose", "registration_out", "service_list"]

TABLE = services.TABLE
NOT_FOUND = "service registration not found"  # Nomad's state store text
MALFORMED_CHOOSE = "failed to choose services: choose must be in the form <number>|<key>"
DEFAULT_NAMESPACE = "default"


def _namespace(req: Request) -> str:
    return (req.query.get("namespace") or [""])[0] or DEFAULT_NAMESPACE


def registration_out(r: dict[str, Any]) -> dict[str, Any]:
    """A copy of a registration in Nomad's API shape (the store's records are never handed out)."""
    return {**r, "Tags": list(r.get("Tags") or ())}


def service_list(regs: Any, namespace: str) -> list[dict[str, Any]]:
    """Registrations -> Nomad's ``ServiceRegistrationListStub`` list for *namespace* (``*``: all)."""
    tags: dict[str, dict[str, set[str]]] = {}
    for r in regs:
        ns = r.get("Namespace", DEFAULT_NAMESPACE)
        if namespace in ("*", ns):
            tags.setdefault(ns, {}).setdefault(r["ServiceName"], set()).update(r.get("Tags") or ())
    return [{"Namespace": ns, "Services": [{"ServiceName": name, "Tags": sorted(t)}
                                           for name, t in sorted(tags[ns].items())]}
            for ns in sorted(tags)]


def choose(regs: list[dict[str, Any]], parameter: str) -> list[dict[str, Any]]:
    """``?choose=<n>|<key>``: the *n* registrations *key* ranks first (rendezvous hashing)."""
    raw_count, bar, key = parameter.partition("|")
    count = parse_uint(raw_count.strip())
    if not bar or not key or count is None:
        raise CodedError(400, MALFORMED_CHOOSE)
    return services.rendezvous(regs, count, key)


@route("/v1/services")
def services_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    namespace = _namespace(req)
    answer = state_query(req, api, (TABLE,), lambda st: service_list(st.tables[TABLE].values(), namespace))
    if namespace == "*":  # with ACLs: the namespaces the token may read (actors.http_api.listable)
        allowed = listable(req)
        answer = Answer([e for e in answer.value if allowed(e["Namespace"])], answer.headers)
    if "filter" in req.query:  # the namespace entries, by the filter's own rules (and its 400s)
        answer = apply_list_options(Request(req.method, req.path, {"filter": req.query["filter"]}, req.url),
                                    answer)
    return answer


@route("/v1/service/")
def service_request(req: Request, api: Api) -> Any:
    """Nomad's ``ServiceRegistrationRequest``: ``<name>`` reads, ``<name>/<id>`` deletes."""
    parts = req.path[len("/v1/service/"):].split("/")
    if len(parts) == 1:
        require(req, "GET")
        if not parts[0]:
            raise CodedError(400, "missing service name")
        return _read(req, api, parts[0])
    if len(parts) == 2:
        require(req, "DELETE")
        if not parts[1]:
            raise CodedError(400, "missing service id")
        return _delete(req, api, parts[0], parts[1])
    raise CodedError(400, "invalid URI")


def _read(req: Request, api: Api, name: str) -> Any:
    namespace = _namespace(req)

    def query(st: Any) -> list[dict[str, Any]]:
        return [registration_out(r) for _, r in sorted(st.tables[TABLE].items())
                if r["ServiceName"] == name and r.get("Namespace", DEFAULT_NAMESPACE) == namespace]
    answer = state_query(req, api, (TABLE,), query)
    parameter = (req.query.get("choose") or [""])[0]
    if not parameter:  # Nomad pages a service's registrations with its NamespaceIDTokenizer
        return apply_list_options(req, answer, namespaced=True)
    if "filter" in req.query:
        answer = apply_list_options(Request(req.method, req.path, {"filter": req.query["filter"]}, req.url),
                                    answer)
    return Answer(choose(answer.value, parameter), answer.headers)


def _delete(req: Request, api: Api, name: str, reg_id: str) -> Any:
    """``ServiceRegistration.DeleteByID``: the registration must be the named service's, in the namespace."""
    namespace = _namespace(req)
    found = state_query(req, api, (TABLE,), lambda st: (st.tables[TABLE].get(reg_id) or {}).get("Namespace"))
    if found.value != namespace:
        raise CodedError(404, NOT_FOUND)
    index, result = propose(api, command("service_delete", id=reg_id, service_name=name))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        error = str(result.get("error") or "refused by the state store")
        raise CodedError(404 if error.startswith(NOT_FOUND) else 400, error)
    return Response(200, b"", headers=(("X-Nomad-Index", str(index)),))


# ---------------------------------------------------------------- a job's and an allocation's


def _job_services(req: Request, api: Api, job_id: str) -> Any:
    """``GET /v1/job/<id>/services`` (Nomad ``Job.GetServiceRegistrations``)."""
    require(req, "GET")
    namespace = _namespace(req)

    def query(st: Any) -> list[dict[str, Any]] | None:
        job = st.tables["jobs"].get(job_id)
        if job is None or job.get("Namespace", DEFAULT_NAMESPACE) != namespace:
            return None
        return [registration_out(r) for _, r in sorted(st.tables[TABLE].items())
                if r["JobID"] == split_key(job_id)[1] and r.get("Namespace", DEFAULT_NAMESPACE) == namespace]
    answer = state_query(req, api, (TABLE, "jobs"), query)
    if answer.value is None:
        raise CodedError(404, "job not found")
    return answer


def _alloc_services(req: Request, api: Api, alloc_id: str) -> Any:
    """``GET /v1/allocation/<id>/services`` (Nomad ``Alloc.GetServiceRegistrations``)."""
    require(req, "GET")

    def query(st: Any) -> list[dict[str, Any]] | None:
        if alloc_id not in st.tables["allocs"]:
            return None
        table, ids = st.tables[TABLE], sorted(st.services_by_alloc.get(alloc_id, ()))
        return [registration_out(table[i]) for i in ids if i in table]
    answer = state_query(req, api, (TABLE, "allocs"), query)
    if answer.value is None:
        raise CodedError(404, "alloc not found")
    return answer


JOB_ACTIONS["services"] = _job_services
ALLOC_ACTIONS["services"] = _alloc_services
