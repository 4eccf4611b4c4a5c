"""Logging in Nomad's shape (hclog), for the agent process.

Levels are Nomad's: TRACE, DEBUG, INFO, WARN, ERROR and OFF.  A text line
is hclog's::

    2026-11-26T09:30:00.000Z [INFO]  agent: message: key=value

written, as Nomad's ``UiWriter`` writes it, after the UI's 4-space info
prefix; ``-log-json`` gives hclog's JSON lines (``@level``, ``@message``,
``@module``, ``@timestamp``) without a prefix.  The module is the logger's
name with a leading ``actors.`` or ``runtime.`` dropped (the agent's own
loggers are named ``agent``, ``agent.http``).

Until the banner is printed, log lines are held back (Nomad's gated
writer) so they do not interleave with it; JSON logs are not held, as in
Nomad.  The level changes at run time (SIGHUP) with :meth:`LogControl.set_level`.
"""

from __future__ import annotations

import collections
import datetime
import glob
import json
import logging
import logging.handlers
import os
import sys
import time
from typing import Any, TextIO

__all__ = ["LEVELS", "MONITOR", "TRACE", "JsonFormatter", "LogControl", "LogFileHandler", "LogMonitor",
           "TextFormatter", "setup_logging"]

TRACE = 5
LEVELS = {"TRACE": TRACE, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
          "WARN": logging.WARNING, "ERROR": logging.ERROR, "OFF": logging.CRITICAL + 10}
logging.addLevelName(TRACE, "TRACE")
# Nomad's UI info prefix, which its log writer goes through.
INFO_PREFIX = "    "
# Lines held before the banner; a start-up that logs more is broken anyway,
# and the gate must not grow without bound.  The oldest are dropped.
MAX_GATED_LINES = 10_000
# Third-party loggers whose DEBUG chatter (pykka's "Starting ...") is TRACE to us.
_CHATTY = ("pykka", "gevent")


