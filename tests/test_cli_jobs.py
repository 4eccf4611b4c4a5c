"""bin/nomad job, alloc and node commands against a real ``-dev`` agent: output, exit codes, errors."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.parse
import sys
from typing import Any

import pytest

from tests.test_agent_process import ROOT, wait_for
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev, node_id  # noqa: F401
from tests.test_http_jobs import sleep_job as _sleep_job

pytestmark = pytest.mark.timeout(120)
NOMAD = f"{ROOT}/bin/nomad"
CLI_TIMEOUT_S = 60  # a command monitors its evaluation for at most 30 s (MONITOR_TIMEOUT_S)

# `job run` watches a service job's deployment until it ends, as Nomad's does: the
# jobs here are healthy once running, so no test waits out the default 10 s.
QUICK_UPDATE = {"MinHealthyTime": 0}

TOML_JOB = """\
[Job]
ID = "cli-toml"
Type = "service"
Datacenters = ["dc1"]
Update = { MinHealthyTime = 0 }

[[Job.TaskGroups]]
Name = "web"
Count = 1

[[Job.TaskGroups.Tasks]]
Name = "sleeper"
Driver = "raw_exec"
Config = { command = "/bin/sleep", args = ["60"] }
Resources = { CPU = 50, MemoryMB = 32 }
"""


def sleep_job(job_id: str, count: int = 1, **extra) -> dict:
    return _sleep_job(job_id, count, Update=QUICK_UPDATE, **extra)


def nomad(agent, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{agent.http_port}", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, input=stdin)


def columns(line: str) -> list[str]:
    """Cells of a table line (two or more spaces apart, as the tables align them)."""
    return re.split(r"\s{2,}", line.strip())


def aligned(block: list[str]) -> bool:
    """Every row's cells start where the header's do (Nomad's columnize)."""
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))\S", block[0])]
    return all(all(i < len(row) and row[i] != " " and (i == 0 or row[i - 1] == " ") for i in starts[:-1])
               for row in block[1:])


def section(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_job_run_json_and_toml_then_status_alloc_status_and_stop(dev, tmp_path):  # noqa: F811
    json_file = tmp_path / "job.json"
    json_file.write_text(json.dumps({"Job": sleep_job("cli-json", count=2)}))
    toml_file = tmp_path / "job.toml"
    toml_file.write_text(TOML_JOB)
    for path in (json_file, toml_file):
        run = nomad(dev, "job", "run", str(path))
        assert run.returncode == 0, run.stderr
        finished = r'==> \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: Evaluation "[0-9a-f]{8}" finished with status ' \
                   r'"complete"'
        assert re.search(finished, run.stdout), run.stdout
        assert "Allocation " in run.stdout and " created: node " in run.stdout

    listing = nomad(dev, "job", "status")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert columns(lines[0]) == ["ID", "Type", "Priority", "Status", "Submit Date"] and aligned(lines)
    assert {columns(line)[0] for line in lines[1:]} >= {"cli-json", "cli-toml"}

    summary_path = "/v1/job/cli-json/summary"
    wait_for(lambda: call(dev.http_port, "GET", summary_path).json()["Summary"]["web"]["Running"] == 2,
             "cli-json running", PLACE_DEADLINE_S, dev.detail)
    status = nomad(dev, "job", "status", "cli-js")  # a unique prefix, as Nomad resolves it
    assert status.returncode == 0, status.stderr
    assert re.search(r"^ID\s+= cli-json$", status.stdout, re.M) and re.search(r"^Status\s+= running$",
                                                                               status.stdout, re.M)
    summary = section(status.stdout, "Summary")
    assert columns(summary[0])[:4] == ["Task Group", "Queued", "Starting", "Running"] and aligned(summary)
    assert columns(summary[1])[:4] == ["web", "0", "0", "2"]
    allocs = section(status.stdout, "Allocations")
    assert columns(allocs[0])[:2] == ["ID", "Node ID"] and len(allocs) == 3 and aligned(allocs)

    # -json, as scripts read it: Nomad's JobJson per job, indented four spaces.
    as_json = nomad(dev, "job", "status", "-json", "cli-js")
    assert as_json.returncode == 0, as_json.stderr
    (one,) = json.loads(as_json.stdout)
    assert set(one) == {"Summary", "Allocations", "LatestDeployment", "Evaluations"}
    assert one["Summary"]["JobID"] == "cli-json" and len(one["Allocations"]) == 2 and one["Evaluations"]
    assert as_json.stdout.startswith('[\n    {\n        "')
    listed = json.loads(nomad(dev, "job", "status", "-json").stdout)
    assert {j["Summary"]["JobID"] for j in listed} >= {"cli-json", "cli-toml"}

    alloc_id = columns(allocs[1])[0]
    alloc = nomad(dev, "alloc", "status", alloc_id)
    assert alloc.returncode == 0, alloc.stderr
    assert re.search(r"^Client Status\s+= running$", alloc.stdout, re.M)
    assert re.search(r"^Job ID\s+= cli-json$", alloc.stdout, re.M)
    assert 'Task "sleeper" is "running"' in alloc.stdout
    shown = json.loads(nomad(dev, "alloc", "status", "-json", alloc_id).stdout)
    assert shown["ID"].startswith(alloc_id) and shown["JobID"] == "cli-json"
    # -verbose: Nomad's Placement Metrics, with the scores of the node it was placed on.
    verbose = nomad(dev, "alloc", "status", "-verbose", alloc_id)
    assert verbose.returncode == 0, verbose.stderr
    metrics = verbose.stdout.split("\nPlacement Metrics\n", 1)[1].splitlines()
    assert columns(metrics[0]) == ["Node", "binpack", "job-anti-affinity", "node-affinity",
                                   "node-reschedule-penalty", "final score"]
    assert shown["NodeID"] in [columns(line)[0] for line in metrics[1:]]
    ev = json.loads(nomad(dev, "eval", "status", "-json", shown["EvalID"][:8]).stdout)
    assert ev["ID"] == shown["EvalID"] and ev["JobID"] == "cli-json"

    stop = nomad(dev, "job", "stop", "-purge", "cli-json")
    assert stop.returncode == 0 and "finished with status" in stop.stdout, stop.stderr
    gone = nomad(dev, "job", "status", "cli-json")
    assert gone.returncode == 1 and gone.stderr == 'No job(s) with prefix or ID "cli-json" found\n'
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-toml").returncode == 0


def test_job_run_watches_the_deployment_until_it_ends_exit_1_when_it_failed(dev, tmp_path):  # noqa: F811
    path = tmp_path / "watched.json"
    path.write_text(json.dumps({"Job": sleep_job("cli-watched", count=2)}))
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    dep = call(dev.http_port, "GET", "/v1/job/cli-watched/deployment").json()
    assert dep["Status"] == "successful"  # the command ended once it had
    out = run.stdout
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(f'^    {stamp}: Evaluation within deployment: "{dep["ID"][:8]}"$', out, re.M), out
    head, watched = re.split(f'==> {stamp}: Monitoring deployment "{dep["ID"][:8]}"\n', out)
    assert head.rstrip().endswith('finished with status "complete"'), out
    last = watched.rstrip().split("\n\n")[-2:]  # Nomad's formatDeployment, indented as the monitor's lines
    assert re.search(r"^    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n    ID          = " + dep["ID"][:8] + "$", last[0],
                     re.M), out
    assert "    Status      = successful\n    Description = Deployment completed successfully" in last[0]
    table = last[1].splitlines()
    assert table[0] == "    Deployed" and columns(table[1])[:5] == ["Task Group", "Desired", "Placed", "Healthy",
                                                                          "Unhealthy"]
    assert columns(table[2])[:5] == ["web", "2", "2", "2", "0"], out

    # A version whose task dies at once: its allocation is unhealthy, the deployment fails, exit 1.
    # (No progress deadline: the first unhealthy allocation fails the deployment, as Nomad's watcher.)
    job = {**sleep_job("cli-watched", count=2),
           "Update": {"MinHealthyTime": 2 * 10**9, "ProgressDeadline": 0}}
    group = job["TaskGroups"][0]
    group["Tasks"][0]["Config"] = {"command": "/bin/sh", "args": ["-c", "exit 3"]}
    group["RestartPolicy"] = {"Attempts": 0, "Mode": "fail"}
    group["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    path.write_text(json.dumps({"Job": job}))
    bad = nomad(dev, "job", "run", str(path))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"^    Status\s+= failed\n    Description = Failed due to unhealthy allocations$",
                     bad.stdout, re.M), bad.stdout

    # `deployment status -monitor` watches one the same way (it has ended: one look).
    mon = nomad(dev, "deployment", "status", "-monitor", dep["ID"][:8])
    assert mon.returncode == 0, mon.stderr
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: Monitoring deployment \"" + dep["ID"][:8] + '"\n\n',
                    mon.stdout), mon.stdout
    assert "Status      = successful" in mon.stdout
    both = nomad(dev, "deployment", "status", "-monitor", "-json", dep["ID"])
    assert both.returncode == 1 and "cannot be used with the '-json'" in both.stderr
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-watched").returncode == 0


def test_the_evaluation_monitor_stamps_each_line_and_tells_modified_from_created(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nomad's monitor (command/monitor.go): every line starts with the time; an allocation the
    evaluation updated in place (created before it) is "modified", a new one to run "created", and a
    new one not to run is not listed; a node's evaluation names its node."""
    from runtime import cli, cli_jobs  # noqa: F401 - cli first (it imports cli_jobs), as bin/nomad does

    eid = "e" * 8 + "-0000-0000-0000-000000000000"
    ev = {"ID": eid, "JobID": "web", "NodeID": "n" * 36, "Status": "complete", "CreateIndex": 10,
          "ModifyIndex": 12}
    allocs = [{"ID": c * 36, "NodeID": "n" * 36, "TaskGroup": "g", "CreateIndex": index,
               "DesiredStatus": desired}
              for c, index, desired in (("a", 5, "run"), ("b", 11, "run"), ("c", 11, "stop"))]
    monkeypatch.setattr(cli_jobs, "request",
                        lambda addr, method, path, *a, **k: allocs if path.endswith("/allocations") else ev)
    out, code = cli_jobs.monitor("http://x", eid)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    want = [f'==> {stamp}: Monitoring evaluation "eeeeeeee"',
            f'    {stamp}: Evaluation triggered by node "nnnnnnnn"',
            f'    {stamp}: Evaluation triggered by job "web"',
            f'    {stamp}: Allocation "aaaaaaaa" modified: node "nnnnnnnn", group "g"',
            f'    {stamp}: Allocation "bbbbbbbb" created: node "nnnnnnnn", group "g"',
            f'    {stamp}: Evaluation status changed: "pending" -> "complete"',
            f'==> {stamp}: Evaluation "eeeeeeee" finished with status "complete"']
    assert code == 0 and re.fullmatch("\n".join(want), out), out


def test_job_run_that_cannot_place_exits_2_with_the_reason(dev, tmp_path):  # noqa: F811
    job = sleep_job("cli-unplaceable", Constraints=[{"LTarget": "${attr.kernel.name}", "RTarget": "windows",
                                                     "Operand": "="}])
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))  # the bare job, without {"Job": ...}
    why = 'Constraint "${attr.kernel.name} = windows": 1 nodes excluded by filter'
    plan = nomad(dev, "job", "plan", str(path))
    assert "- WARNING: Failed to place all allocations." in plan.stdout, plan.stdout + plan.stderr
    assert f"    * {why}" in plan.stdout, plan.stdout
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 2, run.stdout + run.stderr
    # Nomad's monitor: the time on every line, the reason under the finished line, a singular noun.
    assert re.search(r'^==> \S+Z: Evaluation "[0-9a-f]{8}" finished with status "complete" but failed to '
                     r'place all allocations:\n    \S+Z: Task Group "web" \(failed to place 1 allocation\):$',
                     run.stdout, re.M), run.stdout
    assert why in run.stdout, run.stdout
    # Shown while an evaluation is blocked: one unblocked by a node's update is blocked again by its
    # re-run (Nomad's window too), so the status is read until it shows, not once.
    def status() -> subprocess.CompletedProcess | None:
        st = nomad(dev, "job", "status", "cli-unplaceable")
        return st if f"  * {why}" in st.stdout else None
    shown = wait_for(status, "the placement failure in job status", 20, dev.detail)
    assert shown.returncode == 0
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-unplaceable").returncode == 0


