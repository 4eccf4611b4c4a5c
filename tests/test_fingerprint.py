"""Fingerprinting: Nomad's attribute names, resources, change detection, probes, identity."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest

from actors.client.fingerprint import (
    FakeHost,
    FingerprintChanged,
    FingerprintConfig,
    Fingerprinter,
    PsutilProbe,
    SubscribeFingerprint,
    _os_release,
    detect_drivers,
    fake_facts,
    fingerprint,
    goarch,
    significant_change,
)
from actors.client.messages import NodeSpec, NodeUpdateResponse, RegisterNode, Resources, UpdateNodeStatus
from actors.client.node import (
    ClientNodeConfig,
    FileIdentityStore,
    MemoryIdentityStore,
    _with_port,
    client_permission_warnings,
)
from runtime import wire
from runtime.actor import NodeActor
from runtime.config import Config
from sim.runtime import Scheduler

NOMAD_NAMES = {"cpu.arch", "cpu.numcores", "cpu.frequency", "cpu.totalcompute", "memory.totalbytes",
               "kernel.name", "kernel.version", "os.name", "os.version", "unique.hostname",
               "unique.network.ip-address", "unique.storage.volume", "unique.storage.bytestotal",
               "unique.storage.bytesfree", "nomad.version"}
FACTS = fake_facts("web-1", "10.0.0.7", cores=8, mhz=3000, memory_gb=32, disk_gb=200,
                   drivers=("raw_exec", "exec"))


def test_attributes_use_nomads_names_and_string_values():
    fp = fingerprint(FACTS, nomad_version="2.0.6")
    attrs = dict(fp.attributes)
    assert set(attrs) == NOMAD_NAMES | {"driver.raw_exec", "driver.exec"}
    assert all(isinstance(v, str) for v in attrs.values())
    assert attrs["unique.hostname"] == "web-1" and attrs["unique.network.ip-address"] == "10.0.0.7"
    assert attrs["kernel.name"] == "linux" and attrs["nomad.version"] == "2.0.6"
    assert attrs["memory.totalbytes"] == str(32 << 30)
    assert [k for k, _ in fp.attributes] == sorted(attrs)


def test_cpu_arch_is_goarch():
    assert [goarch(m) for m in ("x86_64", "aarch64", "arm64", "i686", "armv7l", "riscv64")] == \
        ["amd64", "arm64", "arm64", "386", "arm", "riscv64"]
    assert dict(fingerprint(FACTS, nomad_version="x").attributes)["cpu.arch"] == "amd64"


def test_total_compute_is_cores_times_frequency():
    attrs = dict(fingerprint(FACTS, nomad_version="x").attributes)
    got = (attrs["cpu.numcores"], attrs["cpu.frequency"], attrs["cpu.totalcompute"])
    assert got == ("8", "3000", "24000")


def test_node_resources_are_mhz_and_mb_with_disk_from_free_space():
    fp = fingerprint(FACTS, nomad_version="x")
    assert fp.resources == Resources(cpu_mhz=24000, memory_mb=32 * 1024, disk_mb=100 * 1024)


def test_reserved_resources_come_from_config():
    fp = fingerprint(FACTS, nomad_version="x", reserved=Resources(cpu_mhz=500, memory_mb=256, disk_mb=1024))
    assert fp.reserved == Resources(cpu_mhz=500, memory_mb=256, disk_mb=1024)


def test_one_driver_attribute_per_detected_driver():
    fp = fingerprint(FACTS, nomad_version="x")
    assert fp.drivers == ("exec", "raw_exec")
    assert fp.attribute("driver.exec") == "1" and fp.attribute("driver.docker") is None


def test_free_disk_alone_is_not_a_change_but_anything_else_is():
    old = fingerprint(FACTS, nomad_version="x")
    less_free = fingerprint(replace(FACTS, storage_bytes_free=1 << 30), nomad_version="x")
    assert not significant_change(old, less_free)
    assert significant_change(old, fingerprint(replace(FACTS, drivers=("raw_exec",)), nomad_version="x"))
    assert significant_change(old, fingerprint(replace(FACTS, memory_bytes=64 << 30), nomad_version="x"))
    assert significant_change(old, fingerprint(FACTS, nomad_version="y"))
    assert significant_change(None, old)


def test_os_release_gives_platform_id_and_version(tmp_path):
    p = tmp_path / "os-release"
    p.write_text('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n')
    assert _os_release(str(p)) == ("debian", "12")


def test_drivers_detected_from_options_and_privileges():
    opts = {"driver.raw_exec.enable": "true"}
    assert detect_drivers(opts, is_root=False, kernel_name="linux") == ("raw_exec",)
    cgroups_ok = lambda: (object(), "")  # the exec driver's cgroup probe, injected
    no_cgroups = lambda: (None, "Failed to discover cgroup mount point")
    assert detect_drivers((), is_root=True, kernel_name="linux", cgroups=cgroups_ok) == ("exec",)
    assert detect_drivers((), is_root=True, kernel_name="darwin", cgroups=cgroups_ok) == ()
    # exec needs cgroups it can create: without, it is not reported, so no exec task is placed here to fail.
    assert detect_drivers((), is_root=True, kernel_name="linux", cgroups=no_cgroups) == ()
    assert detect_drivers((), is_root=True, kernel_name="linux", available=("raw_exec",),
                          cgroups=cgroups_ok) == ()
    # The plugin block's "enabled" decides when it is set, either way; else the option does.
    assert detect_drivers((), is_root=False, raw_exec_enabled=True) == ("raw_exec",)
    assert detect_drivers(opts, is_root=False, raw_exec_enabled=False) == ()
    assert detect_drivers(opts, is_root=False, raw_exec_enabled=None) == ("raw_exec",)


def test_psutil_probe_reads_this_host(tmp_path):
    facts = PsutilProbe(str(tmp_path), drivers=("raw_exec",)).facts()
    fp = fingerprint(facts, nomad_version="2.0.6")
    assert facts.num_cores >= 1 and facts.memory_bytes > 0 and facts.storage_bytes_total > 0
    assert facts.kernel_name == "linux" and facts.hostname
    assert fp.resources.memory_mb > 0 and fp.attribute("driver.raw_exec") == "1"
    assert set(dict(fp.attributes)) >= NOMAD_NAMES


# ------------------------------------------------------------ the actor (simulator)
class Sink(NodeActor):
    def __init__(self, env, name, got: list) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message):
        if isinstance(message, FingerprintChanged):
            self.got.append((self.env.now(), message.fingerprint))


class Polled:
    """A probe that cannot say when its facts change (as PsutilProbe): the Fingerprinter polls it."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def facts(self):
        return self.host.facts()


