"""The server's gossip snapshot: ``<data_dir>/server/serf/snapshot`` (Serf's snapshotter).

An append-only text file of membership events and the Lamport clock, so a
restarted server knows whom it was gossiping with and rejoins them by itself
(an operator's ``nomad server join`` is not needed again), and does not stamp
new intents with times the cluster has already seen.  Lines, as Serf writes
them::

    alive: <name> <ip:port>      a member joined
    not-alive: <name>            it left or failed
    clock: <n>                   the last Lamport time seen
    leave                        this server left gracefully

Replaying gives the members alive at the end and the clock.  After a
``leave`` they are forgotten (a server that left does not rejoin on restart)
unless ``rejoin_after_leave`` is set.  Lines that do not parse are skipped
with a warning, so a line cut short by a crash costs that line only.  When
the file outgrows twice the size its live content needs (and at least
``min_compact_bytes``), it is rewritten with just the live members and the
clock.  Appends are not fsynced one by one (as in Serf: this is a hint for
rejoining, not a record anything depends on); a leave and closing are.

This is an edge: the gossip actor calls it, the simulator passes none.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field

log = logging.getLogger("nomad.gossip")

# Serf's MinSnapshotSize: below this the file is never compacted.
MIN_COMPACT_BYTES = 128 * 1024
BYTES_PER_MEMBER = 128  # Serf's estimate of one member's lines, for the compaction threshold


@dataclass
class Replayed:
    alive: dict[str, str] = field(default_factory=dict)  # name -> address
    clock: int = 0
    left: bool = False  # the last word was a leave (and rejoin_after_leave is off)


def replay_lines(lines: list[str], rejoin_after_leave: bool) -> Replayed:
    """What a snapshot's lines say: members alive at the end, the clock, whether we left."""
    out = Replayed()
    for line in lines:
        if line.startswith("alive: "):
            name, _, addr = line[len("alive: "):].rpartition(" ")
            if not name or not addr:
                log.warning("serf snapshot: cannot parse the member of line %r", line)
                continue
            out.alive[name] = addr
            out.left = False
        elif line.startswith("not-alive: "):
            out.alive.pop(line[len("not-alive: "):], None)
        elif line.startswith(("clock: ", "event-clock: ", "query-clock: ")):
            value = line.split(": ", 1)[1]
            if not value.isdigit():
                log.warning("serf snapshot: cannot parse the clock of line %r", line)
                continue
            if line.startswith("clock: "):
                out.clock = int(value)
        elif line == "leave":
            if rejoin_after_leave:
                log.info("serf snapshot: ignoring the previous leave (rejoin_after_leave)")
                continue
            out.alive.clear()
            out.clock = 0
            out.left = True
        elif line.startswith(("#", "coordinate: ")) or not line:
            continue
        else:
            log.warning("serf snapshot: unrecognised line %r", line)
    return out


class SerfSnapshot:
    """The snapshot file of one gossip member; replayed when opened.

    The file itself is reached only through ``_open_file``, ``_write``,
    ``_sync``, ``_replace`` and ``_close_file``: the simulator's twin
    (``sim.gossip_cluster.MemorySerfSnapshot``) keeps the bytes in memory.
    """

    def __init__(self, path: str, *, rejoin_after_leave: bool = False,
                 min_compact_bytes: int = MIN_COMPACT_BYTES) -> None:
        self.path = path
        self.rejoin_after_leave = rejoin_after_leave
        self.min_compact_bytes = min_compact_bytes
        self._fd = -1
        raw = self._open_file()
        lines = raw.decode("utf-8", errors="replace").split("\n")
        if lines and lines[-1]:
            log.warning("serf snapshot: dropping an unfinished last line %r", lines[-1])
        state = replay_lines(lines[:-1], rejoin_after_leave)
        self.alive = dict(state.alive)
        self.last_clock = state.clock
        self.replayed = state
        self._leaving = False
        self._size = raw.rfind(b"\n") + 1
        if self._size != len(raw):
            self._truncate(self._size)  # cut off what was cut short: the next line must not continue it

    # ------------------------------------------------------------ start-up
    def previous_members(self, me: str, rng: random.Random) -> list[tuple[str, str]]:
        """(name, address) of the members alive when the file ended, but us, in random order
        (Serf shuffles them: restarted servers do not all ask the same one first)."""
        prev = sorted((n, a) for n, a in self.alive.items() if n != me)
        rng.shuffle(prev)
        return prev

    # ------------------------------------------------------------ recording
    def member_event(self, kind: str, name: str, addr: str) -> None:
        if self._leaving:
            return  # nothing after a leave: a restart must not find members to rejoin
        if kind == "member-join":
            self.alive[name] = addr
            self._append(f"alive: {name} {addr}\n")
        elif kind in ("member-leave", "member-failed"):
            self.alive.pop(name, None)
            self._append(f"not-alive: {name}\n")

    def update_clock(self, last_seen: int) -> None:
        """Record the Lamport clock if it moved (Serf: after member events and every 0.5 s)."""
        if self._leaving or last_seen <= self.last_clock:
            return
        self.last_clock = last_seen
        self._append(f"clock: {last_seen}\n")

    def leave(self) -> None:
        """This server is leaving gracefully: unless it rejoins after a leave, it forgets its members."""
        if self._leaving:
            return
        self._leaving = True
        if not self.rejoin_after_leave:
            self.alive.clear()
        self._append("leave\n")
        self._sync()

    def close(self) -> None:
        if self._fd < 0:
            return
        self._sync()
        self._close_file()
        self._fd = -1

    # ------------------------------------------------------------ file
    def _append(self, line: str) -> None:
        if self._fd < 0:
            return
        data = line.encode()
        try:
            self._write(data)
        except OSError as exc:
            log.error("serf snapshot: cannot append to %s: %s", self.path, exc)
            return
        self._size += len(data)
        if self._size > max(self.min_compact_bytes, 2 * BYTES_PER_MEMBER * len(self.alive)):
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with only the live members and the clock."""
        body = "".join(f"alive: {n} {a}\n" for n, a in sorted(self.alive.items()))
        body += f"clock: {self.last_clock}\n"
        try:
            self._replace(body.encode())
        except OSError as exc:
            log.error("serf snapshot: compaction of %s failed: %s", self.path, exc)
            return
        self._size = len(body.encode())

    def _open_file(self) -> bytes:
        """Open for appending; what it holds."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return raw

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def _write(self, data: bytes) -> None:
        os.write(self._fd, data)

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            log.error("serf snapshot: cannot sync %s: %s", self.path, exc)

    def _replace(self, body: bytes) -> None:
        """The file becomes *body*: written beside it, synced, renamed over it."""
        tmp = self.path + ".compact"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _close_file(self) -> None:
        os.close(self._fd)
