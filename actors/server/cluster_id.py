"""The leader establishes the cluster's ID (Nomad's ``establishClusterID`` / ``ClusterMetadata()``).

On establishing leadership -- an election, or re-asserting it after an
operator's snapshot restore -- the leader reads the state (linearizably: a
new leader may not have applied what an earlier leader committed) and,
when it holds no cluster ID, proposes ``cluster_meta_set`` with a new
random UUID (from the injected env's RNG, never ``uuid4``) and the time.
The state machine refuses a second, different ID, so of two leaders racing
(one deposed before its write committed) at most one ID ever takes.  A read
or a write that fails while this server still leads is tried again on the
next look at Raft (the NodeEndpoint's poll); losing leadership ends it.

:class:`ClusterIdEstablisher` is hosted by the NodeEndpoint (every server
runs one, and it follows leadership), which routes it the RaftReplies
tagged :data:`TAG`.
"""

from __future__ import annotations

from typing import Any

from actors.raft.peer import Propose, Read
from actors.server import RAFT, RaftReply, ReplyTo, log
from actors.state import cluster_meta
from actors.state.store import command
from runtime.env import Env

TAG = "cluster-id"  # RaftReply tags: (TAG, (stage, generation))


class LeaderEstablisher:
    """While this server leads: read the state once and, when it lacks something, write it once.

    The lifecycle shared by what a new Nomad leader establishes (``establishClusterID``,
    ``getOrCreateSchedulerConfig``): :meth:`lead` on every change of leadership (or its
    re-assertion), :meth:`poll` on every look at Raft (a read or write that failed while leading
    is tried again), :meth:`on_reply` with the RaftReplies tagged ``(tag, ...)``.  A subclass
    gives the read (:attr:`query`), whether its answer settles it (:meth:`settled`), the write
    (:meth:`proposal`) and what a write's answer means (:meth:`written`: whether to stop).
    """

    __slots__ = ("_actor", "_env", "_gen", "_in_flight", "_needed", "_raft", "_tag")

    what = "state"  # for log lines

    def __init__(self, env: Env, actor: str, *, tag: str, raft: str = RAFT) -> None:
        self._env, self._actor, self._raft, self._tag = env, actor, raft, tag
        self._needed = False  # leading, and not yet seen settled in the state
        self._in_flight = False  # a read or write of ours is out
        self._gen = 0  # one per lead(): a reply to an earlier one's request is ignored

    # The read: a plain function of the state's tables (it runs inside the Raft peer), as a staticmethod.
    query: Any = None

    def settled(self, result: Any) -> bool:
        raise NotImplementedError

    def proposal(self) -> Any:
        raise NotImplementedError

    def written(self, result: Any) -> bool:
        raise NotImplementedError

    def lead(self, is_leader: bool) -> None:
        """Leadership was established (or re-asserted), or lost."""
        self._needed, self._in_flight = is_leader, False
        self._gen += 1
        self.poll()

    def poll(self) -> None:
        """While leading and not settled, with nothing out: read the state."""
        if self._needed and not self._in_flight:
            self._in_flight = True
            self._send(Read(query=self.query, stale=False, reply=self._reply("read")))

    def on_reply(self, m: RaftReply) -> None:
        stage, gen = m.tag[1]
        if gen != self._gen or not self._needed:
            return  # asked before leadership was lost, won or re-asserted since
        self._in_flight = False
        if not m.ok:
            log.warning("%s: establishing the %s: %s %s (will retry)", self._env.node, self.what, stage,
                        m.error)
            return
        result = m.value[1]
        if stage == "read":
            if self.settled(result):
                self._needed = False
                return
            self._in_flight = True
            self._send(Propose(data=self.proposal(), reply=self._reply("write")))
        elif self.written(result):
            self._needed = False

    def _reply(self, stage: str) -> ReplyTo:
        return ReplyTo(self._env, self._actor, (self._tag, (stage, self._gen)))

    def _send(self, msg: Any) -> None:
        self._env.send(self._env.node, self._raft, msg)


class ClusterIdEstablisher(LeaderEstablisher):
    """Makes sure the state holds a cluster ID while this server leads (one read, at most one write)."""

    __slots__ = ("_wall", "cluster_id")

    what = "cluster ID"

    def __init__(self, env: Env, actor: str, *, wall_clock: Any, raft: str = RAFT) -> None:
        super().__init__(env, actor, tag=TAG, raft=raft)
        self._wall = wall_clock
        self.cluster_id = ""  # as last read or written here ("" unknown)

    query = staticmethod(cluster_meta.current)

    def settled(self, result: Any) -> bool:
        if result and result.get("ClusterID"):
            self.cluster_id = result["ClusterID"]
            return True
        return False

    def proposal(self) -> Any:
        meta = cluster_meta.new_metadata(self._env.rng, self._wall())
        return command("cluster_meta_set", cluster_id=meta["ClusterID"], create_time=meta["CreateTime"])

    def written(self, result: Any) -> bool:
        if isinstance(result, dict) and result.get("ok"):
            self.cluster_id = result["ClusterID"]
            if result.get("created"):
                log.info("%s: established cluster id %s", self._env.node, self.cluster_id)
        else:
            error = result.get("error") if isinstance(result, dict) else result
            log.error("%s: failed to create cluster ID: %s", self._env.node, error)
        return True  # written, or the state refused it: another ID is there, nothing to retry
