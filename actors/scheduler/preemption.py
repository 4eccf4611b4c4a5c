"""Preemption: which lower-priority allocations a placement evicts to fit on a node.

Nomad's Preemptor (``scheduler/feasible/preemption.go``), for the CPU, memory
and disk dimensions -- a pure function of the node's free room, the
placement's need and the allocations on the node:

* **Candidates** are the node's live allocations of *other* jobs whose job's
  priority is at least ``PRIORITY_DELTA`` (10) below the placing job's.
* They are taken **lowest priority first**: within one priority, repeatedly
  the one *closest* to what is still needed (the Euclidean distance of the
  per-dimension shortfall, each coordinate relative to the ask: Nomad's
  basicResourceDistance), plus ``MAX_PARALLEL_PENALTY`` for every allocation
  past its group's ``migrate.max_parallel`` that this plan already preempts
  of the same job and group -- until the free room holds the ask.
* The chosen set is then **trimmed** (Nomad's filterSuperset): sorted by
  distance to the whole ask, farthest first, and taken only until the room
  suffices, so no allocation is evicted that the placement does not need.

Static ports: the allocations holding a placement's static ports are
evicted too, when every one of them may be (``_Placer.port_preemption``, the
reserved-port part of Nomad's PreemptForNetwork).  Not modelled: network
bandwidth (MBits, which this project does not count) and device preemption
(PreemptForDevice; devices are not scheduled).  Unlike Nomad, the free
room counts the placing job's own allocations on the node as used (Nomad's
Preemptor subtracts only the candidates, so it can offer a node its plan
applier then refuses).
"""

from __future__ import annotations

import math
from typing import Any

# Nomad's filterAndGroupPreemptibleAllocs and PreemptForNetwork: an allocation is preemptible only when
# its job's priority is at least this much below the placing job's (so jobs of close priorities never
# evict each other back and forth).
PRIORITY_DELTA = 10
# Nomad's maxParallelPenalty: added to an allocation's distance for each allocation past its group's
# migrate.max_parallel this plan already preempts, so a group is not taken down all at once.
MAX_PARALLEL_PENALTY = 50.0
# The description a preempted allocation gets (Nomad's getPreemptedAllocDesiredDescription).
PREEMPTED_DESC = "Preempted by alloc ID {}"
# The TriggeredBy of the evaluation each preempted allocation's job gets (Nomad's EvalTriggerPreemption).
TRIGGER_PREEMPTION = "preemption"


def alloc_priority(alloc: dict[str, Any]) -> int | None:
    """The priority of the allocation's job (None: the allocation carries no job, so it is no candidate,
    as in Nomad)."""
    job = alloc.get("Job")
    if not isinstance(job, dict):
        return None
    return int(job.get("Priority", 50))


def alloc_max_parallel(alloc: dict[str, Any]) -> int:
    """The allocation's group's migrate.max_parallel (0 when the group has no migrate block: a batch or
    system group, as Nomad's nil Migrate)."""
    job = alloc.get("Job") or {}
    for g in job.get("TaskGroups") or ():
        if g.get("Name") == alloc.get("TaskGroup"):
            mg = g.get("Migrate")
            return int(mg.get("MaxParallel") or 0) if isinstance(mg, dict) else 0
    return 0


def usage_of(alloc: dict[str, Any]) -> tuple[int, int, int]:
    r = alloc.get("Resources") or {}
    return int(r.get("CPU", 0)), int(r.get("MemoryMB", 0)), int(r.get("DiskMB", 0))


def distance(ask: tuple[int, ...] | list[int], used: tuple[int, ...]) -> float:
    """Nomad's basicResourceDistance: how far *used* is from *ask*, each dimension relative to the ask
    (a dimension not asked for counts 0); summed in Nomad's order (memory, CPU, disk)."""
    coords = [0.0, 0.0, 0.0]
    for out, i in ((0, 1), (1, 0), (2, 2)):
        if ask[i] > 0:
            coords[out] = (float(ask[i]) - float(used[i])) / float(ask[i])
    return math.sqrt(coords[0] ** 2 + coords[1] ** 2 + coords[2] ** 2)


