"""Deployments against a real ``-dev`` agent: the HTTP API, the CLI, and a rolling update as it happens.

One ``-dev`` agent (server and client, raw_exec) is shared by the module and
purged of its jobs at the end; the jobs' tasks are long ``sleep``s.  A group
updates with ``max_parallel = 1`` and a 1 s ``min_healthy_time``, so a
rolling update of three allocations takes a few seconds; a deployment that
must stay ``running`` while it is paused, resumed and failed uses
``health_check = "manual"`` (no client decides its health) and no progress
deadline, so no clock can end it under the test.  Every wait is a condition
with a deadline (blocking queries where the API has them); nothing sleeps.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from actors.acl import Need, required
from tests.test_agent_process import AgentProc, wait_for
from tests.test_cli_jobs import NOMAD, aligned, columns, nomad, section
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401

pytestmark = pytest.mark.timeout(120)

SEC = 1_000_000_000
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"  # the time that starts each of the CLI monitor's lines
# A deployment of three allocations, replaced one at a time, each healthy after
# 1 s of running: ~4 s here; the bound is for a loaded machine.
ROLL_DEADLINE_S = 40.0
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
FAST = {"MaxParallel": 1, "MinHealthyTime": 1 * SEC, "HealthyDeadline": 20 * SEC,
        "ProgressDeadline": 30 * SEC}
# Health only an operator could set (not offered here): the deployment stays running until acted on.
HELD = {"MaxParallel": 1, "HealthCheck": "manual", "MinHealthyTime": 1 * SEC, "HealthyDeadline": 20 * SEC,
        "ProgressDeadline": 0, "AutoRevert": True}


def job(job_id: str, version: int, update: dict[str, Any], count: int = 3) -> dict[str, Any]:
    """A service job whose task's arguments (so its spec) change with *version*."""
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"], "Update": update,
            "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
                "Name": "sleeper", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": [str(3600 + version)]},
                "Resources": {"CPU": 20, "MemoryMB": 16}, "KillTimeout": 1 * SEC}]}]}


def register(port: int, spec: dict[str, Any]) -> dict[str, Any]:
    r = call(port, "PUT", "/v1/jobs", {"Job": spec})
    assert r.status == 200, r.text
    return r.json()


def latest(port: int, job_id: str) -> dict[str, Any] | None:
    r = call(port, "GET", f"/v1/job/{job_id}/deployment")
    assert r.status == 200, r.text
    return r.json()


def await_deployment(agent: AgentProc, job_id: str, version: int, status: str) -> dict[str, Any]:
    """The job's latest deployment once it is *version*'s and *status*: each look blocks until a change."""
    index = 0

    def done() -> dict[str, Any] | None:
        nonlocal index
        r = call(agent.http_port, "GET", f"/v1/job/{job_id}/deployment?index={index}&wait=5s")
        assert r.status == 200, r.text
        index, d = int(r.headers["x-nomad-index"]), r.json()
        return d if d and d["JobVersion"] == version and d["Status"] == status else None
    return wait_for(done, f"{job_id} v{version}'s deployment {status}", ROLL_DEADLINE_S,
                    lambda: json.dumps(latest(agent.http_port, job_id), indent=1) + agent.detail())


def live(allocs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in allocs if a["DesiredStatus"] == "run"]


def healthy(a: dict[str, Any]) -> bool:
    return bool((a.get("DeploymentStatus") or {}).get("Healthy"))


