"""Linearizability checking for histories of registers (one or many keys).

The checker is the Wing & Gong / Lowe search with memoization, as in
Porcupine (``anishathalye/porcupine``, ``checker.go``): the history becomes a
doubly linked list of call and return events ordered by time; the search
repeatedly *lifts* (linearizes) a call whose operation is legal in the current
model state, and backtracks (*unlifts*) when it reaches a return event whose
operation has not been linearized yet.  A cache of ``(linearized-set, state)``
pairs prunes configurations already explored.  Histories over many keys are
split per key and each key is checked on its own (P-compositionality: a map
of independent registers is linearizable iff every register is).

Operation semantics (per key, the register starts with no value, ``None``):

* ``read``  -- ``result`` is the value read (``None`` = no value yet).
* ``write`` -- ``value`` is written.
* ``cas``   -- ``value`` is ``(expected, new)``; a completed cas with result
  ``True`` (the default) set the register from ``expected`` to ``new``; one
  completed with result ``False`` definitely observed a value ``!= expected``
  and changed nothing.

Completion status:

* ``ok``   -- the operation took effect between its call and its return.
* ``fail`` -- it definitely did not take effect: it is dropped.
* ``info`` -- indeterminate (also: never completed).  A write or cas may have
  taken effect at any point after its call, or never: it has no return bound.
  An indeterminate read constrains nothing and is dropped.

Use :class:`History` to record a history as it happens (times are event
indices), :func:`parse_jepsen` / :func:`load_jepsen` to read Jepsen logs, and
:func:`check` to decide.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CAS", "FAIL", "INFO", "OK", "READ", "WRITE",
    "CheckTimeout", "History", "Op", "Result",
    "check", "check_operations", "load_jepsen", "parse_jepsen",
]

READ = "read"
WRITE = "write"
CAS = "cas"
KINDS = (READ, WRITE, CAS)

OK = "ok"
FAIL = "fail"
INFO = "info"


@dataclass
class Op:
    """One operation of a history.

    ``call`` and ``ret`` are times (event indices or any comparable numbers);
    ``ret`` is ``None`` when the operation has not returned or its outcome is
    unknown (status ``info``).  ``status`` is ``ok``, ``fail``, ``info`` or
    ``None`` (still pending: treated as ``info``).
    """

    id: int
    client: Any
    kind: str
    key: Any = None
    value: Any = None
    result: Any = None
    call: float = 0
    ret: float | None = None
    status: str | None = None

    def __str__(self) -> str:
        arg = "" if self.kind == READ else f" {self.value!r}"
        res = f" -> {self.result!r}" if self.status == OK and self.kind != WRITE else ""
        key = "" if self.key is None else f"[{self.key!r}]"
        ret = "inf" if self.ret is None else f"{self.ret:g}"
        return (f"#{self.id} c{self.client} {self.kind}{key}{arg}{res} "
                f"{self.status or 'pending'} @{self.call:g}..{ret}")


class History:
    """Records a history in event order; an event's time is its index.

    >>> h = History()
    >>> w = h.invoke(1, "write", None, 3)
    >>> r = h.invoke(2, "read", None, None)
    >>> h.ok(w); h.ok(r, 3)
    >>> check(h).linearizable
    True
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._t = 0

    def _tick(self) -> int:
        t = self._t
        self._t += 1
        return t

    def invoke(self, client: Any, kind: str, key: Any = None, value: Any = None) -> int:
        """Start an operation; returns its id.  For ``cas``, ``value`` is ``(expected, new)``."""
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        if kind == CAS:
            expected, new = value  # must be a pair
            value = (expected, new)
        op = Op(id=len(self.ops), client=client, kind=kind, key=key,
                value=None if kind == READ else value, call=self._tick())
        self.ops.append(op)
        return op.id

    def _end(self, op_id: int, status: str) -> Op:
        op = self.ops[op_id]
        if op.status is not None:
            raise ValueError(f"operation {op_id} already completed ({op.status})")
        op.status = status
        t = self._tick()
        if status != INFO:
            op.ret = t
        return op

    def ok(self, op_id: int, result: Any = None) -> None:
        """The operation took effect.  ``result``: the value read (read), ignored
        (write), or whether the cas applied (cas; default ``True``)."""
        op = self._end(op_id, OK)
        if op.kind == CAS:
            op.result = True if result is None else bool(result)
        elif op.kind == READ:
            op.result = result

    def fail(self, op_id: int) -> None:
        """The operation definitely did not take effect."""
        self._end(op_id, FAIL)

    def info(self, op_id: int) -> None:
        """The outcome is unknown: it may take effect at any time after its call."""
        self._end(op_id, INFO)

    def operations(self) -> list[Op]:
        return list(self.ops)

    def __len__(self) -> int:
        return len(self.ops)


