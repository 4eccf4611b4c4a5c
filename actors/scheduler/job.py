"""Jobs in Nomad's JSON API shape: validation, defaults and constraint checks.

:func:`canonical_job` takes what an operator submitted (``PUT /v1/jobs``
``{"Job": {...}}`` or a job file) and returns the job the servers store,
with Nomad's defaults filled in, or raises :class:`JobError` naming the
offending field the way Nomad's ``Job.Validate`` does (``TaskGroups[0].Tasks[1].Driver:
missing``).  Durations are Go ``time.Duration`` nanoseconds, as in Nomad's
JSON.

:func:`constraint_ok` evaluates one constraint against a node record
(``structs.Node`` field names, as the state store keeps it): the operands
``=``/``==``/``is``, ``!=``/``not``, ``regexp``, ``version``/``semver``,
``is_set``/``is_not_set``, ``set_contains``/``set_contains_all``/``set_contains_any``
and the lexical ``<``/``<=``/``>``/``>=``; ``distinct_hosts`` and ``distinct_property``
(at most RTarget, default 1, allocations per value of LTarget) are the scheduler's to check.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

SECOND_NS = 1_000_000_000
JOB_TYPES = ("service", "batch", "system", "sysbatch")
RESTART_MODES = ("fail", "delay")
# Nomad's RestartPolicyMinInterval: a group's restart interval shorter than this is refused at
# registration (a zero one would leave the restart tracker no window to count attempts in).
RESTART_MIN_INTERVAL_NS = 5 * 1_000_000_000

# Nomad's structs defaults (structs.go DefaultServiceJobRestartPolicy,
# DefaultBatchJobRestartPolicy, DefaultMigrateStrategy, DefaultResources).
RESTART_DEFAULTS = {
    "service": {"Attempts": 2, "Interval": 30 * 60 * SECOND_NS, "Delay": 15 * SECOND_NS, "Mode": "fail"},
    "system": {"Attempts": 2, "Interval": 30 * 60 * SECOND_NS, "Delay": 15 * SECOND_NS, "Mode": "fail"},
    "batch": {"Attempts": 3, "Interval": 24 * 3600 * SECOND_NS, "Delay": 15 * SECOND_NS, "Mode": "fail"},
    # A sysbatch job's groups restart as a batch job's do (Nomad's api TaskGroup.Canonicalize).
    "sysbatch": {"Attempts": 3, "Interval": 24 * 3600 * SECOND_NS, "Delay": 15 * SECOND_NS, "Mode": "fail"},
}
# Nomad's DefaultMigrateStrategy: how a service job's allocations leave a draining node --
# one at a time, each replacement healthy (its checks passing, or with health_check =
# "task_states" its tasks running) for 10 s before the next moves, and given up as
# unhealthy after 5 min.
MIGRATE_DEFAULTS = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SECOND_NS,
                    "HealthyDeadline": 5 * 60 * SECOND_NS}
MIGRATE_HEALTH_CHECKS = ("checks", "task_states")  # Nomad's MigrateStrategyHealthChecks/HealthStates
# Nomad's DefaultUpdateStrategy: what a service job's groups roll out with
# when neither the job nor the group has an ``update`` block.  MaxParallel 0
# turns rolling updates off (every changed allocation replaced at once, no
# deployment), as in Nomad.
UPDATE_DEFAULTS = {"Stagger": 30 * SECOND_NS, "MaxParallel": 1, "HealthCheck": "checks",
                   "MinHealthyTime": 10 * SECOND_NS, "HealthyDeadline": 5 * 60 * SECOND_NS,
                   "ProgressDeadline": 10 * 60 * SECOND_NS, "AutoRevert": False, "AutoPromote": False,
                   "Canary": 0}
HEALTH_CHECKS = ("checks", "task_states", "manual")
# Nomad's DefaultServiceJobReschedulePolicy and DefaultBatchJobReschedulePolicy (a system job has none):
# how soon, and how often, the scheduler replaces an allocation that failed.
RESCHEDULE_DEFAULTS = {
    "service": {"Attempts": 0, "Interval": 0, "Delay": 30 * SECOND_NS, "DelayFunction": "exponential",
                "MaxDelay": 3600 * SECOND_NS, "Unlimited": True},
    "batch": {"Attempts": 1, "Interval": 24 * 3600 * SECOND_NS, "Delay": 5 * SECOND_NS,
              "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": False},
}
RESCHEDULE_DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
RESCHEDULE_MIN_DELAY_NS = 5 * SECOND_NS  # Nomad's ReschedulePolicyMinDelay
RESCHEDULE_MIN_INTERVAL_NS = 15 * SECOND_NS  # Nomad's ReschedulePolicyMinInterval
# Attempts a limited reschedule policy may allow in its interval: far above any real policy, and a bound
# on what checking one costs (the fibonacci check walks every attempt).
MAX_RESCHEDULE_ATTEMPTS = 100_000
MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds
DEFAULT_CPU_MHZ = 100
DEFAULT_MEMORY_MB = 300
DEFAULT_KILL_TIMEOUT_NS = 5 * SECOND_NS
# A task's logs block (Nomad's structs.DefaultLogConfig): at most 10 files of
# 10 MB per stream, so a task's stdout and stderr take at most 200 MB.
DEFAULT_LOG_MAX_FILES = 10
DEFAULT_LOG_MAX_FILE_SIZE_MB = 10
# Upper bounds of our own (Nomad's only bound is the group's ephemeral disk,
# checked as well): a typo of 1e9 files or MB must not pass.
MAX_LOG_MAX_FILES = 1000
MAX_LOG_MAX_FILE_SIZE_MB = 100_000
# A group's ephemeral_disk (Nomad's DefaultEphemeralDisk and EphemeralDisk.Validate): the
# scratch space (alloc/data, each task's local/ and logs) its allocation asks of its node.
DEFAULT_EPHEMERAL_DISK_MB = 300
MIN_EPHEMERAL_DISK_MB = 10
DEFAULT_PRIORITY = 50
MAX_COUNT = 10_000  # allocations per group: a typo of 1e9 must not make a plan of a billion placements
OPERANDS = ("=", "==", "is", "!=", "not", "regexp", "version", "semver", "is_set", "is_not_set",
            "<", "<=", ">", ">=", "distinct_hosts", "distinct_property", "set_contains", "set_contains_all",
            "set_contains_any")
# The operands that compare the node's attribute with a value (Nomad: `Operator "=" requires an RTarget`).
_NEED_RTARGET = ("=", "==", "is", "!=", "not", "<", "<=", ">", ">=")
_ID_RE = re.compile(r"^[^\s/?#%]{1,128}$")


class JobError(ValueError):
    """An invalid job; the message names the field."""


def _need(cond: bool, field: str, why: str) -> None:
    if not cond:
        raise JobError(f"{field}: {why}")


# The checks below build their message only when they fail: every registration runs
# some sixty of them, and formatting each message up front was a third of the job's
# validation time.
def _str(v: Any, field: str, *, required: bool = False, default: str = "") -> str:
    if v is None or v == "":
        _need(not required, field, "missing")
        return default
    if not isinstance(v, str):
        _need(False, field, f"must be a string, got {type(v).__name__}")
    return v


def _int(v: Any, field: str, *, default: int, minimum: int | None = 0, maximum: int | None = None) -> int:
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        _need(False, field, f"must be an integer, got {type(v).__name__}")
    if minimum is not None and v < minimum:
        _need(False, field, f"must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        _need(False, field, f"must be <= {maximum}, got {v}")
    return v


def _map(v: Any, field: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        _need(False, field, f"must be an object, got {type(v).__name__}")
    return v


def _list(v: Any, field: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        _need(False, field, f"must be a list, got {type(v).__name__}")
    return v


def _constraints(raw: Any, field: str, affinity: bool = False) -> list[dict[str, str]]:
    """Nomad's Constraint.Validate (Affinity.Validate's messages when *affinity*)."""
    out = []
    for i, c in enumerate(_list(raw, field)):
        f = f"{field}[{i}]"
        c = _map(c, f)
        operand = _str(c.get("Operand"), f"{f}.Operand", default="=")
        _need(operand in OPERANDS, f"{f}.Operand", f"Unknown affinity operator {operand!r}" if affinity
              else f"Unknown constraint type {operand!r}")
        ltarget = _str(c.get("LTarget"), f"{f}.LTarget")
        rtarget = _str(c.get("RTarget"), f"{f}.RTarget")
        if operand not in ("distinct_hosts",):
            _need(bool(ltarget), f"{f}.LTarget", "No LTarget provided but is required" if affinity
                  else "no attribute provided but is required by operator")
        if operand.startswith("set_contains"):
            _need(bool(rtarget), f"{f}.RTarget", "Set contains operators require an RTarget" if affinity
                  else "Set contains constraint requires an RTarget")
        elif operand in _NEED_RTARGET:
            _need(bool(rtarget), f"{f}.RTarget", f"Operator {operand!r} requires an RTarget")
        elif operand in ("is_set", "is_not_set"):
            _need(not rtarget, f"{f}.RTarget", f"Operator {operand!r} does not support an RTarget")
        elif operand == "distinct_property" and rtarget:  # the allocations allowed per value (1 when unset)
            _need(rtarget.isascii() and rtarget.isdigit(), f"{f}.RTarget",
                  f"Failed to convert RTarget {rtarget!r} to uint64")
            _need(int(rtarget) >= 1, f"{f}.RTarget",
                  f"Distinct Property must have an allowed count of 1 or greater: {int(rtarget)} < 1")
        if operand == "regexp":
            try:
                re.compile(rtarget)
            except re.error as exc:
                raise JobError(f"{f}.RTarget: invalid regexp: {exc}") from None
        if operand in ("version", "semver"):
            try:
                _version_checks(rtarget, operand == "semver")
            except ValueError as exc:
                kind = "Semver" if operand == "semver" else "Version"
                raise JobError(f"{f}.RTarget: {kind} constraint is invalid: {exc}") from None
        out.append({"LTarget": ltarget, "RTarget": rtarget, "Operand": operand})
    return out


def _affinities(raw: Any, field: str) -> list[dict[str, Any]] | None:
    """Nomad's Affinity: a constraint that only scores (Weight -100..100, not 0); None when there is none."""
    if raw is None:
        return None
    out = []
    for i, (c, a) in enumerate(zip(_constraints(raw, field, affinity=True), _list(raw, field), strict=True)):
        f = f"{field}[{i}]"
        _need(c["Operand"] not in ("distinct_hosts", "distinct_property", "is_set", "is_not_set"),
              f"{f}.Operand", f"Unknown affinity operator {c['Operand']!r}")
        weight = _int(_map(a, f).get("Weight"), f"{f}.Weight", default=50, minimum=-100, maximum=100)
        _need(weight != 0, f"{f}.Weight", "weight cannot be zero")
        out.append({**c, "Weight": weight})
    return out or None


def _spreads(raw: Any, field: str) -> list[dict[str, Any]] | None:
    """Nomad's Spread: Attribute, Weight (1-100), SpreadTarget [{Value, Percent}] summing to at most 100."""
    if raw is None:
        return None
    out = []
    for i, sp in enumerate(_list(raw, field)):
        f = f"{field}[{i}]"
        sp = _map(sp, f)
        attr = _str(sp.get("Attribute"), f"{f}.Attribute", required=True)
        weight = _int(sp.get("Weight"), f"{f}.Weight", default=50, minimum=1, maximum=100)
        targets = []
        for j, t in enumerate(_list(sp.get("SpreadTarget"), f"{f}.SpreadTarget")):
            ft = f"{f}.SpreadTarget[{j}]"
            t = _map(t, ft)
            value = _str(t.get("Value"), f"{ft}.Value", required=True)
            percent = _int(t.get("Percent"), f"{ft}.Percent", default=0, minimum=0, maximum=100)
            targets.append({"Value": value, "Percent": percent})
        _need(sum(t["Percent"] for t in targets) <= 100, f"{f}.SpreadTarget",
              "the targets' percentages add up to more than 100")
        _need(len({t["Value"] for t in targets}) == len(targets), f"{f}.SpreadTarget",
              "a value is targeted twice")
        out.append({"Attribute": attr, "Weight": weight, "SpreadTarget": targets or None})
    return out or None


_PORT_LABEL = re.compile(r"^[a-zA-Z0-9_]+$")  # labels become environment variable names (NOMAD_PORT_<label>)


def _networks(raw: Any, field: str) -> list[dict[str, Any]] | None:
    """A group's ``network`` (Nomad's NetworkResource, host mode): its static and dynamic ports."""
    if raw is None:
        return None
    nets = _list(raw, field)
    if not nets:
        return None
    _need(len(nets) == 1, field, "only one network block is allowed in a task group")
    f = f"{field}[0]"
    n = _map(nets[0], f)
    mode = _str(n.get("Mode"), f"{f}.Mode", default="host") or "host"
    _need(mode == "host", f"{f}.Mode", f"network mode {mode!r} is not supported here (only host)")
    # Refused rather than dropped: a task would not get the resolv.conf it asked for.
    dns = n.get("DNS")
    _need(not dns or not any((dns.get(k) if isinstance(dns, dict) else True)
                             for k in ("Servers", "Searches", "Options")),
          f"{f}.DNS", "network DNS settings are not supported by this agent (tasks use the host's "
                      "resolv.conf)")
    labels: set[str] = set()
    out: dict[str, Any] = {"Mode": "host", "ReservedPorts": [], "DynamicPorts": []}
    for key in ("ReservedPorts", "DynamicPorts"):
        for i, p in enumerate(_list(n.get(key), f"{f}.{key}")):
            fp = f"{f}.{key}[{i}]"
            p = _map(p, fp)
            label = _str(p.get("Label"), f"{fp}.Label", required=True)
            _need(bool(_PORT_LABEL.match(label)), f"{fp}.Label", "must be letters, digits and underscores")
            _need(label not in labels, f"{fp}.Label", f"port label {label!r} is used twice")
            labels.add(label)
            _need(not p.get("IgnoreCollision"), f"{fp}.IgnoreCollision",
                  "not supported by this agent (a static port is taken by one allocation per address)")
            to = _int(p.get("To"), f"{fp}.To", default=0, minimum=-1, maximum=65535)
            port: dict[str, Any] = {"Label": label, "To": to}
            # Nomad's host_network: the client host_network whose address the port is given ("default",
            # or none: the node's own address).  Kept only when it names one, so a job that names none
            # reads (and diffs) as it always has.
            host_net = _str(p.get("HostNetwork"), f"{fp}.HostNetwork", default="")
            _need("${" not in host_net, f"{fp}.HostNetwork",
                  "interpolated host network names are not supported here")
            if host_net and host_net != "default":
                port["HostNetwork"] = host_net
            if key == "ReservedPorts":
                _need(p.get("Value") is not None, f"{fp}.Value", "a static port needs a value")
                port["Value"] = _int(p.get("Value"), f"{fp}.Value", default=0, minimum=1, maximum=65535)
                # Per host network, as Nomad's validation ("Static port %d already reserved by %s").
                taken = {(q["Value"], q.get("HostNetwork", "default")) for q in out["ReservedPorts"]}
                _need((port["Value"], port.get("HostNetwork", "default")) not in taken, f"{fp}.Value",
                      f"static port {port['Value']} is reserved twice")
            out[key].append(port)
    return [out] if labels else None


