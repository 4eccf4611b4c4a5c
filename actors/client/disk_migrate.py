"""Ephemeral disk migration between nodes (Nomad's ``remotePrevAlloc`` and the alloc snapshot endpoint).

A group with ``ephemeral_disk { migrate = true }`` whose replacement lands on
another node takes the previous allocation's ``alloc/data`` and each task's
``local/`` along (Nomad's ``client/allocwatcher``):

* The new node's AllocRunner asks a server about the previous allocation
  (:class:`~actors.client.messages.GetPrevAlloc`, a blocking query, as
  Nomad's ``Alloc.GetAlloc`` watch) until it is terminal (complete, failed,
  lost; or ``unknown``, as Nomad); the answer names the node it ran on, that
  node's HTTP address, and the **migrate token** the servers issue for it
  (:func:`migrate_token`: Nomad's ``GenerateMigrateToken``, BLAKE2b-512 of
  the previous allocation's ID keyed with that node's secret ID).
* It then asks its *migrator* edge (:class:`HttpSnapshotFetcher` in the
  agent) for the snapshot: ``GET /v1/client/allocation/<prev>/snapshot`` on
  that node with the token as ``X-Nomad-Token``.  The tar is unpacked
  safely (:func:`extract_snapshot`) into a staging directory and, whole,
  moved into the new allocation's directory; the runner is told
  (:class:`DiskMigrated`) and the tasks start -- with empty directories when
  it failed (a Task Setup event says why), as Nomad soft-fails a migration.
* The previous node serves the snapshot (:func:`write_snapshot`,
  ``actors.http_client_snapshot``): a tar of ``alloc/data`` and its tasks'
  ``local/`` (names relative to the allocation directory, links as links,
  never followed), checked with :func:`check_migrate_token` against its own
  secret when ACLs are enabled (Nomad's ``ValidateMigrateToken``).  An error
  half-way is appended as ``NOMAD-<alloc>-ERROR.log`` (Nomad's
  ``SnapshotErrorFilename``), which the receiver turns into its error.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import http.client
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

SNAPSHOT_PATH = "/v1/client/allocation/{alloc_id}/snapshot"
TOKEN_HEADER = "X-Nomad-Token"
# Where a snapshot is unpacked before it moves into the new allocation's directory: a name no
# allocation ID can take (they start with a letter or digit), under the allocation root.
STAGING_PREFIX = ".migrate-"


# ------------------------------------------------------------ tokens (pure)
def migrate_token(alloc_id: str, node_secret: str) -> str:
    """Nomad's GenerateMigrateToken: base64url(BLAKE2b-512 keyed with the node's secret, of the alloc ID).
    "" when the secret cannot key it (longer than 64 bytes, or empty)."""
    key = node_secret.encode()
    if not key or len(key) > 64:
        return ""
    return base64.urlsafe_b64encode(hashlib.blake2b(alloc_id.encode(), key=key).digest()).decode()


def check_migrate_token(alloc_id: str, node_secret: str, token: str) -> bool:
    """Nomad's CompareMigrateToken, in constant time."""
    want = migrate_token(alloc_id, node_secret)
    if not want or not token:
        return False
    try:
        got = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(base64.urlsafe_b64decode(want), got)


def error_filename(alloc_id: str) -> str:
    """Nomad's SnapshotErrorFilename: the tar entry that carries an error of the serving side."""
    return f"NOMAD-{alloc_id}-ERROR.log"


# ------------------------------------------------------------ messages (local, not on the wire)
@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotFetch:
    """AllocRunner -> migrator: fetch the previous allocation's snapshot into *alloc_id*'s directory."""

    alloc_id: str
    prev_alloc_id: str
    node_addr: str  # host:port of the previous node's HTTP API
    token: str  # the migrate token ("" when the servers gave none)
    alloc_root: str
    tasks: tuple[str, ...]  # whose local/ directories move over
    max_bytes: int  # the group's ephemeral_disk size: the unpacked files together at most this much
    max_entries: int
    timeout_s: float  # the whole fetch, connect to last byte
    io_timeout_s: float  # each connect and read


