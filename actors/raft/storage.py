"""Raft's durable state: the storage contract and the simulator's disk.

The Raft host hands every :class:`~actors.raft.core.Ready` to
:meth:`RaftStorage.save` in ONE call -- hard state, snapshot, truncation and
new entries -- so a real store can make it one transaction and one fsync.
Only after ``save`` returns may the host send the Ready's messages (a vote or
an append acknowledgement promises the state is durable) and call
``RaftCore.persisted``.  At start-up the host calls :meth:`RaftStorage.load`
and passes the result to ``RaftCore.restore``.

Two implementations:

* :class:`MemoryStorage` (here): the simulator's disk.  The simulator keeps
  one per node and hands it to the restarted peer, so state survives a
  simulated crash.  ``fsync_lies`` models a disk that acknowledges a sync it
  did not do: :meth:`MemoryStorage.crash` then loses every write since the
  last honest sync.
* :class:`actors.raft.sqlite_store.SqliteStorage`: production, one SQLite file
  in WAL mode with ``synchronous=FULL``.

Invariants every store keeps (and checks, raising ``ValueError`` on a host
bug): the log is contiguous and starts right after the snapshot's index (or
at 1 without a snapshot); appended entries continue it; a snapshot never goes
backwards.  Entries handed to ``save`` at or below the snapshot's index are
already covered by it and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from actors.raft.messages import Entry

__all__ = ["MemoryStorage", "RaftStorage", "Snapshot", "StorageCorrupt", "StorageError", "StorageLocked"]

# (index, term, voters, learners, data) -- as in Ready.snapshot and RaftCore.restore.
Snapshot = tuple[int, int, tuple[str, ...], tuple[str, ...], bytes]


class StorageError(Exception):
    """The Raft store cannot be used."""


class StorageCorrupt(StorageError):
    """The store on disk is damaged or is not a Raft store; the message names the file and the fault.

    Never "repair" by starting empty: a server that forgets its vote or its log
    can break Raft's safety.  Restore the file from a backup or remove the
    server from the cluster and re-add it with an empty data dir.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"raft store {path!r} is corrupt: {problem}")
        self.path = path
        self.problem = problem


class StorageLocked(StorageError):
    """Another process holds the store open (two agents pointed at one data dir)."""


