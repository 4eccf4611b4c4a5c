"""``PUT``/``POST /v1/operator/raft/transfer-leadership``: hand Raft leadership to a named server.

Nomad 1.7's ``OperatorRaftTransferLeadership`` (``command/agent/operator_endpoint.go``)
and ``Operator.TransferLeadershipToPeer`` (``nomad/operator_endpoint.go``):

* exactly one of ``?id=`` (the server's Raft ID) or ``?address=`` (its
  Raft address, ``IP:port``), each once and not empty, else 400 with
  Nomad's reason (``must specify id or address``, ``must specify either id
  or address``, ``id must be non-empty``, ``must specify only one id``...);
  an address that is not ``IP:port`` is 400.  Here a server's Raft ID *is*
  its Raft address (``ip:port``), so Nomad's check that an ID is a UUID
  does not apply: either names the same server.
* no leader: 503 ``No cluster leader``.
* a server not in the Raft configuration: 400 ``id "x" was not found in
  the Raft configuration`` (or ``address ...``); a non-voter: 400 (only a
  voter can lead).
* the current leader: a no-op, 200 with ``"Noop": true``.
* otherwise the transfer runs on the leader (a follower's Raft forwards it:
  :class:`actors.raft.peer.Transfer`) and the answer comes once the leader
  has stepped down for the target: 200 with Nomad's
  ``LeadershipTransferResponse`` ``{"From": {"Address", "ID"}, "To":
  {"Address", "ID"}, "Noop": false, "Err": null}``; a target that does not
  take over within an election timeout is 500 ``leadership transfer
  timeout`` and the old leader keeps leading.

ACLs: a management token (actors.acl), as Nomad's.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

import pykka

from actors.http_api import (
    INVALID_METHOD,
    Api,
    CodedError,
    Request,
    _raft,
    parse_uint,
    route,
)

log = logging.getLogger("agent.http")

NO_LEADER = "No cluster leader"  # Nomad's structs.ErrNoLeader, answered 503 by this endpoint


def check_target(query: dict[str, list[str]]) -> tuple[str, str]:
    """``("id", ...)`` or ``("address", ...)`` from the query; CodedError 400 as Nomad's."""
    ids, addrs = query.get("id"), query.get("address")
    if ids is None and addrs is None:
        raise CodedError(400, "must specify id or address")
    if ids is not None and addrs is not None:
        raise CodedError(400, "must specify either id or address")
    if ids is not None:
        if ids[0] == "":
            raise CodedError(400, "id must be non-empty")
        if len(ids) > 1:
            raise CodedError(400, "must specify only one id")
        return "id", ids[0]
    assert addrs is not None
    if addrs[0] == "":
        raise CodedError(400, "address must be non-empty")
    if len(addrs) > 1:
        raise CodedError(400, "must specify only one address")
    if not is_ip_port(addrs[0]):
        raise CodedError(400, f"address must be in IP:port format: {json.dumps(addrs[0])} is not an ip:port")
    return "address", addrs[0]


def is_ip_port(text: str) -> bool:
    """Go's ``netip.ParseAddrPort``: ``1.2.3.4:80`` or ``[::1]:80``, a port of 0-65535."""
    host, sep, port = text.rpartition(":")
    if not sep or parse_uint(port, 16) is None or (len(port) > 1 and port[0] == "0"):
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def find_server(servers: list[dict[str, Any]], kind: str, value: str) -> dict[str, Any]:
    """The Raft configuration's entry named by ``kind`` (``id`` / ``address``); CodedError 400 if none."""
    field = "ID" if kind == "id" else "Address"
    found = next((s for s in servers if s[field] == value), None)
    if found is None:
        raise CodedError(400, f"{kind} {json.dumps(value)} was not found in the Raft configuration")
    return found


def _peer(server: dict[str, Any]) -> dict[str, str]:
    return {"Address": server["Address"], "ID": server["ID"]}  # hashicorp raft's ServerAddress and ServerID


# How long the request waits for the transfer's outcome: Raft answers once the target leads,
# or after it gave up -- up to three election timeouts when forwarded, 10 s each at the
# largest raft_multiplier (10); the answer comes as soon as it is known.
TRANSFER_WAIT_S = 35.0


@route("/v1/operator/raft/transfer-leadership")
def transfer_leadership(req: Request, api: Api) -> Any:
    from actors.raft.peer import RaftError, Transfer

    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    kind, value = check_target(req.query)
    ref = _raft(api)  # 501 on an agent without Raft
    status = api.ask("raft", "status")
    if not status["leader"]:
        raise CodedError(503, NO_LEADER)
    servers = api.ask("raft", "configuration")
    target = find_server(servers, kind, value)
    leader = next((s for s in servers if s["ID"] == status["leader_id"]),
                  {"ID": status["leader_id"], "Address": status["leader"]})
    if target["ID"] == leader["ID"]:
        log.debug("leadership transfer to the current leader %s is a no-op", leader["ID"])
        return {"From": _peer(leader), "To": _peer(leader), "Noop": True, "Err": None}
    if not target["Voter"]:
        raise CodedError(400, f"{kind} {json.dumps(value)} is not a voter: only a voter can lead")
    fut = api.env.make_future()
    ref.tell(Transfer(target=target["ID"], reply=fut))
    try:
        fut.get(timeout=TRANSFER_WAIT_S)
    except RaftError as e:  # the target did not take over in time, or leadership moved meanwhile
        raise CodedError(503 if str(e) == NO_LEADER else 500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "timed out waiting for the leader to transfer leadership") from None
    log.info("transferred leadership: from=%s to=%s", leader["ID"], target["ID"])
    return {"From": _peer(leader), "To": _peer(target), "Noop": False, "Err": None}