@pytest.fixture(scope="module")
def rolled(dev):  # noqa: F811
    """``dep-roll`` v0, then v1 rolled out; every allocation list seen during v1's roll, in order."""
    port = dev.http_port
    register(port, job("dep-roll", 0, FAST))
    v0 = await_deployment(dev, "dep-roll", 0, "successful")
    index = int(call(port, "GET", "/v1/job/dep-roll/allocations").headers["x-nomad-index"])
    register(port, job("dep-roll", 1, FAST))
    seen: list[tuple[list[dict[str, Any]], dict[str, Any] | None]] = []

    def next_change() -> bool:
        nonlocal index
        r = call(port, "GET", f"/v1/job/dep-roll/allocations?index={index}&wait=5s")
        index = int(r.headers["x-nomad-index"])
        d = latest(port, "dep-roll")
        seen.append((r.json(), d))
        allocs = live(r.json())
        return bool(d and d["JobVersion"] == 1 and d["Status"] == "successful" and len(allocs) == 3
                    and all(a["JobVersion"] == 1 and healthy(a) for a in allocs))
    wait_for(next_change, "v1 rolled out", ROLL_DEADLINE_S, dev.detail)
    return {"v0": v0, "v1": latest(port, "dep-roll"), "seen": seen}


# ---------------------------------------------------------------- a rolling update


def test_new_job_deployment_runs_then_succeeds_once_every_allocation_is_healthy(dev, rolled):  # noqa: F811
    v0 = rolled["v0"]
    assert v0["StatusDescription"] == "Deployment completed successfully"
    g = v0["TaskGroups"]["web"]
    assert (g["DesiredTotal"], g["PlacedAllocs"], g["HealthyAllocs"], g["UnhealthyAllocs"]) == (3, 3, 3, 0)
    versions = call(dev.http_port, "GET", "/v1/job/dep-roll/versions").json()["Versions"]
    assert {v["Version"]: v["Stable"] for v in versions} == {1: True, 0: True}  # each success marks it stable


def test_rolling_update_replaces_one_allocation_at_a_time(rolled):
    seen = rolled["seen"]
    mixed = False
    for allocs, d in seen:
        up = live(allocs)
        assert len(up) <= 3, up
        new = [a for a in up if a["JobVersion"] == 1]
        # max_parallel = 1: at most one new allocation not yet healthy, in the allocations and the counters.
        assert len([a for a in new if not healthy(a)]) <= 1, up
        if d and d["JobVersion"] == 1:
            g = d["TaskGroups"]["web"]
            assert g["PlacedAllocs"] - g["HealthyAllocs"] <= 1 and g["PlacedAllocs"] <= g["DesiredTotal"] == 3
            assert d["Status"] in ("running", "successful"), d
        mixed = mixed or (0 < len(new) < len(up))
    assert mixed, "never saw old and new versions running side by side"
    v1 = rolled["v1"]
    assert v1["TaskGroups"]["web"]["HealthyAllocs"] == 3 and v1["ID"] != rolled["v0"]["ID"]
    stopped = [a for a in seen[-1][0] if a["JobVersion"] == 0]
    assert len(stopped) == 3 and all(a["DesiredStatus"] == "stop" for a in stopped)


# ---------------------------------------------------------------- reads


def test_deployment_list_is_newest_first_with_prefix_filter_and_pages(dev, rolled):  # noqa: F811
    port = dev.http_port
    v0, v1 = rolled["v0"]["ID"], rolled["v1"]["ID"]
    r = call(port, "GET", "/v1/deployments")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    listed = r.json()
    order = [d["ID"] for d in listed]
    assert order.index(v1) < order.index(v0)
    assert [d["CreateIndex"] for d in listed] == sorted((d["CreateIndex"] for d in listed), reverse=True)
    assert int(r.headers["x-nomad-index"]) >= max(d["ModifyIndex"] for d in listed)
    assert r.headers["x-nomad-knownleader"] == "true"
    assert [d["ID"] for d in call(port, "GET", "/v1/deployments?ascending=true").json()] == order[::-1]
    assert [d["ID"] for d in call(port, "GET", f"/v1/deployments?prefix={v0[:8]}").json()] == [v0]
    assert call(port, "GET", "/v1/deployments?prefix=zz").json() == []
    assert call(port, "GET", "/v1/deployments?namespace=other").json() == []
    expr = urllib.parse.quote('JobID == "dep-roll" and JobVersion == 0')
    assert [d["ID"] for d in call(port, "GET", f"/v1/deployments?filter={expr}").json()] == [v0]
    bad = call(port, "GET", "/v1/deployments?filter=" + urllib.parse.quote("JobVersion =="))
    assert bad.status == 400 and bad.text.startswith("failed to read filter expression")

    first = call(port, "GET", "/v1/deployments?per_page=1")
    assert [d["ID"] for d in first.json()] == order[:1]
    token = first.headers["x-nomad-nexttoken"]
    assert token == f"{listed[1]['CreateIndex']}.{listed[1]['ID']}"
    second = call(port, "GET", f"/v1/deployments?per_page=1&next_token={token}")
    assert [d["ID"] for d in second.json()] == order[1:2]
    assert call(port, "GET", "/v1/deployments?next_token=x.y").status == 400


