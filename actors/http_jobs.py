"""Nomad's job, allocation, evaluation and node drain/eligibility endpoints.

Registered on :mod:`actors.http_api`'s router when it is imported.  Reads go
through :func:`~actors.http_api.state_query` (linearizable unless ``?stale``,
blocking with ``?index=&wait=``, the ``X-Nomad-*`` headers); each query runs
inside the Raft actor and returns copies, never the store's records.  Writes
encode a state-machine command and go through Raft
(:func:`~actors.http_api.propose`; a follower forwards them to the leader),
with the wall clock as ``now``: the HTTP edge is outside the actors, and the
servers' drainer reads the same clock.

Shapes follow Nomad's API structs: ``JobListStub`` with its ``JobSummary``,
the full ``Job``, ``AllocationListStub`` (the allocation without its
``Job``), the full ``Allocation`` and ``Evaluation``, and the write replies
(``JobRegisterResponse``, ``JobDeregisterResponse``,
``NodeDrainUpdateResponse``).  Times are Unix nanoseconds, as Nomad's JSON
has them; the store keeps the seconds its commands carried.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import urllib.parse
from collections.abc import Callable
from typing import Any

import pykka

from actors.agent_messages import GetSelf
from actors.client.messages import ERR_NO_LEADER, ERR_NODE_NOT_FOUND
from actors.http_api import (
    NODE_ACTIONS,
    Answer,
    Api,
    CodedError,
    Request,
    decode_json,
    hold_for_leader,
    listable,
    parse_uint,
    propose,
    query_flag,
    query_meta_body,
    read_body,
    request_namespace,
    require,
    route,
    state_query,
)
from actors.http_filter import apply_list_options, list_options_asked, page_rows
from actors.scheduler.job import (
    DISPATCH_PAYLOAD_MAX_BYTES,
    JobError,
    JobLimits,
    disconnect_warnings,
    ephemeral_disk,
    memory_max_warnings,
    warnings_text,
)
from actors.scheduler.jobdiff import job_diff
from actors.scheduler.scheduler import metric_out
from actors.server import ENDPOINT
from actors.server.node_endpoint import EndpointConfig, PurgeNode
from actors.state import namespaces, node_pools, scaling
from actors.state import scheduler_config as sched_cfg
from actors.state.namespaces import job_key, key_of, split_key
from actors.state.scheduler_config import JOB_REGISTRATION_DISABLED
from actors.state.store import command
from actors.workload_identity import (  # the scheduler's, and the tasks' identity blocks
    canonical_job,
    identity_warnings,
)
from runtime.edge import wall_time

__all__ = ["ALLOC_ACTIONS", "JOB_ACTIONS", "alloc_stub", "deployment_status_out", "job_stub", "job_summaries",
           "rfc3339"]

ELIGIBILITIES = ("eligible", "ineligible")
# Nomad's AllocClientStatus* -> the JobSummary counter it adds to.
SUMMARY_OF_STATUS = {"pending": "Starting", "running": "Running", "complete": "Complete", "failed": "Failed",
                     "lost": "Lost", "unknown": "Unknown"}
SUMMARY_KEYS = ("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown")
# Legacy ``PUT /v1/node/<id>/drain?enable=true`` (Nomad's COMPAT path, still
# used by python-nomad's drain_node): a forced drain, as Nomad maps it.
LEGACY_DRAIN_DEADLINE_NS = -1_000_000_000
_REGION: dict[int, str] = {}  # id(HttpContext) -> this agent's region (fixed at start)
# A node purge runs as one of the node endpoint's per-node operations, which
# always answers within its op_timeout_s plus a forwarding hop; the handler
# waits a second longer, so the endpoint's own answer is what the caller sees.
PURGE_WAIT_S = EndpointConfig().op_timeout_s + EndpointConfig().forward_timeout_s + 1.0


# ---------------------------------------------------------------- shapes


def _ns(t: Any) -> Any:
    """Store seconds -> Nomad's Unix nanoseconds (a value already in ns is left alone)."""
    if isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1e14:
        return int(t * 1e9)
    return t


def _with_times(rec: dict[str, Any], *keys: str) -> dict[str, Any]:
    for k in keys:
        if k in rec:
            rec[k] = _ns(rec[k])
    return rec


# Go's zero time.Time, which Nomad's JSON shows for a time never set.
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(t: Any) -> str:
    """Store seconds -> Go's ``time.Time`` JSON: RFC 3339 in UTC, the fraction's trailing zeros cut.

    None (or any non-time) is Go's zero time, as Nomad shows an unset ``time.Time``.
    """
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
        return ZERO_TIME
    when = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    frac = f".{when.microsecond:06d}".rstrip("0").rstrip(".")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def deployment_status_out(ds: Any) -> dict[str, Any] | None:
    """An allocation's ``DeploymentStatus`` (Nomad's AllocDeploymentStatus), its Timestamp in RFC 3339."""
    if not isinstance(ds, dict):
        return None
    return {"Healthy": ds.get("Healthy"), "Timestamp": rfc3339(ds.get("Timestamp")),
            "Canary": bool(ds.get("Canary")), "ModifyIndex": ds.get("ModifyIndex", 0)}


# Job fields Nomad always answers with (its structs.Job has no omitempty), for the features this agent
# has not (no periodic or parameterized jobs, no parents): their Go zero values when unused.
_JOB_DEFAULTS = {"Stable": False, "StatusDescription": "", "ParentID": "", "AllAtOnce": False,
                 "Dispatched": False, "Periodic": None, "ParameterizedJob": None, "Payload": None,
                 "Multiregion": None, "Spreads": None, "Affinities": None, "DispatchIdempotencyToken": "",
                 "ConsulNamespace": "", "VaultNamespace": "", "NomadTokenID": "", "UI": None,
                 "VersionTag": None}
# structs.TaskGroup's and structs.Task's keys, with their zero values where a job leaves them unset.
_GROUP_DEFAULTS = {"Update": None, "Migrate": None, "Constraints": None, "Scaling": None,
                   "RestartPolicy": None, "Disconnect": None, "Meta": None, "ReschedulePolicy": None,
                   "Affinities": None, "Spreads": None, "Networks": None, "Consul": None, "Services": None,
                   "Volumes": None, "ShutdownDelay": None, "MaxRunDuration": None,
                   "StopAfterClientDisconnect": None, "MaxClientDisconnect": None,
                   "PreventRescheduleOnLost": False}
# (Only keys a stored job may lack: those actors.scheduler.job always sets are not here, so job_in can
# take these back off a submitted job where they hold these values, and a job read and sent back
# unchanged is stored unchanged.)
_TASK_DEFAULTS = {"User": "", "Services": None, "Vault": None, "Secrets": None, "Consul": None,
                  "Templates": None, "Affinities": None, "DispatchPayload": None, "Lifecycle": None,
                  "Meta": None, "Artifacts": None, "Leader": False, "ShutdownDelay": 0, "VolumeMounts": None,
                  "ScalingPolicies": None, "Kind": "", "CSIPluginConfig": None, "Identity": None,
                  "Identities": None, "Actions": None, "Schedule": None}
_RESOURCES_DEFAULTS = {"Cores": 0, "MemoryMaxMB": 0, "DiskMB": 0, "IOPS": 0, "Networks": None,
                       "Devices": None, "NUMA": None, "SecretsMB": 0}
# structs.Job.Update is a value, never null. A service job without an update block: Nomad's default
# stagger and parallelism (its API Canonicalize's, all the HTTP conversion keeps; the groups carry the
# strategy in force). Any other job without one: the zero strategy -- a system job here then updates every
# node at once (Nomad would give it the default, one node per 30 s; actors.scheduler.job does not).
_UPDATE_ZERO = {"Stagger": 0, "MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": 0, "HealthyDeadline": 0,
                "ProgressDeadline": 0, "AutoRevert": False, "AutoPromote": False, "Canary": 0}
_UPDATE_DEFAULT = {**_UPDATE_ZERO, "Stagger": 30_000_000_000, "MaxParallel": 1}


# structs.Service, ServiceCheck and Template keys a stored job may lack, at the values Nomad's
# Canonicalize gives them when unset (a service's TaskName and Namespace are set in _services).
_SERVICE_DEFAULTS = {"EnableTagOverride": False, "CanaryTags": None, "Connect": None, "CanaryMeta": None,
                     "Weights": None, "TaggedAddresses": None, "OnUpdate": "require_healthy",
                     "Cluster": "default", "Identity": None, "Kind": ""}
_CHECK_DEFAULTS = {"Command": "", "Args": None, "Expose": False, "InitialStatus": "", "Notes": "",
                   "TLSServerName": "", "TLSSkipVerify": False, "GRPCService": "", "GRPCUseTLS": False,
                   "SuccessBeforePassing": 0, "FailuresBeforeCritical": 0, "FailuresBeforeWarning": 0}
_TEMPLATE_DEFAULTS = {"ChangeScript": None, "Once": False, "Uid": None, "Gid": None, "VaultGrace": 0}
# structs.NetworkResource and Port: a port's host network is "default" unless named (its Canonicalize).
_NETWORK_DEFAULTS = {"Device": "", "CIDR": "", "IP": "", "MBits": 0, "DNS": None, "CNI": None}
_PORT_DEFAULTS = {"Value": 0, "HostNetwork": "default", "IgnoreCollision": False}


def _services(job: dict[str, Any], fill: bool) -> None:
    """Fill (job_out) or take back off (job_in) the Service, ServiceCheck, Template, NetworkResource
    and Port keys."""
    for g in _list(job.get("TaskGroups")):
        if not isinstance(g, dict):
            continue
        for n in _list(g.get("Networks")):
            if not isinstance(n, dict):
                continue
            (_fill if fill else _unfill)(n, _NETWORK_DEFAULTS)
            for p in _list(n.get("ReservedPorts")) + _list(n.get("DynamicPorts")):
                (_fill if fill else _unfill)(p, _PORT_DEFAULTS)
        owners = [("", g)] + [(t.get("Name", ""), t) for t in _list(g.get("Tasks")) if isinstance(t, dict)]
        for task, owner in owners:
            for s in _list(owner.get("Services")):
                if not isinstance(s, dict):
                    continue
                # Nomad's Service.Canonicalize: its task's name (a group service has none), the job's
                # namespace for a Nomad-provider service, "default" for Consul's.
                ns = (job.get("Namespace") or "default") if s.get("Provider") == "nomad" else "default"
                defaults = {**_SERVICE_DEFAULTS, "TaskName": task, "Namespace": ns}
                (_fill if fill else _unfill)(s, defaults)
                for c in _list(s.get("Checks")):
                    (_fill if fill else _unfill)(c, _CHECK_DEFAULTS)
            if task:
                for tmpl in _list(owner.get("Templates")):
                    (_fill if fill else _unfill)(tmpl, _TEMPLATE_DEFAULTS)


