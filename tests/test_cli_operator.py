"""`nomad system gc`, `nomad operator metrics`, `nomad node config`, /v1/agent/servers and
`nomad operator raft transfer-leadership` on a real -dev agent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

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
    bad = nomad(dev, "operator", "metrics", "-format", "xml")
    assert bad.returncode == 1 and "Invalid format" in bad.stderr


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
    assert http(dev, "DELETE", "/v1/agent/servers")[0] == 405


def test_operator_api_reads_writes_and_reports_errors_as_curl_would(dev) -> None:  # noqa: F811
    out = nomad(dev, "operator", "api", "/v1/status/leader")
    assert out.returncode == 0 and json.loads(out.stdout).startswith("127.0.0.1:"), out.stderr
    put = nomad(dev, "operator", "api", "-X", "PUT", "/v1/var/api/v", stdin='{"Items": {"k": "v"}}')
    assert put.returncode == 0 and json.loads(put.stdout)["Items"] == {"k": "v"}, put.stderr
    got = nomad(dev, "operator", "api", "-H", "X-Nomad-Namespace: default", "/v1/var/api/v?namespace=default")
    assert json.loads(got.stdout)["Path"] == "api/v"
    missing = nomad(dev, "operator", "api", "/v1/job/none")
    assert missing.returncode == 1 and "404" in missing.stderr and "job not found" in missing.stderr
    dry = nomad(dev, "operator", "api", "-dryrun", "-X", "DELETE", "/v1/var/api/v")
    assert dry.stdout.startswith("curl -X DELETE ") and dry.stdout.rstrip().endswith("/v1/var/api/v")
    assert nomad(dev, "operator", "api", "-X", "DELETE", "/v1/var/api/v").returncode == 0
    assert nomad(dev, "operator", "api", "-H", "bad", "/v1/status/leader").returncode == 1


def test_transfer_leadership_on_a_single_server_is_a_no_op_or_nomads_error(dev) -> None:  # noqa: F811
    leader = json.loads(http(dev, "GET", "/v1/status/leader")[1])
    status, body = http(dev, "PUT", f"/v1/operator/raft/transfer-leadership?address={leader}")
    assert status == 200 and json.loads(body) == {"From": {"Address": leader, "ID": leader},
                                                  "To": {"Address": leader, "ID": leader},
                                                  "Noop": True, "Err": None}
    assert http(dev, "PUT", "/v1/operator/raft/transfer-leadership") == (400, b"must specify id or address")
    assert http(dev, "GET", f"/v1/operator/raft/transfer-leadership?id={leader}")[0] == 405
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-id", leader)
    assert (out.returncode, out.stdout.strip()) == (0, f'Transferred leadership to peer with id "{leader}"')
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-address", "10.0.0.1:4647")
    assert out.returncode == 1 and out.stdout == "" and out.stderr.strip() == (
        "Error: Error transferring leadership to peer: Unexpected response code: 400 "
        '(address "10.0.0.1:4647" was not found in the Raft configuration)')
    out = nomad(dev, "operator", "raft", "transfer-leadership", "-peer-name=x")
    assert out.returncode == 1 and "Failed to parse args: flag provided but not defined: -peer-name" in out.stderr
