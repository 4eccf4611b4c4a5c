"""The ``python-nomad`` client library (PyPI), unmodified, against real agents, used as a user would.

A ``-dev`` agent for the agent, nodes, node, status, regions, operator raft,
jobs, job, allocations, evaluations, system and metrics endpoints; a
three-server cluster for the same reads and a job registered through a
follower (forwarded to the leader).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_agent_process import AgentProc, agents, free_port, wait_for  # noqa: F401
from tests.test_http_jobs import PLACE_DEADLINE_S, dev, sleep_job  # noqa: F401
from tests.test_server_cluster import CLUSTER_DEADLINE_S, get_json, server_config

nomad = pytest.importorskip("nomad", reason="python-nomad is in the test extras (pip install -e .[test])")
exceptions = pytest.importorskip("nomad.api.exceptions")

pytestmark = pytest.mark.timeout(120)
CLIENT_TIMEOUT_S = 10  # python-nomad's own default is 5 s; a loaded CI machine gets more


def client(agent: AgentProc, monkeypatch: Any) -> Any:
    for var in ("NOMAD_ADDR", "NOMAD_REGION", "NOMAD_TOKEN", "NOMAD_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)  # the library reads them; the test names its agent
    return nomad.Nomad(host="127.0.0.1", port=agent.http_port, timeout=CLIENT_TIMEOUT_S)


def test_agent_status_regions_operator_nodes_system_and_metrics(dev, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    me = n.agent.get_agent()
    assert {"config", "member", "stats"} <= set(me)
    members = n.agent.get_members()["Members"]
    assert len(members) == 1 and members[0]["Status"] == "alive"
    leader = n.status.leader.get_leader()
    assert leader and n.status.peers.get_peers() == [leader]
    assert n.regions.get_regions() == ["global"]
    servers = n.operator.get_configuration()["Servers"]
    assert [s["Address"] for s in servers] == [leader] and servers[0]["Leader"] is True
    assert n.operator.get_configuration(stale=True)["Servers"] == servers

    nodes = wait_for(lambda: [x for x in n.nodes.get_nodes() if x["Status"] == "ready"], "a ready node")
    node_id = nodes[0]["ID"]
    assert n.nodes.get_nodes(prefix=node_id[:4])[0]["ID"] == node_id
    assert n.node.get_node(node_id)["ID"] == node_id and node_id in n.node
    full = n.node.get_node(node_id)
    assert full.get("SecretID", "") == ""  # Nomad blanks the node secret on a read
    assert full["DrainStrategy"] is None and full["LastDrain"] is None and full["StatusDescription"] == ""
    assert {"TLSEnabled", "Links", "ComputedClass", "HostVolumes", "LastAllocUpdateIndex"} <= set(full)
    stub = n.nodes.get_nodes()[0]
    assert {"Address", "Version", "Drivers", "LastDrain", "StatusDescription", "Drain"} <= set(stub)
    assert stub["Address"] and stub["Version"] and "raw_exec" in stub["Drivers"]
    assert "NodeResources" not in stub and "Attributes" not in stub
    assert [x["ID"] for x in n.nodes.get_nodes(filter_='Status == "ready"')] == [node_id]
    assert n.nodes.get_nodes(filter_='Status == "down"') == []
    with pytest.raises(exceptions.BadRequestNomadException):
        n.nodes.get_nodes(filter_='Status ==')  # refused, never ignored
    rich = n.nodes.get_nodes(resources=True, os=True)[0]
    assert rich["NodeResources"]["Memory"]["MemoryMB"] > 0 and set(rich["Attributes"]) == {"os.name"}
    assert isinstance(n.node.get_allocations(node_id), list)

    assert n.system.initiate_garbage_collection() is True
    found = n.search.search(node_id[:6], "nodes")  # POST /v1/search
    assert found["Matches"] == {"nodes": [node_id]} and found["Truncations"] == {"nodes": False}
    metrics = n.metrics.get_metrics()
    assert {"Timestamp", "Gauges", "Counters", "Samples"} <= set(metrics)


def test_node_drain_and_eligibility_through_the_library(dev, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    ready = wait_for(lambda: [x for x in n.nodes.get_nodes() if x["Status"] == "ready"], "a ready node")
    node_id = ready[0]["ID"]

    reply = n.node.eligible_node(node_id, ineligible=True)
    assert {"NodeModifyIndex", "EvalIDs", "Index"} <= set(reply)
    assert n.node.get_node(node_id)["SchedulingEligibility"] == "ineligible"
    n.node.eligible_node(node_id, eligible=True)
    assert n.node.get_node(node_id)["SchedulingEligibility"] == "eligible"

    n.node.drain_node_with_spec(node_id, {"Deadline": 60 * 10**9, "IgnoreSystemJobs": True})
    got = n.node.get_node(node_id)
    assert got["DrainStrategy"]["Deadline"] == 60 * 10**9 and got["SchedulingEligibility"] == "ineligible"
    n.node.drain_node_with_spec(node_id, None, mark_eligible=True)
    got = n.node.get_node(node_id)
    assert not got["DrainStrategy"] and got["SchedulingEligibility"] == "eligible"

    n.node.drain_node(node_id, enable=True)  # the legacy ?enable= form: a forced drain, as Nomad maps it
    assert n.node.get_node(node_id)["DrainStrategy"]["Deadline"] < 0
    n.node.drain_node(node_id, enable=False)
    assert not n.node.get_node(node_id)["DrainStrategy"]
    n.node.eligible_node(node_id, eligible=True)

    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.node.eligible_node("00000000-0000-0000-0000-000000000000", eligible=True)


def test_jobs_job_allocations_and_evaluations_through_the_library(dev, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    reg = n.jobs.register_job({"Job": sleep_job("pn-web", count=1)})
    assert {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Index"} <= set(reg)
    assert "pn-web" in [j["ID"] for j in n.jobs.get_jobs()] and "pn-web" in n.jobs
    assert n.jobs.get_jobs(prefix="pn-")[0]["ID"] == "pn-web"
    job = n.job.get_job("pn-web")
    assert job["ID"] == "pn-web" and "pn-web" in n.job

    def running() -> list[dict[str, Any]]:
        return [a for a in n.job.get_allocations("pn-web") if a["ClientStatus"] == "running"]
    allocs = wait_for(running, "the job's allocation running", PLACE_DEADLINE_S, dev.detail)
    alloc = n.allocation.get_allocation(allocs[0]["ID"])
    assert alloc["JobID"] == "pn-web" and alloc["Job"]["ID"] == "pn-web"
    assert alloc["AllocatedResources"]["Tasks"]["sleeper"]["Cpu"]["CpuShares"] == 50
    assert {"DeploymentID", "FollowupEvalID", "NextAllocation", "RescheduleTracker"} <= set(alloc)
    with_res = n.allocations.get_allocations(prefix=allocs[0]["ID"], resources=True)[0]
    assert with_res["AllocatedResources"]["Tasks"]["sleeper"]["Memory"]["MemoryMB"] == 32
    assert {"Stable", "ParentID", "AllAtOnce", "Dispatched", "Periodic", "ParameterizedJob"} <= set(job)
    assert allocs[0]["ID"] in [a["ID"] for a in n.allocations.get_allocations()]
    assert [a["ID"] for a in n.allocations.get_allocations(prefix=allocs[0]["ID"][:8])] == [allocs[0]["ID"]]
    assert [a["ID"] for a in n.allocations.get_allocations(filter_='JobID == "pn-web" and ClientStatus == '
                                                                   '"running"')] == [allocs[0]["ID"]]
    assert [j["ID"] for j in n.jobs.get_jobs(filter_='Type == "service" and ID contains "pn-"')] == ["pn-web"]
    assert len(n.allocations.get_allocations(per_page="1")) == 1

    evals = n.job.get_evaluations("pn-web")
    assert reg["EvalID"] in [e["ID"] for e in evals]
    assert n.evaluation.get_evaluation(reg["EvalID"])["JobID"] == "pn-web"
    assert allocs[0]["ID"] in [a["ID"] for a in n.evaluation.get_allocations(reg["EvalID"])]
    assert reg["EvalID"] in [e["ID"] for e in n.evaluations.get_evaluations()]
    assert n.job.get_summary("pn-web")["Summary"]["web"]["Running"] == 1
    assert [v["ID"] for v in n.job.get_versions("pn-web")["Versions"]] == ["pn-web"]
    # A new service job rolls out through a deployment (the default update block: 10 s healthy).
    (dep,) = n.job.get_deployments("pn-web")
    assert n.job.get_deployment("pn-web")["ID"] == dep["ID"] and dep["JobID"] == "pn-web"
    assert n.deployment.get_deployment(dep["ID"])["TaskGroups"]["web"]["DesiredTotal"] == 1
    assert dep["ID"] in [d["ID"] for d in n.deployments.get_deployments(prefix=dep["ID"][:8])]
    assert [a["ID"] for a in n.deployment.get_deployment_allocations(dep["ID"])] == [allocs[0]["ID"]]

    update = n.job.register_job("pn-web", {"Job": sleep_job("pn-web", count=1, Priority=60)})
    assert "EvalID" in update and n.job.get_job("pn-web")["Priority"] == 60

    with pytest.raises(exceptions.BadRequestNomadException):
        n.jobs.register_job({"Job": {"ID": "pn-bad", "TaskGroups": []}})
    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.job.get_job("pn-missing")
    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.allocation.get_allocation("00000000-0000-0000-0000-000000000000")

    usage = n.client.allocation.read_allocation_stats(allocs[0]["ID"])  # served by the client agent
    assert {"ResourceUsage", "Tasks", "Timestamp"} <= set(usage)
    assert n.client.allocation.restart_allocation(allocs[0]["ID"]) == {"Index": 0}
    wait_for(lambda: n.allocation.get_allocation(allocs[0]["ID"])["TaskStates"]["sleeper"]["Restarts"] == 1,
             "the task restarted in place", PLACE_DEADLINE_S, dev.detail)
    with pytest.raises(exceptions.BaseNomadException):
        n.client.allocation.signal_allocation(allocs[0]["ID"], "SIGNOPE")
    stopped = n.allocation.stop_allocation(allocs[0]["ID"])  # Alloc.Stop: it is replaced
    assert {"EvalID", "Index"} <= set(stopped)
    assert n.evaluation.get_evaluation(stopped["EvalID"])["TriggeredBy"] == "alloc-stop"
    wait_for(lambda: [a for a in running() if a["ID"] != allocs[0]["ID"]], "a replacement running",
             PLACE_DEADLINE_S, dev.detail)

    assert "EvalID" in n.job.deregister_job("pn-web", purge=True)
    wait_for(lambda: "pn-web" not in [j["ID"] for j in n.jobs.get_jobs()], "the job purged")
    wait_for(lambda: all(a["ClientStatus"] == "complete" for a in n.allocations.get_allocations()
                         if a["JobID"] == "pn-web"), "its task stopped", PLACE_DEADLINE_S, dev.detail)


def test_node_evaluate_and_purge_through_the_library(dev, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    n.jobs.register_job({"Job": sleep_job("pn-purge", count=1)})

    def running() -> list[dict[str, Any]]:
        return [a for a in n.job.get_allocations("pn-purge") if a["ClientStatus"] == "running"]
    first = wait_for(running, "the job's allocation running", PLACE_DEADLINE_S, dev.detail)[0]
    node_id = first["NodeID"]

    ev = n.node.evaluate_node(node_id)  # Node.Evaluate: a node-update evaluation per job on the node
    assert {"EvalIDs", "EvalCreateIndex", "NodeModifyIndex", "Index"} <= set(ev) and ev["EvalIDs"]
    got = n.evaluation.get_evaluation(ev["EvalIDs"][0])
    assert got["JobID"] == "pn-purge" and got["TriggeredBy"] == "node-update" and got["NodeID"] == node_id
    wait_for(lambda: n.evaluation.get_evaluation(ev["EvalIDs"][0])["Status"] == "complete", "the eval done")
    assert [a["ID"] for a in running()] == [first["ID"]]  # re-evaluating a healthy node moves nothing

    purged = n.node.purge_node(node_id)  # Node.Deregister
    assert {"EvalIDs", "EvalCreateIndex", "NodeModifyIndex", "Index"} <= set(purged) and purged["EvalIDs"]
    # The running client is told "node not found" on its next heartbeat and registers again, same ID;
    # its allocation was lost with the node and the job runs again.
    wait_for(lambda: any(x["ID"] == node_id and x["Status"] == "ready" for x in n.nodes.get_nodes()),
             "the node registered again", PLACE_DEADLINE_S, dev.detail)
    assert n.allocation.get_allocation(first["ID"])["ClientStatus"] == "lost"
    wait_for(running, "the job running again", PLACE_DEADLINE_S, dev.detail)

    for call in (n.node.purge_node, n.node.evaluate_node):
        with pytest.raises(exceptions.URLNotFoundNomadException):
            call("00000000-0000-0000-0000-000000000000")
    n.job.deregister_job("pn-purge", purge=True)
    wait_for(lambda: not running(), "its task stopped", PLACE_DEADLINE_S, dev.detail)


def test_job_versions_revert_stable_and_evaluate_through_the_library(dev, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    n.jobs.register_job({"Job": sleep_job("pn-ver", count=0)})
    upd = n.job.register_job("pn-ver", {"Job": sleep_job("pn-ver", count=0, Priority=60)})
    job = n.job.get_job("pn-ver")
    assert job["Version"] == 1 and job["Priority"] == 60 and upd["JobModifyIndex"] == job["JobModifyIndex"]
    versions = n.job.get_versions("pn-ver")["Versions"]
    assert [v["Version"] for v in versions] == [1, 0] and versions[1]["Priority"] == 50

    assert {"Index"} <= set(n.job.stable_job("pn-ver", 1, True))
    assert n.job.get_job("pn-ver")["Stable"] is True
    reverted = n.job.revert_job("pn-ver", 0)
    assert {"EvalID", "JobModifyIndex", "Index"} <= set(reverted)
    job = n.job.get_job("pn-ver")
    assert job["Version"] == 2 and job["Priority"] == 50 and job["Stable"] is False
    with pytest.raises(exceptions.BaseNomadException):
        n.job.revert_job("pn-ver", 2)  # the current version
    with pytest.raises(exceptions.BaseNomadException):
        n.job.revert_job("pn-ver", 0, enforce_prior_version=1)

    planned = n.job.plan_job("pn-ver", {"Job": sleep_job("pn-ver", count=2)}, diff=True)
    assert planned["Annotations"]["DesiredTGUpdates"]["web"]["Place"] == 2 and planned["Diff"]["Type"] == "Edited"
    assert n.job.get_job("pn-ver")["TaskGroups"][0]["Count"] == 0  # a dry run
    parsed = n.jobs.parse('job "pn-hcl" {\n group "g" {\n task "t" {\n driver = "raw_exec"\n'
                          ' config { command = "/bin/true" }\n }\n }\n}\n', canonicalize=True)
    assert parsed["ID"] == "pn-hcl" and parsed["TaskGroups"][0]["Tasks"][0]["Driver"] == "raw_exec"
    ev = n.job.evaluate_job("pn-ver")
    assert n.evaluation.get_evaluation(ev["EvalID"])["JobID"] == "pn-ver"
    assert n.system.reconcile_summaries() is True
    for call in (n.job.dispatch_job, n.job.periodic_job):
        with pytest.raises(exceptions.BaseNomadException):
            call("pn-ver")  # neither parameterized nor periodic

    cron = {**sleep_job("pn-cron"), "Type": "batch", "Periodic": {"Spec": "0 4 * * *", "TimeZone": "UTC"}}
    assert n.jobs.register_job({"Job": cron})["EvalID"] == ""
    forced = n.job.periodic_job("pn-cron")
    assert n.evaluation.get_evaluation(forced["EvalID"])["JobID"].startswith("pn-cron/periodic-")
    n.job.deregister_job("pn-cron", purge=True)

    param = {**sleep_job("pn-param"), "Type": "batch",
             "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["who"]}}
    param["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/bin/sh", "args": ["-c", "echo $NOMAD_META_who"]}
    assert n.jobs.register_job({"Job": param})["EvalID"] == ""  # the parent never runs itself
    assert [j["ParameterizedJob"] for j in n.jobs.get_jobs(prefix="pn-param")] == [True]
    got = n.job.dispatch_job("pn-param", meta={"who": "ops"})
    assert got["DispatchedJobID"].startswith("pn-param/dispatch-") and got["EvalID"]
    child = n.job.get_job(got["DispatchedJobID"])
    assert child["ParentID"] == "pn-param" and child["Dispatched"] is True and child["Meta"]["who"] == "ops"
    wait_for(lambda: [a for a in n.job.get_allocations(got["DispatchedJobID"]) if a["ClientStatus"] == "complete"],
             "the dispatched job done", PLACE_DEADLINE_S, dev.detail)
    with pytest.raises(exceptions.BadRequestNomadException):
        n.job.dispatch_job("pn-param", meta={"who": "ops", "extra": "x"})
    n.job.deregister_job("pn-param", purge=True)
    with pytest.raises(exceptions.BaseNomadException):  # a bad schedule is refused, not run at once
        n.jobs.register_job({"Job": {**sleep_job("pn-badcron"), "Type": "batch",
                                     "Periodic": {"Enabled": True, "Spec": "*/5 * *"}}})
    assert "pn-badcron" not in n.jobs
    n.job.deregister_job("pn-ver", purge=True)


def test_three_server_cluster_through_the_library(agents, tmp_path, monkeypatch):  # noqa: F811
    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    cfgs = [server_config(tmp_path, i, join, serf=serfs[i]) for i in range(3)]
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]

    def leader() -> str | None:
        leaders = {get_json(p, "/v1/status/leader") for p in procs}
        peers = [sorted(get_json(p, "/v1/status/peers") or []) for p in procs]
        one = len(leaders) == 1 and not leaders & {"", None} and all(len(x) == 3 for x in peers)
        return next(iter(leaders)) if one else None
    lead = wait_for(leader, "one Raft cluster of three", CLUSTER_DEADLINE_S,
                    lambda: "\n".join(p.detail() for p in procs))
    follower = next(p for p, c in zip(procs, cfgs, strict=True) if f"127.0.0.1:{c['rpc']}" != lead)

    n = client(follower, monkeypatch)
    assert n.status.leader.get_leader() == lead
    assert sorted(n.status.peers.get_peers()) == sorted(f"127.0.0.1:{c['rpc']}" for c in cfgs)
    servers = n.operator.get_configuration()["Servers"]
    assert len(servers) == 3 and [s["Address"] for s in servers if s["Leader"]] == [lead]
    assert len(n.agent.get_members()["Members"]) == 3 and n.regions.get_regions() == ["global"]

    reg = n.jobs.register_job({"Job": sleep_job("pn-cluster", count=0)})  # a follower forwards the write
    assert reg["EvalID"]
    for p in procs:  # a linearizable read on every server sees the write
        assert client(p, monkeypatch).job.get_job("pn-cluster")["ID"] == "pn-cluster"
    assert n.evaluation.get_evaluation(reg["EvalID"])["JobID"] == "pn-cluster"
    assert n.nodes.get_nodes() == [] and n.allocations.get_allocations() == []
    assert "EvalID" in n.job.deregister_job("pn-cluster", purge=True)
    assert "pn-cluster" not in [j["ID"] for j in n.jobs.get_jobs()]
