"""`nomad system gc`, `nomad operator metrics`, `nomad node config`, /v1/agent/servers and
`nomad operator raft transfer-leadership` on a real -dev agent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.ports import free_port
from tests.test_cli_jobs import nomad
from tests.test_http_jobs import dev  # noqa: F401  (the module's -dev agent fixture)

pytestmark = pytest.mark.timeout(120)


def http(agent, method: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{agent.http_port}{path}", method=method,
                                 data=b"" if method in ("PUT", "POST") else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_system_gc_runs_on_the_servers(dev) -> None:  # noqa: F811
    out = nomad(dev, "system", "gc")
    assert out.returncode == 0, out.stderr
    assert nomad(dev, "system", "gc", "extra").returncode == 1


def test_operator_metrics_json_and_prometheus(dev) -> None:  # noqa: F811
    out = nomad(dev, "operator", "metrics")
    assert out.returncode == 0, out.stderr
    assert "Gauges" in json.loads(out.stdout)
    prom = nomad(dev, "operator", "metrics", "-format", "prometheus")
    assert prom.returncode == 0 and "# TYPE" in prom.stdout
    # Nomad prints the agent's body as it came: compact JSON in the agent's key order (Timestamp
    # first); -pretty asks the agent to indent it; -json is the decoded summary indented four spaces.
    assert out.stdout.startswith('{"Timestamp":'), out.stdout[:80]
    assert nomad(dev, "operator", "metrics", "-pretty").stdout.startswith('{\n    "Timestamp": ')
    as_json = nomad(dev, "operator", "metrics", "-json")
    assert as_json.returncode == 0 and as_json.stdout.startswith('{\n    "Timestamp": ')
    # Nomad's CLI passes -format to the agent, whose metrics endpoint answers JSON to any but prometheus.
    other = nomad(dev, "operator", "metrics", "-format", "xml")
    assert other.returncode == 0 and other.stdout.startswith('{"Timestamp":'), other.stderr


def test_client_server_list_read_and_replaced(dev) -> None:  # noqa: F811
    status, body = http(dev, "GET", "/v1/agent/servers")
    assert status == 200
    servers = json.loads(body)
    assert servers and all(":" in s for s in servers)
    out = nomad(dev, "node", "config", "-servers")
    assert out.returncode == 0 and out.stdout.split() == servers
    assert http(dev, "PUT", "/v1/agent/servers")[0] == 400  # no address
    assert http(dev, "PUT", "/v1/agent/servers?address=nonsense")[0] == 400
    out = nomad(dev, "node", "config", "-update-servers", *servers)
    assert out.returncode == 0, out.stderr
    assert json.loads(http(dev, "GET", "/v1/agent/servers")[1]) == servers
    # Each address is pinged: one that answers nothing is left out; none answering changes nothing.
    dead = f"127.0.0.1:{free_port()}"
    status, body = http(dev, "PUT", f"/v1/agent/servers?address={dead}")
    said = f"1 error occurred:\n\t* Server at address {dead} failed ping:".encode()
    assert status == 400 and body.startswith(said), body
    status, _ = http(dev, "PUT", f"/v1/agent/servers?address={dead}&address={servers[0]}")
    assert status == 200 and json.loads(http(dev, "GET", "/v1/agent/servers")[1]) == servers[:1]
    assert http(dev, "DELETE", "/v1/agent/servers")[0] == 405


def test_operator_api_reads_writes_and_reports_errors_as_curl_would(dev) -> None:  # noqa: F811
    out = nomad(dev, "operator", "api", "/v1/status/leader")
    assert out.returncode == 0 and json.loads(out.stdout).startswith("127.0.0.1:"), out.stderr
    put = nomad(dev, "operator", "api", "-X", "PUT", "/v1/var/api/v", stdin='{"Items": {"k": "v"}}')
    assert put.returncode == 0 and json.loads(put.stdout)["Items"] == {"k": "v"}, put.stderr
    got = nomad(dev, "operator", "api", "-H", "X-Nomad-Namespace: default", "/v1/var/api/v?namespace=default")
    assert json.loads(got.stdout)["Path"] == "api/v"
    missing = nomad(dev, "operator", "api", "/v1/job/none")
    # Nomad prints the body of any answer and exits 0 (it is curl without --fail).
    assert missing.returncode == 0 and missing.stdout.strip() == "job not found", missing
    dry = nomad(dev, "operator", "api", "-dryrun", "-X", "DELETE", "/v1/var/api/v")
    assert dry.stdout.startswith("curl -X DELETE ") and dry.stdout.rstrip().endswith("/v1/var/api/v")
    assert nomad(dev, "operator", "api", "-X", "DELETE", "/v1/var/api/v").returncode == 0
    assert nomad(dev, "operator", "api", "-H", "bad", "/v1/status/leader").returncode == 1
    # -filter sets the query's filter; -verbose tells the exchange on stderr, curl's way.
    none = nomad(dev, "operator", "api", "-verbose", "-filter", 'Name == "no-such-node"', "/v1/nodes")
    assert none.returncode == 0 and json.loads(none.stdout) == [], none
    assert "> GET /v1/nodes HTTP/1.1" in none.stderr and "< HTTP/1.1 200 OK" in none.stderr


def test_transfer_leadership_on_a_single_server_is_a_no_op_or_nomads_error(dev) -> None:  # noqa: F811
    leader = json.loads(http(dev, "GET", "/v1/status/leader")[1])
    # Raft protocol 3: the server's Raft ID is its node ID, its address beside it.
    (server,) = json.loads(http(dev, "GET", "/v1/operator/raft/configuration")[1])["Servers"]
    ident = server["ID"]
    assert server["Address"] == leader and ident != leader
    status, body = http(dev, "PUT", f"/v1/operator/raft/transfer-leadership?address={leader}")
    assert status == 200 and json.loads(body) == {"From": {"Address": leader, "ID": ident},
                                                  "To": {"Address": leader, "ID": ident},
                                                  "Noop": True, "Err": None}
    assert http(dev, "PUT", "/v1/operator/raft/transfer-leadership") == (400, b"must specify id or address")
    assert http(dev, "GET", f"/v1/operator/raft/transfer-leadership?id={ident}")[0] == 405
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-id", ident)
    assert (out.returncode, out.stdout.strip()) == (0, f'Transferred leadership to peer with id "{ident}"')
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-address", "10.0.0.1:4647")
    assert out.returncode == 1 and out.stdout == "" and out.stderr.strip() == (
        "Error transferring leadership to peer: Unexpected response code: 400 "
        '(address "10.0.0.1:4647" was not found in the Raft configuration)')
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-name=x")
    assert out.returncode == 1
    assert "Failed to parse args: flag provided but not defined: -peer-name" in out.stderr


AUTOPILOT = "/v1/operator/autopilot/configuration"
DEFAULTS = {"CleanupDeadServers": True, "LastContactThreshold": "200ms", "MaxTrailingLogs": 250,
            "MinQuorum": 0, "ServerStabilizationTime": "10s", "EnableRedundancyZones": False,
            "DisableUpgradeMigration": False, "EnableCustomUpgrades": False}


def test_the_autopilot_configuration_is_seeded_read_and_set_as_nomads(dev) -> None:  # noqa: F811
    from tests.test_agent_process import wait_for
    from tests.test_http_jobs import call

    port = dev.http_port
    # The leader writes the agent's autopilot block (Nomad's defaults here) at its election.
    got = wait_for(lambda: (r := call(port, "GET", AUTOPILOT).json())["ModifyIndex"] > 0 and r,
                   "the seeded autopilot configuration")
    assert {k: got[k] for k in DEFAULTS} == DEFAULTS and got["CreateIndex"] == got["ModifyIndex"]
    try:
        new = {**DEFAULTS, "LastContactThreshold": "1m30s", "MaxTrailingLogs": 40, "MinQuorum": 3}
        r = call(port, "PUT", AUTOPILOT, new)
        assert (r.status, r.json()) == (200, True), r.text
        got = call(port, "GET", AUTOPILOT).json()
        assert {k: got[k] for k in new} == new and got["ModifyIndex"] == int(r.headers["x-nomad-index"])
        stale = call(port, "PUT", f"{AUTOPILOT}?cas={got['ModifyIndex'] - 1}", {**new, "MinQuorum": 9})
        assert (stale.status, stale.json()) == (200, False)
        ok = call(port, "PUT", f"{AUTOPILOT}?cas={got['ModifyIndex']}", {**new, "MinQuorum": 1})
        assert (ok.status, ok.json()) == (200, True)
        assert call(port, "GET", f"{AUTOPILOT}?stale").json()["MinQuorum"] == 1
        parse = "Error parsing autopilot config: "
        for body, text in [
            (b"{nope", parse + "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            (b"", parse + "Request body is empty"),
            (b'{"LastContactThreshold": "soon"}', parse + 'time: invalid duration "soon"'),
            (b'{"LastContactThreshold": 200}',
             parse + "json: cannot unmarshal number into Go struct field .LastContactThreshold of type "
                     "string"),
            (b'{"MaxTrailingLogs": -5}', parse + "json: cannot unmarshal number -5 into Go struct field "
                                                 "AutopilotConfiguration.MaxTrailingLogs of type uint64"),
            (b'{"ServerStabilizationTime": "-10s"}',
             parse + "ServerStabilizationTime: must not be negative, got -10s"),
        ]:
            r = call(port, "PUT", AUTOPILOT, raw=body)
            assert (r.status, r.text) == (400, text), body
        r = call(port, "PUT", f"{AUTOPILOT}?cas=x", new)
        assert (r.status, r.text) == \
            (400, 'Error parsing cas value: strconv.ParseUint: parsing "x": invalid syntax')
        for method in ("POST", "DELETE"):  # Nomad: PUT only, anything else 404
            assert (call(port, method, AUTOPILOT, new).status, method) == (404, method)
        assert call(port, "GET", AUTOPILOT).json()["MinQuorum"] == 1  # none of them changed anything
    finally:
        assert call(port, "PUT", AUTOPILOT, DEFAULTS).json() is True


def test_operator_autopilot_get_and_set_config_as_nomads(dev) -> None:  # noqa: F811
    out = nomad(dev, "operator", "autopilot", "get-config")
    assert out.returncode == 0 and out.stdout.splitlines() == [
        "CleanupDeadServers = true", "LastContactThreshold = 200ms", "MaxTrailingLogs = 250", "MinQuorum = 0",
        "ServerStabilizationTime = 10s", "EnableRedundancyZones = false", "DisableUpgradeMigration = false",
        "EnableCustomUpgrades = false"], out.stderr
    try:
        out = nomad(dev, "operator", "autopilot", "set-config", "-cleanup-dead-servers=false",
                    "-max-trailing-logs", "100", "-min-quorum=3", "-last-contact-threshold=250ms",
                    "-server-stabilization-time=1m30s")
        assert (out.returncode, out.stdout.strip()) == (0, "Configuration updated!"), out.stderr
        got = json.loads(nomad(dev, "operator", "autopilot", "get-config", "-json").stdout)
        want = {"CleanupDeadServers": False, "MaxTrailingLogs": 100, "MinQuorum": 3,
                "LastContactThreshold": "250ms", "ServerStabilizationTime": "1m30s"}
        assert {k: got[k] for k in want} == want
        # Only the flags given change.
        out = nomad(dev, "operator", "autopilot", "set-config", "-min-quorum=0")
        assert out.returncode == 0, out.stderr
        lines = nomad(dev, "operator", "autopilot", "get-config").stdout.splitlines()
        assert {"CleanupDeadServers = false", "MinQuorum = 0", "MaxTrailingLogs = 100"} <= set(lines)
        for args, err in [
            (["-cleanup-dead-servers=maybe"], 'Failed to parse args: invalid value "maybe" for flag '
                                              '-cleanup-dead-servers: strconv.ParseBool: parsing "maybe": '
                                              "invalid syntax"),
            (["-last-contact-threshold=soon"], 'Failed to parse args: invalid value "soon" for flag '
                                               '-last-contact-threshold: time: invalid duration "soon"'),
            (["-max-trailing-logs=-1"],
             'Failed to parse args: invalid value "-1" for flag -max-trailing-logs: '
             'strconv.ParseUint: parsing "-1": invalid syntax'),
            (["-min-quorum"], "Failed to parse args: flag needs an argument: -min-quorum"),
            (["-server-stabilization-time=-5s"], "Error setting Autopilot configuration: Unexpected response "
                                                 "code: 400 (Error parsing autopilot config: "
                                                 "ServerStabilizationTime: must not be negative, got -5s)"),
            (["extra"], "This command takes no arguments"),
        ]:
            out = nomad(dev, "operator", "autopilot", "set-config", *args)
            line = err  # Nomad prints each message as it is
            assert (out.returncode, out.stdout, out.stderr.strip()) == (1, "", line), args
    finally:
        out = nomad(dev, "operator", "autopilot", "set-config", "-cleanup-dead-servers=true",
                    "-max-trailing-logs=250", "-min-quorum=0", "-last-contact-threshold=200ms",
                    "-server-stabilization-time=10s")
        assert out.returncode == 0, out.stderr
