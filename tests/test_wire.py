"""The wire codec: every registered message round-trips; garbage never escapes as anything but WireError."""

from __future__ import annotations

import struct
import typing
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import wire
from runtime.messages import Envelope, Ping, TimerFired
import runtime.messages  # noqa: F401 - registers the runtime's messages


def _load_all_message_modules() -> None:
    """Import every protocol module so every registered type is tested."""
    import importlib
    import pkgutil

    import actors

    for mod in pkgutil.walk_packages(actors.__path__, "actors."):
        importlib.import_module(mod.name)


_load_all_message_modules()


def strategy_for(tp: typing.Any, depth: int = 0) -> st.SearchStrategy:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of(*(strategy_for(a, depth) for a in args))
    if tp is type(None):
        return st.none()
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0], depth + 1), max_size=4).map(tuple)
        return st.tuples(*(strategy_for(a, depth + 1) for a in args))
    if origin is frozenset:
        return st.frozensets(strategy_for(args[0], depth + 1), max_size=4)
    if tp is wire.Message:
        leaf = [c for c in wire.registered().values() if _is_flat(c)]
        return st.sampled_from(leaf).flatmap(lambda c: message_strategy(c, depth + 1))
    if tp in wire.registered().values():
        return message_strategy(tp, depth + 1)
    return {
        int: st.integers(min_value=-(2**63), max_value=2**64 - 1),
        float: st.floats(allow_nan=False),
        str: st.text(max_size=20),
        bytes: st.binary(max_size=32),
        bool: st.booleans(),
    }[tp]


def _is_flat(cls: type) -> bool:
    return all(tp is not wire.Message for _, tp in wire.fields_of(cls))


def message_strategy(cls: type, depth: int = 0) -> st.SearchStrategy:
    fields = {name: strategy_for(tp, depth) for name, tp in wire.fields_of(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


ALL = sorted(wire.registered().items())


@pytest.mark.parametrize("tag,cls", ALL, ids=[c.__name__ for _, c in ALL])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_registered_message_round_trips(tag, cls, data):
    try:
        msg = data.draw(message_strategy(cls))
    except (TypeError, ValueError):
        return  # the message's own validation refused the drawn values
    assert wire.decode(wire.encode(msg)) == msg
    assert wire.decode_frame(wire.encode_frame(msg)) == msg


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_errors(data):
    try:
        wire.decode(data)
    except wire.WireError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_streams_raise_only_wire_errors(data):
    dec = wire.FrameDecoder(max_frame_bytes=1024)
    try:
        for i in range(0, len(data), 7):
            dec.feed(data[i : i + 7])
    except wire.WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=255))
def test_corrupted_valid_frames_raise_only_wire_errors(pos, byte):
    body = bytearray(wire.encode(Envelope(src="a", dst_actor="b", payload=Ping(
        seq=5, reply_to_node="a", reply_to_actor="p", body=b"xyz"))))
    body[pos % len(body)] = byte
    try:
        wire.decode(bytes(body))
    except wire.WireError:
        pass


def test_unknown_tag_is_refused():
    import msgpack

    with pytest.raises(wire.UnknownTag):
        wire.decode(msgpack.packb([65000, 1, 2]))


def test_wrong_field_type_is_refused():
    import msgpack

    with pytest.raises(wire.BadField, match="TimerFired.generation"):
        wire.decode(msgpack.packb([TimerFired.TAG, "t", "not-an-int"]))
    with pytest.raises(wire.BadField, match="expected 2 fields"):
        wire.decode(msgpack.packb([TimerFired.TAG, "t"]))
    with pytest.raises(wire.BadField):
        wire.decode(msgpack.packb([TimerFired.TAG, "t", True]))  # bool is not int


def test_truncated_frame_is_refused():
    frame = wire.encode_frame(TimerFired(name="t", generation=1))
    with pytest.raises(wire.TruncatedFrame):
        wire.decode_frame(frame[:-2])
    with pytest.raises(wire.TruncatedFrame):
        wire.decode(frame[4:-2])


def test_oversized_frame_is_refused_before_its_body_arrives():
    dec = wire.FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(wire.FrameTooLarge):
        dec.feed(struct.pack(">I", 1 << 30))
    with pytest.raises(wire.FrameTooLarge):
        wire.encode_frame(Ping(seq=1, reply_to_node="a", reply_to_actor="b", body=b"x" * 2000),
                          max_frame_bytes=1024)


def test_stream_decoder_reassembles_split_frames():
    msgs = [TimerFired(name=f"t{i}", generation=i) for i in range(50)]
    stream = b"".join(wire.encode_frame(m) for m in msgs)
    dec = wire.FrameDecoder()
    out = []
    for i in range(0, len(stream), 3):
        out.extend(dec.feed(stream[i : i + 3]))
    assert out == msgs and dec.pending_bytes == 0


def test_frozensets_encode_independently_of_hash_order():
    @wire.message(90)
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Tags(wire.Message):
        names: frozenset[str]

    a = Tags(names=frozenset(["zeta", "alpha", "mid"]))
    b = Tags(names=frozenset(["mid", "zeta", "alpha"]))
    assert wire.encode(a) == wire.encode(b)
    assert wire.decode(wire.encode(a)) == a


def test_registering_a_used_tag_for_another_class_fails():
    with pytest.raises(TypeError, match="already used"):
        @wire.message(TimerFired.TAG)
        @dataclass(frozen=True, slots=True, kw_only=True)
        class Impostor(wire.Message):
            x: int


def test_envelope_head_plus_payload_is_the_envelope():
    head = wire.head_encoder(Envelope)
    for src, actor in (("a", "b"), ("c0001", "heartbeats"), ("s" * 40, "x" * 300)):
        for payload in (TimerFired(name="t", generation=7),
                        Ping(seq=5, reply_to_node="a", reply_to_actor="p", body=b"xyz")):
            assert head(src, actor) + wire.encode(payload) == \
                wire.encode(Envelope(src=src, dst_actor=actor, payload=payload))
    with pytest.raises(TypeError):
        wire.head_encoder(TimerFired)  # no payload field


def test_a_str_tuple_field_refuses_a_wrong_item_inside_an_envelope():
    import msgpack

    from actors.client.messages import NodeUpdateResponse

    good = NodeUpdateResponse(req_id=1, ok=True, servers=("s1", "s2"))
    dec = wire.fields_decoder(Envelope)
    assert dec(wire.encode(Envelope(src="a", dst_actor="b", payload=good)))[2] == good
    payload = [NodeUpdateResponse.TAG, 1, True, "", 0.0, "", ["s1", 2], 0, 0, []]
    with pytest.raises(wire.BadField, match=r"NodeUpdateResponse\.servers"):  # an int among the servers
        dec(msgpack.packb([Envelope.TAG, "a", "b", payload]))
