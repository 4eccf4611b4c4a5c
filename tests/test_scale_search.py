"""Fuzzy search reads only the first ``FUZZY_LIMIT_QUERY`` objects of a context in index order (Nomad's
``limit_query``): it puts those in order, not the whole table, and answers what ordering every object
and taking the first ones answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import actors.http_api  # noqa: F401  (first: http_search imports it)
from actors import http_search
from actors.http_search import FUZZY_LIMIT_QUERY, _fuzzy_rows, fuzzy_query


def scanned(tables: Any, ctx: str, namespace: str) -> list[dict[str, Any]]:
    """Every object of the context in index order (what the limit then cuts)."""
    def keep(row: dict[str, Any]) -> bool:
        return namespace == "*" or row.get("Namespace", "default") == namespace
    if ctx == "jobs":
        rows = sorted(tables["jobs"].values(), key=lambda j: (j.get("Namespace", "default"), j["ID"]))
    elif ctx == "vars":
        rows = sorted(tables["variables"].values(), key=lambda v: (v.get("Namespace", "default"), v["Path"]))
    else:
        rows = [r for _, r in sorted(tables[{"allocs": "allocs", "nodes": "nodes"}[ctx]].items())]
    return [r for r in rows if ctx == "nodes" or keep(r)]


def cluster(n: int) -> dict[str, Any]:
    jobs, allocs, nodes, variables = {}, {}, {}, {}
    for i in range(n):
        ns = ("default", "prod", "dev")[i % 3]
        jid = f"web-{(i * 7919) % n:03d}"
        jobs[f"{ns}\0{jid}"] = {"ID": jid, "Name": jid, "Namespace": ns, "TaskGroups": [
            {"Name": "api", "Tasks": [{"Name": "srv", "Driver": "raw_exec", "Config": {"command": "web"}}]}]}
        aid = f"{(i * 104729) % 9973:04x}-alloc"
        allocs[aid] = {"ID": aid, "Name": f"{jid}.api[0]", "Namespace": ns}
        nid = f"{(i * 31337) % 9973:04x}-node"
        nodes[nid] = {"ID": nid, "Name": f"web-node-{i}"}
        variables[f"{ns}\0web/{i}"] = {"Path": f"web/{(i * 13) % n}", "Namespace": ns}
    return {"jobs": jobs, "allocs": allocs, "nodes": nodes, "variables": variables, "evals": {},
            "deployments": {}, "scaling_policies": {}, "node_pools": {}, "namespaces": {}}


def test_a_context_gives_its_first_objects_in_index_order_and_no_more() -> None:
    tables = cluster(90)
    for ctx in ("jobs", "allocs", "nodes", "vars"):
        for ns in ("default", "prod", "*"):
            got = _fuzzy_rows(tables, ctx, ns, None, FUZZY_LIMIT_QUERY + 1)
            assert got == scanned(tables, ctx, ns)[:FUZZY_LIMIT_QUERY + 1], (ctx, ns)


def test_fuzzy_search_answers_as_a_scan_of_every_object_would(monkeypatch: Any) -> None:
    st = SimpleNamespace(tables=cluster(90), table_index={})
    query = fuzzy_query("web", "", ("jobs", "allocs", "nodes", "vars"), (), "*", None, "web")
    got = query(st)
    monkeypatch.setattr(http_search, "_fuzzy_rows",
                        lambda tables, ctx, ns, acl, limit: scanned(tables, ctx, ns))
    assert got == query(st)
    assert got[1]["jobs"] is True and len(got[0]["jobs"]) == FUZZY_LIMIT_QUERY  # truncated by the query limit
