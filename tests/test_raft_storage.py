"""Raft storage: both stores keep the contract; SQLite survives SIGKILL and refuses damaged files."""

from __future__ import annotations

import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from actors.raft.messages import CONFIG, NORMAL, Entry
from actors.raft.sqlite_store import SqliteStorage
from actors.raft.storage import MemoryStorage, StorageCorrupt, StorageError, StorageLocked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ents(first: int, last: int, term: int = 1, tag: bytes = b"") -> list[Entry]:
    return [Entry(term=term, index=i, kind=NORMAL, data=tag + b"cmd-%d" % i) for i in range(first, last + 1)]


def save(s, *, hard_state=None, snapshot=None, truncate_from=None, entries=()):
    s.save(hard_state=hard_state, snapshot=snapshot, truncate_from=truncate_from, entries=list(entries))


class Disk:
    """Opens a store and 'restarts' it: a fresh SqliteStorage on the same file, or the same
    MemoryStorage after a crash (what the simulator does)."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.path = str(tmp_path / "raft.db")
        self.mem = MemoryStorage()
        self.store = self._open()

    def _open(self):
        if self.kind == "memory":
            return self.mem
        return SqliteStorage(self.path, synchronous="NORMAL")  # durability is tested separately

    def reopen(self):
        self.store.close()
        if self.kind == "memory":
            self.mem.crash()
        self.store = self._open()
        return self.store

    def close(self) -> None:
        self.store.close()


@pytest.fixture(params=["memory", "sqlite"])
def disk(request, tmp_path):
    d = Disk(request.param, tmp_path)
    yield d
    d.close()


# ---------------------------------------------------------------- the contract, both stores


def test_empty_store_loads_empty(disk):
    assert disk.store.load() == (0, "", None, [])
    assert disk.reopen().load() == (0, "", None, [])


def test_hard_state_round_trip(disk):
    s = disk.store
    save(s, hard_state=(3, "n2"))
    assert s.load()[:2] == (3, "n2")
    save(s, hard_state=(4, ""))
    assert disk.reopen().load()[:2] == (4, "")
    save(disk.store, entries=ents(1, 2))  # no hard state: term and vote unchanged
    assert disk.reopen().load()[:2] == (4, "")


def test_entries_append_and_truncate(disk):
    s = disk.store
    log = [*ents(1, 5), Entry(term=1, index=6, kind=CONFIG, data=b"\x00\xff" * 100)]
    save(s, hard_state=(1, "n1"), entries=log)
    assert s.load() == (1, "n1", None, log)
    # A new leader overwrites the tail: truncate from 4, append 4..5 of term 2, in one save.
    tail = ents(4, 5, term=2)
    save(s, hard_state=(2, "n3"), truncate_from=4, entries=tail)
    want = (2, "n3", None, log[:3] + tail)
    assert s.load() == want
    assert disk.reopen().load() == want
    save(disk.store, truncate_from=99)  # beyond the end: nothing to drop
    save(disk.store, truncate_from=1)  # everything
    assert disk.store.load() == (2, "n3", None, [])
    save(disk.store, entries=ents(1, 1, term=2))
    assert disk.reopen().load() == (2, "n3", None, ents(1, 1, term=2))


@pytest.mark.parametrize("multi_row", [True, False])
def test_batches_of_any_size_are_stored_whole_and_in_order(tmp_path, multi_row):
    """A save's entries go in as one INSERT per 1024 (padded to a power of two), or one
    row per statement on a SQLite that binds too few values: every size comes back exact."""
    s = SqliteStorage(str(tmp_path / "raft.db"), synchronous="NORMAL")
    s._multi_row = multi_row
    log, nxt = [], 1
    for n in (1, 2, 3, 7, 122, 1023, 1025, 2049, 5):
        batch = [Entry(term=1 + i // 1000, index=i, kind=(CONFIG if i % 97 == 0 else NORMAL),
                       data=b"%d" % i * (i % 5)) for i in range(nxt, nxt + n)]
        save(s, entries=batch)
        log += batch
        nxt += n
    assert s.load() == (0, "", None, log)
    assert s.last_index == nxt - 1
    s.close()
    assert SqliteStorage(str(tmp_path / "raft.db")).load()[3] == log


def test_snapshot_and_compaction(disk):
    s = disk.store
    boot = (0, 0, ("n1", "n2", "n3"), (), b"")
    save(s, hard_state=(1, ""), snapshot=boot, entries=ents(1, 10))
    assert s.load() == (1, "", boot, ents(1, 10))
    snap = (6, 1, ("n1", "n2", "n3"), ("n4",), b"state@6" * 1000)
    s.compact(snap)
    assert s.load() == (1, "", snap, ents(7, 10))
    s.compact((4, 1, ("n1",), (), b"older"))  # stale: ignored
    assert s.load() == (1, "", snap, ents(7, 10))
    save(s, entries=ents(11, 12))
    want = (1, "", snap, ents(7, 12))
    assert disk.reopen().load() == want
    s = disk.store
    s.compact((12, 1, ("n1", "n2"), (), b"all"))  # the whole log
    assert s.load() == (1, "", (12, 1, ("n1", "n2"), (), b"all"), [])
    save(s, entries=ents(13, 14))
    assert disk.reopen().load() == (1, "", (12, 1, ("n1", "n2"), (), b"all"), ents(13, 14))


def test_compaction_keeps_trailing_entries_and_later_saves_continue_them(disk):
    s = disk.store
    save(s, hard_state=(1, ""), entries=ents(1, 10))
    snap = (8, 1, ("n1",), (), b"state@8")
    s.compact(snap, 5)  # raft_trailing_logs: entries 5..8 stay behind the snapshot
    assert s.load() == (1, "", snap, ents(5, 10))
    save(s, truncate_from=10, entries=ents(10, 11, term=2))  # a new leader rewrites the tail
    want = (1, "", snap, ents(5, 9) + ents(10, 11, term=2))
    assert s.load() == want
    assert disk.reopen().load() == want
    s = disk.store
    snap2 = (11, 2, ("n1",), (), b"state@11")
    s.compact(snap2, 3)  # never brings back what an earlier compaction dropped
    assert s.load() == (1, "", snap2, ents(5, 9) + ents(10, 11, term=2))
    s.compact((11, 2, ("n1",), (), b"state@11"))  # by default: everything up to it
    assert disk.reopen().load() == (1, "", snap2, [])
    # An installed snapshot (save with one) still replaces the whole log up to it.
    save(disk.store, entries=ents(12, 14, term=2))
    disk.store.compact((13, 2, ("n1",), (), b"s13"), 12)
    snap3 = (20, 3, ("n1",), (), b"leader-state")
    save(disk.store, snapshot=snap3, truncate_from=13)
    assert disk.reopen().load() == (1, "", snap3, [])


def test_installed_snapshot_replaces_a_conflicting_log(disk):
    """The core's InstallSnapshot Ready: snapshot, truncate_from=snap+1, then new entries."""
    s = disk.store
    save(s, hard_state=(1, "n1"), entries=ents(1, 8))
    snap = (20, 3, ("n1", "n2", "n3"), (), b"leader-state")
    save(s, hard_state=(3, ""), snapshot=snap, truncate_from=21, entries=ents(21, 22, term=3))
    want = (3, "", snap, ents(21, 22, term=3))
    assert s.load() == want
    assert disk.reopen().load() == want


