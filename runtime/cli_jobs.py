"""``nomad`` job, alloc and node commands: Nomad's CLI over the HTTP API.

``job run [-detach] <file>``, ``job status [-json] [id]``, ``job stop [-purge]
[-detach] [-yes] <id>``, ``alloc status [-stats] <id>``, ``node status [-verbose]
[-stats] [-json] [id]`` (live usage: :mod:`runtime.cli_usage`), ``node drain -enable|-disable [-deadline d] [-force] [-no-deadline]
[-ignore-system] [-keep-ineligible] [-yes] [-m msg] <node>`` and ``node
eligibility -enable|-disable <node>``.  Flags come before the arguments, as
Go's flag package reads them; IDs may be unique prefixes, as in Nomad.

A job file is Nomad's JSON job (``{"Job": {...}}`` or the bare job), or the
same document in TOML: the keys are the JSON keys, one to one (durations in
nanoseconds, as in the JSON).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from runtime.cli import TIMEOUT_S, ApiError, CliError, table, unreachable
from runtime.durations import parse_duration

__all__ = ["JOB_COMMANDS", "load_job_file", "parse_flags"]

# How long `job run` / `job stop` watch their evaluation before handing back
# (Nomad watches until it completes; we bound it so a script never hangs on a
# cluster that is not scheduling).  Each wait is one blocking query.
MONITOR_TIMEOUT_S = 30.0
# `alloc status` asks the allocation's node for its check results, as an extra: a node
# that does not answer soon costs the section, not the command's time.
ALLOC_STATUS_CHECKS_TIMEOUT_S = 2.0
MONITOR_WAIT = "5s"  # ?wait= of each blocking query while monitoring; below TIMEOUT_S
SHORT_ID = 8  # Nomad shows IDs cut to 8 characters unless -verbose
DEFAULT_DRAIN_DEADLINE = "1h"  # Nomad's node drain -deadline default
EXIT_PLACEMENT_FAILED = 2  # Nomad's job run: the evaluation could not place everything
SCALE_CLI_MESSAGE = "submitted using the Nomad CLI"  # Nomad's job scale: the message its requests carry


# ---------------------------------------------------------------- plumbing


def request(addr: str, method: str, path: str, body: Any = None, *, answer_meta: dict[str, Any] | None = None,
            **query: Any) -> Any:
    """One HTTP call with a JSON body; Nomad's CLI error text on a non-200 answer.

    *answer_meta*, when given, gets the answer's ``index`` (``X-Nomad-Index``):
    what a blocking query waits past next (Nomad's ``QueryMeta.LastIndex``), its
    ``known_leader``, and a paged list's ``next_token`` (``X-Nomad-NextToken``, "" on the last page).
    """
    q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    url = f"{addr.rstrip('/')}{path}" + (f"?{q}" if q else "")
    data = json.dumps(body).encode() if body is not None else (b"" if method in ("PUT", "POST") else None)
    req = urllib.request.Request(url, method=method, data=data,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            raw = resp.read()
            if answer_meta is not None:
                answer_meta["index"] = int(resp.headers.get("X-Nomad-Index") or 0)
                answer_meta["known_leader"] = resp.headers.get("X-Nomad-KnownLeader") == "true"
                answer_meta["next_token"] = resp.headers.get("X-Nomad-NextToken") or ""
    except urllib.error.HTTPError as e:
        raise ApiError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        raise unreachable(method, url, e) from None
    return json.loads(raw) if raw.strip() else None


def parse_flags(args: list[str], spec: dict[str, type]) -> tuple[dict[str, Any], list[str]]:
    """Go's flag package: ``-name``, ``-name=value``, ``-name value``; stops at the first argument."""
    flags: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.lstrip("-").partition("=")
        if name not in spec:
            raise CliError(f"flag provided but not defined: -{name}")
        if spec[name] is bool:
            if eq and value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise CliError(f'invalid boolean value "{value}" for -{name}')
            flags[name] = value.lower() in ("1", "t", "true") if eq else True
        else:
            if not eq:
                if i + 1 >= len(args):
                    raise CliError(f"flag needs an argument: -{name}")
                i += 1
                value = args[i]
            if spec[name] is list:
                flags.setdefault(name, []).append(value)
            else:
                flags[name] = value
        i += 1
    return flags, args[i:]


def one_arg(rest: list[str], usage: str) -> str:
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: {usage}")
    return rest[0]


def kv(pairs: list[tuple[str, Any]]) -> str:
    """Nomad's ``formatKV``: keys padded so the ``=`` line up; an empty value is ``<none>`` (its
    columnize placeholder)."""
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)} = {'<none>' if v == '' else v}" for k, v in pairs)


def short(ident: str, verbose: bool = False) -> str:
    return ident if verbose else ident[:SHORT_ID]


def fmt_time(t: Any) -> str:
    """Unix nanoseconds (Nomad's JSON) or seconds -> RFC 3339 UTC; anything else as it is."""
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
        return "<none>"
    secs = t / 1e9 if t > 1e14 else t
    if secs < 1e9:  # not a wall-clock time (e.g. a client's monotonic seconds)
        return f"{t:g}"
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_launch_time(t: float, periodic: dict[str, Any]) -> str:
    """A periodic job's launch time as Nomad prints it: RFC 3339 in the job's ``time_zone`` (Go's
    ``2006-01-02T15:04:05Z07:00``: ``Z`` at offset zero, else ``-05:00``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(periodic.get("TimeZone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")  # Nomad's GetLocation falls back to UTC as well
    local = dt.datetime.fromtimestamp(t, zone)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")


def ago(t: Any) -> str:
    """Nomad's ``prettyTimeDiff`` in short: ``3m12s ago``."""
    if not isinstance(t, (int, float)) or t <= 0:
        return "<none>"
    secs = t / 1e9 if t > 1e14 else t
    if secs < 1e9:
        return f"{t:g}"
    diff = max(0, int(time.time() - secs))
    h, rest = divmod(diff, 3600)
    m, s = divmod(rest, 60)
    return ("".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m")) if v) + f"{s}s ago") if diff else "now"


# Nomad's words for a prefix that matches nothing (meta.go's ErrJobNotFound says "ID"; the others "id").
NOT_FOUND = {"job": 'No job(s) with prefix or ID "{}" found'}


class AmbiguousPrefix(CliError):
    """A prefix that matched several objects; its message lists them."""


def resolve(addr: str, kind: str, ident: str, not_found: str = "") -> dict[str, Any] | str:
    """A unique ID prefix -> the object's list entry (``/v1/<kind>s?prefix=``), as Nomad's CLI resolves.
    *not_found*: the command's own message for no match (``{}``: the prefix)."""
    if not ident:
        raise CliError(f"{kind} ID must not be empty")
    from runtime.cli import ACTIVE

    # -namespace '*' (or NOMAD_NAMESPACE): the prefix is searched in every namespace, and the rest of the
    # command asks in the job's own one, as Nomad's JobIDByPrefix and QueryOptions{Namespace: ns} do.
    star = kind == "job" and ACTIVE.get("namespace") == "*"
    got = request(addr, "GET", f"/v1/{kind}s", prefix=ident, **({"namespace": "*"} if star else {}))
    found = [o for o in got if o["ID"] == ident] or (got if len(got) == 1 else [])
    if star and len(found) > 1:  # Nomad's JobIDByPrefix: one ID in several namespaces is ambiguous
        raise CliError(f"Prefix {json.dumps(ident)} matched multiple jobs\n\n{job_list_table(got, True)}")
    if found and star:
        ACTIVE["query"]["namespace"] = found[0].get("Namespace") or "default"
    if found:
        return found[0]
    if not got:
        message = not_found or NOT_FOUND.get(kind, f'No {kind}(s) with prefix or id "{{}}" found')
        raise CliError(message.format(json.dumps(ident)[1:-1]))
    if kind == "job":
        raise CliError(f"Prefix {json.dumps(ident)} matched multiple jobs\n\n{job_list_table(got, star)}")
    if kind == "allocation":  # Nomad's formatAllocListStubs
        listed = alloc_table(got, False, with_node=True)
        raise AmbiguousPrefix(f"Prefix matched multiple allocations\n\n{listed}")
    if kind == "evaluation":  # Nomad's formatEvalList
        raise AmbiguousPrefix(f"Prefix matched multiple evaluations\n\n{eval_list_table(got, False)}")
    if kind == "deployment":  # Nomad's formatDeployments
        from runtime.cli_deployments import format_deployments  # it imports this module

        raise AmbiguousPrefix(f"Prefix matched multiple deployments\n\n{format_deployments(got, False)}")
    ids = "\n".join(o["ID"] for o in got)
    raise CliError(f"Prefix matched multiple {kind}s\n\n{ids}")


def job_list_table(jobs: list[dict[str, Any]], with_namespace: bool) -> str:
    """Nomad's createStatusListOutput: the jobs, with a Namespace column when listing every namespace."""
    head = ["ID", "Namespace", "Type", "Priority", "Status", "Submit Date"] if with_namespace else \
        ["ID", "Type", "Priority", "Status", "Submit Date"]
    # Nomad's getTypeString: "batch/periodic", "sysbatch/parameterized", ...
    rows = [[j["ID"], *([j.get("Namespace") or "default"] if with_namespace else []),
             j["Type"] + "/periodic" * bool(j.get("Periodic"))
             + "/parameterized" * bool(j.get("ParameterizedJob")), str(j["Priority"]), j["Status"], fmt_time(j["SubmitTime"])] for j in jobs]
    return table([head, *rows])


# ---------------------------------------------------------------- job files


_HCL_START = re.compile(rb'^(?:\s*(?:#|//)[^\n]*\n|\s*/\*.*?\*/)*\s*job\s+"', re.S)


_HCL_VARIABLE_START = re.compile(rb'^(?:\s*(?:#|//)[^\n]*\n|\s*/\*.*?\*/)*\s*(?:variable|locals)\b', re.S)
VAR_FLAGS: dict[str, type] = {"var": list, "var-file": list}  # job run/plan/validate: HCL input variables
# job run/plan/validate: Nomad's -json (the job file is JSON, as "nomad job inspect" or "run -output"
# print it) and -hcl2-strict (on by default: a value for an undeclared variable is an error, else ignored).
FILE_FLAGS: dict[str, type] = {"json": bool, "hcl2-strict": bool, **VAR_FLAGS}


def scope_to_job(job: dict[str, Any], keys: tuple[str, ...] = ("Region", "Namespace")) -> None:
    """Nomad's job run and plan "force the region (namespace) to be that of the job": a job file that
    names one is sent there, and so is every request after, whatever -region/-namespace say.  A
    "global" Region is left to the flags (the agent maps it to its own region for the job itself)."""
    from runtime.cli import ACTIVE

    for key in keys:
        value = job.get(key)
        if isinstance(value, str) and value and not (key == "Region" and value == "global"):
            ACTIVE["query"][key.lower()] = value


def load_job_file(path: str, flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Nomad HCL (``job "x" {...}``), JSON (``{"Job": ...}`` or bare) or TOML job file -> the job object.

    For HCL, *flags* may carry ``-var name=value`` and ``-var-file path``
    (lists, as given), and ``NOMAD_VAR_<name>`` is read from the environment.
    """
    return load_job_submission(path, flags)[0]


def load_job_submission(path: str, flags: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                                 dict[str, Any] | None]:
    """:func:`load_job_file`, and Nomad's JobSubmission of it: the file as written, its format ("hcl2",
    "json") and, for HCL, the -var flags and the -var-files' text (None for a TOML file, which Nomad's
    servers would not know how to read back)."""
    flags = flags or {}
    try:
        if path == "-":  # Nomad's: the file from standard input, as "job inspect -hcl x | job run -"
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
    except OSError as e:
        raise CliError(f"Error reading job file {path}: {e.strerror}") from None
    as_json_file = bool(flags.get("json"))  # Nomad's -json: the file is JSON, whatever its name
    if not as_json_file and (path.endswith((".hcl", ".nomad")) or _HCL_START.match(raw)
                             or _HCL_VARIABLE_START.match(raw)):
        from runtime.hcl_job import HclJobError, parse_hcl_job  # noqa: PLC0415 - HCL files only

        var_args: dict[str, str] = {}
        for item in flags.get("var", []):
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise CliError(f'invalid -var "{item}": want name=value')
            var_args[name] = value
        var_files = []
        for vf in flags.get("var-file", []):
            try:
                with open(vf, encoding="utf-8") as fh:
                    var_files.append(fh.read())
            except (OSError, UnicodeDecodeError) as e:
                why = getattr(e, "strerror", None) or e
                raise CliError(f"Error reading variable file {vf}: {why}") from None
        try:
            # file("x") and the other file functions read beside the job file, as Nomad's CLI has them.
            base_dir = os.getcwd() if path == "-" else os.path.dirname(os.path.abspath(path))
            job = parse_hcl_job(raw.decode(), var_files=var_files, var_args=var_args, env=os.environ,
                                base_dir=base_dir, strict=flags.get("hcl2-strict", True))
        except (UnicodeDecodeError, HclJobError) as e:
            raise CliError(f"Error parsing job file from {path}: {e}") from None
        return job, {"Source": raw.decode(), "Format": "hcl2", "VariableFlags": var_args,
                     "Variables": "\n".join(var_files)}
    if flags.get("var") or flags.get("var-file"):
        raise CliError("-var and -var-file are for HCL job files")
    toml = not as_json_file and (path.endswith(".toml") or not raw.lstrip().startswith(b"{"))
    try:
        if toml:
            import tomllib  # here: only a TOML job file needs it

            doc = tomllib.loads(raw.decode())
        else:
            doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise CliError(f"Error parsing job file from {path}: {e}") from None
    if not isinstance(doc, dict):
        raise CliError(f"Error parsing job file from {path}: the top level must be an object")
    job = doc.get("Job", doc) if set(doc) <= {"Job", "EnforceIndex", "JobModifyIndex"} else doc
    if not isinstance(job, dict) or not job:
        raise CliError(f"Error parsing job file from {path}: no job in it")
    return job, None if toml else {"Source": raw.decode(), "Format": "json"}


# ---------------------------------------------------------------- job


def _stamp() -> str:
    """Nomad's ``formatTime(time.Now())``, the time each monitor line starts with."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def monitor(addr: str, eval_id: str, *, head: str = "", verbose: bool = False) -> tuple[str, int]:
    """Nomad's evaluation monitor, bounded by MONITOR_TIMEOUT_S, then its deployment's: (output, exit code).

    *head* is what the command printed before.  Each line carries the time, as
    Nomad's (command/monitor.go: ``==> <time>: Monitoring evaluation "<id>"``).
    When the evaluation placed everything within a deployment, that and the
    evaluation's lines are printed at once and the deployment is watched until
    it ends (Nomad's ``job run`` since 1.2): exit 0 if it succeeded, 1 otherwise.
    """
    lines = [f'==> {_stamp()}: Monitoring evaluation "{short(eval_id, verbose)}"']
    deadline = time.monotonic() + MONITOR_TIMEOUT_S
    index, ev, meta = 0, None, {"index": 0}
    while time.monotonic() < deadline:
        ev = request(addr, "GET", f"/v1/evaluation/{eval_id}", index=index or None,
                     wait=MONITOR_WAIT if index else None, answer_meta=meta)
        if ev["Status"] not in ("pending",):
            break
        # Past the answer's index: another evaluation's change must not answer the next look at once.
        index = max(meta["index"], ev["ModifyIndex"])
    if ev is None or ev["Status"] == "pending":
        lines.append(f'    Evaluation still pending after {MONITOR_TIMEOUT_S:g}s; see "nomad job status"')
        return head + "\n".join(lines), 0
    now = _stamp()
    if ev.get("NodeID"):
        lines.append(f'    {now}: Evaluation triggered by node "{short(ev["NodeID"], verbose)}"')
    lines.append(f'    {now}: Evaluation triggered by job "{ev["JobID"]}"')
    deployment = ev.get("DeploymentID") or ""
    if deployment:
        lines.append(f'    {now}: Evaluation within deployment: "{short(deployment, verbose)}"')
    for a in request(addr, "GET", f"/v1/evaluation/{eval_id}/allocations"):
        # Nomad's: one made before the evaluation was updated by it (in place); a new one to run, created.
        if int(a.get("CreateIndex") or 0) < int(ev.get("CreateIndex") or 0):
            verb = "modified"
        elif a.get("DesiredStatus", "run") == "run":
            verb = "created"
        else:
            continue
        lines.append(f'    {now}: Allocation "{short(a["ID"], verbose)}" {verb}: '
                     f'node "{short(a["NodeID"], verbose)}", group "{a["TaskGroup"]}"')
    lines.append(f'    {now}: Evaluation status changed: "pending" -> "{ev["Status"]}"')
    if ev.get("NextEval"):
        # Its plan held no more (a large job): the next evaluation does the rest; Nomad's monitor
        # goes on to it (eval.NextEval) and ends with the last one's status and deployment.
        return monitor(addr, ev["NextEval"], head=head + "\n".join(lines) + "\n", verbose=verbose)
    failed = ev.get("FailedTGAllocs") or {}
    finished = f'==> {now}: Evaluation "{short(eval_id, verbose)}" finished with status "{ev["Status"]}"'
    if not failed:
        lines.append(finished)
    else:
        lines.append(f"{finished} but failed to place all allocations:")
        for group, metrics in sorted(failed.items()):
            n = metrics.get("CoalescedFailures", 0) + 1
            lines.append(f'    {now}: Task Group "{group}" (failed to place {n} '
                         f'{"allocation" if n == 1 else "allocations"}):')
            lines += [f"      * {why}" for why in alloc_metrics(metrics)]
        if ev.get("BlockedEval"):
            lines.append(f'    {now}: Evaluation "{short(ev["BlockedEval"], verbose)}" waiting for '
                         "additional capacity to place remainder")
    if failed or not deployment:
        # Some placement failed: exit 2 says so now.  (Nomad goes on to watch the deployment,
        # which, with nothing placed, has no progress deadline to end it: the command would
        # wait until capacity came.)
        return head + "\n".join(lines), EXIT_PLACEMENT_FAILED if failed else 0
    from runtime.cli_deployments import watch_deployment  # noqa: PLC0415 - it imports this module

    lines.append(f'==> {_stamp()}: Monitoring deployment "{short(deployment, verbose)}"')
    print(head + "\n".join(lines), flush=True)
    status = watch_deployment(addr, deployment, verbose, indent="    ")
    return "", 0 if status == "successful" else 1


