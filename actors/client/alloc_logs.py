"""Reading a task's logs from its allocation directory (an edge: file I/O).

raw_exec's rotators (``actors.client.logmon``) write
``<alloc_dir>/<alloc_id>/alloc/logs/<task>.stdout.<N>`` and ``.stderr.<N>``
(Nomad's layout and names): a new index when a file is full, the oldest
deleted beyond the task's ``max_files``.  :class:`AllocLogs` reads them as
one stream for ``/v1/client/fs/logs/<alloc_id>``, as Nomad's logs API does:
offsets count from the start of the lowest index still on disk, across the
files in index order; a window starts ``offset`` bytes after that start, or
before the end of the newest file (``origin=end``), and holds at most
``limit`` bytes, from as many files as it spans.  A follower goes on file
by file (:meth:`AllocLogs.read_file`, :meth:`AllocLogs.next_index`).

:class:`AllocFS` lists, stats and opens any file of the allocation
directory for ``/v1/client/fs/{ls,stat,cat,readat,stream}``, refusing paths
that lead out of it (see the section below).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import stat as st
from dataclasses import dataclass
from typing import BinaryIO

from actors.client.logmon import indexes

LOG_TYPES = ("stdout", "stderr")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # IDs and task names become path parts


class LogNotFound(Exception):
    """No such allocation on this client, or no such task log (the message says which)."""


class LogFileGone(Exception):
    """The log file a follower was reading was deleted (rotated away): go on at the next index."""


@dataclass(frozen=True, slots=True)
class LogChunk:
    data: bytes
    offset: int  # where data starts: in the whole stream (read), or in its file (read_file)
    size: int  # the stream's size (read), or the file's (read_file), when read
    file: str  # relative to the allocation directory, as Nomad names it: the file data ends in
    index: int = 0  # that file's index
    file_end: int = 0  # where data ends in that file: a follower goes on from (index, file_end)


class AllocLogs:
    def __init__(self, alloc_root: str) -> None:
        self.root = alloc_root

    def read(self, alloc_id: str, task: str, kind: str, *, origin: str = "start", offset: int = 0,
             limit: int = 1 << 20) -> LogChunk:
        """A window of the task's log, across its rotated files (see the module's docstring)."""
        if origin not in ("start", "end"):
            raise ValueError(f"invalid origin {origin!r}: want start or end")
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        log_dir, files = self._files(alloc_id, task, kind)
        total = sum(size for _, size in files)
        start = min(total, offset) if origin == "start" else max(0, total - offset)
        want = min(limit, total - start)
        end_index, end_pos = files[-1]
        parts: list[bytes] = []
        got, base = 0, 0
        for index, size in files:
            pos = start + got
            if pos >= base + size or got >= want:
                base += size
                continue
            data = self._pread(log_dir, task, kind, index, pos - base, min(size - (pos - base), want - got))
            parts.append(data)
            got += len(data)
            end_index, end_pos = index, pos - base + len(data)
            base += size
        return LogChunk(data=b"".join(parts), offset=start, size=total, file=_rel(task, kind, end_index),
                        index=end_index, file_end=end_pos)

    def read_file(self, alloc_id: str, task: str, kind: str, index: int, pos: int, limit: int) -> LogChunk:
        """At most *limit* bytes of one log file from *pos*; :class:`LogFileGone` if it was deleted."""
        log_dir = self._log_dir(alloc_id, task, kind)
        try:
            f = _open_regular(os.path.join(log_dir, f"{task}.{kind}.{index}"), follow=False)
        except FileNotFoundError:
            if not os.path.isdir(os.path.dirname(log_dir)):
                raise LogNotFound(f"Unknown allocation \"{alloc_id}\"") from None
            raise LogFileGone(_rel(task, kind, index)) from None
        except (IsADirectoryError, NotAFile):
            why = f"task {task!r} {kind} log in allocation {alloc_id} is not a regular file"
            raise LogNotFound(why) from None
        with f:
            size = os.fstat(f.fileno()).st_size
            data = os.pread(f.fileno(), min(limit, max(0, size - pos)), pos) if pos < size else b""
        return LogChunk(data=data, offset=pos, size=size, file=_rel(task, kind, index), index=index,
                        file_end=pos + len(data))

    def next_index(self, alloc_id: str, task: str, kind: str, after: int) -> int | None:
        """The lowest index above *after* still on disk (the file the rotator moved on to); None: none yet."""
        higher = [i for i in indexes(self._log_dir(alloc_id, task, kind), f"{task}.{kind}") if i > after]
        return higher[0] if higher else None

    # -------------------------------------------------------- helpers
    def _log_dir(self, alloc_id: str, task: str, kind: str) -> str:
        if not _SAFE.match(alloc_id):
            raise LogNotFound(f"Unknown allocation \"{alloc_id}\"")
        if not _SAFE.match(task):  # ("../x" is no task's name; the allocation may well exist)
            raise LogNotFound(f"task {task!r} has no {kind} log in allocation {alloc_id}")
        if kind not in LOG_TYPES:
            raise ValueError(f"invalid log type {kind!r}: want stdout or stderr")
        alloc_dir = os.path.join(self.root, alloc_id)
        if not os.path.isdir(alloc_dir):
            raise LogNotFound(f"Unknown allocation \"{alloc_id}\"")
        log_dir = os.path.join(alloc_dir, "alloc", "logs")
        for d in (os.path.dirname(log_dir), log_dir):  # a task may write alloc/: a link there is refused
            try:
                if st.S_ISLNK(os.lstat(d).st_mode):
                    why = f"task {task!r} {kind} log in allocation {alloc_id} is not a regular file"
                    raise LogNotFound(why)
            except FileNotFoundError:
                break
        return log_dir

    def _files(self, alloc_id: str, task: str, kind: str) -> tuple[str, list[tuple[int, int]]]:
        """The log directory and the task's (index, size) files, ascending; LogNotFound if none."""
        log_dir = self._log_dir(alloc_id, task, kind)
        files = []
        for index in indexes(log_dir, f"{task}.{kind}"):
            try:
                info = os.lstat(os.path.join(log_dir, f"{task}.{kind}.{index}"))  # a planted link: no file
            except FileNotFoundError:
                continue  # rotated away since the listing
            if not st.S_ISREG(info.st_mode):
                raise LogNotFound(f"task {task!r} {kind} log in allocation {alloc_id} is not a regular file")
            files.append((index, info.st_size))
        if not files:
            raise LogNotFound(f"task {task!r} has no {kind} log in allocation {alloc_id}")
        return log_dir, files

    @staticmethod
    def _pread(log_dir: str, task: str, kind: str, index: int, pos: int, n: int) -> bytes:
        """*n* bytes (fewer if it shrank or went) of one file from *pos*."""
        try:
            with _open_regular(os.path.join(log_dir, f"{task}.{kind}.{index}"), follow=False) as f:
                return os.pread(f.fileno(), n, pos) if n > 0 else b""
        except (FileNotFoundError, NotAFile, IsADirectoryError):
            return b""  # rotated away (or replaced) between the listing and the read


