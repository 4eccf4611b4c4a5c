"""A task's log rotator: one small process per task for both its streams (Nomad's logmon).

The raw_exec driver (``actors.client.drivers``) starts one of these per
task, reading the task's stdout from a pipe on its stdin and its stderr from
a second pipe whose descriptor it is given, and writing Nomad's rotated
files ``<alloc_dir>/alloc/logs/<task>.<stdout|stderr>.<N>``: a new index
when the current file reaches ``max_file_size``, at most ``max_files`` of
them kept (the oldest deleted)::

    python -m actors.client.logmon <log dir> <task> <max files> <max file bytes> <stderr fd>

With ``-`` for the descriptor it rotates its stdin alone, as ``<task>``
(a full base name such as ``web.stdout``).

Why a process, not greenlets in the agent: a task outlives its client agent
(a restarted agent re-attaches to it), and so must whatever drains its
output.  A pipe read by the agent would lose its reader when the agent
stops; the task would then block on a full pipe or die of SIGPIPE.  This
process runs in its own session (the task's signals do not reach it), is
no child of the agent once that restarts, and ends by itself at end of
file on both pipes -- when the task and every child that inherited its
output are gone.  One process for both streams, as Nomad's logmon is one
per task: half the processes (and their memory) of one per stream.

Bounded: a file never grows past ``max_file_bytes`` (a burst larger than
a file is split over several), at most ``max_files`` files stay, and one
read takes at most :data:`READ_CHUNK_BYTES`.  A failed write (disk full)
drops that output and keeps reading, so the task never blocks on its logs.
Bytes are written as they come: a line may be split between two files, as
Nomad's rotator splits it; the files read in index order give the stream.
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import stat
import sys

# One read from the pipe at most: a chatty task is drained in 64 KiB steps
# (the Linux pipe buffer), so memory stays bounded whatever it writes.
READ_CHUNK_BYTES = 64 << 10


def indexes(log_dir: str | int, base: str) -> list[int]:
    """The indexes of ``<base>.<N>`` files in *log_dir* (a path or an open directory), ascending."""
    pat = re.compile(re.escape(base) + r"\.(0|[1-9][0-9]{0,17})$")
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(pat.match, names) if m)


class Rotator:
    """Appends a stream to ``<log_dir>/<base>.<N>``, rotating by size and pruning by count.

    Started again on files an earlier rotator left (a task restarted in the
    same allocation), it goes on at the highest index, as Nomad's
    FileRotator does, so the files stay one stream in index order.
    """

    def __init__(self, log_dir: str, base: str, max_files: int, max_file_bytes: int) -> None:
        if max_files < 1 or max_file_bytes < 1:
            raise ValueError("max_files and max_file_bytes must be >= 1")
        self.log_dir, self.base = log_dir, base
        self.max_files, self.max_file_bytes = max_files, max_file_bytes
        self.dropped_bytes = 0  # output lost to write errors (disk full...)
        self._dirfd = -1
        try:
            self._open_dir()
        except OSError:
            pass  # tried again on the first write
        have = indexes(self._dirfd if self._dirfd >= 0 else log_dir, base)
        self.index = have[-1] if have else 0
        self._fd = -1
        self._size = 0
        try:
            self._open()  # at once, as Nomad's: the file is there before the task writes
        except OSError:
            pass  # tried again on the first write

    def path(self, index: int) -> str:
        return os.path.join(self.log_dir, f"{self.base}.{index}")

    def write(self, data: bytes) -> None:
        """Append *data*, moving to the next index whenever the current file is full."""
        view = memoryview(data)
        while view:
            try:
                if self._fd < 0:
                    self._open()
                room = self.max_file_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                n = os.write(self._fd, view[:room])
            except OSError:
                self.dropped_bytes += len(view)  # never block the task on its logs: drop and go on
                self.close()
                return
            self._size += n
            view = view[n:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def ensure_open(self) -> None:
        """The current file open, or OSError (the constructor's first try keeps quiet)."""
        if self._fd < 0:
            self._open()

    def close_all(self) -> None:
        """The file and the directory: for a rotator used once (creating a task's first files)."""
        self.close()
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1

    def _open_dir(self) -> None:
        """The log directory, opened once and never through a symlink (a task may write ``alloc/``)."""
        if self._dirfd < 0:
            self._dirfd = os.open(self.log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def _open(self) -> None:
        """The current file, in the directory opened once and never through a link.

        The directory is one the task can write (``/alloc/logs`` in its own
        view): a symlink, FIFO or hard link it planted under the next file's
        name must not make this process, which runs as the agent (root),
        create or fill a file elsewhere.  Such an entry is removed (the link
        itself, never what it names) and the file created anew; if that
        fails too, the output is dropped, as a full disk's is.
        """
        self._open_dir()
        name = f"{self.base}.{self.index}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        for attempt in (0, 1):
            try:
                fd = os.open(name, flags, 0o644, dir_fd=self._dirfd)
            except OSError as e:
                if attempt or e.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                    raise
            else:
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    self._fd, self._size = fd, info.st_size
                    return
                os.close(fd)
                if attempt:
                    raise OSError(errno.EPERM, f"{name} is not a file of its own")
            os.unlink(name, dir_fd=self._dirfd)  # EISDIR: a directory planted there stays, and so fails
            flags |= os.O_EXCL

    def _rotate(self) -> None:
        self.close()
        self.index += 1
        self._open()
        self._prune()

    def _prune(self) -> None:
        """Delete the files older than the newest ``max_files``."""
        for old in indexes(self._dirfd, self.base):
            if old > self.index - self.max_files:
                break
            try:
                os.unlink(f"{self.base}.{old}", dir_fd=self._dirfd)  # a link is removed, not followed
            except FileNotFoundError:
                pass


def pump_all(streams: dict[int, Rotator]) -> None:
    """Copy each readable descriptor of *streams* into its rotator until every one is at end of file."""
    sel = selectors.DefaultSelector()
    try:
        for fd, rot in streams.items():
            sel.register(fd, selectors.EVENT_READ, rot)
        left = len(streams)
        while left:
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, READ_CHUNK_BYTES)
                except InterruptedError:
                    continue
                if data:
                    key.data.write(data)
                else:
                    sel.unregister(key.fd)
                    left -= 1
    finally:
        sel.close()


USAGE = "usage: python -m actors.client.logmon <log dir> <task> <max files> <max file bytes> <stderr fd | ->"


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(USAGE, file=sys.stderr)
        return 2
    log_dir, task, max_files, max_bytes = argv[0], argv[1], int(argv[2]), int(argv[3])
    if argv[4] == "-":  # one stream: stdin, as <task> (a whole base name)
        streams = {0: Rotator(log_dir, task, max_files, max_bytes)}
    else:
        streams = {0: Rotator(log_dir, f"{task}.stdout", max_files, max_bytes),
                   int(argv[4]): Rotator(log_dir, f"{task}.stderr", max_files, max_bytes)}
    try:
        pump_all(streams)
    finally:
        for rot in streams.values():
            rot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