def _parse_time(t: Any) -> float:
    """RFC 3339 (Nomad's time.Time JSON) -> Unix seconds; 0.0 for Go's zero time or anything else."""
    if not isinstance(t, str) or not t or t.startswith("0001-01-01"):
        return 0.0
    try:
        return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _format_drain(drain: Any) -> str:
    """Nomad's node status ``formatDrain``: ``true; <force deadline> deadline`` (or ``force drain``,
    ``no deadline``), ``; ignoring system jobs`` after, or ``false``."""
    if not isinstance(drain, dict):
        return "false"
    force = _parse_time(drain.get("ForceDeadline"))
    text = "true; force drain" if drain.get("Deadline", 0) < 0 else "true; no deadline" if not force \
        else f"true; {fmt_time(force)} deadline"
    return text + ("; ignoring system jobs" if drain.get("IgnoreSystemJobs") else "")


def _from_now(secs: float) -> str:
    """Nomad's ``prettyTimeDiff`` of a time to come: ``1m30s from now``."""
    diff = max(0, round(secs - time.time()))
    h, rest = divmod(diff, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m")) if v) + f"{s}s from now" if diff else "now"


def _reschedule_rows(addr: str, a: dict[str, Any], verbose: bool) -> list[tuple[str, Any]]:
    """Nomad's alloc status lines on rescheduling: attempts used (a limited policy), its replacement,
    and when its follow-up evaluation will reschedule it."""
    rows: list[tuple[str, Any]] = []
    events = (a.get("RescheduleTracker") or {}).get("Events") or []
    groups = (a.get("Job") or {}).get("TaskGroups") or ()
    group = next((g for g in groups if g.get("Name") == a.get("TaskGroup")), {})
    policy = group.get("ReschedulePolicy") or {}
    if events and int(policy.get("Attempts") or 0) > 0:
        # Nomad's RescheduleInfo: the reschedules within the interval before its last task ended.
        ended = max((_parse_time(st.get("FinishedAt")) for st in (a.get("TaskStates") or {}).values()),
                    default=0.0) or (a.get("ModifyTime") or 0) / 1e9
        interval = int(policy["Interval"])
        used = sum(1 for e in events if ended * 1e9 - int(e.get("RescheduleTime", 0)) < interval)
        rows.append(("Reschedule Attempts", f"{used}/{policy['Attempts']}"))
    if a.get("NextAllocation"):
        rows.append(("Replacement Alloc ID", short(a["NextAllocation"], verbose)))
    if a.get("FollowupEvalID"):
        try:
            at = _parse_time(request(addr, "GET", f"/v1/evaluation/{a['FollowupEvalID']}").get("WaitUntil"))
        except CliError:
            at = 0.0
        if at > time.time():  # Nomad's futureEvalTimePretty: nothing once its time has passed
            rows.append(("Reschedule Eligibility", _from_now(at)))
    return rows


def _deployment_rows(a: dict[str, Any], verbose: bool) -> list[tuple[str, Any]]:
    """Nomad's alloc status lines for a deployment's allocation: its deployment, health, canary."""
    if not a.get("DeploymentID"):
        return []
    status = a.get("DeploymentStatus") or {}
    healthy = status.get("Healthy")
    rows: list[tuple[str, Any]] = [("Deployment ID", short(a["DeploymentID"], verbose)),
                                   ("Deployment Health", "unset" if healthy is None else
                                    "healthy" if healthy else "unhealthy")]
    if status.get("Canary"):
        rows.append(("Canary", "true"))
    return rows


def alloc_metrics(m: dict[str, Any]) -> list[str]:
    """Nomad's ``formatAllocMetrics``: why a task group could not be placed."""
    out = []
    if not m.get("NodesEvaluated"):
        out.append("No nodes were eligible for evaluation")
    out += [f'Class "{c}": {n} nodes excluded by filter'
            for c, n in sorted((m.get("ClassFiltered") or {}).items())]
    out += [f'Constraint "{c}": {n} nodes excluded by filter' for c, n in sorted((m.get("ConstraintFiltered")
                                                                                   or {}).items())]
    unexplained = m.get("NodesFiltered", 0) - sum((m.get("ConstraintFiltered") or {}).values())
    if unexplained > 0:
        out.append(f"{unexplained} nodes excluded by filter (not ready, ineligible or draining)")
    if m.get("NodesExhausted"):
        out.append(f"Resources exhausted on {m['NodesExhausted']} nodes")
    out += [f'Class "{c}" exhausted on {n} nodes' for c, n in sorted((m.get("ClassExhausted") or {}).items())]
    out += [f'Dimension "{d}" exhausted on {n} nodes' for d, n in sorted((m.get("DimensionExhausted")
                                                                          or {}).items())]
    return out


def _finish(addr: str, eval_id: str, detach: bool, what: str, *, head: str = "",
            verbose: bool = False) -> tuple[str, int]:
    """The evaluation's outcome as Nomad prints it (and its deployment's), with the exit code (2: placement
    failed; 1: its deployment did not succeed)."""
    if detach or not eval_id:
        return f"{what}\nEvaluation ID: {eval_id}", 0
    return monitor(addr, eval_id, head=head, verbose=verbose)


def _int_flag(flags: dict[str, Any], name: str) -> int:
    """An integer flag's value, or Go's flag package's refusal."""
    try:
        return int(flags[name])
    except ValueError:
        raise CliError(f'invalid value "{flags[name]}" for flag -{name}: parse error') from None


def job_run(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool, "check-index": int, "output": bool,
                                     "preserve-counts": bool, "preserve-resources": bool,
                                     "policy-override": bool, "eval-priority": int, **FILE_FLAGS})
    usage = "nomad job run [-detach] [-check-index N] [-output] [-var k=v] [-var-file f] <path>"
    job, submission = load_job_submission(one_arg(rest, usage), flags)
    scope_to_job(job)
    if flags.get("output"):  # Nomad's -output: the request's JSON, indented by 4, nothing submitted
        return json.dumps({"Job": job}, indent=4), 0
    body: dict[str, Any] = {"Job": job}
    if submission is not None:  # Nomad's: the source as written, kept by the servers for job inspect -hcl
        body["Submission"] = submission
    if flags.get("preserve-counts"):  # Nomad's: the running job's group counts are kept
        body["PreserveCounts"] = True
    if flags.get("preserve-resources"):  # Nomad's: the running job's task resources are kept
        body["PreserveResources"] = True
    if flags.get("policy-override"):  # Sentinel (Enterprise) policies: none here, as in Nomad OSS
        body["PolicyOverride"] = True
    if flags.get("eval-priority"):  # Nomad's: the evaluation's priority instead of the job's
        body["EvalPriority"] = _int_flag(flags, "eval-priority")
    if "check-index" in flags:
        try:
            body.update(EnforceIndex=True, JobModifyIndex=int(flags["check-index"]))
        except ValueError:
            raise CliError(f'invalid value "{flags["check-index"]}" for flag -check-index') from None
    try:
        got = request(addr, "PUT", "/v1/jobs", body)
    except CliError as e:
        # Nomad's enforceIndexRegex: the index conflict alone, then "Job not updated", on stderr.
        found = re.search(r"\((Enforcing job modify index.*)\)", str(e))
        if found is None:
            raise
        print(f"{found.group(1)}\nJob not updated", file=sys.stderr)
        return "", 1
    if job.get("Periodic") or job.get("ParameterizedJob"):
        # Nomad monitors nothing for a launcher: a periodic job's next launch, a parameterized job alone.
        text = "Job registration successful"
        if not job.get("ParameterizedJob") and not (job["Periodic"].get("Enabled") is False):
            from actors.scheduler.cron import CronError, next_launch  # here: periodic jobs only
            from runtime.cli_usage import go_duration  # here: it imports this module

            now = time.time()
            try:
                nxt = next_launch(job["Periodic"], now)
                text += (f"\nApproximate next launch time: {fmt_launch_time(nxt, job['Periodic'])} "
                         f"({go_duration(int(nxt) - int(now))} from now)")
            except CronError as e:
                print(f"Error determining next launch time: {e}", file=sys.stderr)
        return job_warnings(got) + text, 0
    text, code = _finish(addr, got.get("EvalID", ""), flags.get("detach", False),
                         "Job registration successful", verbose=bool(flags.get("verbose")))
    return job_warnings(got) + text, code


def job_warnings(got: dict[str, Any]) -> str:
    """Nomad's "Job Warnings:" block (a register, plan or validate answer's ``Warnings``) and a blank
    line; "" when there are none."""
    return f"Job Warnings:\n{got['Warnings']}\n\n" if got.get("Warnings") else ""


INIT_FILE = "example.nomad.hcl"
INIT_JOB = """# A job file to start from: nomad job plan example.nomad.hcl, then nomad job run.
# The agent runs these blocks (anything else is refused by name); raw_exec
# must be enabled on the client (client.options "driver.raw_exec.enable").

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

job "example" {
  datacenters = var.datacenters
  type        = "service"

  group "web" {
    count = 1

    # Restart a failed task twice within 30 minutes, 15 s apart, then fail it.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do date; sleep 10; done"]
      }

      env {
        GREETING = "hello"
      }

      kill_timeout = "10s"

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }
    }
  }
}
"""
INIT_JOB_SHORT = """job "example" {
  datacenters = ["dc1"]

  group "web" {
    task "server" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do date; sleep 10; done"]
      }
    }
  }
}
"""


def job_init(addr: str, args: list[str]) -> str:
    """``nomad job init [-short] [<file>]``: write an example job file (never over an existing one)."""
    flags, rest = parse_flags(args, {"short": bool, "json": bool})
    if flags.get("json"):
        raise CliError("-json is not supported: the example is HCL (nomad job inspect shows a job's JSON)")
    if len(rest) > 1:
        raise CliError("This command takes at most one argument: nomad job init [-short] [<file>]")
    path = rest[0] if rest else INIT_FILE
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(INIT_JOB_SHORT if flags.get("short") else INIT_JOB)
    except FileExistsError:
        raise CliError(f"Job '{path}' already exists") from None
    except OSError as e:
        raise CliError(f"Failed to write '{path}': {e.strerror}") from None
    return f"Example job file written to {path}"


def job_validate(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job validate [-var k=v] [-var-file f] <path>``: the file read, then checked by the agent."""
    flags, rest = parse_flags(args, {"verbose": bool, **FILE_FLAGS})
    job = load_job_file(one_arg(rest, "nomad job validate [-var k=v] [-var-file f] <path>"), flags)
    scope_to_job(job, ("Region",))
    got = request(addr, "PUT", "/v1/validate/job", {"Job": job})
    errors = got.get("ValidationErrors") or []
    if errors:
        raise CliError("Job validation errors:\n" + "\n".join(f"  * {e}" for e in errors))
    return job_warnings(got) + "Job validation successful", 0


def job_stop(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job stop [-purge] [-detach] [-no-shutdown-delay] [-yes] <job>...``: as Nomad's, each job
    named (a prefix of one alone is confirmed unless -yes); -detach prints each stop's evaluation ID
    alone, a periodic or parameterized job's stop (no evaluation) prints nothing; -no-shutdown-delay
    kills the job's tasks without waiting out their shutdown_delay."""
    flags, rest = parse_flags(args, {"purge": bool, "detach": bool, "yes": bool, "verbose": bool,
                                     "no-shutdown-delay": bool, "eval-priority": int})
    eval_priority = _int_flag(flags, "eval-priority") if flags.get("eval-priority") else None
    if not rest:
        raise CliError("This command takes at least one argument: <job>")
    outs, code = [], 0
    for ident in rest:
        try:
            job = resolve(addr, "job", ident.strip())
        except CliError as e:
            print(e, file=sys.stderr)  # Nomad's Ui.Error(err.Error()): the message as it is
            code = 1
            continue
        if len(rest) == 1 and ident != job["ID"] and not flags.get("yes"):
            question = f'Are you sure you want to stop job "{job["ID"]}"? [y/N]'
            refused = _confirm(question, "Cancelling job stop")
            if refused is not None:
                return refused
        try:
            got = request(addr, "DELETE", f"/v1/job/{urllib.parse.quote(job['ID'], safe='')}",
                          purge="true" if flags.get("purge") else None,
                          no_shutdown_delay="true" if flags.get("no-shutdown-delay") else None,
                          eval_priority=eval_priority)
        except CliError as e:
            print(f"Error deregistering job with id {ident} err: {e}", file=sys.stderr)
            code = 1
            continue
        eval_id = got.get("EvalID", "")
        if not eval_id:
            continue
        if flags.get("detach"):
            outs.append(eval_id)
            continue
        text, rc = monitor(addr, eval_id, verbose=bool(flags.get("verbose")))
        outs.append(text)
        code = code or rc
    return "\n".join(outs), code


def as_json(value: Any) -> str:
    """Nomad's ``-json`` output (``command/helpers.go`` ``Format``): indented four spaces."""
    return json.dumps(value, indent=4)


def _job_json(addr: str, job_id: str, namespace: str = "") -> dict[str, Any]:
    """Nomad's ``JobJson`` (``job status -json``): summary, allocations, latest deployment, evals;
    *namespace*: the job's own (a list of every namespace's jobs asks each in its own)."""
    path = f"/v1/job/{urllib.parse.quote(job_id, safe='')}"
    if namespace:
        path += "?namespace=" + urllib.parse.quote(namespace, safe="")
        return {"Summary": request(addr, "GET", path.replace("?", "/summary?", 1)),
                "Allocations": request(addr, "GET", path.replace("?", "/allocations?", 1)),
                "LatestDeployment": request(addr, "GET", path.replace("?", "/deployment?", 1)),
                "Evaluations": request(addr, "GET", path.replace("?", "/evaluations?", 1))}
    return {"Summary": request(addr, "GET", f"{path}/summary"),
            "Allocations": request(addr, "GET", f"{path}/allocations"),
            "LatestDeployment": request(addr, "GET", f"{path}/deployment"),
            "Evaluations": request(addr, "GET", f"{path}/evaluations")}


def job_status(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"verbose": bool, "short": bool, "all-allocs": bool, "evals": bool,
                                     "filter": str, "json": bool})
    verbose = flags.get("verbose", False)
    if not rest:
        jobs = request(addr, "GET", "/v1/jobs", filter=flags.get("filter"))
        if not jobs:
            return "No running jobs"
        from runtime.cli import ACTIVE

        every = ACTIVE.get("namespace") == "*"
        if flags.get("json"):
            return as_json([_job_json(addr, j["ID"], j.get("Namespace", "") if every else "") for j in jobs])
        return job_list_table(jobs, every)
    stub = resolve(addr, "job", one_arg(rest, "nomad job status [<job>]"))
    if flags.get("json"):
        return as_json([_job_json(addr, stub["ID"])])
    path = f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}"
    job = request(addr, "GET", path)
    periodic, param = bool(job.get("Periodic")), bool(job.get("ParameterizedJob"))
    pairs = [("ID", job["ID"]), ("Name", job.get("Name", job["ID"])),
             ("Submit Date", fmt_time(job.get("SubmitTime"))), ("Type", job["Type"]),
             ("Priority", job.get("Priority", 50)), ("Datacenters", ",".join(job.get("Datacenters", ()))),
             ("Namespace", job.get("Namespace", "default")), ("Node Pool", job.get("NodePool", "default")),
             ("Status", job.get("Status", "pending") + (" (stopped)" if job.get("Stop") else "")),
             ("Periodic", str(periodic).lower()), ("Parameterized", str(param).lower())]
    if job.get("DispatchIdempotencyToken"):
        pairs.append(("Idempotency Token", job["DispatchIdempotencyToken"]))
    if periodic and not param:  # Nomad's: one more line of the same block, and how far off it is
        if job.get("Stop"):
            pairs.append(("Next Periodic Launch", "none (job stopped)"))
        else:
            from actors.scheduler.cron import CronError, next_launch  # here: periodic jobs only
            from runtime.cli_usage import go_duration  # here: it imports this module

            now = time.time()
            try:
                nxt = next_launch(job["Periodic"], now)
            except CronError:
                nxt = None
            if nxt is not None:
                pairs.append(("Next Periodic Launch",
                              f"{fmt_launch_time(nxt, job['Periodic'])} "
                              f"({go_duration(int(nxt) - int(now))} from now)"))
    out = [kv(pairs)]
    if (periodic or param) and flags.get("short"):
        return out[0]
    if periodic or param:
        # Nomad's outputPeriodicInfo / outputParameterizedInfo: the children, not the launcher's summary.
        if param:
            spec = job["ParameterizedJob"]
            out += ["", "Parameterized Job", kv([
                ("Payload", spec.get("Payload") or "optional"),
                ("Required Metadata", ", ".join(spec.get("MetaRequired") or ())),
                ("Optional Metadata", ", ".join(spec.get("MetaOptional") or ()))])]
        kids = (request(addr, "GET", f"{path}/summary") or {}).get("Children") or {}
        out += ["", "Parameterized Job Summary" if param else "Children Job Summary",
                table([["Pending", "Running", "Dead"],
                       [str(kids.get(k, 0)) for k in ("Pending", "Running", "Dead")]])]
        suffix = "/dispatch-" if param else "/periodic-"
        children = [j for j in request(addr, "GET", "/v1/jobs", prefix=job["ID"] + suffix) or ()
                    if j.get("ParentID") == job["ID"]]
        if not children:
            out.append("\nNo dispatched instances of parameterized job found" if param
                       else "\nNo instances of periodic job found")
        else:
            out += ["", "Dispatched Jobs" if param else "Previously Launched Jobs",
                    table([["ID", "Status"]] + [[c["ID"], c["Status"]] for c in children])]
        return "\n".join(out)
    if flags.get("short"):
        return out[0]
    summary = request(addr, "GET", f"{path}/summary")["Summary"]
    rows = [["Task Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost", "Unknown"]]
    rows += [[g] + [str(s[k]) for k in rows[0][1:]] for g, s in sorted(summary.items())]
    out += ["", "Summary", table(rows)]
    out += _job_evals_sections(request(addr, "GET", f"{path}/evaluations") or [], verbose,
                               bool(flags.get("evals")))
    latest = request(addr, "GET", f"{path}/deployment")
    if latest:  # Nomad's "Latest Deployment", before the allocations
        from runtime.cli_deployments import latest_deployment_section  # it imports this module

        out += latest_deployment_section(latest, verbose)
    every = {"all": "true"} if flags.get("all-allocs") else {}  # an earlier job's of the same ID too
    allocs = request(addr, "GET", f"{path}/allocations", **every)
    out += ["", "Allocations"]
    if not allocs:
        out.append("No allocations placed")
    else:
        out.append(alloc_table(allocs, verbose, with_node=True))
    return "\n".join(out)


