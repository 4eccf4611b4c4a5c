"""Agent config files in Nomad's own languages: HCL 1 (``*.hcl``) and JSON (``*.json``)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.config import ConfigError, load_files, validate
from runtime.hcl1 import HclError, loads

REPO = Path(__file__).resolve().parent.parent

# A server-and-client agent config as Nomad's documentation writes one.
NOMAD_HCL = r'''
# Full configuration options can be found at https://developer.hashicorp.com/nomad/docs/configuration
datacenter = "dc1"
data_dir   = "/opt/nomad/data"
bind_addr  = "0.0.0.0"
log_level  = "INFO"

ports {
  http = 4646
  rpc  = 4647
  serf = 4648
}

server {
  enabled          = true
  bootstrap_expect = 3
  heartbeat_grace  = "30s"

  server_join {
    retry_join = ["10.0.0.10", "10.0.0.11"]   // trailing comments too
  }
}

client {
  enabled    = true
  servers    = ["10.0.0.10:4647"]
  node_class = "web"

  meta {
    "rack"     = "r1"
    "shelf"    = 3
  }

  options = {
    "driver.allowlist" = "raw_exec,exec"
  }

  host_volume "certs" {
    path      = "/etc"
    read_only = true
  }

  host_volume "data" {
    path = "/tmp"
  }

  reserved {
    cpu    = 500
    memory = 512
  }
}

/* drivers */
plugin "raw_exec" {
  config {
    enabled = true
  }
}

telemetry {
  collection_interval        = "1s"
  prometheus_metrics         = true
  publish_allocation_metrics = true
}
'''

SAME_TOML = '''
datacenter = "dc1"
data_dir = "/opt/nomad/data"
bind_addr = "0.0.0.0"
log_level = "INFO"
[ports]
http = 4646
rpc = 4647
serf = 4648
[server]
enabled = true
bootstrap_expect = 3
heartbeat_grace = "30s"
[server.server_join]
retry_join = ["10.0.0.10", "10.0.0.11"]
[client]
enabled = true
servers = ["10.0.0.10:4647"]
node_class = "web"
meta = { rack = "r1", shelf = "3" }
options = { "driver.allowlist" = "raw_exec,exec" }
[client.host_volume.certs]
path = "/etc"
read_only = true
[client.host_volume.data]
path = "/tmp"
[client.reserved]
cpu = 500
memory = 512
[plugin.raw_exec.config]
enabled = true
[telemetry]
collection_interval = "1s"
prometheus_metrics = true
publish_allocation_metrics = true
'''


def _load(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    cfg, loaded, warnings = load_files([str(path)])
    assert loaded == [str(path)] and warnings == []
    return cfg


def test_a_nomad_hcl_agent_config_loads_as_its_toml_twin(tmp_path: Path) -> None:
    hcl = _load(tmp_path, "agent.hcl", NOMAD_HCL)
    assert hcl == _load(tmp_path, "agent.toml", SAME_TOML)
    assert dict(hcl.client.meta) == {"rack": "r1", "shelf": "3"}  # a number in a string map is its text
    assert hcl.server.heartbeat_grace_s == 30.0 and hcl.server.server_join.retry_join == ("10.0.0.10",
                                                                                         "10.0.0.11")
    assert validate(hcl) == ["WARNING: mTLS is not configured - Nomad is not secure without mTLS!"]


def test_the_same_config_in_nomads_json_form_loads_too(tmp_path: Path) -> None:
    doc = {"datacenter": "dc1", "data_dir": "/opt/nomad/data", "bind_addr": "0.0.0.0", "log_level": "INFO",
           "ports": [{"http": 4646, "rpc": 4647, "serf": 4648}],
           "server": [{"enabled": True, "bootstrap_expect": 3, "heartbeat_grace": "30s",
                       "server_join": [{"retry_join": ["10.0.0.10", "10.0.0.11"]}]}],
           "client": [{"enabled": True, "servers": ["10.0.0.10:4647"], "node_class": "web",
                       "meta": [{"rack": "r1", "shelf": "3"}],
                       "options": {"driver.allowlist": "raw_exec,exec"},
                       "host_volume": [{"certs": [{"path": "/etc", "read_only": True}]},
                                       {"data": [{"path": "/tmp"}]}],
                       "reserved": {"cpu": 500, "memory": 512}}],
           "plugin": [{"raw_exec": [{"config": [{"enabled": True}]}]}],
           "telemetry": {"collection_interval": "1s", "prometheus_metrics": True,
                         "publish_allocation_metrics": True}}
    assert _load(tmp_path, "agent.json", json.dumps(doc)) == _load(tmp_path, "agent.hcl", NOMAD_HCL)


def test_a_directory_reads_its_hcl_json_and_toml_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "a.hcl").write_text('datacenter = "from-hcl"\nclient { enabled = true }\n')
    (tmp_path / "b.json").write_text('{"datacenter": "from-json"}')
    (tmp_path / "c.toml").write_text('region = "eu"\n')
    (tmp_path / "d.hcl~").write_text('datacenter = "editor backup"\n')
    (tmp_path / ".#d.hcl").write_text('datacenter = "emacs lock"\n')
    (tmp_path / "README.md").write_text("not config\n")
    cfg, loaded, _ = load_files([str(tmp_path)])
    assert [Path(p).name for p in loaded] == ["a.hcl", "b.json", "c.toml"]
    assert (cfg.datacenter, cfg.region, cfg.client.enabled) == ("from-json", "eu", True)


def test_a_directory_loads_hidden_config_files_as_nomad_does(tmp_path: Path) -> None:
    """Nomad's LoadConfigDir skips only editor temporary files, not hidden ones: ".e.hcl" sorts first."""
    (tmp_path / ".e.hcl").write_text('datacenter = "hidden"\nname = "from-hidden"\n')
    (tmp_path / "a.hcl").write_text('datacenter = "from-a"\n')
    cfg, loaded, _ = load_files([str(tmp_path)])
    assert [Path(p).name for p in loaded] == [".e.hcl", "a.hcl"]
    assert (cfg.datacenter, cfg.name) == ("from-a", "from-hidden")


