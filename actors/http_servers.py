"""``/v1/agent/servers``: the servers a client agent talks to (Nomad's listServers / updateServers).

``GET`` lists the client's known server RPC addresses; ``PUT
?address=host:port&address=...`` replaces them (the client then registers,
heartbeats and watches its allocations through the new list).  Both are
client endpoints: an agent without a client answers 501, as Nomad's does.
"""

from __future__ import annotations

from typing import Any

from actors.client.node import ReplaceServers
from actors.http_api import Api, CodedError, Request, parse_uint, require, route

CLIENT_ACTOR = "client"


def _client(api: Api) -> Any:
    ref = api.env.lookup(CLIENT_ACTOR)
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Invalid method")  # Nomad: s.agent.Client() == nil
    return ref


@route("/v1/agent/servers")
def agent_servers(req: Request, api: Api) -> Any:
    require(req, "GET", "PUT", "POST")
    ref = _client(api)
    if req.method == "GET":
        return list(api.ask(CLIENT_ACTOR, "status")["servers"])
    addrs = [a for a in req.query.get("address", []) if a]
    if not addrs:
        raise CodedError(400, "missing server address")
    for a in addrs:
        host, sep, port = a.rpartition(":")
        if not sep or not host or not parse_uint(port, 16):  # 1-65535
            raise CodedError(400, f"invalid server address {a!r}: want host:port")
    ref.tell(ReplaceServers(tuple(addrs)))
    return None
