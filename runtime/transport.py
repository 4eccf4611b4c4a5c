"""Production network edges: TCP (RPC, Raft) and UDP (gossip probes) under gevent.

The process calls ``gevent.monkey.patch_all()`` first; every blocking call here
only blocks the calling greenlet.  Node ids are address strings "host:port".

Everything read from the network is untrusted (DESIGN.md §4): a stream is cut
into length-bounded frames by :class:`~runtime.wire.FrameDecoder`, every
decoded message must be an :class:`Envelope`, and any :class:`WireError` is
counted, logged once and answered by closing that one connection (TCP) or
dropping that one packet (UDP).  Nothing a peer sends can kill the transport.

Sending never blocks the caller.  Each TCP peer gets a :class:`PeerLink`: a
bounded queue of encoded frames drained by one sender greenlet, which owns the
connection.  Loss is normal and counted, never hidden: the protocols above
(Raft, gossip, RPC retries) already tolerate it, and a sender that blocked on a
slow peer would stall the actor that called it.

Backoff policy (decided here): after a failed connect or a broken write the
link enters backoff, the frames still queued for it are dropped, and until the
backoff expires ``send`` drops new frames for that peer at once (counted as
``dropped_unreachable``) rather than queueing them.  Queueing during an outage
would only deliver a burst of stale heartbeats and appends when the peer comes
back, and would hold up to ``queue_limit`` frames of memory per dead peer.
The first send after the backoff expires triggers the next connect attempt.

With ``tls.rpc`` (:class:`~runtime.tls.TlsEdge`) every TCP connection is
mutual TLS: an inbound one completes its handshake within the handshake
timeout before its first frame is read, an outbound one within the connect
timeout before its first write.  A refused handshake is counted
(``tls_refused``) and logged (rate-limited) like any other refusal.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.pool
import gevent.queue
import gevent.select
import gevent.socket
from gevent.monkey import get_original
from gevent.server import DatagramServer, StreamServer

from runtime.gossip_crypto import OVERHEAD as ENCRYPT_OVERHEAD
from runtime.gossip_crypto import GossipCrypto
from runtime.messages import Envelope
from runtime.tls import TlsEdge, TlsRefused
from runtime.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    FRAME_HEADER,
    BadField,
    FrameDecoder,
    FrameTooLarge,
    TruncatedFrame,
    WireError,
    decode,
    encode,
    encode_frame,
)

__all__ = [
    "PeerLink",
    "TcpTransport",
    "TransportConfig",
    "UdpTransport",
    "format_address",
    "parse_address",
]

log = logging.getLogger(__name__)

Deliver = Callable[[Envelope], None]

# Bytes asked of recv() per call: big enough to take a burst in one syscall.
_READ_CHUNK = 64 * 1024
# A sender stops draining its queue into one sendall() past this many bytes,
# so one batch never builds an unbounded join of many large frames.
_MAX_BATCH_BYTES = 1024 * 1024
# Largest payload a UDP datagram can carry over IPv4.
_UDP_MAX_PAYLOAD = 65507
# The OS's select, which never yields to the hub: the direct-write path of
# PeerLink.send_now must not switch greenlets (it runs inside an actor's turn).
_os_select = get_original("select", "select")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Limits and timings of the network edges (one instance per transport)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES  # bounds what a hostile length prefix can make us buffer
    queue_limit: int = 4096  # frames queued per peer; bounds memory when a peer is slow
    connect_timeout_s: float = 2.0  # a LAN connect slower than this means the peer is effectively down
    backoff_min_s: float = 0.05  # first retry comes quickly: most breaks are a peer restarting
    backoff_max_s: float = 5.0  # cap so a healed peer is reached again within seconds
    write_timeout_s: float = 10.0  # a peer not draining its socket this long is treated as broken
    udp_max_packet_bytes: int = 1400  # memberlist's UDPBufferSize: fits a 1500-byte MTU without fragmenting
    # Nomad limits.rpc_max_conns_per_client (100): inbound connections one IP
    # may hold open; beyond it a connection is closed at once (logged,
    # counted).  Bounds the greenlets and buffers one host can make us keep.
    # 0: no limit (Nomad's meaning of 0).
    max_conns_per_client: int = 0
    # Nomad limits.rpc_handshake_timeout (5s): an inbound connection must
    # complete its first frame within this, or it is dropped -- a slow-loris
    # client that opens connections and dribbles bytes cannot pin them.  0: no deadline.
    handshake_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "queue_limit",
            "connect_timeout_s",
            "backoff_min_s",
            "backoff_max_s",
            "write_timeout_s",
            "udp_max_packet_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"TransportConfig.{name} must be a positive number, got {value!r}")
        if not self.handshake_timeout_s >= 0:
            raise ValueError(f"TransportConfig.handshake_timeout_s must be >= 0 (0: none), "
                             f"got {self.handshake_timeout_s!r}")
        if isinstance(self.max_conns_per_client, bool) or not isinstance(self.max_conns_per_client, int) \
                or self.max_conns_per_client < 0:
            raise ValueError("TransportConfig.max_conns_per_client must be an int >= 0 (0: no limit), "
                             f"got {self.max_conns_per_client!r}")
        for name in ("max_frame_bytes", "queue_limit", "udp_max_packet_bytes"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"TransportConfig.{name} must be an int, got {getattr(self, name)!r}")
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError(
                f"TransportConfig.backoff_min_s ({self.backoff_min_s}) must not exceed "
                f"backoff_max_s ({self.backoff_max_s})"
            )
        if self.udp_max_packet_bytes > _UDP_MAX_PAYLOAD:
            raise ValueError(
                f"TransportConfig.udp_max_packet_bytes ({self.udp_max_packet_bytes}) exceeds "
                f"the UDP payload limit {_UDP_MAX_PAYLOAD}"
            )


def parse_address(node: str) -> tuple[str, int]:
    """Split a node id "host:port" (or "[v6]:port") into a socket address."""
    host, sep, port = node.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bad node address {node!r}: expected host:port")
    return host.strip("[]"), int(port)


def format_address(host: str, port: int) -> str:
    """The node id of a socket address (brackets IPv6 so parse_address round-trips)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _new_stats(*names: str) -> dict[str, int]:
    return dict.fromkeys(names, 0)