def _placement_prefs(obj: dict[str, Any], field: str, *, spreads: bool = True) -> None:
    """Affinities (and spreads) of a job, group or task, validated in place; dropped when empty."""
    for key, check in (("Affinities", _affinities), ("Spreads", _spreads)):
        if key == "Spreads" and not spreads:
            continue
        raw = obj.get(key)
        if raw is None:  # none given (most jobs): nothing to check, and no field name to make
            obj.pop(key, None)
            continue
        got = check(raw, f"{field}{key}" if not field else f"{field}.{key}")
        if got is None:
            obj.pop(key, None)
        else:
            obj[key] = got


def _given(v: Any) -> bool:
    """A block the job really sets: JSON from Nomad's own tools carries null (or empty) ones."""
    return v is not None and v != {} and v != [] and v != ""


def _unsupported_task_blocks(t: dict[str, Any], res: dict[str, Any], field: str) -> None:
    """Refuse a task block this agent would take and then ignore, as the HCL form refuses it: with
    Nomad CE's own message where Nomad CE refuses it too (job_endpoint_hook_*_ce.go and the Vault
    hook of a server without Vault), else naming what is not supported."""
    vault = t.get("Vault")
    if _given(vault):
        cluster = (vault.get("Cluster") if isinstance(vault, dict) else None) or "default"
        _need(False, f"{field}.Vault", f'Vault "{cluster}" not enabled but used in the job')
    _need(not _given(t.get("Schedule")), f"{field}.Schedule", "task schedules requires Nomad Enterprise")
    numa = res.get("NUMA")
    _need(not (isinstance(numa, dict) and numa.get("Affinity") not in (None, "", "none")),
          f"{field}.Resources.NUMA", "numa scheduling requires Nomad Enterprise")
    _need(not _given(res.get("Devices")), f"{field}.Resources.Devices",
          "devices (resources.device) are not supported by this agent: no device plugins fingerprint any")
    _need(not _given(t.get("CSIPluginConfig")), f"{field}.CSIPluginConfig",
          "CSI plugins (csi_plugin) are not supported by this agent")
    _need(not _given(t.get("Kind")), f"{field}.Kind",
          f"task kind {t.get('Kind')!r} (Consul Connect) is not supported by this agent")
    consul = t.get("Consul")
    _need(not (isinstance(consul, dict) and (consul.get("Cluster") or "default") != "default"),
          f"{field}.Consul", "non-default Consul cluster requires Nomad Enterprise")


def _cpu_or_cores(res: dict[str, Any], field: str) -> None:
    """A task's CPU ask: MHz (``CPU``) or whole cores (``Cores``), as Nomad's api Canonicalize and
    Resources.Validate take them: the CPU defaults to 100 only when neither is given, to 0 when cores are;
    not both, no negative cores, and at least 1 MHz without cores (MeetsMinResources)."""
    cores = _int(res.get("Cores"), f"{field}.Cores", default=0, minimum=None)
    _need(cores >= 0, f"{field}.Cores", f"cores value ({cores}) cannot be negative")
    cpu = _int(res.get("CPU"), f"{field}.CPU", default=0 if "Cores" in res and res["Cores"] is not None
               else DEFAULT_CPU_MHZ, minimum=None)
    _need(not (cores > 0 and cpu > 0), field, "Task can only ask for 'cpu' or 'cores' resource, not both.")
    _need(cpu >= 1 or cores > 0, f"{field}.CPU", f"minimum CPU value is 1; got {cpu}")
    res["CPU"] = cpu
    if cores:
        res["Cores"] = cores


def _task(raw: Any, field: str) -> dict[str, Any]:
    t = dict(_map(raw, field))
    t["Name"] = _str(t.get("Name"), f"{field}.Name", required=True)
    t["Driver"] = _str(t.get("Driver"), f"{field}.Driver", required=True)
    cfg = dict(_map(t.get("Config"), f"{field}.Config"))
    if t["Driver"] in ("raw_exec", "exec", "mock_driver", "sim"):
        if t["Driver"] != "sim":
            _str(cfg.get("command"), f"{field}.Config.command", required=True)
        args = _list(cfg.get("args"), f"{field}.Config.args")
        # Numbers and bools are kept as given: the driver converts them, as Nomad's driver schema does.
        _need(all(isinstance(a, (str, int, float, bool)) for a in args), f"{field}.Config.args",
              "must be a list of strings")
    t["Config"] = cfg
    res = dict(_map(t.get("Resources"), f"{field}.Resources"))
    _unsupported_task_blocks(t, res, field)
    _cpu_or_cores(res, f"{field}.Resources")
    res["MemoryMB"] = _int(res.get("MemoryMB"), f"{field}.Resources.MemoryMB", default=DEFAULT_MEMORY_MB,
                           minimum=10)  # Nomad's minimum memory
    memory_max(res, f"{field}.Resources", t["Name"])
    t["Resources"] = res
    t["Constraints"] = _constraints(t.get("Constraints"), f"{field}.Constraints")
    for i, c in enumerate(t["Constraints"]):  # Nomad's Task.Validate: the scheduler reads job's and group's
        _need(c["Operand"] not in ("distinct_hosts", "distinct_property"), f"{field}.Constraints[{i}]",
              f"Constraint {i + 1} has disallowed Operand at task level: {c['Operand']}")
    _placement_prefs(t, field, spreads=False)
    t["KillTimeout"] = _int(t.get("KillTimeout"), f"{field}.KillTimeout", default=DEFAULT_KILL_TIMEOUT_NS)
    t["KillSignal"] = _str(t.get("KillSignal"), f"{field}.KillSignal")
    t["Env"] = {str(k): str(v) for k, v in _map(t.get("Env"), f"{field}.Env").items()}
    artifacts = [_artifact(a, f"{field}.Artifacts[{i}]")
                 for i, a in enumerate(_list(t.get("Artifacts"), f"{field}.Artifacts"))]
    if artifacts:
        t["Artifacts"] = artifacts
    else:
        t.pop("Artifacts", None)
    templates = templates_of(t.get("Templates"), f"{field}.Templates")
    if templates:
        t["Templates"] = templates
    else:
        t.pop("Templates", None)  # jobs without templates are stored as they always were
    actions = _actions(t.get("Actions"), field, t["Name"])
    if actions:
        t["Actions"] = actions
    else:
        t.pop("Actions", None)  # as templates: kept only when given
    lc = t.get("LogConfig")
    t["LogConfig"] = log_config(lc, f"{field}.LogConfig") if lc is not None else \
        _default_block("LogConfig", "", lambda: log_config(None, f"{field}.LogConfig"))
    _shutdown_delay(t, field)
    if _bool(t.get("Leader"), f"{field}.Leader"):  # kept only when set: a job stored before is as it was
        t["Leader"] = True
    else:
        t.pop("Leader", None)
    lifecycle = _lifecycle(t.get("Lifecycle"), f"{field}.Lifecycle")
    if lifecycle:
        t["Lifecycle"] = lifecycle
    else:
        t.pop("Lifecycle", None)  # a main task, as jobs without the block have always been stored
    return t


_ACTION_NAME = re.compile(r"^[^\x00\s]{1,128}$")  # Nomad's validJobActionName


def _actions(raw: Any, field: str, task: str) -> list[dict[str, Any]]:
    """A task's ``Actions`` (Nomad 1.7's job actions: a named command an operator may run in the task,
    ``nomad job action``), checked as Nomad's Task.Validate: a command, a name of 1-128 characters
    without whitespace, each name once."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, a in enumerate(_list(raw, f"{field}.Actions")):
        w = f"{field}.Actions[{i}]"
        a = _map(a, w)
        name = _str(a.get("Name"), f"{w}.Name")
        command = _str(a.get("Command"), f"{w}.Command")
        args = _list(a.get("Args"), f"{w}.Args")
        _need(all(isinstance(x, str) for x in args), f"{w}.Args", "must be a list of strings")
        problems = ([] if command else ["command cannot be empty"]) + \
            ([] if _ACTION_NAME.match(name) else [f"invalid name '{name}'"])
        _need(not problems, w, f"Task {task} validation failed: Action {name} validation failed: "
              + "; ".join(problems))
        _need(name not in seen, w, f"Task {task} validation failed: Action {name} defined multiple times")
        seen.add(name)
        out.append({"Name": name, "Command": command, "Args": list(args) or None})
    return out


MEMORY_NO_LIMIT = -1  # Nomad's MemoryNoLimit: memory_max = -1, no hard memory limit at all


def memory_max(res: dict[str, Any], field: str, task: str) -> None:
    """A task's ``MemoryMaxMB`` (``memory_max``, memory oversubscription), validated in place with
    Nomad's message (``Resources.Validate``): 0 or unset is none, else at least ``MemoryMB``.  Kept
    as submitted (absent, null or 0 alike mean none), so a job is stored as it always was and a
    resubmission is no new version.  Nomad's -1 (no hard limit at all) is refused: this agent's
    exec driver always sets a hard limit."""
    mem_max = _int(res.get("MemoryMaxMB"), f"{field}.MemoryMaxMB", default=0, minimum=None)
    _need(mem_max != MEMORY_NO_LIMIT, f"{field}.MemoryMaxMB",
          "memory_max = -1 (no memory limit) is not supported by this agent")
    if mem_max != 0 and mem_max < res["MemoryMB"]:
        _need(False, field, f"Task {task} validation failed: MemoryMaxMB value ({mem_max}) should be larger "
              f"than MemoryMB value ({res['MemoryMB']})")


RECONCILE_OPTIONS = ("best_score", "keep_original", "keep_replacement", "longest_running")  # Nomad's


def _disconnect(g: dict[str, Any], field: str, job_type: str) -> None:
    """A group's ``Disconnect`` (Nomad's DisconnectStrategy, its Canonicalize and Validate), in place.

    Kept only when given, so a job stored before is as it was.  ``LostAfter`` (ns, default 0: none) is
    how long a disconnected node's allocations stay ``unknown`` before they are lost;
    ``StopOnClientAfter`` (ns, or null) how long a client that cannot heartbeat keeps them running;
    ``Replace`` (default true) whether they are replaced meanwhile; ``Reconcile`` which copy is kept
    when the node comes back.  The deprecated group keys ``MaxClientDisconnect`` and
    ``StopAfterClientDisconnect`` are kept as given and, as in Nomad 1.10+, ignored (a warning says
    so, :func:`disconnect_warnings`).
    """
    for key in ("MaxClientDisconnect", "StopAfterClientDisconnect"):
        if g.get(key) is None:
            g.pop(key, None)
        else:
            g[key] = _int(g[key], f"{field}.{key}", default=0, minimum=None)
    if g.get("Disconnect") is None:
        g.pop("Disconnect", None)
        return
    where = f"{field}.Disconnect"
    d = dict(_map(g["Disconnect"], where))
    unknown = sorted(set(d) - {"LostAfter", "StopOnClientAfter", "Replace", "Reconcile"})
    _need(not unknown, where, f"unknown field(s) {', '.join(unknown)}")
    d["LostAfter"] = _int(d.get("LostAfter"), f"{where}.LostAfter", default=0, minimum=None)
    if d.get("StopOnClientAfter") is not None:
        d["StopOnClientAfter"] = _int(d["StopOnClientAfter"], f"{where}.StopOnClientAfter", default=0,
                                      minimum=None)
    else:
        d["StopOnClientAfter"] = None
    d["Replace"] = True if d.get("Replace") is None else _bool(d["Replace"], f"{where}.Replace")
    d["Reconcile"] = _str(d.get("Reconcile"), f"{where}.Reconcile", default="best_score")
    # Nomad's DisconnectStrategy.Validate, its messages, in its order.
    stop = d["StopOnClientAfter"]
    if stop is not None:
        _need(stop >= 0, where, "stop_after cannot be a negative duration")
        _need(job_type in ("service", "batch"), where,
              "stop_after can only be used with service or batch job types")
    _need(d["LostAfter"] >= 0, where, "lost_after cannot be a negative duration")
    _need(stop is None or d["LostAfter"] == 0, where,
          "Disconnect cannot be configured with both lost_after and stop_after")
    _need(d["Reconcile"] in RECONCILE_OPTIONS, where, f"reconcile option is invalid: {d['Reconcile']}")
    g["Disconnect"] = d


def disconnect_warnings(job: dict[str, Any]) -> list[str]:
    """Nomad's TaskGroup.Warnings for the deprecated disconnect keys (Nomad 1.10+ ignores them)."""
    out = []
    for g in job.get("TaskGroups") or ():
        if g.get("MaxClientDisconnect") is not None:
            out.append("MaxClientDisconnect is deprecated and ignored in favor of Disconnect.LostAfter")
        if g.get("StopAfterClientDisconnect") is not None:
            out.append("StopAfterClientDisconnect is deprecated and ignored favor of "
                       "Disconnect.StopOnClientAfter")
    return out


def memory_max_warnings(job: dict[str, Any], oversubscription: bool) -> list[str]:
    """Nomad's memory oversubscription admission check: each task asking for memory_max while the
    scheduler configuration does not allow oversubscription gets a warning (the job is accepted; the
    scheduler leaves memory_max out of what it places)."""
    if oversubscription:
        return []
    return [f'Memory oversubscription is not enabled; Task "{g["Name"]}.{t["Name"]}" memory_max value will '
            "be ignored. Update the Scheduler Configuration to allow oversubscription."
            for g in job.get("TaskGroups") or () for t in g.get("Tasks") or ()
            if (t.get("Resources") or {}).get("MemoryMaxMB")]


