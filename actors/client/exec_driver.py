"""Nomad's ``exec`` task driver: the command runs isolated, in a chroot of its task directory.

As Nomad's ``drivers/exec`` (with its executor): the task gets its own mount
namespace, PID and IPC namespaces unless ``pid_mode``/``ipc_mode`` say
"host", a chroot of its task directory holding the client's ``chroot_env``
(bind-mounted read-only, never copied), the allocation's ``alloc/`` at
``/alloc`` and its ``local/`` and ``secrets/`` at ``/local`` and ``/secrets``;
it runs as its ``user`` (``nobody`` when unset) with Nomad's capability set, and
in cgroups that hold its memory limit (``resources.memory``; ``memory_max`` as
the hard limit with ``memory`` the soft one) and CPU shares (``resources.cpu``).

The isolation itself is done by a small launcher process
(``actors/client/exec_launcher.py``, Nomad's executor for one task) that
stays outside the task's cgroups, forwards signals to the task and exits as
it did, recording the task's exit in its task directory first; everything
else -- log rotation, exit codes, re-attachment after an agent restart and
the exit recorded meanwhile -- is raw_exec's (this driver extends
:class:`RawExecDriver`).
Killing the task kills every process in its cgroup, and the cgroup is removed
once the task has ended.

The agent's ``plugin "exec" { config { ... } }`` (:func:`exec_plugin_config`) sets the
default pid/ipc modes and the capabilities tasks may have; the client's ``chroot_env``
replaces :data:`DEFAULT_CHROOT_ENV`.  A task the OOM killer ended in its memory cgroup
exits ``oom_killed`` (Nomad's ExitResult.OOMKilled).  :meth:`ExecDriver.enter_spec`
is what ``nomad alloc exec`` needs to run a command inside a running task (the
launcher's ``enter`` mode joins its namespaces, cgroups and chroot).

The task's limits come from the resources the scheduler placed, which the client passes
to ``start`` (:class:`TaskResources`, Nomad's drivers.Resources), never from its environment:
a job's ``env`` block or an env template may set any variable there.  The task's environment is
the agent's without the client's ``env.denylist`` (Nomad's SetHostEnvvars), under the task's own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import select
import signal as _signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.client.drivers import (
    CHROOT_TASK_DIRS,
    DEFAULT_ENV_DENYLIST,
    EXIT_SIGNAL_BASE,
    FS_ISOLATION_CHROOT,
    MOUNT_CONFIGS_NONE,
    DriverError,
    ExecNotify,
    ExitResult,
    LogSettings,
    RawExecDriver,
    TaskHandle,
    TaskResources,
    check_command_config,
    clear_exit_record,
    cpuset,
    host_env,
    run_command,
    run_in_thread,
    signal_number,
    write_spec,
)

log = logging.getLogger("nomad.client.driver")

CGROUP_ROOT = "/sys/fs/cgroup"
# How long the launcher's enter helper may take to join a running task and start a command there
# (a change_script): it reads a small spec and joins namespaces, well under a second when healthy.
ENTER_TIMEOUT_S = 10.0
# Nomad's default client chroot_env (client/config: DefaultChrootEnv): host path -> path in the chroot.
DEFAULT_CHROOT_ENV: tuple[tuple[str, str], ...] = (
    ("/bin", "/bin"), ("/etc", "/etc"), ("/lib", "/lib"), ("/lib32", "/lib32"), ("/lib64", "/lib64"),
    ("/run/resolvconf", "/run/resolvconf"), ("/sbin", "/sbin"), ("/usr", "/usr"),
    # systemd-resolved hosts: /etc/resolv.conf links to /run/systemd/resolve/stub-resolv.conf.
    ("/run/systemd/resolve", "/run/systemd/resolve"),
)
ISOLATION_MODES = ("private", "host")
# Nomad's capabilities.NomadDefaults (Docker's default set without NET_RAW): what a task may have.
NOMAD_DEFAULT_CAPS = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                      "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
# Linux capability numbers (include/uapi/linux/capability.h), for names in cap_add / cap_drop.
CAP_NUMBERS = {name: i for i, name in enumerate((
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"))}
# Nomad's capabilities.LegacySupported: what a task run as root gets (cap_add/cap_drop do not apply then).
LEGACY_ROOT_CAPS = tuple(n for n in CAP_NUMBERS if CAP_NUMBERS[n] <= CAP_NUMBERS["AUDIT_READ"])
# Nomad's executor clamps CPU shares to the kernel's range (cgroup v1 cpu.shares).
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262_144
# How long start waits for the launcher to isolate the task and execute its command: a chroot of
# bind mounts takes milliseconds, the launcher's interpreter start some tens; far longer means a
# wedged mount or host, and the start fails (recoverably) rather than holding the client.
LAUNCH_TIMEOUT_S = 10.0
# Killing a cgroup: rounds of SIGKILL to whatever is in it (a fork racing the first round is caught by
# the next); each round waits this long for the processes to go.
CGROUP_KILL_ROUNDS, CGROUP_KILL_WAIT_S = 5, 0.05
CGROUP_KILL_POLL_S = 0.005  # how often a round looks whether the cgroup is empty yet

HEALTHY = "Healthy"
REQUIRES_ROOT = "Driver must run as root"  # Nomad's drivers.DriverRequiresRootMessage
NO_CGROUP_MOUNT = "Failed to discover cgroup mount point"  # Nomad's drivers.NoCgroupMountMessage
UNSUPPORTED_OS = "exec driver unsupported on client OS"
OOM_KILLED = "OOM Killed"  # the exit message of a task the OOM killer ended (Nomad's docker driver's)


# ------------------------------------------------------------ cgroups (an edge)
@dataclass(frozen=True, slots=True)
class Cgroups:
    """The host's cgroup hierarchies the driver uses: v2 (unified) or v1 controllers by name."""

    mode: str  # "v2" or "v1"
    root: str  # v2: the unified mount; v1: the directory holding one mount per controller
    parent: str  # where task cgroups go, relative to each hierarchy's root
    controllers: tuple[str, ...] = ()  # v1: the hierarchies joined (memory and cpu always)
    # The cpuset controller is there (v1: mounted; v2: available): a task with reserved cores is confined
    # to them (Nomad's executor writes the task's cpuset.cpus).
    cpuset: bool = False

    def task_paths(self, alloc_id: str, task: str) -> list[str]:
        """The task's cgroup directories: Nomad's ``<alloc>.<task>`` (v1) / ``<alloc>.<task>.scope`` (v2)."""
        if self.mode == "v2":
            return [os.path.join(self.root, self.parent, f"{alloc_id}.{task}.scope")]
        return [os.path.join(self.root, c, self.parent, f"{alloc_id}.{task}") for c in self.controllers]

    def cpuset_path(self, alloc_id: str, task: str) -> str | None:
        """v1: the task's directory in the cpuset hierarchy, made only for a task with reserved cores (so
        every other task is as it was); None without one (v2 confines it in its one cgroup)."""
        if self.mode != "v1" or not self.cpuset:
            return None
        return os.path.join(self.root, "cpuset", self.parent, f"{alloc_id}.{task}")

    def by_controller(self, paths: list[str]) -> dict[str, str]:
        """v1: the task's cgroup directory per controller (*paths* as :meth:`task_paths` gave them)."""
        return dict(zip(self.controllers, paths, strict=False)) if self.mode == "v1" else {}


