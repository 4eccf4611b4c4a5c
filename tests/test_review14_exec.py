"""Review 14: defects of the exec driver, each shown by a real isolated task (skipped where exec cannot run).

Each test was xfail(strict) until its defect was fixed; all of them pass now.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

import pytest

from actors.client.alloc_runner import (
    NS,
    AllocRunner,
    AllocRunnerConfig,
    DiskAllocDirs,
    FileAllocStore,
    SetAllocs,
)
from runtime.prod import ProdNode
from tests import test_exec_driver as ted
from tests.test_exec_driver import _WHY_NOT, ENV, Reporter, Tracked, _status, exit_of, stdout, wait_for

started = ted.started  # the fixture: every task a test starts is killed with its cgroup

pytestmark = pytest.mark.timeout(60)
real = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "runs")
PY = "/usr/bin/python3"

# The classic chroot escape: chroot into a subdirectory without changing into it, climb with ".." from
# the working directory (now outside the process's root, so ".." is never stopped), chroot(".").  It needs
# only CAP_SYS_CHROOT, which Nomad's default capability set gives every exec task (ambient for nobody).
ESCAPE = textwrap.dedent("""
    import os, sys
    os.makedirs("/tmp/esc", exist_ok=True)
    try:
        os.chroot("/tmp/esc")
    except OSError as e:
        print("no-chroot", e); sys.exit(0)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    secret = os.environ["HOST_SECRET"]
    print("host-visible" if os.path.exists(secret) else "not-visible")
    try:
        with open(os.path.join(os.path.dirname(secret), "written-by-task"), "w") as f:
            f.write("escaped")
        print("host-written")
    except OSError as e:
        print("not-written", e)
""")


@real
def test_exec_task_as_nobody_cannot_escape_its_chroot(started, tmp_path):
    host = tmp_path / "host-only"
    host.mkdir()
    os.chmod(tmp_path, 0o700)
    (host / "secret").write_text("host data\n")
    os.chmod(host, 0o700)
    driver = Tracked(started)
    h = driver.start("a1", "web", {"command": PY, "args": ["-c", ESCAPE]}, str(tmp_path / "a1" / "web"),
                     {**ENV, "HOST_SECRET": str(host / "secret")})
    res = exit_of(driver, h)
    out = stdout(tmp_path)
    assert res.exit_code == 0, out
    assert "host-visible" not in out and not (host / "written-by-task").exists(), out


# ------------------------------------------------------------ limits from the task's environment


@real
def test_an_env_template_cannot_lift_the_tasks_memory_limit(started, tmp_path):
    node = ProdNode("c1", seed=1)
    try:
        got: list[Any] = []
        node.spawn(Reporter, "reporter", got)
        driver = Tracked(started)
        os.makedirs(tmp_path / "allocs")
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": driver},
                         state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                         alloc_dirs=DiskAllocDirs(str(tmp_path / "allocs")),
                         reporter="reporter", config=AllocRunnerConfig(poll_interval_s=0.05))
        t = {"Name": "web", "Driver": "exec", "KillTimeout": int(0.2 * NS),
             "Config": {"command": "/bin/sh", "args": ["-c", "exec sleep 30"]},
             "Resources": {"CPU": 100, "MemoryMB": 32},
             "Templates": [{"EmbeddedTmpl": "NOMAD_MEMORY_LIMIT=0\nNOMAD_CPU_LIMIT=262144\n",
                            "DestPath": "local/limits.env", "Envvars": True, "ChangeMode": "noop"}]}
        job = {"ID": "job", "Type": "service", "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}
        alloc = {"ID": "m1", "JobID": "job", "TaskGroup": "g", "DesiredStatus": "run",
                 "ClientStatus": "pending", "AllocModifyIndex": 1, "Job": job}
        ref.tell(SetAllocs(allocs=(alloc,), index=1))
        assert wait_for(lambda: _status(got, "m1") == "running"), got[-1:] if got else "no update"
        by = driver._cgroups.by_controller(driver._cgroups.task_paths("m1", "web"))
        if driver._cgroups.mode == "v1":
            limit = int(open(os.path.join(by["memory"], "memory.limit_in_bytes")).read())
            shares = int(open(os.path.join(by["cpu"], "cpu.shares")).read())
        else:
            path = driver._cgroups.task_paths("m1", "web")[0]
            raw = open(os.path.join(path, "memory.max")).read().strip()
            limit = 1 << 62 if raw == "max" else int(raw)
            shares = 100
        assert (limit, shares) == (32 << 20, 100)
    finally:
        node.stop_all(timeout_s=2.0)


@real
def test_the_agents_secrets_in_its_environment_do_not_reach_an_exec_task(started, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "agent-aws-secret")
    monkeypatch.setenv("VAULT_TOKEN", "agent-vault-token")
    driver = Tracked(started)
    h = driver.start("a1", "web", {"command": "/bin/sh", "args": ["-c", "env"]}, str(tmp_path / "a1" / "web"),
                     dict(ENV))
    assert exit_of(driver, h).exit_code == 0
    out = stdout(tmp_path)
    assert "agent-aws-secret" not in out and "agent-vault-token" not in out, out


PROC_SYS = textwrap.dedent("""
    import os
    os.setuid(0)  # CAP_SETUID is in Nomad's default set, ambient for a nobody task
    for p in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"):
        print(p, "writable" if os.access(p, os.W_OK) else "read-only")
