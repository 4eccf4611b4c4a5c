"""The linearizability checker (sim/lincheck.py): hand-made histories, a
brute-force cross-check on random small histories, and Jepsen's etcd
histories with their known answers."""

from __future__ import annotations

import os
import random
import time

import pytest

from sim import lincheck
from sim.lincheck import CheckTimeout, History, Op, check, load_jepsen, parse_jepsen
from sim.lincheck_cli import main as cli_main

ETCD = "/work/shared/histories/jepsen-etcd"


def _seq(*steps):
    """Build a History from a script of (verb, name, args...) steps."""
    h = History()
    ids = {}
    for verb, name, *rest in steps:
        if verb == "invoke":
            ids[name] = h.invoke(*rest)
        else:
            getattr(h, verb)(ids[name], *rest)
    return h


# ----------------------------------------------------------- hand-made: reads

def test_empty_history_is_linearizable():
    assert check(History()).linearizable


def test_initial_read_is_nil():
    h = _seq(("invoke", "r", 1, "read", None, None), ("ok", "r", None))
    assert check(h).linearizable
    h = _seq(("invoke", "r", 1, "read", None, None), ("ok", "r", 5))
    assert not check(h).linearizable


def test_stale_read_after_completed_write_is_not_linearizable():
    h = _seq(
        ("invoke", "w1", 1, "write", "x", 1), ("ok", "w1"),
        ("invoke", "w2", 1, "write", "x", 2), ("ok", "w2"),
        ("invoke", "r", 2, "read", "x", None), ("ok", "r", 1),
    )
    r = check(h)
    assert not r.linearizable
    assert r.key == "x"
    assert [op.id for op in r.longest] == [0, 1]
    assert "NOT linearizable" in r.explain()


def test_read_of_never_written_value_is_not_linearizable():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1),
        ("invoke", "r", 2, "read", None, None),
        ("ok", "w"), ("ok", "r", 7),
    )
    assert not check(h).linearizable


@pytest.mark.parametrize("seen", [None, 1])
def test_concurrent_write_and_read_either_order(seen):
    h = _seq(
        ("invoke", "w", 1, "write", None, 1),
        ("invoke", "r", 2, "read", None, None),
        ("ok", "r", seen), ("ok", "w"),
    )
    assert check(h).linearizable


def test_reads_must_agree_on_order_of_concurrent_writes():
    # w1 and w2 overlap; reader A sees 1 then 2, reader B sees 2 then 1,
    # all reads after both writes completed: impossible.
    h = _seq(
        ("invoke", "w1", 1, "write", None, 1), ("invoke", "w2", 2, "write", None, 2),
        ("ok", "w1"), ("ok", "w2"),
        ("invoke", "a", 3, "read", None, None), ("ok", "a", 1),
        ("invoke", "b", 4, "read", None, None), ("ok", "b", 2),
    )
    assert not check(h).linearizable
    # ...but while the writes are still running, both orders can be seen in turn.
    h = _seq(
        ("invoke", "w1", 1, "write", None, 1), ("invoke", "w2", 2, "write", None, 2),
        ("invoke", "a", 3, "read", None, None), ("ok", "a", 1),
        ("invoke", "b", 4, "read", None, None), ("ok", "b", 2),
        ("ok", "w1"), ("ok", "w2"),
    )
    assert check(h).linearizable


def test_new_old_inversion_is_not_linearizable():
    # A read that returned the new value precedes a read that returns the old one.
    h = _seq(
        ("invoke", "w0", 1, "write", None, 0), ("ok", "w0"),
        ("invoke", "w", 1, "write", None, 1),
        ("invoke", "a", 2, "read", None, None), ("ok", "a", 1),
        ("invoke", "b", 3, "read", None, None), ("ok", "b", 0),
        ("ok", "w"),
    )
    assert not check(h).linearizable


# --------------------------------------------------- indeterminate and failed

