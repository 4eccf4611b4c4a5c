"""Allocation-scoped client endpoints answered by any agent: relayed to the node that runs the allocation.

Nomad serves ``/v1/client/fs/...`` and ``/v1/client/allocation/<id>/...`` on
every agent: a client that runs the allocation answers itself, any other
agent (a server, or a client that does not run it) finds the allocation's
node and has the request answered there (``client_fs_endpoint.go``,
``client_alloc_endpoint.go`` through the servers' connection to the node).
Here the relay is HTTP, as the CLI's own: the allocation and its node are
read through this agent's own API (so a client-only agent asks its servers,
and the caller's token must be allowed to read the allocation), and the
request is proxied to the node's advertised HTTP address with the caller's
token.  A followed stream (logs ``follow=true``, ``fs/stream``) is passed on
chunk by chunk as it comes.

The relayed request carries ``X-Nomad-Client-Forwarded``; an agent that
receives it answers itself whatever it holds, so a request is relayed at
most once.  Errors: an allocation the servers do not know is Nomad's ``404
Unknown allocation "<id>"``; a node with no HTTP address, or one that cannot
be reached, ``500`` with the reason.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from actors import http_api
from actors.http_api import (
    PLAIN,
    Api,
    App,
    CodedError,
    Request,
    Response,
    Stream,
    _stale_read,
    read_body,
    request_namespace,
)
from actors.http_limits import CALLER_GONE, close_when_gone

log = logging.getLogger("agent.http.client_forward")

FS_PREFIX = "/v1/client/fs/"
ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)
ALLOC_PREFIX = "/v1/client/allocation/"
FORWARDED_HEADER = "X-Nomad-Client-Forwarded"
_FORWARDED_ENVIRON = "HTTP_X_NOMAD_CLIENT_FORWARDED"
# Headers of the caller's request that go along (the token, the body's type).
PASSED_HEADERS = (("CONTENT_TYPE", "Content-Type"), ("HTTP_X_NOMAD_TOKEN", "X-Nomad-Token"),
                  ("HTTP_AUTHORIZATION", "Authorization"))
# Each read from the node waits at most this long.  A followed stream sends
# an empty frame every second while idle (actors.http_client_fs
# FOLLOW_HEARTBEAT_S), and a one-shot answer is a local file read, so this
# much silence means the node is gone; a connect to a dead node fails as fast.
CLIENT_FORWARD_TIMEOUT_S = 10.0
# The relayed stream is read in pieces at most this big (a frame is 64 KiB of data, base64'd).
RELAY_CHUNK_BYTES = 128 * 1024


# The operations relayed and the methods each takes (others are answered
# here: the local handler's 404 or 405, as for any agent).
FS_OPS = {op: ("GET",) for op in ("logs", "ls", "stat", "cat", "readat", "stream")}
ALLOC_OPS = {"stats": ("GET",), "checks": ("GET",), "restart": ("PUT", "POST"), "signal": ("PUT", "POST"),
             "gc": ("GET", "PUT", "POST"), "snapshot": ("GET",)}


def alloc_id_of(method: str, path: str) -> str:
    """The allocation ID a relayable client request names; "" when it is not one (answered here)."""
    if path.startswith(FS_PREFIX):
        op, _, alloc_id = path[len(FS_PREFIX):].partition("/")  # fs/<op>/<alloc>
        return alloc_id if method in FS_OPS.get(op, ()) else ""
    if path.startswith(ALLOC_PREFIX):
        alloc_id, _, op = path[len(ALLOC_PREFIX):].partition("/")  # allocation/<alloc>/<op>
        return alloc_id if method in ALLOC_OPS.get(op, ()) else ""
    return ""


def _held_here(api: Api, alloc_id: str) -> bool:
    """This agent is a client and has the allocation's directory (so it runs or ran it)."""
    logs = api.ctx.alloc_logs
    if logs is None or not alloc_id or "/" in alloc_id or alloc_id in (".", ".."):
        return False
    return os.path.isdir(os.path.join(logs.root, alloc_id))


