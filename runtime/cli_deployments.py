"""``nomad deployment list | status | fail | pause | resume | promote`` and ``nomad job deployments``.

As Nomad's ``command/deployment_*.go`` and ``command/job_deployments.go``:
IDs are shown cut to 8 characters unless ``-verbose``; a deployment is
named by its ID or a unique prefix (resolved through ``/v1/deployments?prefix=``);
``-json`` prints the API's objects indented four spaces.  ``fail``,
``resume`` and ``promote`` watch the evaluation they made unless
``-detach``, then the deployment it worked within until that ends (as
``job run`` does); ``promote`` promotes every group's canaries, or
``-group``'s.  ``status -monitor`` watches one deployment the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import (
    MONITOR_WAIT,
    alloc_table,
    as_json,
    kv,
    monitor,
    one_arg,
    parse_flags,
    request,
    resolve,
    short,
)
from runtime.durations import parse_duration

__all__ = ["DEPLOYMENT_COMMANDS", "deployment_groups", "latest_deployment_section", "watch_deployment"]

ZERO_TIME_PREFIX = "0001-01-01"  # Go's zero time.Time: a time never set
DEPLOYMENT_DONE = ("successful", "failed", "cancelled", "blocked")  # a watched deployment's last states
# A failed deployment with auto_revert: how long before its job's newest deployment is looked up for the
# rollback's (Nomad's monitor waits the same second for the rollback to be scheduled).
ROLLBACK_LOOKUP_DELAY_S = 1.0


def _progress_by(t: Any) -> str:
    """``RequireProgressBy`` (RFC 3339) as Nomad's ``formatTime``: to the second; unset is ``N/A``."""
    if not isinstance(t, str) or not t or t.startswith(ZERO_TIME_PREFIX):
        return "N/A"
    try:
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return t
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_groups(d: dict[str, Any]) -> str:
    """Nomad's ``formatDeploymentGroups``: a row per task group; Auto Revert, Promoted / Canaries and
    Progress Deadline columns only when some group has them."""
    groups = d.get("TaskGroups") or {}
    autorevert = any(g.get("AutoRevert") for g in groups.values())
    canaries = any(g.get("DesiredCanaries") for g in groups.values())
    deadline = any(g.get("ProgressDeadline") for g in groups.values())
    counts = ("PlacedAllocs", "HealthyAllocs", "UnhealthyAllocs")
    rows = [["Task Group", *(["Auto Revert"] if autorevert else []), *(["Promoted"] if canaries else []),
             "Desired", *(["Canaries"] if canaries else []), "Placed", "Healthy", "Unhealthy",
             *(["Progress Deadline"] if deadline else [])]]
    for name in sorted(groups):
        g = groups[name]
        rows.append([name, *([str(bool(g.get("AutoRevert"))).lower()] if autorevert else []),
                     *([str(bool(g.get("Promoted"))).lower()] if canaries else []),
                     str(g.get("DesiredTotal", 0)), *([str(g.get("DesiredCanaries", 0))] if canaries else []),
                     *(str(g.get(k, 0)) for k in counts),
                     *([_progress_by(g.get("RequireProgressBy"))] if deadline else [])])
    return table(rows)


def _with_groups(base: str, d: dict[str, Any]) -> str:
    if not d.get("TaskGroups"):
        return base
    return "\n".join([base, "", "Deployed", deployment_groups(d)])


def format_deployment(d: dict[str, Any] | None, verbose: bool) -> str:
    """Nomad's ``formatDeployment`` (``deployment status``, ``job deployments -latest``)."""
    if d is None:
        return "No deployment found"
    return _with_groups(kv([("ID", short(d["ID"], verbose)), ("Job ID", d["JobID"]),
                            ("Job Version", d.get("JobVersion", 0)), ("Status", d["Status"]),
                            ("Description", d.get("StatusDescription", ""))]), d)


def latest_deployment_section(d: dict[str, Any], verbose: bool) -> list[str]:
    """``nomad job status``'s "Latest Deployment" section (Nomad's JobStatusCommand.formatDeployment)."""
    body = kv([("ID", short(d["ID"], verbose)), ("Status", d["Status"]),
               ("Description", d.get("StatusDescription", ""))])
    return ["", "Latest Deployment", _with_groups(body, d)]


def format_deployments(deps: list[dict[str, Any]], verbose: bool) -> str:
    """Nomad's ``formatDeployments``."""
    if not deps:
        return "No deployments found"
    rows = [["ID", "Job ID", "Job Version", "Status", "Description"]]
    rows += [[short(d["ID"], verbose), d["JobID"], str(d.get("JobVersion", 0)), d["Status"],
              d.get("StatusDescription", "")] for d in deps]
    return table(rows)


def _resolve(addr: str, rest: list[str], usage: str) -> dict[str, Any]:
    """The deployment an ID or unique prefix names (its list entry: the whole deployment)."""
    ident = one_arg(rest, usage)
    if len(ident.replace("-", "")) == 1:  # Nomad's getDeployment
        raise CliError("Error retrieving deployment: Identifier must contain at least two characters.")
    found = resolve(addr, "deployment", ident)
    assert isinstance(found, dict)
    return found


