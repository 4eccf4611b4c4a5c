"""The job, allocation, evaluation and node drain/eligibility HTTP API against real ``-dev`` agents.

One ``-dev`` agent (server and client in one process, raw_exec enabled) is
shared by the module; each test leaves it as it found it (jobs purged, node
eligible).  Every wait has a deadline; the agent is killed by PID at the end.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import signal
import time
from typing import Any

import gevent
import pytest

from tests.test_agent_process import STEP_DEADLINE_S, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(90)

# Placement, then the client starting the task: well under a second here; the
# bound is for a loaded machine.
PLACE_DEADLINE_S = 20.0
# Slack on a blocking query's own wait: Raft answers a parked Watch on its
# next tick (0.1 s) after the deadline, plus HTTP and scheduling on 2 cores.
BLOCK_SLACK_S = 1.5
JITTER_FRACTION = 16  # Nomad's structs.JitterFraction: up to wait/16 added
# Nomad's RPCHoldTimeout: a request that finds no leader is held this long (plus pauses of up to
# hold/JITTER_FRACTION) before "No cluster leader" (actors.http_api.RPC_HOLD_TIMEOUT_S).
RPC_HOLD_TIMEOUT_S = 5.0
NODE_ENDPOINT_HOLD_S = 1.5  # actors.server.node_endpoint.EndpointConfig.no_leader_hold_s


class Resp:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, headers

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(port: int, method: str, path: str, body: Any = None, raw: bytes | None = None,
         timeout_s: float = STEP_DEADLINE_S) -> Resp:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data)
        r = conn.getresponse()
        return Resp(r.status, r.read(), {k.lower(): v for k, v in r.getheaders()})
    finally:
        conn.close()


def sleep_job(job_id: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"], **extra,
            "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{
                "Name": "sleeper", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["60"]},
                "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}


def dev_agent_config(tmp: Any) -> tuple[list[str], int]:
    port = free_port()
    path = tmp / "ports.toml"
    path.write_text(f"enable_debug = true\n[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n"
                    "[telemetry]\npublish_node_metrics = true\npublish_allocation_metrics = true\n")
    return ["-dev", "-config", str(path)], port


def stop_all_jobs(port: int) -> None:
    """Purge every job and wait for its tasks to stop, so no task outlives the agent."""
    for job in call(port, "GET", "/v1/jobs?namespace=*").json():
        call(port, "DELETE", f"/v1/job/{job['ID']}?purge=true&namespace={job['Namespace']}")
    wait_for(lambda: not [a for a in call(port, "GET", "/v1/allocations?namespace=*").json()
                          if a["ClientStatus"] in ("pending", "running")],
             "every task stopped", PLACE_DEADLINE_S)


@contextlib.contextmanager
def running_agent(args: list[str], port: int) -> Any:
    """An agent started with *args* (HTTP on *port*), healthy; at the end its jobs are purged and it
    stops on SIGTERM (killed by PID whatever happens)."""
    agent = AgentProc(args)
    agent.http_port = port
    try:
        agent.wait_healthy()
        yield agent
        stop_all_jobs(port)
        agent.send(signal.SIGTERM)
        agent.wait_exit()
    finally:
        agent.kill()


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    args, port = dev_agent_config(tmp_path_factory.mktemp("dev"))
    with running_agent(args, port) as agent:
        yield agent


def node_id(port: int) -> str:
    return wait_for(lambda: next((n["ID"] for n in call(port, "GET", "/v1/nodes").json()
                                  if n["Status"] == "ready"), None), "a ready node")


# ---------------------------------------------------------------- jobs


def test_registered_job_is_read_back_listed_and_evaluated(dev):
    port = dev.http_port
    r = call(port, "PUT", "/v1/jobs", {"Job": sleep_job("api-read", count=0)})
    assert r.status == 200, r.text
    reg = r.json()
    assert set(reg) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Warnings", "Index"}
    assert reg["Warnings"] == "" and int(r.headers["x-nomad-index"]) == reg["Index"]

    job = call(port, "GET", "/v1/job/api-read")
    assert job.status == 200
    body = job.json()
    assert body["ID"] == "api-read" and body["Type"] == "service" and body["Region"] == "global"
    res = body["TaskGroups"][0]["Tasks"][0]["Resources"]  # every Resources key, as Nomad's; unset ones zero
    assert (res["CPU"], res["MemoryMB"], res["MemoryMaxMB"], res["Cores"]) == (50, 32, 0, 0)
    assert body["TaskGroups"][0]["EphemeralDisk"] == {"Sticky": False, "SizeMB": 300, "Migrate": False}
    assert body["SubmitTime"] > 10**18  # Unix nanoseconds, as Nomad's JSON has it
    assert job.headers["x-nomad-knownleader"] == "true" and job.headers["x-nomad-lastcontact"] == "0"

    stubs = call(port, "GET", "/v1/jobs?prefix=api-r").json()
    assert [s["ID"] for s in stubs] == ["api-read"]
    assert {"ID", "Name", "Type", "Priority", "Status", "JobSummary", "CreateIndex", "ModifyIndex",
            "JobModifyIndex", "SubmitTime", "Stop"} <= set(stubs[0])
    assert "TaskGroups" not in stubs[0]
    assert call(port, "GET", "/v1/jobs?prefix=zzz").json() == []

    evals = call(port, "GET", "/v1/job/api-read/evaluations").json()
    assert reg["EvalID"] in [e["ID"] for e in evals]
    ev = call(port, "GET", f"/v1/evaluation/{reg['EvalID']}").json()
    assert ev["JobID"] == "api-read" and ev["TriggeredBy"] == "job-register"
    assert [e["ID"] for e in call(port, "GET", f"/v1/evaluations?prefix={reg['EvalID'][:8]}").json()] \
        == [reg["EvalID"]]

    summary = call(port, "GET", "/v1/job/api-read/summary").json()
    assert summary["JobID"] == "api-read" and set(summary["Summary"]["web"]) >= {"Queued", "Running", "Lost"}

    update = call(port, "POST", "/v1/job/api-read", {"Job": sleep_job("api-read", count=0, Priority=70)})
    assert update.status == 200 and call(port, "GET", "/v1/job/api-read").json()["Priority"] == 70

    stop = call(port, "DELETE", "/v1/job/api-read")
    assert stop.status == 200 and "EvalID" in stop.json()
    assert call(port, "GET", "/v1/job/api-read").json()["Stop"] is True
    assert call(port, "DELETE", "/v1/job/api-read?purge=true").status == 200
    gone = call(port, "GET", "/v1/job/api-read")
    assert (gone.status, gone.text) == (404, "job not found")


def test_job_is_placed_and_its_allocations_are_listed_by_job_node_and_id(dev):
    """Needs the eval broker and the client task runner wired into the agent (issue 7)."""
    port = dev.http_port
    node = node_id(port)
    reg = call(port, "PUT", "/v1/jobs", {"Job": sleep_job("api-place", count=2)}).json()

    def running() -> list[dict[str, Any]] | None:
        allocs = call(port, "GET", "/v1/job/api-place/allocations").json()
        ok = len(allocs) == 2 and all(a["ClientStatus"] == "running" for a in allocs)
        return allocs if ok else None
    allocs = wait_for(running, "two running allocations", PLACE_DEADLINE_S, dev.detail)
    assert all("Job" not in a and a["JobType"] == "service" and a["NodeID"] == node for a in allocs)
    assert {a["EvalID"] for a in allocs} == {reg["EvalID"]}

    full = call(port, "GET", f"/v1/allocation/{allocs[0]['ID']}").json()
    assert full["Job"]["ID"] == "api-place" and full["TaskGroup"] == "web" and full["CreateTime"] > 10**18
    assert full["Resources"]["DiskMB"] == 300 and full["AllocatedResources"]["Shared"]["DiskMB"] == 300
    on_node = call(port, "GET", f"/v1/node/{node}/allocations").json()
    assert {a["ID"] for a in allocs} <= {a["ID"] for a in on_node} and all("Job" in a for a in on_node)
    listed = call(port, "GET", f"/v1/allocations?prefix={allocs[0]['ID'][:6]}").json()
    assert allocs[0]["ID"] in [a["ID"] for a in listed]
    assert [a["ID"] for a in call(port, "GET", f"/v1/evaluation/{reg['EvalID']}/allocations").json()] \
        == sorted(a["ID"] for a in allocs)
    assert call(port, "GET", "/v1/job/api-place/summary").json()["Summary"]["web"]["Running"] == 2
    assert call(port, "GET", "/v1/jobs?prefix=api-place").json()[0]["Status"] == "running"

    assert call(port, "DELETE", "/v1/job/api-place").status == 200
    wait_for(lambda: all(a["DesiredStatus"] == "stop" and a["ClientStatus"] == "complete"
                         for a in call(port, "GET", "/v1/job/api-place/allocations").json()),
             "the stopped job's tasks complete", PLACE_DEADLINE_S, dev.detail)
    call(port, "DELETE", "/v1/job/api-place?purge=true")


def test_a_job_stored_before_ephemeral_disks_reads_back_with_nomads_default() -> None:
    from actors.http_jobs import alloc_out, job_out

    old = {"ID": "old", "TaskGroups": [{"Name": "g", "Tasks": []}]}
    disk = job_out(old)["TaskGroups"][0]["EphemeralDisk"]
    assert disk == {"Sticky": False, "SizeMB": 300, "Migrate": False}
    assert "EphemeralDisk" not in old["TaskGroups"][0]  # the stored record is not changed
    a = alloc_out({"ID": "a", "Job": old, "TaskGroup": "g", "Resources": {"CPU": 1, "MemoryMB": 2}})
    assert a["Resources"]["DiskMB"] == 0 and a["AllocatedResources"]["Shared"]["DiskMB"] == 0


# ---------------------------------------------------------------- blocking queries and headers


def test_blocking_query_wakes_on_a_change_with_the_new_index(dev):
    """Each answer comes with a newer index, and the registration wakes the query long before its wait."""
    port = dev.http_port
    index = int(call(port, "GET", "/v1/jobs").headers["x-nomad-index"])
    started = time.monotonic()
    waiter = gevent.spawn(call, port, "GET", f"/v1/jobs?index={index}&wait=20s", None, None, 30.0)
    gevent.sleep(0.2)  # let it park: the registration below is what should wake it
    call(port, "PUT", "/v1/jobs", {"Job": sleep_job("api-block", count=0)})
    woke = waiter.get(timeout=STEP_DEADLINE_S)
    while True:  # an unrelated change may have woken it first: it then names a newer index
        assert woke.status == 200 and int(woke.headers["x-nomad-index"]) > index
        if "api-block" in [j["ID"] for j in woke.json()]:
            break
        index = int(woke.headers["x-nomad-index"])
        woke = call(port, "GET", f"/v1/jobs?index={index}&wait=20s", timeout_s=30.0)
    assert time.monotonic() - started < 10.0  # far below the 20 s wait: the change woke it
    call(port, "DELETE", "/v1/job/api-block?purge=true")


def test_blocking_query_returns_at_its_wait_when_nothing_changes(dev):
    port = dev.http_port
    node = node_id(port)
    path = f"/v1/node/{node}"
    index = int(call(port, "GET", path).headers["x-nomad-index"])
    wait_s = 0.5
    started = time.monotonic()
    r = call(port, "GET", f"{path}?index={index}&wait={int(wait_s * 1000)}ms")
    elapsed = time.monotonic() - started
    assert r.status == 200 and r.json()["ID"] == node
    if int(r.headers["x-nomad-index"]) == index:  # nothing changed: it waited its wait and its jitter at most
        assert wait_s <= elapsed <= wait_s * (1 + 1 / JITTER_FRACTION) + BLOCK_SLACK_S
    else:  # the node did change meanwhile (a heartbeat's status write): then it must be newer
        assert int(r.headers["x-nomad-index"]) > index


def test_a_read_that_finds_nothing_answers_404_with_the_index_to_block_on(dev):
    """Nomad's handlers set the query meta before their 404 (setMeta, then "job not found"): a reader
    waiting for a job to appear blocks on the index the 404 named, and the registration wakes it."""
    port = dev.http_port
    for path in ("/v1/job/api-appears", "/v1/allocation/nope", "/v1/evaluation/nope", "/v1/node/nope",
                 "/v1/deployment/00000000-0000-0000-0000-000000000000"):
        r = call(port, "GET", path)
        assert r.status == 404 and int(r.headers["x-nomad-index"]) >= 1, (path, r.headers)
        assert r.headers["x-nomad-knownleader"] == "true" and "x-nomad-lastcontact" in r.headers
    index = int(call(port, "GET", "/v1/job/api-appears").headers["x-nomad-index"])
    waiter = gevent.spawn(call, port, "GET", f"/v1/job/api-appears?index={index}&wait=20s", None, None, 30.0)
    gevent.sleep(0.2)  # let it park: the registration below is what should wake it
    call(port, "PUT", "/v1/jobs", {"Job": sleep_job("api-appears", count=0)})
    woke = waiter.get(timeout=STEP_DEADLINE_S)
    assert woke.status == 200 and int(woke.headers["x-nomad-index"]) > index
    call(port, "DELETE", "/v1/job/api-appears?purge=true")


def test_the_other_reads_that_find_nothing_name_the_index_too(dev):
    # Nomad's namespace, node pool, variable and scaling-policy handlers set the query meta before
    # their 404 as well.
    for path in ("/v1/namespace/nope", "/v1/node/pool/nope", "/v1/var/nope/at/all",
                 "/v1/scaling/policy/00000000-0000-0000-0000-000000000000"):
        r = call(dev.http_port, "GET", path)
        assert r.status == 404 and int(r.headers["x-nomad-index"]) >= 1, (path, r.status, r.headers)


def test_stale_reads_and_query_option_errors(dev):
    port = dev.http_port
    assert call(port, "GET", "/v1/jobs?stale").status == 200
    assert call(port, "GET", "/v1/allocations?stale=true").status == 200
    bad = call(port, "GET", "/v1/jobs?stale=maybe")
    assert bad.status == 400 and "stale" in bad.text
    assert call(port, "GET", "/v1/jobs?index=x").status == 400
    assert call(port, "GET", "/v1/jobs?index=1&wait=soon").status == 400


# ---------------------------------------------------------------- error paths


@pytest.mark.parametrize(("method", "path", "body", "status", "text"), [
    ("PUT", "/v1/jobs", b"{not json", 400, "Request body is not valid JSON"),
    ("PUT", "/v1/jobs", b"", 400, "Request body is empty"),
    ("PUT", "/v1/jobs", b"[1, 2]", 400, "must be a JSON object"),
    ("PUT", "/v1/jobs", b'{"Nope": {}}', 400, "Job must be specified"),
    ("PUT", "/v1/jobs", b'{"Job": []}', 400, "Job: must be an object"),
    ("PUT", "/v1/jobs", json.dumps({"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t"}]}]}}).encode(), 400, "TaskGroups[0].Tasks[0].Driver: missing"),
    ("PUT", "/v1/jobs", json.dumps({"Job": {**sleep_job("x"), "Type": "daemon"}}).encode(), 400, "Type:"),
    ("PUT", "/v1/jobs", json.dumps({"Job": {**sleep_job("x"), "Priority": "high"}}).encode(), 400,
     "Priority: must be an integer"),
    ("PUT", "/v1/job/a", json.dumps({"Job": sleep_job("b")}).encode(), 400, "Job ID does not match name"),
    # A number where a list belongs: named by the validation, not an internal error on the way to it.
    ("PUT", "/v1/jobs", b'{"Job": {"ID": "x", "TaskGroups": 5}}', 400, "TaskGroups: must be a list"),
    ("PUT", "/v1/jobs", b'{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": 7}]}}', 400,
     "TaskGroups[0].Tasks: must be a list"),
    ("PUT", "/v1/validate/job", b'{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": 7}]}}', 200,
     '"ValidationErrors":["TaskGroups[0].Tasks: must be a list'),  # Nomad: the errors in a 200
    ("PUT", "/v1/jobs", json.dumps({"Job": {**sleep_job("x"), "TaskGroups": [
        {**sleep_job("x")["TaskGroups"][0], "Networks": 5, "Services": 3}]}}).encode(), 400,
     "must be a list"),
    # Nomad's jobForceEvaluate: a body, when there is one, names the job of the path.
    ("PUT", "/v1/job/x/evaluate", b'{"JobID": "y"}', 400, "JobID not same as job name"),
    ("PUT", "/v1/job/x/evaluate", b'{"EvalOptions": {"ForceReschedule": true}}', 400,
     "Job ID must be specified"),
    ("GET", "/v1/job/no-such-job", None, 404, "job not found"),
    ("DELETE", "/v1/job/no-such-job", None, 404, "job not found"),
    ("GET", "/v1/job/no-such-job/summary", None, 404, "job not found"),
    ("GET", "/v1/allocation/00000000-0000-0000-0000-000000000000", None, 404, "alloc not found"),
    ("GET", "/v1/evaluation/00000000-0000-0000-0000-000000000000", None, 404, "eval not found"),
    ("PUT", "/v1/node/00000000-0000-0000-0000-000000000000/drain", b'{"DrainSpec": null}', 404,
     "node not found"),
    ("PUT", "/v1/node/00000000-0000-0000-0000-000000000000/eligibility", b'{"Eligibility": "eligible"}',
     404, "node not found"),
    ("DELETE", "/v1/jobs", None, 405, "Invalid method"),
    ("GET", "/v1/node/00000000-0000-0000-0000-000000000000/drain", None, 405, "Invalid method"),
    ("PUT", "/v1/jobs", b"x" * (2 * 1024 * 1024), 413, "Request body too large"),
    # A number in the query is Go's ParseUint: "²" passes str.isdigit but not int(); 2**64 is past uint64.
    ("GET", "/v1/jobs?index=%C2%B2", None, 400, "Invalid index"),
    ("GET", "/v1/jobs?index=18446744073709551616", None, 400, "Invalid index"),
    ("GET", "/v1/deployments?next_token=%C2%B2.x", None, 400, "invalid next_token"),
    ("GET", "/v1/service/web?choose=%C2%B2|k", None, 400, "choose must be in the form <number>|<key>"),
    ("PUT", "/v1/operator/scheduler/configuration?cas=18446744073709551616",
     b'{"SchedulerAlgorithm": "binpack"}', 400, "Error parsing cas value"),
    ("PUT", "/v1/operator/autopilot/configuration?cas=%C2%B2", b"{}", 400, "Error parsing cas value"),
    ("PUT", "/v1/var/a/b?cas=18446744073709551616", b'{"Items": {"k": "v"}}', 400,
     "failed to parse cas value"),
    ("PUT", "/v1/operator/raft/transfer-leadership?address=127.0.0.1:%C2%B2", None, 400, "IP:port format"),
    ("PUT", "/v1/agent/servers?address=127.0.0.1:%C2%B2", None, 400, "invalid server address"),
    # JSON nested past what the decoder (and a stored job's later reads) can recurse through.
    *[("PUT", path, b"[" * 5000 + b"]" * 5000, 400, "exceeded max depth") for path in (
        "/v1/jobs", "/v1/node/00000000-0000-0000-0000-000000000000/drain", "/v1/var/a/b", "/v1/search",
        "/v1/operator/scheduler/configuration", "/v1/operator/autopilot/configuration",
        "/v1/client/metadata")],
    # 500 levels in a task's Config: was acknowledged, and then every read of the job was a 500.
    ("PUT", "/v1/jobs", json.dumps({"Job": {**sleep_job("deep"), "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec",
         "Config": functools.reduce(lambda v, _: {"a": v}, range(500), 1)}]}]}}).encode(),
     400, "exceeded max depth (100)"),
])
def test_bad_requests_get_nomads_code_and_a_one_line_reason(dev, method, path, body, status, text):
    r = call(dev.http_port, method, path, raw=body)
    assert (r.status, text in r.text) == (status, True), r.text
    assert "\n" not in r.text.strip()
    assert call(dev.http_port, "GET", "/v1/agent/health").status == 200  # still serving
    assert dev.proc.poll() is None


def test_unknown_job_and_node_have_empty_sub_lists_as_in_nomad(dev):
    port = dev.http_port
    assert call(port, "GET", "/v1/job/no-such-job/allocations").json() == []
    assert call(port, "GET", "/v1/job/no-such-job/evaluations").json() == []
    assert call(port, "GET", "/v1/node/no-such-node/allocations").json() == []


# ---------------------------------------------------------------- drain and eligibility


def test_drain_and_eligibility_endpoints_update_the_node(dev):
    port = dev.http_port
    node = node_id(port)
    path = f"/v1/node/{node}"
    r = call(port, "PUT", f"{path}/drain", {"DrainSpec": {"Deadline": 600 * 10**9, "IgnoreSystemJobs": True},
                                            "Meta": {"message": "test"}})
    assert r.status == 200, r.text
    assert set(r.json()) >= {"NodeModifyIndex", "EvalIDs", "EvalCreateIndex", "Index"}
    assert int(r.headers["x-nomad-index"]) == r.json()["Index"]
    got = call(port, "GET", path).json()
    assert got["DrainStrategy"]["Deadline"] == 600 * 10**9
    assert got["DrainStrategy"]["IgnoreSystemJobs"] is True
    assert got["SchedulingEligibility"] == "ineligible"
    assert [n["Drain"] for n in call(port, "GET", "/v1/nodes").json() if n["ID"] == node] == [True]

    refused = call(port, "PUT", f"{path}/eligibility", {"Eligibility": "eligible"})
    assert refused.status == 500 and "draining" in refused.text

    assert call(port, "POST", f"{path}/drain", {"DrainSpec": None, "MarkEligible": True}).status == 200
    got = call(port, "GET", path).json()
    assert not got["DrainStrategy"] and got["SchedulingEligibility"] == "eligible"

    assert call(port, "PUT", f"{path}/eligibility", {"Eligibility": "ineligible"}).status == 200
    assert call(port, "GET", path).json()["SchedulingEligibility"] == "ineligible"
    assert call(port, "PUT", f"{path}/eligibility", {"Eligibility": "eligible"}).status == 200
    assert call(port, "GET", path).json()["SchedulingEligibility"] == "eligible"

    for body, field in [({"Eligibility": "maybe"}, "invalid scheduling eligibility"),
                        ({"Eligibility": 1}, "invalid scheduling eligibility")]:
        bad = call(port, "PUT", f"{path}/eligibility", body)
        assert bad.status == 400 and field in bad.text
    for body, field in [({"DrainSpec": "1h"}, "DrainSpec"), ({"DrainSpec": {"Deadline": "1h"}}, "Deadline"),
                        ({"DrainSpec": None, "MarkEligible": "yes"}, "MarkEligible")]:
        bad = call(port, "PUT", f"{path}/drain", body)
        assert bad.status == 400 and field in bad.text


def test_purge_and_evaluate_refuse_unknown_nodes_and_other_methods(dev):
    port = dev.http_port
    node_id(port)
    unknown = "/v1/node/00000000-0000-0000-0000-000000000000"
    for action in ("purge", "evaluate"):
        r = call(port, "PUT", f"{unknown}/{action}")
        assert (r.status, r.text) == (404, "node not found"), action
        assert call(port, "GET", f"{unknown}/{action}").status == 405


# ---------------------------------------------------------------- no leader


def test_without_a_leader_reads_and_writes_are_held_then_fail_and_stale_reads_answer(agents, tmp_path):  # noqa: F811
    """A server waiting for two more (bootstrap_expect = 3) has no leader: each read and write is held
    for Nomad's RPCHoldTimeout (5 s, getLeaderForRPC) in case one is elected, then 500 "No cluster
    leader" -- never a hang; ?stale answers at once."""
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "a.toml").write_text("\n".join([
        f'data_dir = "{tmp_path / "data"}"', 'bind_addr = "127.0.0.1"', 'name = "lonely"',
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        "[server]", "enabled = true", "bootstrap_expect = 3"]) + "\n")
    a = agents(["-config", str(tmp_path / "a.toml")], http_port=ports["http"])

    def up() -> bool:
        try:
            return call(ports["http"], "GET", "/v1/status/leader").status == 200
        except OSError:
            return False
    wait_for(up, "the HTTP API", 20, a.detail)
    def timed(method: str, path: str, body: Any) -> tuple[Resp, float]:
        started = time.monotonic()
        return call(ports["http"], method, path, body), time.monotonic() - started

    asks = [gevent.spawn(timed, method, path, body) for method, path, body in [
        ("GET", "/v1/jobs", None), ("GET", "/v1/nodes", None), ("GET", "/v1/jobs?index=1&wait=30s", None),
        ("PUT", "/v1/jobs", {"Job": sleep_job("x")}),
        ("PUT", f"/v1/node/{'0' * 8}-0000-0000-0000-{'0' * 12}/purge", None),
        ("PUT", f"/v1/node/{'0' * 8}-0000-0000-0000-{'0' * 12}/evaluate", None)]]
    for ask in asks:
        r, took = ask.get(timeout=RPC_HOLD_TIMEOUT_S * 2 + STEP_DEADLINE_S)
        assert (r.status, r.text) == (500, "No cluster leader"), r.text
        # The last try may start just before the hold ends and take its own wait: purge's node
        # endpoint holds each for NODE_ENDPOINT_HOLD_S itself.
        assert RPC_HOLD_TIMEOUT_S <= took < (RPC_HOLD_TIMEOUT_S * (1 + 1 / JITTER_FRACTION)
                                             + NODE_ENDPOINT_HOLD_S + BLOCK_SLACK_S)
    stale = call(ports["http"], "GET", "/v1/jobs?stale")
    assert stale.status == 200 and stale.json() == [] and stale.headers["x-nomad-knownleader"] == "false"


