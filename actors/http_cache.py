"""Encoded answers of list reads, reused while the tables they come from are unchanged.

``GET /v1/nodes`` with 1,000 nodes builds 1,000 stubs inside the Raft actor
and encodes ~300 KB of JSON per request; profiled under load that was
three quarters of a server's CPU, and the answer is the same bytes until a
node changes.  :func:`cached_state_query` keeps the encoded body with the
table index it was computed at (the ``X-Nomad-Index`` Nomad reports: the
highest index of the tables the list reads).  Each request still makes its
read exactly as before -- linearizable through the leader unless
``?stale``, blocking on ``?index=`` -- but the query it runs inside the
Raft actor first compares the tables' index with the cached one and, when
equal, answers a marker instead of rebuilding the list; the handler then
sends the cached bytes.  A change to any of the tables moves the index, so
a stale body is never served.

The key is the route plus every query parameter that shapes the answer
(``index``, ``wait`` and ``stale`` decide only when and where the read
happens) and the request's token headers, so an ACL-filtered answer is
never shared between tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from actors.http_api import JSON, Api, Request, Response, state_query

__all__ = ["MAX_ENTRIES", "cached_state_query"]

# Distinct (route, parameters, token) answers kept per process.  A handful of
# dashboards and CLIs ask the same few lists; each entry is one encoded list
# (~300 KB for 1,000 nodes), so this bounds the memory at tens of MB.
MAX_ENTRIES = 64
# Query parameters that do not change the answer's content.
_NOT_CONTENT = frozenset({"index", "wait", "stale"})
_TOKEN_HEADERS = ("HTTP_X_NOMAD_TOKEN", "HTTP_AUTHORIZATION")
_UNCHANGED = object()  # the query's answer when the cached body is still current

_cache: dict[tuple[Any, ...], tuple[int, bytes]] = {}


def _key(req: Request, api: Api, name: str) -> tuple[Any, ...]:
    params = tuple(sorted((k, tuple(v)) for k, v in req.query.items() if k not in _NOT_CONTENT))
    environ = req.environ or {}
    return (api.env.node, name, params, tuple(environ.get(h, "") for h in _TOKEN_HEADERS))


def cached_state_query(req: Request, api: Api, name: str, tables: tuple[str, ...],
                       query: Callable[[Any], Any]) -> Any:
    """:func:`~actors.http_api.state_query`, answering the encoded list from the cache when current."""
    if "pretty" in req.query:
        return state_query(req, api, tables, query)  # rare: not worth a second encoding's entry
    key = _key(req, api, name)
    hit = _cache.get(key)
    known = hit[0] if hit is not None else -1

    def cached(st: Any) -> Any:  # inside the Raft actor: reads its state, never the cache
        index = max([st.table_index.get(t, 0) for t in tables] + [1])  # as http_api._guarded does
        return _UNCHANGED if index == known else query(st)

    answer = state_query(req, api, tables, cached)
    if answer.value is _UNCHANGED and hit is not None:
        body = hit[1]
    else:
        body = json.dumps(answer.value, separators=(",", ":")).encode()
        index = int(dict(answer.headers).get("X-Nomad-Index", "0"))
        _cache.pop(key, None)
        while len(_cache) >= MAX_ENTRIES:
            _cache.pop(next(iter(_cache)))  # the oldest entry
        _cache[key] = (index, body)
    return Response(200, body, JSON, answer.headers)
