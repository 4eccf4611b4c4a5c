"""The scheduler: one evaluation in, one plan out -- a pure function of the state.

Nomad's generic (service, batch) and system schedulers, kept to what this
project models (``nomad/scheduler/generic_sched.go``, ``reconcile.go``,
``system_sched.go``, ``rank.go``):

* **Reconcile** each task group: allocations the server still wants running
  are kept, or stopped and replaced when their node is down or gone (the
  allocation is marked ``lost``), when they failed, when the drainer marked
  them for migration, or when the job changed what they run; extra ones are
  stopped and missing ones placed.  Batch allocations that completed count as
  done; service ones are replaced.  A stopped (or deleted) job stops all.
* **Feasibility**: a node is a candidate when it is ``ready``, eligible and
  not draining, in one of the job's datacenters and its node pool, has every
  task's driver, and satisfies the job, group and task constraints.
* **Ranking** (bin-packing, or spreading when the scheduler configuration
  says ``spread``): nodes are visited in an order shuffled by the
  evaluation's ID (Nomad's random iterator, so evaluations spread their
  load), the first ``limit`` candidates with room (CPU, memory, and the
  group's ephemeral disk against the node's disk less reserved: Nomad's
  "cpu", "memory" and "disk" dimensions; what the plan stops frees its room)
  are scored, and the best wins.  A node's score is, as Nomad's score
  normalization, the mean of the scores that apply: ``ScoreFitBinPack``, the
  job anti-affinity penalty (with allocations of the group there), the
  reschedule penalty (a node it failed on), the affinity score (matching
  weights over all weights) and the spread boost (towards each value's
  target share, or towards the least-used value).  ``limit`` is Nomad's
  generic stack's: ``max(2, ceil(log2(n)))`` for a service job (n: the ready nodes in its
  datacenters and node pool), 2 for a
  batch job, and for a group with ``affinity`` or ``spread`` blocks the
  scheduler configuration's ``NodeLimitForFeasibilityChecks`` (100 unless
  set; the group's count when that is more).  As Nomad's LimitIterator, up
  to 3 candidates scoring 0 or less are passed over without counting while
  others remain.
* **Metrics**: every placement keeps Nomad's AllocMetric on its
  allocation (``Metrics``): the nodes its selection evaluated, filtered and
  found exhausted, the ready nodes of the job's pool and datacenters, and
  the scores of the best 5 nodes scored (Nomad's MaxRetainedNodeScores),
  kept compact in the Raft entry (:func:`stored_metric`) and answered in
  Nomad's shape by the API (:func:`metric_out`).
  A group that cannot be placed reports (``FailedTGAllocs``) the metrics of
  its first placement that failed, the others as ``CoalescedFailures``
  (Nomad's generic scheduler; a system or sysbatch group's sums its nodes'),
  over the nodes of its datacenters and pool only.
* **Sticky disks**: the replacement of an allocation whose group's
  ``ephemeral_disk`` is sticky or migrates tries the previous allocation's
  node first (Nomad's findPreferredNode), and goes elsewhere if it cannot.
* **System jobs** place one allocation of each group on every feasible node.
* **Sysbatch jobs** run each group's allocations once, to completion, on every
  feasible node: a finished one is not run again there unless a new version
  changes what it runs (:func:`_sysbatch_group`).

The plan is only a proposal: the state machine applies it through Raft and
refuses any placement that no longer fits (another worker's plan may have
used the room meanwhile), so nodes are never over-committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import operator
import uuid
from random import Random
from typing import Any

from actors.scheduler import disconnect as disc
from actors.scheduler import preemption
from actors.scheduler.job import (
    RESCHEDULE_DEFAULTS,
    constraint_ok,
    ephemeral_disk,
    group_disk_mb,
    group_memory_max,
    group_resources,
    host_volumes_ok,
    resolve_target,
    task_memory_max,
    update_digest,
)
from actors.state import scheduler_config as sched_cfg
from actors.state.namespaces import job_key_of, key_of

TERMINAL_CLIENT = ("complete", "failed", "lost")
ALLOC_NS = uuid.UUID("5a1c0c8e-1d7e-4f55-9e37-6c2b8d7e0a11")
_ALLOC_NS_BYTES = ALLOC_NS.bytes

# A stopped job's allocations: Nomad has no description of its own for them (filterAndStopAll marks them
# StatusAllocNotNeeded, as any allocation a job update no longer needs).
STOP_JOB = "alloc not needed due to job update"
STOP_LOST = "alloc is lost since its node is down"
STOP_MIGRATE = "alloc is being migrated"
# A system or sysbatch allocation marked to migrate (drain, alloc stop): Nomad's StatusAllocNodeTainted.
STOP_NODE_TAINTED = "alloc not needed as node is tainted"
STOP_UPDATE = "alloc is being updated due to job update"
STOP_EXTRA = "alloc not needed due to job update"
STOP_FAILED = "alloc was rescheduled because it failed"
STOP_CANARY = "alloc not needed as it was a canary of an unpromoted deployment"
# Failed allocations due to be rescheduled within this long of each other share one follow-up
# evaluation (Nomad's batchedFailedAllocWindowSize).
RESCHEDULE_WINDOW_S = 5.0
# A failed allocation due to be rescheduled within this long is rescheduled now, by the evaluation at
# hand (Nomad's rescheduleWindowSize, 1 s): a 5 s delay (the batch default) is waited out, not skipped.
RESCHEDULE_NOW_WINDOW_S = 1.0
# An unlimited reschedule policy's tracker keeps the last this many reschedules (Nomad's
# maxPastRescheduleEvents); a limited one keeps those within its interval.
RESCHEDULE_EVENTS_KEPT = 5


def reschedule_policy(job: dict[str, Any], group: dict[str, Any]) -> dict[str, Any] | None:
    """The group's ReschedulePolicy (a job stored before policies were kept: its type's default)."""
    if job.get("Type") == "system":
        return None
    rp = group.get("ReschedulePolicy")
    return rp if isinstance(rp, dict) else RESCHEDULE_DEFAULTS.get(job.get("Type", "service"))


def _of_failed_deployment(a: dict[str, Any], deployment: dict[str, Any] | None) -> bool:
    """Nomad's partOfFailedDeployment: *a* belongs to the job's current deployment, which failed; a
    placement that would reschedule it is not made, not even a forced one (placeAllocs)."""
    return deployment is not None and deployment["Status"] == "failed" \
        and a.get("DeploymentID") == deployment["ID"]


def _events(a: dict[str, Any]) -> list[dict[str, Any]]:
    tracker = a.get("RescheduleTracker")
    events = tracker.get("Events") if isinstance(tracker, dict) else None
    return events if isinstance(events, list) else []


def fail_time(a: dict[str, Any]) -> float:
    """Nomad's Allocation.LastEventTime, in seconds: when its last task finished (else when it was last
    written)."""
    latest = 0.0
    for st in (a.get("TaskStates") or {}).values():
        t = st.get("FinishedAt") if isinstance(st, dict) else None
        if isinstance(t, str) and t:
            try:
                latest = max(latest, dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())
            except ValueError:
                continue
    return latest or float(a.get("ModifyTime", 0.0))


def next_delay_ns(rp: dict[str, Any], a: dict[str, Any]) -> int:
    """Nomad's Allocation.NextDelay: the wait before *a* (failed) is rescheduled, by the delay function."""
    delay, events = int(rp.get("Delay", 0)), _events(a)
    if not events:
        return delay
    fn, max_delay = rp.get("DelayFunction"), int(rp.get("MaxDelay", 0))
    if fn == "exponential":
        delay = int(events[-1].get("Delay", 0)) * 2
    elif fn == "fibonacci":
        if len(events) >= 2:
            n1, n2 = int(events[-1].get("Delay", 0)), int(events[-2].get("Delay", 0))
            # A series that reached the ceiling and was reset starts again.
            delay = n1 if (n2 == max_delay and n1 == int(rp.get("Delay", 0))) else n1 + n2
    else:
        return delay
    if 0 < max_delay < delay:
        delay = max_delay
        # Long enough since the last reschedule (more than the ceiling): the series starts again.
        if fail_time(a) * 1e9 - int(events[-1].get("RescheduleTime", 0)) > delay:
            delay = int(rp.get("Delay", 0))
    return delay


def next_reschedule(rp: dict[str, Any] | None, a: dict[str, Any],
                    stopped_batch: bool = False) -> tuple[float, int] | None:
    """Nomad's Allocation.NextRescheduleTime: (when, seconds, and the delay, ns) *a* may be rescheduled, or
    None when its policy allows no more (attempts used up within the interval).  *stopped_batch*: a
    batch allocation an operator stopped to have it rescheduled (Nomad's isRescheduledBatch), which
    need not have failed."""
    if rp is None or a.get("DesiredStatus") != "run" or (a.get("ClientStatus") != "failed"
                                                          and not stopped_batch):
        return None
    failed_at, delay, events = fail_time(a), next_delay_ns(rp, a), _events(a)
    attempts, interval = int(rp.get("Attempts", 0)), int(rp.get("Interval", 0))
    eligible = bool(rp.get("Unlimited")) or (attempts > 0 and not events)
    if attempts > 0 and events:
        tried = sum(1 for e in events if failed_at * 1e9 - int(e.get("RescheduleTime", 0)) < interval)
        eligible = tried < attempts and delay < interval
    return (failed_at + delay / 1e9, delay) if eligible else None


def _tracker(rp: dict[str, Any], prev: dict[str, Any], now: float, delay: int) -> dict[str, Any]:
    """Nomad's updateRescheduleTracker: the replacement's record of the reschedules that led to it."""
    events = _events(prev)
    if int(rp.get("Attempts", 0)) > 0:
        interval = int(rp.get("Interval", 0))
        events = [e for e in events
                  if interval > 0 and now * 1e9 - int(e.get("RescheduleTime", 0)) <= interval]
    else:
        events = events[-RESCHEDULE_EVENTS_KEPT:]
    return {"Events": [*events, {"RescheduleTime": int(now * 1e9), "PrevAllocID": prev["ID"],
                                 "PrevNodeID": prev.get("NodeID", ""), "Delay": delay}]}


