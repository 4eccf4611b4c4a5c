"""Host fingerprinting: facts from a probe, Nomad's attribute names, node resources.

Three layers, so the rules are testable without a host:

* a **probe** is the edge that reads the host: :class:`PsutilProbe` uses
  psutil, ``platform`` and ``socket`` in production; :class:`FakeHost` is the
  simulator's configurable twin.  Both return a frozen :class:`HostFacts`;
* :func:`fingerprint` is pure: facts + config -> :class:`Fingerprint`
  (attributes under Nomad's names, resources in MHz/MB, reserved resources);
* :class:`Fingerprinter` is the actor: it probes on start and every
  ``refresh_interval_s`` and tells its subscriber (the ClientNode) a
  :class:`FingerprintChanged` only when something that matters changed.

Nomad (NOMAD.md §6.1) runs host fingerprinters once and only drivers,
Consul and Vault periodically.  We re-probe everything, but free disk space
(``unique.storage.bytesfree``) alone is not a change: it moves with every
write, and each change is a node update through Raft.  Unlike Nomad's
``runFingerprint`` quirk, a probe error keeps the last fingerprint and the
refresh timer running.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from actors.client.messages import Resources
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.sockaddr import HostNet, Interface, SockaddrError

log = logging.getLogger("nomad.client")

MIB = 1024 * 1024
# Attributes whose change alone does not make a node update (see module doc).
VOLATILE_ATTRIBUTES = ("unique.storage.bytesfree",)
# Go's GOARCH for the machine names Python reports (Nomad's cpu.arch is GOARCH).
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
          "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64"}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostFacts:
    """What a probe learned about the host, in plain units."""

    arch: str  # machine name as the OS reports it (x86_64, aarch64...)
    num_cores: int
    cpu_mhz: int  # per-core frequency
    memory_bytes: int
    kernel_name: str  # GOOS: linux, darwin, windows
    kernel_version: str  # uname -r
    os_name: str  # platform id: ubuntu, debian, darwin...
    os_version: str
    hostname: str
    ip_address: str
    storage_volume: str  # device holding the data dir
    storage_bytes_total: int
    storage_bytes_free: int
    drivers: tuple[str, ...] = ()  # detected, healthy task drivers
    cpu_total_mhz: int = 0  # the operator's client.cpu_total_compute; 0: cores x MHz
    # Every driver's fingerprint, sorted: (name, detected, healthy, health description) -- Nomad's
    # DriverInfo, the node's Drivers.  Empty: only *drivers* are known (each healthy).
    driver_health: tuple[tuple[str, bool, bool, str], ...] = ()
    # The host's interfaces with their addresses (runtime.sockaddr.Interface, addresses as ``ip/prefix``),
    # in Go's order: what host_network blocks match.  Empty (the simulator's default host): the node's
    # only address is *ip_address*.
    interfaces: tuple[Interface, ...] = ()
    # The rest of Nomad's Linux host attributes, from a real host's probe (the simulator's FakeHost
    # leaves detailed False, so its nodes keep the attribute set recorded runs were made with).
    detailed: bool = False
    cpu_model: str = ""  # /proc/cpuinfo "model name" (cpu.modelname)
    host_id: str = ""  # gopsutil's HostID: the DMI product UUID, else /etc/machine-id (unique.host_id)
    numa_nodes: int = 1  # /sys/devices/system/node/node* (numa.node.count)
    signals: tuple[str, ...] = ()  # the signals tasks can be sent (os.signals)

    @property
    def total_compute(self) -> int:
        return self.cpu_total_mhz or self.num_cores * self.cpu_mhz


@dataclass(frozen=True, slots=True)
class Fingerprint:
    attributes: tuple[tuple[str, str], ...]  # sorted (name, value)
    resources: Resources
    reserved: Resources
    drivers: tuple[str, ...]
    driver_health: tuple[tuple[str, bool, bool, str], ...] = ()  # see HostFacts.driver_health
    # Nomad's NodeResources.NodeNetworks, flattened: (device, alias, address, reserved_ports) for each
    # address of a host network (see :func:`node_networks`), "default" being the node's own address.
    node_networks: tuple[tuple[str, str, str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        return dict(self.attributes).get(name)


def goarch(machine: str) -> str:
    return GOARCH.get(machine.lower(), machine.lower())


def attributes(facts: HostFacts, nomad_version: str) -> dict[str, str]:
    """Nomad's attribute names and string values for *facts*."""
    attrs = {
        "cpu.arch": goarch(facts.arch),
        "cpu.numcores": str(facts.num_cores),
        "cpu.frequency": str(facts.cpu_mhz),
        "cpu.totalcompute": str(facts.total_compute),
        "memory.totalbytes": str(facts.memory_bytes),
        "kernel.name": facts.kernel_name,
        "kernel.version": facts.kernel_version,
        "os.name": facts.os_name,
        "os.version": facts.os_version,
        "unique.hostname": facts.hostname,
        "unique.network.ip-address": facts.ip_address,
        "unique.storage.volume": facts.storage_volume,
        "unique.storage.bytestotal": str(facts.storage_bytes_total),
        "unique.storage.bytesfree": str(facts.storage_bytes_free),
        "nomad.version": nomad_version,
    }
    if facts.detailed:
        # Nomad's cpu, host, nomad and signal fingerprints.  No reserved cores here (client.reserved
        # cores is not supported), so every core is reservable and all the compute usable.
        attrs.update({"kernel.arch": facts.arch, "cpu.reservablecores": str(facts.num_cores),
                      "cpu.usablecompute": str(facts.total_compute), "nomad.service_discovery": "true",
                      "numa.node.count": str(facts.numa_nodes)})
        if facts.cpu_model:
            attrs["cpu.modelname"] = facts.cpu_model
        if facts.host_id:
            attrs["unique.host_id"] = facts.host_id
    if facts.signals:  # (a simulated host has none unless a test gives it some)
        attrs["os.signals"] = ",".join(facts.signals)
    for driver in facts.drivers:
        attrs[f"driver.{driver}"] = "1"  # Nomad: "1" when detected, removed when not
    return attrs


