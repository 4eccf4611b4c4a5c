"""A simulated gossip pool: GossipMember actors on simulated nodes.

Each member runs on its own node whose id is its gossip address
(``10.x.y.z:4648``), as in production; member names are Nomad-style
``s<i>.global``.  Members boot with ``start_join`` = a few seed addresses
(retried while none answers), so a restarted node rejoins by itself.  An
optional ``events`` actor per node records the :class:`MemberEvent` s its
member emits, with the virtual time, for detection-time measurements.

Used by ``tests/test_gossip_sim.py`` and the figures in the closing report;
the fault verbs are the scheduler's and network's (crash / restart,
partition / heal, loss / duplication / reordering).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.gossip.config import GossipConfig, fast_config
from actors.gossip.member import ForceLeave, GossipMember, Join, Leave
from actors.gossip.messages import Alive, MemberEvent, Tags, encode_tags, make_tags
from actors.gossip.serf import SerfCore
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.serf_snapshot import SerfSnapshot
from sim.gossip_checkers import GossipChecker
from sim.runtime import Scheduler, SimEnv

POOL = "gossip"


class EventLog(NodeActor):
    """Records every MemberEvent told to it as (virtual time, event)."""

    def __init__(self, env: Env, name: str) -> None:
        super().__init__(env, name)
        self.events: list[tuple[float, MemberEvent]] = []

    def receive(self, message: Any) -> Any:
        if isinstance(message, MemberEvent):
            self.events.append((self.env.now(), message))
        return None


class MemorySerfSnapshot(SerfSnapshot):
    """The simulator's serf snapshot: the file's bytes live in *disk*, which the
    cluster keeps across the node's restarts (nothing written is lost in a crash)."""

    def __init__(self, disk: bytearray, **kwargs: Any) -> None:
        self.disk = disk
        super().__init__("<memory>", **kwargs)

    def _open_file(self) -> bytes:
        self._fd = 0
        return bytes(self.disk)

    def _truncate(self, size: int) -> None:
        del self.disk[size:]

    def _write(self, data: bytes) -> None:
        self.disk += data

    def _sync(self) -> None:
        pass

    def _replace(self, body: bytes) -> None:
        self.disk[:] = body

    def _close_file(self) -> None:
        pass


def member_addr(i: int) -> str:
    return f"10.{i // 62500 % 250}.{i // 250 % 250}.{i % 250 + 1}:4648"


def member_name(i: int) -> str:
    return f"s{i}.global"


def server_tags(i: int, *, region: str = "global", dc: str = "dc1", bootstrap_expect: int = 3,
                build: str = "1.9.0") -> Tags:
    """Tags shaped like a Nomad server's (role, region, dc, rpc_addr, port, build, expect...)."""
    ip = member_addr(i).rsplit(":", 1)[0]
    tags = {"role": "nomad", "region": region, "dc": dc, "build": build, "vsn": "1", "raft_vsn": "3",
            "id": f"00000000-0000-4000-8000-{i:012d}", "rpc_addr": ip, "port": "4647"}
    if bootstrap_expect > 0:
        tags["expect"] = str(bootstrap_expect)
    if bootstrap_expect == 1:
        tags["bootstrap"] = "1"
    return make_tags(tags)


@dataclass
class _Spec:
    index: int
    addr: str
    name: str
    seeds: tuple[str, ...]
    tags: Tags


