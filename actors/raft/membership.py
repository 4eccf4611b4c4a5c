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
  in the configuration as a non-voter; Raft promotes it once caught up.
* **departures** -- the leader removes a server that left gracefully, was
  force-left, or was reaped after failing.  A merely failed server stays (it
  may come back) until it is reaped.

The actor never blocks: it learns Raft's configuration from RaftInfo
messages (on leadership changes and in answer to InfoQuery).
"""

from __future__ import annotations

import logging
from typing import Any

from actors.raft.peer import Bootstrap, ChangeMembership, InfoQuery, RaftInfo
from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.server")

SERVER_ROLE = "nomad"  # the gossip "role" tag of a Nomad server
GONE = ("left", "reaped")


class ServerMembership(NodeActor):
    def __init__(self, env: Env, name: str, *, region: str, bootstrap_expect: int, raft: str = "raft",
                 reconcile_interval_s: float = 1.0) -> None:
        super().__init__(env, name)
        self.region = region
        self.expect = bootstrap_expect
        self.raft = raft
        # How often the leader re-checks gossip against Raft; Nomad reconciles
        # on every member event and every 60 s -- we do it each second so a
        # lost ChangeMembership is retried quickly.
        self.reconcile_interval_s = reconcile_interval_s
        self.servers: dict[str, tuple[str, str, int]] = {}  # name -> (rpc_addr, status, expect)
        self.info: RaftInfo | None = None
        self.bootstrapped = False
        self.stats = {"bootstraps": 0, "adds": 0, "removes": 0}

    def on_start(self) -> None:
        self.set_timer("reconcile", self.reconcile_interval_s)

    def on_timer(self, name: str) -> None:
        if name == "reconcile":
            self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
            self.set_timer("reconcile", self.reconcile_interval_s)

    def receive(self, message: Any) -> Any:
        kind = getattr(message, "kind", None)
        if kind is not None and hasattr(message, "tags"):
            self._member_event(message)
        elif isinstance(message, RaftInfo):
            self.info = message
            self._reconcile()
        elif message == "servers":
            return {n: {"rpc_addr": a, "status": s} for n, (a, s, _) in sorted(self.servers.items())}
        return None

    def _member_event(self, ev: Any) -> None:
        tags = dict(ev.tags)
        if tags.get("role") != SERVER_ROLE or tags.get("region") != self.region or not tags.get("rpc_addr"):
            return
        status = "reaped" if ev.kind == "member-reap" else ev.status
        expect = int(tags.get("expect", "0") or 0)
        self.servers[ev.name] = (tags["rpc_addr"], status, expect)
        self._maybe_bootstrap()
        self._reconcile()

    def _maybe_bootstrap(self) -> None:
        if self.bootstrapped or self.expect <= 0:
            return
        if self.info is not None and (self.info.voters or self.info.learners):
            self.bootstrapped = True  # Raft has a configuration already
            return
        alive = sorted(a for a, s, e in self.servers.values() if s == "alive" and e == self.expect)
        if len(alive) < self.expect:
            return
        voters = tuple(alive[: self.expect])
        self.bootstrapped = True
        if self.env.node not in voters:
            return  # the chosen servers bootstrap; the leader will add us
        log.info("%s: found %d servers, bootstrapping the cluster with %s", self.env.node, self.expect,
                 ", ".join(voters))
        self.stats["bootstraps"] += 1
        self.send(self.env.node, self.raft, Bootstrap(voters=voters, reply=None))

    def _reconcile(self) -> None:
        info = self.info
        if info is None or not info.is_leader:
            return
        members = set(info.voters) | set(info.learners)
        for name in sorted(self.servers):
            addr, status, _ = self.servers[name]
            if status == "alive" and addr not in members:
                self.stats["adds"] += 1
                log.info("%s: adding server %s (%s) to Raft", self.env.node, name, addr)
                self.send(self.env.node, self.raft, ChangeMembership(op="add_learner", node=addr, reply=None))
                return  # one change at a time; the next reconcile does the next
            if status in GONE and addr in members and addr != self.env.node:
                self.stats["removes"] += 1
                log.info("%s: removing server %s (%s) from Raft: %s", self.env.node, name, addr, status)
                self.send(self.env.node, self.raft, ChangeMembership(op="remove", node=addr, reply=None))
                return
