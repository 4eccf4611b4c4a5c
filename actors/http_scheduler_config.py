"""``/v1/operator/scheduler/configuration``: read and set the scheduler configuration (Nomad's).

* ``GET`` answers ``{"SchedulerConfig": {...}, "Index", "KnownLeader",
  "LastContact"}`` (linearizable unless ``?stale``; blocking with
  ``?index=``), the defaults at index 0 until an operator sets it.
* ``PUT``/``POST`` with a ``SchedulerConfiguration`` body replaces it whole
  (omitted fields take Nomad's zero values, as Nomad's handler does) and
  answers ``{"Updated": true, "Index": N}``; with ``?cas=N`` only if the
  current ``ModifyIndex`` is N, else ``{"Updated": false}``.  A malformed
  body or an unknown algorithm is 400.

ACLs: ``operator:read`` to read, ``operator:write`` to set (the
``/v1/operator/`` rule).  actors.state.scheduler_config says what each field
does here.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import (
    Answer,
    Api,
    CodedError,
    Request,
    json_body,
    parse_uint,
    propose,
    query_meta_body,
    route,
    state_query,
)
from actors.state import scheduler_config as sched_cfg
from actors.state.store import command


@route("/v1/operator/scheduler/configuration")
def scheduler_configuration(req: Request, api: Api) -> Any:
    if req.method == "GET":
        answer = state_query(req, api, (sched_cfg.TABLE,), lambda st: {"NodeLimitForFeasibilityChecks": 0,
                                                                    **sched_cfg.current(st.tables)})
        return Answer({"SchedulerConfig": answer.value, **query_meta_body(answer.headers)}, answer.headers)
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, "Invalid method")
    body = json_body(req, "Error parsing scheduler config")
    try:
        config = sched_cfg.validated(body)
    except ValueError as e:
        raise CodedError(400, f"Error parsing scheduler config: {e}") from None
    cas = None
    if "cas" in req.query:
        raw = req.query["cas"][0]
        cas = parse_uint(raw)  # Nomad's ParseUint: a sign, a space or a value past 2**64 - 1 is refused
        if cas is None:
            raise CodedError(400, f"Error parsing cas value: {raw!r}")
    index, result = propose(api, command("scheduler_set_config", config=config, cas=cas))
    if not isinstance(result, dict) or not result.get("ok"):
        raise CodedError(500, str((result or {}).get("error") if isinstance(result, dict) else result))
    return Answer({"Updated": bool(result.get("updated")), "Index": index},
                  (("X-Nomad-Index", str(index)),))
