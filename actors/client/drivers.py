"""Task drivers: the I/O edge that runs an allocation's tasks.

Only this module starts, signals and watches processes; the AllocRunner
(``actors.client.alloc_runner``) holds the protocol (restart policy, kill
timeouts, client status) and talks to a driver through this contract:

* ``start(alloc_id, task_name, config, task_dir, env) -> TaskHandle`` or
  :class:`DriverError` (bad config, missing command...);
* ``poll(handle) -> ExitResult | None`` -- non-blocking; None while it runs;
* ``signal(handle, signame)`` -- to the task's process group;
* ``kill(handle)`` -- SIGKILL to the process group;
* ``recover(handle) -> bool`` -- the task is still alive *and* is the same
  process (pid and start time), so a restarted client re-attaches to it;
* ``stats(handle) -> dict`` -- ``cpu_percent`` and ``rss_bytes``; {} if gone;
* ``exec_in_task(handle, command, args, timeout_s, notify, *, task_dir, env,
  user, enter)`` (optional) -- run a command inside the running task, as
  ``nomad alloc exec`` would (a template's change_script); it returns at
  once and calls ``notify(exit_code, error)`` when the command ends, from
  wherever it ends (notify only tells the runner).

Two drivers keep that contract: :class:`RawExecDriver` (Nomad's
``raw_exec``: a real process in its own process group, output to Nomad's
rotated log files) and :class:`SimDriver` (the simulator's: no I/O, virtual time,
and verbs a simulation uses to crash tasks or look at what runs).  Nomad's
``exec`` (``actors.client.exec_driver.ExecDriver``) is raw_exec's with the
task isolated: chroot, namespaces, cgroups.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal as _signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("nomad.client.driver")

# Nomad's executor reports a task killed by signal N as exit code 128 + N.
EXIT_SIGNAL_BASE = 128
# A task's exit is reported once its log rotator has written all it said
# (it ends at end of file on both pipes), but no later than this after the exit: a child
# the task left behind may hold its output open for ever.  Two seconds drain
# far more than a pipe holds (64 KiB) and delay a stop by little.
LOG_DRAIN_S = 2.0
LOG_STREAMS = ("stdout", "stderr")
# How long start waits for a task's launcher to start its command: the launcher's interpreter starts
# in some tens of milliseconds and an exec task's chroot of bind mounts takes milliseconds more; far
# longer means a wedged host, and the start fails (recoverably) rather than holding the client.
LAUNCH_TIMEOUT_S = 10.0
# The most of a task's exit record read (actors.client.exec_launcher.EXIT_RECORD, about 120 bytes):
# anything longer is not one the launcher wrote.
EXIT_RECORD_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """A task's ``logs`` block as the driver needs it; the defaults are Nomad's (10 files of 10 MB)."""

    max_files: int = 10
    max_file_bytes: int = 10 << 20
    disabled: bool = False  # Nomad's logs.disabled: the task's output goes nowhere

    def __post_init__(self) -> None:
        if self.max_files < 1 or self.max_file_bytes < 1:
            raise ValueError("log settings: max_files and max_file_bytes must be >= 1")


@dataclass(frozen=True, slots=True)
class TaskResources:
    """What the scheduler placed for a task (Nomad's drivers.Resources): a driver with cgroups makes
    its limits from these, never from the task's environment (a job's ``env`` or an env template
    sets any variable there)."""

    cpu: int = 100  # MHz (Nomad's default task resources)
    memory_mb: int = 300
    memory_max_mb: int = 0  # the hard memory limit when set (memory oversubscription)
    cores: tuple[int, ...] = ()  # the whole cores reserved for it (resources.cores): its cpuset; () none


def cpuset(cores: tuple[int, ...]) -> str:
    """Nomad's idset String: sorted core numbers as a cpuset list, runs collapsed ("0-1,3")."""
    runs: list[list[int]] = []
    for c in sorted(set(cores)):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