def eval_failure_status(ev: dict[str, Any]) -> str:
    """Nomad's evalFailureStatus, the "Placement Failures" column: whether the evaluation failed a
    placement, or ``N/A - In Progress`` while it is blocked (it holds the failures it waits on)."""
    if ev.get("Status") == "blocked":
        return "N/A - In Progress"
    return str(bool(ev.get("FailedTGAllocs"))).lower()


MAX_FAILED_TGS = 5  # Nomad's maxFailedTGs: task groups shown under "Placement Failure"


def _job_evals_sections(evals: list[dict[str, Any]], verbose: bool, show: bool) -> list[str]:
    """Nomad's outputJobInfo: the "Evaluations" table (-evals or -verbose) and, while an evaluation is
    blocked, the latest failed placement's reasons per task group ("Placement Failure")."""
    out: list[str] = []
    rows = [["ID", "Priority", "Triggered By", "Status", "Placement Failures"]]
    latest, blocked = None, False
    for ev in evals:
        failures = eval_failure_status(ev)
        rows.append([short(ev["ID"], verbose), str(ev.get("Priority", 50)), ev.get("TriggeredBy", ""),
                     ev.get("Status", ""), failures])
        blocked = blocked or ev.get("Status") == "blocked"
        newer = latest is None or latest.get("CreateIndex", 0) < ev.get("CreateIndex", 0)
        if ev.get("FailedTGAllocs") and newer:
            latest = ev
    if verbose or show:
        out += ["", "Evaluations", table(rows)]
    if blocked and latest is not None:
        out += ["", "Placement Failure"]
        groups = sorted(latest["FailedTGAllocs"])
        for i, group in enumerate(groups[:MAX_FAILED_TGS]):
            out.append(f'Task Group "{group}":')
            out += [f"  * {line}" for line in alloc_metrics(latest["FailedTGAllocs"][group])]
            if i != len(groups) - 1:
                out.append("")
        if len(groups) > MAX_FAILED_TGS:
            out += ["", "Placement failures truncated. To see remainder run:",
                    f"nomad eval-status {latest['ID']}"]
    return out


def alloc_table(allocs: list[dict[str, Any]], verbose: bool, *, with_node: bool) -> str:
    """Nomad's allocation tables, newest first.  *with_node* is formatAllocListStubs (job status, job
    allocs, deployment status): -verbose adds the Eval ID and Node Name.  Without it, formatAllocList
    (node status): the Node ID column all the same, -verbose adds the Eval ID.  -verbose shows the
    times themselves, not how long ago."""
    head = ["ID"] + (["Eval ID"] if verbose else []) + ["Node ID"] \
        + (["Node Name"] if verbose and with_node else []) \
        + ["Task Group", "Version", "Desired", "Status", "Created", "Modified"]
    rows = [head]
    when = fmt_time if verbose else ago
    for a in sorted(allocs, key=lambda a: (-a.get("CreateIndex", 0), a["ID"])):
        rows.append([short(a["ID"], verbose)] + ([short(a.get("EvalID", ""), verbose)] if verbose else [])
                    + [short(a.get("NodeID", ""), verbose)]
                    + ([a.get("NodeName", "")] if verbose and with_node else [])
                    + [a["TaskGroup"], str(a.get("JobVersion", 0)), a["DesiredStatus"], a["ClientStatus"],
                       when(a.get("CreateTime")), when(a.get("ModifyTime"))])
    return table(rows)


# ---------------------------------------------------------------- alloc