# ---------------------------------------------------------------- commands


def deployment_list(addr: str, args: list[str]) -> str:
    """``nomad deployment list [-json] [-verbose] [-filter f]``: newest first."""
    flags, rest = parse_flags(args, {"json": bool, "verbose": bool, "filter": str})
    if rest:
        raise CliError("This command takes no arguments: nomad deployment list [-json] [-verbose]")
    try:
        deps = request(addr, "GET", "/v1/deployments", filter=flags.get("filter") or None) or []
    except CliError as e:
        raise CliError(f"Error retrieving deployments: {e}") from None
    if flags.get("json"):
        return as_json(deps)
    return format_deployments(deps, bool(flags.get("verbose")))


def deployment_status(addr: str, args: list[str]) -> str:
    """``nomad deployment status [-json] [-verbose] [-monitor [-wait d]] <deployment>``."""
    flags, rest = parse_flags(args, {"json": bool, "verbose": bool, "monitor": bool, "wait": str})
    if flags.get("monitor") and flags.get("json"):
        raise CliError("The monitor flag cannot be used with the '-json' or '-t' flags")
    wait = flags.get("wait") or "2s"  # Nomad's -wait default
    try:
        parse_duration(wait)
    except ValueError as e:
        raise CliError(f'invalid value "{wait}" for flag -wait: {e}') from None
    usage = "nomad deployment status [-json] [-verbose] [-monitor] <deployment>"
    d = _resolve(addr, rest, usage)
    verbose = bool(flags.get("verbose"))
    if flags.get("monitor"):
        print(f'{_now()}: Monitoring deployment "{short(d["ID"], verbose)}"', flush=True)
        watch_deployment(addr, d["ID"], verbose, wait=wait)
        return ""
    d = request(addr, "GET", f"/v1/deployment/{d['ID']}")
    if flags.get("json"):
        return as_json(d)
    return format_deployment(d, verbose)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def watch_deployment(addr: str, dep_id: str, verbose: bool, *, indent: str = "",
                     wait: str = MONITOR_WAIT) -> str:
    """Nomad's deployment monitor without a terminal (``defaultMonitor``): the deployment printed, with the
    time, each time it changes, until it ends; returns its last status.

    A failed deployment whose groups auto-revert is followed by the rollback's
    deployment, once the job has one (its status is not what this returns).
    Each look is one blocking query of at most *wait*; a deployment that stays
    running is watched as long as it runs (its progress deadline ends it).
    """
    def say(text: str) -> None:
        print("\n".join(f"{indent}{line}" if line else "" for line in text.split("\n")), flush=True)

    index, shown, meta = 0, None, {"index": 0}
    while True:
        try:
            d = request(addr, "GET", f"/v1/deployment/{dep_id}", index=index or None,
                        wait=wait if index else None, answer_meta=meta)
            allocs = request(addr, "GET", f"/v1/deployment/allocations/{dep_id}") if verbose else None
        except CliError as e:
            print(f"{indent}{_now()}: Error fetching deployment: {e}", file=sys.stderr, flush=True)
            return ""
        text = format_deployment(d, verbose)
        if verbose:
            text += "\n\nAllocations\n" + alloc_table(allocs or [], verbose, with_node=True)
        if text != shown:  # Nomad prints on every answer; an unchanged one only repeats the last
            say(f"\n{_now()}\n{text}")
            shown = text
        status = d.get("Status", "")
        if status not in DEPLOYMENT_DONE:
            # The next look blocks until the deployments change past this answer (Nomad's LastIndex).
            index = max(meta["index"], int(d.get("ModifyIndex", 0)), 1)
            continue
        if status == "failed" and any(g.get("AutoRevert") for g in (d.get("TaskGroups") or {}).values()):
            time.sleep(ROLLBACK_LOOKUP_DELAY_S)
            try:
                job_path = f"/v1/job/{urllib.parse.quote(d['JobID'], safe='')}"
                rollback = request(addr, "GET", f"{job_path}/deployment")
            except CliError as e:
                print(f"{indent}{_now()}: Error fetching deployment of previous job version: {e}",
                      file=sys.stderr, flush=True)
                return status
            if rollback and rollback.get("ID") != d["ID"]:
                print("", flush=True)
                watch_deployment(addr, rollback["ID"], verbose, indent=indent, wait=wait)
        return status


def _then_monitor(addr: str, said: str, eval_id: str, detach: bool) -> tuple[str, int]:
    """What a write printed, then (unless -detach, or no evaluation was made) its evaluation's monitor."""
    if detach or not eval_id:
        return said, 0
    return monitor(addr, eval_id, head=f"{said}\n\n")


