"""review16: the servers' job bounds (job_max_count, job_max_priority) on every way a job changes."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

from actors.agent_messages import GetSelf
from actors.http_api import CodedError, Request, find_route
from actors.state.store import StateStore
from tests.one_server_api import _Env

SERVER = {"JobMaxCount": 3, "JobMaxPriority": 100, "JobDefaultPriority": 50}


def _api(state: StateStore) -> Any:
    def ask(actor: str, what: Any) -> Any:
        if isinstance(what, GetSelf):
            return {"config": {"Server": SERVER, "Region": "global"},
                    "member": {"Tags": {"region": "global"}}}
        return {"role": "leader", "leader": "me", "last_contact": 0}
    return SimpleNamespace(env=_Env(state), ask_timeout_s=1.0, ask=ask,
                           ctx=SimpleNamespace(acl_enabled=False, agent="agent", region="global"))


def _call(api: Any, method: str, path: str, body: Any) -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "REQUEST_METHOD": method}
    req = Request(method=method, path=path, query={}, url=path, environ=environ)
    try:
        out = find_route(path)(req, api)
    except CodedError as e:
        return e.code, str(e)
    return 200, getattr(out, "value", out)


JOB = {"ID": "web", "Name": "web", "Type": "batch", "Datacenters": ["dc1"],
       "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                            "Config": {"command": "/bin/true"}}]}]}


def test_scaling_a_job_past_job_max_count_is_refused() -> None:
    api = _api(StateStore())
    too_big = {**JOB, "TaskGroups": [{**JOB["TaskGroups"][0], "Count": 4}]}
    code, out = _call(api, "PUT", "/v1/jobs", {"Job": too_big})  # registration is bounded here
    assert code == 400 and "job_max_count: 4 > 3" in out, out
    code, out = _call(api, "PUT", "/v1/jobs", {"Job": JOB})
    assert code == 200, out
    code, out = _call(api, "PUT", "/v1/job/web/scale", {"Count": 10, "Target": {"Group": "g"}})
    assert code != 200 and "total count was greater than configured job_max_count: 10 > 3" in str(out), out