def _rel(task: str, kind: str, index: int) -> str:
    return f"alloc/logs/{task}.{kind}.{index}"


# ------------------------------------------------------------ the allocation's file system
# Nomad's ``/v1/client/fs/{ls,stat,cat,readat,stream}``: any file under the
# allocation directory, never one outside it.  A path is relative to
# ``<alloc_root>/<alloc_id>`` (a leading ``/`` names that directory, as in
# Nomad: ``/alloc/logs`` and ``alloc/logs`` are the same); one that leaves it
# -- by ``..`` or through a symlink -- is refused (Nomad's "Path escapes the
# alloc directory"), and files are opened, then checked again by the real
# path of the open descriptor, so a symlink swapped in between cannot lead
# out.  Reading a task's ``secrets`` or ``private`` directory is refused too
# (Nomad's AllocDir.ReadAt); listing and stat-ing them is not.

SNIFF_BYTES = 512  # Go's http.DetectContentType looks at this many bytes at most
_PRIVATE_DIRS = ("secrets", "private")  # <task>/secrets and <task>/private: never read (Nomad ReadAt)


class UnknownAlloc(LogNotFound):
    """No such allocation directory on this client: ``Unknown allocation "<id>"``."""


class FileMissing(LogNotFound):
    """The path names nothing inside the allocation directory."""


class PathRefused(Exception):
    """The path leaves the allocation directory, or names a secret file (the message is Nomad's)."""


class NotAFile(Exception):
    """A directory where a file is wanted (cat, readat, stream), or the other way round."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """Nomad's ``AllocFileInfo``."""

    name: str
    is_dir: bool
    size: int
    file_mode: str  # Go's os.FileMode.String(): "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx"
    mod_time: str  # Go's time.Time JSON (RFC 3339 with nanoseconds, local zone)
    content_type: str = ""  # stat only, as Nomad's List leaves it empty

    def to_api(self) -> dict[str, object]:
        return {"Name": self.name, "IsDir": self.is_dir, "Size": self.size, "FileMode": self.file_mode,
                "ModTime": self.mod_time, "ContentType": self.content_type}


