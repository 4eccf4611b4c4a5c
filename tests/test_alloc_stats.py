"""Live resource usage as Nomad shows it: the alloc stats endpoint, ``alloc status`` and ``node status``.

The probe (runtime/host_stats.py ``TaskStatsProbe``) measures a real busy
process tree, and an exec task's cgroup from fake cgroup and /proc files
(its clock and sleep injected); the CLI's tables are checked against fake API
answers; one real ``-dev`` agent runs a raw_exec task that burns CPU, whose
stats, ``alloc status`` and ``node status -stats`` show it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.host_stats import CGROUP_CPU, CGROUP_V1_MEMORY, CGROUP_V2_MEMORY, Compute, TaskStatsProbe
from tests.test_agent_process import wait_for
from tests.test_cli_jobs import NOMAD, QUICK_UPDATE, columns
from tests.test_exec_driver import driver, real, run, started  # noqa: F401
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401

pytestmark = pytest.mark.timeout(120)
BURN_DEADLINE_S = 10.0  # a busy loop shows CPU in its first sample; slack for a loaded 2-core machine
COMPUTE = Compute(total_mhz=4000.0, cores=2)  # 2000 MHz a core: 100 % of one core is 2000 MHz


def section(lines: list[str], title: str) -> list[str]:
    """The lines under *title*, up to the next blank one."""
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.fixture
def burner():
    proc = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_busy_process_shows_its_cpu_share_as_mhz_of_the_node(burner) -> None:
    """Nomad's basic executor: RSS and swap, user/system/total percent of the tree's processes, and
    TotalTicks = percent / 100 x (total compute / cores)."""
    probe = TaskStatsProbe(prime_s=0.1)

    def sample() -> dict[str, Any] | None:
        got = probe.alloc_usage("a1", {"burn": {"pid": burner.pid}}, COMPUTE)
        return got if got["Tasks"]["burn"]["ResourceUsage"]["CpuStats"]["TotalTicks"] > 0 else None
    got = wait_for(sample, "a CPU sample of the busy loop", BURN_DEADLINE_S)
    task = got["Tasks"]["burn"]
    cpu, mem = task["ResourceUsage"]["CpuStats"], task["ResourceUsage"]["MemoryStats"]
    assert cpu["TotalTicks"] == pytest.approx(cpu["Percent"] / 100 * 2000)
    assert cpu["Percent"] == pytest.approx(cpu["UserMode"] + cpu["SystemMode"], abs=1e-6)
    assert cpu["Measured"] == ["System Mode", "User Mode", "Percent"]
    assert mem["RSS"] > 0 and mem["Measured"] == ["RSS", "Swap"]
    assert list(task["Pids"]) == [str(burner.pid)] and task["Timestamp"] > 0
    assert got["ResourceUsage"] == task["ResourceUsage"]  # one task: the allocation's sum is its figures
    # A process psutil does not know keeps its driver's figures.
    other = probe.alloc_usage("a1", {"t": {"pid": 0, "cpu_percent": 50.0, "rss_bytes": 4096}}, COMPUTE)
    assert other["Tasks"]["t"]["ResourceUsage"]["CpuStats"]["TotalTicks"] == 1000.0
    assert other["Tasks"]["t"]["ResourceUsage"]["MemoryStats"]["RSS"] == 4096
    none = probe.alloc_usage("a1", {}, COMPUTE)
    assert (none["Tasks"], none["Timestamp"], none["ResourceUsage"]["DeviceStats"]) == ({}, 0, [])
    assert none["ResourceUsage"]["MemoryStats"] == {**other["ResourceUsage"]["MemoryStats"], "RSS": 0,
                                                    "Measured": None}
    assert none["ResourceUsage"]["CpuStats"] == {**other["ResourceUsage"]["CpuStats"], "Percent": 0.0,
                                                 "TotalTicks": 0.0, "Measured": None}


class FakeCgroup:
    """An exec task's cgroup files and a /proc/<pid>/cgroup naming it; each injected sleep adds CPU time."""

    def __init__(self, root: Path, pid: int, mode: str) -> None:
        self.mode, self.now, self.cpu_ns = mode, 100.0, 0
        proc = root / "proc" / str(pid)
        proc.mkdir(parents=True)
        if mode == "v1":
            (proc / "cgroup").write_text("5:memory:/nomad/a1.web\n3:cpu,cpuacct:/nomad/a1.web\n0::/\n")
            self.dirs = {c: root / "cg" / c / "nomad" / "a1.web" for c in ("memory", "cpu", "cpuacct")}
        else:
            (proc / "cgroup").write_text("0::/nomad.slice/a1.web.scope\n")
            d = root / "cg" / "nomad.slice" / "a1.web.scope"
            self.dirs = {"memory": d, "cpu": d, "cpuacct": d}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        mem = self.dirs["memory"]
        (mem / "cgroup.procs").write_text(f"{pid}\n")
        if mode == "v1":
            (mem / "memory.stat").write_text("cache 4096\nrss 1048576\nmapped_file 0\n")
            for name, value in (("usage_in_bytes", 2 << 20), ("max_usage_in_bytes", 3 << 20),
                                ("memsw.usage_in_bytes", 2 << 20), ("kmem.usage_in_bytes", 8192),
                                ("kmem.max_usage_in_bytes", 16384)):
                (mem / f"memory.{name}").write_text(f"{value}\n")
        else:
            (mem / "memory.stat").write_text("anon 1048576\nfile 4096\nfile_mapped 0\n")
            (mem / "memory.current").write_text(f"{2 << 20}\n")
            (mem / "memory.swap.current").write_text("0\n")
        self.write_cpu()

    def write_cpu(self) -> None:
        half = self.cpu_ns // 2
        if self.mode == "v1":
            (self.dirs["cpuacct"] / "cpuacct.usage").write_text(f"{self.cpu_ns}\n")
            ticks = half * 100 // 10**9  # USER_HZ
            (self.dirs["cpuacct"] / "cpuacct.stat").write_text(f"user {ticks}\nsystem {ticks}\n")
            (self.dirs["cpu"] / "cpu.stat").write_text("nr_periods 10\nnr_throttled 3\nthrottled_time 5000\n")
        else:
            us = self.cpu_ns // 1000
            (self.dirs["cpu"] / "cpu.stat").write_text(
                f"usage_usec {us}\nuser_usec {us // 2}\nsystem_usec {us // 2}\nnr_throttled 3\n"
                "throttled_usec 5\n")

    def sleep(self, seconds: float) -> None:  # a second passes, in which the task used half a core
        self.now += 1.0
        self.cpu_ns += 500_000_000
        self.write_cpu()


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_an_exec_task_is_measured_from_its_cgroup_as_nomads_libcontainer_executor(tmp_path, mode) -> None:
    launcher = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"])
    try:
        import psutil

        task = wait_for(lambda: next(iter(psutil.Process(launcher.pid).children()), None), "the task", 5.0)
        cg = FakeCgroup(tmp_path, task.pid, mode)
        probe = TaskStatsProbe(clock=lambda: cg.now, sleep=cg.sleep, cgroup_root=str(tmp_path / "cg"),
                               proc_root=str(tmp_path / "proc"))
        got = probe.alloc_usage("a1", {"web": {"pid": launcher.pid}}, COMPUTE)["Tasks"]["web"]
    finally:
        launcher.kill()
        launcher.wait()
    cpu, mem = got["ResourceUsage"]["CpuStats"], got["ResourceUsage"]["MemoryStats"]
    assert cpu["Percent"] == pytest.approx(50.0) and cpu["TotalTicks"] == pytest.approx(1000.0)
    assert cpu["UserMode"] == pytest.approx(25.0) and cpu["SystemMode"] == pytest.approx(25.0)
    assert (cpu["ThrottledPeriods"], cpu["ThrottledTime"]) == (3, 5000) and cpu["Measured"] == CGROUP_CPU
    assert (mem["RSS"], mem["Cache"], mem["Usage"]) == (1 << 20, 4096, 2 << 20)
    if mode == "v1":
        assert (mem["MaxUsage"], mem["KernelUsage"], mem["KernelMaxUsage"]) == (3 << 20, 8192, 16384)
        assert mem["Measured"] == CGROUP_V1_MEMORY
    else:
        assert mem["Measured"] == CGROUP_V2_MEMORY
    assert list(got["Pids"]) == [str(task.pid)]  # the cgroup's processes, not the launcher outside it


