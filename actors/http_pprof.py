"""``/v1/agent/pprof/<profile>``: this agent's live stacks, as ``nomad operator debug`` collects them.

Nomad serves Go's runtime profiles here.  Two have a meaning in this process:

- ``goroutine``: every greenlet's stack, as text (what SIGQUIT prints, without
  stopping the agent -- SIGQUIT exits, as Go's runtime does);
- ``profile``: a CPU profile of the agent for ``?seconds=N`` (default 1, as
  Go's), taken with :mod:`cProfile` over the agent's thread -- every actor and
  greenlet runs there; work handed to gevent's thread pool is not in it.  The
  answer is, as Go's, a binary file: :mod:`pstats`'s (``python -m pstats
  FILE``, ``pstats.Stats(FILE)``); ``?debug=1`` answers the table as text
  instead, the functions by own time (``?sort=cumulative``, ``calls``... any
  of pstats's sort keys), the first ``?lines=N`` (default 60).  The agent's
  idle time shows as the request's own wait (gevent's ``sleep``).  One profile
  at a time: a second asked while one runs is refused with 500, as Go's
  "cpu profiling already in use".

Go's other profiles (``trace``, ``heap``, ``allocs``, ``block``, ``mutex``,
``threadcreate``, ``cmdline``) have no Python counterpart and answer 501
saying so; any other name is 404, as Nomad's unknown profile.

Who may ask, as Nomad's ``Agent.Profile``: with ACLs, an ``agent:write``
token (actors.acl); without, only an agent started with ``enable_debug``
(else 403 ``Permission denied``).  Only this agent's own: ``node_id`` or
``server_id`` naming another agent is refused with 400.
"""

from __future__ import annotations

import cProfile
import io
import marshal
import pstats
from typing import Any

import gevent

from actors.http_agent_id import own_agent_id
from actors.http_api import Api, CodedError, Request, Response, require, route

GO_ONLY = ("trace", "heap", "allocs", "block", "mutex", "threadcreate", "cmdline")

# Longest CPU profile one request may ask for: the profiler slows the agent (cProfile costs about as
# much again as the code it measures), so a forgotten `seconds=86400` must not leave it slowed for a
# day; 300 s is five times `nomad operator debug`'s longest default capture interval.
PROFILE_MAX_SECONDS = 300
PROFILE_LINES = 60  # rows of the ?debug=1 table unless ?lines= says otherwise
_profiling = [False]  # one profile at a time: sys.setprofile has one slot per thread


def _int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
    raw = (req.query.get(name) or [""])[0]
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CodedError(400, f"Error parsing {name} {raw!r}: not an integer") from None
    if not low <= value <= high:
        raise CodedError(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def cpu_profile(req: Request) -> Response:
    seconds = _int_param(req, "seconds", 1, 1, PROFILE_MAX_SECONDS)
    debug = _int_param(req, "debug", 0, 0, 2)
    lines = _int_param(req, "lines", PROFILE_LINES, 1, 100_000)
    sort = (req.query.get("sort") or ["tottime"])[0]
    if sort not in pstats.SortKey._value2member_map_:  # type: ignore[attr-defined]
        keys = ", ".join(sorted(pstats.SortKey._value2member_map_))  # type: ignore[attr-defined]
        raise CodedError(400, f"unknown sort {sort!r}: want one of {keys}")
    if _profiling[0]:
        raise CodedError(500, "Could not enable CPU profiling: cpu profiling already in use")
    _profiling[0] = True
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        try:
            gevent.sleep(seconds)  # the agent runs on meanwhile, profiled
        finally:
            profiler.disable()
    finally:
        _profiling[0] = False
    profiler.create_stats()
    if debug:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(sort).print_stats(lines)
        return Response(200, out.getvalue().encode())
    return Response(200, marshal.dumps(profiler.stats), "application/octet-stream",  # type: ignore[attr-defined]
                    (("Content-Disposition", 'attachment; filename="profile"'),))


@route("/v1/agent/pprof/")
def agent_pprof(req: Request, api: Api) -> Any:
    require(req, "GET")
    profile = req.path.rsplit("/", 1)[1]
    if not api.ctx.acl_enabled and not api.ctx.enable_debug:
        raise CodedError(403, "Permission denied")
    for key in ("node_id", "server_id"):
        other = (req.query.get(key) or [""])[0]
        if other and not own_agent_id(api, key, other):
            raise CodedError(400, f"{key} {other!r}: only this agent's own profiles are served here")
    if profile == "goroutine":
        if api.ctx.stacks is None:
            raise CodedError(501, "this agent cannot read its stacks")
        return Response(200, api.ctx.stacks().encode())
    if profile == "profile":
        return cpu_profile(req)
    if profile in GO_ONLY:
        raise CodedError(501, f"profile {profile!r} is Go's: this agent serves 'goroutine' (greenlet stacks) "
                              "and 'profile' (cProfile)")
    raise CodedError(404, f"Unknown profile: {profile}")
