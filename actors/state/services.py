"""Service registrations: Nomad's native service discovery (``provider = "nomad"``).

A job's ``service`` blocks (group or task level) name what an allocation
offers; each is registered under Nomad's ID --
``_nomad-task-<alloc>-<task>-<name>-<port label>``, where a group's services
take ``group-<group>`` for the task -- with the address and
port its ``PortLabel`` names (and its tags: its ``CanaryTags`` instead while
the allocation is a canary its deployment has not promoted; the promotion's
write re-registers it with the normal tags).  As Nomad's client hooks do, a
group's services are registered while its client runs the allocation (desired
``run``; client status ``running``, or ``pending`` once the client has reported
task states: Nomad's group service hook registers before the tasks start and
keeps them through a task's restarts), and a task's services while that task
runs (Nomad's service hook: registered after the task starts, removed when it
exits -- also between restarts -- or is killed); everything goes when the
allocation is stopped, lost, fails, completes or is collected.

Where Nomad's client upserts and deletes registrations over RPC as its
tasks start and stop, here every server derives them from the allocation
writes it applies (:func:`alloc_written`): the same registrations exist for
exactly the time the servers hold the allocation running, a client never
has to retry a registration it could not deliver, and a node that goes
down takes its registrations with it at the write that marks its
allocations lost.  An operator may delete one (``DELETE
/v1/service/<name>/<id>``, :func:`op_delete`); it comes back only with the
allocation's next start.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

TABLE = "service_registrations"
_VAR = re.compile(r"\$\{([^}]+)\}")


def rendezvous(regs: list[dict[str, Any]], count: int, key: str) -> list[dict[str, Any]]:
    """The *count* registrations *key* ranks first (rendezvous hashing): Nomad's ``choose``, as the
    HTTP API's ``?choose=<n>|<key>`` and a template's ``nomadService <n> <key> <name>`` use it."""
    def rank(r: dict[str, Any]) -> str:
        return hashlib.sha256(f"{key}\x00{r['ID']}".encode()).hexdigest()
    return sorted(regs, key=rank)[:count]


def _running(a: dict[str, Any] | None) -> bool:
    return a is not None and a.get("DesiredStatus") == "run" and a.get("ClientStatus") == "running"


def active_owners(alloc: dict[str, Any] | None) -> frozenset[str]:
    """The owners (``group-<group>``, or a task's name) whose services *alloc* has registered now: the
    group's while its client runs it (running, or pending with task states: started, a task perhaps
    restarting), a task's while that task runs (a record without the task's state: while the
    allocation runs)."""
    if alloc is None or alloc.get("DesiredStatus") != "run":
        return frozenset()
    status, states = alloc.get("ClientStatus"), alloc.get("TaskStates") or {}
    if not (status == "running" or (status == "pending" and states)):
        return frozenset()
    out = {f"group-{alloc.get('TaskGroup', '')}"}
    for task, state in states.items():
        if (state or {}).get("State") == "running":
            out.add(task)
    if status == "running":  # tasks the record gives no state for run with their allocation
        group = _group(alloc)
        out.update(t["Name"] for t in (group or {}).get("Tasks", ()) if t.get("Name") not in states)
    return frozenset(out)


def _group(alloc: dict[str, Any]) -> dict[str, Any] | None:
    job = alloc.get("Job") or {}
    return next((g for g in job.get("TaskGroups", ()) if g.get("Name") == alloc.get("TaskGroup")), None)


def offers_services(alloc: dict[str, Any]) -> bool:
    """The allocation's group, or one of its tasks, declares a service."""
    group = _group(alloc)
    return group is not None and bool(group.get("Services")
                                      or any(t.get("Services") for t in group.get("Tasks", ())))


