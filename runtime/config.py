"""The agent configuration: Nomad's config tree, in HCL, JSON or TOML, validated.

Files are read as Nomad reads them: ``*.hcl`` in HCL 1 (runtime/hcl1.py), so a
Nomad agent's own config file runs unchanged, and ``*.json``; TOML is this
project's own form of the same tree.  Key names are Nomad's HCL names
(DESIGN.md §1), so ``server { bootstrap_expect = 3 }`` is also ``[server]
bootstrap_expect = 3``.  Defaults are Nomad 2.0.6's
(``command/agent/config.go`` ``DefaultConfig``, ``nomad/config.go``); the
comment beside each field gives its source and reason.

**Durations.**  In files and flags a duration is a Go duration string
(``"10s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"0"``); a bare number is
rejected, because Nomad would read ``10`` as 10 nanoseconds.  In Python every
duration is a ``float`` of seconds in a field whose name ends in ``_s``; its
file key is the field name without ``_s`` (``heartbeat_grace_s`` is
``server.heartbeat_grace``).  Error messages and :func:`reloadable_diff` use
the file keys.

**Merging** (``-config`` files in order, then flags; Nomad ``Config.Merge``):
tables merge key by key; a key present later wins, even when it is false or
zero (Nomad ignores zero values there, so a later file cannot switch anything
off; we deviate on purpose).  ``client.servers`` is appended to and
``client.meta`` / ``client.options`` merge key by key, as in Nomad's
``ClientConfig.Merge``; every other list, notably ``server_join.start_join``
and ``retry_join``, is replaced (``ServerJoin.Merge``).

Maps are stored as sorted tuples of ``(key, value)`` pairs so a config is
immutable and hashable; ``dict(cfg.client.meta)`` gives the mapping back.
Flags and dev mode are in :mod:`runtime.config_flags`.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import dataclasses
import functools
import ipaddress
import math
import re
import stat
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.durations import format_duration, parse_duration

__all__ = [
    "Acl",
    "Addresses",
    "ArtifactConfig",
    "ClientConfig",
    "Config",
    "ConfigError",
    "DrainOnShutdown",
    "Limits",
    "Ports",
    "Reserved",
    "ServerConfig",
    "ServerJoin",
    "Telemetry",
    "Tls",
    "dev_config",
    "format_duration",
    "load_files",
    "parse_args",
    "parse_duration",
    "parse_size",
    "reloadable_diff",
    "to_dict",
    "validate",
]

conf = dataclass(frozen=True, slots=True, kw_only=True)

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF")  # command.go LevelFilter
MTLS_WARNING = "WARNING: mTLS is not configured - Nomad is not secure without mTLS!"
BOOTSTRAP_ONE_WARNING = "WARNING: Bootstrap mode enabled! Potentially unsafe operation."
BOOTSTRAP_EVEN_WARNING = (
    "WARNING: Number of bootstrap servers should ideally be set to an odd number."
)
GOSSIP_PROFILES = ("lan", "local", "test", "wan")  # actors.gossip.config.PROFILES
# syslog facilities (go-syslog's names; Python's SysLogHandler knows each).
SYSLOG_FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
                     "authpriv", "ftp", *(f"local{i}" for i in range(8)))
CONSUL_WARNING = ("WARNING: consul: this agent does not integrate with Consul; the consul block is ignored "
                  "(no auto-join, no service or check registration)")
NO_ROLE_ERROR = "Must specify either server, client or dev mode for the agent."
# What SIGHUP applies (NOMAD.md §2.3): Agent.Reload copies log_level and the
# TLS files and checks (Nomad reloads RPC and HTTP certificates; tls.http and
# tls.rpc switch listeners between protocols, so they need a restart);
# Server.Reload applies num_schedulers, the raft timeouts derived from
# raft_multiplier and the raft snapshot policy.  Everything else needs a restart.
RELOADABLE = frozenset({"log_level", "server.num_schedulers", "server.raft_multiplier",
                        "server.raft_snapshot_threshold", "server.raft_snapshot_interval",
                        "server.raft_trailing_logs",
                        "tls.ca_file", "tls.cert_file", "tls.key_file",
                        "tls.verify_server_hostname", "tls.verify_https_client", "tls.tls_min_version"})


class ConfigError(ValueError):
    """The configuration is unusable; the message is one line naming the key.

    Line breaks and other control characters in the values it quotes are
    escaped, so a hostile value cannot forge extra lines on the console.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


# -- field helpers: the metadata drives loading, merging, checking, output ----


def _f(default: Any, **meta: Any) -> Any:
    """A field with bounds (``ge``/``gt``/``le``) or flags (``secret``, ...)."""
    return field(default=default, metadata=meta)


def _dur(seconds: float, **meta: Any) -> Any:
    """A duration: float seconds here, a Go duration string in files."""
    return field(default=float(seconds), metadata={"dur": True, **meta})


def _seq(**meta: Any) -> Any:
    return field(default=(), metadata=meta)


def _map() -> Any:
    return field(default=(), metadata={"map": True})


def _sub(cls: type) -> Any:
    return field(default_factory=cls)


def _opaque() -> Any:
    """A block this agent reads no key of (``consul``, ``vault``): kept as given, secrets hidden in output."""
    return field(default=(), metadata={"opaque": True})


def _host_volumes() -> Any:
    """``host_volume "<name>" { path, read_only }`` blocks (TOML ``[client.host_volume.<name>]``),
    stored as sorted ``(name, path, read_only)`` triples."""
    return field(default=(), metadata={"host_volumes": True})


def _host_networks() -> Any:
    """``host_network "<name>" { cidr, interface, reserved_ports }`` blocks (TOML
    ``[client.host_network.<name>]``), stored as sorted ``(name, cidr, interface, reserved_ports)``."""
    return field(default=(), metadata={"host_networks": True})


def _plugins() -> Any:
    """``plugin "<name>" { config { ... } args = [...] }`` blocks, by name (see :data:`PLUGIN_KEYS`)."""
    return field(default=(), metadata={"plugins": True})


# The plugin config keys this agent acts on, with their TOML types: the task
# drivers it ships (raw_exec and exec; their keys as drivers/rawexec's and
# drivers/exec's configSpec; exec's values are checked by validate()).  A
# block for any other plugin is accepted and ignored with a warning at start
# (a config written for a Nomad with more drivers still loads).
PLUGIN_KEYS: dict[str, dict[str, type]] = {
    # no_cgroups: this raw_exec never puts tasks in cgroups, so either value holds.
    "raw_exec": {"enabled": bool, "no_cgroups": bool},
    "exec": {"default_pid_mode": str, "default_ipc_mode": str, "no_pivot_root": bool, "allow_caps": "list",
             "denied_host_uids": str, "denied_host_gids": str},
}
# Keys Nomad's drivers take that this agent does not enforce: refused with a
# clear error rather than accepted and ignored (they restrict who tasks run as).
PLUGIN_UNSUPPORTED: dict[str, tuple[str, ...]] = {"raw_exec": ("denied_host_uids", "denied_host_gids")}


def plugin_config(cfg: Config, name: str) -> dict[str, Any]:
    """The ``config`` table of plugin *name* (empty when it has no block)."""
    for pname, (config, _args) in cfg.plugin:
        if pname == name:
            return _thaw(config)
    return {}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__list__", tuple(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "__list__":
            return [_thaw(v) for v in value[1]]
        return {k: _thaw(v) for k, v in value}
    return value


# -- the tree ------------------------------------------------------------------


@conf
class Ports:
    # DefaultConfig: 4646/4647/4648.  0 picks a free port (Nomad's Listener
    # accepts 0..65535), which tests use.
    http: int = _f(4646, ge=0, le=65535)
    rpc: int = _f(4647, ge=0, le=65535)
    serf: int = _f(4648, ge=0, le=65535)  # servers only (normalizeAddrs)


@conf
class Addresses:
    """Per-service bind (``addresses``) or advertise (``advertise``) address.

    None: bind to ``bind_addr`` / advertise a detected address (NOMAD.md §2.1).
    """

    http: str | None = None
    rpc: str | None = None
    serf: str | None = None


@conf
class ServerJoin:
    # server_join block (retry_join.go); empty lists, 30s, 0 = retry forever.
    start_join: tuple[str, ...] = _seq()  # servers only; exclusive with retry_join
    retry_join: tuple[str, ...] = _seq()
    retry_interval_s: float = _dur(30, gt=0)  # 0 would spin; Nomad's doc floor is 1s
    retry_max: int = _f(0, ge=0)  # 0 = forever; exhausted -> exit 1


@conf
class PreemptionDefaults:
    # Nomad's PreemptionConfig as the agent's default_scheduler_config block decodes it: a field
    # left out is false (Go's zero value; the block replaces Nomad's built-in default whole).
    system_scheduler_enabled: bool = False
    sysbatch_scheduler_enabled: bool = False
    batch_scheduler_enabled: bool = False
    service_scheduler_enabled: bool = False


