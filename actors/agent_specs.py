"""The agent's children: the plug-in point of the actor tree.

:func:`child_specs` is a declarative list of :class:`ChildSpec` -- name,
class, arguments, role, restart and leave flags -- built from the config;
the :class:`~actors.agent.Agent` starts them in list order and stops them in
reverse.  A later capability (RaftPeer, GossipMember, HeartbeatMonitor,
ClientNode...) plugs in by adding its spec where it belongs in that order;
out-of-tree plug-ins and tests append a factory to :data:`EXTRA_CHILD_SPECS`.

Also here: :class:`AgentContext`, what the process hands the agent besides
the config (identity, addresses, the metrics registry, the process edge),
and :class:`Supervision`, the supervisor's restart and stop limits.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.agent_messages import ProcessHooks
from actors.metrics import Metrics, RuntimeStats, Sampler
from runtime.config import Config
from runtime.version import VERSION  # the release this agent reproduces (NOMAD.md)

__all__ = ["EXTRA_CHILD_SPECS", "VERSION", "AgentAddrs", "AgentContext", "ChildSpec", "SpecFactory",
           "Supervision", "child_specs"]


Role = Literal["server", "client", "both"]

log = logging.getLogger("agent")


@dataclass(frozen=True, slots=True, kw_only=True)
class Supervision:
    """Restart and stop limits of the supervisor (not Nomad keys; Nomad has no supervisor)."""

    # Restarts of one child allowed within restart_window_s before the agent
    # gives up and exits 1.  A child failing five times a minute fails for a
    # reason a restart will not fix (port taken, disk full); more restarts
    # would only hide it.  (Erlang/OTP defaults to 1 per 5 s, Akka to 10 per minute.)
    restart_max: int = 5
    restart_window_s: float = 60.0
    # First restart delay, doubled per restart within the window up to the
    # cap: a child that fails on its first message would otherwise spin.
    restart_backoff_s: float = 0.1
    restart_backoff_max_s: float = 5.0
    # A child not stopped after this is left behind (the process exit reaps
    # it) so one wedged actor cannot hold the shutdown; Nomad's own graceful
    # timeout is 5 s.
    child_stop_timeout_s: float = 5.0
    # A dev agent's stop first destroys its allocations (Destroy): the tasks'
    # kill timeouts bound that (client.max_kill_timeout caps them); this much
    # more covers the SIGKILL after one and the reaping.  Past it the agent
    # stops anyway: a wedged task must not hold the process.
    destroy_margin_s: float = 5.0
    # Liveness sweep: catches a child that died without a ChildFailed (pykka
    # stops an actor whose on_start raises without calling on_failure).
    watch_interval_s: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How the agent starts one child: ``cls(env, name, *args, **kwargs)``.

    A child's ``on_start`` must not raise: pykka then stops it without
    ``on_failure``, so only the liveness sweep notices.  Fallible set-up
    (binding, opening files) belongs in the first message, told to itself.
    """

    name: str  # the actor's name on this node (env.send / env.lookup)
    cls: type  # a runtime.actor.NodeActor subclass
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    role: Role = "both"  # started only when that role is enabled
    restartable: bool = True  # False: its failure stops the agent (exit 1)
    leaves: bool = False  # gets Leave on a graceful leave and answers LeaveDone
    reloads: bool = False  # gets ConfigReloaded after a reload
    destroys: bool = False  # gets Destroy before the children stop and answers Destroyed

    def wanted(self, config: Config) -> bool:
        return (self.role == "both" or (self.role == "server" and config.server.enabled)
                or (self.role == "client" and config.client.enabled))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAddrs:
    """Bind and advertise addresses, ``ip:port`` (resolved once by the process)."""

    http_bind: str = "127.0.0.1:4646"
    rpc_bind: str = "127.0.0.1:4647"
    serf_bind: str = "127.0.0.1:4648"
    http_adv: str = "127.0.0.1:4646"
    rpc_adv: str = "127.0.0.1:4647"
    serf_adv: str = "127.0.0.1:4648"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentContext:
    """What the process gives the agent beyond the config: identity and edges."""

    hooks: ProcessHooks
    metrics: Metrics
    node_id: str = ""  # the server's NodeID (<data_dir>/server/node-id); "" on clients
    client_id: str = ""  # the client's node ID (<state_dir>/client-id); "" on servers
    client_secret_id: str = ""  # and its secret (<state_dir>/secret-id)
    addrs: AgentAddrs = field(default_factory=AgentAddrs)
    version: str = VERSION
    http_listener: Any = None  # a bound socket for HttpApi; None: no HTTP API (simulator)
    sampler: Sampler | None = None  # runtime gauges; None: no RuntimeStats child
    runtime_info: Callable[[], dict[str, str]] | None = None  # stats.runtime of /v1/agent/self
    supervision: Supervision = field(default_factory=Supervision)
    raft_storage: Any = None  # an opened RaftStorage for a server; None: no Raft peer
    raft_bootstrap: tuple[str, ...] = ()  # voters' addresses to bootstrap with (bootstrap_expect=1: its own)
    # Encodes Raft snapshots off the Raft actor's turn (runtime.snapshotter.ForkSnapshotter);
    # None: in the turn, the result delivered at once (simulator specs).
    raft_snapshotter: Any = None
    # The server's serf snapshot (runtime.serf_snapshot.SerfSnapshot, at
    # <data_dir>/server/serf/snapshot); None: none (-dev, the simulator).
    serf_snapshot: Any = None
    client_state_dir: str | None = None  # the client's state dir; None: no client actors (simulator specs)
    # Gossip encryption (server.encrypt / serf.keyring): the keys, primary
    # first (empty: off), and the edge hook that applies a changed list to the
    # transport and persists it (runtime.gossip_crypto.GossipCrypto.install).
    gossip_keyring: tuple[str, ...] = ()
    gossip_keyring_sink: Callable[[tuple[str, ...]], None] | None = None
    # The tls block's edge (runtime.tls.TlsEdge): the HTTP server wraps its
    # sockets with it, and the agent reloads it on SIGHUP; None: no TLS.
    tls: Any = None