def test_indeterminate_write_later_read_is_ok():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("info", "w"),
        ("invoke", "r", 2, "read", None, None), ("ok", "r", 1),
    )
    assert check(h).linearizable


def test_indeterminate_write_may_take_effect_much_later():
    h = _seq(
        ("invoke", "w1", 1, "write", None, 1), ("info", "w1"),
        ("invoke", "r0", 2, "read", None, None), ("ok", "r0", None),
        ("invoke", "w2", 2, "write", None, 2), ("ok", "w2"),
        ("invoke", "r2", 2, "read", None, None), ("ok", "r2", 2),
        ("invoke", "r1", 3, "read", None, None), ("ok", "r1", 1),
    )
    assert check(h).linearizable


def test_indeterminate_write_may_never_take_effect():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("info", "w"),
        ("invoke", "r", 2, "read", None, None), ("ok", "r", None),
    )
    assert check(h).linearizable


def test_indeterminate_write_cannot_take_effect_before_its_call():
    h = _seq(
        ("invoke", "r", 2, "read", None, None), ("ok", "r", 1),
        ("invoke", "w", 1, "write", None, 1), ("info", "w"),
    )
    assert not check(h).linearizable


def test_indeterminate_write_takes_effect_at_most_once():
    # After w(1)? then w(2) and a read of 2, reading 1 again then 2 again
    # would need w(1) to happen between the two reads of 2... which is
    # fine once, but not twice.
    h = _seq(
        ("invoke", "w1", 1, "write", None, 1), ("info", "w1"),
        ("invoke", "w2", 2, "write", None, 2), ("ok", "w2"),
        ("invoke", "a", 3, "read", None, None), ("ok", "a", 2),
        ("invoke", "b", 3, "read", None, None), ("ok", "b", 1),
        ("invoke", "c", 3, "read", None, None), ("ok", "c", 2),
    )
    assert not check(h).linearizable
    h2 = _seq(
        ("invoke", "w1", 1, "write", None, 1), ("info", "w1"),
        ("invoke", "w2", 2, "write", None, 2), ("ok", "w2"),
        ("invoke", "a", 3, "read", None, None), ("ok", "a", 2),
        ("invoke", "b", 3, "read", None, None), ("ok", "b", 1),
        ("invoke", "b2", 3, "read", None, None), ("ok", "b2", 1),
    )
    assert check(h2).linearizable


def test_pending_operation_at_end_is_indeterminate():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1),  # never completes
        ("invoke", "r", 2, "read", None, None), ("ok", "r", 1),
        ("invoke", "r2", 3, "read", None, None),  # pending read: dropped
    )
    assert check(h).linearizable


def test_failed_write_whose_value_is_read_is_not_ok():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("fail", "w"),
        ("invoke", "r", 2, "read", None, None), ("ok", "r", 1),
    )
    assert not check(h).linearizable


def test_failed_and_indeterminate_reads_are_dropped():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("ok", "w"),
        ("invoke", "r", 2, "read", None, None), ("fail", "r"),
        ("invoke", "r2", 2, "read", None, None), ("info", "r2"),
    )
    assert check(h).linearizable


# ---------------------------------------------------------------------- cas

def test_cas_success_requires_expected_value():
    ok = _seq(
        ("invoke", "w", 1, "write", None, 1), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (1, 2)), ("ok", "c"),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 2),
    )
    assert check(ok).linearizable
    bad = _seq(
        ("invoke", "w", 1, "write", None, 3), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (1, 2)), ("ok", "c"),
    )
    assert not check(bad).linearizable


def test_cas_effect_is_visible():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (1, 2)), ("ok", "c", True),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 1),
    )
    assert not check(h).linearizable


def test_failed_cas_is_dropped():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (5, 2)), ("fail", "c"),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 1),
    )
    assert check(h).linearizable
    h = _seq(
        ("invoke", "c", 2, "cas", None, (None, 2)), ("fail", "c"),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 2),
    )
    assert not check(h).linearizable


