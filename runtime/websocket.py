"""The small part of RFC 6455 (WebSocket) that ``alloc exec`` needs, for both ends.

No package in the virtualenv speaks WebSocket, and the protocol needed here
is small: the opening handshake's accept key, frames (masked from a client,
unmasked from a server), fragmented messages reassembled, ping answered with
pong, and the close handshake with its status code and reason.

:class:`WsConn` runs over two callables -- ``read_exact(n)`` (fewer bytes
than asked: the peer hung up) and ``send(data)`` -- so the agent uses it over
pywsgi's connection and the CLI over a plain socket.  Sending is locked by
the caller's lock (the agent's greenlets, the CLI's threads), so a frame is
never interleaved with another.

Bounds: a frame or reassembled message larger than :data:`MAX_MESSAGE_BYTES`
is refused with close code 1009 (message too big), before its payload is read.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_TOO_BIG",
    "MAX_MESSAGE_BYTES",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_TEXT",
    "WsClosed",
    "WsConn",
    "WsHandshakeError",
    "WsProtocolError",
    "accept_key",
    "connect",
    "encode_frame",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005  # (never sent) a close frame with no code
CLOSE_ABNORMAL = 1006  # (never sent) the connection dropped without a close frame
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008  # Nomad's code for an exec error other than a 500
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011  # Nomad's code for an exec error that is a 500
# One message (after reassembly) at most this big.  Nomad's exec input
# frames carry what one read of a terminal gives (its api reads 2 KiB at a
# time) and output frames at most 32 KiB of data, base64'd in JSON: 1 MiB
# leaves room for any client while bounding what one peer makes us buffer
# (gorilla's default is unbounded; Nomad's own client then limits nothing).
MAX_MESSAGE_BYTES = 1 << 20
# A control frame's payload is at most this (RFC 6455 5.5).
MAX_CONTROL_BYTES = 125


class WsClosed(Exception):
    """The peer closed (with *code* and *reason*), or the connection dropped (1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


class WsProtocolError(Exception):
    """The peer broke the framing rules; *code* is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, mask_key: bytes | None = None, fin: bool = True) -> bytes:
    """One frame; *mask_key* (4 bytes) is required from a client and forbidden from a server."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask_key is not None else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if mask_key is not None:
        head += mask_key
        payload = _mask(payload, mask_key)
    return bytes(head) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason (cut to fit a control frame)."""
    raw = reason.encode("utf-8")[:MAX_CONTROL_BYTES - 2]
    return struct.pack("!H", code) + raw.decode("utf-8", errors="ignore").encode("utf-8")


class WsConn:
    """One WebSocket connection over *read_exact* / *send*; *client*: this end masks what it sends."""

    def __init__(self, read_exact: Callable[[int], bytes], send: Callable[[bytes], Any], *, client: bool,
                 lock: Any = None, max_message: int = MAX_MESSAGE_BYTES,
                 mask_source: Callable[[int], bytes] = os.urandom) -> None:
        self._read = read_exact
        self._send = send
        self.client = client
        self._lock = lock if lock is not None else threading.Lock()
        self.max_message = max_message
        self._mask_source = mask_source
        self.close_sent = False
        self.close_received: tuple[int, str] | None = None

    # ------------------------------------------------------------ sending
    def send_frame(self, opcode: int, payload: bytes) -> None:
        key = self._mask_source(4) if self.client else None
        frame = encode_frame(opcode, payload, mask_key=key)
        with self._lock:
            if self.close_sent:
                return
            if opcode == OP_CLOSE:
                self.close_sent = True
            self._send(frame)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (once); errors sending it are ignored (the peer may be gone)."""
        try:
            self.send_frame(OP_CLOSE, close_payload(code, reason))
        except OSError:
            self.close_sent = True

    # ------------------------------------------------------------ receiving
    def _exact(self, n: int) -> bytes:
        data = self._read(n) if n else b""
        if len(data) < n:
            raise WsClosed(CLOSE_ABNORMAL, "connection dropped")
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._exact(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if b0 & 0x70:
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if masked != (not self.client):
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked, server frames not")
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        if opcode >= 0x8 and (n > MAX_CONTROL_BYTES or not fin):
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "control frame too long or fragmented")
        if n > self.max_message:
            raise WsProtocolError(CLOSE_TOO_BIG, f"frame of {n} bytes over the {self.max_message} byte limit")
        key = self._exact(4) if masked else b""
        payload = self._exact(n)
        return fin, opcode, _mask(payload, key) if masked else payload

    def recv(self) -> tuple[int, bytes]:
        """The next data message (opcode, payload), fragments joined; pings answered.

        Raises WsClosed when the peer closes (the close is answered) or the
        connection drops, WsProtocolError when the peer breaks the rules (a
        close with its code is sent first).
        """
        try:
            return self._recv()
        except WsProtocolError as e:
            self.close(e.code, str(e))
            raise

    def _recv(self) -> tuple[int, bytes]:
        parts: list[bytes] = []
        size = 0
        first = 0
        while True:
            fin, opcode, payload = self._frame()
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code, reason = CLOSE_NO_STATUS, ""
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    reason = payload[2:].decode("utf-8", errors="replace")
                self.close_received = (code, reason)
                self.close(CLOSE_NORMAL if code == CLOSE_NO_STATUS else code)
                raise WsClosed(code, reason)
            if opcode == OP_CONT:
                if not parts and not first:
                    raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame with nothing to continue")
            elif opcode in (OP_TEXT, OP_BINARY):
                if first:
                    raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                first = opcode
            else:
                raise WsProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            size += len(payload)
            if size > self.max_message:
                raise WsProtocolError(CLOSE_TOO_BIG, f"message over the {self.max_message} byte limit")
            parts.append(payload)
            if fin:
                return first, b"".join(parts)


class WsHandshakeError(Exception):
    """The server answered the upgrade with something other than 101: its *status* and *body*."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Unexpected response code: {status} ({body})")
        self.status = status
        self.body = body


# The client's opening handshake (connect, request, the server's head) must be
# done within this; the session itself then has no deadline.
CONNECT_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024  # the server's status line and headers, and a refusal's body


def connect(url: str, headers: dict[str, str] | None = None, *, ssl_context: Any = None,
            timeout_s: float = CONNECT_TIMEOUT_S, server_hostname: str | None = None) -> tuple[WsConn, Any]:
    """Open a client WebSocket to ``http(s)://host:port/path?query``: (the connection, its socket).
    *server_hostname*: the name sent (SNI) and checked in the certificate, else the URL's host.

    A refusal (any status but 101) raises WsHandshakeError with the body the
    server sent; a wrong ``Sec-WebSocket-Accept`` a WsProtocolError.
    """
    import socket
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    host = u.hostname or "127.0.0.1"
    sock: Any = socket.create_connection((host, port), timeout=timeout_s)
    try:
        if u.scheme == "https":
            import ssl

            sock = (ssl_context or ssl.create_default_context()).wrap_socket(
                sock, server_hostname=server_hostname or host)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {u.netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *[f"{k}: {v}" for k, v in (headers or {}).items()]]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reader = sock.makefile("rb")
        status_line = reader.readline(MAX_HEAD_BYTES).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, f"malformed answer {status_line.strip()!r}")
        got: dict[str, str] = {}
        while True:
            line = reader.readline(MAX_HEAD_BYTES).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        status = int(parts[1])
        if status != 101:
            length = got.get("content-length", "")
            body = reader.read(min(int(length), MAX_HEAD_BYTES)) if length.isdigit() else b""
            raise WsHandshakeError(status, body.decode("utf-8", errors="replace").strip())
        if got.get("sec-websocket-accept") != accept_key(key):
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "the server's Sec-WebSocket-Accept does not match")
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return WsConn(reader.read, sock.sendall, client=True), sock
