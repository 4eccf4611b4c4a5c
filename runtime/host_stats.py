"""The host's figures for ``telemetry.publish_node_metrics``, as gauges (an edge: psutil and the OS).

One collector serves both, as Nomad's ``hostStatsCollector`` does: the
numbers are those of ``GET /v1/client/stats``
(:func:`actors.http_client_host.host_stats`), so CPU percentages cover the
time since whichever of the two read last.  The
:class:`~actors.client.stats.ClientStats` actor calls a
:class:`HostStatsSampler` once per collection interval and names the figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.client.stats import HostSample


class HostStatsSampler:
    """One call: this host's memory, uptime, per-CPU and per-disk figures as ``(key, value, labels)``."""

    def __init__(self, alloc_root: str) -> None:
        self.alloc_root = alloc_root

    def __call__(self) -> list[HostSample]:
        from actors.http_client_host import host_stats

        s = host_stats(self.alloc_root)
        out: list[HostSample] = [(("host", "memory", k.lower()), float(v), ())
                                 for k, v in s["Memory"].items()]
        out.append((("uptime",), float(s["Uptime"]), ()))
        for c in s["CPU"]:
            labels = (("cpu", c["CPU"]),)
            out += [(("host", "cpu", key), float(c[k]), labels)
                    for key, k in (("total", "TotalPercent"), ("user", "User"), ("system", "System"),
                                   ("idle", "Idle"))]
        for d in s["DiskStats"]:
            labels = (("disk", d["Device"]),)
            out += [(("host", "disk", key), float(d[k]), labels)
                    for key, k in (("size", "Size"), ("used", "Used"), ("available", "Available"),
                                   ("used_percent", "UsedPercent"), ("inodes_percent", "InodesUsedPercent"))]
        return out


# ---------------------------------------------------------------- a task's live usage (the stats endpoint)

# A task's CPU share is the CPU time its processes used between two samples over the time between
# them (Nomad's cpustats.Tracker).  Nomad's task runner samples every second, so any answer covers
# about the last second; here samples are taken when asked, so a previous sample older than this is
# not used (a percent over minutes says little about now) ...
TASK_STATS_MAX_WINDOW_S = 10.0
# ... and when there is no recent one, CPU is measured over a fresh window this long: a quarter
# second gives 4 % steps at the kernel's 100 Hz accounting, and keeps `nomad alloc status` quick.
TASK_STATS_PRIME_S = 0.25
CGROUP_ROOT = "/sys/fs/cgroup"  # as actors.client.exec_driver's

# What Nomad's executors report as measured (drivers/shared/executor): the basic executor (raw_exec,
# a process tree) and the cgroup one (exec), whose memory fields depend on the cgroup version.
BASIC_MEMORY = ["RSS", "Swap"]
BASIC_CPU = ["System Mode", "User Mode", "Percent"]
CGROUP_V1_MEMORY = ["RSS", "Cache", "Swap", "Usage", "Max Usage", "Kernel Usage", "Kernel Max Usage"]
CGROUP_V2_MEMORY = ["RSS", "Cache", "Swap", "Usage"]
CGROUP_CPU = ["System Mode", "User Mode", "Throttled Periods", "Throttled Time", "Percent"]


Key = tuple[Any, ...]  # a CPU counter: ("pid", pid, create time) or ("cgroup", directory)
Times = tuple[float, float, float]  # cumulative CPU ns, or percents: (total, user, system)


@dataclass(frozen=True, slots=True)
class Compute:
    """The node's CPU as Nomad's ``cpustats.Compute``: total MHz (``cpu.totalcompute``) and logical cores."""

    total_mhz: float
    cores: int

    def ticks(self, percent: float) -> float:
        """Nomad's ``Tracker.TicksConsumed``: a CPU percent (100 = one core busy) as MHz of one core."""
        return percent / 100.0 * self.total_mhz / self.cores if self.cores > 0 else 0.0