def go_duration_ns(ns: Any) -> str:
    """Go's ``time.Duration.String`` of nanoseconds: ``0s``, ``850ns``, ``1.5µs``, ``2.25ms``, ``1m3.5s``."""
    n = int(ns) if isinstance(ns, (int, float)) and not isinstance(ns, bool) else 0
    sign, n = ("-", -n) if n < 0 else ("", n)
    if n == 0:
        return "0s"
    if n < 1000:
        return f"{sign}{n}ns"

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)
    if n < 1_000_000:
        return f"{sign}{frac(n, 1000)}µs"
    if n < 1_000_000_000:
        return f"{sign}{frac(n, 1_000_000)}ms"
    h, rest = divmod(n, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    secs = frac(rest, 10**9) + "s"
    return sign + (f"{h}h{m}m{secs}" if h else f"{m}m{secs}" if m else secs)


def _placement_rows(m: dict[str, Any]) -> list[tuple[str, Any]]:
    """Nomad's alloc status -verbose: how many nodes the placement looked at, and how long it took."""
    return [("Evaluated Nodes", m.get("NodesEvaluated", 0)), ("Filtered Nodes", m.get("NodesFiltered", 0)),
            ("Exhausted Nodes", m.get("NodesExhausted", 0)),
            ("Allocation Time", go_duration_ns(m.get("AllocationTime", 0))),
            ("Failures", m.get("CoalescedFailures", 0))]


def alloc_status(addr: str, args: list[str]) -> str:
    from runtime.cli_usage import fetch_alloc_stats, task_resources  # it imports this module

    flags, rest = parse_flags(args, {"verbose": bool, "short": bool, "json": bool, "stats": bool})
    verbose = flags.get("verbose", False)
    if not rest and flags.get("json"):  # Nomad: no argument with -json or -t lists every allocation
        return as_json(request(addr, "GET", "/v1/allocations"))
    if len(rest) != 1:
        raise CliError("This command takes one of the following argument conditions:\n"
                       " * A single <allocation>\n * No arguments, with output format specified\n"
                       "For additional help try 'nomad alloc status -help'")
    ident = rest[0]
    if len(ident) == 1:
        raise CliError("Identifier must contain at least two characters.")
    try:
        stub = resolve(addr, "allocation", ident)
    except AmbiguousPrefix as e:  # Nomad's alloc status lists them on stdout and succeeds (not the others)
        return str(e)
    a = request(addr, "GET", f"/v1/allocation/{stub['ID']}")
    if flags.get("json"):
        return as_json(a)
    out = [kv([("ID", a["ID"]), ("Eval ID", short(a["EvalID"], verbose)), ("Name", a["Name"]),
               ("Node ID", short(a["NodeID"], verbose)), ("Node Name", a.get("NodeName", "")),
               ("Job ID", a["JobID"]), ("Job Version", a.get("JobVersion", 0)),
               ("Client Status", a["ClientStatus"]),
               ("Client Description", a.get("ClientDescription") or "<none>"),
               ("Desired Status", a["DesiredStatus"]),
               ("Desired Description", a.get("DesiredDescription") or "<none>"),
               # Nomad's: -verbose shows the times themselves, not how long ago.
               ("Created", (fmt_time if verbose else ago)(a.get("CreateTime"))),
               ("Modified", (fmt_time if verbose else ago)(a.get("ModifyTime"))),
               *_deployment_rows(a, verbose), *_reschedule_rows(addr, a, verbose),
               *(_placement_rows(a.get("Metrics") or {}) if verbose else [])])]
    if flags.get("short"):
        return out[0]
    shared = (a.get("AllocatedResources") or {}).get("Shared") or {}
    if shared.get("Ports"):  # Nomad's "Allocation Addresses": * marks the group's network ports
        static = {p["Label"] for n in shared.get("Networks") or () for p in n.get("ReservedPorts") or ()}
        rows = [["Label", "Dynamic", "Address"]]
        for p in shared["Ports"]:
            to = f" -> {p['To']}" if p.get("To") not in (0, p["Value"]) else ""
            rows.append([f"*{p['Label']}", "no" if p["Label"] in static else "yes",
                         f"{p.get('HostIP', '')}:{p['Value']}{to}"])
        out += ["", "Allocation Addresses:", table(rows)]
    out += _service_checks_section(addr, a)
    resources = a.get("Resources") or {}
    lifecycles = (a.get("AllocatedResources") or {}).get("TaskLifecycles") or {}

    def task_order(item: tuple[str, Any]) -> tuple[int, str]:
        """Nomad's sortedTaskStateIterator: lifecycle tasks (sidecars after the others), then main ones."""
        lc = lifecycles.get(item[0])
        return (2 if not lc else 1 if lc.get("Sidecar") else 0), item[0]

    stats = None
    if resources:  # Nomad asks the node for the tasks' live usage, shown against their reservations
        stats, said = fetch_alloc_stats(addr, a)
        out += said
    for name, ts in sorted((a.get("TaskStates") or {}).items(), key=task_order):
        lc = lifecycles.get(name)
        shown = f' ({lc.get("Hook", "")}{" sidecar" if lc.get("Sidecar") else ""})' if lc else ""
        out += ["", f'Task "{name}"{shown} is "{ts.get("State", "pending")}"']
        if resources:  # Nomad's: the group's ephemeral disk (alloc.Resources.DiskMB) under Disk
            out += task_resources(a, name, stats, bool(flags.get("stats")), *_task_resources(a, name))
        # Nomad's outputTaskStatus: the task's times and restarts, then its events, newest first.
        out += ["", "Task Events:", kv([("Started At", _task_time(ts.get("StartedAt"))),
                                        ("Finished At", _task_time(ts.get("FinishedAt"))),
                                        ("Total Restarts", ts.get("Restarts", 0)),
                                        ("Last Restart", _task_time(ts.get("LastRestart")))])]
        rows = [["Time", "Type", "Description"]]
        rows += [[fmt_time(e.get("Time")), e.get("Type", ""),
                  e.get("DisplayMessage") or e.get("Message", "")] for e in reversed(ts.get("Events") or [])]
        out += ["", "Recent Events:", table(rows)]
    if verbose and a.get("Metrics"):  # Nomad's: how the scheduler chose the node (none kept before them)
        out += ["", "Placement Metrics", placement_metrics(a["Metrics"])]
    return "\n".join(out)


def placement_metrics(m: dict[str, Any], prefix: str = "  ") -> str:
    """Nomad's ``formatAllocMetrics`` with scores (``alloc status -verbose``): what the placement's
    selection filtered and found exhausted, then the best nodes' scores by scorer and their final
    score.  Maps in sorted order (Go's are unordered)."""
    lines = []
    if not m.get("NodesEvaluated"):
        lines.append(f"{prefix}* No nodes were eligible for evaluation")
    lines += [f'{prefix}* No nodes are available in datacenter "{dc}"'
              for dc, n in sorted((m.get("NodesAvailable") or {}).items()) if n == 0]
    lines += [f'{prefix}* Class "{c}": {n} nodes excluded by filter'
              for c, n in sorted((m.get("ClassFiltered") or {}).items())]
    lines += [f'{prefix}* Constraint "{c}": {n} nodes excluded by filter'
              for c, n in sorted((m.get("ConstraintFiltered") or {}).items())]
    if m.get("NodesExhausted"):
        lines.append(f"{prefix}* Resources exhausted on {m['NodesExhausted']} nodes")
    lines += [f'{prefix}* Class "{c}" exhausted on {n} nodes'
              for c, n in sorted((m.get("ClassExhausted") or {}).items())]
    lines += [f'{prefix}* Dimension "{d}" exhausted on {n} nodes'
              for d, n in sorted((m.get("DimensionExhausted") or {}).items())]
    lines += [f'{prefix}* Quota limit hit "{d}"' for d in m.get("QuotaExhausted") or ()]
    meta = m.get("ScoreMetaData") or []
    if meta:
        scorers = sorted({name for entry in meta for name in entry.get("Scores") or {}})
        rows = [["Node", *scorers, "final score"]]
        for entry in meta:
            scores = entry.get("Scores") or {}
            rows.append([entry.get("NodeID", ""), *(_g3(scores.get(name, 0.0)) for name in scorers),
                         _g3(entry.get("NormScore", 0.0))])
        lines.append(table(rows))
    else:  # an allocation placed before scores were kept (Nomad's deprecated Scores map)
        lines += [f'{prefix}* Score "{name}" = {score:f}'
                  for name, score in sorted((m.get("Scores") or {}).items())]
    return "\n".join(lines)


def _g3(v: Any) -> str:
    """Go's ``%.3g``."""
    return f"{float(v):.3g}" if isinstance(v, (int, float)) else str(v)


def _task_time(value: Any) -> str:
    """A task state's RFC 3339 time as Nomad's formatTaskTimes prints it; N/A when unset (null, or Go's
    zero time)."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return "N/A"
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _task_resources(a: dict[str, Any], task: str) -> tuple[int, int, int]:
    """(CPU MHz, memory MB, memory_max MB) of one task of the allocation (Nomad's
    ``alloc.TaskResources[task]``); the allocation's totals when the answer has no such task."""
    tr = ((a.get("AllocatedResources") or {}).get("Tasks") or {}).get(task)
    if not tr:
        r = a.get("Resources") or {}
        return int(r.get("CPU", 0)), int(r.get("MemoryMB", 0)), 0
    mem = tr.get("Memory") or {}
    return (int((tr.get("Cpu") or {}).get("CpuShares", 0)), int(mem.get("MemoryMB", 0)),
            int(mem.get("MemoryMaxMB") or 0))


def _has_checks(a: dict[str, Any]) -> bool:
    groups = (a.get("Job") or {}).get("TaskGroups") or ()
    group = next((g for g in groups if g.get("Name") == a.get("TaskGroup")), None) or {}
    owners = [group, *(group.get("Tasks") or ())]
    return any(s.get("Checks") for o in owners for s in o.get("Services") or ())


def _alloc_checks(addr: str, a: dict[str, Any], timeout_s: float = TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """The allocation's check results, from the node that runs them."""
    raw = _get_raw(f"{_node_url(addr, a)}/v1/client/allocation/{a['ID']}/checks?{_ns_query(a)}", timeout_s)
    try:
        got = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        raise CliError(f"Error querying allocation checks: {e}") from None
    return got if isinstance(got, dict) else {}


def _service_checks_section(addr: str, a: dict[str, Any]) -> list[str]:
    """Nomad's ``alloc status`` "Nomad Service Checks" table; nothing when there are none or the node
    cannot be asked (a stopped allocation's checks are gone)."""
    if not _has_checks(a) or a.get("ClientStatus") != "running":
        return []
    try:
        checks = _alloc_checks(addr, a, ALLOC_STATUS_CHECKS_TIMEOUT_S)
    except CliError:
        return []
    if not checks:
        return []
    rows = sorted([c.get("Service", ""), c.get("Task") or "(group)", c.get("Check", ""), c.get("Mode", ""),
                   c.get("Status", "")] for c in checks.values())
    return ["", "Nomad Service Checks:", table([["Service", "Task", "Name", "Mode", "Status"], *rows])]


def alloc_checks(addr: str, args: list[str]) -> str:
    """``nomad alloc checks [-json] [-verbose] <allocation>``: the latest result of each service check."""
    flags, rest = parse_flags(args, {"json": bool, "verbose": bool})
    stub = resolve(addr, "allocation", one_arg(rest, "nomad alloc checks <allocation>"))
    a = request(addr, "GET", f"/v1/allocation/{stub['ID']}")
    checks = _alloc_checks(addr, a)
    if flags.get("json"):
        return as_json(checks)
    out = [f"Status of {len(checks)} Nomad Service Checks", ""]
    for c in sorted(checks.values(), key=lambda c: (c.get("Service", ""), c.get("Task", ""),
                                                    c.get("Check", ""))):
        rows: list[tuple[str, Any]] = [("ID", c.get("ID", "")), ("Name", c.get("Check", "")),
                                       ("Group", c.get("Group", "")), ("Task", c.get("Task") or "(group)"),
                                       ("Service", c.get("Service", "")), ("Status", c.get("Status", ""))]
        if c.get("StatusCode"):
            rows.append(("StatusCode", c["StatusCode"]))
        rows += [("Mode", c.get("Mode", "")), ("Timestamp", fmt_time(c.get("Timestamp"))),
                 ("Output", c.get("Output", ""))]
        out += [kv(rows), ""]
    return "\n".join(out).rstrip("\n")


def alloc_stop(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad alloc stop [-detach] [-no-shutdown-delay] [-verbose] <allocation>``: stop it (without
    waiting out its shutdown_delay with -no-shutdown-delay); its job places a replacement."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool, "no-shutdown-delay": bool})
    stub = resolve(addr, "allocation", one_arg(rest, "nomad alloc stop <allocation>"))
    got = request(addr, "PUT", f"/v1/allocation/{stub['ID']}/stop",
                  no_shutdown_delay="true" if flags.get("no-shutdown-delay") else None,
                  # Nomad's: a batch allocation is rescheduled by its reschedule policy, not migrated.
                  reschedule="true" if stub.get("JobType") == "batch" else None)
    if flags.get("detach", False):  # Nomad's alloc stop -detach: the evaluation's ID alone
        return got.get("EvalID", ""), 0
    return monitor(addr, got.get("EvalID", ""), verbose=bool(flags.get("verbose")))


# A batch of ``job restart`` must be running again within this long, or the
# restart stops there with an error (a task that no longer starts should not
# take the rest of the job down with it).  Nomad's waits for the batch too.
JOB_RESTART_WAIT_S = 60.0
JOB_RESTART_POLL_S = 0.5  # how often a restarting batch's allocations are looked at


def _restart_batch_size(raw: str, total: int) -> int:
    """``-batch-size``: a count, or a percentage of the allocations (rounded up, as Nomad's)."""
    try:
        if raw.endswith("%"):
            pct = float(raw[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return max(1, math.ceil(total * pct / 100))
        n = int(raw)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise CliError(f'invalid -batch-size "{raw}": want a count of 1 or more, or a percentage') from None


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st (go-humanize's Ordinal, for batch headers)."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def job_restart(addr: str, args: list[str]) -> str:
    """``nomad job restart [-all-tasks|-task t...] [-group g...] [-reschedule] [-batch-size n|n%]
    [-batch-wait d] [-verbose] <job>``.

    As Nomad's (1.6): the job's running allocations (of the ``-group``
    groups, with one of the ``-task`` tasks, when given) are restarted in
    batches; each batch must be running again before the next starts.  By
    default a batch's running tasks restart in place (``-all-tasks``: every
    task, ``-task``: those named); ``-reschedule`` stops each allocation
    instead, and the job places a replacement, which must be running.
    ``-yes`` is taken and never needed: this CLI does not prompt.  The
    output is Nomad's: ``==> <time>: ...`` headers, an indented line per
    allocation, and "Job restarted successfully!" at the end.
    """
    flags, rest = parse_flags(args, {"all-tasks": bool, "task": list, "group": list, "reschedule": bool,
                                     "batch-size": str, "batch-wait": str, "yes": bool, "verbose": bool,
                                     "no-shutdown-delay": bool, "on-error": str})
    # Nomad's -on-error: "fail" stops at a batch's error, as this CLI always does; "ask" (Nomad's default)
    # would ask whether to go on -- this CLI does not prompt, so it stops there too.
    on_error = flags.get("on-error", "ask")
    if on_error not in ("ask", "fail"):
        raise CliError(f'Invalid -on-error value "{on_error}": valid options are "ask" and "fail"')
    no_delay = "true" if flags.get("no-shutdown-delay") else None
    tasks, groups = list(flags.get("task") or []), list(flags.get("group") or [])
    if flags.get("all-tasks") and tasks:
        raise CliError("The -all-tasks option cannot be used with -task")
    if flags.get("reschedule") and (flags.get("all-tasks") or tasks):
        raise CliError("The -reschedule option cannot be used with -task or -all-tasks")
    try:
        wait_s = parse_duration(flags.get("batch-wait", "0s") or "0s")
    except ValueError as e:
        raise CliError(f"invalid -batch-wait: {e}") from None
    stub = resolve(addr, "job", one_arg(rest, "nomad job restart [options] <job>"))
    job_path = f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}"
    verbose = flags.get("verbose", False)

    def stamp() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def header(line: str) -> None:
        print(f"==> {stamp()}: {line}", flush=True)

    def say(line: str) -> None:
        print(f"    {stamp()}: {line}", flush=True)

    if flags.get("reschedule") and stub.get("Type") not in ("batch", "service", "system"):
        raise CliError(f'Jobs of type "{stub.get("Type")}" are not allowed to be rescheduled.')
    # As Nomad's: a -group or -task no allocation has is not an error; those allocations are skipped
    # (and with none left, "No allocations to restart").
    running = []
    allocs = request(addr, "GET", f"{job_path}/allocations")
    for a in sorted(allocs, key=lambda a: (a.get("Name", ""), a["ID"])):
        name = short(a["ID"], verbose)
        if a.get("ClientStatus") != "running" or a.get("DesiredStatus") != "run":
            if verbose:
                say(f'Skipping allocation "{name}" because desired status is "{a.get("DesiredStatus")}" '
                    f'and client status is "{a.get("ClientStatus")}"')
        elif a.get("NextAllocation"):
            if verbose:
                say(f'Skipping allocation "{name}" because it has already been replaced by '
                    f'"{short(a["NextAllocation"], verbose)}"')
        elif groups and a.get("TaskGroup") not in groups:
            if verbose:
                say(f'Skipping allocation "{name}" because it doesn\'t have any of requested groups')
        elif tasks and not set(tasks) & set(a.get("TaskStates") or {}):
            if verbose:
                say(f'Skipping allocation "{name}" because it doesn\'t have any of requested tasks')
        else:
            running.append(a)
    if not running:
        return "No allocations to restart"
    size = _restart_batch_size(flags.get("batch-size", "1") or "1", len(running))
    header(f"Restarting {len(running)} allocation{'s' if len(running) != 1 else ''}")
    for start in range(0, len(running), size):
        batch = running[start:start + size]
        if start and wait_s > 0:
            header(f"Waiting {flags['batch-wait']} before restarting the next batch")
            time.sleep(wait_s)
        if size > 1:
            header(f"Restarting {_ordinal(start // size + 1)} batch of {len(batch)} allocations")
        if flags.get("reschedule"):
            for a in batch:
                name, group = short(a["ID"], verbose), a.get("TaskGroup", "")
                say(f'Rescheduling allocation "{name}" for group "{group}"')
                request(addr, "PUT", f"/v1/allocation/{a['ID']}/stop", no_shutdown_delay=no_delay)
            _await_replacements(addr, job_path, {a["ID"] for a in batch}, len(running))
            continue
        before: dict[str, dict[str, tuple[int, bool]]] = {}  # alloc -> task -> (restarts, must run again)
        for a in batch:
            name, group = short(a["ID"], verbose), a.get("TaskGroup", "")
            full = request(addr, "GET", f"/v1/allocation/{a['ID']}")
            states = full.get("TaskStates") or {}
            url = f"{_node_url(addr, full)}/v1/client/allocation/{a['ID']}/restart?{_ns_query(full)}"
            if tasks:
                for t in (t for t in tasks if t in states):
                    say(f'Restarting task "{t}" in allocation "{name}" for group "{group}"')
                    _put_json(url, {"TaskName": t, "AllTasks": False})
            else:
                what = "all tasks" if flags.get("all-tasks") else "running tasks"
                say(f'Restarting {what} in allocation "{name}" for group "{group}"')
                _put_json(url, {"TaskName": "", "AllTasks": bool(flags.get("all-tasks"))})
            before[a["ID"]] = {t: (int(st.get("Restarts", 0)), st.get("State") == "running")
                               for t, st in states.items()
                               if (t in tasks if tasks else
                                   flags.get("all-tasks") or st.get("State") == "running")}
        _await_restarted(addr, before)
    header("Job restart finished")
    return "\nJob restarted successfully!"


def _await_restarted(addr: str, before: dict[str, dict[str, tuple[int, bool]]]) -> None:
    """Every task restarted in the batch restarted once more than before, and running if it was."""
    deadline = time.monotonic() + JOB_RESTART_WAIT_S
    pending = set(before)
    while pending:
        for alloc_id in sorted(pending):
            a = request(addr, "GET", f"/v1/allocation/{alloc_id}")
            states = a.get("TaskStates") or {}
            if a.get("ClientStatus") not in ("pending", "running"):
                raise CliError(f"Allocation {short(alloc_id)} is {a.get('ClientStatus')} after its restart: "
                               "the job restart stops here")
            if all(int(states.get(t, {}).get("Restarts", 0)) > n
                   and (not was_running or states.get(t, {}).get("State") == "running")
                   for t, (n, was_running) in before[alloc_id].items()):
                pending.discard(alloc_id)
        if pending:
            if time.monotonic() > deadline:
                ids = ", ".join(short(i) for i in sorted(pending))
                raise CliError(f"Allocation(s) {ids} not running again "
                               f"within {JOB_RESTART_WAIT_S:g}s: the job restart stops here")
            time.sleep(JOB_RESTART_POLL_S)


def _await_replacements(addr: str, job_path: str, stopped: set[str], want: int) -> None:
    """The job back at *want* running allocations, none of them one just stopped."""
    deadline = time.monotonic() + JOB_RESTART_WAIT_S
    while True:
        live = [a for a in request(addr, "GET", f"{job_path}/allocations")
                if a.get("ClientStatus") == "running" and a.get("DesiredStatus") == "run"
                and a["ID"] not in stopped]
        if len(live) >= want:
            return
        if time.monotonic() > deadline:
            raise CliError(f"the job has {len(live)} of {want} allocations running {JOB_RESTART_WAIT_S:g}s "
                           "after rescheduling: the job restart stops here")
        time.sleep(JOB_RESTART_POLL_S)


# ---------------------------------------------------------------- node


def local_node_id(addr: str) -> str:
    """Nomad's getLocalNodeID (the -self flag): the node of the agent at *addr*, from /v1/agent/self.
    Its errors are printed bare, as node status/drain/eligibility print ``err.Error()``."""
    try:
        info = request(addr, "GET", "/v1/agent/self")
    except CliError as e:
        raise CliError(f"Error querying agent info: {e}") from None
    client = ((info or {}).get("stats") or {}).get("client")
    if not isinstance(client, dict):
        raise CliError("Nomad not running in client mode")
    if not client.get("node_id"):
        raise CliError("Failed to determine node ID")
    return str(client["node_id"])


def _node_arg(addr: str, flags: dict[str, Any], rest: list[str],
              words: str = "node eligibility") -> dict[str, Any]:
    """The node of ``node drain`` / ``node eligibility``: the one named, or with -self the agent's own."""
    if (flags.get("self") and rest) or (not flags.get("self") and len(rest) != 1):
        raise _usage_error("Node ID must be specified if -self isn't being used", words)
    return resolve(addr, "node", _node_ident(local_node_id(addr) if flags.get("self") else rest[0]))


def _node_ident(ident: str) -> str:
    """Nomad's node status/drain/eligibility refuse a one-character node ID prefix before any lookup."""
    if len(ident) == 1:
        raise CliError("Identifier must contain at least two characters.")
    return ident


def node_status(addr: str, args: list[str]) -> str:
    from runtime import cli_usage  # it imports this module

    from runtime.cli_node_pools import _next_page

    flags, rest = parse_flags(args, {"verbose": bool, "short": bool, "self": bool, "allocs": bool,
                                     "filter": str, "json": bool, "stats": bool, "os": bool, "quiet": bool,
                                     "per-page": int, "page-token": str})
    verbose = flags.get("verbose", False)
    if flags.get("self"):
        if rest:
            raise CliError("This command takes either one or no arguments")
        rest = [local_node_id(addr)]
    if not rest:
        if flags.get("quiet") and (verbose or flags.get("json")):
            raise CliError("-quiet cannot be used with -verbose or -json")
        meta: dict[str, Any] = {}
        nodes = request(addr, "GET", "/v1/nodes" + ("?os=true" if flags.get("os") else ""),
                        filter=flags.get("filter"), answer_meta=meta,
                        per_page=_int_flag(flags, "per-page") if flags.get("per-page") else None,
                        next_token=flags.get("page-token") or None)
        if flags.get("json"):
            return as_json(nodes or [])
        if not nodes:
            return "No nodes registered"
        if flags.get("quiet"):  # Nomad's -quiet: the full IDs alone
            return "\n".join(n["ID"] for n in nodes)
        # Nomad's columns: -os adds OS, -verbose Address and Version, -allocs the running allocations.
        rows = [["ID", "Node Pool", "DC", "Name", "Class", *(["OS"] if flags.get("os") else []),
                 *(["Address", "Version"] if verbose else []), "Drain", "Eligibility", "Status",
                 *(["Running Allocs"] if flags.get("allocs") else [])]]
        for n in nodes:
            row = [short(n["ID"], verbose), n.get("NodePool", "default"), n.get("Datacenter", ""),
                   n.get("Name", ""), n.get("NodeClass") or "<none>"]
            if flags.get("os"):
                row.append((n.get("Attributes") or {}).get("os.name", ""))
            if verbose:
                row += [n.get("Address", ""), n.get("Version", "")]
            row += [str(bool(n.get("Drain"))).lower(), n.get("SchedulingEligibility", ""),
                    n.get("Status", "")]
            if flags.get("allocs"):
                try:
                    on = request(addr, "GET", f"/v1/node/{n['ID']}/allocations")
                except CliError as e:
                    raise CliError(f"Error querying node allocations: {e}") from None
                row.append(str(sum(1 for a in on or () if a.get("ClientStatus") == "running")))
            rows.append(row)
        return table(rows) + _next_page(meta, "")
    stub = resolve(addr, "node", _node_ident(one_arg(rest, "nomad node status [<node>]")),
                   not_found='No node(s) with prefix "{}" found')  # Nomad's node status words
    node = request(addr, "GET", f"/v1/node/{stub['ID']}")
    if flags.get("json"):
        return as_json(node)
    drain = node.get("DrainStrategy")
    pairs = [("ID", node["ID"]), ("Name", node.get("Name", "")),
             ("Node Pool", node.get("NodePool", "default")),
             ("Class", node.get("NodeClass") or "<none>"), ("DC", node.get("Datacenter", "")),
             ("Drain", _format_drain(drain)), ("Eligibility", node.get("SchedulingEligibility", "")),
             ("Status", node.get("Status", ""))]
    host = None if flags.get("short") else cli_usage.host_stats(addr, node)
    if host is not None:
        pairs.append(("Uptime", cli_usage.go_duration(int(host.get("Uptime") or 0))))
    volumes = node.get("HostVolumes") or {}
    if not verbose or flags.get("short"):  # -verbose has their tables instead (below)
        pairs.append(("Host Volumes", ",".join(sorted(volumes)) or "<none>"))
    if not verbose and not flags.get("short"):  # Nomad's: named host networks and CSI volumes (none here)
        pairs += [("Host Networks", ",".join(sorted(node.get("HostNetworks") or {})) or "<none>"),
                  ("CSI Volumes", "<none>")]
    drivers = node.get("Drivers") or {}
    if flags.get("short"):
        pairs.append(("Drivers", ",".join(sorted(d for d, i in drivers.items() if i.get("Detected")))))
    elif not verbose:  # Nomad's outputTruncatedNodeDriverInfo: the detected ones, "(unhealthy)" marked
        pairs.append(("Driver Status", ",".join(sorted(d if i.get("Healthy") else f"{d} (unhealthy)"
                                                       for d, i in drivers.items() if i.get("Detected")))))
    out = [kv(pairs)]
    if flags.get("short"):
        return out[0]
    if verbose:
        if volumes:  # Nomad's outputNodeVolumeInfo
            out += ["", "Host Volumes", table([["Name", "ReadOnly", "Source"]] + [
                [name, str(bool(volumes[name].get("ReadOnly"))).lower(), volumes[name].get("Path", "")]
                for name in sorted(volumes)])]
        networks = node.get("HostNetworks") or {}
        if networks:  # Nomad's outputNodeNetworkInfo
            out += ["", "Host Networks", table([["Name", "CIDR", "Interface", "ReservedPorts"]] + [
                [name, networks[name].get("CIDR", ""), networks[name].get("Interface", ""),
                 networks[name].get("ReservedPorts", "")] for name in sorted(networks)])]
        # Nomad's outputNodeDriverInfo: every driver, detected or not, and why it is not healthy.
        out += ["", "Drivers", table([["Driver", "Detected", "Healthy", "Message", "Time"]] + [
            [name, str(bool(i.get("Detected"))).lower(), str(bool(i.get("Healthy"))).lower(),
             i.get("HealthDescription", ""), _driver_time(i.get("UpdateTime"))]
            for name, i in sorted(drivers.items())])]
    out += ["", "Node Events", _node_events(node.get("Events") or [], verbose)]
    allocs = request(addr, "GET", f"/v1/node/{node['ID']}/allocations")
    running = [a for a in allocs or () if a.get("ClientStatus") == "running"]
    out += ["", "Allocated Resources", cli_usage.allocated_resources(node, running)]
    actual = cli_usage.actual_resources(addr, node, running) if host is not None else None
    if actual is not None:
        out += ["", "Allocation Resource Utilization", actual]
    if host is not None:
        out += ["", "Host Resource Utilization", cli_usage.host_resources(host, node)]
        if flags.get("stats"):
            out += cli_usage.detailed_host_stats(host)
    out += ["", "Allocations"]
    out.append(alloc_table(allocs, verbose, with_node=False) if allocs else "No allocations placed")
    if verbose:  # Nomad's outputAllocInfo: the attributes and the meta last
        attrs = node.get("Attributes") or {}
        out += ["", "Attributes", kv(sorted(attrs.items())) if attrs else "<none>"]
        meta = [(k, v) for k, v in sorted((node.get("Meta") or {}).items()) if k]
        out += ["", "Meta", kv(meta) if meta else "<none>"]
    return "\n".join(out)


def _node_events(events: list[dict[str, Any]], verbose: bool) -> str:
    """Nomad's outputNodeEvent: newest first; a driver's event under "Driver: <name>"; -verbose adds
    the details."""
    head = ["Time", "Subsystem", "Message", *(["Details"] if verbose else [])]
    rows = [head]
    for e in reversed(events):
        details = e.get("Details") or {}
        stamp = e.get("Timestamp")
        when = _task_time(stamp) if isinstance(stamp, str) else fmt_time(stamp)
        subsystem = f"Driver: {details['driver']}" if details.get("driver") else e.get("Subsystem", "")
        row = [when, subsystem, e.get("Message", "")]
        if verbose:
            row.append(", ".join(f"{k}: {v}" for k, v in details.items()))
        rows.append(row)
    return table(rows)


def _driver_time(t: Any) -> str:
    """A driver's UpdateTime (RFC 3339) as Nomad's formatTime shows it: to the second, "" when unset."""
    if not isinstance(t, str) or len(t) < 19 or t.startswith("0001-"):
        return ""
    return t[:19] + "Z"


def _confirm(question: str, cancel: str) -> tuple[str, int] | None:
    """Nomad's confirmation of an action on an object named by a prefix (``job stop``, ``node drain``):
    None to go on (exactly ``y``), else what to print and the exit code -- *cancel* and 0 for no answer
    or one starting with ``n``, 0 for another word starting with ``y``, 1 for anything else.  The answer
    is one line of standard input, terminal or not (mitchellh/cli's Ask); an input that ends before a
    whole line is Go's ``Failed to parse answer: EOF``."""
    print(question, end=" ", flush=True)
    line = sys.stdin.readline() if sys.stdin else ""
    if not line.endswith("\n"):
        raise CliError("Failed to parse answer: EOF")
    answer = line.rstrip()
    if not answer or answer.lower()[0] == "n":
        return cancel, 0
    if answer.lower()[0] == "y" and len(answer) > 1:
        return "For confirmation, an exact \u2018y\u2019 is required.", 0
    if answer != "y":
        return "No confirmation detected. For confirmation, an exact 'y' is required.", 1
    return None


def _usage_error(message: str, words: str) -> CliError:
    """A misuse message followed by Nomad's ``commandErrorText`` line."""
    return CliError(f"{message}\nFor additional help try 'nomad {words} -help'")


def _enable_disable(flags: dict[str, Any], words: str = "node eligibility", extra: str = "") -> bool:
    enable, disable = flags.get("enable", False), flags.get("disable", False)
    if enable == disable:
        raise _usage_error(f"Either the '-enable' or '-disable' flag must be set{extra}", words)
    return enable


def _drain_deadline_ns(flags: dict[str, Any]) -> int:
    """Nomad's node_drain.go: -force is -1s, -no-deadline 0, else -deadline (default 1h), positive."""
    if flags.get("force"):
        return -1_000_000_000  # Nomad: a negative deadline means stop everything now
    if flags.get("no-deadline"):
        return 0
    text = flags.get("deadline", DEFAULT_DRAIN_DEADLINE)
    from actors.state.autopilot_config import parse_go_duration

    try:
        ns = parse_go_duration(text)
    except ValueError as e:
        raise CliError(f"Failed to parse deadline {json.dumps(text)}: {e}") from None
    if ns <= 0:
        raise CliError("A positive drain duration must be given")
    return ns


# How long one blocking query of the drain monitor waits for a change before it asks again (each
# answers as soon as its node or allocations change; the wait only bounds an idle query).
DRAIN_MONITOR_WAIT = "1s"
_drain_print = threading.Lock()


def _drain_line(text: str, stream: Any = None) -> None:
    """One line of Nomad's drain monitor: the time, then the message, printed as it happens."""
    with _drain_print:  # the node's and the allocations' watchers print side by side
        print(f"{fmt_time(time.time())}: {text}", file=stream or sys.stdout, flush=True)


def _monitor_drain(addr: str, node_id: str, index: int, ignore_system: bool,
                   before: list[dict[str, Any]] | None = None) -> None:
    """Nomad's Nodes.MonitorDrain: the node's drain (ends when its strategy is gone) and its allocations
    (ends when none is pending or running), each watched at once by a blocking query of its own, so
    that every change is told as it comes, until both are done (an error ends the monitor).

    *before* is the node's allocations as they were before the drain was set: the changes since are
    told from there.  (Nomad's drainer batches its marks for a second, so its monitor's first look
    comes before them; this agent's drainer may mark them at once.)"""
    failed = threading.Event()
    jobs = ((_watch_drain_node, index), (_watch_drain_allocs, (ignore_system, before)))
    watchers = [threading.Thread(target=watch, args=(addr, node_id, arg, failed), daemon=True)
                for watch, arg in jobs]
    for w in watchers:
        w.start()
    while any(w.is_alive() for w in watchers) and not failed.is_set():
        for w in watchers:
            w.join(0.2)  # in short steps: Ctrl-C stops the monitor at once


def _watch_drain_node(addr: str, node_id: str, index: int, failed: threading.Event) -> None:
    """Nomad's monitorDrainNode."""
    node_index, last_strategy = index, None
    while not failed.is_set():
        meta: dict[str, int] = {}
        try:
            node = request(addr, "GET", f"/v1/node/{node_id}", answer_meta=meta, stale="",
                           index=node_index, wait=DRAIN_MONITOR_WAIT)
        except CliError as e:
            _drain_line(f"Error monitoring node: {e}", sys.stderr)
            failed.set()
            return
        node_index = meta.get("index", node_index)
        strategy = node.get("DrainStrategy")
        if strategy is None:
            _drain_line(f"Drain complete for node {node_id}")
            return
        if node.get("Status") == "down":
            _drain_line(f'Node "{node_id}" down', sys.stderr)
        if last_strategy is not None and strategy != last_strategy:
            _drain_line(f'Node "{node_id}" drain updated: {strategy}')
        last_strategy = strategy


def _watch_drain_allocs(addr: str, node_id: str, options: tuple[bool, list[dict[str, Any]] | None],
                        failed: threading.Event) -> None:
    """Nomad's monitorDrainAllocs: from the node's allocations as they were before the drain (when
    known), else as they are when it starts."""
    ignore_system, before = options
    alloc_index = 0
    seen: dict[str, dict[str, Any]] = {a["ID"]: a for a in before or () if isinstance(a, dict) and "ID" in a}
    while not failed.is_set():
        meta: dict[str, int] = {}
        try:
            allocs = request(addr, "GET", f"/v1/node/{node_id}/allocations", answer_meta=meta, stale="",
                             index=alloc_index, wait=DRAIN_MONITOR_WAIT) or []
        except CliError as e:
            _drain_line(f"Error monitoring allocations: {e}", sys.stderr)
            failed.set()
            return
        alloc_index = meta.get("index", alloc_index)
        running = 0
        for a in allocs:
            orig = seen.get(a["ID"])
            seen[a["ID"]] = a
            migrating = bool((a.get("DesiredTransition") or {}).get("Migrate"))
            msg = ""
            if orig is None:
                pass  # the first answer's allocations: nothing to say yet
            elif orig.get("ClientStatus") != a.get("ClientStatus"):
                msg = f"status {orig.get('ClientStatus')} -> {a.get('ClientStatus')}"
            elif migrating and not (orig.get("DesiredTransition") or {}).get("Migrate"):
                msg = "marked for migration"
            elif migrating and orig.get("DesiredStatus") != a.get("DesiredStatus") \
                    and a.get("DesiredStatus") == "stop":
                msg = "draining"
            if msg:
                _drain_line(f'Alloc "{a["ID"]}" {msg}')
            job_type = (a.get("Job") or {}).get("Type")
            if job_type is None or (ignore_system and job_type == "system"):
                continue
            running += a.get("ClientStatus") in ("pending", "running")
        if running == 0:
            _drain_line(f'All allocations on node "{node_id}" have stopped')
            return


def node_drain(addr: str, args: list[str]) -> str | tuple[str, int]:
    flags, rest = parse_flags(args, {"enable": bool, "disable": bool, "deadline": str, "force": bool,
                                     "no-deadline": bool, "ignore-system": bool, "keep-ineligible": bool,
                                     "yes": bool, "detach": bool, "monitor": bool, "m": str, "meta": list,
                                     "self": bool})
    if flags.get("monitor"):  # Nomad's -monitor: watch a drain already set, change nothing
        if flags.get("enable") or flags.get("disable"):
            raise _usage_error("The -monitor flag cannot be used with the '-enable' or '-disable' flags",
                               "node drain")
        meta_now: dict[str, int] = {}
        stub = _node_arg(addr, flags, rest, "node drain")
        node = request(addr, "GET", f"/v1/node/{stub['ID']}", answer_meta=meta_now)
        if node.get("DrainStrategy") is None:
            print("No drain strategy set", file=sys.stderr)
            return ""
        _drain_line(f'Monitoring node "{node["ID"]}": Ctrl-C to detach monitoring')
        _monitor_drain(addr, node["ID"], meta_now.get("index", 0), bool(flags.get("ignore-system")))
        return ""
    # Nomad's node_drain.go checks, in its order, each followed by commandErrorText.
    enable = _enable_disable(flags, "node drain", ", unless using '-monitor'")
    if (flags.get("self") and rest) or (not flags.get("self") and len(rest) != 1):
        raise _usage_error("Node ID must be specified if -self isn't being used", "node drain")
    strategy = "deadline" in flags or any(flags.get(f) for f in ("force", "no-deadline", "ignore-system"))
    if not enable and strategy:
        raise _usage_error("-disable can't be combined with flags configuring drain strategy", "node drain")
    if "deadline" in flags and (flags.get("force") or flags.get("no-deadline")):
        raise _usage_error("-deadline can't be combined with -force or -no-deadline", "node drain")
    if flags.get("force") and flags.get("no-deadline"):
        raise _usage_error("-force and -no-deadline are mutually exclusive", "node drain")
    deadline = _drain_deadline_ns(flags) if enable else 0
    node = _node_arg(addr, flags, rest, "node drain")
    # Nomad's node_drain.go: a cancel sends the drain's metadata back with -m as its cancel_message;
    # -meta k=v pairs go over it (a bare key is set empty).
    meta: dict[str, str] = {}
    if not enable:  # the node's list stub carries its LastDrain
        meta = dict((node.get("LastDrain") or {}).get("Meta") or {})
    if flags.get("m"):
        meta["message" if enable else "cancel_message"] = flags["m"]
    for item in flags.get("meta", []):
        if item:
            k, _, v = item.partition("=")
            meta[k] = v
    ident = node["ID"] if flags.get("self") else rest[0]
    verb = "enable" if enable else "disable"
    if node["ID"] != ident and not flags.get("yes"):
        refused = _confirm(f'Are you sure you want to {verb} drain mode for node "{node["ID"]}"? [y/N]',
                           "Canceling drain toggle")
        if refused is not None:
            return refused
    spec = {"Deadline": deadline, "IgnoreSystemJobs": bool(flags.get("ignore-system"))} if enable else None
    before = None
    if enable and not flags.get("detach"):  # what the monitor tells the drain's changes from
        try:
            before = request(addr, "GET", f"/v1/node/{node['ID']}/allocations") or []
        except CliError:
            before = None  # the monitor starts from what it first sees, as Nomad's
    try:
        got = request(addr, "PUT", f"/v1/node/{node['ID']}/drain",
                      {"NodeID": node["ID"], "DrainSpec": spec,
                       "MarkEligible": not enable and not flags.get("keep-ineligible"), "Meta": meta})
    except CliError as e:
        raise CliError(f"Error updating drain specification: {e}") from None
    if not enable or flags.get("detach"):
        return f'Node "{node["ID"]}" drain strategy {"set" if enable else "unset"}'
    # Nomad monitors the drain it set until the node is drained (-detach returns at once).
    _drain_line("Ctrl-C to stop monitoring: will not cancel the node drain")
    _drain_line(f'Node "{node["ID"]}" drain strategy set')
    _monitor_drain(addr, node["ID"], int((got or {}).get("Index") or 0), bool(flags.get("ignore-system")),
                   before)
    return ""


def node_eligibility(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"enable": bool, "disable": bool, "self": bool})
    enable = _enable_disable(flags)
    node = _node_arg(addr, flags, rest)
    elig = "eligible" if enable else "ineligible"
    request(addr, "PUT", f"/v1/node/{node['ID']}/eligibility", {"NodeID": node["ID"], "Eligibility": elig})
    return f'Node "{node["ID"]}" scheduling eligibility set: {elig} for scheduling'


def system_gc(addr: str, args: list[str]) -> str:
    """``nomad system gc``: the servers run every garbage collection now (PUT /v1/system/gc)."""
    if args:
        raise CliError("This command takes no arguments")
    request(addr, "PUT", "/v1/system/gc")
    return ""


def operator_metrics(addr: str, args: list[str]) -> str:
    """``nomad operator metrics [-format prometheus|json] [-pretty]``: the agent's /v1/metrics."""
    flags, rest = parse_flags(args, {"format": str, "pretty": bool, "json": bool})
    if rest:
        raise CliError("This command takes no arguments")
    fmt = flags.get("format", "json")  # passed to the agent as given: any but prometheus answers JSON
    if flags.get("json"):  # Nomad's -json: the decoded summary through Format, indented four spaces
        return as_json(request(addr, "GET", "/v1/metrics"))
    # Otherwise Nomad prints the answer's body as it came (format and pretty passed to the agent).
    query = urllib.parse.urlencode({**({"pretty": "1"} if flags.get("pretty") else {}),
                                    **({"format": fmt} if "format" in flags else {})})
    url = f"{addr.rstrip('/')}/v1/metrics" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return resp.read().decode(errors="replace").rstrip("\n")
    except urllib.error.HTTPError as e:
        raise CliError(f"Error getting metrics: Unexpected response code: {e.code} "
                       f"({e.read().decode(errors='replace').strip()})") from None
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f"Error getting metrics: {unreachable('GET', url, e)}") from None


def node_config(addr: str, args: list[str]) -> str:
    """``nomad node config -servers`` / ``-update-servers addr...``: a client agent's server list."""
    flags, rest = parse_flags(args, {"servers": bool, "update-servers": bool})
    more = "\nFor additional help try 'nomad node config -help'"
    if not flags.get("servers") and not flags.get("update-servers"):  # Nomad's words throughout
        raise CliError("The '-servers' or '-update-servers' flag(s) must be set" + more)
    if not flags.get("update-servers"):
        try:
            return "\n".join(request(addr, "GET", "/v1/agent/servers") or [])
        except CliError as e:
            raise CliError(f"Error querying server list: {e}") from None
    if not rest:
        raise CliError("If the '-update-servers' flag is set, at least one server argument must be provided"
                       + more)
    q = urllib.parse.urlencode([("address", a) for a in rest])
    try:
        request(addr, "PUT", f"/v1/agent/servers?{q}")
    except CliError as e:
        raise CliError(f"Error updating server list: {e}") from None
    return "Updated server list"


def _get_raw(url: str, timeout_s: float = TIMEOUT_S) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        raise CliError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f"Error querying {url.split('/v1/')[0]}: {getattr(e, 'reason', e)}") from None


def _ns_query(alloc: dict[str, Any]) -> str:
    """``namespace=<the allocation's>``: the node checks the caller's token there (ACLs)."""
    return urllib.parse.urlencode({"namespace": alloc.get("Namespace") or "default"})


def _node_url(addr: str, alloc: dict[str, Any]) -> str:
    """The HTTP API of the node that runs *alloc* (client endpoints are served there, as in Nomad), or
    the agent at *addr*, which relays them, when the node cannot be looked up (Nomad's api: the lookup
    needs node:read, which a namespace's policy does not grant) or has no HTTP address."""
    try:
        node = request(addr, "GET", f"/v1/node/{alloc['NodeID']}")
    except CliError:
        return addr.rstrip("/")
    http_addr = node.get("HTTPAddr") or ""
    if not http_addr:
        return addr.rstrip("/")
    return f"{'https' if addr.startswith('https://') else 'http'}://{http_addr}"


def check_task_exists(alloc: dict[str, Any], task: str) -> None:
    """Nomad's validateTaskExistsInAllocation: the task is one of the allocation's group's, else the
    error lists the group's tasks, one a line."""
    groups = [g for g in (alloc.get("Job") or {}).get("TaskGroups") or ()
              if g.get("Name") == alloc.get("TaskGroup")]
    if not groups:
        raise CliError(f"Could not find allocation task group: {alloc.get('TaskGroup', '')}")
    names = [t.get("Name", "") for t in groups[0].get("Tasks") or ()]
    if task not in names:
        raise CliError(f"Could not find task named: {task}, found:\n" + "\n".join(names))


def _alloc_task_op(addr: str, args: list[str], what: str, extra: dict[str, type]) -> tuple[dict[str, Any], str]:
    flags, rest = parse_flags(args, {"task": str, "verbose": bool, **extra})
    if not rest or len(rest) > 2:
        raise CliError(f"This command takes one or two arguments: nomad alloc {what} <allocation> [<task>]")
    stub = resolve(addr, "allocation", rest[0])
    a = request(addr, "GET", f"/v1/allocation/{stub['ID']}")
    task = rest[1] if len(rest) > 1 else flags.get("task", "")
    if task:
        check_task_exists(a, task)
    url = f"{_node_url(addr, a)}/v1/client/allocation/{a['ID']}/{what}?{_ns_query(a)}"
    return {**flags, "_task": task}, url


def _put_json(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise CliError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f"Error querying {url.split('/v1/')[0]}: {getattr(e, 'reason', e)}") from None


def alloc_restart(addr: str, args: list[str]) -> str:
    """``nomad alloc restart [-all-tasks] [-task t] <alloc> [<task>]``: its running tasks start again, in
    place; with ``-all-tasks`` every task, the lifecycle tasks that already ran too, in lifecycle order."""
    extra = {"all-tasks": bool}
    pre, rest = parse_flags(args, {"task": str, "verbose": bool, **extra})
    if pre.get("all-tasks") and (pre.get("task") or len(rest) > 1):
        raise CliError("The -all-tasks option is not allowed when restarting a specific task.")
    flags, url = _alloc_task_op(addr, args, "restart", extra)
    try:
        _put_json(url, {"TaskName": flags["_task"], "AllTasks": bool(flags.get("all-tasks"))})
    except CliError as e:  # Nomad's alloc restart: the target, a blank line, the error
        raise CliError(f"Failed to restart {'task' if flags['_task'] else 'allocation'}:\n\n{e}") from None
    return ""


def alloc_signal(addr: str, args: list[str]) -> str:
    """``nomad alloc signal [-s SIGNAL] [-task t] <alloc> [<task>]`` (Nomad's default signal: SIGKILL)."""
    flags, url = _alloc_task_op(addr, args, "signal", {"s": str})
    try:
        _put_json(url, {"Signal": flags.get("s") or "SIGKILL", "Task": flags["_task"]})
    except CliError as e:
        raise CliError(f"Error signalling allocation: {e}") from None
    return ""


def _ibytes(n: int) -> str:
    """go-humanize ``IBytes``: ``12 B``, ``1.5 KiB``, ``20 MiB`` (what ``nomad alloc fs`` shows)."""
    if n < 10:
        return f"{n} B"
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    e = min(math.floor(math.log(n, 1024)), len(units) - 1)
    val = math.floor(n / 1024 ** e * 10 + 0.5) / 10
    return f"{val:.1f} {units[e]}" if val < 10 else f"{val:.0f} {units[e]}"


def _int_flags(flags: dict[str, Any], names: tuple[str, ...], *, minimum: int | None = None) -> None:
    """Turn the named string flags into ints in place; a bad value is a CliError naming the flag."""
    for name in names:
        if name in flags:
            try:
                flags[name] = int(flags[name])
            except ValueError:
                raise CliError(f'invalid value "{flags[name]}" for flag -{name}: want a number') from None
            if minimum is not None and flags[name] < minimum:
                raise CliError(f"-{name} must be zero or more")


def alloc_fs(addr: str, args: list[str]) -> str:
    """``nomad alloc fs [-H] [-stat] [-f] [-tail] [-n lines] [-c bytes] [-job] <alloc | job> [<path>]``.

    As Nomad's: the path is in the allocation directory (default ``/``, its
    root), read from the node that runs the allocation; a directory is
    listed, a file printed.  ``-stat`` shows the file's own line, ``-H``
    sizes in bytes.  ``-tail`` prints the end of the file: ``-c`` bytes, or
    ``-n`` lines (10 when neither is given); ``-f`` then keeps printing what
    is appended, until the allocation is finished or the command interrupted.
    """
    flags, rest = parse_flags(args, {"H": bool, "stat": bool, "f": bool, "tail": bool, "n": int, "c": int,
                                     "job": bool, "group": str, "verbose": bool})
    _int_flags(flags, ("n", "c"), minimum=0)
    if ("n" in flags or "c" in flags) and not flags.get("tail"):
        raise CliError("-n and -c need -tail")
    if "n" in flags and "c" in flags:
        raise CliError("Both -n and -c are not allowed")  # Nomad's words
    if not rest or len(rest) > 2:
        raise CliError("This command takes one or two arguments: nomad alloc fs [-H] [-stat] [-f] [-tail] "
                       "[-n lines] [-c bytes] [-job] <allocation | job> [<path>]")
    stub = random_job_alloc(addr, rest[0], flags.get("group", "")) if flags.get("job") \
        else resolve(addr, "allocation", rest[0])
    a = request(addr, "GET", f"/v1/allocation/{stub['ID']}")
    path = rest[1] if len(rest) > 1 else "/"
    base = _node_url(addr, a)
    ns = a.get("Namespace") or "default"
    query = urllib.parse.urlencode({"path": path, "namespace": ns})
    info = json.loads(_get_raw(f"{base}/v1/client/fs/stat/{a['ID']}?{query}"))
    if (flags.get("f") or flags.get("tail")) and (info.get("IsDir") or flags.get("stat")):
        raise CliError(f"{path} is a directory: -f and -tail print a file" if info.get("IsDir")
                       else "-stat cannot be combined with -f or -tail")
    if not flags.get("stat") and not info.get("IsDir"):
        _print_file(base, a["ID"], path, int(info.get("Size", 0)), flags, ns)
        return ""
    stat = bool(flags.get("stat"))
    files = [info] if stat else json.loads(_get_raw(f"{base}/v1/client/fs/ls/{a['ID']}?{query}"))
    # Nomad's: -stat shows the file's content type too
    rows = [["Mode", "Size", "Modified Time", *(["Content Type"] if stat else []), "Name"]]
    for f in files:
        size = int(f.get("Size", 0))
        modified = dt.datetime.fromisoformat(f["ModTime"]).astimezone().strftime("%m/%d/%y %H:%M:%S %Z")
        name = f["Name"] + ("/" if f.get("IsDir") else "")
        rows.append([f.get("FileMode", ""), str(size) if flags.get("H") else _ibytes(size), modified,
                     *([f.get("ContentType") or ""] if stat else []), name])
    return table(rows)


LOG_WINDOW_BYTES = 4 << 20  # the agent answers at most this much per request (actors.http_client_fs)


def _print_file(base: str, alloc_id: str, path: str, size: int, flags: dict[str, Any], ns: str) -> None:
    """``alloc fs`` on a file: all of it, or its tail; with ``-f``, then what is appended."""
    out = sys.stdout.buffer
    start = 0
    if flags.get("tail"):
        if "c" in flags:
            start = max(0, size - flags["c"])
            data = _get_raw(f"{base}/v1/client/fs/readat/{alloc_id}?"
                            + urllib.parse.urlencode({"path": path, "offset": start, "limit": size - start,
                                                     "namespace": ns}))
        else:
            lines = flags.get("n", 10)
            # Lines are found in the file's last window (Nomad's is best effort too).
            start = max(0, size - LOG_WINDOW_BYTES)
            data = _get_raw(f"{base}/v1/client/fs/readat/{alloc_id}?"
                            + urllib.parse.urlencode({"path": path, "offset": start, "limit": size - start,
                                                     "namespace": ns}))
            data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines > 0 else b""
        start = size  # what was read ends at the size stat saw: -f goes on from there
        out.write(data)
        out.flush()
    elif not flags.get("f"):
        out.write(_get_raw(f"{base}/v1/client/fs/cat/{alloc_id}?"
                           + urllib.parse.urlencode({"path": path, "namespace": ns})))
        out.flush()
        return
    if flags.get("f"):
        _copy_frames(f"{base}/v1/client/fs/stream/{alloc_id}?" + urllib.parse.urlencode(
            {"path": path, "offset": start, "origin": "start", "follow": "true", "namespace": ns}))


def random_job_alloc(addr: str, ident: str, group: str = "") -> dict[str, Any]:
    """The ``-job`` flag of ``alloc logs`` and ``alloc fs`` (Nomad's getRandomJobAlloc): the job named by
    its ID or a unique prefix, then one of its running allocations at random, or its newest when none runs;
    with *group* (``job action -group``), only that group's."""
    job = resolve(addr, "job", ident)
    allocs = request(addr, "GET", f"/v1/job/{urllib.parse.quote(job['ID'], safe='')}/allocations",
                     namespace=job.get("Namespace"))
    if not allocs:
        raise CliError(f'Error fetching allocations: job "{job["ID"]}" doesn\'t exist or it has no '
                       "allocations")
    if group:
        allocs = [a for a in allocs if a.get("TaskGroup") == group]
        if not allocs:
            raise CliError(f'Error fetching allocations: task group "{group}" doesn\'t exist or it has no '
                           "allocations")
    running = [a for a in allocs if a.get("ClientStatus") == "running"]
    if running:
        return random.choice(running)
    return max(allocs, key=lambda a: (a.get("CreateIndex", 0), a["ID"]))


def alloc_logs(addr: str, args: list[str]) -> str:
    """``nomad alloc logs [-f] [-stdout|-stderr] [-tail] [-n N] [-c N] [-job] <alloc | job> [<task>]``.

    As Nomad's CLI: the allocation and its node are found through the
    servers, and the logs are read from that node's own HTTP API.  With
    ``-f`` what the log holds is printed, then what the task appends, until
    the task is dead (or the command is interrupted).  ``-f`` alone (no
    stream, -tail, -n or -c chosen) follows both streams from their ends,
    stdout to stdout and stderr to stderr, as Nomad's tailMultipleFiles.
    """
    flags, rest = parse_flags(args, {"stderr": bool, "stdout": bool, "tail": bool, "n": int, "c": int,
                                     "f": bool, "task": str, "job": bool, "group": str, "verbose": bool})
    _int_flags(flags, ("n", "c"))
    if not rest or len(rest) > 2:
        raise CliError("usage: nomad alloc logs [-f] [-stderr] [-tail] [-n lines] [-c bytes] [-job] "
                       "<allocation | job> [<task>]")
    stub = random_job_alloc(addr, rest[0], flags.get("group", "")) if flags.get("job") \
        else resolve(addr, "allocation", rest[0])
    a = request(addr, "GET", f"/v1/allocation/{stub['ID']}")
    # Nomad's: -task is checked against the group, a task argument is taken as given, and without
    # either the group's only task (lookupAllocTask).
    try:
        if flags.get("task"):
            task = flags["task"]
            check_task_exists(a, task)
        elif len(rest) > 1:
            task = rest[1]
            if not task:
                raise CliError("Task name required")
        else:
            task = _only_task(a)
    except CliError as e:
        raise CliError(f"Failed to validate task: {e}") from None
    base = f"{_node_url(addr, a)}/v1/client/fs/logs/{a['ID']}"
    ns = a.get("Namespace") or "default"
    if flags.get("f") and not (flags.get("stderr") or flags.get("stdout") or flags.get("tail")
                               or flags.get("n", -1) > 0 or flags.get("c", -1) > 0):
        _follow_both(base, task, ns)
        return ""
    if flags.get("stderr") and flags.get("stdout"):
        raise CliError("Unable to support both stdout and stderr")
    kind = "stderr" if flags.get("stderr") else "stdout"

    end = 0  # where the log ended when read: a follow continues from there

    def window(origin: str, offset: int) -> bytes:
        nonlocal end
        q = urllib.parse.urlencode({"task": task, "type": kind, "origin": origin, "offset": offset,
                                    "namespace": a.get("Namespace") or "default"})
        frame = json.loads(_get_raw(f"{base}?{q}"))
        end = int(frame.get("Offset", 0))
        return base64.b64decode(frame.get("Data") or "")

    if flags.get("tail"):
        if "c" in flags:
            data = window("end", max(0, flags["c"]))
        else:
            lines = flags.get("n", 10)
            data = window("end", LOG_WINDOW_BYTES)
            data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines > 0 else b""
    else:
        parts, offset = [], 0
        while True:
            chunk = window("start", offset)
            parts.append(chunk)
            offset += len(chunk)
            if len(chunk) < LOG_WINDOW_BYTES:
                break
        data = b"".join(parts)
    if flags.get("f"):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        _follow_log(base, task, kind, end, a.get("Namespace") or "default")
        return ""
    return data.decode("utf-8", errors="replace").rstrip("\n")


def _only_task(alloc: dict[str, Any]) -> str:
    """Nomad's lookupAllocTask: the allocation's group's only task, else an error listing them."""
    groups = [g for g in (alloc.get("Job") or {}).get("TaskGroups") or ()
              if g.get("Name") == alloc.get("TaskGroup")]
    if not groups:
        raise CliError(f"Could not find allocation task group: {alloc.get('TaskGroup', '')}")
    names = [t.get("Name", "") for t in groups[0].get("Tasks") or ()]
    if len(names) == 1:
        return names[0]
    listed = "".join(f"  * {n}\n" for n in names)
    raise CliError(f'Allocation "{short(alloc["ID"])}" is running the following tasks:\n{listed}\n'
                   "Please specify the task.")


def _follow_both(base: str, task: str, ns: str) -> None:
    """Nomad's tailMultipleFiles: both logs followed from their ends (what they hold already is not
    printed: the two cannot be interleaved), each to its own stream, until both end or Ctrl-C."""
    import threading

    failures: list[CliError] = []

    def follow(kind: str, out: Any) -> None:
        q = urllib.parse.urlencode({"task": task, "type": kind, "origin": "end", "offset": 0,
                                    "follow": "true", "namespace": ns})
        try:
            _copy_frames(f"{base}?{q}", out)
        except CliError as e:
            failures.append(e)

    threads = [threading.Thread(target=follow, args=(kind, out), daemon=True)
               for kind, out in (("stdout", sys.stdout.buffer), ("stderr", sys.stderr.buffer))]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads) and not failures:
            for t in threads:
                t.join(0.2)
    except KeyboardInterrupt:
        return
    if failures:
        raise CliError(f"Failed to tail stdout and stderr files: {failures[0]}")


def _follow_log(base: str, task: str, kind: str, offset: int, ns: str) -> None:
    """Copy the followed log's frames to stdout as they come, until the stream ends or Ctrl-C."""
    q = urllib.parse.urlencode({"task": task, "type": kind, "origin": "start", "offset": offset,
                                "follow": "true", "namespace": ns})
    _copy_frames(f"{base}?{q}")


def monitor_logs(addr: str, args: list[str]) -> str:
    """``nomad monitor [-log-level=LEVEL] [-json]``: the agent's log lines as they are written, until Ctrl-C."""
    flags, rest = parse_flags(args, {"log-level": str, "json": bool, "node-id": str, "server-id": str})
    if rest:
        raise CliError("This command takes no arguments")
    q = urllib.parse.urlencode({"log_level": flags.get("log-level", "info"),
                                "log_json": str(bool(flags.get("json"))).lower(),
                                **({"node_id": flags["node-id"]} if "node-id" in flags else {}),
                                **({"server_id": flags["server-id"]} if "server-id" in flags else {})})
    _copy_frames(f"{addr.rstrip('/')}/v1/agent/monitor?{q}")
    return ""


def monitor_export(addr: str, args: list[str]) -> str:
    """``nomad monitor export [-on-disk] [-service-name s [-logs-since d] [-follow]]
    [-node-id n|-server-id s]``: an agent's log file, or its systemd unit's journal, as Nomad's."""
    flags, rest = parse_flags(args, {"on-disk": bool, "service-name": str, "logs-since": str, "follow": bool,
                                     "node-id": str, "server-id": str})
    if rest:
        raise CliError("This command takes no arguments")
    if flags.get("node-id") and flags.get("server-id"):
        raise CliError("Cannot target node and server simultaneously")
    q = {"on_disk": str(bool(flags.get("on-disk"))).lower(), "follow": str(bool(flags.get("follow"))).lower()}
    for flag, key in (("service-name", "service_name"), ("logs-since", "logs_since"),
                      ("node-id", "node_id"), ("server-id", "server_id")):
        if flags.get(flag):
            q[key] = flags[flag]
    _copy_frames(f"{addr.rstrip('/')}/v1/agent/monitor/export?{urllib.parse.urlencode(q)}")
    return ""


def _copy_frames(url: str, out: Any = None) -> None:
    """Write the Data of a stream of Nomad StreamFrames to *out* (stdout) as they come, until it ends or
    Ctrl-C."""
    out, decoder, buf = out or sys.stdout.buffer, json.JSONDecoder(), ""
    try:
        # The agent sends a heartbeat frame every second while the stream is
        # idle, so TIMEOUT_S without a byte means the agent is gone.
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            while piece := resp.read1(65536):
                buf += piece.decode("ascii")  # frames are JSON with base64 data
                while buf := buf.lstrip():
                    try:
                        frame, used = decoder.raw_decode(buf)
                    except ValueError:
                        break  # the rest of this frame is still on its way
                    buf = buf[used:]
                    if frame.get("Data"):
                        out.write(base64.b64decode(frame["Data"]))
                        out.flush()
    except KeyboardInterrupt:
        return
    except urllib.error.HTTPError as e:
        raise CliError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f"Error reading the stream from {url.split('/v1/')[0]}: {getattr(e, 'reason', e)}") \
            from None


