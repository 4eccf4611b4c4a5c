"""Namespaces: only Nomad's built-in "default" exists (none are managed here); lists honour ?namespace=."""

from __future__ import annotations

import pytest

from actors.scheduler.job import JobError, canonical_job
from tests.test_http_jobs import call, dev, sleep_job  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def test_a_job_in_a_namespace_that_does_not_exist_is_refused_naming_it():
    job = sleep_job("ns-job")
    assert canonical_job(job)["Namespace"] == "default"
    assert canonical_job({**job, "Namespace": "default"})["Namespace"] == "default"
    with pytest.raises(JobError, match=r"Namespace: job 'ns-job' is in nonexistent namespace 'prod'"):
        canonical_job({**job, "Namespace": "prod"})


def test_job_list_filters_by_namespace_and_star_lists_all(dev):  # noqa: F811
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ns-listed")})
    assert r.status == 200, r.text
    bad = call(dev.http_port, "PUT", "/v1/jobs", {"Job": {**sleep_job("ns-other"), "Namespace": "prod"}})
    assert bad.status == 400 and "nonexistent namespace" in bad.text
    ids = lambda q: [j["ID"] for j in call(dev.http_port, "GET", f"/v1/jobs{q}").json()]
    for q in ("", "?namespace=default", "?namespace=*"):
        assert "ns-listed" in ids(q), q
    assert ids("?namespace=prod") == []
    assert call(dev.http_port, "DELETE", "/v1/job/ns-listed?purge=true").status == 200


def test_the_namespace_endpoints_show_default_and_refuse_to_manage_others(dev):  # noqa: F811
    port = dev.http_port
    listed = call(port, "GET", "/v1/namespaces")
    assert listed.status == 200 and [n["Name"] for n in listed.json()] == ["default"]
    assert listed.json()[0]["Description"] == "Default shared namespace"
    assert call(port, "GET", "/v1/namespaces?prefix=x").json() == []
    assert call(port, "GET", "/v1/namespace/default").json()["Name"] == "default"
    assert call(port, "GET", "/v1/namespace/prod").status == 404
    for path in ("/v1/namespace", "/v1/namespace/prod", "/v1/namespace/default"):
        r = call(port, "PUT", path, {"Name": "prod"})
        assert r.status == 501 and 'only the built-in "default" exists' in r.text, path
    r = call(port, "DELETE", "/v1/namespace/default")
    assert (r.status, r.text) == (400, "default namespace can not be deleted")
    assert call(port, "DELETE", "/v1/namespace/prod").status == 404
    assert call(port, "GET", "/v1/namespaces").status == 200  # still serving


def test_python_nomad_and_the_cli_list_the_default_namespace(dev):  # noqa: F811
    import subprocess
    import sys

    import nomad

    from tests.test_cli import NOMAD

    n = nomad.Nomad(host="127.0.0.1", port=dev.http_port, timeout=10)
    assert [x["Name"] for x in n.namespaces.get_namespaces()] == ["default"]
    assert n.namespace.get_namespace("default")["Name"] == "default"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", *args],
                              capture_output=True, text=True, timeout=60)

    out = cli("namespace", "list").stdout.splitlines()
    assert out[0].split() == ["Name", "Description"] and out[1].split()[0] == "default"
    shown = cli("namespace", "status", "default").stdout  # Nomad's formatNamespaceBasics
    assert "Name                   = default\n" in shown and "Enabled Drivers        = *\n" in shown
    refused = cli("namespace", "apply", "prod")
    assert refused.returncode == 1 and "501" in refused.stderr