@dataclass(frozen=True, slots=True)
class DiskMigrated:
    """Migrator -> AllocRunner: a fetch ended; *error* "" when the data is now in place (local only)."""

    alloc_id: str
    run: int
    error: str


class SnapshotError(Exception):
    """The snapshot cannot be taken or unpacked; the message says why."""


# ------------------------------------------------------------ serving: the tar of an allocation's disk
def _snapshot_roots(alloc_dir: str, tasks: Iterable[str]) -> list[str]:
    roots = ["alloc/data"]
    roots += [f"{t}/local" for t in sorted(set(tasks))
              if t and "/" not in t and t not in (".", "..", "alloc")]
    return roots


def write_snapshot(out: IO[bytes], alloc_dir: str, alloc_id: str, tasks: Iterable[str]) -> None:
    """Write :func:`snapshot_chunks` to *out*."""
    for chunk in snapshot_chunks(alloc_dir, alloc_id, tasks):
        out.write(chunk)


SNAPSHOT_CHUNK = 64 * 1024  # a file's data goes out in pieces this big: a big file is never held whole


def snapshot_chunks(alloc_dir: str, alloc_id: str, tasks: Iterable[str]) -> Iterator[bytes]:
    """The tar of *alloc_dir*'s ``alloc/data`` and each task's ``local/``, piece by piece (Nomad's
    AllocDir.Snapshot).  Names are relative to the allocation directory; links are stored as links,
    never followed, and a file is opened with O_NOFOLLOW (a task may swap it for a link meanwhile).
    An error once the tar has begun is appended as the error entry (Nomad's writeError)."""
    try:
        for root in _snapshot_roots(alloc_dir, tasks):
            yield from _tree_chunks(alloc_dir, root)
    except (OSError, SnapshotError) as e:
        msg = f"Error snapshotting: {e}".encode()
        info = tarfile.TarInfo(error_filename(alloc_id))
        info.size, info.mode = len(msg), 0o666
        yield _header(info)
        yield msg + _padding(len(msg))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)  # the end-of-archive marker


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _tree_chunks(alloc_dir: str, rel: str) -> Iterator[bytes]:
    # Each directory on the way is checked not to be a link: a task owns its directory and may have
    # replaced "local" with a link to /etc.
    path = alloc_dir
    for part in rel.split("/"):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return  # a link or a file where the directory should be: nothing to take from it
    stack = [rel]
    while stack:
        cur = stack.pop()
        full = os.path.join(alloc_dir, cur)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue  # removed meanwhile
        info = tarfile.TarInfo(cur)
        info.mode, info.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        info.uid, info.gid = st.st_uid, st.st_gid
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            yield _header(info)
            stack.extend(os.path.join(cur, n) for n in sorted(os.listdir(full), reverse=True))
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
            yield _header(info)
        elif stat.S_ISREG(st.st_mode):
            yield from _file_chunks(full, info)
        # FIFOs, sockets and devices are not data: left out


def _file_chunks(full: str, info: tarfile.TarInfo) -> Iterator[bytes]:
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        fst = os.fstat(f.fileno())
        if not stat.S_ISREG(fst.st_mode):
            return
        info.size = left = fst.st_size
        yield _header(info)
        # The header said the size: a file that shrinks meanwhile is padded, one that grows cut.
        failed: OSError | None = None
        while left > 0:
            data = b""
            if failed is None:
                try:
                    data = f.read(min(SNAPSHOT_CHUNK, left))
                except OSError as e:
                    failed = e
            if not data:
                data = b"\0" * min(SNAPSHOT_CHUNK, left)
            left -= len(data)
            yield data
        yield _padding(info.size)
        if failed is not None:  # the entry is complete (padded): the error entry follows it
            raise failed


# ------------------------------------------------------------ receiving: the safe unpack
class _Bounded:
    """A stream that refuses to yield more than *limit* bytes (a hostile sender's endless archive)."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        self.f, self.left = f, limit

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise SnapshotError("the snapshot is larger than the ephemeral disk")
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data


def entry_parts(name: str) -> list[str]:
    """The path components of a tar entry's name; SnapshotError when it is absolute or climbs out."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise SnapshotError(f"archive contains object that escapes alloc dir: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise SnapshotError(f"archive contains object that escapes alloc dir: {name!r}")
    return parts


