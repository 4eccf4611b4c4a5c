"""The replicated state machine: the cluster state every server holds.

Raft hands it committed commands in log order; applying one is a pure,
deterministic function of the command and the current state (no clock, no
randomness: timestamps travel inside the command, chosen by the leader).

Tables follow Nomad's state store: ``nodes``, ``jobs``, ``allocs``,
``evals``, plus ``kv`` (a register map used by the linearizability tests and
the benchmark).  Each table has a modify index -- the Raft index of the last
command that changed it -- which blocking queries wait on, as in Nomad's
``X-Nomad-Index``.  Records are plain msgpack-able dicts owned by the store;
readers receive copies, never the store's own objects.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import msgpack

TABLES = ("nodes", "jobs", "allocs", "evals", "kv")
SNAPSHOT_VERSION = 1


class CommandError(ValueError):
    """A command that cannot apply (unknown op, bad arguments): refused, state unchanged."""


def command(op: str, **args: Any) -> bytes:
    """Encode a state-machine command for Raft."""
    return msgpack.packb({"op": op, **args}, use_bin_type=True)


def decode_result(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False) if data else None


def encode_result(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


class StateStore:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {t: {} for t in TABLES}
        self.table_index: dict[str, int] = {t: 0 for t in TABLES}
        self.applied_index = 0
        self._watchers: list[Callable[[str, int], None]] = []
        self._ops: dict[str, Callable[[int, dict[str, Any]], Any]] = {
            "kv_put": self._kv_put,
            "kv_cas": self._kv_cas,
            "kv_delete": self._kv_delete,
            "upsert": self._upsert,
            "delete": self._delete,
            "batch": self._batch,
            "node_register": self._node_register,
            "node_update_status": self._node_update_status,
            "node_gc": self._node_gc,
        }

    # ------------------------------------------------------------ apply
    def apply(self, index: int, data: bytes) -> Any:
        """Apply one committed command at Raft *index*; returns its result.

        A bad command is answered with ``{"error": ...}`` and changes nothing:
        every server refuses it the same way, so the state never diverges.
        """
        if index <= self.applied_index:
            raise AssertionError(f"apply out of order: {index} after {self.applied_index}")
        self.applied_index = index
        try:
            cmd = msgpack.unpackb(data, raw=False)
            if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
                raise CommandError("command must be a map with an op")
            handler = self._ops.get(cmd["op"])
            if handler is None:
                raise CommandError(f"unknown op {cmd['op']!r}")
            return handler(index, cmd)
        except (CommandError, ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _touch(self, table: str, index: int) -> None:
        self.table_index[table] = index
        for w in list(self._watchers):
            w(table, index)

    def _table(self, cmd: dict[str, Any]) -> str:
        table = cmd.get("table")
        if table not in self.tables:
            raise CommandError(f"unknown table {table!r}")
        return table

    def _kv_put(self, index: int, cmd: dict[str, Any]) -> Any:
        self.tables["kv"][str(cmd["key"])] = cmd["value"]
        self._touch("kv", index)
        return {"ok": True}

    def _kv_cas(self, index: int, cmd: dict[str, Any]) -> Any:
        key = str(cmd["key"])
        if self.tables["kv"].get(key) != cmd["expect"]:
            return {"ok": False, "value": self.tables["kv"].get(key)}
        self.tables["kv"][key] = cmd["value"]
        self._touch("kv", index)
        return {"ok": True}

    def _kv_delete(self, index: int, cmd: dict[str, Any]) -> Any:
        existed = self.tables["kv"].pop(str(cmd["key"]), None) is not None
        self._touch("kv", index)
        return {"ok": existed}

    def _upsert(self, index: int, cmd: dict[str, Any]) -> Any:
        table = self._table(cmd)
        record = cmd["record"]
        if not isinstance(record, dict) or not isinstance(record.get("ID"), str):
            raise CommandError("record must be a map with a string ID")
        old = self.tables[table].get(record["ID"])
        record = dict(record)
        record["CreateIndex"] = old["CreateIndex"] if old else index
        record["ModifyIndex"] = index
        self.tables[table][record["ID"]] = record
        self._touch(table, index)
        return {"ok": True, "index": index}

    def _delete(self, index: int, cmd: dict[str, Any]) -> Any:
        table = self._table(cmd)
        ids = cmd["ids"]
        if not isinstance(ids, list):
            raise CommandError("ids must be a list")
        gone = [i for i in ids if self.tables[table].pop(i, None) is not None]
        self._touch(table, index)
        return {"ok": True, "deleted": gone}

    def _batch(self, index: int, cmd: dict[str, Any]) -> Any:
        # All-or-nothing: validate by applying to a copy first would cost a
        # copy; instead every sub-op is checked before any is applied.
        ops = cmd["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, dict) and o.get("op") in
                                                ("upsert", "delete") for o in ops):
            raise CommandError("batch ops must be upserts and deletes")
        for o in ops:
            self._table(o)
        return [self._ops[o["op"]](index, o) for o in ops]

    # ------------------------------------------------------------ reads
    def get(self, table: str, key: str) -> Any:
        return copy.deepcopy(self.tables[table].get(key))

    def list(self, table: str, prefix: str = "") -> list[Any]:
        t = self.tables[table]
        return [copy.deepcopy(t[k]) for k in sorted(t) if k.startswith(prefix)]

    def index(self, table: str) -> int:
        return self.table_index[table]

    def watch(self, fn: Callable[[str, int], None]) -> Callable[[], None]:
        """Call *fn(table, index)* after every change; returns an unsubscribe."""
        self._watchers.append(fn)
        return lambda: self._watchers.remove(fn) if fn in self._watchers else None

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> bytes:
        return msgpack.packb({"v": SNAPSHOT_VERSION, "applied": self.applied_index,
                              "tables": self.tables, "index": self.table_index}, use_bin_type=True)

    def restore(self, data: bytes, index: int) -> None:
        snap = msgpack.unpackb(data, raw=False) if data else {
            "v": SNAPSHOT_VERSION, "tables": {}, "index": {}}
        if snap.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported state snapshot version {snap.get('v')}")
        watchers = self._watchers
        self.tables = {t: dict(snap["tables"].get(t, {})) for t in TABLES}
        self.table_index = {t: int(snap["index"].get(t, 0)) for t in TABLES}
        self.applied_index = index
        self._watchers = watchers
        for t in TABLES:
            for w in list(self._watchers):
                w(t, self.table_index[t])

    def digest(self) -> bytes:
        """A canonical encoding of the whole state, to compare servers."""
        return msgpack.packb([sorted((t, sorted(self.tables[t].items())) for t in TABLES)],
                             use_bin_type=True)

    # ------------------------------------------------------------ nodes (issue 6)
    # Nomad's Node.Register / Node.UpdateStatus / node GC writes
    # (nomad/state/state_store.go upsertNodeTxn, updateNodeStatusTxn;
    # NOMAD.md §3-4).  Timestamps come in the command ("now", chosen by the
    # leader), so every server applies them identically.

    NODE_STATUSES = ("initializing", "ready", "down", "disconnected")
    MAX_NODE_EVENTS = 10  # Nomad MaxRetainedNodeEvents

    @staticmethod
    def _node_event(message: str, subsystem: str, now: float, index: int,
                    details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"Message": message, "Subsystem": subsystem, "Details": dict(details or {}),
                "Timestamp": now, "CreateIndex": index}

    def _node_register(self, index: int, cmd: dict[str, Any]) -> Any:
        """Create or update a node; an existing node keeps its status (only UpdateStatus changes it)."""
        node, now = cmd["node"], float(cmd["now"])
        if not isinstance(node, dict) or not isinstance(node.get("ID"), str) or not node["ID"]:
            raise CommandError("node must be a map with a string ID")
        nodes = self.tables["nodes"]
        old = nodes.get(node["ID"])
        if old is not None and old.get("SecretID") and node.get("SecretID") != old["SecretID"]:
            return {"ok": False, "error": "node secret ID does not match"}
        rec = dict(node)
        rec["StatusUpdatedAt"] = now  # Nomad sets it on every Register
        rec["ModifyIndex"] = index
        if old is None:
            status = rec.get("Status") or "initializing"
            if status not in self.NODE_STATUSES:
                raise CommandError(f"unknown node status {status!r}")
            rec["Status"] = status
            rec["SchedulingEligibility"] = rec.get("SchedulingEligibility") or "eligible"
            rec["Events"] = [self._node_event("Node registered", "Cluster", now, index)]
            rec["LastMissedHeartbeatIndex"] = 0
            rec["CreateIndex"] = index
        else:
            for keep in ("Status", "SchedulingEligibility", "DrainStrategy", "LastDrain", "Events",
                         "LastMissedHeartbeatIndex", "CreateIndex"):
                if keep in old:
                    rec[keep] = old[keep]
        nodes[rec["ID"]] = rec
        self._touch("nodes", index)
        return {"ok": True, "index": index, "status": rec["Status"], "prev": old["Status"] if old else "",
                "created": old is None}

    def _node_update_status(self, index: int, cmd: dict[str, Any]) -> Any:
        """Set a node's status, record the event, and list its live allocations when it goes down."""
        node_id, status, now = str(cmd["node_id"]), cmd["status"], float(cmd["now"])
        if status not in self.NODE_STATUSES:
            raise CommandError(f"unknown node status {status!r}")
        nodes = self.tables["nodes"]
        old = nodes.get(node_id)
        if old is None:
            return {"ok": False, "error": "node not found"}
        prev = old.get("Status", "")
        rec = dict(old)
        rec["Status"] = status
        rec["StatusUpdatedAt"] = now
        rec["ModifyIndex"] = index
        unresponsive = ("down", "disconnected")
        if prev not in unresponsive and status in unresponsive:
            rec["LastMissedHeartbeatIndex"] = index
        elif prev != "ready" and status == "ready":
            rec["LastMissedHeartbeatIndex"] = 0
        event = cmd.get("event")
        if event:
            events = [*old.get("Events", ()),
                      self._node_event(str(event.get("Message", "")), str(event.get("Subsystem", "Cluster")),
                                       now, index, event.get("Details"))]
            rec["Events"] = events[-self.MAX_NODE_EVENTS:]
        nodes[node_id] = rec
        self._touch("nodes", index)
        live: list[str] = []
        if status == "down":
            from actors.server.node_gc import alloc_terminal  # pure rule, shared with GC

            live = sorted(a["ID"] for a in self.tables["allocs"].values()
                          if a.get("NodeID") == node_id and not alloc_terminal(a))
        return {"ok": True, "index": index, "status": status, "prev": prev, "allocs": live}

    def _node_gc(self, index: int, cmd: dict[str, Any]) -> Any:
        """Remove the listed nodes that are still eligible at the command's cutoff."""
        from actors.server.node_gc import allocs_by_node, gc_eligible

        ids, cutoff = cmd["ids"], float(cmd["cutoff"])
        if not isinstance(ids, list):
            raise CommandError("ids must be a list")
        nodes = self.tables["nodes"]
        by_node = allocs_by_node(self.tables["allocs"].values(), ids)
        deleted = [i for i in ids if i in nodes and gc_eligible(nodes[i], by_node.get(i, ()), cutoff)]
        for i in deleted:
            del nodes[i]
        if deleted:
            self._touch("nodes", index)
        return {"ok": True, "deleted": deleted}
