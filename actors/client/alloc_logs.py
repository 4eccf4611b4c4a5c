"""Reading a task's logs from its allocation directory (an edge: file I/O).

raw_exec writes ``<alloc_dir>/<alloc_id>/alloc/logs/<task>.stdout.0`` and
``.stderr.0`` (Nomad's layout and names).  :class:`AllocLogs` reads a window
of one of them for ``/v1/client/fs/logs/<alloc_id>``: from ``offset`` bytes
after the start, or before the end (``origin=end``), at most ``limit`` bytes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

LOG_TYPES = ("stdout", "stderr")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # IDs and task names become path parts


class LogNotFound(Exception):
    """No such allocation on this client, or no such task log (the message says which)."""


@dataclass(frozen=True, slots=True)
class LogChunk:
    data: bytes
    offset: int  # where data starts in the file
    size: int  # the file's size when read
    file: str  # relative to the allocation directory, as Nomad names it


class AllocLogs:
    def __init__(self, alloc_root: str) -> None:
        self.root = alloc_root

    def read(self, alloc_id: str, task: str, kind: str, *, origin: str = "start", offset: int = 0,
             limit: int = 1 << 20) -> LogChunk:
        if not _SAFE.match(alloc_id) or not _SAFE.match(task):
            raise LogNotFound(f"Unknown allocation \"{alloc_id}\"")
        if kind not in LOG_TYPES:
            raise ValueError(f"invalid log type {kind!r}: want stdout or stderr")
        if origin not in ("start", "end"):
            raise ValueError(f"invalid origin {origin!r}: want start or end")
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        alloc_dir = os.path.join(self.root, alloc_id)
        if not os.path.isdir(alloc_dir):
            raise LogNotFound(f"Unknown allocation \"{alloc_id}\"")
        rel = f"alloc/logs/{task}.{kind}.0"
        try:
            with open(os.path.join(alloc_dir, rel), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = min(size, offset) if origin == "start" else max(0, size - offset)
                f.seek(start)
                data = f.read(min(limit, size - start))
        except FileNotFoundError:
            raise LogNotFound(f"task {task!r} has no {kind} log in allocation {alloc_id}") from None
        return LogChunk(data=data, offset=start, size=size, file=rel)
