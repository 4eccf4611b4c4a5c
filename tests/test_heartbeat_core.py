"""The pure rules of node heartbeats, node status writes and node GC (NOMAD.md §3-4, §6.2)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.client.node import ClientNodeConfig, heartbeat_retry_interval
from actors.server.heartbeat import HeartbeatConfig, HeartbeatTimers, heartbeat_ttl, rate_scaled_interval
from actors.server.node_gc import alloc_terminal, gc_candidates, gc_eligible
from actors.state.store import StateStore, command
from runtime.config import ServerConfig

CFG = HeartbeatConfig()  # Nomad defaults: 10 s min TTL, 50/s, 10 s grace, 5 min failover


# ------------------------------------------------------------ TTL formula
def test_ttl_base_is_min_ttl_up_to_500_nodes_at_50_per_second():
    assert rate_scaled_interval(50.0, 10.0, 0) == 10.0
    assert rate_scaled_interval(50.0, 10.0, 500) == 10.0
    assert rate_scaled_interval(50.0, 10.0, 501) == pytest.approx(10.02)


def test_ttl_base_scales_with_nodes_to_keep_the_leader_under_max_heartbeats_per_second():
    assert rate_scaled_interval(50.0, 10.0, 5000) == 100.0
    assert rate_scaled_interval(50.0, 10.0, 10_000) == 200.0


def test_rate_of_one_per_day_or_less_falls_back_to_min_ttl():
    assert rate_scaled_interval(1 / 86400, 10.0, 1_000_000) == 10.0
    assert rate_scaled_interval(2 / 86400, 10.0, 1) == pytest.approx(43200.0)  # 1 node / (2 per day)


@given(n=st.integers(0, 50_000), seed=st.integers(0, 2**32 - 1))
def test_ttl_is_base_plus_stagger_below_base(n: int, seed: int):
    base = rate_scaled_interval(CFG.max_heartbeats_per_second, CFG.min_heartbeat_ttl_s, n)
    ttl = heartbeat_ttl(CFG, n, random.Random(seed))
    assert base <= ttl < 2 * base


def test_stagger_spreads_ttls_over_the_whole_window():
    rng = random.Random(1)
    ttls = [heartbeat_ttl(CFG, 10, rng) for _ in range(2000)]
    assert min(ttls) < 10.5 and max(ttls) > 19.5


def test_config_from_server_section_uses_its_keys():
    s = ServerConfig(heartbeat_grace_s=3, min_heartbeat_ttl_s=2, max_heartbeats_per_second=7.0,
                     failover_heartbeat_ttl_s=60)
    c = HeartbeatConfig.from_server(s)
    assert (c.heartbeat_grace_s, c.min_heartbeat_ttl_s, c.max_heartbeats_per_second,
            c.failover_heartbeat_ttl_s) == (3, 2, 7.0, 60)


@pytest.mark.parametrize("bad", [{"min_heartbeat_ttl_s": 0}, {"max_heartbeats_per_second": 0},
                                 {"heartbeat_grace_s": -1}, {"failover_heartbeat_ttl_s": 0}])
def test_config_rejects_impossible_values(bad):
    with pytest.raises(ValueError):
        HeartbeatConfig(**bad)


# ------------------------------------------------------------ timers
def test_node_expires_only_after_ttl_plus_grace():
    t = HeartbeatTimers(CFG)
    ttl = t.reset("n1", 100.0, random.Random(0))
    deadline = 100.0 + ttl + CFG.heartbeat_grace_s
    assert t.pop_expired(deadline - 1e-3) == []
    assert t.pop_expired(deadline) == ["n1"]
    assert "n1" not in t


def test_ttl_counts_timers_before_the_node_is_added():
    cfg = HeartbeatConfig(max_heartbeats_per_second=1.0, min_heartbeat_ttl_s=1.0)
    t = HeartbeatTimers(cfg)
    for i in range(5):
        t.reset(f"n{i}", 0.0, random.Random(i))
    ttl = t.reset("n5", 0.0, random.Random(9))
    assert 5.0 <= ttl < 10.0  # n = 5 existing timers


def test_heartbeat_pushes_the_deadline_out():
    t = HeartbeatTimers(CFG)
    rng = random.Random(0)
    t.reset("n1", 0.0, rng)
    ttl = t.reset("n1", 15.0, rng)
    assert t.pop_expired(15.0 + ttl + CFG.heartbeat_grace_s - 1e-3) == []
    assert t.next_deadline() == pytest.approx(15.0 + ttl + CFG.heartbeat_grace_s)


def test_a_reset_never_brings_a_promised_deadline_earlier():
    t = HeartbeatTimers(CFG)
    first = t.reset("n1", 0.0, random.Random(1))  # a 10-20 s TTL: promised until first + grace
    t.cfg = HeartbeatConfig(min_heartbeat_ttl_s=1.0)  # the next answer carries a 1-2 s TTL
    t.reset("n1", 1.0, random.Random(2))
    assert t.deadlines["n1"] == pytest.approx(first + CFG.heartbeat_grace_s)
    t.check_invariants()


def test_failover_timer_is_not_a_promise_and_is_replaced_by_the_first_heartbeat():
    t = HeartbeatTimers(CFG)
    t.initialize(["n1"], 0.0)
    ttl = t.reset("n1", 5.0, random.Random(0))
    assert t.deadlines["n1"] == pytest.approx(5.0 + ttl + CFG.heartbeat_grace_s)


def test_failover_ttl_given_to_every_known_node_without_grace_or_stagger():
    t = HeartbeatTimers(CFG)
    assert t.initialize(["a", "b", "c"], 50.0) == 3
    assert t.deadlines == {"a": 350.0, "b": 350.0, "c": 350.0}
    assert t.pop_expired(349.999) == []
    assert t.pop_expired(350.0) == ["a", "b", "c"]


def test_failover_keeps_the_fresher_timer_of_a_node_that_already_heartbeated():
    t = HeartbeatTimers(CFG)
    ttl = t.reset("a", 50.0, random.Random(0))
    assert t.initialize(["a", "b"], 50.0) == 1
    assert t.deadlines["a"] == pytest.approx(50.0 + ttl + CFG.heartbeat_grace_s)
    assert t.deadlines["b"] == 350.0


def test_step_down_clears_every_timer():
    t = HeartbeatTimers(CFG)
    t.initialize(["a", "b"], 0.0)
    t.clear()
    assert len(t) == 0 and t.next_deadline() is None and t.pop_expired(1e9) == []


def test_expired_nodes_come_out_in_deadline_order():
    t = HeartbeatTimers(CFG)
    t._set("late", 30.0)
    t._set("early", 10.0)
    t._set("mid", 20.0)
    assert t.pop_expired(25.0) == ["early", "mid"]
    assert t.pop_expired(100.0) == ["late"]


def test_removed_node_never_expires():
    t = HeartbeatTimers(CFG)
    t.initialize(["a"], 0.0)
    t.remove("a")
    assert t.pop_expired(1e9) == [] and t.next_deadline() is None


def test_calendar_stays_proportional_to_live_nodes_under_many_heartbeats():
    t = HeartbeatTimers(CFG)
    rng = random.Random(0)
    for i in range(20_000):
        t.reset(f"n{i % 10}", float(i), rng)
        if i % 7 == 0:
            t.pop_expired(float(i))
    assert len(t) == 10
    assert t._entries <= 2 * 10 + 64 + 1
    t.check_invariants()


class _Half:
    """An RNG whose every draw is 0.5: a TTL of exactly 1.5 base."""

    def random(self) -> float:
        return 0.5


def test_a_node_expires_once_when_its_entry_moves_into_the_bucket_of_its_stale_one():
    t = HeartbeatTimers(CFG)
    t.initialize(["n"], 0.0)  # failover deadline 300: an entry in the 300 s bucket
    t.reset("n", 0.0, _Half())  # a promise at 25 replaces it: an entry at 25, the one at 300 is stale
    t.reset("n", 275.5, _Half())  # the promise moves to 300.5
    assert t.pop_expired(26.0) == []  # the entry at 25 moves to 300, beside the stale one
    t.check_invariants()
    assert t.next_deadline() == 300.5
    assert t.pop_expired(301.0) == ["n"]
    assert len(t) == 0 and t.next_deadline() is None
    t.check_invariants()


def test_calendar_drops_the_entries_of_removed_and_failover_replaced_nodes():
    t = HeartbeatTimers(CFG)
    rng = random.Random(0)
    for i in range(5_000):  # each round: a failover deadline, replaced by an earlier promise, then removed
        name = f"n{i % 50}"
        t.initialize([name], float(i))
        t.reset(name, float(i), rng)
        if i % 3 == 0:
            t.remove(name)
    assert t._entries <= 2 * len(t) + 64 + 1
    t.check_invariants()


@given(st.lists(st.tuples(st.sampled_from(["reset", "remove", "advance"]), st.integers(0, 4),
                          st.floats(0, 40)), max_size=60), st.integers(0, 1000))
def test_timers_expire_exactly_the_nodes_past_their_deadline(ops, seed):
    t, rng, now = HeartbeatTimers(CFG), random.Random(seed), 0.0
    model: dict[str, float] = {}
    for op, node, dt in ops:
        name = f"n{node}"
        if op == "reset":
            ttl = t.reset(name, now, rng)
            model[name] = max(now + ttl + CFG.heartbeat_grace_s, model.get(name, 0.0))
        elif op == "remove":
            t.remove(name)
            model.pop(name, None)
        else:
            now += dt
            gone = t.pop_expired(now)
            want = sorted((d, n) for n, d in model.items() if d <= now)
            assert gone == [n for _, n in want]
            for n in gone:
                del model[n]
        t.check_invariants()
        assert t.deadlines == model


# ------------------------------------------------------------ client retry intervals (getHeartbeatRetryIntv)
CC = ClientNodeConfig(servers=("s1",))


def _retry(**kw):
    base = {"now": 100.0, "last_ok": 90.0, "ttl": 20.0, "ever_ok": True, "no_leader": False,
            "rng": random.Random(kw.pop("seed", 0))}
    base.update(kw)
    return heartbeat_retry_interval(CC, **base)


def test_retry_before_first_heartbeat_or_without_leader_waits_like_a_registration():
    for kw in ({"ever_ok": False}, {"no_leader": True}):
        for seed in range(50):
            assert 15.0 <= _retry(seed=seed, **kw) < 30.0


def test_retry_of_a_heartbeat_missed_long_ago_is_a_stagger_of_the_time_since_never_over_30s():
    # Nomad's getHeartbeatRetryIntv takes the time since the miss as "left" and clamps its stagger
    # like any other: a client cut off for an hour retries within 30 s of the partition healing
    # (it waited as long as it had missed: 30, 66, 128 ... 1,171 s, nodes down long after a heal).
    for missed_s in (80.0, 600.0, 3_600.0, 86_400.0):
        got = [_retry(now=100.0 + 20.0 + missed_s, last_ok=100.0, ttl=20.0, seed=seed) for seed in range(200)]
        assert all(1.0 <= v < 30.0 for v in got), (missed_s, max(got))
        assert max(got) >= 25.0  # mostly the capped 25-30 s, as Nomad's


def test_retry_just_after_the_ttl_is_one_to_two_seconds():
    for seed in range(50):
        assert 1.0 <= _retry(now=115.0, last_ok=100.0, ttl=10.0, seed=seed) < 2.0


def test_retry_within_the_ttl_is_a_stagger_of_the_time_left_clamped():
    for seed in range(200):
        v = _retry(now=100.0, last_ok=100.0, ttl=200.0, seed=seed)
        assert 1.0 <= v < 30.0
    assert _retry(now=100.0, last_ok=100.0, ttl=0.5) >= 1.0


def test_dev_mode_retries_every_second():
    dev = ClientNodeConfig(servers=("s1",), dev_mode=True)
    assert heartbeat_retry_interval(dev, now=0, last_ok=0, ttl=0, ever_ok=False, no_leader=True,
                                    rng=random.Random(0)) == 1.0


# ------------------------------------------------------------ node GC rule
def _node(status="down", updated=0.0):
    return {"ID": "n", "Status": status, "StatusUpdatedAt": updated}


def test_gc_requires_down_since_before_the_cutoff():
    assert gc_eligible(_node(updated=10.0), [], cutoff=10.5)
    assert not gc_eligible(_node(updated=10.0), [], cutoff=10.0)
    assert not gc_eligible(_node(status="ready", updated=0.0), [], cutoff=1e9)


def test_gc_never_collects_disconnected_or_initializing_nodes():
    for status in ("disconnected", "initializing", "ready"):
        assert not gc_eligible(_node(status=status), [], cutoff=1e9)


def test_gc_waits_until_every_allocation_is_terminal():
    running = {"ID": "a1", "NodeID": "n", "ClientStatus": "running", "DesiredStatus": "run"}
    assert not gc_eligible(_node(), [running], cutoff=1e9)
    for terminal in ({"ClientStatus": "lost"}, {"ClientStatus": "complete"}, {"ClientStatus": "failed"},
                     {"ClientStatus": "running", "DesiredStatus": "stop"},
                     {"ClientStatus": "pending", "DesiredStatus": "evict"}):
        assert alloc_terminal(terminal)
        assert gc_eligible(_node(), [dict(running, **terminal)], cutoff=1e9)


def test_gc_candidates_are_sorted_and_only_eligible():
    nodes = {"b": _node(updated=1.0), "a": _node(updated=2.0), "c": _node(status="ready"),
             "d": _node(updated=500.0)}
    allocs = [{"ID": "x", "NodeID": "b", "ClientStatus": "running"}]
    assert gc_candidates(nodes, allocs, cutoff=100.0) == ["a"]


# ------------------------------------------------------------ state store ops
def _store() -> tuple[StateStore, list[int]]:
    return StateStore(), [0]


def _apply(s: StateStore, idx: list[int], op: str, **kw):
    idx[0] += 1
    return s.apply(idx[0], command(op, **kw))


def test_register_creates_initializing_node_with_registered_event():
    s, i = _store()
    r = _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "s"}, now=5.0)
    assert r == {"ok": True, "index": 1, "status": "initializing", "prev": "", "created": True,
                 "evals": [], "EvalIDs": []}  # a new node's jobs wait for it to be ready
    rec = s.tables["nodes"]["n1"]
    assert rec["SchedulingEligibility"] == "eligible" and rec["StatusUpdatedAt"] == 5.0
    assert [e["Message"] for e in rec["Events"]] == ["Node registered"]


def test_register_never_changes_an_existing_status():
    s, i = _store()
    _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "s"}, now=0.0)
    _apply(s, i, "node_update_status", node_id="n1", status="down", now=1.0, event=None)
    r = _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "s", "Status": "ready"}, now=2.0)
    assert r["status"] == "down" and s.tables["nodes"]["n1"]["Status"] == "down"
    assert s.tables["nodes"]["n1"]["CreateIndex"] == 1


def test_register_refuses_a_different_secret():
    s, i = _store()
    _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "s"}, now=0.0)
    r = _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "other"}, now=1.0)
    assert r == {"ok": False, "error": "node secret ID does not match"}


def test_status_update_records_event_missed_index_and_live_allocs():
    s, i = _store()
    _apply(s, i, "node_register", node={"ID": "n1", "SecretID": "s"}, now=0.0)
    _apply(s, i, "upsert", table="allocs", record={"ID": "a1", "NodeID": "n1", "ClientStatus": "running"})
    _apply(s, i, "upsert", table="allocs", record={"ID": "a2", "NodeID": "n1", "ClientStatus": "complete"})
    r = _apply(s, i, "node_update_status", node_id="n1", status="down", now=9.0,
               event={"Message": "Node heartbeat missed", "Subsystem": "Cluster"})
    assert r["prev"] == "initializing" and r["allocs"] == ["a1"]
    rec = s.tables["nodes"]["n1"]
    assert rec["LastMissedHeartbeatIndex"] == 4 and rec["StatusUpdatedAt"] == 9.0
    assert rec["Events"][-1]["Message"] == "Node heartbeat missed" and rec["Events"][-1]["CreateIndex"] == 4
    _apply(s, i, "node_update_status", node_id="n1", status="ready", now=10.0, event=None)
    assert s.tables["nodes"]["n1"]["LastMissedHeartbeatIndex"] == 0


def test_node_events_are_capped_at_ten():
    s, i = _store()
    _apply(s, i, "node_register", node={"ID": "n1"}, now=0.0)
    for k in range(15):
        _apply(s, i, "node_update_status", node_id="n1", status="ready" if k % 2 else "down", now=float(k),
               event={"Message": f"e{k}", "Subsystem": "Cluster"})
    events = s.tables["nodes"]["n1"]["Events"]
    assert len(events) == 10 and events[-1]["Message"] == "e14"


def test_status_update_of_unknown_node_is_node_not_found():
    s, i = _store()
    assert _apply(s, i, "node_update_status", node_id="nope", status="ready", now=0.0) == \
        {"ok": False, "error": "node not found"}


def test_gc_op_rechecks_eligibility_at_apply_time():
    s, i = _store()
    for n in ("n1", "n2", "n3"):
        _apply(s, i, "node_register", node={"ID": n}, now=0.0)
        _apply(s, i, "node_update_status", node_id=n, status="down", now=10.0)
    _apply(s, i, "node_update_status", node_id="n2", status="ready", now=20.0)  # came back meanwhile
    _apply(s, i, "upsert", table="allocs", record={"ID": "a", "NodeID": "n3", "ClientStatus": "running"})
    r = _apply(s, i, "node_gc", ids=["n1", "n2", "n3", "gone"], cutoff=100.0, now=200.0)
    assert r == {"ok": True, "deleted": ["n1"]}
    assert sorted(s.tables["nodes"]) == ["n2", "n3"]


def test_node_ops_apply_identically_on_every_replica():
    cmds = [command("node_register", node={"ID": f"n{k}", "SecretID": "x"}, now=float(k)) for k in range(5)]
    cmds += [command("node_update_status", node_id="n1", status="down", now=9.0,
                     event={"Message": "Node heartbeat missed", "Subsystem": "Cluster"}),
             command("node_gc", ids=["n1"], cutoff=10.0, now=11.0)]
    a, b = StateStore(), StateStore()
    for k, c in enumerate(cmds, 1):
        assert a.apply(k, c) == b.apply(k, c)
    assert a.digest() == b.digest()


@given(ops=st.lists(st.tuples(st.sampled_from(["reset", "remove"]), st.integers(0, 700)), max_size=60),
       seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([50.0, 5.0, 1 / 86400]))
def test_reset_hands_out_exactly_the_formula_ttl_as_the_timer_count_changes(ops, seed, rate):
    # reset caches the TTL base per timer count: the TTLs and deadlines must be
    # those of heartbeat_ttl drawn from the same RNG, whatever the count does.
    cfg = HeartbeatConfig(max_heartbeats_per_second=rate)
    t = HeartbeatTimers(cfg)
    rng, ref = random.Random(seed), random.Random(seed)
    for i in range(300):  # enough nodes that the base moves off the minimum at 5/s
        t.reset(f"base{i}", 0.0, rng)
        heartbeat_ttl(cfg, i, ref)
    now = 0.0
    for op, k in ops:
        now += 1.5
        if op == "remove":
            t.remove(f"n{k}")
            continue
        n = len(t)
        promised = t.promised(f"n{k}")
        want = heartbeat_ttl(cfg, n, ref)
        assert t.reset(f"n{k}", now, rng) == want
        assert t.deadlines[f"n{k}"] == max(now + want + cfg.heartbeat_grace_s, promised)
    t.check_invariants()
