"""Raft servers are known by server ID, reached at an address (hashicorp/raft's ServerID and
ServerAddress, Nomad's Raft protocol 3): a server restarted at another address (an IP that
changed on a reboot, a new bind_addr) finds itself in its configuration by its ID, and the leader
replaces the address it holds for it; configurations written when a server's address was its ID
still load.  Simulated servers (sim.runtime) whose node names are their RPC addresses."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import pytest

from actors.gossip.member import ListMembers
from actors.raft.core import LEADER, RaftCore, member, parse_member
from actors.raft.membership import ServerMembership
from actors.raft.messages import CONFIG, ConfigChange, Entry, ServerConfigChange
from actors.raft.peer import RaftConfig, RaftPeer
from actors.raft.storage import MemoryStorage
from runtime import wire
from runtime.actor import NodeActor
from sim.runtime import Scheduler
from tests.test_agent_process import agents  # noqa: F401  (the fixture)

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


class _Gossip(NodeActor):
    """A server's gossip pool as ServerMembership sees it: the cluster's member list, each member's
    latest event, told back on ListMembers (Serf's Members(); a restarted server's gossip knows
    them all again once it has rejoined)."""

    def __init__(self, env: Any, name: str, *, members: dict[str, _Member]) -> None:
        super().__init__(env, name)
        self.members = members

    def receive(self, message: Any) -> None:
        if isinstance(message, ListMembers):
            for name in sorted(self.members):
                self.send(message.node, message.actor, replace(self.members[name], kind="member-update"))


class _Cluster:
    """Servers id-1..id-n at 10.0.0.i:4647, each a RaftPeer (+ ServerMembership) on a sim node.

    Gossip tells an event once, to the servers running then; each server's gossip pool (_Gossip)
    also answers its membership's ListMembers from the latest event of every member."""

    def __init__(self, n: int, *, seed: int = 1, membership: bool = True) -> None:
        self.sched = Scheduler(seed, trace=False)
        self.membership = membership
        self.disks: dict[str, MemoryStorage] = {}
        self.members: dict[str, _Member] = {}  # gossip's member list: name -> its latest event
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
                env.spawn(_Gossip, "gossip", members=self.members)
                env.spawn(ServerMembership, "server-membership", region="global", bootstrap_expect=0,
                          server_id=sid, gossip="gossip")
        self.sched.add_node(addr, boot=boot)

    def stop(self, sid: str) -> None:
        self.sched.nodes[self.addr[sid]].crash()

    def peer(self, sid: str) -> Any:
        node = self.sched.nodes[self.addr[sid]]
        return self.sched.actor_of(node.actors["raft"])

    def gossip(self, event: _Member) -> None:
        """Every running server's gossip tells its membership actor of *event* (once)."""
        if event.kind == "member-reap":
            self.members.pop(event.name, None)
        else:
            self.members[event.name] = event
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
    # ...and one restarted at another address too: its one-server configuration is its own.
    node.crash()
    moved = sched.add_node("10.0.0.9:4647", boot=lambda env: env.spawn(RaftPeer, "raft", storage=disk,
                                                                        config=CFG, server_id="id-1"))
    peer = sched.actor_of(moved.actors["raft"])
    assert sched.run_until(lambda: peer.core.role == LEADER and peer.configuration()[0]["Address"]
                           == "10.0.0.9:4647", 10.0), peer.configuration()


def test_servers_of_an_address_keyed_cluster_are_re_added_by_their_node_ids():
    """Three servers whose data dirs predate IDs: each starts by its address, the leader re-adds the
    others by their node IDs (one at a time), and every server ends up holding one entry each."""
    addrs = tuple(f"10.0.0.{i}:4647" for i in (1, 2, 3))
    c = _Cluster(0)
    for i, addr in enumerate(addrs, 1):
        c.disks[f"id-{i}"] = disk = MemoryStorage()
        disk.save(hard_state=(1, ""), entries=_legacy_log(addrs))
        c.start(f"id-{i}", addr)
    for i, addr in enumerate(addrs, 1):
        c.gossip(_server_event(f"s{i}.global", f"id-{i}", addr))
    assert c.sched.run_until(lambda: c.leader() is not None, 20.0)

    def migrated() -> bool:
        lead = c.leader()
        if lead is None:
            return False
        want = sorted(c.peer(s).core.id for s in ("id-1", "id-2", "id-3"))
        views = [sorted((r["ID"], r["Address"], r["Voter"]) for r in c.peer(s).configuration())
                 for s in ("id-1", "id-2", "id-3")]
        return all(v == views[0] and [r[0] for r in v] == want and all(r[2] for r in v) for v in views) \
            and sum(c.peer(s).core.id == s for s in ("id-1", "id-2", "id-3")) == 2
    assert c.sched.run_until(migrated, 60.0), [c.peer(s).configuration() for s in ("id-1", "id-2", "id-3")]
    lead = c.peer(c.leader())
    assert lead.core.id == c.addr[c.leader()]  # a leader never removes itself: it keeps its address
    assert {r["Address"] for r in lead.configuration()} == set(addrs)


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


