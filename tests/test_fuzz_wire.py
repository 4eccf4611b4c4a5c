"""Fuzzing the network decoders (issue 10): the msgpack codec, the RPC frame reader, the gossip packet path.

tests/test_wire.py already feeds random bytes to the codec; random bytes
rarely get past the first type check.  These tests are structure-aware:
they take a *valid* encoding of every registered message, mutate it at the
msgpack level (a field replaced by a value of another type, a huge or
negative integer, a deep nest, an array cut short or grown) and re-pack it,
so the mutation reaches each field's decoder and each message's own
validation.  The property everywhere: a decoder returns a message or raises
``WireError`` -- never anything else -- and a gossip core handed any message
that survives decoding does not raise.

The gossip packet path is fuzzed with the encryption layer in front
(``GossipCrypto``: random or tampered packets are refused as a count, never
an exception), and the RPC and gossip stream readers are fed arbitrary
splits of streams mixing valid and hostile frames.  Profiles: the default
run keeps example counts small; ``HYPOTHESIS_PROFILE=nightly`` runs 2000.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.gossip.config import fast_config
from actors.gossip.messages import WIRE_TYPES
from actors.gossip.serf import SerfCore
from runtime import wire
from runtime.gossip_crypto import DecryptError, GossipCrypto, Keyring
from runtime.messages import Envelope
from runtime.transport import SealedFrameDecoder, UdpTransport
from tests.test_wire import ALL, message_strategy

K1 = base64.b64encode(bytes(range(32))).decode()
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Values a hostile peer may put where a field belongs: every msgpack type,
# the integer edges (64-bit bounds and just past our MAX_COUNTER), deep nests.
HOSTILE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
              st.sampled_from([0, -1, 2**62, 2**63 - 1, 2**64 - 1, -(2**63)]),
              st.floats(), st.text(max_size=40), st.binary(max_size=40),
              st.text(min_size=200, max_size=600)),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12,
)


def _valid(cls: type, data: st.DataObject) -> Any:
    """A valid instance of *cls*, or None when the drawn values fail its own validation."""
    try:
        return data.draw(message_strategy(cls))
    except (TypeError, ValueError):
        return None


def _paths(value: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every position inside nested lists (where a mutation can go)."""
    out = [prefix]
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _mutate(tree: Any, path: tuple[int, ...], how: str, new: Any) -> Any:
    if not path:
        return new
    tree = list(tree)
    i = path[0]
    if len(path) == 1:
        if how == "replace":
            tree[i] = new
        elif how == "drop":
            del tree[i]
        else:  # "insert"
            tree.insert(i, new)
        return tree
    tree[i] = _mutate(tree[i], path[1:], how, new)
    return tree


@st.composite
def mutated_encoding(draw: Any, cls: type) -> bytes | None:
    """A valid encoding of a *cls* (inside an Envelope) with one structural mutation."""
    try:
        msg = draw(message_strategy(cls))
    except (TypeError, ValueError):
        return None
    env = Envelope(src="10.0.0.1:4648", dst_actor="gossip", payload=msg)
    tree = msgpack.unpackb(wire.encode(env), raw=False, strict_map_key=False)
    paths = _paths(tree)
    path = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(["replace", "drop", "insert"])) if path else "replace"
    return msgpack.packb(_mutate(tree, path, how, draw(HOSTILE)), use_bin_type=True)


def _decode_only_wire_errors(data: bytes) -> Any:
    try:
        return wire.decode(data)
    except wire.WireError:
        return None


@pytest.mark.parametrize("tag,cls", ALL, ids=[c.__name__ for _, c in ALL])
@SETTINGS
@given(data=st.data())
def test_structurally_mutated_messages_decode_or_raise_only_wire_errors(tag, cls, data):
    encoded = data.draw(mutated_encoding(cls))
    if encoded is not None:
        _decode_only_wire_errors(encoded)


def _core() -> SerfCore:
    core = SerfCore("me.global", "10.0.0.9:4648", fast_config(), random.Random(1), tags=(("role", "nomad"),),
                    pool="gossip")
    core.start(0.0)
    return core


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=[c.__name__ for c in WIRE_TYPES])
@SETTINGS
@given(data=st.data())
def test_any_gossip_message_that_decodes_is_handled_without_raising(cls, data):
    """Whatever survives decoding reaches the SWIM/Serf core; the core must take it."""
    msgs = []
    for _ in range(data.draw(st.integers(1, 4))):
        encoded = data.draw(mutated_encoding(cls)) if data.draw(st.booleans()) else None
        env = _decode_only_wire_errors(encoded) if encoded is not None else None
        if env is None:
            env = Envelope(src="x", dst_actor="gossip", payload=_valid(cls, data))
        if isinstance(env, Envelope) and isinstance(env.payload, WIRE_TYPES):
            msgs.append(env.payload)
    core = _core()
    for i, m in enumerate(msgs):
        core.on_message(m, float(i))
        core.take_effects()
        core.check_invariants()


# ---------------------------------------------------------------- the encrypted packet path