def test_cas_completed_with_false_observed_a_different_value():
    base = [("invoke", "w", 1, "write", None, 1), ("ok", "w")]
    h = _seq(*base, ("invoke", "c", 2, "cas", None, (1, 2)), ("ok", "c", False))
    assert not check(h).linearizable
    h = _seq(*base, ("invoke", "c", 2, "cas", None, (7, 2)), ("ok", "c", False),
             ("invoke", "r", 3, "read", None, None), ("ok", "r", 1))
    assert check(h).linearizable


def test_indeterminate_cas_applies_only_if_comparison_holds():
    h = _seq(
        ("invoke", "w", 1, "write", None, 1), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (1, 2)), ("info", "c"),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 2),
    )
    assert check(h).linearizable
    h = _seq(
        ("invoke", "w", 1, "write", None, 3), ("ok", "w"),
        ("invoke", "c", 2, "cas", None, (1, 2)), ("info", "c"),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 2),
    )
    assert not check(h).linearizable


def test_indeterminate_write_can_explain_a_failed_cas():
    h = _seq(
        ("invoke", "w", 1, "write", None, 3), ("ok", "w"),
        ("invoke", "x", 2, "write", None, 7), ("info", "x"),
        ("invoke", "c", 3, "cas", None, (3, 9)), ("ok", "c", False),
        ("invoke", "r", 3, "read", None, None), ("ok", "r", 3),
        ("invoke", "c2", 3, "cas", None, (3, 9)), ("ok", "c2", False),
    )
    assert not check(h).linearizable  # the read of 3 between the two failed cas
    h = _seq(
        ("invoke", "w", 1, "write", None, 3), ("ok", "w"),
        ("invoke", "x", 2, "write", None, 7), ("info", "x"),
        ("invoke", "c", 3, "cas", None, (3, 9)), ("ok", "c", False),
        ("invoke", "c2", 3, "cas", None, (5, 9)), ("ok", "c2", False),
    )
    assert check(h).linearizable


def test_concurrent_cas_only_one_wins():
    h = _seq(
        ("invoke", "w", 1, "write", None, 0), ("ok", "w"),
        ("invoke", "a", 2, "cas", None, (0, 1)), ("invoke", "b", 3, "cas", None, (0, 2)),
        ("ok", "a"), ("ok", "b"),
    )
    assert not check(h).linearizable


# --------------------------------------------------------------- multi-key

def test_keys_are_independent():
    h = _seq(
        ("invoke", "wa", 1, "write", "a", 1), ("ok", "wa"),
        ("invoke", "rb", 2, "read", "b", None), ("ok", "rb", None),
        ("invoke", "ra", 2, "read", "a", None), ("ok", "ra", 1),
    )
    r = check(h)
    assert r.linearizable and r.keys == 2
    h = _seq(
        ("invoke", "wa", 1, "write", "a", 1), ("ok", "wa"),
        ("invoke", "rb", 2, "read", "b", None), ("ok", "rb", 1),
    )
    r = check(h)
    assert not r.linearizable and r.key == "b"


# ------------------------------------------------------------------- API

def test_history_builder_rejects_misuse():
    h = History()
    with pytest.raises(ValueError):
        h.invoke(1, "increment", None, 1)
    op = h.invoke(1, "write", None, 1)
    h.ok(op)
    with pytest.raises(ValueError):
        h.fail(op)
    with pytest.raises((TypeError, ValueError)):
        h.invoke(1, "cas", None, 5)
    assert len(h) == 1 and h.operations()[0].ret == 1


def test_check_accepts_operations_with_real_times():
    ops = [
        Op(0, "c1", "write", value=1, call=0.5, ret=2.0, status="ok"),
        Op(1, "c2", "read", result=1, call=1.0, ret=1.5, status="ok"),
        Op(2, "c3", "read", result=None, call=2.0, ret=2.5, status="ok"),
    ]
    assert check(ops[:2]).linearizable
    # Equal times count as overlapping: the read at 2.0 may precede the write's end.
    assert check([ops[0], ops[2]]).linearizable
    ops[2].call = 2.1
    assert not check([ops[0], ops[2]]).linearizable