SpecFactory = Callable[[Config, AgentContext], list[ChildSpec]]
# Extra children from plug-ins and tests, started after the built-in ones and
# before the HTTP API.
EXTRA_CHILD_SPECS: list[SpecFactory] = []


def child_specs(config: Config, ctx: AgentContext) -> list[ChildSpec]:
    """The agent's children in start order (they stop in reverse).

    Add a capability by adding its spec here, in dependency order, e.g.::

        ChildSpec(name="raft", cls=RaftPeer, args=(...), role="server", leaves=True,
                  restartable=False, reloads=True)
        ChildSpec(name="gossip", cls=GossipMember, args=(...), role="server", leaves=True)
        ChildSpec(name="heartbeats", cls=HeartbeatMonitor, role="server")
        ChildSpec(name="client", cls=ClientNode, args=(...), role="client", leaves=True)

    The signal router comes first so signals work while the rest starts and
    until the end of the shutdown; the HTTP API comes last, so it answers only
    once what it asks exists, and stops first.
    """
    # Imported here: the HTTP edge pulls in gevent's WSGI server, which
    # simulations (which pass their own specs) never need.
    from actors.http_api import HttpApi, HttpContext
    from actors.signals import SignalRouter

    specs = [ChildSpec(name="signals", cls=SignalRouter, args=(ctx.hooks, ctx.metrics))]
    if ctx.sampler is not None:
        specs.append(ChildSpec(name="runtime-stats", cls=RuntimeStats,
                               args=(ctx.metrics, ctx.sampler,
                                     config.telemetry.collection_interval_s)))
    if config.server.enabled and ctx.raft_storage is not None:
        specs.extend(server_specs(config, ctx))
    if config.client.enabled and ctx.client_state_dir is not None:
        specs.extend(client_specs(config, ctx))
    for factory in EXTRA_CHILD_SPECS:
        specs.extend(factory(config, ctx))
    if ctx.http_listener is not None:
        host, port = ctx.http_listener.getsockname()[:2]
        reset_file = (os.path.join(config.data_dir, "server", "acl-bootstrap-reset")  # Nomad's, on servers
                      if config.server.enabled and config.data_dir else "")
        http = HttpContext(metrics=ctx.metrics, prometheus=config.telemetry.prometheus_metrics,
                           response_headers=config.http_api_response_headers,
                           enable_debug=config.enable_debug, stacks=ctx.hooks.dump_stacks,
                           runtime_info=ctx.runtime_info, bind=(host, port),
                           max_conns_per_client=config.limits.http_max_conns_per_client,
                           acl_enabled=config.acl.enabled, acl_token_ttl_s=config.acl.token_ttl_s,
                           acl_policy_ttl_s=config.acl.policy_ttl_s, acl_role_ttl_s=config.acl.role_ttl_s,
                           acl_token_min_expiration_ttl_s=config.acl.token_min_expiration_ttl_s,
                           acl_token_max_expiration_ttl_s=config.acl.token_max_expiration_ttl_s,
                           acl_bootstrap_reset_file=reset_file,
                           tls=ctx.tls if ctx.tls is not None and ctx.tls.http else None,
                           https_handshake_timeout_s=config.limits.https_handshake_timeout_s,
                           alloc_logs=_alloc_logs(config, ctx))
        specs.extend(forwarding_specs(config, http))
        specs.append(ChildSpec(name="http", cls=HttpApi, args=(ctx.http_listener, http)))
    return specs