def _mounts(path: str = "/proc/self/mounts") -> list[tuple[str, str, str]]:
    """(mount point, fs type, options) of each mount."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4:
                    out.append((parts[1].replace("\\040", " "), parts[2], parts[3]))
    except OSError:
        pass
    return out


def _own_cgroup(controller: str, path: str = "/proc/self/cgroup") -> str:
    """This process's cgroup in a v1 hierarchy ("" for v2's ``0::``), "/" when unknown."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                _, ctrls, cg = line.rstrip("\n").split(":", 2)
                if controller in ctrls.split(","):
                    return cg or "/"
    except (OSError, ValueError):
        pass
    return "/"


def detect_cgroups(root: str = CGROUP_ROOT, mounts: list[tuple[str, str, str]] | None = None
                   ) -> tuple[Cgroups | None, str]:
    """The cgroup hierarchies a task can be limited in, or None and why not.

    v2 when *root* itself is a cgroup2 mount (Nomad's CG2 mode); v1 when the
    memory and cpu controllers are mounted under it (a hybrid host's
    ``unified`` cgroup2 holds no controllers then: Nomad uses v1 there too).
    v1 task cgroups go under the agent's own cgroup in each hierarchy plus
    ``nomad`` (Nomad: ``/nomad``), so an agent confined to a cgroup keeps
    its tasks inside it.  Either way a test cgroup is made and removed: a
    read-only cgroupfs (an unprivileged container) is no use.
    """
    mounts = _mounts() if mounts is None else mounts
    by_point = {point: (fstype, opts) for point, fstype, opts in mounts}
    found: Cgroups | None = None
    if by_point.get(root, ("",))[0] == "cgroup2":
        try:
            available = _read(os.path.join(root, "cgroup.controllers")).split()
        except OSError:
            available = []
        missing = [c for c in ("memory", "cpu") if c not in available]
        if missing:  # a limit that cannot be set is no isolation: say which controller is absent
            return None, f"{NO_CGROUP_MOUNT}: cgroup2 at {root} lacks the {' and '.join(missing)} controller"
        found = Cgroups(mode="v2", root=root, parent="nomad.slice", cpuset="cpuset" in available)
    else:
        ctrls = []
        for ctrl in ("memory", "cpu", "cpuacct", "pids", "freezer"):
            point = os.path.join(root, ctrl)
            fstype, opts = by_point.get(point, ("", ""))
            if fstype == "cgroup" and ctrl in opts.split(","):
                ctrls.append(ctrl)
        if "memory" in ctrls and "cpu" in ctrls:
            own = _own_cgroup("memory").strip("/")
            fstype, opts = by_point.get(os.path.join(root, "cpuset"), ("", ""))
            has_cpuset = fstype == "cgroup" and "cpuset" in opts.split(",")
            found = Cgroups(mode="v1", root=root, parent=os.path.join(own, "nomad") if own else "nomad",
                            controllers=tuple(ctrls), cpuset=has_cpuset)
    if found is None:
        return None, NO_CGROUP_MOUNT
    probe = found.task_paths("fingerprint", f"probe-{os.getpid()}")[0]
    try:
        os.makedirs(probe)
        os.rmdir(probe)
    except OSError as exc:
        where = os.path.dirname(probe)
        return None, f"{NO_CGROUP_MOUNT}: cannot create cgroups under {where}: {exc.strerror}"
    return found, ""


@dataclass(frozen=True, slots=True)
class DriverHealth:
    """A driver's fingerprint as Nomad reports it (DriverInfo): detected, healthy and why."""

    detected: bool
    healthy: bool
    description: str


def exec_health(*, is_root: bool, kernel_name: str = platform.system().lower(),
                cgroups: Callable[[], tuple[Cgroups | None, str]] = detect_cgroups) -> DriverHealth:
    """Nomad's exec fingerprint: Linux, root, and cgroups it can create (probed only when the rest holds)."""
    if kernel_name != "linux":
        return DriverHealth(False, False, UNSUPPORTED_OS)
    if not is_root:
        return DriverHealth(False, False, REQUIRES_ROOT)
    found, why = cgroups()
    if found is None:
        return DriverHealth(True, False, why or NO_CGROUP_MOUNT)
    return DriverHealth(True, True, HEALTHY)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------ task config
