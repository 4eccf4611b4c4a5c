"""A pure harness for RaftCore: no runtime, messages delivered by hand (etcd's network test style)."""

from __future__ import annotations

import random
from typing import Any

from actors.raft.core import LEADER, RaftCore, RaftTimings


class Net:
    def __init__(self, ids: list[str], *, seed: int = 1, timings: RaftTimings | None = None,
                 bootstrap: bool = True) -> None:
        self.cores = {i: RaftCore(i, random.Random(f"{seed}:{i}"), timings) for i in ids}
        self.queue: list[tuple[str, str, Any]] = []
        self.cut: set[tuple[str, str]] = set()
        self.applied: dict[str, list] = {i: [] for i in ids}
        self.down: set[str] = set()
        self.reads: dict[str, list] = {i: [] for i in ids}
        if bootstrap:
            for c in self.cores.values():
                c.bootstrap(tuple(ids))
        self.flush()

    def add(self, node: str) -> RaftCore:
        c = RaftCore(node, random.Random(f"x:{node}"))
        self.cores[node] = c
        self.applied[node] = []
        return c

    def flush(self) -> None:
        for i in sorted(self.cores):
            if i in self.down:
                continue
            c = self.cores[i]
            while True:
                r = c.take_ready()
                if r.empty():
                    break
                self._handle(i, c, r)

    def _handle(self, i: str, c: "RaftCore", r: "Any") -> None:
        if True:
            c.persisted(c.last_index)
            for to, m in r.messages:
                self.queue.append((i, to, m))
            if r.snapshot is not None and r.snapshot[0] > 0:
                self.applied[i] = [("snapshot", r.snapshot[0])]
            self.reads.setdefault(i, []).extend(r.reads)
            for e in r.committed:
                self.applied[i].append((e.index, e.term, e.kind, e.data))

    def deliver(self, limit: int = 100000) -> int:
        n = 0
        self.flush()
        while self.queue and n < limit:
            self.flush()
            q, self.queue = self.queue, []
            for src, dst, m in q:
                n += 1
                if (src, dst) in self.cut or dst in self.down or src in self.down or dst not in self.cores:
                    continue
                self.cores[dst].step(m)
                self.cores[dst].check_invariants(full=True)
            self.flush()
        return n

    def tick(self, n: int = 1, nodes: list[str] | None = None) -> None:
        for _ in range(n):
            for i in sorted(nodes or self.cores):
                if i not in self.down:
                    self.cores[i].tick()
            self.flush()
            self.deliver()

    def isolate(self, node: str) -> None:
        for o in self.cores:
            if o != node:
                self.cut |= {(node, o), (o, node)}

    def heal(self) -> None:
        self.cut.clear()

    def leaders(self) -> list[str]:
        return sorted(i for i, c in self.cores.items() if c.role == LEADER and i not in self.down)

    def elect(self, node: str) -> None:
        for c in self.cores.values():
            c.elapsed = max(c.elapsed, c.t.election_ticks)  # time passes: every lease has expired
        self.cores[node].campaign()
        self.flush()
        self.deliver()
        assert self.cores[node].role == LEADER, self.cores[node].status()

    def propose(self, node: str, data: bytes) -> Any:
        res = self.cores[node].propose(data)
        self.flush()
        self.deliver()
        return res