def test_deployment_reads_in_nomads_shapes_and_errors(dev, rolled):  # noqa: F811
    port = dev.http_port
    v1 = rolled["v1"]
    r = call(port, "GET", f"/v1/deployment/{v1['ID']}")
    assert r.status == 200, r.text
    d = r.json()
    assert set(d) >= {"ID", "Namespace", "JobID", "JobVersion", "JobModifyIndex", "JobSpecModifyIndex",
                      "JobCreateIndex", "IsMultiregion", "TaskGroups", "Status", "StatusDescription",
                      "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime"}
    assert (d["JobID"], d["JobVersion"], d["Namespace"]) == ("dep-roll", 1, "default")
    assert d["Status"] == "successful"
    assert isinstance(d["CreateTime"], int) and d["CreateTime"] > 10**18  # Unix nanoseconds
    assert d["ModifyTime"] >= d["CreateTime"]
    g = d["TaskGroups"]["web"]
    assert g["ProgressDeadline"] == 30 * SEC and RFC3339.match(g["RequireProgressBy"]), g
    assert set(g) >= {"AutoRevert", "Promoted", "PlacedCanaries", "DesiredCanaries", "DesiredTotal",
                      "PlacedAllocs", "HealthyAllocs", "UnhealthyAllocs"}

    for path, code, text in [
        ("/v1/deployment/00000000-0000-4000-8000-000000000000", 404, "deployment not found"),
        (f"/v1/deployment/{v1['ID'][:8]}", 404, "deployment not found"),  # exact IDs only, as Nomad's
        ("/v1/deployment/", 400, "missing deployment ID"),
    ]:
        got = call(port, "GET", path)
        assert (got.status, got.text) == (code, text), path
    for method, path in [("PUT", f"/v1/deployment/{v1['ID']}"), ("POST", "/v1/deployments"),
                         ("GET", f"/v1/deployment/fail/{v1['ID']}"),
                         ("DELETE", f"/v1/deployment/pause/{v1['ID']}"),
                         ("PUT", f"/v1/deployment/allocations/{v1['ID']}"),
                         ("PUT", "/v1/job/dep-roll/deployment")]:
        got = call(port, method, path)
        assert (got.status, got.text) == (405, "Invalid method"), (method, path)

    # The deployment's allocations: /v1/allocations' stubs, with their health.
    stubs = call(port, "GET", f"/v1/deployment/allocations/{v1['ID']}").json()
    assert len(stubs) == 3 and all(s["JobVersion"] == 1 for s in stubs)
    listed = {a["ID"]: a for a in call(port, "GET", "/v1/allocations").json()}
    for s in stubs:
        assert set(s) == set(listed[s["ID"]]) and "Job" not in s
        ds = s["DeploymentStatus"]
        assert ds["Healthy"] is True and ds["Canary"] is False and RFC3339.match(ds["Timestamp"]), ds
    assert call(port, "GET", "/v1/deployment/allocations/00000000-0000-4000-8000-000000000000").json() == []
    full = call(port, "GET", f"/v1/allocation/{stubs[0]['ID']}").json()
    assert full["DeploymentID"] == v1["ID"] and full["DeploymentStatus"]["Healthy"] is True

    # A job's deployments, newest first, and its latest (null when it has none).
    mine = call(port, "GET", "/v1/job/dep-roll/deployments").json()
    assert [x["ID"] for x in mine] == [v1["ID"], rolled["v0"]["ID"]]
    assert latest(port, "dep-roll")["ID"] == v1["ID"]
    assert call(port, "GET", "/v1/job/no-such-job/deployments").json() == []
    none = call(port, "GET", "/v1/job/no-such-job/deployment")
    assert (none.status, none.text) == (200, "null")
    assert call(port, "GET", "/v1/job/dep-roll/deployments?all=maybe").status == 400

    found = call(port, "PUT", "/v1/search", {"Prefix": v1["ID"][:8], "Context": "deployment"}).json()
    assert found["Matches"]["deployment"] == [v1["ID"]]