@conf
class SchedulerDefaults:
    """``server.default_scheduler_config`` (Nomad's SchedulerConfiguration, its HCL names): what the
    first leader writes as the cluster's scheduler configuration when the state holds none (Nomad's
    getOrCreateSchedulerConfig).  Once one is there -- written so, or by an operator through
    ``/v1/operator/scheduler/configuration`` -- the block is not consulted again."""
    scheduler_algorithm: str = ""  # "" is binpack, as in Nomad; else "binpack" or "spread"
    memory_oversubscription_enabled: bool = False
    reject_job_registration: bool = False
    pause_eval_broker: bool = False
    # Feasible nodes scored per placement of a group with affinities or spreads; 0: Nomad's default, 100.
    node_limit_for_feasibility_checks: int = _f(0, ge=0)
    preemption_config: PreemptionDefaults = _sub(PreemptionDefaults)

    def as_api(self) -> dict[str, Any]:
        """The configuration in the API's (and the state's) field names."""
        p = self.preemption_config
        return {"SchedulerAlgorithm": self.scheduler_algorithm or "binpack",
                "MemoryOversubscriptionEnabled": self.memory_oversubscription_enabled,
                "RejectJobRegistration": self.reject_job_registration,
                "PauseEvalBroker": self.pause_eval_broker,
                "NodeLimitForFeasibilityChecks": self.node_limit_for_feasibility_checks,
                "PreemptionConfig": {"SystemSchedulerEnabled": p.system_scheduler_enabled,
                                     "SysBatchSchedulerEnabled": p.sysbatch_scheduler_enabled,
                                     "BatchSchedulerEnabled": p.batch_scheduler_enabled,
                                     "ServiceSchedulerEnabled": p.service_scheduler_enabled}}


@conf
class ServerConfig:
    enabled: bool = False
    bootstrap_expect: int = _f(0, ge=0)  # dev: 1 (DevConfig)
    data_dir: str | None = None  # None: <data_dir>/server (convertServerConfig)
    num_schedulers: int | None = _f(None, ge=0)  # None: runtime.NumCPU(); reloadable
    # The evaluation types this server's workers schedule ("service", "batch", "system", "sysbatch");
    # empty: all.  The core scheduler (GC) is always added, as in Nomad.
    enabled_schedulers: tuple[str, ...] = _seq()
    # Heartbeats (nomad/config.go DefaultConfig; NOMAD.md §3).
    heartbeat_grace_s: float = _dur(10, ge=0)  # added to the TTL on the server timer
    min_heartbeat_ttl_s: float = _dur(10, gt=0)  # TTL floor for small clusters
    max_heartbeats_per_second: float = _f(50.0, gt=0)  # TTL = max(n/rate, min ttl)
    failover_heartbeat_ttl_s: float = _dur(300, gt=0)  # flat TTL after an election
    # Core GC thresholds (NOMAD.md §4); their intervals are fixed at 5m except jobs.
    node_gc_threshold_s: float = _dur(24 * 3600, gt=0)
    job_gc_interval_s: float = _dur(300, gt=0)
    job_gc_threshold_s: float = _dur(4 * 3600, gt=0)
    eval_gc_threshold_s: float = _dur(3600, gt=0)
    batch_eval_gc_threshold_s: float = _dur(24 * 3600, gt=0)
    deployment_gc_threshold_s: float = _dur(3600, gt=0)
    # Nomad default 1h: an expired ACL token is collected once it was created
    # longer ago than this (and has expired), so `acl token list` still shows
    # a just-expired token as expired for a while; checked with the core GC every 5 min.
    acl_token_gc_threshold_s: float = _dur(3600, gt=0)
    # The region whose ACL policies, global tokens, roles, namespaces and node pools are the
    # truth (Nomad's authoritative_region): "" means this server's own region.  A server of
    # another region replicates them from it on its leader and sends their writes to it.
    authoritative_region: str = ""
    raft_protocol: int = 3  # only 3 is accepted since Nomad 1.4
    raft_multiplier: int = _f(1, ge=1, le=10)  # scales raft timeouts; reloadable
    # A Raft snapshot once this many entries were applied since the last,
    # checked every raft_snapshot_interval (a random 1-2x it); both reloadable.
    raft_snapshot_threshold: int = _f(8192, ge=1)
    raft_snapshot_interval_s: float = _dur(120, gt=0)
    # Log entries a snapshot leaves behind it, so a follower that trails by
    # fewer catches up by replication, not by the whole snapshot; reloadable.
    raft_trailing_logs: int = _f(10240, ge=0)
    encrypt: str | None = _f(None, secret=True)  # base64 gossip key; redacted in to_dict
    rejoin_after_leave: bool = False  # serf RejoinAfterLeave
    # Not a Nomad key: Nomad hard-codes memberlist's DefaultWANConfig for its one
    # serf pool (nomad/config.go), as "wan" does here.  "lan", "local" (loopback)
    # and "test" (every timing scaled down) suit one-datacenter clusters and
    # tests; actors/gossip/config.py documents each preset's fields.
    gossip_profile: str = "wan"
    server_join: ServerJoin = _sub(ServerJoin)
    # The event stream (/v1/event/stream): every server keeps the events of
    # its newest event_buffer_size writes for subscribers that start from an
    # earlier index (Nomad's defaults: on, 100).  Off: no events are made.
    enable_event_broker: bool = True
    event_buffer_size: int = _f(100, ge=1)
    # Absent block -> None: the state keeps Nomad's built-in scheduler defaults until an operator sets them.
    default_scheduler_config: SchedulerDefaults | None = None
    # Bounds on submitted jobs (nomad/config.go; structs.JobDefaultPriority, JobDefaultMaxPriority,
    # JobDefaultMaxCount, JobDefaultTrackedVersions).  0 is "the default" for both priorities, as in Nomad.
    job_default_priority: int = 50  # a job without a priority gets it; 50..job_max_priority-1
    job_max_priority: int = 100  # 100..32766: higher priorities are refused at registration
    job_max_count: int = _f(50_000, ge=0)  # the job's summed group counts; 0: no bound
    job_tracked_versions: int = 6  # versions of a job kept (the current one included); > 0
    # A job's submitted source (with its variables) larger than this is not kept: the job is registered
    # and its source discarded, with a warning (Nomad's job_max_source_size, "1M"; "0" keeps none).
    job_max_source_size: str = "1M"


@conf
class Reserved:
    # client.reserved: resources withheld from scheduling (MHz / MB / MB).
    cpu: int = _f(0, ge=0)
    memory: int = _f(0, ge=0)
    disk: int = _f(0, ge=0)
    # Host ports no allocation may take ("22,80,8000-8100"): the host's own services.
    reserved_ports: str = ""


@conf
class DrainOnShutdown:
    # Defaults inside the block (client/config/drain.go DrainConfigFromAgent).
    deadline_s: float = _dur(3600, ge=0)  # 0 = no deadline (DrainStrategy)
    force: bool = False  # (quirk) parsed but never sent by Nomad's DrainSelf
    ignore_system_jobs: bool = False


@conf
class ArtifactConfig:
    """``client.artifact`` (Nomad's ArtifactConfig, its defaults): what fetching one task artifact may take.

    A download past ``http_max_size``, an archive unpacking to more than
    ``decompression_size_limit`` or ``decompression_file_count_limit``
    files, and a fetch longer than ``http_read_timeout``, fail the artifact;
    a size or count of 0 turns its limit off.  Sizes are strings as
    Nomad's ("100GB", "512MiB"; see :func:`parse_size`).
    """

    http_read_timeout_s: float = _dur(30 * 60, gt=0)
    http_max_size: str = "100GB"
    decompression_size_limit: str = "100GB"
    decompression_file_count_limit: int = _f(4096, ge=0)


@conf
class TemplateWait:
    """``client.template.wait`` (Nomad's WaitConfig): a template without a ``wait`` block of its own
    re-renders once its data stayed unchanged ``min`` (5s), at most ``max`` (4m) after the first
    change -- Nomad's defaults, so a burst of changes restarts a task once, not once per change."""

    min_s: float = _dur(5.0, ge=0)
    max_s: float = _dur(4 * 60, ge=0)


@conf
class TemplateWaitBounds:
    """``client.template.wait_bounds`` (Nomad's WaitBounds): a job template's own ``wait`` is raised
    to at least ``min`` and cut to at most ``max`` (0: no bound), so a job cannot make the client
    re-render more often, or hold a change longer, than the operator allows."""

    min_s: float = _dur(0.0, ge=0)
    max_s: float = _dur(0.0, ge=0)


