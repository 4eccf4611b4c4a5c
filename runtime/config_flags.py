"""``nomad agent`` command-line flags (``command/agent/command.go`` ``readConfig``).

Go ``flag`` syntax: ``-flag value`` or ``-flag=value`` (``--flag`` works too);
a boolean flag takes no separate value (``-server``, ``-server=false``);
``--`` ends the flags.  Only flags Nomad has are accepted.  The config is
built as Nomad builds it: the defaults (or ``DevConfig`` with ``-dev``), then
each ``-config`` path in order, then the flags, merged with the rules in
:mod:`runtime.config`; then validated.
"""

from __future__ import annotations

from typing import Any

from runtime.config import (
    DEV_OVERLAY,
    Config,
    ConfigError,
    build_overlay,
    merge_overlays,
    load_overlays,
    parse_duration,
    validate,
)

__all__ = ["FLAGS", "parse_args"]

# flag -> (path of field names in the Config tree, kind).  Kinds: bool, int,
# str, "dur" (Go duration), "list" (repeatable), "csv" (comma-split), "kv"
# (repeatable KEY=VALUE).
FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    # role
    "server": (("server", "enabled"), bool),
    "client": (("client", "enabled"), bool),
    # server only
    "bootstrap-expect": (("server", "bootstrap_expect"), int),
    "rejoin": (("server", "rejoin_after_leave"), bool),
    "join": (("server", "server_join", "start_join"), "list"),
    "retry-join": (("server", "server_join", "retry_join"), "list"),
    "retry-max": (("server", "server_join", "retry_max"), int),
    "retry-interval": (("server", "server_join", "retry_interval_s"), "dur"),
    "encrypt": (("server", "encrypt"), str),
    "raft-protocol": (("server", "raft_protocol"), int),
    # client only
    "state-dir": (("client", "state_dir"), str),
    "alloc-dir": (("client", "alloc_dir"), str),
    "node-class": (("client", "node_class"), str),
    "node-pool": (("client", "node_pool"), str),
    "servers": (("client", "servers"), "csv"),
    "meta": (("client", "meta"), "kv"),
    "network-interface": (("client", "network_interface"), str),
    # general
    "bind": (("bind_addr",), str),
    "region": (("region",), str),
    "data-dir": (("data_dir",), str),
    "plugin-dir": (("plugin_dir",), str),
    "dc": (("datacenter",), str),
    "log-level": (("log_level",), str),
    "log-json": (("log_json",), bool),
    "log-include-location": (("log_include_location",), bool),
    "node": (("name",), str),
    "acl-enabled": (("acl", "enabled"), bool),
    "acl-replication-token": (("acl", "replication_token"), str),
}
# Nomad's flags for settings this agent does not use: -flag -> (Nomad's config key, why nothing happens,
# refused).  An accepted one warns as the key does in a file (runtime.config_nomad_keys); a refused one
# would leave the operator without what they asked for.
_NO_CONSUL = "this agent does not integrate with Consul"
_NO_VAULT = "this agent does not integrate with Vault"
UNUSED_FLAGS: dict[str, tuple[str, str, bool]] = {
    "dev-connect": ("", "Consul Connect needs bridge networking, which this agent does not have", True),
    "dev-consul": ("", _NO_CONSUL, True),
    "dev-vault": ("", _NO_VAULT, True),
    "client-intro-token": ("client.intro_token", "client introduction tokens are not supported here", True),
    "alloc-mounts-dir": ("client.alloc_mounts_dir", "this agent has no CSI plugins or dynamic host volumes",
                         False),
    "host-volumes-dir": ("client.host_volumes_dir", "this agent has no dynamic host volumes", False),
    "host-volume-plugin-dir": ("client.host_volume_plugin_dir", "this agent has no dynamic host volumes",
                               False),
    "preferred-address-family": ("client.preferred_address_family",
                                 "the node's address is the network_interface's first IPv4 address", False),
    "network-speed": ("client.network_speed", "deprecated in Nomad; bandwidth is not scheduled", False),
    "eventlog": ("eventlog.enabled", "Windows event log only", False),
    "eventlog-level": ("eventlog.level", "Windows event log only", False),
    **{f"consul-{n}": (f"consul.{n.replace('-', '_')}", _NO_CONSUL, False) for n in (
        "auth", "ca-file", "cert-file", "key-file", "client-service-name", "client-http-check-name",
        "client-failures-before-critical", "client-failures-before-warning", "server-service-name",
        "server-http-check-name", "server-serf-check-name", "server-rpc-check-name",
        "server-failures-before-critical", "server-failures-before-warning", "token", "address")},
    **{f"vault-{n}": (f"vault.{n.replace('-', '_')}", _NO_VAULT, False) for n in (
        "address", "namespace", "create-from-role", "ca-file", "ca-path", "cert-file", "key-file",
        "tls-server-name")},
}
_UNUSED_BOOLS = {"dev-connect", "dev-consul", "dev-vault", "eventlog"}
_GO_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
             "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


