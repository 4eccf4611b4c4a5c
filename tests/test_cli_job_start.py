"""``nomad job start``: a stopped job runs again as a new version; a running one is refused."""
from __future__ import annotations

import subprocess
import sys

from tests.test_cli import NOMAD
from tests.test_http_jobs import call, dev, sleep_job, wait_for  # noqa: F401


def nomad(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=90)


def _running(port: int, job_id: str) -> list[dict]:
    return [a for a in call(port, "GET", f"/v1/job/{job_id}/allocations").json()
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def test_a_stopped_job_starts_again_as_a_new_version(dev):  # noqa: F811
    port = dev.http_port
    job = sleep_job("restartme", count=1, Meta={"owner": "ops"})
    assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    wait_for(lambda: _running(port, "restartme"), "the job running")
    refused = nomad(port, "job", "start", "restartme")
    assert (refused.returncode, refused.stderr.strip()) == (1, 'Job "restartme" has not been stopped')
    assert nomad(port, "job", "stop", "-detach", "restartme").returncode == 0
    wait_for(lambda: not _running(port, "restartme"), "the job stopped")
    started = nomad(port, "job", "start", "restart")  # a prefix, as Nomad's JobByPrefix
    assert started.returncode == 0, started.stdout + started.stderr
    assert "Evaluation" in started.stdout and 'finished with status "complete"' in started.stdout
    got = call(port, "GET", "/v1/job/restartme").json()
    assert got["Stop"] is False and got["Meta"] == {"owner": "ops"} and got["Version"] == 2
    wait_for(lambda: _running(port, "restartme"), "the job running again")
    detached = nomad(port, "job", "start", "-detach", "restartme")
    assert detached.returncode == 1  # running: refused again
    assert call(port, "DELETE", "/v1/job/restartme?purge=true").status == 200
    wait_for(lambda: not _running(port, "restartme"), "the job purged")
    usage = nomad(port, "job", "start")
    assert usage.returncode == 1 and "This command takes one argument: <job>" in usage.stderr


def test_stopping_disables_the_scaling_policies_and_start_warns_they_stay_disabled(dev):  # noqa: F811
    port = dev.http_port
    job = sleep_job("scaled-start", count=1)
    job["TaskGroups"][0]["Scaling"] = {"Min": 1, "Max": 3, "Enabled": True}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200

    def policies() -> list[dict]:
        return call(port, "GET", "/v1/scaling/policies?job=scaled-start").json()
    assert [p["Enabled"] for p in policies()] == [True]
    assert nomad(port, "job", "stop", "-detach", "scaled-start").returncode == 0
    assert [p["Enabled"] for p in policies()] == [False]  # Nomad's FSM: nothing autoscales a stopped job
    started = nomad(port, "job", "start", "-detach", "scaled-start")
    assert started.returncode == 0, started.stderr
    assert started.stderr == ("All scaling policies for this job were disabled when it was stopped, "
                              "resubmit it to enable them again.\n")
    assert [p["Enabled"] for p in policies()] == [False]
    assert call(port, "DELETE", "/v1/job/scaled-start?purge=true").status == 200