def test_timeout_raises():
    # Many overlapping writes and reads of values in an impossible order.
    h = History()
    n = 18
    ws = [h.invoke(i, "write", None, i) for i in range(n)]
    rs = [h.invoke(100 + i, "read", None, None) for i in range(n)]
    for r, v in zip(rs, reversed(range(n)), strict=True):
        h.ok(r, v)
    for w in ws:
        h.ok(w)
    h.invoke(999, "read", None, None)
    h.ok(len(h) - 1, -1)
    with pytest.raises(CheckTimeout):
        check(h, timeout=0.0)


def test_parse_jepsen():
    text = """\
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:cas\t[nil 4]
INFO  jepsen.util - 2\t:invoke\t:write\t3
INFO  jepsen.util - 0\t:ok\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:cas\t[nil 4]
INFO  jepsen.util - 2\t:info\t:write\t:timed-out
some unrelated line
INFO  jepsen.util - 3\t:invoke\t:read\tnil
INFO  jepsen.util - 3\t:fail\t:read\t:timed-out
INFO  jepsen.util - 4\t:invoke\t:write\t1
"""
    ops = parse_jepsen(text)
    assert [(o.client, o.kind, o.value, o.result, o.status, o.call, o.ret) for o in ops] == [
        ("0", "read", None, None, "ok", 0, 3),
        ("1", "cas", (None, 4), True, "ok", 1, 4),
        ("2", "write", 3, None, "info", 2, None),
        ("3", "read", None, None, "fail", 6, 7),
        ("4", "write", 1, None, None, 8, None),
    ]
    assert check(ops).linearizable


# ------------------------------------------------ brute-force cross-check

def _brute_force(ops: list[Op]) -> bool:
    """Linearizable?  By trying every order: independent of the checker's
    search, its pruning and its per-key split."""
    must = [o for o in ops if o.status == "ok" and o.ret is not None]
    may = [o for o in ops if o.status != "fail" and o.kind != "read" and o not in must]
    inf = float("inf")

    def ret(o):
        return o.ret if o in must else inf

    def go(done_must, remaining, state):
        if done_must == len(must):
            return True
        for o in remaining:
            # o can go next only if no other remaining op returned before o's call
            if any(ret(p) < o.call for p in remaining if p is not o):
                continue
            v = state.get(o.key)
            if o.kind == "read":
                if v != o.result:
                    continue
                new = state
            elif o.kind == "write":
                new = {**state, o.key: o.value}
            else:
                exp, to = o.value
                applies = v == exp
                if o in must and applies != (o.result is not False):
                    continue
                new = {**state, o.key: to} if applies else state
            rest = [p for p in remaining if p is not o]
            if go(done_must + (o in must), rest, new):
                return True
        return False

    return go(0, must + may, {})


