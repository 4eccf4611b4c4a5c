"""ClientStats: a client's metrics under Nomad's names (``client/client.go`` ``emitStats``).

Every ``telemetry.collection_interval`` (1 s), once the node is registered:

* always (Nomad ``emitClientMetrics``): ``client.allocated.{cpu,memory,
  max_memory,disk}`` and ``client.unallocated.{cpu,memory,disk}`` -- the
  non-terminal allocations' resources, and the node's fingerprinted
  resources less its reserved ones and those -- and
  ``client.allocations.{pending,running,terminal,blocked,migrating}``;
* with ``telemetry.publish_node_metrics`` (Nomad ``emitHostStats``): the
  host's ``client.host.memory.{total,available,used,free}`` (bytes),
  ``client.host.cpu.{total,user,system,idle}`` per ``cpu`` (percent),
  ``client.host.disk.{size,used,available,used_percent,inodes_percent}`` per
  ``disk`` and ``client.uptime`` (seconds), read by an injected sampler
  (the process's edge; none in the simulator);
* with ``telemetry.publish_allocation_metrics`` (Nomad's task runner stats
  hook), per running task labelled ``alloc_id``, ``job``, ``namespace``,
  ``task_group`` and ``task``: ``client.allocs.memory.{rss,usage}`` (bytes,
  as its driver measures the task's processes), ``client.allocs.memory.allocated``
  (bytes), ``client.allocs.cpu.total_percent`` and ``client.allocs.cpu.allocated``
  (MHz).

Labels as Nomad's: ``node_id``, ``datacenter``, ``node_class`` (``none``
when unset), ``node_pool``, ``node_status`` and
``node_scheduling_eligibility`` (``ready`` and ``eligible``: what the
client itself knows of its node).  What it needs it is told, never asks:
the fingerprint (it subscribes to the fingerprinter), the registration (it
is one of the client node's listeners) and the allocations' totals (it asks
the alloc runner each interval with a message and emits on the answer).
Network bandwidth gauges are not emitted: this agent does not allocate
bandwidth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from actors.client.alloc_runner import AllocTotals, AllocTotalsQuery
from actors.client.alloc_sync import NodeRegistered
from actors.client.fingerprint import FingerprintChanged, SubscribeFingerprint
from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.client")

# (key under the service prefix, value, labels added to the node's) per figure.
HostSample = tuple[tuple[str, ...], float, tuple[tuple[str, str], ...]]
HostSampler = Callable[[], Iterable[HostSample]]


class ClientStats(NodeActor):
    def __init__(self, env: Env, name: str, *, metrics: Any, datacenter: str,
                 node_class: str = "", node_pool: str = "default", interval_s: float = 1.0,
                 host_sampler: HostSampler | None = None, allocation_metrics: bool = False,
                 fingerprinter: str = "fingerprint", alloc_runner: str = "alloc-runner") -> None:
        super().__init__(env, name)
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.metrics = metrics
        # Learnt from the client node's NodeRegistered; nothing is emitted before
        # (a -dev node's ID is made at start and is nowhere else to be read).
        self.node_id = ""
        self.datacenter = datacenter
        self.node_class = node_class or "none"  # Nomad emits "none" for an empty class
        self.node_pool = node_pool
        self.interval_s = interval_s  # telemetry.collection_interval
        self.host_sampler = host_sampler  # publish_node_metrics: the host's figures come from it
        self.allocation_metrics = allocation_metrics  # publish_allocation_metrics
        self.fingerprinter = fingerprinter
        self.alloc_runner = alloc_runner
        self.status = "initializing"  # the node's, until it is registered
        self.fingerprint: Any = None
        self.host_errors = 0

    def on_start(self) -> None:
        self.send(self.env.node, self.fingerprinter, SubscribeFingerprint(self.name))
        self.set_timer("collect", 0.0)  # at once, then every interval (Nomad: NewTimer(0))

    def labels(self) -> tuple[tuple[str, str], ...]:
        return (("node_id", self.node_id), ("datacenter", self.datacenter), ("node_class", self.node_class),
                ("node_pool", self.node_pool), ("node_status", self.status),
                ("node_scheduling_eligibility", "eligible"))

    def receive(self, message: Any) -> Any:
        if isinstance(message, AllocTotals):
            self._emit_client(message)
        elif isinstance(message, FingerprintChanged):
            self.fingerprint = message.fingerprint
        elif isinstance(message, NodeRegistered):
            first = not self.node_id
            self.node_id, self.status = message.node_id, "ready"
            if first:
                self.on_timer("collect")  # the first figures now, not an interval later
        return None

    def on_timer(self, name: str) -> None:
        if name != "collect":
            return
        self.set_timer("collect", self.interval_s)
        if not self.node_id:
            return
        if self.host_sampler is not None:
            self._emit_host()
        query = AllocTotalsQuery(self.name, tasks=self.allocation_metrics)
        self.send(self.env.node, self.alloc_runner, query)

    def _emit_host(self) -> None:
        try:
            samples = list(self.host_sampler())  # type: ignore[misc]
        except Exception as exc:  # Nomad: "error fetching host resource usage stats", and goes on
            self.host_errors += 1
            log.warning("error fetching host resource usage stats: %s", exc)
            return
        base, m = self.labels(), self.metrics
        for key, value, extra in samples:
            m.set_gauge(("client", *key), value, base + extra)

    def _emit_client(self, t: AllocTotals) -> None:
        m, labels = self.metrics, self.labels()
        for key, value in (("cpu", t.cpu_mhz), ("memory", t.memory_mb), ("max_memory", t.memory_max_mb),
                           ("disk", t.disk_mb)):
            m.set_gauge(("client", "allocated", key), value, labels)
        fp = self.fingerprint
        if fp is not None:
            total, res = fp.resources, fp.reserved
            for key, value in (("cpu", total.cpu_mhz - res.cpu_mhz - t.cpu_mhz),
                               ("memory", total.memory_mb - res.memory_mb - t.memory_mb),
                               ("disk", total.disk_mb - res.disk_mb - t.disk_mb)):
                m.set_gauge(("client", "unallocated", key), value, labels)
        for key, value in (("migrating", 0), ("blocked", 0), ("pending", t.pending), ("running", t.running),
                           ("terminal", t.terminal)):
            m.set_gauge(("client", "allocations", key), value, labels)
        for alloc_id, job, namespace, group, task, rss, cpu, mem_mb, cpu_mhz in t.tasks:
            tl = (("alloc_id", alloc_id), ("job", job), ("namespace", namespace), ("task_group", group),
                  ("task", task))
            m.set_gauge(("client", "allocs", "memory", "rss"), rss, tl)
            m.set_gauge(("client", "allocs", "memory", "usage"), rss, tl)
            m.set_gauge(("client", "allocs", "memory", "allocated"), mem_mb << 20, tl)
            m.set_gauge(("client", "allocs", "cpu", "total_percent"), cpu, tl)
            m.set_gauge(("client", "allocs", "cpu", "allocated"), cpu_mhz, tl)
