"""Where a job's allocations go, as its author writes it: datacenter patterns, node pools, the
failure reasons a placement that cannot happen reports."""
from __future__ import annotations

from typing import Any

import pytest

from actors.scheduler.job import JobError, canonical_job, constraint_ok
from tests.test_scheduler import Cluster, service


def test_datacenter_glob_places_on_matching_datacenters_only() -> None:
    # Nomad's Node.IsInAnyDC: each of a job's datacenters is a glob (go-glob, ``*`` only).
    c = Cluster()
    c.node(0, dc="dc1")
    c.node(1, dc="dc2")
    c.node(2, dc="eu-west")
    c.register(**service("web", count=6, Datacenters=["dc*"]))
    c.schedule()
    assert sorted({a["NodeID"] for a in c.running("web")}) == ["node-0000", "node-0001"]
    c.register(**service("eu", count=2, Datacenters=["*-west"]))
    c.register(**service("none", count=1, Datacenters=["us-*"]))
    c.schedule()
    assert {a["NodeID"] for a in c.running("eu")} == {"node-0002"}
    assert c.running("none") == []


def test_system_job_datacenter_glob() -> None:
    c = Cluster()
    c.node(0, dc="dc1")
    c.node(1, dc="eu-west")
    c.register(ID="sys", Type="system", Datacenters=["eu*"], TaskGroups=[{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}])
    c.schedule()
    assert [a["NodeID"] for a in c.running("sys")] == ["node-0001"]


def test_a_static_port_collision_names_the_port_and_counts_the_node_class() -> None:
    # Nomad's ExhaustedNode(node, "network: " + AssignPorts's error): the error names the port, and
    # the node's class is exhausted too.
    c = Cluster()
    c.node(0, node_class="web", attrs={"unique.network.ip-address": "10.0.0.1"})
    net = {"Networks": [{"ReservedPorts": [{"Label": "x", "Value": 8080}], "DynamicPorts": []}]}
    c.register(**service("web", count=2, cpu=100, mem=64, group=net))
    c.schedule()
    assert len(c.running("web")) == 1
    failed = next(e for e in c.state.tables["evals"].values() if e.get("FailedTGAllocs"))
    m = failed["FailedTGAllocs"]["g"]
    assert m["DimensionExhausted"] == {"network: reserved port collision x=8080": 1}
    assert m["ClassExhausted"] == {"web": 1} and m["NodesExhausted"] == 1


def _cons(ltarget: str, operand: str, rtarget: str) -> dict[str, Any]:
    return {"LTarget": ltarget, "RTarget": rtarget, "Operand": operand}


def test_a_prerelease_does_not_satisfy_a_release_constraint() -> None:
    # go-version orders 2.0.0-beta below 2.0.0; its constraints also keep prereleases out of an
    # ordering on a release (prereleaseCheck), Nomad's semver ones do not.
    c = Cluster()
    c.node(0, meta={"ver": "1.2.3"})
    c.node(1, meta={"ver": "2.0.0-beta"})
    jobs = {"v": ("version", ">= 2.0.0"), "s": ("semver", ">= 2.0.0"), "sa": ("semver", ">= 2.0.0-alpha"),
            "va": ("version", ">= 1.0.0-alpha"), "old": ("version", ">= 1.0.0, < 2.0.0")}
    for job_id, (op, want) in jobs.items():
        c.register(**service(job_id, count=1, Constraints=[_cons("${meta.ver}", op, want)]))
    c.schedule()
    placed = {j: sorted(a["NodeID"] for a in c.running(j)) for j in jobs}
    assert placed == {"v": [], "s": [], "sa": ["node-0001"], "va": ["node-0000"], "old": ["node-0000"]}


def test_order_constraints_compare_numbers_as_numbers() -> None:
    # Nomad's checkOrder: integers, then floats, then strings.
    c = Cluster()
    c.node(0, attrs={"cpu.numcores": "16", "os.version": "9.5"})
    c.register(**service("cores", count=1, Constraints=[_cons("${attr.cpu.numcores}", ">=", "4")]))
    c.register(**service("os", count=1, Constraints=[_cons("${attr.os.version}", "<", "10.1")]))
    c.schedule()
    assert len(c.running("cores")) == 1 and len(c.running("os")) == 1
    assert constraint_ok(_cons("${attr.x}", "<", "b"), {"Attributes": {"x": "a"}})