def test_matching_snapshot_keeps_the_log_suffix(disk):
    s = disk.store
    save(s, entries=ents(1, 8))
    snap = (5, 1, ("n1",), (), b"s5")
    save(s, snapshot=snap)
    assert s.load() == (0, "", snap, ents(6, 8))
    # Entries at or below the snapshot index in the same Ready are covered by it.
    snap2 = (9, 1, ("n1",), (), b"s9")
    save(s, snapshot=snap2, entries=ents(9, 11))
    assert disk.reopen().load() == (0, "", snap2, ents(10, 11))


def test_bad_saves_raise_and_change_nothing(disk):
    s = disk.store
    snap = (3, 1, ("n1",), (), b"s")
    save(s, hard_state=(1, "n1"), snapshot=snap, entries=ents(4, 6))
    before = s.load()
    with pytest.raises(ValueError, match="out of order"):
        save(s, hard_state=(9, "x"), entries=ents(8, 9))  # gap after 6
    with pytest.raises(ValueError, match="out of order"):
        save(s, hard_state=(9, "x"), truncate_from=5, entries=ents(6, 6))  # gap after 4
    with pytest.raises(ValueError, match="older"):
        save(s, hard_state=(9, "x"), snapshot=(2, 1, ("n1",), (), b""))
    with pytest.raises(ValueError, match="snapshot"):
        save(s, snapshot=(7, 1, ["n1"], (), b""))
    assert s.load() == before
    assert disk.reopen().load() == before
    save(disk.store, entries=ents(7, 7))  # still writable, contiguity known after reopen
    with pytest.raises(ValueError):
        save(disk.store, entries=ents(9, 9))


