"""RawExecDriver with real processes, and the AllocRunner on it under the production runtime.

Every wait polls a condition against a deadline; every process a test
starts is SIGKILLed by process group (and reaped) when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
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
from actors.client.drivers import (
    DriverError,
    ExitResult,
    LogSettings,
    RawExecDriver,
    TaskHandle,
    read_exit_record,
)
from runtime.actor import NodeActor
from runtime.prod import ProdNode

pytestmark = pytest.mark.timeout(60)
SH = "/bin/sh"


def wait_for(cond: Any, timeout_s: float = 10.0) -> bool:
    """Poll *cond* until it holds or the deadline passes (sleep yields to gevent)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Tracked(RawExecDriver):
    """RawExecDriver that remembers what it started, for cleanup."""

    def __init__(self, started: list[TaskHandle]) -> None:
        super().__init__()
        self.started = started

    def start(self, *args: Any, **kwargs: Any) -> TaskHandle:
        h = super().start(*args, **kwargs)
        self.started.append(h)
        return h


@pytest.fixture
def started():
    handles: list[TaskHandle] = []
    yield handles
    for h in handles:
        try:
            os.killpg(h.pgid, signal.SIGKILL)
        except OSError:
            pass
    for h in handles:
        try:
            os.waitpid(h.pid, os.WNOHANG)  # reap if it is still our child
        except ChildProcessError:
            pass


@pytest.fixture
def driver(started):
    return Tracked(started)


def run(driver: RawExecDriver, tmp_path: Any, script: str, *, task: str = "web", alloc_id: str = "a1",
        env: dict[str, str] | None = None, logs: LogSettings | None = None) -> TaskHandle:
    task_dir = str(tmp_path / alloc_id / task)
    return driver.start(alloc_id, task, {"command": SH, "args": ["-c", script]}, task_dir, env or {},
                        logs=logs)


def exit_of(driver: RawExecDriver, h: TaskHandle, timeout_s: float = 10.0) -> Any:
    got: list[Any] = []
    assert wait_for(lambda: got.append(driver.poll(h)) or got[-1] is not None, timeout_s), "task did not exit"
    return got[-1]


# ------------------------------------------------------------ the driver
def test_output_goes_to_nomads_log_files_in_the_task_dir(driver, tmp_path):
    h = run(driver, tmp_path, 'echo "out $NOMAD_TASK_NAME $NOMAD_ALLOC_ID"; echo oops >&2; pwd',
            env={"NOMAD_TASK_NAME": "web", "NOMAD_ALLOC_ID": "a1"})
    assert exit_of(driver, h).exit_code == 0
    logs = tmp_path / "a1" / "alloc" / "logs"
    out = (logs / "web.stdout.0").read_text().splitlines()
    assert out == ["out web a1", str(tmp_path / "a1" / "web")]
    assert (logs / "web.stderr.0").read_text() == "oops\n"
    for d in ("local", "secrets", "tmp"):
        assert (tmp_path / "a1" / "web" / d).is_dir()
    assert (tmp_path / "a1" / "web" / "secrets").stat().st_mode & 0o777 == 0o700


def test_output_is_rotated_by_the_tasks_logs_block_and_complete_when_its_exit_is_told(driver, tmp_path):
    h = run(driver, tmp_path, 'i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done; echo err >&2',
            logs=LogSettings(max_files=3, max_file_bytes=1000))
    assert exit_of(driver, h).exit_code == 0
    logs = tmp_path / "a1" / "alloc" / "logs"
    names = sorted(os.listdir(logs))
    assert names == ["web.stderr.0", "web.stdout.1", "web.stdout.2", "web.stdout.3"]  # 0 was pruned
    parts = [(logs / f"web.stdout.{i}").read_bytes() for i in (1, 2, 3)]
    assert [len(p) for p in parts[:2]] == [1000, 1000]
    assert b"".join(parts).endswith(b"line 398\nline 399\n")  # all of it, though told at once
    assert (logs / "web.stderr.0").read_bytes() == b"err\n"


