"""Unit tests of the gossip cores (SWIM + Lifeguard, Serf), with no runtime at all.

The cores are driven by :class:`Bench`, a dozen-line event loop: it applies
their effects (sends cross the real wire codec, with a fixed latency and a
per-link drop rule; timers are a dict of due times) and advances a virtual
clock.  Paper-derived tests cite the section: SWIM (Das, Gupta, Motivala,
DSN 2002) and Lifeguard (Dadgar, Phillips, Currey, 2018).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from actors.gossip.config import (
    GossipConfig,
    fast_config,
    lan_config,
    local_config,
    profile,
    wan_config,
)
from actors.gossip.core import (
    BroadcastQueue,
    CancelTimer,
    Emit,
    Reply,
    Send,
    SetTimer,
    Suspicion,
    remaining_suspicion_time,
)
from actors.gossip.messages import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    Ack,
    Alive,
    Dead,
    Gossip,
    IndirectPing,
    JoinIntent,
    LeaveIntent,
    MemberEvent,
    Ping,
    PushPullReq,
    Suspect,
    decode_tags,
    encode_tags,
    make_tags,
)
from actors.gossip.serf import S_ALIVE, S_FAILED, S_LEAVING, S_LEFT, SerfCore
from runtime import wire
from runtime.messages import Envelope

CFG = fast_config()


def hear(core: SerfCore, now: float, *msgs: Any) -> None:
    """Deliver *msgs* to *core* as one gossip packet."""
    core.on_message(Gossip(src_name="someone", gossip=msgs), now)


def addr(i: int) -> str:
    return f"10.0.0.{i + 1}:4648"


def name(i: int) -> str:
    return f"n{i}"


class Bench:
    """Serf cores wired together by a tiny deterministic event loop."""

    def __init__(self, n: int, cfg: GossipConfig = CFG, *, seed: int = 1, latency_s: float = 0.002,
                 start: bool = True) -> None:
        self.cfg = cfg
        self.now = 0.0
        self.latency_s = latency_s
        self.cores = {addr(i): SerfCore(name(i), addr(i), cfg, random.Random(f"{seed}:{i}"),
                                        tags=make_tags({"role": "nomad", "id": str(i)}))
                      for i in range(n)}
        self.up = dict.fromkeys(self.cores, True)
        self.timers: dict[tuple[str, str], float] = {}
        self.inflight: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.events: dict[str, list[MemberEvent]] = {a: [] for a in self.cores}
        self.replies: dict[str, dict[int, tuple[Any, str]]] = {a: {} for a in self.cores}
        self.sent: list[tuple[str, str, Any]] = []
        self.drop: Callable[[str, str, Any], bool] = lambda src, dst, msg: False
        if start:
            for a, core in self.cores.items():
                core.start(self.now)
                self.apply(a)

    def core(self, i: int) -> SerfCore:
        return self.cores[addr(i)]

    def apply(self, src: str) -> None:
        for eff in self.cores[src].take_effects():
            if isinstance(eff, Send):
                self.sent.append((src, eff.to, eff.msg))
                data = wire.encode(Envelope(src=src, dst_actor="gossip", payload=eff.msg))
                assert len(data) <= self.cfg.max_packet_bytes or type(eff.msg).__name__.startswith("PushPull")
                if not self.drop(src, eff.to, eff.msg):
                    self.seq += 1
                    self.inflight.append((self.now + self.latency_s, self.seq, eff.to, wire.decode(data)))
            elif isinstance(eff, SetTimer):
                self.timers[(src, eff.name)] = self.now + eff.delay_s
            elif isinstance(eff, CancelTimer):
                self.timers.pop((src, eff.name), None)
            elif isinstance(eff, Emit):
                self.events[src].append(eff.event)
            elif isinstance(eff, Reply):
                self.replies[src][eff.req] = (eff.value, eff.error)
        self.cores[src].check_invariants(full=True)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due_t = min(self.timers.items(), key=lambda kv: (kv[1], kv[0]), default=None)
            due_m = min(self.inflight, default=None)
            t_timer = due_t[1] if due_t else float("inf")
            t_msg = due_m[0] if due_m else float("inf")
            if min(t_timer, t_msg) > end:
                break
            if t_msg <= t_timer:
                self.inflight.remove(due_m)
                self.now = max(self.now, t_msg)
                dst, env = due_m[2], due_m[3]
                if self.up.get(dst):
                    self.cores[dst].on_message(env.payload, self.now)
                    self.apply(dst)
            else:
                (a, tname), _ = due_t
                del self.timers[(a, tname)]
                self.now = max(self.now, t_timer)
                if self.up[a]:
                    self.cores[a].on_timer(tname, self.now)
                    self.apply(a)
        self.now = end

    def crash(self, i: int) -> None:
        a = addr(i)
        self.up[a] = False
        for key in [k for k in self.timers if k[0] == a]:
            del self.timers[key]

    def join_all(self, seed: int = 0) -> None:
        for i, a in enumerate(self.cores):
            if i != seed:
                self.cores[a].join((addr(seed),), 1000 + i, self.now)
                self.apply(a)
        self.run(2.0)
        for core in self.cores.values():
            assert len(core.statuses()) == len(self.cores), core.statuses()

    def status(self, observer: int, member: int) -> str | None:
        return self.core(observer).statuses().get(name(member))

    def swim_state(self, observer: int, member: int) -> int | None:
        node = self.core(observer).swim.nodes.get(name(member))
        return None if node is None else node.state

    def kinds(self, observer: int, member: int) -> list[str]:
        return [e.kind for e in self.events[addr(observer)] if e.name == name(member)]


# ======================================================================== config


def test_profiles_follow_memberlist_defaults() -> None:
    lan, wan, local = lan_config(), wan_config(), local_config()
    assert (lan.probe_interval_s, lan.probe_timeout_s, lan.indirect_checks) == (1.0, 0.5, 3)
    assert (lan.retransmit_mult, lan.suspicion_mult, lan.suspicion_max_timeout_mult) == (4, 4, 6)
    assert (lan.gossip_interval_s, lan.gossip_nodes, lan.push_pull_interval_s) == (0.2, 3, 30.0)
    assert (lan.awareness_max_multiplier, lan.max_packet_bytes) == (8, 1400)
    assert (wan.probe_interval_s, wan.probe_timeout_s) == (5.0, 3.0)
    assert (wan.suspicion_mult, wan.gossip_nodes) == (6, 4)
    assert (wan.push_pull_interval_s, wan.gossip_interval_s, wan.gossip_to_the_dead_s) == (60.0, 0.5, 60.0)
    assert (local.indirect_checks, local.retransmit_mult, local.suspicion_mult) == (1, 2, 3)
    assert (local.probe_timeout_s, local.gossip_interval_s) == (0.2, 0.1)
    assert (lan.reconnect_timeout_s, lan.tombstone_timeout_s, lan.reap_interval_s) == (86400.0, 86400.0, 15.0)
    assert profile("test") == fast_config() and profile("wan") == wan
    with pytest.raises(ValueError, match="unknown gossip profile"):
        profile("moon")


@pytest.mark.parametrize("changes, message", [
    ({"probe_timeout_s": 1.0}, "must be below probe_interval_s"),
    ({"suspicion_mult": 1}, "suspicion_mult must be >= 2"),
    ({"probe_interval_s": 0}, "probe_interval_s must be > 0"),
    ({"indirect_checks": 0}, "indirect_checks must be >= 1"),
    ({"max_packet_bytes": 100}, "max_packet_bytes"),
    ({"reconnect_timeout_s": 1.0}, "reconnect_timeout_s must not be below gossip_to_the_dead_s"),
])
def test_config_rejects_unworkable_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lan_config().with_(**changes)


def test_retransmit_limit_scales_with_log_n() -> None:
    cfg = lan_config()  # retransmit_mult 4
    assert [cfg.retransmit_limit(n) for n in (0, 1, 9, 10, 99, 100, 999, 1000)] == [0, 4, 4, 8, 8, 12, 12, 16]
    assert local_config().retransmit_limit(99) == 4  # memberlist TestRetransmitLimit: 3 * 2 = 6 with mult 3
    assert cfg.with_(retransmit_mult=3).retransmit_limit(99) == 6


def test_broadcast_is_sent_exactly_retransmit_limit_times() -> None:
    q = BroadcastQueue()
    q.push("a", "msg-a", 10, notify="done-a")
    sends = 0
    while len(q):
        assert q.take(1000, limit=5) == ["msg-a"]
        sends += 1
    assert sends == 5 and q.finished == ["done-a"]


def test_broadcast_queue_prefers_fresh_news_and_invalidates_by_key() -> None:
    q = BroadcastQueue()
    q.push("a", "a1", 10)
    assert q.take(1000, limit=10) == ["a1"]
    q.push("b", "b1", 10)
    assert q.take(15, limit=10) == ["b1"]  # never sent beats sent once
    q.push("a", "a2", 10, notify="n")  # news about "a" replaces the old
    assert sorted(m for m, _ in q.items()) == ["a2", "b1"]
    q.push("a", "a3", 10)
    assert q.finished == ["n"]  # an invalidated broadcast counts as finished
    assert q.prune(1) == 1 and [m for m, _ in q.items()] == ["a3"]


def test_suspicion_timeout_formula_matches_memberlist() -> None:
    # memberlist TestSuspicionTimeout: suspicionTimeout(3, n, 1s) / 3.
    cfg = lan_config().with_(suspicion_mult=3)
    for n, want in ((5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698), (1000, 3.0)):
        assert cfg.suspicion_timeout_s(n) / 3 == pytest.approx(want)
    assert lan_config().suspicion_max_timeout_s(1000) == pytest.approx(6 * 12.0)
    assert lan_config().suspicion_confirmations(3) == 0 and lan_config().suspicion_confirmations(4) == 2


# ======================================================================== Lifeguard suspicion


def test_suspicion_timeout_shrinks_with_confirmations() -> None:
    # memberlist TestSuspicion_remainingSuspicionTime (Lifeguard §IV-B).
    cases = [(0, 3, 0, 30.0), (1, 3, 2, 14.0), (2, 3, 3, 4.81), (3, 3, 4, -2.0), (4, 3, 5, -3.0)]
    for n, k, elapsed, want in cases:
        assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == pytest.approx(want)
    sus = Suspicion("accuser", k=3, min_s=2.0, max_s=30.0, start=100.0)
    assert sus.initial_timeout() == 30.0
    assert sus.confirm("accuser", 100.0) is None  # the accuser is no confirmation
    totals = [sus.confirm(f"peer{i}", 100.0) for i in range(3)]
    assert totals[0] > totals[1] > totals[2] == pytest.approx(2.0)
    assert sus.confirm("peer0", 100.0) is None  # each peer counts once
    assert sus.confirm("peer9", 100.0) is None  # k reached: the minimum holds
    assert Suspicion("x", k=0, min_s=2.0, max_s=30.0, start=0).initial_timeout() == 2.0


def test_dead_after_suspicion_timeout() -> None:
    # SWIM §4.2: a suspect that does not refute within the timeout is declared dead.
    b = Bench(3)
    b.join_all()
    b.crash(2)
    b.run(CFG.probe_interval_s * 4)
    suspected_at = {a: c.swim.nodes[name(2)].state_change for a, c in b.cores.items()
                    if b.up[a] and c.swim.nodes[name(2)].state == SUSPECT}
    assert suspected_at, "nobody suspected the crashed member"
    # Three members: no confirmations expected (k = 0), so the minimum timeout applies.
    b.run(CFG.suspicion_timeout_s(3) + CFG.dissemination_bound_s(3))
    for i in (0, 1):
        assert b.swim_state(i, 2) == DEAD and b.status(i, 2) == S_FAILED
        assert b.kinds(i, 2)[-1] == "member-failed"


def test_confirmations_bring_death_forward() -> None:
    # Lifeguard: with k = suspicion_mult - 2 independent confirmations the
    # timeout falls from its maximum to its minimum.
    b = Bench(8)
    b.join_all()
    b.crash(7)
    start = b.now
    deadline = start + CFG.suspicion_max_timeout_s(8)
    while b.now < deadline and b.swim_state(0, 7) != DEAD:
        b.run(0.05)
    took = b.now - start
    assert b.swim_state(0, 7) == DEAD
    assert took < CFG.suspicion_max_timeout_s(8) / 2, took


def test_suspect_refuted_by_higher_incarnation() -> None:
    # SWIM §4.2: a suspected member refutes by gossiping alive with a higher incarnation.
    b = Bench(3)
    b.join_all()
    target = b.core(1)
    inc = target.swim.incarnation
    b.core(0).on_message(Gossip(src_name=name(2), gossip=(Suspect(name=name(1), incarnation=inc,
                                                                   sender=name(2)),)), b.now)
    b.apply(addr(0))
    assert b.swim_state(0, 1) == SUSPECT
    b.run(1.0)
    assert target.swim.incarnation > inc
    assert target.swim.stats["refutes"] >= 1
    for i in (0, 2):
        assert b.swim_state(i, 1) == ALIVE
        assert b.core(i).swim.nodes[name(1)].incarnation == target.swim.incarnation
    assert not b.core(0).swim.suspicions


def test_suspicion_with_stale_incarnation_is_ignored() -> None:
    b = Bench(2)
    b.join_all()
    node = b.core(0).swim.nodes[name(1)]
    node.incarnation = 5
    b.core(0).on_message(Gossip(src_name=name(1), gossip=(Suspect(name=name(1), incarnation=4,
                                                                   sender="x"),)), b.now)
    assert node.state == ALIVE


def test_dead_message_about_self_is_refuted_unless_leaving() -> None:
    b = Bench(2)
    b.join_all()
    me = b.core(1)
    inc = me.swim.incarnation
    me.on_message(Gossip(src_name=name(0), gossip=(Dead(name=name(1), incarnation=inc, sender=name(0)),)),
                  b.now)
    b.apply(addr(1))
    assert me.swim.incarnation == inc + 1 and me.swim.nodes[name(1)].state == ALIVE
    assert me.swim.awareness.score == 1  # Lifeguard: being accused costs health


def test_buddy_system_probe_of_a_suspect_carries_the_suspicion() -> None:
    # Lifeguard §IV-C: the suspected member hears about it in the next probe it receives.
    b = Bench(3)
    b.join_all()
    inc = b.core(1).swim.incarnation
    b.core(0).on_message(Gossip(src_name=name(2), gossip=(Suspect(name=name(1), incarnation=inc,
                                                                   sender=name(2)),)), b.now)
    b.apply(addr(0))
    b.drop = lambda src, dst, msg: True  # look at what is sent, deliver nothing
    b.sent.clear()
    b.run(CFG.probe_interval_s * 3)
    pings = [m for s, d, m in b.sent if s == addr(0) and isinstance(m, Ping) and m.target == name(1)]
    assert pings, "node 0 never probed the suspect"
    first = pings[0].gossip[0]
    assert isinstance(first, Suspect) and first.name == name(1)


# ======================================================================== probing


def test_indirect_probe_saves_member_behind_lossy_direct_link() -> None:
    # SWIM §3.1: with the direct path 0 <-> 1 cut, probes through other members
    # still reach 1, so 1 is never suspected by 0.
    b = Bench(5)
    b.join_all()
    b.drop = lambda src, dst, msg: {src, dst} == {addr(0), addr(1)}
    b.run(30 * CFG.probe_interval_s)
    assert b.core(0).swim.stats["indirect_probes"] > 0
    assert all(b.swim_state(0, i) == ALIVE for i in range(1, 5))
    assert b.status(0, 1) == S_ALIVE and "member-failed" not in b.kinds(0, 1)


def test_without_a_path_the_member_is_suspected() -> None:
    b = Bench(5)
    b.join_all()
    # Cut every packet to 1 that asks about 1: direct and relayed probes both fail.
    b.drop = lambda src, dst, msg: (dst == addr(1) and isinstance(msg, Ping) and src == addr(0)) or (
        isinstance(msg, IndirectPing) and msg.target == name(1))
    b.run(3 * CFG.probe_interval_s * 5)
    assert b.core(0).swim.stats["suspects"] >= 1


def test_awareness_rises_when_nacks_are_missing_and_stretches_probes() -> None:
    # Lifeguard §IV-A (LHA-probe): a failed probe whose relays also stay silent
    # means the prober may be the slow one.
    b = Bench(5)
    b.join_all()
    prober = b.core(0)
    b.drop = lambda src, dst, msg: src == addr(0) or dst == addr(0)  # node 0 is cut off
    b.run(4 * CFG.probe_interval_s)
    assert prober.swim.awareness.score > 0
    assert prober.swim.awareness.scale(CFG.probe_interval_s) > CFG.probe_interval_s
    b.drop = lambda src, dst, msg: False
    b.run(40 * CFG.probe_interval_s)
    assert prober.swim.awareness.score == 0  # successful probes bring it back down


def test_ping_for_another_name_is_not_acked() -> None:
    b = Bench(2)
    b.join_all()
    b.core(1).on_message(Ping(seq=7, target="someone-else", src_name=name(0), src_addr=addr(0)), b.now)
    assert not any(isinstance(e, Send) and isinstance(e.msg, Ack) for e in b.core(1).take_effects())


def test_packets_stay_within_max_packet_bytes() -> None:
    b = Bench(30)  # the Bench asserts every packet's encoded size
    b.join_all()
    b.run(5.0)
    assert any(isinstance(m, Gossip) and len(m.gossip) > 1 for _, _, m in b.sent)


# ======================================================================== dissemination and anti-entropy


def test_join_answers_contacted_count_and_merges_state() -> None:
    b = Bench(4)
    b.core(0).join((addr(1), addr(2)), 7, b.now)
    b.apply(addr(0))
    b.core(3).join(("10.9.9.9:4648",), 8, b.now)  # nobody there
    b.apply(addr(3))
    b.run(CFG.stream_timeout_s + 0.1)
    assert b.replies[addr(0)][7] == (2, "")
    assert b.replies[addr(3)][8] == (0, "")
    # Our own address counts as joined (memberlist's push-pull with itself succeeds), alone or not.
    b.core(2).join((addr(2),), 9, b.now)
    b.core(2).join((addr(2), addr(1)), 10, b.now)
    b.apply(addr(2))
    b.run(CFG.stream_timeout_s + 0.1)
    assert b.replies[addr(2)][9] == (1, "") and b.replies[addr(2)][10] == (2, "")
    assert set(b.core(1).statuses()) >= {name(0), name(1)}
    assert b.status(0, 2) == S_ALIVE


def test_push_pull_heals_a_partition() -> None:
    b = Bench(6)
    b.join_all()
    side_a = {addr(i) for i in range(3)}
    b.drop = lambda src, dst, msg: (src in side_a) != (dst in side_a)
    b.run(CFG.failure_detection_bound_s(6) + CFG.gossip_to_the_dead_s)
    assert b.status(0, 4) == S_FAILED and b.status(4, 0) == S_FAILED
    b.drop = lambda src, dst, msg: False
    b.run(CFG.convergence_bound_s(6))
    for i in range(6):
        assert all(st == S_ALIVE for st in b.core(i).statuses().values()), (i, b.core(i).statuses())


def test_remote_dead_is_only_a_suspicion_after_push_pull() -> None:
    b = Bench(3)
    b.join_all()
    core = b.core(0)
    me = core.swim
    inc = me.nodes[name(1)].incarnation
    pp = PushPullReq(seq=1, src_name=name(2), src_addr=addr(2), join=False, names=(name(1),),
                     addrs=(addr(1),), incarnations=(inc,), states=(DEAD,), metas=(b"",),
                     vsns=(me.nodes[name(1)].vsn,))
    core.on_message(pp, b.now)
    assert me.nodes[name(1)].state == SUSPECT


# ======================================================================== Serf: leave, reap, force-leave


def test_left_not_failed_after_leave_intent() -> None:
    b = Bench(4)
    b.join_all()
    b.core(3).leave(99, b.now)
    b.apply(addr(3))
    assert b.core(3).state == "leaving"
    b.run(CFG.broadcast_timeout_s * 2 + CFG.leave_propagate_delay_s + 0.5)
    assert b.replies[addr(3)][99] == (None, "")
    assert b.core(3).state == "left" and b.core(3).swim.stopped
    assert all(b.swim_state(i, 3) == LEFT for i in range(3))  # SWIM: dead by its own word
    b.crash(3)
    b.run(CFG.failure_detection_bound_s(4))  # long enough to have been declared failed
    for i in range(3):
        assert b.status(i, 3) == S_LEFT
        assert "member-leave" in b.kinds(i, 3) and "member-failed" not in b.kinds(i, 3)
    assert b.swim_state(0, 3) is None  # SWIM forgets it after gossip_to_the_dead_s; Serf keeps the tombstone


def test_leave_twice_is_refused_while_in_progress() -> None:
    b = Bench(2)
    b.join_all()
    b.core(1).leave(1, b.now)
    b.core(1).leave(2, b.now)
    b.apply(addr(1))
    assert b.replies[addr(1)][2][1] == "Leave already in progress"


def test_reap_after_reconnect_timeout() -> None:
    b = Bench(3)
    b.join_all()
    b.crash(2)
    b.run(CFG.failure_detection_bound_s(3))
    assert b.status(0, 2) == S_FAILED
    failed_at = b.core(0).members[name(2)].leave_time
    b.run(failed_at + CFG.reconnect_timeout_s - b.now - 1.0)
    assert b.status(0, 2) == S_FAILED  # not before the timeout
    b.run(CFG.reap_interval_s + 1.0)
    assert b.status(0, 2) is None and b.kinds(0, 2)[-1] == "member-reap"


def test_tombstone_after_tombstone_timeout() -> None:
    b = Bench(3)
    b.join_all()
    b.core(2).leave(5, b.now)
    b.apply(addr(2))
    b.run(CFG.broadcast_timeout_s * 2 + 1.0)
    b.crash(2)
    assert b.status(0, 2) == S_LEFT
    left_at = b.core(0).members[name(2)].leave_time
    b.run(left_at + CFG.tombstone_timeout_s - b.now - 1.0)
    assert b.status(0, 2) == S_LEFT and name(2) in b.core(0).local_state()[2]
    b.run(CFG.reap_interval_s + 1.0)
    assert b.status(0, 2) is None and b.kinds(0, 2)[-1] == "member-reap"


def test_force_leave_turns_failed_into_left_everywhere() -> None:
    b = Bench(4)
    b.join_all()
    b.crash(3)
    b.run(CFG.failure_detection_bound_s(4))
    assert b.status(0, 3) == S_FAILED and b.status(1, 3) == S_FAILED
    b.core(0).force_leave(name(3), False, 11, b.now)
    b.apply(addr(0))
    b.run(CFG.broadcast_timeout_s)
    assert b.replies[addr(0)][11] == (None, "")
    for i in range(3):
        assert b.status(i, 3) == S_LEFT
        assert b.kinds(i, 3)[-1] == "member-leave"


def test_force_leave_of_a_dead_member_not_yet_detected_ends_left_across_a_push_pull() -> None:
    """The member is down but still alive to everyone when the operator force-leaves it: it is leaving
    everywhere, a push-pull carries that same Lamport time as a status (not a join intent of it), and
    once the failure is detected it is left -- not failed, as when the push-pull undid the leave."""
    b = Bench(4)
    b.join_all()
    b.crash(3)
    b.core(0).force_leave(name(3), False, 14, b.now)
    b.apply(addr(0))
    b.run(0.05)  # the leave intent is everywhere; no probe has missed member 3 yet
    assert [b.status(i, 3) for i in range(3)] == [S_LEAVING] * 3
    for i in (0, 1):  # each survivor pushes its state to the next, as its push-pull timer would
        b.core(i).swim._send_push_pull(addr(i + 1), b.now)
        b.apply(addr(i))
    b.run(0.05)
    assert [b.status(i, 3) for i in range(3)] == [S_LEAVING] * 3
    b.run(CFG.failure_detection_bound_s(4))
    for i in range(3):
        assert b.status(i, 3) == S_LEFT, (i, b.kinds(i, 3))


def test_force_leave_with_prune_of_a_dead_member_not_yet_detected_stays_erased_across_a_push_pull() -> None:
    """Erased once its leave has had time to spread, the member is not brought back by a peer's
    push-pull that still holds it leaving (hearsay: only the member itself, or SWIM, proves it lives)."""
    b = Bench(4)
    b.join_all()
    b.crash(3)
    # Member 1 never hears the leave: to it, member 3 is as alive as it was.
    b.drop = lambda src, dst, msg: dst == addr(1) and "LeaveIntent" in repr(msg)
    b.core(0).force_leave(name(3), True, 15, b.now)
    b.apply(addr(0))
    b.run(CFG.broadcast_timeout_s + CFG.leave_propagate_delay_s + 0.05)  # before any failure is detected
    assert b.status(0, 3) is None and b.status(2, 3) is None and b.status(1, 3) in (S_ALIVE, S_FAILED)
    b.core(1).swim._send_push_pull(addr(0), b.now)
    b.apply(addr(1))
    b.run(0.05)
    assert b.status(0, 3) is None  # member 1's word that it is alive is no proof
    b.run(CFG.failure_detection_bound_s(4))
    assert b.status(0, 3) is None and b.status(2, 3) is None


def test_a_push_pull_does_not_bring_back_a_member_erased_here_while_swim_holds_it_alive() -> None:
    """Serf's push-pull state makes no members: a peer listing one we erased (pruned before SWIM saw
    it fail) is hearsay, kept as a buffered intent, not a join."""
    b = Bench(3)
    b.join_all()
    core = b.core(0)
    core._erase(core.members[name(2)])  # as a prune does; SWIM still holds member 2 alive
    assert b.status(0, 2) is None and not core.swim.nodes[name(2)].dead_or_left()
    b.core(1).swim._send_push_pull(addr(0), b.now)
    pp = next(e.msg for e in b.core(1).take_effects() if isinstance(e, Send))
    core.on_message(pp, b.now)
    assert b.status(0, 2) is None and core.intents[name(2)][0] == "join"


def test_force_leave_with_prune_erases_the_member() -> None:
    b = Bench(4)
    b.join_all()
    b.crash(3)
    b.run(CFG.failure_detection_bound_s(4))
    b.core(1).force_leave(name(3), True, 12, b.now)
    b.apply(addr(1))
    b.run(CFG.broadcast_timeout_s)
    for i in range(3):
        assert b.status(i, 3) is None
        assert b.kinds(i, 3)[-1] == "member-reap"


def test_force_leave_of_a_live_member_is_refuted() -> None:
    b = Bench(3)
    b.join_all()
    b.core(0).force_leave(name(2), False, 13, b.now)
    b.apply(addr(0))
    assert b.status(0, 2) == S_LEAVING
    b.run(2.0)
    for i in range(3):
        assert b.status(i, 2) == S_ALIVE  # 2 answered with a newer join intent


# ======================================================================== Serf: Lamport clocks


def test_lamport_clock_orders_intents() -> None:
    b = Bench(2)
    b.join_all()
    core = b.core(0)
    clock = core.clock.time()
    member = core.members[name(1)]
    member.status_ltime = 10
    core.on_message(Gossip(src_name=name(1), gossip=(LeaveIntent(name=name(1), ltime=9),)), b.now)
    assert member.status == S_ALIVE  # older than the status: ignored
    assert core.clock.time() >= max(clock, 10)  # but witnessed
    core.on_message(Gossip(src_name=name(1), gossip=(LeaveIntent(name=name(1), ltime=12),)), b.now)
    assert member.status == S_LEAVING and member.status_ltime == 12
    core.on_message(Gossip(src_name=name(1), gossip=(JoinIntent(name=name(1), ltime=11),)), b.now)
    assert member.status == S_LEAVING  # the join is older than the leave
    core.on_message(Gossip(src_name=name(1), gossip=(JoinIntent(name=name(1), ltime=13),)), b.now)
    assert member.status == S_ALIVE and core.clock.time() == 14


def test_stale_leave_intent_about_self_is_refuted_with_newer_join() -> None:
    b = Bench(2)
    b.join_all()
    me = b.core(1)
    me.on_message(Gossip(src_name=name(0), gossip=(LeaveIntent(name=name(1), ltime=50),)), b.now)
    effects = me.take_effects()
    joins = [m for e in effects if isinstance(e, Send) for m in getattr(e.msg, "gossip", ())
             if isinstance(m, JoinIntent)]
    queued = [m for m, _ in me.swim.queue.items() if isinstance(m, JoinIntent)]
    assert any(j.name == name(1) and j.ltime > 50 for j in joins + queued)
    assert me.members[name(1)].status == S_ALIVE


def test_intent_for_unknown_member_is_buffered_until_it_joins() -> None:
    b = Bench(3, start=False)
    core = b.core(0)
    core.start(0.0)
    core.take_effects()
    core.on_message(Gossip(src_name="x", gossip=(LeaveIntent(name=name(2), ltime=3),)), 0.0)
    assert core.intents[name(2)][:2] == ("leave", 3)
    core.on_message(Gossip(src_name="x", gossip=(Alive(name=name(2), addr=addr(2), incarnation=1),)), 0.0)
    assert core.members[name(2)].status == S_LEAVING and core.members[name(2)].status_ltime == 3


# ======================================================================== views and messages


def test_members_view_has_nomads_shape() -> None:
    b = Bench(2)
    b.join_all()
    view = b.core(0).members_view()
    assert [m["Name"] for m in view] == [name(0), name(1)]
    m = view[1]
    assert m["Addr"] == "10.0.0.2" and m["Port"] == 4648 and m["Status"] == "alive"
    assert m["Tags"] == {"id": "1", "role": "nomad"}
    assert (m["ProtocolMin"], m["ProtocolMax"], m["ProtocolCur"]) == (1, 5, 2)
    assert (m["DelegateMin"], m["DelegateMax"], m["DelegateCur"]) == (2, 5, 4)


def test_tag_update_reaches_members_as_update_event() -> None:
    b = Bench(3)
    b.join_all()
    b.core(2).set_tags(make_tags({"role": "nomad", "id": "2", "build": "1.10.0"}), b.now)
    b.apply(addr(2))
    b.run(1.0)
    assert b.core(0).members[name(2)].tags == (("build", "1.10.0"), ("id", "2"), ("role", "nomad"))
    assert b.kinds(0, 2)[-1] == "member-update"


def test_tags_roundtrip_and_malformed_meta_is_rejected() -> None:
    tags = make_tags({"region": "global", "role": "nomad", "expect": 3})
    assert tags == (("expect", "3"), ("region", "global"), ("role", "nomad"))
    assert decode_tags(encode_tags(tags)) == tags
    for bad in (b"\xc1", wire.encode(Ack(seq=1)), b"\x92\xa1a\x01"):
        with pytest.raises(ValueError):
            decode_tags(bad)
    with pytest.raises(ValueError):
        make_tags({"k": "v" * 600})


@pytest.mark.parametrize("bad", [
    [200, "", "1.2.3.4:1", 1, b"", bytes((1, 5, 2, 2, 5, 4))],  # empty name
    [200, "n", "1.2.3.4:1", -1, b"", bytes((1, 5, 2, 2, 5, 4))],  # negative incarnation
    [200, "n", "1.2.3.4:1", 1, b"x" * 600, bytes((1, 5, 2, 2, 5, 4))],  # oversized meta
    [201, "n" * 200, 1, "m"],  # name too long
    [203, "n", 2**63],  # a Lamport time we could not send back
    [210, 1, "n", "1.2.3.4:1", False, ["a"], [], [], [], [], [], 0, [], [], []],  # ragged columns
])
def test_malformed_messages_are_rejected_at_the_wire(bad: list) -> None:
    import msgpack

    with pytest.raises(wire.BadField):
        wire.decode(msgpack.packb(bad, use_bin_type=True))


def test_every_gossip_message_roundtrips_the_wire() -> None:
    samples = [
        Alive(name="a", addr="1.2.3.4:4648", incarnation=3, meta=encode_tags(make_tags({"k": "v"}))),
        Suspect(name="a", incarnation=3, sender="b"), Dead(name="a", incarnation=3, sender="a"),
        JoinIntent(name="a", ltime=4), LeaveIntent(name="a", ltime=5, prune=True),
        Ping(seq=1, target="a", src_name="b", src_addr="x:1", gossip=(JoinIntent(name="a", ltime=1),)),
        Gossip(src_name="b", gossip=(Dead(name="a", incarnation=1, sender="b"),)),
        MemberEvent(kind="member-join", pool="gossip", name="a", addr="x:1", status="alive",
                    tags=(("k", "v"),)),
    ]
    for m in samples:
        assert wire.decode(wire.encode(m)) == m
    ours = [tag for tag, cls in wire.registered().items() if cls.__module__.endswith("gossip.messages")]
    assert ours and all(200 <= tag < 250 for tag in ours)


# ==================================================================== departures from memberlist (core.py)


def test_push_pull_hearsay_does_not_confirm_a_suspicion() -> None:
    b = Bench(6)
    b.join_all()
    core = b.core(0)
    inc = core.swim.nodes[name(5)].incarnation
    hear(core, b.now, Suspect(name=name(5), incarnation=inc, sender=name(1)))
    sus = core.swim.suspicions[name(5)]
    n = core.swim.nodes[name(5)]
    pp = PushPullReq(seq=9, src_name=name(2), src_addr=addr(2), join=False, names=(name(5),),
                     addrs=(addr(5),), incarnations=(inc,), states=(SUSPECT,), metas=(n.meta,), vsns=(n.vsn,))
    core.on_message(pp, b.now)
    assert sus.n == 0  # a peer's state is not an independent observation
    hear(core, b.now, Suspect(name=name(5), incarnation=inc, sender=name(3)))
    assert sus.n == 1  # a second accuser is


def test_stale_accusation_makes_the_member_reassert_its_alive() -> None:
    b = Bench(2)
    b.join_all()
    me = b.core(1).swim
    me.incarnation = me.nodes[name(1)].incarnation = 5
    b.run(2.0)  # let the queue drain
    me.on_message(Ping(seq=1, target=name(1), src_name=name(0), src_addr=addr(0),
                       gossip=(Suspect(name=name(1), incarnation=3, sender=name(0)),)), b.now)
    acks = [e.msg for e in b.core(1).take_effects() if isinstance(e, Send) and isinstance(e.msg, Ack)]
    assert me.incarnation == 5 and me.stats["reasserts"] == 1
    assert any(isinstance(m, Alive) and m.name == name(1) and m.incarnation == 5 for m in acks[0].gossip)


def test_successful_probe_unmarks_a_suspect_locally() -> None:
    # SWIM §4.2: a member that answers our ping is not declared dead by us.
    b = Bench(3)
    b.join_all()
    core = b.core(0)
    inc = core.swim.nodes[name(1)].incarnation
    hear(core, b.now, Suspect(name=name(1), incarnation=inc, sender=name(2)))
    b.apply(addr(0))
    swim = core.swim
    assert swim.nodes[name(1)].state == SUSPECT
    swim._finish_probe(b.now)
    swim._probe_node(swim.nodes[name(1)])  # the refutation is lost; our probe gets through
    core.on_message(Ack(seq=swim.probe.seq), b.now)
    assert swim.nodes[name(1)].state == ALIVE and swim.nodes[name(1)].incarnation == inc
    assert name(1) not in swim.suspicions and swim.stats["unmarked"] == 1
    assert core.statuses()[name(1)] == S_ALIVE


def test_equal_lamport_times_resolve_to_the_join_in_any_order() -> None:
    for order in ("join-first", "leave-first"):
        b = Bench(2)
        b.join_all()
        core = b.core(0)
        member = core.members[name(1)]
        lt = member.status_ltime + 5
        msgs = [JoinIntent(name=name(1), ltime=lt), LeaveIntent(name=name(1), ltime=lt)]
        if order == "leave-first":
            msgs.reverse()
        for m in msgs:
            core.on_message(Gossip(src_name=name(1), gossip=(m,)), b.now)
        assert member.status == S_ALIVE, order


def test_running_member_refutes_a_leave_with_its_own_lamport_time() -> None:
    b = Bench(2)
    b.join_all()
    me = b.core(1)
    lt = me.members[name(1)].status_ltime
    me.on_message(Gossip(src_name=name(0), gossip=(LeaveIntent(name=name(1), ltime=lt),)), b.now)
    queued = [m for m, _ in me.swim.queue.items() if isinstance(m, JoinIntent) and m.name == name(1)]
    assert queued and queued[0].ltime > lt


def test_member_pruned_while_alive_comes_back_when_it_proves_alive() -> None:
    b = Bench(3)
    b.join_all()
    b.core(0).force_leave(name(2), True, 21, b.now)  # a live member: leaving, erased after a delay
    b.apply(addr(0))
    b.drop = lambda src, dst, msg: addr(2) in (src, dst)  # it cannot refute in time
    b.run(CFG.broadcast_timeout_s + CFG.leave_propagate_delay_s + 0.5)
    assert b.status(0, 2) is None and b.kinds(0, 2)[-1] == "member-reap"
    b.drop = lambda src, dst, msg: False
    b.run(CFG.convergence_bound_s(3))
    assert b.status(0, 2) == S_ALIVE and b.kinds(0, 2)[-1] == "member-join"


def test_leave_is_sent_directly_to_every_alive_member() -> None:
    b = Bench(8)
    b.join_all()
    b.run(2.0)
    b.sent.clear()
    b.core(7).leave(30, b.now)
    b.apply(addr(7))
    direct = {d for s, d, m in b.sent if s == addr(7) and isinstance(m, Gossip)
              and any(isinstance(x, LeaveIntent) for x in m.gossip)}
    assert direct == {addr(i) for i in range(7)}


def test_lone_survivor_reconnects_to_every_failed_member_each_interval() -> None:
    # Serf caps reconnects at one member per interval; a lone survivor among
    # many failed members tries them all (failed / alive of them).
    b = Bench(6)
    b.join_all()
    for i in range(1, 6):
        b.crash(i)
    # Slower than one crash's bound: every probe fails and no relay nacks, so
    # Lifeguard stretches the probe interval (the prober may be the problem).
    b.run(CFG.awareness_max_multiplier * 5 * CFG.probe_interval_s + CFG.suspicion_max_timeout_s(6))
    assert len(b.core(0).failed) == 5
    b.sent.clear()
    b.run(CFG.reconnect_interval_s)
    tried = {d for s, d, m in b.sent if s == addr(0) and isinstance(m, PushPullReq) and m.join}
    assert tried == {addr(i) for i in range(1, 6)}


def test_a_members_port_from_the_wire_that_is_no_ascii_number_shows_as_0_not_an_error() -> None:
    """'²' is a digit to str.isdigit but not to int(): /v1/agent/members must not 500 on such a peer."""
    from actors.gossip.serf import SerfMember

    assert SerfMember("a", "10.0.0.1:²", {}, bytes(6)).as_api()["Port"] == 0
    assert SerfMember("b", "[::1]:4648", {}, bytes(6)).as_api()["Addr"] == "::1"
    assert SerfMember("b", "[::1]:4648", {}, bytes(6)).as_api()["Port"] == 4648
