"""``/v1/search``: prefix search over jobs, evals, allocations, nodes... (Nomad ``Search.PrefixSearch``).

A PUT or POST of ``{"Prefix": "...", "Context": "..."}`` answers
``{"Matches": {context: [IDs]}, "Truncations": {context: bool}, "Index": N, ...}``
as Nomad's does:

* ``Context`` is one of :data:`CONTEXTS`; ``all`` searches every one.
* Jobs match by ID prefix within the request's namespace; namespaces and
  node pools by name.  Evaluations, allocations, nodes, deployments and scaling policies are
  UUIDs: a prefix that is not hex (hyphens aside) cannot name one, and such a
  context is left out of the answer, as Nomad leaves it out; an odd-length
  prefix is cut to the even length below it (``roundUUIDDownIfOdd``) to read
  the IDs, of which those starting with the whole prefix are kept.
* At most :data:`TRUNCATE_LIMIT` IDs per context, sorted; ``Truncations``
  says where more matched.
* With ACLs, ``all`` searches only what the token may read (jobs, evals and
  allocs: ``read-job`` in the namespace; nodes and node pools: ``node:read``);
  naming a context the token may not read is 403.  Without ACLs, everything.

Scaling policies are UUIDs too, matched in the namespace of their target.
Variables (context ``vars``, as Nomad names it) match by path, in every
namespace the token may read.  Contexts of objects this agent does not have
(plugins, CSI and host volumes) are searched and match nothing.  An unknown
context is Nomad's 500 naming the contexts.

``/v1/search/fuzzy`` (Nomad ``Search.FuzzySearch``, the web UI's search box):
``{"Text", "Context"}`` answers ``{"Matches": {context: [{ID, Scope}]},
"Truncations", "Index", ...}``.  Names containing the text, case-insensitive:
jobs (and their ``groups``, ``services``, ``tasks``, and ``commands`` /
``images`` / ``classes`` of their drivers, each with a ``Scope`` of its
parents' IDs, namespace first), allocations, nodes, node pools, namespaces
and variables; evaluations, deployments and scaling policies by ``?prefix=``
on their IDs (the first :data:`TRUNCATE_LIMIT` of them, kept when their ID
starts with the text), as Nomad's.  Sorted by where the text is found, then shorter
names; at most :data:`FUZZY_LIMIT_QUERY` objects scanned and
:data:`FUZZY_LIMIT_RESULTS` kept per context (Truncations says so); text
shorter than :data:`FUZZY_MIN_TERM_LENGTH` is refused with Nomad's message.
``?namespace=*`` searches every namespace the token may read.
"""

from __future__ import annotations

import heapq
import re
from typing import Any

from actors.acl import ACL, READ, Need
from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    decode_json,
    read_body,
    request_namespace,
    require,
    route,
    state_query,
)

# Nomad's search truncateLimit: IDs returned per context.
TRUNCATE_LIMIT = 20
CONTEXTS = ("all", "jobs", "evals", "allocs", "nodes", "deployment", "namespaces", "node_pools", "plugins",
            "volumes", "scaling_policy", "vars", "host_volumes")
# Nomad's allContexts (ossContexts), in its order, as its error for an unknown context lists them.
_NOMAD_CONTEXTS = ("allocs", "jobs", "nodes", "node_pools", "evals", "deployment", "plugins", "volumes",
                   "scaling_policy", "vars", "namespaces", "host_volumes")
_UUID_CONTEXTS = {"evals": "evals", "allocs": "allocs", "nodes": "nodes", "deployment": "deployments",
                  "scaling_policy": "scaling_policies", "host_volumes": ""}
_HEX = re.compile(r"^[0-9a-fA-F]*$")
# what a search reads
_TABLES = ("jobs", "evals", "allocs", "nodes", "deployments", "scaling_policies", "variables", "namespaces")


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
    if context in ("jobs", "evals", "allocs", "deployment", "scaling_policy", "volumes", "host_volumes"):
        return acl.allows_one(Need("namespace", "read-job", namespace))
    if context == "vars":
        return _variable_search(acl, namespace)
    if context == "namespaces":
        return any(acl.allows_one(Need("namespace", cap, namespace)) for cap in ("read-job", "list-jobs"))
    return True


