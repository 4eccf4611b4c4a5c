"""``nomad node meta read | apply``, as Nomad's ``command/node_meta_read.go`` and ``node_meta_apply.go``.

* ``node meta read [-node-id ID] [-json]`` -- ``GET /v1/client/metadata``:
  the sections ``All Meta``, ``Dynamic Meta`` (a key unset over a static one
  shows ``<unset>``) and ``Static Meta``, each ``key = value`` aligned
  (Nomad's ``formatKV``; ``<none>`` when empty), or the
  ``NodeMetaResponse`` JSON with ``-json``.  (Nomad's ``-t`` Go template is
  not supported.)
* ``node meta apply [-node-id ID] [-unset k1,k2] k=v ...`` -- ``POST
  /v1/client/metadata``; ``k`` alone sets ``""``; prints nothing on success.

Without ``-node-id`` the agent asked is the node; ``-node-id`` takes a
unique prefix, resolved through ``/v1/nodes`` as Nomad's ``lookupNodeID``.
"""

from __future__ import annotations

from typing import Any

from runtime.cli import CliError
from runtime.cli_jobs import as_json, kv, parse_flags, request, resolve

__all__ = ["NODE_META_COMMANDS"]


def _node_id(addr: str, ident: str) -> str:
    """Nomad ``lookupNodeID``: at least two characters, then a unique prefix."""
    if not ident:
        return ""
    if len(ident) == 1:
        raise CliError("Node ID must contain at least two characters.")
    found = resolve(addr, "node", ident)
    return found["ID"] if isinstance(found, dict) else str(found)


def _kv_or_none(pairs: list[tuple[str, Any]]) -> str:
    return kv(pairs) if pairs else "<none>"


def meta_read(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"node-id": str, "json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    node_id = _node_id(addr, flags.get("node-id", ""))
    try:
        meta = request(addr, "GET", "/v1/client/metadata", node_id=node_id or None)
    except CliError as e:
        raise CliError(f"Error reading dynamic node metadata: {e}") from None
    if flags.get("json"):
        return as_json(meta)
    dynamic = sorted((meta.get("Dynamic") or {}).items())
    return "\n".join([
        "All Meta", _kv_or_none([(k, v) for k, v in sorted((meta.get("Meta") or {}).items()) if k]),
        "", "Dynamic Meta", _kv_or_none([(k, "<unset>" if v is None else v) for k, v in dynamic]),
        "", "Static Meta", _kv_or_none([(k, v) for k, v in sorted((meta.get("Static") or {}).items()) if k]),
    ])


def parse_changes(pairs: list[str], unset: str) -> dict[str, str | None]:
    """Nomad's ``parseMapFromArgs`` then ``applyNodeMetaUnset``: ``k=v``, ``k`` (= ""), unset keys null."""
    out: dict[str, str | None] = {}
    for pair in pairs:
        k, eq, v = pair.partition("=")
        out[k] = v if eq else ""
    for k in unset.split(","):
        if k:
            out[k] = None
    return out


def meta_apply(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"node-id": str, "unset": str})
    unset = flags.get("unset", "")
    if not unset and not rest:
        raise CliError("Must specify -unset or at least 1 key=value pair")
    node_id = _node_id(addr, flags.get("node-id", ""))
    body = {"NodeID": node_id, "Meta": parse_changes(rest, unset)}
    try:
        request(addr, "POST", "/v1/client/metadata", body)
    except CliError as e:
        raise CliError(f"Error applying dynamic node metadata: {e}") from None
    return ""


NODE_META_COMMANDS = {("node", "meta", "read"): meta_read, ("node", "meta", "apply"): meta_apply}
