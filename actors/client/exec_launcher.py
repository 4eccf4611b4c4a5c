"""The ``exec`` driver's launcher: the small process that isolates one task and waits for it.

Run by path (``python -I -S exec_launcher.py <spec fd> <status fd>``: the spec, JSON, is
read from the first pipe, never put on a command line every user can read), never imported by
the agent: it needs only the standard library, starts fast and does not
depend on the agent's working directory.  It plays the part of Nomad's
executor for one task:

1. it unshares new mount, PID and IPC namespaces (``pid_mode``/``ipc_mode``
   "host" keep the host's) and forks; the child is PID 1 of the new PID
   namespace;
2. the child joins the task's cgroups (the driver made them and wrote the
   limits), makes every mount private, bind-mounts the ``chroot_env`` entries
   read-only (every mount below them too) and the allocation's shared ``alloc/``
   into the task directory, mounts a small ``/dev``, ``/proc`` (its kernel
   settings read-only, kernel memory and keys masked, as runc) and a read-only
   ``/sys``, pivot_roots into the task directory and detaches the host's tree
   (a chroot() alone can be climbed out of), sets the capability bounding (and
   for a non-root user the ambient) set and no_new_privs, switches to the
   task's user and executes the command;
3. the launcher stays outside the cgroup, forwards every signal it gets to
   the task and exits as the task did (its code, or killed by the same signal).

``exec_launcher.py enter <spec fd> <status fd>`` runs a command inside a
running task instead (``nomad alloc exec``): see :func:`enter_main`.
``exec_launcher.py raw <spec fd> <status fd>`` is the ``raw_exec`` driver's
launcher: the task runs unisolated, in a process group of its own, and is
waited for the same way: see :func:`raw_main`.

Before it exits, a task's launcher records how the task ended -- its code
or signal, and when -- in :data:`EXIT_RECORD` in the task directory (Nomad's
executor keeps its ProcessState the same way: it outlives the agent), so a
client restarted after the task ended reports the task's real exit, not an
unknown one.  The record is written to a temporary file, synced and renamed
over the old one: a reader sees a whole record or none.

A failure before the command runs (a mount, the user, a missing command) is
written to the status pipe and the child exits 127; the
driver reads that pipe until it closes (the close-on-exec end closes when the
command runs), so a failed start is an error with its cause, never a hang.
"""

from __future__ import annotations

import ctypes
import fcntl  # imported here, not where used: after the pivot_root no module can be found
import json
import os
import re
import resource
import signal
import sys
import termios
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_STRICTATIME = 0x20, 0x1000, 0x4000, 0x40000, 0x1000000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_SLAVE = 0x400, 0x800, 0x200000, 0x80000
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
# pivot_root has no glibc wrapper: its syscall number by machine (asm/unistd.h).
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "i686": 217, "i386": 217, "armv7l": 218,
                  "ppc64le": 203, "s390x": 217, "riscv64": 41}
# runc's defaults (Nomad's executor sets the first two of each): parts of /proc the task may read but
# not write (the host kernel's settings), and what it may not see at all (kernel memory, keys, timers).
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
# A mount's flags a read-only remount keeps (mountinfo's per-mount options).
KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
              "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 8, 24, 47
PR_CAP_AMBIENT_RAISE = 2
CAP_VERSION_3 = 0x20080522
# Host devices a task sees in its /dev (the usual container set).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
EXIT_SETUP_FAILED = 127
# The task's exit, as its launcher saw it (JSON: launcher_pid, task_pid, exit_code, signal, time), in
# the task directory; the driver removes it before each start (drivers.read_exit_record reads it).
EXIT_RECORD = ".exit-status.json"

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()
    _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {src or fstype} on {target}")


def _mountpoint(path: str, is_dir: bool) -> None:
    """An empty directory (or file) to mount on; a symlink the task left there is removed, never followed."""
    if os.path.islink(path):
        os.unlink(path)
    if is_dir:
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))