def test_cluster_writes_through_a_follower_and_losing_quorum_never_hangs(agents, tmp_path):  # noqa: F811
    """Three servers: a follower forwards writes and serves linearizable and blocking reads with the
    leader's meta; with the other two killed its reads and writes fail within the leader wait, then
    answer ``No cluster leader`` after Nomad's RPC hold (5 s), while ``?stale`` still reads its own
    state at once."""
    from tests.test_server_cluster import CLUSTER_DEADLINE_S, get_json, server_config

    serfs = [free_port() for _ in range(3)]
    cfgs = [server_config(tmp_path, i, [f"127.0.0.1:{p}" for p in serfs], serf=serfs[i]) for i in range(3)]
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]

    def leader() -> str | None:
        leaders = {get_json(p, "/v1/status/leader") for p in procs}
        return next(iter(leaders)) if len(leaders) == 1 and not leaders & {"", None} else None
    lead = wait_for(leader, "one leader", CLUSTER_DEADLINE_S, lambda: "\n".join(p.detail() for p in procs))
    follower = next(c["http"] for c in cfgs if f"127.0.0.1:{c['rpc']}" != lead)

    index = int(call(follower, "GET", "/v1/jobs").headers["x-nomad-index"])
    waiter = gevent.spawn(call, follower, "GET", f"/v1/jobs?index={index}&wait=20s", None, None, 30.0)
    reg = call(follower, "PUT", "/v1/jobs", {"Job": sleep_job("quorum", count=0)})
    assert reg.status == 200, reg.text
    woke = waiter.get(timeout=STEP_DEADLINE_S)
    assert int(woke.headers["x-nomad-index"]) > index
    read = call(follower, "GET", "/v1/job/quorum")
    assert read.status == 200 and read.headers["x-nomad-knownleader"] == "true"
    assert 0 <= int(read.headers["x-nomad-lastcontact"]) < 5000  # the leader heartbeats every 0.1 s

    for p, c in zip(procs, cfgs, strict=True):
        if c["http"] != follower:
            p.kill()
    leader_wait_s = 6.0  # actors.http_api.LEADER_WAIT_S: Raft's own forward timeout answers first

    def no_leader() -> bool:
        for method, path, body in [("GET", "/v1/jobs", None), ("PUT", "/v1/jobs", {"Job": sleep_job("q2")})]:
            started = time.monotonic()
            r = call(follower, method, path, body, timeout_s=leader_wait_s + 5)
            assert r.status == 500, r.text  # never a stale answer nor a write without a quorum
            assert time.monotonic() - started < leader_wait_s + BLOCK_SLACK_S, path
            if r.text != "No cluster leader":
                return False
        return True
    wait_for(no_leader, "No cluster leader", CLUSTER_DEADLINE_S)
    started = time.monotonic()
    assert call(follower, "GET", "/v1/job/quorum").text == "No cluster leader"
    assert time.monotonic() - started < RPC_HOLD_TIMEOUT_S * (1 + 1 / JITTER_FRACTION) + BLOCK_SLACK_S
    stale = call(follower, "GET", "/v1/job/quorum?stale")
    assert stale.status == 200 and stale.json()["ID"] == "quorum"
    assert stale.headers["x-nomad-knownleader"] == "false"