@conf
class TemplateRetry:
    """``client.template.nomad_retry`` (Nomad's RetryConfig, its defaults 12 / 250ms / 1m): a failed
    query for a task's variables and services is sent again after ``backoff``, doubled each time up
    to ``max_backoff`` (0: no cap), and after ``attempts`` retries in a row (0: without end) the task
    fails ("Template failed: ..."), as consul-template's view gives up and Nomad's hook kills it."""

    attempts: int = _f(12, ge=0)
    backoff_s: float = _dur(0.25, gt=0)  # 0 would retry at once, without end: refused
    max_backoff_s: float = _dur(60.0, ge=0)


@conf
class ClientTemplateConfig:
    """``client.template`` (Nomad's ClientTemplateConfig): how tasks' templates read their data.

    ``block_query_wait`` is how long one blocking query for a task's
    variables and services waits on a server for a change (Nomad's 5m).
    """

    block_query_wait_s: float = _dur(5 * 60, gt=0)
    wait: TemplateWait = _sub(TemplateWait)
    wait_bounds: TemplateWaitBounds = _sub(TemplateWaitBounds)
    nomad_retry: TemplateRetry = _sub(TemplateRetry)
    # Nomad's consul_retry and vault_retry (its defaults: 12 / 250ms / 1m): read and checked as
    # nomad_retry, so a Nomad client configuration loads; they govern nothing here, since a template's
    # Consul and Vault functions fail the render at once (this agent has neither).
    consul_retry: TemplateRetry = _sub(TemplateRetry)
    vault_retry: TemplateRetry = _sub(TemplateRetry)
    # Functions a template may not call (consul-template's function_denylist: names, or globs with
    # "*"): each still parses and fails the render when called ("function is disabled").  Nomad's
    # default denies executeTemplate, plugin and writeToFile; a list given replaces it ([] denies none).
    function_denylist: tuple[str, ...] = field(
        default=("executeTemplate", "plugin", "writeToFile"), metadata={})
    # Nomad's disable_file_sandbox lets templates read and write outside the allocation's directory;
    # this agent's templates stay inside it, so true is refused (validate) rather than ignored.
    disable_file_sandbox: bool = False


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "k": 1000, "mb": 1000**2, "m": 1000**2, "gb": 1000**3, "g": 1000**3,
               "tb": 1000**4, "t": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """Bytes in a size string as Nomad reads it (go-humanize ParseBytes: "100GB" is 10^11, "1GiB" 2^30)."""
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"invalid size {text!r}") from None
    if unit not in _SIZE_UNITS or value < 0 or not math.isfinite(value):
        raise ValueError(f"invalid size {text!r} (a number and B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")
    return int(value * _SIZE_UNITS[unit])


@conf
class ClientConfig:
    enabled: bool = False
    servers: tuple[str, ...] = _seq(append=True)  # merges by appending (ClientConfig.Merge)
    state_dir: str | None = None  # None: <data_dir>/client
    alloc_dir: str | None = None  # None: <data_dir>/alloc
    node_class: str = ""
    node_pool: str = "default"  # "all" is reserved
    meta: tuple[tuple[str, str], ...] = _map()  # not reloadable (issue #1525)
    options: tuple[tuple[str, str], ...] = _map()  # e.g. driver.raw_exec.enable (dev)
    network_interface: str | None = None  # None: the default route's interface
    # What the host has, where detection is wrong (a VM's CPU quota, a
    # container's memory limit): MHz / MB; 0 keeps the fingerprinted value.
    cpu_total_compute: int = _f(0, ge=0)
    memory_total_mb: int = _f(0, ge=0)
    disk_total_mb: int = _f(0, ge=0)
    disk_free_mb: int = _f(0, ge=0)
    # Nomad's default: no task's kill_timeout holds a stop longer than this.
    max_kill_timeout_s: float = _dur(30, gt=0)
    # Not a Nomad key: Nomad hard-codes initialHeartbeatStagger = 10s (client.go). A
    # node registers as "initializing" and turns "ready" with its first heartbeat,
    # sent within a random part of this after registering, so a cluster whose
    # clients start together does not heartbeat all at once (dev mode: at once).
    # Lower it where a quicker first "ready" matters more than that spread.
    initial_heartbeat_stagger_s: float = _dur(10, ge=0)
    # Dynamic ports are picked from this range (Nomad's defaults).
    min_dynamic_port: int = _f(20000, ge=1, le=65535)
    max_dynamic_port: int = _f(32000, ge=1, le=65535)
    reserved: Reserved = _sub(Reserved)
    server_join: ServerJoin = _sub(ServerJoin)  # start_join is rejected for clients
    # Absent block -> None: no drain on shutdown (NOMAD.md §2.2).
    drain_on_shutdown: DrainOnShutdown | None = None
    # Client-side alloc GC (client/config DefaultConfig).
    gc_interval_s: float = _dur(60, gt=0)
    gc_max_allocs: int = _f(50, ge=0)
    gc_disk_usage_threshold: float = _f(80.0, ge=0, le=100)  # percent
    gc_inode_usage_threshold: float = _f(70.0, ge=0, le=100)  # percent
    no_host_uuid: bool = True  # random node ID instead of one from the host UUID
    # No task on this node can be entered with `nomad alloc exec` (Nomad's client refuses it, 403).
    disable_remote_exec: bool = False
    # Nomad's node_max_allocs: the most live allocations the scheduler (and the plan applier) puts on
    # this node, whatever room it has left -- a node with many tiny tasks is limited by more than
    # CPU and memory (processes, ports, file handles).  0 (Nomad's default): no limit.
    node_max_allocs: int = _f(0, ge=0)
    # Nomad's default_ineligible: a node this agent registers for the first time is ineligible for
    # scheduling until an operator runs `nomad node eligibility -enable` (a node that must be checked
    # before it takes work); one that registered before keeps what the operator set.  Nomad's default off.
    default_ineligible: bool = False
    artifact: ArtifactConfig = _sub(ArtifactConfig)
    # Nomad's host_volume blocks: host directories jobs may mount by name
    # (group ``volume { type = "host", source = <name> }``); advertised as
    # the node's HostVolumes and checked at start (the path must be a directory).
    host_volume: tuple[tuple[str, str, bool], ...] = _host_volumes()
    # Nomad's host_network blocks: named sets of this host's addresses (those in ``cidr``, a
    # comma-separated list, and/or on ``interface``) a job's port may ask for by name
    # (``port "http" { host_network = "public" }``); the port is given an address of that network and
    # its ``reserved_ports`` are never assigned there.  Fingerprinted into the node's NodeNetworks.
    host_network: tuple[tuple[str, str, str, str], ...] = _host_networks()
    # Nomad's bind_wildcard_default_host_network (default true): whether a driver that binds ports
    # itself (Nomad's docker) binds ports of the default network on 0.0.0.0.  The drivers here
    # (raw_exec, exec) bind no ports for a task -- the task binds its own -- so it changes nothing.
    bind_wildcard_default_host_network: bool = True
    template: ClientTemplateConfig = _sub(ClientTemplateConfig)
    # Nomad's chroot_env: host path -> path in an exec task's chroot (bind-mounted read-only); set,
    # it replaces the default set (actors.client.exec_driver.DEFAULT_CHROOT_ENV) as a whole.
    chroot_env: tuple[tuple[str, str], ...] = _map()


@conf
class Limits:
    """Nomad's ``limits`` block (command/agent/config.go ``DefaultLimits``): what one client may hold.

    A slow or hostile client must not starve the agent: connections per
    client IP are capped on the HTTP and RPC ports (beyond the cap a
    connection is refused, logged and counted), and an RPC connection that
    has not completed its first frame within the handshake timeout is
    dropped (slow-loris).  0 disables a limit, as in Nomad.
    """

    http_max_conns_per_client: int = _f(100, ge=0)  # Nomad default 100; 0: no limit
    rpc_max_conns_per_client: int = _f(100, ge=0)  # Nomad default 100; also bounds the serf TCP port
    rpc_handshake_timeout_s: float = _dur(5, ge=0)  # Nomad default 5s: first frame within it; 0: none
    # Nomad default 5s: an HTTPS connection must finish its TLS handshake
    # within it (tls.http), so a client that connects and stays silent cannot
    # hold a connection slot; 0: none.
    https_handshake_timeout_s: float = _dur(5, ge=0)


@conf
class UiLink:
    ui_url: str = ""  # where the UI's Consul / Vault links point


@conf
class UiLabel:
    text: str = ""  # the UI's banner label
    background_color: str = ""
    text_color: str = ""


@conf
class Ui:
    """Nomad's ``ui`` block.  This agent serves no web UI: the block loads (a
    config written for Nomad does) and is shown in /v1/agent/self; nothing reads it."""

    enabled: bool = True  # Nomad's default; there is no UI here to switch
    show_cli_hints: bool = True
    consul: UiLink = _sub(UiLink)
    vault: UiLink = _sub(UiLink)
    label: UiLabel = _sub(UiLabel)


