"""TLS at the network edges (Nomad's ``tls`` block): contexts, loading, names, reloading.

What Nomad does, and so what we do:

- **RPC** (``tls.rpc``): every connection of the RPC port is mutual TLS --
  Raft, client <-> server, forwarded HTTP requests, server <-> server
  forwarding.  Both ends present a certificate signed by ``ca_file``; a peer
  without one is refused at the handshake (logged, counted; the process
  carries on).  With ``verify_server_hostname`` a connection *to a server*
  must find ``server.<region>.nomad`` in its certificate (Nomad's rule:
  clients' certificates are ``client.<region>.nomad``, so a client's
  certificate cannot pose as a server).  Our transport is one-way
  connections in both directions (a server also dials a client's RPC port
  to answer it), so the names are checked per direction (:func:`rpc_names`).
  And, as Nomad's ``validateRaftTLS``, Raft messages are taken only from a
  connection whose certificate is ``server.<region>.nomad``: a client's
  certificate gets a client through the handshake (it must register) but
  cannot speak Raft (:meth:`TlsEdge.inbound_deliver`).
- **HTTP** (``tls.http``): the API is served over HTTPS; with
  ``verify_https_client`` a client certificate signed by the CA is required.
- **Reload** (SIGHUP): :meth:`TlsEdge.reload` builds fresh contexts from
  the files and swaps them in whole; connections opened afterwards use the
  new certificates, open ones keep theirs (as Go's ``tls.Config`` reload).
  A failed reload keeps the old contexts and says why.

TLS lives here and at the transport edge only (DESIGN.md §4): protocols
above see the same Envelopes either way.  gevent's ``ssl`` is used
explicitly so the sockets cooperate with the hub whether or not the process
is monkey-patched.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent.ssl

__all__ = [
    "TlsEdge",
    "TlsError",
    "TlsRefused",
    "TlsSettings",
    "check_files",
    "client_context",
    "peer_names",
    "role_name",
    "rpc_names",
]

log = logging.getLogger(__name__)

# tls.tls_min_version -> the oldest protocol version a context accepts or offers.
MIN_VERSIONS = {"tls10": ssl.TLSVersion.TLSv1, "tls11": ssl.TLSVersion.TLSv1_1,
                "tls12": ssl.TLSVersion.TLSv1_2, "tls13": ssl.TLSVersion.TLSv1_3}


class TlsError(Exception):
    """The TLS files are unusable (missing, unreadable, not PEM, key not matching the cert)."""


class TlsRefused(Exception):
    """A peer failed the handshake or the name check; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """What the contexts are built from: the config's ``tls`` block plus the agent's role and region."""

    rpc: bool = False
    http: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify_server_hostname: bool = False
    verify_https_client: bool = False
    min_version: str = "tls12"  # tls.tls_min_version
    region: str = "global"
    server: bool = False  # a server agent (dev: server and client) -- decides the names it accepts

    @classmethod
    def from_config(cls, cfg: Any) -> TlsSettings:
        t = cfg.tls
        return cls(rpc=t.rpc, http=t.http, ca_file=t.ca_file or "", cert_file=t.cert_file or "",
                   key_file=t.key_file or "", verify_server_hostname=t.verify_server_hostname,
                   verify_https_client=t.verify_https_client, min_version=t.tls_min_version,
                   region=cfg.region, server=cfg.server.enabled)


def role_name(role: str, region: str) -> str:
    """The name a role's certificate carries (Nomad): ``server.global.nomad``, ``client.global.nomad``."""
    return f"{role}.{region}.nomad"


def rpc_names(s: TlsSettings, *, inbound: bool) -> tuple[str, ...]:
    """Names a peer's certificate must hold on an RPC connection; () means any CA-signed certificate.

    Only with ``verify_server_hostname``.  A connection *to* a server must
    show the server name (Nomad's rule).  Here connections run both ways, so:
    a client-only agent dials only servers and is dialled only by servers
    (answers, allocations), so it wants the server name both ways; a server
    dials servers (Raft, forwarding) and clients (answers) and is dialled by
    both, so it wants one of the two names of its region outbound and takes
    any CA-signed certificate inbound (clients register there).
    """
    if not s.verify_server_hostname:
        return ()
    if not s.server:
        return (role_name("server", s.region),)
    if inbound:
        return ()
    return role_name("server", s.region), role_name("client", s.region)