# ---------------------------------------------------------------- search


def test_prefix_search_finds_jobs_allocs_and_nodes_as_nomads_does(dev):
    port = dev.http_port
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("search-web", count=1)}).status == 200
    alloc = wait_for(lambda: next((a for a in call(port, "GET", "/v1/job/search-web/allocations").json()), None),
                     "an allocation of search-web", PLACE_DEADLINE_S, dev.detail)
    r = call(port, "POST", "/v1/search", {"Prefix": "search-w", "Context": "jobs"})
    assert r.status == 200 and r.headers["x-nomad-index"]
    body = r.json()
    assert body["Matches"] == {"jobs": ["search-web"]} and body["Truncations"] == {"jobs": False}
    # "all" with a hex prefix: every UUID context is searched; a job name prefix leaves them out.
    everywhere = call(port, "PUT", "/v1/search", {"Prefix": alloc["ID"][:7], "Context": "all"}).json()
    assert alloc["ID"] in everywhere["Matches"]["allocs"] and "evals" in everywhere["Matches"]
    by_name = call(port, "PUT", "/v1/search", {"Prefix": "search-", "Context": "all"}).json()["Matches"]
    assert by_name["jobs"] == ["search-web"] and "allocs" not in by_name and "nodes" not in by_name
    node = alloc["NodeID"]
    assert call(port, "PUT", "/v1/search", {"Prefix": node[:8], "Context": "nodes"}).json()["Matches"] == \
        {"nodes": [node]}
    bad = call(port, "PUT", "/v1/search", {"Prefix": "x", "Context": "widgets"})
    assert bad.status == 500 and b"context must be one of [allocs jobs nodes" in bad.body  # Nomad's 500
    assert call(port, "PUT", "/v1/search", {"Prefix": "x", "Context": "variables"}).status == 500  # "vars"
    assert call(port, "GET", "/v1/search").status == 405
    assert call(port, "PUT", "/v1/search", raw=b"{not json").status == 400
    call(port, "DELETE", "/v1/job/search-web?purge=true")


