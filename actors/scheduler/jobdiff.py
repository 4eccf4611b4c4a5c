"""Nomad's structured job diff (``nomad/structs/diff.go``) and the plan's annotations of it.

:func:`job_diff` compares two jobs in their API shape and answers Nomad's
``JobDiff``: ``{Type, ID, Fields, Objects, TaskGroups}``, each group a
``TaskGroupDiff`` (``Tasks``, ``Updates``), each task a ``TaskDiff``
(``Annotations``), every nested block an ``ObjectDiff`` ``{Type, Name, Fields,
Objects}`` and every leaf a ``FieldDiff`` ``{Type, Name, Old, New,
Annotations}``; a Type is ``Added``, ``Deleted``, ``Edited`` or ``None``.

As in Nomad:

* the fields of an object are its primitive values, as text (numbers and
  bools as Go prints them, durations in nanoseconds); its string maps are
  flattened to ``Meta[key]``; its nested blocks are objects of their own
  (``Resources``, ``RestartPolicy``, ``EphemeralDisk``, ``Update``, ...); a
  task's ``Config`` is flattened whole (``args[0]``, ``port_map[0][db]``);
* lists of blocks are sets: ``Constraint``, ``Affinity`` and ``Artifact``
  objects are matched by their identity (the constraint's text, the
  artifact's destination) or whole content, networks by content (so only
  Added/Deleted), services by a score of name, port and position, templates
  by destination, checks and secrets by name, ports by label;
* lists of strings (``Datacenters``, a service's ``Tags``) are sets whose
  members are fields named after the list;
* *contextual* (Nomad's plan always asks for it) keeps the unchanged fields
  of an object that changed, as Type ``None`` -- the context of an edit.

The server's own fields (status, indexes, version, submit time) never show.
:func:`annotate` adds what the plan's scheduler run says (Nomad's
``scheduler.Annotate``): each group's ``Updates`` counts, ``forces create`` /
``forces destroy`` on a count change, and each changed task's ``forces
create/destroy update`` or ``forces in-place update``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from actors.scheduler.job import SERVER_OWNED

ADDED, DELETED, EDITED, NONE = "Added", "Deleted", "Edited", "None"
_TYPE_ORDER = {EDITED: 0, ADDED: 1, DELETED: 2, NONE: 3}  # Nomad's DiffType.Less (a reverse sort)

# Go map[string]string fields: flattened into an object's fields as Name[key] (other maps hold blocks).
MAP_FIELDS = frozenset({"Meta", "Env", "CanaryMeta", "TaggedAddresses", "GetterOptions", "GetterHeaders",
                        "Target", "Labels"})
# Job fields Nomad leaves out of the diff (its filter), with the servers' own.
JOB_FILTER = frozenset({"ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex",
                        "ModifyIndex", "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken",
                        "Payload"}) | frozenset(SERVER_OWNED)  # Payload: a []byte, never a field in Nomad
# Group fields that are Go pointers (never primitive fields; ShutdownDelay is added by hand, as Nomad does).
GROUP_FILTER = frozenset({"Name", "ShutdownDelay", "StopAfterClientDisconnect", "MaxClientDisconnect"})

Obj = dict[str, Any]

# The primitive fields of Nomad's structs with Go's zero values: a field the job leaves out is still one
# Nomad diffs (shown unchanged in a contextual diff, or as added with a new block), so it is here too.
_DURATION = 0
ZERO: dict[str, Obj] = {
    "Job": {"Stop": False, "Region": "", "Namespace": "", "ParentID": "", "Name": "", "Type": "",
            "Priority": 0, "AllAtOnce": False, "NodePool": "", "Dispatched": False,
            "DispatchIdempotencyToken": "", "ConsulNamespace": "", "VaultNamespace": ""},
    "TaskGroup": {"Count": 0, "PreventRescheduleOnLost": False},
    "Task": {"Driver": "", "User": "", "KillTimeout": _DURATION, "Leader": False, "ShutdownDelay": _DURATION,
             "KillSignal": "", "Kind": ""},
    "Resources": {"CPU": 0, "Cores": 0, "MemoryMB": 0, "MemoryMaxMB": 0, "DiskMB": 0, "IOPS": 0,
                  "SecretsMB": 0},
    "EphemeralDisk": {"Sticky": False, "SizeMB": 0, "Migrate": False},
    "RestartPolicy": {"Attempts": 0, "Interval": _DURATION, "Delay": _DURATION, "Mode": "",
                      "RenderTemplates": False},
    "ReschedulePolicy": {"Attempts": 0, "Interval": _DURATION, "Delay": _DURATION, "DelayFunction": "",
                         "MaxDelay": _DURATION, "Unlimited": False},
    "Migrate": {"MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": _DURATION,
                "HealthyDeadline": _DURATION},
    "Update": {"MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": _DURATION, "HealthyDeadline": _DURATION,
               "ProgressDeadline": _DURATION, "AutoRevert": False, "AutoPromote": False, "Canary": 0},
    "LogConfig": {"MaxFiles": 0, "MaxFileSizeMB": 0, "Disabled": False},
    "Template": {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "", "ChangeMode": "", "ChangeSignal": "",
                 "Once": False, "Splay": _DURATION, "Perms": "", "LeftDelim": "", "RightDelim": "",
                 "Envvars": False, "VaultGrace": _DURATION, "ErrMissingKey": False},
    "Artifact": {"GetterSource": "", "GetterMode": "", "GetterInsecure": False, "RelativeDest": "",
                 "Chown": False},
    "Static Port": {"Label": "", "Value": 0, "To": 0, "HostNetwork": "", "IgnoreCollision": False},
    "Dynamic Port": {"Label": "", "To": 0, "HostNetwork": ""},
    "Network": {"Mode": "", "Hostname": ""},
    "Periodic": {"Enabled": False, "Spec": "", "SpecType": "", "ProhibitOverlap": False, "TimeZone": ""},
    "Constraint": {"LTarget": "", "RTarget": "", "Operand": ""},
    "Affinity": {"LTarget": "", "RTarget": "", "Operand": "", "Weight": 0},
    "ParameterizedJob": {"Payload": ""},
    "DispatchPayload": {"File": ""},
    "CheckRestart": {"Limit": 0, "Grace": _DURATION, "IgnoreWarnings": False},
}


def _zeroed(kind: str, obj: Obj | None) -> Obj | None:
    """*obj* with the Go zero value of each primitive field of Nomad's struct *kind* it leaves out."""
    return None if obj is None else {**ZERO.get(kind, {}), **obj}


