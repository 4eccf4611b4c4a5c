"""Where a job's allocations go, as its author writes it: datacenter patterns, node pools, the
failure reasons a placement that cannot happen reports."""
from __future__ import annotations

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
