"""The agent configuration: Nomad's defaults, files, flags, validation, reload."""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.config import (
    BOOTSTRAP_EVEN_WARNING,
    BOOTSTRAP_ONE_WARNING,
    MTLS_WARNING,
    NO_ROLE_ERROR,
    Config,
    ConfigError,
    format_duration,
    load_files,
    parse_args,
    parse_duration,
    reloadable_diff,
    to_dict,
    validate,
)

_counter = itertools.count()


def write(tmp_path, text, name=None):
    path = tmp_path / (name or f"c{next(_counter)}.toml")
    path.write_text(text)
    return str(path)


def load(tmp_path, text):
    cfg, _, _ = load_files([write(tmp_path, text)])
    return cfg


SERVER = '[server]\nenabled = true\nbootstrap_expect = 3\n'
VALID = 'data_dir = "/var/lib/nomad"\n' + SERVER


# -- defaults and dev mode -------------------------------------------------------


def test_defaults_match_nomad():
    c = Config()
    assert (c.region, c.datacenter, c.name, c.bind_addr) == ("global", "dc1", None, "0.0.0.0")
    assert (c.ports.http, c.ports.rpc, c.ports.serf) == (4646, 4647, 4648)
    assert c.log_level == "INFO" and not c.leave_on_interrupt and not c.leave_on_terminate
    s = c.server
    assert not s.enabled and s.bootstrap_expect == 0 and s.raft_protocol == 3
    assert (s.heartbeat_grace_s, s.min_heartbeat_ttl_s) == (10.0, 10.0)
    assert s.max_heartbeats_per_second == 50.0 and s.failover_heartbeat_ttl_s == 300.0
    assert s.node_gc_threshold_s == 24 * 3600 and s.job_gc_threshold_s == 4 * 3600
    assert s.eval_gc_threshold_s == 3600 and s.batch_eval_gc_threshold_s == 24 * 3600
    assert s.server_join.start_join == () and s.server_join.retry_join == ()
    assert s.server_join.retry_interval_s == 30.0 and s.server_join.retry_max == 0
    cl = c.client
    assert not cl.enabled and cl.servers == () and cl.meta == () and cl.node_pool == "default"
    assert cl.drain_on_shutdown is None  # the block is absent by default
    assert c.leave_timeout_s == 5.0  # Nomad's gracefulTimeout constant


def test_drain_on_shutdown_block_presence_enables_nomads_block_defaults(tmp_path):
    cfg = load(tmp_path, "[client.drain_on_shutdown]\n")
    d = cfg.client.drain_on_shutdown
    assert (d.deadline_s, d.force, d.ignore_system_jobs) == (3600.0, False, False)


def test_dev_mode_is_nomads_devconfig():
    cfg, files, warnings = parse_args(["-dev"])
    assert cfg.dev_mode and cfg.server.enabled and cfg.client.enabled
    assert cfg.server.bootstrap_expect == 1 and cfg.log_level == "DEBUG"
    assert cfg.bind_addr == "127.0.0.1"
    assert dict(cfg.client.options)["driver.raw_exec.enable"] == "true"
    assert cfg.telemetry.prometheus_metrics
    assert files == [] and warnings == []  # dev mode skips the mTLS/bootstrap warnings


def test_dev_mode_needs_no_data_dir_and_flags_still_apply():
    cfg, _, _ = parse_args(["-dev", "-region", "eu", "-log-level=WARN"])
    assert (cfg.region, cfg.log_level, cfg.data_dir) == ("eu", "WARN", None)


def test_config_is_immutable_and_hashable():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.region = "x"
    assert hash(cfg) == hash(Config())


# -- files -----------------------------------------------------------------------


def test_later_files_merge_over_earlier_key_by_key(tmp_path):
    a = write(tmp_path, 'region = "r1"\n[server]\nenabled = true\nheartbeat_grace = "20s"\n')
    b = write(tmp_path, 'region = "r2"\n[server]\nmin_heartbeat_ttl = "30s"\n')
    cfg, loaded, warnings = load_files([a, b])
    assert cfg.region == "r2"
    assert cfg.server.enabled and cfg.server.heartbeat_grace_s == 20.0
    assert cfg.server.min_heartbeat_ttl_s == 30.0
    assert loaded == [a, b] and warnings == []


def test_later_file_can_switch_a_setting_off(tmp_path):
    a = write(tmp_path, "leave_on_terminate = true\n")
    b = write(tmp_path, "leave_on_terminate = false\n")
    assert not load_files([a, b])[0].leave_on_terminate