# ---------------------------------------------------------------- writes


def test_pause_resume_promote_and_fail_with_auto_revert(dev):  # noqa: F811
    port = dev.http_port
    register(port, job("dep-ops", 0, FAST, count=2))
    await_deployment(dev, "dep-ops", 0, "successful")
    register(port, job("dep-ops", 1, HELD, count=2))
    d = await_deployment(dev, "dep-ops", 1, "running")
    dep, path = d["ID"], "/v1/deployment/{}/" + d["ID"]

    for body, raw, text in [(None, None, "DeploymentID must be specified"),
                            ({"DeploymentID": "other", "Pause": True}, None, "Deployment ID does not match"),
                            ({"DeploymentID": dep, "Pause": "yes"}, None,
                             "Pause: must be a boolean, got 'yes'"),
                            (None, b"[1]", "Request body must be a JSON object, got list")]:
        got = call(port, "PUT", path.format("pause"), body, raw=raw)
        assert (got.status, got.text) == (400, text)
    bad = call(port, "PUT", path.format("pause"), raw=b"{nope")
    assert bad.status == 400 and bad.text.startswith("Request body is not valid JSON")

    # A blocking list query wakes on the pause.
    index = int(call(port, "GET", "/v1/deployments").headers["x-nomad-index"])
    waiter = gevent.spawn(call, port, "GET", f"/v1/deployments?index={index}&wait=20s", None, None, 30.0)
    gevent.sleep(0)
    started = time.monotonic()
    r = call(port, "PUT", path.format("pause"), {"DeploymentID": dep, "Pause": True})
    assert r.status == 200, r.text
    paused = r.json()
    assert set(paused) == {"EvalID", "EvalCreateIndex", "DeploymentModifyIndex", "RevertedJobVersion",
                           "Index"}
    assert paused["EvalID"] == "" and paused["RevertedJobVersion"] is None
    assert int(r.headers["x-nomad-index"]) == paused["Index"] == paused["DeploymentModifyIndex"]
    woke = waiter.get(timeout=15)
    assert int(woke.headers["x-nomad-index"]) >= paused["Index"] and time.monotonic() - started < 10
    shown = call(port, "GET", f"/v1/deployment/{dep}").json()
    assert (shown["Status"], shown["StatusDescription"]) == ("paused", "Deployment is paused")

    # Promote: nothing to promote (no canaries here), but only once the deployment is found and active.
    promote = call(port, "PUT", path.format("promote"), {"DeploymentID": dep, "All": True})
    assert (promote.status, promote.text) == (400, "no canaries to promote")
    unknown = "00000000-0000-4000-8000-000000000000"
    got = call(port, "POST", f"/v1/deployment/promote/{unknown}", {"DeploymentID": unknown})
    assert (got.status, got.text) == (404, "deployment not found")
    got = call(port, "PUT", path.format("promote"), {"DeploymentID": dep, "Groups": "web"})
    assert (got.status, got.text) == (400, "Groups: must be a list of task group names")

    resumed = call(port, "POST", path.format("pause"), {"DeploymentID": dep, "Pause": False}).json()
    assert resumed["EvalID"] and resumed["EvalCreateIndex"] == resumed["Index"]
    ev = call(port, "GET", f"/v1/evaluation/{resumed['EvalID']}").json()
    assert (ev["JobID"], ev["TriggeredBy"]) == ("dep-ops", "deployment-watcher")
    assert call(port, "GET", f"/v1/deployment/{dep}").json()["Status"] == "running"

    failed = call(port, "PUT", path.format("fail"))
    assert failed.status == 200, failed.text
    out = failed.json()
    assert out["RevertedJobVersion"] == 0 and out["EvalID"] and out["DeploymentModifyIndex"] == out["Index"]
    shown = call(port, "GET", f"/v1/deployment/{dep}").json()
    assert shown["Status"] == "failed"
    assert shown["StatusDescription"] == "Deployment marked as failed - rolling back to job version 0"
    # The revert is version 2, v0's spec; its own deployment brings the replaced allocation back.
    await_deployment(dev, "dep-ops", 2, "successful")
    allocs = live(call(port, "GET", "/v1/job/dep-ops/allocations").json())
    assert len(allocs) == 2 and {a["JobVersion"] for a in allocs} <= {0, 2}

    for action, pause, text in [("fail", None, "can't fail terminal deployment"),
                                ("pause", True, "can't pause terminal deployment"),
                                ("pause", False, "can't resume terminal deployment"),
                                ("promote", None, "can't promote terminal deployment")]:
        got = call(port, "PUT", path.format(action), {"DeploymentID": dep, "Pause": pause})
        assert (got.status, got.text) == (400, text), action
    got = call(port, "PUT", f"/v1/deployment/fail/{unknown}")
    assert (got.status, got.text) == (404, "deployment not found")
    got = call(port, "PUT", "/v1/deployment/fail/")
    assert (got.status, got.text) == (400, "missing deployment ID")