class Model:
    """The contract, written as plainly as possible."""

    def __init__(self) -> None:
        self.term, self.vote, self.snap, self.log = 0, "", None, {}

    def save(self, hard_state, snapshot, truncate_from, entries) -> None:
        if hard_state is not None:
            self.term, self.vote = hard_state
        if snapshot is not None:
            self.snap = snapshot
            self.log = {i: e for i, e in self.log.items() if i > snapshot[0]}
        if truncate_from is not None:
            self.log = {i: e for i, e in self.log.items() if i < truncate_from}
        floor = self.snap[0] if self.snap else 0
        for e in entries:
            if e.index > floor:
                self.log[e.index] = e

    def state(self):
        return self.term, self.vote, self.snap, [self.log[i] for i in sorted(self.log)]


@pytest.mark.parametrize("seed", range(4))
def test_random_ready_sequences_match_the_model(disk, seed):
    """Random but well-formed Readys (as the core emits them) against the model, with restarts."""
    rng = random.Random(seed)
    model, s = Model(), disk.store

    def term_at(i: int) -> int:
        if i in model.log:
            return model.log[i].term
        return model.snap[1] if model.snap and model.snap[0] == i else model.term

    for step in range(120):
        snap_index = model.snap[0] if model.snap else 0
        last = max(model.log, default=snap_index)
        hard = (model.term + rng.randrange(2), rng.choice(["", "n1", "n2"])) if rng.random() < 0.4 else None
        snapshot = None
        if rng.random() < 0.1:
            at = rng.randint(snap_index, last + 3)
            snapshot = (at, term_at(at), ("n1", "n2"), ("n3",) if rng.random() < 0.5 else (),
                        rng.randbytes(rng.randrange(50)))
        floor = snapshot[0] if snapshot else snap_index
        end = floor if snapshot and snapshot[0] > last else last
        trunc = None
        if rng.random() < 0.2:
            trunc = rng.randint(floor + 1, end + 2)
            end = min(end, trunc - 1)
        term = hard[0] if hard else model.term
        new = [Entry(term=term, index=i, kind=rng.choice([NORMAL, CONFIG]),
                     data=rng.randbytes(rng.randrange(30)))
               for i in range(end + 1, end + 1 + rng.randrange(4))]
        if new and floor >= 1 and rng.random() < 0.2:  # entries the snapshot already covers
            new = ents(max(floor - 1, 1), floor, term=term) + new
        model.save(hard, snapshot, trunc, new)
        save(s, hard_state=hard, snapshot=snapshot, truncate_from=trunc, entries=new)
        if rng.random() < 0.1:
            at = rng.randint(max(floor - 2, 0), max(model.log, default=floor))
            compacted = (at, term_at(at), ("n1",), (), b"c%d" % at)
            s.compact(compacted)
            if at >= (model.snap[0] if model.snap else 0):
                model.save(None, compacted, None, [])
        if step % 30 == 29:
            s = disk.reopen()
        assert s.load() == model.state(), f"step {step}"


# ---------------------------------------------------------------- MemoryStorage faults


