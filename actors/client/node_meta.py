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
    """What the bound counts: the UTF-8 bytes of every key set and its value (an unset counts nothing:
    a run of sets and unsets must not fill the map with what the node no longer has)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in dynamic.items() if v is not None)


def without_stale_unsets(static: Mapping[str, str], dynamic: Mapping[str, str | None]) -> DynamicMeta:
    """*dynamic* less the unsets of keys the static meta does not have (they hide nothing): Nomad's
    client forgets them when it starts ("tombstone as there's no static value")."""
    return {k: v for k, v in dynamic.items() if v is not None or k in static}


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
        out[_valid_utf8(str(k))] = None if v is None else _valid_utf8(v)
    return out


def _valid_utf8(s: str) -> str:
    """A lone surrogate (valid JSON escape, not valid UTF-8) becomes U+FFFD, as Go's decoder makes it."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


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
class MetaStoreError(Exception):
    """The saved dynamic node metadata cannot be read."""


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
        """The saved map; {} when there is none.  A file that cannot be read or is not a map of
        strings raises MetaStoreError, as Nomad's client refuses to start ("error reading dynamic
        node metadata"): starting without it would drop keys jobs are placed by."""
        try:
            with open(self.path, encoding="utf-8") as f:
                raw = json.load(f)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            return decode_changes(raw)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise MetaStoreError(f"error reading dynamic node metadata from {self.path}: {e}") from None

    def save(self, dynamic: Mapping[str, str | None]) -> None:
        # Off the gevent hub (a threadpool thread): the fsyncs would stall every actor in the
        # process, Raft's too on a server that is also a client.  The calling actor waits.
        from gevent import get_hub

        get_hub().threadpool.apply(self._save, (dict(dynamic),))

    def _save(self, dynamic: Mapping[str, str | None]) -> None:
        from actors.client.node import _write_durably  # the identity files' writer: tmp, fsync, rename

        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        _write_durably(self.path, json.dumps(dict(sorted(dynamic.items())), ensure_ascii=True))