def test_labelled_blocks_nest_and_repeated_blocks_merge(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "x.hcl", '''
client { enabled = true }
client { node_class = "batch" }
plugin "raw_exec" { config { enabled = true } }
plugin "raw_exec" { args = ["-v"] }
client { host_volume "a" { path = "/a" } }
client { host_volume "b" { path = "/b" } }
''')
    assert cfg.client.enabled and cfg.client.node_class == "batch"
    assert [n for n, *_ in cfg.client.host_volume] == ["a", "b"]
    (name, (config, args)), = cfg.plugin
    assert name == "raw_exec" and dict(config) == {"enabled": True} and args == ("-v",)


def test_hcl1_values_read_as_hcl1_reads_them() -> None:
    doc = loads(r'''
a = "tab\there \"quoted\" \u00e9 ${node.unique.name} ${env["X"]}"
b = <<EOF
first
  second
EOF
c = <<-EOT
    indented
      more
    EOT
d = [1, -2, 2.5, 0x10, 1e3, true, false, "s",]
e = { x = 1, "y.z" = "w" }
f = []
g { }
''')
    assert doc["a"] == 'tab\there "quoted" é ${node.unique.name} ${env["X"]}'
    assert doc["b"] == "first\n  second\n" and doc["c"] == "indented\n  more\n"
    assert doc["d"] == [1, -2, 2.5, 16, 1000.0, True, False, "s"]
    assert doc["e"] == {"x": 1, "y.z": "w"} and doc["f"] == [] and doc["g"] == {}


