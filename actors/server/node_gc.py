"""Node garbage collection: the pure eligibility rule and the NodeGC actor.

Nomad's core scheduler ``nodeGC`` (NOMAD.md §4): every ``node_gc_interval``
(fixed at 5 min in Nomad) the leader removes nodes whose status is ``down``,
whose ``StatusUpdatedAt`` is older than ``node_gc_threshold`` (24 h), and all
of whose allocations are terminal.  ``disconnected`` nodes are never
collected.  A forced GC (``/v1/system/gc``) uses a 1 ms threshold.

The same predicate runs twice: in the leader's read that picks candidates,
and again inside the state store's ``node_gc`` op when the command applies,
so a node that heartbeated (or got a live allocation) between the scan and
the commit is kept -- every server decides that identically, from the
cutoff carried in the command.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.client.messages import DOWN
from actors.raft.peer import Propose, RaftError, Read
from actors.server import RAFT, InfoQuery, LeadershipChanged, RaftInfo, RaftReply, ReplyTo, log
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.config import ServerConfig
from runtime.env import Env

TERMINAL_CLIENT_STATUSES = ("complete", "failed", "lost")  # Allocation.ClientTerminalStatus
TERMINAL_DESIRED_STATUSES = ("stop", "evict")  # Allocation.ServerTerminalStatus


def alloc_terminal(alloc: Mapping[str, Any]) -> bool:
    """Nomad ``Allocation.TerminalStatus``: server-terminal or client-terminal."""
    return (alloc.get("DesiredStatus") in TERMINAL_DESIRED_STATUSES
            or alloc.get("ClientStatus") in TERMINAL_CLIENT_STATUSES)


def gc_eligible(node: Mapping[str, Any], allocs: Iterable[Mapping[str, Any]], cutoff: float) -> bool:
    """Down since before *cutoff* and every allocation terminal."""
    if node.get("Status") != DOWN:
        return False
    if float(node.get("StatusUpdatedAt", 0.0)) >= cutoff:
        return False
    return all(alloc_terminal(a) for a in allocs)


def allocs_by_node(allocs: Iterable[Mapping[str, Any]], node_ids: Iterable[str] | None = None
                   ) -> dict[str, list[Mapping[str, Any]]]:
    wanted = None if node_ids is None else dict.fromkeys(node_ids)
    out: dict[str, list[Mapping[str, Any]]] = {}
    for a in allocs:
        nid = a.get("NodeID", "")
        if wanted is None or nid in wanted:
            out.setdefault(nid, []).append(a)
    return out


def gc_candidates(nodes: Mapping[str, Mapping[str, Any]], allocs: Iterable[Mapping[str, Any]],
                  cutoff: float) -> list[str]:
    """IDs of the nodes to collect, sorted."""
    # The down nodes are few: sorting them, not every node ID, then filtering (a scan every 5 min).
    down = sorted([nid for nid, rec in nodes.items() if rec.get("Status") == DOWN])
    by_node = allocs_by_node(allocs, down)
    return [nid for nid in down if gc_eligible(nodes[nid], by_node.get(nid, ()), cutoff)]


def gc_candidates_in_state(state: Any, cutoff: float) -> list[str]:
    """Read query (runs inside Raft on the leader's state store)."""
    return gc_candidates(state.tables["nodes"], state.tables["allocs"].values(), cutoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeGCConfig:
    # Nomad runs node GC every 5 min (no config key): frequent enough that a
    # node is collected within minutes of its threshold, rare enough that the
    # scan of nodes and allocations costs nothing.
    interval_s: float = 300.0
    # server.node_gc_threshold: keep a down node a day so an operator can see
    # what died and a node that comes back resumes as itself.
    threshold_s: float = 24 * 3600.0
    # A forced collection (/v1/system/gc) uses Nomad's 1 ms threshold.
    force_threshold_s: float = 0.001
    # Nomad structs.MaxUUIDsPerWriteRequest: IDs per Raft write.
    batch_size: int = 7281

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.threshold_s <= 0 or self.force_threshold_s <= 0:
            raise ValueError("node GC interval and thresholds must be > 0")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    @classmethod
    def from_server(cls, server: ServerConfig) -> NodeGCConfig:
        return cls(threshold_s=server.node_gc_threshold_s)


@dataclass(frozen=True, slots=True)
class ForceGC:
    """Collect now with the force threshold; *reply* (a future, optional) gets the deleted IDs."""

    reply: Any = None


@dataclass(slots=True)
class _Run:
    cutoff: float
    now: float
    forced: bool
    reply: Any
    batches: int = 0
    deleted: list[str] | None = None


class LeaderGC(NodeActor):
    """What the leader's collectors share: periodic timers while leading, and runs of scan -> writes.

    A run starts with a Raft read (tag ``("scan", seq)``) and goes on with
    writes (``("gc", seq)``); :meth:`_run_of` finds a reply's run and ends
    it on a failed reply; losing leadership fails every run in progress.
    """

    def __init__(self, env: Env, name: str, *, raft: str, wall_clock: Any, timers: dict[str, float]) -> None:
        super().__init__(env, name)
        self.raft = raft
        # Timestamps must mean the same on every server: production passes
        # time.time; the simulator's shared virtual clock is env.now.
        self._wall = wall_clock or env.now
        self._leading_timers = timers  # timer name -> interval, armed while leading
        self.is_leader = False
        self._runs: dict[int, Any] = {}
        self._seq = 0

    def on_start(self) -> None:
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))

    def _lead(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        for name in sorted(self._leading_timers):
            if leader:
                self.set_timer(name, self._leading_timers[name])
            else:
                self.cancel_timer(name)
        if not leader:
            for run in self._runs.values():
                _fail(run.reply, "leadership lost")
            self._runs.clear()

    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            self._lead(message.is_leader)
        elif isinstance(message, ForceGC):
            if not self.is_leader:
                _fail(message.reply, "not leader")
            else:
                self._force(message.reply)
        elif isinstance(message, RaftReply):
            self._raft_reply(message)
        elif message == "status":
            return {"leader": self.is_leader, "running": len(self._runs), **self._status()}
        return None

    def _force(self, reply: Any) -> None:
        """Override: collect now with the force threshold."""
        raise NotImplementedError

    def _raft_reply(self, m: RaftReply) -> None:
        """Override: a scan's or a write's outcome."""
        raise NotImplementedError

    def _status(self) -> dict[str, Any]:
        return {}

    def _start_run(self, run: Any, query: Any) -> None:
        self._seq += 1
        self._runs[self._seq] = run
        reply = ReplyTo(self.env, self.name, ("scan", self._seq))
        self.send(self.env.node, self.raft, Read(query=query, reply=reply))

    def _write(self, seq: int, data: bytes) -> None:
        reply = ReplyTo(self.env, self.name, ("gc", seq))
        self.send(self.env.node, self.raft, Propose(data=data, reply=reply))

    def _run_of(self, m: RaftReply) -> tuple[str, int, Any] | None:
        kind, seq = m.tag
        run = self._runs.get(seq)
        if run is None:
            return None
        if not m.ok:
            self._runs.pop(seq)
            _fail(run.reply, m.error)
            return None
        return kind, seq, run


class NodeGC(LeaderGC):
    """Periodic node GC on the leader, proposing ``node_gc`` through Raft."""

    def __init__(self, env: Env, name: str, *, config: NodeGCConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None) -> None:
        self.cfg = config or NodeGCConfig()
        super().__init__(env, name, raft=raft, wall_clock=wall_clock, timers={"gc": self.cfg.interval_s})
        self.collected: list[str] = []  # every node this actor removed (status, tests)

    def _force(self, reply: Any) -> None:
        self._collect(self.cfg.force_threshold_s, True, reply)

    def _status(self) -> dict[str, Any]:
        return {"collected": len(self.collected)}

    def on_timer(self, name: str) -> None:
        if name == "gc" and self.is_leader:
            if not self._runs:  # a scan still running covers this tick
                self._collect(self.cfg.threshold_s, False, None)
            self.set_timer("gc", self.cfg.interval_s)

    def _collect(self, threshold_s: float, forced: bool, reply: Any) -> None:
        now = self._wall()
        run = _Run(cutoff=now - threshold_s, now=now, forced=forced, reply=reply)
        self._start_run(run, functools.partial(gc_candidates_in_state, cutoff=run.cutoff))

    def _raft_reply(self, m: RaftReply) -> None:
        got = self._run_of(m)
        if got is None:
            return
        kind, seq, run = got
        if kind == "scan":
            ids = m.value[1]
            run.deleted = []
            size = self.cfg.batch_size
            for i in range(0, len(ids), size):
                run.batches += 1
                self._write(seq, command("node_gc", ids=ids[i:i + size], cutoff=run.cutoff, now=run.now,
                                         forced=run.forced))
        else:
            result = m.value[1]
            run.batches -= 1
            if isinstance(result, dict):
                run.deleted = (run.deleted or []) + list(result.get("deleted", ()))
        if run.batches == 0:
            self._runs.pop(seq)
            deleted = sorted(run.deleted or [])
            if deleted:
                log.info("%s: node GC removed %d nodes: %s", self.env.node, len(deleted),
                         ", ".join(deleted[:10]))
            self.collected.extend(deleted)
            if run.reply is not None:
                try:
                    run.reply.set(deleted)
                except Exception:  # a caller's future already set is not our failure
                    pass


def _fail(reply: Any, error: str) -> None:
    if reply is None:
        return
    try:
        reply.set_exception((RaftError, RaftError(error), None))
    except Exception:  # see above
        pass
