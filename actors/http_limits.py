"""Per-client-IP connection limit for the HTTP API (Nomad ``limits.http_max_conns_per_client``).

(And pywsgi's handler, :class:`HardenedWSGIHandler`: two hardenings of its
request parser, and small answers written in one send.)

Nomad caps the HTTP connections one client IP may hold open (default 100)
so one misbehaving or malicious client cannot take every slot of the
server: beyond the cap the new connection gets a ``429 Too Many Requests``
and is closed.  Each refusal is counted in :data:`HTTP_LIMIT_STATS` (the
agent exports it as the ``nomad.http.conn_limit_refused`` gauge) and
logged at most once per :data:`REFUSAL_LOG_INTERVAL_S`.
"""

from __future__ import annotations

import functools
import http.client
import logging
import socket
from typing import Any

import gevent
import gevent.pywsgi
import gevent.select
from gevent.pywsgi import WSGIHandler, WSGIServer

from runtime.edge import monotonic, wall_time

__all__ = ["CALLER_GONE", "CALLER_GONE_POLL_S", "HTTP_LIMIT_STATS", "TAKE_OVER", "HardenedWSGIHandler",
           "LimitedWSGIServer", "caller_gone", "close_when_gone"]

log = logging.getLogger("agent.http")

# One HTTP server per agent process: its refusals, for the metrics sampler.
HTTP_LIMIT_STATS = {"refused_conn_limit": 0}
# What pywsgi puts in place of a server's access log when it is given none (log=None).
_NOOP_LOG: type = getattr(gevent.pywsgi, "_NoopLog", type(None))
# Refusals are logged at most this often (each is counted): a flood of
# connections must not become a flood of log lines.
REFUSAL_LOG_INTERVAL_S = 10.0
TOO_MANY = b"Your IP is issuing too many concurrent connections, please rate limit your calls\n"
# A refused client gets this long to take the 429 before the socket closes.
REFUSAL_WRITE_TIMEOUT_S = 1.0
# An answer body up to this size is sent together with the status line and
# headers (one syscall); copying it costs less than the second send below
# this.  Above it (a 1,000-node list is ~300 KB) the body is sent on its own.
SINGLE_SEND_MAX_BYTES = 64 * 1024
# The environ key of a connection-upgrade request's take-over callable
# (HardenedWSGIHandler._take_over): ``take_over(status, headers) -> (socket, reader)``.
TAKE_OVER = "nomad.take_over"
# The environ key of every request's ``caller_gone() -> bool`` (caller_gone on its socket):
# whether the caller closed its connection.  A streamed answer that writes nothing while it waits
# (a plain-text log follow) asks it, since only a failed write would tell it otherwise.
CALLER_GONE = "nomad.caller_gone"
# How often a relayed stream waiting on its upstream asks whether its caller went (close_when_gone):
# as often as Nomad's stream heartbeat (1 s), so a hung-up relay holds its upstream about that long.
CALLER_GONE_POLL_S = 1.0


def caller_gone(sock: Any) -> bool:
    """True once the caller closed (or reset) its connection *sock*, without waiting or reading data.

    A caller waiting for a streamed answer sends nothing, so a readable socket is its
    end-of-stream: a zero-byte peek.  Where peeking is not possible (TLS), readable alone
    counts as gone.
    """
    if sock is None:
        return True
    try:
        readable, _, _ = gevent.select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True  # the descriptor is closed
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ValueError:  # an SSL socket takes no recv flags
        return True
    except OSError:  # reset by the peer
        return True


def close_when_gone(gone: Any, conn: Any, poll_s: float = CALLER_GONE_POLL_S) -> Any:
    """A greenlet that closes *conn* (an upstream connection a relayed stream blocks reading) once
    *gone()* (the request's CALLER_GONE) says the caller hung up: the blocked read then fails
    and the relay ends, closing its upstream, which the upstream's own stream notices in turn.
    Kill it when the relay ends first."""
    def watch() -> None:
        while not gone():
            gevent.sleep(poll_s)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the read blocked on it
            except OSError:
                pass  # already closed
        conn.close()

    return gevent.spawn(watch)
# Go's net/http answer to a header block it will not read (over MaxHeaderBytes).
HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                     b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 35\r\n\r\n"
                     b"431 Request Header Fields Too Large")


# The standard library's header limits (http.client _MAXLINE, _MAXHEADERS), kept by our own parser:
# a longer header line is a 400, more lines than this a 431 (see _handle_client_error).
MAX_HEADER_LINE_BYTES = 65536
MAX_HEADER_LINES = 100