# ------------------------------------------------------------ three real server processes


@pytest.mark.timeout(120)
def test_three_server_processes_one_restarted_at_a_new_rpc_address_reconverge(agents, tmp_path):  # noqa: F811
    """A server killed and started again on the same data dir with another RPC port: the leader
    hears of its ID at the new address (gossip's rpc_addr tag) and replaces the address in the
    configuration; `operator raft list-peers` shows the new address, no duplicate, all voters."""
    import json as _json
    import re

    from tests.test_agent_process import free_port, wait_for
    from tests.test_cli_jobs import nomad
    from tests.test_server_cluster import CLUSTER_DEADLINE_S, get_json, server_config

    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp_path, i, join, serf=serfs[i]) for i in range(3)]
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]

    def detail() -> str:
        return "\n".join(p.detail() for p in procs)

    def config(p: Any) -> list[dict[str, Any]]:
        got = get_json(p, "/v1/operator/raft/configuration?stale") or {"Servers": []}
        return sorted(({k: s[k] for k in ("ID", "Address", "Voter")} for s in got["Servers"]),
                      key=lambda s: s["ID"])

    def formed() -> bool:
        views = [config(p) for p in procs]
        return all(len(v) == 3 and all(s["Voter"] for s in v) and v == views[0] for v in views) \
            and len({get_json(p, "/v1/status/leader") for p in procs} - {None, ""}) == 1
    wait_for(formed, "one Raft cluster of three voters", CLUSTER_DEADLINE_S, detail)
    leader = get_json(procs[0], "/v1/status/leader")
    i = next(n for n, c in enumerate(cfgs) if f"127.0.0.1:{c['rpc']}" != leader)  # a follower
    old = f"127.0.0.1:{cfgs[i]['rpc']}"
    ident = next(s["ID"] for s in config(procs[0]) if s["Address"] == old)
    procs[i].kill()
    new_rpc = free_port()
    text = open(cfgs[i]["path"]).read()
    with open(cfgs[i]["path"], "w") as f:
        f.write(re.sub(rf"^rpc = {cfgs[i]['rpc']}$", f"rpc = {new_rpc}", text, flags=re.M))
    procs[i] = agents(["-config", cfgs[i]["path"]], http_port=cfgs[i]["http"])
    new = f"127.0.0.1:{new_rpc}"

    def reconverged() -> bool:
        views = [config(p) for p in procs]
        return all(len(v) == 3 and all(s["Voter"] for s in v) and v == views[0] for v in views) \
            and {"ID": ident, "Address": new, "Voter": True} in views[0]
    wait_for(reconverged, f"every server holding {ident} at {new}", CLUSTER_DEADLINE_S, detail)
    out = nomad(procs[i], "operator", "raft", "list-peers")
    assert out.returncode == 0, out.stderr
    assert new in out.stdout and old not in out.stdout and out.stdout.count(ident) == 1, out.stdout
    assert _json.loads(procs[i].get("/v1/status/peers")[1]).count(new) == 1
    # remove-peer by ID (the server killed: gossip does not bring it back); by address Nomad refuses.
    j = next(n for n in range(3) if n != i and f"127.0.0.1:{cfgs[n]['rpc']}" != leader)
    gone = f"127.0.0.1:{cfgs[j]['rpc']}"
    gone_id = next(s["ID"] for s in config(procs[i]) if s["Address"] == gone)
    procs[j].kill()
    out = nomad(procs[i], "operator", "raft", "remove-peer", "-peer-address", gone)
    assert out.returncode == 1 and "flag provided but not defined: -peer-address" in out.stderr, out.stderr
    out = nomad(procs[i], "operator", "raft", "remove-peer", f"-peer-id={gone_id}")
    assert (out.returncode, out.stdout.strip()) == (0, f'Removed peer with id "{gone_id}"'), out.stderr
    wait_for(lambda: len(v := config(procs[i])) == 2 and gone_id not in {s["ID"] for s in v},
             f"{gone} out of the configuration", CLUSTER_DEADLINE_S, detail)
    # An ID not in the configuration (the removed server may be re-added meanwhile: gossip still calls it
    # alive for up to ~40 s, and the leader's reconcile adds alive servers back, as Nomad's does).
    bogus = "00000000-0000-4000-8000-000000000000"
    out = nomad(procs[i], "operator", "raft", "remove-peer", f"-peer-id={bogus}")
    assert out.returncode == 1 and f'id "{bogus}" was not found in the Raft configuration' in out.stderr
    out = nomad(procs[i], "operator", "raft", "remove-peer")
    assert out.returncode == 1 and "Missing peer id required" in out.stderr


