"""``nomad job action [-job j] [-group g -task t | -alloc a] [-i] [-t] [-e c] <action>`` and its alias
``nomad action``, as Nomad's ``command/job_action.go``.

The action is a command the job's task defines (an ``action`` block); it runs inside the task as
``alloc exec`` runs a command, over the same WebSocket session (runtime.cli_exec), opened on
``/v1/job/<job>/action`` of the node that runs the allocation (or through the agent, which
relays it).  Without ``-alloc``, a running allocation of ``-group`` is chosen at random (``-task``
is then required too).  The remote command's exit code is this command's.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from runtime.cli import CliError
from runtime.cli_exec import _is_tty, _task_of, run_session

__all__ = ["JOB_ACTION_COMMANDS"]

_HELP = "For additional help try 'nomad job action -help'"


def job_action(addr: str, args: list[str]) -> tuple[str, int]:
    from runtime.cli_jobs import parse_flags, random_job_alloc, request, resolve

    flags, rest = parse_flags(args, {"job": str, "group": str, "task": str, "alloc": str, "i": bool,
                                     "t": bool, "e": str})
    stdin_on, use_tty, escape = flags.get("i", True), flags.get("t", _is_tty()), flags.get("e", "~")
    job, group, task = flags.get("job", ""), flags.get("group", ""), flags.get("task", "")
    if not rest:
        raise CliError(f"An action name is required\n{_HELP}")
    if not job:
        raise CliError(f"A job ID is required\n{_HELP}")
    if use_tty and not stdin_on:
        raise CliError(f"-i must be enabled if running with tty\n{_HELP}")
    if escape == "none":
        escape = ""
    if len(escape) > 1:
        raise CliError(f"-e requires 'none' or a single character\n{_HELP}")
    if not flags.get("alloc"):
        if not group:
            raise CliError(f"A group name is required if no allocation is provided\n{_HELP}")
        if not task:
            raise CliError(f"A task name is required if no allocation is provided\n{_HELP}")
        job = resolve(addr, "job", job)["ID"]
        stub: dict[str, Any] = random_job_alloc(addr, job, group)
    else:
        stub = resolve(addr, "allocation", flags["alloc"])
    alloc = request(addr, "GET", f"/v1/allocation/{stub['ID']}", namespace=stub.get("Namespace"))
    task = _task_of(alloc, task)
    query = urllib.parse.urlencode({"tty": "true" if use_tty else "false", "task": task, "command": "[]",
                                    "action": rest[0], "allocID": alloc["ID"],
                                    "group": alloc.get("TaskGroup", ""),
                                    "namespace": alloc.get("Namespace") or "default"})
    path = f"/v1/job/{urllib.parse.quote(job, safe='')}/action?{query}"
    return "", run_session(addr, alloc, path, use_tty, stdin_on, escape)


JOB_ACTION_COMMANDS = {("job", "action"): job_action, ("action",): job_action}