class RequestHeaders:
    """A request's header block, as pywsgi reads it from its ``MessageClass`` (``get``, ``getheader``,
    ``del``, ``headers`` lines, ``typeheader``, ``status``) -- without the ``email`` package's
    parser, which the standard library's ``http.client.parse_headers`` runs on every request and
    which cost about a seventh of the agent's CPU per API request.  Names match case-insensitively;
    the first of repeated headers is the one ``get`` answers, as ``email.message.Message.get``."""

    __slots__ = ("_first", "items", "status")

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.status = ""  # pywsgi refuses the request (400) when this is not empty
        # Lower-cased name -> its first value, made on the first lookup (the block is complete by
        # then): pywsgi and the handlers look up some ten names per request, each of which scanned
        # and lower-cased every line.
        self._first: dict[str, str] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        first = self._first
        if first is None:
            first = self._first = {}
            for k, v in self.items:
                first.setdefault(k.lower(), v)
        return first.get(name.lower(), default)

    getheader = get

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __delitem__(self, name: str) -> None:
        lname = name.lower()
        self.items = [(k, v) for k, v in self.items if k.lower() != lname]
        self._first = None

    @property
    def headers(self) -> Any:
        for k, v in self.items:
            yield f"{k}: {v}\r\n"

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")


_PLAIN_VERSIONS = ("HTTP/1.1", "HTTP/1.0")  # versions pywsgi's _check_http_version accepts, as it would
_CONTENT_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")  # environ keys pywsgi takes from these headers itself
_DATE: list[Any] = [None, b""]  # (whole second, its HTTP date) of the last answer


def http_date() -> bytes:
    """The current time as an HTTP ``Date`` value (pywsgi's ``format_date_time``), remade only when the
    second changes: every answer carries one, and many answers share a second."""
    now = int(wall_time())
    if _DATE[0] != now:
        _DATE[0], _DATE[1] = now, gevent.pywsgi.format_date_time(now)
    return _DATE[1]  # type: ignore[no-any-return]


def read_headers(fp: Any) -> RequestHeaders:
    """The header block of a request from *fp* (pywsgi's rfile), up to the blank line.

    Limits as the standard library's: a line over MAX_HEADER_LINE_BYTES sets the status pywsgi
    answers 400 for, more than MAX_HEADER_LINES lines raise http.client.HTTPException (a 431); a
    line without a colon is a 400 (Go's "malformed MIME header line"); an obsolete folded line
    continues the header before it, joined with a space (RFC 9112).  Latin-1, as http.client."""
    h = RequestHeaders()
    items = h.items
    lines = 0
    while True:
        line = fp.readline(MAX_HEADER_LINE_BYTES + 1)
        if len(line) > MAX_HEADER_LINE_BYTES:
            h.status = "Line too long"
            return h
        if line in (b"\r\n", b"\n", b""):
            return h
        lines += 1
        if lines > MAX_HEADER_LINES:
            raise http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers")
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if not items:
                h.status = "malformed MIME header line"
                return h
            k, v = items[-1]
            items[-1] = (k, f"{v} {text.strip()}")
            continue
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            h.status = "malformed MIME header line"
            return h
        items.append((name, value.strip(" \t")))