@real
def test_a_real_exec_task_is_measured_from_the_cgroup_the_exec_driver_made(driver, tmp_path) -> None:  # noqa: F811
    h = run(driver, tmp_path, "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done")
    probe = TaskStatsProbe(prime_s=0.1)

    def sample() -> dict[str, Any] | None:
        usage = probe.alloc_usage("a1", {"web": driver.stats(h)}, COMPUTE)["Tasks"]["web"]["ResourceUsage"]
        return usage if usage["CpuStats"]["TotalTicks"] > 0 and usage["MemoryStats"]["Usage"] > 0 else None
    usage = wait_for(sample, "the exec task's CPU and memory", BURN_DEADLINE_S)
    assert usage["CpuStats"]["Measured"] == CGROUP_CPU
    assert usage["MemoryStats"]["Measured"] in (CGROUP_V1_MEMORY, CGROUP_V2_MEMORY)
    assert usage["CpuStats"]["TotalTicks"] == pytest.approx(usage["CpuStats"]["Percent"] / 100 * 2000)


# ---------------------------------------------------------------- the CLI, against fake answers

ALLOC = {"ID": "a1", "EvalID": "e1", "Name": "j.g[0]", "NodeID": "n1", "JobID": "j", "Namespace": "default",
         "ClientStatus": "running", "DesiredStatus": "run", "TaskGroup": "g",
         "Resources": {"CPU": 100, "MemoryMB": 300, "DiskMB": 300},
         "AllocatedResources": {"Tasks": {"web": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 300}}}},
         "TaskStates": {"web": {"State": "running"}}}
