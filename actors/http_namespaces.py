"""``/v1/namespaces`` and ``/v1/namespace/<name>``: the namespaces this agent has.

Only Nomad's built-in ``default`` namespace exists here: every job,
allocation, evaluation and variable lives in it (actors.scheduler.job
refuses another).  So the list and the read answer it as Nomad answers its
built-in namespace, tools that enumerate namespaces see the truth, and a
request to create, change or delete a namespace is refused with a reason
instead of being taken and ignored: ``501`` for a create or update,
Nomad's ``400 default namespace can not be deleted`` for the default, and
``404`` for any other name.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import Answer, Api, CodedError, Request, query_meta, require, route

DEFAULT = {"Name": "default", "Description": "Default shared namespace", "Quota": "", "Meta": None,
           "Capabilities": None, "NodePoolConfiguration": None, "VaultConfiguration": None,
           "ConsulConfiguration": None, "Hash": None, "RequiredExtraClaims": None,
           "OptionalExtraClaims": None, "CreateIndex": 1, "ModifyIndex": 1}
NOT_MANAGED = 'namespaces cannot be created or changed on this agent: only the built-in "default" exists'


def _index(api: Api) -> tuple[tuple[str, str], ...]:
    """Nomad's query meta headers (its namespace reads setMeta): the index, and the leader as this
    server knows it (an agent without a Raft peer answers the index alone)."""
    index = DEFAULT["ModifyIndex"]
    if api.env.lookup("raft") is None:
        return (("X-Nomad-Index", str(index)),)
    return query_meta(api, index)


@route("/v1/namespaces")
def namespaces_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = (req.query.get("prefix") or [""])[0]
    return Answer([dict(DEFAULT)] if DEFAULT["Name"].startswith(prefix) else [], _index(api))


@route("/v1/namespace")
def namespace_create(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    raise CodedError(501, NOT_MANAGED)


@route("/v1/namespace/")
def namespace_request(req: Request, api: Api) -> Any:
    name = req.path[len("/v1/namespace/"):]
    if req.method in ("PUT", "POST"):
        raise CodedError(501, NOT_MANAGED)
    if req.method == "DELETE":
        if name == DEFAULT["Name"]:
            raise CodedError(400, "default namespace can not be deleted")
        raise CodedError(404, f'namespace "{name}" not found')
    require(req, "GET")
    if name != DEFAULT["Name"]:
        raise CodedError(404, "namespace not found")
    return Answer(dict(DEFAULT), _index(api))