def _read_own_api(api: Api, environ: dict[str, Any], path: str) -> tuple[int, Any]:
    """GET *path* through this agent's own API, as the caller (its token)."""
    sub = {k: environ[k] for k, _ in PASSED_HEADERS if k in environ and k != "CONTENT_TYPE"}
    resp = App(api)._respond(Request(method="GET", path=path, query={}, url=path, environ=sub), sub)
    if not isinstance(resp, Response):
        raise CodedError(500, f"unexpected streamed answer reading {path}")
    if resp.status != 200:
        return resp.status, resp.body.decode(errors="replace").strip()
    return 200, json.loads(resp.body)


def _locate(api: Api, environ: dict[str, Any], alloc_id: str) -> tuple[str, str, str] | None:
    """(node ID, node HTTP address, the allocation's namespace); None: no such allocation.

    A server reads its own state store, with no token: the caller's rights
    are checked by the node, in the allocation's namespace (Nomad needs
    read-fs / alloc-lifecycle there, not node:read).  A client-only agent
    has no store: it reads through its servers as the caller, so there the
    caller's token must also read the allocation and its node.
    """
    raft = api.env.lookup("raft")
    if raft is not None and raft.is_alive():
        def query(st: Any) -> tuple[str, str, str] | None:
            a = st.tables["allocs"].get(alloc_id)
            if a is None:
                return None
            n = st.tables["nodes"].get(a.get("NodeID", "")) or {}
            return a.get("NodeID", ""), n.get("HTTPAddr") or "", a.get("Namespace") or "default"
        return _stale_read(api, query)[1]
    status, alloc = _read_own_api(api, environ, f"/v1/allocation/{alloc_id}")
    if status == 404:
        return None
    if status != 200:
        raise CodedError(status, str(alloc))
    status, node = _read_own_api(api, environ, f"/v1/node/{alloc['NodeID']}")
    if status != 200:
        raise CodedError(500 if status == 404 else status,
                         f"the node of allocation {alloc_id} ({alloc['NodeID']}): {node}")
    return alloc["NodeID"], node.get("HTTPAddr") or "", alloc.get("Namespace") or "default"


def forward_client_route(req: Request, environ: dict[str, Any], api: Api) -> Response | Stream | None:
    """The client-route relay (an ``http_api.FORWARDERS`` hook); None: answered here."""
    if not req.path.startswith((FS_PREFIX, ALLOC_PREFIX)) or environ.get(_FORWARDED_ENVIRON):
        return None
    alloc_id = alloc_id_of(req.method, req.path)
    if not alloc_id or _held_here(api, alloc_id):
        return None
    found = _locate(api, environ, alloc_id)
    # The caller's token is checked here too, as the node will, in the
    # allocation's namespace: a caller with no right learns nothing (not even
    # whether the allocation exists) and costs the node nothing.
    namespace = found[2] if found is not None else request_namespace(req)
    checked = Request(method=req.method, path=req.path, query={**req.query, "namespace": [namespace]},
                      url=req.url, environ=req.environ)
    for guard in http_api.GUARDS:
        guard(checked, api)
    if found is None:
        raise CodedError(404, f'Unknown allocation "{alloc_id}"')
    node_id, target, namespace = found
    if not target:
        raise CodedError(500, f"node {node_id} has no HTTP address to relay to")
    body = read_body(req) if req.method in ("PUT", "POST") else b""
    headers = {name: environ[k] for k, name in PASSED_HEADERS if k in environ}
    headers[FORWARDED_HEADER] = "1"
    # The node checks the caller's token in the allocation's own namespace.
    query = {k: v for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
             .items() if k != "namespace"}
    query["namespace"] = [namespace]
    path = urllib.parse.quote(req.path, safe="/:@-._~!$&'()*+,;=")  # as sent: a decoded space would break it
    url = path + "?" + urllib.parse.urlencode(query, doseq=True)
    try:
        return _relay(target, req.method, url, body, headers, api.ctx.tls, follow=_follows(query),
                      caller_gone=environ.get(CALLER_GONE) or (lambda: False))
    except (OSError, http.client.HTTPException) as e:
        raise CodedError(500, f"failed relaying to node {node_id} at {target}: {e}") from None