def parse_args(argv: list[str], *, reload: bool = False) -> tuple[Config, list[str], list[str]]:
    """Build and validate the agent config from ``nomad agent`` flags.

    With *reload* (SIGHUP) a bad ``log_level`` is left for the agent to
    report (:func:`~runtime.config.validate`).

    Returns the config, the config files loaded (for the banner) and the
    warnings to print before it (``No configuration loaded from <p>``, then
    :func:`~runtime.config.validate`'s).  Raises :class:`ConfigError`.
    """
    dev, paths, flags, flag_warnings = _parse(argv)
    files, loaded, warnings = load_overlays(paths)
    base = DEV_OVERLAY if dev else {}
    overlay = merge_overlays(Config, merge_overlays(Config, base, files), flags)
    cfg: Config = build_overlay(Config, overlay)
    bootstrap = flags.get("server", {}).get("bootstrap_expect", 0)
    if not dev and bootstrap > 0 and not cfg.server.enabled:
        # Nomad checks this for the flag only: a shared file may carry the key.
        raise ConfigError(f"server.bootstrap_expect: Bootstrap requires server mode to "
                          f"be enabled (-bootstrap-expect={bootstrap})")
    return cfg, loaded, warnings + flag_warnings + validate(cfg, reload=reload)


def _parse(argv: list[str]) -> tuple[bool, list[str], dict, list[str]]:
    """argv -> (dev, config paths, overlay of the flags, warnings for Nomad flags not used here)."""
    dev, paths, overlay, warnings = False, [], {}, []
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":  # Go: the end of the flags
            break
        name, eq, value = arg[2 if arg.startswith("--") else 1:].partition("=")
        if not name or name[0] in "-=":
            raise ConfigError(f"bad flag syntax: {arg}")
        if name == "dev" or FLAGS.get(name, ((), None))[1] is bool:
            flag_value = _parse_bool(name, value) if eq else True
            if name == "dev":
                dev = flag_value
            else:
                _set(overlay, FLAGS[name][0], flag_value)
            continue
        if name in UNUSED_FLAGS:
            warnings.append(_unused_flag(name, eq, value, args))
            continue
        if name != "config" and name not in FLAGS:
            raise ConfigError(f"flag provided but not defined: -{name}")
        if not eq:
            if not args:
                raise ConfigError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        if name == "config":
            paths.append(value)
        else:
            _apply(overlay, name, value)
    if args:  # Go's flag package stops at the first non-flag; the agent takes none
        raise ConfigError(f'unexpected argument "{args[0]}": the agent takes only flags')
    return dev, paths, overlay, warnings


def _unused_flag(name: str, eq: str, value: str, args: list[str]) -> str:
    """Consume a Nomad flag this agent does not use; its warning, or ConfigError when refused."""
    key, why, refused = UNUSED_FLAGS[name]
    if name in _UNUSED_BOOLS:
        on = _parse_bool(name, value) if eq else True
    else:
        if not eq:
            if not args:
                raise ConfigError(f"flag needs an argument: -{name}")
            args.pop(0)
        on = True
    if refused and on:
        raise ConfigError(f"-{name}: not supported by this agent ({why})")
    target = f" (the flag for {key})" if key else ""
    return f"WARNING: -{name}: ignored: {why}{target}"


def _parse_bool(name: str, value: str) -> bool:
    if value not in _GO_BOOLS:
        raise ConfigError(f'invalid boolean value "{value}" for -{name}: parse error')
    return _GO_BOOLS[value]


def _apply(overlay: dict, name: str, value: str) -> None:
    path, kind = FLAGS[name]
    if kind is int:
        try:
            parsed: Any = int(value, 10)
        except ValueError:
            raise ConfigError(f'invalid value "{value}" for flag -{name}: parse error') from None
    elif kind == "dur":
        try:
            parsed = parse_duration(value)
        except ValueError as e:
            raise ConfigError(f"invalid value for flag -{name}: {e}") from None
    elif kind == "list":
        parsed = _get(overlay, path, []) + [value]
    elif kind == "csv":  # strings.Split(servers, ","); empty items dropped
        parsed = [s.strip() for s in value.split(",") if s.strip()]
    elif kind == "kv":
        key, eq, val = value.partition("=")
        if not eq:
            raise ConfigError(f'-meta: expected KEY=VALUE, got "{value}"')
        parsed = {**_get(overlay, path, {}), key: val}
    else:
        parsed = value
    _set(overlay, path, parsed)


def _get(overlay: dict, path: tuple[str, ...], default: Any) -> Any:
    for name in path[:-1]:
        overlay = overlay.get(name, {})
    return overlay.get(path[-1], default)


def _set(overlay: dict, path: tuple[str, ...], value: Any) -> None:
    for name in path[:-1]:
        overlay = overlay.setdefault(name, {})
    overlay[path[-1]] = value
