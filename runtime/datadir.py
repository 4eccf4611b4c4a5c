"""The agent's data directory: creation, the single-agent lock, persisted IDs.

Layout (Nomad's; NOMAD.md §2.1, §6.2)::

    <data_dir>/                 0700 when we create it
    <data_dir>/agent.lock       held (flock) by the running agent; holds its PID
    <data_dir>/server/node-id   the server's NodeID (0600)
    <state_dir>/client-id       the client's node ID (0600); state_dir defaults
    <state_dir>/secret-id       to <data_dir>/client (0700)

IDs are written once, before the agent starts, and made durable (write to a
temporary file, fsync, rename, fsync the directory) so a crash cannot
leave a half-written ID: a restarted agent resumes as the same node.  In
dev mode nothing is persisted (Nomad: "no persisted node ID").

The lock is ``flock`` on an open file: the kernel releases it when the
process dies however it dies, so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass

from runtime.config import Config

__all__ = ["AgentState", "DataDirError", "open_state"]

LOCK_FILE = "agent.lock"
DIR_MODE = 0o700  # the and Nomad's state_dir mode: only the agent reads its state
FILE_MODE = 0o600  # Nomad writes node-id, client-id and secret-id 0600


class DataDirError(Exception):
    """The data directory cannot be used; the message is one line for the operator."""


@dataclass(slots=True)
class AgentState:
    """What the process holds on to for the agent's life."""

    data_dir: str | None  # None: a client with explicit state/alloc dirs and no data_dir
    temporary: bool  # a dev-mode temp dir, removed at exit
    node_id: str  # server NodeID, "" if not a server
    client_id: str  # client node ID, "" if not a client
    secret_id: str
    lock_fd: int | None

    def release(self) -> None:
        """Drop the lock and remove a temporary data dir (idempotent)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        if self.temporary and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.temporary = False


def open_state(cfg: Config) -> AgentState:
    """Create and lock the data dir, then load or create the persisted IDs."""
    data_dir, temporary = cfg.data_dir, False
    if data_dir is None and cfg.dev_mode:
        data_dir, temporary = tempfile.mkdtemp(prefix="nomad-agent-dev-"), True  # 0700
    lock_dir = data_dir or cfg.client.state_dir
    lock_fd = None
    try:
        if lock_dir is not None:
            _ensure_dir(lock_dir)
            lock_fd = _lock(lock_dir)
        persist = not cfg.dev_mode
        node_id = client_id = secret_id = ""
        if cfg.server.enabled:
            server_dir = cfg.server.data_dir or os.path.join(data_dir or "", "server")
            node_id = _load_or_create(server_dir, "node-id", persist)
        if cfg.client.enabled:
            state_dir = cfg.client.state_dir or os.path.join(data_dir or "", "client")
            client_id = _load_or_create(state_dir, "client-id", persist)
            secret_id = _load_or_create(state_dir, "secret-id", persist)
    except BaseException:
        if lock_fd is not None:
            os.close(lock_fd)
        if temporary and data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return AgentState(data_dir=data_dir, temporary=temporary, node_id=node_id,
                      client_id=client_id, secret_id=secret_id, lock_fd=lock_fd)


def _ensure_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    except OSError as e:
        raise DataDirError(f'cannot create data directory "{path}": {e.strerror}') from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise DataDirError(f'data directory "{path}" is not writable by this user')


def _lock(path: str) -> int:
    lock_path = os.path.join(path, LOCK_FILE)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as e:
        raise DataDirError(f'cannot open lock file "{lock_path}": {e.strerror}') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_pid(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f"pid {holder}" if holder else "another process"
            raise DataDirError(f'data_dir "{path}" is in use by another agent ({who}); '
                               f"each agent needs its own data_dir") from None
        raise DataDirError(f'cannot lock "{lock_path}": {e.strerror}') from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        return ""


def _load_or_create(directory: str, name: str, persist: bool) -> str:
    """Nomad's setupNodeID / ensureNodeID: a saved UUID wins; else make and save one."""
    if not persist:
        return str(uuid.uuid4())
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as fh:
            saved = fh.read().strip().lower()
    except FileNotFoundError:
        saved = ""
    except OSError as e:
        raise DataDirError(f'cannot read "{path}": {e.strerror}') from None
    if saved:
        try:
            uuid.UUID(saved)
        except ValueError:
            raise DataDirError(f'"{path}" does not hold a valid UUID: "{saved[:40]}"') from None
        return saved
    new = str(uuid.uuid4())
    _ensure_dir(directory)
    _write_durably(path, new)
    return new


def _write_durably(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise DataDirError(f'cannot write "{path}": {e.strerror}') from None