def test_prefix_search_of_every_namespace_finds_what_the_token_may_read_in_each():
    """``namespace=*``: every namespace's jobs and allocations (Nomad's ...ByIDPrefix of the wildcard),
    each kept only where the token may read-job (Nomad lists them all once ``*`` is readable)."""
    from types import SimpleNamespace

    from actors.acl import compile_acl, parse_policy
    from actors.http_search import search_query

    jobs = {"default/web": {"ID": "web", "Namespace": "default"},
            "dev/web": {"ID": "web", "Namespace": "dev"}, "prod/web-x": {"ID": "web-x", "Namespace": "prod"}}
    allocs = {"ab12cd34-1": {"Namespace": "dev"}, "ab12cd34-2": {"Namespace": "prod"}}
    st = SimpleNamespace(tables={"jobs": jobs, "allocs": allocs, "evals": {}, "nodes": {}},
                         table_index={"jobs": 3, "allocs": 4})
    matches, _, _ = search_query("web", ("jobs",), "*")(st)
    assert matches == {"jobs": ["web", "web", "web-x"]}  # one per namespace, as Nomad's IDs
    assert search_query("web", ("jobs",), "dev")(st)[0] == {"jobs": ["web"]}
    rules = 'namespace "*" { policy = "read" }\nnamespace "prod" { policy = "deny" }'
    acl = compile_acl([parse_policy(rules)])
    assert search_query("web", ("jobs",), "*", acl)(st)[0] == {"jobs": ["web", "web"]}
    assert search_query("ab12cd34", ("allocs",), "*", acl)(st)[0] == {"allocs": ["ab12cd34-1"]}