def test_memory_crash_without_fsync_lies_loses_nothing():
    m = MemoryStorage()
    save(m, hard_state=(2, "n1"), entries=ents(1, 3))
    m.crash()
    assert m.load() == (2, "n1", None, ents(1, 3))
    assert not m.unsynced


def test_memory_fsync_lies_loses_only_unsynced_writes():
    m = MemoryStorage()
    save(m, hard_state=(1, "n1"), entries=ents(1, 3))
    durable = m.load()
    m.fsync_lies = True
    save(m, hard_state=(2, "n2"), truncate_from=3, entries=ents(3, 5, term=2))
    m.compact((4, 2, ("n1",), (), b"s"))
    assert m.load() == (2, "n2", (4, 2, ("n1",), (), b"s"), ents(5, 5, term=2))  # reads see the writes
    assert m.unsynced
    m.crash()
    assert m.load() == durable
    # An honest sync (explicit, or any save once the disk stops lying) keeps the earlier lies too.
    save(m, entries=ents(4, 4))
    m.sync()
    m.crash()
    assert m.load()[3] == ents(1, 4)
    save(m, entries=ents(5, 5))
    m.fsync_lies = False
    save(m, entries=ents(6, 6))
    m.crash()
    assert m.load()[3] == ents(1, 6)


def test_memory_load_returns_a_copy():
    m = MemoryStorage(stall_s=0.5)
    save(m, entries=ents(1, 2))
    m.load()[3].clear()
    assert m.load()[3] == ents(1, 2)


# ---------------------------------------------------------------- SQLite: durability

CHILD = textwrap.dedent("""
    import sys
    from actors.raft.messages import Entry
    from actors.raft.sqlite_store import SqliteStorage
    path, batch = sys.argv[1], int(sys.argv[2])
    s = SqliteStorage(path)
    term, vote, snap, log = s.load()
    i = log[-1].index if log else 0
    print("ready", i, flush=True)
    while True:
        es = [Entry(term=i + 1, index=j, data=b"payload-%d" % j * 20) for j in range(i + 1, i + batch + 1)]
        s.save(hard_state=(i + batch, "n1"), snapshot=None, truncate_from=None, entries=es)
        i += batch
        print(i, flush=True)
""")


