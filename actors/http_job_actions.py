"""Job actions (Nomad 1.7): ``GET /v1/job/<id>/actions`` and ``/v1/job/<id>/action``.

A task's ``action "name" { command = "..." args = [...] }`` blocks name commands an operator
may run inside the task (``nomad job action``).  As Nomad's:

* ``GET /v1/job/<id>/actions`` lists every action of the job's current version, each
  ``{Name, Command, Args, TaskName, TaskGroupName}`` in group and task order (``read-job``); an
  unknown job is Nomad's ``500 Unknown job "<id>"``.
* ``/v1/job/<id>/action?allocID=&task=&action=&tty=`` is a WebSocket session, exactly alloc
  exec's (actors.http_alloc_exec: the same messages, checks, ACL capabilities and relaying to the
  node that runs the allocation), whose command is the action's command and arguments as the
  allocation's own version of the job defines them; the node refuses an allocation of another
  job (``job <id> does not have allocation <alloc>``), a task the allocation lacks (``task <t>
  not found in allocation <alloc>``) and an unknown action (``action <a> not found in task
  <t>``).  Any agent takes the session, a client-only one too (it is not forwarded to a
  server: the node is reached directly, as for alloc exec).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from typing import Any

from actors.http_api import Api, CodedError, Request, require, state_query
from actors.http_jobs import JOB_ACTIONS
from actors.state.namespaces import split_key

__all__ = ["job_actions_list"]


def job_actions_list(req: Request, api: Api, job_id: str) -> Any:
    """``GET /v1/job/<id>/actions`` (Nomad ``Job.GetActions``)."""
    require(req, "GET")

    def query(st: Any) -> list[dict[str, Any]] | None:
        job = st.tables["jobs"].get(job_id)
        if job is None:
            return None
        return [{"Name": a["Name"], "Command": a["Command"], "Args": a.get("Args"), "TaskName": t["Name"],
                 "TaskGroupName": g["Name"]}
                for g in job.get("TaskGroups") or () for t in g.get("Tasks") or ()
                for a in t.get("Actions") or ()]
    answer = state_query(req, api, ("jobs",), query)
    if answer.value is None:
        raise CodedError(500, f"Unknown job {json.dumps(split_key(job_id)[1])}")
    return answer


def job_action_run(req: Request, api: Api, job_id: str) -> Any:
    """``/v1/job/<id>/action``: the allocation's exec session, running the named action."""
    from actors.http_alloc_exec import alloc_exec  # here: it imports the HTTP layer this module loads with

    q = {k: v[0] for k, v in req.query.items() if v}
    alloc_id = q.get("allocID", "")
    query = [(k, v) for k, v in q.items() if k not in ("allocID", "action", "command", "job", "group")]
    query += [("command", "[]"), ("action", q.get("action", "")), ("job", split_key(job_id)[1])]
    qs = urllib.parse.urlencode(query)
    environ = dict(req.environ or {})
    environ["QUERY_STRING"] = qs
    path = f"/v1/client/allocation/{alloc_id}/exec"
    exec_req = dataclasses.replace(req, path=path, url=f"{path}?{qs}", environ=environ,
                                   query=urllib.parse.parse_qs(qs, keep_blank_values=True))
    return alloc_exec(exec_req, api, alloc_id)


JOB_ACTIONS["actions"] = job_actions_list
JOB_ACTIONS["action"] = job_action_run