# ------------------------------------------------------------------ flattening (Nomad's helper/flatmap)
def text(v: Any) -> str:
    """A primitive value as Go's ``%v`` prints it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    return str(v)


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def primitive_flat(obj: Obj | None, skip: frozenset[str] | tuple[str, ...] = ()) -> dict[str, str] | None:
    """An object's primitive fields (``flatmap.Flatten(obj, filter, true)``): scalars and string maps."""
    if obj is None:
        return None
    out: dict[str, str] = {}
    for k, v in obj.items():
        if k in skip:
            continue
        if isinstance(v, dict):
            if k in MAP_FIELDS:
                out.update({f"{k}[{mk}]": text(mv) for mk, mv in v.items() if _scalar(mv)})
        elif _scalar(v):
            out[k] = text(v)
    for f in skip:  # a filter may name a map entry ("Target[Job]")
        out.pop(f, None)
    return out


def full_flat(obj: Any) -> dict[str, str] | None:
    """Everything, nested: ``flatmap.Flatten(obj, nil, false)`` of a map (``args[0]``, ``a[b][0]``)."""
    if obj is None:
        return None
    out: dict[str, str] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), sub)
        elif isinstance(v, list):
            for i, sub in enumerate(v):
                walk(f"{prefix}[{i}]", sub)
        elif v is None:
            out[prefix] = "nil"
        else:
            out[prefix] = text(v)
    walk("", obj)
    return out


