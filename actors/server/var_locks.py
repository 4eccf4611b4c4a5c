"""VarLockReaper: the leader frees variable locks whose holders stopped renewing them.

Nomad's leader keeps a timer per lock (nomad/locks.go): ``2 * TTL`` after
the lock was taken or last renewed it counts as lost, and ``LockDelay``
later the leader writes a release.  Here the leases are in the replicated
state (:data:`actors.state.variables.LOCKS_TABLE`, each with its last
renewal in the leader's wall time), so a new leader picks up every lease
where the old one left it.  While leading, this actor watches that table
(a blocking query on its own server), keeps one timer for the earliest
lease to free, and proposes ``var_lock_expire`` when it fires; the command
re-checks each lease at apply, so a renewal committed first keeps its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.raft.peer import Propose, Watch
from actors.server import RAFT, InfoQuery, LeadershipChanged, RaftInfo, RaftReply, ReplyTo, log
from actors.state import variables
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

VAR_LOCKS = "var-locks"  # VarLockReaper's actor name on every server


@dataclass(frozen=True, slots=True, kw_only=True)
class VarLockConfig:
    # How long one blocking query on the lease table waits before it is asked
    # again: long, as any change to a lease wakes it at once.
    watch_timeout_s: float = 300.0
    # The shortest wait before an expiry is proposed: a timer that fires a
    # hair before the wall clock reaches a lease's end (the monotonic and wall
    # clocks drift apart) re-arms for at least this, never spins.
    min_rearm_s: float = 0.05

    def __post_init__(self) -> None:
        if self.watch_timeout_s <= 0 or self.min_rearm_s <= 0:
            raise ValueError("var lock watch timeout and re-arm delay must be > 0")


class VarLockReaper(NodeActor):
    """On the leader: one timer for the earliest lease to free, ``var_lock_expire`` when it fires."""

    def __init__(self, env: Env, name: str, *, config: VarLockConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or VarLockConfig()
        self.raft = raft
        # Lease times are wall seconds written by the edge: production passes time.time; the
        # simulator's shared virtual clock is env.now.
        self._wall = wall_clock or env.now
        self.is_leader = False
        self._gen = 0  # bumped on each leadership change: older replies are stale
        self._seen = 0  # the lease table's index the last answer showed
        self._free_at: dict[str, float] = {}  # key -> when its lease is freed (wall seconds)
        self.expired: list[str] = []  # every lock this actor freed (status, tests)

    def on_start(self) -> None:
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))

    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            self._lead(message.is_leader)
        elif isinstance(message, RaftReply):
            self._reply(message)
        elif message == "status":
            return {"leader": self.is_leader, "leases": len(self._free_at), "expired": len(self.expired)}
        return None

    def _lead(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        self._gen += 1
        self._free_at = {}
        self.cancel_timer("expire")
        self.cancel_timer("watch")
        if leader:
            self._seen = 0
            self._watch()

    def _watch(self) -> None:
        reply = ReplyTo(self.env, self.name, ("watch", self._gen))
        self.send(self.env.node, self.raft, Watch(tables=(variables.LOCKS_TABLE,), min_index=self._seen,
                                                  reply=reply, timeout_s=self.cfg.watch_timeout_s,
                                                  query=variables.leases_in_state))

    def _reply(self, m: RaftReply) -> None:
        kind, gen = m.tag
        if gen != self._gen or not self.is_leader:
            return
        if kind == "watch":
            if m.ok:
                index, leases = m.value
                self._seen = max(self._seen, int(index))
                self._free_at = dict(leases or {})
                self._arm()
                self._watch()
            else:  # Raft refused it (shutting down, a restore): ask again a little later
                self.set_timer("watch", self.cfg.min_rearm_s * 20)
        elif kind == "expire":
            if m.ok and isinstance(m.value[1], dict):
                freed = list(m.value[1].get("freed", ()))
                for k in freed:
                    self._free_at.pop(k, None)
                if freed:
                    log.info("%s: variable locks expired: %s", self.env.node, ", ".join(freed[:10]))
                self.expired.extend(freed)
            self._arm(after_expire=True)

    def _arm(self, *, after_expire: bool = False) -> None:
        if not self._free_at:
            self.cancel_timer("expire")
            return
        wait = min(self._free_at.values()) - self._wall()
        # Due now: at once, unless an expiry just ran (it failed, or a renewal it saw is not yet in
        # _free_at): then after min_rearm_s, so a stuck proposal never spins.
        self.set_timer("expire", max(wait, self.cfg.min_rearm_s) if wait > 0 or after_expire else 0.0)

    def on_timer(self, name: str) -> None:
        if name == "watch" and self.is_leader:
            self._watch()
        elif name == "expire" and self.is_leader:
            reply = ReplyTo(self.env, self.name, ("expire", self._gen))
            self.send(self.env.node, self.raft, Propose(data=command("var_lock_expire", now=self._wall()),
                                                        reply=reply))