""")


@real
def test_an_exec_task_cannot_write_the_hosts_kernel_settings(started, tmp_path):
    driver = Tracked(started)
    h = driver.start("a1", "web", {"command": PY, "args": ["-c", PROC_SYS]}, str(tmp_path / "a1" / "web"),
                     dict(ENV))
    res = exit_of(driver, h)
    out = stdout(tmp_path)
    assert res.exit_code == 0, out
    assert "writable" not in out, out


@real
def test_mounts_below_a_chroot_env_entry_are_read_only_too(started, tmp_path):
    import subprocess

    src, real_dir = tmp_path / "tools", tmp_path / "cache-real"
    (src / "cache").mkdir(parents=True)
    real_dir.mkdir()
    if subprocess.run(["mount", "--bind", str(real_dir), str(src / "cache")]).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        driver = Tracked(started)
        driver.chroot_env = (*driver.chroot_env, (str(src), "/tools"))
        h = driver.start("a1", "web", {"command": "/bin/sh", "args": ["-c", "touch /tools/cache/x"]},
                         str(tmp_path / "a1" / "web"), dict(ENV))
        exit_of(driver, h)
        assert not (real_dir / "x").exists()
    finally:
        subprocess.run(["umount", str(src / "cache")], check=False)


@real
def test_a_task_cannot_make_the_log_rotator_write_a_host_file(started, tmp_path):
    from actors.client.drivers import LogSettings

    host = tmp_path / "host-only"
    host.mkdir(mode=0o700)
    target = host / "written-by-rotator"
    driver = Tracked(started)
    script = ('ln -s "$TARGET" /alloc/logs/web.stdout.1 && echo planted >&2; '
              "head -c 3000 /dev/zero | tr '\\0' x; sleep 0.2")
    h = driver.start("a1", "web", {"command": "/bin/sh", "args": ["-c", script]},
                     str(tmp_path / "a1" / "web"), {**ENV, "TARGET": str(target)},
                     logs=LogSettings(max_files=3, max_file_bytes=1000))
    exit_of(driver, h)
    err = (tmp_path / "a1" / "alloc" / "logs" / "web.stderr.0").read_text()
    assert "planted" in err, err  # the task could plant it: the point is what the rotator does with it
    assert not target.exists(), f"the rotator wrote {target.stat().st_size} bytes of task output there"


def _memory_limit_of(tmp_path: Any, started: Any, task: dict[str, Any],
                     allocated: dict[str, Any] | None = None) -> int:
    node = ProdNode("c1", seed=1)
    try:
        got: list[Any] = []
        node.spawn(Reporter, "reporter", got)
        driver = Tracked(started)
        os.makedirs(tmp_path / "allocs")
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": driver},
                         state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                         alloc_dirs=DiskAllocDirs(str(tmp_path / "allocs")),
                         reporter="reporter", config=AllocRunnerConfig(poll_interval_s=0.05))
        t = {"Name": "web", "Driver": "exec", "KillTimeout": int(0.2 * NS),
             "Config": {"command": "/bin/sh", "args": ["-c", "exec sleep 30"]}, **task}
        job = {"ID": "job", "Type": "service", "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}
        alloc = {"ID": "m2", "JobID": "job", "TaskGroup": "g", "DesiredStatus": "run",
                 "ClientStatus": "pending", "AllocModifyIndex": 1, "Job": job,
                 **({"AllocatedResources": allocated} if allocated else {})}
        ref.tell(SetAllocs(allocs=(alloc,), index=1))
        assert wait_for(lambda: _status(got, "m2") == "running"), got[-1:] if got else "no update"
        cg = driver._cgroups
        path = cg.task_paths("m2", "web")
        if cg.mode == "v1":
            return int(open(os.path.join(cg.by_controller(path)["memory"], "memory.limit_in_bytes")).read())
        raw = open(os.path.join(path[0], "memory.max")).read().strip()
        return 1 << 62 if raw == "max" else int(raw)
    finally:
        node.stop_all(timeout_s=2.0)


@real
def test_a_jobs_env_block_cannot_set_the_hard_memory_limit(started, tmp_path):
    limit = _memory_limit_of(tmp_path, started, {"Resources": {"CPU": 100, "MemoryMB": 32},
                                                 "Env": {"NOMAD_MEMORY_MAX_LIMIT": "100000"}})
    assert limit == 32 << 20


@real
def test_memory_max_is_the_exec_tasks_hard_limit(started, tmp_path):
    # As placed: the scheduler writes memory_max into AllocatedResources only with memory
    # oversubscription on (without it, the alloc holds none and memory is the hard limit).
    resources = {"CPU": 100, "MemoryMB": 32, "MemoryMaxMB": 64}
    placed = {"Tasks": {"web": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 32, "MemoryMaxMB": 64}}}}
    limit = _memory_limit_of(tmp_path, started, {"Resources": resources}, placed)
    assert limit == 64 << 20
