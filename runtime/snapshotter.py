"""Encoding the state machine for a Raft snapshot, without holding up the Raft actor.

A snapshot must be the state at one applied index, and the state store
changes its records in place, so the encoding has to start from that moment's
memory.  Encoding 30 MB of state takes about 0.3 s; done in the Raft actor's
turn, nothing of Raft (heartbeats, appends, commits) moves meanwhile, and the
stall grows with the state until it outlasts an election timeout.

* :class:`ForkSnapshotter` (the agent): ``fork()`` gives a child process a
  copy-on-write image of that moment; the child encodes it and writes it to a
  pipe, while the parent's Raft actor carries on.  A greenlet reads the pipe
  and tells the actor the result.  Redis's BGSAVE works the same way.
* :class:`InlineSnapshotter` (the simulator, tests): encodes in the caller's
  turn and delivers the result *delay_s* later, through the runtime's timer,
  so the simulator exercises applies that land while a snapshot is in flight.

Either way the actor gets ``done(data, error)``'s message; ``data`` is None
when the encoding failed, and ``error`` then says why.
"""

from __future__ import annotations

import logging
import os
import signal
import struct
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("nomad.raft")

Done = Callable[[bytes | None, str], Any]  # builds the message the actor is told
_LENGTH = struct.Struct(">Q")
_MAX_FD = 1 << 20  # past any descriptor the process holds (closerange asks the kernel to close them all at once)
# Polling the child's pipe: the first pause after an empty read, doubling up to the second (a snapshot
# of a small state is read within a few milliseconds; a large one costs at most this much latency).
POLL_MIN_S = 0.002
POLL_MAX_S = 0.05
# Once the child's output ended, how long its exit status is waited for; a whole output does not
# need it (the length prefix says the snapshot is complete).
EXIT_WAIT_S = 5.0


class Snapshotter(Protocol):
    where: str  # where the encoding runs, for the log

    def start(self, env: Any, ref: Any, encode: Callable[[], bytes], done: Done) -> None:
        """Take ``encode()`` of the state as it is now; tell *ref* ``done(data, error)`` once ready."""
        ...


class InlineSnapshotter:
    """Encode now, in the caller's turn; the result arrives *delay_s* later (virtual time in the simulator)."""

    where = "in the Raft actor"

    def __init__(self, delay_s: float = 0.0) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        self.delay_s = delay_s

    def start(self, env: Any, ref: Any, encode: Callable[[], bytes], done: Done) -> None:
        try:
            msg = done(encode(), "")
        except Exception as exc:  # noqa: BLE001 -- reported to the actor, which logs and retries later
            msg = done(None, f"{type(exc).__name__}: {exc}")
        env.call_later(self.delay_s, ref, msg)