def _fingerprinter(host, interval: float = 30.0):
    sched = Scheduler(seed=3)
    node = sched.add_node("c1")
    got: list = []
    node.env.spawn(Sink, "client", got)
    cfg = FingerprintConfig(refresh_interval_s=interval)
    node.env.spawn(Fingerprinter, "fingerprint", probe=host, config=cfg)
    return sched, node, got


@pytest.mark.parametrize("watched", [False, True], ids=["polled", "watched"])
def test_fingerprinter_reports_at_start_then_only_on_change(watched):
    host = FakeHost(FACTS)
    sched, _, got = _fingerprinter(host if watched else Polled(host))
    sched.run_for(100)
    # Polled: at 0, 30, 60, 90.  Watched: once; nothing changed since.
    assert len(got) == 1 and got[0][0] == 0.0 and host.probes == (1 if watched else 4)
    host.update(storage_bytes_free=1234)
    sched.run_for(30)
    assert len(got) == 1  # free space alone
    host.update(drivers=("raw_exec",))
    sched.run_for(30)
    # Seen at the next refresh boundary either way: 150 (start + 5 intervals).
    assert len(got) == 2 and got[1][1].drivers == ("raw_exec",) and got[1][0] == pytest.approx(150.0)
    assert host.probes == (3 if watched else 6)
    sched.close()


def test_watched_host_is_probed_only_at_the_boundary_after_each_change():
    host = FakeHost(FACTS)
    sched, node, got = _fingerprinter(host, interval=10)
    sched.run_for(33)
    host.update(cpu_mhz=1000)  # at 33: seen at 40, as a poll every 10 s would see it
    host.update(cpu_mhz=1100)  # a second change before it: still one probe, of the latest facts
    sched.run_for(30)
    assert [t for t, _ in got] == [0.0, pytest.approx(40.0)] and host.probes == 2
    assert got[1][1].resources.cpu_mhz == 8 * 1100
    fp = sched.actor_of(node.actors["fingerprint"])
    assert not fp.timer_armed("refresh")  # idle again until the next change
    sched.close()


@pytest.mark.parametrize("watched", [False, True], ids=["polled", "watched"])
def test_fingerprinter_keeps_the_last_fingerprint_and_its_timer_after_a_probe_error(watched):
    host = FakeHost(FACTS)
    sched, node, got = _fingerprinter(host if watched else Polled(host), interval=10)
    sched.run_for(5)
    host.fail = True
    sched.run_for(30)
    fp = sched.actor_of(node.actors["fingerprint"])
    assert fp.errors == 3 and fp.current == got[0][1]  # at 10, 20 and 30: a failing probe is retried
    host.fail = False
    host.update(cpu_mhz=1000)
    sched.run_for(10)
    assert len(got) == 2 and got[1][0] == pytest.approx(40.0)
    sched.close()


