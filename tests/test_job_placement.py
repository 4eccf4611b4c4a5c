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
