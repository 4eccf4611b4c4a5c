"""Group network ports: validation, the scheduler's port allocation, the state machine's re-check, the task
environment, the API's shape, and a real task serving on its dynamic port."""

from __future__ import annotations

import sys
import urllib.request
from typing import Any

import pytest

from actors.client.alloc_runner import AllocRunnerConfig, parse_alloc, task_env
from actors.http_jobs import allocated_resources
from actors.scheduler.job import JobError, canonical_job
from actors.scheduler.scheduler import DYNAMIC_PORT_MAX, DYNAMIC_PORT_MIN, PORT_COLLISION, compute_plan
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(120)


def _net(*ports: dict[str, Any]) -> dict[str, Any]:
    static = [p for p in ports if "Value" in p]
    dynamic = [p for p in ports if "Value" not in p]
    return {"group": {"Networks": [{"ReservedPorts": static, "DynamicPorts": dynamic}]}}


def _cluster(n: int) -> Cluster:
    c = Cluster()
    for i in range(n):
        c.node(i, cpu=8000, mem=8192, attrs={"unique.network.ip-address": f"10.0.0.{i + 1}"})
    return c


def _ports(c: Cluster, job_id: str) -> list[tuple[str, dict[str, int]]]:
    return sorted(((a["NodeID"], {p["Label"]: p["Value"] for p in a.get("AllocatedPorts", ())})
                   for a in c.running(job_id)), key=lambda x: (x[0], sorted(x[1].items())))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("net,why", [
    ({"Networks": [{"DynamicPorts": [{"Label": "a-b"}]}]}, "letters, digits and underscores"),
    ({"Networks": [{"DynamicPorts": [{"Label": "a"}, {"Label": "a"}]}]}, "used twice"),
    ({"Networks": [{"ReservedPorts": [{"Label": "a"}]}]}, "a static port needs a value"),
    ({"Networks": [{"ReservedPorts": [{"Label": "a", "Value": 70000}]}]}, "must be <= 65535"),
    ({"Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "a"}]}]}, "only host"),
    ({"Networks": [{"DynamicPorts": [{"Label": "a"}]}, {"DynamicPorts": [{"Label": "b"}]}]}, "only one network"),
])
def test_a_bad_network_block_is_refused_naming_it(net, why):
    with pytest.raises(JobError, match=why):
        canonical_job(service("web", group=net))


# ---------------------------------------------------------------- placement


def test_dynamic_ports_are_picked_from_the_range_and_never_repeat_on_a_node():
    c = _cluster(1)
    c.register(**service("web", count=5, cpu=100, mem=64, **_net({"Label": "http"}, {"Label": "admin"})))
    c.schedule()
    got = _ports(c, "web")
    assert len(got) == 5
    values = [v for _, ports in got for v in ports.values()]
    assert len(set(values)) == 10 and all(DYNAMIC_PORT_MIN <= v <= DYNAMIC_PORT_MAX for v in values)
    alloc = c.running("web")[0]
    assert {p["HostIP"] for p in alloc["AllocatedPorts"]} == {"10.0.0.1"}


def test_a_static_port_is_held_once_per_node_and_the_rest_cannot_be_placed():
    c = _cluster(2)
    c.register(**service("web", count=3, cpu=100, mem=64, **_net({"Label": "http", "Value": 8080})))
    c.schedule()
    placed = _ports(c, "web")
    assert [p for _, p in placed] == [{"http": 8080}, {"http": 8080}] and placed[0][0] != placed[1][0]
    failed = [e for e in c.state.tables["evals"].values() if e.get("FailedTGAllocs")]
    assert failed
    assert failed[0]["FailedTGAllocs"]["g"]["DimensionExhausted"] == {f"{PORT_COLLISION} http=8080": 2}
    # Another job wanting 8080 has nowhere to go; one wanting 9090 fits.
    c.register(**service("other", count=1, cpu=100, mem=64, **_net({"Label": "http", "Value": 8080})))
    c.register(**service("third", count=1, cpu=100, mem=64, **_net({"Label": "http", "Value": 9090})))
    c.schedule()
    assert c.running("other") == [] and len(c.running("third")) == 1


def test_a_replacement_may_take_the_static_port_of_the_allocation_it_replaces():
    c = _cluster(1)
    job = service("web", count=1, cpu=100, mem=64, **_net({"Label": "http", "Value": 8080}))
    c.register(**job)
    c.schedule()
    c.client("running")
    first = c.running("web")[0]["ID"]
    c.register(**service("web", count=1, cpu=120, mem=64, **_net({"Label": "http", "Value": 8080})))
    c.schedule()
    now = c.running("web")
    # The new version replaces the old allocation on the one node, on the port it frees.
    assert len(now) == 1 and now[0]["ID"] != first and now[0]["AllocatedPorts"][0]["Value"] == 8080


def test_the_state_machine_refuses_a_port_another_plan_took_first():
    c = _cluster(1)
    for job_id in ("a", "b"):
        c.register(**service(job_id, count=1, cpu=100, mem=64, **_net({"Label": "http", "Value": 8080})))
    evals = sorted(c.state.tables["evals"].values(), key=lambda e: e["CreateIndex"])
    # Both plans are computed against the same state, as two workers would.
    plans = [compute_plan(c.state.tables, ev) for ev in evals]
    assert all(len(p["Place"]) == 1 for p in plans)
    results = [c.apply("plan_apply", plan=p) for p in plans]
    assert len(results[0]["placed"]) == 1 and results[1]["refused"] == [plans[1]["Place"][0]["ID"]]


def test_a_nodes_reserved_host_ports_and_dynamic_range_are_kept():
    c = Cluster()
    nid = c.node(0, cpu=8000, mem=8192)
    node = dict(c.state.tables["nodes"][nid])
    node["NodeResources"] = {**node["NodeResources"], "MinDynamicPort": 30000, "MaxDynamicPort": 30003}
    node["ReservedResources"] = {**node["ReservedResources"], "Networks": {"ReservedHostPorts": "22,30001"}}
    c.apply("node_register", node=node)
    c.register(**service("ssh", count=1, cpu=100, mem=64, **_net({"Label": "ssh", "Value": 22})))
    c.register(**service("web", count=4, cpu=100, mem=64, **_net({"Label": "http"})))
    c.schedule()
    assert c.running("ssh") == []  # 22 belongs to the host
    got = sorted(p["Value"] for a in c.running("web") for p in a["AllocatedPorts"])
    assert got == [30000, 30002, 30003]  # the range less the reserved port; the fourth has none left
    failed = [e for e in c.state.tables["evals"].values() if e.get("FailedTGAllocs", {}).get("g")]
    assert any("dynamic port selection failed" in str(e["FailedTGAllocs"]) for e in failed)


def test_the_port_config_keys_parse_and_bad_ones_are_refused(tmp_path):
    from runtime.config import ConfigError, load_files, parse_port_ranges, validate

    assert parse_port_ranges("22, 80,8000-8002") == (22, 80, 8000, 8001, 8002)
    for bad in ("x", "0", "9-8", "70000"):
        with pytest.raises(ValueError):
            parse_port_ranges(bad)
    path = tmp_path / "c.toml"
    path.write_text('[client]\nenabled = true\nmin_dynamic_port = 25000\nmax_dynamic_port = 26000\n'
                    '[client.reserved]\nreserved_ports = "22,80"\n')
    cfg, _, _ = load_files([str(path)])
    assert (cfg.client.min_dynamic_port, cfg.client.max_dynamic_port, cfg.client.reserved.reserved_ports) == \
        (25000, 26000, "22,80")
    for text, why in (('min_dynamic_port = 30000\nmax_dynamic_port = 20000\n', "must be <="),
                      ('[client.reserved]\nreserved_ports = "22-x"\n', "reserved_ports")):
        path.write_text("[client]\nenabled = true\n" + text)
        with pytest.raises(ConfigError, match=why):
            validate(load_files([str(path)])[0])


# ---------------------------------------------------------------- the client and the API


def test_the_task_environment_and_the_api_carry_the_ports():
    c = _cluster(1)
    c.register(**service("web", count=1, cpu=100, mem=64,
                         **_net({"Label": "http"}, {"Label": "db", "Value": 5432, "To": 6000})))
    c.schedule()
    alloc = {**c.running("web")[0], "Job": c.state.tables["jobs"]["web"], "AllocModifyIndex": 1}
    spec = parse_alloc(alloc, AllocRunnerConfig())
    env = task_env(spec, spec.tasks[0], "/alloc", "/alloc/t")
    http = next(p["Value"] for p in alloc["AllocatedPorts"] if p["Label"] == "http")
    assert env["NOMAD_PORT_http"] == env["NOMAD_HOST_PORT_http"] == str(http)
    assert env["NOMAD_ADDR_http"] == f"10.0.0.1:{http}" and env["NOMAD_IP_http"] == "10.0.0.1"
    assert (env["NOMAD_PORT_db"], env["NOMAD_HOST_PORT_db"]) == ("6000", "5432")
    shared = allocated_resources(alloc)["Shared"]
    assert {p["Label"]: p["Value"] for p in shared["Ports"]} == {"http": http, "db": 5432}
    net = shared["Networks"][0]
    assert [p["Label"] for p in net["ReservedPorts"]] == ["db"] and [p["Label"] for p in net["DynamicPorts"]] \
        == ["http"]


def test_driver_config_is_interpolated_from_the_task_environment():
    from actors.client.alloc_runner import interpolate

    env = {"NOMAD_PORT_http": "20123", "NOMAD_TASK_DIR": "/a/local"}
    config = {"command": "/bin/srv", "args": ["-port=${NOMAD_PORT_http}", "${NOMAD_TASK_DIR}/conf", "${UNKNOWN}"],
              "nested": {"k": ["${NOMAD_PORT_http}"]}, "n": 3}
    assert interpolate(config, env) == {"command": "/bin/srv", "args": ["-port=20123", "/a/local/conf", "${UNKNOWN}"],
                                        "nested": {"k": ["20123"]}, "n": 3}


def test_an_hcl_network_block_becomes_the_groups_ports():
    from runtime.hcl_job import parse_hcl_job

    job = canonical_job(parse_hcl_job('''
job "web" {
  group "g" {
    network {
      port "http" {}
      port "db" {
        static = 5432
        to     = 6000
      }
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}'''))
    assert job["TaskGroups"][0]["Networks"] == [{"Mode": "host", "ReservedPorts": [
        {"Label": "db", "To": 6000, "Value": 5432}], "DynamicPorts": [{"Label": "http", "To": 0}]}]


# ---------------------------------------------------------------- a real task on its port

from tests.test_agent_process import wait_for  # noqa: E402
from tests.test_http_jobs import call, dev  # noqa: E402,F401


def test_a_task_serves_on_the_dynamic_port_it_was_given(dev):  # noqa: F811
    port = dev.http_port
    job = {"ID": "served", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "web", "Count": 1,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Tasks": [{"Name": "server", "Driver": "raw_exec",
                   "Config": {"command": sys.executable,
                              "args": ["-m", "http.server", "${NOMAD_PORT_http}", "--bind", "127.0.0.1"]},
                   "Resources": {"CPU": 50, "MemoryMB": 64}}]}]}
    r = call(port, "PUT", "/v1/jobs", {"Job": job})
    assert r.status == 200, r.text
    try:
        def running() -> dict | None:
            allocs = call(port, "GET", "/v1/job/served/allocations").json()
            if allocs and allocs[0]["ClientStatus"] == "running":
                return call(port, "GET", f"/v1/allocation/{allocs[0]['ID']}").json()
            return None

        alloc = wait_for(running, "the task to run", timeout_s=30)
        host_port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]

        def served() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2) as resp:
                    return resp.read()
            except OSError:
                return None  # the server is still starting

        body = wait_for(served, "the task to answer on its port", timeout_s=30)
        assert b"Directory listing" in body
        from tests.test_cli_jobs import nomad

        shown = nomad(dev, "alloc", "status", alloc["ID"]).stdout
        assert "Allocation Addresses:" in shown and f"*http  yes      127.0.0.1:{host_port}" in shown, shown
    finally:
        assert call(port, "DELETE", "/v1/job/served").status == 200
        wait_for(lambda: not any(a["ClientStatus"] == "running"
                                 for a in call(port, "GET", "/v1/job/served/allocations").json()),
                 "the task to stop", timeout_s=30)
        call(port, "DELETE", "/v1/job/served?purge=true")