def _run_and_kill(path: str, batch: int, kill_after: int, deadline_s: float = 30.0) -> list[int]:
    """Run the writer child, SIGKILL it once *kill_after* saves are acknowledged; return every
    index it printed (each printed only after save() returned)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path, str(batch)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT})
    acked: list[int] = []
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    try:
        while len(acked) < kill_after:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"writer stalled or died: {proc.stderr.read().decode()[-2000:]}")
            if sel.select(timeout=left):
                chunk = os.read(proc.stdout.fileno(), 65536)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                acked += [int(x) for x in lines if x and not x.startswith(b"ready")]
        proc.send_signal(signal.SIGKILL)  # mid-save, most likely: the child saves flat out
        proc.wait(timeout=10)
        buf += proc.stdout.read()  # lines already in the pipe were acknowledged too
        acked += [int(x) for x in buf.split(b"\n") if x and not x.startswith(b"ready")]
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("batch", [1, 25])
def test_sigkill_loses_no_acknowledged_save(tmp_path, batch):
    path = str(tmp_path / "raft.db")
    printed: list[int] = []
    for round_ in range(3):
        acked = _run_and_kill(path, batch, kill_after=40 + 17 * round_)
        assert acked, "the writer acknowledged nothing"
        printed += acked
        s = SqliteStorage(path)  # recovers the WAL the killed child left behind
        term, vote, _snap, log = s.load()
        s.close()
        have = {e.index for e in log}
        missing = [i for i in printed if i not in have]
        assert not missing, f"round {round_}: acknowledged indexes lost: {missing[:10]}"
        assert [e.index for e in log] == list(range(1, len(log) + 1))
        assert term >= printed[-1] and vote == "n1"
        assert all(e.data == b"payload-%d" % e.index * 20 for e in log)


# ---------------------------------------------------------------- SQLite: corruption


def _filled(tmp_path, n: int = 50) -> str:
    path = str(tmp_path / "raft.db")
    s = SqliteStorage(path)
    save(s, hard_state=(5, "n2"), snapshot=(0, 0, ("n1", "n2", "n3"), (), b""),
         entries=[Entry(term=1, index=i, data=b"UNIQUE-%04d-" % i + bytes(range(256)) * 8)
                  for i in range(1, n + 1)])
    s.close()
    return path


def _open_and_load(path: str):
    s = SqliteStorage(path)
    try:
        return s.load()
    finally:
        s.close()


def _raw(path: str, *sql: tuple) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for stmt in sql:
        db.execute(*stmt)
    db.close()


def test_filled_store_reopens_cleanly(tmp_path):
    path = _filled(tmp_path)
    term, vote, snap, log = _open_and_load(path)
    assert (term, vote, len(log), snap[2]) == (5, "n2", 50, ("n1", "n2", "n3"))


@pytest.mark.parametrize("keep", [0, 50, 4096, "half", "all-but-one-page"])
def test_truncated_file_is_corrupt(tmp_path, keep):
    path = _filled(tmp_path, n=200)
    size = os.path.getsize(path)
    keep = {"half": size // 2, "all-but-one-page": size - 4096}.get(keep, keep)
    os.truncate(path, keep)
    with pytest.raises(StorageCorrupt, match=path) as err:
        _open_and_load(path)
    assert "truncat" in str(err.value) or "damaged" in str(err.value) or "empty" in str(err.value)


def test_garbage_file_is_corrupt(tmp_path):
    path = str(tmp_path / "raft.db")
    with open(path, "wb") as f:
        f.write(random.Random(1).randbytes(16384))
    with pytest.raises(StorageCorrupt, match="not a SQLite database") as err:
        _open_and_load(path)
    assert path in str(err.value)
    assert open(path, "rb").read() == random.Random(1).randbytes(16384)  # left as found


def test_garbage_after_a_valid_header_is_corrupt(tmp_path):
    path = _filled(tmp_path)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(random.Random(2).randbytes(os.path.getsize(path) - 100))
    with pytest.raises(StorageCorrupt, match=path):
        _open_and_load(path)


def test_a_trailing_log_that_stops_short_of_or_disagrees_with_its_snapshot_is_corrupt(tmp_path):
    path = _filled(tmp_path)
    s = SqliteStorage(path)
    s.compact((30, 1, ("n1", "n2", "n3"), (), b"state@30"), 20)
    s.close()
    assert [e.index for e in _open_and_load(path)[3]] == list(range(20, 51))
    _raw(path, ("DELETE FROM log WHERE idx >= 30",))
    with pytest.raises(StorageCorrupt, match="the log ends at 29, before the snapshot at 30"):
        _open_and_load(path)
    (tmp_path / "other").mkdir()
    path = _filled(tmp_path / "other")
    s = SqliteStorage(path)
    s.compact((30, 2, ("n1", "n2", "n3"), (), b"state@30 of another term"), 20)
    s.close()
    with pytest.raises(StorageCorrupt, match="log entry 30 has term 1, the snapshot at it term 2"):
        _open_and_load(path)


def _query(path: str, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _staged_store(tmp_path, index: int = 30, data: bytes = b"state@30" * 5000):
    path = _filled(tmp_path)
    s = SqliteStorage(path)
    snap = (index, 1, ("n1", "n2", "n3"), (), data)
    s.stage_snapshot(snap)
    s.compact(snap, index - 5)
    return path, s, snap


def test_a_staged_snapshot_is_recorded_by_name_and_read_back_from_its_file(tmp_path):
    path, s, snap = _staged_store(tmp_path)
    s.close()
    row = _query(path, "SELECT length(data), file FROM snapshot")[0]
    assert row == (0, os.path.basename(s.snapshot_file(30, 1)))  # the data is not in the database
    term, vote, got, entries = _open_and_load(path)
    assert got == snap and entries[0].index == 25
    # A later snapshot replaces the file; an installed one (save) goes back into the row.
    s = SqliteStorage(path)
    s.load()
    snap2 = (40, 1, ("n1", "n2", "n3"), (), b"state@40")
    s.stage_snapshot(snap2)
    s.compact(snap2)
    assert not os.path.exists(s.snapshot_file(30, 1)) and os.path.exists(s.snapshot_file(40, 1))
    s.stage_snapshot((45, 1, ("n1",), (), b"staged when the leader's snapshot came"))
    snap3 = (60, 2, ("n1",), (), b"installed")
    save(s, hard_state=(2, ""), snapshot=snap3, truncate_from=41)
    assert not os.path.exists(s.snapshot_file(40, 1)) and not os.path.exists(s.snapshot_file(45, 1))
    s.close()
    assert _open_and_load(path)[2] == snap3


def test_a_compaction_without_a_staged_file_keeps_the_data_in_the_row(tmp_path):
    path = _filled(tmp_path)
    s = SqliteStorage(path)
    snap = (30, 1, ("n1", "n2", "n3"), (), b"inline")
    s.stage_snapshot((30, 1, ("n1", "n2", "n3"), (), b"other bytes"))  # not this snapshot's data
    s.compact(snap)
    s.close()
    assert _query(path, "SELECT data, file FROM snapshot")[0] == (b"inline", None)
    assert _open_and_load(path)[2] == snap


@pytest.mark.parametrize("damage,problem", [
    ("remove", "cannot be read"),
    ("truncate", "truncated"),
    ("flip", "fails its CRC check"),
])
def test_a_missing_or_damaged_snapshot_file_is_corrupt(tmp_path, damage, problem):
    path, s, snap = _staged_store(tmp_path)
    file = s.snapshot_file(30, 1)
    s.close()
    if damage == "remove":
        os.unlink(file)
    elif damage == "truncate":
        os.truncate(file, os.path.getsize(file) - 10)
    else:
        raw = bytearray(open(file, "rb").read())
        raw[-100] ^= 0x01
        open(file, "wb").write(bytes(raw))
    with pytest.raises(StorageCorrupt, match=problem) as err:
        _open_and_load(path)
    assert "snapshot" in str(err.value)


def test_stale_snapshot_files_are_removed_when_the_store_opens(tmp_path):
    path, s, snap = _staged_store(tmp_path)
    s.stage_snapshot((45, 1, ("n1",), (), b"staged, never recorded: a crash came first"))
    leftover = s.snapshot_file(50, 1) + ".tmp-123"
    open(leftover, "wb").write(b"half written")
    s.close()
    assert _open_and_load(path)[2] == snap
    names = sorted(n for n in os.listdir(tmp_path) if ".snapshot-" in n)
    assert names == [os.path.basename(s.snapshot_file(30, 1))]


def test_a_store_from_before_snapshot_files_opens_and_gains_the_column(tmp_path):
    path = _filled(tmp_path)
    _raw(path, ("ALTER TABLE snapshot DROP COLUMN file",))
    assert _open_and_load(path)[3][-1].index == 50
    columns = [r[1] for r in _query(path, "PRAGMA table_info(snapshot)")]
    assert columns[-1] == "file"


def test_flipped_byte_in_entry_data_fails_the_crc(tmp_path):
    path = _filled(tmp_path)
    _raw(path, ("UPDATE log SET data = ? WHERE idx = 17", (b"UNIQUE-0017-" + b"\x01" + bytes(range(1, 256))
                                                          + bytes(range(256)) * 7,)))
    with pytest.raises(StorageCorrupt, match=r"log entry 17 .*CRC") as err:
        _open_and_load(path)
    assert path in str(err.value)


def test_flipped_bit_on_disk_is_caught(tmp_path):
    """A real bit flip inside a stored value: SQLite's page checks pass, the CRC does not."""
    path = _filled(tmp_path)
    raw = bytearray(open(path, "rb").read())
    at = raw.find(b"UNIQUE-0033-") + 12 + 100
    raw[at] ^= 0x04
    open(path, "wb").write(bytes(raw))
    with pytest.raises(StorageCorrupt, match=r"log entry 33 .*CRC"):
        _open_and_load(path)