@dataclass(frozen=True, slots=True)
class ExecConfig:
    command: str
    args: tuple[str, ...]
    pid_private: bool
    ipc_private: bool
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    work_dir: str


def _caps(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise DriverError(f"exec: config.{key} must be a list of strings")
    out = []
    bad = []
    for c in value:
        name = c.strip().upper().removeprefix("CAP_")
        if name == "ALL":
            out.extend(CAP_NUMBERS)
        elif name in CAP_NUMBERS:
            out.append(name)
        else:
            bad.append(c)
    if bad:  # Nomad's message
        raise DriverError(f"failed driver config validation: {key} configured with capabilities not "
                          f"supported by system: {', '.join(sorted(bad))}")
    return tuple(dict.fromkeys(out))


def parse_exec_config(config: Any, defaults: ExecPluginConfig | None = None) -> ExecConfig:
    """The task's ``config`` block, validated as Nomad's exec TaskConfig.validate (its messages);
    an unset pid_mode / ipc_mode is the agent's default_pid_mode / default_ipc_mode."""
    defaults = defaults or ExecPluginConfig()
    command, args = check_command_config("exec", config)
    known = {"command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop", "work_dir"}
    unknown = sorted(k for k in config if k not in known)
    if unknown:
        raise DriverError(f"failed to decode driver config: unsupported argument(s) {', '.join(unknown)}")
    modes = {}
    for key in ("pid_mode", "ipc_mode"):
        mode = config.get(key) or ""
        if not mode:  # Nomad's executor.IsolationMode: the task's own mode, else the plugin's default
            modes[key] = defaults.default_pid_private if key == "pid_mode" else defaults.default_ipc_private
            continue
        if mode not in ISOLATION_MODES:
            raise DriverError(f'failed driver config validation: {key} must be "private" or "host", '
                              f'got {mode!r}')
        modes[key] = mode == "private"
    work_dir = config.get("work_dir") or ""
    if not isinstance(work_dir, str):
        raise DriverError("exec: config.work_dir must be a string")
    if work_dir and not work_dir.startswith("/"):
        raise DriverError(f"failed driver config validation: work_dir must be absolute but got relative path "
                          f"{work_dir!r}")
    return ExecConfig(command=command, args=tuple(args), pid_private=modes["pid_mode"],
                      ipc_private=modes["ipc_mode"], cap_add=_caps(config.get("cap_add"), "cap_add"),
                      cap_drop=_caps(config.get("cap_drop"), "cap_drop"), work_dir=work_dir or "/")


@dataclass(frozen=True, slots=True)
class ExecPluginConfig:
    """The agent's ``plugin "exec" { config { ... } }`` (Nomad's exec driver Config), validated."""

    default_pid_private: bool = True  # default_pid_mode "private" (a task's pid_mode overrides it)
    default_ipc_private: bool = True  # default_ipc_mode "private"
    # no_pivot_root: Nomad's executor then only chroots (for a ramdisk root, which cannot pivot).
    # Accepted and ignored here: the launcher always pivot_roots, since a chroot() alone is escaped by
    # any task with CAP_SYS_CHROOT (in the default capability set).
    no_pivot_root: bool = False
    allow_caps: tuple[str, ...] = NOMAD_DEFAULT_CAPS  # upper-case names without CAP_
    # denied_host_uids / denied_host_gids ("0-999,65534"): (low, high) ranges of host IDs no task may
    # run as (Nomad's validators: its user's uid, its primary and supplementary groups).
    denied_uids: tuple[tuple[int, int], ...] = ()
    denied_gids: tuple[tuple[int, int], ...] = ()

    def check_user(self, uid: int, gids: list[int]) -> None:
        """Nomad's Validator.HasValidIDs, its messages."""
        if any(lo <= uid <= hi for lo, hi in self.denied_uids):
            raise DriverError(f"failed host user validation: running as uid {uid} is disallowed")
        for gid in gids:
            if any(lo <= gid <= hi for lo, hi in self.denied_gids):
                raise DriverError(f"failed host user validation: running as gid {gid} is disallowed")


MAX_ID = 2**32 - 1  # Nomad parses IDs as 32-bit unsigned


def _id_ranges(kind: str, text: Any) -> tuple[tuple[int, int], ...]:
    """Nomad's validateIDRange: "N" or "N-M" parts, comma-separated; its messages."""
    if not isinstance(text, str):
        raise DriverError(f"{kind} must be a string of ID ranges")
    if text == "":
        return ()
    out = []
    for part in text.split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) not in (1, 2) or not all(b.isdigit() and int(b) <= MAX_ID for b in bounds):
                raise ValueError
        except ValueError:
            raise DriverError(f'invalid range {kind} "{part}": range bound not valid') from None
        lo, hi = int(bounds[0]), int(bounds[-1])
        if lo > hi:
            raise DriverError(f'invalid range {kind} "{part}": lower bound cannot be greater than '
                              'upper bound')
        out.append((lo, hi))
    return tuple(out)


