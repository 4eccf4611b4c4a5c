"""Affinities and spreads: validated as Nomad validates them, read from HCL, and scored by the scheduler."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from actors.scheduler.job import JobError, canonical_job
from runtime.hcl_job import parse_hcl_job
from tests.test_scheduler import Cluster, service

DC = "${node.datacenter}"


def _cluster(nodes: list[tuple[str, dict[str, str]]]) -> Cluster:
    """Nodes as (datacenter, meta), every one empty and alike otherwise."""
    c = Cluster()
    for i, (dc, meta) in enumerate(nodes):
        nid = f"pref-{i}"
        rec = {"ID": nid, "SecretID": "s", "Name": nid, "Datacenter": dc, "NodePool": "default", "Meta": meta,
               "Attributes": {"kernel.name": "linux"},
               "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
               "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 4096},
                             "Disk": {"DiskMB": 100_000}},
               "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}}}
        c.apply("node_register", node=rec)
        c.apply("node_update_status", node_id=nid, status="ready")
    return c


def _placed(c: Cluster, by: str, **job: Any) -> Counter:
    c.register(**service("web", cpu=100, mem=64, Datacenters=["dc1", "dc2"], **job))
    c.schedule()
    c.assert_not_overcommitted()
    nodes = c.state.tables["nodes"]
    return Counter(nodes[a["NodeID"]][by] if by != "ID" else a["NodeID"] for a in c.running("web"))


# ---------------------------------------------------------------- validation


def test_affinities_and_spreads_get_nomads_defaults_and_empty_ones_are_dropped():
    job = canonical_job({**service("web"), "Affinities": [{"LTarget": "${meta.ssd}", "RTarget": "true"}],
                         "Spreads": [{"Attribute": DC}],
                         "TaskGroups": [{**service("web")["TaskGroups"][0], "Affinities": []}]})
    assert job["Affinities"] == [{"LTarget": "${meta.ssd}", "RTarget": "true", "Operand": "=", "Weight": 50}]
    assert job["Spreads"] == [{"Attribute": DC, "Weight": 50, "SpreadTarget": None}]
    assert "Affinities" not in job["TaskGroups"][0]


@pytest.mark.parametrize("extra,why", [
    ({"Affinities": [{"LTarget": "${meta.a}", "RTarget": "b", "Weight": 0}]}, "Affinities[0].Weight: weight cannot"),
    ({"Affinities": [{"LTarget": "${meta.a}", "RTarget": "b", "Weight": 101}]}, "Affinities[0].Weight"),
    ({"Affinities": [{"RTarget": "b"}]}, "Affinities[0].LTarget: No LTarget provided but is required"),
    ({"Affinities": [{"LTarget": "x", "Operand": "distinct_hosts"}]}, "Unknown affinity operator .distinct_hosts."),
    ({"Spreads": [{"Weight": 10}]}, "Spreads[0].Attribute"),
    ({"Spreads": [{"Attribute": DC, "Weight": -1}]}, "Spreads[0].Weight"),
    ({"Spreads": [{"Attribute": DC, "SpreadTarget": [{"Value": "dc1", "Percent": 70},
                                                     {"Value": "dc2", "Percent": 40}]}]}, "more than 100"),
    ({"Spreads": [{"Attribute": DC, "SpreadTarget": [{"Value": "dc1", "Percent": 10},
                                                     {"Value": "dc1", "Percent": 10}]}]}, "targeted twice"),
])
def test_a_bad_affinity_or_spread_is_refused_naming_it(extra, why):
    with pytest.raises(JobError, match=why.replace("[", r"\[").replace("]", r"\]")):
        canonical_job({**service("web"), **extra})


def test_hcl_affinity_and_spread_blocks_become_the_api_fields():
    job = parse_hcl_job('''
job "web" {
  datacenters = ["dc1", "dc2"]
  spread {
    attribute = "${node.datacenter}"
    weight    = 70
    target "dc1" { percent = 25 }
    target "dc2" { percent = 75 }
  }
  group "g" {
    affinity {
      attribute = "${meta.ssd}"
      value     = "true"
      weight    = -40
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      affinity {
        attribute = "${meta.rack}"
        operator  = "regexp"
        value     = "r[12]"
      }
    }
  }
}''')
    job = canonical_job(job)
    assert job["Spreads"] == [{"Attribute": DC, "Weight": 70, "SpreadTarget": [
        {"Value": "dc1", "Percent": 25}, {"Value": "dc2", "Percent": 75}]}]
    g = job["TaskGroups"][0]
    assert g["Affinities"] == [{"LTarget": "${meta.ssd}", "RTarget": "true", "Operand": "=", "Weight": -40}]
    assert g["Tasks"][0]["Affinities"][0]["Operand"] == "regexp"


# ---------------------------------------------------------------- scoring


def test_an_even_spread_balances_datacenters_however_many_nodes_each_has():
    layout = [("dc1", {})] * 5 + [("dc2", {})]
    assert _placed(_cluster(layout), "Datacenter", count=6) == {"dc1": 5, "dc2": 1}  # by node, not by dc
    spread = {"Spreads": [{"Attribute": DC}]}
    assert _placed(_cluster(layout), "Datacenter", count=6, **spread) == {"dc1": 3, "dc2": 3}
    assert _placed(_cluster(layout), "Datacenter", count=10, **spread) == {"dc1": 5, "dc2": 5}


def test_spread_targets_lean_placements_towards_each_values_share():
    layout = [("dc1", {})] * 4 + [("dc2", {})] * 4
    targets = {"Spreads": [{"Attribute": DC, "SpreadTarget": [{"Value": "dc1", "Percent": 20},
                                                              {"Value": "dc2", "Percent": 80}]}]}
    got = _placed(_cluster(layout), "Datacenter", count=10, **targets)
    assert got["dc2"] > got["dc1"] and sum(got.values()) == 10
    even = _placed(_cluster(layout), "Datacenter", count=10)
    assert got["dc2"] > even["dc2"]


def test_a_positive_affinity_attracts_and_a_negative_one_repels():
    layout = [("dc1", {"ssd": "true"}), ("dc1", {"ssd": "false"}), ("dc2", {"ssd": "false"}),
              ("dc2", {"ssd": "true"}), ("dc1", {"ssd": "false"}), ("dc2", {"ssd": "false"})]
    ssd = {"pref-0", "pref-3"}
    attract = {"Affinities": [{"LTarget": "${meta.ssd}", "RTarget": "true", "Weight": 100}]}
    got = _placed(_cluster(layout), "ID", count=6, **attract)
    assert set(got) == ssd
    repel = {"Affinities": [{"LTarget": "${meta.ssd}", "RTarget": "true", "Weight": -100}]}
    got = _placed(_cluster(layout), "ID", count=6, **repel)
    assert not set(got) & ssd and sum(got.values()) == 6
    # A preference, not a constraint: with no other room, the repelled nodes are used.
    full = _cluster([("dc1", {"ssd": "true"})])
    assert sum(_placed(full, "ID", count=3, **repel).values()) == 3
