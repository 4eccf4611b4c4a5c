"""Cluster-wide node checkers: heartbeats, node down, node GC (STYLE.md §8).

The checker is independent of the code it checks.  It learns what servers
decided by replaying the committed Raft log into its own state store (any
live server's log: committed entries agree everywhere), and what clients
experienced from their heartbeat acknowledgements (``on_ack``, which the
simulated ClientNodes call).  Rules, checked on every committed command:

* **No false down.**  A client whose heartbeat (or registration) sent at
  ``sent`` was acknowledged at ``acked`` with TTL ``ttl`` holds a server timer
  of at least ``sent + ttl + grace``.  A transition to ``down`` decided at
  ``t`` (the leader's clock, carried in the command) with
  ``acked <= t < sent + ttl + grace`` is a violation.  This is also "a node
  is marked down only after TTL + grace without a heartbeat".  The same
  holds for ``disconnected`` (a missed heartbeat while an allocation may wait
  out its ``disconnect.lost_after``), and for ``disconnected -> down``.
* **GC only what is collectable.**  A node removed by ``node_gc`` was
  ``down``, had been down for at least ``node_gc_threshold`` at the
  command's time (any positive threshold when forced), and had no
  non-terminal allocation.
* **Job GC removes only finished work.**  An allocation removed by
  ``core_gc`` was terminal and not running on its client; a job removed was
  stopped or dead and took no live allocation with it; no evaluation
  removed was pending or blocked.
* **No time travel.**  A command's timestamp is not in the future.

If log compaction hides entries the checker has not seen, it restarts from
that server's state (counted in ``resyncs``; the simulated clusters keep the
snapshot threshold high so this stays 0).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgpack

from actors.raft.messages import NORMAL
from actors.server.node_gc import alloc_terminal
from actors.state.store import StateStore

# on_ack's list is sorted into the nodes' histories when it holds this many
# (about half an hour of 1,000 clients' heartbeats, a few MB).
_FOLD_AT = 65_536
EPS = 1e-6  # float slack on time comparisons (virtual time is exact to far better than this)


class NodeViolation(AssertionError):
    """A cluster-wide node rule was broken."""


class Ack(NamedTuple):
    """One acknowledged heartbeat (a tuple: one is made per simulated heartbeat)."""

    sent: float
    acked: float
    ttl: float


class NodeCheckers:
    def __init__(self, *, grace_s: float, gc_threshold_s: float, history: int = 16) -> None:
        self.grace_s = grace_s
        self.gc_threshold_s = gc_threshold_s
        self.acks: dict[str, collections.deque[Ack]] = {}
        self._history = history
        self._new_acks: list[tuple[str, float, float, float]] = []  # on_ack's, not yet in acks
        self.replica = StateStore()
        self.seen = 0
        self.downs: list[tuple[str, float]] = []  # (node ID, when marked down)
        self.recoveries: list[tuple[str, float]] = []  # (node ID, when down -> ready)
        self.collected: list[tuple[str, float]] = []  # (node ID, when removed by GC)
        self.resyncs = 0
        self.commands = 0
        self.core_gc_removed = 0  # jobs + evaluations + allocations removed by job GC
        # Clock skew allowed between servers' clocks (which stamp commands)
        # and true time: 0 unless the run drifts clocks, then the drift bound
        # times the run's length.
        self.skew_s = 0.0

    # ------------------------------------------------------------ client side
    def on_ack(self, node_id: str, sent: float, acked: float, ttl: float) -> None:
        """A client's heartbeat or registration was answered with *ttl*.

        Kept in one list, in the order they came, and sorted into each node's
        history (``acks``) when the histories are read: an append to a list
        the checker keeps warm, not to one of a thousand nodes' deques, on
        every simulated heartbeat.
        """
        if not sent <= acked:
            raise NodeViolation(f"ack before send for {node_id}: {sent} > {acked}")
        self._new_acks.append((node_id, sent, acked, ttl))

    def _fold_acks(self) -> None:
        new, self._new_acks = self._new_acks, []
        acks, history, make = self.acks, self._history, tuple.__new__
        for node_id, sent, acked, ttl in new:
            q = acks.get(node_id)
            if q is None:
                q = acks[node_id] = collections.deque(maxlen=history)
            q.append(make(Ack, (sent, acked, ttl)))  # Ack(sent, acked, ttl), without its Python __new__

    def protected_until(self, node_id: str, t: float) -> float:
        """The latest time before which *node_id* must not be marked down, judged at *t*."""
        if self._new_acks:
            self._fold_acks()
        return max((a.sent + a.ttl + self.grace_s for a in self.acks.get(node_id, ()) if a.acked <= t),
                   default=float("-inf"))

    # ------------------------------------------------------------ server side
    def check(self, peers: Mapping[str, Any], now: float) -> None:
        """Replay newly committed commands from the most advanced live server."""
        if len(self._new_acks) > _FOLD_AT:
            self._fold_acks()  # memory stays bounded in a long run that marks nothing down
        if not peers:
            return
        name = max(sorted(peers), key=lambda n: peers[n].core.commit)
        peer = peers[name]
        core = peer.core
        if core.commit <= self.seen:
            return
        if self.seen < core.snap_index:
            self.resyncs += 1
            st = peer.state
            self.replica = StateStore()
            self.replica.restore(st.snapshot(), st.applied_index)
            self.seen = st.applied_index
        for index in range(self.seen + 1, core.commit + 1):
            e = core.entry(index)
            self.seen = index  # first: a violation raised below must not replay this entry
            if e.kind == NORMAL:
                self._command(index, e.data, now)
        self.replica.check_live_index()  # a derived index the store keeps, against its table

    def _command(self, index: int, data: bytes, now: float) -> None:
        self.commands += 1
        cmd = msgpack.unpackb(data, raw=False)
        op = cmd.get("op") if isinstance(cmd, dict) else None
        nodes = self.replica.tables["nodes"]
        if op in ("node_register", "node_update_status", "node_gc") and float(cmd["now"]) > now + EPS + self.skew_s:
            raise NodeViolation(f"{op} at index {index} is stamped {cmd['now']}, after now {now}")
        if op == "node_update_status":
            old = nodes.get(cmd["node_id"])
            prev = old.get("Status") if old else None
            self.replica.apply(index, data, cmd)
            unresponsive = ("down", "disconnected")
            if old is not None and cmd["status"] in unresponsive and prev not in unresponsive:
                # Disconnected (a node whose allocations may wait out a disconnect window) is a
                # missed heartbeat too: the same TTL + grace protects it.
                self._down(cmd["node_id"], float(cmd["now"]), index, cmd["status"])
            elif old is not None and cmd["status"] == "down" and prev == "disconnected":
                self._down(cmd["node_id"], float(cmd["now"]), index, "down")
            elif old is not None and cmd["status"] in ("ready", "initializing") and prev in unresponsive:
                self.recoveries.append((cmd["node_id"], float(cmd["now"])))
        elif op == "node_gc":
            before = {i: dict(nodes[i]) for i in cmd["ids"] if i in nodes}
            live = self._live_allocs(before)
            result = self.replica.apply(index, data, cmd)
            for node_id in result.get("deleted", ()):
                self._collected(node_id, before[node_id], live.get(node_id, []), cmd)
        elif op == "core_gc":
            self._core_gc(index, data, cmd)
        else:
            self.replica.apply(index, data, cmd)

    def _core_gc(self, index: int, data: bytes, cmd: Any) -> None:
        t = self.replica.tables
        jobs, evals, allocs = dict(t["jobs"]), dict(t["evals"]), dict(t["allocs"])
        result = self.replica.apply(index, data, cmd)
        for aid in result.get("allocs", ()):
            a = allocs[aid]
            if not alloc_terminal(a) or a.get("ClientStatus") == "running":
                raise NodeViolation(f"job GC removed allocation {aid} (desired {a.get('DesiredStatus')}, "
                                    f"client {a.get('ClientStatus')}) at index {index}")
        for eid in result.get("evals", ()):
            if evals[eid].get("Status") in ("pending", "blocked"):
                raise NodeViolation(f"job GC removed {evals[eid]['Status']} evaluation {eid} "
                                    f"at index {index}")
        for jid in result.get("jobs", ()):
            job = jobs[jid]
            if not (job.get("Stop") or job.get("Status") == "dead"):
                raise NodeViolation(f"job GC removed job {jid} with status {job.get('Status')} "
                                    f"at index {index}")
        self.core_gc_removed += sum(len(result.get(k, ())) for k in ("jobs", "evals", "allocs"))

    def _live_allocs(self, nodes: Mapping[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for a in self.replica.tables["allocs"].values():
            if a.get("NodeID") in nodes and not alloc_terminal(a):
                out.setdefault(a["NodeID"], []).append(a["ID"])
        return out

    def _down(self, node_id: str, t: float, index: int, status: str = "down") -> None:
        # Only acks that surely came before the down count: ``acked`` is read on the client's clock,
        # ``t`` stamped on the server's, and either may be skew_s off true time.  A late heartbeat
        # answered just after the leader's expiry (and its write restoring the node) must not look
        # as if it had protected the node (simulator seed 10).
        until = self.protected_until(node_id, t - self.skew_s)
        if t < until - EPS - self.skew_s:
            raise NodeViolation(f"node {node_id} marked {status} at {t:.3f} (index {index}) but its last "
                                f"acknowledged heartbeat protects it until {until:.3f} (TTL + grace)")
        self.downs.append((node_id, t))

    def _collected(self, node_id: str, rec: Mapping[str, Any], live: list[str],
                   cmd: Mapping[str, Any]) -> None:
        t = float(cmd["now"])
        if rec.get("Status") != "down":
            raise NodeViolation(f"GC removed node {node_id} whose status is {rec.get('Status')!r}")
        down_for = t - float(rec.get("StatusUpdatedAt", 0.0))
        need = 0.0 if cmd.get("forced") else self.gc_threshold_s
        if down_for < need - EPS or down_for <= 0:
            raise NodeViolation(f"GC removed node {node_id} down for {down_for:.1f}s, threshold {need:.1f}s")
        if live:
            raise NodeViolation(f"GC removed node {node_id} with live allocations {live}")
        self.collected.append((node_id, t))

    def summary(self) -> dict[str, int]:
        if self._new_acks:
            self._fold_acks()
        return {"commands": self.commands, "downs": len(self.downs), "recoveries": len(self.recoveries),
                "collected": len(self.collected), "resyncs": self.resyncs,
                "acked_nodes": len(self.acks)}
