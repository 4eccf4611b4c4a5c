"""Keys of Nomad's agent configuration that this agent does not use, and Nomad's deprecated aliases.

An operator's existing Nomad config must load: every key Nomad's
``command/agent/config.go`` knows is either a field of runtime.config's tree,
or listed here.  A listed key is **accepted with a warning** that names it and
says why nothing happens (an Enterprise feature, a storage engine this agent
does not have, a networking mode it does not run, a metrics sink it lacks),
unless ignoring the value given would weaken what the operator asked for --
then it is **refused** with a clear error (``refuse`` below): a setting that
restricts or secures something is never silently dropped.

Nomad's deprecated ``server { start_join, retry_join, retry_max,
retry_interval }`` are moved into ``server.server_join`` with Nomad's warning
and its errors when both forms are given (command.go handleRetryJoin,
retry_join.go Validate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ENT = "a Nomad Enterprise feature"
_NO_CSI = "this agent has no CSI plugins or dynamic host volumes"
_NO_BRIDGE = "this agent has no bridge networking or CNI (a job asking for it is refused)"
_NO_SINK = "this agent's metrics sinks are the in-memory one, Prometheus, statsd and DogStatsD"


# dotted key -> (why nothing happens here, refuse: a predicate on the value that makes it an error)
IGNORED: dict[str, tuple[str, Callable[[Any], bool] | None]] = {
    # -- top level
    "rpc": ("this agent's RPC connections are not yamux-multiplexed, so yamux's tuning does not apply", None),
    "disable_anonymous_signature": ("deprecated; Nomad ignores it too", None),
    "sentinel": (_ENT, None),
    "audit": (_ENT, None),
    "reporting": (_ENT, None),
    "eventlog": ("Windows event log only", None),
    # An external KMS wrapping the root keyring: keys would be kept unwrapped instead.  "aead" is Nomad's
    # own built-in keyring, which this agent's is.
    "keyring": ("only the built-in \"aead\" keyring is supported here (no external KMS providers)",
                lambda v: not isinstance(v, dict) or set(v) - {"aead"}),
    # -- client
    "client.stats": ("host statistics here are taken when asked for, not collected on an interval", None),
    "client.template.max_stale": ("templates here read the servers' own data, not Consul's", None),
    "client.template.vault_default_lease_duration": ("this agent does not integrate with Vault", None),
    "client.template.use_client_consul_token": ("this agent does not integrate with Consul", None),
    **{f"client.artifact.{k}_timeout": ("artifacts here are fetched over HTTP(S) only", None)
       for k in ("git", "hg", "gcs", "s3")},
    "client.artifact.disable_filesystem_isolation": ("artifacts here are fetched by the agent itself, over "
                                                     "HTTP(S), with no external getter to confine", None),
    "client.artifact.filesystem_isolation_extra_paths": ("artifacts here are fetched by the agent itself, "
                                                         "with no external getter to confine", None),
    "client.artifact.set_environment_variables": ("artifacts here are fetched by the agent itself, with "
                                                  "no external getter to pass an environment to", None),
    "client.artifact.disable_artifact_inspection": ("artifacts here are unpacked by the agent itself, which "
                                                    "checks every entry", None),
    "client.alloc_mounts_dir": (_NO_CSI, None),
    "client.host_volumes_dir": (_NO_CSI, None),
    "client.host_volume_plugin_dir": (_NO_CSI, None),
    "client.common_plugin_dir": (_NO_CSI, None),
    "client.gc_volumes_on_node_gc": (_NO_CSI, None),
    "client.preferred_address_family": ("the node's address is the network_interface's first IPv4 address",
                                        None),
    "client.network_speed": ("deprecated in Nomad; bandwidth is not scheduled", None),
    "client.cpu_disable_dmidecode": ("this agent does not run dmidecode", None),
    "client.reservable_cores": ("tasks here reserve CPU in MHz, not whole cores", None),
    "client.client_min_port": ("deprecated in Nomad (its executor plugins' ports)", None),
    "client.client_max_port": ("deprecated in Nomad (its executor plugins' ports)", None),
    "client.gc_parallel_destroys": ("each allocation's runner destroys its own directory", None),
    "client.cni_path": (_NO_BRIDGE, None),
    "client.cni_config_dir": (_NO_BRIDGE, None),
    "client.bridge_network_name": (_NO_BRIDGE, None),
    "client.bridge_network_subnet": (_NO_BRIDGE, None),
    "client.bridge_network_subnet_ipv6": (_NO_BRIDGE, None),
    "client.bridge_network_hairpin_mode": (_NO_BRIDGE, None),
    # Nomad's own defaults change nothing here; another parent (tasks confined to a slice) is refused.
    "client.cgroup_parent": ("the exec driver's cgroups are made under nomad.slice (v2) or /nomad (v1) only",
                             lambda v: v not in ("", "nomad.slice", "/nomad", "nomad")),
    "client.nomad_service_discovery": ("Nomad's service discovery is always on here", None),
    "client.users": ("tasks run as a named user or nobody; there is no dynamic user pool", None),
    "client.log_file": ("the agent's log_file serves the whole agent", None),
    "client.fingerprint": ("fingerprinters here take no per-fingerprinter configuration", None),
    # -- server
    # Strict enforcement refuses clients without an introduction token: refused rather than dropped.
    "server.client_introduction": ("introduction tokens are not supported: clients here register with their "
                                   "node secret alone",
                                   lambda v: isinstance(v, dict) and v.get("enforcement") == "strict"),
    "server.protocol_version": ("deprecated in Nomad", None),
    "server.csi_volume_claim_gc_interval": (_NO_CSI, None),
    "server.csi_volume_claim_gc_threshold": (_NO_CSI, None),
    "server.csi_plugin_gc_threshold": (_NO_CSI, None),
    "server.root_key_gc_interval": ("the variables keyring is not rotated here", None),
    "server.root_key_gc_threshold": ("the variables keyring is not rotated here", None),
    "server.root_key_rotation_threshold": ("the variables keyring is not rotated here", None),
    "server.non_voting_server": (_ENT, None),
    "server.redundancy_zone": (_ENT, None),
    "server.upgrade_version": (_ENT, None),
    "server.license_path": (_ENT, None),
    "server.plan_rejection_tracker": ("plans are not rejected per node here, so no node is marked ineligible"
                                      " for it", None),
    "server.plan_apply_pipeline": ("plans are applied one at a time here", None),
    "server.search": ("/v1/search and /v1/search/fuzzy use Nomad's default limits (actors.http_search)", None),
    "server.deploy_query_rate_limit": ("the deployment watcher here has no query rate limit", None),
    "server.raft_logstore": ("this agent's Raft log is SQLite", None),
    "server.raft_boltdb": ("this agent's Raft log is SQLite", None),
    "server.oidc_issuer": ("workload identities are not served for OIDC discovery here", None),
    "server.start_timeout": ("a server here starts without a timeout of its own", None),
    "server.log_file": ("the agent's log_file serves the whole agent", None),
    "server.non_production": ("this agent has no production checks to relax", None),
    # -- tls, ui, autopilot
    "tls.rpc_upgrade_mode": ("RPC here is TLS-only once tls.rpc is on (no plaintext upgrade window)", None),
    # A restriction on the TLS ciphers: refused rather than dropped.
    "tls.tls_cipher_suites": ("not supported by this agent (its TLS uses OpenSSL's default suites for "
                              "tls_min_version)", lambda v: True),
    "ui.content_security_policy": ("this agent serves no web UI pages", None),
    "autopilot.enable_redundancy_zones": (_ENT, None),
    "autopilot.disable_upgrade_migration": (_ENT, None),
    "autopilot.enable_custom_upgrades": (_ENT, None),
    # -- telemetry
    "telemetry.statsite_address": (_NO_SINK, None),
    "telemetry.use_node_name": ("metrics here carry the host's name unless disable_hostname", None),
    "telemetry.include_alloc_metadata_in_metrics": ("allocation metrics here carry no job metadata", None),
    "telemetry.allowed_metadata_keys_in_metrics": ("allocation metrics here carry no job metadata", None),
    "telemetry.disable_quota_utilization_metrics": (_ENT, None),
    "telemetry.disable_rpc_rate_metrics_labels": ("RPC rate metrics are not emitted here", None),
    "telemetry.disable_allocation_hook_metrics": ("allocation hook metrics are not emitted here", None),
    **{f"telemetry.circonus_{k}": (_NO_SINK, None) for k in (
        "api_token", "api_app", "api_url", "submission_interval", "submission_url", "check_id",
        "check_force_metric_activation", "check_instance_id", "check_search_tag", "check_tags",
        "check_display_name", "broker_id", "broker_select_tag")},
}

# Nomad's older names, read as the newer (config.go's Merge and template config: function_blacklist is
# function_denylist's old name).
RENAMED = {("client", "template", "function_blacklist"): "function_denylist"}


def rename_old_keys(table: dict[str, Any]) -> None:
    """Nomad's older key names, renamed in place to the newer (a newer one given too wins)."""
    for path, new in RENAMED.items():
        node: Any = table
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            old = node.pop(path[-1])
            node.setdefault(new, old)