def deployment_fail(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad deployment fail [-detach] [-verbose] <deployment>``."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool})
    d = _resolve(addr, rest, "nomad deployment fail [-detach] <deployment>")
    got = request(addr, "PUT", f"/v1/deployment/fail/{d['ID']}")
    said = f'Deployment "{d["ID"]}" failed'
    if got.get("RevertedJobVersion") is not None:
        said += f". Auto-reverted to job version {got['RevertedJobVersion']}."
    return _then_monitor(addr, said, got.get("EvalID", ""), bool(flags.get("detach")))


def deployment_pause(addr: str, args: list[str]) -> str:
    """``nomad deployment pause [-verbose] <deployment>``: no more allocations replaced until resumed."""
    _, rest = parse_flags(args, {"verbose": bool})
    d = _resolve(addr, rest, "nomad deployment pause <deployment>")
    request(addr, "PUT", f"/v1/deployment/pause/{d['ID']}", {"DeploymentID": d["ID"], "Pause": True})
    return f'Deployment "{d["ID"]}" paused'


def deployment_resume(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad deployment resume [-detach] [-verbose] <deployment>``."""
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool})
    d = _resolve(addr, rest, "nomad deployment resume [-detach] <deployment>")
    got = request(addr, "PUT", f"/v1/deployment/pause/{d['ID']}", {"DeploymentID": d["ID"], "Pause": False})
    return _then_monitor(addr, f'Deployment "{d["ID"]}" resumed', got.get("EvalID", ""),
                         bool(flags.get("detach")))


def _promoted(addr: str, eval_id: str, detach: bool, verbose: bool) -> tuple[str, int]:
    """Nomad's deployment promote and job promote after the promotion: nothing when no evaluation was
    made, ``Evaluation ID: <id>`` with -detach, else the evaluation's monitor."""
    if not eval_id:
        return "", 0
    if detach:
        return f"Evaluation ID: {eval_id}", 0
    return monitor(addr, eval_id, verbose=verbose)


def deployment_promote(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad deployment promote [-group g]... [-detach] <deployment>``: the server's answer."""
    flags, rest = parse_flags(args, {"group": list, "detach": bool, "verbose": bool})
    d = _resolve(addr, rest, "nomad deployment promote [-group <group>]... <deployment>")
    groups = flags.get("group") or []
    got = request(addr, "PUT", f"/v1/deployment/promote/{d['ID']}",
                  {"DeploymentID": d["ID"], "All": not groups, "Groups": groups or None})
    return _promoted(addr, got.get("EvalID", ""), bool(flags.get("detach")), bool(flags.get("verbose")))


def job_promote(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad job promote [-group g]... [-detach] <job>``: promote the latest deployment of the job the
    prefix names (JobIDByPrefix: with -namespace '*', in whichever namespace it is)."""
    flags, rest = parse_flags(args, {"group": list, "detach": bool, "verbose": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <job>\n"
                       "usage: nomad job promote [-group <group>]... <job>")
    job = resolve(addr, "job", rest[0].strip())
    assert isinstance(job, dict)
    job_id = job["ID"]
    d = request(addr, "GET", f"/v1/job/{urllib.parse.quote(job_id, safe='')}/deployment")
    if not d:
        raise CliError(f"Job {json.dumps(job_id)} has no deployment to promote")
    groups = flags.get("group") or []
    try:
        got = request(addr, "PUT", f"/v1/deployment/promote/{d['ID']}",
                      {"DeploymentID": d["ID"], "All": not groups, "Groups": groups or None})
    except CliError as e:
        raise CliError(f"Error promoting deployment {json.dumps(d['ID'])} for job {json.dumps(job_id)}: "
                       f"{e}") from None
    return _promoted(addr, got.get("EvalID", ""), bool(flags.get("detach")), bool(flags.get("verbose")))


def job_deployments(addr: str, args: list[str]) -> str:
    """``nomad job deployments [-latest] [-all] [-json] [-verbose] <job>``."""
    flags, rest = parse_flags(args, {"latest": bool, "all": bool, "json": bool, "verbose": bool})
    job = resolve(addr, "job", one_arg(rest, "nomad job deployments [-latest] [-json] <job>"))
    assert isinstance(job, dict)
    path = f"/v1/job/{urllib.parse.quote(job['ID'], safe='')}"
    verbose = bool(flags.get("verbose"))
    if flags.get("latest"):
        d = request(addr, "GET", f"{path}/deployment")
        return as_json(d) if flags.get("json") else format_deployment(d, verbose)
    deps = request(addr, "GET", f"{path}/deployments", all="true" if flags.get("all") else None) or []
    return as_json(deps) if flags.get("json") else format_deployments(deps, verbose)


DEPLOYMENT_COMMANDS = {
    ("deployment", "list"): deployment_list,
    ("deployment", "status"): deployment_status,
    ("deployment", "fail"): deployment_fail,
    ("deployment", "pause"): deployment_pause,
    ("deployment", "resume"): deployment_resume,
    ("deployment", "promote"): deployment_promote,
    ("job", "deployments"): job_deployments,
    ("job", "promote"): job_promote,
}
