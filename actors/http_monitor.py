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
