"""Service checks against a real ``-dev`` agent: a raw_exec task serving HTTP, probed over real sockets.

The job's task is Python's ``http.server`` on the allocation's dynamic
``http`` port.  Its group service has an http check of ``/`` (passes), a tcp
check of the same port (passes) and a readiness check of a path the server
does not have (fails with 404, and decides nothing).  The deployment that
places it waits for the healthiness checks; ``/v1/client/allocation/<id>/
checks``, ``nomad alloc checks`` and ``nomad alloc status`` show the
results.  Every wait is a condition with a deadline.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.test_agent_process import wait_for
from tests.test_cli_jobs import nomad
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401

pytestmark = pytest.mark.timeout(120)

SEC = 1_000_000_000
CHECK_JOB = {"ID": "checked", "Type": "service", "Datacenters": ["dc1"],
             "Update": {"MinHealthyTime": 1 * SEC, "HealthyDeadline": 60 * SEC,
                        "ProgressDeadline": 120 * SEC},
             "TaskGroups": [{
                 "Name": "web", "Count": 1,
                 "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                 "Services": [{"Name": "checked-web", "PortLabel": "http", "Checks": [
                     {"Name": "home", "Type": "http", "Path": "/", "Interval": 1 * SEC, "Timeout": 1 * SEC},
                     {"Name": "listening", "Type": "tcp", "Interval": 1 * SEC, "Timeout": 1 * SEC},
                     {"Name": "ready", "Type": "http", "Path": "/ready", "Interval": 1 * SEC,
                      "Timeout": 1 * SEC, "OnUpdate": "ignore"}]}],
                 "Tasks": [{"Name": "server", "Driver": "raw_exec", "KillTimeout": 1 * SEC,
                            "Config": {"command": sys.executable,
                                       "args": ["-m", "http.server", "${NOMAD_PORT_http}",
                                                "--bind", "127.0.0.1"]},
                            "Resources": {"CPU": 20, "MemoryMB": 32}}]}]}


def get(port: int, path: str) -> Any:
    r = call(port, "GET", path)
    assert r.status == 200, (path, r.status, r.text)
    return r.json()


@pytest.fixture(scope="module")
def checked(dev):  # noqa: F811
    """The job running, its deployment successful: (allocation, its check results)."""
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": CHECK_JOB})
    assert r.status == 200, r.text

    def done() -> tuple[dict[str, Any], dict[str, Any]] | None:
        d = call(dev.http_port, "GET", "/v1/job/checked/deployment").json()
        if not d or d["Status"] != "successful":
            return None
        (a,) = [a for a in get(dev.http_port, "/v1/job/checked/allocations")
                if a["ClientStatus"] == "running"]
        results = get(dev.http_port, f"/v1/client/allocation/{a['ID']}/checks")
        if any(c["Status"] == "pending" for c in results.values()):
            return None
        return a, results

    return wait_for(done, "the checked job deployed with its checks run", PLACE_DEADLINE_S * 2,
                    lambda: json.dumps(call(dev.http_port, "GET", "/v1/job/checked/deployment").json())
                    + dev.detail())


def test_checks_run_over_real_sockets_and_the_api_has_their_results(dev, checked):  # noqa: F811
    a, results = checked
    by_name = {c["Check"]: c for c in results.values()}
    assert set(by_name) == {"home", "listening", "ready"}
    home, listening, ready = by_name["home"], by_name["listening"], by_name["ready"]
    assert (home["Status"], home["StatusCode"], home["Output"], home["Mode"]) == \
        ("success", 200, "nomad: http ok", "healthiness")
    assert (listening["Status"], listening["Output"]) == ("success", "nomad: tcp ok")
    assert (ready["Status"], ready["StatusCode"], ready["Mode"]) == ("failure", 404, "readiness")
    for c in results.values():
        assert (c["Service"], c["Group"], c["Task"]) == ("checked-web", a["Name"], "")
        assert results[c["ID"]] is c
    full = get(dev.http_port, f"/v1/allocation/{a['ID']}")
    assert full["DeploymentStatus"]["Healthy"] is True  # the readiness check's failure decided nothing
    assert call(dev.http_port, "GET", "/v1/client/allocation/nope/checks").status == 404
    assert call(dev.http_port, "PUT", f"/v1/client/allocation/{a['ID']}/checks").status == 405


def test_nomad_alloc_checks_and_alloc_status_show_them(dev, checked):  # noqa: F811
    a, results = checked
    out = nomad(dev, "alloc", "checks", a["ID"][:8])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Status of 3 Nomad Service Checks"
    assert any(line.split() == ["Name", "=", "home"] for line in lines)
    assert any(line.split() == ["StatusCode", "=", "200"] for line in lines)
    assert any(line.split() == ["Output", "=", "nomad:", "http", "ok"] for line in lines)
    assert any(line.split() == ["Task", "=", "(group)"] for line in lines)
    as_json = nomad(dev, "alloc", "checks", "-json", a["ID"])
    assert as_json.returncode == 0 and set(json.loads(as_json.stdout)) == set(results)
    status = nomad(dev, "alloc", "status", a["ID"])
    assert status.returncode == 0, status.stderr
    text = status.stdout.splitlines()
    at = text.index("Nomad Service Checks:")
    assert text[at + 1].split() == ["Service", "Task", "Name", "Mode", "Status"]
    rows = [line.split() for line in text[at + 2:at + 5]]
    assert rows == [["checked-web", "(group)", "home", "healthiness", "success"],
                    ["checked-web", "(group)", "listening", "healthiness", "success"],
                    ["checked-web", "(group)", "ready", "readiness", "failure"]]