def test_a_semver_constraint_refuses_the_pessimistic_operator() -> None:
    with pytest.raises(JobError, match="Malformed constraint"):
        canonical_job(service("s", count=1, Constraints=[_cons("${meta.ver}", "semver", "~> 1.2")]))
    canonical_job(service("v", count=1, Constraints=[_cons("${meta.ver}", "version", "~> 1.2")]))


def test_an_unblocked_evaluation_that_still_cannot_place_everything_is_blocked_again() -> None:
    # Nomad's ReblockEval: the one blocked evaluation waits again, rather than completing with a new one
    # each time capacity changes.
    c = Cluster()
    c.node(0, cpu=1000)
    c.register(**service("big", count=3, cpu=900))
    c.schedule()
    (waiting,) = [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    c.node(1, cpu=1000)  # one more fits; the third waits on the same evaluation
    c.schedule()
    assert len(c.running("big")) == 2
    again = c.state.tables["evals"][waiting["ID"]]
    assert again["Status"] == "blocked"
    assert again["StatusDescription"] == "created to place remaining allocations"
    assert again["FailedTGAllocs"]["g"]["NodesExhausted"] == 2
    assert [e["ID"] for e in c.state.tables["evals"].values() if e["Status"] == "blocked"] == [waiting["ID"]]
    assert not [e for e in c.state.tables["evals"].values() if e.get("PreviousEval") == waiting["ID"]]
    c.node(2, cpu=1000)  # the last one: the evaluation completes
    c.schedule()
    assert len(c.running("big")) == 3 and c.state.tables["evals"][waiting["ID"]]["Status"] == "complete"
    assert not c.state.evals_by_status["blocked"]


def test_distinct_hosts_is_off_for_any_false_go_parses() -> None:
    # Nomad's hasDistinctHostsConstraint: strconv.ParseBool of the value; "0", "F" and "False" are false.
    for value, placed in (("False", 3), ("0", 3), ("true", 1), ("yes", 1)):
        c = Cluster()
        c.node(0)
        c.register(**service("web", count=3, cpu=100, mem=64,
                             group={"Constraints": [_cons("", "distinct_hosts", value)]}))
        c.schedule()
        assert len(c.running("web")) == placed, value


def test_an_evaluation_that_places_everything_cancels_the_jobs_blocked_one() -> None:
    # Nomad's nestedUpsertEval: the job changed to fit, so "Placement Failure" no longer applies.
    c = Cluster()
    c.node(0, cpu=1000)
    c.register(**service("web", count=3, cpu=400))
    c.schedule()
    (blocked,) = [e for e in c.state.tables["evals"].values() if e["Status"] == "blocked"]
    c.register(**service("web", count=2, cpu=400))
    c.schedule()
    ev = c.state.tables["evals"][blocked["ID"]]
    assert ev["Status"] == "canceled" and ev["StatusDescription"].endswith('" successful')
    assert not c.state.evals_by_status["blocked"] and len(c.running("web")) == 2


def test_an_update_that_makes_the_node_infeasible_replaces_the_allocation_elsewhere() -> None:
    # Nomad's genericAllocUpdateFn: an in-place update selects on the allocation's own node; when the
    # new constraint (or datacenters) rule it out, the update is destructive and the allocation moves.
    c = Cluster()
    c.node(0, meta={"rack": "r1"})
    c.node(1, meta={"rack": "r3"}, dc="dc2")
    rack = [_cons("${meta.rack}", "=", "r1")]
    c.register(**service("mv", count=2, cpu=100, mem=64, Datacenters=["*"], Constraints=rack))
    c.schedule()
    c.client("running")
    assert {a["NodeID"] for a in c.running("mv")} == {"node-0000"}
    rack = [_cons("${meta.rack}", "=", "r3")]
    c.register(**service("mv", count=2, cpu=100, mem=64, Datacenters=["*"], Constraints=rack))
    for _ in range(6):
        c.schedule()
        c.client("running")
        c.healthy()
    assert sorted((a["NodeID"], a["JobVersion"]) for a in c.running("mv")) == [("node-0001", 1)] * 2
    # A change of datacenters alone moves them too; one that keeps the node feasible updates in place.
    c.register(**service("mv", count=2, cpu=100, mem=64, Datacenters=["dc1"], Constraints=[]))
    for _ in range(6):
        c.schedule()
        c.client("running")
        c.healthy()
    assert {a["NodeID"] for a in c.running("mv")} == {"node-0000"}
    before = {a["ID"] for a in c.running("mv")}
    c.register(**service("mv", count=2, cpu=100, mem=64, Datacenters=["dc*"], Constraints=[]))
    c.schedule()
    assert {a["ID"] for a in c.running("mv")} == before
