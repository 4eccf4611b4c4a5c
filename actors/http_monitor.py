"""``/v1/agent/monitor``: this agent's log lines, streamed as they are written (``nomad monitor``).

``log_level`` (trace, debug, info, warn, error; default info) is the
monitor's own: a monitor at debug on an agent logging at info sees debug
lines while it is connected (runtime.logging_setup lowers the root level
for it and keeps the console at its configured level).  ``log_json`` gives
hclog's JSON lines; ``plain=true`` sends the text as it is, otherwise each
batch is a frame ``{"Data": base64}``, with an empty frame ``{}`` every
idle second so a caller that hung up is noticed.  A monitor that reads
slower than the agent logs loses its oldest lines (at most
``MONITOR_BUFFER_LINES`` wait), never the agent's memory.  Only this agent's
logs: ``node_id``/``server_id`` naming another agent are refused with 400.
``/v1/agent/monitor/export`` (``nomad monitor export``) sends the agent's log file, or its unit's journal.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

import gevent

from actors.http_agent_id import own_agent_id
from actors.http_api import Api, CodedError, Request, Stream, query_flag, require, route
from actors.http_limits import CALLER_GONE
from runtime.logging_setup import LEVELS, MONITOR, Subscription

# New lines are collected this often: a person watching sees them within a
# quarter second, and an idle monitor costs one wake-up per poll.
MONITOR_POLL_S = 0.25
MONITOR_HEARTBEAT_S = 1.0  # Nomad's stream heartbeat rate


@route("/v1/agent/monitor")
def agent_monitor(req: Request, api: Api) -> Any:
    require(req, "GET")
    level = (req.query.get("log_level") or ["info"])[0].upper() or "INFO"
    if level == "WARNING":
        level = "WARN"
    if level not in LEVELS or level == "OFF":
        raise CodedError(400, f"Unknown log level: {level.lower()}")
    for key in ("node_id", "server_id"):
        other = (req.query.get(key) or [""])[0]
        if other and not own_agent_id(api, key, other):
            raise CodedError(400, f"{key} {other!r}: only this agent's own logs are served here")
    plain = query_flag(req, "plain")
    sub = MONITOR.subscribe(LEVELS[level], query_flag(req, "log_json"))
    gone = req.environ.get(CALLER_GONE) or (lambda: False)
    return Stream(200, _stream(sub, plain, gone),
                  "text/plain; charset=utf-8" if plain else "application/json")


def _stream(sub: Subscription, plain: bool,
            caller_gone: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """The monitor's lines; an idle framed stream sends ``{}`` (a failed write ends it once the
    caller hung up), an idle plain one has nothing to send and asks *caller_gone* as often."""
    beat = monotonic()
    try:
        while True:
            lines = sub.take()
            if lines:
                text = "".join(line + "\n" for line in lines).encode()
                yield text if plain else json.dumps({"Data": base64.b64encode(text).decode()}).encode()
                beat = monotonic()
            elif monotonic() - beat >= MONITOR_HEARTBEAT_S:
                if plain and caller_gone():
                    return
                if not plain:
                    yield b"{}"
                beat = monotonic()
            gevent.sleep(MONITOR_POLL_S)
    finally:  # the caller hung up (the write failed) or the agent stops
        MONITOR.unsubscribe(sub)


# How much of the log file one read takes (a frame's worth, as Nomad's export frames 1 KiB at a time,
# and few enough bytes that a slow reader holds little).
EXPORT_CHUNK_BYTES = 64 * 1024
# Nomad's default journald window (-logs-since).
EXPORT_LOGS_SINCE = "72h"
# How long a journalctl export may run before it is cut off: a query of days of a busy unit ends in
# seconds; far longer is a wedged journal, and the request must not hold a server thread for ever.
EXPORT_JOURNAL_TIMEOUT_S = 300.0


def _log_file_path() -> str | None:
    """The file this agent's ``log_file`` writes now (None: no log_file configured)."""
    import logging

    from runtime.logging_setup import LogFileHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogFileHandler):
            return handler.path
    return None