# ------------------------------------------------------------------- TCP


class PeerLink:
    """One outbound TCP connection to one peer.

    A bounded queue of encoded frames and one sender greenlet that connects,
    writes batches, and backs off after failures.  Only the sender greenlet
    touches the socket, so frames to one peer are written in ``send`` order.
    """

    def __init__(self, transport: TcpTransport, node: str, addr: tuple[str, int]) -> None:
        self.node = node
        self._addr = addr
        self._t = transport
        self._cfg = transport.config
        self.queue: gevent.queue.Queue[bytes] = gevent.queue.Queue(maxsize=self._cfg.queue_limit)
        self._sock: gevent.socket.socket | None = None
        self._failures = 0  # consecutive failures; drives the backoff delay
        self._tried = False  # any connect attempted before (for the reconnects counter)
        self.backoff_until = 0.0
        # True only while the sender greenlet waits for a frame with nothing
        # queued and nothing half-written: then send_now may use the socket.
        self._idle = False
        # Reads the connected socket, on which the peer never writes, to learn at once that the
        # peer closed or reset it (its process died or restarted): see _watch_close.
        self._watcher: gevent.Greenlet | None = None
        self._connect_error = ""  # why the last connect failed (for the log and PeerLost)
        self._greenlet = gevent.spawn(self._run)

    def in_backoff(self) -> bool:
        return time.monotonic() < self.backoff_until

    def stop(self) -> None:
        self._greenlet.kill(block=True, timeout=1)
        self._close()
        if self._watcher is not None:
            self._watcher.kill(block=False)

    def send_now(self, frame: bytes) -> bool:
        """Write *frame* on the socket from the caller, without a greenlet switch.

        Only when the link is connected, idle (sender waiting, queue empty)
        and the peer has not closed the connection; the write never blocks
        (a full socket buffer writes part or nothing).  False: nothing was
        written and the caller queues the frame as usual.  A part written:
        the rest goes first in the queue and the sender finishes it, so the
        stream stays whole and in order.  Saves the sender greenlet's wake-up
        and switch per message (measured ~30-150 us on a busy hub, on the
        Raft commit path twice).
        """
        sock = self._sock
        if sock is None or not self._idle or not self.queue.empty():
            return False
        try:
            fd = sock.fileno()
            if _os_select([fd], [], [], 0)[0]:
                return False  # peer closed (or wrote): the sender reconnects, as in _run
            n = os.write(fd, frame)
        except OSError:  # EAGAIN, EPIPE, ECONNRESET...: the sender deals with it
            return False
        if n < len(frame):
            self.queue.put_nowait(frame[n:])
            self._t._stats["sent"] -= 1  # counted once, when the sender writes the rest
        return True

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if self._sock is not None and self._peer_closed(self._sock):
                self._close()  # peer restarted while we were idle: reconnect, don't write into it
                self._t._lost(self.node, "connection closed by the peer")
            sock = self._sock or self._connect()
            if sock is None:
                self._fail(batch, f"connect failed: {self._connect_error}", unsent=True)
                continue
            try:
                sock.sendall(b"".join(batch))
            except OSError as exc:
                self._close()
                self._fail(batch, f"write failed: {exc}", unsent=False)
                continue
            self._failures = 0
            self._t._stats["sent"] += len(batch)

    def _next_batch(self) -> list[bytes]:
        """Wait for one frame, then take whatever else is already queued (one sendall)."""
        self._idle = True
        try:
            batch = [self.queue.get()]
        finally:
            self._idle = False
        size = len(batch[0])
        while size < _MAX_BATCH_BYTES and not self.queue.empty():
            frame = self.queue.get_nowait()
            batch.append(frame)
            size += len(frame)
        return batch

    def _connect(self) -> gevent.socket.socket | None:
        tried, self._tried = self._tried, True
        try:
            sock = gevent.socket.create_connection(self._addr, timeout=self._cfg.connect_timeout_s)
        except OSError as exc:
            log.debug("connect to %s failed: %s", self.node, exc)
            self._connect_error = exc.strerror or str(exc) or type(exc).__name__
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._t.tls is not None:  # tls.rpc: mutual TLS, handshake bounded like the connect
            try:
                sock = self._t.tls.connect(sock, self._cfg.connect_timeout_s)
            except TlsRefused as exc:
                self._t._stats["tls_refused"] += 1
                self._t._tls_log.warning("connection to %s refused: %s", self.node, exc)
                self._connect_error = f"TLS handshake refused: {exc}"
                return None
        sock.settimeout(self._cfg.write_timeout_s)
        self._sock = sock
        self._t._stats["connects"] += 1
        self._t._stats["reconnects"] += int(tried)
        watch = self._watch_close if self._t.tls is None else self._watch_tls_close
        self._watcher = gevent.spawn(watch, sock)
        return sock

    def _watch_close(self, sock: gevent.socket.socket) -> None:
        """Wait for the peer to close *sock* (EOF or a reset), then drop it and report the loss.

        The peer never writes on our outbound connection, so this read
        returns only when the connection ends: the peer's process exited or
        restarted, and the kernel closed its end.  Frames written before
        then may or may not have been read.  A socket we closed ourselves
        (``_close``) ends this read silently.
        """
        while True:
            try:
                data = sock.recv(_READ_CHUNK)
            except TimeoutError:  # the socket's write timeout bounds this read too: idle is not closed
                if self._sock is not sock:
                    return
                continue
            except OSError as exc:
                why = f"connection lost: {exc}"
            else:
                why = "connection closed by the peer" if not data else "peer wrote on our link"
            break
        if self._sock is not sock:
            return  # closed by us, or already replaced
        self._close()
        self._t._lost(self.node, why)

    def _watch_tls_close(self, sock: gevent.socket.socket) -> None:
        """:meth:`_watch_close` for a TLS link, without a second reader on the SSL object: the
        servers send no session tickets (runtime.tls), so the first byte the peer ever sends on our
        outbound connection is its close (a close_notify alert or the FIN): wait for the raw
        descriptor to be readable.  ``_close`` kills this greenlet when we close the link."""
        try:
            gevent.socket.wait_read(sock.fileno())
        except (OSError, ValueError):
            pass  # the descriptor is gone: closed by us
        if self._sock is not sock:
            return
        self._close()
        self._t._lost(self.node, "connection closed by the peer")

    @staticmethod
    def _peer_closed(sock: gevent.socket.socket) -> bool:
        """True if the peer closed (or, against protocol, wrote to) our outbound socket."""
        readable, _, _ = gevent.select.select([sock], [], [], 0)
        return bool(readable)

    def _fail(self, batch: list[bytes], why: str, *, unsent: bool) -> None:
        """Drop the batch and everything queued, then back off with jitter.

        Frames of a failed write may have partly reached the peer; they are
        counted as dropped because we cannot know.
        """
        lost = len(batch)
        while not self.queue.empty():
            self.queue.get_nowait()
            lost += 1
        self._t._stats["dropped_unreachable"] += lost
        self._failures += 1
        base = min(self._cfg.backoff_max_s, self._cfg.backoff_min_s * 2 ** min(self._failures - 1, 32))
        delay = base * (0.5 + 0.5 * self._t._rng.random())  # "equal jitter": spread, never zero
        self.backoff_until = time.monotonic() + delay
        log.info("peer %s: %s; dropped %d frames, backing off %.3fs", self.node, why, lost, delay)
        self._t._lost(self.node, why, unsent=unsent)
        gevent.sleep(delay)

    def _close(self) -> None:
        sock, self._sock = self._sock, None  # first: the close watcher must see it was us
        watcher = self._watcher
        if watcher is not None and watcher is not gevent.getcurrent():
            watcher.kill(block=False)  # a TLS watcher waits on the raw descriptor, which close() does not end
        if sock is not None:
            sock.close()