@dataclass
class Result:
    """Outcome of :func:`check`.

    On failure, ``key`` is the first key found non-linearizable and
    ``longest`` is the longest sequence of that key's operations the search
    managed to linearize (a debugging aid: the culprit is usually among the
    operations that overlap the end of that prefix).
    """

    linearizable: bool
    key: Any = None
    longest: list[Op] = field(default_factory=list)
    keys: int = 0
    ops: int = 0

    def __bool__(self) -> bool:
        return self.linearizable

    def explain(self) -> str:
        if self.linearizable:
            return f"linearizable ({self.ops} ops over {self.keys} key(s))"
        lines = [f"NOT linearizable: key {self.key!r}; longest linearizable prefix "
                 f"({len(self.longest)} ops):"]
        lines += [f"  {op}" for op in self.longest]
        return "\n".join(lines)


class CheckTimeout(TimeoutError):
    """The search exceeded its time budget (the answer is unknown)."""


# --------------------------------------------------------------------- checker

_K_READ, _K_WRITE, _K_CAS_OK, _K_CAS_NO, _K_CAS_MAYBE = range(5)
_INF = math.inf


def _relevant(op: Op) -> bool:
    if op.status == FAIL:
        return False
    if op.kind == READ and (op.status != OK or op.ret is None):
        return False  # an indeterminate read constrains nothing
    return True


def _dominated(failed: list[int], g: int) -> bool:
    for f in failed:
        if not f & ~g:
            return True
    return False


