"""The host's figures for ``telemetry.publish_node_metrics``, as gauges (an edge: psutil and the OS).

One collector serves both, as Nomad's ``hostStatsCollector`` does: the
numbers are those of ``GET /v1/client/stats``
(:func:`actors.http_client_host.host_stats`), so CPU percentages cover the
time since whichever of the two read last.  The
:class:`~actors.client.stats.ClientStats` actor calls a
:class:`HostStatsSampler` once per collection interval and names the figures.
"""

from __future__ import annotations

from actors.client.stats import HostSample


class HostStatsSampler:
    """One call: this host's memory, uptime, per-CPU and per-disk figures as ``(key, value, labels)``."""

    def __init__(self, alloc_root: str) -> None:
        self.alloc_root = alloc_root

    def __call__(self) -> list[HostSample]:
        from actors.http_client_host import host_stats

        s = host_stats(self.alloc_root)
        out: list[HostSample] = [(("host", "memory", k.lower()), float(v), ())
                                 for k, v in s["Memory"].items()]
        out.append((("uptime",), float(s["Uptime"]), ()))
        for c in s["CPU"]:
            labels = (("cpu", c["CPU"]),)
            out += [(("host", "cpu", k.lower()), float(c[k]), labels)
                    for k in ("Total", "User", "System", "Idle")]
        for d in s["DiskStats"]:
            labels = (("disk", d["Device"]),)
            out += [(("host", "disk", key), float(d[k]), labels)
                    for key, k in (("size", "Size"), ("used", "Used"), ("available", "Available"),
                                   ("used_percent", "UsedPercent"), ("inodes_percent", "InodesUsedPercent"))]
        return out
