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