def _check_key(ops: list[Op], deadline: float | None) -> tuple[bool, list[int]]:
    """Check one register's operations.

    Returns (linearizable, indices of the longest linearized sequence found;
    the latter only on failure).

    Porcupine's search (``checker.go``: entries, lift/unlift, cache) over a
    linked list of the determinate operations' call and return events, plus
    the open-ended operations (indeterminate writes and cas: no return) on a
    second list, where one is a candidate while its call precedes the first
    pending return.  The search succeeds as soon as every determinate
    operation is placed, as the open-ended ones left can all come last (or
    never happen).  It only looks for *canonical* linearizations, which exist
    whenever any does, as any linearization is made canonical by moving
    open-ended operations to the very end:

    * an open-ended operation is placed early only if it changes the state
      (a cas only if it applies), and the operation right after it must be
      one it enabled, i.e. one not legal (or a no-op) in the state before it:
      not a write, nor a failed cas that could as well have come first;
    * of open-ended operations with the same kind and arguments, only the
      earliest called unused one is tried (twins are interchangeable once
      both are called, so the used ones of a group are always its first few).

    Open-ended candidates are tried after the determinate ones.  Pruning: a
    configuration is (L = linearized set, state, after = the state before the
    last operation if that was open-ended, else None; it restricts the next
    operation).  If (L', s, a') failed, L' <= L with L - L' all open-ended,
    and a' is None or a' = a, then (L, s, a) fails too: a canonical
    completion of it would be one of (L', s, a').  With L' = L that is
    Porcupine's cache of (bitset, state).
    """
    n = len(ops)
    if n == 0:
        return True, []
    kind = [0] * n
    arg_a: list[Any] = [None] * n
    arg_b: list[Any] = [None] * n
    is_open = [False] * n
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        determinate = op.status == OK and op.ret is not None
        if op.kind == READ:
            kind[i] = _K_READ
            arg_a[i] = op.result
        elif op.kind == WRITE:
            kind[i] = _K_WRITE
            arg_a[i] = op.value
        elif op.kind == CAS:
            arg_a[i], arg_b[i] = op.value
            if not determinate:
                kind[i] = _K_CAS_MAYBE
            elif op.result is False:
                kind[i] = _K_CAS_NO
            else:
                kind[i] = _K_CAS_OK
        else:
            raise ValueError(f"unknown operation kind {op.kind!r}")
        # Equal times: calls before returns (the operations overlap).
        events.append((op.call, 0, i))
        if determinate:
            if op.ret < op.call:
                raise ValueError(f"operation returns before its call: {op}")
            events.append((op.ret, 1, i))
        else:
            is_open[i] = True
    events.sort()

    # Linked lists in arrays.  Node 0 = head of the determinate events,
    # node 1 = head of the open-ended calls, 2.. = events, then both tails.
    HEAD, OHEAD = 0, 1
    m = len(events)
    TAIL, OTAIL = m + 2, m + 3
    size = m + 4
    nxt = [-1] * size
    prv = [-1] * size
    match = [-1] * size  # determinate call node -> its return node
    opi = [-1] * size
    rank = [0] * size  # position in time order
    rank[TAIL] = rank[OTAIL] = m + 1
    last, olast = HEAD, OHEAD
    call_node = [0] * n
    for pos, (_, is_ret, i) in enumerate(events):
        node = pos + 2
        opi[node] = i
        rank[node] = pos
        if is_open[i]:
            nxt[olast], prv[node], olast = node, olast, node
        else:
            nxt[last], prv[node], last = node, last, node
            if is_ret:
                match[call_node[i]] = node
            else:
                call_node[i] = node
    nxt[last], prv[TAIL] = TAIL, last
    nxt[olast], prv[OTAIL] = OTAIL, olast

    # Groups of open-ended twins; used[g] of group g's first members are used.
    group = [0] * n
    gpos = [0] * n
    groups: dict[tuple[int, Any, Any], int] = {}
    sizes: list[int] = []
    for _, _is_ret, i in events:
        if is_open[i]:
            g = groups.setdefault((kind[i], arg_a[i], arg_b[i]), len(groups))
            if g == len(sizes):
                sizes.append(0)
            group[i] = g
            gpos[i] = sizes[g]
            sizes[g] += 1
    used = [0] * len(sizes)

    bit = [1 << i for i in range(n)]
    open_mask = sum(bit[i] for i in range(n) if is_open[i])
    closed_mask = ((1 << n) - 1) ^ open_mask
    # Configurations that failed: (closed part of L, state, after) -> antichain
    # of the open parts of those L.  ``after`` is None, or (s,) when the last
    # operation placed was open-ended and s is the state before it.
    failed: dict[tuple[int, Any, Any], list[int]] = {}
    # stack of (node, state before, phase, after before, limit before)
    calls: list[tuple[int, Any, int, Any, int]] = []
    longest: list[int] = []
    state: Any = None
    lin = 0
    after: Any = None
    phase = 0  # 0: scanning determinate calls; 1: open-ended calls
    limit = 0  # in phase 1: rank of the first pending return
    entry = nxt[HEAD]
    steps = 0
    while nxt[HEAD] != TAIL:
        if phase == 0:
            ret_node = match[entry]
            if ret_node < 0:  # first pending return: now the open-ended calls
                phase = 1
                limit = rank[entry]
                entry = nxt[OHEAD]
                continue
            i = opi[entry]
            k = kind[i]
            a = arg_a[i]
            # Right after an open-ended operation, only what it enabled.
            if k == _K_READ:
                ok = state == a
                new = state
            elif k == _K_WRITE:
                ok = after is None
                new = a
            elif k == _K_CAS_OK:
                ok = state == a
                new = arg_b[i]
            else:  # _K_CAS_NO
                ok = state != a and (after is None or after[0] == a)
                new = state
            if ok:
                nl = lin | bit[i]
                lst = failed.get((nl & closed_mask, new, None))
                if lst is None or not _dominated(lst, nl & open_mask):
                    calls.append((entry, state, 0, after, limit))
                    state = new
                    lin = nl
                    after = None
                    # lift: unlink the call and its return
                    p, q = prv[entry], nxt[entry]
                    nxt[p] = q
                    prv[q] = p
                    p, q = prv[ret_node], nxt[ret_node]
                    nxt[p] = q
                    prv[q] = p
                    entry = nxt[HEAD]
                    continue
            entry = nxt[entry]
            continue
        if rank[entry] < limit:  # an open-ended candidate
            i = opi[entry]
            a = arg_a[i]
            if gpos[i] != used[group[i]]:
                ok = False  # a twin called earlier is still unused
            elif kind[i] == _K_WRITE:
                new = a
                ok = after is None and new != state
            else:  # _K_CAS_MAYBE: only worth placing early if it applies
                new = arg_b[i]
                ok = state == a and new != state
            if ok:
                nl = lin | bit[i]
                closed = nl & closed_mask
                opened = nl & open_mask
                lst = failed.get((closed, new, None))
                if lst is None or not _dominated(lst, opened):
                    lst = failed.get((closed, new, (state,)))
                    if lst is None or not _dominated(lst, opened):
                        calls.append((entry, state, 1, after, limit))
                        after = (state,)
                        state = new
                        lin = nl
                        used[group[i]] += 1
                        p, q = prv[entry], nxt[entry]
                        nxt[p] = q
                        prv[q] = p
                        phase = 0
                        entry = nxt[HEAD]
                        continue
            entry = nxt[entry]
            continue
        # Every candidate tried: this configuration fails.  Backtrack.
        if len(calls) > len(longest):
            longest = [opi[e[0]] for e in calls]
        if not calls:
            return False, longest
        g = lin & open_mask
        fk = (lin & closed_mask, state, after)
        lst = failed.get(fk)
        if lst is None:
            failed[fk] = [g]
        else:  # keep an antichain: drop the entries g dominates
            lst[:] = [f for f in lst if g & ~f]
            lst.append(g)
        entry, state, phase, after, limit = calls.pop()
        i = opi[entry]
        lin ^= bit[i]
        if phase == 0:  # unlift: relink the return, then the call
            r = match[entry]
            nxt[prv[r]] = r
            prv[nxt[r]] = r
        else:
            used[group[i]] -= 1
        nxt[prv[entry]] = entry
        prv[nxt[entry]] = entry
        entry = nxt[entry]
        steps += 1
        if deadline is not None and steps & 0x3FF == 1 and _time.monotonic() > deadline:
            raise CheckTimeout("linearizability check timed out")
    return True, longest


