"""Gossip keyring endpoints (Nomad ``KeyringOperationRequest``, ``command/agent/keyring_endpoint.go``).

``GET /v1/agent/keyring/list`` and ``PUT|POST /v1/agent/keyring/install``,
``/use``, ``/remove`` with a JSON body ``{"Key": "<base64>"}``.  Each runs
serf's pool-wide key operation through the local gossip member
(``actors.gossip.keyring``) and answers Nomad's ``KeyringResponse``:
``{"Messages": {node: error}, "Keys": {key: members holding it},
"NumNodes": n}``.  A body that is not such JSON, or a key that is not a
valid AES key, is a 400 naming the problem; a member that fails or does not
answer makes the whole operation a 500 with serf's ``N/M nodes reported
failure`` and each member's reason.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors.gossip.keyring import NOT_ENABLED, KeyringRequest, normalize_key
from actors.http_api import (
    CodedError,
    Request,
    _gossip,
    _server_only,
    decode_json,
    read_body,
    require,
    route,
)

# A keyring operation waits for every member up to serf's query timeout
# (gossip_interval * 16 * ceil(log10(N+1)): 8 s for up to 9 WAN-profile
# servers, 16 s up to 99); the HTTP handler waits a margin beyond that.
KEYRING_WAIT_S = 30.0
OPS = ("list", "install", "use", "remove")


def parse_key_body(body: bytes) -> str:
    """The ``Key`` of a ``{"Key": "..."}`` body, validated; CodedError(400) naming what is wrong."""
    if not body.strip():
        raise CodedError(400, 'missing request body: want {"Key": "<base64 key>"}')
    try:
        doc = decode_json(body)
    except ValueError as e:  # UnicodeDecodeError is a ValueError
        raise CodedError(400, f"Failed to decode request body: {e}") from None
    if not isinstance(doc, dict):
        raise CodedError(400, 'Failed to decode request body: want a JSON object {"Key": "<base64 key>"}')
    key = doc.get("Key")
    if not isinstance(key, str) or not key:
        raise CodedError(400, 'Key: want a non-empty string (a base64 gossip key)')
    try:
        return normalize_key(key)
    except ValueError as e:
        raise CodedError(400, f"Key: {e}") from None


@route("/v1/agent/keyring/")
def keyring_operation(req: Request, api: Any) -> Any:
    _server_only(api)  # Nomad: an agent without a server answers 501 Invalid method before anything else
    op = req.path.rsplit("/", 1)[-1]
    if op not in OPS or req.path != f"/v1/agent/keyring/{op}":
        raise CodedError(404, "resource not found")
    if op == "list":
        require(req, "GET")
        key = ""
    else:
        require(req, "PUT", "POST")
        key = parse_key_body(read_body(req))
    fut = api.env.make_future()
    _gossip(api).tell(KeyringRequest(op=op, key=key, reply=fut))
    try:
        got = fut.get(timeout=KEYRING_WAIT_S)
    except pykka.Timeout:
        raise CodedError(500, f"keyring {op} did not finish within {KEYRING_WAIT_S:g}s") from None
    except Exception as e:  # serf's error, with each member's reason
        message = str(e)
        raise CodedError(400 if message == NOT_ENABLED else 500, message) from None
    return {"Messages": got["Messages"], "Keys": got["Keys"], "NumNodes": got["NumNodes"]}
