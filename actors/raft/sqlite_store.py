"""Raft's durable state in one SQLite file (WAL mode, synchronous=FULL).

Layout (format version 1)::

    meta(key TEXT PRIMARY KEY, value)        -- 'format', 'term', 'vote', 'hard_crc'
    log(idx INTEGER PRIMARY KEY, term, kind, data BLOB, crc INTEGER)
    snapshot(id=1, idx, term, voters, learners, data BLOB, crc INTEGER)   -- at most one row

Durability: each :meth:`SqliteStorage.save` is one transaction (``BEGIN
IMMEDIATE ... COMMIT``, or for a save of entries alone a single INSERT, which
SQLite runs as a transaction of its own); in WAL mode with ``synchronous=FULL``
the commit appends the transaction to the ``-wal`` file and fsyncs it before
returning, so one Ready costs one fsync however many entries it carries.  A process killed at any
moment (SIGKILL, OOM) or a power cut loses nothing that ``save`` returned
for.  ``synchronous=NORMAL`` survives a process crash but not a power cut
(the WAL is synced only at checkpoints) and is offered for benchmarks only.

The file is opened with ``locking_mode=EXCLUSIVE``: a second process (say a
second agent pointed at the same data dir) gets :class:`StorageLocked`
instead of silently interleaving writes; it also means no ``-shm`` file.

Corruption is detected when the store is opened and loaded, and reported as
:class:`~actors.raft.storage.StorageCorrupt` naming the file and the fault:
not a database / truncated / malformed pages (SQLite errors and ``PRAGMA
quick_check``), a missing or unknown format version, a CRC32 mismatch in a
log entry, the snapshot or the hard state (SQLite checks its page structure
but not the bytes of a value), a gap in the log, a log that does not run on
past the snapshot, or one whose entry at the snapshot's index has another
term.  The log may start before the snapshot: compaction keeps trailing
entries for followers a little behind.  A new store is built beside its final
name and renamed into place, so a file at *path* is never a half-made store: an empty
or headless file there is corruption, not a fresh start (a server that
forgets its vote can break Raft's safety).

Entries are stored as columns (not as their wire encoding) so the file does
not depend on the wire codec's tags; the CRC covers index, term, kind and
data.

Blocking: sqlite3 calls block the calling OS thread, i.e. under gevent the
whole hub (every actor of the process) for the length of an fsync.
``save`` is meant to be called from the Raft actor only, one call at a time.
With ``use_threadpool=True`` every call runs in the store's own OS thread
(:class:`_DiskThread`; gevent's threadpool until its hand-offs were measured
on the commit path): the Raft actor's greenlet waits, the other greenlets run
during the fsync -- except a lone small append (``save(idle=True)``, see
:data:`INLINE_SAVE_MAX_ENTRIES`), written in the caller's thread.  See
benchmarks/fsync_bench.py for what it costs and buys.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sqlite3
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from actors.raft.messages import Entry
from actors.raft.storage import (
    Snapshot,
    StorageCorrupt,
    StorageError,
    StorageLocked,
    check_append,
    check_snapshot,
)

__all__ = ["FORMAT_VERSION", "SqliteStorage"]

log = logging.getLogger("nomad.raft")

FORMAT_VERSION = 1
APPLICATION_ID = 0x52414654  # "RAFT": marks the file as ours (PRAGMA application_id)
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

_ENTRY_HEAD = struct.Struct(">QQB")  # index, term, kind
_SNAP_HEAD = struct.Struct(">QQII")  # index, term, len(voters), len(learners)

_SCHEMA = (
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE log(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " data BLOB NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE snapshot(id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    " term INTEGER NOT NULL, voters TEXT NOT NULL, learners TEXT NOT NULL, data BLOB NOT NULL,"
    " crc INTEGER NOT NULL, file TEXT)",
)
# A snapshot's data lives in the row (data), or -- written beforehand by
# stage_snapshot, off the Raft actor's path -- in a file beside the database
# named by the row (file; data then empty).  Stores made before the column
# existed get it added when opened.
_SNAP_FILE_MAGIC = b"NOMADSN1"
_SNAP_FILE_HEAD = struct.Struct(">8sQQQI")  # magic, index, term, len(data), snapshot_crc

T = TypeVar("T")

# A call handed to the disk thread normally ends in 0.2-0.5 ms (one fsync).
# But the thread needs the GIL to wake, to run the call's Python code and to
# signal the hub, and a hub busy switching greenlets gives the GIL up only
# for instants (each non-blocking poll); CPython asks for a forced hand-over
# only when none happened for 5 ms, so the waiting thread never asks.  In a
# server that delay feeds back (commits wait, callers stop sending, the hub
# idles), and while the hub does useful work a later, larger group commit
# is what a saturated leader wants: blocking the hub after 5, 50 or 200 ms
# cut nomad-bench raft from 49k to 40k writes/s.  But with no feedback (two
# greenlets passing messages in a loop) a save was held back for good.
# Past this grace the waiting greenlet blocks the process on the call (the
# GIL is released for good and the thread runs at once): a bound, not a
# tuning knob.  (For a long while a timer defect made every wait but the first
# second's block at once; nomad-bench raft and api-register measured the same
# either way, within their run-to-run spread of about 20%.)
DISK_WAIT_GRACE_S = 1.0

# A save of at most this many entries, and nothing else, made while the Raft
# actor has no other mail (``save(idle=True)``), runs in the caller's thread:
# the same transaction and the same fsync, without the hand-off to the disk
# thread and back (a futex wake, the thread taking the GIL, an eventfd and a
# hub turn: ~3 context switches and 10-40 us of CPU per save on this 2-core
# VM).  That is the whole of a sequential client's write on every server:
# nomad-bench raft's sequential p50 went 0.53 -> 0.47 ms (fsync on) and
# 0.33-0.42 -> 0.24-0.25 ms with the data on tmpfs.  The price: the process's
# other greenlets wait for that one fsync (0.1-0.3 ms) as for any actor's
# turn.  Under load the inbox is rarely empty and batches are larger (in the
# bench, from 32 writes in flight on, every save went to the thread), so a
# loaded leader's group commit still runs beside the hub, which keeps
# reading the network and gathering the next batch during the fsync.
INLINE_SAVE_MAX_ENTRIES = 8
_GRACE_OVER = object()  # what the grace timer hands a waiting _Job.get()


class _Job:
    """One call handed to a :class:`_DiskThread`; ``get()`` waits for it in a greenlet."""

    __slots__ = ("args", "delivered", "done", "error", "finished", "fn", "owner", "value", "waiter")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], waiter: Any, done: Any,
                 owner: _DiskThread) -> None:
        self.fn, self.args, self.waiter, self.owner = fn, args, waiter, owner
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False  # set by the thread
        self.done = done  # an OS lock, held until the thread has finished the call
        self.delivered = False  # set when the outcome is handed over (by the hub, or by get() itself)

    def ready(self) -> bool:
        return self.delivered

    def get(self) -> Any:
        """The call's value, or its exception raised here (the waiting greenlet may be killed).

        The hub hands the outcome over when the thread signals it; past
        :data:`DISK_WAIT_GRACE_S` the caller blocks the process on the call.
        """
        if not self.delivered:
            grace = self.owner._grace  # one reusable loop timer: cheaper than a gevent.Timeout per call
            grace.again(self.waiter.switch, _GRACE_OVER)  # the whole grace (see _DiskThread)
            try:
                value = self.waiter.get()
            finally:
                grace.stop()
            if value is not _GRACE_OVER:
                return value
            if not self.delivered:  # the grace ran out: the thread may be starved of the GIL
                self.done.acquire()  # blocks this OS thread (GIL released) until the call is done
                self.done.release()
                self.owner._handed(self)
                if self.error is not None:
                    raise self.error
                return self.value
        return self.waiter.get()  # handed over already: the waiter holds the outcome


class _DiskThread:
    """One OS thread that runs the store's blocking calls while the gevent hub runs on.

    Replaces ``gevent.get_hub().threadpool`` for the store: the thread waits
    on a bare lock and signals the hub through one async watcher, instead of
    a Python-level queue and condition and a result object per call.  On the
    Raft commit path every save crosses it twice (hub -> thread -> hub), and
    gevent's pool made each crossing cost several GIL hand-offs and context
    switches: measured ~5 context switches and ~0.1 ms of CPU per save in the
    worker alone (benchmarks: nomad-bench raft, /proc ctxt_switches).
    The hub's watcher callback hands the outcome to the waiting greenlet
    through a gevent ``Waiter``, which switches to it at once; an
    ``AsyncResult`` would wake it one more turn of the loop later.
    One call at a time: :class:`SqliteStorage` serialises them.
    """

    def __init__(self, name: str) -> None:
        import gevent
        from gevent.hub import Waiter
        from gevent.monkey import get_original

        start_new_thread, allocate_lock = get_original("_thread", ["start_new_thread", "allocate_lock"])
        self._waiter = Waiter
        self._lock = allocate_lock
        self._go = allocate_lock()
        self._go.acquire()
        self._job: _Job | None = None
        self._stopped = False
        # A repeating timer armed with again(): each arming counts the whole grace.  A one-shot
        # libev timer re-armed with start() after stop() counts only what its last arming left
        # (ev_timer_stop keeps the remaining time), so once waits had added up to the grace,
        # every later wait ran out at once and blocked the process on every disk call.
        self._grace = gevent.get_hub().loop.timer(DISK_WAIT_GRACE_S, DISK_WAIT_GRACE_S)
        self._async = gevent.get_hub().loop.async_()
        self._async.start(self._finished)
        self._async.ref = False  # an idle store must not keep the hub's loop alive
        self.name = name
        start_new_thread(self._run, ())

    def spawn(self, fn: Callable[..., T], *args: Any) -> _Job:
        """Start *fn(*args)* in the thread; ``get()`` on the returned job waits for it."""
        if self._stopped:
            raise RuntimeError(f"disk thread of {self.name!r} stopped")
        done = self._lock()
        done.acquire()
        job = self._job = _Job(fn, args, self._waiter(), done, self)
        self._async.ref = True
        self._go.release()
        return job

    def _handed(self, job: _Job) -> None:
        job.delivered = True
        if job is self._job:
            self._async.ref = False  # idle again: the loop need not stay alive for the store

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._job = None
            self._go.release()
            self._async.close()

    def _run(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            try:
                job.value = job.fn(*job.args)
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller as itself
                job.error = exc
            job.finished = True
            job.done.release()
            if self._stopped:
                return
            self._async.send()

    def _finished(self) -> None:
        """In the hub: the thread said it is done (sends may coalesce; only one job runs)."""
        job = self._job
        if job is None or not job.finished or job.delivered:
            return
        self._handed(job)
        # Last: with a greenlet waiting, the Waiter switches to it now, and it
        # may spawn the next job before this returns.  With none (it was
        # killed), the Waiter keeps the outcome for the next get().
        if job.error is not None:
            job.waiter.throw(job.error)
        else:
            job.waiter.switch(job.value)


# Rows per INSERT statement: a batch goes in as one statement of the next
# power of two rows (up to 1024; a larger batch as several), its unused rows
# bound to NULL and filtered out -- 11 statement texts, each prepared once and
# cached by the sqlite3 module.  Every statement is one sqlite3_step, and the
# sqlite3 module lets the GIL go around each step: executemany, a step per
# row, made the disk thread win the GIL back from a busy hub once per entry
# -- measured 1.4 ms per group commit of ~120 entries on the leader of
# nomad-bench raft, where the fsync itself took 0.2 ms.  1024 rows is 5120
# bound values, far under SQLite's limit (32766 since 3.32; 999 before, hence
# _multi_row).
_INSERT_MAX_ROWS = 1024
_INSERT_SQL = {k: "INSERT INTO log(idx, term, kind, data, crc) SELECT * FROM (VALUES "
                  + ",".join(["(?, ?, ?, ?, ?)"] * k) + ") WHERE column1 IS NOT NULL"
               for k in (1 << b for b in range(11))}
_ROW_PAD = (None,) * 5


def _insert_entries(db: sqlite3.Connection, entries: Sequence[Entry], multi_row: bool) -> None:
    """Insert *entries* as log rows with one statement per 1024 of them (see _INSERT_SQL), or
    one row per statement where this SQLite binds too few values for that."""
    values: list[Any] = []
    for e in entries:
        index, term, kind, data = e.index, e.term, e.kind, e.data
        values += (index, term, kind, data, entry_crc(index, term, kind, data))
    if not multi_row:
        db.executemany(_INSERT_SQL[1], [values[i:i + 5] for i in range(0, len(values), 5)])
        return
    n, at = len(entries), 0
    while at < n:
        rows = min(n - at, _INSERT_MAX_ROWS)
        k = 1 << (rows - 1).bit_length()
        db.execute(_INSERT_SQL[k], values[5 * at:5 * (at + rows)] + list(_ROW_PAD * (k - rows)))
        at += rows


def _multi_row(db: sqlite3.Connection) -> bool:
    """Whether this connection's SQLite binds enough values for the largest chunk."""
    try:
        limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python < 3.11: assume the oldest limit
        limit = 999
    return limit >= 5 * _INSERT_MAX_ROWS


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def entry_crc(index: int, term: int, kind: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(_ENTRY_HEAD.pack(index, term, kind)))


