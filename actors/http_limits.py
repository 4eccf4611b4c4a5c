"""Per-client-IP connection limit for the HTTP API (Nomad ``limits.http_max_conns_per_client``).

(And one hardening of gevent's request parser, :class:`HardenedWSGIHandler`.)

Nomad caps the HTTP connections one client IP may hold open (default 100)
so one misbehaving or malicious client cannot take every slot of the
server: beyond the cap the new connection gets a ``429 Too Many Requests``
and is closed.  Each refusal is counted in :data:`HTTP_LIMIT_STATS` (the
agent exports it as the ``nomad.http.conn_limit_refused`` gauge) and
logged at most once per :data:`REFUSAL_LOG_INTERVAL_S`.
"""

from __future__ import annotations

import logging
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from runtime.edge import monotonic

__all__ = ["HTTP_LIMIT_STATS", "HardenedWSGIHandler", "LimitedWSGIServer"]

log = logging.getLogger("agent.http")

# One HTTP server per agent process: its refusals, for the metrics sampler.
HTTP_LIMIT_STATS = {"refused_conn_limit": 0}
# Refusals are logged at most this often (each is counted): a flood of
# connections must not become a flood of log lines.
REFUSAL_LOG_INTERVAL_S = 10.0
TOO_MANY = b"Your IP is issuing too many concurrent connections, please rate limit your calls\n"
# A refused client gets this long to take the 429 before the socket closes.
REFUSAL_WRITE_TIMEOUT_S = 1.0


class HardenedWSGIHandler(WSGIHandler):
    """pywsgi's handler, minus a traceback on stderr for a malformed HTTP version.

    gevent 26.9's ``_check_http_version`` raises IndexError for a request line
    ending ``HTTP/1`` (one number); pywsgi then answers 400 but prints the
    whole traceback to stderr for anything that is not a ValueError -- so any
    client could write tracebacks into the agent's log at will (found by the
    hostile-traffic soak).  Read as what it is: an invalid version, a 400.
    """

    def _check_http_version(self) -> bool:
        try:
            return bool(super()._check_http_version())
        except (IndexError, ValueError):
            return False


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