_ATOMIC = (int, float, str, bool, type(None))


def tree_copy(x: Any) -> Any:
    """A deep copy of a record made of dicts, lists and tuples of plain values (what the store keeps:
    msgpack's types), as copy.deepcopy makes it, about three times faster: no memo (a record has no
    cycles; a shared part comes out twice, which an answer cannot tell).  Anything else inside is
    copy.deepcopy's."""
    t = type(x)
    if t is dict:
        return {k: v if type(v) in _ATOMIC else tree_copy(v) for k, v in x.items()}
    if t is list:
        return [v if type(v) in _ATOMIC else tree_copy(v) for v in x]
    if t in _ATOMIC:
        return x
    if t is tuple:
        return tuple(tree_copy(v) for v in x)
    return copy.deepcopy(x)


def _fill(rec: Any, defaults: dict[str, Any]) -> None:
    if isinstance(rec, dict):
        for k, v in defaults.items():
            if k not in rec:  # a default is copied only where it goes in (and a number never)
                rec[k] = v if type(v) in _ATOMIC else tree_copy(v)


def _unfill(rec: Any, defaults: dict[str, Any]) -> None:
    if isinstance(rec, dict):
        for k in defaults:
            if k in rec and rec[k] == defaults[k]:
                del rec[k]


def job_in(raw: Any, *, owned: bool = False) -> Any:
    """A submitted job with what :func:`job_out` adds taken back off where it holds the value job_out
    gives (a key at its zero value, a task's copy of its group's restart policy, the default job-level
    update strategy), so that a job read and sent back (``nomad job inspect`` then ``job run``, a tool's
    read-modify-write) is the job it was, not an edit of every task.  *raw* is left as it was, unless
    *owned* (the caller's own decoded copy, not read again): then it is edited in place, not copied."""
    if not isinstance(raw, dict):
        return raw
    job = raw if owned else copy.deepcopy(raw)
    _unfill(job, _JOB_DEFAULTS)
    default = _UPDATE_DEFAULT if job.get("Type", "service") in ("service", None) else _UPDATE_ZERO
    if job.get("Update") == default:
        del job["Update"]
    # Wrong types are left for canonical_job to refuse by name (a 400), not tripped over here.
    for g in _list(job.get("TaskGroups")):
        if not isinstance(g, dict):
            continue
        _unfill(g, _GROUP_DEFAULTS)
        if isinstance(g.get("RestartPolicy"), dict) and g["RestartPolicy"].get("RenderTemplates") is False:
            del g["RestartPolicy"]["RenderTemplates"]
        for t in _list(g.get("Tasks")):
            if not isinstance(t, dict):
                continue
            _unfill(t, _TASK_DEFAULTS)
            _unfill(t.get("Resources"), _RESOURCES_DEFAULTS)
            rp = t.get("RestartPolicy")
            if isinstance(rp, dict) and rp.get("RenderTemplates") is False:
                del rp["RenderTemplates"]
            if rp is not None and rp == g.get("RestartPolicy"):
                del t["RestartPolicy"]
    _services(job, fill=False)
    return job


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def job_out(job: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``Job``: every key its struct encodes, unset ones at their zero values."""
    out = _with_times(tree_copy(job), "SubmitTime")
    out.pop("ScheduleIndex", None)  # the store's own bookkeeping, not a Nomad field
    _fill(out, _JOB_DEFAULTS)
    if not isinstance(out.get("Update"), dict):
        out["Update"] = dict(_UPDATE_DEFAULT if out.get("Type", "service") == "service" else _UPDATE_ZERO)
    for g in out.get("TaskGroups") or ():
        if not isinstance(g, dict):
            continue
        if not isinstance(g.get("EphemeralDisk"), dict):
            g["EphemeralDisk"] = ephemeral_disk(g)  # a job stored before it was kept: Nomad's default
        _fill(g, _GROUP_DEFAULTS)
        if isinstance(g.get("RestartPolicy"), dict):
            g["RestartPolicy"].setdefault("RenderTemplates", False)
        for t in g.get("Tasks") or ():
            _fill(t, _TASK_DEFAULTS)
            if isinstance(t, dict):
                _fill(t.get("Resources"), _RESOURCES_DEFAULTS)
                if t.get("RestartPolicy") is None:  # none of its own: its group's (Nomad's Canonicalize)
                    t["RestartPolicy"] = tree_copy(g.get("RestartPolicy"))
    _services(out, fill=True)
    return out


_CHILD_KEYS = {"pending": "Pending", "running": "Running", "dead": "Dead"}


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a.get("CreateIndex", 0), a["ID"]) > (b.get("CreateIndex", 0), b["ID"])


def job_summaries(st: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Nomad's ``JobSummary`` per job, counted from its allocations in one pass.

    ``Queued`` is what a blocked evaluation still waits to place: the group's
    count less its live allocations while the job has a blocked evaluation
    (or a follow-up ``queued-allocs`` one, the rest of a job larger than one plan).
    """
    jobs, wanted = st.tables["jobs"], set(job_ids)  # job_ids: store keys (actors.state.namespaces)
    out: dict[str, dict[str, Any]] = {}
    for jid in job_ids:
        job = jobs[jid]
        out[jid] = {"JobID": job["ID"], "Namespace": job.get("Namespace", "default"),
                    "Summary": {g["Name"]: dict.fromkeys(SUMMARY_KEYS, 0)
                                for g in job.get("TaskGroups", ())},
                    "Children": {"Pending": 0, "Running": 0, "Dead": 0},
                    "CreateIndex": job.get("CreateIndex", 0), "ModifyIndex": job.get("ModifyIndex", 0)}
    # Nomad's JobChildrenSummary: a periodic or parameterized job's children counted by their status.
    for parent in job_ids:
        if jobs[parent].get("Periodic") or jobs[parent].get("ParameterizedJob"):
            children = out[parent]["Children"]
            for child in st.job_children(parent, ordered=False):
                key = _CHILD_KEYS.get(child.get("Status", ""))
                if key:
                    children[key] += 1
    # A few jobs' summaries count their own allocations (the store's by-job index), not every
    # allocation there is; most of the jobs (the leader's metrics, a whole list) take one pass.
    allocs = st.tables["allocs"]
    few = len(wanted) * 4 < len(jobs)
    for a in (a for jid in wanted for a in st.job_allocs(jid)) if few else allocs.values():
        jid = key_of(a)
        if jid not in wanted or not of_this_job(jobs[jid], a):
            continue  # (Nomad's updateSummaryWithAlloc: an earlier job's allocation is not counted)
        summary = out[jid]["Summary"]
        group = summary.get(a.get("TaskGroup", ""))
        if group is None:
            group = summary[a.get("TaskGroup", "")] = dict.fromkeys(SUMMARY_KEYS, 0)
        key = SUMMARY_OF_STATUS.get(a.get("ClientStatus", ""))
        if key:
            group[key] += 1
    evals = st.tables["evals"]
    blocked: dict[str, dict[str, Any]] = {}
    for e in st.evals_with_status("blocked"):  # a job's latest blocked evaluation, should it have two
        jid = key_of(e)
        if jid in wanted and (jid not in blocked or _newer(e, blocked[jid])):
            blocked[jid] = e
    # A job larger than one plan: what its follow-up evaluation has still to place is queued too.
    queued = {key_of(e) for e in st.evals_with_status("pending")
              if e.get("TriggeredBy") == "queued-allocs" and key_of(e) in wanted}
    for jid in wanted & (set(blocked) | queued):
        job = jobs[jid]
        if job.get("Stop"):
            continue
        if job.get("Type") in ("system", "sysbatch") or jid not in queued:
            # What waits is what the evaluation that blocked could not place (Nomad's
            # QueuedAllocations: its failed placements, by group), not the count less what runs -- a
            # system job has one allocation a node, and a batch group's finished allocations, a
            # failed one waiting to be rescheduled or a group placed in full are not queued.
            prev = blocked[jid].get("PreviousEval", "") if jid in blocked else ""
            failed = (evals.get(prev) or {}).get("FailedTGAllocs") or (
                blocked[jid].get("FailedTGAllocs") if jid in blocked else None) or {}
            for name, m in failed.items():
                if name in out[jid]["Summary"] and isinstance(m, dict):
                    out[jid]["Summary"][name]["Queued"] = int(m.get("CoalescedFailures", 0)) + 1
            continue
        for g in job.get("TaskGroups", ()):
            s = out[jid]["Summary"][g["Name"]]
            s["Queued"] = max(0, g.get("Count", 0) - s["Running"] - s["Starting"])
    return out


def job_stub(job: dict[str, Any], summary: dict[str, Any], *, meta: bool = False) -> dict[str, Any]:
    """Nomad's ``JobListStub``: its ``Meta`` (``omitempty``) only when asked for (``?meta=true``) and the
    job has some."""
    stub = {"ID": job["ID"], "ParentID": job.get("ParentID", ""), "Name": job.get("Name", job["ID"]),
            "Namespace": job.get("Namespace", "default"), "Datacenters": list(job.get("Datacenters", ())),
            "NodePool": job.get("NodePool") or "default",
            "Multiregion": None, "Type": job.get("Type", "service"), "Priority": job.get("Priority", 50),
            "Periodic": bool(job.get("Periodic")), "ParameterizedJob": bool(job.get("ParameterizedJob")),
            "Stop": bool(job.get("Stop")),
            "Status": job.get("Status", "pending"), "StatusDescription": job.get("StatusDescription", ""),
            "JobSummary": summary, "CreateIndex": job.get("CreateIndex", 0),
            "ModifyIndex": job.get("ModifyIndex", 0), "JobModifyIndex": job.get("JobModifyIndex", 0),
            "SubmitTime": _ns(job.get("SubmitTime", 0))}
    if meta and job.get("Meta"):
        stub["Meta"] = dict(job["Meta"])
    return stub


_STUB_DEFAULTS = {"ID": "", "EvalID": "", "Name": "", "Namespace": "default", "NodeID": "", "NodeName": "",
                  "JobID": "", "JobVersion": 0, "TaskGroup": "", "DesiredStatus": "",
                  "DesiredDescription": "", "ClientStatus": "", "ClientDescription": "", "FollowupEvalID": "",
                  "NextAllocation": "", "PreviousAllocation": "", "CreateIndex": 0, "ModifyIndex": 0}


def allocated_resources(a: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``AllocatedResources``: each task's CPU and memory, as its job's group asks for them, and
    its lifecycle (``{"Hook", "Sidecar"}``; null for a main task); the group's ephemeral disk is shared."""
    group = next((g for g in (a.get("Job") or {}).get("TaskGroups", ()) if g.get("Name") == a.get("TaskGroup")),
                 {})
    # The scheduler records a task's memory_max only when it placed it (oversubscription enabled).
    placed = (a.get("AllocatedResources") or {}).get("Tasks") or {}
    cores = a.get("TaskCores") or {}  # the tasks' reserved cores (and their MHz), when the scheduler set any

    def cpu(t: dict[str, Any]) -> dict[str, Any]:
        got = cores.get(t["Name"])
        if got:
            return {"CpuShares": int(got.get("CpuShares", 0)),
                    "ReservedCores": list(got.get("ReservedCores") or ())}
        return {"CpuShares": int(t.get("Resources", {}).get("CPU", 0)), "ReservedCores": None}
    tasks = {t["Name"]: {"Cpu": cpu(t),
                         "Memory": {"MemoryMB": int(t.get("Resources", {}).get("MemoryMB", 0)),
                                    "MemoryMaxMB": int(((placed.get(t["Name"]) or {}).get("Memory") or {})
                                                       .get("MemoryMaxMB", 0))},
                         "Networks": None, "Devices": None}
             for t in group.get("Tasks", ())}
    ports = [{"Label": p["Label"], "Value": p["Value"], "To": p.get("To", 0), "HostIP": p.get("HostIP", "")}
             for p in a.get("AllocatedPorts") or ()]
    networks = None
    if ports:  # Nomad's host-mode group network: its reserved (static) and dynamic ports
        static = {p["Label"] for n in group.get("Networks") or () for p in n.get("ReservedPorts", ())}
        def as_port(p: dict[str, Any]) -> dict[str, Any]:
            return {"Label": p["Label"], "Value": p["Value"], "To": p["To"], "HostNetwork": "default"}
        networks = [{"Mode": "host", "IP": ports[0]["HostIP"], "Device": "", "CIDR": "", "MBits": 0,
                     "ReservedPorts": [as_port(p) for p in ports if p["Label"] in static] or None,
                     "DynamicPorts": [as_port(p) for p in ports if p["Label"] not in static] or None}]
    lifecycles = {t["Name"]: ({"Hook": t["Lifecycle"]["Hook"], "Sidecar": bool(t["Lifecycle"].get("Sidecar"))}
                              if t.get("Lifecycle") else None) for t in group.get("Tasks", ())}
    return {"Tasks": tasks, "TaskLifecycles": lifecycles,
            "Shared": {"DiskMB": int((a.get("Resources") or {}).get("DiskMB", 0)), "Networks": networks,
                       "Ports": ports or None}}


# structs.DesiredTransition: every field a *bool, null while unset.
_TRANSITION_KEYS = ("Migrate", "Reschedule", "ForceReschedule", "NoShutdownDelay", "MigrateDisablePlacement")
# structs.TaskEvent's keys (none omitempty) at their zero values, for what an event does not say.
_EVENT_DEFAULTS = {"Type": "", "Time": 0, "Message": "", "DisplayMessage": "", "Details": None,
                   "FailsTask": False, "RestartReason": "", "SetupError": "", "DriverError": "",
                   "ExitCode": 0, "Signal": 0, "KillTimeout": 0, "KillError": "", "KillReason": "",
                   "StartDelay": 0,
                   "DownloadError": "", "ValidationError": "", "DiskLimit": 0, "FailedSibling": "",
                   "VaultError": "", "TaskSignalReason": "", "TaskSignal": "", "DriverMessage": "",
                   "GenericSource": ""}


def desired_transition_out(dt: Any) -> dict[str, Any]:
    """Nomad's ``DesiredTransition``: all its keys, null where unset."""
    dt = dt if isinstance(dt, dict) else {}
    return {**{k: None for k in _TRANSITION_KEYS}, **tree_copy(dt)}


def task_states_out(states: Any) -> dict[str, Any] | None:
    """Nomad's ``TaskState`` per task: a time never set is Go's zero time (never null), an event has every
    ``TaskEvent`` key (an unset int is 0), and ``Paused`` is "" (no schedule pauses tasks here)."""
    if not isinstance(states, dict) or not states:
        return None
    out = tree_copy(states)
    for st in out.values():
        if not isinstance(st, dict):
            continue
        for k in ("LastRestart", "StartedAt", "FinishedAt"):
            if st.get(k) is None:
                st[k] = ZERO_TIME
        st.setdefault("Paused", "")
        for ev in st.get("Events") or ():
            if isinstance(ev, dict):
                for k, v in _EVENT_DEFAULTS.items():
                    if ev.get(k) is None:
                        ev[k] = v
                if not ev["DisplayMessage"]:  # Nomad's HTTP handlers: alloc.SetEventDisplayMessages()
                    ev["DisplayMessage"] = _display_message(ev)
    return out


# Nomad's PopulateEventDisplayMessage for an event that carries no text of its own.
_DISPLAY_DEFAULTS = {"Started": "Task started by client", "Received": "Task received by client",
                     "Downloading Artifacts": "Client is downloading artifacts",
                     "Killed": "Task successfully killed", "Killing": "Sent interrupt",
                     "Not Restarting": "Task exceeded restart policy",
                     "Sibling Task Failed": "Task's sibling failed",
                     "Signaling": "Task being sent a signal", "Restart Signaled": "Task signaled to restart",
                     "Leader Task Dead": "Leader Task in Group dead",
                     "Main Tasks Dead": "Main tasks in the group died", "Reconnected": "Client reconnected",
                     "Failed Validation": "Validation of task failed", "Setup Failure": "Task setup failed",
                     "Driver Failure": "Failed to start task",
                     "Failed Artifact Download": "Failed to download artifacts"}


def _display_message(ev: dict[str, Any]) -> str:
    """An event's ``DisplayMessage``: the client writes the whole description into ``Message`` here, so
    that is it; Nomad's own wording for the types that can come without one."""
    return ev.get("Message") or ev.get("DriverMessage") or _DISPLAY_DEFAULTS.get(ev.get("Type", ""), "")


def alloc_stub(a: dict[str, Any], *, task_states: bool = True, resources: bool = False) -> dict[str, Any]:
    """Nomad's ``AllocationListStub``: the allocation without its ``Job``."""
    stub = {k: a.get(k, d) for k, d in _STUB_DEFAULTS.items()}
    if resources:  # ?resources=true
        stub["AllocatedResources"] = allocated_resources(a)
    stub.update(JobType=(a.get("Job") or {}).get("Type", ""),
                DesiredTransition=desired_transition_out(a.get("DesiredTransition")),
                TaskStates=task_states_out(a.get("TaskStates")) if task_states else None,
                PreemptedAllocations=copy.deepcopy(a.get("PreemptedAllocations")),
                PreemptedByAllocation=a.get("PreemptedByAllocation") or "",
                DeploymentStatus=deployment_status_out(a.get("DeploymentStatus")),
                RescheduleTracker=copy.deepcopy(a.get("RescheduleTracker")),
                CreateTime=_ns(a.get("CreateTime", 0)), ModifyTime=_ns(a.get("ModifyTime", 0)))
    return stub


def alloc_out(a: dict[str, Any], jobs: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The full ``Allocation``, its ``Job`` included.  *jobs*: a list's memo of the jobs made so far
    (the allocations of one job version share its record in the store; its copy is made once)."""
    job = a.get("Job")
    # The job is copied by job_out alone (it copies), not a second time with the allocation; its
    # key keeps its place.
    out = _with_times(tree_copy({k: (None if k == "Job" else v) for k, v in a.items()}),
                      "CreateTime", "ModifyTime")
    if isinstance(job, dict):
        made = jobs.get(id(job)) if jobs is not None else None
        if made is None:
            made = job_out(job)
            if jobs is not None:
                jobs[id(job)] = made
        out["Job"] = made
    elif "Job" in a:
        out["Job"] = tree_copy(job)
    out["AllocatedResources"] = allocated_resources(a)
    if isinstance(out.get("Resources"), dict):
        out["Resources"].setdefault("DiskMB", 0)  # placed before disk was counted: it holds none
    out["DeploymentStatus"] = deployment_status_out(out.get("DeploymentStatus"))
    out["DeploymentID"] = out.get("DeploymentID") or ""
    for k, v in (("FollowupEvalID", ""),
                 ("NextAllocation", ""), ("PreviousAllocation", ""), ("RescheduleTracker", None),
                 ("Metrics", None), ("SharedResources", None), ("TaskResources", None), ("AllocStates", None),
                 ("NetworkStatus", None), ("PreemptedAllocations", None), ("PreemptedByAllocation", ""),
                 ("SigningKeyID", "")):
        out.setdefault(k, v)
    out["DesiredTransition"] = desired_transition_out(out.get("DesiredTransition"))
    out["TaskStates"] = task_states_out(out.get("TaskStates"))
    if out["AllocStates"]:  # Nomad's AllocState: Field 0 is the client status; the time as RFC 3339
        out["AllocStates"] = [{"Field": 0 if s.get("Field") == "ClientStatus" else s.get("Field"),
                               "Value": s.get("Value", ""), "Time": rfc3339(s.get("Time", 0.0))}
                              for s in out["AllocStates"]]
    out["Metrics"] = metric_out(out["Metrics"])  # the placement's AllocMetric, stored compact
    _fill(out["Metrics"], _METRIC_DEFAULTS)
    _fill(out.get("Resources"), {"CPU": 0, "MemoryMB": 0, **_RESOURCES_DEFAULTS})
    return out


# structs.Evaluation's keys this agent's evaluations may lack, at their zero values.
_EVAL_DEFAULTS = {"NodeModifyIndex": 0, "Wait": 0, "NextEval": "", "BlockedEval": "", "RelatedEvals": None,
                  "PlanAnnotations": None, "ClassEligibility": None, "QuotaLimitReached": "",
                  "MissingNonNodeResources": None, "EscapedComputedClass": False, "AnnotatePlan": False,
                  "QueuedAllocations": None, "LeaderACL": "", "SnapshotIndex": 0}


# structs.AllocMetric's keys, at their zero values where the scheduler here does not count them.
_METRIC_DEFAULTS = {"NodesEvaluated": 0, "NodesFiltered": 0, "NodesInPool": 0, "NodePool": "",
                    "NodesAvailable": None, "ClassFiltered": None, "ConstraintFiltered": None,
                    "NodesExhausted": 0, "ClassExhausted": None, "DimensionExhausted": None,
                    "QuotaExhausted": None, "ResourcesExhausted": None, "Scores": None, "ScoreMetaData": None,
                    "AllocationTime": 0, "CoalescedFailures": 0}


def failed_tg_allocs_out(failed: Any) -> Any:
    """``FailedTGAllocs`` (an evaluation's, a plan's): each group's ``AllocMetric`` with all its keys."""
    if not isinstance(failed, dict):
        return failed
    out = copy.deepcopy(failed)
    for metric in out.values():
        _fill(metric, _METRIC_DEFAULTS)
    return out


def eval_out(e: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``Evaluation``: every key its struct encodes."""
    out = _with_times(tree_copy(e), "CreateTime", "ModifyTime")
    _fill(out, _EVAL_DEFAULTS)
    out["FailedTGAllocs"] = failed_tg_allocs_out(out.get("FailedTGAllocs"))
    annotations = out.get("PlanAnnotations")
    if isinstance(annotations, dict):  # Nomad's PlanAnnotations: every DesiredUpdates key, no stubs kept
        annotations.setdefault("PreemptedAllocs", None)
        for updates in (annotations.get("DesiredTGUpdates") or {}).values():
            for k in ("Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater"):
                updates.setdefault(k, 0)
    out.setdefault("DeploymentID", "")  # set once a plan ran within a deployment (Nomad's field, always there)
    wait = out.get("WaitUntil")  # the store's seconds; Nomad's JSON has a time (zero when it runs at once)
    out["WaitUntil"] = rfc3339(wait) if isinstance(wait, (int, float)) and wait > 0 else ZERO_TIME
    return out


# ---------------------------------------------------------------- request helpers


def _json_body(req: Request, body: bytes | None = None) -> dict[str, Any]:
    """The body (read here unless given) as a JSON object, or 400 with the decoder's one-line reason."""
    body = read_body(req) if body is None else body
    if not body.strip():
        raise CodedError(400, "Request body is empty")
    try:
        value = decode_json(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Request body is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise CodedError(400, f"Request body must be a JSON object, got {type(value).__name__}")
    return value


def _prefix(req: Request) -> str:
    return (req.query.get("prefix") or [""])[0]


def _region(api: Api) -> str:
    key = id(api.ctx)
    if key not in _REGION:
        _REGION[key] = api.ask(api.ctx.agent, GetSelf())["config"].get("Region") or "global"
    return _REGION[key]


_LIMITS: dict[int, JobLimits] = {}


def _limits(api: Api) -> JobLimits:
    """This server's job_default_priority, job_max_priority and job_max_count (not reloadable, as Nomad's)."""
    key = id(api.ctx)
    if key not in _LIMITS:
        agent = getattr(api.ctx, "agent", None)  # none: an in-process test API, Nomad's defaults
        _LIMITS[key] = JobLimits() if agent is None else \
            JobLimits.from_self(api.ask(agent, GetSelf())["config"].get("Server"))
    return _LIMITS[key]


def _write(api: Api, op: str, **args: Any) -> tuple[int, dict[str, Any]]:
    """Propose *op*; the result dict, or the store's refusal as Nomad's code and text."""
    try:
        data = command(op, now=wall_time(), **args)
    except (OverflowError, TypeError, ValueError) as e:  # e.g. an integer beyond 64 bits
        raise CodedError(400, f"Request has a value that cannot be stored: {e}") from None
    index, result = propose(api, data)
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        error = str(result.get("error") or "refused by the state store")
        if error == JOB_REGISTRATION_DISABLED:
            raise CodedError(403, error)  # Nomad maps ErrJobRegistrationDisabled to 403
        if any(s in error for s in ("nonexistent node pool", "nonexistent namespace",
                                    "is not allowed in namespace")):
            raise CodedError(400, error)  # Nomad's admission checks, answered as a job that fails validation
        raise CodedError(404 if error.endswith("not found") else 500, error)
    return index, result


def _rejectable(req: Request, api: Api) -> bool:
    """Whether this job write is refused while the scheduler configuration rejects registrations:
    everyone's but a management token's.  With ACLs disabled there is none (Nomad: a nil ACL)."""
    if not api.ctx.acl_enabled:
        return True
    from actors.http_acl import resolve

    return not resolve(req, api)[1].management


def _index_header(index: int) -> tuple[tuple[str, str], ...]:
    return (("X-Nomad-Index", str(index)),)


def _not_found(answer: Answer, message: str) -> Answer:
    if answer.value is None:
        raise CodedError(404, message, answer.headers)  # with the query meta, as Nomad's setMeta first
    return answer


def _one(req: Request, api: Api, table: str, key: str, shape: Callable[[dict[str, Any]], Any],
         message: str) -> Answer:
    def query(st: Any) -> Any:
        rec = st.tables[table].get(key)
        return None if rec is None else shape(rec)
    return _not_found(state_query(req, api, (table,), query, scoped=True), message)


# ---------------------------------------------------------------- jobs


@route("/v1/jobs")
def jobs_request(req: Request, api: Api) -> Any:
    if req.method in ("PUT", "POST"):
        return _register(req, api, "")
    require(req, "GET")
    prefix = _prefix(req)
    # ?namespace= (Nomad's default "default"; "*" is every namespace).
    ns, allowed = request_namespace(req), listable(req)
    meta = query_flag(req, "meta")  # Nomad's JobStubFields.Meta: the jobs' meta in the stubs

    def query(st: Any) -> list[dict[str, Any]]:
        jobs = st.tables["jobs"]
        ids = [i for i in jobs if jobs[i]["ID"].startswith(prefix) and in_namespace(jobs[i], ns, allowed)]

        def order(i: str) -> tuple[str, str]:  # i: a store key (actors.state.namespaces)
            return jobs[i].get("Namespace", "default"), jobs[i]["ID"]

        def stubs(ids: list[str]) -> list[dict[str, Any]]:
            sums = job_summaries(st, ids)
            return [job_stub(jobs[i], sums[i], meta=meta) for i in ids]
        if paged:  # a page's stubs alone, as apply_list_options will page them
            page = page_rows(req, ids, stubs, order, namespaced=True,
                             view=lambda i: dict(zip(("Namespace", "ID"), order(i), strict=True)))
            if page is not None:
                return page
        return stubs(sorted(ids, key=order))
    # Nomad's list watches the jobs and job_summary tables; our summary comes from allocs.
    paged = list_options_asked(req)
    if paged:  # ?filter= / ?per_page= / ?next_token=
        # Nomad pages jobs with its NamespaceIDTokenizer: "<namespace>.<job ID>"
        return apply_list_options(req, state_query(req, api, ("jobs", "allocs"), query), namespaced=True)
    if ns == "*":  # what it lists depends on the token (actors.http_api.listable): not shared
        return state_query(req, api, ("jobs", "allocs"), query)
    from actors.http_cache import cached_state_query  # the encoded list is reused while unchanged

    return cached_state_query(req, api, "jobs", ("jobs", "allocs"), query)


def in_namespace(obj: dict[str, Any], ns: str, allowed: Callable[[str], bool] = lambda ns: True) -> bool:
    """Whether a listed object belongs in namespace *ns* ("*": every namespace *allowed* lets the token
    list, see actors.http_api.listable), as Nomad's lists filter."""
    own = obj.get("Namespace") or "default"
    return allowed(own) if ns == "*" else own == ns


def namespace_for_job(req: Request, body: dict[str, Any], raw: dict[str, Any]) -> Any:
    """Nomad's namespaceForJob: ``?namespace=`` first, then the request's own ``Namespace``, then the
    job's; "default" when none names one."""
    body_ns = body.get("Namespace")
    return ((req.query.get("namespace") or [""])[0] or (body_ns if isinstance(body_ns, str) else "")
            or raw.get("Namespace") or "default")


def _register(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/jobs`` and ``PUT /v1/job/<id>`` (Nomad ``jobUpdate``): ``{"Job": {...}}``."""
    body = _json_body(req)
    raw = body.get("Job")
    if raw is None:
        raise CodedError(400, "Job must be specified")
    if not isinstance(raw, dict):
        raise CodedError(400, f"Job: must be an object, got {type(raw).__name__}")
    if job_id:
        if not raw.get("ID"):
            raise CodedError(400, "Job ID hasn't been provided")
        if raw["ID"] != job_id:
            raise CodedError(400, "Job ID does not match name")
    # Nomad's PreserveCounts and PreserveResources: each group keeps the registered job's count, each
    # task its resources -- applied by the state store with the registration (updatePreservedValues),
    # so a scaling between reading the job and writing it is not undone.
    preserve: dict[str, Any] = {}
    for key, op in (("PreserveCounts", "preserve_counts"), ("PreserveResources", "preserve_resources")):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise CodedError(400, f"{key}: must be a boolean, got {value!r}")
        if value:
            preserve[op] = True
    raw["Namespace"] = namespace_for_job(req, body, raw)
    # Nomad's regionForJob: a job registered here is this region's (a job naming another region was
    # sent there, actors.http_api.forward_region; "global" or none means this one).
    if raw.get("Region") is None or isinstance(raw["Region"], str):  # (else: refused as not a string)
        raw["Region"] = _region(api)
    try:  # raw: this request's own decoded body, read no more
        job = canonical_job(job_in(raw, owned=True), region=_region(api), limits=_limits(api))
    except JobError as e:
        raise CodedError(400, f"Job validation failed: {e}") from None
    enforce = None
    if body.get("EnforceIndex"):
        enforce = body.get("JobModifyIndex", 0)
        if not isinstance(enforce, int) or isinstance(enforce, bool) or enforce < 0:
            raise CodedError(400, "JobModifyIndex: must be a non-negative integer")
    # Nomad's EvalPriority (job run -eval-priority): the evaluation's priority instead of the job's.
    eval_priority = body.get("EvalPriority", 0)
    if not isinstance(eval_priority, int) or isinstance(eval_priority, bool):
        raise CodedError(400, f"EvalPriority: must be an integer, got {eval_priority!r}")
    extra = {"eval_priority": _eval_priority(eval_priority)} if eval_priority else {}
    warnings = _memory_max_warnings(req, api, job)
    submission, too_big = _submission(body.get("Submission"), _limits(api).max_source_bytes)
    if submission is not None:
        extra["submission"] = submission
    if too_big:
        # Nomad's Register runs the submission controller first: its warning leads the list.
        warnings = warnings_text([too_big, *(w[2:] for w in warnings.split("\n") if w.startswith("* "))])
    if enforce is not None:
        extra["enforce_absent"] = True  # Nomad's Job.EnforceIndex: index 0 for a new job only
    index, r = _write(api, "job_register", job=job, enforce_index=enforce, keep_unchanged_time=True,
                      rejectable=_rejectable(req, api), **extra, **preserve)
    return _job_register_reply(index, r, warnings)


def _humanize_bytes(n: int) -> str:
    """go-humanize's Bytes: SI units, one decimal below 10 ("1.2 MB", "15 kB", "900 B")."""
    if n < 10:
        return f"{n} B"
    sizes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    e = min(math.floor(math.log(n) / math.log(1000)), len(sizes) - 1)
    val = math.floor(n / 1000 ** e * 10 + 0.5) / 10
    return f"{val:.0f} {sizes[e]}" if val >= 10 else f"{val:.1f} {sizes[e]}"


def _submission(raw: Any, limit: int) -> tuple[dict[str, Any] | None, str]:
    """Nomad's JobRegisterRequest.Submission, checked: (what the servers keep, "") or, past
    job_max_source_size (Nomad's submissionController), (None, the warning)."""
    if raw is None:
        return None, ""
    if not isinstance(raw, dict):
        raise CodedError(400, f"Submission: must be an object, got {type(raw).__name__}")
    sub = {"Source": raw.get("Source") or "", "Format": raw.get("Format") or "",
           "VariableFlags": raw.get("VariableFlags") or {}, "Variables": raw.get("Variables") or ""}
    if not all(isinstance(sub[k], str) for k in ("Source", "Format", "Variables")):
        raise CodedError(400, "Submission: Source, Format and Variables must be strings")
    flags = sub["VariableFlags"]
    if not isinstance(flags, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in flags.items()):
        raise CodedError(400, "Submission: VariableFlags must be an object of strings")
    size = len(sub["Source"].encode()) + len(sub["Variables"].encode()) + sum(
        len(k.encode()) + len(v.encode()) for k, v in flags.items())
    if size > limit:
        return None, (f"job source size of {_humanize_bytes(size)} exceeds maximum of "
                      f"{_humanize_bytes(limit)} and will be discarded")
    return sub, ""


def _eval_priority(priority: int) -> int:
    """Nomad's validateEvalPriorityOpt."""
    if not 1 <= priority <= 100:
        raise CodedError(400, "Eval priority must be between 1 and 100 inclusively")
    return priority


def _memory_max_warnings(req: Request, api: Api, job: dict[str, Any]) -> str:
    """Nomad's memory oversubscription admission warnings (``Warnings``) for a canonical job: the
    scheduler configuration is read only when a task asks for memory_max."""
    ids = identity_warnings(job)  # and Nomad's warnings for the tasks' named identities
    if not memory_max_warnings(job, False):
        return warnings_text(ids + disconnect_warnings(job))
    on = state_query(req, api, (sched_cfg.TABLE,), lambda st: sched_cfg.memory_oversubscription(st.tables))
    return warnings_text(memory_max_warnings(job, bool(on.value)) + ids + disconnect_warnings(job))


def _job_crud(req: Request, api: Api, job_id: str) -> Any:
    if req.method in ("PUT", "POST"):
        return _register(req, api, split_key(job_id)[1])
    if req.method == "DELETE":
        purge = query_flag(req, "purge")
        # Nomad's ?no_shutdown_delay: the job's allocations skip their shutdown_delay as they stop.
        extra: dict[str, Any] = {"no_shutdown_delay": True} if query_flag(req, "no_shutdown_delay") else {}
        raw_priority = req.query.get("eval_priority", [""])[0]
        if raw_priority:
            try:
                priority = int(raw_priority)
            except ValueError:
                raise CodedError(400, f'Failed to parse value of "eval_priority" ({raw_priority}) as a int: '
                                      f'strconv.Atoi: parsing "{raw_priority}": invalid syntax') from None
            if priority > 0:
                extra["eval_priority"] = _eval_priority(priority)
        index, r = _write(api, "job_deregister", **_job_cmd(job_id), purge=purge, **extra)
        return Answer({"EvalID": r["EvalID"], "EvalCreateIndex": r["EvalCreateIndex"],
                       "JobModifyIndex": r["JobModifyIndex"], "Index": index, "LastContact": 0,
                       "KnownLeader": False}, _index_header(index))
    require(req, "GET")

    def query(st: Any) -> Any:
        rec = st.tables["jobs"].get(job_id)
        if rec is None:
            return None
        out = job_out(rec)
        # Each group's scaling policy as Nomad's job holds it: the stored policy's ID and indexes too.
        for p in scaling.job_policies(st, rec.get("Namespace", "default"), rec["ID"]):
            for g in out.get("TaskGroups", ()):
                if g["Name"] == p["Target"].get("Group") and g.get("Scaling"):
                    g["Scaling"].update(ID=p["ID"], Namespace=p["Target"].get("Namespace", "default"),
                                        CreateIndex=p["CreateIndex"], ModifyIndex=p["ModifyIndex"])
        return out
    return _not_found(state_query(req, api, ("jobs", scaling.TABLE), query, scoped=True), "job not found")


def of_this_job(job: dict[str, Any] | None, alloc: dict[str, Any]) -> bool:
    """Nomad's AllocsByJob without ``anyCreateIndex``: an allocation of an earlier job of the same ID
    (purged, then registered anew) is not this job's."""
    if job is None:
        return True
    placed_by = alloc.get("Job")
    return not isinstance(placed_by, dict) or placed_by.get("CreateIndex", 0) == job.get("CreateIndex", 0)


def _job_allocations(req: Request, api: Api, job_id: str) -> Any:
    """``/v1/job/<id>/allocations[?all=true]``: the job's allocations; ``all`` adds those of earlier
    jobs of the same ID."""
    require(req, "GET")
    every = query_flag(req, "all")

    def query(st: Any) -> Any:
        job = st.tables["jobs"].get(job_id)
        return [alloc_stub(a) for a in st.job_allocs(job_id)  # in ID order
                if a.get("JobID") and key_of(a) == job_id and (every or of_this_job(job, a))]
    return apply_list_options(req, state_query(req, api, ("allocs",), query, scoped=True))


def _job_evaluations(req: Request, api: Api, job_id: str) -> Any:
    require(req, "GET")
    return apply_list_options(req, state_query(req, api, ("evals",), lambda st: [
        eval_out(e) for e in st.job_evals(job_id) if e.get("JobID")], scoped=True))  # in ID order


def _job_summary(req: Request, api: Api, job_id: str) -> Any:
    require(req, "GET")

    def query(st: Any) -> Any:
        return job_summaries(st, [job_id])[job_id] if job_id in st.tables["jobs"] else None
    return _not_found(state_query(req, api, ("jobs", "allocs"), query, scoped=True), "job not found")


def _job_submission(req: Request, api: Api, job_id: str) -> Any:
    """``GET /v1/job/<id>/submission?version=N`` (Nomad's jobSubmissionCRUD): the source that version
    of the job was registered with, its format and variables; 404 "job source not found" when none is
    kept (a JSON job registered without one, a source past job_max_source_size, an old version)."""
    version = parse_uint((req.query.get("version") or [""])[0])
    if version is None:
        raise CodedError(400, "Unable to parse job submission version parameter")
    require(req, "GET")
    answer = state_query(req, api, ("job_submissions",), lambda st: copy.deepcopy(
        (st.tables["job_submissions"].get(job_id) or {}).get(str(version))))
    if answer.value is None:
        raise CodedError(404, "job source not found")
    # Nomad associates the answer with the index of the job version it came from.
    headers = tuple((k, v) for k, v in answer.headers if k != "X-Nomad-Index")
    return Answer(answer.value, (*headers, ("X-Nomad-Index", str(answer.value.get("JobModifyIndex", 0)))))


def _job_versions(req: Request, api: Api, job_id: str) -> Any:
    """``/v1/job/<id>/versions[?diffs=true[&diff_tag=<name>|&diff_version=<n>]]``: the tracked versions,
    newest (the current one) first; with ``diffs``, Nomad's structured diff of each version against the
    one before it (contextual, as Nomad), or against the version tagged ``diff_tag`` / numbered
    ``diff_version``."""
    require(req, "GET")
    diffs = query_flag(req, "diffs")
    # Nomad 1.9: diff_tag / diff_version diff every version against that one instead.
    diff_tag = (req.query.get("diff_tag") or [""])[0]
    raw_version = (req.query.get("diff_version") or [""])[0]
    diff_version = parse_uint(raw_version) if raw_version else None
    if raw_version and diff_version is None:
        raise CodedError(400, f'Failed to parse value of "diff_version" ({raw_version}) as a uint64')

    def query(st: Any) -> Any:
        versions = st.job_versions(job_id)
        if not versions:
            return None
        if not diffs:
            return {"Versions": [job_out(v) for v in versions], "Diffs": None}
        if diff_tag or diff_version is not None:
            base = next((v for v in versions if (v.get("VersionTag") or {}).get("Name") == diff_tag)
                        if diff_tag else (v for v in versions if v.get("Version") == diff_version), None)
            if base is None:
                return {"error": f'tag "{diff_tag}" not found' if diff_tag
                        else f"version {diff_version} not found"}
            return {"Versions": [job_out(v) for v in versions],
                    "Diffs": [job_diff(base, v) for v in versions]}
        return {"Versions": [job_out(v) for v in versions],
                "Diffs": [job_diff(versions[i + 1], versions[i]) for i in range(len(versions) - 1)] or None}
    answer = _not_found(state_query(req, api, ("jobs", "job_versions"), query, scoped=True), "job not found")
    if "error" in answer.value:
        raise CodedError(404, answer.value["error"])
    # Nomad's JobVersionsResponse carries its QueryMeta in the body too.
    return Answer({**answer.value, **query_meta_body(answer.headers)}, answer.headers)


def _job_cmd(job_id: str) -> dict[str, Any]:
    """A job command's arguments for the job a store key names: its ID, and its namespace when that is not
    default (an entry without one means default, as every entry from before namespaces)."""
    namespace, bare = split_key(job_id)
    return {"job_id": bare, **({"namespace": namespace} if namespace != namespaces.DEFAULT else {})}


def _job_register_reply(index: int, r: dict[str, Any], warnings: str = "") -> Answer:
    return Answer({"EvalID": r["EvalID"], "EvalCreateIndex": r["EvalCreateIndex"],
                   "JobModifyIndex": r["JobModifyIndex"], "Warnings": warnings, "Index": index,
                   "LastContact": 0, "KnownLeader": False, "NextToken": ""}, _index_header(index))


def _job_version_arg(body: dict[str, Any], job_id: str) -> int:
    job_id = split_key(job_id)[1]
    if body.get("JobID", job_id) != job_id:
        raise CodedError(400, "Job ID does not match")
    version = body.get("JobVersion")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise CodedError(400, f"JobVersion: must be a non-negative integer, got {version!r}")
    return version


def _job_plan(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/plan`` (Nomad ``Job.Plan``): what registering the job would do; nothing is
    written (actors.scheduler.dryrun)."""
    from actors.scheduler.dryrun import plan_job

    require(req, "PUT", "POST")
    body = _json_body(req)
    raw = body.get("Job")
    if not isinstance(raw, dict):
        raise CodedError(400, "Job must be specified")
    if raw.get("ID") != split_key(job_id)[1]:
        raise CodedError(400, "Job ID does not match")
    raw["Namespace"] = namespace_for_job(req, body, raw)
    if raw.get("Region") is None or isinstance(raw["Region"], str):  # as registering it here would
        raw["Region"] = _region(api)
    try:
        job = canonical_job(job_in(raw), region=_region(api), limits=_limits(api))
    except JobError as e:
        raise CodedError(400, f"Job validation failed: {e}") from None
    diff = body.get("Diff", False)
    if not isinstance(diff, bool):
        raise CodedError(400, f"Diff: must be a boolean, got {diff!r}")
    now = wall_time()

    def query(st: Any) -> Any:  # Nomad's Job.Plan runs the admission hooks first: the pool must exist
        refused = namespaces.job_error(st.tables, job) or node_pools.job_pool_error(st.tables, job)
        return {"Refused": refused} if refused else plan_job(st, job, diff, now)

    answer = state_query(req, api, ("jobs", "allocs", "nodes", node_pools.TABLE, namespaces.TABLE), query)
    plan = answer.value
    if plan.get("Refused"):
        raise CodedError(400, plan["Refused"])  # as registering the job is refused
    plan["FailedTGAllocs"] = failed_tg_allocs_out(plan.get("FailedTGAllocs"))
    annotations = plan.get("Annotations") or {}
    if annotations.get("PreemptedAllocs"):
        annotations["PreemptedAllocs"] = [alloc_stub(a) for a in annotations["PreemptedAllocs"]]
    for updates in ((plan.get("Annotations") or {}).get("DesiredTGUpdates") or {}).values():
        # Nomad's DesiredUpdates counts these too; the dry run here counts Disconnect and Reconnect.
        for k in ("Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater"):
            updates.setdefault(k, 0)
    return Answer({**plan, "Index": int(dict(answer.headers).get("X-Nomad-Index", "0"))}, answer.headers)


def _alloc_terminal(a: dict[str, Any]) -> bool:
    """Nomad's Allocation.TerminalStatus: stopped or evicted by the server, or done on the client."""
    return a.get("DesiredStatus") in ("stop", "evict") \
        or a.get("ClientStatus") in ("complete", "failed", "lost")


def _scale_status(st: Any, job_id: str) -> Any:
    """Nomad's Job.ScaleStatus: each group's desired count, its allocations (canaries and terminal
    ones left out) and its scaling events, newest first (null when it has none)."""
    job = st.tables["jobs"].get(job_id)
    if job is None:
        return None
    groups = {g["Name"]: {"Desired": g["Count"], "Placed": 0, "Running": 0, "Healthy": 0, "Unhealthy": 0,
                          "Events": scaling.group_events(st.tables, job_id, g["Name"])}
              for g in job["TaskGroups"]}
    for a in st.job_allocs(job_id):
        g = groups.get(a.get("TaskGroup"))
        ds = a.get("DeploymentStatus") or {}
        if g is None or ds.get("Canary") or _alloc_terminal(a):
            continue
        g["Placed"] += 1
        g["Running"] += a.get("ClientStatus") == "running"
        if ds.get("Healthy") is True:
            g["Healthy"] += 1
        elif ds.get("Healthy") is False:
            g["Unhealthy"] += 1
    return {"JobID": job["ID"], "Namespace": job.get("Namespace", "default"),
            "JobCreateIndex": job.get("CreateIndex", 0), "JobModifyIndex": job.get("ModifyIndex", 0),
            "JobStopped": bool(job.get("Stop")), "TaskGroups": groups}


def _job_scale(req: Request, api: Api, job_id: str) -> Any:
    """``/v1/job/<id>/scale``: GET Nomad's JobScaleStatus; PUT/POST Nomad's ScalingRequest
    ``{"Count", "Target": {"Group"}, "Message", "Error", "Meta", "JobModifyIndex", "PolicyOverride"}``.

    With a Count the group is scaled and an event recorded; without one, the event only
    (an autoscaler's report of what it decided not to do, or of its error)."""
    if req.method == "GET":
        return _not_found(state_query(req, api, ("jobs", "allocs", scaling.EVENTS_TABLE),
                                      lambda st: _scale_status(st, job_id), scoped=True), "job not found")
    require(req, "PUT", "POST")
    body = _json_body(req)
    target = body.get("Target") or {}
    if not isinstance(target, dict) or not all(isinstance(v, str) for v in target.values()):
        raise CodedError(400, "Target: must be an object of strings")
    if target.get("Job", "") not in ("", split_key(job_id)[1]):
        raise CodedError(400, "job ID in payload did not match URL")
    namespace = request_namespace(req)
    if target.get("Namespace", "") not in ("", namespace):
        raise CodedError(400, "namespace in payload did not match header")
    group = target.get("Group", "")
    if not group:
        raise CodedError(400, "missing task group name for scaling action")
    count, message, error = body.get("Count"), body.get("Message"), body.get("Error", False)
    meta, modify_index = body.get("Meta"), body.get("JobModifyIndex", 0)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise CodedError(400, f"Count: must be an integer, got {count!r}")
    if message is not None and not isinstance(message, str):
        raise CodedError(400, f"Message: must be a string, got {message!r}")
    if not isinstance(error, bool):
        raise CodedError(400, f"Error: must be a boolean, got {error!r}")
    if meta is not None and not isinstance(meta, dict):
        raise CodedError(400, "Meta: must be an object")
    if modify_index is None:
        modify_index = 0
    if not isinstance(modify_index, int) or isinstance(modify_index, bool) or modify_index < 0:
        raise CodedError(400, f"JobModifyIndex: must be a non-negative integer, got {modify_index!r}")
    if count is not None:  # Nomad's JobScaleRequest.Validate
        if count < 0:
            raise CodedError(400, "scaling action count can't be negative")
        if error:
            raise CodedError(400, "scaling action should not contain count if error is true")
    event = {"Message": message or "", "Error": error, "Meta": meta or None}
    try:
        index, r = _write(api, "job_scale", **_job_cmd(job_id), group=group, count=count, policy_bounds=True,
                          event=event, job_modify_index=modify_index, rejectable=_rejectable(req, api),
                          max_count=_limits(api).max_count, always_new_version=True)
    except CodedError as e:
        # Nomad's Job.Scale codes its refusals 400, but a JobModifyIndex conflict is a plain error: 500.
        if e.code == 500 and not e.message.startswith("Enforcing job modify index"):
            raise CodedError(400, e.message) from None
        raise
    return _job_register_reply(index, r)


def _job_evaluate(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/evaluate`` (Nomad ``Job.Evaluate``): schedule the job again as it is."""
    require(req, "PUT", "POST")
    body = read_body(req)
    force = False
    if body.strip():  # Nomad's: no payload is allowed (the job of the path); else a JobEvaluateRequest
        args = _json_body(req, body)
        if not args.get("JobID"):
            raise CodedError(400, "Job ID must be specified")
        if args["JobID"] != split_key(job_id)[1]:
            raise CodedError(400, "JobID not same as job name")
        opts = args.get("EvalOptions") or {}
        if not isinstance(opts, dict) or not isinstance(opts.get("ForceReschedule", False), bool):
            raise CodedError(400, "EvalOptions: must be an object with a boolean ForceReschedule")
        force = opts.get("ForceReschedule", False)
    index, r = _write(api, "job_evaluate", **_job_cmd(job_id), force_reschedule=force)
    return _job_register_reply(index, r)


def _job_stable(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/stable`` (Nomad ``Job.Stable``): ``{"JobVersion", "Stable"}``."""
    require(req, "PUT", "POST")
    body = _json_body(req)
    version = _job_version_arg(body, job_id)
    stable = body.get("Stable", False)
    if not isinstance(stable, bool):
        raise CodedError(400, f"Stable: must be a boolean, got {stable!r}")
    index, _ = _write(api, "job_stability", **_job_cmd(job_id), version=version, stable=stable)
    return Answer({"Index": index}, _index_header(index))


def _job_revert(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/revert`` (Nomad ``Job.Revert``): an earlier version's spec, as a new version."""
    require(req, "PUT", "POST")
    body = _json_body(req)
    version = _job_version_arg(body, job_id)
    prior = body.get("EnforcePriorVersion")
    if prior is not None and (not isinstance(prior, int) or isinstance(prior, bool) or prior < 0):
        raise CodedError(400, f"EnforcePriorVersion: must be a non-negative integer, got {prior!r}")
    index, r = _write(api, "job_revert", **_job_cmd(job_id), version=version, enforce_prior_version=prior,
                      rejectable=_rejectable(req, api))
    return _job_register_reply(index, r)


def _job_tag(req: Request, api: Api, job_id: str, name: str) -> Any:
    """``PUT|DELETE /v1/job/<id>/versions/<name>/tag`` (Nomad ``Job.TagVersion``): name a version
    (``{"Version": N, "Latest": bool, "Description": "..."}``) or take the name off."""
    require(req, "PUT", "POST", "DELETE")
    tag = None
    version, latest = 0, False
    if req.method != "DELETE":
        body = _json_body(req)
        version, latest, description = body.get("Version", 0), body.get("Latest", False), \
            body.get("Description", "")
        if version is None:
            version = 0
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CodedError(400, f"Version: must be a non-negative integer, got {version!r}")
        if not isinstance(latest, bool):
            raise CodedError(400, f"Latest: must be a boolean, got {latest!r}")
        if not isinstance(description, str):
            raise CodedError(400, f"Description: must be a string, got {description!r}")
        if latest and version > 0:
            raise CodedError(400, f"version must be zero when tagging latest, got: {version}")
        tag = {"Name": name, "Description": description, "TaggedTime": int(wall_time() * 1e9)}
    index, r = _write(api, "job_version_tag", **_job_cmd(job_id), name=name, tag=tag, version=version,
                      latest=latest)
    out = r.get("tag") or {"Name": "", "Description": "", "TaggedTime": 0}
    return Answer({**out, "Index": index, "LastContact": 0, "KnownLeader": False, "NextToken": ""},
                  _index_header(index))


def _job_exists(req: Request, api: Api, job_id: str) -> None:
    if _one(req, api, "jobs", job_id, lambda j: True, "job not found").value is None:
        raise CodedError(404, "job not found")


def _job_dispatch(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/dispatch`` (Nomad ``Job.Dispatch``): ``{"Payload": base64, "Meta": {...}}``."""
    import base64
    import binascii

    require(req, "PUT", "POST")
    raw = read_body(req)
    body = _json_body(req, raw) if raw.strip() else {}
    payload = body.get("Payload") or ""
    if not isinstance(payload, str):
        raise CodedError(400, "Payload: must be base64 text")
    try:
        size = len(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise CodedError(400, "Payload: not valid base64") from None
    if size > DISPATCH_PAYLOAD_MAX_BYTES:  # refused before it reaches the Raft log
        raise CodedError(400, f"Payload exceeds maximum size; {size} > {DISPATCH_PAYLOAD_MAX_BYTES}")
    meta = body.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CodedError(400, "Meta: must be an object of strings")
    # Nomad's IdPrefixTemplate (put in the child's ID), Priority (the child's; 0: the parent's) and
    # ?idempotency_token= (a retried dispatch returns the child the first one made).
    prefix, priority = body.get("IdPrefixTemplate") or "", body.get("Priority") or 0
    if not isinstance(prefix, str):
        raise CodedError(400, "IdPrefixTemplate: must be a string")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise CodedError(400, f"Priority: must be an integer, got {priority!r}")
    max_priority = _limits(api).max_priority
    if priority and not 1 <= priority <= max_priority:
        raise CodedError(400, f"dispatch job priority must be between [1, {max_priority}]")
    extra = {k: v for k, v in (("id_prefix_template", prefix), ("priority", priority),
                               ("idempotency_token", req.query.get("idempotency_token", [""])[0])) if v}
    try:
        index, r = _write(api, "job_dispatch", **_job_cmd(job_id), payload=payload, meta=meta,
                          rejectable=_rejectable(req, api), **extra)
    except CodedError as e:
        if e.code == 500:  # the job refused the dispatch (its rules): the caller's request is wrong
            raise CodedError(400, e.message) from None
        raise
    return Answer({"DispatchedJobID": r["DispatchedJobID"], "EvalID": r["EvalID"],
                   "EvalCreateIndex": r["EvalCreateIndex"], "JobCreateIndex": r["JobCreateIndex"],
                   "Index": index}, _index_header(index))


def _job_periodic_force(req: Request, api: Api, job_id: str) -> Any:
    """``PUT /v1/job/<id>/periodic/force`` (Nomad ``Periodic.Force``): launch the periodic job now."""
    require(req, "PUT", "POST")
    now = wall_time()
    try:
        index, r = _write(api, "periodic_launch", **_job_cmd(job_id), launch=now, force=True)
    except CodedError as e:
        if e.code == 500:  # not periodic, stopped or disabled: the request is wrong
            raise CodedError(400, e.message) from None
        raise
    if r.get("skipped"):
        raise CodedError(409, f"not launched: {r['skipped']}")
    return Answer({"EvalID": r["EvalID"], "EvalCreateIndex": r["EvalCreateIndex"], "Index": index},
                  _index_header(index))


# Nomad's jobSpecificRequest matches these suffixes; anything else is the job itself
# (``deployments`` and ``deployment`` are added by actors.http_deployments, ``services`` by
# actors.http_services).
JOB_ACTIONS: dict[str, Callable[[Request, Api, str], Any]] = {
    "allocations": _job_allocations,
    "evaluations": _job_evaluations,
    "summary": _job_summary,
    "versions": _job_versions,
    "submission": _job_submission,
    "evaluate": _job_evaluate,
    "plan": _job_plan,
    "scale": _job_scale,
    "stable": _job_stable,
    "revert": _job_revert,
    "dispatch": _job_dispatch,
    "periodic/force": _job_periodic_force,
}


@route("/v1/job/")
def job_request(req: Request, api: Api) -> Any:
    rest = req.path[len("/v1/job/"):]
    if rest.endswith("/tag"):  # Nomad's: job/<id>/versions/<name>/tag, a job ID without "/"
        parts = rest.split("/")
        if len(parts) != 4 or parts[1] != "versions" or not parts[0] or not parts[2]:
            raise CodedError(404, "invalid job tag endpoint")
        return _job_tag(req, api, job_key(request_namespace(req), parts[0]), urllib.parse.unquote(parts[2]))
    # Nomad's jobSpecificRequest matches action suffixes; the rest is the job ID, which may hold
    # "/" (a dispatched job's "<parent>/dispatch-<time>-<id>").
    for action in sorted(JOB_ACTIONS, key=len, reverse=True):
        if rest.endswith("/" + action) and len(rest) > len(action) + 1:
            # A job is found by namespace and ID (Nomad's JobByID): handlers get its store key.
            return JOB_ACTIONS[action](req, api, job_key(request_namespace(req), rest[:-len(action) - 1]))
    if not rest or rest.endswith("/"):
        raise CodedError(404, "job not found") if req.method == "GET" else CodedError(400, "Invalid job ID")
    return _job_crud(req, api, job_key(request_namespace(req), rest))


@route("/v1/jobs/parse")
def jobs_parse(req: Request, api: Api) -> Any:
    """``PUT /v1/jobs/parse`` (Nomad's): ``{"JobHCL": "...", "Variables": "...", "Canonicalize": bool}`` -> JSON.

    ``Variables`` is a variable file's text (``name = value`` lines), as Nomad's."""
    from runtime.hcl_job import HclJobError, parse_hcl_job

    require(req, "PUT", "POST")
    body = _json_body(req)
    text = body.get("JobHCL")
    if not isinstance(text, str) or not text.strip():
        raise CodedError(400, "Job spec is empty")
    if body.get("HCLv1"):
        raise CodedError(400, "HCLv1 job files are not supported by this agent (HCL2 only)")
    variables = body.get("Variables") or ""  # Nomad's JobsParseRequest.Variables: a variable file's text
    if not isinstance(variables, str):
        raise CodedError(400, "Variables: must be the text of an HCL variable file")
    try:
        # Nomad's parse API is not strict: values for undeclared variables are ignored.
        job = parse_hcl_job(text, var_files=[variables] if variables.strip() else [], strict=False)
    except HclJobError as e:
        raise CodedError(400, f"Failed to parse job: {e}") from None
    if body.get("Canonicalize"):
        try:
            job = canonical_job(job, region=_region(api), limits=_limits(api))
        except JobError as e:
            raise CodedError(400, f"Job validation failed: {e}") from None
    return job


@route("/v1/validate/job")
def validate_job(req: Request, api: Api) -> Any:
    """``PUT /v1/validate/job`` (Nomad ``Job.Validate``): ``{"Job": {...}}`` checked as a registration is.

    Always 200 with what is wrong, as Nomad's: ``ValidationErrors`` (empty
    when the job would be accepted), ``Error`` (them, joined), ``Warnings``
    and ``DriverConfigValidated``.
    """
    require(req, "PUT", "POST")
    body = _json_body(req)
    raw = body.get("Job")
    if not isinstance(raw, dict):
        raise CodedError(400, "Job must be specified")
    errors: list[str] = []
    warnings = ""
    try:
        raw["Namespace"] = namespace_for_job(req, body, raw)
        job = canonical_job(job_in(raw), region=_region(api), limits=_limits(api))
        warnings = _memory_max_warnings(req, api, job)
        if api.env.lookup("raft") is not None:  # Nomad's admission validators: the namespace's checks
            refused = state_query(req, api, (namespaces.TABLE,),
                                  lambda st: namespaces.job_error(st.tables, job)).value
            errors += [refused] if refused else []
    except JobError as e:
        errors.append(str(e))
    return {"DriverConfigValidated": not errors, "ValidationErrors": errors, "Error": "\n".join(errors),
            "Warnings": warnings}


@route("/v1/system/reconcile/summaries")
def reconcile_summaries(req: Request, api: Api) -> Any:
    """``PUT /v1/system/reconcile/summaries``: job summaries here are counted from the allocations on
    every read, so none can drift; the request still needs a leader, as Nomad's does."""
    require(req, "PUT")
    state_query(req, api, ("jobs",), lambda st: None)
    return None


# ---------------------------------------------------------------- allocations and evaluations


def by_id(table: dict[str, Any], prefix: str) -> list[Any]:
    """The records whose ID starts with *prefix*, in ID order (only those are sorted)."""
    if not prefix:
        return [rec for _, rec in sorted(table.items())]
    return [table[i] for i in sorted(i for i in table if i.startswith(prefix))]


@route("/v1/allocations")
def allocations_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = _prefix(req)
    task_states = (req.query.get("task_states") or ["true"])[0].lower() not in ("0", "f", "false")
    resources = query_flag(req, "resources")
    ns, allowed = request_namespace(req), listable(req)

    def stubs(allocs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [alloc_stub(a, task_states=task_states, resources=resources) for a in allocs]

    def query(st: Any) -> list[dict[str, Any]]:
        page = _page(req, st.tables["allocs"], prefix, lambda a: in_namespace(a, ns, allowed), stubs)
        if page is not None:
            return page
        return stubs([a for a in by_id(st.tables["allocs"], prefix) if in_namespace(a, ns, allowed)])
    return apply_list_options(req, state_query(req, api, ("allocs",), query), created=not prefix)


def _page(req: Request, table: dict[str, Any], prefix: str, wanted: Callable[[dict[str, Any]], bool],
          stubs: Callable[[list[Any]], list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """A page of an allocation or evaluation list (created order, or ID order with a prefix): only its
    rows' stubs (actors.http_filter.page_rows); None: every row's is needed."""
    if not list_options_asked(req):
        return None
    rows = [r for i, r in table.items() if i.startswith(prefix) and wanted(r)]
    return page_rows(req, rows, stubs, lambda r: r["ID"], created=not prefix)


# Sub-resources ``/v1/allocation/<id>/<action>`` other modules add: ``handler(req, api, alloc_id)``
# (``services``: actors.http_services).
ALLOC_ACTIONS: dict[str, Callable[[Request, Api, str], Any]] = {}


@route("/v1/allocation/")
def allocation_read(req: Request, api: Api) -> Any:
    alloc_id, _, action = req.path[len("/v1/allocation/"):].partition("/")
    if alloc_id and action == "stop":
        return _alloc_stop(req, api, alloc_id)
    if alloc_id and action in ALLOC_ACTIONS:
        return ALLOC_ACTIONS[action](req, api, alloc_id)
    require(req, "GET")
    if not alloc_id or action:
        raise CodedError(404, "alloc not found")
    return _one(req, api, "allocs", alloc_id, alloc_out, "alloc not found")


def _alloc_stop(req: Request, api: Api, alloc_id: str) -> Any:
    """``PUT /v1/allocation/<id>/stop[?no_shutdown_delay=true]`` (Nomad ``Alloc.Stop``): the allocation
    is stopped and replaced; with ``no_shutdown_delay`` it skips its shutdown_delay."""
    require(req, "PUT", "POST")
    # Nomad's Alloc.Stop sets both (false too); reschedule: a batch allocation is placed again by its
    # reschedule policy.
    index, r = _write(api, "alloc_stop", alloc_id=alloc_id,
                      no_shutdown_delay=query_flag(req, "no_shutdown_delay"), reschedule=query_flag(req, "reschedule"))
    return Answer({"EvalID": r["EvalID"], "Index": index}, _index_header(index))


@route("/v1/evaluations")
def evaluations_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = _prefix(req)
    ns, allowed = request_namespace(req), listable(req)
    # Nomad's FilterJobID and FilterEvalStatus (?job=, ?status=), which a filter expression excludes.
    job_id, status = (req.query.get("job") or [""])[0], (req.query.get("status") or [""])[0]
    if (job_id or status) and (req.query.get("filter") or [""])[0]:
        raise CodedError(400, "Filter expression cannot be used with other filter parameters")
    def wanted(e: dict[str, Any]) -> bool:
        return in_namespace(e, ns, allowed) and (not job_id or e.get("JobID") == job_id) \
            and (not status or e.get("Status") == status)

    def stubs(evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [eval_out(e) for e in evals]

    def query(st: Any) -> list[dict[str, Any]]:
        page = _page(req, st.tables["evals"], prefix, wanted, stubs)
        if page is not None:
            return page
        return stubs([e for e in _evals_in_id_order(st, prefix, job_id, ns) if wanted(e)])
    return apply_list_options(req, state_query(req, api, ("evals",), query), created=not prefix)


def _evals_in_id_order(st: Any, prefix: str, job_id: str, ns: str) -> list[dict[str, Any]]:
    """The evaluations a list may answer with, in ID order: one job's in one namespace (``?job=``) from
    the store's by-job index, not every evaluation kept sorted and then filtered."""
    if job_id and not prefix and ns != "*":
        return st.job_evals(job_key(ns, job_id))
    return by_id(st.tables["evals"], prefix)


@route("/v1/evaluation/")
def evaluation_read(req: Request, api: Api) -> Any:
    require(req, "GET")
    eval_id, _, action = req.path[len("/v1/evaluation/"):].partition("/")
    if action == "allocations" and eval_id:
        return state_query(req, api, ("allocs",), lambda st: [
            alloc_stub(a) for a in _eval_allocs(st, eval_id)], scoped=True)
    if not eval_id or action:
        raise CodedError(404, "eval not found")
    return _one(req, api, "evals", eval_id, eval_out, "eval not found")


def _eval_allocs(st: Any, eval_id: str) -> list[dict[str, Any]]:
    """The allocations *eval_id* placed, in ID order: its job's (the by-job index) while the evaluation
    is kept, else (collected, its allocations may outlive it) from every allocation."""
    ev = st.tables["evals"].get(eval_id)
    allocs = st.job_allocs(key_of(ev)) if ev is not None else by_id(st.tables["allocs"], "")
    return [a for a in allocs if a.get("EvalID") == eval_id]


# ---------------------------------------------------------------- node allocations, drain, eligibility


def node_allocations(req: Request, api: Api, node_id: str) -> Any:
    """``GET /v1/node/<id>/allocations``: full allocations (Nomad ``Node.GetAllocs``: [] if unknown)."""
    require(req, "GET")
    def query(st: Any) -> list[dict[str, Any]]:
        jobs: dict[int, dict[str, Any]] = {}  # one copy of each job version, however many it runs here
        return [alloc_out(a, jobs) for a in st.node_allocs(node_id) if a.get("NodeID") == node_id]
    return apply_list_options(req, state_query(req, api, ("allocs",), query, scoped=True))  # in ID order


def _drain_spec(req: Request) -> tuple[dict[str, Any] | None, bool, dict[str, str]]:
    raw = read_body(req)
    if "enable" in req.query and not raw.strip():
        if not query_flag(req, "enable"):
            return None, False, {}
        return {"Deadline": LEGACY_DRAIN_DEADLINE_NS, "IgnoreSystemJobs": False}, False, {}
    body = _json_body(req, raw)
    spec = body.get("DrainSpec")
    if spec is not None:
        if not isinstance(spec, dict):
            raise CodedError(400, f"DrainSpec: must be an object or null, got {type(spec).__name__}")
        deadline, ignore = spec.get("Deadline", 0), spec.get("IgnoreSystemJobs", False)
        if not isinstance(deadline, int) or isinstance(deadline, bool):
            raise CodedError(400, f"DrainSpec.Deadline: must be an integer of nanoseconds, got {deadline!r}")
        if not isinstance(ignore, bool):
            raise CodedError(400, f"DrainSpec.IgnoreSystemJobs: must be a boolean, got {ignore!r}")
        spec = {"Deadline": deadline, "IgnoreSystemJobs": ignore}
    mark = body.get("MarkEligible", False)
    if not isinstance(mark, bool):
        raise CodedError(400, f"MarkEligible: must be a boolean, got {mark!r}")
    meta = body.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CodedError(400, "Meta: must be an object of strings")
    return spec, mark, meta


def _drain_accessor(req: Request, api: Api) -> str:
    """Who changed the drain, as Nomad records it in LastDrain.AccessorID (its AuthenticatedIdentity:
    ``token:<accessor ID>``); empty with ACLs disabled or for the anonymous token."""
    if not api.ctx.acl_enabled:
        return ""
    from actors.http_acl import resolve

    token = resolve(req, api)[0]
    accessor = (token or {}).get("AccessorID") or ""
    return f"token:{accessor}" if accessor else ""


def node_drain(req: Request, api: Api, node_id: str) -> Any:
    """``PUT /v1/node/<id>/drain`` (Nomad ``Node.UpdateDrain``; NOMAD.md §5.1)."""
    require(req, "PUT", "POST")
    spec, mark, meta = _drain_spec(req)
    # keep_meta: what Nomad does with the drain's metadata on an update and a cancel (an older entry,
    # without it, applies as it did).
    index, r = _write(api, "node_update_drain", node_id=node_id, drain_spec=spec, mark_eligible=mark,
                      meta=meta, pool_evals=True, keep_meta=True, accessor_id=_drain_accessor(req, api))
    return _node_write_reply(index, r)


def node_eligibility(req: Request, api: Api, node_id: str) -> Any:
    """``PUT /v1/node/<id>/eligibility`` (Nomad ``Node.UpdateEligibility``)."""
    require(req, "PUT", "POST")
    elig = _json_body(req).get("Eligibility")
    if elig not in ELIGIBILITIES:
        raise CodedError(400, f"invalid scheduling eligibility {elig!r}: must be eligible or ineligible")
    index, r = _write(api, "node_update_eligibility", node_id=node_id, eligibility=elig, pool_evals=True)
    return _node_write_reply(index, r)


def node_purge(req: Request, api: Api, node_id: str) -> Any:
    """``PUT /v1/node/<id>/purge`` (Nomad ``Node.Deregister``).

    The leader's node endpoint deletes the node with node-update evaluations
    for its jobs and forgets its heartbeat timer; a client that is still
    running registers again on its next heartbeat, as with Nomad.
    """
    require(req, "PUT", "POST")
    ref = api.env.lookup(ENDPOINT)
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")

    def attempt() -> tuple[bool, Any]:
        fut = api.env.make_future()
        ref.tell(PurgeNode(node_id, fut))
        try:
            r = fut.get(timeout=PURGE_WAIT_S)
        except pykka.Timeout:
            raise CodedError(500, "node purge did not finish in time") from None
        return not r.ok and r.error == ERR_NO_LEADER, r

    _, r = hold_for_leader(api, attempt)  # held for a leader as Nomad's Node.Deregister RPC is
    if not r.ok:
        raise CodedError(404 if r.error == ERR_NODE_NOT_FOUND else 500, r.error)
    return _node_write_reply(r.index, {"EvalIDs": list(r.eval_ids), "NodeModifyIndex": r.index})


def node_evaluate(req: Request, api: Api, node_id: str) -> Any:
    """``PUT /v1/node/<id>/evaluate`` (Nomad ``Node.Evaluate``): re-evaluate every job on the node."""
    require(req, "PUT", "POST")
    index, r = _write(api, "node_evaluate", node_id=node_id, pool_evals=True)
    return _node_write_reply(index, r)


def _node_write_reply(index: int, r: dict[str, Any]) -> Answer:
    evals = list(r.get("EvalIDs") or [])
    return Answer({"NodeModifyIndex": r.get("NodeModifyIndex", index), "EvalIDs": evals,
                   "EvalCreateIndex": index if evals else 0, "Index": index}, _index_header(index))


NODE_ACTIONS.update(allocations=node_allocations, drain=node_drain, eligibility=node_eligibility,
                    purge=node_purge, evaluate=node_evaluate)

# The deployment endpoints register on JOB_ACTIONS too: imported here, once the
# names they take from this module exist, whichever of the two is imported first.
import actors.http_deployments  # noqa: E402,F401
import actors.http_eval_delete  # noqa: E402,F401  (wraps /v1/evaluations for DELETE, adds /count)
import actors.http_services  # noqa: E402,F401  (services: registers on JOB_ACTIONS and ALLOC_ACTIONS)
import actors.http_job_actions  # noqa: E402,F401  (job actions: registers on JOB_ACTIONS)
