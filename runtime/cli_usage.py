"""Live resource usage in ``nomad alloc status`` and ``nomad node status``, as Nomad's CLI shows it.

* ``alloc status``: each task's "Task Resources" table puts the task's
  usage before its reservation (``12/100 MHz``, ``24 MiB/300 MiB``), from
  the allocation's stats on the node that runs it (``/v1/client/allocation/
  <id>/stats``); a task without stats shows the reservation alone.  With
  ``-stats`` each task's measured memory and CPU figures follow (Nomad's
  outputVerboseResourceUsage).  A node that is down is not asked ("Omitting
  resource statistics since the node is down."); a node that cannot be
  asked is "Couldn't retrieve stats: ..." on stderr.
* ``node status``: "Allocation Resource Utilization" (the running
  allocations' summed usage against what the node offers) and "Host
  Resource Utilization" (``/v1/client/stats``: CPU busy in MHz, memory used,
  the data directory's disk) after "Allocated Resources", and the node's
  Uptime; ``-stats`` adds the host's CPU, memory and disk figures (Nomad's
  printCpuStats, printMemoryStats, printDiskStats).

Nomad's command/alloc_status.go and command/node_status.go are the
reference for every line.  This module imports :mod:`runtime.cli_jobs`,
which imports it lazily (and whose ``request`` and ``_get_raw`` it calls through the
module, so a test's fakes of them hold here too).
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
from typing import Any

from runtime import cli_jobs
from runtime.cli import CliError, table
from runtime.cli_jobs import _ibytes, _ns_query, kv

# How long the CLI waits for a node's stats: the node answers at once, or after a fresh CPU sample of
# a quarter second (runtime.host_stats.TASK_STATS_PRIME_S); longer means the node is not reachable
# from here, and the command goes on with the reservations (Nomad's api.ClientConnTimeout is 1 s).
STATS_TIMEOUT_S = 3.0
NODE_DOWN = "Omitting resource statistics since the node is down."


def _node_base(addr: str, node: dict[str, Any]) -> str:
    """The node's HTTP API, or the agent at *addr* (which relays client endpoints, as Nomad's api asks
    its configured address) when the node is not known or has no HTTP address."""
    http_addr = node.get("HTTPAddr") or ""
    if not http_addr:
        return addr.rstrip("/")
    return f"{'https' if addr.startswith('https://') else 'http'}://{http_addr}"


def _get_json(url: str) -> Any:
    raw = cli_jobs._get_raw(url, STATS_TIMEOUT_S)
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError as e:
        raise CliError(f"Error decoding stats: {e}") from None


def alloc_stats(addr: str, a: dict[str, Any], node: dict[str, Any] | None = None) -> dict[str, Any]:
    """The allocation's AllocResourceUsage from the node that runs it; a CliError when it cannot be had."""
    if node is None:
        node = cli_jobs.request(addr, "GET", f"/v1/node/{a['NodeID']}")
    got = _get_json(f"{_node_base(addr, node)}/v1/client/allocation/{a['ID']}/stats?{_ns_query(a)}")
    return got if isinstance(got, dict) else {}