@pytest.mark.parametrize("text, where", [
    ('a = "open\n', "At 1:5: literal not terminated"),
    ("a = \n", "At 2:1: Unknown token: EOF"),
    ("server {\n enabled = true\n", "At 3:1: object expected closing RBRACE got: EOF"),
    ('a = "bad \\q escape"', "At 1:10: illegal char escape"),
    ("a b = 1", "At 1:5: nested object expected: LBRACE got: ASSIGN"),
    ("a = [1 2]", "At 1:8: list expected comma or RBRACK got: VALUE 2"),
    ("a = @", "At 1:5: illegal char '@'"),
    ("a = <<EOF\nno end\n", "At 1:5: heredoc not terminated"),
    ("/* open", "At 1:1: comment not terminated"),
    ("a = bare", "At 1:5: Unknown token: IDENT 'bare'"),
])
def test_malformed_hcl_names_the_line_and_column(text: str, where: str) -> None:
    with pytest.raises(HclError) as e:
        loads(text)
    assert str(e.value).startswith(where), str(e.value)


def test_bad_hcl_and_unknown_keys_are_config_errors_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hcl"
    bad.write_text("server {\n  enabled = \n}\n")
    with pytest.raises(ConfigError, match=rf"Error loading configuration from {bad}: At 3:1: Unknown token"):
        load_files([str(bad)])
    typo = tmp_path / "typo.hcl"
    typo.write_text("server {\n  bootstrap_expext = 3\n}\n")
    with pytest.raises(ConfigError, match=rf'unknown key "server.bootstrap_expext" in {typo}'):
        load_files([str(typo)])
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"server": {"enabled": "yes"}}')
    with pytest.raises(ConfigError, match=r"server.enabled: expected a boolean, got string 'yes'"):
        load_files([str(wrong)])
    broken = tmp_path / "broken.json"
    broken.write_text('{"server": ')
    with pytest.raises(ConfigError, match=rf"Error loading configuration from {broken}: Expecting value"):
        load_files([str(broken)])


def test_a_file_named_otherwise_is_read_as_toml_or_else_hcl(tmp_path: Path) -> None:
    toml = tmp_path / "agent.conf"
    toml.write_text('[client]\nenabled = true\n')
    hcl = tmp_path / "agent.cfg"
    hcl.write_text('client {\n  enabled = true\n  meta { "k" = "v" }\n}\n')
    assert load_files([str(toml)])[0].client.enabled
    assert dict(load_files([str(hcl)])[0].client.meta) == {"k": "v"}
    neither = tmp_path / "agent.txt"
    neither.write_text("client {{{\n")
    with pytest.raises(ConfigError, match=r"neither TOML .* nor HCL"):
        load_files([str(neither)])


_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
# No "$": an unclosed ${ is not a string HCL 1 reads; no lone surrogates: not text.
_TEXT = st.text(st.characters(exclude_characters="$", exclude_categories=["Cs"]), max_size=8)
_SCALAR = st.one_of(st.booleans(), st.integers(-10**6, 10**6), _TEXT)
_VALUE = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(_SCALAR, max_size=3), st.dictionaries(_KEY, inner, max_size=3)), max_leaves=8)


def _emit(table: dict, indent: str = "") -> str:
    out = []
    for k, v in table.items():
        if isinstance(v, dict):
            out.append(f"{indent}{k} {{\n{_emit(v, indent + '  ')}{indent}}}\n")
        else:
            # JSON scalars and lists are HCL 1 literals
            out.append(f"{indent}{k} = {json.dumps(v, ensure_ascii=False)}\n")
    return "".join(out)


@given(st.dictionaries(_KEY, _VALUE, max_size=5))
def test_any_table_written_as_hcl_reads_back_the_same(table: dict) -> None:
    assert loads(_emit(table)) == table