def group_score(ask: list[int], used: tuple[int, ...], max_parallel: int, preempted: int) -> float:
    """Nomad's scoreForTaskGroup: the distance, plus the max_parallel penalty."""
    penalty = 0.0
    if max_parallel > 0 and preempted >= max_parallel:
        penalty = float(preempted + 1 - max_parallel) * MAX_PARALLEL_PENALTY
    return distance(ask, used) + penalty


def _superset(have: list[int], want: tuple[int, ...]) -> bool:
    return all(have[i] >= want[i] for i in range(3))


def group_key(alloc: dict[str, Any]) -> tuple[str, str, str]:
    """What max_parallel counts preemptions by: the allocation's job (namespaced) and group."""
    return alloc.get("Namespace", "default"), alloc.get("JobID", ""), alloc.get("TaskGroup", "")


def preempt_for_group(need: tuple[int, int, int], free: tuple[int, ...] | list[int],
                      candidates: list[dict[str, Any]], job_priority: int,
                      preempted: dict[tuple[str, str, str], int]) -> list[dict[str, Any]] | None:
    """The allocations to evict so *need* fits in *free* (the node's capacity less all it holds), or
    None when evicting every preemptible one would not do (Nomad's PreemptForTaskGroup).

    *candidates*: the node's live allocations of other jobs, not already preempted, in a stable order
    (by ID); *preempted*: how many allocations of each (namespace, job, group) the plan preempts so far.
    """
    by_priority: dict[int, list[dict[str, Any]]] = {}
    for a in candidates:
        p = alloc_priority(a)
        if p is None or job_priority - p < PRIORITY_DELTA:
            continue
        by_priority.setdefault(p, []).append(a)
    available = list(free)
    needed = list(need)
    chosen: list[dict[str, Any]] = []
    met = False
    for p in sorted(by_priority):
        group = list(by_priority[p])
        while group and not met:
            best_i, best_d = 0, math.inf
            for i, a in enumerate(group):
                d = group_score(needed, usage_of(a), alloc_max_parallel(a), preempted.get(group_key(a), 0))
                if d < best_d:
                    best_i, best_d = i, d
            closest = group[best_i]
            used = usage_of(closest)
            for k in range(3):
                available[k] += used[k]
                needed[k] -= used[k]
            met = _superset(available, need)
            chosen.append(closest)
            group[best_i] = group[-1]  # Nomad's swap-remove: the order the rest are looked at in
            group.pop()
        if met:
            break
    if not met:
        return None
    return _trim(chosen, free, need)


def _trim(chosen: list[dict[str, Any]], free: tuple[int, ...] | list[int],
          need: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Nomad's filterSuperset: the chosen allocations farthest from the ask first, only as many as the
    room needs."""
    ordered = sorted(chosen, key=lambda a: -distance(need, usage_of(a)))
    available = list(free)
    out: list[dict[str, Any]] = []
    for a in ordered:
        out.append(a)
        used = usage_of(a)
        for k in range(3):
            available[k] += used[k]
        if _superset(available, need):
            break
    return out


def net_priority(allocs: list[dict[str, Any]]) -> float:
    """Nomad's netPriority: the highest priority among *allocs*, plus their sum over it (many
    low-priority evictions weigh more than one)."""
    prios = [alloc_priority(a) or 0 for a in allocs]
    top = float(max(prios)) if prios else 0.0
    return top + (float(sum(prios)) / top if top else 0.0)


# Nomad's preemptionScore: a logistic curve of the net priority, 0.5 at PREEMPTION_SCORE_ORIGIN, falling
# at PREEMPTION_SCORE_RATE.
PREEMPTION_SCORE_RATE = 0.0048
PREEMPTION_SCORE_ORIGIN = 2048.0


def preemption_score(allocs: list[dict[str, Any]]) -> float:
    """Nomad's PreemptionScoringIterator score for an option that evicts *allocs* (0..1, higher for
    fewer and lower-priority evictions)."""
    return 1.0 / (1.0 + math.exp(PREEMPTION_SCORE_RATE * (net_priority(allocs) - PREEMPTION_SCORE_ORIGIN)))