@pytest.mark.parametrize("tamper,problem", [
    (("UPDATE log SET term = 2 WHERE idx = 9",), "log entry 9 .*CRC"),
    (("DELETE FROM log WHERE idx = 20",), "gap: entry 21 follows 19"),
    (("DELETE FROM log WHERE idx = 1",), "gap: entry 2 follows 0"),
    (("UPDATE snapshot SET data = x'00'",), "snapshot .*CRC"),
    (("UPDATE snapshot SET voters = '[\"evil\"]'",), "snapshot .*CRC"),
    (("UPDATE meta SET value = 6 WHERE key = 'term'",), "hard state .*CRC"),
    (("UPDATE meta SET value = 2 WHERE key = 'format'",), "format version 2"),
    (("DELETE FROM meta WHERE key = 'format'",), "no format version"),
    (("PRAGMA application_id = 0",), "not a raft store"),
])
def test_tampered_rows_are_corrupt(tmp_path, tamper, problem):
    path = _filled(tmp_path)
    _raw(path, tamper)
    with pytest.raises(StorageCorrupt, match=problem) as err:
        _open_and_load(path)
    assert path in str(err.value)


def test_other_sqlite_database_is_not_a_raft_store(tmp_path):
    path = str(tmp_path / "other.db")
    _raw(path, ("CREATE TABLE t(x)",))
    with pytest.raises(StorageCorrupt, match="not a raft store"):
        _open_and_load(path)