def test_a_restarted_fingerprinter_takes_over_the_watch():
    host = FakeHost(FACTS)
    sched, node, got = _fingerprinter(host, interval=10)
    sched.run_for(15)
    node.crash()
    host.update(cpu_mhz=1000)  # while down: nobody is told; the new one probes at start
    sched.run_for(5)
    node.restart()
    node.env.spawn(Sink, "client", got)
    node.env.spawn(Fingerprinter, "fingerprint", probe=host, config=FingerprintConfig(refresh_interval_s=10))
    sched.run_for(12)
    host.update(cpu_mhz=1200)  # at 32: the new watcher arms its next boundary, 20 + 2 x 10
    sched.run_for(20)
    assert [round(t, 6) for t, _ in got] == [0.0, 20.0, 40.0]
    assert got[-1][1].resources.cpu_mhz == 8 * 1200
    sched.close()


def test_subscriber_gets_the_current_fingerprint_on_subscribe():
    sched, node, got = _fingerprinter(FakeHost(FACTS))
    sched.run_for(1)
    node.env.send("c1", "fingerprint", SubscribeFingerprint("client"))
    sched.run_for(1)
    assert len(got) == 2 and got[0][1] == got[1][1]
    sched.close()


# ------------------------------------------------------------ wire messages and identity
def test_node_messages_round_trip_the_wire_codec():
    spec = NodeSpec(node_id="n1", secret_id="s", name="web-1",
                    attributes=fingerprint(FACTS, nomad_version="x").attributes, meta=(("rack", "r1"),),
                    drivers=("exec",), resources=Resources(cpu_mhz=1, memory_mb=2, disk_mb=3))
    for m in (RegisterNode(req_id=1, reply_node="c1", reply_actor="client", node=spec),
              UpdateNodeStatus(req_id=2, reply_node="c1", reply_actor="client", node_id="n1"),
              NodeUpdateResponse(req_id=3, ok=True, heartbeat_ttl_s=12.5, leader="s1", servers=("s1", "s2"))):
        assert wire.decode(wire.encode(m)) == m
        assert 300 <= type(m).TAG <= 349


def test_bad_node_messages_are_refused_at_construction():
    with pytest.raises(ValueError):
        UpdateNodeStatus(req_id=1, reply_node="c", reply_actor="a", node_id="n", status="sleepy")
    with pytest.raises(ValueError):
        NodeSpec(node_id="n", secret_id="s", name="x", node_pool="all")
    with pytest.raises(ValueError):
        Resources(cpu_mhz=-1)


def test_file_identity_store_persists_ids_owner_only(tmp_path):
    d = tmp_path / "client"
    store = FileIdentityStore(str(d))
    assert store.load() is None
    store.save("node-1", "secret-1")
    assert FileIdentityStore(str(d)).load() == ("node-1", "secret-1")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / "client-id").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d / "secret-id").st_mode) == 0o600


def test_memory_identity_store_survives_as_long_as_the_object():
    s = MemoryIdentityStore()
    s.save("a", "b")
    assert s.load() == ("a", "b")


def test_client_config_from_agent_config_defaults_server_port():
    cfg = Config(datacenter="dc2")
    servers = ("10.0.0.1", "10.0.0.2:5000", "[::1]")
    cfg = replace(cfg, client=replace(cfg.client, servers=servers, node_class="gpu"))
    c = ClientNodeConfig.from_config(cfg, name="n1")
    assert c.servers == ("10.0.0.1:4647", "10.0.0.2:5000", "[::1]:4647")
    assert (c.datacenter, c.node_class, c.name) == ("dc2", "gpu", "n1")
    assert _with_port("[::1]:9") == "[::1]:9"


def test_non_root_client_gets_a_warning_naming_what_will_not_work():
    assert client_permission_warnings(0) == []
    (w,) = client_permission_warnings(1000)
    assert "exec driver" in w and "non-root" in w


