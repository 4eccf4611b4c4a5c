"""Nomad job files in HCL (``job "x" { group "g" { task "t" { ... } } }``) to the API's JSON job.

The file is parsed with python-hcl2 and mapped, block by block, onto the
fields this agent's scheduler and client run, with Nomad's jobspec names:

* ``job``: ``datacenters``, ``type``, ``priority``, ``region``,
  ``namespace``, ``node_pool``, ``all_at_once``, ``meta``, ``constraint``,
  ``parameterized`` (``payload``, ``meta_required``, ``meta_optional``),
  ``periodic`` (``cron``, ``prohibit_overlap``, ``time_zone``, ``enabled``);
* ``group``: ``count``, ``meta``, ``constraint``, ``restart`` (``attempts``,
  ``interval``, ``delay``, ``mode``), ``migrate`` (``max_parallel``,
  ``min_healthy_time``);
* ``task``: ``driver``, ``config`` (passed to the driver as written),
  ``env``, ``user``, ``kill_timeout``, ``kill_signal``, ``meta``,
  ``constraint``, ``resources`` (``cpu``, ``memory``).

Durations (``"30s"``, ``"1h30m"``) become nanoseconds as in the JSON form.
Anything else -- a ``network``, ``service`` or ``update`` block,
a misspelt attribute -- is refused with its path, never dropped: a job that
runs without what its file asked for would be worse than no job.
Interpolations such as ``${attr.kernel.name}`` stay as text, as Nomad's
constraint targets take them.
"""

from __future__ import annotations

from typing import Any

from runtime.config import parse_duration


class HclJobError(ValueError):
    """The file is not HCL, or asks for something this agent does not run (the message says where)."""


def _blocks(value: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """A labelled block (``group "web" {...}``): [(label, body)] in file order."""
    out = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict) or len(item) != 1:
            raise HclJobError(f"{where}: expected a labelled block")
        (label, body), = item.items()
        if not isinstance(body, dict):
            raise HclJobError(f"{where} {label!r}: expected a block body")
        out.append((str(label), body))
    return out


