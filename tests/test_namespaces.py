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