def exec_plugin_config(config: dict[str, Any]) -> ExecPluginConfig:
    """Nomad's exec ``Config.validate``, with its messages: the modes are "private" or "host", and
    ``allow_caps`` names capabilities this system has (``all`` is every one)."""
    modes = {}
    for key in ("default_pid_mode", "default_ipc_mode"):
        mode = config.get(key, "private")
        if mode not in ISOLATION_MODES:
            raise DriverError(f'{key} must be "private" or "host", got "{mode}"')
        modes[key] = mode == "private"
    allow: list[str] = []
    bad = []
    for c in config.get("allow_caps", [c.lower() for c in NOMAD_DEFAULT_CAPS]):
        name = c.strip().lower().removeprefix("cap_")  # Nomad's capabilities.normalize
        if name == "all":
            allow.extend(CAP_NUMBERS)
        elif name.upper() in CAP_NUMBERS:
            allow.append(name.upper())
        elif name:
            bad.append(name)
    if bad:
        raise DriverError("allow_caps configured with capabilities not supported by system: "
                          + ", ".join(sorted(set(bad))))
    return ExecPluginConfig(default_pid_private=modes["default_pid_mode"],
                            default_ipc_private=modes["default_ipc_mode"],
                            no_pivot_root=bool(config.get("no_pivot_root", False)),
                            allow_caps=tuple(sorted(set(allow))),
                            denied_uids=_id_ranges("deniedHostUIDs", config.get("denied_host_uids", "")),
                            denied_gids=_id_ranges("deniedHostGIDs", config.get("denied_host_gids", "")))


def task_capabilities(cap_add: tuple[str, ...], cap_drop: tuple[str, ...],
                      allow: tuple[str, ...] = NOMAD_DEFAULT_CAPS) -> tuple[str, ...]:
    """Nomad's capabilities.Calculate: (defaults ∩ allow_caps) - cap_drop + cap_add.

    cap_add may name only what allow_caps allows (Nomad's message otherwise).
    """
    missing = [c for c in cap_add if c not in allow]
    if missing:
        raise DriverError(f"driver does not allow the following capabilities: {', '.join(sorted(missing))}")
    result = [c for c in NOMAD_DEFAULT_CAPS if c in allow and c not in cap_drop]
    result += [c for c in cap_add if c not in result]
    return tuple(sorted(result))


def memory_limits(memory_mb: int, memory_max_mb: int) -> tuple[int, int]:
    """Nomad's executor memoryLimits: (hard, soft) bytes; memory_max is the hard limit when set."""
    mib = 1 << 20
    if memory_max_mb > 0:
        return max(memory_max_mb, memory_mb) * mib, memory_mb * mib
    return memory_mb * mib, 0


