"""Dynamic node metadata (Nomad 1.5+): the pure rules, and where the client keeps it.

Nomad's ``client/meta_endpoint.go`` and ``structs.NodeMetaApplyRequest``:

* the operator applies a map of changes, ``{"k": "v", "gone": None}``: a
  string sets dynamic key ``k``, ``None`` unsets it.  The changes are copied
  over the dynamic map as they are, ``None`` included (Nomad's
  ``maps.Copy(dyn, args.Meta)``), so a ``None`` over a key of the static
  ``client.meta`` hides that key from the node's meta until it is set again;
* the node's meta is the static map with the dynamic one over it
  (:func:`merged`);
* a request is refused when it has no changes (``missing required Meta
  object``), or a key that is empty or is not dotted HCL identifiers
  (:func:`validate_changes`, Nomad's own messages).  Beyond Nomad, the
  dynamic map after the change is bounded (``dynamic_meta_max_bytes``, see
  :class:`~actors.client.node.ClientNodeConfig`): it travels whole in every
  registration and Raft entry of the node.

The stores are the edge: :class:`FileMetaStore` keeps the dynamic map in
``<state_dir>/node-meta.json`` (0600, next to ``client-id``), written
durably before the change is answered, as Nomad's ``PutNodeMeta`` does;
:class:`MemoryMetaStore` is the simulator's (and dev mode's), which outlives
a crash as long as the object is kept.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("nomad.client")

DynamicMeta = dict[str, str | None]  # key -> value, None: unset (hides a static key)
META_FILE = "node-meta.json"


# ------------------------------------------------------------ the rules (pure)
def _hcl_identifier(part: str) -> bool:
    """hclsyntax.ValidIdentifier: ID_Start or ``_``, then ID_Continue or ``-`` (UAX #31 plus dashes)."""
    return bool(part) and part[0] != "-" and part.replace("-", "_").isidentifier()


def validate_changes(changes: Mapping[str, str | None]) -> str:
    """Nomad's ``NodeMetaApplyRequest.Validate``: "" when the changes may apply, else the reason."""
    if not changes:
        return "missing required Meta object"
    for k in sorted(changes):
        if k == "":
            return "metadata keys must not be empty"
        if not all(_hcl_identifier(part) for part in k.split(".")):
            return f"{json.dumps(k)} is invalid; metadata keys must be valid dotted hcl identifiers"
    return ""


def dynamic_size(dynamic: Mapping[str, str | None]) -> int:
    """What the bound counts: every key's and value's UTF-8 bytes."""
    return sum(len(k.encode()) + len((v or "").encode()) for k, v in dynamic.items())


def apply_changes(dynamic: Mapping[str, str | None], changes: Mapping[str, str | None]) -> DynamicMeta:
    """The dynamic map after *changes*: copied over it, unsets (None) kept (Nomad's ``maps.Copy``)."""
    out = dict(dynamic)
    out.update(changes)
    return dict(sorted(out.items()))


def merged(static: Mapping[str, str], dynamic: Mapping[str, str | None]) -> dict[str, str]:
    """The node's meta: *static* with *dynamic* over it, a None removing the key."""
    out = dict(static)
    for k, v in dynamic.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return dict(sorted(out.items()))


def meta_response(static: Mapping[str, str], dynamic: Mapping[str, str | None]) -> dict[str, object]:
    """Nomad's ``NodeMetaResponse``: ``{"Meta": merged, "Dynamic": {k: v or None}, "Static": {...}}``."""
    return {"Meta": merged(static, dynamic), "Dynamic": dict(sorted(dynamic.items())),
            "Static": dict(sorted(static.items()))}


def decode_changes(raw: object) -> DynamicMeta:
    """A request's ``Meta`` as changes; ValueError (Go's decoder's words) unless string -> string or null."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"json: cannot unmarshal {_json_kind(raw)} into Go struct field "
                         "NodeMetaApplyRequest.Meta of type map[string]*string")
    out: DynamicMeta = {}
    for k, v in raw.items():
        if v is not None and not isinstance(v, str):
            raise ValueError(f"json: cannot unmarshal {_json_kind(v)} into Go struct field "
                             "NodeMetaApplyRequest.Meta of type string")
        out[str(k)] = v
    return out


def _json_kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


# ------------------------------------------------------------ stores (an edge)
class MetaStore(Protocol):
    def load(self) -> DynamicMeta:
        """The dynamic meta saved before ({} if none)."""

    def save(self, dynamic: Mapping[str, str | None]) -> None:
        """Keep *dynamic* durably; raises OSError when it cannot."""


@dataclass(slots=True)
class MemoryMetaStore:
    """The simulator's (and dev mode's) store: keep the object to survive a crash."""

    data: DynamicMeta = field(default_factory=dict)

    def load(self) -> DynamicMeta:
        return dict(self.data)

    def save(self, dynamic: Mapping[str, str | None]) -> None:
        self.data = dict(dynamic)


class FileMetaStore:
    """``<state_dir>/node-meta.json``: the dynamic map as a JSON object (file 0600, dir 0700)."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, META_FILE)

    def load(self) -> DynamicMeta:
        try:
            with open(self.path, encoding="utf-8") as f:
                raw = json.load(f)
            return decode_changes(raw)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # A client that cannot start is worse than one that lost its
            # dynamic meta; the operator is told, and can apply it again.
            log.warning("dynamic node metadata in %s is unreadable (%s): starting without it", self.path, e)
            return {}

    def save(self, dynamic: Mapping[str, str | None]) -> None:
        from actors.client.node import _write_durably  # the identity files' writer: tmp, fsync, rename

        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        _write_durably(self.path, json.dumps(dict(sorted(dynamic.items())), ensure_ascii=True))
