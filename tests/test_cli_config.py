"""``nomad config validate``: agent configuration checked as the agent would, no agent needed."""
from __future__ import annotations

from runtime.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["config", "validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_set_of_files_and_directories_is_valid(tmp_path, capsys):
    (tmp_path / "base.toml").write_text(f'data_dir = "{tmp_path}/data"\n[server]\nenabled = true\n'
                                        'bootstrap_expect = 3\n')
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-client.toml").write_text('[client]\nenabled = true\nservers = ["127.0.0.1:4647"]\n')
    (conf_d / "notes.txt").write_text("not a config file")
    code, out, err = run(capsys, str(tmp_path / "base.toml"), str(conf_d))
    assert (code, out) == (0, "Configuration is valid!\n")
    assert "WARNING: mTLS is not configured" in err  # the agent's own warning, as Nomad's IsValidConfig


def test_every_file_that_cannot_be_loaded_is_named_in_one_error(tmp_path, capsys):
    (tmp_path / "typo.toml").write_text("[server]\nenabld = true\n")
    (tmp_path / "broken.toml").write_text("[server\n")
    code, out, err = run(capsys, str(tmp_path / "typo.toml"), str(tmp_path / "missing.toml"),
                         str(tmp_path / "broken.toml"))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    loading = f"\t* Error loading configuration from {tmp_path}"
    assert lines[0] == "3 errors occurred:"
    assert lines[1] == f'{loading}/typo.toml: unknown key "server.enabld" in {tmp_path}/typo.toml'
    assert lines[2] == f"{loading}/missing.toml: no such file or directory"
    assert lines[3].startswith(f"{loading}/broken.toml: ")


def test_a_merged_config_the_agent_would_refuse_is_invalid(tmp_path, capsys):
    (tmp_path / "a.toml").write_text(f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n')
    (tmp_path / "b.toml").write_text('log_level = "LOUD"\n')
    code, out, err = run(capsys, str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))
    assert (code, out) == (1, "")
    assert err.splitlines() == ['log_level: invalid log level "LOUD", valid levels are TRACE, DEBUG, INFO, '
                                'WARN, ERROR, OFF', "Configuration is invalid"]
    # Neither role on: the agent's own refusal, as a fragment alone would get.
    (tmp_path / "c.toml").write_text('region = "eu"\n')
    code, _, err = run(capsys, str(tmp_path / "c.toml"))
    assert code == 1 and err.splitlines()[-1] == "Configuration is invalid"


def test_no_path_an_empty_directory_and_a_flag(tmp_path, capsys):
    assert run(capsys)[::2] == (1, "Must specify at least one config file or directory\n")
    (tmp_path / "ok.toml").write_text(f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n')
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, str(tmp_path / "empty"), str(tmp_path / "ok.toml"))
    assert (code, out) == (0, "Configuration is valid!\n")
    assert err.splitlines()[0] == f"No configuration loaded from {tmp_path}/empty"
    code, _, err = run(capsys, "-bogus", str(tmp_path / "ok.toml"))
    assert code == 1 and err.startswith("flag provided but not defined: -bogus")
