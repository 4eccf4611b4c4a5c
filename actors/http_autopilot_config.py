"""``/v1/operator/autopilot/configuration``: read and set the cluster's autopilot configuration (Nomad's).

* ``GET`` answers Nomad's ``api.AutopilotConfiguration``: ``{"CleanupDeadServers",
  "LastContactThreshold": "200ms", "MaxTrailingLogs", "MinQuorum",
  "ServerStabilizationTime": "10s", "EnableRedundancyZones",
  "DisableUpgradeMigration", "EnableCustomUpgrades", "CreateIndex",
  "ModifyIndex"}`` (linearizable unless ``?stale``).  Before the leader
  has written one (a moment after the first election), this server's
  agent config at index 0, where Nomad answers 500 ``autopilot config not
  initialized yet``.
* ``PUT`` with such a body replaces it whole, as Nomad's handler does:
  omitted fields take Go's zero values, durations are Go duration strings,
  unknown fields and the indexes are ignored.  Answers ``true``; with
  ``?cas=N`` only if the current ``ModifyIndex`` is N, answering ``true``
  or ``false``.  A body that does not decode (bad JSON, a number where a
  duration string goes, a bad duration, a negative count) is 400 ``Error
  parsing autopilot config: ...``; so is a negative duration, which Nomad
  would take.  Other methods: 404 ``Invalid method``, as Nomad's.

ACLs: ``operator:read`` to read, ``operator:write`` to set (the
``/v1/operator/`` rule).  actors.state.autopilot_config says what follows it.
"""

from __future__ import annotations

import json
from typing import Any

from actors.http_api import (
    INVALID_METHOD,
    Answer,
    Api,
    CodedError,
    Request,
    decode_json,
    parse_uint,
    propose,
    read_body,
    route,
    state_query,
)
from actors.state import autopilot_config as ap_cfg
from actors.state.store import command

_PARSE_ERROR = "Error parsing autopilot config"


def _stored(state: Any) -> dict[str, Any] | None:
    rec = ap_cfg.current(state.tables)
    return dict(rec) if rec is not None else None


@route("/v1/operator/autopilot/configuration")
def autopilot_configuration(req: Request, api: Api) -> Any:
    if req.method == "GET":
        answer = state_query(req, api, (ap_cfg.TABLE,), _stored)
        rec = answer.value
        if rec is None:  # none replicated yet: the agent config this server uses meanwhile
            rec = {**api.ask("server-membership", "autopilot_agent_config"),
                   "CreateIndex": 0, "ModifyIndex": 0}
        return Answer(ap_cfg.to_api(rec), answer.headers)
    if req.method != "PUT":
        raise CodedError(404, INVALID_METHOD)
    raw = read_body(req)
    if not raw:
        raise CodedError(400, f"{_PARSE_ERROR}: Request body is empty")
    try:
        config = ap_cfg.from_api(decode_json(raw))
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise CodedError(400, f"{_PARSE_ERROR}: {e}") from None
    cas = None
    if "cas" in req.query:
        value = req.query["cas"][0]
        cas = parse_uint(value)
        if cas is None:
            why = f'strconv.ParseUint: parsing {json.dumps(value)}: invalid syntax'
            raise CodedError(400, f"Error parsing cas value: {why}")
    index, result = propose(api, command("autopilot_set_config", config=config, cas=cas))
    if not isinstance(result, dict) or not result.get("ok"):
        raise CodedError(500, str(result.get("error") if isinstance(result, dict) else result))
    return Answer(bool(result.get("updated")), (("X-Nomad-Index", str(index)),))