def _follows(query: dict[str, list[str]]) -> bool:
    """A followed stream (``follow=true``): it may be silent for long (a plain one sends no heartbeats)."""
    return (query.get("follow") or [""])[0].lower() in ("1", "t", "true")


def _relay(target: str, method: str, url: str, body: bytes, headers: dict[str, str], tls: Any, *,
           follow: bool, caller_gone: Callable[[], bool] = lambda: False) -> Response | Stream:
    host, _, port = target.rpartition(":")
    if tls is not None:  # tls.http: the node's API is HTTPS too; we show our own certificate
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host.strip("[]"), int(port), timeout=CLIENT_FORWARD_TIMEOUT_S, context=tls.http_client_context())
    else:
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=CLIENT_FORWARD_TIMEOUT_S)
    try:
        conn.request(method, url, body=body if body or method in ("PUT", "POST") else None, headers=headers)
        resp = conn.getresponse()
    except BaseException:
        conn.close()
        raise
    ctype = resp.getheader("Content-Type", PLAIN)
    passed = tuple((k, v) for k, v in resp.getheaders() if k.lower().startswith("x-nomad-"))
    if resp.getheader("Content-Length") is not None:
        try:
            data = resp.read()
        finally:
            conn.close()
        return Response(resp.status, data, ctype, passed)
    if follow and conn.sock is not None:
        # Connected and answered: a followed stream may now be quiet for as
        # long as the task is (a plain one sends no heartbeat frames); it ends
        # when the node ends it or the caller hangs up.
        conn.sock.settimeout(None)
    return Stream(resp.status, _pass_on(conn, resp, caller_gone), ctype)


def _pass_on(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
             caller_gone: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """The node's streamed answer, piece by piece; the connection closes when the caller goes:
    at the next piece's failed write, or, while the node sends nothing (a quiet plain follow),
    when *caller_gone* says so."""
    watcher = close_when_gone(caller_gone, conn)
    try:
        while piece := resp.read1(RELAY_CHUNK_BYTES):
            yield piece
    except (OSError, ValueError) as e:  # the node went away mid-stream, or the caller did (closed above)
        if not caller_gone():
            log.warning("relayed client stream ended: %s", e)
    finally:
        watcher.kill(block=False)
        conn.close()


def alloc_namespace_guard(req: Request, api: Api) -> None:
    """With ACLs, a client route is checked in the allocation's own namespace (Nomad's client endpoints).

    The ACL guard checks the token in ``?namespace=`` (default: default);
    here the allocation this client runs must be in that namespace, or a
    token with rights in one namespace would read another's files by naming
    its own.  An allocation this client does not know is the handler's 404.
    """
    if not api.ctx.acl_enabled or api.ctx.alloc_logs is None:
        return
    alloc_id = alloc_id_of(req.method, req.path)
    if not alloc_id or api.env.lookup(ALLOC_RUNNER) is None or req.path.endswith("/snapshot"):
        return  # (a snapshot is authorised by its migrate token alone: actors.http_client_snapshot)
    from actors.client.alloc_runner import GetAllocNamespace  # noqa: PLC0415 - client agents only

    namespace = api.ask(ALLOC_RUNNER, GetAllocNamespace(alloc_id=alloc_id))
    asked = request_namespace(req)
    if namespace and namespace != asked:
        raise CodedError(403, "Permission denied")


http_api.FORWARDERS.append(forward_client_route)
http_api.GUARDS.append(alloc_namespace_guard)
