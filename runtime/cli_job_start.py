"""``nomad job start [-detach] [-verbose] <job>`` (Nomad 1.10's command/job_start.go).

Starts a stopped job again: its current version is registered anew with
``Stop`` false (a new version, as Nomad's), then the evaluation is monitored as
``job run`` monitors it. A job that is not stopped is refused (``Job "<name>"
has not been stopped``). A periodic or parameterized job has no evaluation of
its own to watch: "Job start successful" and, for a periodic one, nothing more
(the next launch is the periodic dispatcher's).
"""
from __future__ import annotations

import sys
import urllib.parse

from runtime.cli import CliError
from runtime.cli_jobs import _finish, job_warnings, parse_flags, request, resolve


def job_start(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"detach": bool, "verbose": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <job>\nFor additional help try 'nomad job start -h'")
    stub = resolve(addr, "job", rest[0].strip())
    job = request(addr, "GET", f"/v1/job/{urllib.parse.quote(stub['ID'], safe='')}")
    if not job.get("Stop"):
        print(f'Job "{job.get("Name") or job.get("ID", "")}" has not been stopped', file=sys.stderr)
        return "", 1
    job["Stop"] = False
    if any(isinstance(g, dict) and g.get("Scaling") for g in job.get("TaskGroups") or ()):
        # Stopping disabled the job's scaling policies.  Nomad's job start restores them from the job's
        # stored submission; this agent keeps none, which Nomad answers with this warning.
        print("All scaling policies for this job were disabled when it was stopped, resubmit it to enable "
              "them again.", file=sys.stderr)
    got = request(addr, "PUT", "/v1/jobs", {"Job": job})
    periodic = bool((job.get("Periodic") or {}).get("Enabled"))
    parameterized = job.get("ParameterizedJob") is not None
    if flags.get("detach") or periodic or parameterized:
        lines = ["Job start successful"]
        if not periodic and not parameterized:
            lines.append(f"Evaluation ID: {got.get('EvalID', '')}")
        return job_warnings(got) + "\n".join(lines), 0
    text, code = _finish(addr, got.get("EvalID", ""), False, "Job start successful",
                         verbose=bool(flags.get("verbose")))
    return job_warnings(got) + text, code


JOB_START_COMMANDS = {("job", "start"): job_start}
