"""``/v1/agent/schedulers`` and ``/v1/agent/schedulers/config``: this server's scheduling workers.

* ``GET /v1/agent/schedulers`` -- Nomad's ``AgentSchedulerWorkersInfo``:
  ``{ServerID, Schedulers: [{ID, EnabledSchedulers, Started, Status,
  WorkloadStatus}]}``, one per worker slot of the eval broker
  (:class:`~actors.scheduler.broker.EvalBroker`).  A slot scheduling an
  evaluation now is ``Scheduling``; an idle one ``WaitingToDequeue``; on the
  leader, the 3/4 of them it pauses (Nomad's pausableWorkers, to free its CPU
  for Raft and the plan applier) are ``Paused`` (Status and WorkloadStatus,
  as Nomad's stringers spell WorkerPaused and WorkloadPaused).  The
  IDs are derived from the server's name and the slot (Nomad's are random
  UUIDs made when a worker starts).
* ``GET /v1/agent/schedulers/config`` -- ``{ServerID, NumSchedulers,
  EnabledSchedulers}``.
* ``PUT``/``POST /v1/agent/schedulers/config`` with ``{NumSchedulers,
  EnabledSchedulers}`` -- Nomad's ``SetSchedulerWorkerConfig``: the broker
  runs that many workers for those types from now on (a reload of the agent's
  configuration sets ``server.num_schedulers`` again).  Invalid (a negative
  count or more than the CPUs, no ``_core``, an unknown scheduler): 400
  ``Invalid request``, as Nomad.  A count of 0 is refused here (Nomad would
  stop this server's scheduling altogether; a server here always schedules
  with at least one worker, as ``server.num_schedulers = 0`` gives one).

Needs ``agent:read`` to read and ``agent:write`` to set (actors.acl's
``/v1/agent/`` rule).  Not a server: 400 ``Server only endpoint`` (Nomad's
``ErrServerOnly``).
"""

from __future__ import annotations

import datetime
import os
import uuid
from typing import Any

from actors.agent_messages import GetSelf
from actors.http_api import INVALID_METHOD, Api, CodedError, Request, decode_json, read_body, require, route
from actors.scheduler.broker import SCHEDULER_TYPES, SetWorkerPool

BROKER = "eval-broker"  # actors.agent_specs
# Nomad's scheduler.BuiltinSchedulers (and "_core", which must be among those enabled).
BUILTIN_SCHEDULERS = ("service", "batch", "system", "sysbatch")


def _broker(api: Api) -> Any:
    ref = api.env.lookup(BROKER)
    if ref is None or not ref.is_alive():
        raise CodedError(400, "Server only endpoint")  # Nomad's ErrServerOnly
    return ref


def _server_id(api: Api) -> str:
    return str((api.ask(api.ctx.agent, GetSelf()).get("member") or {}).get("Name", ""))


def _rfc3339(wall: float) -> str:
    at = datetime.datetime.fromtimestamp(wall, datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def _worker_status(i: int, paused: int, busy: int) -> tuple[str, str]:
    """(Status, WorkloadStatus) of worker *i*: a leader's first ``paused`` are paused (Nomad's
    pausableWorkers, ``s.workers[:3n/4]``; WorkerPaused and WorkloadPaused both read ``Paused``)."""
    if i < paused:
        return "Paused", "Paused"
    return "Started", "Scheduling" if i - paused < busy else "WaitingToDequeue"


def workers_info(server_id: str, status: dict[str, Any]) -> dict[str, Any]:
    """Nomad's AgentSchedulerWorkersInfo from the broker's ``status``."""
    busy, paused = int(status.get("batches", 0)), int(status.get("paused_workers", 0))
    schedulers = list(status.get("schedulers") or SCHEDULER_TYPES)
    return {"ServerID": server_id, "Schedulers": [
        {"ID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nomad-worker:{server_id}:{i}")),
         "EnabledSchedulers": schedulers, "Started": _rfc3339(started),
         **dict(zip(("Status", "WorkloadStatus"), _worker_status(i, paused, busy), strict=True))}
        for i, started in enumerate(status.get("worker_started") or ())]}


def valid_pool(num: Any, enabled: Any, cpus: int) -> bool:
    """Nomad's SchedulerWorkerPoolArgs.IsValid: 0 <= NumSchedulers <= CPUs; EnabledSchedulers has _core
    and otherwise only built-in schedulers."""
    if isinstance(num, bool) or not isinstance(num, int) or not 0 <= num <= cpus:
        return False
    if not isinstance(enabled, list) or not all(isinstance(s, str) for s in enabled):
        return False
    return "_core" in enabled and all(s == "_core" or s in BUILTIN_SCHEDULERS for s in enabled)


@route("/v1/agent/schedulers")
def schedulers_info(req: Request, api: Api) -> Any:
    _broker(api)
    require(req, "GET")
    return workers_info(_server_id(api), api.ask(BROKER, "status"))


@route("/v1/agent/schedulers/config")
def schedulers_config(req: Request, api: Api) -> Any:
    _broker(api)
    if req.method == "GET":
        status = api.ask(BROKER, "status")
        return {"ServerID": _server_id(api), "NumSchedulers": status["workers"],
                "EnabledSchedulers": list(status["schedulers"])}
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    try:
        body = decode_json(read_body(req) or b"{}")
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"Invalid request: {e}") from None
    if not isinstance(body, dict):
        raise CodedError(400, "Invalid request: the body must be a JSON object")
    num, enabled = body.get("NumSchedulers", 0), body.get("EnabledSchedulers")
    if not valid_pool(num, enabled if enabled is not None else [], os.cpu_count() or 1):
        raise CodedError(400, "Invalid request")
    if num == 0:
        raise CodedError(400, "NumSchedulers 0 is not supported by this agent: a server here always "
                              "schedules with at least one worker")
    workers, schedulers = api.ask(BROKER, SetWorkerPool(num_workers=num, schedulers=tuple(enabled)))
    return {"ServerID": _server_id(api), "NumSchedulers": workers, "EnabledSchedulers": list(schedulers)}