def node_compute(override_mhz: int = 0) -> Compute:
    """This host's compute as the fingerprint reports it (actors.client.fingerprint.PsutilProbe): cores
    times the per-core MHz, or the operator's ``client.cpu_total_compute``."""
    import psutil

    from actors.client.fingerprint import _cpuinfo_mhz

    cores = psutil.cpu_count(logical=True) or 1
    freq = psutil.cpu_freq()
    mhz = int(freq.max or freq.current) if freq else _cpuinfo_mhz()
    return Compute(total_mhz=float(override_mhz or mhz * cores), cores=cores)


@dataclass(slots=True)
class _Target:
    """What one task's usage is read from: its processes, and its own cgroup when it has one (exec)."""

    key: Key  # the task-level CPU counter's key
    procs: dict[tuple[int, float], Any]  # (pid, create time) -> psutil.Process
    cgroup: dict[str, str] | None = None  # "mode", "memory", "cpu", "cpuacct" directories


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _int_file(path: str) -> int:
    try:
        return int(_read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class TaskStatsProbe:
    """Nomad's executor stats of running tasks (an edge: psutil, /proc and cgroup files).

    :meth:`alloc_usage` answers Nomad's ``AllocResourceUsage`` for the tasks
    the AllocRunner reports running (their driver's stats: ``pid`` and the
    driver's own ``cpu_percent``/``rss_bytes``).  A task in a cgroup of its
    own (the exec driver's ``<alloc>.<task>``) is measured from that cgroup
    as Nomad's libcontainer executor does (memory.stat, usage, swap, kernel
    memory; cpuacct or cpu.stat, throttling); any other (raw_exec) from its
    process tree as Nomad's basic executor does (RSS and swap, user and
    system time).  ``Pids`` holds each process's own figures.  CPU figures
    are percents of one core over the time since the previous sample;
    ``TotalTicks`` that percent as MHz of the node (:meth:`Compute.ticks`).
    A process psutil cannot see keeps the driver's figures.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] | None = None, cgroup_root: str = CGROUP_ROOT,
                 proc_root: str = "/proc", max_window_s: float = TASK_STATS_MAX_WINDOW_S,
                 prime_s: float = TASK_STATS_PRIME_S) -> None:
        # time.sleep looked up when called: gevent's, in the agent, yields to the other greenlets.
        self.clock, self.wall = clock, wall
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        self.cgroup_root, self.proc_root = cgroup_root, proc_root
        self.max_window_s, self.prime_s = max_window_s, prime_s
        self._prev: dict[Key, tuple[float, float, float, float]] = {}  # key -> (t, total, user, sys)

    # ------------------------------------------------------------ the answer
    def alloc_usage(self, alloc_id: str, tasks: dict[str, dict[str, Any]], compute: Compute
                    ) -> dict[str, Any]:
        targets = {name: self._target(alloc_id, name, s) for name, s in sorted(tasks.items()) if s}
        now = self.clock()
        counters = self._counters(targets)
        if any(self._stale(t.key, now) for t in targets.values() if t is not None):
            self._remember(counters, now)
            self.sleep(self.prime_s)
            targets = {name: t if t is None else self._alive(t) for name, t in targets.items()}
            now = self.clock()
            counters = self._counters(targets)
        percents = {key: self._percent(key, c, now) for key, c in counters.items()}
        self._remember(counters, now)
        stamp = int(self.wall() * 1e9)
        out: dict[str, Any] = {}
        total = _usage(_memory(), _cpu())
        for name, t in targets.items():
            s = tasks[name]
            if t is None:  # not a process we can see: the driver's own figures
                cpu = float(s.get("cpu_percent", 0.0))
                rss = int(s.get("rss_bytes", 0))
                usage = _usage(_memory(RSS=rss, Measured=["RSS"]),
                               _cpu(Percent=cpu, TotalTicks=compute.ticks(cpu), Measured=["Percent"]))
                pids = None
            else:
                usage, pids = self._task_usage(t, percents, compute)
            out[name] = {"ResourceUsage": usage, "Timestamp": stamp, "Pids": pids}
            _add(total, usage)
        return {"ResourceUsage": total, "Tasks": out, "Timestamp": stamp if out else 0}

    def _task_usage(self, t: _Target, percents: dict[Key, Times],
                    compute: Compute) -> tuple[dict[str, Any], dict[str, Any]]:
        pids: dict[str, Any] = {}
        rss = swap = 0
        user = system = percent = 0.0
        for (pid, started), proc in sorted(t.procs.items()):
            p_rss, p_swap = self._memory_of(proc)
            p_pct, p_user, p_sys = percents.get(("pid", pid, started), (0.0, 0.0, 0.0))
            rss, swap = rss + p_rss, swap + p_swap
            percent, user, system = percent + p_pct, user + p_user, system + p_sys
            pids[str(pid)] = _usage(_memory(RSS=p_rss, Swap=p_swap, Measured=list(BASIC_MEMORY)),
                                    _cpu(SystemMode=p_sys, UserMode=p_user, Percent=p_pct,
                                         Measured=list(BASIC_CPU)))
        if t.cgroup is None:
            return _usage(_memory(RSS=rss, Swap=swap, Measured=list(BASIC_MEMORY)),
                          _cpu(SystemMode=system, UserMode=user, Percent=percent,
                               TotalTicks=compute.ticks(percent), Measured=list(BASIC_CPU))), pids
        percent, user, system = percents.get(t.key, (0.0, 0.0, 0.0))
        periods, throttled = self._throttling(t.cgroup)
        return _usage(self._cgroup_memory(t.cgroup),
                      _cpu(SystemMode=system, UserMode=user, Percent=percent,
                           TotalTicks=compute.ticks(percent),
                           ThrottledPeriods=periods, ThrottledTime=throttled,
                           Measured=list(CGROUP_CPU))), pids

    # ------------------------------------------------------------ CPU samples
    def _stale(self, key: Key, now: float) -> bool:
        prev = self._prev.get(key)
        return prev is None or now - prev[0] > self.max_window_s or now <= prev[0]

    def _percent(self, key: Key, c: Times, now: float) -> Times:
        """(total, user, system) percent since the previous sample (Nomad's Tracker.Percent: 0 if none)."""
        prev = self._prev.get(key)
        if prev is None or now <= prev[0] or now - prev[0] > self.max_window_s:
            return 0.0, 0.0, 0.0
        span = (now - prev[0]) * 1e9
        return tuple(max(0.0, (c[i] - prev[i + 1]) / span * 100.0) for i in range(3))  # type: ignore[return-value]

    def _remember(self, counters: dict[Key, Times], now: float) -> None:
        for key, c in counters.items():
            self._prev[key] = (now, *c)
        for key in [k for k, v in self._prev.items() if now - v[0] > self.max_window_s]:
            del self._prev[key]  # processes and tasks gone

    def _counters(self, targets: dict[str, _Target | None]) -> dict[Key, Times]:
        """Cumulative CPU time (ns: total, user, system) of every process, and of each task's cgroup."""
        out: dict[Key, Times] = {}
        for t in targets.values():
            if t is None:
                continue
            for (pid, started), proc in t.procs.items():
                try:
                    ct = proc.cpu_times()
                except Exception:
                    continue
                out[("pid", pid, started)] = ((ct.user + ct.system) * 1e9, ct.user * 1e9, ct.system * 1e9)
            if t.cgroup is not None:
                c = self._cgroup_cpu(t.cgroup)
                if c is not None:
                    out[t.key] = c
        return out

    # ------------------------------------------------------------ finding the task
    def _target(self, alloc_id: str, task: str, s: dict[str, Any]) -> _Target | None:
        import psutil

        pid = int(s.get("pid") or 0)
        if pid <= 0:
            return None
        try:
            leader = psutil.Process(pid)
            tree = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return None
        procs = {}
        for p in tree:
            try:
                procs[(p.pid, p.create_time())] = p
            except psutil.Error:
                continue
        cgroup = None
        for p in tree[1:] + tree[:1]:  # the exec driver's launcher stays outside the task's cgroup
            cgroup = self._task_cgroup(p.pid, {f"{alloc_id}.{task}", f"{alloc_id}.{task}.scope"})
            if cgroup is not None:
                break
        if cgroup is not None:  # Nomad lists an exec task's processes from its cgroup
            procs = self._cgroup_procs(cgroup, psutil) or procs
            return _Target(key=("cgroup", cgroup["memory"]), procs=procs, cgroup=cgroup)
        leader_key = next(iter(procs), (pid, 0.0))  # the leader's own counter: the tree's first
        return _Target(key=("pid", *leader_key), procs=procs)

    def _alive(self, t: _Target) -> _Target:
        import psutil

        procs = {}
        for key, p in t.procs.items():
            try:
                if p.is_running():
                    procs[key] = p
            except psutil.Error:
                continue
        return _Target(key=t.key, procs=procs, cgroup=t.cgroup)

    def _task_cgroup(self, pid: int, names: set[str]) -> dict[str, str] | None:
        """The task's own cgroup directories, from /proc/<pid>/cgroup, when the process is in one named
        as the exec driver names them; None otherwise (raw_exec: the agent's cgroup is not the task's)."""
        try:
            lines = _read(os.path.join(self.proc_root, str(pid), "cgroup")).splitlines()
        except OSError:
            return None
        v1: dict[str, str] = {}
        unified = ""
        for line in lines:
            _, ctrls, path = [*line.split(":", 2), "", ""][:3]
            if not ctrls:
                unified = path
            for c in ctrls.split(","):
                if c in ("memory", "cpu", "cpuacct"):
                    v1[c] = os.path.join(self.cgroup_root, c, path.lstrip("/"))
        if "memory" in v1:
            if os.path.basename(v1["memory"]) in names and os.path.isdir(v1["memory"]):
                return {"mode": "v1", "memory": v1["memory"], "cpu": v1.get("cpu", ""),
                        "cpuacct": v1.get("cpuacct", "")}
            return None
        base = os.path.join(self.cgroup_root, unified.lstrip("/"))
        if unified and os.path.basename(base) in names and os.path.isdir(base):
            return {"mode": "v2", "memory": base, "cpu": base, "cpuacct": base}
        return None

    @staticmethod
    def _cgroup_procs(cg: dict[str, str], psutil: Any) -> dict[tuple[int, float], Any]:
        try:
            pids = [int(x) for x in _read(os.path.join(cg["memory"], "cgroup.procs")).split()]
        except (OSError, ValueError):
            return {}
        out = {}
        for pid in pids:
            try:
                p = psutil.Process(pid)
                out[(pid, p.create_time())] = p
            except psutil.Error:
                continue
        return out

    # ------------------------------------------------------------ reading figures
    def _memory_of(self, proc: Any) -> tuple[int, int]:
        """A process's RSS and swap (bytes); 0s once it is gone."""
        try:
            rss = int(proc.memory_info().rss)
        except Exception:
            return 0, 0
        swap = 0
        try:
            for line in _read(os.path.join(self.proc_root, str(proc.pid), "status")).splitlines():
                if line.startswith("VmSwap:"):
                    swap = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            pass
        return rss, swap

    @staticmethod
    def _cgroup_cpu(cg: dict[str, str]) -> Times | None:
        try:
            if cg["mode"] == "v2":
                st = _kv(_read(os.path.join(cg["cpu"], "cpu.stat")))
                return (st.get("usage_usec", 0) * 1e3, st.get("user_usec", 0) * 1e3,
                        st.get("system_usec", 0) * 1e3)
            if not cg["cpuacct"]:
                return None
            total = float(_read(os.path.join(cg["cpuacct"], "cpuacct.usage")).split()[0])
            st = _kv(_read(os.path.join(cg["cpuacct"], "cpuacct.stat")))
        except (OSError, ValueError, IndexError):
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return total, st.get("user", 0) * 1e9 / hz, st.get("system", 0) * 1e9 / hz

    @staticmethod
    def _throttling(cg: dict[str, str]) -> tuple[int, int]:
        """(throttled periods, throttled time in ns) of the task's CPU controller."""
        if not cg["cpu"]:
            return 0, 0
        try:
            st = _kv(_read(os.path.join(cg["cpu"], "cpu.stat")))
        except OSError:
            return 0, 0
        if cg["mode"] == "v2":
            return st.get("nr_throttled", 0), st.get("throttled_usec", 0) * 1000
        return st.get("nr_throttled", 0), st.get("throttled_time", 0)

    @staticmethod
    def _cgroup_memory(cg: dict[str, str]) -> dict[str, Any]:
        """Nomad's libcontainer executor's MemoryStats of the task's cgroup."""
        base = cg["memory"]
        try:
            st = _kv(_read(os.path.join(base, "memory.stat")))
        except OSError:
            st = {}
        if cg["mode"] == "v2":
            return _memory(RSS=st.get("anon", 0), Cache=st.get("file", 0),
                           MappedFile=st.get("file_mapped", 0),
                           Swap=_int_file(os.path.join(base, "memory.swap.current")),
                           Usage=_int_file(os.path.join(base, "memory.current")),
                           MaxUsage=_int_file(os.path.join(base, "memory.peak")),
                           Measured=list(CGROUP_V2_MEMORY))
        return _memory(RSS=st.get("rss", 0), Cache=st.get("cache", 0), MappedFile=st.get("mapped_file", 0),
                       Swap=_int_file(os.path.join(base, "memory.memsw.usage_in_bytes")),
                       Usage=_int_file(os.path.join(base, "memory.usage_in_bytes")),
                       MaxUsage=_int_file(os.path.join(base, "memory.max_usage_in_bytes")),
                       KernelUsage=_int_file(os.path.join(base, "memory.kmem.usage_in_bytes")),
                       KernelMaxUsage=_int_file(os.path.join(base, "memory.kmem.max_usage_in_bytes")),
                       Measured=list(CGROUP_V1_MEMORY))


def _memory(**given: Any) -> dict[str, Any]:
    """Nomad's MemoryStats, zeros where not given."""
    return {"RSS": 0, "Cache": 0, "Swap": 0, "MappedFile": 0, "Usage": 0, "MaxUsage": 0, "KernelUsage": 0,
            "KernelMaxUsage": 0, "Measured": None, **given}


def _cpu(**given: Any) -> dict[str, Any]:
    """Nomad's CpuStats, zeros where not given."""
    return {"SystemMode": 0.0, "UserMode": 0.0, "TotalTicks": 0.0, "ThrottledPeriods": 0, "ThrottledTime": 0,
            "Percent": 0.0, "Measured": None, **given}


def _usage(memory: dict[str, Any], cpu: dict[str, Any]) -> dict[str, Any]:
    return {"MemoryStats": memory, "CpuStats": cpu, "DeviceStats": []}


def _add(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Nomad's ResourceUsage.Add: figures summed, the measured names joined (first seen first)."""
    for part in ("MemoryStats", "CpuStats"):
        into, other = total[part], usage[part]
        for k, v in other.items():
            if k == "Measured":
                if v:
                    into[k] = (into[k] or []) + [m for m in v if m not in (into[k] or [])]
            else:
                into[k] += v
    total["DeviceStats"] = total["DeviceStats"] + usage["DeviceStats"]
