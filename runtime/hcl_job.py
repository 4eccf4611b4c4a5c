"""Nomad job files in HCL (``job "x" { group "g" { task "t" { ... } } }``) to the API's JSON job.

The file is parsed with python-hcl2 and mapped, block by block, onto the
fields this agent's scheduler and client run, with Nomad's jobspec names:

* ``job``: ``datacenters``, ``type``, ``priority``, ``region``,
  ``namespace``, ``node_pool``, ``all_at_once``, ``meta``, ``constraint`` (``attribute``,
  ``value``, ``operator`` and Nomad's shorthands ``version``, ``semver``, ``regexp``,
  ``set_contains``, ``distinct_hosts``, ``distinct_property``),
  ``affinity`` (``attribute``, ``value``, ``operator``, ``weight``; the shorthands ``version``,
  ``semver``, ``regexp``, ``set_contains``, ``set_contains_all``, ``set_contains_any``), ``spread``
  (``attribute``, ``weight``, ``target "value" { percent }``),
  ``parameterized`` (``payload``, ``meta_required``, ``meta_optional``),
  ``periodic`` (``cron``, ``prohibit_overlap``, ``time_zone``, ``enabled``);
* ``group``: ``count``, ``meta``, ``constraint``, ``affinity``, ``spread``,
  ``network`` (``mode = "host"``, ``port "label" { static, to }``),
  ``restart`` (``attempts``, ``interval``, ``delay``, ``mode``), ``reschedule``
  (also at job level: ``attempts``, ``interval``, ``delay``, ``delay_function``,
  ``max_delay``, ``unlimited``), ``migrate``
  (``max_parallel``, ``health_check``, ``min_healthy_time``,
  ``healthy_deadline``), ``ephemeral_disk`` (``size`` in
  MB, ``sticky``, ``migrate``: the disk the group's allocation asks of its
  node, and whether a replacement keeps its data), ``volume "label"`` (host
  volumes: ``type = "host"``, ``source``, ``read_only``, ``per_alloc``; a
  client's ``host_volume`` blocks; CSI volumes are refused), ``scaling``
  (``enabled``, ``min``, ``max`` -- required, as in Nomad --, ``type =
  "horizontal"``, and ``policy { ... }``, kept as written for an
  autoscaler; the servers keep it as a scaling policy);
* ``task``: ``driver``, ``config`` (passed to the driver as written),
  ``env``, ``user``, ``kill_timeout``, ``kill_signal``, ``meta``,
  ``constraint``, ``affinity``, ``resources`` (``cpu``, ``memory``, ``memory_max``), ``artifact``
  (``source``, ``destination``, ``mode``, ``options``, ``headers``),
  ``lifecycle`` (``hook``, ``sidecar``), ``volume_mount`` (``volume``,
  ``destination``, ``read_only``, ``propagation_mode``, ``selinux_label``:
  raw_exec, like Nomad's, cannot mount, so such a task fails to start),
  ``template`` (several: ``data`` or
  ``source``, ``destination``, ``change_mode`` -- restart, signal, script or
  noop --, ``change_script { command, args, timeout, fail_on_error }``,
  ``change_signal``, ``perms``, ``env``, ``left_delimiter``, ``right_delimiter``,
  ``splay``, ``error_on_missing_key``, ``wait { min, max }``; rendered by runtime.gotemplate, see actors.client.templates);
  ``identity`` (several: the unnamed one is the default identity, others have a ``name``;
  ``aud``, ``env``, ``file``, ``filepath``, ``ttl``, ``change_mode``, ``change_signal``;
  see actors.workload_identity);
* ``service`` (in a group or a task): ``name``, ``tags``, ``port``,
  ``provider``, ``address_mode``, ``address``, ``meta``, ``canary_tags``,
  ``canary_meta``, and ``check``
  blocks (Nomad's native http/tcp checks: ``name``, ``type``, ``path``,
  ``port``, ``interval``, ``timeout``, ``method``, ``protocol``,
  ``on_update``, ``address_mode``, ``body``, ``task``, ``header { Name =
  ["value"] }``), which the job's validation then holds to Nomad's rules.

Input variables, as Nomad's HCL2 jobspec: ``variable "name" { type,
default, description, sensitive, validation { condition, error_message } }``
blocks (or ``variables { name = default }``) and ``locals { ... }`` (which
may refer to each other), referred to
as ``var.name`` / ``local.name`` (whole values, ``"${var.name}"`` inside a
string, ``.key`` and ``[n]`` into a map or list).  Values come, each over the
one before, from the defaults, ``NOMAD_VAR_<name>`` environment variables,
variable files (``-var-file``, HCL ``name = value`` lines) and ``-var
name=value``; a ``-var`` string is read as the variable's declared type
(``number``, ``bool``, ``list(...)``, ...; a string when it has none).  A
declared variable with no value is an error, as is a reference to one not
declared or a ``-var`` for one not declared.  A validation rule's condition
may refer only to its own variable; a false one fails with its message as
Nomad words it ("Invalid value for cmd variable; ...").

Every value may be an HCL2 expression, evaluated by runtime.hcl_expr as
Nomad's jobspec2 does: operators, ``a ? b : c``, ``for`` expressions,
splats, templates with ``%{ if }`` / ``%{ for }`` directives, and the
functions of Nomad's table (runtime.hcl_functions; one this agent does not
implement is refused by name, never left as text).  ``dynamic "type" {
for_each, iterator, labels, content }`` blocks are expanded (nested ones
too), each after the static blocks of its type.

Durations (``"30s"``, ``"1h30m"``) become nanoseconds as in the JSON form.
Anything else -- a check's Consul-only attributes
(``success_before_passing``, ``tls_skip_verify``, ``expose``, ...), the
Consul provider, canaries, a volume's CSI and dynamic host volume
attributes (``access_mode``, ``attachment_mode``, ``mount_options``,
``sticky``), a task-level ``scaling "cpu"`` block (Enterprise), a
misspelt attribute -- is refused with its
path, never dropped: a job that runs without what its file asked for
would be worse than no job.
Names that are not variables, locals or iterators -- Nomad's runtime
interpolations such as ``${attr.kernel.name}``, ``${NOMAD_ALLOC_DIR}``,
``${env["HOME"]}`` -- stay as their own text, as Nomad's parser leaves them
for the client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime import hcl_expr, hcl_functions
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


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (HCL's nameSuggestion measures names so)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _suggestion(name: str, known: set[str]) -> str:
    """HCL's nameSuggestion: the first known name (in order) less than 3 edits away, else "" -- and, as
    this agent supports fewer names than Nomad, only one less than half the name away, so a short
    name Nomad has and this agent does not ("mtu") is not taken for a misspelling ("to")."""
    for k in sorted(known):
        d = _edit_distance(name, k)
        if d < 3 and 2 * d < len(name):
            return k
    return ""


def _check(body: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(body) - known)
    for name in unknown:
        near = _suggestion(name, known)
        if near:
            # A misspelling, as Nomad's HCL parser words it: "Did you mean ...?".
            value = body[name]
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                raise HclJobError(f'{where}: Unsupported block type; Blocks of type "{name}" are not '
                                  f'expected here. Did you mean "{near}"?')
            raise HclJobError(f'{where}: Unsupported argument; An argument named "{name}" is not expected '
                              f'here. Did you mean "{near}"?')
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


# A constraint's shorthand keys (Nomad's jobspec2 decodeConstraint), each setting the operand and its value
# the RTarget, in Nomad's order: when several are given, the last of these wins.
_CONSTRAINT_SHORTHANDS = ("version", "semver", "regexp", "set_contains")
# Keys Nomad's constraint block accepts and then ignores (the constraint stays "="): refused here instead.
_IGNORED_BY_NOMAD = ("set_contains_all", "set_contains_any", "is_set", "is_not_set")
# An affinity's shorthands (Nomad's decodeAffinity), in its order.
_AFFINITY_SHORTHANDS = ("version", "semver", "regexp", "set_contains_any", "set_contains_all", "set_contains")


# Nomad's decoder puts these numbers in Go int fields: the largest whole number one holds (its error says).
_GO_INT_MIN, _GO_INT_MAX = -(2**63), 2**63 - 1


def _whole(value: Any, where: str) -> int:
    """A whole-number field (count, priority, resources) as Nomad's decoder takes it: cty converts a string
    holding a number (what an untyped variable set by -var or NOMAD_VAR_ holds) and refuses the rest."""
    try:
        number = hcl_expr.norm_number(hcl_expr.to_number(value))
    except hcl_expr.HclExprError:
        raise HclJobError(f"{where}: Unsuitable value type; Unsuitable value: a number is required") from None
    if not isinstance(number, int) or not _GO_INT_MIN <= number <= _GO_INT_MAX:
        raise HclJobError(f"{where}: Unsuitable value type; Unsuitable value: value must be a whole number, "
                          f"between {_GO_INT_MIN} and {_GO_INT_MAX}")
    return number


def _flag(value: Any, where: str) -> bool:
    """A bool field as Nomad's decoder takes it: cty converts the strings "true" and "false" (what an
    untyped variable or a quoted value holds) and refuses the rest."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise HclJobError(f"{where}: Unsuitable value type; Unsuitable value: a bool is required")