def search_query(prefix: str, contexts: tuple[str, ...], namespace: str,  # type: ignore[no-untyped-def]
                 acl: Any = None):
    def query(st: Any) -> tuple[dict[str, list[str]], dict[str, bool], int]:
        tables = st.tables
        found: dict[str, list[str]] = {}

        def here(ns: str) -> bool:
            # ``*``: every namespace (Nomad's ...ByIDPrefix of AllNamespacesSentinel), each object's
            # namespace still checked -- stricter than Nomad, which lists them all once the token may
            # read-job in ``*`` (a namespace it is denied would show its IDs).
            if namespace == "*":
                return acl is None or acl.allows_one(Need("namespace", "read-job", ns))
            return ns == namespace

        for ctx in contexts:
            if ctx in _UUID_CONTEXTS:
                rounded = _round_uuid(prefix)
                if rounded is None:
                    continue  # Nomad: "Invalid UUID", silenced, the context left out
                table = _UUID_CONTEXTS[ctx]
                rows = tables.get(table, {}) if table else {}
                ids = [k for k, v in rows.items() if k.startswith(rounded)
                       and (ctx == "nodes" or here(v["Target"].get("Namespace") if ctx == "scaling_policy"
                                                   else v.get("Namespace", "default")))]
            elif ctx == "jobs":
                ids = [v.get("ID", k) for k, v in tables["jobs"].items()
                       if v.get("ID", k).startswith(prefix) and here(v.get("Namespace", "default"))]
            elif ctx == "namespaces":
                from actors.state import namespaces as ns_state

                # Nomad's nsCapFilter: only the namespaces the token holds something in (AllowNamespace)
                ids = [n["Name"] for n in ns_state.listed(tables, prefix) if _ns_readable(acl, n["Name"])]
            elif ctx == "node_pools":
                pools = {"all", "default", *(n.get("NodePool", "default") for n in tables["nodes"].values())}
                ids = [p for p in pools if p.startswith(prefix)]
            elif ctx == "vars":  # Nomad's GetVariablesByPrefix: paths in every namespace the token may read
                ids = [v["Path"] for v in tables.get("variables", {}).values()
                       if v["Path"].startswith(prefix) and _ns_readable(acl, v.get("Namespace", "default"))]
            else:
                ids = []
            found[ctx] = sorted(ids)
        # Nomad's getPrefixMatches reads the first truncateLimit objects the (rounded) prefix finds and
        # keeps those whose ID starts with the prefix as given; truncated when there were more to read.
        matches = {ctx: [i for i in ids[:TRUNCATE_LIMIT] if i.startswith(prefix)]
                   for ctx, ids in found.items()}
        truncations = {ctx: len(ids) > TRUNCATE_LIMIT for ctx, ids in found.items()}
        index = max((st.table_index.get(t, 0) for t in _TABLES), default=0)
        return matches, truncations, index
    return query


def _search_request(req: Request, api: Api, term_key: str) -> tuple[str, str, str, Any]:
    """(the search term, the context, the namespace, the token's ACL or None) of a search request's
    JSON body ``{<term_key>, "Context"}``; 400 for a bad body, as Nomad's."""
    require(req, "PUT", "POST")
    try:
        body = decode_json(read_body(req) or b"{}")
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise CodedError(400, "Request body must be a JSON object")
    term, context = body.get(term_key, ""), body.get("Context", "")
    if not isinstance(term, str) or not isinstance(context, str):
        raise CodedError(400, f"{term_key} and Context must be strings")
    if context not in CONTEXTS:  # Nomad's getEnterpriseResourceIter error, a 500 as there
        raise CodedError(500, f"context must be one of [{' '.join(_NOMAD_CONTEXTS)}] or 'all' for all "
                              f'contexts; got "{context}"')
    namespace = request_namespace(req)
    acl = None
    if api.ctx.acl_enabled:
        from actors.http_acl import resolve

        _, acl = resolve(req, api)
    return term, context, namespace, acl