class ForkSnapshotter:
    """Encode in a forked child process; the parent reads the bytes from a pipe, cooperatively.

    ``timeout_s`` bounds a child that hangs (it is killed and the snapshot
    reported failed).
    Where ``fork`` is missing, or fails (no memory for the page tables, the
    process limit), it falls back to encoding inline, as before.
    """

    # A child past this is stuck, not slow: 30 MB encodes in about 0.3 s.
    DEFAULT_TIMEOUT_S = 600.0

    where = "in a child process"

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self.forks = 0
        self.fallbacks = 0

    def start(self, env: Any, ref: Any, encode: Callable[[], bytes], done: Done) -> None:
        import gevent
        from gevent.monkey import get_original

        fork = get_original("os", "fork") if hasattr(os, "fork") else None
        if fork is None:
            self._inline(ref, encode, done)
            return
        from gevent.os import fork_and_watch

        r, w = os.pipe()
        ident = _identity(r)
        try:
            # Watched by the hub: where it reaps children itself (the client's
            # task processes start a SIGCHLD watcher), a plain waitpid of ours
            # would find ours gone.  The fork itself is the plain one: the
            # child runs no event loop, so gevent's re-initialisation is waste.
            pid = fork_and_watch(fork=fork)
        except OSError as exc:
            _close_now(r)
            _close_now(w)
            log.warning("snapshot: fork failed (%s); encoding in the Raft actor instead", exc)
            self._inline(ref, encode, done)
            return
        if pid == 0:  # the child: encode, write, leave without running any of the parent's cleanup
            _child(r, w, encode)
        _close_now(w)
        self.forks += 1
        gevent.spawn(self._collect, pid, r, ident, ref, done)

    def _inline(self, ref: Any, encode: Callable[[], bytes], done: Done) -> None:
        self.fallbacks += 1
        try:
            msg = done(encode(), "")
        except Exception as exc:  # noqa: BLE001 -- reported to the actor
            msg = done(None, f"{type(exc).__name__}: {exc}")
        ref.tell(msg)

    def _collect(self, pid: int, r: int, ident: tuple[int, int], ref: Any, done: Done) -> None:
        """Read the child's output, then its exit status, each bounded; the actor always hears the outcome.

        The pipe is polled (a non-blocking read, then a short cooperative sleep), not waited on
        through an event-loop watcher.  The exit status is waited for at most EXIT_WAIT_S once the
        output ended: a whole output (its own length prefix says so) is the answer without it.

        The pipe's number is checked to still be our pipe (*ident*) before every read and before
        it is closed.  Were it closed behind our back -- another part of the process closing a
        number it no longer owns, which gevent's os.close does a loop turn late -- the snapshot
        fails at once, and a number given to someone else meanwhile is neither read nor closed.
        Before, the close in ``finally`` then raised EBADF, this greenlet died without telling the
        actor, and the save waited out its whole deadline: the symptom of the save hangs seen in
        full test runs (tests/test_snapshotter.py shows it; what closed the pipe there is not known).
        """
        import time

        import gevent
        from gevent.os import waitpid

        chunks: list[bytes] = []
        error = ""
        whole = False
        try:
            if _identity(r) == ident:  # (else the loop below says so)
                os.set_blocking(r, False)
            deadline = time.monotonic() + self.timeout_s
            pause = POLL_MIN_S
            ended = False
            while not ended:
                if _identity(r) != ident:
                    error = "the pipe from the encoding process was closed by another part of the agent"
                    break
                try:
                    chunk = os.read(r, 1 << 20)
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    gevent.sleep(pause)
                    pause = min(pause * 2, POLL_MAX_S)
                    continue
                if chunk:
                    chunks.append(chunk)
                    pause = POLL_MIN_S
                else:
                    ended = True
            data = b"".join(chunks)
            whole = len(data) >= _LENGTH.size and _LENGTH.unpack_from(data)[0] == len(data) - _LENGTH.size
            status = None
            if ended:
                with gevent.Timeout(EXIT_WAIT_S, False):
                    try:
                        status = waitpid(pid, 0)[1]  # cooperative: the hub's child watcher has it
                    except ChildProcessError:
                        # Reaped by another waiter in this process (a task's child watcher): its exit
                        # status is lost, so the output's own length prefix says whether it is whole.
                        status = 0
                if status is None and whole:
                    status = 0  # the output is whole: the status is a formality (reaped in the background)
            if error:
                _stop(pid)
            elif status is None:
                os.kill(pid, signal.SIGKILL)
                gevent.spawn(_reap, pid)
                if ended:
                    error = f"the encoding process ended its output but did not exit within {EXIT_WAIT_S:g}s"
                else:
                    error = f"the encoding process took longer than {self.timeout_s:g}s and was killed"
            elif status != 0:
                error = f"the encoding process failed ({_describe_status(status)})"
        except OSError as exc:
            error = error or f"reading the encoding process's output: {exc}"
        except Exception as exc:  # whatever went wrong, the actor must hear of it
            error = f"collecting the encoding process's output: {type(exc).__name__}: {exc}"
        finally:
            if _identity(r) == ident:  # never a number someone else holds now
                _close_now(r)
        data = b"".join(chunks)
        if not error and not whole:
            error = f"the encoding process wrote {len(data)} bytes, not a whole snapshot"
        try:
            ref.tell(done(None, error) if error else done(data[_LENGTH.size:], ""))
        except Exception:  # noqa: BLE001 -- the actor stopped meanwhile: nobody wants it
            log.debug("snapshot finished after the Raft actor stopped")


def _identity(fd: int) -> tuple[int, int]:
    """What *fd* refers to now: (device, inode), (-1, -1) when it is not open."""
    try:
        st = os.fstat(fd)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def _close_now(fd: int) -> None:
    """The kernel's close, at once, and quiet if already closed.  Not gevent's os.close: for a pipe
    that one closes the number a loop turn later, and by then it may name someone else's descriptor."""
    os.closerange(fd, fd + 1)


def _stop(pid: int) -> None:
    """Kill the child and reap it, unless it has ended (the hub has its status; its pid may be reused)."""
    import gevent
    from gevent.os import waitpid

    try:
        if waitpid(pid, os.WNOHANG)[0] != 0:
            return  # ended and now reaped
    except ChildProcessError:
        return  # reaped by another waiter
    os.kill(pid, signal.SIGKILL)
    gevent.spawn(_reap, pid)


def _reap(pid: int) -> None:
    """Collect a killed (or late) child's status whenever it comes, so it leaves no zombie."""
    from gevent.os import waitpid

    try:
        waitpid(pid, 0)
    except ChildProcessError:
        pass


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"status {status}"


def _child(r: int, w: int, encode: Callable[[], bytes]) -> None:
    """In the forked child: never returns.  Only the calling thread exists here, and no
    event loop runs: the encoding is plain computation, the writes are blocking."""
    code = 1
    try:
        # The parent's handlers are gevent's, whose loop does not run here: an
        # operator's signal to the process group must end the child, not be lost.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        # Let go of the parent's sockets and pipes (listeners, connections,
        # tasks' output): a peer must see a close by the parent as a close,
        # not wait for this child to exit too.
        os.closerange(3, w)
        os.closerange(w + 1, _MAX_FD)
        data = encode()
        for part in (_LENGTH.pack(len(data)), data):
            view = memoryview(part)
            while view:
                view = view[os.write(w, view):]
        os.close(w)
        code = 0
    except BaseException:  # noqa: BLE001 -- the exit code tells the parent; nothing here may escape
        code = 1
    finally:
        os._exit(code)