@pytest.mark.parametrize(("content", "suffix", "message"), [
    ("{not json", ".json", "Error parsing job file from"),
    ("[Job\nID=", ".toml", "Error parsing job file from"),
    ('{"Job": {"ID": "x", "TaskGroups": []}}', ".json", "TaskGroups: a job needs at least one task group"),
    ('[Job]\nID = "x"\n[[Job.TaskGroups]]\nName = "g"\n[[Job.TaskGroups.Tasks]]\nName = "t"\n', ".toml",
     "TaskGroups[0].Tasks[0].Driver: missing"),
])
def test_job_run_refuses_bad_files_in_one_line(dev, tmp_path, content, suffix, message):  # noqa: F811
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 1 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    missing = nomad(dev, "job", "run", str(tmp_path / "missing.json"))
    assert missing.returncode == 1 and "Error reading job file" in missing.stderr


def test_node_status_drain_and_eligibility(dev):  # noqa: F811
    node = node_id(dev.http_port)
    listing = nomad(dev, "node", "status")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert columns(lines[0]) == ["ID", "Node Pool", "DC", "Name", "Class", "Drain", "Eligibility", "Status"]
    assert columns(lines[1])[0] == node[:8] and aligned(lines)
    listed = json.loads(nomad(dev, "node", "status", "-json").stdout)
    assert [n["ID"] for n in listed] == [node] and listed[0]["Status"] == "ready"
    one = json.loads(nomad(dev, "node", "status", "-json", node[:8]).stdout)
    assert one["ID"] == node and "Attributes" in one and one.get("SecretID", "") == ""  # Nomad blanks it

    drain = nomad(dev, "node", "drain", "-enable", "-detach", "-deadline", "10m", "-ignore-system", "-yes",
                  node[:8])
    assert (drain.returncode, drain.stdout) == (0, f'Node "{node}" drain strategy set\n'), drain.stderr
    # The leader's drainer may finish a drain with nothing to move within a
    # second of it being set: either the strategy is there, or it completed.
    got = call(dev.http_port, "GET", f"/v1/node/{node}").json()
    if got.get("DrainStrategy"):
        assert got["DrainStrategy"]["Deadline"] == 600 * 10**9 and got["DrainStrategy"]["IgnoreSystemJobs"]
        shown = nomad(dev, "node", "status", node)
        # Nomad's formatDrain: the deadline and the system-job choice on the Drain line (or, had the
        # drain completed meanwhile, false).
        drain_line = r"^Drain\s+= (true; \S+Z deadline; ignoring system jobs|false)$"
        assert re.search(drain_line, shown.stdout, re.M) and "Allocations" in shown.stdout, shown.stdout
    else:
        assert got["LastDrain"]["Status"] == "complete", got.get("LastDrain")

    undrain = nomad(dev, "node", "drain", "-disable", node)
    assert (undrain.returncode, undrain.stdout) == (0, f'Node "{node}" drain strategy unset\n')
    assert call(dev.http_port, "GET", f"/v1/node/{node}").json()["SchedulingEligibility"] == "eligible"

    forced = nomad(dev, "node", "drain", "-enable", "-detach", "-force", node)
    assert forced.returncode == 0
    got = call(dev.http_port, "GET", f"/v1/node/{node}").json()
    assert (got.get("DrainStrategy") or {}).get("Deadline", -1) < 0 and \
        (got.get("DrainStrategy") or got["LastDrain"]["Status"] == "complete")
    keep = nomad(dev, "node", "drain", "-disable", "-keep-ineligible", node)
    assert keep.returncode == 0
    assert call(dev.http_port, "GET", f"/v1/node/{node}").json()["SchedulingEligibility"] == "ineligible"

    on = nomad(dev, "node", "eligibility", "-enable", node)
    assert on.stdout == f'Node "{node}" scheduling eligibility set: eligible for scheduling\n'
    off = nomad(dev, "node", "eligibility", "-disable", node)
    assert off.returncode == 0 and "ineligible for scheduling" in off.stdout
    assert call(dev.http_port, "GET", f"/v1/node/{node}").json()["SchedulingEligibility"] == "ineligible"
    assert nomad(dev, "node", "eligibility", "-enable", node).returncode == 0


def test_node_drain_of_a_prefix_without_yes_asks_and_takes_only_an_exact_y(dev):  # noqa: F811
    """Nomad's three answers (node_drain.go, job_stop.go): no / n... cancels (0), another y-word asks
    for an exact 'y' (0), anything else is no confirmation (1); the answer is a line of stdin."""
    node = node_id(dev.http_port)
    question = f'Are you sure you want to enable drain mode for node "{node}"? [y/N] '
    for stdin, code, said in (("\n", 0, "Canceling drain toggle"), ("No\n", 0, "Canceling drain toggle"),
                              ("yes\n", 0, "For confirmation, an exact \u2018y\u2019 is required."),
                              ("sure\n", 1, "No confirmation detected. For confirmation, an exact 'y' is "
                                            "required.")):
        asked = nomad(dev, "node", "drain", "-enable", node[:8], stdin=stdin)
        assert (asked.returncode, asked.stdout) == (code, f"{question}{said}\n"), stdin
    eof = nomad(dev, "node", "drain", "-enable", node[:8], stdin="")  # no whole line: Go's Ask fails
    assert (eof.returncode, eof.stderr) == (1, "Failed to parse answer: EOF\n")
    before = call(dev.http_port, "GET", f"/v1/node/{node}").json()
    assert not before.get("DrainStrategy") and before["SchedulingEligibility"] == "eligible"
    try:
        drained = nomad(dev, "node", "drain", "-enable", "-detach", node[:8], stdin="y\n")
        assert drained.returncode == 0, drained.stderr
        # A drain makes the node ineligible, and it stays so when the drain is done (which, with
        # nothing to move, may come before this read): the drain was asked for.
        assert call(dev.http_port, "GET", f"/v1/node/{node}").json()["SchedulingEligibility"] == "ineligible"
    finally:  # the agent is shared: the next tests need the node eligible and not draining
        nomad(dev, "node", "drain", "-disable", "-yes", node)
        assert nomad(dev, "node", "eligibility", "-enable", node).returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    # Nomad's node_drain.go words; a misuse is followed by commandErrorText's line.
    (["node", "drain", "NODE"],
     "Either the '-enable' or '-disable' flag must be set, unless using '-monitor'\n"
     "For additional help try 'nomad node drain -help'"),
    (["node", "drain", "-enable", "-disable", "NODE"], "Either the '-enable' or '-disable' flag must be set"),
    (["node", "drain", "-enable", "-force", "-deadline", "1m", "NODE"],
     "-deadline can't be combined with -force or -no-deadline"),
    (["node", "drain", "-enable", "-force", "-no-deadline", "NODE"],
     "-force and -no-deadline are mutually exclusive"),
    (["node", "drain", "-enable", "-deadline", "soon", "NODE"],
     'Failed to parse deadline "soon": time: invalid duration "soon"'),
    (["node", "drain", "-enable", "-deadline", "-5s", "NODE"], "A positive drain duration must be given"),
    (["node", "drain", "-disable", "-force", "NODE"],
     "-disable can't be combined with flags configuring drain strategy"),
    (["node", "drain", "-enable"], "Node ID must be specified if -self isn't being used\n"
                                   "For additional help try 'nomad node drain -help'"),
    (["node", "drain", "-enable", "-bogus", "NODE"], "flag provided but not defined: -bogus"),
    (["node", "drain", "-enable", "-yes", "ffffffff-x"], 'No node(s) with prefix or id "ffffffff-x"'),
    (["node", "eligibility", "NODE"], "Either the '-enable' or '-disable' flag must be set"),
    (["node", "status", "ffffffff"], 'No node(s) with prefix "ffffffff" found'),
    (["alloc", "status", "ffffffff"], 'No allocation(s) with prefix or id "ffffffff" found'),
    (["job", "stop", "no-such-job"], 'No job(s) with prefix or ID "no-such-job" found'),
    (["job", "status", "a", "b"], "This command takes one argument"),
])
def test_cli_errors_go_to_stderr_in_one_line_with_exit_1(dev, args, message):  # noqa: F811
    node = node_id(dev.http_port)
    out = nomad(dev, *[node if a == "NODE" else a for a in args])
    assert out.returncode == 1 and out.stdout == "", out.stdout
    # Nomad's Ui.Error: the message as it is, with no "Error: " before it
    assert message in out.stderr and not out.stderr.startswith("Error: "), out.stderr
    assert out.stderr.count("\n") == (2 if "For additional help" in out.stderr else 1), out.stderr
    assert call(dev.http_port, "GET", f"/v1/node/{node}").json()["SchedulingEligibility"] == "eligible"


def test_alloc_logs_reads_a_tasks_output_from_the_node_that_runs_it(dev, tmp_path):  # noqa: F811
    script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line-$i; done; echo oops >&2; exec sleep 60"
    job = {"ID": "cli-logs", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "talker", "Driver": "raw_exec",
                                            "Config": {"command": "/bin/sh", "args": ["-c", script]},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    path = tmp_path / "logs.json"
    path.write_text(json.dumps({"Job": {**job, "Update": QUICK_UPDATE}}))
    assert nomad(dev, "job", "run", str(path)).returncode == 0
    def running() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-logs/allocations").json()
                if a["ClientStatus"] == "running"]

    alloc_id = wait_for(running, "cli-logs running", PLACE_DEADLINE_S, dev.detail)[0]["ID"]
    out = wait_for(lambda: (r := nomad(dev, "alloc", "logs", alloc_id[:8])).stdout.endswith("line-12\n")
                   and r, "the task's stdout", PLACE_DEADLINE_S, dev.detail)
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "line-1"
    tail = nomad(dev, "alloc", "logs", "-tail", "-n", "3", alloc_id, "talker")
    assert tail.stdout.splitlines() == ["line-10", "line-11", "line-12"], tail.stderr
    assert nomad(dev, "alloc", "logs", "-stderr", alloc_id).stdout == "oops\n"
    assert nomad(dev, "alloc", "logs", "-tail", "-c", "8", alloc_id).stdout == "line-12\n"
    # the endpoint itself: framed by default, errors named
    framed = call(dev.http_port, "GET", f"/v1/client/fs/logs/{alloc_id}?task=talker&type=stderr").json()
    assert framed["File"] == "alloc/logs/talker.stderr.0" and framed["Data"] == "b29wcwo="
    assert call(dev.http_port, "GET", f"/v1/client/fs/logs/{alloc_id}?task=talker").status == 400
    missing = call(dev.http_port, "GET", "/v1/client/fs/logs/nope?task=talker&type=stdout")
    assert missing.status == 404 and "Unknown allocation" in missing.text
    bad = nomad(dev, "alloc", "logs", alloc_id, "nosuchtask")
    assert bad.returncode == 1 and "has no stdout log" in bad.stderr
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-logs").returncode == 0


def _run_shell_batch(dev, tmp_path, job_id: str, task: str, script: str) -> None:  # noqa: F811
    """``nomad job run -detach`` of a batch job whose one task runs ``/bin/sh -c <script>``."""
    job = {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": task, "Driver": "raw_exec",
                                            "Config": {"command": "/bin/sh", "args": ["-c", script]},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    path = tmp_path / f"{job_id}.json"
    path.write_text(json.dumps({"Job": job}))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0


def test_alloc_logs_follow_prints_output_as_it_comes_and_ends_when_the_task_does(dev, tmp_path):  # noqa: F811
    # A batch task that writes for about three seconds, then exits 0 (complete: not restarted).
    script = "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.5; done"
    _run_shell_batch(dev, tmp_path, "cli-follow", "ticker", script)

    def started() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-follow/allocations").json()
                if a["ClientStatus"] in ("running", "complete")]
    alloc_id = wait_for(started, "cli-follow started", PLACE_DEADLINE_S, dev.detail)[0]["ID"]
    follower = subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}",
                                 "alloc", "logs", "-stdout", "-f", alloc_id], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()  # type: ignore[union-attr]
        # The task is still writing: what follows comes from the stream, not from a finished file.
        assert call(dev.http_port, "GET", f"/v1/allocation/{alloc_id}").json()["ClientStatus"] == "running"
        out, err = follower.communicate(timeout=CLI_TIMEOUT_S + PLACE_DEADLINE_S)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    # Every line, once, in order: what was there when it started and what came after.
    assert (first + out).splitlines() == [f"tick-{i}" for i in range(1, 7)], (first, out, err)
    # The task is dead (the stream ended on that); the servers hear of it with the client's next update.
    wait_for(lambda: call(dev.http_port, "GET", f"/v1/allocation/{alloc_id}").json()["ClientStatus"]
             == "complete", "the allocation complete", PLACE_DEADLINE_S, dev.detail)

    # The endpoint: a followed framed stream of a finished task is its whole log, then the end.
    raw = call(dev.http_port, "GET", f"/v1/client/fs/logs/{alloc_id}?task=ticker&type=stdout&follow=true")
    assert raw.status == 200, raw.text
    frames = [json.loads(x) for x in re.findall(r"\{[^{}]*\}", raw.text)]
    data = b"".join(base64.b64decode(f["Data"]) for f in frames if f.get("Data"))
    assert data.decode().splitlines() == [f"tick-{i}" for i in range(1, 7)]
    assert frames[-1]["Offset"] == len(data) and frames[-1]["File"] == "alloc/logs/ticker.stdout.0"
    plain = call(dev.http_port, "GET",
                 f"/v1/client/fs/logs/{alloc_id}?task=ticker&type=stdout&follow=true&plain=true&offset=7")
    assert plain.status == 200 and plain.text.startswith("tick-2\n") and plain.text.endswith("tick-6\n")
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-follow").returncode == 0