# ---------------------------------------------------------------- CLI


def test_cli_deployment_commands_and_job_status_latest_deployment(dev, rolled):  # noqa: F811
    port = dev.http_port
    v1 = rolled["v1"]
    listing = nomad(dev, "deployment", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert columns(lines[0]) == ["ID", "Job ID", "Job Version", "Status", "Description"] and aligned(lines)
    rows = [columns(x)[1:] for x in lines]
    assert ["dep-roll", "1", "successful", "Deployment completed successfully"] in rows
    assert [d["ID"] for d in json.loads(nomad(dev, "deployment", "list", "-json").stdout)] \
        == [d["ID"] for d in call(port, "GET", "/v1/deployments").json()]
    only = nomad(dev, "deployment", "list", "-filter", f'ID == "{v1["ID"]}"').stdout.splitlines()
    assert [columns(x)[0] for x in only[1:]] == [v1["ID"][:8]]

    status = nomad(dev, "deployment", "status", v1["ID"][:8])
    assert status.returncode == 0, status.stderr
    assert re.search(rf"^ID\s+= {v1['ID'][:8]}$", status.stdout, re.M)
    assert re.search(r"^Job ID\s+= dep-roll$", status.stdout, re.M)
    assert re.search(r"^Job Version\s+= 1$", status.stdout, re.M)
    assert re.search(r"^Status\s+= successful$", status.stdout, re.M)
    assert re.search(r"^Description\s+= Deployment completed successfully$", status.stdout, re.M)
    deployed = section(status.stdout, "Deployed")
    assert columns(deployed[0]) == ["Task Group", "Desired", "Placed", "Healthy", "Unhealthy",
                                    "Progress Deadline"] and aligned(deployed)
    assert columns(deployed[1])[:5] == ["web", "3", "3", "3", "0"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", columns(deployed[1])[5])
    verbose = nomad(dev, "deployment", "status", "-verbose", v1["ID"][:8]).stdout
    assert re.search(rf"^ID\s+= {v1['ID']}$", verbose, re.M)
    assert json.loads(nomad(dev, "deployment", "status", "-json", v1["ID"]).stdout)["ID"] == v1["ID"]

    job_status = nomad(dev, "job", "status", "dep-roll")
    assert job_status.returncode == 0, job_status.stderr
    latest_lines = section(job_status.stdout, "Latest Deployment")
    assert [columns(x.replace(" = ", "  "))[0] for x in latest_lines] == ["ID", "Status", "Description"]
    assert latest_lines[0].endswith(f"= {v1['ID'][:8]}") and latest_lines[1].endswith("= successful")
    out = job_status.stdout
    order = [out.index(title) for title in ("Summary", "Latest Deployment", "Deployed", "Allocations")]
    assert order == sorted(order)

    history = nomad(dev, "job", "deployments", "dep-roll")
    assert history.returncode == 0, history.stderr
    rows = history.stdout.splitlines()
    assert [columns(x)[0] for x in rows] == ["ID", v1["ID"][:8], rolled["v0"]["ID"][:8]]
    newest = nomad(dev, "job", "deployments", "-latest", "dep-roll")
    assert newest.returncode == 0 and re.search(r"^Job Version\s+= 1$", newest.stdout, re.M)
    as_json = json.loads(nomad(dev, "job", "deployments", "-json", "dep-roll").stdout)
    assert [d["JobVersion"] for d in as_json] == [1, 0]

    # A job with nothing to deploy has no deployment, and job status shows none.
    register(port, job("dep-none", 0, FAST, count=0))
    assert nomad(dev, "job", "deployments", "-latest", "dep-none").stdout == "No deployment found\n"
    assert nomad(dev, "job", "deployments", "dep-none").stdout == "No deployments found\n"
    assert "Latest Deployment" not in nomad(dev, "job", "status", "dep-none").stdout


def test_cli_pause_resume_promote_and_fail(dev):  # noqa: F811
    port = dev.http_port
    register(port, job("dep-cli", 0, FAST, count=1))
    await_deployment(dev, "dep-cli", 0, "successful")
    register(port, job("dep-cli", 1, HELD, count=1))
    dep = await_deployment(dev, "dep-cli", 1, "running")["ID"]

    paused = nomad(dev, "deployment", "pause", dep[:8])
    assert (paused.returncode, paused.stdout) == (0, f'Deployment "{dep}" paused\n'), paused.stderr
    held = nomad(dev, "deployment", "status", dep[:8]).stdout
    assert re.search(r"^Status\s+= paused$", held, re.M)
    # No progress deadline (0): no column for it; auto revert: its column.
    assert columns(section(held, "Deployed")[0]) == ["Task Group", "Auto Revert", "Desired", "Placed",
                                                     "Healthy", "Unhealthy"]
    # A paused deployment is watched on (it has not ended) until Ctrl-C: exit 130, no traceback.
    watch = subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", "deployment",
                              "status", "-monitor", dep], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        first = [watch.stdout.readline() for _ in range(4)]  # the monitor line, a blank, the time, the ID
        assert "Monitoring deployment" in first[0] and first[3].startswith("ID"), first
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=ROLL_DEADLINE_S)
    finally:
        watch.kill()
        watch.wait()
    assert watch.returncode == 130 and err == "", err

    promote = nomad(dev, "deployment", "promote", dep)
    assert (promote.returncode, promote.stdout) == (1, "")
    assert promote.stderr == "Error promoting deployment: Unexpected response code: 400 (no canaries to promote)\n"

    resumed = nomad(dev, "deployment", "resume", "-detach", dep)
    assert (resumed.returncode, resumed.stdout) == (0, f'Deployment "{dep}" resumed\n'), resumed.stderr
    assert nomad(dev, "deployment", "pause", dep).returncode == 0
    # Without -detach, its evaluation is monitored, then the deployment until it ends: here, until
    # it is failed by the operator, then the rollback's deployment (auto_revert) until that ends.
    watched = subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", "deployment",
                                "resume", dep], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await_deployment(dev, "dep-cli", 1, "running")
        failed = nomad(dev, "deployment", "fail", dep[:8])
        out, err = watched.communicate(timeout=ROLL_DEADLINE_S)
    finally:
        watched.kill()
        watched.wait()
    assert watched.returncode == 1, out + err  # the deployment it watched failed
    assert re.match(f'Deployment "{dep}" resumed\n\n==> {STAMP}: Monitoring evaluation "', out), out
    assert f'Evaluation within deployment: "{dep[:8]}"' in out and 'finished with status "complete"' in out
    watching = re.split(f'==> {STAMP}: Monitoring deployment "{dep[:8]}"\n', out)[1]
    assert re.search(r"^    Status\s+= failed$", watching, re.M), watching
    assert "    Description = Deployment marked as failed" in watching
    rollback = latest(port, "dep-cli")
    assert rollback["ID"] != dep and rollback["Status"] == "successful"
    after = watching.split(f"    ID          = {rollback['ID'][:8]}\n")[-1]  # the rollback's last block
    assert re.search(r"^    Status\s+= successful$", after, re.M), watching

    assert failed.returncode == 0, failed.stderr  # its evaluation's deployment: the rollback's, successful
    said = f'Deployment "{dep}" failed. Auto-reverted to job version 0.\n\n==> {STAMP}: Monitoring evaluation'
    assert re.match(said, failed.stdout), failed.stdout
    again = nomad(dev, "deployment", "fail", dep)
    assert (again.returncode, again.stderr) == (
        1, "Error failing deployment: Unexpected response code: 400 (can't fail terminal deployment)\n")
    again = nomad(dev, "deployment", "resume", dep)
    assert again.returncode == 1 and "can't resume terminal deployment" in again.stderr

    for args, message in [(("deployment", "status", "nope"),
                           'No deployment(s) with prefix or id "nope" found'),
                          (("deployment", "status"), "This command takes one argument"),
                          (("deployment", "list", "extra"), "This command takes no arguments"),
                          (("deployment", "fail", "-bogus", dep), "flag provided but not defined: -bogus"),
                          (("job", "deployments", "no-such-job"),
                           'No job(s) with prefix or ID "no-such-job"')]:
        got = nomad(dev, *args)
        assert got.returncode == 1 and got.stdout == "", args
        assert got.stderr.startswith(message) and got.stderr.count("\n") == 1, got.stderr


