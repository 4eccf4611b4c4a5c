"""Which agent a ``server_id`` / ``node_id`` query names: this one, or another.

/v1/agent/host, /v1/agent/monitor and /v1/agent/pprof serve this agent's own data only (requests are
not forwarded between agents here); :func:`own_agent_id` says whether a query names this agent.
"""

from __future__ import annotations

from typing import Any

from actors.agent_messages import GetSelf


def own_agent_id(api: Any, key: str, value: str) -> str:
    """The ID by which *value* (a ``server_id`` or ``node_id`` query value) names this agent, or "":
    its node name, its server's member name (``vm.global``, or ``vm``), ``leader`` for a server_id
    (the leader is the agent asked here: requests are not forwarded between agents), or its client's
    node ID.  What /v1/agent/host, /v1/agent/monitor and /v1/agent/pprof take as "this agent"."""
    if value == api.env.node:
        return value
    me = api.ask(api.ctx.agent, GetSelf())
    server_name = (me.get("member") or {}).get("Name", "")
    my_node = ((me.get("stats") or {}).get("client") or {}).get("node_id", "")
    if key == "server_id" and server_name and value in (server_name, server_name.split(".", 1)[0], "leader"):
        return server_name
    if key == "node_id" and my_node and value == my_node:
        return my_node
    return ""
