"""Raft servers are known by server ID, reached at an address (hashicorp/raft's ServerID and
ServerAddress, Nomad's Raft protocol 3): a server restarted at another address (an IP that
changed on a reboot, a new bind_addr) finds itself in its configuration by its ID, and the leader
replaces the address it holds for it; configurations written when a server's address was its ID
still load.  Simulated servers (sim.runtime) whose node names are their RPC addresses."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from actors.raft.core import LEADER, RaftCore, member, parse_member
from actors.raft.membership import ServerMembership
from actors.raft.messages import CONFIG, ConfigChange, Entry, ServerConfigChange
from actors.raft.peer import RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from runtime import wire
from sim.runtime import Scheduler

CFG = RaftConfig()


@dataclass
class _Member:
    """A gossip member event as GossipMember tells it (kind, name, status, tags)."""

    name: str
    tags: tuple[tuple[str, str], ...]
    status: str = "alive"
    kind: str = "member-join"


def _server_event(name: str, sid: str, addr: str, status: str = "alive") -> _Member:
    return _Member(name=name, status=status, kind="member-join" if status == "alive" else "member-failed",
                   tags=(("role", "nomad"), ("region", "global"), ("rpc_addr", addr), ("id", sid)))


class _Cluster:
    """Servers id-1..id-n at 10.0.0.i:4647, each a RaftPeer (+ ServerMembership) on a sim node."""

    def __init__(self, n: int, *, seed: int = 1, membership: bool = True) -> None:
        self.sched = Scheduler(seed, trace=False)
        self.membership = membership
        self.disks: dict[str, MemoryStorage] = {}
        self.addr: dict[str, str] = {}  # ID -> the node it runs on now
        ids = [f"id-{i}" for i in range(1, n + 1)]
        addrs = [f"10.0.0.{i}:4647" for i in range(1, n + 1)]
        for sid, addr in zip(ids, addrs, strict=True):
            self.disks[sid] = MemoryStorage()
            self.start(sid, addr, bootstrap=(tuple(ids), tuple(addrs)))

    def start(self, sid: str, addr: str,
              bootstrap: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> None:
        self.addr[sid] = addr

        def boot(env: Any) -> None:
            env.spawn(RaftPeer, "raft", storage=self.disks[sid], config=CFG, server_id=sid,
                      bootstrap=bootstrap[0], bootstrap_addresses=bootstrap[1],
                      leadership_subscribers=("server-membership",) if self.membership else ())
            if self.membership:
                env.spawn(ServerMembership, "server-membership", region="global", bootstrap_expect=0,
                          server_id=sid)
        self.sched.add_node(addr, boot=boot)

    def stop(self, sid: str) -> None:
        self.sched.nodes[self.addr[sid]].crash()

    def peer(self, sid: str) -> Any:
        node = self.sched.nodes[self.addr[sid]]
        return self.sched.actor_of(node.actors["raft"])

    def gossip(self, event: _Member) -> None:
        """Every running server's gossip tells its membership actor of *event*."""
        for sid in sorted(self.addr):
            node = self.sched.nodes[self.addr[sid]]
            if node.up:
                node.deliver_local("server-membership", event)

    def leader(self) -> str | None:
        leads = [sid for sid in sorted(self.addr) if self.sched.nodes[self.addr[sid]].up
                 and self.peer(sid).core.role == LEADER]
        return leads[0] if leads else None


# ------------------------------------------------------------ one server


def test_a_restarted_server_at_a_new_address_leads():
    c = _Cluster(1, membership=False)
    assert c.sched.run_until(lambda: c.leader() == "id-1" and c.disks["id-1"].load()[0] > 0, 10.0)
    c.stop("id-1")
    c.start("id-1", "10.0.0.9:4647")  # the same data, another address: no bootstrap
    assert c.sched.run_until(lambda: c.leader() == "id-1", 10.0), c.peer("id-1").core.status()

    def readdressed() -> bool:
        return c.peer("id-1").configuration() == [
            {"ID": "id-1", "Address": "10.0.0.9:4647", "Leader": True, "Voter": True}]
    assert c.sched.run_until(readdressed, 10.0), c.peer("id-1").configuration()
    status = c.peer("id-1").status()
    assert (status["leader"], status["leader_id"], status["voters"]) == ("10.0.0.9:4647", "id-1",
                                                                       ["10.0.0.9:4647"])


# ------------------------------------------------------------ three servers


