"""Review 20: what an operator of a real cluster notices where this agent differs from Nomad.

Each test shows one defect found by running a cluster by hand, each now fixed."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from tests.test_agent_process import wait_for
from tests.test_cli_jobs import nomad
from tests.test_http_jobs import call, dev, node_id  # noqa: F401
from tests.test_operator_cluster import cluster  # noqa: F401

pytestmark = pytest.mark.timeout(120)

WEB_HCL = """
job "r20-web" {
  datacenters = ["dc1"]
  group "web" {
    count = 0
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
    }
  }
}
"""


# ---------------------------------------------------------------- CLI (fixed here)


def test_node_status_list_has_nomads_verbose_os_allocs_and_quiet_columns(dev):  # noqa: F811
    """Nomad's node list: -verbose adds Address and Version, -os an OS column, -allocs the running
    allocations; -quiet prints the IDs alone and refuses -verbose/-json."""
    nid = node_id(dev.http_port)
    r = nomad(dev, "node", "status", "-verbose", "-os", "-allocs")
    assert r.returncode == 0, r.stderr
    head, row = r.stdout.splitlines()[:2]
    assert head.split() == ["ID", "Node", "Pool", "DC", "Name", "Class", "OS", "Address", "Version",
                            "Drain", "Eligibility", "Status", "Running", "Allocs"]
    assert row.startswith(nid) and row.split()[-1].isdigit()
    r = nomad(dev, "node", "status", "-quiet")
    assert (r.returncode, r.stdout.split()) == (0, [nid])
    r = nomad(dev, "node", "status", "-quiet", "-verbose")
    assert r.returncode == 1 and "-quiet cannot be used with -verbose or -json" in r.stderr


def test_job_run_output_prints_the_request_and_submits_nothing(dev, tmp_path):  # noqa: F811
    path = tmp_path / "web.nomad.hcl"
    path.write_text(WEB_HCL)
    r = nomad(dev, "job", "run", "-output", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Job"]["ID"] == "r20-web" and r.stdout.startswith('{\n    "Job": {')
    assert call(dev.http_port, "GET", "/v1/job/r20-web").status == 404


def test_job_run_check_index_conflict_prints_nomads_two_lines(dev, tmp_path):  # noqa: F811
    path = tmp_path / "web.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-ci"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    r = nomad(dev, "job", "run", "-check-index", "1", str(path))
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Enforcing job modify index 1: job exists with conflicting job modify index")
    assert lines[1:] == ["Job not updated"]


# ---------------------------------------------------------------- state / scheduler (not changed here)


def test_progress_deadline_spares_a_deployment_whose_canaries_await_promotion():
    from actors.state import deployments

    d = {"ID": "d1", "Status": "running", "TaskGroups": {"web": {
        "DesiredCanaries": 1, "Promoted": False, "PlacedCanaries": ["a1"], "HealthyAllocs": 1,
        "DesiredTotal": 2, "PlacedAllocs": 1, "RequireProgressBy": 10.0, "ProgressDeadline": 60 * 10**9}}}
    store = SimpleNamespace(latest_deployment_of={("default", "web"): "d1"},
                            tables={deployments.TABLE: {"d1": d}})
    assert deployments.overdue(store, 20.0) == []


PERIODIC_HCL = """
job "r20-cron" {
  datacenters = ["dc1"]
  type = "batch"
  periodic {
    crons = ["0 3 * * *"]
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
"""
PARAM_HCL = """
job "r20-param" {
  datacenters = ["dc1"]
  type = "batch"
  parameterized {
    meta_required = ["who"]
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
"""


def test_job_run_of_a_periodic_or_parameterized_job_prints_what_nomad_does(dev, tmp_path):  # noqa: F811
    """Nomad: a periodic job's approximate next launch rather than an empty "Evaluation ID:", a
    parameterized job's registration alone."""
    cron, param = tmp_path / "cron.nomad.hcl", tmp_path / "param.nomad.hcl"
    cron.write_text(PERIODIC_HCL)
    param.write_text(PARAM_HCL)
    r = nomad(dev, "job", "run", str(cron))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Job registration successful"
    assert re.fullmatch(r"Approximate next launch time: \S+T03:00:00Z \(\d+h\d+m\d+s from now\)|"
                        r"Approximate next launch time: \S+T03:00:00Z \(\d+m\d+s from now\)", lines[1])
    assert len(lines) == 2
    r = nomad(dev, "job", "run", str(param))
    assert (r.returncode, r.stdout) == (0, "Job registration successful\n"), r.stderr


def test_job_status_of_periodic_and_parameterized_jobs_has_nomads_sections(dev, tmp_path):  # noqa: F811
    cron, param = tmp_path / "cron.nomad.hcl", tmp_path / "param.nomad.hcl"
    cron.write_text(PERIODIC_HCL.replace("r20-cron", "r20-cron2"))
    param.write_text(PARAM_HCL.replace("r20-param", "r20-param2"))
    assert nomad(dev, "job", "run", str(cron)).returncode == 0
    assert nomad(dev, "job", "run", str(param)).returncode == 0
    out = nomad(dev, "job", "status", "r20-cron2").stdout
    # The next launch is a line of the same aligned block, with how far off it is.
    assert "\nPeriodic             = true\n" in out, out
    assert re.search(r"\nNext Periodic Launch = \S+T03:00:00Z \(\S+ from now\)\n", out), out
    assert "\nChildren Job Summary\nPending  Running  Dead\n0        0        0\n" in out, out
    assert out.endswith("\nNo instances of periodic job found\n"), out
    out = nomad(dev, "job", "status", "r20-param2").stdout
    assert ("\nParameterized Job\nPayload           = optional\nRequired Metadata = who\n"
            "Optional Metadata = <none>\n") in out, out
    assert "\nParameterized Job Summary\nPending  Running  Dead\n" in out, out
    assert out.endswith("\nNo dispatched instances of parameterized job found\n"), out


def test_a_parameterized_jobs_summary_counts_its_dispatched_children(dev, tmp_path):  # noqa: F811
    """Nomad's JobChildrenSummary: the parent's summary counts its children by status (it stayed 0)."""
    param = tmp_path / "param.nomad.hcl"
    param.write_text(PARAM_HCL.replace("r20-param", "r20-kids"))
    assert nomad(dev, "job", "run", str(param)).returncode == 0
    r = nomad(dev, "job", "dispatch", "-detach", "-meta", "who=me", "r20-kids")
    assert r.returncode == 0, r.stderr
    kids = call(dev.http_port, "GET", "/v1/job/r20-kids/summary").json()["Children"]
    assert sum(kids.values()) == 1, kids
    listed = [j for j in call(dev.http_port, "GET", "/v1/jobs").json() if j["ID"] == "r20-kids"]
    assert sum(listed[0]["JobSummary"]["Children"].values()) == 1
    out = nomad(dev, "job", "status", "r20-kids").stdout
    assert "\nDispatched Jobs\nID " in out and "r20-kids/dispatch-" in out, out


def test_node_drain_enable_monitors_the_drain_until_it_is_done(dev, tmp_path):  # noqa: F811
    """Nomad's node drain -enable watches the drain it set (-detach returns at once): time-stamped
    lines for the allocations as they move, then the node's drain complete."""
    nid = node_id(dev.http_port)
    path = tmp_path / "drained.nomad.hcl"
    # The task outlives its interrupt by its kill timeout, so the monitor sees it running first.
    path.write_text(WEB_HCL.replace("r20-web", "r20-drained").replace("count = 0", "count = 1")
                    .replace('command = "/bin/sleep"\n        args    = ["60"]',
                             'command = "/bin/sh"\n        args    = ["-c", "trap \'\' INT TERM; sleep 60"]')
                    .replace('driver = "raw_exec"', 'driver = "raw_exec"\n      kill_timeout = "1s"'))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    wait_for(lambda: [a for a in call(dev.http_port, "GET", "/v1/job/r20-drained/allocations").json()
                      if a["ClientStatus"] == "running"], "the allocation running", 30, dev.detail)
    try:
        r = nomad(dev, "node", "drain", "-enable", "-deadline", "30s", "-yes", nid)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: "
        assert re.fullmatch(stamp + "Ctrl-C to stop monitoring: will not cancel the node drain", lines[0])
        assert re.fullmatch(stamp + f'Node "{nid}" drain strategy set', lines[1])
        assert any(re.fullmatch(stamp + r'Alloc "[0-9a-f-]{36}" status running -> complete', ln)
                   for ln in lines), lines
        assert any(re.fullmatch(stamp + f'All allocations on node "{nid}" have stopped', ln) for ln in lines)
        assert re.fullmatch(stamp + f"Drain complete for node {nid}", lines[-1]) or \
            re.fullmatch(stamp + f'All allocations on node "{nid}" have stopped', lines[-1]), lines
        r = nomad(dev, "node", "drain", "-monitor", "-yes", nid)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "No drain strategy set\n")
    finally:
        assert nomad(dev, "node", "drain", "-disable", "-yes", nid).returncode == 0
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-drained")


def test_autopilot_health_reports_each_servers_version(dev):  # noqa: F811
    got = wait_for(lambda: (lambda r: r.status in (200, 429) and r.json())(
        call(dev.http_port, "GET", "/v1/operator/autopilot/health")), "autopilot health", 15, dev.detail)
    assert all(s["Version"] for s in got["Servers"]), got["Servers"]


def test_var_get_list_and_put_answer_as_nomads(dev):  # noqa: F811
    """Nomad's var commands: -item prints the value alone; a missing variable is "Variable not found"
    (exit 1); piped output is JSON in api.Variable's field order, var list's too; -out terse lists paths."""
    put = nomad(dev, "var", "put", "r20/app", "user=admin", "pass=x")
    assert put.returncode == 0, put.stderr
    assert list(json.loads(put.stdout)) == ["Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime",
                                            "ModifyTime", "Items"]
    r = nomad(dev, "var", "get", "-item", "user", "r20/app")
    assert (r.returncode, r.stdout) == (0, "admin"), r.stderr
    r = nomad(dev, "var", "get", "r20/none")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Variable not found\n")
    r = nomad(dev, "var", "list", "r20/")
    assert r.returncode == 0 and [v["Path"] for v in json.loads(r.stdout)] == ["r20/app"], r.stderr
    r = nomad(dev, "var", "list", "-out", "terse", "r20/")
    assert (r.returncode, r.stdout) == (0, "r20/app\n"), r.stderr


# ---------------------------------------------------------------- on a three-server cluster


def test_system_gc_asked_of_a_follower_is_done_by_the_leader(cluster):  # noqa: F811
    """PUT /v1/system/gc on a follower answered 500 'not leader' (the GC actors run on the leader only);
    Nomad forwards System.GarbageCollect to the leader, as the follower now proxies it."""
    follower = cluster.proc(cluster.followers()[0])
    r = call(follower.http_port, "PUT", "/v1/system/gc")
    assert r.status == 200, r.text


def test_a_groups_placement_failure_counts_each_node_once_and_names_the_pool(dev):  # noqa: F811
    job = {"ID": "r20-nope", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 3,
        "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "windows", "Operand": "="}],
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    node_id(dev.http_port)
    assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    failed = wait_for(lambda: next((e["FailedTGAllocs"]["g"] for e in call(
        dev.http_port, "GET", "/v1/job/r20-nope/evaluations").json() if e.get("FailedTGAllocs")), None),
        "the placement failure", 15, dev.detail)
    nodes = len(call(dev.http_port, "GET", "/v1/nodes").json())
    assert failed["CoalescedFailures"] == 2
    assert (failed["NodesEvaluated"], failed["NodesFiltered"]) == (nodes, nodes), failed
    assert (failed["NodesInPool"], failed["NodePool"], failed["NodesAvailable"]) == (nodes, "default",
                                                                                    {"dc1": nodes}), failed


def test_a_started_task_records_nomads_task_setup_event(dev, tmp_path):  # noqa: F811
    path = tmp_path / "setup.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-setup").replace("count = 0", "count = 1"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        events = wait_for(lambda: next((
            [e["Type"] for e in a["TaskStates"]["t"]["Events"]]
            for a in call(dev.http_port, "GET", "/v1/job/r20-setup/allocations").json()
            if (a.get("TaskStates") or {}).get("t", {}).get("State") == "running"), None),
            "the task running", 30, dev.detail)
        assert events[:3] == ["Received", "Task Setup", "Started"], events
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-setup")


def test_plan_of_a_canary_update_counts_the_canary(dev):  # noqa: F811
    job = {"ID": "r20-canary", "Type": "service", "Datacenters": ["dc1"],
           "Update": {"Canary": 1, "MaxParallel": 1, "MinHealthyTime": 0},
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
               "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["60"]},
               "Env": {"V": "1"}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    try:
        wait_for(lambda: [a for a in call(dev.http_port, "GET", "/v1/job/r20-canary/allocations").json()
                          if a["ClientStatus"] == "running"], "the allocation running", 30, dev.detail)
        job["TaskGroups"][0]["Tasks"][0]["Env"] = {"V": "2"}
        plan = call(dev.http_port, "PUT", "/v1/job/r20-canary/plan", {"Job": job, "Diff": True}).json()
        updates = plan["Annotations"]["DesiredTGUpdates"]["g"]
        assert (updates["Canary"], updates["Place"], updates["Ignore"]) == (1, 0, 1), updates
        assert plan["Diff"]["TaskGroups"][0]["Updates"] == {"canary": 1, "ignore": 1}
    finally:
        call(dev.http_port, "DELETE", "/v1/job/r20-canary?purge=true")


def test_allocation_tables_have_nomads_verbose_and_node_columns(dev, tmp_path):  # noqa: F811
    """Nomad's formatAllocListStubs (job status): -verbose adds Eval ID and Node Name and shows times;
    formatAllocList (node status) keeps the Node ID column, -verbose adds the Eval ID."""
    nid = node_id(dev.http_port)
    path = tmp_path / "tables.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-tables").replace("count = 0", "count = 1"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        wait_for(lambda: call(dev.http_port, "GET", "/v1/job/r20-tables/allocations").json(), "an allocation",
                 30, dev.detail)
        out = nomad(dev, "job", "status", "-verbose", "r20-tables").stdout
        table = out.split("\nAllocations\n", 1)[1].splitlines()
        assert re.split(r"\s{2,}", table[0].strip()) == [
            "ID", "Eval ID", "Node ID", "Node Name", "Task Group", "Version", "Desired", "Status", "Created",
            "Modified"], table[0]
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", table[1]), table[1]
        out = nomad(dev, "node", "status", nid).stdout
        head = out.split("\nAllocations\n", 1)[1].splitlines()[0]
        assert re.split(r"\s{2,}", head.strip())[:3] == ["ID", "Node ID", "Task Group"], head
        out = nomad(dev, "node", "status", "-verbose", nid).stdout
        head = out.split("\nAllocations\n", 1)[1].splitlines()[0]
        assert re.split(r"\s{2,}", head.strip())[:4] == ["ID", "Eval ID", "Node ID", "Task Group"], head
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-tables")


def test_job_stop_detach_prints_the_evaluation_id_alone(dev, tmp_path):  # noqa: F811
    """Nomad's job stop -detach prints the evaluation's ID and nothing else; it takes several jobs."""
    for name in ("r20-stop1", "r20-stop2"):
        path = tmp_path / f"{name}.nomad.hcl"
        path.write_text(WEB_HCL.replace("r20-web", name))
        assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    r = nomad(dev, "job", "stop", "-detach", "-purge", "r20-stop1", "r20-stop2")
    assert r.returncode == 0, r.stderr
    assert [len(line) for line in r.stdout.splitlines()] == [36, 36], r.stdout
    assert call(dev.http_port, "GET", "/v1/job/r20-stop2").status == 404


def test_stopping_a_periodic_job_creates_no_evaluation(dev, tmp_path):  # noqa: F811
    cron = tmp_path / "cron.nomad.hcl"
    cron.write_text(PERIODIC_HCL.replace("r20-cron", "r20-cron-stop"))
    assert nomad(dev, "job", "run", str(cron)).returncode == 0
    r = call(dev.http_port, "DELETE", "/v1/job/r20-cron-stop")
    assert r.status == 200 and r.json()["EvalID"] == "", r.text


def test_alloc_status_verbose_shows_times_and_the_placement_counts(dev, tmp_path):  # noqa: F811
    """Nomad's alloc status -verbose: Created/Modified as times, then Evaluated/Filtered/Exhausted Nodes,
    Allocation Time (a Go duration) and Failures."""
    path = tmp_path / "verbose.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-verbose").replace("count = 0", "count = 1"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        alloc = wait_for(lambda: next(iter(call(dev.http_port, "GET",
                                                "/v1/job/r20-verbose/allocations").json()), None),
                         "an allocation", 30, dev.detail)
        out = nomad(dev, "alloc", "status", "-verbose", alloc["ID"]).stdout
        assert re.search(r"^Created\s+= \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out, re.M), out
        for key, value in (("Evaluated Nodes", r"\d+"), ("Filtered Nodes", r"\d+"),
                           ("Exhausted Nodes", r"\d+"), ("Allocation Time", r"[0-9.]+(ns|µs|ms|s)"),
                           ("Failures", "0")):
            assert re.search(rf"^{key}\s+= {value}$", out, re.M), (key, out)
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-verbose")


def test_task_events_carry_nomads_display_message_in_every_allocation_answer(dev, tmp_path):  # noqa: F811
    """Nomad's HTTP handlers fill each task event's DisplayMessage (SetEventDisplayMessages); the web UI and
    python-nomad read it. It was "" in /v1/job/<id>/allocations and /v1/allocation/<id>."""
    path = tmp_path / "display.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-display").replace("count = 0", "count = 1"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        stub = wait_for(lambda: next((a for a in call(dev.http_port, "GET",
                                                      "/v1/job/r20-display/allocations").json()
                                      if (a.get("TaskStates") or {}).get("t", {}).get("State") == "running"),
                                     None), "the task running", 30, dev.detail)
        full = call(dev.http_port, "GET", f"/v1/allocation/{stub['ID']}").json()
        for a in (stub, full):
            shown = {e["Type"]: e["DisplayMessage"] for e in a["TaskStates"]["t"]["Events"]}
            assert shown["Received"] == "Task received by client", shown
            assert shown["Started"] == "Task started by client", shown
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-display")


def test_a_user_restart_records_nomads_restarting_event(dev, tmp_path):  # noqa: F811
    path = tmp_path / "restart.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-restart").replace("count = 0", "count = 1"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        alloc = wait_for(lambda: next((a["ID"] for a in call(dev.http_port, "GET",
                                                             "/v1/job/r20-restart/allocations").json()
                                       if a["ClientStatus"] == "running"), None), "running", 30, dev.detail)
        assert nomad(dev, "alloc", "restart", alloc).returncode == 0
        event = wait_for(lambda: next((e for e in call(dev.http_port, "GET", f"/v1/allocation/{alloc}").json()
                                       ["TaskStates"]["t"]["Events"] if e["Type"] == "Restarting"), None),
                         "a Restarting event", 15, dev.detail)
        assert event["DisplayMessage"] == "Task restarting in 0s", event
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-restart")


def test_job_inspect_takes_nomads_json_and_version_flags(dev, tmp_path):  # noqa: F811
    path = tmp_path / "inspect.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-inspect"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    path.write_text(WEB_HCL.replace("r20-web", "r20-inspect").replace('"60"', '"61"'))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        r = nomad(dev, "job", "inspect", "-json", "r20-inspect")
        assert r.returncode == 0 and json.loads(r.stdout)["ID"] == "r20-inspect", r.stderr
        r = nomad(dev, "job", "inspect", "-version", "0", "r20-inspect")
        job = json.loads(r.stdout)["Job"]
        assert job["Version"] == 0 and job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["60"]
        r = nomad(dev, "job", "inspect", "-t", "{{.Version}}", "r20-inspect")
        assert (r.returncode, r.stdout.strip()) == (0, "1"), r.stderr
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-inspect")


def test_plan_of_an_unplaceable_job_still_counts_the_wanted_placements(dev):  # noqa: F811
    job = {"ID": "r20-noplan", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 3,
        "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "windows", "Operand": "="}],
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    plan = call(dev.http_port, "PUT", "/v1/job/r20-noplan/plan", {"Job": job, "Diff": True}).json()
    assert plan["FailedTGAllocs"]["g"]
    assert plan["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 3, plan["Annotations"]


def test_job_run_preserve_counts_json_and_history_json(dev, tmp_path):  # noqa: F811
    """Nomad's job run -preserve-counts keeps the registered groups' counts (PreserveCounts, also over
    HTTP); -json reads a job file as JSON whatever its name; job history -json prints the versions."""
    path = tmp_path / "keep.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-keep"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    assert nomad(dev, "job", "scale", "-detach", "r20-keep", "web", "2").returncode == 0
    try:
        path.write_text(WEB_HCL.replace("r20-web", "r20-keep").replace('"60"', '"61"'))
        r = nomad(dev, "job", "run", "-detach", "-preserve-counts", str(path))
        assert r.returncode == 0, r.stderr
        job = call(dev.http_port, "GET", "/v1/job/r20-keep").json()
        assert job["TaskGroups"][0]["Count"] == 2 and job["Version"] == 2
        out = tmp_path / "keep.txt"  # no .json suffix: -json says what it is
        out.write_text(nomad(dev, "job", "run", "-output", str(path)).stdout)
        r = nomad(dev, "job", "plan", "-json", str(out))
        assert r.returncode in (0, 1) and "Job Modify Index" in r.stdout, r.stderr
        r = nomad(dev, "job", "history", "-json", "r20-keep")
        assert r.returncode == 0 and [v["Version"] for v in json.loads(r.stdout)] == [2, 1, 0], r.stderr
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-keep")


def test_status_of_a_prefix_searches_every_context_as_nomads(dev, tmp_path):  # noqa: F811
    """Nomad's nomad status <prefix>: a prefix search over every context, so a deployment's ID resolves;
    several matches are listed per context on stderr; nothing found is "Unable to resolve ID"."""
    path = tmp_path / "st.nomad.hcl"
    path.write_text(WEB_HCL.replace("r20-web", "r20-st-a").replace("count = 0", "count = 1")
                    .replace('  group "web" {',
                             '  update {\n    min_healthy_time = "0s"\n  }\n  group "web" {'))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    path.write_text(WEB_HCL.replace("r20-web", "r20-st-b"))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    try:
        dep = wait_for(lambda: call(dev.http_port, "GET", "/v1/job/r20-st-a/deployment").json(),
                       "a deployment", 30, dev.detail)
        r = nomad(dev, "status", dep["ID"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"ID          = {dep['ID'][:8]}\n"), r.stdout
        r = nomad(dev, "status", "r20-st-")
        assert r.returncode == 1 and r.stderr.startswith('Multiple matches found for id "r20-st-"\n\nJobs:\n')
        assert "r20-st-a, r20-st-b" in r.stderr, r.stderr
    finally:
        nomad(dev, "job", "stop", "-purge", "-detach", "r20-st-a", "r20-st-b")


def test_a_periodic_jobs_next_launch_is_printed_in_its_time_zone(dev, tmp_path):  # noqa: F811
    """Nomad formats the next launch in the job's location (``time.Now().In(location)``): 03:00 in New
    York is printed as 03:00 with its offset, not as 08:00Z."""
    cron = tmp_path / "cron.nomad.hcl"
    zoned = 'crons = ["0 3 * * *"]\n    time_zone = "America/New_York"'
    cron.write_text(PERIODIC_HCL.replace("r20-cron", "r20-cron-ny").replace('crons = ["0 3 * * *"]', zoned))
    r = nomad(dev, "job", "run", str(cron))
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"Approximate next launch time: \S+T03:00:00-0[45]:00 \((\d+h)?\d+m\d+s from now\)",
                        r.stdout.splitlines()[1]), r.stdout
    out = nomad(dev, "job", "status", "r20-cron-ny").stdout
    assert re.search(r"\nNext Periodic Launch = \S+T03:00:00-0[45]:00 \(\S+ from now\)\n", out), out


def test_job_plan_of_a_periodic_job_says_when_it_would_launch(dev, tmp_path):  # noqa: F811
    """Nomad's formatDryRun: "- If submitted now, next periodic launch would be at ..." in the job's zone."""
    cron = tmp_path / "cron.nomad.hcl"
    zoned = 'crons = ["0 3 * * *"]\n    time_zone = "America/New_York"'
    cron.write_text(PERIODIC_HCL.replace("r20-cron", "r20-cron-plan").replace('crons = ["0 3 * * *"]', zoned))
    out = nomad(dev, "job", "plan", str(cron)).stdout
    assert re.search(r"\nScheduler dry-run:\n- All tasks successfully allocated\.\n"
                     r"- If submitted now, next periodic launch would be at \S+T03:00:00-0[45]:00 "
                     r"\((\d+h)?(\d+m)?\d+s from now\)\.\n\n", out), out


def test_job_dispatch_names_the_parameterized_job_by_prefix_as_nomad(dev, tmp_path):  # noqa: F811
    """Nomad's job dispatch resolves its argument with jobIDByPrefix over parameterized parents (not their
    dispatched children), and words its argument errors as Go does."""
    param = tmp_path / "param.nomad.hcl"
    param.write_text(PARAM_HCL.replace("r20-param", "r20-disp-prefix"))
    assert nomad(dev, "job", "run", str(param)).returncode == 0
    first = nomad(dev, "job", "dispatch", "-detach", "-meta", "who=a", "r20-disp-pre")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Dispatched Job ID = r20-disp-prefix/dispatch-"), first.stdout
    # The prefix also matches the child just dispatched: only the parent counts.
    again = nomad(dev, "job", "dispatch", "-detach", "-meta", "who=b", "r20-disp-pre")
    assert again.returncode == 0, again.stderr
    child = nomad(dev, "job", "dispatch", "-meta", "who=b", "r20-disp-prefix/")
    assert (child.returncode, child.stderr) == \
        (1, 'No parameterized job(s) with prefix or ID "r20-disp-prefix/" found\n'), child.stderr
    bad_meta = nomad(dev, "job", "dispatch", "-meta", "who", "r20-disp-prefix")
    assert (bad_meta.returncode, bad_meta.stderr) == (1, "Error parsing meta value: who\n")
    missing = nomad(dev, "job", "dispatch", "r20-disp-prefix", str(tmp_path / "absent"))
    assert missing.returncode == 1
    absent = tmp_path / "absent"
    assert missing.stderr == f"Error reading input data: open {absent}: no such file or directory\n"