def _random_history(rng: random.Random, max_ops: int = 7) -> History:
    """Clients run operations against a real register (linearization point
    between call and return), some outcomes lost or failed; then maybe corrupt
    a result so that some histories are not linearizable."""
    keys = ["a", "b"][: rng.choice([1, 1, 2])]
    n = rng.randint(1, max_ops)
    spans = []
    for i in range(n):
        call = rng.random() * 10 * max_ops / 7
        lin = call + rng.random() * 3
        end = lin + rng.random() * 3
        kind = rng.choice(["read", "read", "write", "cas"])
        key = rng.choice(keys)
        value = (rng.choice([None, 0, 1]), rng.randint(0, 2)) if kind == "cas" else (
            rng.randint(0, 2) if kind == "write" else None)
        outcome = rng.choice(["ok", "ok", "ok", "info", "fail"])
        spans.append(dict(i=i, call=call, lin=lin, end=end, kind=kind, key=key,
                          value=value, outcome=outcome))
    reg = {}
    for s in sorted(spans, key=lambda s: s["lin"]):
        v = reg.get(s["key"])
        applies = s["outcome"] == "ok" or (s["outcome"] == "info" and rng.random() < 0.5)
        if s["kind"] == "read":
            s["result"] = v
        elif s["kind"] == "write":
            if applies:
                reg[s["key"]] = s["value"]
        else:
            s["result"] = v == s["value"][0]
            if s["result"] and applies:
                reg[s["key"]] = s["value"][1]
            elif not s["result"] and s["outcome"] == "ok" and rng.random() < 0.5:
                s["outcome"] = "fail"  # a cas that failed its comparison, Jepsen-style
    for _ in range(rng.choice([0, 1, 1, 2])):
        s = rng.choice(spans)
        if s["kind"] == "read":
            s["result"] = rng.choice([None, 0, 1, 2])
        elif s["kind"] == "cas":
            s["result"] = not s["result"]
        else:
            s["outcome"] = rng.choice(["ok", "fail", "info"])
    events = [(s["call"], 0, s) for s in spans] + [(s["end"], 1, s) for s in spans]
    h = History()
    for _, is_end, s in sorted(events, key=lambda e: (e[0], e[1])):
        if not is_end:
            s["id"] = h.invoke(s["i"] % 3, s["kind"], s["key"], s["value"])
        elif s["outcome"] == "ok":
            h.ok(s["id"], s.get("result"))
        elif s["outcome"] == "fail":
            h.fail(s["id"])
        elif rng.random() < 0.8:
            h.info(s["id"])  # else: left pending
    return h


def test_agrees_with_brute_force_on_random_histories():
    rng = random.Random(20240611)
    verdicts = {True: 0, False: 0}
    for trial in range(3000):
        h = _random_history(rng)
        expected = _brute_force(h.operations())
        got = check(h).linearizable
        assert got == expected, (trial, [str(o) for o in h.operations()])
        verdicts[got] += 1
    assert min(verdicts.values()) > 300, verdicts


def _plain_porcupine(ops: list[Op]) -> bool:
    """Porcupine's search as published, without the open-ended refinements
    (an indeterminate operation just returns at infinity), one key."""
    ops = [o for o in ops if lincheck._relevant(o)]
    n = len(ops)
    events = []
    for i, o in enumerate(ops):
        determinate = o.status == "ok" and o.ret is not None
        events += [(o.call, 0, i), (o.ret if determinate else float("inf"), 1, i)]
    events.sort()
    tail = 2 * n + 1
    nxt, prv = [*range(1, tail + 1), -1], [-1, *range(tail)]
    match, opi, call_node = [-1] * (tail + 1), [-1] * (tail + 1), [0] * n
    for node, (_, is_ret, i) in enumerate(events, 1):
        opi[node] = i
        if is_ret:
            match[call_node[i]] = node
        else:
            call_node[i] = node

    def step(st, o):
        if o.kind == "read":
            return st == o.result, st
        if o.kind == "write":
            return True, o.value
        a, b = o.value
        if o.status != "ok" or o.ret is None:
            return True, b if st == a else st
        return (st != a, st) if o.result is False else (st == a, b)

    cache, calls, state, lin, entry = set(), [], None, 0, nxt[0]
    while nxt[0] != tail:
        ret = match[entry]
        if ret >= 0:
            i = opi[entry]
            ok, new = step(state, ops[i])
            if ok and (lin | 1 << i, new) not in cache:
                cache.add((lin | 1 << i, new))
                calls.append((entry, state))
                state, lin = new, lin | 1 << i
                for x in (entry, ret):
                    nxt[prv[x]], prv[nxt[x]] = nxt[x], prv[x]
                entry = nxt[0]
            else:
                entry = nxt[entry]
        else:
            if not calls:
                return False
            entry, state = calls.pop()
            lin ^= 1 << opi[entry]
            for x in (match[entry], entry):
                nxt[prv[x]] = prv[nxt[x]] = x
            entry = nxt[entry]
    return True