@route("/v1/search")
def search(req: Request, api: Api) -> Any:
    prefix, context, namespace, acl = _search_request(req, api, "Prefix")
    if context != "all" and not _allowed(acl, namespace, context):
        raise CodedError(403, "Permission denied")
    contexts = tuple(c for c in (CONTEXTS[1:] if context == "all" else (context,))
                     if _allowed(acl, namespace, c))
    # A read like every other (linearizable unless ?stale), blocking on the tables searched.
    answer = state_query(req, api, _TABLES, search_query(prefix, contexts, namespace, acl))
    matches, truncations, index = answer.value
    meta = dict(answer.headers)
    matches, truncations = dict(sorted(matches.items())), dict(sorted(truncations.items()))  # Go's map order
    return Answer({"Matches": matches, "Truncations": truncations, "Index": index,
                   "KnownLeader": meta.get("X-Nomad-KnownLeader") == "true",
                   "LastContact": int(meta.get("X-Nomad-LastContact", "0")), "NextToken": ""}, answer.headers)


# ---------------------------------------------------------------- /v1/search/fuzzy (Search.FuzzySearch)

# Nomad's server.search defaults (SearchConfig; that config block is ignored here, see
# runtime/config_nomad_keys.py): objects scanned per context, matches kept per context,
# and the shortest text searched.
FUZZY_LIMIT_QUERY = 20
FUZZY_LIMIT_RESULTS = 100
FUZZY_MIN_TERM_LENGTH = 2
# Contexts searched by ?prefix= on their UUIDs (Nomad's FuzzySearch does not fuzzy-match these).
_FUZZY_UUID = {"evals": "evals", "deployment": "deployments", "scaling_policy": "scaling_policies",
               "volumes": "", "host_volumes": ""}
_FUZZY_TABLES = ("jobs", "evals", "allocs", "nodes", "deployments", "scaling_policies", "variables",
                 "node_pools", "namespaces")


def _variable_search(acl: Any, namespace: str) -> bool:
    """Nomad's AllowVariableSearch: the token's policies alone -- a workload identity's implicit right
    to its own job's variables does not extend to searching its namespace's paths."""
    if isinstance(acl, ACL):
        return ACL.allow_variable_search(acl, namespace)
    return acl.allow_variable_search(namespace)


def _fuzzy_allowed(acl: Any, namespace: str, context: str) -> bool:
    if acl is None:
        return True
    if context == "vars":
        return _variable_search(acl, namespace)
    if context == "plugins":
        return acl.allow_level("plugin", "list")
    if context == "node_pools":
        return acl.allows_one(Need("node_pool", READ))
    if context == "scaling_policy":
        return acl.allow_namespace(namespace, "list-scaling-policies") or acl.allow_namespace(namespace,
                                                                                                "read-job")
    return _allowed(acl, namespace, context)


def _ns_readable(acl: Any, namespace: str) -> bool:
    """Nomad's AllowNamespace: the token holds some capability in *namespace*."""
    if acl is None or acl.management:
        return True
    caps = acl.namespace_caps(namespace)
    return bool(caps) and "deny" not in caps


def _fuzzy_job(job: dict[str, Any], text: str) -> list[tuple[str, tuple[str, int, list[str]]]]:
    """Nomad's fuzzyMatchesJob: the job's name, its groups, services, tasks and drivers' commands/images."""
    out: list[tuple[str, tuple[str, int, list[str]]]] = []
    ns, jid = job.get("Namespace", "default"), job.get("ID", "")

    def hit(ctx: str, name: Any, *scope: str) -> None:
        if isinstance(name, str) and (i := name.lower().find(text)) >= 0:
            out.append((ctx, (name, i, [ns, *scope])))

    hit("jobs", job.get("Name") or jid, jid)
    for group in job.get("TaskGroups") or []:
        gname = group.get("Name", "")
        hit("groups", gname, jid)
        for svc in group.get("Services") or []:
            hit("services", svc.get("Name", ""), jid, gname)
        for task in group.get("Tasks") or []:
            tname = task.get("Name", "")
            hit("tasks", tname, jid, gname)
            for svc in task.get("Services") or []:
                hit("services", svc.get("Name", ""), jid, gname, tname)
            config, driver = task.get("Config") or {}, task.get("Driver", "")
            param = {"docker": ("images", "image"), "exec": ("commands", "command"),
                     "raw_exec": ("commands", "command"), "java": ("classes", "class")}.get(driver)
            if param:
                hit(param[0], config.get(param[1]), jid, gname, tname)
    return out