# ------------------------------------------------------------------ fields and objects
def _field(old: str, new: str, name: str, contextual: bool) -> Obj | None:
    if old == new:
        kind = NONE
        if not contextual:
            return None
    else:
        kind = ADDED if old == "" else DELETED if new == "" else EDITED
    return {"Type": kind, "Name": name, "Old": "" if kind == ADDED else old,
            "New": "" if kind == DELETED else new, "Annotations": None}


def field_diffs(old: dict[str, str] | None, new: dict[str, str] | None, contextual: bool) -> list[Obj]:
    old, new = old or {}, new or {}
    out = [d for k in set(old) | set(new) if (d := _field(old.get(k, ""), new.get(k, ""), k, contextual))]
    return sorted(out, key=lambda f: (f["Name"], f["Old"], f["New"]))


def _object_key(o: Obj) -> tuple[Any, ...]:
    return (o["Name"], _TYPE_ORDER[o["Type"]], len(o["Fields"] or ()), len(o["Objects"] or ()),
            [(f["Name"], f["Old"], f["New"]) for f in o["Fields"] or ()])


def sort_objects(objs: list[Obj]) -> list[Obj]:
    return sorted(objs, key=_object_key)


def _obj(name: str, kind: str, fields: list[Obj], objects: list[Obj]) -> Obj:
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": objects}


def _kind_from_fields(fields: list[Obj]) -> str | None:
    kinds = {f["Type"] for f in fields}
    if EDITED in kinds or {ADDED, DELETED} <= kinds:
        return EDITED
    return ADDED if ADDED in kinds else DELETED if DELETED in kinds else None


def primitive_object_diff(old: Obj | None, new: Obj | None, skip: tuple[str, ...], name: str,
                          contextual: bool) -> Obj | None:
    """Nomad's primitiveObjectDiff: the primitive fields of one block; nothing when none changed."""
    fields = field_diffs(primitive_flat(_zeroed(name, old), skip), primitive_flat(_zeroed(name, new), skip),
                         contextual)
    kind = _kind_from_fields(fields)
    return _obj(name, kind, fields, []) if kind else None


def primitive_object_set_diff(old: list[Obj] | None, new: list[Obj] | None, skip: tuple[str, ...], name: str,
                              contextual: bool, ident: Callable[[Obj], str] | None = None) -> list[Obj]:
    """Nomad's primitiveObjectSetDiff: blocks matched by identity (or whole content) and diffed by fields."""
    def keyed(objs: list[Obj] | None) -> dict[str, Obj]:
        out = {}
        for o in objs or ():
            k = ident(o) if ident else ""
            out[k or json.dumps(o, sort_keys=True, default=str)] = o
        return out
    olds, news = keyed(old), keyed(new)
    diffs = [d for k in list(olds) + [k for k in news if k not in olds]
             if (d := primitive_object_diff(olds.get(k), news.get(k), skip, name, contextual))]
    return sort_objects(diffs)


def string_set_diff(old: list[Any] | None, new: list[Any] | None, name: str, contextual: bool) -> Obj | None:
    """Nomad's stringSetDiff: each member a field named after the list."""
    o, n = {text(x) for x in old or ()}, {text(x) for x in new or ()}
    if o == n and not contextual:
        return None
    fields = [f for k in o if (f := _field(k, "" if k not in n else k, name, contextual))]
    fields += [f for k in n - o if (f := _field("", k, name, contextual))]
    fields.sort(key=lambda f: (f["Name"], f["Old"], f["New"]))
    added, removed = bool(n - o), bool(o - n)
    if added and removed:
        kind = EDITED
    elif added or removed:
        kind = ADDED if added else DELETED
    elif not fields:
        return None
    else:
        kind = NONE
    return _obj(name, kind, fields, [])


Children = Callable[[Obj, Obj, bool], list[Obj]]