NODE = {"ID": "n1", "Name": "n1", "Status": "ready", "SchedulingEligibility": "eligible",
        "HTTPAddr": "127.0.0.1:1", "Attributes": {"unique.storage.volume": "/dev/sda1"},
        "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192},
                          "Disk": {"DiskMB": 10240}},
        "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0}}}
USAGE = {"MemoryStats": {"RSS": 24 << 20, "Cache": 0, "Swap": 0, "Usage": 0, "MaxUsage": 0, "KernelUsage": 0,
                         "KernelMaxUsage": 0, "Measured": ["RSS", "Swap"]},
         "CpuStats": {"SystemMode": 0.5, "UserMode": 0.75, "TotalTicks": 12.9, "ThrottledPeriods": 0,
                      "ThrottledTime": 0, "Percent": 1.25,
                      "Measured": ["System Mode", "User Mode", "Percent"]},
         "DeviceStats": []}
STATS = {"ResourceUsage": USAGE, "Tasks": {"web": {"ResourceUsage": USAGE, "Timestamp": 1, "Pids": None}},
         "Timestamp": 1}
HOST = {"Memory": {"Total": 8 << 30, "Available": 6 << 30, "Used": 2 << 30, "Free": 5 << 30},
        "CPU": [{"CPU": "cpu0", "User": 10.5, "System": 2.25, "Idle": 87.25, "TotalPercent": 12.75},
                {"CPU": "cpu1", "User": 1.0, "System": 1.0, "Idle": 98.0, "TotalPercent": 2.0}],
        "DiskStats": [{"Device": "/dev/sda1", "Mountpoint": "/", "Size": 100 << 30, "Used": 40 << 30,
                       "Available": 60 << 30, "UsedPercent": 40.0, "InodesUsedPercent": 1.5}],
        "Uptime": 93784, "CPUTicksConsumed": 510.7, "Timestamp": 1}


