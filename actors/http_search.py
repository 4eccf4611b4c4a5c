"""``/v1/search``: prefix search over jobs, evals, allocations, nodes... (Nomad ``Search.PrefixSearch``).

A PUT or POST of ``{"Prefix": "...", "Context": "..."}`` answers
``{"Matches": {context: [IDs]}, "Truncations": {context: bool}, "Index": N, ...}``
as Nomad's does:

* ``Context`` is one of :data:`CONTEXTS`; ``all`` searches every one.
* Jobs match by ID prefix within the request's namespace; namespaces and
  node pools by name.  Evaluations, allocations, nodes, deployments and scaling policies are
  UUIDs: a prefix that is not hex (hyphens aside) cannot name one, and such a
  context is left out of the answer, as Nomad leaves it out; an odd-length
  prefix is cut to the even length below it (``roundUUIDDownIfOdd``).
* At most :data:`TRUNCATE_LIMIT` IDs per context, sorted; ``Truncations``
  says where more matched.
* With ACLs, ``all`` searches only what the token may read (jobs, evals and
  allocs: ``read-job`` in the namespace; nodes and node pools: ``node:read``);
  naming a context the token may not read is 403.  Without ACLs, everything.

Scaling policies are UUIDs too, matched in the namespace of their target.
Contexts of objects this agent does not have (plugins, CSI volumes,
variables) are searched and match nothing.
"""

from __future__ import annotations

import re
from typing import Any

from actors.acl import READ, Need
from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    decode_json,
    read_body,
    require,
    route,
    state_query,
)

# Nomad's search truncateLimit: IDs returned per context.
TRUNCATE_LIMIT = 20
CONTEXTS = ("all", "jobs", "evals", "allocs", "nodes", "deployment", "namespaces", "node_pools", "plugins",
            "volumes", "scaling_policy", "variables")
_UUID_CONTEXTS = {"evals": "evals", "allocs": "allocs", "nodes": "nodes", "deployment": "deployments",
                  "scaling_policy": "scaling_policies"}
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_TABLES = ("jobs", "evals", "allocs", "nodes", "deployments", "scaling_policies")  # what a search reads


def _round_uuid(prefix: str) -> str | None:
    """The prefix a UUID search uses, or None when no UUID can start with it."""
    bare = prefix.replace("-", "")
    if not _HEX.match(bare):
        return None
    return prefix if len(bare) % 2 == 0 else prefix[:-1]


def _allowed(acl: Any, namespace: str, context: str) -> bool:
    if acl is None:
        return True
    if context in ("nodes", "node_pools"):
        return acl.allows_one(Need("node", READ))
    if context in ("jobs", "evals", "allocs", "deployment", "scaling_policy", "volumes"):
        return acl.allows_one(Need("namespace", "read-job", namespace))
    if context == "namespaces":
        return any(acl.allows_one(Need("namespace", cap, namespace)) for cap in ("read-job", "list-jobs"))
    return True


def search_query(prefix: str, contexts: tuple[str, ...], namespace: str):  # type: ignore[no-untyped-def]
    def query(st: Any) -> tuple[dict[str, list[str]], dict[str, bool], int]:
        tables = st.tables
        found: dict[str, list[str]] = {}
        for ctx in contexts:
            if ctx in _UUID_CONTEXTS:
                rounded = _round_uuid(prefix)
                if rounded is None:
                    continue  # Nomad: "Invalid UUID", silenced, the context left out
                table = _UUID_CONTEXTS[ctx]
                rows = tables.get(table, {}) if table else {}
                ids = [k for k, v in rows.items() if k.startswith(rounded)
                       and (ctx == "nodes" or (v["Target"].get("Namespace") if ctx == "scaling_policy"
                                               else v.get("Namespace", "default")) == namespace)]
            elif ctx == "jobs":
                ids = [k for k, v in tables["jobs"].items()
                       if k.startswith(prefix) and v.get("Namespace", "default") == namespace]
            elif ctx == "namespaces":
                ids = [n for n in ("default",) if n.startswith(prefix)]
            elif ctx == "node_pools":
                pools = {"all", "default", *(n.get("NodePool", "default") for n in tables["nodes"].values())}
                ids = [p for p in pools if p.startswith(prefix)]
            else:
                ids = []
            found[ctx] = sorted(ids)
        matches = {ctx: ids[:TRUNCATE_LIMIT] for ctx, ids in found.items()}
        truncations = {ctx: len(ids) > TRUNCATE_LIMIT for ctx, ids in found.items()}
        index = max((st.table_index.get(t, 0) for t in _TABLES), default=0)
        return matches, truncations, index
    return query


@route("/v1/search")
def search(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    try:
        body = decode_json(read_body(req) or b"{}")
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise CodedError(400, "Request body must be a JSON object")
    prefix, context = body.get("Prefix", ""), body.get("Context", "")
    if not isinstance(prefix, str) or not isinstance(context, str):
        raise CodedError(400, "Prefix and Context must be strings")
    if context not in CONTEXTS:
        raise CodedError(400, f"context must be one of {list(CONTEXTS)}; got {context!r}")
    namespace = (req.query.get("namespace") or ["default"])[0] or "default"
    acl = None
    if api.ctx.acl_enabled:
        from actors.http_acl import resolve

        _, acl = resolve(req, api)
    if context != "all" and not _allowed(acl, namespace, context):
        raise CodedError(403, "Permission denied")
    contexts = tuple(c for c in (CONTEXTS[1:] if context == "all" else (context,))
                     if _allowed(acl, namespace, c))
    # A read like every other (linearizable unless ?stale), blocking on the tables searched.
    answer = state_query(req, api, _TABLES, search_query(prefix, contexts, namespace))
    matches, truncations, index = answer.value
    meta = dict(answer.headers)
    return Answer({"Matches": matches, "Truncations": truncations, "Index": index,
                   "KnownLeader": meta.get("X-Nomad-KnownLeader") == "true",
                   "LastContact": int(meta.get("X-Nomad-LastContact", "0")), "NextToken": ""}, answer.headers)
