"""The service checks' edge: http and tcp probes over real sockets (see ``actors.client.checks``).

``SocketProber.probe(spec, notify)`` starts one probe in its own greenlet
and returns at once; the greenlet calls ``notify(status, status_code,
output)`` once, when the probe ends.  The agent process is monkey-patched,
so the blocking socket and ``http.client`` calls here yield to the other
greenlets.  Results and outputs follow Nomad's checker
(``client/serviceregistration/checks/client.go``): tcp passes when it
connects ("nomad: tcp ok"); http follows redirects as Go's client does (up
to 10), then passes on 200 ("nomad: http ok") or any other status below
400, whose body is the output, and fails otherwise, the body (up to 3 KiB)
or the error being the output.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from typing import Any

import gevent

from actors.client.checks import FAILURE, OUTPUT_LIMIT, SUCCESS, CheckSpec


@functools.cache
def _tls(verify: bool) -> ssl.SSLContext:
    """The probes' TLS context, made on the first https probe and kept: building one reads the CA bundle
    (~30 ms, which every agent's start paid when both were made on import).  Not *verify*: a check's
    tls_skip_verify (Nomad's InsecureSkipVerify)."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dial(host: str, port: int, timeout_s: float) -> str:
    """Open and close a TCP connection to *host*:*port* within *timeout_s*: "" if it was taken, else why
    not (Go's wording)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except OSError as e:
        return net_error_text(e)


def run_probe(spec: CheckSpec) -> tuple[str, int, str]:
    """One probe, blocking up to the check's timeout: (status, HTTP status code or 0, output)."""
    target = f"{spec.address}:{spec.port}"
    if spec.type == "tcp":
        why = dial(spec.address, spec.port, spec.timeout_s)
        if why:
            return FAILURE, 0, f"dial tcp {target}: {why}"
        return SUCCESS, 0, "nomad: tcp ok"
    path = spec.path if spec.path.startswith("/") else "/" + spec.path
    url = f"{spec.protocol}://{target}{path}"
    headers: dict[str, Any] = {k: ", ".join(v) for k, v in spec.header}
    method, payload = spec.method, spec.body.encode() if spec.body else None
    for _ in range(MAX_REDIRECTS + 1):
        try:
            status, location, body = _http(url, method, payload, headers, spec.timeout_s,
                                           tls=_tls(not spec.tls_skip_verify))
        except (OSError, http.client.HTTPException, ValueError) as e:
            return FAILURE, 0, f'nomad: {method.capitalize()} "{url}": {net_error_text(e)}'
        if status in _REDIRECTS and location:
            # Followed as Go's http.Client does: 301/302/303 go on as GET without the body
            # (unless HEAD), 307/308 keep the method and body.
            url = urllib.parse.urljoin(url, location)
            if status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, payload = "GET", None
            continue
        if status == 200:
            return SUCCESS, 200, "nomad: http ok"
        return (SUCCESS if status < 400 else FAILURE), status, body.decode("utf-8", "replace")
    return FAILURE, 0, f'nomad: {method.capitalize()} "{url}": stopped after {MAX_REDIRECTS} redirects'


# Go's http.Client follows at most 10 redirects.
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)


def _http(url: str, method: str, payload: bytes | None, headers: dict[str, Any],
          timeout_s: float, tls: ssl.SSLContext | None = None) -> tuple[int, str, bytes]:
    """One request: (status, Location header, up to OUTPUT_LIMIT bytes of the body)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    conn: http.client.HTTPConnection
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout_s,
                                           context=tls if tls is not None else _tls(True))
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout_s)
    try:
        conn.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), body=payload,
                     headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location") or "", resp.read(OUTPUT_LIMIT)
    finally:
        conn.close()


def net_error_text(e: BaseException) -> str:
    """A network error as Go's net package words it (what Nomad's messages quote)."""
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "i/o timeout"
    if isinstance(e, ConnectionRefusedError):
        return "connect: connection refused"
    return str(e) or type(e).__name__


class SocketProber:
    """Runs each probe in a greenlet of its own (the agent's prober)."""

    def probe(self, spec: CheckSpec, notify: Callable[[str, int, str], None]) -> None:
        gevent.spawn(self._run, spec, notify)

    @staticmethod
    def _run(spec: CheckSpec, notify: Callable[[str, int, str], None]) -> None:
        # The socket timeouts bound each step; this bounds the whole probe (a server that
        # trickles its answer), so no probe outlives its timeout and none pile up.
        try:
            with gevent.Timeout(spec.timeout_s, TimeoutError("i/o timeout")):
                result = run_probe(spec)
        except TimeoutError:
            result = (FAILURE, 0, f"nomad: {spec.type} check of {spec.address}:{spec.port}: i/o timeout")
        except Exception as e:  # a probe never takes the prober down: it is a failed check
            result = (FAILURE, 0, f"nomad: {e}")
        notify(*result)
