"""``/v1/client/fs/logs/<alloc_id>``: a task's stdout or stderr, served by the client that runs it.

Nomad's ``ClientFS.Logs`` with ``task``, ``type`` (``stdout``/``stderr``),
``origin`` (``start``/``end``), ``offset`` (bytes from that origin) and
``plain``.  ``plain=true`` answers the bytes as they are; otherwise one
frame ``{"File", "Offset", "Data"}`` (Data base64, as Nomad's StreamFrame).
``nomad alloc logs`` asks the node that runs the allocation directly, found
through the servers.

``follow=true`` streams (chunked): what the log holds from the offset, then
whatever is appended, polled every ``FOLLOW_POLL_S``, until the task is dead
and everything it wrote has been sent (as Nomad ends a followed log), or
its allocation directory is gone, or the caller hangs up.  Frames carry
their byte offset; an idle framed stream sends Nomad's heartbeat frame
``{}`` every ``FOLLOW_HEARTBEAT_S``, and a log that shrank is announced with
``FileEvent: "file truncated"`` and followed again from its start.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from time import monotonic
from typing import Any

import gevent

from actors.client.alloc_logs import LogChunk, LogNotFound
from actors.client.alloc_runner import GetTaskState
from actors.http_api import Answer, Api, CodedError, Request, Response, Stream, query_flag, require, route

log = logging.getLogger(__name__)

MAX_LOG_BYTES = 4 << 20  # one answer at most (a bigger log is read in windows with offset)
# A followed log is re-read this often: new output shows within a quarter
# second, and an idle follower costs one stat and one small read per poll.
FOLLOW_POLL_S = 0.25
# An idle framed stream sends an empty frame this often (Nomad's
# streamHeartbeatRate is 1 s), so a proxy or the caller sees it alive, and
# a caller that hung up is noticed by the failed write.
FOLLOW_HEARTBEAT_S = 1.0
ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)


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
    plain = query_flag(req, "plain")
    if query_flag(req, "follow"):
        return Stream(200, _follow(api, logs, alloc_id, task, kind, chunk, plain),
                      "text/plain; charset=utf-8" if plain else "application/json")
    if plain:
        return Response(200, chunk.data, content_type="text/plain; charset=utf-8")
    return Answer({"File": chunk.file, "Offset": chunk.offset + len(chunk.data),
                   "Data": base64.b64encode(chunk.data).decode("ascii")})


def _frame(chunk: LogChunk) -> bytes:
    return json.dumps({"Offset": chunk.offset + len(chunk.data), "Data": base64.b64encode(chunk.data).decode(),
                       "File": chunk.file}).encode()


def _task_dead(api: Api, alloc_id: str, task: str) -> bool:
    """The task ran and is dead, or this client no longer runs it: its log is complete."""
    try:
        return api.ask(ALLOC_RUNNER, GetTaskState(alloc_id=alloc_id, task=task)) in ("dead", "")
    except CodedError:  # the runner is stopping with the agent
        return True


def _follow(api: Api, logs: Any, alloc_id: str, task: str, kind: str, first: LogChunk,
            plain: bool) -> Iterator[bytes]:
    """The followed log, chunk by chunk (runs in the request's greenlet: the HTTP edge)."""
    chunk, beat = first, monotonic()
    try:
        while True:
            if chunk.data:
                yield chunk.data if plain else _frame(chunk)
                beat = monotonic()
            offset = chunk.offset + len(chunk.data)
            if len(chunk.data) >= MAX_LOG_BYTES:  # more is waiting already
                chunk = logs.read(alloc_id, task, kind, offset=offset, limit=MAX_LOG_BYTES)
                continue
            # Caught up.  Asked before the read: a task already dead has
            # written all it will, so an empty read after it ends the stream.
            dead = _task_dead(api, alloc_id, task)
            chunk = logs.read(alloc_id, task, kind, offset=offset, limit=MAX_LOG_BYTES)
            if chunk.size < offset:  # truncated under us: follow it again from its start
                if not plain:
                    yield json.dumps({"File": chunk.file, "FileEvent": "file truncated"}).encode()
                chunk = logs.read(alloc_id, task, kind, offset=0, limit=MAX_LOG_BYTES)
                continue
            if chunk.data:
                continue
            if dead:
                return
            if not plain and monotonic() - beat >= FOLLOW_HEARTBEAT_S:
                yield b"{}"
                beat = monotonic()
            gevent.sleep(FOLLOW_POLL_S)
    except LogNotFound:
        return  # the allocation's directory was collected: nothing more will come
    except OSError as e:
        log.warning("following %s/%s %s stopped: %s", alloc_id, task, kind, e.strerror or e)