def go_file_mode(mode: int) -> str:
    """Go's ``os.FileMode.String()`` for a ``st_mode`` (type letters ``dalTLDpSugct?``, then rwx bits)."""
    out = ""
    if st.S_ISDIR(mode):
        out += "d"
    if st.S_ISLNK(mode):
        out += "L"
    if st.S_ISBLK(mode):
        out += "D"  # Go: ModeDevice
    if st.S_ISCHR(mode):
        out += "Dc"  # Go: ModeDevice|ModeCharDevice
    if st.S_ISFIFO(mode):
        out += "p"
    if st.S_ISSOCK(mode):
        out += "S"
    if mode & st.S_ISUID:
        out += "u"
    if mode & st.S_ISGID:
        out += "g"
    if mode & st.S_ISVTX:
        out += "t"
    bits = "rwxrwxrwx"
    perm = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate(bits))
    return (out or "-") + perm


def go_time_json(ns: int) -> str:
    """Go's ``time.Time`` as JSON (RFC3339Nano) in the local zone: ``2026-01-02T15:04:05.5+01:00``."""
    secs, frac = divmod(ns, 1_000_000_000)
    d = dt.datetime.fromtimestamp(secs).astimezone()
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    off = d.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    if minutes == 0:
        return text + "Z"
    sign = "+" if minutes > 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _content_type(head: bytes, path: str) -> str:
    """The subset of Go's ``http.DetectContentType`` Nomad's stat shows: text, JSON, or bytes."""
    if path.endswith(".json"):
        return "application/json"
    stripped = head.lstrip(b"\t\n\x0c\r ")
    for magic, kind in ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                        (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"\x1f\x8b\x08", "application/x-gzip"), (b"PK\x03\x04", "application/zip")):
        if head.startswith(magic):
            return kind
    if stripped[:5].lower() in (b"<!doc", b"<html") or stripped[:5].lower() == b"<?xml":
        return "text/xml; charset=utf-8" if stripped[:5].lower() == b"<?xml" else "text/html; charset=utf-8"
    if any(b <= 0x08 or b == 0x0B or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F for b in head):
        return "application/octet-stream"  # Go: a binary data byte
    return "text/plain; charset=utf-8"