# ---------------------------------------------------------------- inspect, evaluations, status, version


def job_inspect(addr: str, args: list[str]) -> str:
    """``nomad job inspect [-json|-hcl [-with-vars]] [-version N] <job>``: the job as the servers hold it,
    as ``{"Job": ...}`` JSON; -json (or -t) the job alone, and without a job the job list; -hcl the source
    the version was registered with (its submission), -with-vars then the command that runs it again
    with its variables, on stderr -- as Nomad's."""
    flags, rest = parse_flags(args, {"json": bool, "version": str, "hcl": bool, "with-vars": bool})
    if flags.get("hcl") and flags.get("json"):
        raise CliError("can only use one of -hcl or -json")
    if flags.get("with-vars") and not flags.get("hcl"):
        raise CliError("can only use -with-vars with -hcl")
    if not rest and flags.get("json"):
        return as_json(request(addr, "GET", "/v1/jobs") or [])
    if len(rest) != 1:
        raise CliError("This command takes one argument: <job>")
    stub = resolve(addr, "job", rest[0].strip())
    quoted = urllib.parse.quote(stub["ID"], safe="")
    if flags.get("version"):
        text = flags["version"]
        if not text.isdigit():
            raise CliError(f'Error parsing version value "{text}": strconv.ParseUint: parsing "{text}": '
                           "invalid syntax")
    if flags.get("hcl"):
        return _job_source(addr, stub, int(flags["version"]) if flags.get("version") else None,
                           bool(flags.get("with-vars")))
    if flags.get("version"):
        wanted = int(flags["version"])  # Nomad's ParseUint: "007" is version 7
        versions = request(addr, "GET", f"/v1/job/{quoted}/versions").get("Versions") or []
        job = next((v for v in versions if v.get("Version") == wanted), None)
        if job is None:  # Nomad's getJob
            raise CliError(f"Error inspecting job: job {json.dumps(stub['ID'])} with version {wanted} "
                           "couldn't be found")
    else:
        job = request(addr, "GET", f"/v1/job/{quoted}")
    if flags.get("json"):
        return as_json(job)
    return json.dumps({"Job": job}, indent=4, sort_keys=True)