def alloc_id(eval_id: str, name: str, n: int) -> str:
    """Deterministic: every server computes the same plan for the same eval and state.

    Unique across clusters through *eval_id*: the state derives evaluation IDs within
    the cluster's ID (StateStore._eval_id), and the plan carries the IDs made here."""
    # uuid.uuid5's, without building a UUID object (a plan makes thousands): the name's SHA-1 within
    # the namespace, its version and variant bits set, in the 8-4-4-4-12 form.
    h = bytearray(hashlib.sha1(_ALLOC_NS_BYTES + f"{eval_id}/{name}/{n}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def node_ready(node: dict[str, Any]) -> bool:
    """Nomad ``Node.Ready()``: status ready, eligible, not draining."""
    return (node.get("Status") == "ready" and node.get("SchedulingEligibility", "eligible") == "eligible"
            and not node.get("DrainStrategy"))


def node_capacity(node: dict[str, Any]) -> tuple[int, int, int]:
    """(CPU MHz, memory MB, disk MB) the node offers: its NodeResources less its ReservedResources
    (the disk is the storage fingerprint's free space less client.reserved.disk)."""
    res, rsv = node.get("NodeResources", {}), node.get("ReservedResources", {})
    cpu = res.get("Cpu", {}).get("CpuShares", 0) - rsv.get("Cpu", {}).get("CpuShares", 0)
    mem = res.get("Memory", {}).get("MemoryMB", 0) - rsv.get("Memory", {}).get("MemoryMB", 0)
    disk = (res.get("Disk") or {}).get("DiskMB", 0) - (rsv.get("Disk") or {}).get("DiskMB", 0)
    return cpu, mem, disk


def alloc_usage(alloc: dict[str, Any]) -> tuple[int, int, int]:
    """(CPU, memory, disk) the allocation holds; one placed before disk was counted holds no disk."""
    r = alloc.get("Resources", {})
    return int(r.get("CPU", 0)), int(r.get("MemoryMB", 0)), int(r.get("DiskMB", 0))


def group_cores(group: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The group's tasks that reserve whole CPU cores (``resources.cores``), in task order, with how many."""
    return tuple((t["Name"], int(t["Resources"]["Cores"])) for t in group["Tasks"]
                 if (t.get("Resources") or {}).get("Cores"))


def node_cores(node: dict[str, Any]) -> tuple[int, int]:
    """(how many cores the node has, each core's MHz): its ``cpu.numcores`` cores, numbered from 0, all
    reservable (no client.reserved cores here), each of ``cpu.frequency`` MHz (else its CPU over its
    cores) -- Nomad's NodeProcessorResources.Topology.UsableCores and each core's MHz."""
    attrs = node.get("Attributes") or {}
    n = str(attrs.get("cpu.numcores", "0"))
    count = int(n) if n.isdecimal() else 0
    mhz = str(attrs.get("cpu.frequency", ""))
    if mhz.isdecimal():
        return count, int(mhz)
    cpu = ((node.get("NodeResources") or {}).get("Cpu") or {}).get("CpuShares", 0)
    return count, (int(cpu) // count if count else 0)


def alloc_cores(alloc: dict[str, Any]) -> list[int]:
    """The cores the allocation's tasks reserve (none for one placed without cores: no ``TaskCores``)."""
    held = alloc.get("TaskCores")
    return [c for t in held.values() for c in t["ReservedCores"]] if held else []


def pick_cores(wanted: tuple[tuple[str, int], ...], count: int, mhz: int,
               held: set[int]) -> tuple[dict[str, dict[str, Any]], int] | None:
    """Nomad's SELECTCORES with the CE coreSelector: each task in turn takes the lowest-numbered of the
    node's *count* cores that neither live allocations (*held*) nor the group's earlier tasks reserve,
    its CpuShares the sum of its cores' MHz.  (The tasks' reservations, the MHz they add to the
    allocation's CPU), or None when the node has fewer free cores than asked (exhausted: "cores")."""
    free = [c for c in range(count) if c not in held]
    if sum(n for _, n in wanted) > len(free):
        return None
    out, at = {}, 0
    for name, n in wanted:
        out[name] = {"ReservedCores": free[at:at + n], "CpuShares": n * mhz}
        at += n
    return out, at * mhz


# Nomad's ComparableResources.Superset names the first dimension a node lacks, in this order.
DIMENSIONS = ("cpu", "memory", "disk")


def exhausted(cap: tuple[int, ...], after: tuple[int, ...]) -> str | None:
    """The dimension (Nomad's name) in which *after* exceeds *cap*, or None when it fits."""
    for dim, have, want in zip(DIMENSIONS, cap, after, strict=False):
        if want > have:
            return dim
    return None


# Nomad's AllocsFit: a node with NodeMaxAllocs (client.node_max_allocs) set takes no more live
# allocations than that, whatever room it has; checked before its resources.
MAX_ALLOCS_EXCEEDED = "max allocation exceeded"


def max_allocs_exceeded(node: dict[str, Any] | None, proposed: int) -> bool:
    """Nomad's AllocsFit count check: *proposed* live allocations are more than the node's NodeMaxAllocs
    (0 or absent: no limit)."""
    limit = int((node or {}).get("NodeMaxAllocs") or 0)
    return limit > 0 and proposed > limit


def _max_allocs_full(usage: _Usage, node_id: str, node: dict[str, Any], metrics: dict[str, Any]) -> bool:
    """One more allocation would exceed the node's NodeMaxAllocs: counted in *metrics* as Nomad's
    ExhaustedNode with the dimension "max allocation exceeded"."""
    if not node.get("NodeMaxAllocs") or not max_allocs_exceeded(node, usage.allocs(node_id) + 1):
        return False
    _exhaust(metrics, node, MAX_ALLOCS_EXCEEDED)
    return True


def _exhaust(metrics: dict[str, Any], node: dict[str, Any], dim: str) -> None:
    """Nomad's AllocMetric.ExhaustedNode: *node* lacks *dim*."""
    metrics["NodesExhausted"] += 1
    metrics["DimensionExhausted"][dim] = metrics["DimensionExhausted"].get(dim, 0) + 1
    if node.get("NodeClass"):
        _class_count(metrics, "ClassExhausted", node)


def live(alloc: dict[str, Any]) -> bool:
    """Holds resources: neither server- nor client-terminal (Nomad TerminalStatus)."""
    return alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") not in TERMINAL_CLIENT


def node_usage(allocs: dict[str, Any]) -> dict[str, list[int]]:
    used: dict[str, list[int]] = {}
    for a in allocs.values():
        if live(a):
            u = used.setdefault(a["NodeID"], [0, 0, 0])
            for i, v in enumerate(alloc_usage(a)):
                u[i] += v
    return used


def fit_score(cap: tuple[int, ...], used: tuple[int, ...], spread: bool = False) -> float:
    """Nomad ScoreFitBinPack, normalised to 0..1: fuller nodes score higher.

    *spread* (the scheduler configuration's ``spread`` algorithm): Nomad's
    ScoreFitSpread, its mirror image -- emptier nodes score higher.
    """
    if cap[0] <= 0 or cap[1] <= 0:
        return 0.0
    free_cpu = max(0.0, 1.0 - used[0] / cap[0])
    free_mem = max(0.0, 1.0 - used[1] / cap[1])
    total = 10 ** free_cpu + 10 ** free_mem
    return max(0.0, min(18.0, (total - 2.0) if spread else (20.0 - total))) / 18.0


# Nomad's client min_dynamic_port / max_dynamic_port defaults: the range a
# group's dynamic ports are picked from, on every node.
DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX = 20000, 32000
# Nomad's LimitIterator (scheduler/feasible/stack.go): while more nodes remain, up to MAX_SKIP options
# scoring SKIP_SCORE_THRESHOLD or less (a node penalised for this job's allocations there, or for a
# failure) are passed over without counting towards the limit, and come back only if the nodes run out.
SKIP_SCORE_THRESHOLD = 0.0
MAX_SKIP = 3
DISTINCT_GROUP, DISTINCT_JOB = 1, 2  # _Placer._distinct: whose allocations may not share a node
# An allocation's Metrics keeps the scores of this many of the best nodes scored for it (Nomad's
# MaxRetainedNodeScores): every allocation carries them through Raft, so not all of them.
TOP_SCORES_KEPT = 5
# A stored score row: the node, then its scores by Nomad's scorer names (a zero one as 0), then the
# final (normalized) score; allocation-spread, as in Nomad, only shown when not 0.
SCORE_ROW = ("binpack", "job-anti-affinity", "node-reschedule-penalty", "node-affinity", "allocation-spread")
SCORERS_SHOWN_WHEN_ZERO = 4


_BY_SCORE = operator.itemgetter(-1)  # a scored tuple: (node, *SCORE_ROW scores, final), or (node, binpack)
_GENERIC, _SYSTEM = "generic", "system"  # a stored metric's kind: which scorers its rows have
_ROW_WIDTHS = {_GENERIC: len(SCORE_ROW) + 2, _SYSTEM: 3}


def stored_metric(kind: str, evaluated: int, filtered: int, exhausted: int, in_pool: int, pool: str,
                  available: dict[str, int], maps: dict[str, Any] | None, rows: list[Any]) -> list[Any]:
    """A placement's AllocMetric as the allocation keeps it (``Metrics``): one flat list -- *kind*
    (_GENERIC: score rows of SCORE_ROW; _SYSTEM: of the bin-packing score alone), NodesEvaluated,
    NodesFiltered, NodesExhausted, NodesInPool, NodePool, NodesAvailable, the counts by reason or
    class and the AllocationTime when timed (or None), then the best nodes' rows flat, each (node,
    *scores, final score), a zero score as the integer 0.  Every allocation carries it through Raft:
    a list of plain values is a third of the bytes of Nomad's keyed shape and one object to decode;
    metric_out() makes it Nomad's."""
    return [kind, evaluated, filtered, exhausted, in_pool, pool, available, maps, *rows]


def metric_out(stored: Any) -> Any:
    """Nomad's AllocMetric (its keys this agent counts) from an allocation's stored ``Metrics``
    (stored_metric); anything else as it is."""
    if not isinstance(stored, (list, tuple)) or len(stored) < 8 or stored[0] not in _ROW_WIDTHS:
        return stored
    kind, evaluated, filtered, exhausted, in_pool, pool, available, maps = stored[:8]
    out: dict[str, Any] = {"NodesEvaluated": evaluated, "NodesFiltered": filtered,
                           "NodesExhausted": exhausted, "NodesInPool": in_pool, "NodePool": pool,
                           "NodesAvailable": dict(available or {})}
    for key, counts in (maps or {}).items():
        out[key] = dict(counts) if isinstance(counts, dict) else counts  # AllocationTime: nanoseconds
    width, names = _ROW_WIDTHS[kind], SCORE_ROW if kind == _GENERIC else SCORE_ROW[:1]
    meta = []
    for at in range(8, len(stored) - width + 1, width):
        row = stored[at:at + width]
        scores = {name: float(v) for i, (name, v) in enumerate(zip(names, row[1:-1], strict=True))
                  if v or i < SCORERS_SHOWN_WHEN_ZERO}
        meta.append({"NodeID": row[0], "Scores": scores, "NormScore": float(row[-1])})
    out["ScoreMetaData"] = meta
    return out


PORT_COLLISION = "network: reserved port collision"
PORTS_EXHAUSTED = "network: dynamic port selection failed"


def _port_exhausted(metrics: dict[str, Any], node: dict[str, Any], dimension: str) -> None:
    """Nomad's AllocMetric.ExhaustedNode for a port that does not fit: the node, its class and the
    dimension (``network: <AssignPorts error>``)."""
    metrics["NodesExhausted"] += 1
    metrics["DimensionExhausted"][dimension] = metrics["DimensionExhausted"].get(dimension, 0) + 1
    _class_count(metrics, "ClassExhausted", node)


def group_ports(group: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The group's (static ports, dynamic ports) from its ``network`` block; empty when it has none."""
    nets = group.get("Networks") or ()
    return (nets[0]["ReservedPorts"], nets[0]["DynamicPorts"]) if nets else ([], [])


def alloc_port_values(alloc: dict[str, Any]) -> list[int]:
    return [p["Value"] for p in alloc.get("AllocatedPorts") or ()]


def alloc_port_keys(alloc: dict[str, Any]) -> list[tuple[str, int]]:
    """The (address, port) pairs an allocation holds: as Nomad's NetworkIndex, a port is taken on one
    address of the node, so two host networks of a node may each give out the same port."""
    return [(p.get("HostIP") or "", p["Value"]) for p in alloc.get("AllocatedPorts") or ()]


DEFAULT_HOST_NETWORK = "default"  # Nomad's: the alias of the node's own address


def node_networks(node: dict[str, Any] | None) -> tuple[tuple[str, str, str], ...]:
    """The node's fingerprinted host network addresses (Nomad's NodeResources.NodeNetworks), as
    (alias, address, reserved_ports) in the record's order; empty for a node of an older client."""
    nets = ((node or {}).get("NodeResources") or {}).get("NodeNetworks") or ()
    return tuple((a.get("Alias", ""), a.get("Address", ""), a.get("ReservedPorts") or "")
                 for n in nets for a in n.get("Addresses") or ())


def address_reserved_ports(node: dict[str, Any]) -> dict[str, frozenset[int]]:
    """Address -> the ports its host networks' reserved_ports keep from allocations.  As Nomad's
    NetworkIndex marks them used on the address, they hold for every network sharing it."""
    out: dict[str, frozenset[int]] = {}
    for _, address, reserved in node_networks(node):
        if reserved:
            out[address] = out.get(address, frozenset()) | _parse_ports(reserved)
    return out


def port_addresses(node: dict[str, Any], port: dict[str, Any]) -> list[tuple[str, frozenset[int]]]:
    """The addresses a port may be given on *node*, with the ports host networks reserve there.
    A port of the default network goes on the node's address (``unique.network.ip-address``), as it
    always has; one naming a host network on that network's addresses (Nomad's AssignPorts)."""
    name = port.get("HostNetwork") or DEFAULT_HOST_NETWORK
    if name == DEFAULT_HOST_NETWORK:
        addresses = [(node.get("Attributes") or {}).get("unique.network.ip-address", "")]
    else:
        addresses = list(dict.fromkeys(address for alias, address, _ in node_networks(node) if alias == name))
    held = address_reserved_ports(node) if addresses else {}
    return [(address, held.get(address, frozenset())) for address in addresses]


def missing_host_network(node: dict[str, Any], group: dict[str, Any]) -> str | None:
    """Nomad's NetworkChecker.hasHostNetworks: the reason *node* cannot take *group* -- a port names a
    host network the node does not have -- or None."""
    static, dynamic = group_ports(group)
    aliases: set[str] | None = None
    for p in (*static, *dynamic):
        name = p.get("HostNetwork") or DEFAULT_HOST_NETWORK
        if name == DEFAULT_HOST_NETWORK:
            continue
        if aliases is None:
            aliases = {alias for alias, _, _ in node_networks(node)}
        if name not in aliases:
            return f'missing host network "{name}" for port "{p["Label"]}"'
    return None


def host_networks_feasible(node: dict[str, Any], group: dict[str, Any], metrics: dict[str, Any]) -> bool:
    """The host network check for one node (a node filtered out is counted in *metrics* with Nomad's
    reason).  Outside the feasibility cache: it depends on the group's ports, not its shape."""
    reason = missing_host_network(node, group)
    if reason is None:
        return True
    filter_node(metrics, node, reason)
    return False


def node_reserved_ports(node: dict[str, Any] | None) -> frozenset[int]:
    """The host ports the node's client keeps from allocations (client.reserved.reserved_ports)."""
    networks = ((node or {}).get("ReservedResources") or {}).get("Networks") or {}
    spec = networks.get("ReservedHostPorts") or ""
    return _parse_ports(spec) if spec else frozenset()


@functools.lru_cache(maxsize=256)
def _parse_ports(spec: str) -> frozenset[int]:
    from runtime.config import parse_port_ranges

    try:
        return frozenset(parse_port_ranges(spec))
    except ValueError:
        return frozenset()  # the client validated it; a bad one from elsewhere reserves nothing


# Feasibility results kept per node across evaluations (the store's
# ``feasibility`` dict) hold at most this many job shapes per node record;
# past it the node's entry starts over, so distinct job specs cannot grow it
# without bound.
FEASIBILITY_SHAPES_PER_NODE = 64
# A shape's key with this suffix holds _Placer._fast_entry's result in the same per-node cache (no
# shape ends with it: a shape is a tuple's repr).
_FAST_SUFFIX = "\x00fast"


def feasibility_shape(job: dict[str, Any], group: dict[str, Any]) -> str:
    """Everything of *job* and *group* that ``_Placer._check`` reads, as one string key.

    Groups of one shape are feasible on exactly the same nodes.  A string,
    not the tuple it is made of: a string keeps its hash, where a nested
    tuple is hashed again on every lookup.
    """
    cons = (*job.get("Constraints", ()), *group.get("Constraints", ()),
            *(c for t in group["Tasks"] for c in t.get("Constraints", ())))
    return repr((tuple(job.get("Datacenters", ["*"])), job.get("NodePool", "default"),
                 tuple(t["Driver"] for t in group["Tasks"]),
                 tuple((c.get("LTarget"), c.get("RTarget"), c.get("Operand")) for c in cons)))


# A node's feasibility for a group (_Placer.verdict): it can take the group (FEASIBLE); a driver or
# constraint rules it out (a string: the reason, Nomad's ConstraintFiltered key); or it is not one the
# job may use at all (OUTSIDE: not ready, another datacenter or node pool), which Nomad's stack never
# visits, so a placement's metrics do not count it.
FEASIBLE, OUTSIDE = 1, -1
FILTER_DRIVERS = "missing drivers"  # Nomad's FilterConstraintDrivers
# Nomad's FeasibilityWrapper: a node of a computed class the job or the group was already found
# ineligible on, in this evaluation, is filtered for that without its checks being run again.
FILTER_CLASS_INELIGIBLE = "computed class ineligible"
# Nomad's constraintTargetEscapes: a constraint on a node's unique fields escapes the computed class.
_ESCAPING_TARGETS = ("${unique.", "${node.unique.", "${attr.unique.", "${meta.unique.")


def computed_class(node: dict[str, Any]) -> str:
    """Nomad's Node.ComputeClass: nodes alike in what feasibility checks look at share one -- their
    datacenter, class, node pool, attributes and meta (but the ``unique.`` ones) and devices (vendor,
    type, name and attributes) -- written ``v1:<64-bit hash>`` (not Nomad's hash function: its value)."""
    def plain(kv: Any) -> list[tuple[str, str]]:
        return sorted((str(k), str(v)) for k, v in (kv or {}).items() if not str(k).startswith("unique."))

    devices = sorted(repr((d.get("Vendor", ""), d.get("Type", ""), d.get("Name", ""),
                           plain(d.get("Attributes"))))
                     for d in (node.get("NodeResources") or {}).get("Devices") or ())
    text = repr((node.get("Datacenter", ""), node.get("NodeClass", ""), node.get("NodePool", ""),
                 plain(node.get("Attributes")), plain(node.get("Meta")), devices))
    return f"v1:{int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), 'big')}"


def _escapes(constraints: Any) -> bool:
    return any(str(c.get(side) or "").startswith(_ESCAPING_TARGETS)
               for c in constraints for side in ("LTarget", "RTarget"))


def constraint_key(c: dict[str, Any]) -> str:
    """Nomad's Constraint.String(), its key in ConstraintFiltered: ``${meta.rack} regexp r1``."""
    return f"{c.get('LTarget', '')} {c['Operand']} {c.get('RTarget', '')}"


class _PropertySet:
    """Nomad's propertySet for one ``distinct_property`` constraint: at most ``allowed`` (its RTarget, 1
    when unset) allocations per value of its LTarget -- the job's (a job constraint) or its group's (a
    group constraint) live allocations, less those this plan stops, plus those it places."""

    __slots__ = ("allowed", "attr", "counted", "existing", "group", "placed", "used")

    def __init__(self, c: dict[str, Any], group: str, job_allocs: list[dict[str, Any]],
                 nodes: dict[str, Any]) -> None:
        self.attr = c["LTarget"]
        self.allowed = int(c.get("RTarget") or 1)
        self.group = group  # "" for a job-level constraint: every group's allocations count
        self.existing: dict[str, str] = {}  # live allocation ID -> its node's value
        for a in job_allocs:
            if live(a) and (not group or a["TaskGroup"] == group):
                value = self._value(nodes.get(a["NodeID"]))
                if value is not None:
                    self.existing[a["ID"]] = value
        self.placed: dict[str, int] = {}  # value -> the plan's placements there (counted so far)
        self.counted = 0  # how many of the plan's placements (append-only) are in ``placed``
        self.used: dict[str, int] = {}

    def _value(self, node: dict[str, Any] | None) -> str | None:
        return None if node is None else resolve_target(self.attr, node)

    def refresh(self, plan: dict[str, Any], nodes: dict[str, Any]) -> None:
        """Nomad's PopulateProposed, before each selection: the counts given the plan so far."""
        place = plan["Place"]
        for a in place[self.counted:]:
            if not self.group or a["TaskGroup"] == self.group:
                value = self._value(nodes.get(a["NodeID"]))
                if value is not None:
                    self.placed[value] = self.placed.get(value, 0) + 1
        self.counted = len(place)
        used = dict(self.placed)
        stopped = {st["ID"] for st in plan["Stop"]} if plan["Stop"] and self.existing else ()
        for aid, value in self.existing.items():
            if aid not in stopped:
                used[value] = used.get(value, 0) + 1
        self.used = used

    def reason(self, node: dict[str, Any]) -> str | None:
        """None when *node* may take one more allocation, else Nomad's reason (its ConstraintFiltered
        key): the node lacks the property, or its value is used up."""
        value = self._value(node)
        if value is None:
            return f'missing property "{self.attr}"'
        n = self.used.get(value, 0)
        return None if n < self.allowed else f"distinct_property: {self.attr}={value} used by {n} allocs"


def props_ok(props: tuple[_PropertySet, ...], node: dict[str, Any], m: dict[str, Any]) -> bool:
    """*node* satisfies every distinct_property set; if not, it is filtered with the first one's reason."""
    for ps in props:
        reason = ps.reason(node)
        if reason is not None:
            filter_node(m, node, reason)
            return False
    return True


def filter_node(m: dict[str, Any], node: dict[str, Any], reason: str | None) -> None:
    """Nomad's AllocMetric.FilterNode: NodesFiltered, by node class (ClassFiltered) and by reason."""
    m["NodesFiltered"] += 1
    if node.get("NodeClass"):
        _class_count(m, "ClassFiltered", node)
    if reason:
        cf = m["ConstraintFiltered"]
        cf[reason] = cf.get(reason, 0) + 1


def glob_match(pattern: str, subject: str) -> bool:
    """ryanuber/go-glob's Glob, which Nomad's Node.IsInAnyDC applies to each of a job's datacenters:
    ``*`` matches any run of characters (``dc*``, ``*-west``, ``us-*-1``); nothing else is special."""
    if pattern in ("", subject) or pattern == "*":
        return pattern == subject or pattern == "*"
    parts = pattern.split("*")
    if len(parts) == 1:
        return False
    for i, part in enumerate(parts[:-1]):
        idx = subject.find(part)
        if idx < 0 or (i == 0 and idx != 0):
            return False
        subject = subject[idx + len(part):]
    return pattern.endswith("*") or subject.endswith(parts[-1])


def in_any_dc(node: dict[str, Any], dcs: Any) -> bool:
    """Nomad's Node.IsInAnyDC: the node's datacenter matches one of *dcs*, each a glob pattern."""
    dc = node.get("Datacenter", "")
    return any(glob_match(pattern, dc) for pattern in dcs)


def in_pool(node: dict[str, Any], dcs: Any, pool: str) -> bool:
    """Nomad's readyNodesInDCsAndPool test: ready, in one of *dcs* and in node pool *pool*."""
    return node_ready(node) and in_any_dc(node, dcs) \
        and (pool == "all" or node.get("NodePool", "default") == pool)


def ready_nodes_by_dc(nodes: dict[str, Any], dcs: Any, pool: str) -> tuple[int, dict[str, int]]:
    """(how many nodes are ready in *dcs* and *pool*, and how many of them each datacenter has): Nomad's
    NodesInPool and NodesAvailable."""
    by_dc: dict[str, int] = {}
    for node in nodes.values():
        if in_pool(node, dcs, pool):
            dc = node.get("Datacenter", "")
            by_dc[dc] = by_dc.get(dc, 0) + 1
    return sum(by_dc.values()), dict(sorted(by_dc.items()))


# strconv.ParseBool's false values: distinct_hosts = "<one of these>" turns the constraint off (any
# other value, parsable or not, leaves it on: Nomad's hasDistinctHostsConstraint).
_GO_FALSE = frozenset(("0", "f", "F", "false", "FALSE", "False"))


def _class_count(m: dict[str, Any], key: str, node: dict[str, Any]) -> None:
    """Nomad's ClassFiltered and ClassExhausted: counted per node class, for nodes that have one."""
    cls = node.get("NodeClass")
    if cls:
        counts = m.setdefault(key, {})
        counts[cls] = counts.get(cls, 0) + 1


class _Placer:
    """Node selection for one evaluation: feasibility cache, usage, shuffled cursor."""

    def __init__(self, tables: dict[str, Any], job: dict[str, Any], eval_id: str,
                 usage: _Usage, node_ids: list[str] | None = None,
                 shared_feasible: dict[str, Any] | None = None, ready_by_dc: Any = None) -> None:
        self.nodes = tables["nodes"]
        self.job = job
        self.spread = sched_cfg.algorithm(tables) == sched_cfg.SPREAD
        # Nomad's BinPackIterator: memory_max reaches the allocation only while the scheduler
        # configuration allows memory oversubscription; placement counts memory (MemoryMB) alone.
        self.oversubscribe = sched_cfg.memory_oversubscription(tables)
        self.usage = usage
        # The visiting order is a Fisher-Yates shuffle of the sorted node IDs
        # seeded by the evaluation (every server would shuffle alike), done
        # lazily: a placement stops after ``limit`` candidates, so shuffling
        # all 1,000 nodes up front was three quarters of an evaluation's CPU.
        # The positions swapped so far are kept in a dict over the sorted
        # IDs, not in a copy of them: copying 1,000 IDs per evaluation to
        # visit about ten cost more than the visits.
        self.sorted_ids = node_ids if node_ids is not None else sorted(self.nodes)
        self._swapped: dict[int, str] = {}
        self._rng = Random(eval_id)
        self._shuffled = 0  # positions below it are final (and in _swapped)
        self.cursor = 0
        self._limit: int | None = None  # see limit()
        self.node_limit = sched_cfg.node_limit(tables)
        self._ready_by_dc = ready_by_dc
        self._pool: tuple[int, dict[str, int]] | None = None
        self.last_metric: dict[str, Any] | None = None  # the AllocMetric of select()'s placement
        self._feasible: dict[str, dict[str, int | str]] = {}  # group name -> node ID -> verdict()
        self._caps: dict[str, tuple[int, int, int]] = {}  # node ID -> its capacity (node_capacity)
        self._fast: dict[str, dict[str, Any]] = {}  # group name -> node ID -> _fast_entry()
        self._group_info: dict[str, tuple[Any, ...]] = {}  # group name -> _info()
        # node ID -> (the node record, {feasibility_shape: feasible}): the
        # store's, shared by every evaluation, so the ten-odd nodes each
        # evaluation visits are not checked again for every job of the same
        # shape.  Node records are replaced, never changed in place, so an
        # entry holds while its record is the node's current one.
        self._shared = shared_feasible
        self._shapes: dict[str, str] = {}  # group name -> its feasibility_shape
        self._fast_keys: dict[str, str] = {}  # group name -> its _fast_entry key in the shared cache
        self.job_on_node: dict[str, dict[str, int]] = {}  # group -> node -> allocs of this job there (on())
        self.job_on_node_any: dict[str, int] = {}  # node -> allocs of this job there, of any group
        self._distinct_cache: dict[str, int] = {}  # group name -> _distinct()
        self._pref_cache: dict[str, tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]] = {}
        # (group, attribute) -> value -> allocations, for spreads (_value_counts)
        self._spread_counts: dict[tuple[str, str], dict[str, int]] = {}
        self.clock: Any = None  # the runtime's clock (compute_plan's), to time each selection
        # Nomad's EvalEligibility: the computed classes found ineligible in this evaluation, the job's
        # (key None, shared by its groups) and each group's; a node's class, per node record
        self._ineligible: dict[str | None, set[str]] = {}
        self._classes: dict[str, tuple[dict[str, Any], str]] = {}
        # group name -> (its job's constraint reasons, whether they escape the classes, whether the
        # group's and its tasks' do), for class_reason
        self._class_scopes: dict[str, tuple[frozenset[str], bool, bool]] = {}
        # Nomad's SpreadIterator.lowestSpreadBoost: the lowest boost a target has given any node so far
        # in this evaluation (never above -1), what a value targeted at 0% scores
        self._lowest_spread_boost = -1.0
        self.stopping: set[str] = set()  # allocations the plan stops: their ports are free to take
        # distinct_property: the plan and the job's allocations it counts (set by compute_plan), and
        # each group's property sets (_props)
        self.plan: dict[str, Any] = {"Place": [], "Stop": []}
        self.job_allocs: list[dict[str, Any]] = []
        self._prop_sets: dict[str, tuple[_PropertySet, ...]] = {}
        self.last_ports: list[dict[str, Any]] = []  # the ports select() assigned with its node
        # The job type's PreemptionConfig flag, and the allocations select()'s placement preempts.
        self.preempt_enabled = sched_cfg.preemption_enabled(tables, job.get("Type", "service"))
        self.last_preempted: list[dict[str, Any]] = []
        # The cores a placement's tasks reserve, and the MHz they add (pick_cores), of select()'s node.
        self.last_cores: tuple[dict[str, dict[str, Any]], int] | None = None
        self._cores_of: dict[str, tuple[tuple[str, int], ...]] = {}  # group -> group_cores

    def preemption_for(self, node_id: str, cap: tuple[int, ...],
                       need: tuple[int, int, int]) -> list[dict[str, Any]] | None:
        """The allocations to evict so *need* fits on *node_id* (see preemption.preempt_for_group), or
        None: the node's live allocations of other jobs not yet preempted are the candidates."""
        job = self.job
        ns = job.get("Namespace", "default")
        usage = self.usage
        # Only allocations preemptible by priority at all are candidates (the common case, every job at
        # the default priority, is then no sort and no search).
        ceiling = int(job.get("Priority", 50)) - preemption.PRIORITY_DELTA
        candidates = sorted((a for a in usage.node_allocs(node_id)
                             if live(a) and (preemption.alloc_priority(a) or ceiling + 1) <= ceiling
                             and a["ID"] not in usage.preempted
                             and not (a.get("JobID") == job["ID"] and a.get("Namespace", "default") == ns)),
                            key=operator.itemgetter("ID"))
        if not candidates:
            return None
        used = usage[node_id]
        free = tuple(cap[i] - used[i] for i in range(3))
        counts: dict[tuple[str, str, str], int] = {}
        for e in self.plan.get("Preempt", ()):
            key = (e.get("Namespace", "default"), e["JobID"], e.get("TaskGroup", ""))
            counts[key] = counts.get(key, 0) + 1
        return preemption.preempt_for_group(need, free, candidates, int(job.get("Priority", 50)), counts)

    def port_preemption(self, node_id: str, group: dict[str, Any]) -> list[dict[str, Any]]:
        """The allocations holding the group's static ports on *node_id*, to evict (the reserved-port part
        of Nomad's PreemptForNetwork): none when a port is held by one that may not be preempted (this
        job's, or of a priority too close), as Nomad's filteredReservedPorts.  A holder on any of the
        node's addresses counts."""
        static, _ = group_ports(group)
        if not static:
            return []
        wanted = {p["Value"] for p in static}
        job, usage = self.job, self.usage
        ceiling = int(job.get("Priority", 50)) - preemption.PRIORITY_DELTA
        out = []
        for a in sorted(usage.node_allocs(node_id), key=operator.itemgetter("ID")):
            if not live(a) or a["ID"] in usage.preempted or a["ID"] in self.stopping \
                    or not wanted.intersection(port for _, port in alloc_port_keys(a)):
                continue
            if key_of(a) == job_key_of(job) or (preemption.alloc_priority(a) or ceiling + 1) > ceiling:
                return []
            out.append(a)
        return out

    def preempt_option(self, node_id: str, group: dict[str, Any], need: tuple[int, int, int],
                       cap: tuple[int, ...]) -> tuple[list[dict[str, Any]], tuple[int, ...]] | None:
        """Nomad's BinPackIterator with eviction on a node the placement does not fit as it is: the
        allocations holding its static ports (port_preemption), then those freeing the room it lacks
        (preemption_for); with what the node would hold (its utilisation, the resource evictions still
        in, as Nomad scores it).  None when evicting does not make it fit (ports included).  The usage
        view is left as it was."""
        net = self.port_preemption(node_id, group)
        if net:
            self.evict(node_id, net)
        try:
            used = self.usage[node_id]
            after = tuple(used[i] + need[i] for i in range(3))
            evicts: list[dict[str, Any]] = []
            if exhausted(cap, after) is not None:
                got = self.preemption_for(node_id, cap, need)
                if got is None:
                    return None
                evicts = got
            if not net and not evicts:
                return None  # it fits, and its ports were the trouble: evicting nothing changes that
            if self.info(group)[3]:
                if evicts:
                    self.evict(node_id, evicts)
                ok = self.assign_ports(node_id, self.nodes[node_id], group, None) is not None
                if evicts:
                    self.evict(node_id, evicts, undo=True)
                if not ok:
                    return None
            return net + evicts, after
        finally:
            if net:
                self.evict(node_id, net, undo=True)

    def evict(self, node_id: str, allocs: list[dict[str, Any]], undo: bool = False) -> None:
        """Count *allocs* as preempted in the usage view: their room and ports are free (*undo*: not)."""
        sign = -1 if undo else 1
        u = self.usage[node_id]
        ports = self.usage.ports.get(node_id)
        cores = self.usage.cores.get(node_id)
        for a in allocs:
            for i, v in enumerate(alloc_usage(a)):
                u[i] -= sign * v
            self.usage.add_allocs(node_id, -sign)
            if undo:
                self.usage.preempted.discard(a["ID"])
                if ports is not None:
                    ports.update(alloc_port_keys(a))
                if cores is not None:
                    cores.update(alloc_cores(a))
            else:
                self.usage.preempted.add(a["ID"])
                if ports is not None:
                    ports.difference_update(alloc_port_keys(a))
                if cores is not None:
                    cores.difference_update(alloc_cores(a))

    def wanted_cores(self, group: dict[str, Any]) -> tuple[tuple[str, int], ...]:
        """group_cores, worked out once per evaluation."""
        got = self._cores_of.get(group["Name"])
        if got is None:
            got = self._cores_of[group["Name"]] = group_cores(group)
        return got

    def cores_on(self, node_id: str, node: dict[str, Any],
                 group: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], int] | None:
        """The cores the group's tasks would reserve on *node_id* (pick_cores over what its live
        allocations, less those this plan stops or preempts, and this plan's placements hold)."""
        count, mhz = node_cores(node)
        return pick_cores(self.wanted_cores(group), count, mhz, self.usage.used_cores(node_id, self.stopping))

    def take_cores(self, node_id: str, picked: tuple[dict[str, dict[str, Any]], int] | None) -> None:
        """The placement on *node_id* reserves *picked*: no later placement of the plan takes them."""
        if picked:
            self.usage.used_cores(node_id, self.stopping).update(c for t in picked[0].values()
                                                                 for c in t["ReservedCores"])

    def record_preemptions(self, placed: dict[str, Any], allocs: list[dict[str, Any]]) -> None:
        """The plan evicts *allocs* for *placed* (Nomad's AppendPreemptedAlloc and the placement's
        PreemptedAllocations)."""
        placed["PreemptedAllocations"] = [a["ID"] for a in allocs]
        self.plan.setdefault("Preempt", []).extend(
            {"ID": a["ID"], "NodeID": a["NodeID"], "Namespace": a.get("Namespace", "default"),
             "JobID": a["JobID"], "TaskGroup": a.get("TaskGroup", ""), "By": placed["ID"]} for a in allocs)

    def assign_ports(self, node_id: str, node: dict[str, Any], group: dict[str, Any],
                     metrics: dict[str, Any] | None) -> list[dict[str, Any]] | None:
        """The group's ports on *node*: its static ones if free, dynamic ones picked from the free
        range (seeded by the evaluation, so every server picks alike); None when they do not fit."""
        static, dynamic = group_ports(group)
        if not static and not dynamic:
            return []
        # Taken per address (Nomad's NetworkIndex); client.reserved.reserved_ports on every address,
        # a host network's reserved_ports on its own.
        used = self.usage.used_ports(node_id, self.stopping)
        reserved = node_reserved_ports(node)
        out: list[dict[str, Any]] = []
        for p in static:
            # Two static ports of one value (on two host networks) never share an address.
            offered = {(q["HostIP"], q["Value"]) for q in out}
            addresses = port_addresses(node, p)
            ip = next((ip for ip, held in addresses
                       if p["Value"] not in reserved and p["Value"] not in held
                       and (ip, p["Value"]) not in used and (ip, p["Value"]) not in offered),
                      None)
            if ip is None:
                if metrics is not None:  # Nomad's AssignPorts error, as the dimension
                    network = p.get("HostNetwork") or DEFAULT_HOST_NETWORK
                    _port_exhausted(metrics, node, f'{PORT_COLLISION} {p["Label"]}={p["Value"]}' if addresses
                                    else f"network: no addresses available for {network} network")
                return None
            out.append({"Label": p["Label"], "Value": p["Value"], "To": p["To"], "HostIP": ip})
        res = node.get("NodeResources") or {}
        lo = int(res.get("MinDynamicPort") or DYNAMIC_PORT_MIN)
        hi = int(res.get("MaxDynamicPort") or DYNAMIC_PORT_MAX)
        in_offer = {p["Value"] for p in static}  # Nomad's portsInOffer: not given twice in one group
        span = hi - lo + 1
        for p in dynamic:
            value = None
            for ip, held in port_addresses(node, p):
                start = self._rng.randrange(span)
                value = next((v for v in (lo + (start + k) % span for k in range(span))
                              if v not in in_offer and v not in reserved and v not in held
                              and (ip, v) not in used), None)
                if value is not None:
                    break
            if value is None:
                if metrics is not None:
                    _port_exhausted(metrics, node, PORTS_EXHAUSTED)
                return None
            in_offer.add(value)
            out.append({"Label": p["Label"], "Value": value, "To": p["To"] or value, "HostIP": ip})
        return out

    def _node_at(self, pos: int) -> str:
        ids, swapped = self.sorted_ids, self._swapped
        n = len(ids)
        while self._shuffled <= pos:
            k = self._shuffled
            j = k + self._rng.randrange(n - k)
            at_k, at_j = swapped.get(k, ids[k]), swapped.get(j, ids[j])
            swapped[k], swapped[j] = at_j, at_k
            self._shuffled = k + 1
        return swapped[pos]

    def feasible(self, node: dict[str, Any], group: dict[str, Any]) -> bool:
        return self.verdict(node, group) == FEASIBLE

    def verdict(self, node: dict[str, Any], group: dict[str, Any]) -> int | str:
        """FEASIBLE, the reason it is filtered (a driver or constraint) or OUTSIDE (not ready, or not in
        the job's datacenters or node pool), kept per evaluation and in the store's cache."""
        known = self._feasible.get(group["Name"])
        if known is None:
            known = self._feasible[group["Name"]] = {}
        ok = known.get(node["ID"])
        if ok is None:
            shared = self._shared
            if shared is None:
                ok = self._check(node, group)
            else:
                if group["Name"] not in self._shapes:
                    self._shapes[group["Name"]] = feasibility_shape(self.job, group)
                shape = self._shapes[group["Name"]]
                hit = shared.get(node["ID"])
                if hit is None or hit[0] is not node:
                    hit = (node, {})
                    shared[node["ID"]] = hit
                ok = hit[1].get(shape)
                if ok is None:
                    ok = self._check(node, group)
                    if len(hit[1]) >= FEASIBILITY_SHAPES_PER_NODE:
                        hit[1].clear()
                    hit[1][shape] = ok
            known[node["ID"]] = ok
        return ok

    def capacity(self, node_id: str, node: dict[str, Any]) -> tuple[int, int, int]:
        """The node's capacity (node_capacity; the store's cache when there is one), kept for the
        evaluation."""
        cap = self._caps.get(node_id)
        if cap is None:
            cap = self._caps[node_id] = self.usage.capacity(node_id) if self.usage.capacity is not None \
                else node_capacity(node)
        return cap

    def _fast_entry(self, node_id: str, node: dict[str, Any], group: dict[str, Any]) -> Any:
        """What _select keeps of a node for a group: its capacity (a tuple) when it is feasible and has
        no NodeMaxAllocs, else its verdict.

        A function of the node record and the group's feasibility shape only, so it is kept in the
        store's shared cache beside the verdict (under the shape's key with ``_FAST_SUFFIX``): the
        ten-odd nodes each evaluation visits are looked up once instead of through verdict() and
        capacity() again for every job of the same shape."""
        shared = self._shared
        key = None
        if shared is not None:
            key = self._fast_keys.get(group["Name"])
            if key is None:
                if group["Name"] not in self._shapes:
                    self._shapes[group["Name"]] = feasibility_shape(self.job, group)
                key = self._fast_keys[group["Name"]] = self._shapes[group["Name"]] + _FAST_SUFFIX
            hit = shared.get(node_id)
            if hit is not None and hit[0] is node:
                entry = hit[1].get(key)
                if entry is not None:
                    return entry
        verdict = self.verdict(node, group)
        entry = self.capacity(node_id, node) if verdict == FEASIBLE and not node.get("NodeMaxAllocs") \
            else verdict
        if key is not None:
            hit = shared.get(node_id)  # type: ignore[union-attr]
            if hit is not None and hit[0] is node:  # verdict() has just made or checked it
                hit[1][key] = entry
        return entry

    def info(self, group: dict[str, Any]) -> tuple[Any, ...]:
        """What every placement of *group* asks, worked out once per evaluation: (its need: CPU,
        memory, disk; whether it has host volumes; whether a port names a host network; whether it
        has ports)."""
        got = self._group_info.get(group["Name"])
        if got is None:
            static, dynamic = group_ports(group)
            got = self._group_info[group["Name"]] = (
                (*group_resources(group), group_disk_mb(group)), bool(group.get("Volumes")),
                any((p.get("HostNetwork") or DEFAULT_HOST_NETWORK) != DEFAULT_HOST_NETWORK
                    for p in (*static, *dynamic)),
                bool(static or dynamic))
        return got

    def _check(self, node: dict[str, Any], group: dict[str, Any]) -> int | str:
        """FEASIBLE, OUTSIDE, or (filtered) the first reason Nomad's checkers give, in their order: the
        job's constraints, the drivers ("missing drivers"), then the group's and its tasks' constraints,
        a constraint by its String() (``${attr.kernel.name} = windows``)."""
        job = self.job
        if not in_pool(node, job.get("Datacenters", ["*"]), job.get("NodePool", "default")):
            return OUTSIDE
        for c in job.get("Constraints", ()):
            if not constraint_ok(c, node):
                return constraint_key(c)
        drivers = node.get("Drivers", {})
        for t in group["Tasks"]:
            d = drivers.get(t["Driver"])
            if not d or not d.get("Healthy", d.get("Detected", False)):
                return FILTER_DRIVERS
        for c in (*group.get("Constraints", ()),
                  *(c for t in group["Tasks"] for c in t.get("Constraints", ()))):
            if not constraint_ok(c, node):
                return constraint_key(c)
        return FEASIBLE

    def node_class(self, node: dict[str, Any]) -> str:
        """The node's computed class (computed_class), worked out once per node record."""
        hit = self._classes.get(node["ID"])
        if hit is None or hit[0] is not node:
            hit = self._classes[node["ID"]] = (node, computed_class(node))
        return hit[1]

    def class_reason(self, node: dict[str, Any], group: dict[str, Any], reason: str) -> str:
        """What a node filtered for *reason* (a job constraint, a driver, a group or task constraint) is
        counted as, as Nomad's FeasibilityWrapper does: the first node of a computed class to fail the
        job's (or the group's) checks in this evaluation is filtered by its reason and marks the class
        ineligible; the other nodes of the class are then "computed class ineligible".  A job (or group)
        whose constraints look at a node's unique fields escapes the classes: each node its own reason."""
        scopes = self._class_scopes.get(group["Name"])
        if scopes is None:
            job_constraints = self.job.get("Constraints") or ()
            scopes = self._class_scopes[group["Name"]] = (
                frozenset(constraint_key(c) for c in job_constraints), _escapes(job_constraints),
                _escapes((*(group.get("Constraints") or ()),
                          *(c for t in group["Tasks"] for c in t.get("Constraints") or ()))))
        job_keys, job_escapes, group_escapes = scopes
        scope: str | None = None  # the job's
        if reason not in job_keys:
            scope = group["Name"]
        if job_escapes if scope is None else group_escapes:
            return reason
        cls = self.node_class(node)
        seen = self._ineligible.setdefault(scope, set())
        if cls in seen:
            return FILTER_CLASS_INELIGIBLE
        seen.add(cls)
        return reason

    def _distinct(self, group: dict[str, Any]) -> int:
        """Nomad's DistinctHostsIterator: DISTINCT_JOB when the job has a distinct_hosts constraint (no
        two allocations of the job, of any group, on one node), DISTINCT_GROUP when only the group has
        (no two of the group), else 0."""
        got = self._distinct_cache.get(group["Name"])
        if got is None:
            def has(cons: Any) -> bool:  # the first distinct_hosts decides; Go's ParseBool reads its value
                c = next((c for c in cons or () if c["Operand"] == "distinct_hosts"), None)
                return c is not None and c.get("RTarget", "") not in _GO_FALSE
            got = DISTINCT_JOB if has(self.job.get("Constraints")) \
                else DISTINCT_GROUP if has(group.get("Constraints")) else 0
            self._distinct_cache[group["Name"]] = got
        return got

    def on(self, group_name: str) -> dict[str, int]:
        """Node ID -> the allocations of the job's group *group_name* there (with the plan's so far)."""
        got = self.job_on_node.get(group_name)
        if got is None:
            got = self.job_on_node[group_name] = {}
        return got

    def count_on(self, node_id: str, group_name: str, delta: int) -> None:
        on = self.on(group_name)
        on[node_id] = on.get(node_id, 0) + delta
        self.job_on_node_any[node_id] = self.job_on_node_any.get(node_id, 0) + delta

    def collides(self, distinct: int, node_id: str, collisions: int) -> bool:
        """A distinct_hosts collision on *node_id* (*collisions*: the group's allocations there)."""
        return bool(collisions or (distinct == DISTINCT_JOB and self.job_on_node_any.get(node_id)))

    def props(self, group: dict[str, Any]) -> tuple[_PropertySet, ...]:
        """The group's distinct_property sets (the job's constraints', then the group's), brought up to
        date with the plan so far (Nomad's DistinctPropertyIterator, reset before each selection)."""
        sets = self._prop_sets.get(group["Name"])
        if sets is None:
            sets = self._prop_sets[group["Name"]] = (
                *(_PropertySet(c, "", self.job_allocs, self.nodes) for c in self.job.get("Constraints", ())
                  if c["Operand"] == "distinct_property"),
                *(_PropertySet(c, group["Name"], self.job_allocs, self.nodes)
                  for c in group.get("Constraints", ()) if c["Operand"] == "distinct_property"))
        for ps in sets:
            ps.refresh(self.plan, self.nodes)
        return sets

    def _prefs(self, group: dict[str, Any]) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
        """The group's affinities (job's, group's, its tasks') and spreads (job's and group's)."""
        got = self._pref_cache.get(group["Name"])
        if got is None:
            job = self.job
            aff = (*(job.get("Affinities") or ()), *(group.get("Affinities") or ()),
                   *(a for t in group["Tasks"] for a in t.get("Affinities") or ()))
            spr = tuple(sp for sp in (*(job.get("Spreads") or ()), *(group.get("Spreads") or ()))
                        if sp.get("Weight", 0) > 0)
            got = self._pref_cache[group["Name"]] = (aff, spr)
        return got

    def _affinity_score(self, node: dict[str, Any], affinities: tuple[dict[str, Any], ...]) -> float:
        """Nomad's node-affinity score: the matching weights over all weights, -1..1."""
        total = sum(abs(a["Weight"]) for a in affinities)
        return sum(a["Weight"] for a in affinities if constraint_ok(a, node)) / total if total else 0.0

    def _spread_score(self, node: dict[str, Any], group: dict[str, Any],
                      spreads: tuple[dict[str, Any], ...]) -> float:
        """How much placing on *node* improves the group's spreads (Nomad's SpreadIterator).

        With targets: (desired - (placed + 1)) / desired for the node's value,
        counting the placement being scored, times the spread's share of the
        spreads' weights; desired is the value's percentage of the group's
        count, and a value not named gets the whole count the targets leave
        (Nomad's implicit target).  A value wanted nowhere scores -1, one
        targeted at 0% the lowest such boost any node got so far (at most -1).
        Without targets (even spread), unweighted: a value not yet used +1, one
        above the least-used value (min - used) / min, the least-used one
        (max - min) / min, -1 when all are level, and 0 when nothing is placed
        yet.  A node without the attribute scores -1 for that spread.
        """
        weights = sum(sp["Weight"] for sp in spreads)
        total = 0.0
        for sp in spreads:
            value = resolve_target(sp["Attribute"], node)
            if value is None:
                total -= 1.0
                continue
            counts = self._value_counts(group, sp["Attribute"])
            used = counts.get(value, 0)
            targets = sp.get("SpreadTarget")
            if targets:
                count = group["Count"]
                named = {t["Value"]: t["Percent"] / 100 * count for t in targets}
                desired = named.get(value)
                if desired is None:
                    wanted = sum(named.values())
                    if not 0 < wanted < count:
                        total -= 1.0
                        continue
                    desired = count - wanted
                if desired == 0:
                    total += self._lowest_spread_boost
                    continue
                boost = sp["Weight"] / weights * (desired - (used + 1)) / desired
                total += boost
                if boost < self._lowest_spread_boost:
                    self._lowest_spread_boost = boost
            elif counts:
                lo, hi = min(counts.values()), max(counts.values())
                if used != lo:
                    total += (lo - used) / lo if lo else -1.0
                elif lo == hi:
                    total -= 1.0
                else:
                    total += 1.0 if lo == 0 else (hi - lo) / lo
        return total

    def _value_counts(self, group: dict[str, Any], attribute: str) -> dict[str, int]:
        """The group's live allocations (this plan's placements included) per value of *attribute*.

        Counted once per group and attribute, then kept up to date as
        placements are made (:meth:`_count_placement`): a spread is scored on
        every feasible node for every placement.
        """
        key = (group["Name"], attribute)
        counts = self._spread_counts.get(key)
        if counts is None:
            counts = self._spread_counts[key] = {}
            for node_id, n in self.on(group["Name"]).items():
                node = self.nodes.get(node_id)
                if node is None or n <= 0:
                    continue
                value = resolve_target(attribute, node)
                if value is not None:
                    counts[value] = counts.get(value, 0) + n
        return counts

    def count_alloc(self, a: dict[str, Any], delta: int) -> None:
        """One allocation of the job more (+1) or fewer (-1, the plan stops it) on its node: Nomad's
        proposed allocations, which leave out the plan's stops, for distinct_hosts, the job
        anti-affinity and the spread counts."""
        self.count_on(a["NodeID"], a["TaskGroup"], delta)
        node = self.nodes.get(a["NodeID"])
        if node is None:
            return
        for (name, attribute), counts in self._spread_counts.items():
            if name == a["TaskGroup"]:
                value = resolve_target(attribute, node)
                if value is not None:
                    counts[value] = counts.get(value, 0) + delta

    def _count_placement(self, group: dict[str, Any], node: dict[str, Any]) -> None:
        for (name, attribute), counts in self._spread_counts.items():
            if name == group["Name"]:
                value = resolve_target(attribute, node)
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1

    def select(self, group: dict[str, Any], metrics: dict[str, Any],
               penalized: frozenset[str] = frozenset(), prev: dict[str, Any] | None = None,
               alloc_name: str = "", fresh: bool = False, preempt: bool = False) -> str | None:
        """The node to place one allocation of *group* on (None: none fits), scored as Nomad's stack;
        *penalized*: nodes a rescheduled allocation failed on (Nomad's NodeReschedulingPenalty);
        *prev*: the allocation it replaces, whose node is tried first when the group's ephemeral disk
        is sticky or migrates (Nomad's findPreferredNode); *alloc_name*: the allocation's name, whose
        index a per_alloc host volume's source takes; *preempt*: a node without room is an option when
        evicting lower-priority allocations makes it (Nomad's second Select with Preempt, whose
        evictions are left in ``last_preempted``; no preferred node then).

        What the attempt saw is added to *metrics* (*fresh*: the attempt's own, reset for the fallback
        after the preferred node, as Nomad's Select does);
        the placement's own AllocMetric (what this attempt added), as Nomad's stack keeps one per
        placement, is left in ``last_metric`` (None when nothing was placed)."""
        started = self.clock() if self.clock is not None else None
        need = self.info(group)[0]
        self.last_metric = None
        self.last_preempted = []
        self.last_cores = None
        preferred = self._preferred(group, prev) if not preempt else None
        m = metrics
        if preferred is not None:
            before = _counts(m)
            scored: list[tuple[Any, ...]] = []
            if volumes_feasible(self.nodes[preferred], group, alloc_name, m) \
                    and host_networks_feasible(self.nodes[preferred], group, m) \
                    and self._take_preferred(preferred, group, need, prev, m, penalized, scored):
                self.last_metric = self._placement_metric(m, before, scored, started)
                return preferred
            if fresh:  # Nomad's stack starts each Select with new metrics: the fallback's are reported
                m.clear()
                m.update(_new_metrics())
        before = _counts(m)  # Nomad's stack starts each Select with new metrics
        scored = []
        best = self._select(group, m, penalized, alloc_name, need, scored, preempt)
        if best is not None:
            self.last_metric = self._placement_metric(m, before, scored, started)
        elif started is not None:  # Nomad's Select times a failed one too: the group's failure shows it
            m["AllocationTime"] = self._elapsed_ns(started)
        return best

    def _elapsed_ns(self, started: float) -> int:
        """Nomad's AllocationTime (a Go duration: nanoseconds) of a selection started at *started*."""
        return max(0, int((self.clock() - started) * 1e9))

    def _select(self, group: dict[str, Any], m: dict[str, Any], penalized: frozenset[str], alloc_name: str,
                need: tuple[int, int, int], scored: list[tuple[Any, ...]],
                preempt: bool = False) -> str | None:
        """Nomad's GenericStack.Select over the shuffled nodes, from the cursor, each node at most once:
        its feasibility and rank iterators, then the best of the first ``limit`` scored nodes (Nomad's
        LimitIterator, MaxSkip included, and MaxScoreIterator).  *preempt*: a node without room that
        evictions would make room on is an option, scored also by Nomad's PreemptionScoringIterator."""
        distinct = self._distinct(group)
        props = self.props(group)
        affinities, spreads = self._prefs(group)
        preferences = bool(affinities or spreads)
        _, volumes, host_nets, has_ports = self.info(group)
        self.last_ports = []
        # With affinities or spreads Nomad's stack scores NodeLimitForFeasibilityChecks nodes (the
        # group's count when that is more); otherwise the first ``limit``.
        limit = max(self.node_limit, group["Count"]) if preferences else self.limit()
        count = max(1, group["Count"])
        n = len(self.sorted_ids)
        best, best_score = None, 0.0
        seen = 0
        skipped: list[tuple[float, str]] = []  # passed over (MaxSkip), in the order they were
        skipped_last = False  # the last option was passed over (Nomad's Next call is still under way)
        # The hot path (every node visited): its lookups made local, its common checks inline.
        name = group["Name"]
        fast = self._fast.get(name)
        if fast is None:
            fast = self._fast[name] = {}
        nodes, swapped, usage = self.nodes, self._swapped, self.usage
        on_node = self.on(name)
        spread_alg = self.spread
        need0, need1, need2 = need
        cores_wanted = bool(self.wanted_cores(group))
        picks: dict[str, tuple[dict[str, dict[str, Any]], int]] = {}  # node -> its cores (cores_on)
        self.last_cores = None
        cursor = self.cursor
        evaluated = 0  # added to m["NodesEvaluated"] at the end
        preempting: dict[str, list[dict[str, Any]]] = {}  # node -> what placing there evicts
        for _ in range(n):
            node_id = swapped[cursor] if cursor < self._shuffled else self._node_at(cursor)
            cursor += 1
            if cursor == n:
                cursor = 0
            # The node's capacity when it is feasible and has no NodeMaxAllocs (the common case), else
            # its verdict (see _fast_entry).
            entry = fast.get(node_id)
            if entry is None:
                entry = fast[node_id] = self._fast_entry(node_id, nodes[node_id], group)
            if entry.__class__ is tuple:
                cap = entry
            else:
                node = nodes[node_id]
                if entry != FEASIBLE:
                    if entry != OUTSIDE:  # filtered: the reason (filter_node's, inline)
                        evaluated += 1
                        m["NodesFiltered"] += 1
                        cf = m["ConstraintFiltered"]
                        reason = self.class_reason(node, group, entry)
                        cf[reason] = cf.get(reason, 0) + 1
                        if node.get("NodeClass"):
                            _class_count(m, "ClassFiltered", node)
                    # else not ready, or outside the job's datacenters or pool: not one Nomad's stack visits
                    continue
                cap = None  # feasible, with NodeMaxAllocs: checked below, in Nomad's order
            evaluated += 1
            if volumes and not volumes_feasible(nodes[node_id], group, alloc_name, m):
                continue
            if host_nets and not host_networks_feasible(nodes[node_id], group, m):
                continue
            collisions = on_node.get(node_id, 0)
            if distinct and self.collides(distinct, node_id, collisions):
                filter_node(m, nodes[node_id], "distinct_hosts")
                continue
            if props and not props_ok(props, nodes[node_id], m):
                continue
            if cap is None:
                if _max_allocs_full(usage, node_id, nodes[node_id], m):
                    continue
                cap = self.capacity(node_id, nodes[node_id])
            used = usage[node_id]
            cpu_need = need0
            if cores_wanted:  # Nomad's SELECTCORES, before AllocsFit; evictions free no cores for it
                picked = self.cores_on(node_id, nodes[node_id], group)
                if picked is None:
                    _exhaust(m, nodes[node_id], "cores")
                    continue
                picks[node_id] = picked
                cpu_need += picked[1]
            after0, after1, after2 = used[0] + cpu_need, used[1] + need1, used[2] + need2
            # exhausted(), inline
            dim = "cpu" if after0 > cap[0] else "memory" if after1 > cap[1] else "disk" if after2 > cap[2] \
                else None
            evicts = None
            if preempt and (dim is not None or (has_ports and self.assign_ports(node_id, nodes[node_id],
                                                                              group, None) is None)):
                option = self.preempt_option(node_id, group, (cpu_need, need1, need2), cap)
                if option is None:
                    if dim is None:  # its ports: counted as the check below does
                        self.assign_ports(node_id, nodes[node_id], group, m)
                        continue
                else:
                    evicts, (after0, after1, after2) = option
                    preempting[node_id] = evicts
                    dim = None
            if dim is not None:
                m["NodesExhausted"] += 1
                m["DimensionExhausted"][dim] = m["DimensionExhausted"].get(dim, 0) + 1
                if nodes[node_id].get("NodeClass"):
                    _class_count(m, "ClassExhausted", nodes[node_id])
                continue
            if has_ports and evicts is None and self.assign_ports(node_id, nodes[node_id], group, m) is None:
                continue
            if preferences or node_id in penalized or evicts is not None:
                score = self._score(node_id, nodes[node_id], group, cap, (after0, after1, after2), collisions,
                                    penalized, affinities, spreads, scored,
                                    preemption.preemption_score(evicts) if evicts is not None else None)
            else:  # the common cases inline (_score's, and fit_score's same arithmetic, without a call)
                c0, c1 = cap[0], cap[1]
                if c0 <= 0 or c1 <= 0:
                    score = 0.0
                else:
                    free_cpu = 1.0 - after0 / c0
                    free_mem = 1.0 - after1 / c1
                    total = 10 ** (free_cpu if free_cpu > 0.0 else 0.0) \
                        + 10 ** (free_mem if free_mem > 0.0 else 0.0)
                    score = (total - 2.0) if spread_alg else (20.0 - total)
                    score = (18.0 if score > 18.0 else score if score > 0.0 else 0.0) / 18.0
                if collisions:
                    anti = -(collisions + 1) / count
                    binpack, score = score, (score + anti) / 2
                    scored.append((node_id, binpack or 0, anti, 0, 0, 0, score))
                else:
                    scored.append((node_id, score))  # short for (node_id, score, 0, 0, 0, 0, score)
            if score <= SKIP_SCORE_THRESHOLD and len(skipped) < MAX_SKIP:
                skipped.append((score, node_id))
                skipped_last = True
                continue
            skipped_last = False
            seen += 1
            if best is None or score > best_score:
                best, best_score = node_id, score
            if seen >= limit:
                break
        else:
            # Every node visited: Nomad's LimitIterator gives back what it passed over, within the limit.
            for score, node_id in _skipped_back(skipped, seen, limit, skipped_last):
                if best is None or score > best_score:
                    best, best_score = node_id, score
        self.cursor = cursor
        m["NodesEvaluated"] += evaluated
        if best is None:
            return None
        if best in preempting:
            self.last_preempted = preempting[best]
            self.evict(best, self.last_preempted)
        u = self.usage[best]
        for i, v in enumerate(need):
            u[i] += v
        if cores_wanted:
            self.last_cores = picks[best]
            self.take_cores(best, self.last_cores)
            u[0] += self.last_cores[1]
        self.usage.add_allocs(best, 1)
        if has_ports:
            self.last_ports = self.assign_ports(best, self.nodes[best], group, None) or []
            self.usage.used_ports(best, self.stopping).update(
                alloc_port_keys({"AllocatedPorts": self.last_ports}))
        self.count_on(best, group["Name"], 1)
        if spreads:
            self._count_placement(group, self.nodes[best])
        return best

    def _score(self, node_id: str, node: dict[str, Any], group: dict[str, Any], cap: tuple[int, ...],
               after: tuple[int, ...], collisions: int, penalized: frozenset[str],
               affinities: tuple[dict[str, Any], ...], spreads: tuple[dict[str, Any], ...],
               scored: list[tuple[Any, ...]], preempting: float | None = None) -> float:
        """Nomad's rank iterators and ScoreNormalizationIterator: the mean of the bin-packing score, the
        job anti-affinity penalty (with allocations of the group on the node), the reschedule penalty
        (a node it failed on), the affinity score (with affinities) and the spread boost (when not 0).
        Each node's scores are noted in *scored* for the placement's AllocMetric.  *preempting*: the
        preemption score of an option that evicts (Nomad's PreemptionScoringIterator), one more part of
        the mean (not kept in the metric's rows)."""
        binpack = fit_score(cap, after, self.spread)
        total, parts = binpack, 1
        anti: float = 0  # a score that does not apply is kept as the integer 0 (see _placement_metric)
        penalty: float = 0
        affinity: float = 0
        spread: float = 0
        if collisions:
            anti = -(collisions + 1) / max(1, group["Count"])  # Nomad's JobAntiAffinityIterator
            total += anti
            parts += 1
        if node_id in penalized:
            penalty = -1.0  # where it failed before is the last choice, not excluded
            total += penalty
            parts += 1
        if affinities:
            affinity = self._affinity_score(node, affinities) or 0
            total += affinity  # a node no affinity matches scores 0, and counts (Nomad's, since 1.10.2)
            parts += 1
        if spreads:
            spread = self._spread_score(node, group, spreads) or 0
            if spread:
                total += spread
                parts += 1
        if preempting is not None:
            total += preempting
            parts += 1
        final = total / parts
        scored.append((node_id, binpack or 0, anti, penalty, affinity, spread, final))
        return final

    def _placement_metric(self, m: dict[str, Any], before: tuple[Any, ...],
                          scored: list[tuple[Any, ...]], started: float | None = None) -> list[Any]:
        """A placement's AllocMetric (see stored_metric): what its selection counted, the pool it chose
        from, and the scores of its best nodes (highest first; ties in the order they were scored)."""
        in_pool, by_dc = self.pool_counts()
        maps = before[3]
        added_maps = None
        if m["ConstraintFiltered"] or m["DimensionExhausted"] or len(m) > _METRIC_KEYS:
            # counts by reason or class: what this attempt added
            for key in _COUNT_MAPS:
                now, was = m.get(key), (maps or {}).get(key) or {}
                if now:
                    added = {k: v - was.get(k, 0) for k, v in now.items() if v != was.get(k, 0)}
                    if added:
                        added_maps = added_maps or {}
                        added_maps[key] = added
        if started is not None:
            elapsed = self._elapsed_ns(started)
            if elapsed:  # kept with the counts by reason (0, untimed or too quick: not kept)
                added_maps = {**(added_maps or {}), "AllocationTime": elapsed}
        # NodesAvailable is the pool's count, shared by the evaluation's placements (never modified).
        out = [_GENERIC, m["NodesEvaluated"] - before[0], m["NodesFiltered"] - before[1],
               m["NodesExhausted"] - before[2], in_pool, self.job.get("NodePool", ""), by_dc, added_maps]
        # The best first; a stable sort keeps ties in the order they were scored.
        top = sorted(scored, key=_BY_SCORE, reverse=True)[:TOP_SCORES_KEPT] if len(scored) > 1 else scored
        for row in top:
            if len(row) == 2:  # the bin-packing score alone
                out += (row[0], row[1] or 0, 0, 0, 0, 0, row[1])
            else:
                out += row
        return out

    def limit(self) -> int:
        """Nomad's GenericStack.SetNodes: how many nodes a placement scores -- for a batch job 2 (the
        power of two choices), for a service job log2 of the ready nodes in its datacenters and node
        pool, at least 2."""
        if self._limit is None:
            n = self.pool_counts()[0] if self.job.get("Type") != "batch" else 0
            self._limit = max(2, math.ceil(math.log2(n))) if n > 2 else 2
        return self._limit

    def pool_counts(self) -> tuple[int, dict[str, int]]:
        """Nomad's NodesInPool and NodesAvailable: the ready nodes in the job's datacenters and node
        pool, and how many of them each datacenter has (once per evaluation, or the store's cache)."""
        if self._pool is None:
            dcs, pool = tuple(self.job.get("Datacenters") or ["*"]), self.job.get("NodePool", "default")
            self._pool = self._ready_by_dc(dcs, pool) if self._ready_by_dc is not None \
                else ready_nodes_by_dc(self.nodes, dcs, pool)
        return self._pool

    def _preferred(self, group: dict[str, Any], prev: dict[str, Any] | None) -> str | None:
        """Nomad's findPreferredNode: the node of the allocation being replaced, when the group's
        ephemeral disk is sticky or migrates, the job still runs in that node pool and those
        datacenters, and the node is ready."""
        if prev is None:
            return None
        disk = ephemeral_disk(group)
        if not (disk["Sticky"] or disk["Migrate"]):
            return None
        was = prev.get("Job") or {}
        if was and (was.get("NodePool", "default") != self.job.get("NodePool", "default")
                    or list(was.get("Datacenters") or ["*"]) != list(self.job.get("Datacenters") or ["*"])):
            return None
        node = self.nodes.get(prev.get("NodeID", ""))
        return prev["NodeID"] if node is not None and node_ready(node) else None

    def _take_preferred(self, node_id: str, group: dict[str, Any], need: tuple[int, int, int],
                        prev: dict[str, Any], metrics: dict[str, Any], penalized: frozenset[str],
                        scored: list[tuple[Any, ...]]) -> bool:
        """Place on the preferred node if it is feasible and has room, taking it (and scoring it, as
        Nomad's stack does with its one node)."""
        node = self.nodes[node_id]
        verdict = self.verdict(node, group)
        if verdict == OUTSIDE:
            return False
        metrics["NodesEvaluated"] += 1
        if verdict != FEASIBLE:  # through Nomad's same FeasibilityWrapper: its computed class noted
            filter_node(metrics, node, self.class_reason(node, group, verdict))
            return False
        # The allocation it replaces is no longer counted there: the plan stops it (stop_alloc).
        collisions = self.on(group["Name"]).get(node_id, 0)
        distinct = self._distinct(group)
        if distinct and self.collides(distinct, node_id, collisions):
            filter_node(metrics, node, "distinct_hosts")
            return False
        props = self.props(group)
        if props and not props_ok(props, node, metrics):
            return False
        if _max_allocs_full(self.usage, node_id, node, metrics):  # the replaced allocation's slot is free
            return False
        cap = self.usage.capacity(node_id) if self.usage.capacity is not None else node_capacity(node)
        used = self.usage[node_id]  # the replaced allocation's room is free: the plan stops it first
        picked = None
        if self.wanted_cores(group):
            picked = self.cores_on(node_id, node, group)
            if picked is None:
                _exhaust(metrics, node, "cores")
                return False
            need = (need[0] + picked[1], need[1], need[2])
        after = tuple(used[i] + need[i] for i in range(3))
        dim = exhausted(cap, after)
        if dim is not None:
            metrics["NodesExhausted"] += 1
            metrics["DimensionExhausted"][dim] = metrics["DimensionExhausted"].get(dim, 0) + 1
            _class_count(metrics, "ClassExhausted", node)
            return False
        affinities, spreads = self._prefs(group)
        self._score(node_id, node, group, cap, after, collisions, penalized, affinities, spreads, scored)
        has_ports = any(group_ports(group))
        self.last_ports = []
        if has_ports:
            ports = self.assign_ports(node_id, node, group, metrics)
            if ports is None:
                return False
            self.last_ports = ports
            self.usage.used_ports(node_id, self.stopping).update(alloc_port_keys({"AllocatedPorts": ports}))
        for i in range(3):
            used[i] += need[i]
        self.last_cores = picked
        self.take_cores(node_id, picked)
        self.usage.add_allocs(node_id, 1)
        self.count_on(node_id, group["Name"], 1)
        if spreads:
            self._count_placement(group, node)
        return True


FILTER_HOST_VOLUMES = "missing compatible host volumes"  # Nomad's FilterConstraintHostVolumes


def volumes_feasible(node: dict[str, Any], group: dict[str, Any], alloc_name: str,
                     metrics: dict[str, Any]) -> bool:
    """Nomad's HostVolumeChecker for one allocation (a node filtered out is counted in *metrics*).

    Checked per allocation, outside the feasibility cache: a per_alloc
    volume's source depends on the allocation's index.
    """
    if not group.get("Volumes") or host_volumes_ok(node, group, alloc_name):
        return True
    filter_node(metrics, node, FILTER_HOST_VOLUMES)
    return False


def _new_metrics() -> dict[str, Any]:
    return {"NodesEvaluated": 0, "NodesFiltered": 0, "NodesExhausted": 0, "ConstraintFiltered": {},
            "DimensionExhausted": {}, "CoalescedFailures": 0}


_METRIC_KEYS = len(_new_metrics())
# A group's metrics' counts by reason or node class (ClassFiltered and ClassExhausted only once a
# node with a class is counted).
_COUNT_MAPS = ("ConstraintFiltered", "DimensionExhausted", "ClassFiltered", "ClassExhausted")


def _counts(m: dict[str, Any]) -> tuple[Any, ...]:
    """A group's metrics' counts now (to tell what one attempt adds): the three totals, and a copy of
    the counts by reason or class when there are any (None when there are none: the common case)."""
    maps = None
    if m["ConstraintFiltered"] or m["DimensionExhausted"] or len(m) > _METRIC_KEYS:
        maps = {k: dict(m[k]) for k in _COUNT_MAPS if m.get(k)}
    return m["NodesEvaluated"], m["NodesFiltered"], m["NodesExhausted"], maps


def _skipped_back(skipped: list[tuple[float, str]], seen: int, limit: int,
                  under_way: bool) -> list[tuple[float, str]]:
    """What Nomad's LimitIterator returns of the options it passed over once its source has none
    left: with *seen* options returned so far, and *under_way* when the source ran out while it was
    passing options over.  Its nextOption hands them back in order; an option handed back while fewer
    than MAX_SKIP were passed over is passed over again (appended), as Nomad's loop does."""
    skipped = list(skipped)
    out: list[tuple[float, str]] = []
    at = 0
    if under_way:  # that Next call counts, and returns the first one passed over
        seen += 1
        if at >= len(skipped):
            return out
        out.append(skipped[at])
        at += 1
    while seen < limit and at < len(skipped):
        opt = skipped[at]
        at += 1
        if len(skipped) < MAX_SKIP and opt[0] <= SKIP_SCORE_THRESHOLD:
            skipped.append(opt)  # passed over again; the source has nothing: the next one back instead
            seen += 1
            if at >= len(skipped):
                break
            out.append(skipped[at])
            at += 1
        else:
            seen += 1
            out.append(opt)
    return out


def _group_metrics(m: dict[str, Any], placer: _Placer) -> dict[str, Any]:
    """A group's metrics as its placement failure reports them (FailedTGAllocs), with Nomad's
    NodesInPool, NodesAvailable and NodePool: only the ready nodes of the job's datacenters and node pool
    are ever evaluated (Nomad's readyNodesInDCsAndPool), so with none of them NodesEvaluated is 0 and
    the failure says "No nodes were eligible for evaluation"."""
    in_pool, by_dc = placer.pool_counts()
    m.update(NodesInPool=in_pool, NodesAvailable=dict(by_dc), NodePool=placer.job.get("NodePool", ""))
    return m


def _name_index(name: str) -> int:
    try:
        return int(name.rsplit("[", 1)[1].rstrip("]"))
    except (IndexError, ValueError):
        return 1 << 30


class _Usage(dict):  # type: ignore[type-arg]
    """node ID -> [cpu, mem] in use, computed on first look from the node's allocations.

    With *node_usage* (the store's ``node_usage``, kept per node until its
    allocations change) the sum is not redone per evaluation; the plan's own
    placements are added to this copy, never to the store's.
    """

    def __init__(self, node_allocs: Any, node_usage: Any = None, node_capacity: Any = None) -> None:
        super().__init__()
        self._node_allocs = node_allocs
        self._node_usage = node_usage
        # The store's node_capacity (kept per node record) when it has one.
        self.capacity = node_capacity
        # node ID -> (address, port) its live allocations hold (and this batch's placements took),
        # on first look.
        self.ports: dict[str, set[tuple[str, int]]] = {}
        # node ID -> the cores its live allocations reserve (and this batch's placements took), on first
        # look at a node for a group that reserves cores.
        self.cores: dict[str, set[int]] = {}
        # node ID -> its live allocations, counted on first look (only for a node with NodeMaxAllocs),
        # and node ID -> the placements less the freed stops of the plans made with this view.
        self._alloc_counts: dict[str, int] = {}
        self._alloc_added: dict[str, int] = {}
        # allocations the plans made with this view preempt: their room is free, and no later
        # placement preempts them again
        self.preempted: set[str] = set()

    def node_allocs(self, node_id: str) -> Any:
        return self._node_allocs(node_id)

    def allocs(self, node_id: str) -> int:
        """The live allocations *node_id* would hold with the plans made so far (Nomad's proposed allocs)."""
        base = self._alloc_counts.get(node_id)
        if base is None:
            base = self._alloc_counts[node_id] = sum(1 for a in self._node_allocs(node_id) if live(a))
        return base + self._alloc_added.get(node_id, 0)

    def add_allocs(self, node_id: str, n: int) -> None:
        self._alloc_added[node_id] = self._alloc_added.get(node_id, 0) + n

    def used_ports(self, node_id: str, stopping: set[str]) -> set[tuple[str, int]]:
        """The (address, port) pairs in use on *node_id*; allocations this plan stops (*stopping*)
        hold none."""
        got = self.ports.get(node_id)
        if got is None:
            gone = self.preempted
            got = self.ports[node_id] = {v for a in self._node_allocs(node_id)
                                         if live(a) and a["ID"] not in stopping and a["ID"] not in gone
                                         for v in alloc_port_keys(a)}
        return got

    def used_cores(self, node_id: str, stopping: set[str]) -> set[int]:
        """The cores reserved on *node_id*; allocations this plan stops (*stopping*) or preempts hold none."""
        got = self.cores.get(node_id)
        if got is None:
            gone = self.preempted
            got = self.cores[node_id] = {c for a in self._node_allocs(node_id)
                                         if live(a) and a["ID"] not in stopping and a["ID"] not in gone
                                         for c in alloc_cores(a)}
        return got

    def __missing__(self, node_id: str) -> list[int]:
        if self._node_usage is not None:
            u = list(self._node_usage(node_id))
        else:
            u = [0, 0, 0]
            for a in self._node_allocs(node_id):
                if live(a):
                    for i, v in enumerate(alloc_usage(a)):
                        u[i] += v
        self[node_id] = u
        return u


def plan_usage(node_allocs: Any, node_usage: Any = None, node_capacity: Any = None) -> _Usage:
    """A usage view to share between plans computed together: each sees what the ones before took."""
    return _Usage(node_allocs, node_usage, node_capacity)


_SCAN: Any = object()  # compute_plan: find the job's latest deployment in the table
DEPLOYMENT_NS = uuid.UUID("3f6c1d2e-8b4a-4c5e-9d7f-1a2b3c4d5e6f")
_DEPLOYMENT_NS_BYTES = DEPLOYMENT_NS.bytes
DEPLOYMENT_ACTIVE = ("running", "paused")


def latest_deployment(tables: dict[str, Any], job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's newest deployment by creation (a scan: the store keeps an index of it)."""
    found = [d for d in tables.get("deployments", {}).values()
             if key_of(d) == job_key_of(job) and d.get("JobCreateIndex") == job.get("CreateIndex")]
    return max(found, key=lambda d: (d["CreateIndex"], d["ID"])) if found else None


def rolling(job: dict[str, Any], group: dict[str, Any]) -> dict[str, Any] | None:
    """The group's update strategy when it rolls updates out through deployments, else None."""
    u = group.get("Update")
    return u if job["Type"] == "service" and u and u.get("MaxParallel", 0) > 0 else None


def new_deployment(job: dict[str, Any], eval_id: str, now: float = 0.0) -> dict[str, Any]:
    """Nomad ``NewDeployment``: running, for the job's current version; groups are added by the plan.

    Its ID derives from *eval_id*, unique across clusters (see :func:`alloc_id`)."""
    # str(uuid.uuid5(DEPLOYMENT_NS, eval_id)), the same text without building UUID objects (alloc_id's way).
    h = bytearray(hashlib.sha1(_DEPLOYMENT_NS_BYTES + eval_id.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return {"ID": f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}",
            "Namespace": job.get("Namespace", "default"),
            "JobID": job["ID"], "JobVersion": job.get("Version", 0),
            "JobModifyIndex": job.get("JobModifyIndex", 0),
            "JobSpecModifyIndex": job.get("JobModifyIndex", 0), "JobCreateIndex": job.get("CreateIndex", 0),
            "IsMultiregion": False, "TaskGroups": {}, "Status": "running",
            "StatusDescription": "Deployment is running", "EvalPriority": job.get("Priority", 50)}


# What a plan's apply does beyond its placements and stops, by revision (a plan in
# a Raft log keeps applying as it did when it was written): 2 -- the job's older
# waiting evaluations are cancelled (Nomad's broker on an Ack), and allocations
# updated in place get a new AllocModifyIndex, so their clients see the new version;
# 3 -- the evaluation records the deployment it worked within (DeploymentID); 4 -- an allocation
# updated in place takes the memory_max the plan gives it (``InPlaceMemory``: the scheduler
# configuration's memory oversubscription when the plan was made, as Nomad's inplaceUpdate takes the
# bin-pack option's resources), and gets a new AllocModifyIndex when what its client reads as it runs
# it changed (restart policies, leader, shutdown delays, max_run_duration); 5 -- ports are checked
# per address (HostIP), as a port of a host network is taken on that network's address only, and a
# host network's reserved_ports are refused on its addresses; 6 -- a plan may mark allocations on a
# disconnected node ``unknown`` (``Disconnect``), record reconnected ones (``Reconnect``) and hold
# back the replacements of lost ones with stop_on_client_after (``LostLater``); 7 -- a blocked evaluation
# keeps the failed placements and Nomad's description ("created to place remaining allocations"), and
# the job's status follows Nomad's getJobStatus (StateStore._job_status); 8 -- a blocked evaluation
# let run by new capacity that still fails to place everything is blocked again (Nomad's ReblockEval)
# instead of completing with a new blocked one, and one that leaves nothing to place cancels the job's
# blocked ones.
PLAN_REV = 8


def compute_plan(tables: dict[str, Any], ev: dict[str, Any],
                 job_allocs: list[dict[str, Any]] | None = None, node_allocs: Any = None,
                 node_ids: list[str] | None = None, node_usage: Any = None,
                 usage: _Usage | None = None, feasible: dict[str, Any] | None = None,
                 deployment: Any = _SCAN, now: float | None = None,
                 ready_by_dc: Any = None, max_place: int | None = None,
                 max_stop: int | None = None,
                 failed_canaries: dict[str, int] | None = None,
                 failed_updates: dict[str, list[str]] | None = None,
                 clock: Any = None) -> dict[str, Any]:
    """The plan for evaluation *ev* against the state *tables* (read-only).

    *deployment*: the job's latest deployment record, or None (the store
    keeps it per job); by default the deployments table is searched.

    *failed_canaries*, when given, receives per group how many of its failed
    placements were canaries (``job plan`` counts them as Canary, not Place);
    *failed_updates*, per group the IDs of the allocations a destructive update
    replaces whose replacement found no node (``job plan`` counts each as
    Nomad's reconciler does, a DestructiveUpdate, not a Place).

    *clock*, the runtime's (``env.now``), times each placement's selection: its metrics' AllocationTime
    (None: not timed, 0).

    *job_allocs* and *node_allocs* (a node ID -> its allocations function),
    when the caller keeps indexes of them, save scans of every allocation;
    *node_ids*, the node IDs sorted (kept by the store), a sort per
    evaluation; *node_usage* (a node ID -> (CPU, memory, disk) its live
    allocations hold), a sum over each considered node's allocations;
    *usage* (:func:`plan_usage`), shared with plans computed before this one
    and applied before it, so it does not count on room they took;
    *feasible*, the store's ``feasibility`` (node feasibility kept across
    evaluations, see ``_Placer``), a constraint check per node visited;
    *ready_by_dc* (the store's ``ready_nodes_by_dc``), a scan of the nodes for the placed allocations'
    NodesInPool and NodesAvailable.
    *now*, the leader's time (seconds): a failed allocation whose reschedule
    delay has not passed waits for a follow-up evaluation (``RescheduleLater``);
    None (a dry run): every one due is rescheduled at once.
    *max_place*: at most this many placements (the plan is one Raft entry, which must stay bounded);
    what is left is marked ``More`` and plan_apply makes a follow-up evaluation for it (a system or
    sysbatch job's too).  *max_stop* bounds the same way the stops nothing replaces: of a job that is
    stopped (or gone), of a count dropped, of a group the job no longer has.
    """
    job_id = key_of(ev)  # the job's store key (actors.state.namespaces)
    job = tables["jobs"].get(job_id)
    allocs = tables["allocs"]
    nodes = tables["nodes"]
    if job_allocs is None:
        job_allocs = [a for a in allocs.values() if a.get("JobID") and key_of(a) == job_id]
    job_allocs = sorted(job_allocs, key=lambda a: a["Name"])
    plan: dict[str, Any] = {"EvalID": ev["ID"], "JobID": ev["JobID"], "Job": None, "Place": [], "Stop": [],
                            "Failed": {}, "Rev": PLAN_REV}
    if job_id != ev["JobID"]:  # a job outside default: the plan names its namespace (key_of(plan))
        plan["Namespace"] = ev["Namespace"]
    stop = plan["Stop"]
    later: list[dict[str, Any]] = []  # failed allocations to reschedule after their delay
    delays: dict[str, int] = {}  # failed allocation -> the delay (ns) it was rescheduled after
    ev_now = now if now is not None else float(ev.get("ModifyTime", 0.0))

    freeing: list[_Usage] = []  # the plan's usage, once made
    freed: set[str] = set()  # allocations whose room this plan's usage no longer counts
    counting: list[_Placer] = []  # the placer, once made: its allocations-per-node counts

    def stop_alloc(a: dict[str, Any], desc: str, client_status: str = "", alone: bool = False) -> bool:
        """Stop *a* in this plan.  *alone*: nothing replaces it (a count dropped, a group removed), so
        once the plan holds *max_stop* stops it is left for the follow-up evaluation (``More``): False."""
        if alone and max_stop is not None and len(stop) >= max_stop:
            plan["More"] = True
            return False
        stop.append({"ID": a["ID"], "DesiredDescription": desc, "ClientStatus": client_status})
        if freeing and live(a) and a["ID"] not in freed:
            freed.add(a["ID"])
            # Its room is free for this plan's placements: the plan's apply stops before it places
            # (Nomad's proposed allocations leave out the plan's stops).
            u = freeing[0][a["NodeID"]]
            for i, v in enumerate(alloc_usage(a)):
                u[i] -= v
            freeing[0].add_allocs(a["NodeID"], -1)
            if counting:  # nor is it one of the job's on its node (distinct_hosts, anti-affinity, spread)
                counting[0].count_alloc(a, -1)
        return True

    if job is None or job.get("Stop") or job.get("ParameterizedJob") or job.get("Periodic"):  # parents never run
        for a in job_allocs:
            if a.get("DesiredStatus") == "run":
                lost = _node_lost(nodes.get(a["NodeID"])) and a.get("ClientStatus") not in TERMINAL_CLIENT
                if not stop_alloc(a, STOP_LOST if lost else STOP_JOB, "lost" if lost else "", alone=True):
                    break
        return plan
    # The plan names the job record it was computed against rather than
    # carrying it: plan_apply places with the store's own record (see there),
    # so the job is neither encoded into the plan's Raft entry, decoded on
    # every server, nor kept as one more copy in each allocation.
    plan["JobIndex"] = job.get("ModifyIndex", 0)
    plan["JobSpecIndex"] = job.get("ScheduleIndex", job.get("JobModifyIndex", 0))
    if node_allocs is None:
        by_node: dict[str, list[dict[str, Any]]] = {}
        for a in allocs.values():
            by_node.setdefault(a.get("NodeID", ""), []).append(a)
        node_allocs = lambda n: by_node.get(n, ())
    if usage is None:
        usage = _Usage(node_allocs, node_usage)
    freeing.append(usage)
    placer = _Placer(tables, job, ev["ID"], usage, node_ids, feasible, ready_by_dc)
    placer.clock = clock
    placer.plan, placer.job_allocs = plan, job_allocs  # what distinct_property counts
    counting.append(placer)
    if deployment is _SCAN:
        deployment = latest_deployment(tables, job) if job["Type"] == "service" else None
    # Nomad's generic scheduler keeps the job's latest deployment, whatever its version or status (none
    # for a batch job), unless the plan makes one: allocations updated in place take its ID.
    latest = deployment if job["Type"] == "service" else None
    in_place_all: list[dict[str, Any]] = []  # allocations the plan updates in place, of every group
    # Nomad's reconciler: a deployment of an older job version is cancelled
    # by the registration that replaced it (the store does that); one of
    # this version that is paused or failed lets no more allocations be
    # replaced; a successful one is over.
    if deployment is not None and (deployment.get("JobVersion") != job.get("Version")
                                   or deployment.get("JobCreateIndex") != job.get("CreateIndex")):
        deployment = None
    halted = deployment is not None and deployment["Status"] in ("paused", "failed")
    active = deployment if deployment is not None and deployment["Status"] in DEPLOYMENT_ACTIVE else None
    for a in job_allocs:
        if live(a):
            placer.count_on(a["NodeID"], a["TaskGroup"], 1)
    seq = 0
    if max_place is not None:
        plan["_max_place"] = max_place  # for _system_group
    if job["Type"] == "system":
        u = job.get("Update") if isinstance(job.get("Update"), dict) else {}
        if int(u.get("MaxParallel") or 0) > 0 and int(u.get("Stagger") or 0) > 0:
            plan["_rolling"] = [int(u["MaxParallel"]), int(u["Stagger"]) / 1e9]  # (updates left, stagger s)
    # Nomad's reconciler (filterAndStopAll): every allocation of a group the job no longer has is stopped.
    names = {g["Name"] for g in job["TaskGroups"]}
    for a in job_allocs:
        if a["TaskGroup"] not in names and a.get("DesiredStatus") == "run":
            lost = _node_lost(nodes.get(a["NodeID"])) and a.get("ClientStatus") not in TERMINAL_CLIENT
            stop_alloc(a, STOP_LOST if lost else STOP_EXTRA, "lost" if lost else "", alone=True)
    for group in job["TaskGroups"]:
        group_allocs = [a for a in job_allocs if a["TaskGroup"] == group["Name"]]
        if job["Type"] == "system":
            _system_group(plan, job, group, group_allocs, nodes, placer, stop_alloc, ev_now)
            continue
        if job["Type"] == "sysbatch":
            _sysbatch_group(plan, job, group, group_allocs, nodes, placer, stop_alloc)
            continue
        kept: list[dict[str, Any]] = []
        replace: list[tuple[str, dict[str, Any]]] = []  # (name, previous alloc)
        unknown_prev: dict[str, dict[str, Any]] = {}  # name -> an unknown allocation to stand in for
        resched_canaries: dict[str, dict[str, Any]] = {}  # name -> a failed canary placed again
        # Running an earlier spec: replaced as the group's update strategy allows.
        destructive: list[dict[str, Any]] = []
        in_place: list[dict[str, Any]] = []
        # Compared with the group's allocations' only: a new job's plan (none yet) skips it.
        digest = update_digest(job, group["Name"]) if group_allocs else ()
        # The group's allocations share their job records (every allocation a plan writes holds
        # the job it was placed from): each record's digest computed once, not once an allocation.
        def alloc_digest(a: dict[str, Any], name: str = group["Name"],
                         digests: dict[int, tuple[Any, tuple[Any, ...]]] = {}) -> tuple[Any, ...]:  # noqa: B006
            j = a.get("Job") or {}
            got = digests.get(id(j))
            if got is None:
                got = digests[id(j)] = (j, update_digest(j, name))  # (the record kept: its id stays its)
            return got[1]
        strategy = rolling(job, group)
        rp = reschedule_policy(job, group)
        reconnecting: list[dict[str, Any]] = []
        batch = job["Type"] == "batch"
        for a in group_allocs:
            if batch and not live(a) and a.get("JobVersion", 0) < job.get("Version", 0):
                # Nomad's filterOldTerminalAllocs: a batch job's finished run of an earlier version is
                # ignored -- left as it is, holding no place -- so a new version runs again.
                continue
            if a.get("DesiredStatus") != "run":
                if batch and (a.get("DesiredTransition") or {}).get("MigrateDisablePlacement"):
                    # Stopped by a drain at its deadline: it keeps counting toward the group, as a
                    # finished one does, so no later evaluation places it again (Nomad's reconciler:
                    # a drained batch allocation is untainted).
                    kept.append(a)
                continue
            cs = a.get("ClientStatus")
            node = nodes.get(a["NodeID"])
            status = node.get("Status") if node is not None else None
            if status == "disconnected" and cs not in TERMINAL_CLIENT:
                # Nomad's classifyAllocs on a disconnected node: a pending allocation, one without a
                # lost_after window and one whose window passed are lost; the others wait, unknown.
                if cs == "pending" or disc.lost_after_s(a) <= 0 or disc.expired(a, ev_now):
                    stop_alloc(a, STOP_LOST, "lost")
                    replace.append((a["Name"], a))
                    _wait_client_stop(plan, a, ev_now)
                    continue
                if cs != disc.UNKNOWN:
                    plan.setdefault("Disconnect", []).append(a["ID"])
                if disc.replace_on_disconnect(a):
                    unknown_prev.setdefault(a["Name"], a)  # its replacement takes its name
                else:
                    kept.append(a)
                continue
            if node is not None and status not in ("down", "disconnected") and cs in (
                    disc.UNKNOWN, "running", "failed") and disc.needs_to_reconnect(a):
                reconnecting.append(a)  # its node is back: it or its replacement is kept, below
                continue
            if _stale_canary(tables, a, deployment):
                # A canary of a deployment that ended unpromoted (a newer version came, or it
                # failed): it holds no place of its own (Nomad's cancelUnneededCanaries).
                stop_alloc(a, STOP_CANARY)
                continue
            if cs == "complete" and job["Type"] == "batch":
                kept.append(a)  # done: a batch allocation runs once
            elif cs in ("complete", "lost"):
                stop_alloc(a, STOP_JOB if cs == "complete" else STOP_LOST)
                replace.append((a["Name"], a))
            elif _node_lost(node):
                stop_alloc(a, STOP_LOST, "lost")
                replace.append((a["Name"], a))
                _wait_client_stop(plan, a, ev_now)
            elif cs == "failed" and deployment is not None and deployment["Status"] == "failed" \
                    and a.get("DeploymentID") == deployment["ID"] and _is_canary(a):
                stop_alloc(a, STOP_CANARY)  # a failed deployment's canaries go, failed ones too
            elif cs == "failed" and active is not None and a.get("DeploymentID") == active["ID"] \
                    and not (a.get("DesiredTransition") or {}).get("Reschedule"):
                kept.append(a)  # its running deployment decides first (Nomad's updateByReschedulable)
            elif cs == "failed" and rp is not None \
                    and (a.get("DesiredTransition") or {}).get("ForceReschedule") \
                    and not _of_failed_deployment(a, deployment):
                # Nomad's updateByReschedulable: one marked by `job eval -force-reschedule` is replaced
                # now, whatever its policy's delay and attempts left.
                stop_alloc(a, STOP_FAILED)
                replace.append((a["Name"], a))
                delays[a["ID"]] = next_delay_ns(rp, a)
            elif cs == "failed":
                # Nomad's reschedule policy: replaced once its delay has passed (a follow-up
                # evaluation comes back for it then), while its attempts last.
                due = next_reschedule(rp, a)
                waits = due is None or (now is not None and a.get("FollowupEvalID") != ev["ID"]
                                        and due[0] - now > RESCHEDULE_NOW_WINDOW_S)
                if waits and a.get("JobVersion", 0) != job.get("Version", 0) \
                        and alloc_digest(a) != digest:
                    destructive.append(a)  # a new version replaces it now, waiting or not (Nomad: untainted)
                    continue
                if due is not None and waits:
                    kept.append(a)  # its name waits for it
                    if not a.get("FollowupEvalID"):
                        later.append({"ID": a["ID"], "At": due[0]})
                    continue
                if due is None:
                    # Out of reschedule attempts (or a policy that allows none): left as it is, failed,
                    # its name taken, so no later evaluation replaces it either (Nomad's).
                    kept.append(a)
                    continue
                if _of_failed_deployment(a, deployment):
                    # Nomad's placeAllocs: an allocation of the job's failed deployment is not
                    # rescheduled (partOfFailedDeployment) -- the version did not work; it stays failed.
                    kept.append(a)
                    continue
                stop_alloc(a, STOP_FAILED)
                replace.append((a["Name"], a))
                delays[a["ID"]] = due[1]
            elif a.get("DesiredTransition", {}).get("Migrate"):
                stop_alloc(a, STOP_MIGRATE)
                transition = a["DesiredTransition"]
                if batch and transition.get("MigrateDisablePlacement"):
                    kept.append(a)  # a batch allocation a drain stops is not placed again (Nomad's)
                elif batch and transition.get("Reschedule"):
                    # `alloc stop` of a batch allocation (Nomad's CLI asks ?reschedule=true): stopped now,
                    # placed again as its reschedule policy says -- after its delay (a follow-up
                    # evaluation), while its attempts last; with none left, not by this evaluation.
                    due = next_reschedule(rp, a, stopped_batch=True)
                    if due is not None and (now is None or due[0] - now <= RESCHEDULE_NOW_WINDOW_S):
                        replace.append((a["Name"], a))
                        delays[a["ID"]] = due[1]
                    else:
                        kept.append(a)
                        if due is not None:
                            later.append({"ID": a["ID"], "At": due[0], "Stopped": True})
                else:
                    replace.append((a["Name"], a))
            elif a.get("JobVersion", 0) != job.get("Version", 0):
                if alloc_digest(a) != digest or not _in_place_fits(placer, nodes.get(a["NodeID"]), group):
                    destructive.append(a)
                else:
                    kept.append(a)
                    in_place.append(a)  # runs what the new version runs: updated in place (Nomad)
            else:
                kept.append(a)
        if reconnecting:
            kept = _reconnect(plan, job, group, reconnecting, group_allocs, kept, replace, stop_alloc)
        dstate: dict[str, Any] | None = None
        canary_names: list[str] = []
        if strategy is not None:
            destructive.sort(key=lambda a: (_name_index(a["Name"]), a["ID"]))
            canarying = False
            if strategy.get("Canary"):
                # A canary rescheduled here is placed again as a canary, under its own name.
                resched_canaries = {a["Name"]: a for _, a in replace if active is not None
                                    and a.get("DeploymentID") == active["ID"] and _is_canary(a)}
                replace = [(n, a) for n, a in replace if a["ID"] not in
                           {c["ID"] for c in resched_canaries.values()}]
                kept, destructive, canary_names, canarying = _canaries(
                    strategy, group, deployment, kept, destructive, stop_alloc, prefer=set(resched_canaries))
            # Nomad's computeLimit: MaxParallel less this deployment's
            # allocations not yet healthy; none while it is paused or failed,
            # or while its canaries wait for their promotion.
            limit = strategy["MaxParallel"]
            if halted or canarying:
                limit = 0
            elif active is not None:
                mine = [a for a in group_allocs if a.get("DeploymentID") == active["ID"]
                        and a.get("DesiredStatus") == "run"]
                if any((a.get("DeploymentStatus") or {}).get("Healthy") is False for a in mine):
                    limit = 0  # an unhealthy allocation means nothing else should happen (Nomad's)
                else:  # each not yet healthy holds a place (a failed one waiting to be rescheduled too)
                    limit -= sum(1 for a in mine if a.get("ClientStatus") not in ("lost", "complete")
                                 and not (a.get("DeploymentStatus") or {}).get("Healthy"))
            outdated = len(destructive)
            kept.extend(destructive[max(0, limit):])
            destructive = destructive[:max(0, limit)]
            if active is not None and group["Name"] in active["TaskGroups"]:
                dstate = active["TaskGroups"][group["Name"]]
            elif active is None and not halted:
                # A new deployment when this version changes what the group
                # runs: some allocations run an earlier spec, or none runs
                # this one yet (a new job).  Its total is what it must bring
                # up healthy: allocations already running this spec count.
                # Allocations updated in place join it (Nomad's DesiredTotal counts them): not current.
                moved = {a["ID"] for a in in_place}
                current = sum(1 for a in kept[:len(kept) - (outdated - len(destructive))]
                              if live(a) and a["ID"] not in moved)
                total = group["Count"] - current
                # Nomad's hadRunning: an allocation of this version of this job ever ran here (a
                # failed or lost one too) -- then a replacement is a reschedule, not a rollout.
                had_running = any(a.get("JobVersion", 0) == job.get("Version", 0)
                                  and (a.get("Job") or {}).get("CreateIndex", job.get("CreateIndex"))
                                  == job.get("CreateIndex") for a in group_allocs)
                if total > 0 and (outdated or in_place or not had_running or canary_names):
                    if plan.get("Deployment") is None:
                        plan["Deployment"] = new_deployment(job, ev["ID"])
                    dstate = plan["Deployment"]["TaskGroups"][group["Name"]] = {
                        "AutoRevert": strategy["AutoRevert"], "AutoPromote": strategy["AutoPromote"],
                        "ProgressDeadline": strategy["ProgressDeadline"], "RequireProgressBy": None,
                        "Promoted": False, "PlacedCanaries": [],
                        "DesiredCanaries": len(canary_names),  # no more than there are to replace
                        "DesiredTotal": total,
                        "PlacedAllocs": 0, "HealthyAllocs": 0, "UnhealthyAllocs": 0}
        for a in destructive:
            stop_alloc(a, STOP_UPDATE)
            replace.append((a["Name"], a))
        kept.sort(key=lambda a: (_name_index(a["Name"]), a["ID"]))
        taken: set[int] = set()
        for a in kept:
            i = _name_index(a["Name"])
            if i >= group["Count"] or i in taken:
                if (a.get("ClientStatus") != "complete" or job["Type"] != "batch") \
                        and a.get("DesiredStatus") == "run" and a["ID"] not in {st["ID"] for st in stop}:
                    stop_alloc(a, STOP_EXTRA, alone=True)
                continue
            taken.add(i)
        if in_place:
            stopping = {st["ID"] for st in plan["Stop"]}
            updated = [a["ID"] for a in in_place if a["ID"] not in stopping and live(a)]
            plan.setdefault("InPlace", []).extend(updated)
            in_place_all += [a for a in in_place if a["ID"] in set(updated)]
            if updated:  # each takes the memory_max an allocation placed now would have
                memory = memory_max_fields(group, placer.oversubscribe)
                plan.setdefault("InPlaceMemory", {}).update((aid, memory) for aid in updated)
        prev_by_name = {**unknown_prev, **{name: a for name, a in replace}}
        missing = [i for i in range(group["Count"]) if i not in taken]
        if any(x["ID"] in {a["ID"] for a in group_allocs} for x in plan.get("LostLater", ())):
            # A lost allocation its client may still run until stop_on_client_after (and its kill
            # timeout) has passed: the group places nothing before then (Nomad's lostLater).
            missing = []
        if any(group_ports(group)) or group_cores(group):
            placer.stopping = {st["ID"] for st in plan["Stop"]}  # what this plan stops holds no port nor core
        # Nomad's FailedTGAllocs: the AllocMetric of the group's first placement that failed (each
        # Select starts new metrics), the others counted as CoalescedFailures.
        metrics: dict[str, Any] | None = None
        failed = 0
        # (name, the allocation it replaces, its deployment status): the missing ones, then any
        # canaries -- each runs the new version beside the allocation whose name it takes over
        # once promoted.
        names = [f"{job['ID']}.{group['Name']}[{i}]" for i in missing]
        wanted: list[tuple[str, Any, Any]] = [(name, prev_by_name.get(name), None) for name in names]
        if dstate is not None:
            wanted += [(name, resched_canaries.get(name), {"Healthy": None, "Canary": True})
                       for name in canary_names]
        for name, prev, dep_status in wanted:
            if max_place is not None and len(plan["Place"]) >= max_place:
                plan["More"] = True  # the rest in a follow-up evaluation's plan
                # Only a failed or an outdated one is unstopped (a lost one stays stopped): the others
                # skip _unstop's scan of the stops, thousands of them when a large node went down.
                if prev is not None and (prev.get("ClientStatus") == "failed"
                                         or prev.get("JobVersion", 0) != job.get("Version", 0)):
                    _unstop(plan, placer, prev)
                continue
            if metrics is not None:
                # Nomad's computePlacements: once a group has failed, its other placements are only
                # counted (CoalescedFailures), the stack not run again for them; the allocation one
                # would have replaced keeps running.
                failed += 1
                if dep_status is not None and failed_canaries is not None:
                    failed_canaries[group["Name"]] = failed_canaries.get(group["Name"], 0) + 1
                if prev is not None:
                    _note_failed_update(plan, group, prev, failed_updates)
                    _unstop(plan, placer, prev)
                continue
            penalized = frozenset()
            if prev is not None:  # Nomad's getSelectOptions: not where it failed, nor where it was before
                penalized = frozenset({*((prev.get("NodeID", ""),) if prev.get("ClientStatus") == "failed"
                                         else ()), *(e.get("PrevNodeID", "") for e in _events(prev))})
            attempt = _new_metrics()
            node_id = placer.select(group, attempt, penalized, prev, name, fresh=True)
            if node_id is None and placer.preempt_enabled:
                # Nomad's selectNextOption: with the job type's preemption enabled, the stack runs again
                # allowed to evict (its metrics are the attempt's).
                attempt = _new_metrics()
                node_id = placer.select(group, attempt, penalized, prev, name, fresh=True, preempt=True)
            if node_id is None:
                failed += 1
                if metrics is None:
                    metrics = attempt
                if dep_status is not None and failed_canaries is not None:
                    failed_canaries[group["Name"]] = failed_canaries.get(group["Name"], 0) + 1
                if prev is not None:
                    _note_failed_update(plan, group, prev, failed_updates)
                    _unstop(plan, placer, prev)
                continue
            seq += 1
            placed = _alloc(job, group, name, node_id, nodes[node_id], ev["ID"], seq, prev, placer.last_ports,
                            oversubscribe=placer.oversubscribe, need=placer.info(group)[0],
                            cores=placer.last_cores)
            placed["Metrics"] = placer.last_metric
            if placer.last_preempted:
                placer.record_preemptions(placed, placer.last_preempted)
            if prev is not None and prev["ID"] in delays and rp is not None:
                placed["RescheduleTracker"] = _tracker(rp, prev, ev_now, delays[prev["ID"]])
            if dstate is not None:
                placed["DeploymentID"] = (active or plan["Deployment"])["ID"]
                placed["DeploymentStatus"] = dep_status
            plan["Place"].append(placed)
        if metrics is not None:
            metrics["CoalescedFailures"] = failed - 1
            plan["Failed"][group["Name"]] = _group_metrics(metrics, placer)
    current = plan.get("Deployment") or active
    if current is not None and job["Type"] == "service":
        # Nomad's generic scheduler places every allocation within the job's active deployment, a
        # group's it does not track (no update strategy) too.
        for placed in plan["Place"]:
            if not placed.get("DeploymentID"):
                placed["DeploymentID"], placed["DeploymentStatus"] = current["ID"], None
    if in_place_all:
        # Nomad's generic scheduler: an allocation updated in place takes the plan's deployment's ID,
        # or else the job's latest deployment's (the group's or not, of this version or not), its
        # health to be reported again (the store clears DeploymentStatus when the ID changes).
        dep = plan.get("Deployment") or latest
        dep_id = dep["ID"] if dep is not None else ""
        moved = {a["ID"]: dep_id for a in in_place_all if dep_id and a.get("DeploymentID") != dep_id}
        if moved:
            plan.setdefault("InPlaceDeployment", {}).update(moved)
    plan.pop("_rolling", None)
    plan.pop("_max_place", None)
    if later:
        plan["RescheduleLater"] = sorted(later, key=lambda x: (x["At"], x["ID"]))
    return plan


DEFAULT_KILL_TIMEOUT_NS = 5 * 10**9  # Nomad's DefaultKillTimeout


def _in_place_fits(placer: _Placer, node: dict[str, Any] | None, group: dict[str, Any]) -> bool:
    """Nomad's genericAllocUpdateFn: an allocation is updated in place only if its node is still in the
    job's datacenters and node pool and still passes the new version's constraints and drivers (its
    resources are unchanged, or the update would be destructive anyway); else it is replaced."""
    if node is None:
        return True  # a lost allocation: handled as one
    job = placer.job
    if not in_any_dc(node, job.get("Datacenters", ["*"])) or (
            job.get("NodePool", "default") not in ("all", node.get("NodePool", "default"))):
        return False
    if not node_ready(node):  # Nomad selects on the node itself, eligible or not: its constraints decide
        return placer._check({**node, "Status": "ready", "SchedulingEligibility": "eligible",
                              "DrainStrategy": None}, group) == FEASIBLE
    return placer.verdict(node, group) == FEASIBLE


def _wait_client_stop(plan: dict[str, Any], a: dict[str, Any], now: float) -> None:
    """A lost allocation whose group has ``disconnect.stop_on_client_after``: its client stops it by
    itself that long after its last heartbeat, so its replacement waits until then plus the longest
    kill timeout (Nomad's delayByStopAfter / WaitClientStop), for a follow-up evaluation."""
    stop_s = disc.stop_on_client_after_s(a)
    if not stop_s:
        return
    group = next((g for g in (a.get("Job") or {}).get("TaskGroups") or () if g.get("Name") == a["TaskGroup"]),
                 {})
    kill = max([DEFAULT_KILL_TIMEOUT_NS, *(int(t.get("KillTimeout") or 0) for t in group.get("Tasks") or ())])
    plan.setdefault("LostLater", []).append({"ID": a["ID"], "At": now + stop_s + kill / 1e9})


def _reconnect(plan: dict[str, Any], job: dict[str, Any], group: dict[str, Any],
               reconnecting: list[dict[str, Any]], group_allocs: list[dict[str, Any]],
               kept: list[dict[str, Any]], replace: list[tuple[str, dict[str, Any]]],
               stop_alloc: Any) -> list[dict[str, Any]]:
    """Allocations that were ``unknown`` and whose node is back (Nomad's reconcileReconnecting).

    One that failed meanwhile is stopped and replaced; one of an older job version, or one the
    operator asked to move, is stopped; otherwise each live replacement down its NextAllocation
    chain is weighed against it by the group's ``Disconnect.Reconcile``, and the one not picked is
    stopped.  A kept one that reports running is recorded as reconnected (plan ``Reconnect``).
    Returns the kept list without the replacements stopped here.
    """
    by_id = {a["ID"]: a for a in group_allocs}
    stopped: set[str] = set()
    for r in sorted(reconnecting, key=lambda a: (a["Name"], a["ID"])):
        cs = r.get("ClientStatus")
        if cs == "failed":
            stop_alloc(r, STOP_FAILED, "failed")
            stopped.add(r["ID"])
            replace.append((r["Name"], r))
            continue
        t = r.get("DesiredTransition") or {}
        if t.get("Migrate") or t.get("Reschedule") or t.get("ForceReschedule") \
                or r.get("JobVersion", 0) < job.get("Version", 0) \
                or (r.get("Job") or {}).get("CreateIndex", 0) < job.get("CreateIndex", 0):
            stop_alloc(r, STOP_EXTRA)
            stopped.add(r["ID"])
            replace.append((r["Name"], r))
            continue
        chain, nxt, seen = [], r.get("NextAllocation") or "", set()
        while nxt in by_id and nxt not in seen:
            seen.add(nxt)
            chain.append(by_id[nxt])
            nxt = by_id[nxt].get("NextAllocation") or ""
        for rep in chain:
            if rep.get("DesiredStatus") != "run" or rep["ID"] in stopped:
                continue  # server-terminal already: nothing to weigh or stop
            if disc.pick(r, rep, group) is rep:
                if r["ID"] not in stopped:
                    stop_alloc(r, STOP_EXTRA)
                    stopped.add(r["ID"])
            else:
                stop_alloc(rep, disc.STOP_RECONNECTED)
                stopped.add(rep["ID"])
        if r["ID"] not in stopped:
            kept.append(r)
            if cs == "running":
                plan.setdefault("Reconnect", []).append(r["ID"])
    return [a for a in kept if a["ID"] not in stopped]


def _is_canary(a: dict[str, Any]) -> bool:
    return bool((a.get("DeploymentStatus") or {}).get("Canary"))


def _note_failed_update(plan: dict[str, Any], group: dict[str, Any], prev: dict[str, Any],
                        failed_updates: dict[str, list[str]] | None) -> None:
    """*prev*'s replacement found no node: noted in *failed_updates* (a dry run's) when the plan
    replaces it for a destructive update."""
    if failed_updates is not None and any(st["ID"] == prev["ID"] and st["DesiredDescription"] == STOP_UPDATE
                                          for st in plan["Stop"]):
        failed_updates.setdefault(group["Name"], []).append(prev["ID"])


def _unstop(plan: dict[str, Any], placer: _Placer, prev: dict[str, Any]) -> None:
    """No node took *prev*'s replacement: a failed allocation or one being updated is not stopped after
    all (Nomad's PopUpdate) -- the failed one keeps its reschedule history for a later evaluation, the
    updated one keeps running.  Unless its ports were taken meanwhile by this plan."""
    stop = plan["Stop"]
    entry = next((st for st in stop if st["ID"] == prev["ID"]
                  and st["DesiredDescription"] in (STOP_FAILED, STOP_UPDATE)), None)
    if entry is None:
        return
    ports = alloc_port_keys(prev) if live(prev) else []
    cores = alloc_cores(prev) if live(prev) else []
    held_cores = placer.usage.cores.get(prev["NodeID"]) if cores else None
    if held_cores is not None and held_cores.intersection(cores):
        return  # a placement of this plan took its cores
    if ports:
        held = placer.usage.ports.get(prev["NodeID"])
        if held is not None:
            if held.intersection(ports):
                return
            held.update(ports)
    if held_cores is not None:
        held_cores.update(cores)
    if ports or cores:
        placer.stopping.discard(prev["ID"])
    if live(prev):  # it keeps its room after all, and counts on its node again
        u = placer.usage[prev["NodeID"]]
        for i, v in enumerate(alloc_usage(prev)):
            u[i] += v
        placer.usage.add_allocs(prev["NodeID"], 1)
        placer.count_alloc(prev, 1)
    stop.remove(entry)


def _canaries(strategy: dict[str, Any], group: dict[str, Any], deployment: dict[str, Any] | None,
              kept: list[dict[str, Any]], destructive: list[dict[str, Any]],
              stop_alloc: Any, prefer: set[str] | None = None,
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], bool]:
    """Nomad's canaries for a group whose update strategy has ``canary = N``.

    Until the deployment's group is promoted, N allocations of the new
    version run beside the old ones (each under the name of an old one it
    will replace) and nothing else is replaced; promoted, each canary takes
    over its name -- the old allocation holding it stops, without a
    replacement -- and the rest roll as usual.  A failed deployment's
    unpromoted canaries stop.  Returns (kept, destructive, the names to place
    canaries under now, whether the group is held for its canaries).
    """
    state = (deployment or {}).get("TaskGroups", {}).get(group["Name"]) or {}
    # This deployment's canaries still held: running ones, and failed ones waiting (for the
    # deployment, or their reschedule delay) -- each fills a canary place.  Known, as Nomad's
    # reconciler knows them, by the deployment's PlacedCanaries: a promoted one is no longer
    # marked DeploymentStatus.Canary.
    placed = set(state.get("PlacedCanaries") or ())
    mine = [a for a in kept if deployment is not None and a.get("DeploymentID") == deployment["ID"]
            and (a["ID"] in placed or _is_canary(a))]
    ids = {a["ID"] for a in mine}
    if state.get("Promoted"):
        names = {a["Name"] for a in mine if live(a)}
        for a in [a for a in destructive if a["Name"] in names]:
            stop_alloc(a, STOP_UPDATE)
        return kept, [a for a in destructive if a["Name"] not in names], [], False
    if deployment is not None and deployment["Status"] == "failed":
        for a in mine:
            stop_alloc(a, STOP_CANARY)
        return [a for a in kept if a["ID"] not in ids], destructive, [], False
    kept = [a for a in kept if a["ID"] not in ids]  # a canary holds no name until promoted
    prefer = prefer or set()
    if not destructive and not mine and not prefer:
        return kept, destructive, [], False  # nothing to update: no canaries (a new job, a scale)
    want = (state.get("DesiredCanaries") if state else strategy["Canary"]) - len(mine)
    held = {a["Name"] for a in mine}
    free = [a["Name"] for a in destructive if a["Name"] not in held]
    names = ([n for n in free if n in prefer] + [n for n in free if n not in prefer])[:max(0, want)]
    if deployment is not None and deployment["Status"] != "running":
        names = []  # paused: nothing new is placed
    return kept, destructive, names, True


def _stale_canary(tables: dict[str, Any], a: dict[str, Any], deployment: dict[str, Any] | None) -> bool:
    """A canary whose deployment is not this version's latest and never promoted its group (a failed
    one too: it is not rescheduled as an allocation of the current version)."""
    if not _is_canary(a):
        return False
    if deployment is not None and a.get("DeploymentID") == deployment["ID"]:
        return False  # this version's: _canaries decides
    own = tables.get("deployments", {}).get(a.get("DeploymentID") or "")
    return not ((own or {}).get("TaskGroups", {}).get(a["TaskGroup"]) or {}).get("Promoted")


def _node_lost(node: dict[str, Any] | None) -> bool:
    return node is None or node.get("Status") == "down"


def _system_node_feasible(placer: _Placer, node: dict[str, Any], group: dict[str, Any],
                          metrics: dict[str, Any]) -> bool:
    """A system or sysbatch group's feasibility check of one node, counted in *metrics*; a node not
    ready or outside the job's datacenters or pool is not one Nomad's system scheduler considers."""
    verdict = placer.verdict(node, group)
    if verdict == OUTSIDE:
        return False
    metrics["NodesEvaluated"] += 1
    if verdict != FEASIBLE:
        filter_node(metrics, node, verdict)
        return False
    return True


def _system_group(plan: dict[str, Any], job: dict[str, Any], group: dict[str, Any],
                  group_allocs: list[dict[str, Any]], nodes: dict[str, Any], placer: _Placer,
                  stop_alloc: Any, now: float) -> None:
    digest = update_digest(job, group["Name"]) if group_allocs else ()  # compared with allocations' only
    have: dict[str, dict[str, Any]] = {}
    in_place: list[str] = []
    # The live allocations first, then the finished ones newest first: a finished one only stands for
    # its node (is what a placement there replaces) when nothing live or newer does (Nomad's node
    # reconciler keeps the latest terminal allocation per node apart from the live ones).
    ordered = sorted(group_allocs, key=lambda a: (a.get("ClientStatus") in TERMINAL_CLIENT,
                                                  -a.get("CreateIndex", 0) if a.get("ClientStatus")
                                                  in TERMINAL_CLIENT else 0))
    for a in ordered:
        if a.get("DesiredStatus") != "run":
            continue
        node = nodes.get(a["NodeID"])
        cs = a.get("ClientStatus")
        if node is not None and node.get("Status") == "disconnected" and cs not in TERMINAL_CLIENT:
            # As the generic scheduler: unknown while its lost_after window lasts, then lost.
            if cs == "pending" or disc.lost_after_s(a) <= 0 or disc.expired(a, now):
                stop_alloc(a, STOP_LOST, "lost")
            else:
                if cs != disc.UNKNOWN:
                    plan.setdefault("Disconnect", []).append(a["ID"])
                have.setdefault(a["NodeID"], a)
        elif _node_lost(node):
            if cs not in TERMINAL_CLIENT:
                stop_alloc(a, STOP_LOST, "lost")
        elif cs in TERMINAL_CLIENT:
            # Finished (a task failed past its restart policy): not stopped -- Nomad leaves a terminal
            # allocation as it is -- but placed again on its node, as its successor, when the node
            # is ready and nothing live or newer is there.
            if group["Count"] != 0 and a["NodeID"] not in have and node_ready(node):
                have[a["NodeID"]] = a
                plan.setdefault("_replace", {})[a["NodeID"]] = a
        elif cs == "running" and disc.needs_to_reconnect(a) and a["NodeID"] not in have \
                and a.get("JobVersion", 0) == job.get("Version", 0):
            plan.setdefault("Reconnect", []).append(a["ID"])  # its node is back, and so is it
            have[a["NodeID"]] = a
        elif a.get("DesiredTransition", {}).get("Migrate"):
            stop_alloc(a, STOP_NODE_TAINTED)
        elif group["Count"] == 0 or a["NodeID"] in have:
            stop_alloc(a, STOP_EXTRA, alone=True)
        elif not node_ready(node):
            # Nomad's node reconciler: on a node not ready (ineligible, draining) what runs runs on
            # until the job changes, then it is stopped -- not replaced, and not one of the rolling
            # update's max_parallel.
            if a.get("JobVersion", 0) != job.get("Version", 0):
                stop_alloc(a, STOP_EXTRA)
            else:
                have[a["NodeID"]] = a
        elif a.get("JobVersion", 0) != job.get("Version", 0) \
                and update_digest(a.get("Job") or {}, group["Name"]) != digest:
            budget = plan.get("_rolling")
            if budget is not None:
                if budget[0] <= 0:
                    # Nomad's system scheduler: max_parallel updates, then the rest after the stagger.
                    have[a["NodeID"]] = a
                    plan["RollingWaitS"] = budget[1]
                    continue
                budget[0] -= 1
            stop_alloc(a, STOP_UPDATE)
            if node_ready(node):
                have.setdefault(a["NodeID"], a)  # re-place below, on the same node
                plan.setdefault("_replace", {})[a["NodeID"]] = a
        else:
            have[a["NodeID"]] = a
            if a.get("JobVersion", 0) != job.get("Version", 0) and cs not in TERMINAL_CLIENT:
                in_place.append(a["ID"])  # runs what the new version runs: updated in place
    if in_place:
        plan.setdefault("InPlace", []).extend(in_place)
        memory = memory_max_fields(group, placer.oversubscribe)
        plan.setdefault("InPlaceMemory", {}).update((aid, memory) for aid in in_place)
    if group["Count"] == 0:
        return
    replace_on = plan.pop("_replace", {})
    report = _SystemReport()
    if any(group_ports(group)) or group_cores(group):
        placer.stopping = {st["ID"] for st in plan["Stop"]}
    need = (*group_resources(group), group_disk_mb(group))
    limit = plan.get("_max_place")
    placed_before = len(plan["Place"])
    for node_id in placer.sorted_ids:
        if node_id in have and node_id not in replace_on:
            continue
        if limit is not None and len(plan["Place"]) >= limit:
            plan["More"] = True  # the plan entry is full: the other nodes in a follow-up evaluation's plan
            if node_id in replace_on:
                _unstop(plan, placer, replace_on[node_id])
            continue
        node = nodes[node_id]
        metrics = _new_metrics()  # Nomad's system stack: each node is tried alone, with metrics of its own
        props = placer.props(group)
        if not _system_node_feasible(placer, node, group, metrics) \
                or (props and not props_ok(props, node, metrics)) \
                or not volumes_feasible(node, group, f"{job['ID']}.{group['Name']}[0]", metrics) \
                or not host_networks_feasible(node, group, metrics):
            report.filtered_out(metrics)
            continue
        if _max_allocs_full(placer.usage, node_id, node, metrics):
            report.exhausted(metrics)
            continue
        cap = placer.usage.capacity(node_id) if placer.usage.capacity is not None else node_capacity(node)
        prev = replace_on.get(node_id)
        fit = _fit_on_node(placer, node_id, node, group, need, cap, metrics)
        if fit is None:
            report.exhausted(metrics)
            continue
        ports, evicts, util = fit
        if ports:
            placer.usage.used_ports(node_id, placer.stopping).update(
                alloc_port_keys({"AllocatedPorts": ports}))
        u = placer.usage[node_id]
        for i in range(3):
            u[i] += need[i]
        cores = placer.last_cores
        if cores:
            placer.take_cores(node_id, cores)
            u[0] += cores[1]
        placer.usage.add_allocs(node_id, 1)
        name = f"{job['ID']}.{group['Name']}[0]"
        placed = _alloc(job, group, name, node_id, node, plan["EvalID"], len(plan["Place"]) + 1, prev, ports,
                        oversubscribe=placer.oversubscribe, cores=cores)
        if evicts is not None:
            placer.record_preemptions(placed, evicts)
        # Nomad's system stack: the node alone is evaluated, and scored by bin-packing only (over what
        # it holds with the evicted allocations, as Nomad's AllocsFit utilization).
        binpack = fit_score(cap, util, placer.spread)
        in_pool, by_dc = placer.pool_counts()
        placed["Metrics"] = stored_metric(_SYSTEM, 1, 0, 0, in_pool, job.get("NodePool", ""), by_dc, None,
                                          [node_id, binpack or 0, binpack])
        plan["Place"].append(placed)
    if report.failure is not None:
        plan["Failed"][group["Name"]] = _group_metrics(report.failure, placer)
        return
    stopped = {st["ID"] for st in plan["Stop"]}
    existing = any(a["ID"] not in stopped for nid, a in have.items() if nid not in replace_on)
    _all_filtered(plan, group, report.filtered, placer, len(plan["Place"]) > placed_before, existing)


class _SystemReport:
    """What a system or sysbatch group's placements report (Nomad's SystemScheduler.computePlacements):
    each node is tried alone, with metrics of its own.  A node that filters the group out is no
    failure; its filter counts join the group's ``filtered`` metrics (mergeNodeFiltered), reported only
    when every node filtered it out (_all_filtered).  The first node without room is the group's
    ``failure``, with its own metrics; each later one is one more of its CoalescedFailures."""

    def __init__(self) -> None:
        self.filtered = _new_metrics()
        self.failure: dict[str, Any] | None = None

    def filtered_out(self, m: dict[str, Any]) -> None:
        acc = self.filtered
        acc["NodesEvaluated"] += m["NodesEvaluated"]
        acc["NodesFiltered"] += m["NodesFiltered"]
        for key in ("ClassFiltered", "ConstraintFiltered"):
            for k, v in (m.get(key) or {}).items():
                counts = acc.setdefault(key, {})
                counts[k] = counts.get(k, 0) + v

    def exhausted(self, m: dict[str, Any]) -> None:
        if self.failure is None:
            self.failure = m
        else:
            self.failure["CoalescedFailures"] += 1


def _all_filtered(plan: dict[str, Any], group: dict[str, Any], metrics: dict[str, Any], placer: _Placer,
                  placed: bool, existing: bool) -> None:
    """Nomad's system scheduler (computePlacements): a node that filters the group out is no failure --
    unless every node tried did, and the group has no allocation on any node: then the filtered
    metrics are the group's failure to place ("nomad job run" shows why), with no blocked evaluation
    (nothing freed on a node makes it fit)."""
    if placed or existing or not metrics["NodesFiltered"]:
        return
    plan["Failed"][group["Name"]] = _group_metrics(metrics, placer)
    plan.setdefault("FilteredOnly", []).append(group["Name"])


def _ran_successfully(a: dict[str, Any]) -> bool:
    """Nomad's Allocation.RanSuccessfully: the client ran it and every task finished successfully."""
    states = a.get("TaskStates") or {}
    return bool(states) and all(isinstance(st, dict) and st.get("State") == "dead" and not st.get("Failed")
                                for st in states.values())


def _in_dcs_and_pool(job: dict[str, Any], node: dict[str, Any]) -> bool:
    """The node is one of the job's datacenters and its node pool (Nomad's readyNodesInDCsAndPool)."""
    dcs = job.get("Datacenters", ["*"])
    pool = job.get("NodePool", "default")
    return in_any_dc(node, dcs) and (pool == "all" or node.get("NodePool", "default") == pool)


def _sysbatch_group(plan: dict[str, Any], job: dict[str, Any], group: dict[str, Any],
                    group_allocs: list[dict[str, Any]], nodes: dict[str, Any], placer: _Placer,
                    stop_alloc: Any) -> None:
    """Nomad's sysbatch scheduler (its node reconciler): each of the group's ``count`` allocations once on
    every ready node of the job's datacenters and pool that is feasible, run to completion.

    An allocation that finished (complete, failed or lost) is not run again on its node -- unless the
    job changed what it runs since (a destructive update), when a new one replaces it there; a
    version that changes nothing it runs leaves it be.  A live one is replaced on its node by a
    destructive update, marked lost when its node is down (a completed one stays as it is), stopped
    when it is marked to migrate (drain, ``alloc stop``; nothing replaces it) or when its node is no
    longer ready or in the job's datacenters and pool and the job changed.  Nothing rolls: every
    update is placed at once (a sysbatch job has no update block)."""
    count = group["Count"]
    names = [f"{job['ID']}.{group['Name']}[{i}]" for i in range(count)]
    wanted = set(names)
    digest = update_digest(job, group["Name"])
    version = job.get("Version", 0)

    def destructive(a: dict[str, Any]) -> bool:
        return (a.get("JobVersion", 0) != version
                and update_digest(a.get("Job") or {}, group["Name"]) != digest)

    live_at: dict[tuple[str, str], dict[str, Any]] = {}  # (node, name) -> its live allocation
    last_terminal: dict[tuple[str, str], dict[str, Any]] = {}  # the newest finished (TerminalByNodeByName)
    replace_on: dict[tuple[str, str], dict[str, Any]] = {}  # (node, name) -> the allocation replaced there
    in_place: list[str] = []
    for a in group_allocs:
        key = (a["NodeID"], a["Name"])
        if not live(a):
            old = last_terminal.get(key)
            if old is None or (a.get("CreateIndex", 0), a["ID"]) > (old.get("CreateIndex", 0), old["ID"]):
                last_terminal[key] = a
            continue
        node = nodes.get(a["NodeID"])
        if a["Name"] not in wanted or key in live_at:
            stop_alloc(a, STOP_EXTRA, alone=True)
            continue
        live_at[key] = a
        if a.get("DesiredTransition", {}).get("Migrate"):
            stop_alloc(a, STOP_NODE_TAINTED)
        elif _node_lost(node):
            if not _ran_successfully(a):
                stop_alloc(a, STOP_LOST, "lost")
        elif not node_ready(node):
            if a.get("JobVersion", 0) != version:
                stop_alloc(a, STOP_EXTRA)  # Nomad: not ready, and the job changed
        elif not _in_dcs_and_pool(job, node):
            stop_alloc(a, STOP_EXTRA, alone=True)  # no longer in the job's datacenters or node pool
        elif destructive(a):
            stop_alloc(a, STOP_UPDATE)
            replace_on[key] = a
        elif a.get("JobVersion", 0) != version:
            in_place.append(a["ID"])  # runs what the new version runs: updated in place
    if in_place:
        plan.setdefault("InPlace", []).extend(in_place)
        memory = memory_max_fields(group, placer.oversubscribe)
        plan.setdefault("InPlaceMemory", {}).update((aid, memory) for aid in in_place)
    for key, a in last_terminal.items():
        if key not in live_at and a["Name"] in wanted and destructive(a) and node_ready(nodes.get(key[0])):
            # It ran an earlier spec: the new one runs there once more (Nomad's update of a terminal
            # sysbatch allocation, evicted and placed again).
            stop_alloc(a, STOP_UPDATE)
            replace_on[key] = a
    if count == 0:
        return
    if any(group_ports(group)) or group_cores(group):
        placer.stopping = {st["ID"] for st in plan["Stop"]}
    report = _SystemReport()
    need = (*group_resources(group), group_disk_mb(group))
    limit = plan.get("_max_place")
    placed_before = len(plan["Place"])
    for node_id in placer.sorted_ids:
        node = nodes[node_id]
        todo = [n for n in names if (node_id, n) in replace_on
                or ((node_id, n) not in live_at and (node_id, n) not in last_terminal)]
        if not todo:
            continue
        if limit is not None and len(plan["Place"]) >= limit:
            # The plan entry is full (max_placements_per_entry): the rest in a follow-up evaluation's plan,
            # and what they would replace is not stopped now.
            plan["More"] = True
            for name in todo:
                if (node_id, name) in replace_on:
                    _unstop(plan, placer, replace_on[(node_id, name)])
            continue
        metrics = _new_metrics()  # Nomad's system stack: each placement on its node alone, its own metrics
        if not _system_node_feasible(placer, node, group, metrics):
            report.filtered_out(metrics)
            continue
        for at, name in enumerate(todo):
            if limit is not None and len(plan["Place"]) >= limit:
                plan["More"] = True
                for rest in todo[at:]:
                    if (node_id, rest) in replace_on:
                        _unstop(plan, placer, replace_on[(node_id, rest)])
                break
            metrics = _new_metrics()
            metrics["NodesEvaluated"] = 1  # the node, feasible for the group (checked once above)
            props = placer.props(group)
            if props and not props_ok(props, node, metrics):
                report.filtered_out(metrics)
                break
            prev = replace_on.get((node_id, name))
            placed = _place_on(plan, job, group, node_id, node, name, prev, placer, metrics, need)
            if placed is None:
                report.filtered_out(metrics)
            elif placed is False:
                report.exhausted(metrics)
                if prev is not None:
                    _unstop(plan, placer, prev)
    if report.failure is not None:
        plan["Failed"][group["Name"]] = _group_metrics(report.failure, placer)
        return
    stopped = {st["ID"] for st in plan["Stop"]}
    existing = any(a["ID"] not in stopped for key, a in (*live_at.items(), *last_terminal.items())
                   if key not in replace_on)
    _all_filtered(plan, group, report.filtered, placer, len(plan["Place"]) > placed_before, existing)


def _fit_on_node(placer: _Placer, node_id: str, node: dict[str, Any], group: dict[str, Any],
                 need: tuple[int, int, int], cap: tuple[int, ...], metrics: dict[str, Any],
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, tuple[int, ...]] | None:
    """A system or sysbatch placement's room on its node (Nomad's system stack's BinPackIterator): the
    ports assigned, the allocations it evicts (None: none; the usage view counts them evicted), and
    what the node would hold (scored by bin-packing); None when it does not fit, counted in *metrics*.
    With the job type's preemption enabled, a node lacking room or ports is tried with evictions.  The
    cores its tasks reserve are left in ``placer.last_cores`` (None: none), their MHz in the utilisation;
    a node without enough free cores is exhausted ("cores"), evictions or not (Nomad's SELECTCORES)."""
    placer.last_cores = None
    if placer.wanted_cores(group):
        picked = placer.cores_on(node_id, node, group)
        if picked is None:
            _exhaust(metrics, node, "cores")
            return None
        placer.last_cores = picked
        need = (need[0] + picked[1], need[1], need[2])
    used = placer.usage[node_id]
    util = tuple(used[i] + need[i] for i in range(3))
    dim = exhausted(cap, util)
    evicts = None
    if dim is not None:
        option = placer.preempt_option(node_id, group, need, cap) if placer.preempt_enabled else None
        if option is None:
            _exhaust(metrics, node, dim)
            return None
        evicts, util = option
        placer.evict(node_id, evicts)
    # Its static ports held by others may be evicted too: a collision is counted only if they may not.
    quiet = evicts is None and placer.preempt_enabled and bool(group_ports(group)[0])
    ports = placer.assign_ports(node_id, node, group, None if quiet else metrics)
    if ports is None and quiet:
        option = placer.preempt_option(node_id, group, need, cap)
        if option is not None:
            evicts, util = option
            placer.evict(node_id, evicts)
            ports = placer.assign_ports(node_id, node, group, None)
        else:
            placer.assign_ports(node_id, node, group, metrics)  # counted as the port it lacks
    if ports is None:
        if evicts is not None:
            placer.evict(node_id, evicts, undo=True)
        return None
    return ports, evicts, util


def _place_on(plan: dict[str, Any], job: dict[str, Any], group: dict[str, Any], node_id: str,
              node: dict[str, Any], name: str, prev: dict[str, Any] | None, placer: _Placer,
              metrics: dict[str, Any], need: tuple[int, int, int]) -> bool | None:
    """Place allocation *name* of *group* on the one node *node_id* (feasible for the group): True when
    placed, False when it has no room (a failure to report), None when filtered out (volumes, host
    networks: not a failure, as a system job's node that does not match)."""
    if not volumes_feasible(node, group, name, metrics) or not host_networks_feasible(node, group, metrics):
        return None
    if _max_allocs_full(placer.usage, node_id, node, metrics):
        return False
    cap = placer.usage.capacity(node_id) if placer.usage.capacity is not None else node_capacity(node)
    used = placer.usage[node_id]
    fit = _fit_on_node(placer, node_id, node, group, need, cap, metrics)
    if fit is None:
        return False
    ports, evicts, _ = fit
    if ports:
        placer.usage.used_ports(node_id, placer.stopping).update(alloc_port_keys({"AllocatedPorts": ports}))
    for i in range(3):
        used[i] += need[i]
    cores = placer.last_cores
    if cores:
        placer.take_cores(node_id, cores)
        used[0] += cores[1]
    placer.usage.add_allocs(node_id, 1)
    placed = _alloc(job, group, name, node_id, node, plan["EvalID"], len(plan["Place"]) + 1,
                    prev, ports, oversubscribe=placer.oversubscribe, cores=cores)
    if evicts is not None:
        placer.record_preemptions(placed, evicts)
    plan["Place"].append(placed)
    return True


def _alloc(job: dict[str, Any], group: dict[str, Any], name: str, node_id: str, node: dict[str, Any],
           eval_id: str, seq: int, prev: dict[str, Any] | None,
           ports: list[dict[str, Any]] | None = None, *, oversubscribe: bool = False,
           need: tuple[int, int, int] | None = None,
           cores: tuple[dict[str, dict[str, Any]], int] | None = None) -> dict[str, Any]:
    """A new allocation of *group* (*need*: its CPU, memory and disk when already worked out; *cores*:
    the cores its tasks reserve and the MHz they add to its CPU, pick_cores)."""
    cpu, mem, disk = need if need is not None else (*group_resources(group), group_disk_mb(group))
    if cores:
        cpu += cores[1]
    alloc = {
        "ID": alloc_id(eval_id, name, seq), "EvalID": eval_id, "Name": name, "Namespace": job["Namespace"],
        "NodeID": node_id, "NodeName": node.get("Name", ""), "JobID": job["ID"],
        "JobVersion": job.get("Version", 0), "TaskGroup": group["Name"],
        "Resources": {"CPU": cpu, "MemoryMB": mem, "DiskMB": disk},
        "DesiredStatus": "run", "DesiredDescription": "", "DesiredTransition": {},
        "ClientStatus": "pending", "ClientDescription": "", "TaskStates": {},
        "PreviousAllocation": prev["ID"] if prev else "",
        "RescheduleCount": (prev.get("RescheduleCount", 0) + 1) if prev is not None
        and prev.get("ClientStatus") == "failed" else (prev.get("RescheduleCount", 0) if prev else 0),
    }
    if ports:
        alloc["AllocatedPorts"] = ports
    if cores:  # kept only when its tasks reserve cores: an allocation without is the record it was
        alloc["TaskCores"] = cores[0]
    memory = memory_max_fields(group, oversubscribe)
    if memory:
        alloc["Resources"]["MemoryMaxMB"] = memory["MemoryMaxMB"]
        alloc["AllocatedResources"] = memory["AllocatedResources"]
    return alloc


def memory_max_fields(group: dict[str, Any], oversubscribe: bool) -> dict[str, Any]:
    """What an allocation of *group* holds of its tasks' memory_max (memory oversubscription: carried to
    the client, counted by no node): ``MemoryMaxMB`` (its Resources') and ``AllocatedResources``; empty
    when no task has one or the scheduler configuration does not allow oversubscription, so an
    allocation without memory_max is the record it always was."""
    task_max = {t["Name"]: task_memory_max(t) for t in group["Tasks"] if task_memory_max(t)} \
        if oversubscribe else {}
    if not task_max:
        return {}
    return {"MemoryMaxMB": group_memory_max(group, task_max),
            "AllocatedResources": {"Tasks": {name: {"Memory": {"MemoryMaxMB": mb}}
                                             for name, mb in sorted(task_max.items())}}}
