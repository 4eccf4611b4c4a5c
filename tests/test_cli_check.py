"""``nomad check`` (Nagios-style agent probe), ``license get`` and the Enterprise-only commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import runtime.cli  # noqa: F401  (the command table first: its modules import from it)
from runtime import cli_check
from runtime.cli import CliError
from tests.test_cli_jobs import CLI_TIMEOUT_S, NOMAD, nomad
from tests.test_http_jobs import dev  # noqa: F401  (the module's -dev agent fixture)


def _self(monkeypatch, stats):
    monkeypatch.setattr(cli_check, "request", lambda addr, method, path, **q: {"stats": stats})


def test_server_health_is_critical_below_min_peers(monkeypatch) -> None:
    _self(monkeypatch, {"nomad": {}, "raft": {"num_peers": "2"}})
    assert cli_check.check("", []) == ("", cli_check.HEALTH_PASS)
    assert cli_check.check("", ["-min-peers", "2"]) == ("", cli_check.HEALTH_PASS)
    assert cli_check.check("", ["-min-peers=3"]) == (
        "known peers: 2, is less than expected number of peers: 3", cli_check.HEALTH_CRITICAL)
    _self(monkeypatch, {"nomad": {}, "raft": {}})
    assert cli_check.check("", [])[1] == cli_check.HEALTH_CRITICAL


def test_client_health_counts_known_servers_and_checks_the_heartbeat_age(monkeypatch) -> None:
    client = {"known_servers": "10.0.0.1:4647,10.0.0.2:4647", "heartbeat_ttl": "12.5s",
              "last_heartbeat": "3.2s"}
    _self(monkeypatch, {"client": client})
    assert cli_check.check("", ["-min-servers", "2"]) == ("", cli_check.HEALTH_PASS)
    assert cli_check.check("", ["-min-servers", "3"]) == (
        "known servers: 2, is less than expected number of servers: 3", cli_check.HEALTH_CRITICAL)
    _self(monkeypatch, {"client": {**client, "last_heartbeat": "1m2s"}})
    out, code = cli_check.check("", [])
    assert code == cli_check.HEALTH_CRITICAL and out == (
        'last heartbeat was "1m2s" time ago, expected heartbeat ttl: "12.5s"')
    _self(monkeypatch, {"client": {**client, "known_servers": ""}})
    assert cli_check.check("", [])[1] == cli_check.HEALTH_CRITICAL  # no server known: below the default 1
    _self(monkeypatch, {"runtime": {}})
    assert cli_check.check("", []) == ("", cli_check.HEALTH_WARN)  # neither server nor client


def test_check_refuses_arguments_and_bad_numbers() -> None:
    with pytest.raises(CliError, match="This command takes no arguments"):
        cli_check.check("", ["extra"])
    with pytest.raises(CliError, match='invalid value "x" for flag -min-peers: parse error'):
        cli_check.check("", ["-min-peers", "x"])


def test_check_unreachable_agent_is_critical() -> None:
    out, code = cli_check.check("http://127.0.0.1:1", [])
    assert code == cli_check.HEALTH_CRITICAL and out.startswith("unable to query agent info: ")


def test_check_license_and_enterprise_commands_against_a_dev_agent(dev) -> None:  # noqa: F811
    ok = nomad(dev, "check", "-min-peers", "0", "-min-servers", "1")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    low = nomad(dev, "check", "-min-peers", "2")  # a lone -dev server has no other peer
    assert low.returncode == 2
    assert low.stdout.strip() == "known peers: 0, is less than expected number of peers: 2"
    lic = nomad(dev, "license", "get")
    assert (lic.returncode, lic.stderr) == (1, "Error getting license: Nomad Enterprise only endpoint\n")
    ent = "Unexpected response code: 501 (Nomad Enterprise only endpoint)"
    for words, context in ((("quota", "list"), "Error retrieving quotas"),
                           (("quota", "status", "q"), "Error retrieving quota"),
                           (("quota", "delete", "q"), "Error deleting quota"),
                           (("sentinel", "list"), "Error listing Sentinel policies"),
                           (("sentinel", "read", "p"), "Error querying Sentinel policy"),
                           (("recommendation", "list"), "Error listing recommendations"),
                           (("recommendation", "dismiss", "a", "b"), "Error dismissing recommendations")):
        out = nomad(dev, *words)
        assert (out.returncode, out.stderr) == (1, f"{context}: {ent}\n"), words
    missing = nomad(dev, "sentinel", "apply", "p", "/nonexistent/policy.sentinel")
    assert missing.stderr == ("Failed to read file: open /nonexistent/policy.sentinel: "
                              "no such file or directory\n")
    assert nomad(dev, "quota", "delete").stderr.startswith("This command takes one argument: <quota>")


# ---------------------------------------------------------------- nomad ui


def test_ui_shows_or_opens_the_url_of_an_object_found_by_prefix(dev, tmp_path) -> None:  # noqa: F811
    base = f"http://127.0.0.1:{dev.http_port}"
    plain = nomad(dev, "ui", "-show-url")
    assert (plain.returncode, plain.stdout) == (0, f"URL for web UI: {base}\n")
    node = nomad(dev, "node", "status", "-self", "-json")
    node_id = json.loads(node.stdout)["ID"]
    got = nomad(dev, "ui", "-show-url", "-namespace", "default", node_id[:6])
    assert got.stdout == f"URL for web UI: {base}/ui/clients/{node_id}?namespace=default\n"
    missing = nomad(dev, "ui", "-show-url", "ffffffff-0000")
    assert (missing.returncode, missing.stderr) == (1, 'Unable to resolve ID: "ffffffff-0000"\n')
    assert nomad(dev, "ui", "a", "b").stderr.startswith(
        "This command takes no or one optional argument, [<identifier>]")
    # ACLs are off on the dev agent: no one-time token to be had.
    refused = nomad(dev, "ui", "-authenticate", "-show-url")
    assert (refused.returncode, refused.stderr) == (
        1, "Could not get one-time token: Unexpected response code: 400 (ACL support disabled)\n")
    # Without -show-url it says what it opens and hands the URL to xdg-open (here a stand-in).
    seen = tmp_path / "opened"
    opener = tmp_path / "xdg-open"
    opener.write_text(f"#!/bin/sh\necho \"$1\" > {seen}\n")
    opener.chmod(0o755)
    env_path = f"{tmp_path}:{os.environ.get('PATH', '')}"
    opened = subprocess.run([sys.executable, NOMAD, f"-address={base}", "ui", node_id], capture_output=True,
                            text=True, timeout=CLI_TIMEOUT_S, env={**os.environ, "PATH": env_path})
    assert (opened.returncode, opened.stdout) == (0, f'Opening URL "{base}/ui/clients/{node_id}"\n')
    assert seen.read_text() == f"{base}/ui/clients/{node_id}\n"