def _job_source(addr: str, stub: dict[str, Any], version: int | None, with_vars: bool) -> str:
    """Nomad's job inspect -hcl (getJobHCL): the submission of *version* (the job's current one when None)."""
    quoted = urllib.parse.quote(stub["ID"], safe="")
    ns = stub.get("Namespace") or "default"
    if version is None:
        version = int(request(addr, "GET", f"/v1/job/{quoted}", namespace=ns).get("Version", 0))
    try:
        sub = request(addr, "GET", f"/v1/job/{quoted}/submission", version=str(version), namespace=ns)
    except CliError:
        raise CliError(f'Error inspecting job: job "{stub["ID"]}" with version {version} couldn\'t be '
                       "found") from None
    if with_vars:  # Nomad's getWithVarsOutput, on stderr: stdout stays the source
        run_args = ["-namespace", ns]
        for k, v in sorted((sub.get("VariableFlags") or {}).items()):
            run_args += ["-var", f"{k}={v}"]
        for line in (sub.get("Variables") or "").split("\n"):
            if line.strip():
                run_args += ["-var", line.strip()]
        run_args.append(stub["ID"])
        print(f"\nTo run this job as originally submitted:\n\n$ nomad job inspect -namespace {ns} -hcl "
              f"{stub['ID']} |\n    nomad job run {' '.join(run_args)}\n", file=sys.stderr)
    return str(sub.get("Source") or "").rstrip("\n")


def _failed_placements(ev: dict[str, Any]) -> list[str]:
    out = []
    for group, m in sorted((ev.get("FailedTGAllocs") or {}).items()):
        failed = int(m.get("CoalescedFailures", 0)) + 1
        out.append(f'Task Group "{group}" (failed to place {failed} allocation{"s" if failed != 1 else ""}):')
        out += [f"  * {line}" for line in alloc_metrics(m)]
    return out