def _body(value: Any, where: str) -> dict[str, Any]:
    """An unlabelled block (``resources {...}``) or an object attribute (``meta = {...}``)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise HclJobError(f"{where}: only one block allowed")
        value = value[0]
    if not isinstance(value, dict):
        raise HclJobError(f"{where}: expected a block")
    return value


def _check(body: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise HclJobError(f"{where}: {', '.join(repr(k) for k in unknown)} not supported by this agent "
                          f"(supported here: {', '.join(sorted(known))})")


def _ns(value: Any, where: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    try:
        return int(parse_duration(str(value)) * 1e9)
    except ValueError as e:
        raise HclJobError(f"{where}: {e}") from None


def _strings(value: Any, where: str) -> dict[str, str]:
    body = _body(value, where)
    return {str(k): v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in body.items()}


def _constraints(value: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(c, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(c, {"attribute", "value", "operator"}, at)
        out.append({"LTarget": str(c.get("attribute", "")), "RTarget": str(c.get("value", "")),
                    "Operand": str(c.get("operator", "="))})
    return out


def _task(name: str, body: dict[str, Any], where: str) -> dict[str, Any]:
    _check(body, {"driver", "config", "env", "user", "kill_timeout", "kill_signal", "meta", "constraint",
                  "resources", "dispatch_payload"}, where)
    task: dict[str, Any] = {"Name": name, "Driver": body.get("driver", "")}
    if "config" in body:
        task["Config"] = dict(_body(body["config"], f"{where}.config"))
    if "env" in body:
        task["Env"] = _strings(body["env"], f"{where}.env")
    if "user" in body:
        task["User"] = str(body["user"])
    if "kill_timeout" in body:
        task["KillTimeout"] = _ns(body["kill_timeout"], f"{where}.kill_timeout")
    if "kill_signal" in body:
        task["KillSignal"] = str(body["kill_signal"])
    if "meta" in body:
        task["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        task["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "dispatch_payload" in body:
        dp = _body(body["dispatch_payload"], f"{where}.dispatch_payload")
        _check(dp, {"file"}, f"{where}.dispatch_payload")
        task["DispatchPayload"] = {"File": dp.get("file", "")}
    if "resources" in body:
        res = _body(body["resources"], f"{where}.resources")
        _check(res, {"cpu", "memory"}, f"{where}.resources")
        task["Resources"] = {k: v for k, v in (("CPU", res.get("cpu")), ("MemoryMB", res.get("memory")))
                             if v is not None}
    return task


def _group(name: str, body: dict[str, Any], where: str) -> dict[str, Any]:
    _check(body, {"count", "meta", "constraint", "restart", "migrate", "task"}, where)
    group: dict[str, Any] = {"Name": name}
    if "count" in body:
        group["Count"] = body["count"]
    if "meta" in body:
        group["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        group["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "restart" in body:
        r = _body(body["restart"], f"{where}.restart")
        _check(r, {"attempts", "interval", "delay", "mode"}, f"{where}.restart")
        group["RestartPolicy"] = {
            **({"Attempts": r["attempts"]} if "attempts" in r else {}),
            **({"Interval": _ns(r["interval"], f"{where}.restart.interval")} if "interval" in r else {}),
            **({"Delay": _ns(r["delay"], f"{where}.restart.delay")} if "delay" in r else {}),
            **({"Mode": r["mode"]} if "mode" in r else {})}
    if "migrate" in body:
        m = _body(body["migrate"], f"{where}.migrate")
        _check(m, {"max_parallel", "min_healthy_time"}, f"{where}.migrate")
        group["Migrate"] = {
            **({"MaxParallel": m["max_parallel"]} if "max_parallel" in m else {}),
            **({"MinHealthyTime": _ns(m["min_healthy_time"], f"{where}.migrate.min_healthy_time")}
               if "min_healthy_time" in m else {})}
    group["Tasks"] = [_task(t, b, f"{where}.task[{t!r}]") for t, b in _blocks(body.get("task", []), f"{where}.task")]
    return group


def parse_hcl_job(text: str) -> dict[str, Any]:
    """The JSON job (the API's field names) a Nomad HCL job file describes; HclJobError otherwise."""
    import hcl2  # noqa: PLC0415 - only job files written in HCL need the parser
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=False, preserve_heredocs=False,
                                   strip_string_quotes=True)
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except Exception as e:  # lark raises its own error types, with the line and column
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HclJobError(f"not a valid HCL file: {first}") from None
    _check(doc, {"job"}, "file")
    jobs = _blocks(doc.get("job", []), "job")
    if len(jobs) != 1:
        raise HclJobError(f"a job file holds exactly one job block, found {len(jobs)}")
    (job_id, body), = jobs
    where = f"job[{job_id!r}]"
    _check(body, {"name", "datacenters", "type", "priority", "region", "namespace", "node_pool", "all_at_once",
                  "meta", "constraint", "group", "parameterized", "periodic"}, where)
    job: dict[str, Any] = {"ID": job_id, "Name": str(body.get("name", job_id))}
    for key, field in (("datacenters", "Datacenters"), ("type", "Type"), ("priority", "Priority"),
                       ("region", "Region"), ("namespace", "Namespace"), ("node_pool", "NodePool"),
                       ("all_at_once", "AllAtOnce")):
        if key in body:
            job[field] = body[key]
    if "meta" in body:
        job["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        job["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "periodic" in body:
        p = _body(body["periodic"], f"{where}.periodic")
        _check(p, {"cron", "prohibit_overlap", "time_zone", "enabled"}, f"{where}.periodic")
        job["Periodic"] = {"Spec": p.get("cron", ""), "SpecType": "cron",
                           "ProhibitOverlap": bool(p.get("prohibit_overlap", False)),
                           "TimeZone": p.get("time_zone", "UTC"), "Enabled": p.get("enabled", True)}
    if "parameterized" in body:
        p = _body(body["parameterized"], f"{where}.parameterized")
        _check(p, {"payload", "meta_required", "meta_optional"}, f"{where}.parameterized")
        job["ParameterizedJob"] = {"Payload": p.get("payload", "optional"),
                                   "MetaRequired": list(p.get("meta_required", [])),
                                   "MetaOptional": list(p.get("meta_optional", []))}
    job["TaskGroups"] = [_group(g, b, f"{where}.group[{g!r}]")
                         for g, b in _blocks(body.get("group", []), f"{where}.group")]
    return job