def link_escapes(parts: list[str], target: str) -> bool:
    """A link at *parts* (within the allocation directory) to *target* leads outside of it."""
    if not target or target.startswith("/") or "\0" in target:
        return True
    depth = len(parts) - 1  # the link's directory, in components below the allocation directory
    for p in target.split("/"):
        if p in ("", "."):
            continue
        depth += -1 if p == ".." else 1
        if depth < 0:
            return True
    return False


# How many links one path may pass through when the unpacked links are checked together (Linux's own
# bound, MAXSYMLINKS): a longer chain, or a loop, is refused as one that escapes.
MAX_LINK_HOPS = 40


def _resolve(links: dict[tuple[str, ...], str], dir_parts: list[str], target: str,
             hops: int) -> list[str] | None:
    """Where *target*, read from the directory *dir_parts*, leads through the archive's own *links*
    (components below the allocation directory); None if it leaves it (or loops)."""
    where = list(dir_parts)
    if not target or target.startswith("/") or "\0" in target:
        return None
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not where:
                return None
            where.pop()
            continue
        where.append(p)
        linked = links.get(tuple(where))
        if linked is not None:
            if hops >= MAX_LINK_HOPS:
                return None
            found = _resolve(links, where[:-1], linked, hops + 1)
            if found is None:
                return None
            where = found
    return where


def chained_link_escapes(links: dict[tuple[str, ...], str]) -> str:
    """The first of the unpacked *links* (path components -> target) that leads out of the allocation
    directory once the others are followed too; "" if none.  Each was checked alone as it came
    (:func:`link_escapes`); a later link can still make an earlier one lead out (``a -> ..`` and
    ``b -> a/../../..``)."""
    for parts in sorted(links):
        if _resolve(links, list(parts[:-1]), links[parts], 0) is None:
            return "/".join(parts)
    return ""


def extract_snapshot(stream: IO[bytes], dest: str, *, prev_alloc_id: str, max_bytes: int,
                     max_entries: int) -> int:
    """Unpack a snapshot tar from *stream* into the directory *dest* (made if missing); the bytes of file
    data written.  SnapshotError (or OSError) on anything unsafe: an absolute name or one with ``..``,
    a link whose target leads out of the allocation directory, a hard link or device, more than
    *max_entries* entries or *max_bytes* of file data, or the serving side's error entry.  Every entry
    is made by walking its directories with O_NOFOLLOW: nothing is ever written through a link."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    written, entries = 0, 0
    links: dict[tuple[str, ...], str] = {}  # the symlinks unpacked so far, checked together at the end
    as_root = os.geteuid() == 0
    try:
        # Headers and padding cost at most a few blocks an entry on top of the data.
        bounded = _Bounded(stream, max_bytes + (max_entries + 2) * 3 * tarfile.BLOCKSIZE)
        try:
            tf = tarfile.open(fileobj=bounded, mode="r|")  # type: ignore[arg-type]
        except tarfile.TarError as e:
            raise SnapshotError(f"error streaming previous alloc {prev_alloc_id!r}: {e}") from None
        try:
            for m in _members(tf, prev_alloc_id):
                entries += 1
                if entries > max_entries:
                    raise SnapshotError(f"the snapshot has more than {max_entries} entries")
                parts = entry_parts(m.name)
                if m.name == error_filename(prev_alloc_id):
                    f = tf.extractfile(m)
                    text = f.read(64 * 1024).decode(errors="replace") if f is not None else ""
                    raise SnapshotError(f"error streaming previous alloc {prev_alloc_id!r}: {text}")
                if m.issym() and link_escapes(parts, m.linkname):
                    raise SnapshotError(f"archive contains symlink that escapes alloc dir: {m.name!r}")
                if not (m.isdir() or m.isfile() or m.issym()) or m.issparse():
                    raise SnapshotError(f"archive contains an object of unsupported type: {m.name!r}")
                if m.isfile() and written + m.size > max_bytes:
                    raise SnapshotError(f"the snapshot is larger than the ephemeral disk ({max_bytes} bytes)")
                parent = _walk(root, parts[:-1])
                try:
                    written += _make(tf, m, parent, parts[-1], as_root)
                finally:
                    os.close(parent)
                if m.issym():
                    links[tuple(parts)] = m.linkname
                else:
                    links.pop(tuple(parts), None)
            if (escaping := chained_link_escapes(links)):
                raise SnapshotError(f"archive contains symlink that escapes alloc dir: {escaping!r}")
        finally:
            tf.close()
    finally:
        os.close(root)
    return written


def _members(tf: tarfile.TarFile, prev_alloc_id: str) -> Iterable[tarfile.TarInfo]:
    while True:
        try:
            m = tf.next()
        except tarfile.TarError as e:
            raise SnapshotError(f"error streaming previous alloc {prev_alloc_id!r}: {e}") from None
        if m is None:
            return
        yield m


def _walk(root: int, dirs: list[str]) -> int:
    """An fd of root/dirs..., each made if missing and opened with O_NOFOLLOW (a link is ELOOP/ENOTDIR)."""
    fd = os.dup(root)
    try:
        for name in dirs:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SnapshotError(f"archive writes through a link or a file: {'/'.join(dirs)!r}") from None
        raise
    return fd


def _unlink_entry(dir_fd: int, name: str) -> None:
    """Remove what an earlier entry left at *name* (the entry, never what a link points to)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise SnapshotError(f"archive replaces a directory with a file or link: {name!r}")
    os.unlink(name, dir_fd=dir_fd)