def fetch_alloc_stats(addr: str, a: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(stats or None, lines for stdout) as Nomad's alloc status: a failure is reported on stderr."""
    try:
        try:
            node = cli_jobs.request(addr, "GET", f"/v1/node/{a['NodeID']}")
        except CliError:  # not readable with this token (node:read): ask the agent, as Nomad's api does
            node = {}
        if (node or {}).get("Status") == "down":
            return None, ["", NODE_DOWN]
        return alloc_stats(addr, a, node or {}), []
    except CliError as e:
        print(f"Couldn't retrieve stats: {e}", file=sys.stderr)
        return None, [""]


def _task_usage(stats: dict[str, Any] | None, task: str) -> dict[str, Any] | None:
    ru = ((stats or {}).get("Tasks") or {}).get(task) or {}
    return ru.get("ResourceUsage") or None


def task_resources(a: dict[str, Any], task: str, stats: dict[str, Any] | None, display_stats: bool,
                   cpu: int, mem_mb: int, mem_max_mb: int) -> list[str]:
    """Nomad's outputTaskResources: the "Task Resources" table, usage first when the task has stats, then
    with ``-stats`` its detailed figures."""
    addrs = []
    tr = ((a.get("AllocatedResources") or {}).get("Tasks") or {}).get(task) or {}
    for nw in tr.get("Networks") or ():
        for port in [*(nw.get("DynamicPorts") or ()), *(nw.get("ReservedPorts") or ())]:
            addrs.append(f"{port.get('Label', '')}: {nw.get('IP', '')}:{port.get('Value', 0)}")
    cores = len((tr.get("Cpu") or {}).get("ReservedCores") or ())
    cpu_usage, mem_usage = str(cpu), _ibytes(mem_mb << 20)
    usage = _task_usage(stats, task)
    if usage is not None:
        if usage.get("CpuStats") is not None:
            cpu_usage = f"{math.floor(float(usage['CpuStats'].get('TotalTicks') or 0))}/{cpu_usage}"
        ms = usage.get("MemoryStats")
        if ms is not None:  # RSS, as Nomad, unless not measured (cgroup v2 without it): then Usage
            used = int(ms.get("RSS") or 0)
            if used == 0 and "RSS" not in (ms.get("Measured") or ()):
                used = int(ms.get("Usage") or 0)
            mem_usage = f"{_ibytes(used)}/{mem_usage}"
    disk = _ibytes(int((a.get("Resources") or {}).get("DiskMB", 0)) << 20)
    rows = [[f"CPU ({cores} cores)" if cores else "CPU", "Memory", "Disk", "Addresses"],
            [f"{cpu_usage} MHz", mem_usage, disk, addrs[0] if addrs else ""]]
    mem_max = f"Max: {_ibytes(mem_max_mb << 20)}" if mem_max_mb not in (0, mem_mb) else ""
    if mem_max or len(addrs) > 1:
        rows.append(["", mem_max, "", addrs[1] if len(addrs) > 1 else ""])
    rows += [["", "", "", extra] for extra in addrs[2:]]
    out = ["Task Resources:", table(rows)]
    if usage is not None and display_stats:
        out += ["", *verbose_usage(usage)]
    return out


def _measured_table(measured: list[str], values: dict[str, str]) -> str:
    names = sorted(measured)
    return table([names, [values.get(n, "") or "<none>" for n in names]])


def verbose_usage(usage: dict[str, Any]) -> list[str]:
    """Nomad's outputVerboseResourceUsage: "Memory Stats" and "CPU Stats", each the measured figures
    (names sorted) over their values."""
    out: list[str] = []
    ms, cs = usage.get("MemoryStats") or {}, usage.get("CpuStats") or {}
    if ms.get("Measured"):
        keys = {"RSS": "RSS", "Cache": "Cache", "Swap": "Swap", "Usage": "Usage", "Max Usage": "MaxUsage",
                "Kernel Usage": "KernelUsage", "Kernel Max Usage": "KernelMaxUsage"}
        values = {name: _ibytes(int(ms.get(key) or 0)) for name, key in keys.items()}
        out += ["Memory Stats", _measured_table(ms["Measured"], values), ""]
    if cs.get("Measured"):
        values = {"Percent": f"{float(cs.get('Percent') or 0):.2f}%",
                  "Throttled Periods": str(int(cs.get("ThrottledPeriods") or 0)),
                  "Throttled Time": str(int(cs.get("ThrottledTime") or 0)),
                  "User Mode": f"{float(cs.get('UserMode') or 0):.2f}%",
                  "System Mode": f"{float(cs.get('SystemMode') or 0):.2f}%"}
        out += ["CPU Stats", _measured_table(cs["Measured"], values)]
    while out and out[-1] == "":
        out.pop()
    return out


# ---------------------------------------------------------------- node status


def go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String`` of whole seconds: ``3s``, ``2m3s``, ``26h0m5s``."""
    h, rest = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s" if m else f"{s}s"


def host_stats(addr: str, node: dict[str, Any]) -> dict[str, Any] | None:
    """The node's HostStats (``/v1/client/stats`` on the node); None, said on stderr as Nomad's, when
    they cannot be had."""
    try:
        if node.get("Status") == "down":
            raise CliError("node down")
        q = urllib.parse.urlencode({"node_id": node.get("ID", "")})
        got = _get_json(f"{_node_base(addr, node)}/v1/client/stats?{q}")
        if not isinstance(got, dict):
            raise CliError("actual resource usage not present")
        return got
    except CliError as e:
        print(f"error fetching node stats: {e}", file=sys.stderr)
        return None


def _node_totals(node: dict[str, Any]) -> tuple[int, int, int]:
    """Nomad's computeNodeTotalResources: CPU MHz, memory MB, disk MB, less the node's reserved."""
    res, rsv = node.get("NodeResources") or {}, node.get("ReservedResources") or {}

    def total(kind: str, key: str) -> int:
        return int((res.get(kind) or {}).get(key, 0) or 0) - int((rsv.get(kind) or {}).get(key, 0) or 0)

    return total("Cpu", "CpuShares"), total("Memory", "MemoryMB"), total("Disk", "DiskMB")


def allocated_resources(node: dict[str, Any], running: list[dict[str, Any]]) -> str:
    """Nomad's getAllocatedResources: what the node's running allocations reserve, of what it offers."""
    used = [sum(int((a.get("Resources") or {}).get(k, 0) or 0) for a in running)
            for k in ("CPU", "MemoryMB", "DiskMB")]
    cpu, mem, disk = _node_totals(node)
    count = str(len(running))
    if node.get("NodeMaxAllocs"):
        count = f"{len(running)}/{node['NodeMaxAllocs']}"
    return table([["CPU", "Memory", "Disk", "Alloc Count"],
                  [f"{used[0]}/{cpu} MHz", f"{_ibytes(used[1] << 20)}/{_ibytes(mem << 20)}",
                   f"{_ibytes(used[2] << 20)}/{_ibytes(disk << 20)}", count]])


def actual_resources(addr: str, node: dict[str, Any], running: list[dict[str, Any]]) -> str | None:
    """Nomad's getActualResources: the running allocations' summed live usage (memory: Usage where
    measured, else RSS) against what the node offers; None when any allocation's stats cannot be had."""
    cpu_total, mem_total, _ = _node_totals(node)
    cpu, mem = 0.0, 0
    for a in running:
        try:
            ru = alloc_stats(addr, a, node).get("ResourceUsage") or {}
        except CliError:
            return None
        cs, ms = ru.get("CpuStats") or {}, ru.get("MemoryStats") or {}
        cpu += float(cs.get("TotalTicks") or 0)
        mem += int(ms.get("Usage") or 0) or int(ms.get("RSS") or 0)
    return table([["CPU", "Memory"],
                  [f"{math.floor(cpu)}/{cpu_total} MHz", f"{_ibytes(mem)}/{_ibytes(mem_total << 20)}"]])


def host_resources(hs: dict[str, Any], node: dict[str, Any]) -> str:
    """Nomad's getHostResources: the host's CPU (MHz busy of the node's), memory and the disk holding the
    node's data directory (``unique.storage.volume``; its name alone when no stats cover it)."""
    device = (node.get("Attributes") or {}).get("unique.storage.volume", "")
    disks = [d for d in hs.get("DiskStats") or () if d.get("Device") == device]
    cpu = f"{math.floor(float(hs.get('CPUTicksConsumed') or 0))}/" \
          f"{int(((node.get('NodeResources') or {}).get('Cpu') or {}).get('CpuShares', 0) or 0)} MHz"
    m = hs.get("Memory") or {}
    mem = f"{_ibytes(int(m.get('Used') or 0))}/{_ibytes(int(m.get('Total') or 0))}"
    disk = (f"{_ibytes(int(disks[-1].get('Used') or 0))}/{_ibytes(int(disks[-1].get('Size') or 0))}"
            if disks else f"({device})")
    return table([["CPU", "Memory", "Disk"], [cpu, mem, disk]])


def _pct(v: Any) -> str:
    """go-humanize FormatFloat("#,###.##") and a percent sign."""
    return f"{float(v or 0):,.2f}%"


def detailed_host_stats(hs: dict[str, Any]) -> list[str]:
    """``node status -stats``: Nomad's "CPU Stats", "Memory Stats" and "Disk Stats" sections."""
    out = ["", "CPU Stats"]
    cpus = [kv([("CPU", c.get("CPU", "")), ("User", _pct(c.get("User"))), ("System", _pct(c.get("System"))),
                ("Idle", _pct(c.get("Idle")))]) for c in hs.get("CPU") or ()]
    out.append("\n\n".join(cpus))
    m = hs.get("Memory") or {}
    out += ["", "Memory Stats", kv([(k, _ibytes(int(m.get(k) or 0))) for k in ("Total", "Available", "Used",
                                                                              "Free")])]
    disks = [kv([("Device", d.get("Device", "")), ("MountPoint", d.get("Mountpoint", "")),
                 ("Size", _ibytes(int(d.get("Size") or 0))), ("Used", _ibytes(int(d.get("Used") or 0))),
                 ("Available", _ibytes(int(d.get("Available") or 0))),
                 ("Used Percent", _pct(d.get("UsedPercent"))),
                 ("Inodes Percent", _pct(d.get("InodesUsedPercent")))]) for d in hs.get("DiskStats") or ()]
    out += ["", "Disk Stats", "\n\n".join(disks)]
    return out
