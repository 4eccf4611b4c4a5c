"""``job run -check-index``: Nomad's Job.EnforceIndex, applied by the state store."""
from __future__ import annotations

from actors.scheduler.job import canonical_job
from tests.test_scheduler import Cluster, service


def _register(c: Cluster, enforce: int | None, **extra: object) -> dict:
    return c.apply("job_register", job=canonical_job(service("web", count=1)), enforce_index=enforce, **extra)


def test_check_index_zero_registers_a_new_job_only() -> None:
    c = Cluster()
    assert _register(c, 0, enforce_absent=True)["ok"]
    again = _register(c, 0, enforce_absent=True)
    assert again == {"ok": False, "error": "Enforcing job modify index 0: job already exists"}


def test_check_index_of_a_job_that_does_not_exist_is_refused() -> None:
    c = Cluster()
    r = _register(c, 5, enforce_absent=True)
    assert r == {"ok": False, "error": "Enforcing job modify index 5: job does not exist"}
    assert "web" not in c.state.tables["jobs"]


def test_check_index_matching_the_job_updates_it_and_a_stale_one_is_refused() -> None:
    c = Cluster()
    _register(c, None)
    jmi = c.state.tables["jobs"]["web"]["JobModifyIndex"]
    stale = _register(c, jmi + 1, enforce_absent=True)
    assert stale["error"] == f"Enforcing job modify index {jmi + 1}: job exists with conflicting job " \
                             f"modify index: {jmi}"
    assert _register(c, jmi, enforce_absent=True)["ok"]


def test_entries_written_before_enforce_absent_apply_as_they_did() -> None:
    c = Cluster()
    assert _register(c, 5)["ok"]  # an older entry: a missing job was registered


def test_an_unchanged_registration_keeps_the_versions_submit_time() -> None:
    # Nomad's Job.Register writes no job when the spec has not changed: `job history` and `job status`
    # keep showing when the version was submitted, not when it was last re-run.
    c = Cluster()
    _register(c, None, keep_unchanged_time=True)
    first = c.state.tables["jobs"]["web"]
    c.now += 60
    assert _register(c, None, keep_unchanged_time=True)["ok"]
    again = c.state.tables["jobs"]["web"]
    assert again["Version"] == first["Version"] == 0 and again["SubmitTime"] == first["SubmitTime"]
    # A changed spec is a new version, submitted now.
    c.now += 60
    assert c.apply("job_register", job=canonical_job(service("web", count=2)), keep_unchanged_time=True)["ok"]
    newer = c.state.tables["jobs"]["web"]
    assert newer["Version"] == 1 and newer["SubmitTime"] == c.now
    # An entry written before keep_unchanged_time applies as it did (its submit time moves).
    c.now += 60
    assert c.apply("job_register", job=canonical_job(service("web", count=2)))["ok"]
    latest = c.state.tables["jobs"]["web"]
    assert latest["Version"] == 1 and latest["SubmitTime"] == c.now


def test_revert_refusals_carry_nomads_texts() -> None:
    c = Cluster()
    _register(c, None)
    assert c.apply("job_register", job=canonical_job(service("web", count=2)))["ok"]
    # Nomad's Job.Revert: the current version first, then an untracked one, then EnforcePriorVersion.
    assert c.apply("job_revert", job_id="web", version=1, enforce_prior_version=0) == \
        {"ok": False, "error": "can't revert to current version"}
    assert c.apply("job_revert", job_id="web", version=42, enforce_prior_version=0) == \
        {"ok": False, "error": 'job "web" in namespace "default" at version 42 not found'}
    assert c.apply("job_revert", job_id="web", version=0, enforce_prior_version=0) == \
        {"ok": False, "error": "Current job has version 1; enforcing version 0"}
    assert c.state.tables["jobs"]["web"]["Version"] == 1
    assert c.apply("job_revert", job_id="web", version=0)["ok"]
    assert c.state.tables["jobs"]["web"]["Version"] == 2
