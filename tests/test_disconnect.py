"""Disconnected clients: the group ``disconnect`` block, ``unknown`` allocations, reconnects."""

from __future__ import annotations

from typing import Any

import pytest

from actors.http_jobs import job_in, job_out
from actors.scheduler.job import JobError, canonical_job, disconnect_warnings
from actors.scheduler.jobdiff import job_diff
from runtime.hcl_job import HclJobError, parse_hcl_job

SEC = 10**9


def _file(group_extra: str, job_type: str = "service") -> str:
    return f'''job "web" {{
  type = "{job_type}"
  datacenters = ["dc1"]
  group "g" {{
    count = 2
    {group_extra}
    task "t" {{
      driver = "raw_exec"
      config {{ command = "/bin/sleep" }}
    }}
  }}
}}'''


# ------------------------------------------------------------ jobspec
def test_the_disconnect_block_maps_onto_the_groups_disconnect_strategy_with_nomads_defaults() -> None:
    j = parse_hcl_job(_file('disconnect {\n lost_after = "5m"\n reconcile = "keep_original"\n }'))
    assert j["TaskGroups"][0]["Disconnect"] == {"LostAfter": 300 * SEC, "Reconcile": "keep_original"}
    g = canonical_job(j)["TaskGroups"][0]
    assert g["Disconnect"] == {"LostAfter": 300 * SEC, "StopOnClientAfter": None, "Replace": True,
                               "Reconcile": "keep_original"}
    j = parse_hcl_job(_file('disconnect {\n stop_on_client_after = "90s"\n replace = false\n }'))
    assert canonical_job(j)["TaskGroups"][0]["Disconnect"] == {
        "LostAfter": 0, "StopOnClientAfter": 90 * SEC, "Replace": False, "Reconcile": "best_score"}
    # None given: none kept, so a job stored before is as it was.
    assert "Disconnect" not in canonical_job(parse_hcl_job(_file("")))["TaskGroups"][0]


@pytest.mark.parametrize("disconnect, job_type, message", [
    ({"LostAfter": 5 * SEC, "StopOnClientAfter": 5 * SEC}, "service",
     "Disconnect cannot be configured with both lost_after and stop_after"),
    ({"LostAfter": -1}, "service", "lost_after cannot be a negative duration"),
    ({"StopOnClientAfter": -1}, "service", "stop_after cannot be a negative duration"),
    ({"StopOnClientAfter": SEC}, "system", "stop_after can only be used with service or batch job types"),
    ({"Reconcile": "newest"}, "service", "reconcile option is invalid: newest"),
    ({"Replace": "yes"}, "service", "Replace: must be a boolean"),
])
def test_a_disconnect_strategy_nomad_refuses_is_refused_with_its_message(disconnect: dict, job_type: str,
                                                                          message: str) -> None:
    j = parse_hcl_job(_file("", job_type))
    j["TaskGroups"][0]["Disconnect"] = disconnect
    if job_type == "system":
        j["TaskGroups"][0]["Count"] = 1
    with pytest.raises(JobError, match=message):
        canonical_job(j)


def test_unknown_disconnect_keys_are_refused_by_the_job_file() -> None:
    with pytest.raises(HclJobError, match="'lost' not supported"):
        parse_hcl_job(_file('disconnect {\n lost = "5m"\n }'))


def test_the_deprecated_group_keys_are_kept_and_ignored_with_nomads_warnings() -> None:
    j = parse_hcl_job(_file('max_client_disconnect = "1m"\n stop_after_client_disconnect = "2m"'))
    g = canonical_job(j)["TaskGroups"][0]
    assert g["MaxClientDisconnect"] == 60 * SEC and g["StopAfterClientDisconnect"] == 120 * SEC
    assert "Disconnect" not in g  # Nomad 1.10+: they no longer map onto the disconnect block
    assert disconnect_warnings(canonical_job(j)) == [
        "MaxClientDisconnect is deprecated and ignored in favor of Disconnect.LostAfter",
        "StopAfterClientDisconnect is deprecated and ignored favor of Disconnect.StopOnClientAfter"]


def test_the_disconnect_block_survives_inspect_and_resubmission_and_shows_in_the_diff() -> None:
    job = canonical_job(parse_hcl_job(_file('disconnect {\n lost_after = "5m"\n }')))
    out = job_out(job)
    assert out["TaskGroups"][0]["Disconnect"]["LostAfter"] == 300 * SEC
    assert out["TaskGroups"][0]["MaxClientDisconnect"] is None
    assert canonical_job(job_in(out)) == job
    new = canonical_job(parse_hcl_job(_file('disconnect {\n lost_after = "10m"\n replace = false\n }')))
    (obj,) = [o for o in job_diff(job, new)["TaskGroups"][0]["Objects"] if o["Name"] == "Disconnect"]
    fields = {f["Name"]: (f["Old"], f["New"]) for f in obj["Fields"] if f["Type"] == "Edited"}
    assert fields == {"LostAfter": (str(300 * SEC), str(600 * SEC)), "Replace": ("true", "false")}