# ---------------------------------------------------------------- ACLs


def test_deployment_routes_need_read_job_to_read_and_submit_job_to_change():
    read = (Need("namespace", "read-job", "default"),)
    for path in ("/v1/deployments", "/v1/deployment/x", "/v1/deployment/allocations/x",
                 "/v1/job/j/deployments", "/v1/job/j/deployment"):
        assert required("GET", path, "default") == read, path
    for action in ("fail", "pause", "promote"):  # or Nomad 2.0's fine-grained capability for each
        either = (Need("namespace", f"submit-job|{action}-deployment", "default"),)
        assert required("PUT", f"/v1/deployment/{action}/x", "default") == either
        assert required("POST", f"/v1/deployment/{action}/x", "default") == either
    assert required("GET", "/v1/deployments", "prod") == (Need("namespace", "read-job", "prod"),)


def with_token(port: int, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"X-Nomad-Token": token} if token else {})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@contextlib.contextmanager
def acl_agent_with_reader(tmp_path: Any) -> Iterator[tuple[int, str, str]]:
    """A ``-dev`` agent with ACLs on: (its HTTP port, the management secret, a ``read`` policy's token);
    killed by PID at the end."""
    from tests.test_acl_process import acl_dev_agent

    with acl_dev_agent(tmp_path) as agent:
        port = agent.http_port
        status, text = with_token(port, "POST", "/v1/acl/bootstrap")
        assert status == 200, text
        root = json.loads(text)["SecretID"]
        policy = {"Name": "reader", "Rules": 'namespace "default" { policy = "read" }'}
        assert with_token(port, "POST", "/v1/acl/policy/reader", policy, root)[0] == 200
        status, text = with_token(port, "POST", "/v1/acl/token",
                                  {"Name": "r", "Type": "client", "Policies": ["reader"]}, root)
        yield port, root, json.loads(text)["SecretID"]


