"""ServerMembership: gossip events become the Raft configuration.

Nomad's servers find each other through gossip and build one Raft cluster
per region from what they see (``nomad/serf.go``, ``leader.go``).  The pool
holds the servers of every region (federation, NOMAD.md §7.5); only members
whose ``region`` tag is this server's count below, so regions never share
Raft peers and each bootstraps its own cluster:

* **bootstrap** -- once ``bootstrap_expect`` alive servers of this region
  (each advertising the same ``expect``) are seen and this server is among
  the first ``bootstrap_expect`` of them by RPC address, it bootstraps Raft
  with exactly those voters.  Every such server picks the same set from the
  same members, so they write identical first entries: one cluster, never
  two.  A server with Raft state refuses to bootstrap again.
* **joiners** -- the leader adds an alive server of this region that is not
  in the configuration as a non-voter; Raft promotes it once it has kept up
  for ``autopilot.server_stabilization_time`` (RaftTimings.stabilization_ticks).
* **departures** -- the leader removes a server that left gracefully, was
  force-left, or was reaped after failing.
* **server IDs** (the agent: ``server_id``, Nomad's Raft protocol 3) -- Raft
  knows a server by the node ID in its gossip ``id`` tag, at its ``rpc_addr``.
  A known ID that gossip sees at a new address keeps its place: the leader
  replaces the address (``ChangeMembership(op="address")``).  Another ID at
  an address the configuration holds replaces the old one (removed first);
  a member named by its address (a configuration from before IDs) is
  removed and added back by its ID, one at a time, never the leader itself.
* **autopilot** (Nomad's ``autopilot`` block) -- every
  ``autopilot_interval_s`` (Nomad: 10 s) the leader also removes servers
  gossip marks failed when ``cleanup_dead_servers`` is on: any non-voter,
  and voters only while at most (voters - 1) / 2 of them would go, so a
  quorum of the configuration always remains, and at least ``min_quorum``
  voters stay; a removed server that comes back is added again as a
  non-voter.  Every ``health_interval_s`` (2 s) the leader works out each
  server's health from Raft's view (last contact within
  ``last_contact_threshold``, log within ``max_trailing_logs`` of the
  leader's, same term) and gossip's (alive): ``/v1/operator/autopilot/health``.
  A follower asked for it asks the leader's membership actor.
* **the replicated configuration** (``AutopilotConfig.replicated``, as the
  agent runs it) -- those settings come from the cluster's autopilot
  configuration in the state store (actors.state.autopilot_config), which
  ``nomad operator autopilot set-config`` changes: a leader that finds none
  writes its agent's ``autopilot`` block there (Nomad's
  getOrCreateAutopilotConfig; compare-and-set on "none yet", so an
  operator's is never overwritten), and every server keeps a blocking query
  on it and uses what it holds, its own agent config until one is written.
  (Raft's promotion of a new server follows the same record:
  ``server_stabilization_time`` and ``max_trailing_logs``, RaftPeer.)

The actor never blocks: it learns Raft's configuration from RaftInfo
messages (on leadership changes and in answer to InfoQuery).

Gossip tells each member event once.  What the actor learned is kept in
``servers`` and reconciled again every ``reconcile_interval_s`` while it
leads; and, with ``gossip`` (the agent: the LAN pool actor), the whole member
list is asked for (Serf's ``Members()``, :class:`ListMembers`) when the actor
starts, when it gains leadership and every ``member_resync_interval_s`` while
it leads -- Nomad's leader reconciles every serf member on
establishLeadership and every ReconcileInterval (60 s).  So a server whose
membership restarted (the process, or the actor alone) and then leads still
knows every server: it re-addresses a server that moved and goes on with
the address -> ID migration, where events told before its restart are gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from actors.gossip.member import ForceLeave, ListMembers
from actors.raft.messages import (
    AutopilotHealthReply,
    AutopilotHealthRequest,
    BootstrapPeersQuery,
    BootstrapPeersReply,
)
from actors.raft.peer import (
    Bootstrap,
    ChangeMembership,
    HealthQuery,
    InfoQuery,
    Propose,
    RaftHealth,
    RaftInfo,
    ServerAddresses,
    Watch,
)
from actors.server import RaftReply, ReplyTo
from actors.state import autopilot_config as ap_cfg
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.server")

SERVER_ROLE = "nomad"  # the gossip "role" tag of a Nomad server
GONE = ("left", "reaped")
NOT_LEADER_HEALTH = "no leader to report autopilot health"


@dataclass(frozen=True, slots=True, kw_only=True)
class AutopilotConfig:
    cleanup_dead_servers: bool = True  # autopilot.cleanup_dead_servers (Nomad default true)
    last_contact_threshold_s: float = 0.2  # autopilot.last_contact_threshold (Nomad 200ms)
    max_trailing_logs: int = 250  # autopilot.max_trailing_logs (Nomad 250)
    min_quorum: int = 0  # autopilot.min_quorum: dead voters go only while this many remain (0: no floor)
    # autopilot.server_stabilization_time: not used here (Raft promotes), but
    # written to the replicated configuration with the rest.
    server_stabilization_time_s: float = 10.0
    # True (the agent): follow the replicated autopilot configuration, seeding
    # it from these values when the leader finds none.  False (simulations
    # that predate it): these values, nothing written.
    replicated: bool = False
    # Nomad's autopilot loop (10 s) and server health loop (2 s), fixed there.
    autopilot_interval_s: float = 10.0
    health_interval_s: float = 2.0
    # A follower waits this long for the leader's health report.
    health_forward_timeout_s: float = 5.0
    # The blocking query on the replicated configuration is renewed this often
    # even when nothing changed (a lost answer costs at most this long).
    config_watch_s: float = 30.0

    @classmethod
    def from_config(cls, ap: Any) -> AutopilotConfig:
        return cls(cleanup_dead_servers=ap.cleanup_dead_servers,
                   last_contact_threshold_s=ap.last_contact_threshold_s,
                   max_trailing_logs=ap.max_trailing_logs, min_quorum=ap.min_quorum,
                   server_stabilization_time_s=ap.server_stabilization_time_s, replicated=True)

    def record(self) -> dict[str, Any]:
        """These settings as a replicated configuration record (without indexes)."""
        return ap_cfg.record(cleanup_dead_servers=self.cleanup_dead_servers,
                             last_contact_threshold_s=self.last_contact_threshold_s,
                             max_trailing_logs=self.max_trailing_logs, min_quorum=self.min_quorum,
                             server_stabilization_time_s=self.server_stabilization_time_s)

    def following(self, rec: dict[str, Any] | None) -> AutopilotConfig:
        """These settings with the replicated record's in their place (None: these as they are)."""
        if rec is None:
            return self
        return replace(self, cleanup_dead_servers=rec["CleanupDeadServers"],
                       last_contact_threshold_s=rec["LastContactThreshold"] / 1e9,
                       max_trailing_logs=rec["MaxTrailingLogs"], min_quorum=rec["MinQuorum"],
                       server_stabilization_time_s=rec["ServerStabilizationTime"] / 1e9)


