"""Each command prints Nomad's own context before an API failure (command/*.go's ``Error ...: %s``)."""

import pytest

from runtime.cli import main

GONE = "http://127.0.0.1:9"  # nothing listens: the API call fails at once


@pytest.mark.parametrize("args, context, path", [
    (["server", "members"], "Error querying servers", "/v1/agent/members"),
    (["job", "status"], "Error querying jobs", "/v1/jobs"),
    (["status"], "Error querying jobs", "/v1/jobs"),  # nomad status with no ID: JobStatusCommand's list
    (["node", "status"], "Error querying node status", "/v1/nodes"),
    (["eval", "list"], "Error querying evaluations", "/v1/evaluations"),
    (["deployment", "list"], "Error retrieving deployments", "/v1/deployments"),
    (["operator", "raft", "list-peers"], "Failed to retrieve raft configuration",
     "/v1/operator/raft/configuration"),
    (["agent-info"], "Error querying agent info", "/v1/agent/self"),
    (["system", "gc"], "Error running system garbage-collection", "/v1/system/gc"),
    (["namespace", "list"], "Error retrieving namespaces", "/v1/namespaces"),
    # Nomad's namespace apply <name> reads the namespace first (to keep what the flags do not set)
    (["namespace", "apply", "x"], "Error looking up namespace", "/v1/namespace/x"),
    (["node", "pool", "list"], "Error querying node pools", "/v1/node/pools"),
    (["node", "pool", "info", "default"], "Error retrieving node pool", "/v1/node/pools?prefix=default"),
    (["operator", "scheduler", "get-config"], "Error querying scheduler configuration",
     "/v1/operator/scheduler/configuration"),
    (["service", "list"], "Error listing service registrations", "/v1/services"),
    (["operator", "root", "keyring", "list"], "error", "/v1/operator/keyring/keys"),
    (["operator", "gossip", "keyring", "list"], "error", "/v1/agent/keyring/list"),
    (["operator", "snapshot", "save", "/nonexistent-dir/never.snap"], "Failed to get snapshot file",
     "/v1/operator/snapshot"),
    (["operator", "api", "/v1/jobs"], "Error performing request", "/v1/jobs"),
    (["acl", "bootstrap"], "Error bootstrapping", "/v1/acl/bootstrap"),
    (["system", "reconcile", "summaries"], "Error running system summary reconciliation",
     "/v1/system/reconcile/summaries"),
    (["operator", "autopilot", "health"], "Error querying Autopilot configuration",
     "/v1/operator/autopilot/health"),
    (["operator", "metrics"], "Error getting metrics", "/v1/metrics"),
    (["operator", "metrics", "-json"], "Error querying metrics", "/v1/metrics"),
])
def test_api_failure_is_printed_under_the_commands_context(capsys, args, context, path):
    assert main([f"-address={GONE}", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'{context}: ') and f'"{GONE}{path}' in err, err
    assert err.endswith("dial tcp 127.0.0.1:9: connect: connection refused\n") and err.count("\n") == 1, err


def test_errors_that_are_not_api_failures_keep_their_wording(capsys):
    assert main([f"-address={GONE}", "job", "status", "-bogus"]) == 1
    assert capsys.readouterr().err.startswith("flag provided but not defined: -bogus")


def test_a_message_with_its_own_context_gets_no_second_error_prefix(capsys):
    """Nomad's Ui.Error prints "Error parsing interval: ..." as it is, never "Error: Error parsing ..."."""
    assert main([f"-address={GONE}", "operator", "debug", "-duration", "1s", "-interval", "5s"]) == 1
    assert capsys.readouterr().err == "Error parsing interval: 5s is greater than duration 1s\n"


def test_volume_status_prints_each_lists_failure_and_exits_1(capsys):
    """Nomad's volume status without an ID lists both kinds; each failed list prints its own error."""
    assert main([f"-address={GONE}", "volume", "status"]) == 1
    got = capsys.readouterr()
    assert got.out == "Dynamic Host Volumes\n\nContainer Storage Interface\n"
    assert got.err.splitlines() == [
        f'Error querying host volumes: Get "{GONE}/v1/volumes?type=host": dial tcp 127.0.0.1:9: connect: '
        "connection refused",
        f'Error querying CSI volumes: Get "{GONE}/v1/volumes?type=csi": dial tcp 127.0.0.1:9: connect: '
        "connection refused"]


def test_volume_status_json_prints_no_stray_blank_lines_when_the_lists_fail(capsys):
    """With -json there are no headers: only Nomad's one Output("") between the two lists."""
    assert main([f"-address={GONE}", "volume", "status", "-json"]) == 1
    assert capsys.readouterr().out == "\n"
    assert main([f"-address={GONE}", "volume", "status", "-type", "csi", "-json"]) == 1
    assert capsys.readouterr().out == ""