def test_missing_file_with_a_leftover_wal_is_corrupt(tmp_path):
    path = str(tmp_path / "raft.db")
    open(path + "-wal", "wb").write(b"x" * 100)
    with pytest.raises(StorageCorrupt, match="-wal"):
        SqliteStorage(path)


def test_second_opener_is_refused(tmp_path):
    path = str(tmp_path / "raft.db")
    s = SqliteStorage(path)
    try:
        with pytest.raises(StorageLocked, match=path):
            SqliteStorage(path)
    finally:
        s.close()
    SqliteStorage(path).close()  # released on close


def test_closed_store_refuses_writes(tmp_path):
    s = SqliteStorage(str(tmp_path / "raft.db"))
    s.close()
    with pytest.raises(StorageError, match="closed"):
        save(s, entries=ents(1, 1))


def test_bad_synchronous_mode_rejected(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStorage(str(tmp_path / "raft.db"), synchronous="SOMETIMES")


# ---------------------------------------------------------------- SQLite: gevent threadpool


def _ticker(period_s: float) -> tuple[Any, list[int]]:
    """A greenlet counting its turns every *period_s* (0: every turn of the hub) into the list's one
    item: the hub ran while it counts."""
    import gevent

    ticks = [0]

    def tick() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(period_s)

    return gevent.spawn(tick), ticks


def test_threadpool_store_lets_other_greenlets_run(tmp_path):
    import gevent

    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    g, ticks = _ticker(0)
    try:
        gevent.sleep(0)
        for i in range(1, 21):
            save(s, hard_state=(i, "n1"), entries=ents(i, i))
        assert ticks[0] > 20, "the hub was blocked during the saves"
        assert s.load() == (20, "n1", None, ents(1, 20))
        with pytest.raises(ValueError):  # errors cross the threadpool as themselves
            save(s, entries=ents(30, 30))
    finally:
        g.kill()
        s.close()
    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    assert s.load()[3] == ents(1, 20)
    s.close()


def test_threadpool_save_interrupted_by_a_kill_completes_before_the_next_call(tmp_path):
    import gevent

    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    try:
        save(s, entries=ents(1, 1))
        g = gevent.spawn(save, s, entries=ents(2, 2))
        gevent.sleep(0)  # g is now waiting on the worker
        g.kill()
        save(s, entries=ents(3, 3))  # waits for the orphaned worker, then continues the log
        assert s.load()[3] == ents(1, 3)
    finally:
        s.close()


def test_creation_failure_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="cannot create"):
        SqliteStorage(str(tmp_path / "no-such-dir" / "raft.db"))