def test_acl_agent_refuses_deployment_reads_and_writes_without_the_capability(tmp_path):
    with acl_agent_with_reader(tmp_path) as (port, root, reader):
        unknown = "/v1/deployment/fail/00000000-0000-4000-8000-000000000000"

        assert with_token(port, "GET", "/v1/deployments") == (403, "Permission denied")  # anonymous: nothing
        assert with_token(port, "GET", "/v1/deployments", token=reader) == (200, "[]")
        assert with_token(port, "GET", "/v1/job/j/deployment", token=reader) == (200, "null")
        assert with_token(port, "PUT", unknown, token=reader) == (403, "Permission denied")
        assert with_token(port, "PUT", unknown, token=root) == (404, "deployment not found")


def test_a_canary_runs_beside_the_old_version_until_promoted_by_the_cli(dev):  # noqa: F811
    port = dev.http_port
    canary = {**FAST, "Canary": 1}
    register(port, job("dep-canary", 0, canary, count=2))
    await_deployment(dev, "dep-canary", 0, "successful")
    register(port, job("dep-canary", 1, canary, count=2))
    dep = await_deployment(dev, "dep-canary", 1, "running")
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"

    def canary_healthy() -> dict[str, Any] | None:
        allocs = live(call(port, "GET", "/v1/job/dep-canary/allocations").json())
        new = [a for a in allocs if a["JobVersion"] == 1]
        return allocs if len(allocs) == 3 and len(new) == 1 and healthy(new[0]) else None
    allocs = wait_for(canary_healthy, "the canary healthy beside both old allocations", ROLL_DEADLINE_S,
                      dev.detail)
    (new,) = [a for a in allocs if a["JobVersion"] == 1]
    assert new["DeploymentStatus"]["Canary"] is True
    status = nomad(dev, "deployment", "status", dep["ID"][:8]).stdout
    assert columns(section(status, "Deployed")[0])[:5] == ["Task Group", "Promoted", "Desired", "Canaries",
                                                           "Placed"]
    shown = nomad(dev, "alloc", "status", new["ID"]).stdout
    assert re.search(r"^Deployment Health\s+= healthy$", shown, re.M)
    assert re.search(r"^Canary\s+= true$", shown, re.M)
    # Nomad's job promote: the job by prefix (JobIDByPrefix), then the evaluation's monitor, no header
    promoted = nomad(dev, "job", "promote", "-namespace", "*", "dep-can")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("==> ") and "Monitoring evaluation" in promoted.stdout, promoted.stdout
    done = await_deployment(dev, "dep-canary", 1, "successful")
    assert done["TaskGroups"]["web"]["Promoted"] is True and done["TaskGroups"]["web"]["HealthyAllocs"] == 2
    final = live(call(port, "GET", "/v1/job/dep-canary/allocations").json())
    assert sorted(a["JobVersion"] for a in final) == [1, 1] and new["ID"] in {a["ID"] for a in final}
    # Promoted, it is a canary no more (Nomad's UpdateDeploymentPromotion clears the field).
    assert not any(a["DeploymentStatus"]["Canary"] for a in final)
    got = call(port, "GET", f"/v1/allocation/{new['ID']}").json()["DeploymentStatus"]
    assert (got["Canary"], got["Healthy"]) == (False, True)
    shown = nomad(dev, "alloc", "status", new["ID"]).stdout
    assert re.search(r"^Deployment Health\s+= healthy$", shown, re.M)
    assert not re.search(r"^Canary\s", shown, re.M)


def test_an_operator_sets_allocation_health_for_a_manual_deployment(dev):  # noqa: F811
    port = dev.http_port
    register(port, job("dep-manual", 0, {**HELD, "AutoRevert": False}, count=1))
    dep = await_deployment(dev, "dep-manual", 0, "running")
    path = f"/v1/deployment/allocation-health/{dep['ID']}"
    bad = call(port, "PUT", path, {"DeploymentID": dep["ID"]})
    assert (bad.status, bad.text) == (400, "Must specify at least one healthy/unhealthy allocation ID")
    (alloc,) = live(call(port, "GET", f"/v1/deployment/allocations/{dep['ID']}").json())
    r = call(port, "PUT", path, {"DeploymentID": dep["ID"], "HealthyAllocationIDs": [alloc["ID"]]})
    assert r.status == 200, r.text
    assert r.json()["DeploymentModifyIndex"] > 0
    await_deployment(dev, "dep-manual", 0, "successful")