def warnings_text(warnings: list[str]) -> str:
    """Nomad's ``helper.MergeMultierrorWarnings``: "" for none, else "N warning(s):" and a bullet each."""
    if not warnings:
        return ""
    head = "1 warning:\n" if len(warnings) == 1 else f"{len(warnings)} warnings:\n"
    return head + "".join(f"\n* {w.strip()}" for w in warnings)


# What a block the job leaves out canonicalises to (most jobs leave out most of them: restart,
# reschedule, migrate, update, ephemeral disk, log config) is the same validated defaults every
# time: each is worked out once, by the same code as a given block, and every job gets its own
# copy (each is a flat dict of scalars).  (block, job type) -> the canonical block.
_DEFAULT_BLOCKS: dict[tuple[str, str], dict[str, Any]] = {}


def _default_block(block: str, job_type: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    made = _DEFAULT_BLOCKS.get((block, job_type))
    if made is None:
        made = _DEFAULT_BLOCKS[(block, job_type)] = make()
    return dict(made)


def log_config(raw: Any, field: str) -> dict[str, Any]:
    """A task's ``LogConfig`` with Nomad's defaults, validated with Nomad's messages
    (``LogConfig.Validate``); null gives the defaults, as Nomad's Canonicalize."""
    lc = _map(raw, field)
    out = {}
    for key, default, top in (("MaxFiles", DEFAULT_LOG_MAX_FILES, MAX_LOG_MAX_FILES),
                              ("MaxFileSizeMB", DEFAULT_LOG_MAX_FILE_SIZE_MB, MAX_LOG_MAX_FILE_SIZE_MB)):
        v = lc.get(key)
        out[key] = _int(v, f"{field}.{key}", default=default, minimum=None, maximum=top)
    if out["MaxFiles"] < 1:
        _need(False, f"{field}.MaxFiles", f"minimum number of files is 1; got {out['MaxFiles']}")
    if out["MaxFileSizeMB"] < 1:
        _need(False, f"{field}.MaxFileSizeMB", f"minimum file size is 1MB; got {out['MaxFileSizeMB']}")
    out["Disabled"] = _bool(lc.get("Disabled"), f"{field}.Disabled")
    return out


def _ephemeral_disk(raw: Any, field: str) -> dict[str, Any]:
    """A group's ``EphemeralDisk`` with Nomad's defaults (null: size 300, neither sticky nor migrate),
    validated with Nomad's message for its minimum size."""
    d = _map(raw, field)
    size = _int(d.get("SizeMB"), f"{field}.SizeMB", default=DEFAULT_EPHEMERAL_DISK_MB, minimum=None)
    if size < MIN_EPHEMERAL_DISK_MB:
        _need(False, f"{field}.SizeMB", f"minimum DiskMB value is {MIN_EPHEMERAL_DISK_MB}; got {size}")
    return {"Sticky": _bool(d.get("Sticky"), f"{field}.Sticky"), "SizeMB": size,
            "Migrate": _bool(d.get("Migrate"), f"{field}.Migrate")}


def ephemeral_disk(group: dict[str, Any]) -> dict[str, Any]:
    """The group's EphemeralDisk; a group stored before it was kept has Nomad's default."""
    d = group.get("EphemeralDisk")
    if not isinstance(d, dict):
        return {"Sticky": False, "SizeMB": DEFAULT_EPHEMERAL_DISK_MB, "Migrate": False}
    return {"Sticky": bool(d.get("Sticky")), "SizeMB": int(d.get("SizeMB") or DEFAULT_EPHEMERAL_DISK_MB),
            "Migrate": bool(d.get("Migrate"))}


def group_disk_mb(group: dict[str, Any]) -> int:
    """The disk (MB) one allocation of *group* asks of its node (Nomad's Shared.DiskMB)."""
    return ephemeral_disk(group)["SizeMB"]


def log_settings(task: dict[str, Any]) -> tuple[int, int, bool]:
    """(max files, max file size in bytes, disabled) of a task; a task stored before LogConfig
    existed has Nomad's defaults."""
    lc = task.get("LogConfig") or {}
    return (int(lc.get("MaxFiles") or DEFAULT_LOG_MAX_FILES),
            int(lc.get("MaxFileSizeMB") or DEFAULT_LOG_MAX_FILE_SIZE_MB) << 20, bool(lc.get("Disabled")))


LIFECYCLE_HOOKS = ("prestart", "poststart", "poststop")  # Nomad's TaskLifecycleHook* constants


def _lifecycle(raw: Any, field: str) -> dict[str, Any] | None:
    """Nomad's TaskLifecycleConfig.Validate: a hook is required and must be one Nomad knows; no
    block (null) makes a main task."""
    if raw is None:
        return None
    lc = _map(raw, field)
    hook = _str(lc.get("Hook"), f"{field}.Hook")
    _need(bool(hook), field, "Lifecycle validation failed: no lifecycle hook provided")
    _need(hook in LIFECYCLE_HOOKS, f"{field}.Hook", f"Lifecycle validation failed: invalid hook: {hook}")
    sidecar = lc.get("Sidecar", False)
    _need(isinstance(sidecar, bool), f"{field}.Sidecar", f"must be a boolean, got {type(sidecar).__name__}")
    return {"Hook": hook, "Sidecar": sidecar}


def is_main_task(task: dict[str, Any]) -> bool:
    """Nomad's Task.IsMain: a task with no lifecycle hook."""
    return not (task.get("Lifecycle") or {}).get("Hook")


# Nomad's TaskArtifact rules (structs.TaskArtifact.Validate, api TaskArtifact.Canonicalize).
ARTIFACT_MODES = ("any", "file", "dir")
ARTIFACT_SCHEMES = ("http", "https")  # what this agent's fetcher (runtime.artifacts) fetches
CHECKSUM_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def _string_map(v: Any, field: str) -> dict[str, str] | None:
    m = _map(v, field)
    for k, value in m.items():
        _need(isinstance(value, str), f"{field}.{k}", f"must be a string, got {type(value).__name__}")
    return dict(m) or None


def _artifact(raw: Any, field: str) -> dict[str, Any]:
    """A task's artifact, validated as Nomad does, with its defaults (mode "any", destination
    ``local/``, or ``local/<file name>`` in file mode); a source this agent cannot fetch (git, s3,
    a path...) is refused here rather than when the task starts."""
    a = _map(raw, field)
    source = _str(a.get("GetterSource"), f"{field}.GetterSource")
    _need(bool(source.strip()), f"{field}.GetterSource", "source must be specified")
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    _need(scheme in ARTIFACT_SCHEMES or source.startswith("${"), f"{field}.GetterSource",
          f"source {_q(source)} is not supported by this agent: it fetches only http and https URLs "
          "(not go-getter's git, hg, s3, gcs or file sources)")
    mode = _str(a.get("GetterMode"), f"{field}.GetterMode", default="any")
    _need(mode in ARTIFACT_MODES, f"{field}.GetterMode",
          f"invalid artifact mode {_q(mode)}; must be one of: {', '.join(ARTIFACT_MODES)}")
    if a.get("RelativeDest") is None:
        from actors.client.artifacts import default_dest

        dest = default_dest(source, mode)
    else:
        dest = _str(a.get("RelativeDest"), f"{field}.RelativeDest")
    # PathEscapesAllocDir("task", dest): inside the allocation's directory (../alloc/ is fine);
    # joined as Go's filepath.Join, so an absolute destination is under the task's directory too.
    full = posixpath.normpath(f"/alloc-dir/alloc-id/task/{dest}")
    _need(full == "/alloc-dir/alloc-id" or full.startswith("/alloc-dir/alloc-id/"), f"{field}.RelativeDest",
          "destination escapes allocation directory")
    # insecure (no certificate check of an https source) and chown (the fetched files become the task
    # user's): kept only when set, so a job stored before they were read is the job it was.
    flags = {key: True for key in ("GetterInsecure", "Chown") if _bool(a.get(key), f"{field}.{key}")}
    options = _string_map(a.get("GetterOptions"), f"{field}.GetterOptions")
    if options and "checksum" in options:
        _checksum(options["checksum"], f"{field}.GetterOptions.checksum")
    return {"GetterSource": source, "GetterOptions": options,
            "GetterHeaders": _string_map(a.get("GetterHeaders"), f"{field}.GetterHeaders"),
            "GetterMode": mode, "RelativeDest": dest, **flags}


# Nomad's Template rules (structs.Template.Validate, api Template.Canonicalize, Task.Validate).
TEMPLATE_CHANGE_MODES = ("noop", "signal", "restart", "script")
TEMPLATE_SCRIPT_TIMEOUT_NS = 5_000_000_000  # api ChangeScript.Canonicalize: a change_script may run 5s
TEMPLATE_DEFAULT_SPLAY_NS = 5 * SECOND_NS
TEMPLATE_DEFAULT_PERMS = "0644"
_TEMPLATE_INVALID_MODE = "Invalid change mode. Must be one of the following: noop, signal, script, restart"


def templates_of(raw: Any, field: str) -> list[dict[str, Any]]:
    """A task's ``Templates``, each with Nomad's defaults, validated with Nomad's messages
    ("Template 1 validation failed: ..."; "Template 2 has same destination as 1")."""
    out: list[dict[str, Any]] = []
    dests: dict[str, int] = {}
    for i, item in enumerate(_list(raw, field)):
        t = _template(item, f"{field}[{i}]", i + 1)
        other = dests.get(t["DestPath"])
        _need(other is None, f"{field}[{i}]", f"Template {i + 1} has same destination as {other}")
        dests[t["DestPath"]] = i + 1
        out.append(t)
    return out


def _template(raw: Any, field: str, number: int) -> dict[str, Any]:
    a = _map(raw, field)
    errors: list[str] = []
    src = _str(a.get("SourcePath"), f"{field}.SourcePath")
    data = _str(a.get("EmbeddedTmpl"), f"{field}.EmbeddedTmpl")
    dest = _str(a.get("DestPath"), f"{field}.DestPath")
    mode = _str(a.get("ChangeMode"), f"{field}.ChangeMode", default="restart")
    # api Template.Canonicalize: signal mode without a ChangeSignal (absent, not "") sends SIGHUP
    signal = _str(a.get("ChangeSignal"), f"{field}.ChangeSignal").upper() \
        if a.get("ChangeSignal") is not None or mode != "signal" else "SIGHUP"
    env = _bool(a.get("Envvars"), f"{field}.Envvars")
    perms = _str(a.get("Perms"), f"{field}.Perms", default=TEMPLATE_DEFAULT_PERMS)
    splay = a.get("Splay")
    splay = TEMPLATE_DEFAULT_SPLAY_NS if splay is None else \
        _int(splay, f"{field}.Splay", default=0, minimum=None)
    script = _change_script(a.get("ChangeScript"), f"{field}.ChangeScript")
    # The rendered file's owner (uid, gid; nil or negative: the agent's); kept only when given.
    owner = {key: _int(a.get(key), f"{field}.{key}", default=0, minimum=None)
             for key in ("Uid", "Gid") if a.get(key) is not None}
    if _bool(a.get("Once"), f"{field}.Once"):  # rendered once, never watched; kept only when set
        owner["Once"] = True
    if not src and not data:
        errors.append("Must specify a source path or have an embedded template")
    if not dest:
        errors.append("Must specify a destination for the template")
    # escapingfs.PathEscapesAllocViaRelative("task", dest)
    full = posixpath.normpath(f"/alloc-dir/alloc-id/task/{dest}")
    if not (full == "/alloc-dir/alloc-id" or full.startswith("/alloc-dir/alloc-id/")):
        errors.append("destination escapes allocation directory")
    if mode == "signal":
        if not signal:
            errors.append("Must specify signal value when change mode is signal")
        else:
            from actors.client.drivers import DriverError, signal_number

            try:
                signal_number(signal)
            except DriverError:
                errors.append(f"unknown change_signal {_q(signal)}")
        if env:
            errors.append("cannot use signals with env var templates")
    elif mode == "script":  # Nomad's Template.Validate and ChangeScript.Validate
        if script is None:
            errors.append("must specify change script configuration value when change mode is script")
        elif not script["Command"]:
            errors.append("must specify script path value when change mode is script")
    elif mode not in TEMPLATE_CHANGE_MODES:
        errors.append(_TEMPLATE_INVALID_MODE)
    if splay < 0:
        errors.append("Must specify positive splay value")
    if perms and not (re.fullmatch(r"[0-7]+", perms) and int(perms, 8) < 0o10000):
        why = "invalid syntax" if not re.fullmatch(r"[0-7]+", perms) else "value out of range"
        errors.append(f'Failed to parse {_q(perms)} as octal: strconv.ParseUint: parsing {_q(perms)}: {why}')
    wait = None
    if a.get("Wait") is not None:
        w = _map(a.get("Wait"), f"{field}.Wait")
        wait = {k: (None if w.get(k) is None else _int(w.get(k), f"{field}.Wait.{k}", default=0))
                for k in ("Min", "Max")}
        if wait["Min"] is not None and wait["Max"] is not None and wait["Min"] > wait["Max"]:
            errors.append(f"wait min {go_duration(wait['Min'])} is greater than max "
                          f"{go_duration(wait['Max'])}")
    _need(not errors, field, f"Template {number} validation failed: {'; '.join(errors)}")
    left = _str(a.get("LeftDelim"), f"{field}.LeftDelim", default="{{")
    right = _str(a.get("RightDelim"), f"{field}.RightDelim", default="}}")
    return {"SourcePath": src, "DestPath": dest, "EmbeddedTmpl": data, "ChangeMode": mode,
            "ChangeSignal": signal, "Splay": splay, "Perms": perms, "LeftDelim": left, "RightDelim": right,
            "Envvars": env, "ErrMissingKey": _bool(a.get("ErrMissingKey"), f"{field}.ErrMissingKey"),
            "Wait": wait, **owner, **({"ChangeScript": script} if script is not None else {})}


def _change_script(raw: Any, field: str) -> dict[str, Any] | None:
    """A template's ChangeScript with api ChangeScript.Canonicalize's defaults (no args, a 5s timeout,
    fail_on_error false); None when absent."""
    if raw is None:
        return None
    c = _map(raw, field)
    args = [_str(x, f"{field}.Args[{i}]") for i, x in enumerate(_list(c.get("Args"), f"{field}.Args"))]
    timeout = c.get("Timeout")
    timeout = TEMPLATE_SCRIPT_TIMEOUT_NS if timeout is None else \
        _int(timeout, f"{field}.Timeout", default=0)
    return {"Command": _str(c.get("Command"), f"{field}.Command"), "Args": args, "Timeout": timeout,
            "FailOnError": _bool(c.get("FailOnError"), f"{field}.FailOnError")}


def _checksum(value: str, field: str) -> None:
    check = value.strip()
    _need(bool(check), field, "checksum value cannot be empty")
    parts = check.split(":")
    _need(len(parts) == 2, field, f'checksum must be given as "type:value"; got {_q(check)}')
    kind, digest = parts
    bad = next((c for c in digest if c not in "0123456789abcdefABCDEF"), None)
    _need(bad is None, field,
          f"invalid checksum: encoding/hex: invalid byte: U+{ord(bad or ' '):04X} {bad!r}")
    _need(len(digest) % 2 == 0, field, "invalid checksum: encoding/hex: odd length hex string")
    _need(kind in CHECKSUM_BYTES, field, f"unsupported checksum type: {kind}")
    _need(len(digest) == 2 * CHECKSUM_BYTES[kind], field, f"invalid {kind} checksum: {digest}")


def _task_services(g: dict[str, Any], job_id: str, field: str) -> None:
    for i, t in enumerate(g["Tasks"]):
        svcs = _services(t.get("Services"), f"{field}.Tasks[{i}].Services",
                         f"{job_id}-{g['Name']}-{t['Name']}", t["Name"])
        if svcs is None:
            t.pop("Services", None)
        else:
            t["Services"] = svcs


SERVICE_PROVIDERS = ("nomad",)
_PORT_NUMBER = re.compile(r"[0-9]{1,5}")  # a service's port given as a number (str.isdigit takes "²")
SERVICE_ADDRESS_MODES = ("auto", "host")
# Nomad's service name rule (RFC 1123 label, up to 63), checked after ${...} parts are set aside.
_SERVICE_NAME_RE = re.compile(r"^(?:[a-zA-Z0-9]|\$\{[^}]+\})(?:[a-zA-Z0-9-]|\$\{[^}]+\}){0,62}$")


# Nomad's ServiceCheck rules for the nomad provider (structs/services.go
# ServiceCheck.Canonicalize, validateCommon, validateNomad): the checks the
# client runs itself.
CHECK_TYPES = ("tcp", "http")
CHECK_MIN_INTERVAL_NS = SECOND_NS  # minCheckInterval / minCheckTimeout
# helper.IsMethodHTTP
CHECK_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
CHECK_PROTOCOLS = ("http", "https")
CHECK_ON_UPDATE = ("require_healthy", "ignore")
SERVICE_ON_UPDATE = ("require_healthy", "ignore_warnings", "ignore")  # Nomad's Service.Validate
CHECK_ADDRESS_MODES = ("", "host", "alloc")
CHECK_INITIAL_STATUS = ("", "passing", "warning", "critical")
# Fields of Nomad's check that only Consul checks take: refused when set,
# by the names Nomad's messages use.
_CONSUL_ONLY_INTS = (("SuccessBeforePassing", "success_before_passing"),
                     ("FailuresBeforeCritical", "failures_before_critical"),
                     ("FailuresBeforeWarning", "failures_before_warning"))
_SCRIPT_GRPC_FIELDS = (("GRPCService", "grpc_service"), ("GRPCUseTLS", "grpc_use_tls"),
                       ("Command", "command"), ("Args", "args"))


def _q(s: str) -> str:
    """Go's %q of a string (what Nomad's messages quote with)."""
    return json.dumps(s, ensure_ascii=False)


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` ("500ms", "1.5s", "1m30s") of nanoseconds."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def frac(v: int, unit: int) -> str:
        whole, rest = divmod(v, unit)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000)}\u00b5s"
    if ns < SECOND_NS:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, ns = divmod(ns, 3600 * SECOND_NS)
    minutes, ns = divmod(ns, 60 * SECOND_NS)
    out = f"{hours}h{minutes}m" if hours else f"{minutes}m" if minutes else ""
    return f"{sign}{out}{frac(ns, SECOND_NS)}s"


def _bool(v: Any, field: str) -> bool:
    if v is None:
        return False
    _need(isinstance(v, bool), field, f"must be a boolean, got {type(v).__name__}")
    return v


def _check_header(raw: Any, field: str) -> dict[str, list[str]]:
    out = {}
    for k, vs in _map(raw, field).items():
        vs = _list(vs, f"{field}.{k}")
        _need(all(isinstance(v, str) for v in vs), f"{field}.{k}", "must be a list of strings")
        out[str(k)] = list(vs)
    return out


def _checks(raw: Any, field: str, svc: dict[str, Any], task_name: str) -> list[dict[str, Any]]:
    """A nomad-provider service's ``Checks``: Nomad's http and tcp checks, canonical.

    Validated as Nomad's ServiceCheck.validateNomad does, in its order and
    with its messages; defaulted as its Canonicalize does (the name
    ``service: "<name>" check``, ``OnUpdate`` its service's or require_healthy, a task-level
    service's task as ``TaskName``), plus the ``Method`` and ``Protocol``
    the client's checker uses when none is given.  What only Consul checks
    take is refused when set.  ``CheckRestart`` (the check's, over its
    service's) restarts the task after ``Limit`` failures in a row.  Other
    keys are ignored, as in a service, and not
    kept: a canonical check has exactly the fields the client runs.
    """
    out = []
    for i, item in enumerate(_list(raw, field)):
        where = f"{field}[{i}]"
        c = _map(item, where)
        name = _str(c.get("Name"), f"{where}.Name", default=f"service: {_q(svc['Name'])} check")
        ctype = _str(c.get("Type"), f"{where}.Type").lower()
        port = c.get("PortLabel", "")
        _need(port is None or (isinstance(port, (str, int)) and not isinstance(port, bool)),
              f"{where}.PortLabel", "must be a port label or a port number")
        port = "" if port is None else str(port)
        # Service.validateCheckPort: an http or tcp check needs a port to dial.
        _need(bool(port or svc["PortLabel"]) or ctype not in CHECK_TYPES, where,
              f"Check {name} invalid: check requires a port but neither check nor service "
              f"{_q(svc['Name'])} have a port")
        _need(ctype in CHECK_TYPES, f"{where}.Type",
              f"invalid check type ({_q(ctype)}), must be one of {', '.join(CHECK_TYPES)}")
        path = _str(c.get("Path"), f"{where}.Path")
        if ctype == "http":
            _need(bool(path), f"{where}.Path", "http type must have http path")
            try:
                parts = urlsplit(path)
            except ValueError:
                raise JobError(f"{where}.Path: http type must have valid http path") from None
            _need(not parts.scheme and not parts.netloc, f"{where}.Path",
                  "http type must have relative http path")
        least = go_duration(CHECK_MIN_INTERVAL_NS)
        interval = _int(c.get("Interval"), f"{where}.Interval", default=0, minimum=None)
        _need(interval != 0, f"{where}.Interval",
              f"missing required value interval. Interval cannot be less than {least}")
        _need(interval >= CHECK_MIN_INTERVAL_NS, f"{where}.Interval",
              f"interval ({go_duration(interval)}) cannot be lower than {least}")
        timeout = _int(c.get("Timeout"), f"{where}.Timeout", default=0, minimum=None)
        _need(timeout != 0, f"{where}.Timeout",
              f"missing required value timeout. Timeout cannot be less than {least}")
        _need(timeout >= CHECK_MIN_INTERVAL_NS, f"{where}.Timeout",
              f"timeout ({go_duration(timeout)}) is lower than required minimum timeout {least}")
        initial = _str(c.get("InitialStatus"), f"{where}.InitialStatus")
        _need(initial in CHECK_INITIAL_STATUS, f"{where}.InitialStatus",
              f"invalid initial check state ({initial}), must be one of "
              f"{', '.join(_q(s) for s in CHECK_INITIAL_STATUS[1:])} or empty")
        mode = _str(c.get("AddressMode"), f"{where}.AddressMode")
        _need(mode != "auto", f"{where}.AddressMode",
              f"invalid address_mode {_q(mode)} - auto only valid for services")
        _need(mode in CHECK_ADDRESS_MODES or mode == "driver", f"{where}.AddressMode",
              f"invalid address_mode {_q(mode)}")
        on_update = _str(c.get("OnUpdate"), f"{where}.OnUpdate",
                         default=svc.get("OnUpdate") or "require_healthy")
        _need(on_update in CHECK_ON_UPDATE or on_update == "ignore_warnings", f"{where}.OnUpdate",
              f'on_update must be "require_healthy", "ignore_warnings", or "ignore"; got {_q(on_update)}')
        _need(not _bool(c.get("Expose"), f"{where}.Expose"), f"{where}.Expose",
              "expose may only be set for Consul service checks")
        _need(on_update != "ignore_warnings", f"{where}.OnUpdate",
              "on_update may only be set to ignore_warnings for Consul service checks")
        _need(mode != "driver", f"{where}.AddressMode",
              "address_mode = driver may only be set for Consul service checks")
        method = _str(c.get("Method"), f"{where}.Method")
        if ctype == "http":
            _need(not method or method in CHECK_METHODS, f"{where}.Method",
                  f"method type {_q(method)} not supported in Nomad http check")
        for key, snake in _CONSUL_ONLY_INTS:
            _need(_int(c.get(key), f"{where}.{key}", default=0, minimum=None) == 0, f"{where}.{key}",
                  f"{snake} may only be set for Consul service checks")
        _need(not _str(c.get("TLSServerName"), f"{where}.TLSServerName"), f"{where}.TLSServerName",
              "tls_server_name may only be set for Consul service checks")
        skip_verify = _bool(c.get("TLSSkipVerify"), f"{where}.TLSSkipVerify")  # an https check's (Nomad's)
        for key, snake in _SCRIPT_GRPC_FIELDS:
            _need(c.get(key) in (None, "", False, []), f"{where}.{key}",
                  f"{snake} is not used by nomad service checks")
        restart = _check_restart(c.get("CheckRestart"), svc.get("CheckRestart"), f"{where}.CheckRestart")
        _need(restart is None or on_update != "ignore", f"{where}.OnUpdate",
              'on_update value "ignore" is not compatible with check_restart')
        protocol = _str(c.get("Protocol"), f"{where}.Protocol", default="http")
        _need(protocol in CHECK_PROTOCOLS, f"{where}.Protocol",
              f'protocol must be "http" or "https"; got {_q(protocol)}')
        out.append({
            "Name": name, "Type": ctype, "Path": path, "Method": method or "GET", "Protocol": protocol,
            "PortLabel": port, "Interval": interval, "Timeout": timeout, "OnUpdate": on_update,
            "AddressMode": mode, "Header": _check_header(c.get("Header"), f"{where}.Header"),
            "Body": _str(c.get("Body"), f"{where}.Body"),
            "TaskName": _str(c.get("TaskName"), f"{where}.TaskName", default=task_name),
            "CheckRestart": restart,
            # Kept only when set, so a job stored before it was read is the job it was.
            **({"TLSSkipVerify": True} if skip_verify else {}),
        })
    return out


CHECK_RESTART_GRACE_NS = SECOND_NS  # api.CheckRestart.Canonicalize: grace defaults to 1s


def _check_restart(raw: Any, inherited: Any, field: str) -> dict[str, Any] | None:
    """A check's ``CheckRestart`` over its service's (Nomad's ``CheckRestart.Merge``: the check's
    limit when above 0, its grace when given); None when it restarts nothing (limit 0)."""
    base = _map(inherited, field) if inherited is not None else {}
    own = _map(raw, field) if raw is not None else {}
    limit = _int(own.get("Limit") or base.get("Limit"), f"{field}.Limit", default=0, minimum=None)
    _need(limit >= 0, f"{field}.Limit", f"limit must be greater than or equal to 0 but found {limit}")
    grace_raw = own.get("Grace") if own.get("Grace") is not None else base.get("Grace")
    grace = _int(grace_raw, f"{field}.Grace", default=CHECK_RESTART_GRACE_NS, minimum=None)
    _need(grace >= 0, f"{field}.Grace", f"grace period must be greater than or equal to 0 but found {grace}")
    ignore = _bool(own.get("IgnoreWarnings"), f"{field}.IgnoreWarnings") or \
        _bool(base.get("IgnoreWarnings"), f"{field}.IgnoreWarnings")
    _need(not ignore, f"{field}.IgnoreWarnings",
          "ignore_warnings on check_restart only supported for Consul service checks")
    if limit == 0:
        return None
    return {"Limit": limit, "Grace": grace, "IgnoreWarnings": False}


def _services(raw: Any, field: str, default_name: str, task_name: str = "") -> list[dict[str, Any]] | None:
    """``service`` blocks (Nomad's native service discovery, provider "nomad"); None when there are none.

    A service registers the allocation's address and the port its
    ``PortLabel`` names while the allocation runs.  Its ``Checks`` (Nomad's
    native http and tcp checks, see :func:`_checks`) are run by the client
    that runs the allocation.  The Consul provider is refused by name:
    nothing here would register with Consul.
    """
    items = _list(raw, field)
    if not items:
        return None
    out = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        svc = dict(_map(item, where))
        svc["Name"] = _str(svc.get("Name"), f"{where}.Name", default=default_name)
        _need(bool(_SERVICE_NAME_RE.match(svc["Name"])), f"{where}.Name",
              f"service name must be valid per RFC 1123 and can contain only alphanumeric characters or "
              f"dashes, and be at most 63 characters: {svc['Name']!r}")
        _need(not _given(svc.get("Connect")), f"{where}.Connect",
              "Consul Connect (service.connect) is not supported by this agent (no Consul integration)")
        svc["Provider"] = _str(svc.get("Provider"), f"{where}.Provider", default="nomad")
        _need(svc["Provider"] in SERVICE_PROVIDERS, f"{where}.Provider",
              f"provider {svc['Provider']!r} is not available on this agent (no Consul integration); "
              'use provider = "nomad"')
        tags = _list(svc.get("Tags"), f"{where}.Tags")
        _need(all(isinstance(t, str) for t in tags), f"{where}.Tags", "must be a list of strings")
        svc["Tags"] = tags
        port = svc.get("PortLabel", "")
        _need(isinstance(port, (str, int)) and not isinstance(port, bool), f"{where}.PortLabel",
              "must be a port label or a port number")
        svc["PortLabel"] = str(port)
        svc["AddressMode"] = _str(svc.get("AddressMode"), f"{where}.AddressMode", default="auto")
        _need(svc["AddressMode"] in SERVICE_ADDRESS_MODES, f"{where}.AddressMode",
              f"must be one of {SERVICE_ADDRESS_MODES} for the nomad provider")
        svc["Address"] = _str(svc.get("Address"), f"{where}.Address")
        svc["Meta"] = {str(k): str(v) for k, v in _map(svc.get("Meta"), f"{where}.Meta").items()}
        # canary_tags (registered while the allocation is an unpromoted canary), canary_meta (Consul's,
        # as meta); Nomad's Canonicalize makes empty ones nil: kept only when given.
        canary_tags = _list(svc.get("CanaryTags"), f"{where}.CanaryTags")
        _need(all(isinstance(t, str) for t in canary_tags), f"{where}.CanaryTags",
              "must be a list of strings")
        canary_meta = {str(k): str(v) for k, v in _map(svc.get("CanaryMeta"), f"{where}.CanaryMeta").items()}
        for key, value in (("CanaryTags", canary_tags), ("CanaryMeta", canary_meta)):
            if value:
                svc[key] = value
            else:
                svc.pop(key, None)
        # The service's on_update is its checks' when they set none (Nomad's Service.Canonicalize); kept
        # only when given, so a job stored before it was read is the job it was.
        on_update = _str(svc.get("OnUpdate"), f"{where}.OnUpdate")
        _need(on_update in ("", *SERVICE_ON_UPDATE), f"{where}.OnUpdate",
              f"Service on_update must be {', '.join(_q(m) for m in SERVICE_ON_UPDATE[:-1])}, or "
              f"{_q(SERVICE_ON_UPDATE[-1])}; not {_q(on_update)}")
        if on_update:
            svc["OnUpdate"] = on_update
        else:
            svc.pop("OnUpdate", None)
        checks = _checks(svc.get("Checks"), f"{where}.Checks", svc, task_name)
        svc.pop("CheckRestart", None)  # a service's check_restart is its checks' (Nomad's Canonicalize)
        if checks:
            svc["Checks"] = checks
        else:
            svc.pop("Checks", None)  # Nomad's Canonicalize: no checks is nil
        out.append(svc)
    names = [(s["Name"], s["PortLabel"]) for s in out]
    _need(len(set(names)) == len(names), field, "services must have distinct name and port label pairs")
    return out


def _check_service_ports(group: dict[str, Any], field: str) -> None:
    """Every service's and check's port is a label of the group's network, or a number (as Nomad checks)."""
    nets = group.get("Networks") or ()
    labels = {p["Label"] for n in nets for p in (*n.get("ReservedPorts", ()), *n.get("DynamicPorts", ()))}
    owners = [("", group)] + [(f".Tasks[{t['Name']}]", t) for t in group["Tasks"]]

    def need_port(port: str, where: str, what: str) -> None:
        _need(not port or _PORT_NUMBER.fullmatch(port) is not None or port in labels, where,
              f"port label {port!r} referenced by {what} does not exist in the group's network")

    for suffix, owner in owners:
        for svc in owner.get("Services") or ():
            need_port(svc["PortLabel"], f"{field}{suffix}.Services", f"service {svc['Name']!r}")
            for check in svc.get("Checks") or ():
                need_port(check["PortLabel"], f"{field}{suffix}.Services",
                          f"check {check['Name']!r} of service {svc['Name']!r}")


def _update(raw: dict[str, Any], field: str) -> dict[str, Any]:
    """An ``update`` block (job-level merged under the group's), over Nomad's defaults."""
    u = {**UPDATE_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    for k in ("Stagger", "MinHealthyTime", "HealthyDeadline", "ProgressDeadline"):
        u[k] = _int(u.get(k), f"{field}.{k}", default=UPDATE_DEFAULTS[k], minimum=0)  # type: ignore[arg-type]
    u["MaxParallel"] = _int(u.get("MaxParallel"), f"{field}.MaxParallel", default=1, minimum=0)
    u["Canary"] = _int(u.get("Canary"), f"{field}.Canary", default=0, minimum=0)
    if u.get("HealthCheck") not in HEALTH_CHECKS:
        _need(False, f"{field}.HealthCheck", f"must be one of {HEALTH_CHECKS}")
    for k in ("AutoRevert", "AutoPromote"):
        _need(isinstance(u.get(k), bool), f"{field}.{k}", "must be a boolean")
    # Nomad's UpdateStrategy.Validate, with its messages.
    _need(not u["AutoPromote"] or u["Canary"] > 0, f"{field}.AutoPromote",
          "Auto Promote requires a Canary count greater than zero")
    _need(u["HealthyDeadline"] > 0, f"{field}.HealthyDeadline", "Healthy deadline must be greater than zero")
    _need(u["MinHealthyTime"] < u["HealthyDeadline"], f"{field}.MinHealthyTime",
          "Minimum healthy time must be less than healthy deadline")
    _need(u["ProgressDeadline"] == 0 or u["HealthyDeadline"] < u["ProgressDeadline"],
          f"{field}.HealthyDeadline", "Healthy deadline must be less than progress deadline")
    _need(u["Stagger"] > 0, f"{field}.Stagger", "Stagger must be greater than zero")
    return u


def _migrate_strategy(group_mg: Any, job_mg: Any, field: str) -> dict[str, Any]:
    """A service group's ``Migrate``: the group's block merged over the job's, over Nomad's
    DefaultMigrateStrategy (api TaskGroup.Canonicalize, MigrateStrategy.Merge), checked as Nomad's
    MigrateStrategy.Validate, with its messages."""
    mg = dict(MIGRATE_DEFAULTS)
    for raw, where in ((job_mg, "Migrate"), (group_mg, field)):
        mg.update({k: v for k, v in _map(raw, where).items() if v is not None})
    n = mg["MaxParallel"] = _int(mg["MaxParallel"], f"{field}.MaxParallel", default=1, minimum=None)
    hc = mg["HealthCheck"] = _str(mg["HealthCheck"], f"{field}.HealthCheck")
    for k in ("MinHealthyTime", "HealthyDeadline"):
        mg[k] = _int(mg[k], f"{field}.{k}", default=MIGRATE_DEFAULTS[k], minimum=None)  # type: ignore[arg-type]
    _need(n >= 0, f"{field}.MaxParallel", f"MaxParallel must be >= 0 but found {n}")
    if hc == "":
        _need(n == 0, f"{field}.HealthCheck", "Missing HealthCheck")
    else:
        _need(hc in MIGRATE_HEALTH_CHECKS, f"{field}.HealthCheck", f"Invalid HealthCheck: {_q(hc)}")
    for k in ("MinHealthyTime", "HealthyDeadline"):
        _need(mg[k] >= 0, f"{field}.{k}", f"{k} is {go_duration(mg[k])} and must be >= 0")
    _need(mg["MinHealthyTime"] <= mg["HealthyDeadline"], f"{field}.MinHealthyTime",
          "MinHealthyTime must be less than HealthyDeadline")
    return mg


def _reschedule_policy(group_rp: Any, job_rp: Any, job_type: str, field: str) -> dict[str, Any] | None:
    """Nomad's ReschedulePolicy of a group: the job's ``Reschedule`` and the group's own over the job
    type's defaults (api Canonicalize), checked as ``ReschedulePolicy.Validate``; a system or sysbatch job
    has none (each of its allocations runs on its own node, never elsewhere)."""
    if job_type in ("system", "sysbatch"):
        _need(group_rp is None and job_rp is None, field,
              "System or sysbatch jobs should not have a reschedule policy")
        return None
    rp = {**RESCHEDULE_DEFAULTS[job_type], **_map(job_rp, "Reschedule"), **_map(group_rp, field)}
    rp["Attempts"] = _int(rp.get("Attempts"), f"{field}.Attempts", default=0, minimum=0,
                          maximum=MAX_RESCHEDULE_ATTEMPTS)
    for key in ("Interval", "Delay", "MaxDelay"):
        rp[key] = _int(rp.get(key), f"{field}.{key}", default=0, minimum=0, maximum=MAX_DURATION_NS)
    _need(isinstance(rp.get("Unlimited"), bool), f"{field}.Unlimited", "must be a boolean")
    rp["DelayFunction"] = _str(rp.get("DelayFunction"), f"{field}.DelayFunction", default="")
    if not (rp["Attempts"] > 0 or rp["Unlimited"]):
        return rp  # never rescheduled: nothing else is looked at (Nomad's Enabled)
    attempts, interval, delay, max_delay = rp["Attempts"], rp["Interval"], rp["Delay"], rp["MaxDelay"]
    if attempts > 0:
        _need(interval > 0, field, "Interval must be a non zero value if Attempts > 0")
        if rp["Unlimited"]:
            _need(False, field, f"Reschedule Policy with Attempts = {attempts}, Interval = "
                  f"{go_duration(interval)}, and Unlimited = true is ambiguous")
    # Each message is formatted only when its check fails (go_duration and %q cost, run on every job).
    if delay < RESCHEDULE_MIN_DELAY_NS:
        _need(False, field,
              f"Delay cannot be less than {go_duration(RESCHEDULE_MIN_DELAY_NS)} (got {go_duration(delay)})")
    fn = rp["DelayFunction"]
    if fn not in RESCHEDULE_DELAY_FUNCTIONS:
        functions = " ".join(_q(f) for f in RESCHEDULE_DELAY_FUNCTIONS)
        _need(False, field, f"Invalid delay function {_q(fn)}, must be one of [{functions}]")
    if fn != "constant":
        if max_delay < RESCHEDULE_MIN_DELAY_NS:
            _need(False, field, f"Max Delay cannot be less than "
                  f"{go_duration(RESCHEDULE_MIN_DELAY_NS)} (got {go_duration(delay)})")
        if max_delay < delay:
            _need(False, field,
                  f"Max Delay cannot be less than Delay {go_duration(delay)} (got {go_duration(max_delay)})")
    if not rp["Unlimited"]:
        if interval < RESCHEDULE_MIN_INTERVAL_NS:
            _need(False, field, f"Interval cannot be less than "
                  f"{go_duration(RESCHEDULE_MIN_INTERVAL_NS)} (got {go_duration(interval)})")
        possible, recommended = _viable_attempts(attempts, interval, delay, max_delay, fn)
        if possible is not None:
            ceiling = "" if fn == "constant" else f", and delay ceiling {go_duration(max_delay)}"
            joiner = " and " if fn == "constant" else ", "
            at_least = go_duration(recommended // SECOND_NS * SECOND_NS)
            _need(False, field, f"Nomad can only make {possible} attempts in {go_duration(interval)} with "
                  f"initial delay {go_duration(delay)}{joiner}delay function {_q(fn)}{ceiling}; set the "
                  f"interval to at least {at_least} to accommodate {attempts} attempts")
    return rp


def _viable_attempts(attempts: int, interval: int, delay: int, max_delay: int,
                     fn: str) -> tuple[int | None, int]:
    """Nomad's viableAttempts: (None if the attempts fit in the interval, else how many do; the interval they
    need)."""
    possible, recommended = 0, 0
    if fn == "constant":
        recommended = attempts * delay
        return (None if interval >= recommended else interval // delay), recommended
    if fn == "exponential":
        # Doubling until the ceiling (a few dozen steps at most), then each attempt adds the ceiling:
        # counted in closed form, so a huge Attempts costs nothing to check.
        i = 0
        while i < attempts and delay << i <= max_delay:
            recommended = delay << i
            possible += recommended < interval
            i += 1
        rest = attempts - i
        if rest > 0:
            if max_delay > 0:
                possible += max(0, min(rest, (interval - recommended - 1) // max_delay))
            elif recommended < interval:
                possible += rest
            recommended += rest * max_delay
        return (None if possible >= attempts else possible), recommended
    slots = [delay, delay]  # fibonacci
    ceiling = False
    for i in range(2, attempts):
        if ceiling:
            nxt = slots[i - 1] + max_delay
        else:
            nxt = slots[i - 1] + slots[i - 2]
            if nxt > max_delay:
                nxt, ceiling = max_delay, True
        slots.append(nxt)
    recommended = slots[-1]
    if interval >= recommended:
        return None, recommended
    return next((i for i, s in enumerate(slots) if s > interval), 0), recommended


def _shutdown_delay(owner: dict[str, Any], field: str) -> None:
    """A group's or task's ``ShutdownDelay`` (ns; Nomad's Validate: not negative), kept only when set, so a
    job stored before it was read is the job it was."""
    delay = _int(owner.get("ShutdownDelay"), f"{field}.ShutdownDelay", default=0, minimum=None)
    _need(delay >= 0, f"{field}.ShutdownDelay", "ShutdownDelay must be a positive value")
    if delay:
        owner["ShutdownDelay"] = delay
    else:
        owner.pop("ShutdownDelay", None)


def _restart_policy(rp: dict[str, Any], field: str) -> dict[str, Any]:
    """A restart policy (a group's over the job type's defaults, or a task's over its group's), validated
    as Nomad's TaskGroup.Validate checks a group's (RestartPolicy.Validate): a known mode, no "delay" mode
    without attempts, an interval of at least RESTART_MIN_INTERVAL_NS, and room in it for every attempt's
    delay. (Nomad leaves a task's own merged policy unchecked; one the client could not run -- an interval
    of 0 -- is refused here rather than failing every allocation.)"""
    rp = dict(rp)
    rp["Attempts"] = _int(rp.get("Attempts"), f"{field}.Attempts", default=2)
    rp["Interval"] = _int(rp.get("Interval"), f"{field}.Interval", default=0, minimum=0)
    rp["Delay"] = _int(rp.get("Delay"), f"{field}.Delay", default=0, minimum=0)
    if rp.get("Mode") not in RESTART_MODES:
        _need(False, field, f"Unsupported restart mode: {_q(str(rp.get('Mode')))}")
    attempts, interval, delay = rp["Attempts"], rp["Interval"], rp["Delay"]
    if attempts == 0 and rp["Mode"] != "fail":
        _need(False, field, f"Restart policy {_q(rp['Mode'])} with 0 attempts is ambiguous")
    if interval < RESTART_MIN_INTERVAL_NS:
        _need(False, field, f"Interval can not be less than {go_duration(RESTART_MIN_INTERVAL_NS)} "
              f"(got {go_duration(interval)})")
    if delay * attempts > interval:
        _need(False, field, f"Nomad can't restart the TaskGroup {attempts} times in an interval of "
              f"{go_duration(interval)} with a delay of {go_duration(delay)}")
    # render_templates: a restart renders the task's templates afresh; kept only when set, so a job
    # stored before it was read is the job it was.
    if _bool(rp.get("RenderTemplates"), f"{field}.RenderTemplates"):
        rp["RenderTemplates"] = True
    else:
        rp.pop("RenderTemplates", None)
    return rp


def _signal_constraint(g: dict[str, Any]) -> None:
    """Nomad's jobImpliedConstraints for signals (Job.RequiredSignals): a group whose tasks are killed
    with a ``kill_signal`` or signalled by a template (``change_mode = "signal"``) runs only on nodes
    whose ``os.signals`` have them all -- ``${attr.os.signals} set_contains <sorted, comma-joined>``,
    added once (an unknown name then fails placement, rather than every allocation on its client)."""
    wanted = {t["KillSignal"] for t in g["Tasks"] if t.get("KillSignal")}
    wanted |= {tpl["ChangeSignal"] for t in g["Tasks"] for tpl in t.get("Templates") or ()
               if tpl.get("ChangeMode") == "signal" and tpl.get("ChangeSignal")}
    if not wanted:
        return
    implied = {"LTarget": "${attr.os.signals}", "RTarget": ",".join(sorted(wanted)),
               "Operand": "set_contains"}
    if implied not in g["Constraints"]:
        g["Constraints"].append(implied)


def _group(raw: Any, field: str, job_type: str, job_update: dict[str, Any] | None = None,
           job_reschedule: Any = None, job_migrate: Any = None) -> dict[str, Any]:
    g = dict(_map(raw, field))
    g["Name"] = _str(g.get("Name"), f"{field}.Name", required=True)
    # Nomad's TaskGroup.Canonicalize: no count, but a scaling policy's min: the count is that min.
    sc = g.get("Scaling")
    lo = sc.get("Min") if isinstance(sc, dict) else None
    default = lo if isinstance(lo, int) and not isinstance(lo, bool) and 0 <= lo <= MAX_COUNT else 1
    g["Count"] = _int(g.get("Count"), f"{field}.Count", default=default, maximum=MAX_COUNT)
    if job_type == "system":
        _need(g["Count"] <= 1, f"{field}.Count", "a system job's group runs once per node (count 0 or 1)")
    consul = g.get("Consul")
    _need(not (isinstance(consul, dict) and (consul.get("Cluster") or "default") != "default"),
          f"{field}.Consul", "non-default Consul cluster requires Nomad Enterprise")
    tasks = _list(g.get("Tasks"), f"{field}.Tasks")
    _need(bool(tasks), f"{field}.Tasks", "a task group needs at least one task")
    g["Tasks"] = [_task(t, f"{field}.Tasks[{i}]") for i, t in enumerate(tasks)]
    names = [t["Name"] for t in g["Tasks"]]
    _need(len(set(names)) == len(names), f"{field}.Tasks", "task names must be unique")
    _need(sum(1 for t in g["Tasks"] if t.get("Leader")) <= 1, f"{field}.Tasks",
          "Only one task may be marked as leader")  # Nomad's TaskGroup.Validate
    _shutdown_delay(g, field)
    _disconnect(g, field, job_type)
    if g.get("MaxRunDuration") is not None:  # kept only when given: a job stored before is as it was
        mrd = _int(g["MaxRunDuration"], f"{field}.MaxRunDuration", default=0, minimum=None)
        _need(mrd > 0, f"{field}.MaxRunDuration", "MaxRunDuration must be greater than zero")
        _need(job_type in ("batch", "sysbatch"), f"{field}.MaxRunDuration",
              f'Job type "{job_type}" does not allow max_run_duration')
    else:
        g.pop("MaxRunDuration", None)
    # Nomad's TaskGroup.Validate: prestart, poststart and poststop tasks run around main tasks.
    if not any(is_main_task(t) for t in g["Tasks"]):
        _need(False, f"{field}.Tasks", f"Task group {g['Name']} must have at least one main task")
    where = f"{field}.RestartPolicy"
    if g.get("RestartPolicy") is None:
        rp = _default_block("RestartPolicy", job_type,
                            lambda: _restart_policy(RESTART_DEFAULTS[job_type], where))
    else:
        rp = _restart_policy({**RESTART_DEFAULTS[job_type], **_map(g["RestartPolicy"], where)}, where)
    g["RestartPolicy"] = rp
    for i, t in enumerate(g["Tasks"]):
        # A task's own restart block: the group's policy with what it sets (Nomad's Task.Canonicalize,
        # RestartPolicy.Merge); a task without one runs by the group's, and is stored as it was.
        if t.get("RestartPolicy") is not None:
            where = f"{field}.Tasks[{i}].RestartPolicy"
            own = {k: v for k, v in _map(t["RestartPolicy"], where).items() if v is not None}
            t["RestartPolicy"] = _restart_policy({**rp, **own}, where)
        else:
            t.pop("RestartPolicy", None)
    where = f"{field}.ReschedulePolicy"
    resched: dict[str, Any] | None
    if g.get("ReschedulePolicy") is None and job_reschedule is None and job_type in RESCHEDULE_DEFAULTS:
        resched = _default_block("ReschedulePolicy", job_type,
                                 lambda: _reschedule_policy(None, None, job_type, where) or {})
    else:
        resched = _reschedule_policy(g.get("ReschedulePolicy"), job_reschedule, job_type, where)
    if resched is None:
        g.pop("ReschedulePolicy", None)
    else:
        g["ReschedulePolicy"] = resched
    if job_type != "service":
        # Nomad's TaskGroup.Validate: only a service job's allocations are migrated off a draining node
        # (batch and sysbatch work is left to finish, a system job runs on every node anyway).
        _need(job_migrate is None and g.get("Migrate") is None, f"{field}.Migrate",
              f"Job type {_q(job_type)} does not allow migrate block")
        g.pop("Migrate", None)
    elif job_migrate is None and g.get("Migrate") is None:
        g["Migrate"] = _default_block("Migrate", "", lambda: dict(MIGRATE_DEFAULTS))
    else:
        g["Migrate"] = _migrate_strategy(g.get("Migrate"), job_migrate, f"{field}.Migrate")
    disk = g.get("EphemeralDisk")
    g["EphemeralDisk"] = disk = _ephemeral_disk(disk, f"{field}.EphemeralDisk") if disk is not None else \
        _default_block("EphemeralDisk", "", lambda: _ephemeral_disk(None, f"{field}.EphemeralDisk"))
    for i, t in enumerate(g["Tasks"]):  # Nomad's LogConfig.Validate: the logs fit in the disk
        lc = t["LogConfig"]
        logs = lc["MaxFiles"] * lc["MaxFileSizeMB"]
        if disk["SizeMB"] <= logs:
            _need(False, f"{field}.Tasks[{i}].LogConfig",
                  f"log storage ({logs} MB) must be less than requested disk capacity ({disk['SizeMB']} MB)")
    g["Constraints"] = _constraints(g.get("Constraints"), f"{field}.Constraints")
    _signal_constraint(g)
    _placement_prefs(g, field)
    if job_update is not None:  # a service job's group
        if not job_update and g.get("Update") is None:
            g["Update"] = _default_block("Update", "", lambda: _update({}, f"{field}.Update"))
        else:
            where = f"{field}.Update"
            g["Update"] = _update({**job_update, **_map(g.get("Update"), where)}, where)
    elif job_type == "sysbatch":
        # Nomad's TaskGroup.Validate: a sysbatch job runs each node's allocation once, nothing rolls.
        _need(g.get("Update") is None, f"{field}.Update", 'Job type "sysbatch" does not allow update block')
        g.pop("Update", None)
    else:
        _map(g.pop("Update", None), f"{field}.Update")
    nets = _networks(g.get("Networks"), f"{field}.Networks")
    if nets is None:
        g.pop("Networks", None)
    else:
        g["Networks"] = nets
    _volumes(g, field, job_type)
    return g


VOLUME_TYPES = ("host", "csi")  # Nomad's VolumeTypeHost, VolumeTypeCSI
PROPAGATION_MODES = ("private", "host-to-task", "bidirectional")  # Nomad's VolumeMountPropagation*
SELINUX_LABELS = ("", "z", "Z")
# Fields of Nomad's VolumeRequest for CSI and dynamic host volumes, which this agent does not have.
_VOLUME_UNSUPPORTED = (("Sticky", "sticky"), ("AccessMode", "access_mode"),
                       ("AttachmentMode", "attachment_mode"), ("MountOptions", "mount_options"))


def _volumes(g: dict[str, Any], field: str, job_type: str) -> None:
    """A group's ``Volumes`` (Nomad's VolumeRequest.Validate) and its tasks' ``VolumeMounts``
    (Task.Validate), with Nomad's messages; canonicalized in place.

    Only static host volumes (a client's ``host_volume`` blocks) are run
    here: a CSI volume is refused, as are the fields only CSI and dynamic
    host volumes read.
    """
    raw = _map(g.get("Volumes"), f"{field}.Volumes")
    vols: dict[str, dict[str, Any]] = {}
    canaries = (g.get("Update") or {}).get("Canary", 0)
    for label in sorted(raw):
        where = f"{field}.Volumes[{label}]"
        v = dict(_map(raw[label], where))
        known = {"Name", "Type", "Source", "ReadOnly", "PerAlloc", *(k for k, _ in _VOLUME_UNSUPPORTED)}
        _need(set(v) <= known, where, f"unknown fields {sorted(set(v) - known)}")
        name = _str(v.get("Name"), f"{where}.Name", default=label)
        vtype = _str(v.get("Type"), f"{where}.Type")
        fail = f"Task group volume validation for {label} failed"
        _need(vtype in VOLUME_TYPES, f"{field}.Volumes", f"{fail}: volume has unrecognized type {vtype}")
        _need(vtype != "csi", f"{where}.Type",
              "CSI volumes are not supported by this agent "
              "(only host volumes: a client's host_volume blocks)")
        for key, hcl in _VOLUME_UNSUPPORTED:
            _need(not v.get(key), f"{where}.{key}",
                  f"{hcl} is not supported by this agent (it has no CSI or dynamic host volumes)")
        source = _str(v.get("Source"), f"{where}.Source")
        read_only, per_alloc = _bool(v.get("ReadOnly", False), f"{where}.ReadOnly"), \
            _bool(v.get("PerAlloc", False), f"{where}.PerAlloc")
        _need(bool(source), f"{field}.Volumes", f"{fail}: volume has an empty source")
        if per_alloc:
            _need(job_type not in ("system", "sysbatch"), f"{field}.Volumes",
                  f"{fail}: volume cannot be per_alloc for system or sysbatch jobs")
            _need(not canaries, f"{field}.Volumes",
                  f"{fail}: volume cannot be per_alloc when canaries are in use")
        vols[label] = {"Name": name, "Type": vtype, "Source": source, "ReadOnly": read_only,
                       "PerAlloc": per_alloc}
    if vols:
        g["Volumes"] = vols
    else:
        g.pop("Volumes", None)
    for i, t in enumerate(g["Tasks"]):
        where = f"{field}.Tasks[{i}].VolumeMounts"
        mounts = []
        for n, m in enumerate(_list(t.get("VolumeMounts"), where)):
            m = _map(m, f"{where}[{n}]")
            known = {"Volume", "Destination", "ReadOnly", "PropagationMode", "SELinuxLabel"}
            _need(set(m) <= known, f"{where}[{n}]", f"unknown fields {sorted(set(m) - known)}")
            fail = f"Task {t['Name']} validation failed: Volume Mount ({n})"
            vol = _str(m.get("Volume"), f"{where}[{n}].Volume")
            mount = {"Volume": vol, "Destination": _str(m.get("Destination"), f"{where}[{n}].Destination"),
                     "ReadOnly": _bool(m.get("ReadOnly", False), f"{where}[{n}].ReadOnly"),
                     "PropagationMode": _str(m.get("PropagationMode"), f"{where}[{n}].PropagationMode",
                                             default="private"),
                     "SELinuxLabel": _str(m.get("SELinuxLabel"), f"{where}[{n}].SELinuxLabel")}
            _need(vol in vols, where, f"{fail} references undefined volume {vol}")
            _need(mount["PropagationMode"] in PROPAGATION_MODES, where,
                  f'{fail} is invalid: "volume mount has an invalid propagation mode: '
                  f'{json.dumps(mount["PropagationMode"])}"')
            _need(mount["SELinuxLabel"] in SELINUX_LABELS, where,
                  f'{fail} is invalid: "volume mount has an invalid SELinux label: '
                  f'{json.dumps(mount["SELinuxLabel"])}"')
            mounts.append(mount)
        if mounts:
            t["VolumeMounts"] = mounts
        else:
            t.pop("VolumeMounts", None)


SCALING_HORIZONTAL = "horizontal"  # Nomad's ScalingPolicyTypeHorizontal: the only group policy type
INT64_MAX = 2**63 - 1  # a policy's Min and Max are Go int64s (and must fit msgpack)


def _scaling(g: dict[str, Any], job: dict[str, Any], field: str) -> None:
    """A group's ``Scaling`` (Nomad's ApiScalingPolicyToStructs, Canonicalize and
    TaskGroup.validateScalingPolicy): Enabled defaults to true, Min to the
    group's count, Type to horizontal; Max is required; min <= max and the
    count within them, with Nomad's messages.  Policy is the autoscaler's,
    kept as given (an object or null)."""
    raw = g.get("Scaling")
    if raw is None:
        g.pop("Scaling", None)
        return
    where = f"{field}.Scaling"
    sc = dict(_map(raw, where))
    known = {"Type", "Min", "Max", "Enabled", "Policy", "Target", "ID", "Namespace", "CreateIndex",
             "ModifyIndex"}
    _need(set(sc) <= known, where, f"unknown fields {sorted(set(sc) - known)}")
    ptype = _str(sc.get("Type"), f"{where}.Type", default=SCALING_HORIZONTAL)
    enabled = sc.get("Enabled", True)
    _need(isinstance(enabled, bool), f"{where}.Enabled", "must be a boolean")
    lo = _int(sc.get("Min"), f"{where}.Min", default=g["Count"], minimum=-INT64_MAX - 1, maximum=INT64_MAX)
    hi = _int(sc.get("Max"), f"{where}.Max", default=-1, minimum=-INT64_MAX - 1, maximum=INT64_MAX)
    policy = sc.get("Policy")
    _need(policy is None or isinstance(policy, dict), f"{where}.Policy", "must be an object")
    fail = f"{where}: Task group scaling policy validation failed: Scaling policy invalid"
    _need(ptype == SCALING_HORIZONTAL, fail, f'scaling policy type "{ptype}" is not valid')
    if hi < 0:
        raise JobError(f"{fail}: maximum count must be specified and non-negative")
    _need(hi >= lo, fail, "maximum count must not be less than minimum count")
    _need(lo >= 0, fail, "minimum count must be specified and non-negative")
    _need(hi >= g["Count"], fail, "task group count must not be greater than maximum count in scaling policy")
    _need(g["Count"] >= lo, fail, "task group count must not be less than minimum count in scaling policy")
    target = {"Namespace": job["Namespace"], "Job": job["ID"], "Group": g["Name"]}
    g["Scaling"] = {"Type": ptype, "Target": target, "Min": lo, "Max": hi, "Enabled": enabled,
                    "Policy": policy}


def alloc_suffix(name: str) -> str:
    """Nomad's AllocSuffix: the ``[<index>]`` an allocation's name ends with ("" if none)."""
    i = name.rfind("[")
    return name[i:] if i >= 0 else ""


def volume_source(req: dict[str, Any], alloc_name: str) -> str:
    """The node host volume a group volume request names for one allocation (Nomad's VolumeID):
    a per_alloc request's source gets the allocation's ``[<index>]``."""
    return req["Source"] + alloc_suffix(alloc_name) if req.get("PerAlloc") else req["Source"]


def host_volumes_ok(node: dict[str, Any], group: dict[str, Any], alloc_name: str) -> bool:
    """Nomad's HostVolumeChecker: the node has every host volume the group asks for (per_alloc ones
    with the allocation's index), and none asked for read-write is read-only there."""
    have = node.get("HostVolumes") or {}
    for req in (group.get("Volumes") or {}).values():
        if req.get("Type") != "host":
            continue
        vol = have.get(volume_source(req, alloc_name))
        if vol is None or (vol.get("ReadOnly") and not req.get("ReadOnly")):
            return False
    return True


def _group_services(g: dict[str, Any], job_id: str, field: str) -> None:
    svcs = _services(g.get("Services"), f"{field}.Services", f"{job_id}-{g['Name']}")
    if svcs is None:
        g.pop("Services", None)
    else:
        g["Services"] = svcs
    _task_services(g, job_id, field)
    _check_service_ports(g, field)


@dataclass(frozen=True)
class JobLimits:
    """The server's bounds on a submitted job (Nomad's agent ``server`` keys of the same names)."""
    default_priority: int = DEFAULT_PRIORITY  # a job that names none (or 0) gets this
    max_priority: int = 100  # priorities above it are refused
    max_count: int = 50_000  # the job's groups' counts summed; 0: no bound
    max_source_bytes: int = 1_000_000  # a submitted source larger than this is not kept (job_max_source_size)

    @classmethod
    def from_self(cls, server: dict[str, Any] | None) -> JobLimits:
        """From ``/v1/agent/self``'s ``config.Server`` (a client-only agent: the defaults)."""
        if not server:
            return cls()
        from runtime.config import parse_size

        return cls(default_priority=server.get("JobDefaultPriority") or DEFAULT_PRIORITY,
                   max_priority=server.get("JobMaxPriority") or 100,
                   max_count=server.get("JobMaxCount", 50_000),
                   max_source_bytes=parse_size(str(server.get("JobMaxSourceSize") or "1M")))


DEFAULT_LIMITS = JobLimits()


def _job_ui(raw: Any) -> dict[str, Any] | None:
    """The job's ``UI`` (Nomad's JobUIConfig: a description and links its web UI shows on the job's
    page): kept as Nomad's servers keep it (a link's ``Url``; the API's ``URL`` is read too, as Go's JSON
    decoding ignores case); None when not given."""
    if raw is None:
        return None
    ui = _map(raw, "UI")
    links = []
    for i, item in enumerate(_list(ui.get("Links"), "UI.Links")):
        link = _map(item, f"UI.Links[{i}]")
        url = link.get("Url", link.get("URL"))
        links.append({"Label": _str(link.get("Label"), f"UI.Links[{i}].Label"),
                      "Url": _str(url, f"UI.Links[{i}].Url")})
    return {"Description": _str(ui.get("Description"), "UI.Description"), "Links": links or None}


def canonical_job(raw: Any, *, region: str = "global", limits: JobLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Validate a submitted job and fill in Nomad's defaults; raises JobError."""
    job = dict(_map(raw, "Job"))
    _need(bool(job), "Job", "missing")
    job["ID"] = _str(job.get("ID"), "ID", required=True)
    _need(bool(_ID_RE.match(job["ID"])), "ID",
          "must be 1-128 characters without spaces, '/', '?', '#' or '%'")
    job["Name"] = _str(job.get("Name"), "Name", default=job["ID"])
    job["Type"] = _str(job.get("Type"), "Type", default="service")
    if job["Type"] not in JOB_TYPES:
        _need(False, "Type", f"must be one of {JOB_TYPES}, got {job['Type']!r}")
    job["Region"] = _str(job.get("Region"), "Region", default=region)
    # Whether the namespace exists (and allows the job's drivers) is the state store's to say, at the
    # registration's place in the log (actors.state.namespaces.job_error), as Nomad's.
    job["Namespace"] = _str(job.get("Namespace"), "Namespace", default="default")
    # Nomad's jobCanonicalizer (0: the server's default) and jobValidate's bound, its message.
    job["Priority"] = _int(job.get("Priority") or None, "Priority", default=limits.default_priority, minimum=None)
    if not 1 <= job["Priority"] <= limits.max_priority:
        _need(False, "Priority", f"job priority must be between [1, {limits.max_priority}]")
    dcs = _list(job.get("Datacenters"), "Datacenters") or ["*"]
    _need(all(isinstance(d, str) and d for d in dcs), "Datacenters", "must be a list of names")
    job["Datacenters"] = dcs
    job["NodePool"] = _str(job.get("NodePool"), "NodePool", default="default")
    job["Constraints"] = _constraints(job.get("Constraints"), "Constraints")
    _placement_prefs(job, "")
    ui = _job_ui(job.get("UI"))
    if ui is None:
        job.pop("UI", None)
    else:
        job["UI"] = ui
    groups = _list(job.get("TaskGroups"), "TaskGroups")
    _need(bool(groups), "TaskGroups", "a job needs at least one task group")
    # Rolling updates are a service job's (Nomad's system jobs roll without
    # deployments; batch jobs have none): the job's block, or the defaults.
    job_update: dict[str, Any] | None = None
    if job["Type"] == "service":
        job_update = dict(_map(job.get("Update"), "Update"))
    elif job["Type"] == "sysbatch":
        # Nomad's api Job.Canonicalize gives a sysbatch job no update strategy, and its groups inherit a
        # given one unless it is empty (every field zero), which TaskGroup.Validate refuses.
        given = _map(job.pop("Update", None), "Update")
        _need(not any(v for v in given.values()), "Update", 'Job type "sysbatch" does not allow update block')
    elif job["Type"] == "system":
        # A system job's rolling update: max_parallel nodes at a time, a stagger apart.  Nomad's HTTP
        # API canonicalizes every registration (api Job.Canonicalize): no update block is
        # DefaultUpdateStrategy (one node at a time, 30 s apart), and a block's unset fields are its.
        given = _map(job.get("Update"), "Update")
        u = {**UPDATE_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
        u["MaxParallel"] = _int(u.get("MaxParallel"), "Update.MaxParallel", default=0, minimum=0,
                                maximum=MAX_COUNT)
        u["Stagger"] = _int(u.get("Stagger"), "Update.Stagger", default=0, minimum=0,
                            maximum=7 * 24 * 3600 * SECOND_NS)
        job["Update"] = u
    job_reschedule = job.pop("Reschedule", None)  # merged into each group's ReschedulePolicy (Nomad's api)
    job_migrate = job.pop("Migrate", None)  # and its migrate block into each group's Migrate
    job["TaskGroups"] = [_group(g, f"TaskGroups[{i}]", job["Type"], job_update, job_reschedule, job_migrate)
                         for i, g in enumerate(groups)]
    for i, g in enumerate(job["TaskGroups"]):
        _group_services(g, job["ID"], f"TaskGroups[{i}]")
        _scaling(g, job, f"TaskGroups[{i}]")
    names = [g["Name"] for g in job["TaskGroups"]]
    _need(len(set(names)) == len(names), "TaskGroups", "group names must be unique")
    total = sum(g.get("Count", 0) for g in job["TaskGroups"])
    if limits.max_count and total > limits.max_count:
        _need(False, "TaskGroups",
              f"total count was greater than configured job_max_count: {total} > {limits.max_count}")
    job["Stop"] = bool(job.get("Stop", False))
    job["Meta"] = {str(k): str(v) for k, v in _map(job.get("Meta"), "Meta").items()}
    if job.get("Periodic") is not None:
        job["Periodic"] = _periodic(job["Periodic"], job["Type"])
        _need(job.get("ParameterizedJob") is None, "Periodic", "a job is periodic or parameterized, not both")
    else:
        job.pop("Periodic", None)
    if job.get("ParameterizedJob") is not None:  # an empty block makes a parameterized job too
        job["ParameterizedJob"] = _parameterized(job["ParameterizedJob"], job["Type"])
    else:
        job.pop("ParameterizedJob", None)
    for g in job["TaskGroups"]:
        for t in g["Tasks"]:
            if t.get("DispatchPayload") is not None:
                t["DispatchPayload"] = _dispatch_payload(
                    t["DispatchPayload"], f"TaskGroups[{g['Name']}].Tasks[{t['Name']}].DispatchPayload")
            else:
                t.pop("DispatchPayload", None)
    for server_owned in SERVER_OWNED:
        job.pop(server_owned, None)
    return job


PAYLOAD_RULES = ("optional", "required", "forbidden")
DISPATCH_PAYLOAD_MAX_BYTES = 16 * 1024  # Nomad's DispatchPayloadSizeLimit: payloads ride in the Raft log


def _dispatch_payload(raw: Any, where: str) -> dict[str, Any]:
    """Nomad's DispatchPayloadConfig: the file, in the task's ``local`` directory, the payload is written to."""
    d = _map(raw, where)
    _need(set(d) <= {"File"}, where, f"unknown fields {sorted(set(d) - {'File'})}")
    f = _str(d.get("File"), f"{where}.File", required=True)
    parts = f.replace("\\", "/").split("/")
    _need(not f.startswith("/") and "\x00" not in f and ".." not in parts and f.strip("/. ") != "",
          f"{where}.File", "dispatch payload file escapes the task's local directory")
    return {"File": f}


def _periodic(raw: Any, job_type: str) -> dict[str, Any]:
    """Nomad's PeriodicConfig: a batch job launched on a cron schedule (actors.scheduler.periodic)."""
    from actors.scheduler.cron import CronError, parse_cron

    p = dict(_map(raw, "Periodic"))
    _need(job_type in ("batch", "sysbatch"), "Periodic",
          'Periodic can only be used with "batch" or "sysbatch" scheduler')
    p["Enabled"] = p.get("Enabled", True)
    _need(isinstance(p["Enabled"], bool), "Periodic.Enabled", "must be a boolean")
    p["SpecType"] = _str(p.get("SpecType"), "Periodic.SpecType", default="cron")
    _need(p["SpecType"] == "cron", "Periodic.SpecType", "only cron specs are supported")
    p["Spec"] = _str(p.get("Spec"), "Periodic.Spec")
    # Several schedules (``crons``, Nomad 1.6): it launches at the earliest of them; kept only when given.
    specs = _list(p.get("Specs"), "Periodic.Specs")
    _need(all(isinstance(s, str) for s in specs), "Periodic.Specs", "must be a list of strings")
    _need(not (p["Spec"] and specs), "Periodic", "Only cron or crons may be used")
    _need(bool(p["Spec"] or specs), "Periodic.Spec", "Must specify a spec")
    if specs:
        p["Specs"] = list(specs)
    else:
        p.pop("Specs", None)
    p["ProhibitOverlap"] = p.get("ProhibitOverlap", False)
    _need(isinstance(p["ProhibitOverlap"], bool), "Periodic.ProhibitOverlap", "must be a boolean")
    p["TimeZone"] = _str(p.get("TimeZone"), "Periodic.TimeZone", default="UTC") or "UTC"
    for i, spec in enumerate([p["Spec"]] if p["Spec"] else specs):
        try:
            parse_cron(spec, p["TimeZone"])
        except CronError as e:
            raise JobError(f"Periodic.{'Spec' if p['Spec'] else f'Specs[{i}]'}: {e}") from None
    return p


def is_launcher(job: dict[str, Any]) -> bool:
    """A periodic or parameterized parent: it never runs itself; the jobs it launches do."""
    return bool(job.get("ParameterizedJob") or job.get("Periodic"))


def _parameterized(raw: Any, job_type: str) -> dict[str, Any]:
    """Nomad's ParameterizedJobConfig: only batch and sysbatch jobs dispatch."""
    p = dict(_map(raw, "ParameterizedJob"))
    _need(job_type in ("batch", "sysbatch"), "ParameterizedJob",
          'Parameterized job can only be used with "batch" or "sysbatch" scheduler')
    p["Payload"] = _str(p.get("Payload"), "ParameterizedJob.Payload", default="optional")
    _need(p["Payload"] in PAYLOAD_RULES, "ParameterizedJob.Payload", f"must be one of {PAYLOAD_RULES}")
    for key in ("MetaRequired", "MetaOptional"):
        names = _list(p.get(key), f"ParameterizedJob.{key}")
        _need(all(isinstance(n, str) and n for n in names), f"ParameterizedJob.{key}", "must be a list of names")
        p[key] = sorted(set(names))
    return p


# Job fields the servers set; a submitted value is dropped, and none of them is part of the spec.
# ScheduleIndex is the store's own (never in API answers): the index of the
# last change to what the job runs, see StateStore._plan_job.
# VersionTag: set only by Job.TagVersion on a version, so a new version (a registration, a revert, a
# scale) never carries an earlier one's tag (Nomad's revert clears it "to prevent tag duplication").
SERVER_OWNED = ("Status", "StatusDescription", "Version", "CreateIndex", "ModifyIndex", "JobModifyIndex",
                "SubmitTime", "Stable", "ScheduleIndex", "VersionTag")


def schedule_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """What the job runs changed: its groups' tasks, names or counts, constraints, datacenters or Stop."""
    return old.get("Stop") != new.get("Stop") or any(
        spec_digest(old, g["Name"]) != spec_digest(new, g["Name"]) for g in new["TaskGroups"]) or \
        [g["Name"] for g in old["TaskGroups"]] != [g["Name"] for g in new["TaskGroups"]] or \
        [g["Count"] for g in old["TaskGroups"]] != [g["Count"] for g in new["TaskGroups"]] or \
        old.get("Constraints") != new.get("Constraints") or old.get("Datacenters") != new.get("Datacenters")


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Nomad ``Job.SpecChanged``: anything but the servers' own fields differs (a new version)."""
    def spec(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in SERVER_OWNED}
    return spec(old) != spec(new)


def spec_digest(job: dict[str, Any], group: str) -> tuple[Any, ...]:
    """What decides whether an allocation of *group* must be replaced after an update."""
    for g in job.get("TaskGroups", ()):
        if g["Name"] == group:
            return (repr(sorted((t["Name"], t["Driver"], repr(sorted(t["Config"].items())),
                                 t["Resources"]["CPU"], t["Resources"]["MemoryMB"],
                                 repr(sorted(t.get("Env", {}).items())), repr(t.get("Artifacts") or []),
                                 log_settings(t), repr(t.get("VolumeMounts") or []),
                                 repr(t.get("Templates") or []),
                                 # its cores, only when it reserves some: jobs from before cores were
                                 # scheduled (none reserve any) digest as they did
                                 *((t["Resources"]["Cores"],) if t["Resources"].get("Cores") else ()))
                                for t in g["Tasks"])),
                    tuple(sorted(ephemeral_disk(g).items())),  # Nomad's tasksUpdated: "ephemeral disk"
                    repr(sorted((g.get("Volumes") or {}).items())))
    return ()


def update_digest(job: dict[str, Any], group: str) -> tuple[Any, ...]:
    """What the scheduler compares to replace an allocation of *group* (Nomad's ``tasksUpdated``):
    :func:`spec_digest`, each task's ``memory_max`` ("task memory max"), its ``Identity`` and
    ``Identities``, its combined job, group and task meta ("task meta") and the group's
    ports.  Kept apart from spec_digest, which the store's job writes apply with (:func:`schedule_changed`),
    so that log entries written before memory_max was honoured still apply exactly as they did."""
    for g in job.get("TaskGroups", ()):
        if g["Name"] == group:
            return (spec_digest(job, group),
                    tuple(sorted((t["Name"], task_memory_max(t)) for t in g["Tasks"])),
                    # Nomad's tasksUpdated compares each task's Identity: a new one is a new allocation.
                    tuple(sorted((t["Name"], repr(sorted((t.get("Identity") or {}).items())),
                                  *((repr([sorted(w.items()) for w in t["Identities"]]),)
                                    if t.get("Identities") else ()))
                                 for t in g["Tasks"])),
                    # Nomad's renderTemplatesUpdated ("group/task restart render_templates"): the
                    # template hook takes it when the task runner is made, so a change needs a new one.
                    _renders_templates(g.get("RestartPolicy")),
                    tuple(sorted((t["Name"], _renders_templates(t.get("RestartPolicy")
                                                                or g.get("RestartPolicy")))
                                 for t in g["Tasks"])),
                    # Nomad's tasksUpdated ("task meta"): each task's job, group and task meta combined
                    # (its NOMAD_META_* environment), so a meta change anywhere restarts what it reaches.
                    tuple(sorted((t["Name"], repr(sorted({**(job.get("Meta") or {}), **(g.get("Meta") or {}),
                                                          **(t.get("Meta") or {})}.items())))
                                 for t in g["Tasks"])),
                    # Nomad's networkUpdated ("network port map"): each port's label, static value (a
                    # dynamic one's is not compared), to and host network; a changed one needs a new
                    # allocation, which is given the ports anew.
                    tuple(sorted((p["Label"], p.get("Value", -1) if key == "ReservedPorts" else -1,
                                  p.get("To", 0), p.get("HostNetwork") or "default")
                                 for n in g.get("Networks") or () for key in ("ReservedPorts", "DynamicPorts")
                                 for p in n.get(key) or ())))
    return ()


def _renders_templates(rp: Any) -> bool:
    """A restart policy's ``render_templates`` (none: false)."""
    return isinstance(rp, dict) and rp.get("RenderTemplates") is True


def task_memory_max(task: dict[str, Any]) -> int:
    """A task's memory_max in MB, 0 for none (a job stored before it was validated may hold anything:
    what Nomad's validation would refuse counts as none)."""
    res = task.get("Resources") or {}
    v, mem = res.get("MemoryMaxMB"), res.get("MemoryMB")
    ok = isinstance(v, int) and not isinstance(v, bool) and v > 0 and isinstance(mem, int) and v >= mem
    return v if ok else 0


def group_of(job: dict[str, Any], name: str) -> dict[str, Any] | None:
    for g in job.get("TaskGroups", ()):
        if g["Name"] == name:
            return g
    return None


def group_resources(group: dict[str, Any]) -> tuple[int, int]:
    """(CPU MHz, memory MB) one allocation of *group* asks for.

    As Nomad's ``AllocatedResources.Comparable``: tasks that never run together
    do not add up -- prestart sidecars, plus the most of: the largest ephemeral
    prestart task, the main tasks with the poststart ones, the largest poststop
    task (Nomad takes the maximum within those two kinds too).
    """
    return _comparable(group, lambda t: (t["Resources"]["CPU"], t["Resources"]["MemoryMB"]))  # type: ignore


def group_memory_max(group: dict[str, Any], task_max: dict[str, int]) -> int:
    """The memory ceiling one allocation of *group* holds, *task_max* being each task's memory_max
    as placed (a task without one counts its memory: Nomad's ``AllocatedMemoryResources.Add``),
    combined over lifecycle phases as :func:`group_resources`."""
    return _comparable(group, lambda t: (task_max.get(t["Name"]) or t["Resources"]["MemoryMB"],))[0]


def _comparable(group: dict[str, Any], values: Any) -> tuple[int, ...]:
    phases: dict[str, list[int]] = {}
    for t in group["Tasks"]:
        lc = t.get("Lifecycle") or {}
        hook = lc.get("Hook")
        phase = ("sidecar" if lc.get("Sidecar") else "prestart") if hook == "prestart" else \
            "poststop" if hook == "poststop" else "main"  # poststart tasks run beside the main ones
        got = values(t)
        p = phases.setdefault(phase, [0] * len(got))
        for i, v in enumerate(got):  # Nomad takes the largest prestart / poststop task, not their sum
            p[i] = max(p[i], v) if phase in ("prestart", "poststop") else p[i] + v
    n = len(next(iter(phases.values()), ()))
    zero = [0] * n
    return tuple(phases.get("sidecar", zero)[i] + max(phases.get(k, zero)[i] for k in ("prestart", "main",
                                                                                        "poststop"))
                 for i in range(n))


# ------------------------------------------------------------ constraints
def resolve_target(target: str, node: dict[str, Any]) -> str | None:
    """``${attr.x}``, ``${node.datacenter}``, ``${meta.k}``... against a node; None when unset."""
    if not (target.startswith("${") and target.endswith("}")):
        return target
    key = target[2:-1]
    if key.startswith("attr."):
        return node.get("Attributes", {}).get(key[5:])
    if key.startswith("meta."):
        return node.get("Meta", {}).get(key[5:])
    fixed = {"node.unique.id": "ID", "node.datacenter": "Datacenter", "node.unique.name": "Name",
             "node.class": "NodeClass", "node.pool": "NodePool"}
    if key in fixed:
        return node.get(fixed[key])
    return None


@lru_cache(maxsize=512)
def _regexp(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# hashicorp/go-version's VersionRegexpRaw (NewVersion: the node's value, and a ``version`` constraint)
# and SemverRegexpRaw (NewSemver: a ``semver`` constraint): at most three segments, a prerelease only
# after "-".  [0-9], not \d: '²' is a digit to Python, not to Go.
_ID = r"[0-9A-Za-z\-~]+"
_VERSION_RE = re.compile(rf"v?([0-9]+(?:\.[0-9]+)*?)(?:-([0-9]+[0-9A-Za-z\-~]*(?:\.{_ID})*)"
                         rf"|(?:-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(?:\.{_ID})*)))?(?:\+{_ID}(?:\.{_ID})*)?")
_SEMVER_RE = re.compile(rf"v?([0-9]+(?:\.[0-9]+){{0,2}})(?:-({_ID}(?:\.{_ID})*))?(?:\+{_ID}(?:\.{_ID})*)?")
_CONSTRAINT_RE = re.compile(r"^\s*(>=|<=|!=|~>|=|>|<)?\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class _Version:
    """A parsed go-version Version: its numeric segments (padded to three), its prerelease, and how
    many segments were written (the pessimistic operator's precision)."""

    segments: tuple[int, ...]
    pre: str
    written: int


def _parse_version(v: str, *, semver: bool = False) -> _Version:
    m = (_SEMVER_RE if semver else _VERSION_RE).fullmatch(v)
    if not m:
        raise ValueError(f"Malformed version: {v}")
    nums = tuple(int(p) for p in m.group(1).split("."))
    pre = m.group(2) or (None if semver else m.group(3)) or ""
    return _Version(nums + (0,) * (3 - len(nums)), pre, len(nums))


@lru_cache(maxsize=512)
def _version_checks(spec: str, semver: bool = False) -> tuple[tuple[str, _Version], ...]:
    """go-version's NewConstraint (or Nomad's semver.NewConstraint, which has no ``~>``)."""
    checks = []
    for part in spec.split(","):
        m = _CONSTRAINT_RE.match(part)
        try:
            if not m or (semver and m.group(1) == "~>"):
                raise ValueError(part)
            checks.append((m.group(1) or "=", _parse_version(m.group(2), semver=semver)))
        except ValueError:
            raise ValueError(f"Malformed constraint: {part}") from None
    return tuple(checks)


def _pre_part_cmp(a: str, b: str) -> int:
    """go-version's comparePart: numeric identifiers sort below alphanumeric ones; an absent part
    sorts below a numeric one and above an alphanumeric one."""
    if a == b:
        return 0
    a_num, b_num = a.isascii() and a.isdigit(), b.isascii() and b.isdigit()
    if not a:
        return -1 if b_num else 1
    if not b:
        return 1 if a_num else -1
    if a_num != b_num:
        return -1 if a_num else 1
    if a_num:
        return 1 if int(a) > int(b) else -1
    return 1 if a > b else -1


def _cmp(a: _Version, b: _Version) -> int:
    """go-version's Compare: segments (zero-padded), then a release above any of its prereleases,
    then prerelease identifiers one by one."""
    n = max(len(a.segments), len(b.segments))
    sa, sb = a.segments + (0,) * (n - len(a.segments)), b.segments + (0,) * (n - len(b.segments))
    if sa != sb:
        return 1 if sa > sb else -1
    if a.pre == b.pre:
        return 0
    if not a.pre or not b.pre:
        return 1 if not a.pre else -1
    pa, pb = a.pre.split("."), b.pre.split(".")
    for i in range(max(len(pa), len(pb))):
        c = _pre_part_cmp(pa[i] if i < len(pa) else "", pb[i] if i < len(pb) else "")
        if c:
            return c
    return 0


def _prerelease_ok(v: _Version, want: _Version) -> bool:
    """go-version's prereleaseCheck: a prerelease satisfies an ordering only against a constraint
    that is itself a prerelease of the same release."""
    if v.pre and want.pre:
        return v.segments == want.segments
    return not v.pre


def version_ok(have: str, spec: str, *, semver: bool = False) -> bool:
    """Nomad's checkVersionMatch: *have* parsed by go-version's NewVersion, checked against every
    comma-separated part of *spec*: go-version's constraints for ``version`` (a prerelease matches
    only a constraint on a prerelease of its release), Nomad's semver ones for ``semver`` (plain
    Semantic Versioning order, prereleases included)."""
    try:
        v = _parse_version(have)
        checks = _version_checks(spec, semver)
    except ValueError:
        return False
    for op, want in checks:
        c = _cmp(v, want)
        if op in ("=", "!="):
            ok = (c == 0) == (op == "=")
        elif not semver and not _prerelease_ok(v, want):
            ok = False
        elif op == "~>":  # >= want, and equal to it in every written segment but the last
            ok = (c >= 0 and v.segments[:want.written - 1] == want.segments[:want.written - 1]
                  and not (want.pre and not v.pre))
        else:
            ok = {">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]
        if not ok:
            return False
    return True


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _order_ok(op: str, left: str, right: str) -> bool:
    """Nomad's checkOrder: as integers when both parse as integers, else as floats, else as strings."""
    a: Any = left
    b: Any = right
    if _INT_RE.fullmatch(left) and _INT_RE.fullmatch(right):
        a, b = int(left), int(right)
    elif "_" not in left + right and left == left.strip() and right == right.strip():
        try:  # Go's ParseFloat takes neither spaces nor underscores, Python's float() does
            a, b = float(left), float(right)
        except ValueError:
            a, b = left, right
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def constraint_ok(c: dict[str, str], node: dict[str, Any]) -> bool:
    op = c["Operand"]
    if op in ("distinct_hosts", "distinct_property"):
        return True  # checked by the scheduler, which knows the other placements
    left = resolve_target(c["LTarget"], node)
    if op == "is_set":
        return left is not None
    if op == "is_not_set":
        return left is None
    right = resolve_target(c["RTarget"], node)
    if left is None or right is None:
        return op in ("!=", "not") and left != right
    if op in ("=", "==", "is"):
        return left == right
    if op in ("!=", "not"):
        return left != right
    if op == "regexp":
        return _regexp(right).search(left) is not None
    if op in ("version", "semver"):
        return version_ok(left, right, semver=op == "semver")
    if op.startswith("set_contains"):  # Nomad's: every (or, for _any, one) of the right's comma-separated
        have = {v.strip() for v in str(left).split(",")}  # values among the left's
        want = (v.strip() for v in str(right).split(","))
        return any(v in have for v in want) if op == "set_contains_any" else all(v in have for v in want)
    return _order_ok(op, left, right)