def test_leftovers_of_an_interrupted_creation_are_ignored(tmp_path):
    path = tmp_path / "raft.db"
    (tmp_path / "raft.db.init-99999").write_bytes(b"half a database")
    s = SqliteStorage(str(path))
    assert s.load() == (0, "", None, [])
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft.db"]


def test_threadpool_saves_finish_while_greenlets_keep_the_hub_busy(tmp_path):
    # Two greenlets passing messages in a loop: the hub gives the GIL up only
    # for instants and the disk thread used to starve -- a save was held back
    # for good.  Past DISK_WAIT_GRACE_S the waiting greenlet blocks the
    # process on the save, which then finishes.
    import time

    import gevent
    import gevent.queue

    from actors.raft.sqlite_store import DISK_WAIT_GRACE_S

    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    q1, q2 = gevent.queue.Queue(), gevent.queue.Queue()
    passes = 0

    def ping() -> None:
        nonlocal passes
        while True:
            q1.put(1)
            q2.get()
            passes += 1

    def pong() -> None:
        while True:
            q1.get()
            q2.put(1)

    busy = [gevent.spawn(ping), gevent.spawn(pong)]
    try:
        gevent.sleep(0.01)
        worst = 0.0
        for i in range(1, 4):
            t0 = time.perf_counter()
            save(s, hard_state=(i, "n1"), entries=ents(i, i))
            worst = max(worst, time.perf_counter() - t0)
        before = passes
        gevent.sleep(0.01)
        assert passes > before, "the busy greenlets stopped"
        assert worst < DISK_WAIT_GRACE_S + 1.0, f"a save took {worst:.3f}s"
        assert s.load() == (3, "n1", None, ents(1, 3))
    finally:
        for g in busy:
            g.kill()
        s.close()


def test_every_disk_wait_gets_the_whole_grace_however_many_came_before(tmp_path, monkeypatch):
    # The grace timer is armed once per wait.  A one-shot libev timer re-armed with
    # start() after stop() counted only what its last arming had left, so once the
    # waits had added up to the grace, every later wait ran out at once and blocked
    # the process on every disk call (seen as ~1 ms hub stalls per fsync on busy
    # servers).  Here the waits add up to six graces; the hub runs through each.
    import gevent
    from gevent.monkey import get_original

    from actors.raft import sqlite_store

    monkeypatch.setattr(sqlite_store, "DISK_WAIT_GRACE_S", 0.1)
    real_sleep = get_original("time", "sleep")
    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    g, ticks = _ticker(0.002)
    try:
        gevent.sleep(0.01)
        during = []
        for _ in range(20):
            before = ticks[0]
            s._call(real_sleep, 0.03)  # a slow disk call, in the disk thread
            during.append(ticks[0] - before)
        assert min(during) >= 3, f"the hub stopped during a disk wait: ticks per wait {during}"
    finally:
        g.kill()
        s.close()


def test_threadpool_store_writes_a_small_idle_save_in_the_callers_thread(tmp_path):
    # save(idle=True) of a few entries skips the disk thread (same transaction and
    # fsync); a larger batch, or any save not marked idle, still goes to the thread.
    import threading

    from actors.raft.sqlite_store import INLINE_SAVE_MAX_ENTRIES

    s = SqliteStorage(str(tmp_path / "raft.db"), use_threadpool=True)
    threads: list[int] = []
    real = s._save

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    s._save = spy  # type: ignore[method-assign]
    try:
        s.save(entries=ents(1, 1), idle=True)
        s.save(entries=ents(2, 2))
        n = INLINE_SAVE_MAX_ENTRIES + 1
        s.save(entries=ents(3, 2 + n), idle=True)
        s.save(hard_state=(2, "n1"), entries=ents(3 + n, 3 + n), idle=True)
        with pytest.raises(ValueError):  # the checks hold in the caller's thread too
            s.save(entries=ents(9 + n, 9 + n), idle=True)
        here = threading.get_ident()
        assert [t == here for t in threads] == [True, False, False, False, True]
    finally:
        s.close()
    s = SqliteStorage(str(tmp_path / "raft.db"))
    assert s.load() == (2, "n1", None, ents(1, 3 + n))
    s.close()