# Fields of the reschedule, update, restart, migrate and ephemeral_disk blocks decoded into Go ints and
# bools (the rest are strings).
_WHOLE_KEYS = {"attempts", "max_parallel", "canary", "size"}
_FLAG_KEYS = {"unlimited", "auto_revert", "auto_promote", "render_templates", "sticky", "migrate"}


def _decoded(key: str, value: Any, where: str) -> Any:
    if key in _WHOLE_KEYS:
        return _whole(value, f"{where}.{key}")
    return _flag(value, f"{where}.{key}") if key in _FLAG_KEYS else value


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _constraints(value: Any, where: str) -> list[dict[str, Any]]:
    """``constraint`` blocks: ``attribute``, ``operator``, ``value``, and Nomad's shorthands --
    ``version``/``semver``/``regexp``/``set_contains = "..."`` (the operand, its value the RTarget),
    ``distinct_hosts = true`` and ``distinct_property = "${meta.rack}"`` (the LTarget; ``value`` is
    then the allocations allowed per value of it)."""
    out = []
    for i, c in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(c, dict):
            raise HclJobError(f"{at}: expected a block")
        for key in _IGNORED_BY_NOMAD:
            if key in c:
                rhs = "" if key.startswith("is_") else ' and value = "..."'
                raise HclJobError(f'{at}: {key!r} is not a constraint shorthand (Nomad ignores it): write '
                                  f'operator = "{key}"{rhs}')
        _check(c, {"attribute", "value", "operator", "distinct_hosts", "distinct_property",
                   *_CONSTRAINT_SHORTHANDS}, at)
        item = {"LTarget": _text(c.get("attribute", "")), "RTarget": _text(c.get("value", "")),
                "Operand": _text(c.get("operator", ""))}
        for key in _CONSTRAINT_SHORTHANDS:
            if _text(c.get(key, "")):
                item["Operand"], item["RTarget"] = key, _text(c[key])
        if "distinct_hosts" in c:
            enabled = c["distinct_hosts"]
            if isinstance(enabled, str) and enabled in ("true", "false"):
                enabled = enabled == "true"
            if not isinstance(enabled, bool):
                raise HclJobError(f'{at}: Inappropriate value for attribute "distinct_hosts": bool required')
            item["Operand"], item["RTarget"] = "distinct_hosts", _text(enabled)
        if _text(c.get("distinct_property", "")):
            item["Operand"], item["LTarget"] = "distinct_property", _text(c["distinct_property"])
        item["Operand"] = item["Operand"] or "="
        out.append(item)
    return out


def _services(value: Any, where: str) -> list[dict[str, Any]]:
    """``service`` blocks (Nomad's native service discovery): name, tags, port, provider, address_mode,
    address, meta, on_update (its checks' when they set none) and ``check`` blocks."""
    out = []
    for i, svc in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(svc, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(svc, {"name", "tags", "port", "provider", "address_mode", "address", "meta", "check",
                     "check_restart", "on_update", "canary_tags", "canary_meta"}, at)
        item: dict[str, Any] = {}
        for key, field in (("name", "Name"), ("provider", "Provider"), ("address_mode", "AddressMode"),
                           ("address", "Address"), ("on_update", "OnUpdate")):
            if key in svc:
                item[field] = str(svc[key])
        if "port" in svc:
            item["PortLabel"] = str(svc["port"])
        if "tags" in svc:
            item["Tags"] = [str(t) for t in (svc["tags"] if isinstance(svc["tags"], list) else [svc["tags"]])]
        if "canary_tags" in svc:  # the tags while the allocation is an unpromoted canary
            tags = svc["canary_tags"]
            item["CanaryTags"] = [str(t) for t in (tags if isinstance(tags, list) else [tags])]
        if "meta" in svc:
            item["Meta"] = _strings(svc["meta"], f"{at}.meta")
        if "canary_meta" in svc:
            item["CanaryMeta"] = _strings(svc["canary_meta"], f"{at}.canary_meta")
        if "check" in svc:
            item["Checks"] = _service_checks(svc["check"], f"{at}.check")
        if "check_restart" in svc:
            item["CheckRestart"] = _check_restart(svc["check_restart"], f"{at}.check_restart")
        out.append(item)
    return out


_CHECK_STRINGS = {"name": "Name", "type": "Type", "path": "Path", "method": "Method", "protocol": "Protocol",
                  "on_update": "OnUpdate", "address_mode": "AddressMode", "body": "Body", "task": "TaskName",
                  "port": "PortLabel"}
_CHECK_DURATIONS = {"interval": "Interval", "timeout": "Timeout"}
# Carried for the servers to judge: tls_skip_verify is run; the others are Consul's, which the servers
# refuse with Nomad's messages ("success_before_passing may only be set for Consul service checks").
_CHECK_PLAIN = {"tls_skip_verify": "TLSSkipVerify", "tls_server_name": "TLSServerName",
                "success_before_passing": "SuccessBeforePassing",
                "failures_before_critical": "FailuresBeforeCritical",
                "failures_before_warning": "FailuresBeforeWarning", "grpc_service": "GRPCService",
                "grpc_use_tls": "GRPCUseTLS", "command": "Command", "args": "Args", "expose": "Expose"}


def _service_checks(value: Any, where: str) -> list[dict[str, Any]]:
    """A service's ``check`` blocks (Nomad's native http and tcp checks), durations in ns.

    ``header { Name = ["v1", "v2"] }`` (or ``Name = "v"``) becomes the
    API's ``Header`` map of lists.  Consul-only attributes and
    anything else are refused by :func:`_check` as unknown here.
    """
    out = []
    for i, c in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(c, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(c, {*_CHECK_STRINGS, *_CHECK_DURATIONS, *_CHECK_PLAIN, "header", "check_restart"}, at)
        item: dict[str, Any] = {field: str(c[key]) for key, field in _CHECK_STRINGS.items() if key in c}
        item.update({field: c[key] for key, field in _CHECK_PLAIN.items() if key in c})
        item.update({field: _ns(c[key], f"{at}.{key}")
                     for key, field in _CHECK_DURATIONS.items() if key in c})
        if "header" in c:
            item["Header"] = {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])]
                              for k, vs in _body(c["header"], f"{at}.header").items()}
        if "check_restart" in c:
            item["CheckRestart"] = _check_restart(c["check_restart"], f"{at}.check_restart")
        out.append(item)
    return out


