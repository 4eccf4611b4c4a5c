"""Nomad's ``distinct_property`` constraint (at most RTarget -- 1 when unset -- allocations per value of a
node property, counting the job's live allocations and the plan's placements, less what the plan stops),
the HCL constraint and affinity shorthands, and Nomad's constraint validation messages."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from actors.scheduler.job import JobError, canonical_job
from actors.scheduler.scheduler import live
from runtime.hcl_job import HclJobError, parse_hcl_job
from sim.job_cluster import sim_job
from tests.test_filter_reasons import _failed, _node
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(60)

RACK = "${meta.rack}"


def _hcl_constraint(body: str, where: str = "group") -> dict[str, Any]:
    text = f'''job "j" {{
      {"constraint {" + body + "}" if where == "job" else ""}
      group "g" {{
        {"constraint {" + body + "}" if where == "group" else ""}
        affinity {{
          attribute = "${{meta.x}}"
          weight = 50
          {body if where == "affinity" else ""}
        }}
        task "t" {{
          driver = "raw_exec"
          config {{ command = "/bin/true" }}
        }}
      }}
    }}'''
    job = parse_hcl_job(text)
    if where == "job":
        return job["Constraints"][0]
    if where == "affinity":
        return job["TaskGroups"][0]["Affinities"][0]
    return job["TaskGroups"][0]["Constraints"][0]


# ------------------------------------------------------------------ HCL shorthands
@pytest.mark.parametrize(("body", "want"), [
    ('distinct_hosts = true', {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}),
    ('distinct_hosts = false', {"LTarget": "", "RTarget": "false", "Operand": "distinct_hosts"}),
    ('distinct_property = "${meta.rack}"', {"LTarget": RACK, "RTarget": "", "Operand": "distinct_property"}),
    ('distinct_property = "${meta.rack}"\nvalue = "2"',
     {"LTarget": RACK, "RTarget": "2", "Operand": "distinct_property"}),
    ('attribute = "${attr.nomad.version}"\nversion = ">= 1.2"',
     {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.2", "Operand": "version"}),
    ('attribute = "${attr.nomad.version}"\nsemver = ">= 1.2"',
     {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.2", "Operand": "semver"}),
    ('attribute = "${meta.rack}"\nregexp = "^r[0-9]$"',
     {"LTarget": RACK, "RTarget": "^r[0-9]$", "Operand": "regexp"}),
    ('attribute = "${meta.tags}"\nset_contains = "a,b"',
     {"LTarget": "${meta.tags}", "RTarget": "a,b", "Operand": "set_contains"}),
    ('attribute = "${meta.rack}"\noperator = "is_set"',
     {"LTarget": RACK, "RTarget": "", "Operand": "is_set"}),
    ('attribute = "${meta.rack}"\nvalue = "r1"', {"LTarget": RACK, "RTarget": "r1", "Operand": "="}),
])
def test_hcl_constraint_shorthands_map_as_nomads_jobspec(body, want):
    assert _hcl_constraint(body) == want
    assert _hcl_constraint(body, "job") == want
    canonical_job(parse_hcl_job(f'job "j" {{\n constraint {{\n{body}\n}}\n group "g" {{ task "t" {{\n'
                                'driver = "raw_exec"\n config { command = "/bin/true" } } } }'))


@pytest.mark.parametrize(("body", "operand", "rtarget"), [
    ('version = ">= 1.2"', "version", ">= 1.2"),
    ('semver = ">= 1.2.0"', "semver", ">= 1.2.0"),
    ('regexp = "^a"', "regexp", "^a"),
    ('set_contains = "a,b"', "set_contains", "a,b"),
    ('set_contains_all = "a,b"', "set_contains_all", "a,b"),
    ('set_contains_any = "a,b"', "set_contains_any", "a,b"),
])
def test_hcl_affinity_shorthands(body, operand, rtarget):
    a = _hcl_constraint(body, "affinity")
    assert (a["LTarget"], a["Operand"], a["RTarget"], a["Weight"]) == ("${meta.x}", operand, rtarget, 50)


@pytest.mark.parametrize(("body", "why"), [
    ('attribute = "${meta.x}"\nset_contains_all = "a"', "'set_contains_all' is not a constraint shorthand"),
    ('attribute = "${meta.x}"\nis_set = "x"', "'is_set' is not a constraint shorthand"),
    ('distinct_hosts = "yes"', 'Inappropriate value for attribute "distinct_hosts": bool required'),
    ('distinct_property = "${meta.rack}"\nweight = 5', "'weight' not supported"),
])
def test_hcl_refuses_what_nomad_would_not_run(body, why):
    with pytest.raises(HclJobError, match=why.replace("[", r"\[")):
        _hcl_constraint(body)


def test_hcl_refuses_distinct_shorthands_in_an_affinity():
    with pytest.raises(HclJobError, match="'distinct_property' not supported"):
        _hcl_constraint('distinct_property = "${meta.rack}"', "affinity")


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(("constraint", "why"), [
    ({"LTarget": RACK, "Operand": "distinct_property", "RTarget": "0"},
     "Distinct Property must have an allowed count of 1 or greater: 0 < 1"),
    ({"LTarget": RACK, "Operand": "distinct_property", "RTarget": "two"},
     "Failed to convert RTarget 'two' to uint64"),
    ({"LTarget": RACK, "Operand": "distinct_property", "RTarget": "-1"}, "Failed to convert RTarget"),
    ({"Operand": "distinct_property"}, "no attribute provided but is required by operator"),
    ({"LTarget": RACK, "Operand": "is_set", "RTarget": "x"}, "Operator 'is_set' does not support an RTarget"),
    ({"LTarget": RACK, "Operand": "="}, "Operator '=' requires an RTarget"),
    ({"LTarget": RACK, "Operand": "set_contains_any"}, "Set contains constraint requires an RTarget"),
    ({"LTarget": RACK, "Operand": "near"}, "Unknown constraint type 'near'"),
])
def test_a_bad_constraint_gets_nomads_message(constraint, why):
    with pytest.raises(JobError, match=r"Constraints\[0\]\.\w+: " + why.replace("(", r"\(")):
        canonical_job(service(group={"Constraints": [constraint]}))


@pytest.mark.parametrize("operand", ["distinct_hosts", "distinct_property"])
def test_distinct_operands_are_refused_at_task_level(operand):
    job = service()
    job["TaskGroups"][0]["Tasks"][0]["Constraints"] = [{"LTarget": RACK, "Operand": operand}]
    with pytest.raises(JobError, match=r"Tasks\[0\]\.Constraints\[0\]: Constraint 1 has disallowed "
                                       f"Operand at task level: {operand}"):
        canonical_job(job)


def test_distinct_property_is_not_an_affinity():
    with pytest.raises(JobError, match="Unknown affinity operator 'distinct_property'"):
        canonical_job(service(Affinities=[{"LTarget": RACK, "Operand": "distinct_property", "Weight": 50}]))


# ------------------------------------------------------------------ scheduling
def _racks(c: Cluster, racks: int = 3, per_rack: int = 2, *, missing: int = 0) -> dict[str, str]:
    """node ID -> rack, *per_rack* nodes per rack; *missing* more nodes without the property."""
    out = {}
    for r in range(racks):
        for k in range(per_rack):
            out[_node(c, r * per_rack + k, meta={"rack": f"r{r}"})] = f"r{r}"
    for k in range(missing):
        _node(c, 100 + k)
    return out


def _live(c: Cluster, job_id: str = "web") -> list[dict[str, Any]]:
    return sorted((a for a in c.state.tables["allocs"].values()
                   if a["JobID"] == job_id and a["DesiredStatus"] == "run"), key=lambda a: a["Name"])


def _per_rack(c: Cluster, racks: dict[str, str], job_id: str = "web", group: str | None = None) -> Counter:
    return Counter(racks[a["NodeID"]] for a in _live(c, job_id) if group is None or a["TaskGroup"] == group)


def _dp(value: str = "") -> dict[str, str]:
    return {"LTarget": RACK, "Operand": "distinct_property", "RTarget": value}


def test_one_allocation_per_rack_and_a_fourth_fails_naming_the_property():
    c = Cluster()
    racks = _racks(c, missing=1)
    c.register(**service(count=4, group={"Constraints": [_dp()]}))
    c.schedule()
    assert sorted(_per_rack(c, racks).values()) == [1, 1, 1]
    m = _failed(c, "web")
    keys = set(m["ConstraintFiltered"])
    assert 'missing property "${meta.rack}"' in keys
    assert any(k.startswith("distinct_property: ${meta.rack}=r") and k.endswith("used by 1 allocs")
               for k in keys)
    assert len(_live(c)) == 3 and m["NodesExhausted"] == 0  # filtered, not out of room


def test_value_allows_that_many_per_rack():
    c = Cluster()
    racks = _racks(c)
    c.register(**service(count=7, group={"Constraints": [_dp("2")]}))
    c.schedule()
    assert sorted(_per_rack(c, racks).values()) == [2, 2, 2]
    assert any(k.endswith("used by 2 allocs") for k in _failed(c, "web")["ConstraintFiltered"])


def _two_groups(job_level: bool) -> dict[str, Any]:
    job = service(count=2)
    other = {**job["TaskGroups"][0], "Name": "h"}
    job["TaskGroups"].append(other)
    if job_level:
        job["Constraints"] = [_dp()]
    else:
        for g in job["TaskGroups"]:
            g["Constraints"] = [_dp()]
    return job


def test_a_job_level_property_counts_every_group():
    c = Cluster()
    racks = _racks(c)
    c.register(**_two_groups(job_level=True))
    c.schedule()
    assert sorted(_per_rack(c, racks).values()) == [1, 1, 1]  # three racks for four allocations
    assert len(_live(c)) == 3


def test_a_group_level_property_counts_its_group_only():
    c = Cluster()
    racks = _racks(c)
    c.register(**_two_groups(job_level=False))
    c.schedule()
    assert len(_live(c)) == 4
    for g in ("g", "h"):
        assert sorted(_per_rack(c, racks, group=g).values()) == [1, 1]


def test_existing_allocations_count_and_stopped_ones_do_not():
    c = Cluster()
    racks = _racks(c)
    c.register(**service(count=2, group={"Constraints": [_dp()]}))
    c.schedule()
    c.client()
    before = _per_rack(c, racks)
    assert sorted(before.values()) == [1, 1]
    c.register(**service(count=3, group={"Constraints": [_dp()]}))  # scaled up: the free rack only
    c.schedule()
    after = _per_rack(c, racks)
    assert sorted(after.values()) == [1, 1, 1] and all(after[r] == 1 for r in before)
    c.register(**service(count=4, group={"Constraints": [_dp()]}))  # no rack left
    c.schedule()
    assert len(_live(c)) == 3
    c.register(**service(count=0, group={"Constraints": [_dp()]}))  # stopped: their racks are free again
    c.schedule()
    c.client()
    assert not _live(c)
    c.register(**service(count=3, group={"Constraints": [_dp()]}))
    c.schedule()
    assert sorted(_per_rack(c, racks).values()) == [1, 1, 1]


def test_a_destructive_update_replaces_in_the_racks_it_frees():
    c = Cluster()
    racks = _racks(c)
    c.register(**service(count=3, group={"Constraints": [_dp()]}))
    c.schedule()
    c.client()
    c.register(**service(count=3, cpu=600, group={"Constraints": [_dp()]}))  # a new spec: replaced
    c.schedule()  # one at a time (max_parallel 1): the replacement takes the rack its stop frees
    (stopped,) = [a for a in c.state.tables["allocs"].values() if a["DesiredStatus"] == "stop"]
    (new,) = [a for a in _live(c) if a.get("JobVersion") == 1]
    assert new["Name"] == stopped["Name"] and racks[new["NodeID"]] == racks[stopped["NodeID"]]
    assert sorted(_per_rack(c, racks).values()) == [1, 1, 1]


@pytest.mark.parametrize("kind", ["system", "sysbatch"])
def test_a_system_job_runs_once_per_rack(kind):
    c = Cluster()
    racks = _racks(c)
    c.register(**service(count=1, Type=kind, group={"Constraints": [_dp()]}))
    c.schedule()
    assert sorted(_per_rack(c, racks).values()) == [1, 1, 1]


def test_placement_is_deterministic():
    def run() -> list[str]:
        c = Cluster()
        _racks(c, racks=4, per_rack=3)
        c.register(**service(count=6, group={"Constraints": [_dp("2")]}))
        c.schedule()
        return [a["NodeID"] for a in _live(c)]
    assert run() == run()


def test_a_distinct_property_job_runs_in_the_simulator():
    """Four simulated clients, at most two allocations per node (``${node.unique.id}``, value 2): a count
    of 8 runs two on each, started by the clients' drivers."""
    from tests.test_jobs_sim import boot, settle

    c = boot(seed=3)
    c.register(sim_job(count=8, Constraints=[{"LTarget": "${node.unique.id}", "Operand": "distinct_property",
                                              "RTarget": "2"}]))
    assert settle(c) == []
    assert sorted(Counter(a["NodeID"] for a in c.allocs("web") if live(a)).values()) == [2, 2, 2, 2]
    assert sum(d.starts for d in c.drivers.values()) == 8
