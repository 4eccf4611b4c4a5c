"""AllocSync: the client's link between the servers' allocations and its AllocRunner.

Nomad's ``client.go`` ``watchAllocations`` / ``allocSync`` and
``drain.go`` ``DrainSelf`` (NOMAD.md §5.3), as an actor:

* once ClientNode says the node is registered (:class:`NodeRegistered`),
  it keeps one blocking ``GetClientAllocs`` in flight to a server, passing
  back the index it last saw; each answer is handed to the AllocRunner as
  the full set (``SetAllocs``).  A failed or unanswered query moves to the
  next server after ``retry_s`` (plus a stagger).
* the AllocRunner's ``AllocUpdates`` are merged (latest state per
  allocation wins) and sent every ``sync_interval_s`` as one
  ``UpdateAllocs`` write (Nomad's 200 ms allocSyncIntv); a failed write is
  kept and retried, never dropped.
* restarted by the agent's supervisor it starts empty, so it says so
  (:class:`AllocSyncStarted`): the runner reports every allocation again and
  the ClientNode sends it the registration again.
* on a graceful leave with ``drain_on_shutdown`` it asks the servers to
  drain its own node (``UpdateDrain``; not in dev mode, as Nomad), then
  answers ``LeaveDone`` once every allocation it runs (system ones too unless
  ``ignore_system_jobs``) is stopped and reported, or at ``deadline + 5 s``.
"""

from __future__ import annotations

import datetime
import functools
import logging
from dataclasses import dataclass
from typing import Any

import msgpack

from actors.agent_messages import Leave, LeaveDone
from actors.client.alloc_runner import (
    AllocRunnerStarted,
    AllocSyncStarted,
    AllocUpdates,
    ServerLink,
    SetAllocs,
)
from actors.client.messages import (
    ClientAllocsResponse,
    GetClientAllocs,
    UpdateAllocs,
    UpdateDrain,
    WriteResponse,
)
from actors.server.alloc_endpoint import ALLOC_ENDPOINT
from actors.server.heartbeat import random_stagger
from runtime.actor import NodeActor
from runtime.config import parse_duration
from runtime.env import Env
from runtime.messages import PeerLost

log = logging.getLogger("nomad.client")

TERMINAL = ("complete", "failed", "lost")