@pytest.fixture
def fake_api(monkeypatch):
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    answers: dict[str, Any] = {"/v1/allocation/a1": ALLOC, "/v1/node/n1": NODE,
                               "/v1/node/n1/allocations": [ALLOC], "/v1/client/allocation/a1/stats": STATS,
                               "/v1/client/stats": HOST}
    asked: list[str] = []

    def get_raw(url: str, timeout_s: float = 0) -> bytes:
        path = "/v1/" + url.split("/v1/", 1)[1].split("?")[0]
        asked.append(url)
        if answers.get(path) is None:
            raise cli_jobs.CliError("Unexpected response code: 404 (Unknown allocation)")
        return json.dumps(answers[path]).encode()

    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix, **_: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: answers[path])
    monkeypatch.setattr(cli_jobs, "_get_raw", get_raw)
    return cli_jobs, answers, asked


def test_alloc_status_shows_usage_against_the_reservation_and_stats_in_detail(fake_api, capsys) -> None:
    cli_jobs, answers, asked = fake_api
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    assert asked[0].startswith("http://127.0.0.1:1/v1/client/allocation/a1/stats?")
    at = out.index("Task Resources:")
    assert columns(out[at + 1]) == ["CPU", "Memory", "Disk", "Addresses"]
    assert columns(out[at + 2]) == ["12/100 MHz", "24 MiB/300 MiB", "300 MiB"]
    assert "Memory Stats" not in out and capsys.readouterr().err == ""

    out = cli_jobs.alloc_status("http://x", ["-stats", "a1"]).splitlines()
    assert [columns(line) for line in section(out, "Memory Stats")] == [["RSS", "Swap"], ["24 MiB", "0 B"]]
    assert [columns(line) for line in section(out, "CPU Stats")] == [
        ["Percent", "System Mode", "User Mode"], ["1.25%", "0.50%", "0.75%"]]

    # cgroup v2 without RSS measured: Usage is shown.
    v2 = {**USAGE, "MemoryStats": {**USAGE["MemoryStats"], "RSS": 0, "Usage": 30 << 20,
                                   "Measured": ["Cache", "Swap", "Usage"]}}
    answers["/v1/client/allocation/a1/stats"] = {**STATS, "Tasks": {"web": {"ResourceUsage": v2}}}
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    assert columns(out[out.index("Task Resources:") + 2])[:2] == ["12/100 MHz", "30 MiB/300 MiB"]

    # The task is not running: no stats for it, the reservation alone.
    answers["/v1/client/allocation/a1/stats"] = {"ResourceUsage": USAGE, "Tasks": {}, "Timestamp": 0}
    out = cli_jobs.alloc_status("http://x", ["-stats", "a1"]).splitlines()
    assert columns(out[out.index("Task Resources:") + 2]) == ["100 MHz", "300 MiB", "300 MiB"]
    assert "CPU Stats" not in out

    # The node cannot answer: Nomad's message on stderr, the reservation shown.
    answers["/v1/client/allocation/a1/stats"] = None
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    assert columns(out[out.index("Task Resources:") + 2]) == ["100 MHz", "300 MiB", "300 MiB"]
    assert capsys.readouterr().err.startswith("Couldn't retrieve stats: Unexpected response code: 404")

    # The node is down: not asked.
    answers["/v1/node/n1"] = {**NODE, "Status": "down"}
    del asked[:]
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    assert "Omitting resource statistics since the node is down." in out and asked == []