def _read(path: str, key: str) -> bytes:
    if not path:
        raise TlsError(f"tls.{key}: required when tls.rpc or tls.http is on")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise TlsError(f'tls.{key}: cannot read "{path}": {e.strerror or e}') from None
    if b"-----BEGIN" not in data:
        raise TlsError(f'tls.{key}: "{path}" holds no PEM data')
    return data


def _load(ctx: ssl.SSLContext, s: TlsSettings) -> ssl.SSLContext:
    """*ctx* with our certificate and the CA, every failure a :class:`TlsError` naming the key."""
    _read(s.cert_file, "cert_file")
    _read(s.key_file, "key_file")
    ca = _read(s.ca_file, "ca_file")
    try:
        ctx.load_cert_chain(s.cert_file, s.key_file)
    except ssl.SSLError as e:
        raise TlsError(f'tls.cert_file/key_file: cannot load "{s.cert_file}" with "{s.key_file}": '
                       f"{e.reason or e}") from None
    try:
        ctx.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as e:
        raise TlsError(f'tls.ca_file: cannot load "{s.ca_file}": {getattr(e, "reason", None) or e}') from None
    if s.min_version not in MIN_VERSIONS:
        raise TlsError(f'tls.tls_min_version: unsupported TLS version "{s.min_version}"')
    ctx.minimum_version = MIN_VERSIONS[s.min_version]
    return ctx


def _server_ctx(s: TlsSettings, *, require_client_cert: bool) -> ssl.SSLContext:
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # No TLS 1.3 session tickets: they arrive after the handshake, and the
    # transport reads an outbound socket that turns readable as "peer closed".
    ctx.num_tickets = 0
    _load(ctx, s)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    return ctx


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "",
                   min_version: str = "tls12") -> ssl.SSLContext:
    """A dialling context: the CA checked, our certificate presented; names are checked by the caller."""
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # Nomad's names are checked after the handshake (check_names)
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load(ctx, TlsSettings(ca_file=ca_file, cert_file=cert_file, key_file=key_file, min_version=min_version))
    return ctx


def check_files(s: TlsSettings) -> None:
    """Raise :class:`TlsError` unless every file the enabled parts need loads (start-up check)."""
    if s.rpc or s.http:
        _server_ctx(s, require_client_cert=True)


def peer_names(cert: dict[str, Any] | None) -> tuple[str, ...]:
    """The DNS names of a verified peer certificate (``getpeercert()``): SANs, then the CN."""
    if not cert:
        return ()
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    for rdn in cert.get("subject", ()):
        names += [v for k, v in rdn if k == "commonName"]
    return tuple(names)


def _handshake(ctx: ssl.SSLContext, sock: Any, *, server_side: bool, timeout_s: float,
               names: tuple[str, ...]) -> Any:
    """Wrap *sock* and complete the handshake within *timeout_s* (0: no bound); check *names*.

    Returns the TLS socket (timeout reset to blocking); raises
    :class:`TlsRefused` after closing it.
    """
    tls = ctx.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False)
    try:
        tls.settimeout(timeout_s if timeout_s > 0 else None)
        tls.do_handshake()
        if names:
            got = peer_names(tls.getpeercert())
            if not any(n in got for n in names):
                raise TlsRefused(f"certificate names {', '.join(got) or 'none'} hold none of "
                                 f"{', '.join(names)} (tls.verify_server_hostname)")
        tls.settimeout(None)
        return tls
    except TlsRefused:
        tls.close()
        raise
    except ssl.SSLError as e:
        tls.close()
        raise TlsRefused(f"TLS handshake failed: {e.reason or e}") from None
    except TimeoutError:
        tls.close()
        raise TlsRefused(f"TLS handshake failed: not complete within {timeout_s:g}s") from None
    except OSError as e:
        tls.close()
        raise TlsRefused(f"TLS handshake failed: {e.strerror or e}") from None