# ------------------------------------------------------------ the driver
class ExecDriver(RawExecDriver):
    """Nomad's ``exec``: see the module doc.  ``cgroups`` is found on the first start unless given."""

    # Nomad's exec mounts host volumes (MountConfigSupportAll); this one does not mount them into the
    # chroot yet, so it says so: a task with a volume_mount fails before it starts, with the reason.
    mount_configs = MOUNT_CONFIGS_NONE
    fs_isolation = FS_ISOLATION_CHROOT  # Nomad's FSIsolationChroot: the task sees /alloc, /local, /secrets

    def __init__(self, name: str = "exec", clock: Callable[[], float] = time.monotonic, *,
                 chroot_env: tuple[tuple[str, str], ...] = DEFAULT_CHROOT_ENV,
                 cgroups: Cgroups | None = None, total_compute_mhz: int = 0,
                 allow_caps: tuple[str, ...] | None = None,
                 plugin: ExecPluginConfig | None = None,
                 launch_timeout_s: float = LAUNCH_TIMEOUT_S,
                 env_denylist: tuple[str, ...] = DEFAULT_ENV_DENYLIST,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        super().__init__(name, clock, env_denylist=env_denylist)
        self._sleep = sleep  # the pause between looks at a cgroup being killed (cooperative under gevent)
        self.chroot_env = chroot_env
        self._cgroups = cgroups
        self.total_compute_mhz = total_compute_mhz  # > MAX_CPU_SHARES: shares are scaled into range
        self.plugin = plugin or ExecPluginConfig()
        self.allow_caps = allow_caps if allow_caps is not None else self.plugin.allow_caps
        self.launch_timeout_s = launch_timeout_s
        self._cpu_seen: dict[tuple[int, float], tuple[float, int]] = {}  # task -> (when, cpuacct ns)
        # Tasks recover found ended unwatched -> the OOM kills their cgroups saw before they were removed,
        # until their recorded exit is read.
        self._gone_ooms: dict[tuple[int, float], int] = {}

    # ------------------------------------------------------------ contract
    def start(self, alloc_id: str, task_name: str, config: dict[str, Any], task_dir: str,
              env: dict[str, str], user: str = "", logs: LogSettings | None = None,
              resources: TaskResources | None = None) -> TaskHandle:
        """*resources* (the task's placed cpu, memory, memory_max) set its cgroup limits; None: Nomad's
        default task resources.  Nothing in *env* does."""
        import grp
        import pwd

        import psutil

        cfg = parse_exec_config(config, self.plugin)
        user = user or "nobody"  # Nomad's exec default
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise DriverError(f"failed host user validation: user {user!r} does not exist on this node"
                              ) from None
        groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
        self.plugin.check_user(pw.pw_uid, [pw.pw_gid, *groups])
        if os.geteuid() != 0:
            raise DriverError(f"{self.name}: {REQUIRES_ROOT}")
        if user == "root":
            bounding = LEGACY_ROOT_CAPS  # Nomad: root keeps the legacy set; cap_add/cap_drop do not apply
            ambient: tuple[str, ...] = ()
        else:
            bounding = ambient = task_capabilities(cfg.cap_add, cfg.cap_drop, self.allow_caps)
        cgroups = self._cgroups
        if cgroups is None:
            cgroups, why = detect_cgroups()
            if cgroups is None:
                raise DriverError(f"{self.name}: {why}")
            self._cgroups = cgroups
        alloc_dir = os.path.dirname(os.path.normpath(task_dir))
        logs_dir = os.path.join(alloc_dir, "alloc", "logs")
        try:
            for d in (logs_dir, os.path.join(alloc_dir, "alloc", "data"),
                      os.path.join(alloc_dir, "alloc", "tmp"), os.path.join(task_dir, "local"),
                      os.path.join(task_dir, "tmp")):
                os.makedirs(d, exist_ok=True)
            os.makedirs(os.path.join(task_dir, "secrets"), mode=0o700, exist_ok=True)
            # Nomad's task dir: the task's user owns local/, secrets/ and tmp/.  alloc/ is shared by
            # every task of the allocation: writable by all, but sticky (as /tmp), so no task renames
            # or replaces what it does not own -- logs/ and the root log rotator's files in it.
            for d in ("local", "secrets", "tmp"):
                path = os.path.join(task_dir, d)
                os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
            for d in ("data", "tmp"):
                os.chmod(os.path.join(alloc_dir, "alloc", d), 0o777)
            os.chmod(os.path.join(alloc_dir, "alloc", "logs"), 0o1777)
            os.chmod(os.path.join(alloc_dir, "alloc"), 0o1777)
            os.chmod(os.path.join(task_dir, "tmp"), 0o1777)
        except OSError as exc:
            raise DriverError(f"{self.name}: cannot prepare the task directory: {exc}",
                              recoverable=True) from exc
        clear_exit_record(os.path.abspath(task_dir))  # one an earlier run left is not this run's
        paths = self._make_cgroups(cgroups, alloc_id, task_name, resources or TaskResources())
        task_env = {**host_env(self.env_denylist), **env, **CHROOT_TASK_DIRS}
        spec = {"task_dir": os.path.abspath(task_dir),
                "alloc_dir": os.path.join(os.path.abspath(alloc_dir), "alloc"),
                "chroot_env": [list(e) for e in self.chroot_env],
                "cgroup_procs": [os.path.join(p, "cgroup.procs") for p in paths],
                "pid_private": cfg.pid_private, "ipc_private": cfg.ipc_private, "work_dir": cfg.work_dir,
                "uid": pw.pw_uid, "gid": pw.pw_gid, "groups": groups, "user": user,
                "bounding": sorted(CAP_NUMBERS[c] for c in bounding),
                "ambient": sorted(CAP_NUMBERS[c] for c in ambient),
                "argv": [cfg.command, *cfg.args], "env": task_env}
        try:
            out, err, loggers = self._log_sinks(logs_dir, task_name, logs or LogSettings())
        except DriverError:
            self._remove_cgroups(paths)
            raise
        from actors.client import exec_launcher

        # The spec goes through a pipe, not argv: a command line is readable by every user of the
        # host, and the task's environment may hold secrets.
        status_r, status_w = os.pipe()
        spec_r, spec_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", exec_launcher.__file__, str(spec_r), str(status_w)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if out < 0 else out,
                stderr=subprocess.DEVNULL if err < 0 else err, cwd="/", env={},
                start_new_session=True, close_fds=True, pass_fds=(spec_r, status_w))
        except OSError as exc:
            _close(status_r, spec_w)
            self._remove_cgroups(paths)
            raise DriverError(f"{self.name}: failed to start the task's launcher: {exc}",
                              recoverable=True) from exc
        finally:
            # Closed now, not deferred to the gevent hub's next turn (gevent's os.close on a pipe is):
            # the launch status below is the end of file once the task's copy closes on exec.
            _close(status_w, spec_r)
            for fd in (out, err):
                if fd >= 0:
                    os.close(fd)
        write_spec(spec_w, spec)
        failure = self._launch_status(status_r, proc)
        if failure is not None:
            proc.wait()
            clear_exit_record(spec["task_dir"])  # the launcher recorded its failed child's exit: no task's
            self._kill_cgroups(paths)
            self._remove_cgroups(paths)  # its rotator sees end of file and ends; reaped with the others
            raise DriverError(f"failed to launch command with executor: {failure}")
        self._procs[proc.pid] = proc
        if loggers:
            self._task_loggers[proc.pid] = loggers
        try:
            start_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            start_time = 0.0
        return TaskHandle(driver=self.name, alloc_id=alloc_id, task_name=task_name, pid=proc.pid,
                          pgid=proc.pid, start_time=start_time, task_dir=spec["task_dir"])

    def poll(self, handle: TaskHandle) -> ExitResult | None:
        proc = self._procs.get(handle.pid)
        if proc is not None and proc.poll() is not None:
            # The task has ended: what it left running (host pid mode) goes now, so its output closes
            # and the exit is told without waiting out LOG_DRAIN_S for a child that holds it open.
            self._kill_cgroups(self._task_cgroups(handle))
        result = super().poll(handle)
        if result is not None:  # Nomad's container.Destroy: nothing of the task outlives it
            paths = self._task_cgroups(handle)
            result = _with_ooms(result, self._oom_kills(paths))
            self._kill_cgroups(paths)
            self._remove_cgroups(paths)
            self._cpu_seen.pop((handle.pid, handle.start_time), None)
        return result

    def _oom_kills(self, paths: list[str]) -> int:
        """How many processes the OOM killer killed in the task's memory cgroup (0 when unknown):
        v2 memory.events, v1 memory.oom_control (both "oom_kill N", kernels since 4.13)."""
        cg = self._cgroups
        if cg is None or not paths:
            return 0
        if cg.mode == "v2":
            where = os.path.join(paths[0], "memory.events")
        else:
            mem = cg.by_controller(paths).get("memory")
            if mem is None:
                return 0
            where = os.path.join(mem, "memory.oom_control")
        try:
            return _kv(_read(where)).get("oom_kill", 0)
        except OSError:
            return 0

    def recover(self, handle: TaskHandle) -> bool:
        """raw_exec's check of the launcher; a task whose launcher is gone is cleaned up as Nomad's
        executor would have on its exit: whatever is left in its cgroups is killed, the cgroups removed."""
        alive = super().recover(handle)
        if not alive and handle.pid not in self._procs:
            paths = self._task_cgroups(handle)
            ooms = self._oom_kills(paths)
            if ooms:  # its recorded exit says so
                self._gone_ooms[(handle.pid, handle.start_time)] = ooms
            self._kill_cgroups(paths)
            self._remove_cgroups(paths)
        return alive

    def recorded_exit(self, handle: TaskHandle) -> ExitResult | None:
        """raw_exec's, marked OOM-killed when the task's memory cgroup saw the OOM killer act (read by
        recover, before it removed the cgroups)."""
        result = super().recorded_exit(handle)
        ooms = self._gone_ooms.pop((handle.pid, handle.start_time), 0)
        return None if result is None else _with_ooms(result, ooms)

    def enter_spec(self, handle: TaskHandle, config: dict[str, Any], user: str = "") -> dict[str, Any]:
        """What a command run inside the running task needs (``nomad alloc exec``; Nomad's executor
        ExecStreaming): the task's init process (whose namespaces it joins), cgroups, user and
        capabilities (as the task's own), work_dir.  DriverError: the task is not running."""
        import grp
        import pwd

        cfg = parse_exec_config(config, self.plugin)
        user = user or "nobody"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise DriverError(f"failed host user validation: user {user!r} does not exist on this node"
                              ) from None
        if user == "root":
            bounding, ambient = LEGACY_ROOT_CAPS, ()
        else:
            bounding = ambient = task_capabilities(cfg.cap_add, cfg.cap_drop, self.allow_caps)
        init = self._task_init(handle)
        try:  # as the launcher's proc_start (which the agent does not import): /proc/<pid>/stat field 22
            started = _read(f"/proc/{init}/stat").rsplit(")", 1)[1].split()[19] if init is not None else ""
        except (OSError, IndexError):
            started = ""
        if not started:
            raise DriverError("task is not running")
        procs = [os.path.join(p, "cgroup.procs") for p in self._task_cgroups(handle)]
        return {"pid": init, "pid_start": started, "cgroup_procs": procs,
                "work_dir": cfg.work_dir, "uid": pw.pw_uid, "gid": pw.pw_gid, "user": user,
                "groups": [g.gr_gid for g in grp.getgrall() if user in g.gr_mem],
                "bounding": sorted(CAP_NUMBERS[c] for c in bounding),
                "ambient": sorted(CAP_NUMBERS[c] for c in ambient)}

    def _task_init(self, handle: TaskHandle) -> int | None:
        """The task's first process: its launcher's child (PID 1 of its PID namespace)."""
        if self._same_process(handle) is False:
            return None
        try:
            children = [int(p) for p in _read(f"/proc/{handle.pid}/task/{handle.pid}/children").split()]
        except OSError:  # a kernel without CONFIG_PROC_CHILDREN
            import psutil

            try:
                children = [c.pid for c in psutil.Process(handle.pid).children()]
            except psutil.Error:
                return None
        return children[0] if children else None

    def signal(self, handle: TaskHandle, signame: str) -> None:
        """To the task through its launcher (Nomad's executor signals the task's init process);
        SIGKILL, which the launcher cannot forward, is a kill of the whole task."""
        if signal_number(signame) == _signal.SIGKILL:
            self.kill(handle)
            return
        super().signal(handle, signame)

    def exec_in_task(self, handle: TaskHandle, command: str, args: tuple[str, ...], timeout_s: float,
                     notify: ExecNotify, *, task_dir: str, env: dict[str, str], user: str = "",
                     enter: str = "") -> None:
        """Run *command* inside the running task as ``nomad alloc exec`` does: through the launcher's
        ``enter`` helper (its cgroups, namespaces, chroot, user and capabilities; *enter* is the
        runner's enter_spec JSON); answered through *notify* (the helper exits as the command did)."""
        try:
            spec = json.loads(enter) if enter else {}
        except ValueError:
            spec = {}
        if not spec or "error" in spec:
            notify(0, str(spec.get("error") or "task is not running"))
            return
        spec = {**spec, "task_dir": os.path.abspath(task_dir), "env": {**host_env(self.env_denylist), **env},
                "argv": [command, *args], "tty": False}
        run_in_thread(f"exec {handle.task_name}", lambda: _run_entered(spec, timeout_s, self._clock), notify)

    def kill(self, handle: TaskHandle) -> None:
        """SIGKILL to every process in the task's cgroups, then to its launcher."""
        self._kill_cgroups(self._task_cgroups(handle))
        super().kill(handle)

    def stats(self, handle: TaskHandle) -> dict[str, Any]:
        """The cgroup's memory (RSS and usage) and CPU (percent of one core since the last call)."""
        paths = self._task_cgroups(handle)
        cg = self._cgroups
        if cg is None or not paths or not os.path.isdir(paths[0]) or self._same_process(handle) is False:
            return {}
        try:
            if cg.mode == "v2":
                base = paths[0]
                usage = int(_read(os.path.join(base, "memory.current")))
                mstat = _kv(_read(os.path.join(base, "memory.stat")))
                rss = mstat.get("anon", 0)
                cpu_ns = _kv(_read(os.path.join(base, "cpu.stat"))).get("usage_usec", 0) * 1000
                procs = _read(os.path.join(base, "cgroup.procs")).split()
            else:
                by = cg.by_controller(paths)
                usage = int(_read(os.path.join(by["memory"], "memory.usage_in_bytes")))
                mstat = _kv(_read(os.path.join(by["memory"], "memory.stat")))
                rss = mstat.get("total_rss", mstat.get("rss", 0))
                cpu_ns = int(_read(os.path.join(by["cpuacct"], "cpuacct.usage"))) if "cpuacct" in by else 0
                procs = _read(os.path.join(by["memory"], "cgroup.procs")).split()
        except (OSError, ValueError, KeyError):
            return {}
        key = (handle.pid, handle.start_time)
        now = self._clock()
        last = self._cpu_seen.get(key)
        self._cpu_seen[key] = (now, cpu_ns)
        cpu = 0.0
        if last is not None and now > last[0]:
            cpu = max(0.0, (cpu_ns - last[1]) / 1e9 / (now - last[0]) * 100.0)
        return {"pid": handle.pid, "cpu_percent": cpu, "rss_bytes": rss, "memory_usage_bytes": usage,
                "processes": len(procs)}

    # ------------------------------------------------------------ helpers
    def _launch_status(self, fd: int, proc: subprocess.Popen[bytes]) -> str | None:
        """None once the command runs (the pipe closed with nothing said); else why it did not."""
        chunks: list[bytes] = []
        deadline = self._clock() + self.launch_timeout_s
        try:
            while True:
                left = deadline - self._clock()
                if left <= 0:
                    proc.kill()
                    return f"the task was not running after {self.launch_timeout_s:g} s"
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                data = os.read(fd, 4096)
                if not data:
                    break
                chunks.append(data)
        finally:
            _close(fd)
        if chunks:
            return b"".join(chunks).decode("utf-8", "replace")
        code = proc.poll()
        if code == 127 and not chunks:  # the launcher itself failed before it could say why
            return "the launcher failed before the command ran"
        return None

    def _task_cgroups(self, handle: TaskHandle) -> list[str]:
        if self._cgroups is None:
            self._cgroups, _ = detect_cgroups()
        if self._cgroups is None:
            return []
        paths = self._cgroups.task_paths(handle.alloc_id, handle.task_name)
        extra = self._cgroups.cpuset_path(handle.alloc_id, handle.task_name)
        return [*paths, extra] if extra is not None and os.path.isdir(extra) else paths

    def _make_cgroups(self, cg: Cgroups, alloc_id: str, task: str, resources: TaskResources) -> list[str]:
        """Create the task's cgroups and write its limits (Nomad's executor configureCgroups)."""
        paths = cg.task_paths(alloc_id, task)
        hard, soft = memory_limits(max(0, resources.memory_mb), max(0, resources.memory_max_mb))
        shares = max(0, resources.cpu)
        if self.total_compute_mhz >= MAX_CPU_SHARES:
            shares = int(shares / self.total_compute_mhz * MAX_CPU_SHARES)
        shares = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
        self._kill_cgroups(paths)  # a previous run's leftovers (an agent killed mid-task): not this run's
        self._remove_cgroups(paths)
        try:
            if cg.mode == "v2":
                parent = os.path.dirname(paths[0])
                os.makedirs(parent, exist_ok=True)
                _enable_controllers(cg.root, parent)
                os.mkdir(paths[0])
                base = paths[0]
                if hard:
                    _write(os.path.join(base, "memory.max"), str(hard))
                if soft:
                    _write(os.path.join(base, "memory.low"), str(soft))
                if resources.cores and cg.cpuset:
                    _enable_controllers(cg.root, parent, ("cpuset",))
                    _write(os.path.join(base, "cpuset.cpus"), cpuset(resources.cores))
                # cgroups' ConvertCPUSharesToCgroupV2Value: shares [2, 262144] -> weight [1, 10000]
                _write(os.path.join(base, "cpu.weight"), str(1 + ((shares - 2) * 9999) // 262142))
                return paths
            for ctrl, p in cg.by_controller(paths).items():
                os.makedirs(p)
                if ctrl == "memory":
                    if hard:
                        _write(os.path.join(p, "memory.limit_in_bytes"), str(hard))
                    if soft:
                        _write(os.path.join(p, "memory.soft_limit_in_bytes"), str(soft))
                    try:  # Nomad disables swap for the task where the kernel lets it
                        _write(os.path.join(p, "memory.swappiness"), "0")
                    except OSError:
                        pass
                elif ctrl == "cpu":
                    _write(os.path.join(p, "cpu.shares"), str(shares))
            where = cg.cpuset_path(alloc_id, task) if resources.cores else None
            if where is not None:
                paths = [*paths, where]  # (removed with the others if it cannot be made)
                _make_cpuset_v1(os.path.join(cg.root, "cpuset"), where, cpuset(resources.cores))
        except OSError as exc:
            self._remove_cgroups(paths)
            raise DriverError(f"{self.name}: failed to configure the task's cgroups: {exc}",
                              recoverable=True) from exc
        return paths

    def _procs_in(self, paths: list[str]) -> set[int]:
        pids: set[int] = set()
        for p in paths:
            try:
                pids.update(int(x) for x in _read(os.path.join(p, "cgroup.procs")).split())
            except (OSError, ValueError):
                pass
        return pids

    def _kill_cgroups(self, paths: list[str]) -> None:
        """SIGKILL everything in the task's cgroups (v2: cgroup.kill; v1: frozen first, so none forks)."""
        if not paths:
            return
        if self._cgroups is not None and self._cgroups.mode == "v2" and os.path.exists(
                os.path.join(paths[0], "cgroup.kill")):
            try:
                _write(os.path.join(paths[0], "cgroup.kill"), "1")
            except OSError:
                pass
        freezer = self._cgroups.by_controller(paths).get("freezer") if self._cgroups is not None else None
        for _ in range(CGROUP_KILL_ROUNDS):
            pids = self._procs_in(paths)
            if not pids:
                return
            if freezer is not None:
                _try_write(os.path.join(freezer, "freezer.state"), "FROZEN")
            for pid in sorted(pids):
                try:
                    os.kill(pid, _signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if freezer is not None:
                _try_write(os.path.join(freezer, "freezer.state"), "THAWED")
            end = self._clock() + CGROUP_KILL_WAIT_S
            while self._procs_in(paths) and self._clock() < end:
                self._sleep(CGROUP_KILL_POLL_S)
        left = self._procs_in(paths)
        if left:
            log.warning("exec: processes %s of a task survived SIGKILL of its cgroup", sorted(left))

    def _remove_cgroups(self, paths: list[str]) -> None:
        for p in paths:
            try:
                os.rmdir(p)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("exec: cannot remove cgroup %s: %s", p, exc)


def _with_ooms(result: ExitResult, ooms: int) -> ExitResult:
    """Nomad's executor marks the exit OOMKilled when its container saw an OOM event; a task the killer
    itself ended says so as Nomad's docker driver does ("OOM Killed")."""
    if not ooms:
        return result
    return dataclasses.replace(result, oom_killed=True,
                               err=result.err or (OOM_KILLED if result.signal else ""))


def _close(*fds: int) -> None:
    for fd in fds:
        os.closerange(fd, fd + 1)


def _try_write(path: str, value: str) -> None:
    try:
        _write(path, value)
    except OSError:
        pass


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def _make_cpuset_v1(mount: str, where: str, cpus: str) -> None:
    """v1: the task's cpuset cgroup *where* confined to *cpus*; each directory made on the way there takes
    its parent's cpus and memory nodes (a v1 cpuset takes no process before both are set)."""
    rel = os.path.relpath(where, mount)
    node = mount
    for part in rel.split(os.sep):
        child = os.path.join(node, part)
        if not os.path.isdir(child):
            os.mkdir(child)
            mems = _read(os.path.join(node, "cpuset.mems")).strip()
            _write(os.path.join(child, "cpuset.cpus"), cpus if child == where
                   else _read(os.path.join(node, "cpuset.cpus")).strip())
            _write(os.path.join(child, "cpuset.mems"), mems)
        node = child
    _write(os.path.join(where, "cpuset.cpus"), cpus)


def _enable_controllers(root: str, parent: str, controllers: tuple[str, ...] = ("memory", "cpu", "pids")
                        ) -> None:
    """v2: turn the memory, cpu and pids controllers (or *controllers*) on down to *parent*, so its
    children have them."""
    rel = os.path.relpath(parent, root)
    node = root
    for part in ([] if rel == "." else rel.split(os.sep)):
        try:
            available = _read(os.path.join(node, "cgroup.controllers")).split()
        except OSError:
            return
        want = [c for c in controllers if c in available]
        if want:
            _try_write(os.path.join(node, "cgroup.subtree_control"), " ".join(f"+{c}" for c in want))
        node = os.path.join(node, part)
    try:
        available = _read(os.path.join(node, "cgroup.controllers")).split()
    except OSError:
        return
    want = [c for c in controllers if c in available]
    if want:
        _try_write(os.path.join(node, "cgroup.subtree_control"), " ".join(f"+{c}" for c in want))


__all__ = [
    "CHROOT_TASK_DIRS",
    "DEFAULT_CHROOT_ENV",
    "EXIT_SIGNAL_BASE",
    "Cgroups",
    "DriverHealth",
    "ExecDriver",
    "ExecPluginConfig",
    "detect_cgroups",
    "exec_health",
    "exec_plugin_config",
    "memory_limits",
    "parse_exec_config",
    "task_capabilities",
]


def _run_entered(spec: dict[str, Any], timeout_s: float, clock: Callable[[], float]) -> tuple[int, str]:
    """The launcher's ``enter`` helper running spec["argv"] in the task, to its end (blocking: a thread
    of its own): the spec through a pipe, a failure before the command runs on the status pipe;
    *clock* is the driver's (monotonic) clock."""
    from actors.client import exec_launcher

    status_r, status_w = os.pipe()
    spec_r, spec_w = os.pipe()
    child_ends, mine = [spec_r, status_w], [spec_w]

    def handshake(proc: subprocess.Popen[bytes]) -> str:
        # Cooperative I/O (select, which gevent patches in the agent): a blocking read would stall it.
        for fd in child_ends:
            os.close(fd)
        child_ends.clear()
        os.set_blocking(spec_w, False)
        os.set_blocking(status_r, False)
        deadline = clock() + ENTER_TIMEOUT_S
        data = memoryview(json.dumps(spec).encode())
        while data and clock() < deadline:
            if select.select([], [spec_w], [], max(0.0, deadline - clock()))[1]:
                try:
                    data = data[os.write(spec_w, data):]
                except BlockingIOError:
                    continue
                except OSError:
                    break  # the helper is gone: its status says why
        os.close(spec_w)
        mine.clear()
        said, ended = b"", False
        while clock() < deadline:
            if select.select([status_r], [], [], max(0.0, deadline - clock()))[0]:
                try:
                    chunk = os.read(status_r, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    ended = True
                    break
                said += chunk
        if said or not ended:
            return said.decode("utf-8", "replace") or \
                f"the command was not running in the task after {ENTER_TIMEOUT_S:g} s"
        return ""

    try:
        argv = [sys.executable, "-I", "-S", exec_launcher.__file__, "enter", str(spec_r), str(status_w)]
        return run_command(argv, "/", {}, timeout_s, popen_extra={"pass_fds": (spec_r, status_w)},
                           before_wait=handshake)
    finally:
        for fd in (*child_ends, *mine, status_r):
            try:
                os.close(fd)
            except OSError:
                pass