def test_three_servers_one_back_at_a_new_address_reconverge_without_a_duplicate():
    c = _Cluster(3)
    for i in (1, 2, 3):
        c.gossip(_server_event(f"s{i}.global", f"id-{i}", f"10.0.0.{i}:4647"))
    assert c.sched.run_until(lambda: c.leader() is not None, 20.0)
    follower = next(s for s in ("id-1", "id-2", "id-3") if s != c.leader())
    c.stop(follower)
    c.start(follower, "10.0.0.9:4647")
    # Gossip sees the same server (name and ID) at its new address.
    c.gossip(_server_event(f"s{follower[-1]}.global", follower, "10.0.0.9:4647"))
    want = sorted([{"ID": s, "Address": "10.0.0.9:4647" if s == follower else f"10.0.0.{s[-1]}:4647",
                    "Voter": True} for s in ("id-1", "id-2", "id-3")], key=lambda r: r["ID"])

    def converged() -> bool:
        lead = c.leader()
        if lead is None:
            return False
        views = [[{k: r[k] for k in ("ID", "Address", "Voter")} for r in c.peer(s).configuration()]
                 for s in ("id-1", "id-2", "id-3")]
        caught_up = c.peer(follower).core.commit == c.peer(lead).core.commit
        return all(v == want for v in views) and caught_up
    assert c.sched.run_until(converged, 30.0), [c.peer(s).configuration() for s in ("id-1", "id-2", "id-3")]
    # The leader's membership made the change: the server kept its place, with its new address.
    node = c.sched.nodes[c.addr[c.leader()]]
    assert c.sched.actor_of(node.actors["server-membership"]).stats.get("readdressed", 0) >= 1


# ------------------------------------------------------------ configurations written before IDs


def _legacy_log(addrs: tuple[str, ...]) -> list[Entry]:
    boot = wire.encode(ConfigChange(op="bootstrap", node="", voters=addrs))
    return [Entry(term=1, index=1, kind=CONFIG, data=boot)]


def test_old_address_keyed_configuration_loads():
    """A log and a snapshot whose members are addresses alone (ConfigChange, 'addr' entries): each
    member's ID is its address, and a server whose data dir holds them finds itself by address."""
    addrs = ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647")
    core = RaftCore("10.0.0.1:4647", random.Random(1))
    core.restore(1, "", None, _legacy_log(addrs))
    assert core.voters == addrs and all(core.address_of(a) == a for a in addrs)
    snap = (5, 1, addrs, (), b"")  # as stored before IDs
    core = RaftCore("10.0.0.1:4647", random.Random(1))
    core.restore(1, "", snap, [])
    assert core.voters == addrs and core.snap_members() == (addrs, ())
    # A server (node ID "id-1") whose data dir was written before IDs keeps its address as its ID.
    sched = Scheduler(1, trace=False)
    disk = MemoryStorage()
    disk.save(hard_state=(1, ""), entries=_legacy_log(("10.0.0.1:4647",)))
    node = sched.add_node("10.0.0.1:4647", boot=lambda env: env.spawn(RaftPeer, "raft", storage=disk,
                                                                       config=CFG, server_id="id-1"))
    peer = sched.actor_of(node.actors["raft"])
    assert sched.run_until(lambda: peer.core.role == LEADER, 10.0)
    assert peer.core.id == "10.0.0.1:4647" and peer.configuration()[0]["Address"] == "10.0.0.1:4647"


def test_snapshots_carry_each_servers_id_and_address():
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(("id-1", "id-2"), ("10.0.0.1:4647", "10.0.0.2:4647"))
    core.take_ready()
    core.persisted(core.last_index)
    core.compact(1, b"state")
    members = core.snap_members()
    assert members == (("id-1@10.0.0.1:4647", "id-2@10.0.0.2:4647"), ())
    assert [parse_member(m) for m in members[0]] == [("id-1", "10.0.0.1:4647"), ("id-2", "10.0.0.2:4647")]
    again = RaftCore("id-2", random.Random(2))
    again.restore(1, "", (1, 1, *members, b"state"), [])
    assert again.voters == ("id-1", "id-2") and again.address_of("id-2") == "10.0.0.2:4647"
    assert member("10.0.0.1:4647", "10.0.0.1:4647") == "10.0.0.1:4647"  # address-only, as before IDs


def test_an_address_change_keeps_the_servers_place_and_rolls_back_with_its_entry():
    core = RaftCore("id-1", random.Random(1))
    core.bootstrap(("id-1",), ("10.0.0.1:4647",))
    entry = ServerConfigChange(op="address", node="id-1", address="10.0.0.9:4647")
    core._append([Entry(term=1, index=2, kind=CONFIG, data=wire.encode(entry))])
    assert core.voters == ("id-1",) and core.address_of("id-1") == "10.0.0.9:4647"
    core._truncate(2)
    assert core.address_of("id-1") == "10.0.0.1:4647"
    with pytest.raises(ValueError, match="needs the new address"):
        ServerConfigChange(op="address", node="id-1")
