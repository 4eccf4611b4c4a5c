"""client.no_host_uuid = false: the node ID is the host's UUID (Nomad's ensureNodeID)."""

from __future__ import annotations

from actors.client.node import ClientNodeConfig, read_host_uuid
from sim.client_cluster import ClientCluster, ClusterConfig


def test_host_uuid_is_read_from_the_firmware_then_the_machine_id(tmp_path):
    product, machine = tmp_path / "product_uuid", tmp_path / "machine-id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    assert read_host_uuid((str(product), str(machine))) == "01234567-89ab-cdef-0123-456789abcdef"
    product.write_text("4C4C4544-0042-3510-8052-B4C04F4E4E32\n")
    assert read_host_uuid((str(product), str(machine))) == "4c4c4544-0042-3510-8052-b4c04f4e4e32"
    product.write_text("not a uuid")
    machine.unlink()
    assert read_host_uuid((str(product), str(machine))) == ""


def test_a_node_with_a_host_uuid_registers_under_it_and_keeps_it():
    host = "4c4c4544-0042-3510-8052-b4c04f4e4e32"
    c = ClientCluster(3, ClusterConfig(n_clients=1, client=ClientNodeConfig(host_uuid=host)))
    c.run(60.0)
    assert list(c.nodes()) == [host] and c.statuses() == {"ready": 1}
    c.crash(c.clients[0])
    c.run(1.0)
    c.restart(c.clients[0])
    c.run(60.0)
    assert list(c.nodes()) == [host]
    c.close()
