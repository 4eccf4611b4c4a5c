"""Gossip encryption (issue 10): memberlist's AES-GCM format, the keyring and its rotation.

Unit tests of runtime/gossip_crypto.py and the keyring rules of
actors/gossip/keyring.py; the pool-wide keyring operation in the simulator
(deterministic, no encryption: the simulator runs the protocol, the edge is
production's); and GossipTransport with real sockets on 127.0.0.1, where a
packet or stream sealed with a key the receiver lacks is dropped and
counted.  Waits poll against deadlines.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Callable

import gevent
import pytest

from actors.gossip.keyring import NOT_ENABLED, KeyOpResult, KeyQuery, KeyringRequest, apply_op, normalize_key
from actors.gossip.messages import PUSH_PULL_TYPES, Gossip, PushPullReq
from runtime.gossip_crypto import (
    OVERHEAD,
    DecryptError,
    GossipCrypto,
    Keyring,
    KeyringError,
    decode_key,
    generate_key,
    load_keyring_file,
    save_keyring_file,
)
from runtime.messages import Envelope, Ping
from runtime.transport import GossipTransport

pytestmark = pytest.mark.timeout(60)

K1, K2, K3 = (base64.b64encode(bytes([i]) * 32).decode() for i in (1, 2, 3))


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.005)


# ---------------------------------------------------------------- the cipher


def test_sealed_packet_has_memberlist_layout_and_29_bytes_overhead():
    ring = Keyring([K1])
    sealed = ring.seal(b"hello")
    assert OVERHEAD == 29
    assert len(sealed) == len(b"hello") + OVERHEAD
    assert sealed[0] == 1  # memberlist encryption version 1: no padding
    assert ring.open(sealed) == b"hello"
    assert ring.seal(b"hello")[1:13] != sealed[1:13]  # a fresh nonce per packet


def test_packet_sealed_with_an_unknown_key_or_tampered_is_refused():
    sealed = Keyring([K1]).seal(b"payload")
    with pytest.raises(DecryptError, match="No installed keys"):
        Keyring([K2]).open(sealed)
    for i in (0, 5, 20, len(sealed) - 1):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(DecryptError):
            Keyring([K1]).open(bytes(bad))
    with pytest.raises(DecryptError, match="shorter"):
        Keyring([K1]).open(sealed[:OVERHEAD - 1])


def test_every_installed_key_decrypts_but_only_the_primary_encrypts():
    old = Keyring([K1])
    both = Keyring([K1, K2])  # K2 installed, K1 still primary
    rotated = Keyring([K2, K1])  # K2 in use
    assert both.open(old.seal(b"x")) == b"x"
    assert old.open(both.seal(b"x")) == b"x"
    assert both.open(rotated.seal(b"y")) == b"y"
    with pytest.raises(DecryptError):
        old.open(rotated.seal(b"y"))


def test_keys_are_validated_with_clear_messages():
    assert len(decode_key(generate_key())) == 32
    assert generate_key() != generate_key()
    for bad, why in (("", "empty"), ("not base64!", "not valid base64"),
                     (base64.b64encode(b"short").decode(), "16, 24 or 32 bytes, got 5")):
        with pytest.raises(KeyringError, match=why):
            decode_key(bad)
    for size in (16, 24, 32):
        Keyring([base64.b64encode(os.urandom(size)).decode()])
    with pytest.raises(KeyringError, match="same key twice"):
        Keyring([K1, K1])


def test_keyring_file_is_private_and_round_trips(tmp_path):
    path = str(tmp_path / "server" / "serf.keyring")
    save_keyring_file(path, [K2, K1])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keyring_file(path) == [K2, K1]
    crypto = GossipCrypto([K2, K1], path=path)
    crypto.install((K2,))
    assert load_keyring_file(path) == [K2]
    for body, why in (("{", "Error loading keyring"), ("[]", "non-empty JSON list"),
                      ('["no!"]', "not valid base64"), ('{"a": 1}', "non-empty JSON list")):
        with open(path, "w") as fh:
            fh.write(body)
        with pytest.raises(KeyringError, match=why):
            load_keyring_file(path)


def test_decrypt_failures_are_counted_and_logged_rate_limited(caplog):
    crypto = GossipCrypto([K1])
    sealed = Keyring([K2]).seal(b"x")
    with caplog.at_level("WARNING", logger="nomad.gossip.crypto"):
        for _ in range(50):
            assert crypto.open(sealed, "10.0.0.1:4648", "packet") is None
    assert crypto.stats["decrypt_failed"] == 50
    lines = [r for r in caplog.records if "failed to decrypt" in r.getMessage()]
    assert len(lines) == 1
    assert "server.encrypt" in lines[0].getMessage()


# ---------------------------------------------------------------- keyring rules (memberlist keyring.go)


def test_keyring_rules_install_use_remove():
    keys = (K1,)
    keys, err = apply_op(keys, "install", K2)
    assert (keys, err) == ((K1, K2), "")
    assert apply_op(keys, "install", K2) == ((K1, K2), "")  # already installed: no change
    assert apply_op(keys, "use", K3) == ((K1, K2), "Requested key is not in the keyring")
    assert apply_op(keys, "remove", K1) == ((K1, K2), "Removing the primary key is not allowed")
    keys, err = apply_op(keys, "use", K2)
    assert (keys, err) == ((K2, K1), "")
    keys, err = apply_op(keys, "remove", K1)
    assert (keys, err) == ((K2,), "")
    assert apply_op(keys, "remove", K3) == ((K2,), "")  # not installed: nothing to do
    assert apply_op(keys, "install", "bad") == ((K2,), "Invalid encryption key: not valid base64")
    assert apply_op((), "list", "") == ((), NOT_ENABLED)
    # The same key written differently (no padding change possible in base64, but the
    # canonical form is what is stored and compared).
    assert normalize_key(K1) == K1


def test_key_query_tallies_like_serf():
    q = KeyQuery("list", ("a", "b", "c"))
    assert not q.record(KeyOpResult(req=1, name="a", keys=(K1, K2)))
    assert not q.record(KeyOpResult(req=1, name="x", keys=(K3,)))  # not asked: ignored
    assert not q.record(KeyOpResult(req=1, name="b", keys=(K1,)))
    value, error = q.response()
    assert error == "2/3 nodes reported success"
    assert value["Keys"] == {K1: 2, K2: 1} and value["NumNodes"] == 3 and value["NumResp"] == 2
    assert q.record(KeyOpResult(req=1, name="c", error="boom"))
    value, error = q.response()
    assert error == "1/3 nodes reported failure" and value["Messages"] == {"c": "boom"}


# ---------------------------------------------------------------- the pool-wide operation (simulator)


def _sim_cluster(n: int):
    from sim.gossip_cluster import POOL, GossipCluster

    c = GossipCluster(seed=7)
    c.add_many(n)
    assert c.run_until(lambda: all(len(c.statuses(i)) == n for i in range(n)), 30.0) is not None
    for i in range(n):
        c.member(i).keyring = (K1,)  # as if started with server.encrypt = K1
    sinks: dict[int, list[tuple[str, ...]]] = {i: [] for i in range(n)}
    for i in range(n):
        c.member(i).keyring_sink = sinks[i].append

    def op(via: int, what: str, key: str = "") -> tuple[object, str]:
        fut = c.sched.future_cls()
        c.sched.nodes[c.addr(via)].actors[POOL].tell(KeyringRequest(op=what, key=key, reply=fut))
        try:
            return fut.get(timeout=30.0), ""
        except Exception as e:
            return None, str(e)
    return c, sinks, op


def test_rotation_install_use_remove_reaches_every_member():
    c, sinks, op = _sim_cluster(3)
    try:
        got, err = op(0, "install", K2)
        assert err == "" and got["NumNodes"] == 3 and got["Messages"] == {}
        got, err = op(1, "use", K2)
        assert err == ""
        got, err = op(2, "remove", K1)
        assert err == ""
        assert all(c.member(i).keyring == (K2,) for i in range(3))
        assert all(sinks[i] == [(K1, K2), (K2, K1), (K2,)] for i in range(3))
        got, err = op(0, "list")
        assert err == "" and got["Keys"] == {K2: 3} and got["PrimaryKeys"] == {K2: 3}
        _, err = op(0, "remove", K2)
        assert "Removing the primary key is not allowed" in err
    finally:
        c.close()


def test_a_member_that_does_not_answer_fails_the_operation_after_the_query_timeout():
    c, _, op = _sim_cluster(3)
    try:
        c.sched.network.partition([c.addr(2)], [c.addr(0), c.addr(1)])
        _, err = op(0, "install", K2)
        assert err.startswith("2/3 nodes reported success")
        assert "s2.global: no response" in err
    finally:
        c.close()


def test_keyring_operations_without_encryption_are_refused():
    from sim.gossip_cluster import POOL, GossipCluster

    c = GossipCluster(seed=3)
    c.add_many(1)
    try:
        c.run(0.5)
        fut = c.sched.future_cls()
        c.sched.nodes[c.addr(0)].actors[POOL].tell(KeyringRequest(op="install", key=K2, reply=fut))
        with pytest.raises(Exception, match="not enabled"):
            fut.get(timeout=5.0)
    finally:
        c.close()


# ---------------------------------------------------------------- the transport edge (real sockets)


def _pair(key_a: list[str] | None, key_b: list[str] | None):
    got: list[Envelope] = []
    a = GossipTransport("127.0.0.1:0", lambda e: None, stream_types=PUSH_PULL_TYPES,
                        crypto=GossipCrypto(key_a) if key_a else None)
    b = GossipTransport("127.0.0.1:0", got.append, stream_types=PUSH_PULL_TYPES,
                        crypto=GossipCrypto(key_b) if key_b else None)
    a.start()
    b.start()
    return a, b, got


def _push_pull(addr: str) -> PushPullReq:
    return PushPullReq(seq=1, join=True, src_name="a.global", src_addr=addr, names=(), addrs=(),
                       incarnations=(), states=(), metas=(), vsns=(), status_ltimes=(), status_names=(),
                       ltime=1)


def _env(t: GossipTransport, payload: object) -> Envelope:
    return Envelope(src=t.address, dst_actor="gossip", payload=payload)


def test_same_key_delivers_packets_and_streams():
    a, b, got = _pair([K1], [K1])
    try:
        a.send(b.address, _env(a, Gossip(src_name="a", gossip=())))
        a.send(b.address, _env(a, _push_pull(a.address)))
        wait_until(lambda: len(got) == 2, what="a packet and a stream frame")
        assert {type(e.payload) for e in got} == {Gossip, PushPullReq}
        assert a.stats["udp_sent"] == 1 and a.stats["tcp_sent"] == 1
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("keys", [([K1], [K2]), (None, [K2]), ([K1], None)])
def test_wrong_or_missing_key_drops_packets_and_streams_and_counts_them(keys):
    a, b, got = _pair(*keys)
    try:
        a.send(b.address, _env(a, Gossip(src_name="a", gossip=())))
        a.send(b.address, _env(a, _push_pull(a.address)))
        counter = "decrypt_failed" if keys[1] else "bad_frames"
        wait_until(lambda: b.stats[f"udp_{counter}"] == 1 and b.stats[f"tcp_{counter}"] == 1,
                   what="both refusals counted")
        assert got == []
    finally:
        a.stop()
        b.stop()


def test_rotation_on_live_transports_never_loses_a_packet():
    a, b, got = _pair([K1], [K1])

    def exchange(n: int) -> None:
        for i in range(n):
            a.send(b.address, Envelope(src=a.address, dst_actor="x", payload=Ping(seq=i, reply_to_node="n",
                                                                                   reply_to_actor="x")))
    try:
        steps = [(a, (K1, K2)), (b, (K1, K2)), (b, (K2, K1)), (a, (K2, K1)), (a, (K2,)), (b, (K2,))]
        for i, (t, keys) in enumerate(steps):
            t.crypto.install(keys)
            exchange(5)
            want = 5 * (i + 1)
            wait_until(lambda: len(got) == want, what=f"packets after step {i}")  # noqa: B023
        assert b.stats["udp_decrypt_failed"] == 0
    finally:
        a.stop()
        b.stop()


def test_encryption_overhead_is_taken_from_the_packet_budget():
    from actors.gossip.config import lan_config

    cfg = lan_config().with_(encrypt_overhead_bytes=OVERHEAD)
    assert cfg.packet_budget_bytes == 1400 - 29
    a, b, got = _pair([K1], [K1])
    try:
        assert a.packet_budget == 1400 - 29
        # The largest Envelope that still goes as a packet, sealed, is at most 1400 bytes on the wire.
        body = b""
        env = None
        from runtime.wire import encode
        while True:
            trial = Envelope(src=a.address, dst_actor="x", payload=Ping(seq=1, reply_to_node="n",
                                                                        reply_to_actor="x", body=body + b"z"))
            if len(encode(trial)) > a.packet_budget:
                break
            body += b"z"
            env = trial
        assert env is not None
        a.send(b.address, env)
        wait_until(lambda: len(got) == 1, what="the largest packet")
        assert a.stats["udp_sent"] == 1 and a.stats["udp_dropped_oversize"] == 0
        a.send(b.address, trial)  # one byte more: over TCP instead
        wait_until(lambda: len(got) == 2, what="the stream frame")
        assert a.stats["tcp_sent"] == 1
    finally:
        a.stop()
        b.stop()


def test_keyring_endpoints_on_an_agent_without_a_server_answer_invalid_method():
    """Nomad's KeyringOperationRequest on a client agent: 501 'Invalid method' (its ErrInvalidMethod), before
    the operation, the method or the body is looked at."""
    from types import SimpleNamespace

    from actors.http_api import CodedError, Request
    from actors.http_keyring import keyring_operation

    api = SimpleNamespace(env=SimpleNamespace(lookup=lambda name: None))
    for method, path in (("GET", "/v1/agent/keyring/list"), ("PUT", "/v1/agent/keyring/install"),
                         ("GET", "/v1/agent/keyring/install"), ("GET", "/v1/agent/keyring/bogus")):
        with pytest.raises(CodedError) as e:
            keyring_operation(Request(method=method, path=path, query={}, url=path, environ={}), api)
        assert (e.value.code, e.value.message) == (501, "Invalid method"), path
