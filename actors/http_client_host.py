"""``/v1/client/stats`` and ``/v1/client/gc``: the client agent's host and its finished allocations.

* ``GET /v1/client/stats`` -- Nomad's ``HostStats``: ``Memory {Total,
  Available, Used, Free}``, ``CPU [{CPU, User, System, Idle, TotalPercent,
  TotalTicks}]`` (per core, percent of the time since the previous request,
  or since boot for the first; TotalTicks: that busy share in MHz of the
  node's ``cpu.totalcompute`` over its cores), ``DiskStats`` (one per mounted
  partition), ``AllocDirStats`` (the file system holding the allocation
  directories), ``DeviceStats`` (none here), ``Uptime`` (s), ``Timestamp``
  (ns) and ``CPUTicksConsumed`` (the cores' TotalTicks summed: MHz worth of
  CPU busy, as Nomad's).  Measured with psutil here, at the HTTP edge.
* ``/v1/client/gc`` (any of GET, PUT, POST, as Nomad takes any) -- every
  finished allocation's directory on this client is removed now, through
  the AllocRunner's GC (:class:`~actors.client.alloc_runner.CollectAllAllocs`);
  running allocations are left alone.  Answers an empty 200.

``?node_id=`` names the node to ask.  Nomad forwards a request for another
node through the servers; this agent serves its own node only, and
answers 400 for another one (ask that node's HTTP address, as ``nomad alloc
logs`` does).  Not a client agent: 501 ``Invalid method``, as Nomad's
``clientNotRunning``.
"""

from __future__ import annotations

import os
from typing import Any

from actors.agent_messages import GetSelf
from actors.client.alloc_runner import CollectAllAllocs
from actors.http_api import Api, CodedError, Request, require, route
from runtime.edge import wall_time
from runtime.host_stats import Compute, node_compute

ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)
# Per-core CPU times of the previous /v1/client/stats, so each answer is the
# usage since the one before (Nomad's HostCpuStatsCalculator keeps the same).
# Module state at the edge: one agent per process.
_previous_cpu: dict[str, tuple[float, float, float, float, float]] = {}


def _client(api: Api) -> None:
    ref = api.env.lookup(ALLOC_RUNNER)
    if ref is None or not ref.is_alive() or api.ctx.alloc_logs is None:
        raise CodedError(501, "Invalid method")  # not a client agent (Nomad: clientNotRunning)


def override_mhz(api: Api) -> int:
    """The operator's ``client.cpu_total_compute`` (0: detected), which the node's ``cpu.totalcompute`` is."""
    client = (api.ask(api.ctx.agent, GetSelf()).get("config") or {}).get("Client") or {}
    try:
        return int(client.get("CpuCompute") or 0)
    except (TypeError, ValueError):
        return 0


def _check_node(req: Request, api: Api) -> None:
    wanted = (req.query.get("node_id") or [""])[0]
    if not wanted:
        return
    mine = (api.ask(api.ctx.agent, GetSelf()).get("stats", {}).get("client") or {}).get("node_id", "")
    if wanted != mine:
        raise CodedError(400, f"node_id {wanted!r} is not this client's node ({mine!r}): "
                              "ask that node's own HTTP address")


@route("/v1/client/stats")
def client_stats(req: Request, api: Api) -> Any:
    require(req, "GET")
    _client(api)
    _check_node(req, api)
    return host_stats(api.ctx.alloc_logs.root, node_compute(override_mhz(api)))


@route("/v1/client/gc")
def client_gc(req: Request, api: Api) -> Any:
    require(req, "GET", "PUT", "POST")
    _client(api)
    _check_node(req, api)
    api.ask(ALLOC_RUNNER, CollectAllAllocs())
    return None  # Nomad answers nothing (an empty 200)


# ---------------------------------------------------------------- measuring (psutil: an edge)


def host_stats(alloc_root: str, compute: Compute | None = None) -> dict[str, Any]:
    """Nomad's HostStats; *compute* is the node's (its ``cpu_total_compute`` override), detected if None."""
    import psutil  # an edge dependency, not needed by the simulator

    vm = psutil.virtual_memory()
    cpus = _cpu_stats(psutil)
    compute = compute or node_compute()
    for c in cpus:  # Nomad's collectCPUStats: each core's share of the node's compute
        c["TotalTicks"] = c["TotalPercent"] / 100.0 * compute.total_mhz / len(cpus)
    ticks = sum(c["TotalTicks"] for c in cpus)
    disks = []
    for part in psutil.disk_partitions(all=False):
        stats = _disk_stats(part.mountpoint, part.device)
        if stats is not None:
            disks.append(stats)
    return {
        "Memory": {"Total": vm.total, "Available": vm.available, "Used": vm.used, "Free": vm.free},
        "CPU": cpus,
        "DiskStats": disks,
        "AllocDirStats": _disk_stats(alloc_root, "", named=False),
        "DeviceStats": [],
        "Uptime": max(0, int(wall_time() - psutil.boot_time())),
        "Timestamp": int(wall_time() * 1e9),
        "CPUTicksConsumed": ticks,
    }


def _cpu_stats(psutil: Any) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(psutil.cpu_times(percpu=True)):
        name = f"cpu{i}"
        busy = sum(getattr(t, f, 0.0) for f in ("user", "system", "nice", "iowait", "irq", "softirq",
                                                 "steal", "guest", "guest_nice"))
        now = (t.idle, t.user, t.system, busy, t.idle + busy)
        before = _previous_cpu.get(name, (0.0, 0.0, 0.0, 0.0, 0.0))
        _previous_cpu[name] = now
        delta = now[4] - before[4]
        if delta <= 0:  # no tick since the last request: Nomad's guard against NaN and Inf
            idle, user, system, total = 100.0, 0.0, 0.0, 0.0
        else:
            # Clamped: the kernel's idle counter can step back a little between
            # two close reads (NO_HZ accounting), which would read as -1% or 101%.
            idle, user, system, total = (min(100.0, max(0.0, (now[k] - before[k]) / delta * 100.0))
                                         for k in range(4))
        out.append({"CPU": name, "User": user, "System": system, "Idle": idle, "TotalPercent": total})
    return out


def _disk_stats(path: str, device: str, *, named: bool = True) -> dict[str, Any] | None:
    """Nomad's ``DiskStats`` of the file system holding *path* (gopsutil disk.Usage's numbers)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None  # Nomad skips a partition it cannot read
    size = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used_pct = 100.0 * used / (used + avail) if used + avail else 0.0
    inodes_pct = 100.0 * (st.f_files - st.f_ffree) / st.f_files if st.f_files else 0.0
    return {"Device": device if named else "", "Mountpoint": path if named else "", "Size": size,
            "Used": used, "Available": avail, "UsedPercent": used_pct, "InodesUsedPercent": inodes_pct}