def _check_restart(value: Any, where: str) -> dict[str, Any]:
    """A ``check_restart`` block (check or service level): limit, grace, ignore_warnings."""
    body = _body(value, where)
    _check(body, {"limit", "grace", "ignore_warnings"}, where)
    out: dict[str, Any] = {}
    if "limit" in body:
        out["Limit"] = body["limit"]
    if "grace" in body:
        out["Grace"] = _ns(body["grace"], f"{where}.grace")
    if "ignore_warnings" in body:
        out["IgnoreWarnings"] = body["ignore_warnings"]
    return out


def _affinities(value: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(a, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(a, {"attribute", "value", "operator", "weight", *_AFFINITY_SHORTHANDS}, at)
        item = {"LTarget": _text(a.get("attribute", "")), "RTarget": _text(a.get("value", "")),
                "Operand": _text(a.get("operator", ""))}
        for key in _AFFINITY_SHORTHANDS:
            if _text(a.get(key, "")):
                item["Operand"], item["RTarget"] = key, _text(a[key])
        item["Operand"] = item["Operand"] or "="
        out.append({**item, **({"Weight": a["weight"]} if "weight" in a else {})})
    return out


def _spreads(value: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, sp in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(sp, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(sp, {"attribute", "weight", "target"}, at)
        targets = []
        for label, t in _blocks(sp.get("target", []), f"{at}.target"):
            _check(t, {"percent"}, f"{at}.target[{label!r}]")
            targets.append({"Value": label, "Percent": t.get("percent", 0)})
        out.append({"Attribute": str(sp.get("attribute", "")),
                    **({"Weight": sp["weight"]} if "weight" in sp else {}),
                    **({"SpreadTarget": targets} if targets else {})})
    return out


def _network(value: Any, where: str) -> list[dict[str, Any]]:
    body = _body(value, where)
    _check(body, {"mode", "port"}, where)
    reserved, dynamic = [], []
    for label, p in _blocks(body.get("port", []), f"{where}.port"):
        _check(p, {"static", "to", "host_network"}, f"{where}.port[{label!r}]")
        port = {"Label": label, **({"To": p["to"]} if "to" in p else {}),
                **({"HostNetwork": p["host_network"]} if "host_network" in p else {})}
        if "static" in p:
            reserved.append({**port, "Value": p["static"]})
        else:
            dynamic.append(port)
    return [{"Mode": str(body.get("mode", "host")), "ReservedPorts": reserved, "DynamicPorts": dynamic}]


def _prefs(body: dict[str, Any], out: dict[str, Any], where: str) -> None:
    if "affinity" in body:
        out["Affinities"] = _affinities(body["affinity"], f"{where}.affinity")
    if "spread" in body:
        out["Spreads"] = _spreads(body["spread"], f"{where}.spread")


def _task(name: str, body: dict[str, Any], where: str) -> dict[str, Any]:
    _check(body, {"driver", "config", "env", "user", "kill_timeout", "kill_signal", "meta", "constraint",
                  "resources", "dispatch_payload", "affinity", "service", "artifact", "lifecycle", "logs",
                  "volume_mount", "template", "restart", "leader", "shutdown_delay", "identity", "action"},
           where)
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
    if "restart" in body:
        task["RestartPolicy"] = _restart(body["restart"], f"{where}.restart")
    if "leader" in body:
        task["Leader"] = body["leader"]
    if "shutdown_delay" in body:
        task["ShutdownDelay"] = _ns(body["shutdown_delay"], f"{where}.shutdown_delay")
    if "meta" in body:
        task["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        task["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "service" in body:
        task["Services"] = _services(body["service"], f"{where}.service")
    _prefs({k: v for k, v in body.items() if k == "affinity"}, task, where)
    if "artifact" in body:
        task["Artifacts"] = _artifacts(body["artifact"], f"{where}.artifact")
    if "template" in body:
        task["Templates"] = _templates(body["template"], f"{where}.template")
    if "action" in body:  # Nomad 1.7's job actions: `action "name" { command = "..." args = [...] }`
        task["Actions"] = []
        for label, ab in _blocks(body["action"], f"{where}.action"):
            _check(ab, {"command", "args"}, f"{where}.action[{label!r}]")
            task["Actions"].append({"Name": label, "Command": ab.get("command", ""), "Args": ab.get("args")})
    if "lifecycle" in body:
        lc = _body(body["lifecycle"], f"{where}.lifecycle")
        _check(lc, {"hook", "sidecar"}, f"{where}.lifecycle")
        task["Lifecycle"] = {"Hook": str(lc.get("hook", "")), "Sidecar": lc.get("sidecar", False)}
    if "logs" in body:  # Nomad's task logs block: MaxFiles, MaxFileSizeMB (MB), Disabled
        lg = _body(body["logs"], f"{where}.logs")
        _check(lg, {"max_files", "max_file_size", "disabled"}, f"{where}.logs")
        task["LogConfig"] = {name: lg[key] for key, name in (("max_files", "MaxFiles"),
                                                             ("max_file_size", "MaxFileSizeMB"),
                                                             ("disabled", "Disabled")) if key in lg}
    if "identity" in body:  # several; the unnamed (or "default") one is the task's default identity
        blocks = body["identity"] if isinstance(body["identity"], list) else [body["identity"]]
        named = []
        for i, block in enumerate(blocks):
            wid = _identity(block, f"{where}.identity[{i}]")
            if wid.get("Name") in (None, "", "default") and "Identity" not in task:
                task["Identity"] = wid  # as Nomad's jobspec2 moves it (a second default is refused later)
            else:
                named.append(wid)
        if named:
            task["Identities"] = named
    if "volume_mount" in body:
        task["VolumeMounts"] = _volume_mounts(body["volume_mount"], f"{where}.volume_mount")
    if "dispatch_payload" in body:
        dp = _body(body["dispatch_payload"], f"{where}.dispatch_payload")
        _check(dp, {"file"}, f"{where}.dispatch_payload")
        task["DispatchPayload"] = {"File": dp.get("file", "")}
    if "resources" in body:
        res = _body(body["resources"], f"{where}.resources")
        _check(res, {"cpu", "cores", "memory", "memory_max"}, f"{where}.resources")
        task["Resources"] = {k: _whole(res[key], f"{where}.resources.{key}")
                             for key, k in (("cpu", "CPU"), ("cores", "Cores"), ("memory", "MemoryMB"),
                                            ("memory_max", "MemoryMaxMB")) if res.get(key) is not None}
    return task


_IDENTITY_FIELDS = {"name": "Name", "aud": "Audience", "env": "Env", "file": "File", "filepath": "Filepath",
                    "change_mode": "ChangeMode", "change_signal": "ChangeSignal", "ttl": "TTL"}


def _identity(value: Any, where: str) -> dict[str, Any]:
    """A task's ``identity`` block: its default workload identity, or a named one (``name``; Nomad 1.7+;
    actors.workload_identity)."""
    body = _body(value, where)
    label = next((k for k, v in body.items() if isinstance(v, dict) and k not in _IDENTITY_FIELDS), None)
    if label is not None:  # hcl's message for `identity "x" { ... }`
        raise HclJobError(f"{where}: Extraneous label for identity; No labels are expected for identity "
                          f'blocks (a named identity has name = "{label}")')
    _check(body, set(_IDENTITY_FIELDS), where)
    out = {field: body[key] for key, field in _IDENTITY_FIELDS.items() if key in body}
    if "ttl" in body:
        out["TTL"] = _ns(body["ttl"], f"{where}.ttl")
    if "aud" in body and not isinstance(body["aud"], list):
        raise HclJobError(f"{where}.aud: expected a list of strings")
    return out


_VOLUME_MOUNT_FIELDS = {"volume": "Volume", "destination": "Destination", "read_only": "ReadOnly",
                        "propagation_mode": "PropagationMode", "selinux_label": "SELinuxLabel"}


def _volume_mounts(value: Any, where: str) -> list[dict[str, Any]]:
    """A task's ``volume_mount`` blocks: volume, destination, read_only, propagation_mode, selinux_label."""
    out = []
    for i, m in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(m, set(_VOLUME_MOUNT_FIELDS), at)
        out.append({field: m[key] for key, field in _VOLUME_MOUNT_FIELDS.items() if key in m})
    return out


def _volumes(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """A group's ``volume "label"`` blocks (host volumes: type, source, read_only, per_alloc)."""
    out: dict[str, dict[str, Any]] = {}
    for label, v in _blocks(value, where):
        at = f"{where}[{label!r}]"
        _check(v, {"type", "source", "read_only", "per_alloc"}, at)
        if label in out:
            raise HclJobError(f'{at}: Duplicate volume block: only one volume "{label}" block is allowed')
        out[label] = {"Name": label, "Type": v.get("type", ""), "Source": v.get("source", ""),
                      "ReadOnly": v.get("read_only", False), "PerAlloc": v.get("per_alloc", False)}
    return out


def _scaling(value: Any, where: str) -> dict[str, Any]:
    """A group's ``scaling`` block (horizontal): enabled, min, max (required, as Nomad's jobspec2),
    type and ``policy { ... }``, the autoscaler's own, passed on as written."""
    sc = _body(value, where)
    _check(sc, {"enabled", "min", "max", "policy", "type"}, where)
    if "max" not in sc:
        raise HclJobError(f'{where}: Missing required argument: The argument "max" is required, '
                          "but no definition was found.")
    out: dict[str, Any] = {field: sc[key] for key, field in (("enabled", "Enabled"), ("min", "Min"),
                                                            ("max", "Max"), ("type", "Type")) if key in sc}
    if "policy" in sc:
        out["Policy"] = dict(_body(sc["policy"], f"{where}.policy"))
    return out


def _artifacts(value: Any, where: str) -> list[dict[str, Any]]:
    """``artifact`` blocks: source, destination, mode, ``options { checksum = ... }``, ``headers { ... }``."""
    out = []
    for i, a in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(a, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(a, {"source", "destination", "mode", "options", "headers", "insecure", "chown"}, at)
        item: dict[str, Any] = {"GetterSource": str(a.get("source", ""))}
        if "destination" in a:
            item["RelativeDest"] = str(a["destination"])
        if "mode" in a:
            item["GetterMode"] = str(a["mode"])
        if "options" in a:
            item["GetterOptions"] = _strings(a["options"], f"{at}.options")
        if "headers" in a:
            item["GetterHeaders"] = _strings(a["headers"], f"{at}.headers")
        for key, field in (("insecure", "GetterInsecure"), ("chown", "Chown")):
            if key in a:
                item[field] = a[key]
        out.append(item)
    return out


_TEMPLATE_KEYS = (("data", "EmbeddedTmpl"), ("source", "SourcePath"), ("destination", "DestPath"),
                  ("change_mode", "ChangeMode"), ("change_signal", "ChangeSignal"), ("perms", "Perms"),
                  ("left_delimiter", "LeftDelim"), ("right_delimiter", "RightDelim"))


def _templates(value: Any, where: str) -> list[dict[str, Any]]:
    """``template`` blocks: data or source, destination, change_mode, change_signal, perms, env,
    left_delimiter, right_delimiter, splay, error_on_missing_key, ``wait { min, max }``."""
    out = []
    for i, t in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]"
        if not isinstance(t, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(t, {k for k, _ in _TEMPLATE_KEYS} | {"env", "splay", "error_on_missing_key", "wait", "uid",
                                                    "gid", "once", "change_script"}, at)
        item: dict[str, Any] = {field: str(t[key]) for key, field in _TEMPLATE_KEYS if key in t}
        if isinstance(t.get("perms"), int) and not isinstance(t.get("perms"), bool):
            item["Perms"] = str(t["perms"])  # perms = 644 as a number means the octal digits written
        for key, field in (("env", "Envvars"), ("error_on_missing_key", "ErrMissingKey"), ("once", "Once")):
            if key in t:
                if not isinstance(t[key], bool):
                    raise HclJobError(f"{at}.{key}: expected a bool")
                item[field] = t[key]
        if "splay" in t:
            item["Splay"] = _ns(t["splay"], f"{at}.splay")
        for key, field in (("uid", "Uid"), ("gid", "Gid")):  # the rendered file's owner
            if key in t:
                item[field] = t[key]
        if "wait" in t:
            w = _body(t["wait"], f"{at}.wait")
            _check(w, {"min", "max"}, f"{at}.wait")
            item["Wait"] = {name: _ns(w[key], f"{at}.wait.{key}") if key in w else None
                            for key, name in (("min", "Min"), ("max", "Max"))}
        if "change_script" in t:
            item["ChangeScript"] = _change_script(t["change_script"], f"{at}.change_script")
        out.append(item)
    return out


def _change_script(value: Any, where: str) -> dict[str, Any]:
    """A template's ``change_script { command, args, timeout, fail_on_error }`` (change_mode "script");
    the servers fill Nomad's defaults (timeout 5s, fail_on_error false)."""
    cs = _body(value, where)
    _check(cs, {"command", "args", "timeout", "fail_on_error"}, where)
    out: dict[str, Any] = {}
    if "command" in cs:
        out["Command"] = str(cs["command"])
    if "args" in cs:
        if not isinstance(cs["args"], list):
            raise HclJobError(f"{where}.args: expected a list of strings")
        out["Args"] = [str(x) for x in cs["args"]]
    if "timeout" in cs:
        out["Timeout"] = _ns(cs["timeout"], f"{where}.timeout")
    if "fail_on_error" in cs:
        if not isinstance(cs["fail_on_error"], bool):
            raise HclJobError(f"{where}.fail_on_error: expected a bool")
        out["FailOnError"] = cs["fail_on_error"]
    return out


def _reschedule(value: Any, where: str) -> dict[str, Any]:
    """A ``reschedule`` block (job or group level): Nomad's ReschedulePolicy, the fields given."""
    r = _body(value, where)
    _check(r, {"attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"}, where)
    out: dict[str, Any] = {}
    for key, name in (("attempts", "Attempts"), ("delay_function", "DelayFunction"), ("unlimited", "Unlimited")):
        if key in r:
            out[name] = _decoded(key, r[key], where)
    for key, name in (("interval", "Interval"), ("delay", "Delay"), ("max_delay", "MaxDelay")):
        if key in r:
            out[name] = _ns(r[key], f"{where}.{key}")
    return out


_MIGRATE_PLAIN = {"max_parallel": "MaxParallel", "health_check": "HealthCheck"}
_MIGRATE_DURATIONS = {"min_healthy_time": "MinHealthyTime", "healthy_deadline": "HealthyDeadline"}


def _migrate(value: Any, where: str) -> dict[str, Any]:
    """A ``migrate`` block (job or group level): Nomad's MigrateStrategy fields given, durations in ns;
    the job's is merged under each group's, and Nomad's defaults filled in, by the servers."""
    m = _body(value, where)
    _check(m, set(_MIGRATE_PLAIN) | set(_MIGRATE_DURATIONS), where)
    out: dict[str, Any] = {field: _decoded(key, m[key], where)
                           for key, field in _MIGRATE_PLAIN.items() if key in m}
    out.update({field: _ns(m[key], f"{where}.{key}")
                for key, field in _MIGRATE_DURATIONS.items() if key in m})
    return out


def _disconnect(value: Any, where: str) -> dict[str, Any]:
    """A group's ``disconnect`` block (Nomad 1.8+ DisconnectStrategy)."""
    d = _body(value, where)
    _check(d, {"lost_after", "stop_on_client_after", "replace", "reconcile"}, where)
    return {**({"LostAfter": _ns(d["lost_after"], f"{where}.lost_after")} if "lost_after" in d else {}),
            **({"StopOnClientAfter": _ns(d["stop_on_client_after"], f"{where}.stop_on_client_after")}
               if "stop_on_client_after" in d else {}),
            **({"Replace": d["replace"]} if "replace" in d else {}),
            **({"Reconcile": d["reconcile"]} if "reconcile" in d else {})}


def _restart(value: Any, where: str) -> dict[str, Any]:
    """A ``restart`` block (group or task level; a task's is merged over its group's by the servers)."""
    r = _body(value, where)
    _check(r, {"attempts", "interval", "delay", "mode", "render_templates"}, where)
    return {**({"Attempts": _decoded("attempts", r["attempts"], where)} if "attempts" in r else {}),
            **({"RenderTemplates": _decoded("render_templates", r["render_templates"], where)}
               if "render_templates" in r else {}),
            **({"Interval": _ns(r["interval"], f"{where}.interval")} if "interval" in r else {}),
            **({"Delay": _ns(r["delay"], f"{where}.delay")} if "delay" in r else {}),
            **({"Mode": r["mode"]} if "mode" in r else {})}


def _group(name: str, body: dict[str, Any], where: str) -> dict[str, Any]:
    _check(body, {"count", "meta", "constraint", "restart", "migrate", "task", "affinity", "spread",
                  "network", "update", "service", "reschedule", "ephemeral_disk", "volume", "scaling",
                  "shutdown_delay", "max_run_duration", "disconnect", "max_client_disconnect",
                  "stop_after_client_disconnect"}, where)
    group: dict[str, Any] = {"Name": name}
    if "disconnect" in body:
        group["Disconnect"] = _disconnect(body["disconnect"], f"{where}.disconnect")
    for key, name_ in (("max_client_disconnect", "MaxClientDisconnect"),
                       ("stop_after_client_disconnect", "StopAfterClientDisconnect")):
        if key in body:  # deprecated: kept, ignored with a warning as Nomad 1.10+ does
            group[name_] = _ns(body[key], f"{where}.{key}")
    if "shutdown_delay" in body:
        group["ShutdownDelay"] = _ns(body["shutdown_delay"], f"{where}.shutdown_delay")
    if "max_run_duration" in body:
        group["MaxRunDuration"] = _ns(body["max_run_duration"], f"{where}.max_run_duration")
    if "reschedule" in body:
        group["ReschedulePolicy"] = _reschedule(body["reschedule"], f"{where}.reschedule")
    if "count" in body:
        group["Count"] = _whole(body["count"], f"{where}.count")
    if "meta" in body:
        group["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        group["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "service" in body:
        group["Services"] = _services(body["service"], f"{where}.service")
    _prefs(body, group, where)
    if "network" in body:
        group["Networks"] = _network(body["network"], f"{where}.network")
    if "volume" in body:
        group["Volumes"] = _volumes(body["volume"], f"{where}.volume")
    if "scaling" in body:
        group["Scaling"] = _scaling(body["scaling"], f"{where}.scaling")
    if "restart" in body:
        group["RestartPolicy"] = _restart(body["restart"], f"{where}.restart")
    if "update" in body:
        group["Update"] = _update(body["update"], f"{where}.update")
    if "migrate" in body:
        group["Migrate"] = _migrate(body["migrate"], f"{where}.migrate")
    if "ephemeral_disk" in body:  # Nomad's EphemeralDisk: SizeMB, Sticky, Migrate
        d = _body(body["ephemeral_disk"], f"{where}.ephemeral_disk")
        _check(d, {"size", "sticky", "migrate"}, f"{where}.ephemeral_disk")
        group["EphemeralDisk"] = {name: _decoded(key, d[key], f"{where}.ephemeral_disk")
                                  for key, name in (("size", "SizeMB"), ("sticky", "Sticky"),
                                                    ("migrate", "Migrate")) if key in d}
    group["Tasks"] = [_task(t, b, f"{where}.task[{t!r}]") for t, b in _blocks(body.get("task", []), f"{where}.task")]
    return group


_UPDATE_DURATIONS = {"stagger": "Stagger", "min_healthy_time": "MinHealthyTime",
                     "healthy_deadline": "HealthyDeadline", "progress_deadline": "ProgressDeadline"}
_UPDATE_PLAIN = {"max_parallel": "MaxParallel", "health_check": "HealthCheck", "auto_revert": "AutoRevert",
                 "auto_promote": "AutoPromote", "canary": "Canary"}


def _update(value: Any, where: str) -> dict[str, Any]:
    """An ``update`` block (job or group level): Nomad's UpdateStrategy fields, durations in ns."""
    u = _body(value, where)
    _check(u, set(_UPDATE_DURATIONS) | set(_UPDATE_PLAIN), where)
    out: dict[str, Any] = {field: _decoded(key, u[key], where)
                           for key, field in _UPDATE_PLAIN.items() if key in u}
    out.update({field: _ns(u[key], f"{where}.{key}") for key, field in _UPDATE_DURATIONS.items() if key in u})
    return out


def _load(text: str, what: str) -> dict[str, Any]:
    import hcl2  # noqa: PLC0415 - only job files written in HCL need the parser
    from hcl2.utils import SerializationOptions

    # Heredocs are kept as written and read by _heredocs: python-hcl2's own reading drops their last
    # newline and, for <<-, escapes their quotes (a template's data would change).
    options = SerializationOptions(with_comments=False, explicit_blocks=False, preserve_heredocs=True,
                                   strip_string_quotes=True)
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except Exception as e:  # lark raises its own error types, with the line and column
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HclJobError(f"not a valid HCL {what}: {first}") from None
    if not isinstance(doc, dict):
        raise HclJobError(f"not a valid HCL {what}")
    return _heredocs(doc)


_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\n(.*?)[ \t]*\2", re.S)


def _heredocs(value: Any) -> Any:
    """HCL heredocs as HCL reads them: the lines between the markers, each with its newline (the
    last one too); ``<<-`` takes the smallest indentation of the non-blank lines off every line."""
    if isinstance(value, dict):
        return {k: _heredocs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_heredocs(v) for v in value]
    if not isinstance(value, str) or not value.startswith("<<"):
        return value
    m = _HEREDOC.fullmatch(value)
    if m is None:
        return value
    body = m.group(3)
    if m.group(1):
        lines = body.split("\n")
        indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
        cut = min(indents, default=0)
        body = "\n".join(ln[cut:] for ln in lines)
    return body


_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"


class _Scope:
    """Variable values and locals (resolved on first use, cycles refused), and the functions."""

    def __init__(self, variables: dict[str, Any], locals_raw: dict[str, Any], base_dir: str | None) -> None:
        self.variables = variables
        self.locals_raw = locals_raw
        self.locals: dict[str, Any] = {}
        self._resolving: list[str] = []
        self.functions = hcl_functions.functions(base_dir)

    def context(self, names: dict[str, Any] | None = None) -> hcl_expr.Context:
        return hcl_expr.Context(self.lookup, self.functions, names or {})

    def lookup(self, kind: str, name: str) -> Any:
        if kind == "var":
            if name not in self.variables:
                raise hcl_expr.HclExprError(f'reference to undeclared variable "var.{name}" '
                                            f'(declare it: variable "{name}" {{ ... }})')
            return self.variables[name]
        if name in self.locals:
            return self.locals[name]
        if name not in self.locals_raw:
            raise hcl_expr.HclExprError(f'reference to undeclared local value "local.{name}"')
        if name in self._resolving:
            cycle = " -> ".join([*self._resolving, name])
            raise HclJobError(f"locals refer to each other in a cycle: {cycle}")
        self._resolving.append(name)
        try:
            value = _resolve(self.locals_raw[name], self, f"locals.{name}")
        finally:
            self._resolving.pop()
        self.locals[name] = value
        return value


def _evaluate(text: str, scope: _Scope, where: str, names: dict[str, Any]) -> Any:
    try:
        return hcl_expr.evaluate_text(text, scope.context(names))
    except hcl_expr.HclExprError as e:
        raise HclJobError(f"{where}: {e}") from None


def _resolve(value: Any, scope: _Scope, where: str, names: dict[str, Any] | None = None) -> Any:
    """*value* with its expressions and templates evaluated and its ``dynamic`` blocks expanded; Nomad's
    runtime ``${attr.x}``, ``${NOMAD_*}``, ... stay as text (see runtime.hcl_expr)."""
    names = names or {}
    if isinstance(value, list):
        out_list = []
        for i, v in enumerate(value):
            if _is_labelled(v):  # group "web" {...}: the path says job['x'].group['web'], as the mapper's
                (label, body), = v.items()
                out_list.append({label: _resolve(body, scope, f"{where}[{label!r}]", names)})
            else:
                at = where if len(value) == 1 and isinstance(v, dict) else f"{where}[{i}]"
                out_list.append(_resolve(v, scope, at, names))
        return out_list
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "dynamic" and _is_dynamic(v):
                continue
            key = k
            if k.startswith("${") and k.endswith("}"):
                key = hcl_expr.to_string(_evaluate(k, scope, f"{where}.{k}", names))
            resolved = _resolve(v, scope, f"{where}.{key}", names)
            if resolved is not None:  # an attribute set to null is one not set, as Nomad decodes it
                out[key] = resolved
        if "dynamic" in value and _is_dynamic(value["dynamic"]):
            for block_type, generated in _dynamic(value["dynamic"], scope, f"{where}.dynamic", names):
                existing = out.get(block_type, [])
                out[block_type] = [*(existing if isinstance(existing, list) else [existing]), *generated]
        return out
    if isinstance(value, float):
        return hcl_expr.norm_number(value)  # cty has one number type: 1.0 is 1 in the JSON job, as Nomad's
    if not isinstance(value, str) or not hcl_expr.has_expression(value):
        return value
    return _evaluate(value, scope, where, names)


def _is_labelled(value: Any) -> bool:
    """Whether a list item is a labelled block as python-hcl2 gives it: {label: {body}}."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), dict)


def _is_dynamic(value: Any) -> bool:
    """Whether a ``dynamic`` key is HCL's dynamic blocks (not, say, a meta key of that name)."""
    return isinstance(value, list) and all(_is_labelled(b) for b in value)


def _dynamic(value: Any, scope: _Scope, where: str, names: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """``dynamic "type" { for_each, iterator, labels, content { ... } }`` blocks: for each element, the
    content with the iterator (``<iterator>.key`` and ``.value``, the iterator named after the block
    type unless set) in scope, labelled by ``labels``.  Expanded blocks follow the type's static ones."""
    out = []
    for block_type, body in _blocks(value, where):
        at = f"{where}[{block_type!r}]"
        _check(body, {"for_each", "iterator", "labels", "content"}, at)
        if "for_each" not in body or "content" not in body:
            raise HclJobError(f'{at}: a dynamic block needs "for_each" and a "content" block')
        iterator = str(body.get("iterator", block_type)).removeprefix("${").removesuffix("}").strip()
        if not re.fullmatch(_NAME, iterator):
            raise HclJobError(f"{at}: iterator must be a name, not {iterator!r}")
        for_each = _resolve(body["for_each"], scope, f"{at}.for_each", names)
        try:
            pairs = hcl_expr.iterate(for_each)
        except hcl_expr.HclExprError as e:
            raise HclJobError(f"{at}.for_each: {e}") from None
        generated: list[Any] = []
        for key, item in pairs:
            inner = {**names, iterator: {"key": key, "value": item}}
            content = _resolve(_body(body["content"], f"{at}.content"), scope, f"{at}.content", inner)
            labels = _resolve(body.get("labels", []), scope, f"{at}.labels", inner)
            labels = labels if isinstance(labels, list) else [labels]
            for label in reversed(labels):
                content = {hcl_expr.to_string(label): content}
            generated.append(content)
        out.append((block_type, generated))
    return out


_VAR_FIELDS = {"type", "default", "description", "sensitive", "nullable", "validation"}


def _kind(vtype: Any) -> str:
    return str(vtype or "any").strip().removeprefix("${").removesuffix("}").strip()


def _convert(value: Any, kind: str, where: str) -> Any:
    """*value* as the declared type, converted as HCL does ("3" -> 3 for a number), or refused."""
    base = kind.split("(")[0].strip()
    if base in ("any", ""):
        return value
    if base == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str):
            return value
    elif base == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    return float(value)
                except ValueError:
                    pass
    elif base == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
    elif base in ("list", "set", "tuple"):
        if isinstance(value, list):
            inner = _type_arguments(kind)
            if base == "tuple":
                return _convert_tuple(value, inner, kind, where)
            items = [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)] if inner else value
            return hcl_functions.to_set(items) if base == "set" else items
    elif base in ("map", "object"):
        if isinstance(value, dict):
            inner = _type_arguments(kind)
            if base == "object":
                return _convert_object(value, inner, kind, where)
            return {k: _convert(v, inner, f"{where}.{k}") for k, v in value.items()} if inner else value
    else:
        raise HclJobError(f"{where}: type {kind!r} is not supported by this agent")
    raise HclJobError(f"{where}: {value!r} is not a valid {kind}")


def _type_arguments(kind: str) -> str:
    """``list(map(string))`` -> ``map(string)``: the element type written inside the parentheses."""
    open_at = kind.find("(")
    return kind[open_at + 1:kind.rfind(")")].strip() if open_at >= 0 else ""


def _split_top(text: str) -> list[str]:
    """Comma-separated parts of a type list, commas inside brackets left alone."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _convert_tuple(value: list[Any], inner: str, kind: str, where: str) -> list[Any]:
    types = _split_top(inner.strip().removeprefix("[").removesuffix("]"))
    if len(types) != len(value):
        raise HclJobError(f"{where}: {value!r} is not a valid {kind} (a tuple of {len(types)} elements)")
    return [_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, types, strict=True))]


def _convert_object(value: dict[str, Any], inner: str, kind: str, where: str) -> dict[str, Any]:
    if not inner:
        return value
    attrs = {}
    for part in _split_top(inner.strip().removeprefix("{").removesuffix("}").replace("\n", ",")):
        name, sep, attr_type = part.partition("=") if "=" in part else part.partition(":")
        if not sep:
            raise HclJobError(f"{where}: type {kind!r} is not supported by this agent")
        attrs[name.strip().strip('"')] = attr_type.strip()
    missing = sorted(set(attrs) - set(value))
    if missing:
        raise HclJobError(f'{where}: {value!r} is not a valid {kind} (attribute "{missing[0]}" is required)')
    return {k: _convert(value[k], t, f"{where}.{k}") for k, t in attrs.items()}


def _typed(raw: str, vtype: Any, where: str) -> Any:
    """A -var or NOMAD_VAR_ string read as the variable's declared type (a string when it has none)."""
    kind = _kind(vtype)
    if kind.split("(")[0].strip() in ("string", "any", "number", "bool"):
        return _convert(raw, "string" if kind == "any" else kind, where)
    if "\n" in raw:
        raise HclJobError(f"{where}: a value is one line")
    try:
        doc = _load(f"v = {raw}\n", "value")
    except HclJobError:
        raise HclJobError(f"{where}: {raw!r} is not a valid {kind}") from None
    if set(doc) != {"v"}:
        raise HclJobError(f"{where}: {raw!r} is not a valid {kind}")
    return _convert(_constant(doc["v"], where), kind, where)


def _variables(doc: dict[str, Any], var_files: Sequence[str], var_args: Mapping[str, str],
               env: Mapping[str, str], strict: bool) -> dict[str, Any]:
    """Each declared variable's value: its default, then NOMAD_VAR_<name>, then the variable files, then
    -var. A value for an undeclared variable is an error when *strict* (the CLI's -hcl2-strict, on by
    default) and ignored otherwise (Nomad's parse API), as Nomad has it."""
    declared: dict[str, dict[str, Any]] = {}
    blocks = doc.get("variables", [])
    for block in blocks if isinstance(blocks, list) else [blocks]:  # variables { name = default, ... }
        for name, default in _body(block, "variables").items():
            if name in declared:
                raise HclJobError(f'variable "{name}" is declared twice')
            declared[name] = {"default": default}
    for name, body in _blocks(doc.get("variable", []), "variable"):
        _check(body, _VAR_FIELDS, f"variable[{name!r}]")
        if name in declared:
            raise HclJobError(f'variable "{name}" is declared twice')
        declared[name] = body
    rules = {name: _validation_rules(name, body.get("validation", [])) for name, body in declared.items()}
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}  # where each value came from, in Nomad's words (its validation errors say)
    for name, body in declared.items():
        if "default" in body:
            default = _constant(body["default"], f'variable "{name}" default')
            values[name] = _convert(default, _kind(body.get("type")), f'variable "{name}" default')
            origins[name] = "default"
    for name, body in declared.items():
        if f"NOMAD_VAR_{name}" in env:
            values[name] = _typed(env[f"NOMAD_VAR_{name}"], body.get("type"), f"NOMAD_VAR_{name}")
            origins[name] = "env"
    for text in var_files:
        assigned = _load(text, "variable file")
        declared_here = assigned.get("variable")
        if isinstance(declared_here, list) and declared_here and all(map(_is_labelled, declared_here)):
            # a declaration block: a common mistake in a variable file
            (name, _), *_ = _blocks(assigned["variable"], "variable file: variable")
            raise HclJobError(f"Variable declaration in a .var file; A .var file is used to assign values to "
                              f"variables that have already been declared in job files, not to declare new "
                              f'variables. To declare variable "{name}", place this block in one of your job '
                              f"files\n\nTo set a value for this variable, use the definition syntax instead:"
                              f"\n    {name} = <value>")
        for name, value in assigned.items():
            if name not in declared:
                if strict:
                    raise HclJobError(f'Undefined variable; A "{name}" variable was set but was not found in '
                                      f'known variables. To declare variable "{name}", place this block in '
                                      "your job files")
                continue
            value = _constant(value, f"variable file: {name}")
            values[name] = _convert(value, _kind(declared[name].get("type")), f"variable file: {name}")
            origins[name] = "varfile"
    for name, raw in var_args.items():
        if name not in declared:
            if strict:
                raise HclJobError(f'Undefined -var variable; A "{name}" variable was passed in the command '
                                  f'line but was not found in known variables. To declare variable "{name}", '
                                  "place this block in your job file")
            continue
        values[name] = _typed(raw, declared[name].get("type"), f"-var {name}")
        origins[name] = "cmd"
    missing = sorted(set(declared) - set(values))
    if missing:  # Nomad's diagnostic, one per variable: the first and a count of the others
        more = f", and {len(missing) - 1} other diagnostic(s)" if len(missing) > 1 else ""
        raise HclJobError(f'Unset variable "{missing[0]}"; A used variable must be set or have a default '
                          "value; see https://developer.hashicorp.com/nomad/docs/reference/hcl2/variables "
                          f" for details.{more}")
    for name in declared:
        _validate(name, rules[name], values[name], origins[name])
    return values


def _constant(value: Any, where: str) -> Any:
    """A variable's value as the file, a variable file or -var writes it: a constant, as Nomad has it (no
    variables, locals or function calls)."""
    def refuse(kind: str, name: str) -> Any:
        raise hcl_expr.HclExprError(f"Variables not allowed; Variables may not be used here ({kind}.{name}).")

    ctx = hcl_expr.Context(refuse, None)
    try:
        return _walk_strings(value, lambda s: hcl_expr.evaluate_text(s, ctx))
    except hcl_expr.HclExprError as e:
        raise HclJobError(f"{where}: {e}") from None


def _walk_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, list):
        return [_walk_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _walk_strings(v, fn) for k, v in value.items()}
    return fn(value) if isinstance(value, str) else value


def _validation_rules(name: str, blocks: Any) -> list[tuple[Any, str]]:
    """A variable's ``validation { condition, error_message }`` blocks as (condition, message), checked as
    Nomad declares them: both required, a message not blank, a condition referring to ``var.<name>``
    and nothing else."""
    rules = []
    for i, block in enumerate(blocks if isinstance(blocks, list) else [blocks]):
        at = f'variable "{name}" validation[{i}]'
        if not isinstance(block, dict):
            raise HclJobError(f"{at}: expected a block")
        _check(block, {"condition", "error_message"}, at)
        for key in ("condition", "error_message"):
            if key not in block:
                raise HclJobError(f'{at}: Missing required argument; The argument "{key}" is required, '
                                  "but no definition was found.")
        message = block["error_message"]
        if not isinstance(message, str) or not message.strip():
            raise HclJobError(f"{at}: Invalid validation error message; An empty or blank string is not a "
                              "valid nor useful error message.")
        condition = block["condition"]
        refs = re.findall(r"\b(var|local)\.(" + _NAME + ")", str(condition))
        if any(ref != ("var", name) for ref in refs):
            raise HclJobError(f"{at}: Invalid reference in variable validation; The condition for variable "
                              f'"{name}" can only refer to the variable itself, using var.{name}.')
        if not refs:
            raise HclJobError(f"{at}: Invalid variable validation condition; The condition for variable "
                              f'"{name}" must refer to var.{name} in order to test incoming values.')
        rules.append((condition, message))
    return rules


def _validate(name: str, rules: list[tuple[Any, str]], value: Any, origin: str) -> None:
    """Each rule's condition on the variable's value (Nomad's functions, no file ones); a false one fails
    with its message, worded as Nomad's: "Invalid value for <origin> variable"."""
    ctx = hcl_expr.Context(lambda kind, ref: value, hcl_functions.functions(None))
    for i, (condition, message) in enumerate(rules):
        try:
            result = hcl_expr.evaluate_text(condition, ctx) if isinstance(condition, str) else condition
            if result is None:
                raise hcl_expr.HclExprError("Validation condition expression must return either true or "
                                            "false, not null.")
            ok = hcl_expr.to_bool(result)
        except hcl_expr.HclExprError as e:
            raise HclJobError(f'variable "{name}" validation[{i}]: Invalid variable validation result; {e}') \
                from None
        if not ok:
            raise HclJobError(f"Invalid value for {origin} variable; {message}\n\nThis was checked by the "
                              f'validation rule in variable "{name}".')


def parse_hcl_job(text: str, *, var_files: Sequence[str] = (), var_args: Mapping[str, str] | None = None,
                  env: Mapping[str, str] | None = None, base_dir: str | None = None,
                  strict: bool = True) -> dict[str, Any]:
    """The JSON job (the API's field names) a Nomad HCL job file describes; HclJobError otherwise.

    *var_files* are the contents of variable files, *var_args* the ``-var``
    values and *env* the environment ``NOMAD_VAR_<name>`` is read from.
    *base_dir* is the job file's directory, which ``file("x")`` and the other
    file functions read relative to; None refuses them (Nomad's job-parse
    API does so: "filesystem function disabled"). *strict* refuses values for
    undeclared variables (the CLI's -hcl2-strict); Nomad's parse API is not
    strict and ignores them.
    """
    doc = _load(text, "file")
    _check(doc, {"job", "variable", "variables", "locals"}, "file")
    locals_raw: dict[str, Any] = {}
    blocks = doc.get("locals", [])
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for name, value in _body(block, "locals").items():
            if name in locals_raw:
                raise HclJobError(f"local value {name!r} is defined twice")
            locals_raw[name] = value
    scope = _Scope(_variables(doc, var_files, var_args or {}, env or {}, strict), locals_raw, base_dir)
    for name in locals_raw:  # Nomad evaluates every local, used or not
        scope.lookup("local", name)
    doc = {"job": _resolve(doc.get("job", []), scope, "job")}
    jobs = _blocks(doc.get("job", []), "job")
    if len(jobs) != 1:
        raise HclJobError(f"a job file holds exactly one job block, found {len(jobs)}")
    (job_id, body), = jobs
    where = f"job[{job_id!r}]"
    _check(body, {"name", "datacenters", "type", "priority", "region", "namespace", "node_pool", "all_at_once",
                  "meta", "constraint", "group", "parameterized", "periodic", "affinity", "spread", "update",
                  "reschedule", "ui", "migrate", "task"}, where)
    job: dict[str, Any] = {"ID": job_id, "Name": str(body.get("name", job_id))}
    for key, field in (("datacenters", "Datacenters"), ("type", "Type"), ("priority", "Priority"),
                       ("region", "Region"), ("namespace", "Namespace"), ("node_pool", "NodePool"),
                       ("all_at_once", "AllAtOnce")):
        if key in body:
            job[field] = _whole(body[key], f"{where}.{key}") if key == "priority" else body[key]
    if "meta" in body:
        job["Meta"] = _strings(body["meta"], f"{where}.meta")
    if "constraint" in body:
        job["Constraints"] = _constraints(body["constraint"], f"{where}.constraint")
    if "ui" in body:  # what Nomad's web UI shows on the job's page: description, link { label, url }
        ui = _body(body["ui"], f"{where}.ui")
        _check(ui, {"description", "link"}, f"{where}.ui")
        links, given = [], ui.get("link", [])
        for i, link in enumerate(given if isinstance(given, list) else [given]):
            if not isinstance(link, dict):
                raise HclJobError(f"{where}.ui.link[{i}]: expected a block")
            _check(link, {"label", "url"}, f"{where}.ui.link[{i}]")
            links.append({"Label": str(link.get("label", "")), "URL": str(link.get("url", ""))})
        job["UI"] = {"Description": str(ui.get("description", "")), "Links": links or None}
    if "update" in body:
        job["Update"] = _update(body["update"], f"{where}.update")
    if "reschedule" in body:
        job["Reschedule"] = _reschedule(body["reschedule"], f"{where}.reschedule")
    if "migrate" in body:
        job["Migrate"] = _migrate(body["migrate"], f"{where}.migrate")
    _prefs(body, job, where)
    if "periodic" in body:
        p = _body(body["periodic"], f"{where}.periodic")
        _check(p, {"cron", "crons", "prohibit_overlap", "time_zone", "enabled"}, f"{where}.periodic")
        crons = p.get("crons", [])
        crons = crons if isinstance(crons, list) else [crons]
        job["Periodic"] = {"Spec": p.get("cron", ""), "SpecType": "cron",
                           **({"Specs": crons} if "crons" in p else {}),
                           "ProhibitOverlap": _flag(p.get("prohibit_overlap", False),
                                                    f"{where}.periodic.prohibit_overlap"),
                           "TimeZone": p.get("time_zone", "UTC"),
                           "Enabled": _flag(p.get("enabled", True), f"{where}.periodic.enabled")}
    if "parameterized" in body:
        p = _body(body["parameterized"], f"{where}.parameterized")
        _check(p, {"payload", "meta_required", "meta_optional"}, f"{where}.parameterized")
        job["ParameterizedJob"] = {"Payload": p.get("payload", "optional"),
                                   "MetaRequired": list(p.get("meta_required", [])),
                                   "MetaOptional": list(p.get("meta_optional", []))}
    # A task written directly in the job is a group of its own name holding it alone, ahead of the
    # job's groups (Nomad's jobspec2 decodeTopLevelExtras and parse_job).
    alone = [{"Name": t, "Tasks": [_task(t, b, f"{where}.task[{t!r}]")]}
             for t, b in _blocks(body.get("task", []), f"{where}.task")]
    job["TaskGroups"] = alone + [_group(g, b, f"{where}.group[{g!r}]")
                                 for g, b in _blocks(body.get("group", []), f"{where}.group")]
    return job