def block_diff(old: Obj | None, new: Obj | None, name: str, contextual: bool, skip: tuple[str, ...] = (),
               children: Children | None = None, full: bool = False) -> Obj | None:
    """The common shape of Nomad's per-block diffs (serviceDiff, templateDiff, Resources.Diff, ...):
    nothing when equal, else Added / Deleted / Edited with its fields and its own nested objects."""
    if old == new:
        return None
    kind = ADDED if old is None else DELETED if new is None else EDITED
    flat = (lambda o: {k: v for k, v in (full_flat(o) or {}).items() if k not in skip} if o is not None
            else None) if full else (lambda o: primitive_flat(_zeroed(name, o), skip))
    fields = field_diffs(flat(old), flat(new), contextual)
    objects = children(old or {}, new or {}, contextual) if children else []
    return _obj(name, kind, fields, objects)


def _keyed_diffs(old: list[Obj] | None, new: list[Obj] | None, key: str,
                 one: Callable[[Obj | None, Obj | None], Obj | None]) -> list[Obj]:
    olds = {o.get(key): o for o in old or ()}
    news = {n.get(key): n for n in new or ()}
    diffs = [d for k, o in olds.items() if (d := one(o, news.get(k)))]
    diffs += [d for k, n in news.items() if k not in olds and (d := one(None, n))]
    return sort_objects(diffs)


def _indexed_diffs(old: list[Obj] | None, new: list[Obj] | None,
                   one: Callable[[Obj | None, Obj | None], Obj | None]) -> list[Obj]:
    old, new = old or [], new or []
    pairs = [(old[i] if i < len(old) else None, new[i] if i < len(new) else None)
             for i in range(max(len(old), len(new)))]
    return sort_objects([d for o, n in pairs if (d := one(o, n))])


def _one(obj: Obj | None) -> list[Obj]:
    return [obj] if obj else []


def _strings(key: str) -> Children:
    """The children of a block that are one string set, *key*."""
    return lambda o, n, ctx: _one(string_set_diff(o.get(key), n.get(key), key, ctx))


# ------------------------------------------------------------------ the blocks Nomad diffs
def constraint_id(c: Obj) -> str:
    return f"{c.get('LTarget', '')} {c.get('Operand', '')} {c.get('RTarget', '')}"


def affinity_id(a: Obj) -> str:
    return f"{a.get('LTarget', '')} {a.get('Operand', '')} {a.get('RTarget', '')} {a.get('Weight', 0)}"


def _placement(old: Obj, new: Obj, contextual: bool) -> list[Obj]:
    return (primitive_object_set_diff(old.get("Constraints"), new.get("Constraints"), ("str",), "Constraint",
                                      contextual, constraint_id)
            + primitive_object_set_diff(old.get("Affinities"), new.get("Affinities"), ("str",), "Affinity",
                                        contextual, affinity_id))


def _port_diffs(old: list[Obj] | None, new: list[Obj] | None, dynamic: bool, contextual: bool) -> list[Obj]:
    skip = ("Value", "IgnoreCollision") if dynamic else ()
    name = "Dynamic Port" if dynamic else "Static Port"
    return _keyed_diffs(old, new, "Label", lambda o, n: primitive_object_diff(o, n, skip, name, contextual))


def _dns_flat(d: Obj | None) -> dict[str, str] | None:
    if d is None:
        return None
    return {k: ",".join(d[k]) for k in ("Servers", "Searches", "Options") if d.get(k)}


def network_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        out = _port_diffs(o.get("ReservedPorts"), n.get("ReservedPorts"), False, ctx)
        out += _port_diffs(o.get("DynamicPorts"), n.get("DynamicPorts"), True, ctx)
        if o.get("DNS") != n.get("DNS"):
            kind = ADDED if o.get("DNS") is None else DELETED if n.get("DNS") is None else EDITED
            fields = field_diffs(_dns_flat(o.get("DNS")), _dns_flat(n.get("DNS")), ctx)
            out.append(_obj("DNS", kind, fields, []))
        return out
    return block_diff(old, new, "Network", contextual, ("Device", "CIDR", "IP", "MBits"), children)