def _make(tf: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, name: str, as_root: bool) -> int:
    mode = m.mode & 0o777  # no setuid, setgid or sticky bits from another node
    if m.isdir():
        try:
            os.mkdir(name, mode | 0o700, dir_fd=dir_fd)  # the agent can always fill it
        except FileExistsError:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise SnapshotError(f"archive replaces a file or link with a directory: {m.name!r}") from None
        if as_root:
            os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        return 0
    _unlink_entry(dir_fd, name)
    if m.issym():
        os.symlink(m.linkname, name, dir_fd=dir_fd)
        if as_root:
            os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        return 0
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as out:
        src = tf.extractfile(m)
        n = 0
        while src is not None and (chunk := src.read(64 * 1024)):
            out.write(chunk)
            n += len(chunk)
        os.fchmod(out.fileno(), mode)
        if as_root:
            os.fchown(out.fileno(), m.uid, m.gid)
    return n


def install_snapshot(staging: str, alloc_dir: str, tasks: Iterable[str]) -> None:
    """Move the unpacked ``alloc/data`` and each task's ``local/`` from *staging* into *alloc_dir*, each
    replacing an empty directory there (Nomad's AllocDir.Move); renames, links never followed."""
    if not os.path.isdir(alloc_dir) or os.path.islink(alloc_dir):
        # Stopped and destroyed while the pull ran: nothing is made again for it (an orphan no one collects).
        raise SnapshotError("the allocation's directory is gone: its data was not moved in")
    moves = [(os.path.join(staging, "alloc"), os.path.join(alloc_dir, "alloc"), "data")]
    moves += [(os.path.join(staging, t), os.path.join(alloc_dir, t), "local")
              for t in sorted(set(tasks)) if t and "/" not in t and t not in (".", "..", "alloc")]
    for src_parent, dst_parent, name in moves:
        src = os.path.join(src_parent, name)
        if os.path.islink(src_parent) or os.path.islink(src) or not os.path.isdir(src):
            continue
        try:
            os.mkdir(dst_parent, 0o755)  # never the allocation's directory itself (see above)
        except FileExistsError:
            pass
        dst = os.path.join(dst_parent, name)
        try:
            os.rmdir(dst)  # an empty one made meanwhile gives way, as Nomad's os.Remove
        except FileNotFoundError:
            pass
        os.rename(src, dst)


