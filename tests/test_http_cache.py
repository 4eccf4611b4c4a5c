"""List reads answered from the encoded-answer cache (actors.http_cache) are never stale: a -dev agent."""

from __future__ import annotations

import pytest

from tests.test_http_jobs import call, dev, sleep_job  # noqa: F401

pytestmark = pytest.mark.timeout(90)


def test_a_cached_list_changes_with_its_tables_and_keeps_parameters_apart(dev):  # noqa: F811
    port = dev.http_port
    first = call(port, "GET", "/v1/jobs")
    again = call(port, "GET", "/v1/jobs")
    assert first.body == again.body and first.headers["x-nomad-index"] == again.headers["x-nomad-index"]
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("cache-a", count=0)}).status == 200
    after = call(port, "GET", "/v1/jobs")
    assert int(after.headers["x-nomad-index"]) > int(first.headers["x-nomad-index"])
    assert "cache-a" in [j["ID"] for j in after.json()]
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("cache-b", count=0)}).status == 200
    assert [j["ID"] for j in call(port, "GET", "/v1/jobs?prefix=cache-a").json()] == ["cache-a"]
    assert [j["ID"] for j in call(port, "GET", "/v1/jobs?prefix=cache-b").json()] == ["cache-b"]
    assert {"cache-a", "cache-b"} <= {j["ID"] for j in call(port, "GET", "/v1/jobs?stale").json()}
    pretty = call(port, "GET", "/v1/jobs?pretty")
    assert pretty.body.startswith(b"[\n") and pretty.json() == call(port, "GET", "/v1/jobs").json()
    nodes = call(port, "GET", "/v1/nodes")
    assert nodes.status == 200 and nodes.body == call(port, "GET", "/v1/nodes").body
    for job in ("cache-a", "cache-b"):
        call(port, "DELETE", f"/v1/job/{job}?purge=true")
    assert not {"cache-a", "cache-b"} & {j["ID"] for j in call(port, "GET", "/v1/jobs").json()}
