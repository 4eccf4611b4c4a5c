"""review16: Nomad agent config files (HCL 1, JSON) that Nomad loads but this agent refuses or misreads."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import ConfigError, load_files


def _load(tmp_path: Path, text: str, name: str = "agent.hcl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return load_files([str(p)])


def test_deeply_nested_hcl_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"At \d+:\d+"):
        _load(tmp_path, "name = " + "[" * 3000 + "]" * 3000)


def test_a_bad_number_names_its_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"At 2:\d+"):
        _load(tmp_path, 'name = "a"\nclient { meta { a = 09 } }')


def test_a_number_in_meta_keeps_its_written_text(tmp_path: Path) -> None:
    cfg, _, _ = _load(tmp_path, "client { meta { version = 1.10\n hex = 0x10\n big = 1e3\n z = 007 } }")
    assert dict(cfg.client.meta) == {"version": "1.10", "hex": "0x10", "big": "1e3", "z": "007"}


def test_hcl1_string_to_int_and_bool_to_string_decoding(tmp_path: Path) -> None:
    cfg, _, _ = _load(tmp_path, 'ports { http = "5656" }\nclient { meta { spot = true } }')
    assert cfg.ports.http == 5656
    assert dict(cfg.client.meta) == {"spot": "true"}


def test_a_json_config_with_a_trailing_comma_loads(tmp_path: Path) -> None:
    cfg, _, _ = _load(tmp_path, '{\n "name": "n1",\n "client": {"enabled": true,},\n}\n', name="agent.json")
    assert cfg.name == "n1" and cfg.client.enabled


# Keys of Nomad's agent config (command/agent/config.go and the structs it embeds) that are refused as
# "unknown key" although the commit 220a6e1 says every key of Nomad's agent config loads (or is refused
# with a reason).  Each appears in Nomad's own command/agent/testdata/basic.hcl or template.hcl.
NOMAD_KEYS = [
    "client { stats { data_points = 35\n collection_interval = \"5s\" } }",  # Nomad: silently ignored
    'client { template { max_stale = "10s" } }',
    'client { template { function_blacklist = ["plugin"] } }',
    'client { template { vault_default_lease_duration = "5m" } }',
    'client { artifact { git_timeout = "5m" } }',
    'client { artifact { hg_timeout = "5m" } }',
    'client { artifact { gcs_timeout = "5m" } }',
    'client { artifact { s3_timeout = "5m" } }',
    "client { artifact { disable_filesystem_isolation = false } }",
    'client { artifact { filesystem_isolation_extra_paths = ["f:r:/dev/null"] } }',
    'client { artifact { set_environment_variables = "FOO" } }',
    "client { artifact { disable_artifact_inspection = false } }",
    "client { template { use_client_consul_token = false } }",
    "tls { rpc_upgrade_mode = false }",
    'tls { tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" }',
    'ui { content_security_policy { default_src = ["\'none\'"] } }',
    "autopilot { enable_redundancy_zones = false }",
    "autopilot { disable_upgrade_migration = false }",
    "autopilot { enable_custom_upgrades = false }",
]


@pytest.mark.parametrize("text", NOMAD_KEYS)
def test_every_nomad_agent_key_loads_or_is_refused_with_a_reason(tmp_path: Path, text: str) -> None:
    try:
        _load(tmp_path, text)
    except ConfigError as e:
        assert "unknown key" not in str(e), str(e)


def test_strict_client_introduction_is_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="client_introduction"):
        _load(tmp_path, 'server { client_introduction { enforcement = "strict" } }')


def test_the_builtin_aead_keyring_block_is_not_refused_as_an_external_kms(tmp_path: Path) -> None:
    try:
        _load(tmp_path, 'keyring "aead" {\n  active = true\n}\n')
    except ConfigError as e:
        assert "external KMS" not in str(e), str(e)


def test_a_unicode_key_in_meta_loads(tmp_path: Path) -> None:
    cfg, _, _ = _load(tmp_path, 'client { meta { région = "eu" } }')
    assert dict(cfg.client.meta) == {"région": "eu"}