def test_nomad_config_validate_checks_an_hcl_file(tmp_path: Path) -> None:
    good = tmp_path / "server.hcl"
    good.write_text(NOMAD_HCL)
    bad = tmp_path / "bad.hcl"
    bad.write_text('server {\n  enabled = true\n  heartbeat_grace = 10\n}\n')
    run = [sys.executable, str(REPO / "bin" / "nomad"), "config", "validate"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "Configuration is valid!" in ok.stdout
    no = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert no.returncode == 1 and "server.heartbeat_grace: expected a duration string" in no.stderr


def test_nomad_agent_dev_runs_from_an_hcl_file_with_its_scheduler_defaults_and_job_bounds(
        tmp_path: Path) -> None:
    from tests.test_agent_process import nomad_agent_dev, wait_for
    from tests.test_http_jobs import call, stop_all_jobs

    # Started as Nomad's `nomad agent -dev -config agent.hcl` (bin/nomad becomes the agent).
    agent = nomad_agent_dev(tmp_path, '''
client {
  meta {
    "rack" = "r7"
  }
}
server {
  job_max_priority     = 200
  job_default_priority = 70
  job_max_count        = 3
  default_scheduler_config {
    scheduler_algorithm             = "spread"
    memory_oversubscription_enabled = true
    node_limit_for_feasibility_checks = 25
    preemption_config {
      batch_scheduler_enabled = true
    }
  }
}
''')
    port = agent.http_port
    try:
        agent.wait_healthy()
        path = "/v1/operator/scheduler/configuration"
        got = wait_for(lambda: (c := call(port, "GET", path).json()["SchedulerConfig"])["ModifyIndex"] and c,
                       "the leader's seeded scheduler configuration")
        assert got["SchedulerAlgorithm"] == "spread" and got["MemoryOversubscriptionEnabled"] is True
        assert got["NodeLimitForFeasibilityChecks"] == 25
        # The block replaces Nomad's built-in default whole: what it leaves out is false.
        assert got["PreemptionConfig"] == {"SystemSchedulerEnabled": False, "SysBatchSchedulerEnabled": False,
                                           "BatchSchedulerEnabled": True, "ServiceSchedulerEnabled": False}
        nodes = wait_for(lambda: call(port, "GET", "/v1/nodes").json(), "the dev node")
        node = call(port, "GET", f"/v1/node/{nodes[0]['ID']}").json()
        assert node["Meta"]["rack"] == "r7"
        # The server's job bounds: its default priority, a priority above Nomad's 100, its count limit.
        def job(name: str, count: int, **extra: object) -> dict:
            return {"Job": {"ID": name, "Name": name, "Type": "batch", "Datacenters": ["*"], **extra,
                            "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [{
                                "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
                                "Resources": {"CPU": 20, "MemoryMB": 16}}]}]}}

        assert call(port, "PUT", "/v1/jobs", job("plain", 0)).status == 200
        assert call(port, "GET", "/v1/job/plain").json()["Priority"] == 70
        assert call(port, "PUT", "/v1/jobs", job("urgent", 0, Priority=150)).status == 200
        too_high = call(port, "PUT", "/v1/jobs", job("too-high", 0, Priority=201))
        assert too_high.status == 400 and "job priority must be between [1, 200]" in too_high.text
        too_many = call(port, "PUT", "/v1/jobs", job("too-many", 4))
        assert too_many.status == 400
        assert "total count was greater than configured job_max_count: 4 > 3" in too_many.text
        stop_all_jobs(port)
        agent.send(signal.SIGTERM)
        assert agent.wait_exit() == 1  # a plain SIGTERM without leave_on_terminate, as Nomad (NOMAD.md)
    finally:
        agent.kill()


