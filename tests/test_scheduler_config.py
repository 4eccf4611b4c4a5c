"""The scheduler configuration: the record, spread vs binpack, rejected registrations, a paused broker,
the HTTP endpoint and ``nomad operator scheduler get-config|set-config``."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from collections import Counter

import pytest

from actors.scheduler.job import canonical_job
from actors.scheduler.scheduler import fit_score
from actors.state import scheduler_config as sched_cfg
from actors.state.store import StateStore, command
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(180)


def _set(st: StateStore, index: int, cas: int | None = None, **fields) -> dict:
    return st.apply(index, command("scheduler_set_config", config=fields, cas=cas))


# ---------------------------------------------------------------- the record


def test_the_defaults_are_nomads_until_set_and_a_set_replaces_the_whole_record():
    st = StateStore()
    assert sched_cfg.current(st.tables) == sched_cfg.DEFAULTS
    assert sched_cfg.DEFAULTS["PreemptionConfig"]["SystemSchedulerEnabled"] is True
    assert _set(st, 1, SchedulerAlgorithm="spread", PauseEvalBroker=True) == {"ok": True, "updated": True,
                                                                             "index": 1}
    cfg = sched_cfg.current(st.tables)
    assert (cfg["SchedulerAlgorithm"], cfg["PauseEvalBroker"], cfg["CreateIndex"], cfg["ModifyIndex"]) == \
        ("spread", True, 1, 1)
    assert cfg["PreemptionConfig"]["SystemSchedulerEnabled"] is False  # omitted: the zero value, as Nomad's
    _set(st, 2)
    cfg = sched_cfg.current(st.tables)
    assert (cfg["SchedulerAlgorithm"], cfg["CreateIndex"], cfg["ModifyIndex"]) == ("binpack", 1, 2)
    assert st.index(sched_cfg.TABLE) == 2


def test_check_and_set_writes_only_over_the_index_it_names():
    st = StateStore()
    assert _set(st, 1, cas=0, SchedulerAlgorithm="spread")["updated"]  # 0: never set
    assert _set(st, 2, cas=0, SchedulerAlgorithm="binpack") == {"ok": True, "updated": False}
    assert sched_cfg.algorithm(st.tables) == "spread"
    assert _set(st, 3, cas=1, SchedulerAlgorithm="binpack")["updated"]
    assert sched_cfg.algorithm(st.tables) == "binpack"


@pytest.mark.parametrize("bad,why", [
    ({"SchedulerAlgorithm": "random"}, "invalid scheduler algorithm: random"),
    ({"PauseEvalBroker": "yes"}, "PauseEvalBroker: must be a boolean"),
    ({"PreemptionConfig": {"BatchSchedulerEnabled": 1}}, "PreemptionConfig.BatchSchedulerEnabled"),
    ({"PreemptionConfig": []}, "PreemptionConfig: must be an object"),
    ({"NodeLimitForFeasibilityChecks": -1}, "NodeLimitForFeasibilityChecks: must be a non-negative integer"),
    ({"NodeLimitForFeasibilityChecks": 2.5}, "NodeLimitForFeasibilityChecks: must be a non-negative"),
    ({"NodeLimitForFeasibilityChecks": "10"}, "NodeLimitForFeasibilityChecks: must be a non-negative"),
])
def test_a_bad_configuration_is_refused_and_changes_nothing(bad, why):
    st = StateStore()
    r = _set(st, 1, **bad)
    assert not r["ok"] and why in r["error"]
    assert sched_cfg.current(st.tables) == sched_cfg.DEFAULTS


def test_the_configuration_survives_a_snapshot():
    st = StateStore()
    _set(st, 1, SchedulerAlgorithm="spread", RejectJobRegistration=True)
    again = StateStore()
    again.restore(st.snapshot(), 1)
    assert sched_cfg.current(again.tables)["RejectJobRegistration"] is True
    assert sched_cfg.algorithm(again.tables) == "spread"


# ---------------------------------------------------------------- what it does


def test_spread_scores_emptier_nodes_higher_as_binpack_scores_fuller_ones():
    cap = (1000, 1000)
    assert fit_score(cap, (900, 900)) > fit_score(cap, (100, 100))
    assert fit_score(cap, (100, 100), spread=True) > fit_score(cap, (900, 900), spread=True)
    assert fit_score(cap, (0, 0), spread=True) == 1.0 and fit_score(cap, (1000, 1000), spread=True) == 0.0


def _placements(algorithm: str) -> list[int]:
    """Allocations per node after twelve one-allocation jobs (no job anti-affinity between them)."""
    c = Cluster()
    for i in range(4):
        c.node(i, cpu=4000, mem=4096)
    c.apply("scheduler_set_config", config={"SchedulerAlgorithm": algorithm})
    for j in range(12):
        c.register(**service(f"job{j}", count=1, cpu=250, mem=128))
        c.schedule()
    c.assert_not_overcommitted()
    return sorted(Counter(a["NodeID"] for a in c.state.tables["allocs"].values()).values())


def test_binpack_fills_the_fullest_nodes_and_spread_the_emptiest():
    # Each placement scores the first two feasible nodes in the evaluation's
    # shuffled order (Nomad's limit of max(2, log2 nodes)) and takes the best.
    packed, spread = _placements("binpack"), _placements("spread")
    assert sum(packed) == sum(spread) == 12
    assert len(spread) == 4 and max(spread) <= 4
    assert max(packed) >= 5 and len(packed) < 4


def test_rejected_registrations_refuse_users_but_not_management_nor_the_servers_own_writes():
    c = Cluster()
    c.apply("scheduler_set_config", config={"RejectJobRegistration": True})
    r = c.apply("job_register", job=canonical_job(service("web")), rejectable=True)
    assert r == {"ok": False, "error": sched_cfg.JOB_REGISTRATION_DISABLED}
    assert "web" not in c.state.tables["jobs"]
    assert c.apply("job_register", job=canonical_job(service("web")), rejectable=False)["ok"]  # a management token's
    assert c.apply("job_register", job=canonical_job(service("other")))["ok"]  # not a user's request (no flag)
    r = c.apply("job_scale", job_id="web", group="g", count=1, rejectable=True)
    assert r["error"] == sched_cfg.JOB_REGISTRATION_DISABLED
    c.apply("scheduler_set_config", config={})
    assert c.apply("job_scale", job_id="web", group="g", count=1, rejectable=True)["ok"]


# ---------------------------------------------------------------- a paused broker, in the simulator


def test_a_paused_broker_schedules_nothing_until_resumed():
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    c = JobCluster(5, JobClusterConfig())
    try:
        c.run(30.0)
        c.register(sim_job("before", count=2, cpu=100))
        c.run(10.0)
        assert c.converged() == []
        c.propose(command("scheduler_set_config", config={"PauseEvalBroker": True}))
        c.run(2.0)
        c.register(sim_job("during", count=2, cpu=100))
        c.run(20.0)
        evals = [e["Status"] for e in c.checker.replica.tables["evals"].values() if e["JobID"] == "during"]
        assert evals == ["pending"] and c.allocs("during") == []
        c.propose(command("scheduler_set_config", config={"PauseEvalBroker": False}))
        c.run(20.0)
        assert c.converged() == []
        assert len([a for a in c.allocs("during") if a["DesiredStatus"] == "run"]) == 2
    finally:
        c.close()


# ---------------------------------------------------------------- over HTTP and the CLI

from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev, sleep_job  # noqa: E402,F401


def nomad(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_endpoint_reads_sets_and_checks_and_sets_as_nomads(dev):  # noqa: F811
    port, path = dev.http_port, "/v1/operator/scheduler/configuration"
    got = call(port, "GET", path).json()
    assert got["SchedulerConfig"]["SchedulerAlgorithm"] == "binpack" and "Index" in got
    r = call(port, "PUT", path, {"SchedulerAlgorithm": "spread"})
    assert r.status == 200 and r.json()["Updated"] is True
    modify = call(port, "GET", path).json()["SchedulerConfig"]["ModifyIndex"]
    assert modify == r.json()["Index"]
    stale = call(port, "PUT", f"{path}?cas={modify - 1}", {"SchedulerAlgorithm": "binpack"})
    assert stale.status == 200 and stale.json()["Updated"] is False
    assert call(port, "PUT", f"{path}?cas={modify}", {"SchedulerAlgorithm": "binpack"}).json()["Updated"]
    for body, status in (({"SchedulerAlgorithm": "random"}, 400), ({"PauseEvalBroker": "no"}, 400)):
        r = call(port, "PUT", path, body)
        assert r.status == status and "Error parsing scheduler config" in r.text, r.text
    assert call(port, "PUT", path, raw=b"{nope").status == 400
    assert call(port, "PUT", f"{path}?cas=x", {}).status == 400
    assert call(port, "DELETE", path).status == 405
    assert call(port, "GET", "/v1/agent/health").status == 200


def test_the_cli_gets_and_sets_and_a_rejecting_cluster_refuses_registrations_with_403(dev):  # noqa: F811
    port = dev.http_port
    out = nomad(port, "operator", "scheduler", "get-config")
    assert out.returncode == 0 and "Scheduler Algorithm               = " in out.stdout, out.stderr
    assert "Node Limit For Feasibility Checks = 0\n" in out.stdout
    out = nomad(port, "operator", "scheduler", "set-config", "-reject-job-registration=true")
    assert (out.returncode, out.stdout.strip()) == (0, "Scheduler configuration updated!"), out.stderr
    try:
        r = call(port, "PUT", "/v1/jobs", {"Job": sleep_job("refused", count=0)})
        assert (r.status, r.text) == (403, sched_cfg.JOB_REGISTRATION_DISABLED)
        assert call(port, "GET", "/v1/job/refused").status == 404
        got = nomad(port, "operator", "scheduler", "get-config")
        assert "Reject Job Registration           = true" in got.stdout
        stale = nomad(port, "operator", "scheduler", "set-config", "-pause-eval-broker=false", "-check-index=1")
        assert stale.returncode == 1 and "could not be atomically updated" in stale.stdout
        bad = nomad(port, "operator", "scheduler", "set-config", "-scheduler-algorithm=random")
        assert bad.returncode == 1 and "Invalid scheduler algorithm" in bad.stderr
        bad = nomad(port, "operator", "scheduler", "set-config", "-node-limit-for-feasibility-checks=-1")
        assert bad.returncode == 1 and "-node-limit-for-feasibility-checks" in bad.stderr
        out = nomad(port, "operator", "scheduler", "set-config", "-node-limit-for-feasibility-checks=7")
        assert out.returncode == 0, out.stderr
        assert call(port, "GET", "/v1/operator/scheduler/configuration").json()["SchedulerConfig"][
            "NodeLimitForFeasibilityChecks"] == 7
        got = nomad(port, "operator", "scheduler", "get-config")
        assert "Node Limit For Feasibility Checks = 7\n" in got.stdout
    finally:
        out = nomad(port, "operator", "scheduler", "set-config", "-reject-job-registration=false",
                    "-node-limit-for-feasibility-checks=0")
        assert out.returncode == 0, out.stderr
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("accepted", count=0)}).status == 200
    assert call(port, "DELETE", "/v1/job/accepted?purge=true").status == 200


# ---------------------------------------------------------------- deleting evaluations (paused broker)


def _eval_of(port: int, job_id: str) -> str:
    return next(e["ID"] for e in call(port, "GET", "/v1/evaluations").json() if e["JobID"] == job_id)


def test_evaluations_are_deleted_only_with_the_broker_paused_by_id_or_filter(dev):  # noqa: F811
    port = dev.http_port
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("evdel", count=0)}).status == 200
    first = _eval_of(port, "evdel")
    r = call(port, "DELETE", "/v1/evaluations", {"EvalIDs": [first]})
    assert (r.status, r.text) == (500, "eval broker is enabled; eval broker must be paused to delete evals")
    out = nomad(port, "eval", "delete", first)
    assert out.returncode == 1 and out.stderr.strip() == "Eval broker is not paused"
    assert "-pause-eval-broker=true" in out.stdout
    both = {"EvalIDs": [first], "Filter": 'ID != ""'}
    for body, why in ((both, "evals cannot be deleted by both ID and filter"),
                      ({}, "evals must be deleted by either ID or filter"),
                      ({"Filter": "ID ==="}, "failed to read filter expression")):
        r = call(port, "DELETE", "/v1/evaluations", body)
        assert r.status == 400 and why in r.text, r.text
    assert nomad(port, "operator", "scheduler", "set-config", "-pause-eval-broker=true").returncode == 0
    try:
        out = nomad(port, "eval", "delete", first)
        assert (out.returncode, out.stdout.strip()) == (0, "Successfully deleted 1 evaluation"), out.stderr
        assert call(port, "GET", f"/v1/evaluation/{first}").status == 404
        r = call(port, "DELETE", "/v1/evaluations", {"EvalIDs": [first]})
        assert (r.status, r.text) == (500, "eval not found")
        # Registered while paused: its evaluation stays pending, and a filter finds it.
        assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("evdel2", count=0)}).status == 200
        count = call(port, "GET", "/v1/evaluations/count?filter=" + urllib.parse.quote('JobID == "evdel2"'))
        assert count.status == 200 and count.json()["Count"] == 1
        cmd = [sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", "eval", "delete", "-filter",
               'JobID == "evdel2"']
        declined = subprocess.run(cmd, input="n\n", capture_output=True, text=True, timeout=60)
        assert declined.returncode == 0, declined.stderr
        assert "Are you sure you want to delete 1 evals? [y/N]" in declined.stdout
        assert declined.stdout.strip().endswith("Cancelling eval deletion\n\nNo evaluations were deleted")
        out = nomad(port, "eval", "delete", "-yes", "-filter", 'JobID == "evdel2"')
        assert (out.returncode, out.stdout.strip()) == (0, "Successfully deleted 1 evaluation"), out.stderr
        r = call(port, "DELETE", "/v1/evaluations", {"Filter": 'JobID == "evdel2"'})
        assert r.status == 200 and r.json()["Count"] == 0 and int(r.headers["x-nomad-index"]) > 0
    finally:
        assert nomad(port, "operator", "scheduler", "set-config", "-pause-eval-broker=false").returncode == 0
    for job in ("evdel", "evdel2"):
        assert call(port, "DELETE", f"/v1/job/{job}?purge=true").status == 200