def _alloc_logs(config: Config, ctx: Any) -> Any:
    if not (config.client.enabled and ctx.client_state_dir is not None):
        return None
    from actors.client.alloc_logs import AllocLogs

    return AllocLogs(_alloc_root(config, ctx))


def _alloc_root(config: Config, ctx: Any) -> str:
    """client.alloc_dir, else ``alloc`` beside the client's state dir (Nomad's <data_dir>/alloc)."""
    return config.client.alloc_dir or os.path.join(os.path.dirname(os.path.abspath(ctx.client_state_dir)),
                                                   "alloc")


def forwarding_specs(config: Config, http: Any) -> list[ChildSpec]:
    """Client-only agents relay server-bound API requests to a server over RPC (actors.http_forward):
    the server runs them through its own HTTP handlers, the client's forwarder waits for the answer."""
    from actors.http_forward import ENDPOINT, FORWARDER, HttpEndpoint, HttpForwarder

    if config.server.enabled:
        return [ChildSpec(name=ENDPOINT, cls=HttpEndpoint, role="server", args=(http,))]
    return [ChildSpec(name=FORWARDER, cls=HttpForwarder, role="client")]


def _with_port(addr: str, default_port: int) -> str:
    """``host`` → ``host:port`` (Nomad defaults a join address to the serf port)."""
    return addr if addr.rsplit(":", 1)[-1].isdigit() and ":" in addr else f"{addr}:{default_port}"


