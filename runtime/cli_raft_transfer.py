"""``nomad operator raft transfer-leadership``, as Nomad's ``command/operator_raft_transfer_leadership.go``.

``-peer-id=ID`` or ``-peer-address=IP:port`` (exactly one) asks
``/v1/operator/raft/transfer-leadership`` and prints ``Transferred
leadership to peer with id "ID"`` (or ``address``) once the leader has
handed over; a server's Raft ID is its node ID and its address is its RPC
address (``nomad operator raft list-peers`` shows both).  Errors go to
stderr with exit 1.
"""

from __future__ import annotations

import json

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags, request

__all__ = ["TRANSFER_COMMANDS"]

_TRANSFER_ERROR = "Error transferring leadership to peer"


def _q(text: str) -> str:
    """Go's ``%q`` for the strings an operator types."""
    return json.dumps(text, ensure_ascii=False)


def transfer_leadership(addr: str, args: list[str]) -> str:
    try:
        flags, rest = parse_flags(args, {"peer-address": str, "peer-id": str})
    except CliError as e:
        raise CliError(f"Failed to parse args: {e}") from None
    if rest:
        raise CliError("This command takes no arguments")
    address, peer_id = flags.get("peer-address", ""), flags.get("peer-id", "")
    if not address and not peer_id:
        raise CliError(f"{_TRANSFER_ERROR}: an address or id is required for the destination peer")
    if address and peer_id:
        raise CliError(f"{_TRANSFER_ERROR}: cannot give both an address and id")
    query = {"address": address} if address else {"id": peer_id}
    try:
        request(addr, "PUT", "/v1/operator/raft/transfer-leadership", **query)
    except CliError as e:
        raise CliError(f"{_TRANSFER_ERROR}: {e}") from None
    if address:
        return f"Transferred leadership to peer with address {_q(address)}"
    return f"Transferred leadership to peer with id {_q(peer_id)}"


TRANSFER_COMMANDS = {("operator", "raft", "transfer-leadership"): transfer_leadership}