def network_diffs(old: list[Obj] | None, new: list[Obj] | None, contextual: bool) -> list[Obj]:
    """Networks are a set by content: a changed network is the old one Deleted and the new one Added."""
    def keyed(ns: list[Obj] | None) -> dict[str, Obj]:
        return {json.dumps(n, sort_keys=True, default=str): n for n in ns or ()}
    olds, news = keyed(old), keyed(new)
    diffs = [d for k, o in olds.items() if k not in news and (d := network_diff(o, None, contextual))]
    diffs += [d for k, n in news.items() if k not in olds and (d := network_diff(None, n, contextual))]
    return sort_objects(diffs)


def resources_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        out = network_diffs(o.get("Networks"), n.get("Networks"), ctx)
        out += _keyed_diffs(o.get("Devices"), n.get("Devices"), "Name",
                            lambda a, b: block_diff(a, b, "Device", ctx))
        return out + _one(block_diff(o.get("NUMA"), n.get("NUMA"), "NUMA", ctx))
    return block_diff(old, new, "Resources", contextual, children=children)


def check_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        oh, nh = o.get("Header") or None, n.get("Header") or None
        return (_one(block_diff(oh, nh, "Header", ctx, full=True))
                + _one(block_diff(o.get("CheckRestart"), n.get("CheckRestart"), "CheckRestart", ctx)))
    return block_diff(old, new, "Check", contextual, children=children)


def identity_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    return block_diff(old, new, "Identity", contextual, children=lambda o, n, ctx: _one(
        string_set_diff(o.get("Audience"), n.get("Audience"), "Audience", ctx)))


def service_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        out = _one(string_set_diff(o.get("CanaryTags"), n.get("CanaryTags"), "CanaryTags", ctx))
        out += _one(string_set_diff(o.get("Tags"), n.get("Tags"), "Tags", ctx))
        out += _keyed_diffs(o.get("Checks"), n.get("Checks"), "Name", lambda a, b: check_diff(a, b, ctx))
        out += _one(block_diff(o.get("Connect"), n.get("Connect"), "ConsulConnect", ctx))
        out += _one(identity_diff(o.get("Identity"), n.get("Identity"), ctx))
        return out + _one(_weights_diff(o.get("Weights"), n.get("Weights"), ctx))
    return block_diff(old, new, "Service", contextual, children=children)


def _weights_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    """A service's weights: only the ones set (above zero) are fields."""
    if old == new:
        return None

    def flat(w: Obj | None) -> dict[str, str] | None:
        return None if w is None else {k: text(w[k]) for k in ("Passing", "Warning") if w.get(k, 0) > 0}
    kind = ADDED if old is None else DELETED if new is None else EDITED
    return _obj("Weights", kind, field_diffs(flat(old), flat(new), contextual), [])


def _match(items: list[Obj], matched: list[int], score: Callable[[int, Obj], int], threshold: int) -> int:
    best, index = 0, -1
    for i, item in enumerate(items):
        if matched[i] >= 0:
            continue
        s = score(i, item)
        if s > threshold and s > best:
            best, index = s, i
    return index


def _matched_diffs(old: list[Obj] | None, new: list[Obj] | None,
                   find: Callable[[int, Obj, list[Obj], list[int]], int],
                   one: Callable[[Obj | None, Obj | None], Obj | None]) -> list[Obj]:
    """Nomad's serviceDiffs / templateDiffs: one-to-one when both have one, else each old one matched."""
    old, new = old or [], new or []
    if len(old) == 1 and len(new) == 1:
        return _one(one(old[0], new[0]))
    new_matches = [-1] * len(new)
    diffs = []
    for i, o in enumerate(old):
        j = find(i, o, new, new_matches)
        if j < 0:
            diffs += _one(one(o, None))
            continue
        new_matches[j] = i
        diffs += _one(one(o, new[j]))
    diffs += [d for j, m in enumerate(new_matches) if m == -1 and (d := one(None, new[j]))]
    return sort_objects(diffs)


