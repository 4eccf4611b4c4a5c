"""The event stream's source: what each applied Raft entry changed, as Nomad's events.

Nomad's state store turns every committed write into events
(``nomad/state/events.go``): each object the write changed in the nodes,
jobs, allocations, evaluations, deployments, service registrations,
variables, node pools and ACL tables becomes one event of that
object's topic, typed by the kind of write (:data:`OP_TYPES`, after Nomad's
``MsgTypeEvents``), and all of one write's events travel together as one
batch at its Raft index.  A write kind Nomad has no event type for makes no
events (a job's stability flag, an operator restore, the test registers).

Each server keeps the newest batches in an :class:`EventBuffer` of
``event_buffer_size`` batches (Nomad's default 100) that
``/v1/event/stream`` reads (:mod:`actors.http_events`).  The buffer is not
replicated state: every server fills its own from the entries it applies,
so any server can serve the stream, and a restarted server starts empty.

A client registering into a pool nobody made creates it in the same write,
so that write's batch has a NodePool event too, typed NodeRegistration, as
Nomad's is.

The store journals which records a write touched (:class:`Table`) and
builds the batch after the write; a payload is a shallow copy of the
store's record taken then, so a later in-place update of the record (an
evaluation unblocked) cannot change an event already made.  Payloads are
put into Nomad's API shapes only when a subscriber reads them
(:func:`event_json`), in the HTTP handler, never in the Raft actor.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

# event_buffer_size: batches kept for subscribers that start from an older
# index or fall behind (Nomad's server.event_buffer_size default).
DEFAULT_EVENT_BUFFER_SIZE = 100
# A live subscriber's unread batches are kept beyond event_buffer_size, up to
# this many: a stream reader stalled longer loses its oldest ones (and is
# told so in the log) rather than growing the server's memory without end.
EVENT_SUBSCRIBER_MAX_LAG = 10_000

TOPICS = ("Node", "Job", "Allocation", "Evaluation", "Deployment", "ACLToken", "ACLPolicy", "ACLRole",
          "ACLAuthMethod", "ACLBindingRule", "NodePool", "Service", "Variable")
# Store table -> the topic of the events its changes make.
TABLE_TOPICS = {"nodes": "Node", "jobs": "Job", "allocs": "Allocation", "evals": "Evaluation",
                "acl_tokens": "ACLToken", "acl_policies": "ACLPolicy", "acl_roles": "ACLRole",
                "acl_auth_methods": "ACLAuthMethod", "acl_binding_rules": "ACLBindingRule",
                "node_pools": "NodePool", "deployments": "Deployment", "service_registrations": "Service",
                "variables": "Variable"}
EVENT_TABLES = tuple(TABLE_TOPICS)

# The store's write kinds -> Nomad's event type (MsgTypeEvents).  A dict
# value types each table's changes differently: one write of ours is several
# of Nomad's (core GC deregisters jobs and nodes; a plan result updates
# evaluations and allocations alike).
OP_TYPES: dict[str, str | dict[str, str]] = {
    "node_register": "NodeRegistration",
    "node_deregister": "NodeDeregistration",
    "node_gc": "NodeDeregistration",
    "node_update_status": "NodeStreamEvent",
    "node_update_drain": "NodeDrain",
    "node_update_eligibility": "NodeEligibility",  # NodeDrain before Nomad's fix (hashicorp/nomad#27858)
    "node_drain_complete": "NodeDrain",
    "node_evaluate": "EvaluationUpdated",
    "job_register": "JobRegistered",
    "job_revert": "JobRegistered",
    "job_dispatch": "JobRegistered",
    "job_scale": "JobRegistered",
    "periodic_launch": "JobRegistered",
    "job_deregister": "JobDeregistered",
    "job_evaluate": "EvaluationUpdated",
    "eval_update": "EvaluationUpdated",
    "plan_apply": "PlanResult",
    "plan_apply_batch": "PlanResult",
    "alloc_client_update": "AllocationUpdated",
    "alloc_client_update_batch": "AllocationUpdated",
    "alloc_migrate": "AllocationUpdateDesiredStatus",
    "alloc_stop": "AllocationUpdateDesiredStatus",
    # Nomad's GC deletes evaluations and allocations without events; jobs go
    # by JobBatchDeregister, nodes by NodeDeregister.
    "core_gc": {"jobs": "JobBatchDeregistered", "nodes": "NodeDeregistration"},
    "acl_token_upsert": "ACLTokenUpserted",
    "acl_token_delete": "ACLTokenDeleted",
    "acl_policy_upsert": "ACLPolicyUpserted",
    "acl_policy_delete": "ACLPolicyDeleted",
    "acl_role_upsert": "ACLRoleUpserted",
    "acl_role_delete": "ACLRoleDeleted",
    "acl_auth_method_upsert": "ACLAuthMethodUpserted",
    "acl_auth_method_delete": "ACLAuthMethodDeleted",
    "acl_binding_rule_upsert": "ACLBindingRuleUpserted",
    "acl_binding_rule_delete": "ACLBindingRuleDeleted",
    # Every variable write is Nomad's VarApplyStateRequest (set, delete, lock acquire and release,
    # the leader's lock expiry); a lock renewal writes only the lease table, so it makes none.
    "var_set": "VariableUpdated",
    "var_delete": "VariableUpdated",
    "var_lock_acquire": "VariableUpdated",
    "var_lock_release": "VariableUpdated",
    "var_lock_expire": "VariableUpdated",
    "node_pool_upsert": "NodePoolUpserted",
    "node_pool_delete": "NodePoolDeleted",
    "deployment_fail": "DeploymentStatusUpdate",
    "deployment_pause": "DeploymentStatusUpdate",
    "deployment_promote": "DeploymentPromotion",
    "deployment_alloc_health": "DeploymentAllocHealth",
    "service_delete": "ServiceDeregistration",
}

# Nomad's VariableMetadata: what a Variable event carries of the variable (its Lock when it holds one).
_VARIABLE_METADATA = ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime", "Lock")

ABSENT: Any = object()  # journal: the key had no record before this write
UNKNOWN: Any = object()  # journal: the record was updated in place (its old value is gone)


class Table(dict):  # type: ignore[type-arg]
    """A store table that notes, while a write is applied, which keys the write touched.

    ``journal`` is the write's ``{(table, key): record before the write}``
    (None between writes: then this is a plain dict with a Python-level
    setter).  Reads are dict's own.
    """

    __slots__ = ("journal", "name")

    def __init__(self, name: str, contents: Any = ()) -> None:
        super().__init__(contents)
        self.name = name
        self.journal: dict[tuple[str, str], Any] | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        j = self.journal
        if j is not None:
            k = (self.name, key)
            if k not in j:
                j[k] = dict.get(self, key, ABSENT)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        j = self.journal
        if j is not None:
            k = (self.name, key)
            if k not in j:
                j[k] = dict.get(self, key, ABSENT)
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        j = self.journal
        if j is not None and key in self:
            k = (self.name, key)
            if k not in j:
                j[k] = dict.__getitem__(self, key)
        return dict.pop(self, key, *default)

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts of the same contents
        return (dict, (dict(self),))


class Event(NamedTuple):  # a tuple: made for every record every write touches, so made cheaply
    topic: str
    type: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...]
    index: int
    payload: dict[str, Any]  # the store's record as of the write (shallow copy); deleted: as it was
    deleted: bool = False  # the write removed the record (a Job event then says so: JobEvent.Deleted)


class Batch(NamedTuple):
    index: int
    events: tuple[Event, ...]


def make_batch(index: int, op: str, journal: dict[tuple[str, str], Any],
               tables: dict[str, dict[str, Any]]) -> Batch | None:
    """The events of the write *op* applied at *index*, from its *journal*; None when it makes none."""
    kind = OP_TYPES.get(op)
    if kind is None or not journal:
        return None
    events = []
    for (table, key), before in journal.items():
        etype = kind.get(table) if isinstance(kind, dict) else kind
        if etype is None:
            continue
        after = tables[table].get(key)
        if after is not None:
            rec = dict(after)
        elif isinstance(before, dict):
            rec = before  # deleted: no one holds it any more, no copy needed
        else:
            continue  # touched but neither there before nor after
        if table == "service_registrations":  # whatever write made it: Nomad types these by what happened
            etype = "ServiceRegistration" if after is not None else "ServiceDeregistration"
        elif table == "variables":
            # Nomad's VariableEvent: the metadata only (never the items: a stream reader may list a
            # path without reading it), keyed by the path, and whether the write deleted it.
            key = rec["Path"]
            rec = {"Metadata": {k: rec[k] for k in _VARIABLE_METADATA if k in rec}, "Deleted": after is None}
        elif table == "jobs":
            key = rec.get("ID", key)  # a job outside default is keyed "<namespace>\0<ID>" in the store
        events.append(_event(TABLE_TOPICS[table], etype, key, rec, index, after is None))
    return Batch(index, tuple(events)) if events else None


def _event(topic: str, etype: str, key: str, rec: dict[str, Any], index: int, deleted: bool = False) -> Event:
    if topic in ("Allocation", "Evaluation"):
        filter_keys: tuple[str, ...] = (rec.get("JobID", ""), rec.get("DeploymentID", ""))
        namespace = rec.get("Namespace", "default")
    elif topic == "Job":
        filter_keys, namespace = (), rec.get("Namespace", "default")
    elif topic == "Deployment":
        filter_keys, namespace = (rec.get("JobID", ""),), rec.get("Namespace", "default")
    elif topic == "Service":
        filter_keys = (rec.get("JobID", ""), rec.get("ServiceName", ""))
        namespace = rec.get("Namespace", "default")
    elif topic == "Variable":
        filter_keys, namespace = (), rec["Metadata"]["Namespace"]
    elif topic == "ACLRole":
        filter_keys, namespace = (rec.get("Name", ""),), ""
    elif topic == "ACLBindingRule":
        filter_keys, namespace = (rec.get("AuthMethod", ""),), ""
    else:
        filter_keys, namespace = (), ""  # nodes and ACL objects belong to no namespace
    return Event(topic, etype, key, namespace, filter_keys, index, rec, deleted)


class EventBuffer:
    """The newest batches, oldest first: *size* of them, and what live subscribers have yet to read.

    Like Nomad's buffer, where a subscriber holds its place in the list, a
    batch a live subscriber has not read yet stays (up to *max_lag*
    batches, which bounds what one stalled subscriber can hold); a
    subscriber tells where it is by asking (:meth:`since` with its id) and
    leaves with :meth:`forget`.
    """

    def __init__(self, size: int = DEFAULT_EVENT_BUFFER_SIZE,
                 max_lag: int = EVENT_SUBSCRIBER_MAX_LAG) -> None:
        if size < 1:
            raise ValueError("event_buffer_size must be at least 1")
        self.size = size
        self.max_lag = max(size, max_lag)
        self._batches: deque[Batch] = deque()
        self.last_index = 0  # the newest batch's index (0: none yet)
        self._cursors: dict[int, int] = {}  # live subscriber -> the next index it reads
        self.dropped_upto = 0  # the newest batch no longer kept (0: none dropped yet)

    def append(self, batch: Batch) -> None:
        batches = self._batches
        batches.append(batch)
        self.last_index = batch.index
        if len(batches) > self.size and not self._cursors:  # nobody reading: keep the newest size
            while len(batches) > self.size:
                self.dropped_upto = batches.popleft().index
        elif len(batches) > self.size:
            oldest_wanted = min(self._cursors.values(), default=batch.index + 1)
            while len(batches) > self.size and (batches[0].index < oldest_wanted
                                                or len(batches) > self.max_lag):
                self.dropped_upto = batches.popleft().index

    def since(self, index: int, subscriber: int | None = None) -> list[Batch]:
        """The batches at *index* or later, oldest first (all kept ones when *index* is older than them)."""
        if subscriber is not None:
            self._cursors[subscriber] = index
        batches = self._batches
        if not batches or batches[-1].index < index:
            return []
        if batches[0].index >= index:
            return list(batches)
        keys = [b.index for b in batches]
        return list(batches)[bisect.bisect_left(keys, index):]

    def first_index(self) -> int:
        """The oldest kept batch's index (0: none kept)."""
        return self._batches[0].index if self._batches else 0

    def reset(self, index: int) -> None:
        """The state was replaced from a snapshot at *index*: what changed up to it made no events,
        so every kept batch goes and every live subscriber is told it lost events (its stream ends,
        as Nomad closes its subscriptions when its state store is abandoned)."""
        self._batches.clear()
        self.dropped_upto = max(self.dropped_upto, index)
        self.last_index = max(self.last_index, index)

    def forget(self, subscriber: int) -> None:
        self._cursors.pop(subscriber, None)

    def __len__(self) -> int:
        return len(self._batches)