# Nomad's default client ``env.denylist`` (command/agent/host DefaultEnvDenyList): the agent's
# variables a task never gets, whatever the option says otherwise.
DEFAULT_ENV_DENYLIST = ("CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_LICENSE", "NOMAD_LICENSE", "VAULT_TOKEN",
                        "VAULT_LICENSE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "GOOGLE_APPLICATION_CREDENTIALS")


def env_denylist(options: dict[str, str] | tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The client's ``options { "env.denylist" = "A,B" }`` (``env.blacklist`` its old name), as Nomad
    reads it: set, it replaces the default list."""
    opts = dict(options)
    raw = opts.get("env.denylist", opts.get("env.blacklist"))
    if raw is None:
        return DEFAULT_ENV_DENYLIST
    return tuple(name for name in (n.strip() for n in str(raw).split(",")) if name)


def host_env(denylist: tuple[str, ...] = DEFAULT_ENV_DENYLIST) -> dict[str, str]:
    """The agent's environment as a task gets it under its own variables (Nomad's SetHostEnvvars for
    the drivers without an image: raw_exec and exec): without the denylisted secrets."""
    deny = set(denylist)
    return {k: v for k, v in os.environ.items() if k not in deny}


# A driver's MountConfigs capability (Nomad's drivers.MountConfigSupport*): whether it can
# mount host volumes into a task.  A driver without the attribute mounts nothing.
MOUNT_CONFIGS_NONE, MOUNT_CONFIGS_ALL = "none", "all"
# A driver's FSIsolation (Nomad's fsisolation): "chroot" (exec) runs the task in its task dir, so
# its environment names the directories as the task sees them there (Nomad's container paths);
# a driver without the attribute isolates nothing and the task gets the host paths.
FS_ISOLATION_CHROOT = "chroot"
CHROOT_TASK_DIRS = {"NOMAD_ALLOC_DIR": "/alloc", "NOMAD_TASK_DIR": "/local", "NOMAD_SECRETS_DIR": "/secrets"}


class DriverError(Exception):
    """A task could not be started (or signalled).

    ``recoverable`` follows Nomad's ``structs.NewRecoverableError``: a
    recoverable start error counts as a restart attempt under the restart
    policy; any other (bad config, missing command) fails the task at once.
    """

    def __init__(self, message: str, *, recoverable: bool = False) -> None:
        super().__init__(message)
        self.recoverable = recoverable


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHandle:
    """What a client persists to find a task again after a restart.

    A task started through a launcher (raw_exec, exec) has ``task_dir`` set: ``pid`` is then the
    launcher's, which waits for the task and, before it exits, records the task's exit there
    (:func:`read_exit_record`).  Without it (the simulator's, or a handle an older client persisted)
    ``pid`` is the task's own and an exit nobody saw is unknown.
    """

    driver: str
    alloc_id: str
    task_name: str
    pid: int
    pgid: int  # the task's process group: signals go to all of it
    start_time: float  # psutil create_time of pid (the sim: virtual start time); detects pid reuse
    task_dir: str = ""  # where the task's launcher records its exit; "" when none does

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, written out: the runner persists handles on every task change."""
        return {"driver": self.driver, "alloc_id": self.alloc_id, "task_name": self.task_name,
                "pid": self.pid, "pgid": self.pgid, "start_time": self.start_time, "task_dir": self.task_dir}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskHandle:
        """Rebuild a persisted handle; ValueError names the bad field."""
        if not isinstance(d, dict):
            raise ValueError("task handle: not a mapping")
        for key, typ in (("driver", str), ("alloc_id", str), ("task_name", str), ("pid", int), ("pgid", int)):
            if not isinstance(d.get(key), typ) or isinstance(d.get(key), bool):
                raise ValueError(f"task handle: {key} missing or not {typ.__name__}")
        start = d.get("start_time")
        if not isinstance(start, (int, float)) or isinstance(start, bool):
            raise ValueError("task handle: start_time missing or not a number")
        if d["pid"] <= 0 or d["pgid"] <= 0:
            raise ValueError("task handle: pid and pgid must be > 0")
        task_dir = d.get("task_dir", "")
        if not isinstance(task_dir, str):
            raise ValueError("task handle: task_dir not a string")
        return cls(driver=d["driver"], alloc_id=d["alloc_id"], task_name=d["task_name"], pid=d["pid"],
                   pgid=d["pgid"], start_time=float(start), task_dir=task_dir)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitResult:
    """How a task ended.  ``exit_code`` None: unknown (the exit was not seen)."""

    exit_code: int | None
    signal: int = 0
    err: str = ""
    oom_killed: bool = False  # the kernel's OOM killer acted in the task's memory cgroup (exec)

    @property
    def successful(self) -> bool:
        return self.exit_code == 0 and self.signal == 0 and not self.err


class Driver(Protocol):
    name: str

    def start(self, alloc_id: str, task_name: str, config: dict[str, Any], task_dir: str,
              env: dict[str, str], user: str = "", logs: LogSettings | None = None,
              resources: TaskResources | None = None) -> TaskHandle: ...

    def poll(self, handle: TaskHandle) -> ExitResult | None: ...

    def signal(self, handle: TaskHandle, signame: str) -> None: ...

    def kill(self, handle: TaskHandle) -> None: ...

    def recover(self, handle: TaskHandle) -> bool: ...

    def stats(self, handle: TaskHandle) -> dict[str, Any]: ...

    # Optional: ``recorded_exit(handle) -> ExitResult | None``: how the task (whose process recover found
    # gone) ended, as its launcher recorded it -- Nomad's executor, which outlives the agent, keeps it so;
    # None when nothing was recorded.
    # Optional: ``lost_to_reboot(handle) -> bool``: the task (whose process recover found gone) was
    # started before the host's last boot, so whatever watched it -- Nomad's executor -- is gone too and
    # its exit was never seen.  Without it, a task gone at restore is taken to have exited unseen.

    # Optional: ``exec_in_task(...)`` (see the module's description) runs a command in the task and
    # answers through ``notify(exit_code, error)``; a driver without it cannot run change scripts.
    # Optional: ``watch(handle, notify) -> bool`` calls ``notify()`` once when
    # the task's process exits (from any greenlet or event: notify only
    # tells the runner).  False, or no such method: the runner polls.


ExecNotify = Callable[[int, str], None]  # exec_in_task's answer: (exit code, error; "" when it ran)


def go_args(args: tuple[str, ...] | list[str]) -> str:
    """A list of strings as Go's %v prints a []string (Nomad's change_script event texts)."""
    return "[" + " ".join(args) + "]"


def run_command(argv: list[str], cwd: str, env: dict[str, str], timeout_s: float,
                ids: dict[str, Any] | None = None, *, popen_extra: dict[str, Any] | None = None,
                before_wait: Callable[[subprocess.Popen[bytes]], str] | None = None) -> tuple[int, str]:
    """Run *argv* to its end (at most *timeout_s*, then its process group is killed), output dropped, as
    Nomad's executor ExecScript: (exit code, "") once it ran -- -1 when a signal ended it, a timeout
    too -- or (0, why) when it could not start.  Blocking: call it off the actor (a thread)."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                                **(ids or {}), **(popen_extra or {}))
    except FileNotFoundError:
        return 0, f'exec: "{argv[0]}": executable file not found in $PATH'
    except OSError as exc:
        return 0, f'exec: "{argv[0]}": {exc.strerror or exc}'
    if before_wait is not None:
        why = before_wait(proc)
        if why:
            _kill_group(proc)
            return 0, why
    try:
        code = proc.wait(timeout=max(0.0, timeout_s))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return -1, ""
    return (-1 if code < 0 else code), ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, _signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def run_in_thread(name: str, fn: Callable[[], tuple[int, str]], notify: ExecNotify) -> None:
    """Run *fn* on a thread of its own (a greenlet under gevent's patching) and tell *notify* its answer."""
    import threading

    def main() -> None:
        try:
            code, error = fn()
        except Exception as exc:  # whatever went wrong is the answer
            code, error = 0, f"{type(exc).__name__}: {exc}"
        notify(code, error)

    threading.Thread(target=main, name=name, daemon=True).start()


def resolve_user(driver: str, user: str) -> tuple[int, int, list[int], bool] | None:
    """A task's ``user`` as (uid, gid, supplementary gids, chown needed); None: run as the agent.

    Switching user needs the agent to run as root (Nomad's client runs as
    root for this); asked of a non-root agent for another user it is a
    clear start error, not a silent run as the agent's user.
    """
    if not user:
        return None
    import grp
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise DriverError(f"{driver}: user {user!r} does not exist on this node") from None
    euid = os.geteuid()
    if pw.pw_uid == euid:
        return None
    if euid != 0:
        raise DriverError(f"{driver}: running a task as user {user!r} needs the client to run as root")
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    return pw.pw_uid, pw.pw_gid, groups, True


def _chown_tree(root: str, uid: int, gid: int) -> None:
    """Give *root* and everything in it to the task's user -- never what a symlink in it points at.

    The tree is the task's own: a link it left (``local/x -> /etc/shadow``)
    must not hand the target to it on the next start, so links themselves
    are chowned (lchown) and never followed (os.walk does not descend them).
    """
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, gid, follow_symlinks=False)
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def check_command_config(driver: str, config: Any, *, required: bool = True) -> tuple[str, list[str]]:
    """Validate raw_exec's ``command`` and ``args`` (shared by both drivers)."""
    if not isinstance(config, dict):
        raise DriverError(f"{driver}: task config must be a mapping, got {type(config).__name__}")
    command = config.get("command")
    if command is None and not required:
        command = ""
    elif not isinstance(command, str) or not command:
        raise DriverError(f"{driver}: config.command is required and must be a non-empty string")
    args = config.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, _ARG_SCALARS) for a in args):
        raise DriverError(f"{driver}: config.args must be a list of strings")
    return command, [arg_text(a) for a in args]