def test_search_truncates_at_twenty_and_rounds_odd_uuid_prefixes_down():
    from types import SimpleNamespace

    from actors.http_search import TRUNCATE_LIMIT, search_query

    jobs = {f"svc-{i:02d}": {"Namespace": "default"} for i in range(25)}
    allocs = {"ab12cd34-0000": {"Namespace": "default"}, "ab99": {"Namespace": "default"}}
    st = SimpleNamespace(tables={"jobs": jobs, "allocs": allocs, "evals": {}, "nodes": {}},
                         table_index={"jobs": 7, "allocs": 9})
    matches, truncations, index = search_query("svc-", ("jobs",), "default")(st)
    assert len(matches["jobs"]) == TRUNCATE_LIMIT == 20 and truncations["jobs"] is True and index == 9
    # "ab1" is odd: read as "ab", as Nomad's roundUUIDDownIfOdd, and kept when starting with "ab1"
    # (its getPrefixMatches).
    matches, _, _ = search_query("ab1", ("allocs",), "default")(st)
    assert matches["allocs"] == ["ab12cd34-0000"]
    assert search_query("zz", ("allocs",), "default")(st)[0] == {}  # not hex: left out
    assert search_query("svc-", ("jobs",), "other")(st)[0] == {"jobs": []}  # another namespace