@conf
class Acl:
    """Nomad's ``acl`` block (actors/acl.py, actors/http_acl.py).

    A server resolves tokens from its own replicated state on every
    request; a client-only agent asks a server and keeps the answers for
    ``token_ttl`` / ``policy_ttl`` / ``role_ttl`` (Nomad's client caches), so a
    revoked token, an edited policy or an edited role reaches it within that time.
    """

    enabled: bool = False  # Nomad default off; on: every endpoint but status/health/metrics needs a token
    token_ttl_s: float = _dur(30, gt=0)  # Nomad default 30s: a client agent's cache of a resolved token
    policy_ttl_s: float = _dur(30, gt=0)  # Nomad default 30s: a client agent's cache of a policy
    role_ttl_s: float = _dur(30, gt=0)  # Nomad default 30s (1.4): a client agent's cache of a role's policies
    # Bounds on a new token's lifetime (ExpirationTTL, or ExpirationTime - now), checked by the
    # server that takes the write.  Nomad's defaults: at least 1m, so a token is usable before it
    # expires; at most 24h, so a forgotten expiring token cannot outlive a day.
    token_min_expiration_ttl_s: float = _dur(60, gt=0)
    token_max_expiration_ttl_s: float = _dur(24 * 3600, gt=0)
    # The token a non-authoritative region's leader presents to the authoritative region when it
    # replicates ACL objects (Nomad's replication_token): a management token there.  Redacted.
    replication_token: str = _f("", secret=True)


@conf
class Tls:
    """Nomad's ``tls`` block (runtime/tls.py): mutual TLS on RPC, TLS on HTTP.

    The three files are PEM: the CA that signs every agent's certificate
    (``nomad tls ca create``), this agent's certificate and its key
    (``nomad tls cert create -server|-client``).  They are required as soon
    as ``rpc`` or ``http`` is on and are loaded at start-up, so a bad path or
    an unreadable file stops the agent with one line naming the key.  The
    files and the two ``verify_*`` flags reload on SIGHUP; ``rpc`` and
    ``http`` need a restart.
    """

    http: bool = False  # Nomad default off: on serves the HTTP API over HTTPS
    rpc: bool = False  # Nomad default off: on makes every RPC-port connection mutual TLS
    ca_file: str | None = None  # PEM CA bundle that peers' certificates must chain to
    cert_file: str | None = None  # PEM certificate this agent presents (server.<region>.nomad / client...)
    key_file: str | None = None  # PEM private key of cert_file (the path is shown; the key never is)
    # Nomad default off: on, a connection to a server must find
    # server.<region>.nomad in its certificate, so a client's certificate
    # cannot pose as a server (Nomad's role and region check).
    verify_server_hostname: bool = False
    # Nomad default off: on, HTTPS clients must present a certificate signed by ca_file.
    verify_https_client: bool = False
    # Oldest TLS version accepted or offered: tls10, tls11, tls12 or tls13.
    # Nomad's default tls12: 1.0 and 1.1 are deprecated (RFC 8996).
    tls_min_version: str = "tls12"


@conf
class Autopilot:
    """Nomad's ``autopilot`` block (actors/raft/membership.py): Raft housekeeping on the leader.

    The leader copies it into the replicated autopilot configuration when
    there is none yet (actors/state/autopilot_config.py); from then on every
    server uses that, which ``nomad operator autopilot set-config`` changes.
    """

    # Nomad default true: a server gossip marks failed is removed from Raft
    # (at most (voters - 1) / 2 of the voters, so a quorum always remains);
    # it is added back as a non-voter if it returns.
    cleanup_dead_servers: bool = True
    # A server whose last contact with the leader is older than this, or
    # whose log trails by more than max_trailing_logs, is unhealthy in
    # /v1/operator/autopilot/health (Nomad's defaults).
    # Upper bounds (a day; 2^31 entries; 1,000 voters): far above any sensible setting, and
    # within what the replicated configuration accepts, so the leader's copy of this block
    # into it can never be refused (and retried every second).
    last_contact_threshold_s: float = _dur(0.2, gt=0, le=86_400)
    max_trailing_logs: int = _f(250, ge=0, le=2**31)
    # Dead voters are removed only while at least this many voters remain
    # (Nomad's min_quorum; 0: no floor beyond keeping a quorum).
    min_quorum: int = _f(0, ge=0, le=1000)
    # A new server joins Raft as a non-voter and is made a voter once it has
    # kept up with the leader (answering without a gap longer than an
    # election timeout, within max_trailing_logs) this long: a server that
    # flaps while it starts never becomes a voter (Nomad's default 10 s).
    server_stabilization_time_s: float = _dur(10, gt=0, le=86_400)


@conf
class Telemetry:
    # DefaultConfig telemetry block; the in-memory sink backs /v1/metrics and SIGUSR1.
    collection_interval_s: float = _dur(1, gt=0)
    in_memory_collection_interval_s: float = _dur(10, gt=0)
    in_memory_retention_period_s: float = _dur(60, gt=0)
    disable_hostname: bool = False
    prometheus_metrics: bool = False  # on in dev mode
    # Clients: the host's memory, CPU, disk and uptime gauges (client.host.*),
    # and each running task's use (client.allocs.*).  Off, as Nomad's: one
    # gauge per CPU, disk and task every collection_interval adds up.
    publish_node_metrics: bool = False
    publish_allocation_metrics: bool = False
    # Leave dispatched (parameterized) jobs' children out of the leader's nomad.job_summary.* gauges:
    # each dispatch is a job of its own, 7 gauges a task group, which a busy dispatcher multiplies.
    disable_dispatched_job_summary_metrics: bool = False
    # Also send every metric to a statsd server, or a DogStatsD one (with
    # datadog_tags, "key:value", on every line), at host:port over UDP.
    statsd_address: str | None = None
    datadog_address: str | None = None
    datadog_tags: tuple[str, ...] = _seq()
    # Which metrics are kept, by name prefix: "+nomad.raft" keeps, "-nomad.client"
    # drops, the longest matching prefix decides; filter_default for the rest.
    prefix_filter: tuple[str, ...] = _seq()
    filter_default: bool = True


@conf
class Config:
    region: str = "global"
    datacenter: str = "dc1"
    name: str | None = None  # None: the hostname, resolved by the caller
    data_dir: str | None = None  # required for a server outside dev mode
    plugin_dir: str | None = None  # None: <data_dir>/plugins
    bind_addr: str = "0.0.0.0"  # DefaultConfig; (quirk) help text says loopback
    log_level: str = "INFO"  # reloadable
    log_json: bool = False
    log_include_location: bool = False  # each log line names its source file and line (hclog IncludeLocation)
    # Added to every HTTP API answer (CORS headers, say), as Nomad's.
    http_api_response_headers: tuple[tuple[str, str], ...] = _map()
    # /v1/agent/pprof/* without ACLs (with ACLs, an agent:write token is needed).
    enable_debug: bool = False
    # Also write the log to this file ("<dir>/" alone: <dir>/nomad.log), renamed
    # to <name>-<unix nanos>.<ext> once it is log_rotate_duration old or
    # log_rotate_bytes big (0: no size limit), keeping log_rotate_max_files of
    # those (0: all).  Nomad's defaults; not reloadable, as Nomad's.
    log_file: str | None = None
    log_rotate_duration_s: float = _dur(24 * 3600, gt=0)
    log_rotate_bytes: int = _f(0, ge=0)
    log_rotate_max_files: int = _f(0, ge=0)
    # Also send the log to the local syslog (/dev/log) with this facility.
    enable_syslog: bool = False
    syslog_facility: str = "LOCAL0"
    leave_on_interrupt: bool = False  # not reloadable
    leave_on_terminate: bool = False  # not reloadable
    # Not a Nomad key: Nomad hard-codes gracefulTimeout = 5s (command.go line 48)
    # for the whole leave, plus drain_on_shutdown.deadline.  We keep its value
    # and make it tunable; see graceful_timeout_s().
    leave_timeout_s: float = _dur(5, gt=0)
    disable_update_check: bool = False  # we never phone home; kept for parity
    ports: Ports = _sub(Ports)
    addresses: Addresses = _sub(Addresses)
    advertise: Addresses = _sub(Addresses)
    server: ServerConfig = _sub(ServerConfig)
    client: ClientConfig = _sub(ClientConfig)
    telemetry: Telemetry = _sub(Telemetry)
    limits: Limits = _sub(Limits)
    acl: Acl = _sub(Acl)  # not reloadable (Nomad: ACLs switch on or off with a restart)
    tls: Tls = _sub(Tls)  # files and verify_* reloadable (RELOADABLE)
    autopilot: Autopilot = _sub(Autopilot)
    ui: Ui = _sub(Ui)
    # Integrations this agent does not have: a consul block loads with a
    # warning (no Consul auto-join, no service registration); a vault block
    # loads unless it enables Vault, which is refused (tasks would start
    # without the secrets they expect).
    consul: tuple[Any, ...] = _opaque()
    vault: tuple[Any, ...] = _opaque()
    # plugin "<name>" { config { ... } }: task driver settings; raw_exec's
    # "enabled" is how Nomad 0.9+ switches it on (client.options still works).
    plugin: tuple[tuple[str, tuple[Any, tuple[str, ...]]], ...] = _plugins()
    dev_mode: bool = _f(False, file=False)  # set by -dev only (Nomad: hcl:"-")

    def graceful_timeout_s(self) -> float:
        """How long a graceful leave may take before the agent exits 1 (§1.3)."""
        drain = self.client.drain_on_shutdown
        if self.client.enabled and drain is not None:
            return self.leave_timeout_s + drain.deadline_s
        return self.leave_timeout_s