def snapshot_crc(index: int, term: int, voters: str, learners: str, data: bytes) -> int:
    v, lr = voters.encode(), learners.encode()
    head = _SNAP_HEAD.pack(index, term, len(v), len(lr))
    return zlib.crc32(data, zlib.crc32(head + v + lr))


def hard_state_crc(term: int, vote: str) -> int:
    return zlib.crc32(struct.pack(">Q", term) + vote.encode())


class SqliteStorage:
    """A :class:`~actors.raft.storage.RaftStorage` in one SQLite file; see the module docstring.

    ``check`` runs ``PRAGMA quick_check`` at open (O(file size); seconds for
    a multi-GB file).  Opening validates the format and structure; ``load``
    also reads every row and verifies its CRC.
    """

    def __init__(self, path: str, *, synchronous: str = "FULL", use_threadpool: bool = False,
                 check: bool = True) -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, got {synchronous!r}")
        self.path = os.path.abspath(path)
        self.synchronous = synchronous
        self.use_threadpool = use_threadpool
        self._threadpool: Any = None
        if use_threadpool:
            self._threadpool = _DiskThread(os.path.basename(self.path))
        self._busy = False
        self._pending: Any = None  # the threadpool's result of an interrupted call
        self._db: sqlite3.Connection | None = None
        self._snap_index = 0
        self._last_index = 0
        self._snap_file: str | None = None  # the recorded snapshot's file, if its data is in one
        self._multi_row = False  # INSERT many log rows per statement (set when connected)
        try:
            self._call(self._open, check)
        except BaseException:
            if self._threadpool is not None:
                self._threadpool.stop()  # no store, no thread left waiting for work
            raise

    # ------------------------------------------------------------ contract
    def load(self) -> tuple[int, str, Snapshot | None, list[Entry]]:
        return self._call(self._load)

    def verify(self) -> None:
        """Read and check everything now, in the caller's thread.

        The agent calls this before any actor starts, so a corrupt store is one
        clear start-up error (and not a report from a threadpool worker).
        """
        if self._busy:
            raise RuntimeError(f"raft store {self.path!r} used concurrently (one caller at a time)")
        self._load()

    def save(self, *, hard_state: tuple[int, str] | None = None, snapshot: Snapshot | None = None,
             truncate_from: int | None = None, entries: Sequence[Entry] = (), idle: bool = False) -> None:
        if hard_state is None and snapshot is None and truncate_from is None:
            if not entries:
                return
            if idle and len(entries) <= INLINE_SAVE_MAX_ENTRIES:
                self._call(self._save, None, None, None, entries, here=True)
                return
        self._call(self._save, hard_state, snapshot, truncate_from, entries)

    def compact(self, snapshot: Snapshot, keep_from: int | None = None) -> None:
        check_snapshot(snapshot)
        if snapshot[0] < self._snap_index:
            return  # stale: we already hold a later snapshot
        first = snapshot[0] + 1 if keep_from is None else min(keep_from, snapshot[0] + 1)
        if self._last_index < snapshot[0]:
            first = snapshot[0] + 1  # the log does not reach it: replaced whole
        staged = self._staged_file(snapshot)
        self._call(self._save, None, snapshot, None, (), first, staged)

    def snapshot_file(self, index: int, term: int) -> str:
        return f"{self.path}.snapshot-{index:020d}-{term}"

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Write *snapshot* durably to its own file, for a later :meth:`compact` of it to
        record instead of writing the data into the database (where the Raft actor waits).

        Touches no SQLite state: safe from another thread or a forked child.
        """
        check_snapshot(snapshot)
        index, term, voters, learners, data = snapshot
        vj, lj = json.dumps(list(voters)), json.dumps(list(learners))
        final = self.snapshot_file(index, term)
        tmp = f"{final}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for part in (_SNAP_FILE_HEAD.pack(_SNAP_FILE_MAGIC, index, term, len(data),
                                              snapshot_crc(index, term, vj, lj, data)), data):
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(os.path.dirname(final))

    def _staged_file(self, snapshot: Snapshot) -> tuple[str, int] | None:
        """(file name, crc) of a staged file holding exactly *snapshot*'s data, else None."""
        index, term, _, _, data = snapshot
        path = self.snapshot_file(index, term)
        try:
            with open(path, "rb") as f:
                head = f.read(_SNAP_FILE_HEAD.size)
                size = os.fstat(f.fileno()).st_size
        except OSError:
            return None
        if len(head) != _SNAP_FILE_HEAD.size:
            return None
        magic, fidx, fterm, length, crc = _SNAP_FILE_HEAD.unpack(head)
        if (magic, fidx, fterm, length) != (_SNAP_FILE_MAGIC, index, term, len(data)) or \
                size != _SNAP_FILE_HEAD.size + length:
            return None
        return os.path.basename(path), crc

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            self._call(db.close)
        if self._threadpool is not None and not self._busy:
            self._threadpool.stop()

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def snapshot_index(self) -> int:
        return self._snap_index

    # ------------------------------------------------------------ plumbing
    def _call(self, fn: Callable[..., T], *args: Any, here: bool = False) -> T:
        """Run *fn* in the store's disk thread, or (without one, or *here* and no call of a
        killed greenlet still running there) in the caller's; one call at a time either way."""
        if self._busy:
            raise RuntimeError(f"raft store {self.path!r} used concurrently (one caller at a time)")
        self._busy = True
        try:
            if self._threadpool is None or (here and self._pending is None):
                return fn(*args)
            if self._pending is not None:
                # An earlier call's greenlet was killed while its worker ran: let the worker
                # finish before the connection is touched again.
                try:
                    self._pending.get()
                except Exception:  # noqa: BLE001 -- that call's failure, not this one's
                    pass
                self._pending = None
            result = self._pending = self._threadpool.spawn(fn, *args)
            try:
                return result.get()
            finally:
                if result.ready():
                    self._pending = None
        finally:
            self._busy = False

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(f"raft store {self.path!r} is closed")
        return self._db

    def _corrupt(self, problem: str) -> StorageCorrupt:
        return StorageCorrupt(self.path, problem)

    def _connect(self, path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=0.0,
                             check_same_thread=not self.use_threadpool)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise self._corrupt(f"cannot switch to WAL mode (journal_mode is {mode})")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            # Take the lock now (a read under EXCLUSIVE holds it until close).
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self._multi_row = _multi_row(db)
        except BaseException:
            db.close()
            raise
        return db

    # ------------------------------------------------------------ open
    def _open(self, check: bool) -> None:
        path = self.path
        if not os.path.exists(path):
            if os.path.exists(path + "-wal"):
                raise self._corrupt("the database file is missing but its -wal file exists")
            try:
                self._create(path)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"cannot create raft store {path!r}: {exc}") from None
        else:
            self._check_header(path)
        try:
            self._db = self._connect(path)
            self._validate(check)
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StorageLocked(f"raft store {path!r} is in use by another process") from None
            raise self._corrupt(f"cannot open: {exc}") from None
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self._corrupt(self._describe(exc)) from None
        except BaseException:
            self._close_quietly()
            raise

    def _check_header(self, path: str) -> None:
        """Refuse a file that is not a SQLite database before SQLite writes to it."""
        try:
            with open(path, "rb") as f:
                head = f.read(100)
        except OSError as exc:
            raise StorageError(f"raft store {path!r} cannot be read: {exc}") from None
        if len(head) < 100:
            raise self._corrupt(f"file is {len(head)} bytes, shorter than a SQLite header (truncated?)")
        if not head.startswith(b"SQLite format 3\x00"):
            raise self._corrupt(f"not a SQLite database (header starts {head[:16]!r})")

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _describe(self, exc: sqlite3.DatabaseError) -> str:
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        msg = str(exc)
        if "not a database" in msg:
            return f"not a SQLite database ({size} bytes; {msg})"
        if "malformed" in msg:
            return f"damaged or truncated SQLite file ({size} bytes; {msg})"
        return f"{type(exc).__name__}: {msg}"

    def _create(self, path: str) -> None:
        """Build an empty store beside *path* and rename it into place (atomic, durable)."""
        for stale in glob.glob(glob.escape(path) + ".init-*"):  # left by a crash mid-creation
            os.unlink(stale)
        tmp = f"{path}.init-{os.getpid()}"
        db = self._connect(tmp)
        try:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                db.execute(stmt)
            db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                           [("format", FORMAT_VERSION), ("term", 0), ("vote", ""),
                            ("hard_crc", hard_state_crc(0, ""))])
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()  # checkpoints the WAL into the file and removes it
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _validate(self, check: bool) -> None:
        db = self._conn()
        app = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app != APPLICATION_ID or not {"meta", "log", "snapshot"} <= tables:
            if not tables:
                raise self._corrupt("an empty SQLite file, not a raft store (it was never initialised,"
                                    " or it was truncated to nothing)")
            raise self._corrupt(f"not a raft store (application_id {app:#x}, tables {sorted(tables)})")
        if check:
            problems = [r[0] for r in db.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise self._corrupt(f"quick_check failed: {'; '.join(problems)}")
        row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None:
            raise self._corrupt("no format version in meta")
        if row[0] != FORMAT_VERSION:
            raise self._corrupt(f"format version {row[0]!r}, this build reads version {FORMAT_VERSION}")
        columns = {r[1] for r in db.execute("PRAGMA table_info(snapshot)")}
        if "file" not in columns:
            db.execute("ALTER TABLE snapshot ADD COLUMN file TEXT")
        snap = db.execute("SELECT idx FROM snapshot WHERE id = 1").fetchone()
        self._snap_index = snap[0] if snap is not None else 0
        last = db.execute("SELECT max(idx) FROM log").fetchone()[0]
        self._last_index = last if last is not None else self._snap_index

    # ------------------------------------------------------------ load
    def _load(self) -> tuple[int, str, Snapshot | None, list[Entry]]:
        try:
            return self._load_checked()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(self._describe(exc)) from None

    def _load_checked(self) -> tuple[int, str, Snapshot | None, list[Entry]]:
        db = self._conn()
        db.execute("BEGIN")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            term, vote, crc = meta.get("term"), meta.get("vote"), meta.get("hard_crc")
            if type(term) is not int or type(vote) is not str or type(crc) is not int:
                raise self._corrupt(f"bad hard state in meta: term={term!r} vote={vote!r} crc={crc!r}")
            if hard_state_crc(term, vote) != crc:
                raise self._corrupt(f"hard state (term {term}, vote {vote!r}) fails its CRC check")

            snapshot: Snapshot | None = None
            row = db.execute("SELECT idx, term, voters, learners, data, crc, file FROM snapshot"
                             " WHERE id = 1").fetchone()
            self._snap_file = None
            if row is not None:
                data = row[4]
                if row[6] is not None:
                    data = self._read_snapshot_file(row[6], row[0], row[1])
                    self._snap_file = row[6]
                snapshot = self._decode_snapshot(*row[:4], data, row[5])
            snap_index = snapshot[0] if snapshot is not None else 0

            entries: list[Entry] = []
            append = entries.append
            # The log may start before the snapshot (trailing entries kept by
            # compaction) but must run on past it without a gap.
            expect: int | None = None
            prev_term = 0
            for idx, eterm, kind, data, ecrc in db.execute(
                    "SELECT idx, term, kind, data, crc FROM log ORDER BY idx"):
                if expect is None:
                    if idx > snap_index + 1:
                        raise self._corrupt(f"log gap: entry {idx} follows {snap_index} (the snapshot's index)")
                    expect = idx
                    if snapshot is not None and idx == snap_index + 1:
                        prev_term = snapshot[1]
                if idx != expect:
                    raise self._corrupt(f"log gap: entry {idx} follows {expect - 1}")
                if type(data) is not bytes or type(eterm) is not int or type(kind) is not int:
                    raise self._corrupt(f"log entry {idx} has wrong column types")
                if entry_crc(idx, eterm, kind, data) != ecrc:
                    raise self._corrupt(f"log entry {idx} (term {eterm}, {len(data)} bytes) fails its"
                                        " CRC check")
                if eterm < prev_term:
                    raise self._corrupt(f"log entry {idx} has term {eterm} after term {prev_term}")
                if idx == snap_index and snapshot is not None and eterm != snapshot[1]:
                    raise self._corrupt(f"log entry {idx} has term {eterm}, the snapshot at it term"
                                        f" {snapshot[1]}")
                append(Entry(term=eterm, index=idx, kind=kind, data=data))
                prev_term = eterm
                expect += 1
            if entries and entries[-1].index < snap_index:
                raise self._corrupt(f"the log ends at {entries[-1].index}, before the snapshot at {snap_index}")
        finally:
            db.execute("COMMIT")
        self._snap_index = snap_index
        self._last_index = entries[-1].index if entries else snap_index
        self._remove_stale_snapshot_files()
        return term, vote, snapshot, entries

    def _read_snapshot_file(self, name: Any, idx: Any, term: Any) -> bytes:
        if type(name) is not str or os.path.basename(name) != name or not name:
            raise self._corrupt(f"snapshot row names a bad file {name!r}")
        path = os.path.join(os.path.dirname(self.path), name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise self._corrupt(f"snapshot file {path!r} cannot be read: {exc.strerror or exc}") from None
        if len(raw) < _SNAP_FILE_HEAD.size:
            raise self._corrupt(f"snapshot file {path!r} is truncated ({len(raw)} bytes)")
        magic, fidx, fterm, length, _ = _SNAP_FILE_HEAD.unpack_from(raw)
        if magic != _SNAP_FILE_MAGIC or (fidx, fterm) != (idx, term):
            raise self._corrupt(f"snapshot file {path!r} is not the snapshot at index {idx}")
        if len(raw) != _SNAP_FILE_HEAD.size + length:
            raise self._corrupt(f"snapshot file {path!r} has {len(raw) - _SNAP_FILE_HEAD.size} bytes of data,"
                                f" its header says {length} (truncated?)")
        return raw[_SNAP_FILE_HEAD.size:]

    def _remove_stale_snapshot_files(self, below: int | None = None) -> None:
        """Files of snapshots no longer recorded (replaced, or staged and never recorded):
        all of them, or only finished ones of snapshots before index *below*."""
        base = os.path.basename(self.path) + ".snapshot-"
        folder = os.path.dirname(self.path)
        for name in os.listdir(folder):
            if not name.startswith(base) or name == self._snap_file:
                continue
            if below is not None:
                index = name[len(base):].split("-", 1)[0]
                if "." in name[len(base):] or not index.isdigit() or int(index) >= below:
                    continue  # being written, or a later one: not ours to judge now
            try:
                os.unlink(os.path.join(folder, name))
            except OSError as exc:  # tried again at the next open
                log.warning("raft store: cannot remove the stale snapshot file %s: %s", name, exc)

    def _decode_snapshot(self, idx: Any, term: Any, voters: Any, learners: Any, data: Any,
                         crc: Any) -> Snapshot:
        if not (type(idx) is int and type(term) is int and type(voters) is str and type(learners) is str
                and type(data) is bytes and type(crc) is int):
            raise self._corrupt("snapshot row has wrong column types")
        if snapshot_crc(idx, term, voters, learners, data) != crc:
            raise self._corrupt(f"snapshot at index {idx} ({len(data)} bytes) fails its CRC check")
        try:
            v, lr = json.loads(voters), json.loads(learners)
        except ValueError:
            raise self._corrupt(f"snapshot at index {idx} has unreadable membership") from None
        return idx, term, tuple(v), tuple(lr), data

    # ------------------------------------------------------------ save
    def _save(self, hard_state: tuple[int, str] | None, snapshot: Snapshot | None,
              truncate_from: int | None, entries: Sequence[Entry], keep_from: int | None = None,
              staged: tuple[str, int] | None = None) -> None:
        """One atomic, synced write.  A *snapshot* drops the log entries below
        *keep_from*, by default every entry up to its index; with *staged*
        (file name, crc) its data is already in that file and only named here."""
        # Validate before writing (a host bug must not leave half a Ready on disk).
        snap_index = self._snap_index
        if snapshot is not None:
            check_snapshot(snapshot)
            if snapshot[0] < snap_index:
                raise ValueError(f"snapshot at {snapshot[0]} is older than the stored one at {snap_index}")
            snap_index = snapshot[0]
        last = max(self._last_index, snap_index)
        if truncate_from is not None:
            last = min(last, max(truncate_from - 1, snap_index))
        new = [e for e in entries if e.index > snap_index]
        check_append(new, last)
        if hard_state is not None:
            term, vote = hard_state
            if not (type(term) is int and type(vote) is str):
                raise ValueError(f"hard_state must be (int, str), got {hard_state!r}")

        db = self._conn()
        try:
            if (hard_state is None and snapshot is None and truncate_from is None and self._multi_row
                    and 0 < len(new) <= _INSERT_MAX_ROWS):
                # The common save, a batch of entries: one INSERT outside BEGIN..COMMIT
                # is a transaction of its own (autocommit), atomic and synced when it
                # ends as any COMMIT is -- one sqlite3_step, so the disk thread takes the
                # GIL back once for the whole save instead of three times.
                _insert_entries(db, new, True)
            else:
                self._save_transaction(db, hard_state, snapshot, truncate_from, new, keep_from, staged)
        except sqlite3.DatabaseError as exc:
            # A failed write (disk full, I/O error) must stop the server, not be retried blindly.
            raise StorageError(f"raft store {self.path!r}: write failed: {exc}") from exc
        self._snap_index = snap_index
        self._last_index = new[-1].index if new else last
        if snapshot is not None:
            self._snap_file = staged[0] if staged is not None else None
            # The one replaced, and any staged for an earlier index that a
            # snapshot installed from the leader overtook.
            self._remove_stale_snapshot_files(below=snap_index + 1)

    def _save_transaction(self, db: sqlite3.Connection, hard_state: tuple[int, str] | None,
                          snapshot: Snapshot | None, truncate_from: int | None, new: list[Entry],
                          keep_from: int | None, staged: tuple[str, int] | None) -> None:
        """_save's writes as one BEGIN IMMEDIATE .. COMMIT (arguments validated by _save)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if hard_state is not None:
                term, vote = hard_state
                db.executemany("UPDATE meta SET value = ? WHERE key = ?",
                               [(term, "term"), (vote, "vote"), (hard_state_crc(term, vote), "hard_crc")])
            if snapshot is not None:
                idx, sterm, voters, learners, data = snapshot
                vj, lj = json.dumps(list(voters)), json.dumps(list(learners))
                if staged is not None:
                    row = (idx, sterm, vj, lj, b"", staged[1], staged[0])
                else:
                    row = (idx, sterm, vj, lj, data, snapshot_crc(idx, sterm, vj, lj, data), None)
                db.execute("INSERT OR REPLACE INTO snapshot(id, idx, term, voters, learners, data, crc, file)"
                           " VALUES (1, ?, ?, ?, ?, ?, ?, ?)", row)
                db.execute("DELETE FROM log WHERE idx < ?", (idx + 1 if keep_from is None else keep_from,))
            if truncate_from is not None:
                db.execute("DELETE FROM log WHERE idx >= ?", (truncate_from,))
            if new:
                _insert_entries(db, new, self._multi_row)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