class HardenedWSGIHandler(WSGIHandler):
    """pywsgi's handler, minus a traceback on stderr for a malformed HTTP version.

    gevent 26.9's ``_check_http_version`` raises IndexError for a request line
    ending ``HTTP/1`` (one number); pywsgi then answers 400 but prints the
    whole traceback to stderr for anything that is not a ValueError -- so any
    client could write tracebacks into the agent's log at will (found by the
    hostile-traffic soak).  Read as what it is: an invalid version, a 400.
    """

    def MessageClass(self, fp: Any, *args: Any) -> RequestHeaders:
        return read_headers(fp)

    def _check_http_version(self) -> bool:
        if self.request_version in _PLAIN_VERSIONS:  # nearly every request: no parsing
            return True
        try:
            return bool(super()._check_http_version())
        except (IndexError, ValueError):
            return False

    def _handle_client_error(self, ex: BaseException) -> Any:
        """A header block the standard library's parser refuses (more than 100 header lines)
        raises http.client.HTTPException, not a ValueError, so pywsgi printed its traceback to
        stderr too: the client's fault, answered 431 as Go's server answers headers it will not
        read, and logged as pywsgi logs other bad requests."""
        if isinstance(ex, http.client.HTTPException):
            self.log_error("Invalid request (from %s): %s", self.client_address, ex)
            return ("431", HEADERS_TOO_LARGE)
        return super()._handle_client_error(ex)

    def finalize_headers(self) -> None:
        """pywsgi's, with the ``Date`` header formatted once a second (:func:`http_date`) instead of
        once per answer (a gmtime and a %-format, ~2 us)."""
        if self.provided_date is None:
            self.response_headers.append((b"Date", http_date()))
            self.provided_date = "set"  # pywsgi then adds no second one
        super().finalize_headers()

    def log_request(self) -> None:
        """pywsgi formats an access-log line after every request (~3 us: a datetime, a format) and
        hands it to the server's log, a no-op writer when the server has none (the API's: requests
        are logged by actors.http_api at DEBUG): the line is made only for a real log."""
        if not isinstance(self.server.log, _NOOP_LOG):
            super().log_request()

    def _headers(self) -> Any:
        """pywsgi's ``HTTP_*`` environ entries, read from the parsed lines (:class:`RequestHeaders`
        joined folded lines already) instead of re-splitting a ``"name: value"`` string made of each:
        the same names (a name with ``_`` dropped, as pywsgi drops it; Content-Type and
        Content-Length only as CONTENT_*) and values."""
        for name, value in self.headers.items:
            if "_" in name:
                continue
            key = name.replace("-", "_").upper()
            if key not in _CONTENT_KEYS:
                yield "HTTP_" + key, value.strip()

    def get_environ(self) -> dict[str, Any]:
        """pywsgi's environ; a request asking to upgrade its connection (a WebSocket) also gets
        :data:`TAKE_OVER`, with which its handler answers ``101 Switching Protocols`` itself."""
        env: dict[str, Any] = super().get_environ()
        # Bound to the socket, not to this handler: the environ then holds no cycle back to the
        # handler, which refcounting frees with its request instead of the cyclic collector.
        env[CALLER_GONE] = functools.partial(caller_gone, self.socket)
        if self._connection_upgrade_requested():
            env[TAKE_OVER] = self._take_over
        return env

    def _take_over(self, status: str, headers: list[tuple[str, str]]) -> tuple[Any, Any]:
        """Send *status* and *headers* (the 101) and hand the connection to the caller: its socket,
        and the buffered reader the request was read from (it may already hold the first frames).

        pywsgi then writes nothing more on it, and closes it when the handler returns.
        """
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self._sendall(head.encode("latin-1"))
        self.status = status.encode("latin-1")
        self.headers_sent = True
        self.close_connection = True
        self.response_length = len(head)
        return self.socket, self.rfile

    def _write_with_headers(self, data: bytes) -> None:
        """pywsgi's, except that a small body goes out in the same send as the headers.

        pywsgi sends the status line and headers, then the body, in two
        ``sendall`` calls: two syscalls and two TCP segments per answer
        (TCP_NODELAY is on), and a client that reads the head first wakes
        twice.  A body up to :data:`SINGLE_SEND_MAX_BYTES` is appended to the
        head instead; larger ones (a long node list) keep pywsgi's way, which
        spares copying them.
        """
        self.headers_sent = True
        self.finalize_headers()
        towrite = bytearray(b"HTTP/1.1 ")
        towrite += self.status
        towrite += b"\r\n"
        for header, value in self.response_headers:
            towrite += header
            towrite += b": "
            towrite += value
            towrite += b"\r\n"
        towrite += b"\r\n"
        if data and not self.response_use_chunked and len(data) <= SINGLE_SEND_MAX_BYTES:
            towrite += data
            self._sendall(towrite)
            return
        self._sendall(towrite)
        self._write(data)


class LimitedWSGIServer(WSGIServer):
    """gevent's WSGI server with at most ``max_conns_per_client`` open connections per IP (0: no cap)."""

    handler_class = HardenedWSGIHandler

    def __init__(self, *args: Any, max_conns_per_client: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_conns_per_client = max_conns_per_client
        self._per_ip: dict[str, int] = {}
        self._last_log = float("-inf")
        self._suppressed = 0

    def handle(self, sock: Any, address: Any) -> None:
        ip = address[0] if isinstance(address, tuple) else str(address)
        limit = self.max_conns_per_client
        if limit and self._per_ip.get(ip, 0) >= limit:
            self._refuse(sock, ip, limit)
            return
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        try:
            self.handle_admitted(sock, address)
        finally:
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

    def handle_admitted(self, sock: Any, address: Any) -> None:
        """Serve a connection the per-IP cap let in.  With tls.http the agent wraps this
        (runtime.tls.TlsEdge.https_handler), so a TLS handshake holds one of the IP's slots."""
        super().handle(sock, address)

    def _refuse(self, sock: Any, ip: str, limit: int) -> None:
        HTTP_LIMIT_STATS["refused_conn_limit"] += 1
        now = monotonic()
        if now - self._last_log >= REFUSAL_LOG_INTERVAL_S:
            extra = f" ({self._suppressed} more refusals not logged)" if self._suppressed else ""
            log.warning("rejecting HTTP connection from %s: %d connections already open "
                        "(limits.http_max_conns_per_client = %d)%s", ip, limit, limit, extra)
            self._last_log, self._suppressed = now, 0
        else:
            self._suppressed += 1
        try:
            sock.settimeout(REFUSAL_WRITE_TIMEOUT_S)
            sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(TOO_MANY) + TOO_MANY)
        except OSError:
            pass
        finally:
            sock.close()