# What Nomad's driver schema (args: list(string)) converts to a string: a job file's args = ["-p", 8080].
_ARG_SCALARS = (str, int, float, bool)


def arg_text(arg: str | int | float | bool) -> str:
    """An argument as cty converts it to a string: true/false, and a number as written (8080, 2.5)."""
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if isinstance(arg, float) and arg.is_integer():
        return str(int(arg))
    return str(arg)


def signal_number(signame: str) -> int:
    """``SIGINT`` / ``INT`` / ``sigterm`` -> the number; DriverError if unknown."""
    name = signame.strip().upper() if isinstance(signame, str) else ""
    if name and not name.startswith("SIG"):
        name = "SIG" + name
    sig = _signal.Signals.__members__.get(name) if name else None
    if sig is None:
        raise DriverError(f"unknown signal {signame!r}")
    return int(sig)


# ------------------------------------------------------------ raw_exec (real processes)
class RawExecDriver:
    """Nomad's ``raw_exec``: the command runs unisolated, as the agent's user.

    Layout as Nomad's: the task runs in ``<alloc_dir>/<task>`` (``task_dir``),
    with ``local``, ``secrets`` and ``tmp`` under it; its stdout and stderr
    go through two pipes to one rotator process (``actors.client.logmon``)
    that writes ``<alloc_dir>/alloc/logs/<task>.stdout.<N>`` / ``.stderr.<N>``
    as the task's ``logs`` block says (:class:`LogSettings`).
    The process starts a new session, so it leads its own process group and
    signals reach its children too.

    The task is started by a small launcher (``exec_launcher.py raw``, Nomad's
    executor for one task) in its own session, which outlives the agent as
    the task does: it waits for the task, forwards any signal it gets to the
    task's process group, records the task's exit in the task directory and
    exits as the task did.  The handle's ``pid`` is the launcher's and its
    ``pgid`` the task's own group, which the driver signals directly.
    Launchers this driver started are reaped through ``Popen.poll`` (no
    zombies), their exit being the task's.  A task re-attached after an
    agent restart is no longer our child: psutil tells whether its launcher
    lives, and once it is gone its record tells how the task ended.

    Host volumes: Nomad's raw_exec reports MountConfigs = MountConfigSupportNone
    (it has no filesystem isolation to mount into), so a task with a
    ``volume_mount`` fails in the volumes hook before it starts (see
    alloc_runner.volume_hook_error); this one reports the same.
    """

    # Nomad's rawexec capabilities: MountConfigs: drivers.MountConfigSupportNone.
    mount_configs = MOUNT_CONFIGS_NONE

    def __init__(self, name: str = "raw_exec", clock: Callable[[], float] = time.monotonic, *,
                 env_denylist: tuple[str, ...] = DEFAULT_ENV_DENYLIST,
                 launch_timeout_s: float = LAUNCH_TIMEOUT_S) -> None:
        self.name = name
        self.launch_timeout_s = launch_timeout_s
        self.env_denylist = env_denylist  # the agent's variables its tasks never get (client env.denylist)
        self._clock = clock  # this edge's own clock: how long a dead task's log rotators are waited for
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # pid -> our child, until reaped
        self._ps: dict[tuple[int, float], dict[int, Any]] = {}  # per task: pid -> psutil.Process
        # Log rotators (actors.client.logmon processes) we started: reaped when
        # they end; a task's own are waited for (LOG_DRAIN_S) before its exit is told.
        self._loggers: list[subprocess.Popen[bytes]] = []
        self._task_loggers: dict[int, tuple[subprocess.Popen[bytes], ...]] = {}  # task pid -> its rotator
        self._drain_since: dict[int, float] = {}  # task pid -> when its exit was first seen

    def start(self, alloc_id: str, task_name: str, config: dict[str, Any], task_dir: str,
              env: dict[str, str], user: str = "", logs: LogSettings | None = None,
              resources: TaskResources | None = None) -> TaskHandle:
        import psutil

        command, args = check_command_config(self.name, config)
        run_as = resolve_user(self.name, user)
        alloc_dir = os.path.dirname(os.path.normpath(task_dir))
        logs_dir = os.path.join(alloc_dir, "alloc", "logs")
        try:
            for d in (logs_dir, os.path.join(alloc_dir, "alloc", "data"),
                      os.path.join(alloc_dir, "alloc", "tmp"), os.path.join(task_dir, "local"),
                      os.path.join(task_dir, "tmp")):
                os.makedirs(d, exist_ok=True)
            os.makedirs(os.path.join(task_dir, "secrets"), mode=0o700, exist_ok=True)
        except OSError as exc:
            why = f"{self.name}: cannot prepare the task directory: {exc}"
            raise DriverError(why, recoverable=True) from exc
        task_dir = os.path.abspath(task_dir)
        clear_exit_record(task_dir)  # one an earlier run left (or copied with the dir) is not this run's
        out, err, loggers = self._log_sinks(logs_dir, task_name, logs or LogSettings())
        spec: dict[str, Any] = {"argv": [command, *args], "env": {**host_env(self.env_denylist), **env},
                                "cwd": task_dir, "task_dir": task_dir, "uid": None, "gid": None, "groups": []}
        try:
            if run_as is not None:  # least privilege: the task's own user, its groups, not ours
                spec.update(uid=run_as[0], gid=run_as[1], groups=run_as[2])
                if run_as[3]:
                    for d in (os.path.join(alloc_dir, "alloc"), task_dir):
                        _chown_tree(d, run_as[0], run_as[1])
            proc, task_pid = self._launch(command, spec, out, err)
        except FileNotFoundError as exc:
            raise DriverError(f"{self.name}: command {command!r} not found") from exc
        except PermissionError as exc:
            raise DriverError(f"{self.name}: command {command!r} is not executable: {exc}") from exc
        except OSError as exc:
            raise DriverError(f"{self.name}: failed to start {command!r}: {exc}", recoverable=True) from exc
        finally:
            for fd in (out, err):  # the task and its rotators hold their own ends now
                if fd >= 0:
                    _close_fds(fd)
        self._procs[proc.pid] = proc
        if loggers:
            self._task_loggers[proc.pid] = loggers
        try:
            start_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            start_time = 0.0  # exited (and not yet reaped) already: poll will report it
        return TaskHandle(driver=self.name, alloc_id=alloc_id, task_name=task_name, pid=proc.pid,
                          pgid=task_pid, start_time=start_time, task_dir=task_dir)

    def _launch(self, command: str, spec: dict[str, Any], out: int,
                err: int) -> tuple[subprocess.Popen[bytes], int]:
        """Start the task through its launcher (``exec_launcher.py raw``): (the launcher, the task's pid,
        which is its process group) once the command runs.  A failure before it runs is the OSError the
        task's exec (or chdir) met, as subprocess would raise it, or a DriverError."""
        import json

        from actors.client import exec_launcher

        # The spec goes through a pipe, not argv: a command line is readable by every user of the
        # host, and the task's environment may hold secrets.
        status_r, status_w = os.pipe()
        spec_r, spec_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", exec_launcher.__file__, "raw", str(spec_r), str(status_w)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if out < 0 else out,
                stderr=subprocess.DEVNULL if err < 0 else err, cwd="/", env={},
                start_new_session=True, close_fds=True, pass_fds=(spec_r, status_w))
        except OSError as exc:
            _close_fds(status_r, spec_w)
            raise DriverError(f"{self.name}: failed to start the task's launcher: {exc}",
                              recoverable=True) from exc
        finally:
            _close_fds(status_w, spec_r)  # now: the launch status below ends when the task's copy closes
        write_spec(spec_w, spec)
        said = self._read_launch(status_r, proc)
        task_pid, failure = 0, ""
        for line in said.decode("utf-8", "replace").splitlines():
            if line.isdigit():
                task_pid = int(line)
            elif line.strip():
                failure = line
        if not failure and task_pid:
            return proc, task_pid
        proc.wait()
        clear_exit_record(spec["task_dir"])  # the launcher recorded the failed child's exit: no task's
        try:
            why = json.loads(failure) if failure else {}
        except ValueError:
            why = {"message": failure}
        if not isinstance(why, dict):
            why = {"message": failure}
        if isinstance(why.get("errno"), int) and why["errno"] > 0:
            raise OSError(why["errno"], str(why.get("strerror") or ""), why.get("filename"))
        message = why.get("message") or "the launcher failed before the command ran"
        raise DriverError(f"{self.name}: failed to start {command!r}: {message}", recoverable=True)

    def _read_launch(self, fd: int, proc: subprocess.Popen[bytes]) -> bytes:
        """What the launcher and its child wrote on the status pipe until it closed (the command ran, or
        the launcher is gone).  Past launch_timeout_s the launcher is killed (its task with it)."""
        import select

        chunks: list[bytes] = []
        deadline = self._clock() + self.launch_timeout_s
        try:
            while True:
                left = deadline - self._clock()
                if left <= 0:
                    proc.kill()
                    return b"\n".join([*chunks, b'{"message": "the task was not running after %g s"}'
                                        % self.launch_timeout_s])
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                data = os.read(fd, 4096)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
        finally:
            _close_fds(fd)

    def poll(self, handle: TaskHandle) -> ExitResult | None:
        proc = self._procs.get(handle.pid)
        if proc is not None:
            code = proc.poll()  # reaps our child
            if code is None or not self._logs_drained(handle.pid):
                return None
            del self._procs[handle.pid]
            self._forget(handle)
            if code < 0:
                return ExitResult(exit_code=EXIT_SIGNAL_BASE - code, signal=-code)
            return ExitResult(exit_code=code)
        if self._alive(handle):
            return None
        self._forget(handle)
        # Re-attached, so not our child: its launcher recorded the exit before it ended.
        return self.recorded_exit(handle) or ExitResult(
            exit_code=None, err="exit code unknown: the task was re-attached, not our child")

    def recorded_exit(self, handle: TaskHandle) -> ExitResult | None:
        """The exit the task's launcher recorded (None: it recorded none, or this handle has no launcher)."""
        if not handle.task_dir:
            return None
        return read_exit_record(handle.task_dir, handle.pid)

    def signal(self, handle: TaskHandle, signame: str) -> None:
        self._signal_group(handle, signal_number(signame))

    def kill(self, handle: TaskHandle) -> None:
        self._signal_group(handle, _signal.SIGKILL)

    def exec_in_task(self, handle: TaskHandle, command: str, args: tuple[str, ...], timeout_s: float,
                     notify: ExecNotify, *, task_dir: str, env: dict[str, str], user: str = "",
                     enter: str = "") -> None:
        """Run *command* as ``nomad alloc exec`` does for raw_exec: in the task's directory, with its
        environment (over the agent's, less the denylist) and as its user; answered through *notify*."""
        try:
            run_as = resolve_user(self.name, user)
        except DriverError as exc:
            notify(0, str(exc))
            return
        ids = {"user": run_as[0], "group": run_as[1], "extra_groups": run_as[2]} if run_as else {}
        full_env = {**host_env(self.env_denylist), **env}
        run_in_thread(f"exec {handle.task_name}",
                      functools.partial(run_command, [command, *args], task_dir, full_env, timeout_s, ids),
                      notify)

    def recover(self, handle: TaskHandle) -> bool:
        proc = self._procs.get(handle.pid)
        if proc is not None:
            return proc.poll() is None and self._same_process(handle) is not False
        return self._alive(handle)

    def stats(self, handle: TaskHandle) -> dict[str, Any]:
        """CPU percent and RSS of the task and its descendants -- not of its launcher; {} once it is gone.

        ``pid`` is the task's own (its launcher's child), from which ``alloc status -stats`` measures it.
        ``cpu_percent`` compares with the previous call on the same psutil
        object, so those objects are kept per task: the first call reads 0.0.
        """
        import psutil

        key = (handle.pid, handle.start_time)
        known = self._ps.get(key)
        try:
            if known is None:
                leader = psutil.Process(handle.pid)
                if not _same_start(leader.create_time(), handle.start_time):
                    return {}
                known = self._ps[key] = {handle.pid: leader}
            leader = known[handle.pid]
            if leader.status() == psutil.STATUS_ZOMBIE:
                return {}
            procs = {handle.pid: leader}
            for child in leader.children(recursive=True):
                procs[child.pid] = known.get(child.pid, child)
        except psutil.Error:
            self._ps.pop(key, None)
            return {}
        cpu, rss = 0.0, 0
        for pid in sorted(procs):
            if pid == handle.pid and handle.task_dir:
                continue  # the launcher is no part of the task
            try:
                cpu += procs[pid].cpu_percent(None)
                rss += procs[pid].memory_info().rss
            except psutil.Error:
                del procs[pid]
        self._ps[key] = procs  # children that exited are dropped with the old map
        measured = len(procs) - (1 if handle.task_dir else 0)
        if measured <= 0:
            return {}  # the task has ended; its launcher is recording the exit
        task_pid = handle.pgid if handle.task_dir else handle.pid
        return {"pid": task_pid, "cpu_percent": cpu, "rss_bytes": rss, "processes": measured}

    # ------------------------------------------------------------ logs
    def _log_sinks(self, logs_dir: str, task_name: str,
                   logs: LogSettings) -> tuple[int, int, tuple[subprocess.Popen[bytes], ...]]:
        """The write ends of the task's stdout and stderr: pipes into a new rotator (also returned).

        (-1, -1, ()) when the logs are disabled (the output goes to /dev/null).
        The rotator runs ``actors/client/logmon.py`` by path, isolated (-I -S:
        no site, no environment), in its own session, so it outlives this
        agent as the task does (see that module for why), and in ``/``: it
        is no task, and holds no directory of the allocation.
        """
        self._reap_loggers()
        if logs.disabled:
            return -1, -1, ()
        from actors.client import logmon

        for kind in LOG_STREAMS:  # the files are there when start returns, before the rotators run
            if not logmon.indexes(logs_dir, f"{task_name}.{kind}"):
                try:
                    # The rotator's own rules (logmon.Rotator): in the directory, never through a link.
                    first = logmon.Rotator(logs_dir, f"{task_name}.{kind}", 1, 1)
                    try:
                        first.ensure_open()
                    finally:
                        first.close_all()
                except OSError as exc:
                    raise DriverError(f"{self.name}: cannot create the task's {kind} log: {exc}",
                                      recoverable=True) from exc
        ends: list[int] = []
        reads: list[int] = []
        try:
            for _ in LOG_STREAMS:
                r, w = os.pipe()
                reads.append(r)
                ends.append(w)
            os.set_inheritable(reads[1], True)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", logmon.__file__, os.path.abspath(logs_dir), task_name,
                 str(logs.max_files), str(logs.max_file_bytes), str(reads[1])],
                stdin=reads[0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                start_new_session=True, close_fds=True, pass_fds=(reads[1],))
            self._loggers.append(proc)
        except OSError as exc:
            for w in ends:
                os.close(w)
            raise DriverError(f"{self.name}: cannot start the task's log rotator: {exc}",
                              recoverable=True) from exc
        finally:
            for r in reads:  # the rotator holds its own ends now
                os.close(r)
        return ends[0], ends[1], (proc,)

    def _logs_drained(self, pid: int) -> bool:
        """The exited task's rotators have ended, or LOG_DRAIN_S has passed since its exit was seen."""
        self._reap_loggers()
        loggers = self._task_loggers.get(pid, ())
        if any(p.returncode is None for p in loggers):
            now = self._clock()
            since = self._drain_since.setdefault(pid, now)
            if now - since < LOG_DRAIN_S:
                return False
            log.warning("task pid %d exited but its output is still open (a child left running?)", pid)
        self._task_loggers.pop(pid, None)
        self._drain_since.pop(pid, None)
        return True

    def _reap_loggers(self) -> None:
        self._loggers = [p for p in self._loggers if p.poll() is None]

    # ------------------------------------------------------------ helpers
    def _same_process(self, handle: TaskHandle) -> bool | None:
        """True: pid is the task; False: pid reused or gone; None: cannot tell (no start time)."""
        import psutil

        try:
            p = psutil.Process(handle.pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return False
            if handle.start_time == 0.0:
                return None
            return _same_start(p.create_time(), handle.start_time)
        except psutil.Error:
            return False

    def _alive(self, handle: TaskHandle) -> bool:
        return self._same_process(handle) is True

    def lost_to_reboot(self, handle: TaskHandle) -> bool:
        """The task was started before the host's last boot (psutil's boot time, wall clock s)."""
        import psutil

        if handle.start_time <= 0.0:
            return False  # its start time is unknown (it exited at once): its exit decides, as before
        try:
            return psutil.boot_time() > handle.start_time
        except (psutil.Error, OSError):
            return False

    def _signal_group(self, handle: TaskHandle, signum: int) -> None:
        """Signal the task's group unless its pid now belongs to another process.

        A pgid is not reused while any member lives, so when the leader is gone
        the group (if it still exists) holds only the task's own children.
        """
        import psutil

        if handle.pid not in self._procs:
            try:
                p = psutil.Process(handle.pid)
                if handle.start_time and not _same_start(p.create_time(), handle.start_time):
                    return  # pid reused: not ours to signal
            except psutil.Error:
                pass
        try:
            os.killpg(handle.pgid, signum)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise DriverError(f"{self.name}: not permitted to signal task {handle.task_name}: {exc}") from exc
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise DriverError(f"{self.name}: signalling task {handle.task_name} failed: {exc}") from exc

    def _forget(self, handle: TaskHandle) -> None:
        self._ps.pop((handle.pid, handle.start_time), None)


def read_exit_record(task_dir: str, launcher_pid: int) -> ExitResult | None:
    """The task's exit as its launcher (pid *launcher_pid*) recorded it in *task_dir*; None when there
    is no such record (none written, a torn or foreign file, another launcher's).

    The file is in a directory the task may own (raw_exec's ``user``): it is opened without following
    a link or blocking on a FIFO, and only a small regular file is read.
    """
    import json
    import stat

    from actors.client.exec_launcher import EXIT_RECORD

    try:
        fd = os.open(os.path.join(task_dir, EXIT_RECORD), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, EXIT_RECORD_MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        rec = json.loads(data) if len(data) <= EXIT_RECORD_MAX_BYTES else None
    except ValueError:
        return None
    if not isinstance(rec, dict) or rec.get("launcher_pid") != launcher_pid:
        return None
    code, sig = rec.get("exit_code"), rec.get("signal")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in (code, sig)):
        return None
    return ExitResult(exit_code=code, signal=sig)


def clear_exit_record(task_dir: str) -> None:
    """Remove the task's exit record (before a start: an earlier run's is not the new one's)."""
    from actors.client.exec_launcher import EXIT_RECORD

    try:
        os.unlink(os.path.join(task_dir, EXIT_RECORD))
    except FileNotFoundError:
        pass
    except IsADirectoryError:  # not one a launcher wrote: the launcher's rename cannot replace it
        log.warning("%s in %s is a directory: the task's exit will not be recorded", EXIT_RECORD, task_dir)
    except OSError as exc:
        log.warning("cannot remove the old exit record in %s: %s", task_dir, exc)


def write_spec(fd: int, spec: dict[str, Any]) -> None:
    """Send a launcher its spec (JSON) through the pipe *fd*, then close it.  The launcher reads it all
    first thing; one already gone (EPIPE) is not an error here: its launch status says what happened."""
    import json

    try:
        data = json.dumps(spec).encode()
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
    finally:
        _close_fds(fd)


def _close_fds(*fds: int) -> None:
    """Close now, not deferred to the gevent hub's next turn (gevent's os.close on a pipe is): a pipe's
    reader sees its end of file only once every writer's copy is closed."""
    for fd in fds:
        os.closerange(fd, fd + 1)


def _same_start(a: float, b: float) -> bool:
    # psutil derives create_time from boot time + ticks: identical for one process.
    return abs(a - b) < 1e-3


# ------------------------------------------------------------ the simulator's driver
@dataclass(slots=True)
class SimProcess:
    """One simulated task process (the simulation may inspect these)."""

    alloc_id: str
    task_name: str
    pid: int
    started_at: float
    config: dict[str, Any]
    run_for_s: float | None  # exits by itself after this long; None = until killed
    exit_code: int
    ignore_signals: bool
    signals: list[str] = field(default_factory=list)
    result: ExitResult | None = None
    ended_at: float | None = None
    watchers: list[Callable[[], None]] = field(default_factory=list)  # told once when it ends


class SimDriver:
    """A deterministic fake driver on a clock callable (``env.now`` or the scheduler's).

    Task config (everything optional; ``command``/``args`` are checked as
    raw_exec's when present, so one job runs under either driver):

    * ``run_for_s`` -- exits by itself that long after start; absent = runs until killed;
    * ``exit_code`` -- the code it exits with then (default 0);
    * ``fail_start`` -- start raises :class:`DriverError` (a string is the message);
      ``fail_start_recoverable`` makes it a recoverable error;
    * ``ignore_signals`` -- the kill signal is ignored, so only SIGKILL ends it;
    * ``cpu_percent``, ``rss_bytes`` -- what ``stats`` reports.

    Keep the object across a simulated client restart: like real processes
    surviving an agent restart, its tasks keep running, so re-attach can be
    tested.  :meth:`reboot` is a host reboot (every task dies unseen).

    It stands in for raw_exec, so it cannot mount host volumes either
    (MountConfigs none): a task with a ``volume_mount`` fails as under raw_exec.
    """

    mount_configs = MOUNT_CONFIGS_NONE

    def __init__(self, clock: Callable[[], float], name: str = "sim",
                 schedule: Callable[[float, Callable[[], None]], None] | None = None) -> None:
        self.name = name
        self.clock = clock
        # schedule(when, fn): the simulator's event queue, so an exit is told
        # to the runner when it happens (watch); None: the runner polls.
        self.schedule = schedule
        self.procs: dict[int, SimProcess] = {}  # every process ever started, by pid
        self.starts = 0
        self.booted_at = float("-inf")  # the clock's time of the last reboot()
        # exec_in_task: every call (alloc, task, command, args, timeout) and the answers a test sets,
        # per (alloc, task) -- (exit code, error); absent: the command exits 0.
        self.execs: list[tuple[str, str, str, tuple[str, ...], float]] = []
        self.exec_results: dict[tuple[str, str], tuple[int, str]] = {}
        self._next_pid = 1000

    # ------------------------------------------------------------ driver contract
    def start(self, alloc_id: str, task_name: str, config: dict[str, Any], task_dir: str,
              env: dict[str, str], user: str = "", logs: LogSettings | None = None,
              resources: TaskResources | None = None) -> TaskHandle:
        # No files here: a simulated task writes no output, so its logs block has nothing to rotate.
        check_command_config(self.name, config, required=False)
        fail = config.get("fail_start")
        if fail:
            msg = fail if isinstance(fail, str) else "simulated start failure"
            raise DriverError(f"{self.name}: {msg}", recoverable=bool(config.get("fail_start_recoverable")))
        run_for = config.get("run_for_s")
        if run_for is not None and (not isinstance(run_for, (int, float)) or isinstance(run_for, bool)
                                    or run_for < 0):
            raise DriverError(f"{self.name}: config.run_for_s must be a number >= 0")
        code = config.get("exit_code", 0)
        if not isinstance(code, int) or isinstance(code, bool):
            raise DriverError(f"{self.name}: config.exit_code must be an integer")
        self._next_pid += 1
        self.starts += 1
        now = self.clock()
        proc = SimProcess(alloc_id=alloc_id, task_name=task_name, pid=self._next_pid, started_at=now,
                          config=dict(config), run_for_s=None if run_for is None else float(run_for),
                          exit_code=code, ignore_signals=bool(config.get("ignore_signals")))
        self.procs[proc.pid] = proc
        return TaskHandle(driver=self.name, alloc_id=alloc_id, task_name=task_name, pid=proc.pid,
                          pgid=proc.pid, start_time=now)

    def poll(self, handle: TaskHandle) -> ExitResult | None:
        proc = self._proc(handle)
        if proc is None:
            return ExitResult(exit_code=None, err="exit code unknown: no such process")
        self._advance(proc)
        return proc.result

    def signal(self, handle: TaskHandle, signame: str) -> None:
        signum = signal_number(signame)
        proc = self._proc(handle)
        if proc is None:
            return
        self._advance(proc)
        if proc.result is not None:
            return
        proc.signals.append(signame)
        if not proc.ignore_signals:
            self._end(proc, ExitResult(exit_code=EXIT_SIGNAL_BASE + signum, signal=signum))

    def kill(self, handle: TaskHandle) -> None:
        proc = self._proc(handle)
        if proc is None:
            return
        self._advance(proc)
        if proc.result is None:
            proc.signals.append("SIGKILL")
            self._end(proc, ExitResult(exit_code=EXIT_SIGNAL_BASE + 9, signal=9))

    def recover(self, handle: TaskHandle) -> bool:
        proc = self._proc(handle)
        if proc is None:
            return False
        self._advance(proc)
        return proc.result is None

    def stats(self, handle: TaskHandle) -> dict[str, Any]:
        proc = self._proc(handle)
        if proc is None or self.poll(handle) is not None:
            return {}
        return {"pid": proc.pid, "cpu_percent": float(proc.config.get("cpu_percent", 0.0)),
                "rss_bytes": int(proc.config.get("rss_bytes", 0)), "processes": 1}

    def exec_in_task(self, handle: TaskHandle, command: str, args: tuple[str, ...], timeout_s: float,
                     notify: ExecNotify, *, task_dir: str = "", env: dict[str, str] | None = None,
                     user: str = "", enter: str = "") -> None:
        """Records the call; answers what the test set for the task (exit 0 by default), at once
        through the simulator's queue (or directly without one)."""
        proc = self._proc(handle)
        if proc is not None:
            self._advance(proc)
        if proc is None or proc.result is not None:
            answer = (0, "task not running")
        else:
            self.execs.append((handle.alloc_id, handle.task_name, command, tuple(args), timeout_s))
            answer = self.exec_results.get((handle.alloc_id, handle.task_name), (0, ""))
        if self.schedule is not None:
            self.schedule(self.clock(), functools.partial(notify, *answer))
        else:
            notify(*answer)

    def watch(self, handle: TaskHandle, notify: Callable[[], None]) -> bool:
        proc = self._proc(handle)
        if self.schedule is None or proc is None:
            return False
        proc.watchers.append(notify)
        self._advance(proc)
        if proc.result is not None:
            self.schedule(self.clock(), functools.partial(self._notify, proc))
        elif proc.run_for_s is not None:
            self.schedule(proc.started_at + proc.run_for_s, functools.partial(self._advance, proc))
        return True

    # ------------------------------------------------------------ simulation verbs
    def running(self) -> list[SimProcess]:
        """Live processes, by pid."""
        live = []
        for pid in sorted(self.procs):
            proc = self.procs[pid]
            self._advance(proc)
            if proc.result is None:
                live.append(proc)
        return live

    def find(self, alloc_id: str, task_name: str) -> SimProcess | None:
        """The live process of a task, if any."""
        for proc in self.running():
            if proc.alloc_id == alloc_id and proc.task_name == task_name:
                return proc
        return None

    def crash(self, alloc_id: str, task_name: str, *, exit_code: int = 1, signal: int = 0) -> bool:
        """Make a task's live process exit now; False if it was not running."""
        proc = self.find(alloc_id, task_name)
        if proc is None:
            return False
        self._end(proc, ExitResult(exit_code=exit_code, signal=signal))
        return True

    def reboot(self) -> None:
        """A host reboot: every process is gone and no exit was seen."""
        self.procs.clear()
        self.booted_at = self.clock()

    def recorded_exit(self, handle: TaskHandle) -> ExitResult | None:
        """How a task that ended unwatched ended: kept, as the real drivers' launchers record it (a
        reboot loses the record of a task it killed, as it loses the process)."""
        proc = self._proc(handle)
        if proc is None:
            return None
        self._advance(proc)
        return proc.result

    def lost_to_reboot(self, handle: TaskHandle) -> bool:
        # Asked only of a process recover found gone: one started at the reboot's instant was before it.
        return handle.start_time <= self.booted_at

    # ------------------------------------------------------------ helpers
    def _proc(self, handle: TaskHandle) -> SimProcess | None:
        proc = self.procs.get(handle.pid)
        if proc is None or proc.started_at != handle.start_time:
            return None
        return proc

    def _advance(self, proc: SimProcess) -> None:
        if proc.result is None and proc.run_for_s is not None \
                and self.clock() >= proc.started_at + proc.run_for_s:
            proc.result = ExitResult(exit_code=proc.exit_code)
            proc.ended_at = proc.started_at + proc.run_for_s
            self._notify(proc)

    def _end(self, proc: SimProcess, result: ExitResult) -> None:
        proc.result = result
        proc.ended_at = self.clock()
        self._notify(proc)

    @staticmethod
    def _notify(proc: SimProcess) -> None:
        watchers, proc.watchers = proc.watchers, []
        for notify in watchers:
            notify()