# Largest frame a TLS link writes from send() itself: well under the first
# chunk gevent's sendall hands OpenSSL (>= 1 MiB), so a frame whose write
# OpenSSL left pending is always retried whole at the start of that chunk.
_TLS_DIRECT_MAX_BYTES = 64 * 1024


class TlsPeerLink(PeerLink):
    """A :class:`PeerLink` whose socket is TLS (``tls.rpc``).

    ``send_now`` goes through the TLS record layer (the ``_ssl`` object's
    non-blocking write) instead of the file descriptor.  OpenSSL's rule for
    a write it could not finish (``SSL_ERROR_WANT_WRITE``): it must be
    retried with the same bytes.  So the whole frame goes first in the
    queue, and the sender's next write, which starts with it, completes it.
    """

    def send_now(self, frame: bytes) -> bool:
        sock = self._sock
        if sock is None or not self._idle or not self.queue.empty() or len(frame) > _TLS_DIRECT_MAX_BYTES:
            return False
        sslobj = getattr(sock, "_sslobj", None)
        if sslobj is None:
            return False
        try:
            if _os_select([sock.fileno()], [], [], 0)[0]:
                return False  # peer closed (or wrote): the sender reconnects, as in _run
            sslobj.write(frame)  # never blocks: gevent keeps the fd non-blocking
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            self.queue.put_nowait(frame)  # retried whole by the sender (OpenSSL's retry rule)
            self._t._stats["sent"] -= 1  # counted once, when the sender writes it
            return True
        except (OSError, ValueError):  # SSLError, EPIPE, closed: the sender deals with it
            return False
        return True


