"""review17: defects found reviewing the host networks merge (fingerprint, per-address ports)."""

from __future__ import annotations

from dataclasses import replace

from actors.client.fingerprint import fake_facts, node_networks
from actors.scheduler.scheduler import port_addresses
from runtime.sockaddr import Interface
from tests.test_host_networks import _net
from tests.test_scheduler import Cluster, service

# A dual-stack public interface as a cloud host has it: the kernel lists the IPv4 address first.
DUAL = (Interface("eth0", ("172.31.0.9/20",), index=2),
        Interface("eth1", ("52.1.2.3/24", "2600:1f18::5/64"), index=3))


def test_a_host_networks_addresses_keep_the_interfaces_order() -> None:
    """Found by review17: node_networks sorted the addresses as strings, so the IPv6 address of a
    dual-stack interface sorting first ('2600:..' < '52.') got the network's ports."""
    facts = replace(fake_facts("h", "172.31.0.9"), interfaces=DUAL)
    got = node_networks(facts, (("public", "", "eth1", ""),))
    assert [a for _, alias, a, _ in got if alias == "public"] == ["52.1.2.3", "2600:1f18::5"]
    # What the scheduler then does with it: the port goes on the first address of the network.
    c = Cluster()
    nid = c.node(0, cpu=8000, mem=8192, attrs={"unique.network.ip-address": "172.31.0.9"})
    rec = dict(c.state.tables["nodes"][nid])
    rec["NodeResources"] = {**rec["NodeResources"], "NodeNetworks": [
        {"Mode": "host", "Device": device, "Addresses": [
            {"Alias": alias, "Address": address, "ReservedPorts": reserved}]}
        for device, alias, address, reserved in got]}
    c.apply("node_register", node=rec)
    assert port_addresses(rec, {"HostNetwork": "public"})[0][0] == "52.1.2.3"
    c.register(**service("web", count=1, cpu=100, mem=64, **_net({"Label": "http", "HostNetwork": "public"})))
    c.schedule()
    (alloc,) = c.running("web")
    assert alloc["AllocatedPorts"][0]["HostIP"] == "52.1.2.3"