class AllocFS:
    """Read-only access to ``<alloc_root>/<alloc_id>`` for the client's fs endpoints."""

    def __init__(self, alloc_root: str) -> None:
        self.root = alloc_root

    # -------------------------------------------------------- paths
    def alloc_dir(self, alloc_id: str) -> str:
        """The allocation's directory (its real path), or :class:`UnknownAlloc`."""
        if not _SAFE.match(alloc_id) or alloc_id in (".", ".."):
            raise UnknownAlloc(f"Unknown allocation \"{alloc_id}\"")
        path = os.path.join(self.root, alloc_id)
        if not os.path.isdir(path):
            raise UnknownAlloc(f"Unknown allocation \"{alloc_id}\"")
        return os.path.realpath(path)

    def resolve(self, alloc_id: str, path: str) -> tuple[str, str]:
        """(the allocation's real directory, the real path *path* names in it); refused if it leaves it."""
        base = self.alloc_dir(alloc_id)
        if "\x00" in path:
            raise PathRefused("Path escapes the alloc directory")
        joined = os.path.normpath(os.path.join(base, path.lstrip("/")))
        if not _inside(base, joined):
            raise PathRefused("Path escapes the alloc directory")
        real = os.path.realpath(joined)  # every symlink on the way, followed
        if not _inside(base, real):
            raise PathRefused("Path escapes the alloc directory")
        return base, real

    # -------------------------------------------------------- ls and stat
    def stat(self, alloc_id: str, path: str) -> FileInfo:
        """Nomad's AllocDir.Stat: the file or directory *path* names (symlinks followed, inside only)."""
        _, real = self.resolve(alloc_id, path)
        try:
            info = os.stat(real)
        except FileNotFoundError:
            raise FileMissing(f"stat {path}: no such file or directory") from None
        ctype = ""
        if not _is_dir(info.st_mode):
            ctype = "application/octet-stream"
            if st.S_ISREG(info.st_mode):  # never open a FIFO or device: the open itself could block
                try:
                    with _open_regular(real) as f:
                        ctype = _content_type(f.read(SNIFF_BYTES), real)
                except OSError:
                    pass  # unreadable: Nomad answers the default type too
        return FileInfo(name=os.path.basename(real), is_dir=_is_dir(info.st_mode),
                        size=info.st_size, file_mode=go_file_mode(info.st_mode),
                        mod_time=go_time_json(info.st_mtime_ns), content_type=ctype)

    def list(self, alloc_id: str, path: str) -> list[FileInfo]:
        """Nomad's AllocDir.List: the directory's entries, sorted by name (symlinks shown, not followed)."""
        _, real = self.resolve(alloc_id, path)
        try:
            names = sorted(os.listdir(real))
        except FileNotFoundError:
            raise FileMissing(f"open {path}: no such file or directory") from None
        except NotADirectoryError:
            raise NotAFile(f"readdirent {path}: not a directory") from None
        out = []
        for name in names:
            try:
                info = os.lstat(os.path.join(real, name))
            except FileNotFoundError:
                continue  # gone while listing
            out.append(FileInfo(name=name, is_dir=_is_dir(info.st_mode), size=info.st_size,
                                file_mode=go_file_mode(info.st_mode),
                                mod_time=go_time_json(info.st_mtime_ns)))
        return out

    # -------------------------------------------------------- reading
    def open(self, alloc_id: str, path: str) -> OpenFile:
        """The file *path* names, opened for reading; the caller closes it.

        Refused when it is a directory, leaves the allocation directory (the
        descriptor's real path is checked after opening), or lies in a task's
        secrets or private directory.
        """
        base, real = self.resolve(alloc_id, path)
        _refuse_private(base, real, path)
        try:
            f = _open_regular(real)  # OpenFile owns it; the caller closes that
        except FileNotFoundError:
            raise FileMissing(f"open {path}: no such file or directory") from None
        except IsADirectoryError:
            raise NotAFile(f"file \"{path}\" is a directory") from None
        try:
            info = os.fstat(f.fileno())
            if _is_dir(info.st_mode):
                raise NotAFile(f"file \"{path}\" is a directory")
            opened = _fd_path(f.fileno()) or real
            if not _inside(base, opened):  # swapped for a symlink between the check and the open
                raise PathRefused("Path escapes the alloc directory")
            _refuse_private(base, opened, path)
        except BaseException:
            f.close()
            raise
        return OpenFile(f, real, info.st_ino, base)


class OpenFile:
    """An allocation's file, open: read from any offset, and told when it is deleted or truncated."""

    def __init__(self, f: BinaryIO, real: str, inode: int, alloc_dir: str) -> None:
        self._f, self._real, self._inode, self._alloc_dir = f, real, inode, alloc_dir

    def size(self) -> int:
        return os.fstat(self._f.fileno()).st_size

    def read_at(self, offset: int, limit: int) -> bytes:
        """At most *limit* bytes from *offset* (fewer at the end of the file)."""
        return os.pread(self._f.fileno(), limit, offset) if limit > 0 else b""

    def content_type(self) -> str:
        return _content_type(self.read_at(0, SNIFF_BYTES), self._real)

    def deleted(self) -> bool:
        """The file is gone from its path (removed, replaced, or its allocation directory collected)."""
        try:
            return os.stat(self._real).st_ino != self._inode or not os.path.isdir(self._alloc_dir)
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self._f.close()


def _open_regular(path: str, *, follow: bool = True) -> BinaryIO:
    """Open a regular file for reading; a directory raises IsADirectoryError, anything else NotAFile.

    Opened non-blocking first: a FIFO a task made would otherwise block the
    open, and with it the whole agent (gevent cannot make open() wait
    cooperatively).  With *follow* false a symlink is refused (NotAFile): a
    log file's name is in a directory the task can write, and a link it
    planted there must not make the agent read a host file for it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags if follow else flags | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise NotAFile(f"file \"{os.path.basename(path)}\" is not a regular file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if st.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not st.S_ISREG(mode):
            raise NotAFile(f"file \"{os.path.basename(path)}\" is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _inside(base: str, path: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def _is_dir(mode: int) -> bool:
    return st.S_ISDIR(mode)


def _fd_path(fd: int) -> str:
    """What an open descriptor really is (Linux ``/proc/self/fd``); "" where that is not available."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def _refuse_private(base: str, real: str, path: str) -> None:
    parts = os.path.relpath(real, base).split(os.sep)
    if len(parts) >= 2 and parts[0] != "alloc" and parts[1] in _PRIVATE_DIRS:
        kind = "secret" if parts[1] == "secrets" else "private"
        raise PathRefused(f"Reading {kind} file prohibited: {path}")
