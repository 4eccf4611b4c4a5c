"""Host volumes: a client's host_volume blocks, group ``volume`` and task ``volume_mount`` in job
files and the JSON job, the scheduler's HostVolumeChecker, the node record, and the task runner's
volumes hook (raw_exec and the SimDriver cannot mount, as Nomad's raw_exec)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from actors.client.alloc_runner import NodeVars
from actors.client.messages import NodeSpec
from actors.scheduler.job import JobError, canonical_job
from actors.server.node_endpoint import node_record
from runtime import wire
from runtime.hcl_job import HclJobError, parse_hcl_job
from tests.test_alloc_runner import Client, alloc, events, task
from tests.test_scheduler import Cluster, service

JOB = '''
job "j" {
  group "g" {
    count = 2
    volume "data" {
      type      = "host"
      source    = "data"
      read_only = true
    }
    volume "scratch" {
      type      = "host"
      source    = "scratch"
      per_alloc = true
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      volume_mount {
        volume      = "data"
        destination = "/srv/data"
      }
      volume_mount {
        volume           = "scratch"
        destination      = "/scratch"
        read_only        = true
        propagation_mode = "host-to-task"
      }
    }
  }
}
'''


# ------------------------------------------------------------ job files and JSON
def test_hcl_volume_blocks_map_onto_nomads_json_and_canonicalize() -> None:
    job = parse_hcl_job(JOB)
    g = job["TaskGroups"][0]
    assert g["Volumes"] == {
        "data": {"Name": "data", "Type": "host", "Source": "data", "ReadOnly": True, "PerAlloc": False},
        "scratch": {"Name": "scratch", "Type": "host", "Source": "scratch", "ReadOnly": False,
                    "PerAlloc": True}}
    assert g["Tasks"][0]["VolumeMounts"] == [
        {"Volume": "data", "Destination": "/srv/data"},
        {"Volume": "scratch", "Destination": "/scratch", "ReadOnly": True, "PropagationMode": "host-to-task"}]
    c = canonical_job(job)["TaskGroups"][0]
    assert c["Volumes"] == g["Volumes"]
    assert c["Tasks"][0]["VolumeMounts"][0] == {"Volume": "data", "Destination": "/srv/data",
                                                "ReadOnly": False, "PropagationMode": "private",
                                                "SELinuxLabel": ""}


@pytest.mark.parametrize(("body", "error"), [
    ('volume "v" {\n type = "host"\n source = "v"\n sticky = true\n }',
     "'sticky' not supported by this agent"),
    ('volume "v" {\n type = "csi"\n source = "v"\n access_mode = "x"\n }',
     "'access_mode' not supported by this agent"),
    ('volume "v" {\n type = "host"\n source = "v"\n }\nvolume "v" {\n type = "host"\n source = "w"\n }',
     'Duplicate volume block'),
])
def test_hcl_refuses_what_it_does_not_run(body: str, error: str) -> None:
    text = f'job "j" {{\n group "g" {{\n {body}\n task "t" {{\n driver = "raw_exec"\n }}\n }}\n}}'
    with pytest.raises(HclJobError, match=re.escape(error)):
        parse_hcl_job(text)


def _job(volumes: Any = None, mounts: Any = None, *, job_type: str = "service", count: int = 1,
         update: Any = None) -> dict[str, Any]:
    t: dict[str, Any] = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}
    if mounts is not None:
        t["VolumeMounts"] = mounts
    g: dict[str, Any] = {"Name": "g", "Count": count, "Tasks": [t]}
    if volumes is not None:
        g["Volumes"] = volumes
    if update is not None:
        g["Update"] = update
    return {"ID": "j", "Type": job_type, "TaskGroups": [g]}


HOST = {"Type": "host", "Source": "data"}


@pytest.mark.parametrize(("job", "error"), [
    (_job({"v": {"Type": "nfs", "Source": "x"}}),
     "TaskGroups[0].Volumes: Task group volume validation for v failed: volume has unrecognized type nfs"),
    (_job({"v": {"Source": "x"}}), "volume has unrecognized type "),
    (_job({"v": {"Type": "csi", "Source": "x"}}),
     "TaskGroups[0].Volumes[v].Type: CSI volumes are not supported by this agent"),
    (_job({"v": {"Type": "host"}}), "Task group volume validation for v failed: volume has an empty source"),
    (_job({"v": {**HOST, "PerAlloc": True}}, job_type="system"),
     "volume cannot be per_alloc for system or sysbatch jobs"),
    (_job({"v": {**HOST, "PerAlloc": True}}, update={"Canary": 1}),
     "volume cannot be per_alloc when canaries are in use"),
    (_job({"v": {**HOST, "AccessMode": "single-node-writer"}}), "access_mode is not supported by this agent"),
    (_job({"v": HOST}, [{"Volume": "other", "Destination": "/x"}]),
     "TaskGroups[0].Tasks[0].VolumeMounts: Task t validation failed: Volume Mount (0) references undefined "
     "volume other"),
    (_job(None, [{"Volume": "v", "Destination": "/x"}]), "Volume Mount (0) references undefined volume v"),
    (_job({"v": HOST}, [{"Volume": "v", "PropagationMode": "shared"}]),
     'Volume Mount (0) is invalid: "volume mount has an invalid propagation mode: "shared""'),
    (_job({"v": {**HOST, "ReadOnly": "yes"}}), "TaskGroups[0].Volumes[v].ReadOnly: must be a boolean"),
    (_job({"v": {**HOST, "Size": 3}}), "TaskGroups[0].Volumes[v]: unknown fields ['Size']"),
    (_job({"v": HOST}, [{"Volume": "v", "Dest": "/x"}]),
     "TaskGroups[0].Tasks[0].VolumeMounts[0]: unknown fields ['Dest']"),
])
def test_json_volume_validation_uses_nomads_messages(job: dict[str, Any], error: str) -> None:
    with pytest.raises(JobError, match=re.escape(error)):
        canonical_job(job)


def test_name_defaults_to_the_label_and_per_alloc_is_fine_for_a_service_job() -> None:
    g = canonical_job(_job({"v": {**HOST, "PerAlloc": True}}, count=3))["TaskGroups"][0]
    assert g["Volumes"]["v"] == {"Name": "v", "Type": "host", "Source": "data", "ReadOnly": False,
                                 "PerAlloc": True}
    assert "Volumes" not in canonical_job(_job({}))["TaskGroups"][0]


# ------------------------------------------------------------ the node
def test_the_node_advertises_its_host_volumes_and_a_change_evaluates_its_jobs() -> None:
    spec = NodeSpec(node_id="n1", secret_id="s", name="n1",
                    host_volumes=(("data", "/srv/data", False), ("ro", "/srv/ro", True)))
    assert wire.decode(wire.encode(spec)) == spec
    rec = node_record(spec)
    assert rec["HostVolumes"] == {"data": {"Name": "data", "Path": "/srv/data", "ReadOnly": False},
                                  "ro": {"Name": "ro", "Path": "/srv/ro", "ReadOnly": True}}
    c = Cluster()
    c.node(0)
    c.register(**service(count=1))
    c.schedule()
    node = dict(c.state.tables["nodes"]["node-0000"])
    same = c.apply("node_register", node={**node, "HostVolumes": {}}, node_evals=True)
    assert same["evals"] == []  # none and {} are the same volumes
    changed = c.apply("node_register", node={**node, "HostVolumes": rec["HostVolumes"]}, node_evals=True)
    assert changed["evals"]  # Nomad's shouldCreateNodeEval: HostVolumes changed


# ------------------------------------------------------------ scheduling
def _vol_node(c: Cluster, i: int, vols: dict[str, bool]) -> str:
    nid = c.node(i)
    rec = dict(c.state.tables["nodes"][nid])
    rec["HostVolumes"] = {n: {"Name": n, "Path": f"/srv/{n}", "ReadOnly": ro} for n, ro in vols.items()}
    c.apply("node_register", node=rec)
    return nid


def _failed(c: Cluster, job_id: str = "web") -> dict[str, Any]:
    evs = [e for e in c.state.tables["evals"].values() if e["JobID"] == job_id and e.get("FailedTGAllocs")]
    return evs[-1]["FailedTGAllocs"]["g"]


def test_only_nodes_with_every_requested_volume_are_feasible() -> None:
    c = Cluster()
    _vol_node(c, 0, {"data": False})
    _vol_node(c, 1, {"data": False, "logs": False})
    _vol_node(c, 2, {})
    c.register(**service(count=3, group={"Volumes": {"d": {"Type": "host", "Source": "data"},
                                                     "l": {"Type": "host", "Source": "logs"}}}))
    c.schedule()
    assert {a["NodeID"] for a in c.running("web")} == {"node-0001"}
    assert len(c.running("web")) == 3


def test_a_missing_volume_fails_placement_with_nomads_filter_reason() -> None:
    c = Cluster()
    _vol_node(c, 0, {"other": False})
    c.register(**service(count=1, group={"Volumes": {"d": {"Type": "host", "Source": "data"}}}))
    c.schedule()
    assert c.running("web") == []
    m = _failed(c)
    assert m["ConstraintFiltered"] == {"missing compatible host volumes": 1} and m["NodesFiltered"] == 1


def test_a_read_only_node_volume_satisfies_only_read_only_requests() -> None:
    c = Cluster()
    _vol_node(c, 0, {"data": True})
    c.register(**service(count=1, group={"Volumes": {"d": {"Type": "host", "Source": "data"}}}))
    c.schedule()
    assert c.running("web") == []
    assert _failed(c)["ConstraintFiltered"] == {"missing compatible host volumes": 1}
    c.register(**service(count=1, group={"Volumes": {"d": {**HOST, "ReadOnly": True}}}))
    c.schedule()
    assert [a["NodeID"] for a in c.running("web")] == ["node-0000"]


def test_per_alloc_volumes_take_the_allocation_index() -> None:
    c = Cluster()
    _vol_node(c, 0, {"data[0]": False})
    _vol_node(c, 1, {"data[1]": False, "data[2]": False})
    c.register(**service(count=4, group={"Volumes": {"d": {**HOST, "PerAlloc": True}}}))
    c.schedule()
    placed = {a["Name"]: a["NodeID"] for a in c.running("web")}
    assert placed == {"web.g[0]": "node-0000", "web.g[1]": "node-0001", "web.g[2]": "node-0001"}
    # web.g[3]: neither node has data[3] (the counts add up over the group's placements, as Nomad's)
    assert set(_failed(c)["ConstraintFiltered"]) == {"missing compatible host volumes"}


def test_a_system_job_runs_only_where_its_volumes_are() -> None:
    c = Cluster()
    _vol_node(c, 0, {"data": False})
    _vol_node(c, 1, {})
    c.register(ID="sys", Type="system", TaskGroups=[{"Name": "g", "Volumes": {"d": HOST}, "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}])
    c.schedule()
    assert [a["NodeID"] for a in c.running("sys")] == ["node-0000"]


def test_changing_a_groups_volumes_replaces_its_allocations() -> None:
    c = Cluster()
    _vol_node(c, 0, {"data": False, "other": False})
    c.register(**service(count=1, group={"Volumes": {"d": HOST}}))
    c.schedule()
    c.client()
    (first,) = c.running("web")
    c.register(**service(count=1, group={"Volumes": {"d": {"Type": "host", "Source": "other"}}}))
    c.schedule()
    (second,) = c.running("web")
    assert second["ID"] != first["ID"]


# ------------------------------------------------------------ the task runner's volumes hook
def _valloc(aid: str, volumes: dict[str, Any], mounts: list[dict[str, Any]] | None = None,
            name: str = "") -> dict[str, Any]:
    a = alloc(aid, task(), **({"VolumeMounts": mounts} if mounts else {}))
    a["Job"]["TaskGroups"][0]["Volumes"] = volumes
    a["Name"] = name or f"job-{aid}.g[0]"
    return a


def _runner_with(c: Client, vols: tuple[tuple[str, str, bool], ...]) -> None:
    c.node.actors["allocs"].tell(NodeVars((), host_volumes=vols))


def test_a_task_mounting_a_host_volume_fails_as_raw_exec_cannot_mount() -> None:
    c = Client()
    _runner_with(c, (("data", "/srv/data", False),))
    c.set(_valloc("a1", {"d": HOST}, [{"Volume": "d", "Destination": "/data"}]))
    c.until(lambda: c.status("a1") == "failed", 5)
    st = c.task("a1")
    assert events(st)[-2:] == ["Task hook failed", "Not Restarting"] and st.restarts == 0
    assert st.events[-2].message == 'volumes: task driver "sim" for "t" does not support host volumes'
    assert not c.driver.running()


def test_a_volume_missing_on_the_node_fails_the_task_with_nomads_message() -> None:
    c = Client()
    _runner_with(c, (("data[0]", "/srv/d0", False),))
    c.set(_valloc("a1", {"d": {**HOST, "PerAlloc": True}}, name="job.g[1]"))
    c.until(lambda: c.status("a1") == "failed", 5)
    assert c.task("a1").events[-2].message == ("volumes: host volume validation error: 1 error occurred:\n"
                                                "\t* missing data[1]\n\n")


def test_a_group_volume_no_task_mounts_only_needs_to_be_present() -> None:
    c = Client()
    _runner_with(c, (("data", "/srv/data", True),))
    c.set(_valloc("a1", {"d": HOST}))
    c.until(lambda: c.status("a1") == "running", 5)


def test_the_client_config_reaches_the_node_registration(tmp_path) -> None:
    from actors.client.node import ClientNodeConfig
    from tests.test_config import load

    cfg = load(tmp_path, f'[client]\nenabled = true\n[client.host_volume.data]\npath = "{tmp_path}"\n'
                         'read_only = true\n')
    assert ClientNodeConfig.from_config(cfg, name="n").host_volumes == (("data", str(tmp_path), True),)


# ------------------------------------------------------------ a real agent
def test_a_dev_agent_advertises_its_volumes_places_by_them_and_raw_exec_refuses_to_mount(tmp_path) -> None:
    from runtime.cli import COMMANDS
    from tests.test_http_jobs import (
        PLACE_DEADLINE_S,
        call,
        dev_agent_config,
        node_id,
        running_agent,
        wait_for,
    )

    data = tmp_path / "data"
    data.mkdir()
    args, port = dev_agent_config(tmp_path)
    vols = tmp_path / "volumes.toml"
    vols.write_text(f'[client.host_volume.data]\npath = "{data}"\n'
                    f'[client.host_volume.ro]\npath = "{tmp_path}"\nread_only = true\n')
    with running_agent([*args, "-config", str(vols)], port):
        node = node_id(port)
        got = call(port, "GET", f"/v1/node/{node}").json()["HostVolumes"]
        assert got == {"data": {"Name": "data", "Path": str(data), "ReadOnly": False},
                       "ro": {"Name": "ro", "Path": str(tmp_path), "ReadOnly": True}}
        shown = COMMANDS[("node", "status")](f"http://127.0.0.1:{port}", [node])
        assert re.search(r"^Host Volumes\s+= data,ro$", shown, re.M), shown
        shown = COMMANDS[("node", "status")](f"http://127.0.0.1:{port}", ["-verbose", node])
        assert re.search(rf"^data\s+false\s+{re.escape(str(data))}$", shown, re.M), shown

        def job(job_id: str, source: str, mount: bool) -> dict[str, Any]:
            t = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["60"]},
                 "Resources": {"CPU": 50, "MemoryMB": 32}}
            if mount:
                t["VolumeMounts"] = [{"Volume": "v", "Destination": "/v"}]
            return {"ID": job_id, "Type": "batch", "TaskGroups": [{
                "Name": "g", "Volumes": {"v": {"Type": "host", "Source": source}},
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"}, "ReschedulePolicy": {"Attempts": 0},
                "Tasks": [t]}]}

        assert call(port, "PUT", "/v1/jobs", {"Job": job("mounts", "data", True)}).status == 200
        alloc = wait_for(lambda: next((a for a in call(port, "GET", "/v1/job/mounts/allocations").json()
                                       if a["ClientStatus"] == "failed"), None), "the task failed",
                         PLACE_DEADLINE_S)
        evs = call(port, "GET", f"/v1/allocation/{alloc['ID']}").json()["TaskStates"]["t"]["Events"]
        assert [e["Type"] for e in evs][-2:] == ["Task hook failed", "Not Restarting"]
        msg = 'volumes: task driver "raw_exec" for "t" does not support host volumes'
        assert msg in (evs[-2].get("DisplayMessage"), evs[-2].get("Message")), evs[-2]
        # Present (read-only serves only read-only requests): placed and running; absent: not placed.
        assert call(port, "PUT", "/v1/jobs", {"Job": job("plain", "data", False)}).status == 200
        wait_for(lambda: any(a["ClientStatus"] == "running"
                             for a in call(port, "GET", "/v1/job/plain/allocations").json()), "running",
                 PLACE_DEADLINE_S)
        assert call(port, "PUT", "/v1/jobs", {"Job": job("nowhere", "ro", False)}).status == 200
        ev = wait_for(lambda: next((e for e in call(port, "GET", "/v1/job/nowhere/evaluations").json()
                                    if e.get("FailedTGAllocs")), None), "a failed placement",
                      PLACE_DEADLINE_S)
        assert ev["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"missing compatible host volumes": 1}


def test_the_runner_knows_the_configured_volumes_before_the_node_registers() -> None:
    from actors.client.alloc_runner import AllocRunnerConfig

    c = Client(config=AllocRunnerConfig(host_volumes=(("data", "/srv/data", False),)))
    c.set(_valloc("a1", {"d": HOST}))  # no NodeVars yet (a task restored after an agent restart)
    c.until(lambda: c.status("a1") == "running", 5)