def dev_config() -> Config:
    """Nomad's ``DevConfig``: server and client on loopback, one-server bootstrap."""
    return build_overlay(Config, DEV_OVERLAY)


# DevConfig (command/agent/config.go) as an overlay on the defaults.
DEV_OVERLAY: dict[str, Any] = {
    "dev_mode": True,  # in-memory raft, node ID not persisted, drain ignored
    "enable_debug": True,  # Nomad's DevConfig: pprof and host data without ACLs
    "bind_addr": "127.0.0.1",
    "log_level": "DEBUG",
    "server": {"enabled": True, "bootstrap_expect": 1},
    "client": {
        "enabled": True,
        "network_interface": "lo0" if sys.platform == "darwin" else "lo",
        "options": {"driver.raw_exec.enable": "true", "driver.docker.volumes": "true"},
        "gc_interval_s": 600.0,
        "gc_disk_usage_threshold": 99.0,
        "gc_inode_usage_threshold": 99.0,
        "gc_max_allocs": 50,
    },
    "telemetry": {"prometheus_metrics": True},
}


# -- durations: runtime.durations (the CLI reads them without this module) --------

_INT64 = (-(2**63), 2**63 - 1)  # Go's int: TOML integers beyond it are refused, as Nomad's HCL decoder does


# -- schema walking ----------------------------------------------------------


def _key(f: dataclasses.Field) -> str:
    """The file key of a field: its name, without ``_s`` for durations."""
    return f.name[:-2] if f.metadata.get("dur") else f.name


@functools.cache
def _schema(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """File key -> (field, kind); kind is a type, a dataclass, or a tag string."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (types.UnionType, typing.Union):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if f.metadata.get("dur"):
            kind: Any = "dur"
        elif f.metadata.get("map"):
            kind = "map"
        elif f.metadata.get("plugins"):
            kind = "plugins"
        elif f.metadata.get("host_volumes"):
            kind = "host_volumes"
        elif f.metadata.get("host_networks"):
            kind = "host_networks"
        elif f.metadata.get("opaque"):
            kind = "opaque"
        elif typing.get_origin(hint) is tuple:
            kind = "list"
        else:
            kind = hint
        out[_key(f)] = (f, kind)
    return out


_WANTED = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
           "dur": 'a duration string like "10s"', "list": "a list of strings",
           "map": "a table of strings", "plugins": "a table of plugin blocks", "opaque": "a table",
           "host_volumes": "a table of host_volume blocks", "host_networks": "a table of host_network blocks"}
_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string",
               list: "array", dict: "table"}


_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)")


def _type_name(value: Any) -> str:
    """What a value read from a file is, in TOML's words (an HCL number is an int or float)."""
    return next((name for t, name in _TOML_TYPES.items() if isinstance(value, t)), type(value).__name__)


def _convert(value: Any, kind: Any, key: str, src: str) -> Any:
    """A TOML value checked against *kind*; returns the overlay value."""
    def wrong() -> ConfigError:
        want = "a table" if dataclasses.is_dataclass(kind) else _WANTED[kind]
        got = _type_name(value)
        return ConfigError(f"{key}: expected {want}, got {got} {value!r} (in {src})")

    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise wrong()
        return _parse_table(kind, value, key + ".", src)
    if kind == "dur":
        if not isinstance(value, str):
            raise wrong()
        try:
            return parse_duration(value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e} (in {src})") from None
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong()
        return list(value)
    if kind == "opaque":
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    if kind == "plugins":
        if not isinstance(value, dict):
            raise wrong()
        return {name: _convert_plugin(block, f"{key}.{name}", src) for name, block in value.items()}
    if kind == "host_volumes":
        if not isinstance(value, dict):
            raise wrong()
        return {name: _convert_host_volume(block, f"{key}.{name}", src) for name, block in value.items()}
    if kind == "host_networks":
        if not isinstance(value, dict):
            raise wrong()
        return {name: _convert_host_network(block, f"{key}.{name}", src) for name, block in value.items()}
    if kind == "map":
        if not isinstance(value, dict):
            raise wrong()
        out = {}
        for k, v in value.items():
            # HCL 1's decodeString: a number is its text as written (meta { version = 1.10 } is "1.10"),
            # a bool "true"/"false".
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (int, float)):
                v = getattr(v, "text", None) or str(v)
            out[k] = _convert(v, str, f"{key}.{k}", src)  # Nomad maps are map[string]string
        return out
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, str) and _GO_INT.fullmatch(value.strip()):
        # HCL 1's decodeInt takes a quoted number (ports { http = "5656" }); Go's base prefixes.
        text = value.strip()
        value = int(text, 8) if re.fullmatch(r"[-+]?0\d+", text) else int(text, 0)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise wrong()
    if kind is int and not _INT64[0] <= value <= _INT64[1]:
        raise ConfigError(f"{key}: {value} does not fit a 64-bit integer (in {src})")
    return value


def _convert_plugin(block: Any, key: str, src: str) -> dict[str, Any]:
    """One ``[plugin.<name>]`` block: ``config`` (checked for the drivers this agent has) and ``args``."""
    if not isinstance(block, dict):
        got = _type_name(block)
        raise ConfigError(f"{key}: expected a table, got {got} {block!r} (in {src})")
    for k in block:
        if k not in ("config", "args"):
            raise ConfigError(f'unknown key "{key}.{k}" in {src}')
    config, args = block.get("config", {}), block.get("args", [])
    if not isinstance(config, dict):
        raise ConfigError(f"{key}.config: expected a table, got {config!r} (in {src})")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{key}.args: expected a list of strings, got {args!r} (in {src})")
    name = key.rsplit(".", 1)[1]
    known = PLUGIN_KEYS.get(name)
    if known is not None:
        for k, v in config.items():
            if k in PLUGIN_UNSUPPORTED.get(name, ()):
                raise ConfigError(f"{key}.config.{k}: not supported by this agent (in {src})")
            if k not in known:
                raise ConfigError(f'unknown key "{key}.config.{k}" in {src}')
            _convert(v, known[k], f"{key}.config.{k}", src)
    return {"config": dict(config), "args": list(args)}


def _convert_host_volume(block: Any, key: str, src: str) -> dict[str, Any]:
    """One ``[client.host_volume.<name>]`` block: ``path`` and ``read_only`` (Nomad's
    ClientHostVolumeConfig)."""
    if not isinstance(block, dict):
        got = _type_name(block)
        raise ConfigError(f"{key}: expected a table, got {got} {block!r} (in {src})")
    for k in block:
        if k not in ("path", "read_only"):
            raise ConfigError(f'unknown key "{key}.{k}" in {src}')
    return {"path": _convert(block.get("path", ""), str, f"{key}.path", src),
            "read_only": _convert(block.get("read_only", False), bool, f"{key}.read_only", src)}


def _convert_host_network(block: Any, key: str, src: str) -> dict[str, Any]:
    """One ``[client.host_network.<name>]`` block: ``cidr``, ``interface`` and ``reserved_ports``
    (Nomad's ClientHostNetworkConfig)."""
    if not isinstance(block, dict):
        got = _type_name(block)
        raise ConfigError(f"{key}: expected a table, got {got} {block!r} (in {src})")
    for k in block:
        if k not in ("cidr", "interface", "reserved_ports"):
            raise ConfigError(f'unknown key "{key}.{k}" in {src}')
    return {k: _convert(block.get(k, ""), str, f"{key}.{k}", src)
            for k in ("cidr", "interface", "reserved_ports")}


# Warnings about Nomad keys this agent does not use, gathered while a file is parsed (load_overlays).
_IGNORED_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("ignored", default=None)