def test_alloc_logs_follow_alone_follows_both_streams_from_their_ends(dev, tmp_path):  # noqa: F811
    """Nomad's `alloc logs -f` with no stream, -tail, -n or -c (tailMultipleFiles): stdout and stderr
    both followed from where they end, each to its own stream; it printed stdout alone, from its start."""
    script = "for i in $(seq 1 30); do echo out-$i; echo err-$i >&2; sleep 0.1; done"
    _run_shell_batch(dev, tmp_path, "cli-both", "t", script)

    def written() -> list:
        allocs = call(dev.http_port, "GET", "/v1/job/cli-both/allocations").json()
        return [a for a in allocs if "out-3" in nomad(dev, "alloc", "logs", a["ID"]).stdout]
    alloc_id = wait_for(written, "cli-both writing", PLACE_DEADLINE_S, dev.detail)[0]["ID"]
    follower = subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}",
                                 "alloc", "logs", "-f", alloc_id], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        out, err = follower.communicate(timeout=CLI_TIMEOUT_S + PLACE_DEADLINE_S)  # ends with the task
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    outs, errs = out.splitlines(), err.splitlines()
    assert outs and errs and outs[-1] == "out-30" and errs[-1] == "err-30", (out, err)
    assert all(x.startswith("out-") for x in outs) and all(x.startswith("err-") for x in errs), (out, err)
    assert "out-1" not in outs and "err-1" not in errs  # written before it started: not printed
    both = nomad(dev, "alloc", "logs", "-stdout", "-stderr", alloc_id)
    assert (both.returncode, both.stderr) == (1, "Unable to support both stdout and stderr\n")
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-both").returncode == 0


def test_alloc_logs_reads_a_chatty_tasks_output_whole_across_its_rotated_files(dev, tmp_path):  # noqa: F811
    # About 2.8 MB through 1 MB files, two kept: indexes 1 and 2 stay, 0 is pruned.
    job = {"ID": "cli-rotate", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "chatty", "Driver": "raw_exec",
                                            "Config": {"command": "seq", "args": ["1", "400000"]},
                                            "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 1},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    path = tmp_path / "rotate.json"
    path.write_text(json.dumps({"Job": job}))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    def done() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-rotate/allocations").json()
                if a["ClientStatus"] == "complete"]
    alloc_id = wait_for(done, "cli-rotate complete", PLACE_DEADLINE_S, dev.detail)[0]["ID"]
    listing = call(dev.http_port, "GET", f"/v1/client/fs/ls/{alloc_id}?path=alloc/logs").json()
    sizes = {f["Name"]: f["Size"] for f in listing if f["Name"].startswith("chatty.stdout.")}
    assert sizes == {"chatty.stdout.1": 1 << 20, "chatty.stdout.2": sizes["chatty.stdout.2"]}, sizes
    whole = "".join(f"{i}\n" for i in range(1, 400001))
    kept = whole[1 << 20:]  # all but the pruned first file, in order, across the two kept
    out = nomad(dev, "alloc", "logs", alloc_id)
    assert out.returncode == 0 and out.stdout == kept.rstrip("\n") + "\n", out.stderr
    assert nomad(dev, "alloc", "logs", "-tail", "-n", "2", alloc_id).stdout == "399999\n400000\n"
    followed = nomad(dev, "alloc", "logs", "-stdout", "-f", alloc_id)  # a dead task: all, then the end
    assert followed.returncode == 0 and followed.stdout == kept
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-rotate").returncode == 0


def test_status_inspect_eval_and_version_commands(dev, tmp_path):  # noqa: F811
    job = sleep_job("cli-inspect", count=1)
    path = tmp_path / "inspect.json"
    path.write_text(json.dumps({"Job": job}))
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 0, run.stderr
    eval_id = re.search(r'Evaluation ID: "?([0-9a-f-]{36})', run.stdout)
    evals = call(dev.http_port, "GET", "/v1/job/cli-inspect/evaluations").json()
    eval_id = eval_id.group(1) if eval_id else evals[0]["ID"]

    listing = nomad(dev, "status")
    assert listing.returncode == 0 and any(columns(x)[0] == "cli-inspect" for x in listing.stdout.splitlines())
    by_job = nomad(dev, "status", "cli-insp")
    assert by_job.returncode == 0 and "ID            = cli-inspect" in by_job.stdout, by_job.stdout
    node = node_id(dev.http_port)
    by_node = nomad(dev, "status", node[:8])
    assert by_node.returncode == 0 and node[:8] in by_node.stdout and "Status" in by_node.stdout
    missing = nomad(dev, "status", "zz-no-such-thing")
    assert (missing.returncode, missing.stderr) == (1, 'Unable to resolve ID: "zz-no-such-thing"\n')

    inspected = nomad(dev, "job", "inspect", "cli-inspect")
    assert inspected.returncode == 0
    got = json.loads(inspected.stdout)["Job"]
    assert got["ID"] == "cli-inspect" and got["TaskGroups"][0]["Count"] == 1

    ev = nomad(dev, "eval", "status", eval_id[:8])
    assert ev.returncode == 0, ev.stderr
    fields = dict(re.split(r"\s+=\s+", line, maxsplit=1) for line in ev.stdout.splitlines() if " = " in line)
    assert fields["ID"] == eval_id[:8] and fields["Job ID"] == "cli-inspect"
    assert fields["TriggeredBy"] == "job-register" and fields["Status"] == "complete"
    assert fields["Placement Failures"] == "false"
    # Nomad's formatEvalStatus: the related evaluations always (<none> when unset), then what it placed.
    assert [fields[k] for k in ("Previous Eval", "Next Eval", "Blocked Eval")] == ["<none>"] * 3, ev.stdout
    placed = ev.stdout.split("\n\nPlaced Allocations\n")[1].splitlines()
    assert columns(placed[0]) == ["ID", "Node ID", "Task Group", "Version", "Desired", "Status", "Created",
                                  "Modified"], ev.stdout
    assert len(placed) == 2 and columns(placed[1])[0] in {a["ID"][:8] for a in call(
        dev.http_port, "GET", "/v1/job/cli-inspect/allocations").json()}, ev.stdout
    verbose = nomad(dev, "eval", "status", "-verbose", eval_id[:8]).stdout
    assert re.search(r"^Create Time +?= \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", verbose, re.M), verbose
    watched = nomad(dev, "eval", "status", "-monitor", eval_id[:8])
    assert watched.returncode == 0 and 'finished with status "complete"' in watched.stdout, watched.stderr
    listed = nomad(dev, "eval", "list", "-job", "cli-inspect")
    lines = listed.stdout.splitlines()
    assert listed.returncode == 0 and columns(lines[0])[:3] == ["ID", "Priority", "Triggered By"]
    assert eval_id[:8] in [columns(x)[0] for x in lines[1:]]
    assert nomad(dev, "eval", "list", "-status", "no-such-status").stdout.strip() == "No evals found"
    filtered = nomad(dev, "eval", "list", "-filter", 'JobID == "cli-inspect"')
    assert filtered.returncode == 0 and eval_id[:8] in filtered.stdout
    assert nomad(dev, "job", "eval", "-detach", "cli-inspect").returncode == 0  # a second one to page to
    paged = nomad(dev, "eval", "list", "-per-page", "1", "-job", "cli-inspect")
    assert paged.returncode == 0 and "Results have been paginated. To get the next page run:" in paged.stdout
    token = paged.stdout.rstrip().rsplit(" ", 1)[1]
    assert re.fullmatch(r"\d+\.[0-9a-f-]{36}", token), paged.stdout
    nxt = nomad(dev, "eval", "list", "-per-page", "1", "-job", "cli-inspect", "-page-token", token)
    assert nxt.returncode == 0 and columns(nxt.stdout.splitlines()[1])[0] == token.split(".")[1][:8]
    both = nomad(dev, "eval", "list", "-job", "cli-inspect", "-filter", 'Status == "complete"')
    assert both.returncode == 1
    assert "Filter expression cannot be used with other filter parameters" in both.stderr
    assert nomad(dev, "status", "-filter", 'ID == "cli-inspect"').stdout.count("cli-inspect") == 1
    assert nomad(dev, "node", "status", "-filter", 'Status == "down"').stdout.strip() == "No nodes registered"
    one = nomad(dev, "node", "status", "-per-page", "1")  # the one node: no next page
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 2 and "paginated" not in one.stdout
    bad = nomad(dev, "node", "status", "-filter", "Status ==")
    assert bad.returncode == 1 and "failed to read filter expression" in bad.stderr

    for args in (["version"], ["-version"], ["--version"]):
        out = nomad(dev, *args)
        assert out.returncode == 0 and re.fullmatch(r"Nomad v\d+\.\d+\.\d+\n", out.stdout), out.stdout
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-inspect").returncode == 0


def test_alloc_stop_replaces_the_allocation(dev, tmp_path):  # noqa: F811
    path = tmp_path / "stop.json"
    path.write_text(json.dumps({"Job": sleep_job("cli-astop", count=1)}))
    assert nomad(dev, "job", "run", str(path)).returncode == 0

    def running() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-astop/allocations").json()
                if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]
    first = wait_for(running, "cli-astop running", PLACE_DEADLINE_S, dev.detail)[0]["ID"]
    out = nomad(dev, "alloc", "stop", "-detach", first[:8])
    assert out.returncode == 0, out.stderr
    eval_id = out.stdout.strip()  # Nomad's alloc stop -detach: the evaluation's ID, nothing else
    assert call(dev.http_port, "GET", f"/v1/evaluation/{eval_id}").json()["JobID"] == "cli-astop", out.stdout
    got = call(dev.http_port, "GET", f"/v1/allocation/{first}").json()
    assert got["DesiredStatus"] == "stop" and got["DesiredTransition"]["Migrate"] is True
    replacement = wait_for(lambda: [a for a in running() if a["ID"] != first], "a replacement running",
                           PLACE_DEADLINE_S, dev.detail)
    assert len(replacement) == 1
    missing = call(dev.http_port, "PUT", "/v1/allocation/00000000-0000-0000-0000-000000000000/stop")
    assert (missing.status, missing.text) == (404, "alloc not found")
    # A service allocation is migrated; a batch one is rescheduled (Nomad's CLI asks ?reschedule=true).
    assert got["DesiredTransition"]["Reschedule"] is False
    batch = sleep_job("cli-astop-batch", count=1)
    batch["Type"] = "batch"
    path.write_text(json.dumps({"Job": batch}))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0
    def batch_running() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-astop-batch/allocations").json()
                if a["ClientStatus"] == "running"]
    (one,) = wait_for(batch_running, "the batch allocation running", PLACE_DEADLINE_S, dev.detail)
    assert nomad(dev, "alloc", "stop", "-detach", one["ID"][:8]).returncode == 0
    stopped = call(dev.http_port, "GET", f"/v1/allocation/{one['ID']}").json()
    assert stopped["DesiredTransition"]["Reschedule"] is True
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-astop-batch").returncode == 0
    assert call(dev.http_port, "GET", f"/v1/allocation/{first}/stop").status == 405
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-astop").returncode == 0


