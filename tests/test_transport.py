"""Properties of the production network edges (runtime/transport.py).

Real sockets on 127.0.0.1, port 0 only; conftest.py has already called
gevent.monkey.patch_all().  Every wait is a poll against a
deadline (``wait_until``), never a sleep to "wait and see".
"""

import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator

import gevent
import msgpack
import pytest

from runtime.messages import Envelope, Ping
from runtime.transport import TcpTransport, TransportConfig, UdpTransport
from runtime.wire import encode, encode_frame
from tests.ports import free_port

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1:0"
MakeTcp = Callable[..., TcpTransport]
MakeUdp = Callable[..., UdpTransport]


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.005)


def ping(src: str, seq: int, body: bytes = b"") -> Envelope:
    payload = Ping(seq=seq, reply_to_node=src, reply_to_actor="echo", body=body)
    return Envelope(src=src, dst_actor="echo", payload=payload)


def seqs(inbox: list[Envelope], src: str | None = None) -> list[int]:
    return [e.payload.seq for e in inbox if src is None or e.src == src]  # type: ignore[attr-defined]



@pytest.fixture
def make_tcp() -> Iterator[Callable[..., TcpTransport]]:
    made: list[TcpTransport] = []

    def make(deliver: Callable[[Envelope], None], bind: str = LOCAL, **config: object) -> TcpTransport:
        t = TcpTransport(bind, deliver, config=TransportConfig(**config))  # type: ignore[arg-type]
        t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()


@pytest.fixture
def make_udp() -> Iterator[Callable[..., UdpTransport]]:
    made: list[UdpTransport] = []

    def make(deliver: Callable[[Envelope], None], **config: object) -> UdpTransport:
        t = UdpTransport(LOCAL, deliver, config=TransportConfig(**config))  # type: ignore[arg-type]
        t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()


