"""review17: defects found reviewing the API shapes merged from apiconf/hostnet (job submission)."""

from __future__ import annotations

import copy

from actors.http_jobs import job_in, job_out
from actors.scheduler.job import JobError, canonical_job
from tests.test_api_conformance import sleep_job


def test_a_ports_ignore_collision_is_not_silently_dropped():
    job = sleep_job("ic")
    job["TaskGroups"][0]["Networks"] = [{"ReservedPorts": [{"Label": "db", "Value": 25432,
                                                            "IgnoreCollision": True}]}]
    try:
        stored = canonical_job(job_in(copy.deepcopy(job)))
    except JobError:
        return  # refused with a reason: fine
    port = job_out(stored)["TaskGroups"][0]["Networks"][0]["ReservedPorts"][0]
    assert port["IgnoreCollision"] is True


def test_a_group_networks_dns_is_not_silently_dropped():
    job = sleep_job("dns")
    job["TaskGroups"][0]["Networks"] = [{"DNS": {"Servers": ["1.1.1.1"], "Searches": None, "Options": None}}]
    try:
        stored = canonical_job(job_in(copy.deepcopy(job)))
    except JobError:
        return  # refused with a reason: fine
    networks = job_out(stored)["TaskGroups"][0]["Networks"] or [{}]  # a network of DNS only goes entirely
    assert networks[0].get("DNS") == {"Servers": ["1.1.1.1"], "Searches": None, "Options": None}