def test_search_finds_variables_by_path_in_the_vars_context():
    from types import SimpleNamespace

    from actors.acl import compile_acl, parse_policy
    from actors.http_search import search_query

    variables = {f"{ns}/{p}": {"Namespace": ns, "Path": p}
                 for ns, p in (("default", "app/db"), ("default", "app/web"), ("default", "other"),
                               ("secret", "app/key"))}
    st = SimpleNamespace(tables={"variables": variables}, table_index={"variables": 4})
    matches, truncations, _ = search_query("app/", ("vars",), "default")(st)
    # Nomad's GetVariablesByPrefix reads every namespace, keeping those the token may read
    assert matches == {"vars": ["app/db", "app/key", "app/web"]} and truncations == {"vars": False}
    reader = compile_acl([parse_policy('namespace "default" { policy = "read" }')])
    assert search_query("app/", ("vars",), "default", reader)(st)[0] == {"vars": ["app/db", "app/web"]}


def test_prefix_search_lists_only_the_namespaces_the_token_holds_something_in():
    """Nomad's PrefixSearch filters the namespaces context by nsCapFilter (AllowNamespace): a namespace
    the token is denied, or holds nothing in, is not named to it."""
    from types import SimpleNamespace

    from actors.acl import compile_acl, parse_policy
    from actors.http_search import search_query

    st = SimpleNamespace(tables={"namespaces": {n: {"Name": n} for n in ("prod", "dev-1", "private")}},
                         table_index={"namespaces": 3})
    assert search_query("", ("namespaces",), "default")(st)[0] == {
        "namespaces": ["default", "dev-1", "private", "prod"]}  # no ACL: every one
    glob = compile_acl([parse_policy('namespace "*" { policy = "read" }\n'
                                     'namespace "prod" { policy = "deny" }\n'
                                     'namespace "priv*" { capabilities = ["deny"] }')])
    assert search_query("", ("namespaces",), "default", glob)(st)[0] == {"namespaces": ["default", "dev-1"]}
    only_default = compile_acl([parse_policy('namespace "default" { policy = "read" }')])
    assert search_query("p", ("namespaces",), "default", only_default)(st)[0] == {"namespaces": []}