def eval_status(addr: str, args: list[str]) -> str | tuple[str, int]:
    """``nomad eval status [-verbose] [-monitor] <evaluation>``, as Nomad's formatEvalStatus: the
    evaluation (Node ID for a node's, Previous Eval for a max-plan-attempts one, then its previous,
    next and blocked evaluations, each ``<none>`` when unset), the allocations it placed, and why the
    others could not be."""
    flags, rest = parse_flags(args, {"verbose": bool, "json": bool, "monitor": bool})
    verbose = flags.get("verbose", False)
    ident = one_arg(rest, "nomad eval status <evaluation>")
    if len(ident) == 1:
        raise CliError("Identifier must contain at least two characters.")
    stub = resolve(addr, "evaluation", ident)
    if flags.get("monitor"):
        return monitor(addr, stub["ID"], verbose=verbose)
    ev = request(addr, "GET", f"/v1/evaluation/{stub['ID']}")
    if flags.get("json"):
        return as_json(ev)
    try:
        placed = request(addr, "GET", f"/v1/evaluation/{stub['ID']}/allocations")
    except CliError as e:
        raise CliError(f"Error querying related allocations: {e}") from None
    failed = _failed_placements(ev)
    when = fmt_time if verbose else ago
    pairs = [("ID", short(ev["ID"], verbose)), ("Create Time", when(ev.get("CreateTime"))),
             ("Modify Time", when(ev.get("ModifyTime"))), ("Status", ev.get("Status", "")),
             ("Status Description", ev.get("StatusDescription") or ev.get("Status", "")),
             ("Type", ev.get("Type", "")), ("TriggeredBy", ev.get("TriggeredBy", "")),
             ("Job ID", ev.get("JobID", "")), ("Namespace", ev.get("Namespace", "default"))]
    # Nomad's getTriggerDetails: the subject of a node's or a retried evaluation, its ID in full.
    if ev.get("TriggeredBy") == "node-update" and ev.get("NodeID"):
        pairs.append(("Node ID", ev["NodeID"]))
    elif ev.get("TriggeredBy") == "max-plan-attempts" and ev.get("PreviousEval"):
        pairs.append(("Previous Eval", ev["PreviousEval"]))
    pairs += [("Priority", ev.get("Priority", 50)), ("Placement Failures", eval_failure_status(ev))]
    wait_until = _parse_time(ev.get("WaitUntil"))
    if wait_until:
        pairs.append(("Wait Until", fmt_time(wait_until)))
    pairs += [("Previous Eval", short(ev.get("PreviousEval") or "", verbose)),
              ("Next Eval", short(ev.get("NextEval") or "", verbose)),
              ("Blocked Eval", short(ev.get("BlockedEval") or "", verbose))]
    out = [kv(pairs)]
    updates = (ev.get("PlanAnnotations") or {}).get("DesiredTGUpdates") or {}
    if updates:
        out += ["", "Plan Annotations", plan_annotations_table(updates, verbose)]
    if placed:
        # Nomad's formatAllocListStubs(placed, false, length): the short table, IDs as -verbose asks.
        rows = [["ID", "Node ID", "Task Group", "Version", "Desired", "Status", "Created", "Modified"]]
        rows += [[short(a["ID"], verbose), short(a.get("NodeID", ""), verbose), a.get("TaskGroup", ""),
                  str(a.get("JobVersion", 0)), a.get("DesiredStatus", ""), a.get("ClientStatus", ""),
                  ago(a.get("CreateTime")), ago(a.get("ModifyTime"))] for a in placed]
        out += ["", "Placed Allocations", table(rows)]
    if failed:
        out += ["", "Failed Placements", *failed]
        if ev.get("BlockedEval"):
            out += ["", f'Evaluation "{short(ev["BlockedEval"], verbose)}" waiting for additional capacity '
                        "to place remainder"]
    return "\n".join(out)


# Nomad's formatPlanAnnotations: the columns shown after the first five when any group has one (or with
# -verbose), each with its DesiredUpdates key.
_ANNOTATION_COLUMNS = (("Migrate", "Migrate"), ("Canary", "Canary"), ("Preemptions", "Preemptions"),
                       ("Reschedule Now", "RescheduleNow"), ("Reschedule Later", "RescheduleLater"),
                       ("Disconnect", "Disconnect"), ("Reconnect", "Reconnect"))


def plan_annotations_table(updates: dict[str, Any], verbose: bool) -> str:
    """Nomad's formatPlanAnnotations: per task group (sorted) its Ignore, Place, Stop, InPlace and
    Destructive counts, then each further count some group has (all of them with -verbose)."""
    groups = sorted(updates)
    rows = [["Task Group", "Ignore", "Place", "Stop", "InPlace", "Destructive"]]
    rows += [[g, *(str(int(updates[g].get(k) or 0)) for k in
                   ("Ignore", "Place", "Stop", "InPlaceUpdate", "DestructiveUpdate"))] for g in groups]
    for title, key in _ANNOTATION_COLUMNS:
        counts = [int(updates[g].get(key) or 0) for g in groups]
        if verbose or any(counts):
            rows[0].append(title)
            for row, n in zip(rows[1:], counts, strict=True):
                row.append(str(n))
    return table(rows)


def eval_list(addr: str, args: list[str]) -> str:
    """``nomad eval list [-verbose] [-json] [-job id] [-status s] [-filter f] [-per-page n] [-page-token t]``:
    in the order the servers list them (as they were created), a page at a time with -per-page."""
    from runtime.cli_node_pools import _next_page

    flags, rest = parse_flags(args, {"verbose": bool, "job": str, "status": str, "filter": str, "json": bool,
                                     "per-page": int, "page-token": str})
    if rest:
        raise CliError("This command takes no arguments: nomad eval list [-job <id>] [-status <status>]")
    verbose = flags.get("verbose", False)
    per_page = _int_flag(flags, "per-page") if flags.get("per-page") else 0
    meta: dict[str, Any] = {}
    try:
        evals = request(addr, "GET", "/v1/evaluations", filter=flags.get("filter"), job=flags.get("job"),
                        status=flags.get("status"), per_page=per_page or None,
                        next_token=flags.get("page-token") or None, answer_meta=meta)
    except CliError as e:
        raise CliError(f"Error querying evaluations: {e}") from None
    if flags.get("json"):
        return as_json(evals)
    if not evals:
        return "No evals found"
    return eval_list_table(evals, verbose) + _next_page(meta, "")


def eval_list_table(evals: list[dict[str, Any]], verbose: bool) -> str:
    """Nomad's formatEvalList."""
    rows = [["ID", "Priority", "Triggered By", "Job ID", "Namespace", "Node ID", "Status",
             "Placement Failures"]]
    for e in evals:
        rows.append([short(e["ID"], verbose), str(e.get("Priority", 50)), e.get("TriggeredBy", ""),
                     e.get("JobID", ""), e.get("Namespace", "default"),
                     short(e["NodeID"], verbose) if e.get("NodeID") else "<none>", e.get("Status", ""),
                     eval_failure_status(e)])
    return table(rows)


# Nomad's diff markers (command/job_plan.go getDiffString) and their printed widths.
_DIFF_MARK = {"Added": "+ ", "Deleted": "- ", "Edited": "+/- "}


def _mark(kind: str) -> tuple[str, int]:
    m = _DIFF_MARK.get(kind, "")
    return m, len(m)


def _longest(fields: list[dict[str, Any]] | None, objects: list[dict[str, Any]] | None) -> tuple[int, int]:
    """The longest field name and the longest marker among *fields* and *objects* (for alignment)."""
    names = [len(f["Name"]) for f in fields or ()]
    marks = [_mark(x["Type"])[1] for x in list(fields or ()) + list(objects or ())]
    return max(names, default=0), max(marks, default=0)


def _format_field(f: dict[str, Any], start: int, key_pad: int, value_pad: int) -> str:
    def q(v: str) -> str:  # Go's %q, as far as job values go
        return json.dumps(v, ensure_ascii=False)
    value = {"Added": q(f.get("New", "")), "Deleted": q(f.get("Old", "")),
             "Edited": f"{q(f.get('Old', ''))} => {q(f.get('New', ''))}"}.get(f["Type"], q(f.get("New", "")))
    out = f"{' ' * start}{_mark(f['Type'])[0]}{' ' * key_pad}{f['Name']}: {' ' * value_pad}{value}"
    return out + (f" ({', '.join(f['Annotations'])})" if f.get("Annotations") else "")


def _format_object(o: dict[str, Any], start: int, key_pad: int) -> str:
    mark, width = _mark(o["Type"])
    out = f"{' ' * start}{mark}{' ' * key_pad}{o['Name']} {{\n"
    longest_field, longest_mark = _longest(o.get("Fields"), o.get("Objects"))
    out += _aligned(o.get("Fields"), o.get("Objects"), start + key_pad + 2, longest_field, longest_mark)
    return f"{out}\n{' ' * (start + width + key_pad)}}}"


def _aligned(fields: list[dict[str, Any]] | None, objects: list[dict[str, Any]] | None, start: int,
             longest_field: int, longest_mark: int) -> str:
    """Nomad's alignedFieldAndObjects: names after the longest marker, values after the longest name."""
    lines = [_format_field(f, start, longest_mark - _mark(f["Type"])[1], longest_field - len(f["Name"]))
             for f in fields or ()]
    lines += [_format_object(o, start, longest_mark - _mark(o["Type"])[1]) for o in objects or ()]
    return "\n".join(lines)


def _format_task_diff(t: dict[str, Any], start: int, task_pad: int, verbose: bool) -> str:
    out = f'{" " * start}{_mark(t["Type"])[0]}{" " * task_pad}Task: {json.dumps(t["Name"])}'
    if t.get("Annotations"):
        out += f" ({', '.join(t['Annotations'])})"
    if t["Type"] == "None" or (t["Type"] in ("Added", "Deleted") and not verbose):
        return out
    longest_field, longest_mark = _longest(t.get("Fields"), t.get("Objects"))
    return out + "\n" + _aligned(t.get("Fields"), t.get("Objects"), start + 2, longest_field, longest_mark)


def _format_group_diff(g: dict[str, Any], pad: int, verbose: bool) -> str:
    out = f'{_mark(g["Type"])[0]}{" " * pad}Task Group: {json.dumps(g["Name"])}'
    updates = g.get("Updates") or {}
    out += f" ({', '.join(f'{updates[k]} {k}' for k in sorted(updates))})\n" if updates else "\n"
    longest_field, longest_mark = _longest(g.get("Fields"), g.get("Objects"))
    longest_mark = max([longest_mark] + [_mark(t["Type"])[1] for t in g.get("Tasks") or ()])
    if g["Type"] == "Edited" or verbose:
        fo = _aligned(g.get("Fields"), g.get("Objects"), pad + 2, longest_field, longest_mark)
        out += fo + ("\n" if fo else "")
    for t in g.get("Tasks") or ():
        out += _format_task_diff(t, pad + 2, longest_mark - _mark(t["Type"])[1], verbose) + "\n"
    return out


def format_job_diff(d: dict[str, Any], verbose: bool) -> str:
    """Nomad's formatJobDiff: the plan's structured diff as ``nomad job plan`` prints it; *verbose*
    (``-verbose``) expands added and deleted groups and tasks, and the job's fields when it is not edited."""
    out = f'{_mark(d["Type"])[0]}Job: {json.dumps(d["ID"])}\n'
    longest_field, longest_mark = _longest(d.get("Fields"), d.get("Objects"))
    longest_mark = max([longest_mark] + [_mark(g["Type"])[1] for g in d.get("TaskGroups") or ()])
    if d["Type"] == "Edited" or verbose:
        fo = _aligned(d.get("Fields"), d.get("Objects"), 0, longest_field, longest_mark)
        out += fo + ("\n" if fo else "")
    for g in d.get("TaskGroups") or ():
        out += _format_group_diff(g, longest_mark - _mark(g["Type"])[1], verbose) + "\n"
    return out.strip()


# Nomad's preemptionDisplayThreshold: up to this many preempted allocations (or jobs) are listed one a
# row; more are summed by job (or by job type).
PREEMPTION_DISPLAY_THRESHOLD = 10


def plan_preemptions(preempted: list[dict[str, Any]]) -> str:
    """Nomad's JobPlanCommand.addPreemptions table: each allocation the plan would preempt, or, when there
    are many, their counts by job, or by job type."""
    if len(preempted) < PREEMPTION_DISPLAY_THRESHOLD:
        return table([["Alloc ID", "Job ID", "Task Group"]]
                     + [[a.get("ID", ""), a.get("JobID", ""), a.get("TaskGroup", "")] for a in preempted])
    by_type: dict[str, dict[tuple[str, str], int]] = {}
    for a in preempted:
        key = (a.get("JobID", ""), a.get("Namespace", "default"))
        counts = by_type.setdefault(a.get("JobType", ""), {})
        counts[key] = counts.get(key, 0) + 1
    if sum(len(c) for c in by_type.values()) < PREEMPTION_DISPLAY_THRESHOLD:
        return table([["Job ID", "Namespace", "Job Type", "Preemptions"]]
                     + [[job, ns, kind, str(n)] for kind, counts in sorted(by_type.items())
                        for (job, ns), n in sorted(counts.items())])
    return table([["Job Type", "Preemptions"]]
                 + [[kind, str(sum(counts.values()))] for kind, counts in sorted(by_type.items())])


def _plan_next_launch(got: dict[str, Any], job: dict[str, Any]) -> str:
    """Nomad's formatDryRun line for a periodic job (not a parameterized one): when it would launch next
    if submitted now, in its time zone."""
    text = got.get("NextPeriodicLaunch") or ""
    if not text or text.startswith("0001-") or job.get("ParameterizedJob") or not job.get("Periodic"):
        return ""
    from runtime.cli_usage import go_duration  # here: it imports this module

    try:
        at = dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return ""
    now = time.time()
    return (f"- If submitted now, next periodic launch would be at {fmt_launch_time(at, job['Periodic'])} "
            f"({go_duration(round(at - now))} from now).")