def server_specs(config: Config, ctx: AgentContext) -> list[ChildSpec]:
    """A server's Raft peer, the membership reconciler and the gossip member.

    Raft first, so gossip events find it; gossip last, so a stop leaves gossip
    while Raft still runs.  Raft is not restartable: its store is closed on
    stop, and a Raft peer that failed has met a bug or a disk error that a
    restart would hide.

    Gossip is Nomad's one serf pool: the servers of every region, WAN-tuned
    (``server.gossip_profile``), named ``<name>.<region>`` and tagged with
    their region, so joining a server of another region federates the two;
    ServerMembership keeps Raft per region.  ``http_addr`` (not a Nomad tag)
    is where ``?region=`` requests are forwarded.  A start-up join that
    fails for good tells the agent, which exits 1.
    """
    from actors.gossip.config import profile
    from actors.gossip.member import LAN_POOL, GossipMember
    from actors.raft.membership import SERVER_ROLE, AutopilotConfig, ServerMembership
    from actors.raft.peer import RaftPeer, raft_config
    from actors.scheduler.broker import BrokerConfig, EvalBroker, enabled_schedulers, num_workers_for
    from actors.scheduler.drainer import NodeDrainer
    from actors.scheduler.periodic import PERIODIC, PeriodicDispatcher
    from actors.server.alloc_endpoint import AllocEndpoint
    from actors.server.heartbeat import HeartbeatConfig, HeartbeatMonitor
    from actors.server.job_gc import JobGC, JobGCConfig
    from actors.server.node_endpoint import NodeEndpoint
    from actors.server.node_gc import NodeGC, NodeGCConfig
    from actors.server.replication import REPLICATION, ReplicationConfig, Replicator
    from actors.server.var_locks import VAR_LOCKS, VarLockReaper

    srv = config.server
    join = srv.server_join
    start_join = tuple(_with_port(a, 4648) for a in (join.start_join or join.retry_join))
    # Nomad's server tags (NOMAD.md §7.1); rpc_addr carries the port too, as Raft addresses here do.
    tags = {"role": SERVER_ROLE, "region": config.region, "dc": config.datacenter,
            "rpc_addr": ctx.addrs.rpc_adv, "port": ctx.addrs.rpc_adv.rsplit(":", 1)[1],
            "build": ctx.version, "vsn": "1", "raft_vsn": "3", "id": ctx.node_id,
            "http_addr": ctx.addrs.http_adv}
    if srv.bootstrap_expect > 0:
        tags["expect"] = str(srv.bootstrap_expect)
    if srv.bootstrap_expect == 1:
        tags["bootstrap"] = "1"
    # Raft knows this server by its node ID (Raft protocol 3), at its RPC address: restarted at
    # another address, it still finds itself in its configuration.
    raft_id = ctx.node_id or ctx.addrs.rpc_adv
    boot_ids = tuple(raft_id if a == ctx.addrs.rpc_adv else a for a in ctx.raft_bootstrap)
    return [
        ChildSpec(name="raft", cls=RaftPeer, role="server", restartable=False, leaves=True, reloads=True,
                  kwargs=(("storage", ctx.raft_storage), ("snapshotter", ctx.raft_snapshotter),
                          ("config", raft_config(
                              srv.raft_multiplier, config.autopilot.server_stabilization_time_s,
                              config.autopilot.max_trailing_logs, snapshot_threshold=srv.raft_snapshot_threshold,
                              snapshot_interval_s=srv.raft_snapshot_interval_s,
                              trailing_logs=srv.raft_trailing_logs)),
                          ("bootstrap", boot_ids), ("bootstrap_addresses", ctx.raft_bootstrap),
                          ("server_id", raft_id), ("state", _server_state(srv, ctx.metrics)),
                          ("leadership_subscribers", ("server-membership", "node-endpoint", "heartbeats",
                                                      "node-gc", "job-gc", "eval-broker", "drainer",
                                                      PERIODIC, VAR_LOCKS, REPLICATION)),
                          ("metrics", ctx.metrics))),
        ChildSpec(name="node-endpoint", cls=NodeEndpoint, role="server",
                  kwargs=(("servers", (ctx.addrs.rpc_adv,)), ("wall_clock", time.time),
                          ("scheduler_defaults", srv.default_scheduler_config.as_api()
                           if srv.default_scheduler_config else None), ("root_key", True))),
        ChildSpec(name="heartbeats", cls=HeartbeatMonitor, role="server",
                  kwargs=(("config", HeartbeatConfig.from_server(srv)), ("metrics", ctx.metrics))),
        ChildSpec(name="node-gc", cls=NodeGC, role="server",
                  kwargs=(("config", NodeGCConfig.from_server(srv)), ("wall_clock", time.time))),
        ChildSpec(name="job-gc", cls=JobGC, role="server",
                  kwargs=(("config", JobGCConfig.from_server(srv, acl_enabled=config.acl.enabled,
                                                              region=config.region)),
                          ("wall_clock", time.time))),
        ChildSpec(name=REPLICATION, cls=Replicator, role="server",
                  kwargs=(("config", ReplicationConfig(
                      region=config.region, authoritative_region=srv.authoritative_region,
                      token=config.acl.replication_token, acl_enabled=config.acl.enabled)),)),
        ChildSpec(name=VAR_LOCKS, cls=VarLockReaper, role="server", kwargs=(("wall_clock", time.time),)),
        ChildSpec(name="alloc-endpoint", cls=AllocEndpoint, role="server",
                  kwargs=(("wall_clock", time.time),)),
        ChildSpec(name="eval-broker", cls=EvalBroker, role="server", reloads=True,
                  kwargs=(("config", BrokerConfig(
                      num_workers=num_workers_for(srv.num_schedulers),
                      schedulers=enabled_schedulers(srv.enabled_schedulers),
                      leader_stats_interval_s=config.telemetry.collection_interval_s,
                      skip_dispatched_summaries=config.telemetry.disable_dispatched_job_summary_metrics)),
                          ("wall_clock", time.time), ("metrics", ctx.metrics))),
        ChildSpec(name="drainer", cls=NodeDrainer, role="server", kwargs=(("wall_clock", time.time),)),
        ChildSpec(name=PERIODIC, cls=PeriodicDispatcher, role="server", kwargs=(("wall_clock", time.time),)),
        ChildSpec(name="server-membership", cls=ServerMembership, role="server",
                  kwargs=(("region", config.region), ("bootstrap_expect", srv.bootstrap_expect),
                          ("autopilot", AutopilotConfig.from_config(config.autopilot)),
                          ("wall_clock", time.time), ("server_id", raft_id), ("gossip", LAN_POOL))),
        ChildSpec(name=LAN_POOL, cls=GossipMember, role="server", leaves=True,
                  kwargs=(("member_name", f"{config.name}.{config.region}"),
                          ("config", _gossip_config(profile(srv.gossip_profile), ctx)),
                          ("tags", tags), ("subscribers", ((ctx.addrs.rpc_adv, "server-membership"),)),
                          ("advertise", ctx.addrs.serf_adv), ("start_join", start_join),
                          ("retry_join_interval_s", join.retry_interval_s if join.retry_join else 0.0),
                          ("retry_max", join.retry_max), ("report_to", "agent"),
                          ("keyring", ctx.gossip_keyring), ("keyring_sink", ctx.gossip_keyring_sink),
                          ("snapshot", ctx.serf_snapshot), ("metrics", ctx.metrics),
                          ("metrics_interval_s", config.telemetry.collection_interval_s))),
    ]