def test_stops_with_no_shutdown_delay_do_not_wait_out_the_delay(dev, tmp_path):  # noqa: F811
    """Nomad's `alloc stop` / `job stop -no-shutdown-delay`: the group's and task's shutdown_delay
    (a minute here) are skipped, so the allocation is complete within seconds."""
    job = sleep_job("cli-nodelay", count=2)
    job["TaskGroups"][0]["ShutdownDelay"] = 60 * 10**9
    job["TaskGroups"][0]["Tasks"][0]["ShutdownDelay"] = 60 * 10**9
    path = tmp_path / "nodelay.json"
    path.write_text(json.dumps({"Job": job}))
    assert nomad(dev, "job", "run", "-detach", str(path)).returncode == 0

    def allocs() -> list:
        return call(dev.http_port, "GET", "/v1/job/cli-nodelay/allocations").json()
    running = wait_for(lambda: len([a for a in allocs() if a["ClientStatus"] == "running"]) == 2 and allocs(),
                       "cli-nodelay running", PLACE_DEADLINE_S, dev.detail)
    first = running[0]["ID"]
    out = nomad(dev, "alloc", "stop", "-detach", "-no-shutdown-delay", first[:8])
    assert out.returncode == 0, out.stderr
    got = wait_for(lambda: (a := call(dev.http_port, "GET", f"/v1/allocation/{first}").json())["ClientStatus"]
                   == "complete" and a, "the stopped allocation complete", 20, dev.detail)
    assert got["DesiredTransition"]["NoShutdownDelay"] is True
    (task,) = got["TaskStates"].values()
    assert "Skipping shutdown delay" in [e["Type"] for e in task["Events"]]
    bad = call(dev.http_port, "DELETE", "/v1/job/cli-nodelay?no_shutdown_delay=soon")
    assert bad.status == 400 and "no_shutdown_delay" in bad.text
    assert nomad(dev, "job", "stop", "-detach", "-no-shutdown-delay", "cli-nodelay").returncode == 0
    wait_for(lambda: all(a["ClientStatus"] == "complete" for a in allocs()), "every allocation complete", 20,
             dev.detail)
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-nodelay").returncode == 0


def test_job_run_and_stop_take_an_eval_priority(dev, tmp_path):  # noqa: F811
    """Nomad's -eval-priority: the evaluation a registration or a stop creates has that priority,
    not the job's (50), and one outside 1-100 is refused with Nomad's message."""
    path = tmp_path / "prio.json"
    path.write_text(json.dumps({"Job": sleep_job("cli-prio")}))
    out = nomad(dev, "job", "run", "-detach", "-eval-priority", "90", str(path))
    assert out.returncode == 0, out.stderr
    (eval_id,) = re.findall(r"Evaluation ID: (\S+)", out.stdout)
    assert call(dev.http_port, "GET", f"/v1/evaluation/{eval_id}").json()["Priority"] == 90
    bad = nomad(dev, "job", "run", "-detach", "-eval-priority", "101", str(path))
    assert bad.returncode == 1 and "Eval priority must be between 1 and 100 inclusively" in bad.stderr
    bad = call(dev.http_port, "DELETE", "/v1/job/cli-prio?eval_priority=soon")
    assert bad.status == 400 and "eval_priority" in bad.text
    out = nomad(dev, "job", "stop", "-detach", "-eval-priority", "80", "cli-prio")
    assert out.returncode == 0, out.stderr
    assert call(dev.http_port, "GET", f"/v1/evaluation/{out.stdout.strip()}").json()["Priority"] == 80
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-prio").returncode == 0


def test_job_run_keeps_the_source_and_job_inspect_hcl_prints_it(dev, tmp_path):  # noqa: F811
    """Nomad's job submissions: job run sends the file as written (HCL2 with its -var flags, or JSON),
    GET /v1/job/<id>/submission?version= answers it, job inspect -hcl prints it and -with-vars the
    command that runs it again (on stderr)."""
    path = tmp_path / "src.nomad.hcl"
    source = ('variable "n" {\n  type = number\n  default = 1\n}\n'
              'job "cli-src" {\n  datacenters = ["dc1"]\n  group "g" {\n    count = var.n\n'
              '    task "t" {\n      driver = "raw_exec"\n'
              '      config {\n        command = "/bin/sleep"\n        args = ["60"]\n      }\n'
              '    }\n  }\n}\n')
    path.write_text(source)
    assert nomad(dev, "job", "run", "-detach", "-var", "n=0", str(path)).returncode == 0
    got = call(dev.http_port, "GET", "/v1/job/cli-src/submission?version=0")
    assert got.status == 200 and int(got.headers["x-nomad-index"]) > 0
    sub = got.json()
    assert (sub["Source"], sub["Format"], sub["VariableFlags"], sub["JobID"], sub["Version"]) == \
        (source, "hcl2", {"n": "0"}, "cli-src", 0)
    shown = nomad(dev, "job", "inspect", "-hcl", "-with-vars", "cli-src")
    assert shown.returncode == 0 and shown.stdout == source, shown.stderr
    assert "nomad job run -namespace default -var n=0 cli-src" in shown.stderr
    # The round trip Nomad suggests: the source back through "job run -" (standard input).
    again = nomad(dev, "job", "run", "-detach", "-var", "n=2", "-", stdin=shown.stdout)
    assert again.returncode == 0, again.stderr
    assert call(dev.http_port, "GET", "/v1/job/cli-src").json()["TaskGroups"][0]["Count"] == 2
    assert call(dev.http_port, "GET", "/v1/job/cli-src/submission").status == 400
    assert call(dev.http_port, "GET", "/v1/job/cli-src/submission?version=9").text == "job source not found"
    missing = nomad(dev, "job", "inspect", "-hcl", "-version", "9", "cli-src")
    assert missing.returncode == 1 and "couldn't be found" in missing.stderr
    assert nomad(dev, "job", "inspect", "-with-vars", "cli-src").stderr.strip() == \
        "can only use -with-vars with -hcl"
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-src").returncode == 0
    assert call(dev.http_port, "GET", "/v1/job/cli-src/submission?version=0").status == 404