# ---------------------------------------------------------------- subscriptions


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a subscriber asked for: ``topics`` maps a topic (or ``*``) to keys (``*``: every key)."""

    topics: tuple[tuple[str, tuple[str, ...]], ...]
    namespace: str = "default"  # "*": every namespace
    # With ACLs, the subscriber's (actors.acl.ACL): a Variable event passes only if it may list
    # the variable's path (Nomad's subscription FilterFn, AllowVariableOperation "list").
    acl: Any = None

    def wants(self, e: Event) -> bool:
        if e.namespace and self.namespace != "*" and e.namespace != self.namespace:
            return False
        if e.topic == "Variable" and self.acl is not None and not self.acl.allow_variable(
                e.namespace, e.key, "list"):
            return False
        for topic, keys in self.topics:
            if topic != "*" and topic != e.topic:
                continue
            for k in keys:
                if k == "*" or k == e.key or k in e.filter_keys:
                    return True
        return False


def parse_topics(raw: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``?topic=`` values (``Topic``, ``Topic:key``, ``*``) as Subscription.topics; ValueError if malformed.

    No value subscribes to everything, as Nomad's ``allTopics``.
    """
    if not raw:
        return (("*", ("*",)),)
    merged: dict[str, list[str]] = {}
    for t in raw:
        parts = t.split(":")
        if len(parts) == 1:
            topic, key = t, "*"
        elif len(parts) == 2:
            topic, key = parts
        else:
            raise ValueError(f"Invalid key value pair for topic, topic: {t}")
        if not topic:
            raise ValueError(f"Invalid key value pair for topic, topic: {t}")
        merged.setdefault(topic, []).append(key or "*")
    return tuple((topic, tuple(keys)) for topic, keys in merged.items())