class RaftStorage(Protocol):
    def load(self) -> tuple[int, str, Snapshot | None, list[Entry]]:
        """(term, vote, latest snapshot or None, the log's entries in order).

        The log runs on past the snapshot without a gap; it may also start
        before it, with the trailing entries :meth:`compact` kept."""
        ...

    def save(self, *, hard_state: tuple[int, str] | None, snapshot: Snapshot | None,
             truncate_from: int | None, entries: list[Entry], idle: bool = False) -> None:
        """Atomically and durably (synced before return): set term/vote if given; if snapshot given,
        store it (replacing the previous one) and delete log entries with index <= snapshot index;
        then delete entries with index >= truncate_from if given; then append entries.

        *idle* is a hint, never a change of durability: the caller has nothing else waiting
        (its inbox is empty), so a store that hands its writes to a thread of its own may
        write a small save in the caller's thread instead and skip the hand-off."""
        ...

    def compact(self, snapshot: Snapshot, keep_from: int | None = None) -> None:
        """Store this snapshot and drop log entries below *keep_from* (durable); by default,
        and never beyond it, every entry up to the snapshot's index."""
        ...

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Optional: write the snapshot's data durably ahead of :meth:`compact`, from any
        thread or a forked child, so that compact need not write it."""
        ...

    def close(self) -> None:
        ...


def check_snapshot(snapshot: Snapshot) -> None:
    """Raise ValueError unless *snapshot* has the shape (int, int, tuple[str], tuple[str], bytes)."""
    if not (isinstance(snapshot, tuple) and len(snapshot) == 5):
        raise ValueError(f"snapshot must be (index, term, voters, learners, data), got {snapshot!r:.80}")
    index, term, voters, learners, data = snapshot
    if type(index) is not int or type(term) is not int or index < 0 or term < 0:
        raise ValueError(f"snapshot index/term must be non-negative ints, got {index!r}/{term!r}")
    for name, members in (("voters", voters), ("learners", learners)):
        if not (isinstance(members, tuple) and all(type(m) is str for m in members)):
            raise ValueError(f"snapshot {name} must be a tuple of str, got {members!r:.80}")
    if not isinstance(data, bytes):
        raise ValueError(f"snapshot data must be bytes, got {type(data).__name__}")


def check_append(entries: list[Entry], last_index: int) -> None:
    """Raise ValueError unless *entries* continue a log ending at *last_index* without a gap."""
    expect = last_index + 1
    for e in entries:
        if e.index != expect:
            raise ValueError(f"log append out of order: entry {e.index} where {expect} was expected")
        expect += 1


@dataclass(slots=True)
class _State:
    term: int = 0
    vote: str = ""
    snapshot: Snapshot | None = None
    log: list[Entry] = field(default_factory=list)  # contiguous, through the snapshot's index at least

    def copy(self) -> _State:
        return _State(self.term, self.vote, self.snapshot, list(self.log))


class MemoryStorage:
    """The simulator's disk: plain Python objects, with crash and lying-fsync faults.

    ``fsync_lies`` (settable at any time): while True, ``save``/``compact``
    write to a volatile layer that :meth:`crash` throws away, back to the
    state at the last honest sync.  An honest sync is any ``save``/``compact``
    made while ``fsync_lies`` is False, or :meth:`sync`; like a real fsync it
    also makes the earlier unsynced writes durable.  With ``fsync_lies``
    False, :meth:`crash` loses nothing.

    ``stall_s`` is a hint for the simulator (how long a save should appear to
    take); this class ignores it.
    """

    def __init__(self, *, fsync_lies: bool = False, stall_s: float = 0.0) -> None:
        self.fsync_lies = fsync_lies
        self.stall_s = stall_s
        self._live = _State()
        # The state at the last honest sync, taken at the first lying write
        # after it (copy on write); None when nothing is unsynced.
        self._durable: _State | None = None
        self.saves = 0  # save() and compact() calls, for the simulator's stats
        self.staged = 0  # stage_snapshot() calls
        self.crashes = 0
        self.closed = False

    # ------------------------------------------------------------ contract
    def load(self) -> tuple[int, str, Snapshot | None, list[Entry]]:
        s = self._live
        return s.term, s.vote, s.snapshot, list(s.log)

    def save(self, *, hard_state: tuple[int, str] | None = None, snapshot: Snapshot | None = None,
             truncate_from: int | None = None, entries: list[Entry] | tuple[Entry, ...] = (),
             idle: bool = False) -> None:
        s = self._live
        snap_index = s.snapshot[0] if s.snapshot is not None else 0
        if snapshot is not None:
            check_snapshot(snapshot)
            if snapshot[0] < snap_index:
                raise ValueError(f"snapshot at {snapshot[0]} is older than the stored one at {snap_index}")
        # Validate everything before changing anything: a save is atomic.
        log = s.log
        new_snap = snapshot[0] if snapshot is not None else snap_index
        base = log[0].index - 1 if log else snap_index  # index of the entry before log[0]
        # A snapshot saved here (installed from a leader) replaces every entry up to it.
        keep_from = max(new_snap - base, 0) if snapshot is not None else 0  # log[keep_from:] survives
        keep_to = len(log)
        if truncate_from is not None:
            keep_to = min(keep_to, max(truncate_from - base - 1, keep_from))
        last = base + keep_to if keep_to > keep_from else new_snap
        new = [e for e in entries if e.index > new_snap]
        check_append(new, last)
        if hard_state is not None and not (type(hard_state[0]) is int and type(hard_state[1]) is str):
            raise ValueError(f"hard_state must be (int, str), got {hard_state!r}")

        self._before_write()
        if hard_state is not None:
            s.term, s.vote = hard_state
        if snapshot is not None:
            s.snapshot = snapshot
        if keep_from or keep_to < len(log):
            s.log = log[keep_from:keep_to]
        s.log.extend(new)
        self.saves += 1

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        check_snapshot(snapshot)
        self.staged += 1  # nothing to write ahead: compact() is a memory copy here

    def compact(self, snapshot: Snapshot, keep_from: int | None = None) -> None:
        check_snapshot(snapshot)
        s = self._live
        if s.snapshot is not None and snapshot[0] < s.snapshot[0]:
            return  # stale: we already hold a later snapshot
        first = snapshot[0] + 1 if keep_from is None else min(keep_from, snapshot[0] + 1)
        if s.log and first <= s.log[0].index:
            self._before_write()
            s.snapshot = snapshot
            self.saves += 1
            return
        if not s.log or s.log[-1].index < snapshot[0]:
            self.save(snapshot=snapshot)  # nothing of the log reaches it: replaced whole
            return
        self._before_write()
        s.snapshot = snapshot
        s.log = s.log[first - s.log[0].index:]
        self.saves += 1

    def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------ faults
    def sync(self) -> None:
        """An honest sync: everything written so far becomes durable."""
        self._durable = None

    def crash(self) -> None:
        """The machine lost power: unsynced writes (only possible with fsync_lies) are lost."""
        self.crashes += 1
        if self._durable is not None:
            self._live, self._durable = self._durable, None
        self.closed = False

    @property
    def unsynced(self) -> bool:
        """True when a crash() now would lose writes."""
        return self._durable is not None

    def _before_write(self) -> None:
        if self.fsync_lies:
            if self._durable is None:
                self._durable = self._live.copy()
        else:
            self._durable = None  # this honest sync also syncs earlier lying writes

    # ------------------------------------------------------------ inspection
    @property
    def last_index(self) -> int:
        s = self._live
        if s.log:
            return s.log[-1].index
        return s.snapshot[0] if s.snapshot is not None else 0
