"""review17: defects found reviewing the API shapes merged from apiconf/hostnet (job submission)."""

from __future__ import annotations

import copy

import pytest

from actors.http_jobs import job_in, job_out
from actors.scheduler.job import JobError, canonical_job
from tests.test_api_conformance import sleep_job


@pytest.mark.xfail(strict=True, reason="review17: a port's IgnoreCollision true (Nomad's Port field, which "
                   "job reads now answer) is silently dropped from a submitted job instead of being honoured "
                   "or refused with the reason")
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


@pytest.mark.xfail(strict=True, reason="review17: a group network's DNS (Nomad's DNSConfig: servers, "
                   "searches, options for the tasks' resolv.conf), which job reads now answer as null, "
                   "is silently dropped from a submitted JSON job (HCL's dns block is refused)")
def test_a_group_networks_dns_is_not_silently_dropped():
    job = sleep_job("dns")
    job["TaskGroups"][0]["Networks"] = [{"DNS": {"Servers": ["1.1.1.1"], "Searches": None, "Options": None}}]
    try:
        stored = canonical_job(job_in(copy.deepcopy(job)))
    except JobError:
        return  # refused with a reason: fine
    networks = job_out(stored)["TaskGroups"][0]["Networks"] or [{}]  # a network of DNS only goes entirely
    assert networks[0].get("DNS") == {"Servers": ["1.1.1.1"], "Searches": None, "Options": None}
