"""Review 15: ACL roles on a client agent (acl.role_ttl)."""

from __future__ import annotations

from runtime.cli_config import config_validate
from runtime.config import Config, build_overlay, load_overlays


def test_a_nomad_client_configuration_with_acl_role_ttl_loads_and_sets_the_role_cache(tmp_path, capsys):
    # Before: 'unknown key "acl.role_ttl"' (Nomad 1.4+'s acl block has it, default 30s), and roles were
    # cached for policy_ttl.
    path = tmp_path / "agent.toml"
    path.write_text(f'data_dir = "{tmp_path}"\nbind_addr = "127.0.0.1"\n[server]\nenabled = true\n'
                    '[acl]\nenabled = true\npolicy_ttl = "60s"\nrole_ttl = "5s"\n')
    assert config_validate("", [str(path)]) == ("Configuration is valid!", 0), capsys.readouterr().err
    cfg = build_overlay(Config, load_overlays([str(path)])[0])
    assert cfg.acl.role_ttl_s == 5.0 and build_overlay(Config, {}).acl.role_ttl_s == 30.0