def service_diffs(old: list[Obj] | None, new: list[Obj] | None, contextual: bool) -> list[Obj]:
    def find(i: int, svc: Obj, news: list[Obj], matched: list[int]) -> int:
        return _match(news, matched, lambda j, s: (1 if i == j else 0)
                      + (2 if svc.get("PortLabel") == s.get("PortLabel") else 0)
                      + (3 if svc.get("Name") == s.get("Name") else 0), 2)
    return _matched_diffs(old, new, find, lambda o, n: service_diff(o, n, contextual))


def template_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        # Nomad names the wait block's diff "Template" too.
        out = _one(block_diff(o.get("Wait"), n.get("Wait"), "Template", ctx, full=True))
        return out + _one(block_diff(o.get("ChangeScript"), n.get("ChangeScript"), "ChangeScript", ctx,
                                     children=_strings("Args")))
    return block_diff(old, new, "Template", contextual, children=children)


def template_diffs(old: list[Obj] | None, new: list[Obj] | None, contextual: bool) -> list[Obj]:
    def find(i: int, tmpl: Obj, news: list[Obj], matched: list[int]) -> int:
        dest = tmpl.get("DestPath")
        return next((j for j, t in enumerate(news) if matched[j] < 0 and t.get("DestPath") == dest), -1)
    return _matched_diffs(old, new, find, lambda o, n: template_diff(o, n, contextual))


def config_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    """A task's driver config, flattened whole (``args[0]``, ``port_map[0][db]``)."""
    if (old or None) == (new or None):
        return None
    kind = ADDED if not old else DELETED if not new else EDITED
    return _obj("Config", kind, field_diffs(full_flat(old or {}), full_flat(new or {}), contextual), [])


def scaling_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    skip = ("CreateIndex", "ModifyIndex", "ID", "Type", "Target[Job]", "Target[Group]", "Target[Namespace]")

    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        op, np = o.get("Policy") or None, n.get("Policy") or None
        if op == np:
            return []
        kind = ADDED if op is None else DELETED if np is None else EDITED
        return [_obj("Policy", kind, field_diffs(full_flat(op), full_flat(np), False), [])]
    out = block_diff(old, new, "Scaling", False, skip, children)
    return out


def volume_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        return _one(block_diff(o.get("MountOptions"), n.get("MountOptions"), "MountOptions", ctx,
                               children=_strings("MountFlags")))
    return block_diff(old, new, "Volume", contextual, children=children)


# ------------------------------------------------------------------ tasks, groups, the job
def task_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj:
    """Nomad's Task.Diff."""
    kind = ADDED if old is None else DELETED if new is None else EDITED if old != new else NONE
    o, n = old or {}, new or {}
    name = (new or old or {}).get("Name", "")
    skip = ("Name", "Config")
    fields = field_diffs(*(primitive_flat(_zeroed("Task", t), skip) for t in (old, new)), False)
    objs = _placement(o, n, contextual)
    objs += _one(config_diff(o.get("Config"), n.get("Config"), contextual))
    objs += _one(resources_diff(o.get("Resources"), n.get("Resources"), contextual))
    for key in ("LogConfig", "DispatchPayload"):
        objs += _one(primitive_object_diff(o.get(key), n.get(key), (), key, contextual))
    objs += primitive_object_set_diff(o.get("Artifacts"), n.get("Artifacts"), (), "Artifact", contextual,
                                      lambda a: a.get("RelativeDest", ""))
    objs += service_diffs(o.get("Services"), n.get("Services"), contextual)
    objs += _one(block_diff(o.get("Vault"), n.get("Vault"), "Vault", contextual))
    objs += _keyed_diffs(o.get("Secrets"), n.get("Secrets"), "Name",
                         lambda a, b: block_diff(a, b, "Secret", contextual, full=True))
    objs += _one(primitive_object_diff(o.get("Consul"), n.get("Consul"), (), "Consul", contextual))
    objs += template_diffs(o.get("Templates"), n.get("Templates"), contextual)
    objs += _one(identity_diff(o.get("Identity"), n.get("Identity"), contextual))
    objs += _keyed_diffs(o.get("Identities"), n.get("Identities"), "Name",
                         lambda a, b: identity_diff(a, b, contextual))
    objs += _indexed_diffs(o.get("Actions"), n.get("Actions"),
                           lambda a, b: block_diff(a, b, "Action", contextual, children=_strings("Args")))
    objs += _indexed_diffs(o.get("VolumeMounts"), n.get("VolumeMounts"),
                           lambda a, b: block_diff(a, b, "VolumeMount", contextual))
    if o.get("Schedule") != n.get("Schedule"):
        objs += _one(primitive_object_diff((o.get("Schedule") or {}).get("Cron"),
                                           (n.get("Schedule") or {}).get("Cron"), (), "Schedule", contextual))
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": objs, "Annotations": []}


