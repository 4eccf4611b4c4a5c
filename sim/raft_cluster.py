"""A simulated Raft cluster: RaftPeer actors on simulated nodes and disks.

Used by the property tests, ``bin/nomad-sim raft`` and the swarm.  Each node
keeps its :class:`MemoryStorage` across crashes (the disk survives; with
``fsync_lies`` it loses unsynced writes).  Clients are the outside world:
they tell requests carrying simulator futures and record an operation
history that the linearizability checker verifies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.raft.core import LEADER, RaftTimings
from actors.raft.messages import CONFIG, NORMAL, ServerConfiguration
from actors.raft.peer import Propose, RaftConfig, RaftPeer, Read
from actors.raft.storage import MemoryStorage
from actors.state.store import command
from runtime import wire
from runtime.snapshotter import InlineSnapshotter
from sim.lincheck import History
from sim.runtime import Scheduler, SimEnv


class SafetyViolation(AssertionError):
    """A cluster-wide Raft guarantee was broken."""


class StormViolation(AssertionError):
    """Messages breed messages while virtual time hardly moves: a livelock the liveness bound never sees."""


# Messages a simulated Raft cluster may deliver per virtual second.  Measured: at most ~1,500 for 3 or 5
# servers under generated faults and clients; a message storm (a chain of messages each answering the
# last, multiplied by duplication) runs to millions and stalls the run for good.
STORM_LIMIT_PER_S = 100_000
# RaftChecker: every this many checks it walks whole logs; in between, the newest LOG_WINDOW entries
# of each pair of servers (where uncommitted entries live and are rewritten).
FULL_CHECK_EVERY = 64
LOG_WINDOW = 512


@dataclass
class ClientOp:
    client: int
    op_id: int
    kind: str
    key: str
    value: Any
    future: Any
    done: bool = False


@dataclass
class RaftChecker:
    """Raft's five guarantees (Figure 3), checked against every server's state, and one
    configuration lineage: every server's configuration comes from the cluster's single bootstrap.

    The lineage check holds each server's bootstrap entry (index 1, while its log has it) to the
    first one seen, and each committed configuration entry to what every other server committed at
    that index.  A snapshot's configuration needs no check of its own: it was compacted from a
    log checked here, or installed from a leader whose log was.  A whole-configuration entry after
    the first (a leader's restatement: a bootstrap change or a ``ServerConfiguration``) must restate
    what the server held before it: only a peers.json recovery, which no simulation runs, makes them
    differ.  One checker is one cluster (a region): two regions are two lineages, two checkers.
    """

    leaders: dict[int, str] = field(default_factory=dict)  # term -> leader
    committed: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, data)
    leader_logs: dict[tuple[str, int], dict[int, int]] = field(default_factory=dict)
    bootstrap: tuple[str, bytes] | None = None  # (the server first seen holding it, the entry's data)
    configs: dict[int, tuple[tuple[str, ...], tuple[str, ...], str]] = field(default_factory=dict)
    _kinds: dict[tuple[int, int], bool] = field(default_factory=dict)  # (index, term) -> a restatement?

    checks: int = 0

    def check(self, cluster: RaftCluster, full: bool | None = None) -> None:
        peers = cluster.live_peers()
        self.checks += 1
        # The walks of whole logs (each log's own invariants, Log Matching below the newest entries)
        # run every FULL_CHECK_EVERY checks; in between, the newest LOG_WINDOW entries of each pair
        # are compared.  A divergence deep in two logs cannot heal (it is committed, or a truncation
        # removes it from the top), so a full walk still finds it, a few checks later; walking every
        # log at every check made a long run quadratic (a simulated day: most of its time).
        full = self.checks % FULL_CHECK_EVERY == 1 if full is None else full
        for name, peer in peers.items():
            core = peer.core
            core.check_invariants(full=full)
            self._single_lineage(name, core)
            if core.role == LEADER:
                other = self.leaders.setdefault(core.term, name)
                if other != name:
                    raise SafetyViolation(f"Election Safety: {other} and {name} both lead term {core.term}")
                self._append_only(name, core)
            self._record_committed(name, core)
        self._log_matching(peers, full)
        self._leader_completeness(peers)

    def _single_lineage(self, name: str, core: Any) -> None:
        if core.log_base == 0 and core.entries and core.entries[0].kind == CONFIG:
            data = core.entries[0].data
            change = wire.decode(data)
            if getattr(change, "op", "") == "bootstrap":
                if self.bootstrap is None:
                    self.bootstrap = (name, data)
                elif data != self.bootstrap[1]:
                    first = wire.decode(self.bootstrap[1])
                    raise SafetyViolation(f"Single Lineage: {name} holds a bootstrap of its own (voters "
                                          f"{', '.join(change.voters)}), not the cluster's (voters "
                                          f"{', '.join(first.voters)}, first seen on {self.bootstrap[0]})")
        before = (tuple(sorted(core.snap_voters)), tuple(sorted(core.snap_learners)))
        for index, voters, learners in core.config_history():
            self._restatement(name, core, index, before, (voters, learners))
            before = (voters, learners)
            if index > core.commit:
                break
            have = self.configs.setdefault(index, (voters, learners, name))
            if have[:2] != (voters, learners):
                raise SafetyViolation(f"Single Lineage: {name} committed configuration voters {list(voters)} "
                                      f"non-voters {list(learners)} at index {index}, {have[2]} voters "
                                      f"{list(have[0])} non-voters {list(have[1])}")

    def _restatement(self, name: str, core: Any, index: int, before: tuple[tuple[str, ...], tuple[str, ...]],
                     after: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        """A whole-configuration entry (a leader's first when its configuration is its snapshot's)
        restates, never changes: in a cluster that was never recovered with peers.json, every server
        that appends one held that configuration already (Log Matching: it holds the leader's log up
        to there, or a snapshot of it)."""
        if index == 1:
            return  # the cluster's bootstrap: checked above
        e = core.entry(index)
        kind = self._kinds.get((index, e.term))
        if kind is None:
            change = wire.decode(e.data)
            kind = type(change) is ServerConfiguration or getattr(change, "op", "") == "bootstrap"
            self._kinds[(index, e.term)] = kind
            if len(self._kinds) > 4096:
                self._kinds.clear()  # a cache; old entries are compacted away
        if kind and before != after:
            raise SafetyViolation(f"Single Lineage: {name}'s whole configuration at {index} (voters "
                                  f"{list(after[0])} non-voters {list(after[1])}) is not the one it held "
                                  f"before (voters {list(before[0])} non-voters {list(before[1])})")

    def _append_only(self, name: str, core: Any) -> None:
        seen = self.leader_logs.setdefault((name, core.term), {})
        for index, term in seen.items():
            now = core.term_at(index)
            if now is not None and now != term:
                raise SafetyViolation(f"Leader Append-Only: {name} rewrote index {index} in term {core.term}")
        if len(seen) < 4096:
            for e in core.entries[-64:]:
                seen[e.index] = e.term

    def _record_committed(self, name: str, core: Any) -> None:
        lo = max(core.snap_index + 1, core.commit - 256)
        for index in range(lo, core.commit + 1):
            e = core.entry(index)
            got = (e.term, e.data)
            have = self.committed.setdefault(index, got)
            if have != got:
                raise SafetyViolation(f"State Machine Safety: index {index} committed as {have[0]} "
                                      f"and as {got[0]} on {name}")

    def _log_matching(self, peers: dict[str, Any], full: bool = True) -> None:
        names = sorted(peers)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                ca, cb = peers[a].core, peers[b].core
                lo = max(ca.snap_index, cb.snap_index) + 1
                hi = min(ca.last_index, cb.last_index)
                if not full:
                    lo = max(lo, hi - LOG_WINDOW + 1)
                # Find the highest index where the terms agree; everything below must agree.
                for index in range(hi, lo - 1, -1):
                    if ca.term_at(index) == cb.term_at(index):
                        for j in range(lo, index + 1):
                            if ca.entry(j) != cb.entry(j):
                                raise SafetyViolation(f"Log Matching: {a} and {b} agree at {index} "
                                                      f"but differ at {j}")
                        break

    def _leader_completeness(self, peers: dict[str, Any]) -> None:
        for name, peer in peers.items():
            core = peer.core
            if core.role != LEADER:
                continue
            for index in range(max(core.snap_index + 1, core.commit - 256), core.commit + 1):
                want = self.committed.get(index)
                e = core.entry(index)
                if want is not None and (e.term, e.data) != want:
                    raise SafetyViolation(f"Leader Completeness: leader {name} lacks committed {index}")


class RaftCluster:
    def __init__(self, seed: int, n: int = 3, *, timings: RaftTimings | None = None,
                 fsync_lies: bool = False, snapshot_threshold: int = 64, trace: bool = True,
                 snapshot_interval_s: float = 0.0, snapshot_max_log_bytes: int = 64 << 20,
                 trailing_logs: int = 0, snapshot_delay_s: float = 0.0) -> None:
        self.sched = Scheduler(seed, trace=trace)
        self.names = tuple(f"s{i}" for i in range(1, n + 1))
        self.cfg = RaftConfig(timings=timings or RaftTimings(), snapshot_threshold=snapshot_threshold,
                              snapshot_interval_s=snapshot_interval_s, snapshot_max_log_bytes=snapshot_max_log_bytes,
                              trailing_logs=trailing_logs)
        self.disks = {name: MemoryStorage(fsync_lies=fsync_lies) for name in self.names}
        self.snapshot_delay_s = snapshot_delay_s
        self.history = History()
        self.ops: list[ClientOp] = []
        self.checker = RaftChecker()
        self.client_rng = __import__("random").Random(f"{seed}:clients")
        self.busy: set[int] = set()
        self.n_clients = 0
        self.next_value = 0
        self.keys: tuple[str, ...] = ("k",)
        self.timeline: Any = None  # a sim.timeline.Timeline when a picture is wanted
        self.storm_limit_per_s = STORM_LIMIT_PER_S
        self._storm_window = (0.0, 0)  # (virtual time, messages) when the current window began
        for name in self.names:
            self.sched.add_node(name, boot=self._boot)

    def _boot(self, env: SimEnv) -> None:
        # The encoded snapshot arrives snapshot_delay_s after it was begun, as a
        # forked encoder's would: applies land while it is in flight.
        env.spawn(RaftPeer, "raft", storage=self.disks[env.node], config=self.cfg, bootstrap=self.names,
                  snapshotter=InlineSnapshotter(self.snapshot_delay_s))

    # ------------------------------------------------------------ views
    def live_peers(self) -> dict[str, Any]:
        out = {}
        for name in self.names:
            node = self.sched.nodes[name]
            ref = node.actors.get("raft")
            if node.up and ref is not None and ref.is_alive():
                out[name] = self.sched.actor_of(ref)
        return out

    def leader(self) -> str | None:
        leaders = [n for n, p in self.live_peers().items() if p.core.role == LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: self.live_peers()[n].core.term)

    # ------------------------------------------------------------ faults
    def crash(self, name: str) -> None:
        self.sched.nodes[name].crash()
        self.disks[name].crash()

    def restart(self, name: str) -> None:
        self.sched.nodes[name].restart()

    # ------------------------------------------------------------ clients
    def start_clients(self, n: int, keys: tuple[str, ...] = ("k",)) -> None:
        """Run *n* Jepsen-style clients: each has one operation outstanding at a time."""
        self.n_clients, self.keys = n, keys
        for c in range(n):
            self._next_op(c)

    def stop_clients(self) -> None:
        self.n_clients = 0

    def _next_op(self, client: int) -> None:
        if client >= self.n_clients or client in self.busy or not self.live_peers():
            return
        rng = self.client_rng
        key = self.keys[rng.randrange(len(self.keys))]
        roll = rng.random()
        self.next_value += 1
        if roll < 0.45:
            self.invoke("write", key, self.next_value, client=client)
        elif roll < 0.6:
            self.invoke("cas", key, (rng.randrange(max(1, self.next_value)), self.next_value), client=client)
        else:
            self.invoke("read", key, client=client)

    def invoke(self, kind: str, key: str, value: Any = None, via: str | None = None,
               client: int = -1) -> ClientOp:
        """Start a client operation through server *via* (default: a random live one)."""
        live = sorted(self.live_peers())
        if not live:
            raise RuntimeError("no live server")
        via = via if via in live else live[self.client_rng.randrange(len(live))]
        fut = self.sched.future_cls()
        if kind == "write":
            msg: Any = Propose(data=command("kv_put", key=key, value=value), reply=fut)
        elif kind == "cas":
            msg = Propose(data=command("kv_cas", key=key, expect=value[0], value=value[1]), reply=fut)
        else:
            msg = Read(query=lambda st, k=key: st.tables["kv"].get(k), reply=fut)
        op_id = self.history.invoke(client if client >= 0 else via, kind, key, value)
        op = ClientOp(client, op_id, kind, key, value, fut)
        if client >= 0:
            self.busy.add(client)
        self.ops.append(op)
        self.sched.nodes[via].actors["raft"].tell(msg)
        return op

    def collect(self) -> None:
        """Record the answers that have arrived."""
        for op in list(self.ops):
            if op.done or not op.future._done:
                continue
            op.done = True
            self.busy.discard(op.client)
            if op.future._exc is not None:
                err = str(op.future._exc[1])
                # A write whose leader was lost may still commit: indeterminate.
                if op.kind == "read" or "No cluster leader" in err or "not leader" in err:
                    self.history.fail(op.op_id)
                else:
                    self.history.info(op.op_id)
                continue
            _, result = op.future._value
            if op.kind == "read":
                self.history.ok(op.op_id, result)
            elif op.kind == "cas":
                self.history.ok(op.op_id, bool(result.get("ok")))
            else:
                self.history.ok(op.op_id, None)
        self.ops = [op for op in self.ops if not op.done]
        for c in range(self.n_clients):
            if c not in self.busy:
                self._next_op(c)

    def finish(self) -> None:
        """Operations never answered are indeterminate."""
        for op in self.ops:
            self.history.info(op.op_id)
        self.ops = []

    # ------------------------------------------------------------ running
    def run(self, seconds: float, check: bool = True) -> None:
        end = self.sched.now + seconds
        while self.sched.now < end:
            if not self.sched.step(until=end):
                break
            if self.sched.steps % 16 == 0:
                if check:
                    self.checker.check(self)
                    self._check_storm()
                self.collect()
                if self.timeline is not None:
                    self.timeline.maybe_sample(self)
        if check:
            self.checker.check(self, full=True)
        self.collect()

    def _check_storm(self) -> None:
        since, msgs = self._storm_window
        dt, n = self.sched.now - since, self.sched.messages - msgs
        if n > self.storm_limit_per_s * max(1.0, dt):
            raise StormViolation(f"message storm: {n} messages in {dt:.3f} virtual s "
                                 f"(limit {self.storm_limit_per_s}/s) at {self.sched.now:.3f}s")
        if dt >= 1.0:
            self._storm_window = (self.sched.now, self.sched.messages)

    def committed_entries(self, name: str) -> list[Any]:
        peer = self.live_peers()[name]
        c = peer.core
        return [c.entry(i) for i in range(c.snap_index + 1, c.commit + 1) if c.entry(i).kind == NORMAL]

    def close(self) -> None:
        self.sched.close()