@route("/v1/agent/monitor/export")
def agent_monitor_export(req: Request, api: Api) -> Any:
    """Nomad's ``AgentMonitorExport`` (``nomad monitor export``): this agent's log file as it is
    (``on_disk=true``), or its systemd unit's journal (``service_name``, ``logs_since``, ``follow``),
    framed as the monitor's stream or ``plain``."""
    from runtime.config import parse_duration

    require(req, "GET")
    flags = {}
    for key, what in (("on_disk", "on-disk"), ("follow", "follow"), ("plain", "plain")):
        try:
            flags[key] = query_flag(req, key)
        except CodedError:
            raw = (req.query.get(key) or [""])[0]
            raise CodedError(400, f"Unknown value for {what}: Failed to parse value of \"{key}\" "
                                  f"({raw}) as a bool: strconv.ParseBool: parsing \"{raw}\": "
                                  "invalid syntax") from None
    since = (req.query.get("logs_since") or [""])[0] or EXPORT_LOGS_SINCE
    try:
        parse_duration(since)
    except ValueError as e:
        raise CodedError(400, f"Unknown value for logs-since: {e}") from None
    service = (req.query.get("service_name") or [""])[0]
    node_id, server_id = (req.query.get("node_id") or [""])[0], (req.query.get("server_id") or [""])[0]
    if node_id and server_id:
        raise CodedError(400, "Cannot target node and server simultaneously")
    if flags["on_disk"] and service:
        raise CodedError(400, "Cannot target journald and nomad log file simultaneously")
    if not flags["on_disk"] and not service:
        raise CodedError(400, "Either -service-name or -on-disk must be set")
    if flags["on_disk"] and flags["follow"]:
        raise CodedError(400, "Cannot follow log file")
    if service and ("nomad" not in service or any(c in service for c in " /\\;&|$`'\"")):
        raise CodedError(422, f"invalid service name {service!r}: it must name the nomad systemd unit")
    for key, other in (("node_id", node_id), ("server_id", server_id)):
        if other and not own_agent_id(api, key, other):
            raise CodedError(400, f"{key} {other!r}: only this agent's own logs are served here")
    plain = flags["plain"]
    content = "text/plain; charset=utf-8" if plain else "application/json"
    if flags["on_disk"]:
        path = _log_file_path()
        if path is None:
            raise CodedError(400, "No nomad log file defined")
        try:
            f = open(path, "rb")  # closed by the stream when it ends
        except OSError as e:
            raise CodedError(500, f"failed to open the log file: {e}") from None
        return Stream(200, _export_file(f, plain), content)
    return Stream(200, _export_journal(service, since, flags["follow"], plain), content)


def _frame(data: bytes, plain: bool) -> bytes:
    return data if plain else json.dumps({"Data": base64.b64encode(data).decode()}).encode()


def _export_file(f: Any, plain: bool) -> Iterator[bytes]:
    """The log file from its start to its end as it is now (Nomad's export does not follow it)."""
    with f:
        while chunk := f.read(EXPORT_CHUNK_BYTES):
            yield _frame(chunk, plain)


def _export_journal(service: str, since: str, follow: bool, plain: bool) -> Iterator[bytes]:
    """``journalctl`` of the unit, as Nomad's export runs it; its failure (no journal, no such unit) is
    the stream's last frame."""
    import shutil
    import subprocess

    unit = service if "." in service else f"{service}.service"
    exe = shutil.which("journalctl")
    if exe is None:
        yield _frame(b"monitor export: journalctl not found: journald is not available on this host\n", plain)
        return
    argv = [exe, "-u", unit, "--no-pager", "-o", "short-iso", "-S", f"-{since}", *(["-f"] if follow else [])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = monotonic() + EXPORT_JOURNAL_TIMEOUT_S
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(EXPORT_CHUNK_BYTES):
            yield _frame(chunk, plain)
            if not follow and monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