@dataclass
class GossipCluster:
    """A pool of simulated members; indexes, addresses and names are interchangeable handles."""

    seed: int
    config: GossipConfig = field(default_factory=fast_config)
    trace: bool = False
    record_events: bool = True
    retry_join_interval_s: float = 1.0
    # Federation: member i is a server of regions[i % len(regions)], named
    # ``s<i>.<region>``; empty: every member is in "global".
    regions: tuple[str, ...] = ()
    # Called on each node's boot before the member starts; returns more
    # (node, actor) subscribers of its MemberEvents (e.g. a ServerMembership).
    on_boot: Callable[[SimEnv], tuple[tuple[str, str], ...]] | None = None
    # Each member keeps a serf snapshot (MemorySerfSnapshot) across restarts
    # and rejoins the members it remembers, as a server with a data dir does.
    serf_snapshots: bool = False
    rejoin_after_leave: bool = False

    def __post_init__(self) -> None:
        self.sched = Scheduler(self.seed, trace=self.trace)
        self.specs: dict[str, _Spec] = {}  # by address
        self.by_name: dict[str, str] = {}  # name -> address
        self.left_names: set[str] = set()  # members that ever left gracefully
        self.left_cleanly: set[str] = set()  # ... and did so while the network was healthy
        self.force_left_names: set[str] = set()
        self.checker = GossipChecker()
        self._seeded: dict[str, list[Alive]] = {}
        self._seed_tags: dict[bytes, Tags] = {}
        self._serf_disks: dict[str, bytearray] = {}  # by address: each member's snapshot bytes
        self._no_seeds: set[str] = set()  # restarted with no join addresses: the snapshot alone

    # ------------------------------------------------------------ building
    def add(self, i: int, *, seeds: tuple[str, ...] = (), tags: Tags | None = None) -> str:
        """Start member *i* joining *seeds* (addresses); returns its address."""
        addr = member_addr(i)
        tags = server_tags(i, region=self.region_of(i)) if tags is None else tags
        spec = _Spec(i, addr, self.member_name_of(i), tuple(seeds), tags)
        self.specs[addr] = spec
        self.by_name[spec.name] = addr
        self.sched.add_node(addr, boot=self._boot)
        return addr

    def add_many(self, n: int, *, first: int = 0, seeds: int = 3, stagger_s: float = 0.0) -> list[str]:
        """Start members first..first+n-1, each joining up to *seeds* of the earliest members."""
        out = []
        for i in range(first, first + n):
            seed_addrs = tuple(member_addr(j) for j in range(min(seeds, i)))
            if not seed_addrs and i > 0:
                seed_addrs = (member_addr(0),)
            out.append(self.add(i, seeds=seed_addrs))
            if stagger_s > 0:
                self.sched.run_for(stagger_s)
        return out

    def add_converged(self, n: int) -> list[str]:
        """Start *n* members whose views already hold everyone (skip the mass join).

        For simulations of large pools: each core starts from the view a
        converged pool has (``SwimCore.seed_view``), so the test can measure
        what happens next -- one more join, a crash -- without paying for
        N^2 dissemination first.
        """
        addrs = [member_addr(i) for i in range(n)]
        tags = [server_tags(i, region=self.region_of(i)) for i in range(n)]
        alives = [Alive(name=self.member_name_of(i), addr=addrs[i], incarnation=1, meta=encode_tags(tags[i]))
                  for i in range(n)]
        self._seed_tags = {a.meta: t for a, t in zip(alives, tags, strict=True)}
        for i, addr in enumerate(addrs):
            self._seeded[addr] = alives
            self.add(i, seeds=())
        return addrs

    def region_of(self, i: int) -> str:
        return self.regions[i % len(self.regions)] if self.regions else "global"

    def member_name_of(self, i: int) -> str:
        """Nomad's ``<name>.<region>`` (``member_name(i)`` when there are no regions)."""
        return f"s{i}.{self.region_of(i)}" if self.regions else member_name(i)

    def _boot(self, env: SimEnv) -> None:
        spec = self.specs[env.node]
        subscribers: tuple[tuple[str, str], ...] = ()
        if self.record_events:
            env.spawn(EventLog, "events")
            subscribers = ((env.node, "events"),)
        if self.on_boot is not None:
            subscribers += self.on_boot(env)
        seeds = spec.seeds
        if env.incarnation > 0:
            # A restarted member rejoins as an agent with retry_join would: its
            # list names the pool's servers, some of which may be down.
            seeds = tuple(a for a in self.specs if a != env.node)[:8]
        if env.node in self._no_seeds:
            seeds = ()
        snapshot = None
        if self.serf_snapshots:
            snapshot = MemorySerfSnapshot(self._serf_disks.setdefault(env.node, bytearray()),
                                          rejoin_after_leave=self.rejoin_after_leave)
        ref = env.spawn(GossipMember, POOL, member_name=spec.name, config=self.config, tags=spec.tags,
                        subscribers=subscribers, start_join=seeds,
                        retry_join_interval_s=self.retry_join_interval_s, snapshot=snapshot)
        seeded = self._seeded.pop(env.node, None)
        if seeded is not None:
            self.sched.actor_of(ref).core.seed_view(seeded, self.sched.now, self._seed_tags)

    # ------------------------------------------------------------ views
    def addr(self, who: str | int) -> str:
        if isinstance(who, int):
            return member_addr(who)
        return self.by_name.get(who, who)

    def name(self, who: str | int) -> str:
        return self.specs[self.addr(who)].name

    def member(self, who: str | int) -> GossipMember | None:
        node = self.sched.nodes.get(self.addr(who))
        if node is None or not node.up:
            return None
        ref = node.actors.get(POOL)
        if ref is None or not ref.is_alive():
            return None
        return self.sched.actor_of(ref)

    def core(self, who: str | int) -> SerfCore:
        m = self.member(who)
        if m is None:
            raise KeyError(f"{who} is not running")
        return m.core

    def live_cores(self) -> dict[str, SerfCore]:
        out = {}
        for addr in self.specs:
            m = self.member(addr)
            if m is not None:
                out[addr] = m.core
        return out

    def running_names(self) -> set[str]:
        """Members whose process runs and has not left."""
        return {c.name for c in self.live_cores().values() if c.state == "alive"}

    def stopped_names(self) -> set[str]:
        return {s.name for s in self.specs.values()} - self.running_names()

    def events(self, who: str | int) -> list[tuple[float, MemberEvent]]:
        node = self.sched.nodes[self.addr(who)]
        ref = node.actors.get("events")
        return self.sched.actor_of(ref).events if ref is not None and ref.is_alive() else []

    def statuses(self, who: str | int) -> dict[str, str]:
        return self.core(who).statuses()

    # ------------------------------------------------------------ faults and requests
    def crash(self, who: str | int) -> None:
        self.sched.nodes[self.addr(who)].crash()

    def restart(self, who: str | int, *, seeds: bool = True) -> None:
        """Restart the member; with *seeds* False it has no join addresses, only its serf snapshot."""
        # A member that left stays in left_names: views may hold its tombstone
        # until they hear of the rejoin (the safety checker allows that).
        addr = self.addr(who)
        if seeds:
            self._no_seeds.discard(addr)
        else:
            self._no_seeds.add(addr)
        self.sched.nodes[addr].restart()

    def join(self, who: str | int, seeds: tuple[str, ...]) -> Any:
        fut = self.sched.future_cls()
        self.sched.nodes[self.addr(who)].actors[POOL].tell(Join(addresses=seeds, reply=fut))
        return fut

    def leave(self, who: str | int, *, stop: bool = True, timeout_s: float = 60.0) -> Any:
        """Leave gracefully and wait for it (virtual time); then stop the node unless *stop* is False."""
        addr = self.addr(who)
        self.left_names.add(self.specs[addr].name)
        core = self.core(addr)
        if not self.network_faulty() and core.has_alive_members():
            # A clean leave: the network is healthy and the member knows whom to tell.
            self.left_cleanly.add(self.specs[addr].name)
        fut = self.sched.future_cls()
        self.sched.nodes[addr].actors[POOL].tell(Leave(reply=fut))
        result = fut.get(timeout=timeout_s)
        if stop:
            self.sched.nodes[addr].crash()
        return result

    def network_faulty(self) -> bool:
        """Whether any partition, per-link fault or default loss is in effect."""
        net = self.sched.network
        return bool(net._cut or net._links or net._held or net.defaults.loss > 0)

    def force_leave(self, via: str | int, member: str, prune: bool = False) -> Any:
        self.force_left_names.add(member)
        fut = self.sched.future_cls()
        self.sched.nodes[self.addr(via)].actors[POOL].tell(ForceLeave(name=member, prune=prune, reply=fut))
        return fut

    # ------------------------------------------------------------ running
    def run(self, seconds: float, *, check_every: int = 512, full: bool = True) -> None:
        """Run *seconds* of virtual time, checking safety every *check_every* steps."""
        end = self.sched.now + seconds
        sched = self.sched
        while sched.step(until=end):
            if check_every and sched.steps % check_every == 0:
                self.checker.check(self, full=full)
        sched.now = max(sched.now, end)
        if check_every:
            self.checker.check(self, full=full)

    def run_until(self, cond: Any, timeout_s: float, *, poll_s: float = 0.05,
                  check: bool = True) -> float | None:
        """Run until ``cond()`` holds (polled every *poll_s*); the virtual time it took, or None."""
        start = self.sched.now
        deadline = start + timeout_s
        while not cond():
            if self.sched.now >= deadline:
                return None
            self.run(min(poll_s, deadline - self.sched.now), check_every=0)
            if check:
                self.checker.check(self, full=False)
        return self.sched.now - start

    def close(self) -> None:
        self.sched.close()


def traced_run(seed: int, n: int = 6, seconds: float = 10.0) -> str:
    """A short faulty run (loss, reordering, duplication, a crash) and its trace hash.

    The determinism tests compare it across processes and PYTHONHASHSEEDs.
    """
    c = GossipCluster(seed=seed, config=fast_config(), trace=True)
    c.add_many(n)
    c.sched.network.configure(loss=0.05, reorder=0.1, duplicate=0.02)
    c.run(seconds / 2, check_every=0)
    c.crash(n // 2)
    c.run(seconds / 2, check_every=0)
    digest = c.sched.trace_hash()
    c.close()
    return digest