def _parse_table(cls: type, table: dict, prefix: str, src: str) -> dict[str, Any]:
    """A TOML table -> an overlay (field name -> value), rejecting unknown keys.

    A key of Nomad's that this agent does not use (runtime.config_nomad_keys) is skipped with a
    warning, or refused when dropping its value would weaken what the file asks for."""
    from runtime.config_nomad_keys import ignored

    schema, out = _schema(cls), {}
    for key, value in table.items():
        entry = schema.get(key)
        if entry is None:
            try:
                warning = ignored(prefix + key, value, src)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            if warning is not None:
                gathered = _IGNORED_WARNINGS.get()
                if gathered is not None:
                    gathered.append(warning)
                continue
        if entry is None or entry[0].metadata.get("file") is False:
            raise ConfigError(f'unknown key "{prefix}{key}" in {src}')
        f, kind = entry
        out[f.name] = _convert(value, kind, prefix + key, src)
    return out


def merge_overlays(cls: type, base: dict, over: dict) -> dict:
    """Overlay *over* on *base* with Nomad's merge rules (module docstring)."""
    out = dict(base)
    kinds = {f.name: (f, kind) for f, kind in _schema(cls).values()}
    for name, value in over.items():
        f, kind = kinds[name]
        if name not in out:
            out[name] = value
        elif dataclasses.is_dataclass(kind):
            out[name] = merge_overlays(kind, out[name], value)
        elif kind == "map":
            out[name] = {**out[name], **value}
        elif kind == "opaque":
            out[name] = {**out[name], **value}
        elif kind in ("host_volumes", "host_networks"):  # a later block of one name replaces it
            out[name] = {**out[name], **value}
        elif kind == "plugins":
            # Nomad's pluginConfigMerge: a later block of one name merges its
            # config key by key and replaces the args it sets.
            merged = dict(out[name])
            for pname, block in value.items():
                prev = merged.get(pname)
                merged[pname] = block if prev is None else {
                    "config": {**prev["config"], **block["config"]}, "args": block["args"] or prev["args"]}
            out[name] = merged
        elif f.metadata.get("append"):
            out[name] = out[name] + value
        else:
            out[name] = value
    return out


def build_overlay(cls: type, overlay: dict) -> Any:
    """The defaults of *cls* with *overlay* applied."""
    kinds = {f.name: kind for f, kind in _schema(cls).values()}
    kwargs = {}
    for name, value in overlay.items():
        kind = kinds[name]
        if dataclasses.is_dataclass(kind):
            value = build_overlay(kind, value)
        elif kind == "list":
            value = tuple(value)
        elif kind == "map":
            value = tuple(sorted(value.items()))
        elif kind == "plugins":
            value = tuple(sorted((n, (_freeze(b["config"]), tuple(b["args"]))) for n, b in value.items()))
        elif kind == "opaque":
            value = _freeze(value)
        elif kind == "host_volumes":
            value = tuple(sorted((n, b["path"], b["read_only"]) for n, b in value.items()))
        elif kind == "host_networks":
            value = tuple(sorted((n, b["cidr"], b["interface"], b["reserved_ports"])
                                 for n, b in value.items()))
        kwargs[name] = value
    return cls(**kwargs)


# -- files ---------------------------------------------------------------------


def _is_config_file(p: Path) -> bool:
    # Nomad's LoadConfigDir: *.hcl and *.json (we read *.toml too), hidden ones included, skipping only
    # editor temporary files (isTemporaryFile: vim's "x~", emacs's ".#x" and "#x#").
    name = p.name
    temporary = name.endswith("~") or name.startswith(".#") or (name.startswith("#") and name.endswith("#"))
    return p.is_file() and p.suffix in _CONFIG_SUFFIXES and not temporary


_CONFIG_SUFFIXES = (".hcl", ".json", ".toml")