# ------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_limit": 0},
        {"max_frame_bytes": -1},
        {"connect_timeout_s": 0},
        {"backoff_min_s": 2.0, "backoff_max_s": 1.0},
        {"udp_max_packet_bytes": 70000},
        {"queue_limit": 1.5},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="TransportConfig"):
        TransportConfig(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------- TCP


def test_address_reports_actual_port_and_stop_is_idempotent(make_tcp: MakeTcp) -> None:
    t = make_tcp(lambda env: None)
    host, port = t.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    t.stop()
    t.stop()
    assert t.send(t.address, ping("x", 0)) is False


def test_round_trip_preserves_order_per_sender(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    a1, a2 = make_tcp(inbox.append), make_tcp(inbox.append)
    n = 2000
    for i in range(n):
        assert a1.send(b.address, ping(a1.address, i))
        assert a2.send(b.address, ping(a2.address, i))
        if i % 100 == 0:
            gevent.sleep(0)  # let senders write several batches, not one
    wait_until(lambda: len(inbox) == 2 * n, what="all pings")
    assert seqs(inbox, a1.address) == list(range(n))
    assert seqs(inbox, a2.address) == list(range(n))
    for a in (a1, a2):
        assert a.stats["sent"] == n and a.stats["connects"] == 1
    assert b.stats["received"] == 2 * n and b.stats["bad_frames"] == 0


def test_send_to_unreachable_peer_is_prompt_counted_and_reconnects(make_tcp: MakeTcp) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    a = make_tcp(lambda env: None, queue_limit=256, backoff_min_s=0.01, backoff_max_s=0.1)

    n = 10_000
    accepted = sum(a.send(target, ping(a.address, i)) for i in range(n))
    # Prompt: no send waited on the connect -- none yielded, so the sender has not even tried it yet
    # (a wall-clock bound here failed on a loaded machine; what matters is that nothing blocks).
    assert a.stats["dropped_unreachable"] == 0 and a.stats["connects"] == 0
    assert accepted == 256 and a.stats["dropped_queue_full"] == n - 256

    # The queued frames are lost with the failed connect, and counted.
    wait_until(lambda: a.stats["dropped_unreachable"] >= 256, what="connect failure")
    assert a.stats["sent"] == 0 and a.stats["connects"] == 0

    inbox: list[Envelope] = []
    b = make_tcp(inbox.append, bind=target)
    assert b.address == target
    seq = n

    def keep_sending() -> bool:
        nonlocal seq
        a.send(target, ping(a.address, seq))
        seq += 1
        return bool(inbox)

    wait_until(keep_sending, what="delivery after the peer started listening")
    assert a.stats["connects"] == 1 and a.stats["reconnects"] == 1
    first = seqs(inbox)[0]
    wait_until(lambda: seqs(inbox)[-1] == seq - 1, what="the rest of the burst")
    assert seqs(inbox) == list(range(first, seq))  # after reconnect: nothing lost, in order


def test_queue_full_drops_and_counts_without_blocking(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    a = make_tcp(lambda env: None, queue_limit=100)
    results = [a.send(b.address, ping(a.address, i)) for i in range(150)]
    assert a.stats["connects"] == 0 and not inbox  # no send yielded: the sender has not run yet
    assert results == [True] * 100 + [False] * 50
    assert a.stats["dropped_queue_full"] == 50
    wait_until(lambda: len(inbox) == 100, what="queued pings")
    assert seqs(inbox) == list(range(100))
    assert a.stats["sent"] == 100


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


BAD_INPUTS = {
    "msgpack_garbage": (_frame(b"\xc1\xc1\xc1\xc1"), "BadField"),
    "http_request": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "FrameTooLarge"),
    "oversized_length_prefix": (struct.pack(">I", 0xFFFFFFFF) + b"xx", "FrameTooLarge"),
    "unknown_tag": (_frame(msgpack.packb([9999, 1, 2])), "UnknownTag"),
    "bad_field_types": (_frame(msgpack.packb([3, 1, 2, 3])), "BadField"),
    "not_an_envelope": (encode_frame(Ping(seq=1, reply_to_node="n", reply_to_actor="a")), "BadField"),
    "truncated_frame": (struct.pack(">I", 100) + b"0123456789", "TruncatedFrame"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_counted_closes_that_connection_and_others_keep_working(
    make_tcp: MakeTcp, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, error = BAD_INPUTS[case]
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    a = make_tcp(lambda env: None)
    host, port = b.address.rsplit(":", 1)

    a.send(b.address, ping(a.address, 0))  # a well-behaved connection, open before the bad one
    wait_until(lambda: len(inbox) == 1, what="first good ping")

    caplog.set_level(logging.WARNING, logger="runtime.transport")
    raw = socket.create_connection((host, int(port)), timeout=5)
    raw_peer = "%s:%d" % raw.getsockname()
    raw.sendall(data)
    if case == "truncated_frame":
        raw.shutdown(socket.SHUT_WR)  # the peer hangs up mid-frame
    try:
        closed = raw.recv(1) == b""  # the server closes its end
    except ConnectionResetError:
        closed = True
    raw.close()
    assert closed
    wait_until(lambda: b.stats["bad_frames"] == 1, what="bad frame counted")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and raw_peer in warnings[0] and error in warnings[0]

    for i in range(1, 11):
        a.send(b.address, ping(a.address, i))
    wait_until(lambda: len(inbox) == 11, what="good pings after the bad input")
    assert seqs(inbox) == list(range(11))
    assert a.stats["connects"] == 1 and b.stats["bad_frames"] == 1


def test_raising_deliver_does_not_stop_later_deliveries(make_tcp: MakeTcp) -> None:
    got: list[int] = []

    def deliver(env: Envelope) -> None:
        seq = env.payload.seq  # type: ignore[attr-defined]
        if seq % 2 == 0:
            raise RuntimeError(f"boom {seq}")
        got.append(seq)

    b = make_tcp(deliver)
    a = make_tcp(lambda env: None)
    for i in range(20):
        a.send(b.address, ping(a.address, i))
    wait_until(lambda: len(got) == 10, what="odd pings")
    assert got == list(range(1, 20, 2))
    assert b.stats["deliver_errors"] == 10 and b.stats["received"] == 20
    assert b.stats["bad_frames"] == 0 and a.stats["connects"] == 1


def test_peer_restart_is_noticed_before_writing_so_nothing_is_lost(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    addr = b.address
    a = make_tcp(lambda env: None)
    a.send(addr, ping(a.address, 0))
    wait_until(lambda: len(inbox) == 1, what="first ping")
    b.stop()  # closes a's idle connection from the far end
    make_tcp(inbox.append, bind=addr)
    for i in range(1, 11):
        assert a.send(addr, ping(a.address, i))
    wait_until(lambda: len(inbox) == 11, what="pings to the restarted peer")
    assert seqs(inbox) == list(range(11))
    assert a.stats["connects"] == 2 and a.stats["reconnects"] == 1
    assert a.stats["dropped_unreachable"] == 0


def test_idle_link_writes_at_once_and_a_partial_write_keeps_the_stream_whole(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    a = make_tcp(lambda env: None)
    a.send(b.address, ping(a.address, 0))  # connects through the sender greenlet
    wait_until(lambda: len(inbox) == 1, what="first ping")
    link = a._links[b.address]
    assert a.send(b.address, ping(a.address, 1))
    # Written by send() itself: nothing queued, counted, and no greenlet switch was needed.
    assert link.queue.empty() and a.stats["sent"] == 2
    # A write the socket takes only in part (a full buffer): the rest and the
    # frames after it go through the queue, in order.  The short write is
    # forced only while send() runs; nothing yields in between.
    big = bytes(range(256)) * 4096
    real_write = os.write
    os.write = lambda fd, data: real_write(fd, bytes(data)[:1000])  # type: ignore[assignment]
    try:
        assert a.send(b.address, ping(a.address, 2, body=big))
        assert not link.queue.empty()
        for i in range(3, 8):
            assert a.send(b.address, ping(a.address, i))
    finally:
        os.write = real_write  # type: ignore[assignment]
    wait_until(lambda: len(inbox) == 8, what="the big frame and the pings after it")
    assert seqs(inbox) == list(range(8))
    assert inbox[2].payload.body == big  # type: ignore[attr-defined]
    assert a.stats["sent"] == 8 and b.stats["bad_frames"] == 0


# ------------------------------------------------------------------- UDP


def test_udp_round_trip(make_udp: MakeUdp) -> None:
    inbox: list[Envelope] = []
    b = make_udp(inbox.append)
    a = make_udp(lambda env: None)
    for i in range(50):
        assert a.send(b.address, ping(a.address, i))
    wait_until(lambda: len(inbox) == 50, what="udp pings")
    assert sorted(seqs(inbox)) == list(range(50))
    assert a.stats["sent"] == 50 and b.stats["received"] == 50


def test_udp_refuses_oversize_packet(make_udp: MakeUdp) -> None:
    inbox: list[Envelope] = []
    b = make_udp(inbox.append)
    a = make_udp(lambda env: None)
    assert TransportConfig().udp_max_packet_bytes == 1400
    assert a.send(b.address, ping(a.address, 0, body=b"x" * 1400)) is False
    assert a.stats["dropped_oversize"] == 1 and a.stats["sent"] == 0
    assert a.send(b.address, ping(a.address, 1, body=b"x" * 1000)) is True
    wait_until(lambda: len(inbox) == 1, what="the packet that fits")
    assert seqs(inbox) == [1]


def test_udp_garbage_packet_is_counted_and_ignored(make_udp: MakeUdp) -> None:
    inbox: list[Envelope] = []
    b = make_udp(inbox.append)
    a = make_udp(lambda env: None)
    host, port = b.address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        not_envelope = encode(Ping(seq=1, reply_to_node="n", reply_to_actor="a"))
        for bad in (b"\xc1garbage", msgpack.packb([9999]), not_envelope):
            raw.sendto(bad, (host, int(port)))
    wait_until(lambda: b.stats["bad_frames"] == 3, what="bad packets counted")
    assert a.send(b.address, ping(a.address, 7))
    wait_until(lambda: len(inbox) == 1, what="good packet after garbage")
    assert seqs(inbox) == [7] and b.stats["received"] == 1


@pytest.mark.timeout(30)
def test_gossip_transport_sends_small_messages_as_packets_and_large_ones_over_tcp():
    from runtime.transport import GossipTransport

    got: list = []
    a = GossipTransport("127.0.0.1:0", got.append)
    b = GossipTransport("127.0.0.1:0", lambda e: None)
    a.start()
    b.start()
    try:
        small = Envelope(src=b.address, dst_actor="g", payload=Ping(seq=1, reply_to_node="x", reply_to_actor="y"))
        large = Envelope(src=b.address, dst_actor="g", payload=Ping(seq=2, reply_to_node="x", reply_to_actor="y",
                                                                    body=b"z" * 5000))
        assert b.send(a.address, small) and b.send(a.address, large)
        with gevent.Timeout(10):
            while len(got) < 2:
                gevent.sleep(0.005)
        assert sorted(e.payload.seq for e in got) == [1, 2]
        assert b.stats["udp_sent"] == 1 and b.stats["tcp_sent"] >= 1
    finally:
        a.stop()
        b.stop()


def test_one_payload_to_several_peers_is_encoded_once(make_tcp: MakeTcp, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox_b: list[Envelope] = []
    inbox_c: list[Envelope] = []
    b, c = make_tcp(inbox_b.append), make_tcp(inbox_c.append)
    a = make_tcp(lambda env: None)
    frames: list[Envelope] = []
    real = a._frame

    def counting(env: Envelope) -> bytes:
        frames.append(env)
        return real(env)

    monkeypatch.setattr(a, "_frame", counting)
    env = ping(a.address, 7, body=b"x" * 100)
    for i in range(3):
        assert a.send(b.address, Envelope(src=env.src, dst_actor="echo", payload=env.payload))
        assert a.send(c.address, Envelope(src=env.src, dst_actor="echo", payload=env.payload))
    assert a.send(b.address, Envelope(src=env.src, dst_actor="other", payload=env.payload))  # another actor
    assert a.send(b.address, ping(a.address, 7, body=b"x" * 100))  # equal, but another object
    assert len(frames) == 3
    wait_until(lambda: len(inbox_b) == 5 and len(inbox_c) == 3, what="every copy")
    assert [e.dst_actor for e in inbox_b] == ["echo"] * 3 + ["other", "echo"]
    assert all(e.payload == env.payload for e in inbox_b + inbox_c)


# ------------------------------------------------------------------- lost peers (PeerLost)

def test_a_peer_that_closes_our_idle_link_is_reported_at_once_without_a_send(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    addr = b.address
    a = make_tcp(lambda env: None)
    lost: list[tuple[str, str]] = []
    a.on_peer_lost = lambda node, why, unsent: lost.append((node, why, unsent))
    a.send(addr, ping(a.address, 0))
    wait_until(lambda: len(inbox) == 1, what="first ping")
    assert lost == []
    b.stop()  # the peer's process ends: its kernel closes our connection
    wait_until(lambda: bool(lost), what="the closed connection reported")
    assert lost == [(addr, "connection closed by the peer", False)] and a.stats["peer_lost"] == 1
    make_tcp(inbox.append, bind=addr)  # the peer restarts: the next send reconnects, nothing lost
    assert a.send(addr, ping(a.address, 1))
    wait_until(lambda: len(inbox) == 2, what="ping to the restarted peer")
    assert a.stats["reconnects"] == 1 and len(lost) == 1


def test_a_refused_connect_and_sends_while_backing_off_are_reported(make_tcp: MakeTcp) -> None:
    target = f"127.0.0.1:{free_port()}"
    a = make_tcp(lambda env: None, backoff_min_s=30.0, backoff_max_s=30.0)
    lost: list[tuple[str, str]] = []
    a.on_peer_lost = lambda node, why, unsent: lost.append((node, why, unsent))
    assert a.send(target, ping(a.address, 0))
    wait_until(lambda: bool(lost), what="the refused connect reported")
    assert lost[0][0] == target and lost[0][1].startswith("connect failed: ") and "refused" in lost[0][1]
    assert lost[0][2]  # nothing was written: whoever sent may send again
    assert not a.send(target, ping(a.address, 1))  # dropped while backing off: the sender is told too
    assert lost[-1] == (target, "peer unreachable (reconnecting)", True)


def test_closing_our_own_links_reports_nothing(make_tcp: MakeTcp) -> None:
    b = make_tcp(lambda env: None)
    a = make_tcp(lambda env: None)
    lost: list[tuple[str, str]] = []
    a.on_peer_lost = lambda node, why, unsent: lost.append((node, why, unsent))
    a.send(b.address, ping(a.address, 0))
    wait_until(lambda: a.stats["connects"] == 1, what="the connect")
    a.stop()
    gevent.sleep(0)  # let a close watcher run, if one were to report
    assert lost == []


def test_an_idle_link_outliving_its_write_timeout_is_not_reported_lost(make_tcp: MakeTcp) -> None:
    inbox: list[Envelope] = []
    b = make_tcp(inbox.append)
    a = make_tcp(lambda env: None, write_timeout_s=0.05)
    lost: list[tuple[str, str, bool]] = []
    a.on_peer_lost = lambda node, why, unsent: lost.append((node, why, unsent))
    a.send(b.address, ping(a.address, 0))
    wait_until(lambda: len(inbox) == 1, what="first ping")
    deadline = time.monotonic() + 0.3  # six write timeouts of idleness
    wait_until(lambda: time.monotonic() >= deadline, what="idle time")
    assert a.send(b.address, ping(a.address, 1))
    wait_until(lambda: len(inbox) == 2, what="second ping")
    assert lost == [] and a.stats["connects"] == 1 and a.stats["reconnects"] == 0
