"""``/v1/client/metadata``: a client's dynamic node metadata (Nomad 1.5+, ``command/agent/meta_endpoint.go``).

* ``GET /v1/client/metadata[?node_id=]`` -- Nomad's ``NodeMetaResponse``:
  ``{"Meta": {...}, "Dynamic": {...}, "Static": {...}}``: the node's meta
  (static ``client.meta`` with the dynamic over it), the dynamic map (a
  ``null`` value is a key unset over a static one) and the static map;
* ``POST`` (and ``PUT``, beyond Nomad's POST only) with
  ``{"NodeID": "...", "Meta": {"k": "v", "gone": null}}`` -- a string sets a
  dynamic key, ``null`` unsets it; answers the ``NodeMetaResponse`` once the
  change is saved in the client's state dir.  The servers' ``Node.Meta``
  follows within the node-update debounce (up to 10 s; 1 s in dev mode), as
  in Nomad.  ``?node_id=`` wins over the body's ``NodeID``.

The node named (none: this agent's own) answers: this client itself, via
its ClientNode (:class:`~actors.client.node.ReadNodeMeta` /
:class:`~actors.client.node.ApplyNodeMeta`); any other node is found through
this agent's state (a server's store, or a client-only agent's servers, as
the caller) and the request relayed to its HTTP address with the caller's
token, as :mod:`actors.http_client_forward` relays allocation requests.
Errors, with Nomad's words: a body that does not decode, 400 with the
decoder's reason; a refused key, 400 (``"k" is invalid; metadata keys must
be valid dotted hcl identifiers``, ``missing required Meta object``...); no
node named on an agent that is not a client, 400 ``No local Node and
node_id not provided``; a node the servers do not know, 404 ``Unknown node
<id>``; a node that cannot be reached, 500.  ACLs: ``node:read`` to read,
``node:write`` to change (:mod:`actors.acl`), checked here and on the node.
"""

from __future__ import annotations

import http.client
import urllib.parse
from typing import Any

from actors.http_api import Api, CodedError, Request, _stale_read, decode_json, read_body, require, route
from actors.http_client_forward import FORWARDED_HEADER, PASSED_HEADERS, _read_own_api, _relay

CLIENT = "client"  # the client agent's ClientNode (actors.agent_specs)
_FORWARDED_ENVIRON = "HTTP_X_NOMAD_CLIENT_FORWARDED"
PATH = "/v1/client/metadata"


@route(PATH)
def client_metadata(req: Request, api: Api) -> Any:
    require(req, "GET", "PUT", "POST")
    changes: tuple[tuple[str, str | None], ...] | None = None
    body = b""
    node_id = ""
    if req.method != "GET":
        body = read_body(req)
        node_id, changes = _decode(body)
    node_id = (req.query.get("node_id") or [""])[0] or node_id
    mine = _own_node_id(api)
    if not node_id or node_id == mine:
        if not mine:
            raise CodedError(400, "No local Node and node_id not provided")
        return _answer_here(api, changes)
    environ = req.environ or {}
    if environ.get(_FORWARDED_ENVIRON):  # relayed here by an agent that took us for the node: never again
        raise CodedError(404, f"Unknown node {node_id}")
    return _relay_to_node(req, api, environ, node_id, body)


def _decode(raw: bytes) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """A ``NodeMetaApplyRequest`` body -> (NodeID, sorted changes); 400 as Nomad's ``decodeBody``."""
    from actors.client.node_meta import _json_kind, decode_changes

    if not raw.strip():
        raise CodedError(400, "Request body is empty")
    try:
        doc = decode_json(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Failed to decode request body: {e}") from None
    if not isinstance(doc, dict):
        raise CodedError(400, f"json: cannot unmarshal {_json_kind(doc)} into Go value of type "
                              "structs.NodeMetaApplyRequest")
    node_id = doc.get("NodeID")
    if node_id is not None and not isinstance(node_id, str):
        raise CodedError(400, f"json: cannot unmarshal {_json_kind(node_id)} into Go struct field "
                              "NodeMetaApplyRequest.NodeID of type string")
    try:
        changes = decode_changes(doc.get("Meta"))
    except ValueError as e:
        raise CodedError(400, str(e)) from None
    return node_id or "", tuple(sorted(changes.items()))


def _own_node_id(api: Api) -> str:
    """This agent's node ID; "" when it is not a client."""
    ref = api.env.lookup(CLIENT)
    if ref is None or not ref.is_alive():
        return ""
    return str(api.ask(CLIENT, "status").get("node_id") or "")


def _answer_here(api: Api, changes: tuple[tuple[str, str | None], ...] | None) -> Any:
    from actors.client.node import ApplyNodeMeta, ReadNodeMeta

    if changes is None:
        return api.ask(CLIENT, ReadNodeMeta())
    error, resp = api.ask(CLIENT, ApplyNodeMeta(changes))
    if error.startswith("invalid: "):
        raise CodedError(400, error[len("invalid: "):])
    if error:
        raise CodedError(500, error)
    return resp


def _node_address(api: Api, environ: dict[str, Any], node_id: str) -> str | None:
    """The node's advertised HTTP address ("" if it has none); None: the servers do not know it."""
    raft = api.env.lookup("raft")
    if raft is not None and raft.is_alive():
        def query(st: Any) -> str | None:
            n = st.tables["nodes"].get(node_id)
            return None if n is None else str(n.get("HTTPAddr") or "")
        return _stale_read(api, query)[1]
    status, node = _read_own_api(api, environ, f"/v1/node/{urllib.parse.quote(node_id, safe='')}")
    if status == 404:
        return None
    if status != 200:
        raise CodedError(status, str(node))
    return str(node.get("HTTPAddr") or "")


def _relay_to_node(req: Request, api: Api, environ: dict[str, Any], node_id: str, body: bytes) -> Any:
    target = _node_address(api, environ, node_id)
    if target is None:
        raise CodedError(404, f"Unknown node {node_id}")
    if not target:
        raise CodedError(500, f"node {node_id} has no HTTP address to relay to")
    headers = {name: environ[k] for k, name in PASSED_HEADERS if k in environ}
    headers[FORWARDED_HEADER] = "1"
    query = {k: v for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
             .items() if k != "node_id"}
    query["node_id"] = [node_id]
    url = PATH + "?" + urllib.parse.urlencode(query, doseq=True)
    try:
        return _relay(target, req.method, url, body, headers, api.ctx.tls, follow=False)
    except (OSError, http.client.HTTPException) as e:
        raise CodedError(500, f"failed relaying to node {node_id} at {target}: {e}") from None
