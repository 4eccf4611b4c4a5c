"""The service checks' edge: http and tcp probes over real sockets (see ``actors.client.checks``).

``SocketProber.probe(spec, notify)`` starts one probe in its own greenlet
and returns at once; the greenlet calls ``notify(status, status_code,
output)`` once, when the probe ends.  The agent process is monkey-patched,
so the blocking socket and ``http.client`` calls here yield to the other
greenlets.  Results and outputs follow Nomad's checker
(``client/serviceregistration/checks/client.go``): tcp passes when it
connects ("nomad: tcp ok"); http passes on 200 ("nomad: http ok") or any
other status below 400, whose body is the output, and fails otherwise, the
body (up to 3 KiB) or the error being the output.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from typing import Any

import gevent

from actors.client.checks import FAILURE, OUTPUT_LIMIT, SUCCESS, CheckSpec

_TLS = ssl.create_default_context()  # made once: building one per probe reads the CA bundle each time


def run_probe(spec: CheckSpec) -> tuple[str, int, str]:
    """One probe, blocking up to the check's timeout: (status, HTTP status code or 0, output)."""
    target = f"{spec.address}:{spec.port}"
    if spec.type == "tcp":
        try:
            with socket.create_connection((spec.address, spec.port), timeout=spec.timeout_s):
                pass
        except OSError as e:
            return FAILURE, 0, f"dial tcp {target}: {_why(e)}"
        return SUCCESS, 0, "nomad: tcp ok"
    conn: http.client.HTTPConnection
    if spec.protocol == "https":
        conn = http.client.HTTPSConnection(spec.address, spec.port, timeout=spec.timeout_s,
                                           context=_TLS)
    else:
        conn = http.client.HTTPConnection(spec.address, spec.port, timeout=spec.timeout_s)
    path = spec.path if spec.path.startswith("/") else "/" + spec.path
    url = f"{spec.protocol}://{target}{path}"
    headers: dict[str, Any] = {k: ", ".join(v) for k, v in spec.header}
    try:
        conn.request(spec.method, path, body=spec.body.encode() if spec.body else None, headers=headers)
        resp = conn.getresponse()
        body = resp.read(OUTPUT_LIMIT)
    except (OSError, http.client.HTTPException) as e:
        return FAILURE, 0, f'nomad: {spec.method.capitalize()} "{url}": {_why(e)}'
    finally:
        conn.close()
    if resp.status == 200:
        return SUCCESS, 200, "nomad: http ok"
    return (SUCCESS if resp.status < 400 else FAILURE), resp.status, body.decode("utf-8", "replace")


def _why(e: BaseException) -> str:
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
