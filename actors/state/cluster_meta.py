"""The cluster's identity: one replicated record (Nomad's ``ClusterMetadata``).

The first leader of a cluster makes it (Nomad's ``establishClusterID``,
here :mod:`actors.server.cluster_id`): a random UUID from the leader's
injected environment and the creation time in Unix nanoseconds, written
through Raft once, when the state has none; later leaders find it and
write nothing.  It is kept in snapshots (``nomad operator snapshot inspect``
lists it as the ``cluster_meta`` table, as Nomad's lists ClusterMetadata).

What the state machine derives IDs from includes it once it is set: the
IDs of evaluations (and so of the allocations and deployments the
scheduler derives from them), of dispatched jobs and of scaling policies
are then different in every cluster, while every server of one cluster
still derives the same ones.  An operator's restore keeps the cluster's own
record when it has one (whatever the snapshot holds), so a cluster restored
from another's snapshot goes on making IDs of its own.  An entry applied while the state has no
cluster ID -- every entry of a log written before this record existed, and
a restored snapshot taken before it -- derives exactly the IDs it always did.
"""

from __future__ import annotations

import uuid
from typing import Any

TABLE = "cluster_meta"
KEY = "cluster"


def cluster_id(tables: dict[str, dict[str, Any]]) -> str:
    """The cluster's ID ("" until the first leader has written it)."""
    rec = tables.get(TABLE, {}).get(KEY)
    return rec.get("ClusterID", "") if isinstance(rec, dict) else ""


def current(state: Any) -> dict[str, Any] | None:
    """Read query: the record ({"ClusterID", "CreateTime"}, a copy), None while there is none."""
    rec = state.tables[TABLE].get(KEY)
    return dict(rec) if rec else None


def new_metadata(rng: Any, now_s: float) -> dict[str, Any]:
    """A new cluster's record: a random (version 4) UUID drawn from *rng* (the env's), created at *now_s*."""
    return {"ClusterID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "CreateTime": int(now_s * 1e9)}


def set_meta(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``cluster_meta_set``: record the cluster ID; one already set is never replaced (Nomad's
    setClusterMetadata refuses a different one, the sign of a bug in ID detection)."""
    cid, created = cmd.get("cluster_id"), cmd.get("create_time")
    try:
        ok = isinstance(cid, str) and str(uuid.UUID(cid)) == cid
    except ValueError:
        ok = False
    if not ok:
        return {"ok": False, "error": f"cluster ID must be a UUID, got {cid!r}"}
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        return {"ok": False, "error": f"cluster create time must be a non-negative integer, got {created!r}"}
    old = cluster_id(store.tables)
    if old and old != cid:
        return {"ok": False, "error": f"refusing to set new cluster id, previous: {old}, new: {cid}"}
    if old:
        return {"ok": True, "index": index, "created": False, "ClusterID": old}
    store.tables[TABLE][KEY] = {"ClusterID": cid, "CreateTime": created, "CreateIndex": index,
                                "ModifyIndex": index}
    store._touch(TABLE, index)
    return {"ok": True, "index": index, "created": True, "ClusterID": cid}
