"""The simulated network hands a heartbeat's message over without decoding its frame, as if decoded."""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.client.messages import NodeUpdateResponse, UpdateNodeStatus
from actors.raft.messages import AppendResp
from runtime import wire
from runtime.actor import NodeActor
from sim.network import _PASSTHROUGH
from sim.runtime import Scheduler


class Sink(NodeActor):
    def __init__(self, env: Any, name: str, got: list[Any]) -> None:
        super().__init__(env, name)
        self.got = got

    def receive(self, message: Any) -> Any:
        self.got.append(message)


def samples() -> list[Any]:
    return [UpdateNodeStatus(req_id=7, reply_node="c1", reply_actor="client", node_id="n-1", hops=1),
            NodeUpdateResponse(req_id=7, ok=True, heartbeat_ttl_s=12.345678901234567, leader="s1",
                               servers=("s1", "s2"), num_nodes=3, index=0, eval_ids=("e1",)),
            AppendResp(term=3, follower="s2", success=False, match_index=0, hint_index=4, hint_term=2,
                       read_ctx=9)]


def test_passthrough_types_are_flat_and_round_trip_exactly() -> None:
    flat = {"str", "int", "float", "bool", "tuple[str, ...]"}
    for cls in _PASSTHROUGH:
        for f in dataclasses.fields(cls):
            assert str(f.type) in flat, (cls.__name__, f.name, f.type)
    assert {type(m) for m in samples()} == set(_PASSTHROUGH)
    for m in samples():
        back = wire.decode(wire.encode(m))
        assert back == m
        assert [type(getattr(back, f.name)) for f in dataclasses.fields(m)] == \
            [type(getattr(m, f.name)) for f in dataclasses.fields(m)]


def run_pair(**faults: Any) -> tuple[Scheduler, list[Any]]:
    sched = Scheduler(3)
    got: list[Any] = []
    sched.add_node("a", lambda env: None)
    sched.add_node("b", lambda env: env.spawn(Sink, "sink", got))
    if faults:
        sched.network.configure(**faults)
    for m in samples():
        sched.network.transmit("a", "b", "sink", m)
    sched.run_for(1.0)
    return sched, got


def test_delivery_hands_over_the_message_sent() -> None:
    sched, got = run_pair()
    assert got == samples()
    assert sched.network._inflight == {}
    assert sched.network.stats["delivered"] == len(samples()) and sched.network.stats["bytes"] > 0


def test_duplicated_frames_decode() -> None:
    sched, got = run_pair(duplicate=1.0)
    assert sorted(got, key=repr) == sorted(samples() * 2, key=repr)
    assert sched.network._inflight == {}


def test_a_node_down_at_delivery_drops_the_frame_and_forgets_it() -> None:
    sched = Scheduler(3)
    got: list[Any] = []
    sched.add_node("a", lambda env: None)
    b = sched.add_node("b", lambda env: env.spawn(Sink, "sink", got))
    for m in samples():
        sched.network.transmit("a", "b", "sink", m)
    b.crash()
    sched.run_for(1.0)
    assert got == []
    assert sched.network.stats["undeliverable"] == len(samples())
    assert sched.network._inflight == {}