def test_node_status_shows_allocation_and_host_utilization_as_nomad_does(fake_api, capsys) -> None:
    cli_jobs, answers, _ = fake_api
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert [line for line in out if line.startswith("Uptime")] == ["Uptime        = 26h3m4s"]
    assert [columns(line) for line in section(out, "Allocated Resources")] == [
        ["CPU", "Memory", "Disk", "Alloc Count"], ["100/4000 MHz", "300 MiB/8.0 GiB", "300 MiB/10 GiB", "1"]]
    assert [columns(line) for line in section(out, "Allocation Resource Utilization")] == [
        ["CPU", "Memory"], ["12/4000 MHz", "24 MiB/8.0 GiB"]]
    assert [columns(line) for line in section(out, "Host Resource Utilization")] == [
        ["CPU", "Memory", "Disk"], ["510/4000 MHz", "2.0 GiB/8.0 GiB", "40 GiB/100 GiB"]]
    assert out.index("Allocated Resources") < out.index("Allocation Resource Utilization") \
        < out.index("Host Resource Utilization") < out.index("Allocations")
    assert "CPU Stats" not in out

    out = cli_jobs.node_status("http://x", ["-stats", "n1"])
    stats = out[out.index("\nCPU Stats\n"):out.index("\nAllocations\n")]
    assert stats == """
CPU Stats
CPU    = cpu0
User   = 10.50%
System = 2.25%
Idle   = 87.25%

CPU    = cpu1
User   = 1.00%
System = 1.00%
Idle   = 98.00%

Memory Stats
Total     = 8.0 GiB
Available = 6.0 GiB
Used      = 2.0 GiB
Free      = 5.0 GiB

Disk Stats
Device         = /dev/sda1
MountPoint     = /
Size           = 100 GiB
Used           = 40 GiB
Available      = 60 GiB
Used Percent   = 40.00%
Inodes Percent = 1.50%
"""
    assert capsys.readouterr().err == ""

    # A storage device the host stats do not cover: its name alone (Nomad's non-physical case); an
    # allocation whose stats cannot be had: no utilization section.
    answers["/v1/node/n1"] = {**NODE, "Attributes": {"unique.storage.volume": "overlay"}}
    answers["/v1/client/allocation/a1/stats"] = None
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert columns(section(out, "Host Resource Utilization")[1])[2] == "(overlay)"
    assert "Allocation Resource Utilization" not in out

    # The node's own stats cannot be had: Nomad's error on stderr, no Uptime or utilization.
    answers["/v1/client/stats"] = None
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert "Host Resource Utilization" not in out and not any(line.startswith("Uptime") for line in out)
    assert "error fetching node stats: Unexpected response code: 404" in capsys.readouterr().err


# ---------------------------------------------------------------- a real agent


def nomad(agent: Any, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{agent.http_port}", *args],
                          capture_output=True, text=True, timeout=60)


def test_a_busy_raw_exec_task_shows_its_cpu_in_stats_alloc_status_and_node_status(dev, tmp_path):  # noqa: F811
    job = {"ID": "stats-burn", "Type": "service", "Datacenters": ["dc1"], "Update": QUICK_UPDATE,
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
               "Name": "burn", "Driver": "raw_exec",
               "Config": {"command": "/bin/sh", "args": ["-c", "while :; do :; done"]},
               "Resources": {"CPU": 100, "MemoryMB": 32}}]}]}
    assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    try:
        def running() -> str | None:
            allocs = call(dev.http_port, "GET", "/v1/job/stats-burn/allocations").json()
            return next((a["ID"] for a in allocs if a["ClientStatus"] == "running"), None)
        alloc_id = wait_for(running, "stats-burn running", PLACE_DEADLINE_S, dev.detail)

        def busy() -> dict[str, Any] | None:
            got = call(dev.http_port, "GET", f"/v1/client/allocation/{alloc_id}/stats").json()
            task = (got.get("Tasks") or {}).get("burn")
            return got if task and task["ResourceUsage"]["CpuStats"]["TotalTicks"] > 0 else None
        stats = wait_for(busy, "a stats sample with the task's CPU", BURN_DEADLINE_S, dev.detail)
        cpu = stats["Tasks"]["burn"]["ResourceUsage"]["CpuStats"]
        assert cpu["Percent"] > 0 and cpu["Measured"] == ["System Mode", "User Mode", "Percent"]
        assert stats["ResourceUsage"]["CpuStats"]["TotalTicks"] == cpu["TotalTicks"]
        assert stats["Tasks"]["burn"]["ResourceUsage"]["MemoryStats"]["RSS"] > 0
        only = call(dev.http_port, "GET", f"/v1/client/allocation/{alloc_id}/stats?task=nosuch").json()
        assert only["Tasks"] == {}

        out = nomad(dev, "alloc", "status", "-stats", alloc_id)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        usage = columns(lines[lines.index("Task Resources:") + 2])
        assert re.fullmatch(r"\d+/100 MHz", usage[0]), usage
        assert re.fullmatch(r"[\d.]+ [KM]iB/32 MiB", usage[1]), usage
        assert columns(section(lines, "CPU Stats")[0]) == ["Percent", "System Mode", "User Mode"]

        node = nomad(dev, "node", "status", "-stats", stats_node(dev, alloc_id))
        assert node.returncode == 0, node.stderr
        lines = node.stdout.splitlines()
        for title in ("Allocated Resources", "Allocation Resource Utilization", "Host Resource Utilization",
                      "CPU Stats", "Memory Stats", "Disk Stats"):
            assert title in lines, node.stdout
        assert re.fullmatch(r"\d+/\d+ MHz", columns(section(lines, "Allocation Resource Utilization")[1])[0])
        assert any(line.startswith("Uptime ") for line in lines)
    finally:
        call(dev.http_port, "DELETE", "/v1/job/stats-burn?purge=true")
        wait_for(lambda: not [a for a in call(dev.http_port, "GET", "/v1/allocations").json()
                              if a["JobID"] == "stats-burn" and a["ClientStatus"] == "running"],
                 "stats-burn stopped", PLACE_DEADLINE_S, dev.detail)