def test_operator_totals_override_what_was_detected():
    from actors.client.fingerprint import TotalsOverride

    facts = fake_facts("h", "10.0.0.1", cores=4, mhz=2400, memory_gb=16, disk_gb=100)
    fp = fingerprint(facts, nomad_version="2.0.6",
                     totals=TotalsOverride(cpu_total_compute=5000, memory_total_mb=2048, disk_total_mb=50_000,
                                           disk_free_mb=20_000))
    assert fp.attribute("cpu.totalcompute") == "5000" and fp.attribute("cpu.frequency") == "2400"
    assert fp.attribute("cpu.numcores") == "4" and fp.attribute("memory.totalbytes") == str(2048 << 20)
    assert fp.attribute("unique.storage.bytestotal") == str(50_000 << 20)
    assert fp.attribute("unique.storage.bytesfree") == str(20_000 << 20)
    assert fp.resources == Resources(cpu_mhz=5000, memory_mb=2048, disk_mb=20_000)
    # 0 keeps each detected value.
    same = fingerprint(facts, nomad_version="2.0.6", totals=TotalsOverride())
    assert same == fingerprint(facts, nomad_version="2.0.6")
    assert same.resources == Resources(cpu_mhz=9600, memory_mb=16 << 10, disk_mb=50 << 10)


# ------------------------------------------------------------ driver health in the node record
def test_every_driver_fingerprint_reaches_the_node_record_with_its_health():
    from actors.client.exec_driver import NO_CGROUP_MOUNT, REQUIRES_ROOT
    from actors.client.fingerprint import driver_health
    from actors.server.node_endpoint import node_record

    def probe(**kw):
        return PsutilProbe(".", health=lambda: driver_health((), kernel_name="linux", **kw)).facts()

    facts = probe(is_root=False, raw_exec_enabled=True)
    assert facts.drivers == ("raw_exec",)
    assert facts.driver_health == (("exec", False, False, REQUIRES_ROOT), ("raw_exec", True, True, "Healthy"))
    sick = probe(is_root=True, cgroups=lambda: (None, NO_CGROUP_MOUNT))
    assert sick.drivers == () and sick.driver_health[0] == ("exec", True, False, NO_CGROUP_MOUNT)
    assert sick.driver_health[1] == ("raw_exec", False, False, "disabled")
    old, new = fingerprint(facts, nomad_version="x"), fingerprint(replace(facts, driver_health=(
        ("exec", True, False, NO_CGROUP_MOUNT), ("raw_exec", True, True, "Healthy"))), nomad_version="x")
    assert new.driver_health[0][3] == NO_CGROUP_MOUNT and significant_change(old, new)
    spec = NodeSpec(node_id="n1", secret_id="s", name="n1", drivers=new.drivers,
                    driver_health=new.driver_health)
    assert wire.decode(wire.encode(spec)) == spec
    assert node_record(spec)["Drivers"] == {
        "exec": {"Detected": True, "Healthy": False, "HealthDescription": NO_CGROUP_MOUNT, "Attributes": {}},
        "raw_exec": {"Detected": True, "Healthy": True, "HealthDescription": "Healthy",
                     "Attributes": {"driver.raw_exec": "true"}}}
    # A client that sends no health (older): its drivers are healthy, as before.
    old_spec = NodeSpec(node_id="n1", secret_id="s", name="n1", drivers=("raw_exec",))
    assert node_record(old_spec)["Drivers"]["raw_exec"]["Healthy"] is True


def test_a_drivers_health_change_is_a_node_event_and_moves_its_update_time():
    from actors.server.node_endpoint import node_record
    from tests.test_scheduler import Cluster

    c = Cluster()
    healthy = (("exec", True, True, "Healthy"), ("raw_exec", False, False, "disabled"))
    spec = NodeSpec(node_id="n1", secret_id="s", name="n1", drivers=("exec",), driver_health=healthy)
    c.now = 1_800_000_000.0
    c.apply("node_register", node=node_record(spec), node_evals=True, driver_times=True)
    rec = c.state.tables["nodes"]["n1"]
    first = rec["Drivers"]["exec"]["UpdateTime"]
    assert first == "2027-01-15T08:00:00.000000Z" and rec["Drivers"]["raw_exec"]["UpdateTime"] == first
    c.now += 30
    # Nothing changed: the same time, no event.
    c.apply("node_register", node=node_record(spec), node_evals=True, driver_times=True)
    rec = c.state.tables["nodes"]["n1"]
    assert rec["Drivers"]["exec"]["UpdateTime"] == first and len(rec["Events"]) == 1
    why = "Failed to discover cgroup mount point"
    sick = replace(spec, drivers=(), driver_health=(("exec", True, False, why), healthy[1]))
    c.now += 30
    c.apply("node_register", node=node_record(sick), node_evals=True, driver_times=True)
    rec = c.state.tables["nodes"]["n1"]
    assert rec["Drivers"]["exec"]["UpdateTime"] == "2027-01-15T08:01:00.000000Z"
    assert rec["Drivers"]["raw_exec"]["UpdateTime"] == first
    ev = rec["Events"][-1]
    assert (ev["Subsystem"], ev["Message"], ev["Details"]) == (
        "Driver", "Failed to discover cgroup mount point", {"driver": "exec"})