def test_rotators_run_in_their_own_session_so_they_outlive_the_agent_and_its_signals(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    loggers = driver._task_loggers[h.pid]
    assert len(loggers) == 1  # one for both streams, as Nomad's logmon
    for p in loggers:
        assert os.getsid(p.pid) == p.pid and os.getsid(p.pid) not in (os.getsid(0), h.pgid)
    driver.kill(h)
    exit_of(driver, h)
    assert all(p.poll() is not None for p in loggers)  # end of file once the task is gone: they end too


def test_output_keeps_being_rotated_after_the_agent_that_started_the_task_is_gone(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.1; done"
    agent = (f"from actors.client.drivers import LogSettings, RawExecDriver\n"
             f"h = RawExecDriver().start('a1', 'web', {{'command': {SH!r}, 'args': ['-c', {script!r}]}},"
             f" {str(tmp_path / 'a1' / 'web')!r}, {{}}, logs=LogSettings(max_files=3, max_file_bytes=16))\n"
             f"print(h.pgid)\n")
    pgid = int(subprocess.run([sys.executable, "-c", agent], cwd=root, capture_output=True, timeout=30,
                              check=True).stdout)  # the "agent" has exited; its task and rotators run on
    logs = tmp_path / "a1" / "alloc" / "logs"

    def stdout() -> bytes:
        return b"".join((logs / f"web.stdout.{i}").read_bytes() for i in range(3)
                        if (logs / f"web.stdout.{i}").exists())
    try:
        assert wait_for(lambda: stdout().endswith(b"tick-5\n")), stdout()
    finally:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    assert stdout() == b"".join(b"tick-%d\n" % i for i in range(1, 6))
    assert sorted(os.listdir(logs)) == ["web.stderr.0", "web.stdout.0", "web.stdout.1", "web.stdout.2"]


def test_disabled_logs_send_the_output_nowhere(driver, tmp_path):
    h = run(driver, tmp_path, "echo hidden; echo hidden >&2", logs=LogSettings(disabled=True))
    assert exit_of(driver, h).exit_code == 0
    assert os.listdir(tmp_path / "a1" / "alloc" / "logs") == []


def test_exit_codes_and_signals_are_reported(driver, tmp_path):
    assert exit_of(driver, run(driver, tmp_path, "exit 3", task="a")).exit_code == 3
    ok = exit_of(driver, run(driver, tmp_path, "exit 0", task="b"))
    assert ok.exit_code == 0 and ok.successful
    h = run(driver, tmp_path, "exec sleep 30", task="c")
    assert driver.poll(h) is None
    driver.signal(h, "SIGTERM")
    res = exit_of(driver, h)
    assert (res.exit_code, res.signal) == (128 + 15, 15) and not res.successful


def test_exited_tasks_are_reaped_not_left_as_zombies(driver, tmp_path):
    h = run(driver, tmp_path, "exit 0")
    exit_of(driver, h)
    assert not psutil.pid_exists(h.pid) or psutil.Process(h.pid).ppid() != os.getpid()


def test_kill_takes_the_whole_process_group_children_too(driver, tmp_path):
    h = run(driver, tmp_path, "sleep 60 & echo $! > child.pid; wait")
    pidfile = tmp_path / "a1" / "web" / "child.pid"
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    child = int(pidfile.read_text())
    assert not gone(child) and psutil.Process(child).ppid() == h.pgid  # the task leads its group
    driver.kill(h)
    res = exit_of(driver, h)
    assert res.signal == 9
    assert wait_for(lambda: gone(child)), "the task's child survived the kill"


def test_kill_signal_reaches_the_children(driver, tmp_path):
    h = run(driver, tmp_path, "sleep 60 & echo $! > child.pid; wait")
    pidfile = tmp_path / "a1" / "web" / "child.pid"
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    child = int(pidfile.read_text())
    # (SIGINT would not do: sh starts background jobs with SIGINT ignored, as POSIX says)
    driver.signal(h, "TERM")  # accepted without the SIG prefix too
    exit_of(driver, h)
    assert wait_for(lambda: gone(child))


def test_the_launcher_forwards_a_signal_sent_to_it_to_the_tasks_group_and_exits_as_the_task(driver, tmp_path):
    h = run(driver, tmp_path, "sleep 60 & echo $! > child.pid; wait")
    pidfile = tmp_path / "a1" / "web" / "child.pid"
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    child = int(pidfile.read_text())
    launcher = psutil.Process(h.pid)
    assert launcher.cwd() == "/" and launcher.environ() == {}  # no task dir held, no secrets in its env
    assert os.getsid(h.pgid) == h.pgid != os.getsid(h.pid)  # the task leads a session of its own
    os.kill(h.pid, signal.SIGTERM)  # to the launcher only
    res = exit_of(driver, h)
    assert (res.exit_code, res.signal) == (128 + 15, 15)
    assert wait_for(lambda: gone(child))


def test_a_task_whose_launcher_is_killed_dies_with_it(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 60")
    os.kill(h.pid, signal.SIGKILL)  # nothing would record the task's exit: it must not run on unwatched
    assert exit_of(driver, h).signal == 9
    assert wait_for(lambda: gone(h.pgid))


def test_recover_is_true_for_the_live_task_and_false_once_it_exits(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    assert driver.recover(h)
    driver.kill(h)
    exit_of(driver, h)
    assert not driver.recover(h)


def test_after_an_agent_restart_recover_checks_the_process_start_time(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    fresh = RawExecDriver()  # a restarted agent: the task is not its child
    assert fresh.recover(h)
    assert fresh.recover(TaskHandle.from_dict(h.to_dict()))  # survives persistence
    reused = replace(h, start_time=h.start_time - 100.0)  # same pid, another process
    assert not fresh.recover(reused)
    fresh.kill(reused)  # not ours: must not be signalled
    assert fresh.poll(h) is None and driver.poll(h) is None
    assert fresh.stats(reused) == {}


def test_a_task_started_before_the_hosts_last_boot_was_lost_to_a_reboot(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    assert not driver.lost_to_reboot(h)  # started in this boot: its exit is only unseen
    assert driver.lost_to_reboot(replace(h, start_time=1.0))  # before the boot (1970)
    # 0: its start time was never read (it had exited by then): its exit decides, not a reboot.
    assert not driver.lost_to_reboot(replace(h, start_time=0.0))
    driver.kill(h)
    exit_of(driver, h)


def test_a_reattached_task_exit_is_the_one_its_launcher_recorded(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    fresh = RawExecDriver()  # a restarted agent: the launcher is not its child
    assert fresh.poll(h) is None and fresh.recorded_exit(h) is None
    fresh.signal(h, "SIGTERM")
    exit_of(driver, h)  # the old driver object reaps its child
    res = exit_of(fresh, h)
    assert (res.exit_code, res.signal, res.err) == (128 + 15, 15, "") and not res.successful
    assert fresh.recorded_exit(TaskHandle.from_dict(h.to_dict())) == res  # survives persistence
    assert fresh.recorded_exit(replace(h, pid=h.pid + 1)) is None  # another launcher's record is not its


def test_a_reattached_task_without_a_launcher_record_exits_with_an_unknown_code(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    fresh = RawExecDriver()
    old = replace(h, task_dir="")  # a handle an older client persisted: nothing recorded its exit
    assert TaskHandle.from_dict({k: v for k, v in old.to_dict().items() if k != "task_dir"}) == old
    fresh.signal(old, "SIGTERM")
    exit_of(driver, h)
    res = exit_of(fresh, old)
    assert res.exit_code is None and "unknown" in res.err and not res.successful


def test_exit_records_are_read_only_when_whole_and_never_through_a_link(driver, tmp_path):
    from actors.client.exec_launcher import EXIT_RECORD

    h = run(driver, tmp_path, "exit 7")
    assert exit_of(driver, h).exit_code == 7
    record = tmp_path / "a1" / "web" / EXIT_RECORD
    assert read_exit_record(h.task_dir, h.pid) == ExitResult(exit_code=7)
    whole = record.read_text()
    record.write_text(whole[:-5])  # torn
    assert read_exit_record(h.task_dir, h.pid) is None
    record.unlink()
    (tmp_path / "elsewhere.json").write_text(whole)
    record.symlink_to(tmp_path / "elsewhere.json")
    assert read_exit_record(h.task_dir, h.pid) is None
    record.unlink()
    os.mkfifo(record)  # a FIFO is not waited on
    assert read_exit_record(h.task_dir, h.pid) is None
    record.unlink()
    record.write_text(whole)
    run(driver, tmp_path, "exec sleep 30")  # a new start clears the old run's record
    assert not record.exists()


def test_stats_while_running_and_empty_once_gone(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    s = driver.stats(h)
    assert s["rss_bytes"] > 0 and s["cpu_percent"] >= 0.0 and s["pid"] == h.pgid  # the task's own pid
    # The task (sleep) alone: its launcher (a Python interpreter, far larger) is not counted.
    assert s["processes"] == 1 and s["rss_bytes"] < psutil.Process(h.pid).memory_info().rss
    driver.kill(h)
    exit_of(driver, h)
    assert driver.stats(h) == {}


def test_stats_count_the_cpu_of_the_tasks_children(driver, tmp_path):
    h = run(driver, tmp_path, "while :; do :; done & wait")  # the busy process is the shell's child
    seen: list[dict[str, Any]] = []
    assert wait_for(lambda: seen.append(driver.stats(h)) or seen[-1].get("cpu_percent", 0) > 10.0), seen[-3:]
    assert seen[-1]["processes"] == 2


def test_number_and_bool_args_reach_the_command_as_nomads_driver_converts_them(driver, tmp_path):
    # A job file's args = ["-p", 8080] keeps 8080 a number in the job; the driver's schema makes it "8080".
    config = {"command": SH, "args": ["-c", 'echo "$1 $2 $3 $4"', "sh", 8080, 2.5, True]}
    h = driver.start("a1", "web", config, str(tmp_path / "a1" / "web"), {})
    assert exit_of(driver, h).exit_code == 0
    assert (tmp_path / "a1" / "alloc" / "logs" / "web.stdout.0").read_text() == "8080 2.5 true \n"


@pytest.mark.parametrize(("config", "message"), [
    ({}, "config.command is required"),
    ({"command": SH, "args": ["-c", ["nested"]]}, "config.args must be a list of strings"),
    ({"command": ""}, "config.command is required"),
    ({"command": SH, "args": "-c true"}, "config.args must be a list of strings"),
    ({"command": "/nonexistent/binary"}, "not found"),
    ("nope", "must be a mapping"),
])
def test_bad_config_is_a_clear_unrecoverable_error(driver, tmp_path, config, message):
    with pytest.raises(DriverError, match=message) as err:
        driver.start("a1", "web", config, str(tmp_path / "a1" / "web"), {})
    assert not err.value.recoverable


def test_unknown_signal_is_refused(driver, tmp_path):
    h = run(driver, tmp_path, "exec sleep 30")
    with pytest.raises(DriverError, match="unknown signal"):
        driver.signal(h, "SIGNOPE")


# ------------------------------------------------------------ AllocRunner on the production runtime
class Reporter(NodeActor):
    def __init__(self, env: Any, name: str, got: list[Any]) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message: Any) -> Any:
        if isinstance(message, AllocUpdates):
            self.got.extend(message.updates)
        return None


def _alloc(aid: str, script: str, *, job_type: str = "service", desired: str = "run", index: int = 1,
           kill_timeout_s: float = 1.0) -> dict[str, Any]:
    t = {"Name": "web", "Driver": "raw_exec", "Config": {"command": SH, "args": ["-c", script]},
         "Resources": {"CPU": 100, "MemoryMB": 64}, "KillTimeout": int(kill_timeout_s * NS)}
    job = {"ID": "job", "Type": job_type, "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}
    return {"ID": aid, "JobID": "job", "TaskGroup": "g", "DesiredStatus": desired, "ClientStatus": "pending",
            "AllocModifyIndex": index, "Job": job}


def _status(got: list[Any], aid: str) -> str:
    for u in reversed(got):
        if u.alloc_id == aid:
            return u.client_status
    return ""


@pytest.fixture
def prod_node():
    node = ProdNode("c1", seed=1)
    yield node
    node.stop_all(timeout_s=2.0)


def test_alloc_runner_runs_real_tasks_under_the_production_runtime(prod_node, started, tmp_path):
    got: list[Any] = []
    prod_node.spawn(Reporter, "reporter", got)
    cfg = AllocRunnerConfig(poll_interval_s=0.05)
    ref = prod_node.spawn(AllocRunner, "allocs", driver_registry={"raw_exec": Tracked(started)},
                          state=FileAllocStore(str(tmp_path / "state")), alloc_root=str(tmp_path / "allocs"),
                          reporter="reporter", config=cfg)
    batch = _alloc("b1", 'echo "hello from $NOMAD_ALLOC_ID"', job_type="batch")
    service = _alloc("s1", "trap '' INT; sleep 60 & wait")  # ignores SIGINT: escalation to SIGKILL
    ref.tell(SetAllocs(allocs=(batch, service), index=1))
    assert wait_for(lambda: _status(got, "b1") == "complete" and _status(got, "s1") == "running")
    assert (tmp_path / "allocs" / "b1" / "alloc" / "logs" / "web.stdout.0").read_text() == "hello from b1\n"
    assert sorted(os.listdir(tmp_path / "state" / "allocs")) == ["b1.json", "s1.json"]
    stats = ref.ask("stats")
    assert stats["s1"]["web"]["rss_bytes"] > 0
    (s1,) = [h for h in started if h.alloc_id == "s1"]
    t0 = time.monotonic()
    ref.tell(SetAllocs(allocs=(batch, _alloc("s1", "", desired="stop", index=2)), index=2))
    assert wait_for(lambda: _status(got, "s1") == "complete")
    assert time.monotonic() - t0 >= 1.0  # SIGINT was ignored: SIGKILL after the 1 s kill timeout
    assert wait_for(lambda: gone(s1.pid))


def test_restarted_runner_reattaches_to_a_real_process(prod_node, started, tmp_path):
    got: list[Any] = []
    prod_node.spawn(Reporter, "reporter", got)
    cfg = AllocRunnerConfig(poll_interval_s=0.05)
    store = FileAllocStore(str(tmp_path / "state"))
    kw = dict(state=store, alloc_root=str(tmp_path / "allocs"), reporter="reporter", config=cfg)
    first = Tracked(started)
    ref = prod_node.spawn(AllocRunner, "allocs", driver_registry={"raw_exec": first}, **kw)
    svc = _alloc("s1", "exec sleep 60")
    ref.tell(SetAllocs(allocs=(svc,), index=1))
    assert wait_for(lambda: _status(got, "s1") == "running")
    (h,) = started
    ref.stop(timeout=5)
    # a new agent process: a fresh driver to which the task is not a child
    second = Tracked(started)
    ref = prod_node.spawn(AllocRunner, "allocs", driver_registry={"raw_exec": second}, **kw)
    ref.tell(SetAllocs(allocs=(svc,), index=1))
    status = ref.ask("status")
    assert status["reattached"] == 1 and status["starts"] == 0 and len(started) == 1
    ref.tell(SetAllocs(allocs=(_alloc("s1", "", desired="stop", index=2),), index=2))
    assert wait_for(lambda: first.poll(h) is not None)  # the old driver object reaps its child
    assert wait_for(lambda: _status(got, "s1") == "complete")
