"""NodeDrainer: the leader's drain loop (Nomad ``nomad/drainer``; NOMAD.md §5.2).

Every ``interval_s`` on the leader, one Read runs :func:`drain_actions`
against the state and returns the Raft commands to propose:

* per task group with allocations on draining nodes, mark for migration
  ``min(drainable, healthy - (Count - Migrate.MaxParallel))`` of them, where
  ``healthy`` counts the group's live allocations not already migrating
  whose health is set (``DeploymentStatus.Healthy``: by their deployment, or
  for a migration's replacement by their client, from the group's
  ``migrate`` block) -- so at most ``MaxParallel`` are ever moving at once,
  and the next moves only once the last one's replacement has its health.
  As Nomad's (``handleTaskGroup``: ``DeploymentStatus.HasHealth()``), a
  replacement decided unhealthy counts too: the drain goes on, rather than
  waiting for the deadline.  Batch allocations are not migrated before the
  deadline (they are left to finish);
* at the node's force deadline (or at once for ``-force``), everything
  still running there is marked and the drain completes in the same step
  (``deadline_reached``), as Nomad's ``handleDeadlinedNodes``;
* when every non-system allocation on the node is terminal, the remaining
  system allocations are stopped too (unless ``IgnoreSystemJobs``) and the
  drain completes: the strategy is cleared, the event ``Node drain
  complete`` recorded; the node stays ineligible.

Marking an allocation (``alloc_migrate``) also creates an evaluation with
``TriggeredBy=node-drain``; the scheduler stops it and places its
replacement elsewhere in one plan.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from actors.raft.peer import InfoQuery, Propose, Read
from actors.scheduler.scheduler import TERMINAL_CLIENT, live
from actors.server import RAFT, LeadershipChanged, RaftInfo, RaftReply, ReplyTo
from actors.state.namespaces import key_of
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.drainer")

DRAINER = "drainer"


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainerConfig:
    # Nomad batches drain updates every second (drainer.go batchUpdateInterval).
    interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s must be > 0")


def drain_actions(state: Any, now: float) -> list[bytes]:
    """Read query: the commands that move every draining node one step on."""
    nodes = state.tables["nodes"]
    draining = {nid: n for nid, n in nodes.items() if n.get("DrainStrategy")}
    if not draining:
        return []
    allocs = state.tables["allocs"]
    jobs = state.tables["jobs"]
    out: list[bytes] = []
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in allocs.values():
        if live(a):
            by_group.setdefault((key_of(a), a["TaskGroup"]), []).append(a)
    marks: dict[str, list[str]] = {}
    for nid, node in sorted(draining.items()):
        strat = node["DrainStrategy"]
        forced = strat.get("Deadline", 0) < 0 or (strat.get("ForceDeadline", 0) > 0
                                                  and now >= strat["ForceDeadline"])
        on_node = [a for a in allocs.values() if a.get("NodeID") == nid and live(a)]
        if forced:
            for a in on_node:
                job = jobs.get(key_of(a))
                if job and job["Type"] == "system" and strat.get("IgnoreSystemJobs"):
                    continue
                if not a.get("DesiredTransition", {}).get("Migrate"):
                    marks.setdefault(nid, []).append(a["ID"])
            # Nomad's handleDeadlinedNodes ends the drain in the same step: it does not wait
            # for the tasks to exit (a slow kill_timeout, or a client that is shutting down).
            out.append(command("node_drain_complete", node_id=nid, now=now, deadline_reached=True))
            continue
        rest = [a for a in allocs.values() if a.get("NodeID") == nid
                and a.get("ClientStatus") not in TERMINAL_CLIENT
                and (jobs.get(key_of(a)) or {}).get("Type") != "system"]
        if not rest:
            system_live = [a for a in on_node if (jobs.get(key_of(a)) or {}).get("Type") == "system"]
            if system_live and not strat.get("IgnoreSystemJobs"):
                marks.setdefault(nid, []).extend(a["ID"] for a in system_live
                                                 if not a.get("DesiredTransition", {}).get("Migrate"))
                continue
            out.append(command("node_drain_complete", node_id=nid, now=now, deadline_reached=forced))
    for (job_id, group_name), group_allocs in sorted(by_group.items()):
        job = jobs.get(job_id)
        if job is None or job["Type"] != "service":
            continue
        drainable = [a for a in group_allocs if a["NodeID"] in draining
                     and not a.get("DesiredTransition", {}).get("Migrate")
                     and a["ID"] not in {i for ids in marks.values() for i in ids}]
        if not drainable:
            continue
        group = next((g for g in job["TaskGroups"] if g["Name"] == group_name), None)
        if group is None:
            continue
        healthy = sum(1 for a in group_allocs if (a.get("DeploymentStatus") or {}).get("Healthy") is not None
                      and not a.get("DesiredTransition", {}).get("Migrate"))
        n = min(len(drainable), healthy - (group["Count"] - group["Migrate"]["MaxParallel"]))
        for a in sorted(drainable, key=lambda a: a["Name"])[:max(0, n)]:
            marks.setdefault(a["NodeID"], []).append(a["ID"])
    for nid, ids in sorted(marks.items()):
        if ids:
            out.insert(0, command("alloc_migrate", allocs=sorted(set(ids)), node_id=nid, now=now,
                                  batch_no_place=True))
    return out


class NodeDrainer(NodeActor):
    def __init__(self, env: Env, name: str, *, config: DrainerConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or DrainerConfig()
        self.raft = raft
        self._wall = wall_clock or env.now
        self.is_leader = False
        self._busy = 0
        self._gen = 0
        # Whether a scan of this leadership has read the state linearizably yet (see on_timer).
        self._synced = False
        self.stats = {"steps": 0, "writes": 0}

    def on_start(self) -> None:
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))

    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            if message.is_leader != self.is_leader:
                self.is_leader = message.is_leader
                self._gen += 1
                self._busy = 0
                self._synced = False
                if self.is_leader:
                    self.set_timer("drain", self.cfg.interval_s)
                else:
                    self.cancel_timer("drain")
        elif isinstance(message, RaftReply):
            kind, gen = message.tag
            if gen != self._gen:
                return None
            self._busy = max(0, self._busy - 1)
            if kind == "scan" and message.ok:
                self._synced = True
                for data in message.value[1]:
                    self._busy += 1
                    self.stats["writes"] += 1
                    self.send(self.env.node, self.raft, Propose(data=data, reply=ReplyTo(
                        self.env, self.name, ("write", self._gen))))
        elif message == "status":
            return {"leader": self.is_leader, **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        if name != "drain" or not self.is_leader:
            return
        if self._busy == 0:  # the last step's writes are in: their effects are visible
            self._busy = 1
            self.stats["steps"] += 1
            query = functools.partial(drain_actions, now=self._wall())
            # The first scan of a leadership reads linearizably: the new leader's state then holds
            # every committed write (Nomad's establishLeadership waits on a Raft barrier before it
            # starts the drainer).  Later ones read the leader's own state, as Nomad's drainer
            # watches its local state store: the leader applies each write before answering it, so
            # the last step's writes are seen, and a scan costs no heartbeat round to every server.
            self.send(self.env.node, self.raft, Read(query=query, stale=self._synced, reply=ReplyTo(
                self.env, self.name, ("scan", self._gen))))
        self.set_timer("drain", self.cfg.interval_s)