def _interpolate(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def is_canary(store: Any, alloc: dict[str, Any]) -> bool:
    """The allocation is a canary of a deployment that has not promoted its group (Nomad clears
    DeploymentStatus.Canary at promotion; here the deployment's Promoted flag says it)."""
    if not (alloc.get("DeploymentStatus") or {}).get("Canary"):
        return False
    d = store.tables.get("deployments", {}).get(alloc.get("DeploymentID") or "")
    return not ((d or {}).get("TaskGroups", {}).get(alloc.get("TaskGroup", "")) or {}).get("Promoted")


def registrations(alloc: dict[str, Any], node: dict[str, Any] | None, *,
                  canary: bool = False, owners: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """The service registrations of *alloc* (its job's group and task services; only *owners*' when
    given), in Nomad's API shape.
    A *canary* registers a service's CanaryTags, when it has some, instead of its Tags (Nomad's nsd
    provider; CanaryMeta, like Meta, is Consul's: a Nomad registration carries no meta)."""
    job = alloc.get("Job") or {}
    group = _group(alloc)
    if group is None or not (group.get("Services") or any(t.get("Services") for t in group.get("Tasks", ()))):
        return []  # most allocations offer no service: nothing to build (offers_services)
    ports = {p["Label"]: p for p in alloc.get("AllocatedPorts") or ()}
    node = node or {}
    node_ip = (node.get("Attributes") or {}).get("unique.network.ip-address") or \
        str(node.get("HTTPAddr", "")).rsplit(":", 1)[0]
    name_index = alloc.get("Name", "").rsplit("[", 1)[-1].rstrip("]")
    base_env = {"JOB": job.get("ID", ""), "TASKGROUP": group["Name"], "NOMAD_JOB_NAME": job.get("Name", ""),
                "NOMAD_JOB_ID": job.get("ID", ""), "NOMAD_GROUP_NAME": group["Name"],
                "NOMAD_NAMESPACE": alloc.get("Namespace", "default"), "NOMAD_ALLOC_ID": alloc["ID"],
                "NOMAD_ALLOC_INDEX": name_index, "NOMAD_DC": node.get("Datacenter", "")}
    all_owners = [(f"group-{group['Name']}", "", group.get("Services") or ())]
    all_owners += [(t["Name"], t["Name"], t.get("Services") or ()) for t in group.get("Tasks", ())]
    out = []
    for owner, task, services in all_owners:
        if owners is not None and owner not in owners:
            continue
        env = {**base_env, **({"TASK": task, "NOMAD_TASK_NAME": task,
                               "BASE": f"{job.get('ID', '')}-{group['Name']}-{task}"} if task else
                              {"BASE": f"{job.get('ID', '')}-{group['Name']}"})}
        for svc in services:
            name = _interpolate(svc["Name"], env)
            label = svc.get("PortLabel", "")
            port, address = 0, node_ip
            if label in ports:
                port = int(ports[label]["Value"])
                address = ports[label].get("HostIP") or node_ip
            elif label.isascii() and label.isdigit():
                port = int(label)
            if svc.get("Address"):
                address = _interpolate(svc["Address"], env)
            out.append({
                "ID": f"_nomad-task-{alloc['ID']}-{owner}-{name}-{label}",
                "ServiceName": name, "Namespace": alloc.get("Namespace", "default"),
                "NodeID": alloc.get("NodeID", ""), "Datacenter": node.get("Datacenter", ""),
                "JobID": alloc.get("JobID", ""), "AllocID": alloc["ID"],
                "Tags": [_interpolate(t, env) for t in
                         ((canary and svc.get("CanaryTags")) or svc.get("Tags") or ())],
                "Address": address, "Port": port})
    return out


def _owners(alloc: dict[str, Any] | None, per_task: bool) -> frozenset[str]:
    """:func:`active_owners`; without *per_task* (client reports written before it): every owner while
    the allocation runs, none otherwise."""
    if per_task:
        return active_owners(alloc)
    if not _running(alloc):
        return frozenset()
    group = _group(alloc) or {}  # (alloc is not None: _running)
    return frozenset([f"group-{group.get('Name', '')}", *(t["Name"] for t in group.get("Tasks", ()))])


def alloc_written(store: Any, index: int, alloc: dict[str, Any], before: dict[str, Any] | None, *,
                  per_task: bool = True) -> None:
    """An allocation write: register the services of the owners (its group, its tasks) that started
    running, deregister those of the owners that stopped."""
    if alloc["ID"] not in store.services_by_alloc and not offers_services(alloc):
        return  # nothing registered and nothing to register (most allocations): the rest would find so
    now, was = _owners(alloc, per_task), _owners(before, per_task)
    restarted = _restarted(alloc, before, now & was) if per_task else frozenset()
    if now == was and not restarted:
        return
    if not now:
        remove_alloc(store, index, alloc["ID"])
        return
    node = store.tables["nodes"].get(alloc.get("NodeID", ""))
    stopped = was - now
    if stopped:
        table, mine = store.tables[TABLE], store.services_by_alloc.get(alloc["ID"], set())
        gone = sorted(r["ID"] for r in registrations(alloc, node, owners=stopped) if r["ID"] in mine)
        for reg_id in gone:
            table.pop(reg_id, None)
            mine.discard(reg_id)
        if gone:
            store._touch(TABLE, index)
    _register(store, index, alloc, node, (now - was) | restarted)


def _restarted(alloc: dict[str, Any], before: dict[str, Any] | None,
               owners: frozenset[str]) -> frozenset[str]:
    """The tasks among *owners* that started again between *before* and *alloc* (a restart quicker than
    its client's reports: running in both): Nomad's service hook registers a task's services again at
    each start, so one an operator deleted is back."""
    old, new = (before or {}).get("TaskStates") or {}, alloc.get("TaskStates") or {}
    return frozenset(task for task in owners if task in new and task in old
                     and (new[task] or {}).get("StartedAt") != (old[task] or {}).get("StartedAt"))


def _register(store: Any, index: int, alloc: dict[str, Any], node: dict[str, Any] | None,
              owners: frozenset[str]) -> None:
    if not owners:
        return
    table = store.tables[TABLE]
    regs = registrations(alloc, node, canary=is_canary(store, alloc), owners=owners)
    for reg in regs:
        old = table.get(reg["ID"])
        table[reg["ID"]] = {**reg, "CreateIndex": old["CreateIndex"] if old else index, "ModifyIndex": index}
        store.services_by_alloc.setdefault(alloc["ID"], set()).add(reg["ID"])
    if regs:
        store._touch(TABLE, index)


def refresh(store: Any, index: int, alloc: dict[str, Any]) -> None:
    """The allocation now runs another version of its job (an in-place update): register anew."""
    owners = active_owners(alloc)
    if not owners:
        return
    node = store.tables["nodes"].get(alloc.get("NodeID", ""))
    regs = registrations(alloc, node, canary=is_canary(store, alloc), owners=owners)
    if not regs and alloc["ID"] not in store.services_by_alloc:
        return
    keep = {r["ID"] for r in regs}
    table, mine = store.tables[TABLE], store.services_by_alloc.get(alloc["ID"], set())
    stale = sorted(mine - keep)  # services the new version renamed or dropped
    for reg_id in stale:
        table.pop(reg_id, None)
        mine.discard(reg_id)
    if stale:
        store._touch(TABLE, index)
    _register(store, index, alloc, node, owners)  # the rest keep their CreateIndex


def promoted(store: Any, index: int, alloc_ids: list[str]) -> None:
    """A deployment promoted these canaries: their registrations take the services' own tags."""
    for alloc_id in alloc_ids:
        alloc = store.tables["allocs"].get(alloc_id)
        if alloc is not None and alloc_id in store.services_by_alloc:
            refresh(store, index, alloc)


def remove_alloc(store: Any, index: int, alloc_id: str) -> None:
    """The allocation's registrations go (it stopped running, or it was collected)."""
    ids = store.services_by_alloc.pop(alloc_id, None)
    if not ids:
        return
    table = store.tables[TABLE]
    for i in sorted(ids):
        table.pop(i, None)
    store._touch(TABLE, index)


def rebuild_index(store: Any) -> None:
    """After a restore: allocation ID -> the IDs of its registrations."""
    out: dict[str, set[str]] = {}
    for reg_id, r in store.tables[TABLE].items():
        out.setdefault(r["AllocID"], set()).add(reg_id)
    store.services_by_alloc = out


def op_delete(store: Any, index: int, cmd: dict[str, Any]) -> Any:
    """``service_delete``: an operator removes one registration (Nomad ``ServiceRegistration.DeleteByID``)."""
    reg_id, name = str(cmd["id"]), str(cmd.get("service_name", ""))
    table = store.tables[TABLE]
    reg = table.get(reg_id)
    if reg is None or (name and reg["ServiceName"] != name):
        return {"ok": False, "error": "service registration not found"}
    del table[reg_id]
    store.services_by_alloc.get(reg["AllocID"], set()).discard(reg_id)
    store._touch(TABLE, index)
    return {"ok": True, "index": index}