def _fuzzy_single(ctx: str, row: dict[str, Any], text: str) -> list[tuple[str, tuple[str, int, list[str]]]]:
    """Nomad's fuzzyMatchSingle: the name matched and the scope each context answers."""
    if ctx == "nodes":
        name, scope = row.get("Name", ""), [row.get("ID", "")]
    elif ctx == "node_pools":
        name, scope = row.get("Name", ""), [row.get("Name", "")]
    elif ctx == "namespaces":
        name, scope = row.get("Name", ""), []
    elif ctx == "allocs":
        name, scope = row.get("Name", ""), [row.get("Namespace", "default"), row.get("ID", "")]
    else:  # vars
        name, scope = row.get("Path", ""), [row.get("Namespace", "default"), row.get("Path", "")]
    i = name.lower().find(text)
    return [(ctx, (name, i, scope))] if i >= 0 else []


def _fuzzy_rows(tables: Any, ctx: str, namespace: str, acl: Any, limit: int) -> list[dict[str, Any]]:
    """The first *limit* objects a context scans, in Nomad's index order: those of the namespace asked,
    or for ``*`` those of every namespace the token may read them in (Nomad's nsCapFilter).  Only they
    are put in order (a scan reads no further), not the whole table."""
    from actors.state import node_pools as pools

    def keep(row: dict[str, Any]) -> bool:
        ns = row.get("Namespace", "default")
        if namespace != "*":
            return ns == namespace
        if acl is None:
            return True
        return _variable_search(acl, ns) if ctx == "vars" else acl.allow_namespace(ns, "read-job")

    if ctx == "jobs":
        return heapq.nsmallest(limit, (j for j in tables.get("jobs", {}).values() if keep(j)),
                               key=lambda j: (j.get("Namespace", "default"), j["ID"]))
    if ctx == "allocs":
        return [a for _, a in heapq.nsmallest(limit, ((k, a) for k, a in tables.get("allocs", {}).items()
                                                      if keep(a)), key=lambda ka: ka[0])]
    if ctx == "vars":
        return heapq.nsmallest(limit, (v for v in tables.get("variables", {}).values() if keep(v)),
                               key=lambda v: (v.get("Namespace", "default"), v.get("Path", "")))
    if ctx == "nodes":
        if namespace == "*" and acl is not None and not acl.allow_level("node", READ):
            return []
        return [n for _, n in heapq.nsmallest(limit, tables.get("nodes", {}).items(), key=lambda kn: kn[0])]
    if ctx == "node_pools":
        return [p for p in pools.listed(tables)
                if acl is None or acl.allow_node_pool(p.get("Name", ""), READ)]
    if ctx == "namespaces":
        from actors.state import namespaces as ns_state

        return [{"Name": n["Name"]} for n in ns_state.listed(tables) if _ns_readable(acl, n["Name"])]
    return []  # plugins: none here