def _inside(root: str, rel: str) -> str:
    path = os.path.normpath(os.path.join(root, rel.lstrip("/")))
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        raise SetupError(f"path {rel!r} escapes the task directory")
    return path


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes are octal escapes there."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts_under(target: str) -> list[tuple[str, int]]:
    """(mount point, flags to keep) of *target* and of every mount below it, parents first (the
    order of /proc/self/mountinfo, which lists a mount after the one it is on)."""
    out = []
    prefix = target.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 6:
                continue
            point = _unescape(fields[4])
            if point == target or point.startswith(prefix):
                flags = 0
                for opt in fields[5].split(","):
                    flags |= KEPT_FLAGS.get(opt, 0)
                out.append((point, flags))
    return out


def _no_devices(target: str) -> None:
    """*target* and every mount below it nodev and nosuid (read-only ones stay read-only): the task
    holds CAP_MKNOD (Nomad's default set), and with no devices cgroup here a node it made for a host
    disk could be opened; on a nodev mount it cannot.  The task's own devices are bound one by one
    (their own mounts, from the host's /dev) and keep working."""
    for point, flags in _mounts_under(target):
        ro = MS_RDONLY if _is_readonly(point) else 0
        try:
            _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_NODEV | MS_NOSUID | ro | flags)
        except SetupError:
            # Not remountable (a locked mount): left out of the task's view rather than left with devices.
            if point == target or _libc.umount2(point.encode("utf-8", "surrogateescape"), MNT_DETACH) != 0:
                raise


def _is_readonly(point: str) -> bool:
    return bool(os.statvfs(point).f_flag & os.ST_RDONLY)


def _bind_readonly(src: str, target: str) -> None:
    """Bind *src* (with every mount below it) on *target*, all of it read-only and nosuid: each
    submount is remounted on its own, as runc does (a recursive bind copies each mount's own flags)."""
    _mount(src, target, None, MS_BIND | MS_REC)
    for point, flags in _mounts_under(target):
        try:
            _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | flags)
        except SetupError:
            # A submount the kernel will not remount (a locked one) is left out of the task's view
            # instead: it must not stay writable there.  The top one is the entry itself: an error.
            if point == target or _libc.umount2(point.encode("utf-8", "surrogateescape"), MNT_DETACH) != 0:
                raise