def test_agrees_with_plain_porcupine_on_larger_histories():
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for trial in range(600):
        h = _random_history(rng, max_ops=30)
        ops = [o for o in h.operations() if o.key == "a"]
        expected = _plain_porcupine(ops)
        assert check(ops).linearizable == expected, (trial, [str(o) for o in ops])
        verdicts[expected] += 1
    assert min(verdicts.values()) > 60, verdicts


def _client_run(rng: random.Random, n_ops: int, p_unknown: float) -> History:
    """Five clients against one register, unique written values, some
    outcomes unknown: a linearizable history like the Raft simulator's."""
    h = History()
    reg, next_value, done, pending = None, 0, 0, {}
    while done < n_ops or pending:
        c = rng.randrange(5)
        if c not in pending:
            if done >= n_ops:
                c = next(iter(pending))
            else:
                kind = rng.choice(["read", "read", "write", "cas"])
                next_value += 1
                value = {"read": None, "write": next_value,
                         "cas": (rng.randrange(max(1, next_value - 3), next_value + 1), next_value)}[kind]
                pending[c] = [h.invoke(c, kind, None, value), kind, value, False, None]
                done += 1
                continue
        p = pending[c]
        if not p[3]:  # the operation's linearization point
            _, kind, value, _, _ = p
            if kind == "read":
                p[4] = reg
            elif kind == "write":
                reg = value
            else:
                p[4] = reg == value[0]
                if p[4]:
                    reg = value[1]
            p[3] = True
            continue
        op_id, _, _, _, result = pending.pop(c)
        if rng.random() < p_unknown:
            h.info(op_id)
        else:
            h.ok(op_id, result)
    return h


@pytest.mark.parametrize("p_unknown", [0.0, 0.05])
def test_long_client_history_and_a_stale_read_in_it(p_unknown):
    h = _client_run(random.Random(3), 1500, p_unknown)
    t0 = time.perf_counter()
    assert check(h).linearizable
    reads = [o for o in h.ops if o.kind == "read" and o.status == "ok" and o.result is not None]
    stale = reads[len(reads) // 2]
    writes = [o for o in h.ops if o.kind == "write" and o.status == "ok" and o.ret < stale.call]
    stale.result = writes[-3].value  # two completed writes behind
    r = check(h, timeout=30)
    assert not r.linearizable
    assert stale not in r.longest
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------- Jepsen etcd data

def _etcd_answers() -> dict[str, bool]:
    with open(os.path.join(ETCD, "ANSWERS")) as fh:
        return {name: verdict == "true" for name, verdict in (line.split() for line in fh if line.strip())}


needs_etcd = pytest.mark.skipif(not os.path.isdir(ETCD), reason="no Jepsen etcd histories")


@needs_etcd
def test_jepsen_etcd_histories_match_known_answers():
    answers = _etcd_answers()
    assert len(answers) >= 50
    slowest = 0.0
    wrong = []
    for name, expected in sorted(answers.items()):
        ops = load_jepsen(os.path.join(ETCD, name))
        t0 = time.perf_counter()
        got = check(ops).linearizable
        slowest = max(slowest, time.perf_counter() - t0)
        if got != expected:
            wrong.append((name, expected, got))
    assert not wrong
    assert slowest < 1.0, slowest


@needs_etcd
def test_cli_lincheck(capsys):
    files = [os.path.join(ETCD, n) for n in ("etcd_000.log", "etcd_002.log")]
    assert cli_main(files) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines] == [[files[0], "false"], [files[1], "true"]]
    assert all(len(ln.split()[2].split(".")[1]) == 3 for ln in lines)


def test_module_exports():
    for name in lincheck.__all__:
        assert hasattr(lincheck, name)