def test_a_bad_default_scheduler_algorithm_stops_the_agent_with_nomads_message(tmp_path: Path) -> None:
    conf = tmp_path / "agent.hcl"
    conf.write_text('server {\n  default_scheduler_config {\n    scheduler_algorithm = "random"\n  }\n}\n')
    run = subprocess.run([sys.executable, str(REPO / "bin" / "nomad-agent"), "-dev", "-config", str(conf)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 1
    assert "server.default_scheduler_config: invalid scheduler algorithm: random" in run.stdout + run.stderr


def test_nomad_keys_this_agent_does_not_use_load_with_a_warning_each(tmp_path: Path) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text('''
disable_anonymous_signature = true
server {
  raft_boltdb { no_freelist_sync = true }
  redundancy_zone = "z1"
}
client {
  cni_path = "/opt/cni/bin"
  host_network "public" { cidr = "10.0.0.0/8" }
}
audit { enabled = true }
telemetry { circonus_api_token = "x" }
''')
    cfg, _, warnings = load_files([str(path)])
    assert cfg.server.raft_snapshot_threshold == 8192  # nothing else moved
    assert cfg.client.host_network == (("public", "10.0.0.0/8", "", ""),)  # used now: no warning
    assert warnings == [
        f"WARNING: disable_anonymous_signature: ignored: deprecated; Nomad ignores it too (in {path})",
        f"WARNING: server.raft_boltdb: ignored: this agent's Raft log is SQLite (in {path})",
        f"WARNING: server.redundancy_zone: ignored: a Nomad Enterprise feature (in {path})",
        f"WARNING: client.cni_path: ignored: this agent has no bridge networking or CNI (a job asking for it "
        f"is refused) (in {path})",
        f"WARNING: audit: ignored: a Nomad Enterprise feature (in {path})",
        f"WARNING: telemetry.circonus_api_token: ignored: this agent's metrics sinks are the in-memory one, "
        f"Prometheus, statsd and DogStatsD (in {path})",
    ]


@pytest.mark.parametrize("text, error", [
    ('client {\n  cgroup_parent = "tenant.slice"\n}\n',
     "client.cgroup_parent: the exec driver's cgroups are made under nomad.slice (v2) or /nomad (v1) only"),
    ('keyring "awskms" {\n  active = true\n}\n', 'keyring: only the built-in "aead" keyring is supported '
                                                   "here (no external KMS providers)"),
])
def test_a_nomad_key_whose_value_would_be_dropped_unsafely_is_refused(tmp_path: Path, text: str,
                                                                       error: str) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{error} (in {path})")):
        load_files([str(path)])


def test_acl_token_expiration_bounds_and_their_gc_threshold_are_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text('acl {\n  enabled = true\n  token_min_expiration_ttl = "30s"\n'
                    '  token_max_expiration_ttl = "72h"\n}\n'
                    'server {\n  enabled = true\n  acl_token_gc_threshold = "2h"\n}\n')
    cfg, _, warnings = load_files([str(path)])
    assert (cfg.acl.token_min_expiration_ttl_s, cfg.acl.token_max_expiration_ttl_s) == (30.0, 72 * 3600.0)
    assert cfg.server.acl_token_gc_threshold_s == 7200.0 and warnings == []
    default = tmp_path / "default.hcl"
    default.write_text("acl {\n  enabled = true\n}\n")
    cfg, _, _ = load_files([str(default)])
    assert (cfg.acl.token_min_expiration_ttl_s, cfg.acl.token_max_expiration_ttl_s,
            cfg.server.acl_token_gc_threshold_s) == (60.0, 24 * 3600.0, 3600.0)
    bad = tmp_path / "bad.hcl"
    bad.write_text('acl {\n  token_max_expiration_ttl = "soon"\n}\n')
    with pytest.raises(ConfigError, match=r"acl\.token_max_expiration_ttl"):
        load_files([str(bad)])


def test_node_max_allocs_and_default_ineligible_load_into_the_client_config(tmp_path: Path) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text("client {\n  node_max_allocs = 10\n  default_ineligible = true\n}\n")
    cfg, _, warnings = load_files([str(path)])
    assert (cfg.client.node_max_allocs, cfg.client.default_ineligible, warnings) == (10, True, [])
    path.write_text("client {\n  default_ineligible = false\n  node_max_allocs = 0\n}\n")
    cfg, _, warnings = load_files([str(path)])
    assert (cfg.client.node_max_allocs, cfg.client.default_ineligible, warnings) == (0, False, [])
    path.write_text("client {\n  enabled = true\n  node_max_allocs = -1\n}\n")
    with pytest.raises(ConfigError, match=r"client\.node_max_allocs: must be >= 0, got -1"):
        validate(load_files([str(path)])[0])


def test_nomads_deprecated_server_join_keys_move_into_server_join(tmp_path: Path) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text('server {\n  enabled = true\n  retry_join = ["10.0.0.1"]\n  retry_max = 3\n'
                    '  retry_interval = "5s"\n}\n')
    cfg, _, warnings = load_files([str(path)])
    join = cfg.server.server_join
    assert (join.retry_join, join.retry_max, join.retry_interval_s) == (("10.0.0.1",), 3, 5.0)
    assert warnings == ["WARNING: server: using deprecated retry_join fields. Upgrade configuration to use "
                        "server_join"]
    both = tmp_path / "both.hcl"
    both.write_text('server {\n  retry_join = ["a"]\n  server_join {\n    retry_join = ["b"]\n  }\n}\n')
    with pytest.raises(ConfigError, match="server_join and retry_join cannot both be defined; prefer setting "
                                          "the server_join block"):
        load_files([str(both)])


@pytest.mark.parametrize("text, error", [
    ("server {\n  job_max_priority = 99\n}\n",
     "server.job_max_priority: job_max_priority cannot be 99. Must be between 100 and 32766"),
    ("server {\n  job_max_priority = 40000\n}\n",
     "server.job_max_priority: job_max_priority cannot be 40000. Must be between 100 and 32766"),
    ("server {\n  job_default_priority = 100\n}\n",
     "server.job_default_priority: job_default_priority cannot be 100. Must be between 50 and 100"),
    ("server {\n  job_tracked_versions = 0\n}\n",
     "server.job_tracked_versions: job_tracked_versions must be greater than 0"),
    ("server {\n  job_max_count = -1\n}\n", "server.job_max_count: must be >= 0, got -1"),
    ('server {\n  server_join {\n    retry_join = ["provider=aws tag_key=nomad"]\n  }\n}\n',
     'server.server_join.retry_join: "provider=aws tag_key=nomad": cloud auto-join (go-discover) is not '
     "supported by this agent; list the servers' addresses instead"),
    ('server {\n  enabled_schedulers = ["service", "cron"]\n}\n',
     'server.enabled_schedulers: unknown scheduler "cron" (want service, batch, system or sysbatch)'),
])
def test_bad_job_bounds_stop_the_server_with_nomads_messages(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text('data_dir = "/tmp"\n' + text.replace("server {", "server {\n  enabled = true"))
    with pytest.raises(ConfigError, match=re.escape(error)):
        validate(load_files([str(path)])[0])


def test_job_bounds_apply_to_a_submitted_job_and_its_kept_versions() -> None:
    from actors.scheduler.job import JobError, JobLimits, canonical_job
    from actors.state.store import StateStore, command

    def job(**extra: object) -> dict:
        return {"ID": "j", "Name": "j", "Type": "batch", **extra, "TaskGroups": [
            {"Name": "g", "Count": 2,
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "x"}}]}]}

    assert canonical_job(job())["Priority"] == 50 and canonical_job(job(Priority=0))["Priority"] == 50
    limits = JobLimits(default_priority=60, max_priority=300, max_count=2)
    assert canonical_job(job(), limits=limits)["Priority"] == 60
    assert canonical_job(job(Priority=300), limits=limits)["Priority"] == 300
    for bad, why in ((job(Priority=101), "job priority must be between [1, 100]"),
                     (job(Priority=-1), "job priority must be between [1, 100]")):
        with pytest.raises(JobError, match=re.escape(why)):
            canonical_job(bad)
    with pytest.raises(JobError, match=re.escape("configured job_max_count: 2 > 1")):
        canonical_job(job(), limits=JobLimits(max_count=1))
    assert JobLimits.from_self({"JobDefaultPriority": 0, "JobMaxPriority": 0, "JobMaxCount": 0}) == \
        JobLimits(max_count=0)
    st = StateStore(job_tracked_versions=2)
    for i in range(4):
        body = canonical_job(job(Meta={"v": str(i)}))
        assert st.apply(i + 1, command("job_register", job=body, now=1.0))["ok"]
    assert len(st.job_versions("j")) == 2


