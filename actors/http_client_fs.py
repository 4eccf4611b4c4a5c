"""``/v1/client/fs/logs/<alloc_id>``: a task's stdout or stderr, served by the client that runs it.

Nomad's ``ClientFS.Logs`` with ``task``, ``type`` (``stdout``/``stderr``),
``origin`` (``start``/``end``), ``offset`` (bytes from that origin) and
``plain``.  ``plain=true`` answers the bytes as they are; otherwise one
frame ``{"File", "Offset", "Data"}`` (Data base64, as Nomad's StreamFrame).
The logs are read as they are now: ``follow`` (streaming) is refused with
400 rather than answered as if it worked.  ``nomad alloc logs`` asks the
node that runs the allocation directly, found through the servers.
"""

from __future__ import annotations

import base64
from typing import Any

from actors.client.alloc_logs import LogNotFound
from actors.http_api import Answer, Api, CodedError, Request, Response, query_flag, require, route

MAX_LOG_BYTES = 4 << 20  # one answer at most (a bigger log is read in windows with offset)


@route("/v1/client/fs/logs/")
def client_fs_logs(req: Request, api: Api) -> Any:
    require(req, "GET")
    logs = api.ctx.alloc_logs
    if logs is None:
        raise CodedError(501, "Invalid method")  # not a client agent (Nomad: s.agent.Client() == nil)
    alloc_id = req.path[len("/v1/client/fs/logs/"):]
    if not alloc_id:
        raise CodedError(400, "missing allocation ID")
    task = (req.query.get("task") or [""])[0]
    if not task:
        raise CodedError(400, "must provide task name")
    kind = (req.query.get("type") or [""])[0]
    if kind not in ("stdout", "stderr"):
        raise CodedError(400, "must provide a valid type (stdout or stderr)")
    if query_flag(req, "follow"):
        raise CodedError(400, "follow is not supported by this agent: read again with a larger offset")
    origin = (req.query.get("origin") or ["start"])[0]
    if origin not in ("start", "end"):
        raise CodedError(400, "origin must be start or end")
    try:
        offset = int((req.query.get("offset") or ["0"])[0])
    except ValueError:
        raise CodedError(400, "offset must be an integer") from None
    if offset < 0:
        raise CodedError(400, "offset must be >= 0")
    try:
        chunk = logs.read(alloc_id, task, kind, origin=origin, offset=offset, limit=MAX_LOG_BYTES)
    except LogNotFound as e:
        raise CodedError(404, str(e)) from None
    except OSError as e:
        raise CodedError(500, f"reading the log failed: {e.strerror or e}") from None
    if query_flag(req, "plain"):
        return Response(200, chunk.data, content_type="text/plain; charset=utf-8")
    return Answer({"File": chunk.file, "Offset": chunk.offset + len(chunk.data),
                   "Data": base64.b64encode(chunk.data).decode("ascii")})