def _named_diffs(old: list[Obj] | None, new: list[Obj] | None, one: Callable[[Obj | None, Obj | None], Obj]
                 ) -> list[Obj]:
    olds = {o["Name"]: o for o in old or ()}
    news = {n["Name"]: n for n in new or ()}
    return sorted([one(olds.get(k), news.get(k)) for k in set(olds) | set(news)], key=lambda d: d["Name"])


def group_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj:
    """Nomad's TaskGroup.Diff."""
    kind = ADDED if old is None else DELETED if new is None else EDITED if old != new else NONE
    o, n = old or {}, new or {}
    of, nf = (primitive_flat(_zeroed("TaskGroup", g), GROUP_FILTER) for g in (old, new))
    if of is not None and nf is not None:
        of["ShutdownDelay"] = "" if o.get("ShutdownDelay") is None else text(o["ShutdownDelay"])
        nf["ShutdownDelay"] = "" if n.get("ShutdownDelay") is None else text(n["ShutdownDelay"])
    objs = _placement(o, n, contextual)
    for key in ("RestartPolicy", "Migrate", "ReschedulePolicy", "EphemeralDisk", "Consul"):
        objs += _one(primitive_object_diff(o.get(key), n.get(key), (), key, contextual))
    objs += _one(primitive_object_diff(o.get("Update"), n.get("Update"), ("Stagger",), "Update", contextual))
    objs += _one(block_diff(o.get("Disconnect"), n.get("Disconnect"), "Disconnect", contextual, full=True))
    objs += network_diffs(o.get("Networks"), n.get("Networks"), contextual)
    objs += _one(scaling_diff(o.get("Scaling"), n.get("Scaling"), contextual))
    objs += service_diffs(o.get("Services"), n.get("Services"), contextual)
    ov, nv = o.get("Volumes") or {}, n.get("Volumes") or {}
    if ov != nv:
        objs += [d for k in list(ov) + [k for k in nv if k not in ov]
                 if (d := volume_diff(ov.get(k), nv.get(k), contextual))]
    return {"Type": kind, "Name": (new or old or {}).get("Name", ""), "Fields": field_diffs(of, nf, False),
            "Objects": objs, "Tasks": _named_diffs(o.get("Tasks"), n.get("Tasks"),
                                                   lambda a, b: task_diff(a, b, contextual)),
            "Updates": None}


def _periodic_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        specs = string_set_diff(o.get("Specs"), n.get("Specs"), "Specs", ctx)
        return [specs] if specs and specs["Type"] != NONE else []
    return block_diff(old, new, "Periodic", contextual, children=children)


def _parameterized_diff(old: Obj | None, new: Obj | None, contextual: bool) -> Obj | None:
    def children(o: Obj, n: Obj, ctx: bool) -> list[Obj]:
        return (_one(string_set_diff(o.get("MetaOptional"), n.get("MetaOptional"), "MetaOptional", ctx))
                + _one(string_set_diff(o.get("MetaRequired"), n.get("MetaRequired"), "MetaRequired", ctx)))
    return block_diff(old, new, "ParameterizedJob", contextual, children=children)


