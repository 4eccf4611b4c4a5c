"""client.node_max_allocs and client.default_ineligible (Nomad's NodeMaxAllocs and a new node's eligibility).

Placement (the scheduler's AllocsFit count check, "max allocation exceeded"),
the plan applier refusing an over-full plan, the node record the client's
registration makes, and the store keeping an existing node's eligibility.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from actors.client.messages import NodeSpec, Resources
from actors.client.node import ClientNodeConfig
from actors.scheduler.broker import pending_evals, plan_command
from actors.scheduler.scheduler import MAX_ALLOCS_EXCEEDED, max_allocs_exceeded
from actors.server.node_endpoint import node_record
from actors.state.store import command
from runtime import wire
from runtime.config import ClientConfig, Config
from tests.test_scheduler import Cluster, service


def _cap(c: Cluster, node_id: str, most: int) -> None:
    """The node registers again with NodeMaxAllocs (as its client does with client.node_max_allocs)."""
    c.apply("node_register", node={**c.state.tables["nodes"][node_id], "NodeMaxAllocs": most})


def _failed(c: Cluster) -> list[dict]:
    """The evaluations that failed placements (not the blocked ones they made, which keep the same
    failures, as Nomad's CreateBlockedEval does)."""
    return [e for e in c.state.tables["evals"].values() if e.get("FailedTGAllocs") and e["Status"] != "blocked"]


def test_max_allocs_exceeded_is_nomads_count_rule() -> None:
    assert not max_allocs_exceeded({"NodeMaxAllocs": 0}, 1000)
    assert not max_allocs_exceeded({}, 1000) and not max_allocs_exceeded(None, 3)
    assert not max_allocs_exceeded({"NodeMaxAllocs": 2}, 2)
    assert max_allocs_exceeded({"NodeMaxAllocs": 2}, 3)


def test_a_node_with_node_max_allocs_takes_no_more_and_the_rest_waits_with_the_reason() -> None:
    c = Cluster()
    a = c.node(0)  # room for 8 of these by CPU
    _cap(c, a, 2)
    c.register(**service(count=3))
    c.schedule()
    assert len(c.running("web")) == 2
    (ev,) = _failed(c)
    metrics = ev["FailedTGAllocs"]["g"]
    assert metrics["DimensionExhausted"] == {MAX_ALLOCS_EXCEEDED: 1} and metrics["NodesExhausted"] == 1
    assert [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    # Another node: the blocked evaluation places the third there.
    b = c.node(1)
    c.schedule()
    on = sorted(x["NodeID"] for x in c.running("web"))
    assert on == [a, a, b]


def test_every_jobs_live_allocations_count_and_terminal_ones_do_not() -> None:
    c = Cluster()
    a = c.node(0)
    _cap(c, a, 2)
    c.register(**service("one", count=1))
    c.register(**service("batch", count=1, Type="batch"))
    c.schedule()
    c.client("running")
    c.register(**service("late", count=1))
    c.schedule()
    assert c.running("late") == []
    assert _failed(c)[-1]["FailedTGAllocs"]["g"]["DimensionExhausted"] == {MAX_ALLOCS_EXCEEDED: 1}
    # The batch allocation completes: it holds no slot, and the node has room for one more.
    (done,) = c.running("batch")
    c.apply("alloc_client_update", allocs=[{"ID": done["ID"], "ClientStatus": "complete"}])
    c.register(**service("later", count=1))
    c.schedule()
    assert [x["NodeID"] for x in c.running("later")] == [a]


def test_a_plan_replacing_an_allocation_on_a_full_node_frees_its_slot_first() -> None:
    c = Cluster()
    a = c.node(0)
    _cap(c, a, 2)
    c.register(**service(count=2, Type="batch"))
    c.schedule()
    c.client("running")
    # A destructive update: each replacement takes the slot its predecessor leaves.
    c.register(**service(count=2, cpu=600, Type="batch"))
    c.schedule()
    c.client("running")
    live = c.running("web")
    assert len(live) == 2 and {x["Resources"]["CPU"] for x in live} == {600}
    assert all(x["NodeID"] == a for x in live)


def test_a_system_job_is_not_placed_on_a_full_node() -> None:
    c = Cluster()
    a, b = c.node(0), c.node(1)
    _cap(c, a, 1)
    c.register(**service("web", count=1, Constraints=[{"LTarget": "${node.unique.id}", "RTarget": a,
                                                       "Operand": "="}]))
    c.schedule()
    c.register(**service("sys", count=1, Type="system"))
    c.schedule()
    assert [x["NodeID"] for x in c.running("sys")] == [b]
    assert _failed(c)[-1]["FailedTGAllocs"]["g"]["DimensionExhausted"] == {MAX_ALLOCS_EXCEEDED: 1}


def test_the_plan_applier_refuses_a_plan_that_would_overfill_the_node() -> None:
    c = Cluster()
    a = c.node(0)
    _cap(c, a, 1)
    c.register(**service("x", count=1))
    c.register(**service("y", count=1))
    # Both plans are made against the same state (each sees the node empty), then applied in turn.
    pending = sorted(pending_evals(c.state))
    plans = [plan_command(c.state, eval_id, c.now)[0] for _, _, eval_id, _ in pending]
    assert len(plans) == 2 and all(p is not None for p in plans)
    for data in plans:
        c.index += 1
        c.state.apply(c.index, data)
    placed = [x for x in c.state.tables["allocs"].values()]
    assert len(placed) == 1 and placed[0]["NodeID"] == a
    # The refused placement's work is not lost: a follow-up evaluation finds the node full.
    c.schedule()
    assert len(c.running("x")) + len(c.running("y")) == 1
    assert _failed(c)[-1]["FailedTGAllocs"]["g"]["DimensionExhausted"] == {MAX_ALLOCS_EXCEEDED: 1}


# ------------------------------------------------------------ the node record and its eligibility
def _spec(**kw: object) -> NodeSpec:
    return NodeSpec(node_id="n1", secret_id="s", name="n1", drivers=("raw_exec",),  # type: ignore[arg-type]
                    attributes=(("kernel.name", "linux"),), resources=Resources(cpu_mhz=4000, memory_mb=8192,
                                                                             disk_mb=100_000), **kw)


def test_the_client_config_reaches_the_node_record() -> None:
    cfg = replace(Config(), client=ClientConfig(enabled=True, node_max_allocs=5, default_ineligible=True))
    node_cfg = ClientNodeConfig.from_config(cfg, name="n1")
    assert (node_cfg.node_max_allocs, node_cfg.default_ineligible) == (5, True)
    spec = _spec(node_max_allocs=5, scheduling_eligibility="ineligible")
    assert wire.decode(wire.encode(spec)) == spec
    rec = node_record(spec)
    assert rec["NodeMaxAllocs"] == 5 and rec["SchedulingEligibility"] == "ineligible"
    old = node_record(_spec())  # an older client: no limit, and the store makes a new node eligible
    assert old["NodeMaxAllocs"] == 0 and "SchedulingEligibility" not in old
    with pytest.raises(ValueError, match="node_max_allocs must be >= 0"):
        _spec(node_max_allocs=-1)
    with pytest.raises(ValueError, match="unknown scheduling eligibility"):
        _spec(scheduling_eligibility="maybe")
    with pytest.raises(ValueError, match="node_max_allocs must be >= 0"):
        ClientNodeConfig(node_max_allocs=-1)


def test_a_new_node_with_default_ineligible_waits_and_a_reregistration_keeps_the_operators_choice() -> None:
    c = Cluster()
    spec = _spec(scheduling_eligibility="ineligible")
    c.apply("node_register", node=node_record(spec), node_evals=True, driver_times=True)
    c.apply("node_update_status", node_id="n1", status="ready")
    assert c.state.tables["nodes"]["n1"]["SchedulingEligibility"] == "ineligible"
    c.register(**service(count=1))
    c.schedule()
    assert c.running("web") == []
    # The operator: nomad node eligibility -enable; the blocked evaluation places on it.
    assert c.apply("node_update_eligibility", node_id="n1", eligibility="eligible")["ok"]
    c.schedule()
    assert [x["NodeID"] for x in c.running("web")] == ["n1"]
    # The agent restarts (its config still says default_ineligible): the node stays eligible.
    c.apply("node_register", node=node_record(spec), node_evals=True, driver_times=True)
    assert c.state.tables["nodes"]["n1"]["SchedulingEligibility"] == "eligible"
    # And one the operator made ineligible stays so when a client without the setting re-registers.
    c.apply("node_update_eligibility", node_id="n1", eligibility="ineligible")
    c.apply("node_register", node=node_record(replace(spec, scheduling_eligibility="eligible")),
            node_evals=True, driver_times=True)
    assert c.state.tables["nodes"]["n1"]["SchedulingEligibility"] == "ineligible"


# ------------------------------------------------------------ the simulator: clients with the settings
def test_simulated_clients_with_node_max_allocs_hold_no_more_and_new_ones_start_ineligible() -> None:
    from actors.scheduler.scheduler import live
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    base = ClusterConfig(n_servers=3, n_clients=3,
                         client=ClientNodeConfig(node_max_allocs=2, default_ineligible=True))
    c = JobCluster(3, JobClusterConfig(base=base))
    c.run(30.0)
    assert c.statuses() == {"ready": 3}
    nodes = c.nodes()
    assert {(n["NodeMaxAllocs"], n["SchedulingEligibility"]) for n in nodes.values()} == {(2, "ineligible")}
    for client in c.clients:  # the operator: nomad node eligibility -enable
        c.propose(command("node_update_eligibility", node_id=c.node_id(client), eligibility="eligible",
                          now=c.sched.now))
    c.register(sim_job(count=8))  # the JobCluster checker fails the run on any node over its max
    c.run(60.0)
    running = [a for a in c.allocs("web") if live(a) and a["ClientStatus"] == "running"]
    assert len(running) == 6 and sum(d.starts for d in c.drivers.values()) == 6
    failed = [e for e in c.checker.replica.tables["evals"].values() if e.get("FailedTGAllocs")]
    assert list(failed[-1]["FailedTGAllocs"]["g"]["DimensionExhausted"]) == [MAX_ALLOCS_EXCEEDED]
    # A restarted agent re-registers its node: it keeps the eligibility the operator gave it.
    c.crash(c.clients[0])
    c.restart(c.clients[0])
    c.run(30.0)
    assert c.nodes()[c.node_id(c.clients[0])]["SchedulingEligibility"] == "eligible"
    assert not c.overcommits
    c.close()


# ------------------------------------------------------------ a real agent
@pytest.mark.timeout(120)
def test_a_dev_agent_with_node_limits_runs_one_of_two_once_made_eligible(tmp_path) -> None:
    from tests.ports import free_port
    from tests.test_agent_process import wait_for
    from tests.test_cli_jobs import columns, nomad, section
    from tests.test_http_jobs import PLACE_DEADLINE_S, call, running_agent, sleep_job

    port = free_port()
    conf = tmp_path / "agent.hcl"
    conf.write_text(f"ports {{\n  http = {port}\n  rpc  = {free_port()}\n  serf = {free_port()}\n}}\n"
                    "client {\n  node_max_allocs = 1\n  default_ineligible = true\n}\n")
    with running_agent(["-dev", "-config", str(conf)], port) as agent:
        (stub,) = wait_for(lambda: [n for n in call(port, "GET", "/v1/nodes").json()
                                    if n["Status"] == "ready"], "the dev node")
        node = call(port, "GET", f"/v1/node/{stub['ID']}").json()
        assert node["NodeMaxAllocs"] == 1 and node["SchedulingEligibility"] == "ineligible"
        enable = nomad(agent, "node", "eligibility", "-enable", stub["ID"])
        assert enable.returncode == 0, enable.stderr
        assert call(port, "GET", f"/v1/node/{stub['ID']}").json()["SchedulingEligibility"] == "eligible"
        assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("capped", 2)}).status == 200
        wait_for(lambda: [a for a in call(port, "GET", "/v1/job/capped/allocations").json()
                          if a["ClientStatus"] == "running"], "one running allocation", PLACE_DEADLINE_S)
        evals = call(port, "GET", "/v1/job/capped/evaluations").json()
        failed = next(e for e in evals if e.get("FailedTGAllocs"))
        assert failed["FailedTGAllocs"]["web"]["DimensionExhausted"] == {"max allocation exceeded": 1}
        assert len(call(port, "GET", "/v1/job/capped/allocations").json()) == 1
        out = nomad(agent, "eval", "status", failed["ID"]).stdout
        assert 'Task Group "web" (failed to place 1 allocation):' in out
        assert 'Dimension "max allocation exceeded" exhausted on 1 nodes' in out
        summary = section(nomad(agent, "job", "status", "capped").stdout, "Summary")
        assert columns(summary[1])[:4] == ["web", "1", "0", "1"]  # one queued, one running
        status = nomad(agent, "node", "status", stub["ID"]).stdout
        assert re.search(r"Alloc Count\s*\n.*\b1/1\s*$", status, re.M), status