# ---------------------------------------------------------------- task lifecycle


def test_a_prestart_task_writes_into_the_alloc_dir_before_the_main_task_reads_it(dev):
    port = dev.http_port
    job = {"ID": "api-lifecycle", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
        "Tasks": [{"Name": "main", "Driver": "raw_exec",  # listed first: the lifecycle orders, not the list
                   "Config": {"command": "/bin/sh", "args": ["-c", 'cat "$NOMAD_ALLOC_DIR/ready"']},
                   "Resources": {"CPU": 50, "MemoryMB": 32}},
                  {"Name": "init", "Driver": "raw_exec", "Lifecycle": {"Hook": "prestart", "Sidecar": False},
                   "Config": {"command": "/bin/sh",
                              "args": ["-c", 'sleep 0.3; echo prepared > "$NOMAD_ALLOC_DIR/ready"']},
                   "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200

    def done() -> dict[str, Any] | None:
        allocs = call(port, "GET", "/v1/job/api-lifecycle/allocations").json()
        return allocs[0] if allocs and allocs[0]["ClientStatus"] in ("complete", "failed") else None
    stub = wait_for(done, "the batch allocation finished", PLACE_DEADLINE_S, dev.detail)
    full = call(port, "GET", f"/v1/allocation/{stub['ID']}").json()
    assert full["ClientStatus"] == "complete", full["TaskStates"]
    assert full["AllocatedResources"]["TaskLifecycles"] == {"init": {"Hook": "prestart", "Sidecar": False},
                                                            "main": None}
    states = full["TaskStates"]
    assert states["init"]["FinishedAt"] <= states["main"]["StartedAt"]
    out = call(port, "GET", f"/v1/client/fs/cat/{stub['ID']}?path=alloc/logs/main.stdout.0")
    assert out.text == "prepared\n"
    call(port, "DELETE", "/v1/job/api-lifecycle?purge=true")


def test_a_sticky_disk_keeps_alloc_data_across_a_destructive_update_on_a_real_agent(dev):
    """raw_exec writes to ${NOMAD_ALLOC_DIR}/data; its replacement (a new version) finds it there."""
    port = dev.http_port
    script = 'echo "run $V" >> "$NOMAD_ALLOC_DIR/data/log"; echo here > "$NOMAD_TASK_DIR/mine"; exec sleep 60'

    def job(version: str) -> dict[str, Any]:
        j = sleep_job("api-sticky", Update={"MaxParallel": 0})
        g = j["TaskGroups"][0]
        g["EphemeralDisk"] = {"Sticky": True, "SizeMB": 200}
        g["Tasks"][0].update(Config={"command": "/bin/sh", "args": ["-c", script]}, Env={"V": version},
                             KillTimeout=1_000_000_000)
        return j

    def running_one(version: int) -> dict[str, Any] | None:
        allocs = [a for a in call(port, "GET", "/v1/job/api-sticky/allocations").json()
                  if a["DesiredStatus"] == "run" and a["JobVersion"] == version]
        return allocs[0] if len(allocs) == 1 and allocs[0]["ClientStatus"] == "running" else None

    def cat(alloc_id: str, path: str) -> str | None:
        r = call(port, "GET", f"/v1/client/fs/cat/{alloc_id}?path={path}")
        return r.text if r.status == 200 else None

    assert call(port, "PUT", "/v1/jobs", {"Job": job("1")}).status == 200
    first = wait_for(lambda: running_one(0), "the first allocation runs", PLACE_DEADLINE_S, dev.detail)
    wait_for(lambda: cat(first["ID"], "alloc/data/log") == "run 1\n", "it writes", PLACE_DEADLINE_S,
             dev.detail)
    assert call(port, "PUT", "/v1/jobs", {"Job": job("2")}).status == 200
    second = wait_for(lambda: running_one(1), "its replacement runs", PLACE_DEADLINE_S, dev.detail)
    assert second["PreviousAllocation"] == first["ID"] and second["NodeID"] == first["NodeID"]
    wait_for(lambda: cat(second["ID"], "alloc/data/log") == "run 1\nrun 2\n", "the data followed",
             PLACE_DEADLINE_S, dev.detail)
    assert cat(second["ID"], "sleeper/local/mine") == "here\n"
    call(port, "DELETE", "/v1/job/api-sticky?purge=true")


def test_memory_max_is_warned_about_while_oversubscription_is_off_and_reaches_the_task_when_on(dev):
    """Nomad's memory oversubscription through the API: register, validate and plan warn while the
    scheduler configuration does not allow it; once it does, the allocation carries the task's
    memory_max and the task sees NOMAD_MEMORY_MAX_LIMIT."""
    port = dev.http_port
    job = sleep_job("api-memmax")
    job["TaskGroups"][0]["Tasks"][0].update(
        Config={"command": "/bin/sh", "args": ["-c", 'echo "$NOMAD_MEMORY_LIMIT/$NOMAD_MEMORY_MAX_LIMIT" '
                                                     '> "$NOMAD_ALLOC_DIR/mem"; sleep 60']},
        Resources={"CPU": 50, "MemoryMB": 32, "MemoryMaxMB": 64})
    warning = ('1 warning:\n\n* Memory oversubscription is not enabled; Task "web.sleeper" memory_max value '
               "will be ignored. Update the Scheduler Configuration to allow oversubscription.")
    assert call(port, "PUT", "/v1/validate/job", {"Job": job}).json()["Warnings"] == warning
    assert call(port, "PUT", "/v1/job/api-memmax/plan", {"Job": job}).json()["Warnings"] == warning
    bad = {**job, "TaskGroups": [{**job["TaskGroups"][0], "Tasks": [
        {**job["TaskGroups"][0]["Tasks"][0], "Resources": {"CPU": 50, "MemoryMB": 32, "MemoryMaxMB": 16}}]}]}
    r = call(port, "PUT", "/v1/jobs", {"Job": bad})
    assert r.status == 400 and "MemoryMaxMB value (16) should be larger than MemoryMB value (32)" in r.text
    cfg = call(port, "GET", "/v1/operator/scheduler/configuration").json()["SchedulerConfig"]
    assert cfg["MemoryOversubscriptionEnabled"] is False
    assert call(port, "PUT", "/v1/operator/scheduler/configuration",
                {**cfg, "MemoryOversubscriptionEnabled": True}).status == 200
    try:
        reg = call(port, "PUT", "/v1/jobs", {"Job": job}).json()
        assert reg["Warnings"] == ""

        def written() -> str | None:
            allocs = call(port, "GET", "/v1/job/api-memmax/allocations").json()
            if not allocs or allocs[0]["ClientStatus"] != "running":
                return None
            r = call(port, "GET", f"/v1/client/fs/cat/{allocs[0]['ID']}?path=alloc/mem")
            return r.text.strip() or None if r.status == 200 else None
        assert wait_for(written, "the task's memory limits", PLACE_DEADLINE_S, dev.detail) == "32/64"
        alloc = call(port, "GET", "/v1/job/api-memmax/allocations").json()[0]
        full = call(port, "GET", f"/v1/allocation/{alloc['ID']}").json()
        assert full["AllocatedResources"]["Tasks"]["sleeper"]["Memory"] == {"MemoryMB": 32, "MemoryMaxMB": 64}
    finally:
        call(port, "PUT", "/v1/operator/scheduler/configuration",
             {**cfg, "MemoryOversubscriptionEnabled": False})
        call(port, "DELETE", "/v1/job/api-memmax?purge=true")


def test_the_jobs_list_pages_with_nomads_namespace_dot_id_token():
    import io
    import urllib.parse

    from actors.http_api import Request
    from actors.http_jobs import jobs_request
    from actors.scheduler.job import canonical_job
    from actors.state.store import StateStore, command
    from tests.one_server_api import api_over

    st = StateStore()
    for i, job_id in enumerate(("a", "b", "c")):
        st.apply(i + 1, command("job_register", job=canonical_job(sleep_job(job_id)), now=1.0))

    def page(query: str) -> Any:
        req = Request(method="GET", path="/v1/jobs", query={"stale": [""], **urllib.parse.parse_qs(query)},
                      url="/v1/jobs", environ={"wsgi.input": io.BytesIO(b"")})
        return jobs_request(req, api_over(st, acl_enabled=False))
    first = page("per_page=2")
    assert [j["ID"] for j in first.value] == ["a", "b"]
    assert ("X-Nomad-NextToken", "default.c") in first.headers
    assert [j["ID"] for j in page("per_page=2&next_token=default.c").value] == ["c"]


def test_a_submission_past_job_max_source_size_is_discarded_with_nomads_warning() -> None:
    """Nomad's submissionController: the source, the variables and the -var flags together against
    job_max_source_size; past it the job is registered without its source, and go-humanize's sizes
    in the warning."""
    from actors.http_api import CodedError
    from actors.http_jobs import _humanize_bytes, _submission

    sub = {"Source": "x" * 900, "Format": "hcl2", "VariableFlags": {"k": "v" * 49}, "Variables": "y" * 50}
    kept, warning = _submission(sub, 1000)
    assert warning == "" and kept is not None and kept["Source"] == "x" * 900
    kept, warning = _submission({**sub, "Variables": "y" * 51}, 1000)
    assert kept is None
    assert warning == "job source size of 1.0 kB exceeds maximum of 1.0 kB and will be discarded"
    assert [_humanize_bytes(n) for n in (9, 999, 1234, 15_000, 1_000_000, 1_250_000)] == \
        ["9 B", "999 B", "1.2 kB", "15 kB", "1.0 MB", "1.3 MB"]
    with pytest.raises(CodedError):
        _submission({"Source": 1}, 1000)