class _Contexts:
    """One generation of contexts, replaced whole by a reload."""

    __slots__ = ("http", "http_client", "rpc_client", "rpc_server", "settings")

    def __init__(self, s: TlsSettings) -> None:
        self.settings = s
        self.rpc_server = _server_ctx(s, require_client_cert=True) if s.rpc else None
        files = (s.ca_file, s.cert_file, s.key_file, s.min_version)
        self.rpc_client = client_context(*files) if s.rpc else None
        self.http = _server_ctx(s, require_client_cert=s.verify_https_client) if s.http else None
        self.http_client = client_context(*files) if s.http else None


class TlsEdge:
    """The agent's TLS: what the RPC transport and the HTTP server wrap their sockets with.

    ``rpc`` / ``http`` say which edges use it; they are fixed at start (a
    change needs a restart, as the listeners would change protocol), while
    the files and the ``verify_*`` flags follow :meth:`reload`.
    """

    def __init__(self, settings: TlsSettings, *, server_only: tuple[str, ...] = ()) -> None:
        self._c = _Contexts(settings)  # raises TlsError: a start-up config error
        self.rpc = settings.rpc
        self.http = settings.http
        # Actors that take messages only from servers' connections (with
        # verify_server_hostname): the agent passes its Raft actor's name.
        self.server_only = frozenset(server_only)
        self.stats = {"rpc_accepted": 0, "rpc_dialled": 0, "rpc_refused": 0, "http_refused": 0,
                      "rpc_role_dropped": 0, "reloads": 0}

    @property
    def settings(self) -> TlsSettings:
        return self._c.settings

    def reload(self, settings: TlsSettings) -> None:
        """Load the files again and swap the contexts in; raises :class:`TlsError` and keeps the old ones."""
        settings = _fixed(settings, rpc=self.rpc, http=self.http)
        self._c = _Contexts(settings)
        self.stats["reloads"] += 1

    # -- RPC ----------------------------------------------------------------
    def accept(self, sock: Any, timeout_s: float) -> Any:
        """The server side of an inbound RPC connection; raises :class:`TlsRefused` (socket closed)."""
        c = self._c
        assert c.rpc_server is not None, "accept() on an agent without tls.rpc"
        try:
            tls = _handshake(c.rpc_server, sock, server_side=True, timeout_s=timeout_s,
                             names=rpc_names(c.settings, inbound=True))
        except TlsRefused:
            self.stats["rpc_refused"] += 1
            raise
        self.stats["rpc_accepted"] += 1
        return tls

    def connect(self, sock: Any, timeout_s: float) -> Any:
        """The client side of an outbound RPC connection; raises :class:`TlsRefused` (socket closed)."""
        c = self._c
        assert c.rpc_client is not None, "connect() on an agent without tls.rpc"
        try:
            tls = _handshake(c.rpc_client, sock, server_side=False, timeout_s=timeout_s,
                             names=rpc_names(c.settings, inbound=False))
        except TlsRefused:
            self.stats["rpc_refused"] += 1
            raise
        self.stats["rpc_dialled"] += 1
        return tls

    def inbound_deliver(self, tls: Any, deliver: Callable[[Any], None], peer: str) -> Callable[[Any], None]:
        """*deliver* for one accepted connection: unchanged, or without the server-only actors.

        With ``verify_server_hostname``, a connection whose certificate is not
        ``server.<region>.nomad`` has its Envelopes to :attr:`server_only`
        actors dropped (counted, logged at most once per interval): Nomad
        refuses Raft from anything but a server certificate.
        """
        s = self._c.settings
        if not (s.verify_server_hostname and self.server_only):
            return deliver
        if role_name("server", s.region) in peer_names(tls.getpeercert()):
            return deliver
        server_only, stats = self.server_only, self.stats

        def deliver_not_server_only(env: Any) -> None:
            if env.dst_actor in server_only:
                stats["rpc_role_dropped"] += 1
                _role_drops.warning("dropping a message for %s from %s: its certificate is not %s "
                                    "(tls.verify_server_hostname)", env.dst_actor, peer,
                                    role_name("server", s.region))
                return
            deliver(env)
        return deliver_not_server_only

    # -- HTTP ---------------------------------------------------------------
    def http_client_context(self) -> ssl.SSLContext:
        """For requests this agent makes to another agent's HTTPS API (``?region=`` forwarding):
        the CA checked, our certificate shown (the peer may ask for one)."""
        ctx = self._c.http_client
        assert ctx is not None, "http_client_context() on an agent without tls.http"
        return ctx

    def https_handler(self, handle: Callable[[Any, Any], Any], timeout_s: float) -> Callable[[Any, Any], Any]:
        """Wrap a StreamServer ``handle(sock, address)`` to run the handshake first (within *timeout_s*).

        A failed handshake is counted and logged (at most one line per
        :data:`REFUSAL_LOG_INTERVAL_S`), never raised: a raised error would
        print a traceback for any client that speaks plain HTTP.
        """
        def serve(sock: Any, address: Any) -> Any:
            ctx = self._c.http
            assert ctx is not None, "https_handler() on an agent without tls.http"
            try:
                if _plain_http(sock, timeout_s):
                    # Go's net/http answers a plain request on its TLS listener so, and Nomad's CLI
                    # prints it: 'Unexpected response code: 400 (Client sent an HTTP request to ...)'.
                    self.stats["http_refused"] += 1
                    _http_refusals.warning("refusing HTTPS connection from %s: a plain HTTP request",
                                           _peer(address))
                    _answer_plain_http(sock)
                    return None
                tls = _handshake(ctx, sock, server_side=True, timeout_s=timeout_s, names=())
            except TlsRefused as e:
                self.stats["http_refused"] += 1
                _http_refusals.warning("refusing HTTPS connection from %s: %s", _peer(address), e)
                sock.close()
                return None
            try:
                return handle(tls, address)
            finally:
                tls.close()
        return serve


