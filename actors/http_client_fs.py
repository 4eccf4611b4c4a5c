"""``/v1/client/fs/...``: a task's logs and its allocation's files, served by the client that runs it.

The file-system endpoints (ls, stat, cat, readat, stream) are described
where they are defined, below the logs.

Nomad's ``ClientFS.Logs`` with ``task``, ``type`` (``stdout``/``stderr``),
``origin`` (``start``/``end``), ``offset`` (bytes from that origin) and
``plain``.  ``plain=true`` answers the bytes as they are; otherwise one
frame ``{"File", "Offset", "Data"}`` (Data base64, as Nomad's StreamFrame).
``nomad alloc logs`` asks the node that runs the allocation directly, found
through the servers.

Offsets count across the task's rotated files (``<task>.<type>.<N>``) from
the start of the lowest index still kept, as Nomad's: a one-shot answer's
``Offset`` is where its data ends in that whole stream and its ``File`` the
file it ends in; a followed frame's ``Offset`` is within its ``File``.

``follow=true`` streams (chunked): what the log holds from the offset, then
whatever is appended, onto the next file when the current one is rotated,
polled every ``FOLLOW_POLL_S``, until the task is dead
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
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

import gevent

from actors.client.alloc_logs import (
    AllocFS,
    LogChunk,
    LogFileGone,
    LogNotFound,
    NotAFile,
    OpenFile,
    PathRefused,
)
from actors.client.alloc_runner import GetTaskState
from actors.http_api import Answer, Api, CodedError, Request, Response, Stream, query_flag, require, route
from actors.http_limits import CALLER_GONE

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
        gone = req.environ.get(CALLER_GONE) or (lambda: False)
        return Stream(200, _follow(api, logs, alloc_id, task, kind, chunk, plain, gone),
                      "text/plain; charset=utf-8" if plain else "application/json")
    if plain:
        return Response(200, chunk.data, content_type="text/plain; charset=utf-8")
    return Answer({"File": chunk.file, "Offset": chunk.offset + len(chunk.data),
                   "Data": base64.b64encode(chunk.data).decode("ascii")})


def _frame(chunk: LogChunk) -> bytes:
    """A followed frame: the file its data is from and the offset in that file where it ends."""
    return json.dumps({"Offset": chunk.file_end, "Data": base64.b64encode(chunk.data).decode(),
                       "File": chunk.file}).encode()


def _task_dead(api: Api, alloc_id: str, task: str) -> bool:
    """The task ran and is dead, or this client no longer runs it: its log is complete."""
    try:
        return api.ask(ALLOC_RUNNER, GetTaskState(alloc_id=alloc_id, task=task)) in ("dead", "")
    except CodedError:  # the runner is stopping with the agent
        return True


def _follow(api: Api, logs: Any, alloc_id: str, task: str, kind: str, first: LogChunk,
            plain: bool, caller_gone: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """The followed log, chunk by chunk (runs in the request's greenlet: the HTTP edge).

    After the first window it goes on file by file from where that ended: a
    file read to its end is left for the next index once the rotator has
    made one (as Nomad's -f follows onto the next file), and a file deleted
    under a slow follower is skipped for the lowest index still kept.
    A framed follow sends a heartbeat frame when idle, whose failed write
    ends it once the caller hung up; a plain one has no frame to send, so
    it asks *caller_gone* as often instead (else a quiet task's follower
    would poll for as long as the task lives).
    """
    beat = monotonic()
    if first.data:
        yield first.data if plain else _frame(first)
        beat = monotonic()
    index, pos = first.index, first.file_end
    try:
        while True:
            # Asked before the read: a task already dead has written all it
            # will, so nothing more in this file and no next one ends the stream.
            dead = _task_dead(api, alloc_id, task)
            try:
                chunk = logs.read_file(alloc_id, task, kind, index, pos, MAX_LOG_BYTES)
            except LogFileGone:
                nxt = logs.next_index(alloc_id, task, kind, index)
                if nxt is None:
                    return  # every file of the log is gone
                index, pos = nxt, 0
                continue
            if chunk.data:
                yield chunk.data if plain else _frame(chunk)
                beat = monotonic()
                pos = chunk.file_end
                continue
            if chunk.size < pos:  # truncated under us: follow it again from its start
                if not plain:
                    yield json.dumps({"File": chunk.file, "FileEvent": "file truncated"}).encode()
                pos = 0
                continue
            nxt = logs.next_index(alloc_id, task, kind, index)
            if nxt is not None:  # rotated: this file is complete, its successor has the rest
                index, pos = nxt, 0
                continue
            if dead:
                return
            if monotonic() - beat >= FOLLOW_HEARTBEAT_S:
                if plain and caller_gone():
                    return
                if not plain:
                    yield b"{}"
                beat = monotonic()
            gevent.sleep(FOLLOW_POLL_S)
    except LogNotFound:
        return  # the allocation's directory was collected: nothing more will come
    except OSError as e:
        log.warning("following %s/%s %s stopped: %s", alloc_id, task, kind, e.strerror or e)


# ---------------------------------------------------------------- the allocation's file system
# Nomad's ls, stat, cat, readat and stream (command/agent/fs_endpoint.go),
# served from the allocation directory by actors.client.alloc_logs.AllocFS.
#
# * ``ls?path=`` (default ``/``) -- ``[AllocFileInfo]``, sorted by name;
# * ``stat?path=`` -- one ``AllocFileInfo`` with its ContentType;
# * ``cat?path=`` -- the file's bytes (as large as it was when opened);
# * ``readat?path=&offset=&limit=`` -- ``limit`` bytes from ``offset``
#   (no or 0 limit: to the end);
# * ``stream?path=&offset=&origin=&follow=`` -- StreamFrames
#   ``{"Offset","Data","File"}`` (Offset: where the frame's data ends, as
#   Nomad's), at most STREAM_FRAME_BYTES of data each.
#
# Nomad's stream always follows (``follow`` defaults to true) and never ends
# on its own while the file exists.  Here ``follow=false`` ends once what the
# file holds has been sent, and a followed stream ends -- beside the caller
# hanging up -- when the file is deleted (frame ``FileEvent: "file
# deleted"``, as Nomad's), when the allocation directory is collected, or
# when the allocation is finished (every task dead, so nothing more will be
# written) and everything has been sent.  A running allocation's file is
# followed until the caller hangs up, which the heartbeat frame ``{}`` sent
# every FOLLOW_HEARTBEAT_S notices.  A file that shrank is announced with
# ``FileEvent: "file truncated"`` and followed again from its start.
#
# Errors: no allocation ID 400, an unknown allocation 404 ``Unknown
# allocation "<id>"``, a path leading out of the allocation directory (``..``,
# a symlink) 400 ``Path escapes the alloc directory``, a task's secrets 400
# ``Reading secret file prohibited: <path>``, a missing file 404, a
# directory where a file is wanted 400.

STREAM_FRAME_BYTES = 64 * 1024  # Nomad's streamFrameSize: a frame carries at most this much data
# cat and readat are sent in pieces this big: a large file never sits whole in memory.
READ_CHUNK_BYTES = 256 * 1024
TERMINAL_STATUSES = ("complete", "failed", "lost")  # the allocation will write nothing more


def _fs(api: Api) -> AllocFS:
    logs = api.ctx.alloc_logs
    if logs is None:
        raise CodedError(501, "Invalid method")  # not a client agent (Nomad: s.agent.Client() == nil)
    return AllocFS(logs.root)


def _alloc_id(req: Request, prefix: str) -> str:
    alloc_id = req.path[len(prefix):]
    if not alloc_id:
        raise CodedError(400, "must provide a valid alloc id")
    return alloc_id


def _query(req: Request, name: str, default: str = "") -> str:
    return (req.query.get(name) or [default])[0]


def _int(req: Request, name: str, *, required: bool = False) -> int:
    raw = _query(req, name)
    if raw == "" and not required:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise CodedError(400, f'error parsing {name}: strconv.ParseInt: parsing "{raw}": '
                              "invalid syntax") from None
    if value < 0:
        raise CodedError(400, f"{name} must be >= 0")
    return value


def _file_path(req: Request) -> str:
    path = _query(req, "path")
    if not path:
        raise CodedError(400, "must provide a file name")
    return path


def _coded(e: Exception) -> CodedError:
    if isinstance(e, LogNotFound):  # UnknownAlloc and FileMissing
        return CodedError(404, str(e))
    if isinstance(e, (PathRefused, NotAFile)):
        return CodedError(400, str(e))
    if isinstance(e, OSError):
        return CodedError(500, f"reading the allocation's file failed: {e.strerror or e}")
    raise e


class _Closing:
    """A streamed answer's chunks that close their file when done, even if never iterated."""

    def __init__(self, chunks: Iterator[bytes], f: OpenFile) -> None:
        self._chunks, self._f = chunks, f

    def __iter__(self) -> _Closing:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._f.close()


def _open(api: Api, alloc_id: str, path: str) -> OpenFile:
    try:
        return _fs(api).open(alloc_id, path)
    except (LogNotFound, PathRefused, NotAFile, OSError) as e:
        raise _coded(e) from None


def _plain(f: OpenFile, start: int, end: int) -> Iterator[bytes]:
    """Bytes start..end of the file, in READ_CHUNK_BYTES pieces (fewer if it shrank meanwhile)."""
    offset = start
    while offset < end:
        data = f.read_at(offset, min(READ_CHUNK_BYTES, end - offset))
        if not data:
            return
        offset += len(data)
        yield data


@route("/v1/client/fs/ls/")
def client_fs_ls(req: Request, api: Api) -> Any:
    require(req, "GET")
    alloc_id = _alloc_id(req, "/v1/client/fs/ls/")
    try:
        return [i.to_api() for i in _fs(api).list(alloc_id, _query(req, "path") or "/")]
    except (LogNotFound, PathRefused, NotAFile, OSError) as e:
        raise _coded(e) from None


@route("/v1/client/fs/stat/")
def client_fs_stat(req: Request, api: Api) -> Any:
    require(req, "GET")
    alloc_id = _alloc_id(req, "/v1/client/fs/stat/")
    try:
        return _fs(api).stat(alloc_id, _file_path(req)).to_api()
    except (LogNotFound, PathRefused, NotAFile, OSError) as e:
        raise _coded(e) from None


@route("/v1/client/fs/cat/")
def client_fs_cat(req: Request, api: Api) -> Any:
    require(req, "GET")
    alloc_id = _alloc_id(req, "/v1/client/fs/cat/")
    f = _open(api, alloc_id, _file_path(req))
    try:
        size, ctype = f.size(), f.content_type()
    except OSError as e:
        f.close()
        raise _coded(e) from None
    return Stream(200, _Closing(_plain(f, 0, size), f), ctype)


@route("/v1/client/fs/readat/")
def client_fs_readat(req: Request, api: Api) -> Any:
    require(req, "GET")
    alloc_id = _alloc_id(req, "/v1/client/fs/readat/")
    path = _file_path(req)
    offset, limit = _int(req, "offset", required=True), _int(req, "limit")
    f = _open(api, alloc_id, path)
    try:
        size, ctype = f.size(), f.content_type()
    except OSError as e:
        f.close()
        raise _coded(e) from None
    end = size if limit == 0 else min(size, offset + limit)
    return Stream(200, _Closing(_plain(f, min(offset, size), end), f), ctype)


@route("/v1/client/fs/stream/")
def client_fs_stream(req: Request, api: Api) -> Any:
    require(req, "GET")
    alloc_id = _alloc_id(req, "/v1/client/fs/stream/")
    path = _file_path(req)
    offset = _int(req, "offset")
    origin = _query(req, "origin") or "start"
    if origin not in ("start", "end"):
        raise CodedError(400, "origin must be start or end")
    follow = True  # Nomad's default
    if "follow" in req.query:
        follow = query_flag(req, "follow")
    f = _open(api, alloc_id, path)
    try:
        size = f.size()
    except OSError as e:
        f.close()
        raise _coded(e) from None
    start = min(offset, size) if origin == "start" else max(0, size - offset)
    return Stream(200, _Closing(_stream_file(api, f, alloc_id, path, start, follow), f), "application/json")


def _alloc_finished(api: Api, alloc_id: str) -> bool:
    """This client no longer runs the allocation, or all its tasks are dead: its files are complete."""
    try:
        update = api.ask(ALLOC_RUNNER, "allocs").get(alloc_id)
    except CodedError:  # the runner is stopping with the agent
        return True
    return update is None or update.client_status in TERMINAL_STATUSES


def _stream_file(api: Api, f: OpenFile, alloc_id: str, path: str, offset: int,
                 follow: bool) -> Iterator[bytes]:
    """StreamFrames of the file from *offset* (runs in the request's greenlet: the HTTP edge)."""
    def frame(data: bytes, event: str = "") -> bytes:
        out: dict[str, Any] = {"Offset": offset} if offset else {}
        if data:
            out["Data"] = base64.b64encode(data).decode()
        out["File"] = path
        if event:
            out["FileEvent"] = event
        return json.dumps(out).encode()

    beat = monotonic()
    try:
        while True:
            data = f.read_at(offset, STREAM_FRAME_BYTES)
            if data:
                offset += len(data)
                yield frame(data)
                beat = monotonic()
                continue
            if not follow:
                return
            # Caught up.  Asked before the read: a finished allocation has
            # written all it will, so an empty read after it ends the stream.
            finished = _alloc_finished(api, alloc_id)
            if f.deleted():
                yield frame(b"", "file deleted")
                return
            if f.size() < offset:  # truncated under us: follow it again from its start
                offset = 0
                yield frame(b"", "file truncated")
                continue
            if f.read_at(offset, 1):
                continue
            if finished:
                return
            if monotonic() - beat >= FOLLOW_HEARTBEAT_S:
                yield b"{}"
                beat = monotonic()
            gevent.sleep(FOLLOW_POLL_S)
    except OSError as e:
        log.warning("streaming %s of %s stopped: %s", path, alloc_id, e.strerror or e)


@route("/v1/client/fs/")
def client_fs_other(req: Request, api: Api) -> Any:
    raise CodedError(404, "Invalid method")  # Nomad's FsRequest default case
