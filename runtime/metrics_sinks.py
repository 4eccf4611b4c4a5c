"""Metrics sinks beside the in-memory one: ``telemetry.statsd_address`` and ``datadog_address``.

go-metrics' ``StatsdSink`` and ``DogStatsdSink`` as Nomad configures them:
every update becomes one line, buffered and sent over UDP every
:data:`FLUSH_INTERVAL_S` in packets of at most :data:`MAX_PACKET_BYTES`.

* statsd: ``<key>:<value>|g`` (gauge), ``|c`` (counter), ``|ms`` (sample);
  the key is the metric's name followed by each label's value, dotted, with
  ``:`` and spaces made ``_`` (go-metrics ``flattenKeyLabels``);
* DogStatsD: the same, with labels as tags, ``|#name:value,...``, after the
  configured ``datadog_tags``.

An edge: its socket and greenlet are the process's; nothing here blocks
(UDP sends do not), and a send that fails is counted and dropped, as a lost
datagram would be -- metrics must never stall the agent.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

# go-metrics flushes its statsd buffer every 100 ms...
FLUSH_INTERVAL_S = 0.1
# ...in datagrams that stay under a typical path MTU (go-metrics statsdMaxLen).
MAX_PACKET_BYTES = 1400
# Lines held between flushes at most; past it the oldest are dropped (and
# counted): a sink that cannot keep up must not grow the agent's memory.
MAX_BUFFERED_LINES = 100_000

_KINDS = {"gauge": "g", "counter": "c", "sample": "ms"}


def _clean(text: str) -> str:
    return text.replace(":", "_").replace(" ", "_")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:f}"


class StatsdSink:
    """Lines for a statsd (or, with *dogstatsd*, a DogStatsD) server at *address* (``host:port``)."""

    def __init__(self, address: str, *, dogstatsd: bool = False, tags: Sequence[str] = ()) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"want host:port, got {address!r}")
        self.address = (host, int(port))
        self.dogstatsd = dogstatsd
        self.tags = tuple(tags)
        self.lines: list[str] = []
        self.dropped = 0
        self.send_errors = 0
        self._sock: Any = None
        self._greenlet: Any = None

    # ------------------------------------------------------------ what Metrics calls
    def emit(self, kind: str, name: str, value: float, labels: Sequence[tuple[str, str]]) -> None:
        if self.dogstatsd:
            tags = [*self.tags, *(f"{_clean(k)}:{_clean(v)}" for k, v in labels)]
            line = f"{_clean(name)}:{_number(value)}|{_KINDS[kind]}" + ("|#" + ",".join(tags) if tags else "")
        else:
            key = ".".join([name, *(v for _, v in labels)])
            line = f"{_clean(key)}:{_number(value)}|{_KINDS[kind]}"
        self.lines.append(line)
        if len(self.lines) > MAX_BUFFERED_LINES:
            del self.lines[:len(self.lines) - MAX_BUFFERED_LINES]
            self.dropped += 1

    # ------------------------------------------------------------ sending
    def packets(self) -> list[bytes]:
        """Take the buffered lines as datagrams of at most MAX_PACKET_BYTES (a longer line goes alone)."""
        lines, self.lines = self.lines, []
        out: list[bytes] = []
        current = b""
        for line in lines:
            data = line.encode() + b"\n"
            if current and len(current) + len(data) > MAX_PACKET_BYTES:
                out.append(current)
                current = b""
            current += data
        if current:
            out.append(current)
        return out

    def flush(self) -> None:
        for packet in self.packets():
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET,
                                               socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(packet, self.address)
            except OSError:  # unresolvable, unreachable, buffer full: the datagram is lost
                self.send_errors += 1

    def start(self) -> None:
        """Flush every FLUSH_INTERVAL_S in a greenlet of the process's hub."""
        import gevent

        def run() -> None:
            while True:
                gevent.sleep(FLUSH_INTERVAL_S)
                self.flush()

        self._greenlet = gevent.spawn(run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self.flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