@dataclass(frozen=True, slots=True)
class NodeRegistered:
    """ClientNode -> listeners: the node is registered; who it is and which servers to use (local)."""

    node_id: str
    secret_id: str
    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocSyncConfig:
    # How long one GetClientAllocs may block on the server.  Nomad's clients
    # ask for 5 minutes, and learn at once that a server died or restarted
    # (their RPC connection resets); so does this one (the runtime's
    # PeerLost), but a server cut off by a partition, or a machine that
    # vanished, gives no notice: then the query is noticed lost only after
    # wait_s + rpc_margin_s.  A minute bounds how long new work sits pending
    # then, at the cost of an idle round trip per client per minute.
    wait_s: float = 60.0
    # An answer later than wait + this counts as a failed server.
    rpc_margin_s: float = 10.0
    # After a failed query or write, try again (on the next server) after
    # this plus a stagger of it.  Nomad waits getAllocRetryIntv (30 s) but
    # also fails over inside its RPC layer first; one second keeps a
    # follower's death from delaying work by half a minute.
    retry_s: float = 1.0
    # Nomad allocSyncIntv: client state changes are batched this long.  (Nomad's
    # current client (pendingClientUpdates.nextBatch) holds an update that
    # changes no allocation's client status -- a task event, a deployment health -- until every 5th tick, 1 s;
    # here every change waits the same 200 ms.  Measured on the 100-client
    # simulation, the 1 s wait spreads the health reports of a rescale over
    # more of the servers' 50 ms batches: more Raft writes, not fewer.)
    sync_interval_s: float = 0.2
    # A report refused because the servers hold this node disconnected is sent again after this
    # (plus a stagger): the node's heartbeat must get through first, and after a long partition the
    # client waits about as long as it was cut off before heartbeating again, so retrying every
    # second would only fill the Raft log with refused writes.
    unresponsive_retry_s: float = 10.0
    # drain_on_shutdown (client config): None = leave without draining.
    drain_deadline_s: float | None = None
    drain_ignore_system: bool = False
    # Nomad gives up waiting for its own drain this long after the deadline.
    drain_grace_s: float = 5.0
    # A drain_on_shutdown without a deadline (0) still ends the wait after
    # this: the agent's own graceful timeout is bounded, and an hour is
    # Nomad's default drain deadline.
    drain_no_deadline_wait_s: float = 3600.0
    # How often the leave checks whether the drain has moved everything.
    drain_poll_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("wait_s", "rpc_margin_s", "retry_s", "sync_interval_s", "drain_grace_s", "drain_poll_s",
                     "drain_no_deadline_wait_s", "unresponsive_retry_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.drain_deadline_s is not None and self.drain_deadline_s < 0:
            raise ValueError("drain_deadline_s must be >= 0")


UNRESPONSIVE = "is not allowed to update allocs while in status"  # Nomad's refusal for a disconnected node


@functools.lru_cache(maxsize=4096)  # a task's times come again in every report of its allocation
def _rfc3339(t: float) -> str | None:
    if not t:
        return None  # Go's zero time, which Nomad's API shows for "never"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_json(e: Any, time_ns: int) -> dict[str, Any]:
    details = dict(e.details)
    out = {"Type": e.type, "Time": time_ns, "Message": e.message, "ExitCode": e.exit_code, "Signal": e.signal,
           "Details": details}
    if "restart_reason" in details:  # Nomad's SetRestartReason / SetRestartDelay: fields and details both
        out["RestartReason"] = details["restart_reason"]
    if "start_delay" in details:
        out["StartDelay"] = int(details["start_delay"])
    if details.get("fails_task") == "true":  # Nomad's SetFailsTask
        out["FailsTask"] = True
    if "kill_timeout" in details:  # Nomad's SetKillTimeout: the field in nanoseconds, Details a duration
        try:
            out["KillTimeout"] = round(parse_duration(details["kill_timeout"]) * 1e9)
        except ValueError:
            pass
    if "kill_reason" in details:  # Nomad's SetKillReason
        out["KillReason"] = details["kill_reason"]
    return out


def task_states_json(update: Any, offset_s: float = 0.0) -> dict[str, Any]:
    """An AllocUpdate's task states in Nomad's JSON shape (structs.TaskState).

    The runner's times are on the actor clock; *offset_s* moves them to the
    wall clock (RFC 3339 for StartedAt/FinishedAt/LastRestart, Unix
    nanoseconds for event times, as Nomad's API shows them).
    """
    out = {}
    for name, ts in update.task_states:
        def wall(t: float) -> float:
            return t + offset_s if t else 0.0

        out[name] = {"State": ts.state, "Failed": ts.failed, "Restarts": ts.restarts,
                     "LastRestart": _rfc3339(wall(ts.last_restart)),
                     "StartedAt": _rfc3339(wall(ts.started_at)),
                     "FinishedAt": _rfc3339(wall(ts.finished_at)),
                     "Events": [_event_json(e, int(wall(e.time) * 1e9)) for e in ts.events]}
    return out


class AllocSync(NodeActor):
    def __init__(self, env: Env, name: str, *, config: AllocSyncConfig | None = None,
                 runner: str = "alloc-runner", endpoint: str = ALLOC_ENDPOINT,
                 wall_clock: Any = None, node_actor: str = "client") -> None:
        super().__init__(env, name)
        self.node_actor = node_actor  # the ClientNode, which tells us the registration (NodeRegistered)
        # Task times reach the API on the wall clock: production passes
        # time.time; the simulator's clock is env.now (offset 0).
        self._wall = wall_clock or env.now
        self.cfg = config or AllocSyncConfig()
        self.runner = runner
        self.endpoint = endpoint
        self.node_id = ""
        self.secret_id = ""
        self.servers: list[str] = []
        self.index = 0
        self.allocs: dict[str, dict[str, Any]] = {}  # the servers' view, from the last answer
        self.local: dict[str, str] = {}  # alloc ID -> the client status last reported by the runner
        self._req = 0
        self._watch_req = 0  # req id of the query in flight (0: none)
        self._watch_server = ""  # where it went
        self._write_server = ""  # where the update in flight (_write_req) went
        self._watched: set[str] = set()  # servers whose lost connections we are told of (Env.watch_peer)
        self._pending: dict[str, dict[str, Any]] = {}  # alloc ID -> update not yet written
        self._writing: dict[str, dict[str, Any]] = {}
        # alloc ID -> the last terminal update the servers took (kept while they list the allocation)
        self._final: dict[str, dict[str, Any]] = {}
        self._write_req = 0
        self._leave: Leave | None = None
        self._drain_req = 0
        self._drain_sent = False
        self._drain_at = 0.0
        self._leave_deadline = 0.0
        self._drain_deadline_at = 0.0  # when the servers force the drain to its end; 0 = no deadline
        self.stats = {"queries": 0, "answers": 0, "writes": 0, "write_failures": 0, "query_failures": 0,
                      "resyncs": 0, "reasserted": 0}

    def on_start(self) -> None:
        # Restarted by the agent's supervisor, this actor is empty: the runner's reports it held and
        # the registration are gone, and neither the runner (it reports only changes) nor the node
        # (it tells its listeners when it registers) would say them again.  At the agent's start the
        # runner has nothing reported yet and the node is not registered: both change nothing.
        started = AllocSyncStarted(self.name)
        self.send(self.env.node, self.runner, started)
        self.send(self.env.node, self.node_actor, started)

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, NodeRegistered):
            self.node_id, self.secret_id = message.node_id, message.secret_id
            if message.servers and sorted(message.servers) != sorted(self.servers):
                # In the node's order (already shuffled per client), as Nomad's client sends every
                # RPC to its one preferred server: a heartbeat that finds that server silent then
                # tells us too (PeerLost), and the query moves with it.
                current = self.servers[0] if self.servers else ""
                self.servers = list(message.servers)
                if current in self.servers:
                    self.servers.remove(current)
                    self.servers.insert(0, current)
            # The runner reads its tasks' template data from the same servers, as this node.
            link = ServerLink(node_id=message.node_id, secret_id=message.secret_id,
                              servers=tuple(message.servers))
            self.send(self.env.node, self.runner, link)
            if not self._watch_req and not self.timer_armed("watch_retry"):
                self._query()
            if self._pending and not self.timer_armed("sync"):
                self.set_timer("sync", self.cfg.sync_interval_s)
        elif isinstance(message, ClientAllocsResponse):
            self._answer(message)
        elif isinstance(message, AllocUpdates):
            for u in message.updates:
                self.local[u.alloc_id] = u.client_status
                offset = self._wall() - self.env.now()
                rec = self._pending[u.alloc_id] = {"ID": u.alloc_id, "ClientStatus": u.client_status,
                                                   "ClientDescription": u.client_description,
                                                   "TaskStates": task_states_json(u, offset)}
                if u.deployment_healthy is not None:
                    rec["DeploymentStatus"] = {"Healthy": u.deployment_healthy,
                                               "Timestamp": u.deployment_ts + offset}
                    if u.deployment_id:  # the servers count it for that deployment only
                        rec["DeploymentStatus"]["DeploymentID"] = u.deployment_id
            if not self.timer_armed("sync") and not self._write_req:
                self.set_timer("sync", self.cfg.sync_interval_s)
        elif isinstance(message, WriteResponse):
            self._written(message)
        elif isinstance(message, AllocRunnerStarted) and message.name == self.runner and self.node_id:
            # A runner the supervisor restarted: the node and servers again (its set comes with the
            # next answer, as always).
            self.send(self.env.node, self.runner, ServerLink(node_id=self.node_id, secret_id=self.secret_id,
                                                             servers=tuple(self.servers)))
        elif isinstance(message, PeerLost):
            self._peer_lost(message)
        elif isinstance(message, Leave):
            self._start_leave(message)
        elif message == "status":
            return {"node_id": self.node_id, "index": self.index, "allocs": len(self.allocs),
                    "pending_updates": len(self._pending) + len(self._writing), **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        if name == "watch_timeout":
            self.stats["query_failures"] += 1
            self._watch_req = 0
            self._rotate()
            self._query()
        elif name == "watch_retry":
            self._query()
        elif name == "sync":
            self._sync()
        elif name == "write_timeout":
            self._write_failed("write timed out")
        elif name == "leave":
            self._leave_step()

    # ------------------------------------------------------------ allocations from the servers
    def _rotate(self) -> None:
        if len(self.servers) > 1:
            self.servers.append(self.servers.pop(0))

    def _peer_lost(self, m: PeerLost) -> None:
        """The connection to a server ended: what is outstanding there fails now, not at its timer.

        Nomad's client sees its RPC connection reset and retries at once on
        another server; the query or write goes again the same way as after a
        failed answer (the next server, after retry_s).
        """
        if self._write_req and m.node == self._write_server:
            self._write_failed(f"connection to {m.node} lost: {m.reason}")  # (moves on to the next server)
        if self._watch_req and m.node == self._watch_server:
            self._watch_req = 0
            self.cancel_timer("watch_timeout")
            self.stats["query_failures"] += 1
            log.debug("%s: allocation query to %s lost: %s", self.env.node, m.node, m.reason)
            if self.servers and self.servers[0] == m.node:
                self._rotate()
            self.set_timer("watch_retry", self.cfg.retry_s + random_stagger(self.env.rng, self.cfg.retry_s))

    def _query(self) -> None:
        if not self.node_id or not self.servers:
            return
        self._req += 1
        self._watch_req = self._req
        self.stats["queries"] += 1
        self._watch_server = server = self.servers[0]
        if server not in self._watched:
            self._watched.add(server)
            self.env.watch_peer(server, self.name)
        self.send(server, self.endpoint, GetClientAllocs(
            req_id=self._req, reply_node=self.env.node, reply_actor=self.name, node_id=self.node_id,
            secret_id=self.secret_id, min_index=self.index, wait_s=self.cfg.wait_s))
        self.set_timer("watch_timeout", self.cfg.wait_s + self.cfg.rpc_margin_s)

    def _answer(self, m: ClientAllocsResponse) -> None:
        if m.req_id != self._watch_req:
            return
        self._watch_req = 0
        self.cancel_timer("watch_timeout")
        if not m.ok:
            self.stats["query_failures"] += 1
            log.debug("%s: allocation query failed: %s", self.env.node, m.error)
            self._rotate()
            self.set_timer("watch_retry", self.cfg.retry_s + random_stagger(self.env.rng, self.cfg.retry_s))
            return
        self.stats["answers"] += 1
        try:
            allocs = msgpack.unpackb(m.allocs, raw=False) if m.allocs else []
            ids = msgpack.unpackb(m.ids, raw=False) if m.ids else None
        except (ValueError, msgpack.UnpackException) as exc:
            log.warning("%s: undecodable allocations from a server: %s", self.env.node, exc)
            allocs = ids = None
        if isinstance(allocs, list):
            changed = {a["ID"]: a for a in allocs if isinstance(a, dict) and "ID" in a}
            if isinstance(ids, list):
                # Only what changed since our index came: the rest is what we
                # hold, at the index the servers list beside each ID.
                merged: dict[str, dict[str, Any] | None] = {}
                stale = False
                for entry in ids:
                    alloc_id, index = (entry, None) if isinstance(entry, str) else (
                        (entry[0], entry[1]) if isinstance(entry, list) and len(entry) == 2 else (None, None))
                    if not isinstance(alloc_id, str):
                        continue
                    a = changed.get(alloc_id)
                    if a is None:
                        a = self.allocs.get(alloc_id)
                        # One we never got (our state predates a restart, say), or a copy
                        # unlike theirs (a snapshot restore took it back): ask for everything.
                        stale = stale or a is None or (
                            index is not None and a.get("AllocModifyIndex", a.get("ModifyIndex", 0)) != index)
                    merged[alloc_id] = a
                if stale:
                    self.stats["resyncs"] += 1
                    self.index = 0
                    self._query()
                    return
                self.allocs = merged  # type: ignore[assignment]
            else:
                self.allocs = changed
            self._reassert_final(changed)
            # Always the full set, even when unchanged: a restarted AllocRunner
            # (its supervisor's doing) learns the current set from the next answer.
            current = SetAllocs(allocs=tuple(self.allocs.values()), index=m.index)
            self.send(self.env.node, self.runner, current)
            self.index = m.index
        self._query()

    def _reassert_final(self, changed: dict[str, dict[str, Any]]) -> None:
        """Allocations this client finished but the servers list as pending or running again.

        The client is the authority on how its allocations ended, and an
        ended one never runs again here.  The servers can come to think
        otherwise only by losing what we told them -- an operator's snapshot
        restore to a point before the allocation ended: the last word we sent
        is sent again, so the servers replace what is wanted instead of
        counting a process that does not exist.
        """
        final = self._final
        for alloc_id in [i for i in final if i not in self.allocs]:
            del final[alloc_id]  # collected by the servers: nothing left to correct
        for alloc_id, a in changed.items():
            mine = final.get(alloc_id)
            if mine is None or a.get("ClientStatus") in TERMINAL:
                continue
            if alloc_id in self._pending or alloc_id in self._writing:
                continue  # a newer word is on its way
            self._pending[alloc_id] = mine
            self.stats["reasserted"] += 1
            log.info("%s: the servers list allocation %s as %s; it %s here: telling them again",
                     self.env.node, alloc_id, a.get("ClientStatus"), mine["ClientStatus"])
        if self._pending and not self.timer_armed("sync") and not self._write_req:
            self.set_timer("sync", self.cfg.sync_interval_s)

    # ------------------------------------------------------------ client state to the servers
    def _sync(self) -> None:
        if self._write_req or not self._pending or not self.node_id or not self.servers:
            return
        self._writing, self._pending = self._pending, {}
        self._req += 1
        self._write_req = self._req
        self.stats["writes"] += 1
        data = msgpack.packb(list(self._writing.values()), use_bin_type=True)
        self._write_server = server = self.servers[0]
        if server not in self._watched:
            self._watched.add(server)
            self.env.watch_peer(server, self.name)
        self.send(server, self.endpoint, UpdateAllocs(
            req_id=self._req, reply_node=self.env.node, reply_actor=self.name, node_id=self.node_id,
            secret_id=self.secret_id, updates=data))
        self.set_timer("write_timeout", self.cfg.rpc_margin_s)

    def _written(self, m: WriteResponse) -> None:
        if m.req_id == self._drain_req:
            self._drain_req = 0
            if m.ok:
                self._drain_sent = True
            else:
                log.warning("%s: drain request failed: %s", self.env.node, m.error)
            return
        if m.req_id != self._write_req:
            return
        if not m.ok:
            self._write_failed(m.error)
            return
        self.cancel_timer("write_timeout")
        self._write_req = 0
        for alloc_id, u in self._writing.items():
            if u.get("ClientStatus") in TERMINAL:
                self._final[alloc_id] = u
        self._writing = {}
        if self._pending:
            self.set_timer("sync", self.cfg.sync_interval_s)

    def _write_failed(self, error: str) -> None:
        self.stats["write_failures"] += 1
        self.cancel_timer("write_timeout")
        self._write_req = 0
        for alloc_id, u in self._writing.items():
            self._pending.setdefault(alloc_id, u)  # a newer state, if any, wins
        self._writing = {}
        log.debug("%s: allocation update failed (%s); retrying", self.env.node, error)
        self._rotate()
        wait = self.cfg.unresponsive_retry_s if UNRESPONSIVE in error else self.cfg.retry_s
        self.set_timer("sync", wait + random_stagger(self.env.rng, wait))

    # ------------------------------------------------------------ drain on shutdown
    def _start_leave(self, m: Leave) -> None:
        self._leave = m
        if self.cfg.drain_deadline_s is None or not self.node_id or not self.servers:
            self._leave_finish(True)
            return
        deadline = self.cfg.drain_deadline_s
        wait = deadline if deadline > 0 else self.cfg.drain_no_deadline_wait_s
        self._leave_deadline = self.env.now() + wait + self.cfg.drain_grace_s
        self._drain_deadline_at = self.env.now() + deadline if deadline > 0 else 0.0
        log.info("%s: draining node %s before leaving (deadline %.0fs)", self.env.node, self.node_id,
                 deadline)
        self._send_drain()
        self.set_timer("leave", self.cfg.drain_poll_s)

    def _send_drain(self) -> None:
        self._req += 1
        self._drain_req = self._req
        self._drain_at = self.env.now()
        self.send(self.servers[0], self.endpoint, UpdateDrain(
            req_id=self._req, reply_node=self.env.node, reply_actor=self.name, node_id=self.node_id,
            secret_id=self.secret_id, deadline_ns=int((self.cfg.drain_deadline_s or 0) * 1e9),
            ignore_system=self.cfg.drain_ignore_system))

    def _drain_allocs(self) -> list[dict[str, Any]]:
        return [a for a in self.allocs.values() if not (
            self.cfg.drain_ignore_system and (a.get("Job") or {}).get("Type") == "system")]

    def _status(self, a: dict[str, Any]) -> Any:
        """An allocation's client status: this client's own word when it has one.  The servers' copy
        holds the status it had when it was last sent here, and reports do not send it again (a
        batch allocation that finished stays ``pending`` there, desired ``run``)."""
        return self.local.get(a["ID"], a.get("ClientStatus"))

    def _drained(self) -> bool:
        if any(self._status(a) not in TERMINAL for a in self._drain_allocs()):
            return False
        return not self._pending and not self._writing

    def _deadline_forced(self) -> bool:
        """Past the deadline the servers end the drain once they have told every allocation to stop
        (Nomad's drainer, handleDeadlinedNodes), and DrainSelf returns: it does not wait for the
        tasks to exit (a slow kill_timeout), which would run into the agent's graceful timeout."""
        if not self._drain_deadline_at or self.env.now() < self._drain_deadline_at:
            return False
        return all(a.get("DesiredStatus") != "run" or self._status(a) in TERMINAL
                   for a in self._drain_allocs())

    def _leave_step(self) -> None:
        if self._leave is None:
            return
        if self.env.now() >= self._leave_deadline:
            log.warning("%s: drain did not finish before the deadline; leaving anyway", self.env.node)
            self._leave_finish(False)
            return
        if self._drain_req and self.env.now() - self._drain_at > self.cfg.rpc_margin_s:
            self._drain_req = 0  # unanswered: ask the next server
        if not self._drain_sent and not self._drain_req:
            self._rotate()
            self._send_drain()
        elif self._drain_sent and self._drained():
            log.info("%s: node drained", self.env.node)
            self._leave_finish(True)
            return
        elif self._drain_sent and self._deadline_forced():
            log.info("%s: drain deadline reached; every allocation is stopping", self.env.node)
            self._leave_finish(True)
            return
        self.set_timer("leave", self.cfg.drain_poll_s)

    def _leave_finish(self, ok: bool) -> None:
        m, self._leave = self._leave, None
        if m is not None:
            self.send(self.env.node, m.reply_to, LeaveDone(actor=self.name, corr=m.corr, ok=True,
                                                           error="" if ok else "drain deadline passed"))
