"""Node pools over HTTP, as Nomad's ``/v1/node/pools`` and ``/v1/node/pool/<name>[/nodes|/jobs]``.

* ``GET /v1/node/pools[?prefix=]``: every pool, the built-ins ``all`` and
  ``default`` included, sorted by name.
* ``PUT|POST /v1/node/pools`` with a ``NodePool`` body creates or updates
  it (400 for a bad name or description, or a built-in pool).
* ``GET /v1/node/pool/<name>``: the pool (404 ``node pool not found``);
  ``DELETE``: refused (400) for a built-in pool or one still holding nodes
  or non-terminal jobs.
* ``GET /v1/node/pool/<name>/nodes`` and ``.../jobs``: its nodes (as
  ``/v1/nodes`` lists them) and its jobs (as ``/v1/jobs``); ``all``'s nodes
  are every node.

Reads are linearizable unless ``?stale`` and block with ``?index=``.  With
ACLs, Nomad's ``node_pool "glob" { policy | capabilities }`` rules decide:
``read`` to read a pool (``node:read`` reads every pool too, as it did here
before those rules), ``write`` to create or update it, ``delete`` to delete
it; a list keeps the pools the token may read (actors.acl).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from actors.acl import PERMISSION_DENIED
from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    json_body,
    node_stub,
    propose,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options, list_options_asked
from actors.state import node_pools as pools
from actors.state.store import command


def _write(api: Api, op: str, **args: Any) -> int:
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict) or not result.get("ok"):
        error = str(result.get("error") if isinstance(result, dict) else result)
        raise CodedError(404 if error.endswith("not found") else 400, error)
    return index


@route("/v1/node/pools")
def node_pools_request(req: Request, api: Api) -> Any:
    if req.method in ("PUT", "POST"):
        body = json_body(req, "Request body is not valid JSON")
        try:
            pool = pools.validated(body)
        except ValueError as e:
            raise CodedError(400, f"invalid node pool: {e}") from None
        acl = _acl(req, api)
        if acl is not None and not acl.allow_node_pool(pool["Name"], "write"):
            raise CodedError(403, PERMISSION_DENIED)
        index = _write(api, "node_pool_upsert", pools=[pool])
        return Answer(None, (("X-Nomad-Index", str(index)),))
    require(req, "GET")
    prefix = (req.query.get("prefix") or [""])[0]
    answer = state_query(req, api, (pools.TABLE,),
                         lambda st: [_copy(p) for p in pools.listed(st.tables, prefix)])
    acl = _acl(req, api)
    if acl is not None:  # Nomad's NodePool.List keeps the pools the token may read
        answer = Answer([p for p in answer.value if acl.allow_node_pool(p["Name"], "read")], answer.headers)
    if list_options_asked(req):  # ?filter=, ?per_page=, ?next_token= (Nomad's name tokens)
        return apply_list_options(req, answer, id_key="Name")
    return answer


def _acl(req: Request, api: Api) -> Any:
    """The request's ACL when ACLs are on (None: they are off)."""
    if not api.ctx.acl_enabled:
        return None
    from actors.http_acl import resolve  # http_acl imports http_api, which imports us

    return resolve(req, api)[1]


def _refuse_in_use(req: Request, api: Api, name: str) -> None:
    """Nomad's DeleteNodePools asks this region and every other it knows (NodePool.ListNodes and
    ListJobs, with the caller's token) whether the pool has nodes or non-terminal jobs, and refuses
    with the regions that do, this one first -- so a pool still used in another region is not deleted
    here and then refused by that region's replication on every round."""
    from actors.http_api import _local_region, ask_region, known_regions

    region = _local_region(api, None)

    def here(st: Any) -> tuple[bool, bool]:
        jobs = any(j.get("NodePool", pools.DEFAULT) == name and j.get("Status") != "dead"
                   for j in st.tables["jobs"].values())
        return jobs, any(n.get("NodePool", pools.DEFAULT) == name for n in st.tables["nodes"].values())

    if name in pools.BUILT_IN:
        return  # the write says it is not allowed
    jobs, nodes = state_query(req, api, ("jobs", "nodes"), here).value
    with_jobs, with_nodes = [region] if jobs else [], [region] if nodes else []
    for other in known_regions(api):
        if other == region:
            continue
        base = f"/v1/node/pool/{urllib.parse.quote(name, safe='')}"
        if ask_region(req, api, other, base + "/nodes", {"per_page": ["1"]}):
            with_nodes.append(other)
        if ask_region(req, api, other, base + "/jobs", {"per_page": ["1"], "filter": ['Status != "dead"']}):
            with_jobs.append(other)
    errors = ([f'node pool "{name}" has non-terminal jobs in regions: [{" ".join(with_jobs)}]'] if with_jobs
              else []) + ([f'node pool "{name}" has nodes in regions: [{" ".join(with_nodes)}]'] if with_nodes
                          else [])
    if errors:
        head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
        raise CodedError(500, head + "".join(f"\n\t* {e}" for e in errors) + "\n\n")