def _label(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG" if levelno >= logging.DEBUG else "TRACE"


def module_of(name: str) -> str:
    for prefix in ("actors.", "runtime."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return "agent" if name == "root" else name


def _local(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t).astimezone()


def _zone(d: datetime.datetime, colon: bool) -> str:
    """Go's ``Z0700`` / ``Z07:00``: ``Z`` in UTC, else the offset."""
    offset = d.utcoffset()
    if not offset:
        return "Z"
    text = d.strftime("%z")
    return f"{text[:3]}:{text[3:]}" if colon else text


# log_include_location (hclog's IncludeLocation): each line names the source file and line that logged
# it, as "runtime/agent_main.py:123" (hclog keeps a path's last two parts); set by setup_logging.
_INCLUDE_LOCATION = [False]


def _caller(record: logging.LogRecord) -> str:
    parts = record.pathname.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{record.lineno}"


class TextFormatter(logging.Formatter):
    """hclog's text format (``TimeFormat = "2006-01-02T15:04:05.000Z0700"``)."""

    def format(self, record: logging.LogRecord) -> str:
        d = _local(record.created)
        when = d.strftime("%Y-%m-%dT%H:%M:%S") + f".{d.microsecond // 1000:03d}" + _zone(d, False)
        level = _label(record.levelno)
        where = f"{_caller(record)}: " if _INCLUDE_LOCATION[0] else ""
        pad = " " * (6 - len(level))
        line = f"{when} [{level}]{pad}{where}{module_of(record.name)}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """hclog's JSON format (``TimeFormatJSON = "2006-01-02T15:04:05.000000Z07:00"``)."""

    def format(self, record: logging.LogRecord) -> str:
        d = _local(record.created)
        entry = {"@level": _label(record.levelno).lower(), "@message": record.getMessage(),
                 "@module": module_of(record.name),
                 "@timestamp": d.strftime("%Y-%m-%dT%H:%M:%S.%f") + _zone(d, True)}
        if _INCLUDE_LOCATION[0]:
            entry["@caller"] = _caller(record)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=True)


class _GatedHandler(logging.Handler):
    """Writes lines to *stream*, holding them until :meth:`open` when gated."""

    def __init__(self, stream: TextIO, prefix: str, gated: bool) -> None:
        super().__init__(logging.NOTSET)
        self.stream = stream
        self.prefix = prefix
        self.held: list[str] | None = [] if gated else None
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.prefix + self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - a bad log call must not kill its caller
            self.handleError(record)
            return
        if self.held is not None:
            self.held.append(line)
            if len(self.held) > MAX_GATED_LINES:
                del self.held[0]
                self.dropped += 1
            return
        self._write(line)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stdout gone (closed pipe): nothing left to tell
            pass

    def open(self) -> None:
        held, self.held = self.held, None
        if held:
            self._write("".join(held))


class LogFileHandler(logging.Handler):
    """``log_file`` with Nomad's rotation (``command/agent/log_file.go``).

    The active file keeps its name (``nomad.log`` when *path* names only a
    directory) and is appended to, 0640.  Before a write, once it is
    *duration_s* old or holds *max_bytes* (0: no limit), it is renamed to
    ``<name>-<unix nanos><ext>`` and a new one started; past *max_files* such
    archives (0: keep all) the oldest go.  A write that fails is reported
    once per failure on stderr by logging's handleError and costs only its line.
    """

    def __init__(self, path: str, *, duration_s: float, max_bytes: int = 0, max_files: int = 0) -> None:
        super().__init__(logging.NOTSET)
        directory, name = os.path.split(path)
        self.dir = directory or "."
        self.name = name or "nomad.log"
        base, ext = os.path.splitext(self.name)
        self._archive = os.path.join(self.dir, base + "-%s" + (ext or ".log"))
        self.duration_s, self.max_bytes, self.max_files = duration_s, max_bytes, max_files
        self._fd: int | None = None
        self._created = 0.0
        self._written = 0
        os.makedirs(self.dir, exist_ok=True)
        self._open()  # a file that cannot be opened is a start-up error, not a silent loss

    @property
    def path(self) -> str:
        return os.path.join(self.dir, self.name)

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        st = os.fstat(self._fd)
        self._written = st.st_size
        # An existing file's age counts from when it was last started (its ctime here).
        self._created = time.time() if st.st_size == 0 else min(time.time(), st.st_ctime)

    def _rotate_if_due(self) -> None:
        if (self.max_bytes > 0 and self._written >= self.max_bytes) or \
                time.time() - self._created >= self.duration_s:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            os.replace(self.path, self._archive % time.time_ns())
            if self.max_files > 0:
                archives = sorted(glob.glob(glob.escape(self._archive).replace("%s", "*")))
                for old in archives[:max(0, len(archives) - self.max_files)]:
                    os.unlink(old)
            self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode()
            if self._fd is None:
                self._open()
            self._rotate_if_due()
            assert self._fd is not None
            self._written += os.write(self._fd, data)
        except Exception:  # noqa: BLE001 - a full disk must not stop the agent
            self.handleError(record)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()


# A monitor (``/v1/agent/monitor``) that reads slower than the agent logs
# loses its oldest lines beyond this many (counted), never the agent's memory.
MONITOR_BUFFER_LINES = 1024


class Subscription:
    """One monitor's lines: a bounded buffer filled by any thread, drained by the HTTP edge."""

    def __init__(self, level: int, json_format: bool) -> None:
        self.level = level
        self.formatter: logging.Formatter = JsonFormatter() if json_format else TextFormatter()
        self.lines: collections.deque[str] = collections.deque(maxlen=MONITOR_BUFFER_LINES)
        self.dropped = 0

    def take(self) -> list[str]:
        out = []
        while self.lines:
            out.append(self.lines.popleft())
        return out


class LogMonitor(logging.Handler):
    """Copies log records to the monitors subscribed (Nomad's ``monitor`` sink), each at its own level."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.subs: set[Subscription] = set()
        self.on_change: Any = None  # LogControl re-derives the root level when monitors come and go

    def subscribe(self, level: int, json_format: bool) -> Subscription:
        sub = Subscription(level, json_format)
        self.subs.add(sub)
        if self.on_change is not None:
            self.on_change()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subs.discard(sub)
        if self.on_change is not None:
            self.on_change()

    def lowest(self) -> int | None:
        return min((s.level for s in self.subs), default=None)

    def emit(self, record: logging.LogRecord) -> None:
        for sub in list(self.subs):
            if record.levelno < sub.level:
                continue
            try:
                line = sub.formatter.format(record)
            except Exception:  # noqa: BLE001 - a bad log call must not kill its caller
                continue
            if len(sub.lines) == sub.lines.maxlen:
                sub.dropped += 1
            sub.lines.append(line)


MONITOR = LogMonitor()  # the process's one monitor sink (installed by setup_logging)


class LogControl:
    """The process's logging: level changes and the start-up gate."""

    def __init__(self, handler: _GatedHandler) -> None:
        self.handler = handler
        self.extra: list[logging.Handler] = []  # log_file, syslog: at the console's level
        self.level = "INFO"
        MONITOR.on_change = self._apply

    def add(self, handler: logging.Handler, json_format: bool) -> None:
        """Another destination (log_file, syslog) for what the console writes."""
        handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
        self.extra.append(handler)
        logging.getLogger().addHandler(handler)
        self._apply()

    def set_level(self, level: str) -> None:
        name = level.upper()
        self.level = name
        self._apply()

    def _apply(self) -> None:
        """The console writes at the configured level; the root passes what any monitor also wants."""
        number = LEVELS[self.level]
        self.handler.setLevel(number)
        for extra in self.extra:
            extra.setLevel(number)
        low = MONITOR.lowest()
        root = number if low is None else min(number, low)
        logging.getLogger().setLevel(root)
        chatty_level = logging.DEBUG if root <= TRACE else max(root, logging.INFO)
        for chatty in _CHATTY:
            logging.getLogger(chatty).setLevel(chatty_level)

    def open_gate(self) -> None:
        self.handler.open()

    def close(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger().removeHandler(MONITOR)
        for extra in self.extra:
            logging.getLogger().removeHandler(extra)
            extra.close()
        self.extra.clear()


def setup_logging(level: str, *, json_format: bool, stream: TextIO | None = None,
                  include_location: bool = False) -> LogControl:
    """Install Nomad-shaped logging on the root logger; returns its control."""
    _INCLUDE_LOCATION[0] = include_location
    out = stream if stream is not None else sys.stdout
    handler = _GatedHandler(out, "" if json_format else INFO_PREFIX, gated=not json_format)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.addHandler(MONITOR)
    control = LogControl(handler)
    control.set_level(level)
    return control


def syslog_handler(facility: str, address: str = "/dev/log") -> logging.Handler:
    """``enable_syslog``: the local syslog, at *facility* (``LOCAL0``...); OSError when there is none."""
    h = logging.handlers.SysLogHandler(address=address,
                                       facility=logging.handlers.SysLogHandler.facility_names[facility.lower()])
    h.ident = "nomad: "
    return h