def job_plan(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job plan [-diff=false] [-verbose] <path>``: a dry run; exit 1 when allocations would be created
    or destroyed, 0 when nothing would change (Nomad's codes).  The job's structured diff is printed first
    (:func:`format_job_diff`); ``-verbose`` expands added and deleted groups and tasks."""
    flags, rest = parse_flags(args, {"diff": bool, "verbose": bool, "policy-override": bool,
                                     "json-output": bool, "t": str, **FILE_FLAGS})
    if flags.get("json-output") and flags.get("t"):
        raise CliError("Both -json-output and -t formatting are not allowed")
    path = one_arg(rest, "nomad job plan [-var k=v] [-var-file f] <path>")
    job = load_job_file(path, flags)
    scope_to_job(job)
    if not isinstance(job.get("ID"), str) or not job["ID"]:
        raise CliError("Job ID hasn't been provided")
    want_diff = flags.get("diff", True) not in (False, "false", "0")
    # As Nomad: the diff is always asked for (it tells whether anything changes), printed unless -diff=false.
    got = request(addr, "PUT", f"/v1/job/{urllib.parse.quote(job['ID'], safe='')}/plan",
                  {"Job": job, "Diff": True, "PolicyOverride": bool(flags.get("policy-override"))})
    updates = (got.get("Annotations") or {}).get("DesiredTGUpdates") or {}
    d = got.get("Diff")
    # Nomad's exit code: 1 when allocations would be created, destroyed or replaced (and the job changes).
    changes = (d or {}).get("Type") != "None" and any(
        u.get(k) for u in updates.values() for k in ("Place", "Stop", "Migrate", "DestructiveUpdate",
                                                      "Canary"))
    if flags.get("json-output") or flags.get("t"):
        # Nomad's: the plan response itself (the machine-readable formats skip the text and the hint).
        if flags.get("t"):
            from runtime.cli import render_template

            return render_template(flags["t"], got), 1 if changes else 0
        return as_json(got), 1 if changes else 0
    out: list[str] = []
    if d and want_diff:
        out += [format_job_diff(d, bool(flags.get("verbose"))), ""]
    out.append("Scheduler dry-run:")
    failed = got.get("FailedTGAllocs") or {}
    if not failed:
        out.append("- All tasks successfully allocated.")
    else:
        # Nomad's formatDryRun: a system job's own warning; a blank line between the groups' reports.
        out.append("- WARNING: Failed to place allocations on all nodes." if job.get("Type") == "system"
                   else "- WARNING: Failed to place all allocations.")
        for at, (group, m) in enumerate(sorted(failed.items())):
            n = int(m.get("CoalescedFailures", 0)) + 1
            if at:
                out.append("")
            out.append(f'  Task Group "{group}" (failed to place {n} allocation{"s" if n != 1 else ""}):')
            out += [f"    * {line}" for line in alloc_metrics(m)]
    launch = _plan_next_launch(got, job)
    if launch:
        out.append(launch)
    if got.get("Warnings"):
        out += ["", job_warnings(got).rstrip("\n")]
    out.append("")
    preempted = (got.get("Annotations") or {}).get("PreemptedAllocs") or []
    if preempted:  # Nomad's addPreemptions: its table runs straight into the index help
        out += ["Preemptions:", "", *plan_preemptions(preempted).split("\n")]
    index = got.get("JobModifyIndex", 0)
    out += [f"Job Modify Index: {index}", "To submit the job with version verification run:", "",
            f"nomad job run -check-index {index} {path}", "",
            "When running the job with the check-index flag, the job will only be run if the",
            "job modify index given matches the server-side version. If the index has",
            "changed, another user has modified the job and the plan's results are",
            "potentially invalid."]
    return "\n".join(out), 1 if changes else 0


def job_history(addr: str, args: list[str]) -> str:
    """``nomad job history [-p] <job>``: the tracked versions, newest first."""
    flags, rest = parse_flags(args, {"p": bool, "full": bool, "version": str, "diff-tag": str,
                                     "diff-version": str, "json": bool})
    if flags.get("json") and (flags.get("p") or flags.get("full")):
        raise CliError("-json and -t are exclusive with -p and -full")
    if (flags.get("diff-tag") or flags.get("diff-version")) and not flags.get("p"):
        raise CliError("-diff-tag and -diff-version can only be used with -p")
    if flags.get("diff-tag") and flags.get("diff-version"):
        raise CliError("-diff-tag and -diff-version are mutually exclusive")
    stub = resolve(addr, "job", one_arg(rest, "nomad job history <job>"))
    query = "?diffs=true" if flags.get("p") else ""
    if flags.get("diff-tag"):  # Nomad 1.9: every version against the tagged one
        query += "&diff_tag=" + urllib.parse.quote(flags["diff-tag"], safe="")
    elif flags.get("diff-version"):
        if not flags["diff-version"].isdigit():
            raise CliError('Error parsing -diff-version: strconv.ParseUint: parsing '
                           f'"{flags["diff-version"]}": invalid syntax')
        query += "&diff_version=" + flags["diff-version"]
    got = request(addr, "GET", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}/versions{query}")
    versions, diffs = got["Versions"], got.get("Diffs") or []
    # Nomad: diffs[i] is version i against the one before it (the oldest has none).
    pairs = [(v, diffs[i] if i < len(diffs) else None) for i, v in enumerate(versions)]
    if "version" in flags:
        text = flags["version"]
        if not text.isdigit():  # Nomad's parseVersion: strconv.ParseUint
            raise CliError(f'Error parsing version value "{text}": strconv.ParseUint: parsing "{text}": '
                           "invalid syntax")
        pairs = [(v, d) for v, d in pairs if v.get("Version") == int(text)]
        if not pairs:  # Nomad's formatJobVersion of no job
            raise CliError("Error printing job history for non-existing job or job version")
    if flags.get("json"):  # Nomad's Format of the versions (one when -version names it)
        return as_json(pairs[0][0] if "version" in flags else [v for v, _ in pairs])

    def one(v: dict[str, Any], d: dict[str, Any] | None) -> str:
        rows = [("Version", v.get("Version", 0)), ("Stable", str(bool(v.get("Stable"))).lower()),
                ("Submit Date", fmt_time(v.get("SubmitTime")))]
        tag = v.get("VersionTag") or {}
        if tag:  # Nomad 1.9's version tags
            rows.append(("Tag Name", tag.get("Name", "")))
            if tag.get("Description"):
                rows.append(("Tag Description", tag["Description"]))
        if d and d.get("Type") != "None":
            rows.append(("Diff", "\n" + format_job_diff(d, False)))
        if flags.get("full"):  # Nomad's formatJobVersion: the version's job under its rows, not instead
            rows.append(("Full", "JSON Job:\n" + json.dumps(v, indent=4, sort_keys=True)))
        return kv(rows).replace(" = \n", " =\n")
    return "\n\n".join(one(v, d) for v, d in pairs)


def job_revert(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job revert [-detach] <job> <version|tag>``: a version by number or by its tag's name."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool})
    if len(rest) != 2:
        raise CliError("This command takes two arguments: <job> <version|tag>")
    stub = resolve(addr, "job", rest[0])
    quoted = urllib.parse.quote(stub["ID"], safe="")
    if rest[1].isdigit():
        version = int(rest[1])
    else:  # Nomad's VersionByTag: the tracked version carrying that tag
        try:
            got = request(addr, "GET", f"/v1/job/{quoted}/versions")
        except CliError as e:
            raise CliError(f"Error retrieving job versions: {e}") from None
        tagged = [v for v in got.get("Versions") or () if (v.get("VersionTag") or {}).get("Name") == rest[1]]
        if not tagged:
            raise CliError(f"Error retrieving job versions: version tag {rest[1]} not found for job "
                           f"{rest[0]}")
        version = int(tagged[0]["Version"])
    path = f"/v1/job/{quoted}/revert"
    got = request(addr, "PUT", path, {"JobID": stub["ID"], "JobVersion": version})
    if not got.get("EvalID"):  # Nomad's job revert: nothing to watch (a periodic or parameterized job)
        return "", 0
    if flags.get("detach", False):
        return f"Evaluation ID: {got['EvalID']}", 0
    return monitor(addr, got["EvalID"], verbose=bool(flags.get("verbose")))


def _tag_args(args: list[str], spec: dict[str, type]) -> tuple[dict[str, Any], str]:
    flags, rest = parse_flags(args, spec)
    if len(rest) != 1:
        raise CliError("This command takes one argument: <job>")
    if not rest[0]:
        raise CliError("A job name is required")
    if not flags.get("name"):
        raise CliError("A version tag name is required")
    return flags, rest[0]


def job_tag_apply(addr: str, args: list[str]) -> str:
    """``nomad job tag apply -name <name> [-description <text>] [-version <n>] <job>`` (Nomad 1.9):
    name a version (the current one by default) so it is kept past job_tracked_versions and can be
    reverted to by name."""
    flags, job = _tag_args(args, {"name": str, "description": str, "version": str})
    stub = resolve(addr, "job", job.strip())
    quoted = urllib.parse.quote(stub["ID"], safe="")
    if flags.get("version", "") == "":
        try:
            version = int(request(addr, "GET", f"/v1/job/{quoted}")["Version"])
        except CliError as e:
            raise CliError(f"Error retrieving job versions: {e}") from None
    else:
        try:
            version = int(flags["version"])
            if version < 0:
                raise ValueError
        except ValueError:
            raise CliError(f'Error parsing version: strconv.ParseUint: parsing "{flags["version"]}": '
                           "invalid syntax") from None
    try:
        request(addr, "PUT", f"/v1/job/{quoted}/versions/{urllib.parse.quote(flags['name'], safe='')}/tag",
                {"Version": version, "Description": flags.get("description", "")})
    except CliError as e:
        raise CliError(f"Error tagging job version: {e}") from None
    return f'Job version {version} tagged with name "{flags["name"]}"'


def job_tag_unset(addr: str, args: list[str]) -> str:
    """``nomad job tag unset -name <name> <job>``: take the tag off the version holding it."""
    flags, job = _tag_args(args, {"name": str})
    stub = resolve(addr, "job", job.strip())
    quoted = urllib.parse.quote(stub["ID"], safe="")
    try:
        name = urllib.parse.quote(flags["name"], safe="")
        request(addr, "DELETE", f"/v1/job/{quoted}/versions/{name}/tag")
    except CliError as e:
        raise CliError(f"Error tagging job version: {e}") from None
    return f'Tag "{flags["name"]}" removed from job "{job}"'


def job_allocs(addr: str, args: list[str]) -> str:
    """``nomad job allocs [-all] [-verbose] [-json] <job>``: the job's allocations, newest first."""
    flags, rest = parse_flags(args, {"all": bool, "verbose": bool, "json": bool})
    stub = resolve(addr, "job", one_arg(rest, "nomad job allocs <job>"))
    allocs = request(addr, "GET", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}/allocations")
    if flags.get("json"):
        return as_json(allocs)
    if not allocs:
        return "No allocations placed"
    return alloc_table(allocs, flags.get("verbose", False), with_node=True)


def system_reconcile_summaries(addr: str, args: list[str]) -> str:
    """``nomad system reconcile summaries``."""
    if args:
        raise CliError("This command takes no arguments")
    request(addr, "PUT", "/v1/system/reconcile/summaries")
    return "Reconciled job summaries"


# How long `job dispatch -wait` waits for the dispatched job to finish (Nomad's monitorDispatchedJob: 5m).
DISPATCH_WAIT_S = 300.0


def _job_by_prefix(addr: str, ident: str, keep: Any, not_found: str) -> dict[str, Any]:
    """Nomad's jobIDByPrefix with a filter: the one job *keep* takes whose ID starts with *ident* (an exact
    match wins over longer ones), else *not_found* ({} is the quoted prefix) or "matched multiple jobs"."""
    from runtime.cli import ACTIVE

    star = ACTIVE.get("namespace") == "*"
    got = [j for j in request(addr, "GET", "/v1/jobs", prefix=ident, **({"namespace": "*"} if star else {}))
           if keep(j)]
    if not got:
        raise CliError(not_found.format(json.dumps(ident)))
    if len(got) > 1 and (got[0]["ID"] != ident or (star and got[1]["ID"] == ident)):
        raise CliError(f"Prefix {json.dumps(ident)} matched multiple jobs\n\n{job_list_table(got, star)}")
    if star:
        ACTIVE["query"]["namespace"] = got[0].get("Namespace") or "default"
    return got[0]


def job_dispatch(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job dispatch [-meta k=v]... [-detach] [-idempotency-token t] [-id-prefix-template p]
    [-priority n] <job> [<input file>|-]``: run a parameterized job."""
    flags, rest = parse_flags(args, {"meta": list, "detach": bool, "verbose": bool, "idempotency-token": str,
                                     "id-prefix-template": str, "priority": int, "wait": bool})
    if not rest or len(rest) > 2:
        raise CliError("This command takes one or two argument: <parameterized job> [input source]\n"
                       "For additional help try 'nomad job dispatch -help'")
    payload = b""
    if len(rest) == 2:  # Nomad reads the input before it looks at the meta
        try:
            payload = sys.stdin.buffer.read() if rest[1] == "-" else open(rest[1], "rb").read()
        except OSError as e:  # Go's *PathError: "open <path>: no such file or directory"
            why = (e.strerror or str(e)).lower()
            raise CliError(f"Error reading input data: open {rest[1]}: {why}") from None
    meta = {}
    for pair in flags.get("meta", []):
        key, eq, value = pair.partition("=")
        if not eq:
            raise CliError(f"Error parsing meta value: {pair}")
        meta[key] = value
    # Nomad's jobIDByPrefix over parameterized parents only: "para" names "params", not its children.
    parent = _job_by_prefix(addr, rest[0].strip(),
                            lambda j: not j.get("ParentID") and j.get("ParameterizedJob"),
                            "No parameterized job(s) with prefix or ID {} found")
    body: dict[str, Any] = {"Payload": base64.b64encode(payload).decode(), "Meta": meta}
    if flags.get("id-prefix-template"):
        body["IdPrefixTemplate"] = flags["id-prefix-template"]
    if flags.get("priority"):
        body["Priority"] = _int_flag(flags, "priority")
    got = request(addr, "PUT", f"/v1/job/{urllib.parse.quote(parent['ID'], safe='')}/dispatch", body,
                  idempotency_token=flags.get("idempotency-token") or None)
    # Nomad's job dispatch: a formatKV of the child's ID and (when one was made) the evaluation's.
    verbose = bool(flags.get("verbose"))
    rows = [("Dispatched Job ID", got["DispatchedJobID"])]
    if got.get("EvalID"):
        rows.append(("Evaluation ID", short(got["EvalID"], verbose)))
    head = kv(rows)
    if flags.get("detach", False) or not got.get("EvalID"):
        return head, 0
    text, code = monitor(addr, got["EvalID"], head=f"{head}\n\n", verbose=verbose)
    if code != 0 or not flags.get("wait"):
        return text, code
    print(text, flush=True)
    return _await_dispatched(addr, got["DispatchedJobID"], verbose)


def _await_dispatched(addr: str, job_id: str, verbose: bool) -> tuple[str, int]:
    """Nomad's job dispatch -wait (monitorDispatchedJob): until the dispatched job is dead, within
    DISPATCH_WAIT_S; its task groups' summary (and with -verbose its allocations), then exit 2 if an
    allocation failed, 0 if none did, 1 on the timeout."""
    path = f"/v1/job/{urllib.parse.quote(job_id, safe='')}"
    deadline, meta = time.monotonic() + DISPATCH_WAIT_S, {"index": 0}
    while True:
        job = request(addr, "GET", path, index=meta["index"] or None, wait="5s", answer_meta=meta)
        summary = (request(addr, "GET", f"{path}/summary") or {}).get("Summary") or {}
        done = job.get("Status") == "dead"
        if done or time.monotonic() > deadline:
            break
    keys = ("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown")
    rows = [["Task Group", *keys]] + [[g, *(str(st.get(k, 0)) for k in keys)]
                                      for g, st in sorted(summary.items())]
    block = ["", _stamp(), "Deployed", table(rows)]
    if verbose:
        allocs = request(addr, "GET", f"{path}/allocations")
        block += ["", "Allocations", alloc_table(allocs, True, with_node=True) if allocs else
                  "No allocations created"]
    text = "\n".join("    " + line if line else "" for line in "\n".join(block).split("\n"))
    if not done:
        print(text, flush=True)
        raise CliError(f"Timeout reached after {go_duration_ns(int(DISPATCH_WAIT_S * 1e9))}")
    return text, 2 if any(st.get("Failed", 0) for st in summary.values()) else 0


def job_scale(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job scale [-check-index N] [-detach] [-verbose] <job> [<group>] <count>``, as Nomad's
    command/job_scale.go: the group may be left out when the job has one; the request carries
    Nomad's message ``submitted using the Nomad CLI``, which the group's scaling event keeps."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool, "check-index": str})
    if len(rest) not in (2, 3):
        raise CliError("Command requires at least two arguments and no more than three")
    try:
        count = int(rest[-1])
    except ValueError:
        raise CliError(f"Failed to convert count string to int: {rest[-1]!r}") from None
    try:
        check_index = int(flags.get("check-index") or 0)
    except ValueError:
        raise CliError(f'invalid value "{flags["check-index"]}" for flag -check-index') from None
    stub = resolve(addr, "job", rest[0])
    path = f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}"
    try:
        groups = sorted((request(addr, "GET", f"{path}/scale") or {}).get("TaskGroups") or {})
    except CliError as e:
        raise CliError(f"Error querying job: {e}") from None
    group = rest[1] if len(rest) == 3 else ""
    if not group:  # Nomad's performGroupCheck
        if len(groups) > 1:
            raise CliError("Group name required")
        group = groups[0] if groups else ""
    if group not in groups:
        raise CliError(f"Group {group} not found within job")
    body = {"Count": count, "Target": {"Job": stub["ID"], "Group": group},
            "Message": SCALE_CLI_MESSAGE, "PolicyOverride": False, "JobModifyIndex": check_index}
    try:
        got = request(addr, "PUT", f"{path}/scale", body)
    except CliError as e:
        raise CliError(f"Error submitting scaling request: {e}") from None
    if not got.get("EvalID"):  # a periodic or parameterized job: its count changed, nothing to watch
        return "Job scale successful", 0
    return _finish(addr, got["EvalID"], flags.get("detach", False), "Job scale successful",
                   verbose=bool(flags.get("verbose")))


def job_periodic_force(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job periodic force [-detach] <job>``: launch a periodic job now."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool})
    ident = one_arg(rest, "nomad job periodic force <job>").strip()
    # Nomad's jobIDByPrefix filtered to periodic jobs: a prefix that also matches the launches
    # (cron/periodic-...) or a plain job names the periodic one, or none.
    stub = _job_by_prefix(addr, ident, lambda j: j.get("Periodic"),
                          "No periodic job(s) with prefix or ID {} found")
    try:
        got = request(addr, "PUT", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}/periodic/force")
    except CliError as e:
        raise CliError(f'Error forcing periodic job "{stub["ID"]}": {e}') from None
    return _finish(addr, got.get("EvalID", ""), flags.get("detach", False), "Force periodic successful",
                   verbose=bool(flags.get("verbose")))


def job_eval(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job eval [-detach] <job>``: a new evaluation of the job (Nomad ``Job.Evaluate``)."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool, "force-reschedule": bool})
    stub = resolve(addr, "job", one_arg(rest, "nomad job eval <job>"))
    try:
        got = request(addr, "PUT", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}/evaluate",
                      {"JobID": stub["ID"],
                       "EvalOptions": {"ForceReschedule": bool(flags.get("force-reschedule"))}})
    except CliError as e:
        raise CliError(f"Error evaluating job: {e}") from None
    verbose = bool(flags.get("verbose"))
    if flags.get("detach", False):  # Nomad's job eval -detach: the ID quoted, a space after it
        return f'Created eval ID: "{short(got.get("EvalID", ""), verbose)}" ', 0
    return monitor(addr, got.get("EvalID", ""), verbose=verbose)


def _status_multi_match(ident: str, matches: dict[str, list[str]]) -> tuple[str, int]:
    """Nomad's logMultiMatchError, on stderr: each context's matches, comma-separated."""
    lines = [f'Multiple matches found for id "{ident}"']
    for ctx in sorted(matches):
        if matches[ctx]:
            lines += [f"\n{ctx[:1].upper()}{ctx[1:]}:", ", ".join(matches[ctx])]
    print("\n".join(lines), file=sys.stderr)
    return "", 1


def status(addr: str, args: list[str]) -> str | tuple[str, int]:
    """``nomad status [<prefix>]``: the jobs, or the one object an ID prefix names, found as Nomad's
    StatusCommand does with a prefix search over every context (jobs, nodes, allocations, evaluations,
    deployments, namespaces): an exact ID wins; otherwise exactly one context must hold exactly one match."""
    _, rest = parse_flags(args, {"verbose": bool, "filter": str})
    if not rest:
        return job_status(addr, args)
    ident = one_arg(rest, "nomad status [<id or prefix>]")
    try:
        got = request(addr, "POST", "/v1/search", {"Prefix": ident, "Context": "all"})
    except CliError as e:
        raise CliError(f'Error querying search with id: "{e}"') from None
    matches = {ctx: list(ids or ()) for ctx, ids in ((got or {}).get("Matches") or {}).items()}
    exact = [ctx for ctx, ids in matches.items() if ids and ids[0] == ident]
    if len(exact) > 1:
        return _status_multi_match(ident, matches)
    match = exact[0] if exact else ""
    if not exact:
        single = [ctx for ctx, ids in matches.items() if len(ids) == 1]
        if len(single) > 1 or any(len(ids) > 1 for ids in matches.values()):
            return _status_multi_match(ident, matches)
        match = single[0] if single else ""
    from runtime.cli_deployments import deployment_status  # here: it imports this module
    from runtime.cli_namespaces import ns_status  # here: it imports this module

    show = {"evals": eval_status, "nodes": node_status, "allocs": alloc_status, "jobs": job_status,
            "deployment": deployment_status, "namespaces": ns_status}.get(match)
    if show is None:
        print(f'Unable to resolve ID: "{ident}"', file=sys.stderr)
        return "", 1
    return show(addr, args)


def version(addr: str, args: list[str]) -> str:
    """``nomad version``: this CLI's version (the agent's is in ``nomad agent-info``)."""
    from runtime.version import VERSION  # noqa: PLC0415 - only this command needs it

    return f"Nomad v{VERSION}"


JOB_COMMANDS = {
    ("system", "gc"): system_gc,
    ("operator", "metrics"): operator_metrics,
    ("node", "config"): node_config,
    ("job", "run"): job_run,
    ("job", "status"): job_status,
    ("job", "stop"): job_stop,
    ("job", "inspect"): job_inspect,
    ("job", "history"): job_history,
    ("job", "plan"): job_plan,
    ("job", "validate"): job_validate,
    ("job", "init"): job_init,
    ("job", "restart"): job_restart,
    ("job", "revert"): job_revert,
    ("job", "tag", "apply"): job_tag_apply,
    ("job", "tag", "unset"): job_tag_unset,
    ("job", "eval"): job_eval,
    ("job", "dispatch"): job_dispatch,
    ("job", "periodic", "force"): job_periodic_force,
    ("job", "scale"): job_scale,
    ("job", "allocs"): job_allocs,
    ("system", "reconcile", "summaries"): system_reconcile_summaries,
    ("monitor",): monitor_logs,
    ("monitor", "export"): monitor_export,
    ("eval", "status"): eval_status,
    ("eval", "list"): eval_list,
    ("status",): status,
    ("version",): version,
    ("-version",): version,
    ("--version",): version,
    ("alloc", "status"): alloc_status,
    ("alloc", "checks"): alloc_checks,
    ("alloc", "logs"): alloc_logs,
    ("alloc", "fs"): alloc_fs,
    ("alloc", "stop"): alloc_stop,
    ("alloc", "restart"): alloc_restart,
    ("alloc", "signal"): alloc_signal,
    ("node", "status"): node_status,
    ("node", "drain"): node_drain,
    ("node", "eligibility"): node_eligibility,
}