def node_resources(facts: HostFacts) -> Resources:
    """CPU = cores x MHz, memory in MB, disk = free MB (Nomad's storage fingerprint uses free space)."""
    return Resources(cpu_mhz=facts.total_compute, memory_mb=facts.memory_bytes // MIB,
                     disk_mb=facts.storage_bytes_free // MIB)


NO_RESOURCES = Resources()


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalsOverride:
    """The client's ``cpu_total_compute``, ``memory_total_mb``, ``disk_total_mb`` and
    ``disk_free_mb``: what the operator says the host has, where detection is wrong
    (a VM's CPU quota, a container's memory limit); 0 keeps what was detected."""

    cpu_total_compute: int = 0  # MHz
    memory_total_mb: int = 0
    disk_total_mb: int = 0
    disk_free_mb: int = 0

    def apply(self, facts: HostFacts) -> HostFacts:
        changes: dict[str, Any] = {}
        if self.cpu_total_compute:  # cpu.totalcompute and the node's CPU; cpu.frequency stays detected
            changes["cpu_total_mhz"] = self.cpu_total_compute
        if self.memory_total_mb:
            changes["memory_bytes"] = self.memory_total_mb * MIB
        if self.disk_total_mb:
            changes["storage_bytes_total"] = self.disk_total_mb * MIB
        if self.disk_free_mb:
            changes["storage_bytes_free"] = self.disk_free_mb * MIB
        return replace(facts, **changes) if changes else facts


# A host_network block as the client config holds it: (name, cidr, interface, reserved_ports).
HostNetworkConf = tuple[str, str, str, str]


def _interface_name(template: str, facts: HostFacts) -> str | None:
    """A host_network's ``interface``: a name, or a go-sockaddr template giving one (as Nomad's
    template.Parse); None when the template does not render."""
    if "{{" not in template:
        return template
    from runtime.sockaddr import parse

    try:
        return parse(template, HostNet(interfaces=facts.interfaces)).strip()
    except SockaddrError:
        return None


def node_networks(facts: HostFacts,
                  host_networks: tuple[HostNetworkConf, ...]) -> tuple[tuple[str, str, str, str], ...]:
    """The addresses of each host network (Nomad's fingerprint createNodeNetworkResources): every
    address of every interface that is in one of a block's CIDRs (none given: any) and on its
    interface (none given: any) has the block's name as its alias, and the node's own address
    (``unique.network.ip-address``) has the alias "default".  Link-local addresses count on an
    interface only when it has no other one.  Returns (device, alias, address, reserved_ports) in
    the interfaces' and their addresses' order, as Nomad's (a port goes on its network's first
    address: a dual-stack interface's IPv4 one, listed first)."""
    import ipaddress

    nets = []
    for name, cidr, iface, reserved in host_networks:
        parsed = []
        for part in cidr.split(",") if cidr else ():
            try:
                parsed.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                continue  # checked when the config loaded; Nomad skips a bad one too
        nets.append((name, parsed, bool(cidr), _interface_name(iface, facts) if iface else "", reserved))
    out: list[tuple[str, str, str, str]] = []
    default_seen = False
    for intf in facts.interfaces:
        found, link_local = [], []
        for text in intf.addrs:
            try:
                ip = ipaddress.ip_address(text.split("/", 1)[0])
            except ValueError:
                continue
            aliases = [(name, reserved) for name, parsed, has_cidr, want_iface, reserved in nets
                       if (not has_cidr or any(ip in n for n in parsed if n.version == ip.version))
                       and want_iface is not None and (not want_iface or want_iface == intf.name)]
            if str(ip) == facts.ip_address:
                aliases.append(("default", ""))
                default_seen = True
            for alias, reserved in aliases:
                (link_local if ip.is_link_local else found).append((intf.name, alias, str(ip), reserved))
        out += found or link_local
    if not default_seen and facts.ip_address:
        out.append(("", "default", facts.ip_address, ""))
    return tuple(dict.fromkeys(out))  # the interfaces' order (Nomad's), each entry once


def fingerprint(facts: HostFacts, *, nomad_version: str, reserved: Resources = NO_RESOURCES,
                totals: TotalsOverride | None = None,
                host_networks: tuple[HostNetworkConf, ...] = ()) -> Fingerprint:
    if totals is not None:
        facts = totals.apply(facts)
    return Fingerprint(attributes=tuple(sorted(attributes(facts, nomad_version).items())),
                       resources=node_resources(facts), reserved=reserved,
                       drivers=tuple(sorted(facts.drivers)), driver_health=facts.driver_health,
                       node_networks=node_networks(facts, host_networks))


def significant_change(old: Fingerprint | None, new: Fingerprint) -> bool:
    """True when *new* must update the node: anything but volatile attributes or free disk differs."""
    if old is None:
        return True
    if old.reserved != new.reserved or old.drivers != new.drivers or old.driver_health != new.driver_health:
        return True
    if old.node_networks != new.node_networks:
        return True
    if replace(old.resources, disk_mb=0) != replace(new.resources, disk_mb=0):
        return True
    strip = lambda fp: [kv for kv in fp.attributes if kv[0] not in VOLATILE_ATTRIBUTES]
    return strip(old) != strip(new)


# ------------------------------------------------------------ probes (edges)
class HostProbe(Protocol):
    """``facts()`` reads the host.  A probe whose facts change only when told to may also offer
    ``watch(callback) -> bool`` (FakeHost): see Fingerprinter."""

    def facts(self) -> HostFacts: ...


@dataclass(slots=True)
class FakeHost:
    """The simulator's host: fixed facts that a test may change (``update``).

    Its facts change only when a test changes them, so it can say so
    (:meth:`watch`): a watching Fingerprinter then probes it only at the
    first refresh boundary after a change (see Fingerprinter), instead of
    every ``refresh_interval_s`` finding the same facts -- in a simulated
    day of 1,000 clients those idle refreshes were a fifth of all events.
    """

    current: HostFacts = field(default_factory=lambda: fake_facts("sim-host", "10.0.0.1"))
    probes: int = 0
    fail: bool = False  # make the next probes raise, to test error handling
    watcher: Callable[[], None] | None = None  # told after `current` or `fail` changes

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("current", "fail"):
            watcher = getattr(self, "watcher", None)  # unset while __init__ runs
            if watcher is not None:
                watcher()

    def facts(self) -> HostFacts:
        self.probes += 1
        if self.fail:
            raise OSError("fake host probe failure")
        return self.current

    def update(self, **changes: Any) -> None:
        self.current = replace(self.current, **changes)

    def watch(self, callback: Callable[[], None]) -> bool:
        """Call *callback* after each change from now on (replacing an earlier watcher: a restarted
        node's new Fingerprinter); True: this probe's facts change only then."""
        self.watcher = callback
        return True


def fake_facts(hostname: str, ip: str, *, cores: int = 4, mhz: int = 2400, memory_gb: int = 16,
               disk_gb: int = 100, drivers: tuple[str, ...] = ("raw_exec",)) -> HostFacts:
    return HostFacts(arch="x86_64", num_cores=cores, cpu_mhz=mhz, memory_bytes=memory_gb << 30,
                     kernel_name="linux", kernel_version="6.1.0-sim", os_name="debian", os_version="12",
                     hostname=hostname, ip_address=ip, storage_volume="/dev/sim0",
                     storage_bytes_total=disk_gb << 30, storage_bytes_free=(disk_gb << 30) // 2,
                     drivers=drivers)


class PsutilProbe:
    """Production probe: psutil, platform, socket and /etc/os-release.

    ``drivers`` is decided by the caller (see :func:`detect_drivers`); with
    ``health`` (a call giving :func:`driver_health`'s answer) the drivers are
    fingerprinted again on every probe, as Nomad's driver plugins are every
    30 s, so a driver that becomes unhealthy (its cgroups gone) or healthy
    again shows in the node's Drivers.
    """

    def __init__(self, data_dir: str, *, network_interface: str | None = None,
                 drivers: tuple[str, ...] = (), health: Callable[[], dict[str, Any]] | None = None,
                 interfaces: Callable[[], HostNet] | None = None) -> None:
        self.data_dir = data_dir
        # The host's interfaces for host_network blocks (runtime.sockaddr.host_interfaces); None: not read.
        self.interfaces = interfaces
        self.network_interface = network_interface
        self.drivers = drivers
        self.health = health

    def driver_facts(self) -> tuple[tuple[str, ...], tuple[tuple[str, bool, bool, str], ...]]:
        """(healthy drivers, every driver's health) now."""
        if self.health is None:
            return tuple(sorted(self.drivers)), ()
        health = self.health()
        return (tuple(sorted(n for n, h in health.items() if h.healthy)),
                tuple((n, h.detected, h.healthy, h.description) for n, h in sorted(health.items())))

    def facts(self) -> HostFacts:
        import psutil  # an edge dependency, not needed by the simulator

        freq = psutil.cpu_freq()
        mhz = int(freq.max or freq.current) if freq else _cpuinfo_mhz()
        disk = psutil.disk_usage(self.data_dir)
        os_name, os_version = _os_release()
        drivers, health = self.driver_facts()
        return HostFacts(arch=platform.machine(), num_cores=psutil.cpu_count(logical=True) or 1, cpu_mhz=mhz,
                         memory_bytes=psutil.virtual_memory().total, kernel_name=platform.system().lower(),
                         kernel_version=platform.release(), os_name=os_name, os_version=os_version,
                         hostname=socket.gethostname(), ip_address=self._ip(psutil),
                         storage_volume=_volume_of(psutil, self.data_dir), storage_bytes_total=disk.total,
                         storage_bytes_free=disk.free, drivers=drivers, driver_health=health,
                         interfaces=self.interfaces().interfaces if self.interfaces is not None else (),
                         detailed=True, cpu_model=_cpuinfo_field("model name"), host_id=_host_id(),
                         numa_nodes=_numa_nodes(), signals=_signal_names())

    def _ip(self, psutil: Any) -> str:
        addrs = psutil.net_if_addrs()
        stats = psutil.net_if_stats()
        names = [self.network_interface] if self.network_interface else sorted(addrs)
        for name in names:
            up = getattr(stats.get(name), "isup", False)
            if not self.network_interface and (name.startswith("lo") or not up):
                continue
            for a in addrs.get(name, ()):
                if a.family == socket.AF_INET:
                    return str(a.address)
        return "127.0.0.1"


def _cpuinfo_mhz() -> int:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return int(float(line.split(":", 1)[1]))
    except OSError:
        pass
    return 0


def _cpuinfo_field(name: str, path: str = "/proc/cpuinfo") -> str:
    """The first *name* line's value in /proc/cpuinfo ("" when absent)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def _host_id() -> str:
    """gopsutil's HostID on Linux: the DMI product UUID, else the machine id, lower case."""
    for path in ("/sys/class/dmi/id/product_uuid", "/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                value = f.read().strip().lower()
        except OSError:
            continue
        if value:
            if len(value) == 32 and "-" not in value:  # machine-id: 32 hex digits, as a UUID
                value = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
            return value
    return ""


def _numa_nodes(root: str = "/sys/devices/system/node") -> int:
    try:
        return max(1, sum(1 for n in os.listdir(root) if n.startswith("node") and n[4:].isdigit()))
    except OSError:
        return 1


def _signal_names() -> tuple[str, ...]:
    """Nomad's os.signals: the host's signal names, sorted (SIGRTMIN+n and aliases left out)."""
    import signal

    return tuple(sorted(n for n in dir(signal) if n.startswith("SIG") and not n.startswith("SIG_")
                        and not n.startswith("SIGRT") and isinstance(getattr(signal, n), signal.Signals)))


def _os_release(path: str = "/etc/os-release") -> tuple[str, str]:
    """(ID, VERSION_ID) as gopsutil's Platform/PlatformVersion; falls back to platform.system()."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
    except OSError:
        return platform.system().lower(), platform.release()
    return fields.get("ID", platform.system().lower()), fields.get("VERSION_ID", "")


def _volume_of(psutil: Any, path: str) -> str:
    path = os.path.realpath(path)
    best, device = "", ""
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, device = mount, part.device
    return device


# The task drivers this agent ships (actors.client.drivers, actors.client.exec_driver): a
# driver Nomad would detect but that is not here is never reported, or the servers would
# place its tasks on a node that can only fail them.
SHIPPED_DRIVERS = ("exec", "raw_exec")


def detect_drivers(options: dict[str, str] | tuple[tuple[str, str], ...], *, is_root: bool,
                   kernel_name: str = platform.system().lower(),
                   raw_exec_enabled: bool | None = None,
                   available: tuple[str, ...] = SHIPPED_DRIVERS,
                   cgroups: Callable[[], tuple[Any, str]] | None = None) -> tuple[str, ...]:
    """The drivers of *available* that Nomad would detect, healthy: raw_exec when enabled; exec as
    root on Linux with cgroups it can create (see :func:`driver_health`).

    raw_exec is enabled by its plugin block's ``enabled`` when that sets it
    (*raw_exec_enabled*), else by the older client option ``driver.raw_exec.enable``.
    *cgroups* is the exec driver's cgroup probe (``exec_driver.detect_cgroups``; a test injects one).
    """
    health = driver_health(options, is_root=is_root, kernel_name=kernel_name,
                           raw_exec_enabled=raw_exec_enabled, available=available, cgroups=cgroups)
    return tuple(sorted(name for name, h in health.items() if h.healthy))


def driver_health(options: dict[str, str] | tuple[tuple[str, str], ...], *, is_root: bool,
                  kernel_name: str = platform.system().lower(),
                  raw_exec_enabled: bool | None = None,
                  available: tuple[str, ...] = SHIPPED_DRIVERS,
                  cgroups: Callable[[], tuple[Any, str]] | None = None) -> dict[str, Any]:
    """Each shipped driver's fingerprint as Nomad's DriverInfo: detected, healthy and HealthDescription.

    exec's is Nomad's: "exec driver unsupported on client OS" off Linux,
    "Driver must run as root" (undetected) for a non-root agent, "Failed to
    discover cgroup mount point" (detected, unhealthy) without usable cgroups.
    """
    from actors.client.exec_driver import DriverHealth, detect_cgroups, exec_health

    opts = dict(options)
    out: dict[str, Any] = {}
    if "raw_exec" in available:
        if raw_exec_enabled is None:
            raw_exec_enabled = opts.get("driver.raw_exec.enable", "").lower() in ("1", "true")
        out["raw_exec"] = (DriverHealth(True, True, "Healthy") if raw_exec_enabled
                           else DriverHealth(False, False, "disabled"))
    if "exec" in available:
        out["exec"] = exec_health(is_root=is_root, kernel_name=kernel_name,
                                  cgroups=cgroups if cgroups is not None else detect_cgroups)
    return out


# ------------------------------------------------------------ the actor
@dataclass(frozen=True, slots=True)
class FingerprintChanged:
    """Fingerprinter -> subscriber: the node's new fingerprint (local only)."""

    fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class SubscribeFingerprint:
    """Subscriber -> Fingerprinter: send me the current fingerprint and every change (local only).

    The fingerprinter tells every actor that subscribed (the client node, and
    the agent's ClientStats); subscribing again changes nothing.
    """

    actor: str


@dataclass(frozen=True, slots=True)
class HostChanged:
    """A watched probe -> its Fingerprinter: the host's facts changed (local only)."""


HOST_CHANGED = HostChanged()


@dataclass(frozen=True, slots=True, kw_only=True)
class FingerprintConfig:
    # Nomad's driver plugins re-fingerprint every 30 s; host facts rarely
    # change, so this only bounds how soon a new driver or resize is seen.
    refresh_interval_s: float = 30.0
    nomad_version: str = "2.0.6"
    reserved: Resources = NO_RESOURCES  # client.reserved (MHz / MB / MB)
    totals: TotalsOverride | None = None  # client.cpu_total_compute, memory_total_mb, disk_*_mb
    host_networks: tuple[HostNetworkConf, ...] = ()  # client host_network blocks, sorted by name

    def __post_init__(self) -> None:
        if self.refresh_interval_s <= 0:
            raise ValueError("refresh_interval_s must be > 0")


class Fingerprinter(NodeActor):
    """Probes the host and tells its subscriber about significant changes."""

    def __init__(self, env: Env, name: str, *, probe: HostProbe, config: FingerprintConfig | None = None,
                 subscriber: str = "client") -> None:
        super().__init__(env, name)
        self.probe = probe
        self.cfg = config or FingerprintConfig()
        self.subscribers = [subscriber]  # told every change; SubscribeFingerprint adds one
        self.current: Fingerprint | None = None
        self._facts: HostFacts | None = None
        self.errors = 0
        # A watched probe (one that says when its facts change): refreshes
        # happen on the same boundaries as polling's, start + k x interval,
        # but only the first one after a change is armed -- the one a poll
        # would have seen it at.  The others would find the same facts and
        # do nothing; skipping them changes no message, state or draw.
        self._watched = False
        self._epoch = 0.0  # local time of the first probe: the boundaries' origin
        self._failing = False  # the last probe raised: keep refreshing every interval, as polling does

    def on_start(self) -> None:
        watch = getattr(self.probe, "watch", None)
        if watch is not None:
            env, name = self.env, self.name
            self._watched = bool(watch(lambda: env.send(env.node, name, HOST_CHANGED)))
        self._epoch = self.env.now()
        self._refresh()
        if not self._watched or self._failing:
            self.set_timer("refresh", self.cfg.refresh_interval_s)

    def on_timer(self, name: str) -> None:
        if name == "refresh":
            self._refresh()
            if not self._watched or self._failing:
                self.set_timer("refresh", self.cfg.refresh_interval_s)

    def _host_changed(self) -> None:
        if self.timer_armed("refresh"):
            return  # the next boundary's refresh is armed already
        interval = self.cfg.refresh_interval_s
        now = self.env.now()
        k = int((now - self._epoch) // interval) + 1
        self.set_timer("refresh", self._epoch + k * interval - now)

    def receive(self, message: Any) -> Any:
        if message is HOST_CHANGED:
            self._host_changed()
        elif isinstance(message, SubscribeFingerprint):
            if message.actor not in self.subscribers:
                self.subscribers.append(message.actor)
            if self.current is not None:
                self.send(self.env.node, message.actor, FingerprintChanged(self.current))
        elif message == "fingerprint":
            return self.current
        return None

    def _refresh(self) -> None:
        try:
            facts = self.probe.facts()
        except Exception as exc:  # a host probe error must not kill the client
            self._failing = True
            self.errors += 1
            log.warning("%s: fingerprint failed, keeping the last one: %s", self.env.node, exc)
            return
        self._failing = False
        # Nothing moved: skip building and comparing the attributes.  A probe
        # that hands back the same (frozen) facts object -- the simulator's
        # does, every refresh -- is answered without comparing its fields.
        if facts is self._facts or facts == self._facts:
            return
        self._facts = facts
        new = fingerprint(facts, nomad_version=self.cfg.nomad_version, reserved=self.cfg.reserved,
                          totals=self.cfg.totals, host_networks=self.cfg.host_networks)
        if significant_change(self.current, new):
            self.current = new
            changed = FingerprintChanged(new)
            for actor in self.subscribers:
                self.send(self.env.node, actor, changed)