@dataclass(frozen=True, slots=True)
class GetAutopilotHealth:
    """HTTP edge -> membership: the health report (Nomad's OperatorHealthReply) into *reply* (a future)."""

    reply: Any


class ServerMembership(NodeActor):
    def __init__(self, env: Env, name: str, *, region: str, bootstrap_expect: int, raft: str = "raft",
                 reconcile_interval_s: float = 1.0, autopilot: AutopilotConfig | None = None,
                 wall_clock: Any = None, bootstrap_check_timeout_s: float = 5.0, server_id: str = "",
                 gossip: str = "", member_resync_interval_s: float = 60.0) -> None:
        super().__init__(env, name)
        # The local gossip pool actor asked for its whole member list (actors.gossip.member.ListMembers)
        # at start, on gaining leadership and every member_resync_interval_s while leading (Nomad's
        # ReconcileInterval, 60 s: a member event missed -- told before this actor (re)started -- is
        # still acted on).  "": none (simulations whose gossip is only its events).
        self.gossip = gossip
        self.member_resync_interval_s = member_resync_interval_s
        # With this server's Raft ID (the agent: its node ID), servers are known to Raft by the
        # ID their gossip "id" tag carries, at their "rpc_addr" (Raft protocol 3); "" (simulations
        # that predate IDs): by their rpc_addr, which is then also their ID.
        self.server_id = server_id
        self._told_addrs: tuple[tuple[str, str], ...] = ()  # the ServerAddresses Raft was last told
        self.agent_ap = autopilot or AutopilotConfig()  # the agent's own autopilot block
        self.ap = self.agent_ap  # what is used: the replicated configuration's, once there is one
        self.config_index = 0  # the replicated configuration's table index last seen
        self.config_replicated = False  # a replicated configuration was seen (else: the agent's applies)
        self._config_watch_due = 0.0  # when the blocking query is overdue (its answer lost): renew it
        self._seeding = False  # a seed write is in flight
        # StableSince is a wall-clock time: production passes time.time.
        self._wall = wall_clock or env.now
        self.health: dict[str, Any] | None = None  # the leader's last report (Nomad's JSON shape)
        self._stable_since: dict[str, float] = {}  # server -> when it last became healthy
        self._prune: set[str] = set()  # failed servers autopilot decided to remove
        self._health_waits: dict[int, tuple[Any, float]] = {}  # forwarded request id -> (reply, deadline)
        self._next_req = 0
        self.region = region
        self.expect = bootstrap_expect
        self.raft = raft
        # How often the leader re-checks gossip against Raft; Nomad reconciles
        # on every member event and every 60 s -- we do it each second so a
        # lost ChangeMembership is retried quickly.
        self.reconcile_interval_s = reconcile_interval_s
        self.servers: dict[str, tuple[str, str, int, str]] = {}  # name -> (rpc_addr, status, expect, ID)
        self.builds: dict[str, str] = {}  # rpc_addr -> the member's "build" tag (autopilot health's Version)
        self.info: RaftInfo | None = None
        self.bootstrapped = False
        # Before bootstrapping, each other chosen server is asked whether it has Raft peers already
        # (Nomad's maybeBootstrap): a server joining a running cluster with bootstrap_expect set must
        # not bootstrap a configuration of its own when gossip has shown it just enough servers.  A
        # check not answered within bootstrap_check_timeout_s is dropped and made again later.
        self.bootstrap_check_timeout_s = bootstrap_check_timeout_s
        # The check in flight: (request id, the voters as (address, ID), the servers yet to answer,
        # when it is given up).
        self._boot_check: tuple[int, tuple[tuple[str, str], ...], set[str], float] | None = None
        self._boot_voters = ""  # the voters of the bootstrap asked of Raft, for its log line
        self.stats = {"bootstraps": 0, "adds": 0, "removes": 0, "dead_removed": 0, "bootstrap_skipped": 0}

    def on_start(self) -> None:
        if self.agent_ap.replicated:
            self._watch_config()
        self.set_timer("reconcile", self.reconcile_interval_s)
        self.set_timer("autopilot", self.ap.autopilot_interval_s)
        self.set_timer("health", self.ap.health_interval_s)
        if self.gossip:
            self._list_members()
            self.set_timer("resync", self.member_resync_interval_s)

    def _list_members(self) -> None:
        """Ask gossip for every member it knows (each comes back as a member-update event)."""
        self.send(self.env.node, self.gossip, ListMembers(node=self.env.node, actor=self.name))

    def on_timer(self, name: str) -> None:
        if name == "resync":
            if self.info is not None and self.info.is_leader:
                self._list_members()
            self.set_timer("resync", self.member_resync_interval_s)
        if name == "reconcile":
            self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
            check = self._boot_check
            if check is not None and self.env.now() >= check[3]:
                self._boot_check = None  # unanswered: ask again
                self._maybe_bootstrap()
            if self.agent_ap.replicated and self.env.now() >= self._config_watch_due:
                self._watch_config()
            self.set_timer("reconcile", self.reconcile_interval_s)
        elif name == "autopilot":
            self._prune_dead()
            self.set_timer("autopilot", self.ap.autopilot_interval_s)
        elif name == "health":
            if self.info is not None and self.info.is_leader:
                self.send(self.env.node, self.raft, HealthQuery(reply_to=self.name))
            self._expire_health_waits()
            self.set_timer("health", self.ap.health_interval_s)

    def receive(self, message: Any) -> Any:
        kind = getattr(message, "kind", None)
        if kind is not None and hasattr(message, "tags"):
            self._member_event(message)
        elif isinstance(message, RaftInfo):
            if not message.is_leader:
                self.health = None
                self._stable_since.clear()
            elif self.gossip and (self.info is None or not self.info.is_leader):
                self._list_members()  # Nomad's establishLeadership: reconcile every serf member
            self.info = message
            self._maybe_seed_config()
            self._reconcile()
        elif isinstance(message, RaftHealth):
            self._health(message)
        elif isinstance(message, GetAutopilotHealth):
            self._get_health(message.reply)
        elif isinstance(message, AutopilotHealthRequest):
            report = self.health if self.info is not None and self.info.is_leader else None
            self.send(message.reply_node, message.reply_actor, AutopilotHealthReply(
                req_id=message.req_id, ok=report is not None,
                report=msgpack.packb(report, use_bin_type=True) if report is not None else b""))
        elif isinstance(message, AutopilotHealthReply):
            self._forwarded_health(message)
        elif isinstance(message, BootstrapPeersQuery):
            has = self.info is not None and bool(self.info.voters or self.info.learners)
            self.send(message.reply_node, message.reply_actor,
                      BootstrapPeersReply(req_id=message.req_id, server=self.env.node, has_peers=has))
        elif isinstance(message, BootstrapPeersReply):
            self._bootstrap_peers_reply(message)
        elif isinstance(message, RaftReply):
            self._raft_reply(message)
        elif message == "autopilot_agent_config":  # the HTTP edge: what applies before one is replicated
            return self.agent_ap.record()
        elif message == "servers":
            return {n: {"rpc_addr": a, "status": s, "id": i}
                    for n, (a, s, _, i) in sorted(self.servers.items())}
        return None

    def _member_event(self, ev: Any) -> None:
        tags = dict(ev.tags)
        if tags.get("role") != SERVER_ROLE or tags.get("region") != self.region or not tags.get("rpc_addr"):
            return
        status = "reaped" if ev.kind == "member-reap" else ev.status
        expect = int(tags.get("expect", "0") or 0)
        addr = tags["rpc_addr"]
        sid = (tags.get("id") or addr) if self.server_id else addr
        self.servers[ev.name] = (addr, status, expect, sid)
        self.builds[addr] = tags.get("build", "")
        self._tell_addresses()
        self._maybe_bootstrap()
        self._reconcile()

    def _tell_addresses(self) -> None:
        """Tell Raft where gossip sees each live server (it routes to one its configuration lacks)."""
        if not self.server_id:
            return
        addrs = tuple(sorted({(i, a) for a, st, _, i in self.servers.values() if st == "alive"}))
        if addrs != self._told_addrs:
            self._told_addrs = addrs
            self.send(self.env.node, self.raft, ServerAddresses(addrs=addrs))

    def _maybe_bootstrap(self) -> None:
        if self.bootstrapped or self.expect <= 0 or self._boot_check is not None:
            return
        if self.info is not None and (self.info.voters or self.info.learners):
            self.bootstrapped = True  # Raft has a configuration already
            return
        alive = sorted((a, i) for a, s, e, i in self.servers.values() if s == "alive" and e == self.expect)
        if len(alive) < self.expect:
            return
        chosen = tuple(alive[: self.expect])  # (address, ID) each, by address
        voters = tuple(a for a, _ in chosen)
        if self.env.node not in voters:
            self.bootstrapped = True
            return  # the chosen servers bootstrap; the leader will add us
        others = {v for v in voters if v != self.env.node}
        if not others:
            self._bootstrap(chosen)
            return
        self._next_req += 1
        self._boot_check = (self._next_req, chosen, others, self.env.now() + self.bootstrap_check_timeout_s)
        ask = BootstrapPeersQuery(req_id=self._next_req, reply_node=self.env.node, reply_actor=self.name)
        for node in sorted(others):
            self.send(node, self.name, ask)

    def _bootstrap_peers_reply(self, m: BootstrapPeersReply) -> None:
        check = self._boot_check
        if check is None or m.req_id != check[0] or self.bootstrapped:
            return
        if m.has_peers:
            # Nomad's "Existing Raft peers reported by server, disabling bootstrap mode": this server
            # is joining a running cluster, whose leader adds it.
            self._boot_check = None
            self.bootstrapped = True
            self.stats["bootstrap_skipped"] += 1
            log.info("%s: existing Raft peers reported by %s, disabling bootstrap mode", self.env.node,
                     m.server)
            return
        check[2].discard(m.server)
        if not check[2]:
            self._boot_check = None
            self._bootstrap(check[1])

    def _bootstrap(self, chosen: tuple[tuple[str, str], ...]) -> None:
        self.bootstrapped = True
        if self.info is not None and (self.info.voters or self.info.learners):
            return  # a configuration arrived meanwhile (a leader's)
        self.stats["bootstraps"] += 1
        ids, addrs = tuple(i for _, i in chosen), tuple(a for a, _ in chosen)
        # Logged once Raft has taken it: a server restarted with its data dir (whose RaftInfo has
        # not come yet) asks too, and Raft refuses -- it has state (Nomad: HasExistingState).
        self._boot_voters = ", ".join(a if a == i else f"{a} (ID {i})" for a, i in chosen)
        reply = ReplyTo(self.env, self.name, "bootstrap")
        self.send(self.env.node, self.raft,
                  Bootstrap(voters=ids, reply=reply, addresses=() if ids == addrs else addrs))

    def _reconcile(self) -> None:
        info = self.info
        if info is None or not info.is_leader:
            return
        cfg, voters, learners = _configuration(info)
        me = info.self_id or self.env.node
        alive_ids = {i for _, st, _, i in self.servers.values() if st == "alive"}
        for name in sorted(self.servers):
            addr, status, _, sid = self.servers[name]
            key = _member_id(sid, addr, cfg)
            if status == "alive" and key is None:
                stale = next((i for i, a in sorted(cfg.items()) if a == addr and i != sid and i != me), None)
                if stale is not None:
                    # Nomad's addRaftPeer: another ID at this address is a server that is gone (its
                    # data dir wiped, say): out first, or two members would share one address.
                    self.stats["removes"] += 1
                    log.info("%s: removing Raft server %s: server %s (ID %s) is now at its address %s",
                             self.env.node, stale, name, sid, addr)
                    self.send(self.env.node, self.raft, ChangeMembership(op="remove", node=stale, reply=None))
                    return
                self.stats["adds"] += 1
                log.info("%s: adding server %s (%s) to Raft", self.env.node, name,
                         addr if sid == addr else f"ID {sid} at {addr}")
                self.send(self.env.node, self.raft, ChangeMembership(
                    op="add_learner", node=sid, reply=None, address="" if sid == addr else addr))
                return  # one change at a time; the next reconcile does the next
            if (status == "alive" and key == addr and sid != addr and key != me and not learners
                    and len(voters) > 1 and self._others_alive(voters, cfg, key, me)):
                # Known by its address (a configuration from before IDs): Nomad's addRaftPeer
                # removes the entry with its address and adds it back by its ID, as a non-voter
                # promoted once stable.  One at a time: none while another is still a non-voter.
                self.stats["removes"] += 1
                log.info("%s: server %s is in Raft by its address %s: removing it to add it back by its "
                         "ID %s", self.env.node, name, addr, sid)
                self.send(self.env.node, self.raft, ChangeMembership(op="remove", node=addr, reply=None))
                return
            if status == "alive" and key == sid and cfg[sid] != addr:
                # Nomad's addRaftPeer: a known server ID at a new address (an IP changed on a
                # reboot, a new bind_addr) keeps its place with the new address.
                self.stats["readdressed"] = self.stats.get("readdressed", 0) + 1
                log.info("%s: server %s (ID %s) is now at %s, was %s: updating its Raft address",
                         self.env.node, name, sid, addr, cfg[sid])
                self.send(self.env.node, self.raft, ChangeMembership(op="address", node=sid, reply=None,
                                                                     address=addr))
                return
            dead = status == "failed" and key in self._prune
            if (status in GONE or dead) and key is not None and key != me and key not in alive_ids:
                self.stats["removes"] += 1
                self.stats["dead_removed"] += int(dead)
                why = "autopilot: the server is dead" if dead else status
                log.info("%s: removing server %s (%s) from Raft: %s", self.env.node, name, addr, why)
                self.send(self.env.node, self.raft, ChangeMembership(op="remove", node=key, reply=None))
                if dead and self.gossip:
                    # Nomad's RemoveFailedServer: a serf force-leave, so the member is "left" (reaped
                    # after the tombstone timeout) rather than "failed" for the 72 h reconnect
                    # timeout; one still running refutes it and is added again.
                    self.send(self.env.node, self.gossip, ForceLeave(name=name))
                return

    def _others_alive(self, voters: set[str], cfg: dict[str, str], leaving: str, me: str) -> bool:
        """Every voter but *leaving* and this leader is alive in gossip (by ID or address): removing
        *leaving* to re-add it by its ID shrinks the quorum's pool, which a down voter could leave
        without a majority (3 voters, one down: the remaining two must both answer)."""
        alive = {x for a, st, _, i in self.servers.values() if st == "alive" for x in (a, i)}
        return all(v in alive or cfg.get(v, v) in alive for v in voters if v not in (leaving, me))

    # ------------------------------------------------------------ the replicated configuration
    def _watch_config(self) -> None:
        """A blocking query on the replicated configuration: answered on a change, or after config_watch_s."""
        wait = self.agent_ap.config_watch_s
        self._config_watch_due = self.env.now() + wait + 5.0
        self.send(self.env.node, self.raft, Watch(
            tables=(ap_cfg.TABLE,), min_index=self.config_index, timeout_s=wait,
            reply=ReplyTo(self.env, self.name, "ap-config"), query=_config_copy))

    def _raft_reply(self, m: RaftReply) -> None:
        if m.tag == "bootstrap":
            if m.ok:
                log.info("%s: found %d servers, bootstrapped the cluster with %s", self.env.node, self.expect,
                         self._boot_voters)
            else:  # (still counted in stats: the checkers look for any attempt)
                log.debug("%s: not bootstrapping: %s", self.env.node, m.error)
        elif m.tag == "ap-config":
            if m.ok:
                index, rec = m.value
                moved = index > self.config_index
                self._follow_config(index, rec)
                if moved:
                    self._watch_config()
                else:
                    # Answered without a change: at its timeout, or at once when Raft holds
                    # too many watches (max_watches) -- asking again now would loop with it.
                    # The next reconcile tick asks again.
                    self._config_watch_due = self.env.now()
            else:  # Raft refused (stopping, say): try again on the next reconcile tick
                self._config_watch_due = self.env.now()
        elif m.tag == "ap-seed":
            self._seeding = False
            if not m.ok:
                log.debug("%s: autopilot configuration not written: %s", self.env.node, m.error)

    def _follow_config(self, index: int, rec: dict[str, Any] | None) -> None:
        self.config_index = index
        self.config_replicated = rec is not None
        ap = self.agent_ap.following(rec)
        if ap != self.ap:
            log.info("%s: autopilot configuration now: cleanup_dead_servers=%s last_contact_threshold=%gs "
                     "max_trailing_logs=%d min_quorum=%d server_stabilization_time=%gs", self.env.node,
                     ap.cleanup_dead_servers, ap.last_contact_threshold_s, ap.max_trailing_logs,
                     ap.min_quorum, ap.server_stabilization_time_s)
        self.ap = ap
        self._maybe_seed_config()

    def _maybe_seed_config(self) -> None:
        """A leader that knows of no replicated configuration writes its agent's (if none was meanwhile)."""
        info = self.info
        if (not self.agent_ap.replicated or self._seeding or self.config_replicated or info is None
                or not info.is_leader):
            return
        self._seeding = True
        self.send(self.env.node, self.raft, Propose(
            data=command("autopilot_set_config", config=self.agent_ap.record(), cas=0),
            reply=ReplyTo(self.env, self.name, "ap-seed")))

    # ------------------------------------------------------------ autopilot
    def _prune_dead(self) -> None:
        """Nomad/raft-autopilot pruneDeadServers: pick the failed servers the reconcile loop removes."""
        info = self.info
        self._prune = set()
        if info is None or not info.is_leader or not self.ap.cleanup_dead_servers:
            return
        cfg, all_voters, all_learners = _configuration(info)
        me = info.self_id or self.env.node
        alive_ids = {i for _, st, _, i in self.servers.values() if st == "alive"}
        failed = sorted({k for a, st, _, i in self.servers.values() if st == "failed"
                         and (k := _member_id(i, a, cfg)) is not None and k != me and k not in alive_ids})
        learners = [a for a in failed if a in all_learners]
        voters = [a for a in failed if a in all_voters]
        self._prune.update(learners)
        most = (len(info.voters) - 1) // 2
        floor = self.ap.min_quorum
        if voters and len(voters) <= most and len(info.voters) - len(voters) >= floor:
            self._prune.update(voters)
        elif voters and len(voters) <= most:
            log.warning("%s: autopilot: not removing %d dead voters: %d of %d voters would remain, "
                        "min_quorum is %d", self.env.node, len(voters), len(info.voters) - len(voters),
                        len(info.voters), floor)
        elif voters:
            log.warning("%s: autopilot: not removing %d dead voters: at most %d of %d may go",
                        self.env.node, len(voters), most, len(info.voters))
        if self._prune:
            self._reconcile()

    def _health(self, h: RaftHealth) -> None:
        """Nomad's server health (raft-autopilot isHealthy) from Raft's view and gossip's."""
        if not h.is_leader:
            return
        ap, now = self.ap, self._wall()
        me = h.leader  # the leader's Raft ID: this server's
        cfg = dict(h.addresses) or {sid: sid for sid, *_ in h.servers}
        status_of = {}
        for name, (addr, st, _, i) in sorted(self.servers.items()):
            key = _member_id(i, addr, cfg)
            if key is not None and (key not in status_of or st == "alive"):
                status_of[key] = (name, st)
        leader_term = next((t for sid, _, _, t, _ in h.servers if sid == me), h.term)
        rows, healthy_voters, voters = [], 0, 0
        for sid, voter, match, last_term, age in h.servers:
            name, serf = status_of.get(sid, (sid, "alive" if sid == me else "none"))
            addr = cfg.get(sid, sid)
            trailing = h.last_index - match
            ok = serf == "alive" and (sid == me or (
                0 <= age <= ap.last_contact_threshold_s and last_term == leader_term
                and trailing <= ap.max_trailing_logs))
            if ok:
                self._stable_since.setdefault(sid, now)
            else:
                self._stable_since.pop(sid, None)
            voters += voter
            healthy_voters += voter and ok
            rows.append({"ID": sid, "Name": name, "Address": addr, "SerfStatus": serf,
                         "Version": self.builds.get(addr, ""),
                         "Leader": sid == me, "Voter": voter,
                         "LastContact": _go_duration(max(0.0, age)) if sid != me else "0s",
                         "LastTerm": last_term, "LastIndex": match, "Healthy": ok,
                         "StableSince": _rfc3339(self._stable_since.get(sid, 0.0))})
        quorum = voters // 2 + 1
        self.health = {"Healthy": all(r["Healthy"] for r in rows), "Leader": me,
                       "FailureTolerance": max(0, healthy_voters - quorum),
                       "Voters": [r["ID"] for r in rows if r["Voter"]], "Servers": rows}

    def _get_health(self, reply: Any) -> None:
        info = self.info
        if info is not None and info.is_leader:
            if self.health is None:
                # Just elected: nothing measured yet.
                reply.set_exception((RuntimeError, RuntimeError("autopilot health not yet known"), None))
            else:
                reply.set(self.health)
            return
        if info is None or not info.leader:
            reply.set_exception((RuntimeError, RuntimeError(NOT_LEADER_HEALTH), None))
            return
        self._next_req += 1
        self._health_waits[self._next_req] = (reply, self.env.now() + self.ap.health_forward_timeout_s)
        ask = AutopilotHealthRequest(req_id=self._next_req, reply_node=self.env.node, reply_actor=self.name)
        self.send(info.leader, self.name, ask)

    def _forwarded_health(self, m: AutopilotHealthReply) -> None:
        waiting = self._health_waits.pop(m.req_id, None)
        if waiting is None:
            return
        reply = waiting[0]
        if not m.ok:
            reply.set_exception((RuntimeError, RuntimeError(NOT_LEADER_HEALTH), None))
            return
        try:
            reply.set(msgpack.unpackb(m.report, raw=False))
        except (ValueError, msgpack.UnpackException) as exc:
            err = RuntimeError(f"bad health report from the leader: {exc}")
            reply.set_exception((RuntimeError, err, None))

    def _expire_health_waits(self) -> None:
        now = self.env.now()
        for rid in sorted(self._health_waits):
            reply, deadline = self._health_waits[rid]
            if now >= deadline:
                del self._health_waits[rid]
                reply.set_exception((RuntimeError, RuntimeError("the leader did not answer in time"), None))


