"""Nomad's exec driver: fingerprint and config rules, then real isolated tasks (root, cgroups, namespaces).

The real-task tests run only where the agent could run exec tasks (root on
Linux, cgroups it can create, unshare allowed); elsewhere they are skipped
with the reason.  Every task a test starts is killed with its whole cgroup,
and the cgroup removed, when the test ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any

import psutil
import pytest

from actors.client.alloc_runner import (
    NS,
    AllocRunner,
    AllocRunnerConfig,
    AllocUpdates,
    FileAllocStore,
    SetAllocs,
)
from actors.client.drivers import DriverError, TaskHandle, TaskResources
from actors.client.exec_driver import (
    HEALTHY,
    NO_CGROUP_MOUNT,
    REQUIRES_ROOT,
    UNSUPPORTED_OS,
    Cgroups,
    ExecDriver,
    _mounts,
    detect_cgroups,
    exec_health,
    memory_limits,
    parse_exec_config,
    task_capabilities,
)
from actors.client.fingerprint import detect_drivers, driver_health
from runtime.actor import NodeActor
from runtime.prod import ProdNode
from tests.test_raw_exec import wait_for

pytestmark = pytest.mark.timeout(60)
SH = "/bin/sh"


def CGROUPS_OK() -> tuple[Cgroups, str]:
    return Cgroups(mode="v1", root="/x", parent="nomad", controllers=("memory", "cpu")), ""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------ fingerprint (injected host facts)
def test_fingerprint_is_healthy_only_as_root_on_linux_with_cgroups():
    h = exec_health(is_root=True, kernel_name="linux", cgroups=CGROUPS_OK)
    assert (h.detected, h.healthy, h.description) == (True, True, HEALTHY)
    probed: list[int] = []

    def never() -> Any:
        probed.append(1)
        return None, NO_CGROUP_MOUNT

    # Nomad: not root -> undetected with "Driver must run as root"; the cgroups are not even probed.
    h = exec_health(is_root=False, kernel_name="linux", cgroups=never)
    assert (h.detected, h.healthy, h.description) == (False, False, REQUIRES_ROOT) and not probed
    h = exec_health(is_root=True, kernel_name="darwin", cgroups=never)
    assert (h.detected, h.healthy, h.description) == (False, False, UNSUPPORTED_OS)
    # Root without usable cgroups: detected but unhealthy, with Nomad's reason.
    h = exec_health(is_root=True, kernel_name="linux", cgroups=never)
    assert (h.detected, h.healthy, h.description) == (True, False, NO_CGROUP_MOUNT)
    # The node reports driver.exec only when healthy.
    assert detect_drivers((), is_root=True, kernel_name="linux", cgroups=CGROUPS_OK) == ("exec",)
    assert detect_drivers((), is_root=False, kernel_name="linux", cgroups=CGROUPS_OK) == ()
    assert detect_drivers((), is_root=True, kernel_name="linux", cgroups=never) == ()
    health = driver_health({"driver.raw_exec.enable": "1"}, is_root=False, kernel_name="linux")
    assert health["exec"].description == REQUIRES_ROOT and health["raw_exec"].healthy


def test_cgroup_detection_reads_the_mount_table(tmp_path):
    root = str(tmp_path)
    v1 = [(f"{root}/memory", "cgroup", "rw,memory"), (f"{root}/cpu", "cgroup", "rw,cpu"),
          (f"{root}/pids", "cgroup", "rw,pids"), (f"{root}/unified", "cgroup2", "rw")]
    cg, why = detect_cgroups(root, v1)
    assert cg is not None and why == "" and cg.mode == "v1" and cg.controllers == ("memory", "cpu", "pids")
    assert cg.parent.endswith("nomad")
    assert cg.task_paths("a1", "web")[0] == os.path.join(root, "memory", cg.parent, "a1.web")
    assert detect_cgroups(root, [(root, "cgroup2", "rw")]) == (
        None, f"{NO_CGROUP_MOUNT}: cgroup2 at {root} lacks the memory and cpu controller")
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    v2, _ = detect_cgroups(root, [(root, "cgroup2", "rw")])
    assert v2 is not None and v2.mode == "v2"
    assert v2.task_paths("a1", "web") == [os.path.join(root, "nomad.slice", "a1.web.scope")]
    # A hybrid host's cgroup2 without v1 memory and cpu is no use; nothing mounted neither.
    assert detect_cgroups(root, [(f"{root}/unified", "cgroup2", "rw")]) == (None, NO_CGROUP_MOUNT)
    assert detect_cgroups(root, []) == (None, NO_CGROUP_MOUNT)
    # Mounted but no cgroup can be made there (a read-only cgroupfs): not usable, and the reason says where.
    bad = tmp_path / "bad"
    mounts = [(f"{bad}/memory", "cgroup", "memory"), (f"{bad}/cpu", "cgroup", "cpu")]
    blocker = bad / "memory" / detect_cgroups(str(bad), mounts)[0].parent  # (that probe could make one)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    os.rmdir(blocker)
    blocker.write_text("not a directory")
    got, why = detect_cgroups(str(bad), mounts)
    assert got is None and why.startswith(NO_CGROUP_MOUNT + ": cannot create cgroups under")


# ------------------------------------------------------------ config rules (Nomad's messages)
@pytest.mark.parametrize("config, message", [
    ({"args": ["x"]}, "config.command is required"),
    ({"command": SH, "pid_mode": "shared"}, 'pid_mode must be "private" or "host", got \'shared\''),
    ({"command": SH, "ipc_mode": 1}, 'ipc_mode must be "private" or "host"'),
    ({"command": SH, "work_dir": "local"}, "work_dir must be absolute but got relative path 'local'"),
    ({"command": SH, "cap_add": ["sys_nope"]},
     "cap_add configured with capabilities not supported by system"),
    ({"command": SH, "image": "busybox"}, "unsupported argument"),
])
def test_bad_task_config_is_refused_with_nomads_message(config, message):
    with pytest.raises(DriverError, match=message):
        parse_exec_config(config)


def test_capabilities_and_memory_limits_follow_nomads_rules():
    cfg = parse_exec_config({"command": SH, "cap_drop": ["ALL"], "cap_add": ["cap_kill", "chown"]})
    assert task_capabilities(cfg.cap_add, cfg.cap_drop) == ("CHOWN", "KILL")
    assert "NET_RAW" not in task_capabilities((), ())  # Nomad's defaults leave NET_RAW out
    with pytest.raises(DriverError, match="driver does not allow the following capabilities: NET_RAW"):
        task_capabilities(("NET_RAW",), ())
    assert memory_limits(256, 0) == (256 << 20, 0)
    assert memory_limits(256, 1024) == (1024 << 20, 256 << 20)  # memory_max hard, memory soft


def test_the_plugin_block_sets_the_modes_a_task_does_not_choose():
    from actors.client.exec_driver import exec_plugin_config

    host = exec_plugin_config({"default_pid_mode": "host", "default_ipc_mode": "host"})
    cfg = parse_exec_config({"command": SH}, host)
    assert (cfg.pid_private, cfg.ipc_private) == (False, False)  # Nomad's executor.IsolationMode
    cfg = parse_exec_config({"command": SH, "pid_mode": "private"}, host)
    assert (cfg.pid_private, cfg.ipc_private) == (True, False)  # the task's own mode wins
    assert parse_exec_config({"command": SH}).pid_private  # no plugin block: private
    allow = exec_plugin_config({"allow_caps": ["kill", "net_raw"]}).allow_caps
    assert task_capabilities(("NET_RAW",), (), allow) == ("KILL", "NET_RAW")  # defaults ∩ allow + cap_add
    with pytest.raises(DriverError, match='default_pid_mode must be "private" or "host", got "none"'):
        exec_plugin_config({"default_pid_mode": "none"})
    denied = exec_plugin_config({"denied_host_uids": "0-999, 65534", "denied_host_gids": "0"})
    assert denied.denied_uids == ((0, 999), (65534, 65534)) and denied.denied_gids == ((0, 0),)
    denied.check_user(1000, [1000, 27])
    with pytest.raises(DriverError, match="failed host user validation: running as uid 65534 is disallowed"):
        denied.check_user(65534, [65534])
    with pytest.raises(DriverError, match="failed host user validation: running as gid 0 is disallowed"):
        denied.check_user(1000, [1000, 0])


# ------------------------------------------------------------ real isolated tasks
def _unshare_works() -> bool:
    import subprocess

    try:
        return subprocess.run(["unshare", "--mount", "--pid", "--ipc", "--fork", "true"], timeout=10,
                              capture_output=True).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _can_run() -> str:
    if os.geteuid() != 0:
        return "the exec driver needs root"
    h = exec_health(is_root=True)
    if not h.healthy:
        return f"exec driver not healthy here: {h.description}"
    if not _unshare_works():
        return "this host does not allow new mount/PID/IPC namespaces"
    return ""


_WHY_NOT = _can_run()
real = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "runs")


class Tracked(ExecDriver):
    def __init__(self, started: list[TaskHandle], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = started

    def start(self, *args: Any, **kwargs: Any) -> TaskHandle:
        if len(args) < 8:  # as the client passes what was placed; the tests' tasks: RES
            kwargs.setdefault("resources", RES)
        h = super().start(*args, **kwargs)
        self.started.append(h)
        return h


@pytest.fixture
def started():
    handles: list[TaskHandle] = []
    yield handles
    cleaner = ExecDriver()
    for h in handles:
        paths = cleaner._task_cgroups(h)
        cleaner._kill_cgroups(paths)
        try:
            os.killpg(h.pgid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(h.pid, 0)
        except ChildProcessError:
            pass
        cleaner._remove_cgroups(paths)


@pytest.fixture
def driver(started):
    return Tracked(started)


# What the client sets in a task's env; the limits come from RES (the placed resources), never from it.
ENV = {"NOMAD_MEMORY_LIMIT": "64", "NOMAD_CPU_LIMIT": "250"}
RES = TaskResources(cpu=250, memory_mb=64)


def run(driver: ExecDriver, tmp_path: Any, script: str, *, task: str = "web", alloc_id: str = "a1",
        user: str = "", **config: Any) -> TaskHandle:
    return driver.start(alloc_id, task, {"command": SH, "args": ["-c", script], **config},
                        str(tmp_path / alloc_id / task), dict(ENV), user=user)


def exit_of(driver: ExecDriver, h: TaskHandle, timeout_s: float = 10.0) -> Any:
    got: list[Any] = []
    assert wait_for(lambda: got.append(driver.poll(h)) or got[-1] is not None, timeout_s), "task did not exit"
    return got[-1]


def stdout(tmp_path: Any, alloc_id: str = "a1", task: str = "web") -> str:
    return (tmp_path / alloc_id / "alloc" / "logs" / f"{task}.stdout.0").read_text()


@real
def test_task_runs_chrooted_as_nobody_in_its_own_pid_namespace(driver, tmp_path):
    (tmp_path / "a1" / "web" / "local").mkdir(parents=True)
    (tmp_path / "a1" / "web" / "local" / "conf").write_text("from local\n")
    script = ('echo "pid=$$ uid=$(id -u) user=$(id -un)"; cat /local/conf; echo shared > /alloc/data/x; '
              'ls -d /alloc/logs /local /secrets /tmp /usr/bin; echo "pids=$(ls /proc | grep -c "^[0-9]")"; '
              'test -e /etc/hostname && echo etc; test -e "$HOME_ON_HOST" && echo host-visible; '
              'echo "dirs=$NOMAD_TASK_DIR $NOMAD_ALLOC_DIR $NOMAD_SECRETS_DIR"')
    h = driver.start("a1", "web", {"command": SH, "args": ["-c", script + "; sleep 0.2; exit 3"]},
                     str(tmp_path / "a1" / "web"), {**ENV, "HOME_ON_HOST": str(tmp_path), "TOKEN": "s3cr3t"})
    try:  # the task's environment (secrets among it) is not on any command line the host's users can read
        assert not any("s3cr3t" in arg for arg in psutil.Process(h.pid).cmdline())
    except psutil.NoSuchProcess:
        pass
    res = exit_of(driver, h)
    out = stdout(tmp_path)
    assert res.exit_code == 3, out  # as it exited
    assert "pid=1 uid=65534 user=nobody" in out  # PID 1 of its namespace; Nomad's default user
    assert "from local" in out and "/alloc/logs\n/local\n/secrets\n/tmp\n/usr/bin\n" in out
    assert "host-visible" not in out  # the host's tree is not there: only the chroot
    pids = int(out.split("pids=")[1].split()[0])
    assert pids <= 4, out  # the shell, its subshell, ls and grep: no host process is visible
    assert "dirs=/local /alloc /secrets" in out
    assert (tmp_path / "a1" / "alloc" / "data" / "x").read_text() == "shared\n"  # /alloc is the shared dir
    # Nothing was copied into the task dir: the chroot_env entries are bind mounts of its own namespace.
    assert os.listdir(tmp_path / "a1" / "web" / "usr") == []


@real
def test_limits_are_written_to_the_tasks_cgroup_which_goes_when_it_ends(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    cg = driver._cgroups
    assert cg is not None
    paths = cg.task_paths("a1", "web")
    if cg.mode == "v1":
        by = cg.by_controller(paths)
        assert (open(os.path.join(by["memory"], "memory.limit_in_bytes")).read().strip()
                == str(64 << 20))
        assert open(os.path.join(by["cpu"], "cpu.shares")).read().strip() == "250"
        procs = open(os.path.join(by["memory"], "cgroup.procs")).read().split()
    else:
        assert open(os.path.join(paths[0], "memory.max")).read().strip() == str(64 << 20)
        procs = open(os.path.join(paths[0], "cgroup.procs")).read().split()
    assert len(procs) == 1 and int(procs[0]) != h.pid  # the task is in it, its launcher is not
    stats = driver.stats(h)
    assert stats["processes"] == 1 and stats["memory_usage_bytes"] > 0
    driver.kill(h)
    res = exit_of(driver, h)
    assert (res.exit_code, res.signal) == (137, 9)
    assert not any(os.path.exists(p) for p in paths)
    assert driver.stats(h) == {}


@real
def test_kill_leaves_no_process_even_in_host_pid_mode(driver, tmp_path):
    # pid_mode host: the host's PIDs are visible, so the kill must come from the cgroup, not the namespace.
    h = run(driver, tmp_path, "sleep 60 & sleep 60 & echo $! > /local/child.pid; "
            "echo host-pids=$(ls /proc | grep -c '^[0-9]'); wait", pid_mode="host")
    pidfile = tmp_path / "a1" / "web" / "local" / "child.pid"
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    child = int(pidfile.read_text())
    assert not gone(child) and psutil.Process(child).username() == "nobody"
    assert wait_for(lambda: "host-pids=" in stdout(tmp_path))
    assert int(stdout(tmp_path).split("host-pids=")[1].split()[0]) > 5  # it does see the host's processes
    members = driver._procs_in(driver._cgroups.task_paths("a1", "web"))
    assert len(members) == 3
    driver.kill(h)
    assert exit_of(driver, h).signal == 9
    assert wait_for(lambda: all(gone(p) for p in members)), "a process of the task outlived its kill"


@real
def test_kill_signal_reaches_the_task_and_it_exits_as_it_chooses(driver, tmp_path):
    # PID 1 of a namespace gets only the signals it handles, as in Nomad (and any container).
    h = run(driver, tmp_path, "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    assert wait_for(lambda: "ready" in stdout(tmp_path))
    driver.signal(h, "SIGTERM")
    assert exit_of(driver, h).exit_code == 7
    assert "got-term" in stdout(tmp_path)
    h2 = run(driver, tmp_path, "exec sleep 30", task="plain")
    driver.signal(h2, "SIGKILL")
    assert exit_of(driver, h2).signal == 9


@real
def test_start_failures_are_clear_errors_and_leave_no_cgroup(driver, tmp_path):
    cg = detect_cgroups()[0]
    assert cg is not None
    task_dir = tmp_path / "a1" / "web"
    why = f"failed to launch command with executor: file /no/such/bin not found under path {task_dir}"
    with pytest.raises(DriverError, match=re.escape(why)):
        driver.start("a1", "web", {"command": "/no/such/bin"}, str(tmp_path / "a1" / "web"), dict(ENV))
    with pytest.raises(DriverError, match=r"file no-such-tool not found under path$"):
        driver.start("a1", "web", {"command": "no-such-tool"}, str(tmp_path / "a1" / "web"), dict(ENV))
    assert not any(os.path.exists(p) for p in cg.task_paths("a1", "web"))
    with pytest.raises(DriverError, match="failed host user validation: user 'no-such-user'"):
        run(driver, tmp_path, "true", user="no-such-user")
    with pytest.raises(DriverError, match="work_dir '/nope'"):
        run(driver, tmp_path, "true", work_dir="/nope")
    # A binary that exists on the host but not in the chroot (chroot_env without /opt) is not found.
    os.makedirs(tmp_path / "opt", exist_ok=True)
    with pytest.raises(DriverError, match="not found under path"):
        driver.start("a1", "web", {"command": str(tmp_path / "opt")}, str(tmp_path / "a1" / "web"), dict(ENV))
    assert not any(os.path.exists(p) for p in cg.task_paths("a1", "web"))


@real
def test_commands_are_found_as_nomad_looks_them_up_and_made_executable(driver, tmp_path):
    local = tmp_path / "a1" / "web" / "local"
    local.mkdir(parents=True)
    (local / "hello.sh").write_text("#!/bin/sh\necho hello from local $1\n")
    os.chmod(local / "hello.sh", 0o644)  # an artifact as downloaded: not executable
    h = driver.start("a1", "web", {"command": "hello.sh", "args": ["x"]}, str(tmp_path / "a1" / "web"),
                     dict(ENV))
    assert exit_of(driver, h).exit_code == 0 and stdout(tmp_path) == "hello from local x\n"
    assert os.stat(local / "hello.sh").st_mode & 0o555 == 0o555
    h = driver.start("a1", "bare", {"command": "echo", "args": ["from", "usr/bin"]},
                     str(tmp_path / "a1" / "bare"), dict(ENV))  # a bare name: /usr/local/bin, /usr/bin, /bin
    assert exit_of(driver, h).exit_code == 0 and stdout(tmp_path, task="bare") == "from usr/bin\n"


@real
def test_capabilities_work_dir_and_root_user(driver, tmp_path):
    h = run(driver, tmp_path, "grep CapEff /proc/self/status; pwd", cap_drop=["all"], cap_add=["kill"],
            work_dir="/local")
    assert exit_of(driver, h).exit_code == 0
    out = stdout(tmp_path)
    assert "CapEff:\t0000000000000020" in out and "/local" in out  # CAP_KILL (5) only
    h = run(driver, tmp_path, "id -u; grep CapBnd /proc/self/status", task="root", user="root")
    assert exit_of(driver, h).exit_code == 0
    out = stdout(tmp_path, task="root")
    bnd = int(out.split("CapBnd:")[1].split()[0], 16)
    assert out.startswith("0\n") and bnd & (1 << 21) and not bnd & (1 << 38)  # legacy: SYS_ADMIN, no PERFMON


@real
def test_default_pid_mode_host_from_the_plugin_block_shows_the_hosts_processes(started, tmp_path):
    from actors.client.exec_driver import exec_plugin_config

    driver = Tracked(started, plugin=exec_plugin_config({"default_pid_mode": "host"}))
    res = exit_of(driver, run(driver, tmp_path, 'echo "pid=$$"; ls /proc | grep -c "^[0-9]"'))
    out = stdout(tmp_path)
    assert res.exit_code == 0 and "pid=1\n" not in out  # not PID 1: the host's PID namespace
    assert int(out.split()[-1]) > 4, out  # the host's processes are visible


@real
def test_a_task_user_in_the_denied_host_ids_is_refused_before_it_starts(started, tmp_path):
    from actors.client.exec_driver import exec_plugin_config

    driver = Tracked(started, plugin=exec_plugin_config({"denied_host_uids": "65534"}))
    with pytest.raises(DriverError, match="failed host user validation: running as uid 65534 is disallowed"):
        run(driver, tmp_path, "true")  # nobody, the default user
    assert started == [] and not (tmp_path / "a1" / "web" / "local").exists()


@real
def test_a_task_over_its_memory_limit_is_killed(driver, tmp_path):
    # The shell holds a 200 MB command substitution against the task's 64 MB limit: the kernel kills it.
    h = run(driver, tmp_path, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    res = exit_of(driver, h, timeout_s=20)
    assert res.signal == 9 and "survived" not in stdout(tmp_path)
    assert res.oom_killed and res.err == "OOM Killed"  # Nomad's ExitResult.OOMKilled
    ok = exit_of(driver, run(driver, tmp_path, "exit 0", task="fine"))
    assert not ok.oom_killed and ok.successful


@real
def test_a_task_the_oom_killer_ended_while_no_agent_watched_says_so_in_its_recorded_exit(driver, tmp_path):
    h = run(driver, tmp_path, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert wait_for(lambda: gone(h.pid), 20)  # its launcher ended (not reaped: the agent is "down")
    fresh = ExecDriver()  # the restarted agent
    assert not fresh.recover(h)
    res = fresh.recorded_exit(h)
    assert res is not None and res.signal == 9 and res.oom_killed and res.err == "OOM Killed"
    assert not any(os.path.exists(p) for p in fresh._task_cgroups(h))  # cleaned up as on an exit seen
    exit_of(driver, h)  # the first driver object reaps its child


@real
def test_a_new_driver_recovers_and_kills_a_running_task(driver, tmp_path):
    h = run(driver, tmp_path, "sleep 60 & exec sleep 60")
    paths = driver._cgroups.task_paths("a1", "web")
    assert wait_for(lambda: len(driver._procs_in(paths)) == 2)
    members = driver._procs_in(paths)
    after_restart = ExecDriver()  # the agent restarted: the task is no longer its child
    assert after_restart.recover(h)
    after_restart.kill(h)
    assert wait_for(lambda: all(gone(p) for p in members))
    assert wait_for(lambda: driver.poll(h) is not None)  # the old object reaps its child
    assert after_restart.poll(h) is not None
    assert not any(os.path.exists(p) for p in paths)
    assert not after_restart.recover(h)


@real
def test_a_task_that_ended_while_the_agent_was_away_is_cleaned_up_on_recovery(driver, tmp_path):
    # pid_mode host, so a daemonized child outlives the launcher's own task (as it would in Nomad
    # without the executor's cleanup); the new agent's recover finds the launcher gone and cleans up.
    h = run(driver, tmp_path, "sleep 60 & echo started", pid_mode="host")
    paths = driver._cgroups.task_paths("a1", "web")
    assert exit_of(driver, h).exit_code == 0  # (our own driver would clean up here: make it forget)
    assert not any(os.path.exists(p) for p in paths)
    h = run(driver, tmp_path, "sleep 60 & exec sleep 60", pid_mode="host", task="again")
    paths = driver._cgroups.task_paths("a1", "again")
    assert wait_for(lambda: len(driver._procs_in(paths)) == 2)
    members = driver._procs_in(paths)
    os.kill(h.pid, signal.SIGKILL)  # the launcher dies while no agent watches: its task goes, the child not
    assert wait_for(lambda: len(driver._procs_in(paths)) == 1)
    after_restart = ExecDriver()
    assert not after_restart.recover(h)
    assert all(gone(p) for p in members) and not any(os.path.exists(p) for p in paths)
    driver.poll(h)  # the old object reaps its child


@real
def test_the_task_does_not_outlive_its_launcher(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 60")
    paths = driver._cgroups.task_paths("a1", "web")
    assert wait_for(lambda: len(driver._procs_in(paths)) == 1)
    (task,) = driver._procs_in(paths)
    os.kill(h.pid, signal.SIGKILL)  # the launcher (Nomad's executor) is gone: its task goes with it
    assert wait_for(lambda: gone(task))
    assert exit_of(driver, h).signal == 9
    assert not any(os.path.exists(p) for p in paths)


def _cgroup2_with_controllers() -> str:
    for point, fstype, _ in _mounts():
        if fstype == "cgroup2":
            try:
                ctrls = open(os.path.join(point, "cgroup.controllers")).read().split()
            except OSError:
                continue
            if "memory" in ctrls and "cpu" in ctrls:
                return point
    return ""


_V2 = _cgroup2_with_controllers() if not _WHY_NOT else ""


@pytest.mark.skipif(not _V2, reason=_WHY_NOT or "no cgroup2 hierarchy here holds the memory and cpu "
                    "controllers (a v1 or hybrid host): the v2 limits cannot be exercised")
def test_cgroup_v2_limits(started, tmp_path):
    cg, why = detect_cgroups(_V2)
    assert cg is not None, why
    driver = ExecDriver(cgroups=cg)
    h = driver.start("a1", "web", {"command": SH, "args": ["-c", "exec sleep 30"]},
                     str(tmp_path / "a1" / "web"), dict(ENV))
    started.append(h)
    (path,) = cg.task_paths("a1", "web")
    assert open(os.path.join(path, "memory.max")).read().strip() == str(64 << 20)
    assert driver.stats(h)["processes"] == 1
    driver.kill(h)
    assert exit_of(driver, h).signal == 9 and not os.path.exists(path)


# ------------------------------------------------------------ a job on the AllocRunner
class Reporter(NodeActor):
    def __init__(self, env: Any, name: str, got: list[Any]) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message: Any) -> Any:
        if isinstance(message, AllocUpdates):
            self.got.extend(message.updates)
        return None


def _status(got: list[Any], aid: str) -> str:
    for u in reversed(got):
        if u.alloc_id == aid:
            return u.client_status
    return ""


@real
def test_an_exec_job_runs_in_its_chroot_under_the_alloc_runner(started, tmp_path):
    node = ProdNode("c1", seed=1)
    try:
        got: list[Any] = []
        node.spawn(Reporter, "reporter", got)
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": Tracked(started)},
                         state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                         reporter="reporter", config=AllocRunnerConfig(poll_interval_s=0.05))
        t = {"Name": "web", "Driver": "exec", "KillTimeout": int(0.2 * NS),
             "Config": {"command": SH, "args": ["-c", 'echo "$$ $(id -un) ${NOMAD_TASK_DIR}"; ls /alloc']},
             "Resources": {"CPU": 100, "MemoryMB": 32}}
        job = {"ID": "job", "Type": "batch", "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}
        alloc = {"ID": "b1", "JobID": "job", "TaskGroup": "g", "DesiredStatus": "run",
                 "ClientStatus": "pending", "AllocModifyIndex": 1, "Job": job}
        ref.tell(SetAllocs(allocs=(alloc,), index=1))
        assert wait_for(lambda: _status(got, "b1") == "complete"), got[-1:] if got else "no update"
        out = (tmp_path / "allocs" / "b1" / "alloc" / "logs" / "web.stdout.0").read_text()
        assert out.startswith("1 nobody /local\n") and "data\nlogs\ntmp\n" in out
    finally:
        node.stop_all(timeout_s=2.0)


@real
def test_a_restarted_alloc_runner_reattaches_to_an_exec_task_and_stops_it(started, tmp_path):
    node = ProdNode("c1", seed=1)
    try:
        got: list[Any] = []
        node.spawn(Reporter, "reporter", got)
        kw = dict(state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                  reporter="reporter", config=AllocRunnerConfig(poll_interval_s=0.05))
        t = {"Name": "web", "Driver": "exec", "KillTimeout": int(0.2 * NS),
             "Config": {"command": SH, "args": ["-c", "sleep 60 & exec sleep 60"]},
             "Resources": {"CPU": 100, "MemoryMB": 32}}
        job = {"ID": "job", "Type": "service", "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}

        def alloc(desired: str, index: int) -> dict[str, Any]:
            return {"ID": "s1", "JobID": "job", "TaskGroup": "g", "DesiredStatus": desired,
                    "ClientStatus": "pending", "AllocModifyIndex": index, "Job": job}
        first = Tracked(started)
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": first}, **kw)
        ref.tell(SetAllocs(allocs=(alloc("run", 1),), index=1))
        assert wait_for(lambda: _status(got, "s1") == "running")
        (h,) = started
        paths = first._cgroups.task_paths("s1", "web")
        assert wait_for(lambda: len(first._procs_in(paths)) == 2)
        members = first._procs_in(paths)
        ref.stop(timeout=5)
        second = Tracked(started)  # a new agent process: the task is not its child
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": second}, **kw)
        ref.tell(SetAllocs(allocs=(alloc("run", 1),), index=1))
        status = ref.ask("status")
        assert status["reattached"] == 1 and status["starts"] == 0 and len(started) == 1
        ref.tell(SetAllocs(allocs=(alloc("stop", 2),), index=2))
        assert wait_for(lambda: _status(got, "s1") == "complete")
        assert wait_for(lambda: all(gone(p) for p in members))
        assert wait_for(lambda: first.poll(h) is not None)  # the old driver object reaps its child
        assert not any(os.path.exists(p) for p in paths)
    finally:
        node.stop_all(timeout_s=2.0)


@real
def test_an_oom_killed_task_says_so_in_its_terminated_event(started, tmp_path):
    from actors.client.alloc_sync import task_states_json

    node = ProdNode("c1", seed=1)
    try:
        got: list[Any] = []
        node.spawn(Reporter, "reporter", got)
        ref = node.spawn(AllocRunner, "allocs", driver_registry={"exec": Tracked(started)},
                         state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                         reporter="reporter", config=AllocRunnerConfig(poll_interval_s=0.05))
        t = {"Name": "hog", "Driver": "exec", "KillTimeout": int(0.2 * NS),
             "Config": {"command": SH, "args": ["-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)"]},
             "Resources": {"CPU": 100, "MemoryMB": 16}}
        group = {"Name": "g", "Count": 1, "Tasks": [t], "RestartPolicy": {"Attempts": 0, "Mode": "fail"}}
        job = {"ID": "job", "Type": "batch", "TaskGroups": [group]}
        alloc = {"ID": "o1", "JobID": "job", "TaskGroup": "g", "DesiredStatus": "run",
                 "ClientStatus": "pending", "AllocModifyIndex": 1, "Job": job}
        ref.tell(SetAllocs(allocs=(alloc,), index=1))
        assert wait_for(lambda: _status(got, "o1") == "failed", 20), got[-1:] if got else "no update"
        update = next(u for u in reversed(got) if u.alloc_id == "o1")
        events = task_states_json(update)["hog"]["Events"]
        (term,) = [e for e in events if e["Type"] == "Terminated"]
        assert term["Message"] == 'Exit Code: 137, Signal: 9, Exit Message: "OOM Killed"'
        assert term["Details"] == {"exit_code": "137", "signal": "9", "oom_killed": "true",
                                   "exit_message": "OOM Killed"}
        assert ref.ask("status")["oom_killed"] == 1  # Nomad's client.allocs.oom_killed
    finally:
        node.stop_all(timeout_s=2.0)


@real
def test_the_tasks_proc_and_root_are_runcs_and_alloc_is_sticky(driver, tmp_path):
    script = ('test -s /proc/kcore && echo kcore-readable; '
              'ls /proc/scsi 2>/dev/null | grep -q . && echo scsi; '
              'echo x 2>/dev/null > /proc/sys/kernel/domainname || echo sys-ro; '
              'awk \'$5 == "/" {print "root-mount=" $4}\' /proc/self/mountinfo; '
              'cat /proc/self/status | grep NoNewPrivs; stat -c "alloc=%a" /alloc /alloc/logs')
    h = run(driver, tmp_path, script, user="root")
    assert exit_of(driver, h).exit_code == 0
    out = stdout(tmp_path)
    assert "kcore-readable" not in out and "scsi" not in out and "sys-ro" in out, out
    # pivot_root: the root mount is the task dir's, nothing of the host's tree is under it
    root_mount = out.split("root-mount=")[1].split("\n")[0]
    assert out.count("root-mount=") == 1 and root_mount.endswith("/a1/web"), out
    assert "NoNewPrivs:\t1" in out, out
    assert "alloc=1777\nalloc=1777" in out, out  # no task replaces what another (or the agent) owns


def test_the_agents_denylisted_variables_reach_no_raw_exec_task(tmp_path, monkeypatch):
    from actors.client.drivers import DEFAULT_ENV_DENYLIST, RawExecDriver, env_denylist

    assert env_denylist(()) == DEFAULT_ENV_DENYLIST and "VAULT_TOKEN" in DEFAULT_ENV_DENYLIST
    assert env_denylist({"env.denylist": "A, B,"}) == ("A", "B")
    assert env_denylist((("env.blacklist", "OLD"),)) == ("OLD",)  # Nomad's former name still works
    monkeypatch.setenv("AGENT_SECRET", "s3cr3t")
    monkeypatch.setenv("AGENT_PLAIN", "plain")
    drv = RawExecDriver(env_denylist=("AGENT_SECRET",))
    h = drv.start("a1", "web", {"command": SH, "args": ["-c", "env"]}, str(tmp_path / "a1" / "web"),
                  {"TASK_VAR": "mine"})
    assert wait_for(lambda: drv.poll(h) is not None)
    out = stdout(tmp_path)
    assert "s3cr3t" not in out and "AGENT_PLAIN=plain" in out and "TASK_VAR=mine" in out, out


@real
def test_a_device_node_the_task_makes_cannot_be_opened(driver, tmp_path):
    """The task holds CAP_MKNOD (Nomad's default set) and there is no devices cgroup: every mount it
    can write is nodev, so a node it makes (here one for /dev/null's numbers) is refused; the devices
    it is given still work."""
    script = ('for d in /local /alloc/data /dev /tmp; do mknod $d/n c 1 3 && echo made-$d; '
              'if head -c 1 $d/n >/dev/null 2>&1; then echo opened-$d; else echo refused-$d; fi; done; '
              'echo hi > /dev/null && echo null-works')
    h = driver.start("a1", "web", {"command": SH, "args": ["-c", script]}, str(tmp_path / "a1" / "web"), ENV)
    res = exit_of(driver, h)
    out = stdout(tmp_path)
    assert res.exit_code == 0, out
    for d in ("/local", "/alloc/data", "/dev", "/tmp"):
        assert f"made-{d}" in out and f"refused-{d}" in out and f"opened-{d}" not in out, out
    assert "null-works" in out


@real
def test_exec_in_task_runs_a_change_script_inside_the_running_task(driver, tmp_path):
    """A template's change_script (exec_in_task): in the task's chroot and PID namespace, as its user,
    with its env; the exit code comes back through notify; a timeout kills it (exit -1)."""
    h = run(driver, tmp_path, "sleep 30")
    assert wait_for(lambda: driver._task_init(h) is not None, 5.0)
    enter = json.dumps(driver.enter_spec(h, {"command": SH}))
    got: list[tuple[int, str]] = []
    driver.exec_in_task(h, SH, ("-c", 'echo "$(id -un) $FOO" > /local/marker; exit 4'), 5.0,
                        lambda code, err: got.append((code, err)), task_dir=str(tmp_path / "a1" / "web"),
                        env={"FOO": "bar"}, enter=enter)
    assert wait_for(lambda: got, 10.0) and got == [(4, "")]
    assert (tmp_path / "a1" / "web" / "local" / "marker").read_text() == "nobody bar\n"
    got.clear()
    driver.exec_in_task(h, SH, ("-c", "sleep 20"), 0.3, lambda code, err: got.append((code, err)),
                        task_dir=str(tmp_path / "a1" / "web"), env={}, enter=enter)
    assert wait_for(lambda: got, 10.0) and got == [(-1, "")]
    driver.exec_in_task(h, "/no/such", (), 5.0, lambda code, err: got.append((code, err)),
                        task_dir=str(tmp_path / "a1" / "web"), env={}, enter=enter)
    assert wait_for(lambda: len(got) == 2, 10.0) and "executable file not found" in got[1][1]
    driver.kill(h)


@real
def test_a_task_with_reserved_cores_is_confined_to_them_in_a_cpuset_cgroup(driver, tmp_path):
    """Nomad's executor confines a task that reserves cores (resources.cores) to them: its cpuset
    cgroup's cpus are the reserved cores, and the cgroup goes when the task ends."""
    from actors.client.exec_driver import detect_cgroups

    cg, _ = detect_cgroups()
    if cg is None or not cg.cpuset or (os.cpu_count() or 1) < 2:
        pytest.skip("no cpuset controller (or a single core) here")
    script = "grep Cpus_allowed_list /proc/self/status; exec sleep 30"
    h = driver.start("a1", "web", {"command": SH, "args": ["-c", script]}, str(tmp_path / "a1" / "web"),
                     dict(ENV), resources=TaskResources(cpu=2400, memory_mb=64, cores=(1,)))
    log = tmp_path / "a1" / "alloc" / "logs" / "web.stdout.0"
    assert wait_for(lambda: log.exists() and "Cpus_allowed_list" in log.read_text(), 10.0)
    assert stdout(tmp_path).split()[-1] == "1"
    paths = driver._task_cgroups(h)
    where = cg.cpuset_path("a1", "web") if cg.mode == "v1" else paths[0]
    assert where in paths and open(os.path.join(where, "cpuset.cpus")).read().strip() == "1"
    driver.kill(h)
    exit_of(driver, h)
    assert not os.path.exists(where)