def test_alloc_signal_restart_and_stats_reach_the_running_task(dev, tmp_path):  # noqa: F811
    script = "trap 'echo got-hup' HUP; echo started; while true; do sleep 0.2; done"
    job = {"ID": "cli-life", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "life", "Driver": "raw_exec",
                                            "Config": {"command": "/bin/sh", "args": ["-c", script]},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    path = tmp_path / "life.json"
    path.write_text(json.dumps({"Job": {**job, "Update": QUICK_UPDATE}}))
    assert nomad(dev, "job", "run", str(path)).returncode == 0

    def running() -> list:
        return [a for a in call(dev.http_port, "GET", "/v1/job/cli-life/allocations").json()
                if a["ClientStatus"] == "running"]
    alloc_id = wait_for(running, "cli-life running", PLACE_DEADLINE_S, dev.detail)[0]["ID"]

    def logs() -> str:
        return nomad(dev, "alloc", "logs", alloc_id).stdout
    wait_for(lambda: "started" in logs(), "the task's first output", PLACE_DEADLINE_S, dev.detail)

    sig = nomad(dev, "alloc", "signal", "-s", "SIGHUP", alloc_id[:8])
    assert sig.returncode == 0 and sig.stdout == "", sig.stderr
    wait_for(lambda: "got-hup" in logs(), "the trap's output", PLACE_DEADLINE_S, dev.detail)

    stats = call(dev.http_port, "GET", f"/v1/client/allocation/{alloc_id}/stats").json()
    assert stats["Tasks"]["life"]["ResourceUsage"]["MemoryStats"]["RSS"] > 0
    assert stats["ResourceUsage"]["MemoryStats"]["RSS"] >= stats["Tasks"]["life"]["ResourceUsage"]["MemoryStats"]["RSS"]

    restart = nomad(dev, "alloc", "restart", alloc_id, "life")
    assert restart.returncode == 0, restart.stderr
    wait_for(lambda: logs().count("started") == 2, "the task started again", PLACE_DEADLINE_S, dev.detail)

    def restarted() -> dict | None:
        a = call(dev.http_port, "GET", f"/v1/allocation/{alloc_id}").json()
        st = a["TaskStates"]["life"]
        return a if st["State"] == "running" and st["Restarts"] == 1 else None
    a = wait_for(restarted, "the restart reported", PLACE_DEADLINE_S, dev.detail)
    assert a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"  # the same allocation, in place
    assert "Restart Signaled" in [e["Type"] for e in a["TaskStates"]["life"]["Events"]]

    # Nomad's wordings (command/alloc_signal.go, alloc_restart.go): the API's error under the command's
    # context; a task not in the group, with the group's tasks listed.
    for args, message in [(["alloc", "signal", "-s", "SIGNOPE", alloc_id],
                           "Error signalling allocation: Unexpected response code: 400 (unknown signal"),
                          (["alloc", "restart", alloc_id, "nosuch"], missing := "Could not find task named: "
                                                                               "nosuch, found:\nlife\n"),
                          (["alloc", "signal", alloc_id, "nosuch"], missing)]:
        bad = nomad(dev, *args)
        assert bad.returncode == 1 and bad.stderr.startswith(message), bad.stderr
    unknown = "/v1/client/allocation/00000000-0000-0000-0000-000000000000"
    assert call(dev.http_port, "PUT", f"{unknown}/restart", {}).status == 404
    assert call(dev.http_port, "PUT", f"{unknown}/signal", {"Signal": "SIGHUP"}).status == 404
    assert call(dev.http_port, "PUT", f"/v1/client/allocation/{alloc_id}/signal", {}).status == 400
    assert call(dev.http_port, "GET", f"/v1/client/allocation/{alloc_id}/restart").status == 405
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-life").returncode == 0


def test_job_history_revert_and_eval(dev, tmp_path):  # noqa: F811
    for n, cpu in enumerate((50, 60)):
        path = tmp_path / f"hist{n}.json"
        job = sleep_job("cli-hist", count=1)
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = cpu
        path.write_text(json.dumps({"Job": job}))
        assert nomad(dev, "job", "run", str(path)).returncode == 0
    hist = nomad(dev, "job", "history", "cli-hist")
    assert hist.returncode == 0
    blocks = [dict(re.split(r"\s+=\s+", x, maxsplit=1) for x in b.splitlines()) for b in hist.stdout.split("\n\n")]
    # Each run waited for its deployment, which succeeded: both versions are stable.
    assert [b["Version"] for b in blocks] == ["1", "0"] and blocks[0]["Stable"] == "true"
    # -p: each version's diff against the one before it, as Nomad prints a plan's
    diffs = nomad(dev, "job", "history", "-p", "cli-hist")
    newest, oldest = diffs.stdout.split("\n\nVersion")
    assert newest.startswith("Version     = 1\n") and "Diff" not in oldest, diffs.stdout
    assert 'Diff        =\n+/- Job: "cli-hist"\n+/- Task Group: "web"\n  +/- Task: "sleeper"\n' in newest
    assert re.search(r'\n      \+/- CPU: +"50" => "60"\n', newest), newest
    versions = call(dev.http_port, "GET", "/v1/job/cli-hist/versions?diffs=true").json()
    assert len(versions["Diffs"]) == 1 and versions["Diffs"][0]["Type"] == "Edited"
    assert call(dev.http_port, "GET", "/v1/job/cli-hist/versions").json()["Diffs"] is None
    full = nomad(dev, "job", "history", "-full", "-version", "0", "cli-hist")
    head, body = full.stdout.split("Full        = JSON Job:\n")
    assert head.startswith("Version     = 0\n"), full.stdout
    assert json.loads(body)["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 50

    rev = nomad(dev, "job", "revert", "cli-hist", "0")
    assert rev.returncode == 0 and "complete" in rev.stdout, rev.stdout + rev.stderr
    got = call(dev.http_port, "GET", "/v1/job/cli-hist").json()
    assert got["Version"] == 2 and got["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 50
    bad = nomad(dev, "job", "revert", "cli-hist", "2")
    assert bad.returncode == 1 and "current version" in bad.stderr

    # Nomad's job eval -detach: `Created eval ID: "<short>" ` (its ID quoted, a space after it).
    ev = nomad(dev, "job", "eval", "-detach", "cli-hist")
    assert ev.returncode == 0 and re.fullmatch(r'Created eval ID: "[0-9a-f]{8}" \n', ev.stdout), ev.stdout
    ev = nomad(dev, "job", "eval", "-detach", "-verbose", "cli-hist")
    eval_id = re.fullmatch(r'Created eval ID: "(\S{36})" \n', ev.stdout).group(1)
    assert call(dev.http_port, "GET", f"/v1/evaluation/{eval_id}").json()["JobID"] == "cli-hist"
    # Nomad's job revert -detach: the evaluation's ID alone, under its label.
    rev = nomad(dev, "job", "revert", "-detach", "cli-hist", "1")
    eval_id = re.fullmatch(r"Evaluation ID: (\S{36})\n", rev.stdout).group(1)
    assert call(dev.http_port, "GET", f"/v1/evaluation/{eval_id}").json()["JobID"] == "cli-hist"
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-hist").returncode == 0


def test_job_history_full_prints_each_version_with_its_rows_and_diff(monkeypatch):
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    CliError = cli.CliError
    versions = [{"ID": "w", "Version": 1, "Stable": False, "SubmitTime": 2 * 10**18, "Priority": 60},
                {"ID": "w", "Version": 0, "Stable": True, "SubmitTime": 10**18, "Priority": 50}]
    diff = {"Type": "Edited", "ID": "w", "Fields": [{"Type": "Edited", "Name": "Priority", "Old": "50",
                                                      "New": "60", "Annotations": None}],
            "Objects": None, "TaskGroups": None}

    def request(addr, method, path, *a, **k):
        if path == "/v1/jobs":
            return [{"ID": "w"}]
        return {"Versions": versions, "Diffs": [diff] if "diffs=true" in path else None}

    monkeypatch.setattr(cli_jobs, "request", request)
    # Nomad's formatJobVersion: -full adds the version's job under its Version/Stable/Submit Date (and,
    # with -p, Diff) rows as "Full = JSON Job:", it does not print the JSON alone.
    out = cli_jobs.job_history("http://x", ["-full", "-p", "w"])
    newest, oldest = out.split("\n\nVersion     = 0\n")
    assert re.match(r"Version     = 1\nStable      = false\nSubmit Date = \S+\nDiff        =\n"
                    r'\+/- Job: "w"\n\+/- Priority: "50" => "60"\nFull        = JSON Job:\n\{', newest), out
    assert json.loads(newest.split("JSON Job:\n")[1])["Priority"] == 60
    assert oldest.startswith("Stable      = true\n") and "Diff" not in oldest
    assert json.loads(oldest.split("JSON Job:\n")[1])["Version"] == 0
    one = cli_jobs.job_history("http://x", ["-full", "-version", "0", "w"])
    assert one.startswith("Version     = 0\n") and "Full        = JSON Job:\n{" in one, one
    with pytest.raises(CliError, match=r"^Error printing job history for non-existing job or job version$"):
        cli_jobs.job_history("http://x", ["-version", "7", "w"])
    # Nomad's parseVersion: a number ("01" is version 1), else its parse error.
    assert cli_jobs.job_history("http://x", ["-version", "01", "w"]).startswith("Version     = 1\n")
    with pytest.raises(CliError) as bad:
        cli_jobs.job_history("http://x", ["-version", "abc", "w"])
    assert str(bad.value) == ('Error parsing version value "abc": strconv.ParseUint: parsing "abc": '
                              "invalid syntax")


def test_job_inspect_version_parses_as_a_number_and_a_missing_one_has_nomads_text(monkeypatch):
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    versions = [{"ID": "w", "Version": 7, "Priority": 70}, {"ID": "w", "Version": 6, "Priority": 60}]
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, ident, **_: {"ID": "w"})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: {"Versions": versions})
    got = json.loads(cli_jobs.job_inspect("http://x", ["-version", "07", "w"]))
    assert got["Job"]["Priority"] == 70
    with pytest.raises(cli.CliError) as missing:
        cli_jobs.job_inspect("http://x", ["-version", "5", "w"])
    assert str(missing.value) == 'Error inspecting job: job "w" with version 5 couldn\'t be found'


def test_job_plan_then_run_with_check_index(dev, tmp_path):  # noqa: F811
    path = tmp_path / "plan.json"

    def write(cpu: int) -> None:
        job = sleep_job("cli-plan", count=1)
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = cpu
        path.write_text(json.dumps({"Job": job}))
    write(50)
    first = nomad(dev, "job", "plan", str(path))
    assert first.returncode == 1, first.stderr  # Nomad: 1 when allocations would be created or destroyed
    assert '+ Job: "cli-plan"' in first.stdout and '+ Task Group: "web" (1 create)' in first.stdout
    assert "- All tasks successfully allocated." in first.stdout
    as_json = nomad(dev, "job", "plan", "-json-output", str(path))  # the plan response, same exit code
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["JobModifyIndex"] == 0, as_json.stderr
    templated = nomad(dev, "job", "plan", "-t", "{{ .Diff.Type }}", str(path))
    assert (templated.returncode, templated.stdout.strip()) == (1, "Added"), templated.stderr
    both = nomad(dev, "job", "plan", "-json-output", "-t", "x", str(path))
    assert both.returncode == 255 and "Both -json-output and -t formatting are not allowed" in both.stderr
    index = re.search(r"Job Modify Index: (\d+)", first.stdout).group(1)
    assert index == "0" and f"nomad job run -check-index 0 {path}" in first.stdout
    assert call(dev.http_port, "GET", "/v1/job/cli-plan").status == 404  # a dry run wrote nothing

    assert nomad(dev, "job", "run", "-check-index", "0", str(path)).returncode == 0
    same = nomad(dev, "job", "plan", str(path))
    assert same.returncode == 0 and 'Task Group: "web" (1 ignore)' in same.stdout, same.stdout
    index = re.search(r"Job Modify Index: (\d+)", same.stdout).group(1)
    write(60)
    changed = nomad(dev, "job", "plan", str(path))
    assert changed.returncode == 1 and '+/- Task Group: "web" (1 create/destroy update)' in changed.stdout
    assert '  +/- Task: "sleeper" (forces create/destroy update)\n    +/- Resources {\n' in changed.stdout
    assert re.search(r'\n      \+/- CPU: +"50" => "60"\n', changed.stdout), changed.stdout
    stale = nomad(dev, "job", "run", "-check-index", str(int(index) - 1), str(path))
    assert stale.returncode == 1 and "Enforcing job modify index" in stale.stderr
    assert nomad(dev, "job", "run", "-check-index", index, str(path)).returncode == 0
    write(1_000_000)
    huge = nomad(dev, "job", "plan", str(path))
    assert "WARNING: Failed to place all allocations." in huge.stdout and "Resources exhausted" in huge.stdout
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-plan").returncode == 0


def test_job_run_takes_a_nomad_hcl_file(dev, tmp_path):  # noqa: F811
    hcl = os.path.join(ROOT, "tests", "data", "example.nomad.hcl")
    plan = nomad(dev, "job", "plan", hcl)
    assert plan.returncode == 1 and '+ Task Group: "cache" (1 create)' in plan.stdout, plan.stdout + plan.stderr
    run = nomad(dev, "job", "run", hcl)
    assert run.returncode == 0, run.stderr
    job = call(dev.http_port, "GET", "/v1/job/example").json()
    assert job["Priority"] == 60 and job["TaskGroups"][0]["Tasks"][0]["Env"] == {"FOO": "bar"}
    bad = tmp_path / "bad.nomad.hcl"
    bad.write_text('job "x" { group "g" { update { canaries = 1 } } }\n')
    out = nomad(dev, "job", "run", str(bad))
    assert out.returncode == 1 and "'canaries' not supported by this agent" in out.stderr
    bridge = tmp_path / "bridge.nomad.hcl"
    bridge.write_text('job "x" { group "g" {\n network { mode = "bridge" }\n'
                      ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" }\n }\n } }\n')
    out = nomad(dev, "job", "run", str(bridge))
    assert out.returncode == 1 and "network mode 'bridge' is not supported here (only host)" in out.stderr
    parsed = call(dev.http_port, "PUT", "/v1/jobs/parse", {"JobHCL": open(hcl).read(), "Canonicalize": True})
    assert parsed.status == 200 and parsed.json()["TaskGroups"][0]["Count"] == 1
    refused = call(dev.http_port, "PUT", "/v1/jobs/parse", {"JobHCL": 'job "x" {'})
    assert refused.status == 400 and "not a valid HCL file" in refused.text
    assert nomad(dev, "job", "stop", "-purge", "-detach", "example").returncode == 0


def test_job_dispatch_runs_a_parameterized_job(dev, tmp_path):  # noqa: F811
    path = tmp_path / "param.nomad.hcl"
    path.write_text("""
job "cli-param" {
  type = "batch"
  datacenters = ["dc1"]
  parameterized {
    payload       = "forbidden"
    meta_required = ["color"]
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo color=$NOMAD_META_color"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
""")
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 0, run.stderr
    got = nomad(dev, "job", "dispatch", "-meta", "color=blue", "cli-param")
    assert got.returncode == 0, got.stderr
    child = re.search(r"Dispatched Job ID = (\S+)", got.stdout).group(1)
    assert child.startswith("cli-param/dispatch-") and "complete" in got.stdout
    # Nomad's formatKV of the child and its evaluation (short), a blank line, then the monitor.
    assert re.match(r"Dispatched Job ID = \S+\nEvaluation ID     = [0-9a-f]{8}\n\n==> ", got.stdout), \
        got.stdout
    detached = nomad(dev, "job", "dispatch", "-detach", "-meta", "color=red", "cli-param")
    assert re.fullmatch(r"Dispatched Job ID = cli-param/dispatch-\S+\nEvaluation ID     = [0-9a-f]{8}\n",
                        detached.stdout), detached.stdout
    # A retried dispatch with the same idempotency token answers with the first child, and no evaluation.
    token_args = ("job", "dispatch", "-detach", "-meta", "color=green", "-idempotency-token", "tok",
                  "-id-prefix-template", "green", "-priority", "60", "cli-param")
    first, retried = nomad(dev, *token_args), nomad(dev, *token_args)
    tok_child = re.search(r"Dispatched Job ID = (\S+)", first.stdout).group(1)
    assert tok_child.startswith("cli-param/dispatch-green-") and "Evaluation ID" in first.stdout
    assert retried.returncode == 0 and retried.stdout == f"Dispatched Job ID = {tok_child}\n", retried.stdout
    tok_job = call(dev.http_port, "GET", f"/v1/job/{urllib.parse.quote(tok_child, safe='')}").json()
    assert (tok_job["Priority"], tok_job["DispatchIdempotencyToken"]) == (60, "tok")
    bad = nomad(dev, "job", "dispatch", "-meta", "color=x", "-priority", "101", "cli-param")
    assert bad.returncode == 1 and "dispatch job priority must be between [1, 100]" in bad.stderr
    # -wait: until the instance is done, then its summary (Nomad's monitorDispatchedJob).
    waited = nomad(dev, "job", "dispatch", "-wait", "-meta", "color=done", "cli-param")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert re.search(r"^    Deployed\n    Task Group +Queued +Complete +Failed +Running", waited.stdout, re.M)
    assert re.search(r"^    g +0 +1 +0 +0 ", waited.stdout, re.M), waited.stdout
    allocs = call(dev.http_port, "GET", f"/v1/job/{urllib.parse.quote(child, safe='')}/allocations").json()
    assert len(allocs) == 1
    wait_for(lambda: "color=blue" in nomad(dev, "alloc", "logs", allocs[0]["ID"]).stdout, "the task's output",
             PLACE_DEADLINE_S, dev.detail)
    missing = nomad(dev, "job", "dispatch", "cli-param")
    assert missing.returncode == 1 and missing.stderr.startswith("Failed to dispatch job: ")
    assert "Dispatch did not provide required meta keys: [color]" in missing.stderr
    payload = tmp_path / "in.txt"
    payload.write_text("data")
    forbidden = nomad(dev, "job", "dispatch", "-meta", "color=red", "cli-param", str(payload))
    assert forbidden.returncode == 1, forbidden.stderr
    assert "Payload provided but forbidden by parameterized job" in forbidden.stderr
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-param").returncode == 0


def test_job_run_and_plan_fill_in_hcl_variables_from_var_var_file_and_env(dev, tmp_path):  # noqa: F811
    path = tmp_path / "vars.nomad.hcl"
    path.write_text("""
variable "name" {
  type = string
}
variable "count" {
  type    = number
  default = 0
}
job "cli-vars" {
  datacenters = ["dc1"]
  meta {
    name = var.name
  }
  group "g" {
    count = var.count
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
    }
  }
}
""")
    missing = nomad(dev, "job", "plan", str(path))
    # Nomad's job plan exits 255 on an error (1 says allocations would change): it was 1.
    assert missing.returncode == 255
    assert 'Unset variable "name"; A used variable must be set' in missing.stderr
    broken = tmp_path / "broken.nomad.hcl"
    broken.write_text('job "x" {\n')
    assert nomad(dev, "job", "plan", str(broken)).returncode == 255
    assert nomad(dev, "plan", str(tmp_path / "nowhere.hcl")).returncode == 255  # the shorthand too
    assert nomad(dev, "job", "validate", str(broken)).returncode == 1  # the other commands: 1
    varfile = tmp_path / "prod.vars.hcl"
    varfile.write_text('name = "from-file"\n')
    plan = nomad(dev, "job", "plan", "-var-file", str(varfile), str(path))
    assert plan.returncode == 0, plan.stdout + plan.stderr  # count 0: nothing to place
    run = nomad(dev, "job", "run", "-var-file", str(varfile), "-var", "name=from-var", "-var=count=0", str(path))
    assert run.returncode == 0, run.stderr
    assert call(dev.http_port, "GET", "/v1/job/cli-vars").json()["Meta"] == {"name": "from-var"}
    env_run = subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", "job", "run",
                              "-detach", str(path)], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                             env={**os.environ, "NOMAD_VAR_name": "from-env"})
    assert env_run.returncode == 0, env_run.stderr
    assert call(dev.http_port, "GET", "/v1/job/cli-vars").json()["Meta"] == {"name": "from-env"}
    bad = nomad(dev, "job", "run", "-var", "nope=1", "-var", "name=x", str(path))
    assert bad.returncode == 1 and 'Undefined -var variable' in bad.stderr
    parsed = call(dev.http_port, "PUT", "/v1/jobs/parse", {"JobHCL": path.read_text(),
                                                           "Variables": 'name = "api"\ncount = 3\n'})
    assert parsed.status == 200, parsed.text
    assert parsed.json()["Meta"] == {"name": "api"} and parsed.json()["TaskGroups"][0]["Count"] == 3
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-vars").returncode == 0


