"""Fixes for the defects a real-cluster session found (REVIEW20): each test failed before its fix."""
from __future__ import annotations

from actors.state import deployments
from tests.test_scheduler import SEC, Cluster, _deployment, _health, service

# ---------------------------------------------------------------- A: progress deadline and canaries
_CANARY_UPDATE = {"Canary": 1, "ProgressDeadline": 60 * SEC, "HealthyDeadline": 30 * SEC}


def _canary_rollout(c: Cluster) -> dict:
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update=_CANARY_UPDATE))
    c.schedule()
    _health(c)
    c.register(**service(count=2, cpu=600, Update=_CANARY_UPDATE))
    c.schedule()
    return _deployment(c)


def test_progress_deadline_spares_healthy_canaries_awaiting_promotion() -> None:
    """Nomad's shouldFail: a group awaiting promotion whose healthy canaries reach DesiredCanaries is
    progress enough; the deployment waits for `deployment promote`."""
    c = Cluster()
    d = _canary_rollout(c)
    assert d["TaskGroups"]["g"]["DesiredCanaries"] == 1 and d["Status"] == "running"
    assert deployments.overdue(c.state, c.now + 61) == [d["ID"]]  # the canary not healthy yet: it fails
    _health(c)
    c.now += 10
    assert deployments.overdue(c.state, c.now + 3600) == []
    c.now += 3600
    assert c.apply("deployment_fail", deployment_id=d["ID"], reason="progress")["skipped"]
    assert _deployment(c)["Status"] == "running"


def test_the_deadline_look_names_the_next_cutoff_so_the_deployment_fails_at_it() -> None:
    """The leader looks again at the nearest deadline (Nomad's per-deployment timer), not the next
    interval tick after it; a done group's deadline no longer counts."""
    c = Cluster()
    c.node(0, cpu=8000)
    c.register(**service(count=2, Update={"ProgressDeadline": 60 * SEC, "HealthyDeadline": 30 * SEC}))
    c.schedule()
    d = _deployment(c)
    by = d["TaskGroups"]["g"]["RequireProgressBy"]
    assert deployments.progress_scan(c.state, by - 1) == {"overdue": [], "next": by}
    assert deployments.progress_scan(c.state, by) == {"overdue": [d["ID"]], "next": None}
    done = {**d, "TaskGroups": {"g": {**d["TaskGroups"]["g"], "HealthyAllocs": 2}}}
    assert deployments.progress_cutoff(done) is None
