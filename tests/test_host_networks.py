"""Named host networks (Nomad's client host_network blocks and a port's host_network): the fingerprint of
their addresses, the node record, the scheduler's feasibility check and per-address port assignment, the
plan applier, the task environment, and a real dev agent."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from actors.client.alloc_runner import AllocRunnerConfig, parse_alloc, task_env
from actors.client.fingerprint import fake_facts, fingerprint, node_networks, significant_change
from actors.client.messages import NodeSpec
from actors.scheduler.job import JobError, canonical_job
from actors.scheduler.scheduler import compute_plan
from actors.server.node_endpoint import node_record
from runtime.sockaddr import Interface
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(120)

IFACES = (Interface("lo", ("127.0.0.1/8", "::1/128"), index=1),
          Interface("eth0", ("192.168.1.5/24", "fe80::1/64"), index=2),
          Interface("eth1", ("10.1.2.3/16", "10.9.9.9/16"), index=3),
          Interface("eth2", ("fe80::2/64",), index=4))
PUBLIC = ("public", "10.0.0.0/8", "eth1", "22")


# ---------------------------------------------------------------- fingerprint


def test_each_host_network_is_the_addresses_in_its_cidr_and_on_its_interface() -> None:
    facts = replace(fake_facts("h", "192.168.1.5"), interfaces=IFACES)
    nets = (("any", "", "", ""), ("loop", "127.0.0.0/8,::1/128", "", "1-100"), PUBLIC,
            ("wrong-if", "10.0.0.0/8", "eth0", ""), ("ll", "fe80::/10", "", ""))
    got = node_networks(facts, nets)
    by_alias: dict[str, list[tuple[str, str, str]]] = {}
    for device, alias, address, reserved in got:
        by_alias.setdefault(alias, []).append((device, address, reserved))
    assert by_alias["default"] == [("eth0", "192.168.1.5", "")]  # the node's own address
    assert by_alias["public"] == [("eth1", "10.1.2.3", "22"), ("eth1", "10.9.9.9", "22")]
    assert by_alias["loop"] == [("lo", "127.0.0.1", "1-100"), ("lo", "::1", "1-100")]
    assert "wrong-if" not in by_alias  # in the CIDR, but not on eth0
    # A link-local address counts only on an interface with no other (Nomad's fingerprint).
    assert by_alias["ll"] == [("eth2", "fe80::2", "")]
    assert {a for _, a, _ in by_alias["any"]} == {"127.0.0.1", "::1", "192.168.1.5", "10.1.2.3", "10.9.9.9",
                                                  "fe80::2"}


def test_with_no_interfaces_known_the_default_network_is_the_nodes_address() -> None:
    fp = fingerprint(fake_facts("h", "10.0.0.1"), nomad_version="2.0.6")
    assert fp.node_networks == (("", "default", "10.0.0.1", ""),)
    facts = replace(fake_facts("h", "10.1.2.3"), interfaces=IFACES)
    moved = fingerprint(facts, nomad_version="2.0.6", host_networks=(PUBLIC,))
    assert ("eth1", "public", "10.1.2.3", "22") in moved.node_networks
    assert significant_change(fp, moved)  # a changed host network re-registers the node


def test_an_interface_template_names_the_interface() -> None:
    facts = replace(fake_facts("h", "192.168.1.5"), interfaces=IFACES)
    template = '{{ GetAllInterfaces | include "name" "eth1" | attr "name" }}'
    got = node_networks(facts, (("t", "", template, ""),))
    assert sorted(a for _, alias, a, _ in got if alias == "t") == ["10.1.2.3", "10.9.9.9"]


def test_the_node_record_carries_nomads_node_networks_and_host_networks() -> None:
    spec = NodeSpec(node_id="n1", secret_id="s", name="n1", host_networks=(PUBLIC,),
                    node_networks=(("eth0", "default", "192.168.1.5", ""),
                                   ("eth1", "public", "10.1.2.3", "22")))
    rec = node_record(spec)
    assert rec["HostNetworks"] == {"public": {"Name": "public", "CIDR": "10.0.0.0/8", "Interface": "eth1",
                                              "ReservedPorts": "22"}}
    assert rec["NodeResources"]["NodeNetworks"] == [
        {"Mode": "host", "Device": "eth0", "MacAddress": "", "Speed": 0, "Addresses": [
            {"Family": "ipv4", "Alias": "default", "Address": "192.168.1.5", "ReservedPorts": "",
             "Gateway": ""}]},
        {"Mode": "host", "Device": "eth1", "MacAddress": "", "Speed": 0, "Addresses": [
            {"Family": "ipv4", "Alias": "public", "Address": "10.1.2.3", "ReservedPorts": "22",
             "Gateway": ""}]}]
    old = node_record(NodeSpec(node_id="n1", secret_id="s", name="n1"))  # an older client's registration
    assert "HostNetworks" not in old and "NodeNetworks" not in old["NodeResources"]


# ---------------------------------------------------------------- scheduler


def _node(c: Cluster, i: int, networks: list[tuple[str, str, str]]) -> str:
    """A ready node at 192.168.0.<i+1> with the host network addresses (alias, address, reserved_ports)."""
    nid = c.node(i, cpu=8000, mem=8192, attrs={"unique.network.ip-address": f"192.168.0.{i + 1}"})
    rec = dict(c.state.tables["nodes"][nid])
    rec["NodeResources"] = {**rec["NodeResources"], "NodeNetworks": [
        {"Mode": "host", "Device": "eth0", "Addresses": [
            {"Alias": alias, "Address": address, "ReservedPorts": reserved}
            for alias, address, reserved in [("default", f"192.168.0.{i + 1}", ""), *networks]]}]}
    c.apply("node_register", node=rec)
    return nid


def _net(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"group": {"Networks": [{"ReservedPorts": [p for p in ports if "Value" in p],
                                    "DynamicPorts": [p for p in ports if "Value" not in p]}]}}


def test_a_port_on_a_host_network_places_only_where_it_is_and_takes_its_address() -> None:
    c = Cluster()
    _node(c, 0, [])
    with_public = _node(c, 1, [("public", "10.1.2.3", "")])
    c.register(**service("web", count=2, cpu=100, mem=64,
                         **_net({"Label": "http", "HostNetwork": "public"}, {"Label": "plain"})))
    c.schedule()
    allocs = c.running("web")
    assert [a["NodeID"] for a in allocs] == [with_public, with_public]
    for a in allocs:
        ports = {p["Label"]: p for p in a["AllocatedPorts"]}
        assert ports["http"]["HostIP"] == "10.1.2.3" and ports["plain"]["HostIP"] == "192.168.0.2"
    c.register(**service("api", count=1, cpu=100, mem=64,
                         **_net({"Label": "http", "HostNetwork": "private"})))
    c.schedule()
    assert c.running("api") == []
    ev = next(e for e in c.state.tables["evals"].values() if e["JobID"] == "api" and e.get("FailedTGAllocs"))
    assert ev["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {
        'missing host network "private" for port "http"': 2}


def test_the_environment_carries_the_host_networks_address() -> None:
    c = Cluster()
    _node(c, 0, [("public", "10.1.2.3", "")])
    c.register(**service("web", count=1, cpu=100, mem=64,
                         **_net({"Label": "http", "HostNetwork": "public"})))
    c.schedule()
    alloc = {**c.running("web")[0], "Job": c.state.tables["jobs"]["web"], "AllocModifyIndex": 1}
    spec = parse_alloc(alloc, AllocRunnerConfig())
    env = task_env(spec, spec.tasks[0], "/alloc", "/alloc/t")
    port = env["NOMAD_PORT_http"]
    assert env["NOMAD_IP_http"] == env["NOMAD_HOST_IP_http"] == "10.1.2.3"
    assert env["NOMAD_ADDR_http"] == f"10.1.2.3:{port}"


def test_a_static_port_is_taken_per_address_and_a_host_networks_reserved_ports_are_kept() -> None:
    c = Cluster()
    _node(c, 0, [("public", "10.1.2.3", "22"), ("admin", "10.5.5.5", "")])
    for job_id, net in (("a", "public"), ("b", "admin"), ("c", None), ("d", "admin")):
        port = {"Label": "http", "Value": 8080, **({"HostNetwork": net} if net else {})}
        c.register(**service(job_id, count=1, cpu=100, mem=64, **_net(port)))
    c.register(**service("ssh", count=1, cpu=100, mem=64, **_net({"Label": "ssh", "Value": 22,
                                                                   "HostNetwork": "public"})))
    c.register(**service("ssh2", count=1, cpu=100, mem=64, **_net({"Label": "ssh", "Value": 22})))
    c.schedule()
    held = {a["JobID"]: a["AllocatedPorts"][0]["HostIP"] for a in c.state.tables["allocs"].values()}
    # 8080 once on each address; the fourth asks for one already held; 22 is public's own.
    assert held == {"a": "10.1.2.3", "b": "10.5.5.5", "c": "192.168.0.1", "ssh2": "192.168.0.1"}


def test_the_plan_applier_refuses_a_port_taken_on_the_same_address_only() -> None:
    c = Cluster()
    _node(c, 0, [("public", "10.1.2.3", ""), ("admin", "10.5.5.5", "")])
    for job_id, net in (("a", "public"), ("b", "admin"), ("c", "public")):
        c.register(**service(job_id, count=1, cpu=100, mem=64,
                             **_net({"Label": "http", "Value": 8080, "HostNetwork": net})))
    evals = sorted(c.state.tables["evals"].values(), key=lambda e: e["CreateIndex"])
    plans = [compute_plan(c.state.tables, ev) for ev in evals]  # against one state, as three workers
    assert all(len(p["Place"]) == 1 for p in plans)
    results = [c.apply("plan_apply", plan=p) for p in plans]
    assert [len(r["placed"]) for r in results] == [1, 1, 0]


# ---------------------------------------------------------------- a real agent


@pytest.mark.timeout(120)
def test_a_dev_agent_puts_a_port_on_its_host_network(tmp_path) -> None:
    from tests.ports import free_port
    from tests.test_agent_process import wait_for
    from tests.test_cli_jobs import nomad
    from tests.test_http_jobs import PLACE_DEADLINE_S, call, running_agent, stop_all_jobs

    port = free_port()
    conf = tmp_path / "agent.hcl"
    conf.write_text(f"ports {{\n  http = {port}\n  rpc  = {free_port()}\n  serf = {free_port()}\n}}\n"
                    'client {\n  host_network "lo" {\n    cidr = "127.0.0.0/8"\n'
                    '    reserved_ports = "1-1024"\n'
                    "  }\n}\n")

    def job(job_id: str, network: str) -> dict[str, Any]:
        return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
            "Name": "web", "Count": 1,
            "Networks": [{"DynamicPorts": [{"Label": "http", "HostNetwork": network}]}],
            "Tasks": [{"Name": "main", "Driver": "raw_exec",
                       "Config": {"command": "/bin/sh",
                                  "args": ["-c", "echo ip=$NOMAD_IP_http addr=$NOMAD_ADDR_http; sleep 60"]},
                       "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}

    with running_agent(["-dev", "-config", str(conf)], port) as agent:
        try:
            (stub,) = wait_for(lambda: [n for n in call(port, "GET", "/v1/nodes").json()
                                        if n["Status"] == "ready"], "the dev node")
            node = call(port, "GET", f"/v1/node/{stub['ID']}").json()
            assert node["HostNetworks"]["lo"]["CIDR"] == "127.0.0.0/8"
            aliases = {(a["Alias"], a["Address"]) for n in node["NodeResources"]["NodeNetworks"]
                       for a in n["Addresses"]}
            assert ("lo", "127.0.0.1") in aliases and ("default", "127.0.0.1") in aliases
            plain = nomad(agent, "node", "status", stub["ID"]).stdout
            assert re.search(r"^Host Networks\s*=\s*lo$", plain, re.M), plain
            status = nomad(agent, "node", "status", "-verbose", stub["ID"]).stdout
            assert re.search(r"^Host Networks\n.*Name\s+CIDR\s+Interface\s+ReservedPorts\n"
                             r"lo\s+127\.0\.0\.0/8\s+1-1024$", status, re.M), status
            assert call(port, "PUT", "/v1/jobs", {"Job": job("web", "lo")}).status == 200
            (alloc,) = wait_for(lambda: [a for a in call(port, "GET", "/v1/job/web/allocations").json()
                                         if a["ClientStatus"] == "running"],
                              "the allocation", PLACE_DEADLINE_S)
            out = wait_for(lambda: (r := call(port, "GET", f"/v1/client/fs/cat/{alloc['ID']}"
                                                         "?path=alloc/logs/main.stdout.0")).status == 200
                           and "ip=" in r.text and r.text, "the task's output")
            value = int(re.search(r"addr=127\.0\.0\.1:(\d+)", out).group(1))
            assert "ip=127.0.0.1 " in out and value > 1024
            assert call(port, "PUT", "/v1/jobs", {"Job": job("nowhere", "public")}).status == 200
            ev = wait_for(lambda: [e for e in call(port, "GET", "/v1/job/nowhere/evaluations").json()
                                   if e.get("FailedTGAllocs")], "the failed placement", PLACE_DEADLINE_S)[0]
            assert ev["FailedTGAllocs"]["web"]["ConstraintFiltered"] == {
                'missing host network "public" for port "http"': 1}
        finally:
            stop_all_jobs(port)


def test_moving_a_port_to_another_host_network_replaces_the_allocation() -> None:
    c = Cluster()
    _node(c, 0, [("public", "10.1.2.3", ""), ("admin", "10.5.5.5", "")])
    c.register(**service("web", count=1, cpu=100, mem=64, **_net({"Label": "http", "HostNetwork": "public"})))
    c.schedule()
    (first,) = c.running("web")
    c.register(**service("web", count=1, cpu=100, mem=64, **_net({"Label": "http", "HostNetwork": "admin"})))
    c.schedule()
    c.client()  # the old allocation's client reports it stopped
    (second,) = c.running("web")
    assert second["ID"] != first["ID"]  # Nomad's networkUpdated: a new allocation, not an in-place update
    assert second["AllocatedPorts"][0]["HostIP"] == "10.5.5.5"


def test_one_static_port_on_two_host_networks_of_a_group_takes_both_addresses() -> None:
    both = _net({"Label": "a", "Value": 8080, "HostNetwork": "public"}, {"Label": "b", "Value": 8080})
    with pytest.raises(JobError, match="static port 8080 is reserved twice"):
        canonical_job(service("web", **_net({"Label": "a", "Value": 8080}, {"Label": "b", "Value": 8080})))
    c = Cluster()
    _node(c, 0, [("public", "10.1.2.3", "")])
    c.register(**service("web", count=2, cpu=100, mem=64, **both))
    c.schedule()
    (alloc,) = c.running("web")  # the second finds 8080 held on both addresses
    assert {p["Label"]: p["HostIP"] for p in alloc["AllocatedPorts"]} == {"a": "10.1.2.3", "b": "192.168.0.1"}
    c2 = Cluster()  # a host network on the node's own address: the two ports cannot share it
    _node(c2, 0, [("public", "192.168.0.1", "")])
    c2.register(**service("web", count=1, cpu=100, mem=64, **both))
    c2.schedule()
    assert c2.running("web") == []