def test_directory_loads_its_toml_files_in_name_order(tmp_path):
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "b.toml").write_text('region = "from-b"\n')
    (d / "a.toml").write_text('region = "from-a"\ndatacenter = "dc-a"\n')
    (d / "c.txt").write_text("not config at all {")
    (d / ".#b.toml").write_text('region = "emacs lock"\n')
    (d / "#b.toml#").write_text('region = "emacs autosave"\n')
    (d / "b.toml~").write_text('region = "backup"\n')
    cfg, loaded, _ = load_files([str(d)])
    assert (cfg.region, cfg.datacenter) == ("from-b", "dc-a")
    assert loaded == [str(d / "a.toml"), str(d / "b.toml")]


def test_client_servers_append_and_meta_merges_per_key_as_in_nomad(tmp_path):
    a = write(tmp_path, '[client]\nservers = ["a:4647"]\nmeta = {rack = "r1", zone = "z1"}\n')
    b = write(tmp_path, '[client]\nservers = ["b:4647"]\nmeta = {rack = "r2"}\n')
    cfg = load_files([a, b])[0]
    assert cfg.client.servers == ("a:4647", "b:4647")
    assert dict(cfg.client.meta) == {"rack": "r2", "zone": "z1"}


def test_server_join_lists_are_replaced_not_appended(tmp_path):
    a = write(tmp_path, '[server.server_join]\nretry_join = ["a", "b"]\nretry_max = 3\n')
    b = write(tmp_path, '[server.server_join]\nretry_join = ["c"]\n')
    sj = load_files([a, b])[0].server.server_join
    assert sj.retry_join == ("c",) and sj.retry_max == 3


def test_a_path_yielding_nothing_warns(tmp_path):
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    empty_file = write(tmp_path, "# only a comment\n")
    cfg, loaded, warnings = load_files([str(empty_dir), empty_file])
    assert cfg == Config() and loaded == []
    assert warnings == [f"No configuration loaded from {empty_dir}",
                        f"No configuration loaded from {empty_file}"]


def test_missing_path_and_bad_toml_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="Error loading configuration from /nonexistent"):
        load_files(["/nonexistent/x.toml"])
    bad = write(tmp_path, "region = \n")
    with pytest.raises(ConfigError, match=f"Error loading configuration from {bad}"):
        load_files([bad])


