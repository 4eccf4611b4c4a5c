"""The replicated state machine: the cluster state every server holds.

Raft hands it committed commands in log order; applying one is a pure,
deterministic function of the command and the current state (no clock, no
randomness: timestamps travel inside the command, chosen by the leader).

Tables follow Nomad's state store: ``nodes``, ``jobs``, ``allocs``,
``evals``, plus ``kv`` (a register map used by the linearizability tests and
the benchmark) and the ACL tables of :mod:`actors.state.acl_ops`.  Each
table has a modify index -- the Raft index of the last
command that changed it -- which blocking queries wait on, as in Nomad's
``X-Nomad-Index``.  Records are plain msgpack-able dicts owned by the store;
readers receive copies, never the store's own objects.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from actors.scheduler.preemption import PREEMPTED_DESC, TRIGGER_PREEMPTION
from actors.state import (
    acl_ops,
    cluster_meta,
    deployments,
    eval_delete,
    namespaces,
    node_pools,
    root_keys,
    scaling,
    services,
    variables,
)
from actors.state import autopilot_config as ap_cfg
from actors.state import scheduler_config as sched_cfg
from actors.state.events import EVENT_TABLES, UNKNOWN, Batch, EventBuffer, Table, make_batch
from actors.state.fsm_metrics import fsm_key
from actors.state.namespaces import job_key, job_key_of, key_of, parent_key_of, split_key

# A snapshot without the ACL tables (taken before they existed) restores them
# empty, so SNAPSHOT_VERSION stays 1.
# job_versions: job ID -> the job's earlier versions, newest first (the current one is in jobs).
# periodic_launch: periodic job ID -> {"ID", "Launch"}: its last launch time (Nomad's periodic_launch).
# scheduler_config: the one SchedulerConfiguration record (actors.state.scheduler_config).
# node_pools: the pools operators and clients created (actors.state.node_pools; the built-ins are implicit).
# variables: Nomad's variables, keyed <namespace>/<path> (actors.state.variables).
# autopilot_config: the one AutopilotConfig record (actors.state.autopilot_config).
# scaling_policies: the jobs' groups' scaling policies, by ID (actors.state.scaling).
# cluster_meta: the one ClusterMetadata record, the cluster's ID (actors.state.cluster_meta).
# scaling_event: the jobs' groups' newest scaling events, by job ID (actors.state.scaling); a
# snapshot from before it restores it empty, as the log that wrote such a state kept none.
# root_keys: the servers' workload identity signing keys, by KeyID (actors.state.root_keys).
# var_locks: the variable locks' leases, keyed as variables (actors.state.variables); a snapshot
# from before it restores it empty, as no variable held a lock then.
# job_submissions: the source each registration of a job submitted (Nomad's job_submission table), by
# job ID, each a map of version (as a string) to its submission; as many versions as job_versions keeps.
# A snapshot from before it restores it empty, as no source was kept then.
# namespaces: the namespaces operators created or changed (actors.state.namespaces; "default" is implicit
# until changed).  A snapshot from before it restores it empty: only "default" existed then.
TABLES = ("nodes", "jobs", "allocs", "evals", "kv", "job_versions", "periodic_launch", *acl_ops.ACL_TABLES,
          sched_cfg.TABLE, node_pools.TABLE, variables.TABLE, deployments.TABLE, services.TABLE, ap_cfg.TABLE,
          scaling.TABLE, cluster_meta.TABLE, scaling.EVENTS_TABLE, root_keys.TABLE, variables.LOCKS_TABLE,
          "job_submissions", namespaces.TABLE)
JOB_TRACKED_VERSIONS = 6  # versions kept per job, the current one included (Nomad JobTrackedVersions)
SNAPSHOT_VERSION = 1
_UNDECODED: Any = object()  # apply: its command was not given decoded
_UNKNOWN: Any = object()  # _index_alloc: the record an allocation write replaced was not given
# scheduler.TERMINAL_CLIENT (an allocation's client statuses that free what it held), not imported:
# the scheduler imports this package.
_TERMINAL_CLIENT = ("complete", "failed", "lost")


# Tables whose values are not records (maps): kv holds any value, job_versions a list per job.
_FREE_FORM_TABLES = ("kv", "job_versions")


def check_snapshot(data: bytes) -> dict[str, Any]:
    """Decode a state snapshot from outside (an operator's archive) and check its shape; ValueError if bad.

    Every table known here, each a map of string keys to records (maps;
    allocations and evaluations with their own ``ID``), so nothing that
    later reads the state trips over a foreign shape.  Returns the decoded
    snapshot.
    """
    try:
        snap = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ValueError(f"the state is not valid msgpack: {e}") from None
    if not isinstance(snap, dict) or snap.get("v") != SNAPSHOT_VERSION:
        got = snap.get("v") if isinstance(snap, dict) else type(snap).__name__
        raise ValueError(f"unsupported state snapshot version {got!r} (this agent reads {SNAPSHOT_VERSION})")
    tables, index = snap.get("tables"), snap.get("index")
    if not isinstance(tables, dict) or not isinstance(index, dict):
        raise ValueError("the state has no tables")
    unknown = sorted(str(t) for t in tables if t not in TABLES)
    if unknown:
        raise ValueError(f"the state has tables this agent does not know: {', '.join(unknown)}")
    for name, table in tables.items():
        if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
            raise ValueError(f"table {name!r} is not a map of string keys")
        if name in _FREE_FORM_TABLES:
            continue
        for key, rec in table.items():
            if not isinstance(rec, dict):
                raise ValueError(f"table {name!r}: record {key!r} is not a map")
            if name in ("allocs", "evals") and rec.get("ID") != key:
                raise ValueError(f"table {name!r}: record {key!r} has ID {rec.get('ID')!r}")
            if name == cluster_meta.TABLE and (key != cluster_meta.KEY
                                               or not isinstance(rec.get("ClusterID"), str)):
                raise ValueError(f"table {name!r}: record {key!r} is not the cluster's metadata")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in index.values()):
        raise ValueError("the state's table indexes are not integers")
    return snap


def _new_tables(contents: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every table, filled from *contents*; the event stream's tables journal their writes."""
    return {t: Table(t, contents.get(t, ())) if t in EVENT_TABLES else dict(contents.get(t, {}))
            for t in TABLES}


# Nomad's description of an evaluation its broker canceled as redundant (cancelCancelableEvals).
EVAL_CANCELED_DESC = "canceled after more recent eval was processed"
BLOCKED_EVAL_DESCRIPTION = "created to place remaining allocations"  # Nomad DescBlockedEvalFailedPlacements
UNBLOCKED_DESCRIPTION = "unblocked: capacity changed"  # a blocked evaluation let run again

# What applying client reports does, by revision (an entry in a Raft log keeps applying as it did when
# it was written; one without ``rev`` is 1): 2 -- an unhealthy allocation that has used its reschedule
# attempts fails its deployment at once (Nomad's shouldFailEarly), and the job's status follows Nomad's
# getJobStatus (see StateStore._job_status); 3 -- a system allocation that fails or ends makes no
# alloc-failure evaluation (Nomad's Node.UpdateAlloc: a system job has no reschedule policy); 4 -- service
# registrations follow the group and each task (services.active_owners: a group's stay through a task's
# restart, a task's go when it exits), not only the allocation's running status; 5 -- an ``unknown``
# allocation whose client reports it again cancels its disconnect-timeout follow-up evaluation (Nomad's
# cancelFollowupEvalsForReconnect), so it no longer waits in the eval list; 6 -- a ``lost`` allocation's
# client that reports it ended (complete or failed: it stopped it when told) is believed, as Nomad's
# nestedUpdateAllocFromClient takes it, so its task states no longer say ``running`` for good; 7 -- a failed
# service or batch allocation makes an alloc-failure evaluation only when its reschedule policy may
# reschedule it (Nomad's Node.UpdateAlloc: RescheduleEligible, and no follow-up evaluation yet), not when
# rescheduling is off or its attempts are used up.
REPORT_REV = 7



def _reschedule_eligible_on_failure(job: dict[str, Any], alloc: dict[str, Any], now: float) -> bool:
    """Nomad's Node.UpdateAlloc test for an allocation its client reports failed: it has no follow-up
    evaluation yet and is RescheduleEligible at *now* by its group's policy -- rescheduling is on
    (attempts, or unlimited) and the attempts within the interval are not used up."""
    return not alloc.get("FollowupEvalID") and deployments.reschedule_eligible(job, alloc, now)


def _go_quote(text: str) -> str:
    """Go's %q of a job ID in an error (a JSON string is the same for printable text)."""
    return json.dumps(text, ensure_ascii=False)


def _rfc3339(t: float) -> str:
    """A command's time (wall seconds, the leader's) as Go's JSON shows a time.Time."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

class CommandError(ValueError):
    """A command that cannot apply (unknown op, bad arguments): refused, state unchanged."""


def uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, the same text, without building UUID objects: an evaluation
    ID is derived so on every server for every entry that makes one (~1.7 us instead of ~5)."""
    b = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def command(op: str, **args: Any) -> bytes:
    """Encode a state-machine command for Raft."""
    return msgpack.packb({"op": op, **args}, use_bin_type=True)


def decode_result(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False) if data else None


def encode_result(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


_REPORT_FIELDS = (("ClientStatus", str), ("ClientDescription", str), ("TaskStates", dict),
                  ("DeploymentStatus", dict))


def _bad_report(reports: Any) -> str:
    """Why a client's allocation updates cannot be applied ("" when they can): checked whole before
    any is applied, so a bad one changes nothing (of its batch, only its own report fails)."""
    if not isinstance(reports, list):
        return "bad report: allocs must be a list"
    for i, u in enumerate(reports):
        if not isinstance(u, dict) or not isinstance(u.get("ID"), str):
            return f"bad report: allocs[{i}] must be a map with a string ID"
        for key, kind in _REPORT_FIELDS:
            value = u.get(key)
            if key in u and not isinstance(value, kind) and not (key == "DeploymentStatus" and value is None):
                return f"bad report: allocs[{i}].{key} must be a {kind.__name__}"
    return ""


def _preserved(job: dict[str, Any], old: dict[str, Any], counts: bool, resources: bool) -> dict[str, Any]:
    """Nomad's updatePreservedValues: *job* with each group's count (*counts*) and each task's resources
    (*resources*) as the registered *old* job has them, for the groups and tasks both have."""
    old_groups = {g.get("Name"): g for g in old.get("TaskGroups") or () if isinstance(g, dict)}
    groups = []
    for g in job.get("TaskGroups") or ():
        prev = old_groups.get(g.get("Name")) if isinstance(g, dict) else None
        if prev is None:
            groups.append(g)
            continue
        g = dict(g)
        if counts and "Count" in prev:
            g["Count"] = prev["Count"]
        if resources:
            old_tasks = {t.get("Name"): t for t in prev.get("Tasks") or () if isinstance(t, dict)}
            g["Tasks"] = [{**t, "Resources": copy.deepcopy(old_tasks[t.get("Name")]["Resources"])}
                          if isinstance(t, dict) and "Resources" in old_tasks.get(t.get("Name"), {}) else t
                          for t in g.get("Tasks") or ()]
        groups.append(g)
    return {**job, "TaskGroups": groups}


def _drop_from(by_job: dict[Any, set[str]], job_id: Any, ev_id: str) -> None:
    """*ev_id* out of *job_id*'s set in a by-job (or by-node) index; the entry goes when it empties."""
    ids = by_job.get(job_id)
    if ids is not None:
        ids.discard(ev_id)
        if not ids:
            del by_job[job_id]


def _client_part(job: Any, group: str) -> Any:
    """What a client does for an allocation of *group* besides running its tasks: its services
    (and their checks), group and task level."""
    for g in (job or {}).get("TaskGroups") or ():
        if g.get("Name") == group:
            return g.get("Services"), [t.get("Services") for t in g.get("Tasks") or ()]
    return None


def _client_settings(job: Any, group: str) -> Any:
    """What a client reads of an allocation's group as it runs it, besides its services (plan Rev 4):
    restart policies, leader, shutdown delays, max_run_duration."""
    for g in (job or {}).get("TaskGroups") or ():
        if g.get("Name") == group:
            return (g.get("RestartPolicy"), g.get("ShutdownDelay"), g.get("MaxRunDuration"),
                    [(t.get("Name"), t.get("RestartPolicy"), t.get("Leader"), t.get("ShutdownDelay"))
                     for t in g.get("Tasks") or ()])
    return None


def _preemptions_by_placement(plan: dict[str, Any], allocs: dict[str, Any],
                              live: Callable[[dict[str, Any]], bool]) -> dict[str, list[dict[str, Any]]]:
    """placement ID -> the allocations its plan preempts for it that are still live on its node (Nomad's
    evaluateNodePlan drops those already terminal)."""
    out: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for e in plan.get("Preempt") or ():
        a = allocs.get(e.get("ID", ""))
        if a is None or not live(a) or a["ID"] in seen or a.get("NodeID") != e.get("NodeID"):
            continue
        seen.add(a["ID"])
        out.setdefault(e.get("By", ""), []).append(a)
    return out


def _cores_free(store: Any, held_by_node: dict[str, set[int]], placement: dict[str, Any],
                evicts: Any, alloc_cores: Callable[[Any], list[int]], live: Callable[[Any], bool]) -> bool:
    """True when the cores *placement* reserves (if any) are held by no live allocation on its node other
    than its evictions, nor twice by itself; then they are counted held (*held_by_node*, on first look)."""
    want = alloc_cores(placement)
    if not want:
        return True
    node_id = placement["NodeID"]
    held = held_by_node.get(node_id)
    if held is None:
        held = held_by_node[node_id] = {c for a in store.node_allocs(node_id) if live(a)
                                        for c in alloc_cores(a)}
    freed = {c for a in evicts for c in alloc_cores(a)}
    if held.difference(freed).intersection(want) or len(set(want)) != len(want):
        return False
    held.difference_update(freed)
    held.update(want)
    return True


def _reserved_taken(node: dict[str, Any], placement: dict[str, Any], reserved: frozenset[int]) -> bool:
    """True when a port of *placement* is one the node keeps from allocations: client.reserved on any
    address, a host network's reserved_ports on that network's addresses."""
    from actors.scheduler.scheduler import address_reserved_ports

    by_address = None
    for p in placement.get("AllocatedPorts") or ():
        if p["Value"] in reserved:
            return True
        if by_address is None:
            by_address = address_reserved_ports(node)
        if p["Value"] in by_address.get(p.get("HostIP") or "", ()):
            return True
    return False


def _set_memory_max(rec: dict[str, Any], memory: Any) -> bool:
    """An allocation updated in place takes *memory*, the memory_max fields the plan gives it
    (scheduler.memory_max_fields: empty for none); None leaves it as it is.  True when that changed it."""
    if not isinstance(memory, dict):
        return False
    held = rec.get("Resources")
    if not memory and isinstance(held, dict) and "MemoryMaxMB" not in held \
            and "AllocatedResources" not in rec:
        return False  # none wanted, none held: nothing to take away
    before = ((rec.get("Resources") or {}).get("MemoryMaxMB"), rec.get("AllocatedResources"))
    resources = {k: v for k, v in (rec.get("Resources") or {}).items() if k != "MemoryMaxMB"}
    rec.pop("AllocatedResources", None)
    if memory:
        resources["MemoryMaxMB"] = memory["MemoryMaxMB"]
        rec["AllocatedResources"] = memory["AllocatedResources"]
    rec["Resources"] = resources
    return before != (resources.get("MemoryMaxMB"), rec.get("AllocatedResources"))


@dataclass(slots=True)
class _ClientReports:
    """What client reports applied in one write add up to (see StateStore._client_report)."""

    updated: list[str] = field(default_factory=list)
    failed_jobs: set[str] = field(default_factory=set)  # allocations failed or ended while wanted
    jobs_touched: set[str] = field(default_factory=set)  # an allocation's liveness changed
    watcher_jobs: set[str] = field(default_factory=set)  # deployments that may go on
    dep_failures: list[tuple[str, str]] = field(default_factory=list)
    freed: bool = False  # an allocation reached a terminal client status: its capacity is free
    reconnect_jobs: set[str] = field(default_factory=set)  # an unknown allocation's client reported again
    rev: int = 1  # the entry's REPORT_REV (older entries have none: 1)


class StateStore:
    def __init__(self, *, job_tracked_versions: int = JOB_TRACKED_VERSIONS,
                 decode: Callable[[bytes], Any] | None = None) -> None:
        self.tables: dict[str, dict[str, Any]] = _new_tables({})
        # How apply decodes a command (``msgpack.unpackb(data, raw=False)`` unless given): the
        # simulator gives every server of a cluster one shared decoding of each committed entry
        # (sim.job_cluster.SharedDecoder), which apply never changes (see apply).
        self._decode = decode
        # Versions kept per job, the current one included (the agent's server.job_tracked_versions).
        self.job_tracked_versions = job_tracked_versions
        # The event stream's buffer (enable_events; None: no events are made,
        # as in the simulator and the benchmarks): see actors.state.events.
        self.events: EventBuffer | None = None
        self._journal: dict[tuple[str, str], Any] | None = None
        self._event_tables: list[Any] | None = None  # the journaling tables, while they are the current ones
        self.table_index: dict[str, int] = {t: 0 for t in TABLES}
        # The leader's last job-summary rows and the table indexes they were counted at
        # (actors.server.leader_metrics.leader_stats reuses them while those tables stand).
        self.leader_summary_rows: tuple[Any, list[Any]] | None = None
        self.applied_index = 0
        # Secondary index: node ID -> IDs of its allocations (what a client
        # asks for on every blocking query; a scan would be O(all allocations)).
        self.allocs_by_node: dict[str, set[str]] = {}
        self.allocs_by_job: dict[str, set[str]] = {}  # job ID -> its allocations (the scheduler's view)
        # job ID -> its allocations' IDs sorted (job_allocs), kept until one comes or goes: a job keeps
        # every allocation it ever ran until GC, and the scheduler asks for them on every evaluation.
        self._job_alloc_ids: dict[str, list[str]] = {}
        # job ID -> the IDs of at least its live allocations: each enters when written live, and
        # one found no longer live when looked at leaves (an allocation never comes back to life).
        # What asks "is anything of the job still running" reads this, not every allocation ever.
        self._maybe_live_by_job: dict[str, set[str]] = {}
        self.outdated_memo: tuple[Any, ...] | None = None  # deployments._outdated's answer within a write
        # node ID -> the highest AllocModifyIndex of its allocations: what a
        # client's blocking query waits on (server-side changes only).
        self.node_alloc_index: dict[str, int] = {}
        # Keys whose watched value moved since Raft last took them
        # (take_changed_keys): ("allocs_node", node ID) when that node's
        # node_alloc_index did, all of them after a rebuild from a snapshot.
        # A parked client query is looked at only when its own key moved,
        # not on every change to the allocs table (thousands of clients).
        self._changed_keys: set[tuple[str, str]] = set()
        self._all_keys_changed = False
        # Evaluations by the statuses the broker and the unblocker look for, so
        # neither scans every evaluation ever made on each change.
        self.evals_by_status: dict[str, set[str]] = {"pending": set(), "blocked": set()}
        # job ID -> every evaluation of it: /v1/job/<id>/evaluations (and an evaluation's allocations)
        # read one job's, not every evaluation kept.
        self.evals_by_job: dict[str, set[str]] = {}
        # job ID -> its blocked evaluations: a failed plan or a deregistration
        # looks up its own job's, not every blocked evaluation of the cluster
        # (which grow with the jobs waiting for capacity).
        self.blocked_by_job: dict[str, set[str]] = {}
        # job ID -> its pending evaluations: a completed evaluation cancels
        # the ones of its job it made redundant (_cancel_superseded).
        self.pending_by_job: dict[str, set[str]] = {}
        # Pending evaluation ID -> the Raft index at which it became pending,
        # in that order: the broker asks only for what became pending since
        # its last look (evals_pending_since) instead of every pending one.
        self.pending_since: dict[str, int] = {}
        # table -> (its index when sorted, its keys sorted): the scheduler's
        # node order starts from the sorted node IDs on every evaluation.
        self._sorted_ids: dict[str, tuple[int, list[str]]] = {}
        # (datacenters, node pool) -> the ready nodes there (ready_nodes_by_dc), and None -> the nodes
        # table's index they were counted at.
        self._ready_by_dc: dict[Any, Any] = {}
        # node ID -> (CPU, memory, disk) its live allocations hold, computed on first
        # ask and dropped whenever one of its allocations is written: the
        # scheduler asks it of each node it considers, and summing a node's
        # allocations each time grows with every allocation placed there.
        self._node_usage: dict[str, tuple[int, int, int]] = {}
        # node ID -> (the node record it was computed from, its (CPU, memory, disk)
        # capacity): node records are replaced, never changed in place, on
        # every write, so the entry holds while it is the same record.
        self._node_caps: dict[str, tuple[Any, tuple[int, int, int]]] = {}
        # node ID -> (the node record, {job shape: verdict}): the scheduler's
        # feasibility checks kept across evaluations, a filtered node's by the
        # reason Nomad names it by (scheduler._Placer says when an entry
        # holds); derived, never snapshotted.
        self.feasibility: dict[str, tuple[Any, dict[Any, int | str]]] = {}
        # Periodic jobs and the index of their last change (theirs or a
        # launch's): the leader's PeriodicDispatcher watches this, not every
        # job registration (derived state: rebuilt by restore).
        self.periodic_ids: set[str] = set()
        self.periodic_index = 0
        # A periodic or parameterized job's key -> the keys of the jobs launched or dispatched from it
        # (derived: rebuilt by restore): a launch's overlap check, a dispatch's idempotency token and
        # the parent's summary read its own children, not every job (thousands, where dispatched
        # jobs serve as a work queue).
        self.children_of: dict[str, set[str]] = {}
        # (parent key, idempotency token) -> the keys of the dispatched jobs that hold it, one but for a
        # job registered by hand with a child's fields (derived: rebuilt by restore): a dispatch with a
        # token finds its earlier child at once.
        self.dispatch_tokens: dict[tuple[str, str], set[str]] = {}
        # Job ID -> its newest deployment's ID (derived: rebuilt by restore).
        self.latest_deployment_of: dict[str, str] = {}
        # Job ID -> its deployments' IDs (derived: rebuilt by restore): a job's deployments, a purge and
        # GC read one job's, not every deployment kept.
        self.deployments_by_job: dict[str, set[str]] = {}
        # Allocation ID -> its service registrations' IDs (derived: rebuilt by restore).
        self.services_by_alloc: dict[str, set[str]] = {}
        # "<namespace>\0<job ID>" -> its scaling policies' IDs (derived: rebuilt by restore).
        self.scaling_by_job: dict[str, set[str]] = {}
        # Evaluations created by the entry being applied: their IDs derive
        # from (index, n), so n must not repeat within one entry.
        self._entry_evals = 0
        # An operator's snapshot restore in progress (``snapshot_restore``
        # chunks received so far; None: none).  Replicated state: a server
        # that installs a Raft snapshot between two chunks must still hold
        # the earlier ones, so snapshot() carries it.
        self.restore_staging: dict[str, Any] | None = None
        # The Raft index of the last operator restore (0: never): derived
        # watch indexes never fall below it, however old the restored records.
        self.restore_index = 0
        self._watchers: list[Callable[[str, int], None]] = []
        # (clock in seconds, metrics registry) when the agent times each applied command under
        # Nomad's nomad.fsm.<type> names (actors.state.fsm_metrics); None (the simulator, tools):
        # nothing timed, one attribute test per command.
        self.fsm_timing: tuple[Callable[[], float], Any] | None = None
        self._ops: dict[str, Callable[[int, dict[str, Any]], Any]] = {
            "kv_put": self._kv_put,
            "kv_cas": self._kv_cas,
            "kv_delete": self._kv_delete,
            "upsert": self._upsert,
            "delete": self._delete,
            "batch": self._batch,
            "node_register": self._node_register,
            "node_update_status": self._node_update_status,
            "node_gc": self._node_gc,
            "node_deregister": self._node_deregister,
            "node_evaluate": self._node_evaluate,
            "job_register": self._job_register,
            "job_deregister": self._job_deregister,
            "job_evaluate": self._job_evaluate,
            "job_stability": self._job_stability,
            "job_revert": self._job_revert,
            "job_version_tag": self._job_version_tag,
            "job_dispatch": self._job_dispatch,
            "periodic_launch": self._periodic_launch,
            "job_scale": self._job_scale,
            "plan_apply": self._plan_apply,
            "plan_apply_batch": self._plan_apply_batch,
            "alloc_client_update": self._alloc_client_update,
            "alloc_client_update_batch": self._alloc_client_update_batch,
            "eval_update": self._eval_update,
            "node_update_drain": self._node_update_drain,
            "node_update_eligibility": self._node_update_eligibility,
            "alloc_migrate": self._alloc_migrate,
            "alloc_stop": self._alloc_stop,
            "node_drain_complete": self._node_drain_complete,
            "core_gc": self._core_gc,
            "snapshot_restore": self._snapshot_restore,
            "snapshot_restore_abort": self._snapshot_restore_abort,
            "noop": self._noop,
            **{op: functools.partial(fn, self) for op, fn in acl_ops.OPS.items()},  # acl_bootstrap, ...
            "scheduler_set_config": functools.partial(sched_cfg.set_config, self),
            "node_pool_upsert": functools.partial(node_pools.upsert, self),
            "node_pool_delete": functools.partial(node_pools.delete, self),
            "namespace_upsert": functools.partial(namespaces.upsert, self),
            "namespace_delete": functools.partial(namespaces.delete, self),
            "var_set": functools.partial(variables.set_var, self),
            "var_delete": functools.partial(variables.delete_var, self),
            "var_lock_acquire": functools.partial(variables.lock_acquire, self),
            "var_lock_renew": functools.partial(variables.lock_renew, self),
            "var_lock_release": functools.partial(variables.lock_release, self),
            "var_lock_expire": functools.partial(variables.lock_expire, self),
            "deployment_fail": functools.partial(deployments.op_fail, self),
            "deployment_pause": functools.partial(deployments.op_pause, self),
            "deployment_promote": functools.partial(deployments.op_promote, self),
            "deployment_alloc_health": functools.partial(deployments.op_alloc_health, self),
            "service_delete": functools.partial(services.op_delete, self),
            "autopilot_set_config": functools.partial(ap_cfg.set_config, self),
            "cluster_meta_set": functools.partial(cluster_meta.set_meta, self),
            "eval_delete": functools.partial(eval_delete.op_delete, self),
            "root_key_create": functools.partial(root_keys.create, self),
        }
        # A user's job writes are refused while the scheduler configuration
        # rejects registrations (Nomad's registrationsAreAllowed), checked here
        # so every server decides alike at the write's place in the log.
        for op in ("job_register", "job_revert", "job_dispatch", "job_scale"):
            self._ops[op] = self._gated(self._ops[op])

    def _gated(self, handler: Callable[[int, dict[str, Any]], Any]) -> Callable[[int, dict[str, Any]], Any]:
        def gated(index: int, cmd: dict[str, Any]) -> Any:
            if sched_cfg.registration_refused(self.tables, cmd):
                return {"ok": False, "error": sched_cfg.JOB_REGISTRATION_DISABLED}
            return handler(index, cmd)
        return gated

    # ------------------------------------------------------------ apply
    def apply(self, index: int, data: bytes, decoded: Any = _UNDECODED) -> Any:
        """Apply one committed command at Raft *index*; returns its result.

        A bad command is answered with ``{"error": ...}`` and changes nothing:
        every server refuses it the same way, so the state never diverges.
        *decoded*: ``msgpack.unpackb(data, raw=False)``, from a caller that
        decoded it already (it must not change it after, as the store may keep
        its parts).
        """
        if index <= self.applied_index:
            raise AssertionError(f"apply out of order: {index} after {self.applied_index}")
        self.applied_index = index
        self._entry_evals = 0
        try:
            if decoded is not _UNDECODED:
                cmd = decoded
            elif self._decode is not None:
                cmd = self._decode(data)
            else:
                cmd = msgpack.unpackb(data, raw=False)
            if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
                raise CommandError("command must be a map with an op")
            handler = self._ops.get(cmd["op"])
            if handler is None:
                raise CommandError(f"unknown op {cmd['op']!r}")
            if self.fsm_timing is not None:
                return self._apply_timed(index, cmd, handler)
            if self.events is None:
                return handler(index, cmd)
            return self._apply_with_events(index, cmd, handler)
        except (CommandError, ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _apply_timed(self, index: int, cmd: dict[str, Any], handler: Callable[..., Any]) -> Any:
        """Apply as :meth:`apply` does, adding the time taken to Nomad's ``nomad.fsm.<type>`` sample."""
        clock, metrics = self.fsm_timing  # type: ignore[misc]
        t0 = clock()
        try:
            if self.events is None:
                return handler(index, cmd)
            return self._apply_with_events(index, cmd, handler)
        finally:
            key = fsm_key(cmd)
            if key is not None:
                metrics.add_sample(key[0], (clock() - t0) * 1e3, key[1])

    def enable_events(self, buffer_size: int) -> None:
        """Make events of every write from now on, keeping the newest *buffer_size* batches."""
        self.events = EventBuffer(buffer_size)

    def _apply_with_events(self, index: int, cmd: dict[str, Any], handler: Callable[..., Any]) -> Any:
        journal: dict[tuple[str, str], Any] = {}
        tables = self._event_tables
        if tables is None or tables[0] is not self.tables[EVENT_TABLES[0]]:  # new tables since (a restore)
            tables = self._event_tables = [self.tables[t] for t in EVENT_TABLES]
        self._journal = journal
        for t in tables:
            t.journal = journal  # type: ignore[attr-defined]
        try:
            result = handler(index, cmd)
        finally:
            self._journal = None
            for t in tables:
                t.journal = None  # type: ignore[attr-defined]
        if journal and not (isinstance(result, dict) and "error" in result and not result.get("ok", False)):
            batch: Batch | None = make_batch(index, cmd["op"], journal, self.tables)
            if batch is not None and self.events is not None:
                self.events.append(batch)
        return result

    def _usage_written(self, alloc: dict[str, Any], replaces: Any = _UNKNOWN) -> None:
        """Keep the cached usage of *alloc*'s node right after it was written over *replaces*.

        With *replaces* known (None: a new ID) the node's cached usage moves by
        the write's difference instead of being dropped: every placement
        writes to one node, and re-summing that node's allocations on the next
        plan (leader) and on the next plan's apply (every server) grew with
        each allocation it held -- most of a registration's CPU once a few
        thousand jobs were placed.  Integer sums, so the result is exactly
        what a recount gives.
        """
        node = alloc.get("NodeID", "")
        if replaces is _UNKNOWN or (replaces is not None and replaces.get("NodeID", "") != node):
            self._node_usage.pop(node, None)
            if replaces is not _UNKNOWN:
                self._node_usage.pop(replaces.get("NodeID", ""), None)
            return
        got = self._node_usage.get(node)
        if got is None:
            return
        from actors.scheduler.scheduler import alloc_usage, live

        cpu, mem, disk = got
        if replaces is not None and live(replaces):
            c, m, d = alloc_usage(replaces)
            cpu, mem, disk = cpu - c, mem - m, disk - d
        if live(alloc):
            c, m, d = alloc_usage(alloc)
            cpu, mem, disk = cpu + c, mem + m, disk + d
        self._node_usage[node] = (cpu, mem, disk)

    def take_changed_keys(self) -> tuple[set[tuple[str, str]], bool]:
        """The keys that moved since the last call, and whether all of them may have."""
        keys, everything = self._changed_keys, self._all_keys_changed
        self._changed_keys, self._all_keys_changed = set(), False
        return keys, everything

    def _index_alloc(self, alloc: dict[str, Any], replaces: Any = _UNKNOWN) -> None:
        """Index *alloc*, just written; *replaces*: the record it replaced (None: a new ID), when known."""
        node = alloc.get("NodeID", "")
        self._usage_written(alloc, replaces)
        self.allocs_by_node.setdefault(node, set()).add(alloc["ID"])
        job = key_of(alloc)
        job_ids = self.allocs_by_job.setdefault(job, set())
        if alloc["ID"] not in job_ids:
            job_ids.add(alloc["ID"])
            self._job_alloc_ids.pop(job, None)
        if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") not in _TERMINAL_CLIENT:
            self._maybe_live_by_job.setdefault(job, set()).add(alloc["ID"])
        mi = alloc.get("AllocModifyIndex", alloc.get("ModifyIndex", 0))
        if mi > self.node_alloc_index.get(node, 0):
            self.node_alloc_index[node] = mi
            self._changed_keys.add(("allocs_node", node))

    def _index_eval(self, ev: dict[str, Any]) -> None:
        ev_id, status = ev["ID"], ev.get("Status")
        if self._journal is not None:  # an evaluation updated in place is a change too
            self._journal.setdefault(("evals", ev_id), UNKNOWN)
        for name, ids in self.evals_by_status.items():
            if status == name:
                ids.add(ev_id)
            else:
                ids.discard(ev_id)
        job_id = key_of(ev)
        self.evals_by_job.setdefault(job_id, set()).add(ev_id)
        for name, by_job in (("blocked", self.blocked_by_job), ("pending", self.pending_by_job)):
            if status == name:
                by_job.setdefault(job_id, set()).add(ev_id)
            else:
                _drop_from(by_job, job_id, ev_id)
        if status != "pending":
            self.pending_since.pop(ev_id, None)
        elif ev_id not in self.pending_since:
            # Applied in index order, so the dict stays ordered by index.
            self.pending_since[ev_id] = ev.get("ModifyIndex", 0)

    def _unindex_eval(self, ev_id: str, job_id: str) -> None:
        """A removed evaluation leaves the by-job indexes."""
        _drop_from(self.evals_by_job, job_id, ev_id)
        _drop_from(self.blocked_by_job, job_id, ev_id)
        _drop_from(self.pending_by_job, job_id, ev_id)

    def pending_evals_of_job(self, job_id: str) -> list[dict[str, Any]]:
        """The store's records of *job_id*'s pending evaluations, in ID order: do not modify."""
        t = self.tables["evals"]
        return [t[i] for i in sorted(self.pending_by_job.get(job_id, ()))
                if i in t and key_of(t[i]) == job_id]  # an upsert may have moved one

    def blocked_evals_of_job(self, job_id: str) -> list[dict[str, Any]]:
        """The store's records of *job_id*'s blocked evaluations, in ID order: do not modify."""
        t = self.tables["evals"]
        return [t[i] for i in sorted(self.blocked_by_job.get(job_id, ())) if i in t]

    def evals_pending_since(self, index: int) -> list[dict[str, Any]]:
        """The store's records of pending evaluations that became pending after *index*: do not modify.

        Costs what it returns, not what is pending: it walks the newest first
        and stops at the first one at or below *index*.
        """
        t, out = self.tables["evals"], []
        for ev_id, since in reversed(self.pending_since.items()):
            if since <= index:
                break
            if ev_id in t:
                out.append(t[ev_id])
        out.reverse()
        return out

    def evals_with_status(self, status: str) -> list[dict[str, Any]]:
        """The store's own records of evaluations in *status* (pending or blocked): do not modify."""
        t = self.tables["evals"]
        return [t[i] for i in sorted(self.evals_by_status[status]) if i in t]

    def job_allocs(self, job_id: str) -> list[dict[str, Any]]:
        """The job's allocations (the store's own records: callers must not modify them)."""
        t = self.tables["allocs"]
        ids = self._job_alloc_ids.get(job_id)
        if ids is None:
            ids = self._job_alloc_ids[job_id] = sorted(self.allocs_by_job.get(job_id, ()))
        return [t[i] for i in ids if i in t]

    def live_job_allocs(self, job_id: str) -> list[dict[str, Any]]:
        """The job's live allocations, in no set order (the store's own records: not to be modified)."""
        ids = self._maybe_live_by_job.get(job_id)
        if not ids:
            return []
        t, out, gone = self.tables["allocs"], [], []
        for i in ids:
            a = t.get(i)
            if a is not None and a.get("DesiredStatus") == "run" \
                    and a.get("ClientStatus") not in _TERMINAL_CLIENT:
                out.append(a)
            else:
                gone.append(i)
        ids.difference_update(gone)
        return out

    def check_live_index(self) -> None:
        """AssertionError unless live_job_allocs gives each job's live allocations, as the table has them,
        and every evaluation and allocation is under its job (and node) in the by-job (by-node) indexes."""
        want: dict[str, set[str]] = {}
        for a in self.tables["allocs"].values():
            if a.get("DesiredStatus") == "run" and a.get("ClientStatus") not in _TERMINAL_CLIENT:
                want.setdefault(key_of(a), set()).add(a["ID"])
        for job_id in sorted(set(want) | set(self._maybe_live_by_job)):
            got = {a["ID"] for a in self.live_job_allocs(job_id)}
            if got != want.get(job_id, set()):
                raise AssertionError(f"job {job_id}: live allocations indexed {sorted(got)}, "
                                     f"in the table {sorted(want.get(job_id, set()))}")
        # and the by-job and by-node indexes the API's lists read hold every record of the table
        for e in self.tables["evals"].values():
            if e["ID"] not in self.evals_by_job.get(key_of(e), ()):
                raise AssertionError(f"evaluation {e['ID']} not indexed under its job {key_of(e)!r}")
        for a in self.tables["allocs"].values():
            if a["ID"] not in self.allocs_by_job.get(key_of(a), ()) \
                    or a["ID"] not in self.allocs_by_node.get(a.get("NodeID", ""), ()):
                raise AssertionError(f"allocation {a['ID']} not indexed under its job and node")
        for key, job in self.tables["jobs"].items():
            parent = parent_key_of(job)
            if parent and key not in self.children_of.get(parent, ()):
                raise AssertionError(f"job {key!r} not indexed under its parent {parent!r}")
            token = job.get("DispatchIdempotencyToken")
            if parent and token and key not in self.dispatch_tokens.get((parent, token), ()):
                raise AssertionError(f"job {key!r}: its dispatch token is not indexed")
        for (parent, token), keys in self.dispatch_tokens.items():
            for key in keys:
                job = self.tables["jobs"].get(key)
                if job is None or parent_key_of(job) != parent \
                        or job.get("DispatchIdempotencyToken") != token:
                    raise AssertionError(f"dispatch token {token!r} of {parent!r} indexed for {key!r}, "
                                         "which does not hold it")
        deployments.check_index(self)

    def job_evals(self, job_id: str) -> list[dict[str, Any]]:
        """The job's evaluations in ID order (the store's own records: callers must not modify them)."""
        t = self.tables["evals"]
        return [t[i] for i in sorted(self.evals_by_job.get(job_id, ())) if i in t and key_of(t[i]) == job_id]

    def node_allocs(self, node_id: str) -> list[dict[str, Any]]:
        """The node's allocations (the store's own records: callers must not modify them)."""
        t = self.tables["allocs"]
        return [t[i] for i in sorted(self.allocs_by_node.get(node_id, ())) if i in t]

    def node_usage(self, node_id: str) -> tuple[int, int, int]:
        """(CPU MHz, memory MB, disk MB) held by the node's live allocations (Nomad's TerminalStatus
        rule)."""
        got = self._node_usage.get(node_id)
        if got is None:
            from actors.scheduler.scheduler import alloc_usage, live

            cpu = mem = disk = 0
            for a in self.node_allocs(node_id):
                if live(a):
                    c, m, d = alloc_usage(a)
                    cpu += c
                    mem += m
                    disk += d
            got = self._node_usage[node_id] = (cpu, mem, disk)
        return got

    def node_capacity(self, node_id: str) -> tuple[int, int, int]:
        """(CPU MHz, memory MB, disk MB) the node offers to allocations (its resources less reserved)."""
        node = self.tables["nodes"].get(node_id)
        hit = self._node_caps.get(node_id)
        if hit is not None and hit[0] is node:
            return hit[1]
        from actors.scheduler.scheduler import node_capacity

        cap = node_capacity(node or {})
        self._node_caps[node_id] = (node, cap)
        return cap

    def ready_nodes_by_dc(self, dcs: tuple[str, ...], pool: str) -> tuple[int, dict[str, int]]:
        """The scheduler's ready_nodes_by_dc (a placement's NodesInPool and NodesAvailable), reused until
        the nodes table changes (do not modify)."""
        index = self.table_index["nodes"]
        cache = self._ready_by_dc
        if cache.get(None) != index:
            cache.clear()
            cache[None] = index
        key = (dcs, pool)
        hit = cache.get(key)
        if hit is None:
            from actors.scheduler.scheduler import ready_nodes_by_dc

            hit = cache[key] = ready_nodes_by_dc(self.tables["nodes"], dcs, pool)
        return hit

    def sorted_ids(self, table: str) -> list[str]:
        """The table's keys, sorted; reused until the table changes (do not modify)."""
        index = self.table_index[table]
        hit = self._sorted_ids.get(table)
        if hit is not None and hit[0] == index:
            return hit[1]
        ids = sorted(self.tables[table])
        self._sorted_ids[table] = (index, ids)
        return ids

    def _touch(self, table: str, index: int) -> None:
        self.table_index[table] = index
        for w in list(self._watchers):
            w(table, index)

    def _table(self, cmd: dict[str, Any]) -> str:
        table = cmd.get("table")
        if table not in self.tables:
            raise CommandError(f"unknown table {table!r}")
        return table

    def _kv_put(self, index: int, cmd: dict[str, Any]) -> Any:
        self.tables["kv"][str(cmd["key"])] = cmd["value"]
        self._touch("kv", index)
        return {"ok": True}

    def _kv_cas(self, index: int, cmd: dict[str, Any]) -> Any:
        key = str(cmd["key"])
        if self.tables["kv"].get(key) != cmd["expect"]:
            return {"ok": False, "value": self.tables["kv"].get(key)}
        self.tables["kv"][key] = cmd["value"]
        self._touch("kv", index)
        return {"ok": True}

    def _kv_delete(self, index: int, cmd: dict[str, Any]) -> Any:
        existed = self.tables["kv"].pop(str(cmd["key"]), None) is not None
        self._touch("kv", index)
        return {"ok": existed}

    def _upsert(self, index: int, cmd: dict[str, Any]) -> Any:
        table = self._table(cmd)
        record = cmd["record"]
        if not isinstance(record, dict) or not isinstance(record.get("ID"), str):
            raise CommandError("record must be a map with a string ID")
        old = self.tables[table].get(record["ID"])
        record = dict(record)
        record["CreateIndex"] = old["CreateIndex"] if old else index
        record["ModifyIndex"] = index
        self.tables[table][record["ID"]] = record
        if table == "allocs":
            if old is not None:
                self._node_usage.pop(old.get("NodeID", ""), None)
            self._index_alloc(record)
            services.alloc_written(self, index, record, old)
        elif table == "evals":
            self._index_eval(record)
        elif table == deployments.TABLE:
            if old is not None:
                deployments.drop_from_index(self, old)
            deployments.add_to_index(self, record)
        self._touch(table, index)
        return {"ok": True, "index": index}

    def _delete(self, index: int, cmd: dict[str, Any]) -> Any:
        table = self._table(cmd)
        ids = cmd["ids"]
        if not isinstance(ids, list):
            raise CommandError("ids must be a list")
        popped = [(i, self.tables[table].pop(i, None)) for i in ids]
        gone = [i for i, rec in popped if rec is not None]
        if table == "evals":
            for i, rec in popped:
                if rec is not None:
                    self._unindex_eval(i, key_of(rec))
        if table == "allocs":
            for i, rec in popped:
                if rec is not None:
                    self._node_usage.pop(rec.get("NodeID", ""), None)
                    services.remove_alloc(self, index, i)
        if table == deployments.TABLE:
            for _, rec in popped:
                if rec is not None:
                    deployments.drop_from_index(self, rec)
        if table == "evals":
            for ev_ids in self.evals_by_status.values():
                ev_ids.difference_update(gone)
            for ev_id in gone:
                self.pending_since.pop(ev_id, None)
        self._touch(table, index)
        return {"ok": True, "deleted": gone}

    def _batch(self, index: int, cmd: dict[str, Any]) -> Any:
        # All-or-nothing: validate by applying to a copy first would cost a
        # copy; instead every sub-op is checked before any is applied.
        ops = cmd["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, dict) and o.get("op") in
                                                ("upsert", "delete") for o in ops):
            raise CommandError("batch ops must be upserts and deletes")
        for o in ops:
            self._table(o)
        return [self._ops[o["op"]](index, o) for o in ops]

    # ------------------------------------------------------------ reads
    def get(self, table: str, key: str) -> Any:
        return copy.deepcopy(self.tables[table].get(key))

    def list(self, table: str, prefix: str = "") -> list[Any]:
        t = self.tables[table]
        return [copy.deepcopy(t[k]) for k in sorted(t) if k.startswith(prefix)]

    def index(self, table: str) -> int:
        return self.table_index[table]

    def watch(self, fn: Callable[[str, int], None]) -> Callable[[], None]:
        """Call *fn(table, index)* after every change; returns an unsubscribe."""
        self._watchers.append(fn)
        return lambda: self._watchers.remove(fn) if fn in self._watchers else None

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> bytes:
        snap: dict[str, Any] = {"v": SNAPSHOT_VERSION, "applied": self.applied_index, "tables": self.tables,
                                "index": self.table_index}
        # Optional keys (an older snapshot lacks them and restores them empty):
        if self.restore_staging is not None:
            snap["restore_staging"] = self.restore_staging
        if self.restore_index:
            snap["restore_index"] = self.restore_index
        return msgpack.packb(snap, use_bin_type=True)

    def restore(self, data: bytes, index: int, *, user: bool = False) -> None:
        """Replace the whole state with a snapshot's, as of Raft *index*.

        ``user``: an operator's restore applied at *index* (``snapshot_restore``),
        not Raft's own compaction snapshot: every table's index becomes
        *index*, so no table index goes backwards and every blocking query
        parked on any table wakes; the snapshot's staged restore, if it was
        saved in the middle of one, is dropped.
        """
        snap = msgpack.unpackb(data, raw=False) if data else {
            "v": SNAPSHOT_VERSION, "tables": {}, "index": {}}
        if snap.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported state snapshot version {snap.get('v')}")
        watchers = self._watchers
        # An operator's restore keeps this cluster's own ID (when it has one): the ID names the cluster,
        # not its data, and what the state derives IDs from includes it, so a cluster restored from
        # another's snapshot (production into staging) never makes the same IDs as that one.
        own_id = self.tables.get(cluster_meta.TABLE, {}).get(cluster_meta.KEY) if user else None
        self.tables = _new_tables(snap["tables"])
        if own_id:
            self.tables[cluster_meta.TABLE][cluster_meta.KEY] = own_id
        if user:
            self.table_index = {t: index for t in TABLES}
            self.restore_staging, self.restore_index = None, index
        else:
            self.table_index = {t: int(snap["index"].get(t, 0)) for t in TABLES}
            self.restore_staging = snap.get("restore_staging")
            self.restore_index = int(snap.get("restore_index", 0))
        self.evals_by_status = {"pending": set(), "blocked": set()}
        self.evals_by_job = {}
        self.blocked_by_job = {}
        self.pending_by_job = {}
        self.pending_since = {}
        self._sorted_ids = {}
        self._ready_by_dc = {}
        for ev in sorted(self.tables["evals"].values(), key=lambda e: (e.get("ModifyIndex", 0), e["ID"])):
            self._index_eval(ev)
        self.allocs_by_node = {}
        self.allocs_by_job = {}
        self._job_alloc_ids = {}
        self._maybe_live_by_job = {}
        self.outdated_memo: tuple[Any, ...] | None = None  # deployments._outdated's answer within a write
        self.node_alloc_index = {}
        self._all_keys_changed = True
        self._node_usage = {}
        self._node_caps = {}
        self.feasibility = {}
        for a in self.tables["allocs"].values():
            self._index_alloc(a)
        if self.restore_index:
            # A client's watch on its allocations must wake on the restore and
            # never see its index fall, though restored records are older.
            floor = self.restore_index
            for node in sorted(set(self.tables["nodes"]) | set(self.allocs_by_node)):
                if self.node_alloc_index.get(node, 0) < floor:
                    self.node_alloc_index[node] = floor
        self.periodic_ids = {i for i, j in self.tables["jobs"].items() if j.get("Periodic")}
        self.periodic_index = index
        self.children_of, self.dispatch_tokens = {}, {}
        for job in self.tables["jobs"].values():
            self._note_job(index, None, job, periodic=False)
        deployments.rebuild_index(self)
        services.rebuild_index(self)
        scaling.rebuild_index(self)
        if scaling.TABLE not in snap["tables"]:
            # A snapshot from before scaling policies: the table is the jobs' (derived state), made
            # as replaying the log that wrote them makes it, so every server holds the same policies.
            latest = scaling.rebuild_from_jobs(self)
            if not user:
                self.table_index[scaling.TABLE] = latest
        self.applied_index = index
        self._watchers = watchers
        if self.events is not None:
            self.events.reset(index)
        for t in TABLES:
            for w in list(self._watchers):
                w(t, self.table_index[t])

    def _snapshot_restore(self, index: int, cmd: dict[str, Any]) -> Any:
        """One chunk of an operator's snapshot restore (``PUT /v1/operator/snapshot``).

        The state travels through the log in chunks (one entry must fit in a
        wire frame); chunks are staged in order and the last one replaces
        the whole state at its own index -- on every server alike, durable
        as any entry.  A chunk out of order (another restore began since)
        or a state that does not verify is refused and changes nothing.
        """
        rid, seq, total, sha, data = cmd["id"], cmd["seq"], cmd["total"], cmd["sha256"], cmd["data"]
        if not (isinstance(rid, str) and isinstance(sha, str) and isinstance(data, bytes)
                and isinstance(seq, int) and isinstance(total, int) and 0 <= seq < total):
            raise CommandError("snapshot_restore needs a string id and sha256, bytes data, "
                               "and 0 <= seq < total")
        if seq == 0:
            self.restore_staging = {"id": rid, "total": total, "sha256": sha, "chunks": []}
        st = self.restore_staging
        if st is None or (st["id"], st["total"], st["sha256"], len(st["chunks"])) != (rid, total, sha, seq):
            return {"ok": False, "error": f"restore {rid}: chunk {seq + 1} of {total} is out of order "
                                          "(another restore started since?)"}
        st["chunks"].append(data)
        if len(st["chunks"]) < total:
            return {"ok": True, "index": index, "received": len(st["chunks"]), "total": total}
        self.restore_staging = None
        blob = b"".join(st["chunks"])
        if hashlib.sha256(blob).hexdigest() != sha:
            return {"ok": False, "error": f"restore {rid}: the state's checksum does not match"}
        try:
            # A check and a trial on a scratch store first: the bytes came
            # from outside, and a failure half-way must leave this state untouched.
            check_snapshot(blob)
            StateStore().restore(blob, index, user=True)
        except Exception as e:
            return {"ok": False,
                    "error": f"restore {rid}: the state cannot be restored: {type(e).__name__}: {e}"}
        self.restore(blob, index, user=True)
        return {"ok": True, "index": index, "restored": True}

    def _snapshot_restore_abort(self, index: int, cmd: dict[str, Any]) -> Any:
        """Drop restore *id*'s staged chunks (its sender gave up half-way); another's are left alone."""
        st = self.restore_staging
        dropped = st is not None and st["id"] == cmd["id"]
        if dropped:
            self.restore_staging = None
        return {"ok": True, "index": index, "dropped": dropped}

    def _noop(self, index: int, cmd: dict[str, Any]) -> Any:
        """Changes nothing: the Raft index moves (a restore of a snapshot taken at a later index)."""
        return {"ok": True, "index": index}

    def digest(self) -> bytes:
        """A canonical encoding of the whole state, to compare servers."""
        return msgpack.packb([sorted((t, sorted(self.tables[t].items())) for t in TABLES)],
                             use_bin_type=True)

    # ------------------------------------------------------------ nodes (issue 6)
    # Nomad's Node.Register / Node.UpdateStatus / node GC writes
    # (nomad/state/state_store.go upsertNodeTxn, updateNodeStatusTxn;
    # NOMAD.md §3-4).  Timestamps come in the command ("now", chosen by the
    # leader), so every server applies them identically.

    NODE_STATUSES = ("initializing", "ready", "down", "disconnected")
    MAX_NODE_EVENTS = 10  # Nomad MaxRetainedNodeEvents

    @staticmethod
    def _node_event(message: str, subsystem: str, now: float, index: int,
                    details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"Message": message, "Subsystem": subsystem, "Details": dict(details or {}),
                "Timestamp": now, "CreateIndex": index}

    # What a re-registration must change for the node's jobs to be evaluated again.
    # (Nomad shouldCreateNodeEval: what feasibility checks read; resources are
    # left to blocked evaluations there, as here.)  HostVolumes too, compared with
    # none and {} alike (records written before the field was kept have none).
    NODE_PLACEMENT_FIELDS = ("Attributes", "Meta", "Drivers", "NodeClass", "NodePool", "Datacenter", "Name")

    def _driver_updates(self, rec: dict[str, Any], old: dict[str, Any] | None, now: float,
                        index: int) -> list[dict[str, Any]]:
        """The node's Drivers get their UpdateTime (kept while a driver's health is unchanged, so a
        re-registration does not look like a change); a health change of a known driver is a node
        event, as Nomad's client makes one (subsystem Driver, the health description, the driver)."""
        drivers = rec.get("Drivers")
        if not isinstance(drivers, dict):
            return []
        before = (old or {}).get("Drivers") or {}
        events = []
        rec["Drivers"] = drivers = {name: dict(info) if isinstance(info, dict) else info
                                    for name, info in drivers.items()}
        for name in sorted(drivers):
            info, prev = drivers[name], before.get(name)
            if not isinstance(info, dict):
                continue
            same = isinstance(prev, dict) and all(prev.get(k) == info.get(k)
                                                  for k in ("Detected", "Healthy", "HealthDescription"))
            info["UpdateTime"] = prev.get("UpdateTime") if same and isinstance(prev, dict) else _rfc3339(now)
            if isinstance(prev, dict) and not same and info.get("HealthDescription") and (
                    prev.get("Healthy") != info.get("Healthy")
                    or prev.get("HealthDescription") != info.get("HealthDescription")):
                events.append(self._node_event(str(info["HealthDescription"]), "Driver", now, index,
                                               {"driver": name}))
        return events

    def _node_register(self, index: int, cmd: dict[str, Any]) -> Any:
        """Create or update a node; an existing node keeps its status (only UpdateStatus changes it)."""
        from actors.scheduler.scheduler import node_networks

        node, now = cmd["node"], float(cmd["now"])
        if not isinstance(node, dict) or not isinstance(node.get("ID"), str) or not node["ID"]:
            raise CommandError("node must be a map with a string ID")
        nodes = self.tables["nodes"]
        old = nodes.get(node["ID"])
        if old is not None and old.get("SecretID") and node.get("SecretID") != old["SecretID"]:
            return {"ok": False, "error": "node secret ID does not match"}
        rec = dict(node)
        rec["StatusUpdatedAt"] = now  # Nomad sets it on every Register
        rec["ModifyIndex"] = index
        # Entries written with driver_times (since drivers report their health): UpdateTime and
        # Driver events.  Older entries apply as they always did, so a replayed log gives the same state.
        driver_events = self._driver_updates(rec, old, now, index) if cmd.get("driver_times") else []
        if old is None:
            status = rec.get("Status") or "initializing"
            if status not in self.NODE_STATUSES:
                raise CommandError(f"unknown node status {status!r}")
            rec["Status"] = status
            rec["SchedulingEligibility"] = rec.get("SchedulingEligibility") or "eligible"
            rec["Events"] = [self._node_event("Node registered", "Cluster", now, index)]
            rec["LastMissedHeartbeatIndex"] = 0
            rec["CreateIndex"] = index
        else:
            for keep in ("Status", "SchedulingEligibility", "DrainStrategy", "LastDrain", "Events",
                         "LastMissedHeartbeatIndex", "CreateIndex"):
                if keep in old:
                    rec[keep] = old[keep]
            if driver_events:
                rec["Events"] = [*rec.get("Events", ()), *driver_events][-self.MAX_NODE_EVENTS:]
        nodes[rec["ID"]] = rec
        self._touch("nodes", index)
        node_pools.ensure(self, index, rec.get("NodePool") or node_pools.DEFAULT)
        evals: list[str] = []
        # Entries written with node_evals (every one since dynamic node meta):
        # a ready node that re-registers changed where placement looks (Nomad
        # shouldCreateNodeEval) has its jobs and the system jobs evaluated,
        # and blocked evaluations another go (its computed class changed), so
        # a constraint on ${meta.x} sees a meta change.  Older entries apply
        # as they always did.
        if cmd.get("node_evals") and old is not None and old.get("Status") == "ready" and (
                any(old.get(k) != rec.get(k) for k in self.NODE_PLACEMENT_FIELDS)
                or (old.get("HostVolumes") or {}) != (rec.get("HostVolumes") or {})
                or node_networks(old) != node_networks(rec)):
            jobs, specs = set(), self.tables["jobs"]
            for a in self.node_allocs(rec["ID"]):
                job = specs.get(key_of(a))
                if job is not None and not (job["Type"] == "system" and not job.get("Stop")) \
                        and job["Type"] != "sysbatch":  # Nomad's createNodeEvals skips sysbatch jobs
                    jobs.add(job_key_of(job))  # live system jobs: evaluated below, once
            evals = self._create_evals(index, sorted(jobs), "node-update", now, node_id=rec["ID"])
            evals += self._node_capacity_evals(index, now, rec["ID"], rec if cmd.get("pool_evals") else None)
        return {"ok": True, "index": index, "status": rec["Status"], "prev": old["Status"] if old else "",
                "created": old is None, "evals": evals, "EvalIDs": evals}

    def _node_update_status(self, index: int, cmd: dict[str, Any]) -> Any:
        """Set a node's status, record the event, and list its live allocations when it goes down."""
        node_id, status, now = str(cmd["node_id"]), cmd["status"], float(cmd["now"])
        if status not in self.NODE_STATUSES:
            raise CommandError(f"unknown node status {status!r}")
        nodes = self.tables["nodes"]
        old = nodes.get(node_id)
        if old is None:
            return {"ok": False, "error": "node not found"}
        prev = old.get("Status", "")
        rec = dict(old)
        rec["Status"] = status
        rec["StatusUpdatedAt"] = now
        rec["ModifyIndex"] = index
        unresponsive = ("down", "disconnected")
        if prev not in unresponsive and status in unresponsive:
            rec["LastMissedHeartbeatIndex"] = index
        elif prev != "ready" and status == "ready":
            rec["LastMissedHeartbeatIndex"] = 0
        event = cmd.get("event")
        if event:
            events = [*old.get("Events", ()),
                      self._node_event(str(event.get("Message", "")), str(event.get("Subsystem", "Cluster")),
                                       now, index, event.get("Details"))]
            rec["Events"] = events[-self.MAX_NODE_EVENTS:]
        nodes[node_id] = rec
        self._touch("nodes", index)
        live: list[str] = []
        evals: list[str] = []
        by_pool = rec if cmd.get("pool_evals") else None  # which system jobs (see _system_jobs_for)
        if status != prev and "disconnected" in (status, prev) and status != "down":
            # Nomad's nodeStatusTransitionRequiresEval: to or from disconnected, the node's jobs are
            # evaluated (its allocations go unknown, or are reconciled as it comes back).
            evals = self._node_evals(index, now, node_id, by_pool)
        elif status == "ready" and prev == "initializing" and old.get("LastMissedHeartbeatIndex"):
            # Back from disconnected with its allocations reported (Nomad: init -> ready).
            evals = self._node_evals(index, now, node_id, by_pool) + self._unblock(index, now)
        elif status == "down" and prev != "down":
            from actors.server.node_gc import alloc_terminal  # pure rule, shared with GC

            # The node's own allocations (the by-node index), not every allocation: both results
            # below are sorted, so the order they are found in does not matter.
            on_node = [a for a in self.node_allocs(node_id)
                       if a.get("NodeID") == node_id and not alloc_terminal(a)]
            live = sorted(a["ID"] for a in on_node)
            # Nomad createNodeEvals: the scheduler marks them lost and re-places them (a sysbatch job's
            # are left until its next evaluation, as Nomad's).
            jobs = sorted({key_of(a) for a in on_node if a.get("JobID") and not self._sysbatch(a)})
            evals = self._create_evals(index, jobs, "node-update", now,
                                       node_id=node_id)
        elif status == "ready" and prev != "ready":
            evals = self._node_capacity_evals(index, now, node_id, by_pool)
        return {"ok": True, "index": index, "status": status, "prev": prev, "allocs": live, "evals": evals}

    def _node_gc(self, index: int, cmd: dict[str, Any]) -> Any:
        """Remove the listed nodes that are still eligible at the command's cutoff."""
        from actors.server.node_gc import allocs_by_node, gc_eligible

        ids, cutoff = cmd["ids"], float(cmd["cutoff"])
        if not isinstance(ids, list):
            raise CommandError("ids must be a list")
        nodes = self.tables["nodes"]
        by_node = allocs_by_node(self.tables["allocs"].values(), ids)
        deleted = [i for i in ids if i in nodes and gc_eligible(nodes[i], by_node.get(i, ()), cutoff)]
        for i in deleted:
            del nodes[i]
            self.feasibility.pop(i, None)
        if deleted:
            self._touch("nodes", index)
        return {"ok": True, "deleted": deleted}

    def _sysbatch(self, alloc: dict[str, Any]) -> bool:
        return (self.tables["jobs"].get(key_of(alloc)) or {}).get("Type") == "sysbatch"

    def _node_evals(self, index: int, now: float, node_id: str,
                    node: dict[str, Any] | None = None) -> list[str]:
        """Nomad ``createNodeEvals``: one eval per job with an allocation on the node, and per system job
        (with *node*: per system job whose datacenters and pool take it, see _system_jobs_for).

        Never for a sysbatch job (Nomad 1.8.4+): it runs on the nodes eligible when it is registered
        (or launched), and a node's changes must not start it again there."""
        jobs = {key_of(a) for a in self.node_allocs(node_id) if a.get("JobID") and not self._sysbatch(a)}
        jobs.update(self._system_jobs_for(node))
        return self._create_evals(index, sorted(jobs), "node-update", now, node_id=node_id)

    def _system_jobs_for(self, node: dict[str, Any] | None) -> list[str]:
        """The system jobs a node's change evaluates: every one not stopped -- or, given the *node* (entries
        written with ``pool_evals``), only those whose datacenters and node pool take it, as Nomad's
        createNodeEvals (a job elsewhere has nothing to place there)."""
        out = []
        for j in self.tables["jobs"].values():
            if j["Type"] != "system" or j.get("Stop"):
                continue
            if node is not None:
                dcs, pool = j.get("Datacenters") or ["*"], j.get("NodePool") or node_pools.DEFAULT
                if not ("*" in dcs or node.get("Datacenter") in dcs) or \
                        pool not in (node_pools.ALL, node.get("NodePool") or node_pools.DEFAULT):
                    continue
            out.append(job_key_of(j))
        return sorted(out)

    def _node_deregister(self, index: int, cmd: dict[str, Any]) -> Any:
        """Remove a node (Nomad ``Node.Deregister``, the API's purge) and re-evaluate its jobs.

        Its allocations stay in the state: the scheduler sees them on a node
        that no longer exists, marks them lost and places replacements.
        """
        node_id, now = str(cmd["node_id"]), float(cmd["now"])
        old = self.tables["nodes"].pop(node_id, None)
        if old is None:
            return {"ok": False, "error": "node not found"}
        self.feasibility.pop(node_id, None)
        self._touch("nodes", index)
        evals = self._node_evals(index, now, node_id, old if cmd.get("pool_evals") else None)
        return {"ok": True, "index": index, "prev": old.get("Status", ""), "status": "",
                "evals": evals, "EvalIDs": evals, "NodeModifyIndex": index}

    def _node_evaluate(self, index: int, cmd: dict[str, Any]) -> Any:
        """Re-evaluate every job on a node (Nomad ``Node.Evaluate``); the node itself is unchanged."""
        node_id, now = str(cmd["node_id"]), float(cmd["now"])
        node = self.tables["nodes"].get(node_id)
        if node is None:
            return {"ok": False, "error": "node not found"}
        evals = self._node_evals(index, now, node_id, node if cmd.get("pool_evals") else None)
        return {"ok": True, "index": index, "evals": evals, "EvalIDs": evals,
                "NodeModifyIndex": node.get("ModifyIndex", 0)}

    # ------------------------------------------------------------ jobs, evaluations, allocations (issue 7)
    # Nomad's Job.Register / Deregister, Plan.Submit, Node.UpdateAlloc,
    # Node.UpdateDrain / UpdateEligibility and the drainer's writes.  IDs of
    # what a command creates are derived from its Raft index and the cluster's
    # ID, so every server creates the same ones and another cluster other
    # ones; timestamps come inside the command.

    EVAL_NS = uuid.UUID("0e4b6f1a-9c7d-4b0e-8a51-3f2d6c9b7e20")
    MAX_ALLOC_EVENTS = 10  # task events kept per task (Nomad keeps 10)

    def cluster_id(self) -> str:
        """The cluster's ID, "" until its first leader wrote it (actors.state.cluster_meta)."""
        return cluster_meta.cluster_id(self.tables)

    def _id_seed(self, name: str) -> str:
        """*name* (what an ID is derived from) within this cluster: the cluster's ID before it once
        there is one; while there is none (a log or snapshot from before the cluster ID), *name*
        alone, so such entries derive the IDs they always did."""
        cid = self.cluster_id()
        return f"{cid}/{name}" if cid else name

    def _eval_id(self, index: int, n: int) -> str:
        return uuid5_str(self.EVAL_NS, self._id_seed(f"{index}/{n}"))

    def _create_evals(self, index: int, job_ids: list[str], trigger: str, now: float, *,
                      node_id: str = "", status: str = "pending", previous: str = "",
                      first: int = 0, priority: int = 0) -> list[str]:
        jobs, evals, out = self.tables["jobs"], self.tables["evals"], []
        # n continues after evaluations this entry already made (several plans
        # in one plan_apply_batch); an entry's first call numbers from *first*
        # as it always did, so IDs of entries already in a log are unchanged.
        start = max(first, self._entry_evals)
        self._entry_evals = start + len(job_ids)
        for n, job_id in enumerate(job_ids, start=start):
            job = jobs.get(job_id)
            namespace, bare_id = split_key(job_id)  # job_id: the job's store key
            ev = {"ID": self._eval_id(index, n), "Namespace": namespace, "JobID": bare_id,
                  "Type": job["Type"] if job else "service",
                  "Priority": priority or (job["Priority"] if job else 50),
                  "TriggeredBy": trigger, "NodeID": node_id, "Status": status, "StatusDescription": "",
                  "PreviousEval": previous, "JobModifyIndex": job.get("JobModifyIndex", 0) if job else 0,
                  "FailedTGAllocs": {}, "CreateIndex": index, "ModifyIndex": index,
                  "CreateTime": now, "ModifyTime": now}
            evals[ev["ID"]] = ev
            self._index_eval(ev)
            out.append(ev["ID"])
        if out:
            self._touch("evals", index)
        return out

    def _node_capacity_evals(self, index: int, now: float, node_id: str,
                             node: dict[str, Any] | None = None) -> list[str]:
        """Capacity appeared (a node ready or eligible): system jobs (with *node*: those that take it, see
        _system_jobs_for) and blocked evals get another go."""
        out = self._create_evals(index, self._system_jobs_for(node), "node-update", now, node_id=node_id)
        return out + self._unblock(index, now)

    def _unblock(self, index: int, now: float) -> list[str]:
        """Capacity changed: every blocked evaluation is pending again (Nomad's BlockedEvals.Unblock)."""
        out = []
        for ev in self.evals_with_status("blocked"):
            ev.update(Status="pending", ModifyIndex=index, ModifyTime=now,
                      StatusDescription=UNBLOCKED_DESCRIPTION)
            self._index_eval(ev)
            out.append(ev["ID"])
        if out:
            self._touch("evals", index)
        return out

    def _job_register(self, index: int, cmd: dict[str, Any]) -> Any:
        job, now = dict(cmd["job"]), float(cmd["now"])
        if not isinstance(job.get("ID"), str) or not job["ID"]:
            raise CommandError("job must be a map with a string ID")
        from actors.scheduler.job import is_launcher, schedule_changed, spec_changed

        refused = namespaces.job_error(self.tables, job) or node_pools.job_pool_error(self.tables, job)
        if refused:
            return {"ok": False, "error": refused}
        jobs, key = self.tables["jobs"], job_key_of(job)
        old = jobs.get(key)
        enforce = cmd.get("enforce_index")
        # Entries written with enforce_absent (every one since): Nomad's Job.EnforceIndex whole -- index 0
        # means "the job must not exist", any other index that it must.  Older entries apply as they did.
        if enforce is not None and cmd.get("enforce_absent"):
            if old is not None and enforce == 0:
                return {"ok": False, "error": "Enforcing job modify index 0: job already exists"}
            if old is None and enforce != 0:
                return {"ok": False, "error": f"Enforcing job modify index {enforce}: job does not exist"}
        if old is not None and enforce is not None and old.get("JobModifyIndex") != enforce:
            return {"ok": False,
                    "error": f"Enforcing job modify index {enforce}: job exists with "
                             f"conflicting job modify index: {old.get('JobModifyIndex')}"}
        if old is not None and (cmd.get("preserve_counts") or cmd.get("preserve_resources")):
            job = _preserved(job, old, bool(cmd.get("preserve_counts")), bool(cmd.get("preserve_resources")))
        # Everything the entry decides comes before its first write (an entry applies whole or not at all).
        policies = scaling.wanted_for_job(job)
        # new_version: Nomad's Job.Scale, whose registration is a new version even at the same count.
        changed = old is None or spec_changed(old, job) or bool(cmd.get("new_version"))
        if old is not None and changed:
            self._keep_version(old, index)
            deployments.cancel_for_job(self, index, key, deployments.DESC_NEWER_JOB, now,
                                       older_than=old["Version"] + 1)
        job["ScheduleIndex"] = index if old is None or schedule_changed(old, job) else \
            old.get("ScheduleIndex", old["JobModifyIndex"])
        job["Version"] = (old["Version"] + 1 if changed else old["Version"]) if old else 0
        job["Stable"] = bool(old.get("Stable")) if old is not None and not changed else False
        job["CreateIndex"] = old["CreateIndex"] if old else index
        job["ModifyIndex"] = index
        job["JobModifyIndex"] = index if changed else old["JobModifyIndex"]
        # Nomad's Job.Register writes no job for an unchanged spec, so its version keeps its submit time.
        # Only entries written with keep_unchanged_time (every HTTP registration since) decide so; older
        # ones apply as they did, and a scale (Nomad: always a write) names none.
        kept = old is not None and not changed and cmd.get("keep_unchanged_time")
        job["SubmitTime"] = old.get("SubmitTime", now) if kept else now
        scaling.update_for_job(self, index, job, policies)
        if isinstance(cmd.get("submission"), dict):
            self._keep_submission(index, job, cmd["submission"])
        if is_launcher(job):
            # Nomad: a periodic or parameterized job never runs itself (no evaluation); its launches do.
            job["Status"] = "dead" if job.get("Stop") else "running"
            jobs[key] = job
            self._note_job(index, old, job)
            self._touch("jobs", index)
            return {"ok": True, "index": index, "EvalID": "", "EvalCreateIndex": 0,
                    "JobModifyIndex": job["JobModifyIndex"]}
        job["Status"] = old.get("Status", "pending") if old else "pending"
        jobs[key] = job
        self._note_job(index, old, job)
        self._touch("jobs", index)
        evals = self._create_evals(index, [key], str(cmd.get("trigger") or "job-register"), now,
                                   priority=int(cmd.get("eval_priority") or 0))
        return {"ok": True, "index": index, "EvalID": evals[0], "EvalCreateIndex": index,
                "JobModifyIndex": job["JobModifyIndex"]}

    def _job_scale(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.Scale``: set one group's count (a new version, see always_new_version), evaluate the
        job, and record the scaling event; without a count, the event only.

        An entry with ``event`` (``{"Message", "Error", "Meta"}``: every one written since scaling
        events came) records one and decides as Nomad's Job.Scale does: a count may be absent, a
        system job scales between 0 and 1, a periodic or parameterized job's count changes with no
        evaluation, an active deployment of the job blocks a count, ``job_modify_index`` (when not
        0) must be the job's, and the evaluation is triggered by ``job-scaling``.  An older entry
        (a count, no event) applies as it always did, so a replay of the log makes the same state.
        """
        from actors.scheduler.job import MAX_COUNT, SERVER_OWNED

        job_id, group, raw_count = str(cmd["job_id"]), str(cmd["group"]), cmd.get("count")
        key = self._cmd_job_key(cmd)
        event = cmd.get("event")
        if event is not None and not isinstance(event, dict):
            raise CommandError("job_scale: event must be a map")
        if raw_count is None and event is None:
            raise CommandError("job_scale needs a count or an event")
        count = None if raw_count is None else int(raw_count)
        job = self.tables["jobs"].get(key)
        if job is None:
            return {"ok": False, "error": "job not found" if event is None else f'job "{job_id}" not found'}
        if event is None and (job.get("Periodic") or job.get("ParameterizedJob")):
            return {"ok": False, "error": "cannot scale a periodic or parameterized job"}
        if event is not None and job.get("Type") == "system" and count is not None and count > 1:
            return {"ok": False, "error": 'jobs of type "system" can only be scaled between 0 and 1'}
        tg = next((g for g in job["TaskGroups"] if g["Name"] == group), None)
        if tg is None:
            if event is not None:
                return {"ok": False,
                        "error": f'task group "{group}" specified for scaling does not exist in job'}
            return {"ok": False, "error": f"task group {group!r} not found"}
        ns, previous = job.get("Namespace", "default"), int(tg.get("Count", 0))
        if count is None:  # an event only: the job is left as it is, no evaluation
            ev = self._scaling_event(index, cmd, None, previous, None)
            scaling.add_event(self, index, ns, job_id, group, ev)
            return {"ok": True, "index": index, "EvalID": "", "EvalCreateIndex": 0,
                    "JobModifyIndex": job.get("ModifyIndex", 0)}
        # Nomad's Job.Scale: a count within the group's scaling policy, whether it is enabled or not.
        # Only entries written with policy_bounds (every one since scaling policies came) check it:
        # an older job_scale applies as it always did, and a Scaling no policy was made of is no bound.
        sc = scaling.group_spec(ns, job_id, tg)
        if cmd.get("policy_bounds") and sc is not None:
            if count < sc["Min"]:
                return {"ok": False, "error": "group count was less than scaling policy minimum: "
                                              f"{count} < {sc['Min']}"}
            if sc["Max"] < count:
                return {"ok": False, "error": "group count was greater than scaling policy maximum: "
                                              f"{count} > {sc['Max']}"}
        if not 0 <= count <= MAX_COUNT:
            return {"ok": False, "error": f"count must be between 0 and {MAX_COUNT}"}
        # The server's job_max_count, on entries written with it (older ones apply as they did).
        max_count = int(cmd.get("max_count") or 0)
        total = sum(int(g.get("Count", 0)) for g in job["TaskGroups"]) - previous + count
        if max_count and total > max_count:
            return {"ok": False, "error": "total count was greater than configured job_max_count: "
                                          f"{total} > {max_count}"}
        register: dict[str, Any] = {"now": cmd["now"]}
        ev = None
        if event is not None:
            ev = self._scaling_event(index, cmd, count, previous, None)  # checked before anything is written
            dep = deployments.latest(self, key)
            if dep is not None and dep.get("Status") in deployments.ACTIVE \
                    and dep.get("JobCreateIndex") == job.get("CreateIndex"):
                return {"ok": False, "error": "job scaling blocked due to active deployment"}
            if cmd.get("job_modify_index"):
                register["enforce_index"] = int(cmd["job_modify_index"])
            register["trigger"] = "job-scaling"  # Nomad's EvalTriggerScaling
            # Nomad's Job.Scale registers the job whatever the count, and its state store makes every
            # registration that reaches it a new version: entries written with always_new_version (every
            # one since) do so too; older ones kept the version at the same count and apply as they did.
            if cmd.get("always_new_version"):
                register["new_version"] = True
        spec = {k: v for k, v in job.items() if k not in SERVER_OWNED}
        spec["TaskGroups"] = [{**g, "Count": count} if g["Name"] == group else g for g in job["TaskGroups"]]
        result = self._job_register(index, {"job": spec, **register})
        if ev is not None and result.get("ok"):
            scaling.add_event(self, index, ns, job_id, group, {**ev, "EvalID": result["EvalID"] or None})
        return result

    @staticmethod
    def _cmd_job_key(cmd: dict[str, Any]) -> str:
        """The store key of the job a command names: its ``job_id`` in its ``namespace`` (an entry from
        before namespaces names none: default)."""
        return job_key(cmd.get("namespace") or None, str(cmd["job_id"]))

    @staticmethod
    def _scaling_event(index: int, cmd: dict[str, Any], count: int | None, previous: int,
                       eval_id: str | None) -> dict[str, Any]:
        event = cmd["event"]
        meta = event.get("Meta")
        if meta is not None and not isinstance(meta, dict):
            raise CommandError("job_scale: the event's Meta must be a map")
        return scaling.make_event(float(cmd["now"]), index, count=count, previous=previous,
                                  message=str(event.get("Message") or ""), error=bool(event.get("Error")),
                                  meta=meta, eval_id=eval_id)

    def _periodic_launch(self, index: int, cmd: dict[str, Any]) -> Any:
        """Launch a periodic job's child for the launch time (the leader's dispatcher, or a force run)."""
        from actors.scheduler.job import SERVER_OWNED

        key, launch, now = self._cmd_job_key(cmd), float(cmd["launch"]), float(cmd["now"])
        force = bool(cmd.get("force"))
        parent = self.tables["jobs"].get(key)
        if parent is None:
            return {"ok": False, "error": "job not found"}
        job_id, namespace = parent["ID"], parent.get("Namespace") or "default"
        rules = parent.get("Periodic")
        if not rules:
            return {"ok": False, "error": "can't force launch non-periodic job"}
        if parent.get("Stop") or not rules.get("Enabled", True) or parent.get("ParameterizedJob"):
            # Nomad's ForceEval: only an active periodic job is tracked by the dispatcher
            return {"ok": False, "error": f"force launch for job {_go_quote(job_id)} failed: can't force run "
                                          f"non-tracked job {_go_quote(job_id)} ({namespace})"}
        launches = self.tables["periodic_launch"]
        last = launches.get(key, {}).get("Launch", 0.0)
        if not force and launch <= last:
            return {"ok": True, "index": index, "skipped": "already launched"}
        # A new leader's late launch of one it found missed: not missed if a launch since its due time is
        # recorded (written by the last leader after this one's view was read).
        if not force and cmd.get("due") is not None and last >= float(cmd["due"]):
            return {"ok": True, "index": index, "skipped": "already launched"}
        launches[key] = {"ID": job_id, "Launch": max(last, launch),
                         **({"Namespace": namespace} if key != job_id else {})}
        self.periodic_index = index
        self._touch("periodic_launch", index)
        child_id = f"{job_id}/periodic-{int(launch)}"
        running = [j for j in self.job_children(key) if j.get("Status") != "dead" and not j.get("Stop")]
        if job_key(namespace, child_id) in self.tables["jobs"] and not force:
            return {"ok": True, "index": index, "skipped": f"{child_id} exists"}
        # A force run in the same second as the last launch registers that launch's job again (a new
        # version of it, and an evaluation), as Nomad's ForceEval does with the same derived ID.
        if running and rules.get("ProhibitOverlap") and not force:
            return {"ok": True, "index": index, "skipped": f"{running[0]['ID']} still running"}
        child = {k: v for k, v in parent.items() if k not in SERVER_OWNED and k != "Periodic"}
        child.update(ID=child_id, Name=child_id, ParentID=job_id)
        res = self._job_register(index, {"job": child, "now": now})
        return {**res, "JobID": child_id}

    DISPATCH_NS = uuid.UUID("6d1e2c7a-41f3-4b8e-9c25-8a0f3e7d5b61")

    def _job_dispatch(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.Dispatch``: a child batch job of a parameterized job, with its meta and payload."""
        from actors.scheduler.job import DISPATCH_PAYLOAD_MAX_BYTES, SERVER_OWNED

        now = float(cmd["now"])
        payload, meta = str(cmd.get("payload") or ""), dict(cmd.get("meta") or {})
        parent = self.tables["jobs"].get(self._cmd_job_key(cmd))
        if parent is None:
            return {"ok": False, "error": "parameterized job not found"}
        parent_id, namespace = parent["ID"], parent.get("Namespace") or "default"
        rules = parent.get("ParameterizedJob")
        if not rules:
            return {"ok": False, "error": f"Specified job {_go_quote(parent_id)} is not a parameterized job"}
        if parent.get("Stop"):
            return {"ok": False, "error": f"Specified job {_go_quote(parent_id)} is stopped"}
        try:
            size = len(base64.b64decode(payload, validate=True))  # Nomad measures the decoded payload
        except (binascii.Error, ValueError):
            return {"ok": False, "error": "Payload is not valid base64"}
        if rules["Payload"] == "forbidden" and payload:
            return {"ok": False, "error": "Payload provided but forbidden by parameterized job"}
        if rules["Payload"] == "required" and not payload:
            return {"ok": False, "error": "Payload is not provided but required by parameterized job"}
        if size > DISPATCH_PAYLOAD_MAX_BYTES:
            return {"ok": False, "error": f"Payload exceeds maximum size; {size} > {DISPATCH_PAYLOAD_MAX_BYTES}"}
        # Nomad's validateDispatchRequest: unpermitted keys first, then missing ones, each list as Go's %v
        # prints a []string ("[a b]").
        unexpected = sorted(set(meta) - set(rules["MetaRequired"]) - set(rules["MetaOptional"]))
        if unexpected:
            return {"ok": False, "error": "Dispatch request included unpermitted metadata keys: "
                                          f"[{' '.join(unexpected)}]"}
        missing = sorted(set(rules["MetaRequired"]) - set(meta))
        if missing:
            return {"ok": False, "error": "Dispatch did not provide required meta keys: "
                                          f"[{' '.join(missing)}]"}
        token = str(cmd.get("idempotency_token") or "")
        if token:
            # Nomad's CheckIdempotencyToken: a child of this job dispatched with the same token (and not
            # yet collected) is the answer; nothing new is dispatched.
            held = self.dispatch_tokens.get((job_key_of(parent), token))
            job = self.tables["jobs"][min(held)] if held else None
            if job is not None:
                return {"ok": True, "index": index, "DispatchedJobID": job["ID"], "EvalID": "",
                        "EvalCreateIndex": 0, "JobCreateIndex": job.get("CreateIndex", 0)}
        suffix = str(uuid.uuid5(self.DISPATCH_NS, self._id_seed(f"{index}/{parent_id}")))[:8]
        child = {k: v for k, v in parent.items() if k not in SERVER_OWNED and k != "ParameterizedJob"}
        prefix = str(cmd.get("id_prefix_template") or "")
        child_id = f"{parent_id}/dispatch-{prefix + '-' if prefix else ''}{int(now)}-{suffix}"
        child.update(ID=child_id, Name=child_id, ParentID=parent_id, Dispatched=True, Payload=payload or None,
                     Meta={**parent.get("Meta", {}), **{str(k): str(v) for k, v in meta.items()}})
        # Only what the entry asked for: an entry from before these options replays to the record it made.
        if cmd.get("priority"):
            child["Priority"] = int(cmd["priority"])
        if token:
            child["DispatchIdempotencyToken"] = token
        res = self._job_register(index, {"job": child, "now": now})
        return {**res, "DispatchedJobID": child_id, "JobCreateIndex": index}

    def _note_job(self, index: int, old: dict[str, Any] | None, new: dict[str, Any] | None, *,
                  periodic: bool = True) -> None:
        """Keep the derived job indexes up to date for a job write (*new* None: the job is gone):
        periodic_ids and periodic_index (unless not *periodic*), children_of and dispatch_tokens."""
        if periodic and ((old is not None and old.get("Periodic"))
                         or (new is not None and new.get("Periodic"))):
            self.periodic_index = index
            job_id = job_key_of(new or old or {})
            if new is not None and new.get("Periodic"):
                self.periodic_ids.add(job_id)
            else:
                self.periodic_ids.discard(job_id)
        was = parent_key_of(old) if old is not None else ""
        now = parent_key_of(new) if new is not None else ""
        if not (was or now):
            return
        key = job_key_of(new if new is not None else old or {})
        if was != now:
            if was:
                _drop_from(self.children_of, was, key)
            if now:
                self.children_of.setdefault(now, set()).add(key)
        had = (was, old.get("DispatchIdempotencyToken") or "") if old is not None else (was, "")
        has = (now, new.get("DispatchIdempotencyToken") or "") if new is not None else (now, "")
        if had != has:
            if had[0] and had[1]:
                _drop_from(self.dispatch_tokens, had, key)
            if has[0] and has[1]:
                self.dispatch_tokens.setdefault(has, set()).add(key)

    def job_children(self, parent: str, *, ordered: bool = True) -> list[dict[str, Any]]:
        """The jobs launched or dispatched from the job of store key *parent* (the store's own records:
        callers must not modify them), by ID unless not *ordered*."""
        t, ids = self.tables["jobs"], self.children_of.get(parent, ())
        return [t[k] for k in (sorted(ids) if ordered else ids) if k in t]

    def _keep_version(self, job: dict[str, Any], index: int) -> None:
        """*job* is being replaced by a new version: keep it among the job's earlier versions.

        As Nomad's upsertJobVersion: a tagged version is always kept; of the untagged ones, the
        newest ``job_tracked_versions`` (the new current one included)."""
        versions = self.tables["job_versions"]
        room = self.job_tracked_versions - 1
        kept = []
        key = job_key_of(job)
        for v in [job, *versions.get(key, ())]:
            if v.get("VersionTag"):
                kept.append(v)
            elif room > 0:
                kept.append(v)
                room -= 1
        versions[key] = kept
        self._touch("job_versions", index)

    def _keep_submission(self, index: int, job: dict[str, Any], sub: dict[str, Any]) -> None:
        """Nomad's updateJobSubmission: the source submitted with *job*'s registration, kept for its version
        (once: one already kept for that version stays), and only as many as the job's tracked versions,
        newest first (pruneJobSubmissions)."""
        table = self.tables["job_submissions"]
        kept = dict(table.get(job_key_of(job)) or {})
        key = str(job["Version"])
        if key in kept:
            return
        kept[key] = {"Source": str(sub.get("Source") or ""), "Format": str(sub.get("Format") or ""),
                     "VariableFlags": dict(sub.get("VariableFlags") or {}),
                     "Variables": str(sub.get("Variables") or ""),
                     "Namespace": job.get("Namespace", "default"),
                     "JobID": job["ID"], "Version": job["Version"], "JobModifyIndex": index}
        for old in sorted(kept, key=int)[:max(0, len(kept) - self.job_tracked_versions)]:
            del kept[old]
        table[job_key_of(job)] = kept
        self._touch("job_submissions", index)

    def _drop_submissions(self, job_id: str, index: int) -> None:
        if self.tables["job_submissions"].pop(job_id, None) is not None:
            self._touch("job_submissions", index)

    def job_versions(self, job_id: str) -> list[dict[str, Any]]:
        """The job's tracked versions, newest (the current one) first; [] for an unknown job."""
        job = self.tables["jobs"].get(job_id)
        return [job, *self.tables["job_versions"].get(job_id, ())] if job is not None else []

    def _job_evaluate(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.Evaluate``: a new evaluation of the job as it is (a forced reschedule pass)."""
        job_id, now = self._cmd_job_key(cmd), float(cmd["now"])
        job = self.tables["jobs"].get(job_id)
        if job is None:
            return {"ok": False, "error": "job not found"}
        if job.get("Periodic") or job.get("ParameterizedJob"):
            kind = "periodic" if job.get("Periodic") else "parameterized"
            return {"ok": False, "error": f"can't evaluate {kind} job"}
        if cmd.get("force_reschedule"):
            self._force_reschedule(index, job, now)
        evals = self._create_evals(index, [job_id], "job-register", now)
        return {"ok": True, "index": index, "EvalID": evals[0], "EvalCreateIndex": index,
                "JobModifyIndex": job["JobModifyIndex"]}

    def _force_reschedule(self, index: int, job: dict[str, Any], now: float) -> None:
        """Nomad's Job.Evaluate with EvalOptions.ForceReschedule: each failed allocation not yet replaced,
        of a group whose reschedule policy is enabled (attempts or unlimited), is marked
        DesiredTransition.ForceReschedule, which the scheduler replaces now, attempts used up or not."""
        from actors.scheduler.scheduler import reschedule_policy

        groups = {g.get("Name"): g for g in job.get("TaskGroups") or ()}
        allocs, marked = self.tables["allocs"], False
        for a in self.job_allocs(job_key_of(job)):
            group = groups.get(a.get("TaskGroup"))
            rp = reschedule_policy(job, group) if group is not None else None
            if rp is None or not (int(rp.get("Attempts") or 0) > 0 or rp.get("Unlimited")):
                continue
            t = a.get("DesiredTransition") or {}
            if a.get("NextAllocation") or a.get("ClientStatus") != "failed" or t.get("ForceReschedule"):
                continue
            allocs[a["ID"]] = {**a, "DesiredTransition": {**t, "ForceReschedule": True}, "ModifyIndex": index,
                               "ModifyTime": now}
            self._index_alloc(allocs[a["ID"]])
            marked = True
        if marked:
            self._touch("allocs", index)

    def _job_stability(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.Stable``: mark one version of the job stable (or not)."""
        job_id, version, stable = str(cmd["job_id"]), int(cmd["version"]), bool(cmd["stable"])
        key = self._cmd_job_key(cmd)
        versions = self.job_versions(key)
        at = next((i for i, v in enumerate(versions) if v.get("Version") == version), None)
        if at is None:
            return {"ok": False, "error": f"job {job_id!r} at version {version} not found"}
        if at == 0:
            self.tables["jobs"][key] = {**versions[0], "Stable": stable, "ModifyIndex": index}
            self._touch("jobs", index)
        else:
            kept = list(self.tables["job_versions"][key])
            kept[at - 1] = {**kept[at - 1], "Stable": stable}
            self.tables["job_versions"][key] = kept
            self._touch("job_versions", index)
        return {"ok": True, "index": index}

    def _job_version_tag(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.TagVersion``: name a version ``{Name, Description, TaggedTime}`` (``tag``), or
        with no ``tag`` take the tag ``name`` off the version holding it."""
        job_id, name, tag = str(cmd["job_id"]), str(cmd["name"]), cmd.get("tag")
        key = self._cmd_job_key(cmd)
        versions = self.job_versions(key)
        if tag is None:
            at = next((i for i, v in enumerate(versions) if (v.get("VersionTag") or {}).get("Name") == name),
                      None)
            if at is None:
                return {"ok": False, "error": f'tag "{name}" not found on job "{job_id}"'}
        else:
            if not isinstance(tag, dict) or not isinstance(tag.get("Name"), str):
                raise CommandError("job_version_tag: tag must be a map with a Name")
            version = int(cmd.get("version") or 0)
            if cmd.get("latest") and not version and versions:
                version = int(versions[0]["Version"])
            at = None
            for i, v in enumerate(versions):
                if (v.get("VersionTag") or {}).get("Name") == tag["Name"] and v.get("Version") != version:
                    return {"ok": False,
                            "error": f'tag "{tag["Name"]}" already exists on a different version of job '
                                     f'"{job_id}"'}
                if v.get("Version") == version:
                    at = i
            if at is None:
                return {"ok": False, "error": f'job "{job_id}" version {version} not found'}
            tag = {"Name": tag["Name"], "Description": str(tag.get("Description") or ""),
                   "TaggedTime": int(tag.get("TaggedTime") or 0)}
        if at == 0:
            self.tables["jobs"][key] = {**versions[0], "VersionTag": tag, "ModifyIndex": index}
            self._touch("jobs", index)
        else:
            kept = list(self.tables["job_versions"][key])
            kept[at - 1] = {**kept[at - 1], "VersionTag": tag, "ModifyIndex": index}
            self.tables["job_versions"][key] = kept
            self._touch("job_versions", index)
        return {"ok": True, "index": index, "tag": tag}

    def _job_revert(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Job.Revert``: register an earlier version's spec again, as a new version."""
        from actors.scheduler.job import SERVER_OWNED

        job_id, version = str(cmd["job_id"]), int(cmd["version"])
        versions = self.job_versions(self._cmd_job_key(cmd))
        if not versions:
            return {"ok": False, "error": "job not found"}
        current = versions[0]
        # Nomad's Job.Revert checks and texts, in its order (a refusal writes nothing, so older entries
        # replay the same state).
        if version == current["Version"]:
            return {"ok": False, "error": "can't revert to current version"}
        target = next((v for v in versions if v.get("Version") == version), None)
        if target is None:
            ns = current.get("Namespace") or "default"
            return {"ok": False, "error": f"job {_go_quote(job_id)} in namespace {_go_quote(ns)} at version "
                                          f"{version} not found"}
        prior = cmd.get("enforce_prior_version")
        if prior is not None and current["Version"] != prior:
            return {"ok": False, "error": f"Current job has version {current['Version']}; "
                                          f"enforcing version {prior}"}
        spec = {k: v for k, v in target.items() if k not in SERVER_OWNED}
        return self._job_register(index, {"job": spec, "now": cmd["now"]})

    def _job_deregister(self, index: int, cmd: dict[str, Any]) -> Any:
        job_id, now = self._cmd_job_key(cmd), float(cmd["now"])  # job_id: the job's store key
        jobs = self.tables["jobs"]
        old = jobs.get(job_id)
        if old is None:
            return {"ok": False, "error": "job not found"}
        if cmd.get("no_shutdown_delay"):
            # Nomad's handleJobDeregister: every allocation of the job skips its shutdown_delay.
            allocs = self.tables["allocs"]
            for alloc_id in sorted(self.allocs_by_job.get(job_id, ())):
                self._merge_transition(allocs, alloc_id, {"NoShutdownDelay": True}, index)
            self._touch("allocs", index)
        if cmd.get("purge"):
            del jobs[job_id]
            deployments.purge_job(self, index, job_id)
            scaling.delete_for_job(self, index, old.get("Namespace", "default"), old["ID"])
            scaling.delete_events_for_job(self, index, job_id)
            self._note_job(index, old, None)
            if self.tables["job_versions"].pop(job_id, None) is not None:
                self._touch("job_versions", index)
            self._drop_submissions(job_id, index)
            if self.tables["periodic_launch"].pop(job_id, None) is not None:
                self._touch("periodic_launch", index)
        else:
            if not old.get("Stop"):
                self._keep_version(old, index)
            deployments.cancel_for_job(self, index, job_id, deployments.DESC_STOPPED_JOB, now)
            jobs[job_id] = {**old, "Stop": True, "ModifyIndex": index, "JobModifyIndex": index,
                            "ScheduleIndex": index,
                            **({"Status": "dead"} if old.get("ParameterizedJob") or old.get("Periodic") else {}),
                            "Version": old["Version"] + (0 if old.get("Stop") else 1), "Stable": False}
            # Nomad's FSM disables a stopped job's scaling policies, so nothing autoscales a stopped job.
            groups = jobs[job_id].get("TaskGroups")
            if isinstance(groups, list) and any(isinstance(g, dict) and isinstance(g.get("Scaling"), dict)
                                                for g in groups):
                jobs[job_id]["TaskGroups"] = [
                    {**g, "Scaling": {**g["Scaling"], "Enabled": False}}
                    if isinstance(g, dict) and isinstance(g.get("Scaling"), dict) else g for g in groups]
                scaling.update_for_job(self, index, jobs[job_id])
            self._note_job(index, old, jobs[job_id])
        self._touch("jobs", index)
        # The job's evaluations waiting for capacity wait for nothing now
        # (Nomad untracks them from its blocked evals): canceled, they are
        # terminal, so job GC can take the stopped job with them.
        canceled = False
        for ev in self.blocked_evals_of_job(job_id):
            ev.update(Status="canceled", StatusDescription="job stopped", ModifyIndex=index,
                      ModifyTime=now)
            self._index_eval(ev)
            canceled = True
        if canceled:
            self._touch("evals", index)
        if old.get("Periodic") or (old.get("ParameterizedJob") and not old.get("Dispatched")):
            # Nomad's Job.Deregister creates no evaluation for a periodic or parameterized job:
            # it has no allocations of its own (its children are jobs of their own).
            return {"ok": True, "index": index, "EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": index}
        evals = self._create_evals(index, [job_id], "job-deregister", now,
                                   priority=int(cmd.get("eval_priority") or 0))
        return {"ok": True, "index": index, "EvalID": evals[0], "EvalCreateIndex": index,
                "JobModifyIndex": index}

    def _plan_apply(self, index: int, cmd: dict[str, Any]) -> Any:
        """Apply a scheduler's plan: stops first, then each placement that still fits.

        Refused placements (the node went away, became ineligible, or another
        plan used its room) leave the evaluation's work undone: a follow-up
        evaluation is created so the job is looked at again with fresh state.
        """
        from actors.scheduler.scheduler import (
            alloc_cores,
            alloc_port_keys,
            alloc_port_values,
            alloc_usage,
            live,
            max_allocs_exceeded,
            node_ready,
            node_reserved_ports,
        )

        plan, now = cmd["plan"], float(cmd["now"])
        rev = int(plan.get("Rev", 1))  # scheduler.PLAN_REV when it was computed
        evals, allocs, nodes = self.tables["evals"], self.tables["allocs"], self.tables["nodes"]
        ev = evals.get(plan["EvalID"])
        if ev is None or ev["Status"] not in ("pending",):
            # Already done (a deposed leader's worker, or a retry): applying
            # it twice would place twice.
            return {"ok": False, "error": f"evaluation {plan['EvalID']} is not pending"}
        touched = False
        for s in plan["Stop"]:
            a = allocs.get(s["ID"])
            if a is None:
                continue
            rec = dict(a)
            rec.update(DesiredStatus="stop", DesiredDescription=s.get("DesiredDescription", ""),
                       ModifyIndex=index, AllocModifyIndex=index, ModifyTime=now)
            if s.get("ClientStatus"):
                rec["ClientStatus"] = s["ClientStatus"]
                rec["ClientDescription"] = s.get("DesiredDescription", "")
            allocs[rec["ID"]] = rec
            self._index_alloc(rec, replaces=a)
            services.alloc_written(self, index, rec, a)
            touched = True
        used: dict[str, list[int]] = {}
        for node_id in {p["NodeID"] for p in plan["Place"]}:
            used[node_id] = list(self.node_usage(node_id))
        placed, refused = [], []
        ports_held: dict[str, set[int]] = {}  # node -> ports its live allocations hold, on first look
        cores_held: dict[str, set[int]] = {}  # node -> cores its live allocations reserve, on first look
        # node -> its live allocations, on first look at a node with NodeMaxAllocs (the stops are applied)
        alloc_counts: dict[str, int] = {}
        job = self._plan_job(plan)
        remap = deployments.begin_plan(self, index, plan, now) if job is not None else {}
        placed_recs: list[dict[str, Any]] = []
        # Plans that preempt (a "Preempt" list: entries written before preemption have none and apply as
        # they did): each placement's evictions, still live, applied with it or not at all.
        preempt = _preemptions_by_placement(plan, allocs, live) if plan.get("Preempt") else {}
        evicted: list[dict[str, Any]] = []
        for p in plan["Place"]:
            node = nodes.get(p["NodeID"])
            u = used.setdefault(p["NodeID"], [0, 0, 0])
            c, m, d = alloc_usage(p)
            if job is None:  # the job changed what it runs, or went, after this plan was made
                refused.append(p["ID"])
                continue
            evicts = preempt.get(p["ID"], ())
            if evicts:
                # Nomad's evaluateNodePlan: the node must fit the placement once its preemptions are out.
                freed = [sum(alloc_usage(a)[k] for a in evicts) for k in range(3)]
                c, m, d = c - freed[0], m - freed[1], d - freed[2]
            # A system job may place on an ineligible (not draining) ready node, as Nomad's does.
            system_ok = bool(job and job["Type"] == "system" and node is not None
                             and node.get("Status") == "ready" and not node.get("DrainStrategy"))
            if node is None or (not node_ready(node) and not system_ok):
                refused.append(p["ID"])
                continue
            cap = self.node_capacity(p["NodeID"])
            if u[0] + c > cap[0] or u[1] + m > cap[1] or u[2] + d > cap[2] or p["ID"] in allocs:
                refused.append(p["ID"])
                continue
            count = None
            if node.get("NodeMaxAllocs"):  # Nomad's AllocsFit: "plan exceeds max allocation"
                count = alloc_counts.get(p["NodeID"])
                if count is None:
                    count = sum(1 for a in self.node_allocs(p["NodeID"]) if live(a))
                if max_allocs_exceeded(node, count + 1 - len(evicts)):
                    refused.append(p["ID"])
                    continue
            if not _cores_free(self, cores_held, p, evicts, alloc_cores, live):
                # Nomad's AllocsFit: no two allocations on a node reserve one core ("cores"), as when two
                # plans raced for the same free cores.  (A placement without TaskCores reserves none:
                # entries written before cores were scheduled apply as they did.)
                refused.append(p["ID"])
                continue
            # Plans since rev 5 hold ports per address (HostIP); older ones apply as they did.
            port_keys = alloc_port_keys if rev >= 5 else alloc_port_values
            want = port_keys(p)
            if want:  # ports another placement took since the plan was made are refused too
                held = ports_held.get(p["NodeID"])
                if held is None:
                    held = ports_held[p["NodeID"]] = {v for a in self.node_allocs(p["NodeID"])
                                                      if live(a) for v in port_keys(a)}
                    if rev < 5:
                        held |= node_reserved_ports(node)
                freed_ports = {v for a in evicts for v in port_keys(a)}
                if held.difference(freed_ports).intersection(want) or len(set(want)) != len(want) or (
                        rev >= 5 and _reserved_taken(node, p, node_reserved_ports(node))):
                    refused.append(p["ID"])
                    continue
                held.difference_update(freed_ports)
                held.update(want)
            elif evicts and p["NodeID"] in ports_held:
                ports_held[p["NodeID"]].difference_update(v for a in evicts for v in port_keys(a))
            if count is not None:
                alloc_counts[p["NodeID"]] = count + 1 - len(evicts)
            for a in evicts:
                evicted.append(self._evict(index, a, p["ID"], now))
            u[0] += c
            u[1] += m
            u[2] += d
            rec = dict(p)
            rec.update(Job=job, CreateIndex=index, ModifyIndex=index, AllocModifyIndex=index,
                       CreateTime=now, ModifyTime=now)
            if rec.get("DeploymentID") in remap:
                rec["DeploymentID"] = remap[rec["DeploymentID"]]
            placed_recs.append(rec)
            allocs[rec["ID"]] = rec
            self._index_alloc(rec, replaces=None)  # refused above when the ID was in use
            placed.append(rec["ID"])
            touched = True
            prev = allocs.get(rec.get("PreviousAllocation") or "")
            if rev >= 3 and prev is not None:  # Nomad's NextAllocation: what replaced it
                prev = {**prev, "NextAllocation": rec["ID"], "ModifyIndex": index}
                allocs[prev["ID"]] = prev
                self._index_alloc(prev)
        if job is not None:
            # What a client runs of each group, by the job version it is read from: the allocations
            # updated in place share a few job records (the plan's, and the one or two they ran).
            client_of: dict[tuple[int, str], tuple[Any, Any, Any]] = {}

            def client_view(of_job: Any, group: str) -> tuple[Any, Any]:
                got = client_of.get((id(of_job), group))
                if got is None or got[0] is not of_job:  # (the entry keeps its job alive: no ID reuse)
                    got = client_of[(id(of_job), group)] = (of_job, _client_part(of_job, group),
                                                            _client_settings(of_job, group))
                return got[1], got[2]

            for aid in plan.get("InPlace", ()):
                # Nomad's in-place update: the allocation runs the new version without a restart.
                # Server-side only (its AllocModifyIndex stays): the client runs the same tasks.
                a = allocs.get(aid)
                if a is None or not live(a) or a.get("JobVersion") == job.get("Version") \
                        or key_of(a) != job_key_of(job):
                    continue
                rec = {**a, "Job": job, "JobVersion": job.get("Version", 0), "ModifyIndex": index,
                       "ModifyTime": now}
                group = a["TaskGroup"]
                memory_changed = rev >= 4 and _set_memory_max(rec, (plan.get("InPlaceMemory") or {}).get(aid))
                allocs[aid] = rec  # same node and resources counted: its indexes hold
                dep_id = (plan.get("InPlaceDeployment") or {}).get(aid)
                dep_id = remap.get(dep_id, dep_id)
                joined = bool(dep_id) and dep_id != a.get("DeploymentID") \
                    and dep_id in self.tables["deployments"]
                if joined:
                    # It joins the plan's deployment (Nomad's in-place update: DeploymentID set,
                    # DeploymentStatus cleared), counted as placed there; its client watches its
                    # health again, so it must see the new record.
                    rec.update(DeploymentID=dep_id, DeploymentStatus=None)
                    placed_recs.append(rec)
                new_view, client_changed = client_view(job, group), False
                if rev >= 2:
                    old_view = client_view(a.get("Job"), group)
                    client_changed = old_view[0] != new_view[0] or (rev >= 4 and old_view[1] != new_view[1])
                if memory_changed or client_changed or joined:
                    # What its client runs besides the tasks changed (its services' checks, the
                    # memory_max it holds, its restart, leader, shutdown and max_run settings): the
                    # client must see the new version.  (Nomad wakes it for every version; here a
                    # version that changes nothing the client does leaves it be.)
                    rec["AllocModifyIndex"] = index
                    node = rec.get("NodeID", "")
                    if index > self.node_alloc_index.get(node, 0):
                        self.node_alloc_index[node] = index
                        self._changed_keys.add(("allocs_node", node))
                part = new_view[0]
                if (part is not None and (part[0] or any(part[1]))) or aid in self.services_by_alloc:
                    services.refresh(self, index, rec)  # (a group offering no service registers none)
                touched = True
        if evicted:
            touched = True
        if touched:
            self._touch("allocs", index)
        if placed_recs:
            deployments.count_placed(self, index, placed_recs, now)
        unblocked = ev.get("StatusDescription") == UNBLOCKED_DESCRIPTION
        ev = dict(ev)
        ev.update(Status="complete", ModifyIndex=index, ModifyTime=now, FailedTGAllocs=plan.get("Failed", {}),
                  PlacedAllocs=len(placed), RefusedAllocs=len(refused))
        if plan.get("Annotations"):
            # The scheduler's counts per group (Nomad's Evaluation.PlanAnnotations, "nomad eval status"):
            # plans written before they were made have none, and apply as they did.
            ev["PlanAnnotations"] = plan["Annotations"]
        if rev >= 3 and job is not None:
            # The deployment this evaluation worked within (Nomad's Evaluation.DeploymentID): the
            # job's active one for its current version, made by this plan or already running.
            d = deployments.latest(self, key_of(plan))
            if d is not None and d["Status"] in deployments.ACTIVE and d["JobVersion"] == job.get("Version"):
                ev["DeploymentID"] = d["ID"]
        evals[ev["ID"]] = ev
        self._index_eval(ev)
        follow: list[str] = []
        if plan.get("RollingWaitS") and job is not None:
            # A system job's rolling update goes on after its stagger (Nomad's NextRollingEval).
            follow = self._create_evals(index, [key_of(plan)], "rolling-update", now, previous=ev["ID"])
            self.tables["evals"][follow[0]]["WaitUntil"] = now + float(plan["RollingWaitS"])
        if plan.get("RescheduleLater") and job is not None:
            follow += self._reschedule_later(index, key_of(plan), plan["RescheduleLater"], now, ev["ID"])
        if plan.get("Disconnect") or plan.get("Reconnect") or plan.get("LostLater"):
            follow += self._disconnect_updates(index, plan, now, ev["ID"])
        # Groups that wait for capacity: a system group that every node filtered out waits for none.
        waiting = set(plan.get("Failed") or ()) - set(plan.get("FilteredOnly") or ())
        if refused:
            follow += self._create_evals(index, [key_of(plan)], "plan-refused", now, previous=ev["ID"])
        elif plan.get("More"):
            # The scheduler placed (or stopped) no more than one plan may hold (the broker's
            # max_placements_per_entry and max_stops_per_entry bound the Raft entry): the rest is
            # done by the next evaluation, which the first one
            # names (Nomad's NextEval, which "nomad job run" goes on to monitor).
            nxt = self._create_evals(index, [key_of(plan)], "queued-allocs", now, previous=ev["ID"])
            ev["NextEval"] = nxt[0]
            follow += nxt
        elif waiting:
            # One blocked evaluation per job waits for capacity (Nomad's blocked evals); a system
            # group that every node filtered out waits for none (Nomad's addBlocked is for exhaustion).
            for other in self.blocked_evals_of_job(key_of(plan)):
                other.update(Status="canceled", ModifyIndex=index, StatusDescription="superseded")
                self._index_eval(other)
            if unblocked and rev >= 8:
                # A blocked evaluation that capacity let run and that still could not place everything
                # waits again itself (Nomad's ReblockEval), rather than completing with a new one.
                ev.update(Status="blocked", StatusDescription=BLOCKED_EVAL_DESCRIPTION)
                self._index_eval(ev)
        if waiting and not refused and not plan.get("More") and not (unblocked and rev >= 8):
            blocked = self._create_evals(index, [key_of(plan)], "queued-allocs", now, status="blocked",
                                         previous=ev["ID"])
            if rev >= 7:
                # Nomad's CreateBlockedEval keeps the failed placements, and the scheduler says why it
                # exists (DescBlockedEvalFailedPlacements): "nomad eval status" of it shows what waits.
                self.tables["evals"][blocked[0]].update(StatusDescription=BLOCKED_EVAL_DESCRIPTION,
                                                        FailedTGAllocs=dict(plan["Failed"]))
            ev["BlockedEval"] = blocked[0]
            follow += blocked
        if rev >= 8 and not plan.get("Failed") and not refused and not plan.get("More"):
            # Nomad's nestedUpsertEval: an evaluation that completes with nothing left to place cancels
            # the job's blocked ones -- what they waited to place is no longer wanted, or is placed.
            for other in self.blocked_evals_of_job(key_of(plan)):
                other.update(Status="canceled", ModifyIndex=index, ModifyTime=now,
                             StatusDescription=f'evaluation "{ev["ID"]}" successful')
                self._index_eval(other)
        if evicted:
            # Nomad's applyPlan: each preempted allocation's job is evaluated again ("preemption"), to
            # be placed elsewhere or wait blocked for room.
            jobs = self.tables["jobs"]
            preempted_jobs = sorted({key_of(a) for a in evicted if key_of(a) in jobs})
            follow += self._create_evals(index, preempted_jobs, TRIGGER_PREEMPTION, now)
        if rev >= 2:
            self._cancel_superseded(key_of(plan), index, now)
        self._touch("evals", index)
        self._job_status(key_of(plan), index, nomad=rev >= 7)
        deployments.after_plan(self, index, key_of(plan), now)
        return {"ok": True, "index": index, "placed": placed, "refused": refused, "evals": follow}

    def _evict(self, index: int, a: dict[str, Any], by: str, now: float) -> dict[str, Any]:
        """Allocation *a* preempted by placement *by* (Nomad's DenormalizeAllocationDiffSlice for a
        preempted allocation): DesiredStatus evict, its client told to stop it."""
        rec = {**a, "DesiredStatus": "evict", "DesiredDescription": PREEMPTED_DESC.format(by),
               "PreemptedByAllocation": by, "ModifyIndex": index, "AllocModifyIndex": index,
               "ModifyTime": now}
        self.tables["allocs"][rec["ID"]] = rec
        self._index_alloc(rec, replaces=a)
        services.alloc_written(self, index, rec, a)
        return rec

    def _reschedule_later(self, index: int, job_id: str, later: list[dict[str, Any]], now: float,
                          previous: str) -> list[str]:
        """Failed allocations whose reschedule delay has not passed: follow-up evaluations at their times,
        one per batch due within RESCHEDULE_WINDOW_S of its first, each allocation naming its own
        (Nomad's createRescheduleLaterEvals: ``alloc-failure`` evaluations waiting until then)."""
        from actors.scheduler.scheduler import RESCHEDULE_WINDOW_S

        allocs, made = self.tables["allocs"], []
        batch_at: float | None = None
        for item in later:  # sorted by time
            a = allocs.get(item["ID"])
            # "Stopped": a batch allocation `alloc stop` stopped in this plan, placed again after its
            # delay (its stop was applied above); any other must still be running its course.
            if a is None or a.get("FollowupEvalID") or (a.get("DesiredStatus") != "run"
                                                        and not item.get("Stopped")):
                continue
            at = float(item["At"])
            if batch_at is None or at - batch_at >= RESCHEDULE_WINDOW_S:
                batch_at = at
                made += self._create_evals(index, [job_id], "alloc-failure", now, previous=previous)
                self.tables["evals"][made[-1]]["WaitUntil"] = at
            rec = {**a, "FollowupEvalID": made[-1], "ModifyIndex": index}  # ModifyTime stays: when it failed
            allocs[rec["ID"]] = rec
            self._index_alloc(rec, replaces=a)
        if made:
            self._touch("allocs", index)
        return made

    def _disconnect_updates(self, index: int, plan: dict[str, Any], now: float, previous: str) -> list[str]:
        """A plan's allocations on a disconnected node go ``unknown``, and reconnected ones are recorded.

        Nomad's appendUnknownDisconnectingUpdates and createTimeoutLaterEvals: each goes ``unknown``
        (its client sees a new AllocModifyIndex once it is back), and a ``max-disconnect-timeout``
        evaluation waits until its lost_after window closes (timed from now, when its window opens),
        one per batch due within the reschedule window of its first.  A reconnected one records its
        client status again (appendReconnectingUpdates), so it no longer needs to reconnect.
        """
        from actors.scheduler import disconnect as disc
        from actors.scheduler.scheduler import RESCHEDULE_WINDOW_S, TERMINAL_CLIENT

        allocs, made = self.tables["allocs"], []
        marked = []
        for aid in plan.get("Disconnect") or ():
            a = allocs.get(aid)
            if a is None or a.get("DesiredStatus") != "run" or a.get("ClientStatus") in (
                    *TERMINAL_CLIENT, disc.UNKNOWN):
                continue
            rec = {**a, "ClientStatus": disc.UNKNOWN, "ClientDescription": disc.STATUS_UNKNOWN,
                   "AllocStates": disc.with_state(a, disc.UNKNOWN, now), "ModifyIndex": index,
                   "AllocModifyIndex": index, "ModifyTime": now}
            marked.append((now + disc.lost_after_s(rec), rec["ID"], rec, a))
        batch_at: float | None = None
        for at, _, rec, a in sorted(marked, key=lambda x: (x[0], x[1])):
            if batch_at is None or at - batch_at >= RESCHEDULE_WINDOW_S:
                batch_at = at
                made += self._create_evals(index, [key_of(plan)], disc.TRIGGER_DISCONNECT_TIMEOUT, now,
                                           previous=previous)
                self.tables["evals"][made[-1]].update(WaitUntil=at,
                                                      StatusDescription=disc.DESC_DISCONNECT_TIMEOUT)
            rec["FollowupEvalID"] = made[-1]
            allocs[rec["ID"]] = rec
            self._index_alloc(rec, replaces=a)
            services.alloc_written(self, index, rec, a)
        batch_at, waiting = None, False
        for item in sorted(plan.get("LostLater") or (), key=lambda x: (x["At"], x["ID"])):
            # Lost, with disconnect.stop_on_client_after: its replacement waits for a follow-up
            # evaluation (Nomad's createLaterEvals for lostLater, "alloc-failure").
            a = allocs.get(item["ID"])
            if a is None:
                continue
            at = float(item["At"])
            if batch_at is None or at - batch_at >= RESCHEDULE_WINDOW_S:
                batch_at = at
                made += self._create_evals(index, [key_of(plan)], "alloc-failure", now, previous=previous)
                self.tables["evals"][made[-1]].update(WaitUntil=at,
                                                      StatusDescription="created for delayed rescheduling")
            rec = {**a, "FollowupEvalID": made[-1], "ModifyIndex": index}
            allocs[rec["ID"]] = rec
            self._index_alloc(rec, replaces=a)
            waiting = True
        for aid in plan.get("Reconnect") or ():
            a = allocs.get(aid)
            if a is None or not disc.needs_to_reconnect(a) or a.get("ClientStatus") != "running":
                continue
            rec = {**a, "AllocStates": disc.with_state(a, a["ClientStatus"], now), "ModifyIndex": index}
            allocs[aid] = rec
            self._index_alloc(rec, replaces=a)
        if marked or waiting or plan.get("Reconnect"):
            self._touch("allocs", index)
        return made

    def _cancel_superseded(self, job_id: str, index: int, now: float) -> None:
        """An evaluation of *job_id* was processed: of the job's others waiting to be scheduled, only the
        newest still runs (Nomad's eval broker on an Ack, ``MarkForCancel``: the scheduler looks at the
        whole job whichever evaluation it runs, so the newest covers what the older ones were made for).

        Evaluations waiting for a later time (a failed one's follow-up, a
        rolling update's stagger) are not waiting to be scheduled yet and are
        left alone; so are blocked ones.  Decided here, when the plan is
        applied, so every server cancels the same ones in the same write.
        """
        ready = [ev for ev in self.pending_evals_of_job(job_id) if ev.get("WaitUntil", 0.0) <= now]
        if len(ready) < 2:
            return
        keep = max(ready, key=lambda ev: (ev.get("Priority", 50), ev.get("ModifyIndex", 0), ev["ID"]))
        evals = self.tables["evals"]
        for ev in ready:
            if ev is not keep:
                evals[ev["ID"]] = rec = {**ev, "Status": "canceled", "StatusDescription": EVAL_CANCELED_DESC,
                                         "ModifyIndex": index, "ModifyTime": now}
                self._index_eval(rec)

    def _plan_apply_batch(self, index: int, cmd: dict[str, Any]) -> Any:
        """Several plans in one entry (the broker plans evaluations together): each applied in turn."""
        plans = cmd["plans"]
        if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
            raise CommandError("plans must be a list of plans")
        now = cmd["now"]
        return {"ok": True, "index": index,
                "results": [self._plan_apply(index, {"plan": p, "now": now}) for p in plans]}

    def _plan_job(self, plan: dict[str, Any]) -> dict[str, Any] | None:
        """The job record a plan's placements run: the store's own, unless it changed what it runs.

        A plan names the job record it was computed from (``JobIndex``, the
        record's ModifyIndex; ``JobSpecIndex``, its ScheduleIndex: the index
        of the last change to what it runs, which was its JobModifyIndex
        before every change of the spec made a new version).  The same
        record, or a later one of the same spec (only its status or other
        fields that change no allocation moved on; Nomad updates allocations
        in place for those), is placed with; a job re-registered with a new
        spec or purged meanwhile gets None, and the placements are refused --
        the follow-up evaluation plans again from the current job.  Entries
        written before plans named their job carry it (``Job``) and keep
        applying as they did.
        """
        if plan.get("Job") is not None or "JobIndex" not in plan:
            return plan.get("Job")
        job = self.tables["jobs"].get(key_of(plan))
        if job is None or job.get("Stop"):
            return None
        if job.get("ModifyIndex") == plan["JobIndex"] or \
                job.get("ScheduleIndex", job.get("JobModifyIndex")) == plan["JobSpecIndex"]:
            return job
        return None

    def _job_status(self, job_id: str, index: int, *, nomad: bool = True) -> None:
        """The job's status.  *nomad* (entries of plan Rev 7, report rev 2 and later) is Nomad's
        getJobStatus: a system, periodic or parameterized job runs until stopped; any other runs while
        its deployment is active or an allocation lives, is pending while an evaluation waits (or is
        blocked), and is dead once all are over -- a service job whose allocations all failed, their
        reschedules used up, is dead.  Older entries apply as they did (a service job was never dead
        until stopped, a system job with no allocation pending)."""
        job = self.tables["jobs"].get(job_id)
        if job is None:
            return
        # Whether the job has allocations and whether any is live: a job keeps
        # every allocation it ever ran until GC, so its live ones are looked at,
        # not all of them (job_allocs).
        running = bool(self.live_job_allocs(job_id))
        t = self.tables["allocs"]
        has_allocs = running or any(i in t for i in self.allocs_by_job.get(job_id, ()))
        if nomad:
            status = self._nomad_job_status(job, running, has_allocs)
        else:
            # A batch or sysbatch job is dead once every allocation it placed finished; a sysbatch job
            # whose placement on some node waits for room (a blocked evaluation) is pending.
            finished = bool(job.get("Stop") or (job["Type"] == "batch" and has_allocs) or (
                job["Type"] == "sysbatch" and has_allocs and not self.blocked_by_job.get(job_id)))
            status = "running" if running else ("dead" if finished else "pending")
            if job.get("ParameterizedJob") or job.get("Periodic"):
                status = "dead" if job.get("Stop") else "running"  # a parent runs nothing itself
        if job.get("Status") != status:
            self.tables["jobs"][job_id] = {**job, "Status": status, "ModifyIndex": index}
            self._touch("jobs", index)

    def _nomad_job_status(self, job: dict[str, Any], running: bool, has_allocs: bool) -> str:
        """Nomad's getJobStatus, in its order (see _job_status)."""
        if job["Type"] == "system" or job.get("ParameterizedJob") or job.get("Periodic"):
            return "dead" if job.get("Stop") else "running"
        key = job_key_of(job)
        dep = deployments.latest(self, key)
        if running or (dep is not None and dep["Status"] in deployments.ACTIVE):
            return "running"
        if self.pending_by_job.get(key) or self.blocked_by_job.get(key):
            return "pending"
        # Every evaluation is over: dead once it placed something (or was stopped); a job that never
        # placed anything and has nothing waiting stays pending (Nomad: no evaluation yet).
        return "dead" if job.get("Stop") or has_allocs else "pending"

    def _alloc_client_update(self, index: int, cmd: dict[str, Any]) -> Any:
        """A client reports its allocations' states (Node.UpdateAlloc)."""
        now, acc = float(cmd["now"]), _ClientReports(rev=int(cmd.get("rev", 1)))
        error = self._client_report(index, cmd.get("node_id"), cmd.get("secret_id"), cmd["allocs"], now, acc)
        if error:
            return {"ok": False, "error": error}
        return self._client_reports_done(index, now, acc)

    def _alloc_client_update_batch(self, index: int, cmd: dict[str, Any]) -> Any:
        """Several clients' reports in one write, as Nomad's Node.UpdateAlloc batches them.

        Each report is checked and applied on its own (a node's wrong secret
        refuses that node's report only); the evaluations they call for are
        made once for the whole batch.  ``errors`` holds one entry a report,
        in order: "" when it was applied.
        """
        now, acc = float(cmd["now"]), _ClientReports(rev=int(cmd.get("rev", 1)))
        reports = cmd["reports"]
        if not isinstance(reports, list) or not all(
                isinstance(r, dict) and isinstance(r.get("allocs"), list) for r in reports):
            raise CommandError("reports must be a list of maps with allocs")
        errors = [self._client_report(index, r.get("node_id"), r.get("secret_id"), r["allocs"], now, acc)
                  for r in reports]
        return {**self._client_reports_done(index, now, acc, unblock=bool(cmd.get("unblock"))),
                "errors": errors}

    def _client_report(self, index: int, node_id: str | None, secret_id: str | None, reports: list[Any],
                       now: float, acc: _ClientReports) -> str:
        """Apply one client's report of its allocations into *acc*; an error (nothing applied) or ""."""
        from actors.scheduler.scheduler import live

        allocs = self.tables["allocs"]
        if node_id and secret_id is not None:
            node = self.tables["nodes"].get(node_id)
            if node is None:
                return "node not found"
            if node.get("SecretID") and node["SecretID"] != secret_id:
                return "node secret ID does not match"
        bad = _bad_report(reports)
        if bad:
            return bad  # nothing of this report applied; the others in its batch are
        node = self.tables["nodes"].get(node_id) if node_id else None
        if node is not None and node.get("Status") == "disconnected":
            # Nomad's Node.UpdateAlloc: an unresponsive node must heartbeat before it reports (its
            # allocations are unknown; the client retries).  Down nodes' reports apply as they did.
            return f"node {node_id} is not allowed to update allocs while in status disconnected"
        if node is not None and node.get("Status") == "initializing" and node.get("LastMissedHeartbeatIndex"):
            # Back from disconnected: the client pushed fresh allocation state, so its next heartbeat
            # may make it ready (Nomad's LastAllocUpdateIndex; read by the node endpoint).
            self.tables["nodes"][node_id] = {**node, "LastAllocUpdateIndex": index}
            self._touch("nodes", index)
        for u in reports:
            a = allocs.get(u["ID"])
            if a is None or (node_id and a["NodeID"] != node_id):
                continue
            if a.get("ClientStatus") == "lost" and u.get("ClientStatus") != "lost" and (
                    acc.rev < 6 or u.get("ClientStatus") not in ("complete", "failed")):
                # The server already gave it up (its node was down); a late
                # report must not resurrect it -- the client will be told to stop.
                # That it stopped it (complete or failed) is the client's word, taken.
                continue
            rec = dict(a)
            for k in ("ClientStatus", "ClientDescription", "TaskStates"):
                if k in u:
                    rec[k] = u[k]
            if a.get("ClientStatus") == "unknown" and rec.get("ClientStatus") != "unknown":
                acc.reconnect_jobs.add(key_of(rec))  # Nomad's Node.UpdateAlloc: a "reconnect" evaluation
            if acc.rev >= 5:
                self._cancel_followup_for_reconnect(index, rec, a, now)
            health = u.get("DeploymentStatus")
            newly_healthy: bool | None = None
            dep_id = rec.get("DeploymentID") or ""
            if isinstance(health, dict) and isinstance(health.get("Healthy"), bool) \
                    and (a.get("DeploymentStatus") or {}).get("Healthy") is None \
                    and (health.get("DeploymentID", dep_id) or "") == dep_id:
                # (A health its client decided for the deployment the allocation was in before an
                # in-place update moved it is not the new deployment's: it is reported again.)
                # Set once, as Nomad's client reports it: the first word on an allocation's health stands.
                # Outside a deployment it is the migrate block's health, which the drainer counts.
                newly_healthy = health["Healthy"]
                ts = health.get("Timestamp")
                rec["DeploymentStatus"] = {"Healthy": newly_healthy,
                                           "Timestamp": float(ts) if isinstance(ts, (int, float))
                                           and not isinstance(ts, bool) and ts > 0 else now,
                                           "Canary": bool((a.get("DeploymentStatus") or {}).get("Canary")),
                                           "ModifyIndex": index}
            rec.update(ModifyIndex=index, ModifyTime=now)
            allocs[rec["ID"]] = rec
            services.alloc_written(self, index, rec, a, per_task=acc.rev >= 4)
            if newly_healthy is not None and dep_id:
                deployments.health_update(self, index, rec, newly_healthy, now, acc.watcher_jobs,
                                          acc.dep_failures, fail_early=acc.rev >= 2)
            acc.updated.append(rec["ID"])
            if live(rec) != live(a):
                # Only a change of liveness can change the job's status or its node's usage (a report
                # moves neither the allocation nor its resources); most updates are task states or
                # health of running allocations, and the recount reads every allocation the job has.
                self._usage_written(rec, replaces=a)
                acc.jobs_touched.add(key_of(rec))
            terminal = ("failed", "complete", "lost")
            if rec.get("ClientStatus") in terminal and a.get("ClientStatus") not in terminal:
                acc.freed = True
            if rec.get("ClientStatus") in terminal and a.get("ClientStatus") not in terminal and \
                    rec.get("DesiredStatus") == "run":
                # A failed allocation is rescheduled; a service one that
                # ended while still wanted (the client stopped it) is
                # replaced -- either way the scheduler must look at the job.
                job = self.tables["jobs"].get(key_of(rec))
                if job is not None and (job["Type"] == "sysbatch" or (job["Type"] == "system"
                                                                       and acc.rev >= 3)):
                    # Nothing replaces it now: Nomad's Node.UpdateAlloc makes an alloc-failure evaluation
                    # only for what its reschedule policy may reschedule, and these jobs have none. A
                    # system allocation is placed on its node again by the job's next evaluation.
                    pass
                elif rec["ClientStatus"] == "failed" and job is not None and acc.rev >= 7 and \
                        not _reschedule_eligible_on_failure(job, rec, now):
                    pass  # Nomad's Node.UpdateAlloc: no evaluation for what will not be rescheduled
                elif rec["ClientStatus"] == "failed" or (job is not None and job["Type"] != "batch"):
                    acc.failed_jobs.add(key_of(rec))
        return ""

    def _cancel_followup_for_reconnect(self, index: int, rec: dict[str, Any], a: dict[str, Any],
                                       now: float) -> None:
        """A reconnecting allocation's client reported it (running, complete or failed): its
        disconnect-timeout follow-up evaluation is canceled, unless another live allocation of the job
        still waits on it (Nomad's FollowupEvalForReconnect and cancelFollowupEvalsForReconnect)."""
        from actors.scheduler import disconnect as disc

        ev_id = a.get("FollowupEvalID") or ""
        if not ev_id or not disc.needs_to_reconnect(a) or rec.get("ClientStatus") not in (
                "running", "complete", "failed"):
            return
        rec["FollowupEvalID"] = ""
        allocs = self.tables["allocs"]
        for other_id in self.allocs_by_job.get(key_of(a), ()):
            other = allocs.get(other_id)
            if other is not None and other_id != a["ID"] and other.get("FollowupEvalID") == ev_id and \
                    other.get("DesiredStatus") == "run" and other.get("ClientStatus") not in _TERMINAL_CLIENT:
                return  # made for several allocations at once: left alone
        ev = self.tables["evals"].get(ev_id)
        if ev is None:
            return  # deleted by an operator
        self.tables["evals"][ev_id] = out = {**ev, "Status": "canceled", "StatusDescription":
                                             "allocs reconnected", "ModifyIndex": index, "ModifyTime": now}
        self._index_eval(out)
        self._touch("evals", index)

    def _client_reports_done(self, index: int, now: float, acc: _ClientReports,
                             unblock: bool = False) -> dict[str, Any]:
        """What applied client reports call for: job statuses, and evaluations once per job; with
        *unblock*, an allocation that finished gives the blocked evaluations another go (its capacity
        is free)."""
        if acc.updated:
            self._touch("allocs", index)
        evals = self._create_evals(index, sorted(acc.failed_jobs), "alloc-failure", now)
        evals += self._create_evals(index, sorted(acc.reconnect_jobs - acc.failed_jobs), "reconnect", now)
        if unblock and acc.freed:
            evals += self._unblock(index, now)
        for dep_id, why in acc.dep_failures:
            d = self.tables[deployments.TABLE].get(dep_id)
            if d is not None and d["Status"] in deployments.ACTIVE:
                evals.append(deployments.fail(self, index, dep_id, why, now)["EvalID"])
        watcher_jobs = acc.watcher_jobs - acc.failed_jobs
        watcher_jobs -= {key_of(self.tables[deployments.TABLE][d]) for d, _ in acc.dep_failures}
        evals += self._create_evals(index, sorted(watcher_jobs), "deployment-watcher", now)
        for job_id in sorted(acc.jobs_touched):
            self._job_status(job_id, index, nomad=acc.rev >= 2)
        return {"ok": True, "index": index, "updated": acc.updated, "evals": evals}

    def _eval_update(self, index: int, cmd: dict[str, Any]) -> Any:
        """Set evaluations' status; a failed one gets a delayed follow-up (Nomad's failed-follow-up eval)."""
        evals = self.tables["evals"]
        now = float(cmd.get("now", 0.0))
        follow: list[str] = []
        for n, u in enumerate(cmd["evals"]):
            ev = evals.get(u.get("ID"))
            if ev is None:
                continue
            evals[ev["ID"]] = {**ev, "Status": u.get("Status", ev["Status"]),
                               "StatusDescription": u.get("StatusDescription", ""), "ModifyIndex": index,
                               "ModifyTime": now or ev.get("ModifyTime", 0.0)}
            self._index_eval(evals[ev["ID"]])
            wait = u.get("FollowUpWait")
            if u.get("Status") == "failed" and wait is not None:
                (fid,) = self._create_evals(index, [key_of(ev)], "failed-follow-up", now, previous=ev["ID"],
                                            first=n)
                evals[fid]["WaitUntil"] = now + float(wait)
                follow.append(fid)
        self._touch("evals", index)
        return {"ok": True, "index": index, "evals": follow}

    def _core_gc(self, index: int, cmd: dict[str, Any]) -> Any:
        """Remove the listed jobs, evaluations and allocations still collectable at the command's cutoffs.

        The rules are :mod:`actors.state.core_gc`'s, run again here: a job
        re-registered or an allocation updated since the leader's scan is kept.
        """
        from actors.state import core_gc as gc

        cutoff, batch_cutoff = float(cmd["cutoff"]), float(cmd["batch_cutoff"])
        job_cutoff = float(cmd["job_cutoff"])
        want = {k: cmd.get(k, []) for k in ("jobs", "evals", "allocs", "deployments")}
        if not all(isinstance(v, list) for v in want.values()):
            raise CommandError("jobs, evals, allocs and deployments must be lists")
        jobs, evals, allocs = self.tables["jobs"], self.tables["evals"], self.tables["allocs"]

        def eval_allocs(ev: dict[str, Any]) -> list[dict[str, Any]]:
            return [a for a in self.job_allocs(key_of(ev)) if a.get("EvalID") == ev["ID"]]

        gone_jobs: list[str] = []
        gone_evals: set[str] = set()
        gone_allocs: set[str] = set()
        if want["jobs"]:
            by_job = gc.evals_by_job(evals.values())
            for jid in want["jobs"]:
                job = jobs.get(jid)
                if job is None or gc.has_tagged_version(self.tables, jid):
                    continue
                collect, eval_ids, alloc_ids = gc.job_gc(job, by_job.get(jid, []), self.job_allocs(jid),
                                                         job_cutoff)
                if collect:
                    gone_jobs.append(jid)
                    gone_evals.update(eval_ids)
                    gone_allocs.update(alloc_ids)
        for eid in want["evals"]:
            ev = evals.get(eid)
            if ev is None or eid in gone_evals:
                continue
            c = batch_cutoff if ev.get("Type") == "batch" else cutoff
            collect, _ = gc.eval_gc(ev, jobs.get(key_of(ev)), eval_allocs(ev), c, allow_batch=False)
            if collect:
                gone_evals.add(eid)
        for aid in want["allocs"]:
            a = allocs.get(aid)
            if a is None or aid in gone_allocs:
                continue
            job = jobs.get(key_of(a))
            kind = (job or a.get("Job") or {}).get("Type")
            c = batch_cutoff if kind == "batch" else cutoff
            ev = evals.get(a.get("EvalID", ""))
            if ev is not None and kind == "batch" and not gc.eval_gc(ev, job, (), c, allow_batch=False)[0]:
                continue  # a live batch job's evaluation keeps its allocations (see core_gc)
            if gc.alloc_gc_eligible(a, job, c):
                gone_allocs.add(aid)
        gone_deployments: list[str] = []
        if want["deployments"]:
            dep_cutoff = float(cmd.get("deployment_cutoff", cutoff))
            in_use = gc.deployments_in_use(allocs.values())
            table = self.tables[deployments.TABLE]
            for did in want["deployments"]:
                d = table.get(did)
                if d is not None and gc.deployment_gc_eligible(d, dep_cutoff, in_use):
                    del table[did]
                    deployments.drop_from_index(self, d)
                    gone_deployments.append(did)
                    if self.latest_deployment_of.get(key_of(d)) == did:
                        # The newest that remains, as a restore's rebuild would find it.
                        deployments.reindex_job(self, key_of(d))
            if gone_deployments:
                self._touch(deployments.TABLE, index)
        for jid in gone_jobs:
            deployments.purge_job(self, index, jid)
            scaling.delete_for_job(self, index, jobs[jid].get("Namespace", "default"), jobs[jid]["ID"])
            scaling.delete_events_for_job(self, index, jid)
            self._note_job(index, jobs.pop(jid), None)
            if self.tables["job_versions"].pop(jid, None) is not None:
                self._touch("job_versions", index)
            self._drop_submissions(jid, index)
            if self.tables["periodic_launch"].pop(jid, None) is not None:
                self._touch("periodic_launch", index)
        if gone_jobs:
            self._touch("jobs", index)
        for eid in sorted(gone_evals):
            if (gone := evals.pop(eid, None)) is not None:
                for ids in self.evals_by_status.values():
                    ids.discard(eid)
                self._unindex_eval(eid, key_of(gone))
        if gone_evals:
            self._touch("evals", index)
        for aid in sorted(gone_allocs):
            a = allocs.pop(aid, None)
            if a is None:
                continue
            services.remove_alloc(self, index, aid)
            node = a.get("NodeID", "")
            self._node_usage.pop(node, None)  # a terminal allocation held nothing; dropped all the same
            # Each index's entry goes when it empties: jobs (a dispatched or batch job's unique ID)
            # come and go for the cluster's life, and an empty set per collected job is a leak.
            _drop_from(self.allocs_by_node, node, aid)
            _drop_from(self.allocs_by_job, key_of(a), aid)
            self._job_alloc_ids.pop(key_of(a), None)
            _drop_from(self._maybe_live_by_job, key_of(a), aid)
            # The node's client is waiting on this index: it learns the
            # allocation is gone and removes what it kept of it.
            self.node_alloc_index[node] = index
            self._changed_keys.add(("allocs_node", node))
        if gone_allocs:
            self._touch("allocs", index)
        return {"ok": True, "index": index, "jobs": sorted(gone_jobs), "evals": sorted(gone_evals),
                "allocs": sorted(gone_allocs), "deployments": sorted(gone_deployments)}

    def _node_rec(self, node_id: str) -> dict[str, Any] | None:
        old = self.tables["nodes"].get(node_id)
        return dict(old) if old is not None else None

    def _add_node_event(self, rec: dict[str, Any], message: str, now: float, index: int,
                        details: dict[str, Any] | None = None) -> None:
        rec["Events"] = [*rec.get("Events", ()), self._node_event(message, "Drain", now, index,
                                                                  details)][-self.MAX_NODE_EVENTS:]

    def _node_update_drain(self, index: int, cmd: dict[str, Any]) -> Any:
        """Set or clear a node's drain (Nomad Node.UpdateDrain; NOMAD.md §5.1)."""
        node_id, now = str(cmd["node_id"]), float(cmd["now"])
        rec = self._node_rec(node_id)
        if rec is None:
            return {"ok": False, "error": "node not found"}
        spec = cmd.get("drain_spec")
        evals: list[str] = []
        if spec is not None:
            deadline_ns = int(spec.get("Deadline", 0))
            old = rec.get("DrainStrategy")
            force_deadline = now if deadline_ns < 0 else 0.0 if deadline_ns == 0 else now + deadline_ns / 1e9
            rec["DrainStrategy"] = {"Deadline": deadline_ns,
                                    "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs")),
                                    "ForceDeadline": force_deadline,
                                    "StartedAt": old["StartedAt"] if old else now}
            rec["SchedulingEligibility"] = "ineligible"
            meta = dict(cmd.get("meta") or {})
            if old and cmd.get("keep_meta") and rec.get("LastDrain"):
                # Nomad's updateNodeDrainImpl: an update keeps the drain's metadata unless it brings some.
                meta = meta or dict(rec["LastDrain"].get("Meta") or {})
            rec["LastDrain"] = {"Status": "draining", "StartedAt": rec["DrainStrategy"]["StartedAt"],
                                "UpdatedAt": now, "Meta": meta}
            self._add_node_event(rec, "Node drain strategy updated" if old else "Node drain strategy set",
                                 now, index)
        else:
            had = rec.pop("DrainStrategy", None)
            rec["DrainStrategy"] = None
            if had:
                self._add_node_event(rec, "Node drain disabled", now, index)
                if rec.get("LastDrain"):
                    rec["LastDrain"] = {**rec["LastDrain"], "Status": "canceled", "UpdatedAt": now}
                    if cmd.get("keep_meta") and cmd.get("meta"):
                        # Nomad records a cancel's metadata (the CLI's -m is its cancel_message).
                        rec["LastDrain"]["Meta"] = dict(cmd["meta"])
            if cmd.get("mark_eligible"):
                rec["SchedulingEligibility"] = "eligible"
                evals = self._node_capacity_evals(index, now, node_id, rec if cmd.get("pool_evals") else None)
        if cmd.get("accessor_id") and rec.get("LastDrain"):
            # Nomad's updateNodeDrainImpl: who made the last change (a completion keeps it).
            rec["LastDrain"] = {**rec["LastDrain"], "AccessorID": str(cmd["accessor_id"])}
        rec["ModifyIndex"] = index
        self.tables["nodes"][node_id] = rec
        self._touch("nodes", index)
        return {"ok": True, "index": index, "evals": evals, "EvalIDs": evals, "NodeModifyIndex": index}

    def _node_update_eligibility(self, index: int, cmd: dict[str, Any]) -> Any:
        node_id, now, elig = str(cmd["node_id"]), float(cmd["now"]), cmd["eligibility"]
        if elig not in ("eligible", "ineligible"):
            raise CommandError(f"invalid scheduling eligibility {elig!r}")
        rec = self._node_rec(node_id)
        if rec is None:
            return {"ok": False, "error": "node not found"}
        if elig == "eligible" and rec.get("DrainStrategy"):
            return {"ok": False,
                    "error": "can not set node's scheduling eligibility to eligible while it is draining"}
        prev = rec.get("SchedulingEligibility", "eligible")
        rec["SchedulingEligibility"] = elig
        rec["ModifyIndex"] = index
        evals: list[str] = []
        if prev != elig:
            self._add_node_event(rec, "Node marked as eligible for scheduling" if elig == "eligible"
                                 else "Node marked as ineligible for scheduling", now, index)
            rec["Events"][-1]["Subsystem"] = "Cluster"
        self.tables["nodes"][node_id] = rec
        self._touch("nodes", index)
        if prev != elig and elig == "eligible":
            evals = self._node_capacity_evals(index, now, node_id, rec if cmd.get("pool_evals") else None)
        return {"ok": True, "index": index, "evals": evals, "EvalIDs": evals, "NodeModifyIndex": index}

    def _alloc_migrate(self, index: int, cmd: dict[str, Any]) -> Any:
        """The drainer marks allocations for migration and asks the scheduler to move them.

        A batch job's allocation is marked ``MigrateDisablePlacement`` too (Nomad's
        ``drainAllocs``): the drainer only takes one at the drain's deadline, and it is stopped
        there but not placed again -- it keeps counting toward its group, as a finished one.
        """
        now, allocs, jobs = float(cmd["now"]), self.tables["allocs"], set()
        job_table = self.tables["jobs"]
        for alloc_id in cmd["allocs"]:
            a = allocs.get(alloc_id)
            if a is None or a.get("DesiredStatus") != "run" or a.get("DesiredTransition", {}).get("Migrate"):
                continue
            job = a.get("Job") or job_table.get(key_of(a)) or {}
            # batch_no_place: every entry the drainer writes since batch allocations keep their place; an
            # older entry applies as it did (Migrate alone).
            transition = {"Migrate": True, "MigrateDisablePlacement": True} \
                if job.get("Type") == "batch" and cmd.get("batch_no_place") else {"Migrate": True}
            allocs[alloc_id] = {**a, "DesiredTransition": transition, "ModifyIndex": index,
                                "AllocModifyIndex": index, "ModifyTime": now}
            self._index_alloc(allocs[alloc_id])
            jobs.add(key_of(a))
        if jobs:
            self._touch("allocs", index)
        evals = self._create_evals(index, sorted(jobs), "node-drain", now,
                                   node_id=str(cmd.get("node_id", "")))
        return {"ok": True, "index": index, "evals": evals}

    def _alloc_stop(self, index: int, cmd: dict[str, Any]) -> Any:
        """Nomad ``Alloc.Stop``: mark the allocation to migrate and evaluate its job (it is replaced)."""
        now, alloc_id = float(cmd["now"]), str(cmd["alloc_id"])
        allocs = self.tables["allocs"]
        a = allocs.get(alloc_id)
        if a is None:
            return {"ok": False, "error": "alloc not found"}
        # An entry written before these options (no such keys) applies as it did: Migrate alone.
        options = (("NoShutdownDelay", "no_shutdown_delay"), ("Reschedule", "reschedule"))
        transition = {"Migrate": True, **{key: bool(cmd[op]) for key, op in options if op in cmd}}
        self._merge_transition(allocs, alloc_id, transition, index)
        allocs[alloc_id]["ModifyTime"] = now
        self._touch("allocs", index)
        evals = self._create_evals(index, [key_of(a)], "alloc-stop", now)
        return {"ok": True, "index": index, "EvalID": evals[0]}

    def _merge_transition(self, allocs: dict[str, Any], alloc_id: str, transition: dict[str, bool],
                          index: int) -> None:
        """Nomad's ``UpdateAllocDesiredTransitionTxn``: *transition*'s keys over the allocation's, both
        indexes moved (its client fetches it again)."""
        a = allocs[alloc_id]
        allocs[alloc_id] = {**a, "DesiredTransition": {**(a.get("DesiredTransition") or {}), **transition},
                            "ModifyIndex": index, "AllocModifyIndex": index}
        self._index_alloc(allocs[alloc_id])

    def _node_drain_complete(self, index: int, cmd: dict[str, Any]) -> Any:
        node_id, now = str(cmd["node_id"]), float(cmd["now"])
        rec = self._node_rec(node_id)
        if rec is None or not rec.get("DrainStrategy"):
            return {"ok": False, "error": "node is not draining"}
        rec["DrainStrategy"] = None
        rec["ModifyIndex"] = index
        rec["LastDrain"] = {**(rec.get("LastDrain") or {}), "Status": "complete", "UpdatedAt": now}
        details = {"deadline_reached": "true"} if cmd.get("deadline_reached") else None
        self._add_node_event(rec, "Node drain complete", now, index, details)
        self.tables["nodes"][node_id] = rec
        self._touch("nodes", index)
        return {"ok": True, "index": index}