def event_json(e: Event) -> dict[str, Any]:
    """The event as Nomad's JSON: Topic, Type, Key, Namespace, FilterKeys, Index, Payload."""
    return {"Topic": e.topic, "Type": e.type, "Key": e.key, "Namespace": e.namespace,
            "FilterKeys": list(e.filter_keys) or None, "Index": e.index, "Payload": _payload(e)}


def _payload(e: Event) -> dict[str, Any]:
    # Nomad's payload shapes: the object under its own name, in the API's
    # JSON shape; an allocation without its job (Nomad strips it to keep
    # events small); a node without its secret, a token without its secret.
    from actors.http_acl import policy_out, token_out
    from actors.http_api import _public_node
    from actors.http_jobs import alloc_out, allocated_resources, eval_out, job_out

    rec = e.payload
    if e.topic == "Node":
        return {"Node": _public_node(rec)}
    if e.topic == "Job":  # JobEvent: Deleted (omitempty) for a job the write removed (a purge, GC)
        return {"Job": job_out(rec), "Deleted": True} if e.deleted else {"Job": job_out(rec)}
    if e.topic == "Allocation":
        out = alloc_out({k: v for k, v in rec.items() if k != "Job"})  # the job is not copied only to go
        out["AllocatedResources"] = allocated_resources(rec)
        out["Job"] = None
        return {"Allocation": out}
    if e.topic == "Evaluation":
        return {"Evaluation": eval_out(rec)}
    if e.topic == "ACLToken":
        return {"ACLToken": {**token_out(rec), "SecretID": ""}}
    if e.topic == "ACLPolicy":
        return {"ACLPolicy": policy_out(rec, parsed=False)}
    if e.topic == "NodePool":
        return {"NodePool": dict(rec)}
    if e.topic == "Service":
        return {"Service": dict(rec)}
    if e.topic == "Deployment":
        from actors.http_deployments import deployment_out

        return {"Deployment": deployment_out(rec)}
    if e.topic == "Variable":
        from actors.http_variables import lock_json

        meta = dict(rec["Metadata"])
        if meta.get("Lock"):
            meta["Lock"] = lock_json(meta["Lock"])
        return {"Metadata": meta, "Deleted": rec["Deleted"]}
    if e.topic == "ACLRole":
        from actors.state.acl_ops import role_out

        return {"ACLRole": role_out(rec)}
    if e.topic == "ACLAuthMethod":  # Sanitized, as Nomad's: the OIDC secrets redacted
        from actors.acl_auth import method_out

        return {"AuthMethod": method_out(rec)}
    if e.topic == "ACLBindingRule":
        from actors.acl_auth import rule_out

        return {"ACLBindingRule": rule_out(rec)}
    return {e.topic: dict(rec)}


def frame(index: int, events: list[Event]) -> bytes:
    """One line of the stream: ``{"Index": N, "Events": [...]}`` and a newline (ndjson)."""
    return json.dumps({"Index": index, "Events": [event_json(e) for e in events]},
                      separators=(",", ":")).encode() + b"\n"