def _json_blocks(value: Any) -> Any:
    """A JSON config as HCL 1 reads one: a block may be given as a list of objects (``"server":
    [{"enabled": true}]``, the form ``nomad agent`` documents), which merge into one table."""
    if isinstance(value, dict):
        return {k: _json_blocks(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        from runtime.hcl1 import merge_into

        out: dict[str, Any] = {}
        for item in value:
            for k, v in _json_blocks(item).items():
                merge_into(out, k, v)  # as HCL 1 merges repeated blocks: deep, lists appended
        return out
    return value


def _json_trailing_commas(text: str) -> str:
    """*text* without the commas right before a ``}`` or ``]`` (outside strings): HCL 1's JSON parser,
    which Nomad reads JSON configs with, takes them (Nomad's own sample configs have them)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':  # a string, escapes and all
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # a trailing comma: dropped
                continue
        out.append(c)
        i += 1
    return "".join(out)


def read_config_file(name: str) -> dict[str, Any]:
    """One config file as nested tables: ``*.toml`` is TOML, ``*.json`` JSON and ``*.hcl`` HCL 1 (Nomad's
    agent config language, runtime/hcl1.py).  A file named otherwise is read as TOML, or as HCL 1 when
    it is not TOML (Nomad reads any file it is given as HCL).  Raises :class:`ConfigError`."""
    import json

    from runtime.hcl1 import HclError
    from runtime.hcl1 import loads as hcl_loads

    try:
        with open(name, "rb") as fh:
            raw = fh.read()
        text = raw.decode()
    except (OSError, UnicodeDecodeError) as e:  # not UTF-8: a decode error
        raise ConfigError(f"Error loading configuration from {name}: {e}") from None
    suffix = Path(name).suffix
    try:
        if suffix == ".json":
            table = _json_blocks(json.loads(_json_trailing_commas(text))) if text.strip() else {}
            if not isinstance(table, dict):
                raise ValueError("expected a JSON object at the top")
            return table
        if suffix == ".hcl":
            return hcl_loads(text)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as toml_error:
            if suffix == ".toml":
                raise
            try:
                return hcl_loads(text)
            except HclError as hcl_error:
                raise ValueError(f"neither TOML ({toml_error}) nor HCL ({hcl_error})") from None
    except (ValueError, HclError) as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"Error loading configuration from {name}: {e}") from None


def load_overlays(paths: list[str]) -> tuple[dict, list[str], list[str]]:
    """Read and merge *paths* into one overlay; also the files read and warnings."""
    from runtime.config_nomad_keys import move_deprecated_join, rename_old_keys

    overlay: dict = {}
    loaded: list[str] = []
    warnings: list[str] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files = [str(p / c.name) for c in sorted(p.iterdir()) if _is_config_file(c)]
        elif p.exists():
            files = [path]
        else:
            raise ConfigError(f"Error loading configuration from {path}: no such file or directory")
        found = False
        for name in files:
            table = read_config_file(name)
            if not table:
                continue
            rename_old_keys(table)
            try:
                moved = move_deprecated_join(table)
            except ValueError as e:
                raise ConfigError(f"{e} (in {name})") from None
            if moved:
                warnings.append(moved)
            gathered: list[str] = []
            token = _IGNORED_WARNINGS.set(gathered)
            try:
                parsed = _parse_table(Config, table, "", name)
            finally:
                _IGNORED_WARNINGS.reset(token)
            warnings.extend(gathered)
            overlay = merge_overlays(Config, overlay, parsed)
            loaded.append(name)
            found = True
        if not found:
            warnings.append(f"No configuration loaded from {path}")
    return overlay, loaded, warnings


def load_files(paths: list[str]) -> tuple[Config, list[str], list[str]]:
    """The defaults with *paths* merged over them, in order (Nomad ``-config``).

    Each path is a file (:func:`read_config_file`) or a directory (its ``*.hcl``, ``*.json`` and
    ``*.toml`` files, sorted by name).
    Returns the config, the files that contributed (for the banner's
    ``Loaded configuration from ...``) and warnings (``No configuration loaded
    from <p>``).  Raises :class:`ConfigError` for a missing path, a file that does not parse,
    an unknown key, a wrong type or a bad duration.  Does not :func:`validate`.
    """
    overlay, loaded, warnings = load_overlays(paths)
    return build_overlay(Config, overlay), loaded, warnings


def parse_args(argv: list[str], *, reload: bool = False) -> tuple[Config, list[str], list[str]]:
    """``nomad agent`` flags; see :func:`runtime.config_flags.parse_args`."""
    from runtime.config_flags import parse_args as parse

    return parse(argv, reload=reload)


# -- validation ----------------------------------------------------------------

_META_KEY = re.compile(r"[^.]+(\.[^.]+)*")  # helper.IsValidInterpVariable
_NODE_POOL = re.compile(r"[a-zA-Z0-9-_]{1,128}")  # structs.ValidateNodePoolName


def _check_exec(cfg: Config) -> None:
    """The exec driver's plugin block (Nomad's exec Config.validate, its messages: Nomad's agent does
    not start with a plugin config its driver refuses) and the client's chroot_env (absolute paths:
    a host path is bind-mounted read-only at the other, inside the task's directory)."""
    from actors.client.drivers import DriverError
    from actors.client.exec_driver import exec_plugin_config

    try:
        exec_plugin_config(plugin_config(cfg, "exec"))
    except DriverError as e:
        raise ConfigError(f"plugin.exec.config: {e}") from None
    for src, dst in cfg.client.chroot_env:
        for path in (src, dst):
            if not path.startswith("/") or "\0" in path:
                raise ConfigError(f'client.chroot_env: "{src}" = "{dst}": both paths must be absolute, '
                                  f'got "{path}"')
        if any(part == ".." for part in dst.split("/")):
            raise ConfigError(f'client.chroot_env: "{src}" = "{dst}": the path in the chroot must not '
                              'contain ".."')


def validate(cfg: Config, *, reload: bool = False) -> list[str]:
    """Raise :class:`ConfigError` if *cfg* cannot run; return Nomad's warnings.

    The checks and messages follow ``Command.IsValidConfig``; each message is
    one line that starts with the key at fault.  On a *reload* a bad
    ``log_level`` passes: Nomad's ``handleReload`` reports it, keeps the
    running level and reloads the rest.
    """
    if not (cfg.server.enabled or cfg.client.enabled):
        raise ConfigError(NO_ROLE_ERROR)
    if "\0" in cfg.region:
        raise ConfigError("region: contains invalid characters (null)")
    if "\0" in cfg.datacenter or "*" in cfg.datacenter:
        raise ConfigError("datacenter: contains invalid characters (null or '*')")
    if not reload and cfg.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f'log_level: invalid log level "{cfg.log_level}", '
                          f"valid levels are {', '.join(LOG_LEVELS)}")
    if not cfg.bind_addr:
        raise ConfigError("bind_addr: must not be empty")
    tw, bounds = cfg.client.template.wait, cfg.client.template.wait_bounds
    pairs = [("wait", tw.min_s, tw.max_s)]
    if bounds.max_s:  # 0: no upper bound
        pairs.append(("wait_bounds", bounds.min_s, bounds.max_s))
    for key, lo, hi in pairs:
        if lo > hi:  # Nomad's WaitConfig.Validate (its %d of a Duration: nanoseconds)
            raise ConfigError(f"client.template.{key}: wait config min {round(lo * 1e9)} is greater than max "
                              f"{round(hi * 1e9)}")
    for key in ("consul_retry", "vault_retry", "nomad_retry"):
        retry = getattr(cfg.client.template, key)
        if retry.max_backoff_s and retry.backoff_s > retry.max_backoff_s:  # Nomad's RetryConfig.Validate
            raise ConfigError(f"client.template.{key}: retry config backoff {round(retry.backoff_s * 1e9)} "
                              f"is greater than max_backoff {round(retry.max_backoff_s * 1e9)}")
    if cfg.client.template.disable_file_sandbox:
        raise ConfigError("client.template.disable_file_sandbox: not supported by this agent (templates "
                          "read and write only inside the allocation's directory)")
    _check_exec(cfg)
    if dict(_thaw(cfg.vault) if cfg.vault else {}).get("enabled") is True:
        raise ConfigError("vault.enabled: Vault integration is not supported by this agent")
    if cfg.syslog_facility.lower() not in SYSLOG_FACILITIES:
        raise ConfigError(f'syslog_facility: unknown facility "{cfg.syslog_facility}", '
                          f"want one of {', '.join(f.upper() for f in SYSLOG_FACILITIES)}")
    if cfg.log_file is not None and not cfg.log_file.strip():
        raise ConfigError("log_file: must not be empty")
    for f in cfg.telemetry.prefix_filter:
        if len(f) < 2 or f[0] not in "+-":
            raise ConfigError(f'telemetry.prefix_filter: "{f}" must be a prefix after + (keep) or - (drop)')
    for key in ("statsd_address", "datadog_address"):
        addr = getattr(cfg.telemetry, key)
        host, _, port = (addr or "").rpartition(":")
        if addr is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f'telemetry.{key}: want host:port, got "{addr}"')
    _check_bounds(cfg, "")
    _check_server(cfg.server)
    _check_client(cfg.client)
    _check_tls(cfg)
    dirs = {"data_dir": cfg.data_dir, "plugin_dir": cfg.plugin_dir,
            "server.data_dir": cfg.server.data_dir, "client.state_dir": cfg.client.state_dir,
            "client.alloc_dir": cfg.client.alloc_dir}
    for key, path in dirs.items():
        if path is not None and not Path(path).is_absolute():
            raise ConfigError(f'{key}: must be an absolute path, got "{path}"')
    if cfg.dev_mode:
        return [CONSUL_WARNING] if cfg.consul else []
    if cfg.server.enabled and not cfg.data_dir:
        raise ConfigError('data_dir: Must specify "data_dir" config option or "data-dir" CLI flag')
    c = cfg.client
    if c.enabled and not cfg.data_dir and not (c.state_dir and c.alloc_dir and cfg.plugin_dir):
        raise ConfigError("data_dir: Must specify the state, alloc dir, and plugin dir "
                          "if data-dir is omitted.")
    # Nomad warns unless both the HTTP API and RPC are on TLS.
    warnings = [] if cfg.tls.http and cfg.tls.rpc else [MTLS_WARNING]
    if cfg.server.enabled and cfg.server.bootstrap_expect == 1:
        warnings.append(BOOTSTRAP_ONE_WARNING)
    if cfg.server.enabled and cfg.server.bootstrap_expect % 2 == 0:
        warnings.append(BOOTSTRAP_EVEN_WARNING)  # (quirk) fires for 0 too
    if cfg.consul:
        warnings.append(CONSUL_WARNING)
    return warnings


def _check_bounds(obj: Any, prefix: str) -> None:
    """Every ``ge``/``gt``/``le`` bound declared on a field, recursively."""
    for key, (f, kind) in _schema(type(obj)).items():
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(kind):
            if value is not None:
                _check_bounds(value, f"{prefix}{key}.")
            continue
        show = format_duration if kind == "dur" else str
        if isinstance(value, float) and not math.isfinite(value):  # nan passes every bound check
            raise ConfigError(f"{prefix}{key}: must be a finite number, got {value}")
        for op, bad in (("ge", lambda v, b: v < b), ("gt", lambda v, b: v <= b),
                        ("le", lambda v, b: v > b)):
            bound = f.metadata.get(op)
            if bound is not None and value is not None and bad(value, bound):
                sign = {"ge": ">=", "gt": ">", "le": "<="}[op]
                raise ConfigError(f"{prefix}{key}: must be {sign} {show(bound)}, got {show(value)}")


def _check_server(s: ServerConfig) -> None:
    if s.raft_protocol != 3:
        raise ConfigError("server.raft_protocol: raft_protocol must be 3 in Nomad v1.4 "
                          f"and later, got {s.raft_protocol}")
    if s.server_join.start_join and s.server_join.retry_join:
        raise ConfigError("server.server_join: start_join and retry_join are mutually exclusive")
    _check_cloud_join("server", s.server_join)
    for name in s.enabled_schedulers:
        if name not in ("service", "batch", "system", "sysbatch", "_core"):
            raise ConfigError(f'server.enabled_schedulers: unknown scheduler "{name}" (want service, batch, '
                              "system or sysbatch)")
    # Nomad's convertServerConfig checks and messages.
    max_priority = s.job_max_priority or 100
    if not 100 <= max_priority <= 32766:
        raise ConfigError(f"server.job_max_priority: job_max_priority cannot be {s.job_max_priority}. "
                          "Must be between 100 and 32766")
    if s.job_default_priority and not 50 <= s.job_default_priority < max_priority:
        raise ConfigError("server.job_default_priority: job_default_priority cannot be "
                          f"{s.job_default_priority}. Must be between 50 and {max_priority}")
    if s.job_tracked_versions <= 0:
        raise ConfigError("server.job_tracked_versions: job_tracked_versions must be greater than 0")
    try:
        parse_size(s.job_max_source_size)
    except ValueError as e:
        raise ConfigError(f"server.job_max_source_size: {e}") from None
    if s.default_scheduler_config and s.default_scheduler_config.scheduler_algorithm not in ("", "binpack",
                                                                                            "spread"):
        # Nomad's SchedulerConfiguration.Validate, checked when the server starts.
        raise ConfigError("server.default_scheduler_config: invalid scheduler algorithm: "
                          f"{s.default_scheduler_config.scheduler_algorithm}")
    if s.gossip_profile not in GOSSIP_PROFILES:
        raise ConfigError(f'server.gossip_profile: unknown profile "{s.gossip_profile}", '
                          f"want one of {', '.join(GOSSIP_PROFILES)}")
    if s.encrypt:
        try:
            key = base64.b64decode(s.encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("server.encrypt: Invalid encryption key: not valid base64") from None
        if len(key) not in (16, 24, 32):  # memberlist: AES-128/192/256
            raise ConfigError("server.encrypt: Invalid encryption key: must decode to "
                              f"16, 24 or 32 bytes, got {len(key)}")


def parse_port_ranges(spec: str) -> tuple[int, ...]:
    """Nomad's ParsePortRanges: ``"22,80,8000-8100"`` -> the ports, sorted; ValueError if malformed."""
    ports: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo, hi = int(lo_s), int(hi_s) if sep else int(lo_s)
        except ValueError:
            raise ValueError(f"invalid port range {part!r}") from None
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"invalid port range {part!r}: ports are 1-65535, low to high")
        ports.update(range(lo, hi + 1))
    return tuple(sorted(ports))