def fuzzy_query(text: str, prefix: str, fuzzy: tuple[str, ...], by_prefix: tuple[str, ...],
                namespace: str, acl: Any, raw_text: str = ""):  # type: ignore[no-untyped-def]
    """*text* lower-cased for the fuzzy contexts; *raw_text* as given, which the UUID contexts' IDs must
    start with (Nomad's getPrefixMatches is called with the request's Text)."""
    def query(st: Any) -> tuple[dict[str, list[dict[str, Any]]], dict[str, bool], int]:
        tables = st.tables
        matches: dict[str, list[dict[str, Any]]] = {}
        truncations: dict[str, bool] = {}
        for ctx in by_prefix:  # UUIDs by ?prefix=, as Nomad's getPrefixMatches (truncateLimit)
            rounded = _round_uuid(prefix)
            table = _FUZZY_UUID[ctx]
            if rounded is None or not table:
                continue
            ids = sorted(k for k, v in tables.get(table, {}).items() if k.startswith(rounded)
                         and namespace in ("*", v["Target"].get("Namespace") if ctx == "scaling_policy"
                                           else v.get("Namespace", "default")))
            # Nomad reads the first truncateLimit objects of the ?prefix= scan and keeps those whose ID
            # starts with the text: an empty list when none does, truncated when the scan had more.
            matches[ctx] = [{"ID": i} for i in ids[:TRUNCATE_LIMIT] if i.startswith(raw_text)]
            truncations[ctx] = len(ids) > TRUNCATE_LIMIT
        for ctx in fuzzy:
            truncations[ctx] = False
            rows = _fuzzy_rows(tables, ctx, namespace, acl, FUZZY_LIMIT_QUERY + 1)  # one more: truncated?
            found: dict[str, list[tuple[str, int, list[str]]]] = {}
            for i, row in enumerate(rows[:FUZZY_LIMIT_QUERY]):
                limited = i == FUZZY_LIMIT_QUERY - 1 and len(rows) > FUZZY_LIMIT_QUERY
                hits = _fuzzy_job(row, text) if ctx == "jobs" else _fuzzy_single(ctx, row, text)
                for hit_ctx, match in hits:
                    kept = found.setdefault(hit_ctx, [])
                    if len(kept) >= FUZZY_LIMIT_RESULTS:
                        truncations[hit_ctx] = True  # Nomad: truncated by the results limit
                        break
                    kept.append(match)
                    if limited:
                        truncations[hit_ctx] = True  # Nomad: truncated by the query limit
                        break
            for hit_ctx, kept in found.items():
                kept.sort(key=lambda m: (m[1], len(m[0]), m[0]))  # Nomad's sortSet
                # Scope (the parents' IDs, namespace first) is omitted when empty, as Nomad's omitempty
                matches[hit_ctx] = [{"ID": name, **({"Scope": scope} if scope else {})}
                                    for name, _, scope in kept]
        index = max((st.table_index.get(t, 0) for t in _FUZZY_TABLES), default=0)
        return matches, truncations, index
    return query


@route("/v1/search/fuzzy")
def fuzzy_search(req: Request, api: Api) -> Any:
    text, context, namespace, acl = _search_request(req, api, "Text")
    prefix = (req.query.get("prefix") or [""])[0]
    wanted = CONTEXTS[1:] if context == "all" else (context,)
    if namespace == "*":  # Nomad: every context, each object checked against its own namespace
        allowed = wanted
    else:
        if context != "all" and not _fuzzy_allowed(acl, namespace, context):
            raise CodedError(403, "Permission denied")
        allowed = tuple(c for c in wanted if _fuzzy_allowed(acl, namespace, c))
    if len(text.encode()) < FUZZY_MIN_TERM_LENGTH:
        raise CodedError(500, f"fuzzy search query must be at least {FUZZY_MIN_TERM_LENGTH} characters, "
                              f"got {len(text.encode())}")
    # Nomad scans the UUID-named contexts by ?prefix= only, with the rules of the namespace asked
    # (for "*", a rule on "*" itself).
    by_prefix = tuple(c for c in wanted if c in _FUZZY_UUID and _fuzzy_allowed(acl, namespace, c))
    fuzzy = tuple(c for c in allowed if c not in _FUZZY_UUID)
    answer = state_query(req, api, _FUZZY_TABLES, fuzzy_query(text.lower(), prefix, fuzzy, by_prefix,
                                                              namespace, acl, raw_text=text))
    matches, truncations, index = answer.value
    meta = dict(answer.headers)
    matches, truncations = dict(sorted(matches.items())), dict(sorted(truncations.items()))  # Go's map order
    return Answer({"Matches": matches, "Truncations": truncations, "Index": index,
                   "KnownLeader": meta.get("X-Nomad-KnownLeader") == "true",
                   "LastContact": int(meta.get("X-Nomad-LastContact", "0")), "NextToken": ""}, answer.headers)