def stats_node(agent: Any, alloc_id: str) -> str:
    return call(agent.http_port, "GET", f"/v1/allocation/{alloc_id}").json()["NodeID"]


def test_the_probe_answers_quickly_when_it_has_a_recent_sample(burner) -> None:
    """Only a first look (or one after a long pause) waits for a fresh CPU window."""
    slept: list[float] = []
    probe = TaskStatsProbe(sleep=lambda s: (slept.append(s), time.sleep(s)), prime_s=0.05)
    probe.alloc_usage("a1", {"burn": {"pid": burner.pid}}, COMPUTE)
    probe.alloc_usage("a1", {"burn": {"pid": burner.pid}}, COMPUTE)
    assert slept == [0.05]


def test_node_status_shows_node_events_newest_first_and_alloc_status_task_events(fake_api) -> None:
    cli_jobs, answers, _ = fake_api
    answers["/v1/node/n1"] = {**NODE, "Events": [
        {"Message": "Node registered", "Subsystem": "Cluster", "Details": {}, "Timestamp": 1795822503.7},
        {"Message": "Driver health changed", "Subsystem": "Driver", "Details": {"driver": "exec"},
         "Timestamp": "2026-11-27T23:40:00.5Z"}]}
    out = cli_jobs.node_status("http://x", ["n1"]).splitlines()
    assert [columns(line) for line in section(out, "Node Events")] == [
        ["Time", "Subsystem", "Message"],
        ["2026-11-27T23:40:00Z", "Driver: exec", "Driver health changed"],
        ["2026-11-27T23:35:03Z", "Cluster", "Node registered"]]
    assert out.index("Node Events") < out.index("Allocated Resources")
    assert "Host Networks = <none>" in out and "CSI Volumes   = <none>" in out
    verbose = cli_jobs.node_status("http://x", ["-verbose", "n1"]).splitlines()
    assert columns(section(verbose, "Node Events")[1])[-1] == "driver: exec"

    answers["/v1/allocation/a1"] = {**ALLOC, "TaskStates": {"web": {
        "State": "dead", "Failed": True, "Restarts": 2, "StartedAt": "2026-11-27T23:35:08.317Z",
        "FinishedAt": "2026-11-27T23:36:00Z", "LastRestart": "0001-01-01T00:00:00Z", "Events": []}}}
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    at = out.index("Task Events:")
    assert out[at + 1:at + 5] == ["Started At     = 2026-11-27T23:35:08Z",
                                  "Finished At    = 2026-11-27T23:36:00Z",
                                  "Total Restarts = 2", "Last Restart   = N/A"]
    assert out[at + 6:at + 8] == ["Recent Events:", "Time  Type  Description"]