def check_operations(ops: Iterable[Op], timeout: float | None = None) -> Result:
    """Check a list of operations (any keys).  ``timeout`` in seconds raises
    :class:`CheckTimeout` if exceeded."""
    deadline = None if timeout is None else _time.monotonic() + timeout
    by_key: dict[Any, list[Op]] = {}
    total = 0
    for op in ops:
        if _relevant(op):
            by_key.setdefault(op.key, []).append(op)
            total += 1
    for key, kops in by_key.items():
        ok, longest = _check_key(kops, deadline)
        if not ok:
            return Result(False, key=key, longest=[kops[i] for i in longest],
                          keys=len(by_key), ops=total)
    return Result(True, keys=len(by_key), ops=total)


def check(history: History | Iterable[Op], timeout: float | None = None) -> Result:
    """Is ``history`` (a :class:`History` or operations) linearizable?"""
    ops = history.ops if isinstance(history, History) else history
    return check_operations(ops, timeout=timeout)


# ---------------------------------------------------------------- Jepsen logs

def _atom(tok: str) -> Any:
    if tok == "nil":
        return None
    try:
        return int(tok)
    except ValueError:
        return tok


def _value(fields: list[str]) -> Any:
    text = " ".join(fields).strip()
    if text.startswith("[") and text.endswith("]"):
        return tuple(_atom(t) for t in text[1:-1].split())
    return _atom(text) if text else None


def parse_jepsen(text: str, key: Any = None) -> list[Op]:
    """Parse a Jepsen register log (``... jepsen.util - <process> :<type> :<f> <value>``).

    Time is the event's line index.  An operation still open at the end is
    left pending (indeterminate).
    """
    ops: list[Op] = []
    open_by_proc: dict[str, Op] = {}
    t = 0
    for line in text.splitlines():
        marker = line.find("jepsen.util - ")
        if marker < 0:
            continue
        fields = line[marker + len("jepsen.util - "):].split()
        if len(fields) < 3:
            continue
        proc, typ, f = fields[0], fields[1], fields[2]
        if not (typ.startswith(":") and f.startswith(":")):
            continue
        typ, f = typ[1:], f[1:]
        if f not in KINDS:
            continue
        val = _value(fields[3:])
        if typ == "invoke":
            prev = open_by_proc.pop(proc, None)
            if prev is not None:  # reused before completing: outcome unknown
                prev.status = INFO
            op = Op(id=len(ops), client=proc, kind=f, key=key, call=t,
                    value=None if f == READ else val)
            if f == CAS and not (isinstance(op.value, tuple) and len(op.value) == 2):
                raise ValueError(f"bad cas value in line: {line!r}")
            ops.append(op)
            open_by_proc[proc] = op
        elif typ in (OK, FAIL, INFO):
            op = open_by_proc.pop(proc, None)
            if op is None:
                raise ValueError(f"completion without invoke: {line!r}")
            if op.kind != f:
                raise ValueError(f"completion of a different operation: {line!r}")
            op.status = typ
            if typ != INFO:
                op.ret = t
            if typ == OK:
                if f == READ:
                    op.result = val
                elif f == CAS:
                    op.result = True
        else:
            continue
        t += 1
    return ops


def load_jepsen(path: str, key: Any = None) -> list[Op]:
    with open(path, encoding="utf-8") as fh:
        return parse_jepsen(fh.read(), key=key)