def _check_cloud_join(role: str, join: ServerJoin) -> None:
    """A go-discover cloud auto-join entry ("provider=aws tag_key=..."): Nomad asks the cloud for the
    servers' addresses; this agent cannot, and would retry a name that never resolves, so it says so."""
    for key in ("start_join", "retry_join"):
        for addr in getattr(join, key):
            if "provider=" in addr:
                raise ConfigError(f'{role}.server_join.{key}: "{addr}": cloud auto-join (go-discover) is '
                                  "not supported by this agent; list the servers' addresses instead")


def _check_client(c: ClientConfig) -> None:
    _check_cloud_join("client", c.server_join)
    if c.server_join.start_join:
        raise ConfigError("client.server_join.start_join: not allowed for clients "
                          "(use retry_join or client.servers)")
    if not _NODE_POOL.fullmatch(c.node_pool):
        raise ConfigError(f'client.node_pool: invalid node pool "{c.node_pool}": '
                          "want 1-128 letters, digits, '-' or '_'")
    if c.node_pool == "all":
        raise ConfigError('client.node_pool: node is not allowed to register in node pool "all"')
    if c.min_dynamic_port > c.max_dynamic_port:
        raise ConfigError(f"client.min_dynamic_port ({c.min_dynamic_port}) must be <= "
                          f"client.max_dynamic_port ({c.max_dynamic_port})")
    try:
        parse_port_ranges(c.reserved.reserved_ports)
    except ValueError as e:
        raise ConfigError(f"client.reserved.reserved_ports: {e}") from None
    for key in ("http_max_size", "decompression_size_limit"):
        try:
            parse_size(getattr(c.artifact, key))
        except ValueError as e:
            raise ConfigError(f"client.artifact.{key}: {e}") from None
    for key, _ in c.meta if c.enabled else ():
        if not _META_KEY.fullmatch(key):
            raise ConfigError(f'client.meta: invalid key "{key}"')
    for name, path, _ in c.host_volume if c.enabled else ():
        check_host_volume(name, path)
    for name, cidr, _, reserved in c.host_network:
        check_host_network(name, cidr, reserved)


def check_host_network(name: str, cidr: str, reserved_ports: str) -> None:
    """A ``host_network`` block: each of its comma-separated CIDRs parses, and so do its reserved ports."""
    where = f'client.host_network "{name}"'
    for part in cidr.split(",") if cidr else ():
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ConfigError(f'{where}: invalid CIDR address: {part.strip()}') from None
    try:
        parse_port_ranges(reserved_ports)
    except ValueError as e:
        raise ConfigError(f"{where}: reserved_ports: {e}") from None


def check_host_volume(name: str, path: str) -> None:
    """A ``host_volume`` block's path: given (Nomad's "Missing path in host_volume config"), and an
    existing directory, checked when the client starts as Nomad's setupNode does (it stats the path;
    a file is refused here too, since a volume is mounted as a directory)."""
    where = f'client.host_volume "{name}"'
    if not path:
        raise ConfigError(f"{where}: Missing path in host_volume config")
    if not Path(path).is_absolute():
        raise ConfigError(f'{where}: path must be an absolute path, got "{path}"')
    try:
        st = Path(path).stat()
    except OSError as e:
        raise ConfigError(f"{where}: failed to validate volume {name}, err: stat {path}: "
                          f"{(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{where}: failed to validate volume {name}, err: {path} is not a directory")


TLS_VERSIONS = ("tls10", "tls11", "tls12", "tls13")  # Nomad's tls_min_version values


def _check_tls(cfg: Config) -> None:
    """The tls block's files load (read now, so a bad path stops start-up with the key at fault)."""
    t = cfg.tls
    if t.tls_min_version not in TLS_VERSIONS:
        raise ConfigError(f'tls.tls_min_version: unsupported TLS version "{t.tls_min_version}", '
                          f"valid versions are {', '.join(TLS_VERSIONS)}")
    if not (t.http or t.rpc):
        return
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(t, key)
        if path is not None and "\0" in path:
            raise ConfigError(f"tls.{key}: contains invalid characters (null)")
    from runtime.tls import TlsError, TlsSettings, check_files

    try:
        check_files(TlsSettings.from_config(cfg))
    except TlsError as e:
        raise ConfigError(str(e)) from None


# -- reload and output ---------------------------------------------------------


def reloadable_diff(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Changed file keys, split into what SIGHUP applies and what needs a restart."""
    changed: list[str] = []
    _diff(old, new, "", changed)
    return ([k for k in changed if k in RELOADABLE],
            [k for k in changed if k not in RELOADABLE])


def _diff(old: Any, new: Any, prefix: str, out: list[str]) -> None:
    for key, (f, _) in _schema(type(old)).items():
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            _diff(a, b, f"{prefix}{key}.", out)
        else:
            out.append(prefix + key)


_GO_WORDS = {"http": "HTTP", "https": "HTTPS", "rpc": "RPC", "ttl": "TTL", "gc": "GC", "cpu": "CPU",
             "uuid": "UUID", "ca": "CA", "tls": "TLS"}
_GO_NAMES = {"name": "NodeName", "acl": "ACL", "tls": "TLSConfig", "leave_on_interrupt": "LeaveOnInt",
             "leave_on_terminate": "LeaveOnTerm", "encrypt": "EncryptKey",
             "advertise": "AdvertiseAddrs", "memory": "MemoryMB", "disk": "DiskMB",
             "retry_max": "RetryMaxAttempts", "plugin": "Plugins", "ui": "UI", "ui_url": "BaseUIURL",
             "show_cli_hints": "ShowCLIHints", "cpu_total_compute": "CpuCompute",
             "memory_total_mb": "MemoryMB", "consul": "Consul", "vault": "Vault",
             "http_api_response_headers": "HTTPAPIResponseHeaders", "disk_total_mb": "DiskTotalMB",
             "disk_free_mb": "DiskFreeMB", "host_volume": "HostVolumes",
             "host_network": "HostNetworks"}


# Field names that depend on the block: Nomad's TLSConfig names its on/off switches EnableHTTP and
# EnableRPC, where its Ports and Addresses have HTTP and RPC.
_GO_FIELD_NAMES = {("Tls", "http"): "EnableHTTP", ("Tls", "rpc"): "EnableRPC"}


def _go_name(key: str, block: str = "") -> str:
    return _GO_FIELD_NAMES.get((block, key)) or _GO_NAMES.get(key) or "".join(
        _GO_WORDS.get(w, w.capitalize()) for w in key.split("_"))


def to_dict(cfg: Any) -> dict[str, Any]:
    """The ``config`` section of ``/v1/agent/self``: Go field names, no secrets.

    As Go's JSON does: durations are integer nanoseconds, maps are objects;
    a set secret reads ``<redacted>``.
    """
    out: dict[str, Any] = {}
    for key, (f, kind) in _schema(type(cfg)).items():
        value = getattr(cfg, f.name)
        if f.metadata.get("secret"):
            value = "<redacted>" if value else ""
        elif dataclasses.is_dataclass(kind):
            value = None if value is None else to_dict(value)
        elif kind == "dur":
            value = round(value * 1e9)
        elif kind == "map":
            value = dict(value)
        elif kind == "list":
            value = list(value)
        elif kind == "opaque":
            value = {k: "<redacted>" if "token" in k.lower() else v for k, v in _thaw(value).items()} if value \
                else None
        elif kind == "plugins":  # Nomad's Plugins: [{Name, Args, Config}]
            value = [{"Name": n, "Args": list(a), "Config": _thaw(c)} for n, (c, a) in value]
        elif kind == "host_volumes":  # Nomad's HostVolumes: [{Name, Path, ReadOnly}]
            value = [{"Name": n, "Path": p, "ReadOnly": ro} for n, p, ro in value] or None
        elif kind == "host_networks":  # Nomad's HostNetworks: [{Name, CIDR, Interface, ReservedPorts}]
            value = [{"Name": n, "CIDR": c, "Interface": i, "ReservedPorts": r}
                     for n, c, i, r in value] or None
        out[_go_name(key, type(cfg).__name__)] = value
    return out
