"""``/v1/agent/pprof/<profile>``: this agent's live stacks, as ``nomad operator debug`` collects them.

Nomad serves Go's runtime profiles here.  The one with a meaning in this
process is ``goroutine``: every greenlet's stack, as text (what SIGQUIT
prints, without stopping the agent -- SIGQUIT exits, as Go's runtime does).
Go's other profiles (``profile``, ``trace``, ``heap``, ``allocs``, ``block``,
``mutex``, ``threadcreate``, ``cmdline``) have no Python counterpart and
answer 501 saying so; any other name is 404, as Nomad's unknown profile.

Who may ask, as Nomad's ``Agent.Profile``: with ACLs, an ``agent:write``
token (actors.acl); without, only an agent started with ``enable_debug``
(else 403 ``Permission denied``).  Only this agent's own: ``node_id`` or
``server_id`` naming another agent is refused with 400.
"""

from __future__ import annotations

from typing import Any

from actors.http_agent_id import own_agent_id
from actors.http_api import Api, CodedError, Request, Response, require, route

GO_ONLY = ("profile", "trace", "heap", "allocs", "block", "mutex", "threadcreate", "cmdline")


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
    if profile in GO_ONLY:
        raise CodedError(501, f"profile {profile!r} is Go's: this agent serves 'goroutine' (greenlet stacks)")
    raise CodedError(404, f"Unknown profile: {profile}")