def _protect_proc(root: str, dev_null: str) -> None:
    """runc's readonlyPaths and maskedPaths in the task's /proc and /sys: the host kernel's settings
    are read-only (kernel.core_pattern is not namespaced: writing it runs a program as host root), and
    kernel memory, keys and timers are hidden (/dev/null over a file, an empty read-only tmpfs over a
    directory)."""
    for rel in READONLY_PATHS:
        path = root + rel
        if not os.path.exists(path):
            continue
        _mount(path, path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for rel in MASKED_PATHS:
        path = root + rel
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=555")
        elif os.path.exists(path):
            _mount(dev_null, path, None, MS_BIND)


def _build_root(spec: dict) -> None:
    root = spec["task_dir"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the host's mounts
    # The task dir bound on itself: the mount the task's root becomes (pivot_root needs a mount point);
    # what is mounted below from here on is on it, and goes with it.
    _mount(root, root, None, MS_BIND | MS_REC)
    _no_devices(root)
    for src, dst in spec["chroot_env"]:
        if not os.path.exists(src):
            continue  # as Nomad: an entry the host lacks is skipped
        target = _inside(root, dst)
        is_dir = os.path.isdir(src)
        # Parents inside the task dir (a dst like /etc/ssl/certs) are plain directories.
        parent = os.path.dirname(target)
        if parent != root:
            _mountpoint(parent, True)
        _mountpoint(target, is_dir)
        _bind_readonly(src, target)
    shared = os.path.join(root, "alloc")
    _mountpoint(shared, True)
    _mount(spec["alloc_dir"], shared, None, MS_BIND)
    _no_devices(shared)
    dev = os.path.join(root, "dev")
    _mountpoint(dev, True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _mountpoint(os.path.join(dev, name), False)
            _mount(f"/dev/{name}", os.path.join(dev, name), None, MS_BIND)
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                     ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        os.symlink(to, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"))
    if spec["ipc_private"]:
        _mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "mode=1777,size=65536k")
    else:
        _mount("/dev/shm", os.path.join(dev, "shm"), None, MS_BIND)
    os.mkdir(os.path.join(dev, "pts"))
    try:  # a terminal for `nomad alloc exec -t`; a kernel without it only loses that
        _mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620")
    except SetupError:
        pass
    proc = os.path.join(root, "proc")
    _mountpoint(proc, True)
    _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys_dir = os.path.join(root, "sys")
    _mountpoint(sys_dir, True)
    try:  # read-only; a host that refuses it (a nested container) leaves /sys empty
        _mount("sysfs", sys_dir, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except SetupError:
        pass
    dev_null = os.path.join(dev, "null")
    if not os.path.exists(dev_null):
        raise SetupError("the host has no /dev/null to mask /proc with")
    _protect_proc(root, dev_null)


def _pivot_root(root: str) -> None:
    """Make the task dir the root of the task's mount namespace and drop the host's tree from it, as
    runc's pivotRoot: pivot_root(".", ".") stacks the old root on the new one; it is then made a
    slave (no unmount propagates to the host) and detached.  Nothing is left to climb back to."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise SetupError(f"pivot_root: no syscall number known for {os.uname().machine}")
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        _check(_libc.syscall(number, b".", b"."), f"pivot_root {root}")
        os.fchdir(old_root)
        _mount(None, ".", None, MS_SLAVE | MS_REC)
        _check(_libc.umount2(b".", MNT_DETACH), "detaching the host's root")
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _become_task_user(spec: dict, last_cap: int, parent: int, parent_gone: str) -> None:
    """Drop to the task's user with its capabilities (the task itself, or a command `alloc exec` runs
    beside it): the bounding set first, then groups, gid and uid, the ambient set for a non-root user,
    no_new_privs, and death with *parent* (SetupError *parent_gone* if it already ended)."""
    uid = spec["uid"]
    _bound_caps(spec["bounding"], last_cap)
    if uid != 0:
        _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keeping capabilities")
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(uid)
    if uid != 0:
        _ambient_caps(spec["ambient"])
    # No setuid-root or file-capability program gives the task more than it has (runc's noNewPrivileges).
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
    # The parent gone, so is the task (set after the user switch, which clears it).
    _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        raise SetupError(parent_gone)


def _bound_caps(keep: list[int], last: int) -> None:
    for cap in range(last + 1):
        if cap not in keep:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")


def _ambient_caps(caps: list[int]) -> None:
    """After the switch to a non-root user: *caps* permitted, inheritable and ambient (kept over execve)."""
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    data = (_CapData * 2)()
    for i in range(2):
        part = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = part
    _check(_libc.capset(ctypes.byref(_CapHeader(CAP_VERSION_3, 0)), data), "capset")
    for cap in caps:
        _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0),
               f"raising ambient capability {cap}")


def _lookup(cmd: str, host_task_dir: str) -> str:
    """Nomad's lookupTaskBin, inside the chroot: local/, then the task dir's root, then (a bare name)
    /usr/local/bin, /usr/bin, /bin -- never the agent's PATH.  Nomad's makeExecutable follows."""
    rel = cmd.lstrip("/")
    candidates = [os.path.join("/local", rel), os.path.join("/", rel)]
    if "/" not in cmd:
        candidates += [os.path.join(d, cmd) for d in ("/usr/local/bin", "/usr/bin", "/bin")]
    for path in candidates:
        if os.path.isfile(path):
            mode = os.stat(path).st_mode & 0o7777
            if mode & 0o555 != 0o555:
                try:
                    os.chmod(path, mode | 0o555)
                except OSError as exc:
                    raise SetupError(f"error making {path!r} executable: {exc.strerror}") from None
            return path
    if "/" in cmd:
        raise SetupError(f"file {cmd} not found under path {host_task_dir}")
    raise SetupError(f"file {cmd} not found under path")


def _exec_task(spec: dict) -> None:
    """In the child: isolate, then become the task.  Returns only by raising."""
    launcher = os.getppid()
    os.setsid()
    with open("/proc/sys/kernel/cap_last_cap") as f:  # read on the host's /proc, before the pivot
        last_cap = int(f.read())  # the launcher gone: so is the task
    for procs in spec["cgroup_procs"]:
        try:
            with open(procs, "w") as f:
                f.write("0")
        except OSError as exc:
            raise SetupError(f"joining cgroup {os.path.dirname(procs)}: {exc.strerror}") from None
    _build_root(spec)
    _pivot_root(spec["task_dir"])
    try:
        os.chdir(spec["work_dir"])
    except OSError as exc:
        raise SetupError(f"work_dir {spec['work_dir']!r}: {exc.strerror}") from None
    argv = [_lookup(spec["argv"][0], spec["task_dir"]), *spec["argv"][1:]]
    _become_task_user(spec, last_cap, launcher, "the launcher ended before the task started")
    env = spec["env"]
    _default_signals()
    try:
        os.execve(argv[0], argv, env)
    except FileNotFoundError:  # a script whose interpreter is not in the chroot
        raise SetupError(f"executing {argv[0]!r}: its interpreter is not in the task's chroot") from None
    except PermissionError:
        raise SetupError(f"command {argv[0]!r} is not executable by user {spec['user']!r}") from None
    except OSError as exc:
        raise SetupError(f"executing {argv[0]!r}: {exc.strerror}") from None


def _default_signals() -> None:
    """The task starts with default signal dispositions (Python ignores SIGPIPE) and nothing blocked."""
    for sig in _signals():
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _signals() -> list[int]:
    """The signals a process can catch or block (not glibc's reserved 32 and 33 before SIGRTMIN)."""
    return sorted(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
                  and not signal.SIGRTMIN > s >= 32)


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, message.encode("utf-8", "replace")[:4000])
    except OSError:
        pass


# ------------------------------------------------------------ entering a running task (alloc exec)
# ``exec_launcher.py enter <spec fd> <status fd>``: a command run inside a running task, as Nomad's
# executor ExecStreaming runs it in the task's container: in the task's cgroups, its IPC, PID and mount
# namespaces and its chroot, in its work_dir, as its user with its capabilities and environment.  The
# helper joins the namespaces, forks (the child is in the task's PID namespace) and waits, forwarding
# signals and exiting as the command did; a failure before the command runs goes to the status pipe.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAMESPACES = (("ipc", CLONE_NEWIPC), ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS))  # mnt last


def _join_task(spec: dict) -> None:
    """In the helper: the task's cgroups, then its namespaces (those it does not share with us)."""
    pid = spec["pid"]
    joins = []
    try:
        for name, flag in NAMESPACES:
            fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            if os.fstat(fd).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                joins.append((fd, flag, name))
            else:  # pid_mode / ipc_mode "host": the task shares ours
                os.close(fd)
        # The task's root directory: its mount namespace's root since the pivot_root (after joining
        # that namespace this process's root is there too; the fd says so whatever the mode).
        spec["root_fd"] = os.open(f"/proc/{pid}/root", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        # The namespaces are the task's only if the pid still is (not reused since the driver looked).
        if proc_start(pid) != spec["pid_start"]:
            raise OSError(3, "No such process")
    except OSError as exc:
        raise SetupError(f"task process {pid} is gone: {exc.strerror}") from None
    for procs in spec["cgroup_procs"]:
        try:
            with open(procs, "w") as f:
                f.write("0")
        except OSError as exc:
            raise SetupError(f"joining cgroup {os.path.dirname(procs)}: {exc.strerror}") from None
    for fd, flag, name in joins:
        _check(_libc.setns(fd, flag), f"joining the task's {name} namespace")
        os.close(fd)


def proc_start(pid: int) -> str:
    """When *pid* started (/proc/<pid>/stat's starttime, clock ticks since boot): with the pid, an
    identity no later process has."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _find(cmd: str, path: str) -> str:
    """The command in the task's root: a path as given, a bare name on $PATH (Go's exec.LookPath)."""
    if "/" in cmd:
        return cmd
    for d in (path or DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", cmd)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SetupError(f'exec: "{cmd}": executable file not found in $PATH')


def _enter_command(spec: dict, last_cap: int) -> None:
    """In the child (inside the task's PID namespace): its chroot, user and capabilities, then exec."""
    helper = os.getppid()
    # The task's root (its pivoted task dir), opened before the namespaces were joined.
    os.fchdir(spec["root_fd"])
    _check(_libc.chroot(b"."), "entering the task's root")
    os.close(spec["root_fd"])
    try:
        os.chdir(spec["work_dir"])
    except OSError as exc:
        raise SetupError(f"work_dir {spec['work_dir']!r}: {exc.strerror}") from None
    if spec["tty"]:  # the pty (fd 0) becomes the controlling terminal of a session of its own
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    env = spec["env"]
    argv = [_find(spec["argv"][0], env.get("PATH", "")), *spec["argv"][1:]]
    _become_task_user(spec, last_cap, helper, "the exec session ended before the command started")
    _default_signals()
    try:
        os.execve(argv[0], argv, env)
    except FileNotFoundError:  # as the raw_exec path says it (a script's interpreter missing too)
        raise SetupError(f'exec: "{spec["argv"][0]}": executable file not found in $PATH') from None
    except PermissionError:
        raise SetupError(f'exec: "{spec["argv"][0]}": permission denied') from None
    except OSError as exc:
        raise SetupError(f'exec: "{spec["argv"][0]}": {exc.strerror}') from None


def _read_spec(spec_fd: int, status: int) -> dict:
    chunks = []
    while chunk := os.read(spec_fd, 1 << 16):
        chunks.append(chunk)
    os.close(spec_fd)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        _report(status, f"bad launch spec: {exc}")
        os._exit(EXIT_SETUP_FAILED)


def enter_main(spec_fd: int, status: int) -> None:
    spec = _read_spec(spec_fd, status)
    os.set_inheritable(status, False)  # the command's execve closes it: "started" for the session
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        _join_task(spec)
    except (SetupError, OSError, ValueError) as exc:
        _report(status, str(exc))
        os._exit(EXIT_SETUP_FAILED)
    catch = [s for s in _signals() if s != signal.SIGCHLD]
    signal.pthread_sigmask(signal.SIG_BLOCK, catch)
    pid = os.fork()
    if pid == 0:
        try:
            _enter_command(spec, last_cap)
        except SetupError as exc:
            _report(status, str(exc))
        except BaseException as exc:
            _report(status, f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    os.close(status)
    _wait_as(pid, catch)


# ------------------------------------------------------------ raw_exec's launcher
# ``exec_launcher.py raw <spec fd> <status fd>``: the task runs as raw_exec runs it -- no isolation, in
# its task directory, in a session (so a process group) of its own that the driver signals directly,
# as its user when one is given -- and the launcher waits for it and records its exit.  The spec
# (JSON): argv, env, cwd, task_dir, and uid, gid, groups (null uid: the launcher's own user).  On the
# status pipe the launcher writes the task's pid (a line of digits); a failure before the command runs
# is a JSON object (errno, strerror, filename, or a message) from the child, which then exits 127.


def _exec_raw(spec: dict, launcher: int) -> None:
    """In the child: become the task.  Returns only by raising."""
    os.setsid()  # the task leads its own process group: signals to it reach its children too
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:  # as subprocess says it: the directory is the file that failed
        raise OSError(exc.errno, exc.strerror, spec["cwd"]) from None
    if spec.get("uid") is not None:  # least privilege: the task's own user and groups, not ours
        os.setgroups(spec["groups"])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
    # The launcher gone, so is the task: nothing would record its exit (set after the user switch,
    # which clears it).
    _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != launcher:
        raise SetupError("the launcher ended before the task started")
    _default_signals()
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])  # a bare name is looked up on the task's own PATH
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, argv[0]) from None


def raw_main(spec_fd: int, status: int) -> None:
    spec = _read_spec(spec_fd, status)
    os.set_inheritable(status, False)  # the command's execve closes it: "started" for the driver
    record = _record_dir(spec["task_dir"])
    catch = [s for s in _signals() if s != signal.SIGCHLD]
    signal.pthread_sigmask(signal.SIG_BLOCK, catch)
    launcher = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _exec_raw(spec, launcher)
        except OSError as exc:
            _report(status, json.dumps({"errno": exc.errno or 0, "strerror": exc.strerror or str(exc),
                                        "filename": exc.filename}))
        except BaseException as exc:
            _report(status, json.dumps({"message": f"{type(exc).__name__}: {exc}"}))
        os._exit(EXIT_SETUP_FAILED)
    _report(status, f"{pid}\n")
    os.close(status)
    _wait_as(pid, catch, record=record, group=True)


def _record_dir(task_dir: str) -> int:
    """The task directory, opened before anything is mounted or pivoted (the exec task's root moves
    this process's root too): the exit record is written through it.  -1: none is written."""
    try:
        return os.open(task_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1


def _record_exit(dir_fd: int, task_pid: int, status_word: int) -> None:
    """Write :data:`EXIT_RECORD` atomically: a temporary file, synced, renamed over the old record, and
    the directory synced.  Whatever fails leaves no record (the client then knows nothing of the exit,
    as without a launcher)."""
    if os.WIFSIGNALED(status_word):
        sig = os.WTERMSIG(status_word)
        code = 128 + sig  # as Nomad's executor reports a task a signal ended
    else:
        sig, code = 0, os.WEXITSTATUS(status_word)
    data = json.dumps({"launcher_pid": os.getpid(), "task_pid": task_pid, "exit_code": code, "signal": sig,
                       "time": time.time()}).encode()
    tmp = f"{EXIT_RECORD}.{os.getpid()}.tmp"
    try:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, EXIT_RECORD, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError:
        pass


def main() -> None:
    if sys.argv[1] == "enter":
        enter_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    if sys.argv[1] == "raw":
        raw_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    spec_fd, status = int(sys.argv[1]), int(sys.argv[2])
    spec = _read_spec(spec_fd, status)
    os.set_inheritable(status, False)  # the command's execve closes it: "started" for the driver
    record = _record_dir(spec["task_dir"])
    flags = CLONE_NEWNS
    if spec["pid_private"]:
        flags |= CLONE_NEWPID
    if spec["ipc_private"]:
        flags |= CLONE_NEWIPC
    if _libc.unshare(flags) != 0:
        _report(status, f"unshare: {os.strerror(ctypes.get_errno())}")
        os._exit(EXIT_SETUP_FAILED)
    # Signals that arrive before the child exists wait, blocked, until they can be forwarded.
    catch = [s for s in _signals() if s != signal.SIGCHLD]
    signal.pthread_sigmask(signal.SIG_BLOCK, catch)
    pid = os.fork()
    if pid == 0:
        try:
            _exec_task(spec)
        except SetupError as exc:
            _report(status, str(exc))
        except BaseException as exc:
            _report(status, f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    os.close(status)
    _wait_as(pid, catch, record=record)


def _wait_as(pid: int, catch: list[int], *, record: int = -1, group: bool = False) -> None:
    """Forward every signal to *pid* (*group*: to its process group), wait for it, record its exit in
    the directory *record* when >= 0, and end as it did (its code, or its signal)."""
    send = os.killpg if group else os.kill

    def forward(signum: int, _frame: object) -> None:
        try:
            send(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    for sig in catch:
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, catch)
    while True:
        try:
            _, status_word = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if record >= 0:
        _record_exit(record, pid, status_word)
    if os.WIFSIGNALED(status_word):
        sig = os.WTERMSIG(status_word)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # end as the task did, without a core of our own
        signal.pthread_sigmask(signal.SIG_BLOCK, catch)
        if sig in catch:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        if sig in catch:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os._exit(128 + sig)  # a signal whose default is to carry on
    os._exit(os.WEXITSTATUS(status_word))


if __name__ == "__main__":
    main()