def _gossip_config(cfg: Any, ctx: AgentContext) -> Any:
    """With a keyring every packet grows by the encryption overhead: leave it room in the budget."""
    if not ctx.gossip_keyring:
        return cfg
    from runtime.gossip_crypto import OVERHEAD

    return cfg.with_(encrypt_overhead_bytes=OVERHEAD)


def client_specs(config: Config, ctx: AgentContext) -> list[ChildSpec]:
    """A client's fingerprinter and node (registration, heartbeats).

    With no ``client.servers`` a client that is also a server (``-dev``) talks
    to its own RPC address.  Production time is the wall clock: node records
    carry timestamps every server must agree on.
    """
    from actors.client.alloc_runner import AllocRunner, AllocRunnerConfig, DiskAllocDirs, FileAllocStore
    from actors.client.alloc_sync import AllocSync, AllocSyncConfig
    from actors.client.checks import CHECK_RUNNER, CheckRunner
    from actors.client.disk_migrate import HttpSnapshotFetcher
    from actors.client.drivers import RawExecDriver, env_denylist
    from actors.client.exec_driver import DEFAULT_CHROOT_ENV, ExecDriver, exec_plugin_config
    from actors.client.fingerprint import (
        FingerprintConfig,
        Fingerprinter,
        PsutilProbe,
        TotalsOverride,
        driver_health,
    )
    from actors.client.messages import Resources
    from actors.client.node import (
        ClientNode,
        ClientNodeConfig,
        FileIdentityStore,
        MemoryIdentityStore,
        read_host_uuid,
    )
    from actors.client.node_meta import FileMetaStore, MemoryMetaStore
    from actors.client.stats import ClientStats
    from runtime.host_stats import HostStatsSampler
    from runtime.artifacts import HttpArtifactFetcher
    from runtime.probes import SocketProber

    assert ctx.client_state_dir is not None
    c, tel = config.client, config.telemetry
    r = c.reserved
    from runtime.config import PLUGIN_KEYS, plugin_config

    for name, _ in config.plugin:
        if name not in PLUGIN_KEYS:
            log.warning('plugin "%s": this agent has no such plugin (its task drivers: %s); block ignored',
                        name, ", ".join(sorted(PLUGIN_KEYS)))
    raw_exec = plugin_config(config, "raw_exec").get("enabled")
    # plugin "exec" and client.chroot_env were validated with the config (runtime.config._check_exec).
    # client.options "env.denylist": the agent's variables no raw_exec or exec task gets (Nomad's default).
    deny = env_denylist(c.options)
    exec_driver = ExecDriver(plugin=exec_plugin_config(plugin_config(config, "exec")), env_denylist=deny,
                             chroot_env=tuple(sorted(c.chroot_env, key=lambda e: (e[1], e[0])))
                             or DEFAULT_CHROOT_ENV)  # by path in the chroot: a parent mounts first
    health = driver_health(c.options, is_root=os.geteuid() == 0, raw_exec_enabled=raw_exec)
    drivers = tuple(sorted(name for name, h in health.items() if h.healthy))
    if not health["exec"].healthy:  # as Nomad's client logs a driver it cannot use
        log.info('driver "exec": not %s: %s', "healthy" if health["exec"].detected else "detected",
                 health["exec"].description)
    totals = TotalsOverride(cpu_total_compute=c.cpu_total_compute, memory_total_mb=c.memory_total_mb,
                            disk_total_mb=c.disk_total_mb, disk_free_mb=c.disk_free_mb)
    from runtime import sockaddr

    # The drivers are fingerprinted again on every probe (Nomad's driver plugins: every 30 s).
    probe = PsutilProbe(ctx.client_state_dir, network_interface=c.network_interface, drivers=drivers,
                        health=functools.partial(driver_health, c.options, is_root=os.geteuid() == 0,
                                                 raw_exec_enabled=raw_exec),
                        interfaces=sockaddr.host_interfaces if c.host_network else None)
    node_cfg = ClientNodeConfig.from_config(config, name=config.name or "", http_addr=ctx.addrs.http_adv)
    import dataclasses

    if not node_cfg.servers and config.server.enabled:
        node_cfg = dataclasses.replace(node_cfg, servers=(ctx.addrs.rpc_adv,))
    if not c.no_host_uuid:
        node_cfg = dataclasses.replace(node_cfg, host_uuid=read_host_uuid())
    if config.dev_mode:
        # Not persisted, but the IDs the process made at start (ctx.client_id is
        # what /v1/agent/self reports) are the ones the node registers with.
        identity: Any = MemoryIdentityStore(
            data={"node_id": ctx.client_id, "secret_id": ctx.client_secret_id} if ctx.client_id else {})
    else:
        identity = FileIdentityStore(ctx.client_state_dir)
    # Dynamic node meta (/v1/client/metadata) lives next to the identity,
    # so a restarted agent is the same node with the same meta.  Dev mode
    # keeps its state in memory (the ChildSpec holds the store, so a
    # restarted ClientNode finds it), as it does its identity.
    meta_store: Any = MemoryMetaStore() if config.dev_mode else FileMetaStore(ctx.client_state_dir)
    alloc_root = _alloc_root(config, ctx)
    drain = c.drain_on_shutdown
    # Nomad drains on shutdown only through Agent.Leave, never in dev mode (NOMAD.md §5.3).
    sync_cfg = AllocSyncConfig(drain_deadline_s=drain.deadline_s if drain is not None and not config.dev_mode
                               else None,
                               drain_ignore_system=bool(drain and drain.ignore_system_jobs))
    return [
        ChildSpec(name="fingerprint", cls=Fingerprinter, role="client",
                  kwargs=(("probe", probe),
                          ("config", FingerprintConfig(nomad_version=ctx.version, totals=totals,
                                                       reserved=Resources(cpu_mhz=r.cpu, memory_mb=r.memory,
                                                                          disk_mb=r.disk),
                                                       host_networks=c.host_network)))),
        # Before the AllocRunner, which tells it the checks of the allocations it restores.
        ChildSpec(name=CHECK_RUNNER, cls=CheckRunner, role="client",
                  kwargs=(("prober", SocketProber()), ("wall_clock", time.time), ("runner", "alloc-runner"))),
        # Dev mode: stopping the agent destroys every allocation first, as Nomad's client.Shutdown does
        # (its tasks are killed; the data dir they ran in is removed with the agent's temporary one).
        ChildSpec(name="alloc-runner", cls=AllocRunner, role="client", destroys=config.dev_mode,
                  kwargs=(("driver_registry", {"raw_exec": RawExecDriver(env_denylist=deny),
                                               "exec": exec_driver}),
                          ("state", FileAllocStore(ctx.client_state_dir)), ("alloc_root", alloc_root),
                          ("reporter", "alloc-sync"), ("alloc_dirs", DiskAllocDirs(alloc_root)),
                          ("checker", CHECK_RUNNER), ("fetcher", HttpArtifactFetcher()),
                          ("wall_clock", time.time),  # templates' timestamp
                          # Pulls a migrating ephemeral disk from the previous node's HTTP API (HTTPS
                          # with this agent's certificate when tls.http is on, as the client relay).
                          ("migrator", HttpSnapshotFetcher(ctx.tls if ctx.tls is not None and ctx.tls.http
                                                           else None)),
                          ("config", AllocRunnerConfig(
                              gc_interval_s=c.gc_interval_s, gc_max_allocs=c.gc_max_allocs,
                              max_kill_timeout_s=c.max_kill_timeout_s,
                              default_kill_timeout_s=min(5.0, c.max_kill_timeout_s),
                              gc_disk_usage_threshold=c.gc_disk_usage_threshold,
                              gc_inode_usage_threshold=c.gc_inode_usage_threshold,
                              host_volumes=tuple(sorted(c.host_volume)),
                              template_wait_s=c.template.block_query_wait_s,
                              template_quiet_min_s=c.template.wait.min_s,
                              template_quiet_max_s=c.template.wait.max_s,
                              template_function_denylist=c.template.function_denylist,
                              template_retry_attempts=c.template.nomad_retry.attempts,
                              template_retry_backoff_s=c.template.nomad_retry.backoff_s,
                              template_retry_max_backoff_s=c.template.nomad_retry.max_backoff_s,
                              template_wait_bounds=(c.template.wait_bounds.min_s,
                                                    c.template.wait_bounds.max_s),
                              **_artifact_limits(c.artifact))))),
        ChildSpec(name="alloc-sync", cls=AllocSync, role="client", leaves=True,
                  kwargs=(("config", sync_cfg), ("wall_clock", time.time))),
        ChildSpec(name="client", cls=ClientNode, role="client",
                  kwargs=(("config", node_cfg), ("identity", identity), ("meta_store", meta_store),
                          ("listeners", ("alloc-runner", "alloc-sync", "client-stats")))),
        ChildSpec(name="client-stats", cls=ClientStats, role="client",
                  kwargs=(("metrics", ctx.metrics), ("datacenter", config.datacenter), ("node_class", c.node_class), ("node_pool", c.node_pool),
                          ("interval_s", tel.collection_interval_s),
                          ("host_sampler", HostStatsSampler(alloc_root) if tel.publish_node_metrics else None),
                          ("allocation_metrics", tel.publish_allocation_metrics))),
    ]


def _artifact_limits(art: Any) -> dict[str, Any]:
    """client.artifact as AllocRunnerConfig's fields; Nomad's 0 (no limit) is the largest int64."""
    from runtime.config import parse_size

    unlimited = 2**63 - 1
    return {"artifact_timeout_s": art.http_read_timeout_s,
            "artifact_max_bytes": parse_size(art.http_max_size) or unlimited,
            "artifact_max_unpacked_bytes": parse_size(art.decompression_size_limit) or unlimited,
            "artifact_max_unpacked_files": art.decompression_file_count_limit or unlimited}


def _server_state(srv: Any, metrics: Metrics | None = None) -> Any:
    """The server's state store; it makes events for /v1/event/stream unless enable_event_broker is off,
    and times each command it applies under Nomad's nomad.fsm.<type> names into *metrics*."""
    from actors.state.store import StateStore

    state = StateStore(job_tracked_versions=srv.job_tracked_versions)
    if metrics is not None:
        state.fsm_timing = (time.perf_counter, metrics)
    if srv.enable_event_broker:
        state.enable_events(srv.event_buffer_size)
    return state