# ------------------------------------------------------------ the leader's reconcile, alone


class _Env:
    def __init__(self, node: str) -> None:
        self.node, self.sent = node, []

    def now(self) -> float:
        return 0.0

    def send(self, node: str, actor: str, msg: Any) -> None:
        self.sent.append((node, actor, msg))


class _Membership(ServerMembership):
    """The actor's logic alone, its receive called directly (no runtime starts it)."""

    def _create_actor_inbox(self) -> Any:
        return None

    def _create_future(self) -> Any:
        return None

    def _start_actor_loop(self) -> Any:
        return None


def _leader_membership(servers: tuple[tuple[str, str, bool], ...]) -> tuple[ServerMembership, _Env]:
    from actors.raft.peer import RaftInfo

    env = _Env("10.0.0.1:4647")
    m = _Membership(env, "server-membership", region="global", bootstrap_expect=0, server_id="id-1")
    m.receive(RaftInfo(is_leader=True, term=2, leader="10.0.0.1:4647", leader_id="id-1", self_id="id-1",
                       voters=tuple(a for _, a, v in servers if v), learners=(), servers=servers))
    return m, env


def _changes(env: _Env) -> list[tuple[str, str, str]]:
    from actors.raft.peer import ChangeMembership

    return [(msg.op, msg.node, msg.address) for _, _, msg in env.sent if isinstance(msg, ChangeMembership)]


def test_the_leader_readdresses_a_known_id_and_replaces_a_wiped_server_at_the_same_address():
    m, env = _leader_membership((("id-1", "10.0.0.1:4647", True), ("id-2", "10.0.0.2:4647", True)))
    m.receive(_server_event("s2.global", "id-2", "10.0.0.7:4647"))  # the same ID elsewhere
    assert _changes(env) == [("address", "id-2", "10.0.0.7:4647")]
    # A server whose data dir was wiped comes back at the same address with a new ID: the old ID
    # goes first (one change at a time), so no two members share the address.
    m, env = _leader_membership((("id-1", "10.0.0.1:4647", True), ("id-2", "10.0.0.2:4647", True)))
    m.receive(_server_event("s2.global", "id-9", "10.0.0.2:4647"))
    assert _changes(env) == [("remove", "id-2", "")]


def test_a_server_known_by_its_address_alone_is_re_added_by_its_node_id_one_at_a_time():
    """A configuration from before IDs names the servers by address: gossip's node ID for one
    matches that entry (its address); the leader removes it and adds it back by its ID (Nomad's
    addRaftPeer), never two such servers at once, and never under two entries."""
    legacy = (("10.0.0.1:4647", "10.0.0.1:4647", True), ("10.0.0.2:4647", "10.0.0.2:4647", True),
              ("10.0.0.3:4647", "10.0.0.3:4647", True))
    m, env = _leader_membership(legacy)
    m.info = replace(m.info, self_id="10.0.0.1:4647")  # the leader keeps its address as its ID
    m.receive(_server_event("s3.global", "id-3", "10.0.0.3:4647"))  # waits: s2 not known alive yet
    assert _changes(env) == []
    m.receive(_server_event("s2.global", "id-2", "10.0.0.2:4647"))
    assert _changes(env) == [("remove", "10.0.0.2:4647", "")]
    from actors.raft.peer import RaftInfo

    after = (legacy[0], legacy[2])
    m.receive(RaftInfo(is_leader=True, term=2, leader="10.0.0.1:4647", leader_id="10.0.0.1:4647",
                       self_id="10.0.0.1:4647", voters=("10.0.0.1:4647", "10.0.0.3:4647"), learners=(),
                       servers=after))
    assert _changes(env)[-1] == ("add_learner", "id-2", "10.0.0.2:4647")
    m.receive(RaftInfo(is_leader=True, term=2, leader="10.0.0.1:4647", leader_id="10.0.0.1:4647",
                       self_id="10.0.0.1:4647", voters=("10.0.0.1:4647", "10.0.0.3:4647"),
                       learners=("10.0.0.2:4647",), servers=(*after, ("id-2", "10.0.0.2:4647", False))))
    before = len(_changes(env))
    m.receive(_server_event("s3.global", "id-3", "10.0.0.3:4647"))  # waits: id-2 is not a voter yet
    assert len(_changes(env)) == before