def staging_dir(alloc_root: str, alloc_id: str) -> str:
    return posixpath.join(alloc_root, STAGING_PREFIX + alloc_id)


def migrate(req: SnapshotFetch, open_stream: Callable[[SnapshotFetch], IO[bytes]]) -> str:
    """The whole migration of one snapshot: open it (*open_stream*: the HTTP GET), unpack it into the
    staging directory, move it into place; "" or the error.  The staging directory is always removed,
    and on failure nothing reaches the new allocation's directory."""
    staging = staging_dir(req.alloc_root, req.alloc_id)
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted fetch left
    try:
        # The new allocation's directory, made now, as its runner asks: if it is gone by the time the
        # data is in, the allocation was stopped and destroyed meanwhile, and nothing is made again.
        os.makedirs(posixpath.join(req.alloc_root, req.alloc_id), mode=0o755, exist_ok=True)
        stream = open_stream(req)
        try:
            extract_snapshot(stream, staging, prev_alloc_id=req.prev_alloc_id, max_bytes=req.max_bytes,
                             max_entries=req.max_entries)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        install_snapshot(staging, posixpath.join(req.alloc_root, req.alloc_id), req.tasks)
    except SnapshotError as e:
        return str(e)
    except (tarfile.TarError, http.client.HTTPException) as e:  # a truncated stream, a dropped connection
        return f"error streaming previous alloc {req.prev_alloc_id!r}: {type(e).__name__}: {e}"
    except OSError as e:
        return f"error migrating previous alloc {req.prev_alloc_id!r}: {e.strerror or e}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ""


# ------------------------------------------------------------ the agent's migrator (the HTTP edge)
class _FetchTimeout(Exception):
    """The whole fetch took longer than its timeout (not an OSError: nothing in between may take it)."""


class _Response:
    """The snapshot's HTTP response; closing it closes the connection too."""

    def __init__(self, conn: Any, resp: Any) -> None:
        self.conn, self.resp = conn, resp

    def read(self, n: int = -1) -> bytes:
        return self.resp.read(n if n >= 0 else None)

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


class HttpSnapshotFetcher:
    """Fetches a snapshot in a greenlet of its own; *tls* (runtime.tls's edge, or None) for HTTPS nodes."""

    def __init__(self, tls: Any = None) -> None:
        self.tls = tls

    def fetch(self, req: SnapshotFetch, notify: Callable[[str], None]) -> None:
        import gevent  # the agent's edge only: the simulator never loads it

        gevent.spawn(self._run, req, notify)

    def _run(self, req: SnapshotFetch, notify: Callable[[str], None]) -> None:
        import gevent

        try:
            with gevent.Timeout(req.timeout_s, _FetchTimeout()):
                error = migrate(req, self._open)
        except _FetchTimeout:
            shutil.rmtree(staging_dir(req.alloc_root, req.alloc_id), ignore_errors=True)
            error = f"timed out after {req.timeout_s:g}s"
        except Exception as e:  # a fetch never takes the migrator down: it is a failed migration
            error = f"{type(e).__name__}: {e}"
        notify(error)

    def _open(self, req: SnapshotFetch) -> IO[bytes]:
        host, _, port = req.node_addr.rpartition(":")
        if not host or not port.isdigit():
            raise SnapshotError(f"bad HTTP address {req.node_addr!r} of the previous node")
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=req.io_timeout_s,
                                               context=self.tls.http_client_context())
        else:
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=req.io_timeout_s)
        path = SNAPSHOT_PATH.format(alloc_id=req.prev_alloc_id)
        try:
            conn.request("GET", path, headers={TOKEN_HEADER: req.token} if req.token else {})
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read(4096).decode(errors="replace").strip()
                raise SnapshotError(f"error getting snapshot from previous alloc {req.prev_alloc_id!r}: "
                                    f"Unexpected response code: {resp.status} ({body})")
        except OSError as e:
            conn.close()
            raise SnapshotError(f"error getting snapshot from previous alloc {req.prev_alloc_id!r}: "
                                f"{e.strerror or e}") from None
        except BaseException:
            conn.close()
            raise
        return _Response(conn, resp)  # type: ignore[return-value]