_JOIN_ALIASES = ("start_join", "retry_join", "retry_max", "retry_interval")
DEPRECATED_JOIN_WARNING = ("WARNING: server: using deprecated retry_join fields. Upgrade configuration to "
                           "use server_join")


def ignored(key: str, value: Any, src: str) -> str | None:
    """*key* (dotted) is one of Nomad's that this agent does not use: the warning to give, or raises
    ValueError when the value given must not be dropped.  None: not such a key."""
    entry = IGNORED.get(key)
    if entry is None:
        return None
    why, refuse = entry
    if refuse is not None and refuse(value):
        raise ValueError(f"{key}: {why} (in {src})")
    return f"WARNING: {key}: ignored: {why} (in {src})"


def move_deprecated_join(table: dict[str, Any]) -> str | None:
    """Nomad's deprecated ``server { retry_join = [...] }`` and friends, moved into the file's
    ``server.server_join`` in place (Nomad's handleRetryJoin); the warning, or None.  Raises
    ValueError, with Nomad's message, when a file sets both forms."""
    server = table.get("server")
    if not isinstance(server, dict) or not any(k in server for k in _JOIN_ALIASES):
        return None
    join = server.get("server_join")
    join = dict(join) if isinstance(join, dict) else {}
    if join.get("retry_join"):  # retry_join.go Validate, its order and messages
        for key in ("retry_join", "start_join", "retry_max", "retry_interval"):
            if server.get(key):
                raise ValueError(f"server_join and {key} cannot both be defined; prefer setting the "
                                 "server_join block")
    if server.get("start_join") and join.get("start_join"):
        raise ValueError("server_join and start_join cannot both be defined; prefer setting the server_join "
                         "block")
    server = dict(server)
    for key in _JOIN_ALIASES:
        if key in server:
            join[key] = server.pop(key)
    server["server_join"] = join
    table["server"] = server
    return DEPRECATED_JOIN_WARNING