@route("/v1/node/pool/")
def node_pool_request(req: Request, api: Api) -> Any:
    name, _, sub = req.path[len("/v1/node/pool/"):].partition("/")
    name = urllib.parse.unquote(name)
    if not name:
        raise CodedError(400, "missing node pool name")
    if sub == "":
        if req.method == "DELETE":
            _refuse_in_use(req, api, name)
            index = _write(api, "node_pool_delete", names=[name])
            return Answer(None, (("X-Nomad-Index", str(index)),))
        require(req, "GET")
        answer = state_query(req, api, (pools.TABLE,), lambda st: _copy(pools.get(st.tables, name)))
        if answer.value is None:
            raise CodedError(404, "node pool not found", answer.headers)
        return answer
    require(req, "GET")
    if (req.query.get("prefix") or [""])[0]:  # Nomad's nodePoolNodesList / nodePoolJobList
        raise CodedError(400, "prefix argument not allowed")
    if sub == "nodes":
        def nodes(st: Any) -> Any:
            if pools.get(st.tables, name) is None:
                return None
            return [node_stub(n) for _, n in sorted(st.tables["nodes"].items())
                    if name == pools.ALL or n.get("NodePool", pools.DEFAULT) == name]
        answer = state_query(req, api, ("nodes", pools.TABLE), nodes)
    elif sub == "jobs":
        from actors.http_jobs import job_stub, job_summaries  # http_jobs imports http_api, which imports us

        def jobs(st: Any) -> Any:
            if pools.get(st.tables, name) is None:
                return None
            table = st.tables["jobs"]
            ids = sorted(i for i, j in table.items() if (j.get("NodePool") or pools.DEFAULT) == name)
            sums = job_summaries(st, ids)
            return [job_stub(table[i], sums[i]) for i in ids]
        answer = state_query(req, api, ("jobs", "allocs", pools.TABLE), jobs)
    else:
        raise CodedError(404, f"Invalid URL: {req.path}")
    if answer.value is None:  # Nomad lists nothing for a pool that does not exist (not a 404)
        answer = Answer([], answer.headers)
    if list_options_asked(req):  # ?filter=, ?per_page=, ?next_token= (Nomad's ID / namespace.ID tokens)
        return apply_list_options(req, answer, namespaced=sub == "jobs")
    return answer


# Nomad's NodePool keys this agent does not keep, as Nomad answers them for a pool that leaves them
# unset: its Canonicalize's node identity TTL (DefaultNodePoolNodeIdentityTTL, 24h; node identities are
# not issued here) and no content hash.
NODE_IDENTITY_TTL_NS = 24 * 3600 * 1_000_000_000
_POOL_DEFAULTS = {"NodeIdentityTTL": NODE_IDENTITY_TTL_NS, "Hash": None}
_POOL_FIELDS = ("Name", "Description", "Meta", "SchedulerConfiguration", "NodeIdentityTTL", "Hash",
                "CreateIndex", "ModifyIndex")


def _copy(pool: dict[str, Any] | None) -> dict[str, Any] | None:
    if pool is None:
        return None
    out = {**_POOL_DEFAULTS, **pool, "Meta": dict(pool["Meta"]) if pool.get("Meta") else None}
    # structs.NodePool's field order, which Nomad's JSON keeps
    return {**{k: out[k] for k in _POOL_FIELDS if k in out},
            **{k: v for k, v in out.items() if k not in _POOL_FIELDS}}