def job_diff(old: Obj | None, new: Obj | None, contextual: bool = True) -> Obj:
    """Nomad's Job.Diff: *old* (the registered version, or None) against *new* (the submitted one)."""
    kind = ADDED if old is None and new is not None else DELETED if new is None and old is not None else NONE
    o, n = old or {}, new or {}
    fields = field_diffs(*(primitive_flat(_zeroed("Job", j), JOB_FILTER) for j in (old, new)), False)
    objs = []
    dcs = string_set_diff(o.get("Datacenters"), n.get("Datacenters"), "Datacenters", contextual)
    if dcs and dcs["Type"] != NONE:
        objs.append(dcs)
    objs += _placement(o, n, contextual)
    groups = _named_diffs(o.get("TaskGroups"), n.get("TaskGroups"), lambda a, b: group_diff(a, b, contextual))
    objs += _one(_periodic_diff(o.get("Periodic"), n.get("Periodic"), contextual))
    objs += _one(_parameterized_diff(o.get("ParameterizedJob"), n.get("ParameterizedJob"), contextual))
    def links(a: Obj, b: Obj, c: bool) -> list[Obj]:
        return _indexed_diffs(a.get("Links"), b.get("Links"),
                              lambda x, y: block_diff(x or {}, y or {}, "Link", c))
    objs += _one(block_diff(o.get("UI"), n.get("UI"), "UI", contextual, children=links))
    if kind == NONE and any(d["Type"] != NONE for d in fields + objs + groups):
        kind = EDITED
    return _nulls({"Type": kind, "ID": n.get("ID", o.get("ID", "")), "Fields": fields, "Objects": objs,
                   "TaskGroups": groups})


def _nulls(d: Any) -> Any:
    """Go's JSON: an empty list of diffs is null."""
    if isinstance(d, dict):
        return {k: (None if isinstance(v, list) and not v else _nulls(v)) for k, v in d.items()}
    if isinstance(d, list):
        return [_nulls(x) for x in d]
    return d


# ------------------------------------------------------------------ the plan's annotations
FORCES_CREATE = "forces create"
FORCES_DESTROY = "forces destroy"
FORCES_INPLACE = "forces in-place update"
FORCES_DESTRUCTIVE = "forces create/destroy update"
# DesiredTGUpdates' counters and the words Nomad's plan shows for them (scheduler.UpdateType*).
UPDATE_TYPES = (("Ignore", "ignore"), ("Place", "create"), ("Migrate", "migrate"), ("Stop", "destroy"),
                ("Canary", "canary"), ("InPlaceUpdate", "in-place update"),
                ("DestructiveUpdate", "create/destroy update"))
# Object changes a task takes in place (Nomad's annotateTask); any other change replaces it.
IN_PLACE_OBJECTS = frozenset({"Service", "Constraint", "Affinity", "Spread"})


def annotate(diff: Obj, desired: dict[str, dict[str, int]] | None) -> Obj:
    """Nomad's scheduler.Annotate: each group's update counts, count changes and task annotations."""
    for g in diff.get("TaskGroups") or ():
        if desired is not None and g["Name"] in desired:
            u = desired[g["Name"]]
            g["Updates"] = {word: u[k] for k, word in UPDATE_TYPES if u.get(k)}
        for f in g.get("Fields") or ():
            if f["Name"] == "Count":
                old, new = int(f["Old"] or 0), int(f["New"] or 0)
                if old != new:
                    f["Annotations"] = [FORCES_CREATE if old < new else FORCES_DESTROY]
        for t in g.get("Tasks") or ():
            note = _task_annotation(t, g["Type"])
            if note:
                t["Annotations"] = [note]
    return diff


def _task_annotation(t: Obj, group_type: str) -> str | None:
    if t["Type"] == NONE:
        return None
    if group_type in (ADDED, DELETED) and t["Type"] in (ADDED, DELETED):
        return FORCES_CREATE if t["Type"] == ADDED else FORCES_DESTROY
    destructive = any(f["Name"] != "KillTimeout" for f in t.get("Fields") or ())
    for o in () if destructive else t.get("Objects") or ():
        if o["Name"] == "LogConfig":
            destructive = any(f["Name"] == "Disabled" for f in o.get("Fields") or ())
        elif o["Name"] not in IN_PLACE_OBJECTS:
            destructive = True
        if destructive:
            break
    return FORCES_DESTRUCTIVE if destructive else FORCES_INPLACE