def test_job_restart_restarts_each_allocation_in_batches_then_reschedules(dev, tmp_path):  # noqa: F811
    job = {"ID": "restart-me", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                            "Config": {"command": "/bin/sleep", "args": ["120"]},
                                            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200

    def running() -> list[dict]:
        return [a for a in call(dev.http_port, "GET", "/v1/job/restart-me/allocations").json()
                if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]

    wait_for(lambda: len(running()) == 2, "two allocations running", PLACE_DEADLINE_S, dev.detail)
    first = {a["ID"] for a in running()}
    out = nomad(dev, "job", "restart", "-batch-size", "50%", "restart-me")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()  # Nomad's: "==> <time>: ..." headers, an indented line per allocation
    assert re.fullmatch(r"==> \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: Restarting 2 allocations", lines[0]), lines
    assert "batch of" not in out.stdout  # batches of one have no header of their own
    per_alloc = [ln for ln in lines if ln.startswith("    ") and "Restarting running tasks in allocation" in ln]
    assert len(per_alloc) == 2
    assert lines[-3].endswith(": Job restart finished") and lines[-1] == "Job restarted successfully!"
    for a in running():  # in place: the same allocations, each task restarted once
        assert a["ID"] in first
        full = call(dev.http_port, "GET", f"/v1/allocation/{a['ID']}").json()
        assert full["TaskStates"]["t"]["Restarts"] == 1 and full["TaskStates"]["t"]["State"] == "running"
    moved = nomad(dev, "job", "restart", "-reschedule", "-batch-size", "2", "-group", "g", "-on-error", "fail",
                  "-no-shutdown-delay", "restart-me")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moved.stdout.count("Rescheduling allocation") == 2 and ": Restarting 1st batch of 2 allocations" \
        in moved.stdout
    now = {a["ID"] for a in running()}
    assert len(now) == 2 and not now & first  # replacements, placed by the job
    for a in first:  # stopped without their shutdown_delay, as -no-shutdown-delay asks
        assert call(dev.http_port, "GET", f"/v1/allocation/{a}").json()["DesiredTransition"]["NoShutdownDelay"]
    for bad, why in ((["-batch-size", "0", "restart-me"], "invalid -batch-size"),
                     (["-task", "t", "-all-tasks", "restart-me"], "cannot be used with -task"),
                     (["-on-error", "maybe", "restart-me"], 'Invalid -on-error value "maybe"'),
                     (["nope"], "No job(s) with prefix or ID")):
        r = nomad(dev, "job", "restart", *bad)
        assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)
    # As Nomad's filterAllocs: a group or task no allocation has skips them all -- nothing to do, exit 0.
    for none in (["-task", "nope", "restart-me"], ["-group", "nope", "restart-me"]):
        r = nomad(dev, "job", "restart", "-yes", *none)
        assert r.returncode == 0 and r.stdout.strip() == "No allocations to restart", (none, r.stderr)
    assert nomad(dev, "job", "stop", "-purge", "-detach", "restart-me").returncode == 0


def test_job_init_writes_an_example_that_this_agent_runs(dev, tmp_path):  # noqa: F811
    path = tmp_path / "example.nomad.hcl"
    made = subprocess.run([sys.executable, NOMAD, "job", "init"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)
    assert made.returncode == 0 and made.stdout.strip() == "Example job file written to example.nomad.hcl"
    again = subprocess.run([sys.executable, NOMAD, "job", "init"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=CLI_TIMEOUT_S)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert nomad(dev, "job", "validate", str(path)).returncode == 0
    # Its update block waits 10 s of health (Nomad's example): not watched here (test_job_run_watches_...).
    run = nomad(dev, "job", "run", "-detach", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    wait_for(lambda: [a for a in call(dev.http_port, "GET", "/v1/job/example/allocations").json()
                      if a["ClientStatus"] == "running"], "the example running", PLACE_DEADLINE_S, dev.detail)
    short = tmp_path / "short.nomad.hcl"
    assert nomad(dev, "job", "init", "-short", str(short)).returncode == 0
    assert nomad(dev, "job", "validate", str(short)).returncode == 0
    assert nomad(dev, "job", "stop", "-purge", "-detach", "example").returncode == 0


def test_job_validate_checks_a_file_as_registration_would(dev, tmp_path):  # noqa: F811
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"Job": {"ID": "v", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]}}))
    ok = nomad(dev, "job", "validate", str(good))
    assert ok.returncode == 0 and ok.stdout.strip() == "Job validation successful", ok.stderr
    assert call(dev.http_port, "GET", "/v1/job/v").status == 404  # validated, not registered
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Job": {"ID": "v", "TaskGroups": [{"Name": "g", "Count": -1, "Tasks": [
        {"Name": "t", "Driver": "raw_exec"}]}]}}))
    refused = nomad(dev, "job", "validate", str(bad))
    assert refused.returncode == 1 and "Job validation errors:" in refused.stderr and "Count" in refused.stderr
    api = call(dev.http_port, "PUT", "/v1/validate/job", json.loads(bad.read_text()))
    assert api.status == 200 and api.json()["ValidationErrors"] and not api.json()["DriverConfigValidated"]
    assert call(dev.http_port, "PUT", "/v1/validate/job", {}).status == 400


def test_a_dispatched_payload_is_written_into_the_task_before_it_starts(dev, tmp_path):  # noqa: F811
    path = tmp_path / "payload.nomad.hcl"
    path.write_text("""
job "cli-payload" {
  type = "batch"
  datacenters = ["dc1"]
  parameterized {
    payload = "required"
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "printf 'got:'; cat local/in/params.json"]
      }
      dispatch_payload {
        file = "in/params.json"
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
""")
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 0, run.stderr
    job = call(dev.http_port, "GET", "/v1/job/cli-payload").json()
    assert job["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] == {"File": "in/params.json"}
    payload = tmp_path / "params.json"
    payload.write_bytes(b'{"n": 42}')
    got = nomad(dev, "job", "dispatch", "cli-payload", str(payload))
    assert got.returncode == 0, got.stderr
    child = re.search(r"Dispatched Job ID = (\S+)", got.stdout).group(1)
    (alloc,) = call(dev.http_port, "GET", f"/v1/job/{urllib.parse.quote(child, safe='')}/allocations").json()
    wait_for(lambda: nomad(dev, "alloc", "logs", alloc["ID"]).stdout.strip() == 'got:{"n": 42}', "the output",
             PLACE_DEADLINE_S, dev.detail)
    written = call(dev.http_port, "GET", f"/v1/client/fs/cat/{alloc['ID']}?path=t/local/in/params.json")
    assert (written.status, written.text) == (200, '{"n": 42}')
    escape = {"Job": {**job, "ID": "bad-payload", "Name": "bad-payload"}}
    escape["Job"]["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] = {"File": "../../secrets/x"}
    refused = call(dev.http_port, "PUT", "/v1/jobs", escape)
    assert refused.status == 400 and "escapes the task's local directory" in refused.text
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-payload").returncode == 0


def test_periodic_job_is_launched_by_force_and_never_runs_itself(dev, tmp_path):  # noqa: F811
    path = tmp_path / "cron.nomad.hcl"
    path.write_text("""
job "cli-cron" {
  type = "batch"
  periodic {
    cron             = "0 3 * * *"
    prohibit_overlap = true
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/echo"
        args    = ["tick"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
""")
    run = nomad(dev, "job", "run", str(path))
    assert run.returncode == 0, run.stderr
    stub = [j for j in call(dev.http_port, "GET", "/v1/jobs").json() if j["ID"] == "cli-cron"][0]
    assert stub["Periodic"] is True and stub["Status"] == "running"
    assert call(dev.http_port, "GET", "/v1/job/cli-cron/allocations").json() == []  # waits for 03:00
    forced = nomad(dev, "job", "periodic", "force", "cli-cron")
    assert forced.returncode == 0 and "complete" in forced.stdout, forced.stdout + forced.stderr
    children = [j["ID"] for j in call(dev.http_port, "GET", "/v1/jobs?prefix=cli-cron/periodic-").json()]
    assert len(children) == 1
    child = call(dev.http_port, "GET", f"/v1/job/{urllib.parse.quote(children[0], safe='')}").json()
    assert child["ParentID"] == "cli-cron" and child["Periodic"] is None
    wait_for(lambda: [a for a in call(dev.http_port, "GET",
                                      f"/v1/job/{urllib.parse.quote(children[0], safe='')}/allocations").json()
                      if a["ClientStatus"] == "complete"], "the launch done", PLACE_DEADLINE_S, dev.detail)
    status = nomad(dev, "job", "status", "cli-cron")
    assert "Periodic             = true" in status.stdout, status.stdout
    assert re.search(r"Next Periodic Launch = \S+Z \(\S+ from now\)", status.stdout), status.stdout
    assert "Previously Launched Jobs" in status.stdout and children[0] in status.stdout
    # Nomad's: only periodic jobs match (not the launch "cli-cron/periodic-..."), and -detach says
    # "Force periodic successful".
    forced = nomad(dev, "job", "periodic", "force", "-detach", "cli-cr")
    assert re.fullmatch(r"Force periodic successful\nEvaluation ID: \S{36}\n", forced.stdout), \
        forced.stdout + forced.stderr
    bad = nomad(dev, "job", "periodic", "force", "cli-cron-nope")
    assert (bad.returncode, bad.stderr) == (1, 'No periodic job(s) with prefix or ID "cli-cron-nope" found\n')
    bad = nomad(dev, "job", "periodic", "force", children[0])
    assert bad.returncode == 1 and "No periodic job(s) with prefix or ID" in bad.stderr, bad.stderr
    stop = nomad(dev, "job", "stop", "cli-cron")  # Nomad: no evaluation for a periodic job, nothing printed
    assert (stop.returncode, stop.stdout) == (0, ""), stop.stdout + stop.stderr
    assert call(dev.http_port, "DELETE", "/v1/job/cli-cron?purge=true").json()["EvalID"] == ""


def test_job_scale_changes_a_groups_count(dev, tmp_path):  # noqa: F811
    path = tmp_path / "scale.json"
    path.write_text(json.dumps({"Job": sleep_job("cli-scale", count=1)}))
    assert nomad(dev, "job", "run", str(path)).returncode == 0
    out = nomad(dev, "job", "scale", "cli-scale", "2")
    assert out.returncode == 0 and "complete" in out.stdout, out.stdout + out.stderr
    allocs = nomad(dev, "job", "allocs", "cli-scale")
    assert allocs.returncode == 0 and len(allocs.stdout.strip().splitlines()) == 3, allocs.stdout  # header + 2
    assert nomad(dev, "system", "reconcile", "summaries").stdout.strip() == "Reconciled job summaries"
    status = call(dev.http_port, "GET", "/v1/job/cli-scale/scale").json()
    assert status["TaskGroups"]["web"]["Desired"] == 2 and status["TaskGroups"]["web"]["Placed"] == 2
    assert call(dev.http_port, "GET", "/v1/job/cli-scale").json()["Version"] == 1
    assert nomad(dev, "job", "scale", "cli-scale", "web", "1").returncode == 0
    bad = nomad(dev, "job", "scale", "cli-scale", "nope", "1")
    assert bad.returncode == 1 and "Group nope not found within job" in bad.stderr  # Nomad's CLI check
    events = nomad(dev, "job", "scaling-events", "-verbose", "cli-scale")
    assert events.returncode == 0, events.stderr
    rows = events.stdout.splitlines()
    assert rows[0].split() == ["Task", "Group", "Count", "PrevCount", "Error", "Message", "Eval", "ID", "Date"]
    assert [r.split()[:9] for r in rows[1:]] == [["web", "1", "2", "false", "submitted", "using", "the", "Nomad",
                                                  "CLI"], ["web", "2", "1", "false", "submitted", "using", "the",
                                                           "Nomad", "CLI"]]
    assert call(dev.http_port, "PUT", "/v1/job/cli-scale/scale", {"Count": 1}).status == 400
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-scale").returncode == 0


def test_job_scale_and_revert_roll_the_allocations_updated_in_place_into_the_new_deployment(dev, tmp_path):  # noqa: F811
    path = tmp_path / "inplace.json"
    path.write_text(json.dumps({"Job": sleep_job("cli-inplace", count=2)}))
    assert nomad(dev, "job", "run", str(path)).returncode == 0  # waits for its deployment to succeed

    def deployed(version: int) -> dict | None:
        d = call(dev.http_port, "GET", "/v1/job/cli-inplace/deployment").json()
        return d if d and d["JobVersion"] == version and d["Status"] == "successful" else None

    def row(dep: dict) -> list[str]:
        out = nomad(dev, "deployment", "status", dep["ID"][:8])
        assert out.returncode == 0, out.stderr
        table = section(out.stdout, "Deployed")
        assert columns(table[0])[:5] == ["Task Group", "Desired", "Placed", "Healthy", "Unhealthy"]
        return columns(table[1])[:5]

    assert nomad(dev, "job", "scale", "cli-inplace", "web", "3").returncode == 0
    # As Nomad's: the two running are updated in place into the scale's deployment, healthy again.
    up = wait_for(lambda: deployed(1), "the scale's deployment to succeed", PLACE_DEADLINE_S)
    assert row(up) == ["web", "3", "3", "3", "0"]
    allocs = call(dev.http_port, "GET", f"/v1/deployment/allocations/{up['ID']}").json()
    assert len([a for a in allocs if a["ClientStatus"] == "running"]) == 3
    # A revert to count 2: a deployment of its own, which the two left join.
    assert nomad(dev, "job", "revert", "cli-inplace", "0").returncode == 0
    down = wait_for(lambda: deployed(2), "the revert's deployment to succeed", PLACE_DEADLINE_S)
    assert row(down) == ["web", "2", "2", "2", "0"]
    assert nomad(dev, "job", "stop", "-purge", "-detach", "cli-inplace").returncode == 0


def test_monitor_streams_the_agents_log_lines_at_its_own_level(dev):  # noqa: F811
    import select

    mon = subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", "monitor",
                            "-log-level=debug"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    try:
        def seen() -> bool:
            nonlocal got
            call(dev.http_port, "GET", "/v1/jobs?marker=monitor-test")  # logged at DEBUG by the agent
            ready, _, _ = select.select([mon.stdout], [], [], 0.5)
            if ready:
                got += os.read(mon.stdout.fileno(), 65536)  # type: ignore[union-attr]
            return any(b"marker=monitor-test" in line and b"[DEBUG]" in line for line in got.splitlines())
        wait_for(seen, "the request's DEBUG line in the monitor", PLACE_DEADLINE_S, dev.detail)
    finally:
        mon.kill()
        mon.wait()
    bad = call(dev.http_port, "GET", "/v1/agent/monitor?log_level=chatty")
    assert (bad.status, bad.text) == (400, "Unknown log level: chatty")
    other = call(dev.http_port, "GET", "/v1/agent/monitor?node_id=someone-else")
    assert other.status == 400


def test_alloc_status_shows_rescheduling_as_nomad_does(monkeypatch):
    """Reschedule Attempts (a limited policy), Replacement Alloc ID and Reschedule Eligibility, from the
    allocation and its follow-up evaluation."""
    import time as _time

    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS

    now = _time.time()
    wait_until = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(now + 95))
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: {"WaitUntil": wait_until})
    finished = _time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", _time.gmtime(now - 10))
    alloc = {"TaskGroup": "g", "NextAllocation": "abcdef0123456789", "FollowupEvalID": "ev-1",
             "TaskStates": {"t": {"FinishedAt": finished}}, "ModifyTime": int(now * 1e9),
             "Job": {"TaskGroups": [{"Name": "g",
                                     "ReschedulePolicy": {"Attempts": 3, "Interval": 3600 * 10**9}}]},
             "RescheduleTracker": {"Events": [{"RescheduleTime": int((now - 7200) * 1e9)},  # outside the hour
                                              {"RescheduleTime": int((now - 60) * 1e9)}]}}
    rows = dict(cli_jobs._reschedule_rows("http://x", alloc, verbose=False))
    assert rows["Reschedule Attempts"] == "1/3" and rows["Replacement Alloc ID"] == "abcdef01"
    assert re.fullmatch(r"1m3[45]s from now", rows["Reschedule Eligibility"]), rows
    # Unlimited (no attempts to count), nothing replaced it, no follow-up: no lines.
    assert cli_jobs._reschedule_rows("http://x", {"TaskGroup": "g", "RescheduleTracker": {"Events": [{}]}},
                                     verbose=False) == []
    # Its follow-up evaluation's time has passed (it ran and replaced it): Nomad's futureEvalTimePretty
    # prints nothing, not "now".
    past = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(now - 30))
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: {"WaitUntil": past})
    assert "Reschedule Eligibility" not in dict(cli_jobs._reschedule_rows("http://x", alloc, verbose=False))