@SETTINGS
@given(st.binary(max_size=300))
def test_random_packets_never_decrypt_and_raise_only_decrypt_error(data):
    with pytest.raises(DecryptError):
        Keyring([K1]).open(data)


@SETTINGS
@given(st.binary(min_size=0, max_size=200), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_to_a_sealed_packet_is_refused(plain, pos, flip):
    sealed = bytearray(Keyring([K1]).seal(plain))
    sealed[pos % len(sealed)] ^= flip
    with pytest.raises(DecryptError):
        Keyring([K1]).open(bytes(sealed))


@SETTINGS
@given(data=st.data())
def test_udp_handler_counts_every_bad_packet_and_delivers_every_good_one(data):
    """UdpTransport._handle (the gossip packet decoder) with encryption in front, no socket needed."""
    got: list[Envelope] = []
    udp = UdpTransport("127.0.0.1:0", got.append, crypto=GossipCrypto([K1]))
    sealer = Keyring([K1])
    good = bad = 0
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["random", "sealed-garbage", "sealed-mutated", "sealed-valid"]))
        if kind == "random":
            packet = data.draw(st.binary(max_size=200))
        elif kind == "sealed-garbage":
            packet = sealer.seal(data.draw(st.binary(max_size=200)))
        elif kind == "sealed-mutated":
            encoded = data.draw(mutated_encoding(data.draw(st.sampled_from(WIRE_TYPES))))
            packet = sealer.seal(encoded or b"")
        else:
            msg = _valid(data.draw(st.sampled_from(WIRE_TYPES)), data)
            if msg is None:
                continue
            packet = sealer.seal(wire.encode(Envelope(src="10.0.0.1:1", dst_actor="gossip", payload=msg)))
        before = len(got)
        udp._handle(packet, ("10.0.0.1", 4648))
        if len(got) > before:
            good += 1
        else:
            bad += 1
        if kind == "sealed-valid":
            assert len(got) == before + 1
    st_ = udp.stats
    assert st_["received"] == good
    assert st_["bad_frames"] + st_["decrypt_failed"] == bad


# ---------------------------------------------------------------- stream readers (RPC and gossip)


@st.composite
def hostile_stream(draw: Any) -> tuple[bytes, list[int]]:
    """Valid frames, then possibly one hostile frame (garbage, oversized length, mutated body); cut points."""
    frames = []
    for i in range(draw(st.integers(0, 4))):
        frames.append(wire.encode_frame(Envelope(src="a", dst_actor="b", payload=_ping(i))))
    tail = draw(st.sampled_from(["none", "garbage", "oversized", "mutated"]))
    if tail == "garbage":
        body = draw(st.binary(max_size=60))
        frames.append(wire.FRAME_HEADER.pack(len(body)) + body)
    elif tail == "oversized":
        frames.append(wire.FRAME_HEADER.pack(draw(st.integers(1025, 2**32 - 1))))
    elif tail == "mutated":
        encoded = draw(mutated_encoding(draw(st.sampled_from([c for _, c in ALL]))))
        if encoded is not None:
            frames.append(wire.FRAME_HEADER.pack(len(encoded)) + encoded)
    stream = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, max(0, len(stream))), max_size=8)))
    return stream, cuts


def _ping(seq: int) -> Any:
    from runtime.messages import Ping

    return Ping(seq=seq, reply_to_node="a", reply_to_actor="b")


def _feed(decoder: Any, stream: bytes, cuts: list[int]) -> list[Any]:
    out: list[Any] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[prev:cut])
        prev = cut
    return out


@SETTINGS
@given(hostile_stream())
def test_rpc_frame_reader_yields_the_valid_prefix_then_only_wire_errors(case):
    stream, cuts = case
    decoder = wire.FrameDecoder(max_frame_bytes=1024)
    got: list[Any] = []
    try:
        got = _feed(decoder, stream, cuts)
    except wire.WireError:
        pass
    # However the stream is cut, the valid frames before any hostile one come out in order.
    seqs = [e.payload.seq for e in got if isinstance(e, Envelope) and type(e.payload).__name__ == "Ping"]
    assert seqs == sorted(seqs)


@SETTINGS
@given(hostile_stream(), st.booleans())
def test_gossip_stream_reader_with_encryption_raises_only_wire_errors(case, seal_frames):
    stream, cuts = case
    crypto = GossipCrypto([K1])
    if seal_frames:  # re-frame every body sealed, as a member with the right key sends them
        dec = wire.FrameDecoder(max_frame_bytes=2**32)
        bodies = []
        buf = stream
        while len(buf) >= 4:
            (n,) = wire.FRAME_HEADER.unpack_from(buf)
            if len(buf) < 4 + n:
                break
            bodies.append(buf[4:4 + n])
            buf = buf[4 + n:]
        del dec
        sealed = [crypto.keyring.seal(b) for b in bodies]
        stream = b"".join(wire.FRAME_HEADER.pack(len(s)) + s for s in sealed)
        cuts = [c for c in cuts if c <= len(stream)]
    try:
        _feed(SealedFrameDecoder(crypto, max_frame_bytes=1024), stream, cuts)
    except wire.WireError:
        pass