# Go's net/http to a client whose first bytes on its TLS listener are a plain HTTP request.
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
# The 5-byte TLS record headers Go's tlsRecordHeaderLooksLikeHTTP takes for HTTP (net/http server.go).
_HTTP_OPENINGS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


def _plain_http(sock: Any, timeout_s: float) -> bool:
    """Whether the connection opens with a plain HTTP request (peeked, not consumed).

    Go reads the first record header (5 bytes); a peek that returns fewer
    while they may still begin an HTTP request is retried until *timeout_s*
    (a TLS client's first byte, 0x16, ends it at once).  A timeout or an
    error answers False: the handshake that follows deals with the peer.
    """
    import socket
    import time

    import gevent

    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    try:
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            sock.settimeout(left)
            head = sock.recv(5, socket.MSG_PEEK)
            if len(head) >= 5 or not head:
                return head[:5] in _HTTP_OPENINGS
            if not any(o.startswith(head) for o in _HTTP_OPENINGS):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            gevent.sleep(0.01)  # the rest of the request line is on its way
    except OSError:  # a timeout too: the handshake that follows reports it
        return False


def _answer_plain_http(sock: Any) -> None:
    """Send :data:`PLAIN_HTTP_ANSWER` and close, having read what the client already sent: closing
    with its request unread would reset the connection and could lose the answer on the way."""
    try:
        sock.sendall(PLAIN_HTTP_ANSWER)
        sock.settimeout(0)
        for _ in range(16):  # at most 16 x 64 KiB of a request already here
            if not sock.recv(65536):
                break
    except OSError:  # BlockingIOError: nothing more buffered
        pass
    sock.close()


def _fixed(s: TlsSettings, *, rpc: bool, http: bool) -> TlsSettings:
    from dataclasses import replace

    return replace(s, rpc=rpc, http=http)


def _peer(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


# A flood of plain-HTTP or bad-certificate connections must not flood the log.
REFUSAL_LOG_INTERVAL_S = 10.0


class _RateLimited:
    def __init__(self, interval_s: float) -> None:
        self._interval_s, self._last, self._suppressed = interval_s, float("-inf"), 0

    def warning(self, fmt: str, *args: Any) -> None:
        import time

        now = time.monotonic()
        if now - self._last < self._interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            fmt += f" ({self._suppressed} more not logged)"
        self._last, self._suppressed = now, 0
        log.warning(fmt, *args)


_http_refusals = _RateLimited(REFUSAL_LOG_INTERVAL_S)
_role_drops = _RateLimited(REFUSAL_LOG_INTERVAL_S)