def test_host_network_blocks_load_merge_and_show_in_agent_self(tmp_path: Path) -> None:
    from runtime.config import to_dict

    a, b = tmp_path / "a.hcl", tmp_path / "b.hcl"
    a.write_text('''
client {
  host_network "public" {
    cidr = "10.0.0.0/8,192.168.0.0/16"
    interface = "eth1"
    reserved_ports = "22,80-81"
  }
  host_network "lo" { cidr = "127.0.0.0/8" }
  bind_wildcard_default_host_network = false
}
''')
    b.write_text('client {\n  host_network "lo" { cidr = "127.0.0.1/32" }\n}\n')
    cfg, _, warnings = load_files([str(a), str(b)])
    assert warnings == []
    assert cfg.client.host_network == (("lo", "127.0.0.1/32", "", ""),
                                       ("public", "10.0.0.0/8,192.168.0.0/16", "eth1", "22,80-81"))
    assert cfg.client.bind_wildcard_default_host_network is False
    assert to_dict(cfg.client)["HostNetworks"][1] == {
        "Name": "public", "CIDR": "10.0.0.0/8,192.168.0.0/16", "Interface": "eth1",
        "ReservedPorts": "22,80-81"}


@pytest.mark.parametrize("block, error", [
    ('host_network "x" { cidr = "10.0.0.0/33" }',
     'client.host_network "x": invalid CIDR address: 10.0.0.0/33'),
    ('host_network "x" { reserved_ports = "a" }', 'client.host_network "x": reserved_ports:'),
    ('host_network "x" { mtu = 1 }', 'unknown key "client.host_network.x.mtu"'),
])
def test_a_bad_host_network_block_is_refused(tmp_path: Path, block: str, error: str) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text(f"client {{\n  enabled = true\n  {block}\n}}\n")
    with pytest.raises(ConfigError, match=re.escape(error)):
        validate(load_files([str(path)])[0])


def test_nomads_old_function_blacklist_name_restricts_templates_as_function_denylist(
        tmp_path: Path) -> None:
    path = tmp_path / "agent.hcl"
    path.write_text('client {\n  template {\n    function_blacklist = ["plugin", "executeTemplate"]\n'
                    '  }\n}\n')
    cfg, _, warnings = load_files([str(path)])
    assert cfg.client.template.function_denylist == ("plugin", "executeTemplate") and warnings == []


def test_repeated_blocks_append_their_lists_as_hcl1_decodes_them(tmp_path: Path) -> None:
    text = 'client {\n  servers = ["a:4647"]\n}\nclient {\n  servers = ["b:4647"]\n}\n'
    cfg = _load(tmp_path, "a.hcl", text)
    assert cfg.client.servers == ("a:4647", "b:4647")
    doc = {"client": [{"servers": ["a:4647"], "meta": [{"x": "1"}]},
                      {"servers": ["b:4647"], "meta": {"y": "2"}}]}
    cfg = _load(tmp_path, "a.json", json.dumps(doc))
    assert cfg.client.servers == ("a:4647", "b:4647") and dict(cfg.client.meta) == {"x": "1", "y": "2"}