def test_the_job_flag_of_alloc_logs_and_fs_takes_a_running_allocation_of_the_job(monkeypatch):
    """Nomad's getRandomJobAlloc: a running allocation of the job at random, else its newest; an error when
    the job has none."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    allocs: list[dict[str, Any]] = []
    asked: list[tuple[str, Any]] = []

    def request(addr: str, method: str, path: str, *a: Any, **k: Any) -> Any:
        asked.append((path, k.get("namespace")))
        return allocs

    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, ident, **_: {"ID": "web", "Namespace": "prod"})
    monkeypatch.setattr(cli_jobs, "request", request)
    allocs[:] = [{"ID": "a1", "ClientStatus": "complete", "CreateIndex": 5},
                 {"ID": "a2", "ClientStatus": "running", "CreateIndex": 3},
                 {"ID": "a3", "ClientStatus": "running", "CreateIndex": 4}]
    assert {cli_jobs.random_job_alloc("http://x", "we")["ID"] for _ in range(40)} == {"a2", "a3"}
    assert asked[0] == ("/v1/job/web/allocations", "prod")
    allocs[:] = [{"ID": "a1", "ClientStatus": "failed", "CreateIndex": 5},
                 {"ID": "a2", "ClientStatus": "complete", "CreateIndex": 7}]
    assert cli_jobs.random_job_alloc("http://x", "web")["ID"] == "a2"
    allocs[:] = []
    with pytest.raises(cli_jobs.CliError, match='job "web" doesn\'t exist or it has no allocations'):
        cli_jobs.random_job_alloc("http://x", "web")


def test_alloc_restart_all_tasks_refuses_a_task_and_asks_the_node_for_all_of_them(monkeypatch):
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    for args in (["-all-tasks", "a1", "web"], ["-all-tasks", "-task", "web", "a1"]):
        with pytest.raises(cli_jobs.CliError, match="The -all-tasks option is not allowed when restarting a "
                                                    "specific task."):
            cli_jobs.alloc_restart("http://x", args)
    sent: list[Any] = []
    monkeypatch.setattr(cli_jobs, "_alloc_task_op", lambda addr, args, what, extra: (
        {"_task": "", "all-tasks": "-all-tasks" in args}, "http://node/v1/client/allocation/a1/restart"))
    monkeypatch.setattr(cli_jobs, "_put_json", lambda url, body: sent.append(body))
    cli_jobs.alloc_restart("http://x", ["-all-tasks", "a1"])
    cli_jobs.alloc_restart("http://x", ["a1"])
    assert sent == [{"TaskName": "", "AllTasks": True}, {"TaskName": "", "AllTasks": False}]


def test_job_restart_refuses_to_reschedule_a_sysbatch_job_as_nomads(monkeypatch) -> None:
    # Nomad's job restart: -reschedule is for batch, service and system jobs only; nothing is stopped.
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    calls: list[Any] = []
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, ident, not_found="": {"ID": ident,
                                                                                      "Type": "sysbatch"})
    monkeypatch.setattr(cli_jobs, "request", lambda *a, **k: calls.append(a) or [])
    refused = r'^Jobs of type "sysbatch" are not allowed to be rescheduled'
    with pytest.raises(cli_jobs.CliError, match=refused):
        cli_jobs.job_restart("http://x", ["-reschedule", "-yes", "sweep"])
    assert calls == []


def test_alloc_and_node_status_show_the_ephemeral_disk_where_nomad_shows_disk(monkeypatch) -> None:
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    alloc = {"ID": "a1", "EvalID": "e1", "Name": "j.g[0]", "NodeID": "n1", "JobID": "j",
             "ClientStatus": "running", "DesiredStatus": "run", "TaskGroup": "g",
             "Resources": {"CPU": 100, "MemoryMB": 64, "DiskMB": 300},
             "TaskStates": {"t": {"State": "running"}}}
    node = {"ID": "n1", "Name": "n1", "Status": "ready", "SchedulingEligibility": "eligible",
            "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192},
                              "Disk": {"DiskMB": 10240}},
            "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0},
                                  "Disk": {"DiskMB": 2048}}}
    stopped = {**alloc, "ID": "a0", "ClientStatus": "complete", "DesiredStatus": "stop"}
    answers = {"/v1/allocation/a1": alloc, "/v1/node/n1": node, "/v1/node/n1/allocations": [alloc, stopped]}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    at = out.index("Task Resources:")
    assert columns(out[at + 1]) == ["CPU", "Memory", "Disk", "Addresses"]
    assert columns(out[at + 2]) == ["100 MHz", "64 MiB", "300 MiB"]  # no stats (no node address): reserved
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    at = out.index("Allocated Resources")
    assert columns(out[at + 1]) == ["CPU", "Memory", "Disk", "Alloc Count"]
    assert columns(out[at + 2]) == ["100/4000 MHz", "64 MiB/8.0 GiB", "300 MiB/8.0 GiB", "1"]  # running only


def test_self_names_the_agents_own_node_for_node_status_drain_and_eligibility(monkeypatch):
    """Nomad's getLocalNodeID: stats.client.node_id of /v1/agent/self; a server-only agent is refused."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    agent: dict[str, Any] = {"stats": {"client": {"node_id": "n-self"}}}
    puts: list[tuple[str, Any]] = []

    def request(addr: str, method: str, path: str, body: Any = None, **k: Any) -> Any:
        if path == "/v1/agent/self":
            return agent
        if method == "PUT":
            puts.append((path, body))
            return {}
        return {"ID": "n-self", "Name": "me", "Status": "ready"}

    monkeypatch.setattr(cli_jobs, "request", request)
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, ident, **_: {"ID": ident})
    assert cli_jobs.node_status("http://x", ["-self", "-json"]).startswith('{\n    "ID": "n-self"')
    cli_jobs.node_eligibility("http://x", ["-self", "-disable"])
    cli_jobs.node_drain("http://x", ["-self", "-enable", "-yes", "-detach"])
    assert [p for p, _ in puts] == ["/v1/node/n-self/eligibility", "/v1/node/n-self/drain"]
    for args in (["-self", "-disable", "other"], ["-disable"]):
        with pytest.raises(cli_jobs.CliError, match="Node ID must be specified if -self isn't being used"):
            cli_jobs.node_eligibility("http://x", args)
    agent["stats"] = {"nomad": {}}
    for cmd, args in ((cli_jobs.node_status, ["-self"]), (cli_jobs.node_drain, ["-self", "-enable", "-yes"]),
                      (cli_jobs.node_eligibility, ["-self", "-enable"])):
        # Nomad prints getLocalNodeID's error bare (command/helpers.go), with no prefix of its own.
        with pytest.raises(cli_jobs.CliError, match=r"^Nomad not running in client mode$"):
            cmd("http://x", args)