def _configuration(info: RaftInfo) -> tuple[dict[str, str], set[str], set[str]]:
    """Raft's configuration from a RaftInfo: ID -> address, the voters' IDs, the non-voters'."""
    if info.servers:
        return ({i: a for i, a, _ in info.servers}, {i for i, _, v in info.servers if v},
                {i for i, _, v in info.servers if not v})
    return ({v: v for v in info.voters + info.learners}, set(info.voters), set(info.learners))


def _member_id(sid: str, addr: str, cfg: dict[str, str]) -> str | None:
    """The configuration member that gossip's server (*sid* at *addr*) is, or None.

    By ID; else a member written before servers had IDs, whose ID is its address (*addr*):
    that is this server until it is known by its real ID (Raft protocol 2 -> 3).
    """
    if sid in cfg:
        return sid
    if cfg.get(addr) == addr:
        return addr
    return None


def _config_copy(state: Any) -> dict[str, Any] | None:
    """Runs in the Raft actor: a copy of the replicated autopilot configuration (None: none yet)."""
    rec = ap_cfg.current(state.tables)
    return dict(rec) if rec is not None else None


def _go_duration(seconds: float) -> str:
    """A Go time.Duration string, as Nomad's JSON shows LastContact (``12.5ms``, ``1.2s``)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}\u00b5s" if seconds else "0s"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def _rfc3339(t: float) -> str:
    """A time as Nomad's JSON shows it; never (0) is Go's zero time."""
    import datetime as dt

    if t <= 0:
        return "0001-01-01T00:00:00Z"

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")