def test_a_membership_that_gains_leadership_asks_gossip_for_every_member_and_acts_on_them():
    """Nomad's establishLeadership reconciles every serf member: a server whose membership actor
    (re)started after a server moved never got that event, yet re-addresses it once it leads."""
    from actors.raft.peer import RaftInfo

    env = _Env("10.0.0.1:4647")
    m = _Membership(env, "server-membership", region="global", bootstrap_expect=0, server_id="id-1",
                    gossip="gossip")
    servers = (("id-1", "10.0.0.1:4647", True), ("id-2", "10.0.0.2:4647", True))
    info = RaftInfo(is_leader=False, term=2, leader="10.0.0.2:4647", leader_id="id-2", self_id="id-1",
                    voters=("10.0.0.1:4647", "10.0.0.2:4647"), learners=(), servers=servers)
    m.receive(info)
    assert not [x for x in env.sent if isinstance(x[2], ListMembers)]  # a follower does not reconcile
    m.receive(replace(info, is_leader=True, term=3, leader="10.0.0.1:4647", leader_id="id-1"))
    asks = [(n, a, x) for n, a, x in env.sent if isinstance(x, ListMembers)]
    assert asks == [("10.0.0.1:4647", "gossip", ListMembers(node="10.0.0.1:4647", actor="server-membership"))]
    m.receive(replace(info, is_leader=True, term=3))  # still leading: not asked again
    assert len([x for x in env.sent if isinstance(x[2], ListMembers)]) == 1
    # Gossip's answer: each member as a member-update event.
    m.receive(replace(_server_event("s2.global", "id-2", "10.0.0.7:4647"), kind="member-update"))
    assert _changes(env) == [("address", "id-2", "10.0.0.7:4647")]


def test_gossip_lists_every_member_it_knows_as_member_update_events():
    from actors.gossip.messages import MemberEvent
    from sim.gossip_cluster import POOL, EventLog, GossipCluster

    c = GossipCluster(seed=5, record_events=False)
    c.add_converged(3)
    c.crash(2)
    assert c.run_until(lambda: c.statuses(0).get(c.name(2)) == "failed", 30.0) is not None
    node = c.sched.nodes[c.addr(0)]
    asker = c.sched.actor_of(node.spawn(EventLog, "asker"))
    node.deliver_local(POOL, ListMembers(node=c.addr(0), actor="asker"))
    assert c.run_until(lambda: len(asker.events) == 3, 1.0) is not None
    got = [(e.kind, e.name, e.status) for _, e in asker.events]
    assert got == [("member-update", c.name(i), "failed" if i == 2 else "alive") for i in range(3)]
    assert all(isinstance(e, MemberEvent) and e.addr == c.addr(i) and e.tags == c.core(0).members[e.name].tags
               for i, (_, e) in enumerate(asker.events))
    c.close()


def test_a_server_of_an_address_keyed_cluster_back_after_a_peers_json_recovery_names_servers_as_the_leader():
    """Three servers whose data dirs predate IDs (each named by its address); two are lost, and the
    survivor is recovered with a protocol-3 peers.json naming it by its node ID.  One of the lost comes
    back with its data dir and no peers.json: its log matches the leader's, so it gets entries, not
    the snapshot.  The leader's first entry restates the recovered configuration whole, so the
    returner names the leader by its node ID (not its old address-ID) and counts no gone server."""
    from actors.state.store import StateStore
    from runtime.raft_recovery import recover_cluster

    addrs = tuple(f"10.0.0.{i}:4647" for i in (1, 2, 3))
    c = _Cluster(0, membership=False)
    for i, addr in enumerate(addrs, 1):
        c.disks[f"id-{i}"] = disk = MemoryStorage()
        disk.save(hard_state=(1, ""), entries=_legacy_log(addrs))
        c.start(f"id-{i}", addr)
    ids = ("id-1", "id-2", "id-3")
    assert c.sched.run_until(lambda: c.leader() is not None and len({c.peer(s).core.commit for s in ids}) == 1
                             and c.peer(ids[0]).core.commit == c.peer(ids[0]).core.last_index > 1, 20.0)
    for s in ids:
        c.stop(s)
    recover_cluster(c.disks["id-1"], (member("id-1", addrs[0]),), (), StateStore)
    c.membership = True
    c.sched.nodes[addrs[0]].restart()
    c.gossip(_server_event("s1.global", "id-1", addrs[0]))
    assert c.sched.run_until(lambda: c.leader() == "id-1", 20.0)
    c.sched.nodes[addrs[1]].restart()
    c.gossip(_server_event("s2.global", "id-2", addrs[1]))
    want = [("id-1", addrs[0], True), ("id-2", addrs[1], True)]

    def view(sid: str) -> list[tuple[str, str, bool]]:
        return sorted((r["ID"], r["Address"], r["Voter"]) for r in c.peer(sid).configuration())
    assert c.sched.run_until(lambda: view("id-1") == want and view("id-2") == want, 60.0), \
        (view("id-1"), view("id-2"))
    back = c.peer("id-2").core
    assert back.snap_index == 0 and back.id == "id-2"  # entries reached it, and it took its node ID