def test_a_one_character_node_id_is_refused_before_any_lookup(monkeypatch):
    """Nomad's node status/drain/eligibility: "Identifier must contain at least two characters." (exit 1)."""
    from runtime import cli_jobs

    def request(*a: Any, **k: Any) -> Any:
        raise AssertionError("no request expected")

    monkeypatch.setattr(cli_jobs, "request", request)
    for cmd, args in ((cli_jobs.node_status, ["5"]), (cli_jobs.node_drain, ["-enable", "-yes", "5"]),
                      (cli_jobs.node_eligibility, ["-disable", "5"])):
        with pytest.raises(cli_jobs.CliError, match=r"^Identifier must contain at least two characters\.$"):
            cmd("http://x", args)


def test_alloc_status_lists_an_ambiguous_prefix_and_other_alloc_commands_refuse_it(monkeypatch):
    """Nomad's alloc status: one character is refused; a prefix of several allocations (in two namespaces
    with -namespace '*') lists them as formatAllocListStubs on stdout and exits 0; alloc stop, logs, ...
    print the same table as their error (exit 1)."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS

    stubs = [{"ID": f"ab{c}00000-0000-4000-8000-000000000000", "EvalID": "e", "NodeID": "n1234567-x",
              "NodeName": "vm", "TaskGroup": "g", "JobVersion": 0, "DesiredStatus": "run",
              "ClientStatus": "running", "Namespace": ns, "CreateIndex": i}
             for i, (c, ns) in enumerate((("1", "a"), ("2", "b")))]

    def request(addr: str, method: str, path: str, *a: Any, **k: Any) -> Any:
        assert (method, path, k.get("prefix")) == ("GET", "/v1/allocations", "ab"), (method, path, k)
        return stubs

    monkeypatch.setattr(cli_jobs, "request", request)
    with pytest.raises(cli_jobs.CliError, match=r"^Identifier must contain at least two characters\.$"):
        cli_jobs.alloc_status("http://x", ["a"])
    with pytest.raises(cli_jobs.CliError, match=r"^This command takes one of the following argument "
                                                r"conditions:\n \* A single <allocation>\n"):
        cli_jobs.alloc_status("http://x", [])
    out = cli_jobs.alloc_status("http://x", ["ab"])
    assert out.startswith("Prefix matched multiple allocations\n\nID        Node ID   Task Group"), out
    assert "ab200000  n1234567  g" in out and "ab100000" in out
    with pytest.raises(cli_jobs.CliError, match=r"^Prefix matched multiple allocations\n\nID  ") as e:
        cli_jobs.alloc_stop("http://x", ["ab"])
    assert "ab100000" in str(e.value)
    # no argument with -json (or -t): every allocation, as Allocations().List
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: stubs if (
        method, path, k.get("prefix")) == ("GET", "/v1/allocations", None) else None)
    assert [a["ID"] for a in json.loads(cli_jobs.alloc_status("http://x", ["-json"]))] == [
        s["ID"] for s in stubs]


def test_eval_and_deployment_status_list_an_ambiguous_prefix_as_nomads_tables(monkeypatch):
    """Nomad's eval status (formatEvalList) and deployment commands (formatDeployments): several matches
    are listed as a table in the error; one character is refused before any lookup."""
    from runtime import cli, cli_deployments, cli_jobs

    assert cli.COMMANDS
    evals = [{"ID": f"cd{c}00000-0000-4000-8000-000000000000", "Priority": 50, "TriggeredBy": "job-register",
              "JobID": "web", "Namespace": ns, "Status": "complete"} for c, ns in (("1", "a"), ("2", "b"))]
    deps = [{"ID": f"cd{c}00000-0000-4000-8000-000000000000", "JobID": "web", "JobVersion": 0,
             "Status": "successful", "StatusDescription": "ok"} for c in "12"]

    def request(addr: str, method: str, path: str, *a: Any, **k: Any) -> Any:
        return {"/v1/evaluations": evals, "/v1/deployments": deps}[path]

    monkeypatch.setattr(cli_jobs, "request", request)
    with pytest.raises(cli_jobs.CliError, match=r"^Prefix matched multiple evaluations\n\nID  +Priority  +"
                                                r"Triggered By  +Job ID  +Namespace") as e:
        cli_jobs.eval_status("http://x", ["cd"])
    assert "cd100000  50        job-register  web     a" in str(e.value)
    with pytest.raises(cli_jobs.CliError, match=r"^Prefix matched multiple deployments\n\nID  +Job ID") as e:
        cli_deployments.deployment_status("http://x", ["cd"])
    assert "cd200000" in str(e.value)
    with pytest.raises(cli_jobs.CliError, match=r"^Identifier must contain at least two characters\.$"):
        cli_jobs.eval_status("http://x", ["c"])
    with pytest.raises(cli_jobs.CliError, match=r"^Error retrieving deployment: Identifier must contain"):
        cli_deployments.deployment_fail("http://x", ["c"])


def test_node_config_says_nomads_words_for_misuse_and_a_server_agent(monkeypatch) -> None:
    """Nomad's node_config.go: the flags' misuse with the help hint, and the agent's error under
    "Error querying server list: " / "Error updating server list: " (a server-only agent answers 501)."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS

    def request(addr: str, method: str, path: str, *a: Any, **k: Any) -> Any:
        raise cli_jobs.CliError("Unexpected response code: 501 (Invalid method)")

    monkeypatch.setattr(cli_jobs, "request", request)
    hint = "\nFor additional help try 'nomad node config -help'"
    for args, said in (([], "The '-servers' or '-update-servers' flag(s) must be set" + hint),
                       (["-update-servers"], "If the '-update-servers' flag is set, at least one server "
                                             "argument must be provided" + hint),
                       (["-servers"],
                        "Error querying server list: Unexpected response code: 501 (Invalid method)"),
                       (["-servers", "-update-servers", "a:4647"],
                        "Error updating server list: Unexpected response code: 501 (Invalid method)")):
        with pytest.raises(cli_jobs.CliError) as got:
            cli_jobs.node_config("http://x", args)
        assert str(got.value) == said, args


def test_node_status_shows_driver_health_as_nomad_does(monkeypatch) -> None:
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    node = {"ID": "n1", "Name": "n1", "Status": "ready", "SchedulingEligibility": "eligible", "Drivers": {
        "exec": {"Detected": True, "Healthy": False, "HealthDescription": "Failed to discover cgroup mount point",
                 "UpdateTime": "2027-01-15T08:01:00.123456Z"},
        "raw_exec": {"Detected": True, "Healthy": True, "HealthDescription": "Healthy",
                     "UpdateTime": "2027-01-15T08:00:00.000000Z"},
        "docker": {"Detected": False, "Healthy": False, "HealthDescription": "disabled"}}}
    answers = {"/v1/node/n1": node, "/v1/node/n1/allocations": []}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert [line for line in out if line.startswith("Driver Status")] == [
        "Driver Status = exec (unhealthy),raw_exec"]
    out = cli_jobs.node_status("http://x", ["-verbose", "n1"]).splitlines()
    assert not any(line.startswith("Driver Status") for line in out)
    at = out.index("Drivers")
    assert columns(out[at + 1]) == ["Driver", "Detected", "Healthy", "Message", "Time"]
    assert columns(out[at + 2]) == ["docker", "false", "false", "disabled"]
    assert columns(out[at + 3]) == ["exec", "true", "false", "Failed to discover cgroup mount point",
                                    "2027-01-15T08:01:00Z"]
    assert columns(out[at + 4]) == ["raw_exec", "true", "true", "Healthy", "2027-01-15T08:00:00Z"]
    short = cli_jobs.node_status("http://x", ["-short", "n1"]).splitlines()
    assert short[-1].split("=")[1].strip() == "exec,raw_exec"


def test_node_status_verbose_ends_with_the_attributes_and_the_meta_as_nomad_does(monkeypatch) -> None:
    """Nomad's formatNode -verbose: no Host Volumes line in the summary (a table instead, when any),
    and outputAllocInfo's Attributes then Meta sections after the allocations."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    node = {"ID": "n1", "Name": "n1", "Status": "ready", "SchedulingEligibility": "eligible",
            "Attributes": {"kernel.name": "linux", "cpu.arch": "amd64"}, "Meta": {"rack": "r1", "zone": "z"}}
    answers = {"/v1/node/n1": node, "/v1/node/n1/allocations": []}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    out = cli_jobs.node_status("http://x", ["-verbose", "n1"]).splitlines()
    assert not any(line.startswith("Host Volumes") for line in out)
    at = out.index("Allocations")
    assert out[at:] == ["Allocations", "No allocations placed", "", "Attributes", "cpu.arch    = amd64",
                        "kernel.name = linux", "", "Meta", "rack = r1", "zone = z"]
    node["Meta"] = {}
    assert cli_jobs.node_status("http://x", ["-verbose", "n1"]).splitlines()[-2:] == ["Meta", "<none>"]
    plain = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert [line.split("=")[1].strip() for line in plain if line.startswith("Host Volumes")] == ["<none>"]


def test_job_status_shows_evaluations_and_the_blocked_placement_failure_as_nomad_does(monkeypatch) -> None:
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    failed = {"web": {"NodesEvaluated": 2, "NodesExhausted": 2, "DimensionExhausted": {"memory": 2},
                      "CoalescedFailures": 0}}
    evals = [{"ID": "e1aaaaaa-0000", "Priority": 50, "TriggeredBy": "job-register", "Status": "complete",
              "FailedTGAllocs": failed, "CreateIndex": 10},
             {"ID": "e2bbbbbb-0000", "Priority": 50, "TriggeredBy": "queued-allocs", "Status": "blocked",
              "CreateIndex": 11}]
    answers = {"/v1/job/web": {"ID": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
                               "SubmitTime": 0, "Status": "pending"},
               "/v1/job/web/summary": {"Summary": {"web": {k: 0 for k in (
                   "Queued", "Starting", "Running", "Failed", "Complete", "Lost", "Unknown")}}},
               "/v1/job/web/evaluations": evals, "/v1/job/web/deployment": None,
               "/v1/job/web/allocations": []}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    out = cli_jobs.job_status("http://x", ["web"])
    assert "Evaluations" not in out.splitlines()
    assert out.split("Placement Failure\n")[1].split("\n\n")[0] == (
        'Task Group "web":\n  * Resources exhausted on 2 nodes\n  * Dimension "memory" exhausted on 2 nodes')
    shown = cli_jobs.job_status("http://x", ["-evals", "web"]).splitlines()
    at = shown.index("Evaluations")
    assert [line.split() for line in shown[at + 1:at + 4]] == [
        ["ID", "Priority", "Triggered", "By", "Status", "Placement", "Failures"],
        ["e1aaaaaa", "50", "job-register", "complete", "true"],
        ["e2bbbbbb", "50", "queued-allocs", "blocked", "N/A", "-", "In", "Progress"]]
    evals[1]["Status"] = "complete"  # nothing blocked: no Placement Failure section
    assert "Placement Failure" not in cli_jobs.job_status("http://x", ["web"])


def test_eval_status_and_list_say_in_progress_for_a_blocked_evaluation_and_show_its_failures(
        monkeypatch) -> None:
    """Nomad's evalFailureStatus: a blocked evaluation's "Placement Failures" is "N/A - In Progress" in
    ``eval status`` and ``eval list``; ``eval status`` still lists the failures it holds."""
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    failed = {"g": {"NodesEvaluated": 2, "NodesFiltered": 2, "CoalescedFailures": 2,
                    "ConstraintFiltered": {"${attr.kernel.name} = windows": 2}}}
    blocked = {"ID": "b1cccccc-1111-2222-3333-444444444444", "Priority": 50, "TriggeredBy": "queued-allocs",
               "Status": "blocked", "StatusDescription": "created to place remaining allocations",
               "Type": "service", "JobID": "cons", "Namespace": "default", "FailedTGAllocs": failed,
               "PreviousEval": "a0", "CreateIndex": 11, "CreateTime": 0, "ModifyTime": 0}
    answers = {f"/v1/evaluation/{blocked['ID']}": blocked, f"/v1/evaluation/{blocked['ID']}/allocations": [],
               "/v1/evaluations": [blocked]}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": blocked["ID"]})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    out = cli_jobs.eval_status("http://x", ["b1cccccc"])
    out = out[0] if isinstance(out, tuple) else out
    assert "Placement Failures = N/A - In Progress" in out
    assert "Status Description = created to place remaining allocations" in out
    assert 'Task Group "g" (failed to place 3 allocations):' in out
    assert '  * Constraint "${attr.kernel.name} = windows": 2 nodes excluded by filter' in out
    listed = cli_jobs.eval_list("http://x", []).splitlines()
    assert listed[1].split()[-4:] == ["N/A", "-", "In", "Progress"]