@pytest.mark.parametrize("text,key", [
    ('srvers = ["x"]\n', "srvers"),
    ('[client]\nsrvers = ["x"]\n', "client.srvers"),
    ('[server.server_join]\nretry_joins = []\n', "server.server_join.retry_joins"),
    ('[server]\nheartbeat_grace_s = "10s"\n', "server.heartbeat_grace_s"),  # file key has no _s
    ("dev_mode = true\n", "dev_mode"),  # only -dev sets it, as in Nomad
])
def test_unknown_key_is_rejected_with_its_dotted_name_and_file(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_files([path])
    assert str(e.value) == f'unknown key "{key}" in {path}'


@pytest.mark.parametrize("text,start", [
    ('[server]\nenabled = "yes"\n', "server.enabled: expected a boolean, got string 'yes'"),
    ('[server]\nbootstrap_expect = 3.5\n', "server.bootstrap_expect: expected an integer"),
    ('[server]\nbootstrap_expect = true\n', "server.bootstrap_expect: expected an integer"),
    ('[client]\nservers = "a:4647"\n', "client.servers: expected a list of strings"),
    ('[client]\nmeta = {rack = [1]}\n', "client.meta.rack: expected a string"),
    ('server = 1\n', "server: expected a table"),
    ('[server]\nheartbeat_grace = 10\n', 'server.heartbeat_grace: expected a duration string'),
    ('[server]\nheartbeat_grace = "10 s"\n', 'server.heartbeat_grace: invalid duration "10 s"'),
])
def test_wrong_type_names_the_key_and_file(tmp_path, text, start):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_files([path])
    assert str(e.value).startswith(start) and str(e.value).endswith(f"(in {path})")


def test_integer_accepted_where_nomad_has_a_float(tmp_path):
    assert load(tmp_path, "[server]\nmax_heartbeats_per_second = 100\n") \
        .server.max_heartbeats_per_second == 100.0


# -- durations ---------------------------------------------------------------------


@pytest.mark.parametrize("text,seconds", [
    ("10s", 10), ("5m", 300), ("24h", 86400), ("1h30m", 5400), ("500ms", 0.5),
    ("1.5h", 5400), ("0", 0), ("2us", 2e-6), ("3µs", 3e-6), ("100ns", 1e-7), ("-1s", -1),
    (".5s", 0.5), ("1m30s250ms", 90.25),
])
def test_durations_parse_like_go(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1d", "1h 30m", "1.s.", "--1s", "1S", "\u0661s"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# Go's time.Duration holds about 292 years (int64 nanoseconds); beyond is invalid.
@given(st.integers(min_value=-9_223_372_036_854, max_value=9_223_372_036_854))
def test_formatted_durations_parse_back(ms):
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


def test_durations_in_files_are_stored_as_seconds(tmp_path):
    cfg = load(tmp_path, '[server]\nnode_gc_threshold = "1h30m"\n'
                         '[client.drain_on_shutdown]\ndeadline = "500ms"\n')
    assert cfg.server.node_gc_threshold_s == 5400.0
    assert cfg.client.drain_on_shutdown.deadline_s == 0.5


# -- flags -------------------------------------------------------------------------


def test_flags_merge_over_files(tmp_path):
    path = write(tmp_path, 'region = "file"\n' + VALID +
                 '[client]\nservers = ["f:4647"]\nmeta = {a = "1", b = "2"}\n')
    cfg, loaded, _ = parse_args(["-config", path, "-region=flag", "-bootstrap-expect", "5",
                                 "-servers=x,y", "-meta", "b=3", "-meta=c=4"])
    assert loaded == [path]
    assert cfg.region == "flag" and cfg.server.bootstrap_expect == 5
    assert cfg.client.servers == ("f:4647", "x", "y")  # Nomad appends -servers
    assert dict(cfg.client.meta) == {"a": "1", "b": "3", "c": "4"}


def test_flag_forms_and_repeatable_flags():
    cfg, _, _ = parse_args([
        "-server", "--data-dir=/d", "-join", "a", "-join=b", "-rejoin=true",
        "-client=false", "-dc", "x1", "-node", "n1", "-encrypt", "x" * 22 + "==",
    ])
    assert cfg.server.enabled and not cfg.client.enabled and cfg.server.rejoin_after_leave
    assert cfg.server.server_join.start_join == ("a", "b")
    assert (cfg.data_dir, cfg.datacenter, cfg.name) == ("/d", "x1", "n1")


def test_retry_flags_set_server_join():
    cfg, _, _ = parse_args(["-server", "-data-dir", "/d", "-retry-join", "h1",
                            "-retry-join", "h2", "-retry-max", "4", "-retry-interval", "15s"])
    sj = cfg.server.server_join
    assert (sj.retry_join, sj.retry_max, sj.retry_interval_s) == (("h1", "h2"), 4, 15.0)


def test_later_config_flags_merge_over_earlier(tmp_path):
    a = write(tmp_path, 'region = "a"\n')
    b = write(tmp_path, 'region = "b"\n')
    assert parse_args(["-dev", "-config", a, "-config", b])[0].region == "b"


@pytest.mark.parametrize("argv,message", [
    (["-http-port", "1"], "flag provided but not defined: -http-port"),
    (["-dev", "-region"], "flag needs an argument: -region"),
    (["-dev", "-retry-max", "x"], 'invalid value "x" for flag -retry-max: parse error'),
    (["-dev", "-retry-interval", "10"], "invalid value for flag -retry-interval"),
    (["-dev", "-server=yes"], 'invalid boolean value "yes" for -server'),
    (["-dev", "-meta", "novalue"], '-meta: expected KEY=VALUE, got "novalue"'),
    (["-server", "true"], 'unexpected argument "true"'),
    (["---dev"], "bad flag syntax: ---dev"),
])
def test_bad_flags_are_rejected_with_nomads_message(argv, message):
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    assert str(e.value).startswith(message)


# -- validation ---------------------------------------------------------------------


def test_neither_server_nor_client_is_rejected_with_nomads_message():
    with pytest.raises(ConfigError) as e:
        parse_args(["-data-dir", "/d"])
    assert str(e.value) == NO_ROLE_ERROR


@pytest.mark.parametrize("extra,message", [
    ("[server]\nbootstrap_expect = -1\n", "server.bootstrap_expect: must be >= 0, got -1"),
    ('[server]\nheartbeat_grace = "-5s"\n', "server.heartbeat_grace: must be >= 0s, got -5s"),
    ('[server]\nmin_heartbeat_ttl = "0"\n', "server.min_heartbeat_ttl: must be > 0s, got 0s"),
    ("[server]\nmax_heartbeats_per_second = 0\n",
     "server.max_heartbeats_per_second: must be > 0, got 0.0"),
    ("[server]\nraft_multiplier = 11\n", "server.raft_multiplier: must be <= 10, got 11"),
    ("[server]\nraft_snapshot_threshold = 0\n", "server.raft_snapshot_threshold: must be >= 1, got 0"),
    ('[server]\nraft_snapshot_interval = "0s"\n', "server.raft_snapshot_interval: must be > 0s, got 0s"),
    ("[server]\nraft_trailing_logs = -1\n", "server.raft_trailing_logs: must be >= 0, got -1"),
    ("[server]\nevent_buffer_size = 0\n", "server.event_buffer_size: must be >= 1, got 0"),
    ("[server]\nraft_protocol = 2\n",
     "server.raft_protocol: raft_protocol must be 3 in Nomad v1.4 and later, got 2"),
    ('[server.server_join]\nretry_interval = "0s"\n',
     "server.server_join.retry_interval: must be > 0s, got 0s"),
    ('[server.server_join]\nstart_join = ["a"]\nretry_join = ["b"]\n',
     "server.server_join: start_join and retry_join are mutually exclusive"),
    ('[server]\nencrypt = "not base64!"\n', "server.encrypt: Invalid encryption key"),
    ('[server]\nencrypt = "c2hvcnQ="\n', "server.encrypt: Invalid encryption key: must decode"),
    ("[ports]\nhttp = 70000\n", "ports.http: must be <= 65535, got 70000"),
    ('log_level = "verbose"\n', 'log_level: invalid log level "verbose"'),
    ('datacenter = "dc*"\n', "datacenter: contains invalid characters"),
    ('plugin_dir = "plugins"\n', 'plugin_dir: must be an absolute path, got "plugins"'),
    ('leave_timeout = "0s"\n', "leave_timeout: must be > 0s, got 0s"),
    ('[client]\nenabled = true\nnode_pool = "all"\n', "client.node_pool: node is not allowed"),
    ('[client]\nenabled = true\nmeta = {"a..b" = "x"}\n', 'client.meta: invalid key "a..b"'),
    ("[client.reserved]\nmemory = -1\n", "client.reserved.memory: must be >= 0, got -1"),
    ('[client.drain_on_shutdown]\ndeadline = "-1s"\n',
     "client.drain_on_shutdown.deadline: must be >= 0s, got -1s"),
    ('[client.server_join]\nstart_join = ["a"]\n',
     "client.server_join.start_join: not allowed for clients"),
])
def test_each_validation_error_is_one_line_naming_the_key(tmp_path, extra, message):
    cfg = load_files([write(tmp_path, VALID), write(tmp_path, extra)])[0]
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_encrypt_key_never_appears_in_an_error(tmp_path):
    cfg = load(tmp_path, VALID + 'encrypt = "c2VjcmV0LXRoYXQtaXMtbG9uZw"\n')
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert "c2VjcmV0" not in str(e.value)


def test_data_dir_must_be_absolute():
    with pytest.raises(ConfigError, match='^data_dir: must be an absolute path, got "rel"$'):
        parse_args(["-server", "-data-dir", "rel"])


def test_server_needs_data_dir_outside_dev_mode():
    with pytest.raises(ConfigError, match='^data_dir: Must specify "data_dir"'):
        parse_args(["-server"])


def test_client_needs_data_dir_or_all_of_its_dirs():
    with pytest.raises(ConfigError, match="^data_dir: Must specify the state, alloc dir"):
        parse_args(["-client", "-state-dir", "/s", "-alloc-dir", "/a"])
    parse_args(["-client", "-state-dir", "/s", "-alloc-dir", "/a", "-plugin-dir", "/p"])


def test_bootstrap_expect_flag_without_server_is_an_error():
    with pytest.raises(ConfigError, match="^server.bootstrap_expect: Bootstrap requires server"):
        parse_args(["-client", "-data-dir", "/d", "-bootstrap-expect", "3"])


def test_bootstrap_expect_from_a_file_is_ignored_on_a_client_as_in_nomad(tmp_path):
    path = write(tmp_path, 'data_dir = "/d"\n[server]\nbootstrap_expect = 3\n')
    cfg, _, _ = parse_args(["-client", "-config", path])
    assert not cfg.server.enabled


@pytest.mark.parametrize("n,expected", [
    (1, [MTLS_WARNING, BOOTSTRAP_ONE_WARNING]),
    (2, [MTLS_WARNING, BOOTSTRAP_EVEN_WARNING]),
    (0, [MTLS_WARNING, BOOTSTRAP_EVEN_WARNING]),  # (quirk) Nomad warns for 0 too
    (3, [MTLS_WARNING]),
])
def test_bootstrap_expect_warnings_match_nomad(n, expected):
    _, _, warnings = parse_args(["-server", "-data-dir", "/d", f"-bootstrap-expect={n}"])
    assert warnings == expected


def test_load_warnings_come_before_validation_warnings(tmp_path):
    empty = write(tmp_path, "")
    _, _, warnings = parse_args(["-server", "-data-dir", "/d", "-config", empty])
    assert warnings[0] == f"No configuration loaded from {empty}"


# -- reload, output, timeouts ------------------------------------------------------


def test_a_bad_log_level_stops_the_start_but_is_left_to_the_agent_on_reload():
    """Nomad's handleReload reports a bad log_level and reloads the rest; start-up refuses it."""
    argv = ["-server", "-data-dir", "/d", "-log-level=LOUD"]
    with pytest.raises(ConfigError, match="log_level: invalid log level"):
        parse_args(argv)
    assert parse_args(argv, reload=True)[0].log_level == "LOUD"


def test_reloadable_diff_splits_what_sighup_applies(tmp_path):
    old = load(tmp_path, VALID)
    new = load(tmp_path, 'log_level = "DEBUG"\nleave_on_terminate = true\n' + VALID +
               'num_schedulers = 2\nheartbeat_grace = "30s"\n'
               '[client]\nmeta = {rack = "r9"}\n[client.drain_on_shutdown]\n')
    reloadable, restart = reloadable_diff(old, new)
    assert sorted(reloadable) == ["log_level", "server.num_schedulers"]
    assert sorted(restart) == ["client.drain_on_shutdown", "client.meta",
                               "leave_on_terminate", "server.heartbeat_grace"]
    assert reloadable_diff(old, old) == ([], [])


def test_reloadable_diff_names_nested_keys(tmp_path):
    old = load(tmp_path, '[client.drain_on_shutdown]\ndeadline = "1m"\n')
    new = load(tmp_path, '[client.drain_on_shutdown]\ndeadline = "2m"\n')
    assert reloadable_diff(old, new) == ([], ["client.drain_on_shutdown.deadline"])


def test_to_dict_redacts_the_gossip_key_and_uses_go_names(tmp_path):
    cfg = load(tmp_path, VALID + 'encrypt = "c2VjcmV0LWtleS0xNi1ieQ=="\n')
    d = to_dict(cfg)
    assert d["Server"]["EncryptKey"] == "<redacted>"
    assert "c2VjcmV0" not in repr(d)
    assert d["LeaveOnInt"] is False and d["LeaveOnTerm"] is False
    assert d["Ports"] == {"HTTP": 4646, "RPC": 4647, "Serf": 4648}
    assert d["Server"]["HeartbeatGrace"] == 10 * 10**9  # Go time.Duration: nanoseconds
    assert to_dict(Config())["Server"]["EncryptKey"] == ""
    # Nomad's TLSConfig (nomad/structs/config/tls.go): its switches are EnableHTTP and EnableRPC.
    tls = {k: d["TLSConfig"][k] for k in ("EnableHTTP", "EnableRPC", "TLSMinVersion", "VerifyHTTPSClient")}
    assert tls == {"EnableHTTP": False, "EnableRPC": False, "TLSMinVersion": "tls12",
                   "VerifyHTTPSClient": False}


def test_graceful_timeout_adds_the_drain_deadline_on_a_client(tmp_path):
    assert Config().graceful_timeout_s() == 5.0
    cfg = load(tmp_path, '[client]\nenabled = true\n[client.drain_on_shutdown]\ndeadline = "1m"\n')
    assert cfg.graceful_timeout_s() == 65.0


def test_raft_snapshot_policy_keys_parse_and_reload(tmp_path):
    old = load(tmp_path, VALID)
    assert (old.server.raft_snapshot_threshold, old.server.raft_snapshot_interval_s,
            old.server.raft_trailing_logs) == (8192, 120.0, 10240)
    new = load(tmp_path, VALID + 'raft_snapshot_threshold = 100\nraft_snapshot_interval = "30s"\n'
                                 'raft_trailing_logs = 0\n')
    assert (new.server.raft_snapshot_threshold, new.server.raft_snapshot_interval_s,
            new.server.raft_trailing_logs) == (100, 30.0, 0)
    assert sorted(reloadable_diff(old, new)[0]) == ["server.raft_snapshot_interval",
                                                   "server.raft_snapshot_threshold",
                                                   "server.raft_trailing_logs"]


# -- plugin blocks -----------------------------------------------------------------


def test_plugin_blocks_load_merge_by_name_and_show_in_agent_self(tmp_path):
    from runtime.config import plugin_config

    first = write(tmp_path, VALID + '[plugin.raw_exec.config]\nenabled = true\n'
                  '[plugin.docker.config]\nallow_caps = ["net_raw"]\nvolumes = { enabled = true }\n')
    later = write(tmp_path, '[plugin.raw_exec]\nargs = ["-v"]\n[plugin.raw_exec.config]\nno_cgroups = true\n')
    cfg, _, _ = load_files([first, later])
    hash(cfg)  # still immutable and hashable
    assert plugin_config(cfg, "raw_exec") == {"enabled": True, "no_cgroups": True}
    assert plugin_config(cfg, "docker") == {"allow_caps": ["net_raw"], "volumes": {"enabled": True}}
    assert plugin_config(cfg, "exec") == {}
    assert to_dict(cfg)["Plugins"] == [
        {"Name": "docker", "Args": [], "Config": {"allow_caps": ["net_raw"], "volumes": {"enabled": True}}},
        {"Name": "raw_exec", "Args": ["-v"], "Config": {"enabled": True, "no_cgroups": True}}]


@pytest.mark.parametrize("text, error", [
    ('[plugin.raw_exec.config]\nenabled = "yes"\n',
     "plugin.raw_exec.config.enabled: expected a boolean, got string 'yes'"),
    ('[plugin.raw_exec.config]\nenable = true\n', 'unknown key "plugin.raw_exec.config.enable"'),
    ('[plugin.raw_exec.config]\ndenied_host_uids = "0"\n',
     "plugin.raw_exec.config.denied_host_uids: not supported by this agent"),
    ('[plugin.raw_exec]\nconfg = {}\n', 'unknown key "plugin.raw_exec.confg"'),
    ('[plugin.raw_exec]\nconfig = 3\n', "plugin.raw_exec.config: expected a table, got 3"),
    ('[plugin.raw_exec]\nargs = [1]\n', "plugin.raw_exec.args: expected a list of strings"),
    ('plugin = 1\n', "plugin: expected a table of plugin blocks, got integer 1"),
])
def test_bad_plugin_blocks_are_refused_naming_the_key(tmp_path, text, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load(tmp_path, VALID + text if text.startswith("[") else text + VALID)


def test_an_exec_plugin_block_and_chroot_env_configure_the_exec_driver(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.client.exec_driver import DEFAULT_CHROOT_ENV
    from actors.metrics import Metrics
    from runtime.config import plugin_config

    def driver(text: str):
        cfg = load(tmp_path, f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n' + text)
        ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                           client_state_dir=str(tmp_path))
        (spec,) = [s for s in client_specs(cfg, ctx) if s.name == "alloc-runner"]
        return cfg, dict(spec.kwargs)["driver_registry"]["exec"]

    _, d = driver("")
    assert d.plugin.default_pid_private and d.plugin.default_ipc_private
    assert d.chroot_env == DEFAULT_CHROOT_ENV
    assert "NET_RAW" not in d.allow_caps and "KILL" in d.allow_caps  # Nomad's default allow_caps
    cfg, d = driver('[client.chroot_env]\n"/etc/ssl" = "/etc/ssl"\n"/usr" = "/usr"\n"/opt/bin" = "/bin"\n'
                    '[plugin.exec.config]\ndefault_pid_mode = "host"\nno_pivot_root = true\n'
                    'allow_caps = ["CAP_NET_RAW", "kill", " chown "]\n')
    assert not d.plugin.default_pid_private and d.plugin.default_ipc_private and d.plugin.no_pivot_root
    assert d.allow_caps == ("CHOWN", "KILL", "NET_RAW")
    assert d.chroot_env == (("/opt/bin", "/bin"), ("/etc/ssl", "/etc/ssl"), ("/usr", "/usr"))  # parents first
    assert plugin_config(cfg, "exec")["default_pid_mode"] == "host"
    assert to_dict(cfg)["Client"]["ChrootEnv"] == {"/etc/ssl": "/etc/ssl", "/opt/bin": "/bin", "/usr": "/usr"}
    _, d = driver('[plugin.exec.config]\nallow_caps = ["all"]\n')
    assert "SYS_ADMIN" in d.allow_caps and "NET_RAW" in d.allow_caps


@pytest.mark.parametrize("text, error", [
    ('[plugin.exec.config]\ndefault_pid_mode = "shared"\n',
     'plugin.exec.config: default_pid_mode must be "private" or "host", got "shared"'),
    ('[plugin.exec.config]\ndefault_ipc_mode = "Host"\n',
     'plugin.exec.config: default_ipc_mode must be "private" or "host", got "Host"'),
    ('[plugin.exec.config]\nallow_caps = ["kill", "cap_bogus", "nope"]\n',
     "plugin.exec.config: allow_caps configured with capabilities not supported by system: bogus, nope"),
    ('[plugin.exec.config]\nallow_caps = "kill"\n',
     "plugin.exec.config.allow_caps: expected a list of strings, got string 'kill'"),
    ('[plugin.exec.config]\nno_pivot_root = "yes"\n',
     "plugin.exec.config.no_pivot_root: expected a boolean"),
    ('[plugin.exec.config]\ndenied_host_uids = "0-x"\n',
     'plugin.exec.config: invalid range deniedHostUIDs "0-x": range bound not valid'),
    ('[plugin.exec.config]\ndenied_host_gids = "10-5"\n',
     'plugin.exec.config: invalid range deniedHostGIDs "10-5": lower bound cannot be greater than '
     'upper bound'),
    ('[plugin.exec.config]\ndenied_host_uids = 0\n',
     "plugin.exec.config.denied_host_uids: expected a string"),
    ('[plugin.exec.config]\ndefault_pid = "host"\n', 'unknown key "plugin.exec.config.default_pid"'),
    ('[client.chroot_env]\n"bin" = "/bin"\n',
     'client.chroot_env: "bin" = "/bin": both paths must be absolute'),
    ('[client.chroot_env]\n"/bin" = "/x/../../bin"\n', 'must not contain ".."'),
    ('[client.chroot_env]\n"/bin" = [1]\n', "client.chroot_env./bin: expected a string"),
])
def test_bad_exec_plugin_settings_are_refused_at_startup(tmp_path, text, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        validate(load(tmp_path, VALID + text))


def test_a_raw_exec_plugin_block_enables_the_driver_the_client_fingerprints(tmp_path, caplog):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics

    def drivers(text: str) -> tuple[str, ...]:
        cfg = load(tmp_path, f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n' + text)
        ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                           client_state_dir=str(tmp_path))
        (spec,) = [s for s in client_specs(cfg, ctx) if s.name == "fingerprint"]
        # exec is there as the host allows (root, cgroups: tests/test_exec_driver.py); this is about raw_exec.
        return tuple(d for d in dict(spec.kwargs)["probe"].drivers if d != "exec")

    assert drivers("") == ()
    assert drivers("[plugin.raw_exec.config]\nenabled = true\n") == ("raw_exec",)
    assert drivers('[client.options]\n"driver.raw_exec.enable" = "1"\n'
                   "[plugin.raw_exec.config]\nenabled = false\n") == ()
    with caplog.at_level("WARNING", logger="agent"):
        assert drivers("[plugin.docker.config]\nvolumes = { enabled = true }\n") == ()
    assert 'plugin "docker": this agent has no such plugin' in caplog.text


def test_the_ui_block_of_a_nomad_config_loads(tmp_path):
    cfg = load(tmp_path, VALID + '[ui]\nenabled = false\nshow_cli_hints = false\n[ui.label]\ntext = "prod"\n'
                         '[ui.consul]\nui_url = "https://consul.example/ui"\n')
    assert cfg.ui.enabled is False and cfg.ui.label.text == "prod"
    ui = to_dict(cfg)["UI"]
    assert ui["Enabled"] is False and ui["ShowCLIHints"] is False
    assert ui["Consul"] == {"BaseUIURL": "https://consul.example/ui"}
    with pytest.raises(ConfigError, match='unknown key "ui.content_security_polic"'):
        load(tmp_path, VALID + "[ui.content_security_polic]\n")


def test_client_totals_and_max_kill_timeout_reach_the_fingerprinter_and_the_runner(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics

    cfg = load(tmp_path, f'data_dir = "{tmp_path}"\n[client]\nenabled = true\ncpu_total_compute = 3000\n'
                         'memory_total_mb = 1024\ndisk_free_mb = 500\nmax_kill_timeout = "2s"\n')
    assert to_dict(cfg)["Client"]["CpuCompute"] == 3000 and to_dict(cfg)["Client"]["MaxKillTimeout"] == 2 * 10**9
    ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                       client_state_dir=str(tmp_path))
    specs = {s.name: dict(s.kwargs) for s in client_specs(cfg, ctx)}
    totals = specs["fingerprint"]["config"].totals
    assert (totals.cpu_total_compute, totals.memory_total_mb, totals.disk_total_mb, totals.disk_free_mb) == \
        (3000, 1024, 0, 500)
    runner = specs["alloc-runner"]["config"]
    assert runner.max_kill_timeout_s == 2.0 and runner.default_kill_timeout_s == 2.0
    with pytest.raises(ConfigError, match="client.memory_total_mb: must be >= 0"):
        validate(load(tmp_path, VALID + "[client]\nenabled = true\nmemory_total_mb = -1\n"))


def test_the_client_artifact_block_bounds_the_runners_artifact_fetches(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics
    from runtime.config import parse_size

    cfg = load(tmp_path, f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n[client.artifact]\n'
                         'http_read_timeout = "90s"\nhttp_max_size = "1GiB"\ndecompression_size_limit = "0"\n'
                         'decompression_file_count_limit = 10\n[client.template]\nblock_query_wait = "30s"\n')
    validate(cfg)
    ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                       client_state_dir=str(tmp_path))
    runner = {s.name: dict(s.kwargs) for s in client_specs(cfg, ctx)}["alloc-runner"]["config"]
    assert (runner.artifact_timeout_s, runner.artifact_max_bytes, runner.artifact_max_unpacked_bytes,
            runner.artifact_max_unpacked_files) == (90.0, 2**30, 2**63 - 1, 10)
    assert runner.template_wait_s == 30.0  # client.template.block_query_wait, Nomad's 5m by default
    assert load(tmp_path, VALID).client.template.block_query_wait_s == 300.0
    default = load(tmp_path, VALID).client.artifact
    assert (default.http_read_timeout_s, parse_size(default.http_max_size)) == (1800.0, 100 * 10**9)
    with pytest.raises(ConfigError, match=r"client\.artifact\.http_max_size: invalid size '10 parsecs'"):
        validate(load(tmp_path, VALID + '[client.artifact]\nhttp_max_size = "10 parsecs"\n'))


def test_consul_and_vault_blocks_load_with_what_this_agent_lacks_said_plainly(tmp_path):
    from runtime.config import CONSUL_WARNING

    cfg = load(tmp_path, VALID + '[consul]\naddress = "127.0.0.1:8500"\ntoken = "s3cret"\n'
                                 'tags = ["a"]\n[vault]\nenabled = false\naddress = "https://vault:8200"\n')
    assert CONSUL_WARNING in validate(cfg)
    shown = to_dict(cfg)
    assert shown["Consul"] == {"address": "127.0.0.1:8500", "token": "<redacted>", "tags": ["a"]}
    assert shown["Vault"] == {"enabled": False, "address": "https://vault:8200"}
    assert to_dict(load(tmp_path, VALID))["Consul"] is None
    assert CONSUL_WARNING not in validate(load(tmp_path, VALID))
    with pytest.raises(ConfigError, match="vault.enabled: Vault integration is not supported by this agent"):
        validate(load(tmp_path, VALID + "[vault]\nenabled = true\n"))
    with pytest.raises(ConfigError, match="consul: expected a table"):
        load(tmp_path, 'consul = "yes"\n' + VALID)


def test_the_event_broker_keys_parse_with_nomads_defaults(tmp_path):
    assert (Config().server.enable_event_broker, Config().server.event_buffer_size) == (True, 100)
    c = load(tmp_path, VALID + "enable_event_broker = false\nevent_buffer_size = 500\n")
    assert (c.server.enable_event_broker, c.server.event_buffer_size) == (False, 500)
    from actors.agent_specs import _server_state

    assert _server_state(c.server).events is None  # off: the store makes no events
    on = _server_state(load(tmp_path, VALID + "event_buffer_size = 7\n").server)
    assert on.events is not None and on.events.size == 7


# -- client host_volume blocks ------------------------------------------------------


def test_host_volume_blocks_parse_merge_and_show(tmp_path):
    data, logs = tmp_path / "data", tmp_path / "logs"
    data.mkdir()
    logs.mkdir()
    a = write(tmp_path, f'data_dir = "/x"\n[client]\nenabled = true\n'
                        f'[client.host_volume.data]\npath = "{data}"\n'
                        f'[client.host_volume.logs]\npath = "{tmp_path}"\nread_only = true\n')
    # a later block of one name replaces it
    b = write(tmp_path, f'[client.host_volume.logs]\npath = "{logs}"\n')
    cfg, _, _ = load_files([a, b])
    assert cfg.client.host_volume == (("data", str(data), False), ("logs", str(logs), False))
    validate(cfg)
    assert to_dict(cfg.client)["HostVolumes"] == [{"Name": "data", "Path": str(data), "ReadOnly": False},
                                                 {"Name": "logs", "Path": str(logs), "ReadOnly": False}]
    assert Config().client.host_volume == ()


@pytest.mark.parametrize(("body", "error"), [
    ('[client.host_volume.v]\npath = "/p"\nsize = 3\n', 'unknown key "client.host_volume.v.size"'),
    ('[client.host_volume.v]\npath = 3\n', "client.host_volume.v.path: expected a string"),
    ('[client.host_volume.v]\nread_only = "yes"\npath = "/p"\n',
     "client.host_volume.v.read_only: expected a boolean"),
    ('[client]\nhost_volume = ["x"]\n', "client.host_volume: expected a table of host_volume blocks"),
])
def test_host_volume_block_shape_errors(tmp_path, body, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load(tmp_path, body)


def test_host_volume_path_must_be_an_existing_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for path, error in (("", 'client.host_volume "v": Missing path in host_volume config'),
                        ("rel/dir", 'client.host_volume "v": path must be an absolute path'),
                        (str(tmp_path / "nope"), f'client.host_volume "v": failed to validate volume v, '
                                                 f'err: stat {tmp_path / "nope"}: no such file or directory'),
                        (str(f), f'client.host_volume "v": failed to validate volume v, err: {f} is not a '
                                 "directory")):
        cfg = load(tmp_path, f'data_dir = "/x"\n[client]\nenabled = true\n'
                             f'[client.host_volume.v]\npath = "{path}"\n')
        with pytest.raises(ConfigError, match=re.escape(error)):
            validate(cfg)


def test_the_initial_heartbeat_stagger_is_nomads_10s_tunable_and_never_negative(tmp_path):
    from actors.client.node import ClientNodeConfig
    from runtime.config import ConfigError, load_files, validate

    default, _, _ = load_files([])
    assert default.client.initial_heartbeat_stagger_s == 10.0  # Nomad's initialHeartbeatStagger
    path = tmp_path / "c.hcl"
    path.write_text('client {\n  enabled = true\n  initial_heartbeat_stagger = "250ms"\n}\n')
    cfg, _, _ = load_files([str(path)])
    assert ClientNodeConfig.from_config(cfg, name="n").initial_heartbeat_stagger_s == 0.25
    path.write_text('client {\n  enabled = true\n  initial_heartbeat_stagger = "-1s"\n}\n')
    with pytest.raises(ConfigError, match="client.initial_heartbeat_stagger: must be >= 0s, got -1s"):
        validate(load_files([str(path)])[0])