class TcpTransport:
    """Length-framed msgpack Envelopes over TCP, one outbound connection per peer.

    Inbound connections are read by one greenlet each, which calls *deliver*
    directly: it should be quick and non-blocking (an actor ``tell``), since a
    slow callback stalls that connection and, through TCP, its sender.
    """

    def __init__(self, bind: str, deliver: Deliver, *, config: TransportConfig | None = None,
                 crypto: GossipCrypto | None = None, tls: TlsEdge | None = None) -> None:
        self.config = config or TransportConfig()
        self._bind = parse_address(bind)
        self._deliver = deliver
        # Gossip streams: every frame's body is sealed with the keyring (runtime.gossip_crypto).
        self.crypto = crypto
        # RPC with tls.rpc: every connection, both ways, is mutual TLS (runtime.tls); None: plain TCP.
        self.tls = tls if tls is not None and tls.rpc else None
        self._tls_log = _RateLimitedLog(log, _REFUSAL_LOG_INTERVAL_S)
        self._rng = random.Random(os.urandom(16))  # edge code: real entropy for backoff jitter
        self._conns_per_ip: dict[str, int] = {}
        self._refusal_log = _RateLimitedLog(log, _REFUSAL_LOG_INTERVAL_S)
        self._bad_log = _RateLimitedLog(log, _REFUSAL_LOG_INTERVAL_S)  # a flood of garbage: few lines
        self._links: dict[str, PeerLink] = {}
        # (payload, src, dst_actor, frame) of the last frame built: messages are
        # immutable, so the same payload object to the next peer (Raft's
        # AppendEntries to every follower) reuses its encoding.
        self._last_frame: tuple[Any, str, str, bytes] | None = None
        self._handlers = gevent.pool.Pool()
        self._server: StreamServer | None = None
        self._stopped = False
        # Called (node, reason) when the connection to a peer is lost or refused; the agent tells the
        # actors watching that peer (ProdNode.peer_lost).  None: nobody is told.
        self.on_peer_lost: Callable[[str, str, bool], None] | None = None
        self._stats = _new_stats(
            "sent",
            "received",
            "dropped_queue_full",
            "dropped_unreachable",
            "dropped_oversize",
            "bad_frames",
            "connects",
            "reconnects",
            "deliver_errors",
            "decrypt_failed",
            "refused_conn_limit",
            "handshake_timeouts",
            "tls_refused",
            "peer_lost",
        )

    def start(self) -> None:
        """Bind and start accepting; returns once listening."""
        if self._server is not None or self._stopped:
            raise RuntimeError("TcpTransport.start() called twice or after stop()")
        self._server = StreamServer(self._bind, self._serve, spawn=self._handlers)
        self._server.start()

    @property
    def address(self) -> str:
        """The actual "host:port" being listened on (the real port when bound to 0)."""
        if self._server is None:
            raise RuntimeError("TcpTransport not started")
        host, port = self._server.address[:2]
        return format_address(host, port)

    @property
    def stats(self) -> dict[str, int]:
        """Counters (a copy).  ``connects`` counts established outbound
        connections; ``reconnects`` those that followed an earlier attempt to
        the same peer.  ``dropped_oversize`` counts Envelopes whose frame would
        exceed ``max_frame_bytes``."""
        return dict(self._stats)

    def send(self, node: str, env: Envelope) -> bool:
        """Queue *env* for *node*; never blocks.  False (and counted) when dropped.

        Encoding happens here so a bug (an unregistered payload) raises in the
        caller rather than in a sender greenlet; checks that drop come first
        so a dead peer costs almost nothing per send.
        """
        link = self._links.get(node)
        if link is None:
            if self._stopped:
                return self._drop("dropped_unreachable")
            try:
                link = self._links[node] = (PeerLink if self.tls is None else TlsPeerLink)(
                    self, node, parse_address(node))
            except ValueError as exc:
                log.warning("not sending to %r: %s", node, exc)
                return self._drop("dropped_unreachable")
        if self._stopped:
            return self._drop("dropped_unreachable")
        if link.in_backoff():
            self._lost(node, "peer unreachable (reconnecting)", unsent=True)
            return self._drop("dropped_unreachable")
        if link.queue.full():
            return self._drop("dropped_queue_full")
        last = self._last_frame
        if last is not None and last[0] is env.payload and last[1] == env.src and last[2] == env.dst_actor:
            frame = last[3]  # a broadcast: the same message to the next peer
        else:
            try:
                frame = self._frame(env)
            except FrameTooLarge as exc:
                log.warning("not sending to %s: %s", node, exc)
                return self._drop("dropped_oversize")
            if self.crypto is None:  # a sealed frame is never sent twice (fresh nonce per frame)
                self._last_frame = (env.payload, env.src, env.dst_actor, frame)
        if link.send_now(frame):
            self._stats["sent"] += 1
            return True
        link.queue.put_nowait(frame)
        return True

    def _frame(self, env: Envelope) -> bytes:
        """One length-prefixed frame; with a keyring its body is sealed (the limit counts the overhead)."""
        if self.crypto is None:
            return encode_frame(env, self.config.max_frame_bytes)
        body = encode(env)
        if len(body) + ENCRYPT_OVERHEAD > self.config.max_frame_bytes:
            raise FrameTooLarge(f"frame of {len(body) + ENCRYPT_OVERHEAD} bytes exceeds limit "
                                f"{self.config.max_frame_bytes}")
        sealed = self.crypto.seal(body)
        return FRAME_HEADER.pack(len(sealed)) + sealed

    def stop(self) -> None:
        """Close the listener, inbound connections and every peer link; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.stop(timeout=0)  # kills the reader greenlets; they close their sockets
        for link in self._links.values():
            link.stop()
        self._links.clear()

    def _drop(self, counter: str) -> bool:
        self._stats[counter] += 1
        return False

    def _lost(self, node: str, why: str, *, unsent: bool = False) -> None:
        """Report that frames to *node* are lost, or may be: its connection ended or cannot be made.

        *unsent*: found before anything could be written (a refused connect, a
        link still backing off).  Every frame written to the node before was
        covered by the earlier report of that connection's end (its close is
        always reported before a new connect is tried), so whoever is told
        knows that nothing it sent since then reached the node.
        """
        if self.on_peer_lost is None or self._stopped:
            return
        self._stats["peer_lost"] += 1
        try:
            self.on_peer_lost(node, why, unsent)
        except Exception:  # a watcher's bug must not stop the link's greenlet
            log.exception("peer-lost callback for %s failed", node)

    def _serve(self, sock: gevent.socket.socket, addr: tuple[str, int]) -> None:
        """Read one inbound connection until EOF, the first bad frame, or a missed handshake deadline."""
        peer = format_address(addr[0], addr[1])
        ip = addr[0]
        limit = self.config.max_conns_per_client
        if limit and self._conns_per_ip.get(ip, 0) >= limit:
            self._stats["refused_conn_limit"] += 1
            self._refusal_log.warning(
                "rejecting connection from %s: %d connections from %s already open "
                "(limits.rpc_max_conns_per_client = %d)", peer, limit, ip, limit)
            sock.close()
            return
        self._conns_per_ip[ip] = self._conns_per_ip.get(ip, 0) + 1
        try:
            deliver = self._deliver
            if self.tls is not None:
                tls_sock = self._tls_accept(sock, peer)
                if tls_sock is None:
                    return
                sock = tls_sock
                deliver = self.tls.inbound_deliver(sock, deliver, peer)  # Raft only from servers
            self._read(sock, peer, deliver)
        finally:
            left = self._conns_per_ip.get(ip, 1) - 1
            if left > 0:
                self._conns_per_ip[ip] = left
            else:
                self._conns_per_ip.pop(ip, None)
            sock.close()

    def _tls_accept(self, sock: gevent.socket.socket, peer: str) -> gevent.socket.socket | None:
        """The TLS handshake of an inbound connection, within limits.rpc_handshake_timeout; None: refused."""
        assert self.tls is not None
        try:
            return self.tls.accept(sock, self.config.handshake_timeout_s)
        except TlsRefused as exc:
            self._stats["tls_refused"] += 1
            self._tls_log.warning("refusing RPC connection from %s: %s", peer, exc)
            return None

    def _read(self, sock: gevent.socket.socket, peer: str, deliver: Deliver | None = None) -> None:
        decoder: Any = (FrameDecoder(self.config.max_frame_bytes) if self.crypto is None
                        else SealedFrameDecoder(self.crypto, self.config.max_frame_bytes))
        # Until the first whole frame, every recv waits only for what is left
        # of the handshake deadline: dribbling one byte at a time gains nothing.
        timeout = self.config.handshake_timeout_s
        deadline: float | None = time.monotonic() + timeout if timeout > 0 else None
        try:
            while True:
                if deadline is not None:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(_READ_CHUNK)
                if not data:
                    if decoder.pending_bytes:
                        raise TruncatedFrame(f"closed inside a frame ({decoder.pending_bytes} bytes)")
                    return
                for msg in decoder.feed(data):
                    if deadline is not None:
                        deadline = None
                        sock.settimeout(None)
                    if not isinstance(msg, Envelope):
                        raise BadField(f"expected Envelope, got {type(msg).__name__}")
                    self._stats["received"] += 1
                    _call_deliver(deliver or self._deliver, msg, self._stats, peer)
        except DecryptFailed as exc:
            self._stats["decrypt_failed"] += 1
            if self.crypto is not None:
                self.crypto.failed(peer, "stream", str(exc))
        except WireError as exc:
            self._stats["bad_frames"] += 1
            self._bad_log.warning("closing connection from %s: bad frame: %s: %s", peer, type(exc).__name__,
                                  exc)
        except TimeoutError:
            self._stats["handshake_timeouts"] += 1
            self._refusal_log.info("closing connection from %s: no complete frame within the %gs "
                                   "handshake timeout (limits.rpc_handshake_timeout)", peer,
                                   self.config.handshake_timeout_s)
        except OSError as exc:
            log.debug("connection from %s ended: %s", peer, exc)


class DecryptFailed(WireError):
    """A sealed frame that no installed key opens (the stream is closed)."""


class SealedFrameDecoder:
    """:class:`~runtime.wire.FrameDecoder` for gossip streams: each frame body is opened first."""

    __slots__ = ("_buf", "_crypto", "_max")

    def __init__(self, crypto: GossipCrypto, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._crypto = crypto
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out = []
        while len(self._buf) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(self._buf)
            if length > self._max:
                raise FrameTooLarge(f"frame length {length} exceeds limit {self._max}")
            end = FRAME_HEADER.size + length
            if len(self._buf) < end:
                break
            body = bytes(self._buf[FRAME_HEADER.size : end])
            del self._buf[:end]
            try:
                plain = self._crypto.keyring.open(body)
            except ValueError as exc:  # DecryptError
                raise DecryptFailed(str(exc)) from None
            self._crypto.stats["opened"] += 1
            out.append(decode(plain, self._max))
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


# A refused or timed-out connection is logged at most this often per transport
# (every one is counted): a flood must not turn into a flood of log lines.
_REFUSAL_LOG_INTERVAL_S = 10.0


class _RateLimitedLog:
    """At most one line per interval; the next line says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._log, self._interval_s = logger, interval_s
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, fmt: str, *args: Any) -> None:
        self._emit(logging.WARNING, fmt, args)

    def info(self, fmt: str, *args: Any) -> None:
        self._emit(logging.INFO, fmt, args)

    def _emit(self, level: int, fmt: str, args: tuple[Any, ...]) -> None:
        now = time.monotonic()
        if now - self._last < self._interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            fmt += f" ({self._suppressed} more not logged)"
        self._last, self._suppressed = now, 0
        self._log.log(level, fmt, *args)


