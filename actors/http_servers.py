"""``/v1/agent/servers``: the servers a client agent talks to (Nomad's listServers / updateServers).

``GET`` lists the client's known server RPC addresses; ``PUT
?address=host:port&address=...`` replaces them with those that answer a ping
(a TCP connection to their RPC port; none answering: 400, the list kept), and
the client then registers, heartbeats and watches its allocations through
the new list.  Both are
client endpoints: an agent without a client answers 501, as Nomad's does.
"""

from __future__ import annotations

from typing import Any

import gevent.pool

from actors.client.node import ReplaceServers
from actors.http_api import Api, CodedError, Request, parse_uint, require, route
from runtime.probes import dial

CLIENT_ACTOR = "client"
# Each new address is dialled before the list is replaced (Nomad pings each with Status.Ping): one that
# takes no connection this soon is left out, and none answering refuses the change -- a mistyped list
# must not cut the client off from its servers.  Below the HTTP client's patience.
SERVER_PING_TIMEOUT_S = 2.0


def _ping(addr: str) -> str:
    """"" when *addr* (host:port) takes a TCP connection, else why not (Nomad's wording)."""
    host, _, port = addr.rpartition(":")
    why = dial(host.strip("[]"), int(port), SERVER_PING_TIMEOUT_S)
    return f"Server at address {addr} failed ping: {why}" if why else ""


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
    failures = gevent.pool.Group().map(_ping, addrs)  # dialled together: one slow address costs one wait
    answered = [a for a, why in zip(addrs, failures, strict=True) if not why]
    if not answered:  # go-multierror's text, as Nomad answers it
        errors = [why for why in failures if why]
        raise CodedError(400, f"{len(errors)} error{'s' if len(errors) > 1 else ''} occurred:\n\t* "
                         + "\n\t* ".join(errors) + "\n\n")
    ref.tell(ReplaceServers(tuple(answered)))
    return None