def _call_deliver(deliver: Deliver, env: Envelope, stats: dict[str, int], peer: str) -> None:
    """Hand *env* to the node; a failing callback is counted, never kills a reader."""
    try:
        deliver(env)
    except Exception:  # noqa: BLE001 - the reader must survive any delivery bug
        stats["deliver_errors"] += 1
        log.exception("deliver failed for envelope from %s to %s", peer, env.dst_actor)


# ------------------------------------------------------------------- UDP


class UdpTransport:
    """One Envelope per datagram (``encode(env)``, no length header), for gossip."""

    def __init__(self, bind: str, deliver: Deliver, *, config: TransportConfig | None = None,
                 crypto: GossipCrypto | None = None) -> None:
        self.config = config or TransportConfig()
        self._bind = parse_address(bind)
        self._deliver = deliver
        self.crypto = crypto  # every datagram sealed with the keyring (runtime.gossip_crypto)
        self._bad_log = _RateLimitedLog(log, _REFUSAL_LOG_INTERVAL_S)  # a flood of garbage: few lines
        self._server: DatagramServer | None = None
        self._sock: gevent.socket.socket | None = None
        self._stopped = False
        self._stats = _new_stats(
            "sent",
            "received",
            "dropped_oversize",
            "dropped_unreachable",
            "bad_frames",
            "deliver_errors",
            "decrypt_failed",
        )

    def start(self) -> None:
        """Bind and start receiving; returns once bound."""
        if self._server is not None or self._stopped:
            raise RuntimeError("UdpTransport.start() called twice or after stop()")
        family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
        sock = gevent.socket.socket(family, socket.SOCK_DGRAM)
        sock.bind(self._bind)
        sock.settimeout(0.0)  # sendto raises instead of waiting when the buffer is full
        self._sock = sock
        self._server = DatagramServer(sock, self._handle)
        self._server.start()

    @property
    def address(self) -> str:
        if self._sock is None:
            raise RuntimeError("UdpTransport not started")
        host, port = self._sock.getsockname()[:2]
        return format_address(host, port)

    @property
    def stats(self) -> dict[str, int]:
        """Counters (a copy); ``bad_frames`` counts undecodable datagrams."""
        return dict(self._stats)

    def send(self, node: str, env: Envelope) -> bool:
        """Send one datagram; never blocks.  False (and counted) when dropped.

        Packets over ``udp_max_packet_bytes`` are refused rather than left to
        IP fragmentation, which loses the whole packet if any fragment is lost.
        """
        return self.send_bytes(node, encode(env))

    def send_bytes(self, node: str, data: bytes) -> bool:
        """Send an already encoded Envelope as one datagram (see send); sealed here with a keyring."""
        if self.crypto is not None:
            data = self.crypto.seal(data)
        if len(data) > self.config.udp_max_packet_bytes:
            log.warning("not sending %d-byte packet to %s: over udp_max_packet_bytes", len(data), node)
            self._stats["dropped_oversize"] += 1
            return False
        if self._sock is None or self._stopped:
            self._stats["dropped_unreachable"] += 1
            return False
        try:
            self._sock.sendto(data, parse_address(node))
        except (OSError, ValueError) as exc:  # full buffer, no route, bad address
            log.debug("udp send to %s failed: %s", node, exc)
            self._stats["dropped_unreachable"] += 1
            return False
        self._stats["sent"] += 1
        return True

    def stop(self) -> None:
        """Close the socket; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.stop(timeout=0)
        if self._sock is not None:
            self._sock.close()

    def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = format_address(addr[0], addr[1])
        if self.crypto is not None:
            opened = self.crypto.open(data, peer, "packet")
            if opened is None:
                self._stats["decrypt_failed"] += 1
                return
            data = opened
        try:
            msg = decode(data, self.config.max_frame_bytes)
            if not isinstance(msg, Envelope):
                raise BadField(f"expected Envelope, got {type(msg).__name__}")
        except WireError as exc:
            self._stats["bad_frames"] += 1
            self._bad_log.warning("dropping packet from %s: %s: %s", peer, type(exc).__name__, exc)
            return
        self._stats["received"] += 1
        _call_deliver(self._deliver, msg, self._stats, peer)


_BOTH_PORT_TRIES = 20  # port-0 binds: attempts to find a port free for both UDP and TCP


class GossipTransport:
    """The gossip edge: UDP packets when a message fits, a TCP stream when not.

    memberlist sends probes and piggybacked updates as UDP packets and uses
    TCP for push-pull state exchanges that outgrow a packet; both listen on
    the same port number (``ports.serf``).  Delivery is unreliable either way:
    the gossip protocol expects loss.
    """

    def __init__(self, bind: str, deliver: Callable[[Envelope], None], *,
                 config: TransportConfig | None = None, stream_types: tuple[type, ...] = (),
                 crypto: GossipCrypto | None = None) -> None:
        # Payload types always sent over TCP whatever their size: memberlist's
        # push-pull (and so a join) is a stream exchange, never a lossy packet.
        self._stream_types = stream_types
        self._bind = bind
        # With a keyring every packet and stream frame is sealed; None: plaintext
        # (no server.encrypt).  Shared by both transports, so a key change made
        # by the gossip actor (crypto.install) applies to both at once.
        self.crypto = crypto
        self.udp = UdpTransport(bind, deliver, config=config, crypto=crypto)
        self.tcp: TcpTransport | None = None
        self._deliver = deliver
        self._config = config
        # Passed on to the stream transport (TcpTransport.on_peer_lost): a join learns of a refused
        # push-pull at once.  Packets give no such notice.
        self.on_peer_lost: Callable[[str, str, bool], None] | None = None

    def _tcp(self, bind: str) -> TcpTransport:
        tcp = TcpTransport(bind, self._deliver, config=self._config, crypto=self.crypto)
        tcp.on_peer_lost = lambda node, why, unsent: (self.on_peer_lost(node, why, unsent)
                                                      if self.on_peer_lost else None)
        return tcp

    def start(self) -> None:
        host, port = parse_address(self._bind)
        if port != 0:
            self.udp.start()
            self.tcp = self._tcp(self._bind)
            self.tcp.start()
            return
        # Port 0 (tests): a port free for TCP need not be free for UDP; retry
        # until one port is free for both.
        last: OSError | None = None
        for _ in range(_BOTH_PORT_TRIES):
            tcp = self._tcp(format_address(host, 0))
            tcp.start()
            udp = UdpTransport(tcp.address, self._deliver, config=self._config, crypto=self.crypto)
            try:
                udp.start()
            except OSError as exc:
                last = exc
                tcp.stop()
                continue
            self.tcp, self.udp = tcp, udp
            return
        raise last or OSError("no port free for both UDP and TCP")

    @property
    def address(self) -> str:
        return self.udp.address

    @property
    def packet_budget(self) -> int:
        """Bytes of encoded Envelope one UDP packet can carry (memberlist subtracts encryptOverhead)."""
        overhead = ENCRYPT_OVERHEAD if self.crypto is not None else 0
        return self.udp.config.udp_max_packet_bytes - overhead

    def send(self, node: str, env: Envelope) -> bool:
        if not isinstance(env.payload, self._stream_types):
            data = encode(env)
            if len(data) <= self.packet_budget:
                return self.udp.send_bytes(node, data)
        return self.tcp.send(node, env) if self.tcp is not None else False

    @property
    def stats(self) -> dict[str, int]:
        out = {f"udp_{k}": v for k, v in self.udp.stats.items()}
        if self.tcp is not None:
            out.update({f"tcp_{k}": v for k, v in self.tcp.stats.items()})
        return out

    def stop(self) -> None:
        self.udp.stop()
        if self.tcp is not None:
            self.tcp.stop()
